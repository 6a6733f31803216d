/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_codec.c: libFuzzer harness for every parser of outside input: the
 * JSON request bodies, receipts, identifiers, keys and UTF-8.  Each must
 * give a value or an error for any bytes, never a crash or a leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	const char *text = (const char *)data;
	char err[API_ERR_MAX];
	uint8_t out[PV_KEY_LEN];
	struct api_record *rec = NULL;
	struct api_records *recs = NULL;
	struct api_detok *d = NULL;
	struct api_lookup *l = NULL;
	struct api_patch *p = NULL;
	struct vault_receipt r;
	static const char *const bools[] = { "marketing", "notices", NULL };
	int vals[2], given;
	char sval[64];

	if (!ready) {
		if (pv_init() != PV_OK)
			abort();
		api_init();
		ready = 1;
	}
	if (api_record_parse(text, size, &rec, err) == PV_OK)
		api_record_free(rec);
	if (api_records_parse(text, size, 0, 1, &recs, err) == PV_OK)
		api_records_free(recs);
	recs = NULL;
	if (api_records_parse(text, size, 1, 1000, &recs, err) == PV_OK)
		api_records_free(recs);
	if (api_detok_parse(text, size, 1000, &d, err) == PV_OK)
		api_detok_free(d);
	if (api_lookup_parse(text, size, 1000, &l, err) == PV_OK)
		api_lookup_free(l);
	if (api_patch_parse(text, size, &p, err) == PV_OK)
		api_patch_free(p);
	(void)api_flags_parse(text, size, bools, vals, "reason", sval,
	    sizeof(sval), err);
	(void)api_reason_parse(text, size, sval, sizeof(sval), &given, err);
	(void)api_receipt_parse(text, size, &r, err);
	(void)pv_b64url_decode16(out, text, size);
	(void)pv_key_from_base64(out, text, size);
	(void)pv_utf8_valid(data, size);
	(void)pv_field_name_valid(text, size);
	return 0;
}
