/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_policy.c: the privacy policy, over real HTTP and through the real
 * binary: the audit log (what it records, that it never holds a value, a
 * token or a secret, that its chain detects every kind of tampering, and
 * that a request whose event cannot be written answers 503), and what a
 * person may ask of their record (access, correction, deletion, consent),
 * legal hold, the request limit per record, and retention.
 *
 * Each test makes a vault in a fresh directory with the real binary
 * (PIIVAULT_BIN): piivault init and API keys, then piivault serve on a
 * port the kernel picks, stopped with SIGTERM (the server must then exit
 * 0).  The clock every child reads is pinned with PIIVAULT_FAKE_NOW, so
 * retention dates and request windows are the tests' to move: a test
 * "waits" a month by restarting the server with a later time.  Only
 * piivault-test (built with PV_TEST_HOOKS) reads that variable: for this
 * suite PIIVAULT_BIN names it (tests/CMakeLists.txt).
 *
 * White-box: the tampering tests include pv_store.h and edit the audit
 * table (docs/format.md: key = seq, 8 bytes big-endian; value = event
 * bytes then a 32-byte chain hash) directly in the data file, with no
 * process holding it open.
 *
 * The process, curl and JSON helpers are copied from check_http.c (which
 * this suite must not change), trimmed and extended: the children's
 * environment carries the pinned clock and, for the map-full test,
 * PIIVAULT_MAP_SIZE_MIB; a command's standard output is collected whole.
 *
 * Personal values here are distinctive ("zq." and a number) so that the
 * audit log, the audit API and error answers can be searched for them;
 * the dot keeps them from turning up by chance inside a base64url id.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "pv.h"
#include "pv_store.h"	/* white-box: the tampering tests */
#include "api.h"
#include "vault.h"
#include "srvutil.h"
#include "testutil.h"

#ifndef PIIVAULT_BIN
#error "PIIVAULT_BIN must name the piivault binary"
#endif

#define ARGS_MAX	24
#define TIMEOUT		60	/* seconds a test, sanitizer build */
#define WAIT_MS		30000	/* for a server to start or stop */
#define ID_BUF		(VAULT_ID_STRLEN + 1)
#define KEY_BUF		(VAULT_APIKEY_SECRET_LEN + 1)
#define REC_FIELDS	8
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

#define DAY		86400ull
#define T0		1700000000ull	/* the tests' "now" */
#define WINDOW		(30 * DAY)
/*
 * Retention for records whose date does not matter to the test: far off,
 * but set, because the access answer of a record without one is not JSON
 * ("retain_until":null0, test_access_request), and tests that only use an
 * access request on the side should not fail on that.
 */
#define KEEP		365

/* What every child sees: the pinned clock, and the map size if set. */
static uint64_t fake_now;	/* 0: the real clock */
static unsigned map_mib;	/* 0: the default map */

/* The API keys every test's vault has. */
enum {
	K_WRITER,	/* pw-writer */
	K_READER,	/* pw-reader, every purpose */
	K_SERVICE,	/* pw-service, reader for service only */
	K_ADMIN,	/* pw-admin */
	K_AUDITOR,	/* pw-auditor */
	K__COUNT,
	K_NONE = -1,	/* no Authorization header */
	K_RAW = -2,	/* the header given as text */
};
static const char *const key_names[K__COUNT] = {
	"pw-writer", "pw-reader", "pw-service", "pw-admin", "pw-auditor",
};
static char keys[K__COUNT][KEY_BUF];

/* Fixtures. */

static void
case_setup(void)
{
	su_case_setup("policy");
}

/* Running the binary. */

/* The children's environment: fake_now and map_mib, when set. */
static const char *const *
child_env(void)
{
	static char now_buf[64], map_buf[64];
	static const char *env[3];
	size_t n = 0;

	if (fake_now != 0) {
		(void)snprintf(now_buf, sizeof(now_buf),
		    "PIIVAULT_FAKE_NOW=%" PRIu64, fake_now);
		env[n++] = now_buf;
	}
	if (map_mib != 0) {
		(void)snprintf(map_buf, sizeof(map_buf),
		    "PIIVAULT_MAP_SIZE_MIB=%u", map_mib);
		env[n++] = map_buf;
	}
	env[n] = NULL;
	return env;
}

/* piivault args... (NULL-terminated) to its end; su_run_free r after. */
#define cli(r, ...)	su_cli((r), child_env(), __VA_ARGS__)

#define ck_assert_exit(r, code) ck_assert_msg((r)->status == (code),	\
	"exit %d, want %d; stdout [%.1000s] stderr [%s]", (r)->status,	\
	(code), (r)->out, (r)->err)

/* piivault apikey create ...; the secret it printed goes to out. */
static void
apikey_create(char out[static KEY_BUF], const char *name, const char *role,
    const char *purposes)
{
	const struct su_apikey k = { name, role, purposes, NULL, NULL };

	su_apikey_create(out, child_env(), NULL, &k);
}

/* The server. */

/*
 * Start piivault serve --listen 127.0.0.1:0 with extra (NULL-terminated)
 * and wait for "piivault: listening on URL" on its stdout.
 */
static void
srv_start_v(const char *const *extra)
{
	su_srv_start_local(NULL, extra, child_env());
}

/* srv_start_v with its arguments listed, NULL last. */
static void __attribute__((sentinel))
srv_start(const char *first, ...)
{
	const char *args[ARGS_MAX + 1] = { first };
	va_list ap;

	va_start(ap, first);
	if (first != NULL)
		su_args_va(args + 1, ARGS_MAX - 4, ap);
	va_end(ap);
	srv_start_v(args);
}

/* The server with its defaults. */
static void
srv_start_plain(void)
{
	srv_start_v(NULL);
}

static void
setup(void)
{
	struct su_run r;

	su_srv_setup();
	fake_now = T0;
	map_mib = 0;
	cli(&r, "init", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	apikey_create(keys[K_WRITER], key_names[K_WRITER], "writer", NULL);
	apikey_create(keys[K_READER], key_names[K_READER], "reader",
	    "service,notices,marketing,research,contest,payment,legal");
	apikey_create(keys[K_SERVICE], key_names[K_SERVICE], "reader",
	    "service");
	apikey_create(keys[K_ADMIN], key_names[K_ADMIN], "admin", NULL);
	apikey_create(keys[K_AUDITOR], key_names[K_AUDITOR], "auditor", NULL);
}

/* HTTP. */

/*
 * A request to the running server.  key: an index in keys, K_NONE, or
 * K_RAW with auth the whole Authorization value.  A body goes as
 * application/json.
 */
static void
req_auth(struct su_resp *r, const char *method, const char *path, int key,
    const char *auth, const char *body)
{
	char bearer[KEY_BUF + 8];

	if (key >= 0) {
		(void)snprintf(bearer, sizeof(bearer), "Bearer %s", keys[key]);
		auth = bearer;
	} else if (key != K_RAW)
		auth = NULL;
	su_req(r, method, path, auth, NULL, body, body ? strlen(body) : 0);
}

static void
req(struct su_resp *r, const char *method, const char *path, int key,
    const char *body)
{
	req_auth(r, method, path, key, NULL, body);
}

#define assert_status(r, want) ck_assert_msg((r)->status == (want),	\
	"status %ld, want %d: [%.600s]; log [%s]", (r)->status,		\
	(int)(want), (r)->body.p, su_server_log())

/* Reading answers. */

/* The number at o.key, which must be a non-negative integer. */
static uint64_t
jnum(const struct jv *o, const char *key)
{
	const struct jv *v = jget(o, key);
	char *end;
	unsigned long long n;

	ck_assert_msg(v != NULL && v->type == J_NUM, "no number \"%s\"", key);
	errno = 0;
	n = strtoull(v->s, &end, 10);
	ck_assert_msg(errno == 0 && *end == '\0' && v->s[0] != '-',
	    "\"%s\": not an integer [%s]", key, v->s);
	return (uint64_t)n;
}

/* o.key is true (1) or false (0). */
static int
jbool(const struct jv *o, const char *key)
{
	const struct jv *v = jget(o, key);

	ck_assert_msg(v != NULL && (v->type == J_TRUE || v->type == J_FALSE),
	    "no boolean \"%s\"", key);
	return v->type == J_TRUE;
}

/* r is status st with {"error":{"code":code,"message":"…"}}, exactly. */
static void
assert_error(const struct su_resp *r, long st, const char *code)
{
	su_assert_error(r, st, code);
}

/* One request that must fail with st and code. */
static void
expect_error(const char *method, const char *path, int key, const char *body,
    long st, const char *code)
{
	struct su_resp r;

	req(&r, method, path, key, body);
	assert_error(&r, st, code);
	su_resp_free(&r);
}

/* Records and tokens. */

struct rec {
	char	 id[ID_BUF];
	size_t	 n;
	char	 name[REC_FIELDS][PV_FIELD_NAME_MAX + 1];
	char	 tok[REC_FIELDS][ID_BUF];
};

/* {"id":"rec_…","tokens":{"f":"tok_…",…}} into out. */
static void
rec_from_json(const struct jv *v, struct rec *out, const char *text)
{
	const struct jv *toks = jget(v, "tokens");
	const char *id = jstr(v, "id");

	memset(out, 0, sizeof(*out));
	ck_assert_msg(v->type == J_OBJ && v->n == 2 && su_id_valid(id, "rec_") &&
	    toks != NULL && toks->type == J_OBJ && toks->n <= REC_FIELDS,
	    "not {\"id\":…,\"tokens\":…}: [%s]", text);
	memcpy(out->id, id, ID_BUF);
	for (size_t i = 0; i < toks->n; i++) {
		ck_assert_msg(toks->items[i].type == J_STR &&
		    su_id_valid(toks->items[i].s, "tok_") &&
		    strlen(toks->keys[i]) <= PV_FIELD_NAME_MAX,
		    "bad token for %s: [%s]", toks->keys[i], text);
		memcpy(out->name[i], toks->keys[i], strlen(toks->keys[i]) + 1);
		memcpy(out->tok[i], toks->items[i].s, ID_BUF);
	}
	out->n = toks->n;
}

/* The token of field name in r, or NULL. */
static const char *
tok_find(const struct rec *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->name[i], name) == 0)
			return r->tok[i];
	return NULL;
}

static const char *
tok_of(const struct rec *r, const char *name)
{
	const char *t = tok_find(r, name);

	ck_assert_msg(t != NULL, "no token for field %s", name);
	return t;
}

/* Store fields as the writer: 201, its id and tokens, in order. */
static void
put(const struct su_fv *f, size_t n, int consent, int days, struct rec *out)
{
	struct pv_buf b;
	struct su_resp r;
	struct jv *v;

	pv_buf_init(&b, 1u << 20);
	su_record_body(&b, f, n, consent, days);
	req(&r, "POST", "/v1/records", K_WRITER, b.p);
	pv_buf_cleanup(&b);
	assert_status(&r, 201);
	v = su_body_json(&r);
	rec_from_json(v, out, r.body.p);
	jfree(v);
	su_resp_free(&r);
	ck_assert_uint_eq(out->n, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(out->name[i], f[i].name);
}

/* POST /v1/detokenize as key: the answer, whatever its status. */
static void
detok_req(struct su_resp *r, int key, const char *purpose, const char *reason,
    const char *const *toks, size_t n)
{
	struct pv_buf b;

	pv_buf_init(&b, 1u << 20);
	su_buf_add(&b, "{\"tokens\":[");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			su_buf_add(&b, ",");
		su_buf_quote(&b, toks[i]);
	}
	su_buf_add(&b, "],\"purpose\":");
	su_buf_quote(&b, purpose);
	if (reason != NULL) {
		su_buf_add(&b, ",\"reason\":");
		su_buf_quote(&b, reason);
	}
	su_buf_add(&b, "}");
	req(r, "POST", "/v1/detokenize", key, b.p);
	pv_buf_cleanup(&b);
}

/* The same, which must answer 200 with {"results":[…]}, an item a token. */
static struct jv *
detok(int key, const char *purpose, const char *reason,
    const char *const *toks, size_t n)
{
	struct su_resp r;
	struct jv *v;

	detok_req(&r, key, purpose, reason, toks, n);
	assert_status(&r, 200);
	v = su_body_json(&r);
	ck_assert_msg(v->type == J_OBJ && v->n == 1 &&
	    jget(v, "results") != NULL && jget(v, "results")->type == J_ARR &&
	    jget(v, "results")->n == n, "not {\"results\":[…]}: [%.300s]",
	    r.body.p);
	su_resp_free(&r);
	return v;
}

/* One token, detokenized for service by the all-purpose reader. */
static void
expect_value(const char *tok, const char *field, const char *value)
{
	struct jv *v = detok(K_READER, "service", NULL, &tok, 1);

	su_assert_value(v, tok, field, value);
	jfree(v);
}

static void
expect_tok_error(const char *tok, const char *code)
{
	struct jv *v = detok(K_READER, "service", NULL, &tok, 1);

	su_assert_tok_error(v, tok, code);
	jfree(v);
}

/* POST /v1/lookup as the writer: the matches array (in doc, jfree). */
static struct jv *
lookup(const char *field, const char *value)
{
	struct pv_buf b;
	struct su_resp r;
	struct jv *v;

	pv_buf_init(&b, 1u << 16);
	su_buf_add(&b, "{\"field\":");
	su_buf_quote(&b, field);
	su_buf_add(&b, ",\"value\":");
	su_buf_quote(&b, value);
	su_buf_add(&b, ",\"purpose\":\"service\"}");
	req(&r, "POST", "/v1/lookup", K_WRITER, b.p);
	pv_buf_cleanup(&b);
	assert_status(&r, 200);
	v = su_body_json(&r);
	ck_assert_msg(jget(v, "matches") != NULL &&
	    jget(v, "matches")->type == J_ARR, "not {\"matches\":[…]}: [%s]",
	    r.body.p);
	su_resp_free(&r);
	return v;
}

/* "/v1/records/ID" plus suffix. */
static const char *
rec_path(const char *id, const char *suffix)
{
	static char path[4][128];
	static int next;
	char *p = path[next++ % 4];

	(void)snprintf(p, sizeof(path[0]), "/v1/records/%s%s", id, suffix);
	return p;
}

/* GET /v1/records/ID as the admin: 200 and the answer. */
static struct jv *
access_rec(const char *id)
{
	struct su_resp r;
	struct jv *v;

	req(&r, "GET", rec_path(id, ""), K_ADMIN, NULL);
	assert_status(&r, 200);
	v = su_body_json(&r);
	ck_assert_pstr_eq(jstr(v, "id"), id);
	su_resp_free(&r);
	return v;
}

/* PUT legal-hold as the admin: 200. */
static void
set_hold(const char *id, int hold, const char *reason)
{
	char body[256], want[128];
	struct su_resp r;

	(void)snprintf(body, sizeof(body), "{\"hold\":%s,\"reason\":\"%s\"}",
	    hold ? "true" : "false", reason);
	req(&r, "PUT", rec_path(id, "/legal-hold"), K_ADMIN, body);
	assert_status(&r, 200);
	(void)snprintf(want, sizeof(want), "{\"id\":\"%s\",\"legal_hold\":%s}"
	    "\n", id, hold ? "true" : "false");
	ck_assert_str_eq(r.body.p, want);
	su_resp_free(&r);
}

/* PUT consent as the admin: 200, echoing the consent. */
static void
set_consent(const char *id, int marketing)
{
	char body[64], want[160];
	struct su_resp r;

	(void)snprintf(body, sizeof(body), "{\"marketing\":%s}", marketing ?
	    "true" : "false");
	req(&r, "PUT", rec_path(id, "/consent"), K_ADMIN, body);
	assert_status(&r, 200);
	(void)snprintf(want, sizeof(want), "{\"id\":\"%s\",\"consent\":"
	    "{\"marketing\":%s,\"notices\":true}}\n", id, marketing ? "true" :
	    "false");
	ck_assert_str_eq(r.body.p, want);
	su_resp_free(&r);
}

/* DELETE as the admin: 200 and a receipt for id (the answer, jfree). */
static struct jv *
delete_rec(const char *id)
{
	const struct jv *rc;
	struct su_resp r;
	struct jv *v;

	req(&r, "DELETE", rec_path(id, ""), K_ADMIN, NULL);
	assert_status(&r, 200);
	v = su_body_json(&r);
	rc = jget(v, "receipt");
	ck_assert_msg(rc != NULL && rc->type == J_OBJ, "no receipt: [%s]",
	    r.body.p);
	ck_assert_pstr_eq(jstr(rc, "record"), id);
	ck_assert_msg(jstr(v, "signature") != NULL, "no signature: [%s]",
	    r.body.p);
	su_resp_free(&r);
	return v;
}

