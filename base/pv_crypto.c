/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_crypto.c: the only file that includes OpenSSL.  OpenSSL's "1 is
 * success" convention is translated into pv_status here and nowhere else.
 */
#include <sys/prctl.h>
#include <sys/resource.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "pv.h"

/*
 * The secure heap holds the unwrapped key ring and every decrypted value
 * while it is in flight.  OpenSSL's allocator is a buddy system: its size
 * and every block are powers of two, and CRYPTO_secure_malloc_init may be
 * called only once (or again after CRYPTO_secure_malloc_done, with nothing
 * allocated).  So it is created when first needed, at the size a server
 * chose with pv_secure_heap_init or else the default.
 */
#define SECURE_HEAP_MINSIZE	32

static EVP_CIPHER	*aes_gcm;
static EVP_CIPHER	*aes_ecb;
static EVP_MAC		*hmac;
static EVP_KDF		*hkdf;

static pthread_mutex_t	 heap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 heap_cond = PTHREAD_COND_INITIALIZER;
static atomic_int	 heap_ready;
static size_t		 heap_size;
static size_t		 budget;		/* 0: no admission budget */
static size_t		 reserved;		/* of budget, in use */

/*
 * Say what an operator must change, exactly: a non-root process under the
 * default 8 MiB memlock limit cannot lock a heap of that size or more.
 */
static void
memlock_warn(size_t size)
{
	struct rlimit rl;
	unsigned long long kib = 0, need = (unsigned long long)size >> 9;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0)
		kib = rl.rlim_cur == RLIM_INFINITY ? 0 :
		    (unsigned long long)rl.rlim_cur >> 10;
	/* Twice the heap: OpenSSL locks its free-list bitmaps too. */
	pv_log(PV_LOG_WARN, "secure heap (%zu MiB) is not locked in memory: "
	    "keys may reach swap; RLIMIT_MEMLOCK is %llu KiB; raise it to at "
	    "least %llu KiB (ulimit -l %llu, or LimitMEMLOCK=%lluM in the "
	    "service unit)", size >> 20, kib, need, need, need >> 10);
}

/* Create the heap of size bytes; heap_lock held. */
static pv_status
heap_create(size_t size)
{
	int r;

	/*
	 * A heap that could not be locked (2) still keeps secrets out of
	 * core dumps and zeroes them; we run on regardless, and say so.
	 */
	if ((r = CRYPTO_secure_malloc_init(size, SECURE_HEAP_MINSIZE)) == 0)
		return PV_ENOMEM;
	if (r == 2)
		memlock_warn(size);
	heap_size = size;
	atomic_store(&heap_ready, 1);
	return PV_OK;
}

/* The heap exists once this returns PV_OK. */
static pv_status
heap_ensure(void)
{
	pv_status rc = PV_OK;

	if (atomic_load(&heap_ready))
		return PV_OK;
	if (pthread_mutex_lock(&heap_lock) != 0)
		return PV_EIO;
	if (!atomic_load(&heap_ready))
		rc = heap_create(PV_SECURE_HEAP_DEFAULT);
	(void)pthread_mutex_unlock(&heap_lock);
	return rc;
}

pv_status
pv_secure_heap_init(size_t size)
{
	pv_status rc;

	if (size < (1u << 20) || (size & (size - 1)) != 0)
		return PV_EINVAL;
	if (pthread_mutex_lock(&heap_lock) != 0)
		return PV_EIO;
	if (atomic_load(&heap_ready)) {
		rc = PV_OK;
		if (heap_size == size)
			goto out;
		rc = PV_EBUSY;
		if (CRYPTO_secure_used() != 0 ||
		    CRYPTO_secure_malloc_done() != 1)
			goto out;
		atomic_store(&heap_ready, 0);
		heap_size = 0;
	}
	rc = heap_create(size);
out:
	(void)pthread_mutex_unlock(&heap_lock);
	return rc;
}

size_t
pv_secure_heap_size(void)
{
	return atomic_load(&heap_ready) ? heap_size : 0;
}

size_t
pv_secure_used(void)
{
	return atomic_load(&heap_ready) ? CRYPTO_secure_used() : 0;
}

