/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_record.c: libFuzzer harness for the stored-record parser.  White-box
 * (includes vault_int.h): bytes from disk must parse into field views that
 * stay inside the buffer, or into PV_EINTEGRITY.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct field_view f;
	uint8_t *copy;
	size_t pos = R_FIELDS;
	volatile uint8_t sink = 0;

	/* An exact-size heap copy, so that ASan sees any overread. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	if (size >= R_FIELDS)
		for (size_t i = 0; i < PV_FIELDS_MAX; i++) {
			if (vault_field_next(copy, size, &pos, &f) != PV_OK)
				break;
			/* Touch both ends of what the view says is there. */
			sink ^= (uint8_t)f.name[0] ^ (uint8_t)f.name[f.namelen - 1];
			sink ^= f.nonce[0] ^ f.tag[PV_GCM_TAG_LEN - 1];
			if (f.ctlen > 0)
				sink ^= f.ct[f.ctlen - 1];
			if (f.indexed)
				sink ^= f.digest[PV_HMAC_LEN - 1];
		}
	free(copy);
	(void)sink;
	return 0;
}
