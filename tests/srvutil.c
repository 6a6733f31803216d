/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srvutil.c: running the real binary, its server and requests to it, and
 * the JSON reader, for the suites that drive piivault from outside (see
 * srvutil.h for who owns what).
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "pv.h"
#include "api.h"
#include "srvutil.h"
#include "testutil.h"

#ifndef PIIVAULT_BIN
#error "PIIVAULT_BIN must name the piivault binary"
#endif

char		su_tdir[PATH_MAX];
char		su_logpath[PATH_MAX];
int		su_wait_ms = 30000;
struct su_srv	su_srv;

static char	 casedir[PATH_MAX];	/* the test case's; TMPDIR meanwhile */
static char	*saved_tmpdir;
static CURL	*su_curl;		/* the main thread's, kept alive */

/* Test cases. */

void
su_case_setup(const char *name)
{
	const char *t = getenv("TMPDIR");

	if (t == NULL || *t == '\0')
		t = "/tmp";
	if (snprintf(casedir, sizeof(casedir), "%s/pv%s.XXXXXX", t, name) >=
	    (int)sizeof(casedir) || mkdtemp(casedir) == NULL) {
		(void)fprintf(stderr, "check_%s: mkdtemp: %s\n", name,
		    strerror(errno));
		abort();
	}
	if ((t = getenv("TMPDIR")) != NULL &&
	    (saved_tmpdir = strdup(t)) == NULL)
		abort();
	if (setenv("TMPDIR", casedir, 1) != 0)
		abort();
}

void
su_case_teardown(void)
{
	tu_rmrf(casedir);
	if (saved_tmpdir != NULL)
		(void)setenv("TMPDIR", saved_tmpdir, 1);
	else
		(void)unsetenv("TMPDIR");
	free(saved_tmpdir);
	saved_tmpdir = NULL;
}

void
su_srv_setup(void)
{
	tu_tmpdir(su_tdir);
	ck_assert_int_eq(chdir(su_tdir), 0);
	(void)signal(SIGPIPE, SIG_IGN);
	ck_assert_int_lt(snprintf(su_logpath, sizeof(su_logpath),
	    "%s/serve.log", su_tdir), (int)sizeof(su_logpath));
	memset(&su_srv, 0, sizeof(su_srv));
}

void
su_srv_teardown(void)
{
	su_curl_cleanup();
	if (su_srv.pid > 0)
		su_srv_stop();
	su_logs_collect();
	ck_assert_int_eq(chdir("/"), 0);
	tu_rmrf(su_tdir);
}

/* The log check of a test run. */

