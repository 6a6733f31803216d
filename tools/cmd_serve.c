/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_serve.c: piivault serve.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_int.h"

enum {
	O_LISTEN = CLI_OPT_OWN, O_THREADS, O_CERT, O_KEY, O_INSECURE,
	O_BODY, O_FIELDS, O_VALUE, O_BATCH, O_LARGE, O_CONNS, O_IDLE, O_KEKAGE,
	O_KEKWRAPS, O_RETENTION, O_RLIMIT, O_RWINDOW, O_SWEEP, O_PRIO, O_CA,
	O_PERADDR, O_RTIMEOUT, O_RATE, O_SHEAP, O_CHECK, O_LOGFMT, O_LOGLVL,
};

const struct option cli_serve_opts[] = {
	CLI_OPTS_VAULT,
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "tls-cert", required_argument, NULL, O_CERT | CLI_OPT_PATH },
	{ "tls-key", required_argument, NULL, O_KEY | CLI_OPT_PATH },
	{ "insecure-plaintext", no_argument, NULL, O_INSECURE },
	{ "max-body", required_argument, NULL, O_BODY },
	{ "max-fields", required_argument, NULL, O_FIELDS },
	{ "max-value", required_argument, NULL, O_VALUE },
	{ "max-batch", required_argument, NULL, O_BATCH },
	{ "max-large", required_argument, NULL, O_LARGE },
	{ "max-connections", required_argument, NULL, O_CONNS },
	{ "idle-timeout", required_argument, NULL, O_IDLE },
	{ "max-kek-age", required_argument, NULL, O_KEKAGE },
	{ "max-kek-wraps", required_argument, NULL, O_KEKWRAPS },
	{ "default-retention-days", required_argument, NULL, O_RETENTION },
	{ "request-limit", required_argument, NULL, O_RLIMIT },
	{ "request-window-days", required_argument, NULL, O_RWINDOW },
	{ "sweep-interval", required_argument, NULL, O_SWEEP },
	{ "tls-priorities", required_argument, NULL, O_PRIO },
	{ "tls-client-ca", required_argument, NULL, O_CA | CLI_OPT_PATH },
	{ "max-per-address", required_argument, NULL, O_PERADDR },
	{ "request-timeout", required_argument, NULL, O_RTIMEOUT },
	{ "rate-limit", required_argument, NULL, O_RATE },
	{ "secure-heap-mib", required_argument, NULL, O_SHEAP },
	{ "log-format", required_argument, NULL, O_LOGFMT },
	{ "log-level", required_argument, NULL, O_LOGLVL },
	{ "check-config", no_argument, NULL, O_CHECK | CLI_OPT_ONCE },
	CLI_OPT_END,
};

struct serve_opts {
	struct api_serve_opts	api;
	uint64_t		kek_age;	/* seconds */
	uint64_t		kek_wraps;
	struct vault_policy	policy;
	unsigned		sweep;		/* seconds between sweeps */
	enum pv_log_format	log_format;
	enum pv_log_level	log_level;
	int			check;		/* --check-config */
};

