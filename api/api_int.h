/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_int.h: private to api/ (white-box tests say so at their top).
 *
 * The server is three pieces: http.c speaks HTTP (libmicrohttpd, and
 * nothing else does), server.c routes a request to its handler and keeps
 * the metrics, json.c decodes request bodies (jansson).  A request crosses
 * from http.c to server.c as a struct api_req and comes back as a struct
 * api_resp, so the handlers can be driven without a socket.
 */
#ifndef API_INT_H
#define API_INT_H

#include <semaphore.h>
#include <stdatomic.h>

#include "api.h"

struct api_req {
	const char	*method;
	const char	*path;		/* without the query string */
	/* A query argument's value, or NULL (http.c supplies it). */
	const char	*(*arg)(const struct api_req *rq, const char *name);
	void		*conn;		/* for arg */
	int		 late;		/* arrived after shutdown began */
	const char	*auth;		/* Authorization header, or NULL */
	const char	*ctype;		/* Content-Type header, or NULL */
	const char	*body;
	size_t		 len;
	int		 too_large;	/* the body went over the limit */
	const char	*peer;		/* the client's numeric address */
	/*
	 * The request's id (X-Request-Id if the client sent a valid one,
	 * else one made up: api_request_id), for its audit event.
	 */
	const char	*request_id;
	/*
	 * SHA-256 of the client certificate's DER (verified against
	 * tls_client_ca), or NULL when the connection presented none.
	 */
	const uint8_t	*cert_sha256;
	/*
	 * Only the headers have arrived and the client waits for "100
	 * Continue" (Expect): api_handle answers 100 when nothing refuses
	 * the request so far (route, key, size by Content-Length, type),
	 * else the refusal; the body is then not read.
	 */
	int		 headers_only;
};

struct api_resp {
	unsigned	 status;
	struct pv_buf	 body;		/* JSON or Prometheus text */
	const char	*ctype;
	unsigned	 retry_after;	/* seconds, 0 for none */
	const char	*allow;		/* Allow header of a 405, or NULL */
	char		 allow_buf[64];
	const char	*code;		/* the error code sent, or NULL */
	int		 audited;	/* the vault logged this request */
	/* Location header of a 201: the new resource's path, or "". */
	char		 location[48];
	int		 challenge;	/* WWW-Authenticate on a 401 */
	int		 storage;	/* a storage write failed: 503 */
	int		 close;		/* close the connection after it */
	/* Cache-Control of a public answer others may keep; NULL: no-store */
	const char	*cache;
	/* The name of the API key that authenticated it, or "". */
	char		 key[VAULT_APIKEY_NAME_MAX + 1];
};

struct api_server;

/*
 * A route's handler.  key and ev are NULL on a public route; id is the
 * "{id}" segment of the path ("" where the template has none).  The
 * route's role check has passed before it is called.
 */
typedef void api_handler(struct api_server *s, const struct api_req *rq,
    struct api_resp *rs, const struct vault_apikey *key,
    struct vault_event *ev, const char *id);

/* A role in a route's roles mask. */
#define API_ROLE(r)	(1u << (r))

/*
 * The route table (server.c): every fact of a route in one row, read by
 * dispatch, the 405 Allow lists, the audit log, the role checks, the
 * metrics and the OpenAPI test.  "{id}" in a path stands for one segment.
 * A public route (roles 0) takes no key and is not logged; HEAD is
 * answered there as GET, since a GET has no effect, and its path's Allow
 * lists HEAD after GET.
 */
struct api_route {
	const char	*method;
	const char	*path;
	const char	*action;	/* its name in the audit log */
	unsigned	 roles;		/* API_ROLE bits; 0: public */
	int		 body;		/* API_BODY_* bits; 0: none read */
	api_handler	*handler;
};
/*
 * A route's body: JSON (Content-Type application/json, parameters such as
 * charset allowed) and required; with API_BODY_MERGE also
 * application/merge-patch+json (RFC 7396); with API_BODY_OPTIONAL an
 * empty body is no body, whatever its Content-Type.
 */
#define API_BODY_JSON		1
#define API_BODY_MERGE		2
#define API_BODY_OPTIONAL	4
/* The rows of api_routes; a table of another size does not compile. */
#define API_NROUTES	14
extern const struct api_route api_routes[API_NROUTES];

