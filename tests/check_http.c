/*
 * check_http.c: the HTTP API, over real HTTP.  Each test makes a vault in
 * a fresh directory with the real binary (PIIVAULT_BIN): piivault init,
 * API keys from piivault apikey create, then piivault serve on a port the
 * kernel picks.  The test talks to it with libcurl and stops it with
 * SIGTERM, and the server must then exit 0 (in the sanitizer build that
 * also means "nothing leaked").
 *
 * White-box: this file includes api_int.h, for the route table (the
 * OpenAPI test checks that docs/openapi.yaml documents every route, and
 * the metrics test that every route label is one of them).
 *
 * Personal values here are distinctive strings; the answers, the metrics
 * page and the server's log are searched for them where they must not be.
 *
 * A server dies with the test process that started it (PR_SET_PDEATHSIG),
 * so a failed test leaves none behind; the test case's directory, removed
 * when the case is done, takes whatever a failed test left on disk.
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
#include "api_int.h"	/* white-box: the route table */
#include "srvutil.h"
#include "testutil.h"

#ifndef PIIVAULT_BIN
#error "PIIVAULT_BIN must name the piivault binary"
#endif
#ifndef PIIVAULT_SOURCE_DIR
#error "PIIVAULT_SOURCE_DIR must name the source tree"
#endif

#define ARGS_MAX	24
#define TIMEOUT		60	/* seconds per test, for the sanitizer build */
#define WAIT_MS		30000	/* for a server to start or to stop */
#define ID_BUF		(VAULT_ID_STRLEN + 1)
#define KEY_BUF		(VAULT_APIKEY_SECRET_LEN + 1)
#define PSN_BUF		(VAULT_PSEUDONYM_STRLEN + 1)
#define REC_FIELDS	8

/* The API keys every test's vault has. */
enum {
	K_WRITER,	/* writer */
	K_READER,	/* reader, every purpose */
	K_SERVICE,	/* reader, service only */
	K_MASKED,	/* reader, service and research, --reveal masked */
	K_EMAIL,	/* reader, service, --fields email */
	K_ADMIN,
	K_AUDITOR,
	K_GONE,		/* reader, revoked by the tests that need it */
	K__COUNT,
	K_NONE = -1,	/* no Authorization header */
	K_RAW = -2,	/* the header given as text */
};
static char keys[K__COUNT][KEY_BUF];

/* Fixtures. */

static void
case_setup(void)
{
	su_case_setup("http");
}

/* Running the binary. */

/* piivault args... (NULL-terminated) to its end; su_run_free r after. */
static void __attribute__((sentinel))
cli(struct su_run *r, ...)
{
	const char *args[ARGS_MAX + 1];
	size_t n = 0;
	va_list ap;

	va_start(ap, r);
	while ((args[n] = va_arg(ap, const char *)) != NULL) {
		n++;
		ck_assert_uint_lt(n, ARGS_MAX);
	}
	va_end(ap);
	su_cli_argv(r, NULL, args);
}

#define ck_assert_exit(r, code) ck_assert_msg((r)->status == (code),	\
	"exit %d, want %d; stdout [%s] stderr [%s]", (r)->status,	\
	(code), (r)->out, (r)->err)

/* piivault apikey create ...; the secret it printed goes to out. */
static void
apikey_create(char out[static KEY_BUF], const char *name, const char *role,
    const char *purposes, const char *fields, const char *reveal)
{
	const char *args[ARGS_MAX + 1] = { "apikey", "create", "--name", name,
	    "--role", role };
	size_t n = 6;
	struct su_run r;

	if (purposes != NULL) {
		args[n++] = "--purposes";
		args[n++] = purposes;
	}
	if (fields != NULL) {
		args[n++] = "--fields";
		args[n++] = fields;
	}
	if (reveal != NULL) {
		args[n++] = "--reveal";
		args[n++] = reveal;
	}
	args[n] = NULL;
	su_cli_argv(&r, NULL, args);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strlen(r.out) == VAULT_APIKEY_SECRET_LEN + 1 &&
	    strncmp(r.out, "pvk_", 4) == 0 &&
	    r.out[VAULT_APIKEY_SECRET_LEN] == '\n', "apikey create %s: [%s]",
	    name, r.out);
	memcpy(out, r.out, VAULT_APIKEY_SECRET_LEN);
	out[VAULT_APIKEY_SECRET_LEN] = '\0';
	su_run_free(&r);
}

/* The server. */

/* Start piivault serve with extra (NULL-terminated, after "serve"). */
static void
srv_start_args(const char *const *extra)
{
	static const char *const serve[] = { "serve", NULL };

	su_srv_start(serve, extra, NULL);
}

static void
srv_start(void)
{
	static const char *const args[] = { "--listen", "127.0.0.1:0", NULL };

	srv_start_args(args);
}

static void
setup(void)
{
	struct su_run r;

	tu_tmpdir(su_tdir);
	ck_assert_int_eq(chdir(su_tdir), 0);
	(void)signal(SIGPIPE, SIG_IGN);
	ck_assert_int_lt(snprintf(su_logpath, sizeof(su_logpath),
	    "%s/serve.log", su_tdir), (int)sizeof(su_logpath));
	memset(&su_srv, 0, sizeof(su_srv));
	cli(&r, "init", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	apikey_create(keys[K_WRITER], "app-writer", "writer", NULL, NULL,
	    NULL);
	apikey_create(keys[K_READER], "app-reader", "reader",
	    "service,notices,marketing,research,contest,payment,legal", NULL,
	    NULL);
	apikey_create(keys[K_SERVICE], "svc-reader", "reader", "service",
	    NULL, NULL);
	apikey_create(keys[K_MASKED], "masked-reader", "reader",
	    "service,research", NULL, "masked");
	apikey_create(keys[K_EMAIL], "email-reader", "reader", "service",
	    "email", NULL);
	apikey_create(keys[K_ADMIN], "ops-admin", "admin", NULL, NULL, NULL);
	apikey_create(keys[K_AUDITOR], "ops-auditor", "auditor", NULL, NULL,
	    NULL);
	apikey_create(keys[K_GONE], "gone-reader", "reader", "service", NULL,
	    NULL);
	srv_start();
}

static void
teardown(void)
{
	su_curl_cleanup();
	if (su_srv.pid > 0)
		su_srv_stop();
	ck_assert_int_eq(chdir("/"), 0);
	tu_rmrf(su_tdir);
}

/* HTTP. */

/*
 * A request to the running server.  key: an index in keys, K_NONE, or
 * K_RAW with auth the whole Authorization value.  ctype NULL sends
 * application/json with a body; "" sends no Content-Type at all.
 */
static void
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

static void
req(struct su_resp *r, const char *method, const char *path, int key,
    const char *ctype, const char *body)
{
	req_auth(r, method, path, key, NULL, ctype, body,
	    body ? strlen(body) : 0);
}

static void
post(struct su_resp *r, const char *path, int key, const char *body)
{
	req(r, "POST", path, key, NULL, body);
}

#define assert_status(r, want) ck_assert_msg((r)->status == (want),	\
	"status %ld, want %d: [%.600s]", (r)->status, (int)(want),	\
	(r)->body.p)

/* Records and tokens. */

struct rec {
	char	 id[ID_BUF];
	size_t	 n;
	char	 name[REC_FIELDS][PV_FIELD_NAME_MAX + 1];
	char	 tok[REC_FIELDS][ID_BUF];
};

/*
 * A stored record's answer, {"id":"rec_…","tokens":{"f":"tok_…",…}},
 * into out: 0, or -1 with why.  Asserts nothing: threads call it.
 */
static int
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

/* The token of field name in r. */
static const char *
tok_of(const struct rec *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->name[i], name) == 0)
			return r->tok[i];
	ck_abort_msg("no token for field %s", name);
	return NULL;
}

/* POST /v1/records body as the writer: 201, and its id and tokens. */
static void
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

/* Store fields; the answer must name exactly these fields, in order. */
static void
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

/* The detokenize body for n tokens. */
static void
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

/*
 * POST /v1/detokenize as key: 200, and the answer, whose only member is
 * "results", an object with one member per distinct token, in the order
 * of their first occurrence.
 */
static struct jv *
detok(int key, const char *purpose, const char *reason,
    const char *const *toks, size_t n)
{
	const struct jv *res;
	struct pv_buf b;
	struct su_resp r;
	struct jv *v;
	size_t k = 0;

	pv_buf_init(&b, 1u << 20);
	detok_body(&b, purpose, reason, toks, n);
	post(&r, "/v1/detokenize", key, b.p);
	pv_buf_cleanup(&b);
	assert_status(&r, 200);
	ck_assert_pstr_eq(su_header(&r, "Content-Type"), "application/json");
	v = su_body_json(&r);	/* also: values must not linger in caches */
	res = jget(v, "results");
	ck_assert_msg(v->type == J_OBJ && v->n == 1 && res != NULL &&
	    res->type == J_OBJ, "not {\"results\":{…}}: [%.300s]", r.body.p);
	for (size_t i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < i && strcmp(toks[j], toks[i]) != 0; j++)
			;
		if (j < i)
			continue;	/* asked before: answered before */
		ck_assert_msg(k < res->n, "no answer for %s", toks[i]);
		ck_assert_str_eq(res->keys[k], toks[i]);
		k++;
	}
	ck_assert_uint_eq(res->n, k);
	su_resp_free(&r);
	return v;
}

/*
 * tok was answered {"field":field,"masked":masked} and, when psn is not
 * NULL, a pseudonym, copied there; never a value.
 */
static void
assert_masked(const struct jv *doc, const char *tok, const char *field,
    const char *masked, char *psn)
{
	const struct jv *r = su_result(doc, tok);
	const char *p = jstr(r, "pseudonym");

	ck_assert_msg(jget(r, "value") == NULL, "%s: a value", tok);
	ck_assert_pstr_eq(jstr(r, "field"), field);
	ck_assert_pstr_eq(jstr(r, "masked"), masked);
	if (psn != NULL) {
		ck_assert_uint_eq(r->n, 3);
		ck_assert_msg(su_id_valid(p, "psn_"), "%s: pseudonym [%s]", tok,
		    p ? p : "(none)");
		memcpy(psn, p, PSN_BUF);
	} else {
		ck_assert_uint_eq(r->n, 2);
		ck_assert_ptr_null(p);
	}
}

/* Metrics. */

/* GET /metrics, no key: its text (free()). */
static char *
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

/* The value of series (name and labels, exactly) in text, or -1. */
static long long
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

/* piivault_records_stored now. */
static long long
stored(void)
{
	char *m = metrics();
	long long n = metric(m, "piivault_records_stored");

	ck_assert_msg(n >= 0, "no piivault_records_stored: [%s]", m);
	free(m);
	return n;
}

