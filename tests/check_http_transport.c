/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_http_transport.c: the HTTP transport under hostile clients, over
 * raw sockets to the real server: routes matched on the raw path (an
 * encoded '/', a NUL, any byte outside an id), ambiguous framing and
 * hidden NULs refused with 400 and the connection closed, "Expect:
 * 100-continue" answered only once the key passes, pipelined requests
 * all answered, the request deadline, connections over the limits closed
 * rather than queued, and a well-behaved client served while one
 * address holds 400 slowloris and 300 idle connections.
 *
 * The fixture (a vault, its API keys and a server a test) is httputil.c.
 * Sockets go to 127.0.0.1 only, from 127.0.0.1 or 127.0.0.2; every loop
 * is bounded in count and time, and times are printed, never asserted
 * (a "within N seconds" is a generous liveness bound).
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pv.h"
#include "api.h"
#include "httputil.h"
#include "srvutil.h"
#include "testutil.h"

#define SLOW_CONNS	400
#define IDLE_CONNS	300
#define ATTACK_SECS	16	/* how long the well-behaved client runs */
#define LIVE_MS		5000	/* an answer must come within this */
#define SAMPLES		20000

static unsigned
srv_port(void)
{
	unsigned port = 0;

	ck_assert_int_eq(sscanf(su_srv.base, "http://127.0.0.1:%u", &port), 1);
	return port;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * A connection to the server from src (a loopback address), or -1; a
 * connect that would wait more than a second fails.  Asserts nothing.
 */
static int
conn_from(const char *src, unsigned port)
{
	struct sockaddr_in a, b;
	struct timeval tv = { 1, 0 };
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&b, 0, sizeof(b));
	b.sin_family = AF_INET;
	if (inet_pton(AF_INET, src, &b.sin_addr) != 1 ||
	    bind(fd, (struct sockaddr *)&b, sizeof(b)) != 0) {
		(void)close(fd);
		return -1;
	}
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		(void)close(fd);
		return -1;
	}
	return fd;
}

static void
send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		w = send(fd, c, n, MSG_NOSIGNAL);
		ck_assert_msg(w > 0, "send: %s", strerror(errno));
		c += w;
		n -= (size_t)w;
	}
}

/*
 * Read from fd into buf (cap bytes, NUL-terminated) until the peer
 * closes, want answers ("HTTP/1.x NNN" at a line's start, 1xx not
 * counted when want > 0) have come, or ms pass.  *closed says whether
 * the peer closed (end of file or reset).  The bytes read.
 */
static size_t
read_for(int fd, char *buf, size_t cap, int want, int ms, int *closed)
{
	uint64_t until = now_ms() + (uint64_t)ms;
	struct pollfd p = { fd, POLLIN, 0 };
	size_t n = 0;
	ssize_t r;
	int got;

	*closed = 0;
	buf[0] = '\0';
	while (n + 1 < cap) {
		uint64_t t = now_ms();
		int left = t >= until ? 0 : (int)(until - t);

		/* Polled at least once, so that ms 0 looks without waiting. */
		if (poll(&p, 1, left) <= 0) {
			if (left == 0)
				break;
			continue;
		}
		if ((r = recv(fd, buf + n, cap - 1 - n, 0)) <= 0) {
			*closed = 1;
			break;
		}
		n += (size_t)r;
		buf[n] = '\0';
		got = 0;
		for (const char *s = buf; s != NULL; s = strchr(s, '\n')) {
			if (*s == '\n')
				s++;
			if (strncmp(s, "HTTP/1.", 7) == 0 && s[9] != '1')
				got++;
		}
		if (want > 0 && got >= want)
			break;
	}
	return n;
}

/* The final answers in buf ("HTTP/1.x NNN", not 1xx). */
static int
answers(const char *buf)
{
	int got = 0;

	for (const char *s = buf; s != NULL; s = strchr(s, '\n')) {
		if (*s == '\n')
			s++;
		if (strncmp(s, "HTTP/1.", 7) == 0 && s[9] != '1')
			got++;
	}
	return got;
}

/* fd is closed by the server within ms. */
static int
closed_within(int fd, int ms)
{
	char buf[4096];
	int closed;

	(void)read_for(fd, buf, sizeof(buf), 0, ms, &closed);
	return closed;
}

