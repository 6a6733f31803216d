/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http.c: the HTTP adapter, and the only file that includes
 * libmicrohttpd.  It collects a request (headers, a body bounded by
 * body_max), hands it to api_handle, and sends what comes back.  MHD_YES
 * and MHD_NO end here.
 *
 * It is also the one file that includes GnuTLS: libmicrohttpd only asks
 * for a client certificate, so mutual TLS (--tls-client-ca) is required
 * and verified here, on each connection's GnuTLS session, and the
 * certificate's hash is handed to the handlers (api_req.cert_sha256).
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "api_int.h"

#define DRAIN_SECONDS		10
#define TLS_FILE_MAX		(64u << 10)
#define CONN_POOL		(8u << 10)	/* per connection, bytes */
#define REAP_MS			100	/* the reaper's period */
/* Room above the longest route's path, "/v1/records/{id}/legal-hold". */
#define RAW_PATH_MAX		(API_ID_MAX + 64)
/*
 * libmicrohttpd's own limit, above ours: the connections over ours are
 * accepted and closed (track), not left in the listen backlog.
 */
#define CONN_SLACK		256

struct http;
static void	track(struct http *h, struct MHD_Connection *c,
		    void **socket_context,
		    enum MHD_ConnectionNotificationCode toe);
#define LISTEN_BACKLOG		SOMAXCONN

struct http {
	struct api_server	 srv;
	atomic_int		 inflight;
	pthread_mutex_t		 lock;		/* conns, nconns, their fields */
	struct tconn		*conns;		/* every connection open */
	unsigned		 nconns;	/* of them, those counted */
	atomic_int		 reaper_stop;
	int			 mtls;		/* client certificates required */
};

/* One request's state, from its first callback to its completion. */
struct conn {
	struct pv_buf	 body;
	int		 too_large;
	int		 late;		/* arrived after shutdown began */
	uint64_t	 start_us;
	const struct api_route *route;	/* NULL: no such route */
	const char	*route_name;	/* for the access log: a template */
	const char	*method;	/* for the access log: known, or other */
	unsigned	 status;
	size_t		 bytes;		/* the answer's body */
	char		 rid[API_REQUEST_ID_MAX + 1];	/* X-Request-Id */
	char		 key[VAULT_APIKEY_NAME_MAX + 1];	/* "": none */
	int		 has_cert;	/* cert holds a verified certificate's */
	uint8_t		 cert[VAULT_CERT_HASH_LEN];	/* SHA-256 of its DER */
};

struct owned {
	char	*p;
	size_t	 cap;
};

/* Responses may hold personal values: wiped before they are freed. */
static void
owned_free(void *cls)
{
	struct owned *o = cls;

	pv_cleanse(o->p, o->cap);
	free(o->p);
	free(o);
}

static enum MHD_Result
send_resp(struct MHD_Connection *c, struct api_resp *rs, const char *rid)
{
	struct MHD_Response *r;
	struct owned *o = NULL;
	enum MHD_Result ok;
	char retry[16];

	if (rs->body.len > 0 && (o = malloc(sizeof(*o))) != NULL) {
		o->p = rs->body.p;
		o->cap = rs->body.cap;
		r = MHD_create_response_from_buffer_with_free_callback_cls(
		    rs->body.len, rs->body.p, owned_free, o);
		if (r == NULL)
			free(o);
		else
			pv_buf_init(&rs->body, 0);	/* MHD owns it now */
	} else
		r = MHD_create_response_from_buffer(0, (void *)"",
		    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    rs->ctype) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
	    rs->cache != NULL ? rs->cache : "no-store") != MHD_YES ||
	    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") !=
	    MHD_YES || MHD_add_response_header(r, "X-Request-Id", rid) !=
	    MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	if (rs->close && MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION,
	    "close") != MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	if (rs->allow != NULL && MHD_add_response_header(r,
	    MHD_HTTP_HEADER_ALLOW, rs->allow) != MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	if (rs->location[0] != '\0' && MHD_add_response_header(r,
	    MHD_HTTP_HEADER_LOCATION, rs->location) != MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	if (rs->challenge && MHD_add_response_header(r,
	    MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"piivault\"") !=
	    MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	if (rs->retry_after > 0) {
		(void)snprintf(retry, sizeof(retry), "%u", rs->retry_after);
		if (MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER,
		    retry) != MHD_YES) {
			MHD_destroy_response(r);
			return MHD_NO;
		}
	}
	ok = MHD_queue_response(c, rs->status, r);
	MHD_destroy_response(r);
	return ok;
}

/*
 * A query argument, decoded by libmicrohttpd (%XX).  One holding a NUL
 * (%00) would be cut short where it is read: it counts as absent.
 */
static const char *
query_arg(const struct api_req *rq, const char *name)
{
	const char *v = NULL;
	size_t n = 0;

	if (MHD_lookup_connection_value_n(rq->conn, MHD_GET_ARGUMENT_KIND,
	    name, strlen(name), &v, &n) != MHD_YES || v == NULL ||
	    strlen(v) != n)
		return NULL;
	return v;
}

/*
 * A client certificate must be fit for TLS client authentication (an
 * extended key usage, if it has one, that allows it).  GnuTLS keeps a
 * pointer to this array for the life of the session: it is static.
 */
static gnutls_typed_vdata_st client_purpose[] = {
	{ GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
	    0 },
};

static gnutls_session_t
tls_session(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	return ci != NULL ? ci->tls_session : NULL;
}

/*
 * Mutual TLS.  libmicrohttpd sets up each connection's GnuTLS session to
 * request a certificate (MHD_OPTION_HTTPS_MEM_TRUST) and tells us of the
 * connection before its handshake: here the request becomes a
 * requirement, and the handshake verifies the certificate against the
 * CA (and its purpose), so a connection without one, or with one the CA
 * did not sign, fails the handshake.  peer_cert checks again for each
 * request, in case this did not run.
 */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct http *h = cls;
	gnutls_session_t s;

	/* Limits and deadlines for every connection (see track). */
	track(h, c, socket_context, toe);
	if (toe != MHD_CONNECTION_NOTIFY_STARTED || !h->mtls ||
	    (s = tls_session(c)) == NULL)
		return;
	gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
	gnutls_session_set_verify_cert2(s, client_purpose, 1, 0);
}