size_t
pv_secure_block(size_t len)
{
	size_t b = SECURE_HEAP_MINSIZE;

	while (b < len && b <= SIZE_MAX / 2)
		b <<= 1;
	return b;
}

void
pv_secure_budget_set(size_t bytes)
{
	(void)pthread_mutex_lock(&heap_lock);
	budget = bytes;
	(void)pthread_cond_broadcast(&heap_cond);
	(void)pthread_mutex_unlock(&heap_lock);
}

pv_status
pv_secure_reserve(size_t len, unsigned wait_ms)
{
	struct timespec until;
	pv_status rc = PV_OK;
	int e = 0;

	if (clock_gettime(CLOCK_REALTIME, &until) != 0)
		return PV_EIO;
	until.tv_sec += (time_t)(wait_ms / 1000);
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	if (pthread_mutex_lock(&heap_lock) != 0)
		return PV_EIO;
	if (budget != 0 && len > budget)
		rc = PV_ETOOBIG;
	while (rc == PV_OK && budget != 0 && budget - reserved < len) {
		if (e == ETIMEDOUT) {
			rc = PV_EUNAVAIL;
			break;
		}
		if ((e = pthread_cond_timedwait(&heap_cond, &heap_lock,
		    &until)) != 0 && e != ETIMEDOUT)
			rc = PV_EIO;
	}
	if (rc == PV_OK && budget != 0)
		reserved += len;
	(void)pthread_mutex_unlock(&heap_lock);
	return rc;
}

void
pv_secure_release(size_t len)
{
	(void)pthread_mutex_lock(&heap_lock);
	if (budget != 0) {
		reserved = len < reserved ? reserved - len : 0;
		(void)pthread_cond_broadcast(&heap_cond);
	}
	(void)pthread_mutex_unlock(&heap_lock);
}

pv_status
pv_init(void)
{
	if (aes_gcm != NULL)
		return PV_OK;
	aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	aes_ecb = EVP_CIPHER_fetch(NULL, "AES-256-ECB", NULL);
	hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (aes_gcm == NULL || aes_ecb == NULL || hmac == NULL ||
	    hkdf == NULL) {
		EVP_CIPHER_free(aes_gcm);
		EVP_CIPHER_free(aes_ecb);
		EVP_MAC_free(hmac);
		EVP_KDF_free(hkdf);
		aes_gcm = aes_ecb = NULL;
		hmac = NULL;
		hkdf = NULL;
		return PV_ECRYPTO;
	}
	return PV_OK;
}

const char *
pv_crypto_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION_STRING);
}

pv_status
pv_harden_process(void)
{
	struct rlimit rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		return PV_EIO;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return PV_EIO;
	return PV_OK;
}

void *
pv_secure_alloc(size_t len)
{
	void *p;

	if (heap_ensure() != PV_OK)
		return NULL;
	if (len == 0)
		len = 1;
	if ((p = CRYPTO_secure_zalloc(len, OPENSSL_FILE, OPENSSL_LINE)) == NULL)
		return NULL;
	return p;
}

void
pv_secure_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	CRYPTO_secure_clear_free(p, len == 0 ? 1 : len, OPENSSL_FILE,
	    OPENSSL_LINE);
}

void
pv_cleanse(void *p, size_t len)
{
	if (p != NULL && len > 0)
		OPENSSL_cleanse(p, len);
}