/* Restart the server with extra (NULL-terminated). */
static void
restart(const char *const *extra)
{
	su_srv_stop();
	su_srv_start_local(NULL, extra, NULL);
}

static char *
auth_header(int key)
{
	static char h[KEY_BUF + 32];

	(void)snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", keys[key]);
	return h;
}

/*
 * Send raw (len bytes) on a new connection: want answers must come, the
 * first with status st, and then the server must close it; no further
 * answer may follow.  The answers go to out.
 */
static void
expect_refused(const char *what, const char *raw, size_t len, const char *st,
    char *out, size_t cap)
{
	int fd = conn_from("127.0.0.1", srv_port()), closed;

	ck_assert_int_ge(fd, 0);
	send_all(fd, raw, len);
	(void)read_for(fd, out, cap, 0, LIVE_MS, &closed);
	ck_assert_msg(strncmp(out, "HTTP/1.1 ", 9) == 0 &&
	    strncmp(out + 9, st, 3) == 0, "%s: answered [%.200s], want %s",
	    what, out, st);
	ck_assert_msg(answers(out) == 1, "%s: %d answers (a request smuggled "
	    "through): [%.600s]", what, answers(out), out);
	ck_assert_msg(closed, "%s: the connection was left open", what);
	(void)close(fd);
}

/* Routes are matched on the raw path: %00, %2F and the like are none. */
START_TEST(test_raw_paths)
{
	static const struct su_fv f[] = { { "email", "zq-raw-4410@x.example" } };
	char path[256];
	struct su_resp r;
	struct rec rec;
	long long before;

	put(f, 1, 1, 0, &rec);
	before = stored();

	(void)snprintf(path, sizeof(path), "/v1/records/%s%%00.json", rec.id);
	req(&r, "DELETE", path, K_ADMIN, NULL, NULL);
	ck_assert_msg(r.status == 400 || r.status == 404, "DELETE %%00: %ld",
	    r.status);
	su_resp_free(&r);
	ck_assert_int_eq(stored(), before);

	(void)snprintf(path, sizeof(path), "/v1/records/%s%%2Fconsent",
	    rec.id);
	req(&r, "PUT", path, K_ADMIN, NULL, "{\"marketing\":false}");
	ck_assert_msg(r.status == 400 || r.status == 404, "PUT %%2F: %ld",
	    r.status);
	su_resp_free(&r);

	(void)snprintf(path, sizeof(path), "/v1/records/%s%%2F", rec.id);
	req(&r, "DELETE", path, K_ADMIN, NULL, NULL);
	ck_assert_msg(r.status == 400 || r.status == 404, "DELETE %%2F: %ld",
	    r.status);
	su_resp_free(&r);
	ck_assert_int_eq(stored(), before);

	req(&r, "GET", "/v1/health%00junk", K_NONE, NULL, NULL);
	ck_assert_msg(r.status == 400 || r.status == 404, "health%%00: %ld",
	    r.status);
	su_resp_free(&r);
	req(&r, "GET", "/v1/h%65alth", K_NONE, NULL, NULL);
	ck_assert_msg(r.status == 400 || r.status == 404, "h%%65alth: %ld",
	    r.status);
	su_resp_free(&r);

	/* The record is whole, and the plain paths still work. */
	req(&r, "GET", "/v1/health", K_NONE, NULL, NULL);
	assert_status(&r, 200);
	su_resp_free(&r);
	(void)snprintf(path, sizeof(path), "/v1/records/%s/consent", rec.id);
	req(&r, "PUT", path, K_ADMIN, NULL, "{\"marketing\":false}");
	assert_status(&r, 200);
	su_resp_free(&r);
}
END_TEST

