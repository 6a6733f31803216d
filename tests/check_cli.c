/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_cli.c: the piivault command, driven as a user drives it: the real
 * binary (PIIVAULT_BIN), run in a fresh directory per test with a known
 * environment, its stdout, stderr and exit status captured.
 *
 * Each test's directory is made by tu_tmpdir under a directory of its
 * test case's own, and removed with tu_rmrf when the test passes; the test
 * case's directory, removed when the case is done, takes what a failed
 * test left behind.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pv.h"
#include "api.h"
#include "srvutil.h"
#include "testutil.h"

#ifndef PIIVAULT_BIN
#error "PIIVAULT_BIN must name the piivault binary"
#endif
#ifndef PIIVAULT_TEST_BIN
#error "PIIVAULT_TEST_BIN must name piivault-test (built with PV_TEST_HOOKS)"
#endif

/* What run_argv executes: PIIVAULT_BIN unless a test says otherwise. */
static const char *run_bin = PIIVAULT_BIN;

#define ARGS_MAX	16
#define TIMEOUT		60	/* seconds per test, for the sanitizer build */
#define ID_BUF		(VAULT_ID_STRLEN + 1)

/* What one run of the binary produced. */
struct run {
	int	 status;	/* exit status, or 128 + signal */
	char	*out;		/* NUL-terminated */
	size_t	 outlen;
	char	*err;
	size_t	 errlen;
};

/* The test case's directory (see su_case_setup). */
static void
case_setup(void)
{
	su_case_setup("cli");
}

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* Append what fd has to read to *buf; 0 at end of file. */
static int
drain(int fd, char **buf, size_t *len)
{
	char chunk[16384];
	ssize_t n;

	n = read(fd, chunk, sizeof(chunk));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 1;
	ck_assert_int_ge(n, 0);
	if (n == 0)
		return 0;
	ck_assert_ptr_nonnull(*buf = realloc(*buf, *len + (size_t)n + 1));
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return 1;
}

/*
 * Run the binary with argv[1..] = args, stdin = in[0..inlen), in the test
 * directory, with an environment holding only PIIVAULT_KDF_MEMORY_KIB,
 * the sanitizers' options from ours, and env (NULL-terminated "K=V"
 * strings, or NULL).  The child runs in a new session, so it has no
 * controlling terminal and can never prompt.
 */
static void
run_argv(struct run *r, const char *const *env, const void *in,
    size_t inlen, const char *const *args)
{
	struct su_exec x;
	int pin[2], pout[2], perr[2], st, open_fds;
	size_t off = 0;
	struct pollfd pfd[3];
	pid_t pid;

	memset(r, 0, sizeof(*r));
	su_exec_init(&x, args, env);
	/*
	 * su_exec_init puts PIIVAULT_KDF_MEMORY_KIB first, and getenv finds
	 * the first: a test's own value of it takes that place.
	 */
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		if (strncmp(env[i], "PIIVAULT_KDF_MEMORY_KIB=", 24) == 0)
			x.envp[0] = (char *)env[i];

	ck_assert_int_eq(pipe2(pin, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(pout, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(perr, O_CLOEXEC), 0);
	ck_assert_int_ge(pid = fork(), 0);
	if (pid == 0) {
		/* Only async-signal-safe calls from here to execve. */
		if (setsid() < 0 || chdir(su_tdir) != 0 ||
		    dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0 ||
		    dup2(perr[1], 2) < 0)
			_exit(126);
		execve(run_bin, x.argv, x.envp);
		_exit(127);
	}
	(void)close(pin[0]);
	(void)close(pout[1]);
	(void)close(perr[1]);
	ck_assert_int_eq(fcntl(pin[1], F_SETFL, O_NONBLOCK), 0);

	/* Feed stdin and collect stdout and stderr, all at once. */
	pfd[0].fd = inlen > 0 ? pin[1] : -1;
	pfd[0].events = POLLOUT;
	if (inlen == 0)
		(void)close(pin[1]);
	pfd[1].fd = pout[0];
	pfd[1].events = POLLIN;
	pfd[2].fd = perr[0];
	pfd[2].events = POLLIN;
	open_fds = 2 + (inlen > 0);
	while (open_fds > 0) {
		if (poll(pfd, 3, -1) < 0) {
			ck_assert_int_eq(errno, EINTR);
			continue;
		}
		if (pfd[0].fd >= 0 && pfd[0].revents != 0) {
			ssize_t n = write(pfd[0].fd, (const char *)in + off,
			    inlen - off);

			if (n > 0)
				off += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
			    off == inlen) {
				/* Done, or the child stopped reading. */
				(void)close(pfd[0].fd);
				pfd[0].fd = -1;
				open_fds--;
			}
		}
		if (pfd[1].fd >= 0 && pfd[1].revents != 0 &&
		    !drain(pfd[1].fd, &r->out, &r->outlen)) {
			(void)close(pfd[1].fd);
			pfd[1].fd = -1;
			open_fds--;
		}
		if (pfd[2].fd >= 0 && pfd[2].revents != 0 &&
		    !drain(pfd[2].fd, &r->err, &r->errlen)) {
			(void)close(pfd[2].fd);
			pfd[2].fd = -1;
			open_fds--;
		}
	}
	while (waitpid(pid, &st, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (r->out == NULL)
		ck_assert_ptr_nonnull(r->out = calloc(1, 1));
	if (r->err == NULL)
		ck_assert_ptr_nonnull(r->err = calloc(1, 1));
}

/* run_argv with the arguments as a NULL-terminated list. */
static void __attribute__((sentinel))
run(struct run *r, const char *const *env, const char *in, ...)
{
	const char *args[ARGS_MAX + 1];
	va_list ap;

	va_start(ap, in);
	su_args_va(args, ARGS_MAX, ap);
	va_end(ap);
	run_argv(r, env, in, in != NULL ? strlen(in) : 0, args);
}

/* s is exactly one line: text, then one newline at the end. */
static int
one_line(const char *s, size_t len)
{
	return len > 1 && s[len - 1] == '\n' && memchr(s, '\n', len - 1) ==
	    NULL;
}

#define ck_assert_exit(r, code) ck_assert_msg((r)->status == (code),	\
	"exit %d, want %d; stdout [%s] stderr [%s]", (r)->status,	\
	(code), (r)->out, (r)->err)

#define ck_assert_one_err_line(r) ck_assert_msg(one_line((r)->err,	\
	(r)->errlen), "stderr is not one line: [%s]", (r)->err)

/* The whole of a file; NULL if it does not exist. */
static char *
slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		ck_assert_int_eq(errno, ENOENT);
		return NULL;
	}
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_ptr_nonnull(buf = malloc((size_t)st.st_size + 1));
	n = read(fd, buf, (size_t)st.st_size);
	ck_assert_int_eq(n, st.st_size);
	buf[n] = '\0';
	(void)close(fd);
	*len = (size_t)n;
	return buf;
}

/* path holds exactly what was (want, wantlen) */
static void
assert_file_is(const char *path, const char *want, size_t wantlen)
{
	size_t len;
	char *now;

	ck_assert_msg((now = slurp(path, &len)) != NULL, "%s is gone", path);
	ck_assert_msg(len == wantlen && memcmp(now, want, len) == 0,
	    "%s changed", path);
	free(now);
}

static void
write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd;

	ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, mode), 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(close(fd), 0);
}

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* piivault init with extra arguments; must succeed. */
static void __attribute__((sentinel))
init_ok(const char *const *env, ...)
{
	const char *args[ARGS_MAX + 1] = { "init" };
	struct run r;
	va_list ap;

	va_start(ap, env);
	su_args_va(args + 1, ARGS_MAX - 1, ap);
	va_end(ap);
	run_argv(&r, env, NULL, 0, args);
	ck_assert_exit(&r, 0);
	ck_assert_msg(r.errlen == 0, "init: stderr [%s]", r.err);
	run_free(&r);
}

/* The live record count, from kms status --json. */
static unsigned long long
records(const char *const *env)
{
	unsigned long long n;
	struct run r;
	char *p;

	run(&r, env, NULL, "kms", "status", "--json", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(p = strstr(r.out, "\"records\":"));
	ck_assert_int_eq(sscanf(p, "\"records\":%llu", &n), 1);
	run_free(&r);
	return n;
}

/* A token or record id: prefix and 22 base64url characters. */
static int
id_valid(const char *s, size_t len, const char *prefix)
{
	static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";

	if (len != 4 + PV_B64URL16_LEN || memcmp(s, prefix, 4) != 0)
		return 0;
	for (size_t i = 4; i < len; i++)
		if (s[i] == '\0' || strchr(b64url, s[i]) == NULL)
			return 0;
	return 1;
}

/*
 * Copy the string after "key":" in json into out (an id or a token: no
 * escapes), checking it is a well-formed id with prefix.
 */
static void
json_id(const char *json, const char *key, const char *prefix,
    char out[static ID_BUF])
{
	char pat[80];
	const char *p, *q;

	ck_assert_int_lt(snprintf(pat, sizeof(pat), "\"%s\":\"", key),
	    (int)sizeof(pat));
	ck_assert_msg((p = strstr(json, pat)) != NULL, "no %s in [%s]", key,
	    json);
	p += strlen(pat);
	ck_assert_ptr_nonnull(q = strchr(p, '"'));
	ck_assert_msg(id_valid(p, (size_t)(q - p), prefix),
	    "%s: malformed id [%.*s]", key, (int)(q - p), p);
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
}

static const char record_json[] =
    "{\"fields\":{\"email\":\" Ada@B.example\",\"phone\":\"+1 555 0100\","
    "\"name\":\"Ada\"}}";

/* Put record_json; return its id and tokens. */
static void
put_record(const char *const *env, char id[static ID_BUF],
    char email[static ID_BUF], char phone[static ID_BUF],
    char name[static ID_BUF])
{
	char want[256];
	struct run r;

	run(&r, env, record_json, "put", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(r.errlen == 0, "put: stderr [%s]", r.err);
	ck_assert_msg(one_line(r.out, r.outlen), "put: [%s]", r.out);
	json_id(r.out, "id", "rec_", id);
	json_id(r.out, "email", "tok_", email);
	json_id(r.out, "phone", "tok_", phone);
	json_id(r.out, "name", "tok_", name);
	ck_assert_int_lt(snprintf(want, sizeof(want), "{\"id\":\"%s\","
	    "\"tokens\":{\"email\":\"%s\",\"phone\":\"%s\",\"name\":\"%s\"}}\n",
	    id, email, phone, name), (int)sizeof(want));
	ck_assert_str_eq(r.out, want);
	ck_assert_str_ne(email, phone);
	ck_assert_str_ne(email, name);
	ck_assert_str_ne(phone, name);
	run_free(&r);
}

/* Help and usage. */

static const char *const help_cmds[][4] = {
	{ "--help" },
	{ "-h" },
	{ "help" },
	{ "init", "--help" },
	{ "put", "--help" },
	{ "get", "--help" },
	{ "lookup", "--help" },
	{ "kms", "status", "--help" },
	{ "kms", "--help" },
};

START_TEST(test_help)
{
	const char *const *args = help_cmds[_i];
	struct run r;
	char want[64];

	run_argv(&r, NULL, NULL, 0, args);
	ck_assert_exit(&r, 0);
	ck_assert_msg(r.errlen == 0, "stderr [%s]", r.err);
	ck_assert_msg(strncmp(r.out, "usage: piivault ", 16) == 0,
	    "no usage: [%s]", r.out);
	if (args[1] != NULL) {
		/* "usage: piivault CMD" (for kms status: "kms status") */
		ck_assert_int_lt(snprintf(want, sizeof(want),
		    "usage: piivault %s%s%s", args[0],
		    strcmp(args[1], "--help") ? " " : "",
		    strcmp(args[1], "--help") ? args[1] : ""),
		    (int)sizeof(want));
		ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0,
		    "want [%s], got [%s]", want, r.out);
	} else {
		/* The full help lists every command. */
		ck_assert_ptr_nonnull(strstr(r.out, "  init "));
		ck_assert_ptr_nonnull(strstr(r.out, "  put "));
		ck_assert_ptr_nonnull(strstr(r.out, "  get "));
		ck_assert_ptr_nonnull(strstr(r.out, "  lookup "));
		ck_assert_ptr_nonnull(strstr(r.out, "  kms "));
	}
	/* --help opens nothing and creates nothing. */
	ck_assert(!exists("piivault-data"));
	ck_assert(!exists("piivault.key"));
	run_free(&r);
}
END_TEST

/*
 * --version and version: one line naming piivault's version and the
 * libraries it runs with, as loaded; the same line both ways.
 */
START_TEST(test_version)
{
	static const char *const forms[][3] = { { "--version" },
	    { "version" } };
	char want[256], lmdb[32];
	struct run r;

	vault_store_version(lmdb);
	ck_assert_int_lt(snprintf(want, sizeof(want), "piivault %s (OpenSSL "
	    "%s, LMDB %s, libmicrohttpd ", PV_VERSION, pv_crypto_version(),
	    lmdb), (int)sizeof(want));
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		run_argv(&r, NULL, NULL, 0, forms[i]);
		ck_assert_exit(&r, 0);
		ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0 &&
		    r.outlen > strlen(want) + 2 &&
		    strcmp(r.out + r.outlen - 2, ")\n") == 0 &&
		    strchr(r.out, '\n') == r.out + r.outlen - 1,
		    "%s printed [%s], want [%s...)]", forms[i][0], r.out, want);
		ck_assert(isdigit((unsigned char)r.out[strlen(want)]));
		run_free(&r);
	}
	run(&r, NULL, NULL, "version", "extra", NULL);
	ck_assert_exit(&r, 2);
	run_free(&r);
}
END_TEST

static void assert_hint_exists(const char *err);

static const struct {
	const char	*args[5];
	const char	*says;
} usage_errs[] = {
	{ { "frobnicate" }, "unknown command" },
	{ { "--bogus" }, "unknown option --bogus (see piivault --help)" },
	{ { "init", "--bogus" }, "unknown option" },
	{ { "put", "--frobnicate" }, "unknown option" },
	{ { "get", "-x", "tok_AAAAAAAAAAAAAAAAAAAAAA" }, "unknown option" },
	{ { "lookup", "--nope", "email", "a@b.example" }, "unknown option" },
	{ { "kms", "status", "--bogus" }, "unknown option" },
	{ { "kms", "frobnicate" }, "unknown subcommand" },
	{ { "get", "--data-dir" }, "missing value for --data-dir" },
	{ { "init", "extra" }, "unexpected argument" },
	{ { "lookup", "email" }, "expected" },
	{ { "get" }, "no token" },
};

START_TEST(test_usage_errors)
{
	struct run r;

	run_argv(&r, NULL, NULL, 0, usage_errs[_i].args);
	ck_assert_exit(&r, 2);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strncmp(r.err, "piivault: ", 10) == 0, "[%s]", r.err);
	ck_assert_msg(strstr(r.err, usage_errs[_i].says) != NULL,
	    "stderr [%s] does not say \"%s\"", r.err, usage_errs[_i].says);
	assert_hint_exists(r.err);
	ck_assert_uint_eq(r.outlen, 0);
	ck_assert(!exists("piivault-data"));
	ck_assert(!exists("piivault.key"));
	run_free(&r);
}
END_TEST

/* init. */

START_TEST(test_init_creates)
{
	uint8_t key[PV_KEY_LEN];
	struct stat st;
	struct run r;
	size_t len;
	char *k;

	run(&r, NULL, NULL, "init", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_uint_eq(r.errlen, 0);
	ck_assert_msg(one_line(r.out, r.outlen), "[%s]", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "piivault-data"));
	run_free(&r);

	ck_assert_int_eq(lstat("piivault-data", &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	ck_assert_int_eq(lstat("piivault-data/data.mdb", &st), 0);
	ck_assert_uint_eq(st.st_mode & 077, 0);

	ck_assert_int_eq(lstat("piivault.key", &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(st.st_size, PV_KEY_B64_LEN + 1);
	ck_assert_ptr_nonnull(k = slurp("piivault.key", &len));
	ck_assert_uint_eq(len, 45);
	ck_assert_int_eq(k[44], '\n');
	ck_assert_uint_eq(strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
	    "nopqrstuvwxyz0123456789+/="), 44);
	ck_assert_int_eq(pv_key_from_base64(key, k, 44), PV_OK);
	pv_cleanse(key, sizeof(key));
	pv_cleanse(k, len);
	free(k);

	/* The new vault opens and is empty. */
	ck_assert_uint_eq(records(NULL), 0);
}
END_TEST

START_TEST(test_init_twice)
{
	char *key, *data;
	size_t keylen, datalen;
	struct run r;

	init_ok(NULL, NULL);
	ck_assert_ptr_nonnull(key = slurp("piivault.key", &keylen));
	ck_assert_ptr_nonnull(data = slurp("piivault-data/data.mdb",
	    &datalen));

	run(&r, NULL, NULL, "init", NULL);
	ck_assert_int_ne(r.status, 0);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strstr(r.err, "key file ./piivault.key already exists")
	    != NULL, "[%s]", r.err);
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);
	assert_file_is("piivault.key", key, keylen);
	assert_file_is("piivault-data/data.mdb", data, datalen);

	/* A fresh key file, but the vault exists: no key file left. */
	run(&r, NULL, NULL, "init", "--key-file", "second.key", NULL);
	ck_assert_int_ne(r.status, 0);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strstr(r.err, "data directory ./piivault-data already "
	    "holds a vault") != NULL, "[%s]", r.err);
	run_free(&r);
	ck_assert_msg(!exists("second.key"), "init left second.key behind");
	assert_file_is("piivault.key", key, keylen);
	assert_file_is("piivault-data/data.mdb", data, datalen);

	/* The same with a passphrase root. */
	{
		const char *const env[] = { "PIIVAULT_PASSPHRASE=x", NULL };

		run(&r, env, NULL, "init", "--passphrase", NULL);
		ck_assert_int_ne(r.status, 0);
		ck_assert_one_err_line(&r);
		run_free(&r);
	}
	assert_file_is("piivault.key", key, keylen);
	assert_file_is("piivault-data/data.mdb", data, datalen);
	ck_assert_uint_eq(records(NULL), 0);
	free(key);
	free(data);
}
END_TEST

