/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_http_records.c: the records API: health, storing single records and
 * batches, and reading them back as each kind of key may (purposes, consent,
 * pseudonyms, masking, field restriction, lookup, revocation, shredding).
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
	static const char *const msgs[] = { NULL, "field at index 0: name "
	    "must match [a-z][a-z0-9_]{0,63}", "field email: not a valid "
	    "email address", NULL, NULL, NULL, NULL, "invalid field value: "
	    "field name: value must be a string", "a record needs fields",
	    "field name: empty; a value has at least 1 byte",
	    "field name: longer than 4096 bytes" };
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
		/* Which field and why, never the value or a bad name. */
		if (msgs[i] != NULL)
			ck_assert_pstr_eq(jstr(e, "message"), msgs[i]);
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
		assert_masked(v, toks[0], "email", "ye***@p.***", psn[0]);
		assert_masked(v, toks[1], "name", "Ye***", psn[1]);
		assert_masked(v, toks[2], "email", "no***@p.***", psn[2]);
		assert_masked(v, toks[3], "name", "No***", psn[3]);
		assert_masked(v, toks[4], "email", "no***@p.***", psn[4]);
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
		assert_masked(v, toks[0], "email", "Sa***@ps***", p[0]);
		assert_masked(v, toks[1], "name", "Sa***", p[1]);
		assert_masked(v, toks[2], "phone", "***01", p[2]);
		assert_masked(v, toks[3], "email", "sa***@ps***", p[3]);
		assert_masked(v, toks[4], "name", "Sa***", p[4]);
		assert_masked(v, toks[5], "phone", "***01", p[5]);
		assert_masked(v, toks[6], "email", "oth***@ps***", p[6]);
		assert_masked(v, toks[7], "name", "Ot***", p[7]);
		assert_masked(v, toks[8], "phone", "***02", p[8]);
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
	assert_masked(v, toks[0], "email", "ada***@b.***", NULL);
	assert_masked(v, toks[1], "phone", "***09", NULL);
	assert_masked(v, toks[2], "name", "***", NULL);
	assert_masked(v, toks[3], "city", "Éd***", NULL);
	/* White space around a value is not counted (vault_mask). */
	assert_masked(v, toks[4], "nickname", "***", NULL);
	assert_masked(v, toks[5], "backup_email", "cy@***", NULL);
	jfree(v);
	/* An email masks its local part and its domain each. */
	{
		struct rec e;
		const char *t;

		put((const struct su_fv[]){ { "email", " \t Dee@e.example" } }, 1,
		    0, 0, &e);
		t = e.tok[0];
		v = detok(K_MASKED, "service", NULL, &t, 1);
		assert_masked(v, t, "email", "***@e.***", NULL);
		jfree(v);
	}
	v = detok(K_MASKED, "research", NULL, toks, 1);
	assert_masked(v, toks[0], "email", "ada***@b.***", psn);
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
	const char *toks[7];
	struct rec rec;
	struct jv *v;

	put(f, 1, 0, 0, &rec);
	toks[0] = "tok_AAAAAAAAAAAAAAAAAAAAAA";	/* well-formed, unknown */
	toks[1] = rec.tok[0];
	toks[2] = "tok_short";
	toks[3] = rec.id;			/* a record id is no token */
	toks[4] = "not a token at all";
	toks[5] = "";
	toks[6] = "zq-mistaken-6610@x.example";	/* an email sent as one */
	/* detok checks that only the strings of a token's form come back. */
	v = detok(K_READER, "service", NULL, toks, 7);
	su_assert_tok_error(v, toks[0], "not_found");
	su_assert_value(v, toks[1], "name", "Still Answered");
	for (size_t i = 2; i < 7; i++) {
		const struct jv *it = su_item(v, i);

		/* {"index":i,"error":{"code","message"}}: nothing else. */
		ck_assert_msg(it->n == 2, "item %zu: %zu members", i, it->n);
		su_assert_item_error(it, "invalid_token");
	}
	jfree(v);

	/* Every string is answered in place, duplicates too. */
	{
		const char *dup[] = { rec.tok[0], "tok_AAAAAAAAAAAAAAAAAAAAAA",
		    rec.tok[0], "zq-dup-6611", rec.tok[0], "zq-dup-6611" };

		v = detok(K_READER, "service", NULL, dup, NELEM(dup));
		for (size_t i = 0; i < NELEM(dup); i++) {
			const struct jv *it = su_item(v, i);

			if (i == 1) {
				ck_assert_pstr_eq(jstr(it, "token"), dup[1]);
				su_assert_item_error(it, "not_found");
			} else if (dup[i] == rec.tok[0]) {
				ck_assert_uint_eq(it->n, 4);
				ck_assert_pstr_eq(jstr(it, "token"),
				    rec.tok[0]);
				ck_assert_pstr_eq(jstr(it, "value"),
				    "Still Answered");
			} else
				su_assert_item_error(it, "invalid_token");
		}
		jfree(v);
	}
}
END_TEST

