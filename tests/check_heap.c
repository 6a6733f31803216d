/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_heap.c: the secure heap cannot be exhausted by callers.  The
 * heap is sized from --secure-heap-mib and checked at start against what
 * the limits allow; detokenize holds one value at a time, so several
 * 1000-token requests of 4 KiB values, with writes beside them, all get
 * complete answers (or a 503 with Retry-After), never an item that says
 * "internal" and never a 500.
 *
 * The fixture (a vault, its API keys and a server a test) is httputil.c;
 * the first test is a unit test of base's heap functions.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "pv.h"
#include "httputil.h"
#include "srvutil.h"
#include "testutil.h"

/* Base: sizes, and the admission budget. */
START_TEST(test_heap_init_and_budget)
{
	size_t cur = pv_secure_heap_size(), want;
	void *p;

	ck_assert_int_eq(pv_secure_heap_init(3u << 20), PV_EINVAL);
	ck_assert_int_eq(pv_secure_heap_init(1u << 19), PV_EINVAL);
	/* Whatever exists now holds nothing: it may be made anew. */
	want = cur == (4u << 20) ? 8u << 20 : 4u << 20;
	ck_assert_uint_eq(pv_secure_used(), 0);
	ck_assert_int_eq(pv_secure_heap_init(want), PV_OK);
	ck_assert_uint_eq(pv_secure_heap_size(), want);
	ck_assert_int_eq(pv_secure_heap_init(want), PV_OK);
	ck_assert_ptr_nonnull(p = pv_secure_alloc(4097));
	ck_assert_uint_eq(pv_secure_used(), pv_secure_block(4097));
	ck_assert_uint_eq(pv_secure_block(4097), 8192);
	ck_assert_uint_eq(pv_secure_block(1), 32);
	/* In use: no other size. */
	ck_assert_int_eq(pv_secure_heap_init(want * 2), PV_EBUSY);
	pv_secure_free(p, 4097);
	ck_assert_int_eq(pv_secure_heap_init(want * 2), PV_OK);
	ck_assert_uint_eq(pv_secure_heap_size(), want * 2);

	/* No budget: every reservation at once. */
	ck_assert_int_eq(pv_secure_reserve(1u << 30, 0), PV_OK);
	pv_secure_release(1u << 30);
	pv_secure_budget_set(100);
	ck_assert_int_eq(pv_secure_reserve(60, 0), PV_OK);
	ck_assert_int_eq(pv_secure_reserve(50, 50), PV_EUNAVAIL);
	ck_assert_int_eq(pv_secure_reserve(101, 0), PV_ETOOBIG);
	ck_assert_int_eq(pv_secure_reserve(40, 0), PV_OK);
	pv_secure_release(60);
	ck_assert_int_eq(pv_secure_reserve(50, 0), PV_OK);
	pv_secure_release(50);
	pv_secure_release(40);
	pv_secure_budget_set(0);
}
END_TEST

/* Start-up: the size must be a power of two and must fit the limits. */
START_TEST(test_heap_start_checks)
{
	struct su_run r;

	su_srv_stop();
	cli(&r, "serve", "--listen", "127.0.0.1:0", "--secure-heap-mib", "6",
	    NULL);
	ck_assert_exit(&r, 2);
	ck_assert_msg(strstr(r.err, "power of two") != NULL, "[%s]", r.err);
	su_run_free(&r);
	/* 256 threads of 16 KiB each, and the rest: more than 4 MiB. */
	cli(&r, "serve", "--listen", "127.0.0.1:0", "--secure-heap-mib", "4",
	    "--threads", "256", NULL);
	ck_assert_exit(&r, 2);
	ck_assert_msg(strstr(r.err, "--secure-heap-mib 4 is too small") !=
	    NULL && strstr(r.err, "use --secure-heap-mib 8") != NULL,
	    "[%s]", r.err);
	su_run_free(&r);
}
END_TEST

/* Many large reads and writes beside them, on a small heap. */

#define HEAP_MIB	"4"
#define VAL_LEN		4096
#define NTOK		1000
#define FIELDS_PER_REC	50		/* 20 records of 50 fields */
#define NDETOK		4		/* concurrent detokenize clients */
#define DETOK_ROUNDS	2
#define NWRITE		2		/* concurrent writers */
#define WRITES		20

static char	*toks[NTOK];

