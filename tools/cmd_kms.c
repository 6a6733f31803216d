/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_kms.c: piivault kms SUBCOMMAND: the key lifecycle.  Its own names
 * take the prefix kc_ (kms_ is kms.h's).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_int.h"

enum { O_FROM = CLI_OPT_OWN, O_BATCH, O_FORCE, O_YES, O_NEWKEY, O_NEWPASS,
    O_DUTY };

struct kc_opts {
	uint32_t	 from;
	size_t		 batch;
	int		 force;
	int		 yes;
	const char	*new_key_file;
	int		 new_passphrase;
	unsigned	 duty;
};

static int
kc_opt(void *arg, int ch, const char *val)
{
	struct kc_opts *o = arg;
	unsigned long long n;
	int r = CLI_OK;

	switch (ch) {
	case O_FROM:
		if ((r = cli_number(cli_name(), "--from", val, 1, UINT32_MAX,
		    &n)) == CLI_OK)
			o->from = (uint32_t)n;
		break;
	case O_BATCH:
		if ((r = cli_number(cli_name(), "--batch", val, 1,
		    VAULT_KEY_BATCH_MAX, &n)) == CLI_OK)
			o->batch = (size_t)n;
		break;
	case O_FORCE:
		o->force = 1;
		break;
	case O_YES:
		o->yes = 1;
		break;
	case O_NEWKEY:
		o->new_key_file = val;
		break;
	case O_NEWPASS:
		o->new_passphrase = 1;
		break;
	case O_DUTY:
		if ((r = cli_number(cli_name(), "--duty", val, 1, 100, &n)) ==
		    CLI_OK)
			o->duty = (unsigned)n;
		break;
	}
	return r;
}

/* The options of the kms subcommands, and each one's table of them. */
/*
 * The options of the kms subcommands, and each one's table of them.  Each
 * names one run (a version, a job's pace, a new root): none is a setting.
 */
#define KC_OPT(name, has, val) \
	{ name, has, NULL, (val) | CLI_OPT_ONCE }
#define KC_FROM		KC_OPT("from", required_argument, O_FROM)
#define KC_BATCH	KC_OPT("batch", required_argument, O_BATCH)
#define KC_FORCE	KC_OPT("force", no_argument, O_FORCE)
#define KC_YES		KC_OPT("yes", no_argument, O_YES)
#define KC_NEWKEY	KC_OPT("new-key-file", required_argument, O_NEWKEY)
#define KC_NEWPASS	KC_OPT("new-passphrase", no_argument, O_NEWPASS)
#define KC_DUTY		KC_OPT("duty", required_argument, O_DUTY)

static const struct option kc_status_opts[] = {
	CLI_OPTS_VAULT, CLI_OPT_JSON, CLI_OPT_END,
};
static const struct option kc_rewrap_opts[] = {
	CLI_OPTS_VAULT, KC_FROM, KC_BATCH, KC_DUTY, CLI_OPT_END,
};
static const struct option kc_job_opts[] = {	/* rotate-index, shred-epoch */
	CLI_OPTS_VAULT, KC_BATCH, KC_DUTY, CLI_OPT_END,
};
static const struct option kc_retire_opts[] = {
	CLI_OPTS_VAULT, KC_FORCE, CLI_OPT_END,
};
static const struct option kc_destroy_opts[] = {
	CLI_OPTS_VAULT, KC_YES, CLI_OPT_END,
};
static const struct option kc_root_opts[] = {
	CLI_OPTS_VAULT, KC_NEWKEY, KC_NEWPASS, CLI_OPT_END,
};

#define KC_HELP_BATCH \
	"  --batch N        records a transaction (default 1000)\n"
#define KC_HELP_DUTY \
	"  --duty PCT       hold the writer lock at most PCT (1-100) of the time\n"

/* How a kms subcommand starts: see kc_begin. */
struct kc_start {
	const char		*usage;		/* as for cli_parse */
	const char		*help;		/* their lines for --help */
	int			 operands;	/* 0, or 1: a version */
};

/*
 * Parse a kms subcommand's options and open the vault; *v is NULL when the
 * command should return r at once.
 */
static int
kc_begin(int argc, char **argv, const struct kc_start *ks, struct kc_opts *o,
    struct vault **v, int *first)
{
	struct cli_own own = { kc_opt, o, ks->help };
	struct cli_start start = { cli_name(), ks->usage, &own, ks->operands,
	    ks->operands > 0 ? "expected a version" : "unexpected argument" };
	struct cli_common c;
	int r;

	memset(o, 0, sizeof(*o));
	if ((r = cli_begin(&start, argc, argv, &c, first, v)) == CLI_OK &&
	    *v != NULL && o->duty != 0)
		vault_set_duty(*v, o->duty);
	return r;
}

/* Days from t to now, 0 for a time not yet past. */
static uint64_t
age_days(uint64_t t, uint64_t now)
{
	return now > t ? (now - t) / VAULT_DAY : 0;
}

static int
kc_status_json(const struct vault_info *info, uint64_t now)
{
	struct pv_buf b;
	struct pv_json j;
	int r;

	pv_buf_init(&b, (info->nkeys + 1) * 256);
	pv_json_init(&j, &b);
	pv_json_obj(&j);
	pv_json_kstr(&j, "vault_id", info->vault_id);
	pv_json_ku64(&j, "format", info->format);
	pv_json_ku64(&j, "records", info->records);
	pv_json_key(&j, "keys");
	pv_json_arr(&j);
	for (size_t i = 0; i < info->nkeys; i++) {
		const struct vault_key_info *k = &info->keys[i];

		pv_json_obj(&j);
		pv_json_kstr(&j, "kind", vault_key_kind_name(k->kind));
		pv_json_ku64(&j, "version", k->version);
		pv_json_kstr(&j, "state", vault_key_state_name(k->state));
		pv_json_ku64(&j, "created", k->created);
		pv_json_ku64(&j, "age_days", age_days(k->created, now));
		pv_json_ku64(&j, "records", k->wraps_live);
		pv_json_ku64(&j, "wrapped_total", k->wraps_total);
		pv_json_close(&j);
	}
	pv_json_close(&j);
	pv_json_close(&j);
	r = cli_emit_json("kms status", &j);
	pv_buf_cleanup(&b);
	return r;
}

static void
kc_status_table(const struct vault_info *info, uint64_t now)
{
	char when[CLI_TIME_LEN];

	(void)printf("vault %s  format %u  records %llu\n\n"
	    "%-6s %7s  %-12s  %-20s  %6s  %10s  %12s\n", info->vault_id,
	    info->format, (unsigned long long)info->records, "kind",
	    "version", "state", "created", "age(d)", "records", "wrapped");
	for (size_t i = 0; i < info->nkeys; i++) {
		const struct vault_key_info *k = &info->keys[i];
		unsigned long long age = age_days(k->created, now);

		cli_time(when, k->created);
		if (k->kind == VAULT_KEK)
			(void)printf("%-6s %7u  %-12s  %-20s  %6llu  %10llu  "
			    "%12llu\n", vault_key_kind_name(k->kind), k->version,
			    vault_key_state_name(k->state), when, age,
			    (unsigned long long)k->wraps_live,
			    (unsigned long long)k->wraps_total);
		else
			(void)printf("%-6s %7u  %-12s  %-20s  %6llu  %10s  "
			    "%12s\n", vault_key_kind_name(k->kind), k->version,
			    vault_key_state_name(k->state), when, age, "-", "-");
	}
}

static int
kc_status(int argc, char **argv)
{
	const struct cli_start start = { "kms status",
	    "kms status [--json]\n\n"
	    "Shows the vault, and every key version: kind, state, creation\n"
	    "time (RFC 3339, UTC; seconds since the epoch with --json) and\n"
	    "age, and for KEKs how many records each wraps now and how many\n"
	    "DEKs it has wrapped in all (counters, not a scan).\n",
	    NULL, 0, "unexpected argument" };
	struct cli_common c;
	struct vault_info info;
	struct vault *v = NULL;
	uint64_t now = pv_now();
	pv_status rc;
	int r, first;

	if ((r = cli_begin(&start, argc, argv, &c, &first, &v)) != CLI_OK ||
	    v == NULL)
		return r;
	if ((rc = vault_info(v, &info)) != PV_OK) {
		vault_close(v);
		return cli_fail("kms status", NULL, rc);
	}
	r = CLI_OK;
	if (c.json)
		r = kc_status_json(&info, now);
	else
		kc_status_table(&info, now);
	free(info.keys);
	vault_close(v);
	return r;
}

static int
kc_rotate(int argc, char **argv)
{
	static const struct kc_start ks = { "kms rotate\n\nMakes a new KEK "
	    "version active; new records are wrapped under it, and\nevery "
	    "record stays readable.  Run kms rewrap to move old ones.\n",
	    NULL, 0 };
	struct kc_opts o;
	struct vault *v;
	uint32_t newv;
	pv_status rc;
	int r, first;

	if ((r = kc_begin(argc, argv, &ks, &o, &v, &first)) != CLI_OK ||
	    v == NULL)
		return r;
	rc = vault_rotate(v, VAULT_KEK, &newv);
	vault_close(v);
	if (rc != PV_OK)
		return cli_fail("kms rotate", NULL, rc);
	(void)printf("kek %u is active\n", newv);
	return CLI_OK;
}

/* After a job's progress: end the bar's line on a terminal. */
static void
kc_progress_end(const struct cli_progress *p)
{
	if (p->tty)
		(void)fprintf(stderr, "\n");
}

/*
 * The last line of a key job: how many records, in how long.  Rounded as
 * the progress lines are: seconds to the millisecond, the rate whole.
 */
static int
kc_summary(const struct cli_progress *p, uint64_t done)
{
	double secs = (double)(pv_mono_us() - p->t0) / 1e6;
	struct pv_buf b;
	struct pv_json j;
	int r;

	pv_buf_init(&b, 256);
	pv_json_init(&j, &b);
	pv_json_obj(&j);
	pv_json_kstr(&j, "step", p->step);
	pv_json_kbool(&j, "summary", 1);
	pv_json_ku64(&j, "records", done);
	cli_json_fixed(&j, "seconds", secs, 3);
	cli_json_fixed(&j, "records_per_second", secs > 0 ?
	    (double)done / secs : 0.0, 0);
	pv_json_close(&j);
	r = cli_emit_json(p->step, &j);
	pv_buf_cleanup(&b);
	return r;
}

/*
 * A resumable key job over every record, with progress and a summary.
 * fail, if not NULL, says why the job failed with rc (CLI_FAIL), with the
 * vault still open to look at.
 */
typedef pv_status kc_job_fn(struct vault *v, const struct kc_opts *o,
    struct cli_progress *p, uint64_t *done);
typedef int kc_fail_fn(struct vault *v, const struct kc_opts *o,
    pv_status rc);

static int
kc_job(int argc, char **argv, const char *step, const struct kc_start *ks,
    kc_job_fn *job, kc_fail_fn *fail)
{
	struct cli_progress p;
	struct kc_opts o;
	struct vault *v;
	uint64_t done = 0;
	pv_status rc;
	int r, first;

	if ((r = kc_begin(argc, argv, ks, &o, &v, &first)) != CLI_OK ||
	    v == NULL)
		return r;
	cli_progress_init(&p, step);
	rc = job(v, &o, &p, &done);
	kc_progress_end(&p);
	if (rc != PV_OK)
		r = fail != NULL ? fail(v, &o, rc) : cli_fail(cli_name(), NULL,
		    rc);
	vault_close(v);
	return rc != PV_OK ? r : kc_summary(&p, done);
}

static pv_status
kc_rewrap_job(struct vault *v, const struct kc_opts *o,
    struct cli_progress *p, uint64_t *done)
{
	return vault_rewrap(v, o->from, o->batch, cli_progress, p, done);
}

/* The state of KEK version ver, 0 if there is none (or no vault_info). */
static enum vault_key_state
kc_kek_state(struct vault *v, uint32_t ver)
{
	enum vault_key_state st = 0;
	struct vault_info info;

	if (vault_info(v, &info) != PV_OK)
		return 0;
	for (size_t i = 0; i < info.nkeys; i++)
		if (info.keys[i].kind == VAULT_KEK &&
		    info.keys[i].version == ver)
			st = info.keys[i].state;
	free(info.keys);
	return st;
}

/* Why a rewrap failed: --from named no version, or one it cannot move. */
static int
kc_rewrap_fail(struct vault *v, const struct kc_opts *o, pv_status rc)
{
	enum vault_key_state st;

	if (o->from != 0 && rc == PV_ENOTFOUND) {
		(void)fprintf(stderr, "piivault: kms rewrap: --from %u: there "
		    "is no kek version %u (see piivault kms status)\n",
		    o->from, o->from);
		return CLI_FAIL;
	}
	if (o->from != 0 && rc == PV_EKEYSTATE &&
	    ((st = kc_kek_state(v, o->from)) == VAULT_KEY_RETIRED ||
	    st == VAULT_KEY_DESTROYED)) {
		(void)fprintf(stderr, "piivault: kms rewrap: --from %u: kek %u "
		    "is %s; the records under it cannot be re-wrapped\n",
		    o->from, o->from, vault_key_state_name(st));
		return CLI_FAIL;
	}
	if (rc == PV_EKEYSTATE)
		return cli_fail("kms rewrap", "there is no active kek (run kms "
		    "rotate)", rc);
	return cli_fail("kms rewrap", NULL, rc);
}

static int
kc_rewrap(int argc, char **argv)
{
	static const struct kc_start ks = { "kms rewrap [--from V] "
	    "[--batch N] [--duty PCT]\n\n"
	    "Re-wraps the DEKs of records under older KEK versions (only V\n"
	    "with --from) with the active one, N records a transaction\n"
	    "(default 1000), without re-encrypting field data.  A server on\n"
	    "the same vault keeps answering; --duty PCT (1-100) leaves it the\n"
	    "writer lock the rest of the time.  Interrupted, run it again.\n"
	    "V must be a version that may still unwrap (active or\n"
	    "decrypt-only); from the active one there is nothing to move.\n",
	    "  --from V         only records under kek "
	    "version V\n" KC_HELP_BATCH KC_HELP_DUTY, 0 };

	return kc_job(argc, argv, "rewrap", &ks, kc_rewrap_job,
	    kc_rewrap_fail);
}

static int
parse_version(const char *cmd, const char *s, uint32_t *out)
{
	unsigned long long n;
	int r;

	if ((r = cli_number(cmd, "the version", s, 1, UINT32_MAX, &n)) !=
	    CLI_OK)
		return r;
	*out = (uint32_t)n;
	return CLI_OK;
}

static int
kc_retire(int argc, char **argv)
{
	struct kc_opts o;
	struct vault *v;
	uint64_t wrapped = 0;
	uint32_t ver;
	char what[96];
	pv_status rc;
	int r, first;

	static const struct kc_start ks = { "kms retire V [--force]\n\n"
	    "Version V may no longer unwrap.  Refused while records are "
	    "still\nwrapped under it (rewrap them first), unless --force, "
	    "which makes\nthem unreadable until kms unretire V.\n",
	    "  --force          retire it even though it "
	    "still wraps records\n", 1 };

	if ((r = kc_begin(argc, argv, &ks, &o, &v, &first)) != CLI_OK ||
	    v == NULL)
		return r;
	if ((r = parse_version("kms retire", argv[first], &ver)) != CLI_OK) {
		vault_close(v);
		return r;
	}
	rc = vault_key_state(v, VAULT_KEK, ver, VAULT_KEY_RETIRED, o.force, &wrapped);
	vault_close(v);
	if (rc == PV_EBUSY) {
		(void)fprintf(stderr, "piivault: kms retire: kek %u still wraps "
		    "%llu records: run kms rewrap first, or --force\n", ver,
		    (unsigned long long)wrapped);
		return CLI_FAIL;
	}
	(void)snprintf(what, sizeof(what), "kek %u", ver);
	if (rc != PV_OK)
		return cli_fail("kms retire", rc == PV_EKEYSTATE ? "the active "
		    "or a destroyed version cannot be retired" : what, rc);
	(void)printf("kek %u is retired\n", ver);
	return CLI_OK;
}

/* Undo a retirement: the version may unwrap again (decrypt-only). */
static int
kc_unretire(int argc, char **argv)
{
	static const struct kc_start ks = { "kms unretire V\n\n"
	    "Version V, retired, may unwrap again (decrypt-only): the records\n"
	    "still under it are readable, and kms rewrap can move them.\n",
	    NULL, 1 };
	struct kc_opts o;
	struct vault *v;
	uint64_t wrapped = 0;
	uint32_t ver;
	char what[96];
	pv_status rc;
	int r, first;

	if ((r = kc_begin(argc, argv, &ks, &o, &v, &first)) != CLI_OK ||
	    v == NULL)
		return r;
	if ((r = parse_version("kms unretire", argv[first], &ver)) != CLI_OK) {
		vault_close(v);
		return r;
	}
	rc = vault_key_state(v, VAULT_KEK, ver, VAULT_KEY_DECRYPT_ONLY, 0,
	    &wrapped);
	vault_close(v);
	(void)snprintf(what, sizeof(what), "kek %u", ver);
	if (rc != PV_OK)
		return cli_fail("kms unretire", rc == PV_EKEYSTATE ? "only a "
		    "retired version can be unretired" : what, rc);
	(void)printf("kek %u is decrypt-only again\n", ver);
	return CLI_OK;
}

static int
kc_destroy(int argc, char **argv)
{
	struct vault_key_info *k = NULL;
	struct vault_info info;
	struct kc_opts o;
	struct vault *v;
	uint64_t wrapped = 0;
	uint32_t ver;
	char q[160];
	pv_status rc;
	int r, first;

	static const struct kc_start ks = { "kms destroy V [--yes]\n\n"
	    "Incident response: erases the key material of KEK version V "
	    "from\nthe vault.  Records still wrapped under it become "
	    "permanently\nunreadable; the command says how many and asks "
	    "first, unless\n--yes.  The active version can be destroyed too "
	    "(then no record\ncan be written until kms rotate).\n",
	    "  --yes            do not ask\n", 1 };

	if ((r = kc_begin(argc, argv, &ks, &o, &v, &first)) != CLI_OK ||
	    v == NULL)
		return r;
	if ((r = parse_version("kms destroy", argv[first], &ver)) != CLI_OK)
		goto out;
	if ((rc = vault_info(v, &info)) != PV_OK) {
		r = cli_fail("kms destroy", NULL, rc);
		goto out;
	}
	for (size_t i = 0; i < info.nkeys; i++)
		if (info.keys[i].kind == VAULT_KEK &&
		    info.keys[i].version == ver)
			k = &info.keys[i];
	if (k == NULL) {
		free(info.keys);
		r = cli_fail("kms destroy", "no such kek version",
		    PV_ENOTFOUND);
		goto out;
	}
	wrapped = k->wraps_live;
	free(info.keys);
	(void)fprintf(stderr, "piivault: kms destroy: kek %u wraps %llu "
	    "records; they will be unreadable for good\n", ver,
	    (unsigned long long)wrapped);
	(void)snprintf(q, sizeof(q), "destroy kek %u? [y/N] ", ver);
	if (!o.yes && !cli_confirm(q)) {
		(void)fprintf(stderr, "piivault: kms destroy: not confirmed "
		    "(answer y on a terminal, or pass --yes)\n");
		r = CLI_FAIL;
		goto out;
	}
	if ((rc = vault_key_state(v, VAULT_KEK, ver, VAULT_KEY_DESTROYED, 1,
	    &wrapped)) != PV_OK) {
		r = cli_fail("kms destroy", NULL, rc);
		goto out;
	}
	(void)printf("kek %u is destroyed; %llu records under it are "
	    "unreadable\n", ver, (unsigned long long)wrapped);
	r = CLI_OK;
out:
	vault_close(v);
	return r;
}

static int
kc_rotate_root(int argc, char **argv)
{
	struct cli_pass np = { "PIIVAULT_NEW_PASSPHRASE", "new passphrase: ",
	    1 };
	struct vault_unlock nu;
	struct kc_opts o;
	struct vault *v;
	pv_status rc;
	int r, first, made = 0;

	static const struct kc_start ks = { "kms rotate-root --new-key-file "
	    "F | --new-passphrase\n\nRe-wraps the key ring under a new root "
	    "key: a new key file F\n(created, mode 0600, if it does not "
	    "exist), or a passphrase from\nPIIVAULT_NEW_PASSPHRASE or the "
	    "terminal.  The old root no longer\nopens the vault.  Restart "
	    "running servers with the new root.\n", NULL, 0 };

	if ((r = kc_begin(argc, argv, &ks, &o, &v, &first)) != CLI_OK ||
	    v == NULL)
		return r;
	if ((o.new_key_file != NULL && o.new_passphrase) ||
	    (o.new_key_file == NULL && !o.new_passphrase)) {
		vault_close(v);
		return cli_usage("kms rotate-root", "give one of "
		    "--new-key-file and --new-passphrase");
	}
	memset(&nu, 0, sizeof(nu));
	nu.key_file = o.new_key_file;
	nu.use_passphrase = o.new_passphrase;
	nu.passphrase = cli_passphrase;
	nu.arg = &np;
	nu.kdf_memory_kib = cli_kdf_memory_kib();
	if (o.new_key_file != NULL && access(o.new_key_file, F_OK) != 0) {
		if ((rc = vault_key_file_create(o.new_key_file)) != PV_OK) {
			vault_close(v);
			return cli_fail("kms rotate-root", o.new_key_file, rc);
		}
		made = 1;
	}
	rc = vault_rotate_root(v, &nu);
	vault_close(v);
	if (rc != PV_OK) {
		if (made && unlink(o.new_key_file) != 0)
			pv_log(PV_LOG_WARN, "could not remove %s",
			    o.new_key_file);
		return cli_fail("kms rotate-root", rc == PV_EEXIST ? "that is "
		    "the root in use" : o.new_key_file, rc);
	}
	if (o.new_key_file != NULL)
		(void)printf("the root key is now %s; keep the old key file "
		    "only as long as backups made under it\n", o.new_key_file);
	else
		(void)printf("the root key now comes from the new "
		    "passphrase\n");
	return CLI_OK;
}

static pv_status
kc_rotate_index_job(struct vault *v, const struct kc_opts *o,
    struct cli_progress *p, uint64_t *done)
{
	return vault_rotate_index(v, o->batch, cli_progress, p, done);
}

static int
kc_rotate_index(int argc, char **argv)
{
	static const struct kc_start ks = { "kms rotate-index [--batch N] "
	    "[--duty PCT]\n\n"
	    "Makes a new blind-index key and rebuilds the index under it,\n"
	    "online: look-ups search both keys until it ends, then the old\n"
	    "key is destroyed.  Interrupted, run it again.\n",
	    KC_HELP_BATCH KC_HELP_DUTY, 0 };

	return kc_job(argc, argv, "rotate-index", &ks, kc_rotate_index_job,
	    NULL);
}

static int
kc_shred_epoch(int argc, char **argv)
{
	struct cli_progress p;
	struct kc_opts o;
	struct vault *v;
	pv_status rc;
	int r, first;

	static const struct kc_start ks = { "kms shred-epoch [--batch N] "
	    "[--duty PCT]\n\n"
	    "Makes every shred so far final in the vault and in copies made\n"
	    "from now on: rotates the KEK, re-wraps every record to it,\n"
	    "rotates and rebuilds the index, then destroys every older KEK\n"
	    "and index key.  Resumable.  Copies made before it keep their\n"
	    "own KEKs until their root key is rotated away and destroyed.\n",
	    KC_HELP_BATCH KC_HELP_DUTY, 0 };

	if ((r = kc_begin(argc, argv, &ks, &o, &v, &first)) != CLI_OK ||
	    v == NULL)
		return r;
	cli_progress_init(&p, "shred-epoch");
	rc = vault_shred_epoch(v, o.batch, cli_progress, &p);
	vault_close(v);
	kc_progress_end(&p);
	if (rc != PV_OK)
		return cli_fail("kms shred-epoch", NULL, rc);
	(void)printf("shred epoch complete: no key that wrapped a shredded "
	    "record exists any more\n");
	return CLI_OK;
}

static int
kc_public_key(int argc, char **argv)
{
	struct vault_signing_key *keys = NULL;
	struct kc_opts o;
	struct vault *v;
	struct pv_buf b;
	struct pv_json j;
	size_t n = 0;
	pv_status rc;
	int r, first;

	static const struct kc_start ks = { "kms public-key\n\nPrints the "
	    "public keys that check shred receipts, one JSON line\na version, "
	    "as GET /v1/keys/signing lists them: {\"version\":N,\n"
	    "\"public_key\":\"pvpub_...\",\"state\":\"active\"|"
	    "\"verify_only\"}.  A receipt names\nthe version that signed "
	    "it.\n", NULL, 0 };

	if ((r = kc_begin(argc, argv, &ks, &o, &v, &first)) != CLI_OK ||
	    v == NULL)
		return r;
	rc = vault_signing_keys(v, &keys, &n);
	vault_close(v);
	if (rc != PV_OK)
		return cli_fail("kms public-key", NULL, rc);
	for (size_t i = 0; i < n && r == CLI_OK; i++) {
		pv_buf_init(&b, 256);
		pv_json_init(&j, &b);
		api_json_signing_key(&j, &keys[i]);
		r = cli_emit_json("kms public-key", &j);
		pv_buf_cleanup(&b);
	}
	free(keys);
	return r;
}

static int
kc_rotate_signing(int argc, char **argv)
{
	struct kc_opts o;
	struct vault *v;
	uint32_t newv;
	pv_status rc;
	int r, first;

	static const struct kc_start ks = { "kms rotate-signing\n\nMakes a "
	    "new receipt-signing key active and destroys the private\nkey of "
	    "the one before; its public key stays listed (verify_only),\nso "
	    "receipts it signed still verify.  Running servers sign with the\n"
	    "new key from their next transaction.\n", NULL, 0 };

	if ((r = kc_begin(argc, argv, &ks, &o, &v, &first)) != CLI_OK ||
	    v == NULL)
		return r;
	rc = vault_rotate(v, VAULT_SIGN, &newv);
	vault_close(v);
	if (rc != PV_OK)
		return cli_fail("kms rotate-signing", NULL, rc);
	(void)printf("signing key %u is active\n", newv);
	return CLI_OK;
}

const struct cli_cmd cli_kms_cmds[] = {
	{ "status", kc_status, "every key version, its state and use",
	    kc_status_opts, NULL },
	{ "rotate", kc_rotate, "make a new KEK version active",
	    cli_opts_vault, NULL },
	{ "rewrap", kc_rewrap, "re-wrap old records' DEKs to the active "
	    "KEK", kc_rewrap_opts, NULL },
	{ "retire", kc_retire, "forbid a KEK version to unwrap",
	    kc_retire_opts, NULL },
	{ "unretire", kc_unretire, "let a retired KEK version unwrap "
	    "again", cli_opts_vault, NULL },
	{ "destroy", kc_destroy, "erase a KEK version (incident "
	    "response)", kc_destroy_opts, NULL },
	{ "rotate-root", kc_rotate_root, "re-wrap the ring under a new "
	    "root key", kc_root_opts, NULL },
	{ "rotate-index", kc_rotate_index, "new blind-index key, index "
	    "rebuilt online", kc_job_opts, NULL },
	{ "shred-epoch", kc_shred_epoch, "make past shreds final in "
	    "backups too", kc_job_opts, NULL },
	{ "rotate-signing", kc_rotate_signing, "new receipt-signing key; "
	    "older ones only verify", cli_opts_vault, NULL },
	{ "public-key", kc_public_key, "the keys that check receipts",
	    cli_opts_vault, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};
