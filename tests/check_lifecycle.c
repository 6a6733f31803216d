/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_lifecycle.c: crypto-shredding, receipts and the key lifecycle of
 * vault.h: rotation, re-wrapping, retiring and destroying KEKs, root and
 * index rotation, shred epochs, compaction and cryptoperiods.  Each
 * operation gets its happy path and its refusals; the resumable jobs are
 * killed with SIGKILL half-way and run again.
 *
 * White-box: opens the store directly (pv_store.h; the suite links pvkms
 * and pvstore itself) to read raw records, tombstones, index entries and
 * ring entries, with the byte offsets of docs/format.md; records are read
 * by seq, which counts from 1 in the order they were put.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kms.h"		/* white-box: KMS_WRAPPED_LEN */
#include "pv_store.h"
#include "vault.h"
#include "testutil.h"

/* docs/format.md: record, tombstone and ring entry. */
#define REC_TYPE	0	/* 1 live, 2 tombstone */
#define REC_FLAGS	1
#define REC_KEKV	10
#define REC_DEK		14	/* the wrapped DEK, KMS_WRAPPED_LEN bytes */
#define REC_CREATED	(REC_DEK + KMS_WRAPPED_LEN)
#define REC_NFIELDS	90
#define REC_FIELDS	92
#define REC_TOMBSTONE	2
#define FLAG_HOLD	0x02
#define TS_REASON	31	/* tombstone: reason after its length */
#define RING_VAL_LEN	86
#define RING_SEALED	26	/* nonce, sealed key, tag: 60 bytes */
#define TOK_NAMELEN	16	/* token entry: record seq, check, name */
#define TOK_NAME	17

#define REC_BUF		8192	/* the largest raw record a test reads */
#define ID_LEN		(VAULT_ID_STRLEN + 1)

static char dir[PATH_MAX], keyfile[PATH_MAX + 16], datadir[PATH_MAX + 16];
static struct vault_opts opts;

static void
setup(void)
{
	tu_vault_setup(dir, keyfile, datadir, &opts);
}

#define F(n, v)	{ n, sizeof(n) - 1, v, sizeof(v) - 1 }

static struct vault *
vcreate(void)
{
	struct vault *v = NULL;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	return v;
}

static struct vault *
vopen(void)
{
	struct vault *v = NULL;

	ck_assert_int_eq(vault_open(&opts, &v), PV_OK);
	return v;
}

/* One record in its own commit; its id and tokens into id and toks. */
static pv_status
put1(struct vault *v, const struct vault_field *f, size_t n, char *id,
    char (*toks)[ID_LEN])
{
	struct vault_record_in r = { f, n, 0, 0 };
	struct vault_put_result res = { .tokens = toks };
	pv_status rc;

	if ((rc = vault_put(v, &r, 1, &res)) != PV_OK)
		return rc;
	if (res.status == PV_OK && id != NULL)
		memcpy(id, res.id, sizeof(res.id));
	return res.status;
}

/* Look a value up; returns the number of matches, the first into m0. */
static size_t
lookup(struct vault *v, const char *field, const char *value,
    struct vault_match *m0)
{
	struct vault_match *m = NULL;
	size_t n = 0;

	ck_assert_int_eq(vault_lookup(v, field, strlen(field), value,
	    strlen(value), &m, &n), PV_OK);
	if (n > 0 && m0 != NULL)
		*m0 = m[0];
	free(m);
	return n;
}

/* Shred one record by id; *st is its status, *r its receipt. */
static pv_status
shred1(struct vault *v, const char *id, const char *reason,
    struct vault_receipt *r, pv_status *st)
{
	const char *ids[1] = { id };
	size_t lens[1] = { strlen(id) };

	return vault_shred(v, ids, lens, 1, reason, r, st);
}

/*
 * The public key of signing key version (0: the active one); fails the
 * test if the vault lists none.
 */
static void
signing_pub(struct vault *v, uint32_t version,
    uint8_t pub[static PV_ED25519_LEN])
{
	struct vault_signing_key *k = NULL;
	size_t n = 0;
	int found = 0;

	ck_assert_int_eq(vault_signing_keys(v, &k, &n), PV_OK);
	for (size_t i = 0; i < n; i++)
		if (version == 0 ? k[i].state == VAULT_KEY_ACTIVE :
		    k[i].version == version) {
			memcpy(pub, k[i].pub, PV_ED25519_LEN);
			found++;
		}
	free(k);
	ck_assert_msg(found == 1, "signing key %u listed %d times", version,
	    found);
}

/* Key ring views, through vault_info. */

/* The row of (kind, version); fails the test if there is none. */
static struct vault_key_info
key_row(struct vault *v, enum vault_key_kind kind, uint32_t version)
{
	struct vault_key_info row;
	struct vault_info info;
	int found = 0;

	memset(&row, 0, sizeof(row));
	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	for (size_t i = 0; i < info.nkeys; i++)
		if (info.keys[i].kind == kind &&
		    info.keys[i].version == version) {
			row = info.keys[i];
			found = 1;
		}
	free(info.keys);
	ck_assert_msg(found, "no %s version %u", vault_key_kind_name(kind),
	    version);
	return row;
}

static void
expect_state(struct vault *v, enum vault_key_kind kind, uint32_t version,
    enum vault_key_state st)
{
	struct vault_key_info k = key_row(v, kind, version);

	ck_assert_msg(k.state == st, "%s %u is %s, not %s",
	    vault_key_kind_name(kind), version, vault_key_state_name(k.state),
	    vault_key_state_name(st));
}

/* A KEK's state and counters: records wrapped now, DEKs ever wrapped. */
static void
expect_kek(struct vault *v, uint32_t version, enum vault_key_state st,
    uint64_t live, uint64_t total)
{
	struct vault_key_info k = key_row(v, VAULT_KEK, version);

	ck_assert_msg(k.state == st, "kek %u is %s, not %s", version,
	    vault_key_state_name(k.state), vault_key_state_name(st));
	ck_assert_msg(k.wraps_live == live, "kek %u wraps %llu, not %llu",
	    version, (unsigned long long)k.wraps_live,
	    (unsigned long long)live);
	ck_assert_msg(k.wraps_total == total, "kek %u wrapped %llu in all, "
	    "not %llu", version, (unsigned long long)k.wraps_total,
	    (unsigned long long)total);
}

static size_t
key_count(struct vault *v, enum vault_key_kind kind)
{
	struct vault_info info;
	size_t n = 0;

	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	for (size_t i = 0; i < info.nkeys; i++)
		n += info.keys[i].kind == kind;
	free(info.keys);
	return n;
}

/* The sum of wraps_live over every KEK version. */
static uint64_t
live_sum(struct vault *v)
{
	struct vault_info info;
	uint64_t n = 0;

	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	for (size_t i = 0; i < info.nkeys; i++)
		if (info.keys[i].kind == VAULT_KEK)
			n += info.keys[i].wraps_live;
	free(info.keys);
	return n;
}

static uint64_t
record_count(struct vault *v)
{
	struct vault_info info;

	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	free(info.keys);
	return info.records;
}

/* The raw store. */

static struct pv_store *
store_open(void)
{
	struct pv_store_opts so = { opts.map_size, 0, 0 };
	struct pv_store *s = NULL;

	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	return s;
}

/* Copy one value of tab into buf; returns its length. */
static size_t
raw_read(struct pv_store *s, enum pv_table tab, const void *key,
    size_t klen, uint8_t *buf, size_t cap)
{
	struct pv_txn *t;
	const void *v;
	size_t vl;

	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(pv_get(t, tab, key, klen, &v, &vl), PV_OK);
	ck_assert_uint_le(vl, cap);
	memcpy(buf, v, vl);
	pv_txn_abort(t);
	return vl;
}

/* The numbers of the records table, in order; how many (at most max). */
static size_t
rec_seqs(struct pv_store *s, uint64_t *out, size_t max)
{
	struct pv_cursor *c;
	struct pv_txn *t;
	const void *k, *v;
	size_t kl, vl, n = 0;
	pv_status rc;

	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(pv_cursor_open(t, PV_T_RECORDS, &c), PV_OK);
	for (rc = pv_cursor_seek(c, NULL, 0, 0, &k, &kl, &v, &vl);
	    rc == PV_OK; rc = pv_cursor_next(c, 0, &k, &kl, &v, &vl)) {
		ck_assert_uint_eq(kl, 8);
		ck_assert_uint_lt(n, max);
		out[n++] = pv_get_u64(k);
	}
	ck_assert_int_eq(rc, PV_ENOTFOUND);
	pv_cursor_close(c);
	pv_txn_abort(t);
	return n;
}

static size_t
rec_read(struct pv_store *s, uint64_t seq, uint8_t *buf, size_t cap)
{
	uint8_t key[8];

	pv_put_u64(key, seq);
	return raw_read(s, PV_T_RECORDS, key, sizeof(key), buf, cap);
}

/* A ring entry, RING_VAL_LEN bytes. */
static void
ring_read(struct pv_store *s, enum vault_key_kind kind, uint32_t version,
    uint8_t val[static RING_VAL_LEN])
{
	uint8_t key[5];

	key[0] = (uint8_t)kind;
	pv_put_u32(key + 1, version);
	ck_assert_uint_eq(raw_read(s, PV_T_RING, key, sizeof(key), val,
	    RING_VAL_LEN), RING_VAL_LEN);
}

static uint64_t
index_entries(struct pv_store *s)
{
	struct pv_txn *t;
	uint64_t n;

	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(pv_count(t, PV_T_INDEX, &n), PV_OK);
	pv_txn_abort(t);
	return n;
}

/* Whether the index holds an entry under digest. */
static int
index_has(struct pv_store *s, const uint8_t *digest)
{
	struct pv_txn *t;
	const void *v;
	size_t vl;
	pv_status rc;

	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	rc = pv_get(t, PV_T_INDEX, digest, 32, &v, &vl);
	pv_txn_abort(t);
	ck_assert(rc == PV_OK || rc == PV_ENOTFOUND);
	return rc == PV_OK;
}

/* Where field i of a raw record lies. */
struct loc {
	size_t	entry, digest, ct, ctlen, end;
};

static void
locate(const uint8_t *rec, size_t len, size_t field, struct loc *l)
{
	size_t p = REC_FIELDS, nf = (size_t)rec[REC_NFIELDS] << 8 |
	    rec[REC_NFIELDS + 1];

	ck_assert_uint_lt(field, nf);
	for (size_t i = 0; i <= field; i++) {
		l->entry = p;
		p += 1 + (size_t)rec[p];
		l->digest = (rec[p] & 1) ? p + 1 : 0;
		p += 1 + ((rec[p] & 1) ? 32u : 0u);
		p += 8;
		l->ctlen = (size_t)rec[p] << 8 | rec[p + 1];
		p += 2 + 12;
		l->ct = p;
		p = l->end = l->ct + l->ctlen + 16;
	}
	ck_assert_uint_le(p, len);
}

/*
 * Many records: record i has a name and either a city or an email, with
 * values made from i.
 */
#define BULK_BATCH	1000
#define BULK_VAL	40

struct bulk {
	size_t		  n;
	int		  email;	/* second field: email, else city */
	char		(*ids)[ID_LEN];
	char		(*toks)[2][ID_LEN];
};

static void
bulk_init(struct bulk *b, size_t n, int email)
{
	b->n = n;
	b->email = email;
	ck_assert_ptr_nonnull(b->ids = calloc(n, sizeof(*b->ids)));
	ck_assert_ptr_nonnull(b->toks = calloc(n, sizeof(*b->toks)));
}

static void
bulk_free(struct bulk *b)
{
	free(b->ids);
	free(b->toks);
}

static const char *
bulk_field(const struct bulk *b, int field)
{
	return field == 0 ? "name" : b->email ? "email" : "city";
}

static size_t
bulk_value(char out[static BULK_VAL], const struct bulk *b, size_t i,
    int field)
{
	int n;

	if (field == 0)
		n = snprintf(out, BULK_VAL, "Name Nr %07zu", i);
	else if (b->email)
		n = snprintf(out, BULK_VAL, "user.%07zu@example.org", i);
	else
		n = snprintf(out, BULK_VAL, "City Nr %07zu", i);
	ck_assert(n > 0 && n < BULK_VAL);
	return (size_t)n;
}

/* Put records [from, to) in commits of BULK_BATCH. */
static void
bulk_put(struct vault *v, struct bulk *b, size_t from, size_t to)
{
	static char vals[BULK_BATCH][2][BULK_VAL];
	static struct vault_field f[BULK_BATCH][2];
	static struct vault_record_in recs[BULK_BATCH];
	static struct vault_put_result res[BULK_BATCH];

	ck_assert_uint_le(to, b->n);
	for (size_t i = from; i < to; i += BULK_BATCH) {
		size_t m = to - i < BULK_BATCH ? to - i : BULK_BATCH;

		for (size_t j = 0; j < m; j++) {
			for (int k = 0; k < 2; k++) {
				f[j][k].name = bulk_field(b, k);
				f[j][k].namelen = strlen(f[j][k].name);
				f[j][k].value = vals[j][k];
				f[j][k].len = bulk_value(vals[j][k], b, i + j,
				    k);
			}
			recs[j] = (struct vault_record_in){ f[j], 2, 0, 0 };
			res[j].tokens = b->toks[i + j];
		}
		ck_assert_int_eq(vault_put(v, recs, m, res), PV_OK);
		for (size_t j = 0; j < m; j++) {
			ck_assert_int_eq(res[j].status, PV_OK);
			memcpy(b->ids[i + j], res[j].id, ID_LEN);
		}
	}
}