START_TEST(test_init_existing_key_file)
{
	static const char k[] =
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
	struct stat st;
	struct run r;

	write_file("piivault.key", k, sizeof(k) - 1, 0600);
	run(&r, NULL, NULL, "init", NULL);
	ck_assert_int_ne(r.status, 0);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strstr(r.err, "piivault.key") != NULL, "[%s]", r.err);
	run_free(&r);
	assert_file_is("piivault.key", k, sizeof(k) - 1);
	ck_assert_int_eq(lstat("piivault.key", &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert(!exists("piivault-data/data.mdb"));
}
END_TEST

/* A data directory that cannot be made: init leaves no key file. */
START_TEST(test_init_failure_leaves_nothing)
{
	struct run r;

	run(&r, NULL, NULL, "init", "--data-dir", "no/such/dir", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_msg(strstr(r.err, "piivault: init: ") != NULL, "[%s]",
	    r.err);
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);
	ck_assert_msg(!exists("piivault.key"), "init left its key file");
	ck_assert(!exists("no"));

	/* The retry, with a directory that can be made, works. */
	init_ok(NULL, "--data-dir", "dir", NULL);
}
END_TEST

/* put, get, lookup, kms status. */

START_TEST(test_put_get_lookup)
{
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF];
	char want[512], keys[1024];
	unsigned long long n, live, total;
	unsigned int ver;
	struct run r;
	char *p;

	init_ok(NULL, NULL);
	put_record(NULL, id, email, phone, name);

	/*
	 * get: a line per token, in argv order, as detokenize's items: the
	 * exact values under their field names; a token twice, twice.
	 */
	run(&r, NULL, NULL, "get", email, phone, name, email, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_uint_eq(r.errlen, 0);
	ck_assert_int_lt(snprintf(want, sizeof(want), "{\"index\":0,"
	    "\"token\":\"%s\",\"field\":\"email\",\"value\":\" Ada@B.example\"}"
	    "\n{\"index\":1,\"token\":\"%s\",\"field\":\"phone\","
	    "\"value\":\"+1 555 0100\"}\n{\"index\":2,\"token\":\"%s\","
	    "\"field\":\"name\",\"value\":\"Ada\"}\n{\"index\":3,"
	    "\"token\":\"%s\",\"field\":\"email\",\"value\":\" Ada@B.example\"}"
	    "\n", email, phone, name, email), (int)sizeof(want));
	ck_assert_str_eq(r.out, want);
	run_free(&r);

	/* lookup through the blind index, after normalization. */
	ck_assert_int_lt(snprintf(want, sizeof(want), "{\"matches\":[{\"id\":"
	    "\"%s\",\"token\":\"%s\"}]}\n", id, email), (int)sizeof(want));
	run(&r, NULL, NULL, "lookup", "email", "ada@b.example", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, want);
	run_free(&r);
	run(&r, NULL, NULL, "lookup", "email", "  ADA@b.Example ", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, want);
	run_free(&r);

	ck_assert_int_lt(snprintf(want, sizeof(want), "{\"matches\":[{\"id\":"
	    "\"%s\",\"token\":\"%s\"}]}\n", id, phone), (int)sizeof(want));
	run(&r, NULL, NULL, "lookup", "phone", "+15550100", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, want);
	run_free(&r);
	run(&r, NULL, NULL, "lookup", "phone", "+1 (555) 01-00", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, want);
	run_free(&r);

	run(&r, NULL, NULL, "lookup", "email", "bob@b.example", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "{\"matches\":[]}\n");
	run_free(&r);

	/* Not indexed, and not valid: exit 1, the value not echoed. */
	run(&r, NULL, NULL, "lookup", "name", "Ada", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);
	run(&r, NULL, NULL, "lookup", "email", "zq-not-an-email", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	ck_assert_ptr_null(strstr(r.err, "zq-not-an-email"));
	run_free(&r);

	/* kms status: one record, wrapped by KEK version 1. */
	run(&r, NULL, NULL, "kms", "status", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_int_eq(sscanf(r.out, "vault %*32[0-9a-f] format %u records "
	    "%llu", &ver, &n), 2);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_nonnull(p = strstr(r.out, "\nkek "));
	ck_assert_int_eq(sscanf(p + 1, "kek %u active %*s %*u %llu %llu", &ver,
	    &live, &total), 3);
	ck_assert_uint_eq(ver, 1);
	ck_assert_uint_eq(live, 1);
	ck_assert_uint_eq(total, 1);
	run_free(&r);

	run(&r, NULL, NULL, "kms", "status", "--json", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(one_line(r.out, r.outlen), "[%s]", r.out);
	ck_assert_msg(r.out[0] == '{' && r.out[r.outlen - 2] == '}', "[%s]",
	    r.out);
	ck_assert_int_eq(sscanf(r.out, "{\"vault_id\":\"%*32[0-9a-f]\","
	    "\"format\":1,\"records\":%llu,\"keys\":[%1023[^]]]}", &n, keys),
	    2);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_nonnull(strstr(keys, "{\"kind\":\"kek\",\"version\":1,"
	    "\"state\":\"active\","));
	ck_assert_ptr_nonnull(strstr(keys, "\"records\":1,"
	    "\"wrapped_total\":1}"));
	run_free(&r);

	/* A second record: its own id and tokens; both found, oldest first. */
	{
		char id2[ID_BUF], e2[ID_BUF], p2[ID_BUF], n2[ID_BUF];

		put_record(NULL, id2, e2, p2, n2);
		ck_assert_str_ne(id, id2);
		ck_assert_str_ne(email, e2);
		ck_assert_uint_eq(records(NULL), 2);
		ck_assert_int_lt(snprintf(want, sizeof(want), "{\"matches\":"
		    "[{\"id\":\"%s\",\"token\":\"%s\"},{\"id\":\"%s\","
		    "\"token\":\"%s\"}]}\n", id, email, id2, e2),
		    (int)sizeof(want));
		run(&r, NULL, NULL, "lookup", "email", "ada@b.example", NULL);
		ck_assert_exit(&r, 0);
		ck_assert_str_eq(r.out, want);
		run_free(&r);
	}
}
END_TEST

/* The lines of s (len bytes, each ending in '\n'). */
static size_t
count_lines(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += s[i] == '\n';
	ck_assert_msg(len == 0 || s[len - 1] == '\n', "[%s]", s);
	return n;
}

/*
 * put takes the API's record shape, one record a line: the good lines are
 * stored even when others are refused (as a batch is), each line answered
 * on its own line of stdout, in order, blank lines skipped.
 */
START_TEST(test_put_lines)
{
	static const char in[] =
	    "{\"fields\":{\"email\":\"zq-l1@b.example\"},"
	    "\"consent\":{\"marketing\":true},\"retention_days\":30}\n"
	    "\n"
	    "{\"fields\":{\"email\":\"zq-l3-bad\"}}\n"
	    "   \t\r\n"
	    "{\"fields\":{\"name\":\"Zq L5\",\"city\":\"Oslo\"}}\r\n"
	    "{\"fields\":{\"name\":\"zq-l6\"},\"colour\":\"red\"}\n"
	    "{\"fields\":{\"name\":\"Zq L7\"}}";	/* no final newline */
	char id1[ID_BUF], id5[ID_BUF], id7[ID_BUF], t1[ID_BUF], t5[ID_BUF];
	char t7[ID_BUF], want[1024];
	const char *p;
	struct run r;

	init_ok(NULL, NULL);
	run(&r, NULL, in, "put", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_uint_eq(count_lines(r.out, r.outlen), 5);
	json_id(r.out, "id", "rec_", id1);
	json_id(r.out, "email", "tok_", t1);
	ck_assert_ptr_nonnull(p = strchr(r.out, '\n'));
	{
		static const char e3[] = "{\"error\":{\"code\":"
		    "\"invalid_value\",\"message\":\"field email: not a valid "
		    "email address\"}}\n";

		ck_assert_msg(strncmp(p + 1, e3, strlen(e3)) == 0, "[%s]",
		    r.out);
	}
	ck_assert_ptr_nonnull(p = strchr(p + 1, '\n'));
	json_id(p + 1, "id", "rec_", id5);
	json_id(p + 1, "name", "tok_", t5);
	ck_assert_ptr_nonnull(strstr(p + 1, "\"city\":\"tok_"));
	ck_assert_ptr_nonnull(p = strchr(p + 1, '\n'));
	ck_assert_msg(strncmp(p + 1, "{\"error\":{\"code\":\"unknown_member\"",
	    strlen("{\"error\":{\"code\":\"unknown_member\"")) == 0, "[%s]",
	    r.out);
	ck_assert_ptr_nonnull(p = strchr(p + 1, '\n'));
	json_id(p + 1, "id", "rec_", id7);
	json_id(p + 1, "name", "tok_", t7);
	ck_assert_ptr_null(strstr(r.out, "zq-l3-bad"));
	ck_assert_ptr_null(strstr(r.out, "zq-l6"));
	/* stderr: the lines by number, never by content. */
	ck_assert_str_eq(r.err, "piivault: put: line 3: field email: not a "
	    "valid email address\npiivault: put: line 6: unknown json member: "
	    "record: unknown member \"colour\"\npiivault: put: 2 records "
	    "refused\n");
	run_free(&r);
	ck_assert_uint_eq(records(NULL), 3);

	/* What was stored reads back, in order. */
	run(&r, NULL, NULL, "get", t1, t5, t7, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_int_lt(snprintf(want, sizeof(want), "{\"index\":0,"
	    "\"token\":\"%s\",\"field\":\"email\",\"value\":"
	    "\"zq-l1@b.example\"}\n{\"index\":1,\"token\":\"%s\",\"field\":\"name\",\"value\":"
	    "\"Zq L5\"}\n{\"index\":2,\"token\":\"%s\",\"field\":\"name\","
	    "\"value\":\"Zq L7\"}\n", t1, t5, t7), (int)sizeof(want));
	ck_assert_str_eq(r.out, want);
	run_free(&r);

	/* Every line good: exit 0, one line each, nothing on stderr. */
	run(&r, NULL, "{\"fields\":{\"name\":\"A\"}}\n"
	    "{\"fields\":{\"name\":\"B\"}}\n", "put", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_uint_eq(r.errlen, 0);
	ck_assert_uint_eq(count_lines(r.out, r.outlen), 2);
	run_free(&r);
	ck_assert_uint_eq(records(NULL), 5);

	/* No input at all: nothing to do. */
	run(&r, NULL, "", "put", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);
}
END_TEST

/*
 * Bad input: exit 1; for each bad line, one error line on stdout (the
 * API's error object) and "line N: …" on stderr, neither with the value;
 * no change.
 */
enum { BIG_VALUE = 1, BIG_FIELDS, BIG_BODY };
#define PREC(f)	"{\"fields\":{" f "}}"
static const struct {
	const char	*what;
	const char	*json;		/* NULL: built by bad_body(big) */
	int		 big;
	const char	*secret;	/* must not come back; may be NULL */
	const char	*code;		/* of the (each) error line */
	const char	*msg;		/* its message exactly, or NULL */
	int		 lines;		/* error lines; 0: one */
} bad_puts[] = {
	{ "malformed", PREC("\"name\":\"zq-mal-5521\" \"x\""), 0,
	    "zq-mal-5521", "invalid_json", NULL, 0 },
	{ "unclosed object", "{\"fields\":{\"name\":\"zq-open-5521\"", 0,
	    "zq-open-5521", "invalid_json", NULL, 0 },
	/* jansson quotes the token it stopped at when it is short. */
	{ "truncated body", "{\"fields\":{\"email\":\"zq5521@b.example", 0,
	    "zq5521", "invalid_json", NULL, 0 },
	{ "raw newline in a value", PREC("\"address\":\"zq-ml-5521\n"
	    "London\""), 0, "zq-ml-5521", "invalid_json", NULL, 2 },
	{ "not an object", "[\"zq-arr-5521\"]", 0, "zq-arr-5521",
	    "invalid_json", NULL, 0 },
	{ "the shape before v1", "{\"email\":\"zq-old-5521@b.example\"}", 0,
	    "zq-old-5521", "unknown_member", "unknown json member: record: "
	    "unknown member \"email\"", 0 },
	{ "field Email", PREC("\"Email\":\"zq-up-5521@b.example\""), 0,
	    "zq-up-5521", "invalid_field", "field at index 0: name must "
	    "match [a-z][a-z0-9_]{0,63}", 0 },
	{ "field 1x", PREC("\"name\":\"Ada\",\"1x\":\"zq-digit-5521\""), 0,
	    "1x", "invalid_field", "field at index 1: name must match "
	    "[a-z][a-z0-9_]{0,63}", 0 },
	{ "number value", PREC("\"name\":9876543210"), 0, "9876543210",
	    "invalid_value", "invalid field value: field name: value must "
	    "be a string", 0 },
	{ "invalid email", PREC("\"email\":\"not-an-email\""), 0,
	    "not-an-email", "invalid_value",
	    "field email: not a valid email address", 0 },
	{ "invalid phone", PREC("\"phone\":\"abc\""), 0, "abc",
	    "invalid_value", "field phone: not a valid phone number", 0 },
	{ "empty value", PREC("\"name\":\"\""), 0, NULL, "invalid_value",
	    "field name: empty; a value has at least 1 byte", 0 },
	{ "empty object", "{}", 0, NULL, "invalid_value", NULL, 0 },
	{ "no fields", PREC(""), 0, NULL, "invalid_value",
	    "a record needs fields", 0 },
	{ "4097-byte value", NULL, BIG_VALUE, "qqqqqqqqqqqqqqqq", "too_large",
	    "field name: longer than 4096 bytes", 0 },
	{ "65 fields", NULL, BIG_FIELDS, "zq65v", "too_large", NULL, 0 },
	{ "line over 1 MiB", NULL, BIG_BODY, "yyyyyyyyyyyyyyyy", "too_large",
	    NULL, 0 },
};

/* {"fields":{"name":"<n bytes of c>"}} */
static char *
long_value(size_t n, char c)
{
	char *s;

	ck_assert_ptr_nonnull(s = malloc(n + 23));
	memcpy(s, "{\"fields\":{\"name\":\"", 19);
	memset(s + 19, c, n);
	memcpy(s + 19 + n, "\"}}", 4);
	return s;
}

/* The bodies too big to write out. */
static char *
bad_body(int big)
{
	struct pv_buf b;
	char *s;

	switch (big) {
	case BIG_VALUE:
		return long_value(PV_VALUE_MAX + 1, 'q');
	case BIG_BODY:
		/* Valid JSON on one line of API_BODY_MAX + 1 bytes. */
		s = long_value(API_BODY_MAX + 1 - 22, 'y');
		ck_assert_uint_eq(strlen(s), API_BODY_MAX + 1);
		return s;
	case BIG_FIELDS:
		pv_buf_init(&b, 1u << 16);
		ck_assert_int_eq(pv_buf_add(&b, "{\"fields\":{", 11), PV_OK);
		for (int j = 0; j < PV_FIELDS_MAX + 1; j++)
			ck_assert_int_eq(pv_buf_printf(&b, "%s\"f%d\":"
			    "\"zq65v%d\"", j ? "," : "", j, j), PV_OK);
		ck_assert_int_eq(pv_buf_add(&b, "}}", 2), PV_OK);
		ck_assert_ptr_nonnull(s = strdup(b.p));
		pv_buf_cleanup(&b);
		return s;
	default:
		ck_abort_msg("no body %d", big);
	}
	return NULL;
}

START_TEST(test_put_bad_input)
{
	char id[ID_BUF], t1[ID_BUF], t2[ID_BUF], t3[ID_BUF], *body, *data;
	char want[512];
	size_t datalen, lines = bad_puts[_i].lines ?
	    (size_t)bad_puts[_i].lines : 1;
	struct run r;

	init_ok(NULL, NULL);
	put_record(NULL, id, t1, t2, t3);
	ck_assert_ptr_nonnull(data = slurp("piivault-data/data.mdb",
	    &datalen));
	body = bad_puts[_i].json != NULL ? strdup(bad_puts[_i].json) :
	    bad_body(bad_puts[_i].big);
	ck_assert_ptr_nonnull(body);

	run(&r, NULL, body, "put", NULL);
	ck_assert_msg(r.status == 1, "%s: exit %d, stdout [%s] stderr [%.200s]",
	    bad_puts[_i].what, r.status, r.out, r.err);
	/* A line per bad line, then the count. */
	ck_assert_msg(count_lines(r.err, r.errlen) == lines + 1,
	    "%s: stderr [%.300s]", bad_puts[_i].what, r.err);
	ck_assert_msg(strncmp(r.err, "piivault: put: line 1: ", 23) == 0,
	    "[%s]", r.err);
	ck_assert_int_lt(snprintf(want, sizeof(want), "piivault: put: %zu "
	    "record%s refused\n", lines, lines == 1 ? "" : "s"),
	    (int)sizeof(want));
	ck_assert_msg(r.errlen > strlen(want) && strcmp(r.err + r.errlen -
	    strlen(want), want) == 0, "[%s]", r.err);
	ck_assert_msg(count_lines(r.out, r.outlen) == lines,
	    "%s: stdout [%.300s]", bad_puts[_i].what, r.out);
	ck_assert_msg(bad_puts[_i].secret == NULL ||
	    (strstr(r.err, bad_puts[_i].secret) == NULL &&
	    strstr(r.out, bad_puts[_i].secret) == NULL),
	    "%s: the value came back: [%.300s] [%.300s]", bad_puts[_i].what,
	    r.out, r.err);
	/* stdout: the API's error object, with its message. */
	ck_assert_int_lt(snprintf(want, sizeof(want), "{\"error\":{\"code\":"
	    "\"%s\",\"message\":\"", bad_puts[_i].code), (int)sizeof(want));
	ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "%s: [%s]",
	    bad_puts[_i].what, r.out);
	if (bad_puts[_i].msg != NULL) {
		char esc[256], line[512];
		size_t k = 0;

		/* The message as JSON has it: quotes escaped. */
		for (const char *m = bad_puts[_i].msg; *m != '\0' &&
		    k + 2 < sizeof(esc); m++) {
			if (*m == '"')
				esc[k++] = '\\';
			esc[k++] = *m;
		}
		esc[k] = '\0';
		ck_assert_int_lt(snprintf(line, sizeof(line), "%s%s\"}}\n",
		    want, esc), (int)sizeof(line));
		ck_assert_str_eq(r.out, line);
		ck_assert_int_lt(snprintf(line, sizeof(line), "piivault: put: "
		    "line 1: %s\n", bad_puts[_i].msg), (int)sizeof(line));
		ck_assert_msg(strncmp(r.err, line, strlen(line)) == 0,
		    "[%s], want [%s]", r.err, line);
	}
	run_free(&r);

	assert_file_is("piivault-data/data.mdb", data, datalen);
	ck_assert_uint_eq(records(NULL), 1);
	free(data);
	free(body);
}
END_TEST

/* get. */

START_TEST(test_get_unknown_and_malformed)
{
	static const char unknown[] = "tok_AAAAAAAAAAAAAAAAAAAAAA";
	static const char nf[] = "\"error\":{\"code\":\"not_found\","
	    "\"message\":\"no such token\"}}";
	static const char bad[] = "\"error\":{\"code\":\"invalid_token\","
	    "\"message\":\"not a token: tok_ and 22 base64url characters\"}}";
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF], want[512];
	struct run r;

	init_ok(NULL, NULL);
	put_record(NULL, id, email, phone, name);

	run(&r, NULL, NULL, "get", unknown, NULL);
	ck_assert_exit(&r, 1);
	ck_assert_int_lt(snprintf(want, sizeof(want), "{\"index\":0,"
	    "\"token\":\"%s\",%s\n", unknown, nf), (int)sizeof(want));
	ck_assert_str_eq(r.out, want);
	ck_assert_one_err_line(&r);
	run_free(&r);

	/* One good, one unknown: both answered, in order, exit 1. */
	run(&r, NULL, NULL, "get", name, unknown, NULL);
	ck_assert_exit(&r, 1);
	ck_assert_int_lt(snprintf(want, sizeof(want), "{\"index\":0,"
	    "\"token\":\"%s\",\"field\":\"name\",\"value\":\"Ada\"}\n"
	    "{\"index\":1,\"token\":\"%s\",%s\n", name, unknown, nf),
	    (int)sizeof(want));
	ck_assert_str_eq(r.out, want);
	ck_assert_one_err_line(&r);
	run_free(&r);

	/*
	 * Malformed: too short, a bad character, a bad prefix, an email
	 * given by mistake: invalid_token, and the string never echoed.
	 */
	{
		static const char *const mal[] = { "tok_short",
		    "tok_AAAAAAAAAAAAAAAAAAAAA!", "xyz_AAAAAAAAAAAAAAAAAAAAAA",
		    "zq-mistaken-7710@b.example" };

		for (size_t i = 0; i < sizeof(mal) / sizeof(mal[0]); i++) {
			run(&r, NULL, NULL, "get", mal[i], NULL);
			ck_assert_exit(&r, 1);
			ck_assert_int_lt(snprintf(want, sizeof(want),
			    "{\"index\":0,%s\n", bad), (int)sizeof(want));
			ck_assert_str_eq(r.out, want);
			ck_assert_ptr_null(strstr(r.err, mal[i]));
			run_free(&r);
		}
	}

	/* A record id is no token, and reveals nothing. */
	run(&r, NULL, NULL, "get", id, NULL);
	ck_assert_exit(&r, 1);
	ck_assert_int_lt(snprintf(want, sizeof(want), "{\"index\":0,%s\n",
	    bad), (int)sizeof(want));
	ck_assert_str_eq(r.out, want);
	run_free(&r);

	/* The token with its domain prefix swapped is no record id. */
	{
		char swapped[ID_BUF];

		memcpy(swapped, "tok_", 4);
		memcpy(swapped + 4, id + 4, 23);
		run(&r, NULL, NULL, "get", swapped, NULL);
		ck_assert_exit(&r, 1);
		ck_assert_ptr_null(strstr(r.out, "\"value\""));
		run_free(&r);
	}
}
END_TEST

/* Key file rules. */

static const mode_t bad_modes[] = { 0644, 0640, 0604, 0660 };

START_TEST(test_key_file_mode)
{
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF];
	const char *what;
	struct run r;

	init_ok(NULL, NULL);
	put_record(NULL, id, email, phone, name);
	ck_assert_int_eq(chmod("piivault.key", bad_modes[_i]), 0);
	for (int i = 0; i < 4; i++) {
		switch (i) {
		case 0:
			what = "put";
			run(&r, NULL, record_json, "put", NULL);
			break;
		case 1:
			what = "get";
			run(&r, NULL, NULL, "get", email, NULL);
			break;
		case 2:
			what = "lookup";
			run(&r, NULL, NULL, "lookup", "email", "ada@b.example",
			    NULL);
			break;
		default:
			what = "kms status";
			run(&r, NULL, NULL, "kms", "status", NULL);
			break;
		}
		ck_assert_msg(r.status == 1, "%s, mode %o: exit %d", what,
		    bad_modes[_i], r.status);
		ck_assert_one_err_line(&r);
		ck_assert_msg(strstr(r.err, "piivault.key") != NULL &&
		    strstr(r.err, "group or others") != NULL,
		    "%s: [%s]", what, r.err);
		ck_assert_msg(r.outlen == 0, "%s: [%s]", what, r.out);
		run_free(&r);
	}
	ck_assert_int_eq(chmod("piivault.key", 0600), 0);
	ck_assert_uint_eq(records(NULL), 1);
}
END_TEST

START_TEST(test_key_file_bad_content)
{
	static const char *const bad[] = {
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",	/* 43 */
		"this is no key, just some garbage text!!!!!\n",	/* 43 */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
		"",
	};
	struct run r;

	init_ok(NULL, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file("piivault.key", bad[i], strlen(bad[i]), 0600);
		run(&r, NULL, NULL, "kms", "status", NULL);
		ck_assert_msg(r.status == 1, "key %zu: exit %d", i, r.status);
		ck_assert_one_err_line(&r);
		ck_assert_msg(strstr(r.err, "key file ./piivault.key does not "
		    "hold one base64 256-bit key") != NULL, "key %zu: [%s]", i,
		    r.err);
		run_free(&r);
	}
}
END_TEST

START_TEST(test_key_file_wrong_key)
{
	char *data, *key;
	size_t datalen, keylen;
	struct run r;

	init_ok(NULL, NULL);
	ck_assert_int_eq(mkdir("other", 0700), 0);
	init_ok(NULL, "--data-dir", "other/data", "--key-file",
	    "other/root.key", NULL);
	ck_assert_ptr_nonnull(data = slurp("piivault-data/data.mdb",
	    &datalen));
	ck_assert_ptr_nonnull(key = slurp("piivault.key", &keylen));

	run(&r, NULL, NULL, "kms", "status", "--key-file", "other/root.key",
	    NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strstr(r.err, "wrong root key") != NULL, "[%s]", r.err);
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);

	run(&r, NULL, record_json, "put", "--key-file", "other/root.key",
	    NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strstr(r.err, "wrong root key") != NULL, "[%s]", r.err);
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);

	/* The other key file given as the default one, too. */
	ck_assert_int_eq(rename("piivault.key", "saved.key"), 0);
	ck_assert_int_eq(link("other/root.key", "piivault.key"), 0);
	run(&r, NULL, NULL, "lookup", "email", "ada@b.example", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_msg(strstr(r.err, "wrong root key") != NULL, "[%s]", r.err);
	run_free(&r);
	ck_assert_int_eq(unlink("piivault.key"), 0);
	ck_assert_int_eq(rename("saved.key", "piivault.key"), 0);

	assert_file_is("piivault-data/data.mdb", data, datalen);
	assert_file_is("piivault.key", key, keylen);
	ck_assert_uint_eq(records(NULL), 0);
	free(data);
	free(key);
}
END_TEST

START_TEST(test_key_file_missing)
{
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF];
	struct run r;

	init_ok(NULL, NULL);
	put_record(NULL, id, email, phone, name);
	ck_assert_int_eq(rename("piivault.key", "elsewhere.key"), 0);

	run(&r, NULL, NULL, "get", email, NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strstr(r.err, "piivault.key") != NULL, "[%s]", r.err);
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);
	run(&r, NULL, NULL, "kms", "status", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	run_free(&r);
	/* Not re-created behind our back. */
	ck_assert(!exists("piivault.key"));
}
END_TEST

/* A symbolic link is not the key file (O_NOFOLLOW). */
START_TEST(test_key_file_symlink)
{
	struct run r;

	init_ok(NULL, NULL);
	ck_assert_int_eq(rename("piivault.key", "real.key"), 0);
	ck_assert_int_eq(symlink("real.key", "piivault.key"), 0);
	run(&r, NULL, NULL, "kms", "status", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strstr(r.err, "piivault.key") != NULL, "[%s]", r.err);
	run_free(&r);
	run(&r, NULL, NULL, "kms", "status", "--key-file", "real.key", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
}
END_TEST

/* Where the vault and key file are. */

START_TEST(test_dir_options)
{
	char name[ID_BUF];
	struct stat st;
	struct run r;

	ck_assert_int_eq(mkdir("sub", 0700), 0);
	init_ok(NULL, "--data-dir", "sub/data", "--key-file", "sub/root.key",
	    NULL);
	ck_assert_int_eq(lstat("sub/data/data.mdb", &st), 0);
	ck_assert_int_eq(lstat("sub/data", &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	ck_assert_int_eq(lstat("sub/root.key", &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(st.st_size, 45);
	ck_assert(!exists("piivault-data"));
	ck_assert(!exists("piivault.key"));

	/* Without the options there is no vault here. */
	run(&r, NULL, NULL, "kms", "status", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	run_free(&r);

	run(&r, NULL, record_json, "put", "--data-dir", "sub/data",
	    "--key-file", "sub/root.key", NULL);
	ck_assert_exit(&r, 0);
	json_id(r.out, "name", "tok_", name);
	run_free(&r);
	run(&r, NULL, NULL, "get", "--data-dir", "sub/data", "--key-file",
	    "sub/root.key", name, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "\"value\":\"Ada\""));
	run_free(&r);
}
END_TEST

START_TEST(test_dir_env)
{
	const char *const env[] = { "PIIVAULT_DATA_DIR=envsub/data",
	    "PIIVAULT_KEY_FILE=envsub/root.key", NULL };
	const char *const env_data_only[] = { "PIIVAULT_DATA_DIR=envsub/data",
	    NULL };
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF];
	struct stat st;
	struct run r;

	ck_assert_int_eq(mkdir("envsub", 0700), 0);
	init_ok(env, NULL);
	ck_assert_int_eq(lstat("envsub/data/data.mdb", &st), 0);
	ck_assert_int_eq(lstat("envsub/root.key", &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert(!exists("piivault-data"));
	ck_assert(!exists("piivault.key"));

	put_record(env, id, email, phone, name);
	run(&r, env, NULL, "get", email, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "\" Ada@B.example\""));
	run_free(&r);
	ck_assert_uint_eq(records(env), 1);

	/* The key file falls back to ./piivault.key, which is absent. */
	run(&r, env_data_only, NULL, "kms", "status", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_msg(strstr(r.err, "piivault.key") != NULL, "[%s]", r.err);
	run_free(&r);

	/* An option beats the environment. */
	run(&r, env_data_only, NULL, "kms", "status", "--key-file",
	    "envsub/root.key", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	run(&r, env, NULL, "kms", "status", "--data-dir", "nowhere", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_msg(strstr(r.err, "nowhere") != NULL, "[%s]", r.err);
	run_free(&r);
}
END_TEST

/* Passphrase vaults. */

START_TEST(test_passphrase)
{
	const char *const good[] = { "PIIVAULT_PASSPHRASE=correct-horse",
	    NULL };
	const char *const bad[] = { "PIIVAULT_PASSPHRASE=correct-horsf",
	    NULL };
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF];
	struct run r;

	init_ok(good, "--passphrase", NULL);
	ck_assert(!exists("piivault.key"));
	ck_assert(exists("piivault-data/data.mdb"));

	put_record(good, id, email, phone, name);
	run(&r, good, NULL, "get", phone, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "\"value\":\"+1 555 0100\""));
	run_free(&r);
	ck_assert_uint_eq(records(good), 1);

	run(&r, bad, NULL, "get", phone, NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strstr(r.err, "wrong root key or passphrase") != NULL,
	    "[%s]", r.err);
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);

	/* No passphrase and no terminal to ask on. */
	run(&r, NULL, NULL, "kms", "status", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);
	run(&r, NULL, record_json, "put", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	run_free(&r);
	ck_assert_uint_eq(records(good), 1);

	/* A passphrase vault ignores a key file. */
	ck_assert(!exists("piivault.key"));
}
END_TEST

/*
 * No passphrase at all: init refuses; once there is one, init works: the
 * failed attempt left nothing behind that the retry trips over.
 */
START_TEST(test_passphrase_init_retry)
{
	const char *const good[] = { "PIIVAULT_PASSPHRASE=correct-horse",
	    NULL };
	struct run r;

	run(&r, NULL, NULL, "init", "--passphrase", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strstr(r.err, "passphrase") != NULL, "[%s]", r.err);
	run_free(&r);
	ck_assert(!exists("piivault.key"));

	run(&r, good, NULL, "init", "--passphrase", NULL);
	ck_assert_msg(r.status == 0, "retry after a failed init: exit %d, "
	    "stderr [%s]", r.status, r.err);
	run_free(&r);
	ck_assert_uint_eq(records(good), 0);
}
END_TEST

/* Nothing stored in the clear. */

START_TEST(test_no_plaintext_at_rest)
{
	static const char rec[] = "{\"fields\":{"
	    "\"name\":\"zq-unique-name-7341\","
	    "\"email\":\"zq.unique.7341@mail.example\","
	    "\"phone\":\"+44 20 7946 0734\"}}";
	static const char *const values[] = { "zq-unique-name-7341",
	    "zq.unique.7341@mail.example", "+44 20 7946 0734",
	    "+442079460734" };
	uint8_t key[PV_KEY_LEN];
	size_t len;
	struct run r;
	char *k;

	init_ok(NULL, NULL);
	run(&r, NULL, rec, "put", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		ck_assert_msg(!tu_dir_contains("piivault-data", values[i],
		    strlen(values[i])), "\"%s\" stored in the clear",
		    values[i]);

	/* Nor the root key, in either form. */
	ck_assert_ptr_nonnull(k = slurp("piivault.key", &len));
	ck_assert_int_eq(pv_key_from_base64(key, k, PV_KEY_B64_LEN), PV_OK);
	ck_assert(!tu_dir_contains("piivault-data", k, PV_KEY_B64_LEN));
	ck_assert(!tu_dir_contains("piivault-data", key, sizeof(key)));
	pv_cleanse(key, sizeof(key));
	pv_cleanse(k, len);
	free(k);

	/* The search does find what is there: a control. */
	write_file("piivault-data/control", "xx zq-unique-name-7341 xx", 25,
	    0600);
	ck_assert(tu_dir_contains("piivault-data", "zq-unique-name-7341", 19));
}
END_TEST

/* The test clock: only piivault-test has it (PV_TEST_HOOKS). */

/* One record with retention_days 1, stored through the vault API. */
static void
put_retained_record(void)
{
	static const struct vault_field f = { "name", 4, "zq-retained-3310",
	    16 };
	const struct vault_record_in in = { &f, 1, 0, 1 };
	char tok[1][VAULT_ID_STRLEN + 1];
	struct vault_put_result res = { PV_OK, "", tok, "" };
	struct vault_opts o;
	struct vault *v;

	memset(&o, 0, sizeof(o));
	o.data_dir = "piivault-data";
	o.unlock.key_file = "piivault.key";
	ck_assert_int_eq(vault_open(&o, &v), PV_OK);
	ck_assert_int_eq(vault_put(v, &in, 1, &res), PV_OK);
	ck_assert_int_eq(res.status, PV_OK);
	vault_close(v);
}

/*
 * piivault, as the README builds it, ignores PIIVAULT_FAKE_NOW: a record
 * kept one day is not swept with the variable a century ahead.  The same
 * run of piivault-test, which reads the variable, does sweep it: the
 * control that shows the variable would have moved the clock.
 */
START_TEST(test_fake_now_release)
{
	char env0[64];
	const char *const env[] = { env0, NULL };
	struct run r;

	ck_assert_int_lt(snprintf(env0, sizeof(env0), "PIIVAULT_FAKE_NOW=%llu",
	    (unsigned long long)time(NULL) + 100ull * 365 * 86400),
	    (int)sizeof(env0));
	init_ok(NULL, NULL);
	put_retained_record();
	ck_assert_uint_eq(records(NULL), 1);

	run(&r, env, NULL, "retention", "sweep", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "shredded 0 records past their retention "
	    "date; 0 held\n");
	run_free(&r);
	ck_assert_uint_eq(records(env), 1);

	/* A dry run says what it would shred, as such, and shreds nothing. */
	run_bin = PIIVAULT_TEST_BIN;
	run(&r, env, NULL, "retention", "sweep", "--dry-run", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "would shred 1 records past their retention "
	    "date; 0 held\n");
	run_free(&r);
	run(&r, env, NULL, "retention", "sweep", "--json", "--dry-run", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "{\"dry_run\":true,\"would_shred\":1,"
	    "\"held\":0}\n");
	run_free(&r);
	ck_assert_uint_eq(records(NULL), 1);

	run(&r, env, NULL, "retention", "sweep", "--json", NULL);
	run_bin = PIIVAULT_BIN;
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "{\"dry_run\":false,\"shredded\":1,"
	    "\"held\":0}\n");
	run_free(&r);
	ck_assert_uint_eq(records(NULL), 0);
}
END_TEST

/* Numeric environment knobs: a bad value is exit 2, naming it. */
static const char *const bad_numbers[] = { "12abc", "", "-1", " 12",
    "+12", "0x10", "99999999999999999999999", "18446744073709551616" };
static const struct {
	const char	*var;
	int		 hooks;		/* only piivault-test reads it */
	const char	*too_big;	/* in range for strtoull, not for it */
	const char	*too_small;
} knobs[] = {
	{ "PIIVAULT_KDF_MEMORY_KIB", 0, "4294967296", "8191" },
	{ "PIIVAULT_MAP_SIZE_MIB", 0, "16777217", "0" },
	{ "PIIVAULT_FAKE_NOW", 1, "253402300800", "0" },
};

START_TEST(test_env_numbers)
{
	const char *var = knobs[_i].var;
	char val[96], *data;
	const char *const env[] = { val, NULL };
	size_t datalen, nbad = sizeof(bad_numbers) / sizeof(bad_numbers[0]);
	struct run r;

	init_ok(NULL, NULL);
	ck_assert_ptr_nonnull(data = slurp("piivault-data/data.mdb",
	    &datalen));
	if (knobs[_i].hooks)
		run_bin = PIIVAULT_TEST_BIN;
	for (size_t i = 0; i < nbad + 2; i++) {
		const char *bad = i < nbad ? bad_numbers[i] : i == nbad ?
		    knobs[_i].too_big : knobs[_i].too_small;

		ck_assert_int_lt(snprintf(val, sizeof(val), "%s=%s", var, bad),
		    (int)sizeof(val));
		run(&r, env, record_json, "put", NULL);
		ck_assert_msg(r.status == 2, "%s: exit %d; stderr [%s]", val,
		    r.status, r.err);
		ck_assert_one_err_line(&r);
		ck_assert_msg(strstr(r.err, var) != NULL, "%s: stderr [%s]",
		    val, r.err);
		ck_assert_uint_eq(r.outlen, 0);
		run_free(&r);
	}
	run_bin = PIIVAULT_BIN;
	assert_file_is("piivault-data/data.mdb", data, datalen);
	free(data);
	ck_assert_uint_eq(records(NULL), 0);
}
END_TEST

/* Good values still work. */
START_TEST(test_env_numbers_good)
{
	const char *const env[] = { "PIIVAULT_MAP_SIZE_MIB=64",
	    "PIIVAULT_KDF_MEMORY_KIB=8192", NULL };
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF];
	const char *const pass[] = { "PIIVAULT_PASSPHRASE=correct-horse",
	    "PIIVAULT_KDF_MEMORY_KIB=16384", NULL };
	struct run r;

	init_ok(env, NULL);
	put_record(env, id, email, phone, name);
	ck_assert_uint_eq(records(env), 1);
	init_ok(pass, "--passphrase", "--data-dir", "pp", NULL);
	run(&r, pass, NULL, "kms", "status", "--data-dir", "pp", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	/* piivault-test takes a good clock. */
	{
		const char *const now[] = { "PIIVAULT_FAKE_NOW=1700000000",
		    NULL };

		run_bin = PIIVAULT_TEST_BIN;
		run(&r, now, NULL, "kms", "status", NULL);
		run_bin = PIIVAULT_BIN;
		ck_assert_exit(&r, 0);
		run_free(&r);
	}
}
END_TEST

/* API keys: options a role would ignore are refused. */

static const struct {
	const char	*role;
	const char	*opt, *val;
	int		 refused;
} role_opts[] = {
	{ "admin", "--fields", "email", 1 },
	{ "admin", "--fields", "*", 1 },
	{ "admin", "--reveal", "masked", 1 },
	{ "admin", "--reveal", "plain", 1 },
	{ "admin", "--purposes", "research", 1 },
	{ "auditor", "--fields", "email", 1 },
	{ "auditor", "--reveal", "masked", 1 },
	{ "auditor", "--purposes", "research", 1 },
	{ "writer", "--reveal", "masked", 1 },
	{ "writer", "--reveal", "plain", 1 },
	{ "writer", "--fields", "email", 0 },
	{ "writer", "--purposes", "research", 0 },
	{ "reader", "--fields", "email", 0 },
	{ "reader", "--purposes", "research", 0 },
	{ "reader", "--reveal", "masked", 0 },
};

/* apikey list --json, whole. */
static char *
key_list_json(void)
{
	struct run r;
	char *out;

	run(&r, NULL, NULL, "apikey", "list", "--json", NULL);
	ck_assert_exit(&r, 0);
	out = r.out;
	r.out = NULL;
	run_free(&r);
	return out;
}

START_TEST(test_apikey_role_options)
{
	const char *role = role_opts[_i].role, *opt = role_opts[_i].opt;
	char want[256], *list;
	struct run r;

	init_ok(NULL, NULL);
	run(&r, NULL, NULL, "apikey", "create", "--name", "k1", "--role", role,
	    opt, role_opts[_i].val, NULL);
	if (role_opts[_i].refused) {
		ck_assert_msg(r.status == 2, "%s %s %s: exit %d, stderr [%s]",
		    role, opt, role_opts[_i].val, r.status, r.err);
		ck_assert_one_err_line(&r);
		ck_assert_msg(strstr(r.err, opt) != NULL && strstr(r.err,
		    role) != NULL, "[%s] names neither %s nor %s", r.err, opt,
		    role);
		ck_assert_uint_eq(r.outlen, 0);
		run_free(&r);
		list = key_list_json();
		ck_assert_str_eq(list, "[]\n");
		free(list);
		return;
	}
	ck_assert_exit(&r, 0);
	ck_assert_msg(strncmp(r.out, "pvk_", 4) == 0, "[%s]", r.out);
	run_free(&r);
	list = key_list_json();
	if (strcmp(opt, "--fields") == 0)
		(void)snprintf(want, sizeof(want), "\"fields\":[\"%s\"]",
		    role_opts[_i].val);
	else if (strcmp(opt, "--purposes") == 0)
		(void)snprintf(want, sizeof(want), "\"purposes\":[\"%s\"]",
		    role_opts[_i].val);
	else
		(void)snprintf(want, sizeof(want), "\"reveal\":\"%s\"",
		    role_opts[_i].val);
	ck_assert_msg(strstr(list, want) != NULL, "no %s in [%s]", want, list);
	free(list);
}
END_TEST

/* The issue's case: every restriction on an admin key, refused at once. */
START_TEST(test_apikey_admin_restricted)
{
	char *list;
	struct run r;

	init_ok(NULL, NULL);
	run(&r, NULL, NULL, "apikey", "create", "--name", "adm", "--role",
	    "admin", "--fields", "email", "--reveal", "masked", "--purposes",
	    "research", NULL);
	ck_assert_exit(&r, 2);
	ck_assert_one_err_line(&r);
	ck_assert_ptr_nonnull(strstr(r.err, "admin"));
	run_free(&r);
	/* Without them: created, and listed with no purposes to claim. */
	run(&r, NULL, NULL, "apikey", "create", "--name", "adm", "--role",
	    "admin", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	run(&r, NULL, NULL, "apikey", "create", "--name", "aud", "--role",
	    "auditor", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	list = key_list_json();
	ck_assert_msg(strstr(list, "\"name\":\"adm\",\"role\":\"admin\"") !=
	    NULL, "[%s]", list);
	ck_assert_msg(strstr(list, "\"purposes\":[],\"fields\":[\"*\"]") !=
	    NULL, "[%s]", list);
	free(list);
}
END_TEST

/* A key bound to a TLS client certificate. */
#define CERT_HEX "00a1b2c3d4e5f60718293a4b5c6d7e8f" \
	"ffeeddccbbaa99887766554433221100"

START_TEST(test_apikey_cert)
{
	static const char *const bad[] = {
		CERT_HEX "0",			/* 65 digits */
		"0a1b2c3d4e5f60718293a4b5c6d7e8fffeeddccbbaa99887766554433221100",
		"g0a1b2c3d4e5f60718293a4b5c6d7e8fffeeddccbbaa998877665544332211",
		"",
		":",
		"00 a1b2c3d4e5f60718293a4b5c6d7e8fffeeddccbbaa99887766554433221100",
		"sha256:" CERT_HEX,
	};
	char *list, want[160];
	struct run r;

	init_ok(NULL, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run(&r, NULL, NULL, "apikey", "create", "--name", "b",
		    "--role", "reader", "--client-cert-sha256", bad[i], NULL);
		ck_assert_msg(r.status == 2, "[%s]: exit %d", bad[i],
		    r.status);
		ck_assert_one_err_line(&r);
		ck_assert_ptr_nonnull(strstr(r.err, "--client-cert-sha256"));
		run_free(&r);
	}
	/* Lower case; upper case with colons, as openssl prints it. */
	run(&r, NULL, NULL, "apikey", "create", "--name", "bound", "--role",
	    "reader", "--client-cert-sha256", CERT_HEX, NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	run(&r, NULL, NULL, "apikey", "create", "--name", "bound-adm",
	    "--role", "admin", "--client-cert-sha256",
	    "00:A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:"
	    "FF:EE:DD:CC:BB:AA:99:88:77:66:55:44:33:22:11:00", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	run(&r, NULL, NULL, "apikey", "create", "--name", "free", "--role",
	    "writer", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);

	list = key_list_json();
	(void)snprintf(want, sizeof(want), "\"client_cert_sha256\":\"%s\"",
	    CERT_HEX);
	ck_assert_msg(strstr(list, want) != NULL &&
	    strstr(strstr(list, want) + 1, want) != NULL, "[%s]", list);
	ck_assert_msg(strstr(list, "\"client_cert_sha256\":null") != NULL,
	    "[%s]", list);
	free(list);

	run(&r, NULL, NULL, "apikey", "list", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "client cert"));
	{
		const char *b = strstr(r.out, "\nbound "), *f = strstr(r.out,
		    "\nfree ");

		ck_assert_msg(b != NULL && f != NULL, "[%s]", r.out);
		ck_assert_msg(strstr(b, " 00a1b2c3d4e5f607 ") != NULL &&
		    strstr(b, " 00a1b2c3d4e5f607 ") < strchr(b + 1, '\n'),
		    "[%s]", r.out);
		ck_assert_msg(strstr(f, " - ") != NULL && strstr(f, " - ") <
		    strchr(f + 1, '\n'), "[%s]", r.out);
	}
	run_free(&r);
}
END_TEST

/* The data directory: not writable by group or others, and a directory. */

static const mode_t bad_dir_modes[] = { 0777, 0770, 0730, 0703, 0720 };

START_TEST(test_data_dir_mode)
{
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF], *data;
	size_t datalen;
	struct stat st;
	struct run r;

	init_ok(NULL, NULL);
	put_record(NULL, id, email, phone, name);
	ck_assert_ptr_nonnull(data = slurp("piivault-data/data.mdb",
	    &datalen));
	ck_assert_int_eq(chmod("piivault-data", bad_dir_modes[_i]), 0);
	for (int i = 0; i < 3; i++) {
		if (i == 0)
			run(&r, NULL, NULL, "kms", "status", NULL);
		else if (i == 1)
			run(&r, NULL, record_json, "put", NULL);
		else
			run(&r, NULL, NULL, "get", email, NULL);
		ck_assert_msg(r.status == 1, "mode %o: exit %d",
		    bad_dir_modes[_i], r.status);
		ck_assert_one_err_line(&r);
		ck_assert_msg(strstr(r.err, "data directory ./piivault-data is "
		    "writable by group or others (chmod 700 it)") != NULL,
		    "[%s]", r.err);
		ck_assert_uint_eq(r.outlen, 0);
		run_free(&r);
	}
	/* Nothing changed, the mode included. */
	ck_assert_int_eq(lstat("piivault-data", &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, bad_dir_modes[_i]);
	assert_file_is("piivault-data/data.mdb", data, datalen);
	free(data);
	ck_assert_int_eq(chmod("piivault-data", 0700), 0);
	ck_assert_uint_eq(records(NULL), 1);
}
END_TEST

/*
 * Where the vault and the key file are, got wrong in each way a user can:
 * one line that names the path as the user gave it (option, environment
 * or default) and says what is wrong with it; nothing changed.  Each
 * starts from a vault in v with its key in keys/root.key, a symbolic link
 * keys/link.key to it, a FIFO keys/fifo, and (as root) keys/other.key, a
 * copy owned by another user.
 */
static const struct {
	const char	*env[3];
	const char	*args[8];
	const char	*err;		/* the line after "piivault: " */
	int		 root_only;
} path_errs[] = {
	/* The key file's default is relative to the current directory. */
	{ { "PIIVAULT_DATA_DIR=v" }, { "kms", "status" },
	    "kms status: no key file at ./piivault.key; set PIIVAULT_KEY_FILE "
	    "or --key-file", 0 },
	{ { "PIIVAULT_DATA_DIR=v", "PIIVAULT_KEY_FILE=keys/none.key" },
	    { "kms", "status" }, "kms status: no key file at keys/none.key "
	    "(PIIVAULT_KEY_FILE)", 0 },
	{ { NULL }, { "get", "--data-dir", "v", "--key-file", "keys/none.key",
	    "tok_AAAAAAAAAAAAAAAAAAAAAA" },
	    "get: no key file at keys/none.key", 0 },
	/* A key file given as the data directory, and the other way round. */
	{ { NULL }, { "kms", "status", "--data-dir", "keys/root.key",
	    "--key-file", "keys/root.key" },
	    "kms status: --data-dir keys/root.key is not a directory", 0 },
	{ { "PIIVAULT_DATA_DIR=keys/root.key",
	    "PIIVAULT_KEY_FILE=keys/root.key" }, { "kms", "status" },
	    "kms status: data directory keys/root.key (PIIVAULT_DATA_DIR) is "
	    "not a directory", 0 },
	{ { NULL }, { "kms", "status", "--data-dir", "keys/root.key/sub",
	    "--key-file", "keys/root.key" },
	    "kms status: --data-dir keys/root.key/sub is not a directory", 0 },
	{ { NULL }, { "kms", "status", "--data-dir", "v", "--key-file", "v" },
	    "kms status: --key-file v is a directory, not a key file", 0 },
	{ { NULL }, { "kms", "status", "--data-dir", "v", "--key-file",
	    "v/data.mdb" }, "kms status: --key-file v/data.mdb does not hold "
	    "one base64 256-bit key", 0 },
	{ { NULL }, { "kms", "status", "--data-dir", "v", "--key-file",
	    "keys/link.key" }, "kms status: --key-file keys/link.key is a "
	    "symbolic link; name the key file itself", 0 },
	{ { NULL }, { "kms", "status", "--data-dir", "v", "--key-file",
	    "keys/fifo" }, "kms status: --key-file keys/fifo is not a regular "
	    "file", 0 },
	{ { NULL }, { "kms", "status", "--data-dir", "v", "--key-file",
	    "keys/other.key" }, "kms status: --key-file keys/other.key belongs "
	    "to another user", 1 },
	/* No vault where it is looked for. */
	{ { NULL }, { "kms", "status" }, "kms status: data directory "
	    "./piivault-data does not exist; set PIIVAULT_DATA_DIR or "
	    "--data-dir, or run piivault init", 0 },
	{ { NULL }, { "kms", "status", "--data-dir", "nowhere", "--key-file",
	    "keys/root.key" }, "kms status: --data-dir nowhere does not exist",
	    0 },
	{ { "PIIVAULT_DATA_DIR=nowhere", "PIIVAULT_KEY_FILE=keys/root.key" },
	    { "kms", "status" }, "kms status: data directory nowhere "
	    "(PIIVAULT_DATA_DIR) does not exist", 0 },
	{ { NULL }, { "kms", "status", "--data-dir", "keys", "--key-file",
	    "keys/root.key" }, "kms status: --data-dir keys holds no vault "
	    "(piivault init makes one)", 0 },
	{ { NULL }, { "compact", "--data-dir", "keys/root.key", "--key-file",
	    "keys/root.key" },
	    "compact: --data-dir keys/root.key is not a directory", 0 },
	/* init: it was "input/output error". */
	{ { NULL }, { "init", "--data-dir", "keys/root.key", "--key-file",
	    "new.key" }, "init: --data-dir keys/root.key is not a directory",
	    0 },
	{ { NULL }, { "init", "--data-dir", "keys/root.key/sub", "--key-file",
	    "new.key" }, "init: --data-dir keys/root.key/sub is not a "
	    "directory", 0 },
	{ { NULL }, { "init", "--data-dir", "no/such", "--key-file",
	    "new.key" }, "init: --data-dir no/such cannot be created: the "
	    "directory it would be in does not exist", 0 },
	{ { NULL }, { "init", "--data-dir", "new", "--key-file",
	    "no/such.key" }, "init: --key-file no/such.key cannot be created: "
	    "the directory it would be in does not exist", 0 },
	{ { NULL }, { "init", "--data-dir", "v", "--key-file", "new.key" },
	    "init: --data-dir v already holds a vault; init never overwrites "
	    "one", 0 },
	{ { NULL }, { "init", "--data-dir", "new", "--key-file",
	    "keys/root.key" }, "init: --key-file keys/root.key already exists; "
	    "init never overwrites one", 0 },
};

START_TEST(test_path_errors)
{
	const char *const leftovers[] = { "new.key", "new", "nowhere", "no",
	    "piivault-data", "piivault.key", "keys/none.key" };
	char *key, *data, want[512];
	size_t keylen, datalen;
	struct run r;
	int fd;

	if (path_errs[_i].root_only && geteuid() != 0)
		return;		/* only root can give a file away */
	ck_assert_int_eq(mkdir("keys", 0700), 0);
	init_ok(NULL, "--data-dir", "v", "--key-file", "keys/root.key", NULL);
	ck_assert_int_eq(symlink("root.key", "keys/link.key"), 0);
	ck_assert_int_eq(mkfifo("keys/fifo", 0600), 0);
	ck_assert_ptr_nonnull(key = slurp("keys/root.key", &keylen));
	ck_assert_ptr_nonnull(data = slurp("v/data.mdb", &datalen));
	if (path_errs[_i].root_only) {
		write_file("keys/other.key", key, keylen, 0600);
		ck_assert_int_ge(fd = open("keys/other.key", O_RDONLY |
		    O_CLOEXEC), 0);
		ck_assert_int_eq(fchown(fd, 65534, 65534), 0);
		(void)close(fd);
	}

	run_argv(&r, path_errs[_i].env[0] != NULL ? path_errs[_i].env : NULL,
	    NULL, 0, path_errs[_i].args);
	ck_assert_int_lt(snprintf(want, sizeof(want), "piivault: %s\n",
	    path_errs[_i].err), (int)sizeof(want));
	ck_assert_exit(&r, 1);
	ck_assert_str_eq(r.err, want);
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);

	assert_file_is("keys/root.key", key, keylen);
	assert_file_is("v/data.mdb", data, datalen);
	for (size_t i = 0; i < sizeof(leftovers) / sizeof(leftovers[0]); i++)
		ck_assert_msg(!exists(leftovers[i]), "%s was left behind",
		    leftovers[i]);
	pv_cleanse(key, keylen);
	free(key);
	free(data);
}
END_TEST

/*
 * Every command takes exactly the options it uses: anything else exits 2
 * with one line naming the option and the command, before the vault is
 * opened, so nothing changes.  An option's value, or an argument that
 * only looks like an option, is never echoed.
 */
static const struct {
	const char	*args[10];
	const char	*says;
	const char	*never;		/* must not appear in stderr */
} bad_opts[] = {
	/* The issue's case: options kms rotate does not take. */
	{ { "kms", "rotate", "--yes", "--duty", "5", "--from", "3" },
	    "kms rotate: unknown option --yes", NULL },
	{ { "kms", "rotate", "--duty", "5" },
	    "kms rotate: unknown option --duty", NULL },
	{ { "kms", "rotate", "--from", "3" },
	    "kms rotate: unknown option --from", NULL },
	{ { "kms", "status", "--from", "1" },
	    "kms status: unknown option --from", NULL },
	{ { "kms", "status", "--passphrase" },
	    "kms status: unknown option --passphrase", NULL },
	{ { "kms", "rewrap", "--force" },
	    "kms rewrap: unknown option --force", NULL },
	{ { "kms", "rewrap", "--yes" }, "kms rewrap: unknown option --yes",
	    NULL },
	{ { "kms", "rewrap", "--json" }, "kms rewrap: unknown option --json",
	    NULL },
	{ { "kms", "retire", "1", "--yes" },
	    "kms retire: unknown option --yes", NULL },
	{ { "kms", "destroy", "1", "--force" },
	    "kms destroy: unknown option --force", NULL },
	{ { "kms", "public-key", "--json" },
	    "kms public-key: unknown option --json", NULL },
	{ { "kms", "rotate-index", "--from", "2" },
	    "kms rotate-index: unknown option --from", NULL },
	{ { "kms", "shred-epoch", "--from", "2" },
	    "kms shred-epoch: unknown option --from", NULL },
	{ { "kms", "rotate-root", "--batch", "5", "--new-passphrase" },
	    "kms rotate-root: unknown option --batch", NULL },
	{ { "put", "--json" }, "put: unknown option --json", NULL },
	{ { "get", "--json", "tok_AAAAAAAAAAAAAAAAAAAAAA" },
	    "get: unknown option --json", NULL },
	{ { "lookup", "--json", "email", "a@b.example" },
	    "lookup: unknown option --json", NULL },
	{ { "init", "--json" }, "init: unknown option --json", NULL },
	{ { "receipt", "verify", "r.jsonl", "--json", "--public-key",
	    "pvpub_x" }, "receipt verify: unknown option --json", NULL },
	{ { "receipt", "verify", "r.jsonl", "--passphrase" },
	    "receipt verify: unknown option --passphrase", NULL },
	{ { "retention", "sweep", "--from", "1" },
	    "retention sweep: unknown option --from", NULL },
	{ { "audit", "verify", "--after", "3" },
	    "audit verify: unknown option --after", NULL },
	{ { "audit", "export", "--json" },
	    "audit export: unknown option --json", NULL },
	{ { "apikey", "list", "--name", "x" },
	    "apikey list: unknown option --name", NULL },
	{ { "apikey", "revoke", "x", "--role", "admin" },
	    "apikey revoke: unknown option --role", NULL },
	{ { "apikey", "create", "--name", "a", "--role", "admin", "--json" },
	    "apikey create: unknown option --json", NULL },
	{ { "compact", "--json" }, "compact: unknown option --json", NULL },
	{ { "shred", "rec_AAAAAAAAAAAAAAAAAAAAAA", "--json" },
	    "shred: unknown option --json", NULL },
	{ { "serve", "--json" }, "serve: unknown option --json", NULL },
	/* Whole names only: an abbreviation is not the option. */
	{ { "retention", "sweep", "--dry" },
	    "retention sweep: unknown option --dry", NULL },
	{ { "kms", "rewrap", "--fr", "2" }, "kms rewrap: unknown option --fr",
	    NULL },
	{ { "kms", "status", "--data", "v" },
	    "kms status: unknown option --data", NULL },
	/* Once each; a value only where one is taken. */
	{ { "kms", "rewrap", "--from", "2", "--from", "3" },
	    "kms rewrap: repeated option --from", NULL },
	{ { "kms", "status", "--json", "--json" },
	    "kms status: repeated option --json", NULL },
	{ { "kms", "status", "--json=yes" },
	    "kms status: no value allowed for --json", "yes" },
	{ { "kms", "rewrap", "--from" },
	    "kms rewrap: missing value for --from", NULL },
	{ { "kms", "rewrap", "--from", "0" },
	    "kms rewrap: --from must be a number", NULL },
	{ { "kms", "rewrap", "--duty=101" },
	    "kms rewrap: --duty must be a number", NULL },
	/* Surplus operands. */
	{ { "kms", "rotate", "extra" }, "kms rotate: unexpected argument",
	    "extra" },
	{ { "kms", "status", "extra" }, "kms status: unexpected argument",
	    NULL },
	{ { "kms", "public-key", "extra" },
	    "kms public-key: unexpected argument", NULL },
	{ { "kms", "retire", "1", "2" }, "kms retire: expected a version",
	    NULL },
	{ { "retention", "sweep", "extra" },
	    "retention sweep: unexpected argument", NULL },
	{ { "audit", "verify", "extra" }, "audit verify: unexpected argument",
	    NULL },
	{ { "apikey", "list", "extra" }, "apikey list: unexpected argument",
	    NULL },
	{ { "lookup", "email", "Ada", "Lovelace" }, "lookup: expected FIELD "
	    "and VALUE", "Lovelace" },
	{ { "help", "kms", "rewrap", "extra" }, "help: expected COMMAND",
	    NULL },
	{ { "kms", "--help", "extra" }, "kms: unexpected argument", NULL },
	/* What only looks like an option is not echoed. */
	{ { "get", "--Secret=hunter2", "tok_AAAAAAAAAAAAAAAAAAAAAA" },
	    "get: unknown option (see", "hunter2" },
	{ { "lookup", "email", "--ada@b.example" },
	    "lookup: unknown option (see", "ada" },
	{ { "kms", "rotate", "--reason=ada@b.example" },
	    "kms rotate: unknown option --reason (see", "ada" },
	{ { "Ada Lovelace" }, "unknown command (see", "Ada" },
	{ { "kms", "ada@b.example" }, "kms: unknown subcommand (see", "ada" },
	{ { "kms", "frob" }, "kms: unknown subcommand 'frob' (see piivault "
	    "kms --help)", NULL },
};

START_TEST(test_option_refusals)
{
	char *key, *data;
	size_t keylen, datalen;
	struct run r;

	init_ok(NULL, NULL);
	ck_assert_ptr_nonnull(key = slurp("piivault.key", &keylen));
	ck_assert_ptr_nonnull(data = slurp("piivault-data/data.mdb",
	    &datalen));
	for (size_t i = 0; i < sizeof(bad_opts) / sizeof(bad_opts[0]); i++) {
		const char *const *a = bad_opts[i].args;

		run_argv(&r, NULL, NULL, 0, a);
		ck_assert_msg(r.status == 2, "%s %s %s: exit %d, stderr [%s]",
		    a[0], a[1], a[2] ? a[2] : "", r.status, r.err);
		ck_assert_one_err_line(&r);
		ck_assert_msg(strncmp(r.err, "piivault: ", 10) == 0 &&
		    strstr(r.err, bad_opts[i].says) == r.err + 10,
		    "%s %s: stderr [%s], want [piivault: %s...]", a[0], a[1],
		    r.err, bad_opts[i].says);
		ck_assert_msg(bad_opts[i].never == NULL || strstr(r.err,
		    bad_opts[i].never) == NULL, "stderr [%s] echoes [%s]",
		    r.err, bad_opts[i].never);
		ck_assert_uint_eq(r.outlen, 0);
		assert_hint_exists(r.err);
		run_free(&r);
		assert_file_is("piivault.key", key, keylen);
		assert_file_is("piivault-data/data.mdb", data, datalen);
	}
	ck_assert(!exists("r.jsonl"));
	/* What kms status --json says is the same: no key was made. */
	ck_assert_uint_eq(records(NULL), 0);
	pv_cleanse(key, keylen);
	free(key);
	free(data);
}
END_TEST

/*
 * --help lists what the command takes, from the same table it parses:
 * rewrap its own three and the vault's two, rotate none of rewrap's.
 */
START_TEST(test_option_help)
{
	static const char *const rewrap[] = { "--from V", "--batch N",
	    "--duty PCT", "--data-dir DIR", "--key-file FILE" };
	struct run r;

	run(&r, NULL, NULL, "help", "kms", "rewrap", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strncmp(r.out, "usage: piivault kms rewrap ", 27) == 0,
	    "[%s]", r.out);
	for (size_t i = 0; i < sizeof(rewrap) / sizeof(rewrap[0]); i++)
		ck_assert_msg(strstr(r.out, rewrap[i]) != NULL, "no %s in [%s]",
		    rewrap[i], r.out);
	run_free(&r);
	run(&r, NULL, NULL, "kms", "rotate", "--help", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "--data-dir DIR"));
	ck_assert_ptr_null(strstr(r.out, "--from"));
	ck_assert_ptr_null(strstr(r.out, "--duty"));
	ck_assert_ptr_null(strstr(r.out, "--json"));
	run_free(&r);
	run(&r, NULL, NULL, "receipt", "verify", "--help", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "--public-key"));
	/* The vault's keys are read when none is given. */
	ck_assert_ptr_nonnull(strstr(r.out, "--data-dir"));
	ck_assert_ptr_null(strstr(r.out, "--json"));
	run_free(&r);
	ck_assert(!exists("piivault-data"));
}
END_TEST

/* The live and total wrap counts of KEK ver, from kms status --json. */
static void
kek_counts(unsigned ver, unsigned long long *live, unsigned long long *total)
{
	char pat[64];
	struct run r;
	const char *p;

	run(&r, NULL, NULL, "kms", "status", "--json", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_int_lt(snprintf(pat, sizeof(pat), "{\"kind\":\"kek\","
	    "\"version\":%u,", ver), (int)sizeof(pat));
	ck_assert_msg((p = strstr(r.out, pat)) != NULL, "no kek %u: [%s]",
	    ver, r.out);
	ck_assert_msg((p = strstr(p, "\"records\":")) != NULL &&
	    sscanf(p, "\"records\":%llu,\"wrapped_total\":%llu", live,
	    total) == 2, "[%s]", r.out);
	run_free(&r);
}

/* kms rewrap: one line and exit 0 with n records moved. */
static void
rewrap_ok(const char *from, unsigned long long n)
{
	char want[64];
	struct run r;

	run(&r, NULL, NULL, "kms", "rewrap", "--from", from, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_int_lt(snprintf(want, sizeof(want), "\"summary\":true,"
	    "\"records\":%llu,", n), (int)sizeof(want));
	ck_assert_msg(strstr(r.out, want) != NULL, "--from %s: [%s]", from,
	    r.out);
	run_free(&r);
}

/*
 * kms rewrap --from V for a version that does not exist, or whose records
 * cannot be moved (retired, destroyed), is an error that says so, not
 * "0 records"; from the active version there is nothing to move.
 */
START_TEST(test_rewrap_from)
{
	static const struct {
		const char	*from;
		const char	*err;
	} bad[] = {
		{ "7", "piivault: kms rewrap: --from 7: there is no kek "
		    "version 7 (see piivault kms status)\n" },
		{ "2", "piivault: kms rewrap: --from 2: kek 2 is retired; the "
		    "records under it cannot be re-wrapped\n" },
		{ "1", "piivault: kms rewrap: --from 1: kek 1 is destroyed; the "
		    "records under it cannot be re-wrapped\n" },
	};
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF];
	unsigned long long live, total;
	struct run r;

	init_ok(NULL, NULL);
	put_record(NULL, id, email, phone, name);	/* under kek 1 */
	run(&r, NULL, NULL, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	put_record(NULL, id, email, phone, name);	/* under kek 2 */
	run(&r, NULL, NULL, "kms", "rotate", NULL);	/* kek 3 active */
	ck_assert_exit(&r, 0);
	run_free(&r);
	run(&r, NULL, NULL, "kms", "retire", "2", "--force", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	run(&r, NULL, NULL, "kms", "destroy", "1", "--yes", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run(&r, NULL, NULL, "kms", "rewrap", "--from", bad[i].from,
		    NULL);
		ck_assert_exit(&r, 1);
		ck_assert_str_eq(r.err, bad[i].err);
		ck_assert_uint_eq(r.outlen, 0);
		run_free(&r);
	}
	/* Nothing moved: each still wraps its record. */
	kek_counts(1, &live, &total);
	ck_assert_uint_eq(live, 1);
	kek_counts(2, &live, &total);
	ck_assert_uint_eq(live, 1);
	kek_counts(3, &live, &total);
	ck_assert_uint_eq(live, 0);
	ck_assert_uint_eq(total, 0);
	rewrap_ok("3", 0);

	/* A decrypt-only version's records do move. */
	run(&r, NULL, NULL, "kms", "rotate", NULL);	/* kek 4 active */
	ck_assert_exit(&r, 0);
	run_free(&r);
	put_record(NULL, id, email, phone, name);	/* under kek 4 */
	run(&r, NULL, NULL, "kms", "rotate", NULL);	/* kek 5 active */
	ck_assert_exit(&r, 0);
	run_free(&r);
	rewrap_ok("4", 1);
	kek_counts(5, &live, &total);
	ck_assert_uint_eq(live, 1);
	kek_counts(2, &live, &total);
	ck_assert_uint_eq(live, 1);
}
END_TEST

/*
 * kms retire --force makes a version's records unreadable "until kms
 * unretire": unretire makes them readable and movable again, and is
 * refused for a version that was not retired.
 */
START_TEST(test_unretire)
{
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF];
	unsigned long long live, total;
	struct run r;

	init_ok(NULL, NULL);
	put_record(NULL, id, email, phone, name);	/* under kek 1 */
	run(&r, NULL, NULL, "kms", "rotate", NULL);	/* kek 2 active */
	ck_assert_exit(&r, 0);
	run_free(&r);
	run(&r, NULL, NULL, "kms", "retire", "1", "--force", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	run(&r, NULL, NULL, "get", email, NULL);
	ck_assert_exit(&r, 1);
	ck_assert_ptr_nonnull(strstr(r.out, "\"key_unavailable\""));
	run_free(&r);

	run(&r, NULL, NULL, "kms", "unretire", "2", NULL);	/* active */
	ck_assert_exit(&r, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "only a retired version"));
	run_free(&r);
	run(&r, NULL, NULL, "kms", "unretire", "9", NULL);
	ck_assert_exit(&r, 1);
	run_free(&r);
	run(&r, NULL, NULL, "kms", "unretire", "1", "--force", NULL);
	ck_assert_exit(&r, 2);
	run_free(&r);

	run(&r, NULL, NULL, "kms", "unretire", "1", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "kek 1 is decrypt-only again\n");
	run_free(&r);
	run(&r, NULL, NULL, "get", email, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "\"value\":"));
	run_free(&r);
	rewrap_ok("1", 1);
	kek_counts(2, &live, &total);
	ck_assert_uint_eq(live, 1);
}
END_TEST

/*
 * Times: RFC 3339 in UTC wherever a person reads one, seconds since the
 * epoch in JSON, as the HTTP API gives them.  The clock is pinned
 * (piivault-test) so that both can be checked whole.
 */
#define T_NOW		"1796670885"
#define T_NOW_RFC	"2026-12-07T19:14:45Z"

START_TEST(test_times)
{
	const char *const env[] = { "PIIVAULT_FAKE_NOW=" T_NOW, NULL };
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF];
	char pub[128], want[256];
	struct run r;

	run_bin = PIIVAULT_TEST_BIN;
	init_ok(env, NULL);
	put_record(env, id, email, phone, name);
	run(&r, env, NULL, "apikey", "create", "--name", "ops", "--role",
	    "admin", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);

	run(&r, env, NULL, "kms", "status", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "  active        " T_NOW_RFC " ") != NULL
	    && strstr(r.out, T_NOW) == NULL, "[%s]", r.out);
	run_free(&r);
	run(&r, env, NULL, "kms", "status", "--json", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "\"state\":\"active\",\"created\":" T_NOW
	    ",\"age_days\":0,") != NULL && strstr(r.out, T_NOW_RFC) == NULL,
	    "[%s]", r.out);
	run_free(&r);
	run(&r, env, NULL, "apikey", "list", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, " active    " T_NOW_RFC " ") != NULL &&
	    strstr(r.out, T_NOW) == NULL, "[%s]", r.out);
	run_free(&r);
	run(&r, env, NULL, "apikey", "list", "--json", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "\"created\":" T_NOW ",") != NULL &&
	    strstr(r.out, T_NOW_RFC) == NULL, "[%s]", r.out);
	run_free(&r);

	/* A receipt holds the number; receipt verify says the time. */
	run(&r, env, NULL, "shred", id, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "\"shredded_at\":" T_NOW ",") != NULL,
	    "[%s]", r.out);
	write_file("receipts.jsonl", r.out, r.outlen, 0600);
	run_free(&r);
	run(&r, env, NULL, "kms", "public-key", NULL);
	ck_assert_exit(&r, 0);
	{
		const char *p = strstr(r.out, "\"public_key\":\"");

		ck_assert_ptr_nonnull(p);
		p += strlen("\"public_key\":\"");
		ck_assert_int_lt(snprintf(pub, sizeof(pub), "%.*s",
		    (int)strcspn(p, "\""), p), (int)sizeof(pub));
	}
	run_free(&r);
	run_bin = PIIVAULT_BIN;
	run(&r, NULL, NULL, "receipt", "verify", "receipts.jsonl",
	    "--public-key", pub, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_int_lt(snprintf(want, sizeof(want), "ok %s shredded at "
	    T_NOW_RFC "\n", id), (int)sizeof(want));
	ck_assert_str_eq(r.out, want);
	run_free(&r);
}
END_TEST

/*
 * A receipt made by piivault before signing keys had versions (commit
 * a78a8ec: no signing_key_version, the "piivault-receipt-v1" message),
 * with that vault's public key: it still verifies, as version 1.
 */
static const char old_receipt[] = "{\"receipt\":{\"vault\":"
    "\"62e0ec31658278151d4ae13bf32ffe35\",\"record\":"
    "\"rec_WEIZypYXdMV0DaDdiji0mQ\",\"shredded_at\":1796686708,"
    "\"kek_version\":1,\"audit_seq\":2,\"reason\":\"before versions\"},"
    "\"signature\":\"xPoN_MlinesOTZ2nZAtFhQOssw-uD1rHm1jBq5_QmfNQFaXx7bILwSa"
    "Dg_2Vt6YlmQd3BAICs19lkn_VvGDvcCBQ\"}\n";
static const char old_pub[] =
    "pvpub_1PGTrShNlFeyWmyJ8OHUJAz-dxXlhTxsk1kpPWoq1VVw";

START_TEST(test_receipt_v1_verifies)
{
	static const char *const bad_keys[] = {
		"0=pvpub_1PGTrShNlFeyWmyJ8OHUJAz-dxXlhTxsk1kpPWoq1VVw",
		"x=pvpub_1PGTrShNlFeyWmyJ8OHUJAz-dxXlhTxsk1kpPWoq1VVw",
		"1=pvpub_1PGTrShNlFeyWmyJ8OHUJAz",
		"4294967296=pvpub_1PGTrShNlFeyWmyJ8OHUJAz-dxXlhTxsk1kpPWoq1VVw",
		"=pvpub_1PGTrShNlFeyWmyJ8OHUJAz-dxXlhTxsk1kpPWoq1VVw",
	};
	char arg[128], *t;
	struct run r;

	write_file("old.jsonl", old_receipt, strlen(old_receipt), 0600);
	run(&r, NULL, NULL, "receipt", "verify", "old.jsonl", "--public-key",
	    old_pub, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "ok rec_WEIZypYXdMV0DaDdiji0mQ shredded at "
	    "2026-12-07T23:38:28Z\n");
	run_free(&r);
	(void)snprintf(arg, sizeof(arg), "1=%s", old_pub);
	run(&r, NULL, NULL, "receipt", "verify", "old.jsonl", "--public-key",
	    arg, NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	/* Named for another version, the key is not tried. */
	(void)snprintf(arg, sizeof(arg), "2=%s", old_pub);
	run(&r, NULL, NULL, "receipt", "verify", "old.jsonl", "--public-key",
	    arg, NULL);
	ck_assert_exit(&r, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "no public key for signing key "
	    "version 1"));
	run_free(&r);
	/* Changed, or claimed for version 1 in the new form: refused. */
	ck_assert_ptr_nonnull(t = strdup(old_receipt));
	memcpy(strstr(t, "before versions"), "Before", 6);
	write_file("changed.jsonl", t, strlen(t), 0600);
	free(t);
	run(&r, NULL, NULL, "receipt", "verify", "changed.jsonl",
	    "--public-key", old_pub, NULL);
	ck_assert_exit(&r, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "does not verify"));
	run_free(&r);
	ck_assert_ptr_nonnull(t = malloc(sizeof(old_receipt) + 32));
	(void)snprintf(t, sizeof(old_receipt) + 32, "%.*s\"signing_key_"
	    "version\":1,%s", (int)(strstr(old_receipt, "\"reason\"") -
	    old_receipt), old_receipt, strstr(old_receipt, "\"reason\""));
	write_file("claimed.jsonl", t, strlen(t), 0600);
	free(t);
	run(&r, NULL, NULL, "receipt", "verify", "claimed.jsonl",
	    "--public-key", old_pub, NULL);
	ck_assert_exit(&r, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "does not verify"));
	run_free(&r);
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
		run(&r, NULL, NULL, "receipt", "verify", "old.jsonl",
		    "--public-key", bad_keys[i], NULL);
		ck_assert_msg(r.status == 2, "[%s]: exit %d", bad_keys[i],
		    r.status);
		ck_assert_ptr_nonnull(strstr(r.err, "--public-key"));
		run_free(&r);
	}
}
END_TEST

/*
 * kms rotate-signing: receipts name the version that signed them, kms
 * public-key lists every version (the older one verify_only, its public
 * key unchanged), receipt verify takes each receipt's key from the vault.
 */
START_TEST(test_rotate_signing)
{
	char id1[ID_BUF], id2[ID_BUF], e[ID_BUF], ph[ID_BUF], nm[ID_BUF];
	char line1[256], *all;
	struct run r, s1, s2;

	init_ok(NULL, NULL);
	put_record(NULL, id1, e, ph, nm);
	put_record(NULL, id2, e, ph, nm);
	run(&s1, NULL, NULL, "shred", id1, NULL);
	ck_assert_exit(&s1, 0);
	ck_assert_ptr_nonnull(strstr(s1.out, "\"signing_key_version\":1,"));
	run(&r, NULL, NULL, "kms", "public-key", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strncmp(r.out, "{\"version\":1,\"public_key\":\"pvpub_",
	    33) == 0 && strcmp(r.out + r.outlen - 18,
	    "\"state\":\"active\"}\n") == 0, "[%s]", r.out);
	(void)snprintf(line1, sizeof(line1), "%.*s\"verify_only\"}\n",
	    (int)(r.outlen - 10), r.out);
	run_free(&r);

	run(&r, NULL, NULL, "kms", "rotate-signing", "extra", NULL);
	ck_assert_exit(&r, 2);
	run_free(&r);
	run(&r, NULL, NULL, "kms", "rotate-signing", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "signing key 2 is active\n");
	run_free(&r);
	run(&r, NULL, NULL, "kms", "public-key", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strncmp(r.out, line1, strlen(line1)) == 0 &&
	    strncmp(r.out + strlen(line1), "{\"version\":2,", 13) == 0 &&
	    strstr(r.out + strlen(line1), "\"state\":\"active\"}\n") != NULL,
	    "[%s] after [%s]", r.out, line1);
	run_free(&r);
	run(&r, NULL, NULL, "kms", "status", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "\nsign         1  verify_only ") !=
	    NULL && strstr(r.out, "\nsign         2  active ") != NULL,
	    "[%s]", r.out);
	run_free(&r);

	run(&s2, NULL, NULL, "shred", id2, id1, NULL);
	ck_assert_exit(&s2, 0);
	ck_assert_msg(strstr(s2.out, "\"signing_key_version\":2,") != NULL &&
	    strstr(strstr(s2.out, "\"signing_key_version\":2,") + 1,
	    "\"signing_key_version\":2,") != NULL, "[%s]", s2.out);
	ck_assert_ptr_nonnull(all = malloc(s1.outlen + s2.outlen + 1));
	memcpy(all, s1.out, s1.outlen);
	memcpy(all + s1.outlen, s2.out, s2.outlen + 1);
	write_file("all.jsonl", all, s1.outlen + s2.outlen, 0600);
	free(all);
	run_free(&s1);
	run_free(&s2);
	/* From the vault: each receipt with the key of its version. */
	run(&r, NULL, NULL, "receipt", "verify", "all.jsonl", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "ok ") != NULL && strstr(strstr(strstr(
	    r.out, "ok ") + 1, "ok ") + 1, "ok ") != NULL, "[%s]", r.out);
	run_free(&r);
}
END_TEST

