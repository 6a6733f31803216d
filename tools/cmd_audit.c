/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_audit.c: piivault audit SUBCOMMAND: the audit chain, its export and
 * its archives.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_int.h"

enum { O_AFTER = CLI_OPT_OWN, O_ARCHIVE, O_PUBKEY, O_BEFORE, O_TO };

unsigned long long cli_test_archive_batch;
unsigned long long cli_test_archive_kill;

/* Events removed a commit: bounded, so that a server keeps its turns. */
#define ARCHIVE_BATCH		1000
/* The longest line an archive may have: an event is at most ~150 KB. */
#define ARCHIVE_LINE_MAX	(4u << 20)
/* What an event line ends with in an archive: its chain hash. */
#define LINE_HASH_KEY		",\"line_hash\":\""
#define LINE_HASH_SUFFIX	(sizeof(LINE_HASH_KEY) - 1 + \
				 2 * PV_HMAC_LEN + 2)

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

/* What audit verify was given. */
struct verify_args {
	const char		*archive;
	struct cli_keyset	 ks;
};

static int
verify_opt(void *arg, int ch, const char *val)
{
	struct verify_args *a = arg;

	if (ch == O_ARCHIVE)
		a->archive = val;
	else if (ch == O_PUBKEY)
		return cli_keyset_add(&a->ks, "audit verify", val);
	return CLI_OK;
}

/* An archive's signature check, for cli_keyset_check. */
struct archive_sig {
	const struct vault_archive_head	*h;
	const uint8_t			*hash;
	const uint8_t			*sig;
};

static pv_status
archive_check(const void *arg, const uint8_t pub[static PV_ED25519_LEN])
{
	const struct archive_sig *s = arg;

	return vault_archive_verify(s->h, s->hash, s->sig, pub);
}

/* "piivault: audit verify: FILE: line N: what", CLI_FAIL. */
static int
bad_line(const char *file, uint64_t line, const char *what)
{
	(void)fprintf(stderr, "piivault: audit verify: %s: line %llu: %s\n",
	    file, (unsigned long long)line, what);
	return CLI_FAIL;
}

/*
 * Check the archive in f line by line: its header, each event's place and
 * line hash, its end and its signature, with the keys given (ks) or the
 * vault's (vk, and its id, which the archive must name).
 */
