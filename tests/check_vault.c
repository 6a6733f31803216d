/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_vault.c: records, envelopes, tokens and the blind index, and the
 * security properties they promise: nothing readable on disk, nothing
 * released from altered or moved bytes, no repeated or ordered ids.
 *
 * White-box: opens the store directly to tamper with records (links pvkms
 * and pvstore itself).  The byte offsets used are those of docs/format.md.
 */
#include <sys/stat.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms.h"		/* white-box: KMS_WRAPPED_LEN */
#include "pv_store.h"
#include "vault.h"
#include "vault_int.h"	/* white-box: the vault's keys (reasons) */
#include "testutil.h"

static char dir[PATH_MAX], keyfile[PATH_MAX + 16], datadir[PATH_MAX + 16];
static struct vault_opts opts;

static void
setup(void)
{
	tu_vault_setup(dir, keyfile, datadir, &opts);
}

#define F(n, v)	{ n, sizeof(n) - 1, v, sizeof(v) - 1 }

/* One record in its own commit; tokens into toks. */
static pv_status
put1(struct vault *v, const struct vault_field *f, size_t n, char *id,
    char (*toks)[VAULT_ID_STRLEN + 1])
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

START_TEST(create_open_close)
{
	struct vault *v = NULL;

	ck_assert_int_eq(vault_open(&opts, &v), PV_ENOVAULT);
	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	vault_close(v);
	v = NULL;
	ck_assert_int_eq(vault_create(&opts, &v), PV_EEXIST);
	ck_assert_ptr_null(v);
	/* The refused create removed nothing of the vault that exists. */
	ck_assert_int_eq(vault_open(&opts, &v), PV_OK);
	vault_close(v);
	vault_close(NULL);
}
END_TEST

START_TEST(put_get_roundtrip)
{
	static char big[PV_VALUE_MAX + 1];
	char id[VAULT_ID_STRLEN + 1], toks[5][VAULT_ID_STRLEN + 1];
	struct vault_field f[5] = {
		F("email", " Ada@B.example"),
		F("phone", "+1 555 0100"),
		F("name", "Ada Lovelace"),
		F("city", "Zürich \xe2\x82\xac \xf0\x9d\x84\x9e"),
		{ "notes", 5, big, PV_VALUE_MAX },
	};
	struct vault *v;

	memset(big, 'x', PV_VALUE_MAX);
	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(put1(v, f, 5, id, toks), PV_OK);
	ck_assert_uint_eq(strlen(id), VAULT_ID_STRLEN);
	ck_assert_int_eq(strncmp(id, "rec_", 4), 0);
	vault_close(v);
	/* Durable across a reopen. */
	ck_assert_int_eq(vault_open(&opts, &v), PV_OK);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(strncmp(toks[i], "tok_", 4), 0);
		tu_expect_value(v, toks[i], f[i].name, f[i].value, f[i].len);
	}
	vault_close(v);
}
END_TEST

START_TEST(bad_records_refused)
{
	static char big[PV_VALUE_MAX + 1];
	struct vault_field many[PV_FIELDS_MAX + 1];
	char names[PV_FIELDS_MAX + 1][16];
	struct {
		struct vault_field	f[2];
		size_t			n;
		pv_status		want;
		const char		*why;	/* the words, exactly */
	} cases[] = {
		{ { F("Email", "a@b.example") }, 1, PV_EFIELD, "field at "
		    "index 0: name must match [a-z][a-z0-9_]{0,63}" },
		{ { F("name", "v"), F("1x", "v") }, 2, PV_EFIELD, "field at "
		    "index 1: name must match [a-z][a-z0-9_]{0,63}" },
		{ { F("a-b", "v") }, 1, PV_EFIELD, NULL },
		{ { F("name", "a"), F("name", "b") }, 2, PV_EFIELD,
		    "field name: named twice" },
		{ { F("email", "not-an-email") }, 1, PV_EVALUE,
		    "field email: not a valid email address" },
		{ { F("email", "a@b") }, 1, PV_EVALUE, NULL },
		{ { F("email", "a@@b.example") }, 1, PV_EVALUE, NULL },
		{ { F("email", "a b@c.example") }, 1, PV_EVALUE, NULL },
		{ { F("email", "a@b..example") }, 1, PV_EVALUE, NULL },
		{ { F("phone", "abc") }, 1, PV_EVALUE,
		    "field phone: not a valid phone number" },
		{ { F("phone", "12+3456") }, 1, PV_EVALUE, NULL },
		{ { F("phone", "+1234567890123456") }, 1, PV_EVALUE, NULL },
		{ { F("name", "") }, 1, PV_EVALUE,
		    "field name: empty; a value has at least 1 byte" },
		{ { F("name", "bad \xc0\xaf utf8") }, 1, PV_EVALUE,
		    "field name: not valid UTF-8" },
		{ { { "name", 4, big, PV_VALUE_MAX + 1 } }, 1, PV_ETOOBIG,
		    "field name: longer than 4096 bytes" },
		{ { F("name", "x") }, 0, PV_EINVAL, "a record needs fields" },
	};
	struct vault_record_in r = { NULL, 0, 0, 0 };
	char why[VAULT_WHY_MAX];

	memset(big, 'y', sizeof(big));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pv_status got;

		r.fields = cases[i].f;
		r.nfields = cases[i].n;
		why[0] = '\0';
		got = vault_record_check(&r, why);
		ck_assert_msg(got == cases[i].want, "case %zu: got %d", i, got);
		if (cases[i].why != NULL)
			ck_assert_str_eq(why, cases[i].why);
		/* Never a byte of a value, and never a name not valid. */
		ck_assert_msg(strstr(why, "not-an-email") == NULL &&
		    strstr(why, "abc") == NULL &&
		    strstr(why, "Email") == NULL &&
		    strstr(why, "1x") == NULL && strstr(why, "yyy") == NULL &&
		    why[0] != '\0', "case %zu: [%s]", i, why);
	}
	for (int i = 0; i <= PV_FIELDS_MAX; i++) {
		(void)snprintf(names[i], sizeof(names[i]), "f%d", i);
		many[i] = (struct vault_field){ names[i], strlen(names[i]),
		    "v", 1 };
	}
	r.fields = many;
	r.nfields = PV_FIELDS_MAX;
	ck_assert_int_eq(vault_record_check(&r, why), PV_OK);
	r.nfields = PV_FIELDS_MAX + 1;
	ck_assert_int_eq(vault_record_check(&r, why), PV_ETOOBIG);
	ck_assert_str_eq(why, "more than 64 fields");
	r.nfields = 1;
	r.retention_days = 36501;
	ck_assert_int_eq(vault_record_check(&r, why), PV_EINVAL);
	ck_assert_str_eq(why, "retention_days must be from 1 to 36500");
}
END_TEST