/* The configuration file, options before the command, help. */

/* Write a configuration file of text, mode 0600 unless mode says. */
static void
conf(const char *path, const char *text, mode_t mode)
{
	write_file(path, text, strlen(text), mode != 0 ? mode : 0600);
}

/*
 * Where the data directory comes from, each of flag, config file and
 * environment given or not: the command line wins, then the file, then
 * the environment, then the default.  kms status names the directory it
 * could not find, and where it got it.
 */
START_TEST(test_config_precedence)
{
	static const char *const want[8][2] = {
		/* bit 0: flag, bit 1: config, bit 2: environment */
		{ "data directory ./piivault-data does not exist", NULL },
		{ "--data-dir flagdir does not exist", NULL },
		{ "data directory etc/confdir (etc/p.conf:2) does not exist",
		    NULL },
		{ "--data-dir flagdir does not exist", NULL },
		{ "data directory envdir (PIIVAULT_DATA_DIR) does not exist",
		    NULL },
		{ "--data-dir flagdir does not exist", NULL },
		{ "data directory etc/confdir (etc/p.conf:2) does not exist",
		    NULL },
		{ "--data-dir flagdir does not exist", NULL },
	};
	const char *env[] = { "PIIVAULT_DATA_DIR=envdir", NULL };
	const char *args[8];
	struct run r;

	ck_assert_int_eq(mkdir("etc", 0700), 0);
	conf("etc/p.conf", "# where the vault is\ndata-dir = confdir\n", 0);
	for (int i = 0; i < 8; i++) {
		size_t n = 0;

		args[n++] = "kms";
		args[n++] = "status";
		if (i & 1) {
			args[n++] = "--data-dir";
			args[n++] = "flagdir";
		}
		if (i & 2)
			args[n++] = "--config=etc/p.conf";
		args[n] = NULL;
		run_argv(&r, (i & 4) ? env : NULL, NULL, 0, args);
		ck_assert_msg(r.status == 1 && strstr(r.err, want[i][0]) !=
		    NULL, "case %d: exit %d, stderr [%s], want [%s]", i,
		    r.status, r.err, want[i][0]);
		run_free(&r);
	}
	/* PIIVAULT_CONFIG names the file when --config does not. */
	{
		const char *cenv[] = { "PIIVAULT_CONFIG=etc/p.conf",
		    "PIIVAULT_DATA_DIR=envdir", NULL };

		run(&r, cenv, NULL, "kms", "status", NULL);
		ck_assert_exit(&r, 1);
		ck_assert_ptr_nonnull(strstr(r.err, want[2][0]));
		run_free(&r);
	}
	ck_assert(!exists("flagdir") && !exists("envdir") &&
	    !exists("etc/confdir") && !exists("piivault-data"));
}
END_TEST