static int
verify_file(const char *file, FILE *f, const struct cli_keyset *ks,
    const struct vault_signing_key *vk, size_t nvk, const char *vault_id)
{
	struct vault_archive_head h;
	struct archive_sig as;
	uint8_t c[PV_HMAC_LEN], hash[PV_HMAC_LEN], sig[PV_ED25519_SIG_LEN];
	char err[API_ERR_MAX], what[API_ERR_MAX + 96], hx[2 * PV_HMAC_LEN + 1];
	char when[CLI_TIME_LEN], *line = NULL;
	uint64_t lineno = 0, want = 0, seq, t, events;
	size_t cap = 0, len;
	ssize_t got;
	int r = CLI_FAIL, ended = 0;
	pv_status rc;

	while ((got = getline(&line, &cap, f)) >= 0) {
		lineno++;
		len = strcspn(line, "\r\n");
		if ((size_t)got > ARCHIVE_LINE_MAX) {
			r = bad_line(file, lineno, "longer than any archive "
			    "line");
			goto out;
		}
		if (ended) {
			r = bad_line(file, lineno, "text after the archive's "
			    "end");
			goto out;
		}
		if (lineno == 1) {
			if (api_archive_head_parse(line, len, &h, err) !=
			    PV_OK) {
				(void)snprintf(what, sizeof(what), "not an "
				    "audit archive's header: %s", err);
				r = bad_line(file, lineno, what);
				goto out;
			}
			if (vault_id != NULL && strcmp(vault_id, h.vault_id) !=
			    0) {
				r = bad_line(file, lineno, "an archive of "
				    "another vault");
				goto out;
			}
			if (vault_archive_line_hash(c, NULL, line, len) !=
			    PV_OK)
				goto crypto;
			want = h.first;
			continue;
		}
		if (strncmp(line, "{\"archive_end\"", 14) == 0) {
			if (api_archive_end_parse(line, len, &events, hash,
			    sig, err) != PV_OK) {
				r = bad_line(file, lineno, err);
				goto out;
			}
			ended = 1;
			continue;
		}
		/* An event: the export's line, then its line hash. */
		if (len < LINE_HASH_SUFFIX + 2 || strncmp(line + len -
		    LINE_HASH_SUFFIX, LINE_HASH_KEY, sizeof(LINE_HASH_KEY) -
		    1) != 0 || line[len - 2] != '"' || line[len - 1] != '}') {
			r = bad_line(file, lineno, "not an archived event (no "
			    "line_hash at its end)");
			goto out;
		}
		memcpy(hx, line + len - 2 - 2 * PV_HMAC_LEN, 2 * PV_HMAC_LEN);
		hx[2 * PV_HMAC_LEN] = '\0';
		len -= LINE_HASH_SUFFIX;
		line[len++] = '}';
		if (api_archive_event_parse(line, len, &seq, &t, err) !=
		    PV_OK) {
			r = bad_line(file, lineno, err);
			goto out;
		}
		if (seq != want) {
			(void)snprintf(what, sizeof(what), "event %llu where "
			    "%llu was due (an event was removed, added or "
			    "moved)", (unsigned long long)seq,
			    (unsigned long long)want);
			r = bad_line(file, lineno, what);
			goto out;
		}
		if (seq > h.last || t >= h.before) {
			r = bad_line(file, lineno, "an event the header does "
			    "not cover");
			goto out;
		}
		if (vault_archive_line_hash(c, c, line, len) != PV_OK)
			goto crypto;
		pv_hex_encode(what, c, PV_HMAC_LEN);
		if (strcmp(what, hx) != 0) {
			r = bad_line(file, lineno, "edited: its line_hash does "
			    "not match");
			goto out;
		}
		want++;
	}
	if (ferror(f)) {
		r = cli_fail("audit verify", file, PV_EIO);
		goto out;
	}
	if (lineno == 0) {
		r = bad_line(file, 1, "empty: not an audit archive");
		goto out;
	}
	if (!ended || want != h.last + 1 || events != h.count) {
		r = bad_line(file, lineno + (ended ? 0 : 1), !ended ? "the "
		    "archive ends without its signature (cut short)" :
		    "the archive ends before its last event (cut short)");
		goto out;
	}
	if (!pv_ct_eq(c, hash, PV_HMAC_LEN)) {
		r = bad_line(file, lineno, "the archive's hash does not match "
		    "its lines (edited)");
		goto out;
	}
	as = (struct archive_sig){ &h, hash, sig };
	rc = cli_keyset_check(ks, h.sign_version, archive_check, &as);
	for (size_t i = 0; rc != PV_OK && i < nvk; i++)
		if (vk[i].version == h.sign_version)
			rc = archive_check(&as, vk[i].pub);
	if (rc != PV_OK) {
		(void)snprintf(what, sizeof(what), "%s %u", rc ==
		    PV_ENOTFOUND ? "no public key for signing key version" :
		    "the signature does not verify with signing key version",
		    h.sign_version);
		r = bad_line(file, lineno, what);
		goto out;
	}
	cli_time(when, h.before);
	(void)printf("archive verified: %llu events (seq %llu to %llu) older "
	    "than %s, signed by signing key version %u\n",
	    (unsigned long long)h.count, (unsigned long long)h.first,
	    (unsigned long long)h.last, when, h.sign_version);
	r = CLI_OK;
	goto out;
crypto:
	r = cli_fail("audit verify", NULL, PV_ECRYPTO);
out:
	free(line);
	return r;
}

/* audit verify --archive FILE: the file, with keys given or the vault's. */
static int
verify_archive(const struct cli_common *c, const struct verify_args *a)
{
	struct vault_signing_key *vk = NULL;
	struct vault_info info;
	struct vault *v = NULL;
	char id[2 * VAULT_VAULT_ID_LEN + 1];
	size_t nvk = 0;
	FILE *f;
	pv_status rc;
	int r;

	if (a->ks.n == 0) {
		if ((r = cli_open(c, "audit verify", &v)) != CLI_OK)
			return r;
		if ((rc = vault_signing_keys(v, &vk, &nvk)) == PV_OK &&
		    (rc = vault_info(v, &info)) == PV_OK) {
			memcpy(id, info.vault_id, sizeof(id));
			free(info.keys);
		}
		vault_close(v);
		if (rc != PV_OK) {
			free(vk);
			return cli_fail("audit verify", NULL, rc);
		}
	}
	if ((f = fopen(a->archive, "r")) == NULL) {
		free(vk);
		return cli_fail("audit verify", a->archive, PV_EIO);
	}
	r = verify_file(a->archive, f, &a->ks, vk, nvk, a->ks.n == 0 ? id :
	    NULL);
	(void)fclose(f);
	free(vk);
	return r;
}