/*
 * Wait (a request's count is taken when it completes, which may be just
 * after its answer arrived) until series reads want; the last text.
 */
static char *
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

/* Neither the answer nor the server's log holds secret. */
static void
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

/*
 * r is status st with {"error":{"code":code,"message":"…"}}, exactly,
 * and holds nothing of secret.
 */
static void
assert_error(const struct su_resp *r, long st, const char *code,
    const char *secret)
{
	const struct jv *e;
	const char *msg;
	struct jv *v;

	ck_assert_msg(r->status == st, "status %ld, want %ld (%s): [%.600s]",
	    r->status, st, code, r->body.p);
	ck_assert_pstr_eq(su_header(r, "Content-Type"), "application/json");
	v = su_body_json(r);
	e = jget(v, "error");
	ck_assert_msg(v->type == J_OBJ && v->n == 1 && e != NULL &&
	    e->type == J_OBJ && e->n == 2, "not {\"error\":{code,message}}: "
	    "[%s]", r->body.p);
	ck_assert_pstr_eq(jstr(e, "code"), code);
	msg = jstr(e, "message");
	ck_assert_msg(msg != NULL && *msg != '\0', "no message: [%s]",
	    r->body.p);
	jfree(v);
	if (st == 401)
		ck_assert_pstr_eq(su_header(r, "WWW-Authenticate"),
		    "Bearer realm=\"piivault\"");
	if (st == 405)
		ck_assert_msg(su_header(r, "Allow") != NULL, "405 without Allow");
	assert_not_leaked(r, secret);
}

/* One request that must fail, and change nothing. */
struct bad {
	const char	*method;
	const char	*path;
	int		 key;
	const char	*auth;		/* with K_RAW */
	const char	*ctype;		/* as for req_auth */
	const char	*body;
	long		 status;
	const char	*code;
	const char	*secret;	/* must not come back, or NULL */
};

static void
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

static void
expect_all_bad(const struct bad *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		expect_bad(&b[i], i);
}

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* A valid record body with a value that must never come back. */
#define GOOD_REC	"{\"fields\":{\"email\":\"zq-good-7731@x.example\"}}"
#define GOOD_BATCH	"{\"records\":[" GOOD_REC "]}"
#define GOOD_DETOK	"{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"]," \
			"\"purpose\":\"service\"}"
#define GOOD_LOOKUP	"{\"field\":\"email\",\"value\":" \
			"\"zq-look-7731@x.example\"}"

/* Tests: health and records. */

START_TEST(test_health)
{
	struct su_resp r;

	req(&r, "GET", "/v1/health", K_NONE, NULL, NULL);
	assert_status(&r, 200);
	ck_assert_str_eq(r.body.p, "{\"status\":\"ok\"}\n");
	ck_assert_pstr_eq(su_header(&r, "Content-Type"), "application/json");
	su_assert_common_headers(&r);
	su_resp_free(&r);
	/* A key, even a bad one, changes nothing here. */
	req_auth(&r, "GET", "/v1/health", K_RAW, "Bearer nonsense", NULL,
	    NULL, 0);
	assert_status(&r, 200);
	ck_assert_str_eq(r.body.p, "{\"status\":\"ok\"}\n");
	su_resp_free(&r);
}
END_TEST

/* Values that test the JSON codec both ways. */
static const struct su_fv tricky[] = {
	{ "email", "Ada.Lovelace+vault@Example.ORG" },
	{ "phone", "+44 (20) 7946-0958" },
	{ "name", "Zoë Ωμέγα 日本語 🙂 Łódź" },
	{ "note", "quote \" backslash \\ slash / newline \n tab \t cr \r "
	    "bell \x07 del \x7f end" },
	{ "address", "\"\\\n\"" },
	{ "empty_ok", "x" },
};

START_TEST(test_records_put_and_detokenize)
{
	const char *toks[NELEM(tricky)];
	struct rec a, b;
	struct jv *v;
	long long before = stored();

	put(tricky, NELEM(tricky), 1, 30, &a);
	/* Consent off and no retention: accepted too. */
	put(tricky, 3, 0, 0, &b);
	ck_assert_str_ne(a.id, b.id);
	for (size_t i = 0; i < NELEM(tricky); i++) {
		toks[i] = a.tok[i];
		ck_assert_str_ne(a.tok[i], a.id);
		if (i < 3)
			ck_assert_str_ne(a.tok[i], b.tok[i]);
	}
	ck_assert_int_eq(stored(), before + 2);

	v = detok(K_READER, "service", NULL, toks, NELEM(tricky));
	for (size_t i = 0; i < NELEM(tricky); i++)
		su_assert_value(v, toks[i], tricky[i].name, tricky[i].value);
	jfree(v);
	toks[0] = b.tok[2];
	toks[1] = b.tok[0];
	v = detok(K_SERVICE, "service", NULL, toks, 2);
	su_assert_value(v, b.tok[2], "name", tricky[2].value);
	su_assert_value(v, b.tok[0], "email", tricky[0].value);
	jfree(v);
}
END_TEST

/* Header forms the API accepts: media type parameters, "bearer  KEY". */
START_TEST(test_records_header_variants)
{
	static const char *const ok[] = { "application/json; charset=utf-8",
	    "Application/JSON", "application/json;charset=UTF-8" };
	static const char *const schemes[] = { "bearer ", "BEARER    ",
	    "BeArEr " };
	char auth[KEY_BUF + 16];
	struct su_resp r;
	long long before = stored();

	for (size_t i = 0; i < NELEM(ok); i++) {
		req(&r, "POST", "/v1/records", K_WRITER, ok[i],
		    "{\"fields\":{\"name\":\"Media Type\"}}");
		assert_status(&r, 201);
		su_resp_free(&r);
	}
	for (size_t i = 0; i < NELEM(schemes); i++) {
		(void)snprintf(auth, sizeof(auth), "%s%s", schemes[i],
		    keys[K_WRITER]);
		req_auth(&r, "POST", "/v1/records", K_RAW, auth, NULL,
		    GOOD_REC, strlen(GOOD_REC));
		assert_status(&r, 201);
		su_resp_free(&r);
	}
	ck_assert_int_eq(stored(), before + 6);
}
END_TEST

/*
 * A batch of good and bad records: each bad one gets its own error, in
 * place, and the good ones are stored.  (Per docs/openapi.yaml a record
 * that is not an object is invalid_value: a batch entry is never
 * invalid_json, since anything that is not JSON fails the whole body.)
 */
START_TEST(test_batch)
{
	static const char head[] = "{\"records\":["
	    "{\"fields\":{\"email\":\"first-b1@batch.example\","
	    "\"name\":\"First \\\"B1\\\"\"},\"consent\":{\"marketing\":true}},"
	    "{\"fields\":{\"Bad-Name\":\"zq-badname-5521\"}},"
	    "{\"fields\":{\"email\":\"zq-bademail-5522\"}},"
	    "{\"fields\":{\"name\":\"zq-member-5523\"},\"colour\":\"red\"},"
	    "\"zq-notobject-5524\","
	    "{\"fields\":{\"phone\":\"+1 555 0199\",\"name\":\"Last B6\"},"
	    "\"retention_days\":7},"
	    "{\"fields\":{\"name\":\"zq-cons-5525\"},"
	    "\"consent\":{\"marketing\":true,\"sms\":true}},"
	    "{\"fields\":{\"name\":5526}},"
	    "{\"fields\":{}},"
	    "{\"fields\":{\"name\":\"\"}},"
	    "{\"fields\":{\"name\":\"zq-long-5527";
	static const char *const codes[] = { NULL, "invalid_field",
	    "invalid_value", "unknown_member", "invalid_value", NULL,
	    "unknown_member", "invalid_value", "invalid_value",
	    "invalid_value", "too_large" };
	static const char *const secrets[] = { "zq-badname-5521",
	    "zq-bademail-5522", "zq-member-5523", "zq-notobject-5524",
	    "zq-cons-5525", "zq-long-5527" };
	char *body;
	struct rec recs[NELEM(codes)];
	const struct jv *res;
	const char *toks[4];
	long long before = stored();
	struct su_resp r;
	struct jv *v, *d;
	char why[128];

	/* The last record's value is 4097 bytes: one over the limit. */
	ck_assert_ptr_nonnull(body = malloc(sizeof(head) + 4097 + 16));
	memcpy(body, head, sizeof(head) - 1);
	memset(body + sizeof(head) - 1, 'b', 4097 - 12);
	memcpy(body + sizeof(head) - 1 + 4097 - 12, "\"}}]}", 6);
	post(&r, "/v1/records/batch", K_WRITER, body);
	free(body);
	assert_status(&r, 200);
	v = su_body_json(&r);
	res = jget(v, "results");
	ck_assert_msg(v->n == 1 && res != NULL && res->type == J_ARR,
	    "not {\"results\":[…]}: [%s]", r.body.p);
	ck_assert_uint_eq(res->n, NELEM(codes));
	for (size_t i = 0; i < NELEM(codes); i++) {
		const struct jv *it = &res->items[i], *e = jget(it, "error");

		if (codes[i] == NULL) {
			ck_assert_msg(rec_from_json(it, &recs[i], why,
			    sizeof(why)) == 0, "result %zu: %s", i, why);
			continue;
		}
		ck_assert_msg(it->n == 1 && e != NULL && e->type == J_OBJ,
		    "result %zu is not an error", i);
		ck_assert_pstr_eq(jstr(e, "code"), codes[i]);
		ck_assert_ptr_nonnull(jstr(e, "message"));
	}
	for (size_t i = 0; i < NELEM(secrets); i++)
		assert_not_leaked(&r, secrets[i]);
	jfree(v);
	su_resp_free(&r);
	ck_assert_int_eq(stored(), before + 2);

	/* The valid ones are stored, each under its own tokens. */
	ck_assert_uint_eq(recs[0].n, 2);
	ck_assert_uint_eq(recs[5].n, 2);
	ck_assert_str_ne(recs[0].id, recs[5].id);
	toks[0] = tok_of(&recs[0], "email");
	toks[1] = tok_of(&recs[0], "name");
	toks[2] = tok_of(&recs[5], "phone");
	toks[3] = tok_of(&recs[5], "name");
	d = detok(K_READER, "service", NULL, toks, 4);
	su_assert_value(d, toks[0], "email", "first-b1@batch.example");
	su_assert_value(d, toks[1], "name", "First \"B1\"");
	su_assert_value(d, toks[2], "phone", "+1 555 0199");
	su_assert_value(d, toks[3], "name", "Last B6");
	jfree(d);
	/* Consent travelled with each record of the batch. */
	d = detok(K_READER, "marketing", NULL, toks, 4);
	su_assert_value(d, toks[0], "email", "first-b1@batch.example");
	su_assert_tok_error(d, toks[2], "consent_withdrawn");
	jfree(d);
}
END_TEST

