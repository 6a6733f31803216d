/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv.h: the shared base of piivault.
 *
 * Status codes, secure memory, the cryptographic primitives (a thin wrapper
 * over OpenSSL, the only file that includes it), encodings, bounded buffers
 * and logging.  Everything above (kms, vault, api, tools) builds on this.
 *
 * Conventions, stated once for the whole header:
 * - Every fallible function returns a pv_status; PV_OK is 0.
 * - Out-parameters come last and are written only on success.
 * - Pointer arguments are borrowed and MUST NOT be NULL unless a function
 *   says otherwise; returned objects are the caller's, released with the
 *   matching _free, which accepts NULL.
 * - (ptr, len) buffers name the output first.
 */
#ifndef PV_H
#define PV_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define PV_WUR	__attribute__((warn_unused_result))

/*
 * Status codes.  Codes are only ever appended, never renumbered: they are
 * part of the CLI's and the API's observable behaviour.
 */
typedef enum {
	PV_OK = 0,
	PV_ENOMEM,		/* out of memory (or secure heap exhausted) */
	PV_EINVAL,		/* invalid argument (a caller bug or bad usage) */
	PV_EIO,			/* a system call failed */
	PV_ECRYPTO,		/* the crypto library failed */
	PV_EINTEGRITY,		/* authentication failed: tampered or moved */
	PV_EBADKEY,		/* wrong root key or passphrase */
	PV_EKEYPERM,		/* key file readable by group or others */
	PV_EKEYFORMAT,		/* key file is not one base64 256-bit key */
	PV_EEXIST,		/* vault or key file already exists */
	PV_ENOTFOUND,		/* no such record, token or key */
	PV_EFORMAT,		/* vault format unknown or newer than us */
	PV_ESTORE,		/* storage engine failure */
	PV_EFULL,		/* storage map is full */
	PV_EFIELD,		/* invalid field name */
	PV_EVALUE,		/* invalid field value */
	PV_ETOOBIG,		/* input over a fixed limit */
	PV_ENOVAULT,		/* no vault in the data directory */
	PV_EKEYSTATE,		/* key version may not be used for this */
	PV_ESHREDDED,		/* record was crypto-shredded */
	PV_ENOTINDEXED,		/* field has no blind index */
	PV_EJSON,		/* malformed JSON */
	PV_EUSAGE,		/* bad command line */
	PV_EPASSPHRASE,		/* no passphrase available */
	PV_ETOKEN,		/* malformed token or record id */
	PV_EUNAUTH,		/* missing, unknown or revoked API key */
	PV_EFORBIDDEN,		/* the caller's role or fields do not allow it */
	PV_EPURPOSE,		/* purpose not among the caller's purposes */
	PV_ECONSENT,		/* the person withheld consent for the purpose */
	PV_EREASON,		/* the purpose requires a reason */
	PV_EMEMBER,		/* unknown JSON member */
	PV_EUNAVAIL,		/* shutting down or overloaded: try again */
	PV_EBUSY,		/* the vault is in use by another process */
	PV_EHOLD,		/* the record is under legal hold */
	PV_ELIMIT,		/* too many requests of this kind: wait */
	PV_EOPTOUT,		/* this purpose cannot be opted out of */
	PV_EDIRPERM,		/* data directory writable by group or others */
	PV_ENOTDIR,		/* data directory is not a directory */
	PV__COUNT
} pv_status;

/* A static, lowercase, one-line description; never NULL. */
const char *pv_strerror(pv_status rc);

/* Limits shared by every layer.  Going over any of them is PV_ETOOBIG. */
#define PV_FIELD_NAME_MAX	64	/* [a-z][a-z0-9_]{0,63} */
#define PV_VALUE_MAX		4096	/* bytes of UTF-8 */
#define PV_FIELDS_MAX		64	/* fields per record */
#define PV_KEY_LEN		32	/* every symmetric key: 256 bits */
#define PV_GCM_NONCE_LEN	12
#define PV_GCM_TAG_LEN		16
#define PV_HMAC_LEN		32
#define PV_BLOCK_LEN		16
#define PV_RETRY_AFTER_MAX	(86400u * 365)	/* seconds a Retry-After says */