/*
 * The SHA-256 of the DER of the client certificate of c's connection,
 * once it verified against the CA: PV_OK, or PV_EUNAUTH when it has none
 * or it did not verify.  (A signature check a request: cheap next to the
 * handshake, and no state to keep per connection.)
 */
static pv_status
peer_cert(struct MHD_Connection *c, uint8_t out[static VAULT_CERT_HASH_LEN])
{
	const gnutls_datum_t *der;
	gnutls_session_t s;
	unsigned int n = 0, status = 1;

	if ((s = tls_session(c)) == NULL)
		return PV_EUNAUTH;
	if (gnutls_certificate_verify_peers(s, client_purpose, 1, &status) !=
	    GNUTLS_E_SUCCESS || status != 0)
		return PV_EUNAUTH;
	if ((der = gnutls_certificate_get_peers(s, &n)) == NULL || n == 0)
		return PV_EUNAUTH;
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der[0].data, der[0].size,
	    out) != GNUTLS_E_SUCCESS)
		return PV_ECRYPTO;
	return PV_OK;
}

/*
 * Slow clients.  libmicrohttpd's timeout is one of inactivity, which a
 * client sending a byte now and then never reaches, and at its
 * connection limit it stops accepting, so the connections past it wait
 * in the listen backlog.  So every connection is tracked here, from
 * MHD_CONNECTION_NOTIFY_STARTED to _CLOSED: one over the per-address or
 * the total limit is shut down at once (libmicrohttpd, whose own limit
 * is set above ours, then sees it end and frees it), and a reaper
 * thread shuts down each connection that has not sent its whole request
 * (headers and body) by its deadline: request_timeout after it opened,
 * or idle_timeout + request_timeout after its previous answer.  While a
 * request is being answered it has none.
 *
 * shutdown(2) is safe here because a connection leaves the list, under
 * the lock, before libmicrohttpd closes its descriptor (it notifies
 * _CLOSED first), so the reaper never touches a descriptor reused.
 */
struct tconn {
	struct tconn	*next;
	struct tconn	*prev;
	int		 fd;
	int		 counted;	/* holds a place in the limits */
	int		 closed;	/* shut down by us */
	uint64_t	 deadline_us;	/* pv_mono_us; 0: none */
	char		 peer[INET6_ADDRSTRLEN];
	/* The raw path of its current request (on_uri); "" if too long. */
	char		 raw[RAW_PATH_MAX + 1];
	/* Where its version must start, if the URI held no NUL (on_uri). */
	const char	*ver_at;
};

static struct tconn *
tconn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci != NULL ? ci->socket_context : NULL;
}

/* The numeric address of sa, or "-". */
static void
peer_name(const struct sockaddr *sa, char *out, size_t cap)
{
	const void *a = NULL;

	if (sa != NULL && sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa != NULL && sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (a == NULL || inet_ntop(sa->sa_family, a, out, (socklen_t)cap) ==
	    NULL)
		(void)snprintf(out, cap, "-");
}

/* Set c's deadline to secs from now; 0: no deadline. */
static void
deadline_set(struct http *h, struct MHD_Connection *c, unsigned secs)
{
	struct tconn *t;

	if ((t = tconn_of(c)) == NULL)
		return;
	(void)pthread_mutex_lock(&h->lock);
	t->deadline_us = secs == 0 ? 0 : pv_mono_us() +
	    (uint64_t)secs * 1000000u;
	(void)pthread_mutex_unlock(&h->lock);
}

/* The tracking part of on_connection. */
static void
track(struct http *h, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	const union MHD_ConnectionInfo *fi, *ai;
	const struct api_limits *l = &h->srv.limits;
	struct tconn *t = *socket_context, *o;
	unsigned same = 0;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (t == NULL)
			return;
		(void)pthread_mutex_lock(&h->lock);
		if (t->prev != NULL)
			t->prev->next = t->next;
		else
			h->conns = t->next;
		if (t->next != NULL)
			t->next->prev = t->prev;
		if (t->counted)
			h->nconns--;
		(void)pthread_mutex_unlock(&h->lock);
		free(t);
		*socket_context = NULL;
		return;
	}
	if ((fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD))
	    == NULL)
		return;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		/* Untracked means unlimited: refuse it instead. */
		(void)shutdown(fi->connect_fd, SHUT_RDWR);
		atomic_fetch_add(&h->srv.conn_refused, 1);
		return;
	}
	t->fd = fi->connect_fd;
	ai = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	peer_name(ai != NULL ? ai->client_addr : NULL, t->peer,
	    sizeof(t->peer));
	(void)pthread_mutex_lock(&h->lock);
	if (l->per_address > 0)
		for (o = h->conns; o != NULL; o = o->next)
			if (o->counted && strcmp(o->peer, t->peer) == 0)
				same++;
	if (h->nconns >= l->connections || (l->per_address > 0 &&
	    same >= l->per_address)) {
		(void)shutdown(t->fd, SHUT_RDWR);
		t->closed = 1;
		atomic_fetch_add(&h->srv.conn_refused, 1);
	} else {
		t->counted = 1;
		h->nconns++;
		t->deadline_us = pv_mono_us() +
		    (uint64_t)l->request_timeout * 1000000u;
	}
	t->next = h->conns;
	if (h->conns != NULL)
		h->conns->prev = t;
	h->conns = t;
	(void)pthread_mutex_unlock(&h->lock);
	*socket_context = t;
}

