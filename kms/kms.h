/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kms.h: piivault's key management.
 *
 * The hierarchy (SECURITY.md has the full story):
 *
 *   root key (256 bits; a key file outside the data directory, or Argon2id
 *     over a passphrase)
 *     wraps the ring: versioned 256-bit keys of several kinds
 *       KEK     wraps each record's data-encryption key (DEK)
 *       IDS     the keyed permutation behind record ids and tokens
 *       INDEX   the HMAC key of the blind index
 *       SIGN    the Ed25519 key that signs shred receipts (older versions
 *               keep only their public key)
 *
 * Keys never leave this module except a record's DEK, which the vault
 * needs to encrypt fields and holds only in secure memory.  Everything the
 * ring stores lives in the store's meta and ring tables, and every change
 * is made inside the caller's write transaction, so that a record and the
 * counters that describe it commit together.
 *
 * A struct kms is safe to share between threads.  Several processes may
 * hold one on the same store: kms_sync, called at the start of every
 * transaction, reloads the ring when another process changed it.
 *
 * NULL policy, ownership and out-parameters as in pv.h.
 */
#ifndef KMS_H
#define KMS_H

#include "pv.h"
#include "pv_store.h"

#define KMS_FORMAT_VERSION	1	/* the on-disk format this code reads */
#define KMS_VAULT_ID_LEN	16
#define KMS_WRAPPED_LEN		(PV_GCM_NONCE_LEN + PV_KEY_LEN + PV_GCM_TAG_LEN)

struct kms;

enum kms_kind {
	KMS_KEK = 1,
	KMS_IDS = 2,
	KMS_INDEX = 3,
	KMS_SIGN = 4,		/* Ed25519 seed that signs shred receipts */
};

/* States of a key version; the lifecycle operations come with rotation. */
enum kms_state {
	KMS_ACTIVE = 1,		/* wraps new data; exactly one per kind */
	KMS_DECRYPT_ONLY = 2,	/* unwraps old data only */
	KMS_RETIRED = 3,	/* may not unwrap */
	KMS_DESTROYED = 4,	/* key material erased */
};

const char *kms_state_name(enum kms_state st);
const char *kms_kind_name(enum kms_kind kind);

/*
 * How to obtain the root key.  A vault records at creation whether its root
 * is a key file or a passphrase; opening consults only the matching member.
 */
struct kms_unlock {
	const char	*key_file;	/* path to a key file */
	int		 use_passphrase; /* kms_init: passphrase root */
	/*
	 * Called for a passphrase vault: writes at most cap bytes to buf and
	 * their count to *len; PV_EPASSPHRASE if none can be had.
	 */
	pv_status	(*passphrase)(void *arg, char *buf, size_t cap,
			    size_t *len);
	void		*arg;
	uint32_t	 kdf_time;	/* kms_init: Argon2id passes, 0 = 3 */
	uint32_t	 kdf_memory_kib; /* kms_init: 0 = 65536 (64 MiB) */
};

#define KMS_PASSPHRASE_MAX	1024
#define KMS_KDF_MEMORY_MIN	8192	/* KiB */

/*
 * Write a new random root key to path as one base64 line, mode 0600,
 * refusing to replace anything (PV_EEXIST).  PV_EIO on other failures.
 */
pv_status kms_key_file_create(const char *path) PV_WUR;

/*
 * Read a root key file.  PV_EKEYPERM if it is not a regular file owned by
 * us and inaccessible to group and others; PV_EKEYFORMAT unless it holds
 * exactly one base64 256-bit key (one trailing newline allowed);
 * PV_ENOTFOUND if it does not exist.  The caller wipes key after use.
 */
pv_status kms_key_file_read(const char *path, uint8_t key[static PV_KEY_LEN])
	      PV_WUR;

/*
 * Create the key hierarchy in an empty store, inside the write transaction
 * txn: format version, vault id, root check, and the first version of each
 * kind.  The caller commits.  PV_EEXIST if the store already has one;
 * PV_EINVAL for Argon2id costs out of bounds; the key-file statuses.
 */
pv_status kms_init(struct pv_txn *txn, const struct kms_unlock *u,
	      struct kms **out) PV_WUR;