/* n records of one field each, as a batch body. */
static char *
batch_of(size_t n, const char *prefix)
{
	struct pv_buf b;
	char *s;

	pv_buf_init(&b, 8u << 20);
	su_buf_add(&b, "{\"records\":[");
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(pv_buf_printf(&b, "%s{\"fields\":{\"name\":"
		    "\"%s-%zu\"}}", i ? "," : "", prefix, i), PV_OK);
	su_buf_add(&b, "]}");
	ck_assert_ptr_nonnull(s = strdup(b.p));
	pv_buf_cleanup(&b);
	return s;
}

START_TEST(test_batch_limits)
{
	const struct jv *res;
	long long before = stored();
	struct su_resp r;
	struct jv *v;
	char *body;

	/* 1000 is the limit and is fine ... */
	body = batch_of(1000, "zq-thousand");
	post(&r, "/v1/records/batch", K_WRITER, body);
	free(body);
	assert_status(&r, 200);
	v = su_body_json(&r);
	ck_assert_ptr_nonnull(res = jget(v, "results"));
	ck_assert_uint_eq(res->n, 1000);
	for (size_t i = 0; i < res->n; i++)
		ck_assert_msg(su_id_valid(jstr(&res->items[i], "id"), "rec_"),
		    "result %zu has no id", i);
	jfree(v);
	su_resp_free(&r);
	ck_assert_int_eq(stored(), before + 1000);

	/* ... one more is not, and nothing of it is stored. */
	body = batch_of(1001, "zq-toomany-8812");
	post(&r, "/v1/records/batch", K_WRITER, body);
	free(body);
	assert_error(&r, 413, "too_large", "zq-toomany-8812");
	su_resp_free(&r);
	ck_assert_int_eq(stored(), before + 1000);
}
END_TEST

/* Tests: every error code. */

/* 400: the body is not JSON, not an object, or has a member twice. */
START_TEST(test_err_invalid_json)
{
	static const struct bad bad[] = {
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"email\":\"zq-trunc-1101@x.example\"", 400,
		  "invalid_json", "zq-trunc-1101" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"zq-trail-1102\"}}}", 400,
		  "invalid_json", "zq-trail-1102" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":zq-bare-1103}}", 400,
		  "invalid_json", "zq-bare-1103" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL, "[]", 400,
		  "invalid_json", NULL },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "\"zq-str-1104\"", 400, "invalid_json", "zq-str-1104" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL, "", 400,
		  "invalid_json", NULL },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"zq-dup-1105\",\"name\":\"x\"}}",
		  400, "invalid_json", "zq-dup-1105" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"a\"},\"fields\":{\"name\":"
		  "\"zq-dup-1106\"}}", 400, "invalid_json", "zq-dup-1106" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"a\"},\"consent\":{\"marketing\":"
		  "true,\"marketing\":false}}", 400, "invalid_json", NULL },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"zq-nul\\u0000-1107\"}}", 400,
		  "invalid_json", "zq-nul" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"zq-utf8-\xff\xfe-1108\"}}", 400,
		  "invalid_json", "zq-utf8-" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"zq-big-1109\"},\"retention_days\":"
		  "123456789012345678901234567890}", 400, "invalid_json",
		  "zq-big-1109" },
		{ "POST", "/v1/records/batch", K_WRITER, NULL, NULL,
		  "{\"records\":[{\"fields\":{\"name\":\"zq-bt-1110\"}}", 400,
		  "invalid_json", "zq-bt-1110" },
		{ "POST", "/v1/records/batch", K_WRITER, NULL, NULL,
		  "[{\"fields\":{\"name\":\"zq-bt-1111\"}}]", 400,
		  "invalid_json", "zq-bt-1111" },
		/* A duplicate inside one record fails the whole batch. */
		{ "POST", "/v1/records/batch", K_WRITER, NULL, NULL,
		  "{\"records\":[{\"fields\":{\"name\":\"ok\"}},{\"fields\":"
		  "{\"name\":\"a\",\"name\":\"zq-bt-1112\"}}]}", 400,
		  "invalid_json", "zq-bt-1112" },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],\"purpose\":"
		  "\"legal\",\"reason\":\"zq-reason-1113", 400,
		  "invalid_json", "zq-reason-1113" },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"]", 400, "invalid_json",
		  NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],\"purpose\":"
		  "\"service\",\"purpose\":\"legal\"}", 400, "invalid_json",
		  NULL },
		{ "POST", "/v1/lookup", K_READER, NULL, NULL,
		  "{\"field\":\"email\",\"value\":\"zq-lk-1114@x.example", 400,
		  "invalid_json", "zq-lk-1114" },
		{ "POST", "/v1/lookup", K_READER, NULL, NULL, "null", 400,
		  "invalid_json", NULL },
		{ "POST", "/v1/lookup", K_WRITER, NULL, NULL,
		  "{\"field\":\"email\",\"value\":\"zq-lk-1115@x.example\","
		  "\"value\":\"b@x.example\"}", 400, "invalid_json",
		  "zq-lk-1115" },
	};

	expect_all_bad(bad, NELEM(bad));
}
END_TEST