/* Record i's tokens resolve to its values. */
static void
bulk_expect(struct vault *v, const struct bulk *b, size_t i)
{
	char val[BULK_VAL];

	for (int k = 0; k < 2; k++)
		tu_expect_value(v, b->toks[i][k], bulk_field(b, k), val,
		    bulk_value(val, b, i, k));
}

/* Record i's tokens answer PV_ESHREDDED. */
static void
bulk_expect_shredded(struct vault *v, const struct bulk *b, size_t i)
{
	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(tu_get_status(v, b->toks[i][k]), PV_ESHREDDED);
}

/* A look-up of record i's email finds record i, and only it. */
static void
bulk_expect_lookup(struct vault *v, const struct bulk *b, size_t i)
{
	struct vault_match m;
	char val[BULK_VAL];
	size_t n;

	(void)bulk_value(val, b, i, 1);
	n = lookup(v, "email", val, &m);
	ck_assert_msg(n == 1, "record %zu: %zu matches", i, n);
	ck_assert_str_eq(m.id, b->ids[i]);
	ck_assert_str_eq(m.token, b->toks[i][1]);
}

/* Progress callbacks. */

struct prog {
	int		calls;
	int		increasing;	/* done grew at every call */
	uint64_t	last;
	uint64_t	total;
};

static void
prog_init(struct prog *g)
{
	memset(g, 0, sizeof(*g));
	g->increasing = 1;
}

static void
prog_record(void *arg, const struct vault_progress *p)
{
	struct prog *g = arg;

	if (g->calls > 0 && p->done <= g->last)
		g->increasing = 0;
	g->calls++;
	g->last = p->done;
	g->total = p->total;
}

/*
 * kill -9 in the middle: a child opens the vault and runs a job whose
 * progress callback kills the child on its kill_at-th call.  The parent
 * MUST have closed its handles: an LMDB environment does not cross fork.
 */
enum job { JOB_REWRAP, JOB_INDEX, JOB_EPOCH };

static int kill_at, kill_calls;

static void
kill_progress(void *arg, const struct vault_progress *p)
{
	(void)arg;
	(void)p;
	if (++kill_calls == kill_at)
		(void)raise(SIGKILL);
}

static void
run_killed(enum job job, int at)
{
	pid_t pid;
	int st;

	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		struct vault *v;
		uint64_t done;
		pv_status rc = PV_EINVAL;

		kill_at = at;
		kill_calls = 0;
		if (vault_open(&opts, &v) == PV_OK) {
			if (job == JOB_REWRAP)
				rc = vault_rewrap(v, 0, 100, kill_progress,
				    NULL, &done);
			else if (job == JOB_INDEX)
				rc = vault_rotate_index(v, 100, kill_progress,
				    NULL, &done);
			else
				rc = vault_shred_epoch(v, 100, kill_progress,
				    NULL);
			vault_close(v);
		}
		_exit(rc == PV_OK ? 10 : 11);	/* not killed: a failure */
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "the child was not killed (wait status %#x)", (unsigned)st);
}

/* Rotation. */

/*
 * Records are sealed before their commit, outside the writer lock.  One
 * sealed under a KEK or index key that a rotation replaced before the
 * commit must be sealed again: else it would land under a key that the
 * rewrap has already passed and the operator then retires and destroys,
 * or under an index key the rebuild has already dropped.
 */
#define RACE_PUTS	300

struct racer {
	struct vault	*v;
	char		 toks[RACE_PUTS][2][ID_LEN];
	int		 done;
	pv_status	 rc;
};

static void
race_email(char *buf, size_t cap, int i)
{
	(void)snprintf(buf, cap, "racer%03d@race.example", i);
}

static void *
race_puts(void *arg)
{
	struct racer *r = arg;
	char email[64];
	pv_status rc;

	for (int i = 0; i < RACE_PUTS; i++) {
		struct vault_field f[] = { F("name", "Race Person"),
		    { "email", 5, email, 0 } };

		race_email(email, sizeof(email), i);
		f[1].len = strlen(email);
		if ((rc = put1(r->v, f, 2, NULL, r->toks[i])) != PV_OK) {
			__atomic_store_n(&r->rc, rc, __ATOMIC_RELEASE);
			break;
		}
		(void)__atomic_add_fetch(&r->done, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

START_TEST(puts_race_key_rotations)
{
	static struct racer r;
	struct vault_match m;
	struct vault *v, *w;
	pthread_t th;
	uint32_t old, newv = 0;
	uint64_t wrapped, done;
	char email[64];
	int rounds = 0;

	v = vcreate();
	w = vopen();		/* the operator's CLI */
	memset(&r, 0, sizeof(r));
	r.v = v;
	ck_assert_int_eq(pthread_create(&th, NULL, race_puts, &r), 0);
	do {
		old = newv ? newv : 1;
		ck_assert_int_eq(vault_rotate(w, VAULT_KEK, &newv), PV_OK);
		ck_assert_int_eq(vault_rewrap(w, 0, 16, NULL, NULL, &done),
		    PV_OK);
		wrapped = 99;
		ck_assert_int_eq(vault_key_state(w, VAULT_KEK, old,
		    VAULT_KEY_RETIRED, 0, &wrapped), PV_OK);
		ck_assert_uint_eq(wrapped, 0);
		ck_assert_int_eq(vault_key_state(w, VAULT_KEK, old,
		    VAULT_KEY_DESTROYED, 0, &wrapped), PV_OK);
		ck_assert_int_eq(vault_rotate_index(w, 16, NULL, NULL, &done),
		    PV_OK);
		rounds++;
	} while (__atomic_load_n(&r.done, __ATOMIC_ACQUIRE) < RACE_PUTS &&
	    __atomic_load_n(&r.rc, __ATOMIC_ACQUIRE) == PV_OK);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(r.rc, PV_OK);
	ck_assert_int_gt(rounds, 1);
	/* Every record reads back, and is found under the current key. */
	for (int i = 0; i < RACE_PUTS; i++) {
		race_email(email, sizeof(email), i);
		tu_expect_value(v, r.toks[i][0], "name", "Race Person", 11);
		tu_expect_value(w, r.toks[i][1], "email", email, strlen(email));
		ck_assert_uint_eq(lookup(w, "email", email, &m), 1);
		ck_assert_str_eq(m.token, r.toks[i][1]);
	}
	expect_kek(w, newv, VAULT_KEY_ACTIVE, RACE_PUTS, key_row(w, VAULT_KEK,
	    newv).wraps_total);
	vault_close(w);
	vault_close(v);
}
END_TEST

START_TEST(rotate_kek)
{
	struct vault_field a[] = { F("name", "Ann Before"),
	    F("email", "ann.before@example.org") };
	struct vault_field b[] = { F("name", "Bob After"),
	    F("email", "bob.after@example.org") };
	char ta[3][2][ID_LEN], tb[3][2][ID_LEN];
	uint8_t buf[REC_BUF];
	uint64_t seqs[8];
	struct pv_store *s;
	struct vault *v, *w;
	uint32_t newv = 0;

	v = vcreate();
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(put1(v, a, 2, NULL, ta[i]), PV_OK);
	w = vopen();		/* a second handle, as a server holds one */
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	ck_assert_uint_eq(newv, 2);
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 3, 3);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, 0, 0);
	ck_assert_int_eq(put1(v, b, 2, NULL, tb[0]), PV_OK);
	ck_assert_int_eq(put1(v, b, 2, NULL, tb[1]), PV_OK);
	/* The other handle writes under the new version as well. */
	ck_assert_int_eq(put1(w, b, 2, NULL, tb[2]), PV_OK);
	expect_kek(w, 1, VAULT_KEY_DECRYPT_ONLY, 3, 3);
	expect_kek(w, 2, VAULT_KEY_ACTIVE, 3, 3);
	/*
	 * In number order, the first three under version 1.  The two
	 * handles lease numbers apart: w's record comes after a gap.
	 */
	s = store_open();
	ck_assert_uint_eq(rec_seqs(s, seqs, 8), 6);
	ck_assert_uint_gt(seqs[5], 6);
	for (size_t i = 0; i < 6; i++) {
		(void)rec_read(s, seqs[i], buf, sizeof(buf));
		ck_assert_uint_eq(pv_get_u32(buf + REC_KEKV), i < 3 ? 1 : 2);
	}
	pv_store_close(s);
	/* Old and new records all read, through either handle. */
	for (size_t i = 0; i < 3; i++) {
		tu_expect_value(v, ta[i][0], "name", "Ann Before", 10);
		tu_expect_value(w, ta[i][1], "email", "ann.before@example.org",
		    22);
		tu_expect_value(v, tb[i][1], "email", "bob.after@example.org",
		    21);
		tu_expect_value(w, tb[i][0], "name", "Bob After", 9);
	}
	/* Only KEK, INDEX and SIGN rotate; a refusal changes nothing. */
	newv = 0;
	ck_assert_int_eq(vault_rotate(v, VAULT_IDS, &newv), PV_EINVAL);
	ck_assert_uint_eq(newv, 0);
	ck_assert_uint_eq(key_count(v, VAULT_IDS), 1);
	ck_assert_uint_eq(key_count(v, VAULT_SIGN), 1);
	ck_assert_uint_eq(key_count(v, VAULT_KEK), 2);
	/* Again: one active version, the others decrypt-only. */
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	ck_assert_uint_eq(newv, 3);
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 3, 3);
	expect_kek(v, 2, VAULT_KEY_DECRYPT_ONLY, 3, 3);
	expect_kek(v, 3, VAULT_KEY_ACTIVE, 0, 0);
	ck_assert_uint_eq(live_sum(v), record_count(v));
	ck_assert_uint_eq(record_count(v), 6);
	vault_close(w);
	vault_close(v);
	/* Durable. */
	v = vopen();
	expect_kek(v, 3, VAULT_KEY_ACTIVE, 0, 0);
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 3, 3);
	tu_expect_value(v, ta[0][0], "name", "Ann Before", 10);
	tu_expect_value(v, tb[2][0], "name", "Bob After", 9);
	vault_close(v);
}
END_TEST

/* Re-wrapping. */

START_TEST(rewrap_changes_only_the_dek)
{
	static uint8_t before[30][1024];
	size_t blen[30];
	uint8_t after[1024];
	struct pv_store *s;
	struct prog g;
	struct bulk b;
	struct vault *v;
	uint64_t done = 99;
	uint32_t newv;

	bulk_init(&b, 30, 1);
	v = vcreate();
	bulk_put(v, &b, 0, 25);
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	bulk_put(v, &b, 25, 30);
	s = store_open();
	for (size_t i = 0; i < 30; i++)
		blen[i] = rec_read(s, i + 1, before[i], sizeof(before[i]));
	prog_init(&g);
	ck_assert_int_eq(vault_rewrap(v, 0, 4, prog_record, &g, &done),
	    PV_OK);
	ck_assert_uint_eq(done, 25);
	/* Seven transactions at least (25 records, 4 a batch). */
	ck_assert_int_ge(g.calls, 7);
	ck_assert(g.increasing);
	ck_assert_uint_eq(g.last, 25);
	ck_assert_uint_ge(g.total, g.last);
	/*
	 * Only the KEK version and the wrapped DEK changed; the header and
	 * every field's ciphertext are the same bytes.
	 */
	for (size_t i = 0; i < 30; i++) {
		size_t len = rec_read(s, i + 1, after, sizeof(after));

		ck_assert_uint_eq(len, blen[i]);
		ck_assert_mem_eq(after, before[i], REC_KEKV);
		ck_assert_mem_eq(after + REC_CREATED, before[i] + REC_CREATED,
		    len - REC_CREATED);
		ck_assert_uint_eq(pv_get_u32(after + REC_KEKV), 2);
		if (i < 25)
			ck_assert_msg(memcmp(after + REC_DEK, before[i] +
			    REC_DEK, KMS_WRAPPED_LEN) != 0,
			    "record %zu kept its wrapped DEK", i);
		else
			ck_assert_mem_eq(after, before[i], len);
	}
	pv_store_close(s);
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 0, 25);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, 30, 30);
	ck_assert_uint_eq(record_count(v), 30);
	for (size_t i = 0; i < 30; i++) {
		bulk_expect(v, &b, i);
		bulk_expect_lookup(v, &b, i);
	}
	/* A second run finds nothing to do. */
	prog_init(&g);
	ck_assert_int_eq(vault_rewrap(v, 0, 4, prog_record, &g, &done),
	    PV_OK);
	ck_assert_uint_eq(done, 0);
	ck_assert_uint_eq(g.last, 0);
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 0, 25);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, 30, 30);
	/* Refusals, and nothing is older than the active version. */
	ck_assert_int_eq(vault_rewrap(v, 0, 100001, NULL, NULL, &done),
	    PV_EINVAL);
	done = 99;
	ck_assert_int_eq(vault_rewrap(v, 2, 0, NULL, NULL, &done), PV_OK);
	ck_assert_uint_eq(done, 0);
	/* A version that is not there, or may not unwrap, is an error. */
	done = 99;
	ck_assert_int_eq(vault_rewrap(v, 77, 0, NULL, NULL, &done),
	    PV_ENOTFOUND);
	ck_assert_uint_eq(done, 0);
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1, VAULT_KEY_RETIRED, 0,
	    &done), PV_OK);
	ck_assert_int_eq(vault_rewrap(v, 1, 0, NULL, NULL, &done),
	    PV_EKEYSTATE);
	ck_assert_uint_eq(done, 0);
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1, VAULT_KEY_DESTROYED,
	    0, &done), PV_OK);
	ck_assert_int_eq(vault_rewrap(v, 1, 0, NULL, NULL, &done),
	    PV_EKEYSTATE);
	ck_assert_uint_eq(done, 0);
	expect_kek(v, 1, VAULT_KEY_DESTROYED, 0, 25);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, 30, 30);
	vault_close(v);
	bulk_free(&b);
}
END_TEST

