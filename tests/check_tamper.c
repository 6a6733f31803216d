/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_tamper: the data-file tamper matrix.  White-box: edits stored
 * values through pv_store.h with the vault closed (an attacker with the
 * data directory but not the root key), then checks through vault.h that
 * nothing is granted: an API key's rights do not grow, a revoked key stays
 * revoked, a held record is not shredded, a future retention date is not
 * swept, consent is not granted, an older ring generation is refused; and
 * that an alarm is counted.  Offsets are docs/format.md's.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include "kms.h"
#include "pv.h"
#include "pv_store.h"
#include "vault.h"
#include "testutil.h"

#define REC_FLAGS	1
#define REC_CREATED	74
#define REC_RETAIN	82
#define REC_FIELDS	92	/* the header before the fields */
#define FLAG_HOLD	0x02
#define FLAG_LIMITED	0x04
#define VAL_MAX		8192

static char dir[PATH_MAX], keyfile[PATH_MAX + 16], datadir[PATH_MAX + 16];
static struct vault_opts opts;

static void
setup(void)
{
	struct vault *v = NULL;

	tu_vault_setup(dir, keyfile, datadir, &opts);
	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	vault_close(v);
}

#define F(n, v)	{ n, sizeof(n) - 1, v, sizeof(v) - 1 }

static struct vault *
vopen(void)
{
	struct vault *v = NULL;

	ck_assert_int_eq(vault_open(&opts, &v), PV_OK);
	return v;
}

/* A stored value, copied out; returns its length. */
static size_t
peek(enum pv_table tab, const void *key, size_t klen, uint8_t *out)
{
	struct pv_store_opts so = { 0, 0, 0 };
	struct pv_store *s;
	struct pv_txn *t;
	const void *val;
	size_t vl;

	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(pv_get(t, tab, key, klen, &val, &vl), PV_OK);
	ck_assert_uint_le(vl, VAL_MAX);
	memcpy(out, val, vl);
	pv_txn_abort(t);
	pv_store_close(s);
	return vl;
}

/* Store val under key (or delete key if val is NULL). */
static void
poke(enum pv_table tab, const void *key, size_t klen, const void *val,
    size_t vl)
{
	struct pv_store_opts so = { 0, 0, 0 };
	struct pv_store *s;
	struct pv_txn *t;
	pv_status rc;

	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	if (val == NULL) {
		rc = pv_del(t, tab, key, klen, NULL, 0);
		ck_assert(rc == PV_OK || rc == PV_ENOTFOUND);
	} else
		ck_assert_int_eq(pv_put(t, tab, key, klen, val, vl, 0), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
	pv_store_close(s);
}

/* The API key table's key (secret hash) of the key named name. */
static void
apikey_row(const char *name, uint8_t hash[static 32])
{
	struct pv_store_opts so = { 0, 0, 0 };
	struct pv_store *s;
	struct pv_txn *t;
	struct pv_cursor *c;
	const uint8_t *k, *val;
	size_t kl, vl, n = strlen(name);
	int found = 0;
	pv_status rc;

	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(pv_cursor_open(t, PV_T_APIKEYS, &c), PV_OK);
	for (rc = pv_cursor_seek(c, NULL, 0, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl); rc == PV_OK; rc = pv_cursor_next(c, 0,
	    (const void **)&k, &kl, (const void **)&val, &vl))
		if (vl > 25 + n && val[24] == n &&
		    memcmp(val + 25, name, n) == 0) {
			memcpy(hash, k, 32);
			found = 1;
		}
	pv_cursor_close(c);
	pv_txn_abort(t);
	pv_store_close(s);
	ck_assert(found);
}

static int
same_rights(const struct vault_apikey *a, const struct vault_apikey *b)
{
	return a->role == b->role && a->reveal == b->reveal &&
	    a->purposes == b->purposes && a->nfields == b->nfields &&
	    a->revoked == b->revoked && a->created == b->created &&
	    a->cert_bound == b->cert_bound &&
	    memcmp(a->fields, b->fields, sizeof(a->fields)) == 0 &&
	    memcmp(a->cert_sha256, b->cert_sha256,
	    sizeof(a->cert_sha256)) == 0;
}

static void
make_key(struct vault *v, const char *name, enum vault_role role,
    enum vault_reveal_mode reveal, uint32_t purposes, const char *field,
    char secret[static VAULT_APIKEY_SECRET_LEN + 1])
{
	struct vault_apikey k;

	memset(&k, 0, sizeof(k));
	(void)snprintf(k.name, sizeof(k.name), "%s", name);
	k.role = role;
	k.reveal = reveal;
	k.purposes = purposes;
	if (field != NULL) {
		(void)snprintf(k.fields[0], sizeof(k.fields[0]), "%s", field);
		k.nfields = 1;
	}
	k.cert_bound = 1;
	memset(k.cert_sha256, 0x5a, sizeof(k.cert_sha256));
	ck_assert_int_eq(vault_apikey_create(v, &k, secret), PV_OK);
	secret[VAULT_APIKEY_SECRET_LEN] = '\0';
}

/* Every byte of an API key's value, flipped: auth fails or is unchanged. */
START_TEST(apikey_byte_flips)
{
	char sec[VAULT_APIKEY_SECRET_LEN + 1];
	uint8_t hash[32], orig[VAL_MAX], val[VAL_MAX];
	struct vault_apikey before, after;
	struct vault *v;
	size_t len, refused = 0;

	v = vopen();
	make_key(v, "research", VAULT_ROLE_READER, VAULT_REVEAL_MASKED,
	    1u << VAULT_P_RESEARCH, "email", sec);
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &before),
	    PV_OK);
	vault_close(v);
	apikey_row("research", hash);
	len = peek(PV_T_APIKEYS, hash, 32, orig);
	for (size_t i = 0; i < len; i++) {
		for (int b = 0; b < 2; b++) {
			pv_status rc;

			memcpy(val, orig, len);
			val[i] ^= b ? 0x80 : 0x01;
			poke(PV_T_APIKEYS, hash, 32, val, len);
			v = vopen();
			rc = vault_apikey_auth(v, sec, strlen(sec), &after);
			if (rc == PV_OK)
				ck_assert(same_rights(&before, &after));
			else {
				ck_assert_int_eq(rc, PV_EUNAUTH);
				ck_assert_uint_gt(vault_alarms(v), 0);
				refused++;
			}
			vault_close(v);
		}
	}
	/* The value is MAC'd whole: every flip is refused. */
	ck_assert_uint_eq(refused, 2 * len);
	/* Cut short, or grown by a byte. */
	poke(PV_T_APIKEYS, hash, 32, orig, len - 1);
	v = vopen();
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &after),
	    PV_EUNAUTH);
	vault_close(v);
	poke(PV_T_APIKEYS, hash, 32, orig, len);
	v = vopen();
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &after), PV_OK);
	ck_assert_uint_eq(vault_alarms(v), 0);
	vault_close(v);
	printf("api key: %zu bytes, %zu flips refused\n", len, refused);
}
END_TEST

