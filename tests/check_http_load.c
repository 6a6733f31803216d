/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_http_load.c: the server under load and when it stops: many clients
 * at once, large bodies taking turns, records kept across a restart, and
 * what SIGKILL and SIGTERM leave of acknowledged writes and of requests in
 * flight.
 *
 * The fixture (a vault, its API keys and a server a test) is httputil.c.
 * Personal values here are distinctive strings; the answers, the metrics
 * page and the server's log are searched for them where they must not be.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "pv.h"
#include "api.h"
#include "httputil.h"
#include "srvutil.h"
#include "testutil.h"

#ifndef PIIVAULT_SOURCE_DIR
#error "PIIVAULT_SOURCE_DIR must name the source tree"
#endif

/* Tests: many clients at once. */

#define CONC_THREADS	32

#define CONC_RECORDS	20

struct conc {
	pthread_t		 th;
	int			 id;
	pthread_barrier_t	*go;
	char			 err[512];	/* "" while all is well */
	struct rec		 rec[CONC_RECORDS];
};

static void
conc_values(int t, int i, char email[static 96], char name[static 96],
    char phone[static 32])
{
	(void)snprintf(email, 96, "t%02d.r%02d.%d@conc.example", t, i,
	    (int)getpid());
	(void)snprintf(name, 96, "Név \"%02d/%02d\" \\ ü", t, i);
	(void)snprintf(phone, 32, "+1 555 %02d %02d 7", t, i);
}

/* One request from a thread: -1 with c->err set on any surprise. */
static int
conc_post(struct conc *c, CURL *h, const char *path, const char *key,
    const char *body, long want, struct su_resp *r)
{
	char url[512], auth[128], err[CURL_ERROR_SIZE];
	const char *hd[] = { "Expect:", auth,
	    "Content-Type: application/json", NULL };

	(void)snprintf(url, sizeof(url), "%s%s", su_srv.base, path);
	(void)snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	if (su_http_do(h, r, "POST", url, hd, body, strlen(body), err) != 0) {
		(void)snprintf(c->err, sizeof(c->err), "%s: %s", path, err);
		return -1;
	}
	if (r->status != want) {
		(void)snprintf(c->err, sizeof(c->err), "%s: status %ld: %.300s",
		    path, r->status, r->body.p);
		su_resp_free(r);
		return -1;
	}
	return 0;
}