/* Each refusal of a configuration file: exit 2, one line, where. */
static const struct {
	const char	*text;		/* NULL: no file at all */
	mode_t		 mode;
	const char	*says;
	const char	*cmd;		/* "serve": serve --check-config */
} bad_confs[] = {
	{ "frobnicate = 1\n", 0, "c.conf:1: unknown setting 'frobnicate'",
	    NULL },
	{ "# ok\n\n  json = true\n", 0, "c.conf:3: json is not a setting: "
	    "give --json on the command line", NULL },
	{ "yes = 1\n", 0, "c.conf:1: yes is not a setting", NULL },
	{ "passphrase = true\n", 0, "c.conf:1: passphrase is not a setting",
	    NULL },
	{ "check-config = true\n", 0, "c.conf:1: check-config is not a "
	    "setting", NULL },
	{ "config = other.conf\n", 0, "c.conf:1: config cannot be set", NULL },
	{ "threads = 4\nlisten = 127.0.0.1:0\nthreads = 8\n", 0,
	    "c.conf:3: threads is set twice (lines 1 and 3)", NULL },
	{ "threads 4\n", 0, "c.conf:1: expected NAME = VALUE", NULL },
	{ "Threads = 4\n", 0, "c.conf:1: expected NAME = VALUE", NULL },
	{ "--threads = 4\n", 0, "c.conf:1: expected NAME = VALUE", NULL },
	{ "threads =\n", 0, "c.conf:1: threads has no value", NULL },
	{ "threads = # none\n", 0, "c.conf:1: threads has no value", NULL },
	{ "listen = \"127.0.0.1:0\n", 0, "c.conf:1: the value's '\"' is not "
	    "closed", NULL },
	{ "listen = \"127.0.0.1:0\" x\n", 0, "c.conf:1: text after", NULL },
	{ "listen = 127.0.0.1:0\r\n", 0, "c.conf:1: has a carriage return",
	    NULL },
	{ "# \001\n", 0, "c.conf:1: has a control character", NULL },
	{ "\n\nthreads = 0\n", 0, "c.conf:3: --threads must be a number from "
	    "1 to 256", "serve" },
	{ "threads = ada@b.example\n", 0, "c.conf:1: --threads must be a "
	    "number", "serve" },
	{ "secure-heap-mib = 24\n", 0, "c.conf:1: --secure-heap-mib must be "
	    "a power of two", "serve" },
	{ "insecure-plaintext = maybe\n", 0, "c.conf:1: insecure-plaintext "
	    "must be true or false", "serve" },
	{ "threads = 4\n", 0620, "c.conf: is writable by group or others",
	    NULL },
	{ "threads = 4\n", 0602, "c.conf: is writable by group or others",
	    NULL },
	{ NULL, 0, "c.conf: does not exist", NULL },
};