void
su_note_secret(const void *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const char *dir = getenv("PV_TEST_LOGS");
	const unsigned char *u = p;
	char path[PATH_MAX], *line;
	int fd;

	if (dir == NULL || *dir == '\0' || len < SU_NOTE_MIN)
		return;
	if ((line = malloc(2 * len + 1)) == NULL)
		abort();
	for (size_t i = 0; i < len; i++) {
		line[2 * i] = hex[u[i] >> 4];
		line[2 * i + 1] = hex[u[i] & 15];
	}
	line[2 * len] = '\n';
	/* One write per line, O_APPEND: threads never mix their lines. */
	if (snprintf(path, sizeof(path), "%s/values.%ld", dir,
	    (long)getpid()) >= (int)sizeof(path) || (fd = open(path,
	    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0 ||
	    write(fd, line, 2 * len + 1) != (ssize_t)(2 * len + 1) ||
	    close(fd) != 0) {
		(void)fprintf(stderr, "su_note_secret: %s: %s\n", path,
		    strerror(errno));
		abort();
	}
	free(line);
}

/*
 * What of a JSON request or answer the logs must never hold: the strings
 * under these members, where "fields" counts as an object of values
 * (records, corrections, a person's access) and not as a list of names
 * (audit events).
 */
static void
note_jv(const struct jv *v, int secret)
{
	static const char *const keys[] = { "fields", "tokens", "token",
	    "value", "values", "masked", "pseudonym" };

	if (v == NULL)
		return;
	if (v->type == J_STR && secret)
		su_note_secret(v->s, v->len);
	for (size_t i = 0; (v->type == J_ARR || v->type == J_OBJ) &&
	    i < v->n; i++) {
		int s = secret;

		for (size_t k = 0; v->type == J_OBJ && !s &&
		    k < sizeof(keys) / sizeof(keys[0]); k++)
			s = strcmp(v->keys[i], keys[k]) == 0 && (k > 0 ||
			    v->items[i].type == J_OBJ);
		note_jv(&v->items[i], s);
	}
}

/*
 * Bodies over this are audit pages (up to 512 KiB of stored events, more
 * as JSON), which hold no value by design (the policy suite checks that
 * on their own); parsing each whole with the test's JSON reader took
 * the sanitizer build past the memory it may map.
 */
#define NOTE_JSON_MAX	(256u << 10)

static void
note_json(const char *s, size_t len)
{
	struct jv *v;

	if (getenv("PV_TEST_LOGS") == NULL || s == NULL || len == 0 ||
	    len > NOTE_JSON_MAX || (v = jparse(s, len)) == NULL)
		return;
	note_jv(v, 0);
	jfree(v);
}

void
su_logs_collect(void)
{
	const char *dir = getenv("PV_TEST_LOGS");
	static unsigned n;
	char from[PATH_MAX], to[PATH_MAX];
	struct dirent *d;
	size_t len;
	DIR *dp;
	char *s;
	int fd;

	if (dir == NULL || *dir == '\0' || su_tdir[0] == '\0')
		return;
	ck_assert_ptr_nonnull(dp = opendir(su_tdir));
	while ((d = readdir(dp)) != NULL) {
		size_t nl = strlen(d->d_name);

		if (nl < 5 || (strcmp(d->d_name + nl - 4, ".log") != 0 &&
		    strcmp(d->d_name + nl - 4, ".err") != 0))
			continue;
		ck_assert_int_lt(snprintf(from, sizeof(from), "%s/%s", su_tdir,
		    d->d_name), (int)sizeof(from));
		if ((s = su_slurp(from, &len)) == NULL)
			continue;
		ck_assert_int_lt(snprintf(to, sizeof(to), "%s/log.%ld.%u.%s",
		    dir, (long)getpid(), n++, d->d_name), (int)sizeof(to));
		ck_assert_int_ge(fd = open(to, O_WRONLY | O_CREAT | O_TRUNC |
		    O_CLOEXEC, 0600), 0);
		ck_assert_int_eq(write(fd, s, len), (ssize_t)len);
		ck_assert_int_eq(close(fd), 0);
		free(s);
	}
	ck_assert_int_eq(closedir(dp), 0);
}

int
su_suite_main(const char *prog, Suite *s)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "%s: curl_global_init failed\n", prog);
		return 1;
	}
	return tu_run(s);
}

/* Buffers and files. */

int
su_gbuf_add(struct su_gbuf *b, const void *p, size_t len)
{
	char *np;

	if ((np = realloc(b->p, b->len + len + 1)) == NULL)
		return -1;
	memcpy(np + b->len, p, len);
	b->p = np;
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

void
su_read_all(int fd, struct su_gbuf *b)
{
	char chunk[16384];
	ssize_t got;

	while ((got = read(fd, chunk, sizeof(chunk))) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		ck_assert_int_gt(got, 0);
		ck_assert_int_eq(su_gbuf_add(b, chunk, (size_t)got), 0);
	}
	if (b->p == NULL)
		ck_assert_int_eq(su_gbuf_add(b, "", 0), 0);
}

char *
su_slurp(const char *path, size_t *lenp)
{
	struct su_gbuf b = { NULL, 0 };
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		ck_assert_msg(errno == ENOENT, "%s: %s", path, strerror(errno));
		return NULL;
	}
	su_read_all(fd, &b);
	(void)close(fd);
	if (lenp != NULL)
		*lenp = b.len;
	return b.p;
}

const char *
su_server_log(void)
{
	static char tail[2048];
	size_t len;
	char *s = su_slurp(su_logpath, &len);

	tail[0] = '\0';
	if (s != NULL) {
		/* The end says why it stopped. */
		const char *from = len > sizeof(tail) - 1 ?
		    s + len - (sizeof(tail) - 1) : s;

		(void)snprintf(tail, sizeof(tail), "%s", from);
		free(s);
	}
	return tail;
}

/* Running the binary. */