/*
 * Process set-up.  pv_init MUST be called once before any other function;
 * it fetches the algorithms.  pv_harden_process disables core dumps and
 * ptrace attach for a process that holds keys.
 */
pv_status pv_init(void) PV_WUR;
pv_status pv_harden_process(void) PV_WUR;

/*
 * Secure memory: locked, excluded from core dumps, zeroed on free.  Key
 * material and decrypted personal values live only here.  pv_secure_alloc
 * returns NULL when the heap is exhausted; pv_secure_free accepts NULL and
 * MUST be given the length that was allocated.
 */
void	*pv_secure_alloc(size_t len);
void	 pv_secure_free(void *p, size_t len);

/*
 * The secure heap is one fixed arena, created when first needed (the first
 * secure allocation, random bytes, HMAC or signing key) at
 * PV_SECURE_HEAP_DEFAULT bytes, or at the size given to
 * pv_secure_heap_init, which a process calls before it loads any key.
 * size MUST be a power of two of at least 1 MiB (PV_EINVAL).  Once the
 * heap exists, another size is PV_EBUSY while anything is allocated in it.
 * If the heap cannot be locked in memory, a warning says exactly which
 * memlock limit to raise.  pv_secure_heap_size is 0 until it exists.
 * pv_secure_used: bytes allocated in it now (blocks, rounded up).
 * pv_secure_block: the bytes a pv_secure_alloc of len takes from it.
 */
#define PV_SECURE_HEAP_DEFAULT	((size_t)16 << 20)
pv_status pv_secure_heap_init(size_t size) PV_WUR;
size_t	  pv_secure_heap_size(void);
size_t	  pv_secure_used(void);
size_t	  pv_secure_block(size_t len);

/*
 * Admission to the secure heap, for work whose need is larger than what
 * every thread may hold without asking.  pv_secure_budget_set fixes the
 * bytes that reservations may share (0, the default: no budget, every
 * reservation succeeds at once).  pv_secure_reserve takes len bytes of it,
 * waiting up to wait_ms for others to release: PV_EUNAVAIL if they did
 * not, PV_ETOOBIG if len is more than the whole budget.  Every successful
 * reservation MUST be given back with pv_secure_release(len).  Thread-safe.
 */
void	  pv_secure_budget_set(size_t bytes);
pv_status pv_secure_reserve(size_t len, unsigned wait_ms) PV_WUR;
void	  pv_secure_release(size_t len);

/* Wipe memory in a way the compiler cannot elide. */
void	 pv_cleanse(void *p, size_t len);

/*
 * Constant-time comparison of two equal-length buffers: 1 if equal.
 * CT: leaks len only.
 */
int	 pv_ct_eq(const void *a, const void *b, size_t len);

/* Cryptographically secure random bytes. */
pv_status pv_random(void *out, size_t len) PV_WUR;
/* The version of the crypto library in use (run time): "3.0.17". */
const char *pv_crypto_version(void);

/*
 * AES-256-GCM with a fresh random 96-bit nonce.  ct MUST have room for
 * ptlen bytes; nonce and tag are written to their fixed-size buffers.
 */
pv_status pv_aead_seal(uint8_t *ct, uint8_t nonce[static PV_GCM_NONCE_LEN],
    uint8_t tag[static PV_GCM_TAG_LEN], const uint8_t key[static PV_KEY_LEN],
    const void *aad, size_t aadlen, const void *pt, size_t ptlen) PV_WUR;

/*
 * Open an AES-256-GCM ciphertext.  The plaintext in pt is meaningful only
 * when PV_OK is returned: on PV_EINTEGRITY the buffer is wiped before
 * return, so nothing of a forged message is ever released.
 */
pv_status pv_aead_open(uint8_t *pt, const uint8_t key[static PV_KEY_LEN],
    const uint8_t nonce[static PV_GCM_NONCE_LEN],
    const uint8_t tag[static PV_GCM_TAG_LEN], const void *aad, size_t aadlen,
    const void *ct, size_t ctlen) PV_WUR;

/*
 * AES-256-GCM with the caller's nonce, which MUST be fresh random bytes
 * (drawn by the caller, for many messages at once) or a known answer's.
 */