static void *
conc_worker(void *arg)
{
	struct conc *c = arg;
	char email[96], name[96], phone[32], body[1024], why[128];
	const char *want[3];
	struct su_resp r;
	struct jv *v = NULL;
	CURL *h;

	if ((h = curl_easy_init()) == NULL) {
		(void)snprintf(c->err, sizeof(c->err), "curl_easy_init");
		return NULL;
	}
	(void)pthread_barrier_wait(c->go);
	for (int i = 0; i < CONC_RECORDS; i++) {
		struct rec *rec = &c->rec[i];

		conc_values(c->id, i, email, name, phone);
		/* The name holds a quote and a backslash: escape them. */
		(void)snprintf(body, sizeof(body), "{\"fields\":{\"email\":"
		    "\"%s\",\"name\":\"Név \\\"%02d/%02d\\\" \\\\ ü\","
		    "\"phone\":\"%s\"}}", email, c->id, i, phone);
		if (conc_post(c, h, "/v1/records", keys[K_WRITER], body, 201,
		    &r) != 0)
			break;
		v = jparse(r.body.p, r.body.len);
		if (v == NULL || rec_from_json(v, rec, why, sizeof(why)) != 0 ||
		    rec->n != 3) {
			(void)snprintf(c->err, sizeof(c->err), "put: %s",
			    r.body.p);
			su_resp_free(&r);
			break;
		}
		jfree(v);
		v = NULL;
		su_resp_free(&r);
		(void)snprintf(body, sizeof(body), "{\"tokens\":[\"%s\","
		    "\"%s\",\"%s\"],\"purpose\":\"service\"}", rec->tok[0],
		    rec->tok[1], rec->tok[2]);
		if (conc_post(c, h, "/v1/detokenize", keys[K_READER], body,
		    200, &r) != 0)
			break;
		want[0] = email;
		want[1] = name;
		want[2] = phone;
		v = jparse(r.body.p, r.body.len);
		for (int k = 0; k < 3; k++) {
			const struct jv *all = jget(v, "results");
			const struct jv *res = all != NULL &&
			    all->type == J_ARR && all->n == 3 ?
			    &all->items[k] : NULL;
			const char *val = jstr(res, "value");

			if (val == NULL || strcmp(val, want[k]) != 0 ||
			    jstr(res, "token") == NULL ||
			    strcmp(jstr(res, "token"), rec->tok[k]) != 0 ||
			    jstr(res, "field") == NULL ||
			    strcmp(jstr(res, "field"), rec->name[k]) != 0) {
				(void)snprintf(c->err, sizeof(c->err),
				    "thread %d record %d field %d: got [%s], "
				    "want [%s]", c->id, i, k, val ? val :
				    r.body.p, want[k]);
				break;
			}
		}
		jfree(v);
		v = NULL;
		su_resp_free(&r);
		if (c->err[0] != '\0')
			break;
	}
	jfree(v);
	curl_easy_cleanup(h);
	return NULL;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

START_TEST(test_concurrent_clients)
{
	static struct conc c[CONC_THREADS];
	static const char *ids[CONC_THREADS * CONC_RECORDS * 4];
	static const int pick[][2] = { { 0, 0 }, { 31, 19 }, { 16, 7 },
	    { 5, 13 } };
	pthread_barrier_t go;
	long long before = stored();
	size_t nids = 0;

	ck_assert_int_eq(pthread_barrier_init(&go, NULL, CONC_THREADS), 0);
	for (int t = 0; t < CONC_THREADS; t++) {
		memset(&c[t], 0, sizeof(c[t]));
		c[t].id = t;
		c[t].go = &go;
		ck_assert_int_eq(pthread_create(&c[t].th, NULL, conc_worker,
		    &c[t]), 0);
	}
	for (int t = 0; t < CONC_THREADS; t++)
		ck_assert_int_eq(pthread_join(c[t].th, NULL), 0);
	(void)pthread_barrier_destroy(&go);
	for (int t = 0; t < CONC_THREADS; t++)
		ck_assert_msg(c[t].err[0] == '\0', "thread %d: %s; log [%s]",
		    t, c[t].err, su_server_log());
	ck_assert_int_eq(stored(), before + CONC_THREADS * CONC_RECORDS);

	/* No id or token handed out twice. */
	for (int t = 0; t < CONC_THREADS; t++)
		for (int i = 0; i < CONC_RECORDS; i++) {
			ids[nids++] = c[t].rec[i].id;
			for (int k = 0; k < 3; k++)
				ids[nids++] = c[t].rec[i].tok[k];
		}
	qsort(ids, nids, sizeof(ids[0]), cmp_str);
	for (size_t i = 1; i < nids; i++)
		ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0, "%s twice",
		    ids[i]);

	/* Each unique email is found once, in its own record. */
	for (size_t i = 0; i < NELEM(pick); i++) {
		const struct rec *rec = &c[pick[i][0]].rec[pick[i][1]];
		char email[96], name[96], phone[32];
		struct jv *v;

		conc_values(pick[i][0], pick[i][1], email, name, phone);
		v = lookup(K_READER, "email", email);
		assert_one_match(v, rec->id, tok_of(rec, "email"));
		jfree(v);
		v = lookup(K_WRITER, "phone", phone);
		assert_one_match(v, rec->id, tok_of(rec, "phone"));
		jfree(v);
	}
}
END_TEST

/*
 * Large bodies take turns (--max-large 1): each turn is given back, so
 * that every one of several concurrent large batches is served, whole.
 */
#define LARGE_THREADS	4