static void *
reaper(void *arg)
{
	struct http *h = arg;
	struct tconn *t;
	uint64_t now;

	while (!atomic_load(&h->reaper_stop)) {
		now = pv_mono_us();
		(void)pthread_mutex_lock(&h->lock);
		for (t = h->conns; t != NULL; t = t->next)
			if (!t->closed && t->deadline_us != 0 &&
			    now >= t->deadline_us) {
				(void)shutdown(t->fd, SHUT_RDWR);
				t->closed = 1;
				atomic_fetch_add(&h->srv.conn_timeout, 1);
			}
		(void)pthread_mutex_unlock(&h->lock);
		(void)usleep(REAP_MS * 1000);
	}
	return NULL;
}

/*
 * libmicrohttpd decodes the path in place (%2F becomes '/', %00 ends the
 * string): routes are matched on the raw path, kept here before that.
 * A path longer than any route's is kept as "", which is none.  Called
 * once per request, after its request line.
 */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct tconn *t = tconn_of(c);
	size_t n = strcspn(uri, "?");

	(void)cls;
	if (t != NULL) {
		/* libmicrohttpd ended the URI where its version follows. */
		t->ver_at = uri + strlen(uri) + 1;
		if (n > RAW_PATH_MAX)
			n = 0;
		memcpy(t->raw, uri, n);
		t->raw[n] = '\0';
	}
	return NULL;
}

/* Request smuggling: what the framing headers may not be. */
struct framing {
	unsigned	clen;		/* Content-Length headers */
	unsigned	tenc;		/* Transfer-Encoding headers */
	int		bad;		/* a Transfer-Encoding but "chunked" */
};

static enum MHD_Result
framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct framing *f = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		f->clen++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		f->tenc++;
		if (strcasecmp(value, "chunked") != 0)
			f->bad = 1;
	}
	return MHD_YES;
}

/*
 * Where a front proxy and libmicrohttpd could read a request's length
 * differently, one of them sees a second request in the first's body:
 * refuse Content-Length with Transfer-Encoding (libmicrohttpd would use
 * the latter), more than one of either (it would use the first), and a
 * Transfer-Encoding other than chunked.  NULL if none applies.
 */
static const char *
framing_refusal(struct MHD_Connection *c)
{
	struct framing f = { 0, 0, 0 };

	(void)MHD_get_connection_values(c, MHD_HEADER_KIND, framing_header,
	    &f);
	if (f.clen > 0 && f.tenc > 0)
		return "both Content-Length and Transfer-Encoding";
	if (f.clen > 1)
		return "more than one Content-Length";
	if (f.tenc > 1 || f.bad)
		return "a Transfer-Encoding other than one chunked";
	return NULL;
}

/*
 * A NUL byte in the request line or a header.  libmicrohttpd keeps
 * header values as C strings in its read buffer, so a NUL cuts one short
 * without a word, and a proxy in front may read the rest.  Its parser
 * only replaces the CR LF that end lines and the colon that ends a name
 * with NULs, in place: so between the end of one string (name, value)
 * and the start of the next there may be only NULs, spaces and tabs, and
 * anything else there was hidden behind a NUL.  (Folded header lines,
 * obsolete since RFC 7230, are copied elsewhere and are refused too, as
 * RFC 7230 3.2.4 allows.)  Every pointer is checked to lie within the
 * headers before a byte between is read.
 */
struct walk {
	uintptr_t	 lo;		/* the request line's start */
	uintptr_t	 hi;		/* the end of the headers */
	const char	*at;		/* the end of what was checked */
	int		 bad;
};

static int
gap_clean(struct walk *w, const char *to)
{
	uintptr_t a = (uintptr_t)w->at, b = (uintptr_t)to;

	if (a < w->lo || b < a || b > w->hi)
		return 0;
	for (const char *p = w->at; p != to; p++)
		if (*p != '\0' && *p != ' ' && *p != '\t')
			return 0;
	return 1;
}

