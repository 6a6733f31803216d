/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_api.c: the JSON codec of api.h: parsing records, quoting
 * strings, the put result and the error codes; and, white-box, the turns
 * api_handle gives large bodies.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pv.h"
#include "api_int.h"	/* white-box: api_handle and its gate */
#include "vault.h"
#include "testutil.h"

/* Something no successful parse ever writes to *out. */
#define SENTINEL	((struct api_record *)&sentinel_store)
static int sentinel_store;

/* The field of r named name, or NULL. */
static const struct vault_field *
field_named(const struct vault_record_in *in, const char *name)
{
	for (size_t i = 0; i < in->nfields; i++)
		if (in->fields[i].namelen == strlen(name) &&
		    memcmp(in->fields[i].name, name, strlen(name)) == 0)
			return &in->fields[i];
	return NULL;
}

/* Parse text (len strlen(text)); expect failure rc; return err. */
static void
parse_fails(const char *text, size_t len, pv_status want,
    char err[static API_ERR_MAX])
{
	struct api_record *r = SENTINEL;
	pv_status rc;

	memset(err, 'X', API_ERR_MAX);
	rc = api_record_parse(text, len, &r, err);
	ck_assert_msg(rc == want, "parse of [%.60s]: status %d (%s), want %d",
	    text, rc, pv_strerror(rc), want);
	ck_assert_msg(r == SENTINEL, "out written on failure");
	ck_assert_msg(memchr(err, '\0', API_ERR_MAX) != NULL,
	    "err not NUL-terminated");
	ck_assert_msg(err[0] != '\0', "no error text for [%.60s]", text);
}

/* Build {"fields":{"f0":"v0",...}} with n fields, malloc'd. */
static char *
members(size_t n, const char *prefix)
{
	struct pv_buf b;
	char *s;

	pv_buf_init(&b, 1u << 16);
	ck_assert_int_eq(pv_buf_add(&b, "{\"fields\":{", 11), PV_OK);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(pv_buf_printf(&b, "%s\"f%zu\":\"%s%zu\"",
		    i ? "," : "", i, prefix, i), PV_OK);
	ck_assert_int_eq(pv_buf_add(&b, "}}", 2), PV_OK);
	ck_assert_ptr_nonnull(s = strdup(b.p));
	pv_buf_cleanup(&b);
	return s;
}

START_TEST(test_parse_ok)
{
	static const char text[] = "{\"fields\":{\"email\":\"a@b.example\","
	    "\"name\":\"Ada\"},\"consent\":{\"marketing\":true},"
	    "\"retention_days\":30}";
	const struct vault_record_in *in;
	const struct vault_field *f;
	struct api_record *r = NULL;
	char err[API_ERR_MAX];

	ck_assert_int_eq(api_record_parse(text, strlen(text), &r, err), PV_OK);
	ck_assert_ptr_nonnull(r);
	in = api_record_in(r);
	ck_assert_uint_eq(in->nfields, 2);
	ck_assert_int_eq(in->marketing, 1);
	ck_assert_uint_eq(in->retention_days, 30);
	ck_assert_ptr_nonnull(f = field_named(in, "email"));
	ck_assert_uint_eq(f->namelen, 5);
	ck_assert_uint_eq(f->len, 11);
	ck_assert_mem_eq(f->value, "a@b.example", 11);
	ck_assert_ptr_nonnull(f = field_named(in, "name"));
	ck_assert_uint_eq(f->namelen, 4);
	ck_assert_uint_eq(f->len, 3);
	ck_assert_mem_eq(f->value, "Ada", 3);
	/* The CLI prints tokens in the order the fields came. */
	ck_assert_mem_eq(in->fields[0].name, "email", 5);
	ck_assert_mem_eq(in->fields[1].name, "name", 4);
	api_record_free(r);
	api_record_free(NULL);
}
END_TEST

/* Only len bytes are read: the text need not be NUL-terminated. */
START_TEST(test_parse_len_bounded)
{
	static const char text[] = "{\"fields\":{\"name\":\"Ada\"}}{garbage";
	struct api_record *r = NULL;
	char err[API_ERR_MAX];

	ck_assert_int_eq(api_record_parse(text, 25, &r, err), PV_OK);
	ck_assert_uint_eq(api_record_in(r)->nfields, 1);
	ck_assert_uint_eq(api_record_in(r)->fields[0].len, 3);
	api_record_free(r);
}
END_TEST