/*
 * Open the key hierarchy of an existing store.  PV_EFORMAT for an unknown
 * or newer format (or costs out of bounds); PV_EBADKEY for a wrong root
 * key or passphrase; PV_EKEYPERM, PV_EKEYFORMAT, PV_ENOTFOUND, PV_EIO
 * from the key file; PV_EINVAL for a key-file vault given no key file;
 * PV_EPASSPHRASE; PV_EINTEGRITY if the ring was altered; PV_ENOMEM,
 * PV_ECRYPTO, PV_ESTORE.
 */
pv_status kms_open(struct pv_txn *txn, const struct kms_unlock *u,
	      struct kms **out) PV_WUR;
void	  kms_free(struct kms *k);

/*
 * Reload the ring if another process changed it since we last looked
 * (never backwards, to an older snapshot's ring).  PV_EINTEGRITY if the
 * ring was altered, PV_EFORMAT if it is damaged.
 */
pv_status kms_sync(struct kms *k, struct pv_txn *txn) PV_WUR;

const uint8_t *kms_vault_id(const struct kms *k);
/*
 * The ring generation this handle has loaded, or 0 if it cannot tell.
 * Work done under one generation used exactly the keys a transaction that
 * synced to the same generation sees.
 */
uint64_t  kms_generation(struct kms *k);

/*
 * DEKs.  Each is wrapped under a KEK version with AES-256-GCM, its AAD the
 * vault id, the version and the caller's context ctx (at most
 * KMS_DEK_CTX_MAX bytes): the vault binds the record id and the record's
 * header there, so that neither can be edited or moved unnoticed.  dek is
 * PV_KEY_LEN bytes of the caller's secure memory.  PV_EKEYSTATE if there
 * is no active KEK.
 */
#define KMS_DEK_CTX_MAX	64
pv_status kms_dek_new(struct kms *k, const void *ctx, size_t ctxlen,
	      uint8_t *dek, uint32_t *version,
	      uint8_t wrapped[static KMS_WRAPPED_LEN]) PV_WUR;
/* Wrap an existing DEK under the active KEK, for a new context. */
pv_status kms_dek_wrap(struct kms *k, const void *ctx, size_t ctxlen,
	      const uint8_t *dek, uint32_t *version,
	      uint8_t wrapped[static KMS_WRAPPED_LEN]) PV_WUR;

/*
 * Re-wrapping DEKs in place, from their versions to the active KEK, for a
 * batch: kms_rewrap_new sets up the active KEK once (*newv), and
 * kms_rewrap_dek each source version once, on first use, instead of once
 * a DEK.  nonce is fresh random bytes the caller drew (perhaps for the
 * batch at once); the DEK never leaves this module, and wrapped changes
 * only on PV_OK.  kms_rewrap_free wipes every expanded key; keep a batch
 * only as long as the transaction it serves.
 *
 * kms_rewrap_new: PV_EKEYSTATE if there is no active KEK; PV_ENOMEM,
 * PV_ECRYPTO, PV_EIO.  kms_rewrap_dek: PV_EKEYSTATE, PV_EINTEGRITY as
 * kms_dek_open; PV_EINVAL for a ctx over KMS_DEK_CTX_MAX; PV_ENOMEM,
 * PV_ECRYPTO.
 */
struct kms_rewrap;
pv_status kms_rewrap_new(struct kms *k, struct kms_rewrap **out,
	      uint32_t *newv) PV_WUR;
pv_status kms_rewrap_dek(struct kms_rewrap *r, const void *ctx,
	      size_t ctxlen, uint32_t version,
	      const uint8_t nonce[static PV_GCM_NONCE_LEN],
	      uint8_t wrapped[static KMS_WRAPPED_LEN]) PV_WUR;
void	  kms_rewrap_free(struct kms_rewrap *r);

/*
 * Unwrap a DEK.  PV_EKEYSTATE if the version is retired, destroyed or
 * unknown; PV_EINTEGRITY if wrapped or ctx was altered (dek is then
 * wiped).
 */
pv_status kms_dek_open(struct kms *k, const void *ctx, size_t ctxlen,
	      uint32_t version, const uint8_t wrapped[static KMS_WRAPPED_LEN],
	      uint8_t *dek) PV_WUR;

/*
 * Add delta (negative to subtract) to the number of records a KEK version
 * wraps; n_new counts newly wrapped DEKs for the version's lifetime total.
 */
