/* SPDX-License-Identifier: Apache-2.0 */
/*
 * httputil.c: the fixture of the check_http_* suites; see httputil.h.
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

#ifndef PIIVAULT_BIN
#error "PIIVAULT_BIN must name the piivault binary"
#endif

char keys[K__COUNT][KEY_BUF];

/* Fixtures. */

static void
case_setup(void)
{
	su_case_setup("http");
}

/* Running the binary. */

void
apikey_create(char out[static KEY_BUF], const char *name, const char *role,
    const char *purposes, const char *fields, const char *reveal)
{
	const struct su_apikey k = { name, role, purposes, fields, reveal };

	su_apikey_create(out, NULL, NULL, &k);
}

/* The server. */

void
srv_start_args(const char *const *extra)
{
	static const char *const serve[] = { "serve", NULL };

	su_srv_start(serve, extra, NULL);
}

const char *const *srv_default_extra;

void
srv_start(void)
{
	su_srv_start_local(NULL, srv_default_extra, NULL);
}

/* The API keys of every test's vault, in the order of K_*. */
static const struct su_apikey fixture_keys[K__COUNT] = {
	[K_WRITER] = { "app-writer", "writer", NULL, NULL, NULL },
	[K_READER] = { "app-reader", "reader",
	    "service,notices,marketing,research,contest,payment,legal", NULL,
	    NULL },
	[K_SERVICE] = { "svc-reader", "reader", "service", NULL, NULL },
	[K_MASKED] = { "masked-reader", "reader", "service,research", NULL,
	    "masked" },
	[K_EMAIL] = { "email-reader", "reader", "service", "email", NULL },
	[K_ADMIN] = { "ops-admin", "admin", NULL, NULL, NULL },
	[K_AUDITOR] = { "ops-auditor", "auditor", NULL, NULL, NULL },
	[K_GONE] = { "gone-reader", "reader", "service", NULL, NULL },
};

static void
setup(void)
{
	struct su_run r;

	su_srv_setup();
	cli(&r, "init", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	for (int k = 0; k < K__COUNT; k++)
		su_apikey_create(keys[k], NULL, NULL, &fixture_keys[k]);
	srv_start();
}

/* HTTP. */

void
req_auth(struct su_resp *r, const char *method, const char *path, int key,
    const char *auth, const char *ctype, const char *body, size_t len)
{
	char bearer[KEY_BUF + 8];

	if (key >= 0) {
		(void)snprintf(bearer, sizeof(bearer), "Bearer %s", keys[key]);
		auth = bearer;
	} else if (key != K_RAW)
		auth = NULL;
	su_req(r, method, path, auth, ctype, body, len);
}

void
req(struct su_resp *r, const char *method, const char *path, int key,
    const char *ctype, const char *body)
{
	req_auth(r, method, path, key, NULL, ctype, body,
	    body ? strlen(body) : 0);
}

void
post(struct su_resp *r, const char *path, int key, const char *body)
{
	req(r, "POST", path, key, NULL, body);
}

/* Records and tokens. */

int
rec_from_json(const struct jv *v, struct rec *out, char *why, size_t whylen)
{
	const struct jv *toks = jget(v, "tokens");
	const char *id = jstr(v, "id");

	memset(out, 0, sizeof(*out));
	if (v == NULL || v->type != J_OBJ || v->n != 2 || !su_id_valid(id,
	    "rec_") || toks == NULL || toks->type != J_OBJ ||
	    toks->n > REC_FIELDS) {
		(void)snprintf(why, whylen, "not {\"id\":…,\"tokens\":…}");
		return -1;
	}
	memcpy(out->id, id, ID_BUF);
	for (size_t i = 0; i < toks->n; i++) {
		if (toks->items[i].type != J_STR ||
		    !su_id_valid(toks->items[i].s, "tok_") ||
		    strlen(toks->keys[i]) > PV_FIELD_NAME_MAX) {
			(void)snprintf(why, whylen, "bad token for %s",
			    toks->keys[i]);
			return -1;
		}
		memcpy(out->name[i], toks->keys[i], strlen(toks->keys[i]) + 1);
		memcpy(out->tok[i], toks->items[i].s, ID_BUF);
		for (size_t k = 0; k < i; k++)
			if (strcmp(out->tok[k], out->tok[i]) == 0) {
				(void)snprintf(why, whylen, "a token twice");
				return -1;
			}
	}
	out->n = toks->n;
	return 0;
}

const char *
tok_of(const struct rec *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->name[i], name) == 0)
			return r->tok[i];
	ck_abort_msg("no token for field %s", name);
	return NULL;
}

