/*
 * cmd_audit.c: piivault audit and piivault retention.
 */
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

enum { O_AFTER = CLI_OPT_OWN, O_DRYRUN, O_BATCH };

struct audit_opts {
	uint64_t	after;
	int		dry_run;
	size_t		batch;
};

static int
audit_opt(void *arg, int ch, const char *val)
{
	struct audit_opts *o = arg;
	unsigned long long n;
	int r = CLI_OK;

	if (ch == O_AFTER) {
		if ((r = cli_number("audit", "--after", val, 0, UINT64_MAX,
		    &n)) == CLI_OK)
			o->after = n;
	} else if (ch == O_DRYRUN)
		o->dry_run = 1;
	else if (ch == O_BATCH) {
		if ((r = cli_number("retention", "--batch", val, 1,
		    VAULT_BATCH_MAX, &n)) == CLI_OK)
			o->batch = (size_t)n;
	}
	return r;
}

static const struct option audit_options[] = {
	{ "after", required_argument, NULL, O_AFTER },
	{ "dry-run", no_argument, NULL, O_DRYRUN },
	{ "batch", required_argument, NULL, O_BATCH },
	{ NULL, 0, NULL, 0 },
};

static int
audit_verify(int argc, char **argv)
{
	struct cli_common c;
	struct vault *v = NULL;
	uint64_t count = 0, bad = 0;
	pv_status rc;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "audit verify\n\nChecks "
	    "the whole audit chain.  Exits 0 with the number of events,\nor 1 "
	    "naming the first sequence number that does not verify (an\n"
	    "edited, deleted, reordered or inserted event).\n", NULL)) !=
	    CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("audit verify", "unexpected argument");
	if ((r = cli_open(&c, "audit verify", &v)) != CLI_OK)
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
	struct audit_opts o = { 0, 0, 0 };
	struct cli_own own = { audit_options, audit_opt, &o,
	    "  --after SEQ      only events after SEQ\n" };
	struct vault_audit_entry *e = NULL;
	struct cli_common c;
	struct vault *v = NULL;
	struct pv_buf b;
	size_t n = 0;
	pv_status rc = PV_OK;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "audit export [--after "
	    "SEQ]\n\nWrites the audit log as JSON lines, each event checked "
	    "against the\nchain as it is read.  Keep a copy elsewhere: it "
	    "anchors the log.\n", &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("audit export", "unexpected argument");
	if ((r = cli_open(&c, "audit export", &v)) != CLI_OK)
		return r;
	pv_buf_init(&b, 1u << 20);
	do {
		if ((rc = vault_audit_read(v, o.after, VAULT_BATCH_MAX, &e,
		    &n)) != PV_OK)
			break;
		for (size_t i = 0; i < n && rc == PV_OK; i++) {
			pv_buf_cleanup(&b);
			if ((rc = api_json_event(&b, &e[i], 0)) == PV_OK)
				(void)printf("%s\n", b.p);
			o.after = e[i].seq;
		}
		vault_audit_entries_free(e, n);
	} while (rc == PV_OK && n == VAULT_BATCH_MAX);
	pv_buf_cleanup(&b);
	vault_close(v);
	if (rc != PV_OK)
		return cli_fail("audit export", rc == PV_EINTEGRITY ? "the "
		    "chain does not verify (run audit verify)" : NULL, rc);
	return CLI_OK;
}

static const struct cli_cmd audit_commands[] = {
	{ "verify", audit_verify, "check the whole chain" },
	{ "export", audit_export, "write events as JSON lines" },
};

int
cmd_audit(int argc, char **argv)
{
	return cli_dispatch("audit", audit_commands, sizeof(audit_commands) /
	    sizeof(audit_commands[0]), argc, argv);
}

static int
retention_sweep(int argc, char **argv)
{
	struct audit_opts o = { 0, 0, 0 };
	struct cli_own own = { audit_options, audit_opt, &o,
	    "  --dry-run        count only\n"
	    "  --batch N        records a transaction (default 1000)\n" };
	struct cli_common c;
	struct vault *v = NULL;
	uint64_t shredded = 0, held = 0;
	pv_status rc;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "retention sweep "
	    "[--dry-run]\n\nCrypto-shreds every record past its retention "
	    "date (tombstone reason\n\"retention\"), except records under "
	    "legal hold, in bounded\ntransactions.\n", &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("retention sweep", "unexpected argument");
	if ((r = cli_open(&c, "retention sweep", &v)) != CLI_OK)
		return r;
	rc = vault_retention_sweep(v, o.dry_run, o.batch, &shredded, &held);
	vault_close(v);
	if (rc != PV_OK)
		return cli_fail("retention sweep", NULL, rc);
	(void)printf("{\"dry_run\":%s,\"shredded\":%llu,\"held\":%llu}\n",
	    o.dry_run ? "true" : "false", (unsigned long long)shredded,
	    (unsigned long long)held);
	return CLI_OK;
}

static const struct cli_cmd retention_commands[] = {
	{ "sweep", retention_sweep, "shred what is past its date" },
};

int
cmd_retention(int argc, char **argv)
{
	return cli_dispatch("retention", retention_commands,
	    sizeof(retention_commands) / sizeof(retention_commands[0]), argc,
	    argv);
}