START_TEST(rewrap_from_one_version)
{
	uint8_t buf[1024];
	struct pv_store *s;
	struct bulk b;
	struct vault *v;
	uint64_t done;
	uint32_t newv;

	bulk_init(&b, 9, 0);
	v = vcreate();
	bulk_put(v, &b, 0, 4);				/* seq 1-4: kek 1 */
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	bulk_put(v, &b, 4, 7);				/* seq 5-7: kek 2 */
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	bulk_put(v, &b, 7, 9);				/* seq 8-9: kek 3 */
	ck_assert_int_eq(vault_rewrap(v, 1, 2, NULL, NULL, &done), PV_OK);
	ck_assert_uint_eq(done, 4);
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 0, 4);
	expect_kek(v, 2, VAULT_KEY_DECRYPT_ONLY, 3, 3);
	expect_kek(v, 3, VAULT_KEY_ACTIVE, 6, 6);
	s = store_open();
	for (uint64_t seq = 1; seq <= 9; seq++) {
		(void)rec_read(s, seq, buf, sizeof(buf));
		ck_assert_uint_eq(pv_get_u32(buf + REC_KEKV),
		    seq >= 5 && seq <= 7 ? 2 : 3);
	}
	ck_assert_int_eq(vault_rewrap(v, 2, 0, NULL, NULL, &done), PV_OK);
	ck_assert_uint_eq(done, 3);
	for (uint64_t seq = 1; seq <= 9; seq++) {
		(void)rec_read(s, seq, buf, sizeof(buf));
		ck_assert_uint_eq(pv_get_u32(buf + REC_KEKV), 3);
	}
	pv_store_close(s);
	expect_kek(v, 2, VAULT_KEY_DECRYPT_ONLY, 0, 3);
	expect_kek(v, 3, VAULT_KEY_ACTIVE, 9, 9);
	ck_assert_int_eq(vault_rewrap(v, 2, 0, NULL, NULL, &done), PV_OK);
	ck_assert_uint_eq(done, 0);
	for (size_t i = 0; i < 9; i++)
		bulk_expect(v, &b, i);
	vault_close(v);
	bulk_free(&b);
}
END_TEST

START_TEST(rewrap_100k_records)
{
	enum { N = 100000, SAMPLE = 2000 };
	struct prog g;
	struct bulk b;
	struct vault *v;
	uint64_t done = 0;
	uint32_t newv;

	opts.map_size = 2ull << 30;
	bulk_init(&b, N, 0);
	v = vcreate();
	bulk_put(v, &b, 0, N);
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	prog_init(&g);
	ck_assert_int_eq(vault_rewrap(v, 0, 5000, prog_record, &g, &done),
	    PV_OK);
	ck_assert_uint_eq(done, N);
	ck_assert_int_ge(g.calls, N / 5000);
	ck_assert(g.increasing);
	ck_assert_uint_eq(g.last, N);
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 0, N);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, N, N);
	ck_assert_uint_eq(record_count(v), N);
	for (size_t k = 0; k < SAMPLE; k++)
		bulk_expect(v, &b, k * (N - 1) / (SAMPLE - 1));
	vault_close(v);
	v = vopen();
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 0, N);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, N, N);
	ck_assert_uint_eq(record_count(v), N);
	vault_close(v);
	bulk_free(&b);
}
END_TEST

START_TEST(rewrap_killed_and_rerun)
{
	enum { N = 1000 };
	struct bulk b;
	struct vault *v;
	uint64_t done;
	uint32_t newv;

	bulk_init(&b, N, 0);
	v = vcreate();
	bulk_put(v, &b, 0, N);
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	vault_close(v);
	run_killed(JOB_REWRAP, 3);
	v = vopen();
	ck_assert_uint_eq(record_count(v), N);
	ck_assert_uint_eq(live_sum(v), N);
	/* Three transactions of 100 were committed before the kill. */
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, N - 300, N);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, 300, 300);
	for (size_t i = 0; i < N; i++)
		bulk_expect(v, &b, i);
	ck_assert_int_eq(vault_rewrap(v, 0, 100, NULL, NULL, &done), PV_OK);
	ck_assert_uint_eq(done, N - 300);
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 0, N);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, N, N);
	ck_assert_uint_eq(record_count(v), N);
	for (size_t i = 0; i < N; i++)
		bulk_expect(v, &b, i);
	vault_close(v);
	bulk_free(&b);
}
END_TEST

/* Retiring and destroying. */

START_TEST(retire_kek)
{
	struct vault_field a[] = { F("name", "Old Key Person") };
	struct vault_field c[] = { F("name", "New Key Person") };
	char ta[2][1][ID_LEN], tc[1][ID_LEN];
	struct vault *v, *w;
	uint64_t wrapped = 0;
	uint32_t newv;

	v = vcreate();
	ck_assert_int_eq(put1(v, a, 1, NULL, ta[0]), PV_OK);
	ck_assert_int_eq(put1(v, a, 1, NULL, ta[1]), PV_OK);
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	ck_assert_int_eq(put1(v, c, 1, NULL, tc), PV_OK);
	w = vopen();
	/* Still wrapping records: refused without force, and says why. */
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1, VAULT_KEY_RETIRED, 0,
	    &wrapped), PV_EBUSY);
	ck_assert_uint_eq(wrapped, 2);
	expect_state(v, VAULT_KEK, 1, VAULT_KEY_DECRYPT_ONLY);
	tu_expect_value(v, ta[0][0], "name", "Old Key Person", 14);
	/* The active version cannot be retired, forced or not. */
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 2, VAULT_KEY_RETIRED, 1,
	    &wrapped), PV_EKEYSTATE);
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 2,
	    VAULT_KEY_DECRYPT_ONLY, 1, &wrapped), PV_EKEYSTATE);
	expect_state(v, VAULT_KEK, 2, VAULT_KEY_ACTIVE);
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 3, VAULT_KEY_RETIRED, 0,
	    &wrapped), PV_EKEYSTATE);		/* wraps nothing, but active */
	expect_state(v, VAULT_KEK, 3, VAULT_KEY_ACTIVE);
	/* Nothing but a rotation makes a version active. */
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1, VAULT_KEY_ACTIVE, 1,
	    &wrapped), PV_EKEYSTATE);
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 99, VAULT_KEY_RETIRED, 1,
	    &wrapped), PV_ENOTFOUND);
	/* IDS and SIGN keys are never retired. */
	ck_assert_int_eq(vault_key_state(v, VAULT_IDS, 1, VAULT_KEY_RETIRED, 1,
	    &wrapped), PV_EKEYSTATE);
	ck_assert_int_eq(vault_key_state(v, VAULT_SIGN, 1, VAULT_KEY_RETIRED, 1,
	    &wrapped), PV_EKEYSTATE);
	/* Forced: its records may no longer be read, in every handle. */
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1, VAULT_KEY_RETIRED, 1,
	    &wrapped), PV_OK);
	ck_assert_uint_eq(wrapped, 2);
	expect_state(v, VAULT_KEK, 1, VAULT_KEY_RETIRED);
	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(tu_get_status(v, ta[i][0]), PV_EKEYSTATE);
		ck_assert_int_eq(tu_get_status(w, ta[i][0]), PV_EKEYSTATE);
	}
	tu_expect_value(w, tc[0], "name", "New Key Person", 14);
	/* Retiring twice is harmless. */
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1, VAULT_KEY_RETIRED, 1,
	    &wrapped), PV_OK);
	vault_close(w);
	vault_close(v);
	v = vopen();
	expect_state(v, VAULT_KEK, 1, VAULT_KEY_RETIRED);
	ck_assert_int_eq(tu_get_status(v, ta[1][0]), PV_EKEYSTATE);
	/* Back to decrypt-only: readable again; the counters were kept. */
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1,
	    VAULT_KEY_DECRYPT_ONLY, 0, &wrapped), PV_OK);
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 2, 2);
	for (size_t i = 0; i < 2; i++)
		tu_expect_value(v, ta[i][0], "name", "Old Key Person", 14);
	tu_expect_value(v, tc[0], "name", "New Key Person", 14);
	vault_close(v);
}
END_TEST

static int
all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

START_TEST(destroy_kek)
{
	struct vault_field a[] = { F("name", "Destroyed Key Person") };
	struct vault_field b[] = { F("name", "Second Key Person") };
	struct vault_field c[] = { F("name", "Third Key Person") };
	char ida[ID_LEN], ta[1][ID_LEN], tb[1][ID_LEN], tc[1][ID_LEN];
	uint8_t ring[RING_VAL_LEN];
	struct vault_receipt r;
	struct pv_store *s;
	struct vault *v;
	uint64_t wrapped = 0;
	uint32_t newv;
	pv_status st;

	v = vcreate();
	ck_assert_int_eq(put1(v, a, 1, ida, ta), PV_OK);
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	ck_assert_int_eq(put1(v, b, 1, NULL, tb), PV_OK);
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	ck_assert_int_eq(put1(v, c, 1, NULL, tc), PV_OK);
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1,
	    VAULT_KEY_DESTROYED, 0, &wrapped), PV_EBUSY);
	ck_assert_uint_eq(wrapped, 1);
	tu_expect_value(v, ta[0], "name", "Destroyed Key Person", 20);
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1,
	    VAULT_KEY_DESTROYED, 1, &wrapped), PV_OK);
	expect_state(v, VAULT_KEK, 1, VAULT_KEY_DESTROYED);
	ck_assert_int_eq(tu_get_status(v, ta[0]), PV_EKEYSTATE);
	tu_expect_value(v, tb[0], "name", "Second Key Person", 17);
	tu_expect_value(v, tc[0], "name", "Third Key Person", 16);
	/* On disk the key material is zeros; the others' is not. */
	s = store_open();
	ring_read(s, VAULT_KEK, 1, ring);
	ck_assert_uint_eq(ring[0], VAULT_KEY_DESTROYED);
	ck_assert(all_zero(ring + RING_SEALED, RING_VAL_LEN - RING_SEALED));
	ring_read(s, VAULT_KEK, 2, ring);
	ck_assert(!all_zero(ring + RING_SEALED, RING_VAL_LEN - RING_SEALED));
	/* Twice is harmless; there is no way back. */
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1,
	    VAULT_KEY_DESTROYED, 1, &wrapped), PV_OK);
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1,
	    VAULT_KEY_DECRYPT_ONLY, 1, &wrapped), PV_EKEYSTATE);
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1, VAULT_KEY_RETIRED, 1,
	    &wrapped), PV_EKEYSTATE);
	ring_read(s, VAULT_KEK, 1, ring);
	ck_assert_uint_eq(ring[0], VAULT_KEY_DESTROYED);
	ck_assert(all_zero(ring + RING_SEALED, RING_VAL_LEN - RING_SEALED));
	pv_store_close(s);
	expect_state(v, VAULT_KEK, 2, VAULT_KEY_DECRYPT_ONLY);
	expect_state(v, VAULT_KEK, 3, VAULT_KEY_ACTIVE);
	vault_close(v);
	/* Forever: after a reopen too. */
	v = vopen();
	expect_state(v, VAULT_KEK, 1, VAULT_KEY_DESTROYED);
	ck_assert_int_eq(tu_get_status(v, ta[0]), PV_EKEYSTATE);
	tu_expect_value(v, tb[0], "name", "Second Key Person", 17);
	tu_expect_value(v, tc[0], "name", "Third Key Person", 16);
	/* Its record can still be shredded; then it wraps nothing. */
	ck_assert_int_eq(shred1(v, ida, "key destroyed", &r, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	ck_assert_uint_eq(r.kek_version, 1);
	ck_assert_int_eq(tu_get_status(v, ta[0]), PV_ESHREDDED);
	expect_kek(v, 1, VAULT_KEY_DESTROYED, 0, 1);
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1,
	    VAULT_KEY_DESTROYED, 0, &wrapped), PV_OK);
	ck_assert_uint_eq(wrapped, 0);
	ck_assert_uint_eq(live_sum(v), record_count(v));
	vault_close(v);
}
END_TEST