START_TEST(test_err_unauthenticated)
{
	static const char *const paths[][2] = {
		{ "/v1/records", GOOD_REC },
		{ "/v1/records/batch", GOOD_BATCH },
		{ "/v1/detokenize", GOOD_DETOK },
		{ "/v1/lookup", GOOD_LOOKUP },
	};
	char unknown[KEY_BUF + 16], cut[KEY_BUF + 16], nospace[KEY_BUF + 16];
	const char *auths[8];
	struct su_run run;
	struct su_resp r;
	size_t na = 0;

	/* A key that works, revoked by the CLI while the server runs. */
	post(&r, "/v1/detokenize", K_GONE, GOOD_DETOK);
	assert_status(&r, 200);
	su_resp_free(&r);
	cli(&run, "apikey", "revoke", "gone-reader", NULL);
	ck_assert_exit(&run, 0);
	su_run_free(&run);

	(void)snprintf(unknown, sizeof(unknown), "Bearer pvk_%.44s",
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	(void)snprintf(cut, sizeof(cut), "Bearer %.47s", keys[K_WRITER]);
	(void)snprintf(nospace, sizeof(nospace), "Bearer%s", keys[K_WRITER]);
	auths[na++] = "Basic YWRtaW46YWRtaW4=";
	auths[na++] = "Bearer";
	auths[na++] = "Bearer ";
	auths[na++] = "Bearer pvk_short";
	auths[na++] = unknown;
	auths[na++] = cut;
	auths[na++] = nospace;
	for (size_t p = 0; p < NELEM(paths); p++) {
		struct bad b = { "POST", paths[p][0], K_NONE, NULL, NULL,
		    paths[p][1], 401, "unauthenticated", "zq-" };

		expect_bad(&b, p);
		b.key = K_GONE;
		expect_bad(&b, p);
		b.key = K_RAW;
		for (size_t a = 0; a < na; a++) {
			b.auth = auths[a];
			expect_bad(&b, p * 100 + a);
		}
	}
}
END_TEST

START_TEST(test_err_forbidden)
{
	static const struct bad bad[] = {
		{ "POST", "/v1/records", K_READER, NULL, NULL, GOOD_REC, 403,
		  "forbidden", "zq-" },
		{ "POST", "/v1/records", K_ADMIN, NULL, NULL, GOOD_REC, 403,
		  "forbidden", "zq-" },
		{ "POST", "/v1/records", K_AUDITOR, NULL, NULL, GOOD_REC, 403,
		  "forbidden", "zq-" },
		{ "POST", "/v1/records/batch", K_READER, NULL, NULL,
		  GOOD_BATCH, 403, "forbidden", "zq-" },
		{ "POST", "/v1/records/batch", K_MASKED, NULL, NULL,
		  GOOD_BATCH, 403, "forbidden", "zq-" },
		{ "POST", "/v1/detokenize", K_WRITER, NULL, NULL, GOOD_DETOK,
		  403, "forbidden", NULL },
		{ "POST", "/v1/detokenize", K_ADMIN, NULL, NULL, GOOD_DETOK,
		  403, "forbidden", NULL },
		{ "POST", "/v1/detokenize", K_AUDITOR, NULL, NULL, GOOD_DETOK,
		  403, "forbidden", NULL },
		{ "POST", "/v1/lookup", K_AUDITOR, NULL, NULL, GOOD_LOOKUP,
		  403, "forbidden", "zq-" },
		{ "POST", "/v1/lookup", K_ADMIN, NULL, NULL, GOOD_LOOKUP,
		  403, "forbidden", "zq-" },
		/* Purposes outside the key's list. */
		{ "POST", "/v1/detokenize", K_SERVICE, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"marketing\"}", 403, "purpose_not_allowed",
		  NULL },
		{ "POST", "/v1/detokenize", K_SERVICE, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"legal\",\"reason\":\"zq-court-2201\"}", 403,
		  "purpose_not_allowed", "zq-court-2201" },
		{ "POST", "/v1/detokenize", K_SERVICE, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"research\"}", 403, "purpose_not_allowed",
		  NULL },
		{ "POST", "/v1/detokenize", K_MASKED, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"payment\"}", 403, "purpose_not_allowed",
		  NULL },
		{ "POST", "/v1/detokenize", K_EMAIL, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"notices\"}", 403, "purpose_not_allowed",
		  NULL },
	};

	expect_all_bad(bad, NELEM(bad));
}
END_TEST

START_TEST(test_err_not_found_and_method)
{
	static const struct bad bad[] = {
		{ "GET", "/v1/nope", K_NONE, NULL, NULL, NULL, 404,
		  "not_found", NULL },
		{ "GET", "/", K_NONE, NULL, NULL, NULL, 404, "not_found",
		  NULL },
		{ "POST", "/v1/records/", K_WRITER, NULL, NULL, GOOD_REC, 404,
		  "not_found", "zq-" },
		{ "POST", "/v1/Records", K_WRITER, NULL, NULL, GOOD_REC, 404,
		  "not_found", "zq-" },
		{ "POST", "/v1/records/batch/x", K_WRITER, NULL, NULL,
		  GOOD_BATCH, 404, "not_found", "zq-" },
		{ "POST", "/v2/records", K_WRITER, NULL, NULL, GOOD_REC, 404,
		  "not_found", "zq-" },
		{ "GET", "/v1/health/x", K_NONE, NULL, NULL, NULL, 404,
		  "not_found", NULL },
		{ "GET", "/v1/records", K_WRITER, NULL, NULL, NULL, 405,
		  "method_not_allowed", NULL },
		{ "GET", "/v1/records", K_NONE, NULL, NULL, NULL, 405,
		  "method_not_allowed", NULL },
		{ "PUT", "/v1/records", K_WRITER, NULL, NULL, GOOD_REC, 405,
		  "method_not_allowed", "zq-" },
		{ "DELETE", "/v1/records/batch", K_WRITER, NULL, NULL, NULL,
		  405, "method_not_allowed", NULL },
		{ "GET", "/v1/detokenize", K_READER, NULL, NULL, NULL, 405,
		  "method_not_allowed", NULL },
		{ "GET", "/v1/lookup", K_READER, NULL, NULL, NULL, 405,
		  "method_not_allowed", NULL },
		{ "POST", "/v1/health", K_NONE, NULL, NULL, "{}", 405,
		  "method_not_allowed", NULL },
		{ "POST", "/metrics", K_NONE, NULL, NULL, "{}", 405,
		  "method_not_allowed", NULL },
	};

	expect_all_bad(bad, NELEM(bad));
}
END_TEST

START_TEST(test_err_too_large)
{
	static const char head[] = "{\"fields\":{\"name\":\"zq-huge-3301";
	static const char lv[] = "{\"field\":\"email\",\"value\":"
	    "\"zq-lv-3304";
	size_t big = API_BODY_MAX + 1;
	struct pv_buf b;
	struct bad x = { "POST", "/v1/records", K_WRITER, NULL, NULL, NULL,
	    413, "too_large", "zq-huge-3301" };
	char *body, *toks;

	/* One byte over 1 MiB, as valid JSON as it can be. */
	ck_assert_ptr_nonnull(body = malloc(big + 1));
	memset(body, 'a', big);
	memcpy(body, head, sizeof(head) - 1);
	memcpy(body + big - 3, "\"}}", 3);
	body[big] = '\0';
	x.body = body;
	expect_bad(&x, 0);
	x.path = "/v1/records/batch";
	expect_bad(&x, 1);
	x.path = "/v1/detokenize";
	x.key = K_READER;
	expect_bad(&x, 2);
	x.path = "/v1/lookup";
	expect_bad(&x, 3);
	free(body);

	/* A look-up value over 4096 bytes. */
	ck_assert_ptr_nonnull(body = malloc(sizeof(lv) + 5000 + 16));
	memcpy(body, lv, sizeof(lv) - 1);
	memset(body + sizeof(lv) - 1, 'c', 5000);
	memcpy(body + sizeof(lv) - 1 + 5000, "@x.example\"}", 13);
	x.body = body;
	x.secret = "zq-lv-3304";
	expect_bad(&x, 7);
	free(body);

	/* 1001 tokens. */
	pv_buf_init(&b, 1u << 20);
	su_buf_add(&b, "{\"purpose\":\"service\",\"tokens\":[");
	for (int i = 0; i < 1001; i++)
		su_buf_add(&b, i ? ",\"tok_AAAAAAAAAAAAAAAAAAAAAA\"" :
		    "\"tok_AAAAAAAAAAAAAAAAAAAAAA\"");
	su_buf_add(&b, "]}");
	ck_assert_ptr_nonnull(toks = strdup(b.p));
	pv_buf_cleanup(&b);
	x.body = toks;
	x.secret = NULL;
	x.path = "/v1/detokenize";
	expect_bad(&x, 4);
	free(toks);

	/* 65 fields, and a value of 4097 bytes. */
	pv_buf_init(&b, 1u << 20);
	su_buf_add(&b, "{\"fields\":{");
	for (int i = 0; i < 65; i++)
		ck_assert_int_eq(pv_buf_printf(&b, "%s\"f%d\":\"zq-f65-3302\"",
		    i ? "," : "", i), PV_OK);
	su_buf_add(&b, "}}");
	ck_assert_ptr_nonnull(body = strdup(b.p));
	pv_buf_cleanup(&b);
	x.path = "/v1/records";
	x.key = K_WRITER;
	x.body = body;
	x.secret = "zq-f65-3302";
	expect_bad(&x, 5);
	free(body);

	ck_assert_ptr_nonnull(body = malloc(4097 + 64));
	memcpy(body, "{\"fields\":{\"note\":\"zq-long-3303", 31);
	/* The value: "zq-long-3303" (12 bytes) and b's, 4097 in all. */
	memset(body + 31, 'b', 4097 - 12);
	memcpy(body + 31 + 4097 - 12, "\"}}", 4);
	x.body = body;
	x.secret = "zq-long-3303";
	expect_bad(&x, 6);
	/* 4096 bytes is fine. */
	memcpy(body + 31 + 4096 - 12, "\"}}", 4);
	{
		struct rec rec;
		struct jv *v;
		const char *t;

		put_raw(body, &rec);
		t = tok_of(&rec, "note");
		v = detok(K_READER, "service", NULL, &t, 1);
		ck_assert_uint_eq(strlen(jstr(su_result(v, t), "value")), 4096);
		jfree(v);
	}
	free(body);
}
END_TEST

START_TEST(test_err_too_large_small_limit)
{
	static const char *const args[] = { "--listen", "127.0.0.1:0",
	    "--max-body", "1024", NULL };
	char body[1100];
	struct bad x = { "POST", "/v1/records", K_WRITER, NULL, NULL, body,
	    413, "too_large", "zq-small-3401" };
	struct su_resp r;
	size_t len;

	su_srv_stop();
	srv_start_args(args);
	/* Exactly the limit is accepted ... */
	len = (size_t)snprintf(body, sizeof(body),
	    "{\"fields\":{\"name\":\"zq-small-3401\"}}");
	memset(body + len, ' ', 1024 - len);
	body[1024] = '\0';
	req(&r, "POST", "/v1/records", K_WRITER, NULL, body);
	assert_status(&r, 201);
	su_resp_free(&r);
	/* ... one byte more is not, on every route that takes a body. */
	body[1024] = ' ';
	body[1025] = '\0';
	expect_bad(&x, 0);
	x.path = "/v1/records/batch";
	expect_bad(&x, 1);
	x.path = "/v1/lookup";
	expect_bad(&x, 2);
	x.path = "/v1/detokenize";
	x.key = K_READER;
	expect_bad(&x, 3);
}
END_TEST

START_TEST(test_err_media_type)
{
	static const char *const ctypes[] = { "text/plain", "",
	    "application/jsonx", "application/x-www-form-urlencoded",
	    "json", "text/json" };
	static const char *const paths[][2] = {
		{ "/v1/records", GOOD_REC },
		{ "/v1/records/batch", GOOD_BATCH },
		{ "/v1/detokenize", GOOD_DETOK },
		{ "/v1/lookup", GOOD_LOOKUP },
	};

	for (size_t p = 0; p < NELEM(paths); p++)
		for (size_t c = 0; c < NELEM(ctypes); c++) {
			struct bad b = { "POST", paths[p][0], p == 2 ?
			    K_READER : K_WRITER, NULL, ctypes[c], paths[p][1],
			    415, "unsupported_media_type", "zq-" };

			expect_bad(&b, p * 10 + c);
		}
}
END_TEST

START_TEST(test_err_unprocessable)
{
	/* A field name of 65 characters, one over the limit. */
	static const char field65[] = "{\"fields\":{\"a" "0123456789"
	    "0123456789" "0123456789" "0123456789" "0123456789" "0123456789"
	    "0123\":\"zq-f-4401\"}}";
	static const struct bad bad[] = {
		/* invalid_field */
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"Email\":\"zq-f-4402@x.example\"}}", 422,
		  "invalid_field", "zq-f-4402" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"1name\":\"zq-f-4403\"}}", 422,
		  "invalid_field", "zq-f-4403" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"na-me\":\"zq-f-4404\"}}", 422,
		  "invalid_field", "zq-f-4404" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"\":\"zq-f-4405\"}}", 422,
		  "invalid_field", "zq-f-4405" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL, field65, 422,
		  "invalid_field", "zq-f-4401" },
		{ "POST", "/v1/lookup", K_READER, NULL, NULL,
		  "{\"field\":\"name\",\"value\":\"zq-f-4406\"}", 422,
		  "invalid_field", "zq-f-4406" },
		{ "POST", "/v1/lookup", K_WRITER, NULL, NULL,
		  "{\"field\":\"Bad Field\",\"value\":\"zq-f-4407\"}", 422,
		  "invalid_field", "zq-f-4407" },
		/* invalid_value */
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"email\":\"zq-v-4411-no-at\"}}", 422,
		  "invalid_value", "zq-v-4411" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"email\":\"zq-v-4412@nodot\"}}", 422,
		  "invalid_value", "zq-v-4412" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"ok\",\"phone\":\"zq-v-4413\"}}",
		  422, "invalid_value", "zq-v-4413" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"phone\":\"+1 2\"}}", 422, "invalid_value",
		  NULL },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{}}", 422, "invalid_value", NULL },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"\"}}", 422, "invalid_value", NULL },
		/* Members missing, or of the wrong type or range. */
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":4431}}", 422, "invalid_value",
		  NULL },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":\"zq-v-4432\"}", 422, "invalid_value",
		  "zq-v-4432" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"consent\":{\"marketing\":true}}", 422, "invalid_value",
		  NULL },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"zq-v-4433\"},\"consent\":"
		  "{\"marketing\":\"yes\"}}", 422, "invalid_value",
		  "zq-v-4433" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"a\"},\"consent\":true}", 422,
		  "invalid_value", NULL },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"a\"},\"retention_days\":30.5}",
		  422, "invalid_value", NULL },
		{ "POST", "/v1/records/batch", K_WRITER, NULL, NULL,
		  "{\"records\":{}}", 422, "invalid_value", NULL },
		{ "POST", "/v1/records/batch", K_WRITER, NULL, NULL,
		  "{\"records\":[]}", 422, "invalid_value", NULL },
		{ "POST", "/v1/records/batch", K_WRITER, NULL, NULL, "{}", 422,
		  "invalid_value", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":\"tok_AAAAAAAAAAAAAAAAAAAAAA\",\"purpose\":"
		  "\"service\"}", 422, "invalid_value", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[],\"purpose\":\"service\"}", 422,
		  "invalid_value", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\",1],\"purpose\":"
		  "\"service\"}", 422, "invalid_value", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"]}", 422,
		  "invalid_value", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],\"purpose\":7}",
		  422, "invalid_value", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],\"purpose\":"
		  "\"legal\",\"reason\":[\"zq-v-4434\"]}", 422,
		  "invalid_value", "zq-v-4434" },
		{ "POST", "/v1/lookup", K_READER, NULL, NULL,
		  "{\"field\":\"email\"}", 422, "invalid_value", NULL },
		{ "POST", "/v1/lookup", K_READER, NULL, NULL,
		  "{\"field\":\"phone\",\"value\":5550100}", 422,
		  "invalid_value", NULL },
		{ "POST", "/v1/lookup", K_WRITER, NULL, NULL,
		  "{\"field\":null,\"value\":\"zq-v-4435@x.example\"}", 422,
		  "invalid_value", "zq-v-4435" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"zq-v-4414\"},\"retention_days\":0}",
		  422, "invalid_value", "zq-v-4414" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"a\"},\"retention_days\":36501}",
		  422, "invalid_value", NULL },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"a\"},\"retention_days\":\"30\"}",
		  422, "invalid_value", NULL },
		{ "POST", "/v1/lookup", K_READER, NULL, NULL,
		  "{\"field\":\"email\",\"value\":\"zq-v-4415\"}", 422,
		  "invalid_value", "zq-v-4415" },
		{ "POST", "/v1/lookup", K_WRITER, NULL, NULL,
		  "{\"field\":\"phone\",\"value\":\"zq-v-4416\"}", 422,
		  "invalid_value", "zq-v-4416" },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"zq-spam-4417\"}", 422, "invalid_value",
		  "zq-spam-4417" },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"\"}", 422, "invalid_value", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"Service\"}", 422, "invalid_value", NULL },
		/* reason_required */
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"legal\"}", 422, "reason_required", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"legal\",\"reason\":\"\"}", 422,
		  "reason_required", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"legal\",\"reason\":\"  \\t\\r\\n \"}", 422,
		  "reason_required", NULL },
		/* unknown_member */
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"zq-m-4421\"},\"extra\":1}", 422,
		  "unknown_member", "zq-m-4421" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"a\"},\"zq-m-4422@x.example\":1}",
		  422, "unknown_member", "zq-m-4422" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"zq-m-4423\"},\"consent\":"
		  "{\"marketing\":true,\"sms\":true}}", 422, "unknown_member",
		  "zq-m-4423" },
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":{\"name\":\"a\"},\"consent\":"
		  "{\"zq-m-4424 Jane Doe\":true}}", 422, "unknown_member",
		  "zq-m-4424" },
		{ "POST", "/v1/records/batch", K_WRITER, NULL, NULL,
		  "{\"records\":[{\"fields\":{\"name\":\"zq-m-4425\"}}],"
		  "\"atomic\":true}", 422, "unknown_member", "zq-m-4425" },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"service\",\"verbose\":true}", 422,
		  "unknown_member", NULL },
		{ "POST", "/v1/lookup", K_READER, NULL, NULL,
		  "{\"field\":\"email\",\"value\":\"zq-m-4426@x.example\","
		  "\"limit\":1}", 422, "unknown_member", "zq-m-4426" },
	};

	expect_all_bad(bad, NELEM(bad));
}
END_TEST