/* Values swapped between two keys: neither key gets the other's rights. */
START_TEST(apikey_swap)
{
	char s1[VAULT_APIKEY_SECRET_LEN + 1], s2[VAULT_APIKEY_SECRET_LEN + 1];
	uint8_t h1[32], h2[32], v1[VAL_MAX], v2[VAL_MAX];
	struct vault_apikey k;
	struct vault_apikey *list;
	struct vault *v;
	size_t l1, l2, n;

	v = vopen();
	make_key(v, "masked", VAULT_ROLE_READER, VAULT_REVEAL_MASKED,
	    1u << VAULT_P_RESEARCH, "email", s1);
	make_key(v, "boss", VAULT_ROLE_ADMIN, VAULT_REVEAL_PLAIN, 0x7f, NULL,
	    s2);
	vault_close(v);
	apikey_row("masked", h1);
	apikey_row("boss", h2);
	l1 = peek(PV_T_APIKEYS, h1, 32, v1);
	l2 = peek(PV_T_APIKEYS, h2, 32, v2);
	poke(PV_T_APIKEYS, h1, 32, v2, l2);
	poke(PV_T_APIKEYS, h2, 32, v1, l1);
	v = vopen();
	ck_assert_int_eq(vault_apikey_auth(v, s1, strlen(s1), &k), PV_EUNAUTH);
	ck_assert_int_eq(vault_apikey_auth(v, s2, strlen(s2), &k), PV_EUNAUTH);
	ck_assert_uint_ge(vault_alarms(v), 2);
	/* apikey list does not show forged rights as real. */
	ck_assert_int_eq(vault_apikey_list(v, &list, &n), PV_EINTEGRITY);
	vault_close(v);
}
END_TEST

/*
 * A revoked key's row copied back from before its revocation (a backup):
 * still revoked.  The revocation list deleted too: the ring MAC fails.
 */
START_TEST(apikey_revocation_rollback)
{
	char sec[VAULT_APIKEY_SECRET_LEN + 1];
	uint8_t hash[32], old[VAL_MAX], list[VAL_MAX];
	struct vault_apikey k;
	struct vault *v;
	size_t len, ll;

	v = vopen();
	make_key(v, "gone", VAULT_ROLE_READER, VAULT_REVEAL_PLAIN, 0x7f, NULL,
	    sec);
	vault_close(v);
	apikey_row("gone", hash);
	len = peek(PV_T_APIKEYS, hash, 32, old);
	v = vopen();
	ck_assert_int_eq(vault_apikey_revoke(v, "gone"), PV_OK);
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &k),
	    PV_EUNAUTH);
	vault_close(v);
	poke(PV_T_APIKEYS, hash, 32, old, len);
	v = vopen();
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &k),
	    PV_EUNAUTH);
	ck_assert_uint_gt(vault_alarms(v), 0);
	vault_close(v);
	ll = peek(PV_T_META, "apikey_revoked", 14, list);
	ck_assert_uint_eq(ll, 32);
	poke(PV_T_META, "apikey_revoked", 14, NULL, 0);
	v = NULL;
	ck_assert_int_eq(vault_open(&opts, &v), PV_EINTEGRITY);
	ck_assert_ptr_null(v);
}
END_TEST

static void
put_one(struct vault *v, int marketing, uint32_t days, char *id,
    char (*toks)[VAULT_ID_STRLEN + 1])
{
	const struct vault_field f[] = { F("name", "Tamper Test"),
	    F("email", "tamper@example.org") };
	struct vault_record_in r = { f, 2, marketing, days };
	struct vault_put_result res = { .tokens = toks };

	ck_assert_int_eq(vault_put(v, &r, 1, &res), PV_OK);
	ck_assert_int_eq(res.status, PV_OK);
	memcpy(id, res.id, sizeof(res.id));
}

