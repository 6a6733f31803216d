/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_http_limits.c: the request rate limit (--rate-limit), over real
 * HTTP: a burst over the limit answers 429 rate_limited with Retry-After;
 * the refusals of a window are logged as the first one's event and one
 * summary whose count is exact; one key's burst leaves another key, and
 * one address's flood another address, unaffected; a flood of
 * unauthenticated requests does not cost an audit event each; and the
 * limit is off with --rate-limit 0.  /metrics shows the integrity alarms
 * (vault_alarms) and whether storage is failing.
 *
 * The fixture (a vault, its API keys and a server a test) is httputil.c;
 * each test restarts the server with the limit it needs.  Loops are
 * bounded in count; nothing asserts a duration.  The figures (answers,
 * events written) are printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "pv.h"
#include "api.h"
#include "httputil.h"
#include "srvutil.h"
#include "testutil.h"

#define RATE		"5"	/* requests a second, in these tests */
#define BURST		60	/* requests of a burst: well over the rate */
#define BAD_KEY		"Bearer pvk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* Restart the server with --rate-limit rate. */
static void
restart(const char *rate)
{
	const char *const extra[] = { "--rate-limit", rate, NULL };

	su_srv_stop();
	su_curl_cleanup();
	su_srv_start_local(NULL, extra, NULL);
}

/* A 429 of the rate limit: its code and a Retry-After of 1 s or more. */
static void
assert_rate_limited(const struct su_resp *r)
{
	const char *ra;

	assert_error(r, 429, "rate_limited", NULL);
	ra = su_header(r, "Retry-After");	/* a static buffer */
	ck_assert_msg(ra != NULL && strtoul(ra, NULL, 10) >= 1,
	    "Retry-After [%s]", ra ? ra : "(none)");
}

/* What the audit log says about the refusals, from piivault audit export. */
struct refusals {
	size_t	first;		/* events of a window's first refusal */
	size_t	summaries;
	size_t	summarised;	/* the counts the summaries give */
	size_t	unauth;		/* 401 events */
	size_t	events;
};

static void
read_refusals(struct refusals *o, const char *action)
{
	char want[96];
	struct su_run run;
	char *line, *next;

	memset(o, 0, sizeof(*o));
	(void)snprintf(want, sizeof(want), "\"action\":\"%s\"", action);
	cli(&run, "audit", "export", NULL);
	ck_assert_exit(&run, 0);
	for (line = run.out; line != NULL && *line != '\0'; line = next) {
		const char *rsn;

		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		o->events++;
		if (strstr(line, "\"action\":\"rate_limit.summary\"") != NULL) {
			unsigned long long n;

			rsn = strstr(line, "\"reason\":\"");
			ck_assert_msg(rsn != NULL && sscanf(rsn + 10,
			    "%llu more requests refused", &n) == 1,
			    "summary: [%s]", line);
			o->summaries++;
			o->summarised += (size_t)n;
			continue;
		}
		if (strstr(line, want) == NULL)
			continue;
		if (strstr(line, "\"code\":\"rate_limited\"") != NULL)
			o->first++;
		else if (strstr(line, "\"code\":\"unauthenticated\"") != NULL)
			o->unauth++;
	}
	su_run_free(&run);
}

/*
 * A burst of one key: 429 with Retry-After past the rate, while another
 * key is answered; the audit log has the first refusal of the window and
 * a summary, whose counts add up to the 429s exactly.
 */
START_TEST(test_rate_key_burst)
{
	struct refusals o;
	struct su_resp r;
	size_t ok = 0, refused = 0;
	char *m, series[64];

	restart(RATE);
	for (int i = 0; i < BURST; i++) {
		post(&r, "/v1/detokenize", K_READER, GOOD_DETOK);
		if (r.status == 200)
			ok++;
		else {
			assert_rate_limited(&r);
			refused++;
		}
		su_resp_free(&r);
	}
	printf("rate_key_burst: %zu answered, %zu refused of %d\n", ok,
	    refused, BURST);
	ck_assert_msg(refused > 0, "no request of a burst of %d over %s/s "
	    "was refused", BURST, RATE);
	/* Another key is not touched by this one's burst. */
	for (int i = 0; i < 3; i++) {
		post(&r, "/v1/detokenize", K_SERVICE, GOOD_DETOK);
		assert_status(&r, 200);
		su_resp_free(&r);
	}
	(void)snprintf(series, sizeof(series),
	    "piivault_rate_limited_total{by=\"key\"}");
	m = metrics();
	ck_assert_int_eq(metric(m, series), (long long)refused);
	free(m);
	/* The next admitted request closes the window: its summary. */
	(void)usleep(1200 * 1000);
	post(&r, "/v1/detokenize", K_READER, GOOD_DETOK);
	assert_status(&r, 200);
	su_resp_free(&r);
	su_srv_stop();
	read_refusals(&o, "detokenize");
	printf("rate_key_burst: events: %zu first refusals, %zu summaries "
	    "counting %zu\n", o.first, o.summaries, o.summarised);
	ck_assert_uint_ge(o.first, 1);
	ck_assert_uint_eq(o.first + o.summarised, refused);
	ck_assert_uint_le(o.summaries, o.first);
	srv_start();
}
END_TEST

/*
 * A flood of unauthenticated requests from one address: past the rate
 * they are 429, and the audit log gets far fewer events than requests,
 * still counting every one.
 */