/*
 * The answer never holds a string sent that is not of a token's form,
 * whatever it is: an email, a value with quotes and escapes, bytes that
 * are not a token's even though they begin as one.
 */
START_TEST(test_detok_no_echo)
{
	static const char body[] = "{\"tokens\":[\"zq-echo-6620@x.example\","
	    "\"tok_zq-echo-6621\\\"x\",\"tok_AAAAAAAAAAAAAAAAAAAAA!\","
	    "\"tok_zqecho6622AAAAAAAAAAAAAAAAAAAAAAAA\",\"\\u00e9zq6623\"],"
	    "\"purpose\":\"service\"}";
	struct su_resp r;
	struct jv *v;

	post(&r, "/v1/detokenize", K_READER, body);
	assert_status(&r, 200);
	v = su_body_json(&r);
	ck_assert_uint_eq(jget(v, "results")->n, 5);
	for (size_t i = 0; i < 5; i++)
		su_assert_item_error(su_item(v, i), "invalid_token");
	ck_assert_msg(strstr(r.body.p, "zq-echo") == NULL &&
	    strstr(r.body.p, "zqecho") == NULL &&
	    strstr(r.body.p, "zq6623") == NULL &&
	    strstr(r.body.p, "AAAA!") == NULL, "echoed: [%s]", r.body.p);
	assert_not_leaked(&r, "zq-echo-6620");
	jfree(v);
	su_resp_free(&r);
}
END_TEST

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
		    "{\"field\":\"phone\",\"value\":\"+1 555 0100\","
		    "\"purpose\":\"service\"}", 403, "forbidden", "555" };

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

/* POST /v1/lookup of email value as key for purpose, reason if not NULL. */
static void
lookup_for(struct su_resp *r, int key, const char *value,
    const char *purpose, const char *reason)
{
	struct pv_buf b;

	pv_buf_init(&b, 1u << 16);
	su_buf_add(&b, "{\"field\":\"email\",\"value\":");
	su_buf_quote(&b, value);
	if (purpose != NULL) {
		su_buf_add(&b, ",\"purpose\":");
		su_buf_quote(&b, purpose);
	}
	if (reason != NULL) {
		su_buf_add(&b, ",\"reason\":\"");
		su_buf_add(&b, reason);	/* raw: escapes as the test writes */
		su_buf_add(&b, "\"");
	}
	su_buf_add(&b, "}");
	post(r, "/v1/lookup", key, b.p);
	pv_buf_cleanup(&b);
}

/* The matches of a 200 look-up; r is freed. */
static struct jv *
matches_of(struct su_resp *r)
{
	struct jv *v;

	assert_status(r, 200);
	v = su_body_json(r);
	ck_assert_msg(v->n == 1 && jget(v, "matches") != NULL &&
	    jget(v, "matches")->type == J_ARR, "[%s]", r->body.p);
	su_resp_free(r);
	return v;
}

/*
 * A look-up states a purpose and follows detokenize's rules: the key's
 * purposes, a reason for legal (visible), marketing consent; research
 * answers a pseudonym of each record, never its id or token.
 */