void
su_exec_init(struct su_exec *x, const char *const *args,
    const char *const *env)
{
	static const char *const pass[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS",
	    "LSAN_OPTIONS" };
	size_t argc = 0, envc = 0;

	x->argv[argc++] = (char *)PIIVAULT_BIN;
	for (size_t i = 0; args[i] != NULL; i++) {
		ck_assert_uint_lt(argc, SU_ARGS_MAX + 1);
		x->argv[argc++] = (char *)args[i];
	}
	x->argv[argc] = NULL;
	x->envp[envc++] = (char *)"PIIVAULT_KDF_MEMORY_KIB=8192";
	x->envp[envc++] = (char *)"PATH=/usr/bin:/bin";
	for (size_t i = 0; i < 3; i++) {
		const char *v = getenv(pass[i]);

		if (v == NULL)
			continue;
		ck_assert_int_lt(snprintf(x->pass[i], sizeof(x->pass[i]),
		    "%s=%s", pass[i], v), (int)sizeof(x->pass[i]));
		x->envp[envc++] = x->pass[i];
	}
	for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
		ck_assert_uint_lt(i, SU_ENV_MAX);
		x->envp[envc++] = (char *)env[i];
	}
	x->envp[envc] = NULL;
}

pid_t
su_spawn(const char *const *args, const char *const *env, int *outfd,
    int errfd)
{
	struct su_exec x;
	pid_t pid, parent = getpid();
	int pout[2], null;

	su_exec_init(&x, args, env);

	ck_assert_int_eq(pipe2(pout, O_CLOEXEC), 0);
	ck_assert_int_ge(null = open("/dev/null", O_RDONLY | O_CLOEXEC), 0);
	ck_assert_int_ge(pid = fork(), 0);
	if (pid == 0) {
		/* Only async-signal-safe calls from here to execve. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent || setsid() < 0 ||
		    chdir(su_tdir) != 0 || dup2(null, 0) < 0 ||
		    dup2(pout[1], 1) < 0 || dup2(errfd, 2) < 0)
			_exit(126);
		execve(PIIVAULT_BIN, x.argv, x.envp);
		_exit(127);
	}
	(void)close(pout[1]);
	(void)close(null);
	*outfd = pout[0];
	return pid;
}

int
su_wait_for(pid_t pid, int ms)
{
	pid_t w;
	int st;

	for (int waited = 0;; waited += 5) {
		if ((w = waitpid(pid, &st, WNOHANG)) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) :
			    128 + WTERMSIG(st);
		ck_assert_msg(w == 0 || errno == EINTR, "waitpid: %s",
		    strerror(errno));
		if (waited >= ms)
			return -1;
		(void)usleep(5000);
	}
}

void
su_run_free(struct su_run *r)
{
	free(r->out);
	r->out = NULL;
	r->outlen = 0;
}

void
su_take_err(struct su_run *r, const char *path)
{
	char *e;

	ck_assert_ptr_nonnull(e = su_slurp(path, NULL));
	(void)snprintf(r->err, sizeof(r->err), "%s", e);
	free(e);
}

void
su_cli_argv(struct su_run *r, const char *const *env,
    const char *const *args)
{
	char errpath[PATH_MAX];
	struct su_gbuf b = { NULL, 0 };
	pid_t pid;
	int out, errfd;

	ck_assert_int_lt(snprintf(errpath, sizeof(errpath), "%s/cli.err",
	    su_tdir), (int)sizeof(errpath));
	ck_assert_int_ge(errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600), 0);
	pid = su_spawn(args, env, &out, errfd);
	(void)close(errfd);
	memset(r, 0, sizeof(*r));
	su_read_all(out, &b);
	(void)close(out);
	r->out = b.p;
	r->outlen = b.len;
	r->status = su_wait_for(pid, su_wait_ms);
	ck_assert_msg(r->status >= 0, "%s %s: did not finish", args[0],
	    args[1] ? args[1] : "");
	su_take_err(r, errpath);
}

void
su_cli(struct su_run *r, const char *const *env, ...)
{
	const char *args[SU_ARGS_MAX + 1];
	va_list ap;

	va_start(ap, env);
	su_args_va(args, SU_ARGS_MAX, ap);
	va_end(ap);
	su_cli_argv(r, env, args);
}

void
su_args_va(const char **out, size_t max, va_list ap)
{
	size_t n = 0;

	while ((out[n] = va_arg(ap, const char *)) != NULL) {
		n++;
		ck_assert_uint_lt(n, max);
	}
}

void
su_apikey_create(char out[static VAULT_APIKEY_SECRET_LEN + 1],
    const char *const *env, const char *const *extra,
    const struct su_apikey *k)
{
	const char *args[SU_ARGS_MAX + 1] = { "apikey", "create", "--name",
	    k->name, "--role", k->role };
	const char *opt[3][2] = { { "--purposes", k->purposes },
	    { "--fields", k->fields }, { "--reveal", k->reveal } };
	size_t n = 6;
	struct su_run r;

	for (size_t i = 0; i < 3; i++)
		if (opt[i][1] != NULL) {
			args[n++] = opt[i][0];
			args[n++] = opt[i][1];
		}
	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
		ck_assert_uint_lt(n, SU_ARGS_MAX);
		args[n++] = extra[i];
	}
	args[n] = NULL;
	su_cli_argv(&r, env, args);
	ck_assert_msg(r.status == 0, "apikey create %s: exit %d; stdout "
	    "[%.1000s] stderr [%s]", k->name, r.status, r.out, r.err);
	ck_assert_msg(r.outlen == VAULT_APIKEY_SECRET_LEN + 1 &&
	    strlen(r.out) == VAULT_APIKEY_SECRET_LEN + 1 &&
	    strncmp(r.out, "pvk_", 4) == 0 &&
	    r.out[VAULT_APIKEY_SECRET_LEN] == '\n', "apikey create %s: [%s]",
	    k->name, r.out);
	memcpy(out, r.out, VAULT_APIKEY_SECRET_LEN);
	out[VAULT_APIKEY_SECRET_LEN] = '\0';
	su_note_secret(out, VAULT_APIKEY_SECRET_LEN);
	su_run_free(&r);
}

/* The server. */

void
su_srv_start(const char *const *pre, const char *const *extra,
    const char *const *env)
{
	static const char prefix[] = "piivault: listening on ";
	const char *args[SU_ARGS_MAX + 1];
	char line[256], *nl;
	size_t n = 0, len = 0;
	struct pollfd pfd;
	ssize_t got;
	int errfd, waited = 0, st;

	ck_assert_msg(su_srv.pid == 0, "a server is already running");
	for (size_t i = 0; pre[i] != NULL; i++) {
		ck_assert_uint_lt(n, SU_ARGS_MAX);
		args[n++] = pre[i];
	}
	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
		ck_assert_uint_lt(n, SU_ARGS_MAX);
		args[n++] = extra[i];
	}
	args[n] = NULL;
	ck_assert_int_ge(errfd = open(su_logpath, O_WRONLY | O_CREAT |
	    O_APPEND | O_CLOEXEC, 0600), 0);
	su_srv.pid = su_spawn(args, env, &su_srv.out, errfd);
	(void)close(errfd);
	for (;;) {
		pfd.fd = su_srv.out;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 100) < 0) {
			ck_assert_int_eq(errno, EINTR);
			continue;
		}
		if (pfd.revents == 0) {
			if ((waited += 100) < su_wait_ms)
				continue;
			(void)kill(su_srv.pid, SIGKILL);
			(void)su_wait_for(su_srv.pid, su_wait_ms);
			su_srv.pid = 0;
			ck_abort_msg("serve did not say where it listens; "
			    "log [%s]", su_server_log());
		}
		got = read(su_srv.out, line + len, sizeof(line) - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			st = su_wait_for(su_srv.pid, su_wait_ms);
			su_srv.pid = 0;
			ck_abort_msg("serve exited (%d) before listening; "
			    "log [%s]", st, su_server_log());
		}
		len += (size_t)got;
		line[len] = '\0';
		if ((nl = strchr(line, '\n')) != NULL)
			break;
		ck_assert_uint_lt(len, sizeof(line) - 1);
	}
	*nl = '\0';
	ck_assert_msg(strncmp(line, prefix, sizeof(prefix) - 1) == 0,
	    "serve said [%s]", line);
	ck_assert_int_lt(snprintf(su_srv.url, sizeof(su_srv.url), "%s",
	    line + sizeof(prefix) - 1), (int)sizeof(su_srv.url));
	ck_assert_msg(strncmp(su_srv.url, "http://", 7) == 0 &&
	    strrchr(su_srv.url, ':') > su_srv.url + 7, "url [%s]", su_srv.url);
	/* A wildcard address is reached through loopback. */
	if (strncmp(su_srv.url, "http://0.0.0.0:", 15) == 0)
		(void)snprintf(su_srv.base, sizeof(su_srv.base),
		    "http://127.0.0.1%.100s", su_srv.url + 14);
	else
		(void)snprintf(su_srv.base, sizeof(su_srv.base), "%.127s",
		    su_srv.url);
}