/* Root rotation. */

static pv_status
passphrase_cb(void *arg, char *buf, size_t cap, size_t *len)
{
	size_t n = strlen(arg);

	if (n > cap)
		return PV_EPASSPHRASE;
	memcpy(buf, arg, n);
	*len = n;
	return PV_OK;
}

START_TEST(rotate_root_key_file)
{
	struct vault_field a[] = { F("name", "Root Rotation"),
	    F("email", "root.rotation@example.org") };
	char toks[4][2][ID_LEN], newkey[PATH_MAX + 32];
	struct vault_match m;
	struct vault_unlock nu;
	struct vault *v = NULL;
	uint64_t wrapped;
	uint32_t newv;

	(void)snprintf(newkey, sizeof(newkey), "%s/new.key", dir);
	ck_assert_int_eq(vault_key_file_create(newkey), PV_OK);
	v = vcreate();
	ck_assert_int_eq(put1(v, a, 2, NULL, toks[0]), PV_OK);
	ck_assert_int_eq(put1(v, a, 2, NULL, toks[1]), PV_OK);
	/* Some history: two KEK versions, the older one retired. */
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	ck_assert_int_eq(put1(v, a, 2, NULL, toks[2]), PV_OK);
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1, VAULT_KEY_RETIRED, 1,
	    &wrapped), PV_OK);
	memset(&nu, 0, sizeof(nu));
	nu.key_file = newkey;
	ck_assert_int_eq(vault_rotate_root(v, &nu), PV_OK);
	/* The handle goes on with the new root. */
	tu_expect_value(v, toks[2][0], "name", "Root Rotation", 13);
	ck_assert_int_eq(put1(v, a, 2, NULL, toks[3]), PV_OK);
	vault_close(v);
	v = NULL;
	ck_assert_int_eq(vault_open(&opts, &v), PV_EBADKEY);
	ck_assert_ptr_null(v);
	opts.unlock.key_file = newkey;
	v = vopen();
	ck_assert_uint_eq(record_count(v), 4);
	expect_state(v, VAULT_KEK, 1, VAULT_KEY_RETIRED);
	expect_state(v, VAULT_KEK, 2, VAULT_KEY_ACTIVE);
	ck_assert_int_eq(tu_get_status(v, toks[0][0]), PV_EKEYSTATE);
	/* The retired key was re-sealed too: it can come back. */
	ck_assert_int_eq(vault_key_state(v, VAULT_KEK, 1,
	    VAULT_KEY_DECRYPT_ONLY, 0, &wrapped), PV_OK);
	for (size_t i = 0; i < 4; i++) {
		tu_expect_value(v, toks[i][0], "name", "Root Rotation", 13);
		tu_expect_value(v, toks[i][1], "email",
		    "root.rotation@example.org", 25);
	}
	ck_assert_uint_eq(lookup(v, "email", "root.rotation@example.org", &m),
	    4);
	/* The same root again changes nothing. */
	ck_assert_int_eq(vault_rotate_root(v, &nu), PV_EEXIST);
	tu_expect_value(v, toks[3][0], "name", "Root Rotation", 13);
	vault_close(v);
	v = vopen();
	ck_assert_uint_eq(record_count(v), 4);
	vault_close(v);
}
END_TEST

START_TEST(rotate_root_passphrase)
{
	struct vault_field a[] = { F("name", "Passphrase Person") };
	char toks[3][1][ID_LEN], key2[PATH_MAX + 32];
	struct vault_unlock nu;
	struct vault *v = NULL;

	v = vcreate();
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(put1(v, a, 1, NULL, toks[i]), PV_OK);
	memset(&nu, 0, sizeof(nu));
	nu.use_passphrase = 1;
	nu.passphrase = passphrase_cb;
	nu.arg = (void *)"correct horse battery staple";
	nu.kdf_time = 1;
	nu.kdf_memory_kib = VAULT_KDF_MEMORY_MIN - 1;
	ck_assert_int_eq(vault_rotate_root(v, &nu), PV_EINVAL);
	nu.kdf_memory_kib = VAULT_KDF_MEMORY_MIN;
	ck_assert_int_eq(vault_rotate_root(v, &nu), PV_OK);
	vault_close(v);
	v = NULL;
	/* The key file no longer opens it; a wrong passphrase neither. */
	ck_assert_int_eq(vault_open(&opts, &v), PV_EPASSPHRASE);
	opts.unlock.passphrase = passphrase_cb;
	opts.unlock.arg = (void *)"wrong horse battery staple";
	ck_assert_int_eq(vault_open(&opts, &v), PV_EBADKEY);
	ck_assert_ptr_null(v);
	opts.unlock.arg = (void *)"correct horse battery staple";
	v = vopen();
	ck_assert_uint_eq(record_count(v), 3);
	for (size_t i = 0; i < 3; i++)
		tu_expect_value(v, toks[i][0], "name", "Passphrase Person", 17);
	/* And on to a key file again. */
	(void)snprintf(key2, sizeof(key2), "%s/key2", dir);
	ck_assert_int_eq(vault_key_file_create(key2), PV_OK);
	memset(&nu, 0, sizeof(nu));
	nu.key_file = key2;
	ck_assert_int_eq(vault_rotate_root(v, &nu), PV_OK);
	vault_close(v);
	memset(&opts.unlock, 0, sizeof(opts.unlock));
	opts.unlock.key_file = key2;
	v = vopen();
	ck_assert_uint_eq(record_count(v), 3);
	tu_expect_value(v, toks[2][0], "name", "Passphrase Person", 17);
	vault_close(v);
}
END_TEST

/* The blind index. */

START_TEST(rotate_index_rebuilds)
{
	enum { N = 40 };
	struct vault_field plain[] = { F("name", "Not Indexed") };
	char ptok[1][ID_LEN], id5[ID_LEN];
	uint8_t old[N][32], buf[1024];
	struct vault_receipt r;
	struct pv_store *s;
	struct prog g;
	struct bulk b;
	struct loc l;
	struct vault *v;
	uint64_t done;
	uint32_t newv;
	size_t len;
	pv_status st;

	bulk_init(&b, N, 1);
	v = vcreate();
	bulk_put(v, &b, 0, N);
	ck_assert_int_eq(put1(v, plain, 1, NULL, ptok), PV_OK);
	s = store_open();
	for (size_t i = 0; i < N; i++) {
		len = rec_read(s, i + 1, buf, sizeof(buf));
		locate(buf, len, 1, &l);
		memcpy(old[i], buf + l.digest, 32);
		ck_assert(index_has(s, old[i]));
	}
	ck_assert_uint_eq(index_entries(s), N);
	/* A bare rotation: entries stay under the old key, still found. */
	ck_assert_int_eq(vault_rotate(v, VAULT_INDEX, &newv), PV_OK);
	ck_assert_uint_eq(newv, 2);
	for (size_t i = 0; i < N; i++)
		bulk_expect_lookup(v, &b, i);
	prog_init(&g);
	ck_assert_int_eq(vault_rotate_index(v, 7, prog_record, &g, &done),
	    PV_OK);
	ck_assert_uint_eq(done, N);	/* the plain record has no entry */
	ck_assert(g.increasing);
	ck_assert_uint_eq(g.last, N);
	ck_assert_int_ge(g.calls, (N + 6) / 7);
	/* A new version; every older one is destroyed. */
	expect_state(v, VAULT_INDEX, 1, VAULT_KEY_DESTROYED);
	expect_state(v, VAULT_INDEX, 2, VAULT_KEY_DESTROYED);
	expect_state(v, VAULT_INDEX, 3, VAULT_KEY_ACTIVE);
	for (size_t i = 0; i < N; i++)
		bulk_expect_lookup(v, &b, i);
	/* Every entry moved to a new digest, the record's copy with it. */
	for (size_t i = 0; i < N; i++) {
		len = rec_read(s, i + 1, buf, sizeof(buf));
		locate(buf, len, 1, &l);
		ck_assert_msg(memcmp(buf + l.digest, old[i], 32) != 0,
		    "record %zu kept its digest", i);
		ck_assert(index_has(s, buf + l.digest));
		ck_assert(!index_has(s, old[i]));
	}
	ck_assert_uint_eq(index_entries(s), N);
	/* A shred afterwards finds the entry under its new digest. */
	memcpy(id5, b.ids[5], ID_LEN);
	ck_assert_int_eq(shred1(v, id5, "erasure", &r, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	ck_assert_uint_eq(index_entries(s), N - 1);
	{
		char val[BULK_VAL];

		(void)bulk_value(val, &b, 5, 1);
		ck_assert_uint_eq(lookup(v, "email", val, NULL), 0);
	}
	pv_store_close(s);
	/* Refused: nothing rotated. */
	ck_assert_int_eq(vault_rotate_index(v, 100001, NULL, NULL, &done),
	    PV_EINVAL);
	ck_assert_uint_eq(key_count(v, VAULT_INDEX), 3);
	tu_expect_value(v, ptok[0], "name", "Not Indexed", 11);
	vault_close(v);
	bulk_free(&b);
}
END_TEST

START_TEST(rotate_index_killed_and_rerun)
{
	enum { N = 1000 };
	struct vault_field mid[] = { F("name", "Mid Rebuild"),
	    F("email", "mid.rebuild@example.org") };
	char mtok[2][ID_LEN], mid_id[ID_LEN];
	struct vault_match m;
	struct pv_store *s;
	struct bulk b;
	struct vault *v;
	uint64_t done;

	bulk_init(&b, N, 1);
	v = vcreate();
	bulk_put(v, &b, 0, N);
	vault_close(v);
	run_killed(JOB_INDEX, 3);
	v = vopen();
	/* Half-way: both keys usable, every look-up right. */
	expect_state(v, VAULT_INDEX, 1, VAULT_KEY_DECRYPT_ONLY);
	expect_state(v, VAULT_INDEX, 2, VAULT_KEY_ACTIVE);
	for (size_t i = 0; i < N; i++)
		bulk_expect_lookup(v, &b, i);
	/* A record written in the middle of the rebuild. */
	ck_assert_int_eq(put1(v, mid, 2, mid_id, mtok), PV_OK);
	ck_assert_uint_eq(lookup(v, "email", "mid.rebuild@example.org", &m),
	    1);
	ck_assert_str_eq(m.id, mid_id);
	/* The rerun resumes (700 left, and the new record) and finishes. */
	ck_assert_int_eq(vault_rotate_index(v, 100, NULL, NULL, &done),
	    PV_OK);
	ck_assert_uint_eq(done, N - 300 + 1);
	ck_assert_uint_eq(key_count(v, VAULT_INDEX), 2);
	expect_state(v, VAULT_INDEX, 1, VAULT_KEY_DESTROYED);
	expect_state(v, VAULT_INDEX, 2, VAULT_KEY_ACTIVE);
	for (size_t i = 0; i < N; i++) {
		bulk_expect_lookup(v, &b, i);
		bulk_expect(v, &b, i);
	}
	ck_assert_uint_eq(lookup(v, "email", "mid.rebuild@example.org", &m),
	    1);
	ck_assert_str_eq(m.id, mid_id);
	ck_assert_str_eq(m.token, mtok[1]);
	/* No entry was left behind under the old key. */
	s = store_open();
	ck_assert_uint_eq(index_entries(s), N + 1);
	pv_store_close(s);
	vault_close(v);
	bulk_free(&b);
}
END_TEST

/* Shred epochs. */

static void
epoch_expect_all(struct vault *v, const struct bulk *b, size_t n,
    const size_t *gone, size_t ngone)
{
	for (size_t i = 0; i < n; i++) {
		int shredded = 0;

		for (size_t j = 0; j < ngone; j++)
			shredded |= gone[j] == i;
		if (shredded) {
			bulk_expect_shredded(v, b, i);
			continue;
		}
		bulk_expect(v, b, i);
		bulk_expect_lookup(v, b, i);
	}
	ck_assert_uint_eq(live_sum(v), record_count(v));
	ck_assert_uint_eq(record_count(v), n - ngone);
}

START_TEST(shred_epoch_killed_and_rerun)
{
	enum { N = 1000 };
	static const size_t gone[] = { 0, 500 };
	struct vault_receipt r[2];
	const char *ids[2];
	size_t lens[2];
	pv_status st[2];
	struct bulk b;
	struct vault *v;

	bulk_init(&b, N, 1);
	v = vcreate();
	bulk_put(v, &b, 0, N);
	for (size_t j = 0; j < 2; j++) {
		ids[j] = b.ids[gone[j]];
		lens[j] = strlen(ids[j]);
	}
	ck_assert_int_eq(vault_shred(v, ids, lens, 2, "erasure", r, st),
	    PV_OK);
	vault_close(v);

	/* Killed while re-wrapping. */
	run_killed(JOB_EPOCH, 3);
	v = vopen();
	expect_state(v, VAULT_KEK, 1, VAULT_KEY_DECRYPT_ONLY);
	expect_state(v, VAULT_KEK, 2, VAULT_KEY_ACTIVE);
	expect_state(v, VAULT_INDEX, 1, VAULT_KEY_ACTIVE);
	epoch_expect_all(v, &b, N, gone, 2);
	vault_close(v);

	/* Resumed, and killed again while rebuilding the index. */
	run_killed(JOB_EPOCH, 10);
	v = vopen();
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 0, N);
	expect_state(v, VAULT_KEK, 2, VAULT_KEY_ACTIVE);
	expect_state(v, VAULT_INDEX, 1, VAULT_KEY_DECRYPT_ONLY);
	expect_state(v, VAULT_INDEX, 2, VAULT_KEY_ACTIVE);
	epoch_expect_all(v, &b, N, gone, 2);

	/* The rerun finishes the epoch it started: no further rotation. */
	ck_assert_int_eq(vault_shred_epoch(v, 100, NULL, NULL), PV_OK);
	ck_assert_uint_eq(key_count(v, VAULT_KEK), 2);
	ck_assert_uint_eq(key_count(v, VAULT_INDEX), 2);
	expect_kek(v, 1, VAULT_KEY_DESTROYED, 0, N);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, N - 2, N - 2);
	expect_state(v, VAULT_INDEX, 1, VAULT_KEY_DESTROYED);
	expect_state(v, VAULT_INDEX, 2, VAULT_KEY_ACTIVE);
	epoch_expect_all(v, &b, N, gone, 2);
	vault_close(v);
	v = vopen();
	epoch_expect_all(v, &b, N, gone, 2);
	vault_close(v);
	bulk_free(&b);
}
END_TEST

