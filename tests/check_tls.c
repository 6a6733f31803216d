/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_tls.c: TLS as a client sees it, and the listening socket.
 *
 * Each test makes, with the openssl command in its own directory, a CA, a
 * server certificate (RSA, so that static-RSA key exchange could be
 * offered), two client certificates from the CA and one from another CA,
 * then runs the real server (PIIVAULT_BIN serve) with TLS on a port the
 * kernel picks, and checks:
 *   - protocols and suites, with openssl s_client: TLS 1.0 and 1.1 are
 *     refused, TLS 1.2 with a CBC suite or with static-RSA key exchange is
 *     refused, TLS 1.2 ECDHE with AES-GCM and TLS 1.3 are accepted, and
 *     the server picks its own first choice over the client's order;
 *     --tls-priorities replaces the default, and a bad one stops serve;
 *   - mutual TLS (--tls-client-ca): without a client certificate, or with
 *     one from another CA, or with the CA's server certificate, no
 *     request is answered (the handshake fails); with one from the CA the
 *     API answers;
 *   - an API key bound to one certificate (apikey create
 *     --client-cert-sha256) gets 401 over a connection with the other
 *     good certificate, or with none, and is accepted with its own;
 *   - a second serve on an address in use (of another vault) fails at
 *     start naming the address; a bad --listen is exit 2, saying why.
 * Nothing here is timed.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <curl/curl.h>

#include "pv.h"
#include "vault.h"
#include "srvutil.h"
#include "testutil.h"

#define TIMEOUT		120	/* seconds per test, for the sanitizer build */
#define KEY_BUF		(VAULT_APIKEY_SECRET_LEN + 1)

extern char **environ;

/* The openssl configuration the certificates are made with. */
static const char openssl_cnf[] =
    "[req]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[dn]\n"
    "CN = piivault-test\n"
    "[ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[srv]\n"
    "basicConstraints = CA:FALSE\n"
    "subjectAltName = IP:127.0.0.1\n"
    "extendedKeyUsage = serverAuth\n"
    "[cli]\n"
    "basicConstraints = CA:FALSE\n"
    "extendedKeyUsage = clientAuth\n";

static unsigned	port;		/* of the running server */

/* Helpers: commands. */

/*
 * Run argv (argv[0] found on PATH) in su_tdir, stdin /dev/null, stdout
 * and stderr into su_tdir/cmd.out; its exit status (128 + signal).  The
 * output is left in out (cap bytes, NUL-terminated) if out is not NULL.
 */
static int
run(const char *const *argv, char *out, size_t cap)
{
	posix_spawn_file_actions_t fa;
	char path[PATH_MAX + 16], *got;
	pid_t pid;
	int st;

	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/cmd.out", su_tdir),
	    (int)sizeof(path));
	ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
	ck_assert_int_eq(posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
	    O_RDONLY, 0), 0);
	ck_assert_int_eq(posix_spawn_file_actions_addopen(&fa, 1, path,
	    O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, 1, 2), 0);
	ck_assert_msg(posix_spawnp(&pid, argv[0], &fa, NULL,
	    (char *const *)(uintptr_t)argv, environ) == 0, "cannot run %s",
	    argv[0]);
	(void)posix_spawn_file_actions_destroy(&fa);
	st = su_wait_for(pid, 60000);
	if (st < 0) {
		(void)kill(pid, SIGKILL);
		(void)su_wait_for(pid, 10000);
		ck_abort_msg("%s did not finish", argv[0]);
	}
	if (out != NULL) {
		got = su_slurp(path, NULL);
		(void)snprintf(out, cap, "%s", got != NULL ? got : "");
		free(got);
	}
	return st;
}

/* The test's file name (in su_tdir). */
static const char *
tfile(char buf[static PATH_MAX + 32], const char *name)
{
	ck_assert_int_lt(snprintf(buf, PATH_MAX + 32, "%s/%s", su_tdir, name),
	    PATH_MAX + 32);
	return buf;
}

/*
 * NAME.key and NAME.pem: a key (RSA 2048 or EC P-256) and a certificate
 * with the extensions of section ext, signed by ca (NAME of a made CA) or
 * by itself (ca NULL).
 */