/* The audit log. */

/*
 * GET /v1/audit?query as the auditor; want 200: the answer, checked to be
 * {"events":[…],"next":N,"end":E,"has_more":B}, has_more exactly whether
 * next is short of end, and no event past end.
 */
static struct jv *
audit_page(const char *query, struct su_gbuf *all)
{
	const struct jv *ev;
	char path[128];
	struct su_resp r;
	struct jv *v;

	(void)snprintf(path, sizeof(path), "/v1/audit%s", query);
	req(&r, "GET", path, K_AUDITOR, NULL);
	assert_status(&r, 200);
	v = su_body_json(&r);
	ev = jget(v, "events");
	ck_assert_msg(v->n == 4 + (jget(v, "archived_through") != NULL) &&
	    ev != NULL && ev->type == J_ARR &&
	    jget(v, "next") != NULL && jget(v, "end") != NULL &&
	    jget(v, "has_more") != NULL, "not {\"events\":[…],\"next\":N,"
	    "\"end\":E,\"has_more\":B}: [%.300s]", r.body.p);
	ck_assert_msg(jbool(v, "has_more") == (jnum(v, "next") <
	    jnum(v, "end")), "has_more does not say next < end: [%.300s]",
	    r.body.p);
	for (size_t i = 0; i < ev->n; i++)
		ck_assert_msg(jnum(&ev->items[i], "seq") <= jnum(v, "end"),
		    "an event past end: [%.300s]", r.body.p);
	if (all != NULL)
		ck_assert_int_eq(su_gbuf_add(all, r.body.p, r.body.len), 0);
	su_resp_free(&r);
	return v;
}

#define PAGES_MAX	256
#define EVENTS_MAX	2048

/* Every event, read page by page through next. */
struct audit_all {
	struct jv		*docs[PAGES_MAX];
	size_t			 ndocs;
	const struct jv		*ev[EVENTS_MAX];
	size_t			 n;
	struct su_gbuf		 text;	/* every page's body */
};

static void
audit_all_free(struct audit_all *a)
{
	for (size_t i = 0; i < a->ndocs; i++)
		jfree(a->docs[i]);
	free(a->text.p);
	memset(a, 0, sizeof(*a));
}

/*
 * Read the whole log as the auditor, limit events a page, as the API says
 * to: from after 0, each next page after the last one's next and with the
 * first one's end, until has_more is false.  Each page must hold the
 * events right after the one asked for, in order, none past end, and
 * next must be the last one's seq.  Every page request is itself logged,
 * after end: the paging still ends, at the log as it was when it began.
 */
static void
audit_read_all(struct audit_all *a, unsigned limit)
{
	uint64_t after = 0, end = 0;
	char q[96];

	memset(a, 0, sizeof(*a));
	for (;;) {
		const struct jv *ev;
		struct jv *v;

		if (a->ndocs == 0)
			(void)snprintf(q, sizeof(q), "?after=0&limit=%u",
			    limit);
		else
			(void)snprintf(q, sizeof(q), "?after=%" PRIu64
			    "&limit=%u&end=%" PRIu64, after, limit, end);
		ck_assert_uint_lt(a->ndocs, PAGES_MAX);
		v = a->docs[a->ndocs++] = audit_page(q, &a->text);
		if (a->ndocs == 1)
			end = jnum(v, "end");
		ck_assert_uint_eq(jnum(v, "end"), end);
		ev = jget(v, "events");
		ck_assert_uint_le(ev->n, limit);
		for (size_t i = 0; i < ev->n; i++) {
			ck_assert_uint_lt(a->n, EVENTS_MAX);
			ck_assert_msg(jnum(&ev->items[i], "seq") == after + 1 +
			    i, "page after %" PRIu64 ": event %zu has seq %"
			    PRIu64, after, i, jnum(&ev->items[i], "seq"));
			a->ev[a->n++] = &ev->items[i];
		}
		ck_assert_uint_eq(jnum(v, "next"), after + ev->n);
		after += ev->n;
		if (!jbool(v, "has_more"))
			break;
		ck_assert_uint_gt(ev->n, 0);
	}
	ck_assert_uint_eq(after, end);
	ck_assert_uint_eq(a->n, end);
	ck_assert_uint_gt(a->n, 0);
}

/* What one item of an event must say; NULL: the member is absent. */
struct xitem {
	const char	*record;
	const char	*field;
	const char	*outcome;
	const char	*code;
};

/* What one event must say; lists end with NULL. */
struct xev {
	const char	*actor;
	const char	*action;
	int		 ok;
	const char	*code;		/* NULL: none */
	const char	*purpose;	/* NULL: none */
	const char	*reason;	/* NULL: none */
	const char	*recs[6];	/* exactly these record ids */
	const char	*fields[6];	/* exactly these field names */
	int		 any_fields;	/* fields not checked */
	const struct xitem *items;	/* exactly these; NULL: not checked */
	size_t		 nitems;
};

/* arr is an array of exactly the strings want (NULL-terminated). */
static int
strs_eq(const struct jv *arr, const char *const *want)
{
	size_t n = 0;

	if (arr == NULL || arr->type != J_ARR)
		return 0;
	for (; want[n] != NULL; n++)
		if (n >= arr->n || arr->items[n].type != J_STR ||
		    strcmp(arr->items[n].s, want[n]) != 0)
			return 0;
	return n == arr->n;
}

/* o.key is the string want, or absent with want NULL. */
static int
str_is(const struct jv *o, const char *key, const char *want)
{
	const char *got = jstr(o, key);

	if (want == NULL)
		return jget(o, key) == NULL;
	return got != NULL && strcmp(got, want) == 0;
}

/*
 * Event e (number i) has exactly the items want, in order, each with
 * exactly the members want names, and nothing else: never a token.
 */
static void
check_items(const struct jv *e, const struct xitem *want, size_t n, size_t i)
{
	const struct jv *items = jget(e, "items");

	ck_assert_msg(items != NULL && items->type == J_ARR && items->n == n,
	    "event %zu (%s): %zu items, want %zu", i, jstr(e, "action"),
	    items != NULL ? items->n : 0, n);
	for (size_t k = 0; k < n; k++) {
		const struct jv *it = &items->items[k];
		size_t members = 1;

		members += want[k].record != NULL ? 1 : 0;
		members += want[k].field != NULL ? 1 : 0;
		members += want[k].code != NULL ? 1 : 0;

		ck_assert_msg(it->type == J_OBJ && it->n == members &&
		    str_is(it, "record", want[k].record) &&
		    str_is(it, "field", want[k].field) &&
		    str_is(it, "outcome", want[k].outcome) &&
		    str_is(it, "code", want[k].code), "event %zu (%s) item "
		    "%zu: record %s field %s outcome %s code %s (%zu members), "
		    "want %s %s %s %s", i, jstr(e, "action"), k,
		    jstr(it, "record"), jstr(it, "field"), jstr(it, "outcome"),
		    jstr(it, "code"), it->n, want[k].record, want[k].field,
		    want[k].outcome, want[k].code);
	}
}

static void
check_event(const struct jv *e, const struct xev *x, size_t i)
{
	const char *outcome = jstr(e, "outcome");
	uint64_t seq = jnum(e, "seq");

	ck_assert_msg(jstr(e, "actor") != NULL && strcmp(jstr(e, "actor"),
	    x->actor) == 0 && jstr(e, "action") != NULL &&
	    strcmp(jstr(e, "action"), x->action) == 0,
	    "event %zu (seq %" PRIu64 "): %s %s, want %s %s", i, seq,
	    jstr(e, "actor"), jstr(e, "action"), x->actor, x->action);
	ck_assert_msg(outcome != NULL && strcmp(outcome, x->ok ? "allowed" :
	    "denied") == 0, "event %zu (%s): outcome %s", i, x->action,
	    outcome);
	ck_assert_msg(x->code == NULL ? jget(e, "code") == NULL :
	    jstr(e, "code") != NULL && strcmp(jstr(e, "code"), x->code) == 0,
	    "event %zu (%s): code %s, want %s", i, x->action, jstr(e, "code"),
	    x->code ? x->code : "none");
	ck_assert_msg(x->purpose == NULL ? jget(e, "purpose") == NULL :
	    jstr(e, "purpose") != NULL && strcmp(jstr(e, "purpose"),
	    x->purpose) == 0, "event %zu (%s): purpose %s, want %s", i,
	    x->action, jstr(e, "purpose"), x->purpose ? x->purpose : "none");
	ck_assert_msg(x->reason == NULL ? jget(e, "reason") == NULL :
	    jstr(e, "reason") != NULL && strcmp(jstr(e, "reason"),
	    x->reason) == 0, "event %zu (%s): reason %s, want %s", i,
	    x->action, jstr(e, "reason"), x->reason ? x->reason : "none");
	ck_assert_msg(strs_eq(jget(e, "records"), x->recs),
	    "event %zu (seq %" PRIu64 ", %s %s %s): records not as expected "
	    "(first want %s)", i, seq, x->actor, x->action, outcome,
	    x->recs[0] ? x->recs[0] : "none");
	ck_assert_msg(x->any_fields || strs_eq(jget(e, "fields"), x->fields),
	    "event %zu (%s): fields not as expected (first want %s)", i,
	    x->action, x->fields[0] ? x->fields[0] : "none");
	ck_assert_msg(jget(e, "time") != NULL && jnum(e, "time") == fake_now,
	    "event %zu: time is not the pinned clock", i);
	ck_assert_msg(jget(e, "items") != NULL &&
	    jget(e, "items")->type == J_ARR, "event %zu (%s): no items", i,
	    x->action);
	if (x->items != NULL)
		check_items(e, x->items, x->nitems, i);
}

