/*
 * cmd_audit.c: piivault audit SUBCOMMAND: the audit chain.
 */
#include "cli_int.h"

enum { O_AFTER = CLI_OPT_OWN };

static int
audit_opt(void *arg, int ch, const char *val)
{
	uint64_t *after = arg;
	unsigned long long n;
	int r = CLI_OK;

	if (ch == O_AFTER &&
	    (r = cli_number(cli_name(), "--after", val, 0, UINT64_MAX, &n)) ==
	    CLI_OK)
		*after = n;
	return r;
}

static int
audit_verify(int argc, char **argv)
{
	const struct cli_start start = { "audit verify", "audit verify\n\n"
	    "Checks the whole audit chain.  Exits 0 with the number of events,\n"
	    "or 1 naming the first sequence number that does not verify (an\n"
	    "edited, deleted, reordered or inserted event).\n", NULL, 0,
	    "unexpected argument" };
	struct cli_common c;
	struct vault *v = NULL;
	uint64_t count = 0, bad = 0;
	pv_status rc;
	int r, first;

	if ((r = cli_begin(&start, argc, argv, &c, &first, &v)) !=
	    CLI_OK || v == NULL)
		return r;
	rc = vault_audit_verify(v, &count, &bad);
	vault_close(v);
	if (rc == PV_EINTEGRITY) {
		(void)fprintf(stderr, "piivault: audit verify: event %llu does "
		    "not verify (%llu events before it do)\n",
		    (unsigned long long)bad, (unsigned long long)count);
		return CLI_FAIL;
	}
	if (rc != PV_OK)
		return cli_fail("audit verify", NULL, rc);
	(void)printf("audit chain verified: %llu events\n",
	    (unsigned long long)count);
	return CLI_OK;
}

static int
audit_export(int argc, char **argv)
{
	uint64_t after = 0, end = VAULT_AUDIT_END_NONE, last = 0;
	struct cli_own own = { audit_opt, &after,
	    "  --after SEQ      only events after SEQ\n" };
	struct vault_audit_entry *e = NULL;
	const struct cli_start start = { "audit export",
	    "audit export [--after SEQ]\n\n"
	    "Writes the audit log as JSON lines, each event checked against the\n"
	    "chain as it is read, up to the newest event when it starts (events\n"
	    "written meanwhile are for the next export).  Keep a copy elsewhere:\n"
	    "it anchors the log.\n",
	    &own, 0, "unexpected argument" };
	struct cli_common c;
	struct vault *v = NULL;
	struct pv_buf b;
	struct pv_json j;
	size_t n = 0;
	pv_status rc = PV_OK;
	int r, first;

	if ((r = cli_begin(&start, argc, argv, &c, &first, &v)) !=
	    CLI_OK || v == NULL)
		return r;
	pv_buf_init(&b, 1u << 20);
	/* The first page fixes the end, so that a busy log cannot keep it. */
	while (rc == PV_OK && after < end) {
		if ((rc = vault_audit_read(v, after, end, VAULT_BATCH_MAX, &e,
		    &n, &last)) != PV_OK)
			break;
		if (end == VAULT_AUDIT_END_NONE)
			end = last;
		/* Short of the end it fixed: the log was cut meanwhile. */
		if (n == 0 && after < end)
			rc = PV_EINTEGRITY;
		for (size_t i = 0; i < n && rc == PV_OK; i++) {
			pv_buf_cleanup(&b);
			pv_json_init(&j, &b);
			api_json_event(&j, &e[i]);
			if ((rc = pv_json_end(&j)) == PV_OK)
				(void)printf("%s\n", b.p);
			after = e[i].seq;
		}
		vault_audit_entries_free(e, n);
	}
	pv_buf_cleanup(&b);
	vault_close(v);
	if (rc != PV_OK)
		return cli_fail("audit export", rc == PV_EINTEGRITY ? "the "
		    "chain does not verify (run audit verify)" : NULL, rc);
	return CLI_OK;
}

static const struct option audit_export_opts[] = {
	CLI_OPTS_VAULT,
	{ "after", required_argument, NULL, O_AFTER | CLI_OPT_ONCE },
	CLI_OPT_END,
};

const struct cli_cmd cli_audit_cmds[] = {
	{ "verify", audit_verify, "check the whole chain", cli_opts_vault,
	    NULL },
	{ "export", audit_export, "write events as JSON lines",
	    audit_export_opts, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};
