/*
 * server.c: the API's routes and handlers, authentication, and metrics.
 * No socket here (http.c) and no jansson (json.c): a handler reads a
 * struct api_req and fills a struct api_resp.
 *
 * Nothing here logs or echoes a personal value: error messages are built
 * from status strings and field names only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api_int.h"

const struct api_route_info api_routes[API_R_OTHER] = {
	[API_R_HEALTH] = { "/v1/health", "GET" },
	[API_R_RECORDS] = { "/v1/records", "POST" },
	[API_R_BATCH] = { "/v1/records/batch", "POST" },
	[API_R_DETOKENIZE] = { "/v1/detokenize", "POST" },
	[API_R_LOOKUP] = { "/v1/lookup", "POST" },
	[API_R_METRICS] = { "/metrics", "GET" },
	[API_R_SHRED] = { "/v1/records/{id}", "DELETE" },
	[API_R_ACCESS] = { "/v1/records/{id}", "GET" },
	[API_R_CORRECT] = { "/v1/records/{id}", "PATCH" },
	[API_R_CONSENT] = { "/v1/records/{id}/consent", "PUT" },
	[API_R_HOLD] = { "/v1/records/{id}/legal-hold", "PUT" },
	[API_R_AUDIT] = { "/v1/audit", "GET" },
};

/* Each route's name in the audit log. */
static const char *const route_action[API_R__COUNT] = {
	[API_R_HEALTH] = "health",
	[API_R_RECORDS] = "records.create",
	[API_R_BATCH] = "records.batch",
	[API_R_DETOKENIZE] = "detokenize",
	[API_R_LOOKUP] = "lookup",
	[API_R_METRICS] = "metrics",
	[API_R_SHRED] = "records.delete",
	[API_R_ACCESS] = "records.access",
	[API_R_CORRECT] = "records.correct",
	[API_R_CONSENT] = "records.consent",
	[API_R_HOLD] = "records.legal_hold",
	[API_R_AUDIT] = "audit.read",
	[API_R_OTHER] = "unknown",
};

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
	/* "/v1/records/batch" is its own route, not a record id. */
	if (len == 5 && memcmp(path, "batch", 5) == 0)
		return 0;
	memcpy(id, path, len);
	id[len] = '\0';
	return 1;
}

enum api_route
api_route_of(const char *method, const char *path,
    char id[static API_ID_MAX + 1])
{
	/* HEAD only where a GET has no effect: health and metrics. */
	if (strcmp(method, "HEAD") == 0 && (strcmp(path,
	    api_routes[API_R_HEALTH].path) == 0 || strcmp(path,
	    api_routes[API_R_METRICS].path) == 0))
		method = "GET";
	for (int r = 0; r < API_R_OTHER; r++)
		if (strcmp(method, api_routes[r].method) == 0 &&
		    path_match(api_routes[r].path, path, id))
			return (enum api_route)r;
	return API_R_OTHER;
}

int
api_route_allow(const char *path, char *allow, size_t cap)
{
	char id[API_ID_MAX + 1];
	size_t n = 0;
	int known = 0;

	allow[0] = '\0';
	for (int r = 0; r < API_R_OTHER; r++) {
		size_t ml = strlen(api_routes[r].method);

		if (!path_match(api_routes[r].path, path, id) ||
		    n + ml + 3 > cap)
			continue;
		if (known++)
			memcpy(allow + n, ", ", 2), n += 2;
		memcpy(allow + n, api_routes[r].method, ml + 1);
		n += ml;
	}
	return known;
}