static void
make_cert(const char *name, const char *ext, const char *ca, int rsa)
{
	char keyp[PATH_MAX + 32], pemp[PATH_MAX + 32], cnf[PATH_MAX + 32];
	char cap[PATH_MAX + 32], cakey[PATH_MAX + 32], subj[80], out[4096];
	const char *argv[32] = { "openssl", "req", "-x509", "-config",
	    tfile(cnf, "openssl.cnf"), "-extensions", ext, "-newkey",
	    rsa ? "rsa:2048" : "ec", "-nodes", "-keyout", keyp, "-out", pemp,
	    "-days", "2", "-subj", subj };
	size_t n = 18;
	char kname[64], pname[64];

	(void)snprintf(kname, sizeof(kname), "%s.key", name);
	(void)snprintf(pname, sizeof(pname), "%s.pem", name);
	(void)tfile(keyp, kname);
	(void)tfile(pemp, pname);
	(void)snprintf(subj, sizeof(subj), "/CN=%s", name);
	if (!rsa) {
		argv[n++] = "-pkeyopt";
		argv[n++] = "ec_paramgen_curve:P-256";
	}
	if (ca != NULL) {
		(void)snprintf(kname, sizeof(kname), "%s.key", ca);
		(void)snprintf(pname, sizeof(pname), "%s.pem", ca);
		argv[n++] = "-CA";
		argv[n++] = tfile(cap, pname);
		argv[n++] = "-CAkey";
		argv[n++] = tfile(cakey, kname);
	}
	argv[n] = NULL;
	ck_assert_msg(run(argv, out, sizeof(out)) == 0, "openssl req %s: %s",
	    name, out);
}

/* The SHA-256 of NAME.pem's DER, as openssl prints it (hex, colons). */
static void
cert_sha256(const char *name, char out[static 128])
{
	char pem[PATH_MAX + 32], pname[64], buf[512], *eq, *nl;
	const char *argv[] = { "openssl", "x509", "-in", pem, "-noout",
	    "-fingerprint", "-sha256", NULL };

	(void)snprintf(pname, sizeof(pname), "%s.pem", name);
	(void)tfile(pem, pname);
	ck_assert_int_eq(run(argv, buf, sizeof(buf)), 0);
	ck_assert_ptr_nonnull(eq = strchr(buf, '='));
	if ((nl = strchr(eq, '\n')) != NULL)
		*nl = '\0';
	ck_assert_uint_eq(strlen(eq + 1), 95);	/* 32 bytes, 31 colons */
	(void)snprintf(out, 128, "%s", eq + 1);
}

/* Helpers: the server. */

/*
 * Start piivault serve --listen 127.0.0.1:0 with TLS (srv.pem, srv.key)
 * and extra (NULL-terminated, or NULL); wait for its https URL.
 */
static void
tls_start(const char *const *extra)
{
	static const char prefix[] = "piivault: listening on https://127.0.0.1:";
	const char *args[SU_ARGS_MAX + 1] = { "serve", "--listen",
	    "127.0.0.1:0", "--tls-cert", "srv.pem", "--tls-key", "srv.key" };
	char line[256];
	size_t n = 7, len = 0;
	struct pollfd pfd;
	int errfd, waited = 0;
	ssize_t got;

	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
		ck_assert_uint_lt(n, SU_ARGS_MAX);
		args[n++] = extra[i];
	}
	args[n] = NULL;
	ck_assert_int_eq(su_srv.pid, 0);
	ck_assert_int_ge(errfd = open(su_logpath, O_WRONLY | O_CREAT |
	    O_APPEND | O_CLOEXEC, 0600), 0);
	su_srv.pid = su_spawn(args, NULL, &su_srv.out, errfd);
	(void)close(errfd);
	line[0] = '\0';
	while (strchr(line, '\n') == NULL) {
		pfd.fd = su_srv.out;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 100) <= 0) {
			ck_assert_msg((waited += 100) < su_wait_ms, "serve did "
			    "not say where it listens; log [%s]",
			    su_server_log());
			continue;
		}
		got = read(su_srv.out, line + len, sizeof(line) - 1 - len);
		ck_assert_msg(got > 0, "serve exited before listening; log "
		    "[%s]", su_server_log());
		len += (size_t)got;
		line[len] = '\0';
		ck_assert_uint_lt(len, sizeof(line) - 1);
	}
	ck_assert_msg(strncmp(line, prefix, sizeof(prefix) - 1) == 0,
	    "serve said [%s]", line);
	ck_assert_int_eq(sscanf(line + sizeof(prefix) - 1, "%u", &port), 1);
	(void)snprintf(su_srv.url, sizeof(su_srv.url), "https://127.0.0.1:%u",
	    port);
	(void)snprintf(su_srv.base, sizeof(su_srv.base), "%s", su_srv.url);
}