void
put_raw(const char *body, struct rec *out)
{
	struct su_resp r;
	struct jv *v;
	char why[128];

	post(&r, "/v1/records", K_WRITER, body);
	assert_status(&r, 201);
	ck_assert_pstr_eq(su_header(&r, "Content-Type"), "application/json");
	v = su_body_json(&r);
	ck_assert_msg(rec_from_json(v, out, why, sizeof(why)) == 0,
	    "%s: [%s]", why, r.body.p);
	jfree(v);
	su_resp_free(&r);
}

void
put(const struct su_fv *f, size_t n, int consent, int days, struct rec *out)
{
	struct pv_buf b;

	pv_buf_init(&b, 1u << 20);
	su_record_body(&b, f, n, consent, days);
	put_raw(b.p, out);
	pv_buf_cleanup(&b);
	ck_assert_uint_eq(out->n, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(out->name[i], f[i].name);
}

void
detok_body(struct pv_buf *b, const char *purpose, const char *reason,
    const char *const *toks, size_t n)
{
	su_buf_add(b, "{\"tokens\":[");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			su_buf_add(b, ",");
		su_buf_quote(b, toks[i]);
	}
	su_buf_add(b, "],\"purpose\":");
	su_buf_quote(b, purpose);
	if (reason != NULL) {
		su_buf_add(b, ",\"reason\":");
		su_buf_quote(b, reason);
	}
	su_buf_add(b, "}");
}

struct jv *
detok(int key, const char *purpose, const char *reason,
    const char *const *toks, size_t n)
{
	const struct jv *res;
	struct pv_buf b;
	struct su_resp r;
	struct jv *v;

	pv_buf_init(&b, 1u << 20);
	detok_body(&b, purpose, reason, toks, n);
	post(&r, "/v1/detokenize", key, b.p);
	pv_buf_cleanup(&b);
	assert_status(&r, 200);
	ck_assert_pstr_eq(su_header(&r, "Content-Type"), "application/json");
	v = su_body_json(&r);	/* also: values must not linger in caches */
	res = jget(v, "results");
	ck_assert_msg(v->type == J_OBJ && v->n == 1 && res != NULL &&
	    res->type == J_ARR, "not {\"results\":[…]}: [%.300s]", r.body.p);
	/* One item per string sent, in order, duplicates too. */
	ck_assert_uint_eq(res->n, n);
	for (size_t i = 0; i < n; i++) {
		const struct jv *it = su_item(v, i);
		const char *t = jstr(it, "token");

		if (su_id_valid(toks[i], "tok_"))
			ck_assert_pstr_eq(t, toks[i]);
		else	/* never echoed: it may be a value sent by mistake */
			ck_assert_msg(jget(it, "token") == NULL,
			    "item %zu echoes what is not a token", i);
	}
	su_resp_free(&r);
	return v;
}

void
assert_masked(const struct jv *doc, const char *tok, const char *field,
    const char *masked, char *psn)
{
	const struct jv *r = su_result(doc, tok);
	const char *p = jstr(r, "pseudonym");

	ck_assert_msg(jget(r, "value") == NULL, "%s: a value", tok);
	ck_assert_pstr_eq(jstr(r, "field"), field);
	ck_assert_pstr_eq(jstr(r, "masked"), masked);
	if (psn != NULL) {
		ck_assert_uint_eq(r->n, 5);
		ck_assert_msg(su_id_valid(p, "psn_"), "%s: pseudonym [%s]", tok,
		    p ? p : "(none)");
		memcpy(psn, p, PSN_BUF);
	} else {
		ck_assert_uint_eq(r->n, 4);
		ck_assert_ptr_null(p);
	}
}

/* Metrics. */

char *
metrics(void)
{
	struct su_resp r;
	char *m;

	req(&r, "GET", "/metrics", K_NONE, NULL, NULL);
	assert_status(&r, 200);
	ck_assert_msg(su_header(&r, "Content-Type") != NULL &&
	    strncmp(su_header(&r, "Content-Type"), "text/plain", 10) == 0,
	    "metrics content type [%s]", r.hdr.p);
	su_assert_common_headers(&r);
	ck_assert_msg(r.body.len >= 2 && strcmp(r.body.p + r.body.len - 2,
	    "\n\n") == 0, "metrics do not end with an empty line");
	m = r.body.p;
	r.body.p = NULL;
	su_resp_free(&r);
	return m;
}

long long
metric(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p != NULL && *p != '\0';) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return -1;
}

