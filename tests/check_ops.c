/*
 * check_ops.c: the key lifecycle and crypto-shredding, run by the real
 * CLI against a real server on the same data directory, under load.
 *
 * Each test makes a vault with the real binary (PIIVAULT_BIN), creates
 * writer, reader, admin and auditor keys, writes NFIX records through the
 * batch API, and starts piivault serve.  Load threads (each with its own
 * curl handle) then detokenize random known tokens, write new records and
 * look records up by their unique email while the test runs a CLI
 * operation, and every answer is checked: it is the exact value, or an
 * error the moment allows (key_unavailable only for a record under a
 * retired or destroyed KEK, shredded only for a shredded record); never
 * a wrong value, never a 5xx (a 503 only while the server is being
 * stopped), never a transport error.
 *
 * Each record has a state that only the test's main thread changes, and
 * only forward: live, then "may be gone" while the CLI runs, then gone
 * once it has exited.  An answer is judged against the states its record
 * had when the request was sent and when the answer came back, so it
 * allows exactly what could have happened in between.
 *
 * Long operations are killed with SIGKILL in the middle: their progress
 * lines go to a pipe, so stdout is flushed when 4 KiB of them are
 * buffered, which with --batch 2 is some way into the job and far from
 * its end; the shred epoch is killed again once kms status shows that its
 * index rebuild began.  One-transaction commands are killed after a few
 * delays (kill_delays), before, during or after their commit, and the
 * vault must then be in the state before or after, never between.
 *
 * CHECK_OPS_VERBOSE=1 prints how many answers the load threads checked.
 * Children die with the test process (PR_SET_PDEATHSIG); the test case's
 * directory takes whatever a failed test left behind.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "pv.h"
#include "api.h"
#include "vault.h"
#include "srvutil.h"
#include "testutil.h"

#ifndef PIIVAULT_BIN
#error "PIIVAULT_BIN must name the piivault binary"
#endif

#define ARGS_MAX	32
#define TIMEOUT		120	/* seconds per test, for the sanitizer build */
#define WAIT_MS		60000	/* for a child to start or to stop */
#define ID_BUF		(VAULT_ID_STRLEN + 1)
#define KEY_BUF		(VAULT_APIKEY_SECRET_LEN + 1)

#define NFIX		2000	/* records the fixture writes */
#define RECS_MAX	20000	/* records a test may know */
#define NF		2	/* fields a record has */
#define VAL_MAX		48
#define LOAD_THREADS	4
#define DETOK_N		16	/* tokens a load request asks for */
#define PROBE_N		64	/* tokens a probe of the main thread asks */
#define CHUNK		1000	/* tokens or records a request, at most */

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const char *const fname[NF] = { "email", "name" };

static char cur_key[PATH_MAX];	/* the root key file in use */

enum { K_WRITER, K_READER, K_ADMIN, K_AUDITOR, K__COUNT };
static char keys[K__COUNT][KEY_BUF];

/* Fixtures. */

static void
case_setup(void)
{
	su_case_setup("ops");
}

static void
spit(const char *path, const char *s, mode_t mode)
{
	int fd;

	(void)unlink(path);
	ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, mode), 0);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	ck_assert_int_eq(close(fd), 0);
}

/* What every child sees beyond the defaults (see su_spawn). */
static const char *const child_env[] = { "PIIVAULT_MAP_SIZE_MIB=1024",
	NULL };

static void
err_path(char out[static PATH_MAX], const char *name)
{
	ck_assert_int_lt(snprintf(out, PATH_MAX, "%s/%s", su_tdir, name),
	    PATH_MAX);
}

/*
 * args plus "--key-file key" (every command takes the common options;
 * NULL key: none) into out.
 */
static void
with_key(const char **out, const char *const *args, const char *key)
{
	size_t n = 0;

	for (; args[n] != NULL; n++) {
		ck_assert_uint_lt(n, ARGS_MAX - 2);
		out[n] = args[n];
	}
	if (key != NULL) {
		out[n++] = "--key-file";
		out[n++] = key;
	}
	out[n] = NULL;
}

/* Run piivault args... --key-file key to its end. */
static void
cli_key_argv(struct su_run *r, const char *key, const char *const *args)
{
	const char *full[ARGS_MAX + 1];

	with_key(full, args, key);
	su_cli_argv(r, child_env, full);
}

static void __attribute__((sentinel))
cli_key(struct su_run *r, const char *key, ...)
{
	const char *args[ARGS_MAX + 1];
	size_t n = 0;
	va_list ap;

	va_start(ap, key);
	while ((args[n] = va_arg(ap, const char *)) != NULL) {
		n++;
		ck_assert_uint_lt(n, ARGS_MAX - 2);
	}
	va_end(ap);
	cli_key_argv(r, key, args);
}

/* piivault args... with the root key in use. */
#define cli(r, ...)	cli_key((r), cur_key, __VA_ARGS__)

#define ck_assert_exit(r, code) ck_assert_msg((r)->status == (code),	\
	"exit %d, want %d; stdout [%.1000s] stderr [%s]", (r)->status,	\
	(code), (r)->out ? (r)->out : "", (r)->err)

/* (r)'s stderr holds s. */
#define ck_assert_err_has(r, s) ck_assert_msg(strstr((r)->err, (s)) !=	\
	NULL, "stderr [%s] lacks [%s]", (r)->err, (s))

/*
 * A command running in the background, its stdout read as it comes, for
 * killing in the middle.
 */
struct bg {
	pid_t		 pid;
	int		 out;
	struct su_gbuf	 buf;		/* stdout so far */
	char		 errpath[PATH_MAX];
	int		 status;
	int		 killed;	/* SIGKILL sent while it ran */
	int		 probes;	/* checks made while it ran */
};

static void
bg_start_argv(struct bg *b, const char *const *args)
{
	const char *full[ARGS_MAX + 1];
	int errfd;

	memset(b, 0, sizeof(*b));
	with_key(full, args, cur_key);
	err_path(b->errpath, "bg.err");
	ck_assert_int_ge(errfd = open(b->errpath, O_WRONLY | O_CREAT |
	    O_TRUNC | O_CLOEXEC, 0600), 0);
	b->pid = su_spawn(full, child_env, &b->out, errfd);
	(void)close(errfd);
	ck_assert_int_eq(su_gbuf_add(&b->buf, "", 0), 0);
}

static void __attribute__((sentinel))
bg_start(struct bg *b, ...)
{
	const char *args[ARGS_MAX + 1];
	size_t n = 0;
	va_list ap;

	va_start(ap, b);
	while ((args[n] = va_arg(ap, const char *)) != NULL) {
		n++;
		ck_assert_uint_lt(n, ARGS_MAX - 2);
	}
	va_end(ap);
	bg_start_argv(b, args);
}

static void probe(void);

/* When to SIGKILL a background command: its output so far, arg. */
typedef int kill_when_fn(const struct bg *b, const void *arg);

/* Kill once the output holds the string arg. */
static int
on_output(const struct bg *b, const void *arg)
{
	return strstr(b->buf.p, arg) != NULL;
}

/*
 * Let b run to its end.  Without when, the main thread checks the
 * server's answers (probe) between reads of its output; with when, it
 * watches only, and sends SIGKILL as soon as when says so (the load
 * threads go on checking meanwhile).  The exit status (128 + 9 if
 * killed) goes to b->status, its stderr to err (if not NULL).
 */
static void
bg_finish(struct bg *b, kill_when_fn *when, const void *arg,
    struct su_run *err)
{
	char chunk[4096];
	struct pollfd pfd;
	ssize_t got;
	int waited = 0;

	for (;;) {
		if (when == NULL) {
			probe();
			b->probes++;
		} else if (!b->killed && when(b, arg)) {
			ck_assert_int_eq(kill(b->pid, SIGKILL), 0);
			b->killed = 1;
		}
		pfd.fd = b->out;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 2) < 0) {
			ck_assert_int_eq(errno, EINTR);
			continue;
		}
		if (pfd.revents == 0) {
			ck_assert_msg((waited += 2) < 4 * WAIT_MS,
			    "background command did not finish");
			continue;
		}
		if ((got = read(b->out, chunk, sizeof(chunk))) < 0 &&
		    errno == EINTR)
			continue;
		ck_assert_int_ge(got, 0);
		if (got == 0)
			break;
		ck_assert_int_eq(su_gbuf_add(&b->buf, chunk, (size_t)got), 0);
	}
	(void)close(b->out);
	b->status = su_wait_for(b->pid, WAIT_MS);
	ck_assert_msg(b->status >= 0, "background command did not exit");
	if (err != NULL) {
		memset(err, 0, sizeof(*err));
		err->status = b->status;
		su_take_err(err, b->errpath);
	}
}

static void
bg_free(struct bg *b)
{
	free(b->buf.p);
	b->buf.p = NULL;
}

/*
 * Start piivault args..., SIGKILL it after us microseconds (or let it
 * finish first), and return its exit status: 0, or 128 + 9.
 */
static int __attribute__((sentinel))
kill_soon(unsigned us, ...)
{
	const char *args[ARGS_MAX + 1];
	struct bg b;
	struct su_gbuf sink = { NULL, 0 };
	size_t n = 0;
	va_list ap;
	int st;

	va_start(ap, us);
	while ((args[n] = va_arg(ap, const char *)) != NULL) {
		n++;
		ck_assert_uint_lt(n, ARGS_MAX - 2);
	}
	va_end(ap);
	bg_start_argv(&b, args);
	(void)usleep(us);
	(void)kill(b.pid, SIGKILL);
	su_read_all(b.out, &sink);
	(void)close(b.out);
	free(sink.p);
	st = su_wait_for(b.pid, WAIT_MS);
	bg_free(&b);
	ck_assert_msg(st == 0 || st == 128 + SIGKILL, "%s %s: exit %d",
	    args[0], args[1] ? args[1] : "", st);
	if (getenv("CHECK_OPS_VERBOSE") != NULL)
		(void)fprintf(stderr, "check_ops: %s %s after %u us: %s\n",
		    args[0], args[1] ? args[1] : "", us, st == 0 ? "finished" :
		    "killed");
	return st;
}

/*
 * When kill_soon kills: before, while and after the command does its
 * work, whichever build (a sanitizer build starts up slower).
 */
static const unsigned kill_delays[] = { 1000, 6000, 20000, 45000 };

/* piivault apikey create ...; the secret it printed goes to out. */
static void
apikey_create(char out[static KEY_BUF], const char *name, const char *role)
{
	struct su_run r;

	cli(&r, "apikey", "create", "--name", name, "--role", role, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(r.outlen == VAULT_APIKEY_SECRET_LEN + 1 &&
	    strncmp(r.out, "pvk_", 4) == 0, "apikey create %s: [%s]", name,
	    r.out);
	memcpy(out, r.out, VAULT_APIKEY_SECRET_LEN);
	out[VAULT_APIKEY_SECRET_LEN] = '\0';
	su_run_free(&r);
}

/* The server. */

/*
 * Start piivault serve --listen 127.0.0.1:0 --key-file cur_key, then
 * extra (NULL-terminated), and wait for "piivault: listening on URL".
 */
static void
srv_start_args(const char *const *extra)
{
	const char *serve[] = { "serve", "--listen", "127.0.0.1:0",
	    "--key-file", cur_key, NULL };

	su_srv_start(serve, extra, child_env);
	ck_assert_msg(strncmp(su_srv.url, "http://127.0.0.1:", 17) == 0,
	    "serve said [piivault: listening on %s]", su_srv.url);
}

static void
srv_start(void)
{
	srv_start_args(NULL);
}

/* HTTP. */

/*
 * One request on c (its connection kept for the next): method on
 * su_srv.base + path with key's bearer token, body as JSON if not NULL.
 * 0, or -1 with err saying why.  Asserts nothing: threads call it.
 */
static int
http_do(CURL *c, struct su_resp *r, const char *method, const char *path,
    int key, const char *body, char err[static CURL_ERROR_SIZE])
{
	char url[512], auth[128];
	const char *h[4] = { "Expect:", auth,
	    "Content-Type: application/json", NULL };

	(void)snprintf(url, sizeof(url), "%s%s", su_srv.base, path);
	(void)snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	    keys[key]);
	if (body == NULL)
		h[2] = NULL;
	return su_http_do(c, r, method, url, h, body,
	    body != NULL ? strlen(body) : 0, err);
}