START_TEST(test_rate_unauth_flood)
{
	const char *auth = BAD_KEY;
	struct refusals before, o;
	struct su_resp r;
	size_t n401 = 0, n429 = 0, flood = 4 * BURST;
	long long c0, c1;
	char *m;

	su_srv_stop();
	read_refusals(&before, "records.create");
	su_srv_start_local(NULL, (const char *const[]){ "--rate-limit", RATE,
	    NULL }, NULL);
	m = metrics();
	c0 = metric(m, "piivault_commits_total");
	free(m);
	for (size_t i = 0; i < flood; i++) {
		req_auth(&r, "POST", "/v1/records", K_RAW, auth, NULL,
		    GOOD_REC, strlen(GOOD_REC));
		if (r.status == 401)
			n401++;
		else {
			assert_rate_limited(&r);
			n429++;
		}
		su_resp_free(&r);
	}
	m = metrics();
	c1 = metric(m, "piivault_commits_total");
	ck_assert_int_eq(metric(m, "piivault_rate_limited_total{by="
	    "\"address\"}"), (long long)n429);
	free(m);
	(void)usleep(1200 * 1000);
	req_auth(&r, "POST", "/v1/records", K_RAW, auth, NULL, GOOD_REC,
	    strlen(GOOD_REC));
	assert_status(&r, 401);
	su_resp_free(&r);
	n401++;
	su_srv_stop();
	read_refusals(&o, "records.create");
	o.unauth -= before.unauth;
	o.events -= before.events;
	printf("rate_unauth_flood: %zu requests: %zu 401, %zu 429; %zu "
	    "events written (%zu first refusals, %zu summaries counting "
	    "%zu); %lld commits\n", flood + 1, n401, n429, o.events, o.first,
	    o.summaries, o.summarised, c1 - c0);
	ck_assert_msg(n429 > 0, "no 401 of %zu was refused", flood);
	ck_assert_uint_eq(o.unauth, n401);
	ck_assert_uint_eq(o.first + o.summarised, n429);
	/* Not one event each: the refused ones cost a summary a window. */
	ck_assert_uint_lt(o.events, (flood + 1) / 2);
	srv_start();
}
END_TEST

/* One address's flood leaves another address answered. */
START_TEST(test_rate_per_address)
{
	const char *auth = BAD_KEY;
	struct curl_slist *hl = NULL;
	char err[CURL_ERROR_SIZE], url[256];
	size_t n429 = 0;
	CURL *c;

	restart(RATE);
	ck_assert_ptr_nonnull(c = curl_easy_init());
	(void)snprintf(url, sizeof(url), "%s/v1/records", su_srv.base);
	ck_assert_ptr_nonnull(hl = curl_slist_append(hl, "Content-Type: "
	    "application/json"));
	{
		char h[128];

		(void)snprintf(h, sizeof(h), "Authorization: %s", auth);
		ck_assert_ptr_nonnull(hl = curl_slist_append(hl, h));
	}
	for (int i = 0; i < BURST; i++) {
		long st = 0;

		curl_easy_reset(c);
		(void)curl_easy_setopt(c, CURLOPT_URL, url);
		(void)curl_easy_setopt(c, CURLOPT_PROXY, "");
		(void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		(void)curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
		(void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
		(void)curl_easy_setopt(c, CURLOPT_INTERFACE, "127.0.0.2");
		(void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
		(void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, GOOD_REC);
		(void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
		ck_assert_msg(curl_easy_perform(c) == CURLE_OK, "%s", err);
		(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
		ck_assert_msg(st == 401 || st == 429, "status %ld", st);
		n429 += st == 429;
	}
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	printf("rate_per_address: 127.0.0.2: %zu of %d refused\n", n429,
	    BURST);
	ck_assert_uint_gt(n429, 0);
	/* 127.0.0.1, unauthenticated too, is still answered 401. */
	for (int i = 0; i < 3; i++) {
		struct su_resp r;

		req_auth(&r, "POST", "/v1/records", K_RAW, auth, NULL,
		    GOOD_REC, strlen(GOOD_REC));
		assert_error(&r, 401, "unauthenticated", NULL);
		su_resp_free(&r);
	}
}
END_TEST

/* --rate-limit 0: no limit. */
START_TEST(test_rate_off)
{
	struct su_resp r;

	restart("0");
	for (int i = 0; i < BURST; i++) {
		post(&r, "/v1/detokenize", K_READER, GOOD_DETOK);
		assert_status(&r, 200);
		su_resp_free(&r);
	}
}
END_TEST

/* /metrics shows the integrity alarms and the storage state. */
START_TEST(test_metrics_alarms)
{
	char *m = metrics();

	ck_assert_int_eq(metric(m, "piivault_integrity_alarms_total"), 0);
	ck_assert_int_eq(metric(m, "piivault_storage_degraded"), 0);
	ck_assert_int_eq(metric(m, "piivault_rate_limited_total{by="
	    "\"address\"}"), 0);
	free(m);
}
END_TEST

static Suite *
http_limits_suite(void)
{
	Suite *s = suite_create("http_limits");
	TCase *tc;

	tc = http_tcase(s, "rate", 1, TIMEOUT);
	tcase_add_test(tc, test_rate_key_burst);
	tcase_add_test(tc, test_rate_unauth_flood);
	tcase_add_test(tc, test_rate_per_address);
	tcase_add_test(tc, test_rate_off);
	tcase_add_test(tc, test_metrics_alarms);
	return s;
}

int
main(void)
{
	return su_suite_main("check_http_limits", http_limits_suite());
}
