/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_backup.c: piivault backup --to FILE, and backup verify FILE.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

enum { O_TO = CLI_OPT_OWN, O_PUBKEY, O_DEEP };

/* backup verify's own options. */
struct verify_args {
	struct cli_keyset	ks;
	int			deep;
};

unsigned long long cli_test_backup_kill;

static int
backup_opt(void *arg, int ch, const char *val)
{
	if (ch == O_TO)
		*(const char **)arg = val;
	return CLI_OK;
}

/* Progress on a terminal only: a backup's stdout is its summary. */
static void
tty_progress(void *arg, const struct vault_progress *p)
{
	struct cli_progress *cp = arg;

	if (cli_test_backup_kill != 0)
		(void)raise(SIGKILL);
	if (cp->tty)
		cli_progress(cp, p);
}

int
cmd_backup(int argc, char **argv)
{
	const char *to = NULL;
	struct cli_own own = { backup_opt, &to,
	    "  --to FILE             write the backup to FILE (which must "
	    "not exist)\n" };
	struct vault_backup_info m;
	struct cli_progress cp;
	struct cli_common c;
	struct vault *v;
	char when[CLI_TIME_LEN];
	double secs;
	pv_status rc;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "backup --to FILE\n"
	    "       piivault backup verify FILE [--public-key [V=]KEY]...\n\n"
	    "Writes one file: a compacting copy of the data taken in one read\n"
	    "transaction while the server runs (no freed pages, so no bytes of\n"
	    "records shredded before), and a manifest signed with the vault's\n"
	    "signing key.  It is written under a temporary name, synced, then\n"
	    "renamed.  It never holds the root key: keep the root key file (or\n"
	    "passphrase) apart from the backups.\n\n"
	    "subcommands:\n"
	    "  verify         check a backup's digests and signature\n",
	    &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("backup", "unexpected argument");
	if (to == NULL)
		return cli_usage("backup", "expected --to FILE");
	if ((r = cli_open(&c, "backup", &v)) != CLI_OK)
		return r;
	cli_progress_init(&cp, "backup");
	rc = vault_backup(v, to, tty_progress, &cp, &m);
	vault_close(v);
	if (cp.tty)
		(void)fprintf(stderr, "\n");
	if (rc != PV_OK)
		return cli_fail("backup", to, rc);
	secs = (double)(pv_mono_us() - cp.t0) / 1e6;
	cli_time(when, m.created);
	(void)printf("backup %s: vault %s at %s\n"
	    "%llu bytes, %llu records, audit seq %llu, signing key version %u, "
	    "%.3f seconds\n"
	    "the backup does not hold the root key: keep the root key file or "
	    "passphrase apart\nfrom it (another machine or a safe), or the "
	    "backup cannot be opened\n", to, m.vault_id, when,
	    (unsigned long long)m.data_len, (unsigned long long)m.records,
	    (unsigned long long)m.audit_seq, m.sign_version, secs);
	return CLI_OK;
}

static int
verify_opt(void *arg, int ch, const char *val)
{
	struct verify_args *a = arg;

	if (ch == O_DEEP) {
		a->deep = 1;
		return CLI_OK;
	}
	if (ch != O_PUBKEY)
		return CLI_OK;
	return cli_keyset_add(&a->ks, "backup verify", val);
}

/*
 * --deep: the backup's data, copied into a private temporary directory
 * (removed after), opened with the root key; every record's DEK and
 * field authenticated, and the audit chain.  Counts only: no value.
 */
static int
deep_check(const struct cli_common *c, const char *path,
    const struct vault_backup_file *f)
{
	struct vault_opts vo;
	struct vault_check ck;
	struct vault *v = NULL;
	const char *tmpdir = getenv("TMPDIR");
	char dir[4096];
	uint64_t count = 0, bad = 0;
	pv_status rc;
	int n, r = CLI_FAIL;

	if (tmpdir == NULL || *tmpdir == '\0')
		tmpdir = "/tmp";
	n = snprintf(dir, sizeof(dir), "%s/piivault-deep-XXXXXX", tmpdir);
	if (n < 0 || (size_t)n >= sizeof(dir) || mkdtemp(dir) == NULL)
		return cli_fail("backup verify", "temporary directory",
		    PV_EIO);
	if ((rc = vault_backup_extract(path, f, dir)) != PV_OK) {
		(void)cli_fail("backup verify", "data", rc);
		goto out;
	}
	cli_vault_opts(c, &vo);
	vo.data_dir = dir;
	if ((rc = vault_open(&vo, &v)) != PV_OK) {
		(void)cli_fail("backup verify", "open the backup's vault", rc);
		goto out;
	}
	rc = vault_check_records(v, &ck);
	if (rc != PV_OK) {
		(void)fprintf(stderr, "piivault: backup verify: %s: records "
		    "fail: %s after %llu records\n", path, pv_strerror(rc),
		    (unsigned long long)(ck.records + ck.tombstones));
		goto out;
	}
	(void)printf("deep: %llu records opened (%llu fields authenticated), "
	    "%llu shredded, %llu under a retired or destroyed KEK\n",
	    (unsigned long long)ck.records, (unsigned long long)ck.fields,
	    (unsigned long long)ck.tombstones, (unsigned long long)ck.locked);
	if ((rc = vault_audit_verify(v, &count, &bad, NULL)) != PV_OK) {
		(void)fprintf(stderr, "piivault: backup verify: %s: audit chain "
		    "fails at seq %llu: %s\n", path, (unsigned long long)bad,
		    pv_strerror(rc));
		goto out;
	}
	(void)printf("deep: audit chain verified: %llu events\n",
	    (unsigned long long)count);
	r = CLI_OK;
out:
	vault_close(v);
	vault_backup_scratch_remove(dir);
	return r;
}