pv_status pv_aead_seal_nonce(uint8_t *ct, uint8_t tag[static PV_GCM_TAG_LEN],
    const uint8_t key[static PV_KEY_LEN],
    const uint8_t nonce[static PV_GCM_NONCE_LEN], const void *aad,
    size_t aadlen, const void *pt, size_t ptlen) PV_WUR;

/*
 * One AES-256-GCM key expanded once for many messages, for loops under
 * one key (a KEK over a batch of DEKs): about half the cost of a one-shot
 * call a message.  The expanded key lives in OpenSSL's memory until
 * pv_gcm_free wipes it; keep one only as long as the loop.  Seal and open
 * behave as pv_aead_seal_nonce and pv_aead_open.
 */
struct pv_gcm;
pv_status pv_gcm_new(const uint8_t key[static PV_KEY_LEN],
    struct pv_gcm **out) PV_WUR;
void	  pv_gcm_free(struct pv_gcm *g);
pv_status pv_gcm_seal(struct pv_gcm *g, uint8_t *ct,
    uint8_t tag[static PV_GCM_TAG_LEN],
    const uint8_t nonce[static PV_GCM_NONCE_LEN], const void *aad,
    size_t aadlen, const void *pt, size_t ptlen) PV_WUR;
pv_status pv_gcm_open(struct pv_gcm *g, uint8_t *pt,
    const uint8_t nonce[static PV_GCM_NONCE_LEN],
    const uint8_t tag[static PV_GCM_TAG_LEN], const void *aad, size_t aadlen,
    const void *ct, size_t ctlen) PV_WUR;

/* HMAC-SHA256 over the concatenation of n parts. */
struct pv_part {
	const void	*p;
	size_t		 len;
};
pv_status pv_hmac(uint8_t out[static PV_HMAC_LEN], const uint8_t *key,
    size_t keylen, const struct pv_part *parts, size_t n) PV_WUR;

/*
 * SHA-256 over data given in pieces: pv_sha256_new, any number of
 * pv_sha256_update, then pv_sha256_final, which frees the context (as
 * pv_sha256_free does, for a digest abandoned; NULL is accepted).
 * PV_ENOMEM, PV_ECRYPTO.
 */
#define PV_SHA256_LEN		32
struct pv_sha256;
pv_status pv_sha256_new(struct pv_sha256 **out) PV_WUR;
pv_status pv_sha256_update(struct pv_sha256 *h, const void *p, size_t len)
    PV_WUR;
pv_status pv_sha256_final(struct pv_sha256 *h,
    uint8_t out[static PV_SHA256_LEN]) PV_WUR;
void	  pv_sha256_free(struct pv_sha256 *h);

/* HKDF-SHA256 (RFC 5869): derive outlen bytes. */
pv_status pv_hkdf(uint8_t *out, size_t outlen, const uint8_t *ikm,
    size_t ikmlen, const void *salt, size_t saltlen, const void *info,
    size_t infolen) PV_WUR;

/*
 * One AES-256 block (a keyed permutation of 128-bit values), used to turn
 * ascending sequence numbers into identifiers that reveal nothing.
 */
pv_status pv_block_encrypt(uint8_t out[static PV_BLOCK_LEN],
    const uint8_t key[static PV_KEY_LEN],
    const uint8_t in[static PV_BLOCK_LEN]) PV_WUR;
pv_status pv_block_decrypt(uint8_t out[static PV_BLOCK_LEN],
    const uint8_t key[static PV_KEY_LEN],
    const uint8_t in[static PV_BLOCK_LEN]) PV_WUR;

/*
 * Ed25519 (RFC 8032), for receipts anyone can check without the vault.
 * The private key is its 32-byte seed.  pv_ed25519_verify returns PV_OK or
 * PV_EINTEGRITY.
 */
#define PV_ED25519_LEN		32
#define PV_ED25519_SIG_LEN	64
pv_status pv_ed25519_public(uint8_t pub[static PV_ED25519_LEN],
	      const uint8_t priv[static PV_ED25519_LEN]) PV_WUR;
pv_status pv_ed25519_sign(uint8_t sig[static PV_ED25519_SIG_LEN],
	      const uint8_t priv[static PV_ED25519_LEN], const void *msg,
	      size_t len) PV_WUR;