/* Tests: purposes, consent, masking, pseudonyms, fields. */

START_TEST(test_purposes_and_consent)
{
	static const struct su_fv yes[] = {
		{ "email", "yes.consent@p.example" }, { "name", "Yes Person" },
	};
	static const struct su_fv no[] = {
		{ "email", "no.consent@p.example" }, { "name", "No Person" },
	};
	static const char *const plain[] = { "service", "notices", "contest",
	    "payment" };
	struct rec y, n, d;
	const char *toks[6];
	struct jv *v;

	put(yes, 2, 1, 0, &y);
	put(no, 2, 0, 365, &n);
	put(no, 1, -1, 0, &d);		/* consent left out: no consent */
	toks[0] = y.tok[0];
	toks[1] = y.tok[1];
	toks[2] = n.tok[0];
	toks[3] = n.tok[1];
	toks[4] = d.tok[0];

	/* Marketing: only with consent, answered per token. */
	v = detok(K_READER, "marketing", NULL, toks, 5);
	su_assert_value(v, toks[0], "email", yes[0].value);
	su_assert_value(v, toks[1], "name", yes[1].value);
	su_assert_tok_error(v, toks[2], "consent_withdrawn");
	su_assert_tok_error(v, toks[3], "consent_withdrawn");
	su_assert_tok_error(v, toks[4], "consent_withdrawn");
	jfree(v);

	/* Notices cannot be opted out of; the others need no consent. */
	for (size_t i = 0; i < NELEM(plain); i++) {
		v = detok(K_READER, plain[i], NULL, toks, 5);
		su_assert_value(v, toks[0], "email", yes[0].value);
		su_assert_value(v, toks[2], "email", no[0].value);
		su_assert_value(v, toks[3], "name", no[1].value);
		su_assert_value(v, toks[4], "email", no[0].value);
		jfree(v);
	}
	/* Legal, with a reason. */
	v = detok(K_READER, "legal", "court order 2024-17", toks, 5);
	su_assert_value(v, toks[1], "name", yes[1].value);
	su_assert_value(v, toks[2], "email", no[0].value);
	jfree(v);
	/* A reason given for another purpose does no harm. */
	v = detok(K_READER, "service", "why not", toks, 1);
	su_assert_value(v, toks[0], "email", yes[0].value);
	jfree(v);

	/* Research: masked values and pseudonyms, never a value. */
	{
		char psn[5][PSN_BUF];

		v = detok(K_READER, "research", NULL, toks, 5);
		assert_masked(v, toks[0], "email", "y***@p.example", psn[0]);
		assert_masked(v, toks[1], "name", "Y***", psn[1]);
		assert_masked(v, toks[2], "email", "n***@p.example", psn[2]);
		assert_masked(v, toks[3], "name", "N***", psn[3]);
		assert_masked(v, toks[4], "email", "n***@p.example", psn[4]);
		ck_assert_str_eq(psn[2], psn[4]);	/* same email */
		ck_assert_str_ne(psn[0], psn[2]);
		ck_assert_str_ne(psn[1], psn[3]);
		jfree(v);
	}
}
END_TEST

START_TEST(test_pseudonyms)
{
	static const struct su_fv a[] = { { "email", "Same.Person@psn.example" },
	    { "name", "Same Name" }, { "phone", "+1 555 0101" } };
	static const struct su_fv b[] = { { "email", "same.person@psn.example" },
	    { "name", "Same Name" }, { "phone", "+1 (555) 010-1" } };
	static const struct su_fv c[] = { { "email", "other.person@psn.example" },
	    { "name", "Other Name" }, { "phone", "+1 555 0102" } };
	char p1[9][PSN_BUF], p2[9][PSN_BUF];
	const char *toks[9];
	struct rec ra, rb, rc;
	struct jv *v;

	put(a, 3, 0, 0, &ra);
	put(b, 3, 1, 0, &rb);
	put(c, 3, 0, 0, &rc);
	for (size_t i = 0; i < 3; i++) {
		toks[i] = ra.tok[i];
		toks[3 + i] = rb.tok[i];
		toks[6 + i] = rc.tok[i];
	}
	for (int round = 0; round < 2; round++) {
		char (*p)[PSN_BUF] = round ? p2 : p1;

		v = detok(round ? K_MASKED : K_READER, "research", NULL, toks,
		    9);
		assert_masked(v, toks[0], "email", "S***@psn.example", p[0]);
		assert_masked(v, toks[1], "name", "S***", p[1]);
		assert_masked(v, toks[2], "phone", "***0101", p[2]);
		assert_masked(v, toks[3], "email", "s***@psn.example", p[3]);
		assert_masked(v, toks[4], "name", "S***", p[4]);
		assert_masked(v, toks[5], "phone", "***0101", p[5]);
		assert_masked(v, toks[6], "email", "o***@psn.example", p[6]);
		assert_masked(v, toks[7], "name", "O***", p[7]);
		assert_masked(v, toks[8], "phone", "***0102", p[8]);
		jfree(v);
	}
	for (size_t i = 0; i < 9; i++)	/* stable across calls and keys */
		ck_assert_str_eq(p1[i], p2[i]);
	for (size_t i = 0; i < 3; i++) {
		/* The same value (once normalized): the same pseudonym. */
		ck_assert_str_eq(p1[i], p1[3 + i]);
		/* A different value: a different one. */
		ck_assert_str_ne(p1[i], p1[6 + i]);
		for (size_t k = 0; k < 3; k++)
			if (k != i)
				ck_assert_str_ne(p1[i], p1[k]);
	}
}
END_TEST

START_TEST(test_masked_key)
{
	static const struct su_fv f[] = {
		{ "email", "ada.lovelace@b.example" },
		{ "phone", "+1 (555) 867-5309" },
		{ "name", "Ada" },
		{ "city", "Édimbourg" },
		{ "nickname", "  \tBo" },
		{ "backup_email", " \tcy@d.example" },
	};
	char psn[PSN_BUF];
	const char *toks[NELEM(f)];
	struct rec r;
	struct jv *v;

	put(f, NELEM(f), 1, 0, &r);
	for (size_t i = 0; i < NELEM(f); i++)
		toks[i] = r.tok[i];
	v = detok(K_MASKED, "service", NULL, toks, NELEM(f));
	assert_masked(v, toks[0], "email", "a***@b.example", NULL);
	assert_masked(v, toks[1], "phone", "***5309", NULL);
	assert_masked(v, toks[2], "name", "A***", NULL);
	assert_masked(v, toks[3], "city", "É***", NULL);
	/* Leading white space is skipped. */
	assert_masked(v, toks[4], "nickname", "B***", NULL);
	assert_masked(v, toks[5], "backup_email", "c***", NULL);
	jfree(v);
	/* The email mask keeps the domain. */
	{
		struct rec e;
		const char *t;

		put((const struct su_fv[]){ { "email", " \t Dee@e.example" } }, 1,
		    0, 0, &e);
		t = e.tok[0];
		v = detok(K_MASKED, "service", NULL, &t, 1);
		assert_masked(v, t, "email", "D***@e.example", NULL);
		jfree(v);
	}
	v = detok(K_MASKED, "research", NULL, toks, 1);
	assert_masked(v, toks[0], "email", "a***@b.example", psn);
	jfree(v);
	/* The same tokens, plain, for a plain key. */
	v = detok(K_READER, "service", NULL, toks, NELEM(f));
	for (size_t i = 0; i < NELEM(f); i++)
		su_assert_value(v, toks[i], f[i].name, f[i].value);
	jfree(v);
}
END_TEST

START_TEST(test_field_restriction)
{
	static const struct su_fv f[] = { { "email", "only.email@f.example" },
	    { "name", "zq-hidden-name-6601" }, { "phone", "+1 555 0123" } };
	const char *toks[3];
	struct su_resp r;
	struct pv_buf b;
	struct rec rec;
	struct jv *v;

	put(f, 3, 1, 0, &rec);
	for (size_t i = 0; i < 3; i++)
		toks[i] = rec.tok[i];
	v = detok(K_EMAIL, "service", NULL, toks, 3);
	su_assert_value(v, toks[0], "email", f[0].value);
	su_assert_tok_error(v, toks[1], "forbidden");
	su_assert_tok_error(v, toks[2], "forbidden");
	jfree(v);
	/* Nothing of the hidden fields in the answer. */
	pv_buf_init(&b, 1u << 16);
	detok_body(&b, "service", NULL, toks, 3);
	post(&r, "/v1/detokenize", K_EMAIL, b.p);
	pv_buf_cleanup(&b);
	assert_status(&r, 200);
	ck_assert_ptr_null(strstr(r.body.p, "zq-hidden-name-6601"));
	ck_assert_ptr_null(strstr(r.body.p, f[2].value));
	su_resp_free(&r);
}
END_TEST

