/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kms.c: the root key, the key ring and the operations that use them.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <argon2.h>

#include "kms.h"

/* Meta table keys owned by the KMS. */
#define META_FORMAT	"format"
#define META_VAULT_ID	"vault_id"
#define META_ROOT	"root"
#define META_ROOT_CHECK	"root_check"
#define META_RING_GEN	"ring_gen"
#define META_RING_MAC	"ring_mac"

enum { ROOT_KEY_FILE = 1, ROOT_PASSPHRASE = 2 };

#define KDF_TIME_DEFAULT	3
#define KDF_MEMORY_DEFAULT	65536	/* KiB */
#define KDF_LANES		1
#define KDF_TIME_MAX		64
#define KDF_MEMORY_MAX		(4u << 20)	/* KiB: 4 GiB */
#define KDF_SALT_LEN		16
#define ROOT_META_LEN		(1 + 12 + KDF_SALT_LEN)

/* Ring value layout; docs/format.md. */
#define RING_KEY_LEN	5
#define RV_STATE	0
#define RV_CREATED	2
#define RV_LIVE		10
#define RV_TOTAL	18
#define RV_WRAPPED	26
#define RING_VAL_LEN	(RV_WRAPPED + KMS_WRAPPED_LEN)
/*
 * A signing version whose private key is destroyed keeps its public key
 * where the sealed key was (the nonce and tag left zero), so that receipts
 * it signed still verify; the ring MAC covers it like any sealed key.
 */
#define RV_PUB		(RV_WRAPPED + PV_GCM_NONCE_LEN)

#define KEY_FILE_MAX	128

struct ring_key {
	enum kms_kind	 kind;
	uint32_t	 version;
	enum kms_state	 state;
	uint8_t		*key;	/* secure; NULL once destroyed */
	int		 has_pub;	/* SIGN: pub is known */
	uint8_t		 pub[PV_ED25519_LEN];
};

struct kms {
	pthread_rwlock_t lock;
	uint8_t		 vault_id[KMS_VAULT_ID_LEN];
	uint8_t		*root;		/* secure, PV_KEY_LEN */
	uint64_t	 gen;		/* ring generation loaded */
	struct ring_key	*keys;
	size_t		 nkeys;
	uint8_t		*idkeys;	/* secure: subkeys of the IDS key */
	int		 authed;	/* rows authenticated (root check 2) */
};

const char *
kms_state_name(enum kms_state st)
{
	switch (st) {
	case KMS_ACTIVE:
		return "active";
	case KMS_DECRYPT_ONLY:
		return "decrypt-only";
	case KMS_RETIRED:
		return "retired";
	case KMS_DESTROYED:
		return "destroyed";
	}
	return "unknown";
}

const char *
kms_kind_name(enum kms_kind kind)
{
	switch (kind) {
	case KMS_KEK:
		return "kek";
	case KMS_IDS:
		return "ids";
	case KMS_INDEX:
		return "index";
	case KMS_SIGN:
		return "sign";
	}
	return "unknown";
}

/* Key files. */

static pv_status
fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n;
	int fd, r;

	if (slash == NULL)
		memcpy(dir, ".", 2);
	else {
		n = slash == path ? 1 : (size_t)(slash - path);
		if (n >= sizeof(dir))
			return PV_EIO;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return PV_EIO;
	r = fsync(fd);
	(void)close(fd);
	return r == 0 ? PV_OK : PV_EIO;
}

pv_status
kms_key_file_create(const char *path)
{
	uint8_t key[PV_KEY_LEN];
	char line[PV_KEY_B64_LEN + 2];
	pv_status rc;
	int fd;

	if ((rc = pv_random(key, sizeof(key))) != PV_OK)
		return rc;
	pv_key_to_base64(line, key);
	pv_cleanse(key, sizeof(key));
	line[PV_KEY_B64_LEN] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0) {
		rc = errno == EEXIST ? PV_EEXIST : PV_EIO;
		goto out;
	}
	if (write(fd, line, PV_KEY_B64_LEN + 1) != PV_KEY_B64_LEN + 1 ||
	    fsync(fd) != 0) {
		rc = PV_EIO;
		(void)close(fd);
		(void)unlink(path);
		goto out;
	}
	if (close(fd) != 0) {
		rc = PV_EIO;
		(void)unlink(path);
		goto out;
	}
	/* The directory entry too: a vault without its key is lost. */
	rc = fsync_parent(path);
out:
	pv_cleanse(line, sizeof(line));
	return rc;
}

pv_status
kms_key_file_read(const char *path, uint8_t key[static PV_KEY_LEN])
{
	char buf[KEY_FILE_MAX];
	struct stat st;
	pv_status rc;
	ssize_t n;
	size_t len = 0;
	int fd;

	/* O_NONBLOCK: a FIFO in its place must not hang us before fstat. */
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK)) < 0)
		return errno == ENOENT ? PV_ENOTFOUND :
		    errno == ELOOP ? PV_EKEYPERM : PV_EIO;
	/* fstat the open file, so what we check is what we read. */
	if (fstat(fd, &st) != 0) {
		rc = PV_EIO;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 ||
	    st.st_uid != geteuid()) {
		rc = PV_EKEYPERM;
		goto out;
	}
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = PV_EIO;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	rc = pv_key_from_base64(key, buf, len);
out:
	pv_cleanse(buf, sizeof(buf));
	(void)close(fd);
	return rc;
}

/* Meta helpers. */

static pv_status
meta_get(struct pv_txn *t, const char *name, const void **v, size_t *vl)
{
	return pv_get(t, PV_T_META, name, strlen(name), v, vl);
}

static pv_status
meta_put(struct pv_txn *t, const char *name, const void *v, size_t vl)
{
	return pv_put(t, PV_T_META, name, strlen(name), v, vl, 0);
}

static pv_status
meta_get_u64(struct pv_txn *t, const char *name, uint64_t *out)
{
	const void *v;
	size_t vl;
	pv_status rc;

	if ((rc = meta_get(t, name, &v, &vl)) != PV_OK)
		return rc == PV_ENOTFOUND ? PV_EFORMAT : rc;
	if (vl != 8)
		return PV_EFORMAT;
	*out = pv_get_u64(v);
	return PV_OK;
}

static pv_status
meta_put_u64(struct pv_txn *t, const char *name, uint64_t val)
{
	uint8_t b[8];

	pv_put_u64(b, val);
	return meta_put(t, name, b, sizeof(b));
}

/* The root key. */

static pv_status
root_from_passphrase(const struct kms_unlock *u, const uint8_t *meta,
    uint8_t *root)
{
	char *pw;
	size_t len = 0;
	pv_status rc;

	if (u->passphrase == NULL)
		return PV_EPASSPHRASE;
	if ((pw = pv_secure_alloc(KMS_PASSPHRASE_MAX)) == NULL)
		return PV_ENOMEM;
	if ((rc = u->passphrase(u->arg, pw, KMS_PASSPHRASE_MAX, &len)) !=
	    PV_OK)
		goto out;
	if (len == 0 || len > KMS_PASSPHRASE_MAX) {
		rc = PV_EPASSPHRASE;
		goto out;
	}
	if (argon2id_hash_raw(pv_get_u32(meta + 1), pv_get_u32(meta + 5),
	    pv_get_u32(meta + 9), pw, len, meta + 13, KDF_SALT_LEN, root,
	    PV_KEY_LEN) != ARGON2_OK) {
		rc = PV_ECRYPTO;
		goto out;
	}
	rc = PV_OK;
out:
	pv_secure_free(pw, KMS_PASSPHRASE_MAX);
	return rc;
}