START_TEST(batch_keeps_valid_records)
{
	char t0[1][VAULT_ID_STRLEN + 1], t1[1][VAULT_ID_STRLEN + 1];
	char t2[1][VAULT_ID_STRLEN + 1];
	struct vault_field ok1[] = { F("name", "first") };
	struct vault_field bad[] = { F("email", "nope") };
	struct vault_field ok2[] = { F("name", "third") };
	struct vault_record_in recs[3] = {
		{ ok1, 1, 0, 0 }, { bad, 1, 0, 0 }, { ok2, 1, 0, 0 },
	};
	struct vault_put_result res[3] = {
		{ .tokens = t0 }, { .tokens = t1 }, { .tokens = t2 },
	};
	struct vault_info info;
	struct vault *v;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(vault_put(v, recs, 3, res), PV_OK);
	ck_assert_int_eq(res[0].status, PV_OK);
	ck_assert_int_eq(res[1].status, PV_EVALUE);
	ck_assert_int_eq(res[2].status, PV_OK);
	tu_expect_value(v, t0[0], "name", "first", 5);
	tu_expect_value(v, t2[0], "name", "third", 5);
	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	ck_assert_uint_eq(info.records, 2);
	ck_assert_uint_eq(info.keys[0].wraps_live, 2);
	ck_assert_uint_eq(info.keys[0].wraps_total, 2);
	free(info.keys);
	/* Nothing valid: nothing written, still PV_OK. */
	ck_assert_int_eq(vault_put(v, &recs[1], 1, &res[1]), PV_OK);
	ck_assert_int_eq(res[1].status, PV_EVALUE);
	ck_assert_int_eq(vault_put(v, recs, VAULT_BATCH_MAX + 1, res),
	    PV_ETOOBIG);
	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	ck_assert_uint_eq(info.records, 2);
	free(info.keys);
	vault_close(v);
}
END_TEST

