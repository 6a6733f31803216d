/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_get.c: piivault get.
 */
#include <string.h>

#include "cli_int.h"

/*
 * Token i's line: the item of a detokenize answer for it (api.h's
 * api_json_reveal), its status in *got.
 */
static int
get_one(struct vault *v, size_t i, const char *token, pv_status *got)
{
	struct vault_value *val = NULL;
	struct vault_reveal rv;
	struct pv_buf out;
	struct pv_json j;
	int r;

	memset(&rv, 0, sizeof(rv));
	*got = rv.status = vault_get(v, token, strlen(token), &val);
	if (rv.status == PV_OK) {
		memcpy(rv.field, val->field, sizeof(rv.field));
		rv.value = val->value;
		rv.len = val->len;
	}
	pv_buf_init(&out, (size_t)PV_VALUE_MAX * 6 + 256);
	pv_json_init(&j, &out);
	api_json_reveal(&j, i, token, strlen(token), &rv);
	r = cli_emit_json("get", &j);
	pv_buf_cleanup(&out);
	vault_value_free(val);
	return r;
}

int
cmd_get(int argc, char **argv)
{
	struct cli_common c;
	struct vault *v = NULL;
	size_t failed = 0;
	pv_status got, first_rc = PV_OK;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "get TOKEN...\n\n"
	    "Prints one line per TOKEN, in order, as the items of\n"
	    "POST /v1/detokenize: {\"index\":0,\"token\":\"tok_...\","
	    "\"field\":...,\"value\":...},\n"
	    "or {\"index\":...,\"token\":...,\"error\":{\"code\":...,"
	    "\"message\":...}}\n"
	    "for one that cannot be resolved (\"token\" only for a string\n"
	    "of a token's form); then the command exits 1.  An operator's\n"
	    "tool: no purpose or consent checks are made here.", NULL)) !=
	    CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first == argc)
		return cli_usage("get", "no token given");
	if (argc - first > VAULT_BATCH_MAX)
		return cli_usage("get", "too many tokens");
	if ((r = cli_open(&c, "get", &v)) != CLI_OK)
		return r;
	for (int i = first; i < argc && r == CLI_OK; i++) {
		r = get_one(v, (size_t)(i - first), argv[i], &got);
		if (got == PV_OK)
			continue;
		if (failed == 0)
			first_rc = got;
		failed++;
	}
	if (r == CLI_OK && failed > 0) {
		(void)fprintf(stderr, "piivault: get: %zu of %d tokens not "
		    "resolved: first: %s\n", failed, argc - first,
		    pv_strerror(first_rc));
		r = CLI_FAIL;
	}
	vault_close(v);
	return r;
}