START_TEST(test_token_errors)
{
	static const struct su_fv f[] = { { "name", "Still Answered" } };
	const char *toks[6];
	struct rec rec;
	struct jv *v;

	put(f, 1, 0, 0, &rec);
	toks[0] = "tok_AAAAAAAAAAAAAAAAAAAAAA";	/* well-formed, unknown */
	toks[1] = rec.tok[0];
	toks[2] = "tok_short";
	toks[3] = rec.id;			/* a record id is no token */
	toks[4] = "not a token at all";
	toks[5] = "";
	v = detok(K_READER, "service", NULL, toks, 6);
	su_assert_tok_error(v, toks[0], "not_found");
	su_assert_value(v, toks[1], "name", "Still Answered");
	for (size_t i = 2; i < 6; i++) {
		const struct jv *e = jget(su_result(v, toks[i]), "error");

		ck_assert_msg(e != NULL && jstr(e, "code") != NULL,
		    "no error for token %zu", i);
		ck_assert_msg(strcmp(jstr(e, "code"), "invalid_token") == 0 ||
		    strcmp(jstr(e, "code"), "not_found") == 0,
		    "token %zu: code %s", i, jstr(e, "code"));
	}
	su_assert_tok_error(v, toks[2], "invalid_token");
	su_assert_tok_error(v, toks[4], "invalid_token");
	jfree(v);

	/* A token asked for twice is answered once, where it came first. */
	{
		const char *dup[] = { rec.tok[0], "tok_AAAAAAAAAAAAAAAAAAAAAA",
		    rec.tok[0], "tok_AAAAAAAAAAAAAAAAAAAAAA", rec.tok[0] };
		const struct jv *res;

		v = detok(K_READER, "service", NULL, dup, NELEM(dup));
		res = jget(v, "results");
		ck_assert_uint_eq(res->n, 2);
		ck_assert_str_eq(res->keys[0], rec.tok[0]);
		ck_assert_str_eq(res->keys[1], dup[1]);
		su_assert_value(v, rec.tok[0], "name", "Still Answered");
		su_assert_tok_error(v, dup[1], "not_found");
		jfree(v);
	}
}
END_TEST

/* POST /v1/lookup as key: the matches, each checked to be well formed. */
static struct jv *
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
	su_buf_add(&b, "}");
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

static void
assert_one_match(const struct jv *v, const char *id, const char *tok)
{
	const struct jv *m = jget(v, "matches");

	ck_assert_uint_eq(m->n, 1);
	ck_assert_pstr_eq(jstr(&m->items[0], "id"), id);
	ck_assert_pstr_eq(jstr(&m->items[0], "token"), tok);
}

START_TEST(test_lookup)
{
	static const struct su_fv a[] = { { "email", "  ada@b.example\t" },
	    { "phone", "+1 555 0100" }, { "name", "Ada" } };
	static const struct su_fv other[] = { { "email", "bob@b.example" },
	    { "phone", "+1 555 0111" } };
	static const int who[] = { K_WRITER, K_READER, K_SERVICE };
	struct rec ra, rb;
	struct jv *v;

	put(a, 3, 0, 0, &ra);
	put(other, 2, 0, 0, &rb);
	/* Values are stored as sent: only the index is normalized. */
	{
		const char *t = tok_of(&ra, "email");

		v = detok(K_READER, "service", NULL, &t, 1);
		su_assert_value(v, t, "email", a[0].value);
		jfree(v);
	}
	for (size_t i = 0; i < NELEM(who); i++) {
		v = lookup(who[i], "email", " Ada@B.Example");
		assert_one_match(v, ra.id, tok_of(&ra, "email"));
		jfree(v);
		v = lookup(who[i], "phone", "+1 (555) 010-0");
		assert_one_match(v, ra.id, tok_of(&ra, "phone"));
		jfree(v);
	}
	v = lookup(K_READER, "email", "BOB@b.example\t");
	assert_one_match(v, rb.id, tok_of(&rb, "email"));
	jfree(v);
	v = lookup(K_READER, "email", "nobody@b.example");
	ck_assert_uint_eq(jget(v, "matches")->n, 0);
	jfree(v);
	/* A key limited to email may look up by email, and by nothing else. */
	v = lookup(K_EMAIL, "email", "ada@B.EXAMPLE ");
	assert_one_match(v, ra.id, tok_of(&ra, "email"));
	jfree(v);
	{
		struct bad b = { "POST", "/v1/lookup", K_EMAIL, NULL, NULL,
		    "{\"field\":\"phone\",\"value\":\"+1 555 0100\"}", 403,
		    "forbidden", "555" };

		expect_bad(&b, 0);
	}
	/* Two records with one email: both, oldest first. */
	{
		struct rec rc;
		const struct jv *m;

		put(a, 1, 0, 0, &rc);
		v = lookup(K_WRITER, "email", "ADA@b.example");
		m = jget(v, "matches");
		ck_assert_uint_eq(m->n, 2);
		ck_assert_pstr_eq(jstr(&m->items[0], "id"), ra.id);
		ck_assert_pstr_eq(jstr(&m->items[1], "id"), rc.id);
		ck_assert_pstr_eq(jstr(&m->items[1], "token"), rc.tok[0]);
		jfree(v);
	}
}
END_TEST

/* Tests: keys while the server runs. */

START_TEST(test_key_revocation_live)
{
	static const struct su_fv f[] = { { "name", "Revocation Test" } };
	char fresh_w[KEY_BUF], fresh_r[KEY_BUF];
	const char *t;
	struct su_resp r;
	struct su_run run;
	struct rec rec;
	struct jv *v;
	char body[256];

	put(f, 1, 0, 0, &rec);
	t = rec.tok[0];
	v = detok(K_SERVICE, "service", NULL, &t, 1);
	su_assert_value(v, t, "name", f[0].value);
	jfree(v);

	cli(&run, "apikey", "revoke", "svc-reader", NULL);
	ck_assert_exit(&run, 0);
	su_run_free(&run);
	(void)snprintf(body, sizeof(body), "{\"tokens\":[\"%s\"],\"purpose\":"
	    "\"service\"}", t);
	post(&r, "/v1/detokenize", K_SERVICE, body);
	assert_error(&r, 401, "unauthenticated", "Revocation");
	su_resp_free(&r);
	/* Revoking a writer stops its writes at once too. */
	cli(&run, "apikey", "revoke", "app-writer", NULL);
	ck_assert_exit(&run, 0);
	su_run_free(&run);
	post(&r, "/v1/records", K_WRITER, "{\"fields\":{\"name\":\"x\"}}");
	assert_error(&r, 401, "unauthenticated", NULL);
	su_resp_free(&r);
	/* Other keys are untouched. */
	v = detok(K_READER, "service", NULL, &t, 1);
	su_assert_value(v, t, "name", f[0].value);
	jfree(v);

	/* Keys created while it runs work at once. */
	apikey_create(fresh_w, "late-writer", "writer", NULL, NULL, NULL);
	apikey_create(fresh_r, "late-reader", "reader", "service", NULL,
	    NULL);
	memcpy(keys[K_WRITER], fresh_w, KEY_BUF);
	memcpy(keys[K_SERVICE], fresh_r, KEY_BUF);
	put(f, 1, 0, 0, &rec);
	t = rec.tok[0];
	v = detok(K_SERVICE, "service", NULL, &t, 1);
	su_assert_value(v, t, "name", f[0].value);
	jfree(v);
}
END_TEST

/* DELETE /v1/records/{id}: crypto-shredding, for admin keys only. */
START_TEST(test_shred)
{
	static const struct su_fv f[] = { { "email", "zq-shred-8801@s.example" },
	    { "name", "zq-shred-name-8802" } };
	static const int not_admin[] = { K_WRITER, K_READER, K_AUDITOR };
	const struct jv *rc;
	const char *toks[2];
	char path[64], *first;
	struct rec a, b;
	struct su_resp r;
	struct jv *v;

	put(f, 2, 1, 0, &a);
	put(f, 2, 1, 0, &b);
	ck_assert_int_eq(stored(), 2);
	(void)snprintf(path, sizeof(path), "/v1/records/%s", a.id);
	for (size_t i = 0; i < NELEM(not_admin); i++) {
		struct bad x = { "DELETE", path, not_admin[i], NULL, NULL,
		    NULL, 403, "forbidden", NULL };

		expect_bad(&x, i);
	}
	{
		struct bad x = { "DELETE", path, K_NONE, NULL, NULL, NULL, 401,
		    "unauthenticated", NULL };
		struct bad y = { "DELETE",
		    "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA", K_ADMIN, NULL,
		    NULL, NULL, 404, "not_found", NULL };

		expect_bad(&x, 10);
		expect_bad(&y, 11);
	}

	req(&r, "DELETE", path, K_ADMIN, NULL, NULL);
	assert_status(&r, 200);
	v = su_body_json(&r);
	rc = jget(v, "receipt");
	ck_assert_msg(rc != NULL && rc->type == J_OBJ, "no receipt: [%s]",
	    r.body.p);
	ck_assert_pstr_eq(jstr(rc, "record"), a.id);
	ck_assert_ptr_nonnull(jstr(v, "signature"));
	ck_assert_ptr_null(strstr(r.body.p, "zq-shred"));
	jfree(v);
	ck_assert_ptr_nonnull(first = strdup(r.body.p));
	su_resp_free(&r);
	ck_assert_int_eq(stored(), 1);

	/* Its tokens answer shredded; the other record is untouched. */
	toks[0] = a.tok[0];
	toks[1] = b.tok[0];
	v = detok(K_READER, "service", NULL, toks, 2);
	su_assert_tok_error(v, a.tok[0], "shredded");
	su_assert_value(v, b.tok[0], "email", f[0].value);
	jfree(v);
	v = lookup(K_WRITER, "email", f[0].value);
	assert_one_match(v, b.id, b.tok[0]);
	jfree(v);

	/* Shredding twice is harmless and answers the first receipt. */
	req(&r, "DELETE", path, K_ADMIN, NULL, NULL);
	assert_status(&r, 200);
	ck_assert_str_eq(r.body.p, first);
	su_resp_free(&r);
	free(first);
	ck_assert_int_eq(stored(), 1);
}
END_TEST

