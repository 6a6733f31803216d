/* SPDX-License-Identifier: Apache-2.0 */
/*
 * server.c: the API's routes and handlers, authentication, and metrics.
 * No socket here (http.c) and no jansson (json.c): a handler reads a
 * struct api_req and fills a struct api_resp.  Every fact of a route is
 * in its row of api_routes, at the end of the file.
 *
 * Nothing here logs or echoes a personal value: error messages are built
 * from status strings and field names only.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api_int.h"

/* The audit action of a request that matches no route. */
#define ACTION_UNKNOWN	"unknown"

static const unsigned status_slots[API_STATUS_SLOTS] = {
	200, 201, 400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429, 500,
	503,
	0,	/* any other, or no answer sent */
};

/* Latency bucket bounds in microseconds (Prometheus "le"). */
static const unsigned long long lat_bounds[API_LAT_BUCKETS] = {
	250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
	1000000, 5000000,
};

#define ID_BYTES	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" \
			"0123456789_-"

static int
path_match(const char *tmpl, const char *path, char id[static API_ID_MAX + 1])
{
	const char *hole = strstr(tmpl, "{id}"), *end;
	size_t pre, len;

	if (hole == NULL)
		return strcmp(tmpl, path) == 0;
	pre = (size_t)(hole - tmpl);
	if (strncmp(tmpl, path, pre) != 0)
		return 0;
	path += pre;
	if ((end = strchr(path, '/')) == NULL)
		end = path + strlen(path);
	len = (size_t)(end - path);
	if (len == 0 || len > API_ID_MAX || strcmp(hole + 4, end) != 0)
		return 0;
	/*
	 * The path is the raw one (http.c): an id is base64url and '_',
	 * so "%2F", "%00" or any other byte is no route at all.
	 */
	for (size_t i = 0; i < len; i++)
		if (strchr(ID_BYTES, path[i]) == NULL || path[i] == '\0')
			return 0;
	/* "/v1/records/batch" is its own route, not a record id. */
	if (len == 5 && memcmp(path, "batch", 5) == 0)
		return 0;
	memcpy(id, path, len);
	id[len] = '\0';
	return 1;
}

const struct api_route *
api_route_of(const char *method, const char *path,
    char id[static API_ID_MAX + 1])
{
	int head = strcmp(method, "HEAD") == 0;

	id[0] = '\0';
	for (size_t r = 0; r < API_NROUTES; r++) {
		const struct api_route *rt = &api_routes[r];

		/* HEAD only where a GET has no effect: the public routes. */
		if ((strcmp(method, rt->method) == 0 || (head &&
		    rt->roles == 0 && strcmp(rt->method, "GET") == 0)) &&
		    path_match(rt->path, path, id))
			return rt;
	}
	return NULL;
}

/* Append ", " (unless first) and method to allow, if it fits. */
static void
allow_add(char *allow, size_t cap, size_t *n, const char *method)
{
	size_t ml = strlen(method);

	if (*n + ml + 3 > cap)
		return;
	if (*n > 0) {
		memcpy(allow + *n, ", ", 2);
		*n += 2;
	}
	memcpy(allow + *n, method, ml + 1);
	*n += ml;
}

int
api_route_allow(const char *path, char *allow, size_t cap)
{
	char id[API_ID_MAX + 1];
	size_t n = 0;
	int known = 0;

	allow[0] = '\0';
	for (size_t r = 0; r < API_NROUTES; r++) {
		const struct api_route *rt = &api_routes[r];

		if (!path_match(rt->path, path, id))
			continue;
		known = 1;
		allow_add(allow, cap, &n, rt->method);
		/* Answered as GET where a GET has no effect (api_route_of). */
		if (rt->roles == 0 && strcmp(rt->method, "GET") == 0)
			allow_add(allow, cap, &n, "HEAD");
	}
	return known;
}

const char *
api_route_name(const char *method, const char *path)
{
	char id[API_ID_MAX + 1];
	const struct api_route *r = api_route_of(method, path, id);

	if (r != NULL)
		return r->path;
	for (size_t i = 0; i < API_NROUTES; i++)
		if (path_match(api_routes[i].path, path, id))
			return api_routes[i].path;
	return "other";
}