#define LARGE_ROUNDS	3

#define LARGE_RECORDS	400

struct large {
	pthread_t	 th;
	int		 id;
	pthread_barrier_t *go;
	int		 stored;
	char		 err[512];
};

static void *
large_worker(void *arg)
{
	struct large *c = arg;
	struct conc cc;
	struct su_gbuf b = { NULL, 0 };
	struct su_resp r;
	char rec[160];
	CURL *h;
	int n;

	memset(&cc, 0, sizeof(cc));
	if ((h = curl_easy_init()) == NULL) {
		(void)snprintf(c->err, sizeof(c->err), "curl_easy_init");
		return NULL;
	}
	(void)pthread_barrier_wait(c->go);
	for (int round = 0; round < LARGE_ROUNDS; round++) {
		free(b.p);
		b.p = NULL;
		b.len = 0;
		for (int i = 0; i < LARGE_RECORDS; i++) {
			n = snprintf(rec, sizeof(rec), "%s{\"fields\":{"
			    "\"name\":\"Large %d/%d/%03d padded to be long "
			    "enough\"}}%s", i == 0 ? "{\"records\":[" : "",
			    c->id, round, i, i + 1 == LARGE_RECORDS ? "]}" :
			    ",");
			if (su_gbuf_add(&b, rec, (size_t)n) != 0) {
				(void)snprintf(c->err, sizeof(c->err), "oom");
				goto out;
			}
		}
		if (b.len <= 16 * 1024) {
			(void)snprintf(c->err, sizeof(c->err), "body of %zu "
			    "bytes is not large", b.len);
			goto out;
		}
		if (conc_post(&cc, h, "/v1/records/batch", keys[K_WRITER],
		    b.p, 200, &r) != 0) {
			memcpy(c->err, cc.err, sizeof(c->err));
			goto out;
		}
		for (const char *p = r.body.p; (p = strstr(p, "\"id\":")) !=
		    NULL; p++)
			c->stored++;
		su_resp_free(&r);
	}
out:
	free(b.p);
	curl_easy_cleanup(h);
	return NULL;
}

START_TEST(test_large_bodies_take_turns)
{
	static const char *const args[] = { "--listen", "127.0.0.1:0",
	    "--max-large", "1", NULL };
	static struct large c[LARGE_THREADS];
	pthread_barrier_t go;
	long long before;

	su_srv_stop();
	srv_start_args(args);
	before = stored();
	ck_assert_int_eq(pthread_barrier_init(&go, NULL, LARGE_THREADS), 0);
	for (int t = 0; t < LARGE_THREADS; t++) {
		memset(&c[t], 0, sizeof(c[t]));
		c[t].id = t;
		c[t].go = &go;
		ck_assert_int_eq(pthread_create(&c[t].th, NULL, large_worker,
		    &c[t]), 0);
	}
	for (int t = 0; t < LARGE_THREADS; t++)
		ck_assert_int_eq(pthread_join(c[t].th, NULL), 0);
	(void)pthread_barrier_destroy(&go);
	for (int t = 0; t < LARGE_THREADS; t++) {
		ck_assert_msg(c[t].err[0] == '\0', "thread %d: %s; log [%s]",
		    t, c[t].err, su_server_log());
		ck_assert_int_eq(c[t].stored, LARGE_ROUNDS * LARGE_RECORDS);
	}
	ck_assert_int_eq(stored(), before +
	    LARGE_THREADS * LARGE_ROUNDS * LARGE_RECORDS);
}
END_TEST

/* Tests: restarts, crashes and shutdown. */

/* A token and the value it must give back. */
struct kept {
	char	 tok[ID_BUF];
	char	 field[16];
	char	 value[96];
};