START_TEST(test_config_refusals)
{
	char *key, *data;
	size_t keylen, datalen;
	struct run r;

	init_ok(NULL, NULL);
	ck_assert_ptr_nonnull(key = slurp("piivault.key", &keylen));
	ck_assert_ptr_nonnull(data = slurp("piivault-data/data.mdb",
	    &datalen));
	if (bad_confs[_i].text != NULL)
		conf("c.conf", bad_confs[_i].text, bad_confs[_i].mode);
	if (bad_confs[_i].cmd != NULL)
		run(&r, NULL, NULL, "serve", "--check-config", "--config",
		    "c.conf", NULL);
	else
		run(&r, NULL, NULL, "kms", "status", "--config", "c.conf",
		    NULL);
	ck_assert_exit(&r, 2);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strstr(r.err, bad_confs[_i].says) != NULL,
	    "stderr [%s], want [%s]", r.err, bad_confs[_i].says);
	ck_assert_ptr_null(strstr(r.err, "ada@"));
	ck_assert_uint_eq(r.outlen, 0);
	assert_hint_exists(r.err);
	run_free(&r);
	assert_file_is("piivault.key", key, keylen);
	assert_file_is("piivault-data/data.mdb", data, datalen);
	pv_cleanse(key, keylen);
	free(key);
	free(data);
}
END_TEST

