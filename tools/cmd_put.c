/*
 * cmd_put.c: piivault put.
 */
#include <stdlib.h>

#include "cli_int.h"

int
cmd_put(int argc, char **argv)
{
	struct cli_common c;
	struct pv_buf in, out;
	struct pv_json j;
	struct api_record *rec = NULL;
	struct vault *v = NULL;
	struct vault_put_result res;
	char (*tokens)[VAULT_ID_STRLEN + 1] = NULL;
	char err[API_ERR_MAX];
	pv_status rc;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "put < record.json\n\n"
	    "Reads one JSON object of fields, e.g.\n"
	    "  {\"email\":\"a@b.example\",\"phone\":\"+1 555 0100\","
	    "\"name\":\"Ada\"}\n"
	    "stores it and prints {\"id\":\"rec_...\",\"tokens\":{...}}.", NULL)) !=
	    CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("put", "unexpected argument");
	pv_buf_init(&in, API_BODY_MAX);
	pv_buf_init(&out, API_BODY_MAX);
	if ((rc = cli_read_stdin(&in, API_BODY_MAX)) != PV_OK) {
		r = cli_fail("put", "stdin", rc);
		goto out;
	}
	if ((rc = api_record_parse(in.p ? in.p : "", in.len, &rec, err)) !=
	    PV_OK) {
		r = cli_fail("put", err, rc);
		goto out;
	}
	if ((rc = vault_record_check(api_record_in(rec))) != PV_OK) {
		r = cli_fail("put", "record", rc);
		goto out;
	}
	if ((r = cli_open(&c, "put", &v)) != CLI_OK)
		goto out;
	if ((tokens = calloc(api_record_in(rec)->nfields,
	    sizeof(*tokens))) == NULL) {
		r = cli_fail("put", NULL, PV_ENOMEM);
		goto out;
	}
	res.tokens = tokens;
	if ((rc = vault_put(v, api_record_in(rec), 1, &res)) != PV_OK ||
	    (rc = res.status) != PV_OK) {
		r = cli_fail("put", NULL, rc);
		goto out;
	}
	pv_json_init(&j, &out);
	api_json_put_result(&j, api_record_in(rec), &res);
	r = cli_emit_json("put", &j);
out:
	free(tokens);
	api_record_free(rec);
	vault_close(v);
	pv_buf_cleanup(&in);
	pv_buf_cleanup(&out);
	return r;
}