static pv_status
root_load(const struct kms_unlock *u, const uint8_t *meta, size_t metalen,
    uint8_t *root)
{
	if (metalen >= 1 && meta[0] == ROOT_KEY_FILE) {
		if (u->key_file == NULL)
			return PV_EINVAL;
		return kms_key_file_read(u->key_file, root);
	}
	if (metalen == ROOT_META_LEN && meta[0] == ROOT_PASSPHRASE) {
		/* Costs come from disk: bound them, or an edit hangs us. */
		if (pv_get_u32(meta + 1) < 1 ||
		    pv_get_u32(meta + 1) > KDF_TIME_MAX ||
		    pv_get_u32(meta + 5) < KMS_KDF_MEMORY_MIN ||
		    pv_get_u32(meta + 5) > KDF_MEMORY_MAX ||
		    pv_get_u32(meta + 9) != KDF_LANES)
			return PV_EFORMAT;
		return root_from_passphrase(u, meta, root);
	}
	return PV_EFORMAT;
}

/* The meta "root" value for a new root of the kind u asks for. */
static pv_status
root_meta_new(const struct kms_unlock *u, uint8_t meta[static ROOT_META_LEN],
    size_t *len)
{
	uint32_t tcost, mcost;
	pv_status rc;

	if (!u->use_passphrase) {
		meta[0] = ROOT_KEY_FILE;
		*len = 1;
		return PV_OK;
	}
	tcost = u->kdf_time ? u->kdf_time : KDF_TIME_DEFAULT;
	mcost = u->kdf_memory_kib ? u->kdf_memory_kib : KDF_MEMORY_DEFAULT;
	if (mcost < KMS_KDF_MEMORY_MIN || mcost > KDF_MEMORY_MAX ||
	    tcost > KDF_TIME_MAX)
		return PV_EINVAL;
	meta[0] = ROOT_PASSPHRASE;
	pv_put_u32(meta + 1, tcost);
	pv_put_u32(meta + 5, mcost);
	pv_put_u32(meta + 9, KDF_LANES);
	if ((rc = pv_random(meta + 13, KDF_SALT_LEN)) != PV_OK)
		return rc;
	*len = ROOT_META_LEN;
	return PV_OK;
}

/*
 * The root check of a vault whose rows are authenticated (every row MAC'd,
 * the ring sealed by META_RING_MAC) has its own label, so that no edit
 * without the root key can make such a vault pass for an older one whose
 * rows were not, and so be upgraded again over forged values.
 */
static void
root_check_aad(uint8_t aad[static 13 + KMS_VAULT_ID_LEN],
    const uint8_t *vault_id, int authed)
{
	memcpy(aad, authed ? "pv-root-chk-2" : "pv-root-check", 13);
	memcpy(aad + 13, vault_id, KMS_VAULT_ID_LEN);
}

/* The ring. */

static void
ring_key_encode(uint8_t out[static RING_KEY_LEN], enum kms_kind kind,
    uint32_t version)
{
	out[0] = (uint8_t)kind;
	pv_put_u32(out + 1, version);
}

/* The state is bound too: a retired key cannot be edited back to life. */
#define RING_AAD_LEN	(7 + KMS_VAULT_ID_LEN + RING_KEY_LEN + 1)

static void
ring_aad(uint8_t aad[static RING_AAD_LEN], const uint8_t *vault_id,
    enum kms_kind kind, uint32_t version, enum kms_state st)
{
	memcpy(aad, "pv-ring", 7);
	memcpy(aad + 7, vault_id, KMS_VAULT_ID_LEN);
	ring_key_encode(aad + 7 + KMS_VAULT_ID_LEN, kind, version);
	aad[RING_AAD_LEN - 1] = (uint8_t)st;
}

static void
ring_free(struct ring_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pv_secure_free(keys[i].key, PV_KEY_LEN);
	free(keys);
}

/* Create version of kind with fresh key material, in state st. */
static pv_status
ring_add(struct kms *k, struct pv_txn *t, enum kms_kind kind,
    uint32_t version, enum kms_state st)
{
	uint8_t rk[RING_KEY_LEN], val[RING_VAL_LEN], aad[RING_AAD_LEN];
	uint8_t *key;
	pv_status rc;

	if ((key = pv_secure_alloc(PV_KEY_LEN)) == NULL)
		return PV_ENOMEM;
	if ((rc = pv_random(key, PV_KEY_LEN)) != PV_OK)
		goto out;
	memset(val, 0, sizeof(val));
	val[RV_STATE] = (uint8_t)st;
	pv_put_u64(val + RV_CREATED, pv_now());
	ring_aad(aad, k->vault_id, kind, version, st);
	if ((rc = pv_aead_seal(val + RV_WRAPPED + PV_GCM_NONCE_LEN,
	    val + RV_WRAPPED, val + RV_WRAPPED + PV_GCM_NONCE_LEN + PV_KEY_LEN,
	    k->root, aad, sizeof(aad), key, PV_KEY_LEN)) != PV_OK)
		goto out;
	ring_key_encode(rk, kind, version);
	rc = pv_put(t, PV_T_RING, rk, sizeof(rk), val, sizeof(val),
	    PV_PUT_NOOVERWRITE);
out:
	pv_secure_free(key, PV_KEY_LEN);
	return rc;
}

static pv_status
ring_unwrap(const struct kms *k, enum kms_kind kind, uint32_t version,
    const uint8_t *val, uint8_t **out)
{
	uint8_t aad[RING_AAD_LEN];
	uint8_t *key;
	pv_status rc;

	if ((key = pv_secure_alloc(PV_KEY_LEN)) == NULL)
		return PV_ENOMEM;
	ring_aad(aad, k->vault_id, kind, version, val[RV_STATE]);
	rc = pv_aead_open(key, k->root, val + RV_WRAPPED,
	    val + RV_WRAPPED + PV_GCM_NONCE_LEN + PV_KEY_LEN, aad, sizeof(aad),
	    val + RV_WRAPPED + PV_GCM_NONCE_LEN, PV_KEY_LEN);
	if (rc != PV_OK) {
		pv_secure_free(key, PV_KEY_LEN);
		return rc;
	}
	*out = key;
	return PV_OK;
}

/*
 * Subkeys of the IDS key, which never rotates: anything derived from it
 * stays stable for the vault's lifetime.  HKDF labels keep them apart.
 */
enum { SUB_RECORD, SUB_TOKEN, SUB_PSEUDONYM, SUB_APIKEY, SUB_INDEX,
    SUB_AUDIT, SUB_ROW, SUB_RING, SUB_REASON, SUB__COUNT };
#define SUBKEYS_LEN	(SUB__COUNT * PV_KEY_LEN)

static pv_status
idkeys_derive(const uint8_t *ids, uint8_t **out)
{
	static const char *const label[SUB__COUNT] = {
		[SUB_RECORD] = "piivault record id",
		[SUB_TOKEN] = "piivault token",
		[SUB_PSEUDONYM] = "piivault pseudonym",
		[SUB_APIKEY] = "piivault api key",
		[SUB_INDEX] = "piivault index entry",
		[SUB_AUDIT] = "piivault audit",
		[SUB_ROW] = "piivault row auth",
		[SUB_RING] = "piivault ring auth",
		[SUB_REASON] = "piivault reason",
	};
	uint8_t *sub;
	pv_status rc = PV_OK;

	if ((sub = pv_secure_alloc(SUBKEYS_LEN)) == NULL)
		return PV_ENOMEM;
	for (int i = 0; i < SUB__COUNT && rc == PV_OK; i++)
		rc = pv_hkdf(sub + i * PV_KEY_LEN, PV_KEY_LEN, ids, PV_KEY_LEN,
		    NULL, 0, label[i], strlen(label[i]));
	if (rc != PV_OK) {
		pv_secure_free(sub, SUBKEYS_LEN);
		return rc;
	}
	*out = sub;
	return PV_OK;
}