int
api_request_id_valid(const char *s, size_t len)
{
	if (len == 0 || len > API_REQUEST_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' &&
		    s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

pv_status
api_request_id_new(char out[static API_REQUEST_ID_MAX + 1])
{
	uint8_t r[16];
	pv_status rc;

	if ((rc = pv_random(r, sizeof(r))) != PV_OK)
		return rc;
	pv_b64url_encode16(out, r);
	return PV_OK;
}

void
api_observe(struct api_server *s, const struct api_route *r, unsigned status,
    uint64_t micros)
{
	size_t row = r == NULL ? API_NROUTES : (size_t)(r - api_routes);
	int slot = API_STATUS_SLOTS - 1, b;

	for (int i = 0; i < API_STATUS_SLOTS - 1; i++)
		if (status_slots[i] == status) {
			slot = i;
			break;
		}
	atomic_fetch_add(&s->requests[row][slot], 1);
	for (b = 0; b < API_LAT_BUCKETS && micros > lat_bounds[b]; b++)
		;
	atomic_fetch_add(&s->lat_bucket[b], 1);
	atomic_fetch_add(&s->lat_sum_us, micros);
	atomic_fetch_add(&s->lat_count, 1);
}

/* Responses. */

static void
reply(struct api_resp *rs, unsigned status)
{
	rs->status = status;
	rs->ctype = "application/json";
}

/* Begin an answer of status in JSON: j writes the body. */
static void
answer(struct api_resp *rs, unsigned status, struct pv_json *j)
{
	reply(rs, status);
	pv_json_init(j, &rs->body);
}

/*
 * An error's message: the status's own, then detail if there is one.
 * detail is our own text; it never holds a value.
 */
static void
error_message(char *msg, size_t cap, pv_status rc, const char *detail)
{
	if (detail != NULL && *detail != '\0')
		(void)snprintf(msg, cap, "%s: %s", pv_strerror(rc), detail);
	else
		(void)snprintf(msg, cap, "%s", pv_strerror(rc));
}

/* An error answer with message msg, in place of anything written so far. */
static void
fail_msg(struct api_resp *rs, unsigned status, const char *code,
    const char *msg)
{
	struct pv_json j;

	pv_buf_cleanup(&rs->body);
	reply(rs, status);
	rs->code = code;
	rs->challenge = 0;
	rs->cache = NULL;
	pv_json_init(&j, &rs->body);
	api_json_error(&j, code, msg);
	if (pv_json_end(&j) != PV_OK) {
		/* The buffer holds at least a small error: fall back. */
		pv_buf_cleanup(&rs->body);
		rs->status = 500;
	}
}

/* An error answer: the status's own message, then detail if not NULL. */
static void
fail(struct api_resp *rs, unsigned status, const char *code, pv_status rc,
    const char *detail)
{
	char msg[API_ERR_MAX + 128];

	error_message(msg, sizeof(msg), rc, detail);
	fail_msg(rs, status, code, msg);
}

/* A 503 that tells the client when to try again. */
static void
unavailable(struct api_resp *rs, const char *detail)
{
	fail(rs, 503, "unavailable", PV_EUNAVAIL, detail);
	rs->retry_after = 1;
}

/* A 429, with the vault's wait capped at what a Retry-After may say. */
static void
too_many(struct api_resp *rs, uint64_t retry)
{
	fail(rs, 429, "too_many_requests", PV_ELIMIT, NULL);
	rs->retry_after = (unsigned)(retry > PV_RETRY_AFTER_MAX ?
	    PV_RETRY_AFTER_MAX : retry);
}

/* The HTTP status that goes with a whole-request failure. */
static unsigned
http_status(pv_status rc)
{
	switch (rc) {
	case PV_EJSON:
		return 400;
	case PV_EUNAUTH:
		return 401;
	case PV_EFORBIDDEN:
	case PV_EPURPOSE:
		return 403;
	case PV_ENOTFOUND:
		return 404;
	case PV_EHOLD:
		return 409;
	case PV_ELIMIT:
		return 429;
	case PV_ESHREDDED:
		return 410;
	case PV_ETOOBIG:
		return 413;
	case PV_EFIELD:
	case PV_EVALUE:
	case PV_EINVAL:
	case PV_EREASON:
	case PV_EMEMBER:
	case PV_ENOTINDEXED:
	case PV_EOPTOUT:
		return 422;
	case PV_EFULL:
	case PV_EUNAVAIL:
	case PV_EKEYSTATE:	/* no active KEK: until kms rotate */
		return 503;
	default:
		return 500;
	}
}

/*
 * Whether rc is the storage failing (a full map or disk, an I/O error):
 * 503 with Retry-After, and health says degraded until a write succeeds.
 */
static int
storage_failure(pv_status rc)
{
	return rc == PV_EFULL || rc == PV_ESTORE || rc == PV_EIO;
}

static void
fail_rc(struct api_resp *rs, pv_status rc, const char *detail)
{
	unsigned st = http_status(rc);

	if (storage_failure(rc)) {
		pv_log(PV_LOG_ERROR, "request failed: storage: %s",
		    pv_strerror(rc));
		fail(rs, 503, "unavailable", PV_EUNAVAIL, "storage is "
		    "failing; retry");
		rs->retry_after = 1;
		rs->storage = 1;
		return;
	}
	if (st == 500)
		pv_log(PV_LOG_ERROR, "request failed: %s", pv_strerror(rc));
	fail(rs, st, st == 500 ? "internal" : api_error_code(rc), rc,
	    st == 500 ? NULL : detail);
	rs->challenge = st == 401;
	if (st == 503)
		rs->retry_after = 1;
}

/*
 * A refused field or value (rc PV_EFIELD, PV_EVALUE, PV_ETOOBIG or
 * PV_EINVAL): its code, and why (vault.h's VAULT_WHY_MAX words, naming the
 * field) as the whole message.
 */
static void
fail_why(struct api_resp *rs, pv_status rc, const char *why)
{
	if (why == NULL || *why == '\0') {
		fail_rc(rs, rc, NULL);
		return;
	}
	fail_msg(rs, http_status(rc), api_error_code(rc), why);
}

/* A handler's answer is written: an error instead if it could not be. */
static void
finish(struct api_resp *rs, const struct pv_json *j)
{
	pv_status rc;

	if ((rc = pv_json_end(j)) != PV_OK)
		fail_rc(rs, rc, NULL);
}

/* Authentication: "Authorization: Bearer pvk_…". */
static pv_status
authenticate(struct api_server *s, const struct api_req *rq,
    struct vault_apikey *key)
{
	const char *p = rq->auth;
	pv_status rc;

	if (p == NULL || strncasecmp(p, "Bearer ", 7) != 0)
		return PV_EUNAUTH;
	p += 7;
	while (*p == ' ')
		p++;
	if ((rc = vault_apikey_auth(s->vault, p, strlen(p), key)) != PV_OK)
		return rc;
	/*
	 * A key bound to a client certificate holds only over a connection
	 * that presented that certificate (verified by http.c): otherwise it
	 * is refused exactly as an unknown key is.
	 */
	if (key->cert_bound && (rq->cert_sha256 == NULL ||
	    !pv_ct_eq(rq->cert_sha256, key->cert_sha256,
	    VAULT_CERT_HASH_LEN))) {
		memset(key, 0, sizeof(*key));
		return PV_EUNAUTH;
	}
	return PV_OK;
}

/* Whether ctype is the media type type, parameters (";…") allowed. */
static int
media_is(const char *ctype, const char *type)
{
	size_t n = strlen(type);

	if (ctype == NULL || strncasecmp(ctype, type, n) != 0)
		return 0;
	for (ctype += n; *ctype == ' ' || *ctype == '\t'; ctype++)
		;
	return *ctype == '\0' || *ctype == ';';
}

/*
 * Whether the request's body is of a type route r takes (API_BODY_*); a
 * route that reads none takes anything, as it ignores it.  With only the
 * headers in, an optional body is judged by its Content-Type alone.
 */
static int
media_ok(const struct api_route *r, const struct api_req *rq)
{
	if (r->body == 0)
		return 1;
	if ((r->body & API_BODY_OPTIONAL) && ((!rq->headers_only &&
	    rq->len == 0) || (rq->headers_only && rq->ctype == NULL)))
		return 1;
	if (media_is(rq->ctype, "application/json"))
		return 1;
	return (r->body & API_BODY_MERGE) &&
	    media_is(rq->ctype, "application/merge-patch+json");
}

/*
 * Limits stricter than the vault's own, checked before it is asked, why
 * saying which (as the vault does: VAULT_WHY_MAX).  A field whose name is
 * not valid is left to the vault, which refuses the name first.
 */
static pv_status
check_limits(const struct api_server *s, const struct vault_field *f,
    size_t n, char why[static VAULT_WHY_MAX])
{
	char what[48];

	why[0] = '\0';
	if (n > s->limits.fields_max) {
		(void)snprintf(why, VAULT_WHY_MAX, "more than %zu fields",
		    s->limits.fields_max);
		return PV_ETOOBIG;
	}
	for (size_t i = 0; i < n; i++)
		if (f[i].value != NULL && f[i].len > s->limits.value_max &&
		    pv_field_name_valid(f[i].name, f[i].namelen)) {
			(void)snprintf(what, sizeof(what), "longer than %zu "
			    "bytes", s->limits.value_max);
			vault_field_why(why, &f[i], i, what);
			return PV_ETOOBIG;
		}
	return PV_OK;
}

/*
 * Whether a reason has something to read: a character that is not white
 * space, a control character, or an invisible format character (zero
 * width spaces and joiners, direction marks, the byte order mark, Hangul
 * and Braille blanks, variation selectors, tags).  A reason of nothing
 * else is refused as blank.  Invalid UTF-8 counts as visible here:
 * vault_reason_valid refuses it.
 */
static int
invisible(uint32_t c)
{
	static const uint32_t ranges[][2] = {
		{ 0x0000, 0x0020 }, { 0x007f, 0x00a0 }, { 0x00ad, 0x00ad },
		{ 0x034f, 0x034f }, { 0x061c, 0x061c }, { 0x115f, 0x1160 },
		{ 0x1680, 0x1680 }, { 0x17b4, 0x17b5 }, { 0x180b, 0x180f },
		{ 0x2000, 0x200f }, { 0x2028, 0x202f }, { 0x205f, 0x206f },
		{ 0x2800, 0x2800 }, { 0x3000, 0x3000 }, { 0x3164, 0x3164 },
		{ 0xfe00, 0xfe0f }, { 0xfeff, 0xfeff }, { 0xffa0, 0xffa0 },
		{ 0xfff0, 0xfffb }, { 0x1d173, 0x1d17a }, { 0xe0000, 0xe007f },
		{ 0xe0100, 0xe01ef },
	};

	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		if (c >= ranges[i][0] && c <= ranges[i][1])
			return 1;
	return 0;
}

static int
reason_visible(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		uint32_t c;
		size_t n;

		if (*p < 0x80) {
			c = *p;
			n = 1;
		} else if ((*p & 0xe0) == 0xc0) {
			c = *p & 0x1fu;
			n = 2;
		} else if ((*p & 0xf0) == 0xe0) {
			c = *p & 0x0fu;
			n = 3;
		} else if ((*p & 0xf8) == 0xf0) {
			c = *p & 0x07u;
			n = 4;
		} else
			return 1;
		for (size_t i = 1; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 1;
			c = (c << 6) | (p[i] & 0x3fu);
		}
		if (!invisible(c))
			return 1;
		p += n;
	}
	return 0;
}

/*
 * 422 reason_required for a purpose's reason with nothing visible in it;
 * an absent one is the vault's to judge (PV_EREASON names the purpose).
 */
static int
reason_refused(struct api_resp *rs, const char *reason)
{
	if (reason == NULL || reason_visible(reason))
		return 0;
	fail(rs, 422, "reason_required", PV_EREASON, "a reason must have "
	    "visible characters, not only spaces or invisible ones");
	return 1;
}

/*
 * 422 reason_required for the reason of what ("a legal hold", "a
 * deletion"), which no purpose asked for, so that PV_EREASON's own text
 * would misname it: absent (with required), blank, or not valid.
 */
static int
own_reason_refused(struct api_resp *rs, const char *reason, int required,
    const char *what)
{
	char msg[128];

	if (reason == NULL && !required)
		return 0;
	if (reason == NULL || *reason == '\0')
		(void)snprintf(msg, sizeof(msg), "%s needs a reason", what);
	else if (!reason_visible(reason))
		(void)snprintf(msg, sizeof(msg), "%s needs a reason with "
		    "visible characters, not only spaces or invisible ones",
		    what);
	else if (!vault_reason_valid(reason, strlen(reason)))
		(void)snprintf(msg, sizeof(msg), "%s needs a reason of 1 to "
		    "200 characters without control characters", what);
	else
		return 0;
	fail_msg(rs, 422, "reason_required", msg);
	return 1;
}

/*
 * Handlers, one per route (api_handler).  Each starts after its route's
 * role check; key and ev are NULL on the public routes.
 */

static void
h_health(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, struct vault_event *ev, const char *id)
{
	struct pv_json j;

	(void)key;
	(void)ev;
	(void)id;
	if (rq->late || atomic_load(&s->stopping)) {
		fail(rs, 503, "unavailable", PV_EUNAVAIL, "shutting down");
		return;
	}
	/* A load balancer routes away while storage fails. */
	if (atomic_load(&s->degraded)) {
		answer(rs, 503, &j);
		rs->retry_after = 1;
		pv_json_obj(&j);
		pv_json_kstr(&j, "status", "degraded");
		pv_json_kstr(&j, "reason", "storage");
		pv_json_close(&j);
		finish(rs, &j);
		return;
	}
	answer(rs, 200, &j);
	pv_json_obj(&j);
	pv_json_kstr(&j, "status", "ok");
	pv_json_close(&j);
	finish(rs, &j);
}

/*
 * How long a client or a shared cache may keep the list of signing keys.
 * A receipt that names a version missing from a kept list means a
 * rotation since: fetch the list again.
 */
#define SIGNING_KEYS_CACHE	"public, max-age=300"

static void
h_signing_keys(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    struct vault_event *ev, const char *id)
{
	struct vault_signing_key *k = NULL;
	struct pv_json j;
	size_t n = 0;
	pv_status rc;

	(void)rq;
	(void)key;
	(void)ev;
	(void)id;
	if ((rc = vault_signing_keys(s->vault, &k, &n)) != PV_OK) {
		fail_rc(rs, rc, NULL);
		return;
	}
	answer(rs, 200, &j);
	pv_json_obj(&j);
	pv_json_key(&j, "keys");
	pv_json_arr(&j);
	for (size_t i = 0; i < n; i++)
		api_json_signing_key(&j, &k[i]);
	pv_json_close(&j);
	pv_json_close(&j);
	finish(rs, &j);
	if (rs->status == 200)
		rs->cache = SIGNING_KEYS_CACHE;
	free(k);
}

static void
h_records(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    struct vault_event *ev, const char *id)
{
	char (*tokens)[VAULT_ID_STRLEN + 1] = NULL;
	struct vault_put_result res;
	struct api_records *recs = NULL;
	struct vault_record_in *in;
	char err[API_ERR_MAX], why[VAULT_WHY_MAX];
	struct pv_json j;
	pv_status rc;

	(void)key;
	(void)id;
	if ((rc = api_records_parse(rq->body, rq->len, 0, 1, &recs, err)) !=
	    PV_OK) {
		fail_rc(rs, rc, err);
		return;
	}
	in = api_records_in(recs, 0);
	if ((rc = check_limits(s, in->fields, in->nfields, why)) != PV_OK) {
		fail_why(rs, rc, why);
		goto out;
	}
	if ((tokens = calloc(in->nfields ? in->nfields : 1,
	    sizeof(*tokens))) == NULL) {
		fail_rc(rs, PV_ENOMEM, NULL);
		goto out;
	}
	res.tokens = tokens;
	res.why[0] = '\0';
	if ((rc = vault_put_ev(s->vault, in, 1, &res, ev)) != PV_OK) {
		fail_rc(rs, rc, NULL);
		goto out;
	}
	if (res.status != PV_OK) {
		fail_why(rs, res.status, res.why);
		goto out;
	}
	rs->audited = 1;
	answer(rs, 201, &j);
	api_json_put_result(&j, in, &res);
	finish(rs, &j);
	if (rs->status == 201)
		(void)snprintf(rs->location, sizeof(rs->location),
		    "/v1/records/%s", res.id);
out:
	free(tokens);
	api_records_free(recs);
}

/*
 * A batch entry that was not stored: why, as an error object.  A record
 * that did not decode says so as a whole request would (the status's
 * text, then detail); a refused field or value says only why.
 */
static void
batch_error(struct pv_json *j, pv_status st, const char *detail, int decode)
{
	char msg[API_ERR_MAX + 128];

	if (decode)
		error_message(msg, sizeof(msg), st, detail);
	else
		(void)snprintf(msg, sizeof(msg), "%s", detail != NULL &&
		    *detail != '\0' ? detail : pv_strerror(st));
	api_json_error(j, api_error_code(st), msg);
}

static void
h_batch(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, struct vault_event *ev, const char *id)
{
	struct api_records *recs = NULL;
	struct vault_record_in *valid = NULL;
	struct vault_put_result *res = NULL;
	char (*tokens)[VAULT_ID_STRLEN + 1] = NULL;
	size_t *map = NULL, n, nvalid = 0, ntok = 0, pos = 0;
	struct pv_json j;
	char err[API_ERR_MAX], why[VAULT_WHY_MAX];
	const char *detail;
	pv_status rc;

	(void)key;
	(void)id;
	if ((rc = api_records_parse(rq->body, rq->len, 1, s->limits.batch_max,
	    &recs, err)) != PV_OK) {
		fail_rc(rs, rc, err);
		return;
	}
	n = api_records_count(recs);
	if ((valid = calloc(n, sizeof(*valid))) == NULL ||
	    (res = calloc(n, sizeof(*res))) == NULL ||
	    (map = calloc(n, sizeof(*map))) == NULL) {
		fail_rc(rs, PV_ENOMEM, NULL);
		goto out;
	}
	/* Only records that decoded and fit go to the vault. */
	for (size_t i = 0; i < n; i++) {
		struct vault_record_in *in = api_records_in(recs, i);

		if (api_records_status(recs, i, &detail) != PV_OK ||
		    check_limits(s, in->fields, in->nfields, why) != PV_OK)
			continue;
		map[nvalid] = i;
		valid[nvalid++] = *in;
		ntok += in->nfields;
	}
	if ((tokens = calloc(ntok ? ntok : 1, sizeof(*tokens))) == NULL) {
		fail_rc(rs, PV_ENOMEM, NULL);
		goto out;
	}
	for (size_t k = 0; k < nvalid; k++) {
		res[k].tokens = tokens + pos;
		pos += valid[k].nfields;
	}
	if (nvalid > 0 && (rc = vault_put_ev(s->vault, valid, nvalid, res,
	    ev)) != PV_OK && http_status(rc) >= 500) {
		/* The commit failed: nothing of the batch was stored. */
		fail_rc(rs, rc, NULL);
		goto out;
	}
	for (size_t k = 0; k < nvalid; k++)
		if (res[k].status == PV_OK)
			rs->audited = 1;	/* logged with what it stored */
	answer(rs, 200, &j);
	pv_json_obj(&j);
	pv_json_key(&j, "results");
	pv_json_arr(&j);
	for (size_t i = 0, k = 0; i < n; i++) {
		struct vault_record_in *in = api_records_in(recs, i);
		pv_status st;

		if (k < nvalid && map[k] == i) {
			/* Sent to the vault: its answer for this record. */
			if ((st = res[k].status) == PV_OK)
				api_json_put_result(&j, in, &res[k]);
			else
				batch_error(&j, st, res[k].why, 0);
			k++;
		} else if ((st = api_records_status(recs, i, &detail)) !=
		    PV_OK)
			batch_error(&j, st, detail, 1);
		else if ((st = check_limits(s, in->fields, in->nfields,
		    why)) != PV_OK)
			batch_error(&j, st, why, 0);
	}
	pv_json_close(&j);
	pv_json_close(&j);
	finish(rs, &j);
out:
	free(tokens);
	free(map);
	free(res);
	free(valid);
	api_records_free(recs);
}

/*
 * The secure heap a server needs (api.h).  A request that holds one value
 * at a time (detokenize, a token's value, a write, a look-up) holds that
 * value, a pseudonym's normal form and a few keys, with OpenSSL's own
 * per-thread generator state: every thread may hold that much without
 * asking.  A record's access holds all its fields at once: it reserves
 * that from the budget first (api_secure_admit).
 */
#define SECURE_THREAD_KEYS	4096	/* DEKs, HMAC keys, generator state */

void
api_secure_need(const struct api_limits *l, size_t *per_thread,
    size_t *largest)
{
	size_t value = l->value_max ? l->value_max : PV_VALUE_MAX;
	size_t fields = l->fields_max ? l->fields_max : PV_FIELDS_MAX;

	*per_thread = pv_secure_block(value + 1) +
	    pv_secure_block(PV_VALUE_MAX) + SECURE_THREAD_KEYS;
	*largest = fields * pv_secure_block(value + 1);
}

/* How long a request waits for its turn in the secure heap. */
#define SECURE_WAIT_MS	2000

/*
 * Reserve the secure heap a record's access may hold: PV_OK, or a 503
 * with Retry-After already written into rs.
 */
static pv_status
secure_admit(const struct api_server *s, struct api_resp *rs, size_t *need)
{
	size_t per_thread;
	pv_status rc;

	api_secure_need(&s->limits, &per_thread, need);
	if ((rc = pv_secure_reserve(*need, SECURE_WAIT_MS)) != PV_OK)
		unavailable(rs, "secure memory is busy; retry");
	return rc;
}

/* Writes each token's answer as the vault hands it over (vault_reveal_fn). */
struct detok_out {
	const struct api_detok	*d;
	struct pv_json		*j;
};

/*
 * One item per string sent, in order, duplicates too: the answer never
 * depends on what was sent but through each item's index.
 */
static pv_status
detok_emit(void *arg, size_t i, const struct vault_reveal *r)
{
	struct detok_out *o = arg;

	api_json_reveal(o->j, i, o->d->tokens[i], o->d->lens[i], r);
	return PV_OK;	/* the writer's errors wait for pv_json_end */
}

static void
h_detokenize(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    struct vault_event *ev, const char *id)
{
	struct api_detok *d = NULL;
	struct detok_out o;
	struct vault_access a;
	struct pv_json j;
	char err[API_ERR_MAX];
	pv_status rc;

	(void)id;
	if ((rc = api_detok_parse(rq->body, rq->len, s->limits.batch_max, &d,
	    err)) != PV_OK) {
		fail_rc(rs, rc, err);
		return;
	}
	if (reason_refused(rs, d->reason))
		goto out;
	a.key = key;
	a.purpose = d->purpose;
	a.reason = d->reason;
	ev->purpose = (int)d->purpose;
	ev->reason = d->reason;
	/*
	 * The answer is written as the values come, so that only one of them
	 * is in the secure heap at a time; it is sent only if the vault logged
	 * the request, and wiped (fail) otherwise.
	 */
	answer(rs, 200, &j);
	pv_json_obj(&j);
	pv_json_key(&j, "results");
	pv_json_arr(&j);
	o.d = d;
	o.j = &j;
	if ((rc = vault_detokenize(s->vault, &a, ev, d->tokens, d->lens, d->n,
	    detok_emit, &o)) != PV_OK) {
		if (rc == PV_EUNAVAIL)	/* busy heap or log: with Retry-After */
			unavailable(rs, NULL);
		else
			fail_rc(rs, rc, rc == PV_EPURPOSE ?
			    vault_purpose_name(d->purpose) : NULL);
		goto out;
	}
	rs->audited = 1;
	pv_json_close(&j);
	pv_json_close(&j);
	finish(rs, &j);
out:
	ev->reason = NULL;	/* points into d */
	api_detok_free(d);
}

/*
 * "matches":[{"id":…,"token":…},…], the member: the records holding a
 * value; for research, [{"pseudonym":…},…].
 */
static void
emit_matches(struct pv_json *j, const struct vault_match *m, size_t n,
    int research)
{
	pv_json_key(j, "matches");
	pv_json_arr(j);
	for (size_t i = 0; i < n; i++) {
		pv_json_obj(j);
		if (research)
			pv_json_kstr(j, "pseudonym", m[i].pseudonym);
		else {
			pv_json_kstr(j, "id", m[i].id);
			pv_json_kstr(j, "token", m[i].token);
		}
		pv_json_close(j);
	}
	pv_json_close(j);
}

/* A look-up refused as a whole, by the vault: rc, and why in words. */
static void
lookup_failed(struct api_resp *rs, const struct api_lookup *l, pv_status rc)
{
	char msg[API_ERR_MAX];

	switch (rc) {
	case PV_EFIELD:
		fail_msg(rs, 422, api_error_code(rc), "\"field\" is not a "
		    "field name: names match [a-z][a-z0-9_]{0,63}");
		break;
	case PV_ENOTINDEXED:
		/* A valid name (PV_EFIELD comes first): it may be echoed. */
		(void)snprintf(msg, sizeof(msg), "field %.*s has no blind "
		    "index: only email and phone have one", (int)l->fieldlen,
		    l->field);
		fail_msg(rs, 422, api_error_code(rc), msg);
		break;
	case PV_EPURPOSE:
		fail_rc(rs, rc, vault_purpose_name(l->purpose));
		break;
	default:
		fail_rc(rs, rc, NULL);
	}
}

/*
 * POST /v1/lookup: one value ("value": {"matches":[…]}), or a batch
 * ("values": {"results":[{"index":…,"matches":[…]} or {"index":…,
 * "error":{…}},…]}, in order), each value under the same rules, the whole
 * request logged as one event.
 */
static void
h_lookup(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, struct vault_event *ev, const char *id)
{
	struct vault_lookup_result *res = NULL;
	struct api_lookup *l = NULL;
	struct vault_match *m = NULL;
	struct vault_access a;
	struct pv_json j;
	char err[API_ERR_MAX];
	int research;
	pv_status rc;

	(void)id;
	if ((rc = api_lookup_parse(rq->body, rq->len, s->limits.batch_max, &l,
	    err)) != PV_OK) {
		fail_rc(rs, rc, err);
		return;
	}
	/* One value over the limit is the request's; in a batch, its own. */
	if (!l->batch && l->lens[0] > s->limits.value_max) {
		char why[VAULT_WHY_MAX], what[48];
		const struct vault_field f = { l->field, l->fieldlen,
		    l->values[0], l->lens[0] };

		(void)snprintf(what, sizeof(what), "longer than %zu bytes",
		    s->limits.value_max);
		vault_field_why(why, &f, 0, what);
		fail_why(rs, PV_ETOOBIG, why);
		goto out;
	}
	if (reason_refused(rs, l->reason))
		goto out;
	/* Whether a value exists is itself something a key may not see. */
	if (!vault_apikey_field_allowed(key, l->field, l->fieldlen)) {
		fail(rs, 403, "forbidden", PV_EFORBIDDEN, "field not among "
		    "this key's fields");
		goto out;
	}
	if ((res = calloc(l->n, sizeof(*res))) == NULL) {
		fail_rc(rs, PV_ENOMEM, NULL);
		goto out;
	}
	a.key = key;
	a.purpose = l->purpose;
	a.reason = l->reason;
	ev->purpose = (int)l->purpose;
	ev->reason = l->reason;
	if ((rc = vault_lookup_access(s->vault, &a, ev,
	    &(const struct vault_lookup_req){ l->field, l->fieldlen, l->values,
	    l->lens, l->n, s->limits.value_max, res, &m })) != PV_OK) {
		lookup_failed(rs, l, rc);
		goto out;
	}
	rs->audited = 1;
	research = l->purpose == VAULT_P_RESEARCH;
	if (!l->batch) {
		if (res[0].status != PV_OK) {
			fail_why(rs, res[0].status, res[0].why);
			goto out;
		}
		answer(rs, 200, &j);
		pv_json_obj(&j);
		emit_matches(&j, m + res[0].first, res[0].n, research);
		pv_json_close(&j);
		finish(rs, &j);
		goto out;
	}
	answer(rs, 200, &j);
	pv_json_obj(&j);
	pv_json_key(&j, "results");
	pv_json_arr(&j);
	for (size_t i = 0; i < l->n; i++) {
		pv_json_obj(&j);
		pv_json_ku64(&j, "index", i);
		if (res[i].status == PV_OK)
			emit_matches(&j, m + res[i].first, res[i].n,
			    research);
		else
			api_json_kerror(&j, api_error_code(res[i].status),
			    res[i].why);
		pv_json_close(&j);
	}
	pv_json_close(&j);
	pv_json_close(&j);
	finish(rs, &j);
out:
	ev->reason = NULL;	/* points into l */
	free(m);
	free(res);
	api_lookup_free(l);
}

/*
 * The person's deletion.  The reason comes in the body, {"reason":…};
 * the query's ?reason= is still read, but a proxy or an access log keeps
 * it (docs/openapi.yaml says so): both at once are refused.
 */
static void
h_shred(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, struct vault_event *ev, const char *id)
{
	const char *query = rq->arg != NULL ? rq->arg(rq, "reason") : NULL;
	const char *ids[1] = { id }, *reason = query;
	size_t lens[1] = { strlen(id) };
	char body[VAULT_REASON_MAX + 1], err[API_ERR_MAX];
	struct vault_receipt receipt;
	struct pv_json j;
	pv_status rc, st;
	int given = 0, logged = 0;

	(void)key;
	if (rq->len > 0) {
		if ((rc = api_reason_parse(rq->body, rq->len, body,
		    sizeof(body), &given, err)) != PV_OK) {
			fail_rc(rs, rc, err);
			goto out;
		}
		if (given && query != NULL) {
			fail_msg(rs, 400, "bad_request", "bad request: a "
			    "reason in both the body and the query; send it "
			    "in the body only");
			goto out;
		}
		if (given)
			reason = body;
	}
	if (own_reason_refused(rs, reason, 0, "a deletion"))
		goto out;
	ev->reason = reason != NULL ? reason : "request";
	rc = vault_shred_ev(s->vault, ev, &(struct vault_shred_req){
	    ids, lens, 1, ev->reason, &receipt, &st, &logged });
	ev->reason = NULL;	/* body dies with this frame */
	rs->audited = logged;	/* shreds, repeats and refused holds */
	if (rc != PV_OK)
		fail_rc(rs, rc, NULL);
	else if (st == PV_ETOKEN || st == PV_ENOTFOUND)
		fail(rs, 404, "not_found", PV_ENOTFOUND, "no such record");
	else if (st == PV_EHOLD)
		fail(rs, 409, "legal_hold", PV_EHOLD, NULL);
	else if (st != PV_OK)
		fail_rc(rs, st, NULL);
	else {
		answer(rs, 200, &j);
		api_json_receipt(&j, &receipt);
		finish(rs, &j);
	}
out:
	pv_cleanse(body, sizeof(body));
}

/* Answers for a record id, as the person's requests share them. */
static int
record_failed(struct api_resp *rs, pv_status rc, uint64_t retry)
{
	switch (rc) {
	case PV_OK:
		return 0;
	case PV_ETOKEN:
	case PV_ENOTFOUND:
		fail(rs, 404, "not_found", PV_ENOTFOUND, "no such record");
		break;
	case PV_ESHREDDED:
		fail(rs, 410, "shredded", PV_ESHREDDED, NULL);
		break;
	case PV_ELIMIT:
		too_many(rs, retry);
		break;
	default:
		fail_rc(rs, rc, NULL);
	}
	return 1;
}

/* One read of a record: who, when, for what, and its audit event. */
static void
emit_read(struct pv_json *j, const struct vault_audit_entry *e)
{
	pv_json_obj(j);
	pv_json_kstr(j, "by", e->actor);
	pv_json_ku64(j, "at", e->time);
	pv_json_key(j, "purpose");
	pv_json_str_or_null(j, e->purpose < 0 ? NULL :
	    vault_purpose_name((enum vault_purpose)e->purpose));
	pv_json_ku64(j, "audit_seq", e->seq);
	pv_json_close(j);
}

/*
 * A record's view as JSON: {"id":…,"fields":…,"consent":…,"created":…,
 * "retain_until":…,"legal_hold":…,"reads":[…]}.  With values, "fields"
 * maps each name to its token and value (the access answer); without,
 * it is the array of the field names (the metadata answer).
 */
static void
emit_view(struct pv_json *j, const struct vault_record_view *r, int values)
{
	pv_json_obj(j);
	pv_json_kstr(j, "id", r->id);
	pv_json_key(j, "fields");
	if (values)
		pv_json_obj(j);
	else
		pv_json_arr(j);
	for (size_t i = 0; i < r->nfields; i++) {
		const struct vault_record_field *f = &r->fields[i];

		if (!values) {
			pv_json_str(j, f->name);
			continue;
		}
		pv_json_key(j, f->name);
		pv_json_obj(j);
		pv_json_kstr(j, "token", f->token);
		pv_json_key(j, "value");
		pv_json_strn(j, f->value, f->len);
		pv_json_close(j);
	}
	pv_json_close(j);
	pv_json_key(j, "consent");
	pv_json_obj(j);
	pv_json_kbool(j, "marketing", r->marketing);
	pv_json_kbool(j, "notices", 1);
	pv_json_close(j);
	pv_json_ku64(j, "created", r->created);
	pv_json_key(j, "retain_until");
	if (r->retain_until != 0)
		pv_json_u64(j, r->retain_until);
	else
		pv_json_null(j);
	pv_json_kbool(j, "legal_hold", r->hold);
	pv_json_key(j, "reads");
	pv_json_arr(j);
	for (size_t i = 0; i < r->nreads; i++)
		emit_read(j, &r->reads[i]);
	pv_json_close(j);
	pv_json_close(j);
}

static void
h_access(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, struct vault_event *ev, const char *id)
{
	struct vault_record_view *r = NULL;
	struct pv_json j;
	uint64_t retry = 0;
	size_t need;
	pv_status rc;

	(void)rq;
	(void)key;
	/* Every field at once in the secure heap: wait for room first. */
	if (secure_admit(s, rs, &need) != PV_OK)
		return;
	rc = vault_record_access(s->vault, ev, id, strlen(id), &r, &retry,
	    &rs->audited);
	if (record_failed(rs, rc, retry)) {
		pv_secure_release(need);
		return;
	}
	answer(rs, 200, &j);
	emit_view(&j, r, 1);
	finish(rs, &j);
	vault_record_view_free(r);
	pv_secure_release(need);
}

/*
 * What the vault holds about a record, without its values or tokens; not
 * a person's access request, so not limited (vault_record_metadata).
 */
static void
h_metadata(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    struct vault_event *ev, const char *id)
{
	struct vault_record_view *r = NULL;
	struct pv_json j;

	(void)rq;
	(void)key;
	if (record_failed(rs, vault_record_metadata(s->vault, ev, id,
	    strlen(id), &r, &rs->audited), 0))
		return;
	answer(rs, 200, &j);
	emit_view(&j, r, 0);
	finish(rs, &j);
	vault_record_view_free(r);
}

static void
h_correct(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    struct vault_event *ev, const char *id)
{
	char (*tokens)[VAULT_ID_STRLEN + 1] = NULL;
	char (*names)[PV_FIELD_NAME_MAX + 1] = NULL;
	const struct vault_field *f;
	struct api_patch *p = NULL;
	struct pv_json j;
	char err[API_ERR_MAX], why[VAULT_WHY_MAX];
	size_t n, nt = 0;
	pv_status rc;

	(void)key;
	if ((rc = api_patch_parse(rq->body, rq->len, &p, err)) != PV_OK) {
		fail_rc(rs, rc, err);
		return;
	}
	f = api_patch_fields(p, &n);
	if ((rc = check_limits(s, f, n, why)) != PV_OK) {
		fail_why(rs, rc, why);
		goto out;
	}
	if ((tokens = calloc(PV_FIELDS_MAX, sizeof(*tokens))) == NULL ||
	    (names = calloc(PV_FIELDS_MAX, sizeof(*names))) == NULL) {
		fail_rc(rs, PV_ENOMEM, NULL);
		goto out;
	}
	rc = vault_record_correct(s->vault, ev, &(struct vault_correction){
	    id, strlen(id), f, n, tokens, names, &nt, &rs->audited, why });
	if (rc == PV_EFIELD || rc == PV_EVALUE || rc == PV_ETOOBIG ||
	    rc == PV_EINVAL) {
		fail_why(rs, rc, why);
		goto out;
	}
	if (record_failed(rs, rc, 0))
		goto out;
	answer(rs, 200, &j);
	pv_json_obj(&j);
	pv_json_kstr(&j, "id", id);
	pv_json_key(&j, "tokens");
	pv_json_obj(&j);
	for (size_t i = 0; i < nt; i++)
		pv_json_kstr(&j, names[i], tokens[i]);
	pv_json_close(&j);
	pv_json_close(&j);
	finish(rs, &j);
out:
	free(tokens);
	free(names);
	api_patch_free(p);
}

static void
h_consent(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    struct vault_event *ev, const char *id)
{
	static const char *const bools[] = { "marketing", "notices", NULL };
	struct pv_json j;
	char err[API_ERR_MAX];
	int vals[2];
	pv_status rc;

	(void)key;
	if ((rc = api_flags_parse(rq->body, rq->len, bools, vals, NULL, NULL,
	    0, err)) != PV_OK) {
		fail_rc(rs, rc, err);
		return;
	}
	/* Important notices are not a choice the person can make. */
	if (vals[1] == 0) {
		fail(rs, 422, "cannot_opt_out", PV_EOPTOUT, NULL);
		return;
	}
	if (vals[0] < 0) {
		fail(rs, 422, "invalid_value", PV_EVALUE, "\"marketing\" is "
		    "required");
		return;
	}
	if (record_failed(rs, vault_record_consent(s->vault, ev, id,
	    strlen(id), vals[0]), 0))
		return;
	rs->audited = 1;
	answer(rs, 200, &j);
	pv_json_obj(&j);
	pv_json_kstr(&j, "id", id);
	pv_json_key(&j, "consent");
	pv_json_obj(&j);
	pv_json_kbool(&j, "marketing", vals[0]);
	pv_json_kbool(&j, "notices", 1);
	pv_json_close(&j);
	pv_json_close(&j);
	finish(rs, &j);
}

static void
h_hold(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, struct vault_event *ev, const char *id)
{
	static const char *const bools[] = { "hold", NULL };
	char err[API_ERR_MAX], reason[VAULT_REASON_MAX + 1];
	struct pv_json j;
	int vals[1];
	pv_status rc;

	(void)key;
	if ((rc = api_flags_parse(rq->body, rq->len, bools, vals, "reason",
	    reason, sizeof(reason), err)) != PV_OK) {
		fail_rc(rs, rc, err);
		return;
	}
	if (vals[0] < 0) {
		fail(rs, 422, "invalid_value", PV_EVALUE, "\"hold\" is "
		    "required");
		return;
	}
	if (own_reason_refused(rs, reason, 1, "a legal hold"))
		return;
	ev->reason = reason;
	rc = vault_record_hold(s->vault, ev, id, strlen(id), vals[0]);
	ev->reason = NULL;	/* reason dies with this frame */
	if (record_failed(rs, rc, 0))
		return;
	rs->audited = 1;
	answer(rs, 200, &j);
	pv_json_obj(&j);
	pv_json_kstr(&j, "id", id);
	pv_json_kbool(&j, "legal_hold", vals[0]);
	pv_json_close(&j);
	finish(rs, &j);
}

/*
 * A query argument that is a whole, unsigned decimal number: digits and
 * nothing else, that fit in 64 bits.
 */
static int
decimal(const char *s, unsigned long long *out)
{
	unsigned long long v;
	char *end;

	if (*s == '\0' || strlen(s) > 20)
		return 0;
	for (const char *p = s; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return 0;
	*out = v;
	return 1;
}

/*
 * A page of the audit log.  A paging ends at end: given (as the first
 * page answered it), or fixed by this page as the newest event before
 * this read's own, which is logged after it; so each page's read shows
 * only in a later paging, and a client that reads until has_more is false
 * stops.
 */
static void
h_audit(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, struct vault_event *ev, const char *id)
{
	const char *after_s = rq->arg ? rq->arg(rq, "after") : NULL;
	const char *limit_s = rq->arg ? rq->arg(rq, "limit") : NULL;
	const char *end_s = rq->arg ? rq->arg(rq, "end") : NULL;
	struct vault_audit_entry *e = NULL;
	struct pv_json j;
	char detail[48];
	unsigned long long after = 0, limit = 100, end = VAULT_AUDIT_END_NONE;
	uint64_t last = 0, archived = 0, next;
	size_t n = 0;
	pv_status rc;

	(void)key;
	(void)ev;
	(void)id;
	if (after_s != NULL && !decimal(after_s, &after)) {
		fail(rs, 422, "invalid_value", PV_EVALUE, "after must be a "
		    "sequence number");
		return;
	}
	if (limit_s != NULL && (!decimal(limit_s, &limit) || limit == 0 ||
	    limit > VAULT_BATCH_MAX)) {
		(void)snprintf(detail, sizeof(detail), "limit must be 1 to %d",
		    VAULT_BATCH_MAX);
		fail(rs, 422, "invalid_value", PV_EVALUE, detail);
		return;
	}
	if (end_s != NULL && !decimal(end_s, &end)) {
		fail(rs, 422, "invalid_value", PV_EVALUE, "end must be a "
		    "sequence number");
		return;
	}
	if ((rc = vault_audit_read(s->vault, after, end, (size_t)limit, &e,
	    &n, &last, &archived)) != PV_OK) {
		fail_rc(rs, rc, rc == PV_EINTEGRITY ? "the audit chain does "
		    "not verify" : NULL);
		return;
	}
	/* The log only grows: an end past its newest event means a cut. */
	if (end_s != NULL && end > last) {
		fail(rs, 422, "invalid_value", PV_EVALUE, "end is past the "
		    "newest event");
		goto out;
	}
	if (end_s == NULL)
		end = last;
	/* Events up to archived are no longer here: paging goes on after. */
	next = n > 0 ? e[n - 1].seq : after > archived ? after : archived;
	answer(rs, 200, &j);
	pv_json_obj(&j);
	pv_json_key(&j, "events");
	pv_json_arr(&j);
	for (size_t i = 0; i < n; i++)
		api_json_event(&j, &e[i]);
	pv_json_close(&j);
	pv_json_ku64(&j, "next", next);
	pv_json_ku64(&j, "end", end);
	pv_json_kbool(&j, "has_more", next < end);
	if (archived > 0)
		pv_json_ku64(&j, "archived_through", archived);
	pv_json_close(&j);
	finish(rs, &j);
out:
	vault_audit_entries_free(e, n);
}

/* Prometheus text, not JSON: the one answer built with printf. */
static void
h_metrics(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, struct vault_event *ev, const char *id)
{
	struct pv_buf *b = &rs->body;
	struct vault_info info;
	unsigned long long cum = 0;
	uint32_t kek = 0;
	char lmdb[32];
	pv_status rc;

	(void)rq;
	(void)key;
	(void)ev;
	(void)id;
	if ((rc = vault_info(s->vault, &info)) != PV_OK) {
		fail_rc(rs, rc, NULL);
		return;
	}
	for (size_t i = 0; i < info.nkeys; i++)
		if (info.keys[i].kind == VAULT_KEK &&
		    info.keys[i].state == VAULT_KEY_ACTIVE)
			kek = info.keys[i].version;
	free(info.keys);
	reply(rs, 200);
	rs->ctype = "text/plain; version=0.0.4";
	vault_store_version(lmdb);
	rc = pv_buf_printf(b, "# HELP piivault_build_info The version of "
	    "piivault and of the libraries it runs with.\n"
	    "# TYPE piivault_build_info gauge\n"
	    "piivault_build_info{version=\"%s\",openssl=\"%s\",lmdb=\"%s\","
	    "libmicrohttpd=\"%s\"} 1\n", PV_VERSION, pv_crypto_version(), lmdb,
	    api_http_version());
	if (rc == PV_OK)
		rc = pv_buf_printf(b, "# HELP piivault_requests_total HTTP "
		    "requests by route and status.\n"
		    "# TYPE piivault_requests_total counter\n");
	for (size_t r = 0; r <= API_NROUTES && rc == PV_OK; r++)
		for (int st = 0; st < API_STATUS_SLOTS && rc == PV_OK; st++) {
			unsigned long long c = atomic_load(&s->requests[r][st]);
			char label[16];

			if (c == 0)
				continue;

			if (status_slots[st] != 0)
				(void)snprintf(label, sizeof(label), "%u",
				    status_slots[st]);
			else
				memcpy(label, "other", 6);
			rc = pv_buf_printf(b, "piivault_requests_total{route="
			    "\"%s\",method=\"%s\",status=\"%s\"} %llu\n",
			    r == API_NROUTES ? "other" : api_routes[r].path,
			    r == API_NROUTES ? "other" : api_routes[r].method,
			    label, c);
		}
	if (rc == PV_OK)
		rc = pv_buf_printf(b, "# HELP piivault_request_duration_seconds "
		    "Time to answer a request.\n# TYPE "
		    "piivault_request_duration_seconds histogram\n");
	for (int i = 0; i <= API_LAT_BUCKETS && rc == PV_OK; i++) {
		cum += atomic_load(&s->lat_bucket[i]);
		if (i < API_LAT_BUCKETS)
			rc = pv_buf_printf(b, "piivault_request_duration_"
			    "seconds_bucket{le=\"%g\"} %llu\n",
			    (double)lat_bounds[i] / 1e6, cum);
		else
			rc = pv_buf_printf(b, "piivault_request_duration_"
			    "seconds_bucket{le=\"+Inf\"} %llu\n", cum);
	}
	if (rc == PV_OK)
		rc = pv_buf_printf(b, "piivault_request_duration_seconds_sum "
		    "%.6f\npiivault_request_duration_seconds_count %llu\n"
		    "# HELP piivault_records_stored Live records.\n"
		    "# TYPE piivault_records_stored gauge\n"
		    "piivault_records_stored %llu\n"
		    "# HELP piivault_kek_active_version The KEK version that "
		    "wraps new records.\n"
		    "# TYPE piivault_kek_active_version gauge\n"
		    "piivault_kek_active_version %u\n"
		    "# HELP piivault_commits_total Durable write commits "
		    "(each may hold many requests).\n"
		    "# TYPE piivault_commits_total counter\n"
		    "piivault_commits_total %llu\n",
		    (double)atomic_load(&s->lat_sum_us) / 1e6,
		    atomic_load(&s->lat_count),
		    (unsigned long long)info.records, kek,
		    (unsigned long long)vault_commits(s->vault));
	if (rc == PV_OK)
		rc = pv_buf_printf(b, "# HELP piivault_rate_limited_total "
		    "Requests refused over the rate limit (429), by what was "
		    "limited.\n# TYPE piivault_rate_limited_total counter\n"
		    "piivault_rate_limited_total{by=\"address\"} %llu\n"
		    "piivault_rate_limited_total{by=\"key\"} %llu\n"
		    "# HELP piivault_integrity_alarms_total Stored values that "
		    "failed authentication.\n"
		    "# TYPE piivault_integrity_alarms_total counter\n"
		    "piivault_integrity_alarms_total %llu\n"
		    "# HELP piivault_storage_degraded 1 while the last storage "
		    "write failed.\n# TYPE piivault_storage_degraded gauge\n"
		    "piivault_storage_degraded %d\n",
		    atomic_load(&s->rate_refused[0]),
		    atomic_load(&s->rate_refused[1]),
		    (unsigned long long)vault_alarms(s->vault),
		    atomic_load(&s->degraded) ? 1 : 0);
	if (rc == PV_OK)
		rc = pv_buf_printf(b, "# HELP piivault_http_closed_total "
		    "Connections and requests the HTTP layer refused.\n"
		    "# TYPE piivault_http_closed_total counter\n"
		    "piivault_http_closed_total{reason=\"limit\"} %llu\n"
		    "piivault_http_closed_total{reason=\"timeout\"} %llu\n"
		    "piivault_http_closed_total{reason=\"framing\"} %llu\n"
		    "piivault_http_closed_total{reason=\"library\"} %llu\n",
		    atomic_load(&s->conn_refused),
		    atomic_load(&s->conn_timeout),
		    atomic_load(&s->framing_refused),
		    atomic_load(&s->lib_errors));
	if (rc != PV_OK)
		fail_rc(rs, rc, NULL);
}

#define WRITER	API_ROLE(VAULT_ROLE_WRITER)
#define READER	API_ROLE(VAULT_ROLE_READER)
#define ADMIN	API_ROLE(VAULT_ROLE_ADMIN)
#define AUDITOR	API_ROLE(VAULT_ROLE_AUDITOR)

/*
 * The routes.  Their order is the order of a 405's Allow list and of the
 * metrics; docs/openapi.yaml documents every row (a test checks it).
 */
const struct api_route api_routes[] = {
	{ "GET", "/v1/health", "health", 0, 0, h_health },
	{ "POST", "/v1/records", "records.create", WRITER, 1, h_records },
	{ "POST", "/v1/records/batch", "records.batch", WRITER, 1, h_batch },
	{ "POST", "/v1/detokenize", "detokenize", READER, 1, h_detokenize },
	{ "POST", "/v1/lookup", "lookup", WRITER | READER, 1, h_lookup },
	{ "GET", "/metrics", "metrics", 0, 0, h_metrics },
	{ "DELETE", "/v1/records/{id}", "records.delete", ADMIN,
	    API_BODY_JSON | API_BODY_OPTIONAL, h_shred },
	{ "GET", "/v1/records/{id}", "records.access", ADMIN, 0, h_access },
	{ "PATCH", "/v1/records/{id}", "records.correct", ADMIN,
	    API_BODY_JSON | API_BODY_MERGE, h_correct },
	{ "PUT", "/v1/records/{id}/consent", "records.consent", ADMIN, 1,
	    h_consent },
	{ "PUT", "/v1/records/{id}/legal-hold", "records.legal_hold", ADMIN,
	    1, h_hold },
	{ "GET", "/v1/audit", "audit.read", AUDITOR, 0, h_audit },
	{ "GET", "/v1/records/{id}/metadata", "records.metadata", ADMIN, 0,
	    h_metadata },
	{ "GET", "/v1/keys/signing", "keys.signing", 0, 0, h_signing_keys },
};

#undef WRITER
#undef READER
#undef ADMIN
#undef AUDITOR

/*
 * 403 unless the key's role is among roles, saying which roles may:
 * "needs a writer key", "needs a writer or reader key".
 */
static int
role_refused(struct api_resp *rs, unsigned roles,
    const struct vault_apikey *key)
{
	char msg[96];		/* room for all four roles */
	const char *word = NULL;
	size_t n;

	if (key->role >= VAULT_ROLE_WRITER && key->role <= VAULT_ROLE_AUDITOR &&
	    (roles & API_ROLE(key->role)) != 0)
		return 0;
	n = (size_t)snprintf(msg, sizeof(msg), "needs");
	for (int r = VAULT_ROLE_WRITER; r <= VAULT_ROLE_AUDITOR; r++) {
		const char *name = vault_role_name((enum vault_role)r);

		if ((roles & API_ROLE(r)) == 0)
			continue;
		if (word != NULL)
			word = "or";
		else if (strchr("aeiou", name[0]) != NULL)
			word = "an";
		else
			word = "a";
		n += (size_t)snprintf(msg + n, sizeof(msg) - n, " %s %s",
		    word, name);
	}
	(void)snprintf(msg + n, sizeof(msg) - n, " key");
	fail(rs, 403, "forbidden", PV_EFORBIDDEN, msg);
	return 1;
}

/* Run an authenticated request's handler, if the key's role may. */
static void
dispatch(struct api_server *s, const struct api_route *r,
    const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, struct vault_event *ev, const char *id)
{
	if (!role_refused(rs, r->roles, key))
		r->handler(s, rq, rs, key, ev, id);
}

/*
 * Wait for a turn to decode a large body: PV_EUNAVAIL after
 * API_LARGE_WAIT seconds, so that a worker (and the other connections
 * libmicrohttpd gives it) is never held without bound.
 */
static pv_status
admit_large(struct api_server *s)
{
	struct timespec until;

	if (clock_gettime(CLOCK_REALTIME, &until) != 0)
		return PV_EIO;
	until.tv_sec += API_LARGE_WAIT;
	while (sem_timedwait(&s->large, &until) != 0)
		if (errno != EINTR)
			return errno == ETIMEDOUT ? PV_EUNAVAIL : PV_EIO;
	return PV_OK;
}

/*
 * The rate limit (api_int.h).  One lock guards the table; summaries are
 * gathered under it and written after it is released.
 */
static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;

#define RATE_UNIT	1000000ull	/* a request, in bucket tokens */
#define RATE_SUMS	16		/* summaries one call may write */

enum { RATE_OK, RATE_FIRST, RATE_MORE };

struct rate_sum {
	char		 name[API_RATE_NAME + 1];
	uint64_t	 count;
	uint64_t	 from;
	uint64_t	 to;
};

/* FNV-1a: spreads names over the sets; not a defence, and needs none. */
static size_t
rate_set(const char *name)
{
	uint64_t h = 1469598103934665603ull;

	for (; *name != '\0'; name++) {
		h ^= (unsigned char)*name;
		h *= 1099511628211ull;
	}
	return (size_t)(h % API_RATE_SETS);
}

/* Take b's pending count into sums (if there is room) and clear it. */
static void
rate_take_sum(struct api_bucket *b, uint64_t now, struct rate_sum *sums,
    size_t *nsum)
{
	if (b->refused == 0)
		return;
	if (*nsum < RATE_SUMS) {
		struct rate_sum *m = &sums[(*nsum)++];

		memcpy(m->name, b->name, sizeof(m->name));
		m->count = b->refused;
		m->from = b->window_from;
		m->to = now;
	} else
		pv_log(PV_LOG_WARN, "rate limit: %llu refusals of %s not "
		    "summarised", (unsigned long long)b->refused, b->name);
	b->refused = 0;
	b->window_us = 0;
}

/* Write the summaries gathered: one audit event each. */
static void
rate_write(struct api_server *s, const struct rate_sum *sums, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct rate_sum *m = &sums[i];
		int key = m->name[0] == 'k';
		struct vault_event ev;
		char what[API_RATE_NAME + 96];

		(void)snprintf(what, sizeof(what), "%llu more requests "
		    "refused, %s %s, from %llu to %llu",
		    (unsigned long long)m->count, key ? "key" : "address",
		    m->name + 2, (unsigned long long)m->from,
		    (unsigned long long)m->to);
		memset(&ev, 0, sizeof(ev));
		ev.actor = key ? m->name + 2 : "-";
		ev.action = "rate_limit.summary";
		ev.ok = 0;
		ev.code = "rate_limited";
		ev.purpose = -1;
		ev.reason = what;
		if (vault_audit(s->vault, &ev, NULL) != PV_OK) {
			/* Not lost: said where an operator will see it. */
			pv_log(PV_LOG_ERROR, "rate limit: cannot log the "
			    "summary: %s", what);
			atomic_store(&s->degraded, 1);
		}
	}
}

void
api_rate_flush(struct api_server *s, int due)
{
	struct rate_sum sums[RATE_SUMS];
	uint64_t now_us = pv_mono_us(), now = (uint64_t)time(NULL);
	size_t n = 0;

	if (pthread_mutex_lock(&rate_lock) != 0)
		return;
	if (due && now_us < s->rate_sweep_us) {
		(void)pthread_mutex_unlock(&rate_lock);
		return;
	}
	s->rate_sweep_us = now_us + 1000000;
	for (size_t i = 0; i < API_RATE_SETS && n < RATE_SUMS; i++)
		for (size_t w = 0; w < API_RATE_WAYS && n < RATE_SUMS; w++) {
			struct api_bucket *b = &s->rate[i][w];

			if (b->refused > 0 && (!due || now_us - b->window_us >=
			    API_RATE_WINDOW * 1000000ull))
				rate_take_sum(b, now, sums, &n);
		}
	if (n == RATE_SUMS)
		s->rate_sweep_us = 0;	/* more to do: on the next call */
	(void)pthread_mutex_unlock(&rate_lock);
	rate_write(s, sums, n);
}

/*
 * The bucket name of a request: "k:" and the key's name, or "a:" and the
 * client's address, an IPv6 address cut to its /64 (one host's usual
 * share); without an address (no socket), one shared "a:-".
 */
static void
rate_name(char out[static API_RATE_NAME + 1], const struct api_req *rq,
    const struct vault_apikey *key)
{
	struct in6_addr a6;

	if (key != NULL) {
		(void)snprintf(out, API_RATE_NAME + 1, "k:%s", key->name);
		return;
	}
	if (rq->peer == NULL || *rq->peer == '\0') {
		memcpy(out, "a:-", 4);
		return;
	}
	if (strchr(rq->peer, ':') != NULL &&
	    inet_pton(AF_INET6, rq->peer, &a6) == 1 &&
	    !IN6_IS_ADDR_V4MAPPED(&a6)) {
		char p[INET6_ADDRSTRLEN];

		memset(a6.s6_addr + 8, 0, 8);
		if (inet_ntop(AF_INET6, &a6, p, sizeof(p)) != NULL) {
			(void)snprintf(out, API_RATE_NAME + 1, "a:%s/64", p);
			return;
		}
	}
	(void)snprintf(out, API_RATE_NAME + 1, "a:%s", rq->peer);
}

/*
 * Charge one request to name's bucket: RATE_OK, or a refusal (the first
 * of its window, or a later one) with *retry the seconds until a request
 * would pass.  Summaries that fall due go to sums.
 */
static int
rate_charge(struct api_server *s, const char *name, unsigned *retry,
    struct rate_sum *sums, size_t *nsum)
{
	const uint64_t rate = s->limits.rate_limit;
	uint64_t now_us = pv_mono_us(), now = (uint64_t)time(NULL);
	struct api_bucket *set, *b = NULL;
	int verdict;

	if (pthread_mutex_lock(&rate_lock) != 0)
		return RATE_OK;		/* cannot happen with a default mutex */
	set = s->rate[rate_set(name)];
	for (size_t w = 0; w < API_RATE_WAYS && b == NULL; w++)
		if (strcmp(set[w].name, name) == 0)
			b = &set[w];
	if (b == NULL) {
		/* A free slot, else the least recently used. */
		b = &set[0];
		for (size_t w = 0; w < API_RATE_WAYS; w++) {
			if (set[w].name[0] == '\0') {
				b = &set[w];
				break;
			}
			if (set[w].last_us < b->last_us)
				b = &set[w];
		}
		rate_take_sum(b, now, sums, nsum);	/* its count stays */
		memset(b, 0, sizeof(*b));
		(void)snprintf(b->name, sizeof(b->name), "%s", name);
		b->tokens = rate * RATE_UNIT;	/* a second's burst */
		b->last_us = now_us;
	}
	/* A second refills the whole burst (and cannot overflow). */
	if (now_us - b->last_us >= RATE_UNIT)
		b->tokens = rate * RATE_UNIT;
	else if ((b->tokens += (now_us - b->last_us) * rate) >
	    rate * RATE_UNIT)
		b->tokens = rate * RATE_UNIT;
	b->last_us = now_us;
	if (b->tokens >= RATE_UNIT) {
		b->tokens -= RATE_UNIT;
		rate_take_sum(b, now, sums, nsum);	/* the burst is over */
		verdict = RATE_OK;
	} else {
		uint64_t wait_us = (RATE_UNIT - b->tokens + rate - 1) / rate;

		*retry = (unsigned)((wait_us + 999999) / 1000000);
		if (b->window_us != 0 && now_us - b->window_us >=
		    API_RATE_WINDOW * 1000000ull)
			rate_take_sum(b, now, sums, nsum);	/* a new window */
		if (b->window_us == 0) {
			b->window_us = now_us;
			b->window_from = now;
			verdict = RATE_FIRST;
		} else {
			b->refused++;
			verdict = RATE_MORE;
		}
	}
	(void)pthread_mutex_unlock(&rate_lock);
	return verdict;
}

/*
 * Whether a request over its rate was refused (429 in rs, counted); a
 * refusal after its window's first is marked as logged, since the
 * window's summary counts it.
 */
static int
rate_refused(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key)
{
	struct rate_sum sums[RATE_SUMS];
	char name[API_RATE_NAME + 1];
	unsigned retry = 1;
	size_t nsum = 0;
	int verdict;

	if (s->limits.rate_limit == 0)
		return 0;
	rate_name(name, rq, key);
	verdict = rate_charge(s, name, &retry, sums, &nsum);
	rate_write(s, sums, nsum);
	if (verdict == RATE_OK)
		return 0;
	atomic_fetch_add(&s->rate_refused[key != NULL], 1);
	fail(rs, 429, "rate_limited", PV_ELIMIT, key != NULL ? "this key's "
	    "request rate" : "this address's unauthenticated request rate");
	rs->retry_after = retry;
	rs->audited = verdict == RATE_MORE;
	return 1;
}

/* A request for no route: 405 if the path has others, else 404. */
static void
no_route(struct api_server *s, const struct api_req *rq, struct api_resp *rs)
{
	struct vault_event ev = { .actor = "-", .action = ACTION_UNKNOWN,
	    .ok = 0, .purpose = -1, .request_id = rq->request_id };

	/* Probes cost an audit write each: limited by address. */
	if (rate_refused(s, rq, rs, NULL)) {
		if (rs->audited)
			return;		/* counted in its window's summary */
	} else if (api_route_allow(rq->path, rs->allow_buf,
	    sizeof(rs->allow_buf))) {
		fail(rs, 405, "method_not_allowed", PV_EUSAGE, "this route "
		    "takes another method (see Allow)");
		rs->allow = rs->allow_buf;
	} else
		fail(rs, 404, "not_found", PV_ENOTFOUND, "no such route");
	/* Logged too: a probe of the API is a request. */
	ev.code = rs->code;
	if (vault_audit(s->vault, &ev, NULL) != PV_OK) {
		unavailable(rs, "the audit log cannot be written");
		rs->storage = 1;
		atomic_store(&s->degraded, 1);
	} else
		atomic_store(&s->degraded, 0);
}

void
api_handle(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs)
{
	char id[API_ID_MAX + 1];
	const struct api_route *r = api_route_of(rq->method, rq->path, id);
	struct vault_apikey key;
	struct vault_event ev;
	int wrote = 0;
	pv_status rc;

	rs->status = 500;
	rs->ctype = "application/json";
	rs->retry_after = 0;
	rs->allow = NULL;
	rs->challenge = 0;
	rs->cache = NULL;
	rs->code = NULL;
	rs->audited = 0;
	rs->storage = 0;
	rs->location[0] = '\0';
	rs->key[0] = '\0';
	api_rate_flush(s, 1);		/* summaries of ended windows */
	if (r == NULL) {
		no_route(s, rq, rs);
		return;
	}
	/*
	 * Health, metrics and the public signing keys hold no personal data:
	 * no key, not logged.
	 */
	if (r->roles == 0) {
		r->handler(s, rq, rs, NULL, NULL, id);
		return;
	}
	/* The key's record names it and its rights; it holds no secret. */
	key.name[0] = '\0';
	memset(&ev, 0, sizeof(ev));
	ev.actor = "-";
	ev.action = r->action;
	ev.purpose = -1;
	ev.request_id = rq->request_id;
	rc = authenticate(s, rq, &key);
	if (rc == PV_OK) {
		ev.actor = key.name;
		memcpy(rs->key, key.name, sizeof(rs->key));
	}
	/*
	 * The rate: per key, or per address without a valid key.  A request
	 * that waits for 100 Continue is charged once, when it is whole,
	 * unless it ends at its headers.
	 */
	if ((!rq->headers_only || rc != PV_OK) && rate_refused(s, rq, rs,
	    rc == PV_OK ? &key : NULL))
		;	/* 429, logged below unless a summary counts it */
	else if (rc != PV_OK)
		fail_rc(rs, rc, NULL);
	else if (rq->late) {
		/* Requests already under way at shutdown are finished. */
		unavailable(rs, "shutting down");
	} else if (rq->too_large)
		fail(rs, 413, "too_large", PV_ETOOBIG, "request body");
	else if (!media_ok(r, rq))
		fail(rs, 415, "unsupported_media_type", PV_EINVAL,
		    (r->body & API_BODY_MERGE) ? "send application/json or "
		    "application/merge-patch+json" : "send application/json");
	else if (rq->headers_only) {
		/* Nothing refuses it yet: the body may come (100). */
		rs->status = 100;
		return;
	} else if (rq->len <= API_LARGE_BODY)
		dispatch(s, r, rq, rs, &key, &ev, id);
	else if (admit_large(s) != PV_OK)
		unavailable(rs, "too many large requests at once; retry");
	else {
		dispatch(s, r, rq, rs, &key, &ev, id);
		(void)sem_post(&s->large);
	}
	/*
	 * Every request is logged before it is answered: what the vault did
	 * not log with the change itself (refusals, and reads of the log),
	 * is logged here.  If that fails, nothing is revealed: 503.
	 */
	if (!rs->audited) {
		ev.ok = rs->status < 400;
		ev.code = ev.ok ? NULL : rs->code;
		ev.reason = NULL;
		if (vault_audit(s->vault, &ev, NULL) != PV_OK) {
			unavailable(rs, "the audit log cannot be written");
			rs->storage = 1;
		} else
			wrote = 1;
	} else if (rs->status < 400)
		wrote = 1;	/* the vault logged it with its change */
	/* Health follows the last write: degraded until one succeeds. */
	if (rs->storage)
		atomic_store(&s->degraded, 1);
	else if (wrote)
		atomic_store(&s->degraded, 0);
}