/* Every byte of a held record's header flipped: it cannot be shredded. */
START_TEST(hold_byte_flips)
{
	const struct vault_event ev = { .actor = "test",
	    .action = "record.hold", .ok = 1, .purpose = -1 };
	char id[VAULT_ID_STRLEN + 1], toks[2][VAULT_ID_STRLEN + 1];
	uint8_t key[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t orig[VAL_MAX], val[VAL_MAX];
	const char *ids[1] = { id };
	size_t lens[1] = { VAULT_ID_STRLEN }, len, cleared = 0;
	struct vault_receipt rcpt;
	struct vault *v;

	v = vopen();
	put_one(v, 0, 0, id, toks);
	ck_assert_int_eq(vault_record_hold(v, &ev, id, strlen(id), 1), PV_OK);
	vault_close(v);
	len = peek(PV_T_RECORDS, key, 8, orig);
	ck_assert(orig[REC_FLAGS] & FLAG_HOLD);
	for (size_t i = 0; i < REC_FIELDS; i++) {
		for (int b = 0; b < 2; b++) {
			pv_status st = PV_OK, rc;

			memcpy(val, orig, len);
			val[i] ^= b ? FLAG_HOLD : 0x01;
			if (i == REC_FLAGS && !(val[i] & FLAG_HOLD))
				cleared++;
			poke(PV_T_RECORDS, key, 8, val, len);
			v = vopen();
			rc = vault_shred(v, ids, lens, 1, "tamper", &rcpt,
			    &st);
			ck_assert(rc != PV_OK || st != PV_OK);
			if (i == REC_FLAGS && !(val[i] & FLAG_HOLD))
				ck_assert_uint_gt(vault_alarms(v), 0);
			vault_close(v);
		}
	}
	ck_assert_uint_eq(cleared, 1);
	poke(PV_T_RECORDS, key, 8, orig, len);
	v = vopen();
	tu_expect_value(v, toks[0], "name", "Tamper Test", 11);
	vault_close(v);
}
END_TEST

/*
 * A record with ten years left, its date (and its retention-table entry
 * with it) moved into the past, byte by byte: the sweep shreds nothing.
 */
START_TEST(retention_moved)
{
	char id[VAULT_ID_STRLEN + 1], toks[2][VAULT_ID_STRLEN + 1];
	uint8_t key[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t orig[VAL_MAX], val[VAL_MAX], rk[16], nk[16];
	uint64_t shredded, held, until = 0;
	size_t len;
	struct vault *v;

	v = vopen();
	put_one(v, 0, 3650, id, toks);
	vault_close(v);
	len = peek(PV_T_RECORDS, key, 8, orig);
	for (int i = 0; i < 8; i++)
		until = until << 8 | orig[REC_RETAIN + i];
	ck_assert_uint_gt(until, 0);
	memcpy(rk, orig + REC_RETAIN, 8);
	memcpy(rk + 8, key, 8);
	/* Each byte of the date, from the most significant, cleared. */
	for (int i = 0; i < 8; i++) {
		memcpy(val, orig, len);
		for (int j = 0; j <= i; j++)
			val[REC_RETAIN + j] = 0;
		val[REC_RETAIN + 7] = 1;
		memcpy(nk, val + REC_RETAIN, 8);
		memcpy(nk + 8, key, 8);
		poke(PV_T_RECORDS, key, 8, val, len);
		poke(PV_T_RETAIN, rk, 16, NULL, 0);
		poke(PV_T_RETAIN, nk, 16, "\1", 1);
		v = vopen();
		ck_assert_int_eq(vault_retention_sweep(v, 0, 0, &shredded,
		    &held), PV_OK);
		ck_assert_uint_eq(shredded, 0);
		/* A date still ahead is not looked at; one past is proven. */
		if ((uint64_t)time(NULL) >= pv_get_u64(nk))
			ck_assert_uint_gt(vault_alarms(v), 0);
		vault_close(v);
		poke(PV_T_RETAIN, nk, 16, NULL, 0);
		poke(PV_T_RETAIN, rk, 16, "\1", 1);
	}
	poke(PV_T_RECORDS, key, 8, orig, len);
	v = vopen();
	tu_expect_value(v, toks[0], "name", "Tamper Test", 11);
	vault_close(v);
}
END_TEST

/* What a detokenize answered: only its status and whether it had a value. */
static pv_status
seen(void *arg, size_t i, const struct vault_reveal *r)
{
	struct vault_reveal *out = arg;

	out[i].status = r->status;
	out[i].value = NULL;
	ck_assert(r->status != PV_OK || r->value == NULL);
	return PV_OK;
}

static int
same_receipt(const struct vault_receipt *a, const struct vault_receipt *b)
{
	return strcmp(a->id, b->id) == 0 && a->shredded_at == b->shredded_at &&
	    a->kek_version == b->kek_version && a->audit_seq == b->audit_seq &&
	    strcmp(a->reason, b->reason) == 0;
}

/* Shred id; its receipt and status. */
static pv_status
shred_id(struct vault *v, const char *id, struct vault_receipt *r,
    pv_status *st)
{
	const char *ids[1] = { id };
	size_t lens[1] = { VAULT_ID_STRLEN };

	*st = PV_OK;
	return vault_shred(v, ids, lens, 1, "tamper test", r, st);
}

/*
 * Every byte of a tombstone flipped: the shred answers no altered receipt
 * (an integrity error and an alarm, or not found when its check value is
 * what changed); tombstones swapped between records: integrity errors.
 * A tombstone deleted: its token answers not found (nothing comes back).
 */
START_TEST(tombstone_byte_flips)
{
	char id[VAULT_ID_STRLEN + 1], id2[VAULT_ID_STRLEN + 1];
	char toks[2][VAULT_ID_STRLEN + 1], toks2[2][VAULT_ID_STRLEN + 1];
	uint8_t key[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t key2[8] = { 0, 0, 0, 0, 0, 0, 0, 2 };
	uint8_t orig[VAL_MAX], orig2[VAL_MAX], val[VAL_MAX];
	struct vault_receipt first, r;
	struct vault *v;
	size_t len, len2, refused = 0, notfound = 0;
	pv_status rc, st;

	v = vopen();
	put_one(v, 0, 0, id, toks);
	put_one(v, 0, 0, id2, toks2);
	ck_assert_int_eq(shred_id(v, id, &first, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	ck_assert_int_eq(shred_id(v, id2, &r, &st), PV_OK);
	vault_close(v);
	len = peek(PV_T_RECORDS, key, 8, orig);
	len2 = peek(PV_T_RECORDS, key2, 8, orig2);
	for (size_t i = 0; i < len; i++) {
		memcpy(val, orig, len);
		val[i] ^= 0x01;
		poke(PV_T_RECORDS, key, 8, val, len);
		v = vopen();
		rc = shred_id(v, id, &r, &st);
		if (rc == PV_OK && st == PV_OK)
			ck_assert(same_receipt(&first, &r));
		else if (rc == PV_OK && st == PV_ENOTFOUND)
			notfound++;
		else {
			ck_assert_uint_gt(vault_alarms(v), 0);
			refused++;
		}
		vault_close(v);
	}
	/* The MAC is checked first: every flip is an integrity error. */
	ck_assert_uint_eq(notfound, 0);
	ck_assert_uint_eq(refused, len);
	/* Cut short (the MAC removed), and swapped with another's. */
	poke(PV_T_RECORDS, key, 8, orig, len - 32);
	v = vopen();
	rc = shred_id(v, id, &r, &st);
	ck_assert(rc != PV_OK || st != PV_OK);
	ck_assert_uint_gt(vault_alarms(v), 0);
	vault_close(v);
	poke(PV_T_RECORDS, key, 8, orig2, len2);
	poke(PV_T_RECORDS, key2, 8, orig, len);
	v = vopen();
	rc = shred_id(v, id2, &r, &st);
	ck_assert(rc != PV_OK || st != PV_OK);
	ck_assert_uint_gt(vault_alarms(v), 0);
	vault_close(v);
	poke(PV_T_RECORDS, key, 8, orig, len);
	poke(PV_T_RECORDS, key2, 8, orig2, len2);
	v = vopen();
	ck_assert_int_eq(shred_id(v, id, &r, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	ck_assert(same_receipt(&first, &r));
	ck_assert_int_eq(tu_get_status(v, toks[0]), PV_ESHREDDED);
	ck_assert_uint_eq(vault_alarms(v), 0);
	vault_close(v);
	/* Deleted: the token answers not found, and no value returns. */
	poke(PV_T_RECORDS, key, 8, NULL, 0);
	v = vopen();
	ck_assert_int_eq(tu_get_status(v, toks[0]), PV_ENOTFOUND);
	ck_assert_int_eq(tu_get_status(v, toks[1]), PV_ENOTFOUND);
	vault_close(v);
	printf("tombstone: %zu bytes, %zu flips refused, %zu not found\n",
	    len, refused, notfound);
}
END_TEST

/* Consent set on disk: a marketing read gets nothing. */
START_TEST(consent_not_granted)
{
	char id[VAULT_ID_STRLEN + 1], toks[2][VAULT_ID_STRLEN + 1];
	char sec[VAULT_APIKEY_SECRET_LEN + 1];
	uint8_t key[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t orig[VAL_MAX], val[VAL_MAX];
	const char *tk[1] = { toks[1] };
	size_t tl[1] = { VAULT_ID_STRLEN }, len;
	struct vault_reveal out[1];
	struct vault_apikey k;
	struct vault_access a = { &k, VAULT_P_MARKETING, NULL };
	struct vault *v;

	v = vopen();
	put_one(v, 0, 0, id, toks);
	make_key(v, "mkt", VAULT_ROLE_READER, VAULT_REVEAL_PLAIN,
	    1u << VAULT_P_MARKETING, NULL, sec);
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &k), PV_OK);
	vault_close(v);
	len = peek(PV_T_RECORDS, key, 8, orig);
	memcpy(val, orig, len);
	val[REC_FLAGS] |= 0x01;
	poke(PV_T_RECORDS, key, 8, val, len);
	v = vopen();
	out[0].status = PV_OK;
	ck_assert_int_eq(vault_detokenize(v, &a, NULL, tk, tl, 1, seen, out),
	    PV_OK);
	ck_assert_int_ne(out[0].status, PV_OK);
	ck_assert_uint_gt(vault_alarms(v), 0);
	vault_close(v);
}
END_TEST

/* The audit_rec rows of record seq: keys (17 bytes) and values. */
#define AR_ROWS_MAX	16
#define AR_KEY_LEN	17

struct ar_rows {
	uint8_t	key[AR_ROWS_MAX][AR_KEY_LEN];
	uint8_t	val[AR_ROWS_MAX][VAL_MAX];
	size_t	len[AR_ROWS_MAX];
	size_t	n;
};

static void
ar_save(uint64_t seq, struct ar_rows *r)
{
	struct pv_store_opts so = { 0, 0, 0 };
	struct pv_store *s;
	struct pv_txn *t;
	struct pv_cursor *c;
	const uint8_t *k, *val;
	uint8_t pre[8];
	size_t kl, vl;
	pv_status rc;

	pv_put_u64(pre, seq);
	r->n = 0;
	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(pv_cursor_open(t, PV_T_AUDIT_REC, &c), PV_OK);
	for (rc = pv_cursor_seek(c, pre, sizeof(pre), 0, (const void **)&k,
	    &kl, (const void **)&val, &vl); rc == PV_OK &&
	    kl == AR_KEY_LEN && memcmp(k, pre, 8) == 0;
	    rc = pv_cursor_next(c, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl)) {
		ck_assert_uint_lt(r->n, AR_ROWS_MAX);
		ck_assert_uint_le(vl, VAL_MAX);
		memcpy(r->key[r->n], k, AR_KEY_LEN);
		memcpy(r->val[r->n], val, vl);
		r->len[r->n++] = vl;
	}
	pv_cursor_close(c);
	pv_txn_abort(t);
	pv_store_close(s);
}

/* Put back the saved rows, then delete those matching (kind mask). */
static void
ar_set(const struct ar_rows *r, int del_index, int del_counter)
{
	for (size_t i = 0; i < r->n; i++) {
		int counter = (r->key[i][8] & 0x80) != 0;
		int del = counter ? del_counter : del_index;

		poke(PV_T_AUDIT_REC, r->key[i], AR_KEY_LEN,
		    del ? NULL : r->val[i], r->len[i]);
	}
}

/* One more access request on a record at its limit: never allowed. */
static void
expect_no_access(const char *id, int alarm)
{
	const struct vault_event ev = { .actor = "test",
	    .action = "record.access", .ok = 1, .purpose = -1 };
	const struct vault_policy pol = { 0, 3, 30 * 86400 };
	struct vault_record_view *out = NULL;
	uint64_t retry = 0;
	int logged = 0;
	pv_status rc;
	struct vault *v;

	v = vopen();
	vault_set_policy(v, &pol);
	rc = vault_record_access(v, &ev, id, strlen(id), &out, &retry,
	    &logged);
	ck_assert_int_ne(rc, PV_OK);
	ck_assert(rc == PV_ELIMIT || rc == PV_EINTEGRITY);
	if (alarm)
		ck_assert_uint_gt(vault_alarms(v), 0);
	vault_record_view_free(out);
	vault_close(v);
}

/*
 * A person's request limit is not reset by the data file: with the
 * index rows, the counter row or both deleted, the counter's bytes
 * flipped, counters swapped, or the header's limit flag cleared, a
 * request past the limit is refused (429 or an integrity error).
 */
START_TEST(request_limit_reset)
{
	const struct vault_event ev = { .actor = "test",
	    .action = "record.access", .ok = 1, .purpose = -1 };
	const struct vault_policy pol = { 0, 3, 30 * 86400 };
	char id[VAULT_ID_STRLEN + 1], toks[2][VAULT_ID_STRLEN + 1];
	char id2[VAULT_ID_STRLEN + 1], toks2[2][VAULT_ID_STRLEN + 1];
	uint8_t key[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t orig[VAL_MAX], val[VAL_MAX];
	struct vault_record_view *out;
	struct ar_rows *rows, *rows2;
	size_t len, ci = SIZE_MAX, di = SIZE_MAX;
	uint64_t retry;
	int logged;
	struct vault *v;

	ck_assert_ptr_nonnull(rows = calloc(1, sizeof(*rows)));
	ck_assert_ptr_nonnull(rows2 = calloc(1, sizeof(*rows2)));
	v = vopen();
	vault_set_policy(v, &pol);
	put_one(v, 0, 0, id, toks);
	put_one(v, 0, 0, id2, toks2);
	for (int i = 0; i < 4; i++) {
		out = NULL;
		ck_assert_int_eq(vault_record_access(v, &ev, id, strlen(id),
		    &out, &retry, &logged), i < 3 ? PV_OK : PV_ELIMIT);
		vault_record_view_free(out);
	}
	/* Another record's counter, of one request. */
	out = NULL;
	ck_assert_int_eq(vault_record_access(v, &ev, id2, strlen(id2), &out,
	    &retry, &logged), PV_OK);
	vault_record_view_free(out);
	vault_close(v);
	ar_save(1, rows);
	ar_save(2, rows2);
	for (size_t i = 0; i < rows->n; i++)
		if (rows->key[i][8] == (0x80 | VAULT_EK_ACCESS))
			ci = i;
	for (size_t i = 0; i < rows2->n; i++)
		if (rows2->key[i][8] == (0x80 | VAULT_EK_ACCESS))
			di = i;
	printf("request_limit_reset: %zu audit_rec rows\n", rows->n);

	/* Index rows deleted; counter deleted; both. */
	ar_set(rows, 1, 0);
	expect_no_access(id, 0);
	ar_set(rows, 0, 1);
	expect_no_access(id, 0);
	ar_set(rows, 1, 1);
	expect_no_access(id, 0);
	ck_assert_uint_ne(ci, SIZE_MAX);
	ck_assert_uint_ne(di, SIZE_MAX);

	/* Every byte of the counter flipped, index rows gone. */
	for (size_t i = 0; i < rows->len[ci]; i++) {
		for (int b = 0; b < 2; b++) {
			ar_set(rows, 1, 0);
			memcpy(val, rows->val[ci], rows->len[ci]);
			val[i] ^= b ? 0xff : 0x01;
			poke(PV_T_AUDIT_REC, rows->key[ci], AR_KEY_LEN, val,
			    rows->len[ci]);
			expect_no_access(id, 1);
		}
	}
	/* A shorter counter (another record's) swapped in. */
	ar_set(rows, 1, 0);
	poke(PV_T_AUDIT_REC, rows->key[ci], AR_KEY_LEN, rows2->val[di],
	    rows2->len[di]);
	expect_no_access(id, 1);

	/* The header's limit flag cleared, every row gone. */
	ar_set(rows, 1, 1);
	len = peek(PV_T_RECORDS, key, 8, orig);
	ck_assert(orig[REC_FLAGS] & FLAG_LIMITED);
	memcpy(val, orig, len);
	val[REC_FLAGS] &= (uint8_t)~FLAG_LIMITED;
	poke(PV_T_RECORDS, key, 8, val, len);
	expect_no_access(id, 1);

	/* Put back, the record still reads and is still limited. */
	poke(PV_T_RECORDS, key, 8, orig, len);
	ar_set(rows, 0, 0);
	expect_no_access(id, 0);
	v = vopen();
	tu_expect_value(v, toks[0], "name", "Tamper Test", 11);
	vault_close(v);
	free(rows);
	free(rows2);
}
END_TEST

/*
 * An access request whose values do not open (a ciphertext altered on
 * disk) is refused, and refused requests never count: with the bytes put
 * back, the person still has every request of the window, and metadata
 * (which opens no value) never counted.
 */
START_TEST(refused_access_not_counted)
{
	const struct vault_event ev = { .actor = "test",
	    .action = "record.access", .ok = 1, .purpose = -1 };
	const struct vault_policy pol = { 0, 3, 30 * 86400 };
	char id[VAULT_ID_STRLEN + 1], toks[2][VAULT_ID_STRLEN + 1];
	uint8_t key[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t orig[VAL_MAX], val[VAL_MAX];
	struct vault_record_view *out;
	uint64_t retry;
	size_t len;
	int logged;
	struct vault *v;

	v = vopen();
	put_one(v, 0, 0, id, toks);
	vault_close(v);
	len = peek(PV_T_RECORDS, key, 8, orig);
	memcpy(val, orig, len);
	val[len - 1] ^= 0x01;		/* the last field's tag */
	poke(PV_T_RECORDS, key, 8, val, len);
	v = vopen();
	vault_set_policy(v, &pol);
	for (int i = 0; i < 5; i++) {
		out = NULL;
		logged = -1;
		ck_assert_int_eq(vault_record_access(v, &ev, id, strlen(id),
		    &out, &retry, &logged), PV_EINTEGRITY);
		ck_assert_ptr_null(out);
		ck_assert_int_eq(logged, 0);
	}
	vault_close(v);
	poke(PV_T_RECORDS, key, 8, orig, len);
	v = vopen();
	vault_set_policy(v, &pol);
	for (int i = 0; i < 4; i++) {
		out = NULL;
		ck_assert_int_eq(vault_record_metadata(v, &ev, id, strlen(id),
		    &out, &logged), PV_OK);
		ck_assert_uint_eq(out->nfields, 2);
		ck_assert_ptr_null(out->fields[0].value);
		ck_assert_str_eq(out->fields[0].token, "");
		vault_record_view_free(out);
	}
	for (int i = 0; i < 4; i++) {
		out = NULL;
		ck_assert_int_eq(vault_record_access(v, &ev, id, strlen(id),
		    &out, &retry, &logged), i < 3 ? PV_OK : PV_ELIMIT);
		vault_record_view_free(out);
	}
	vault_close(v);
}
END_TEST

/*
 * Deletion requests are not limited (a deletion is granted once, and
 * neither refusals nor repeats count): the deletion counter and index
 * rows a vault made before this version kept, counting refusals under a
 * legal hold, are not read.  Here they are made up (the access rows of
 * three requests copied to the deletion kind, so their MAC does not even
 * verify): the person's deletion still shreds, and answers its receipt
 * when asked again.
 */
START_TEST(legacy_deletion_counts_ignored)
{
	const struct vault_event acc = { .actor = "test",
	    .action = "record.access", .ok = 1, .purpose = -1 };
	const struct vault_event del = { .actor = "test",
	    .action = "record.delete", .ok = 1, .purpose = -1 };
	const struct vault_policy pol = { 0, 3, 30 * 86400 };
	char id[VAULT_ID_STRLEN + 1], toks[2][VAULT_ID_STRLEN + 1];
	const char *ids[1] = { id };
	size_t lens[1] = { VAULT_ID_STRLEN };
	struct vault_record_view *out;
	struct vault_receipt rcpt, again;
	struct ar_rows *rows;
	uint8_t k[AR_KEY_LEN];
	uint64_t retry;
	size_t made = 0;
	pv_status st;
	int logged;
	struct vault *v;

	ck_assert_ptr_nonnull(rows = calloc(1, sizeof(*rows)));
	v = vopen();
	vault_set_policy(v, &pol);
	put_one(v, 0, 0, id, toks);
	for (int i = 0; i < 3; i++) {
		out = NULL;
		ck_assert_int_eq(vault_record_access(v, &acc, id, strlen(id),
		    &out, &retry, &logged), PV_OK);
		vault_record_view_free(out);
	}
	vault_close(v);
	ar_save(1, rows);
	for (size_t i = 0; i < rows->n; i++) {
		if ((rows->key[i][8] & 0x7f) != VAULT_EK_ACCESS)
			continue;
		memcpy(k, rows->key[i], AR_KEY_LEN);
		k[8] = (uint8_t)((k[8] & 0x80) | VAULT_EK_DELETE);
		poke(PV_T_AUDIT_REC, k, AR_KEY_LEN, rows->val[i],
		    rows->len[i]);
		made++;
	}
	ck_assert_uint_eq(made, 4);	/* three index rows, one counter */

	v = vopen();
	vault_set_policy(v, &pol);
	for (int i = 0; i < 2; i++) {
		st = PV_EINVAL;
		ck_assert_int_eq(vault_shred_ev(v, &del,
		    &(struct vault_shred_req){ ids, lens, 1, "person",
		    i == 0 ? &rcpt : &again, &st, &logged }), PV_OK);
		ck_assert_int_eq(st, PV_OK);
		ck_assert_int_eq(logged, 1);
	}
	ck_assert(same_receipt(&rcpt, &again));
	ck_assert_uint_eq(vault_alarms(v), 0);
	vault_close(v);
	free(rows);
}
END_TEST

/* An older ring generation, or an older ring entry, is refused at open. */
START_TEST(ring_rollback)
{
	uint8_t gen[VAL_MAX], ent[VAL_MAX], gen2[VAL_MAX];
	const uint8_t kek1[5] = { 1, 0, 0, 0, 1 };
	struct vault *v = NULL;
	uint32_t newv;
	size_t gl, el;

	gl = peek(PV_T_META, "ring_gen", 8, gen);
	el = peek(PV_T_RING, kek1, 5, ent);
	v = vopen();
	ck_assert_int_eq(vault_rotate(v, VAULT_KEK, &newv), PV_OK);
	vault_close(v);
	(void)peek(PV_T_META, "ring_gen", 8, gen2);
	poke(PV_T_META, "ring_gen", 8, gen, gl);
	v = NULL;
	ck_assert_int_eq(vault_open(&opts, &v), PV_EINTEGRITY);
	ck_assert_ptr_null(v);
	poke(PV_T_META, "ring_gen", 8, gen2, gl);
	/* KEK 1 copied back as it was, active. */
	poke(PV_T_RING, kek1, 5, ent, el);
	ck_assert_int_eq(vault_open(&opts, &v), PV_EINTEGRITY);
	ck_assert_ptr_null(v);
}
END_TEST

/*
 * The old format, made white-box: what e262fc3 wrote (docs/format.md at
 * that commit).  API key rows version 1 (no flags, no cert, no MAC), no
 * meta ring_mac, no apikey_revoked, and the root check under the label
 * "pv-root-check".  The first keep rows (in table order) are left at
 * version 2 and only the revoked among them listed: the state a crash
 * after the upgrade's first batch leaves.
 */
#define OLD_KEYS_MAX	128

static void
make_old(size_t keep)
{
	struct pv_store_opts so = { 0, 0, 0 };
	static uint8_t keys[OLD_KEYS_MAX][32], vals[OLD_KEYS_MAX][VAL_MAX];
	static size_t lens[OLD_KEYS_MAX];
	uint8_t root[PV_KEY_LEN], aad[13 + KMS_VAULT_ID_LEN];
	uint8_t check[PV_GCM_NONCE_LEN + PV_GCM_TAG_LEN];
	uint8_t revoked[OLD_KEYS_MAX * 32];
	struct pv_store *s;
	struct pv_txn *t;
	struct pv_cursor *c;
	const uint8_t *k, *val;
	size_t kl, vl, n = 0, nrev = 0;
	pv_status rc;

	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(pv_cursor_open(t, PV_T_APIKEYS, &c), PV_OK);
	for (rc = pv_cursor_seek(c, NULL, 0, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl); rc == PV_OK; rc = pv_cursor_next(c, 0,
	    (const void **)&k, &kl, (const void **)&val, &vl)) {
		ck_assert_uint_lt(n, OLD_KEYS_MAX);
		ck_assert_uint_eq(kl, 32);
		ck_assert_uint_gt(vl, 32 + 25);
		memcpy(keys[n], k, 32);
		memcpy(vals[n], val, vl);
		lens[n++] = vl;
	}
	pv_cursor_close(c);
	ck_assert_int_eq(rc, PV_ENOTFOUND);
	for (size_t i = 0; i < n; i++) {
		/* Version 2, not bound to a certificate. */
		ck_assert_uint_eq(vals[i][0], 2);
		ck_assert_uint_eq(vals[i][3], 0);
		if (i < keep) {
			if (pv_get_u64(vals[i] + 16) != 0)
				memcpy(revoked + 32 * nrev++, keys[i], 32);
			continue;
		}
		vals[i][0] = 1;
		ck_assert_int_eq(pv_put(t, PV_T_APIKEYS, keys[i], 32, vals[i],
		    lens[i] - 32, 0), PV_OK);
	}
	if (nrev > 0)
		ck_assert_int_eq(pv_put(t, PV_T_META, "apikey_revoked", 14,
		    revoked, 32 * nrev, 0), PV_OK);
	else {
		rc = pv_del(t, PV_T_META, "apikey_revoked", 14, NULL, 0);
		ck_assert(rc == PV_OK || rc == PV_ENOTFOUND);
	}
	/* Tombstones without their MAC (the last 32 bytes). */
	n = 0;
	ck_assert_int_eq(pv_cursor_open(t, PV_T_RECORDS, &c), PV_OK);
	for (rc = pv_cursor_seek(c, NULL, 0, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl); rc == PV_OK; rc = pv_cursor_next(c, 0,
	    (const void **)&k, &kl, (const void **)&val, &vl)) {
		if (vl < 31 || val[0] != 2)
			continue;
		ck_assert_uint_lt(n, OLD_KEYS_MAX);
		ck_assert_uint_eq(vl, 31 + (size_t)val[30] + 32);
		memcpy(keys[n], k, 8);
		memcpy(vals[n], val, vl - 32);
		lens[n++] = vl - 32;
	}
	pv_cursor_close(c);
	ck_assert_int_eq(rc, PV_ENOTFOUND);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(pv_put(t, PV_T_RECORDS, keys[i], 8, vals[i],
		    lens[i], 0), PV_OK);
	ck_assert_int_eq(pv_del(t, PV_T_META, "ring_mac", 8, NULL, 0), PV_OK);
	ck_assert_int_eq(pv_get(t, PV_T_META, "vault_id", 8,
	    (const void **)&val, &vl), PV_OK);
	ck_assert_uint_eq(vl, KMS_VAULT_ID_LEN);
	memcpy(aad, "pv-root-check", 13);
	memcpy(aad + 13, val, KMS_VAULT_ID_LEN);
	ck_assert_int_eq(kms_key_file_read(keyfile, root), PV_OK);
	ck_assert_int_eq(pv_aead_seal(NULL, check, check + PV_GCM_NONCE_LEN,
	    root, aad, sizeof(aad), NULL, 0), PV_OK);
	pv_cleanse(root, sizeof(root));
	ck_assert_int_eq(pv_put(t, PV_T_META, "root_check", 10, check,
	    sizeof(check), 0), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
	pv_store_close(s);
}

/* How many rows of the API key table are at version v. */
static size_t
rows_at(uint8_t ver)
{
	struct pv_store_opts so = { 0, 0, 0 };
	struct pv_store *s;
	struct pv_txn *t;
	struct pv_cursor *c;
	const uint8_t *k, *val;
	size_t kl, vl, n = 0;
	pv_status rc;

	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(pv_cursor_open(t, PV_T_APIKEYS, &c), PV_OK);
	for (rc = pv_cursor_seek(c, NULL, 0, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl); rc == PV_OK; rc = pv_cursor_next(c, 0,
	    (const void **)&k, &kl, (const void **)&val, &vl))
		n += vl > 0 && val[0] == ver;
	pv_cursor_close(c);
	pv_txn_abort(t);
	pv_store_close(s);
	return n;
}

#define UP_KEYS	70	/* more than one upgrade batch (64) */

/*
 * A vault in the old format opened with this code: every key keeps its
 * secret and exactly its rights, a revoked key stays revoked, records read
 * back, the audit chain verifies; and an upgrade cut after its first batch
 * resumes at the next open.
 */
static void
upgrade_case(size_t keep)
{
	static char secs[UP_KEYS][VAULT_APIKEY_SECRET_LEN + 1];
	static struct vault_apikey before[UP_KEYS];
	char id[VAULT_ID_STRLEN + 1], toks[2][VAULT_ID_STRLEN + 1];
	char gone[VAULT_ID_STRLEN + 1], gtoks[2][VAULT_ID_STRLEN + 1];
	struct vault_receipt first, r;
	struct vault_apikey k;
	struct vault *v;
	uint64_t count, bad;
	char name[32];
	pv_status st;

	v = vopen();
	vault_set_actor(v, "test");
	put_one(v, 1, 0, id, toks);
	put_one(v, 0, 0, gone, gtoks);
	ck_assert_int_eq(shred_id(v, gone, &first, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	for (size_t i = 0; i < UP_KEYS; i++) {
		memset(&k, 0, sizeof(k));
		(void)snprintf(k.name, sizeof(k.name), "old%zu", i);
		k.role = i % 3 == 0 ? VAULT_ROLE_READER : i % 3 == 1 ?
		    VAULT_ROLE_WRITER : VAULT_ROLE_AUDITOR;
		k.reveal = i % 2 ? VAULT_REVEAL_MASKED : VAULT_REVEAL_PLAIN;
		k.purposes = (uint32_t)(i % 7 + 1);
		if (i % 4 == 0) {
			(void)snprintf(k.fields[0], sizeof(k.fields[0]),
			    "email");
			k.nfields = 1;
		}
		if (k.role != VAULT_ROLE_READER) {
			k.reveal = VAULT_REVEAL_MASKED;
			k.nfields = 0;
		}
		ck_assert_int_eq(vault_apikey_create(v, &k, secs[i]), PV_OK);
		secs[i][VAULT_APIKEY_SECRET_LEN] = '\0';
		ck_assert_int_eq(vault_apikey_auth(v, secs[i],
		    VAULT_APIKEY_SECRET_LEN, &before[i]), PV_OK);
	}
	/* Every fifth key revoked. */
	for (size_t i = 0; i < UP_KEYS; i += 5) {
		(void)snprintf(name, sizeof(name), "old%zu", i);
		ck_assert_int_eq(vault_apikey_revoke(v, name), PV_OK);
	}
	vault_close(v);
	make_old(keep);
	ck_assert_uint_eq(rows_at(1), UP_KEYS - keep);
	ck_assert_uint_eq(rows_at(2), keep);
	v = vopen();
	vault_close(v);
	ck_assert_uint_eq(rows_at(1), 0);
	ck_assert_uint_eq(rows_at(2), UP_KEYS);
	/* The upgraded vault is sealed: the old label no longer opens it. */
	{
		uint8_t x[VAL_MAX];

		ck_assert_uint_eq(peek(PV_T_META, "ring_mac", 8, x), 32);
		ck_assert_uint_eq(peek(PV_T_META, "apikey_revoked", 14, x),
		    32 * ((UP_KEYS + 4) / 5));
	}
	v = vopen();
	for (size_t i = 0; i < UP_KEYS; i++) {
		pv_status rc;

		rc = vault_apikey_auth(v, secs[i], VAULT_APIKEY_SECRET_LEN, &k);
		if (i % 5 == 0)
			ck_assert_int_eq(rc, PV_EUNAUTH);
		else {
			ck_assert_int_eq(rc, PV_OK);
			ck_assert(same_rights(&before[i], &k));
		}
	}
	/* The old tombstone, MAC'd by the upgrade, answers its receipt. */
	ck_assert_int_eq(shred_id(v, gone, &r, &st), PV_OK);
	ck_assert_int_eq(st, PV_OK);
	ck_assert(same_receipt(&first, &r));
	ck_assert_int_eq(tu_get_status(v, gtoks[0]), PV_ESHREDDED);
	tu_expect_value(v, toks[0], "name", "Tamper Test", 11);
	tu_expect_value(v, toks[1], "email", "tamper@example.org", 18);
	ck_assert_int_eq(vault_audit_verify(v, &count, &bad, NULL), PV_OK);
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_gt(count, UP_KEYS);
	ck_assert_uint_eq(vault_alarms(v), 0);
	vault_close(v);
	printf("upgrade: %d keys, %zu at version 2 before the open\n",
	    UP_KEYS, keep);
}

START_TEST(upgrade_old_vault)
{
	upgrade_case(0);
}
END_TEST

START_TEST(upgrade_resumes)
{
	upgrade_case(64);
}
END_TEST

/*
 * A KEK's wrap counters lowered on disk (to put off its cryptoperiod):
 * the ring MAC covers them, so the vault does not open.
 */
START_TEST(wrap_counters_lowered)
{
	char id[VAULT_ID_STRLEN + 1], toks[2][VAULT_ID_STRLEN + 1];
	const uint8_t kek1[5] = { 1, 0, 0, 0, 1 };
	uint8_t orig[VAL_MAX], val[VAL_MAX];
	struct vault *v = NULL;
	size_t el;

	v = vopen();
	for (int i = 0; i < 3; i++)
		put_one(v, 0, 0, id, toks);
	vault_close(v);
	el = peek(PV_T_RING, kek1, 5, orig);
	ck_assert_uint_eq(el, 86);
	/* Wraps live at 10, wraps in all at 18 (docs/format.md). */
	for (size_t off = 10; off < 26; off += 8) {
		memcpy(val, orig, el);
		ck_assert_uint_ne(val[off + 7], 0);
		val[off + 7] = 0;
		poke(PV_T_RING, kek1, 5, val, el);
		v = NULL;
		ck_assert_int_eq(vault_open(&opts, &v), PV_EINTEGRITY);
		ck_assert_ptr_null(v);
	}
	poke(PV_T_RING, kek1, 5, orig, el);
	v = vopen();
	put_one(v, 0, 0, id, toks);
	vault_close(v);
	v = vopen();
	vault_close(v);
}
END_TEST

/*
 * A key's expiry is MAC'd: pushed later on disk (each byte of the version
 * 3 tail flipped), the key is refused and an alarm raised.  The old
 * secret of a rotation, its row copied back from before the rotation
 * (so it would never stop): refused past the overlap, an alarm.
 */
START_TEST(apikey_expiry_tamper)
{
	char sec[VAULT_APIKEY_SECRET_LEN + 1], nsec[VAULT_APIKEY_SECRET_LEN + 1];
	uint8_t hash[32], orig[VAL_MAX], val[VAL_MAX];
	const uint64_t t0 = 1700000000;
	struct vault_apikey k;
	struct vault *v;
	size_t len, tail;

	pv_clock_set(t0);
	v = vopen();
	memset(&k, 0, sizeof(k));
	(void)snprintf(k.name, sizeof(k.name), "short");
	k.role = VAULT_ROLE_READER;
	k.reveal = VAULT_REVEAL_PLAIN;
	k.purposes = 1;
	k.expires_days = 1;
	ck_assert_int_eq(vault_apikey_create(v, &k, sec), PV_OK);
	sec[VAULT_APIKEY_SECRET_LEN] = '\0';
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &k), PV_OK);
	ck_assert_uint_eq(k.expires, t0 + 86400);
	vault_close(v);
	apikey_row("short", hash);
	len = peek(PV_T_APIKEYS, hash, 32, orig);
	ck_assert_uint_eq(orig[0], 3);
	tail = len - 32 - 20;
	ck_assert_uint_eq(pv_get_u64(orig + tail), t0 + 86400);

	/* Expired in its genuine form: refused, no alarm. */
	pv_clock_set(t0 + 86400);
	v = vopen();
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &k),
	    PV_EUNAUTH);
	ck_assert_uint_eq(vault_alarms(v), 0);
	vault_close(v);
	/* Its expiry moved a century on. */
	memcpy(val, orig, len);
	pv_put_u64(val + tail, t0 + 100 * 365 * 86400ull);
	poke(PV_T_APIKEYS, hash, 32, val, len);
	v = vopen();
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &k),
	    PV_EUNAUTH);
	ck_assert_uint_gt(vault_alarms(v), 0);
	vault_close(v);
	for (size_t i = tail; i < tail + 20; i++) {
		memcpy(val, orig, len);
		val[i] ^= 0x01;
		poke(PV_T_APIKEYS, hash, 32, val, len);
		pv_clock_set(t0);
		v = vopen();
		ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &k),
		    PV_EUNAUTH);
		ck_assert_uint_gt(vault_alarms(v), 0);
		vault_close(v);
	}
	poke(PV_T_APIKEYS, hash, 32, orig, len);

	/* Rotation, and the old row copied back. */
	pv_clock_set(t0);
	v = vopen();
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &k), PV_OK);
	ck_assert_int_eq(vault_apikey_rotate(v, "short", 3600, nsec), PV_OK);
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &k), PV_OK);
	ck_assert_uint_eq(k.replaced_until, t0 + 3600);
	ck_assert_int_eq(vault_apikey_auth(v, nsec, strlen(nsec), &k), PV_OK);
	vault_close(v);
	poke(PV_T_APIKEYS, hash, 32, orig, len);
	pv_clock_set(t0 + 3600);
	v = vopen();
	ck_assert_int_eq(vault_apikey_auth(v, sec, strlen(sec), &k),
	    PV_EUNAUTH);
	ck_assert_uint_gt(vault_alarms(v), 0);
	ck_assert_int_eq(vault_apikey_auth(v, nsec, strlen(nsec), &k), PV_OK);
	ck_assert_uint_eq(k.expires, t0 + 86400);
	vault_close(v);
}
END_TEST

