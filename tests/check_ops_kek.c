/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_ops_kek.c: the data keys' lifecycle under load: rotating,
 * rewrapping, retiring and destroying KEKs (and refusing to retire or
 * destroy the active one), and a rewrap racing a destroy.
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

START_TEST(test_rotate)
{
	struct kst s0, s1, s2;
	struct su_run r;
	struct bg b;
	size_t before, after, n;
	const struct kver *k1, *k2;
	unsigned v;
	int st;

	kst_get(&s0);
	assert_consistent(&s0);
	ck_assert_uint_eq(kst_active(&s0, "kek"), 1);
	ck_assert_int_eq(s0.records, NFIX);
	ck_assert_int_eq(kst_find(&s0, "kek", 1)->records, NFIX);

	/* Refusals change nothing. */
	cli(&r, "kms", "rotate", "now", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	spit("wrong.key", WRONG_KEY, 0600);
	cli_key(&r, "wrong.key", "kms", "rotate", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "wrong root key");
	su_run_free(&r);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);

	/* Under load: before, during, after. */
	probe_lookups = 1;
	load_start(2, 1);
	load_wait(40);
	before = tab_count();
	bg_start(&b, "kms", "rotate", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(b.buf.p, "kek 2 is active\n");
	bg_free(&b);
	after = tab_count();
	load_wait_records(after + 40);
	load_wait(40);
	load_stop();
	n = tab_count();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_uint_eq(kst_active(&s1, "kek"), 2);
	assert_state(&s1, "kek", 1, "decrypt-only");
	ck_assert_int_eq(s1.records, (long long)n);
	k1 = kst_find(&s1, "kek", 1);
	k2 = kst_find(&s1, "kek", 2);
	/*
	 * What was acknowledged before it ran is under 1; what was written
	 * after it exited, under 2 (but for the writes whose answers were
	 * on their way then, one a load thread).
	 */
	ck_assert_msg(k1->records >= (long long)before && k1->records <=
	    (long long)(after + LOAD_THREADS), "kek 1 wraps %lld, want "
	    "%zu..%zu", k1->records, before, after + LOAD_THREADS);
	ck_assert_msg(k2->records >= (long long)(n - after - LOAD_THREADS) &&
	    k2->records <= (long long)(n - before), "kek 2 wraps %lld, want "
	    "%zu..%zu", k2->records, n - after - LOAD_THREADS, n - before);
	ck_assert_int_eq(k2->wrapped, k2->records);

	/* Quiet now: ten more records are all under kek 2. */
	put_batch(10, "q");
	kst_get(&s2);
	assert_consistent(&s2);
	ck_assert_int_eq(kst_find(&s2, "kek", 2)->records, k2->records + 10);
	ck_assert_int_eq(kst_find(&s2, "kek", 1)->records, k1->records);
	sweep_all();

	/* kill -9 in the middle: a rotation is whole or not at all. */
	load_start(2, 1);
	load_wait(20);
	v = 2;
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		st = kill_soon(kill_delays[d], "kms", "rotate", NULL);
		kst_get(&s1);
		assert_consistent(&s1);
		ck_assert_msg(kst_active(&s1, "kek") == v ||
		    kst_active(&s1, "kek") == v + 1, "kek %u active after "
		    "kek %u and a kill (exit %d)", kst_active(&s1, "kek"), v,
		    st);
		v = kst_active(&s1, "kek");
		ck_assert_uint_eq(kst_count(&s1, "kek", NULL), v);
		ck_assert_uint_eq(kst_count(&s1, "kek", "decrypt-only"),
		    v - 1);
		probe();
	}
	/* And a rerun. */
	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	load_wait(40);
	load_stop();
	kst_get(&s2);
	assert_consistent(&s2);
	ck_assert_uint_eq(kst_active(&s2, "kek"), v + 1);
	ck_assert_uint_eq(kst_count(&s2, "kek", "decrypt-only"), v);
	ck_assert_int_eq(s2.records, (long long)tab_count());
	sweep_all();
	lookups(0, tab_count(), 37);
}
END_TEST