/* Every kept token resolves to its value (1000 at a time). */
static void
assert_kept(const struct kept *k, size_t n)
{
	const char **toks;

	ck_assert_ptr_nonnull(toks = calloc(n ? n : 1, sizeof(*toks)));
	for (size_t i = 0; i < n; i++)
		toks[i] = k[i].tok;
	for (size_t off = 0; off < n; off += 1000) {
		size_t m = n - off < 1000 ? n - off : 1000;
		struct jv *v = detok(K_READER, "service", NULL, toks + off, m);

		for (size_t i = off; i < off + m; i++)
			su_assert_value(v, k[i].tok, k[i].field, k[i].value);
		jfree(v);
	}
	free(toks);
}

START_TEST(test_restart_keeps_records)
{
	static struct kept k[80];
	size_t n = 0;
	char email[96], name[96];
	struct rec rec;
	struct su_resp r;
	struct jv *v;
	struct pv_buf b;

	for (int i = 0; i < 30; i++) {
		struct su_fv f[2] = { { "email", email }, { "name", name } };

		(void)snprintf(email, sizeof(email), "restart%02d@r.example",
		    i);
		(void)snprintf(name, sizeof(name), "Restart \"%02d\" ß", i);
		put(f, 2, i % 2, 0, &rec);
		for (int j = 0; j < 2; j++) {
			memcpy(k[n].tok, rec.tok[j], ID_BUF);
			(void)snprintf(k[n].field, sizeof(k[n].field), "%s",
			    f[j].name);
			(void)snprintf(k[n].value, sizeof(k[n].value), "%s",
			    f[j].value);
			n++;
		}
	}
	/* And a batch. */
	pv_buf_init(&b, 1u << 20);
	su_buf_add(&b, "{\"records\":[");
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(pv_buf_printf(&b, "%s{\"fields\":{\"city\":"
		    "\"Batch City %02d\"}}", i ? "," : "", i), PV_OK);
	su_buf_add(&b, "]}");
	post(&r, "/v1/records/batch", K_WRITER, b.p);
	pv_buf_cleanup(&b);
	assert_status(&r, 200);
	v = su_body_json(&r);
	ck_assert_uint_eq(jget(v, "results")->n, 20);
	for (size_t i = 0; i < 20; i++) {
		const char *t = jstr(jget(&jget(v, "results")->items[i],
		    "tokens"), "city");

		ck_assert_msg(su_id_valid(t, "tok_"), "batch result %zu", i);
		memcpy(k[n].tok, t, ID_BUF);
		(void)snprintf(k[n].field, sizeof(k[n].field), "city");
		(void)snprintf(k[n].value, sizeof(k[n].value),
		    "Batch City %02zu", i);
		n++;
	}
	jfree(v);
	su_resp_free(&r);
	ck_assert_int_eq(stored(), 50);

	su_srv_stop();
	srv_start();
	ck_assert_int_eq(stored(), 50);
	assert_kept(k, n);
	v = lookup(K_READER, "email", "RESTART07@r.example");
	ck_assert_uint_eq(jget(v, "matches")->n, 1);
	jfree(v);
	/* And it goes on writing where it left off. */
	put((const struct su_fv[]){ { "name", "After Restart" } }, 1, 0, 0, &rec);
	ck_assert_int_eq(stored(), 51);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_ne(rec.tok[0], k[i].tok);
}
END_TEST

#define POOL_THREADS	8

#define POOL_MAX	400

/* A writer that goes on until told to stop or the server goes away. */
struct pool {
	pthread_t	 th;
	int		 id;
	atomic_int	*acked;		/* all threads' 201s */
	atomic_int	*stop;
	size_t		 n;
	struct kept	 k[POOL_MAX];
	char		 bad[512];	/* an answer that is not allowed */
	int		 unavailable;	/* 503s seen */
};