#define REC(f)	"{\"fields\":{" f "}}"

static const char *const json_bad[] = {
	"{\"fields\":{\"email\":",		/* malformed */
	REC("\"email\" \"a@b.example\""),	/* malformed */
	"",					/* empty */
	"[" REC("\"email\":\"a@b.example\"") "]",	/* array */
	"\"a@b.example\"",			/* a bare string */
	REC("\"name\":\"Ada\",\"name\":\"Bob\""),	/* duplicate key */
	REC("\"name\":\"Ada\"") " x",		/* trailing garbage */
	REC("\"name\":\"Ada\"") "}",		/* trailing garbage */
	REC("\"name\":\"Ada\"") "{}",		/* two documents */
	REC("\"name\":\"a\\u0000b\""),		/* NUL in a value */
	REC("\"na\\u0000me\":\"Ada\""),		/* NUL in a name */
	REC("\"name\":\"\\ud83d\""),		/* lone surrogate */
	REC("\"name\":\"\xff\""),		/* not UTF-8 */
	REC("\"name\":\"\xc3\""),		/* truncated UTF-8 */
};

START_TEST(test_parse_rejects_json)
{
	char err[API_ERR_MAX];

	parse_fails(json_bad[_i], strlen(json_bad[_i]), PV_EJSON, err);
}
END_TEST

/* JSON, but not a record: POST /v1/records's codes. */
static const struct {
	const char	*text;
	pv_status	 want;
	const char	*err;	/* exactly, or NULL */
} shape_bad[] = {
	/* The CLI's shape before v1: the API's is the only one. */
	{ "{\"email\":\"a@b.example\"}", PV_EMEMBER,
	    "record: unknown member \"email\"" },
	{ "{\"Name\":\"Ada\"}", PV_EMEMBER, "record: unknown member" },
	{ REC("\"name\":1"), PV_EVALUE,
	    "field name: value must be a string" },
	{ REC("\"Name\":1.5"), PV_EVALUE,
	    "field at index 0: value must be a string" },
	{ REC("\"name\":\"Ada\",\"city\":true"), PV_EVALUE,
	    "field city: value must be a string" },
	{ REC("\"name\":null"), PV_EVALUE, NULL },
	{ REC("\"name\":{\"first\":\"Ada\"}"), PV_EVALUE, NULL },
	{ REC("\"name\":[\"Ada\"]"), PV_EVALUE, NULL },
	{ "{\"fields\":[]}", PV_EVALUE, NULL },
	{ REC("\"name\":\"Ada\"") ",\"consent\":true}", PV_EJSON, NULL },
	{ "{\"fields\":{\"name\":\"Ada\"},\"consent\":{\"marketing\":1}}",
	    PV_EVALUE, "\"marketing\" must be true or false" },
	{ "{\"fields\":{\"name\":\"Ada\"},\"retention_days\":0}",
	    PV_EVALUE, NULL },
};

START_TEST(test_parse_rejects_shape)
{
	char err[API_ERR_MAX];

	parse_fails(shape_bad[_i].text, strlen(shape_bad[_i].text),
	    shape_bad[_i].want, err);
	if (shape_bad[_i].err != NULL)
		ck_assert_str_eq(err, shape_bad[_i].err);
}
END_TEST

/* A raw NUL byte inside the text, counted by len. */
START_TEST(test_parse_rejects_raw_nul)
{
	static const char text[] = REC("\"name\":\"a\0b\"");
	char err[API_ERR_MAX];

	parse_fails(text, sizeof(text) - 1, PV_EJSON, err);
}
END_TEST

START_TEST(test_parse_field_count)
{
	struct api_record *r = NULL;
	char err[API_ERR_MAX], *s;

	s = members(PV_FIELDS_MAX, "v");
	ck_assert_int_eq(api_record_parse(s, strlen(s), &r, err), PV_OK);
	ck_assert_uint_eq(api_record_in(r)->nfields, PV_FIELDS_MAX);
	api_record_free(r);
	free(s);

	s = members(PV_FIELDS_MAX + 1, "v");
	parse_fails(s, strlen(s), PV_ETOOBIG, err);
	free(s);
}
END_TEST