START_TEST(test_rewrap)
{
	static const char *const bad[][6] = {
		{ "kms", "rewrap", "--batch", "0", NULL },
		{ "kms", "rewrap", "--batch", "100001", NULL },
		{ "kms", "rewrap", "--from", "x", NULL },
		{ "kms", "rewrap", "--from", "0", NULL },
		{ "kms", "rewrap", "1", NULL },
	};
	struct kst s0, s1;
	struct su_run r;
	struct bg b;
	long long left;

	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	probe_lookups = 1;
	load_start(2, 1);
	load_wait(40);

	/* Refusals change nothing. */
	kst_get(&s0);
	for (size_t i = 0; i < NELEM(bad); i++) {
		cli_key_argv(&r, cur_key, bad[i]);
		ck_assert_exit(&r, 2);
		su_run_free(&r);
	}
	/* The active version has nothing older than itself to move. */
	cli(&r, "kms", "rewrap", "--from", "2", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	kst_get(&s1);
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, NFIX);
	ck_assert_str_eq(kst_find(&s1, "kek", 1)->state,
	    kst_find(&s0, "kek", 1)->state);

	/* kill -9 after its first progress lines reached us. */
	bg_start(&b, "kms", "rewrap", "--batch", "2", NULL);
	bg_finish(&b, on_output, "\n", &r);
	ck_assert_msg(b.killed && b.status == 128 + SIGKILL, "rewrap was "
	    "not killed in the middle: exit %d, [%s]", b.status, r.err);
	assert_progress_lines(&b.buf, "rewrap");
	bg_free(&b);
	kst_get(&s1);
	assert_consistent(&s1);
	left = kst_find(&s1, "kek", 1)->records;
	ck_assert_msg(left > 0 && left < NFIX, "kek 1 wraps %lld after the "
	    "kill", left);
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->wrapped, NFIX);
	sweep_all();

	/* The rerun moves exactly what was left, the server answering. */
	bg_start(&b, "kms", "rewrap", "--batch", "200", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	ck_assert_int_eq(summary_records(&b.buf, "rewrap"), left);
	assert_progress_lines(&b.buf, "rewrap");
	ck_assert_int_gt(b.probes, 0);
	bg_free(&b);
	load_wait(40);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, 0);
	ck_assert_int_eq(kst_find(&s1, "kek", 2)->records, s1.records);
	ck_assert_int_eq(s1.records, (long long)tab_count());
	assert_state(&s1, "kek", 1, "decrypt-only");
	sweep_all();
	lookups(0, tab_count(), 29);

	/* Again: nothing left to move. */
	cli(&r, "kms", "rewrap", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_int_eq(summary_records(&(struct su_gbuf){ r.out, r.outlen },
	    "rewrap"), 0);
	su_run_free(&r);
}
END_TEST

START_TEST(test_retire)
{
	static const char *const usage[][6] = {
		{ "kms", "retire", NULL },
		{ "kms", "retire", "x", NULL },
		{ "kms", "retire", "1", "2", NULL },
	};
	struct kst s0, s1;
	struct tally t;
	struct su_run r;
	struct bg b;
	size_t n;
	int st;

	/* Records 0..NFIX-1 under kek 1, what the load writes under 2. */
	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	probe_lookups = 1;
	load_start(2, 1);
	load_wait(40);
	kst_get(&s0);

	/* Refused while kek 1 wraps records. */
	cli(&r, "kms", "retire", "1", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "kek 1 still wraps 2000 records");
	su_run_free(&r);
	/*
	 * The active version (refused; the message may also say it wraps
	 * records), and one that does not exist.
	 */
	cli(&r, "kms", "retire", "2", NULL);
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	cli(&r, "kms", "retire", "2", "--force", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "cannot be retired");
	su_run_free(&r);
	cli(&r, "kms", "retire", "9", "--force", NULL);
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	for (size_t i = 0; i < NELEM(usage); i++) {
		cli_key_argv(&r, cur_key, usage[i]);
		ck_assert_exit(&r, 2);
		su_run_free(&r);
	}
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	assert_state(&s1, "kek", 1, "decrypt-only");
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.values, NF * NFIX);

	/* --force: key_unavailable for kek 1's records at once. */
	mark(0, NFIX, ST_MAYBE_GONE);
	bg_start(&b, "kms", "retire", "1", "--force", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(b.buf.p, "kek 1 is retired\n");
	bg_free(&b);
	mark(0, NFIX, ST_GONE);
	n = tab_count();
	sweep(0, n, &t);
	ck_assert_int_eq(t.keygone, NF * NFIX);
	ck_assert_int_eq(t.values, (long)(NF * (n - NFIX)));
	lookups(0, NFIX, 97);	/* the index is not the KEK's */
	load_wait(60);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	assert_state(&s1, "kek", 1, "retired");
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, NFIX);
	ck_assert_int_eq(s1.records, (long long)tab_count());
	sweep_all();

	/* Retiring it again changes nothing. */
	cli(&r, "kms", "retire", "1", "--force", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);

	/*
	 * kill -9 in the middle, then a rerun: kek 2 wraps what the load
	 * wrote; rotate, and retire 2.
	 */
	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	n = tab_count();
	mark(NFIX, n, ST_MAYBE_GONE);
	load_start(0, 1);
	load_wait(20);
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		st = kill_soon(kill_delays[d], "kms", "retire", "2", "--force",
		    NULL);
		kst_get(&s1);
		assert_consistent(&s1);
		ck_assert_msg(strcmp(kst_find(&s1, "kek", 2)->state,
		    "retired") == 0 || (st != 0 && strcmp(kst_find(&s1, "kek",
		    2)->state, "decrypt-only") == 0), "kek 2 %s after exit %d",
		    kst_find(&s1, "kek", 2)->state, st);
		probe();
	}
	cli(&r, "kms", "retire", "2", "--force", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	mark(NFIX, n, ST_GONE);
	load_wait(20);
	load_stop();
	sweep(0, n, &t);
	ck_assert_int_eq(t.keygone, (long)(NF * n));
	put_batch(5, "r");
	sweep(n, tab_count(), &t);
	ck_assert_int_eq(t.values, NF * 5);
	kst_get(&s1);
	assert_consistent(&s1);
	assert_state(&s1, "kek", 2, "retired");
	ck_assert_int_eq(kst_find(&s1, "kek", 3)->records, 5);
}
END_TEST