static enum MHD_Result
walk_header(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct walk *w = cls;

	(void)kind;
	if (w->bad || value == NULL || !gap_clean(w, key)) {
		w->bad = 1;
		return MHD_NO;
	}
	w->at = key + strlen(key);
	if (!gap_clean(w, value)) {
		w->bad = 1;
		return MHD_NO;
	}
	w->at = value + strlen(value);
	return MHD_YES;
}

static int
nul_hidden(struct MHD_Connection *c, const char *method, const char *version)
{
	const union MHD_ConnectionInfo *hi;
	const struct tconn *t = tconn_of(c);
	struct walk w;

	if (t == NULL || t->ver_at != version || (hi = MHD_get_connection_info(c,
	    MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE)) == NULL)
		return 1;
	w.lo = (uintptr_t)method;
	w.hi = w.lo + hi->header_size;
	w.at = version + strlen(version);
	w.bad = 0;
	if (!gap_clean(&w, w.at))	/* only its bounds */
		return 1;
	(void)MHD_get_connection_values(c, MHD_HEADER_KIND, walk_header, &w);
	return w.bad || !gap_clean(&w, (const char *)w.hi);
}

/* The X-Request-Id headers of a request: how many, and the last. */
struct rid_scan {
	const char	*v;
	unsigned	 n;
};

static enum MHD_Result
rid_header(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct rid_scan *r = cls;

	(void)kind;
	if (strcasecmp(key, "X-Request-Id") == 0) {
		r->n++;
		r->v = value;
	}
	return MHD_YES;
}

/*
 * The request's id: the client's X-Request-Id when there is exactly one
 * and it has the form api_request_id_valid takes, else a new one.  (If
 * the random source fails, a count no other request of this process
 * has: an id is never missing.)
 */
static void
request_id(struct MHD_Connection *c, char out[static API_REQUEST_ID_MAX + 1])
{
	static atomic_ullong fallback;
	struct rid_scan r = { NULL, 0 };

	(void)MHD_get_connection_values(c, MHD_HEADER_KIND, rid_header, &r);
	if (r.n == 1 && r.v != NULL && api_request_id_valid(r.v,
	    strlen(r.v))) {
		(void)snprintf(out, API_REQUEST_ID_MAX + 1, "%s", r.v);
		return;
	}
	if (api_request_id_new(out) != PV_OK)
		(void)snprintf(out, API_REQUEST_ID_MAX + 1, "n%llu",
		    (unsigned long long)atomic_fetch_add(&fallback, 1));
}

/* A method as the access log names it: a known one, else "other". */
static const char *
method_name(const char *m)
{
	static const char *const known[] = { "GET", "HEAD", "POST", "PUT",
	    "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT" };

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(m, known[i]) == 0)
			return known[i];
	return "other";
}

/*
 * The access log: one line per request, at info, once it is over (its
 * answer sent, or the connection gone).  Only the route's template, the
 * key's name and the request id: never the path, the query, a header or
 * a body.
 */
static void
access_log(const struct conn *cx, unsigned status, uint64_t micros)
{
	const struct pv_log_field f[] = {
		PV_LOG_STR("request_id", cx != NULL ? cx->rid : "-"),
		PV_LOG_STR("method", cx != NULL && cx->method != NULL ?
		    cx->method : "-"),
		PV_LOG_STR("route", cx != NULL && cx->route_name != NULL ?
		    cx->route_name : "other"),
		PV_LOG_U64("status", status),
		PV_LOG_MS("duration_ms", micros),
		PV_LOG_U64("bytes", cx != NULL ? cx->bytes : 0),
		PV_LOG_STR("key", cx != NULL && cx->key[0] != '\0' ? cx->key :
		    "-"),
	};

	if (pv_log_on(PV_LOG_INFO))
		pv_log_event(PV_LOG_INFO, "request", f,
		    sizeof(f) / sizeof(f[0]));
}

/* The client waits for "100 Continue" before it sends the body. */
static int
expects_continue(struct MHD_Connection *c, const char *version)
{
	const char *e;

	e = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_EXPECT);
	return e != NULL && strcasecmp(e, "100-continue") == 0 &&
	    strcmp(version, MHD_HTTP_VERSION_1_0) != 0;
}

/* What the handlers need of c's request; rq is the caller's. */
static void
fill_req(struct MHD_Connection *c, const struct conn *cx, const char *method,
    struct api_req *rq)
{
	const struct tconn *t = tconn_of(c);

	memset(rq, 0, sizeof(*rq));
	rq->method = method;
	rq->path = t != NULL ? t->raw : "";
	rq->peer = t != NULL ? t->peer : "-";
	rq->arg = query_arg;
	rq->conn = c;
	rq->late = cx->late;
	rq->auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);
	rq->ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	rq->body = cx->body.p ? cx->body.p : "";
	rq->len = cx->body.len;
	rq->too_large = cx->too_large;
	rq->cert_sha256 = cx->has_cert ? cx->cert : NULL;
	rq->request_id = cx->rid;
}

/* Send rs as the answer to c's request, and release its body. */
static enum MHD_Result
answer(struct MHD_Connection *c, struct conn *cx, struct api_resp *rs)
{
	enum MHD_Result ok;

	/* A final newline, for people reading answers in a terminal. */
	if (rs->body.len > 0 && pv_buf_add(&rs->body, "\n", 1) != PV_OK)
		rs->status = 500;
	cx->status = rs->status;
	cx->bytes = rs->body.len;
	memcpy(cx->key, rs->key, sizeof(cx->key));
	ok = send_resp(c, rs, cx->rid);
	pv_buf_cleanup(&rs->body);
	return ok;
}