/* A literal NUL in the request line or a header value: 400, closed. */
START_TEST(test_framing_nul)
{
	static const char line[] = "GET /v1/health\0.json HTTP/1.1\r\n"
	    "Host: x\r\n\r\n"
	    "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char hdr[] = "GET /v1/health HTTP/1.1\r\n"
	    "Host: x\r\nX-Note: a\0b\r\n\r\n"
	    "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char clen[] = "POST /v1/lookup HTTP/1.1\r\n"
	    "Host: x\r\nContent-Type: application/json\r\n"
	    "Content-Length: 2\0 00\r\n\r\n{}"
	    "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n";
	char out[8192];

	expect_refused("NUL in the path", line, sizeof(line) - 1, "400", out,
	    sizeof(out));
	expect_refused("NUL in a header", hdr, sizeof(hdr) - 1, "400", out,
	    sizeof(out));
	expect_refused("NUL in Content-Length", clen, sizeof(clen) - 1, "400",
	    out, sizeof(out));
}
END_TEST

/* Content-Length with Transfer-Encoding, or two of them: 400, closed. */
START_TEST(test_framing_smuggle)
{
	char raw[2048], out[8192], *metrics_text;
	int n;

	/* CL.TE: the chunked body ends early; the rest is a request. */
	n = snprintf(raw, sizeof(raw), "POST /v1/records HTTP/1.1\r\n"
	    "Host: x\r\n%sContent-Type: application/json\r\n"
	    "Content-Length: 70\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
	    auth_header(K_WRITER));
	expect_refused("Content-Length and Transfer-Encoding", raw, (size_t)n,
	    "400", out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "bad_request"));

	/* Two different lengths. */
	n = snprintf(raw, sizeof(raw), "POST /v1/lookup HTTP/1.1\r\n"
	    "Host: x\r\n%sContent-Type: application/json\r\n"
	    "Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}"
	    "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
	    auth_header(K_WRITER));
	expect_refused("two Content-Length", raw, (size_t)n, "400", out,
	    sizeof(out));

	/* A Transfer-Encoding other than chunked. */
	n = snprintf(raw, sizeof(raw), "POST /v1/lookup HTTP/1.1\r\n"
	    "Host: x\r\n%sContent-Type: application/json\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n"
	    "2\r\n{}\r\n0\r\n\r\n", auth_header(K_WRITER));
	expect_refused("Transfer-Encoding gzip", raw, (size_t)n, "400", out,
	    sizeof(out));

	metrics_text = metrics_until(
	    "piivault_http_closed_total{reason=\"framing\"}", 3);
	free(metrics_text);
}
END_TEST

/* 100 Continue only once the key and the size pass. */
START_TEST(test_expect_continue)
{
	char raw[2048], out[8192];
	const char *body = GOOD_REC;
	int fd, n, closed;

	/* A bad key: 401 at once, no 100, the body never read. */
	n = snprintf(raw, sizeof(raw), "POST /v1/records HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer pvk_bad\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Expect: 100-continue\r\n\r\n", strlen(body));
	fd = conn_from("127.0.0.1", srv_port());
	ck_assert_int_ge(fd, 0);
	send_all(fd, raw, (size_t)n);
	(void)read_for(fd, out, sizeof(out), 1, LIVE_MS, &closed);
	ck_assert_msg(strncmp(out, "HTTP/1.1 401", 12) == 0,
	    "bad key with Expect: [%.300s]", out);
	ck_assert_ptr_null(strstr(out, " 100 "));
	(void)close(fd);

	/* Too large by its Content-Length: 413 at once, no 100. */
	n = snprintf(raw, sizeof(raw), "POST /v1/records HTTP/1.1\r\n"
	    "Host: x\r\n%sContent-Type: application/json\r\n"
	    "Content-Length: 999999999\r\nExpect: 100-continue\r\n\r\n",
	    auth_header(K_WRITER));
	fd = conn_from("127.0.0.1", srv_port());
	ck_assert_int_ge(fd, 0);
	send_all(fd, raw, (size_t)n);
	(void)read_for(fd, out, sizeof(out), 1, LIVE_MS, &closed);
	ck_assert_msg(strncmp(out, "HTTP/1.1 413", 12) == 0,
	    "too large with Expect: [%.300s]", out);
	ck_assert_ptr_null(strstr(out, " 100 "));
	(void)close(fd);

	/* The right key: 100, then the body, then 201. */
	n = snprintf(raw, sizeof(raw), "POST /v1/records HTTP/1.1\r\n"
	    "Host: x\r\n%sContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nExpect: 100-continue\r\n\r\n",
	    auth_header(K_WRITER), strlen(body));
	fd = conn_from("127.0.0.1", srv_port());
	ck_assert_int_ge(fd, 0);
	send_all(fd, raw, (size_t)n);
	(void)read_for(fd, out, sizeof(out), 0, 1000, &closed);
	ck_assert_msg(strncmp(out, "HTTP/1.1 100", 12) == 0,
	    "good key with Expect: [%.300s]", out);
	send_all(fd, body, strlen(body));
	(void)read_for(fd, out, sizeof(out), 1, LIVE_MS, &closed);
	ck_assert_msg(strncmp(out, "HTTP/1.1 201", 12) == 0,
	    "after the body: [%.300s]", out);
	(void)close(fd);
}
END_TEST