void
su_srv_start_local(const char *key, const char *const *extra,
    const char *const *env)
{
	const char *serve[] = { "serve", "--listen", "127.0.0.1:0",
	    "--key-file", key, NULL };

	if (key == NULL)
		serve[3] = NULL;
	su_srv_start(serve, extra, env);
	ck_assert_msg(strncmp(su_srv.url, "http://127.0.0.1:", 17) == 0,
	    "serve said [piivault: listening on %s]", su_srv.url);
}

int
su_srv_wait(void)
{
	int st;

	ck_assert_int_gt(su_srv.pid, 0);
	if ((st = su_wait_for(su_srv.pid, su_wait_ms)) < 0) {
		(void)kill(su_srv.pid, SIGKILL);
		(void)su_wait_for(su_srv.pid, su_wait_ms);
	}
	(void)close(su_srv.out);
	su_srv.pid = 0;
	ck_assert_msg(st >= 0, "server did not stop; log [%s]",
	    su_server_log());
	return st;
}

int
su_srv_signal(int sig)
{
	ck_assert_int_gt(su_srv.pid, 0);
	ck_assert_int_eq(kill(su_srv.pid, sig), 0);
	return su_srv_wait();
}

void
su_srv_stop(void)
{
	int st = su_srv_signal(SIGTERM);

	ck_assert_msg(st == 0, "server exited %d after SIGTERM; log [%s]", st,
	    su_server_log());
}