/* A request of the main thread, which must get an answer. */
static void
req(struct su_resp *r, const char *method, const char *path, int key,
    const char *body)
{
	char auth[KEY_BUF + 8];

	(void)snprintf(auth, sizeof(auth), "Bearer %s", keys[key]);
	su_req(r, method, path, auth, NULL, body, body ? strlen(body) : 0);
}

#define assert_status(r, want) ck_assert_msg((r)->status == (want),	\
	"status %ld, want %d: [%.600s]; log [%s]", (r)->status,		\
	(int)(want), (r)->body.p, su_server_log())

/* The number at o.key, or -1. */
static long long
jnum(const struct jv *o, const char *key)
{
	const struct jv *v = jget(o, key);

	return v != NULL && v->type == J_NUM ? strtoll(v->s, NULL, 10) : -1;
}

/* The code of {"error":{"code":…}} at o, or NULL. */
static const char *
jcode(const struct jv *o)
{
	return jstr(jget(o, "error"), "code");
}

/*
 * The records a test knows: their ids, tokens and values, and the state
 * the main thread says each is in.  Entries are appended under tab_lock
 * and never change afterwards, but for st.
 */
enum {
	ST_LIVE,		/* the value, nothing else */
	ST_MAYBE_SHRED,		/* a CLI or API shred is under way */
	ST_SHREDDED,
	ST_MAYBE_GONE,		/* its KEK is being retired or destroyed */
	ST_GONE,		/* its KEK may not unwrap any more */
};

/* What an answer may be. */
enum { A_VALUE = 1, A_SHREDDED = 2, A_KEYGONE = 4 };

static const int st_allows[] = {
	[ST_LIVE] = A_VALUE,
	[ST_MAYBE_SHRED] = A_VALUE | A_SHREDDED,
	[ST_SHREDDED] = A_SHREDDED,
	[ST_MAYBE_GONE] = A_VALUE | A_KEYGONE,
	[ST_GONE] = A_KEYGONE,
};

struct orec {
	char		id[ID_BUF];
	char		tok[NF][ID_BUF];
	char		val[NF][VAL_MAX];
	atomic_int	st;
};

static struct orec *tab;		/* RECS_MAX of them */
static size_t tab_n;
static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t
tab_count(void)
{
	size_t n;

	(void)pthread_mutex_lock(&tab_lock);
	n = tab_n;
	(void)pthread_mutex_unlock(&tab_lock);
	return n;
}

static int
allow_of(size_t i)
{
	return st_allows[atomic_load(&tab[i].st)];
}

static void
mark(size_t from, size_t to, int st)
{
	for (size_t i = from; i < to; i++)
		atomic_store(&tab[i].st, st);
}

/*
 * A stored record's answer, {"id":"rec_…","tokens":{"email":…,"name":…}},
 * with its values, into the table: 0, or -1 with why.  Threads call it.
 */
static int
tab_add(const struct jv *v, const char *const *vals, char *why,
    size_t whylen)
{
	const struct jv *toks = jget(v, "tokens");
	const char *id = jstr(v, "id"), *t[NF];
	struct orec *r;

	if (v == NULL || v->type != J_OBJ || v->n != 2 ||
	    !su_id_valid(id, "rec_") || toks == NULL || toks->type != J_OBJ ||
	    toks->n != NF) {
		(void)snprintf(why, whylen, "not {\"id\":…,\"tokens\":…}");
		return -1;
	}
	for (size_t f = 0; f < NF; f++)
		if (!su_id_valid(t[f] = jstr(toks, fname[f]), "tok_")) {
			(void)snprintf(why, whylen, "no token for %s",
			    fname[f]);
			return -1;
		}
	(void)pthread_mutex_lock(&tab_lock);
	if (tab_n == RECS_MAX) {
		(void)pthread_mutex_unlock(&tab_lock);
		(void)snprintf(why, whylen, "more than %d records", RECS_MAX);
		return -1;
	}
	r = &tab[tab_n];
	memcpy(r->id, id, ID_BUF);
	for (size_t f = 0; f < NF; f++) {
		memcpy(r->tok[f], t[f], ID_BUF);
		(void)snprintf(r->val[f], VAL_MAX, "%s", vals[f]);
	}
	atomic_store(&r->st, ST_LIVE);
	tab_n++;
	(void)pthread_mutex_unlock(&tab_lock);
	return 0;
}

/* xorshift64: the C library's is banned, and threads need their own. */
static uint64_t
rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Asking and judging. */

struct ask {
	size_t	rec;
	int	f;
	int	allow;		/* A_*: at send time, then at answer time */
};

struct tally {
	long	values, shredded, keygone;
};

static void
detok_body(struct pv_buf *b, const struct ask *q, size_t n)
{
	pv_buf_init(b, 1u << 20);
	if (pv_buf_add(b, "{\"tokens\":[", 11) != PV_OK)
		return;
	for (size_t i = 0; i < n; i++)
		if (pv_buf_printf(b, "%s\"%s\"", i ? "," : "",
		    tab[q[i].rec].tok[q[i].f]) != PV_OK)
			return;
	if (pv_buf_add(b, "],\"purpose\":\"service\"}", 22) != PV_OK)
		pv_buf_cleanup(b);	/* NULL: the caller's check fails */
}

/*
 * Judge a detokenize answer for q[0..n-1], whose allow masks hold what
 * the records' states allowed when it was sent; the states now are added
 * first.  0, or -1 with why.  Threads call it.
 */
static int
detok_judge(const struct su_resp *r, struct ask *q, size_t n, char *why,
    size_t whylen, struct tally *t)
{
	const struct jv *res, *a;
	struct jv *v = NULL;
	int rc = -1;

	for (size_t i = 0; i < n; i++)
		q[i].allow |= allow_of(q[i].rec);
	if (r->status != 200) {
		(void)snprintf(why, whylen, "detokenize: status %ld: %.300s",
		    r->status, r->body.p);
		return -1;
	}
	v = jparse(r->body.p, r->body.len);
	if ((res = jget(v, "results")) == NULL || res->type != J_OBJ ||
	    v->n != 1) {
		(void)snprintf(why, whylen, "detokenize: not {\"results\":…}:"
		    " %.300s", r->body.p);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct orec *o = &tab[q[i].rec];
		const char *tok = o->tok[q[i].f], *want = o->val[q[i].f];
		const char *code, *val;

		if ((a = jget(res, tok)) == NULL) {
			(void)snprintf(why, whylen, "%s: no answer", tok);
			goto out;
		}
		if ((val = jstr(a, "value")) != NULL) {
			const struct jv *vv = jget(a, "value");

			if (!(q[i].allow & A_VALUE)) {
				(void)snprintf(why, whylen, "%s (record %s, "
				    "state %d): a value where none may be",
				    tok, o->id, atomic_load(&o->st));
				goto out;
			}
			if (a->n != 2 || jstr(a, "field") == NULL ||
			    strcmp(jstr(a, "field"), fname[q[i].f]) != 0 ||
			    vv->len != strlen(want) ||
			    memcmp(vv->s, want, vv->len) != 0) {
				(void)snprintf(why, whylen, "%s (record %s): "
				    "wrong answer %.200s, want %s [%s]", tok,
				    o->id, r->body.p, fname[q[i].f], want);
				goto out;
			}
			t->values++;
			continue;
		}
		code = jcode(a);
		if (a->n == 1 && code != NULL && strcmp(code, "shredded") ==
		    0 && (q[i].allow & A_SHREDDED)) {
			t->shredded++;
			continue;
		}
		if (a->n == 1 && code != NULL && strcmp(code,
		    "key_unavailable") == 0 && (q[i].allow & A_KEYGONE)) {
			t->keygone++;
			continue;
		}
		(void)snprintf(why, whylen, "%s (record %s, allowed %d): "
		    "answered %s", tok, o->id, q[i].allow, code ? code :
		    "(not an error)");
		goto out;
	}
	rc = 0;
out:
	jfree(v);
	return rc;
}

/*
 * Judge a look-up answer for record i's email: one match, that record
 * and its email token, while it may answer a value or key_unavailable;
 * none once it may be shredded.  0, or -1 with why.
 */
static int
lookup_judge(const struct su_resp *r, size_t i, int allow, char *why,
    size_t whylen)
{
	const struct orec *o = &tab[i];
	const struct jv *m;
	struct jv *v;
	int rc = -1;

	allow |= allow_of(i);
	if (r->status != 200) {
		(void)snprintf(why, whylen, "lookup %s: status %ld: %.300s",
		    o->val[0], r->status, r->body.p);
		return -1;
	}
	v = jparse(r->body.p, r->body.len);
	if ((m = jget(v, "matches")) == NULL || m->type != J_ARR) {
		(void)snprintf(why, whylen, "lookup: not {\"matches\":…}: "
		    "%.300s", r->body.p);
		goto out;
	}
	if (m->n == 0 && (allow & A_SHREDDED))
		rc = 0;
	else if (m->n == 1 && (allow & (A_VALUE | A_KEYGONE)) &&
	    jstr(&m->items[0], "id") != NULL &&
	    strcmp(jstr(&m->items[0], "id"), o->id) == 0 &&
	    jstr(&m->items[0], "token") != NULL &&
	    strcmp(jstr(&m->items[0], "token"), o->tok[0]) == 0)
		rc = 0;
	else
		(void)snprintf(why, whylen, "lookup %s (record %s, allowed "
		    "%d): %.300s", o->val[0], o->id, allow, r->body.p);
out:
	jfree(v);
	return rc;
}

static void
lookup_body(char *body, size_t cap, size_t i)
{
	(void)snprintf(body, cap, "{\"field\":\"email\",\"value\":\"%s\"}",
	    tab[i].val[0]);
}

/*
 * A record body of one record with values vals (no character that JSON
 * must escape).
 */
static void
record_body(char *body, size_t cap, const char *const *vals)
{
	(void)snprintf(body, cap, "{\"fields\":{\"email\":\"%s\","
	    "\"name\":\"%s\"}}", vals[0], vals[1]);
}

/* The load. */

struct loader {
	pthread_t	 th;
	int		 id;
	uint64_t	 seed;
	int		 writes;	/* records written */
	char		 err[1024];	/* the first bad answer */
	struct ask	 q[CHUNK];
};

static struct {
	atomic_int	 stop;
	atomic_int	 stopping;	/* the server is being stopped */
	int		 writes;	/* in eighths of the requests */
	int		 lookups;	/* in eighths */
	size_t		 detok_n;	/* tokens a request */
	atomic_long	 ops;		/* answers judged right */
	atomic_long	 values, shredded, keygone, down;
	struct loader	 l[LOAD_THREADS];
	int		 running;
} load;

/*
 * A request failed to get an answer, or got 503: fine only while the
 * server is being stopped.  1 if it is (pause, go on), 0 if not.
 */
static int
load_down(void)
{
	if (!atomic_load(&load.stopping))
		return 0;
	atomic_fetch_add(&load.down, 1);
	(void)usleep(5000);
	return 1;
}