long long
stored(void)
{
	char *m = metrics();
	long long n = metric(m, "piivault_records_stored");

	ck_assert_msg(n >= 0, "no piivault_records_stored: [%s]", m);
	free(m);
	return n;
}

char *
metrics_until(const char *series, long long want)
{
	char *m = NULL;

	for (int i = 0; i < 200; i++) {
		free(m);
		m = metrics();
		if (metric(m, series) == want)
			return m;
		(void)usleep(10000);
	}
	ck_abort_msg("%s is %lld, want %lld: [%s]", series, metric(m, series),
	    want, m);
	return m;
}

/* Errors. */

void
assert_not_leaked(const struct su_resp *r, const char *secret)
{
	char *log;

	if (secret == NULL)
		return;
	ck_assert_msg(strstr(r->body.p, secret) == NULL,
	    "answer holds [%s]: [%s]", secret, r->body.p);
	ck_assert_msg(r->hdr.p == NULL || strstr(r->hdr.p, secret) == NULL,
	    "headers hold [%s]", secret);
	if ((log = su_slurp(su_logpath, NULL)) != NULL) {
		ck_assert_msg(strstr(log, secret) == NULL,
		    "server log holds [%s]", secret);
		free(log);
	}
}

void
assert_error(const struct su_resp *r, long st, const char *code,
    const char *secret)
{
	su_assert_error(r, st, code);
	if (st == 401)
		ck_assert_pstr_eq(su_header(r, "WWW-Authenticate"),
		    "Bearer realm=\"piivault\"");
	if (st == 405)
		ck_assert_msg(su_header(r, "Allow") != NULL, "405 without Allow");
	assert_not_leaked(r, secret);
}

void
expect_bad(const struct bad *b, size_t i)
{
	long long before = stored(), after;
	struct su_resp r;

	req_auth(&r, b->method, b->path, b->key, b->auth, b->ctype, b->body,
	    b->body ? strlen(b->body) : 0);
	if (r.status != b->status)
		ck_abort_msg("case %zu (%s %s %.60s): status %ld, want %ld: "
		    "[%s]", i, b->method, b->path, b->body ? b->body : "",
		    r.status, b->status, r.body.p);
	assert_error(&r, b->status, b->code, b->secret);
	su_resp_free(&r);
	after = stored();
	ck_assert_msg(after == before, "case %zu: records %lld, then %lld",
	    i, before, after);
}

void
expect_all_bad(const struct bad *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		expect_bad(&b[i], i);
}

/* Tests: health and records. */

struct jv *
lookup(int key, const char *field, const char *value)
{
	const struct jv *m;
	struct pv_buf b;
	struct su_resp r;
	struct jv *v;

	pv_buf_init(&b, 1u << 16);
	su_buf_add(&b, "{\"field\":");
	su_buf_quote(&b, field);
	su_buf_add(&b, ",\"value\":");
	su_buf_quote(&b, value);
	su_buf_add(&b, ",\"purpose\":\"service\"}");
	post(&r, "/v1/lookup", key, b.p);
	pv_buf_cleanup(&b);
	assert_status(&r, 200);
	v = su_body_json(&r);
	m = jget(v, "matches");
	ck_assert_msg(v->n == 1 && m != NULL && m->type == J_ARR,
	    "not {\"matches\":[…]}: [%s]", r.body.p);
	for (size_t i = 0; i < m->n; i++)
		ck_assert_msg(m->items[i].n == 2 &&
		    su_id_valid(jstr(&m->items[i], "id"), "rec_") &&
		    su_id_valid(jstr(&m->items[i], "token"), "tok_"),
		    "match %zu: [%s]", i, r.body.p);
	/* A look-up answers with references, never with the value. */
	ck_assert_msg(strstr(r.body.p, value) == NULL, "value echoed");
	su_resp_free(&r);
	return v;
}

void
assert_one_match(const struct jv *v, const char *id, const char *tok)
{
	const struct jv *m = jget(v, "matches");

	ck_assert_uint_eq(m->n, 1);
	ck_assert_pstr_eq(jstr(&m->items[0], "id"), id);
	ck_assert_pstr_eq(jstr(&m->items[0], "token"), tok);
}

int
raw_connect(void)
{
	struct sockaddr_in a;
	unsigned port;
	int fd;

	ck_assert_int_eq(sscanf(su_srv.base, "http://127.0.0.1:%u", &port), 1);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0),
	    0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

TCase *
http_tcase(Suite *s, const char *name, int fixture, int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, case_setup, su_case_teardown);
	if (fixture)
		tcase_add_checked_fixture(tc, setup, su_srv_teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}