/* HTTP. */

void
su_resp_free(struct su_resp *r)
{
	free(r->body.p);
	free(r->hdr.p);
	memset(r, 0, sizeof(*r));
}

static size_t
on_curl_data(char *p, size_t size, size_t n, void *arg)
{
	return su_gbuf_add(arg, p, size * n) == 0 ? size * n : 0;
}

int
su_http_do(CURL *c, struct su_resp *r, const char *method, const char *url,
    const char *const *headers, const char *body, size_t len,
    char err[static CURL_ERROR_SIZE])
{
	struct curl_slist *hl = NULL, *t;
	CURLcode cc;

	memset(r, 0, sizeof(*r));
	err[0] = '\0';
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		if (strncasecmp(headers[i], "Authorization: Bearer ", 22) == 0)
			su_note_secret(headers[i] + 22, strlen(headers[i] + 22));
	if (body != NULL)
		note_json(body, len);
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		if ((t = curl_slist_append(hl, headers[i])) == NULL) {
			curl_slist_free_all(hl);
			(void)snprintf(err, CURL_ERROR_SIZE, "out of memory");
			return -1;
		}
		hl = t;
	}
	curl_easy_reset(c);
	(void)curl_easy_setopt(c, CURLOPT_URL, url);
	(void)curl_easy_setopt(c, CURLOPT_PROXY, "");
	(void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	(void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	(void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_curl_data);
	(void)curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
	(void)curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_curl_data);
	(void)curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->hdr);
	(void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	if (body != NULL) {
		(void)curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)len);
		(void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		if (strcmp(method, "POST") != 0)
			(void)curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST,
			    method);
	} else if (strcmp(method, "GET") == 0)
		(void)curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	else if (strcmp(method, "HEAD") == 0)
		(void)curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else
		(void)curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	cc = curl_easy_perform(c);
	(void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	(void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	if (cc != CURLE_OK) {
		if (err[0] == '\0')
			(void)snprintf(err, CURL_ERROR_SIZE, "%s",
			    curl_easy_strerror(cc));
		su_resp_free(r);
		return -1;
	}
	(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body.p == NULL && su_gbuf_add(&r->body, "", 0) != 0) {
		su_resp_free(r);
		(void)snprintf(err, CURL_ERROR_SIZE, "out of memory");
		return -1;
	}
	note_json(r->body.p, r->body.len);
	return 0;
}

void
su_req(struct su_resp *r, const char *method, const char *path,
    const char *auth, const char *ctype, const char *body, size_t len)
{
	char url[512], ah[1024], ct[256], err[CURL_ERROR_SIZE];
	const char *h[4];
	size_t nh = 0;

	if (su_curl == NULL)
		ck_assert_ptr_nonnull(su_curl = curl_easy_init());
	ck_assert_int_lt(snprintf(url, sizeof(url), "%s%s", su_srv.base,
	    path), (int)sizeof(url));
	h[nh++] = "Expect:";	/* no 100-continue round trip */
	if (auth != NULL) {
		ck_assert_int_lt(snprintf(ah, sizeof(ah), "Authorization: %s",
		    auth), (int)sizeof(ah));
		h[nh++] = ah;
	}
	if (ctype == NULL && body != NULL)
		ctype = "application/json";
	if (ctype != NULL) {
		ck_assert_int_lt(snprintf(ct, sizeof(ct), "Content-Type:%s%s",
		    *ctype ? " " : "", ctype), (int)sizeof(ct));
		h[nh++] = ct;
	}
	h[nh] = NULL;
	ck_assert_msg(su_http_do(su_curl, r, method, url, h, body, len,
	    err) == 0, "%s %s: %s; log [%s]", method, path, err,
	    su_server_log());
}

void
su_curl_cleanup(void)
{
	if (su_curl != NULL) {
		curl_easy_cleanup(su_curl);
		su_curl = NULL;
	}
}

const char *
su_header(const struct su_resp *r, const char *name)
{
	static char val[512];
	size_t nl = strlen(name);

	for (const char *p = r->hdr.p; p != NULL && *p != '\0';) {
		const char *end = strstr(p, "\r\n");
		size_t ll = end ? (size_t)(end - p) : strlen(p);

		if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;

			while (*v == ' ')
				v++;
			(void)snprintf(val, sizeof(val), "%.*s",
			    (int)(ll - (size_t)(v - p)), v);
			return val;
		}
		p = end ? end + 2 : NULL;
	}
	return NULL;
}