static int
load_detok(struct loader *l, CURL *h)
{
	struct ask *q = l->q;
	struct tally t = { 0, 0, 0 };
	struct pv_buf b;
	struct su_resp r;
	char err[CURL_ERROR_SIZE];
	size_t n = tab_count(), m = load.detok_n;
	int rc;

	for (size_t i = 0; i < m; i++) {
		q[i].rec = (size_t)(rnd(&l->seed) % n);
		q[i].f = (int)(rnd(&l->seed) % NF);
		q[i].allow = allow_of(q[i].rec);
	}
	detok_body(&b, q, m);
	rc = http_do(h, &r, "POST", "/v1/detokenize", K_READER, b.p, err);
	pv_buf_cleanup(&b);
	if (rc != 0 || r.status == 503) {
		if (load_down()) {
			su_resp_free(&r);
			return 0;
		}
		if (rc != 0)
			(void)snprintf(l->err, sizeof(l->err), "detokenize: "
			    "%s", err);
		else
			(void)snprintf(l->err, sizeof(l->err), "detokenize: "
			    "503 while running: %.300s", r.body.p);
		su_resp_free(&r);
		return -1;
	}
	rc = detok_judge(&r, q, m, l->err, sizeof(l->err), &t);
	su_resp_free(&r);
	if (rc == 0) {
		atomic_fetch_add(&load.ops, 1);
		atomic_fetch_add(&load.values, t.values);
		atomic_fetch_add(&load.shredded, t.shredded);
		atomic_fetch_add(&load.keygone, t.keygone);
	}
	return rc;
}

static int
load_lookup(struct loader *l, CURL *h)
{
	char body[256], err[CURL_ERROR_SIZE];
	size_t i = (size_t)(rnd(&l->seed) % tab_count());
	int allow = allow_of(i), rc;
	struct su_resp r;

	lookup_body(body, sizeof(body), i);
	if (http_do(h, &r, "POST", "/v1/lookup", K_READER, body, err) != 0 ||
	    r.status == 503) {
		if (load_down()) {
			su_resp_free(&r);
			return 0;
		}
		(void)snprintf(l->err, sizeof(l->err), "lookup: %s %.300s",
		    err, r.body.p ? r.body.p : "");
		su_resp_free(&r);
		return -1;
	}
	rc = lookup_judge(&r, i, allow, l->err, sizeof(l->err));
	su_resp_free(&r);
	if (rc == 0)
		atomic_fetch_add(&load.ops, 1);
	return rc;
}

static int
load_write(struct loader *l, CURL *h)
{
	char email[VAL_MAX], name[VAL_MAX], body[256], err[CURL_ERROR_SIZE];
	const char *vals[NF] = { email, name };
	struct su_resp r;
	struct jv *v;
	int rc;

	(void)snprintf(email, sizeof(email), "w%d.%05d@load.example", l->id,
	    l->writes);
	(void)snprintf(name, sizeof(name), "Load Név %d/%d", l->id,
	    l->writes);
	record_body(body, sizeof(body), vals);
	if (http_do(h, &r, "POST", "/v1/records", K_WRITER, body, err) != 0 ||
	    r.status == 503) {
		if (load_down()) {
			su_resp_free(&r);
			return 0;
		}
		(void)snprintf(l->err, sizeof(l->err), "write: %s %.300s",
		    err, r.body.p ? r.body.p : "");
		su_resp_free(&r);
		return -1;
	}
	if (r.status != 201) {
		(void)snprintf(l->err, sizeof(l->err), "write: status %ld: "
		    "%.300s", r.status, r.body.p);
		su_resp_free(&r);
		return -1;
	}
	v = jparse(r.body.p, r.body.len);
	rc = tab_add(v, vals, l->err, sizeof(l->err));
	jfree(v);
	su_resp_free(&r);
	if (rc == 0) {
		l->writes++;
		atomic_fetch_add(&load.ops, 1);
	}
	return rc;
}

static void *
loader_run(void *arg)
{
	struct loader *l = arg;
	CURL *h;
	int rc;

	if ((h = curl_easy_init()) == NULL) {
		(void)snprintf(l->err, sizeof(l->err), "curl_easy_init");
		return NULL;
	}
	while (!atomic_load(&load.stop)) {
		int op = (int)(rnd(&l->seed) % 8);

		if (op < load.writes)
			rc = load_write(l, h);
		else if (op < load.writes + load.lookups)
			rc = load_lookup(l, h);
		else
			rc = load_detok(l, h);
		if (rc != 0)
			break;
	}
	curl_easy_cleanup(h);
	return NULL;
}

/* Start the load: writes and lookups eighths of its requests. */
static void
load_start(int writes, int lookups)
{
	static int round;

	ck_assert_int_eq(load.running, 0);
	atomic_store(&load.stop, 0);
	atomic_store(&load.stopping, 0);
	load.writes = writes;
	load.lookups = lookups;
	if (load.detok_n == 0)
		load.detok_n = DETOK_N;
	round++;
	for (int t = 0; t < LOAD_THREADS; t++) {
		struct loader *l = &load.l[t];
		int writes_so_far = l->writes;

		memset(l, 0, sizeof(*l));
		l->id = t;
		l->writes = writes_so_far;	/* keeps emails unique */
		l->seed = UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(t + 1) +
		    UINT64_C(7919) * (uint64_t)round + (uint64_t)getpid();
		ck_assert_int_eq(pthread_create(&l->th, NULL, loader_run, l),
		    0);
	}
	load.running = 1;
}

/* Stop the load; *why gets the first bad answer ("" if none). */
static void
load_halt(char *why, size_t whylen)
{
	why[0] = '\0';
	if (!load.running)
		return;
	atomic_store(&load.stop, 1);
	for (int t = 0; t < LOAD_THREADS; t++)
		ck_assert_int_eq(pthread_join(load.l[t].th, NULL), 0);
	load.running = 0;
	if (getenv("CHECK_OPS_VERBOSE") != NULL)
		(void)fprintf(stderr, "check_ops: load: %ld answers, %ld "
		    "values, %ld shredded, %ld key_unavailable, %ld while "
		    "down; %zu records\n", atomic_load(&load.ops),
		    atomic_load(&load.values), atomic_load(&load.shredded),
		    atomic_load(&load.keygone), atomic_load(&load.down),
		    tab_count());
	for (int t = 0; t < LOAD_THREADS; t++)
		if (load.l[t].err[0] != '\0' && why[0] == '\0')
			(void)snprintf(why, whylen, "load thread %d: %s", t,
			    load.l[t].err);
}

/* Stop the load: every answer it got must have been right. */
static void
load_stop(void)
{
	char why[1100];

	load_halt(why, sizeof(why));
	ck_assert_msg(why[0] == '\0', "%s; log [%s]", why, su_server_log());
}

/* Wait until the load has had n more answers (all threads alive). */
static void
load_wait(long n)
{
	long want = atomic_load(&load.ops) + n;

	for (int i = 0; i < WAIT_MS / 5 && atomic_load(&load.ops) < want;
	    i++) {
		for (int t = 0; t < LOAD_THREADS; t++)
			if (load.l[t].err[0] != '\0')
				load_stop();	/* fails with the reason */
		(void)usleep(5000);
	}
	ck_assert_msg(atomic_load(&load.ops) >= want, "the load is stuck");
}

/* Wait until the load has had n more answers, or a wrong one. */
static void
load_wait_soft(long n)
{
	long want = atomic_load(&load.ops) + n;
	int bad = 0;

	for (int i = 0; i < WAIT_MS / 5 && !bad &&
	    atomic_load(&load.ops) < want; i++) {
		for (int t = 0; t < LOAD_THREADS; t++)
			bad |= load.l[t].err[0] != '\0';
		(void)usleep(5000);
	}
}

/* Wait until the table has n records. */
static void
load_wait_records(size_t n)
{
	for (int i = 0; i < 4 * WAIT_MS / 5 && tab_count() < n; i++) {
		for (int t = 0; t < LOAD_THREADS; t++)
			if (load.l[t].err[0] != '\0')
				load_stop();
		(void)usleep(5000);
	}
	ck_assert_msg(tab_count() >= n, "only %zu records written, want %zu",
	    tab_count(), n);
}

/* The main thread's checks. */

static uint64_t main_seed = 88172645463325252ull;
static int probe_lookups;	/* probes look up too */

/* Detokenize q[0..n-1] (n <= CHUNK) and judge it: every answer right. */
static void
detok_check(struct ask *q, size_t n, struct tally *t)
{
	struct pv_buf b;
	struct su_resp r;
	char why[1024];

	detok_body(&b, q, n);
	ck_assert_ptr_nonnull(b.p);
	req(&r, "POST", "/v1/detokenize", K_READER, b.p);
	pv_buf_cleanup(&b);
	ck_assert_msg(detok_judge(&r, q, n, why, sizeof(why), t) == 0,
	    "%s; log [%s]", why, su_server_log());
	su_resp_free(&r);
}

static void
lookup_check(size_t i)
{
	char body[256], why[1024];
	int allow = allow_of(i);
	struct su_resp r;

	lookup_body(body, sizeof(body), i);
	req(&r, "POST", "/v1/lookup", K_READER, body);
	ck_assert_msg(lookup_judge(&r, i, allow, why, sizeof(why)) == 0,
	    "%s; log [%s]", why, su_server_log());
	su_resp_free(&r);
}

/* One check while a command runs: random tokens, and a look-up. */
static void
probe(void)
{
	struct ask q[PROBE_N];
	struct tally t = { 0, 0, 0 };
	size_t n = tab_count();

	for (size_t i = 0; i < PROBE_N; i++) {
		q[i].rec = (size_t)(rnd(&main_seed) % n);
		q[i].f = (int)(rnd(&main_seed) % NF);
		q[i].allow = allow_of(q[i].rec);
	}
	detok_check(q, PROBE_N, &t);
	if (probe_lookups)
		lookup_check((size_t)(rnd(&main_seed) % n));
}

/*
 * Every token of records [from, to) answers as its state says, and *t
 * counts how.
 */
static void
sweep(size_t from, size_t to, struct tally *t)
{
	static struct ask q[CHUNK];
	size_t n = 0;

	memset(t, 0, sizeof(*t));
	for (size_t i = from; i < to; i++)
		for (int f = 0; f < NF; f++) {
			q[n].rec = i;
			q[n].f = f;
			q[n].allow = allow_of(i);
			if (++n == CHUNK) {
				detok_check(q, n, t);
				n = 0;
			}
		}
	if (n > 0)
		detok_check(q, n, t);
}

static void
sweep_all(void)
{
	struct tally t;

	sweep(0, tab_count(), &t);
}

/* Look up every step-th record of [from, to). */
static void
lookups(size_t from, size_t to, size_t step)
{
	for (size_t i = from; i < to; i += step)
		lookup_check(i);
}

/*
 * Write n records in batches through the API, values prefix-i; they are
 * appended to the table.
 */
static void
put_batch(size_t n, const char *prefix)
{
	char email[VAL_MAX], name[VAL_MAX], why[256];
	const char *vals[NF] = { email, name };
	static size_t seq;	/* names stay unique with load running */
	const struct jv *res;
	struct pv_buf b;
	struct su_resp r;
	struct jv *v;
	size_t base = seq, before = tab_count();

	for (size_t off = 0; off < n; off += CHUNK) {
		size_t m = n - off < CHUNK ? n - off : CHUNK;

		pv_buf_init(&b, 8u << 20);
		ck_assert_int_eq(pv_buf_add(&b, "{\"records\":[", 12), PV_OK);
		for (size_t i = off; i < off + m; i++) {
			char one[256];

			(void)snprintf(email, sizeof(email),
			    "%s%05zu@ops.example", prefix, base + i);
			(void)snprintf(name, sizeof(name), "%s Név %05zu",
			    prefix, base + i);
			record_body(one, sizeof(one), vals);
			ck_assert_int_eq(pv_buf_printf(&b, "%s%s", i > off ?
			    "," : "", one), PV_OK);
		}
		ck_assert_int_eq(pv_buf_add(&b, "]}", 2), PV_OK);
		req(&r, "POST", "/v1/records/batch", K_WRITER, b.p);
		pv_buf_cleanup(&b);
		assert_status(&r, 200);
		v = jparse(r.body.p, r.body.len);
		res = jget(v, "results");
		ck_assert_msg(res != NULL && res->type == J_ARR && res->n == m,
		    "batch: [%.300s]", r.body.p);
		for (size_t i = 0; i < m; i++) {
			(void)snprintf(email, sizeof(email),
			    "%s%05zu@ops.example", prefix, base + off + i);
			(void)snprintf(name, sizeof(name), "%s Név %05zu",
			    prefix, base + off + i);
			ck_assert_msg(tab_add(&res->items[i], vals, why,
			    sizeof(why)) == 0, "batch result %zu: %s", i, why);
		}
		jfree(v);
		su_resp_free(&r);
	}
	seq += n;
	if (!load.running)
		ck_assert_uint_eq(tab_count(), before + n);
}