static pv_status
backup_check(const void *arg, const uint8_t pub[static PV_ED25519_LEN])
{
	return vault_backup_verify(arg, pub);
}

static int
backup_verify(int argc, char **argv)
{
	struct verify_args a;
	struct cli_own own = { verify_opt, &a,
	    "  --public-key [V=]KEY  a key from GET /v1/keys/signing or "
	    "kms public-key,\n"
	    "                        for signing key version V (or any); "
	    "repeatable\n"
	    "  --deep                also open the data with the root key "
	    "(--key-file,\n"
	    "                        or the passphrase) in a temporary "
	    "directory\n" };
	struct vault_backup_file *f = NULL;
	struct cli_progress cp;
	struct cli_common c;
	const char *failed;
	pv_status rc;
	int r, first;

	memset(&a, 0, sizeof(a));
	if ((r = cli_parse(argc, argv, &c, &first, "backup verify FILE "
	    "[--public-key [V=]KEY]...\n\nChecks a backup without the root "
	    "key: its header, the digests of its\nmanifest, signature and "
	    "data, and its length; then, given the public\nkey of the "
	    "signing key version it names, its signature.  Without one,\nit "
	    "says \"signature not anchored\": anyone could have made the "
	    "file.\nWith --deep, it also copies the data into a private temporary "
	    "directory\n($TMPDIR or /tmp, removed after), opens it with the "
	    "root key, opens\nevery record's DEK and authenticates every field "
	    "(printing counts, no\nvalue), and verifies the audit chain.\n",
	    &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (argc - first != 1)
		return cli_usage("backup verify", "expected FILE");
	cli_progress_init(&cp, "backup verify");
	rc = vault_backup_read(argv[first], tty_progress, &cp, &f, &failed);
	if (cp.tty)
		(void)fprintf(stderr, "\n");
	if (rc != PV_OK) {
		if (failed == NULL)
			return cli_fail("backup verify", argv[first], rc);
		(void)fprintf(stderr, "piivault: backup verify: %s: %s fails: "
		    "%s\n", argv[first], failed, rc == PV_EFORMAT ?
		    "not a backup, or a version this piivault does not read" :
		    strcmp(failed, "length") == 0 ? "the file is truncated or "
		    "extended" : "its digest does not match");
		return CLI_FAIL;
	}
	r = CLI_OK;
	(void)printf("%s\n", f->manifest);
	if (a.ks.n == 0)
		(void)printf("digests ok, signature not anchored (give "
		    "--public-key to check it)\n");
	else if ((rc = cli_keyset_check(&a.ks, f->info.sign_version,
	    backup_check, f)) == PV_OK)
		(void)printf("ok: digests and signature (signing key version "
		    "%u)\n", f->info.sign_version);
	else {
		(void)fprintf(stderr, "piivault: backup verify: %s: signature "
		    "fails: %s %u\n", argv[first], rc == PV_ENOTFOUND ?
		    "no public key for signing key version" : "it does not "
		    "verify with signing key version", f->info.sign_version);
		r = CLI_FAIL;
	}
	if (r == CLI_OK && a.deep)
		r = deep_check(&c, argv[first], f);
	vault_backup_file_free(f);
	return r;
}

const struct option cli_backup_opts[] = {
	CLI_OPTS_VAULT,
	{ "to", required_argument, NULL, O_TO | CLI_OPT_ONCE },
	CLI_OPT_END,
};

static const struct option backup_verify_opts[] = {
	/* The key file is read only with --deep. */
	CLI_OPT_KEY_FILE,
	CLI_OPT_CONFIG,
	{ "deep", no_argument, NULL, O_DEEP | CLI_OPT_ONCE },
	{ "public-key", required_argument, NULL,
	    O_PUBKEY | CLI_OPT_REPEAT | CLI_OPT_ONCE },
	CLI_OPT_END,
};

const struct cli_cmd cli_backup_cmds[] = {
	{ "verify", backup_verify, "check a backup's digests and signature",
	    backup_verify_opts, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