pv_status kms_count_wraps(struct kms *k, struct pv_txn *txn, uint32_t version,
	      int64_t delta, uint64_t n_new) PV_WUR;

/*
 * Identifiers: a keyed permutation of 128-bit blocks, one per domain, so
 * that a record id is never accepted as a token or the reverse.
 */
enum kms_id_domain { KMS_ID_RECORD = 1, KMS_ID_TOKEN = 2 };
pv_status kms_id_seal(struct kms *k, enum kms_id_domain d,
	      uint8_t out[static 16], const uint8_t in[static 16]) PV_WUR;
pv_status kms_id_open(struct kms *k, enum kms_id_domain d,
	      uint8_t out[static 16], const uint8_t in[static 16]) PV_WUR;

/*
 * Blind index: HMAC-SHA256 under INDEX key version (0: the active one)
 * over the field name and the already normalized value.  PV_EKEYSTATE if
 * that version may not be used.
 */
pv_status kms_blind_index(struct kms *k, uint32_t version,
	      uint8_t out[static PV_HMAC_LEN], const char *field,
	      size_t fieldlen, const void *value, size_t valuelen) PV_WUR;

/*
 * Versions of kind that may still unwrap or compute (active and
 * decrypt-only), the active one first; returns how many, at most max.
 */
size_t	  kms_usable_versions(struct kms *k, enum kms_kind kind, uint32_t *out,
	      size_t max);
/* The active version of kind, or 0 if there is none. */
uint32_t  kms_active_version(struct kms *k, enum kms_kind kind);
/* A version's state as this handle last loaded it; 0 if unknown. */
enum kms_state kms_version_state(struct kms *k, enum kms_kind kind,
	      uint32_t version);

/*
 * Lifecycle.  Each works inside the caller's write transaction and bumps
 * the ring generation, so every process (this one included) loads the new
 * ring at its next kms_sync after the commit; nothing in memory changes
 * before, so an aborted transaction leaves no trace.
 *
 * kms_rotate: a new version of kind (KEK, INDEX or SIGN; PV_EINVAL
 * otherwise) becomes active; the active one becomes decrypt-only (SIGN:
 * destroyed, its public key kept).
 * kms_set_state: decrypt-only <-> retired, and any -> destroyed, whose key
 * material is overwritten on disk.  PV_EKEYSTATE for any other move (an
 * active version can only be destroyed; rotate first) and for any move of
 * a SIGN version, PV_ENOTFOUND for an unknown version.
 * kms_rotate_root: re-seal every key under the root nu describes, and
 * record the new root's kind and check value; PV_EEXIST if nu is the root
 * in use.  The handle holds the new root afterwards and MUST be closed once
 * the transaction ends.  The ring generation does not change (the keys do
 * not): other processes keep the keys they hold, and must be restarted
 * with the new root before they can load a ring changed later.
 * kms_ensure: create kinds this vault was made without (KMS_SIGN); *added
 * says whether it did.
 */
pv_status kms_rotate(struct kms *k, struct pv_txn *t, enum kms_kind kind,
	      uint32_t *newv) PV_WUR;
pv_status kms_set_state(struct kms *k, struct pv_txn *t, enum kms_kind kind,
	      uint32_t version, enum kms_state st) PV_WUR;
pv_status kms_rotate_root(struct kms *k, struct pv_txn *t,
	      const struct kms_unlock *nu) PV_WUR;
pv_status kms_ensure(struct kms *k, struct pv_txn *t, int *added) PV_WUR;

/*
 * Receipts: Ed25519 under a SIGN version.  Only the active version has a
 * private key: kms_rotate of KMS_SIGN destroys the older one's and keeps
 * its public key in the ring, so that what it signed still verifies.
 *
 * kms_sign signs msg with SIGN version, which the caller names in msg:
 * PV_EKEYSTATE unless it is the active version (a rotation since the
 * caller looked: look again).  kms_public_keys: every SIGN version whose
 * public key is known, ascending, each with its state (KMS_ACTIVE, or
 * KMS_DESTROYED for one that only verifies); *out is the caller's,
 * released with free().  PV_ENOMEM, PV_EIO.
 */
