/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_kms.c: the key hierarchy: key files, root key and passphrase, the
 * ring, DEK wrapping, identifiers and the blind index.
 *
 * White-box: opens the store directly to tamper with what the KMS wrote.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kms.h"
#include "pv_store.h"
#include "testutil.h"

static char dir[PATH_MAX], keyfile[PATH_MAX + 16], datadir[PATH_MAX + 16];

static void
setup(void)
{
	tu_vault_setup(dir, keyfile, datadir, NULL);
}

static void
write_file(const char *path, const char *s, size_t len, mode_t mode)
{
	int fd;

	(void)unlink(path);
	ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode),
	    0);
	ck_assert_int_eq(write(fd, s, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

/* A store with a fresh key hierarchy; the caller closes both. */
static void
make_kms(const struct kms_unlock *u, struct pv_store **sp, struct kms **kp)
{
	struct pv_store_opts so = { 0, 1, 0 };
	struct pv_txn *t;

	ck_assert_int_eq(pv_store_open(datadir, &so, sp), PV_OK);
	ck_assert_int_eq(pv_txn_begin(*sp, 1, &t), PV_OK);
	ck_assert_int_eq(kms_init(t, u, kp), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
}

static pv_status
reopen(const struct kms_unlock *u, struct pv_store *s, struct kms **kp)
{
	struct pv_txn *t;
	pv_status rc;

	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	rc = kms_open(t, u, kp);
	pv_txn_abort(t);
	return rc;
}

static pv_status
pass_cb(void *arg, char *buf, size_t cap, size_t *len)
{
	size_t n = strlen(arg);

	ck_assert_uint_le(n, cap);
	memcpy(buf, arg, n);
	*len = n;
	return PV_OK;
}

START_TEST(key_file_create_and_read)
{
	uint8_t key[PV_KEY_LEN], again[PV_KEY_LEN];
	struct stat st;

	ck_assert_int_eq(kms_key_file_create(keyfile), PV_OK);
	ck_assert_int_eq(stat(keyfile, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(st.st_size, PV_KEY_B64_LEN + 1);
	ck_assert_int_eq(kms_key_file_read(keyfile, key), PV_OK);
	ck_assert_int_eq(kms_key_file_read(keyfile, again), PV_OK);
	ck_assert_mem_eq(key, again, PV_KEY_LEN);
	/* Never replaced. */
	ck_assert_int_eq(kms_key_file_create(keyfile), PV_EEXIST);
	ck_assert_int_eq(kms_key_file_read(keyfile, again), PV_OK);
	ck_assert_mem_eq(key, again, PV_KEY_LEN);
}
END_TEST

START_TEST(key_file_refused)
{
	static const char good[] =
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
	uint8_t key[PV_KEY_LEN];
	char link[PATH_MAX + 16];

	write_file(keyfile, good, sizeof(good) - 1, 0600);
	ck_assert_int_eq(kms_key_file_read(keyfile, key), PV_OK);
	ck_assert_int_eq(key[0], 0);
	ck_assert_int_eq(key[31], 31);
	/* Group- or world-accessible in any way. */
	ck_assert_int_eq(chmod(keyfile, 0644), 0);
	ck_assert_int_eq(kms_key_file_read(keyfile, key), PV_EKEYPERM);
	ck_assert_int_eq(chmod(keyfile, 0640), 0);
	ck_assert_int_eq(kms_key_file_read(keyfile, key), PV_EKEYPERM);
	ck_assert_int_eq(chmod(keyfile, 0604), 0);
	ck_assert_int_eq(kms_key_file_read(keyfile, key), PV_EKEYPERM);
	ck_assert_int_eq(chmod(keyfile, 0600), 0);
	/* Not followed through a symbolic link, nor a directory. */
	(void)snprintf(link, sizeof(link), "%s/link.key", dir);
	ck_assert_int_eq(symlink(keyfile, link), 0);
	ck_assert_int_eq(kms_key_file_read(link, key), PV_EKEYPERM);
	ck_assert_int_eq(kms_key_file_read(dir, key), PV_EKEYPERM);
	/* Missing. */
	(void)snprintf(link, sizeof(link), "%s/none.key", dir);
	ck_assert_int_eq(kms_key_file_read(link, key), PV_ENOTFOUND);
	/* Not exactly one base64 256-bit key. */
	write_file(keyfile, good, 43, 0600);
	ck_assert_int_eq(kms_key_file_read(keyfile, key), PV_EKEYFORMAT);
	write_file(keyfile, "", 0, 0600);
	ck_assert_int_eq(kms_key_file_read(keyfile, key), PV_EKEYFORMAT);
	write_file(keyfile, "0123456789abcdef0123456789abcdef", 32, 0600);
	ck_assert_int_eq(kms_key_file_read(keyfile, key), PV_EKEYFORMAT);
	write_file(keyfile, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n",
	    46, 0600);
	ck_assert_int_eq(kms_key_file_read(keyfile, key), PV_EKEYFORMAT);
	write_file(keyfile, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n",
	    46, 0600);
	ck_assert_int_eq(kms_key_file_read(keyfile, key), PV_OK);
}
END_TEST

START_TEST(open_with_right_and_wrong_root)
{
	struct kms_unlock u = { .key_file = keyfile };
	char other[PATH_MAX + 16];
	struct pv_store *s;
	struct kms *k, *k2 = NULL;
	uint8_t id[KMS_VAULT_ID_LEN];

	ck_assert_int_eq(kms_key_file_create(keyfile), PV_OK);
	make_kms(&u, &s, &k);
	memcpy(id, kms_vault_id(k), sizeof(id));
	kms_free(k);
	ck_assert_int_eq(reopen(&u, s, &k), PV_OK);
	ck_assert_mem_eq(kms_vault_id(k), id, sizeof(id));
	kms_free(k);

	(void)snprintf(other, sizeof(other), "%s/other.key", dir);
	ck_assert_int_eq(kms_key_file_create(other), PV_OK);
	u.key_file = other;
	ck_assert_int_eq(reopen(&u, s, &k2), PV_EBADKEY);
	ck_assert_ptr_null(k2);
	/* A key-file vault asked to open without one. */
	u.key_file = NULL;
	ck_assert_int_eq(reopen(&u, s, &k2), PV_EINVAL);
	pv_store_close(s);
}
END_TEST

START_TEST(passphrase_root)
{
	struct kms_unlock u = { .use_passphrase = 1, .passphrase = pass_cb,
	    .arg = "correct horse", .kdf_time = 1,
	    .kdf_memory_kib = KMS_KDF_MEMORY_MIN };
	struct pv_store *s;
	struct kms *k = NULL;

	make_kms(&u, &s, &k);
	kms_free(k);
	k = NULL;
	ck_assert_int_eq(reopen(&u, s, &k), PV_OK);
	kms_free(k);
	k = NULL;
	u.arg = "correct horsf";
	ck_assert_int_eq(reopen(&u, s, &k), PV_EBADKEY);
	u.passphrase = NULL;
	ck_assert_int_eq(reopen(&u, s, &k), PV_EPASSPHRASE);
	ck_assert_ptr_null(k);
	pv_store_close(s);
}
END_TEST

START_TEST(passphrase_cost_floor)
{
	struct kms_unlock u = { .use_passphrase = 1, .passphrase = pass_cb,
	    .arg = "pw", .kdf_memory_kib = KMS_KDF_MEMORY_MIN - 1 };
	struct pv_store_opts so = { 0, 1, 0 };
	struct pv_store *s;
	struct pv_txn *t;
	struct kms *k = NULL;

	ck_assert_int_eq(pv_store_open(datadir, &so, &s), PV_OK);
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(kms_init(t, &u, &k), PV_EINVAL);
	ck_assert_ptr_null(k);
	pv_txn_abort(t);
	pv_store_close(s);
}
END_TEST

/* Rewrite one meta or ring value in place through the store. */
static void
poke(struct pv_store *s, enum pv_table tab, const void *key, size_t klen,
    size_t off, uint8_t xor, const uint8_t *set, size_t setlen)
{
	uint8_t buf[512];
	struct pv_txn *t;
	const void *v;
	size_t vl;

	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(pv_get(t, tab, key, klen, &v, &vl), PV_OK);
	if (set != NULL) {
		ck_assert_int_eq(pv_put(t, tab, key, klen, set, setlen, 0),
		    PV_OK);
	} else {
		ck_assert_uint_le(vl, sizeof(buf));
		ck_assert_uint_lt(off, vl);
		memcpy(buf, v, vl);
		buf[off] ^= xor;
		ck_assert_int_eq(pv_put(t, tab, key, klen, buf, vl, 0), PV_OK);
	}
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
}

/* A new key file and store whose kms is made and closed again. */
static struct pv_store *
fresh_store(const struct kms_unlock *u)
{
	struct pv_store *s;
	struct kms *k;

	ck_assert_int_eq(kms_key_file_create(keyfile), PV_OK);
	make_kms(u, &s, &k);
	kms_free(k);
	return s;
}

START_TEST(newer_format_refused)
{
	struct kms_unlock u = { .key_file = keyfile };
	const uint8_t v2[4] = { 0, 0, 0, KMS_FORMAT_VERSION + 1 };
	struct pv_store *s = fresh_store(&u);
	struct kms *k = NULL;

	poke(s, PV_T_META, "format", 6, 0, 0, v2, sizeof(v2));
	ck_assert_int_eq(reopen(&u, s, &k), PV_EFORMAT);
	ck_assert_ptr_null(k);
	pv_store_close(s);
}
END_TEST

START_TEST(ring_tamper_detected)
{
	struct kms_unlock u = { .key_file = keyfile };
	const uint8_t kek1[5] = { KMS_KEK, 0, 0, 0, 1 };
	struct pv_store *s = fresh_store(&u);
	struct kms *k = NULL;

	/* One bit of the wrapped KEK (offset 40: inside the ciphertext). */
	poke(s, PV_T_RING, kek1, sizeof(kek1), 40, 0x01, NULL, 0);
	ck_assert_int_eq(reopen(&u, s, &k), PV_EINTEGRITY);
	ck_assert_ptr_null(k);
	poke(s, PV_T_RING, kek1, sizeof(kek1), 40, 0x01, NULL, 0);
	ck_assert_int_eq(reopen(&u, s, &k), PV_OK);
	kms_free(k);
	pv_store_close(s);
}
END_TEST

START_TEST(ring_state_bound)
{
	struct kms_unlock u = { .key_file = keyfile };
	const uint8_t kek1[5] = { KMS_KEK, 0, 0, 0, 1 };
	struct pv_store *s = fresh_store(&u);
	struct kms *k = NULL;

	/* active (1) edited to decrypt-only (2): the state is in the AAD. */
	poke(s, PV_T_RING, kek1, sizeof(kek1), 0, 0x03, NULL, 0);
	ck_assert_int_eq(reopen(&u, s, &k), PV_EINTEGRITY);
	ck_assert_ptr_null(k);
	pv_store_close(s);
}
END_TEST

START_TEST(counters_saturate)
{
	struct kms_unlock u = { .key_file = keyfile };
	const uint8_t kek1[5] = { KMS_KEK, 0, 0, 0, 1 };
	uint8_t val[86];
	struct kms_key_info *info;
	struct pv_store *s;
	struct pv_txn *t;
	struct kms *k;
	const void *v;
	size_t vl, n;

	ck_assert_int_eq(kms_key_file_create(keyfile), PV_OK);
	make_kms(&u, &s, &k);
	/* Counters near the top, as an edited file could hold them. */
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(pv_get(t, PV_T_RING, kek1, 5, &v, &vl), PV_OK);
	ck_assert_uint_eq(vl, sizeof(val));
	memcpy(val, v, vl);
	pv_put_u64(val + 10, UINT64_MAX - 1);
	pv_put_u64(val + 18, UINT64_MAX - 1);
	ck_assert_int_eq(pv_put(t, PV_T_RING, kek1, 5, val, vl, 0), PV_OK);
	ck_assert_int_eq(kms_count_wraps(k, t, 1, 5, 5), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(kms_status(k, t, &info, &n), PV_OK);
	ck_assert_uint_eq(info[0].wraps_live, UINT64_MAX);
	ck_assert_uint_eq(info[0].wraps_total, UINT64_MAX);
	free(info);
	/* And never below zero, even for the most negative delta. */
	pv_put_u64(val + 10, 3);
	ck_assert_int_eq(pv_put(t, PV_T_RING, kek1, 5, val, vl, 0), PV_OK);
	ck_assert_int_eq(kms_count_wraps(k, t, 1, INT64_MIN, 0), PV_OK);
	ck_assert_int_eq(kms_status(k, t, &info, &n), PV_OK);
	ck_assert_uint_eq(info[0].wraps_live, 0);
	free(info);
	pv_txn_abort(t);
	kms_free(k);
	pv_store_close(s);
}
END_TEST

START_TEST(key_file_fifo_refused)
{
	uint8_t key[PV_KEY_LEN];

	/* A FIFO must be refused at once, not block the reader. */
	ck_assert_int_eq(mkfifo(keyfile, 0600), 0);
	ck_assert_int_eq(kms_key_file_read(keyfile, key), PV_EKEYPERM);
}
END_TEST

START_TEST(kdf_costs_bounded)
{
	struct kms_unlock u = { .use_passphrase = 1, .passphrase = pass_cb,
	    .arg = "pw", .kdf_time = 1,
	    .kdf_memory_kib = KMS_KDF_MEMORY_MIN };
	uint8_t root[29];
	struct pv_store *s;
	struct pv_txn *t;
	struct kms *k = NULL;
	const void *v;
	size_t vl;

	make_kms(&u, &s, &k);
	kms_free(k);
	k = NULL;
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(pv_get(t, PV_T_META, "root", 4, &v, &vl), PV_OK);
	ck_assert_uint_eq(vl, sizeof(root));
	memcpy(root, v, vl);
	pv_txn_abort(t);
	/* 2^32-1 KiB of memory would hang or kill the process: refused. */
	pv_put_u32(root + 5, UINT32_MAX);
	poke(s, PV_T_META, "root", 4, 0, 0, root, sizeof(root));
	ck_assert_int_eq(reopen(&u, s, &k), PV_EFORMAT);
	pv_put_u32(root + 5, KMS_KDF_MEMORY_MIN);
	pv_put_u32(root + 1, 1000000);
	poke(s, PV_T_META, "root", 4, 0, 0, root, sizeof(root));
	ck_assert_int_eq(reopen(&u, s, &k), PV_EFORMAT);
	pv_put_u32(root + 1, 1);
	poke(s, PV_T_META, "root", 4, 0, 0, root, sizeof(root));
	ck_assert_int_eq(reopen(&u, s, &k), PV_OK);
	kms_free(k);
	pv_store_close(s);
}
END_TEST

START_TEST(dek_wrap_and_unwrap)
{
	struct kms_unlock u = { .key_file = keyfile };
	uint8_t rec[16] = { 1, 2, 3 }, other[16] = { 1, 2, 4 };
	uint8_t dek[PV_KEY_LEN], got[PV_KEY_LEN], wrapped[KMS_WRAPPED_LEN];
	uint8_t zero[PV_KEY_LEN] = { 0 };
	struct pv_store *s;
	struct kms *k;
	uint32_t v = 0;

	ck_assert_int_eq(kms_key_file_create(keyfile), PV_OK);
	make_kms(&u, &s, &k);
	ck_assert_int_eq(kms_dek_new(k, rec, sizeof(rec), dek, &v, wrapped), PV_OK);
	ck_assert_uint_eq(v, 1);
	ck_assert_int_eq(kms_dek_open(k, rec, sizeof(rec), v, wrapped, got), PV_OK);
	ck_assert_mem_eq(dek, got, PV_KEY_LEN);
	/* Bound to the record id and the version. */
	memset(got, 0xaa, sizeof(got));
	ck_assert_int_eq(kms_dek_open(k, other, sizeof(other), v, wrapped, got),
	    PV_EINTEGRITY);
	ck_assert_mem_eq(got, zero, PV_KEY_LEN);
	ck_assert_int_eq(kms_dek_open(k, rec, sizeof(rec), 2, wrapped, got), PV_EKEYSTATE);
	ck_assert_int_eq(kms_dek_open(k, rec, sizeof(rec), 0, wrapped, got), PV_EKEYSTATE);
	for (size_t i = 0; i < KMS_WRAPPED_LEN; i++) {
		wrapped[i] ^= 0x80;
		ck_assert_int_eq(kms_dek_open(k, rec, sizeof(rec), v, wrapped, got),
		    PV_EINTEGRITY);
		wrapped[i] ^= 0x80;
	}
	/* Fresh DEKs differ. */
	ck_assert_int_eq(kms_dek_new(k, rec, sizeof(rec), got, &v, wrapped), PV_OK);
	ck_assert_mem_ne(dek, got, PV_KEY_LEN);
	kms_free(k);
	pv_store_close(s);
}
END_TEST

START_TEST(ids_and_blind_index)
{
	struct kms_unlock u = { .key_file = keyfile };
	uint8_t in[16] = { 0, 0, 0, 0, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9 };
	uint8_t a[16], b[16], back[16];
	uint8_t d1[PV_HMAC_LEN], d2[PV_HMAC_LEN], d3[PV_HMAC_LEN];
	struct pv_store *s;
	struct kms *k, *k2;

	ck_assert_int_eq(kms_key_file_create(keyfile), PV_OK);
	make_kms(&u, &s, &k);
	ck_assert_int_eq(kms_id_seal(k, KMS_ID_RECORD, a, in), PV_OK);
	ck_assert_int_eq(kms_id_seal(k, KMS_ID_TOKEN, b, in), PV_OK);
	ck_assert_mem_ne(a, b, 16);		/* domains are separate */
	ck_assert_mem_ne(a, in, 16);
	ck_assert_int_eq(kms_id_open(k, KMS_ID_RECORD, back, a), PV_OK);
	ck_assert_mem_eq(back, in, 16);
	ck_assert_int_eq(kms_id_open(k, KMS_ID_TOKEN, back, a), PV_OK);
	ck_assert_mem_ne(back, in, 16);

	ck_assert_int_eq(kms_blind_index(k, 0, d1, "email", 5, "a@b.c", 5),
	    PV_OK);
	ck_assert_int_eq(kms_blind_index(k, 0, d2, "email", 5, "a@b.c", 5),
	    PV_OK);
	ck_assert_mem_eq(d1, d2, PV_HMAC_LEN);
	ck_assert_int_eq(kms_blind_index(k, 0, d3, "phone", 5, "a@b.c", 5),
	    PV_OK);
	ck_assert_mem_ne(d1, d3, PV_HMAC_LEN);
	/* "emai" + "la@b.c" is not "email" + "a@b.c". */
	ck_assert_int_eq(kms_blind_index(k, 0, d3, "emai", 4, "la@b.c", 6),
	    PV_OK);
	ck_assert_mem_ne(d1, d3, PV_HMAC_LEN);
	/* Same keys after a reopen: tokens stay valid. */
	ck_assert_int_eq(reopen(&u, s, &k2), PV_OK);
	ck_assert_int_eq(kms_id_seal(k2, KMS_ID_RECORD, b, in), PV_OK);
	ck_assert_mem_eq(a, b, 16);
	ck_assert_int_eq(kms_blind_index(k2, 0, d2, "email", 5, "a@b.c", 5),
	    PV_OK);
	ck_assert_mem_eq(d1, d2, PV_HMAC_LEN);
	kms_free(k2);
	kms_free(k);
	pv_store_close(s);
}
END_TEST

START_TEST(status_and_counters)
{
	struct kms_unlock u = { .key_file = keyfile };
	struct kms_key_info *info;
	struct pv_store *s;
	struct pv_txn *t;
	struct kms *k;
	size_t n;

	ck_assert_int_eq(kms_key_file_create(keyfile), PV_OK);
	pv_clock_set(1700000000);
	make_kms(&u, &s, &k);
	pv_clock_set(0);
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(kms_count_wraps(k, t, 1, 5, 5), PV_OK);
	ck_assert_int_eq(kms_count_wraps(k, t, 1, -2, 0), PV_OK);
	ck_assert_int_eq(kms_count_wraps(k, t, 9, 1, 1), PV_EKEYSTATE);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(kms_status(k, t, &info, &n), PV_OK);
	pv_txn_abort(t);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(info[3].kind, KMS_SIGN);
	ck_assert_int_eq(info[0].kind, KMS_KEK);
	ck_assert_int_eq(info[0].state, KMS_ACTIVE);
	ck_assert_uint_eq(info[0].version, 1);
	ck_assert_uint_eq(info[0].created, 1700000000);
	ck_assert_uint_eq(info[0].wraps_live, 3);
	ck_assert_uint_eq(info[0].wraps_total, 5);
	ck_assert_int_eq(info[1].kind, KMS_IDS);
	ck_assert_int_eq(info[2].kind, KMS_INDEX);
	ck_assert_str_eq(kms_state_name(info[2].state), "active");
	free(info);
	kms_free(k);
	pv_store_close(s);
}
END_TEST

START_TEST(sync_reloads_changed_ring)
{
	struct kms_unlock u = { .key_file = keyfile };
	const uint8_t gen2[8] = { 0, 0, 0, 0, 0, 0, 0, 2 };
	uint8_t rec[16] = { 7 }, dek[PV_KEY_LEN], wrapped[KMS_WRAPPED_LEN];
	struct pv_store *s;
	struct pv_txn *t;
	struct kms *k;
	uint32_t v;

	ck_assert_int_eq(kms_key_file_create(keyfile), PV_OK);
	make_kms(&u, &s, &k);
	poke(s, PV_T_META, "ring_gen", 8, 0, 0, gen2, sizeof(gen2));
	/* A damaged ring is noticed by the next sync, not used silently. */
	poke(s, PV_T_RING, (const uint8_t[5]){ KMS_KEK, 0, 0, 0, 1 }, 5, 40,
	    0x01, NULL, 0);
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(kms_sync(k, t), PV_EINTEGRITY);
	pv_txn_abort(t);
	poke(s, PV_T_RING, (const uint8_t[5]){ KMS_KEK, 0, 0, 0, 1 }, 5, 40,
	    0x01, NULL, 0);
	/* The generation alone, moved without the ring MAC, is refused too. */
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(kms_sync(k, t), PV_EINTEGRITY);
	pv_txn_abort(t);
	/* What a genuine change does: the ring sealed anew with it. */
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(kms_ring_seal(k, t), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(kms_sync(k, t), PV_OK);
	pv_txn_abort(t);
	ck_assert_int_eq(kms_dek_new(k, rec, sizeof(rec), dek, &v, wrapped), PV_OK);
	kms_free(k);
	pv_store_close(s);
}
END_TEST

/*
 * A batch re-wrap moves DEKs from many versions (more than it keeps set
 * up) to the active KEK, each DEK unchanged and bound to its context; a
 * wrong context or a retired version changes nothing.
 */
#define RW_VERSIONS	11

START_TEST(rewrap_batch)
{
	struct kms_unlock u = { .key_file = keyfile };
	uint8_t dek[RW_VERSIONS][PV_KEY_LEN], got[PV_KEY_LEN];
	uint8_t wrapped[RW_VERSIONS][KMS_WRAPPED_LEN], keep[KMS_WRAPPED_LEN];
	uint8_t rec[16] = { 5 }, other[16] = { 6 }, nonce[PV_GCM_NONCE_LEN];
	uint8_t big[KMS_DEK_CTX_MAX + 1] = { 0 };
	uint32_t v[RW_VERSIONS], newv = 0, to = 0;
	struct kms_rewrap *r;
	struct pv_store *s;
	struct pv_txn *t;
	struct kms *k;

	ck_assert_int_eq(kms_key_file_create(keyfile), PV_OK);
	make_kms(&u, &s, &k);
	for (size_t i = 0; i < RW_VERSIONS; i++) {
		rec[1] = (uint8_t)i;
		ck_assert_int_eq(kms_dek_new(k, rec, sizeof(rec), dek[i], &v[i],
		    wrapped[i]), PV_OK);
		ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
		ck_assert_int_eq(kms_rotate(k, t, KMS_KEK, &newv), PV_OK);
		ck_assert_int_eq(pv_txn_commit(t), PV_OK);
		ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
		ck_assert_int_eq(kms_sync(k, t), PV_OK);
		pv_txn_abort(t);
		ck_assert_uint_eq(v[i], i + 1);
	}
	ck_assert_int_eq(kms_rewrap_new(k, &r, &to), PV_OK);
	ck_assert_uint_eq(to, newv);
	for (size_t i = 0; i < RW_VERSIONS; i++) {
		rec[1] = (uint8_t)i;
		ck_assert_int_eq(pv_random(nonce, sizeof(nonce)), PV_OK);
		/* Bound to its context: refused, left as it was. */
		memcpy(keep, wrapped[i], sizeof(keep));
		ck_assert_int_eq(kms_rewrap_dek(r, other, sizeof(other), v[i],
		    nonce, wrapped[i]), PV_EINTEGRITY);
		ck_assert_mem_eq(wrapped[i], keep, sizeof(keep));
		ck_assert_int_eq(kms_rewrap_dek(r, rec, sizeof(rec), v[i],
		    nonce, wrapped[i]), PV_OK);
		ck_assert_mem_eq(wrapped[i], nonce, sizeof(nonce));
		ck_assert_int_eq(kms_dek_open(k, rec, sizeof(rec), to,
		    wrapped[i], got), PV_OK);
		ck_assert_mem_eq(got, dek[i], PV_KEY_LEN);
		ck_assert_int_eq(kms_dek_open(k, rec, sizeof(rec), v[i],
		    wrapped[i], got), PV_EINTEGRITY);
	}
	kms_rewrap_free(r);

	/* A retired version may not unwrap, in a batch either. */
	ck_assert_int_eq(pv_txn_begin(s, 1, &t), PV_OK);
	ck_assert_int_eq(kms_set_state(k, t, KMS_KEK, 1, KMS_RETIRED), PV_OK);
	ck_assert_int_eq(pv_txn_commit(t), PV_OK);
	ck_assert_int_eq(pv_txn_begin(s, 0, &t), PV_OK);
	ck_assert_int_eq(kms_sync(k, t), PV_OK);
	pv_txn_abort(t);
	rec[1] = 0;
	ck_assert_int_eq(kms_dek_new(k, rec, sizeof(rec), dek[0], &v[0],
	    wrapped[0]), PV_OK);
	ck_assert_int_eq(kms_rewrap_new(k, &r, &to), PV_OK);
	memcpy(keep, wrapped[0], sizeof(keep));
	ck_assert_int_eq(kms_rewrap_dek(r, rec, sizeof(rec), 1, nonce,
	    wrapped[0]), PV_EKEYSTATE);
	ck_assert_mem_eq(wrapped[0], keep, sizeof(keep));
	ck_assert_int_eq(kms_rewrap_dek(r, rec, sizeof(rec), 0, nonce,
	    wrapped[0]), PV_EKEYSTATE);
	ck_assert_int_eq(kms_rewrap_dek(r, big, sizeof(big), 2, nonce,
	    wrapped[0]), PV_EINVAL);
	ck_assert_mem_eq(wrapped[0], keep, sizeof(keep));
	kms_rewrap_free(r);
	kms_rewrap_free(NULL);
	kms_free(k);
	pv_store_close(s);
}
END_TEST

static Suite *
kms_suite(void)
{
	return tu_suite_core("kms", setup, tu_teardown, 120,
	    key_file_create_and_read, key_file_refused,
	    open_with_right_and_wrong_root, passphrase_root,
	    passphrase_cost_floor, newer_format_refused, ring_tamper_detected,
	    ring_state_bound, counters_saturate, key_file_fifo_refused,
	    kdf_costs_bounded, dek_wrap_and_unwrap, ids_and_blind_index,
	    status_and_counters, sync_reloads_changed_ring, rewrap_batch,
	    NULL);
}

int
main(void)
{
	return tu_run(kms_suite());
}