int
pv_ct_eq(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

pv_status
pv_random(void *out, size_t len)
{
	pv_status rc;

	if (len > INT32_MAX)
		return PV_EINVAL;
	/* The generator's state goes in the secure heap: create it first. */
	if ((rc = heap_ensure()) != PV_OK)
		return rc;
	if (RAND_bytes(out, (int)len) != 1)
		return PV_ECRYPTO;
	return PV_OK;
}

/*
 * Seal under ctx: with cipher and key for a fresh context, or NULL and
 * NULL for one that holds its key already (struct pv_gcm).
 */
static pv_status
ctx_seal(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, const uint8_t *key,
    uint8_t *ct, uint8_t *tag, const uint8_t *nonce, const void *aad,
    size_t aadlen, const void *pt, size_t ptlen)
{
	uint8_t none[1];
	int n;

	if (aadlen > INT32_MAX || ptlen > INT32_MAX)
		return PV_EINVAL;
	if (ct == NULL)		/* empty message: a tag over the AAD alone */
		ct = none;
	if (EVP_EncryptInit_ex2(ctx, cipher, key, nonce, NULL) != 1 ||
	    (aadlen > 0 &&
	    EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1) ||
	    (ptlen > 0 &&
	    EVP_EncryptUpdate(ctx, ct, &n, pt, (int)ptlen) != 1) ||
	    EVP_EncryptFinal_ex(ctx, ct + ptlen, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, PV_GCM_TAG_LEN,
	    tag) != 1)
		return PV_ECRYPTO;
	return PV_OK;
}

/* Open under ctx (as ctx_seal); pt is wiped unless PV_OK. */
static pv_status
ctx_open(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, const uint8_t *key,
    uint8_t *pt, const uint8_t *nonce, const uint8_t *tag, const void *aad,
    size_t aadlen, const void *ct, size_t ctlen)
{
	pv_status rc = PV_ECRYPTO;
	uint8_t t[PV_GCM_TAG_LEN], none[1];
	int n;

	if (aadlen > INT32_MAX || ctlen > INT32_MAX)
		return PV_EINVAL;
	if (pt == NULL)
		pt = none;
	memcpy(t, tag, sizeof(t));
	if (EVP_DecryptInit_ex2(ctx, cipher, key, nonce, NULL) != 1 ||
	    (aadlen > 0 &&
	    EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1) ||
	    (ctlen > 0 &&
	    EVP_DecryptUpdate(ctx, pt, &n, ct, (int)ctlen) != 1) ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, PV_GCM_TAG_LEN,
	    t) != 1)
		goto out;
	/* Final fails exactly when the tag does not verify. */
	if (EVP_DecryptFinal_ex(ctx, pt + ctlen, &n) != 1) {
		rc = PV_EINTEGRITY;
		goto out;
	}
	rc = PV_OK;
out:
	if (rc != PV_OK)
		pv_cleanse(pt, ctlen);
	return rc;
}

pv_status
pv_aead_seal(uint8_t *ct, uint8_t nonce[static PV_GCM_NONCE_LEN],
    uint8_t tag[static PV_GCM_TAG_LEN], const uint8_t key[static PV_KEY_LEN],
    const void *aad, size_t aadlen, const void *pt, size_t ptlen)
{
	pv_status rc;

	if ((rc = pv_random(nonce, PV_GCM_NONCE_LEN)) != PV_OK)
		return rc;
	return pv_aead_seal_nonce(ct, tag, key, nonce, aad, aadlen, pt,
	    ptlen);
}

pv_status
pv_aead_seal_nonce(uint8_t *ct, uint8_t tag[static PV_GCM_TAG_LEN],
    const uint8_t key[static PV_KEY_LEN],
    const uint8_t nonce[static PV_GCM_NONCE_LEN], const void *aad,
    size_t aadlen, const void *pt, size_t ptlen)
{
	EVP_CIPHER_CTX *ctx;
	pv_status rc;

	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return PV_ENOMEM;
	rc = ctx_seal(ctx, aes_gcm, key, ct, tag, nonce, aad, aadlen, pt,
	    ptlen);
	EVP_CIPHER_CTX_free(ctx);	/* wipes the expanded key */
	return rc;
}