/* How often needle occurs in a command's output. */
static size_t
export_count(const struct su_run *r, const char *needle)
{
	size_t n = 0;

	for (const char *p = r->out; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* audit verify must pass: the number of events it counted. */
static uint64_t
verify_ok(void)
{
	unsigned long long n;
	struct su_run r;

	cli(&r, "audit", "verify", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(sscanf(r.out, "audit chain verified: %llu events\n",
	    &n) == 1, "audit verify said [%s]", r.out);
	su_run_free(&r);
	return (uint64_t)n;
}

/* piivault_records_stored, from /metrics (which is not logged). */
static long long
stored(void)
{
	static const char series[] = "piivault_records_stored ";
	struct su_resp r;
	const char *p;
	long long n;

	req(&r, "GET", "/metrics", K_NONE, NULL);
	assert_status(&r, 200);
	p = strstr(r.body.p, series);
	ck_assert_msg(p != NULL, "no %s: [%s]", series, r.body.p);
	n = strtoll(p + sizeof(series) - 1, NULL, 10);
	su_resp_free(&r);
	return n;
}

/* Nothing of any of needles is in text (what: where, for the message). */
static void
assert_none_of(const char *text, const char *const *needles, size_t n,
    const char *what)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(strstr(text, needles[i]) == NULL, "%s holds [%s]",
		    what, needles[i]);
}

/* Tests: the audit log. */

#define N_SETUP_EVENTS	K__COUNT	/* one apikey.create each */

/* The events the fixture's piivault apikey create left. */
static void
check_setup_events(const struct audit_all *a)
{
	ck_assert_uint_ge(a->n, N_SETUP_EVENTS);
	for (size_t i = 0; i < N_SETUP_EVENTS; i++) {
		struct xev x = { "cli", "apikey.create", 1, NULL, NULL,
		    key_names[i], { NULL }, { NULL }, 0, NULL, 0 };

		check_event(a->ev[i], &x, i);
	}
}

/*
 * A mixed workload through the server, then the whole log through the
 * API, page by page: every request but health and metrics is there, in
 * order, with its actor, action, outcome, code, purpose, reason, records
 * and fields, and nothing personal, no token and no key.  Then the chain
 * verifies and exports.
 */
START_TEST(test_audit_workload)
{
	static const struct su_fv fa[] = {
		{ "email", "zq.aud-4101@a.example" },
		{ "name", "zq.aud-name-4102" },
		{ "phone", "+1 555 4103" },
	};
	static const struct su_fv fb[] = { { "name", "zq.aud-name-4104" } };
	static const char batch[] = "{\"records\":["
	    "{\"fields\":{\"name\":\"zq.aud-name-4105\"}},"
	    "{\"fields\":{\"email\":\"zq.aud-bad-4106\"}},"
	    "{\"fields\":{\"email\":\"zq.aud-4107@b.example\"}}]}";
	static const char forged[] = "Bearer pvk_zqForgedSecret000000000000000"
	    "00000000000000";
	static const char *const bad_audit[] = { "?after=abc", "?after=-1",
	    "?after=", "?limit=0", "?limit=1001", "?limit=x", "?limit=-5",
	    "?after=1&limit=1x" };
	static const int not_auditor[] = { K_WRITER, K_READER, K_ADMIN };
	const char *never[16];
	struct xitem xi[6];
	struct xev x[40];
	size_t nx = 0, nnever = 0, base;
	struct audit_all all;
	const char *toks[3];
	struct rec a, b;
	char c_id[ID_BUF], d_id[ID_BUF];
	struct su_resp r;
	struct su_run run;
	struct jv *v;
	uint64_t count, ndocs;
	char *log;

	srv_start_plain();

	put(fa, 3, 1, KEEP, &a);
	x[nx++] = (struct xev){ "pw-writer", "records.create", 1, NULL, NULL,
	    NULL, { a.id }, { NULL }, 1, NULL, 0 };
	put(fb, 1, 0, 0, &b);
	x[nx++] = (struct xev){ "pw-writer", "records.create", 1, NULL, NULL,
	    NULL, { b.id }, { NULL }, 1, NULL, 0 };

	/* A batch: the valid records are stored and named, the bad not. */
	req(&r, "POST", "/v1/records/batch", K_WRITER, batch);
	assert_status(&r, 200);
	v = su_body_json(&r);
	{
		const struct jv *res = jget(v, "results");

		ck_assert_msg(res != NULL && res->type == J_ARR && res->n == 3,
		    "batch: [%s]", r.body.p);
		ck_assert_msg(su_id_valid(jstr(&res->items[0], "id"), "rec_") &&
		    jget(&res->items[1], "error") != NULL &&
		    su_id_valid(jstr(&res->items[2], "id"), "rec_"),
		    "batch: [%s]", r.body.p);
		memcpy(c_id, jstr(&res->items[0], "id"), ID_BUF);
		memcpy(d_id, jstr(&res->items[2], "id"), ID_BUF);
		toks[0] = jstr(jget(&res->items[0], "tokens"), "name");
		ck_assert_ptr_nonnull(toks[0]);
	}
	x[nx++] = (struct xev){ "pw-writer", "records.batch", 1, NULL, NULL,
	    NULL, { c_id, d_id }, { NULL }, 1, NULL, 0 };
	{
		/* C's name, for the legal purpose, with its reason. */
		struct jv *d = detok(K_READER, "legal", "case 2024-17", toks,
		    1);

		su_assert_value(d, toks[0], "name", "zq.aud-name-4105");
		jfree(d);
	}
	xi[0] = (struct xitem){ c_id, "name", "revealed", NULL };
	x[nx++] = (struct xev){ "pw-reader", "detokenize", 1, NULL, "legal",
	    "case 2024-17", { c_id }, { "name" }, 0, xi, 1 };
	jfree(v);
	su_resp_free(&r);

	/* Several purposes: each logged with the records and fields read. */
	toks[0] = tok_of(&a, "email");
	toks[1] = tok_of(&a, "name");
	toks[2] = tok_of(&b, "name");
	v = detok(K_READER, "service", NULL, toks, 3);
	su_assert_value(v, toks[0], "email", fa[0].value);
	su_assert_value(v, toks[2], "name", fb[0].value);
	jfree(v);
	xi[1] = (struct xitem){ a.id, "email", "revealed", NULL };
	xi[2] = (struct xitem){ a.id, "name", "revealed", NULL };
	xi[3] = (struct xitem){ b.id, "name", "revealed", NULL };
	x[nx++] = (struct xev){ "pw-reader", "detokenize", 1, NULL, "service",
	    NULL, { a.id, b.id }, { "email", "name" }, 0, xi + 1, 3 };
	toks[0] = tok_of(&a, "phone");
	toks[1] = tok_of(&b, "name");
	v = detok(K_READER, "marketing", NULL, toks, 2);
	su_assert_value(v, toks[0], "phone", fa[2].value);
	su_assert_tok_error(v, toks[1], "consent_withdrawn");
	jfree(v);
	/*
	 * B gave no consent: nothing of it was read, and its item says so,
	 * with the refusal's code.
	 */
	xi[4] = (struct xitem){ a.id, "phone", "revealed", NULL };
	xi[5] = (struct xitem){ b.id, "name", "refused", "consent_withdrawn" };
	x[nx++] = (struct xev){ "pw-reader", "detokenize", 1, NULL,
	    "marketing", NULL, { a.id }, { "phone" }, 0, xi + 4, 2 };

	v = lookup("email", "ZQ.AUD-4101@a.example");
	ck_assert_uint_eq(jget(v, "matches")->n, 1);
	jfree(v);
	x[nx++] = (struct xev){ "pw-writer", "lookup", 1, NULL, "service",
	    NULL, { a.id }, { "email" }, 0, xi, 0 };

	/* Refusals. */
	toks[0] = tok_of(&a, "email");
	detok_req(&r, K_NONE, "service", NULL, toks, 1);
	assert_error(&r, 401, "unauthenticated");
	su_resp_free(&r);
	x[nx++] = (struct xev){ "-", "detokenize", 0, "unauthenticated", NULL,
	    NULL, { NULL }, { NULL }, 0, NULL, 0 };
	req_auth(&r, "POST", "/v1/detokenize", K_RAW, forged,
	    "{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],\"purpose\":"
	    "\"service\"}");
	assert_error(&r, 401, "unauthenticated");
	su_resp_free(&r);
	x[nx++] = (struct xev){ "-", "detokenize", 0, "unauthenticated", NULL,
	    NULL, { NULL }, { NULL }, 0, NULL, 0 };
	detok_req(&r, K_WRITER, "service", NULL, toks, 1);
	assert_error(&r, 403, "forbidden");
	su_resp_free(&r);
	x[nx++] = (struct xev){ "pw-writer", "detokenize", 0, "forbidden",
	    NULL, NULL, { NULL }, { NULL }, 0, NULL, 0 };
	detok_req(&r, K_SERVICE, "marketing", NULL, toks, 1);
	assert_error(&r, 403, "purpose_not_allowed");
	su_resp_free(&r);
	x[nx++] = (struct xev){ "pw-service", "detokenize", 0,
	    "purpose_not_allowed", "marketing", NULL, { NULL }, { NULL }, 0, NULL, 0 };
	expect_error("POST", "/v1/records", K_WRITER,
	    "{\"fields\":{\"email\":\"zq.aud-bad-4108\"}}", 422,
	    "invalid_value");
	x[nx++] = (struct xev){ "pw-writer", "records.create", 0,
	    "invalid_value", NULL, NULL, { NULL }, { NULL }, 0, NULL, 0 };

	/* Health and metrics touch no personal data: not logged. */
	req(&r, "GET", "/v1/health", K_NONE, NULL);
	assert_status(&r, 200);
	su_resp_free(&r);
	(void)stored();

	v = access_rec(a.id);
	jfree(v);
	x[nx++] = (struct xev){ "pw-admin", "records.access", 1, NULL, NULL,
	    NULL, { a.id }, { NULL }, 0, NULL, 0 };

	/* The log is the auditor's alone. */
	for (size_t i = 0; i < NELEM(not_auditor); i++) {
		expect_error("GET", "/v1/audit", not_auditor[i], NULL, 403,
		    "forbidden");
		x[nx++] = (struct xev){ key_names[not_auditor[i]],
		    "audit.read", 0, "forbidden", NULL, NULL, { NULL },
		    { NULL }, 0, NULL, 0 };
	}
	expect_error("GET", "/v1/audit", K_NONE, NULL, 401, "unauthenticated");
	x[nx++] = (struct xev){ "-", "audit.read", 0, "unauthenticated", NULL,
	    NULL, { NULL }, { NULL }, 0, NULL, 0 };
	for (size_t i = 0; i < NELEM(bad_audit); i++) {
		char path[64];

		(void)snprintf(path, sizeof(path), "/v1/audit%s",
		    bad_audit[i]);
		req(&r, "GET", path, K_AUDITOR, NULL);
		ck_assert_msg(r.status == 422, "%s: %ld [%s]", path, r.status,
		    r.body.p);
		assert_error(&r, 422, "invalid_value");
		su_resp_free(&r);
		x[nx++] = (struct xev){ "pw-auditor", "audit.read", 0,
		    "invalid_value", NULL, NULL, { NULL }, { NULL }, 0, NULL, 0 };
	}
	/* Past the end: no events, next stays where it was asked. */
	v = audit_page("?after=999999&limit=5", NULL);
	ck_assert_uint_eq(jget(v, "events")->n, 0);
	ck_assert_uint_eq(jnum(v, "next"), 999999);
	ck_assert(!jbool(v, "has_more"));
	jfree(v);
	x[nx++] = (struct xev){ "pw-auditor", "audit.read", 1, NULL, NULL,
	    NULL, { NULL }, { NULL }, 0, NULL, 0 };
	ck_assert_uint_le(nx, NELEM(x));

	/* The whole log, four events a page. */
	audit_read_all(&all, 4);
	check_setup_events(&all);
	base = N_SETUP_EVENTS;
	ck_assert_msg(all.n >= base + nx, "%zu events, want at least %zu",
	    all.n, base + nx);
	for (size_t i = 0; i < nx; i++)
		check_event(all.ev[base + i], &x[i], base + i);
	/* Nothing after: the paging ended where it began. */
	ck_assert_uint_eq(all.n, base + nx);

	/* No value, token or secret anywhere in it. */
	never[nnever++] = "zq.";
	never[nnever++] = "ZQ.";
	never[nnever++] = "555 4103";
	never[nnever++] = "5554103";
	never[nnever++] = "tok_";
	never[nnever++] = "pvk_";
	for (size_t i = 0; i < K__COUNT; i++)
		never[nnever++] = keys[i] + 4;
	assert_none_of(all.text.p, never, nnever, "the audit API");
	count = all.n;
	ndocs = all.ndocs;
	audit_all_free(&all);

	su_srv_stop();
	/* Each page's own read is logged after the paging's end. */
	ck_assert_uint_eq(verify_ok(), count + ndocs);
	cli(&run, "audit", "export", NULL);
	ck_assert_exit(&run, 0);
	ck_assert_uint_eq(export_count(&run, "{\"seq\":"), count + ndocs);
	ck_assert_uint_eq(export_count(&run, "\n"), count + ndocs);
	assert_none_of(run.out, never, nnever, "audit export");
	su_run_free(&run);
	ck_assert_ptr_nonnull(log = su_slurp(su_logpath, NULL));
	assert_none_of(log, never, nnever, "the server's log");
	free(log);
}
END_TEST

/*
 * A request the vault refuses for a record it found (legal hold, an
 * invalid correction, the request limit) is logged naming that record,
 * as SECURITY.md lists "record ids" among what every event holds: an
 * auditor must be able to see who tried to delete a held record.
 */
START_TEST(test_audit_refusal_names_record)
{
	static const struct su_fv f[] = { { "email", "zq.ref-1201@a.example" } };
	static const char *const what[] = { "records.delete (409)",
	    "records.correct (422)", "records.access (429)" };
	char missing[256] = "";
	struct audit_all all;
	struct rec a;
	struct su_resp r;
	struct jv *v;

	srv_start("--request-limit", "1", NULL);
	put(f, 1, 0, KEEP, &a);
	set_hold(a.id, 1, "case 12");
	expect_error("DELETE", rec_path(a.id, ""), K_ADMIN, NULL, 409,
	    "legal_hold");
	expect_error("PATCH", rec_path(a.id, ""), K_ADMIN,
	    "{\"fields\":{\"email\":\"zq.not-an-email-1202\"}}", 422,
	    "invalid_value");
	v = access_rec(a.id);
	jfree(v);
	req(&r, "GET", rec_path(a.id, ""), K_ADMIN, NULL);
	assert_error(&r, 429, "too_many_requests");
	su_resp_free(&r);

	audit_read_all(&all, 100);
	check_setup_events(&all);
	ck_assert_uint_ge(all.n, N_SETUP_EVENTS + 6);
	{
		const struct xev x[] = {
			{ "pw-writer", "records.create", 1, NULL, NULL, NULL,
			    { a.id }, { NULL }, 1, NULL, 0 },
			{ "pw-admin", "records.legal_hold", 1, NULL, NULL,
			    "case 12", { a.id }, { NULL }, 0, NULL, 0 },
			{ "pw-admin", "records.access", 1, NULL, NULL, NULL,
			    { a.id }, { NULL }, 0, NULL, 0 },
		};
		static const char *const code[] = { "legal_hold",
		    "invalid_value", "too_many_requests" };
		const char *const want[] = { a.id, NULL };
		const struct jv *e[3] = { all.ev[N_SETUP_EVENTS + 2],
		    all.ev[N_SETUP_EVENTS + 3], all.ev[N_SETUP_EVENTS + 5] };

		check_event(all.ev[N_SETUP_EVENTS], &x[0], 0);
		check_event(all.ev[N_SETUP_EVENTS + 1], &x[1], 1);
		check_event(all.ev[N_SETUP_EVENTS + 4], &x[2], 4);
		for (size_t i = 0; i < 3; i++) {
			ck_assert_pstr_eq(jstr(e[i], "outcome"), "denied");
			ck_assert_pstr_eq(jstr(e[i], "code"), code[i]);
			if (!strs_eq(jget(e[i], "records"), want)) {
				size_t l = strlen(missing);

				(void)snprintf(missing + l, sizeof(missing) - l,
				    "%s; ", what[i]);
			}
		}
	}
	audit_all_free(&all);
	ck_assert_msg(missing[0] == '\0', "refusals logged without the record "
	    "they were about: %s", missing);
}
END_TEST

/*
 * Requests to no route (404) or with a method the route does not take
 * (405) are API requests too, and SECURITY.md excepts only health and
 * metrics from the log; the unknown-route action ("unknown") exists
 * for them.  Such probing, keyed or not, must leave events.
 */
START_TEST(test_audit_unrouted_requests)
{
	struct jv *v;
	uint64_t n0, n1;
	size_t unknown = 0;
	const struct jv *ev;

	srv_start_plain();
	v = audit_page("?limit=1000", NULL);
	n0 = jnum(v, "next");
	jfree(v);
	expect_error("GET", "/v1/nope", K_AUDITOR, NULL, 404, "not_found");
	expect_error("POST", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA",
	    K_ADMIN, "{}", 405, "method_not_allowed");
	expect_error("GET", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA/x",
	    K_NONE, NULL, 404, "not_found");
	{
		char q[64];

		(void)snprintf(q, sizeof(q), "?after=%" PRIu64 "&limit=1000",
		    n0);
		v = audit_page(q, NULL);
	}
	ev = jget(v, "events");
	n1 = jnum(v, "next");
	for (size_t i = 0; i < ev->n; i++)
		if (jstr(&ev->items[i], "action") != NULL &&
		    strcmp(jstr(&ev->items[i], "action"), "audit.read") != 0)
			unknown++;
	jfree(v);
	ck_assert_msg(unknown == 3, "3 requests to no route or with a wrong "
	    "method left %zu events (log %" PRIu64 " -> %" PRIu64 ", the "
	    "first read's own event included)", unknown, n0, n1);
}
END_TEST

/* Tampering, directly on the data file. */

#define E_STRINGS_OFF	12	/* audit.c: an event's strings */
#define HASH_LEN	32
#define EV_MAX		4096

static struct pv_store *
store_open(void)
{
	struct pv_store_opts so = { 0, 0, 0 };
	struct pv_store *s = NULL;
	char dir[PATH_MAX + 32];

	(void)snprintf(dir, sizeof(dir), "%s/piivault-data", su_tdir);
	ck_assert_int_eq(pv_store_open(dir, &so, &s), PV_OK);
	return s;
}

/* Event seq's stored value (event bytes, then its hash) into buf. */
static size_t
ev_read(uint64_t seq, uint8_t *buf, size_t cap)
{
	struct pv_store *s = store_open();
	struct pv_txn *t;
	uint8_t key[8];
	const void *val;
	size_t vl;

	pv_put_u64(key, seq);
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(pv_get(t, PV_T_AUDIT, key, sizeof(key), &val, &vl),
	    PV_OK);
	ck_assert_uint_le(vl, cap);
	ck_assert_uint_gt(vl, E_STRINGS_OFF + HASH_LEN);
	memcpy(buf, val, vl);
	pv_txn_abort(t);
	pv_store_close(s);
	return vl;
}

/* Write (val != NULL) or delete event seq, in a commit of its own. */
static void
ev_write(uint64_t seq, const uint8_t *val, size_t len)
{
	struct pv_store *s = store_open();
	struct pv_txn *t;
	uint8_t key[8];

	pv_put_u64(key, seq);
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	if (val != NULL)
		ck_assert_int_eq(pv_put(t, PV_T_AUDIT, key, sizeof(key), val,
		    len, 0), PV_OK);
	else
		ck_assert_int_eq(pv_del(t, PV_T_AUDIT, key, sizeof(key), NULL,
		    0), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
	pv_store_close(s);
}

/* The newest event's seq. */
static uint64_t
ev_last(void)
{
	struct pv_store *s = store_open();
	struct pv_cursor *c;
	struct pv_txn *t;
	const void *k, *val;
	size_t kl, vl;
	uint64_t seq;

	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(pv_cursor_open(t, PV_T_AUDIT, &c), PV_OK);
	ck_assert_int_eq(pv_cursor_last(c, &k, &kl, &val, &vl), PV_OK);
	ck_assert_uint_eq(kl, 8);
	seq = pv_get_u64(k);
	pv_cursor_close(c);
	pv_txn_abort(t);
	pv_store_close(s);
	return seq;
}

/*
 * A small workload through the server, then stop it: the log's length,
 * checked against verify.
 */
static uint64_t
tamper_workload(void)
{
	static const struct su_fv f[] = { { "email", "zq.tam-3101@a.example" },
	    { "name", "zq.tam-name-3102" } };
	const char *t;
	struct rec a;
	struct su_resp r;
	struct jv *v;
	uint64_t n;

	srv_start_plain();
	put(f, 2, 1, KEEP, &a);
	t = tok_of(&a, "email");
	v = detok(K_READER, "service", NULL, &t, 1);
	jfree(v);
	v = detok(K_READER, "marketing", NULL, &t, 1);
	jfree(v);
	detok_req(&r, K_SERVICE, "marketing", NULL, &t, 1);
	assert_error(&r, 403, "purpose_not_allowed");
	su_resp_free(&r);
	detok_req(&r, K_NONE, "service", NULL, &t, 1);
	assert_error(&r, 401, "unauthenticated");
	su_resp_free(&r);
	v = access_rec(a.id);
	jfree(v);
	su_srv_stop();
	n = verify_ok();
	ck_assert_uint_eq(n, ev_last());
	ck_assert_uint_ge(n, N_SETUP_EVENTS + 6);
	return n;
}

/* audit verify exits 1 naming bad; audit export exits 1. */
static void
assert_cli_detects(uint64_t bad)
{
	char want[128], seqs[32];
	struct su_run r;

	cli(&r, "audit", "verify", NULL);
	ck_assert_exit(&r, 1);
	(void)snprintf(want, sizeof(want), "event %" PRIu64 " does not verify "
	    "(%" PRIu64 " events before it do)", bad, bad - 1);
	ck_assert_msg(strstr(r.err, want) != NULL, "verify said [%s], want "
	    "[%s]", r.err, want);
	ck_assert_msg(strstr(r.out, "verified") == NULL, "verify: [%s]",
	    r.out);
	su_run_free(&r);
	cli(&r, "audit", "export", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_msg(strstr(r.err, "does not verify") != NULL,
	    "export said [%s]", r.err);
	/* Nothing from the bad event on is exported as if it were good. */
	(void)snprintf(seqs, sizeof(seqs), "{\"seq\":%" PRIu64 ",", bad);
	ck_assert_msg(strstr(r.out, seqs) == NULL, "export printed event %"
	    PRIu64, bad);
	su_run_free(&r);
}

/*
 * Through the API: a page that covers bad answers 500 and shows no event;
 * the events before it still read.
 */
static void
assert_api_detects(uint64_t bad)
{
	char path[64];
	struct su_resp r;
	struct jv *v;

	srv_start_plain();
	req(&r, "GET", "/v1/audit?limit=1000", K_AUDITOR, NULL);
	assert_error(&r, 500, "internal");
	ck_assert_msg(strstr(r.body.p, "actor") == NULL, "[%s]", r.body.p);
	su_resp_free(&r);
	(void)snprintf(path, sizeof(path), "/v1/audit?after=%" PRIu64
	    "&limit=1", bad - 1);
	req(&r, "GET", path, K_AUDITOR, NULL);
	assert_error(&r, 500, "internal");
	su_resp_free(&r);
	(void)snprintf(path, sizeof(path), "?after=0&limit=%" PRIu64, bad - 1);
	v = audit_page(path, NULL);
	ck_assert_uint_eq(jget(v, "events")->n, bad - 1);
	jfree(v);
	su_srv_stop();
}

START_TEST(test_tamper_edit)
{
	uint8_t orig[EV_MAX], ev[EV_MAX];
	uint64_t n = tamper_workload(), k = n / 2;
	size_t len = ev_read(k, orig, sizeof(orig));

	/* One byte of the event (its actor's first letter), not its hash. */
	memcpy(ev, orig, len);
	ev[E_STRINGS_OFF + 1] ^= 0x20;
	ev_write(k, ev, len);
	assert_cli_detects(k);
	assert_api_detects(k);
	/* Put back, the chain verifies again: the edit was what broke it. */
	ev_write(k, orig, len);
	ck_assert_uint_gt(verify_ok(), n);
	/* An edited hash is caught the same way. */
	memcpy(ev, orig, len);
	ev[len - 1] ^= 0x01;
	ev_write(k, ev, len);
	assert_cli_detects(k);
	ev_write(k, orig, len);
	(void)verify_ok();
}
END_TEST

START_TEST(test_tamper_delete)
{
	uint8_t orig[EV_MAX];
	uint64_t n = tamper_workload(), k = n / 2;
	size_t len = ev_read(k, orig, sizeof(orig));

	ev_write(k, NULL, 0);
	assert_cli_detects(k);
	assert_api_detects(k);
	ev_write(k, orig, len);
	ck_assert_uint_gt(verify_ok(), n);
	/* Deleting the first is caught too. */
	len = ev_read(1, orig, sizeof(orig));
	ev_write(1, NULL, 0);
	assert_cli_detects(1);
	ev_write(1, orig, len);
	(void)verify_ok();
}
END_TEST

START_TEST(test_tamper_reorder)
{
	uint8_t a[EV_MAX], b[EV_MAX];
	uint64_t n = tamper_workload(), k = n / 2;
	size_t la = ev_read(k, a, sizeof(a)), lb = ev_read(k + 1, b,
	    sizeof(b));

	/* Swap two neighbours, each with its own hash. */
	ev_write(k, b, lb);
	ev_write(k + 1, a, la);
	assert_cli_detects(k);
	assert_api_detects(k);
	ev_write(k, a, la);
	ev_write(k + 1, b, lb);
	ck_assert_uint_gt(verify_ok(), n);
}
END_TEST

START_TEST(test_tamper_insert)
{
	uint8_t copy[EV_MAX], orig[EV_MAX];
	uint64_t n = tamper_workload(), k = n / 2;
	size_t lc, lo;

	/* A replayed event (bytes and hash) appended after the last. */
	lc = ev_read(2, copy, sizeof(copy));
	ev_write(n + 1, copy, lc);
	assert_cli_detects(n + 1);
	ev_write(n + 1, NULL, 0);
	ck_assert_uint_eq(verify_ok(), n);
	/* One put in the middle, in place of the event at k. */
	lc = ev_read(k - 1, copy, sizeof(copy));
	lo = ev_read(k, orig, sizeof(orig));
	ev_write(k, NULL, 0);
	ev_write(k, copy, lc);
	assert_cli_detects(k);
	assert_api_detects(k);
	ev_write(k, orig, lo);
	ck_assert_uint_gt(verify_ok(), n);
}
END_TEST

/* A storage failure: 503 unavailable, with a Retry-After. */
static void
assert_storage_503(const struct su_resp *r)
{
	assert_error(r, 503, "unavailable");
	ck_assert_msg(su_header(r, "Retry-After") != NULL, "503 without "
	    "Retry-After");	/* after assert_error: a static buffer */
}

/*
 * GET /v1/health: 200 {"status":"ok"}, or with degraded 503
 * {"status":"degraded","reason":"storage"} and a Retry-After.
 */
static void
assert_health(int degraded)
{
	struct su_resp r;
	struct jv *v;

	req(&r, "GET", "/v1/health", K_NONE, NULL);
	assert_status(&r, degraded ? 503 : 200);
	v = su_body_json(&r);
	ck_assert_pstr_eq(jstr(v, "status"), degraded ? "degraded" : "ok");
	if (degraded) {
		ck_assert_pstr_eq(jstr(v, "reason"), "storage");
		ck_assert_uint_eq(v->n, 2);
		ck_assert_ptr_nonnull(su_header(&r, "Retry-After"));
	} else
		ck_assert_uint_eq(v->n, 1);
	jfree(v);
	su_resp_free(&r);
}

/* The detokenize events among a's, oldest first, into out (max n). */
static size_t
detok_events(const struct audit_all *a, const struct jv **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n && n < max; i++)
		if (strcmp(jstr(a->ev[i], "action"), "detokenize") == 0)
			out[n++] = a->ev[i];
	return n;
}

/*
 * Each token of a detokenize is logged as what it got: its record and
 * field where the token led to them, revealed, masked or refused with the
 * code its answer carried; never the token.  The event's records and
 * fields are only those whose values (or masked forms) were released, so
 * a request refused for every token releases, and lists, none, and the
 * person's access answer does not count it as a read.
 */
START_TEST(test_audit_items)
{
	static const struct su_fv fa[] = { { "email", "zq.itm-5101@a.example" },
	    { "name", "zq.itm-name-5102" } };
	static const struct su_fv fb[] = { { "email", "zq.itm-5103@b.example" } };
	static const struct su_fv fc[] = { { "name", "zq.itm-name-5104" } };
	static const char unknown[] = "tok_AAAAAAAAAAAAAAAAAAAAAA";
	const struct su_apikey ek = { "pw-email", "reader", "service", "email",
	    NULL };
	char email_key[KEY_BUF], auth[KEY_BUF + 8];
	const struct jv *dev[8];
	struct audit_all all;
	struct rec a, b, c;
	struct su_resp r;
	struct su_run run;
	struct jv *v;
	size_t nd;

	su_apikey_create(email_key, child_env(), NULL, &ek);
	srv_start_plain();
	put(fa, 2, 0, KEEP, &a);	/* no marketing consent */
	put(fb, 1, 1, KEEP, &b);
	put(fc, 1, 1, KEEP, &c);
	jfree(delete_rec(c.id));

	{
		/* Every kind of answer in one request. */
		const char *t[] = { tok_of(&b, "email"), tok_of(&a, "email"),
		    tok_of(&c, "name"), unknown, "tok_short",
		    tok_of(&b, "email") };

		detok_req(&r, K_READER, "marketing", NULL, t, NELEM(t));
		assert_status(&r, 200);
		su_resp_free(&r);
	}
	{
		const char *t[] = { tok_of(&a, "name") };

		/* Research: masked. */
		detok_req(&r, K_READER, "research", NULL, t, 1);
		assert_status(&r, 200);
		su_resp_free(&r);
		/* The issue's case: nothing released, and the log says so. */
		detok_req(&r, K_READER, "marketing", NULL, t, 1);
		assert_status(&r, 200);
		su_resp_free(&r);
	}
	{
		const char *t[] = { tok_of(&a, "email"), tok_of(&a, "name") };
		char body[256];

		/* A key limited to email fields. */
		(void)snprintf(auth, sizeof(auth), "Bearer %s", email_key);
		(void)snprintf(body, sizeof(body), "{\"tokens\":[\"%s\","
		    "\"%s\"],\"purpose\":\"service\"}", t[0], t[1]);
		req_auth(&r, "POST", "/v1/detokenize", K_RAW, auth, body);
		assert_status(&r, 200);
		su_resp_free(&r);
	}
	/* A's values were read twice (masked, then its email): not four. */
	v = access_rec(a.id);
	ck_assert_uint_eq(jget(v, "reads")->n, 2);
	jfree(v);
	/* B's KEK may no longer unwrap. */
	cli(&run, "kms", "rotate", NULL);
	ck_assert_exit(&run, 0);
	su_run_free(&run);
	cli(&run, "kms", "retire", "1", "--force", NULL);
	ck_assert_exit(&run, 0);
	su_run_free(&run);
	{
		const char *t[] = { tok_of(&b, "email") };

		detok_req(&r, K_READER, "service", NULL, t, 1);
		assert_status(&r, 200);
		su_resp_free(&r);
	}

	audit_read_all(&all, 100);
	nd = detok_events(&all, dev, NELEM(dev));
	ck_assert_uint_eq(nd, 5);
	{
		const struct xitem i0[] = {
			{ b.id, "email", "revealed", NULL },
			{ a.id, "email", "refused", "consent_withdrawn" },
			/* The shred took its tokens' fields with it. */
			{ c.id, NULL, "refused", "shredded" },
			{ NULL, NULL, "refused", "not_found" },
			{ NULL, NULL, "refused", "invalid_token" },
			{ b.id, "email", "revealed", NULL },
		};
		const struct xitem i1[] = { { a.id, "name", "masked", NULL } };
		const struct xitem i2[] = {
			{ a.id, "name", "refused", "consent_withdrawn" } };
		const struct xitem i3[] = {
			{ a.id, "email", "revealed", NULL },
			{ a.id, "name", "refused", "forbidden" },
		};
		const struct xitem i4[] = {
			{ b.id, "email", "refused", "key_unavailable" } };
		const struct xev x[] = {
			{ "pw-reader", "detokenize", 1, NULL, "marketing",
			    NULL, { b.id }, { "email" }, 0, i0, NELEM(i0) },
			{ "pw-reader", "detokenize", 1, NULL, "research",
			    NULL, { a.id }, { "name" }, 0, i1, 1 },
			{ "pw-reader", "detokenize", 1, NULL, "marketing",
			    NULL, { NULL }, { NULL }, 0, i2, 1 },
			{ "pw-email", "detokenize", 1, NULL, "service",
			    NULL, { a.id }, { "email" }, 0, i3, 2 },
			{ "pw-reader", "detokenize", 1, NULL, "service",
			    NULL, { NULL }, { NULL }, 0, i4, 1 },
		};

		for (size_t i = 0; i < NELEM(x); i++)
			check_event(dev[i], &x[i], i);
	}
	ck_assert_msg(strstr(all.text.p, "tok_") == NULL, "a token in the "
	    "audit API");
	ck_assert_msg(strstr(all.text.p, "zq.") == NULL, "a value in the "
	    "audit API");
	audit_all_free(&all);
	su_srv_stop();
	cli(&run, "audit", "export", NULL);
	ck_assert_exit(&run, 0);
	ck_assert_uint_eq(export_count(&run, "\"outcome\":\"refused\""), 7);
	ck_assert_msg(strstr(run.out, "tok_") == NULL, "a token in export");
	su_run_free(&run);
	(void)verify_ok();
}
END_TEST

/*
 * Every read through the CLI is logged, failed or not: piivault get
 * leaves one event a token, its item saying what the token got (record
 * and field where it led to them), never the token.
 */
START_TEST(test_audit_cli_get)
{
	static const struct su_fv fa[] = { { "email", "zq.get-5201@a.example" } };
	static const struct su_fv fc[] = { { "name", "zq.get-name-5202" } };
	static const char unknown[] = "tok_AAAAAAAAAAAAAAAAAAAAAA";
	const struct jv *got[8];
	struct rec a, c;
	struct su_run run;
	size_t ng = 0;
	char *line, *save = NULL;
	struct jv *docs[64];
	size_t nd = 0;

	srv_start_plain();
	put(fa, 1, 0, KEEP, &a);
	put(fc, 1, 0, KEEP, &c);
	jfree(delete_rec(c.id));
	su_srv_stop();

	cli(&run, "get", a.tok[0], NULL);
	ck_assert_exit(&run, 0);
	su_run_free(&run);
	/* Failures: what the command prints is not this test's business. */
	cli(&run, "get", unknown, NULL);
	su_run_free(&run);
	cli(&run, "get", "tok_short", NULL);
	su_run_free(&run);
	cli(&run, "get", c.tok[0], NULL);
	su_run_free(&run);
	cli(&run, "get", a.tok[0], unknown, NULL);
	su_run_free(&run);

	cli(&run, "audit", "export", NULL);
	ck_assert_exit(&run, 0);
	ck_assert_msg(strstr(run.out, "tok_") == NULL, "a token in export");
	ck_assert_msg(strstr(run.out, "zq.") == NULL, "a value in export");
	for (line = strtok_r(run.out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		struct jv *e = jparse(line, strlen(line));

		ck_assert_ptr_nonnull(e);
		ck_assert_uint_lt(nd, NELEM(docs));
		docs[nd++] = e;
		if (strcmp(jstr(e, "action"), "get") == 0) {
			ck_assert_uint_lt(ng, NELEM(got));
			got[ng++] = e;
		}
	}
	ck_assert_uint_eq(ng, 6);
	{
		const struct xitem ok[] = { { a.id, "email", "revealed",
		    NULL } };
		const struct xitem nf[] = { { NULL, NULL, "refused",
		    "not_found" } };
		const struct xitem bad[] = { { NULL, NULL, "refused",
		    "invalid_token" } };
		const struct xitem sh[] = { { c.id, NULL, "refused",
		    "shredded" } };
		const struct xev x[] = {
			{ "cli", "get", 1, NULL, NULL, NULL, { a.id },
			    { "email" }, 0, ok, 1 },
			{ "cli", "get", 1, NULL, NULL, NULL, { NULL },
			    { NULL }, 0, nf, 1 },
			{ "cli", "get", 1, NULL, NULL, NULL, { NULL },
			    { NULL }, 0, bad, 1 },
			{ "cli", "get", 1, NULL, NULL, NULL, { NULL },
			    { NULL }, 0, sh, 1 },
			{ "cli", "get", 1, NULL, NULL, NULL, { a.id },
			    { "email" }, 0, ok, 1 },
			{ "cli", "get", 1, NULL, NULL, NULL, { NULL },
			    { NULL }, 0, nf, 1 },
		};

		for (size_t i = 0; i < NELEM(x); i++)
			check_event(got[i], &x[i], i);
	}
	for (size_t i = 0; i < nd; i++)
		jfree(docs[i]);
	su_run_free(&run);
	(void)verify_ok();
}
END_TEST

/* Records made by a thread while the log is paged. */
struct scribbler {
	pthread_t	 th;
	atomic_int	 stop;
	atomic_int	 written;
	char		 url[256];
};

static void *
scribble(void *arg)
{
	struct scribbler *w = arg;
	char auth[64 + KEY_BUF], body[96];
	const char *h[4] = { "Expect:", "Content-Type: application/json",
	    auth, NULL };
	char err[CURL_ERROR_SIZE];
	struct su_resp r;
	CURL *c;

	(void)snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	    keys[K_WRITER]);
	if ((c = curl_easy_init()) == NULL)
		return NULL;
	while (!atomic_load(&w->stop)) {
		(void)snprintf(body, sizeof(body), "{\"fields\":{\"name\":"
		    "\"zq.pg-%d\"}}", atomic_load(&w->written));
		if (su_http_do(c, &r, "POST", w->url, h, body, strlen(body),
		    err) != 0)
			break;
		if (r.status == 201)
			atomic_fetch_add(&w->written, 1);
		su_resp_free(&r);
	}
	curl_easy_cleanup(c);
	return NULL;
}

/*
 * A paging ends: the first page fixes end (the newest event before its
 * own read), later pages carry it, and has_more turns false at it, while
 * every page's read and another client's writes go on adding events.  The
 * client sees each event up to end exactly once, in order, no gap, none
 * past end.  A bad end is refused, and an end past the newest event (a
 * log cut back, or a client's mistake) too.
 */
/*
 * After audit archive, a paging from after=0 starts past the checkpoint
 * and says where (archived_through); an end at or below it is a paging
 * with nothing left, not one that never ends.
 */
START_TEST(test_audit_archived_http)
{
	struct su_run r;
	struct jv *v;
	unsigned long long last;
	const char *p;
	char q[96];

	fake_now = T0 + 2 * DAY;
	cli(&r, "audit", "archive", "--before", "2023-11-15T22:13:20Z", "--to",
	    "a.jsonl", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(p = strstr(r.out, " to "));
	ck_assert_int_eq(sscanf(p, " to %llu)", &last), 1);
	su_run_free(&r);
	ck_assert_uint_ge(last, 4);
	srv_start_plain();
	v = audit_page("?after=0&limit=1", NULL);
	ck_assert_uint_eq(jnum(v, "archived_through"), last);
	ck_assert_uint_eq(jnum(&jget(v, "events")->items[0], "seq"), last + 1);
	jfree(v);
	v = audit_page("?after=1&limit=1", NULL);
	ck_assert_uint_eq(jnum(&jget(v, "events")->items[0], "seq"), last + 1);
	jfree(v);
	(void)snprintf(q, sizeof(q), "?after=0&end=%llu", last);
	v = audit_page(q, NULL);
	ck_assert_uint_eq(jget(v, "events")->n, 0);
	ck_assert_uint_eq(jnum(v, "next"), last);
	ck_assert(!jbool(v, "has_more"));
	jfree(v);
	su_srv_stop();
	cli(&r, "audit", "verify", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
}
END_TEST

START_TEST(test_audit_paging_ends)
{
	static const char *const bad_end[] = { "?end=abc", "?end=-1",
	    "?end=", "?end=1x", "?end=99999999999999999999", "?end=0x10" };
	struct scribbler w;
	struct audit_all all;
	struct su_resp r;
	struct jv *v;
	uint64_t end, newest;
	char q[96];
	int before;

	srv_start_plain();
	memset(&w, 0, sizeof(w));
	(void)snprintf(w.url, sizeof(w.url), "%s/v1/records", su_srv.base);
	ck_assert_int_eq(pthread_create(&w.th, NULL, scribble, &w), 0);
	while (atomic_load(&w.written) < 10)
		(void)usleep(1000);
	before = atomic_load(&w.written);
	audit_read_all(&all, 1);
	end = all.n;
	ck_assert_uint_ge(end, N_SETUP_EVENTS + 10);
	/* The writes went on while it paged, and it ended anyway. */
	ck_assert_int_gt(atomic_load(&w.written), before);
	ck_assert_uint_eq(all.ndocs, end);
	audit_all_free(&all);
	atomic_store(&w.stop, 1);
	ck_assert_int_eq(pthread_join(w.th, NULL), 0);

	/* A new paging ends later: the writes and the reads are in it. */
	v = audit_page("?after=0&limit=1", NULL);
	newest = jnum(v, "end");
	ck_assert_uint_gt(newest, end + end);
	ck_assert(jbool(v, "has_more"));
	jfree(v);

	/* An end short of after: nothing, and no more. */
	v = audit_page("?after=5&end=3", NULL);
	ck_assert_uint_eq(jget(v, "events")->n, 0);
	ck_assert_uint_eq(jnum(v, "next"), 5);
	ck_assert_uint_eq(jnum(v, "end"), 3);
	ck_assert(!jbool(v, "has_more"));
	jfree(v);
	/* An end inside the page stops it there. */
	v = audit_page("?after=0&end=3&limit=10", NULL);
	ck_assert_uint_eq(jget(v, "events")->n, 3);
	ck_assert_uint_eq(jnum(v, "next"), 3);
	ck_assert(!jbool(v, "has_more"));
	jfree(v);
	v = audit_page("?after=1&end=3&limit=1", NULL);
	ck_assert_uint_eq(jget(v, "events")->n, 1);
	ck_assert(jbool(v, "has_more"));
	jfree(v);

	for (size_t i = 0; i < NELEM(bad_end); i++) {
		(void)snprintf(q, sizeof(q), "/v1/audit%s", bad_end[i]);
		expect_error("GET", q, K_AUDITOR, NULL, 422, "invalid_value");
	}
	(void)snprintf(q, sizeof(q), "/v1/audit?end=%" PRIu64, newest + 1000);
	req(&r, "GET", q, K_AUDITOR, NULL);
	assert_error(&r, 422, "invalid_value");
	ck_assert_msg(strstr(r.body.p, "end is past the newest event") != NULL,
	    "[%s]", r.body.p);
	ck_assert_msg(strstr(r.body.p, "events") == NULL, "[%s]", r.body.p);
	su_resp_free(&r);
	expect_error("GET", "/v1/audit?end=18446744073709551615", K_AUDITOR,
	    NULL, 422, "invalid_value");
}
END_TEST

/* The number after "key": in text (which must have one). */
static uint64_t
num_after(const char *text, const char *key)
{
	char pat[64];
	const char *p;

	(void)snprintf(pat, sizeof(pat), "\"%s\":", key);
	ck_assert_msg((p = strstr(text, pat)) != NULL, "no %s in [%.200s]",
	    key, text);
	return strtoull(p + strlen(pat), NULL, 10);
}

/*
 * How often needle occurs in text, in one pass: strstr from each match on
 * would scan the rest of a megabyte page each time under ASan's
 * strict_string_checks.
 */
static size_t
count_of(const char *text, const char *needle)
{
	size_t n = 0, tl = strlen(text), nl = strlen(needle);

	for (size_t i = 0; i + nl <= tl; i++)
		if (text[i] == needle[0] && memcmp(text + i, needle, nl) == 0)
			n++;
	return n;
}

/*
 * Events of a read are bounded (VAULT_BATCH_MAX items each), and so is a
 * page: where limit events would take it over the vault's page size, it
 * holds fewer, has_more says so, and the next page goes on from there.
 * audit export pages so too, and stops at the newest event when it began
 * while a client writes: every event up to there, once, in order.  (The
 * pages are megabytes: read as text, not through jparse.)
 */
#define BIG_READS	60
START_TEST(test_audit_page_bounded)
{
	static const char unknown[] = "tok_AAAAAAAAAAAAAAAAAAAAAA";
	struct scribbler w;
	struct su_resp r;
	struct su_run run;
	struct pv_buf b;
	char *line, *save = NULL, q[128];
	uint64_t after = 0, end = 0, n, exported = 0;
	size_t pages = 0, items = 0, big = 0;
	int more = 1;

	srv_start_plain();
	pv_buf_init(&b, 1u << 20);
	su_buf_add(&b, "{\"tokens\":[");
	for (int i = 0; i < VAULT_BATCH_MAX; i++) {
		su_buf_add(&b, i > 0 ? "," : "");
		su_buf_quote(&b, unknown);
	}
	su_buf_add(&b, "],\"purpose\":\"service\"}");
	for (int i = 0; i < BIG_READS; i++) {
		req(&r, "POST", "/v1/detokenize", K_READER, b.p);
		assert_status(&r, 200);
		su_resp_free(&r);
	}
	pv_buf_cleanup(&b);

	while (more) {
		if (pages == 0)
			(void)snprintf(q, sizeof(q), "/v1/audit?limit=1000");
		else
			(void)snprintf(q, sizeof(q), "/v1/audit?after=%" PRIu64
			    "&limit=1000&end=%" PRIu64, after, end);
		req(&r, "GET", q, K_AUDITOR, NULL);
		assert_status(&r, 200);
		ck_assert_uint_lt(r.body.len, 4u << 20);
		n = count_of(r.body.p, "{\"seq\":");
		if (pages++ == 0) {
			end = num_after(r.body.p, "end");
			/* The first page could not hold them all. */
			ck_assert_uint_gt(n, N_SETUP_EVENTS);
			ck_assert_uint_lt(n, N_SETUP_EVENTS + BIG_READS);
		}
		ck_assert_uint_gt(n, 0);
		ck_assert_uint_eq(num_after(r.body.p, "seq"), after + 1);
		after += n;
		ck_assert_uint_eq(num_after(r.body.p, "next"), after);
		ck_assert_uint_eq(num_after(r.body.p, "end"), end);
		more = strstr(r.body.p, "\"has_more\":true") != NULL;
		ck_assert(more == (after < end));
		big += count_of(r.body.p, "\"action\":\"detokenize\"");
		items += count_of(r.body.p, "{\"outcome\":\"refused\","
		    "\"code\":\"not_found\"}");
		su_resp_free(&r);
	}
	ck_assert_uint_gt(pages, 1);
	ck_assert_uint_eq(after, end);
	ck_assert_uint_eq(big, BIG_READS);
	ck_assert_uint_eq(items, (size_t)BIG_READS * VAULT_BATCH_MAX);

	memset(&w, 0, sizeof(w));
	(void)snprintf(w.url, sizeof(w.url), "%s/v1/records", su_srv.base);
	ck_assert_int_eq(pthread_create(&w.th, NULL, scribble, &w), 0);
	while (atomic_load(&w.written) < 5)
		(void)usleep(1000);
	cli(&run, "audit", "export", NULL);
	atomic_store(&w.stop, 1);
	ck_assert_int_eq(pthread_join(w.th, NULL), 0);
	ck_assert_exit(&run, 0);
	for (line = strtok_r(run.out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		unsigned long long seq;

		ck_assert_msg(sscanf(line, "{\"seq\":%llu,", &seq) == 1,
		    "[%.80s]", line);
		ck_assert_uint_eq(seq, ++exported);
	}
	/* The pages' reads, then some of the writes, are in it. */
	ck_assert_uint_ge(exported, end + pages + 5);
	su_run_free(&run);
	/* The writes went on after the export's end. */
	ck_assert_uint_gt(verify_ok(), exported);
}
END_TEST

/*
 * The audit write made to fail: a server on a 1 MiB map, filled until
 * writes fail.  A write then answers 503 and stores nothing; a read
 * whose event cannot be written answers 503 and reveals nothing; and
 * every value that was released has its event.
 */
START_TEST(test_audit_unavailable_503)
{
	static const struct su_fv f[] = { { "name", "zq.full-name-5501" } };
	const char *t;
	struct pv_buf big;
	struct su_resp r;
	struct su_run run;
	struct rec s;
	size_t released = 0;
	long long before;
	int full;

	map_mib = 1;
	srv_start("--sweep-interval", "0", NULL);
	map_mib = 0;
	put(f, 1, 0, 0, &s);
	t = s.tok[0];
	expect_value(t, "name", f[0].value);
	released++;

	/* Fill the map: big records first, then small ones. */
	pv_buf_init(&big, 1u << 20);
	su_buf_add(&big, "{\"records\":[");
	for (int i = 0; i < 8; i++) {
		su_buf_add(&big, i ? ",{\"fields\":{\"blob\":\"" :
		    "{\"fields\":{\"blob\":\"");
		for (int j = 0; j < 4000; j++)
			su_buf_add(&big, "q");
		su_buf_add(&big, "\"}}");
	}
	su_buf_add(&big, "]}");
	full = 0;
	assert_health(0);
	for (int i = 0; i < 200 && !full; i++) {
		before = stored();
		req(&r, "POST", "/v1/records/batch", K_WRITER, big.p);
		if (r.status != 200) {
			assert_storage_503(&r);
			ck_assert_int_eq(stored(), before);
			full = 1;
		}
		su_resp_free(&r);
	}
	pv_buf_cleanup(&big);
	ck_assert_msg(full, "a 1 MiB map never filled");
	/* A load balancer sees it: health is degraded. */
	assert_health(1);
	full = 0;
	for (int i = 0; i < 1000 && !full; i++) {
		before = stored();
		req(&r, "POST", "/v1/records", K_WRITER,
		    "{\"fields\":{\"blob\":\"zq.small-5502\"}}");
		if (r.status != 201) {
			assert_storage_503(&r);
			ck_assert_int_eq(stored(), before);
			full = 1;
		} else
			assert_health(0);	/* a write succeeded again */
		su_resp_free(&r);
	}
	ck_assert_msg(full, "small records never filled the map");
	assert_health(1);

	/* Reads until one cannot be logged. */
	full = 0;
	for (int i = 0; i < 5000 && !full; i++) {
		detok_req(&r, K_READER, "service", NULL, &t, 1);
		if (r.status == 200) {
			struct jv *v = su_body_json(&r);

			su_assert_value(v, t, "name", f[0].value);
			jfree(v);
			released++;
		} else {
			assert_error(&r, 503, "unavailable");
			ck_assert_msg(strstr(r.body.p, "zq.") == NULL &&
			    strstr(r.body.p, "results") == NULL,
			    "a 503 revealed: [%s]", r.body.p);
			full = 1;
		}
		su_resp_free(&r);
	}
	ck_assert_msg(full, "detokenize never failed to log");
	su_srv_stop();

	/* The chain is whole; every released value has its event. */
	(void)verify_ok();
	cli(&run, "audit", "export", NULL);
	ck_assert_exit(&run, 0);
	ck_assert_uint_eq(export_count(&run, "\"action\":\"detokenize\","
	    "\"outcome\":\"allowed\""), released);
	ck_assert_msg(strstr(run.out, "zq.") == NULL, "export holds a value");
	su_run_free(&run);
}
END_TEST

/* Tests: the person's requests. */

START_TEST(test_access_request)
{
	static const struct su_fv f[] = {
		{ "email", "zq.acc-6101@a.example" },
		{ "name", "zq.acc-name-6102" },
		{ "city", "zq.acc-city-6103" },
	};
	static const struct su_fv g[] = { { "name", "zq.acc-other-6104" } };
	static const struct su_fv h[] = { { "name", "zq.acc-nocon-6105" } };
	static const char *const purposes[] = { "service", "marketing",
	    "legal" };
	static const int not_admin[] = { K_WRITER, K_READER, K_SERVICE,
	    K_AUDITOR };
	const struct jv *fl, *reads, *cons;
	uint64_t prev = 0;
	const char *t;
	struct rec a, b, c;
	struct su_resp r;
	struct jv *v;

	srv_start_plain();
	put(f, 3, 1, 30, &a);
	put(g, 1, 1, 0, &b);
	put(h, 1, 0, KEEP, &c);
	/* Asked for marketing without consent: nothing of c was read. */
	t = c.tok[0];
	v = detok(K_READER, "marketing", NULL, &t, 1);
	su_assert_tok_error(v, t, "consent_withdrawn");
	jfree(v);
	v = access_rec(c.id);
	ck_assert_uint_eq(jget(v, "reads")->n, 0);
	jfree(v);
	t = tok_of(&a, "email");
	jfree(detok(K_READER, "service", NULL, &t, 1));
	t = tok_of(&a, "name");
	jfree(detok(K_READER, "marketing", NULL, &t, 1));
	t = tok_of(&a, "city");
	jfree(detok(K_READER, "legal", "case 2024-18", &t, 1));
	/* Not reads of a's values: another record's, a look-up, a refusal. */
	t = b.tok[0];
	jfree(detok(K_READER, "service", NULL, &t, 1));
	jfree(lookup("email", f[0].value));
	t = tok_of(&a, "email");
	detok_req(&r, K_SERVICE, "marketing", NULL, &t, 1);
	assert_error(&r, 403, "purpose_not_allowed");
	su_resp_free(&r);

	req(&r, "GET", rec_path(a.id, ""), K_ADMIN, NULL);
	assert_status(&r, 200);
	v = su_body_json(&r);
	su_resp_free(&r);
	ck_assert_pstr_eq(jstr(v, "id"), a.id);
	fl = jget(v, "fields");
	ck_assert_msg(fl != NULL && fl->type == J_OBJ && fl->n == 3,
	    "fields");
	for (size_t i = 0; i < NELEM(f); i++) {
		const struct jv *e = jget(fl, f[i].name);

		ck_assert_msg(e != NULL && e->n == 2, "field %s", f[i].name);
		ck_assert_pstr_eq(jstr(e, "token"), tok_of(&a, f[i].name));
		ck_assert_pstr_eq(jstr(e, "value"), f[i].value);
	}
	cons = jget(v, "consent");
	ck_assert_int_eq(jbool(cons, "marketing"), 1);
	ck_assert_int_eq(jbool(cons, "notices"), 1);
	ck_assert_uint_eq(jnum(v, "created"), T0);
	ck_assert_uint_eq(jnum(v, "retain_until"), T0 + 30 * DAY);
	ck_assert_int_eq(jbool(v, "legal_hold"), 0);
	reads = jget(v, "reads");
	ck_assert_msg(reads != NULL && reads->type == J_ARR && reads->n == 3,
	    "reads: want 3");
	for (size_t i = 0; i < 3; i++) {
		const struct jv *e = &reads->items[i];
		uint64_t seq = jnum(e, "audit_seq");
		char q[64];
		struct jv *p;
		const struct jv *ev;

		ck_assert_pstr_eq(jstr(e, "by"), "pw-reader");
		ck_assert_uint_eq(jnum(e, "at"), T0);
		ck_assert_pstr_eq(jstr(e, "purpose"), purposes[i]);
		ck_assert_uint_gt(seq, prev);
		prev = seq;
		/* It names the log's own event for that read. */
		(void)snprintf(q, sizeof(q), "?after=%" PRIu64 "&limit=1",
		    seq - 1);
		p = audit_page(q, NULL);
		ev = jget(p, "events");
		ck_assert_uint_eq(ev->n, 1);
		ck_assert_pstr_eq(jstr(&ev->items[0], "action"), "detokenize");
		ck_assert_pstr_eq(jstr(&ev->items[0], "purpose"), purposes[i]);
		ck_assert_uint_eq(jget(&ev->items[0], "records")->n, 1);
		ck_assert_pstr_eq(jget(&ev->items[0], "records")->items[0].s,
		    a.id);
		jfree(p);
	}
	jfree(v);

	/* No retention date: null (and the answer still JSON); one read. */
	req(&r, "GET", rec_path(b.id, ""), K_ADMIN, NULL);
	assert_status(&r, 200);
	v = jparse(r.body.p, r.body.len);
	ck_assert_msg(v != NULL, "the access answer for a record without a "
	    "retention date is not JSON: [%s]", r.body.p);
	su_resp_free(&r);
	ck_assert_msg(jget(v, "retain_until") != NULL &&
	    jget(v, "retain_until")->type == J_NULL, "retain_until not null");
	ck_assert_uint_eq(jget(v, "reads")->n, 1);
	ck_assert_pstr_eq(jstr(&jget(v, "reads")->items[0], "by"),
	    "pw-reader");
	jfree(v);

	for (size_t i = 0; i < NELEM(not_admin); i++)
		expect_error("GET", rec_path(a.id, ""), not_admin[i], NULL, 403,
		    "forbidden");
	expect_error("GET", rec_path(a.id, ""), K_NONE, NULL, 401,
	    "unauthenticated");
	expect_error("GET", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA", K_ADMIN,
	    NULL, 404, "not_found");
	expect_error("GET", "/v1/records/rec_nonsense", K_ADMIN, NULL, 404,
	    "not_found");
	/* A token is not a record id. */
	expect_error("GET", rec_path(tok_of(&a, "email"), ""), K_ADMIN, NULL,
	    404, "not_found");
	jfree(delete_rec(b.id));
	expect_error("GET", rec_path(b.id, ""), K_ADMIN, NULL, 410,
	    "shredded");
}
END_TEST

START_TEST(test_correction)
{
	static const struct su_fv f[] = {
		{ "email", "zq.old-7101@a.example" },
		{ "name", "zq.cor-name-7102" },
		{ "phone", "+1 555 7103" },
	};
	static const char patch[] = "{\"fields\":{\"email\":"
	    "\"zq.new-7104@a.example\",\"name\":null,\"city\":"
	    "\"zq.cor-city-7105\"}}";
	static const int not_admin[] = { K_WRITER, K_READER, K_AUDITOR };
	const char *toks[4], *m;
	struct audit_all all;
	struct rec a, c;
	struct su_resp r;
	struct jv *v;
	int found = 0;

	srv_start_plain();
	put(f, 3, 0, KEEP, &a);
	req(&r, "PATCH", rec_path(a.id, ""), K_ADMIN, patch);
	assert_status(&r, 200);
	v = su_body_json(&r);
	rec_from_json(v, &c, r.body.p);
	ck_assert_msg(strstr(r.body.p, "zq.") == NULL, "values echoed");
	jfree(v);
	su_resp_free(&r);
	/* Every field's token after the change: kept ones keep theirs. */
	ck_assert_str_eq(c.id, a.id);
	ck_assert_uint_eq(c.n, 3);
	ck_assert_pstr_eq(tok_find(&c, "email"), tok_of(&a, "email"));
	ck_assert_pstr_eq(tok_find(&c, "phone"), tok_of(&a, "phone"));
	ck_assert_ptr_null(tok_find(&c, "name"));
	ck_assert_ptr_nonnull(tok_find(&c, "city"));
	for (size_t i = 0; i < a.n; i++)
		ck_assert_str_ne(tok_of(&c, "city"), a.tok[i]);

	toks[0] = tok_of(&a, "email");
	toks[1] = tok_of(&a, "name");
	toks[2] = tok_of(&a, "phone");
	toks[3] = tok_of(&c, "city");
	v = detok(K_READER, "service", NULL, toks, 4);
	su_assert_value(v, toks[0], "email", "zq.new-7104@a.example");
	su_assert_tok_error(v, toks[1], "not_found");
	su_assert_value(v, toks[2], "phone", f[2].value);
	su_assert_value(v, toks[3], "city", "zq.cor-city-7105");
	jfree(v);

	/* The blind index follows. */
	v = lookup("email", " ZQ.NEW-7104@a.example");
	ck_assert_uint_eq(jget(v, "matches")->n, 1);
	ck_assert_pstr_eq(jstr(&jget(v, "matches")->items[0], "id"), a.id);
	ck_assert_pstr_eq(jstr(&jget(v, "matches")->items[0], "token"),
	    toks[0]);
	jfree(v);
	v = lookup("email", f[0].value);
	ck_assert_uint_eq(jget(v, "matches")->n, 0);
	jfree(v);
	v = lookup("phone", "+15557103");
	ck_assert_uint_eq(jget(v, "matches")->n, 1);
	jfree(v);

	v = access_rec(a.id);
	ck_assert_uint_eq(jget(v, "fields")->n, 3);
	ck_assert_pstr_eq(jstr(jget(jget(v, "fields"), "email"), "value"),
	    "zq.new-7104@a.example");
	ck_assert_ptr_null(jget(jget(v, "fields"), "name"));
	jfree(v);

	/* Refused corrections change nothing. */
	expect_error("PATCH", rec_path(a.id, ""), K_ADMIN,
	    "{\"fields\":{\"email\":\"zq.not-an-email-7106\"}}", 422,
	    "invalid_value");
	expect_error("PATCH", rec_path(a.id, ""), K_ADMIN,
	    "{\"fields\":{\"email\":null,\"phone\":null,\"city\":null}}", 422,
	    "invalid_value");
	expect_error("PATCH", rec_path(a.id, ""), K_ADMIN,
	    "{\"fields\":{}}", 422, "invalid_value");
	expect_error("PATCH", rec_path(a.id, ""), K_ADMIN,
	    "{\"fields\":{\"Bad-Name\":\"x\"}}", 422, "invalid_field");
	for (size_t i = 0; i < NELEM(not_admin); i++)
		expect_error("PATCH", rec_path(a.id, ""), not_admin[i],
		    "{\"fields\":{\"city\":\"zq.cor-city-7107\"}}", 403,
		    "forbidden");
	expect_error("PATCH", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA",
	    K_ADMIN, "{\"fields\":{\"city\":\"x\"}}", 404, "not_found");
	v = detok(K_READER, "service", NULL, toks, 4);
	su_assert_value(v, toks[0], "email", "zq.new-7104@a.example");
	su_assert_value(v, toks[2], "phone", f[2].value);
	su_assert_value(v, toks[3], "city", "zq.cor-city-7105");
	jfree(v);

	/* The log names the fields changed, never their values. */
	audit_read_all(&all, 200);
	for (size_t i = 0; i < all.n; i++) {
		struct xev x = { "pw-admin", "records.correct", 1, NULL, NULL,
		    NULL, { a.id }, { "email", "name", "city" }, 0, NULL, 0 };

		if ((m = jstr(all.ev[i], "action")) == NULL ||
		    strcmp(m, "records.correct") != 0 ||
		    strcmp(jstr(all.ev[i], "outcome"), "allowed") != 0)
			continue;
		check_event(all.ev[i], &x, i);
		found++;
	}
	ck_assert_int_eq(found, 1);
	ck_assert_msg(strstr(all.text.p, "zq.") == NULL, "a value in the log");
	audit_all_free(&all);
}
END_TEST

/*
 * Free-text reasons are sealed at rest: a legal detokenize's, a hold's and
 * a shred's (API and CLI) reason is nowhere in the data directory, while
 * the audit API, audit export and the receipt show it.
 */
START_TEST(test_reasons_sealed_at_rest)
{
	static const struct su_fv f[] = { { "email", "zq.rsn-8201@a.example" },
	    { "name", "zq.rsn-name-8202" } };
	static const char *const why[] = { "court order re: Ada Lovelace",
	    "hold re: Grace Hopper 8203", "erase re: Alan Turing 8204",
	    "cli erase re: Edsger Dijkstra 8205" };
	char dir[PATH_MAX + 32];
	struct audit_all all;
	struct su_resp r;
	struct su_run run;
	struct rec a, b;
	const char *t;
	struct jv *v;

	srv_start_plain();
	put(f, 2, 1, KEEP, &a);
	put(f, 2, 1, KEEP, &b);
	t = tok_of(&a, "email");
	v = detok(K_READER, "legal", why[0], &t, 1);
	jfree(v);
	set_hold(a.id, 1, why[1]);
	set_hold(a.id, 0, why[1]);
	req(&r, "DELETE", rec_path(a.id, "?reason=erase%20re%3A%20Alan%20"
	    "Turing%208204"), K_ADMIN, NULL);
	assert_status(&r, 200);
	ck_assert_msg(strstr(r.body.p, why[2]) != NULL, "receipt: [%s]",
	    r.body.p);
	su_resp_free(&r);
	su_srv_stop();
	cli(&run, "shred", "--reason", why[3], b.id, NULL);
	ck_assert_exit(&run, 0);
	su_run_free(&run);

	(void)snprintf(dir, sizeof(dir), "%s/piivault-data", su_tdir);
	for (size_t i = 0; i < NELEM(why); i++)
		ck_assert_msg(!tu_dir_contains(dir, why[i], strlen(why[i])),
		    "[%s] is stored in plain text", why[i]);

	srv_start_plain();
	audit_read_all(&all, 100);
	for (size_t i = 0; i < NELEM(why); i++)
		ck_assert_msg(strstr(all.text.p, why[i]) != NULL,
		    "the audit API does not show [%s]", why[i]);
	audit_all_free(&all);
	su_srv_stop();
	cli(&run, "audit", "export", NULL);
	ck_assert_exit(&run, 0);
	for (size_t i = 0; i < NELEM(why); i++)
		ck_assert_msg(strstr(run.out, why[i]) != NULL,
		    "audit export does not show [%s]", why[i]);
	su_run_free(&run);
	(void)verify_ok();
}
END_TEST

START_TEST(test_deletion_and_hold)
{
	static const struct su_fv f[] = { { "email", "zq.del-8101@a.example" },
	    { "name", "zq.del-name-8102" } };
	static const int not_admin[] = { K_WRITER, K_READER, K_AUDITOR };
	const struct jv *rc;
	struct rec h, o;
	struct jv *v, *p;
	char q[64];

	srv_start_plain();
	put(f, 2, 0, KEEP, &h);
	put(f, 2, 0, KEEP, &o);

	/* A hold needs a reason (and says so), and an admin. */
	{
		struct su_resp r;

		req(&r, "PUT", rec_path(h.id, "/legal-hold"), K_ADMIN,
		    "{\"hold\":true}");
		assert_error(&r, 422, "reason_required");
		ck_assert_str_eq(r.body.p, "{\"error\":{\"code\":"
		    "\"reason_required\",\"message\":\"a legal hold needs a "
		    "reason\"}}\n");
		su_resp_free(&r);
	}
	expect_error("PUT", rec_path(h.id, "/legal-hold"), K_ADMIN,
	    "{\"hold\":true,\"reason\":\"\"}", 422, "reason_required");
	expect_error("PUT", rec_path(h.id, "/legal-hold"), K_ADMIN,
	    "{\"reason\":\"case 7\"}", 422, "invalid_value");
	expect_error("PUT", rec_path(h.id, "/legal-hold"), K_ADMIN,
	    "{\"hold\":true,\"reason\":\"case 7\",\"until\":1}", 422,
	    "unknown_member");
	for (size_t i = 0; i < NELEM(not_admin); i++)
		expect_error("PUT", rec_path(h.id, "/legal-hold"),
		    not_admin[i], "{\"hold\":true,\"reason\":\"case 7\"}", 403,
		    "forbidden");
	expect_error("PUT", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA"
	    "/legal-hold", K_ADMIN, "{\"hold\":true,\"reason\":\"case 7\"}",
	    404, "not_found");
	v = access_rec(h.id);
	ck_assert_int_eq(jbool(v, "legal_hold"), 0);
	jfree(v);

	set_hold(h.id, 1, "case 7");
	v = access_rec(h.id);
	ck_assert_int_eq(jbool(v, "legal_hold"), 1);
	jfree(v);
	expect_error("DELETE", rec_path(h.id, ""), K_ADMIN, NULL, 409,
	    "legal_hold");
	expect_value(h.tok[0], "email", f[0].value);

	/* Another record is not held: deleted, with a receipt. */
	for (size_t i = 0; i < NELEM(not_admin); i++)
		expect_error("DELETE", rec_path(o.id, ""), not_admin[i], NULL,
		    403, "forbidden");
	expect_error("DELETE", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA",
	    K_ADMIN, NULL, 404, "not_found");
	v = delete_rec(o.id);
	rc = jget(v, "receipt");
	ck_assert_pstr_eq(jstr(rc, "reason"), "request");
	ck_assert_uint_eq(jnum(rc, "shredded_at"), T0);
	/* Its receipt names the deletion's event. */
	(void)snprintf(q, sizeof(q), "?after=%" PRIu64 "&limit=1",
	    jnum(rc, "audit_seq") - 1);
	p = audit_page(q, NULL);
	{
		struct xev x = { "pw-admin", "records.delete", 1, NULL, NULL,
		    "request", { o.id }, { NULL }, 0, NULL, 0 };

		ck_assert_uint_eq(jget(p, "events")->n, 1);
		check_event(&jget(p, "events")->items[0], &x, 0);
	}
	jfree(p);
	jfree(v);
	expect_tok_error(o.tok[0], "shredded");
	expect_tok_error(o.tok[1], "shredded");
	v = lookup("email", f[0].value);
	ck_assert_uint_eq(jget(v, "matches")->n, 1);
	ck_assert_pstr_eq(jstr(&jget(v, "matches")->items[0], "id"), h.id);
	jfree(v);

	/* Released, the held record may go. */
	set_hold(h.id, 0, "case 7 closed");
	v = access_rec(h.id);
	ck_assert_int_eq(jbool(v, "legal_hold"), 0);
	jfree(v);
	{
		struct su_resp r;

		req(&r, "DELETE", rec_path(h.id, "?reason=person%20asked"),
		    K_ADMIN, NULL);
		assert_status(&r, 200);
		v = su_body_json(&r);
		su_resp_free(&r);
	}
	rc = jget(v, "receipt");
	ck_assert_pstr_eq(jstr(rc, "record"), h.id);
	ck_assert_pstr_eq(jstr(rc, "reason"), "person asked");
	jfree(v);
	expect_tok_error(h.tok[0], "shredded");
	expect_error("GET", rec_path(h.id, ""), K_ADMIN, NULL, 410,
	    "shredded");
	/* What is gone cannot be held, consented to or corrected. */
	expect_error("PUT", rec_path(h.id, "/legal-hold"), K_ADMIN,
	    "{\"hold\":true,\"reason\":\"case 8\"}", 410, "shredded");
	expect_error("PUT", rec_path(h.id, "/consent"), K_ADMIN,
	    "{\"marketing\":true}", 410, "shredded");
	expect_error("PATCH", rec_path(h.id, ""), K_ADMIN,
	    "{\"fields\":{\"name\":\"zq.del-name-8103\"}}", 410,
	    "shredded");
	v = lookup("email", f[0].value);
	ck_assert_uint_eq(jget(v, "matches")->n, 0);
	jfree(v);
}
END_TEST

/* Tests: requests limited per record and window. */

/* GET id as the admin must answer 429 with Retry-After retry. */
static void
expect_limited(const char *method, const char *id, unsigned long long retry)
{
	const char *ra;
	struct su_resp r;

	req(&r, method, rec_path(id, ""), K_ADMIN, NULL);
	assert_error(&r, 429, "too_many_requests");
	ck_assert_msg(strstr(r.body.p, "zq.") == NULL, "[%s]", r.body.p);
	ra = su_header(&r, "Retry-After");
	ck_assert_msg(ra != NULL && strtoull(ra, NULL, 10) == retry,
	    "%s: Retry-After %s, want %llu", method, ra ? ra : "(none)",
	    retry);
	su_resp_free(&r);
}

START_TEST(test_request_limit_access)
{
	static const struct su_fv f[] = { { "name", "zq.lim-name-2101" } };
	struct rec x, y;

	srv_start("--request-limit", "2", "--request-window-days", "30",
	    NULL);
	put(f, 1, 0, KEEP, &x);
	put(f, 1, 0, KEEP, &y);
	jfree(access_rec(x.id));
	jfree(access_rec(x.id));
	expect_limited("GET", x.id, WINDOW);
	expect_limited("GET", x.id, WINDOW);
	/* Other records are not affected, nor other requests. */
	jfree(access_rec(y.id));
	expect_value(x.tok[0], "name", f[0].value);
	su_srv_stop();

	/* A day before the window ends: still limited, for a day. */
	fake_now = T0 + WINDOW - DAY;
	srv_start("--request-limit", "2", "--request-window-days", "30",
	    NULL);
	expect_limited("GET", x.id, DAY);
	jfree(access_rec(y.id));
	su_srv_stop();

	/* Past it: two more, then limited for a whole window again. */
	fake_now = T0 + WINDOW + 1;
	srv_start("--request-limit", "2", "--request-window-days", "30",
	    NULL);
	jfree(access_rec(x.id));
	jfree(access_rec(x.id));
	expect_limited("GET", x.id, WINDOW);
}
END_TEST

/* One of several clients asking for a record's access at once. */
struct racer {
	pthread_t		 th;
	pthread_barrier_t	*go;
	char			 url[256];
	long			 status;
	char			 err[CURL_ERROR_SIZE];
};

static void *
racer_run(void *arg)
{
	struct racer *rc = arg;
	char auth[64 + KEY_BUF];
	const char *h[3] = { "Expect:", auth, NULL };
	struct su_resp r;
	CURL *c;

	rc->status = -1;
	(void)snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	    keys[K_ADMIN]);
	if ((c = curl_easy_init()) == NULL)
		return NULL;
	(void)pthread_barrier_wait(rc->go);
	if (su_http_do(c, &r, "GET", rc->url, h, NULL, 0, rc->err) == 0) {
		rc->status = r.status;
		su_resp_free(&r);
	}
	curl_easy_cleanup(c);
	return NULL;
}

/*
 * The count and the request's event commit together: clients asking at
 * once cannot slip past the limit.
 */
START_TEST(test_request_limit_concurrent)
{
	static const struct su_fv f[] = { { "name", "zq.lim-name-2301" } };
	struct racer rc[8];
	pthread_barrier_t go;
	int ok = 0, limited = 0;
	struct rec x;

	srv_start("--request-limit", "2", NULL);
	put(f, 1, 0, KEEP, &x);
	ck_assert_int_eq(pthread_barrier_init(&go, NULL, NELEM(rc)), 0);
	for (size_t i = 0; i < NELEM(rc); i++) {
		rc[i].go = &go;
		(void)snprintf(rc[i].url, sizeof(rc[i].url), "%s%s", su_srv.base,
		    rec_path(x.id, ""));
		ck_assert_int_eq(pthread_create(&rc[i].th, NULL, racer_run,
		    &rc[i]), 0);
	}
	for (size_t i = 0; i < NELEM(rc); i++) {
		ck_assert_int_eq(pthread_join(rc[i].th, NULL), 0);
		ck_assert_msg(rc[i].status == 200 || rc[i].status == 429,
		    "client %zu: %ld %s", i, rc[i].status, rc[i].err);
		ok += rc[i].status == 200;
		limited += rc[i].status == 429;
	}
	(void)pthread_barrier_destroy(&go);
	ck_assert_int_eq(ok, 2);
	ck_assert_int_eq(limited, (int)NELEM(rc) - 2);
}
END_TEST

/*
 * Only a request that is granted counts: a deletion refused under legal
 * hold, as often as asked, leaves the person's requests untouched (the
 * hold lifted, the deletion shreds), and asking again for a record
 * shredded answers the same receipt, uncounted and logged as a repeat.
 * An access refused over the limit does not count either, and metadata
 * is not an access request.
 */
START_TEST(test_request_refusals_not_counted)
{
	static const struct su_fv f[] = { { "name", "zq.lim-name-2201" } };
	struct audit_all all;
	struct su_resp r;
	size_t holds = 0, shreds = 0, repeats = 0;
	char *first;
	struct rec y, z;
	struct jv *v;

	srv_start("--request-limit", "2", "--request-window-days", "30",
	    NULL);
	put(f, 1, 0, KEEP, &y);
	put(f, 1, 0, KEEP, &z);
	set_hold(y.id, 1, "case 22");
	for (int i = 0; i < 4; i++)
		expect_error("DELETE", rec_path(y.id, ""), K_ADMIN, NULL, 409,
		    "legal_hold");
	expect_value(y.tok[0], "name", f[0].value);
	set_hold(y.id, 0, "case 22 closed");
	req(&r, "DELETE", rec_path(y.id, ""), K_ADMIN,
	    "{\"reason\":\"person asked\"}");
	assert_status(&r, 200);
	ck_assert_ptr_nonnull(first = strdup(r.body.p));
	su_resp_free(&r);
	v = jparse(first, strlen(first));
	ck_assert_pstr_eq(jstr(jget(v, "receipt"), "reason"), "person asked");
	jfree(v);
	expect_tok_error(y.tok[0], "shredded");
	/* Asked again, past any limit: the first receipt, byte for byte. */
	for (int i = 0; i < 3; i++) {
		req(&r, "DELETE", rec_path(y.id, ""), K_ADMIN,
		    "{\"reason\":\"asked again\"}");
		assert_status(&r, 200);
		ck_assert_str_eq(r.body.p, first);
		su_resp_free(&r);
	}
	free(first);

	/* Metadata is not an access request: it never counts. */
	for (int i = 0; i < 3; i++) {
		req(&r, "GET", rec_path(z.id, "/metadata"), K_ADMIN, NULL);
		assert_status(&r, 200);
		su_resp_free(&r);
	}
	jfree(access_rec(z.id));
	jfree(access_rec(z.id));
	expect_limited("GET", z.id, WINDOW);
	su_srv_stop();
	/* Ten days on, refused again: that refusal does not count. */
	fake_now = T0 + 10 * DAY;
	srv_start("--request-limit", "2", "--request-window-days", "30",
	    NULL);
	expect_limited("GET", z.id, WINDOW - 10 * DAY);
	su_srv_stop();
	/* Past the first two's window: two more, as if never refused. */
	fake_now = T0 + WINDOW + 1;
	srv_start("--request-limit", "2", "--request-window-days", "30",
	    NULL);
	jfree(access_rec(z.id));
	jfree(access_rec(z.id));
	expect_limited("GET", z.id, WINDOW);

	/* The log: each refusal and repeat with its record; one shred. */
	audit_read_all(&all, 500);
	for (size_t i = 0; i < all.n; i++) {
		const struct jv *e = all.ev[i];
		const char *code = jstr(e, "code");
		const char *const want[] = { y.id, NULL };

		if (strcmp(jstr(e, "action"), "records.delete") != 0)
			continue;
		ck_assert_msg(strs_eq(jget(e, "records"), want),
		    "a records.delete event without its record");
		if (code == NULL) {
			ck_assert_pstr_eq(jstr(e, "outcome"), "allowed");
			ck_assert_pstr_eq(jstr(e, "reason"), "person asked");
			shreds++;
		} else if (strcmp(code, "legal_hold") == 0) {
			ck_assert_pstr_eq(jstr(e, "outcome"), "denied");
			holds++;
		} else {
			ck_assert_pstr_eq(code, "already_shredded");
			ck_assert_pstr_eq(jstr(e, "outcome"), "allowed");
			ck_assert_pstr_eq(jstr(e, "reason"), "asked again");
			repeats++;
		}
	}
	audit_all_free(&all);
	ck_assert_uint_eq(holds, 4);
	ck_assert_uint_eq(shreds, 1);
	ck_assert_uint_eq(repeats, 3);
}
END_TEST

/*
 * GET /v1/records/{id}/metadata: what the vault holds about a record,
 * for an admin, without a value or a token; logged as its own action,
 * with the record.
 */
START_TEST(test_record_metadata)
{
	static const struct su_fv f[] = {
		{ "email", "zq.meta-6301@a.example" },
		{ "name", "zq.meta-name-6302" },
	};
	static const int not_admin[] = { K_WRITER, K_READER, K_SERVICE,
	    K_AUDITOR };
	static const char *const names[] = { "email", "name", NULL };
	const struct jv *reads, *cons;
	struct audit_all all;
	const char *t;
	struct rec a;
	struct su_resp r;
	struct jv *v, *acc;
	size_t logged = 0;

	srv_start_plain();
	put(f, 2, 1, 30, &a);
	t = tok_of(&a, "name");
	jfree(detok(K_READER, "service", NULL, &t, 1));
	set_hold(a.id, 1, "case 63");

	req(&r, "GET", rec_path(a.id, "/metadata"), K_ADMIN, NULL);
	assert_status(&r, 200);
	for (size_t i = 0; i < NELEM(f); i++)
		ck_assert_msg(strstr(r.body.p, f[i].value) == NULL,
		    "a value in the metadata: [%s]", r.body.p);
	ck_assert_msg(strstr(r.body.p, "tok_") == NULL,
	    "a token in the metadata: [%s]", r.body.p);
	ck_assert_msg(strstr(r.body.p, "zq.") == NULL, "[%s]", r.body.p);
	v = su_body_json(&r);
	su_resp_free(&r);
	ck_assert_msg(v->type == J_OBJ && v->n == 7, "members: want 7");
	ck_assert_pstr_eq(jstr(v, "id"), a.id);
	ck_assert_msg(strs_eq(jget(v, "fields"), names), "fields: want "
	    "[\"email\",\"name\"]");
	cons = jget(v, "consent");
	ck_assert_int_eq(jbool(cons, "marketing"), 1);
	ck_assert_int_eq(jbool(cons, "notices"), 1);
	ck_assert_uint_eq(jnum(v, "created"), T0);
	ck_assert_uint_eq(jnum(v, "retain_until"), T0 + 30 * DAY);
	ck_assert_int_eq(jbool(v, "legal_hold"), 1);
	reads = jget(v, "reads");
	ck_assert_msg(reads != NULL && reads->type == J_ARR && reads->n == 1,
	    "reads: want 1");
	ck_assert_pstr_eq(jstr(&reads->items[0], "by"), "pw-reader");
	ck_assert_pstr_eq(jstr(&reads->items[0], "purpose"), "service");
	/* The same facts as the access answer, its values aside. */
	acc = access_rec(a.id);
	ck_assert_uint_eq(jnum(acc, "created"), jnum(v, "created"));
	ck_assert_uint_eq(jnum(acc, "retain_until"), jnum(v,
	    "retain_until"));
	ck_assert_uint_eq(jnum(&jget(acc, "reads")->items[0], "audit_seq"),
	    jnum(&reads->items[0], "audit_seq"));
	jfree(acc);
	jfree(v);

	for (size_t i = 0; i < NELEM(not_admin); i++)
		expect_error("GET", rec_path(a.id, "/metadata"), not_admin[i],
		    NULL, 403, "forbidden");
	expect_error("GET", rec_path(a.id, "/metadata"), K_NONE, NULL, 401,
	    "unauthenticated");
	expect_error("GET", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA/metadata",
	    K_ADMIN, NULL, 404, "not_found");
	expect_error("GET", rec_path(tok_of(&a, "email"), "/metadata"),
	    K_ADMIN, NULL, 404, "not_found");
	req(&r, "HEAD", rec_path(a.id, "/metadata"), K_ADMIN, NULL);
	assert_status(&r, 405);
	ck_assert_pstr_eq(su_header(&r, "Allow"), "GET");
	su_resp_free(&r);
	set_hold(a.id, 0, "case 63 closed");
	jfree(delete_rec(a.id));
	expect_error("GET", rec_path(a.id, "/metadata"), K_ADMIN, NULL, 410,
	    "shredded");

	audit_read_all(&all, 500);
	for (size_t i = 0; i < all.n; i++) {
		const struct jv *e = all.ev[i];
		const char *const want[] = { a.id, NULL };

		if (strcmp(jstr(e, "action"), "records.metadata") != 0 ||
		    strcmp(jstr(e, "outcome"), "allowed") != 0)
			continue;
		ck_assert_msg(strs_eq(jget(e, "records"), want),
		    "records.metadata without its record");
		logged++;
	}
	ck_assert_msg(strstr(all.text.p, "zq.") == NULL, "a value in the log");
	audit_all_free(&all);
	ck_assert_uint_eq(logged, 1);
}
END_TEST

/* Tests: consent. */

START_TEST(test_consent)
{
	static const struct su_fv f[] = { { "email", "zq.con-9101@a.example" },
	    { "name", "zq.con-name-9102" } };
	static const int not_admin[] = { K_WRITER, K_READER, K_AUDITOR };
	static const char *const other[] = { "service", "notices" };
	const char *toks[2];
	struct rec a;
	struct jv *v;

	srv_start_plain();
	put(f, 2, 1, KEEP, &a);
	toks[0] = a.tok[0];
	toks[1] = a.tok[1];
	v = detok(K_READER, "marketing", NULL, toks, 2);
	su_assert_value(v, toks[0], "email", f[0].value);
	su_assert_value(v, toks[1], "name", f[1].value);
	jfree(v);

	/* Withdrawn: at once for marketing, and for nothing else. */
	set_consent(a.id, 0);
	v = detok(K_READER, "marketing", NULL, toks, 2);
	su_assert_tok_error(v, toks[0], "consent_withdrawn");
	su_assert_tok_error(v, toks[1], "consent_withdrawn");
	jfree(v);
	for (size_t i = 0; i < NELEM(other); i++) {
		v = detok(K_READER, other[i], NULL, toks, 2);
		su_assert_value(v, toks[0], "email", f[0].value);
		su_assert_value(v, toks[1], "name", f[1].value);
		jfree(v);
	}
	v = access_rec(a.id);
	ck_assert_int_eq(jbool(jget(v, "consent"), "marketing"), 0);
	ck_assert_int_eq(jbool(jget(v, "consent"), "notices"), 1);
	jfree(v);

	/* Given again. */
	set_consent(a.id, 1);
	v = detok(K_READER, "marketing", NULL, toks, 2);
	su_assert_value(v, toks[0], "email", f[0].value);
	jfree(v);

	/* Notices cannot be opted out of; nothing changes when asked. */
	expect_error("PUT", rec_path(a.id, "/consent"), K_ADMIN,
	    "{\"notices\":false}", 422, "cannot_opt_out");
	expect_error("PUT", rec_path(a.id, "/consent"), K_ADMIN,
	    "{\"marketing\":false,\"notices\":false}", 422, "cannot_opt_out");
	v = detok(K_READER, "marketing", NULL, toks, 2);
	su_assert_value(v, toks[1], "name", f[1].value);
	jfree(v);
	expect_error("PUT", rec_path(a.id, "/consent"), K_ADMIN,
	    "{\"marketing\":false,\"sms\":true}", 422, "unknown_member");
	expect_error("PUT", rec_path(a.id, "/consent"), K_ADMIN, "{}", 422,
	    "invalid_value");
	expect_error("PUT", rec_path(a.id, "/consent"), K_ADMIN,
	    "{\"marketing\":\"no\"}", 422, "invalid_value");
	for (size_t i = 0; i < NELEM(not_admin); i++)
		expect_error("PUT", rec_path(a.id, "/consent"), not_admin[i],
		    "{\"marketing\":false}", 403, "forbidden");
	expect_error("PUT", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA/consent",
	    K_ADMIN, "{\"marketing\":false}", 404, "not_found");
	v = detok(K_READER, "marketing", NULL, toks, 2);
	su_assert_value(v, toks[0], "email", f[0].value);
	jfree(v);

	/* notices true with it is fine. */
	{
		struct su_resp r;

		req(&r, "PUT", rec_path(a.id, "/consent"), K_ADMIN,
		    "{\"marketing\":false,\"notices\":true}");
		assert_status(&r, 200);
		su_resp_free(&r);
	}
	v = detok(K_READER, "marketing", NULL, toks, 2);
	su_assert_tok_error(v, toks[0], "consent_withdrawn");
	jfree(v);
}
END_TEST

/* Tests: retention, on a clock the tests move. */

/*
 * piivault retention sweep [--dry-run] --json must print exactly want:
 * a dry run's count is what it would shred.
 */
static void
sweep(int dry_run, unsigned shredded, unsigned held)
{
	char want[128];
	struct su_run r;

	if (dry_run)
		cli(&r, "retention", "sweep", "--dry-run", "--json", NULL);
	else
		cli(&r, "retention", "sweep", "--json", NULL);
	ck_assert_exit(&r, 0);
	(void)snprintf(want, sizeof(want), "{\"dry_run\":%s,\"%s\":%u,"
	    "\"held\":%u}\n", dry_run ? "true" : "false", dry_run ?
	    "would_shred" : "shredded", shredded, held);
	ck_assert_msg(strcmp(r.out, want) == 0, "sweep at %" PRIu64 " said "
	    "[%s], want [%s]", fake_now, r.out, want);
	su_run_free(&r);
}

/* The last line of audit export, parsed. */
static struct jv *
last_event(void)
{
	struct su_run r;
	struct jv *v;
	char *p;

	cli(&r, "audit", "export", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_uint_gt(r.outlen, 1);
	r.out[r.outlen - 1] = '\0';
	p = strrchr(r.out, '\n');
	p = p != NULL ? p + 1 : r.out;
	ck_assert_ptr_nonnull(v = jparse(p, strlen(p)));
	su_run_free(&r);
	return v;
}

/* retain_until in the access answer: 0 for null. */
static uint64_t
retain_until(const char *id)
{
	struct jv *v = access_rec(id);
	const struct jv *u = jget(v, "retain_until");
	uint64_t n;

	ck_assert_ptr_nonnull(u);
	n = u->type == J_NULL ? 0 : jnum(v, "retain_until");
	jfree(v);
	return n;
}

START_TEST(test_retention_sweep_cli)
{
	static const struct su_fv f[] = { { "email", "zq.ret-1301@a.example" },
	    { "name", "zq.ret-name-1302" } };
	struct rec r1, r30, rnone, rheld, rdef;
	uint64_t n0;
	struct jv *v;

	srv_start("--sweep-interval", "0", NULL);
	put(f, 2, 0, 1, &r1);
	put(f, 2, 0, 30, &r30);
	put(f, 2, 0, 0, &rnone);
	put(f, 2, 0, 1, &rheld);
	set_hold(rheld.id, 1, "case 9");
	ck_assert_uint_eq(retain_until(r1.id), T0 + DAY);
	ck_assert_uint_eq(retain_until(r30.id), T0 + 30 * DAY);
	/* rnone has none: test_access_request checks how that reads. */
	su_srv_stop();
	/* The server's default applies to records made without one. */
	srv_start("--sweep-interval", "0", "--default-retention-days", "5",
	    NULL);
	put(f, 2, 0, 0, &rdef);
	ck_assert_uint_eq(retain_until(rdef.id), T0 + 5 * DAY);
	su_srv_stop();

	/* Nothing is due yet. */
	n0 = verify_ok();
	sweep(0, 0, 0);
	ck_assert_uint_eq(verify_ok(), n0);

	/* Two days on: a dry run counts and changes nothing. */
	fake_now = T0 + 2 * DAY;
	sweep(1, 1, 1);
	ck_assert_uint_eq(verify_ok(), n0);
	sweep(1, 1, 1);
	/* Then the 1-day record goes; the held one stays. */
	sweep(0, 1, 1);
	ck_assert_uint_eq(verify_ok(), n0 + 1);
	v = last_event();
	{
		struct xev x = { "retention", "retention.sweep", 1, NULL, NULL,
		    "retention", { r1.id }, { NULL }, 0, NULL, 0 };

		check_event(v, &x, 0);
	}
	jfree(v);
	sweep(0, 0, 1);

	srv_start("--sweep-interval", "0", NULL);
	expect_tok_error(r1.tok[0], "shredded");
	expect_tok_error(r1.tok[1], "shredded");
	expect_error("GET", rec_path(r1.id, ""), K_ADMIN, NULL, 410,
	    "shredded");
	expect_value(r30.tok[0], "email", f[0].value);
	expect_value(rnone.tok[0], "email", f[0].value);
	expect_value(rdef.tok[1], "name", f[1].value);
	expect_value(rheld.tok[0], "email", f[0].value);
	set_hold(rheld.id, 0, "case 9 closed");
	su_srv_stop();

	/* Released, the next sweep takes it. */
	sweep(0, 1, 0);
	/* The default-retention record at six days, r30 at thirty-one. */
	fake_now = T0 + 6 * DAY;
	sweep(0, 1, 0);
	fake_now = T0 + 31 * DAY;
	sweep(1, 1, 0);
	sweep(0, 1, 0);
	/* Without a date (the default is not retroactive): never. */
	fake_now = T0 + 3650 * DAY;
	sweep(0, 0, 0);

	srv_start("--sweep-interval", "0", NULL);
	expect_tok_error(rheld.tok[0], "shredded");
	expect_tok_error(rdef.tok[0], "shredded");
	expect_tok_error(r30.tok[1], "shredded");
	expect_value(rnone.tok[0], "email", f[0].value);
	expect_value(rnone.tok[1], "name", f[1].value);
	su_srv_stop();
	(void)verify_ok();
}
END_TEST

/* Wait up to ms for tok to answer shredded; 0 if it did. */
static int
wait_shredded(const char *tok, int ms)
{
	for (int waited = 0; waited <= ms; waited += 100) {
		struct jv *v = detok(K_READER, "service", NULL, &tok, 1);
		const struct jv *e = jget(su_result(v, tok), "error");
		int gone = e != NULL && jstr(e, "code") != NULL &&
		    strcmp(jstr(e, "code"), "shredded") == 0;

		jfree(v);
		if (gone)
			return 0;
		(void)usleep(100000);
	}
	return -1;
}

/* The server's own sweep, every --sweep-interval seconds. */
START_TEST(test_retention_server_sweep)
{
	static const struct su_fv f[] = { { "name", "zq.swp-name-1401" } };
	struct rec r1, rh, rk;
	struct su_run run;

	srv_start_plain();
	put(f, 1, 0, 1, &r1);
	put(f, 1, 0, 1, &rh);
	put(f, 1, 0, 30, &rk);
	set_hold(rh.id, 1, "case 11");
	su_srv_stop();

	fake_now = T0 + 2 * DAY;
	srv_start("--sweep-interval", "1", NULL);
	ck_assert_msg(wait_shredded(r1.tok[0], 10000) == 0,
	    "the server did not sweep a record past its date");
	expect_value(rh.tok[0], "name", f[0].value);
	expect_value(rk.tok[0], "name", f[0].value);
	/* Released while it runs: a later round of the sweep takes it. */
	set_hold(rh.id, 0, "case 11 closed");
	ck_assert_msg(wait_shredded(rh.tok[0], 10000) == 0,
	    "the periodic sweep did not take a released record");
	expect_value(rk.tok[0], "name", f[0].value);
	su_srv_stop();

	(void)verify_ok();
	cli(&run, "audit", "export", NULL);
	ck_assert_exit(&run, 0);
	ck_assert_uint_eq(export_count(&run, "\"actor\":\"retention\","
	    "\"action\":\"retention.sweep\""), 2);
	su_run_free(&run);
}
END_TEST

static TCase *
tcase(Suite *s, const char *name, int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, case_setup, su_case_teardown);
	tcase_add_checked_fixture(tc, setup, su_srv_teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

/* API key expiry and rotation. */

/* GET /v1/audit?limit=1 with secret: its status; *body its answer. */
static long
audit_with(const char *secret, char **body)
{
	char auth[KEY_BUF + 8];
	struct su_resp r;
	long st;

	(void)snprintf(auth, sizeof(auth), "Bearer %s", secret);
	req_auth(&r, "GET", "/v1/audit?limit=1", K_RAW, auth, NULL);
	st = r.status;
	if (body != NULL)
		ck_assert_ptr_nonnull(*body = strdup(r.body.p));
	su_resp_free(&r);
	return st;
}

/* The secret is refused exactly as an unknown key is. */
static void
expect_refused(const char *secret, const char *what)
{
	char *got, *unknown;

	ck_assert_msg(audit_with(secret, &got) == 401, "%s: [%s]", what, got);
	ck_assert_int_eq(audit_with("pvk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAA", &unknown), 401);
	ck_assert_msg(strcmp(got, unknown) == 0, "%s: [%s], unknown [%s]",
	    what, got, unknown);
	free(got);
	free(unknown);
}

/* piivault apikey rotate name [--overlap-hours h]: the new secret. */
static void
rotate_key(char out[static KEY_BUF], const char *name, const char *hours)
{
	struct su_run r;

	if (hours != NULL)
		cli(&r, "apikey", "rotate", name, "--overlap-hours", hours,
		    NULL);
	else
		cli(&r, "apikey", "rotate", name, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(r.outlen == VAULT_APIKEY_SECRET_LEN + 1 &&
	    strncmp(r.out, "pvk_", 4) == 0, "[%s]", r.out);
	memcpy(out, r.out, VAULT_APIKEY_SECRET_LEN);
	out[VAULT_APIKEY_SECRET_LEN] = '\0';
	su_run_free(&r);
}

/* apikey list --json: the answer (free()). */
static char *
key_list(void)
{
	struct su_run r;
	char *s;

	cli(&r, "apikey", "list", "--json", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(s = strdup(r.out));
	su_run_free(&r);
	return s;
}

#define HOUR	3600ull

/*
 * --expires-days: the key works until created + N days, then gets 401 as
 * an unknown key.  apikey rotate: the new secret works, the old one until
 * the overlap's end, then 401; the rotated key keeps its rights and its
 * lifetime from the rotation; revoking it revokes both secrets at once.
 */
START_TEST(test_apikey_expiry_rotation)
{
	static const char *const bad[][6] = {
		{ "apikey", "create", "--name", "x", "--expires-days", "0" },
		{ "apikey", "create", "--name", "x", "--expires-days", "3651" },
		{ "apikey", "create", "--name", "x", "--expires-days", "1d" },
		{ "apikey", "rotate", "rot", "--overlap-hours", "721", NULL },
		{ "apikey", "rotate", "rot", "--overlap-hours", "-1", NULL },
		{ "apikey", "rotate", NULL, NULL, NULL, NULL },
	};
	const struct su_apikey ka = { "exp", "auditor", NULL, NULL, NULL };
	const struct su_apikey kb = { "rot", "auditor", NULL, NULL, NULL };
	const char *const days2[] = { "--expires-days", "2", NULL };
	const char *const days10[] = { "--expires-days", "10", NULL };
	char exp_key[KEY_BUF], old[KEY_BUF], n1[KEY_BUF], n2[KEY_BUF];
	char want[256], *list, *before;
	struct su_run r;

	su_apikey_create(exp_key, child_env(), days2, &ka);
	su_apikey_create(old, child_env(), days10, &kb);
	before = key_list();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *args[10] = { NULL };
		size_t n = 0;

		for (size_t j = 0; j < 6 && bad[i][j] != NULL; j++)
			args[n++] = bad[i][j];
		if (strcmp(bad[i][1], "create") == 0) {
			args[n++] = "--role";
			args[n++] = "auditor";
		}
		su_cli_argv(&r, child_env(), args);
		ck_assert_msg(r.status == 2, "%zu: exit %d [%s]", i, r.status,
		    r.err);
		su_run_free(&r);
	}
	cli(&r, "apikey", "rotate", "nosuch", NULL);
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	/* Refused input changed nothing. */
	list = key_list();
	ck_assert_str_eq(list, before);
	free(list);
	free(before);
	(void)snprintf(want, sizeof(want), "\"name\":\"exp\",\"role\":"
	    "\"auditor\",\"reveal\":\"plain\",\"revoked\":false,\"state\":"
	    "\"active\",\"created\":1700000000,\"expires\":1700172800,"
	    "\"expires_days\":2,\"replaced_until\":null");
	list = key_list();
	ck_assert_msg(strstr(list, want) != NULL, "[%s]", list);
	free(list);

	/* Rotated at T0 with a 2-hour overlap: both secrets work. */
	rotate_key(n1, "rot", "2");
	ck_assert_str_ne(n1, old);
	srv_start_plain();
	ck_assert_int_eq(audit_with(exp_key, NULL), 200);
	ck_assert_int_eq(audit_with(old, NULL), 200);
	ck_assert_int_eq(audit_with(n1, NULL), 200);
	su_srv_stop();
	list = key_list();
	ck_assert_msg(strstr(list, "\"state\":\"rotated\",\"created\":"
	    "1700000000,\"expires\":1700864000,"
	    "\"expires_days\":10,\"replaced_until\":1700007200")
	    != NULL, "[%s]", list);
	free(list);

	/* The last second of the overlap, then the first one past it. */
	fake_now = T0 + 2 * HOUR - 1;
	srv_start_plain();
	ck_assert_int_eq(audit_with(old, NULL), 200);
	su_srv_stop();
	fake_now = T0 + 2 * HOUR;
	srv_start_plain();
	expect_refused(old, "old secret after the overlap");
	ck_assert_int_eq(audit_with(n1, NULL), 200);
	ck_assert_int_eq(audit_with(exp_key, NULL), 200);
	su_srv_stop();

	/* Two days on, the first key has expired; the rotated one has not. */
	fake_now = T0 + 2 * DAY;
	srv_start_plain();
	expect_refused(exp_key, "expired key");
	ck_assert_int_eq(audit_with(n1, NULL), 200);
	su_srv_stop();
	list = key_list();
	ck_assert_msg(strstr(list, "\"name\":\"exp\",\"role\":\"auditor\","
	    "\"reveal\":\"plain\",\"revoked\":false,\"state\":\"expired\"") !=
	    NULL, "[%s]", list);
	free(list);

	/*
	 * Rotated again (default overlap, a day): the new secret's lifetime
	 * counts from now; the old secret past its overlap is dropped.
	 */
	rotate_key(n2, "rot", NULL);
	list = key_list();
	ck_assert_msg(strstr(list, "\"state\":\"active\",\"created\":"
	    "1700172800,\"expires\":1701036800") !=
	    NULL && strstr(list, "\"replaced_until\":1700259200")
	    != NULL && strstr(list, "1700007200") == NULL, "[%s]",
	    list);
	free(list);
	srv_start_plain();
	ck_assert_int_eq(audit_with(n1, NULL), 200);
	ck_assert_int_eq(audit_with(n2, NULL), 200);
	expect_refused(old, "dropped secret");
	/* Revoked while the server runs: both secrets at once. */
	cli(&r, "apikey", "revoke", "rot", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	expect_refused(n1, "revoked old secret");
	expect_refused(n2, "revoked new secret");
	su_srv_stop();
	cli(&r, "apikey", "rotate", "rot", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "revoked"));
	su_run_free(&r);
	/* An expired key may be rotated: that renews it. */
	rotate_key(n1, "exp", "0");
	srv_start_plain();
	ck_assert_int_eq(audit_with(n1, NULL), 200);
	expect_refused(exp_key, "expired old secret");
	ck_assert_ptr_null(strstr(su_server_log(), n1));
	ck_assert_ptr_null(strstr(su_server_log(), exp_key));
}
END_TEST

static Suite *
policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc;

	tc = tcase(s, "audit", TIMEOUT);
	tcase_add_test(tc, test_audit_workload);
	tcase_add_test(tc, test_audit_refusal_names_record);
	tcase_add_test(tc, test_audit_unrouted_requests);
	tcase_add_test(tc, test_audit_items);
	tcase_add_test(tc, test_audit_cli_get);
	tcase_add_test(tc, test_audit_paging_ends);
	tcase_add_test(tc, test_audit_archived_http);
	tcase_add_test(tc, test_audit_page_bounded);
	tcase_add_test(tc, test_audit_unavailable_503);

	tc = tcase(s, "tamper", TIMEOUT);
	tcase_add_test(tc, test_tamper_edit);
	tcase_add_test(tc, test_tamper_delete);
	tcase_add_test(tc, test_tamper_reorder);
	tcase_add_test(tc, test_tamper_insert);

	tc = tcase(s, "person", TIMEOUT);
	tcase_add_test(tc, test_access_request);
	tcase_add_test(tc, test_correction);
	tcase_add_test(tc, test_deletion_and_hold);
	tcase_add_test(tc, test_reasons_sealed_at_rest);
	tcase_add_test(tc, test_consent);
	tcase_add_test(tc, test_request_limit_access);
	tcase_add_test(tc, test_request_limit_concurrent);
	tcase_add_test(tc, test_request_refusals_not_counted);
	tcase_add_test(tc, test_record_metadata);

	tc = tcase(s, "apikey", TIMEOUT);
	tcase_add_test(tc, test_apikey_expiry_rotation);

	tc = tcase(s, "retention", TIMEOUT);
	tcase_add_test(tc, test_retention_sweep_cli);
	tcase_add_test(tc, test_retention_server_sweep);
	return s;
}

int
main(void)
{
	return su_suite_main("check_policy", policy_suite());
}