/*
 * The request's headers are in (the first call of on_request): refuse
 * an ambiguous framing, and answer "Expect: 100-continue" only once the
 * key and the size pass; an answer sent now leaves the body unread, and
 * libmicrohttpd closes the connection after it.
 */
static enum MHD_Result
begin(struct http *h, struct MHD_Connection *c, struct conn *cx,
    const char *method, const char *version)
{
	char id[API_ID_MAX + 1], msg[128], *end;
	const char *why, *cl;
	unsigned long long n;
	struct api_req rq;
	struct api_resp rs;
	struct pv_json j;

	fill_req(c, cx, method, &rq);
	cx->route = api_route_of(method, rq.path, id);
	cx->route_name = api_route_name(method, rq.path);
	memset(&rs, 0, sizeof(rs));
	pv_buf_init(&rs.body, (size_t)16 << 20);
	why = nul_hidden(c, method, version) ? "a NUL byte in the request "
	    "line or a header, or a folded header line" : framing_refusal(c);
	if (why != NULL) {
		atomic_fetch_add(&h->srv.framing_refused, 1);
		(void)snprintf(msg, sizeof(msg), "bad request: %s", why);
		rs.status = 400;
		rs.ctype = "application/json";
		rs.close = 1;
		pv_json_init(&j, &rs.body);
		api_json_error(&j, "bad_request", msg);
		if (pv_json_end(&j) != PV_OK)
			rs.status = 500;
		return answer(c, cx, &rs);
	}
	if (!expects_continue(c, version))
		return MHD_YES;
	/* libmicrohttpd checked that it is digits, and that there is one. */
	if ((cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH)) != NULL) {
		errno = 0;
		n = strtoull(cl, &end, 10);
		rq.too_large = errno != 0 || n > h->srv.limits.body_max;
	}
	rq.headers_only = 1;
	api_handle(&h->srv, &rq, &rs);
	if (rs.status == 100) {
		pv_buf_cleanup(&rs.body);
		return MHD_YES;
	}
	rs.close = 1;
	return answer(c, cx, &rs);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct conn *cx = *con_cls;
	struct api_req rq;
	struct api_resp rs;
	enum MHD_Result ok;

	(void)url;	/* decoded: the routes take the raw path (on_uri) */
	if (cx == NULL) {
		if ((cx = calloc(1, sizeof(*cx))) == NULL)
			return MHD_NO;
		/* No verified certificate, no answer: close the connection. */
		if (h->mtls && peer_cert(c, cx->cert) != PV_OK) {
			pv_log(PV_LOG_WARN, "http: connection without a "
			    "verified client certificate closed");
			free(cx);
			return MHD_NO;
		}
		cx->has_cert = h->mtls;
		cx->method = method_name(method);
		request_id(c, cx->rid);
		pv_buf_init(&cx->body, h->srv.limits.body_max);
		cx->start_us = pv_mono_us();
		cx->late = atomic_load(&h->srv.stopping);
		atomic_fetch_add(&h->inflight, 1);
		*con_cls = cx;
		return begin(h, c, cx, method, version);
	}
	if (*upload_size > 0) {
		/* Over the limit: keep reading, keep nothing, answer 413. */
		if (!cx->too_large && pv_buf_add(&cx->body, upload,
		    *upload_size) != PV_OK) {
			cx->too_large = 1;
			pv_buf_cleanup(&cx->body);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	deadline_set(h, c, 0);		/* all of it is in: no deadline */
	fill_req(c, cx, method, &rq);
	memset(&rs, 0, sizeof(rs));
	pv_buf_init(&rs.body, (size_t)16 << 20);
	api_handle(&h->srv, &rq, &rs);
	ok = answer(c, cx, &rs);
	pv_buf_cleanup(&cx->body);	/* the request is dead: wipe it */
	return ok;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct conn *cx = *con_cls;
	const union MHD_ConnectionInfo *si;
	const struct api_limits *l = &h->srv.limits;
	uint64_t us;
	unsigned st;

	/* The next request on this connection, if any, has this long. */
	deadline_set(h, c, l->idle_timeout + l->request_timeout);
	us = cx != NULL ? pv_mono_us() - cx->start_us : 0;
	if (cx == NULL || cx->status == 0) {
		/*
		 * Not answered by us: libmicrohttpd answered it itself (a
		 * malformed request, one too large for it), or it ended.
		 */
		if ((si = MHD_get_connection_info(c,
		    MHD_CONNECTION_INFO_HTTP_STATUS)) != NULL) {
			atomic_fetch_add(&h->srv.lib_errors, 1);
			api_observe(&h->srv, NULL, si->http_status, us);
			access_log(cx, si->http_status, us);
		} else if (cx != NULL) {
			api_observe(&h->srv, cx->route, 0, us);
			access_log(cx, 0, us);
		}
	} else {
		st = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? cx->status :
		    0;
		api_observe(&h->srv, cx->route, st, us);
		access_log(cx, st, us);
	}
	if (cx == NULL)
		return;
	pv_buf_cleanup(&cx->body);
	free(cx);
	*con_cls = NULL;
	atomic_fetch_sub(&h->inflight, 1);
}

static void on_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/*
 * libmicrohttpd's own messages.  Some quote what the client sent (a
 * request's URL, query included, in `...'): that part is dropped, so that
 * no reason, id or other text of a request reaches the log this way.
 */
static void
on_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256], out[256];
	size_t n, o = 0;
	int quoted = 0;

	(void)cls;
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	for (n = 0; msg[n] != '\0' && o < sizeof(out) - 4; n++) {
		if (!quoted && msg[n] == '`') {
			memcpy(out + o, "`-'", 3);
			o += 3;
			quoted = 1;
		} else if (quoted && msg[n] == '\'')
			quoted = 0;
		else if (!quoted)
			out[o++] = msg[n];
	}
	while (o > 0 && out[o - 1] == '\n')
		o--;
	out[o] = '\0';
	pv_log(PV_LOG_WARN, "http: %s", out);
}