/* Audit retention: the checkpoint an archive leaves. */

#define CK_KEY		"audit_ckpt"
#define CK_VALUE_LEN	197	/* docs/format.md: 165 and the row MAC */

/* n events at time t, the first about record 1 (kind read). */
static void
events_at(struct vault *v, uint64_t t, size_t n)
{
	const uint64_t rec = 1;
	struct vault_event ev = { .actor = "tamper", .action = "test",
	    .ok = 1, .purpose = -1, .recs = &rec, .nrecs = 1,
	    .kind = VAULT_EK_READ };

	pv_clock_set(t);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(vault_audit(v, &ev, NULL), PV_OK);
		ev.nrecs = 0;
		ev.kind = VAULT_EK_NONE;
	}
}

/* Archive what is older than before; removal stops after the commit. */
static void
archive_commit(struct vault *v, uint64_t before, size_t batch,
    uint64_t *removed)
{
	struct vault_archive_head h;
	uint8_t hash[32];

	memset(hash, 0xab, sizeof(hash));
	ck_assert_int_eq(vault_audit_archive_plan(v, before, &h), PV_OK);
	ck_assert_int_eq(vault_audit_archive_commit(v, &h, hash, batch,
	    removed), PV_OK);
}

/* verify's answer, from a fresh open: rc, and bad. */
static pv_status
verify_fresh(uint64_t *bad, uint64_t *count, uint64_t *alarms)
{
	struct vault *v = vopen();
	pv_status rc;

	rc = vault_audit_verify(v, count, bad, NULL);
	*alarms = vault_alarms(v);
	vault_close(v);
	return rc;
}