/* kms status --json. */

struct kver {
	char		kind[8];
	unsigned	version;
	char		state[16];
	long long	records;	/* records it wraps now */
	long long	wrapped;	/* DEKs it ever wrapped */
};

struct kst {
	long long	records;
	size_t		n;
	struct kver	k[512];
};

static void
kst_get_key(struct kst *s, const char *key)
{
	const struct jv *ks;
	struct su_run r;
	struct jv *v;

	memset(s, 0, sizeof(*s));
	cli_key(&r, key, "kms", "status", "--json", NULL);
	ck_assert_exit(&r, 0);
	v = jparse(r.out, r.outlen);
	ks = jget(v, "keys");
	ck_assert_msg(v != NULL && ks != NULL && ks->type == J_ARR &&
	    ks->n <= NELEM(s->k), "kms status --json: [%.600s]", r.out);
	s->records = jnum(v, "records");
	ck_assert_int_ge(s->records, 0);
	for (size_t i = 0; i < ks->n; i++) {
		const struct jv *k = &ks->items[i];
		struct kver *o = &s->k[s->n++];

		ck_assert_msg(jstr(k, "kind") != NULL && jstr(k, "state") !=
		    NULL && jnum(k, "version") > 0 && jnum(k, "records") >= 0 &&
		    jnum(k, "wrapped_total") >= 0, "key %zu: [%.600s]", i,
		    r.out);
		(void)snprintf(o->kind, sizeof(o->kind), "%s", jstr(k, "kind"));
		(void)snprintf(o->state, sizeof(o->state), "%s",
		    jstr(k, "state"));
		o->version = (unsigned)jnum(k, "version");
		o->records = jnum(k, "records");
		o->wrapped = jnum(k, "wrapped_total");
	}
	jfree(v);
	su_run_free(&r);
}

static void
kst_get(struct kst *s)
{
	kst_get_key(s, cur_key);
}

static const struct kver *
kst_find(const struct kst *s, const char *kind, unsigned version)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->k[i].kind, kind) == 0 &&
		    s->k[i].version == version)
			return &s->k[i];
	ck_abort_msg("no %s version %u", kind, version);
	return NULL;
}

/* How many versions of kind there are in state (NULL: any). */
static size_t
kst_count(const struct kst *s, const char *kind, const char *state)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->k[i].kind, kind) == 0 && (state == NULL ||
		    strcmp(s->k[i].state, state) == 0))
			n++;
	return n;
}

/* The one active version of kind. */
static unsigned
kst_active(const struct kst *s, const char *kind)
{
	unsigned v = 0;

	ck_assert_msg(kst_count(s, kind, "active") == 1, "%zu active %s",
	    kst_count(s, kind, "active"), kind);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->k[i].kind, kind) == 0 &&
		    strcmp(s->k[i].state, "active") == 0)
			v = s->k[i].version;
	return v;
}

static void
assert_state(const struct kst *s, const char *kind, unsigned version,
    const char *state)
{
	ck_assert_msg(strcmp(kst_find(s, kind, version)->state, state) == 0,
	    "%s %u is %s, want %s", kind, version,
	    kst_find(s, kind, version)->state, state);
}

/*
 * One active KEK, one active index key, and the records each KEK wraps
 * add up to the records there are.
 */
static void
assert_consistent(const struct kst *s)
{
	long long sum = 0;

	(void)kst_active(s, "kek");
	(void)kst_active(s, "index");
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->k[i].kind, "kek") == 0)
			sum += s->k[i].records;
	ck_assert_msg(sum == s->records, "keks wrap %lld records, the vault "
	    "has %lld", sum, s->records);
}

/*
 * Nothing about any key changed (b taken after a): the same versions in
 * the same states, wrapping the same records, but for what the load
 * wrote under the active KEK meanwhile.
 */
static void
assert_same_keys(const struct kst *a, const struct kst *b)
{
	ck_assert_uint_eq(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		ck_assert_str_eq(a->k[i].kind, b->k[i].kind);
		ck_assert_uint_eq(a->k[i].version, b->k[i].version);
		ck_assert_str_eq(a->k[i].state, b->k[i].state);
		if (strcmp(a->k[i].state, "active") == 0)
			ck_assert_int_le(a->k[i].records, b->k[i].records);
		else
			ck_assert_int_eq(a->k[i].records, b->k[i].records);
	}
	ck_assert_int_le(a->records, b->records);
}

/* The "records" of the last line of a command's output (a summary). */
static long long
summary_records(const struct su_gbuf *out, const char *step)
{
	const char *end, *start;
	long long n;
	struct jv *v;

	ck_assert_msg(out->len > 0 && out->p[out->len - 1] == '\n',
	    "output [%s]", out->p);
	end = out->p + out->len - 1;
	for (start = end; start > out->p && start[-1] != '\n'; start--)
		;
	v = jparse(start, (size_t)(end - start));
	ck_assert_msg(v != NULL && jstr(v, "step") != NULL &&
	    strcmp(jstr(v, "step"), step) == 0 && jget(v, "summary") !=
	    NULL && jget(v, "summary")->type == J_TRUE, "last line [%.*s]",
	    (int)(end - start), start);
	n = jnum(v, "records");
	jfree(v);
	return n;
}

/* Every line before the summary is a progress line of step. */
static void
assert_progress_lines(const struct su_gbuf *out, const char *step)
{
	const char *p = out->p, *nl;
	size_t lines = 0;

	while ((nl = strchr(p, '\n')) != NULL) {
		struct jv *v = jparse(p, (size_t)(nl - p));

		ck_assert_msg(v != NULL && jstr(v, "step") != NULL &&
		    (jnum(v, "done") >= 0 || jget(v, "summary") != NULL),
		    "line [%.*s]", (int)(nl - p), p);
		if (step != NULL)
			ck_assert_str_eq(jstr(v, "step"), step);
		jfree(v);
		lines++;
		p = nl + 1;
	}
	ck_assert_msg(*p == '\0', "a partial line: [%s]", p);
	ck_assert_uint_gt(lines, 0);
}

/* The fixture. */

static void
setup(void)
{
	tu_tmpdir(su_tdir);
	ck_assert_int_eq(chdir(su_tdir), 0);
	(void)signal(SIGPIPE, SIG_IGN);
	ck_assert_int_lt(snprintf(su_logpath, sizeof(su_logpath), "%s/serve.log",
	    su_tdir), (int)sizeof(su_logpath));
	(void)snprintf(cur_key, sizeof(cur_key), "piivault.key");
	su_wait_ms = WAIT_MS;
	memset(&su_srv, 0, sizeof(su_srv));
	memset(&load, 0, sizeof(load));
	ck_assert_ptr_nonnull(tab = calloc(RECS_MAX, sizeof(*tab)));
	tab_n = 0;
	probe_lookups = 0;
	{
		struct su_run r;

		cli(&r, "init", NULL);
		ck_assert_exit(&r, 0);
		su_run_free(&r);
	}
	apikey_create(keys[K_WRITER], "ops-writer", "writer");
	apikey_create(keys[K_READER], "ops-reader", "reader");
	apikey_create(keys[K_ADMIN], "ops-admin", "admin");
	apikey_create(keys[K_AUDITOR], "ops-auditor", "auditor");
	srv_start();
	put_batch(NFIX, "o");
}

static void
teardown(void)
{
	char why[1100];

	load_halt(why, sizeof(why));
	su_curl_cleanup();
	if (su_srv.pid > 0)
		su_srv_stop();
	ck_assert_int_eq(chdir("/"), 0);
	tu_rmrf(su_tdir);
	free(tab);
	tab = NULL;
}

/* A file of the ids of records i in [from, to) with i % mod == rem. */
static size_t
ids_file(const char *path, size_t from, size_t to, size_t mod, size_t rem)
{
	struct pv_buf b;
	size_t n = 0;

	pv_buf_init(&b, 1u << 20);
	for (size_t i = from; i < to; i++)
		if (i % mod == rem) {
			ck_assert_int_eq(pv_buf_printf(&b, "%s\n", tab[i].id),
			    PV_OK);
			n++;
		}
	spit(path, b.p != NULL ? b.p : "", 0600);
	pv_buf_cleanup(&b);
	return n;
}

static void
mark_mod(size_t from, size_t to, size_t mod, size_t rem, int st)
{
	for (size_t i = from; i < to; i++)
		if (i % mod == rem)
			atomic_store(&tab[i].st, st);
}

/* DELETE /v1/records/{id} of record i as the admin: 200 and its receipt. */
static char *
api_shred(size_t i)
{
	const struct jv *rc;
	struct su_resp r;
	struct jv *v;
	char path[64], *out;

	(void)snprintf(path, sizeof(path), "/v1/records/%s", tab[i].id);
	req(&r, "DELETE", path, K_ADMIN, NULL);
	assert_status(&r, 200);
	v = jparse(r.body.p, r.body.len);
	rc = jget(v, "receipt");
	ck_assert_msg(rc != NULL && jstr(rc, "record") != NULL &&
	    strcmp(jstr(rc, "record"), tab[i].id) == 0 &&
	    jstr(v, "signature") != NULL, "receipt: [%s]", r.body.p);
	jfree(v);
	ck_assert_msg(r.body.len > 0 && r.body.p[r.body.len - 1] == '\n' &&
	    strchr(r.body.p, '\n') == r.body.p + r.body.len - 1,
	    "a receipt is one line: [%s]", r.body.p);
	out = r.body.p;
	r.body.p = NULL;
	su_resp_free(&r);
	return out;
}

/* Tests. */

#define WRONG_KEY	"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n"

START_TEST(test_rotate)
{
	struct kst s0, s1, s2;
	struct su_run r;
	struct bg b;
	size_t before, after, n;
	const struct kver *k1, *k2;
	unsigned v;
	int st;

	kst_get(&s0);
	assert_consistent(&s0);
	ck_assert_uint_eq(kst_active(&s0, "kek"), 1);
	ck_assert_int_eq(s0.records, NFIX);
	ck_assert_int_eq(kst_find(&s0, "kek", 1)->records, NFIX);

	/* Refusals change nothing. */
	cli(&r, "kms", "rotate", "now", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	spit("wrong.key", WRONG_KEY, 0600);
	cli_key(&r, "wrong.key", "kms", "rotate", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "wrong root key");
	su_run_free(&r);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);

	/* Under load: before, during, after. */
	probe_lookups = 1;
	load_start(2, 1);
	load_wait(40);
	before = tab_count();
	bg_start(&b, "kms", "rotate", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(b.buf.p, "kek 2 is active\n");
	bg_free(&b);
	after = tab_count();
	load_wait_records(after + 40);
	load_wait(40);
	load_stop();
	n = tab_count();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_uint_eq(kst_active(&s1, "kek"), 2);
	assert_state(&s1, "kek", 1, "decrypt-only");
	ck_assert_int_eq(s1.records, (long long)n);
	k1 = kst_find(&s1, "kek", 1);
	k2 = kst_find(&s1, "kek", 2);
	/*
	 * What was acknowledged before it ran is under 1; what was written
	 * after it exited, under 2 (but for the writes whose answers were
	 * on their way then, one a load thread).
	 */
	ck_assert_msg(k1->records >= (long long)before && k1->records <=
	    (long long)(after + LOAD_THREADS), "kek 1 wraps %lld, want "
	    "%zu..%zu", k1->records, before, after + LOAD_THREADS);
	ck_assert_msg(k2->records >= (long long)(n - after - LOAD_THREADS) &&
	    k2->records <= (long long)(n - before), "kek 2 wraps %lld, want "
	    "%zu..%zu", k2->records, n - after - LOAD_THREADS, n - before);
	ck_assert_int_eq(k2->wrapped, k2->records);

	/* Quiet now: ten more records are all under kek 2. */
	put_batch(10, "q");
	kst_get(&s2);
	assert_consistent(&s2);
	ck_assert_int_eq(kst_find(&s2, "kek", 2)->records, k2->records + 10);
	ck_assert_int_eq(kst_find(&s2, "kek", 1)->records, k1->records);
	sweep_all();

	/* kill -9 in the middle: a rotation is whole or not at all. */
	load_start(2, 1);
	load_wait(20);
	v = 2;
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		st = kill_soon(kill_delays[d], "kms", "rotate", NULL);
		kst_get(&s1);
		assert_consistent(&s1);
		ck_assert_msg(kst_active(&s1, "kek") == v ||
		    kst_active(&s1, "kek") == v + 1, "kek %u active after "
		    "kek %u and a kill (exit %d)", kst_active(&s1, "kek"), v,
		    st);
		v = kst_active(&s1, "kek");
		ck_assert_uint_eq(kst_count(&s1, "kek", NULL), v);
		ck_assert_uint_eq(kst_count(&s1, "kek", "decrypt-only"),
		    v - 1);
		probe();
	}
	/* And a rerun. */
	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	load_wait(40);
	load_stop();
	kst_get(&s2);
	assert_consistent(&s2);
	ck_assert_uint_eq(kst_active(&s2, "kek"), v + 1);
	ck_assert_uint_eq(kst_count(&s2, "kek", "decrypt-only"), v);
	ck_assert_int_eq(s2.records, (long long)tab_count());
	sweep_all();
	lookups(0, tab_count(), 37);
}
END_TEST