struct kms_pubkey {
	uint32_t	version;
	enum kms_state	state;
	uint8_t		pub[PV_ED25519_LEN];
};
pv_status kms_sign(struct kms *k, uint32_t version,
	      uint8_t sig[static PV_ED25519_SIG_LEN], const void *msg,
	      size_t len) PV_WUR;
pv_status kms_public_keys(struct kms *k, struct kms_pubkey **out,
	      size_t *n) PV_WUR;

/*
 * Keyed hashes that must stay stable for the vault's lifetime: pseudonyms
 * of values (equal for equal values) and the stored form of API key
 * secrets.  HMAC-SHA256 under subkeys of the IDS key.
 */
enum kms_hash_domain {
	KMS_H_PSEUDONYM = 1,
	KMS_H_APIKEY = 2,
	KMS_H_INDEX = 3,	/* authenticates blind-index entries */
	KMS_H_AUDIT = 4,	/* chains the audit log */
	KMS_H_ROW = 5,		/* authenticates rows (vault_row_mac) */
};
pv_status kms_keyed_hash(struct kms *k, enum kms_hash_domain d,
	      uint8_t out[static PV_HMAC_LEN], const struct pv_part *parts,
	      size_t n) PV_WUR;

/*
 * Free-text reasons at rest: AES-256-GCM under K_reason (HKDF of the IDS
 * key, label "piivault reason") with a fresh random nonce.  Seal writes
 * nonce || ciphertext || tag, len + KMS_SEAL_OVERHEAD bytes, to out; aad
 * binds where the reason is stored.  Open writes inlen - KMS_SEAL_OVERHEAD
 * bytes to pt: PV_EINTEGRITY (pt wiped) if anything was changed or moved.
 */
#define KMS_SEAL_OVERHEAD	(PV_GCM_NONCE_LEN + PV_GCM_TAG_LEN)
pv_status kms_reason_seal(struct kms *k, uint8_t *out, const void *aad,
	      size_t aadlen, const void *pt, size_t len) PV_WUR;
pv_status kms_reason_open(struct kms *k, uint8_t *pt, const void *aad,
	      size_t aadlen, const uint8_t *in, size_t inlen) PV_WUR;

/*
 * Authenticated rows.  A vault made by this version, or upgraded by
 * kms_mark_authenticated, MACs every security-relevant row (the vault does
 * so with KMS_H_ROW) and seals the ring itself: META_RING_MAC, an HMAC
 * under a subkey of the IDS key over the vault id, the ring generation,
 * every ring entry but its wrap counters, and the revocation list stored
 * in meta under KMS_META_REVOKED.  The mark is in the root check (its
 * label differs), so only the root key can make an upgraded vault look
 * like one that was not.
 *
 * kms_authenticated: whether this vault is marked.  kms_ring_seal: compute
 * and store the ring MAC in t, after a change to what it covers (the
 * kms_ functions that change the ring do so themselves).  kms_ring_check:
 * PV_EINTEGRITY if t's ring, generation or revocation list differ from
 * what was sealed (PV_OK for an unmarked vault).  kms_mark_authenticated:
 * mark the vault in t, once every row is MAC'd.
 */
#define KMS_META_REVOKED	"apikey_revoked"
int	  kms_authenticated(struct kms *k);
pv_status kms_ring_seal(struct kms *k, struct pv_txn *t) PV_WUR;
pv_status kms_ring_check(struct kms *k, struct pv_txn *t) PV_WUR;
pv_status kms_mark_authenticated(struct kms *k, struct pv_txn *t) PV_WUR;

/* One row of kms_status. */
struct kms_key_info {
	enum kms_kind	kind;
	uint32_t	version;
	enum kms_state	state;
	uint64_t	created;	/* seconds since the epoch */
	uint64_t	wraps_live;	/* records wrapped now (KEK) */
	uint64_t	wraps_total;	/* DEKs ever wrapped (KEK) */
};

/* One version's row, read from txn.  PV_ENOTFOUND. */
pv_status kms_key_info(struct kms *k, struct pv_txn *txn, enum kms_kind kind,
	      uint32_t version, struct kms_key_info *out) PV_WUR;

/*
 * Every key version, read from txn, ordered by kind then version.  *out is
 * the caller's, released with free().
 */
pv_status kms_status(struct kms *k, struct pv_txn *txn,
	      struct kms_key_info **out, size_t *n) PV_WUR;

#endif /* KMS_H */