int
su_id_valid(const char *s, const char *prefix)
{
	static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";

	if (s == NULL || strlen(s) != 4 + PV_B64URL16_LEN ||
	    memcmp(s, prefix, 4) != 0)
		return 0;
	for (size_t i = 4; s[i] != '\0'; i++)
		if (strchr(b64url, s[i]) == NULL)
			return 0;
	return 1;
}

/* JSON. */

struct jp {
	const char	*p, *end;
	int		 depth;
};

static void
jv_clear(struct jv *v)
{
	for (size_t i = 0; i < v->n; i++) {
		jv_clear(&v->items[i]);
		if (v->keys != NULL)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->s);
	memset(v, 0, sizeof(*v));
}

void
jfree(struct jv *v)
{
	if (v != NULL) {
		jv_clear(v);
		free(v);
	}
}

static void
jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	    *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int
jp_hex4(struct jp *j, unsigned *out)
{
	unsigned u = 0;

	if (j->end - j->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = *j->p++;

		u <<= 4;
		if (c >= '0' && c <= '9')
			u |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			u |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			u |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = u;
	return 0;
}

static size_t
utf8_put(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string; the decoded form is never longer than its source. */
static int
jp_string(struct jp *j, char **out, size_t *outlen)
{
	char *o;
	size_t n = 0;
	unsigned cp, lo;

	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	if ((o = malloc((size_t)(j->end - j->p) + 1)) == NULL)
		return -1;
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = (unsigned char)*j->p++;

		if (c < 0x20)		/* raw control: not JSON */
			goto bad;
		if (c != '\\') {
			o[n++] = (char)c;
			continue;
		}
		if (j->p >= j->end)
			goto bad;
		switch (*j->p++) {
		case '"': o[n++] = '"'; break;
		case '\\': o[n++] = '\\'; break;
		case '/': o[n++] = '/'; break;
		case 'b': o[n++] = '\b'; break;
		case 'f': o[n++] = '\f'; break;
		case 'n': o[n++] = '\n'; break;
		case 'r': o[n++] = '\r'; break;
		case 't': o[n++] = '\t'; break;
		case 'u':
			if (jp_hex4(j, &cp) != 0)
				goto bad;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (j->end - j->p < 6 || j->p[0] != '\\' ||
				    j->p[1] != 'u')
					goto bad;
				j->p += 2;
				if (jp_hex4(j, &lo) != 0 || lo < 0xdc00 ||
				    lo > 0xdfff)
					goto bad;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000)
				goto bad;
			n += utf8_put(o + n, cp);
			break;
		default:
			goto bad;
		}
	}
	if (j->p >= j->end)
		goto bad;
	j->p++;
	o[n] = '\0';
	*out = o;
	*outlen = n;
	return 0;
bad:
	free(o);
	return -1;
}

static int jp_value(struct jp *j, struct jv *v);