static int
audit_verify(int argc, char **argv)
{
	struct verify_args a;
	struct cli_own own = { verify_opt, &a,
	    "  --archive FILE        check an archive audit archive wrote\n"
	    "  --public-key [V=]KEY  with --archive: a key from GET "
	    "/v1/keys/signing or\n"
	    "                        kms public-key, for version V (or "
	    "any); no vault\n"
	    "                        is opened; repeatable\n" };
	const char *usage = "audit verify [--archive FILE [--public-key "
	    "[V=]KEY]...]\n\n"
	    "Checks the whole audit chain, from the checkpoint the last archive\n"
	    "left if there is one.  Exits 0 with the number of events, or 1\n"
	    "naming the first sequence number that does not verify (an edited,\n"
	    "deleted, reordered or inserted event) or a checkpoint that does\n"
	    "not.  With --archive, checks that archive file instead: every\n"
	    "line, and its signature, naming the first line that is wrong.\n";
	struct vault_audit_checkpoint ck;
	struct cli_common c;
	struct vault *v = NULL;
	char when[CLI_TIME_LEN];
	uint64_t count = 0, bad = 0;
	pv_status rc;
	int r, first;

	memset(&a, 0, sizeof(a));
	if ((r = cli_parse(argc, argv, &c, &first, usage, &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (argc - first != 0)
		return cli_usage("audit verify", "unexpected argument");
	if (a.ks.n > 0 && a.archive == NULL)
		return cli_usage("audit verify", "--public-key needs "
		    "--archive");
	if (a.archive != NULL)
		return verify_archive(&c, &a);
	if ((r = cli_open(&c, "audit verify", &v)) != CLI_OK)
		return r;
	rc = vault_audit_verify(v, &count, &bad, &ck);
	vault_close(v);
	if (rc == PV_EINTEGRITY && bad == 0) {
		(void)fprintf(stderr, "piivault: audit verify: the audit "
		    "checkpoint does not verify (forged or moved)\n");
		return CLI_FAIL;
	}
	if (rc == PV_EINTEGRITY) {
		(void)fprintf(stderr, "piivault: audit verify: event %llu does "
		    "not verify (%llu events before it do)\n",
		    (unsigned long long)bad, (unsigned long long)count);
		return CLI_FAIL;
	}
	if (rc != PV_OK)
		return cli_fail("audit verify", NULL, rc);
	if (ck.seq == 0) {
		(void)printf("audit chain verified: %llu events\n",
		    (unsigned long long)count);
		return CLI_OK;
	}
	cli_time(when, ck.before);
	(void)printf("audit chain verified: %llu events from checkpoint at "
	    "seq %llu (archived %llu events before %s)\n",
	    (unsigned long long)count, (unsigned long long)ck.seq,
	    (unsigned long long)ck.archived, when);
	return CLI_OK;
}

static int
audit_export(int argc, char **argv)
{
	uint64_t after = 0, end = VAULT_AUDIT_END_NONE, last = 0, archived;
	struct cli_own own = { audit_opt, &after,
	    "  --after SEQ      only events after SEQ\n" };
	struct vault_audit_entry *e = NULL;
	const struct cli_start start = { "audit export",
	    "audit export [--after SEQ]\n\n"
	    "Writes the audit log as JSON lines, each event checked against the\n"
	    "chain as it is read, up to the newest event when it starts (events\n"
	    "written meanwhile are for the next export).  Keep a copy elsewhere:\n"
	    "it anchors the log.  Events archived (audit archive) are in their\n"
	    "archives: the export starts after them.\n",
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
		    &n, &last, &archived)) != PV_OK)
			break;
		if (end == VAULT_AUDIT_END_NONE)
			end = last;
		if (after < archived)
			after = archived;
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

/* What audit archive was given. */
struct archive_args {
	const char	*to;
	const char	*date;
	uint64_t	 before;
	int		 bad;
};

/*
 * A date for --before: "2026-01-01" (UTC midnight) or RFC 3339 in UTC,
 * "2026-01-01T00:00:00Z"; 0 for anything else.
 */
static uint64_t
parse_date(const char *s)
{
	static const char form[] = "dddd-dd-ddTdd:dd:ddZ";
	size_t len = strlen(s);
	struct tm tm, back;
	int f[6] = { 0 }, k = 0;
	time_t t;

	if (len != 10 && len != sizeof(form) - 1)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (form[i] == 'd') {
			if (s[i] < '0' || s[i] > '9')
				return 0;
			f[k] = f[k] * 10 + (s[i] - '0');
		} else if (s[i] != form[i])
			return 0;
		else
			k++;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = f[0] - 1900;
	tm.tm_mon = f[1] - 1;
	tm.tm_mday = f[2];
	tm.tm_hour = f[3];
	tm.tm_min = f[4];
	tm.tm_sec = f[5];
	/* timegm normalizes (February 30th): only a date that is one. */
	if ((t = timegm(&tm)) <= 0 || gmtime_r(&t, &back) == NULL ||
	    back.tm_mday != f[2] || back.tm_mon != f[1] - 1 ||
	    back.tm_hour != f[3] || back.tm_min != f[4] || back.tm_sec != f[5])
		return 0;
	return (uint64_t)t;
}

static int
archive_opt(void *arg, int ch, const char *val)
{
	struct archive_args *a = arg;

	if (ch == O_TO)
		a->to = val;
	else if (ch == O_BEFORE) {
		a->date = val;
		a->before = parse_date(val);
	}
	return CLI_OK;
}

/* Write len bytes to f: PV_OK or PV_EIO. */
static pv_status
put(FILE *f, const char *p, size_t len)
{
	return fwrite(p, 1, len, f) == len ? PV_OK : PV_EIO;
}

/*
 * Write the archive of h to f: the header, every event with its line
 * hash, and the signed end; *hash the last line hash.
 */
static pv_status
write_archive(struct vault *v, FILE *f, const struct vault_archive_head *h,
    uint8_t hash[static PV_HMAC_LEN])
{
	struct vault_audit_entry *e = NULL;
	uint8_t c[PV_HMAC_LEN], sig[PV_ED25519_SIG_LEN];
	char hx[2 * PV_HMAC_LEN + 1];
	uint64_t after = h->first - 1, last, archived;
	struct pv_buf b;
	struct pv_json j;
	size_t n = 0;
	pv_status rc;

	pv_buf_init(&b, 1u << 20);
	pv_json_init(&j, &b);
	api_json_archive_head(&j, h);
	if ((rc = pv_json_end(&j)) != PV_OK ||
	    (rc = vault_archive_line_hash(c, NULL, b.p, b.len)) != PV_OK ||
	    (rc = put(f, b.p, b.len)) != PV_OK || (rc = put(f, "\n", 1)) !=
	    PV_OK)
		goto out;
	while (after < h->last) {
		if ((rc = vault_audit_read(v, after, h->last, VAULT_BATCH_MAX,
		    &e, &n, &last, &archived)) != PV_OK)
			goto out;
		/* Another archive since the plan: this one is void. */
		if (archived != h->first - 1) {
			rc = PV_EBUSY;
			goto out;
		}
		if (n == 0) {
			rc = PV_EINTEGRITY;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			pv_buf_cleanup(&b);
			pv_json_init(&j, &b);
			api_json_event(&j, &e[i]);
			if ((rc = pv_json_end(&j)) != PV_OK)
				goto out;
			if (e[i].seq != after + 1 || e[i].time >= h->before) {
				rc = PV_EINTEGRITY;
				goto out;
			}
			if ((rc = vault_archive_line_hash(c, c, b.p, b.len)) !=
			    PV_OK)
				goto out;
			pv_hex_encode(hx, c, PV_HMAC_LEN);
			if ((rc = put(f, b.p, b.len - 1)) != PV_OK ||
			    (rc = put(f, LINE_HASH_KEY,
			    sizeof(LINE_HASH_KEY) - 1)) != PV_OK ||
			    (rc = put(f, hx, strlen(hx))) != PV_OK ||
			    (rc = put(f, "\"}\n", 3)) != PV_OK)
				goto out;
			after = e[i].seq;
		}
		vault_audit_entries_free(e, n);
		e = NULL;
		n = 0;
	}
	if ((rc = vault_archive_sign(v, h, c, sig)) != PV_OK)
		goto out;
	pv_buf_cleanup(&b);
	pv_json_init(&j, &b);
	api_json_archive_end(&j, h->count, c, sig);
	if ((rc = pv_json_end(&j)) != PV_OK || (rc = put(f, b.p, b.len)) !=
	    PV_OK || (rc = put(f, "\n", 1)) != PV_OK)
		goto out;
	memcpy(hash, c, PV_HMAC_LEN);
out:
	vault_audit_entries_free(e, n);
	pv_buf_cleanup(&b);
	return rc;
}

/* Sync the directory that holds path, so that a new name in it lasts. */
static pv_status
sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	int fd;
	pv_status rc = PV_OK;

	if (slash == NULL)
		memcpy(dir, ".", 2);
	else if ((size_t)(slash - path) >= sizeof(dir))
		return PV_EIO;
	else if (slash == path)
		memcpy(dir, "/", 2);
	else {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return PV_EIO;
	if (fsync(fd) != 0)
		rc = PV_EIO;
	(void)close(fd);
	return rc;
}

/*
 * Make the archive file: written to a temporary file beside path (mode
 * 0600), synced, then linked to path, which must not exist.
 */
static int
make_file(struct vault *v, const char *path, const struct vault_archive_head *h,
    uint8_t hash[static PV_HMAC_LEN])
{
	char tmp[4096];
	FILE *f = NULL;
	int fd, r = CLI_FAIL;
	pv_status rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.partial-XXXXXX", path) >=
	    sizeof(tmp))
		return cli_fail("audit archive", "--to", PV_ETOOBIG);
	if ((fd = mkstemp(tmp)) < 0)
		return cli_fail("audit archive", path, PV_EIO);
	if (fchmod(fd, 0600) != 0 || (f = fdopen(fd, "w")) == NULL) {
		(void)close(fd);
		(void)unlink(tmp);
		return cli_fail("audit archive", path, PV_EIO);
	}
	rc = write_archive(v, f, h, hash);
	if (rc == PV_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		rc = PV_EIO;
	if (fclose(f) != 0 && rc == PV_OK)
		rc = PV_EIO;
	if (rc == PV_OK && link(tmp, path) != 0) {
		(void)unlink(tmp);
		if (errno == EEXIST)
			return cli_fail("audit archive", path, PV_EEXIST);
		return cli_fail("audit archive", path, PV_EIO);
	}
	(void)unlink(tmp);
	if (rc == PV_OK)
		rc = sync_dir(path);
	if (rc == PV_EINTEGRITY)
		r = cli_fail("audit archive", "the chain does not verify (run "
		    "audit verify)", rc);
	else if (rc == PV_EBUSY)
		r = cli_fail("audit archive", "another archive ran meanwhile",
		    rc);
	else if (rc == PV_EKEYSTATE)
		r = cli_fail("audit archive", "the signing key was rotated "
		    "meanwhile; run it again", rc);
	else if (rc != PV_OK)
		r = cli_fail("audit archive", path, rc);
	else
		r = CLI_OK;
	return r;
}

/* Remove what the checkpoint covers, a commit at a time. */
static pv_status
prune(struct vault *v, size_t batch, uint64_t *commits, uint64_t *total)
{
	uint64_t removed;
	pv_status rc;

	do {
		if (cli_test_archive_kill != 0 &&
		    *commits >= cli_test_archive_kill)
			(void)raise(SIGKILL);
		if ((rc = vault_audit_archive_prune(v, batch, &removed)) !=
		    PV_OK)
			return rc;
		*total += removed;
		if (removed > 0)
			(*commits)++;
	} while (removed > 0);
	return PV_OK;
}

static int
audit_archive(int argc, char **argv)
{
	struct archive_args a = { NULL, NULL, 0, 0 };
	struct cli_own own = { archive_opt, &a,
	    "  --before DATE    archive the events older than DATE: 2026-01-01\n"
	    "                   (UTC midnight) or 2026-01-01T00:00:00Z\n"
	    "  --to FILE        the archive to write; never overwritten\n" };
	const char *usage = "audit archive --before DATE --to FILE\n\n"
	    "Moves the audit events older than DATE out of the vault: writes\n"
	    "them to FILE (JSON lines, as audit export prints them, signed with\n"
	    "the vault's signing key; mode 0600; check it with audit verify\n"
	    "--archive FILE), then removes them from the vault, leaving a\n"
	    "signed checkpoint from which the rest of the chain verifies.\n"
	    "Interrupted, run it again: it finishes the removal first.\n";
	struct vault_archive_head h;
	struct cli_common c;
	struct vault *v = NULL;
	struct stat st;
	uint8_t hash[PV_HMAC_LEN];
	char when[CLI_TIME_LEN];
	uint64_t commits = 0, removed = 0, left = 0;
	size_t batch = cli_test_archive_batch ?
	    (size_t)cli_test_archive_batch : ARCHIVE_BATCH;
	pv_status rc;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, usage, &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (argc - first != 0)
		return cli_usage("audit archive", "unexpected argument");
	if (a.date == NULL || a.to == NULL)
		return cli_usage("audit archive", "--before and --to are "
		    "required");
	if (a.before == 0)
		return cli_usage("audit archive", "--before must be a date, "
		    "2026-01-01 or 2026-01-01T00:00:00Z");
	if (a.before > pv_now())
		return cli_usage("audit archive", "--before is in the future");
	if (lstat(a.to, &st) == 0)
		return cli_fail("audit archive", a.to, PV_EEXIST);
	if ((r = cli_open(&c, "audit archive", &v)) != CLI_OK)
		return r;
	/* An archive interrupted before: finish its removal first. */
	if ((rc = prune(v, batch, &commits, &left)) != PV_OK) {
		r = cli_fail("audit archive", "removing archived events", rc);
		goto out;
	}
	if (left > 0)
		(void)printf("removed %llu archived events an interrupted "
		    "archive left\n", (unsigned long long)left);
	cli_time(when, a.before);
	if ((rc = vault_audit_archive_plan(v, a.before, &h)) == PV_ENOTFOUND) {
		(void)printf("no events before %s to archive\n", when);
		r = CLI_OK;
		goto out;
	}
	if (rc != PV_OK) {
		r = cli_fail("audit archive", rc == PV_EINTEGRITY ? "the audit "
		    "checkpoint does not verify" : NULL, rc);
		goto out;
	}
	if ((r = make_file(v, a.to, &h, hash)) != CLI_OK)
		goto out;
	/* The archive is durable: now the checkpoint, then the removal. */
	if ((rc = vault_audit_archive_commit(v, &h, hash, batch, &removed)) !=
	    PV_OK) {
		(void)fprintf(stderr, "piivault: audit archive: %s was written "
		    "but the vault is unchanged: %s; remove it before running "
		    "again\n", a.to, rc == PV_EBUSY ? "another archive ran "
		    "meanwhile" : pv_strerror(rc));
		r = CLI_FAIL;
		goto out;
	}
	commits++;
	if ((rc = prune(v, batch, &commits, &removed)) != PV_OK) {
		r = cli_fail("audit archive", "removing archived events (run "
		    "it again to finish)", rc);
		goto out;
	}
	(void)printf("archived %llu events (seq %llu to %llu) older than %s "
	    "to %s; the chain now starts at the checkpoint at seq %llu\n",
	    (unsigned long long)h.count, (unsigned long long)h.first,
	    (unsigned long long)h.last, when, a.to,
	    (unsigned long long)h.last);
	r = CLI_OK;
out:
	vault_close(v);
	return r;
}

static const struct option audit_verify_opts[] = {
	CLI_OPTS_VAULT,
	{ "archive", required_argument, NULL, O_ARCHIVE | CLI_OPT_ONCE },
	{ "public-key", required_argument, NULL,
	    O_PUBKEY | CLI_OPT_REPEAT | CLI_OPT_ONCE },
	CLI_OPT_END,
};

static const struct option audit_export_opts[] = {
	CLI_OPTS_VAULT,
	{ "after", required_argument, NULL, O_AFTER | CLI_OPT_ONCE },
	CLI_OPT_END,
};

static const struct option audit_archive_opts[] = {
	CLI_OPTS_VAULT,
	{ "before", required_argument, NULL, O_BEFORE | CLI_OPT_ONCE },
	{ "to", required_argument, NULL, O_TO | CLI_OPT_ONCE },
	CLI_OPT_END,
};

const struct cli_cmd cli_audit_cmds[] = {
	{ "verify", audit_verify, "check the chain, or an archive",
	    audit_verify_opts, NULL },
	{ "export", audit_export, "write events as JSON lines",
	    audit_export_opts, NULL },
	{ "archive", audit_archive, "move old events to a signed archive",
	    audit_archive_opts, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};