static int
serve_opt(void *arg, int ch, const char *val)
{
	struct serve_opts *so = arg;
	struct api_serve_opts *o = &so->api;
	struct api_limits *l = &o->limits;
	unsigned long long n;
	int r = CLI_OK;

	switch (ch) {
	case O_LISTEN:
		o->listen = val;
		break;
	case O_CERT:
		o->tls_cert = val;
		break;
	case O_KEY:
		o->tls_key = val;
		break;
	case O_INSECURE:
		o->insecure_plaintext = 1;
		break;
	case O_THREADS:
		if ((r = cli_number("serve", "--threads", val, 1, 256, &n)) ==
		    CLI_OK)
			l->threads = (unsigned)n;
		break;
	case O_BODY:
		if ((r = cli_number("serve", "--max-body", val, 1024,
		    64u << 20, &n)) == CLI_OK)
			l->body_max = (size_t)n;
		break;
	case O_FIELDS:
		if ((r = cli_number("serve", "--max-fields", val, 1,
		    PV_FIELDS_MAX, &n)) == CLI_OK)
			l->fields_max = (size_t)n;
		break;
	case O_VALUE:
		if ((r = cli_number("serve", "--max-value", val, 1,
		    PV_VALUE_MAX, &n)) == CLI_OK)
			l->value_max = (size_t)n;
		break;
	case O_BATCH:
		if ((r = cli_number("serve", "--max-batch", val, 1,
		    VAULT_BATCH_MAX, &n)) == CLI_OK)
			l->batch_max = (size_t)n;
		break;
	case O_LARGE:
		if ((r = cli_number("serve", "--max-large", val, 1, 256,
		    &n)) == CLI_OK)
			l->large = (unsigned)n;
		break;
	case O_CONNS:
		if ((r = cli_number("serve", "--max-connections", val, 1,
		    65536, &n)) == CLI_OK)
			l->connections = (unsigned)n;
		break;
	case O_IDLE:
		if ((r = cli_number("serve", "--idle-timeout", val, 1,
		    VAULT_DAY, &n)) == CLI_OK)
			l->idle_timeout = (unsigned)n;
		break;
	case O_KEKAGE:
		/* The same century that bounds a retention period. */
		if ((r = cli_number("serve", "--max-kek-age", val, 1,
		    VAULT_RETENTION_DAYS_MAX, &n)) == CLI_OK)
			so->kek_age = n * VAULT_DAY;
		break;
	case O_RETENTION:
		if ((r = cli_number("serve", "--default-retention-days", val,
		    0, VAULT_RETENTION_DAYS_MAX, &n)) == CLI_OK)
			so->policy.retention_days = (uint32_t)n;
		break;
	case O_RLIMIT:
		if ((r = cli_number("serve", "--request-limit", val, 0,
		    1000000, &n)) == CLI_OK)
			so->policy.request_limit = (uint32_t)n;
		break;
	case O_RWINDOW:
		if ((r = cli_number("serve", "--request-window-days", val, 1,
		    3650, &n)) == CLI_OK)
			so->policy.request_window = n * VAULT_DAY;
		break;
	case O_SWEEP:
		if ((r = cli_number("serve", "--sweep-interval", val, 0,
		    7 * VAULT_DAY, &n)) == CLI_OK)
			so->sweep = (unsigned)n;
		break;
	case O_PRIO:
		o->tls_priorities = val;
		break;
	case O_CA:
		o->tls_client_ca = val;
		break;
	case O_PERADDR:
		if ((r = cli_number("serve", "--max-per-address", val, 0,
		    65536, &n)) == CLI_OK)
			l->per_address = (unsigned)n;
		break;
	case O_RTIMEOUT:
		if ((r = cli_number("serve", "--request-timeout", val, 1,
		    3600, &n)) == CLI_OK)
			l->request_timeout = (unsigned)n;
		break;
	case O_RATE:
		if ((r = cli_number("serve", "--rate-limit", val, 0,
		    1000000, &n)) == CLI_OK)
			l->rate_limit = (unsigned)n;
		break;
	case O_SHEAP:
		/* OpenSSL's secure heap is a power of two. */
		if ((r = cli_number("serve", "--secure-heap-mib", val, 4,
		    4096, &n)) != CLI_OK)
			break;
		if ((n & (n - 1)) != 0)
			r = cli_usage("serve", "--secure-heap-mib must be a "
			    "power of two (4, 8, 16, ... 4096)");
		else
			l->secure_heap_mib = (unsigned)n;
		break;
	case O_LOGFMT:
		if (pv_log_format_parse(val, &so->log_format) != PV_OK)
			r = cli_usage("serve", "--log-format must be text or "
			    "json");
		break;
	case O_LOGLVL:
		if (pv_log_level_parse(val, &so->log_level) != PV_OK)
			r = cli_usage("serve", "--log-level must be error, "
			    "warn, info or debug");
		break;
	case O_CHECK:
		so->check = 1;
		break;
	case O_KEKWRAPS:
		/* Far below 2^32 random-nonce GCM encryptions per key. */
		if ((r = cli_number("serve", "--max-kek-wraps", val, 1,
		    1ull << 31, &n)) == CLI_OK)
			so->kek_wraps = n;
		break;
	}
	return r;
}