#define API_LAT_BUCKETS	12
#define API_STATUS_SLOTS 16	/* status_slots in server.c */

/*
 * The rate limit (limits.rate_limit requests a second): a token bucket
 * per API key, and per client address (an IPv6 address by its /64) for
 * requests without a valid key.  The buckets live in a fixed table of
 * API_RATE_SETS sets of API_RATE_WAYS: a new name takes the free or the
 * least recently used slot of its set, so memory stays bounded however
 * many addresses call.  A refusal answers 429 rate_limited; the first of
 * a window is logged as any request, the later ones only counted, and one
 * summary event (their count, the key or address, the window) is written
 * when the bucket next admits a request, when the window is
 * API_RATE_WINDOW seconds old, or when the slot is taken by another.
 */
#define API_RATE_SETS	512
#define API_RATE_WAYS	8
#define API_RATE_WINDOW	10	/* seconds a summary covers at most */
#define API_RATE_NAME	(2 + VAULT_APIKEY_NAME_MAX)	/* "k:" or "a:" */

struct api_bucket {
	char		 name[API_RATE_NAME + 1];	/* "": free */
	uint64_t	 tokens;	/* millionths of a request */
	uint64_t	 last_us;	/* last refill (monotonic) */
	uint64_t	 refused;	/* refusals after a window's first */
	uint64_t	 window_us;	/* the window's first refusal */
	uint64_t	 window_from;	/* the same, wall clock seconds */
};

struct api_server {
	struct vault		*vault;
	struct api_limits	 limits;
	/*
	 * Metrics: requests by route (a row of api_routes, then one slot for
	 * the unknown) and status slot, and latency.
	 */
	atomic_ullong		 requests[API_NROUTES + 1][API_STATUS_SLOTS];
	atomic_ullong		 lat_bucket[API_LAT_BUCKETS + 1];
	atomic_ullong		 lat_sum_us;
	atomic_ullong		 lat_count;
	/*
	 * Kept by http.c: connections closed over a connection limit (total
	 * or per address) and past the request deadline; requests refused
	 * for their framing; answers libmicrohttpd made itself (400, 413,
	 * 414, 431, 505: fixed HTML, see docs/openapi.yaml).
	 */
	atomic_ullong		 conn_refused;
	atomic_ullong		 conn_timeout;
	atomic_ullong		 framing_refused;
	atomic_ullong		 lib_errors;
	atomic_int		 stopping;
	/*
	 * Decoding a body costs several times its size, so requests whose
	 * body exceeds API_LARGE_BODY are decoded limits.large at a time:
	 * the server's memory then follows that number, not the thread
	 * count.
	 */
	sem_t			 large;
	/* Health: the last storage write failed (cleared by a success). */
	atomic_int		 degraded;
	atomic_ullong		 rate_refused[2];	/* by address, by key */
	uint64_t		 rate_sweep_us;	/* next look for old windows */
	struct api_bucket	 rate[API_RATE_SETS][API_RATE_WAYS];
};

/*
 * Write the summaries of every bucket's refusals not yet logged (all of
 * them, or with due only those whose window has ended).  Called by
 * api_handle, and by the HTTP layer once the last request has finished.
 */
void	api_rate_flush(struct api_server *s, int due);

#define API_LARGE_BODY	(16u << 10)
#define API_LARGE_WAIT	10	/* seconds for a turn, then 503 */

/* Handle one request; resp->body is initialized by the caller. */
void	api_handle(struct api_server *s, const struct api_req *req,
	    struct api_resp *resp);

/*
 * Record a finished request in the metrics; r is its route, or NULL for
 * an unknown one.
 */
void	api_observe(struct api_server *s, const struct api_route *r,
	    unsigned status, uint64_t micros);
/*
 * The route for method and path, or NULL; a "{id}" segment is copied to
 * id (API_ID_MAX bytes, NUL-terminated), which is "" otherwise.
 */
#define API_ID_MAX	64
const struct api_route *api_route_of(const char *method, const char *path,
	    char id[static API_ID_MAX + 1]);
/* Whether some route has path; if so, its methods go to allow. */
int	api_route_allow(const char *path, char *allow, size_t cap);
/*
 * What the access log names a request's route by: the template of the
 * route for method and path, else of one for path with another method
 * (a 405), else "other"; never the path itself.  Static; never NULL.
 */