/* Two and three pipelined requests, with and without bodies. */
START_TEST(test_pipelining)
{
	char raw[8192], out[16384];
	const char *body = GOOD_REC;
	int fd, n, closed;

	for (int count = 2; count <= 3; count++)
		for (int bodies = 0; bodies <= 1; bodies++) {
			n = 0;
			for (int i = 0; i < count; i++) {
				if (bodies && i != 1)
					n += snprintf(raw + n, sizeof(raw) -
					    (size_t)n, "POST /v1/records "
					    "HTTP/1.1\r\nHost: x\r\n%s"
					    "Content-Type: application/json"
					    "\r\nContent-Length: %zu\r\n\r\n%s",
					    auth_header(K_WRITER), strlen(body),
					    body);
				else
					n += snprintf(raw + n, sizeof(raw) -
					    (size_t)n, "GET /v1/health "
					    "HTTP/1.1\r\nHost: x\r\n\r\n");
			}
			fd = conn_from("127.0.0.1", srv_port());
			ck_assert_int_ge(fd, 0);
			send_all(fd, raw, (size_t)n);
			(void)read_for(fd, out, sizeof(out), count, LIVE_MS,
			    &closed);
			ck_assert_msg(answers(out) == count || closed,
			    "%d pipelined (bodies %d): %d answers in %d ms, "
			    "connection open: [%.800s]", count, bodies,
			    answers(out), LIVE_MS, out);
			ck_assert_msg(answers(out) == count, "%d pipelined "
			    "(bodies %d): %d answers: [%.800s]", count,
			    bodies, answers(out), out);
			(void)close(fd);
		}
}
END_TEST