/* Tests: metrics. */

START_TEST(test_metrics)
{
	static const struct su_fv f[] = { { "email", "zq-metric-7701@m.example" },
	    { "name", "zq-metric-name-7702" } };
	static const char bucket[] =
	    "piivault_request_duration_seconds_bucket{le=\"";
	unsigned long long cum = 0, prev = 0;
	struct rec a, b;
	struct su_resp r;
	const char *t;
	char *m, *p;
	int buckets = 0;
	struct jv *v;

	put(f, 2, 1, 0, &a);
	put(f, 1, 0, 0, &b);
	req(&r, "GET", "/v1/nope", K_NONE, NULL, NULL);
	su_resp_free(&r);
	post(&r, "/v1/detokenize", K_NONE, GOOD_DETOK);
	su_resp_free(&r);
	post(&r, "/v1/records", K_WRITER, "{\"fields\":{\"x\":1}}");
	su_resp_free(&r);
	post(&r, "/v1/records", K_WRITER, "{\"fields\":");
	su_resp_free(&r);
	t = a.tok[0];
	v = detok(K_READER, "service", NULL, &t, 1);
	jfree(v);
	free(metrics_until("piivault_requests_total{route=\"/v1/detokenize\",method=\"POST\","
	    "status=\"200\"}", 1));

	m = metrics();
	ck_assert_int_eq(metric(m, "piivault_requests_total{route="
	    "\"/v1/records\",method=\"POST\",status=\"201\"}"), 2);
	ck_assert_int_eq(metric(m, "piivault_requests_total{route="
	    "\"/v1/records\",method=\"POST\",status=\"400\"}"), 1);
	ck_assert_int_eq(metric(m, "piivault_requests_total{route="
	    "\"/v1/records\",method=\"POST\",status=\"422\"}"), 1);
	ck_assert_int_eq(metric(m, "piivault_requests_total{route=\"other\",method=\"other\","
	    "status=\"404\"}"), 1);
	ck_assert_int_eq(metric(m, "piivault_requests_total{route="
	    "\"/v1/detokenize\",method=\"POST\",status=\"401\"}"), 1);
	ck_assert_int_ge(metric(m, "piivault_requests_total{route="
	    "\"/metrics\",method=\"GET\",status=\"200\"}"), 1);
	ck_assert_ptr_nonnull(strstr(m, "# TYPE piivault_requests_total "
	    "counter\n"));
	ck_assert_ptr_nonnull(strstr(m, "# TYPE "
	    "piivault_request_duration_seconds histogram\n"));
	ck_assert_ptr_nonnull(strstr(m, "# TYPE piivault_records_stored "
	    "gauge\n"));
	ck_assert_int_eq(metric(m, "piivault_records_stored"), 2);
	ck_assert_int_eq(metric(m, "piivault_kek_active_version"), 1);

	/* The histogram: cumulative buckets, ending in +Inf = count. */
	for (p = strstr(m, bucket); p != NULL; p = strstr(p + 1, bucket)) {
		const char *sp = strchr(p, ' ');

		ck_assert_ptr_nonnull(sp);
		cum = strtoull(sp + 1, NULL, 10);
		ck_assert_uint_ge(cum, prev);
		prev = cum;
		buckets++;
		if (strncmp(p + sizeof(bucket) - 1, "+Inf\"}", 6) == 0)
			break;
	}
	ck_assert_int_ge(buckets, 2);
	ck_assert_msg(p != NULL, "no +Inf bucket: [%s]", m);
	ck_assert_int_eq((long long)cum, metric(m,
	    "piivault_request_duration_seconds_count"));
	ck_assert_uint_ge(cum, 7);
	ck_assert_ptr_nonnull(strstr(m,
	    "\npiivault_request_duration_seconds_sum "));

	/* Every requests_total line: a known route, a status or "other". */
	for (p = strstr(m, "\npiivault_requests_total{"); p != NULL;
	    p = strstr(p + 1, "\npiivault_requests_total{")) {
		char route[64], status[16];
		int known;

		ck_assert_int_eq(sscanf(p, "\npiivault_requests_total{route="
		    "\"%63[^\"]\",method=\"%*[^\"]\",status=\"%15[^\"]\"}",
		    route, status), 2);
		known = strcmp(route, "other") == 0;
		for (int i = 0; i < API_R_OTHER; i++)
			known |= strcmp(route, api_routes[i].path) == 0;
		ck_assert_msg(known, "route [%s]", route);
		ck_assert_msg(strcmp(status, "other") == 0 ||
		    (strlen(status) == 3 && strspn(status, "0123456789") ==
		    3), "status label [%s]", status);
	}

	/* Nothing we sent, nor anything we got. */
	ck_assert_ptr_null(strstr(m, "tok_"));
	ck_assert_ptr_null(strstr(m, "rec_"));
	ck_assert_ptr_null(strstr(m, "pvk_"));
	ck_assert_ptr_null(strstr(m, "zq-metric"));
	ck_assert_ptr_null(strstr(m, "m.example"));
	ck_assert_ptr_null(strstr(m, a.id + 4));
	ck_assert_ptr_null(strstr(m, a.tok[0] + 4));
	ck_assert_ptr_null(strstr(m, b.tok[0] + 4));
	free(m);
}
END_TEST

/* Connect to the server over a plain socket; the fd. */
static int
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

/*
 * A client that gives up half-way through its body is counted with the
 * status label "other", like every status without a slot of its own.
 */
START_TEST(test_metrics_aborted_request)
{
	static const char part[] = "POST /v1/records HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
	    "Content-Length: 200\r\n\r\n{\"fields\":{\"name\":\"zq-abort-";
	static const char series[] = "piivault_requests_total{route="
	    "\"/v1/records\",method=\"POST\",status=\"";
	const char *p = NULL;
	char *m = NULL;
	int fd;

	fd = raw_connect();
	ck_assert_int_eq(write(fd, part, sizeof(part) - 1),
	    (ssize_t)(sizeof(part) - 1));
	(void)usleep(200000);
	(void)close(fd);
	for (int i = 0; i < 300 && p == NULL; i++) {
		free(m);
		m = metrics();
		if ((p = strstr(m, series)) == NULL)
			(void)usleep(10000);
	}
	ck_assert_msg(p != NULL, "the aborted request is not counted: [%s]",
	    m);
	ck_assert_msg(strncmp(p + sizeof(series) - 1, "other\"} 1\n", 10) == 0,
	    "aborted request counted as [%.70s]", p);
	free(m);
}
END_TEST

/* The order in which a request's faults are reported (openapi.yaml). */
START_TEST(test_err_order)
{
	static const struct bad bad[] = {
		/* Authentication before the media type and the role. */
		{ "POST", "/v1/records", K_NONE, NULL, "text/plain",
		  "zq-o-9901", 401, "unauthenticated", "zq-o-9901" },
		{ "POST", "/v1/detokenize", K_RAW, "Bearer pvk_bad",
		  "text/plain", "{", 401, "unauthenticated", NULL },
		/* The media type before the role. */
		{ "POST", "/v1/records", K_READER, NULL, "text/plain",
		  GOOD_REC, 415, "unsupported_media_type", "zq-" },
		{ "POST", "/v1/detokenize", K_WRITER, NULL, "text/plain",
		  GOOD_DETOK, 415, "unsupported_media_type", NULL },
		{ "POST", "/v1/lookup", K_AUDITOR, NULL, "", GOOD_LOOKUP, 415,
		  "unsupported_media_type", "zq-" },
		/* The role before the body. */
		{ "POST", "/v1/records", K_READER, NULL, NULL,
		  "{\"fields\":{\"name\":\"zq-o-9902", 403, "forbidden",
		  "zq-o-9902" },
		{ "POST", "/v1/records/batch", K_ADMIN, NULL, NULL, "[", 403,
		  "forbidden", NULL },
		{ "POST", "/v1/detokenize", K_WRITER, NULL, NULL,
		  "not json zq-o-9903", 403, "forbidden", "zq-o-9903" },
		{ "POST", "/v1/lookup", K_AUDITOR, NULL, NULL, "{", 403,
		  "forbidden", NULL },
		/* An unknown member is reported before anything else in it. */
		{ "POST", "/v1/records", K_WRITER, NULL, NULL,
		  "{\"fields\":5,\"zz\":1}", 422, "unknown_member", NULL },
		{ "POST", "/v1/records/batch", K_WRITER, NULL, NULL,
		  "{\"zz\":1}", 422, "unknown_member", NULL },
		/* The purpose before the reason. */
		{ "POST", "/v1/detokenize", K_SERVICE, NULL, NULL,
		  "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],"
		  "\"purpose\":\"legal\"}", 403, "purpose_not_allowed",
		  NULL },
		/*
		 * A look-up: its body, then the key's fields, then the field
		 * name and the value.
		 */
		{ "POST", "/v1/lookup", K_EMAIL, NULL, NULL,
		  "{\"field\":\"phone\",\"value\":\"x\",\"zz\":1}", 422,
		  "unknown_member", NULL },
		{ "POST", "/v1/lookup", K_EMAIL, NULL, NULL,
		  "{\"field\":\"phone\",\"value\":\"zq-o-9904 no phone\"}",
		  403, "forbidden", "zq-o-9904" },
		{ "POST", "/v1/lookup", K_EMAIL, NULL, NULL,
		  "{\"field\":\"Bad Field\",\"value\":\"zq-o-9905\"}", 403,
		  "forbidden", "zq-o-9905" },
		{ "POST", "/v1/lookup", K_EMAIL, NULL, NULL,
		  "{\"field\":\"name\",\"value\":\"zq-o-9906\"}", 403,
		  "forbidden", "zq-o-9906" },
		{ "POST", "/v1/lookup", K_EMAIL, NULL, NULL,
		  "{\"field\":\"email\",\"value\":\"zq-o-9907\"}", 422,
		  "invalid_value", "zq-o-9907" },
	};
	struct bad x = { "POST", "/v1/records", K_READER, NULL, "text/plain",
	    NULL, 413, "too_large", "zq-o-9908" };
	char *body;

	expect_all_bad(bad, NELEM(bad));
	/* The body limit before the media type and the role. */
	ck_assert_ptr_nonnull(body = malloc(API_BODY_MAX + 2));
	memset(body, 'z', API_BODY_MAX + 1);
	memcpy(body, "zq-o-9908", 9);
	body[API_BODY_MAX + 1] = '\0';
	x.body = body;
	expect_bad(&x, 100);
	free(body);
}
END_TEST

/* Tests: HTTP semantics the protocol requires (RFC 9110). */