pv_status pv_ed25519_verify(const uint8_t pub[static PV_ED25519_LEN],
	      const uint8_t sig[static PV_ED25519_SIG_LEN], const void *msg,
	      size_t len) PV_WUR;

/*
 * Encodings.  base64url without padding for identifiers (22 characters for
 * 16 bytes); standard base64 with padding for keys.  pv_key_from_base64
 * decodes exactly 32 bytes without data-dependent branches or table
 * look-ups (CT: leaks only the input length and, at the end, whether it
 * was valid).
 */
#define PV_B64URL16_LEN	22
void	  pv_b64url_encode16(char out[static PV_B64URL16_LEN + 1],
	      const uint8_t in[static 16]);
pv_status pv_b64url_decode16(uint8_t out[static 16], const char *in,
	      size_t inlen) PV_WUR;
#define PV_KEY_B64_LEN	44
void	  pv_key_to_base64(char out[static PV_KEY_B64_LEN + 1],
	      const uint8_t key[static PV_KEY_LEN]);
pv_status pv_key_from_base64(uint8_t key[static PV_KEY_LEN], const char *in,
	      size_t inlen) PV_WUR;
void	  pv_hex_encode(char *out, const uint8_t *in, size_t len);

/* Big-endian integer packing for on-disk layouts. */
static inline void
pv_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t
pv_get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static inline void
pv_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t
pv_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/*
 * Bounded growable buffer (curl dynbuf): its maximum is fixed when it is
 * created and appending past it is PV_ETOOBIG.  Every block it lets go of
 * is wiped first, so it may carry a response that holds personal values;
 * it is not locked memory, so it is no place for keys.
 */
struct pv_buf {
	char	*p;		/* NUL-terminated; NULL while empty */
	size_t	 len;
	size_t	 cap;
	size_t	 max;		/* private */
};
void	  pv_buf_init(struct pv_buf *b, size_t max);
void	  pv_buf_cleanup(struct pv_buf *b);
pv_status pv_buf_add(struct pv_buf *b, const void *p, size_t len) PV_WUR;
pv_status pv_buf_printf(struct pv_buf *b, const char *fmt, ...)
	      __attribute__((format(printf, 2, 3))) PV_WUR;

/*
 * The one JSON writer: every answer the server sends and every JSON line
 * the CLI prints is built with it, so escaping never depends on a call
 * site knowing its strings are safe.  It writes into a pv_buf and places
 * the commas itself.  Errors are sticky (the first failure is kept and
 * every later call does nothing), so a caller builds a whole document and
 * checks once, with pv_json_end, which also fails a document left open.
 * Strings are escaped as RFC 8259 requires: quote, backslash and every
 * control character; other bytes pass through, so a caller MUST hand in
 * UTF-8 (the vault only stores UTF-8).
 */
#define PV_JSON_DEPTH	16
struct pv_json {
	struct pv_buf	*b;
	pv_status	 rc;		/* first failure, or PV_OK */
	int		 depth;
	int		 key;		/* a key was written, its value next */
	uint8_t		 n[PV_JSON_DEPTH];	/* items yet at each depth */
	char		 close[PV_JSON_DEPTH];	/* '}' or ']' at each depth */
};
void	  pv_json_init(struct pv_json *j, struct pv_buf *b);
void	  pv_json_obj(struct pv_json *j);	/* { */
void	  pv_json_arr(struct pv_json *j);	/* [ */
void	  pv_json_close(struct pv_json *j);	/* } or ], as opened */
void	  pv_json_key(struct pv_json *j, const char *k);
void	  pv_json_keyn(struct pv_json *j, const char *k, size_t len);
void	  pv_json_str(struct pv_json *j, const char *s);
void	  pv_json_strn(struct pv_json *j, const char *s, size_t len);
void	  pv_json_u64(struct pv_json *j, uint64_t v);
void	  pv_json_i64(struct pv_json *j, int64_t v);
void	  pv_json_dbl(struct pv_json *j, double v);	/* finite, %.17g */
void	  pv_json_bool(struct pv_json *j, int v);
void	  pv_json_null(struct pv_json *j);
/* A string, or null when s is NULL. */
void	  pv_json_str_or_null(struct pv_json *j, const char *s);
/*
 * Append text that is already one complete JSON value (a document this
 * writer produced earlier); the caller vouches for it.
 */