/*
 * "127.0.0.1:7400", "[::1]:7400", "localhost:7400": PV_OK, or PV_EUSAGE
 * with *why saying what is wrong.
 */
static pv_status
parse_listen(const char *s, struct sockaddr_storage *ss, int *v6,
    int *loopback, const char **why)
{
	char host[64];
	const char *colon, *h = s, *end;
	unsigned long port;
	char *pend;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	*why = "expected ADDRESS:PORT, [IPV6]:PORT or localhost:PORT";
	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL || end[1] != ':')
			return PV_EUSAGE;
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return PV_EUSAGE;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host))
		return PV_EUSAGE;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &pend, 10);
	if (errno != 0 || *pend != '\0' || pend == colon + 1 ||
	    colon[1] < '0' || colon[1] > '9' || port > 65535) {
		*why = "the port is not a number from 0 to 65535";
		return PV_EUSAGE;
	}
	if (strcmp(host, "localhost") == 0)
		memcpy(host, "127.0.0.1", 10);
	*why = "not a numeric IPv4 address, [IPv6] address or localhost";
	if (*s == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return PV_EUSAGE;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*v6 = 1;
		*loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return PV_EUSAGE;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*v6 = 0;
		*loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	*why = NULL;
	return PV_OK;
}

/* "127.0.0.1:7400" or "[::1]:7400" for ss, port given apart. */
static void
addr_name(char *out, size_t cap, const struct sockaddr_storage *ss, int v6,
    unsigned port)
{
	char addr[INET6_ADDRSTRLEN];

	if (v6)
		(void)inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->
		    sin6_addr, addr, sizeof(addr));
	else
		(void)inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->
		    sin_addr, addr, sizeof(addr));
	(void)snprintf(out, cap, "%s%s%s:%u", v6 ? "[" : "", addr,
	    v6 ? "]" : "", port);
}

/*
 * The listening socket, made here rather than by libmicrohttpd so that
 * an address in use is told apart from other failures: PV_OK and *out,
 * PV_EBUSY (another socket listens there: logged, naming it), PV_EUSAGE
 * (not an address of this machine) or PV_EIO.  SO_REUSEADDR lets a
 * restarted server bind over its predecessor's TIME_WAIT connections; on
 * Linux it never lets a second socket listen where one listens.
 * SO_REUSEPORT, which would (and share the traffic), is never set.
 */
static pv_status
listen_open(const struct sockaddr_storage *ss, int v6, const char *name,
    int *out)
{
	socklen_t len = v6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	int fd, one = 1, e;
	pv_status rc;

	if ((fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC,
	    0)) < 0) {
		pv_log(PV_LOG_ERROR, "serve: socket: %s", strerror(errno));
		return PV_EIO;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
	    sizeof(one)) != 0)) {
		pv_log(PV_LOG_ERROR, "serve: setsockopt: %s", strerror(errno));
		rc = PV_EIO;
		goto out;
	}
	if (bind(fd, (const struct sockaddr *)ss, len) != 0) {
		e = errno;
		if (e == EADDRINUSE) {
			pv_log(PV_LOG_ERROR, "serve: %s is already in use",
			    name);
			rc = PV_EBUSY;
		} else {
			pv_log(PV_LOG_ERROR, "serve: cannot listen on %s: %s",
			    name, strerror(e));
			rc = e == EADDRNOTAVAIL ? PV_EUSAGE : PV_EIO;
		}
		goto out;
	}
	if (listen(fd, LISTEN_BACKLOG) != 0) {
		e = errno;
		pv_log(PV_LOG_ERROR, "serve: listen %s: %s", name,
		    strerror(e));
		rc = e == EADDRINUSE ? PV_EBUSY : PV_EIO;
		goto out;
	}
	*out = fd;
	fd = -1;
	rc = PV_OK;
out:
	if (fd >= 0)
		(void)close(fd);
	return rc;
}

/*
 * What MHD would only find out inside MHD_start_daemon, with a message
 * of its own: a priority string GnuTLS does not take, a CA file with no
 * certificate in it.  PV_OK, or PV_EUSAGE (logged, saying which).
 */