/* Value i: distinctive, VAL_LEN bytes. */
static void
value_of(char out[static VAL_LEN + 1], size_t i)
{
	int n = snprintf(out, VAL_LEN + 1, "hv-%04zu-%d-", i, (int)getpid());

	for (size_t k = (size_t)n; k < VAL_LEN; k++)
		out[k] = (char)('a' + (i * 7 + k) % 26);
	out[VAL_LEN] = '\0';
}

struct client {
	pthread_t		 th;
	int			 id;
	pthread_barrier_t	*go;
	const char		*body;	/* detokenize clients */
	int			 ok, busy;
	double			 ms_max;
	char			 err[512];
};

static double
now_ms(void)
{
	return (double)pv_mono_us() / 1000.0;
}

/* One POST with key; -1 with c->err on a transport failure. */
static int
client_post(struct client *c, CURL *h, const char *path, const char *key,
    const char *body, struct su_resp *r)
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
	return 0;
}

/* A 503 must say when to come back. */
static int
busy_ok(struct client *c, const struct su_resp *r)
{
	if (r->status == 503 && r->hdr.p != NULL &&
	    strcasestr(r->hdr.p, "\nRetry-After:") != NULL)
		return 1;
	(void)snprintf(c->err, sizeof(c->err), "status %ld: %.300s",
	    r->status, r->body.p);
	return 0;
}

/* Every token answered with its own value, nothing else. */
static int
detok_complete(struct client *c, const struct su_resp *r)
{
	char want[VAL_LEN + 1];
	const struct jv *res;
	struct jv *v;
	int ok = 1;

	if ((v = jparse(r->body.p, r->body.len)) == NULL ||
	    (res = jget(v, "results")) == NULL || res->type != J_ARR ||
	    res->n != NTOK) {
		(void)snprintf(c->err, sizeof(c->err), "answer: %.300s",
		    r->body.p);
		jfree(v);
		return 0;
	}
	for (size_t i = 0; i < NTOK && ok; i++) {
		const struct jv *one = &res->items[i];
		const char *val = jstr(one, "value"), *t = jstr(one, "token");

		value_of(want, i);
		if (val == NULL || strcmp(val, want) != 0 || t == NULL ||
		    strcmp(t, toks[i]) != 0) {
			const struct jv *e = jget(one, "error");

			(void)snprintf(c->err, sizeof(c->err), "token %zu: %s",
			    i, e != NULL ? jstr(e, "code") : "wrong value");
			ok = 0;
		}
	}
	jfree(v);
	return ok;
}

static void *
detok_client(void *arg)
{
	struct client *c = arg;
	struct su_resp r;
	CURL *h;

	if ((h = curl_easy_init()) == NULL) {
		(void)snprintf(c->err, sizeof(c->err), "curl_easy_init");
		return NULL;
	}
	(void)pthread_barrier_wait(c->go);
	for (int k = 0; k < DETOK_ROUNDS && c->err[0] == '\0'; k++) {
		double t0 = now_ms(), dt;

		if (client_post(c, h, "/v1/detokenize", keys[K_READER],
		    c->body, &r) != 0)
			break;
		if ((dt = now_ms() - t0) > c->ms_max)
			c->ms_max = dt;
		if (r.status == 200) {
			if (detok_complete(c, &r))
				c->ok++;
		} else if (busy_ok(c, &r))
			c->busy++;
		su_resp_free(&r);
	}
	curl_easy_cleanup(h);
	return NULL;
}

static void *
write_client(void *arg)
{
	struct client *c = arg;
	char body[256];
	struct su_resp r;
	CURL *h;

	if ((h = curl_easy_init()) == NULL) {
		(void)snprintf(c->err, sizeof(c->err), "curl_easy_init");
		return NULL;
	}
	(void)pthread_barrier_wait(c->go);
	for (int k = 0; k < WRITES && c->err[0] == '\0'; k++) {
		(void)snprintf(body, sizeof(body), "{\"fields\":{\"email\":"
		    "\"w%d.%d@heap.example\",\"name\":\"W %d %d\"}}", c->id, k,
		    c->id, k);
		if (client_post(c, h, "/v1/records", keys[K_WRITER], body,
		    &r) != 0)
			break;
		if (r.status == 201)
			c->ok++;
		else if (busy_ok(c, &r))
			c->busy++;
		su_resp_free(&r);
	}
	curl_easy_cleanup(h);
	return NULL;
}

