/* SPDX-License-Identifier: Apache-2.0 */
/*
 * opsutil.h: the fixture of the check_ops_* suites, which run the key
 * lifecycle and crypto-shredding with the real CLI against a real server
 * on the same data directory, under load.  What the fixture sets up, how
 * the load threads judge each answer, and how long operations are killed
 * in the middle is told at the top of opsutil.c.
 *
 * The names keep no prefix, as they read in the tests; only the
 * check_ops_* suites include this header.  Everything asserts with check
 * unless it says "threads call it".
 */
#ifndef OPSUTIL_H
#define OPSUTIL_H

#include <sys/types.h>

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <check.h>
#include <curl/curl.h>

#include "pv.h"
#include "vault.h"
#include "srvutil.h"

#define ARGS_MAX	32
#define TIMEOUT		120	/* seconds per test, for the sanitizer build */
#define WAIT_MS		60000	/* for a child to start or to stop */
#define ID_BUF		(VAULT_ID_STRLEN + 1)
#define KEY_BUF		(VAULT_APIKEY_SECRET_LEN + 1)
#define NFIX		2000	/* records the fixture writes */
#define RECS_MAX	20000	/* records a test may know */
#define NF		2	/* fields a record has */
#define VAL_MAX		48
#define LOAD_THREADS	4
#define DETOK_N		16	/* tokens a load request asks for */
#define PROBE_N		64	/* tokens a probe of the main thread asks */
#define CHUNK		1000	/* tokens or records a request, at most */
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

extern char cur_key[PATH_MAX];

enum { K_WRITER, K_READER, K_ADMIN, K_AUDITOR, K__COUNT };

extern char keys[K__COUNT][KEY_BUF];

void	spit(const char *path, const char *s, mode_t mode);

/* Run piivault args... --key-file key to its end. */
void	cli_key_argv(struct su_run *r, const char *key,
    const char *const *args);

void __attribute__((sentinel))
cli_key(struct su_run *r, const char *key, ...);

/* piivault args... with the root key in use. */
#define cli(r, ...)	cli_key((r), cur_key, __VA_ARGS__)
#define ck_assert_exit(r, code) ck_assert_msg((r)->status == (code),	\
	"exit %d, want %d; stdout [%.1000s] stderr [%s]", (r)->status,	\
	(code), (r)->out ? (r)->out : "", (r)->err)

/* (r)'s stderr holds s. */
#define ck_assert_err_has(r, s) ck_assert_msg(strstr((r)->err, (s)) !=	\
	NULL, "stderr [%s] lacks [%s]", (r)->err, (s))

/*
 * A command running in the background, its stdout read as it comes, for
 * killing in the middle.
 */
struct bg {
	pid_t		 pid;
	int		 out;
	struct su_gbuf	 buf;		/* stdout so far */
	char		 errpath[PATH_MAX];
	int		 status;
	int		 killed;	/* SIGKILL sent while it ran */
	int		 probes;	/* checks made while it ran */
};

void __attribute__((sentinel))
bg_start(struct bg *b, ...);

/* When to SIGKILL a background command: its output so far, arg. */
typedef int kill_when_fn(const struct bg *b, const void *arg);

/* Kill once the output holds the string arg. */
int	on_output(const struct bg *b, const void *arg);

/*
 * Let b run to its end.  Without when, the main thread checks the
 * server's answers (probe) between reads of its output; with when, it
 * watches only, and sends SIGKILL as soon as when says so (the load
 * threads go on checking meanwhile).  The exit status (128 + 9 if
 * killed) goes to b->status, its stderr to err (if not NULL).
 */
void	bg_finish(struct bg *b, kill_when_fn *when, const void *arg,
    struct su_run *err);

void	bg_free(struct bg *b);

/*
 * Start piivault args..., SIGKILL it after us microseconds (or let it
 * finish first), and return its exit status: 0, or 128 + 9.
 */
int __attribute__((sentinel))
kill_soon(unsigned us, ...);

/*
 * When kill_soon kills: before, while and after the command does its
 * work, whichever build (a sanitizer build starts up slower).
 */
#define KILL_DELAYS	4
extern const unsigned kill_delays[KILL_DELAYS];

/*
 * Start piivault serve --listen 127.0.0.1:0 --key-file cur_key, then
 * extra (NULL-terminated), and wait for "piivault: listening on URL".
 */
void	srv_start_args(const char *const *extra);

void	srv_start(void);

/* A request of the main thread, which must get an answer. */
void	req(struct su_resp *r, const char *method, const char *path, int key,
    const char *body);

#define assert_status(r, want) ck_assert_msg((r)->status == (want),	\
	"status %ld, want %d: [%.600s]; log [%s]", (r)->status,		\
	(int)(want), (r)->body.p, su_server_log())

/* The code of {"error":{"code":…}} at o, or NULL. */
const char	*jcode(const struct jv *o);

/*
 * The records a test knows: their ids, tokens and values, and the state
 * the main thread says each is in.  Entries are appended under tab_lock
 * and never change afterwards, but for st.
 */