static pv_status
tls_check(const char *prio, const char *ca)
{
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t pc;
	const char *at = NULL;
	gnutls_datum_t d;
	int n;

	if (gnutls_priority_init(&pc, prio, &at) != GNUTLS_E_SUCCESS) {
		pv_log(PV_LOG_ERROR, "serve: --tls-priorities: GnuTLS does "
		    "not take \"%.60s\"", at != NULL ? at : prio);
		return PV_EUSAGE;
	}
	gnutls_priority_deinit(pc);
	if (ca == NULL)
		return PV_OK;
	if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS)
		return PV_ENOMEM;
	d.data = (unsigned char *)(uintptr_t)ca;
	d.size = (unsigned int)strlen(ca);
	n = gnutls_certificate_set_x509_trust_mem(cred, &d, GNUTLS_X509_FMT_PEM);
	gnutls_certificate_free_credentials(cred);
	if (n <= 0) {
		pv_log(PV_LOG_ERROR, "serve: --tls-client-ca: no PEM CA "
		    "certificate in the file");
		return PV_EUSAGE;
	}
	return PV_OK;
}

static pv_status
read_small(const char *path, char **out)
{
	char *buf;
	ssize_t n;
	size_t len = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return PV_EIO;
	if ((buf = malloc(TLS_FILE_MAX + 1)) == NULL) {
		(void)close(fd);
		return PV_ENOMEM;
	}
	while ((n = read(fd, buf + len, TLS_FILE_MAX - len)) > 0)
		len += (size_t)n;
	(void)close(fd);
	if (n < 0 || len == 0 || len == TLS_FILE_MAX) {
		pv_cleanse(buf, TLS_FILE_MAX);
		free(buf);
		return PV_EIO;
	}
	buf[len] = '\0';
	*out = buf;
	return PV_OK;
}

static void
limits_default(struct api_limits *l)
{
	if (l->body_max == 0)
		l->body_max = API_BODY_MAX;
	if (l->fields_max == 0 || l->fields_max > PV_FIELDS_MAX)
		l->fields_max = PV_FIELDS_MAX;
	if (l->value_max == 0 || l->value_max > PV_VALUE_MAX)
		l->value_max = PV_VALUE_MAX;
	if (l->batch_max == 0 || l->batch_max > VAULT_BATCH_MAX)
		l->batch_max = VAULT_BATCH_MAX;
	if (l->connections == 0)
		l->connections = API_CONNECTIONS_DEFAULT;
	if (l->idle_timeout == 0)
		l->idle_timeout = API_IDLE_DEFAULT;
	if (l->threads == 0)
		l->threads = API_THREADS_DEFAULT;
	if (l->large == 0)
		l->large = API_LARGE_DEFAULT;
	if (l->request_timeout == 0)
		l->request_timeout = API_REQUEST_TIMEOUT_DEFAULT;
	/* per_address 0 is "no limit": the CLI sets its default itself. */
}

const char *
api_http_version(void)
{
	return MHD_get_version();
}