static void *
pool_worker(void *arg)
{
	struct pool *p = arg;
	char url[512], auth[128], err[CURL_ERROR_SIZE], body[256], why[128];
	const char *hd[] = { "Expect:", auth,
	    "Content-Type: application/json", NULL };
	struct su_resp r;
	struct rec rec;
	struct jv *v;
	CURL *h;

	if ((h = curl_easy_init()) == NULL)
		return NULL;
	(void)snprintf(url, sizeof(url), "%s/v1/records", su_srv.base);
	(void)snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	    keys[K_WRITER]);
	while (!atomic_load(p->stop) && p->n < POOL_MAX) {
		struct kept *k = &p->k[p->n];

		(void)snprintf(k->value, sizeof(k->value), "pool w%d n%zu %d",
		    p->id, p->n, (int)getpid());
		(void)snprintf(k->field, sizeof(k->field), "name");
		(void)snprintf(body, sizeof(body), "{\"fields\":{\"name\":"
		    "\"%s\"}}", k->value);
		if (su_http_do(h, &r, "POST", url, hd, body, strlen(body),
		    err) != 0)
			break;		/* the server is gone */
		if (r.status == 503) {
			v = jparse(r.body.p, r.body.len);
			if (jstr(jget(v, "error"), "code") == NULL ||
			    strcmp(jstr(jget(v, "error"), "code"),
			    "unavailable") != 0)
				(void)snprintf(p->bad, sizeof(p->bad),
				    "503: %s", r.body.p);
			jfree(v);
			p->unavailable++;
			su_resp_free(&r);
			break;
		}
		v = r.status == 201 ? jparse(r.body.p, r.body.len) : NULL;
		if (v == NULL ||
		    rec_from_json(v, &rec, why, sizeof(why)) != 0) {
			(void)snprintf(p->bad, sizeof(p->bad), "%ld: %s",
			    r.status, r.body.p);
			jfree(v);
			su_resp_free(&r);
			break;
		}
		memcpy(k->tok, rec.tok[0], ID_BUF);
		p->n++;
		atomic_fetch_add(p->acked, 1);
		jfree(v);
		su_resp_free(&r);
	}
	curl_easy_cleanup(h);
	return NULL;
}

/*
 * Writers hammer the server until at least min writes are acknowledged;
 * then sig; then, after a restart, every acknowledged write is there.
 */
static void
writes_survive(int sig, int min)
{
	static struct pool p[POOL_THREADS];
	static struct kept all[POOL_THREADS * POOL_MAX];
	atomic_int acked = 0, stop = 0;
	size_t n = 0;
	int st, i;

	for (int t = 0; t < POOL_THREADS; t++) {
		memset(&p[t], 0, sizeof(p[t]));
		p[t].id = t;
		p[t].acked = &acked;
		p[t].stop = &stop;
		ck_assert_int_eq(pthread_create(&p[t].th, NULL, pool_worker,
		    &p[t]), 0);
	}
	for (i = 0; i < 3000 && atomic_load(&acked) < min; i++)
		(void)usleep(10000);
	st = su_srv_signal(sig);
	atomic_store(&stop, 1);
	for (int t = 0; t < POOL_THREADS; t++)
		ck_assert_int_eq(pthread_join(p[t].th, NULL), 0);
	ck_assert_msg(atomic_load(&acked) >= min, "only %d writes acked",
	    atomic_load(&acked));
	if (sig == SIGKILL)
		ck_assert_int_eq(st, 128 + SIGKILL);
	else
		ck_assert_msg(st == 0, "exit %d after SIGTERM with requests "
		    "in flight; log [%s]", st, su_server_log());
	for (int t = 0; t < POOL_THREADS; t++) {
		ck_assert_msg(p[t].bad[0] == '\0', "writer %d got %s", t,
		    p[t].bad);
		memcpy(all + n, p[t].k, p[t].n * sizeof(all[0]));
		n += p[t].n;
	}
	srv_start();
	ck_assert_int_ge(stored(), (long long)n);
	assert_kept(all, n);
}