void
api_observe(struct api_server *s, enum api_route r, unsigned status,
    uint64_t micros)
{
	int slot = API_STATUS_SLOTS - 1, b;

	for (int i = 0; i < API_STATUS_SLOTS - 1; i++)
		if (status_slots[i] == status) {
			slot = i;
			break;
		}
	atomic_fetch_add(&s->requests[r][slot], 1);
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

/*
 * An error answer.  detail, when given, is our own text (it never holds a
 * value); it follows the status's own message.
 */
static void
fail(struct api_resp *rs, unsigned status, const char *code, pv_status rc,
    const char *detail)
{
	struct pv_buf *b = &rs->body;
	char msg[API_ERR_MAX + 128];

	pv_buf_cleanup(b);
	if (detail != NULL && *detail != '\0')
		(void)snprintf(msg, sizeof(msg), "%s: %s", pv_strerror(rc),
		    detail);
	else
		(void)snprintf(msg, sizeof(msg), "%s", pv_strerror(rc));
	reply(rs, status);
	rs->code = code;
	rs->challenge = 0;
	if (pv_buf_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":", code)
	    != PV_OK || api_json_quote(b, msg, strlen(msg)) != PV_OK ||
	    pv_buf_add(b, "}}", 2) != PV_OK) {
		/* The buffer holds at least a small error: fall back. */
		pv_buf_cleanup(b);
		rs->status = 500;
	}
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

static void
fail_rc(struct api_resp *rs, pv_status rc, const char *detail)
{
	unsigned st = http_status(rc);

	if (st == 500)
		pv_log(PV_LOG_ERROR, "request failed: %s", pv_strerror(rc));
	fail(rs, st, st == 500 ? "internal" : api_error_code(rc), rc,
	    st == 500 ? NULL : detail);
	rs->challenge = st == 401;
}

/* Authentication: "Authorization: Bearer pvk_…". */
static pv_status
authenticate(struct api_server *s, const struct api_req *rq,
    struct vault_apikey *key)
{
	const char *p = rq->auth;

	if (p == NULL || strncasecmp(p, "Bearer ", 7) != 0)
		return PV_EUNAUTH;
	p += 7;
	while (*p == ' ')
		p++;
	return vault_apikey_auth(s->vault, p, strlen(p), key);
}

static int
is_json(const char *ctype)
{
	size_t n = strlen("application/json");

	if (ctype == NULL || strncasecmp(ctype, "application/json", n) != 0)
		return 0;
	for (ctype += n; *ctype == ' ' || *ctype == '\t'; ctype++)
		;
	return *ctype == '\0' || *ctype == ';';
}

/* Limits stricter than the vault's own: checked before it is asked. */
static pv_status
check_limits(const struct api_server *s, const struct vault_record_in *in,
    const char **detail)
{
	if (in->nfields > s->limits.fields_max) {
		*detail = "too many fields";
		return PV_ETOOBIG;
	}
	for (size_t i = 0; i < in->nfields; i++)
		if (in->fields[i].len > s->limits.value_max) {
			*detail = "value too long";
			return PV_ETOOBIG;
		}
	*detail = NULL;
	return PV_OK;
}

/* Handlers. */

static void
h_health(struct api_server *s, const struct api_req *rq, struct api_resp *rs)
{
	if (rq->late || atomic_load(&s->stopping)) {
		fail(rs, 503, "unavailable", PV_EUNAVAIL, "shutting down");
		return;
	}
	reply(rs, 200);
	if (pv_buf_add(&rs->body, "{\"status\":\"ok\"}", 15) != PV_OK)
		fail_rc(rs, PV_ENOMEM, NULL);
}

static void
h_records(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    const struct vault_event *ev)
{
	char (*tokens)[VAULT_ID_STRLEN + 1] = NULL;
	struct vault_put_result res;
	struct api_records *recs = NULL;
	struct vault_record_in *in;
	char err[API_ERR_MAX];
	const char *detail;
	pv_status rc;

	if (key->role != VAULT_ROLE_WRITER) {
		fail(rs, 403, "forbidden", PV_EFORBIDDEN, "needs a writer key");
		return;
	}
	if ((rc = api_records_parse(rq->body, rq->len, 0, 1, &recs, err)) !=
	    PV_OK) {
		fail_rc(rs, rc, err);
		return;
	}
	in = api_records_in(recs, 0);
	if ((rc = check_limits(s, in, &detail)) != PV_OK) {
		fail_rc(rs, rc, detail);
		goto out;
	}
	if ((tokens = calloc(in->nfields ? in->nfields : 1,
	    sizeof(*tokens))) == NULL) {
		fail_rc(rs, PV_ENOMEM, NULL);
		goto out;
	}
	res.tokens = tokens;
	if ((rc = vault_put_ev(s->vault, in, 1, &res, ev)) == PV_OK)
		rc = res.status;
	if (rc != PV_OK) {
		fail_rc(rs, rc, rc == PV_EINVAL ? "a record needs fields" :
		    NULL);
		goto out;
	}
	rs->audited = 1;
	reply(rs, 201);
	if ((rc = api_json_put_result(&rs->body, in, &res)) != PV_OK)
		fail_rc(rs, rc, NULL);
out:
	free(tokens);
	api_records_free(recs);
}

static void
h_batch(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, const struct vault_event *ev)
{
	struct api_records *recs = NULL;
	struct vault_record_in *valid = NULL;
	struct vault_put_result *res = NULL;
	char (*tokens)[VAULT_ID_STRLEN + 1] = NULL;
	size_t *map = NULL, n, nvalid = 0, ntok = 0, pos = 0;
	struct pv_buf *b = &rs->body;
	char err[API_ERR_MAX];
	const char *detail;
	pv_status rc;

	if (key->role != VAULT_ROLE_WRITER) {
		fail(rs, 403, "forbidden", PV_EFORBIDDEN, "needs a writer key");
		return;
	}
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
		    check_limits(s, in, &detail) != PV_OK)
			continue;
		map[nvalid] = i;
		valid[nvalid++] = *in;
		ntok += in->nfields;
	}
	if ((tokens = calloc(ntok ? ntok : 1, sizeof(*tokens))) == NULL) {
		fail_rc(rs, PV_ENOMEM, NULL);
		goto out;
	}
	for (size_t j = 0; j < nvalid; j++) {
		res[j].tokens = tokens + pos;
		pos += valid[j].nfields;
	}
	if (nvalid > 0 && (rc = vault_put_ev(s->vault, valid, nvalid, res,
	    ev)) != PV_OK && http_status(rc) >= 500) {
		/* The commit failed: nothing of the batch was stored. */
		fail_rc(rs, rc, NULL);
		goto out;
	}
	for (size_t j = 0; j < nvalid; j++)
		if (res[j].status == PV_OK)
			rs->audited = 1;	/* logged with what it stored */
	reply(rs, 200);
	rc = pv_buf_add(b, "{\"results\":[", 12);
	for (size_t i = 0, j = 0; i < n && rc == PV_OK; i++) {
		struct vault_record_in *in = api_records_in(recs, i);
		pv_status st;

		if (i > 0 && (rc = pv_buf_add(b, ",", 1)) != PV_OK)
			break;
		detail = NULL;
		if (j < nvalid && map[j] == i) {
			st = res[j].status;
			if (st == PV_OK) {
				rc = api_json_put_result(b, in, &res[j]);
				j++;
				continue;
			}
			j++;
		} else if ((st = api_records_status(recs, i, &detail)) ==
		    PV_OK)
			st = check_limits(s, in, &detail);
		if (st == PV_EINVAL && (detail == NULL || *detail == '\0'))
			detail = "a record needs fields";
		rc = pv_buf_printf(b, "{\"error\":{\"code\":\"%s\","
		    "\"message\":", api_error_code(st));
		if (rc == PV_OK) {
			char msg[API_ERR_MAX + 64];

			(void)snprintf(msg, sizeof(msg), "%s%s%s",
			    pv_strerror(st), detail && *detail ? ": " : "",
			    detail ? detail : "");
			if ((rc = api_json_quote(b, msg, strlen(msg))) ==
			    PV_OK)
				rc = pv_buf_add(b, "}}", 2);
		}
	}
	if (rc == PV_OK)
		rc = pv_buf_add(b, "]}", 2);
	if (rc != PV_OK)
		fail_rc(rs, rc, NULL);
