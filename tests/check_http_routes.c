/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_http_routes.c: the route table as the server shows it: which check
 * answers first, 405 with its Allow list, the 401 challenge, the metrics
 * page and its route labels, listening off loopback, and docs/openapi.yaml
 * naming every route.
 *
 * White-box: this file includes api_int.h, for the route table (the
 * OpenAPI test checks that docs/openapi.yaml documents every route, and
 * the metrics test that every route label is one of them).
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
#include "api_int.h"	/* white-box: the route table */
#include "httputil.h"
#include "srvutil.h"
#include "testutil.h"

#ifndef PIIVAULT_SOURCE_DIR
#error "PIIVAULT_SOURCE_DIR must name the source tree"
#endif

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
	{
		char info[256], lmdb[32];

		vault_store_version(lmdb);
		(void)snprintf(info, sizeof(info), "piivault_build_info{"
		    "version=\"%s\",openssl=\"%s\",lmdb=\"%s\","
		    "libmicrohttpd=\"%s\"}", PV_VERSION, pv_crypto_version(),
		    lmdb, api_http_version());
		ck_assert_msg(metric(m, info) == 1, "no [%s] 1 in [%.300s]",
		    info, m);
	}
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
		for (int i = 0; i < API_NROUTES; i++)
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
		  "{\"field\":\"phone\",\"value\":\"zq-o-9904 no phone\","
		  "\"purpose\":\"service\"}", 403, "forbidden", "zq-o-9904" },
		{ "POST", "/v1/lookup", K_EMAIL, NULL, NULL,
		  "{\"field\":\"Bad Field\",\"value\":\"zq-o-9905\","
		  "\"purpose\":\"service\"}", 403,
		  "forbidden", "zq-o-9905" },
		{ "POST", "/v1/lookup", K_EMAIL, NULL, NULL,
		  "{\"field\":\"name\",\"value\":\"zq-o-9906\","
		  "\"purpose\":\"service\"}", 403,
		  "forbidden", "zq-o-9906" },
		{ "POST", "/v1/lookup", K_EMAIL, NULL, NULL,
		  "{\"field\":\"email\",\"value\":\"zq-o-9907\","
		  "\"purpose\":\"service\"}", 422,
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

/* Whether template t has a public GET route: HEAD is answered there. */
static int
head_answered(const char *t)
{
	int found = 0;

	for (int i = 0; i < API_NROUTES; i++)
		found |= strcmp(api_routes[i].path, t) == 0 &&
		    strcmp(api_routes[i].method, "GET") == 0 &&
		    api_routes[i].roles == 0;
	return found;
}

/*
 * Whether the Allow value a lists exactly the methods of template t, and
 * HEAD where it is answered (RFC 9110 10.2.1: the methods the resource
 * supports).
 */
static int
allow_is(const char *a, const char *t)
{
	size_t listed = 0, want = 0;
	char buf[128], *tok, *save;

	(void)snprintf(buf, sizeof(buf), "%s", a);
	for (tok = strtok_r(buf, ", ", &save); tok != NULL;
	    tok = strtok_r(NULL, ", ", &save)) {
		int found = strcmp(tok, "HEAD") == 0 && head_answered(t);

		for (int i = 0; i < API_NROUTES; i++)
			found |= strcmp(api_routes[i].path, t) == 0 &&
			    strcmp(api_routes[i].method, tok) == 0;
		if (!found)
			return 0;
		listed++;
	}
	for (int i = 0; i < API_NROUTES; i++)
		want += strcmp(api_routes[i].path, t) == 0;
	return listed == want + (size_t)head_answered(t);
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
	/* Exactly, where HEAD is answered too and where it is not. */
	req(&r, "POST", "/v1/health", K_NONE, NULL, "{}");
	assert_status(&r, 405);
	ck_assert_pstr_eq(su_header(&r, "Allow"), "GET, HEAD");
	su_resp_free(&r);
	req(&r, "PUT", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA", K_NONE, NULL,
	    "{}");
	assert_status(&r, 405);
	ck_assert_pstr_eq(su_header(&r, "Allow"), "DELETE, GET, PATCH");
	su_resp_free(&r);
	req(&r, "HEAD", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA/metadata",
	    K_ADMIN, NULL, NULL);
	assert_status(&r, 405);
	ck_assert_pstr_eq(su_header(&r, "Allow"), "GET");
	su_resp_free(&r);
	/* HEAD where answered: GET's status and headers, no body. */
	req(&r, "HEAD", "/v1/health", K_NONE, NULL, NULL);
	assert_status(&r, 200);
	ck_assert_pstr_eq(su_header(&r, "Content-Type"), "application/json");
	ck_assert_pstr_eq(su_header(&r, "Cache-Control"), "no-store");
	ck_assert_uint_eq(r.body.len, 0);
	su_resp_free(&r);
	/*
	 * Every path, asked with a method it does not take: 405, and Allow
	 * names the methods it takes.  HEAD is answered where GET is
	 * (RFC 9110 9.3.2), refused elsewhere.
	 */
	for (int i = 0; i < API_NROUTES; i++) {
		const char *t = api_routes[i].path, *hole, *probe = NULL;
		int has_get = 0;
		char path[128];

		for (int k = 0; k < API_NROUTES; k++)
			has_get |= strcmp(api_routes[k].path, t) == 0 &&
			    strcmp(api_routes[k].method, "GET") == 0;
		for (size_t m = 0; m < NELEM(probes) && probe == NULL; m++) {
			int taken = 0;

			for (int k = 0; k < API_NROUTES; k++)
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
		/* HEAD only where GET has no effect: the public routes. */
		if (has_get && head_answered(t))
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

/*
 * The paths under which doc declares "    head:", each checked against
 * the routes: 0 if HEAD is declared exactly where it is answered.
 */
static int
head_ops(const char *doc)
{
	char path[128] = "";
	size_t declared = 0, answered = 0;
	const char *p;

	for (int i = 0; i < API_NROUTES; i++)
		answered += api_routes[i].roles == 0 &&
		    strcmp(api_routes[i].method, "GET") == 0;
	p = strstr(doc, "\npaths:\n");
	ck_assert_ptr_nonnull(p);
	for (p += 8; *p != '\0' && strncmp(p, "components:", 11) != 0;
	    p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
		size_t n = strcspn(p, ":\n");

		if (strncmp(p, "  /", 3) == 0 && n - 2 < sizeof(path))
			(void)snprintf(path, sizeof(path), "%.*s", (int)(n - 2),
			    p + 2);
		else if (strncmp(p, "    head:", 9) == 0) {
			if (!head_answered(path))
				return -1;
			declared++;
		}
	}
	return declared == answered ? 0 : -1;
}

START_TEST(test_openapi_documents_routes)
{
	static const char path[] = PIIVAULT_SOURCE_DIR "/docs/openapi.yaml";
	char *doc;

	doc = su_slurp(path, NULL);
	ck_assert_msg(doc != NULL, "%s does not exist", path);
	for (int r = 0; r < API_NROUTES; r++) {
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
	ck_assert_msg(head_ops(doc) == 0, "openapi.yaml declares HEAD "
	    "where it is not answered, or not where it is");
	free(doc);
}
END_TEST

/* Tests: the public signing keys. */

/* GET /v1/keys/signing, no key: 200, cacheable, the keys (jfree). */
static struct jv *
signing_keys(size_t want)
{
	const struct jv *kl;
	struct su_resp r;
	struct jv *v;

	req(&r, "GET", "/v1/keys/signing", K_NONE, NULL, NULL);
	assert_status(&r, 200);
	ck_assert_pstr_eq(su_header(&r, "Content-Type"), "application/json");
	ck_assert_pstr_eq(su_header(&r, "Cache-Control"),
	    "public, max-age=300");
	ck_assert_pstr_eq(su_header(&r, "X-Content-Type-Options"), "nosniff");
	ck_assert_msg(r.body.len > 0 && r.body.p[r.body.len - 1] == '\n',
	    "[%s]", r.body.p);
	v = jparse(r.body.p, r.body.len - 1);
	ck_assert_msg(v != NULL && v->type == J_OBJ && v->n == 1, "[%s]",
	    r.body.p);
	kl = jget(v, "keys");
	ck_assert_msg(kl != NULL && kl->type == J_ARR && kl->n == want,
	    "want %zu keys: [%s]", want, r.body.p);
	for (size_t i = 0; i < kl->n; i++) {
		const struct jv *k = &kl->items[i], *ver = jget(k, "version");
		char num[32];

		(void)snprintf(num, sizeof(num), "%zu", i + 1);
		ck_assert_msg(k->type == J_OBJ && k->n == 3 && ver != NULL &&
		    ver->type == J_NUM && strcmp(ver->s, num) == 0 &&
		    jstr(k, "public_key") != NULL &&
		    strlen(jstr(k, "public_key")) == API_PUBKEY_STRLEN &&
		    strncmp(jstr(k, "public_key"), "pvpub_", 6) == 0 &&
		    jstr(k, "state") != NULL && strcmp(jstr(k, "state"),
		    i + 1 == want ? "active" : "verify_only") == 0,
		    "key %zu: [%s]", i, r.body.p);
	}
	su_resp_free(&r);
	return v;
}

/* DELETE id as the admin: the answer, which names signing version sv. */
static char *
delete_named(const char *id, unsigned sv)
{
	const struct jv *rc, *ver;
	char path[128], num[16], *body;
	struct su_resp r;
	struct jv *v;

	(void)snprintf(path, sizeof(path), "/v1/records/%s", id);
	req(&r, "DELETE", path, K_ADMIN, NULL, NULL);
	assert_status(&r, 200);
	v = su_body_json(&r);
	rc = jget(v, "receipt");
	ver = jget(rc, "signing_key_version");
	(void)snprintf(num, sizeof(num), "%u", sv);
	ck_assert_msg(ver != NULL && ver->type == J_NUM &&
	    strcmp(ver->s, num) == 0, "want signing key %u: [%s]", sv,
	    r.body.p);
	jfree(v);
	ck_assert_ptr_nonnull(body = strdup(r.body.p));
	su_resp_free(&r);
	return body;
}

/* Write s to path (in the test's directory), mode 0600. */
static void
write_text(const char *path, const char *s)
{
	size_t len = strlen(s);
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, s, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

/* The value of "member":N in a receipt's text. */
static unsigned long long
receipt_num(const char *text, const char *member)
{
	char want[64];
	const char *p;

	(void)snprintf(want, sizeof(want), "\"%s\":", member);
	ck_assert_msg((p = strstr(text, want)) != NULL, "no %s: [%s]", member,
	    text);
	return strtoull(p + strlen(want), NULL, 10);
}

/*
 * GET /v1/keys/signing needs no key and lists what kms public-key prints;
 * after kms rotate-signing (beside the running server) it lists both, the
 * old one verify_only; receipts name their version and each verifies with
 * its own key only, a repeat DELETE's too.
 */
START_TEST(test_signing_keys)
{
	static const struct su_fv f[] = { { "name", "zq-sign-7801" } };
	char *first, *second, *repeat, *all, arg1[API_PUBKEY_STRLEN + 8];
	char arg2[API_PUBKEY_STRLEN + 8], line[256];
	struct rec a, b;
	struct su_resp r;
	struct su_run c;
	struct jv *v;
	const struct jv *kl;
	size_t len;

	v = signing_keys(1);
	kl = jget(v, "keys");
	/* kms public-key prints the same item, one line a version. */
	cli(&c, "kms", "public-key", NULL);
	ck_assert_exit(&c, 0);
	(void)snprintf(line, sizeof(line), "{\"version\":1,\"public_key\":"
	    "\"%s\",\"state\":\"active\"}\n", jstr(&kl->items[0],
	    "public_key"));
	ck_assert_str_eq(c.out, line);
	su_run_free(&c);
	(void)snprintf(arg1, sizeof(arg1), "1=%s", jstr(&kl->items[0],
	    "public_key"));
	jfree(v);
	/* An Authorization header, even a bad one, changes nothing; HEAD. */
	req_auth(&r, "GET", "/v1/keys/signing", K_RAW, "Bearer nonsense",
	    NULL, NULL, 0);
	assert_status(&r, 200);
	su_resp_free(&r);
	req(&r, "HEAD", "/v1/keys/signing", K_NONE, NULL, NULL);
	assert_status(&r, 200);
	ck_assert_uint_eq(r.body.len, 0);
	su_resp_free(&r);
	req(&r, "POST", "/v1/keys/signing", K_ADMIN, NULL, "{}");
	su_assert_error(&r, 405, "method_not_allowed");
	ck_assert_pstr_eq(su_header(&r, "Allow"), "GET, HEAD");
	su_resp_free(&r);

	put(f, 1, -1, 0, &a);
	put(f, 1, -1, 0, &b);
	first = delete_named(a.id, 1);

	cli(&c, "kms", "rotate-signing", NULL);
	ck_assert_exit(&c, 0);
	ck_assert_str_eq(c.out, "signing key 2 is active\n");
	su_run_free(&c);
	v = signing_keys(2);
	kl = jget(v, "keys");
	ck_assert_str_eq(jstr(&kl->items[0], "public_key"), arg1 + 2);
	(void)snprintf(arg2, sizeof(arg2), "2=%s", jstr(&kl->items[1],
	    "public_key"));
	jfree(v);

	/* The running server signs with the new key at once. */
	second = delete_named(b.id, 2);
	/* A repeat: the first shred's facts, signed by the active key. */
	repeat = delete_named(a.id, 2);
	ck_assert_uint_eq(receipt_num(repeat, "shredded_at"),
	    receipt_num(first, "shredded_at"));
	ck_assert_uint_eq(receipt_num(repeat, "audit_seq"),
	    receipt_num(first, "audit_seq"));

	/* Every receipt verifies with the key of its version. */
	len = strlen(first) + strlen(second) + strlen(repeat) + 1;
	ck_assert_ptr_nonnull(all = malloc(len));
	(void)snprintf(all, len, "%s%s%s", first, second, repeat);
	write_text("receipts.jsonl", all);
	cli(&c, "receipt", "verify", "receipts.jsonl", "--public-key", arg1,
	    "--public-key", arg2, NULL);
	ck_assert_exit(&c, 0);
	su_run_free(&c);
	cli(&c, "receipt", "verify", "receipts.jsonl", NULL);
	ck_assert_exit(&c, 0);
	su_run_free(&c);
	/* The old key alone does not vouch for the new receipts. */
	cli(&c, "receipt", "verify", "receipts.jsonl", "--public-key", arg1,
	    NULL);
	ck_assert_exit(&c, 1);
	ck_assert_msg(strstr(c.err, "receipt 2") != NULL && strstr(c.err,
	    "no public key for signing key version 2") != NULL, "[%s]", c.err);
	su_run_free(&c);
	/* Nor the new key the first receipt. */
	write_text("first.jsonl", first);
	cli(&c, "receipt", "verify", "first.jsonl", "--public-key", arg2 + 2,
	    NULL);
	ck_assert_exit(&c, 1);
	ck_assert_ptr_nonnull(strstr(c.err, "does not verify"));
	su_run_free(&c);
	free(all);
	free(first);
	free(second);
	free(repeat);
}
END_TEST

/* Tests: the server's log and request ids. */

#define LOG_VALUE	"zq-logged-7801@l.example"

/*
 * A request to the running server with extra header lines (NULL-ended,
 * or NULL) after Authorization of key (K_NONE: none); body JSON or NULL.
 */
static void
req_hdrs(struct su_resp *r, const char *method, const char *path, int key,
    const char *const *extra, const char *body)
{
	char url[512], auth[KEY_BUF + 32], err[CURL_ERROR_SIZE];
	const char *h[12];
	size_t n = 0;
	CURL *c;

	h[n++] = "Expect:";
	if (key >= 0) {
		(void)snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		    keys[key]);
		h[n++] = auth;
	}
	if (body != NULL)
		h[n++] = "Content-Type: application/json";
	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
		ck_assert_uint_lt(n, sizeof(h) / sizeof(h[0]) - 1);
		h[n++] = extra[i];
	}
	h[n] = NULL;
	ck_assert_int_lt(snprintf(url, sizeof(url), "%s%s", su_srv.base, path),
	    (int)sizeof(url));
	ck_assert_ptr_nonnull(c = curl_easy_init());
	ck_assert_msg(su_http_do(c, r, method, url, h, body, body != NULL ?
	    strlen(body) : 0, err) == 0, "%s %s: %s", method, path, err);
	curl_easy_cleanup(c);
}

/* A request with "X-Request-Id: rid". */
static void
req_rid(struct su_resp *r, const char *method, const char *path, int key,
    const char *rid, const char *body)
{
	char h[128];
	const char *extra[] = { h, NULL };

	(void)snprintf(h, sizeof(h), "X-Request-Id: %s", rid);
	req_hdrs(r, method, path, key, extra, body);
}

/*
 * Stop the fixture's server and start one with extra and env; the old
 * log is kept aside (as old.log, still collected), so su_logpath holds
 * only the new server's.
 */
static void
restart(const char *const *extra, const char *const *env)
{
	static const char *const serve[] = { "serve", "--listen",
	    "127.0.0.1:0", NULL };
	char old[PATH_MAX];
	static unsigned n;

	su_curl_cleanup();
	if (su_srv.pid > 0)
		su_srv_stop();
	ck_assert_int_lt(snprintf(old, sizeof(old), "%s/old%u.log", su_tdir,
	    n++), (int)sizeof(old));
	(void)rename(su_logpath, old);
	su_srv_start(serve, extra, env);
}

/* The log of the server, stopped first: every line is whole after it. */
static char *
stopped_log(void)
{
	char *log;

	su_curl_cleanup();
	su_srv_stop();
	ck_assert_ptr_nonnull(log = su_slurp(su_logpath, NULL));
	return log;
}

/* ts: RFC 3339 in UTC with milliseconds, 2026-12-07T23:30:50.123Z. */
static int
ts_valid(const char *t)
{
	static const char form[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	if (t == NULL || strlen(t) != sizeof(form) - 1)
		return 0;
	for (size_t i = 0; form[i] != '\0'; i++)
		if (form[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] !=
		    form[i])
			return 0;
	return 1;
}

/* An access line's keys, exactly. */
static const char *const access_keys[] = { "ts", "level", "msg",
	"request_id", "method", "route", "status", "duration_ms", "bytes",
	"key" };

/* What one request's access line must say. */
struct want_line {
	const char	*rid;
	const char	*method;
	const char	*route;
	const char	*status;
	const char	*key;
	int		 seen;
};

/* Check one access line (an object) against want, by its request id. */
static void
check_access(const struct jv *o, struct want_line *want, size_t nwant,
    const char *line)
{
	const char *rid = jstr(o, "request_id");
	const struct jv *d = jget(o, "duration_ms"), *st = jget(o, "status"),
	    *b = jget(o, "bytes");

	ck_assert_msg(o->n == NELEM(access_keys), "keys: [%s]", line);
	for (size_t k = 0; k < NELEM(access_keys); k++)
		ck_assert_msg(jget(o, access_keys[k]) != NULL, "no %s: [%s]",
		    access_keys[k], line);
	ck_assert_pstr_eq(jstr(o, "level"), "info");
	ck_assert_msg(st != NULL && st->type == J_NUM && b != NULL &&
	    b->type == J_NUM && d != NULL && d->type == J_NUM &&
	    strchr(d->s, '.') != NULL, "numbers: [%s]", line);
	ck_assert_msg(rid != NULL && jstr(o, "method") != NULL &&
	    jstr(o, "route") != NULL && jstr(o, "key") != NULL,
	    "strings: [%s]", line);
	for (size_t i = 0; i < nwant; i++) {
		if (strcmp(rid, want[i].rid) != 0)
			continue;
		ck_assert_msg(!want[i].seen, "two lines for %s", rid);
		want[i].seen = 1;
		ck_assert_pstr_eq(jstr(o, "method"), want[i].method);
		ck_assert_pstr_eq(jstr(o, "route"), want[i].route);
		ck_assert_str_eq(st->s, want[i].status);
		ck_assert_pstr_eq(jstr(o, "key"), want[i].key);
	}
}

/*
 * --log-format json: every line of the server's log is one JSON object
 * with ts (RFC 3339, ms), level and msg; every request has one access
 * line with exactly its keys, naming the route by its template (never
 * the path or the query), the status and the key's name, refusals
 * included; and no line holds a value, a token, a secret, the raw path
 * or the query.
 */
START_TEST(test_log_json_access)
{
	static const char *const extra[] = { "--log-format", "json",
	    "--max-body", "1024", NULL };
	static const char *const bogus[] = { "X-Request-Id: t-401",
	    "Authorization: Bearer pvk_zqbogus7805zqbogus7805zqbogus7805", NULL };
	struct want_line want[] = {
		{ "t-put", "POST", "/v1/records", "201", "app-writer", 0 },
		{ "t-access", "GET", "/v1/records/{id}", "200", "ops-admin", 0 },
		{ "t-meta", "GET", "/v1/records/{id}/metadata", "404",
		    "ops-admin", 0 },
		{ "t-404", "GET", "other", "404", "-", 0 },
		{ "t-405", "DELETE", "/v1/health", "405", "-", 0 },
		{ "t-401", "POST", "/v1/detokenize", "401", "-", 0 },
		{ "t-head", "HEAD", "/v1/health", "200", "-", 0 },
		{ "t-413", "POST", "/v1/records", "413", "app-writer", 0 },
		{ "t-400", "POST", "/v1/records", "400", "app-writer", 0 },
		{ "t-403", "GET", "/v1/audit", "403", "app-writer", 0 },
	};
	char path[128], big[2100], id[ID_BUF], *log, *line, *save = NULL;
	struct su_resp r;
	struct jv *v;
	size_t lines = 0, access = 0;

	restart(extra, NULL);
	req_rid(&r, "POST", "/v1/records", K_WRITER, "t-put",
	    "{\"fields\":{\"email\":\"" LOG_VALUE "\"}}");
	ck_assert_int_eq(r.status, 201);
	v = su_body_json(&r);
	ck_assert_msg(su_id_valid(jstr(v, "id"), "rec_"), "[%s]", r.body.p);
	memcpy(id, jstr(v, "id"), sizeof(id));
	(void)snprintf(path, sizeof(path), "/v1/records/%s", id);
	jfree(v);
	su_resp_free(&r);
	req_rid(&r, "GET", path, K_ADMIN, "t-access", NULL);
	ck_assert_int_eq(r.status, 200);
	su_resp_free(&r);
	req_rid(&r, "GET", "/v1/records/rec_zqnosuch7806AAAAAAAAAA/metadata",
	    K_ADMIN, "t-meta", NULL);
	ck_assert_int_eq(r.status, 404);
	su_resp_free(&r);
	req_rid(&r, "GET", "/v1/zq-path-7807?q=zq-query-7808", K_NONE, "t-404",
	    NULL);
	ck_assert_int_eq(r.status, 404);
	su_resp_free(&r);
	req_rid(&r, "DELETE", "/v1/health", K_NONE, "t-405", NULL);
	ck_assert_int_eq(r.status, 405);
	su_resp_free(&r);
	req_hdrs(&r, "POST", "/v1/detokenize", K_NONE, bogus, GOOD_DETOK);
	ck_assert_int_eq(r.status, 401);
	su_resp_free(&r);
	req_rid(&r, "HEAD", "/v1/health", K_NONE, "t-head", NULL);
	ck_assert_int_eq(r.status, 200);
	su_resp_free(&r);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "{\"fields\":{\"email\":\"", 20);
	req_rid(&r, "POST", "/v1/records", K_WRITER, "t-413", big);
	ck_assert_int_eq(r.status, 413);
	su_resp_free(&r);
	req_rid(&r, "POST", "/v1/records", K_WRITER, "t-400", "{\"fields\":");
	ck_assert_int_eq(r.status, 400);
	su_resp_free(&r);
	req_rid(&r, "GET", "/v1/audit", K_WRITER, "t-403", NULL);
	ck_assert_int_eq(r.status, 403);
	su_resp_free(&r);

	log = stopped_log();
	ck_assert_msg(strstr(log, LOG_VALUE) == NULL && strstr(log, id) ==
	    NULL && strstr(log, "zq-path-7807") == NULL && strstr(log,
	    "zq-query-7808") == NULL && strstr(log, "zqbogus7805") == NULL &&
	    strstr(log, "zqnosuch7806") == NULL && strstr(log,
	    keys[K_WRITER]) == NULL, "the log holds what it must not: [%s]",
	    log);
	for (line = strtok_r(log, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		const char *lvl;

		lines++;
		ck_assert_msg((v = jparse(line, strlen(line))) != NULL &&
		    v->type == J_OBJ, "not a JSON object: [%s]", line);
		ck_assert_msg(ts_valid(jstr(v, "ts")), "ts: [%s]", line);
		lvl = jstr(v, "level");
		ck_assert_msg(lvl != NULL && (strcmp(lvl, "error") == 0 ||
		    strcmp(lvl, "warn") == 0 || strcmp(lvl, "info") == 0 ||
		    strcmp(lvl, "debug") == 0), "level: [%s]", line);
		ck_assert_msg(jstr(v, "msg") != NULL, "msg: [%s]", line);
		if (strcmp(jstr(v, "msg"), "request") == 0) {
			access++;
			check_access(v, want, NELEM(want), line);
		}
		jfree(v);
	}
	for (size_t i = 0; i < NELEM(want); i++)
		ck_assert_msg(want[i].seen, "no access line for %s",
		    want[i].rid);
	ck_assert_uint_eq(access, NELEM(want));
	ck_assert_uint_gt(lines, access);	/* start and stop too */
	free(log);
}
END_TEST

/* The audit event whose request_id is rid: its action, or NULL. */
static char *
audit_action_of(const char *rid)
{
	struct su_resp r;
	struct jv *v;
	const struct jv *ev;
	char *action = NULL;

	req(&r, "GET", "/v1/audit?after=0&limit=1000", K_AUDITOR, NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	v = su_body_json(&r);
	ev = jget(v, "events");
	ck_assert_msg(ev != NULL && ev->type == J_ARR, "[%s]", r.body.p);
	for (size_t i = 0; i < ev->n && action == NULL; i++) {
		const char *id = jstr(&ev->items[i], "request_id");

		if (id != NULL && strcmp(id, rid) == 0)
			ck_assert_ptr_nonnull(action = strdup(jstr(
			    &ev->items[i], "action")));
	}
	jfree(v);
	su_resp_free(&r);
	return action;
}

/*
 * X-Request-Id: a valid one comes back and is in the request's audit
 * event (GET /v1/audit and audit export); any other (too long, a
 * character outside [A-Za-z0-9._-], empty, two of them, a line break
 * spelled out) is replaced by a new one, 22 base64url characters, which
 * comes back and is in the audit event; a request without one gets one.
 */
START_TEST(test_request_id)
{
	static const char *const bad[] = {
		"X-Request-Id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaa",			/* 65 */
		"X-Request-Id: a b",
		"X-Request-Id: a/b",
		"X-Request-Id: a\"b",
		"X-Request-Id: a%0d%0aSet-Cookie:x",
		"X-Request-Id: caf\xc3\xa9",
		"X-Request-Id;",			/* empty */
		"X-Request-Id: a,b",
	};
	static const char long_ok[] = "A123456789.123456789_123456789-"
	    "123456789012345678901234567890123";	/* 64 */
	char got[API_REQUEST_ID_MAX + 1], prev[API_REQUEST_ID_MAX + 1] = "";
	struct su_resp r;
	struct su_run c;
	char *action;

	req_rid(&r, "GET", "/v1/audit?limit=1", K_AUDITOR, "Ab9._-z", NULL);
	ck_assert_int_eq(r.status, 200);
	su_assert_request_id(&r, "Ab9._-z");
	su_resp_free(&r);
	ck_assert_ptr_nonnull(action = audit_action_of("Ab9._-z"));
	ck_assert_str_eq(action, "audit.read");
	free(action);
	req_rid(&r, "POST", "/v1/records", K_WRITER, long_ok, GOOD_REC);
	ck_assert_int_eq(r.status, 201);
	su_assert_request_id(&r, long_ok);
	su_resp_free(&r);
	ck_assert_ptr_nonnull(action = audit_action_of(long_ok));
	ck_assert_str_eq(action, "records.create");
	free(action);

	for (size_t i = 0; i <= NELEM(bad); i++) {
		const char *two[] = { "X-Request-Id: one", "X-Request-Id: two",
		    NULL };
		const char *one[] = { i < NELEM(bad) ? bad[i] : NULL, NULL };

		/* The last round: two valid ones are one too many. */
		req_hdrs(&r, "POST", "/v1/detokenize", K_NONE, i < NELEM(bad) ?
		    one : two, GOOD_DETOK);
		ck_assert_int_eq(r.status, 401);
		su_assert_request_id(&r, NULL);
		(void)snprintf(got, sizeof(got), "%s", su_header(&r,
		    "X-Request-Id"));
		ck_assert_msg(strlen(got) == PV_B64URL16_LEN && strspn(got,
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789_-") == PV_B64URL16_LEN, "[%s] for [%s]", got,
		    one[0] != NULL ? one[0] : "two");
		ck_assert_msg(strcmp(got, prev) != 0, "the same id twice");
		ck_assert_ptr_null(su_header(&r, "Set-Cookie"));
		memcpy(prev, got, sizeof(prev));
		su_resp_free(&r);
		ck_assert_ptr_nonnull(action = audit_action_of(got));
		ck_assert_str_eq(action, "detokenize");
		free(action);
	}
	/* None sent: one made. */
	req(&r, "GET", "/v1/health", K_NONE, NULL, NULL);
	su_assert_request_id(&r, NULL);
	ck_assert_uint_eq(strlen(su_header(&r, "X-Request-Id")),
	    PV_B64URL16_LEN);
	su_resp_free(&r);

	cli(&c, "audit", "export", NULL);
	ck_assert_exit(&c, 0);
	ck_assert_msg(strstr(c.out, "\"request_id\":\"Ab9._-z\"") != NULL,
	    "[%.2000s]", c.out);
	su_run_free(&c);
}
END_TEST

/* The access line of a text log: "TS info request request_id=…". */
static int
text_access_line(const char *log, const char *rid)
{
	char want[160];
	const char *p = log;

	(void)snprintf(want, sizeof(want), " info request request_id=%s "
	    "method=GET route=/v1/health status=200 duration_ms=", rid);
	while ((p = strstr(p, want)) != NULL) {
		const char *bol = p;

		while (bol > log && bol[-1] != '\n')
			bol--;
		if (p - bol == 24) {
			char ts[25];

			memcpy(ts, bol, 24);
			ts[24] = '\0';
			return ts_valid(ts) && strstr(p, " key=-\n") != NULL;
		}
		p++;
	}
	return 0;
}

/*
 * Text is the default, and JSON under systemd (JOURNAL_STREAM naming the
 * stderr the server has, not another file); --log-level warn drops info
 * lines, access lines included; a bad --log-format or --log-level exits
 * 2 and serves nothing.
 */
START_TEST(test_log_format_level)
{
	static const char *const warn[] = { "--log-level", "warn", NULL };
	char js[96], *log;
	const char *env[] = { js, NULL };
	struct su_resp r;
	struct su_run c;
	struct stat st;
	int fd;

	cli(&c, "serve", "--log-format", "xml", NULL);
	ck_assert_exit(&c, 2);
	ck_assert_ptr_nonnull(strstr(c.err, "--log-format"));
	su_run_free(&c);
	cli(&c, "serve", "--log-level", "loud", NULL);
	ck_assert_exit(&c, 2);
	ck_assert_ptr_nonnull(strstr(c.err, "--log-level"));
	su_run_free(&c);

	/* Text by default. */
	restart(NULL, NULL);
	req_rid(&r, "GET", "/v1/health", K_NONE, "t-text", NULL);
	su_resp_free(&r);
	log = stopped_log();
	ck_assert_msg(text_access_line(log, "t-text"), "[%s]", log);
	ck_assert_msg(log[0] != '{', "[%s]", log);
	free(log);

	/* A JOURNAL_STREAM of another file: still text. */
	(void)snprintf(js, sizeof(js), "JOURNAL_STREAM=1:1");
	restart(NULL, env);
	req_rid(&r, "GET", "/v1/health", K_NONE, "t-other", NULL);
	su_resp_free(&r);
	log = stopped_log();
	ck_assert_msg(text_access_line(log, "t-other"), "[%s]", log);
	free(log);

	/* The journal: stderr is the file JOURNAL_STREAM names. */
	restart(NULL, NULL);
	su_curl_cleanup();
	su_srv_stop();
	ck_assert_int_eq(unlink(su_logpath), 0);
	ck_assert_int_ge(fd = open(su_logpath, O_WRONLY | O_CREAT | O_CLOEXEC,
	    0600), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(close(fd), 0);
	(void)snprintf(js, sizeof(js), "JOURNAL_STREAM=%llu:%llu",
	    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	su_srv_start((const char *const[]){ "serve", "--listen",
	    "127.0.0.1:0", NULL }, NULL, env);
	req_rid(&r, "GET", "/v1/health", K_NONE, "t-journal", NULL);
	su_resp_free(&r);
	log = stopped_log();
	ck_assert_msg(log[0] == '{' && strstr(log, "\"msg\":\"request\","
	    "\"request_id\":\"t-journal\"") != NULL, "[%s]", log);
	free(log);

	/* warn: no info line, so no access line. */
	restart(warn, NULL);
	req_rid(&r, "GET", "/v1/health", K_NONE, "t-warn", NULL);
	ck_assert_int_eq(r.status, 200);
	su_resp_free(&r);
	log = stopped_log();
	ck_assert_msg(strstr(log, " info ") == NULL && strstr(log, "t-warn") ==
	    NULL, "[%s]", log);
	free(log);
}
END_TEST

static Suite *
http_routes_suite(void)
{
	Suite *s = suite_create("http_routes");
	TCase *tc;

	tc = http_tcase(s, "errors", 1, TIMEOUT);
	tcase_add_test(tc, test_err_order);
	tcase_add_test(tc, test_http_405_allow);
	tcase_add_test(tc, test_http_401_challenge);

	tc = http_tcase(s, "metrics", 1, TIMEOUT);
	tcase_add_test(tc, test_metrics);
	tcase_add_test(tc, test_metrics_aborted_request);

	tc = http_tcase(s, "signing", 1, TIMEOUT);
	tcase_add_test(tc, test_signing_keys);

	tc = http_tcase(s, "listen", 1, TIMEOUT);
	tcase_add_test(tc, test_listen_off_loopback);

	tc = http_tcase(s, "log", 1, TIMEOUT);
	tcase_add_test(tc, test_log_json_access);
	tcase_add_test(tc, test_request_id);
	tcase_add_test(tc, test_log_format_level);

	tc = http_tcase(s, "openapi", 0, TIMEOUT);
	tcase_add_test(tc, test_openapi_documents_routes);
	return s;
}

int
main(void)
{
	return su_suite_main("check_http_routes", http_routes_suite());
}
