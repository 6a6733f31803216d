/*
 * cmd_records.c: init, put, get and lookup.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_int.h"

/* Write a whole buffer to stdout, then a newline. */
static int
emit(const char *cmd, const struct pv_buf *b)
{
	if (fwrite(b->p, 1, b->len, stdout) != b->len ||
	    fputc('\n', stdout) == EOF || fflush(stdout) != 0)
		return cli_fail(cmd, "stdout", PV_EIO);
	return CLI_OK;
}

int
cmd_init(int argc, char **argv)
{
	struct cli_common c;
	struct vault_opts o;
	struct vault *v = NULL;
	pv_status rc;
	int r, first, made_key = 0;

	if ((r = cli_parse(argc, argv, &c, &first, "init [--passphrase]\n\n"
	    "Creates the data directory, the root key file (mode 0600)\n"
	    "unless --passphrase is given, and the first key of each kind.\n"
	    "Refuses to overwrite an existing vault or key file.\n"
	    "  --passphrase     derive the root key from a passphrase "
	    "(Argon2id)", NULL)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("init", "unexpected argument");
	cli_vault_opts(&c, &o);
	o.unlock.arg = c.passphrase ? &(struct cli_pass){
	    "PIIVAULT_PASSPHRASE", NULL, 1 } : NULL;
	if (!c.passphrase) {
		if ((rc = kms_key_file_create(c.key_file)) != PV_OK)
			return cli_fail("init", c.key_file, rc);
		made_key = 1;
	}
	if ((rc = vault_create(&o, &v)) != PV_OK) {
		/* Leave nothing behind that a retry would trip over. */
		if (made_key && unlink(c.key_file) != 0)
			pv_log(PV_LOG_WARN, "init: could not remove %s",
			    c.key_file);
		return cli_fail("init", rc == PV_EEXIST || rc == PV_EIO ?
		    c.data_dir : NULL, rc);
	}
	vault_close(v);
	(void)printf("initialized vault in %s%s%s\n", c.data_dir,
	    c.passphrase ? " (root key from passphrase)" : ", root key in ",
	    c.passphrase ? "" : c.key_file);
	return CLI_OK;
}

int
cmd_put(int argc, char **argv)
{
	struct cli_common c;
	struct pv_buf in, out;
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
	if ((rc = api_json_put_result(&out, api_record_in(rec), &res)) !=
	    PV_OK) {
		r = cli_fail("put", NULL, rc);
		goto out;
	}
	r = emit("put", &out);
out:
	free(tokens);
	api_record_free(rec);
	vault_close(v);
	pv_buf_cleanup(&in);
	pv_buf_cleanup(&out);
	return r;
}

int
cmd_get(int argc, char **argv)
{
	struct cli_common c;
	struct pv_buf out;
	struct vault *v = NULL;
	size_t failed = 0;
	pv_status rc = PV_OK, first_rc = PV_OK;
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
	if ((rc = pv_buf_add(&out, "{", 1)) != PV_OK)
		goto out;
	for (int i = first; i < argc; i++) {
		struct vault_value *val = NULL;
		pv_status grc;

		grc = vault_get(v, argv[i], strlen(argv[i]), &val);
		if (i > first && (rc = pv_buf_add(&out, ",", 1)) != PV_OK)
			goto out;
		if ((rc = api_json_quote(&out, argv[i], strlen(argv[i]))) !=
		    PV_OK)
			goto out;
		if (grc == PV_OK) {
			if ((rc = pv_buf_printf(&out, ":{\"field\":\"%s\","
			    "\"value\":", val->field)) == PV_OK &&
			    (rc = api_json_quote(&out, val->value,
			    val->len)) == PV_OK)
				rc = pv_buf_add(&out, "}", 1);
			vault_value_free(val);
			if (rc != PV_OK)
				goto out;
			continue;
		}
		if (failed++ == 0)
			first_rc = grc;
		if ((rc = pv_buf_printf(&out, ":{\"error\":{\"code\":\"%s\"}}",
		    api_error_code(grc))) != PV_OK)
			goto out;
	}
	rc = pv_buf_add(&out, "}", 1);
out:
	if (rc != PV_OK)
		r = cli_fail("get", NULL, rc);
	else if ((r = emit("get", &out)) == CLI_OK && failed > 0) {
		(void)fprintf(stderr, "piivault: get: %zu of %d tokens not "
		    "resolved: first: %s\n", failed, argc - first,
		    pv_strerror(first_rc));
		r = CLI_FAIL;
	}
	pv_buf_cleanup(&out);
	vault_close(v);
	return r;
}

int
cmd_lookup(int argc, char **argv)
{
	struct cli_common c;
	struct pv_buf out;
	struct vault_match *m = NULL;
	struct vault *v = NULL;
	size_t n = 0;
	pv_status rc;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "lookup FIELD VALUE\n\n"
	    "Finds records whose FIELD (email or phone) equals VALUE after\n"
	    "normalization, and prints {\"matches\":[{\"id\":...,"
	    "\"token\":...}]}.", NULL)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (argc - first != 2)
		return cli_usage("lookup", "expected FIELD and VALUE");
	if ((r = cli_open(&c, "lookup", &v)) != CLI_OK)
		return r;
	pv_buf_init(&out, (size_t)VAULT_LOOKUP_MAX * 128 + 64);
	if ((rc = vault_lookup(v, argv[first], strlen(argv[first]),
	    argv[first + 1], strlen(argv[first + 1]), &m, &n)) != PV_OK) {
		r = cli_fail("lookup", rc == PV_EVALUE ? argv[first] : NULL,
		    rc);
		goto out;
	}
	rc = pv_buf_add(&out, "{\"matches\":[", 12);
	for (size_t i = 0; i < n && rc == PV_OK; i++)
		rc = pv_buf_printf(&out, "%s{\"id\":\"%s\",\"token\":\"%s\"}",
		    i ? "," : "", m[i].id, m[i].token);
	if (rc == PV_OK)
		rc = pv_buf_add(&out, "]}", 2);
	r = rc == PV_OK ? emit("lookup", &out) : cli_fail("lookup", NULL, rc);
out:
	free(m);
	pv_buf_cleanup(&out);
	vault_close(v);
	return r;
}