START_TEST(shred_epoch_leaves_no_old_key)
{
	enum { N = 50 };
	static const size_t gone[] = { 7 };
	uint8_t kek1[RING_VAL_LEN], idx1[RING_VAL_LEN], ids1[RING_VAL_LEN];
	uint8_t rec[1024];
	struct vault_receipt r;
	struct pv_store *s;
	struct prog g;
	struct bulk b;
	struct vault *v;
	uint64_t before, after;
	pv_status st;

	bulk_init(&b, N, 1);
	v = vcreate();
	bulk_put(v, &b, 0, N);
	s = store_open();
	(void)rec_read(s, gone[0] + 1, rec, sizeof(rec));
	ring_read(s, VAULT_KEK, 1, kek1);
	ring_read(s, VAULT_INDEX, 1, idx1);
	ring_read(s, VAULT_IDS, 1, ids1);
	pv_store_close(s);
	ck_assert_int_eq(shred1(v, b.ids[gone[0]], "erasure", &r, &st),
	    PV_OK);
	ck_assert_int_eq(st, PV_OK);
	prog_init(&g);
	ck_assert_int_eq(vault_shred_epoch(v, 8, prog_record, &g), PV_OK);
	ck_assert_int_gt(g.calls, 0);
	expect_kek(v, 1, VAULT_KEY_DESTROYED, 0, N);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, N - 1, N - 1);
	expect_state(v, VAULT_INDEX, 1, VAULT_KEY_DESTROYED);
	expect_state(v, VAULT_INDEX, 2, VAULT_KEY_ACTIVE);
	epoch_expect_all(v, &b, N, gone, 1);
	/* A second epoch: a third KEK, the second destroyed. */
	ck_assert_int_eq(vault_shred_epoch(v, 0, NULL, NULL), PV_OK);
	expect_kek(v, 2, VAULT_KEY_DESTROYED, 0, N - 1);
	expect_kek(v, 3, VAULT_KEY_ACTIVE, N - 1, N - 1);
	expect_state(v, VAULT_INDEX, 3, VAULT_KEY_ACTIVE);
	epoch_expect_all(v, &b, N, gone, 1);
	vault_close(v);
	ck_assert_int_eq(vault_compact(&opts, &before, &after), PV_OK);
	/* Neither the old keys nor the shredded DEK are in any file. */
	ck_assert(!tu_dir_contains(datadir, kek1 + RING_SEALED,
	    RING_VAL_LEN - RING_SEALED));
	ck_assert(!tu_dir_contains(datadir, idx1 + RING_SEALED,
	    RING_VAL_LEN - RING_SEALED));
	ck_assert(!tu_dir_contains(datadir, rec + REC_DEK, KMS_WRAPPED_LEN));
	/* Control: the IDS key, never rotated, is still there. */
	ck_assert(tu_dir_contains(datadir, ids1 + RING_SEALED,
	    RING_VAL_LEN - RING_SEALED));
	v = vopen();
	epoch_expect_all(v, &b, N, gone, 1);
	vault_close(v);
	bulk_free(&b);
}
END_TEST

/*
 * Another process rotates while a long job runs: a server whose writes
 * reach the KEK's cryptoperiod, or an operator's rotation.  The progress
 * callback stands in for it, through a second handle.
 */
static struct vault *rot_handle;
static enum vault_key_kind rot_kind;
static int rot_at, rot_calls;
static pv_status rot_rc;

static void
rotate_progress(void *arg, const struct vault_progress *p)
{
	uint32_t newv;

	(void)arg;
	(void)p;
	if (++rot_calls == rot_at)
		rot_rc = vault_rotate(rot_handle, rot_kind, &newv);
}

/* No destroyed KEK may still wrap a live record. */
static void
expect_no_lost_records(struct vault *v)
{
	struct vault_info info;

	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	for (size_t i = 0; i < info.nkeys; i++)
		ck_assert_msg(info.keys[i].kind != VAULT_KEK ||
		    info.keys[i].state != VAULT_KEY_DESTROYED ||
		    info.keys[i].wraps_live == 0, "kek %u was destroyed while "
		    "it wraps %llu records", info.keys[i].version,
		    (unsigned long long)info.keys[i].wraps_live);
	free(info.keys);
}

START_TEST(shred_epoch_with_concurrent_rotation)
{
	enum { N = 20 };
	struct bulk b;
	struct vault *v;
	pv_status rc;

	bulk_init(&b, N, 1);
	v = vcreate();
	bulk_put(v, &b, 0, N);
	rot_handle = vopen();
	rot_kind = VAULT_KEK;
	rot_calls = 0;
	rot_rc = PV__COUNT;
	/*
	 * Batches of 5: four re-wrap transactions, then the index rebuild;
	 * the KEK rotates at the rebuild's first progress call, when every
	 * record has just been re-wrapped to the epoch's KEK (version 2).
	 */
	rot_at = 5;
	rc = vault_shred_epoch(v, 5, rotate_progress, NULL);
	ck_assert_int_eq(rot_rc, PV_OK);
	/*
	 * Finishing the job under the new KEK or refusing to destroy a key
	 * in use are both fine answers; losing records is not.
	 */
	if (rc != PV_OK)
		fprintf(stderr, "shred epoch: %s\n", pv_strerror(rc));
	expect_no_lost_records(v);
	for (size_t i = 0; i < N; i++)
		bulk_expect(v, &b, i);
	ck_assert_uint_eq(live_sum(v), N);
	vault_close(rot_handle);
	vault_close(v);
	bulk_free(&b);
}
END_TEST

START_TEST(rotate_index_with_concurrent_rotation)
{
	enum { N = 20 };
	struct bulk b;
	struct vault *v;
	uint64_t done;
	pv_status rc;

	bulk_init(&b, N, 1);
	v = vcreate();
	bulk_put(v, &b, 0, N);
	rot_handle = vopen();
	rot_kind = VAULT_INDEX;
	rot_calls = 0;
	rot_rc = PV__COUNT;
	rot_at = 2;		/* after 10 of 20 records moved to version 2 */
	rc = vault_rotate_index(v, 5, rotate_progress, NULL, &done);
	ck_assert_int_eq(rot_rc, PV_OK);
	if (rc != PV_OK)
		fprintf(stderr, "index rebuild: %s\n", pv_strerror(rc));
	/* Whatever it answered, every record is still found by its email. */
	for (size_t i = 0; i < N; i++)
		bulk_expect_lookup(v, &b, i);
	vault_close(rot_handle);
	vault_close(v);
	bulk_free(&b);
}
END_TEST

/* Shredding. */

