/* SPDX-License-Identifier: Apache-2.0 */
/*
 * opsutil.c: the fixture of the check_ops_* suites: the key lifecycle and
 * crypto-shredding, run by the real CLI against a real server on the same
 * data directory, under load.
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
#include "opsutil.h"
#include "srvutil.h"
#include "testutil.h"

#ifndef PIIVAULT_BIN
#error "PIIVAULT_BIN must name the piivault binary"
#endif

static const char *const fname[NF] = { "email", "name" };

char cur_key[PATH_MAX];	/* the root key file in use */

char keys[K__COUNT][KEY_BUF];

/* Fixtures. */

static void
case_setup(void)
{
	su_case_setup("ops");
}

void
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

void
cli_key_argv(struct su_run *r, const char *key, const char *const *args)
{
	const char *full[ARGS_MAX + 1];

	with_key(full, args, key);
	su_cli_argv(r, child_env, full);
}

void __attribute__((sentinel))
cli_key(struct su_run *r, const char *key, ...)
{
	const char *args[ARGS_MAX + 1];
	va_list ap;

	va_start(ap, key);
	su_args_va(args, ARGS_MAX - 2, ap);
	va_end(ap);
	cli_key_argv(r, key, args);
}

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

void __attribute__((sentinel))
bg_start(struct bg *b, ...)
{
	const char *args[ARGS_MAX + 1];
	va_list ap;

	va_start(ap, b);
	su_args_va(args, ARGS_MAX - 2, ap);
	va_end(ap);
	bg_start_argv(b, args);
}

int
on_output(const struct bg *b, const void *arg)
{
	return strstr(b->buf.p, arg) != NULL;
}

void
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

void
bg_free(struct bg *b)
{
	free(b->buf.p);
	b->buf.p = NULL;
}

int __attribute__((sentinel))
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

const unsigned kill_delays[KILL_DELAYS] = { 1000, 6000, 20000, 45000 };

static void
apikey_create(char out[static KEY_BUF], const char *name, const char *role)
{
	const struct su_apikey k = { name, role, NULL, NULL, NULL };
	const char *const key[] = { "--key-file", cur_key, NULL };

	su_apikey_create(out, child_env, key, &k);
}

/* The server. */

/*
 * The load these suites drive comes from one key, faster than the default
 * --rate-limit allows on a quick machine: the limit is http_limits' to
 * test, not theirs.
 */
void
srv_start_args(const char *const *extra)
{
	const char *args[SU_ARGS_MAX + 1] = { "--rate-limit", "0" };
	size_t n = 2;

	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
		ck_assert_uint_lt(n, SU_ARGS_MAX);
		args[n++] = extra[i];
	}
	args[n] = NULL;
	su_srv_start_local(cur_key, args, child_env);
}

void
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

void
req(struct su_resp *r, const char *method, const char *path, int key,
    const char *body)
{
	char auth[KEY_BUF + 8];

	(void)snprintf(auth, sizeof(auth), "Bearer %s", keys[key]);
	su_req(r, method, path, auth, NULL, body, body ? strlen(body) : 0);
}

/* The number at o.key, or -1. */
static long long
jnum(const struct jv *o, const char *key)
{
	const struct jv *v = jget(o, key);

	return v != NULL && v->type == J_NUM ? strtoll(v->s, NULL, 10) : -1;
}

/* The code of {"error":{"code":…}} at o, or NULL. */
const char *
jcode(const struct jv *o)
{
	return jstr(jget(o, "error"), "code");
}

static const int st_allows[] = {
	[ST_LIVE] = A_VALUE,
	[ST_MAYBE_SHRED] = A_VALUE | A_SHREDDED,
	[ST_SHREDDED] = A_SHREDDED,
	[ST_MAYBE_GONE] = A_VALUE | A_KEYGONE,
	[ST_GONE] = A_KEYGONE,
};

struct orec *tab;		/* RECS_MAX of them */

static size_t tab_n;

static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;

size_t
tab_count(void)
{
	size_t n;

	(void)pthread_mutex_lock(&tab_lock);
	n = tab_n;
	(void)pthread_mutex_unlock(&tab_lock);
	return n;
}

int
allow_of(size_t i)
{
	return st_allows[atomic_load(&tab[i].st)];
}

void
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

void
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

int
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
	if ((res = jget(v, "results")) == NULL || res->type != J_ARR ||
	    v->n != 1 || res->n != n) {
		(void)snprintf(why, whylen, "detokenize: not {\"results\":"
		    "[…]} of %zu: %.300s", n, r->body.p);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct orec *o = &tab[q[i].rec];
		const char *tok = o->tok[q[i].f], *want = o->val[q[i].f];
		const char *code, *val;

		a = &res->items[i];	/* one item per token, in order */
		if (jstr(a, "token") == NULL || strcmp(jstr(a, "token"),
		    tok) != 0) {
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
			if (a->n != 4 || jstr(a, "field") == NULL ||
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
		if (a->n == 3 && code != NULL && strcmp(code, "shredded") ==
		    0 && (q[i].allow & A_SHREDDED)) {
			t->shredded++;
			continue;
		}
		if (a->n == 3 && code != NULL && strcmp(code,
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
	(void)snprintf(body, cap, "{\"field\":\"email\",\"value\":\"%s\","
	    "\"purpose\":\"service\"}", tab[i].val[0]);
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

struct ops_load load;

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

void
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

void
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

void
load_stop(void)
{
	char why[1100];

	load_halt(why, sizeof(why));
	ck_assert_msg(why[0] == '\0', "%s; log [%s]", why, su_server_log());
}

void
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

void
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

void
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

int probe_lookups;	/* probes look up too */

void
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

void
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

void
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

void
sweep_all(void)
{
	struct tally t;

	sweep(0, tab_count(), &t);
}

void
lookups(size_t from, size_t to, size_t step)
{
	for (size_t i = from; i < to; i += step)
		lookup_check(i);
}

void
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

void
kst_get(struct kst *s)
{
	kst_get_key(s, cur_key);
}

const struct kver *
kst_find(const struct kst *s, const char *kind, unsigned version)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->k[i].kind, kind) == 0 &&
		    s->k[i].version == version)
			return &s->k[i];
	ck_abort_msg("no %s version %u", kind, version);
	return NULL;
}

size_t
kst_count(const struct kst *s, const char *kind, const char *state)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->k[i].kind, kind) == 0 && (state == NULL ||
		    strcmp(s->k[i].state, state) == 0))
			n++;
	return n;
}

unsigned
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

void
assert_state(const struct kst *s, const char *kind, unsigned version,
    const char *state)
{
	ck_assert_msg(strcmp(kst_find(s, kind, version)->state, state) == 0,
	    "%s %u is %s, want %s", kind, version,
	    kst_find(s, kind, version)->state, state);
}

void
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

void
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

long long
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

void
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
	su_srv_setup();
	(void)snprintf(cur_key, sizeof(cur_key), "piivault.key");
	su_wait_ms = WAIT_MS;
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
	su_srv_teardown();
	free(tab);
	tab = NULL;
}

size_t
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

void
mark_mod(size_t from, size_t to, size_t mod, size_t rem, int st)
{
	for (size_t i = from; i < to; i++)
		if (i % mod == rem)
			atomic_store(&tab[i].st, st);
}

char *
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

void
ops_tcase(Suite *s, const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, case_setup, su_case_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, TIMEOUT);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}
