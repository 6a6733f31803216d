/*
 * http.c: the HTTP adapter, and the only file that includes
 * libmicrohttpd.  It collects a request (headers, a body bounded by
 * body_max), hands it to api_handle, and sends what comes back.  MHD_YES
 * and MHD_NO end here.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api_int.h"

#define DRAIN_SECONDS		10
#define TLS_FILE_MAX		(64u << 10)
#define CONN_POOL		(8u << 10)	/* per connection, bytes */

struct http {
	struct api_server	 srv;
	atomic_int		 inflight;
};

/* One request's state, from its first callback to its completion. */
struct conn {
	struct pv_buf	 body;
	int		 too_large;
	int		 late;		/* arrived after shutdown began */
	uint64_t	 start_us;
	const struct api_route *route;	/* NULL: no such route */
	unsigned	 status;
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
send_resp(struct MHD_Connection *c, struct api_resp *rs)
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
	    "no-store") != MHD_YES ||
	    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") !=
	    MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	if (rs->allow != NULL && MHD_add_response_header(r,
	    MHD_HTTP_HEADER_ALLOW, rs->allow) != MHD_YES) {
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

static const char *
query_arg(const struct api_req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND,
	    name);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct conn *cx = *con_cls;
	char id[API_ID_MAX + 1];
	struct api_req rq;
	struct api_resp rs;
	enum MHD_Result ok;

	(void)version;
	if (cx == NULL) {
		if ((cx = calloc(1, sizeof(*cx))) == NULL)
			return MHD_NO;
		pv_buf_init(&cx->body, h->srv.limits.body_max);
		cx->start_us = pv_mono_us();
		cx->route = api_route_of(method, url, id);
		cx->late = atomic_load(&h->srv.stopping);
		atomic_fetch_add(&h->inflight, 1);
		*con_cls = cx;
		return MHD_YES;
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
	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.path = url;
	rq.arg = query_arg;
	rq.conn = c;
	rq.late = cx->late;
	rq.auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);
	rq.ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	rq.body = cx->body.p ? cx->body.p : "";
	rq.len = cx->body.len;
	rq.too_large = cx->too_large;
	pv_buf_init(&rs.body, (size_t)16 << 20);
	api_handle(&h->srv, &rq, &rs);
	/* A final newline, for people reading answers in a terminal. */
	if (rs.body.len > 0 && pv_buf_add(&rs.body, "\n", 1) != PV_OK)
		rs.status = 500;
	cx->status = rs.status;
	ok = send_resp(c, &rs);
	pv_buf_cleanup(&rs.body);
	pv_buf_cleanup(&cx->body);	/* the request is dead: wipe it */
	return ok;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct conn *cx = *con_cls;

	(void)c;
	if (cx == NULL)
		return;
	api_observe(&h->srv, cx->route, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK
	    ? cx->status : 0, pv_mono_us() - cx->start_us);
	pv_buf_cleanup(&cx->body);
	free(cx);
	*con_cls = NULL;
	atomic_fetch_sub(&h->inflight, 1);
}

static void on_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
on_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t n;

	(void)cls;
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	pv_log(PV_LOG_WARN, "http: %s", msg);
}

/* "127.0.0.1:7400", "[::1]:7400", "localhost:7400". */
static pv_status
parse_listen(const char *s, struct sockaddr_storage *ss, int *v6,
    int *loopback)
{
	char host[64];
	const char *colon, *h = s, *end;
	unsigned long port;
	char *pend;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
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
	if (errno != 0 || *pend != '\0' || pend == colon + 1 || port > 65535)
		return PV_EUSAGE;
	if (strcmp(host, "localhost") == 0)
		memcpy(host, "127.0.0.1", 10);
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
}