pv_status
api_serve(struct vault *v, const struct api_serve_opts *o)
{
	struct sockaddr_storage ss;
	struct MHD_Daemon *d = NULL;
	const union MHD_DaemonInfo *info;
	struct MHD_OptionItem tlsopt[5];
	struct http *h = NULL;
	int gate = 0, locked = 0, reaping = 0;
	pthread_t reap;
	char *cert = NULL, *key = NULL, *ca = NULL, url[96], name[64];
	const char *where = o->listen ? o->listen : API_LISTEN_DEFAULT;
	const char *prio = o->tls_priorities ? o->tls_priorities :
	    API_TLS_PRIORITIES_DEFAULT;
	const char *why;
	unsigned flags;
	size_t nt = 0;
	sigset_t sigs;
	pv_status rc;
	int v6, loopback, sig, tls, lfd = -1;
	MHD_socket qfd;

	if ((rc = parse_listen(where, &ss, &v6, &loopback, &why)) != PV_OK) {
		pv_log(PV_LOG_ERROR, "serve: --listen %.80s: %s", where, why);
		return rc;
	}
	tls = o->tls_cert != NULL || o->tls_key != NULL;
	if (tls && (o->tls_cert == NULL || o->tls_key == NULL)) {
		pv_log(PV_LOG_ERROR, "serve: --tls-cert and --tls-key go "
		    "together");
		return PV_EUSAGE;
	}
	if (!tls && (o->tls_priorities != NULL || o->tls_client_ca != NULL)) {
		pv_log(PV_LOG_ERROR, "serve: --tls-priorities and "
		    "--tls-client-ca need --tls-cert and --tls-key");
		return PV_EUSAGE;
	}
	if (!loopback && !tls && !o->insecure_plaintext) {
		pv_log(PV_LOG_ERROR, "refusing plain HTTP off loopback: give "
		    "--tls-cert and --tls-key, or --insecure-plaintext");
		return PV_EUSAGE;
	}
	if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return PV_EINVAL;
	if (tls && (rc = read_small(o->tls_cert, &cert)) != PV_OK) {
		pv_log(PV_LOG_ERROR, "serve: cannot read --tls-cert");
		goto out;
	}
	if (tls && (rc = read_small(o->tls_key, &key)) != PV_OK) {
		pv_log(PV_LOG_ERROR, "serve: cannot read --tls-key");
		goto out;
	}
	if (o->tls_client_ca != NULL && (rc = read_small(o->tls_client_ca,
	    &ca)) != PV_OK) {
		pv_log(PV_LOG_ERROR, "serve: cannot read --tls-client-ca");
		goto out;
	}
	if (tls && (rc = tls_check(prio, ca)) != PV_OK)
		goto out;
	if (o->check_only)
		goto out;		/* rc is PV_OK */
	/*
	 * The TLS options, in an array that is empty for plain HTTP: the key
	 * pair, the priorities (protocols, suites, the server's order), and
	 * the CA that client certificates must come from.
	 */
	if (tls) {
		tlsopt[nt++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY,
		    0, key };
		tlsopt[nt++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_MEM_CERT, 0, cert };
		tlsopt[nt++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)prio };
		if (ca != NULL)
			tlsopt[nt++] = (struct MHD_OptionItem){
			    MHD_OPTION_HTTPS_MEM_TRUST, 0, ca };
	}
	tlsopt[nt] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	addr_name(name, sizeof(name), &ss, v6, ntohs(v6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port));
	if ((rc = listen_open(&ss, v6, name, &lfd)) != PV_OK)
		goto out;
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	h->srv.vault = v;
	h->srv.limits = o->limits;
	h->mtls = ca != NULL;
	limits_default(&h->srv.limits);
	if (sem_init(&h->srv.large, 0, h->srv.limits.large) != 0) {
		pv_log(PV_LOG_ERROR, "serve: semaphore: %s", strerror(errno));
		rc = PV_EIO;
		goto out;
	}
	gate = 1;
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		rc = PV_EIO;
		goto out;
	}
	locked = 1;
	if (pthread_create(&reap, NULL, reaper, h) != 0) {
		pv_log(PV_LOG_ERROR, "serve: cannot start the reaper thread");
		rc = PV_EIO;
		goto out;
	}
	reaping = 1;

	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
	    MHD_USE_ERROR_LOG | MHD_USE_AUTO | (v6 ? MHD_USE_IPv6 : 0) |
	    (tls ? MHD_USE_TLS : 0);
	/* The logger first (MHD wants it so); the TLS options last. */
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
	    MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)lfd,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
	    MHD_OPTION_THREAD_POOL_SIZE, h->srv.limits.threads,
	    MHD_OPTION_CONNECTION_LIMIT, h->srv.limits.connections + CONN_SLACK,
	    MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
	    MHD_OPTION_CONNECTION_TIMEOUT, h->srv.limits.idle_timeout,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	    /*
	     * libmicrohttpd zeroes a connection's memory pool for every
	     * request; our requests' headers are small and bodies are read
	     * into our own buffer, so a smaller pool is that much less work.
	     */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_POOL,
	    MHD_OPTION_ARRAY, tlsopt,
	    MHD_OPTION_END);
	/*
	 * The listening socket is MHD's now, to close.  (If it failed to
	 * start, MHD may or may not have closed it: it is left, not closed
	 * twice; the process is about to exit.)
	 */
	lfd = -1;
	if (d == NULL) {
		rc = PV_EIO;
		goto out;
	}
	if ((info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)) ==
	    NULL) {
		rc = PV_EIO;
		goto out;
	}
	addr_name(name, sizeof(name), &ss, v6, info->port);
	(void)snprintf(url, sizeof(url), "%s://%s", tls ? "https" : "http",
	    name);
	pv_log_event(PV_LOG_INFO, "listening", (const struct pv_log_field[]){
	    PV_LOG_STR("url", url) }, 1);
	if (o->ready != NULL)
		o->ready(o->arg, url);

	/* Run until told to stop. */
	if (sigemptyset(&sigs) != 0 || sigaddset(&sigs, SIGINT) != 0 ||
	    sigaddset(&sigs, SIGTERM) != 0 || sigwait(&sigs, &sig) != 0) {
		rc = PV_EIO;
		goto out;
	}
	pv_log_event(PV_LOG_INFO, "stopping: draining requests in flight",
	    (const struct pv_log_field[]){ PV_LOG_U64("signal",
	    (uint64_t)sig) }, 1);
	if (o->stopping != NULL)
		o->stopping(o->arg);
	atomic_store(&h->srv.stopping, 1);
	/* New connections are refused from here: the socket is ours. */
	if ((qfd = MHD_quiesce_daemon(d)) != MHD_INVALID_SOCKET)
		(void)close(qfd);
	for (int i = 0; i < DRAIN_SECONDS * 100 &&
	    atomic_load(&h->inflight) > 0; i++)
		(void)usleep(10000);
	/* Refusals counted but not yet summarised go to the audit log. */
	api_rate_flush(&h->srv, 0);
	rc = PV_OK;
out:
	if (reaping) {
		atomic_store(&h->reaper_stop, 1);
		(void)pthread_join(reap, NULL);
	}
	if (d != NULL)
		MHD_stop_daemon(d);
	if (locked)
		(void)pthread_mutex_destroy(&h->lock);
	if (gate)
		(void)sem_destroy(&h->srv.large);
	free(h);
	if (key != NULL) {
		pv_cleanse(key, strlen(key));
		free(key);
	}
	free(cert);
	free(ca);
	if (lfd >= 0)
		(void)close(lfd);
	return rc;
}