START_TEST(test_parse_body_max)
{
	struct api_record *r = NULL;
	char err[API_ERR_MAX], *s;
	size_t n = (size_t)API_BODY_MAX + 1;

	/* {"fields":{"name":"x"}} padded with spaces to exactly n bytes. */
	ck_assert_ptr_nonnull(s = malloc(n));
	memset(s, ' ', n);
	memcpy(s, REC("\"name\":\"x\""), 23);
	parse_fails(s, n, PV_ETOOBIG, err);
	ck_assert_int_eq(api_record_parse(s, n - 1, &r, err), PV_OK);
	ck_assert_uint_eq(api_record_in(r)->nfields, 1);
	api_record_free(r);
	free(s);
}
END_TEST

START_TEST(test_parse_unicode)
{
	static const char text[] = REC(
	    "\"name\":\"\\u00e9\\u4e2d\\ud83d\\ude00\\u0041\","
	    "\"city\":\"Z\xc3\xbcrich\"");
	const struct vault_field *f;
	struct api_record *r = NULL;
	char err[API_ERR_MAX];

	ck_assert_int_eq(api_record_parse(text, strlen(text), &r, err), PV_OK);
	ck_assert_ptr_nonnull(f = field_named(api_record_in(r), "name"));
	ck_assert_uint_eq(f->len, 10);
	ck_assert_mem_eq(f->value, "\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"
	    "A", 10);
	ck_assert_ptr_nonnull(f = field_named(api_record_in(r), "city"));
	ck_assert_uint_eq(f->len, 7);
	ck_assert_mem_eq(f->value, "Z\xc3\xbcrich", 7);
	api_record_free(r);
}
END_TEST

/*
 * The error text never quotes a value: each of these fails to parse, and
 * the value (SECRETVALUE, or the number) must not be in err.
 */
static const struct {
	const char	*text;
	const char	*secret;
} leaks[] = {
	{ "{\"email\": 12345678}", "12345678" },
	{ "{\"name\":\"ok\",\"phone\":15550100}", "15550100" },
	{ "{\"name\":\"SECRETVALUE\" garbage}", "SECRETVALUE" },
	{ "{\"name\":\"SECRETVALUE\"} garbage", "SECRETVALUE" },
	{ "{\"name\":\"SECRETVALUE\"", "SECRETVALUE" },
	{ "{\"name\":\"SECRETVALUE\",", "SECRETVALUE" },
	{ "[\"SECRETVALUE\"]", "SECRETVALUE" },
	{ "{\"name\":\"SECRETVALUE\",\"name\":\"x\"}", "SECRETVALUE" },
	/* A truncated body: the value runs to the end of the input. */
	{ "{\"name\":\"SECRETVALUE", "SECRETVALUE" },
	/* A pasted multi-line address: a raw newline in the string. */
	{ "{\"address\":\"SECRETVALUE\nLondon\"}", "SECRETVALUE" },
	{ "{\"name\":\"SECRETVALUE\x01\"}", "SECRETVALUE" },
	{ "{\"name\":\"SECRETVALUE\\q\"}", "SECRETVALUE" },
	{ "{\"name\":\"SECRETVALUE\\u0000\"}", "SECRETVALUE" },
	{ "{\"name\":\"SECRETVALUE\xff\"}", "SECRETVALUE" },
	{ "{\"name\":SECRETVALUE}", "SECRETVALUE" },
	{ "{\"name\" \"SECRETVALUE\"}", "SECRETVALUE" },
	{ "\"SECRETVALUE\"", "SECRETVALUE" },
	{ "{\"ssn\":123456789e99999}", "123456789" },
};

START_TEST(test_parse_err_no_value)
{
	struct api_record *r = NULL;
	char err[API_ERR_MAX];

	/* As sent, and as the fields of a record: refused either way. */
	ck_assert_int_ne(api_record_parse(leaks[_i].text,
	    strlen(leaks[_i].text), &r, err), PV_OK);
	ck_assert_msg(strstr(err, leaks[_i].secret) == NULL,
	    "err quotes the value: parse of [%s] gave err [%s]",
	    leaks[_i].text, err);
	{
		struct pv_buf b;

		pv_buf_init(&b, 4096);
		ck_assert_int_eq(pv_buf_printf(&b, "{\"fields\":%s}",
		    leaks[_i].text), PV_OK);
		ck_assert_int_ne(api_record_parse(b.p, b.len, &r, err), PV_OK);
		pv_buf_cleanup(&b);
	}
	ck_assert_msg(strstr(err, leaks[_i].secret) == NULL,
	    "err quotes the value: parse of [%s] gave err [%s]",
	    leaks[_i].text, err);
}
END_TEST