START_TEST(test_rewrap)
{
	static const char *const bad[][6] = {
		{ "kms", "rewrap", "--batch", "0", NULL },
		{ "kms", "rewrap", "--batch", "100001", NULL },
		{ "kms", "rewrap", "--from", "x", NULL },
		{ "kms", "rewrap", "--from", "0", NULL },
		{ "kms", "rewrap", "1", NULL },
	};
	struct kst s0, s1;
	struct su_run r;
	struct bg b;
	long long left;

	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	probe_lookups = 1;
	load_start(2, 1);
	load_wait(40);

	/* Refusals change nothing. */
	kst_get(&s0);
	for (size_t i = 0; i < NELEM(bad); i++) {
		cli_key_argv(&r, cur_key, bad[i]);
		ck_assert_exit(&r, 2);
		su_run_free(&r);
	}
	/* The active version has nothing older than itself to move. */
	cli(&r, "kms", "rewrap", "--from", "2", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	kst_get(&s1);
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, NFIX);
	ck_assert_str_eq(kst_find(&s1, "kek", 1)->state,
	    kst_find(&s0, "kek", 1)->state);

	/* kill -9 after its first progress lines reached us. */
	bg_start(&b, "kms", "rewrap", "--batch", "2", NULL);
	bg_finish(&b, on_output, "\n", &r);
	ck_assert_msg(b.killed && b.status == 128 + SIGKILL, "rewrap was "
	    "not killed in the middle: exit %d, [%s]", b.status, r.err);
	assert_progress_lines(&b.buf, "rewrap");
	bg_free(&b);
	kst_get(&s1);
	assert_consistent(&s1);
	left = kst_find(&s1, "kek", 1)->records;
	ck_assert_msg(left > 0 && left < NFIX, "kek 1 wraps %lld after the "
	    "kill", left);
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->wrapped, NFIX);
	sweep_all();

	/* The rerun moves exactly what was left, the server answering. */
	bg_start(&b, "kms", "rewrap", "--batch", "200", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	ck_assert_int_eq(summary_records(&b.buf, "rewrap"), left);
	assert_progress_lines(&b.buf, "rewrap");
	ck_assert_int_gt(b.probes, 0);
	bg_free(&b);
	load_wait(40);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, 0);
	ck_assert_int_eq(kst_find(&s1, "kek", 2)->records, s1.records);
	ck_assert_int_eq(s1.records, (long long)tab_count());
	assert_state(&s1, "kek", 1, "decrypt-only");
	sweep_all();
	lookups(0, tab_count(), 29);

	/* Again: nothing left to move. */
	cli(&r, "kms", "rewrap", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_int_eq(summary_records(&(struct su_gbuf){ r.out, r.outlen },
	    "rewrap"), 0);
	su_run_free(&r);
}
END_TEST

START_TEST(test_retire)
{
	static const char *const usage[][6] = {
		{ "kms", "retire", NULL },
		{ "kms", "retire", "x", NULL },
		{ "kms", "retire", "1", "2", NULL },
	};
	struct kst s0, s1;
	struct tally t;
	struct su_run r;
	struct bg b;
	size_t n;
	int st;

	/* Records 0..NFIX-1 under kek 1, what the load writes under 2. */
	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	probe_lookups = 1;
	load_start(2, 1);
	load_wait(40);
	kst_get(&s0);

	/* Refused while kek 1 wraps records. */
	cli(&r, "kms", "retire", "1", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "kek 1 still wraps 2000 records");
	su_run_free(&r);
	/*
	 * The active version (refused; the message may also say it wraps
	 * records), and one that does not exist.
	 */
	cli(&r, "kms", "retire", "2", NULL);
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	cli(&r, "kms", "retire", "2", "--force", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "cannot be retired");
	su_run_free(&r);
	cli(&r, "kms", "retire", "9", "--force", NULL);
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	for (size_t i = 0; i < NELEM(usage); i++) {
		cli_key_argv(&r, cur_key, usage[i]);
		ck_assert_exit(&r, 2);
		su_run_free(&r);
	}
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	assert_state(&s1, "kek", 1, "decrypt-only");
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.values, NF * NFIX);

	/* --force: key_unavailable for kek 1's records at once. */
	mark(0, NFIX, ST_MAYBE_GONE);
	bg_start(&b, "kms", "retire", "1", "--force", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(b.buf.p, "kek 1 is retired\n");
	bg_free(&b);
	mark(0, NFIX, ST_GONE);
	n = tab_count();
	sweep(0, n, &t);
	ck_assert_int_eq(t.keygone, NF * NFIX);
	ck_assert_int_eq(t.values, (long)(NF * (n - NFIX)));
	lookups(0, NFIX, 97);	/* the index is not the KEK's */
	load_wait(60);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	assert_state(&s1, "kek", 1, "retired");
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, NFIX);
	ck_assert_int_eq(s1.records, (long long)tab_count());
	sweep_all();

	/* Retiring it again changes nothing. */
	cli(&r, "kms", "retire", "1", "--force", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);

	/*
	 * kill -9 in the middle, then a rerun: kek 2 wraps what the load
	 * wrote; rotate, and retire 2.
	 */
	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	n = tab_count();
	mark(NFIX, n, ST_MAYBE_GONE);
	load_start(0, 1);
	load_wait(20);
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		st = kill_soon(kill_delays[d], "kms", "retire", "2", "--force",
		    NULL);
		kst_get(&s1);
		assert_consistent(&s1);
		ck_assert_msg(strcmp(kst_find(&s1, "kek", 2)->state,
		    "retired") == 0 || (st != 0 && strcmp(kst_find(&s1, "kek",
		    2)->state, "decrypt-only") == 0), "kek 2 %s after exit %d",
		    kst_find(&s1, "kek", 2)->state, st);
		probe();
	}
	cli(&r, "kms", "retire", "2", "--force", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	mark(NFIX, n, ST_GONE);
	load_wait(20);
	load_stop();
	sweep(0, n, &t);
	ck_assert_int_eq(t.keygone, (long)(NF * n));
	put_batch(5, "r");
	sweep(n, tab_count(), &t);
	ck_assert_int_eq(t.values, NF * 5);
	kst_get(&s1);
	assert_consistent(&s1);
	assert_state(&s1, "kek", 2, "retired");
	ck_assert_int_eq(kst_find(&s1, "kek", 3)->records, 5);
}
END_TEST

START_TEST(test_destroy)
{
	struct kst s0, s1;
	struct tally t;
	struct su_run r;
	size_t n, n2;
	int st;

	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	probe_lookups = 1;
	load_start(2, 1);
	load_wait(40);
	kst_get(&s0);

	/* Without --yes and without a terminal it asks no one, and stops. */
	cli(&r, "kms", "destroy", "1", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "kek 1 wraps 2000 records");
	ck_assert_err_has(&r, "not confirmed");
	su_run_free(&r);
	cli(&r, "kms", "destroy", "9", "--yes", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "no such kek version");
	su_run_free(&r);
	cli(&r, "kms", "destroy", "--yes", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	cli(&r, "kms", "destroy", "0", "--yes", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.values, NF * NFIX);

	/* kill -9 in the middle, then a rerun. */
	mark(0, NFIX, ST_MAYBE_GONE);
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		st = kill_soon(kill_delays[d], "kms", "destroy", "1", "--yes",
		    NULL);
		kst_get(&s1);
		assert_consistent(&s1);
		ck_assert_msg(strcmp(kst_find(&s1, "kek", 1)->state,
		    "destroyed") == 0 || (st != 0 && strcmp(kst_find(&s1,
		    "kek", 1)->state, "decrypt-only") == 0), "kek 1 %s after "
		    "exit %d", kst_find(&s1, "kek", 1)->state, st);
		ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, NFIX);
		probe();
	}
	cli(&r, "kms", "destroy", "1", "--yes", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "kek 1 is destroyed; 2000 records under it "
	    "are unreadable\n");
	su_run_free(&r);
	mark(0, NFIX, ST_GONE);

	/* From the next request on, never a value of kek 1's records. */
	n = tab_count();
	sweep(0, n, &t);
	ck_assert_int_eq(t.keygone, NF * NFIX);
	ck_assert_int_eq(t.values, (long)(NF * (n - NFIX)));
	/* New writes go on, under the active version. */
	put_batch(5, "d");
	sweep(n, tab_count(), &t);
	ck_assert_uint_ge((size_t)t.values, NF * 5);
	load_wait(60);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	assert_state(&s1, "kek", 1, "destroyed");
	ck_assert_int_eq(s1.records, (long long)tab_count());
	sweep_all();

	/* A record under a destroyed KEK can still be shredded. */
	for (size_t i = 0; i < 10; i++) {
		free(api_shred(i * 3));
		atomic_store(&tab[i * 3].st, ST_SHREDDED);
	}
	sweep(0, 30, &t);
	ck_assert_int_eq(t.shredded, NF * 10);
	ck_assert_int_eq(t.keygone, NF * 20);
	kst_get(&s0);
	assert_consistent(&s0);
	ck_assert_int_eq(kst_find(&s0, "kek", 1)->records, NFIX - 10);

	/*
	 * The incident: rotate, rewrap away from 2, destroy 2.  Nothing is
	 * lost, and the server keeps answering all along.
	 */
	load_start(2, 1);
	load_wait(20);
	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	{
		struct bg b;

		bg_start(&b, "kms", "rewrap", "--from", "2", "--batch", "50",
		    NULL);
		bg_finish(&b, NULL, NULL, &r);
		ck_assert_exit(&r, 0);
		bg_free(&b);
	}
	kst_get(&s1);
	ck_assert_int_eq(kst_find(&s1, "kek", 2)->records, 0);
	cli(&r, "kms", "destroy", "2", "--yes", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "kek 2 is destroyed; 0 records under it are "
	    "unreadable\n");
	su_run_free(&r);
	n2 = tab_count();
	load_wait(60);
	load_stop();
	sweep(0, tab_count(), &t);
	ck_assert_int_eq(t.keygone, NF * (NFIX - 10));
	ck_assert_int_eq(t.shredded, NF * 10);
	ck_assert_int_eq(t.values, (long)(NF * (tab_count() - NFIX)));
	ck_assert_uint_gt(tab_count(), n2);
	kst_get(&s1);
	assert_consistent(&s1);
	assert_state(&s1, "kek", 2, "destroyed");
	ck_assert_int_eq(kst_find(&s1, "kek", 3)->records,
	    (long long)tab_count() - NFIX);
	lookups(NFIX, tab_count(), 7);
}
END_TEST