START_TEST(test_lookup_purpose)
{
	static const struct su_fv f[] = { { "email", "zq-lp-3301@x.example" } };
	static const char *const blank[] = { "", " \\t", "\\u200b\\u200c",
	    "\\ufeff \\u2060", "\\u00a0\\u3000" };
	const struct jv *m;
	char psn[2][PSN_BUF];
	struct rec no, yes;
	struct su_resp r;
	struct jv *v;
	const char *t;

	put(f, 1, 0, 0, &no);		/* no marketing consent */
	put(f, 1, 1, 0, &yes);
	/* No purpose: refused, nothing revealed. */
	lookup_for(&r, K_READER, f[0].value, NULL, NULL);
	assert_error(&r, 422, "invalid_value", "zq-lp");
	su_resp_free(&r);
	/* A purpose outside the key's. */
	lookup_for(&r, K_SERVICE, f[0].value, "research", NULL);
	assert_error(&r, 403, "purpose_not_allowed", "zq-lp");
	su_resp_free(&r);
	lookup_for(&r, K_WRITER, f[0].value, "marketing", NULL);
	assert_error(&r, 403, "purpose_not_allowed", "zq-lp");
	su_resp_free(&r);
	/* Legal needs a reason with something visible in it. */
	lookup_for(&r, K_READER, f[0].value, "legal", NULL);
	assert_error(&r, 422, "reason_required", "zq-lp");
	su_resp_free(&r);
	for (size_t i = 0; i < NELEM(blank); i++) {
		lookup_for(&r, K_READER, f[0].value, "legal", blank[i]);
		assert_error(&r, 422, "reason_required", "zq-lp");
		su_resp_free(&r);
	}
	lookup_for(&r, K_READER, f[0].value, "legal", "court order 17");
	v = matches_of(&r);
	ck_assert_uint_eq(jget(v, "matches")->n, 2);
	jfree(v);
	/* Marketing: only the record with consent. */
	lookup_for(&r, K_READER, f[0].value, "marketing", NULL);
	v = matches_of(&r);
	assert_one_match(v, yes.id, yes.tok[0]);
	jfree(v);
	/* Research: a pseudonym per record, stable, and nothing else. */
	for (int k = 0; k < 2; k++) {
		lookup_for(&r, k ? K_READER : K_MASKED, f[0].value,
		    "research", NULL);
		ck_assert_msg(strstr(r.body.p, no.id) == NULL &&
		    strstr(r.body.p, yes.id) == NULL &&
		    strstr(r.body.p, "tok_") == NULL &&
		    strstr(r.body.p, "rec_") == NULL, "research look-up "
		    "revealed an id or a token: [%s]", r.body.p);
		v = matches_of(&r);
		m = jget(v, "matches");
		ck_assert_uint_eq(m->n, 2);
		for (size_t i = 0; i < 2; i++) {
			const char *p = jstr(&m->items[i], "pseudonym");

			ck_assert_uint_eq(m->items[i].n, 1);
			ck_assert_msg(su_id_valid(p, "psn_"), "[%s]", p);
			if (k == 0)
				(void)snprintf(psn[i], PSN_BUF, "%s", p);
			else
				ck_assert_str_eq(p, psn[i]);
		}
		jfree(v);
	}
	ck_assert_str_ne(psn[0], psn[1]);
	/* Not the value's pseudonym, which detokenize gives for research. */
	t = no.tok[0];
	v = detok(K_READER, "research", NULL, &t, 1);
	{
		const char *vp = jstr(su_result(v, t), "pseudonym");

		ck_assert_ptr_nonnull(vp);
		ck_assert_str_ne(vp, psn[0]);
		ck_assert_str_ne(vp, psn[1]);
	}
	jfree(v);
}
END_TEST

/* Tests: keys while the server runs. */

/* POST /v1/lookup of email values[0..n) as key for purpose; 200's body. */
static struct jv *
lookup_batch(struct su_resp *r, int key, const char *const *values,
    size_t n, const char *purpose)
{
	struct pv_buf b;
	struct jv *v;

	pv_buf_init(&b, 8u << 20);
	su_buf_add(&b, "{\"field\":\"email\",\"values\":[");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			su_buf_add(&b, ",");
		su_buf_quote(&b, values[i]);
	}
	su_buf_add(&b, "],\"purpose\":");
	su_buf_quote(&b, purpose);
	su_buf_add(&b, "}");
	post(r, "/v1/lookup", key, b.p);
	pv_buf_cleanup(&b);
	assert_status(r, 200);
	v = su_body_json(r);
	ck_assert_msg(v->n == 1 && jget(v, "results") != NULL &&
	    jget(v, "results")->type == J_ARR &&
	    jget(v, "results")->n == n, "[%.300s]", r->body.p);
	for (size_t i = 0; i < n; i++) {
		const struct jv *it = &jget(v, "results")->items[i];

		ck_assert_msg(jget(it, "index") != NULL &&
		    strtoull(jget(it, "index")->s, NULL, 10) == i &&
		    it->n == 2, "item %zu: [%.300s]", i, r->body.p);
	}
	return v;
}

/* The matches of item i of a batch look-up (asserting it has them). */
static const struct jv *
batch_matches(const struct jv *v, size_t i)
{
	const struct jv *m = jget(&jget(v, "results")->items[i], "matches");

	ck_assert_msg(m != NULL && m->type == J_ARR, "item %zu: no matches",
	    i);
	return m;
}

/*
 * The audit events of action so far (as the auditor reads them); the
 * record ids of the last one into ids (up to cap), their count to *nids.
 */