START_TEST(shred_record)
{
	static const char *values[] = {
		"Alice Shredworthy", "alice.shred@example.org",
		"+44 20 7946 0001", "+442079460001",
	};
	struct vault_field a[] = { F("name", "Alice Shredworthy"),
	    F("email", "Alice.Shred@Example.org"),
	    F("phone", "+44 20 7946 0001") };
	struct vault_field b[] = { F("name", "Bob Keeper"),
	    F("email", "bob.keep@example.org") };
	char ida[ID_LEN], idb[ID_LEN], ta[3][ID_LEN], tb[2][ID_LEN];
	struct vault_receipt r1, r2;
	struct vault_info info;
	uint8_t pub[PV_ED25519_LEN], buf[REC_BUF];
	struct pv_store *s;
	struct vault *v;
	size_t len;
	pv_status st;
	const uint64_t t1 = 1700000000;

	v = vcreate();
	ck_assert_int_eq(put1(v, a, 3, ida, ta), PV_OK);
	ck_assert_int_eq(put1(v, b, 2, idb, tb), PV_OK);
	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	free(info.keys);
	ck_assert_uint_eq(info.records, 2);
	expect_kek(v, 1, VAULT_KEY_ACTIVE, 2, 2);
	signing_pub(v, 0, pub);
	s = store_open();
	ck_assert_uint_eq(index_entries(s), 3);

	pv_clock_set(t1);
	memset(&r1, 0, sizeof(r1));
	st = PV__COUNT;
	ck_assert_int_eq(shred1(v, ida, "GDPR art. 17 request #42", &r1, &st),
	    PV_OK);
	ck_assert_int_eq(st, PV_OK);
	ck_assert_str_eq(r1.vault_id, info.vault_id);
	ck_assert_str_eq(r1.id, ida);
	ck_assert_uint_eq(r1.shredded_at, t1);
	ck_assert_uint_eq(r1.kek_version, 1);
	ck_assert_str_eq(r1.reason, "GDPR art. 17 request #42");
	ck_assert_int_eq(vault_receipt_verify(&r1, pub), PV_OK);

	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(tu_get_status(v, ta[i]), PV_ESHREDDED);
	tu_expect_value(v, tb[0], "name", "Bob Keeper", 10);
	ck_assert_uint_eq(lookup(v, "email", "alice.shred@example.org", NULL),
	    0);
	ck_assert_uint_eq(lookup(v, "phone", "+44 20 7946 0001", NULL), 0);
	ck_assert_uint_eq(lookup(v, "email", "bob.keep@example.org", NULL), 1);
	ck_assert_uint_eq(record_count(v), 1);
	expect_kek(v, 1, VAULT_KEY_ACTIVE, 1, 2);
	/*
	 * Its index entries are gone, not merely skipped; its tokens (seq 1
	 * to 3) still point at the record but name no field any more.
	 */
	ck_assert_uint_eq(index_entries(s), 1);
	for (uint64_t seq = 1; seq <= 4; seq++) {
		uint8_t key[8];

		pv_put_u64(key, seq);
		len = raw_read(s, PV_T_TOKENS, key, sizeof(key), buf,
		    sizeof(buf));
		ck_assert_uint_eq(pv_get_u64(buf), seq <= 3 ? 1 : 2);
		ck_assert_uint_eq(len, seq <= 3 ? TOK_NAME : TOK_NAME + 4);
		ck_assert_uint_eq(buf[TOK_NAMELEN], seq <= 3 ? 0 : 4);
	}

	/* Twice: PV_OK and the first receipt, whatever the new reason. */
	pv_clock_set(t1 + 1000);
	memset(&r2, 0, sizeof(r2));
	st = PV__COUNT;
	ck_assert_int_eq(shred1(v, ida, "asked again", &r2, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	ck_assert_str_eq(r2.vault_id, r1.vault_id);
	ck_assert_str_eq(r2.id, r1.id);
	ck_assert_uint_eq(r2.shredded_at, t1);
	ck_assert_uint_eq(r2.kek_version, r1.kek_version);
	ck_assert_uint_eq(r2.audit_seq, r1.audit_seq);
	ck_assert_str_eq(r2.reason, r1.reason);
	ck_assert_mem_eq(r2.sig, r1.sig, sizeof(r1.sig));
	ck_assert_uint_eq(record_count(v), 1);
	expect_kek(v, 1, VAULT_KEY_ACTIVE, 1, 2);

	/*
	 * The tombstone: id check, time, reason, KEK, its row MAC (32); no
	 * personal data.
	 */
	len = rec_read(s, 1, buf, sizeof(buf));
	ck_assert_uint_eq(buf[REC_TYPE], REC_TOMBSTONE);
	/* The reason sealed: nonce (12) and tag (16) around it. */
	ck_assert_uint_eq(len, TS_REASON + strlen(r1.reason) + 28 + 32);
	ck_assert(memmem(buf, len, r1.reason, strlen(r1.reason)) == NULL);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		ck_assert_msg(memmem(buf, len, values[i], strlen(values[i])) ==
		    NULL, "tombstone holds value %zu", i);
	pv_store_close(s);
	vault_close(v);

	/* For good. */
	v = vopen();
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(tu_get_status(v, ta[i]), PV_ESHREDDED);
	ck_assert_int_eq(shred1(v, ida, "third time", &r2, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	ck_assert_uint_eq(r2.shredded_at, t1);
	ck_assert_mem_eq(r2.sig, r1.sig, sizeof(r1.sig));
	ck_assert_uint_eq(record_count(v), 1);
	vault_close(v);
}
END_TEST

START_TEST(shred_refusals)
{
	struct vault_field f[] = { F("name", "Refusal Person"),
	    F("email", "refusal@example.org") };
	char id[4][ID_LEN], toks[4][2][ID_LEN], forged[ID_LEN];
	char other[ID_LEN], otok[1][2][ID_LEN], long_reason[202];
	char dir2[PATH_MAX + 32], key2[PATH_MAX + 32];
	static const char *const bad_reasons[] = {
		"", "line\nbreak", "tab\there", "bell\a", "del\x7f",
		"bad \xc0\xaf utf8", "cut \xe2\x82",
	};
	struct vault_receipt r[6];
	uint8_t buf[REC_BUF], orig[REC_BUF];
	struct vault_opts o2;
	struct pv_store *s;
	struct vault *v, *v2;
	const char *ids[VAULT_BATCH_MAX + 1];
	size_t lens[VAULT_BATCH_MAX + 1], len;
	pv_status st[VAULT_BATCH_MAX + 1];
	const struct vault_event hold_ev = { .actor = "test",
	    .action = "record.hold", .ok = 1, .purpose = -1 };

	v = vcreate();
	for (size_t i = 0; i < 4; i++)
		ck_assert_int_eq(put1(v, f, 2, id[i], toks[i]), PV_OK);

	/* Bad reasons: PV_EVALUE, nothing changed. */
	memset(long_reason, 'x', 201);
	long_reason[201] = '\0';
	for (size_t i = 0; i <= sizeof(bad_reasons) / sizeof(bad_reasons[0]);
	    i++) {
		const char *reason = i < sizeof(bad_reasons) /
		    sizeof(bad_reasons[0]) ? bad_reasons[i] : long_reason;

		ck_assert_msg(shred1(v, id[0], reason, r, st) == PV_EVALUE,
		    "reason %zu accepted", i);
	}
	ck_assert_int_eq(shred1(v, id[0], NULL, r, st), PV_EVALUE);
	ck_assert_uint_eq(record_count(v), 4);
	expect_kek(v, 1, VAULT_KEY_ACTIVE, 4, 4);
	tu_expect_value(v, toks[0][0], "name", "Refusal Person", 14);
	ck_assert_uint_eq(lookup(v, "email", "refusal@example.org", NULL), 4);

	/* Malformed ids, unknown ids, another vault's id. */
	memcpy(forged, id[0], ID_LEN);
	forged[10] = forged[10] == 'A' ? 'B' : 'A';
	(void)snprintf(dir2, sizeof(dir2), "%s/data2", dir);
	(void)snprintf(key2, sizeof(key2), "%s/key2", dir);
	ck_assert_int_eq(vault_key_file_create(key2), PV_OK);
	o2 = opts;
	o2.data_dir = dir2;
	o2.unlock.key_file = key2;
	ck_assert_int_eq(vault_create(&o2, &v2), PV_OK);
	ck_assert_int_eq(put1(v2, f, 2, other, otok[0]), PV_OK);
	vault_close(v2);
	{
		const char *mixed[] = {
			id[0], "rec_", toks[1][0], forged, id[1], other,
			"rec_AAAAAAAAAAAAAAAAAAAAA!", id[0],
		};
		const pv_status want[] = {
			PV_OK, PV_ETOKEN, PV_ETOKEN, PV_ENOTFOUND, PV_OK,
			PV_ENOTFOUND, PV_ETOKEN, PV_OK,
		};
		struct vault_receipt mr[8];
		size_t ml[8];

		for (size_t i = 0; i < 8; i++) {
			ml[i] = strlen(mixed[i]);
			st[i] = PV__COUNT;
		}
		ck_assert_int_eq(vault_shred(v, mixed, ml, 8, "mixed batch",
		    mr, st), PV_OK);
		for (size_t i = 0; i < 8; i++)
			ck_assert_msg(st[i] == want[i], "id %zu: %s", i,
			    pv_strerror(st[i]));
		ck_assert_str_eq(mr[0].id, id[0]);
		ck_assert_str_eq(mr[4].id, id[1]);
		/* The same id twice in a batch: one shred, one receipt. */
		ck_assert_str_eq(mr[7].id, id[0]);
		ck_assert_uint_eq(mr[7].shredded_at, mr[0].shredded_at);
		ck_assert_mem_eq(mr[7].sig, mr[0].sig, sizeof(mr[0].sig));
	}
	ck_assert_uint_eq(record_count(v), 2);
	expect_kek(v, 1, VAULT_KEY_ACTIVE, 2, 4);
	ck_assert_int_eq(tu_get_status(v, toks[0][1]), PV_ESHREDDED);
	ck_assert_int_eq(tu_get_status(v, toks[1][1]), PV_ESHREDDED);
	tu_expect_value(v, toks[2][1], "email", "refusal@example.org", 19);
	ck_assert_uint_eq(lookup(v, "email", "refusal@example.org", NULL), 2);

	/* Too many ids at once; none at all. */
	for (size_t i = 0; i <= VAULT_BATCH_MAX; i++) {
		ids[i] = id[2];
		lens[i] = strlen(id[2]);
	}
	ck_assert_int_eq(vault_shred(v, ids, lens, VAULT_BATCH_MAX + 1,
	    "too many", r, st), PV_ETOOBIG);
	ck_assert_int_eq(vault_shred(v, ids, lens, 0, "none", r, st), PV_OK);
	ck_assert_uint_eq(record_count(v), 2);
	tu_expect_value(v, toks[2][0], "name", "Refusal Person", 14);

	/* A record under legal hold is refused, PV_EHOLD, and kept. */
	ck_assert_int_eq(vault_record_hold(v, &hold_ev, id[2],
	    strlen(id[2]), 1), PV_OK);
	s = store_open();
	len = rec_read(s, 3, orig, sizeof(orig));
	ck_assert_uint_eq(orig[REC_FLAGS] & FLAG_HOLD, FLAG_HOLD);
	st[0] = PV__COUNT;
	ck_assert_int_eq(shred1(v, id[2], "held", r, st), PV_OK);
	ck_assert_int_eq(st[0], PV_EHOLD);
	ck_assert_uint_eq(record_count(v), 2);
	ck_assert_uint_eq(rec_read(s, 3, buf, sizeof(buf)), len);
	ck_assert_mem_eq(buf, orig, len);
	pv_store_close(s);
	tu_expect_value(v, toks[2][0], "name", "Refusal Person", 14);
	ck_assert_int_eq(vault_record_hold(v, &hold_ev, id[2],
	    strlen(id[2]), 0), PV_OK);
	ck_assert_uint_eq(live_sum(v), record_count(v));

	/* The longest reason there may be. */
	long_reason[200] = '\0';
	ck_assert_int_eq(shred1(v, id[2], long_reason, r, st), PV_OK);
	ck_assert_int_eq(st[0], PV_OK);
	ck_assert_str_eq(r[0].reason, long_reason);
	{
		uint8_t pub[PV_ED25519_LEN];

		signing_pub(v, 0, pub);
		ck_assert_int_eq(vault_receipt_verify(&r[0], pub), PV_OK);
	}
	ck_assert_uint_eq(record_count(v), 1);
	ck_assert_uint_eq(live_sum(v), 1);
	vault_close(v);
}
END_TEST

/*
 * With the audit log on (an actor set, as the CLI does), shredding twice
 * must still answer the first receipt: the same audit_seq and signature.
 */
START_TEST(shred_twice_with_audit_same_receipt)
{
	struct vault_field f[] = { F("name", "Audited Person") };
	char id[ID_LEN], toks[1][ID_LEN];
	struct vault_receipt r1, r2;
	uint8_t pub[PV_ED25519_LEN];
	struct vault *v;
	pv_status st;

	v = vcreate();
	vault_set_actor(v, "cli");
	ck_assert_int_eq(put1(v, f, 1, id, toks), PV_OK);
	pv_clock_set(1760000000);
	ck_assert_int_eq(shred1(v, id, "first request", &r1, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	ck_assert_uint_ne(r1.audit_seq, 0);
	pv_clock_set(1760000600);
	ck_assert_int_eq(shred1(v, id, "second request", &r2, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	signing_pub(v, 0, pub);
	ck_assert_int_eq(vault_receipt_verify(&r2, pub), PV_OK);
	ck_assert_uint_eq(r2.shredded_at, r1.shredded_at);
	ck_assert_str_eq(r2.reason, r1.reason);
	ck_assert_uint_eq(r2.audit_seq, r1.audit_seq);
	ck_assert_mem_eq(r2.sig, r1.sig, sizeof(r1.sig));
	ck_assert_uint_eq(record_count(v), 0);
	vault_close(v);
}
END_TEST

/*
 * "Without control characters": C1 controls (U+0080..U+009F) are control
 * characters as much as C0 ones; CSI (U+009B) is read as ESC [ by some
 * terminals that display a receipt.
 */
START_TEST(shred_reason_c1_control)
{
	struct vault_field f[] = { F("name", "Terminal Person") };
	char id[ID_LEN], toks[1][ID_LEN];
	struct vault_receipt r;
	struct vault *v;
	pv_status st;

	ck_assert(!vault_reason_valid("csi \xc2\x9b" "2J", 8));
	ck_assert(!vault_reason_valid("nel \xc2\x85", 6));
	v = vcreate();
	ck_assert_int_eq(put1(v, f, 1, id, toks), PV_OK);
	ck_assert_int_eq(shred1(v, id, "csi \xc2\x9b" "2J", &r, &st),
	    PV_EVALUE);
	tu_expect_value(v, toks[0], "name", "Terminal Person", 15);
	vault_close(v);
}
END_TEST

START_TEST(receipt_tamper)
{
	struct vault_field f[] = { F("name", "Receipt Person") };
	char id[ID_LEN], toks[1][ID_LEN], dir2[PATH_MAX + 32];
	char key2[PATH_MAX + 32], msg[VAULT_RECEIPT_MSG_MAX], want[128];
	uint8_t pub[PV_ED25519_LEN], pub2[PV_ED25519_LEN];
	struct vault_receipt r, x;
	struct vault_opts o2;
	struct vault *v, *v2;
	pv_status st;

	v = vcreate();
	ck_assert_int_eq(put1(v, f, 1, id, toks), PV_OK);
	pv_clock_set(1750000000);
	ck_assert_int_eq(shred1(v, id, "erasure request", &r, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	signing_pub(v, 0, pub);
	ck_assert_int_eq(vault_receipt_verify(&r, pub), PV_OK);
	/* The signed message names every field. */
	vault_receipt_message(msg, &r);
	(void)snprintf(want, sizeof(want), "record=%s\n", id);
	ck_assert_ptr_nonnull(strstr(msg, want));
	ck_assert_ptr_nonnull(strstr(msg, "shredded_at=1750000000\n"));
	ck_assert_ptr_nonnull(strstr(msg, "kek_version=1\n"));
	ck_assert_ptr_nonnull(strstr(msg, "reason=erasure request\n"));

	x = r;
	x.reason[0] = 'E';
	ck_assert_int_eq(vault_receipt_verify(&x, pub), PV_EINTEGRITY);
	x = r;
	x.reason[strlen(x.reason) - 1] = '\0';
	ck_assert_int_eq(vault_receipt_verify(&x, pub), PV_EINTEGRITY);
	x = r;
	x.id[10] = x.id[10] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(vault_receipt_verify(&x, pub), PV_EINTEGRITY);
	x = r;
	x.shredded_at++;
	ck_assert_int_eq(vault_receipt_verify(&x, pub), PV_EINTEGRITY);
	x = r;
	x.kek_version++;
	ck_assert_int_eq(vault_receipt_verify(&x, pub), PV_EINTEGRITY);
	x = r;
	x.audit_seq++;
	ck_assert_int_eq(vault_receipt_verify(&x, pub), PV_EINTEGRITY);
	x = r;
	x.vault_id[0] = x.vault_id[0] == '0' ? '1' : '0';
	ck_assert_int_eq(vault_receipt_verify(&x, pub), PV_EINTEGRITY);
	for (size_t bit = 0; bit < 8 * sizeof(r.sig); bit++) {
		x = r;
		x.sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_msg(vault_receipt_verify(&x, pub) == PV_EINTEGRITY,
		    "signature bit %zu", bit);
	}
	/* Another vault's key does not vouch for it. */
	(void)snprintf(dir2, sizeof(dir2), "%s/data2", dir);
	(void)snprintf(key2, sizeof(key2), "%s/key2", dir);
	ck_assert_int_eq(vault_key_file_create(key2), PV_OK);
	o2 = opts;
	o2.data_dir = dir2;
	o2.unlock.key_file = key2;
	ck_assert_int_eq(vault_create(&o2, &v2), PV_OK);
	signing_pub(v2, 0, pub2);
	vault_close(v2);
	ck_assert(memcmp(pub, pub2, sizeof(pub)) != 0);
	ck_assert_int_eq(vault_receipt_verify(&r, pub2), PV_EINTEGRITY);
	/* The public key is the vault's for good: reopened, it still holds. */
	vault_close(v);
	v = vopen();
	signing_pub(v, 0, pub2);
	ck_assert_mem_eq(pub, pub2, sizeof(pub));
	ck_assert_int_eq(vault_receipt_verify(&r, pub2), PV_OK);
	vault_close(v);
}
END_TEST

/*
 * Rotating the signing key: the new version signs, the older one's
 * private key is erased on disk and its public key kept (under the ring
 * MAC, across reopening and a root rotation); no state move is allowed on
 * a signing key; receipts of each version verify with their key only.
 */
START_TEST(signing_key_rotation)
{
	struct vault_field f[] = { F("name", "Signed Person") };
	char id[2][ID_LEN], toks[1][ID_LEN], newkey[PATH_MAX + 32];
	uint8_t pub1[PV_ED25519_LEN], pub2[PV_ED25519_LEN], x[PV_ED25519_LEN];
	uint8_t val[RING_VAL_LEN], zero[12];
	struct vault_receipt r1, r2, r3;
	struct vault_signing_key *k = NULL;
	struct vault_unlock nu;
	struct pv_store *s;
	struct pv_txn *t;
	struct vault *v;
	uint64_t wrapped;
	uint32_t newv;
	size_t n;
	pv_status st;

	v = vcreate();
	ck_assert_int_eq(put1(v, f, 1, id[0], toks), PV_OK);
	ck_assert_int_eq(put1(v, f, 1, id[1], toks), PV_OK);
	signing_pub(v, 1, pub1);
	ck_assert_int_eq(shred1(v, id[0], "first", &r1, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	ck_assert_uint_eq(r1.sign_version, 1);
	ck_assert_int_eq(vault_rotate(v, VAULT_SIGN, &newv), PV_OK);
	ck_assert_uint_eq(newv, 2);
	ck_assert_int_eq(vault_signing_keys(v, &k, &n), PV_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert(k[0].version == 1 && k[0].state == VAULT_KEY_VERIFY_ONLY &&
	    k[1].version == 2 && k[1].state == VAULT_KEY_ACTIVE);
	ck_assert_mem_eq(k[0].pub, pub1, sizeof(pub1));
	memcpy(pub2, k[1].pub, sizeof(pub2));
	free(k);
	expect_state(v, VAULT_SIGN, 1, VAULT_KEY_VERIFY_ONLY);
	ck_assert_str_eq(vault_key_state_name(VAULT_KEY_VERIFY_ONLY),
	    "verify_only");
	/* Only rotation moves a signing key. */
	ck_assert_int_eq(vault_key_state(v, VAULT_SIGN, 2,
	    VAULT_KEY_DESTROYED, 1, &wrapped), PV_EKEYSTATE);
	ck_assert_int_eq(vault_key_state(v, VAULT_SIGN, 1,
	    VAULT_KEY_DESTROYED, 1, &wrapped), PV_EKEYSTATE);
	ck_assert_int_eq(vault_key_state(v, VAULT_SIGN, 1,
	    VAULT_KEY_RETIRED, 1, &wrapped), PV_EKEYSTATE);

	ck_assert_int_eq(shred1(v, id[1], "second", &r2, &st), PV_OK);
	ck_assert_uint_eq(r2.sign_version, 2);
	ck_assert_int_eq(vault_receipt_verify(&r2, pub2), PV_OK);
	ck_assert_int_eq(vault_receipt_verify(&r2, pub1), PV_EINTEGRITY);
	ck_assert_int_eq(vault_receipt_verify(&r1, pub1), PV_OK);
	ck_assert_int_eq(vault_receipt_verify(&r1, pub2), PV_EINTEGRITY);
	/* The version is signed: another one named does not verify. */
	r3 = r2;
	r3.sign_version = 3;
	ck_assert_int_eq(vault_receipt_verify(&r3, pub2), PV_EINTEGRITY);
	r3.sign_version = 0;
	ck_assert_int_eq(vault_receipt_verify(&r3, pub2), PV_EINTEGRITY);
	/* A repeat: the first shred's facts, signed by the active key. */
	ck_assert_int_eq(shred1(v, id[0], "again", &r3, &st), PV_OK);
	ck_assert_uint_eq(r3.sign_version, 2);
	ck_assert_uint_eq(r3.shredded_at, r1.shredded_at);
	ck_assert_str_eq(r3.reason, "first");
	ck_assert_int_eq(vault_receipt_verify(&r3, pub2), PV_OK);
	vault_close(v);

	/* On disk: version 1 holds its public key and no sealed key. */
	s = store_open();
	ring_read(s, VAULT_SIGN, 1, val);
	memset(zero, 0, sizeof(zero));
	ck_assert_uint_eq(val[0], VAULT_KEY_DESTROYED);
	ck_assert_mem_eq(val + 26, zero, 12);
	ck_assert_mem_eq(val + 38, pub1, PV_ED25519_LEN);
	ck_assert_mem_eq(val + 70, zero, 12);
	ck_assert_mem_eq(val + 82, zero, 4);
	pv_store_close(s);

	/* Reopened and after a root rotation: the same keys. */
	(void)snprintf(newkey, sizeof(newkey), "%s/new.key", dir);
	ck_assert_int_eq(vault_key_file_create(newkey), PV_OK);
	v = vopen();
	memset(&nu, 0, sizeof(nu));
	nu.key_file = newkey;
	ck_assert_int_eq(vault_rotate_root(v, &nu), PV_OK);
	vault_close(v);
	opts.unlock.key_file = newkey;
	v = vopen();
	signing_pub(v, 1, x);
	ck_assert_mem_eq(x, pub1, sizeof(x));
	signing_pub(v, 2, x);
	ck_assert_mem_eq(x, pub2, sizeof(x));
	signing_pub(v, 0, x);
	ck_assert_mem_eq(x, pub2, sizeof(x));
	vault_close(v);

	/* A public key edited on disk: the ring MAC refuses the vault. */
	s = store_open();
	ring_read(s, VAULT_SIGN, 1, val);
	val[40] ^= 0x01;
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	{
		uint8_t key[5] = { VAULT_SIGN, 0, 0, 0, 1 };

		ck_assert_int_eq(pv_put(t, PV_T_RING, key, sizeof(key), val,
		    sizeof(val), 0), PV_OK);
	}
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
	pv_store_close(s);
	v = NULL;
	ck_assert_int_eq(vault_open(&opts, &v), PV_EINTEGRITY);
	ck_assert_ptr_null(v);
}
END_TEST

/* Forensics: what a shred and a compaction leave on disk. */

/* A record's secret bytes on disk: its wrapped DEK and ciphertexts. */
struct secrets {
	uint8_t		rec[REC_BUF];
	size_t		len;
	size_t		nf;
	struct loc	l[4];
};

static void
secrets_read(struct pv_store *s, uint64_t seq, struct secrets *x)
{
	x->len = rec_read(s, seq, x->rec, sizeof(x->rec));
	x->nf = (size_t)x->rec[REC_NFIELDS] << 8 | x->rec[REC_NFIELDS + 1];
	ck_assert_uint_le(x->nf, 4);
	for (size_t i = 0; i < x->nf; i++)
		locate(x->rec, x->len, i, &x->l[i]);
}

/* How many of x's byte strings (DEK, each ciphertext + tag) are on disk. */
static size_t
secrets_found(const struct secrets *x)
{
	size_t n = 0;

	n += (size_t)tu_dir_contains(datadir, x->rec + REC_DEK,
	    KMS_WRAPPED_LEN);
	for (size_t i = 0; i < x->nf; i++)
		n += (size_t)tu_dir_contains(datadir, x->rec + x->l[i].ct,
		    x->l[i].end - x->l[i].ct);
	return n;
}

START_TEST(forensic_shred_compact)
{
	static const char *plain[] = {
		"Zyx Forensic Name 9917", "forensic.9917@example.org",
		"17 Evidence Road, Qz 4",
	};
	struct vault_field tf[] = { F("name", "Zyx Forensic Name 9917"),
	    F("email", "forensic.9917@example.org"),
	    F("address", "17 Evidence Road, Qz 4") };
	struct vault_field cf[] = { F("name", "Control Keeper 5521"),
	    F("email", "control.5521@example.org") };
	static struct secrets target, before, after;
	char idt[ID_LEN], tt[3][ID_LEN], tc1[2][ID_LEN], tc2[2][ID_LEN];
	struct vault_receipt r;
	struct pv_store *s;
	struct vault *v;
	uint64_t sz0, sz1;
	pv_status st;

	v = vcreate();
	ck_assert_int_eq(put1(v, cf, 2, NULL, tc1), PV_OK);	/* seq 1 */
	ck_assert_int_eq(put1(v, tf, 3, idt, tt), PV_OK);	/* seq 2 */
	ck_assert_int_eq(put1(v, cf, 2, NULL, tc2), PV_OK);	/* seq 3 */
	s = store_open();
	secrets_read(s, 1, &before);
	secrets_read(s, 2, &target);
	secrets_read(s, 3, &after);
	pv_store_close(s);
	/* The search finds what is there. */
	ck_assert_uint_eq(secrets_found(&target), 1 + 3);
	ck_assert_int_eq(shred1(v, idt, "forensic test", &r, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	vault_close(v);
	ck_assert_int_eq(vault_compact(&opts, &sz0, &sz1), PV_OK);
	ck_assert_uint_eq(secrets_found(&target), 0);
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		ck_assert_msg(!tu_dir_contains(datadir, plain[i],
		    strlen(plain[i])), "plaintext %zu on disk", i);
	/* Control: the records that were not shredded are all there. */
	ck_assert_uint_eq(secrets_found(&before), 1 + 2);
	ck_assert_uint_eq(secrets_found(&after), 1 + 2);
	v = vopen();
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(tu_get_status(v, tt[i]), PV_ESHREDDED);
	tu_expect_value(v, tc1[0], "name", "Control Keeper 5521", 19);
	tu_expect_value(v, tc2[1], "email", "control.5521@example.org", 24);
	vault_close(v);
}
END_TEST

/*
 * The same with values too big for a page (LMDB overflow pages), and with
 * many shreds on one page, oldest first, one per commit and in a batch:
 * deleting a node moves its neighbours within the page.
 */
START_TEST(forensic_overflow_and_neighbours)
{
	enum { N = 12, BIG = 3000 };
	static char notes[BIG];
	static struct secrets x[N + 1];
	char ids[N + 1][ID_LEN], toks[N + 1][2][ID_LEN], val[N][48];
	struct vault_field f[2];
	struct vault_receipt r[2];
	const char *two[2];
	size_t lens[2];
	struct pv_store *s;
	struct vault *v;
	uint64_t sz0, sz1;
	pv_status st[2];

	for (size_t i = 0; i < BIG; i++)
		notes[i] = (char)('a' + i % 23);
	v = vcreate();
	for (size_t i = 0; i < N; i++) {
		int n = snprintf(val[i], sizeof(val[i]),
		    "Neighbour %02zu of the forensic page", i);

		f[0] = (struct vault_field){ "name", 4, val[i], (size_t)n };
		f[1] = (struct vault_field){ "city", 4, "Pagetown", 8 };
		ck_assert_int_eq(put1(v, f, 2, ids[i], toks[i]), PV_OK);
	}
	f[0] = (struct vault_field){ "name", 4, "Big Notes Person", 16 };
	f[1] = (struct vault_field){ "notes", 5, notes, BIG };
	ck_assert_int_eq(put1(v, f, 2, ids[N], toks[N]), PV_OK);
	s = store_open();
	for (size_t i = 0; i <= N; i++)
		secrets_read(s, i + 1, &x[i]);
	pv_store_close(s);
	/* 0, 2, 4, 6, 8 one per commit; 9 and 10 in one; and the big one. */
	for (size_t i = 0; i < 10; i += 2)
		ck_assert_int_eq(shred1(v, ids[i], "one by one", r, st), PV_OK);
	two[0] = ids[9];
	two[1] = ids[10];
	lens[0] = lens[1] = strlen(ids[9]);
	ck_assert_int_eq(vault_shred(v, two, lens, 2, "batch", r, st), PV_OK);
	ck_assert_int_eq(shred1(v, ids[N], "big", r, st), PV_OK);
	ck_assert_int_eq(st[0], PV_OK);
	ck_assert_uint_eq(record_count(v), 5);
	vault_close(v);
	ck_assert_int_eq(vault_compact(&opts, &sz0, &sz1), PV_OK);
	for (size_t i = 0; i <= N; i++) {
		int gone = i % 2 == 0 || i == 9;	/* kept: 1 3 5 7 11 */
		size_t found = secrets_found(&x[i]);

		if (gone)
			ck_assert_msg(found == 0, "shredded record %zu: %zu of "
			    "its byte strings on disk", i, found);
		else
			ck_assert_msg(found == 1 + x[i].nf, "live record %zu: "
			    "%zu found", i, found);
	}
	ck_assert(!tu_dir_contains(datadir, notes, 64));
	v = vopen();
	tu_expect_value(v, toks[1][0], "name", val[1], strlen(val[1]));
	tu_expect_value(v, toks[11][1], "city", "Pagetown", 8);
	ck_assert_int_eq(tu_get_status(v, toks[N][1]), PV_ESHREDDED);
	vault_close(v);
}
END_TEST

/* Compaction. */

static uint64_t
file_size(const char *path, mode_t *mode)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	if (mode != NULL)
		*mode = st.st_mode;
	return (uint64_t)st.st_size;
}

START_TEST(compact_keeps_live_records)
{
	enum { N = 300 };
	char data[PATH_MAX + 32], tmp[PATH_MAX + 32], junk[PATH_MAX + 48];
	struct vault_receipt *r;
	pv_status *st;
	const char *ids[N / 2];
	size_t lens[N / 2];
	struct pv_store *s;
	struct bulk b;
	struct vault *v;
	uint64_t before = 0, after = 0, b2, a2;
	FILE *fp;

	(void)snprintf(data, sizeof(data), "%s/data.mdb", datadir);
	(void)snprintf(tmp, sizeof(tmp), "%s/compact.tmp", datadir);
	(void)snprintf(junk, sizeof(junk), "%s/data.mdb", tmp);
	ck_assert_ptr_nonnull(r = calloc(N / 2, sizeof(*r)));
	ck_assert_ptr_nonnull(st = calloc(N / 2, sizeof(*st)));
	bulk_init(&b, N, 1);
	v = vcreate();
	bulk_put(v, &b, 0, N);
	for (size_t i = 0; i < N / 2; i++) {
		ids[i] = b.ids[2 * i];
		lens[i] = strlen(ids[i]);
	}
	ck_assert_int_eq(vault_shred(v, ids, lens, N / 2, "compact", r, st),
	    PV_OK);
	/* Refused while a vault handle or the bare store is open. */
	ck_assert_int_eq(vault_compact(&opts, &before, &after), PV_EBUSY);
	vault_close(v);
	s = store_open();
	ck_assert_int_eq(vault_compact(&opts, &before, &after), PV_EBUSY);
	pv_store_close(s);
	/* What a crash in an earlier compaction left behind. */
	ck_assert_int_eq(mkdir(tmp, 0700), 0);
	ck_assert_ptr_nonnull(fp = fopen(junk, "wb"));
	ck_assert_int_eq(fputs("half a file, then the crash", fp) >= 0, 1);
	ck_assert_int_eq(fclose(fp), 0);
	b2 = file_size(data, NULL);
	ck_assert_int_eq(vault_compact(&opts, &before, &after), PV_OK);
	ck_assert_uint_eq(before, b2);
	ck_assert_uint_le(after, before);
	ck_assert_uint_eq(file_size(data, NULL), after);
	ck_assert_int_ne(access(tmp, F_OK), 0);
	v = vopen();
	ck_assert_uint_eq(record_count(v), N / 2);
	ck_assert_uint_eq(live_sum(v), N / 2);
	for (size_t i = 0; i < N; i++) {
		if (i % 2 == 0) {
			bulk_expect_shredded(v, &b, i);
			continue;
		}
		bulk_expect(v, &b, i);
		bulk_expect_lookup(v, &b, i);
	}
	/* The compacted vault takes writes. */
	{
		struct bulk more;

		bulk_init(&more, 10, 0);
		bulk_put(v, &more, 0, 10);
		for (size_t i = 0; i < 10; i++)
			bulk_expect(v, &more, i);
		bulk_free(&more);
	}
	ck_assert_uint_eq(record_count(v), N / 2 + 10);
	vault_close(v);
	/* Compacting a compact file does not grow it. */
	ck_assert_int_eq(vault_compact(&opts, &b2, &a2), PV_OK);
	ck_assert_uint_le(a2, b2);
	v = vopen();
	ck_assert_uint_eq(record_count(v), N / 2 + 10);
	bulk_expect(v, &b, 1);
	vault_close(v);
	bulk_free(&b);
	free(r);
	free(st);
}
END_TEST

/*
 * docs/format.md: data.mdb is mode 0600.  The compacted file is a new
 * file; it must not come out readable by others under a usual umask.
 */
START_TEST(compact_keeps_file_mode)
{
	struct vault_field f[] = { F("name", "Mode Person") };
	char data[PATH_MAX + 32], toks[1][ID_LEN];
	uint64_t before, after;
	struct vault *v;
	mode_t mode, old;

	(void)snprintf(data, sizeof(data), "%s/data.mdb", datadir);
	old = umask(022);
	v = vcreate();
	ck_assert_int_eq(put1(v, f, 1, NULL, toks), PV_OK);
	vault_close(v);
	(void)file_size(data, &mode);
	ck_assert_uint_eq(mode & 0777, 0600);
	ck_assert_int_eq(vault_compact(&opts, &before, &after), PV_OK);
	(void)file_size(data, &mode);
	(void)umask(old);
	ck_assert_msg((mode & 0777) == 0600, "data.mdb is mode %04o after "
	    "compaction", (unsigned)(mode & 0777));
}
END_TEST

/* Cryptoperiods. */

START_TEST(cryptoperiod_max_wraps)
{
	enum { N = 25, MAXW = 10, BATCH = 30 };
	struct vault_field f[] = { F("name", "Period Person") };
	struct vault_record_in recs[BATCH];
	struct vault_put_result res[BATCH];
	char toks[N][1][ID_LEN], btoks[BATCH][1][ID_LEN];
	struct vault_info info;
	struct vault *v;
	uint32_t active = 0;

	v = vcreate();
	vault_set_cryptoperiod(v, 0, MAXW);
	for (size_t i = 0; i < N; i++)
		ck_assert_int_eq(put1(v, f, 1, NULL, toks[i]), PV_OK);
	ck_assert_uint_ge(key_count(v, VAULT_KEK), 3);
	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	for (size_t i = 0; i < info.nkeys; i++) {
		if (info.keys[i].kind != VAULT_KEK)
			continue;
		ck_assert_msg(info.keys[i].wraps_total <= MAXW + 1,
		    "kek %u wrapped %llu", info.keys[i].version,
		    (unsigned long long)info.keys[i].wraps_total);
		if (info.keys[i].state == VAULT_KEY_ACTIVE)
			active = info.keys[i].version;
	}
	free(info.keys);
	ck_assert_uint_ge(active, 3);
	ck_assert_uint_eq(live_sum(v), N);
	for (size_t i = 0; i < N; i++)
		tu_expect_value(v, toks[i][0], "name", "Period Person", 13);
	/* One commit of 30 records: bounded by one commit's size. */
	for (size_t i = 0; i < BATCH; i++) {
		recs[i] = (struct vault_record_in){ f, 1, 0, 0 };
		res[i].tokens = btoks[i];
	}
	ck_assert_int_eq(vault_put(v, recs, BATCH, res), PV_OK);
	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	for (size_t i = 0; i < info.nkeys; i++) {
		if (info.keys[i].kind != VAULT_KEK)
			continue;
		ck_assert_uint_le(info.keys[i].wraps_total, MAXW - 1 + BATCH);
		if (info.keys[i].state == VAULT_KEY_ACTIVE)
			ck_assert_uint_lt(info.keys[i].wraps_total, MAXW);
	}
	free(info.keys);
	ck_assert_uint_eq(live_sum(v), N + BATCH);
	ck_assert_uint_eq(record_count(v), N + BATCH);
	for (size_t i = 0; i < BATCH; i++)
		tu_expect_value(v, btoks[i][0], "name", "Period Person", 13);
	vault_close(v);
}
END_TEST

START_TEST(cryptoperiod_max_age)
{
	const uint64_t now = 1900000000, age = 3600;
	struct vault_field f[] = { F("name", "Aging Person") };
	char toks[6][1][ID_LEN];
	struct vault_key_info k;
	struct vault *v;

	pv_clock_set(now);
	v = vcreate();
	vault_set_cryptoperiod(v, age, 0);
	ck_assert_int_eq(put1(v, f, 1, NULL, toks[0]), PV_OK);
	pv_clock_set(now + age - 1);
	ck_assert_int_eq(put1(v, f, 1, NULL, toks[1]), PV_OK);
	ck_assert_uint_eq(key_count(v, VAULT_KEK), 1);
	pv_clock_set(now + age + 1);
	ck_assert_int_eq(put1(v, f, 1, NULL, toks[2]), PV_OK);
	ck_assert_uint_eq(key_count(v, VAULT_KEK), 2);
	expect_state(v, VAULT_KEK, 1, VAULT_KEY_DECRYPT_ONLY);
	k = key_row(v, VAULT_KEK, 2);
	ck_assert_int_eq(k.state, VAULT_KEY_ACTIVE);
	ck_assert_uint_eq(k.created, now + age + 1);
	/* The next write goes under the new key, which is young. */
	ck_assert_int_eq(put1(v, f, 1, NULL, toks[3]), PV_OK);
	ck_assert_uint_eq(key_count(v, VAULT_KEK), 2);
	k = key_row(v, VAULT_KEK, 2);
	ck_assert_uint_ge(k.wraps_live, 1);
	ck_assert_uint_eq(live_sum(v), 4);
	/* No limit: no rotation, however old. */
	vault_set_cryptoperiod(v, 0, 0);
	pv_clock_set(now + 100 * age);
	ck_assert_int_eq(put1(v, f, 1, NULL, toks[4]), PV_OK);
	ck_assert_uint_eq(key_count(v, VAULT_KEK), 2);
	for (size_t i = 0; i < 5; i++)
		tu_expect_value(v, toks[i][0], "name", "Aging Person", 12);
	vault_close(v);
}
END_TEST

/*
 * wraps_total is the cryptoperiod's counter of encryptions under a KEK.
 * A consent change re-wraps the record's DEK for its new header: one
 * more wrap, whether or not the active version changed since.
 */
START_TEST(header_rewrap_counts_as_a_wrap)
{
	const struct vault_event ev = { .actor = "test",
	    .action = "record.consent", .ok = 1, .purpose = -1 };
	struct vault_field f[] = { F("name", "Consenting Person") };
	char id[ID_LEN], toks[1][ID_LEN];
	struct vault *v;
	uint32_t newv;

	v = vcreate();
	ck_assert_int_eq(put1(v, f, 1, id, toks), PV_OK);
	expect_kek(v, 1, VAULT_KEY_ACTIVE, 1, 1);
	/* Under an older version: moved to the active one, and counted. */
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	ck_assert_int_eq(vault_record_consent(v, &ev, id, strlen(id), 1),
	    PV_OK);
	expect_kek(v, 1, VAULT_KEY_DECRYPT_ONLY, 0, 1);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, 1, 1);
	/* Under the active version: counted all the same. */
	ck_assert_int_eq(vault_record_consent(v, &ev, id, strlen(id), 0),
	    PV_OK);
	ck_assert_int_eq(vault_record_consent(v, &ev, id, strlen(id), 1),
	    PV_OK);
	expect_kek(v, 2, VAULT_KEY_ACTIVE, 1, 3);
	tu_expect_value(v, toks[0], "name", "Consenting Person", 17);
	vault_close(v);
}
END_TEST

static Suite *
lifecycle_suite(void)
{
	return tu_suite_core("lifecycle", setup, tu_teardown, 600,
	    rotate_kek, puts_race_key_rotations, rewrap_changes_only_the_dek,
	    rewrap_from_one_version, rewrap_100k_records,
	    rewrap_killed_and_rerun, retire_kek, destroy_kek,
	    rotate_root_key_file, rotate_root_passphrase,
	    rotate_index_rebuilds, rotate_index_killed_and_rerun,
	    shred_epoch_killed_and_rerun, shred_epoch_leaves_no_old_key,
	    shred_epoch_with_concurrent_rotation,
	    rotate_index_with_concurrent_rotation, shred_record,
	    shred_refusals, shred_twice_with_audit_same_receipt,
	    shred_reason_c1_control, receipt_tamper, signing_key_rotation,
	    forensic_shred_compact, forensic_overflow_and_neighbours, compact_keeps_live_records,
	    compact_keeps_file_mode, cryptoperiod_max_wraps,
	    cryptoperiod_max_age, header_rewrap_counts_as_a_wrap, NULL);
}

int
main(void)
{
	return tu_run(lifecycle_suite());
}