START_TEST(test_sigkill_keeps_acknowledged)
{
	static struct kept k[20];
	struct rec rec;

	/* One by one, then under load. */
	for (int i = 0; i < 20; i++) {
		const struct su_fv g[] = { { "name", k[i].value } };

		(void)snprintf(k[i].value, sizeof(k[i].value), "killed %d", i);
		(void)snprintf(k[i].field, sizeof(k[i].field), "name");
		put(g, 1, 0, 0, &rec);
		memcpy(k[i].tok, rec.tok[0], ID_BUF);
	}
	ck_assert_int_eq(su_srv_signal(SIGKILL), 128 + SIGKILL);
	srv_start();
	ck_assert_int_eq(stored(), 20);
	assert_kept(k, 20);
	writes_survive(SIGKILL, 200);
	assert_kept(k, 20);	/* and through the second crash too */
}
END_TEST

START_TEST(test_sigterm_in_flight)
{
	writes_survive(SIGTERM, 200);
}
END_TEST

/*
 * A client that sends its headers and never the rest of its body is a
 * request in flight that never finishes: SIGTERM still ends the server,
 * with 0, once the drain gives up (api.h: up to 10 seconds).  Meanwhile
 * connections already open are answered: health and writes 503 (writes
 * with Retry-After: 1, health without), the metrics still 200.
 */
START_TEST(test_sigterm_stalled_client)
{
	static const char part[] = "POST /v1/records HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
	    "Content-Length: 200\r\n\r\n{\"fields\":{\"name\":\"zq-stall-";
	struct timespec t0, t1;
	struct su_resp r;
	struct rec rec;
	char retry[32];
	double secs;
	int fd, st;

	/* Leaves this test's connection open, for use during the drain. */
	put((const struct su_fv[]){ { "name", "Before Stall" } }, 1, 0, 0, &rec);
	fd = raw_connect();
	ck_assert_int_eq(write(fd, part, sizeof(part) - 1),
	    (ssize_t)(sizeof(part) - 1));
	(void)usleep(200000);
	ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &t0), 0);
	ck_assert_int_eq(kill(su_srv.pid, SIGTERM), 0);
	for (int i = 0; i < 500; i++) {
		req(&r, "GET", "/v1/health", K_NONE, NULL, NULL);
		if (r.status != 200)
			break;
		su_resp_free(&r);
		(void)usleep(10000);
	}
	assert_error(&r, 503, "unavailable", NULL);
	ck_assert_ptr_null(su_header(&r, "Retry-After"));
	su_resp_free(&r);
	free(metrics());
	post(&r, "/v1/records", K_WRITER, GOOD_REC);
	assert_error(&r, 503, "unavailable", "zq-");
	(void)snprintf(retry, sizeof(retry), "%s", su_header(&r, "Retry-After") ?
	    su_header(&r, "Retry-After") : "(none)");
	su_resp_free(&r);

	st = su_srv_wait();
	ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &t1), 0);
	(void)close(fd);
	ck_assert_msg(st == 0, "exit %d; log [%s]", st, su_server_log());
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(secs < 20.0, "SIGTERM took %.1f s", secs);
	srv_start();
	ck_assert_int_eq(stored(), 1);
	/* Last, so that it hides nothing above: openapi.yaml's promise. */
	ck_assert_msg(strcmp(retry, "1") == 0, "503 while shutting down: "
	    "Retry-After %s, want 1", retry);
}
END_TEST

static Suite *
http_load_suite(void)
{
	Suite *s = suite_create("http_load");
	TCase *tc;

	tc = http_tcase(s, "load", 1, 2 * TIMEOUT);
	tcase_add_test(tc, test_concurrent_clients);
	tcase_add_test(tc, test_large_bodies_take_turns);
	tcase_add_test(tc, test_restart_keeps_records);
	tcase_add_test(tc, test_sigkill_keeps_acknowledged);
	tcase_add_test(tc, test_sigterm_in_flight);
	tcase_add_test(tc, test_sigterm_stalled_client);
	return s;
}

int
main(void)
{
	/* 32 clients on one key: the rate limit is http_limits' to test. */
	static const char *const unlimited[] = { "--rate-limit", "0", NULL };

	srv_default_extra = unlimited;
	return su_suite_main("check_http_load", http_load_suite());
}