START_TEST(test_parse_err_no_value_toobig)
{
	char err[API_ERR_MAX], *s;

	s = members(PV_FIELDS_MAX + 1, "SECRETVALUE");
	parse_fails(s, strlen(s), PV_ETOOBIG, err);
	ck_assert_ptr_null(strstr(err, "SECRETVALUE"));
	free(s);
}
END_TEST

/* Quote s into a fresh buffer; the caller cleans it up. */
static void
quote(struct pv_buf *b, const char *s, size_t len)
{
	pv_buf_init(b, 1u << 16);
	ck_assert_int_eq(pv_json_quote(b, s, len), PV_OK);
	ck_assert_ptr_nonnull(b->p);
	ck_assert_uint_eq(strlen(b->p), b->len);
}

START_TEST(test_quote_escapes)
{
	static const char in[] = "a\"b\\c\nd\te\x01" "f\rg\x1fh\x7f"
	    " \xc3\xa9\xf0\x9f\x98\x80/";
	static const char want[] = "\"a\\\"b\\\\c\\nd\\te\\u0001f\\rg\\u001fh"
	    "\\u007f \xc3\xa9\xf0\x9f\x98\x80/\"";
	struct pv_buf b;

	quote(&b, in, sizeof(in) - 1);
	ck_assert_str_eq(b.p, want);
	pv_buf_cleanup(&b);

	quote(&b, "", 0);
	ck_assert_str_eq(b.p, "\"\"");
	pv_buf_cleanup(&b);

	/* A NUL inside the (ptr, len) string is escaped, not a terminator. */
	quote(&b, "a\0b", 3);
	ck_assert_str_eq(b.p, "\"a\\u0000b\"");
	pv_buf_cleanup(&b);
}
END_TEST

START_TEST(test_quote_appends)
{
	struct pv_buf b;

	pv_buf_init(&b, 64);
	ck_assert_int_eq(pv_buf_add(&b, "[", 1), PV_OK);
	ck_assert_int_eq(pv_json_quote(&b, "x\ny", 3), PV_OK);
	ck_assert_int_eq(pv_buf_add(&b, "]", 1), PV_OK);
	ck_assert_str_eq(b.p, "[\"x\\ny\"]");
	pv_buf_cleanup(&b);

	/* Past the buffer's maximum: PV_ETOOBIG. */
	pv_buf_init(&b, 8);
	ck_assert_int_eq(pv_json_quote(&b, "0123456789", 10), PV_ETOOBIG);
	pv_buf_cleanup(&b);
}
END_TEST

/* Quoting then parsing gives back the same bytes. */
START_TEST(test_quote_round_trip)
{
	static const char *const samples[] = {
		"plain",
		" Ada@B.example",
		"quote \" backslash \\ slash /",
		"line\nfeed\ttab\rcr\bbs\ffeed",
		"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80 \xe2\x82\xac",
		"\\u0041 is not an escape here",
	};
	char all[127], err[API_ERR_MAX];
	const struct vault_field *f;
	struct api_record *r;
	struct pv_buf b;

	for (size_t i = 0; i < sizeof(all); i++)
		all[i] = (char)(i + 1);		/* every byte 0x01..0x7f */
	for (size_t i = 0; i <= sizeof(samples) / sizeof(samples[0]); i++) {
		const char *s = i < sizeof(samples) / sizeof(samples[0]) ?
		    samples[i] : all;
		size_t len = s == all ? sizeof(all) : strlen(s);

		pv_buf_init(&b, 1u << 16);
		ck_assert_int_eq(pv_buf_add(&b, "{\"fields\":{\"k\":", 15),
		    PV_OK);
		ck_assert_int_eq(pv_json_quote(&b, s, len), PV_OK);
		ck_assert_int_eq(pv_buf_add(&b, "}}", 2), PV_OK);
		r = NULL;
		ck_assert_msg(api_record_parse(b.p, b.len, &r, err) == PV_OK,
		    "quoted sample %zu does not parse: %s", i, err);
		ck_assert_ptr_nonnull(f = field_named(api_record_in(r), "k"));
		ck_assert_uint_eq(f->len, len);
		ck_assert_mem_eq(f->value, s, len);
		api_record_free(r);
		pv_buf_cleanup(&b);
	}
}
END_TEST