enum {
	ST_LIVE,		/* the value, nothing else */
	ST_MAYBE_SHRED,		/* a CLI or API shred is under way */
	ST_SHREDDED,
	ST_MAYBE_GONE,		/* its KEK is being retired or destroyed */
	ST_GONE,		/* its KEK may not unwrap any more */
};

/* What an answer may be. */
enum { A_VALUE = 1, A_SHREDDED = 2, A_KEYGONE = 4 };

struct orec {
	char		id[ID_BUF];
	char		tok[NF][ID_BUF];
	char		val[NF][VAL_MAX];
	atomic_int	st;
};

extern struct orec *tab;

size_t	tab_count(void);

int	allow_of(size_t i);

void	mark(size_t from, size_t to, int st);

struct ask {
	size_t	rec;
	int	f;
	int	allow;		/* A_*: at send time, then at answer time */
};

struct tally {
	long	values, shredded, keygone;
};

void	detok_body(struct pv_buf *b, const struct ask *q, size_t n);

/*
 * Judge a detokenize answer for q[0..n-1], whose allow masks hold what
 * the records' states allowed when it was sent; the states now are added
 * first.  0, or -1 with why.  Threads call it.
 */
int	detok_judge(const struct su_resp *r, struct ask *q, size_t n,
    char *why, size_t whylen, struct tally *t);

struct loader {
	pthread_t	 th;
	int		 id;
	uint64_t	 seed;
	int		 writes;	/* records written */
	char		 err[1024];	/* the first bad answer */
	struct ask	 q[CHUNK];
};

struct ops_load {
	atomic_int	 stop;
	atomic_int	 stopping;	/* the server is being stopped */
	int		 writes;	/* in eighths of the requests */
	int		 lookups;	/* in eighths */
	size_t		 detok_n;	/* tokens a request */
	atomic_long	 ops;		/* answers judged right */
	atomic_long	 values, shredded, keygone, down;
	struct loader	 l[LOAD_THREADS];
	int		 running;
};

extern struct ops_load load;

/* Start the load: writes and lookups eighths of its requests. */
void	load_start(int writes, int lookups);

/* Stop the load; *why gets the first bad answer ("" if none). */
void	load_halt(char *why, size_t whylen);

/* Stop the load: every answer it got must have been right. */
void	load_stop(void);

/* Wait until the load has had n more answers (all threads alive). */
void	load_wait(long n);

/* Wait until the load has had n more answers, or a wrong one. */
void	load_wait_soft(long n);

/* Wait until the table has n records. */
void	load_wait_records(size_t n);

extern int probe_lookups;

/* Detokenize q[0..n-1] (n <= CHUNK) and judge it: every answer right. */
void	detok_check(struct ask *q, size_t n, struct tally *t);

/* One check while a command runs: random tokens, and a look-up. */
void	probe(void);

/*
 * Every token of records [from, to) answers as its state says, and *t
 * counts how.
 */
void	sweep(size_t from, size_t to, struct tally *t);

void	sweep_all(void);

/* Look up every step-th record of [from, to). */
void	lookups(size_t from, size_t to, size_t step);

/*
 * Write n records in batches through the API, values prefix-i; they are
 * appended to the table.
 */
void	put_batch(size_t n, const char *prefix);

struct kver {
	char		kind[8];
	unsigned	version;
	char		state[16];
	long long	records;	/* records it wraps now */
	long long	wrapped;	/* DEKs it ever wrapped */
};

struct kst {
	long long	records;
	size_t		n;
	struct kver	k[512];
};

void	kst_get(struct kst *s);

const struct kver	*kst_find(const struct kst *s, const char *kind,
    unsigned version);

/* How many versions of kind there are in state (NULL: any). */
size_t	kst_count(const struct kst *s, const char *kind, const char *state);

/* The one active version of kind. */
unsigned	kst_active(const struct kst *s, const char *kind);

void	assert_state(const struct kst *s, const char *kind, unsigned version,
    const char *state);

/*
 * One active KEK, one active index key, and the records each KEK wraps
 * add up to the records there are.
 */
void	assert_consistent(const struct kst *s);

/*
 * Nothing about any key changed (b taken after a): the same versions in
 * the same states, wrapping the same records, but for what the load
 * wrote under the active KEK meanwhile.
 */
void	assert_same_keys(const struct kst *a, const struct kst *b);

/* The "records" of the last line of a command's output (a summary). */
long long	summary_records(const struct su_gbuf *out, const char *step);

/* Every line before the summary is a progress line of step. */
void	assert_progress_lines(const struct su_gbuf *out, const char *step);

/* A file of the ids of records i in [from, to) with i % mod == rem. */
size_t	ids_file(const char *path, size_t from, size_t to, size_t mod,
    size_t rem);

void	mark_mod(size_t from, size_t to, size_t mod, size_t rem, int st);

/* DELETE /v1/records/{id} of record i as the admin: 200 and its receipt. */
char	*api_shred(size_t i);

#define WRONG_KEY	"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n"

/* Add a test case name to s holding test alone, with the fixture. */
void	ops_tcase(Suite *s, const char *name, const TTest *test);

#endif /* OPSUTIL_H */
