/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srvutil.h: what the suites that drive the real binary share: a test
 * case's own TMPDIR, running piivault (PIIVAULT_BIN) with an environment
 * the test controls, piivault serve on a port the kernel picks, requests
 * to it with libcurl, the request bodies they send, and a small strict
 * JSON reader for the answers.
 *
 * Ownership: every string or buffer a function hands back is the
 * caller's, to release with the matching _free (su_run_free,
 * su_resp_free, jfree) or free(3) (su_slurp, su_gbuf); the exceptions
 * (su_server_log, su_header) say "static buffer" and stay ours, valid
 * until the next call.  Arrays passed in (args, env, headers) are only
 * read, and only during the call.
 *
 * The su_* functions assert with check (so they run inside a test, in its
 * process), except su_gbuf_add, su_http_do and the JSON reader, which
 * assert nothing and may run in a test's threads.
 *
 * Global state, one test at a time: su_tdir (the test's directory, the
 * children's cwd), su_logpath (where the server's stderr goes), su_srv
 * (the server, if one runs) and su_curl (the main thread's handle).
 * The suite sets su_tdir and su_logpath in its setup.
 */
#ifndef SRVUTIL_H
#define SRVUTIL_H

#include <sys/types.h>

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>

#include <check.h>
#include <curl/curl.h>

#include "pv.h"
#include "vault.h"

#define SU_ARGS_MAX	32	/* arguments a command may have */
#define SU_ENV_MAX	8	/* "K=V" a caller may add to a child's env */

extern char	su_tdir[PATH_MAX];
extern char	su_logpath[PATH_MAX];
extern int	su_wait_ms;	/* for a child to start or stop; 30000 */

/*
 * A test case's directory, made under $TMPDIR (or /tmp) as pvNAME.XXXXXX,
 * becomes TMPDIR while the case runs; teardown removes it with all a
 * failed test left in it and puts TMPDIR back.  Unchecked fixtures: they
 * run in the runner process, where ck_assert may not, so they abort.
 */
void	su_case_setup(const char *name);
void	su_case_teardown(void);

/*
 * The checked fixture of a test that runs the binary: a fresh directory
 * (tu_tmpdir) in su_tdir, made the cwd; SIGPIPE ignored; su_logpath its
 * serve.log; no server yet.  su_srv_teardown releases su_curl, stops the
 * server if one runs (it must exit 0) and removes the directory.
 */
void	su_srv_setup(void);
void	su_srv_teardown(void);

/*
 * The log check of a whole test run ("no value, token, key or secret is
 * ever logged"): when PV_TEST_LOGS names a directory (ctest sets it for
 * every suite that runs the binary), su_note_secret appends what a suite
 * sends or gets that the logs must never hold (values of records,
 * look-ups and corrections, tokens, pseudonyms, masked values, API
 * secrets) to a list there (values.PID, a hex line each, strings of
 * fewer than SU_NOTE_MIN bytes left out: they would be found by chance),
 * and su_logs_collect copies every log of the test (su_tdir's *.log and
 * *.err) there.  su_http_do and su_apikey_create note, su_srv_teardown
 * collects; tests/logscan.c, run by ctest after the suites, searches
 * every log collected for every string noted.  Without PV_TEST_LOGS they
 * do nothing.  su_note_secret may be called from threads.
 */
#define SU_NOTE_MIN	6
void	su_note_secret(const void *p, size_t len);
void	su_logs_collect(void);

/* A suite's main: curl_global_init, then tu_run(s); prog names errors. */
int	su_suite_main(const char *prog, Suite *s);

/* A growable buffer; p is NUL-terminated once anything arrived. */
struct su_gbuf {
	char	*p;
	size_t	 len;
};

/* Append (p, len) to b: 0, or -1 out of memory (b unchanged). */
int	su_gbuf_add(struct su_gbuf *b, const void *p, size_t len);
/* Every byte from fd until end of file into b (never NULL after). */
void	su_read_all(int fd, struct su_gbuf *b);
/* The whole of a file, NUL-terminated, *lenp its length (lenp may be
 * NULL); NULL if it does not exist.  The caller frees it. */
char	*su_slurp(const char *path, size_t *lenp);
/* The end of the server's log so far, for failure messages; static. */
const char *su_server_log(void);

/*
 * What a child is started with: argv is PIIVAULT_BIN and args
 * (NULL-terminated, not counting argv[0]); envp holds
 * PIIVAULT_KDF_MEMORY_KIB, PATH, the sanitizers' options from ours (kept
 * in pass) and env (NULL-terminated "K=V", or NULL).  x is the caller's;
 * its pointers borrow args and env.
 */
struct su_exec {
	char	*argv[SU_ARGS_MAX + 2];
	char	*envp[SU_ENV_MAX + 6];
	char	 pass[3][1024];
};

void	su_exec_init(struct su_exec *x, const char *const *args,
	    const char *const *env);

/*
 * Start PIIVAULT_BIN with args (NULL-terminated, not counting argv[0])
 * in su_tdir: stdin /dev/null, stdout into a pipe whose read end goes to
 * *outfd (the caller closes it), stderr onto errfd.  The environment
 * holds PIIVAULT_KDF_MEMORY_KIB, PATH, the sanitizers' options from ours
 * and env (NULL-terminated "K=V", or NULL).  The child runs in a session
 * of its own (no terminal, so it can never prompt or confirm) and is
 * killed if this process dies first.
 */
pid_t	su_spawn(const char *const *args, const char *const *env,
	    int *outfd, int errfd);
/* Wait up to ms for pid: its exit status, 128 + signal, or -1. */
int	su_wait_for(pid_t pid, int ms);

/* What one run of a command produced; release with su_run_free. */
struct su_run {
	int	 status;	/* exit status, or 128 + signal */
	char	*out;		/* all of stdout, NUL-terminated */
	size_t	 outlen;
	char	 err[8192];	/* the start of stderr */
};

/* Run piivault args... (see su_spawn) to its end; r is the caller's. */
void	su_cli_argv(struct su_run *r, const char *const *env,
	    const char *const *args);
/* su_cli_argv with its arguments listed, NULL last. */
void	su_cli(struct su_run *r, const char *const *env, ...)
	    __attribute__((sentinel));
/*
 * The arguments left in ap, up to a NULL, into out, then NULL: out has
 * room for max of them and the NULL.  Asserts that they fit.
 */
void	su_args_va(const char **out, size_t max, va_list ap);
/* Release r's stdout (status and err stay); r may be zeroed. */
void	su_run_free(struct su_run *r);
/* r->err from the file at path (what a child wrote to stderr). */
void	su_take_err(struct su_run *r, const char *path);

/* An API key to create; purposes, fields and reveal may be NULL. */
struct su_apikey {
	const char	*name;
	const char	*role;
	const char	*purposes;
	const char	*fields;
	const char	*reveal;
};

/*
 * piivault apikey create for k, then extra (NULL-terminated, or NULL),
 * in env (as for su_spawn): it must exit 0 and print one secret line,
 * which goes to out.
 */
void	su_apikey_create(char out[static VAULT_APIKEY_SECRET_LEN + 1],
	    const char *const *env, const char *const *extra,
	    const struct su_apikey *k);

/* The server; pid 0 when none runs. */
struct su_srv {
	pid_t	 pid;
	int	 out;		/* its stdout */
	char	 url[128];	/* as it announced itself */
	char	 base[160];	/* where we connect */
};
extern struct su_srv	su_srv;

/*
 * Start piivault with pre and then extra (each NULL-terminated, extra
 * may be NULL; pre begins with "serve"), its stderr appended to
 * su_logpath, and wait for "piivault: listening on URL" on its stdout.
 */
void	su_srv_start(const char *const *pre, const char *const *extra,
	    const char *const *env);
/*
 * su_srv_start with "serve --listen 127.0.0.1:0", then "--key-file key"
 * unless key is NULL, then extra; it must announce a loopback URL.
 */
void	su_srv_start_local(const char *key, const char *const *extra,
	    const char *const *env);
/* Wait for the server to exit: its exit status (or 128 + signal). */
int	su_srv_wait(void);
/* Send sig and su_srv_wait. */
int	su_srv_signal(int sig);
/* SIGTERM: the server must finish and exit 0. */
void	su_srv_stop(void);

/* An answer; release with su_resp_free. */
struct su_resp {
	long		 status;
	struct su_gbuf	 body;		/* NUL-terminated, never NULL */
	struct su_gbuf	 hdr;		/* the response's header lines */
};

void	su_resp_free(struct su_resp *r);

/*
 * One request on c, whose connection is kept for the next.  headers is
 * NULL-terminated; body NULL for none.  0, or -1 with err saying why
 * (r then holds nothing).  Asserts nothing: threads call it.
 */
int	su_http_do(CURL *c, struct su_resp *r, const char *method,
	    const char *url, const char *const *headers, const char *body,
	    size_t len, char err[static CURL_ERROR_SIZE]);
/*
 * A request of the main thread to su_srv.base + path on su_curl, which
 * must be answered.  auth: the whole Authorization value, or NULL for
 * none.  ctype NULL sends application/json with a body; "" sends no
 * Content-Type at all.
 */
void	su_req(struct su_resp *r, const char *method, const char *path,
	    const char *auth, const char *ctype, const char *body,
	    size_t len);
/* Release su_curl, if a request made it. */
void	su_curl_cleanup(void);
/* The value of header name in r, or NULL; in a static buffer. */
const char *su_header(const struct su_resp *r, const char *name);

/* A token, record id or pseudonym: prefix (4 characters), then 22
 * base64url characters. */
int	su_id_valid(const char *s, const char *prefix);

/*
 * A small JSON reader, strict, so answers are checked to be JSON.  Its
 * names keep their own short prefix (j, J_), as they read in the tests.
 */
enum jtype { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jtype	 type;
	char		*s;	/* J_STR decoded, J_NUM as text; NUL-ended */
	size_t		 len;
	size_t		 n;	/* J_ARR, J_OBJ */
	struct jv	*items;
	char		**keys;	/* J_OBJ */
};

/* s[0..len) as one JSON value, or NULL; release with jfree. */
struct jv	*jparse(const char *s, size_t len);
void		 jfree(struct jv *v);
/* The member key of object o (NULL-safe), or NULL. */
const struct jv	*jget(const struct jv *o, const char *key);
/* The string at o.key, or NULL. */
const char	*jstr(const struct jv *o, const char *key);

/* Headers every answer carries (and su_assert_request_id's). */
void		 su_assert_common_headers(const struct su_resp *r);
/*
 * r carries an X-Request-Id of the form [A-Za-z0-9._-]{1,64},
 * and it is want unless want is NULL.
 */
void		 su_assert_request_id(const struct su_resp *r,
		    const char *want);
/* The body of r as JSON: one value, then a newline; r's headers checked. */
struct jv	*su_body_json(const struct su_resp *r);
/* r is status st with {"error":{"code":code,"message":"…"}}, exactly. */
void		 su_assert_error(const struct su_resp *r, long st,
		    const char *code);

/* Request bodies, built into b (initialized by the caller); they assert. */
struct su_fv {
	const char	*name;
	const char	*value;
};

void	su_buf_add(struct pv_buf *b, const char *s);
/* s as a JSON string, quoted and escaped. */
void	su_buf_quote(struct pv_buf *b, const char *s);
/*
 * {"fields":{...}[,"consent":{"marketing":…}][,"retention_days":N]};
 * consent -1 and days 0 leave them out.
 */
void	su_record_body(struct pv_buf *b, const struct su_fv *f, size_t n,
	    int consent, int days);

/*
 * Detokenize answers ({"results":[{"index":0,"token":…,…},…]}: an item
 * per string sent, in order); they assert.
 */
/* Item i, whose "index" is i. */
const struct jv *su_item(const struct jv *doc, size_t i);
/* The first item whose "token" is tok (a string of a token's form). */
const struct jv *su_result(const struct jv *doc, const char *tok);
/* tok was answered {"index":…,"token":tok,"field":field,"value":value}. */
void	su_assert_value(const struct jv *doc, const char *tok,
	    const char *field, const char *value);
/* item is an error {"error":{"code":code,"message":…}}, and no value. */
void	su_assert_item_error(const struct jv *item, const char *code);
/* tok was answered {"index":…,"token":tok,"error":{"code":code,…}}. */
void	su_assert_tok_error(const struct jv *doc, const char *tok,
	    const char *code);

#endif /* SRVUTIL_H */