START_TEST(test_put_result)
{
	/* Names need not be NUL-terminated: "emailXYZ" with namelen 5. */
	static const struct vault_field fields[] = {
		{ "emailXYZ", 5, "a@b.example", 11 },
		{ "name", 4, "Ada", 3 },
		{ "phone", 5, "+1 555 0100", 11 },
	};
	static const char want[] = "{\"id\":\"rec_AAAAAAAAAAAAAAAAAAAAAA\","
	    "\"tokens\":{\"email\":\"tok_BBBBBBBBBBBBBBBBBBBBBB\","
	    "\"name\":\"tok_CC-CCCCCCCCCCCCCCCCCCC\","
	    "\"phone\":\"tok_DD_DDDDDDDDDDDDDDDDDDD\"}}";
	char tokens[3][VAULT_ID_STRLEN + 1] = {
		"tok_BBBBBBBBBBBBBBBBBBBBBB",
		"tok_CC-CCCCCCCCCCCCCCCCCCC",
		"tok_DD_DDDDDDDDDDDDDDDDDDD",
	};
	struct vault_record_in in = { fields, 3, 0, 0 };
	struct vault_put_result res;
	struct pv_json j;
	struct pv_buf b;

	memset(&res, 0, sizeof(res));
	res.status = PV_OK;
	memcpy(res.id, "rec_AAAAAAAAAAAAAAAAAAAAAA", VAULT_ID_STRLEN + 1);
	res.tokens = tokens;
	pv_buf_init(&b, 4096);
	pv_json_init(&j, &b);
	api_json_put_result(&j, &in, &res);
	ck_assert_int_eq(pv_json_end(&j), PV_OK);
	ck_assert_str_eq(b.p, want);
	ck_assert_uint_eq(b.len, strlen(want));
	pv_buf_cleanup(&b);
}
END_TEST

START_TEST(test_error_code)
{
	ck_assert_str_eq(api_error_code(PV_ENOTFOUND), "not_found");
	ck_assert_str_eq(api_error_code(PV_ESHREDDED), "shredded");
	ck_assert_str_eq(api_error_code(PV_EFIELD), "invalid_field");
	ck_assert_str_eq(api_error_code(PV_ETOKEN), "invalid_token");
	ck_assert_str_eq(api_error_code(PV_EJSON), "invalid_json");
	ck_assert_str_eq(api_error_code(PV_ETOOBIG), "too_large");
	ck_assert_str_eq(api_error_code(PV__COUNT), "internal");
	ck_assert_str_eq(api_error_code((pv_status)1000), "internal");
	/* Every status has a code of [a-z_]. */
	for (int i = 0; i <= PV__COUNT; i++) {
		const char *c = api_error_code((pv_status)i);

		ck_assert_ptr_nonnull(c);
		ck_assert_uint_gt(strlen(c), 0);
		ck_assert_msg(strspn(c, "abcdefghijklmnopqrstuvwxyz_") ==
		    strlen(c), "status %d: code \"%s\"", i, c);
	}
}
END_TEST

/*
 * A large body waits for a turn to be decoded, and no longer than
 * API_LARGE_WAIT: then 503 with Retry-After, logged, nothing stored.
 * With a turn free, the same request is served and the turn given back.
 */
static char adir[PATH_MAX], akey[PATH_MAX + 16], adata[PATH_MAX + 16];

static void
admission_setup(void)
{
	tu_tmpdir(adir);
	(void)snprintf(akey, sizeof(akey), "%s/root.key", adir);
	(void)snprintf(adata, sizeof(adata), "%s/data", adir);
	ck_assert_int_eq(vault_key_file_create(akey), PV_OK);
}

static void
admission_teardown(void)
{
	tu_rmrf(adir);
}

static void
handle(struct api_server *s, const char *auth, const char *body,
    struct api_resp *rs)
{
	struct api_req rq;

	memset(&rq, 0, sizeof(rq));
	rq.method = "POST";
	rq.path = "/v1/records/batch";
	rq.auth = auth;
	rq.ctype = "application/json";
	rq.body = body;
	rq.len = strlen(body);
	memset(rs, 0, sizeof(*rs));
	pv_buf_init(&rs->body, 1u << 20);
	api_handle(s, &rq, rs);
}