/*
 * Run piivault args (NULL-terminated) expecting it to fail at start: its
 * exit status, and its stderr in err.  A server that starts instead is
 * stopped and the test fails.
 */
static int
serve_fails(const char *const *args, char *err, size_t cap)
{
	char path[PATH_MAX + 32], *got, line[256];
	ssize_t n;
	pid_t pid;
	int out, errfd, st;

	ck_assert_int_ge(errfd = open(tfile(path, "fail.err"), O_WRONLY |
	    O_CREAT | O_TRUNC | O_CLOEXEC, 0600), 0);
	pid = su_spawn(args, NULL, &out, errfd);
	(void)close(errfd);
	st = su_wait_for(pid, su_wait_ms);
	n = read(out, line, sizeof(line) - 1);
	line[n > 0 ? n : 0] = '\0';
	(void)close(out);
	if (st < 0) {
		(void)kill(pid, SIGKILL);
		(void)su_wait_for(pid, su_wait_ms);
	}
	got = su_slurp(path, NULL);
	(void)snprintf(err, cap, "%s", got != NULL ? got : "");
	free(got);
	ck_assert_msg(st >= 0, "serve %s started instead of failing: [%s]",
	    args[1], line);
	return st;
}

/*
 * openssl s_client to the server with extra options: 1 if the handshake
 * completed (its protocol and suite then in proto and suite), else 0.
 * The client is opened up (@SECLEVEL=0 where extra gives -cipher) so
 * that what is refused is refused by the server.
 */