/* A ring entry's public row, from its key and value. */
static void
ring_row(struct kms_key_info *out, enum kms_kind kind, uint32_t version,
    const uint8_t val[static RING_VAL_LEN])
{
	out->kind = kind;
	out->version = version;
	out->state = val[RV_STATE];
	out->created = pv_get_u64(val + RV_CREATED);
	out->wraps_live = pv_get_u64(val + RV_LIVE);
	out->wraps_total = pv_get_u64(val + RV_TOTAL);
}

/* What ring_walk hands each entry to: its row and its stored value. */
typedef pv_status ring_visit_fn(void *arg, const struct kms_key_info *row,
    const uint8_t val[static RING_VAL_LEN]);

/*
 * Visit every ring entry in t, ordered by kind then version.  PV_EFORMAT
 * for an entry of the wrong size; a visit's failure stops the walk.
 */
static pv_status
ring_walk(struct pv_txn *t, ring_visit_fn *visit, void *arg)
{
	struct kms_key_info row;
	struct pv_cursor *c = NULL;
	const uint8_t *key, *val;
	size_t kl, vl;
	pv_status rc;

	if ((rc = pv_cursor_open(t, PV_T_RING, &c)) != PV_OK)
		return rc;
	for (rc = pv_cursor_seek(c, NULL, 0, 0, (const void **)&key, &kl,
	    (const void **)&val, &vl); rc == PV_OK;
	    rc = pv_cursor_next(c, 0, (const void **)&key, &kl,
	    (const void **)&val, &vl)) {
		if (kl != RING_KEY_LEN || vl != RING_VAL_LEN) {
			rc = PV_EFORMAT;
			break;
		}
		ring_row(&row, key[0], pv_get_u32(key + 1), val);
		if ((rc = visit(arg, &row, val)) != PV_OK)
			break;
	}
	pv_cursor_close(c);
	return rc == PV_ENOTFOUND ? PV_OK : rc;
}

/*
 * What the ring MAC covers of each entry: all of it, the wrap counters too
 * (so that a KEK's cryptoperiod cannot be put off by lowering them); they
 * change on every wrap, and kms_count_wraps seals the ring again each time.
 */
#define RING_MAC_ENTRY	(RING_KEY_LEN + 1 + 8 + 16 + KMS_WRAPPED_LEN)

struct ring_mac_acc {
	uint8_t		*buf;
	size_t		 len, cap;
};

static pv_status
ring_mac_one(void *arg, const struct kms_key_info *row,
    const uint8_t val[static RING_VAL_LEN])
{
	struct ring_mac_acc *a = arg;
	uint8_t *nb, *p;

	if (a->len + RING_MAC_ENTRY > a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 32 * RING_MAC_ENTRY;

		if ((nb = malloc(cap)) == NULL)
			return PV_ENOMEM;
		if (a->len > 0)
			memcpy(nb, a->buf, a->len);
		free(a->buf);
		a->buf = nb;
		a->cap = cap;
	}
	p = a->buf + a->len;
	ring_key_encode(p, row->kind, row->version);
	p[RING_KEY_LEN] = val[RV_STATE];
	memcpy(p + RING_KEY_LEN + 1, val + RV_CREATED, 8);
	memcpy(p + RING_KEY_LEN + 9, val + RV_LIVE, 8);
	memcpy(p + RING_KEY_LEN + 17, val + RV_TOTAL, 8);
	memcpy(p + RING_KEY_LEN + 25, val + RV_WRAPPED, KMS_WRAPPED_LEN);
	a->len += RING_MAC_ENTRY;
	return PV_OK;
}

/*
 * The ring's MAC under the ring-auth subkey of the IDS key (which never
 * rotates, so a root rotation leaves it as it is): vault id, generation,
 * every entry with its wrap counters, and the revocation list
 * (KMS_META_REVOKED), so that none of them can be edited, deleted or
 * copied back from an older file alone.
 */
static pv_status
ring_mac(struct pv_txn *t, const uint8_t *idkeys, const uint8_t *vault_id,
    uint8_t out[static PV_HMAC_LEN])
{
	struct ring_mac_acc a = { NULL, 0, 0 };
	uint8_t genb[8], rlen[8];
	const void *rev = NULL, *g;
	size_t revlen = 0, gl;
	pv_status rc;

	if ((rc = pv_get(t, PV_T_META, META_RING_GEN, strlen(META_RING_GEN),
	    &g, &gl)) != PV_OK)
		goto out;
	if (gl != 8) {
		rc = PV_EINTEGRITY;
		goto out;
	}
	memcpy(genb, g, 8);
	rc = pv_get(t, PV_T_META, KMS_META_REVOKED, strlen(KMS_META_REVOKED),
	    &rev, &revlen);
	if (rc == PV_ENOTFOUND) {
		rev = NULL;
		revlen = 0;
	} else if (rc != PV_OK)
		goto out;
	pv_put_u64(rlen, revlen);
	if ((rc = ring_walk(t, ring_mac_one, &a)) != PV_OK)
		goto out;
	{
		struct pv_part parts[6] = {
			{ "pv-ring-mac", 11 }, { vault_id, KMS_VAULT_ID_LEN },
			{ genb, 8 }, { rlen, 8 }, { rev, revlen },
			{ a.buf, a.len },
		};

		rc = pv_hmac(out, idkeys + SUB_RING * PV_KEY_LEN, PV_KEY_LEN,
		    parts, 6);
	}
out:
	free(a.buf);
	return rc;
}

/* Check the stored ring MAC against t's ring: PV_EINTEGRITY if it differs. */
static pv_status
ring_mac_check(struct pv_txn *t, const uint8_t *idkeys,
    const uint8_t *vault_id)
{
	uint8_t mac[PV_HMAC_LEN];
	const void *v;
	size_t vl;
	pv_status rc;

	if ((rc = ring_mac(t, idkeys, vault_id, mac)) != PV_OK)
		return rc;
	rc = pv_get(t, PV_T_META, META_RING_MAC, strlen(META_RING_MAC), &v,
	    &vl);
	if (rc == PV_ENOTFOUND || (rc == PV_OK && (vl != PV_HMAC_LEN ||
	    !pv_ct_eq(v, mac, PV_HMAC_LEN)))) {
		pv_log(PV_LOG_ERROR, "integrity alarm: ring failed "
		    "authentication (ring_mac)");
		rc = PV_EINTEGRITY;
	}
	pv_cleanse(mac, sizeof(mac));
	return rc;
}

/* The ring as ring_load gathers it, before it is swapped in. */
struct ring_gather {
	struct kms	*k;
	struct ring_key	*keys;
	size_t		 n;
	uint8_t		*idkeys;	/* from the one active IDS key */
};