out:
	free(tokens);
	free(map);
	free(res);
	free(valid);
	api_records_free(recs);
}

static pv_status
emit_reveal(struct pv_buf *b, const struct vault_reveal *r)
{
	pv_status rc;

	if (r->status != PV_OK)
		return pv_buf_printf(b, "{\"error\":{\"code\":\"%s\"}}",
		    api_error_code(r->status));
	if ((rc = pv_buf_printf(b, "{\"field\":\"%s\",", r->field)) != PV_OK)
		return rc;
	if (r->value != NULL) {
		if ((rc = pv_buf_add(b, "\"value\":", 8)) != PV_OK ||
		    (rc = api_json_quote(b, r->value, r->len)) != PV_OK)
			return rc;
	} else {
		if ((rc = pv_buf_add(b, "\"masked\":", 9)) != PV_OK ||
		    (rc = api_json_quote(b, r->masked, strlen(r->masked))) !=
		    PV_OK)
			return rc;
		if (r->pseudonym[0] != '\0' &&
		    (rc = pv_buf_printf(b, ",\"pseudonym\":\"%s\"",
		    r->pseudonym)) != PV_OK)
			return rc;
	}
	return pv_buf_add(b, "}", 1);
}

static void
h_detokenize(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    struct vault_event *ev)
{
	struct api_detok *d = NULL;
	struct vault_reveal *out = NULL;
	struct vault_access a;
	struct pv_buf *b = &rs->body;
	char err[API_ERR_MAX];
	pv_status rc;

	if (key->role != VAULT_ROLE_READER) {
		fail(rs, 403, "forbidden", PV_EFORBIDDEN, "needs a reader key");
		return;
	}
	if ((rc = api_detok_parse(rq->body, rq->len, s->limits.batch_max, &d,
	    err)) != PV_OK) {
		fail_rc(rs, rc, err);
		return;
	}
	if ((out = calloc(d->n, sizeof(*out))) == NULL) {
		fail_rc(rs, PV_ENOMEM, NULL);
		goto out;
	}
	a.key = key;
	a.purpose = d->purpose;
	a.reason = d->reason;
	ev->purpose = (int)d->purpose;
	ev->reason = d->reason;
	if ((rc = vault_detokenize(s->vault, &a, ev, d->tokens, d->lens, d->n,
	    out)) != PV_OK) {
		free(out);
		out = NULL;
		fail_rc(rs, rc, rc == PV_EPURPOSE ?
		    vault_purpose_name(d->purpose) : NULL);
		goto out;
	}
	rs->audited = 1;
	reply(rs, 200);
	rc = pv_buf_add(b, "{\"results\":{", 12);
	for (size_t i = 0, emitted = 0; i < d->n && rc == PV_OK; i++) {
		int dup = 0;

		/* A token asked for twice is answered once: keys are unique. */
		for (size_t j = 0; j < i && !dup; j++)
			dup = d->lens[j] == d->lens[i] &&
			    memcmp(d->tokens[j], d->tokens[i], d->lens[i]) == 0;
		if (dup)
			continue;
		if ((emitted++ > 0 && (rc = pv_buf_add(b, ",", 1)) != PV_OK) ||
		    (rc = api_json_quote(b, d->tokens[i], d->lens[i])) !=
		    PV_OK || (rc = pv_buf_add(b, ":", 1)) != PV_OK)
			break;
		rc = emit_reveal(b, &out[i]);
	}
	if (rc == PV_OK)
		rc = pv_buf_add(b, "}}", 2);
	if (rc != PV_OK)
		fail_rc(rs, rc, NULL);
out:
	ev->reason = NULL;	/* points into d */
	if (out != NULL) {
		vault_reveal_cleanup(out, d->n);
		free(out);
	}
	api_detok_free(d);
}