static int
handshake(const char *const *extra, char proto[static 32],
    char suite[static 64])
{
	char connect[32], ca[PATH_MAX + 32], out[16384];
	const char *argv[SU_ARGS_MAX + 1] = { "openssl", "s_client",
	    "-connect", connect, "-brief", "-CAfile", tfile(ca, "ca.pem"),
	    "-verify_return_error" };
	const char *p;
	size_t n = 8;
	int st;

	(void)snprintf(connect, sizeof(connect), "127.0.0.1:%u", port);
	for (size_t i = 0; extra[i] != NULL; i++) {
		ck_assert_uint_lt(n, SU_ARGS_MAX);
		argv[n++] = extra[i];
	}
	argv[n] = NULL;
	st = run(argv, out, sizeof(out));
	proto[0] = suite[0] = '\0';
	if ((p = strstr(out, "Protocol version: ")) != NULL)
		(void)sscanf(p + 18, "%31s", proto);
	if ((p = strstr(out, "Ciphersuite: ")) != NULL)
		(void)sscanf(p + 13, "%63s", suite);
	return st == 0 && proto[0] != '\0' && suite[0] != '\0';
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/*
 * One request over a new TLS connection, with client certificate NAME
 * (NAME.pem, NAME.key) or none (NULL), and API key secret (or NULL): the
 * HTTP status, or -1 when no answer came (err says why).
 */
static long
https(const char *method, const char *path, const char *cert,
    const char *secret, char err[static CURL_ERROR_SIZE])
{
	char url[256], ca[PATH_MAX + 32], pem[PATH_MAX + 32], key[PATH_MAX + 32];
	char auth[KEY_BUF + 32], name[64];
	static const char body[] = "{\"fields\":{\"email\":"
	    "\"tls-3391@example.org\"}}";
	struct curl_slist *hl = NULL;
	long status = -1;
	CURLcode cc;
	CURL *c;

	err[0] = '\0';
	ck_assert_ptr_nonnull(c = curl_easy_init());
	(void)snprintf(url, sizeof(url), "%s%s", su_srv.base, path);
	(void)curl_easy_setopt(c, CURLOPT_URL, url);
	(void)curl_easy_setopt(c, CURLOPT_PROXY, "");
	(void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	(void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	(void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	(void)curl_easy_setopt(c, CURLOPT_CAINFO, tfile(ca, "ca.pem"));
	(void)curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	if (cert != NULL) {
		(void)snprintf(name, sizeof(name), "%s.pem", cert);
		(void)curl_easy_setopt(c, CURLOPT_SSLCERT, tfile(pem, name));
		(void)snprintf(name, sizeof(name), "%s.key", cert);
		(void)curl_easy_setopt(c, CURLOPT_SSLKEY, tfile(key, name));
	}
	if (secret != NULL) {
		(void)snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		    secret);
		ck_assert_ptr_nonnull(hl = curl_slist_append(hl, auth));
	}
	if (strcmp(method, "POST") == 0) {
		ck_assert_ptr_nonnull(hl = curl_slist_append(hl,
		    "Content-Type: application/json"));
		(void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	(void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	if ((cc = curl_easy_perform(c)) == CURLE_OK)
		(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else if (err[0] == '\0')
		(void)snprintf(err, CURL_ERROR_SIZE, "%s",
		    curl_easy_strerror(cc));
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
	return status;
}

/* Fixture: a vault, the certificates; no server yet. */

static void
case_setup(void)
{
	su_case_setup("tls");
}

static void
setup(void)
{
	char cnf[PATH_MAX + 32];
	struct su_run r;
	FILE *f;

	su_srv_setup();
	su_cli(&r, NULL, "init", NULL);
	ck_assert_msg(r.status == 0, "init: %s", r.err);
	su_run_free(&r);
	ck_assert_ptr_nonnull(f = fopen(tfile(cnf, "openssl.cnf"), "w"));
	ck_assert_int_ge(fputs(openssl_cnf, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	make_cert("ca", "ca", NULL, 0);
	make_cert("srv", "srv", "ca", 1);
	make_cert("client-a", "cli", "ca", 0);
	make_cert("client-b", "cli", "ca", 0);
	make_cert("other-ca", "ca", NULL, 0);
	make_cert("client-x", "cli", "other-ca", 0);
}

/* Tests: protocols and suites. */

START_TEST(test_tls_protocols_and_suites)
{
	/* Refused: each is offered alone, and the client allows it. */
	static const char *const refused[][8] = {
		{ "-tls1", "-cipher", "ALL:@SECLEVEL=0", NULL },
		{ "-tls1_1", "-cipher", "ALL:@SECLEVEL=0", NULL },
		{ "-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA:@SECLEVEL=0",
		    NULL },
		{ "-tls1_2", "-cipher", "ECDHE-RSA-AES256-SHA384:@SECLEVEL=0",
		    NULL },
		{ "-tls1_2", "-cipher", "AES128-GCM-SHA256:@SECLEVEL=0", NULL },
		{ "-tls1_2", "-cipher", "AES256-SHA:@SECLEVEL=0", NULL },
	};
	static const char *const tls12_gcm[] = { "-tls1_2", "-cipher",
	    "ECDHE-RSA-AES128-GCM-SHA256", NULL };
	static const char *const tls13[] = { "-tls1_3", NULL };
	/* The client prefers AES-128; the server's first choice is 256. */
	static const char *const order12[] = { "-tls1_2", "-cipher",
	    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384", NULL };
	static const char *const order13[] = { "-tls1_3", "-ciphersuites",
	    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384", NULL };
	char proto[32], suite[64], err[CURL_ERROR_SIZE];
	long st;

	tls_start(NULL);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		ck_assert_msg(!handshake(refused[i], proto, suite),
		    "%s %s accepted: %s %s", refused[i][0], refused[i][2],
		    proto, suite);
	ck_assert_msg(handshake(tls12_gcm, proto, suite), "TLS 1.2 ECDHE "
	    "AES-GCM refused");
	ck_assert_str_eq(proto, "TLSv1.2");
	ck_assert_str_eq(suite, "ECDHE-RSA-AES128-GCM-SHA256");
	ck_assert_msg(handshake(tls13, proto, suite), "TLS 1.3 refused");
	ck_assert_str_eq(proto, "TLSv1.3");
	ck_assert_msg(handshake(order12, proto, suite), "TLS 1.2 refused");
	ck_assert_msg(strcmp(suite, "ECDHE-RSA-AES256-GCM-SHA384") == 0,
	    "TLS 1.2: the client's order won: %s", suite);
	ck_assert_msg(handshake(order13, proto, suite), "TLS 1.3 refused");
	ck_assert_msg(strcmp(suite, "TLS_AES_256_GCM_SHA384") == 0,
	    "TLS 1.3: the client's order won: %s", suite);
	st = https("GET", "/v1/health", NULL, NULL, err);
	ck_assert_msg(st == 200, "health over TLS: %ld %s", st, err);
	su_srv_stop();
}
END_TEST

START_TEST(test_tls_priorities_option)
{
	static const char *const only12[] = { "--tls-priorities",
	    "SECURE128:-VERS-ALL:+VERS-TLS1.2:%SERVER_PRECEDENCE", NULL };
	static const char *const bad[] = { "serve", "--listen", "127.0.0.1:0",
	    "--tls-cert", "srv.pem", "--tls-key", "srv.key",
	    "--tls-priorities", "NORMAL:+NO-SUCH-THING", NULL };
	static const char *const ca_no_tls[] = { "serve", "--listen",
	    "127.0.0.1:0", "--tls-client-ca", "ca.pem", NULL };
	static const char *const tls12[] = { "-tls1_2", NULL };
	static const char *const tls13[] = { "-tls1_3", NULL };
	char proto[32], suite[64], err[4096];
	int st;

	tls_start(only12);
	ck_assert_msg(!handshake(tls13, proto, suite), "TLS 1.3 accepted");
	ck_assert_msg(handshake(tls12, proto, suite), "TLS 1.2 refused");
	su_srv_stop();

	st = serve_fails(bad, err, sizeof(err));
	ck_assert_msg(st != 0 && strstr(err, "--tls-priorities") != NULL,
	    "bad priorities: exit %d [%s]", st, err);
	st = serve_fails(ca_no_tls, err, sizeof(err));
	ck_assert_msg(st == 2 && strstr(err, "--tls-client-ca") != NULL,
	    "client CA without TLS: exit %d [%s]", st, err);
}
END_TEST

/* Tests: mutual TLS and keys bound to a certificate. */

static const struct su_apikey writer = { "tls-writer", "writer", NULL, NULL,
    NULL };

START_TEST(test_mtls_required)
{
	static const char *const mtls[] = { "--tls-client-ca", "ca.pem", NULL };
	static const char *const nocert12[] = { "-tls1_2", NULL };
	char key[KEY_BUF], err[CURL_ERROR_SIZE], proto[32], suite[64];
	long st;

	su_apikey_create(key, NULL, NULL, &writer);
	tls_start(mtls);
	st = https("GET", "/v1/health", NULL, NULL, err);
	ck_assert_msg(st == -1, "no client certificate: answered %ld", st);
	st = https("POST", "/v1/records", NULL, key, err);
	ck_assert_msg(st == -1, "no client certificate: answered %ld", st);
	st = https("POST", "/v1/records", "client-x", key, err);
	ck_assert_msg(st == -1, "another CA's certificate: answered %ld", st);
	/* The CA's, but for servers only (extendedKeyUsage serverAuth). */
	st = https("POST", "/v1/records", "srv", key, err);
	ck_assert_msg(st == -1, "a server certificate: answered %ld", st);
	/* In TLS 1.2 the certificate comes before Finished. */
	ck_assert_msg(!handshake(nocert12, proto, suite), "TLS 1.2 handshake "
	    "without a client certificate completed");
	st = https("GET", "/v1/health", "client-a", NULL, err);
	ck_assert_msg(st == 200, "health: %ld %s", st, err);
	st = https("POST", "/v1/records", "client-a", key, err);
	ck_assert_msg(st == 201, "create: %ld %s", st, err);
	st = https("POST", "/v1/records", "client-b", key, err);
	ck_assert_msg(st == 201, "create: %ld %s", st, err);
	su_srv_stop();
}
END_TEST

START_TEST(test_cert_bound_key)
{
	static const char *const mtls[] = { "--tls-client-ca", "ca.pem", NULL };
	static const struct su_apikey bound = { "tls-bound", "writer", NULL,
	    NULL, NULL };
	const char *extra[] = { "--client-cert-sha256", NULL, NULL };
	char key[KEY_BUF], plain[KEY_BUF], fp[128], err[CURL_ERROR_SIZE];
	long st;

	cert_sha256("client-a", fp);
	extra[1] = fp;
	su_apikey_create(key, NULL, extra, &bound);
	su_apikey_create(plain, NULL, NULL, &writer);

	tls_start(mtls);
	st = https("POST", "/v1/records", "client-b", key, err);
	ck_assert_msg(st == 401, "bound key, another good certificate: %ld %s",
	    st, err);
	st = https("POST", "/v1/records", "client-a", key, err);
	ck_assert_msg(st == 201, "bound key, its certificate: %ld %s", st,
	    err);
	st = https("POST", "/v1/records", "client-b", plain, err);
	ck_assert_msg(st == 201, "unbound key: %ld %s", st, err);
	su_srv_stop();

	/* No client certificate asked for: the bound key never holds. */
	tls_start(NULL);
	st = https("POST", "/v1/records", NULL, key, err);
	ck_assert_msg(st == 401, "bound key, no certificate: %ld %s", st,
	    err);
	st = https("POST", "/v1/records", "client-a", key, err);
	ck_assert_msg(st == 401, "bound key, certificate not asked for: "
	    "%ld %s", st, err);
	st = https("POST", "/v1/records", NULL, plain, err);
	ck_assert_msg(st == 201, "unbound key: %ld %s", st, err);
	su_srv_stop();
}
END_TEST

/* Tests: the listening socket. */

START_TEST(test_port_in_use)
{
	const char *second[] = { "serve", "--data-dir", "other", "--key-file",
	    "other.key", "--listen", NULL, NULL };
	char addr[64], err[4096], want[96];
	struct su_resp r;
	struct su_run run_;
	int st;

	/* Another vault, so that only the address is shared. */
	su_cli(&run_, NULL, "init", "--data-dir", "other", "--key-file",
	    "other.key", NULL);
	ck_assert_msg(run_.status == 0, "init other: %s", run_.err);
	su_run_free(&run_);
	su_srv_start_local(NULL, NULL, NULL);
	ck_assert_int_eq(sscanf(su_srv.url, "http://127.0.0.1:%u", &port), 1);
	(void)snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	second[6] = addr;
	st = serve_fails(second, err, sizeof(err));
	(void)snprintf(want, sizeof(want), "%s is already in use", addr);
	ck_assert_msg(st != 0 && strstr(err, want) != NULL,
	    "second serve on %s: exit %d [%s]", addr, st, err);
	su_req(&r, "GET", "/v1/health", NULL, "", NULL, 0);
	ck_assert_int_eq(r.status, 200);
	su_resp_free(&r);
	su_srv_stop();
}
END_TEST

START_TEST(test_bad_listen)
{
	static const struct {
		const char	*listen;
		const char	*why;
	} bad[] = {
		{ "nonsense", "ADDRESS:PORT" },
		{ "127.0.0.1", "ADDRESS:PORT" },
		{ "127.0.0.1:99999", "port" },
		{ "127.0.0.1:http", "port" },
		{ "127.0.0.1:", "port" },
		{ "127.0.0.1:-1", "port" },
		{ "1.2.3:7400", "address" },
		{ "[::1]7400", "ADDRESS:PORT" },
		{ "example.org:7400", "address" },
	};
	const char *args[] = { "serve", "--listen", NULL, NULL };
	char err[4096];
	int st;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		args[2] = bad[i].listen;
		st = serve_fails(args, err, sizeof(err));
		ck_assert_msg(st == 2 && strstr(err, "--listen") != NULL &&
		    strstr(err, bad[i].why) != NULL,
		    "--listen %s: exit %d [%s]", bad[i].listen, st, err);
	}
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("tls");

	tcase_add_unchecked_fixture(tc, case_setup, su_case_teardown);
	tcase_add_checked_fixture(tc, setup, su_srv_teardown);
	tcase_set_timeout(tc, TIMEOUT);
	tcase_add_test(tc, test_tls_protocols_and_suites);
	tcase_add_test(tc, test_tls_priorities_option);
	tcase_add_test(tc, test_mtls_required);
	tcase_add_test(tc, test_cert_bound_key);
	tcase_add_test(tc, test_port_in_use);
	tcase_add_test(tc, test_bad_listen);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return su_suite_main("check_tls", tls_suite());
}