pv_status
api_serve(struct vault *v, const struct api_serve_opts *o)
{
	struct sockaddr_storage ss;
	struct MHD_Daemon *d = NULL;
	const union MHD_DaemonInfo *info;
	struct http *h = NULL;
	int gate = 0;
	char *cert = NULL, *key = NULL, url[96], addr[64];
	unsigned flags;
	sigset_t sigs;
	pv_status rc;
	int v6, loopback, sig, tls;

	if ((rc = parse_listen(o->listen ? o->listen : API_LISTEN_DEFAULT, &ss,
	    &v6, &loopback)) != PV_OK)
		return rc;
	tls = o->tls_cert != NULL || o->tls_key != NULL;
	if (tls && (o->tls_cert == NULL || o->tls_key == NULL))
		return PV_EUSAGE;
	if (!loopback && !tls && !o->insecure_plaintext) {
		pv_log(PV_LOG_ERROR, "refusing plain HTTP off loopback: give "
		    "--tls-cert and --tls-key, or --insecure-plaintext");
		return PV_EUSAGE;
	}
	if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return PV_EINVAL;
	if (tls && ((rc = read_small(o->tls_cert, &cert)) != PV_OK ||
	    (rc = read_small(o->tls_key, &key)) != PV_OK))
		goto out;
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	h->srv.vault = v;
	h->srv.limits = o->limits;
	h->srv.request_limit = 1;	/* a person's requests, per window */
	limits_default(&h->srv.limits);
	if (sem_init(&h->srv.large, 0, h->srv.limits.large) != 0) {
		pv_log(PV_LOG_ERROR, "serve: semaphore: %s", strerror(errno));
		rc = PV_EIO;
		goto out;
	}
	gate = 1;

	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
	    MHD_USE_ERROR_LOG | MHD_USE_AUTO | (v6 ? MHD_USE_IPv6 : 0) |
	    (tls ? MHD_USE_TLS : 0);
	/*
	 * The logger first (MHD wants it so); the TLS pair last, where an
	 * MHD_OPTION_END in its place ends the list for plain HTTP.
	 */
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
	    MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE, h->srv.limits.threads,
	    MHD_OPTION_CONNECTION_LIMIT, h->srv.limits.connections,
	    MHD_OPTION_CONNECTION_TIMEOUT, h->srv.limits.idle_timeout,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	    /*
	     * libmicrohttpd zeroes a connection's memory pool for every
	     * request; our requests' headers are small and bodies are read
	     * into our own buffer, so a smaller pool is that much less work.
	     */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_POOL,
	    MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
	    tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, key,
	    MHD_OPTION_HTTPS_MEM_CERT, cert,
	    MHD_OPTION_END);
	if (d == NULL) {
		rc = PV_EIO;
		goto out;
	}
	if ((info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)) ==
	    NULL) {
		rc = PV_EIO;
		goto out;
	}
	if (v6)
		(void)inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->
		    sin6_addr, addr, sizeof(addr));
	else
		(void)inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->
		    sin_addr, addr, sizeof(addr));
	(void)snprintf(url, sizeof(url), "%s://%s%s%s:%u", tls ? "https" :
	    "http", v6 ? "[" : "", addr, v6 ? "]" : "", info->port);
	if (o->ready != NULL)
		o->ready(o->arg, url);

	/* Run until told to stop. */
	if (sigemptyset(&sigs) != 0 || sigaddset(&sigs, SIGINT) != 0 ||
	    sigaddset(&sigs, SIGTERM) != 0 || sigwait(&sigs, &sig) != 0) {
		rc = PV_EIO;
		goto out;
	}
	pv_log(PV_LOG_INFO, "signal %d: draining requests in flight", sig);
	atomic_store(&h->srv.stopping, 1);
	(void)MHD_quiesce_daemon(d);
	for (int i = 0; i < DRAIN_SECONDS * 100 &&
	    atomic_load(&h->inflight) > 0; i++)
		(void)usleep(10000);
	rc = PV_OK;
out:
	if (d != NULL)
		MHD_stop_daemon(d);
	if (gate)
		(void)sem_destroy(&h->srv.large);
	free(h);
	if (key != NULL) {
		pv_cleanse(key, strlen(key));
		free(key);
	}
	free(cert);
	return rc;
}