void	  pv_json_raw(struct pv_json *j, const char *s, size_t len);
/* Member shorthands: pv_json_key then the value. */
void	  pv_json_kstr(struct pv_json *j, const char *k, const char *s);
void	  pv_json_ku64(struct pv_json *j, const char *k, uint64_t v);
void	  pv_json_kbool(struct pv_json *j, const char *k, int v);
/* PV_OK if every call succeeded and every object and array was closed. */
pv_status pv_json_end(const struct pv_json *j) PV_WUR;
/* Escape len bytes of s as one JSON string, quotes included. */
pv_status pv_json_quote(struct pv_buf *b, const char *s, size_t len) PV_WUR;

/* Validation shared by the CLI and the API. */
int	  pv_field_name_valid(const char *name, size_t len);
int	  pv_utf8_valid(const void *p, size_t len);

/*
 * The log: one line per event on stderr, written with one write(2), so
 * that lines from threads never interleave.  An event is a level, a
 * message and fields (key/value pairs), in one of two formats:
 *   text  2026-12-07T23:30:50.123Z info request request_id=… method=GET
 *         (a value with a space, '"', '=', '\' or a control character is
 *         quoted, with '"' and '\' escaped and controls as '?')
 *   json  {"ts":"2026-12-07T23:30:50.123Z","level":"info","msg":"request",
 *         "request_id":…}, one object a line, built with pv_json
 * ts is the wall clock in UTC, RFC 3339 with milliseconds.  Events over
 * the level set are dropped.  Never pass a personal value, key, token or
 * secret, in a message or a field: log the function, the status and
 * record or key ids only.  The level and format are set at start, before
 * threads; logging itself is thread-safe.
 */
enum pv_log_level { PV_LOG_ERROR, PV_LOG_WARN, PV_LOG_INFO, PV_LOG_DEBUG };
enum pv_log_format { PV_LOG_TEXT, PV_LOG_JSON };
void	pv_log_set_level(enum pv_log_level lvl);	/* default info */
void	pv_log_set_format(enum pv_log_format fmt);	/* default text */
/* Whether an event of lvl is written. */
int	pv_log_on(enum pv_log_level lvl);
/*
 * "error", "warn", "info", "debug" and "text", "json" to their values:
 * PV_OK, or PV_EUSAGE for any other string.
 */
pv_status pv_log_level_parse(const char *s, enum pv_log_level *out) PV_WUR;
pv_status pv_log_format_parse(const char *s, enum pv_log_format *out) PV_WUR;
/*
 * Whether stderr is the systemd journal: JOURNAL_STREAM ("DEV:INODE",
 * set by systemd for a service whose stderr it connects to the journal)
 * names the device and inode of descriptor 2 (systemd.exec(5)).
 */
int	pv_log_journal(void);

/* One field of an event: a string, a number, or microseconds as ms. */
enum pv_log_type { PV_LF_STR, PV_LF_U64, PV_LF_MS };
struct pv_log_field {
	const char		*key;	/* [a-z_]+, not ts, level or msg */
	enum pv_log_type	 type;
	const char		*s;	/* PV_LF_STR: UTF-8; NULL as "-" */
	uint64_t		 u;	/* PV_LF_U64; PV_LF_MS: microseconds */
};
#define PV_LOG_STR(k, v)	{ (k), PV_LF_STR, (v), 0 }
#define PV_LOG_U64(k, v)	{ (k), PV_LF_U64, NULL, (v) }
/* Microseconds written as milliseconds with three decimals: 1.234. */
#define PV_LOG_MS(k, us)	{ (k), PV_LF_MS, NULL, (us) }

/* One event of msg and n fields f (f may be NULL when n is 0). */
void	pv_log_event(enum pv_log_level lvl, const char *msg,
	    const struct pv_log_field *f, size_t n);
/* An event of a message alone, formatted (cut at 512 bytes). */
void	pv_log(enum pv_log_level lvl, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* Microseconds of the monotonic clock, for durations only. */
uint64_t pv_mono_us(void);

/* Seconds since the epoch; tests may pin it with pv_clock_set. */
uint64_t pv_now(void);
void	 pv_clock_set(uint64_t t);	/* 0 returns to the system clock */

#endif /* PV_H */