/*
 * The retention sweeper: a thread that shreds what is past its date every
 * interval, until told to stop.
 */
struct sweeper {
	pthread_t	 th;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	struct vault	*v;
	unsigned	 interval;
	int		 stop;
};

static void *
sweeper_run(void *arg)
{
	struct sweeper *sw = arg;
	struct timespec until;
	uint64_t shredded, held;
	pv_status rc;

	(void)pthread_mutex_lock(&sw->lock);
	while (!sw->stop) {
		(void)pthread_mutex_unlock(&sw->lock);
		rc = vault_retention_sweep(sw->v, 0, 0, &shredded, &held);
		if (rc != PV_OK)
			pv_log(PV_LOG_ERROR, "retention sweep: %s",
			    pv_strerror(rc));
		else if (shredded > 0)
			pv_log(PV_LOG_INFO, "retention sweep: %llu records "
			    "shredded, %llu held", (unsigned long long)shredded,
			    (unsigned long long)held);
		(void)pthread_mutex_lock(&sw->lock);
		(void)clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)sw->interval;
		while (!sw->stop && pthread_cond_timedwait(&sw->cond,
		    &sw->lock, &until) == 0)
			;
	}
	(void)pthread_mutex_unlock(&sw->lock);
	return NULL;
}

static int
sweeper_start(struct sweeper *sw, struct vault *v, unsigned interval)
{
	sw->v = v;
	sw->interval = interval;
	sw->stop = 0;
	if (pthread_mutex_init(&sw->lock, NULL) != 0)
		return -1;
	if (pthread_cond_init(&sw->cond, NULL) != 0) {
		(void)pthread_mutex_destroy(&sw->lock);
		return -1;
	}
	if (pthread_create(&sw->th, NULL, sweeper_run, sw) != 0) {
		(void)pthread_cond_destroy(&sw->cond);
		(void)pthread_mutex_destroy(&sw->lock);
		return -1;
	}
	return 0;
}

static void
sweeper_stop(struct sweeper *sw)
{
	(void)pthread_mutex_lock(&sw->lock);
	sw->stop = 1;
	(void)pthread_cond_signal(&sw->cond);
	(void)pthread_mutex_unlock(&sw->lock);
	(void)pthread_join(sw->th, NULL);
	(void)pthread_cond_destroy(&sw->cond);
	(void)pthread_mutex_destroy(&sw->lock);
}

/*
 * Check the secure heap against the worst case the limits allow: the key
 * ring (as loaded, counted twice: rotations add to it while it runs),
 * slack for the allocator's fragmentation, what every worker thread may
 * hold without asking, and the largest request, which waits for room in
 * what is left (its budget).  Too small: say by how much, and refuse.
 */
#define SECURE_SLACK	((size_t)1 << 20)

static int
secure_heap_check(const struct api_limits *l)
{
	size_t heap = pv_secure_heap_size(), ring = pv_secure_used();
	size_t per_thread, largest, fixed, need;
	unsigned threads = l->threads ? l->threads : API_THREADS_DEFAULT;
	char msg[512];

	api_secure_need(l, &per_thread, &largest);
	fixed = 2 * ring + SECURE_SLACK + (size_t)threads * per_thread;
	need = fixed + largest;
	if (need > heap) {
		size_t mib = 4;

		while ((mib << 20) < need)
			mib <<= 1;
		(void)snprintf(msg, sizeof(msg), "--secure-heap-mib %zu is too "
		    "small for these limits: they need %zu KiB (%u threads x "
		    "%zu KiB, a request of %zu KiB, the key ring and slack); "
		    "use --secure-heap-mib %zu, or fewer --threads or a lower "
		    "--max-value", heap >> 20, need >> 10, threads,
		    per_thread >> 10, largest >> 10, mib);
		return cli_usage("serve", msg);
	}
	pv_secure_budget_set(heap - fixed);
	pv_log(PV_LOG_INFO, "secure heap: %zu MiB, %zu bytes of keys, %zu KiB "
	    "for %u threads, %zu KiB for larger requests", heap >> 20,
	    ring, ((size_t)threads * per_thread) >> 10, threads,
	    (heap - fixed) >> 10);
	return CLI_OK;
}