static void
h_lookup(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, const struct vault_event *ev)
{
	struct api_lookup *l = NULL;
	struct vault_match *m = NULL;
	struct pv_buf *b = &rs->body;
	char err[API_ERR_MAX];
	size_t n = 0;
	pv_status rc;

	if (key->role != VAULT_ROLE_WRITER && key->role != VAULT_ROLE_READER) {
		fail(rs, 403, "forbidden", PV_EFORBIDDEN, "needs a writer or "
		    "reader key");
		return;
	}
	if ((rc = api_lookup_parse(rq->body, rq->len, &l, err)) != PV_OK) {
		fail_rc(rs, rc, err);
		return;
	}
	if (l->len > s->limits.value_max) {
		fail(rs, 413, "too_large", PV_ETOOBIG, "value too long");
		goto out;
	}
	/* Whether a value exists is itself something a key may not see. */
	if (!vault_apikey_field_allowed(key, l->field, l->fieldlen)) {
		fail(rs, 403, "forbidden", PV_EFORBIDDEN, "field not among "
		    "this key's fields");
		goto out;
	}
	if ((rc = vault_lookup_ev(s->vault, ev, l->field, l->fieldlen,
	    l->value, l->len, &m, &n)) != PV_OK) {
		fail_rc(rs, rc, NULL);
		goto out;
	}
	rs->audited = 1;
	reply(rs, 200);
	rc = pv_buf_add(b, "{\"matches\":[", 12);
	for (size_t i = 0; i < n && rc == PV_OK; i++)
		rc = pv_buf_printf(b, "%s{\"id\":\"%s\",\"token\":\"%s\"}",
		    i ? "," : "", m[i].id, m[i].token);
	if (rc == PV_OK)
		rc = pv_buf_add(b, "]}", 2);
	if (rc != PV_OK)
		fail_rc(rs, rc, NULL);
out:
	free(m);
	api_lookup_free(l);
}