START_TEST(test_large_body_turns)
{
	struct vault_opts o = { .data_dir = adata, .unlock.key_file = akey };
	struct vault_apikey spec = { .name = "w", .role = VAULT_ROLE_WRITER,
	    .reveal = VAULT_REVEAL_PLAIN };
	char secret[VAULT_APIKEY_SECRET_LEN + 1], auth[128], *body;
	struct vault_audit_entry *e = NULL;
	struct vault_info info;
	struct api_server *s;
	struct api_resp rs;
	size_t n = 0, len = 0, cap = 64u << 10;
	uint64_t last = 0;
	struct vault *v;
	time_t t0;
	int left;

	ck_assert_int_eq(vault_create(&o, &v), PV_OK);
	ck_assert_int_eq(vault_apikey_create(v, &spec, secret), PV_OK);
	(void)snprintf(auth, sizeof(auth), "Bearer %s", secret);
	ck_assert_ptr_nonnull(body = malloc(cap));
	len += (size_t)snprintf(body, cap, "{\"records\":[");
	for (int i = 0; i < 500; i++)
		len += (size_t)snprintf(body + len, cap - len, "%s{\"fields\":"
		    "{\"name\":\"Waiting Person %03d\"}}", i ? "," : "", i);
	len += (size_t)snprintf(body + len, cap - len, "]}");
	ck_assert_uint_gt(len, API_LARGE_BODY);
	ck_assert_uint_lt(len, cap);

	ck_assert_ptr_nonnull(s = calloc(1, sizeof(*s)));
	s->vault = v;
	s->limits.body_max = 1u << 20;
	s->limits.fields_max = 64;
	s->limits.value_max = 4096;
	s->limits.batch_max = 1000;
	s->limits.large = 1;
	ck_assert_int_eq(sem_init(&s->large, 0, 0), 0);	/* all taken */

	t0 = time(NULL);
	handle(s, auth, body, &rs);
	ck_assert_int_ge(time(NULL) - t0, API_LARGE_WAIT - 1);
	ck_assert_uint_eq(rs.status, 503);
	ck_assert_uint_eq(rs.retry_after, 1);
	ck_assert_ptr_nonnull(strstr(rs.body.p, "\"unavailable\""));
	pv_buf_cleanup(&rs.body);
	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	free(info.keys);
	ck_assert_uint_eq(info.records, 0);
	ck_assert_int_eq(vault_audit_read(v, 0, VAULT_AUDIT_END_NONE, 100, &e,
	    &n, &last, NULL), PV_OK);
	ck_assert_uint_ge(n, 1);
	ck_assert_str_eq(e[n - 1].action, "records.batch");
	ck_assert_int_eq(e[n - 1].ok, 0);
	vault_audit_entries_free(e, n);

	/* A turn free: served, and the turn is back afterwards. */
	ck_assert_int_eq(sem_post(&s->large), 0);
	handle(s, auth, body, &rs);
	ck_assert_uint_eq(rs.status, 200);
	pv_buf_cleanup(&rs.body);
	ck_assert_int_eq(sem_getvalue(&s->large, &left), 0);
	ck_assert_int_eq(left, 1);
	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	free(info.keys);
	ck_assert_uint_eq(info.records, 500);

	(void)sem_destroy(&s->large);
	free(s);
	free(body);
	vault_close(v);
}
END_TEST

static Suite *
api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, test_parse_ok);
	tcase_add_test(tc, test_parse_len_bounded);
	tcase_add_loop_test(tc, test_parse_rejects_json, 0,
	    (int)(sizeof(json_bad) / sizeof(json_bad[0])));
	tcase_add_loop_test(tc, test_parse_rejects_shape, 0,
	    (int)(sizeof(shape_bad) / sizeof(shape_bad[0])));
	tcase_add_test(tc, test_parse_rejects_raw_nul);
	tcase_add_test(tc, test_parse_field_count);
	tcase_add_test(tc, test_parse_body_max);
	tcase_add_test(tc, test_parse_unicode);
	tcase_add_loop_test(tc, test_parse_err_no_value, 0,
	    (int)(sizeof(leaks) / sizeof(leaks[0])));
	tcase_add_test(tc, test_parse_err_no_value_toobig);
	suite_add_tcase(s, tc);

	tc = tcase_create("encode");
	tcase_add_test(tc, test_quote_escapes);
	tcase_add_test(tc, test_quote_appends);
	tcase_add_test(tc, test_quote_round_trip);
	tcase_add_test(tc, test_put_result);
	tcase_add_test(tc, test_error_code);
	suite_add_tcase(s, tc);

	tc = tcase_create("admission");
	tcase_add_checked_fixture(tc, admission_setup, admission_teardown);
	tcase_set_timeout(tc, 4 * API_LARGE_WAIT);
	tcase_add_test(tc, test_large_body_turns);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	api_init();
	return tu_run(api_suite());
}