/* What api_serve's failure rc means, for the one line on stderr. */
static const char *
serve_failure(pv_status rc)
{
	switch (rc) {
	case PV_EUSAGE:
		/* api_serve said what is wrong on the line before. */
		return "invalid --listen or TLS option";
	case PV_EINVAL:
		return "tls is not available in this libmicrohttpd";
	default:
		return "cannot serve";
	}
}

/*
 * Tell the service manager how the server is (sd_notify(3)'s protocol: one
 * datagram to $NOTIFY_SOCKET, a path or, after '@', an abstract name), so
 * that a unit of Type=notify is started only once the socket listens.
 * Without NOTIFY_SOCKET, nothing.  A failure is logged, never fatal: the
 * server serves either way.
 */
static void
notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	size_t n;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@'))
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if ((n = strlen(path)) < 2 || n >= sizeof(sa.sun_path)) {
		pv_log(PV_LOG_WARN, "serve: NOTIFY_SOCKET is not a socket name");
		return;
	}
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		pv_log(PV_LOG_WARN, "serve: notify socket: %s", strerror(errno));
		return;
	}
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (const struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		pv_log(PV_LOG_WARN, "serve: notify %s: %s", path,
		    strerror(errno));
	if (close(fd) != 0)
		pv_log(PV_LOG_WARN, "serve: notify socket: %s", strerror(errno));
}

static void
ready(void *arg, const char *url)
{
	(void)arg;
	(void)printf("piivault: listening on %s\n", url);
	(void)fflush(stdout);
	notify("READY=1");
}

static void
stopping(void *arg)
{
	(void)arg;
	notify("STOPPING=1");
}

/*
 * What a serve setting is when not given, as --check-config prints it;
 * NULL for one that is off unless given.  tls-priorities is one: its
 * default applies with TLS only, and serve refuses it given without.
 */
static const char *
serve_default(int val)
{
	static char num[24];
	unsigned long long n;

	switch (val) {
	case O_LISTEN:
		return API_LISTEN_DEFAULT;
	case O_THREADS:
		n = API_THREADS_DEFAULT;
		break;
	case O_BODY:
		n = API_BODY_MAX;
		break;
	case O_FIELDS:
		n = PV_FIELDS_MAX;
		break;
	case O_VALUE:
		n = PV_VALUE_MAX;
		break;
	case O_BATCH:
		n = VAULT_BATCH_MAX;
		break;
	case O_LARGE:
		n = API_LARGE_DEFAULT;
		break;
	case O_CONNS:
		n = API_CONNECTIONS_DEFAULT;
		break;
	case O_IDLE:
		n = API_IDLE_DEFAULT;
		break;
	case O_RLIMIT:
		n = VAULT_REQUEST_LIMIT_DEFAULT;
		break;
	case O_RWINDOW:
		n = VAULT_REQUEST_WINDOW_DEFAULT / VAULT_DAY;
		break;
	case O_SWEEP:
		n = API_SWEEP_DEFAULT;
		break;
	case O_PERADDR:
		n = API_PER_ADDRESS_DEFAULT;
		break;
	case O_RTIMEOUT:
		n = API_REQUEST_TIMEOUT_DEFAULT;
		break;
	case O_RATE:
		n = API_RATE_LIMIT_DEFAULT;
		break;
	case O_SHEAP:
		n = API_SECURE_HEAP_DEFAULT;
		break;
	case O_LOGFMT:
		return pv_log_journal() ? "json" : "text";
	case O_LOGLVL:
		return "info";
	default:
		return NULL;
	}
	(void)snprintf(num, sizeof(num), "%llu", n);
	return num;
}