/*
 * Archive events 1..10 and stop after the first removal commit (a crash):
 * the chain verifies from the checkpoint, reads start there, and a prune
 * finishes, index rows included.  Then the attacks on the data file:
 * every byte of the checkpoint flipped, the checkpoint deleted, the events
 * after it deleted, another vault's checkpoint, an older checkpoint put
 * back after a later archive.  Each is an integrity failure.
 */
START_TEST(audit_checkpoint_tamper)
{
	struct vault_audit_checkpoint ck;
	struct vault_audit_entry *e = NULL;
	struct vault_opts o2;
	struct vault *v, *v2;
	uint8_t orig[VAL_MAX], val[VAL_MAX], other[VAL_MAX], key[8], ak[17];
	uint8_t first[VAL_MAX];
	char dir2[PATH_MAX + 32], key2[PATH_MAX + 48], data2[PATH_MAX + 48];
	uint64_t t0 = 1767000000, removed, count, bad, last, archived, alarms;
	size_t len, n, flen;
	const void *x;

	v = vopen();
	events_at(v, t0, 10);
	events_at(v, t0 + 100, 2);
	archive_commit(v, t0 + 50, 4, &removed);
	ck_assert_uint_eq(removed, 4);
	ck_assert_int_eq(vault_audit_verify(v, &count, &bad, &ck), PV_OK);
	ck_assert_uint_eq(ck.seq, 10);
	ck_assert_uint_eq(ck.archived, 10);
	ck_assert_uint_eq(ck.before, t0 + 50);
	ck_assert_uint_eq(count, 3);	/* 11, 12 and the archive's event */
	ck_assert_int_eq(vault_audit_read(v, 0, VAULT_AUDIT_END_NONE, 10, &e,
	    &n, &last, &archived), PV_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(e[0].seq, 11);
	ck_assert_str_eq(e[2].action, "audit.archive");
	ck_assert_uint_eq(archived, 10);
	vault_audit_entries_free(e, n);
	vault_close(v);
	/* "Crashed": events 5..10 are left below the checkpoint. */
	pv_put_u64(key, 5);
	ck_assert_uint_gt(peek(PV_T_AUDIT, key, 8, val), 0);
	ck_assert_int_eq(verify_fresh(&bad, &count, &alarms), PV_OK);
	ck_assert_uint_eq(count, 3);
	v = vopen();
	ck_assert_int_eq(vault_audit_archive_prune(v, 4, &removed), PV_OK);
	ck_assert_uint_eq(removed, 4);
	ck_assert_int_eq(vault_audit_archive_prune(v, 4, &removed), PV_OK);
	ck_assert_uint_eq(removed, 2);
	ck_assert_int_eq(vault_audit_archive_prune(v, 4, &removed), PV_OK);
	ck_assert_uint_eq(removed, 0);
	/* The chain goes on across the checkpoint. */
	events_at(v, t0 + 200, 1);
	ck_assert_int_eq(vault_audit_verify(v, &count, &bad, NULL), PV_OK);
	ck_assert_uint_eq(count, 4);
	vault_close(v);
	{
		struct pv_store_opts so = { 0, 0, 0 };
		struct pv_store *st;
		struct pv_txn *t;
		size_t vl;

		ck_assert_int_eq(pv_store_open(datadir, &so, &st), PV_OK);
		ck_assert_int_eq(pv_txn_begin(st, 0, &t), PV_OK);
		for (uint64_t i = 1; i <= 10; i++) {
			pv_put_u64(key, i);
			ck_assert_int_eq(pv_get(t, PV_T_AUDIT, key, 8, &x, &vl),
			    PV_ENOTFOUND);
		}
		/* Event 1's row in the per-record index went with it. */
		pv_put_u64(ak, 1);
		ak[8] = VAULT_EK_READ;
		pv_put_u64(ak + 9, 1);
		ck_assert_int_eq(pv_get(t, PV_T_AUDIT_REC, ak, 17, &x, &vl),
		    PV_ENOTFOUND);
		pv_txn_abort(t);
		pv_store_close(st);
	}

	len = peek(PV_T_META, CK_KEY, strlen(CK_KEY), orig);
	ck_assert_uint_eq(len, CK_VALUE_LEN);
	for (size_t i = 0; i < len; i++) {
		memcpy(val, orig, len);
		val[i] ^= 0x01;
		poke(PV_T_META, CK_KEY, strlen(CK_KEY), val, len);
		ck_assert_int_eq(verify_fresh(&bad, &count, &alarms),
		    PV_EINTEGRITY);
		ck_assert_uint_eq(bad, 0);
		ck_assert_uint_gt(alarms, 0);
	}
	/* Deleted: the chain must start at 1, and event 1 is gone. */
	poke(PV_T_META, CK_KEY, strlen(CK_KEY), NULL, 0);
	ck_assert_int_eq(verify_fresh(&bad, &count, &alarms), PV_EINTEGRITY);
	ck_assert_uint_eq(bad, 1);
	poke(PV_T_META, CK_KEY, strlen(CK_KEY), orig, len);
	ck_assert_int_eq(verify_fresh(&bad, &count, &alarms), PV_OK);
	/* Events after it deleted: the gap shows. */
	pv_put_u64(key, 11);
	flen = peek(PV_T_AUDIT, key, 8, first);
	poke(PV_T_AUDIT, key, 8, NULL, 0);
	ck_assert_int_eq(verify_fresh(&bad, &count, &alarms), PV_EINTEGRITY);
	ck_assert_uint_eq(bad, 11);
	poke(PV_T_AUDIT, key, 8, first, flen);

	/* Another vault's checkpoint, at the same seq. */
	(void)snprintf(dir2, sizeof(dir2), "%s/two", dir);
	(void)snprintf(key2, sizeof(key2), "%s/root.key", dir);
	(void)snprintf(data2, sizeof(data2), "%s/data", dir2);
	ck_assert_int_eq(mkdir(dir2, 0700), 0);
	o2 = opts;
	o2.data_dir = data2;
	ck_assert_int_eq(vault_create(&o2, &v2), PV_OK);
	events_at(v2, t0, 10);
	archive_commit(v2, t0 + 50, 100, &removed);
	vault_close(v2);
	{
		char save[PATH_MAX + 16];

		memcpy(save, datadir, sizeof(save));
		memcpy(datadir, data2, strlen(data2) + 1);
		ck_assert_uint_eq(peek(PV_T_META, CK_KEY, strlen(CK_KEY),
		    other), CK_VALUE_LEN);
		memcpy(datadir, save, sizeof(save));
	}
	poke(PV_T_META, CK_KEY, strlen(CK_KEY), other, CK_VALUE_LEN);
	ck_assert_int_eq(verify_fresh(&bad, &count, &alarms), PV_EINTEGRITY);
	ck_assert_uint_eq(bad, 0);
	poke(PV_T_META, CK_KEY, strlen(CK_KEY), orig, len);

	/* A later archive; the older checkpoint put back hides nothing. */
	v = vopen();
	archive_commit(v, t0 + 150, 100, &removed);
	ck_assert_int_eq(vault_audit_verify(v, &count, &bad, &ck), PV_OK);
	ck_assert_uint_eq(ck.seq, 13);
	ck_assert_uint_eq(ck.archived, 13);
	vault_close(v);
	poke(PV_T_META, CK_KEY, strlen(CK_KEY), orig, len);
	ck_assert_int_eq(verify_fresh(&bad, &count, &alarms), PV_EINTEGRITY);
	ck_assert_uint_eq(bad, 11);
	(void)key2;
}
END_TEST

/*
 * The shred-epoch counter a backup's manifest reports (meta "epochs",
 * 8 bytes and a row MAC): any byte flipped, or another vault's row, is an
 * integrity failure and an alarm, and no backup is written.
 */
START_TEST(epochs_counter_tamper)
{
	struct vault_backup_info m;
	struct vault *v;
	uint8_t orig[VAL_MAX], val[VAL_MAX];
	char path[PATH_MAX + 32];
	size_t len;

	v = vopen();
	ck_assert_int_eq(vault_shred_epoch(v, 0, NULL, NULL), PV_OK);
	ck_assert_int_eq(vault_shred_epoch(v, 0, NULL, NULL), PV_OK);
	vault_close(v);
	len = peek(PV_T_META, "epochs", 6, orig);
	ck_assert_uint_eq(len, 8 + 32);
	ck_assert_uint_eq(pv_get_u64(orig), 2);
	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/b.pvb", dir),
	    (int)sizeof(path));
	for (size_t i = 0; i < len; i++) {
		memcpy(val, orig, len);
		val[i] ^= 0x01;
		poke(PV_T_META, "epochs", 6, val, len);
		v = vopen();
		ck_assert_int_eq(vault_backup(v, path, NULL, NULL, &m),
		    PV_EINTEGRITY);
		ck_assert_uint_gt(vault_alarms(v), 0);
		vault_close(v);
		ck_assert_int_ne(access(path, F_OK), 0);
	}
	poke(PV_T_META, "epochs", 6, orig, len);
	v = vopen();
	ck_assert_int_eq(vault_backup(v, path, NULL, NULL, &m), PV_OK);
	ck_assert_uint_eq(m.shred_epochs, 2);
	ck_assert_uint_eq(vault_alarms(v), 0);
	vault_close(v);
}
END_TEST

static Suite *
tamper_suite(void)
{
	return tu_suite_core("tamper", setup, tu_teardown, 600,
	    apikey_byte_flips, apikey_swap, apikey_revocation_rollback,
	    apikey_expiry_tamper,
	    hold_byte_flips, retention_moved, consent_not_granted,
	    ring_rollback, wrap_counters_lowered, tombstone_byte_flips,
	    upgrade_old_vault, upgrade_resumes, request_limit_reset,
	    legacy_deletion_counts_ignored, refused_access_not_counted,
	    audit_checkpoint_tamper, epochs_counter_tamper, NULL);
}

int
main(void)
{
	return tu_run(tamper_suite());
}
