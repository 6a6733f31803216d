/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_retention.c: piivault retention SUBCOMMAND.
 */
#include "cli_int.h"

enum { O_DRYRUN = CLI_OPT_OWN, O_BATCH };

struct retention_opts {
	int		dry_run;
	size_t		batch;
};

static int
retention_opt(void *arg, int ch, const char *val)
{
	struct retention_opts *o = arg;
	unsigned long long n;
	int r = CLI_OK;

	if (ch == O_DRYRUN)
		o->dry_run = 1;
	else if (ch == O_BATCH &&
	    (r = cli_number(cli_name(), "--batch", val, 1, VAULT_BATCH_MAX,
	    &n)) == CLI_OK)
		o->batch = (size_t)n;
	return r;
}

static int
retention_sweep(int argc, char **argv)
{
	struct retention_opts o = { 0, 0 };
	struct cli_own own = { retention_opt, &o,
	    "  --dry-run        count only: what would be shredded, what is "
	    "held\n"
	    "  --batch N        records a transaction (default 1000)\n" };
	const struct cli_start start = { "retention sweep",
	    "retention sweep [--dry-run] [--json]\n\n"
	    "Crypto-shreds every record past its retention date (tombstone "
	    "reason\n\"retention\"), except records under legal hold, in "
	    "bounded\ntransactions, and says how many it shredded and how "
	    "many are held.\nWith --json: {\"dry_run\":false,\"shredded\":N,"
	    "\"held\":N}, or with\n--dry-run {\"dry_run\":true,"
	    "\"would_shred\":N,\"held\":N}.\n", &own, 0,
	    "unexpected argument" };
	struct cli_common c;
	struct vault *v = NULL;
	struct pv_buf b;
	struct pv_json j;
	uint64_t shredded = 0, held = 0;
	pv_status rc;
	int r, first;

	if ((r = cli_begin(&start, argc, argv, &c, &first, &v)) !=
	    CLI_OK || v == NULL)
		return r;
	rc = vault_retention_sweep(v, o.dry_run, o.batch, &shredded, &held);
	vault_close(v);
	if (rc != PV_OK)
		return cli_fail("retention sweep", NULL, rc);
	if (!c.json) {
		(void)printf("%s %llu records past their retention date; "
		    "%llu held\n", o.dry_run ? "would shred" : "shredded",
		    (unsigned long long)shredded, (unsigned long long)held);
		return fflush(stdout) == 0 ? CLI_OK :
		    cli_fail("retention sweep", "stdout", PV_EIO);
	}
	/* A dry run shreds nothing: its count has a name of its own. */
	pv_buf_init(&b, 128);
	pv_json_init(&j, &b);
	pv_json_obj(&j);
	pv_json_kbool(&j, "dry_run", o.dry_run);
	pv_json_ku64(&j, o.dry_run ? "would_shred" : "shredded", shredded);
	pv_json_ku64(&j, "held", held);
	pv_json_close(&j);
	r = cli_emit_json("retention sweep", &j);
	pv_buf_cleanup(&b);
	return r;
}

static const struct option retention_sweep_opts[] = {
	CLI_OPTS_VAULT,
	{ "dry-run", no_argument, NULL, O_DRYRUN | CLI_OPT_ONCE },
	{ "batch", required_argument, NULL, O_BATCH | CLI_OPT_ONCE },
	CLI_OPT_JSON,
	CLI_OPT_END,
};

const struct cli_cmd cli_retention_cmds[] = {
	{ "sweep", retention_sweep, "shred what is past its date",
	    retention_sweep_opts, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};