int
cmd_serve(int argc, char **argv)
{
	struct serve_opts o;
	struct cli_own own = { serve_opt, &o,
	    "  --listen ADDR:PORT     where to listen (default "
	    API_LISTEN_DEFAULT "; [::1]:PORT for IPv6; port 0 picks one)\n"
	    "  --threads N            worker threads (default "
	    CLI_STR(API_THREADS_DEFAULT) ")\n"
	    "  --tls-cert FILE        serve HTTPS with this PEM certificate\n"
	    "  --tls-key FILE         and this PEM private key\n"
	    "  --insecure-plaintext   allow plain HTTP off loopback\n"
	    "  --tls-priorities STR   GnuTLS priorities (default: TLS 1.2 "
	    "and 1.3,\n                         forward-secret AEAD suites, "
	    "server order)\n"
	    "  --tls-client-ca FILE   require client certificates from this "
	    "CA\n"
	    "  --max-body BYTES       request body limit (default 1 MiB)\n"
	    "  --max-fields N         fields per record (default "
	    CLI_STR(PV_FIELDS_MAX) ")\n"
	    "  --max-value BYTES      bytes per value (default "
	    CLI_STR(PV_VALUE_MAX) ")\n"
	    "  --max-batch N          records or tokens a request "
	    "(default " CLI_STR(VAULT_BATCH_MAX) ")\n"
	    "  --max-large N          requests with bodies over 16 KiB "
	    "decoded at once (default " CLI_STR(API_LARGE_DEFAULT) ")\n"
	    "  --max-connections N    concurrent connections (default "
	    CLI_STR(API_CONNECTIONS_DEFAULT) ")\n"
	    "  --idle-timeout SEC     idle connection timeout (default "
	    CLI_STR(API_IDLE_DEFAULT) ")\n"
	    "  --max-per-address N    connections from one address (default "
	    CLI_STR(API_PER_ADDRESS_DEFAULT) "; 0: off)\n"
	    "  --request-timeout SEC  time to send a whole request (default "
	    CLI_STR(API_REQUEST_TIMEOUT_DEFAULT) ")\n"
	    "  --rate-limit N         requests a second per API key, and per "
	    "address\n                         without one (default "
	    CLI_STR(API_RATE_LIMIT_DEFAULT) "; 0: off)\n"
	    "  --secure-heap-mib N    secure heap for keys and values in "
	    "flight, a power\n                         of two (default "
	    CLI_STR(API_SECURE_HEAP_DEFAULT) ")\n"
	    "  --log-format FMT       text or json, one event a line on "
	    "stderr (default\n                         json when stderr is "
	    "the systemd journal, else text)\n"
	    "  --log-level LEVEL      error, warn, info (default: with a "
	    "line a request)\n                         or debug\n"
	    "  --max-kek-age DAYS     rotate the KEK when it is this old\n"
	    "  --max-kek-wraps N      rotate the KEK after N DEKs\n"
	    "  --default-retention-days N  retention of records created "
	    "without one\n"
	    "  --request-limit N      access requests answered a record "
	    "(default " CLI_STR(VAULT_REQUEST_LIMIT_DEFAULT) ")\n"
	    "  --request-window-days D  per window of D days (default 30)\n"
	    "  --sweep-interval SEC   retention sweep period (default "
	    CLI_STR(API_SWEEP_DEFAULT) "; 0: off)\n"
	    "  --check-config         check the settings as serve would "
	    "(the vault opens,\n                         the TLS files load), "
	    "print them, and exit\n                         without "
	    "serving\n" };
	struct cli_common c;
	struct sweeper sw;
	struct vault *v = NULL;
	sigset_t sigs;
	pv_status rc;
	int r, first;

	memset(&o, 0, sizeof(o));
	o.api.ready = ready;
	o.api.stopping = stopping;
	o.policy.request_limit = VAULT_REQUEST_LIMIT_DEFAULT;
	o.policy.request_window = VAULT_REQUEST_WINDOW_DEFAULT;
	o.sweep = API_SWEEP_DEFAULT;
	/* api_serve reads a rate_limit of 0 as off: the default is ours. */
	o.api.limits.rate_limit = API_RATE_LIMIT_DEFAULT;
	/* Unset is the default, --max-per-address 0 is no limit. */
	o.api.limits.per_address = API_PER_ADDRESS_DEFAULT;
	/* Under systemd, stderr is the journal: one JSON object a line. */
	o.log_format = pv_log_journal() ? PV_LOG_JSON : PV_LOG_TEXT;
	o.log_level = PV_LOG_INFO;
	if ((r = cli_parse(argc, argv, &c, &first, "serve [OPTIONS]\n\n"
	    "Serves the HTTP API until SIGINT or SIGTERM, then finishes the\n"
	    "requests in flight and exits.  Every option may be set in the\n"
	    "configuration file (--config); --check-config prints where each\n"
	    "setting came from.\n", &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("serve", "unexpected argument");
	pv_log_set_format(o.log_format);
	pv_log_set_level(o.log_level);
	/* Block the stop signals everywhere: api_serve waits for them. */
	if (sigemptyset(&sigs) != 0 || sigaddset(&sigs, SIGINT) != 0 ||
	    sigaddset(&sigs, SIGTERM) != 0 ||
	    pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0 ||
	    signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return cli_fail("serve", "signals", PV_EIO);
	/*
	 * A pool of many threads would otherwise get as many malloc arenas,
	 * each holding freed request memory: a few arenas keep the resident
	 * size near what is in use.  Buffers over 64 KiB (batch bodies, their
	 * sealed records, answers) are mapped and unmapped on their own, and
	 * an arena gives back a free top over 1 MiB: glibc's default would
	 * let both thresholds climb to 32 MiB after the first large buffer.
	 */
	if (mallopt(M_ARENA_MAX, 4) != 1 ||
	    mallopt(M_MMAP_THRESHOLD, 64 << 10) != 1 ||
	    mallopt(M_TRIM_THRESHOLD, 1 << 20) != 1)
		pv_log(PV_LOG_WARN, "serve: could not tune malloc");
	/* Sized before the first key is loaded into it. */
	if ((rc = pv_secure_heap_init((size_t)(o.api.limits.secure_heap_mib ?
	    o.api.limits.secure_heap_mib : API_SECURE_HEAP_DEFAULT) << 20)) !=
	    PV_OK)
		return cli_fail("serve", "secure heap", rc);
	if ((r = cli_open(&c, "serve", &v)) != CLI_OK)
		return r;
	if ((r = secure_heap_check(&o.api.limits)) != CLI_OK) {
		vault_close(v);
		return r;
	}
	vault_set_cryptoperiod(v, o.kek_age, o.kek_wraps);
	vault_set_policy(v, &o.policy);
	vault_set_actor(v, "server");
	/* --check-config: api_serve checks what it would serve, and returns. */
	o.api.check_only = o.check;
	if (o.check)
		o.sweep = 0;
	if (o.sweep > 0 && sweeper_start(&sw, v, o.sweep) != 0) {
		vault_close(v);
		return cli_fail("serve", "retention sweeper", PV_EIO);
	}
	rc = api_serve(v, &o.api);
	if (o.sweep > 0)
		sweeper_stop(&sw);
	vault_close(v);
	/* A command-line error: exit 2. */
	if (rc == PV_EUSAGE)
		return cli_usage("serve", serve_failure(rc));
	/* Another socket listens there (PV_EBUSY names no vault here). */
	if (rc == PV_EBUSY) {
		(void)fprintf(stderr, "piivault: serve: %s is already in use\n",
		    o.api.listen != NULL ? o.api.listen : API_LISTEN_DEFAULT);
		return CLI_FAIL;
	}
	if (rc != PV_OK)
		return cli_fail("serve", serve_failure(rc), rc);
	if (o.check)
		return cli_settings_print(serve_default);
	return CLI_OK;
}