/*
 * Who may have written the file: a directory, a FIFO, another user's
 * file (as root, which may chown) are refused; root's own is taken; so
 * is a file in the file's syntax with every kind of value.
 */
START_TEST(test_config_file_checks)
{
	struct run r;

	init_ok(NULL, NULL);
	ck_assert_int_eq(mkdir("d.conf", 0700), 0);
	run(&r, NULL, NULL, "kms", "status", "--config", "d.conf", NULL);
	ck_assert_exit(&r, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "d.conf: is a directory"));
	run_free(&r);
	ck_assert_int_eq(mkfifo("f.conf", 0600), 0);
	run(&r, NULL, NULL, "kms", "status", "--config", "f.conf", NULL);
	ck_assert_exit(&r, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "f.conf: is not a regular file"));
	run_free(&r);
	{
		char big[64 * 1024 + 1];

		memset(big, '#', sizeof(big));
		big[sizeof(big) - 1] = '\n';
		write_file("big.conf", big, sizeof(big), 0600);
		run(&r, NULL, NULL, "kms", "status", "--config", "big.conf",
		    NULL);
		ck_assert_exit(&r, 2);
		ck_assert_ptr_nonnull(strstr(r.err, "is larger than 64 KiB"));
		run_free(&r);
	}
	conf("o.conf", "# blank lines, comments and quotes\n\n"
	    "\tdata-dir\t=\t\"piivault-data\"\t# a comment\n"
	    "key-file=piivault.key#not a comment: part of no name\n", 0644);
	run(&r, NULL, NULL, "kms", "status", "--config", "o.conf", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "no key file at "
	    "piivault.key#not a comment: part of no name (o.conf:4)"));
	run_free(&r);
	conf("o.conf", "data-dir = piivault-data  # mine\n"
	    "key-file = piivault.key\nthreads = 3\n", 0644);
	run(&r, NULL, NULL, "kms", "status", "--config", "o.conf", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	if (geteuid() == 0) {
		ck_assert_int_eq(chown("o.conf", 4242, 4242), 0);
		run(&r, NULL, NULL, "kms", "status", "--config", "o.conf",
		    NULL);
		ck_assert_exit(&r, 2);
		ck_assert_ptr_nonnull(strstr(r.err, "o.conf: belongs to another "
		    "user"));
		run_free(&r);
	}
}
END_TEST

/* The line of serve --check-config's output for name; NULL if none. */
static const char *
setting_line(const char *out, const char *name, char *buf, size_t cap)
{
	size_t n = strlen(name);
	const char *p = out, *nl;

	while ((p = strstr(p, name)) != NULL) {
		if ((p == out || p[-1] == '\n') && (p[n] == ' ')) {
			nl = strchr(p, '\n');
			ck_assert_ptr_nonnull(nl);
			ck_assert_uint_lt((size_t)(nl - p), cap);
			memcpy(buf, p, (size_t)(nl - p));
			buf[nl - p] = '\0';
			return buf;
		}
		p += n;
	}
	return NULL;
}

#define ck_assert_setting(out, name, want) do {				\
	char line_[512];						\
	const char *got_ = setting_line(out, name, line_, sizeof(line_)); \
	ck_assert_msg(got_ != NULL && strcmp(got_, want) == 0,		\
	    "%s: got [%s], want [%s]", name, got_ ? got_ : "(none)",	\
	    want);							\
} while (0)

/*
 * serve --check-config: the settings serve would run with, each with
 * where it came from, in the file's syntax (so that they read back the
 * same); no passphrase; nothing served; bad settings refused.
 */
START_TEST(test_check_config)
{
	const char *env[] = { "PIIVAULT_KEY_FILE=piivault.key",
	    "PIIVAULT_PASSPHRASE=hunter2-sesame", NULL };
	struct run r, again;
	char *out;

	init_ok(NULL, NULL);
	ck_assert_int_eq(mkdir("etc", 0700), 0);
	conf("etc/p.conf", "data-dir = ../piivault-data\n"
	    "listen = 127.0.0.1:1\nthreads = 4\nmax-body = 4096\n"
	    "insecure-plaintext = yes\n", 0);
	run(&r, env, NULL, "--config", "etc/p.conf", "serve",
	    "--check-config", "--threads", "8", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_setting(r.out, "data-dir", "data-dir = etc/../piivault-data"
	    "  # config:1");
	ck_assert_setting(r.out, "key-file", "key-file = piivault.key  "
	    "# env PIIVAULT_KEY_FILE");
	ck_assert_setting(r.out, "listen", "listen = 127.0.0.1:1  # config:2");
	ck_assert_setting(r.out, "threads", "threads = 8  # flag");
	ck_assert_setting(r.out, "max-body", "max-body = 4096  # config:4");
	ck_assert_setting(r.out, "insecure-plaintext", "insecure-plaintext = "
	    "true  # config:5");
	{
		char want[64];

		ck_assert_int_lt(snprintf(want, sizeof(want), "rate-limit = %d"
		    "  # default", API_RATE_LIMIT_DEFAULT), (int)sizeof(want));
		ck_assert_setting(r.out, "rate-limit", want);
	}
	ck_assert_ptr_nonnull(strstr(r.out, "\n# tls-cert is not set\n"));
	ck_assert_ptr_null(strstr(r.out, "check-config"));
	ck_assert_ptr_null(strstr(r.out, "hunter2"));
	ck_assert_ptr_null(strstr(r.err, "hunter2"));
	ck_assert_ptr_null(strstr(r.out, "listening"));
	/* Fed back as a file, it gives the same settings. */
	ck_assert_ptr_nonnull(out = strdup(r.out));
	conf("back.conf", out, 0);
	run_free(&r);
	run(&r, NULL, NULL, "serve", "--check-config", "--config",
	    "back.conf", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_setting(r.out, "threads", "threads = 8  # config:5");
	ck_assert_setting(r.out, "data-dir", "data-dir = etc/../piivault-data"
	    "  # config:2");
	run_free(&r);
	free(out);
	/* A file serve reads is one other commands read too. */
	run(&again, NULL, NULL, "kms", "status", "--config", "etc/p.conf",
	    NULL);
	ck_assert_exit(&again, 0);
	run_free(&again);
	/* What serve would refuse, --check-config refuses. */
	conf("etc/p.conf", "data-dir = ../piivault-data\n"
	    "listen = 0.0.0.0:0\n", 0);
	run(&r, NULL, NULL, "serve", "--check-config", "--config",
	    "etc/p.conf", NULL);
	ck_assert_exit(&r, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "refusing plain HTTP off "
	    "loopback"));
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);
	conf("etc/p.conf", "data-dir = ../piivault-data\n"
	    "tls-cert = cert.pem\ntls-key = key.pem\n", 0);
	run(&r, NULL, NULL, "serve", "--check-config", "--config",
	    "etc/p.conf", NULL);
	ck_assert_int_ne(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.err, "cannot read --tls-cert"));
	ck_assert_uint_eq(r.outlen, 0);
	run_free(&r);
	run(&r, NULL, NULL, "serve", "--check-config", "--data-dir", "none",
	    NULL);
	ck_assert_exit(&r, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "--data-dir none does not exist"));
	run_free(&r);
}
END_TEST

/*
 * --data-dir, --key-file and --config before the command's name are
 * the same as after it; on both sides, refused; before a command that
 * takes none, refused.
 */
START_TEST(test_common_before_command)
{
	struct run r;

	init_ok(NULL, "--data-dir", "d", "--key-file", "k", NULL);
	run(&r, NULL, NULL, "--data-dir", "d", "--key-file=k", "kms", "status",
	    "--json", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "\"records\":0"));
	run_free(&r);
	conf("p.conf", "data-dir = d\nkey-file = k\n", 0);
	run(&r, NULL, NULL, "--config", "p.conf", "audit", "verify", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	run(&r, NULL, NULL, "--data-dir", "d", "kms", "status", "--data-dir",
	    "d", "--key-file", "k", NULL);
	ck_assert_exit(&r, 2);
	ck_assert_str_eq(r.err, "piivault: kms status: repeated option "
	    "--data-dir (see piivault kms status --help)\n");
	run_free(&r);
	run(&r, NULL, NULL, "--key-file", "k", "version", NULL);
	ck_assert_exit(&r, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "version: takes no options"));
	run_free(&r);
	run(&r, NULL, NULL, "--data-dir", "d", NULL);
	ck_assert_exit(&r, 2);
	ck_assert_str_eq(r.err, "piivault: expected a command (see piivault "
	    "--help)\n");
	run_free(&r);
	run(&r, NULL, NULL, "--key-file", NULL);
	ck_assert_exit(&r, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "missing value for --key-file"));
	run_free(&r);
	ck_assert(!exists("piivault-data"));
}
END_TEST

/* The words after "  " at the start of each line after marker in out. */
static size_t
listed(const char *out, const char *marker, char names[][32], size_t max)
{
	const char *p = strstr(out, marker);
	size_t n = 0, len;

	ck_assert_ptr_nonnull(p);
	p = strchr(p, '\n') + 1;
	while (strncmp(p, "  ", 2) == 0 && p[2] != ' ' && n < max) {
		len = strcspn(p + 2, " \n");
		ck_assert_uint_lt(len, 32);
		memcpy(names[n], p + 2, len);
		names[n++][len] = '\0';
		p = strchr(p, '\n') + 1;
	}
	return n;
}