/* Store NTOK values of VAL_LEN bytes; their tokens go to toks. */
static void
store_values(void)
{
	char *val = malloc(VAL_LEN + 1), name[32];
	struct pv_buf b;
	struct su_resp r;
	size_t i = 0;

	ck_assert_ptr_nonnull(val);
	while (i < NTOK) {
		size_t first = i;
		const struct jv *tk;
		struct jv *v;

		pv_buf_init(&b, 1u << 20);
		su_buf_add(&b, "{\"fields\":{");
		for (size_t f = 0; f < FIELDS_PER_REC && i < NTOK; f++, i++) {
			if (f > 0)
				su_buf_add(&b, ",");
			(void)snprintf(name, sizeof(name), "f%02zu", f);
			su_buf_quote(&b, name);
			su_buf_add(&b, ":");
			value_of(val, i);
			su_buf_quote(&b, val);
		}
		su_buf_add(&b, "}}");
		post(&r, "/v1/records", K_WRITER, b.p);
		pv_buf_cleanup(&b);
		assert_status(&r, 201);
		v = su_body_json(&r);
		ck_assert_ptr_nonnull(tk = jget(v, "tokens"));
		for (size_t j = first; j < i; j++) {
			const char *t;

			(void)snprintf(name, sizeof(name), "f%02zu", j - first);
			ck_assert_ptr_nonnull(t = jstr(tk, name));
			free(toks[j]);
			ck_assert_ptr_nonnull(toks[j] = strdup(t));
		}
		jfree(v);
		su_resp_free(&r);
	}
	free(val);
}

START_TEST(test_heap_detokenize_under_load)
{
	static const char *const extra[] = { "--secure-heap-mib", HEAP_MIB,
	    NULL };
	static struct client c[NDETOK + NWRITE];
	pthread_barrier_t go;
	struct pv_buf body;
	int ok = 0, busy = 0, wok = 0, wbusy = 0;
	double worst = 0;
	char *log;

	su_srv_stop();
	su_srv_start_local(NULL, extra, NULL);
	store_values();
	pv_buf_init(&body, 1u << 20);
	detok_body(&body, "service", NULL, (const char *const *)toks, NTOK);
	ck_assert_int_eq(pthread_barrier_init(&go, NULL, NDETOK + NWRITE), 0);
	for (int t = 0; t < NDETOK + NWRITE; t++) {
		memset(&c[t], 0, sizeof(c[t]));
		c[t].id = t;
		c[t].go = &go;
		c[t].body = body.p;
		ck_assert_int_eq(pthread_create(&c[t].th, NULL, t < NDETOK ?
		    detok_client : write_client, &c[t]), 0);
	}
	for (int t = 0; t < NDETOK + NWRITE; t++)
		ck_assert_int_eq(pthread_join(c[t].th, NULL), 0);
	(void)pthread_barrier_destroy(&go);
	pv_buf_cleanup(&body);
	for (int t = 0; t < NDETOK + NWRITE; t++) {
		ck_assert_msg(c[t].err[0] == '\0', "client %d: %s; log [%s]",
		    t, c[t].err, su_server_log());
		if (t < NDETOK) {
			ok += c[t].ok;
			busy += c[t].busy;
			if (c[t].ms_max > worst)
				worst = c[t].ms_max;
		} else {
			wok += c[t].ok;
			wbusy += c[t].busy;
		}
	}
	ck_assert_int_eq(ok + busy, NDETOK * DETOK_ROUNDS);
	ck_assert_int_eq(wok + wbusy, NWRITE * WRITES);
	(void)printf("heap: %s MiB: detokenize of %d x %d B: %d complete, "
	    "%d busy (503), slowest %.0f ms; writes: %d stored, %d busy\n",
	    HEAP_MIB, NTOK, VAL_LEN, ok, busy, worst, wok, wbusy);
	/* The memlock warning, if any, names the size in use. */
	log = su_slurp(su_logpath, NULL);
	ck_assert_msg(log == NULL || strstr(log, "is not locked") == NULL ||
	    strstr(log, "secure heap (" HEAP_MIB " MiB)") != NULL,
	    "[%s]", log);
	free(log);
}
END_TEST

static Suite *
heap_suite(void)
{
	Suite *s = suite_create("heap");
	TCase *tc;

	tc = tcase_create("base");
	tcase_add_test(tc, test_heap_init_and_budget);
	suite_add_tcase(s, tc);
	tc = http_tcase(s, "start", 1, 60);
	tcase_add_test(tc, test_heap_start_checks);
	tc = http_tcase(s, "load", 1, 600);
	tcase_add_test(tc, test_heap_detokenize_under_load);
	return s;
}

int
main(void)
{
	return su_suite_main("check_heap", heap_suite());
}