static pv_status
ring_gather_one(void *arg, const struct kms_key_info *row,
    const uint8_t val[static RING_VAL_LEN])
{
	struct ring_gather *g = arg;
	struct ring_key *nk;
	pv_status rc;

	if ((nk = realloc(g->keys, (g->n + 1) * sizeof(*nk))) == NULL)
		return PV_ENOMEM;
	g->keys = nk;
	nk = &g->keys[g->n++];
	nk->kind = row->kind;
	nk->version = row->version;
	nk->state = row->state;
	nk->key = NULL;
	nk->has_pub = 0;
	if (nk->state != KMS_DESTROYED &&
	    (rc = ring_unwrap(g->k, nk->kind, nk->version, val, &nk->key)) !=
	    PV_OK)
		return rc;
	if (nk->kind == KMS_SIGN) {
		if (nk->key != NULL) {
			if ((rc = pv_ed25519_public(nk->pub, nk->key)) != PV_OK)
				return rc;
			nk->has_pub = 1;
		} else {
			/* All zero: destroyed before public keys were kept. */
			uint8_t any = 0;

			memcpy(nk->pub, val + RV_PUB, PV_ED25519_LEN);
			for (size_t i = 0; i < PV_ED25519_LEN; i++)
				any |= nk->pub[i];
			nk->has_pub = any != 0;
		}
	}
	if (nk->kind != KMS_IDS || nk->state != KMS_ACTIVE)
		return PV_OK;
	if (g->idkeys != NULL)
		return PV_EFORMAT;	/* two active IDS keys */
	return idkeys_derive(nk->key, &g->idkeys);
}

/*
 * Read and unwrap the whole ring, then swap it in under the write lock.
 * The ring is small (a few versions per kind), so a full read is cheap.
 */
static pv_status
ring_load(struct kms *k, struct pv_txn *t, uint64_t gen)
{
	struct ring_gather g = { k, NULL, 0, NULL };
	pv_status rc;

	if ((rc = ring_walk(t, ring_gather_one, &g)) != PV_OK)
		goto out;
	if (g.idkeys == NULL) {
		rc = PV_EFORMAT;
		goto out;
	}
	if (k->authed &&
	    (rc = ring_mac_check(t, g.idkeys, k->vault_id)) != PV_OK)
		goto out;
	if (pthread_rwlock_wrlock(&k->lock) != 0) {
		rc = PV_EIO;
		goto out;
	}
	/*
	 * Only ever forward: a reader whose snapshot predates a change must
	 * not roll back the ring another thread's transaction relies on.
	 */
	if (gen <= k->gen && k->keys != NULL) {
		(void)pthread_rwlock_unlock(&k->lock);
		rc = PV_OK;
		goto out;
	}
	ring_free(k->keys, k->nkeys);
	pv_secure_free(k->idkeys, SUBKEYS_LEN);
	k->keys = g.keys;
	k->nkeys = g.n;
	k->idkeys = g.idkeys;
	k->gen = gen;
	g.keys = NULL;
	g.idkeys = NULL;
	g.n = 0;
	(void)pthread_rwlock_unlock(&k->lock);
	rc = PV_OK;
out:
	ring_free(g.keys, g.n);
	pv_secure_free(g.idkeys, SUBKEYS_LEN);
	return rc;
}

static struct kms *
kms_alloc(void)
{
	struct kms *k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	if (pthread_rwlock_init(&k->lock, NULL) != 0) {
		free(k);
		return NULL;
	}
	if ((k->root = pv_secure_alloc(PV_KEY_LEN)) == NULL) {
		(void)pthread_rwlock_destroy(&k->lock);
		free(k);
		return NULL;
	}
	return k;
}

void
kms_free(struct kms *k)
{
	if (k == NULL)
		return;
	ring_free(k->keys, k->nkeys);
	pv_secure_free(k->idkeys, SUBKEYS_LEN);
	pv_secure_free(k->root, PV_KEY_LEN);
	(void)pthread_rwlock_destroy(&k->lock);
	free(k);
}

pv_status
kms_init(struct pv_txn *t, const struct kms_unlock *u, struct kms **out)
{
	uint8_t rootmeta[ROOT_META_LEN], check[PV_GCM_NONCE_LEN +
	    PV_GCM_TAG_LEN], aad[13 + KMS_VAULT_ID_LEN], fmt[4];
	size_t rootmetalen, vl;
	const void *v;
	struct kms *k;
	pv_status rc;

	/* Another init may have won the race for this store. */
	if ((rc = meta_get(t, META_FORMAT, &v, &vl)) != PV_ENOTFOUND)
		return rc == PV_OK ? PV_EEXIST : rc;
	if ((k = kms_alloc()) == NULL)
		return PV_ENOMEM;
	if ((rc = pv_random(k->vault_id, sizeof(k->vault_id))) != PV_OK)
		goto out;
	if ((rc = root_meta_new(u, rootmeta, &rootmetalen)) != PV_OK)
		goto out;
	if ((rc = root_load(u, rootmeta, rootmetalen, k->root)) != PV_OK)
		goto out;
	root_check_aad(aad, k->vault_id, 1);
	if ((rc = pv_aead_seal(NULL, check, check + PV_GCM_NONCE_LEN, k->root,
	    aad, sizeof(aad), NULL, 0)) != PV_OK)
		goto out;
	pv_put_u32(fmt, KMS_FORMAT_VERSION);
	if ((rc = meta_put(t, META_FORMAT, fmt, sizeof(fmt))) != PV_OK ||
	    (rc = meta_put(t, META_VAULT_ID, k->vault_id,
	    sizeof(k->vault_id))) != PV_OK ||
	    (rc = meta_put(t, META_ROOT, rootmeta, rootmetalen)) != PV_OK ||
	    (rc = meta_put(t, META_ROOT_CHECK, check, sizeof(check))) !=
	    PV_OK ||
	    (rc = meta_put_u64(t, META_RING_GEN, 1)) != PV_OK)
		goto out;
	if ((rc = ring_add(k, t, KMS_KEK, 1, KMS_ACTIVE)) != PV_OK ||
	    (rc = ring_add(k, t, KMS_IDS, 1, KMS_ACTIVE)) != PV_OK ||
	    (rc = ring_add(k, t, KMS_INDEX, 1, KMS_ACTIVE)) != PV_OK ||
	    (rc = ring_add(k, t, KMS_SIGN, 1, KMS_ACTIVE)) != PV_OK)
		goto out;
	if ((rc = ring_load(k, t, 1)) != PV_OK)
		goto out;
	/* A new vault authenticates its rows from the start. */
	k->authed = 1;
	if ((rc = kms_ring_seal(k, t)) != PV_OK)
		goto out;
	*out = k;
	k = NULL;
out:
	kms_free(k);
	return rc;
}