pv_status
pv_aead_open(uint8_t *pt, const uint8_t key[static PV_KEY_LEN],
    const uint8_t nonce[static PV_GCM_NONCE_LEN],
    const uint8_t tag[static PV_GCM_TAG_LEN], const void *aad, size_t aadlen,
    const void *ct, size_t ctlen)
{
	EVP_CIPHER_CTX *ctx;
	pv_status rc;

	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return PV_ENOMEM;
	rc = ctx_open(ctx, aes_gcm, key, pt, nonce, tag, aad, aadlen, ct,
	    ctlen);
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

struct pv_gcm {
	EVP_CIPHER_CTX	*ctx;
};

pv_status
pv_gcm_new(const uint8_t key[static PV_KEY_LEN], struct pv_gcm **out)
{
	struct pv_gcm *g;

	if ((g = malloc(sizeof(*g))) == NULL)
		return PV_ENOMEM;
	if ((g->ctx = EVP_CIPHER_CTX_new()) == NULL) {
		free(g);
		return PV_ENOMEM;
	}
	if (EVP_CipherInit_ex2(g->ctx, aes_gcm, key, NULL, 1, NULL) != 1) {
		pv_gcm_free(g);
		return PV_ECRYPTO;
	}
	*out = g;
	return PV_OK;
}

void
pv_gcm_free(struct pv_gcm *g)
{
	if (g == NULL)
		return;
	EVP_CIPHER_CTX_free(g->ctx);	/* wipes the expanded key */
	free(g);
}

pv_status
pv_gcm_seal(struct pv_gcm *g, uint8_t *ct, uint8_t tag[static PV_GCM_TAG_LEN],
    const uint8_t nonce[static PV_GCM_NONCE_LEN], const void *aad,
    size_t aadlen, const void *pt, size_t ptlen)
{
	return ctx_seal(g->ctx, NULL, NULL, ct, tag, nonce, aad, aadlen, pt,
	    ptlen);
}

pv_status
pv_gcm_open(struct pv_gcm *g, uint8_t *pt,
    const uint8_t nonce[static PV_GCM_NONCE_LEN],
    const uint8_t tag[static PV_GCM_TAG_LEN], const void *aad, size_t aadlen,
    const void *ct, size_t ctlen)
{
	return ctx_open(g->ctx, NULL, NULL, pt, nonce, tag, aad, aadlen, ct,
	    ctlen);
}

pv_status
pv_hmac(uint8_t out[static PV_HMAC_LEN], const uint8_t *key, size_t keylen,
    const struct pv_part *parts, size_t n)
{
	EVP_MAC_CTX *ctx;
	OSSL_PARAM params[2];
	pv_status rc = PV_ECRYPTO;
	size_t outlen;

	/* OpenSSL keeps an HMAC key in the secure heap. */
	if ((rc = heap_ensure()) != PV_OK)
		return rc;
	rc = PV_ECRYPTO;
	if ((ctx = EVP_MAC_CTX_new(hmac)) == NULL)
		return PV_ENOMEM;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, key, keylen, params) != 1)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (parts[i].len > 0 &&
		    EVP_MAC_update(ctx, parts[i].p, parts[i].len) != 1)
			goto out;
	if (EVP_MAC_final(ctx, out, &outlen, PV_HMAC_LEN) != 1 ||
	    outlen != PV_HMAC_LEN)
		goto out;
	rc = PV_OK;
out:
	EVP_MAC_CTX_free(ctx);
	return rc;
}

pv_status
pv_hkdf(uint8_t *out, size_t outlen, const uint8_t *ikm, size_t ikmlen,
    const void *salt, size_t saltlen, const void *info, size_t infolen)
{
	EVP_KDF_CTX *ctx;
	OSSL_PARAM params[5], *p = params;
	pv_status rc = PV_ECRYPTO;

	if ((ctx = EVP_KDF_CTX_new(hkdf)) == NULL)
		return PV_ENOMEM;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)ikm, ikmlen);
	if (saltlen > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
		    (void *)salt, saltlen);
	if (infolen > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
		    (void *)info, infolen);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, outlen, params) != 1)
		goto out;
	rc = PV_OK;
out:
	EVP_KDF_CTX_free(ctx);
	return rc;
}