START_TEST(test_destroy)
{
	struct kst s0, s1;
	struct tally t;
	struct su_run r;
	size_t n, n2;
	int st;

	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	probe_lookups = 1;
	load_start(2, 1);
	load_wait(40);
	kst_get(&s0);

	/* Without --yes and without a terminal it asks no one, and stops. */
	cli(&r, "kms", "destroy", "1", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "kek 1 wraps 2000 records");
	ck_assert_err_has(&r, "not confirmed");
	su_run_free(&r);
	cli(&r, "kms", "destroy", "9", "--yes", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "no such kek version");
	su_run_free(&r);
	cli(&r, "kms", "destroy", "--yes", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	cli(&r, "kms", "destroy", "0", "--yes", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.values, NF * NFIX);

	/* kill -9 in the middle, then a rerun. */
	mark(0, NFIX, ST_MAYBE_GONE);
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		st = kill_soon(kill_delays[d], "kms", "destroy", "1", "--yes",
		    NULL);
		kst_get(&s1);
		assert_consistent(&s1);
		ck_assert_msg(strcmp(kst_find(&s1, "kek", 1)->state,
		    "destroyed") == 0 || (st != 0 && strcmp(kst_find(&s1,
		    "kek", 1)->state, "decrypt-only") == 0), "kek 1 %s after "
		    "exit %d", kst_find(&s1, "kek", 1)->state, st);
		ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, NFIX);
		probe();
	}
	cli(&r, "kms", "destroy", "1", "--yes", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "kek 1 is destroyed; 2000 records under it "
	    "are unreadable\n");
	su_run_free(&r);
	mark(0, NFIX, ST_GONE);

	/* From the next request on, never a value of kek 1's records. */
	n = tab_count();
	sweep(0, n, &t);
	ck_assert_int_eq(t.keygone, NF * NFIX);
	ck_assert_int_eq(t.values, (long)(NF * (n - NFIX)));
	/* New writes go on, under the active version. */
	put_batch(5, "d");
	sweep(n, tab_count(), &t);
	ck_assert_uint_ge((size_t)t.values, NF * 5);
	load_wait(60);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	assert_state(&s1, "kek", 1, "destroyed");
	ck_assert_int_eq(s1.records, (long long)tab_count());
	sweep_all();

	/* A record under a destroyed KEK can still be shredded. */
	for (size_t i = 0; i < 10; i++) {
		free(api_shred(i * 3));
		atomic_store(&tab[i * 3].st, ST_SHREDDED);
	}
	sweep(0, 30, &t);
	ck_assert_int_eq(t.shredded, NF * 10);
	ck_assert_int_eq(t.keygone, NF * 20);
	kst_get(&s0);
	assert_consistent(&s0);
	ck_assert_int_eq(kst_find(&s0, "kek", 1)->records, NFIX - 10);

	/*
	 * The incident: rotate, rewrap away from 2, destroy 2.  Nothing is
	 * lost, and the server keeps answering all along.
	 */
	load_start(2, 1);
	load_wait(20);
	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	{
		struct bg b;

		bg_start(&b, "kms", "rewrap", "--from", "2", "--batch", "50",
		    NULL);
		bg_finish(&b, NULL, NULL, &r);
		ck_assert_exit(&r, 0);
		bg_free(&b);
	}
	kst_get(&s1);
	ck_assert_int_eq(kst_find(&s1, "kek", 2)->records, 0);
	cli(&r, "kms", "destroy", "2", "--yes", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, "kek 2 is destroyed; 0 records under it are "
	    "unreadable\n");
	su_run_free(&r);
	n2 = tab_count();
	load_wait(60);
	load_stop();
	sweep(0, tab_count(), &t);
	ck_assert_int_eq(t.keygone, NF * (NFIX - 10));
	ck_assert_int_eq(t.shredded, NF * 10);
	ck_assert_int_eq(t.values, (long)(NF * (tab_count() - NFIX)));
	ck_assert_uint_gt(tab_count(), n2);
	kst_get(&s1);
	assert_consistent(&s1);
	assert_state(&s1, "kek", 2, "destroyed");
	ck_assert_int_eq(kst_find(&s1, "kek", 3)->records,
	    (long long)tab_count() - NFIX);
	lookups(NFIX, tab_count(), 7);
}
END_TEST

