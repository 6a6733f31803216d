/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_ops_shred.c: crypto-shredding under load: shredding records by the
 * CLI and the API, the shred epoch (also after a destroy), rotating the
 * blind index, and compacting the data file.
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
 * After an incident destroy of a KEK that still wrapped records (their
 * loss accepted), the key lifecycle must go on: shred-epoch (and rewrap)
 * must move every readable record and destroy the old keys.
 */
START_TEST(test_shred_epoch_after_destroy)
{
	struct kst s;
	struct tally t;
	struct su_run r, r2;
	size_t n;

	cli(&r, "kms", "rotate", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	put_batch(50, "e");
	mark(0, NFIX, ST_GONE);
	cli(&r, "kms", "destroy", "1", "--yes", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	n = tab_count();
	sweep(0, n, &t);
	ck_assert_int_eq(t.keygone, NF * NFIX);

	/* Both, so that the report names both. */
	cli(&r, "kms", "shred-epoch", NULL);
	cli(&r2, "kms", "rewrap", NULL);
	ck_assert_msg(r.status == 0 && r2.status == 0, "after kms destroy 1 "
	    "--yes: kms shred-epoch exit %d [%s]; then kms rewrap exit %d "
	    "[%s]", r.status, r.err, r2.status, r2.err);
	su_run_free(&r);
	su_run_free(&r2);
	kst_get(&s);
	assert_consistent(&s);
	ck_assert_uint_eq(kst_count(&s, "kek", NULL) - 1,
	    kst_count(&s, "kek", "destroyed"));
	sweep(0, n, &t);
	ck_assert_int_eq(t.keygone, NF * NFIX);
	ck_assert_int_eq(t.values, NF * 50);
}
END_TEST

START_TEST(test_rotate_index)
{
	static const char *const usage[][6] = {
		{ "kms", "rotate-index", "--batch", "0", NULL },
		{ "kms", "rotate-index", "--batch", "x", NULL },
		{ "kms", "rotate-index", "2", NULL },
	};
	struct kst s0, s1;
	struct su_run r;
	struct bg b;
	long long done;

	probe_lookups = 1;
	load_start(2, 3);
	load_wait(40);
	kst_get(&s0);
	for (size_t i = 0; i < NELEM(usage); i++) {
		cli_key_argv(&r, cur_key, usage[i]);
		ck_assert_exit(&r, 2);
		su_run_free(&r);
	}
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	ck_assert_uint_eq(kst_count(&s1, "index", NULL), 1);

	/* kill -9 in the middle of the rebuild: look-ups search both keys. */
	bg_start(&b, "kms", "rotate-index", "--batch", "2", NULL);
	bg_finish(&b, on_output, "\n", &r);
	ck_assert_msg(b.killed && b.status == 128 + SIGKILL, "rotate-index "
	    "was not killed in the middle: exit %d, [%s]", b.status, r.err);
	assert_progress_lines(&b.buf, "rotate-index");
	bg_free(&b);
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_uint_eq(kst_active(&s1, "index"), 2);
	assert_state(&s1, "index", 1, "decrypt-only");
	lookups(0, tab_count(), 11);

	/* The rerun resumes under the same new key, and ends it. */
	bg_start(&b, "kms", "rotate-index", "--batch", "50", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	done = summary_records(&b.buf, "rotate-index");
	ck_assert_msg(done > 0 && done <= (long long)tab_count(), "%lld "
	    "records", done);
	ck_assert_int_gt(b.probes, 0);
	bg_free(&b);
	load_wait(60);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_uint_eq(kst_count(&s1, "index", NULL), 2);
	ck_assert_uint_eq(kst_active(&s1, "index"), 2);
	assert_state(&s1, "index", 1, "destroyed");
	ck_assert_int_eq(s1.records, (long long)tab_count());
	/* Every record, old or written meanwhile, is found by its email. */
	lookups(0, NFIX, 5);
	lookups(NFIX, tab_count(), 1);
	sweep_all();

	/* A second rotation under load, to its end in one go. */
	load_start(2, 3);
	load_wait(20);
	bg_start(&b, "kms", "rotate-index", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	bg_free(&b);
	load_wait(40);
	load_stop();
	kst_get(&s1);
	ck_assert_uint_eq(kst_active(&s1, "index"), 3);
	ck_assert_uint_eq(kst_count(&s1, "index", "destroyed"), 2);
	lookups(0, tab_count(), 3);
}
END_TEST

/*
 * The public key kms public-key prints for the one signing key version
 * this vault has: {"version":1,"public_key":"pvpub_…","state":"active"}.
 */
static void
signing_pub(char pub[static 128])
{
	static const char pre[] = "{\"version\":1,\"public_key\":\"";
	struct su_run r;
	const char *p, *q;

	cli(&r, "kms", "public-key", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strncmp(r.out, pre, strlen(pre)) == 0 &&
	    (q = strstr(r.out, "\",\"state\":\"active\"}\n")) != NULL &&
	    strchr(r.out, '\n') == r.out + r.outlen - 1, "public-key: [%s]",
	    r.out);
	p = r.out + strlen(pre);
	ck_assert_int_lt(q - p, 128);
	(void)snprintf(pub, 128, "%.*s", (int)(q - p), p);
	su_run_free(&r);
}

/* Receipts: every line verifies, and a changed one does not. */
static void
verify_receipts(const char *path, size_t n)
{
	struct su_run r;
	char pub[128], *p;
	size_t oks = 0;

	signing_pub(pub);
	cli_key(&r, NULL, "receipt", "verify", path, "--public-key", pub,
	    NULL);
	ck_assert_exit(&r, 0);
	for (p = r.out; (p = strstr(p, "ok rec_")) != NULL; p++)
		oks++;
	ck_assert_uint_eq(oks, n);
	su_run_free(&r);
}

START_TEST(test_shred)
{
	struct kst s0, s1;
	struct tally t;
	struct su_run r;
	struct bg b;
	struct pv_buf all;
	char *first[NFIX], *again, path[64], *p;
	size_t ncli, napi = 0, nkill, before;
	int st;

	probe_lookups = 1;
	load_start(2, 2);
	load_wait(40);
	kst_get(&s0);

	/* Refusals shred nothing. */
	cli(&r, "shred", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	cli(&r, "shred", tab[5].id, "--reason", "", NULL);
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	cli(&r, "shred", "rec_AAAAAAAAAAAAAAAAAAAAAA", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "1 of 1 not shredded");
	su_run_free(&r);
	cli(&r, "shred", tab[5].tok[0], NULL);	/* a token is no record id */
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	cli(&r, "shred", "--from-file", "no-such-file", NULL);
	ck_assert_exit(&r, 1);
	su_run_free(&r);
	{
		struct su_resp x;

		(void)snprintf(path, sizeof(path), "/v1/records/%s",
		    tab[5].id);
		req(&x, "DELETE", path, K_READER, NULL);
		assert_status(&x, 403);
		su_resp_free(&x);
		req(&x, "DELETE", "/v1/records/rec_AAAAAAAAAAAAAAAAAAAAAA",
		    K_ADMIN, NULL);
		assert_status(&x, 404);
		su_resp_free(&x);
	}
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.values, NF * NFIX);

	/*
	 * 100 ids by the CLI from a file, and 50 by the API, at the same
	 * time, while the load reads, writes and looks up.
	 */
	ncli = ids_file("ids.txt", 0, NFIX, 20, 3);
	ck_assert_uint_eq(ncli, 100);
	mark_mod(0, NFIX, 20, 3, ST_MAYBE_SHRED);
	mark_mod(0, NFIX, 40, 11, ST_MAYBE_SHRED);
	bg_start(&b, "shred", "--from-file", "ids.txt", "--reason",
	    "ops-test", NULL);
	for (size_t i = 11; i < NFIX; i += 40)
		first[napi++] = api_shred(i);
	ck_assert_uint_eq(napi, 50);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	mark_mod(0, NFIX, 20, 3, ST_SHREDDED);
	mark_mod(0, NFIX, 40, 11, ST_SHREDDED);

	/* One receipt a line, in the file's order. */
	pv_buf_init(&all, 1u << 20);
	{
		size_t k = 0;
		const char *line = b.buf.p, *nl;

		for (size_t i = 3; i < NFIX; i += 20, k++) {
			struct jv *v;

			ck_assert_ptr_nonnull(nl = strchr(line, '\n'));
			v = jparse(line, (size_t)(nl - line));
			ck_assert_msg(v != NULL && jstr(jget(v, "receipt"),
			    "record") != NULL && strcmp(jstr(jget(v,
			    "receipt"), "record"), tab[i].id) == 0 &&
			    strcmp(jstr(jget(v, "receipt"), "reason"),
			    "ops-test") == 0, "receipt %zu: [%.*s]", k,
			    (int)(nl - line), line);
			jfree(v);
			line = nl + 1;
		}
		ck_assert_str_eq(line, "");
		ck_assert_uint_eq(k, ncli);
	}
	ck_assert_int_eq(pv_buf_add(&all, b.buf.p, b.buf.len), PV_OK);
	for (size_t i = 0; i < napi; i++)
		ck_assert_int_eq(pv_buf_add(&all, first[i], strlen(first[i])),
		    PV_OK);
	spit("receipts.jsonl", all.p, 0600);

	/* From now on: shredded, and not found. */
	sweep(0, NFIX, &t);
	ck_assert_int_eq(t.shredded, NF * 150);
	ck_assert_int_eq(t.values, NF * (NFIX - 150));
	lookups(3, NFIX, 20);
	lookups(11, NFIX, 40);
	verify_receipts("receipts.jsonl", 150);

	/* A changed receipt does not verify. */
	ck_assert_ptr_nonnull(p = strstr(all.p, "\"reason\":\"ops-test\""));
	p[strlen("\"reason\":\"ops-tes")] = 'T';
	spit("tampered.jsonl", all.p, 0600);
	pv_buf_cleanup(&all);
	{
		char pub[128];

		signing_pub(pub);
		cli_key(&r, NULL, "receipt", "verify", "tampered.jsonl",
		    "--public-key", pub, NULL);
		ck_assert_exit(&r, 1);
		ck_assert_err_has(&r, "signature does not verify");
		su_run_free(&r);
	}

	/* Twice is harmless: the same receipts, nothing else changes. */
	before = tab_count();
	cli(&r, "shred", "--from-file", "ids.txt", "--reason", "ops-test",
	    NULL);
	ck_assert_exit(&r, 0);
	ck_assert_str_eq(r.out, b.buf.p);
	su_run_free(&r);
	bg_free(&b);
	for (size_t i = 11, k = 0; i < NFIX; i += 40, k++) {
		again = api_shred(i);
		ck_assert_str_eq(again, first[k]);
		free(again);
		free(first[k]);
	}
	load_wait(40);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_int_eq(s1.records, (long long)tab_count() - 150);
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, s1.records);
	ck_assert_uint_ge(tab_count(), before);
	sweep_all();

	/*
	 * kill -9 in the middle of a shred of 200 (one commit): all of them
	 * or none; the rerun shreds the rest and signs for all.
	 */
	nkill = ids_file("ids2.txt", 0, NFIX, 10, 7);
	ck_assert_uint_eq(nkill, 200);
	mark_mod(0, NFIX, 10, 7, ST_MAYBE_SHRED);
	load_start(2, 2);
	load_wait(20);
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		struct ask q[2 * 200];
		size_t k = 0;

		st = kill_soon(kill_delays[d], "shred", "--from-file",
		    "ids2.txt", NULL);
		for (size_t i = 7; i < NFIX; i += 10)
			for (int f = 0; f < NF; f++) {
				q[k].rec = i;
				q[k].f = f;
				q[k++].allow = allow_of(i);
			}
		memset(&t, 0, sizeof(t));
		detok_check(q, k, &t);
		ck_assert_msg((t.shredded == 0 && t.values == (long)k) ||
		    (t.shredded == (long)k && t.values == 0), "after kill "
		    "(exit %d): %ld shredded, %ld values", st, t.shredded,
		    t.values);
		kst_get(&s1);
		assert_consistent(&s1);
	}
	cli(&r, "shred", "--from-file", "ids2.txt", NULL);
	ck_assert_exit(&r, 0);
	spit("receipts2.jsonl", r.out, 0600);
	su_run_free(&r);
	mark_mod(0, NFIX, 10, 7, ST_SHREDDED);
	verify_receipts("receipts2.jsonl", 200);
	load_wait(40);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_int_eq(s1.records, (long long)tab_count() - 350);
	sweep_all();
	lookups(7, NFIX, 50);
}
END_TEST

/* Kill once the vault has a second index key: the rebuild has begun. */
static int
on_index_rotated(const struct bg *b, const void *arg)
{
	struct kst s;

	(void)b;
	(void)arg;
	kst_get(&s);
	return kst_count(&s, "index", NULL) > 1;
}

START_TEST(test_shred_epoch)
{
	static const char *const usage[][6] = {
		{ "kms", "shred-epoch", "--batch", "0", NULL },
		{ "kms", "shred-epoch", "now", NULL },
	};
	struct kst s0, s1;
	struct su_run r;
	struct bg b;

	/* Some shreds for the epoch to make final. */
	for (size_t i = 1; i < NFIX; i += 100) {
		free(api_shred(i));
		atomic_store(&tab[i].st, ST_SHREDDED);
	}
	probe_lookups = 1;
	load_start(2, 2);
	load_wait(40);
	kst_get(&s0);
	for (size_t i = 0; i < NELEM(usage); i++) {
		cli_key_argv(&r, cur_key, usage[i]);
		ck_assert_exit(&r, 2);
		su_run_free(&r);
	}
	kst_get(&s1);
	assert_same_keys(&s0, &s1);

	/* kill -9 while it re-wraps. */
	bg_start(&b, "kms", "shred-epoch", "--batch", "2", NULL);
	bg_finish(&b, on_output, "\n", &r);
	ck_assert_msg(b.killed && b.status == 128 + SIGKILL, "shred-epoch "
	    "was not killed in the middle: exit %d, [%s]", b.status, r.err);
	assert_progress_lines(&b.buf, "shred-epoch");
	bg_free(&b);
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_uint_eq(kst_active(&s1, "kek"), 2);
	ck_assert_int_gt(kst_find(&s1, "kek", 1)->records, 0);
	sweep_all();

	/* Again, killed once the index rebuild has begun. */
	bg_start(&b, "kms", "shred-epoch", "--batch", "2", NULL);
	bg_finish(&b, on_index_rotated, NULL, &r);
	ck_assert_msg(b.killed && b.status == 128 + SIGKILL, "shred-epoch "
	    "was not killed in the index rebuild: exit %d, [%s]", b.status,
	    r.err);
	bg_free(&b);
	kst_get(&s1);
	assert_consistent(&s1);
	/* Resumed, not started over: still the same target KEK. */
	ck_assert_uint_eq(kst_active(&s1, "kek"), 2);
	ck_assert_uint_eq(kst_count(&s1, "kek", NULL), 2);
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, 0);
	ck_assert_uint_eq(kst_active(&s1, "index"), 2);
	assert_state(&s1, "index", 1, "decrypt-only");
	lookups(0, tab_count(), 13);
	sweep_all();

	/* And to its end. */
	bg_start(&b, "kms", "shred-epoch", "--batch", "100", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	ck_assert_msg(strstr(b.buf.p, "shred epoch complete") != NULL,
	    "[%s]", b.buf.p);
	bg_free(&b);
	load_wait(60);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	/* One KEK and one index key left; every older one destroyed. */
	ck_assert_uint_eq(kst_count(&s1, "kek", NULL), 2);
	ck_assert_uint_eq(kst_active(&s1, "kek"), 2);
	assert_state(&s1, "kek", 1, "destroyed");
	ck_assert_int_eq(kst_find(&s1, "kek", 1)->records, 0);
	ck_assert_int_eq(kst_find(&s1, "kek", 2)->records, s1.records);
	ck_assert_uint_eq(kst_count(&s1, "index", NULL), 2);
	ck_assert_uint_eq(kst_active(&s1, "index"), 2);
	assert_state(&s1, "index", 1, "destroyed");
	ck_assert_int_eq(s1.records, (long long)tab_count() - 20);
	sweep_all();
	lookups(0, tab_count(), 7);
	lookups(1, NFIX, 100);

	/* A second epoch, under load, in one go. */
	load_start(2, 2);
	load_wait(20);
	bg_start(&b, "kms", "shred-epoch", NULL);
	bg_finish(&b, NULL, NULL, &r);
	ck_assert_exit(&r, 0);
	bg_free(&b);
	load_wait(40);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_uint_eq(kst_active(&s1, "kek"), 3);
	ck_assert_uint_eq(kst_count(&s1, "kek", "destroyed"), 2);
	ck_assert_uint_eq(kst_count(&s1, "index", "destroyed"), 2);
	sweep_all();
}
END_TEST

static long long
file_size(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return (long long)st.st_size;
}

START_TEST(test_compact)
{
	struct kst s0, s1;
	struct su_run r;
	long long size0, size1, before, after;
	int st;

	/* Shred 300 records: free pages for compact to drop. */
	ck_assert_uint_eq(ids_file("ids.txt", 0, NFIX, 20, 9), 100);
	cli(&r, "shred", "--from-file", "ids.txt", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	mark_mod(0, NFIX, 20, 9, ST_SHREDDED);
	ck_assert_uint_eq(ids_file("ids.txt", 0, NFIX, 10, 4), 200);
	cli(&r, "shred", "--from-file", "ids.txt", NULL);
	ck_assert_exit(&r, 0);
	su_run_free(&r);
	mark_mod(0, NFIX, 10, 4, ST_SHREDDED);

	probe_lookups = 1;
	load_start(2, 2);
	load_wait(40);
	kst_get(&s0);
	/* Refused while the server has the vault open. */
	cli(&r, "compact", NULL);
	ck_assert_exit(&r, 1);
	ck_assert_err_has(&r, "in use");
	su_run_free(&r);
	cli(&r, "compact", "now", NULL);
	ck_assert_exit(&r, 2);
	su_run_free(&r);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);
	sweep_all();

	/* Stop the server under load: a 503 or a closed connection. */
	load_wait(40);
	atomic_store(&load.stopping, 1);
	su_srv_stop();
	load_stop();
	kst_get(&s0);
	assert_consistent(&s0);
	ck_assert_int_eq(s0.records, (long long)tab_count() - 300);
	size0 = file_size("piivault-data/data.mdb");

	/* kill -9 in the middle leaves a vault that opens, and a rerun. */
	for (size_t d = 0; d < NELEM(kill_delays); d++) {
		st = kill_soon(kill_delays[d], "compact", NULL);
		kst_get(&s1);
		assert_same_keys(&s0, &s1);
		ck_assert_int_eq(s1.records, s0.records);
	}
	cli(&r, "compact", NULL);
	ck_assert_exit(&r, 0);
	ck_assert_msg(sscanf(r.out, "compacted ./piivault-data: %lld -> %lld "
	    "bytes", &before, &after) == 2, "compact (after exit %d): [%s]",
	    st, r.out);
	su_run_free(&r);
	ck_assert_int_le(after, before);
	size1 = file_size("piivault-data/data.mdb");
	ck_assert_msg(size1 <= size0, "data.mdb grew: %lld -> %lld", size0,
	    size1);
	ck_assert_int_eq(size1, after);
	kst_get(&s1);
	assert_same_keys(&s0, &s1);

	/* A restarted server answers every surviving token, under load. */
	srv_start();
	sweep_all();
	lookups(0, tab_count(), 9);
	load_start(2, 2);
	load_wait(60);
	load_stop();
	kst_get(&s1);
	assert_consistent(&s1);
	ck_assert_int_eq(s1.records, (long long)tab_count() - 300);
}
END_TEST

/* One case a test, so that CK_RUN_CASE can pick one. */
static Suite *
ops_shred_suite(void)
{
	Suite *s = suite_create("ops_shred");

	ops_tcase(s, "shred_epoch_after_destroy", test_shred_epoch_after_destroy);
	ops_tcase(s, "rotate_index", test_rotate_index);
	ops_tcase(s, "shred", test_shred);
	ops_tcase(s, "shred_epoch", test_shred_epoch);
	ops_tcase(s, "compact", test_compact);
	return s;
}

int
main(void)
{
	return su_suite_main("check_ops_shred", ops_shred_suite());
}