static void
h_shred(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, struct vault_event *ev, const char *id)
{
	const char *reason = rq->arg != NULL ? rq->arg(rq, "reason") : NULL;
	const char *ids[1] = { id };
	size_t lens[1] = { strlen(id) };
	struct vault_receipt receipt;
	uint64_t retry = 0;
	pv_status rc, st;
	int logged = 0;

	if (key->role != VAULT_ROLE_ADMIN) {
		fail(rs, 403, "forbidden", PV_EFORBIDDEN, "needs an admin key");
		return;
	}
	if (reason == NULL || *reason == '\0')
		reason = "request";
	ev->reason = reason;
	if ((rc = vault_shred_ev(s->vault, ev, s->request_limit, ids, lens, 1,
	    reason, &receipt, &st, &retry, &logged)) != PV_OK) {
		fail_rc(rs, rc, rc == PV_EVALUE ? "reason must be 1 to 200 "
		    "characters without control characters" : NULL);
		return;
	}
	rs->audited = logged;	/* shreds and refused holds; not repeats */
	if (st == PV_ETOKEN || st == PV_ENOTFOUND) {
		fail(rs, 404, "not_found", PV_ENOTFOUND, "no such record");
		return;
	}
	if (st == PV_EHOLD) {
		fail(rs, 409, "legal_hold", PV_EHOLD, NULL);
		return;
	}
	if (st == PV_ELIMIT) {
		fail(rs, 429, "too_many_requests", PV_ELIMIT, "deletion");
		rs->retry_after = (unsigned)(retry > 86400 * 365 ? 86400 * 365 :
		    retry);
		return;
	}
	if (st != PV_OK) {
		fail_rc(rs, st, NULL);
		return;
	}
	reply(rs, 200);
	if ((rc = api_json_receipt(&rs->body, &receipt)) != PV_OK)
		fail_rc(rs, rc, NULL);
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
		fail(rs, 429, "too_many_requests", PV_ELIMIT, NULL);
		rs->retry_after = (unsigned)(retry > 86400 * 365 ?
		    86400 * 365 : retry);
		break;
	default:
		fail_rc(rs, rc, NULL);
	}
	return 1;
}

static int
need_admin(struct api_resp *rs, const struct vault_apikey *key)
{
	if (key->role == VAULT_ROLE_ADMIN)
		return 0;
	fail(rs, 403, "forbidden", PV_EFORBIDDEN, "needs an admin key");
	return 1;
}

static void
h_access(struct api_server *s, struct api_resp *rs,
    const struct vault_apikey *key, const struct vault_event *ev,
    const char *id)
{
	struct vault_record_view *r = NULL;
	struct pv_buf *b = &rs->body;
	uint64_t retry = 0;
	pv_status rc;

	if (need_admin(rs, key))
		return;
	rc = vault_record_access(s->vault, ev, id, strlen(id), &r, &retry,
	    &rs->audited);
	if (record_failed(rs, rc, retry))
		return;
	reply(rs, 200);
	rc = pv_buf_printf(b, "{\"id\":\"%s\",\"fields\":{", r->id);
	for (size_t i = 0; i < r->nfields && rc == PV_OK; i++) {
		const struct vault_record_field *f = &r->fields[i];

		if ((rc = pv_buf_printf(b, "%s\"%s\":{\"token\":\"%s\","
		    "\"value\":", i ? "," : "", f->name, f->token)) == PV_OK &&
		    (rc = api_json_quote(b, f->value, f->len)) == PV_OK)
			rc = pv_buf_add(b, "}", 1);
	}
	if (rc == PV_OK)
		rc = pv_buf_printf(b, "},\"consent\":{\"marketing\":%s,"
		    "\"notices\":true},\"created\":%llu,\"retain_until\":",
		    r->marketing ? "true" : "false",
		    (unsigned long long)r->created);
	if (rc == PV_OK)
		rc = r->retain_until ? pv_buf_printf(b, "%llu",
		    (unsigned long long)r->retain_until) :
		    pv_buf_add(b, "null", 4);
	if (rc == PV_OK)
		rc = pv_buf_printf(b, ",\"legal_hold\":%s,\"reads\":[",
		    r->hold ? "true" : "false");
	for (size_t i = 0; i < r->nreads && rc == PV_OK; i++) {
		const struct vault_audit_entry *e = &r->reads[i];

		rc = pv_buf_printf(b, "%s{\"by\":", i ? "," : "");
		if (rc == PV_OK)
			rc = api_json_quote(b, e->actor, strlen(e->actor));
		if (rc == PV_OK)
			rc = pv_buf_printf(b, ",\"at\":%llu,\"purpose\":%s%s%s,"
			    "\"audit_seq\":%llu}", (unsigned long long)e->time,
			    e->purpose < 0 ? "null" : "\"", e->purpose < 0 ?
			    "" : vault_purpose_name((enum vault_purpose)
			    e->purpose), e->purpose < 0 ? "" : "\"",
			    (unsigned long long)e->seq);
	}
	if (rc == PV_OK)
		rc = pv_buf_add(b, "]}", 2);
	if (rc != PV_OK)
		fail_rc(rs, rc, NULL);
	vault_record_view_free(r);
}

