/* SPDX-License-Identifier: Apache-2.0 */
/*
 * httputil.h: the fixture of the check_http_* suites, which drive the
 * HTTP API over real HTTP.  Each test makes a vault in a fresh directory
 * with the real binary (PIIVAULT_BIN): piivault init, API keys from
 * piivault apikey create (keys[], one per K_*), then piivault serve on a
 * port the kernel picks.  The test talks to it with libcurl and stops it
 * with SIGTERM, and the server must then exit 0 (in the sanitizer build
 * that also means "nothing leaked").
 *
 * The names keep no prefix, as they read in the tests; only the
 * check_http_* suites include this header.  Everything asserts with
 * check unless it says "threads call it".
 */
#ifndef HTTPUTIL_H
#define HTTPUTIL_H

#include <stddef.h>

#include <check.h>

#include "pv.h"
#include "vault.h"
#include "srvutil.h"

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

extern char keys[K__COUNT][KEY_BUF];

/* piivault args... (NULL-terminated) to its end; su_run_free r after. */
#define cli(r, ...)	su_cli((r), NULL, __VA_ARGS__)

#define ck_assert_exit(r, code) ck_assert_msg((r)->status == (code),	\
	"exit %d, want %d; stdout [%s] stderr [%s]", (r)->status,	\
	(code), (r)->out, (r)->err)

/* piivault apikey create ...; the secret it printed goes to out. */
void	apikey_create(char out[static KEY_BUF], const char *name,
    const char *role, const char *purposes, const char *fields,
    const char *reveal);

/* Start piivault serve with extra (NULL-terminated, after "serve"). */
void	srv_start_args(const char *const *extra);

/* Start piivault serve --listen 127.0.0.1:0. */
void	srv_start(void);

/*
 * A request to the running server.  key: an index in keys, K_NONE, or
 * K_RAW with auth the whole Authorization value.  ctype NULL sends
 * application/json with a body; "" sends no Content-Type at all.
 */
void	req_auth(struct su_resp *r, const char *method, const char *path,
    int key, const char *auth, const char *ctype, const char *body,
    size_t len);

void	req(struct su_resp *r, const char *method, const char *path, int key,
    const char *ctype, const char *body);

void	post(struct su_resp *r, const char *path, int key, const char *body);

#define assert_status(r, want) ck_assert_msg((r)->status == (want),	\
	"status %ld, want %d: [%.600s]", (r)->status, (int)(want),	\
	(r)->body.p)

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
int	rec_from_json(const struct jv *v, struct rec *out, char *why,
    size_t whylen);

/* The token of field name in r. */
const char	*tok_of(const struct rec *r, const char *name);

/* POST /v1/records body as the writer: 201, and its id and tokens. */
void	put_raw(const char *body, struct rec *out);

/* Store fields; the answer must name exactly these fields, in order. */
void	put(const struct su_fv *f, size_t n, int consent, int days,
    struct rec *out);

/* The detokenize body for n tokens. */
void	detok_body(struct pv_buf *b, const char *purpose, const char *reason,
    const char *const *toks, size_t n);

/*
 * POST /v1/detokenize as key: 200, and the answer, whose only member is
 * "results", an array of one item per string sent, in order, duplicates
 * kept, each echoing its "token" if and only if it is of a token's form.
 */
struct jv	*detok(int key, const char *purpose, const char *reason,
    const char *const *toks, size_t n);

/*
 * tok was answered {"field":field,"masked":masked} and, when psn is not
 * NULL, a pseudonym, copied there; never a value.
 */
void	assert_masked(const struct jv *doc, const char *tok, const char *field,
    const char *masked, char *psn);

/* GET /metrics, no key: its text (free()). */
char	*metrics(void);

/* The value of series (name and labels, exactly) in text, or -1. */
long long	metric(const char *text, const char *series);

/* piivault_records_stored now. */
long long	stored(void);

/*
 * Wait (a request's count is taken when it completes, which may be just
 * after its answer arrived) until series reads want; the last text.
 */
char	*metrics_until(const char *series, long long want);

/* Neither the answer nor the server's log holds secret. */
void	assert_not_leaked(const struct su_resp *r, const char *secret);

/*
 * r is status st with {"error":{"code":code,"message":"…"}}, exactly,
 * and holds nothing of secret.
 */
void	assert_error(const struct su_resp *r, long st, const char *code,
    const char *secret);

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

void	expect_bad(const struct bad *b, size_t i);

void	expect_all_bad(const struct bad *b, size_t n);

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* A valid record body with a value that must never come back. */
#define GOOD_REC	"{\"fields\":{\"email\":\"zq-good-7731@x.example\"}}"
#define GOOD_BATCH	"{\"records\":[" GOOD_REC "]}"
#define GOOD_DETOK	"{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"]," \
			"\"purpose\":\"service\"}"

#define GOOD_LOOKUP	"{\"field\":\"email\",\"value\":" \
			"\"zq-look-7731@x.example\",\"purpose\":\"service\"}"

/* POST /v1/lookup as key: the matches, each checked to be well formed. */
struct jv	*lookup(int key, const char *field, const char *value);

void	assert_one_match(const struct jv *v, const char *id, const char *tok);

/* Connect to the server over a plain socket; the fd. */
int	raw_connect(void);

/*
 * A test case of suite s: name, with the test case's directory
 * (su_case_setup) and, when fixture, the vault, keys and server of
 * setup/teardown; timeout in seconds.
 */
/*
 * Extra serve options of srv_start (and so of the fixture's server), or
 * NULL; a suite that drives load from one key sets {"--rate-limit", "0"}.
 */
extern const char *const *srv_default_extra;
TCase	*http_tcase(Suite *s, const char *name, int fixture, int timeout);

#endif /* HTTPUTIL_H */