static int
jp_push(struct jv *v, char *key)
{
	struct jv *ni;
	char **nk;

	if ((ni = realloc(v->items, (v->n + 1) * sizeof(*ni))) == NULL)
		return -1;
	v->items = ni;
	memset(&v->items[v->n], 0, sizeof(v->items[v->n]));
	if (v->type == J_OBJ) {
		if ((nk = realloc(v->keys, (v->n + 1) * sizeof(*nk))) == NULL)
			return -1;
		v->keys = nk;
		v->keys[v->n] = key;
	}
	v->n++;
	return 0;
}

static int
jp_container(struct jp *j, struct jv *v, char close)
{
	char *key;
	size_t kl;

	j->p++;
	jp_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		key = NULL;
		if (v->type == J_OBJ) {
			jp_ws(j);
			if (jp_string(j, &key, &kl) != 0)
				return -1;
			jp_ws(j);
			if (j->p >= j->end || *j->p != ':') {
				free(key);
				return -1;
			}
			j->p++;
		}
		if (jp_push(v, key) != 0) {
			free(key);
			return -1;
		}
		if (jp_value(j, &v->items[v->n - 1]) != 0)
			return -1;
		jp_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		return -1;
	}
}

static int
jp_lit(struct jp *j, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return -1;
	j->p += n;
	return 0;
}

static int
jp_value(struct jp *j, struct jv *v)
{
	const char *start;
	int rc;

	jp_ws(j);
	if (j->p >= j->end || ++j->depth > 64)
		return -1;
	switch (*j->p) {
	case '{':
		v->type = J_OBJ;
		rc = jp_container(j, v, '}');
		break;
	case '[':
		v->type = J_ARR;
		rc = jp_container(j, v, ']');
		break;
	case '"':
		v->type = J_STR;
		rc = jp_string(j, &v->s, &v->len);
		break;
	case 't':
		v->type = J_TRUE;
		rc = jp_lit(j, "true");
		break;
	case 'f':
		v->type = J_FALSE;
		rc = jp_lit(j, "false");
		break;
	case 'n':
		v->type = J_NULL;
		rc = jp_lit(j, "null");
		break;
	default:
		v->type = J_NUM;
		start = j->p;
		while (j->p < j->end && strchr("-+.eE0123456789", *j->p) &&
		    *j->p != '\0')
			j->p++;
		if (j->p == start || (v->s = strndup(start,
		    (size_t)(j->p - start))) == NULL)
			return -1;
		v->len = (size_t)(j->p - start);
		rc = 0;
	}
	j->depth--;
	return rc;
}

/* Parse exactly one JSON value from s; NULL if it is not JSON. */
struct jv *
jparse(const char *s, size_t len)
{
	struct jp j = { s, s + len, 0 };
	struct jv *v;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return NULL;
	if (jp_value(&j, v) != 0) {
		jfree(v);
		return NULL;
	}
	jp_ws(&j);
	if (j.p != j.end) {
		jfree(v);
		return NULL;
	}
	return v;
}

/* Member key of object o, or NULL (also if o is not an object). */
const struct jv *
jget(const struct jv *o, const char *key)
{
	if (o == NULL || o->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->keys[i], key) == 0)
			return &o->items[i];
	return NULL;
}

/* The string at o.key, or NULL. */
const char *
jstr(const struct jv *o, const char *key)
{
	const struct jv *v = jget(o, key);

	return v != NULL && v->type == J_STR ? v->s : NULL;
}


void
su_assert_common_headers(const struct su_resp *r)
{
	ck_assert_pstr_eq(su_header(r, "Cache-Control"), "no-store");
	ck_assert_pstr_eq(su_header(r, "X-Content-Type-Options"), "nosniff");
	su_assert_request_id(r, NULL);
}