/*
 * The help of each command and subcommand as listed by piivault help:
 * -h, --help and help CMD print the same usage, exit 0, and list
 * --config for every command that opens the vault.
 */
static void
assert_help(const char *cmd, const char *sub)
{
	const char *forms[3][5] = {
	    { cmd, sub != NULL ? sub : "-h", sub != NULL ? "-h" : NULL },
	    { cmd, sub != NULL ? sub : "--help", sub != NULL ? "--help" :
		NULL },
	    { "help", cmd, sub },
	};
	char want[64];
	char *first = NULL;
	struct run r;

	ck_assert_int_lt(snprintf(want, sizeof(want), "usage: piivault %s%s%s",
	    cmd, sub != NULL ? " " : "", sub != NULL ? sub : ""),
	    (int)sizeof(want));
	for (size_t i = 0; i < 3; i++) {
		run_argv(&r, NULL, NULL, 0, forms[i]);
		ck_assert_exit(&r, 0);
		ck_assert_msg(r.errlen == 0, "%s %s: stderr [%s]", cmd,
		    sub ? sub : "", r.err);
		ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0,
		    "want [%s], got [%s]", want, r.out);
		if (first == NULL)
			ck_assert_ptr_nonnull(first = strdup(r.out));
		else
			ck_assert_str_eq(r.out, first);
		run_free(&r);
	}
	if (strstr(first, "--data-dir") != NULL)
		ck_assert_msg(strstr(first, "--config FILE") != NULL,
		    "%s %s --help lists no --config", cmd, sub ? sub : "");
	free(first);
}

START_TEST(test_help_everywhere)
{
	char cmds[32][32], subs[32][32];
	size_t n, m;
	struct run r;

	run(&r, NULL, NULL, "help", NULL);
	ck_assert_exit(&r, 0);
	n = listed(r.out, "commands:", cmds, 32);
	run_free(&r);
	ck_assert_uint_ge(n, 14);
	for (size_t i = 0; i < n; i++) {
		run(&r, NULL, NULL, cmds[i], "--help", NULL);
		ck_assert_exit(&r, 0);
		if (strstr(r.out, "\nsubcommands:\n") == NULL) {
			run_free(&r);
			if (strcmp(cmds[i], "help") != 0)
				assert_help(cmds[i], NULL);
			continue;
		}
		m = listed(r.out, "subcommands:", subs, 32);
		run_free(&r);
		ck_assert_uint_ge(m, 1);
		assert_help(cmds[i], NULL);
		for (size_t j = 0; j < m; j++)
			assert_help(cmds[i], subs[j]);
	}
	ck_assert(!exists("piivault-data"));
}
END_TEST

/*
 * Every hint a refusal gives, "(see piivault X --help)", names a command
 * that exists: run, it prints its usage.
 */
static void
assert_hint_exists(const char *err)
{
	const char *p = strstr(err, "(see piivault ");
	const char *args[8];
	char hint[128], *w, *save = NULL;
	size_t n = 0, len;
	struct run r;

	if (p == NULL)
		return;
	p += 14;
	len = strcspn(p, ")");
	ck_assert_uint_lt(len, sizeof(hint));
	memcpy(hint, p, len);
	hint[len] = '\0';
	for (w = strtok_r(hint, " ", &save); w != NULL && n < 7;
	    w = strtok_r(NULL, " ", &save))
		args[n++] = w;
	args[n] = NULL;
	run_argv(&r, NULL, NULL, 0, args);
	ck_assert_msg(r.status == 0 && strncmp(r.out, "usage: piivault ",
	    16) == 0, "hint in [%s] does not run: exit %d, stderr [%s]", err,
	    r.status, r.err);
	run_free(&r);
}

/* Audit retention: audit archive, audit verify --archive. */

#define T_OLD	"PIIVAULT_FAKE_NOW=1767000000"	/* 2025-12-29 */
#define T_NEW	"PIIVAULT_FAKE_NOW=1767300000"	/* 2026-01-01T20:40Z */
#define T_LATER	"PIIVAULT_FAKE_NOW=1767500000"	/* 2026-01-04 */

/* n records put at the time env says (one audit event each). */
static void
puts_at(const char *const *env, int n)
{
	struct run r;

	for (int i = 0; i < n; i++) {
		run(&r, env, record_json, "put", NULL);
		ck_assert_exit(&r, 0);
		run_free(&r);
	}
}

/* The command's exit is code and stderr one line holding want. */
static void __attribute__((sentinel))
expect_fail(int code, const char *want, const char *const *env, ...)
{
	const char *args[ARGS_MAX + 1];
	struct run r;
	va_list ap;

	va_start(ap, env);
	su_args_va(args, ARGS_MAX, ap);
	va_end(ap);
	run_argv(&r, env, NULL, 0, args);
	ck_assert_exit(&r, code);
	ck_assert_one_err_line(&r);
	ck_assert_msg(strstr(r.err, want) != NULL, "want [%s] in [%s]", want,
	    r.err);
	run_free(&r);
}