static void
h_correct(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    const struct vault_event *ev, const char *id)
{
	char (*tokens)[VAULT_ID_STRLEN + 1] = NULL;
	char (*names)[PV_FIELD_NAME_MAX + 1] = NULL;
	const struct vault_field *f;
	struct api_patch *p = NULL;
	struct pv_buf *b = &rs->body;
	char err[API_ERR_MAX];
	size_t n, nt = 0;
	pv_status rc;

	if (need_admin(rs, key))
		return;
	if ((rc = api_patch_parse(rq->body, rq->len, &p, err)) != PV_OK) {
		fail_rc(rs, rc, err);
		return;
	}
	f = api_patch_fields(p, &n);
	if (n > s->limits.fields_max) {
		fail(rs, 413, "too_large", PV_ETOOBIG, "too many fields");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (f[i].value != NULL && f[i].len > s->limits.value_max) {
			fail(rs, 413, "too_large", PV_ETOOBIG, "value too long");
			goto out;
		}
	if ((tokens = calloc(PV_FIELDS_MAX, sizeof(*tokens))) == NULL ||
	    (names = calloc(PV_FIELDS_MAX, sizeof(*names))) == NULL) {
		fail_rc(rs, PV_ENOMEM, NULL);
		goto out;
	}
	rc = vault_record_correct(s->vault, ev, id, strlen(id), f, n, tokens,
	    names, &nt, &rs->audited);
	if (rc == PV_EFIELD || rc == PV_EVALUE || rc == PV_ETOOBIG ||
	    rc == PV_EINVAL) {
		fail_rc(rs, rc, rc == PV_EINVAL ? "a record keeps at least "
		    "one field (delete it instead)" : NULL);
		goto out;
	}
	if (record_failed(rs, rc, 0))
		goto out;
	reply(rs, 200);
	rc = pv_buf_printf(b, "{\"id\":\"%s\",\"tokens\":{", id);
	for (size_t i = 0; i < nt && rc == PV_OK; i++)
		rc = pv_buf_printf(b, "%s\"%s\":\"%s\"", i ? "," : "", names[i],
		    tokens[i]);
	if (rc == PV_OK)
		rc = pv_buf_add(b, "}}", 2);
	if (rc != PV_OK)
		fail_rc(rs, rc, NULL);
out:
	free(tokens);
	free(names);
	api_patch_free(p);
}

static void
h_consent(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    const struct vault_event *ev, const char *id)
{
	static const char *const bools[] = { "marketing", "notices", NULL };
	char err[API_ERR_MAX];
	int vals[2];
	pv_status rc;

	if (need_admin(rs, key))
		return;
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
	reply(rs, 200);
	if (pv_buf_printf(&rs->body, "{\"id\":\"%s\",\"consent\":"
	    "{\"marketing\":%s,\"notices\":true}}", id, vals[0] ? "true" :
	    "false") != PV_OK)
		fail_rc(rs, PV_ENOMEM, NULL);
}

static void
h_hold(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key, struct vault_event *ev, const char *id)
{
	static const char *const bools[] = { "hold", NULL };
	char err[API_ERR_MAX], reason[VAULT_REASON_MAX + 1];
	int vals[1];
	pv_status rc;

	if (need_admin(rs, key))
		return;
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
	if (!vault_reason_valid(reason, strlen(reason)) ||
	    strspn(reason, " \t") == strlen(reason)) {
		fail(rs, 422, "reason_required", PV_EREASON, "a hold needs a "
		    "reason: 1 to 200 characters without control characters");
		return;
	}
	ev->reason = reason;
	rc = vault_record_hold(s->vault, ev, id, strlen(id), vals[0]);
	ev->reason = NULL;	/* reason dies with this frame */
	if (record_failed(rs, rc, 0))
		return;
	rs->audited = 1;
	reply(rs, 200);
	if (pv_buf_printf(&rs->body, "{\"id\":\"%s\",\"legal_hold\":%s}",
	    id, vals[0] ? "true" : "false") != PV_OK)
		fail_rc(rs, PV_ENOMEM, NULL);
}

/* A whole, unsigned decimal number: digits and nothing else. */
static int
digits(const char *s)
{
	if (*s == '\0' || strlen(s) > 20)
		return 0;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static void
h_audit(struct api_server *s, const struct api_req *rq, struct api_resp *rs,
    const struct vault_apikey *key)
{
	const char *after_s = rq->arg ? rq->arg(rq, "after") : NULL;
	const char *limit_s = rq->arg ? rq->arg(rq, "limit") : NULL;
	struct vault_audit_entry *e = NULL;
	struct pv_buf *b = &rs->body;
	unsigned long long after = 0, limit = 100;
	size_t n = 0;
	char *end;
	pv_status rc;

	if (key->role != VAULT_ROLE_AUDITOR) {
		fail(rs, 403, "forbidden", PV_EFORBIDDEN, "needs an auditor "
		    "key");
		return;
	}
	if (after_s != NULL && (!digits(after_s) || (errno = 0,
	    after = strtoull(after_s, &end, 10), errno != 0))) {
		fail(rs, 422, "invalid_value", PV_EVALUE, "after must be a "
		    "sequence number");
		return;
	}
	if (limit_s != NULL && (!digits(limit_s) || (errno = 0,
	    limit = strtoull(limit_s, &end, 10), errno != 0) || limit == 0 ||
	    limit > VAULT_BATCH_MAX)) {
		fail(rs, 422, "invalid_value", PV_EVALUE, "limit must be 1 to "
		    "1000");
		return;
	}
	if ((rc = vault_audit_read(s->vault, after, (size_t)limit, &e, &n)) !=
	    PV_OK) {
		fail_rc(rs, rc, rc == PV_EINTEGRITY ? "the audit chain does "
		    "not verify" : NULL);
		return;
	}
	reply(rs, 200);
	rc = pv_buf_add(b, "{\"events\":[", 11);
	for (size_t i = 0; i < n && rc == PV_OK; i++)
		rc = api_json_event(b, &e[i], i > 0);
	if (rc == PV_OK)
		rc = pv_buf_printf(b, "],\"next\":%llu}", n > 0 ?
		    (unsigned long long)e[n - 1].seq : after);
	if (rc != PV_OK)
		fail_rc(rs, rc, NULL);
	vault_audit_entries_free(e, n);
}

static void
h_metrics(struct api_server *s, const struct api_req *rq, struct api_resp *rs)
{
	struct pv_buf *b = &rs->body;
	struct vault_info info;
	unsigned long long cum = 0;
	uint32_t kek = 0;
	pv_status rc;

	(void)rq;
	if ((rc = vault_info(s->vault, &info)) != PV_OK) {
		fail_rc(rs, rc, NULL);
		return;
	}
	for (size_t i = 0; i < info.nkeys; i++)
		if (info.keys[i].kind == KMS_KEK &&
		    info.keys[i].state == KMS_ACTIVE)
			kek = info.keys[i].version;
	free(info.keys);
	reply(rs, 200);
	rs->ctype = "text/plain; version=0.0.4";
	rc = pv_buf_printf(b, "# HELP piivault_requests_total HTTP requests "
	    "by route and status.\n# TYPE piivault_requests_total counter\n");
	for (int r = 0; r < API_R__COUNT && rc == PV_OK; r++)
		for (int st = 0; st < API_STATUS_SLOTS && rc == PV_OK; st++) {
			unsigned long long c = atomic_load(&s->requests[r][st]);

			if (c == 0)
				continue;
			char label[16];

			if (status_slots[st] != 0)
				(void)snprintf(label, sizeof(label), "%u",
				    status_slots[st]);
			else
				memcpy(label, "other", 6);
			rc = pv_buf_printf(b, "piivault_requests_total{route="
			    "\"%s\",method=\"%s\",status=\"%s\"} %llu\n",
			    r == API_R_OTHER ? "other" : api_routes[r].path,
			    r == API_R_OTHER ? "other" : api_routes[r].method,
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
	if (rc != PV_OK)
		fail_rc(rs, rc, NULL);
}

static int
has_body(const char *method)
{
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	    strcmp(method, "PATCH") == 0;
}

/* Dispatch an authenticated request to its handler. */
static void
dispatch(struct api_server *s, enum api_route r, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    struct vault_event *ev, const char *id)
{
	switch (r) {
	case API_R_RECORDS:
		h_records(s, rq, rs, key, ev);
		break;
	case API_R_BATCH:
		h_batch(s, rq, rs, key, ev);
		break;
	case API_R_DETOKENIZE:
		h_detokenize(s, rq, rs, key, ev);
		break;
	case API_R_LOOKUP:
		h_lookup(s, rq, rs, key, ev);
		break;
	case API_R_SHRED:
		h_shred(s, rq, rs, key, ev, id);
		break;
	case API_R_ACCESS:
		h_access(s, rs, key, ev, id);
		break;
	case API_R_CORRECT:
		h_correct(s, rq, rs, key, ev, id);
		break;
	case API_R_CONSENT:
		h_consent(s, rq, rs, key, ev, id);
		break;
	case API_R_HOLD:
		h_hold(s, rq, rs, key, ev, id);
		break;
	case API_R_AUDIT:
		h_audit(s, rq, rs, key);
		break;
	default:
		fail(rs, 404, "not_found", PV_ENOTFOUND, NULL);
	}
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

void
api_handle(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs)
{
	char id[API_ID_MAX + 1];
	enum api_route r = api_route_of(rq->method, rq->path, id);
	struct vault_apikey key;
	struct vault_event ev;
	pv_status rc;

	rs->status = 500;
	rs->ctype = "application/json";
	rs->retry_after = 0;
	rs->allow = NULL;
	rs->challenge = 0;
	rs->code = NULL;
	rs->audited = 0;
	if (r == API_R_OTHER) {
		if (api_route_allow(rq->path, rs->allow_buf,
		    sizeof(rs->allow_buf))) {
			fail(rs, 405, "method_not_allowed", PV_EUSAGE, "this "
			    "route takes another method (see Allow)");
			rs->allow = rs->allow_buf;
		} else
			fail(rs, 404, "not_found", PV_ENOTFOUND, "no such "
			    "route");
		/* Logged too: a probe of the API is a request. */
		if (vault_audit(s->vault, &(struct vault_event){ .actor = "-",
		    .action = route_action[API_R_OTHER], .ok = 0,
		    .code = rs->code, .purpose = -1 }, NULL) != PV_OK) {
			fail(rs, 503, "unavailable", PV_EUNAVAIL, "the audit "
			    "log cannot be written");
			rs->retry_after = 1;
		}
		return;
	}
	/* Health and metrics hold no personal data: not logged. */
	if (r == API_R_HEALTH) {
		h_health(s, rq, rs);
		return;
	}
	if (r == API_R_METRICS) {
		h_metrics(s, rq, rs);
		return;
	}
	/* The key's record names it and its rights; it holds no secret. */
	key.name[0] = '\0';
	memset(&ev, 0, sizeof(ev));
	ev.actor = "-";
	ev.action = route_action[r];
	ev.purpose = -1;
	if ((rc = authenticate(s, rq, &key)) != PV_OK)
		fail_rc(rs, rc, NULL);
	else if (ev.actor = key.name, rq->late) {
		/* Requests already under way at shutdown are finished. */
		fail(rs, 503, "unavailable", PV_EUNAVAIL, "shutting down");
		rs->retry_after = 1;
	} else if (rq->too_large)
		fail(rs, 413, "too_large", PV_ETOOBIG, "request body");
	else if (has_body(rq->method) && !is_json(rq->ctype))
		fail(rs, 415, "unsupported_media_type", PV_EINVAL,
		    "send application/json");
	else if (rq->len <= API_LARGE_BODY)
		dispatch(s, r, rq, rs, &key, &ev, id);
	else if (admit_large(s) != PV_OK) {
		fail(rs, 503, "unavailable", PV_EUNAVAIL, "too many large "
		    "requests at once; retry");
		rs->retry_after = 1;
	} else {
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
			fail(rs, 503, "unavailable", PV_EUNAVAIL, "the audit "
			    "log cannot be written");
			rs->retry_after = 1;
		}
	}
}