pv_status
kms_open(struct pv_txn *t, const struct kms_unlock *u, struct kms **out)
{
	uint8_t aad[13 + KMS_VAULT_ID_LEN];
	const uint8_t *v;
	struct kms *k = NULL;
	uint64_t gen;
	size_t vl;
	pv_status rc;

	if ((rc = meta_get(t, META_FORMAT, (const void **)&v, &vl)) != PV_OK) {
		rc = rc == PV_ENOTFOUND ? PV_EFORMAT : rc;
		goto out;
	}
	if (vl != 4 || pv_get_u32(v) != KMS_FORMAT_VERSION) {
		if (vl == 4)
			pv_log(PV_LOG_ERROR, "vault format %u is not %u, the "
			    "only format this piivault reads", pv_get_u32(v),
			    KMS_FORMAT_VERSION);
		rc = PV_EFORMAT;
		goto out;
	}
	if ((k = kms_alloc()) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	if ((rc = meta_get(t, META_VAULT_ID, (const void **)&v, &vl)) !=
	    PV_OK || vl != KMS_VAULT_ID_LEN) {
		rc = rc == PV_OK || rc == PV_ENOTFOUND ? PV_EFORMAT : rc;
		goto out;
	}
	memcpy(k->vault_id, v, KMS_VAULT_ID_LEN);
	if ((rc = meta_get(t, META_ROOT, (const void **)&v, &vl)) != PV_OK) {
		rc = rc == PV_ENOTFOUND ? PV_EFORMAT : rc;
		goto out;
	}
	if ((rc = root_load(u, v, vl, k->root)) != PV_OK)
		goto out;
	if ((rc = meta_get(t, META_ROOT_CHECK, (const void **)&v, &vl)) !=
	    PV_OK || vl != PV_GCM_NONCE_LEN + PV_GCM_TAG_LEN) {
		rc = rc == PV_OK || rc == PV_ENOTFOUND ? PV_EFORMAT : rc;
		goto out;
	}
	root_check_aad(aad, k->vault_id, 1);
	rc = pv_aead_open(NULL, k->root, v, v + PV_GCM_NONCE_LEN, aad,
	    sizeof(aad), NULL, 0);
	k->authed = rc == PV_OK;
	if (rc == PV_EINTEGRITY) {
		/* A vault made before rows were authenticated. */
		root_check_aad(aad, k->vault_id, 0);
		rc = pv_aead_open(NULL, k->root, v, v + PV_GCM_NONCE_LEN, aad,
		    sizeof(aad), NULL, 0);
	}
	if (rc == PV_EINTEGRITY) {
		rc = PV_EBADKEY;
		goto out;
	}
	if (rc != PV_OK)
		goto out;
	if ((rc = meta_get_u64(t, META_RING_GEN, &gen)) != PV_OK)
		goto out;
	if ((rc = ring_load(k, t, gen)) != PV_OK)
		goto out;
	*out = k;
	k = NULL;
out:
	kms_free(k);
	return rc;
}

pv_status
kms_sync(struct kms *k, struct pv_txn *t)
{
	uint64_t gen, have;
	pv_status rc;

	if ((rc = meta_get_u64(t, META_RING_GEN, &gen)) != PV_OK)
		return rc;
	have = kms_generation(k);
	if (gen <= have)
		return PV_OK;
	return ring_load(k, t, gen);
}

const uint8_t *
kms_vault_id(const struct kms *k)
{
	return k->vault_id;
}

uint64_t
kms_generation(struct kms *k)
{
	uint64_t gen;

	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return 0;
	gen = k->gen;
	(void)pthread_rwlock_unlock(&k->lock);
	return gen;
}

/* Find kind's active version, or version v if v != 0; lock held. */
static const struct ring_key *
ring_find(const struct kms *k, enum kms_kind kind, uint32_t v)
{
	for (size_t i = 0; i < k->nkeys; i++) {
		const struct ring_key *r = &k->keys[i];

		if (r->kind != kind)
			continue;
		if (v == 0 ? r->state == KMS_ACTIVE : r->version == v)
			return r;
	}
	return NULL;
}

#define DEK_AAD_MAX	(KMS_VAULT_ID_LEN + 4 + KMS_DEK_CTX_MAX)

static void
dek_aad(uint8_t aad[static DEK_AAD_MAX], size_t *aadlen, const struct kms *k,
    uint32_t version, const void *ctx, size_t ctxlen)
{
	memcpy(aad, k->vault_id, KMS_VAULT_ID_LEN);
	pv_put_u32(aad + KMS_VAULT_ID_LEN, version);
	memcpy(aad + KMS_VAULT_ID_LEN + 4, ctx, ctxlen);
	*aadlen = KMS_VAULT_ID_LEN + 4 + ctxlen;
}

pv_status
kms_dek_wrap(struct kms *k, const void *ctx, size_t ctxlen,
    const uint8_t *dek, uint32_t *version,
    uint8_t wrapped[static KMS_WRAPPED_LEN])
{
	uint8_t aad[DEK_AAD_MAX], out[KMS_WRAPPED_LEN];
	const struct ring_key *kek;
	size_t aadlen;
	pv_status rc;
	uint32_t v;

	if (ctxlen > KMS_DEK_CTX_MAX)
		return PV_EINVAL;
	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	if ((kek = ring_find(k, KMS_KEK, 0)) == NULL) {
		rc = PV_EKEYSTATE;
		goto out;
	}
	v = kek->version;
	dek_aad(aad, &aadlen, k, v, ctx, ctxlen);
	if ((rc = pv_aead_seal(out + PV_GCM_NONCE_LEN, out,
	    out + PV_GCM_NONCE_LEN + PV_KEY_LEN, kek->key, aad, aadlen, dek,
	    PV_KEY_LEN)) != PV_OK)
		goto out;
	memcpy(wrapped, out, sizeof(out));
	*version = v;
out:
	(void)pthread_rwlock_unlock(&k->lock);
	return rc;
}

pv_status
kms_dek_new(struct kms *k, const void *ctx, size_t ctxlen, uint8_t *dek,
    uint32_t *version, uint8_t wrapped[static KMS_WRAPPED_LEN])
{
	pv_status rc;

	if ((rc = pv_random(dek, PV_KEY_LEN)) != PV_OK ||
	    (rc = kms_dek_wrap(k, ctx, ctxlen, dek, version, wrapped)) !=
	    PV_OK)
		pv_cleanse(dek, PV_KEY_LEN);
	return rc;
}

pv_status
kms_dek_open(struct kms *k, const void *ctx, size_t ctxlen, uint32_t version,
    const uint8_t wrapped[static KMS_WRAPPED_LEN], uint8_t *dek)
{
	uint8_t aad[DEK_AAD_MAX];
	const struct ring_key *kek;
	size_t aadlen;
	pv_status rc;

	if (version == 0 || ctxlen > KMS_DEK_CTX_MAX)
		return version == 0 ? PV_EKEYSTATE : PV_EINVAL;
	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	kek = ring_find(k, KMS_KEK, version);
	if (kek == NULL || kek->key == NULL || (kek->state != KMS_ACTIVE &&
	    kek->state != KMS_DECRYPT_ONLY)) {
		rc = PV_EKEYSTATE;
		goto out;
	}
	dek_aad(aad, &aadlen, k, version, ctx, ctxlen);
	rc = pv_aead_open(dek, kek->key, wrapped,
	    wrapped + PV_GCM_NONCE_LEN + PV_KEY_LEN, aad, aadlen,
	    wrapped + PV_GCM_NONCE_LEN, PV_KEY_LEN);
out:
	(void)pthread_rwlock_unlock(&k->lock);
	return rc;
}

/* Source versions a batch keeps set up; more are rare (and still work). */
#define REWRAP_FROM_MAX	8

struct kms_rewrap {
	struct kms	*k;
	uint32_t	 to_v;
	struct pv_gcm	*to;
	size_t		 nfrom;
	uint32_t	 from_v[REWRAP_FROM_MAX];
	struct pv_gcm	*from[REWRAP_FROM_MAX];
	uint8_t		*dek;		/* secure scratch */
};

/* Set up KEK version v (0: the active one), *found, if it may unwrap. */
static pv_status
gcm_for(struct kms *k, uint32_t v, uint32_t *found, struct pv_gcm **out)
{
	const struct ring_key *r;
	pv_status rc;

	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	r = ring_find(k, KMS_KEK, v);
	if (r == NULL || r->key == NULL || (r->state != KMS_ACTIVE &&
	    r->state != KMS_DECRYPT_ONLY))
		rc = PV_EKEYSTATE;
	else {
		*found = r->version;
		rc = pv_gcm_new(r->key, out);
	}
	(void)pthread_rwlock_unlock(&k->lock);
	return rc;
}

pv_status
kms_rewrap_new(struct kms *k, struct kms_rewrap **out, uint32_t *newv)
{
	struct kms_rewrap *r;
	pv_status rc;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return PV_ENOMEM;
	r->k = k;
	if ((r->dek = pv_secure_alloc(PV_KEY_LEN)) == NULL) {
		free(r);
		return PV_ENOMEM;
	}
	if ((rc = gcm_for(k, 0, &r->to_v, &r->to)) != PV_OK) {
		kms_rewrap_free(r);
		return rc;
	}
	*newv = r->to_v;
	*out = r;
	return PV_OK;
}

pv_status
kms_rewrap_dek(struct kms_rewrap *r, const void *ctx, size_t ctxlen,
    uint32_t version, const uint8_t nonce[static PV_GCM_NONCE_LEN],
    uint8_t wrapped[static KMS_WRAPPED_LEN])
{
	uint8_t aad[DEK_AAD_MAX], out[KMS_WRAPPED_LEN];
	struct pv_gcm *from = NULL, *once = NULL;
	size_t aadlen, i;
	uint32_t found;
	pv_status rc;

	if (version == 0 || ctxlen > KMS_DEK_CTX_MAX)
		return version == 0 ? PV_EKEYSTATE : PV_EINVAL;
	for (i = 0; i < r->nfrom; i++)
		if (r->from_v[i] == version)
			from = r->from[i];
	if (from == NULL) {
		if ((rc = gcm_for(r->k, version, &found, &from)) != PV_OK)
			return rc;
		if (r->nfrom < REWRAP_FROM_MAX) {
			r->from_v[r->nfrom] = version;
			r->from[r->nfrom++] = from;
		} else
			once = from;
	}
	dek_aad(aad, &aadlen, r->k, version, ctx, ctxlen);
	rc = pv_gcm_open(from, r->dek, wrapped, wrapped + PV_GCM_NONCE_LEN +
	    PV_KEY_LEN, aad, aadlen, wrapped + PV_GCM_NONCE_LEN, PV_KEY_LEN);
	pv_gcm_free(once);
	if (rc != PV_OK)
		return rc;
	dek_aad(aad, &aadlen, r->k, r->to_v, ctx, ctxlen);
	memcpy(out, nonce, PV_GCM_NONCE_LEN);
	rc = pv_gcm_seal(r->to, out + PV_GCM_NONCE_LEN, out +
	    PV_GCM_NONCE_LEN + PV_KEY_LEN, nonce, aad, aadlen, r->dek,
	    PV_KEY_LEN);
	pv_cleanse(r->dek, PV_KEY_LEN);
	if (rc == PV_OK)
		memcpy(wrapped, out, sizeof(out));
	return rc;
}

void
kms_rewrap_free(struct kms_rewrap *r)
{
	if (r == NULL)
		return;
	pv_gcm_free(r->to);
	for (size_t i = 0; i < r->nfrom; i++)
		pv_gcm_free(r->from[i]);
	pv_secure_free(r->dek, PV_KEY_LEN);
	free(r);
}

pv_status
kms_count_wraps(struct kms *k, struct pv_txn *t, uint32_t version,
    int64_t delta, uint64_t n_new)
{
	uint8_t rk[RING_KEY_LEN], val[RING_VAL_LEN];
	const void *v;
	size_t vl;
	uint64_t live, total;
	pv_status rc;

	ring_key_encode(rk, KMS_KEK, version);
	if ((rc = pv_get(t, PV_T_RING, rk, sizeof(rk), &v, &vl)) != PV_OK)
		return rc == PV_ENOTFOUND ? PV_EKEYSTATE : rc;
	if (vl != RING_VAL_LEN)
		return PV_EFORMAT;
	memcpy(val, v, sizeof(val));
	/* Unsigned and saturating: the stored values come from disk. */
	live = pv_get_u64(val + RV_LIVE);
	if (delta < 0) {
		uint64_t d = (uint64_t)(-(delta + 1)) + 1;

		live = d > live ? 0 : live - d;
	} else
		live = (uint64_t)delta > UINT64_MAX - live ? UINT64_MAX :
		    live + (uint64_t)delta;
	total = pv_get_u64(val + RV_TOTAL);
	total = n_new > UINT64_MAX - total ? UINT64_MAX : total + n_new;
	pv_put_u64(val + RV_LIVE, live);
	pv_put_u64(val + RV_TOTAL, total);
	if ((rc = pv_put(t, PV_T_RING, rk, sizeof(rk), val, sizeof(val),
	    0)) != PV_OK)
		return rc;
	/* The counters are under the ring MAC: seal it again. */
	return k->authed ? kms_ring_seal(k, t) : PV_OK;
}

/* The permutation of domain d, forward (seal) or back, under the lock. */
static pv_status
id_permute(struct kms *k, enum kms_id_domain d, int seal,
    uint8_t out[static 16], const uint8_t in[static 16])
{
	const uint8_t *key;
	pv_status rc;

	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	key = k->idkeys + (d == KMS_ID_TOKEN ? SUB_TOKEN : SUB_RECORD) *
	    PV_KEY_LEN;
	if (seal)
		rc = pv_block_encrypt(out, key, in);
	else
		rc = pv_block_decrypt(out, key, in);
	(void)pthread_rwlock_unlock(&k->lock);
	return rc;
}

pv_status
kms_id_seal(struct kms *k, enum kms_id_domain d, uint8_t out[static 16],
    const uint8_t in[static 16])
{
	return id_permute(k, d, 1, out, in);
}

pv_status
kms_id_open(struct kms *k, enum kms_id_domain d, uint8_t out[static 16],
    const uint8_t in[static 16])
{
	return id_permute(k, d, 0, out, in);
}

pv_status
kms_keyed_hash(struct kms *k, enum kms_hash_domain d,
    uint8_t out[static PV_HMAC_LEN], const struct pv_part *parts, size_t n)
{
	static const int sub[] = {
		[KMS_H_PSEUDONYM] = SUB_PSEUDONYM, [KMS_H_APIKEY] = SUB_APIKEY,
		[KMS_H_INDEX] = SUB_INDEX, [KMS_H_AUDIT] = SUB_AUDIT,
		[KMS_H_ROW] = SUB_ROW,
	};
	pv_status rc;

	if ((unsigned)d >= sizeof(sub) / sizeof(sub[0]) || d == 0)
		return PV_EINVAL;
	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	rc = pv_hmac(out, k->idkeys + sub[d] * PV_KEY_LEN, PV_KEY_LEN, parts,
	    n);
	(void)pthread_rwlock_unlock(&k->lock);
	return rc;
}

pv_status
kms_reason_seal(struct kms *k, uint8_t *out, const void *aad, size_t aadlen,
    const void *pt, size_t len)
{
	pv_status rc;

	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	rc = pv_aead_seal(out + PV_GCM_NONCE_LEN, out,
	    out + PV_GCM_NONCE_LEN + len, k->idkeys + SUB_REASON * PV_KEY_LEN,
	    aad, aadlen, pt, len);
	(void)pthread_rwlock_unlock(&k->lock);
	return rc;
}

pv_status
kms_reason_open(struct kms *k, uint8_t *pt, const void *aad, size_t aadlen,
    const uint8_t *in, size_t inlen)
{
	size_t len;
	pv_status rc;

	if (inlen < KMS_SEAL_OVERHEAD)
		return PV_EINTEGRITY;
	len = inlen - KMS_SEAL_OVERHEAD;
	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	rc = pv_aead_open(pt, k->idkeys + SUB_REASON * PV_KEY_LEN, in,
	    in + PV_GCM_NONCE_LEN + len, aad, aadlen, in + PV_GCM_NONCE_LEN,
	    len);
	(void)pthread_rwlock_unlock(&k->lock);
	return rc;
}

pv_status
kms_blind_index(struct kms *k, uint32_t version,
    uint8_t out[static PV_HMAC_LEN], const char *field, size_t fieldlen,
    const void *value, size_t valuelen)
{
	const struct ring_key *ik;
	const uint8_t sep = 0;
	struct pv_part parts[3] = {
		{ field, fieldlen }, { &sep, 1 }, { value, valuelen },
	};
	pv_status rc;

	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	ik = ring_find(k, KMS_INDEX, version);
	if (ik == NULL || ik->key == NULL || (ik->state != KMS_ACTIVE &&
	    ik->state != KMS_DECRYPT_ONLY))
		rc = PV_EKEYSTATE;
	else
		rc = pv_hmac(out, ik->key, PV_KEY_LEN, parts, 3);
	(void)pthread_rwlock_unlock(&k->lock);
	return rc;
}

size_t
kms_usable_versions(struct kms *k, enum kms_kind kind, uint32_t *out,
    size_t max)
{
	size_t n = 0;

	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return 0;
	/* The active version first, then the others newest first. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = k->nkeys; i > 0 && n < max; i--) {
			const struct ring_key *r = &k->keys[i - 1];

			if (r->kind == kind && r->key != NULL &&
			    (pass == 0 ? r->state == KMS_ACTIVE :
			    r->state == KMS_DECRYPT_ONLY))
				out[n++] = r->version;
		}
	(void)pthread_rwlock_unlock(&k->lock);
	return n;
}

uint32_t
kms_active_version(struct kms *k, enum kms_kind kind)
{
	uint32_t v;

	return kms_usable_versions(k, kind, &v, 1) == 1 &&
	    kms_version_state(k, kind, v) == KMS_ACTIVE ? v : 0;
}

enum kms_state
kms_version_state(struct kms *k, enum kms_kind kind, uint32_t version)
{
	const struct ring_key *r;
	enum kms_state st = 0;

	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return 0;
	if ((r = ring_find(k, kind, version)) != NULL)
		st = r->state;
	(void)pthread_rwlock_unlock(&k->lock);
	return st;
}

/* Lifecycle. */

/* A new ring generation, and the ring sealed anew as it now stands. */
static pv_status
ring_bump(struct kms *k, struct pv_txn *t)
{
	uint64_t gen;
	pv_status rc;

	if ((rc = meta_get_u64(t, META_RING_GEN, &gen)) != PV_OK ||
	    (rc = meta_put_u64(t, META_RING_GEN, gen + 1)) != PV_OK)
		return rc;
	return k->authed ? kms_ring_seal(k, t) : PV_OK;
}

/* Read one ring entry from t into val. */
static pv_status
ring_read(struct pv_txn *t, enum kms_kind kind, uint32_t version,
    uint8_t val[static RING_VAL_LEN])
{
	uint8_t rk[RING_KEY_LEN];
	const void *v;
	size_t vl;
	pv_status rc;

	ring_key_encode(rk, kind, version);
	if ((rc = pv_get(t, PV_T_RING, rk, sizeof(rk), &v, &vl)) != PV_OK)
		return rc;
	if (vl != RING_VAL_LEN)
		return PV_EFORMAT;
	memcpy(val, v, RING_VAL_LEN);
	return PV_OK;
}

/*
 * Rewrite an entry in state st: its key re-sealed under root (the state is
 * in the AAD), or, for KMS_DESTROYED, its key material overwritten with
 * zeros.  Creation time and counters are kept.
 */
static pv_status
ring_restate(struct kms *k, struct pv_txn *t, const uint8_t *root,
    enum kms_kind kind, uint32_t version, enum kms_state st)
{
	uint8_t rk[RING_KEY_LEN], val[RING_VAL_LEN], aad[RING_AAD_LEN];
	uint8_t *key = NULL;
	pv_status rc;

	if ((rc = ring_read(t, kind, version, val)) != PV_OK)
		return rc;
	if (val[RV_STATE] == KMS_DESTROYED)
		return st == KMS_DESTROYED ? PV_OK : PV_EKEYSTATE;
	if (st == KMS_DESTROYED && kind == KMS_SIGN) {
		/* The private key goes; the public key stays, to verify. */
		if ((rc = ring_unwrap(k, kind, version, val, &key)) != PV_OK)
			return rc;
		memset(val + RV_WRAPPED, 0, KMS_WRAPPED_LEN);
		rc = pv_ed25519_public(val + RV_PUB, key);
		pv_secure_free(key, PV_KEY_LEN);
		if (rc != PV_OK)
			return rc;
	} else if (st == KMS_DESTROYED) {
		memset(val + RV_WRAPPED, 0, KMS_WRAPPED_LEN);
	} else {
		if ((rc = ring_unwrap(k, kind, version, val, &key)) != PV_OK)
			return rc;
		ring_aad(aad, k->vault_id, kind, version, st);
		rc = pv_aead_seal(val + RV_WRAPPED + PV_GCM_NONCE_LEN,
		    val + RV_WRAPPED, val + RV_WRAPPED + PV_GCM_NONCE_LEN +
		    PV_KEY_LEN, root, aad, sizeof(aad), key, PV_KEY_LEN);
		pv_secure_free(key, PV_KEY_LEN);
		if (rc != PV_OK)
			return rc;
	}
	val[RV_STATE] = (uint8_t)st;
	ring_key_encode(rk, kind, version);
	return pv_put(t, PV_T_RING, rk, sizeof(rk), val, sizeof(val), 0);
}

pv_status
kms_rotate(struct kms *k, struct pv_txn *t, enum kms_kind kind,
    uint32_t *newv)
{
	struct kms_key_info *info = NULL;
	uint32_t max = 0;
	size_t n = 0;
	pv_status rc;

	if (kind != KMS_KEK && kind != KMS_INDEX && kind != KMS_SIGN)
		return PV_EINVAL;	/* ids must not change */
	if ((rc = kms_status(k, t, &info, &n)) != PV_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (info[i].kind != kind)
			continue;
		if (info[i].version > max)
			max = info[i].version;
		/*
		 * An older signing key only verifies: nothing needs its
		 * private half, so it is destroyed now, its public half kept.
		 */
		if (info[i].state == KMS_ACTIVE &&
		    (rc = ring_restate(k, t, k->root, kind, info[i].version,
		    kind == KMS_SIGN ? KMS_DESTROYED : KMS_DECRYPT_ONLY)) !=
		    PV_OK)
			goto out;
	}
	if (max == UINT32_MAX) {
		rc = PV_EFULL;
		goto out;
	}
	if ((rc = ring_add(k, t, kind, max + 1, KMS_ACTIVE)) != PV_OK ||
	    (rc = ring_bump(k, t)) != PV_OK)
		goto out;
	*newv = max + 1;
out:
	free(info);
	return rc;
}

pv_status
kms_set_state(struct kms *k, struct pv_txn *t, enum kms_kind kind,
    uint32_t version, enum kms_state st)
{
	uint8_t val[RING_VAL_LEN];
	pv_status rc;

	if ((rc = ring_read(t, kind, version, val)) != PV_OK)
		return rc;
	/*
	 * Only down the lifecycle: decrypt-only <-> retired -> destroyed.
	 * Making a version active is kms_rotate's alone, and an active one
	 * can only be destroyed (rotate first to retire it); ids are never
	 * retired, only destroyed with the vault.  Signing keys change only
	 * by kms_rotate, which destroys the older one's private key: the
	 * active one must stay to sign receipts, and no older one has a
	 * private key left to destroy.
	 */
	if (st == KMS_ACTIVE || kind == KMS_SIGN)
		return PV_EKEYSTATE;
	if (val[RV_STATE] == KMS_DESTROYED)
		return st == KMS_DESTROYED ? PV_OK : PV_EKEYSTATE;
	if (val[RV_STATE] == st)
		return PV_OK;
	if (st != KMS_DESTROYED && (val[RV_STATE] == KMS_ACTIVE ||
	    (kind != KMS_KEK && kind != KMS_INDEX)))
		return PV_EKEYSTATE;
	if ((rc = ring_restate(k, t, k->root, kind, version, st)) != PV_OK)
		return rc;
	return ring_bump(k, t);
}

pv_status
kms_rotate_root(struct kms *k, struct pv_txn *t, const struct kms_unlock *nu)
{
	uint8_t rootmeta[ROOT_META_LEN], check[PV_GCM_NONCE_LEN +
	    PV_GCM_TAG_LEN], aad[13 + KMS_VAULT_ID_LEN];
	struct kms_key_info *info = NULL;
	uint8_t *newroot;
	size_t n = 0, rootmetalen;
	pv_status rc;

	if ((newroot = pv_secure_alloc(PV_KEY_LEN)) == NULL)
		return PV_ENOMEM;
	if ((rc = root_meta_new(nu, rootmeta, &rootmetalen)) != PV_OK ||
	    (rc = root_load(nu, rootmeta, rootmetalen, newroot)) != PV_OK)
		goto out;
	if (pv_ct_eq(newroot, k->root, PV_KEY_LEN)) {
		rc = PV_EEXIST;		/* the same root: nothing would change */
		goto out;
	}
	/* Listed first: re-sealing writes to the table. */
	if ((rc = kms_status(k, t, &info, &n)) != PV_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (info[i].state != KMS_DESTROYED &&
		    (rc = ring_restate(k, t, newroot, info[i].kind,
		    info[i].version, info[i].state)) != PV_OK)
			goto out;
	root_check_aad(aad, k->vault_id, k->authed);
	if ((rc = pv_aead_seal(NULL, check, check + PV_GCM_NONCE_LEN, newroot,
	    aad, sizeof(aad), NULL, 0)) != PV_OK ||
	    (rc = meta_put(t, META_ROOT, rootmeta, rootmetalen)) != PV_OK ||
	    (rc = meta_put(t, META_ROOT_CHECK, check, sizeof(check))) !=
	    PV_OK)
		goto out;
	/*
	 * The ring's keys are the same, only sealed anew: the generation
	 * stays, so running processes keep the keys they hold instead of
	 * failing to unseal them with the old root.
	 */
	/* The re-sealed entries are what the ring MAC now covers. */
	if (k->authed && (rc = kms_ring_seal(k, t)) != PV_OK)
		goto out;
	/* This handle now speaks the new root; close it after the commit. */
	memcpy(k->root, newroot, PV_KEY_LEN);
out:
	free(info);
	pv_secure_free(newroot, PV_KEY_LEN);
	return rc;
}

pv_status
kms_ensure(struct kms *k, struct pv_txn *t, int *added)
{
	struct kms_key_info *info = NULL;
	size_t n = 0, have = 0;
	pv_status rc;

	*added = 0;
	if ((rc = kms_status(k, t, &info, &n)) != PV_OK)
		return rc;
	for (size_t i = 0; i < n; i++)
		have += info[i].kind == KMS_SIGN;
	free(info);
	if (have > 0)
		return PV_OK;
	if ((rc = ring_add(k, t, KMS_SIGN, 1, KMS_ACTIVE)) != PV_OK ||
	    (rc = ring_bump(k, t)) != PV_OK)
		return rc;
	*added = 1;
	return PV_OK;
}

pv_status
kms_public_keys(struct kms *k, struct kms_pubkey **out, size_t *n)
{
	struct kms_pubkey *p = NULL;
	size_t cnt = 0;
	pv_status rc = PV_OK;

	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	if ((p = calloc(k->nkeys ? k->nkeys : 1, sizeof(*p))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	/* The ring is loaded in key order: kind, then version. */
	for (size_t i = 0; i < k->nkeys; i++) {
		const struct ring_key *r = &k->keys[i];

		if (r->kind != KMS_SIGN || !r->has_pub)
			continue;
		p[cnt].version = r->version;
		p[cnt].state = r->state;
		memcpy(p[cnt].pub, r->pub, PV_ED25519_LEN);
		cnt++;
	}
	*out = p;
	*n = cnt;
	p = NULL;
out:
	(void)pthread_rwlock_unlock(&k->lock);
	free(p);
	return rc;
}

pv_status
kms_sign(struct kms *k, uint32_t version,
    uint8_t sig[static PV_ED25519_SIG_LEN], const void *msg, size_t len)
{
	const struct ring_key *sk;
	pv_status rc;

	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	if ((sk = ring_find(k, KMS_SIGN, 0)) == NULL || sk->version != version)
		rc = PV_EKEYSTATE;
	else
		rc = pv_ed25519_sign(sig, sk->key, msg, len);
	(void)pthread_rwlock_unlock(&k->lock);
	return rc;
}

pv_status
kms_key_info(struct kms *k, struct pv_txn *t, enum kms_kind kind,
    uint32_t version, struct kms_key_info *out)
{
	uint8_t val[RING_VAL_LEN];
	pv_status rc;

	(void)k;
	if ((rc = ring_read(t, kind, version, val)) != PV_OK)
		return rc;
	ring_row(out, kind, version, val);
	return PV_OK;
}

/* The rows as kms_status gathers them. */
struct status_gather {
	struct kms_key_info	*info;
	size_t			 n;
};

static pv_status
status_one(void *arg, const struct kms_key_info *row,
    const uint8_t val[static RING_VAL_LEN])
{
	struct status_gather *g = arg;
	struct kms_key_info *ni;

	(void)val;
	if ((ni = realloc(g->info, (g->n + 1) * sizeof(*ni))) == NULL)
		return PV_ENOMEM;
	g->info = ni;
	g->info[g->n++] = *row;
	return PV_OK;
}

pv_status
kms_status(struct kms *k, struct pv_txn *t, struct kms_key_info **out,
    size_t *n)
{
	struct status_gather g = { NULL, 0 };
	pv_status rc;

	(void)k;
	if ((rc = ring_walk(t, status_one, &g)) != PV_OK) {
		free(g.info);
		return rc;
	}
	*out = g.info;
	*n = g.n;
	return PV_OK;
}

int
kms_authenticated(struct kms *k)
{
	return k->authed;
}

pv_status
kms_ring_seal(struct kms *k, struct pv_txn *t)
{
	uint8_t mac[PV_HMAC_LEN];
	pv_status rc;

	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	rc = ring_mac(t, k->idkeys, k->vault_id, mac);
	(void)pthread_rwlock_unlock(&k->lock);
	if (rc == PV_OK)
		rc = meta_put(t, META_RING_MAC, mac, sizeof(mac));
	pv_cleanse(mac, sizeof(mac));
	return rc;
}

pv_status
kms_ring_check(struct kms *k, struct pv_txn *t)
{
	pv_status rc;

	if (!k->authed)
		return PV_OK;
	if (pthread_rwlock_rdlock(&k->lock) != 0)
		return PV_EIO;
	rc = ring_mac_check(t, k->idkeys, k->vault_id);
	(void)pthread_rwlock_unlock(&k->lock);
	return rc;
}

pv_status
kms_mark_authenticated(struct kms *k, struct pv_txn *t)
{
	uint8_t check[PV_GCM_NONCE_LEN + PV_GCM_TAG_LEN];
	uint8_t aad[13 + KMS_VAULT_ID_LEN];
	pv_status rc;

	root_check_aad(aad, k->vault_id, 1);
	if ((rc = pv_aead_seal(NULL, check, check + PV_GCM_NONCE_LEN, k->root,
	    aad, sizeof(aad), NULL, 0)) != PV_OK ||
	    (rc = meta_put(t, META_ROOT_CHECK, check, sizeof(check))) !=
	    PV_OK || (rc = kms_ring_seal(k, t)) != PV_OK)
		return rc;
	k->authed = 1;
	return PV_OK;
}
