/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_http_errors.c: the error answers of the API: every malformed,
 * unauthenticated, forbidden, unknown, oversized, mistyped or unprocessable
 * request gets its status and {"error":{"code":…}}, holds nothing of what it
 * carried, and changes nothing.
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
	ck_assert_ptr_nonnull(body = malloc(sizeof(lv) + 5000 + 40));
	memcpy(body, lv, sizeof(lv) - 1);
	memset(body + sizeof(lv) - 1, 'c', 5000);
	memcpy(body + sizeof(lv) - 1 + 5000, "@x.example\",\"purpose\":"
	    "\"service\"}", 33);
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
		  "{\"purpose\":\"service\","
		  "\"field\":\"name\",\"value\":\"zq-f-4406\"}", 422,
		  "invalid_field", "zq-f-4406" },
		{ "POST", "/v1/lookup", K_WRITER, NULL, NULL,
		  "{\"purpose\":\"service\","
		  "\"field\":\"Bad Field\",\"value\":\"zq-f-4407\"}", 422,
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
		  "{\"purpose\":\"service\","
		  "\"field\":\"email\"}", 422, "invalid_value", NULL },
		{ "POST", "/v1/lookup", K_READER, NULL, NULL,
		  "{\"purpose\":\"service\","
		  "\"field\":\"phone\",\"value\":5550100}", 422,
		  "invalid_value", NULL },
		{ "POST", "/v1/lookup", K_WRITER, NULL, NULL,
		  "{\"purpose\":\"service\","
		  "\"field\":null,\"value\":\"zq-v-4435@x.example\"}", 422,
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
		  "{\"purpose\":\"service\","
		  "\"field\":\"email\",\"value\":\"zq-v-4415\"}", 422,
		  "invalid_value", "zq-v-4415" },
		{ "POST", "/v1/lookup", K_WRITER, NULL, NULL,
		  "{\"purpose\":\"service\","
		  "\"field\":\"phone\",\"value\":\"zq-v-4416\"}", 422,
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
		  "{\"purpose\":\"service\","
		  "\"field\":\"email\",\"value\":\"zq-m-4426@x.example\","
		  "\"limit\":1}", 422, "unknown_member", "zq-m-4426" },
	};

	expect_all_bad(bad, NELEM(bad));
}
END_TEST

/*
 * Free-text reasons (detokenize, legal hold, deletion) that are blank or
 * only invisible characters (white space, controls, zero-width and other
 * format characters) are 422 reason_required, and change nothing.
 */
START_TEST(test_err_reason_invisible)
{
#define DT	"{\"tokens\":[\"tok_AAAAAAAAAAAAAAAAAAAAAA\"],\"purpose\":"
#define REC	"/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA"
	static const struct bad bad[] = {
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  DT "\"legal\",\"reason\":\" \\t\\r\\n\"}", 422,
		  "reason_required", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  DT "\"legal\",\"reason\":\"\\u200b\\u200c\\u200d\"}", 422,
		  "reason_required", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  DT "\"legal\",\"reason\":\"\\u200e\\u200f\\u2060\\ufeff\"}",
		  422, "reason_required", NULL },
		{ "POST", "/v1/detokenize", K_READER, NULL, NULL,
		  DT "\"service\",\"reason\":\"\\u00a0\\u3000\\u2800\"}",
		  422, "reason_required", NULL },
		{ "PUT", REC "/legal-hold", K_ADMIN, NULL, NULL,
		  "{\"hold\":true,\"reason\":\"\\u200b\"}", 422,
		  "reason_required", NULL },
		{ "PUT", REC "/legal-hold", K_ADMIN, NULL, NULL,
		  "{\"hold\":true,\"reason\":\"\\ufeff \\u2061\"}", 422,
		  "reason_required", NULL },
		{ "DELETE", REC "?reason=%E2%80%8B", K_ADMIN, NULL, NULL, NULL,
		  422, "reason_required", NULL },
		{ "DELETE", REC "?reason=%20%09", K_ADMIN, NULL, NULL, NULL,
		  422, "reason_required", NULL },
		{ "DELETE", REC "?reason=", K_ADMIN, NULL, NULL, NULL,
		  422, "reason_required", NULL },
	};
#undef DT
#undef REC
	struct su_resp r;

	expect_all_bad(bad, NELEM(bad));
	/* A visible reason passes that check: the record does not exist. */
	req(&r, "DELETE", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA?reason="
	    "%E2%80%8Bcourt", K_ADMIN, NULL, NULL);
	ck_assert_msg(r.status != 422, "[%s]", r.body.p);
	su_resp_free(&r);
}
END_TEST

static Suite *
http_errors_suite(void)
{
	Suite *s = suite_create("http_errors");
	TCase *tc;

	tc = http_tcase(s, "errors", 1, TIMEOUT);
	tcase_add_test(tc, test_err_invalid_json);
	tcase_add_test(tc, test_err_unauthenticated);
	tcase_add_test(tc, test_err_forbidden);
	tcase_add_test(tc, test_err_not_found_and_method);
	tcase_add_test(tc, test_err_too_large);
	tcase_add_test(tc, test_err_too_large_small_limit);
	tcase_add_test(tc, test_err_media_type);
	tcase_add_test(tc, test_err_unprocessable);
	tcase_add_test(tc, test_err_reason_invisible);
	return s;
}

int
main(void)
{
	return su_suite_main("check_http_errors", http_errors_suite());
}