/*
 * kms destroy of the active version: documented ("then no record can be
 * written until kms rotate"); the server must say so, not fail with an
 * internal error, and write again once a rotation made a new active KEK.
 */
START_TEST(test_destroy_active)
{
	struct kst s;
	struct tally t;
	struct su_resp x;
	struct su_run r;
	const char *code;
	struct jv *v;

	mark(0, NFIX, ST_MAYBE_GONE);
	cli(&r, "kms", "destroy", "1", "--yes", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	mark(0, NFIX, ST_GONE);
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.keygone, NF * NFIX);
	kst_get(&s);
	assert_state(&s, "kek", 1, "destroyed");

	req(&x, "POST", "/v1/records", K_WRITER,
	    "{\"fields\":{\"name\":\"no active kek\"}}");
	v = jparse(x.body.p, x.body.len);
	code = jcode(v);
	ck_assert_msg(x.status < 500 || x.status == 503, "a write with the "
	    "active KEK destroyed: %ld %s", x.status, x.body.p);
	ck_assert_msg(code != NULL && strcmp(code, "key_unavailable") == 0,
	    "a write with the active KEK destroyed: %ld %s", x.status,
	    x.body.p);
	jfree(v);
	su_resp_free(&x);

	/* A rotation makes it write again, without a restart. */
	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	put_batch(5, "a");
	sweep(NFIX, tab_count(), &t);
	ck_assert_int_eq(t.values, NF * 5);
}
END_TEST

/*
 * rewrap --from V, then destroy V at once, again and again, while big
 * detokenize requests run: a record the rewrap moved must never answer
 * key_unavailable, however its request's snapshot and the server's key
 * ring interleave.
 */
START_TEST(test_rewrap_then_destroy_race)
{
	struct kst s;
	struct su_run r;

	load.detok_n = CHUNK;
	load_start(0, 0);
	load_wait(4);
	for (unsigned v = 1; v <= 8; v++) {
		char ver[16];

		(void)snprintf(ver, sizeof(ver), "%u", v);
		cli(&r, "kms", "rotate", NULL);
		ck_assert_exit(&r, 0);
		su_run_free(&r);
		cli(&r, "kms", "rewrap", "--from", ver, NULL);
		ck_assert_exit(&r, 0);
		su_run_free(&r);
		cli(&r, "kms", "destroy", ver, "--yes", NULL);
		ck_assert_exit(&r, 0);
		ck_assert_msg(strstr(r.out, "; 0 records") != NULL, "[%s]",
		    r.out);
		su_run_free(&r);
	}
	load_wait(4);
	load_stop();
	kst_get(&s);
	assert_consistent(&s);
	ck_assert_uint_eq(kst_count(&s, "kek", "destroyed"), 8);
	sweep_all();
}
END_TEST

/*
 * kms retire of the active version is refused, and must say why: the
 * active version cannot be retired (rotate first).  Advice to rewrap or
 * to use --force would be wrong: neither makes it possible.
 */
START_TEST(test_retire_active_message)
{
	struct kst s0, s1;
	struct su_run r;

	kst_get(&s0);
	cli(&r, "kms", "retire", "1", NULL);
	ck_assert_exit(&r, 1);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	ck_assert_msg(strstr(r.err, "cannot be retired") != NULL &&
	    strstr(r.err, "--force") == NULL, "kms retire of the active kek "
	    "1 (wrapping %d records) says [%s]", NFIX, r.err);
	su_run_free(&r);
}
END_TEST

/* One case a test, so that CK_RUN_CASE can pick one. */
static Suite *
ops_kek_suite(void)
{
	Suite *s = suite_create("ops_kek");

	ops_tcase(s, "rotate", test_rotate);
	ops_tcase(s, "rewrap", test_rewrap);
	ops_tcase(s, "retire", test_retire);
	ops_tcase(s, "retire_active_message", test_retire_active_message);
	ops_tcase(s, "destroy", test_destroy);
	ops_tcase(s, "destroy_active", test_destroy_active);
	ops_tcase(s, "rewrap_then_destroy_race", test_rewrap_then_destroy_race);
	return s;
}

int
main(void)
{
	return su_suite_main("check_ops_kek", ops_kek_suite());
}