/* Slow and idle connections are closed at the request deadline. */
START_TEST(test_request_deadline)
{
	static const char *const extra[] = { "--request-timeout", "2",
	    "--max-per-address", "0", NULL };
	enum { N = 10 };
	int slow[N], idle[N], open_slow = N, open_idle = N;
	uint64_t start, until;
	char *m;

	restart(extra);
	for (int i = 0; i < N; i++) {
		slow[i] = conn_from("127.0.0.1", srv_port());
		idle[i] = conn_from("127.0.0.1", srv_port());
		ck_assert_int_ge(slow[i], 0);
		ck_assert_int_ge(idle[i], 0);
		send_all(slow[i], "GET /v1/health HTTP/1.1\r\n", 25);
	}
	/* One header line every 300 ms, for at most 10 s. */
	start = now_ms();
	until = start + 10000;
	while ((open_slow > 0 || open_idle > 0) && now_ms() < until) {
		for (int i = 0; i < N; i++) {
			if (slow[i] >= 0 && (send(slow[i], "X-A: b\r\n", 8,
			    MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ||
			    closed_within(slow[i], 0))) {
				(void)close(slow[i]);
				slow[i] = -1;
				open_slow--;
			}
			if (idle[i] >= 0 && closed_within(idle[i], 0)) {
				(void)close(idle[i]);
				idle[i] = -1;
				open_idle--;
			}
		}
		(void)usleep(300000);
	}
	printf("request deadline 2 s: slow and idle connections closed "
	    "after %llu ms\n", (unsigned long long)(now_ms() - start));
	ck_assert_msg(open_slow == 0 && open_idle == 0, "after 10 s, %d slow "
	    "and %d idle connections still open", open_slow, open_idle);
	m = metrics_until("piivault_http_closed_total{reason=\"timeout\"}",
	    2 * N);
	free(m);
}
END_TEST

/* Over the limits, connections are closed, not left in the backlog. */
START_TEST(test_limits_close)
{
	static const char *const total[] = { "--max-connections", "8",
	    "--max-per-address", "0", NULL };
	static const char *const per[] = { "--max-per-address", "4", NULL };
	int fd[9], extra, ok;
	char out[4096];
	char *m;

	restart(total);
	for (int i = 0; i < 8; i++) {
		fd[i] = conn_from("127.0.0.1", srv_port());
		ck_assert_int_ge(fd[i], 0);
	}
	(void)usleep(200000);
	extra = conn_from("127.0.0.1", srv_port());
	ck_assert_msg(extra < 0 || closed_within(extra, 3000),
	    "the 9th connection of 8 was not closed");
	if (extra >= 0)
		(void)close(extra);
	for (int i = 0; i < 8; i++)
		(void)close(fd[i]);

	restart(per);
	for (int i = 0; i < 4; i++) {
		fd[i] = conn_from("127.0.0.2", srv_port());
		ck_assert_int_ge(fd[i], 0);
	}
	(void)usleep(200000);
	extra = conn_from("127.0.0.2", srv_port());
	ck_assert_msg(extra < 0 || closed_within(extra, 3000),
	    "the 5th connection from one address was not closed");
	if (extra >= 0)
		(void)close(extra);
	/* Another address is served meanwhile. */
	extra = conn_from("127.0.0.1", srv_port());
	ck_assert_int_ge(extra, 0);
	send_all(extra, "GET /v1/health HTTP/1.1\r\nHost: x\r\n"
	    "Connection: close\r\n\r\n", 56);
	(void)read_for(extra, out, sizeof(out), 1, LIVE_MS, &ok);
	ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0, "[%.200s]", out);
	(void)close(extra);
	for (int i = 0; i < 4; i++)
		(void)close(fd[i]);
	m = metrics_until("piivault_http_closed_total{reason=\"limit\"}", 1);
	free(m);
}
END_TEST

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * 400 slowloris connections (a header line every 2 s) and 300 idle ones
 * from 127.0.0.2, while a client on 127.0.0.1 opens a connection per
 * request: it must keep getting answers.  With the defaults, the
 * per-address limit (64) closes all but 64 of them at once, and the
 * request deadline (10 s) the rest; --max-connections stays at its
 * default (256), so it is the per-address limit that does the work.
 */