static size_t
audit_count(const char *action, char ids[][ID_BUF], size_t cap, size_t *nids)
{
	struct su_resp r;
	const struct jv *ev, *recs = NULL;
	struct jv *v;
	size_t n = 0;

	req(&r, "GET", "/v1/audit?after=0&limit=1000", K_AUDITOR, NULL,
	    NULL);
	assert_status(&r, 200);
	v = su_body_json(&r);
	ev = jget(v, "events");
	ck_assert_msg(ev != NULL && ev->type == J_ARR && ev->n < 1000,
	    "[%.300s]", r.body.p);
	for (size_t i = 0; i < ev->n; i++)
		if (jstr(&ev->items[i], "action") != NULL &&
		    strcmp(jstr(&ev->items[i], "action"), action) == 0) {
			n++;
			recs = jget(&ev->items[i], "records");
		}
	*nids = 0;
	for (size_t i = 0; recs != NULL && i < recs->n && i < cap; i++)
		(void)snprintf(ids[(*nids)++], ID_BUF, "%s",
		    recs->items[i].s);
	jfree(v);
	su_resp_free(&r);
	return n;
}

/*
 * A batch look-up: one item per value, in order, duplicates kept, each
 * under the single form's rules; a bad value gets its own error (named by
 * field, never echoed); the request is one audit event with every record
 * found.
 */
