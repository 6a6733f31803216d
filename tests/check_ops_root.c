/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_ops_root.c: the root key and the cryptoperiod under load: rotating
 * the root key, and the rotations and shred epochs that the cryptoperiod
 * limits bring about.
 *
 * The fixture, the load threads that check every answer while a command
 * runs, and the ways of killing a command in the middle are opsutil.c.
 * CHECK_OPS_VERBOSE=1 prints how many answers the load threads checked.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "pv.h"
#include "api.h"
#include "vault.h"
#include "opsutil.h"
#include "srvutil.h"
#include "testutil.h"

/*
 * Whether piivault kms status opens the vault with key (which may be the
 * wrong one, or a file a killed command left half written).
 */
static int
opens_with(const char *key)
{
	struct su_run r;
	int st;

	cli_key(&r, key, "kms", "status", NULL);
	st = r.status;
	ck_assert_msg(st == 0 || st == 1, "kms status --key-file %s: exit %d "
	    "[%s]", key, st, r.err);
	su_run_free(&r);
	return st == 0;
}

START_TEST(test_rotate_root)
{
	char soft[4096] = "", why[1100];
	struct kst s0, s1;
	struct tally t;
	struct su_resp x;
	struct su_run r;
	size_t len;
	int st, extra;

	probe_lookups = 0;
	load_start(0, 0);		/* reads of existing records */
	load_wait(40);
	kst_get(&s0);

	/* Refusals change nothing. */
	cli(&r, "kms", "rotate-root", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	cli(&r, "kms", "rotate-root", "--new-key-file", "a.key",
	    "--new-passphrase", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	cli(&r, "kms", "rotate-root", "--new-key-file", "piivault.key", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "root in use");
	su_run_free(&r);
	spit("loose.key", WRONG_KEY, 0644);
	cli(&r, "kms", "rotate-root", "--new-key-file", "loose.key", NULL);
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	ck_assert_int_eq(access("a.key", F_OK), -1);
	ck_assert_int_eq(opens_with("piivault.key"), 1);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.values, NF * NFIX);

	/* The happy path, with the server running and reading. */
	cli(&r, "kms", "rotate-root", "--new-key-file", "new.key", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(r.out, "the root key is now new.key") != NULL,
	    "[%s]", r.out);
	su_run_free(&r);
	ck_assert_int_eq(opens_with("piivault.key"), 0);
	cli_key(&r, "piivault.key", "kms", "status", NULL);
	ck_assert_err_has(&r, "wrong root key");
	su_run_free(&r);
	ck_assert_int_eq(opens_with("new.key"), 1);
	(void)snprintf(cur_key, sizeof(cur_key), "new.key");
	kst_get(&s1);
	assert_same_keys(&s0, &s1);

	/*
	 * The running server keeps the keys it holds: reads of existing
	 * records go on.  Collected rather than asserted at once, so that
	 * the restart below is checked too.
	 */
	load_wait_soft(40);
	load_halt(why, sizeof(why));
	if (why[0] != '\0')
		(void)snprintf(soft, sizeof(soft), "after rotate-root the "
		    "running server's reads fail: %s; ", why);
	{
		struct ask q[PROBE_N];
		char w2[1024];

		for (size_t i = 0; i < PROBE_N; i++) {
			q[i].rec = i * 31;
			q[i].f = (int)(i % NF);
			q[i].allow = A_VALUE;
		}
		{
			struct pv_buf bb;

			detok_body(&bb, q, PROBE_N);
			req(&x, "POST", "/v1/detokenize", K_READER, bb.p);
			pv_buf_cleanup(&bb);
		}
		memset(&t, 0, sizeof(t));
		if (detok_judge(&x, q, PROBE_N, w2, sizeof(w2), &t) != 0) {
			len = strlen(soft);
			(void)snprintf(soft + len, sizeof(soft) - len,
			    "detokenize after rotate-root: %s; ", w2);
		}
		su_resp_free(&x);
		/* And a write, for the report. */
		req(&x, "POST", "/v1/records", K_WRITER,
		    "{\"fields\":{\"name\":\"after rotate-root\"}}");
		extra = x.status == 201;
		if (!extra) {
			len = strlen(soft);
			(void)snprintf(soft + len, sizeof(soft) - len,
			    "a write after rotate-root: %ld %.200s; ",
			    x.status, x.body.p);
		}
		su_resp_free(&x);
	}

	/* Restarted with the new key, it answers everything. */
	st = su_srv_signal(SIGTERM);
	if (st != 0) {
		len = strlen(soft);
		(void)snprintf(soft + len, sizeof(soft) - len, "the server "
		    "exited %d after SIGTERM; ", st);
	}
	srv_start();
	sweep_all();
	put_batch(5, "n");
	sweep(tab_count() - 5, tab_count(), &t);
	ck_assert_int_eq(t.values, NF * 5);
	{
		/* The old key no longer starts a server. */
		const char *const args[] = { "serve", "--listen", "127.0.0.1:0",
		    "--key-file", "piivault.key", NULL };

		cli_key_argv(&r, NULL, args);
		ck_assert_exit(&r, 1);
		ck_assert_err_has(&r, "wrong root key");
		su_run_free(&r);
	}

	/*
	 * kill -9 in the middle: the old root or the new one opens the
	 * vault, never neither, never both.  Then a rerun.
	 */
	su_srv_stop();
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		char nk[32];

		(void)snprintf(nk, sizeof(nk), "k%zu.key", d);
		st = kill_soon(kill_delays[d], "kms", "rotate-root",
		    "--new-key-file", nk, NULL);
		if (opens_with(nk)) {
			ck_assert_int_eq(opens_with(cur_key), 0);
			(void)snprintf(cur_key, sizeof(cur_key), "%s", nk);
		} else
			ck_assert_msg(opens_with(cur_key), "neither %s nor %s "
			    "opens the vault after exit %d", cur_key, nk, st);
	}
	cli(&r, "kms", "rotate-root", "--new-key-file", "final.key", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	ck_assert_int_eq(opens_with(cur_key), 0);
	(void)snprintf(cur_key, sizeof(cur_key), "final.key");
	srv_start();
	load_start(2, 2);
	load_wait(40);
	load_stop();
	sweep_all();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_int_eq(s1.records, (long long)tab_count() + extra);

	ck_assert_msg(soft[0] == '\0', "%s", soft);
}
END_TEST

START_TEST(test_cryptoperiod)
{
	static const char *const bad[][8] = {
		{ "serve", "--listen", "127.0.0.1:0", "--max-kek-wraps", "0",
		    NULL },
		{ "serve", "--listen", "127.0.0.1:0", "--max-kek-wraps", "x",
		    NULL },
		{ "serve", "--listen", "127.0.0.1:0", "--max-kek-age", "0",
		    NULL },
	};
	static const char *const opts[] = { "--max-kek-wraps", "50", NULL };
	struct kst s;
	struct su_run r;
	size_t nver, rotations = 0;
	long long ghosts;
	const char *p, *nl;

	for (size_t i = 0; i < NELEM(bad); i++) {
		cli_key_argv(&r, cur_key, bad[i]);
		ck_assert_exit(&r, 2);
		su_run_free(&r);
	}
	su_srv_stop();
	srv_start_args(opts);
	probe_lookups = 1;
	load_start(6, 1);
	load_wait_records(NFIX + 400);
	load_stop();

	kst_get(&s);
	assert_consistent(&s);
	ck_assert_int_eq(s.records, (long long)tab_count());
	nver = kst_count(&s, "kek", NULL);
	/* 400 writes, at most LOAD_THREADS a commit: a rotation every 50. */
	ck_assert_msg(nver >= 1 + 400 / (50 + LOAD_THREADS), "%zu keks",
	    nver);
	ck_assert_uint_eq(kst_count(&s, "kek", "decrypt-only"), nver - 1);
	ck_assert_int_ge(kst_find(&s, "kek", 1)->wrapped, NFIX);
	ck_assert_int_le(kst_find(&s, "kek", 1)->wrapped,
	    NFIX + LOAD_THREADS);
	for (unsigned v = 2; v <= nver; v++) {
		const struct kver *k = kst_find(&s, "kek", v);

		ck_assert_msg(k->wrapped <= 50 + LOAD_THREADS - 1, "kek %u "
		    "wrapped %lld", v, k->wrapped);
		if (v < nver)
			ck_assert_msg(k->wrapped >= 50, "kek %u rotated after "
			    "%lld", v, k->wrapped);
		ck_assert_int_eq(k->records, k->wrapped);
	}

	/* The log says the server did it, once a rotation. */
	cli(&r, "audit", "export", NULL);
	ck_assert_exit(&r, 0);
	for (p = r.out; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		struct jv *v = jparse(p, (size_t)(nl - p));

		ck_assert_msg(v != NULL, "audit line [%.*s]", (int)(nl - p), p);
		if (strcmp(jstr(v, "action"), "kms.rotate") == 0) {
			ck_assert_pstr_eq(jstr(v, "actor"), "server");
			ck_assert_pstr_eq(jstr(v, "reason"), "cryptoperiod");
			rotations++;
		}
		jfree(v);
	}
	su_run_free(&r);
	ck_assert_uint_eq(rotations, nver - 1);
	sweep_all();

	/* kill -9 under write load, a restart: nothing acknowledged is lost. */
	load_start(6, 1);
	load_wait(100);
	atomic_store(&load.stopping, 1);
	ck_assert_int_eq(su_srv_signal(SIGKILL), 128 + SIGKILL);
	load_stop();
	srv_start_args(opts);
	kst_get(&s);
	assert_consistent(&s);
	/* Committed, but the answer died with the server: ghosts. */
	ck_assert_int_ge(s.records, (long long)tab_count());
	ck_assert_int_le(s.records, (long long)tab_count() + LOAD_THREADS);
	ghosts = s.records - (long long)tab_count();
	ck_assert_uint_eq(kst_count(&s, "kek", "decrypt-only"),
	    kst_count(&s, "kek", NULL) - 1);
	sweep_all();
	nver = kst_count(&s, "kek", NULL);
	load_start(6, 1);
	load_wait_records(tab_count() + 120);
	load_stop();
	kst_get(&s);
	assert_consistent(&s);
	ck_assert_uint_gt(kst_count(&s, "kek", NULL), nver);
	for (unsigned v = 2; v <= kst_count(&s, "kek", NULL); v++)
		ck_assert_msg(kst_find(&s, "kek", v)->wrapped <= 50 +
		    LOAD_THREADS - 1, "kek %u wrapped %lld", v,
		    kst_find(&s, "kek", v)->wrapped);
	ck_assert_int_eq(s.records, (long long)tab_count() + ghosts);
}
END_TEST

/* A job that runs away: kill it past a limit of records or seconds. */
struct runaway {
	long long	 max_done;
	double		 max_secs;
	struct timespec	 t0;
	long long	 done;		/* the last progress line's */
	double		 secs;
};

static int
on_runaway(const struct bg *b, const void *arg)
{
	struct runaway *w = (struct runaway *)(uintptr_t)arg;
	struct timespec now;
	const char *p;

	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	w->secs = (double)(now.tv_sec - w->t0.tv_sec) +
	    (double)(now.tv_nsec - w->t0.tv_nsec) / 1e9;
	for (p = b->buf.p; (p = strstr(p, "\"done\":")) != NULL; p++)
		w->done = strtoll(p + 7, NULL, 10);
	return w->done > w->max_done || w->secs > w->max_secs;
}

/* How many KEK versions kms status shows, however many. */
static size_t
kek_versions(void)
{
	struct su_run r;
	size_t n = 0;

	cli(&r, "kms", "status", "--json", NULL);
	ck_assert_exit(&r, 0);
	for (const char *p = r.out; (p = strstr(p, "\"kind\":\"kek\"")) !=
	    NULL; p++)
		n++;
	su_run_free(&r);
	return n;
}

/*
 * A shred epoch while the server rotates the KEK by itself under writes
 * (--max-kek-wraps): it must end, re-wrapping each record a bounded
 * number of times, and destroy every KEK older than its own.
 */
START_TEST(test_shred_epoch_cryptoperiod)
{
	static const char *const opts[] = { "--max-kek-wraps", "10", NULL };
	struct runaway w;
	struct kst s;
	struct su_run r;
	struct bg b;
	size_t nver, records;

	su_srv_stop();
	srv_start_args(opts);
	load_start(4, 1);
	load_wait_records(NFIX + 100);
	nver = kek_versions();
	memset(&w, 0, sizeof(w));
	records = tab_count();
	w.max_done = 5 * (long long)records;	/* a pass or two is right */
	w.max_secs = 40;
	(void)clock_gettime(CLOCK_MONOTONIC, &w.t0);
	bg_start(&b, "kms", "shred-epoch", "--batch", "5", NULL);
	bg_finish(&b, on_runaway, &w, &r);
	(void)on_runaway(&b, &w);
	load_stop();
	ck_assert_msg(!b.killed && b.status == 0, "kms shred-epoch --batch 5 "
	    "against a server with --max-kek-wraps 10 under writes: %s after "
	    "%.1f s, its re-wrap at %lld records for a vault of about %zu; "
	    "%zu KEK versions (%zu before); exit %d [%s]", b.killed ?
	    "killed" : "ended", w.secs, w.done, records, kek_versions(), nver,
	    b.status, r.err);
	bg_free(&b);
	kst_get(&s);
	assert_consistent(&s);
	for (unsigned v = 1; v <= nver; v++)
		assert_state(&s, "kek", v, "destroyed");
	sweep_all();
}
END_TEST

/* One case a test, so that CK_RUN_CASE can pick one. */
static Suite *
ops_root_suite(void)
{
	Suite *s = suite_create("ops_root");

	ops_tcase(s, "rotate_root", test_rotate_root);
	ops_tcase(s, "cryptoperiod", test_cryptoperiod);
	ops_tcase(s, "shred_epoch_cryptoperiod", test_shred_epoch_cryptoperiod);
	return s;
}

int
main(void)
{
	return su_suite_main("check_ops_root", ops_root_suite());
}