START_TEST(test_slowloris)
{
	static const char get[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\n"
	    "Connection: close\r\n\r\n";
	struct rlimit rl;
	int *slow, *idle, made = 0, fd, closed;
	uint64_t *lat, start, next_line = 0, t0;
	size_t nlat = 0;
	char out[4096], *m;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2048 && rl.rlim_max >= 2048) {
		rl.rlim_cur = 2048;
		ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	ck_assert_msg(rl.rlim_cur >= 1024, "RLIMIT_NOFILE %llu is too low",
	    (unsigned long long)rl.rlim_cur);
	slow = calloc(SLOW_CONNS, sizeof(*slow));
	idle = calloc(IDLE_CONNS, sizeof(*idle));
	lat = calloc(SAMPLES, sizeof(*lat));
	ck_assert(slow != NULL && idle != NULL && lat != NULL);

	for (int i = 0; i < SLOW_CONNS; i++) {
		if ((slow[i] = conn_from("127.0.0.2", srv_port())) >= 0) {
			made++;
			(void)send(slow[i], "GET /v1/health HTTP/1.1\r\n", 25,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
		}
	}
	for (int i = 0; i < IDLE_CONNS; i++)
		if ((idle[i] = conn_from("127.0.0.2", srv_port())) >= 0)
			made++;
	printf("slowloris: %d of %d connections from 127.0.0.2 made\n", made,
	    SLOW_CONNS + IDLE_CONNS);

	start = now_ms();
	while (now_ms() - start < ATTACK_SECS * 1000u && nlat < SAMPLES) {
		if (now_ms() >= next_line) {
			for (int i = 0; i < SLOW_CONNS; i++)
				if (slow[i] >= 0)
					(void)send(slow[i], "X-A: b\r\n", 8,
					    MSG_NOSIGNAL | MSG_DONTWAIT);
			next_line = now_ms() + 2000;
		}
		t0 = now_ms();
		fd = conn_from("127.0.0.1", srv_port());
		ck_assert_msg(fd >= 0, "request %zu: cannot connect", nlat);
		send_all(fd, get, sizeof(get) - 1);
		(void)read_for(fd, out, sizeof(out), 1, LIVE_MS, &closed);
		ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0,
		    "request %zu after %llu ms: no answer within %d ms "
		    "[%.100s]", nlat, (unsigned long long)(t0 - start), LIVE_MS,
		    out);
		(void)close(fd);
		lat[nlat++] = now_ms() - t0;
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	printf("slowloris: %zu requests from 127.0.0.1 in %d s, each on a new "
	    "connection: p50 %llu ms, p99 %llu ms, max %llu ms\n", nlat,
	    ATTACK_SECS, (unsigned long long)lat[nlat / 2],
	    (unsigned long long)lat[nlat * 99 / 100],
	    (unsigned long long)lat[nlat - 1]);
	m = metrics();
	printf("slowloris: closed over a limit %lld, at the deadline %lld\n",
	    metric(m, "piivault_http_closed_total{reason=\"limit\"}"),
	    metric(m, "piivault_http_closed_total{reason=\"timeout\"}"));
	ck_assert_int_gt(metric(m,
	    "piivault_http_closed_total{reason=\"limit\"}"), 0);
	free(m);
	for (int i = 0; i < SLOW_CONNS; i++)
		if (slow[i] >= 0)
			(void)close(slow[i]);
	for (int i = 0; i < IDLE_CONNS; i++)
		if (idle[i] >= 0)
			(void)close(idle[i]);
	free(slow);
	free(idle);
	free(lat);
}
END_TEST


/*
 * Under systemd (Type=notify) the server says READY=1 once it listens and
 * STOPPING=1 when told to stop, on the datagram socket $NOTIFY_SOCKET
 * names: here one of ours, by path and then by abstract name.
 */
static void
notify_expect(int fd, const char *want)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char buf[256];
	ssize_t n;

	ck_assert_msg(poll(&p, 1, LIVE_MS) == 1, "no %s on NOTIFY_SOCKET", want);
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_msg(strcmp(buf, want) == 0, "NOTIFY_SOCKET got [%s], want %s",
	    buf, want);
}

START_TEST(test_sd_notify)
{
	for (int abstract = 0; abstract <= 1; abstract++) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char env[sizeof(sa.sun_path) + 16];
		const char *envv[] = { env, NULL };
		socklen_t salen;
		size_t n;
		int fd;

		n = (size_t)snprintf(sa.sun_path, sizeof(sa.sun_path),
		    "%s/notify%d", su_tdir, abstract);
		ck_assert_uint_lt(n, sizeof(sa.sun_path));
		(void)snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s",
		    sa.sun_path);
		if (abstract) {
			sa.sun_path[0] = '\0';
			env[strlen("NOTIFY_SOCKET=")] = '@';
		}
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, salen), 0);
		if (su_srv.pid > 0)
			su_srv_stop();
		su_srv_start_local(NULL, NULL, envv);
		notify_expect(fd, "READY=1");
		ck_assert_int_eq(su_srv_signal(SIGTERM), 0);
		notify_expect(fd, "STOPPING=1");
		ck_assert_int_eq(close(fd), 0);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("http_transport");
	TCase *tc;

	tc = http_tcase(s, "paths", 1, TIMEOUT);
	tcase_add_test(tc, test_raw_paths);
	tcase_add_test(tc, test_sd_notify);
	tc = http_tcase(s, "framing", 1, TIMEOUT);
	tcase_add_test(tc, test_framing_nul);
	tcase_add_test(tc, test_framing_smuggle);
	tcase_add_test(tc, test_expect_continue);
	tcase_add_test(tc, test_pipelining);
	tc = http_tcase(s, "slow", 1, 2 * TIMEOUT);
	tcase_add_test(tc, test_request_deadline);
	tcase_add_test(tc, test_limits_close);
	tcase_add_test(tc, test_slowloris);
	return su_suite_main("check_http_transport", s);
}