void
su_assert_request_id(const struct su_resp *r, const char *want)
{
	const char *id = su_header(r, "X-Request-Id");
	size_t n;

	ck_assert_msg(id != NULL, "no X-Request-Id: [%s]", r->hdr.p);
	n = strlen(id);
	ck_assert_msg(n >= 1 && n <= 64 && strspn(id, "ABCDEFGHIJKLMNOPQRSTUV"
	    "WXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n,
	    "X-Request-Id [%s]", id);
	if (want != NULL)
		ck_assert_str_eq(id, want);
}

void
su_assert_error(const struct su_resp *r, long st, const char *code)
{
	const struct jv *e;
	const char *msg;
	struct jv *v;

	ck_assert_msg(r->status == st, "status %ld, want %ld (%s): [%.600s]",
	    r->status, st, code, r->body.p);
	ck_assert_pstr_eq(su_header(r, "Content-Type"), "application/json");
	v = su_body_json(r);
	e = jget(v, "error");
	ck_assert_msg(v->type == J_OBJ && v->n == 1 && e != NULL &&
	    e->type == J_OBJ && e->n == 2, "not {\"error\":{code,message}}: "
	    "[%s]", r->body.p);
	ck_assert_pstr_eq(jstr(e, "code"), code);
	msg = jstr(e, "message");
	ck_assert_msg(msg != NULL && *msg != '\0', "no message: [%s]",
	    r->body.p);
	jfree(v);
}

struct jv *
su_body_json(const struct su_resp *r)
{
	struct jv *v = jparse(r->body.p, r->body.len);

	ck_assert_msg(v != NULL, "not json: [%.600s]", r->body.p);
	ck_assert_msg(r->body.len > 0 && r->body.p[r->body.len - 1] == '\n',
	    "no final newline: [%.600s]", r->body.p);
	su_assert_common_headers(r);
	return v;
}

/* Request bodies. */

void
su_buf_quote(struct pv_buf *b, const char *s)
{
	ck_assert_int_eq(pv_json_quote(b, s, strlen(s)), PV_OK);
}

void
su_buf_add(struct pv_buf *b, const char *s)
{
	ck_assert_int_eq(pv_buf_add(b, s, strlen(s)), PV_OK);
}

void
su_record_body(struct pv_buf *b, const struct su_fv *f, size_t n,
    int consent, int days)
{
	su_buf_add(b, "{\"fields\":{");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			su_buf_add(b, ",");
		su_buf_quote(b, f[i].name);
		su_buf_add(b, ":");
		su_buf_quote(b, f[i].value);
	}
	su_buf_add(b, "}");
	if (consent >= 0)
		su_buf_add(b, consent ? ",\"consent\":{\"marketing\":true}" :
		    ",\"consent\":{\"marketing\":false}");
	if (days > 0)
		ck_assert_int_eq(pv_buf_printf(b, ",\"retention_days\":%d",
		    days), PV_OK);
	su_buf_add(b, "}");
}

/* Detokenize answers. */

const struct jv *
su_item(const struct jv *doc, size_t i)
{
	const struct jv *res = jget(doc, "results"), *r, *ix;

	ck_assert_msg(res != NULL && res->type == J_ARR && i < res->n,
	    "no item %zu", i);
	r = &res->items[i];
	ix = jget(r, "index");
	ck_assert_msg(r->type == J_OBJ && ix != NULL && ix->type == J_NUM &&
	    strtoull(ix->s, NULL, 10) == i, "item %zu: no index %zu", i, i);
	return r;
}

const struct jv *
su_result(const struct jv *doc, const char *tok)
{
	const struct jv *res = jget(doc, "results");

	ck_assert_msg(res != NULL && res->type == J_ARR, "no results");
	for (size_t i = 0; i < res->n; i++) {
		const char *t = jstr(&res->items[i], "token");

		if (t != NULL && strcmp(t, tok) == 0)
			return su_item(doc, i);
	}
	ck_abort_msg("no answer for %s", tok);
	return NULL;
}

void
su_assert_value(const struct jv *doc, const char *tok, const char *field,
    const char *value)
{
	const struct jv *r = su_result(doc, tok), *v = jget(r, "value");

	ck_assert_msg(r->n == 4 && v != NULL && v->type == J_STR,
	    "%s (%s): no plain value", tok, field);
	ck_assert_pstr_eq(jstr(r, "field"), field);
	ck_assert_msg(v->len == strlen(value) && memcmp(v->s, value,
	    v->len) == 0, "%s (%s): value [%s], want [%s]", tok, field, v->s,
	    value);
}

void
su_assert_item_error(const struct jv *item, const char *code)
{
	const struct jv *e = jget(item, "error");
	const char *msg = jstr(e, "message");

	ck_assert_msg(e != NULL && e->type == J_OBJ && e->n == 2 &&
	    msg != NULL && *msg != '\0' && jget(item, "field") == NULL &&
	    jget(item, "value") == NULL, "not {\"error\":{\"code\":…,"
	    "\"message\":…}}");
	ck_assert_pstr_eq(jstr(e, "code"), code);
}

void
su_assert_tok_error(const struct jv *doc, const char *tok, const char *code)
{
	const struct jv *r = su_result(doc, tok);

	ck_assert_msg(r->n == 3, "%s: {index, token, error}: %zu members",
	    tok, r->n);
	su_assert_item_error(r, code);
}