/*
 * After an incident destroy of a KEK that still wrapped records (their
 * loss accepted), the key lifecycle must go on: shred-epoch (and rewrap)
 * must move every readable record and destroy the old keys.
 */
START_TEST(test_shred_epoch_after_destroy)
{
	struct kst s;
	struct tally t;
	struct su_run r, r2;
	size_t n;

	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	put_batch(50, "e");
	mark(0, NFIX, ST_GONE);
	cli(&r, "kms", "destroy", "1", "--yes", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	n = tab_count();
	sweep(0, n, &t);
	ck_assert_int_eq(t.keygone, NF * NFIX);

	/* Both, so that the report names both. */
	cli(&r, "kms", "shred-epoch", NULL);
	cli(&r2, "kms", "rewrap", NULL);
	ck_assert_msg(r.status == 0 && r2.status == 0, "after kms destroy 1 "
	    "--yes: kms shred-epoch exit %d [%s]; then kms rewrap exit %d "
	    "[%s]", r.status, r.err, r2.status, r2.err);
	su_run_free(&r);
	su_run_free(&r2);
	kst_get(&s);
	assert_consistent(&s);
	ck_assert_uint_eq(kst_count(&s, "kek", NULL) - 1,
	    kst_count(&s, "kek", "destroyed"));
	sweep(0, n, &t);
	ck_assert_int_eq(t.keygone, NF * NFIX);
	ck_assert_int_eq(t.values, NF * 50);
}
END_TEST

START_TEST(test_rotate_index)
{
	static const char *const usage[][6] = {
		{ "kms", "rotate-index", "--batch", "0", NULL },
		{ "kms", "rotate-index", "--batch", "x", NULL },
		{ "kms", "rotate-index", "2", NULL },
	};
	struct kst s0, s1;
	struct su_run r;
	struct bg b;
	long long done;

	probe_lookups = 1;
	load_start(2, 3);
	load_wait(40);
	kst_get(&s0);
	for (size_t i = 0; i < NELEM(usage); i++) {
		cli_key_argv(&r, cur_key, usage[i]);
		ck_assert_exit(&r, 2);
		su_run_free(&r);
	}
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	ck_assert_uint_eq(kst_count(&s1, "index", NULL), 1);

	/* kill -9 in the middle of the rebuild: look-ups search both keys. */
	bg_start(&b, "kms", "rotate-index", "--batch", "2", NULL);
	bg_finish(&b, on_output, "\n", &r);
	ck_assert_msg(b.killed && b.status == 128 + SIGKILL, "rotate-index "
	    "was not killed in the middle: exit %d, [%s]", b.status, r.err);
	assert_progress_lines(&b.buf, "rotate-index");
	bg_free(&b);
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_uint_eq(kst_active(&s1, "index"), 2);
	assert_state(&s1, "index", 1, "decrypt-only");
	lookups(0, tab_count(), 11);

	/* The rerun resumes under the same new key, and ends it. */
	bg_start(&b, "kms", "rotate-index", "--batch", "50", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	done = summary_records(&b.buf, "rotate-index");
	ck_assert_msg(done > 0 && done <= (long long)tab_count(), "%lld "
	    "records", done);
	ck_assert_int_gt(b.probes, 0);
	bg_free(&b);
	load_wait(60);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_uint_eq(kst_count(&s1, "index", NULL), 2);
	ck_assert_uint_eq(kst_active(&s1, "index"), 2);
	assert_state(&s1, "index", 1, "destroyed");
	ck_assert_int_eq(s1.records, (long long)tab_count());
	/* Every record, old or written meanwhile, is found by its email. */
	lookups(0, NFIX, 5);
	lookups(NFIX, tab_count(), 1);
	sweep_all();

	/* A second rotation under load, to its end in one go. */
	load_start(2, 3);
	load_wait(20);
	bg_start(&b, "kms", "rotate-index", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	bg_free(&b);
	load_wait(40);
	load_stop();
	kst_get(&s1);
	ck_assert_uint_eq(kst_active(&s1, "index"), 3);
	ck_assert_uint_eq(kst_count(&s1, "index", "destroyed"), 2);
	lookups(0, tab_count(), 3);
}
END_TEST

/* Receipts: every line verifies, and a changed one does not. */
static void
verify_receipts(const char *path, size_t n)
{
	struct su_run r;
	char pub[128], *p;
	size_t oks = 0;

	cli(&r, "kms", "public-key", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strncmp(r.out, "pvpub_", 6) == 0 && r.outlen < 128 &&
	    r.out[r.outlen - 1] == '\n', "public-key: [%s]", r.out);
	(void)snprintf(pub, sizeof(pub), "%.*s", (int)r.outlen - 1, r.out);
	su_run_free(&r);
	cli_key(&r, NULL, "receipt", "verify", path, "--public-key", pub,
	    NULL);
	ck_assert_exit(&r, 0);
	for (p = r.out; (p = strstr(p, "ok rec_")) != NULL; p++)
		oks++;
	ck_assert_uint_eq(oks, n);
	su_run_free(&r);
}

START_TEST(test_shred)
{
	struct kst s0, s1;
	struct tally t;
	struct su_run r;
	struct bg b;
	struct pv_buf all;
	char *first[NFIX], *again, path[64], *p;
	size_t ncli, napi = 0, nkill, before;
	int st;

	probe_lookups = 1;
	load_start(2, 2);
	load_wait(40);
	kst_get(&s0);

	/* Refusals shred nothing. */
	cli(&r, "shred", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	cli(&r, "shred", tab[5].id, "--reason", "", NULL);
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	cli(&r, "shred", "rec_AAAAAAAAAAAAAAAAAAAAAA", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "1 of 1 not shredded");
	su_run_free(&r);
	cli(&r, "shred", tab[5].tok[0], NULL);	/* a token is no record id */
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	cli(&r, "shred", "--from-file", "no-such-file", NULL);
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	{
		struct su_resp x;

		(void)snprintf(path, sizeof(path), "/v1/records/%s",
		    tab[5].id);
		req(&x, "DELETE", path, K_READER, NULL);
		assert_status(&x, 403);
		su_resp_free(&x);
		req(&x, "DELETE", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA",
		    K_ADMIN, NULL);
		assert_status(&x, 404);
		su_resp_free(&x);
	}
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.values, NF * NFIX);

	/*
	 * 100 ids by the CLI from a file, and 50 by the API, at the same
	 * time, while the load reads, writes and looks up.
	 */
	ncli = ids_file("ids.txt", 0, NFIX, 20, 3);
	ck_assert_uint_eq(ncli, 100);
	mark_mod(0, NFIX, 20, 3, ST_MAYBE_SHRED);
	mark_mod(0, NFIX, 40, 11, ST_MAYBE_SHRED);
	bg_start(&b, "shred", "--from-file", "ids.txt", "--reason",
	    "ops-test", NULL);
	for (size_t i = 11; i < NFIX; i += 40)
		first[napi++] = api_shred(i);
	ck_assert_uint_eq(napi, 50);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	mark_mod(0, NFIX, 20, 3, ST_SHREDDED);
	mark_mod(0, NFIX, 40, 11, ST_SHREDDED);

	/* One receipt a line, in the file's order. */
	pv_buf_init(&all, 1u << 20);
	{
		size_t k = 0;
		const char *line = b.buf.p, *nl;

		for (size_t i = 3; i < NFIX; i += 20, k++) {
			struct jv *v;

			ck_assert_ptr_nonnull(nl = strchr(line, '\n'));
			v = jparse(line, (size_t)(nl - line));
			ck_assert_msg(v != NULL && jstr(jget(v, "receipt"),
			    "record") != NULL && strcmp(jstr(jget(v,
			    "receipt"), "record"), tab[i].id) == 0 &&
			    strcmp(jstr(jget(v, "receipt"), "reason"),
			    "ops-test") == 0, "receipt %zu: [%.*s]", k,
			    (int)(nl - line), line);
			jfree(v);
			line = nl + 1;
		}
		ck_assert_str_eq(line, "");
		ck_assert_uint_eq(k, ncli);
	}
	ck_assert_int_eq(pv_buf_add(&all, b.buf.p, b.buf.len), PV_OK);
	for (size_t i = 0; i < napi; i++)
		ck_assert_int_eq(pv_buf_add(&all, first[i], strlen(first[i])),
		    PV_OK);
	spit("receipts.jsonl", all.p, 0600);

	/* From now on: shredded, and not found. */
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.shredded, NF * 150);
	ck_assert_int_eq(t.values, NF * (NFIX - 150));
	lookups(3, NFIX, 20);
	lookups(11, NFIX, 40);
	verify_receipts("receipts.jsonl", 150);

	/* A changed receipt does not verify. */
	ck_assert_ptr_nonnull(p = strstr(all.p, "\"reason\":\"ops-test\""));
	p[strlen("\"reason\":\"ops-tes")] = 'T';
	spit("tampered.jsonl", all.p, 0600);
	pv_buf_cleanup(&all);
	{
		char pub[128];

		cli(&r, "kms", "public-key", NULL);
		ck_assert_exit(&r, 0);
		(void)snprintf(pub, sizeof(pub), "%.*s", (int)r.outlen - 1,
		    r.out);
		su_run_free(&r);
		cli_key(&r, NULL, "receipt", "verify", "tampered.jsonl",
		    "--public-key", pub, NULL);
		ck_assert_exit(&r, 1);
		ck_assert_err_has(&r, "signature does not verify");
		su_run_free(&r);
	}

	/* Twice is harmless: the same receipts, nothing else changes. */
	before = tab_count();
	cli(&r, "shred", "--from-file", "ids.txt", "--reason", "ops-test",
	    NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, b.buf.p);
	su_run_free(&r);
	bg_free(&b);
	for (size_t i = 11, k = 0; i < NFIX; i += 40, k++) {
		again = api_shred(i);
		ck_assert_str_eq(again, first[k]);
		free(again);
		free(first[k]);
	}
	load_wait(40);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_int_eq(s1.records, (long long)tab_count() - 150);
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, s1.records);
	ck_assert_uint_ge(tab_count(), before);
	sweep_all();

	/*
	 * kill -9 in the middle of a shred of 200 (one commit): all of them
	 * or none; the rerun shreds the rest and signs for all.
	 */
	nkill = ids_file("ids2.txt", 0, NFIX, 10, 7);
	ck_assert_uint_eq(nkill, 200);
	mark_mod(0, NFIX, 10, 7, ST_MAYBE_SHRED);
	load_start(2, 2);
	load_wait(20);
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		struct ask q[2 * 200];
		size_t k = 0;

		st = kill_soon(kill_delays[d], "shred", "--from-file",
		    "ids2.txt", NULL);
		for (size_t i = 7; i < NFIX; i += 10)
			for (int f = 0; f < NF; f++) {
				q[k].rec = i;
				q[k].f = f;
				q[k++].allow = allow_of(i);
			}
		memset(&t, 0, sizeof(t));
		detok_check(q, k, &t);
		ck_assert_msg((t.shredded == 0 && t.values == (long)k) ||
		    (t.shredded == (long)k && t.values == 0), "after kill "
		    "(exit %d): %ld shredded, %ld values", st, t.shredded,
		    t.values);
		kst_get(&s1);
		assert_consistent(&s1);
	}
	cli(&r, "shred", "--from-file", "ids2.txt", NULL);
	ck_assert_exit(&r, 0);
	spit("receipts2.jsonl", r.out, 0600);
	su_run_free(&r);
	mark_mod(0, NFIX, 10, 7, ST_SHREDDED);
	verify_receipts("receipts2.jsonl", 200);
	load_wait(40);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_int_eq(s1.records, (long long)tab_count() - 350);
	sweep_all();
	lookups(7, NFIX, 50);
}
END_TEST

/* Kill once the vault has a second index key: the rebuild has begun. */
static int
on_index_rotated(const struct bg *b, const void *arg)
{
	struct kst s;

	(void)b;
	(void)arg;
	kst_get(&s);
	return kst_count(&s, "index", NULL) > 1;
}