START_TEST(lookup_normalizes)
{
	char ida[VAULT_ID_STRLEN + 1], idb[VAULT_ID_STRLEN + 1];
	char ta[3][VAULT_ID_STRLEN + 1], tb[2][VAULT_ID_STRLEN + 1];
	struct vault_field a[] = { F("email", " Ada@B.Example "),
	    F("phone", "+1 (555) 010-0"), F("name", "Ada") };
	struct vault_field b[] = { F("email", "ada@b.example"),
	    F("name", "Other") };
	struct vault_match *m;
	struct vault *v;
	size_t n;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(put1(v, a, 3, ida, ta), PV_OK);
	ck_assert_int_eq(put1(v, b, 2, idb, tb), PV_OK);
	ck_assert_int_eq(vault_lookup(v, "email", 5, "ADA@b.example", 13, &m,
	    &n), PV_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(m[0].id, ida);	/* oldest first */
	ck_assert_str_eq(m[0].token, ta[0]);
	ck_assert_str_eq(m[1].id, idb);
	ck_assert_str_eq(m[1].token, tb[0]);
	free(m);
	ck_assert_int_eq(vault_lookup(v, "phone", 5, "+1-555-0100", 11, &m,
	    &n), PV_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(m[0].token, ta[1]);
	free(m);
	/* No '+' is another number. */
	ck_assert_int_eq(vault_lookup(v, "phone", 5, "15550100", 8, &m, &n),
	    PV_OK);
	ck_assert_uint_eq(n, 0);
	free(m);
	m = NULL;
	ck_assert_int_eq(vault_lookup(v, "name", 4, "Ada", 3, &m, &n),
	    PV_ENOTINDEXED);
	ck_assert_int_eq(vault_lookup(v, "Email", 5, "a@b.example", 11, &m,
	    &n), PV_EFIELD);
	ck_assert_int_eq(vault_lookup(v, "email", 5, "nope", 4, &m, &n),
	    PV_EVALUE);
	ck_assert_ptr_null(m);
	vault_close(v);
}
END_TEST

START_TEST(no_plaintext_on_disk)
{
	static const char *secrets[] = {
		"zq-unique-name-7341", "ada.unique.4411@example.org",
		"+44 20 7946 0958", "+442079460958", "42 Unique Lane, Qx 9",
	};
	struct vault_field f[] = {
		F("name", "zq-unique-name-7341"),
		F("email", "Ada.Unique.4411@Example.org"),
		F("phone", "+44 20 7946 0958"),
		F("address", "42 Unique Lane, Qx 9"),
	};
	char toks[4][VAULT_ID_STRLEN + 1];
	struct vault *v;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(put1(v, f, 4, NULL, toks), PV_OK);
	vault_close(v);
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		ck_assert_msg(!tu_dir_contains(datadir, secrets[i],
		    strlen(secrets[i])), "plaintext %zu found on disk", i);
	/* A positive control: the search does find what is there. */
	ck_assert(tu_dir_contains(datadir, "records", 7));
}
END_TEST

/* Locate field i of record seq; returns the offset of its ciphertext. */
struct loc {
	size_t	entry, nonce, ct, ctlen, tag, end;
};

static void
locate(const uint8_t *rec, size_t len, size_t field, struct loc *l)
{
	size_t p = 92, nf = (size_t)rec[90] << 8 | rec[91];

	ck_assert_uint_lt(field, nf);
	for (size_t i = 0; i <= field; i++) {
		l->entry = p;
		p += 1 + (size_t)rec[p];
		p += 1 + ((rec[p] & 1) ? 32u : 0u);
		p += 8;
		l->ctlen = (size_t)rec[p] << 8 | rec[p + 1];
		p += 2;
		l->nonce = p;
		l->ct = p + 12;
		l->tag = l->ct + l->ctlen;
		p = l->end = l->tag + 16;
	}
	ck_assert_uint_le(p, len);
}

/* Read record seq's value into buf. */
static size_t
rec_read(struct pv_store *s, uint64_t seq, uint8_t *buf, size_t cap)
{
	uint8_t key[8];
	struct pv_txn *t;
	const void *v;
	size_t vl;

	pv_put_u64(key, seq);
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(pv_get(t, PV_T_RECORDS, key, 8, &v, &vl), PV_OK);
	ck_assert_uint_le(vl, cap);
	memcpy(buf, v, vl);
	pv_txn_abort(t);
	return vl;
}

static void
rec_write(struct pv_store *s, uint64_t seq, const uint8_t *buf, size_t len)
{
	uint8_t key[8];
	struct pv_txn *t;

	pv_put_u64(key, seq);
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(pv_put(t, PV_T_RECORDS, key, 8, buf, len, 0), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
}

START_TEST(tampered_bytes_fail)
{
	struct vault_field f[] = { F("name", "Ada Lovelace"),
	    F("email", "ada@example.org") };
	char toks[2][VAULT_ID_STRLEN + 1];
	struct pv_store_opts so = { 0, 0, 0 };
	uint8_t orig[1024], buf[1024];
	struct pv_store *s;
	struct vault *v;
	struct loc l;
	size_t len;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(put1(v, f, 2, NULL, toks), PV_OK);
	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	len = rec_read(s, 1, orig, sizeof(orig));
	locate(orig, len, 0, &l);
	/* Every byte of nonce, ciphertext and tag, and of the DEK. */
	for (size_t i = l.nonce; i < l.end; i++) {
		memcpy(buf, orig, len);
		buf[i] ^= 0x01;
		rec_write(s, 1, buf, len);
		ck_assert_msg(tu_get_status(v, toks[0]) == PV_EINTEGRITY,
		    "byte %zu", i);
	}
	for (size_t i = 14; i < 14 + KMS_WRAPPED_LEN; i++) {
		memcpy(buf, orig, len);
		buf[i] ^= 0x80;
		rec_write(s, 1, buf, len);
		ck_assert_msg(tu_get_status(v, toks[1]) == PV_EINTEGRITY,
		    "dek byte %zu", i);
	}
	/* The record's check value is bound into every AAD. */
	memcpy(buf, orig, len);
	buf[2] ^= 0x01;
	rec_write(s, 1, buf, len);
	ck_assert_int_eq(tu_get_status(v, toks[0]), PV_EINTEGRITY);
	/* A KEK version that does not exist. */
	memcpy(buf, orig, len);
	buf[13] ^= 0x02;
	rec_write(s, 1, buf, len);
	ck_assert_int_eq(tu_get_status(v, toks[0]), PV_EKEYSTATE);
	/* Truncations never parse into a value. */
	for (size_t cut = 1; cut < len; cut += 7) {
		rec_write(s, 1, orig, len - cut);
		ck_assert_int_ne(tu_get_status(v, toks[1]), PV_OK);
	}
	/* Restored, it reads again: the failures were the tampering. */
	rec_write(s, 1, orig, len);
	tu_expect_value(v, toks[0], "name", "Ada Lovelace", 12);
	pv_store_close(s);
	vault_close(v);
}
END_TEST

START_TEST(moved_ciphertext_fails)
{
	struct vault_field a[] = { F("name", "Alice Aaaa"),
	    F("city", "Zzzzzzzzzz") };
	struct vault_field b[] = { F("name", "Bobby Bbbb"),
	    F("city", "Yyyyyyyyyy") };
	char ta[2][VAULT_ID_STRLEN + 1], tb[2][VAULT_ID_STRLEN + 1];
	struct pv_store_opts so = { 0, 0, 0 };
	uint8_t ra[1024], rb[1024], buf[1024];
	struct pv_store *s;
	struct vault *v;
	struct loc la0, la1, lb0;
	size_t lena, lenb;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(put1(v, a, 2, NULL, ta), PV_OK);
	ck_assert_int_eq(put1(v, b, 2, NULL, tb), PV_OK);
	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	lena = rec_read(s, 1, ra, sizeof(ra));
	lenb = rec_read(s, 2, rb, sizeof(rb));
	locate(ra, lena, 0, &la0);
	locate(ra, lena, 1, &la1);
	locate(rb, lenb, 0, &lb0);

	/* A's name ciphertext into B's name slot: another record's AAD. */
	memcpy(buf, rb, lenb);
	memcpy(buf + lb0.nonce, ra + la0.nonce, la0.end - la0.nonce);
	rec_write(s, 2, buf, lenb);
	ck_assert_int_eq(tu_get_status(v, tb[0]), PV_EINTEGRITY);
	rec_write(s, 2, rb, lenb);

	/* A's city ciphertext into A's name slot: another field's AAD. */
	memcpy(buf, ra, lena);
	memcpy(buf + la0.nonce, ra + la1.nonce, la1.end - la1.nonce);
	rec_write(s, 1, buf, lena);
	ck_assert_int_eq(tu_get_status(v, ta[0]), PV_EINTEGRITY);

	/* A's whole record under B's key: bound to its record id. */
	rec_write(s, 2, ra, lena);
	ck_assert_int_ne(tu_get_status(v, tb[0]), PV_OK);
	ck_assert_int_ne(tu_get_status(v, tb[1]), PV_OK);
	pv_store_close(s);
	vault_close(v);
}
END_TEST

/* Rewrite a token entry's record seq (token table: rec seq first). */
static void
token_repoint(struct pv_store *s, uint64_t tok, uint64_t rec)
{
	uint8_t key[8], buf[128];
	struct pv_txn *t;
	const void *v;
	size_t vl;

	pv_put_u64(key, tok);
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(pv_get(t, PV_T_TOKENS, key, 8, &v, &vl), PV_OK);
	ck_assert_uint_le(vl, sizeof(buf));
	memcpy(buf, v, vl);
	pv_put_u64(buf, rec);
	ck_assert_int_eq(pv_put(t, PV_T_TOKENS, key, 8, buf, vl, 0), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
}

START_TEST(swapped_tokens_fail)
{
	struct vault_field a[] = { F("name", "Alice Aaaa") };
	struct vault_field b[] = { F("name", "Bobby Bbbb") };
	char ta[1][VAULT_ID_STRLEN + 1], tb[1][VAULT_ID_STRLEN + 1];
	struct pv_store_opts so = { 0, 0, 0 };
	uint8_t ra[512], rb[512];
	struct pv_store *s;
	struct vault *v;
	struct loc la, lb;
	size_t lena, lenb;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(put1(v, a, 1, NULL, ta), PV_OK);
	ck_assert_int_eq(put1(v, b, 1, NULL, tb), PV_OK);
	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	lena = rec_read(s, 1, ra, sizeof(ra));
	lenb = rec_read(s, 2, rb, sizeof(rb));
	locate(ra, lena, 0, &la);
	locate(rb, lenb, 0, &lb);
	/*
	 * Re-point Alice's token (seq 1) at Bob's record and Bob's field at
	 * token 1, consistently on both sides: the token number is in the
	 * field's AAD, so Bob's value is not released for Alice's token.
	 */
	token_repoint(s, 1, 2);
	token_repoint(s, 2, 1);
	pv_put_u64(ra + la.entry + 1 + 4 + 1, 2);
	pv_put_u64(rb + lb.entry + 1 + 4 + 1, 1);
	rec_write(s, 1, ra, lena);
	rec_write(s, 2, rb, lenb);
	ck_assert_int_eq(tu_get_status(v, ta[0]), PV_EINTEGRITY);
	ck_assert_int_eq(tu_get_status(v, tb[0]), PV_EINTEGRITY);
	pv_store_close(s);
	vault_close(v);
}
END_TEST

/* Rename a token entry's field (token table: rec, check, name length). */
static void
token_rename(struct pv_store *s, uint64_t tok, const char *name)
{
	uint8_t key[8], buf[128];
	struct pv_txn *t;
	const void *v;
	size_t vl;

	pv_put_u64(key, tok);
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(pv_get(t, PV_T_TOKENS, key, 8, &v, &vl), PV_OK);
	ck_assert_uint_eq(vl, 17 + strlen(name));
	memcpy(buf, v, vl);
	memcpy(buf + 17, name, strlen(name));
	ck_assert_int_eq(pv_put(t, PV_T_TOKENS, key, 8, buf, vl, 0), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
}

START_TEST(renamed_field_fails)
{
	struct vault_field f[] = { F("name", "Ada Lovelace"),
	    F("city", "London") };
	const struct vault_event ev = { .actor = "test", .action = "access",
	    .purpose = -1 };
	char id[VAULT_ID_STRLEN + 1], toks[2][VAULT_ID_STRLEN + 1];
	struct pv_store_opts so = { 0, 0, 0 };
	struct vault_record_view *view = NULL;
	uint8_t orig[1024], buf[1024];
	struct pv_store *s;
	struct vault *v;
	struct loc l0, l1;
	uint64_t retry = 0;
	size_t len;
	int logged;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(put1(v, f, 2, id, toks), PV_OK);
	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	len = rec_read(s, 1, orig, sizeof(orig));
	locate(orig, len, 0, &l0);
	locate(orig, len, 1, &l1);
	/*
	 * The same record, its two fields' names swapped on disk, in the
	 * record and consistently in the token table: each ciphertext now
	 * stands under the other field's name.  Only the field name in the
	 * AAD tells, and nothing is released.
	 */
	memcpy(buf, orig, len);
	memcpy(buf + l0.entry + 1, "city", 4);
	memcpy(buf + l1.entry + 1, "name", 4);
	rec_write(s, 1, buf, len);
	token_rename(s, 1, "city");
	token_rename(s, 2, "name");
	ck_assert_int_eq(tu_get_status(v, toks[0]), PV_EINTEGRITY);
	ck_assert_int_eq(tu_get_status(v, toks[1]), PV_EINTEGRITY);
	ck_assert_int_eq(vault_record_access(v, &ev, id, strlen(id), &view,
	    &retry, &logged), PV_EINTEGRITY);
	ck_assert_ptr_null(view);
	/* Restored, it reads again: the failures were the renaming. */
	rec_write(s, 1, orig, len);
	token_rename(s, 1, "name");
	token_rename(s, 2, "city");
	tu_expect_value(v, toks[0], "name", "Ada Lovelace", 12);
	tu_expect_value(v, toks[1], "city", "London", 6);
	pv_store_close(s);
	vault_close(v);
}
END_TEST

START_TEST(header_edits_fail)
{
	struct vault_field f[] = { F("name", "Ada") };
	char toks[1][VAULT_ID_STRLEN + 1];
	struct pv_store_opts so = { 0, 0, 0 };
	static const size_t offs[] = { 1, 74, 81, 82, 89 };
	uint8_t orig[512], buf[512];
	struct pv_store *s;
	struct vault *v;
	size_t len;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(put1(v, f, 1, NULL, toks), PV_OK);
	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	len = rec_read(s, 1, orig, sizeof(orig));
	/* Consent flags, created and retain-until are bound to the DEK. */
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		memcpy(buf, orig, len);
		buf[offs[i]] ^= 0x01;
		rec_write(s, 1, buf, len);
		ck_assert_msg(tu_get_status(v, toks[0]) == PV_EINTEGRITY,
		    "header byte %zu", offs[i]);
	}
	rec_write(s, 1, orig, len);
	tu_expect_value(v, toks[0], "name", "Ada", 3);
	pv_store_close(s);
	vault_close(v);
}
END_TEST

START_TEST(swapped_index_entries_fail)
{
	struct vault_field a[] = { F("email", "alice@example.org") };
	struct vault_field b[] = { F("email", "bob@example.org") };
	char ta[1][VAULT_ID_STRLEN + 1], tb[1][VAULT_ID_STRLEN + 1];
	uint8_t ra[512], rb[512], da[32], db[32], va[32], vb[32];
	struct pv_store_opts so = { 0, 0, 0 };
	struct vault_match *m = NULL;
	struct pv_store *s;
	struct pv_txn *t;
	struct vault *v;
	struct loc la, lb;
	const void *val;
	size_t lena, lenb, vl, n;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(put1(v, a, 1, NULL, ta), PV_OK);
	ck_assert_int_eq(put1(v, b, 1, NULL, tb), PV_OK);
	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	lena = rec_read(s, 1, ra, sizeof(ra));
	lenb = rec_read(s, 2, rb, sizeof(rb));
	locate(ra, lena, 0, &la);
	locate(rb, lenb, 0, &lb);
	/* The digest follows name length, name ("email") and flags. */
	memcpy(da, ra + la.entry + 1 + 5 + 1, 32);
	memcpy(db, rb + lb.entry + 1 + 5 + 1, 32);
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(pv_get(t, PV_T_INDEX, da, 32, &val, &vl), PV_OK);
	ck_assert_uint_eq(vl, sizeof(va));
	memcpy(va, val, vl);
	ck_assert_int_eq(pv_get(t, PV_T_INDEX, db, 32, &val, &vl), PV_OK);
	memcpy(vb, val, vl);
	ck_assert_int_eq(pv_del(t, PV_T_INDEX, da, 32, va, 32), PV_OK);
	ck_assert_int_eq(pv_del(t, PV_T_INDEX, db, 32, vb, 32), PV_OK);
	ck_assert_int_eq(pv_put(t, PV_T_INDEX, da, 32, vb, 32, 0), PV_OK);
	ck_assert_int_eq(pv_put(t, PV_T_INDEX, db, 32, va, 32, 0), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
	/* Alice's email must not find Bob's record. */
	ck_assert_int_eq(vault_lookup(v, "email", 5, "alice@example.org", 17,
	    &m, &n), PV_EINTEGRITY);
	ck_assert_ptr_null(m);
	pv_store_close(s);
	vault_close(v);
}
END_TEST

static unsigned char *
slurp(const char *path, size_t *len)
{
	unsigned char *buf;
	struct stat st;
	FILE *f;

	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_ptr_nonnull(buf = malloc((size_t)st.st_size + 1));
	ck_assert_ptr_nonnull(f = fopen(path, "rb"));
	*len = fread(buf, 1, (size_t)st.st_size, f);
	(void)fclose(f);
	return buf;
}

START_TEST(wrong_root_key_changes_nothing)
{
	struct vault_field f[] = { F("name", "Ada") };
	char toks[1][VAULT_ID_STRLEN + 1], other[PATH_MAX + 16];
	char data[PATH_MAX + 32];
	unsigned char *before, *after;
	size_t lb, la;
	struct vault *v = NULL;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(put1(v, f, 1, NULL, toks), PV_OK);
	vault_close(v);
	v = NULL;
	(void)snprintf(data, sizeof(data), "%s/data.mdb", datadir);
	before = slurp(data, &lb);
	(void)snprintf(other, sizeof(other), "%s/other.key", dir);
	ck_assert_int_eq(vault_key_file_create(other), PV_OK);
	opts.unlock.key_file = other;
	ck_assert_int_eq(vault_open(&opts, &v), PV_EBADKEY);
	ck_assert_ptr_null(v);
	after = slurp(data, &la);
	ck_assert_uint_eq(la, lb);
	ck_assert_mem_eq(before, after, lb);
	free(before);
	free(after);
}
END_TEST

START_TEST(foreign_and_forged_tokens)
{
	struct vault_field f[] = { F("name", "Ada") };
	char id[VAULT_ID_STRLEN + 1], toks[1][VAULT_ID_STRLEN + 1];
	char other_tok[1][VAULT_ID_STRLEN + 1], dir2[PATH_MAX + 16];
	char key2[PATH_MAX + 16], forged[VAULT_ID_STRLEN + 1];
	struct vault_opts o2;
	struct vault *v, *v2;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(put1(v, f, 1, id, toks), PV_OK);
	/* A second vault's token means nothing here. */
	(void)snprintf(dir2, sizeof(dir2), "%s/data2", dir);
	(void)snprintf(key2, sizeof(key2), "%s/key2", dir);
	ck_assert_int_eq(vault_key_file_create(key2), PV_OK);
	o2 = opts;
	o2.data_dir = dir2;
	o2.unlock.key_file = key2;
	ck_assert_int_eq(vault_create(&o2, &v2), PV_OK);
	ck_assert_int_eq(put1(v2, f, 1, NULL, other_tok), PV_OK);
	ck_assert_int_eq(tu_get_status(v, other_tok[0]), PV_ENOTFOUND);
	vault_close(v2);
	/* A record id is not a token. */
	ck_assert_int_eq(tu_get_status(v, id), PV_ETOKEN);
	/* Malformed. */
	ck_assert_int_eq(tu_get_status(v, "tok_"), PV_ETOKEN);
	ck_assert_int_eq(tu_get_status(v, "tok_AAAAAAAAAAAAAAAAAAAAA+"),
	    PV_ETOKEN);
	ck_assert_int_eq(tu_get_status(v, "tok_AAAAAAAAAAAAAAAAAAAAAB"),
	    PV_ETOKEN);	/* non-canonical last character */
	/* Forged: every other value of one character. */
	memcpy(forged, toks[0], sizeof(forged));
	for (const char *c = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"; *c; c++) {
		if (*c == toks[0][10])
			continue;
		forged[10] = *c;
		ck_assert_int_eq(tu_get_status(v, forged), PV_ENOTFOUND);
	}
	tu_expect_value(v, toks[0], "name", "Ada", 3);
	vault_close(v);
}
END_TEST

static int
cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, VAULT_ID_STRLEN + 1);
}

START_TEST(ids_unique_and_unordered)
{
	enum { N = 100000, BATCH = 1000 };
	char (*ids)[VAULT_ID_STRLEN + 1], (*toks)[VAULT_ID_STRLEN + 1];
	struct vault_field f[] = { F("n", "v") };
	struct vault_record_in *recs;
	struct vault_put_result *res;
	size_t ascending = 0;
	struct vault *v;

	ck_assert_ptr_nonnull(ids = calloc(N, sizeof(*ids)));
	ck_assert_ptr_nonnull(toks = calloc(N, sizeof(*toks)));
	ck_assert_ptr_nonnull(recs = calloc(BATCH, sizeof(*recs)));
	ck_assert_ptr_nonnull(res = calloc(BATCH, sizeof(*res)));
	opts.map_size = 1ull << 30;
	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	for (size_t i = 0; i < N; i += BATCH) {
		for (size_t j = 0; j < BATCH; j++) {
			recs[j] = (struct vault_record_in){ f, 1, 0, 0 };
			res[j].tokens = &toks[i + j];
		}
		ck_assert_int_eq(vault_put(v, recs, BATCH, res), PV_OK);
		for (size_t j = 0; j < BATCH; j++) {
			ck_assert_int_eq(res[j].status, PV_OK);
			memcpy(ids[i + j], res[j].id, sizeof(res[j].id));
		}
	}
	/* Creation order does not show: about half go up, half down. */
	for (size_t i = 1; i < N; i++)
		if (strcmp(ids[i], ids[i - 1]) > 0)
			ascending++;
	ck_assert_uint_gt(ascending, N * 45 / 100);
	ck_assert_uint_lt(ascending, N * 55 / 100);
	qsort(ids, N, sizeof(*ids), cmp_id);
	qsort(toks, N, sizeof(*toks), cmp_id);
	for (size_t i = 1; i < N; i++) {
		ck_assert_str_ne(ids[i], ids[i - 1]);
		ck_assert_str_ne(toks[i], toks[i - 1]);
	}
	/* A sample still resolves. */
	tu_expect_value(v, toks[N / 2], "n", "v", 1);
	vault_close(v);
	free(ids);
	free(toks);
	free(recs);
	free(res);
}
END_TEST

START_TEST(map_full_changes_nothing)
{
	static char big[PV_VALUE_MAX];
	struct vault_field f[] = { { "blob", 4, big, sizeof(big) } };
	char first[1][VAULT_ID_STRLEN + 1];
	struct vault_record_in recs[64];
	struct vault_put_result res[64];
	char toks[64][VAULT_ID_STRLEN + 1];
	struct vault_info before, after;
	struct vault *v;
	pv_status rc = PV_OK;

	memset(big, 'q', sizeof(big));
	opts.map_size = 1u << 20;
	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	ck_assert_int_eq(put1(v, f, 1, NULL, first), PV_OK);
	for (int i = 0; i < 64; i++) {
		recs[i] = (struct vault_record_in){ f, 1, 0, 0 };
		res[i].tokens = &toks[i];
	}
	for (int round = 0; round < 100 && rc == PV_OK; round++) {
		ck_assert_int_eq(vault_info(v, &before), PV_OK);
		free(before.keys);
		rc = vault_put(v, recs, 64, res);
	}
	ck_assert_int_eq(rc, PV_EFULL);
	for (int i = 0; i < 64; i++) {
		ck_assert_int_eq(res[i].status, PV_EFULL);
		ck_assert_str_eq(res[i].id, "");
	}
	ck_assert_int_eq(vault_info(v, &after), PV_OK);
	ck_assert_uint_eq(after.records, before.records);
	ck_assert_uint_eq(after.keys[0].wraps_live, before.records);
	free(after.keys);
	tu_expect_value(v, first[0], "blob", big, sizeof(big));
	vault_close(v);
}
END_TEST

struct worker {
	struct vault	*v;
	int		 id;
	int		 ok;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	char val[64], toks[1][VAULT_ID_STRLEN + 1];
	struct vault_field f = { "name", 4, val, 0 };
	struct vault_value *got;

	w->ok = 1;
	for (int i = 0; i < 100; i++) {
		f.len = (size_t)snprintf(val, sizeof(val), "w%d-r%d", w->id, i);
		if (put1(w->v, &f, 1, NULL, toks) != PV_OK ||
		    vault_get(w->v, toks[0], strlen(toks[0]), &got) != PV_OK) {
			w->ok = 0;
			return NULL;
		}
		if (got->len != f.len || memcmp(got->value, val, f.len) != 0)
			w->ok = 0;
		vault_value_free(got);
	}
	return NULL;
}

START_TEST(threads_share_a_vault)
{
	struct worker w[4];
	pthread_t th[4];
	struct vault_info info;
	struct vault *v;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ v, i, 0 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, worker_run,
		    &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_msg(w[i].ok, "worker %d saw a wrong value", i);
	}
	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	ck_assert_uint_eq(info.records, 400);
	ck_assert_uint_eq(info.keys[0].wraps_live, 400);
	free(info.keys);
	vault_close(v);
}
END_TEST

struct filler {
	struct vault	*v;
	int		 ok_calls, full_calls, mixed;
	char		 toks[32][1][VAULT_ID_STRLEN + 1];
	int		 nok;
};

static void *
filler_run(void *arg)
{
	static char big[PV_VALUE_MAX];
	struct filler *fl = arg;
	struct vault_field f = { "blob", 4, big, sizeof(big) };
	struct vault_record_in recs[8];
	struct vault_put_result res[8];
	char toks[8][1][VAULT_ID_STRLEN + 1];

	memset(big, 'z', sizeof(big));
	for (int round = 0; round < 32; round++) {
		pv_status rc;
		int ok = 0, full = 0;

		for (int i = 0; i < 8; i++) {
			recs[i] = (struct vault_record_in){ &f, 1, 0, 0 };
			res[i].tokens = toks[i];
		}
		rc = vault_put(fl->v, recs, 8, res);
		for (int i = 0; i < 8; i++) {
			ok += res[i].status == PV_OK;
			full += res[i].status == PV_EFULL;
		}
		/* A commit holds a call whole: all stored, or none. */
		if ((rc == PV_OK && ok != 8) || (rc != PV_OK && full != 8))
			fl->mixed++;
		if (rc == PV_OK) {
			fl->ok_calls++;
			if (fl->nok < 32)
				memcpy(fl->toks[fl->nok++], toks[0],
				    sizeof(toks[0]));
		} else if (rc == PV_EFULL)
			fl->full_calls++;
	}
	return NULL;
}

START_TEST(failed_group_commit_fails_every_job)
{
	struct filler fl[6];
	pthread_t th[6];
	struct vault_info info;
	struct vault *v;
	uint64_t ok_records = 0, full = 0;

	opts.map_size = 2u << 20;
	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	for (int i = 0; i < 6; i++) {
		memset(&fl[i], 0, sizeof(fl[i]));
		fl[i].v = v;
		ck_assert_int_eq(pthread_create(&th[i], NULL, filler_run,
		    &fl[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_int_eq(fl[i].mixed, 0);
		ok_records += (uint64_t)fl[i].ok_calls * 8;
		full += (uint64_t)fl[i].full_calls;
	}
	/* The map filled, commits failed, and exactly the rest is stored. */
	ck_assert_uint_gt(full, 0);
	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	ck_assert_uint_eq(info.records, ok_records);
	free(info.keys);
	for (int i = 0; i < 6; i++)
		for (int j = 0; j < fl[i].nok; j++)
			ck_assert_int_eq(tu_get_status(v, fl[i].toks[j][0]),
			    PV_OK);
	ck_assert_uint_gt(vault_commits(v), 0);
	vault_close(v);
}
END_TEST

/*
 * Record numbers never wrap: with the counter past 2^63 a put fails
 * PV_EFULL, stores nothing and hands out no id.
 */
START_TEST(numbers_exhausted)
{
	struct pv_store_opts so = { 0, 0, 0 };
	struct vault_field f[] = { F("name", "last one") };
	struct vault_record_in r = { f, 1, 0, 0 };
	char toks[1][VAULT_ID_STRLEN + 1];
	struct vault_put_result res = { .tokens = toks };
	struct vault_info info;
	struct pv_store *s;
	struct pv_txn *t;
	struct vault *v;
	uint8_t big[8];

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	vault_close(v);
	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	pv_put_u64(big, (UINT64_MAX >> 1) + 2);
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(pv_put(t, PV_T_META, "next_rec", 8, big, sizeof(big),
	    0), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
	pv_store_close(s);

	ck_assert_int_eq(vault_open(&opts, &v), PV_OK);
	memset(res.id, 'x', sizeof(res.id));
	ck_assert_int_eq(vault_put(v, &r, 1, &res), PV_EFULL);
	ck_assert_int_eq(res.status, PV_EFULL);
	ck_assert_str_eq(res.id, "");
	ck_assert_int_eq(vault_info(v, &info), PV_OK);
	free(info.keys);
	ck_assert_uint_eq(info.records, 0);
	vault_close(v);
}
END_TEST

START_TEST(two_handles_one_directory)
{
	struct vault_field f[] = { F("name", "shared") };
	char toks[1][VAULT_ID_STRLEN + 1];
	struct vault *a, *b;
	struct vault_info info;

	/* As the CLI and a server would: two opens of one directory. */
	ck_assert_int_eq(vault_create(&opts, &a), PV_OK);
	ck_assert_int_eq(vault_open(&opts, &b), PV_OK);
	ck_assert_int_eq(put1(a, f, 1, NULL, toks), PV_OK);
	tu_expect_value(b, toks[0], "name", "shared", 6);
	ck_assert_int_eq(put1(b, f, 1, NULL, toks), PV_OK);
	tu_expect_value(a, toks[0], "name", "shared", 6);
	/*
	 * Each handle leases its own numbers: a's second lease holds one it
	 * has not used when b stores a later one, so a's next record and
	 * token go in before b's, not after.
	 */
	ck_assert_int_eq(put1(a, f, 1, NULL, toks), PV_OK);
	ck_assert_int_eq(put1(b, f, 1, NULL, toks), PV_OK);
	ck_assert_int_eq(put1(a, f, 1, NULL, toks), PV_OK);
	tu_expect_value(b, toks[0], "name", "shared", 6);
	ck_assert_int_eq(vault_info(a, &info), PV_OK);
	ck_assert_uint_eq(info.records, 5);
	free(info.keys);
	vault_close(b);
	vault_close(a);
}
END_TEST

/*
 * Reasons at rest (docs/format.md).  White-box: with the vault's own keys
 * (vault_int.h), rewrite the newest tombstone and its shred event so that
 * their row MAC and chain hash verify: in the form written before reasons
 * were sealed (plain text; tombstone flags 0, event version 1), or with a
 * sealed reason's ciphertext changed (forge).
 */
#define TS_REASON_OFF	31
#define EV_STRINGS_OFF	12
#define RS_BUF		1024

static void
reason_rewrite(struct vault *v, uint64_t aseq, const char *plain, int forge)
{
	uint8_t key[8], ts[RS_BUF], ev[RS_BUF], nev[RS_BUF], h[PV_HMAC_LEN];
	uint8_t prev[PV_HMAC_LEN], sk[8];
	const uint8_t *k, *val;
	struct pv_part parts[3];
	struct pv_cursor *c;
	struct pv_txn *t;
	size_t kl, vl, tl = 0, el, pos, sl, pl = strlen(plain), nl;
	pv_status rc;

	ck_assert_int_eq(vault_txn_begin(v, 1, &t), PV_OK);
	/* The newest tombstone, without its MAC. */
	ck_assert_int_eq(pv_cursor_open(t, PV_T_RECORDS, &c), PV_OK);
	for (rc = pv_cursor_seek(c, NULL, 0, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl); rc == PV_OK; rc = pv_cursor_next(c, 0,
	    (const void **)&k, &kl, (const void **)&val, &vl))
		if (vl > TS_REASON_OFF + VAULT_ROW_MAC_LEN && val[0] == 2) {
			ck_assert_uint_le(vl, sizeof(ts));
			memcpy(key, k, sizeof(key));
			tl = vl - VAULT_ROW_MAC_LEN;
			memcpy(ts, val, tl);
		}
	pv_cursor_close(c);
	ck_assert_uint_gt(tl, 0);
	ck_assert_uint_eq(ts[1], 1);		/* sealed */
	ck_assert_uint_eq(ts[30], pl + KMS_SEAL_OVERHEAD);
	ck_assert(memmem(ts, tl, plain, pl) == NULL);
	if (forge)
		ts[TS_REASON_OFF + PV_GCM_NONCE_LEN] ^= 0x01;
	else {
		ts[1] = 0;
		ts[30] = (uint8_t)pl;
		memcpy(ts + TS_REASON_OFF, plain, pl);
		tl = TS_REASON_OFF + pl;
	}
	ck_assert_int_eq(vault_row_mac(v, PV_T_RECORDS, key, sizeof(key), ts,
	    tl, ts + tl), PV_OK);
	ck_assert_int_eq(pv_put(t, PV_T_RECORDS, key, sizeof(key), ts,
	    tl + VAULT_ROW_MAC_LEN, 0), PV_OK);

	/* The shred's event, the newest, and the hash before it. */
	ck_assert_int_eq(pv_cursor_open(t, PV_T_AUDIT, &c), PV_OK);
	ck_assert_int_eq(pv_cursor_last(c, (const void **)&k, &kl,
	    (const void **)&val, &vl), PV_OK);
	ck_assert_uint_eq(pv_get_u64(k), aseq);
	pv_cursor_close(c);
	memset(prev, 0, sizeof(prev));
	if (aseq > 1) {
		pv_put_u64(sk, aseq - 1);
		ck_assert_int_eq(pv_get(t, PV_T_AUDIT, sk, sizeof(sk),
		    (const void **)&val, &vl), PV_OK);
		memcpy(prev, val + vl - PV_HMAC_LEN, PV_HMAC_LEN);
	}
	pv_put_u64(sk, aseq);
	ck_assert_int_eq(pv_get(t, PV_T_AUDIT, sk, sizeof(sk),
	    (const void **)&val, &vl), PV_OK);
	ck_assert_uint_le(vl, sizeof(ev));
	el = vl - PV_HMAC_LEN;
	memcpy(ev, val, el);
	ck_assert_uint_eq(ev[0], 4);	/* sealed, items, request id */
	/*
	 * A shred here has no items and no request id: version 1 ends
	 * before the item count.
	 */
	ck_assert_uint_eq(ev[el - 3], 0);
	ck_assert_uint_eq(ev[el - 2], 0);
	ck_assert_uint_eq(ev[el - 1], 0);
	ck_assert(memmem(ev, el, plain, pl) == NULL);
	pos = EV_STRINGS_OFF;
	for (int i = 0; i < 3; i++)		/* actor, action, code */
		pos += 1 + ev[pos];
	sl = ev[pos];
	ck_assert_uint_eq(sl, pl + KMS_SEAL_OVERHEAD);
	if (forge) {
		memcpy(nev, ev, el);
		nev[pos + 1 + PV_GCM_NONCE_LEN] ^= 0x01;
		nl = el;
	} else {
		memcpy(nev, ev, pos);
		nev[0] = 1;
		nev[pos] = (uint8_t)pl;
		memcpy(nev + pos + 1, plain, pl);
		memcpy(nev + pos + 1 + pl, ev + pos + 1 + sl, el - pos - 1 -
		    sl - 3);
		nl = el - sl + pl - 3;
	}
	parts[0] = (struct pv_part){ prev, sizeof(prev) };
	parts[1] = (struct pv_part){ sk, sizeof(sk) };
	parts[2] = (struct pv_part){ nev, nl };
	ck_assert_int_eq(kms_keyed_hash(v->kms, KMS_H_AUDIT, h, parts, 3),
	    PV_OK);
	memcpy(nev + nl, h, sizeof(h));
	ck_assert_int_eq(pv_put(t, PV_T_AUDIT, sk, sizeof(sk), nev,
	    nl + sizeof(h), 0), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
}

/* Shred id with reason; its receipt. */
static void
reason_shred(struct vault *v, const char *id, const char *reason,
    struct vault_receipt *r, pv_status want)
{
	const char *ids[1] = { id };
	size_t lens[1] = { VAULT_ID_STRLEN };
	pv_status st = PV_OK;

	ck_assert_int_eq(vault_shred(v, ids, lens, 1, reason, r, &st), want);
	if (want == PV_OK)
		ck_assert_int_eq(st, PV_OK);
}

/*
 * Events and tombstones of vaults made before reasons were sealed still
 * read, receipt and signature unchanged; a sealed reason that does not
 * open (its MAC and chain hash recomputed) is an integrity error and an
 * alarm, never shown, while audit verify (over the stored bytes) passes.
 */
START_TEST(reasons_old_and_forged)
{
	static const struct vault_field f[] = {
		F("email", "reasons@example.org") };
	char id[2][VAULT_ID_STRLEN + 1], toks[1][VAULT_ID_STRLEN + 1];
	struct vault_audit_entry *e = NULL;
	struct vault_receipt first, r;
	struct vault *v = NULL;
	uint64_t count, bad, alarms, last = 0;
	size_t n = 0;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	vault_set_actor(v, "test");
	ck_assert_int_eq(put1(v, f, 1, id[0], toks), PV_OK);
	ck_assert_int_eq(put1(v, f, 1, id[1], toks), PV_OK);

	/* Old, plain text: read, receipt and signature as before. */
	reason_shred(v, id[0], "old reason 9301", &first, PV_OK);
	ck_assert_str_eq(first.reason, "old reason 9301");
	reason_rewrite(v, first.audit_seq, "old reason 9301", 0);
	reason_shred(v, id[0], "again", &r, PV_OK);
	ck_assert_str_eq(r.reason, "old reason 9301");
	ck_assert_uint_eq(r.audit_seq, first.audit_seq);
	ck_assert_uint_eq(r.shredded_at, first.shredded_at);
	ck_assert_mem_eq(r.sig, first.sig, sizeof(r.sig));
	ck_assert_int_eq(vault_audit_read(v, first.audit_seq - 1,
	    VAULT_AUDIT_END_NONE, 1, &e, &n, &last, NULL), PV_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(e[0].reason, "old reason 9301");
	vault_audit_entries_free(e, n);
	ck_assert_int_eq(vault_audit_verify(v, &count, &bad, NULL), PV_OK);
	ck_assert_uint_eq(vault_alarms(v), 0);

	/* Sealed, changed: verify passes, reading does not. */
	reason_shred(v, id[1], "new reason 9302", &first, PV_OK);
	ck_assert_str_eq(first.reason, "new reason 9302");
	reason_rewrite(v, first.audit_seq, "new reason 9302", 1);
	ck_assert_int_eq(vault_audit_verify(v, &count, &bad, NULL), PV_OK);
	ck_assert_uint_eq(bad, 0);
	alarms = vault_alarms(v);
	e = NULL;
	n = 0;
	ck_assert_int_eq(vault_audit_read(v, first.audit_seq - 1,
	    VAULT_AUDIT_END_NONE, 1, &e, &n, &last, NULL), PV_EINTEGRITY);
	ck_assert_uint_gt(vault_alarms(v), alarms);
	alarms = vault_alarms(v);
	memset(&r, 0, sizeof(r));
	reason_shred(v, id[1], "again", &r, PV_EINTEGRITY);
	ck_assert_str_eq(r.reason, "");
	ck_assert_uint_gt(vault_alarms(v), alarms);
	vault_close(v);
}
END_TEST

/*
 * Rewrite the newest event, seq, with edit (which may change its length
 * in place, up to RS_BUF bytes), its chain hash recomputed so that the
 * chain verifies: a white-box stand-in for events an older version wrote
 * or for a forger holding the vault's keys.
 */
static void
event_rewrite(struct vault *v, uint64_t seq,
    void (*edit)(uint8_t *ev, size_t *len))
{
	uint8_t sk[8], ev[RS_BUF], prev[PV_HMAC_LEN], h[PV_HMAC_LEN];
	const uint8_t *val;
	struct pv_part parts[3];
	struct pv_txn *t;
	size_t vl, el;

	ck_assert_int_eq(vault_txn_begin(v, 1, &t), PV_OK);
	memset(prev, 0, sizeof(prev));
	if (seq > 1) {
		pv_put_u64(sk, seq - 1);
		ck_assert_int_eq(pv_get(t, PV_T_AUDIT, sk, sizeof(sk),
		    (const void **)&val, &vl), PV_OK);
		memcpy(prev, val + vl - PV_HMAC_LEN, PV_HMAC_LEN);
	}
	pv_put_u64(sk, seq);
	ck_assert_int_eq(pv_get(t, PV_T_AUDIT, sk, sizeof(sk),
	    (const void **)&val, &vl), PV_OK);
	ck_assert_uint_le(vl, sizeof(ev));
	el = vl - PV_HMAC_LEN;
	memcpy(ev, val, el);
	edit(ev, &el);
	parts[0] = (struct pv_part){ prev, sizeof(prev) };
	parts[1] = (struct pv_part){ sk, sizeof(sk) };
	parts[2] = (struct pv_part){ ev, el };
	ck_assert_int_eq(kms_keyed_hash(v->kms, KMS_H_AUDIT, h, parts, 3),
	    PV_OK);
	memcpy(ev + el, h, sizeof(h));
	ck_assert_int_eq(pv_put(t, PV_T_AUDIT, sk, sizeof(sk), ev,
	    el + sizeof(h), 0), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
}

/*
 * Version 4 without a request id to version 3: the same less the id's
 * length byte, at the end.
 */
static void
to_v3(uint8_t *ev, size_t *len)
{
	ck_assert_uint_eq(ev[0], 4);
	ck_assert_uint_eq(ev[*len - 1], 0);
	ev[0] = 3;
	*len -= 1;
}

/* Version 4 without items or id to version 2: less the item count too. */
static void
to_v2(uint8_t *ev, size_t *len)
{
	ck_assert_uint_eq(ev[0], 4);
	ck_assert_uint_eq(ev[*len - 3], 0);
	ck_assert_uint_eq(ev[*len - 2], 0);
	ck_assert_uint_eq(ev[*len - 1], 0);
	ev[0] = 2;
	*len -= 3;
}

/*
 * One item without a field (docs/format.md: outcome, status, record seq,
 * field length 0, then the request id's length 0, at the end): an
 * outcome no version writes.
 */
static void
bad_outcome(uint8_t *ev, size_t *len)
{
	ck_assert_uint_eq(ev[*len - 12], VAULT_ITEM_REFUSED);
	ev[*len - 12] = 9;
}

/*
 * Events written before items (version 2, as every vault made before
 * items holds) and before request ids (version 3) read and verify in one
 * chain with those after, with no items and no request id; an event's
 * request id reads back; a get is logged with its item whether it succeeds or
 * not; an item no version writes is an integrity error even where the
 * chain was forged to match.
 */
START_TEST(audit_versions_mixed)
{
	static const struct vault_field f[] = {
		F("email", "versions@example.org") };
	static const char unknown[] = "tok_AAAAAAAAAAAAAAAAAAAAAA";
	char id[VAULT_ID_STRLEN + 1], toks[1][VAULT_ID_STRLEN + 1];
	struct vault_audit_entry *e = NULL;
	struct vault_value *val = NULL;
	struct vault *v = NULL;
	uint64_t count, bad, last = 0, old;
	size_t n = 0;

	ck_assert_int_eq(vault_create(&opts, &v), PV_OK);
	vault_set_actor(v, "test");
	ck_assert_int_eq(put1(v, f, 1, id, toks), PV_OK);
	ck_assert_int_eq(vault_audit_verify(v, &old, &bad, NULL), PV_OK);
	ck_assert_uint_gt(old, 0);
	event_rewrite(v, old, to_v2);

	ck_assert_int_eq(vault_get(v, toks[0], strlen(toks[0]), &val), PV_OK);
	vault_value_free(val);
	val = NULL;
	event_rewrite(v, old + 1, to_v3);
	ck_assert_int_eq(vault_audit(v, &(struct vault_event){ .actor = "t",
	    .action = "probe", .purpose = -1, .request_id = "rq-9.Az_" },
	    NULL), PV_OK);
	ck_assert_int_eq(vault_get(v, unknown, strlen(unknown), &val),
	    PV_ENOTFOUND);
	ck_assert_ptr_null(val);
	ck_assert_int_eq(vault_audit_verify(v, &count, &bad, NULL), PV_OK);
	ck_assert_uint_eq(count, old + 3);

	ck_assert_int_eq(vault_audit_read(v, old - 1, VAULT_AUDIT_END_NONE,
	    10, &e, &n, &last, NULL), PV_OK);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(last, old + 3);
	ck_assert_uint_eq(e[0].nitems, 0);		/* version 2 */
	ck_assert_str_eq(e[0].request_id, "");
	ck_assert_str_eq(e[1].request_id, "");		/* version 3 */
	ck_assert_str_eq(e[1].action, "get");
	ck_assert_uint_eq(e[1].nrecs, 1);
	ck_assert_str_eq(e[1].ids[0], id);
	ck_assert_uint_eq(e[1].nfields, 1);
	ck_assert_str_eq(e[1].fields[0], "email");
	ck_assert_uint_eq(e[1].nitems, 1);
	ck_assert_str_eq(e[1].items[0].id, id);
	ck_assert_str_eq(e[1].items[0].field, "email");
	ck_assert_int_eq(e[1].items[0].outcome, VAULT_ITEM_REVEALED);
	ck_assert_int_eq(e[1].items[0].code, PV_OK);
	ck_assert_str_eq(e[2].action, "probe");		/* version 4 */
	ck_assert_str_eq(e[2].request_id, "rq-9.Az_");
	ck_assert_str_eq(e[3].request_id, "");
	ck_assert_int_eq(e[3].ok, 1);
	ck_assert_uint_eq(e[3].nrecs, 0);
	ck_assert_uint_eq(e[3].nitems, 1);
	ck_assert_str_eq(e[3].items[0].id, "");
	ck_assert_str_eq(e[3].items[0].field, "");
	ck_assert_int_eq(e[3].items[0].outcome, VAULT_ITEM_REFUSED);
	ck_assert_int_eq(e[3].items[0].code, PV_ENOTFOUND);
	vault_audit_entries_free(e, n);

	/* An end stops the page there; the newest is still told. */
	e = NULL;
	ck_assert_int_eq(vault_audit_read(v, 0, old, 10, &e, &n, &last, NULL),
	    PV_OK);
	ck_assert_uint_eq(n, old);
	ck_assert_uint_eq(e[n - 1].seq, old);
	ck_assert_uint_eq(last, old + 3);
	vault_audit_entries_free(e, n);

	event_rewrite(v, old + 3, bad_outcome);
	ck_assert_int_eq(vault_audit_verify(v, &count, &bad, NULL), PV_OK);
	e = NULL;
	ck_assert_int_eq(vault_audit_read(v, old + 2, VAULT_AUDIT_END_NONE,
	    10, &e, &n, &last, NULL), PV_EINTEGRITY);
	ck_assert_ptr_null(e);
	vault_close(v);
}
END_TEST

static Suite *
vault_suite(void)
{
	return tu_suite_core("vault", setup, tu_teardown, 600,
	    create_open_close, put_get_roundtrip, bad_records_refused,
	    batch_keeps_valid_records, lookup_normalizes, no_plaintext_on_disk,
	    tampered_bytes_fail, moved_ciphertext_fails, swapped_tokens_fail,
	    renamed_field_fails, header_edits_fail, swapped_index_entries_fail,
	    wrong_root_key_changes_nothing, foreign_and_forged_tokens,
	    ids_unique_and_unordered, map_full_changes_nothing,
	    threads_share_a_vault, two_handles_one_directory,
	    failed_group_commit_fails_every_job, numbers_exhausted,
	    reasons_old_and_forged, audit_versions_mixed, NULL);
}

int
main(void)
{
	return tu_run(vault_suite());
}
