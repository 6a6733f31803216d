/*
 * cmd_get.c: piivault get.
 */
#include <string.h>

#include "cli_int.h"

/* One token's member: its field and value, or the error it got. */
static void
get_one(struct pv_json *j, struct vault *v, const char *token,
    pv_status *got)
{
	struct vault_value *val = NULL;

	*got = vault_get(v, token, strlen(token), &val);
	pv_json_key(j, token);
	pv_json_obj(j);
	if (*got == PV_OK) {
		pv_json_kstr(j, "field", val->field);
		pv_json_key(j, "value");
		pv_json_strn(j, val->value, val->len);
		vault_value_free(val);
	} else {
		pv_json_key(j, "error");
		pv_json_obj(j);
		pv_json_kstr(j, "code", api_error_code(*got));
		pv_json_close(j);
	}
	pv_json_close(j);
}

int
cmd_get(int argc, char **argv)
{
	struct cli_common c;
	struct pv_buf out;
	struct pv_json j;
	struct vault *v = NULL;
	size_t failed = 0;
	pv_status got, first_rc = PV_OK;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "get TOKEN...\n\n"
	    "Prints {\"tok_...\":{\"field\":...,\"value\":...},...}; a token\n"
	    "that cannot be resolved gets {\"error\":{\"code\":...}} and the\n"
	    "command exits 1.  An operator's tool: no purpose or consent\n"
	    "checks are made here.", NULL)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first == argc)
		return cli_usage("get", "no token given");
	if (argc - first > VAULT_BATCH_MAX)
		return cli_usage("get", "too many tokens");
	if ((r = cli_open(&c, "get", &v)) != CLI_OK)
		return r;
	pv_buf_init(&out, (size_t)VAULT_BATCH_MAX * (PV_VALUE_MAX * 6 + 256));
	pv_json_init(&j, &out);
	pv_json_obj(&j);
	for (int i = first; i < argc; i++) {
		get_one(&j, v, argv[i], &got);
		if (got == PV_OK)
			continue;
		if (failed == 0)
			first_rc = got;
		failed++;
	}
	pv_json_close(&j);
	if ((r = cli_emit_json("get", &j)) == CLI_OK && failed > 0) {
		(void)fprintf(stderr, "piivault: get: %zu of %d tokens not "
		    "resolved: first: %s\n", failed, argc - first,
		    pv_strerror(first_rc));
		r = CLI_FAIL;
	}
	pv_buf_cleanup(&out);
	vault_close(v);
	return r;
}