START_TEST(test_shred_epoch)
{
	static const char *const usage[][6] = {
		{ "kms", "shred-epoch", "--batch", "0", NULL },
		{ "kms", "shred-epoch", "now", NULL },
	};
	struct kst s0, s1;
	struct su_run r;
	struct bg b;

	/* Some shreds for the epoch to make final. */
	for (size_t i = 1; i < NFIX; i += 100) {
		free(api_shred(i));
		atomic_store(&tab[i].st, ST_SHREDDED);
	}
	probe_lookups = 1;
	load_start(2, 2);
	load_wait(40);
	kst_get(&s0);
	for (size_t i = 0; i < NELEM(usage); i++) {
		cli_key_argv(&r, cur_key, usage[i]);
		ck_assert_exit(&r, 2);
		su_run_free(&r);
	}
	kst_get(&s1);
	assert_same_keys(&s0, &s1);

	/* kill -9 while it re-wraps. */
	bg_start(&b, "kms", "shred-epoch", "--batch", "2", NULL);
	bg_finish(&b, on_output, "\n", &r);
	ck_assert_msg(b.killed && b.status == 128 + SIGKILL, "shred-epoch "
	    "was not killed in the middle: exit %d, [%s]", b.status, r.err);
	assert_progress_lines(&b.buf, "shred-epoch");
	bg_free(&b);
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_uint_eq(kst_active(&s1, "kek"), 2);
	ck_assert_int_gt(kst_find(&s1, "kek", 1)->records, 0);
	sweep_all();

	/* Again, killed once the index rebuild has begun. */
	bg_start(&b, "kms", "shred-epoch", "--batch", "2", NULL);
	bg_finish(&b, on_index_rotated, NULL, &r);
	ck_assert_msg(b.killed && b.status == 128 + SIGKILL, "shred-epoch "
	    "was not killed in the index rebuild: exit %d, [%s]", b.status,
	    r.err);
	bg_free(&b);
	kst_get(&s1);
	assert_consistent(&s1);
	/* Resumed, not started over: still the same target KEK. */
	ck_assert_uint_eq(kst_active(&s1, "kek"), 2);
	ck_assert_uint_eq(kst_count(&s1, "kek", NULL), 2);
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, 0);
	ck_assert_uint_eq(kst_active(&s1, "index"), 2);
	assert_state(&s1, "index", 1, "decrypt-only");
	lookups(0, tab_count(), 13);
	sweep_all();

	/* And to its end. */
	bg_start(&b, "kms", "shred-epoch", "--batch", "100", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(b.buf.p, "shred epoch complete") != NULL,
	    "[%s]", b.buf.p);
	bg_free(&b);
	load_wait(60);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	/* One KEK and one index key left; every older one destroyed. */
	ck_assert_uint_eq(kst_count(&s1, "kek", NULL), 2);
	ck_assert_uint_eq(kst_active(&s1, "kek"), 2);
	assert_state(&s1, "kek", 1, "destroyed");
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, 0);
	ck_assert_int_eq(kst_find(&s1, "kek", 2)->records, s1.records);
	ck_assert_uint_eq(kst_count(&s1, "index", NULL), 2);
	ck_assert_uint_eq(kst_active(&s1, "index"), 2);
	assert_state(&s1, "index", 1, "destroyed");
	ck_assert_int_eq(s1.records, (long long)tab_count() - 20);
	sweep_all();
	lookups(0, tab_count(), 7);
	lookups(1, NFIX, 100);

	/* A second epoch, under load, in one go. */
	load_start(2, 2);
	load_wait(20);
	bg_start(&b, "kms", "shred-epoch", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	bg_free(&b);
	load_wait(40);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_uint_eq(kst_active(&s1, "kek"), 3);
	ck_assert_uint_eq(kst_count(&s1, "kek", "destroyed"), 2);
	ck_assert_uint_eq(kst_count(&s1, "index", "destroyed"), 2);
	sweep_all();
}
END_TEST

static long long
file_size(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return (long long)st.st_size;
}