/* Whether the Allow value a lists exactly the methods of template t. */
static int
allow_is(const char *a, const char *t)
{
	size_t listed = 0, want = 0;
	char buf[128], *tok, *save;

	(void)snprintf(buf, sizeof(buf), "%s", a);
	for (tok = strtok_r(buf, ", ", &save); tok != NULL;
	    tok = strtok_r(NULL, ", ", &save)) {
		int found = 0;

		for (int i = 0; i < API_R_OTHER; i++)
			found |= strcmp(api_routes[i].path, t) == 0 &&
			    strcmp(api_routes[i].method, tok) == 0;
		if (!found)
			return 0;
		listed++;
	}
	for (int i = 0; i < API_R_OTHER; i++)
		want += strcmp(api_routes[i].path, t) == 0;
	return listed == want;
}

START_TEST(test_http_405_allow)
{
	static const char *const probes[] = { "PATCH", "PUT", "DELETE",
	    "POST", "GET" };
	struct su_resp r;
	const char *h;

	req(&r, "GET", "/v1/records", K_WRITER, NULL, NULL);
	assert_status(&r, 405);
	h = su_header(&r, "Allow");
	ck_assert_msg(h != NULL && strstr(h, "POST") != NULL,
	    "405 without Allow: POST; headers [%s]", r.hdr.p);
	ck_assert_str_eq(h, "POST");
	su_resp_free(&r);
	/*
	 * Every path, asked with a method it does not take: 405, and Allow
	 * names the methods it takes.  HEAD is answered where GET is
	 * (RFC 9110 9.3.2), refused elsewhere.
	 */
	for (int i = 0; i < API_R_OTHER; i++) {
		const char *t = api_routes[i].path, *hole, *probe = NULL;
		int has_get = 0;
		char path[128];

		for (int k = 0; k < API_R_OTHER; k++)
			has_get |= strcmp(api_routes[k].path, t) == 0 &&
			    strcmp(api_routes[k].method, "GET") == 0;
		for (size_t m = 0; m < NELEM(probes) && probe == NULL; m++) {
			int taken = 0;

			for (int k = 0; k < API_R_OTHER; k++)
				taken |= strcmp(api_routes[k].path, t) == 0 &&
				    strcmp(api_routes[k].method, probes[m]) ==
				    0;
			if (!taken)
				probe = probes[m];
		}
		ck_assert_ptr_nonnull(probe);
		if ((hole = strstr(t, "{id}")) != NULL)
			(void)snprintf(path, sizeof(path), "%.*s%s%s",
			    (int)(hole - t), t, "rec_AAAAAAAAAAAAAAAAAAAAAA",
			    hole + 4);
		else
			(void)snprintf(path, sizeof(path), "%s", t);
		req(&r, probe, path, K_NONE, NULL,
		    strcmp(probe, "GET") != 0 && strcmp(probe, "DELETE") != 0 ?
		    "{}" : NULL);
		assert_error(&r, 405, "method_not_allowed", NULL);
		ck_assert_msg(allow_is(su_header(&r, "Allow"), t),
		    "%s %s: Allow [%s]", probe, path, su_header(&r, "Allow"));
		su_resp_free(&r);
		req(&r, "HEAD", path, K_NONE, NULL, NULL);
		/* HEAD only where GET has no effect: health and metrics. */
		if (has_get && (strcmp(t, "/v1/health") == 0 ||
		    strcmp(t, "/metrics") == 0))
			ck_assert_msg(r.status != 405, "HEAD %s: 405", path);
		else {
			assert_status(&r, 405);
			ck_assert_msg(allow_is(su_header(&r, "Allow"), t),
			    "HEAD %s: Allow [%s]", path, su_header(&r, "Allow"));
		}
		ck_assert_uint_eq(r.body.len, 0);
		su_resp_free(&r);
	}
}
END_TEST

START_TEST(test_http_401_challenge)
{
	struct su_resp r;
	const char *h;

	/* 401 "MUST send a WWW-Authenticate header field" (11.6.1). */
	post(&r, "/v1/records", K_NONE, GOOD_REC);
	assert_status(&r, 401);
	h = su_header(&r, "WWW-Authenticate");
	ck_assert_msg(h != NULL && strncasecmp(h, "Bearer", 6) == 0,
	    "401 without WWW-Authenticate: Bearer; headers [%s]", r.hdr.p);
	su_resp_free(&r);
}
END_TEST

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
			const struct jv *res = jget(jget(v, "results"),
			    rec->tok[k]);
			const char *val = jstr(res, "value");

			if (val == NULL || strcmp(val, want[k]) != 0 ||
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

/* Tests: where it may listen. */

START_TEST(test_listen_off_loopback)
{
	static const char *const wild[] = { "serve", "--listen", "0.0.0.0:0",
	    NULL };
	static const char *const insecure[] = { "--listen", "0.0.0.0:0",
	    "--insecure-plaintext", NULL };
	char errpath[PATH_MAX + 16], *err;
	struct su_resp r;
	pid_t pid;
	int out, errfd, st;

	su_srv_stop();
	ck_assert_int_lt(snprintf(errpath, sizeof(errpath), "%s/wild.err",
	    su_tdir), (int)sizeof(errpath));
	ck_assert_int_ge(errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600), 0);
	pid = su_spawn(wild, NULL, &out, errfd);
	(void)close(errfd);
	if ((st = su_wait_for(pid, WAIT_MS)) < 0) {
		(void)kill(pid, SIGKILL);
		(void)su_wait_for(pid, WAIT_MS);
	}
	(void)close(out);
	ck_assert_ptr_nonnull(err = su_slurp(errpath, NULL));
	ck_assert_msg(st > 0, "serve on 0.0.0.0 without TLS: exit %d [%s]",
	    st, err);
	ck_assert_msg(strstr(err, "--insecure-plaintext") != NULL &&
	    strstr(err, "loopback") != NULL, "no reason given: [%s]", err);
	free(err);

	srv_start_args(insecure);
	ck_assert_msg(strncmp(su_srv.url, "http://0.0.0.0:", 15) == 0, "url %s",
	    su_srv.url);
	req(&r, "GET", "/v1/health", K_NONE, NULL, NULL);
	assert_status(&r, 200);
	su_resp_free(&r);
	su_srv_stop();
}
END_TEST

/* Tests: the OpenAPI document. */

START_TEST(test_openapi_documents_routes)
{
	static const char path[] = PIIVAULT_SOURCE_DIR "/docs/openapi.yaml";
	char *doc;

	doc = su_slurp(path, NULL);
	ck_assert_msg(doc != NULL, "%s does not exist", path);
	for (int r = 0; r < API_R_OTHER; r++) {
		char want[128], method[16];
		const char *p, *line;
		size_t i, plen;
		int found = 0;

		for (i = 0; api_routes[r].method[i] != '\0' &&
		    i < sizeof(method) - 1; i++)
			method[i] = (char)(api_routes[r].method[i] | 0x20);
		method[i] = '\0';
		(void)snprintf(want, sizeof(want), "  %s:", api_routes[r].path);
		plen = strlen(want);
		/* The path's line: "  /v1/…:" alone. */
		for (p = doc; p != NULL; p = strchr(p, '\n') ? strchr(p,
		    '\n') + 1 : NULL)
			if (strncmp(p, want, plen) == 0 && (p[plen] == '\n' ||
			    p[plen] == '\r' || p[plen] == '\0' ||
			    p[plen] == ' '))
				break;
		ck_assert_msg(p != NULL, "openapi.yaml has no line \"%s\"",
		    want);
		/* Then its operations, until the next line indented less. */
		(void)snprintf(want, sizeof(want), "    %s:", method);
		plen = strlen(want);
		for (line = strchr(p, '\n'); line != NULL && !found;
		    line = strchr(line, '\n')) {
			line++;
			if (strncmp(line, want, plen) == 0) {
				found = 1;
				break;
			}
			/* Blank and comment lines go on; others end it. */
			if (*line != '\n' && *line != '\r' && *line != '\0' &&
			    strspn(line, " ") < 4 && line[strspn(line, " ")] !=
			    '#')
				break;
		}
		ck_assert_msg(found, "openapi.yaml: %s has no \"%s\"",
		    api_routes[r].path, want);
	}
	free(doc);
}
END_TEST

static TCase *
tcase(Suite *s, const char *name, int fixture, int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, case_setup, su_case_teardown);
	if (fixture)
		tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *
http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc;

	tc = tcase(s, "records", 1, TIMEOUT);
	tcase_add_test(tc, test_health);
	tcase_add_test(tc, test_records_put_and_detokenize);
	tcase_add_test(tc, test_records_header_variants);
	tcase_add_test(tc, test_batch);
	tcase_add_test(tc, test_batch_limits);

	tc = tcase(s, "errors", 1, TIMEOUT);
	tcase_add_test(tc, test_err_invalid_json);
	tcase_add_test(tc, test_err_unauthenticated);
	tcase_add_test(tc, test_err_forbidden);
	tcase_add_test(tc, test_err_not_found_and_method);
	tcase_add_test(tc, test_err_too_large);
	tcase_add_test(tc, test_err_too_large_small_limit);
	tcase_add_test(tc, test_err_media_type);
	tcase_add_test(tc, test_err_unprocessable);
	tcase_add_test(tc, test_err_order);
	tcase_add_test(tc, test_http_405_allow);
	tcase_add_test(tc, test_http_401_challenge);

	tc = tcase(s, "access", 1, TIMEOUT);
	tcase_add_test(tc, test_purposes_and_consent);
	tcase_add_test(tc, test_pseudonyms);
	tcase_add_test(tc, test_masked_key);
	tcase_add_test(tc, test_field_restriction);
	tcase_add_test(tc, test_token_errors);
	tcase_add_test(tc, test_lookup);
	tcase_add_test(tc, test_key_revocation_live);
	tcase_add_test(tc, test_shred);

	tc = tcase(s, "metrics", 1, TIMEOUT);
	tcase_add_test(tc, test_metrics);
	tcase_add_test(tc, test_metrics_aborted_request);

	tc = tcase(s, "load", 1, 2 * TIMEOUT);
	tcase_add_test(tc, test_concurrent_clients);
	tcase_add_test(tc, test_large_bodies_take_turns);
	tcase_add_test(tc, test_restart_keeps_records);
	tcase_add_test(tc, test_sigkill_keeps_acknowledged);
	tcase_add_test(tc, test_sigterm_in_flight);
	tcase_add_test(tc, test_sigterm_stalled_client);

	tc = tcase(s, "listen", 1, TIMEOUT);
	tcase_add_test(tc, test_listen_off_loopback);

	tc = tcase(s, "openapi", 0, TIMEOUT);
	tcase_add_test(tc, test_openapi_documents_routes);
	return s;
}

int
main(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "check_http: curl_global_init failed\n");
		return 1;
	}
	return tu_run(http_suite());
}