/* The vault's active public key, "pvpub_...", into out. */
static void
public_key(char out[static 64], const char *data_dir)
{
	struct run r;
	char *p;

	run(&r, NULL, NULL, "kms", "public-key", "--data-dir", data_dir,
	    NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(p = strstr(r.out, "pvpub_"));
	ck_assert_int_eq(sscanf(p, "%63[A-Za-z0-9_-]", out), 1);
	run_free(&r);
}

/*
 * Archive the older events, verify the file (with the vault and with a
 * public key alone) and the vault from its checkpoint, keep writing and
 * archive again from there; bad dates and an existing file change
 * nothing.
 */
START_TEST(test_audit_archive)
{
	const char *const old[] = { T_OLD, NULL }, *const now[] = { T_NEW,
	    NULL }, *const later[] = { T_LATER, NULL };
	char pub[64], arg[80], *data, *file;
	size_t datalen, filelen;
	struct stat st;
	struct run r;

	run_bin = PIIVAULT_TEST_BIN;
	init_ok(old, NULL);
	puts_at(old, 3);
	puts_at(now, 1);
	ck_assert_ptr_nonnull(data = slurp("piivault-data/data.mdb",
	    &datalen));
	write_file("taken.jsonl", "x\n", 2, 0600);
	expect_fail(2, "--before must be a date", now, "audit", "archive",
	    "--before", "2026-02-30", "--to", "a.jsonl", NULL);
	expect_fail(2, "--before must be a date", now, "audit", "archive",
	    "--before", "yesterday", "--to", "a.jsonl", NULL);
	expect_fail(2, "--before must be a date", now, "audit", "archive",
	    "--before", "2026-01-01T00:00:00+01:00", "--to", "a.jsonl", NULL);
	expect_fail(2, "in the future", now, "audit", "archive", "--before",
	    "2026-01-02", "--to", "a.jsonl", NULL);
	expect_fail(2, "required", now, "audit", "archive", "--before",
	    "2026-01-01", NULL);
	expect_fail(1, "taken.jsonl", now, "audit", "archive", "--before",
	    "2026-01-01", "--to", "taken.jsonl", NULL);
	assert_file_is("taken.jsonl", "x\n", 2);
	ck_assert(!exists("a.jsonl"));
	assert_file_is("piivault-data/data.mdb", data, datalen);
	free(data);

	run(&r, now, NULL, "audit", "archive", "--before", "2026-01-01",
	    "--to", "a.jsonl", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "archived 3 events (seq 1 to 3) older than "
	    "2026-01-01T00:00:00Z to a.jsonl; the chain now starts at the "
	    "checkpoint at seq 3\n");
	run_free(&r);
	ck_assert_int_eq(lstat("a.jsonl", &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	run(&r, now, NULL, "audit", "verify", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "audit chain verified: 2 events from "
	    "checkpoint at seq 3 (archived 3 events before "
	    "2026-01-01T00:00:00Z)\n");
	run_free(&r);
	run(&r, now, NULL, "audit", "verify", "--archive", "a.jsonl", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "archive verified: 3 events (seq 1 to 3) "
	    "older than 2026-01-01T00:00:00Z, signed by signing key version "
	    "1\n");
	run_free(&r);
	/* With the public key alone: no vault is opened. */
	public_key(pub, "piivault-data");
	(void)snprintf(arg, sizeof(arg), "1=%s", pub);
	run(&r, NULL, NULL, "audit", "verify", "--archive", "a.jsonl",
	    "--public-key", arg, "--data-dir", "nowhere", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	/* The export starts after the checkpoint. */
	run(&r, now, NULL, "audit", "export", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strncmp(r.out, "{\"seq\":4,", 9) == 0, "[%s]", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "\"action\":\"audit.archive\""));
	run_free(&r);

	/* The chain goes on; a second archive starts at the checkpoint. */
	puts_at(now, 1);
	run(&r, later, NULL, "audit", "archive", "--before", "2026-01-04",
	    "--to", "b.jsonl", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "archived 3 events (seq 4 to 6)"));
	run_free(&r);
	run(&r, later, NULL, "audit", "verify", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "audit chain verified: 1 events from "
	    "checkpoint at seq 6 (archived 6 events before "
	    "2026-01-04T00:00:00Z)\n");
	run_free(&r);
	run(&r, later, NULL, "audit", "verify", "--archive", "b.jsonl", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	run(&r, later, NULL, "audit", "verify", "--archive", "a.jsonl", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	/* Nothing older left: no file. */
	run(&r, later, NULL, "audit", "archive", "--before", "2026-01-04",
	    "--to", "c.jsonl", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "no events before 2026-01-04T00:00:00Z to "
	    "archive\n");
	run_free(&r);
	ck_assert(!exists("c.jsonl"));

	/* Another vault's archive: refused, by id or by its key. */
	init_ok(old, "--data-dir", "other", "--key-file", "other.key", NULL);
	run(&r, old, record_json, "put", "--data-dir", "other", "--key-file",
	    "other.key", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	{
		const char *const o[] = { T_NEW, NULL };

		run(&r, o, NULL, "audit", "archive", "--before", "2026-01-01",
		    "--to", "other.jsonl", "--data-dir", "other",
		    "--key-file", "other.key", NULL);
		ck_assert_exit(&r, 0);
		run_free(&r);
	}
	expect_fail(1, "line 1: an archive of another vault", later, "audit",
	    "verify", "--archive", "other.jsonl", NULL);
	expect_fail(1, "signature does not verify", NULL, "audit", "verify",
	    "--archive", "other.jsonl", "--public-key", arg, NULL);

	/* Tampered files, each named by its line. */
	ck_assert_ptr_nonnull(file = slurp("a.jsonl", &filelen));
	{
		char *l2 = strchr(file, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
		char *l4 = strchr(l3, '\n') + 1, *end = strchr(l4, '\n') + 1;
		char *t = malloc(filelen + 1), *p;

		ck_assert_ptr_nonnull(t);
		/* An event's actor edited. */
		memcpy(t, file, filelen + 1);
		ck_assert_ptr_nonnull(p = strstr(t + (l2 - file), "\"cli\""));
		p[1] = 'x';
		write_file("t.jsonl", t, filelen, 0600);
		expect_fail(1, "t.jsonl: line 2: edited", later, "audit",
		    "verify", "--archive", "t.jsonl", NULL);
		/* An event deleted. */
		memcpy(t, file, (size_t)(l3 - file));
		memcpy(t + (l3 - file), l4, filelen - (size_t)(l4 - file));
		write_file("t.jsonl", t, filelen - (size_t)(l4 - l3), 0600);
		expect_fail(1, "line 3: event 3 where 2 was due", later,
		    "audit", "verify", "--archive", "t.jsonl", NULL);
		/* Cut short: the end and the last event gone. */
		write_file("t.jsonl", file, (size_t)(l4 - file), 0600);
		expect_fail(1, "line 4: the archive ends without its "
		    "signature", later, "audit", "verify", "--archive",
		    "t.jsonl", NULL);
		/* The header's date moved: its line hash chain breaks. */
		memcpy(t, file, filelen + 1);
		ck_assert_ptr_nonnull(p = strstr(t, "\"before\":17672"));
		p[14] = '9';
		write_file("t.jsonl", t, filelen, 0600);
		expect_fail(1, "line 2: edited", later, "audit", "verify",
		    "--archive", "t.jsonl", NULL);
		/* The signature changed. */
		memcpy(t, file, filelen + 1);
		ck_assert_ptr_nonnull(p = strstr(t + (end - file),
		    "\"signature\":\""));
		p[13] = p[13] == 'A' ? 'B' : 'A';
		write_file("t.jsonl", t, filelen, 0600);
		expect_fail(1, "signature does not verify", later, "audit",
		    "verify", "--archive", "t.jsonl", NULL);
		/* Text after the end. */
		memcpy(t, file, filelen + 1);
		write_file("t.jsonl", t, filelen, 0600);
		{
			FILE *f = fopen("t.jsonl", "a");

			ck_assert_ptr_nonnull(f);
			ck_assert_int_ge(fputs("{}\n", f), 0);
			ck_assert_int_eq(fclose(f), 0);
		}
		expect_fail(1, "line 6: text after the archive's end", later,
		    "audit", "verify", "--archive", "t.jsonl", NULL);
		free(t);
	}
	free(file);
	expect_fail(2, "--public-key needs --archive", NULL, "audit",
	    "verify", "--public-key", arg, NULL);
	run_bin = PIIVAULT_BIN;
}
END_TEST

/*
 * Killed after the checkpoint's commit, one removal batch done: the
 * vault verifies from the checkpoint, the file is whole, and the next
 * run finishes the removal before anything else.
 */
START_TEST(test_audit_archive_resume)
{
	const char *const old[] = { T_OLD, NULL }, *const now[] = { T_NEW,
	    NULL };
	const char *const kill[] = { T_NEW, "PIIVAULT_TEST_ARCHIVE_BATCH=2",
	    "PIIVAULT_TEST_ARCHIVE_KILL=1", NULL };
	struct run r;

	run_bin = PIIVAULT_TEST_BIN;
	init_ok(old, NULL);
	puts_at(old, 7);
	run(&r, kill, NULL, "audit", "archive", "--before", "2026-01-01",
	    "--to", "a.jsonl", NULL);
	ck_assert_exit(&r, 128 + SIGKILL);
	run_free(&r);
	run(&r, now, NULL, "audit", "verify", "--archive", "a.jsonl", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "7 events (seq 1 to 7)"));
	run_free(&r);
	run(&r, now, NULL, "audit", "verify", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "audit chain verified: 1 events from "
	    "checkpoint at seq 7 (archived 7 events before "
	    "2026-01-01T00:00:00Z)\n");
	run_free(&r);
	/* 2 of 7 removed: the rerun removes the other 5 first. */
	run(&r, now, NULL, "audit", "archive", "--before", "2026-01-01",
	    "--to", "b.jsonl", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "removed 5 archived events an interrupted "
	    "archive left\nno events before 2026-01-01T00:00:00Z to "
	    "archive\n");
	run_free(&r);
	run(&r, now, NULL, "audit", "verify", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	run_bin = PIIVAULT_BIN;
}
END_TEST

/* Backups. */

#define BK_HEAD		160	/* bytes of a backup's header */

/* Whether (needle, n) occurs in (hay, len). */
static int
has_bytes(const char *hay, size_t len, const void *needle, size_t n)
{
	return memmem(hay, len, needle, n) != NULL;
}

/* No name in the directory starts with prefix (no temporary is left). */
static void
assert_no_temp(const char *prefix)
{
	struct dirent *e;
	DIR *d;

	ck_assert_ptr_nonnull(d = opendir("."));
	while ((e = readdir(d)) != NULL)
		ck_assert_msg(strncmp(e->d_name, prefix, strlen(prefix)) != 0,
		    "%s is left", e->d_name);
	(void)closedir(d);
}

/* backup --to file: must succeed and say the root key is not in it. */
static void
backup_ok(const char *file)
{
	struct run r;

	run(&r, NULL, NULL, "backup", "--to", file, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "does not hold the root key") != NULL &&
	    strstr(r.out, "keep the root key file or passphrase apart") !=
	    NULL && strstr(r.out, " seconds\n") != NULL, "[%s]", r.out);
	ck_assert_msg(r.errlen == 0, "[%s]", r.err);
	run_free(&r);
}

/*
 * A backup while the server runs and another process writes: one file,
 * mode 0600, nothing else left behind; verify says "signature not
 * anchored" without a key, ok with the vault's public key, and fails with
 * another vault's or for another version.  Its data, taken out, is a
 * whole vault at one commit: the audit chain verifies and the record
 * count is the manifest's.  The root key is not in it, no value is
 * printed, and an existing file is refused untouched.
 */
START_TEST(test_backup_verify)
{
	char id[ID_BUF], email[ID_BUF], phone[ID_BUF], name[ID_BUF];
	char pub[64], other[64], cmd[PATH_MAX + 128], arg[80], *file, *p;
	unsigned char key[PV_KEY_LEN];
	unsigned long long nrec = 0;
	size_t len, klen;
	struct stat st;
	struct run r;
	char *keytext;
	pid_t writer;
	int status, fd;

	init_ok(NULL, NULL);
	put_record(NULL, id, email, phone, name);
	write_file("rec.json", record_json, strlen(record_json), 0600);
	su_srv_start_local("piivault.key", NULL, NULL);
	ck_assert_int_lt(snprintf(cmd, sizeof(cmd), "for i in 1 2 3 4 5 6 7 8;"
	    " do %s put < rec.json > /dev/null || exit 1; done", PIIVAULT_BIN),
	    (int)sizeof(cmd));
	ck_assert_int_ge(writer = fork(), 0);
	if (writer == 0)
		_exit(system(cmd) == 0 ? 0 : 1);
	backup_ok("b.pvb");
	ck_assert_int_eq(waitpid(writer, &status, 0), writer);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	{
		struct su_resp h;

		su_req(&h, "GET", "/v1/health", NULL, "", NULL, 0);
		ck_assert_int_eq(h.status, 200);
		su_resp_free(&h);
	}
	ck_assert_int_eq(lstat("b.pvb", &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	assert_no_temp("b.pvb.");

	run(&r, NULL, NULL, "backup", "verify", "b.pvb", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "signature not anchored") != NULL,
	    "[%s]", r.out);
	ck_assert_msg(strstr(r.out, "Ada") == NULL, "a value: [%s]", r.out);
	ck_assert_msg(strstr(r.out, "\"shred_epochs\":0,") != NULL, "[%s]",
	    r.out);
	ck_assert_ptr_nonnull(p = strstr(r.out, "\"records\":"));
	ck_assert_int_eq(sscanf(p, "\"records\":%llu", &nrec), 1);
	ck_assert_uint_ge(nrec, 1);
	ck_assert_uint_le(nrec, 9);
	run_free(&r);

	public_key(pub, "piivault-data");
	ck_assert_int_lt(snprintf(arg, sizeof(arg), "--public-key=%s", pub),
	    (int)sizeof(arg));
	run(&r, NULL, NULL, "backup", "verify", "b.pvb", arg, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "ok: digests and signature (signing key "
	    "version 1)\n") != NULL, "[%s]", r.out);
	run_free(&r);
	ck_assert_int_lt(snprintf(arg, sizeof(arg), "--public-key=2=%s", pub),
	    (int)sizeof(arg));
	expect_fail(1, "signature fails: no public key for signing key "
	    "version 1", NULL, "backup", "verify", "b.pvb", arg, NULL);
	init_ok(NULL, "--data-dir", "other", "--key-file", "other.key", NULL);
	run(&r, NULL, NULL, "kms", "public-key", "--data-dir", "other",
	    "--key-file", "other.key", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_ptr_nonnull(p = strstr(r.out, "pvpub_"));
	ck_assert_int_eq(sscanf(p, "%63[A-Za-z0-9_-]", other), 1);
	run_free(&r);
	ck_assert_int_lt(snprintf(arg, sizeof(arg), "--public-key=%s", other),
	    (int)sizeof(arg));
	expect_fail(1, "signature fails: it does not verify", NULL, "backup",
	    "verify", "b.pvb", arg, NULL);

	/* The data is a whole vault, at one commit. */
	ck_assert_ptr_nonnull(file = slurp("b.pvb", &len));
	ck_assert_int_eq(mkdir("restored", 0700), 0);
	ck_assert_int_ge(fd = open("restored/data.mdb", O_WRONLY | O_CREAT |
	    O_EXCL, 0600), 0);
	{
		uint64_t dlen = 0;

		for (int i = 0; i < 8; i++)
			dlen = dlen << 8 | (unsigned char)file[24 + i];
		ck_assert_uint_lt(dlen, len);
		ck_assert_int_eq(write(fd, file + BK_HEAD, (size_t)dlen),
		    (ssize_t)dlen);
	}
	ck_assert_int_eq(close(fd), 0);
	run(&r, NULL, NULL, "audit", "verify", "--data-dir", "restored", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	ck_assert_uint_eq(records((const char *const[]){
	    "PIIVAULT_DATA_DIR=restored", NULL }), nrec);

	/* --deep: every record opened, no value printed, nothing left. */
	ck_assert_int_eq(mkdir("tmpd", 0700), 0);
	{
		const char *const tmpd[] = { "TMPDIR=tmpd", NULL };
		char want[128];

		run(&r, tmpd, NULL, "backup", "verify", "b.pvb", "--deep",
		    NULL);
		ck_assert_exit(&r, 0);
		(void)snprintf(want, sizeof(want), "deep: %llu records opened "
		    "(%llu fields authenticated), 0 shredded, 0 under a "
		    "retired or destroyed KEK\ndeep: audit chain verified: ",
		    nrec, 3 * nrec);
		ck_assert_msg(strstr(r.out, want) != NULL, "[%s]", r.out);
		ck_assert_msg(strstr(r.out, "Ada") == NULL &&
		    strstr(r.err, "Ada") == NULL, "a value: [%s]", r.out);
		run_free(&r);
		expect_fail(1, "wrong root key", tmpd, "backup", "verify",
		    "b.pvb", "--deep", "--key-file", "other.key", NULL);
		ck_assert_int_eq(rmdir("tmpd"), 0);	/* empty */
	}

	/* Never the root key, as its file has it or as bytes. */
	ck_assert_ptr_nonnull(keytext = slurp("piivault.key", &klen));
	ck_assert_uint_gt(klen, 40);
	ck_assert(!has_bytes(file, len, keytext, 40));
	ck_assert_int_eq(pv_key_from_base64(key, keytext, strcspn(keytext,
	    "\n")), PV_OK);
	ck_assert(!has_bytes(file, len, key, sizeof(key)));
	free(keytext);

	/* An existing file is refused and left alone; so is no --to. */
	expect_fail(1, "b.pvb", NULL, "backup", "--to", "b.pvb", NULL);
	assert_file_is("b.pvb", file, len);
	expect_fail(2, "expected --to FILE", NULL, "backup", NULL);
	expect_fail(2, "unexpected argument", NULL, "backup", "--to", "c.pvb",
	    "x", NULL);
	ck_assert(!exists("c.pvb"));
	expect_fail(2, "expected FILE", NULL, "backup", "verify", NULL);
	expect_fail(1, "nothere.pvb", NULL, "backup", "verify", "nothere.pvb",
	    NULL);
	free(file);
	su_srv_stop();
}
END_TEST

/* A byte changed, or the length: verify names the part that fails. */
static const struct {
	const char	*what;
	long		 at;	/* >= 0 from the start, < 0 from the end */
	long		 cut;	/* the new length, from the end; 0: none */
	const char	*want;
} bk_damage[] = {
	{ "magic", 3, 0, "header fails: not a backup" },
	{ "version", 11, 0, "header fails" },
	{ "data length", 30, 0, "header fails" },
	{ "data digest", 40, 0, "header fails" },
	{ "header digest", 140, 0, "header fails" },
	{ "data, first page", BK_HEAD + 20, 0, "data fails" },
	{ "data, late", BK_HEAD + 9000, 0, "data fails" },
	{ "manifest", -(64 + 20), 0, "manifest fails" },
	{ "signature", -5, 0, "signature fails" },
	{ "truncated by one", 0, -1, "length fails" },
	{ "truncated in the data", 0, -4000, "length fails" },
	{ "truncated in the header", 0, -100000, "length fails" },
	{ "extended", 0, 1, "length fails" },
};

START_TEST(test_backup_damage)
{
	char pub[64], arg[80], *file;
	size_t len;
	long at, n;

	init_ok(NULL, NULL);
	puts_at(NULL, 2);
	backup_ok("b.pvb");
	public_key(pub, "piivault-data");
	ck_assert_int_lt(snprintf(arg, sizeof(arg), "--public-key=%s", pub),
	    (int)sizeof(arg));
	ck_assert_ptr_nonnull(file = slurp("b.pvb", &len));
	ck_assert_uint_gt(len, BK_HEAD + 9000 + 1000);
	n = (long)len;
	if (bk_damage[_i].cut != 0) {
		n = bk_damage[_i].cut < -(long)len + 10 ? 100 :
		    (long)len + bk_damage[_i].cut;
		if (bk_damage[_i].cut > 0) {
			file = realloc(file, len + 1);
			ck_assert_ptr_nonnull(file);
			file[len] = 'x';
		}
	} else {
		at = bk_damage[_i].at >= 0 ? bk_damage[_i].at :
		    (long)len + bk_damage[_i].at;
		file[at] ^= 0x01;
	}
	write_file("bad.pvb", file, (size_t)n, 0600);
	expect_fail(1, bk_damage[_i].want, NULL, "backup", "verify", "bad.pvb",
	    NULL);
	expect_fail(1, bk_damage[_i].want, NULL, "backup", "verify", "bad.pvb",
	    arg, NULL);
	free(file);
}
END_TEST

/*
 * A record shredded before the backup leaves none of its bytes in it,
 * though they are still in the live file's freed pages: the copy is a
 * compacting one.  The record's bytes are those the put added that a
 * compacted copy of the vault after the shred no longer has.
 */
START_TEST(test_backup_no_shredded_bytes)
{
	char id[ID_BUF], *before, *put, *after, *compacted, *file, *big;
	size_t lb, lp, la, lc, lf, dead = 0, live = 0;
	struct run r;

	init_ok(NULL, NULL);
	ck_assert_ptr_nonnull(before = slurp("piivault-data/data.mdb", &lb));
	big = long_value(4000, 'q');
	run(&r, NULL, big, "put", NULL);
	ck_assert_exit(&r, 0);
	json_id(r.out, "id", "rec_", id);
	run_free(&r);
	free(big);
	ck_assert_ptr_nonnull(put = slurp("piivault-data/data.mdb", &lp));
	run(&r, NULL, NULL, "shred", id, NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	ck_assert_ptr_nonnull(after = slurp("piivault-data/data.mdb", &la));
	backup_ok("b.pvb");
	ck_assert_ptr_nonnull(file = slurp("b.pvb", &lf));
	run(&r, NULL, NULL, "backup", "verify", "b.pvb", "--deep", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "deep: 0 records opened (0 fields "
	    "authenticated), 1 shredded,") != NULL, "[%s]", r.out);
	run_free(&r);
	ck_assert_int_eq(system("cp -a piivault-data compacted"), 0);
	run(&r, NULL, NULL, "compact", "--data-dir", "compacted", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	ck_assert_ptr_nonnull(compacted = slurp("compacted/data.mdb", &lc));
	for (size_t off = 0; off + 32 <= lp; off += 16) {
		const char *w = put + off;

		if (has_bytes(before, lb, w, 32) ||
		    has_bytes(compacted, lc, w, 32))
			continue;
		dead++;
		if (has_bytes(after, la, w, 32))
			live++;
		ck_assert_msg(!has_bytes(file, lf, w, 32),
		    "the backup holds bytes of the shredded record (at %zu)",
		    off);
	}
	/* The test can see what it looks for: the live file still has it. */
	ck_assert_uint_gt(dead, 100);
	ck_assert_uint_gt(live, 100);
	/* The manifest counts the shred epochs (none here; one, then two). */
	for (int i = 1; i <= 2; i++) {
		char name[32], want[48];

		run(&r, NULL, NULL, "kms", "shred-epoch", NULL);
		ck_assert_exit(&r, 0);
		run_free(&r);
		(void)snprintf(name, sizeof(name), "e%d.pvb", i);
		(void)snprintf(want, sizeof(want), "\"shred_epochs\":%d,", i);
		backup_ok(name);
		run(&r, NULL, NULL, "backup", "verify", name, NULL);
		ck_assert_exit(&r, 0);
		ck_assert_msg(strstr(r.out, want) != NULL, "[%s]", r.out);
		run_free(&r);
	}
	free(before);
	free(put);
	free(after);
	free(compacted);
	free(file);
}
END_TEST

/*
 * kill -9 in the middle of a backup leaves no FILE, only names that say
 * they are not complete (and do not verify); the server goes on
 * answering, and the next backup works.
 */
START_TEST(test_backup_killed)
{
	const char *const kill9[] = { "PIIVAULT_TEST_BACKUP_KILL=1", NULL };
	struct dirent *e;
	struct su_resp h;
	struct run r;
	int left = 0;
	DIR *d;

	run_bin = PIIVAULT_TEST_BIN;
	init_ok(NULL, NULL);
	puts_at(NULL, 2);
	su_srv_start_local("piivault.key", NULL, NULL);
	run(&r, kill9, NULL, "backup", "--to", "b.pvb", NULL);
	ck_assert_exit(&r, 128 + SIGKILL);
	run_free(&r);
	ck_assert(!exists("b.pvb"));
	ck_assert_ptr_nonnull(d = opendir("."));
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "b.pvb", 5) != 0)
			continue;
		ck_assert_msg(strncmp(e->d_name, "b.pvb.incomplete-", 17) == 0
		    || strncmp(e->d_name, "b.pvb.copy-", 11) == 0,
		    "%s is left", e->d_name);
		if (e->d_name[6] == 'i') {
			expect_fail(1, "fails", NULL, "backup", "verify",
			    e->d_name, NULL);
			left++;
		}
	}
	(void)closedir(d);
	ck_assert_int_eq(left, 1);
	su_req(&h, "GET", "/v1/health", NULL, "", NULL, 0);
	ck_assert_int_eq(h.status, 200);
	su_resp_free(&h);
	run_bin = PIIVAULT_BIN;
	backup_ok("b.pvb");
	run(&r, NULL, NULL, "backup", "verify", "b.pvb", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	su_srv_stop();
}
END_TEST

/*
 * A backup whose data was edited and its digests made again: without a
 * key it passes as "signature not anchored"; the public key catches it,
 * and so does --deep, naming the records.
 */
START_TEST(test_backup_deep_tamper)
{
	char *before, *put, *file, pub[64], arg[80];
	size_t lb, lp, lf, hit = 0;
	struct pv_sha256 *h;
	struct run r;
	uint64_t dlen = 0;
	char *big;

	init_ok(NULL, NULL);
	ck_assert_ptr_nonnull(before = slurp("piivault-data/data.mdb", &lb));
	big = long_value(4000, 'q');
	run(&r, NULL, big, "put", NULL);
	ck_assert_exit(&r, 0);
	run_free(&r);
	free(big);
	ck_assert_ptr_nonnull(put = slurp("piivault-data/data.mdb", &lp));
	backup_ok("b.pvb");
	ck_assert_ptr_nonnull(file = slurp("b.pvb", &lf));
	for (int i = 0; i < 8; i++)
		dlen = dlen << 8 | (unsigned char)file[24 + i];
	/* Deep inside the big value's ciphertext: new bytes all around. */
	for (size_t off = 1024; off + 1024 + 32 <= lp && hit == 0; off += 16) {
		const char *w;

		if (has_bytes(before, lb, put + off - 1024, 32) ||
		    has_bytes(before, lb, put + off, 32) ||
		    has_bytes(before, lb, put + off + 1024, 32))
			continue;
		w = memmem(file + BK_HEAD, (size_t)dlen, put + off, 32);
		if (w != NULL)
			hit = (size_t)(w - file);
	}
	ck_assert_uint_gt(hit, BK_HEAD);
	file[hit + 5] ^= 0x01;
	ck_assert_int_eq(pv_sha256_new(&h), PV_OK);
	ck_assert_int_eq(pv_sha256_update(h, file + BK_HEAD, (size_t)dlen),
	    PV_OK);
	ck_assert_int_eq(pv_sha256_final(h, (uint8_t *)file + 32), PV_OK);
	ck_assert_int_eq(pv_sha256_new(&h), PV_OK);
	ck_assert_int_eq(pv_sha256_update(h, file, 128), PV_OK);
	ck_assert_int_eq(pv_sha256_final(h, (uint8_t *)file + 128), PV_OK);
	write_file("forged.pvb", file, lf, 0600);

	run(&r, NULL, NULL, "backup", "verify", "forged.pvb", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "signature not anchored") != NULL, "[%s]",
	    r.out);
	run_free(&r);
	public_key(pub, "piivault-data");
	ck_assert_int_lt(snprintf(arg, sizeof(arg), "--public-key=%s", pub),
	    (int)sizeof(arg));
	expect_fail(1, "signature fails: it does not verify", NULL, "backup",
	    "verify", "forged.pvb", arg, NULL);
	run(&r, NULL, NULL, "backup", "verify", "forged.pvb", "--deep", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_msg(strstr(r.err, "forged.pvb: records fail: ") != NULL &&
	    strstr(r.out, "deep: ") == NULL, "[%s] [%s]", r.out, r.err);
	run_free(&r);
	/* The genuine one passes deep. */
	run(&r, NULL, NULL, "backup", "verify", "b.pvb", "--deep", arg, NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "deep: 1 records opened (1 fields "
	    "authenticated)") != NULL, "[%s]", r.out);
	run_free(&r);
	free(before);
	free(put);
	free(file);
}
END_TEST

static TCase *
tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, case_setup, su_case_teardown);
	tcase_add_checked_fixture(tc, su_srv_setup, su_srv_teardown);
	tcase_set_timeout(tc, TIMEOUT);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *
cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc;

	tc = tcase(s, "usage");
	tcase_add_loop_test(tc, test_help, 0,
	    (int)(sizeof(help_cmds) / sizeof(help_cmds[0])));
	tcase_add_test(tc, test_version);
	tcase_add_loop_test(tc, test_usage_errors, 0,
	    (int)(sizeof(usage_errs) / sizeof(usage_errs[0])));

	tc = tcase(s, "init");
	tcase_add_test(tc, test_init_creates);
	tcase_add_test(tc, test_init_twice);
	tcase_add_test(tc, test_init_existing_key_file);
	tcase_add_test(tc, test_init_failure_leaves_nothing);

	tc = tcase(s, "records");
	tcase_add_test(tc, test_put_get_lookup);
	tcase_add_test(tc, test_put_lines);
	tcase_add_loop_test(tc, test_put_bad_input, 0,
	    (int)(sizeof(bad_puts) / sizeof(bad_puts[0])));
	tcase_add_test(tc, test_get_unknown_and_malformed);

	tc = tcase(s, "keyfile");
	tcase_add_loop_test(tc, test_key_file_mode, 0,
	    (int)(sizeof(bad_modes) / sizeof(bad_modes[0])));
	tcase_add_test(tc, test_key_file_bad_content);
	tcase_add_test(tc, test_key_file_wrong_key);
	tcase_add_test(tc, test_key_file_missing);
	tcase_add_test(tc, test_key_file_symlink);

	tc = tcase(s, "paths");
	tcase_add_test(tc, test_dir_options);
	tcase_add_test(tc, test_dir_env);

	tc = tcase(s, "passphrase");
	tcase_add_test(tc, test_passphrase);
	tcase_add_test(tc, test_passphrase_init_retry);

	tc = tcase(s, "at_rest");
	tcase_add_test(tc, test_no_plaintext_at_rest);

	tc = tcase(s, "env");
	tcase_add_test(tc, test_fake_now_release);
	tcase_add_loop_test(tc, test_env_numbers, 0,
	    (int)(sizeof(knobs) / sizeof(knobs[0])));
	tcase_add_test(tc, test_env_numbers_good);

	tc = tcase(s, "apikey");
	tcase_add_loop_test(tc, test_apikey_role_options, 0,
	    (int)(sizeof(role_opts) / sizeof(role_opts[0])));
	tcase_add_test(tc, test_apikey_admin_restricted);
	tcase_add_test(tc, test_apikey_cert);

	tc = tcase(s, "signing");
	tcase_add_test(tc, test_receipt_v1_verifies);
	tcase_add_test(tc, test_rotate_signing);

	tc = tcase(s, "datadir");
	tcase_add_loop_test(tc, test_data_dir_mode, 0,
	    (int)(sizeof(bad_dir_modes) / sizeof(bad_dir_modes[0])));
	tcase_add_loop_test(tc, test_path_errors, 0,
	    (int)(sizeof(path_errs) / sizeof(path_errs[0])));

	tc = tcase(s, "semantics");
	tcase_add_test(tc, test_option_refusals);
	tcase_add_test(tc, test_option_help);
	tcase_add_test(tc, test_rewrap_from);
	tcase_add_test(tc, test_unretire);
	tcase_add_test(tc, test_times);

	tc = tcase(s, "audit");
	tcase_add_test(tc, test_audit_archive);
	tcase_add_test(tc, test_audit_archive_resume);

	tc = tcase(s, "backup");
	tcase_add_test(tc, test_backup_verify);
	tcase_add_loop_test(tc, test_backup_damage, 0,
	    (int)(sizeof(bk_damage) / sizeof(bk_damage[0])));
	tcase_add_test(tc, test_backup_no_shredded_bytes);
	tcase_add_test(tc, test_backup_killed);
	tcase_add_test(tc, test_backup_deep_tamper);

	tc = tcase(s, "config");
	tcase_add_test(tc, test_config_precedence);
	tcase_add_loop_test(tc, test_config_refusals, 0,
	    (int)(sizeof(bad_confs) / sizeof(bad_confs[0])));
	tcase_add_test(tc, test_config_file_checks);
	tcase_add_test(tc, test_check_config);
	tcase_add_test(tc, test_common_before_command);
	tcase_add_test(tc, test_help_everywhere);
	return s;
}

int
main(void)
{
	return tu_run(cli_suite());
}