START_TEST(test_compact)
{
	struct kst s0, s1;
	struct su_run r;
	long long size0, size1, before, after;
	int st;

	/* Shred 300 records: free pages for compact to drop. */
	ck_assert_uint_eq(ids_file("ids.txt", 0, NFIX, 20, 9), 100);
	cli(&r, "shred", "--from-file", "ids.txt", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	mark_mod(0, NFIX, 20, 9, ST_SHREDDED);
	ck_assert_uint_eq(ids_file("ids.txt", 0, NFIX, 10, 4), 200);
	cli(&r, "shred", "--from-file", "ids.txt", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	mark_mod(0, NFIX, 10, 4, ST_SHREDDED);

	probe_lookups = 1;
	load_start(2, 2);
	load_wait(40);
	kst_get(&s0);
	/* Refused while the server has the vault open. */
	cli(&r, "compact", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "in use");
	su_run_free(&r);
	cli(&r, "compact", "now", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	sweep_all();

	/* Stop the server under load: a 503 or a closed connection. */
	load_wait(40);
	atomic_store(&load.stopping, 1);
	su_srv_stop();
	load_stop();
	kst_get(&s0);
	assert_consistent(&s0);
	ck_assert_int_eq(s0.records, (long long)tab_count() - 300);
	size0 = file_size("piivault-data/data.mdb");

	/* kill -9 in the middle leaves a vault that opens, and a rerun. */
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		st = kill_soon(kill_delays[d], "compact", NULL);
		kst_get(&s1);
		assert_same_keys(&s0, &s1);
		ck_assert_int_eq(s1.records, s0.records);
	}
	cli(&r, "compact", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(sscanf(r.out, "compacted ./piivault-data: %lld -> %lld "
	    "bytes", &before, &after) == 2, "compact (after exit %d): [%s]",
	    st, r.out);
	su_run_free(&r);
	ck_assert_int_le(after, before);
	size1 = file_size("piivault-data/data.mdb");
	ck_assert_msg(size1 <= size0, "data.mdb grew: %lld -> %lld", size0,
	    size1);
	ck_assert_int_eq(size1, after);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);

	/* A restarted server answers every surviving token, under load. */
	srv_start();
	sweep_all();
	lookups(0, tab_count(), 9);
	load_start(2, 2);
	load_wait(60);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_int_eq(s1.records, (long long)tab_count() - 300);
}
END_TEST

/*
 * Whether piivault kms status opens the vault with key (which may be the
 * wrong one, or a file a killed command left half written).
 */
static int
opens_with(const char *key)
{
	struct su_run r;
	int st;

	cli_key(&r, key, "kms", "status", NULL);
	st = r.status;
	ck_assert_msg(st == 0 || st == 1, "kms status --key-file %s: exit %d "
	    "[%s]", key, st, r.err);
	su_run_free(&r);
	return st == 0;
}

START_TEST(test_rotate_root)
{
	char soft[4096] = "", why[1100];
	struct kst s0, s1;
	struct tally t;
	struct su_resp x;
	struct su_run r;
	size_t len;
	int st, extra;

	probe_lookups = 0;
	load_start(0, 0);		/* reads of existing records */
	load_wait(40);
	kst_get(&s0);

	/* Refusals change nothing. */
	cli(&r, "kms", "rotate-root", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	cli(&r, "kms", "rotate-root", "--new-key-file", "a.key",
	    "--new-passphrase", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	cli(&r, "kms", "rotate-root", "--new-key-file", "piivault.key", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "root in use");
	su_run_free(&r);
	spit("loose.key", WRONG_KEY, 0644);
	cli(&r, "kms", "rotate-root", "--new-key-file", "loose.key", NULL);
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	ck_assert_int_eq(access("a.key", F_OK), -1);
	ck_assert_int_eq(opens_with("piivault.key"), 1);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.values, NF * NFIX);

	/* The happy path, with the server running and reading. */
	cli(&r, "kms", "rotate-root", "--new-key-file", "new.key", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "the root key is now new.key") != NULL,
	    "[%s]", r.out);
	su_run_free(&r);
	ck_assert_int_eq(opens_with("piivault.key"), 0);
	cli_key(&r, "piivault.key", "kms", "status", NULL);
	ck_assert_err_has(&r, "wrong root key");
	su_run_free(&r);
	ck_assert_int_eq(opens_with("new.key"), 1);
	(void)snprintf(cur_key, sizeof(cur_key), "new.key");
	kst_get(&s1);
	assert_same_keys(&s0, &s1);

	/*
	 * The running server keeps the keys it holds: reads of existing
	 * records go on.  Collected rather than asserted at once, so that
	 * the restart below is checked too.
	 */
	load_wait_soft(40);
	load_halt(why, sizeof(why));
	if (why[0] != '\0')
		(void)snprintf(soft, sizeof(soft), "after rotate-root the "
		    "running server's reads fail: %s; ", why);
	{
		struct ask q[PROBE_N];
		char w2[1024];

		for (size_t i = 0; i < PROBE_N; i++) {
			q[i].rec = i * 31;
			q[i].f = (int)(i % NF);
			q[i].allow = A_VALUE;
		}
		{
			struct pv_buf bb;

			detok_body(&bb, q, PROBE_N);
			req(&x, "POST", "/v1/detokenize", K_READER, bb.p);
			pv_buf_cleanup(&bb);
		}
		memset(&t, 0, sizeof(t));
		if (detok_judge(&x, q, PROBE_N, w2, sizeof(w2), &t) != 0) {
			len = strlen(soft);
			(void)snprintf(soft + len, sizeof(soft) - len,
			    "detokenize after rotate-root: %s; ", w2);
		}
		su_resp_free(&x);
		/* And a write, for the report. */
		req(&x, "POST", "/v1/records", K_WRITER,
		    "{\"fields\":{\"name\":\"after rotate-root\"}}");
		extra = x.status == 201;
		if (!extra) {
			len = strlen(soft);
			(void)snprintf(soft + len, sizeof(soft) - len,
			    "a write after rotate-root: %ld %.200s; ",
			    x.status, x.body.p);
		}
		su_resp_free(&x);
	}

	/* Restarted with the new key, it answers everything. */
	st = su_srv_signal(SIGTERM);
	if (st != 0) {
		len = strlen(soft);
		(void)snprintf(soft + len, sizeof(soft) - len, "the server "
		    "exited %d after SIGTERM; ", st);
	}
	srv_start();
	sweep_all();
	put_batch(5, "n");
	sweep(tab_count() - 5, tab_count(), &t);
	ck_assert_int_eq(t.values, NF * 5);
	{
		/* The old key no longer starts a server. */
		const char *const args[] = { "serve", "--listen", "127.0.0.1:0",
		    "--key-file", "piivault.key", NULL };

		cli_key_argv(&r, NULL, args);
		ck_assert_exit(&r, 1);
		ck_assert_err_has(&r, "wrong root key");
		su_run_free(&r);
	}

	/*
	 * kill -9 in the middle: the old root or the new one opens the
	 * vault, never neither, never both.  Then a rerun.
	 */
	su_srv_stop();
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		char nk[32];

		(void)snprintf(nk, sizeof(nk), "k%zu.key", d);
		st = kill_soon(kill_delays[d], "kms", "rotate-root",
		    "--new-key-file", nk, NULL);
		if (opens_with(nk)) {
			ck_assert_int_eq(opens_with(cur_key), 0);
			(void)snprintf(cur_key, sizeof(cur_key), "%s", nk);
		} else
			ck_assert_msg(opens_with(cur_key), "neither %s nor %s "
			    "opens the vault after exit %d", cur_key, nk, st);
	}
	cli(&r, "kms", "rotate-root", "--new-key-file", "final.key", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	ck_assert_int_eq(opens_with(cur_key), 0);
	(void)snprintf(cur_key, sizeof(cur_key), "final.key");
	srv_start();
	load_start(2, 2);
	load_wait(40);
	load_stop();
	sweep_all();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_int_eq(s1.records, (long long)tab_count() + extra);

	ck_assert_msg(soft[0] == '\0', "%s", soft);
}
END_TEST

START_TEST(test_cryptoperiod)
{
	static const char *const bad[][8] = {
		{ "serve", "--listen", "127.0.0.1:0", "--max-kek-wraps", "0",
		    NULL },
		{ "serve", "--listen", "127.0.0.1:0", "--max-kek-wraps", "x",
		    NULL },
		{ "serve", "--listen", "127.0.0.1:0", "--max-kek-age", "0",
		    NULL },
	};
	static const char *const opts[] = { "--max-kek-wraps", "50", NULL };
	struct kst s;
	struct su_run r;
	size_t nver, rotations = 0;
	long long ghosts;
	const char *p, *nl;

	for (size_t i = 0; i < NELEM(bad); i++) {
		cli_key_argv(&r, cur_key, bad[i]);
		ck_assert_exit(&r, 2);
		su_run_free(&r);
	}
	su_srv_stop();
	srv_start_args(opts);
	probe_lookups = 1;
	load_start(6, 1);
	load_wait_records(NFIX + 400);
	load_stop();

	kst_get(&s);
	assert_consistent(&s);
	ck_assert_int_eq(s.records, (long long)tab_count());
	nver = kst_count(&s, "kek", NULL);
	/* 400 writes, at most LOAD_THREADS a commit: a rotation every 50. */
	ck_assert_msg(nver >= 1 + 400 / (50 + LOAD_THREADS), "%zu keks",
	    nver);
	ck_assert_uint_eq(kst_count(&s, "kek", "decrypt-only"), nver - 1);
	ck_assert_int_ge(kst_find(&s, "kek", 1)->wrapped, NFIX);
	ck_assert_int_le(kst_find(&s, "kek", 1)->wrapped,
	    NFIX + LOAD_THREADS);
	for (unsigned v = 2; v <= nver; v++) {
		const struct kver *k = kst_find(&s, "kek", v);

		ck_assert_msg(k->wrapped <= 50 + LOAD_THREADS - 1, "kek %u "
		    "wrapped %lld", v, k->wrapped);
		if (v < nver)
			ck_assert_msg(k->wrapped >= 50, "kek %u rotated after "
			    "%lld", v, k->wrapped);
		ck_assert_int_eq(k->records, k->wrapped);
	}

	/* The log says the server did it, once a rotation. */
	cli(&r, "audit", "export", NULL);
	ck_assert_exit(&r, 0);
	for (p = r.out; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		struct jv *v = jparse(p, (size_t)(nl - p));

		ck_assert_msg(v != NULL, "audit line [%.*s]", (int)(nl - p), p);
		if (strcmp(jstr(v, "action"), "kms.rotate") == 0) {
			ck_assert_pstr_eq(jstr(v, "actor"), "server");
			ck_assert_pstr_eq(jstr(v, "reason"), "cryptoperiod");
			rotations++;
		}
		jfree(v);
	}
	su_run_free(&r);
	ck_assert_uint_eq(rotations, nver - 1);
	sweep_all();

	/* kill -9 under write load, a restart: nothing acknowledged is lost. */
	load_start(6, 1);
	load_wait(100);
	atomic_store(&load.stopping, 1);
	ck_assert_int_eq(su_srv_signal(SIGKILL), 128 + SIGKILL);
	load_stop();
	srv_start_args(opts);
	kst_get(&s);
	assert_consistent(&s);
	/* Committed, but the answer died with the server: ghosts. */
	ck_assert_int_ge(s.records, (long long)tab_count());
	ck_assert_int_le(s.records, (long long)tab_count() + LOAD_THREADS);
	ghosts = s.records - (long long)tab_count();
	ck_assert_uint_eq(kst_count(&s, "kek", "decrypt-only"),
	    kst_count(&s, "kek", NULL) - 1);
	sweep_all();
	nver = kst_count(&s, "kek", NULL);
	load_start(6, 1);
	load_wait_records(tab_count() + 120);
	load_stop();
	kst_get(&s);
	assert_consistent(&s);
	ck_assert_uint_gt(kst_count(&s, "kek", NULL), nver);
	for (unsigned v = 2; v <= kst_count(&s, "kek", NULL); v++)
		ck_assert_msg(kst_find(&s, "kek", v)->wrapped <= 50 +
		    LOAD_THREADS - 1, "kek %u wrapped %lld", v,
		    kst_find(&s, "kek", v)->wrapped);
	ck_assert_int_eq(s.records, (long long)tab_count() + ghosts);
}

/* A job that runs away: kill it past a limit of records or seconds. */
struct runaway {
	long long	 max_done;
	double		 max_secs;
	struct timespec	 t0;
	long long	 done;		/* the last progress line's */
	double		 secs;
};

static int
on_runaway(const struct bg *b, const void *arg)
{
	struct runaway *w = (struct runaway *)(uintptr_t)arg;
	struct timespec now;
	const char *p;

	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	w->secs = (double)(now.tv_sec - w->t0.tv_sec) +
	    (double)(now.tv_nsec - w->t0.tv_nsec) / 1e9;
	for (p = b->buf.p; (p = strstr(p, "\"done\":")) != NULL; p++)
		w->done = strtoll(p + 7, NULL, 10);
	return w->done > w->max_done || w->secs > w->max_secs;
}

/* How many KEK versions kms status shows, however many. */
static size_t
kek_versions(void)
{
	struct su_run r;
	size_t n = 0;

	cli(&r, "kms", "status", "--json", NULL);
	ck_assert_exit(&r, 0);
	for (const char *p = r.out; (p = strstr(p, "\"kind\":\"kek\"")) !=
	    NULL; p++)
		n++;
	su_run_free(&r);
	return n;
}

/*
 * A shred epoch while the server rotates the KEK by itself under writes
 * (--max-kek-wraps): it must end, re-wrapping each record a bounded
 * number of times, and destroy every KEK older than its own.
 */
START_TEST(test_shred_epoch_cryptoperiod)
{
	static const char *const opts[] = { "--max-kek-wraps", "10", NULL };
	struct runaway w;
	struct kst s;
	struct su_run r;
	struct bg b;
	size_t nver, records;

	su_srv_stop();
	srv_start_args(opts);
	load_start(4, 1);
	load_wait_records(NFIX + 100);
	nver = kek_versions();
	memset(&w, 0, sizeof(w));
	records = tab_count();
	w.max_done = 5 * (long long)records;	/* a pass or two is right */
	w.max_secs = 40;
	(void)clock_gettime(CLOCK_MONOTONIC, &w.t0);
	bg_start(&b, "kms", "shred-epoch", "--batch", "5", NULL);
	bg_finish(&b, on_runaway, &w, &r);
	(void)on_runaway(&b, &w);
	load_stop();
	ck_assert_msg(!b.killed && b.status == 0, "kms shred-epoch --batch 5 "
	    "against a server with --max-kek-wraps 10 under writes: %s after "
	    "%.1f s, its re-wrap at %lld records for a vault of about %zu; "
	    "%zu KEK versions (%zu before); exit %d [%s]", b.killed ?
	    "killed" : "ended", w.secs, w.done, records, kek_versions(), nver,
	    b.status, r.err);
	bg_free(&b);
	kst_get(&s);
	assert_consistent(&s);
	for (unsigned v = 1; v <= nver; v++)
		assert_state(&s, "kek", v, "destroyed");
	sweep_all();
}
END_TEST
END_TEST

/*
 * kms destroy of the active version: documented ("then no record can be
 * written until kms rotate"); the server must say so, not fail with an
 * internal error, and write again once a rotation made a new active KEK.
 */
START_TEST(test_destroy_active)
{
	struct kst s;
	struct tally t;
	struct su_resp x;
	struct su_run r;
	const char *code;
	struct jv *v;

	mark(0, NFIX, ST_MAYBE_GONE);
	cli(&r, "kms", "destroy", "1", "--yes", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	mark(0, NFIX, ST_GONE);
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.keygone, NF * NFIX);
	kst_get(&s);
	assert_state(&s, "kek", 1, "destroyed");

	req(&x, "POST", "/v1/records", K_WRITER,
	    "{\"fields\":{\"name\":\"no active kek\"}}");
	v = jparse(x.body.p, x.body.len);
	code = jcode(v);
	ck_assert_msg(x.status < 500 || x.status == 503, "a write with the "
	    "active KEK destroyed: %ld %s", x.status, x.body.p);
	ck_assert_msg(code != NULL && strcmp(code, "key_unavailable") == 0,
	    "a write with the active KEK destroyed: %ld %s", x.status,
	    x.body.p);
	jfree(v);
	su_resp_free(&x);

	/* A rotation makes it write again, without a restart. */
	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	put_batch(5, "a");
	sweep(NFIX, tab_count(), &t);
	ck_assert_int_eq(t.values, NF * 5);
}
END_TEST

/*
 * rewrap --from V, then destroy V at once, again and again, while big
 * detokenize requests run: a record the rewrap moved must never answer
 * key_unavailable, however its request's snapshot and the server's key
 * ring interleave.
 */
START_TEST(test_rewrap_then_destroy_race)
{
	struct kst s;
	struct su_run r;

	load.detok_n = CHUNK;
	load_start(0, 0);
	load_wait(4);
	for (unsigned v = 1; v <= 8; v++) {
		char ver[16];

		(void)snprintf(ver, sizeof(ver), "%u", v);
		cli(&r, "kms", "rotate", NULL);
		ck_assert_exit(&r, 0);
		su_run_free(&r);
		cli(&r, "kms", "rewrap", "--from", ver, NULL);
		ck_assert_exit(&r, 0);
		su_run_free(&r);
		cli(&r, "kms", "destroy", ver, "--yes", NULL);
		ck_assert_exit(&r, 0);
		ck_assert_msg(strstr(r.out, "; 0 records") != NULL, "[%s]",
		    r.out);
		su_run_free(&r);
	}
	load_wait(4);
	load_stop();
	kst_get(&s);
	assert_consistent(&s);
	ck_assert_uint_eq(kst_count(&s, "kek", "destroyed"), 8);
	sweep_all();
}
END_TEST

/*
 * kms retire of the active version is refused, and must say why: the
 * active version cannot be retired (rotate first).  Advice to rewrap or
 * to use --force would be wrong: neither makes it possible.
 */
START_TEST(test_retire_active_message)
{
	struct kst s0, s1;
	struct su_run r;

	kst_get(&s0);
	cli(&r, "kms", "retire", "1", NULL);
	ck_assert_exit(&r, 1);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	ck_assert_msg(strstr(r.err, "cannot be retired") != NULL &&
	    strstr(r.err, "--force") == NULL, "kms retire of the active kek "
	    "1 (wrapping %d records) says [%s]", NFIX, r.err);
	su_run_free(&r);
}
END_TEST

static void
tcase(Suite *s, const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, case_setup, su_case_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, TIMEOUT);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

/* One case a test, so that CK_RUN_CASE can pick one. */
static Suite *
ops_suite(void)
{
	Suite *s = suite_create("ops");

	tcase(s, "rotate", test_rotate);
	tcase(s, "rewrap", test_rewrap);
	tcase(s, "retire", test_retire);
	tcase(s, "retire_active_message", test_retire_active_message);
	tcase(s, "destroy", test_destroy);
	tcase(s, "destroy_active", test_destroy_active);
	tcase(s, "rewrap_then_destroy_race", test_rewrap_then_destroy_race);
	tcase(s, "shred_epoch_after_destroy", test_shred_epoch_after_destroy);
	tcase(s, "rotate_index", test_rotate_index);
	tcase(s, "shred", test_shred);
	tcase(s, "shred_epoch", test_shred_epoch);
	tcase(s, "compact", test_compact);
	tcase(s, "rotate_root", test_rotate_root);
	tcase(s, "cryptoperiod", test_cryptoperiod);
	tcase(s, "shred_epoch_cryptoperiod", test_shred_epoch_cryptoperiod);
	return s;
}

int
main(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "check_ops: curl_global_init failed\n");
		return 1;
	}
	return tu_run(ops_suite());
}