static pv_status
block(uint8_t *out, const uint8_t *key, const uint8_t *in, int enc)
{
	EVP_CIPHER_CTX *ctx;
	pv_status rc = PV_ECRYPTO;
	int n;

	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return PV_ENOMEM;
	if (EVP_CipherInit_ex2(ctx, aes_ecb, key, NULL, enc, NULL) != 1)
		goto out;
	if (EVP_CIPHER_CTX_set_padding(ctx, 0) != 1)
		goto out;
	if (EVP_CipherUpdate(ctx, out, &n, in, PV_BLOCK_LEN) != 1 ||
	    n != PV_BLOCK_LEN)
		goto out;
	rc = PV_OK;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

pv_status
pv_block_encrypt(uint8_t out[static PV_BLOCK_LEN],
    const uint8_t key[static PV_KEY_LEN], const uint8_t in[static PV_BLOCK_LEN])
{
	return block(out, key, in, 1);
}

pv_status
pv_block_decrypt(uint8_t out[static PV_BLOCK_LEN],
    const uint8_t key[static PV_KEY_LEN], const uint8_t in[static PV_BLOCK_LEN])
{
	return block(out, key, in, 0);
}

/* Ed25519 through EVP_PKEY's one-shot interface. */

/* An Ed25519 private key object; OpenSSL keeps it in the secure heap. */
static pv_status
ed25519_private(const uint8_t priv[static PV_ED25519_LEN], EVP_PKEY **out)
{
	if (heap_ensure() != PV_OK)
		return PV_ENOMEM;
	if ((*out = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv,
	    PV_ED25519_LEN)) == NULL)
		return PV_ECRYPTO;
	return PV_OK;
}

pv_status
pv_ed25519_public(uint8_t pub[static PV_ED25519_LEN],
    const uint8_t priv[static PV_ED25519_LEN])
{
	EVP_PKEY *pk;
	size_t len = PV_ED25519_LEN;
	pv_status rc;

	if ((rc = ed25519_private(priv, &pk)) != PV_OK)
		return rc;
	rc = PV_ECRYPTO;
	if (EVP_PKEY_get_raw_public_key(pk, pub, &len) == 1 &&
	    len == PV_ED25519_LEN)
		rc = PV_OK;
	EVP_PKEY_free(pk);
	return rc;
}

pv_status
pv_ed25519_sign(uint8_t sig[static PV_ED25519_SIG_LEN],
    const uint8_t priv[static PV_ED25519_LEN], const void *msg, size_t len)
{
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY *pk;
	size_t siglen = PV_ED25519_SIG_LEN;
	pv_status rc;

	if ((rc = ed25519_private(priv, &pk)) != PV_OK)
		return rc;
	rc = PV_ECRYPTO;
	if ((ctx = EVP_MD_CTX_new()) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) == 1 &&
	    EVP_DigestSign(ctx, sig, &siglen, msg, len) == 1 &&
	    siglen == PV_ED25519_SIG_LEN)
		rc = PV_OK;
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);	/* frees, and cleanses, the key */
	return rc;
}

pv_status
pv_ed25519_verify(const uint8_t pub[static PV_ED25519_LEN],
    const uint8_t sig[static PV_ED25519_SIG_LEN], const void *msg, size_t len)
{
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY *pk;
	pv_status rc = PV_EINTEGRITY;

	if ((pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub,
	    PV_ED25519_LEN)) == NULL)
		return PV_EINTEGRITY;	/* not a point on the curve */
	if ((ctx = EVP_MD_CTX_new()) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
	    EVP_DigestVerify(ctx, sig, PV_ED25519_SIG_LEN, msg, len) == 1)
		rc = PV_OK;
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return rc;
}

/* The context is OpenSSL's, behind our own name. */
pv_status
pv_sha256_new(struct pv_sha256 **out)
{
	EVP_MD_CTX *ctx;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return PV_ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return PV_ECRYPTO;
	}
	*out = (struct pv_sha256 *)ctx;
	return PV_OK;
}

pv_status
pv_sha256_update(struct pv_sha256 *h, const void *p, size_t len)
{
	return EVP_DigestUpdate((EVP_MD_CTX *)h, p, len) == 1 ? PV_OK :
	    PV_ECRYPTO;
}

pv_status
pv_sha256_final(struct pv_sha256 *h, uint8_t out[static PV_SHA256_LEN])
{
	unsigned int n = 0;
	pv_status rc;

	rc = EVP_DigestFinal_ex((EVP_MD_CTX *)h, out, &n) == 1 &&
	    n == PV_SHA256_LEN ? PV_OK : PV_ECRYPTO;
	EVP_MD_CTX_free((EVP_MD_CTX *)h);
	return rc;
}

void
pv_sha256_free(struct pv_sha256 *h)
{
	EVP_MD_CTX_free((EVP_MD_CTX *)h);
}