START_TEST(test_lookup_batch)
{
	static const struct su_fv a[] = { { "email", "zq-lb-1@x.example" } };
	static const struct su_fv b[] = { { "email", "zq-lb-2@x.example" } };
	char big[PV_VALUE_MAX + 2], ids[8][ID_BUF];
	const char *values[7];
	struct rec a1, a2, b1;
	const struct jv *m, *e;
	size_t before, nids;
	struct su_resp r;
	struct jv *v;

	put(a, 1, 0, 0, &a1);
	put(a, 1, 1, 0, &a2);		/* marketing consent */
	put(b, 1, 0, 0, &b1);
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	values[0] = " ZQ-LB-1@x.example";
	values[1] = "zq-lb-nobody@x.example";
	values[2] = "zq-lb-not-an-email";
	values[3] = "zq-lb-2@x.example";
	values[4] = "zq-lb-1@x.example";
	values[5] = big;
	values[6] = "";
	before = audit_count("lookup", ids, 8, &nids);
	v = lookup_batch(&r, K_READER, values, 7, "service");
	m = batch_matches(v, 0);
	ck_assert_uint_eq(m->n, 2);
	ck_assert_pstr_eq(jstr(&m->items[0], "id"), a1.id);
	ck_assert_pstr_eq(jstr(&m->items[0], "token"), a1.tok[0]);
	ck_assert_pstr_eq(jstr(&m->items[1], "id"), a2.id);
	ck_assert_uint_eq(batch_matches(v, 1)->n, 0);
	e = &jget(v, "results")->items[2];
	su_assert_item_error(e, "invalid_value");
	ck_assert_pstr_eq(jstr(jget(e, "error"), "message"),
	    "field email: not a valid email address");
	m = batch_matches(v, 3);
	ck_assert_uint_eq(m->n, 1);
	ck_assert_pstr_eq(jstr(&m->items[0], "id"), b1.id);
	ck_assert_uint_eq(batch_matches(v, 4)->n, 2);	/* asked again */
	e = &jget(v, "results")->items[5];
	su_assert_item_error(e, "too_large");
	ck_assert_pstr_eq(jstr(jget(e, "error"), "message"),
	    "field email: longer than 4096 bytes");
	e = &jget(v, "results")->items[6];
	su_assert_item_error(e, "invalid_value");
	ck_assert_pstr_eq(jstr(jget(e, "error"), "message"),
	    "field email: empty; a value has at least 1 byte");
	assert_not_leaked(&r, "zq-lb-not-an-email");
	assert_not_leaked(&r, "zq-lb-nobody");
	assert_not_leaked(&r, "qqqqqqqqqqqqqqqq");
	jfree(v);
	su_resp_free(&r);
	/* One event, naming each record found once. */
	ck_assert_uint_eq(audit_count("lookup", ids, 8, &nids), before + 1);
	ck_assert_uint_eq(nids, 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert_msg(strcmp(ids[i], a1.id) == 0 ||
		    strcmp(ids[i], a2.id) == 0 || strcmp(ids[i], b1.id) == 0,
		    "event names %s", ids[i]);

	/* Marketing: per value, only the records with consent. */
	v = lookup_batch(&r, K_READER, (const char *[]){ a[0].value,
	    b[0].value }, 2, "marketing");
	m = batch_matches(v, 0);
	ck_assert_uint_eq(m->n, 1);
	ck_assert_pstr_eq(jstr(&m->items[0], "id"), a2.id);
	ck_assert_uint_eq(batch_matches(v, 1)->n, 0);
	jfree(v);
	su_resp_free(&r);
	/* Research: pseudonyms only. */
	v = lookup_batch(&r, K_READER, (const char *[]){ a[0].value,
	    b[0].value }, 2, "research");
	ck_assert_uint_eq(batch_matches(v, 0)->n, 2);
	ck_assert_uint_eq(batch_matches(v, 1)->n, 1);
	ck_assert_msg(strstr(r.body.p, "rec_") == NULL &&
	    strstr(r.body.p, "tok_") == NULL, "[%s]", r.body.p);
	ck_assert_msg(su_id_valid(jstr(&batch_matches(v, 1)->items[0],
	    "pseudonym"), "psn_"), "[%s]", r.body.p);
	jfree(v);
	su_resp_free(&r);

	/* Whole-request refusals: nothing looked up, nothing answered. */
	{
		const struct bad bads[] = {
			{ "POST", "/v1/lookup", K_READER, NULL, NULL,
			    "{\"field\":\"email\",\"value\":\"zq-lb-1@x."
			    "example\",\"values\":[\"zq-lb-1@x.example\"],"
			    "\"purpose\":\"service\"}", 422, "invalid_value",
			    "zq-lb" },
			{ "POST", "/v1/lookup", K_READER, NULL, NULL,
			    "{\"field\":\"email\",\"values\":[],"
			    "\"purpose\":\"service\"}", 422, "invalid_value",
			    NULL },
			{ "POST", "/v1/lookup", K_READER, NULL, NULL,
			    "{\"field\":\"email\",\"values\":[\"zq-lb-1@x."
			    "example\",7],\"purpose\":\"service\"}", 422,
			    "invalid_value", "zq-lb" },
			{ "POST", "/v1/lookup", K_READER, NULL, NULL,
			    "{\"field\":\"name\",\"values\":[\"zq-lb-n\"],"
			    "\"purpose\":\"service\"}", 422, "invalid_field",
			    "zq-lb" },
			{ "POST", "/v1/lookup", K_EMAIL, NULL, NULL,
			    "{\"field\":\"phone\",\"values\":[\"+1 555 0100\"],"
			    "\"purpose\":\"service\"}", 403, "forbidden",
			    "0100" },
			{ "POST", "/v1/lookup", K_SERVICE, NULL, NULL,
			    "{\"field\":\"email\",\"values\":[\"zq-lb-1@x."
			    "example\"],\"purpose\":\"research\"}", 403,
			    "purpose_not_allowed", "zq-lb" },
		};

		expect_all_bad(bads, NELEM(bads));
	}
	/* Over the batch limit: 413, as other batches. */
	{
		static const char *many[1001];

		for (size_t i = 0; i < NELEM(many); i++)
			many[i] = "zq-lb-2@x.example";
		{
			struct pv_buf bb;

			pv_buf_init(&bb, 1u << 20);
			su_buf_add(&bb, "{\"field\":\"email\",\"values\":[");
			for (size_t i = 0; i < NELEM(many); i++) {
				su_buf_add(&bb, i ? "," : "");
				su_buf_quote(&bb, many[i]);
			}
			su_buf_add(&bb, "],\"purpose\":\"service\"}");
			post(&r, "/v1/lookup", K_READER, bb.p);
			pv_buf_cleanup(&bb);
		}
		assert_error(&r, 413, "too_large", "zq-lb");
		ck_assert_ptr_nonnull(strstr(r.body.p, "more than 1000 values"));
		su_resp_free(&r);
		/* 1000 values of a match each: one request, one event. */
		before = audit_count("lookup", ids, 8, &nids);
		v = lookup_batch(&r, K_READER, many, 1000, "service");
		for (size_t i = 0; i < 1000; i++)
			ck_assert_uint_eq(batch_matches(v, i)->n, 1);
		jfree(v);
		su_resp_free(&r);
		ck_assert_uint_eq(audit_count("lookup", ids, 8, &nids),
		    before + 1);
		ck_assert_uint_eq(nids, 1);
		ck_assert_str_eq(ids[0], b1.id);
	}
}
END_TEST

/*
 * The answer of a batch look-up is bounded: its matches, all values
 * together, are at most 1000.  The value that would go over, and every
 * one after it, gets too_large and is not looked up.
 */
START_TEST(test_lookup_batch_bound)
{
	const char *values[4] = { "zq-bound@x.example", "zq-bound@x.example",
	    "zq-bound-none@x.example", "zq-bound@x.example" };
	char ids[8][ID_BUF], *body;
	const struct jv *e;
	struct pv_buf b;
	struct su_resp r;
	struct jv *v;
	size_t nids;

	/* 600 records of one email. */
	pv_buf_init(&b, 1u << 20);
	su_buf_add(&b, "{\"records\":[");
	for (size_t i = 0; i < 600; i++)
		su_buf_add(&b, i ? ",{\"fields\":{\"email\":"
		    "\"zq-bound@x.example\"}}" : "{\"fields\":{\"email\":"
		    "\"zq-bound@x.example\"}}");
	su_buf_add(&b, "]}");
	ck_assert_ptr_nonnull(body = strdup(b.p));
	pv_buf_cleanup(&b);
	post(&r, "/v1/records/batch", K_WRITER, body);
	free(body);
	assert_status(&r, 200);
	su_resp_free(&r);

	v = lookup_batch(&r, K_READER, values, 4, "service");
	ck_assert_uint_eq(batch_matches(v, 0)->n, 600);
	for (size_t i = 1; i < 4; i++) {
		e = &jget(v, "results")->items[i];
		su_assert_item_error(e, "too_large");
		ck_assert_ptr_nonnull(strstr(jstr(jget(e, "error"), "message"),
		    "the answer is full"));
	}
	jfree(v);
	su_resp_free(&r);
	/* Logged: the 600 records the answer holds. */
	(void)audit_count("lookup", ids, 8, &nids);
	ck_assert_uint_eq(nids, 8);	/* capped by this helper */
	/* Alone, the value that did not fit is answered. */
	v = lookup_batch(&r, K_READER, values + 2, 2, "service");
	ck_assert_uint_eq(batch_matches(v, 0)->n, 0);
	ck_assert_uint_eq(batch_matches(v, 1)->n, 600);
	jfree(v);
	su_resp_free(&r);
}
END_TEST

/* The message of a 4xx answer r (asserting its code), r freed. */
static void
assert_message(struct su_resp *r, long st, const char *code,
    const char *msg)
{
	struct jv *v;

	assert_error(r, st, code, NULL);
	v = su_body_json(r);
	ck_assert_pstr_eq(jstr(jget(v, "error"), "message"), msg);
	jfree(v);
	su_resp_free(r);
}

/*
 * A refused field is named, why is said, its value never: on a record,
 * on a correction, on a look-up.
 */
START_TEST(test_validation_messages)
{
	static const struct su_fv f[] = { { "phone", "+1 555 0100" } };
	char path[64], *big;
	struct su_resp r;
	struct rec rec;

	post(&r, "/v1/records", K_WRITER, "{\"fields\":{\"name\":\"A\","
	    "\"email\":\"zq-vm-1\"}}");
	assert_message(&r, 422, "invalid_value",
	    "field email: not a valid email address");
	post(&r, "/v1/records", K_WRITER, "{\"fields\":{\"name\":\"A\","
	    "\"Zq-Vm-2\":\"x\"}}");
	assert_message(&r, 422, "invalid_field",
	    "field at index 1: name must match [a-z][a-z0-9_]{0,63}");
	post(&r, "/v1/records", K_WRITER, "{\"fields\":{\"name\":\"A\","
	    "\"name2\":\"\"}}");
	assert_message(&r, 422, "invalid_value",
	    "field name2: empty; a value has at least 1 byte");
	ck_assert_ptr_nonnull(big = malloc(PV_VALUE_MAX + 64));
	memcpy(big, "{\"fields\":{\"notes\":\"", 20);
	memset(big + 20, 'q', PV_VALUE_MAX + 1);
	memcpy(big + 20 + PV_VALUE_MAX + 1, "\"}}", 4);
	post(&r, "/v1/records", K_WRITER, big);
	free(big);
	assert_message(&r, 413, "too_large",
	    "field notes: longer than 4096 bytes");

	put(f, 1, 0, 0, &rec);
	(void)snprintf(path, sizeof(path), "/v1/records/%s", rec.id);
	req(&r, "PATCH", path, K_ADMIN, NULL, "{\"fields\":{\"phone\":"
	    "\"zq-vm-3\"}}");
	assert_message(&r, 422, "invalid_value",
	    "field phone: not a valid phone number");
	req(&r, "PATCH", path, K_ADMIN, NULL, "{\"fields\":{\"phone\":null}}");
	assert_message(&r, 422, "invalid_value",
	    "a record keeps at least one field (delete it instead)");
	req(&r, "PATCH", path, K_ADMIN, NULL, "{\"fields\":{\"fax\":\"1\","
	    "\"9x\":\"zq-vm-4\"}}");
	assert_message(&r, 422, "invalid_field",
	    "field at index 1: name must match [a-z][a-z0-9_]{0,63}");

	post(&r, "/v1/lookup", K_READER, "{\"field\":\"phone\",\"value\":"
	    "\"zq-vm-5\",\"purpose\":\"service\"}");
	assert_message(&r, 422, "invalid_value",
	    "field phone: not a valid phone number");
	post(&r, "/v1/lookup", K_READER, "{\"field\":\"name\",\"value\":"
	    "\"zq-vm-6\",\"purpose\":\"service\"}");
	assert_message(&r, 422, "invalid_field",
	    "field name has no blind index: only email and phone have one");
	post(&r, "/v1/lookup", K_READER, "{\"field\":\"Zq-Vm\",\"value\":"
	    "\"zq-vm-7\",\"purpose\":\"service\"}");
	assert_message(&r, 422, "invalid_field",
	    "\"field\" is not a field name: names match [a-z][a-z0-9_]{0,63}");
}
END_TEST

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

/*
 * HTTP details of the record routes: a 201 says where the record is
 * (Location), and a batch (200) does not; PATCH is a merge patch and
 * takes its media type; DELETE takes its reason in a JSON body, and a
 * body it cannot take changes nothing.
 */
START_TEST(test_record_http_details)
{
	static const struct su_fv f[] = { { "name", "zq-http-name-8901" },
	    { "phone", "+1 555 010 8902" } };
	static const char *const patch_ok[] = {
		"application/merge-patch+json",
		"application/merge-patch+json; charset=utf-8",
		"Application/JSON",
	};
	static const char *const patch_bad[] = { "text/plain", "",
	    "application/merge-patch", "application/json-patch+json",
	    "application/merge-patch+jsonx" };
	char path[64], want[64], body[96];
	const char *toks[1];
	struct rec a, b;
	struct su_resp r;
	struct jv *v;

	/* Location: the record's path; the 201's body names the same id. */
	post(&r, "/v1/records", K_WRITER, "{\"fields\":{\"name\":"
	    "\"zq-http-name-8903\"}}");
	assert_status(&r, 201);
	v = su_body_json(&r);
	(void)snprintf(want, sizeof(want), "/v1/records/%s", jstr(v, "id"));
	ck_assert_msg(su_header(&r, "Location") != NULL, "201 without "
	    "Location: [%s]", r.hdr.p);
	ck_assert_str_eq(su_header(&r, "Location"), want);
	jfree(v);
	su_resp_free(&r);
	post(&r, "/v1/records/batch", K_WRITER, GOOD_BATCH);
	assert_status(&r, 200);
	ck_assert_ptr_null(su_header(&r, "Location"));
	su_resp_free(&r);
	post(&r, "/v1/records", K_WRITER, "{\"fields\":{\"Bad\":\"x\"}}");
	assert_status(&r, 422);
	ck_assert_ptr_null(su_header(&r, "Location"));
	su_resp_free(&r);

	/* PATCH: a merge patch, under either media type. */
	put(f, 2, 0, 0, &a);
	(void)snprintf(path, sizeof(path), "/v1/records/%s", a.id);
	for (size_t i = 0; i < NELEM(patch_ok); i++) {
		(void)snprintf(body, sizeof(body), "{\"fields\":{\"name\":"
		    "\"zq-http-name-89%02zu\"}}", 10 + i);
		req(&r, "PATCH", path, K_ADMIN, patch_ok[i], body);
		assert_status(&r, 200);
		su_resp_free(&r);
	}
	for (size_t i = 0; i < NELEM(patch_bad); i++) {
		struct bad x = { "PATCH", path, K_ADMIN, NULL, patch_bad[i],
		    "{\"fields\":{\"name\":\"zq-http-name-8999\"}}", 415,
		    "unsupported_media_type", "zq-http-name-8999" };

		expect_bad(&x, i);
	}
	req(&r, "PATCH", path, K_ADMIN, "text/plain",
	    "{\"fields\":{\"name\":\"zq-http-name-8998\"}}");
	ck_assert_msg(strstr(r.body.p, "application/merge-patch+json") !=
	    NULL, "415 does not name the merge patch type: [%s]", r.body.p);
	su_resp_free(&r);
	/* A member set to null removes the field (RFC 7396). */
	req(&r, "PATCH", path, K_ADMIN, "application/merge-patch+json",
	    "{\"fields\":{\"phone\":null}}");
	assert_status(&r, 200);
	ck_assert_ptr_null(strstr(r.body.p, "\"phone\""));
	su_resp_free(&r);
	toks[0] = a.tok[0];
	v = detok(K_READER, "service", NULL, toks, 1);
	su_assert_value(v, a.tok[0], "name", "zq-http-name-8912");
	jfree(v);

	/* DELETE: bodies it cannot take change nothing. */
	put(f, 2, 0, 0, &b);
	(void)snprintf(path, sizeof(path), "/v1/records/%s", b.id);
	{
		char both[96];
		const struct bad bad[] = {
			{ "DELETE", path, K_ADMIN, NULL, "text/plain",
			  "{\"reason\":\"x\"}", 415, "unsupported_media_type",
			  NULL },
			{ "DELETE", path, K_ADMIN, NULL, "",
			  "{\"reason\":\"x\"}", 415, "unsupported_media_type",
			  NULL },
			{ "DELETE", path, K_ADMIN, NULL, NULL, "{\"reason\":",
			  400, "invalid_json", NULL },
			{ "DELETE", path, K_ADMIN, NULL, NULL, "[]", 400,
			  "invalid_json", NULL },
			{ "DELETE", path, K_ADMIN, NULL, NULL,
			  "{\"reason\":\"x\",\"hold\":true}", 422,
			  "unknown_member", NULL },
			{ "DELETE", path, K_ADMIN, NULL, NULL,
			  "{\"reason\":7}", 422, "invalid_value", NULL },
			{ "DELETE", path, K_ADMIN, NULL, NULL,
			  "{\"reason\":\"\"}", 422, "reason_required", NULL },
			{ "DELETE", path, K_ADMIN, NULL, NULL,
			  "{\"reason\":\"\\u200b \"}", 422, "reason_required",
			  NULL },
			{ "DELETE", path, K_ADMIN, NULL, NULL,
			  "{\"reason\":\"a\\u0007b\"}", 422, "reason_required",
			  NULL },
			{ "DELETE", both, K_ADMIN, NULL, NULL,
			  "{\"reason\":\"body\"}", 400, "bad_request", NULL },
		};

		(void)snprintf(both, sizeof(both), "%s?reason=query", path);
		expect_all_bad(bad, NELEM(bad));
		req(&r, "DELETE", path, K_ADMIN, NULL, "{\"reason\":\"\"}");
		ck_assert_str_eq(r.body.p, "{\"error\":{\"code\":\"reason_"
		    "required\",\"message\":\"a deletion needs a reason\"}}\n");
		su_resp_free(&r);
	}
	toks[0] = b.tok[0];
	v = detok(K_READER, "service", NULL, toks, 1);
	su_assert_value(v, b.tok[0], "name", f[0].value);
	jfree(v);
	/* The reason in the body goes to the receipt. */
	req(&r, "DELETE", path, K_ADMIN, "application/json; charset=utf-8",
	    "{\"reason\":\"erasure request 17\"}");
	assert_status(&r, 200);
	v = su_body_json(&r);
	ck_assert_pstr_eq(jstr(jget(v, "receipt"), "reason"),
	    "erasure request 17");
	jfree(v);
	su_resp_free(&r);
	/* No reason at all, a Content-Type without a body: "request". */
	req(&r, "DELETE", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA", K_ADMIN,
	    "text/plain", "");
	assert_error(&r, 404, "not_found", NULL);
	su_resp_free(&r);
	(void)snprintf(path, sizeof(path), "/v1/records/%s", a.id);
	req(&r, "DELETE", path, K_ADMIN, NULL, "{}");
	assert_status(&r, 200);
	v = su_body_json(&r);
	ck_assert_pstr_eq(jstr(jget(v, "receipt"), "reason"), "request");
	jfree(v);
	su_resp_free(&r);
}
END_TEST

static Suite *
http_records_suite(void)
{
	Suite *s = suite_create("http_records");
	TCase *tc;

	tc = http_tcase(s, "records", 1, TIMEOUT);
	tcase_add_test(tc, test_health);
	tcase_add_test(tc, test_records_put_and_detokenize);
	tcase_add_test(tc, test_records_header_variants);
	tcase_add_test(tc, test_batch);
	tcase_add_test(tc, test_batch_limits);

	tc = http_tcase(s, "access", 1, TIMEOUT);
	tcase_add_test(tc, test_purposes_and_consent);
	tcase_add_test(tc, test_pseudonyms);
	tcase_add_test(tc, test_masked_key);
	tcase_add_test(tc, test_field_restriction);
	tcase_add_test(tc, test_token_errors);
	tcase_add_test(tc, test_detok_no_echo);
	tcase_add_test(tc, test_lookup);
	tcase_add_test(tc, test_lookup_purpose);
	tcase_add_test(tc, test_lookup_batch);
	tcase_add_test(tc, test_lookup_batch_bound);
	tcase_add_test(tc, test_validation_messages);
	tcase_add_test(tc, test_key_revocation_live);
	tcase_add_test(tc, test_shred);
	tcase_add_test(tc, test_record_http_details);
	return s;
}

int
main(void)
{
	return su_suite_main("check_http_records", http_records_suite());
}