const char *api_route_name(const char *method, const char *path);

/*
 * Request ids.  A client's X-Request-Id is taken when it is 1 to
 * API_REQUEST_ID_MAX characters of [A-Za-z0-9._-] (api_request_id_valid);
 * otherwise the server makes one: 16 random bytes in base64url, 22
 * characters (api_request_id_new: PV_OK, or what pv_random returns).
 */
#define API_REQUEST_ID_MAX	VAULT_REQUEST_ID_MAX
int	  api_request_id_valid(const char *s, size_t len);
pv_status api_request_id_new(char out[static API_REQUEST_ID_MAX + 1]) PV_WUR;

/* Request bodies (json.c).  err never quotes a value. */

struct api_records;
/*
 * Decode POST /v1/records ({"fields":…,"consent":…,"retention_days":…})
 * or, with batch, {"records":[…]} of at most max records.  Whole-body
 * failures: PV_EJSON (not JSON, or not an object), PV_EMEMBER, PV_ETOOBIG,
 * PV_EVALUE (a member of the wrong type or range).  In a batch, a record
 * that does not decode gets its own status instead.
 */
pv_status api_records_parse(const char *text, size_t len, int batch,
	      size_t max, struct api_records **out,
	      char err[static API_ERR_MAX]) PV_WUR;
size_t	  api_records_count(const struct api_records *r);
struct vault_record_in *api_records_in(struct api_records *r, size_t i);
pv_status api_records_status(const struct api_records *r, size_t i,
	      const char **detail);
void	  api_records_free(struct api_records *r);

struct api_detok {
	const char	**tokens;
	size_t		 *lens;
	size_t		  n;
	enum vault_purpose purpose;
	const char	 *reason;	/* NULL if absent */
	void		 *root;		/* private */
};
pv_status api_detok_parse(const char *text, size_t len, size_t max,
	      struct api_detok **out, char err[static API_ERR_MAX]) PV_WUR;
void	  api_detok_free(struct api_detok *d);

struct api_lookup {
	const char	*field;
	size_t		 fieldlen;
	const char	**values;	/* n values, lens[i] bytes each */
	size_t		 *lens;
	size_t		  n;
	int		  batch;	/* "values" (else "value", n 1) */
	enum vault_purpose purpose;
	const char	*reason;	/* NULL if absent */
	void		*root;		/* private */
};
/*
 * POST /v1/lookup: {"field":…,"value":…,"purpose":…[,"reason":…]}, or
 * with "values":[…] (1 to max strings) instead of "value"; the purpose is
 * required, as in a detokenize.  PV_EJSON, PV_EMEMBER, PV_EVALUE (a
 * member missing or of the wrong type, both or neither of value and
 * values), PV_ETOOBIG (more than max values).
 */
pv_status api_lookup_parse(const char *text, size_t len, size_t max,
	      struct api_lookup **out, char err[static API_ERR_MAX]) PV_WUR;
void	  api_lookup_free(struct api_lookup *l);

/* PATCH /v1/records/{id}: {"fields":{"name":"value"|null,…}}. */
struct api_patch;
pv_status api_patch_parse(const char *text, size_t len, struct api_patch **out,
	      char err[static API_ERR_MAX]) PV_WUR;
const struct vault_field *api_patch_fields(const struct api_patch *p,
	      size_t *n);
void	  api_patch_free(struct api_patch *p);

/*
 * An object of the booleans named in bools (NULL-terminated, at most 6;
 * vals[i] is 0, 1, or -1 when absent) and, if str is not NULL, one string
 * member copied to sval (scap bytes).  Other members are PV_EMEMBER.
 */
pv_status api_flags_parse(const char *text, size_t len,
	      const char *const *bools, int *vals, const char *str, char *sval,
	      size_t scap, char err[static API_ERR_MAX]) PV_WUR;

/*
 * DELETE /v1/records/{id}: {} or {"reason":…}.  The reason (a string of
 * fewer than cap bytes without NUL, else PV_EVALUE) is copied to reason,
 * and *given says whether the member was there.  PV_EJSON, PV_EMEMBER.
 */
pv_status api_reason_parse(const char *text, size_t len, char *reason,
	      size_t cap, int *given, char err[static API_ERR_MAX]) PV_WUR;

#endif /* API_INT_H */
