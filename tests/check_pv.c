/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_pv.c: the shared base (pv.h): known-answer vectors for every
 * primitive we build on, AEAD tampering, encodings and their rejections,
 * validation, bounded buffers, status strings, secure memory, integer
 * packing and the clock.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pv.h"
#include "testutil.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 1 if all len bytes of p are zero. */
static int
all_zero(const void *p, size_t len)
{
	const uint8_t *s = p;
	uint8_t acc = 0;

	for (size_t i = 0; i < len; i++)
		acc |= s[i];
	return acc == 0;
}

/* The 6-bit value of c in alphabet a; the test's own slow decoder. */
static int
b64_value(const char *a, char c)
{
	const char *q = strchr(a, c);

	ck_assert_ptr_nonnull(q);
	ck_assert_int_ne(c, '\0');
	return (int)(q - a);
}

/* Known answers. */

START_TEST(gcm_kat_case16)
{
	uint8_t key[32], iv[12], aad[20], pt[60], ct[60], tag[16];
	uint8_t got_ct[60], got_tag[16], got_pt[60];

	ck_assert_uint_eq(tu_unhex(key, sizeof(key), "feffe9928665731c6d6a8f"
	    "9467308308feffe9928665731c6d6a8f9467308308"), 32);
	ck_assert_uint_eq(tu_unhex(iv, sizeof(iv), "cafebabefacedbaddecaf888"),
	    12);
	ck_assert_uint_eq(tu_unhex(aad, sizeof(aad),
	    "feedfacedeadbeeffeedfacedeadbeefabaddad2"), 20);
	ck_assert_uint_eq(tu_unhex(pt, sizeof(pt), "d9313225f88406e5a55909c5"
	    "aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
	    "49a6b525b16aedf5aa0de657ba637b39"), 60);
	ck_assert_uint_eq(tu_unhex(ct, sizeof(ct), "522dc1f099567d07f47f37a3"
	    "2a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10"
	    "56828838c5f61e6393ba7a0abcc9f662"), 60);
	ck_assert_uint_eq(tu_unhex(tag, sizeof(tag),
	    "76fc6ece0f4e1768cddf8853bb2d551b"), 16);

	ck_assert_int_eq(pv_aead_seal_nonce(got_ct, got_tag, key, iv, aad,
	    sizeof(aad), pt, sizeof(pt)), PV_OK);
	ck_assert_mem_eq(got_ct, ct, sizeof(ct));
	ck_assert_mem_eq(got_tag, tag, sizeof(tag));

	memset(got_pt, 0xa5, sizeof(got_pt));
	ck_assert_int_eq(pv_aead_open(got_pt, key, iv, tag, aad, sizeof(aad),
	    ct, sizeof(ct)), PV_OK);
	ck_assert_mem_eq(got_pt, pt, sizeof(pt));
}
END_TEST

/*
 * A key expanded once (struct pv_gcm) gives exactly the one-shot answers,
 * message after message, sealing and opening in turn, and a forged
 * message opens to nothing.
 */
START_TEST(gcm_keyed_matches_one_shot)
{
	uint8_t key[32], nonce[12], aad[24], pt[64], ct[64], tag[16];
	uint8_t want_ct[64], want_tag[16], back[64], zero[64] = { 0 };
	struct pv_gcm *g = NULL;

	ck_assert_int_eq(pv_random(key, sizeof(key)), PV_OK);
	ck_assert_int_eq(pv_random(aad, sizeof(aad)), PV_OK);
	ck_assert_int_eq(pv_gcm_new(key, &g), PV_OK);
	for (size_t len = 0; len <= sizeof(pt); len += 13) {
		ck_assert_int_eq(pv_random(nonce, sizeof(nonce)), PV_OK);
		ck_assert_int_eq(pv_random(pt, sizeof(pt)), PV_OK);
		ck_assert_int_eq(pv_aead_seal_nonce(want_ct, want_tag, key,
		    nonce, aad, len % sizeof(aad), pt, len), PV_OK);
		ck_assert_int_eq(pv_gcm_seal(g, ct, tag, nonce, aad,
		    len % sizeof(aad), pt, len), PV_OK);
		ck_assert_mem_eq(ct, want_ct, len);
		ck_assert_mem_eq(tag, want_tag, sizeof(tag));
		ck_assert_int_eq(pv_gcm_open(g, back, nonce, tag, aad,
		    len % sizeof(aad), ct, len), PV_OK);
		ck_assert_mem_eq(back, pt, len);
		if (len == 0)
			continue;
		ct[len - 1] ^= 0x01;
		memset(back, 0xa5, sizeof(back));
		ck_assert_int_eq(pv_gcm_open(g, back, nonce, tag, aad,
		    len % sizeof(aad), ct, len), PV_EINTEGRITY);
		ck_assert_mem_eq(back, zero, len);
		ct[len - 1] ^= 0x01;
		/* And the context is still good after a failure. */
		ck_assert_int_eq(pv_gcm_open(g, back, nonce, tag, aad,
		    len % sizeof(aad), ct, len), PV_OK);
		ck_assert_mem_eq(back, pt, len);
	}
	pv_gcm_free(g);
	pv_gcm_free(NULL);
}
END_TEST

START_TEST(gcm_kat_case13_empty)
{
	uint8_t key[32] = { 0 }, iv[12] = { 0 }, tag[16], got_tag[16];
	uint8_t ct[1] = { 0x5a }, pt[1] = { 0x5a };

	ck_assert_uint_eq(tu_unhex(tag, sizeof(tag),
	    "530f8afbc74536b9a963b4f1c4cb738b"), 16);
	ck_assert_int_eq(pv_aead_seal_nonce(ct, got_tag, key, iv, NULL, 0,
	    NULL, 0), PV_OK);
	ck_assert_mem_eq(got_tag, tag, sizeof(tag));
	/* Nothing to encrypt, so nothing may be written. */
	ck_assert_uint_eq(ct[0], 0x5a);

	ck_assert_int_eq(pv_aead_open(pt, key, iv, tag, NULL, 0, ct, 0),
	    PV_OK);
	ck_assert_uint_eq(pt[0], 0x5a);
	tag[15] ^= 1;
	ck_assert_int_eq(pv_aead_open(pt, key, iv, tag, NULL, 0, ct, 0),
	    PV_EINTEGRITY);
}
END_TEST

static void
hmac_one(const uint8_t *key, size_t keylen, const char *msg,
    const char *want_hex)
{
	struct pv_part part = { msg, strlen(msg) };
	uint8_t want[PV_HMAC_LEN], got[PV_HMAC_LEN];

	ck_assert_uint_eq(tu_unhex(want, sizeof(want), want_hex), PV_HMAC_LEN);
	ck_assert_int_eq(pv_hmac(got, key, keylen, &part, 1), PV_OK);
	ck_assert_mem_eq(got, want, sizeof(want));
}

static const char hmac6_msg[] =
    "Test Using Larger Than Block-Size Key - Hash Key First";
static const char hmac6_mac[] =
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";

START_TEST(hmac_rfc4231)
{
	uint8_t k1[20], k6[131];

	memset(k1, 0x0b, sizeof(k1));
	hmac_one(k1, sizeof(k1), "Hi There", "b0344c61d8db38535ca8afceaf0b"
	    "f12b881dc200c9833da726e9376c2e32cff7");
	hmac_one((const uint8_t *)"Jefe", 4, "what do ya want for nothing?",
	    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* Longer than the 64-byte block: the key is hashed first. */
	memset(k6, 0xaa, sizeof(k6));
	hmac_one(k6, sizeof(k6), hmac6_msg, hmac6_mac);
}
END_TEST

START_TEST(hmac_parts)
{
	const size_t mlen = sizeof(hmac6_msg) - 1;
	uint8_t key[131], want[PV_HMAC_LEN], got[PV_HMAC_LEN];
	uint8_t k1[20], empty[PV_HMAC_LEN];
	struct pv_part parts[4];

	memset(key, 0xaa, sizeof(key));
	ck_assert_uint_eq(tu_unhex(want, sizeof(want), hmac6_mac), 32);

	/* Every split into two, the empty halves included. */
	for (size_t cut = 0; cut <= mlen; cut++) {
		parts[0] = (struct pv_part){ hmac6_msg, cut };
		parts[1] = (struct pv_part){ hmac6_msg + cut, mlen - cut };
		ck_assert_int_eq(pv_hmac(got, key, sizeof(key), parts, 2),
		    PV_OK);
		ck_assert_msg(memcmp(got, want, sizeof(want)) == 0,
		    "split at %zu gives a different mac", cut);
	}
	/* Four uneven pieces with an empty one in the middle. */
	parts[0] = (struct pv_part){ hmac6_msg, 1 };
	parts[1] = (struct pv_part){ hmac6_msg + 1, 0 };
	parts[2] = (struct pv_part){ hmac6_msg + 1, 30 };
	parts[3] = (struct pv_part){ hmac6_msg + 31, mlen - 31 };
	ck_assert_int_eq(pv_hmac(got, key, sizeof(key), parts, 4), PV_OK);
	ck_assert_mem_eq(got, want, sizeof(want));

	/* Reordering the pieces must change the mac. */
	parts[0] = (struct pv_part){ hmac6_msg + 31, mlen - 31 };
	parts[3] = (struct pv_part){ hmac6_msg, 1 };
	ck_assert_int_eq(pv_hmac(got, key, sizeof(key), parts, 4), PV_OK);
	ck_assert_mem_ne(got, want, sizeof(want));

	/* No parts at all is the mac of the empty message. */
	memset(k1, 0x0b, sizeof(k1));
	ck_assert_uint_eq(tu_unhex(empty, sizeof(empty), "999a901219f032cd49"
	    "7cadb5e6051e97b6a29ab297bd6ae722bd6062a2f59542"), 32);
	ck_assert_int_eq(pv_hmac(got, k1, sizeof(k1), parts, 0), PV_OK);
	ck_assert_mem_eq(got, empty, sizeof(empty));
}
END_TEST

START_TEST(hkdf_rfc5869)
{
	uint8_t ikm[22], salt[13], info[10], want[42], got[42];

	memset(ikm, 0x0b, sizeof(ikm));
	for (size_t i = 0; i < sizeof(salt); i++)
		salt[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(info); i++)
		info[i] = (uint8_t)(0xf0 + i);

	/* Test case 1. */
	ck_assert_uint_eq(tu_unhex(want, sizeof(want), "3cb25f25faacd57a9043"
	    "4f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
	    42);
	ck_assert_int_eq(pv_hkdf(got, sizeof(got), ikm, sizeof(ikm), salt,
	    sizeof(salt), info, sizeof(info)), PV_OK);
	ck_assert_mem_eq(got, want, sizeof(want));
	/* A shorter output is a prefix of the longer one. */
	memset(got, 0, sizeof(got));
	ck_assert_int_eq(pv_hkdf(got, 16, ikm, sizeof(ikm), salt,
	    sizeof(salt), info, sizeof(info)), PV_OK);
	ck_assert_mem_eq(got, want, 16);
	ck_assert(all_zero(got + 16, sizeof(got) - 16));

	/* Test case 3: no salt (HashLen zeros) and no info. */
	ck_assert_uint_eq(tu_unhex(want, sizeof(want), "8da4e775a563c18f715f"
	    "802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
	    42);
	ck_assert_int_eq(pv_hkdf(got, sizeof(got), ikm, sizeof(ikm), NULL, 0,
	    NULL, 0), PV_OK);
	ck_assert_mem_eq(got, want, sizeof(want));
}
END_TEST

START_TEST(block_fips197)
{
	uint8_t key[32], pt[16], ct[16], got[16];

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	ck_assert_uint_eq(tu_unhex(pt, sizeof(pt),
	    "00112233445566778899aabbccddeeff"), 16);
	ck_assert_uint_eq(tu_unhex(ct, sizeof(ct),
	    "8ea2b7ca516745bfeafc49904b496089"), 16);
	ck_assert_int_eq(pv_block_encrypt(got, key, pt), PV_OK);
	ck_assert_mem_eq(got, ct, sizeof(ct));
	ck_assert_int_eq(pv_block_decrypt(got, key, ct), PV_OK);
	ck_assert_mem_eq(got, pt, sizeof(pt));

	/* And a permutation for random blocks and keys. */
	for (int n = 0; n < 200; n++) {
		uint8_t in[16], mid[16];

		ck_assert_int_eq(pv_random(key, sizeof(key)), PV_OK);
		ck_assert_int_eq(pv_random(in, sizeof(in)), PV_OK);
		ck_assert_int_eq(pv_block_encrypt(mid, key, in), PV_OK);
		ck_assert_int_eq(pv_block_decrypt(got, key, mid), PV_OK);
		ck_assert_mem_eq(got, in, sizeof(in));
	}
}
END_TEST

/* AEAD. */

/*
 * Opening must fail with PV_EINTEGRITY and leave the plaintext buffer all
 * zero, though it was filled with a pattern before.
 */
static void
expect_forged(const char *what, size_t bit, const uint8_t *key,
    const uint8_t *nonce, const uint8_t *tag, const uint8_t *aad,
    size_t aadlen, const uint8_t *ct, size_t ctlen)
{
	uint8_t pt[256];
	pv_status rc;

	ck_assert_uint_le(ctlen, sizeof(pt));
	memset(pt, 0xa5, sizeof(pt));
	rc = pv_aead_open(pt, key, nonce, tag, aad, aadlen, ct, ctlen);
	ck_assert_msg(rc == PV_EINTEGRITY, "%s bit %zu: open gave %d", what,
	    bit, (int)rc);
	ck_assert_msg(all_zero(pt, ctlen), "%s bit %zu: plaintext released",
	    what, bit);
}

static void
tamper_all(size_t ptlen)
{
	uint8_t key[32], nonce[12], tag[16], aad[21], pt[100], ct[100];
	uint8_t out[100];

	ck_assert_uint_le(ptlen, sizeof(pt));
	ck_assert_int_eq(pv_random(key, sizeof(key)), PV_OK);
	ck_assert_int_eq(pv_random(aad, sizeof(aad)), PV_OK);
	ck_assert_int_eq(pv_random(pt, sizeof(pt)), PV_OK);
	ck_assert_int_eq(pv_aead_seal(ct, nonce, tag, key, aad, sizeof(aad),
	    pt, ptlen), PV_OK);
	/* The untampered message opens: the flips below are what fail. */
	ck_assert_int_eq(pv_aead_open(out, key, nonce, tag, aad, sizeof(aad),
	    ct, ptlen), PV_OK);
	ck_assert_mem_eq(out, pt, ptlen);

	for (size_t b = 0; b < ptlen * 8; b++) {
		ct[b / 8] ^= (uint8_t)(1u << (b % 8));
		expect_forged("ciphertext", b, key, nonce, tag, aad,
		    sizeof(aad), ct, ptlen);
		ct[b / 8] ^= (uint8_t)(1u << (b % 8));
	}
	for (size_t b = 0; b < sizeof(tag) * 8; b++) {
		tag[b / 8] ^= (uint8_t)(1u << (b % 8));
		expect_forged("tag", b, key, nonce, tag, aad, sizeof(aad), ct,
		    ptlen);
		tag[b / 8] ^= (uint8_t)(1u << (b % 8));
	}
	for (size_t b = 0; b < sizeof(nonce) * 8; b++) {
		nonce[b / 8] ^= (uint8_t)(1u << (b % 8));
		expect_forged("nonce", b, key, nonce, tag, aad, sizeof(aad),
		    ct, ptlen);
		nonce[b / 8] ^= (uint8_t)(1u << (b % 8));
	}
	for (size_t b = 0; b < sizeof(aad) * 8; b++) {
		aad[b / 8] ^= (uint8_t)(1u << (b % 8));
		expect_forged("aad", b, key, nonce, tag, aad, sizeof(aad), ct,
		    ptlen);
		aad[b / 8] ^= (uint8_t)(1u << (b % 8));
	}
	for (size_t b = 0; b < sizeof(key) * 8; b++) {
		key[b / 8] ^= (uint8_t)(1u << (b % 8));
		expect_forged("key", b, key, nonce, tag, aad, sizeof(aad), ct,
		    ptlen);
		key[b / 8] ^= (uint8_t)(1u << (b % 8));
	}
	/* Dropped or truncated AAD, and a truncated ciphertext. */
	expect_forged("no aad", 0, key, nonce, tag, aad, 0, ct, ptlen);
	expect_forged("short aad", 0, key, nonce, tag, aad, sizeof(aad) - 1,
	    ct, ptlen);
	if (ptlen > 0)
		expect_forged("short ciphertext", 0, key, nonce, tag, aad,
		    sizeof(aad), ct, ptlen - 1);

	/* Everything restored: it opens again. */
	ck_assert_int_eq(pv_aead_open(out, key, nonce, tag, aad, sizeof(aad),
	    ct, ptlen), PV_OK);
	ck_assert_mem_eq(out, pt, ptlen);
}

START_TEST(aead_tamper)
{
	tamper_all(37);
	tamper_all(100);
}
END_TEST

START_TEST(aead_tamper_empty)
{
	/* An empty message is still authenticated: tag, nonce and AAD. */
	tamper_all(0);
}
END_TEST

START_TEST(aead_roundtrip)
{
	static const size_t lens[] = { 0, 1, 15, 16, 17, 255, 1000, 4095,
	    4096 };
	uint8_t key[32], nonce[12], tag[16], aad[64];
	uint8_t *pt, *ct, *out;

	ck_assert_ptr_nonnull(pt = malloc(4096));
	ck_assert_ptr_nonnull(ct = malloc(4096));
	ck_assert_ptr_nonnull(out = malloc(4096));
	for (size_t i = 0; i < NELEM(lens); i++) {
		size_t len = lens[i], aadlen = i % 2 ? sizeof(aad) : 0;

		ck_assert_int_eq(pv_random(key, sizeof(key)), PV_OK);
		ck_assert_int_eq(pv_random(aad, sizeof(aad)), PV_OK);
		ck_assert_int_eq(pv_random(pt, len), PV_OK);
		ck_assert_int_eq(pv_aead_seal(ct, nonce, tag, key, aad,
		    aadlen, pt, len), PV_OK);
		/* Too short to tell by chance otherwise. */
		if (len >= 16)
			ck_assert_mem_ne(ct, pt, 16);
		memset(out, 0xa5, 4096);
		ck_assert_int_eq(pv_aead_open(out, key, nonce, tag, aad,
		    aadlen, ct, len), PV_OK);
		ck_assert_msg(memcmp(out, pt, len) == 0,
		    "round trip of %zu bytes differs", len);
		/* Nothing written past the plaintext. */
		if (len < 4096)
			ck_assert_uint_eq(out[len], 0xa5);
	}
	free(pt);
	free(ct);
	free(out);
}
END_TEST

START_TEST(aead_fresh_nonces)
{
	static const char msg[] = "jane.doe@example.com";
	uint8_t key[32], n1[12], n2[12], t1[16], t2[16];
	uint8_t c1[sizeof(msg)], c2[sizeof(msg)];

	ck_assert_int_eq(pv_random(key, sizeof(key)), PV_OK);
	ck_assert_int_eq(pv_aead_seal(c1, n1, t1, key, "x", 1, msg,
	    sizeof(msg)), PV_OK);
	ck_assert_int_eq(pv_aead_seal(c2, n2, t2, key, "x", 1, msg,
	    sizeof(msg)), PV_OK);
	ck_assert_mem_ne(n1, n2, sizeof(n1));
	ck_assert_mem_ne(c1, c2, sizeof(c1));
	ck_assert_mem_ne(t1, t2, sizeof(t1));
}
END_TEST

START_TEST(random_bytes)
{
	uint8_t a[64] = { 0 }, b[64] = { 0 }, guard[4] = { 0 };

	ck_assert_int_eq(pv_random(a, sizeof(a)), PV_OK);
	ck_assert(!all_zero(a, sizeof(a)));
	ck_assert_int_eq(pv_random(b, sizeof(b)), PV_OK);
	ck_assert(!all_zero(b, sizeof(b)));
	ck_assert_mem_ne(a, b, sizeof(a));
	/* Each of the 64 bytes is filled, not just a prefix. */
	ck_assert(!all_zero(a + 48, 16) && !all_zero(b + 48, 16));
	ck_assert_int_eq(pv_random(guard, 0), PV_OK);
	ck_assert(all_zero(guard, sizeof(guard)));
}
END_TEST

/* Key encoding: standard base64 with one '='. */

START_TEST(key_b64_kat)
{
	static const char want[] =
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
	uint8_t key[32], got[32];
	char out[PV_KEY_B64_LEN + 1];

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	pv_key_to_base64(out, key);
	ck_assert_str_eq(out, want);
	ck_assert_int_eq(pv_key_from_base64(got, want, PV_KEY_B64_LEN), PV_OK);
	ck_assert_mem_eq(got, key, sizeof(key));

	/* The two characters beyond the alphanumerics. */
	memset(key, 0xff, sizeof(key));
	pv_key_to_base64(out, key);
	ck_assert_str_eq(out, "//////////////////////////////////////////8=");
	memset(key, 0xfb, sizeof(key));
	key[0] = key[3] = 0xf8;
	key[1] = key[2] = 0x00;
	pv_key_to_base64(out, key);
	ck_assert_int_eq(out[0], '+');
	ck_assert_int_eq(pv_key_from_base64(got, out, PV_KEY_B64_LEN), PV_OK);
	ck_assert_mem_eq(got, key, sizeof(key));
}
END_TEST

START_TEST(key_b64_roundtrip)
{
	uint8_t key[32], got[32];
	char out[PV_KEY_B64_LEN + 1];

	for (int n = 0; n < 10000; n++) {
		ck_assert_int_eq(pv_random(key, sizeof(key)), PV_OK);
		memset(out, '#', sizeof(out));
		pv_key_to_base64(out, key);
		ck_assert_uint_eq(strlen(out), PV_KEY_B64_LEN);
		ck_assert_uint_eq(strspn(out, b64_std), PV_KEY_B64_LEN - 1);
		ck_assert_int_eq(out[PV_KEY_B64_LEN - 1], '=');
		/* Canonical: the last character carries two zero bits. */
		ck_assert_int_eq(b64_value(b64_std, out[42]) & 3, 0);
		memset(got, 0, sizeof(got));
		ck_assert_int_eq(pv_key_from_base64(got, out, PV_KEY_B64_LEN),
		    PV_OK);
		ck_assert_mem_eq(got, key, sizeof(key));
	}
}
END_TEST

/* A decoder into n bytes, the status it refuses with, a fill to watch. */
struct decoder {
	pv_status	(*decode)(uint8_t *, const char *, size_t);
	size_t		  n;
	uint8_t		  fill;
	pv_status	  refused;
};

/* in must be refused, and the output left as it was. */
static void
expect_refused(const struct decoder *d, const char *in, size_t len,
    const char *why)
{
	uint8_t out[32], mark[32];
	pv_status rc;

	ck_assert_uint_le(d->n, sizeof(out));
	memset(mark, d->fill, sizeof(mark));
	memcpy(out, mark, sizeof(out));
	rc = d->decode(out, in, len);
	ck_assert_msg(rc == d->refused, "%s: got %d", why, (int)rc);
	ck_assert_msg(memcmp(out, mark, sizeof(out)) == 0,
	    "%s: output written on failure", why);
}

static void
expect_bad_key(const char *in, size_t len, const char *why)
{
	static const struct decoder key = { pv_key_from_base64, 32, 0x3c,
	    PV_EKEYFORMAT };

	expect_refused(&key, in, len, why);
}

static void
valid_key_b64(char out[PV_KEY_B64_LEN + 1])
{
	uint8_t key[32];

	ck_assert_int_eq(pv_random(key, sizeof(key)), PV_OK);
	pv_key_to_base64(out, key);
}

START_TEST(key_b64_reject_length)
{
	char s[PV_KEY_B64_LEN + 2];

	valid_key_b64(s);
	expect_bad_key(s, 0, "empty");
	expect_bad_key(s, 43, "43 characters");
	expect_bad_key(s, 42, "42 characters");
	s[44] = '=';
	s[45] = '\0';
	expect_bad_key(s, 45, "45 characters, two '='");
	s[44] = 'A';
	expect_bad_key(s, 45, "45 characters");
	/* 43 characters without the '=', in a 44-byte window. */
	s[43] = '\0';
	expect_bad_key(s, 44, "'=' replaced by NUL");
}
END_TEST

START_TEST(key_b64_reject_pad)
{
	char s[PV_KEY_B64_LEN + 1];

	valid_key_b64(s);
	s[43] = 'A';
	expect_bad_key(s, 44, "missing '='");
	valid_key_b64(s);
	s[43] = ' ';
	expect_bad_key(s, 44, "space for '='");
	valid_key_b64(s);
	s[42] = '=';
	expect_bad_key(s, 44, "'==' padding");
	valid_key_b64(s);
	memmove(s + 1, s, 43);
	s[0] = '=';
	expect_bad_key(s, 44, "leading '='");
}
END_TEST

/*
 * Characters just outside each of the five ranges the decoder accepts,
 * the other alphabet's two, padding, controls and high bytes.
 */
static const char bad_chars[] = {
	'@', '[', '`', '{', '/' - 1, '9' + 1, '+' - 1, '+' + 1, '-', '_',
	'=', ' ', '\t', '\n', '\r', '~', '!', '$', (char)0x7f, (char)0x80,
	(char)0xc3, (char)0xff, (char)0x01,
};

START_TEST(key_b64_reject_char)
{
	char s[PV_KEY_B64_LEN + 1], why[64];

	valid_key_b64(s);
	/*
	 * Every position: the four slots of a full group (0-39) and the
	 * three of the final partial group (40-42); 43 is the '='.
	 */
	for (size_t pos = 0; pos < PV_KEY_B64_LEN - 1; pos++) {
		for (size_t j = 0; j < sizeof(bad_chars); j++) {
			char save = s[pos];

			s[pos] = bad_chars[j];
			(void)snprintf(why, sizeof(why), "byte %#x at %zu",
			    (unsigned)(unsigned char)bad_chars[j], pos);
			expect_bad_key(s, PV_KEY_B64_LEN, why);
			s[pos] = save;
		}
	}
	/* The string is still good after all that. */
	{
		uint8_t key[32];

		ck_assert_int_eq(pv_key_from_base64(key, s, PV_KEY_B64_LEN),
		    PV_OK);
	}
}
END_TEST

START_TEST(key_b64_reject_noncanonical)
{
	char s[PV_KEY_B64_LEN + 1], why[64];
	uint8_t key[32], got[32];

	/* Sweep keys until every last-character value was seen. */
	for (int n = 0; n < 64; n++) {
		ck_assert_int_eq(pv_random(key, sizeof(key)), PV_OK);
		key[31] = (uint8_t)((key[31] & 0xf0) | (n & 0x0f));
		pv_key_to_base64(s, key);
		for (int low = 1; low < 4; low++) {
			char save = s[42];
			int v = b64_value(b64_std, save);

			/* Same 32 bytes, but the two unused bits set. */
			s[42] = b64_std[v | low];
			(void)snprintf(why, sizeof(why),
			    "'%c' for '%c' at 42", s[42], save);
			expect_bad_key(s, PV_KEY_B64_LEN, why);
			s[42] = save;
		}
		ck_assert_int_eq(pv_key_from_base64(got, s, PV_KEY_B64_LEN),
		    PV_OK);
		ck_assert_mem_eq(got, key, sizeof(key));
	}
}
END_TEST

START_TEST(key_b64_reject_nul)
{
	char s[PV_KEY_B64_LEN + 1];
	size_t pos[] = { 0, 1, 2, 3, 20, 39, 40, 41, 42 };

	for (size_t i = 0; i < NELEM(pos); i++) {
		valid_key_b64(s);
		s[pos[i]] = '\0';
		expect_bad_key(s, PV_KEY_B64_LEN, "embedded NUL");
	}
}
END_TEST

/* Identifier encoding: base64url, 16 bytes in 22 characters. */

START_TEST(b64url_kat)
{
	static const struct {
		const char	*hex;
		const char	*b64;
	} v[] = {
		{ "000102030405060708090a0b0c0d0e0f", "AAECAwQFBgcICQoLDA0ODw" },
		{ "ffffffffffffffffffffffffffffffff", "_____________________w" },
		{ "fbefbefbefbefbefbefbefbefbefbef8", "---------------------A" },
		{ "00000000000000000000000000000000", "AAAAAAAAAAAAAAAAAAAAAA" },
	};
	uint8_t in[16], got[16];
	char out[PV_B64URL16_LEN + 1];

	for (size_t i = 0; i < NELEM(v); i++) {
		ck_assert_uint_eq(tu_unhex(in, sizeof(in), v[i].hex), 16);
		pv_b64url_encode16(out, in);
		ck_assert_str_eq(out, v[i].b64);
		ck_assert_int_eq(pv_b64url_decode16(got, v[i].b64,
		    PV_B64URL16_LEN), PV_OK);
		ck_assert_mem_eq(got, in, sizeof(in));
	}
}
END_TEST

START_TEST(b64url_roundtrip)
{
	uint8_t in[16], got[16];
	char out[PV_B64URL16_LEN + 2];

	for (int n = 0; n < 10000; n++) {
		ck_assert_int_eq(pv_random(in, sizeof(in)), PV_OK);
		memset(out, '#', sizeof(out));
		pv_b64url_encode16(out, in);
		ck_assert_uint_eq(strlen(out), PV_B64URL16_LEN);
		ck_assert_uint_eq(strspn(out, b64_url), PV_B64URL16_LEN);
		ck_assert_int_eq(out[PV_B64URL16_LEN + 1], '#');
		ck_assert_int_eq(b64_value(b64_url, out[21]) & 15, 0);
		memset(got, 0, sizeof(got));
		ck_assert_int_eq(pv_b64url_decode16(got, out, PV_B64URL16_LEN),
		    PV_OK);
		ck_assert_mem_eq(got, in, sizeof(in));
	}
}
END_TEST

static void
expect_bad_token(const char *in, size_t len, const char *why)
{
	static const struct decoder token = { pv_b64url_decode16, 16, 0xc3,
	    PV_ETOKEN };

	expect_refused(&token, in, len, why);
}

START_TEST(b64url_reject)
{
	static const char std_only[] = { '+', '/', '=', '.', ' ', '\0',
	    (char)0x80, (char)0xff };
	uint8_t in[16];
	char s[PV_B64URL16_LEN + 3], why[64];

	ck_assert_int_eq(pv_random(in, sizeof(in)), PV_OK);
	pv_b64url_encode16(s, in);
	expect_bad_token(s, 0, "empty");
	expect_bad_token(s, 21, "21 characters");
	memcpy(s + 22, "==", 3);
	expect_bad_token(s, 23, "23 characters");
	expect_bad_token(s, 24, "padded with '=='");
	s[22] = '\0';

	for (size_t pos = 0; pos < PV_B64URL16_LEN; pos++) {
		for (size_t j = 0; j < sizeof(std_only); j++) {
			char save = s[pos];

			s[pos] = std_only[j];
			(void)snprintf(why, sizeof(why), "byte %#x at %zu",
			    (unsigned)(unsigned char)std_only[j], pos);
			expect_bad_token(s, PV_B64URL16_LEN, why);
			s[pos] = save;
		}
	}

	/* Non-canonical: any of the four unused bits of the last one set. */
	for (int low = 1; low < 16; low++) {
		char save = s[21];

		s[21] = b64_url[b64_value(b64_url, save) | low];
		(void)snprintf(why, sizeof(why), "'%c' for '%c' at 21", s[21],
		    save);
		expect_bad_token(s, PV_B64URL16_LEN, why);
		s[21] = save;
	}
	{
		uint8_t got[16];

		ck_assert_int_eq(pv_b64url_decode16(got, s, PV_B64URL16_LEN),
		    PV_OK);
		ck_assert_mem_eq(got, in, sizeof(in));
	}
}
END_TEST

START_TEST(hex_encode)
{
	static const uint8_t in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd,
	    0xef, 0xff };
	char out[2 * sizeof(in) + 2];

	memset(out, '#', sizeof(out));
	pv_hex_encode(out, in, sizeof(in));
	ck_assert_str_eq(out, "00017f80abcdefff");
	ck_assert_int_eq(out[2 * sizeof(in) + 1], '#');
	pv_hex_encode(out, in, 0);
	ck_assert_str_eq(out, "");
}
END_TEST

/* Validation. */

struct bytes {
	const char	*p;
	size_t		 len;
};
#define B(s)	{ s, sizeof(s) - 1 }

START_TEST(utf8_accepts)
{
	static const struct bytes ok[] = {
		B(""), B("a"), B("hello, world"), B("\x7f"),
		B("\xc3\xa9"),			/* é */
		B("\xe2\x82\xac"),		/* € */
		B("\xf0\x9d\x84\x9e"),		/* 𝄞 */
		B("caf\xc3\xa9 \xe2\x82\xac" "5 \xf0\x9d\x84\x9e!"),
		B("\xc2\x80"),			/* U+0080, smallest 2 */
		B("\xdf\xbf"),			/* U+07FF */
		B("\xe0\xa0\x80"),		/* U+0800, smallest 3 */
		B("\xed\x9f\xbf"),		/* U+D7FF, below surrogates */
		B("\xee\x80\x80"),		/* U+E000, above them */
		B("\xef\xbf\xbf"),		/* U+FFFF */
		B("\xf0\x90\x80\x80"),		/* U+10000, smallest 4 */
		B("\xf4\x8f\xbf\xbf"),		/* U+10FFFF, the last */
	};

	for (size_t i = 0; i < NELEM(ok); i++)
		ck_assert_msg(pv_utf8_valid(ok[i].p, ok[i].len) == 1,
		    "valid utf-8 #%zu refused", i);
}
END_TEST

START_TEST(utf8_rejects)
{
	static const struct bytes bad[] = {
		B("\xc0\xaf"),			/* overlong '/' */
		B("\xc0\x80"),			/* overlong NUL */
		B("\xc1\xbf"),			/* overlong U+007F */
		B("\xe0\x80\xaf"),		/* overlong, 3 bytes */
		B("\xe0\x9f\xbf"),		/* overlong U+07FF */
		B("\xf0\x80\x80\xaf"),		/* overlong, 4 bytes */
		B("\xf0\x8f\xbf\xbf"),		/* overlong U+FFFF */
		B("\xed\xa0\x80"),		/* U+D800 */
		B("\xed\xbf\xbf"),		/* U+DFFF */
		B("\xf4\x90\x80\x80"),		/* U+110000 */
		B("\xf5\x80\x80\x80"),
		B("\xf7\xbf\xbf\xbf"),
		B("\xc3"),			/* truncated at the end */
		B("abc\xc3"),
		B("\xe2\x82"),
		B("\xe2"),
		B("\xf0\x9d\x84"),
		B("\xf0\x9d"),
		B("\x80"),			/* stray continuation */
		B("a\xbf" "b"),
		B("\xc3\xa9\xa9"),
		B("\xe2\x28\xa1"),		/* non-continuation inside */
		B("\xc3\x00"),
		B("\0"),			/* NUL */
		B("ab\0cd"),
		B("\xff"), B("\xfe"), B("\xf8\x88\x80\x80\x80"),
		B("a\xff" "b"),
	};

	for (size_t i = 0; i < NELEM(bad); i++)
		ck_assert_msg(pv_utf8_valid(bad[i].p, bad[i].len) == 0,
		    "invalid utf-8 #%zu accepted", i);
	/* The length is honoured: "é" cut after its first byte. */
	ck_assert_int_eq(pv_utf8_valid("\xc3\xa9", 1), 0);
	ck_assert_int_eq(pv_utf8_valid("a\xff", 1), 1);
}
END_TEST

START_TEST(field_names)
{
	static const struct bytes ok[] = {
		B("a"), B("email"), B("home_address2"), B("z"), B("a_"),
		B("a9"), B("x_1_2_3"),
		B("abcdefghijklmnopqrstuvwxyz0123456789_abcdefghijklmnopqrstuvw"
		    "xyz0"),
	};
	static const struct bytes bad[] = {
		B(""), B("1email"), B("9"), B("_email"), B("_"), B("Email"),
		B("emAil"), B("EMAIL"), B("e-mail"), B("e mail"), B(" email"),
		B("email "), B("caf\xc3\xa9"), B("\xc3\xa9t\xc3\xa9"),
		B("e.mail"), B("email\n"), B("em\0ail"), B("e/mail"),
		B("abcdefghijklmnopqrstuvwxyz0123456789_abcdefghijklmnopqrstuvw"
		    "xyz01"),
	};
	char name[PV_FIELD_NAME_MAX + 2];

	/* The longest name in ok[] is exactly the limit. */
	ck_assert_uint_eq(ok[NELEM(ok) - 1].len, PV_FIELD_NAME_MAX);
	ck_assert_uint_eq(bad[NELEM(bad) - 1].len, PV_FIELD_NAME_MAX + 1);
	for (size_t i = 0; i < NELEM(ok); i++)
		ck_assert_msg(pv_field_name_valid(ok[i].p, ok[i].len) == 1,
		    "\"%s\" refused", ok[i].p);
	for (size_t i = 0; i < NELEM(bad); i++)
		ck_assert_msg(pv_field_name_valid(bad[i].p, bad[i].len) == 0,
		    "bad name #%zu accepted", i);

	memset(name, 'a', sizeof(name));
	ck_assert_int_eq(pv_field_name_valid(name, PV_FIELD_NAME_MAX), 1);
	ck_assert_int_eq(pv_field_name_valid(name, PV_FIELD_NAME_MAX + 1), 0);
	/* Only len bytes count: a valid prefix of an invalid string. */
	ck_assert_int_eq(pv_field_name_valid("email-x", 5), 1);
	ck_assert_int_eq(pv_field_name_valid("email-x", 6), 0);
}
END_TEST

/* Bounded buffers. */

START_TEST(buf_grow)
{
	struct pv_buf b;
	char want[2000];
	size_t n = 0;

	pv_buf_init(&b, 1 << 16);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.len, 0);

	ck_assert_int_eq(pv_buf_add(&b, "abc", 3), PV_OK);
	ck_assert_uint_eq(b.len, 3);
	ck_assert_str_eq(b.p, "abc");
	ck_assert_int_eq(pv_buf_printf(&b, "%s=%d;", "n", 42), PV_OK);
	ck_assert_str_eq(b.p, "abcn=42;");
	ck_assert_uint_eq(b.len, 8);
	ck_assert_uint_gt(b.cap, b.len);

	/* Grow through several reallocations, checking as we go. */
	memcpy(want, b.p, b.len);
	n = b.len;
	for (int i = 0; n + 7 < sizeof(want) - 300; i++) {
		char chunk[7];

		memset(chunk, 'a' + i % 26, sizeof(chunk));
		ck_assert_int_eq(pv_buf_add(&b, chunk, sizeof(chunk)), PV_OK);
		memcpy(want + n, chunk, sizeof(chunk));
		n += sizeof(chunk);
		ck_assert_uint_eq(b.len, n);
		ck_assert_uint_gt(b.cap, b.len);
		ck_assert_int_eq(b.p[b.len], '\0');
	}
	/* Longer than printf's stack buffer. */
	ck_assert_int_eq(pv_buf_printf(&b, "%0300d", 7), PV_OK);
	memset(want + n, '0', 299);
	want[n + 299] = '7';
	n += 300;
	ck_assert_uint_eq(b.len, n);
	ck_assert_mem_eq(b.p, want, n);
	ck_assert_int_eq(b.p[b.len], '\0');
	ck_assert_uint_eq(strlen(b.p), n);

	/* An empty add is fine and changes nothing. */
	ck_assert_int_eq(pv_buf_add(&b, "", 0), PV_OK);
	ck_assert_uint_eq(b.len, n);
	pv_buf_cleanup(&b);
}
END_TEST

START_TEST(buf_toobig)
{
	struct pv_buf b;

	pv_buf_init(&b, 10);
	ck_assert_int_eq(pv_buf_add(&b, "12345", 5), PV_OK);
	ck_assert_int_eq(pv_buf_add(&b, "123456", 6), PV_ETOOBIG);
	ck_assert_uint_eq(b.len, 5);
	ck_assert_str_eq(b.p, "12345");
	ck_assert_int_eq(pv_buf_printf(&b, "%s", "abcdef"), PV_ETOOBIG);
	ck_assert_uint_eq(b.len, 5);
	ck_assert_str_eq(b.p, "12345");
	/* Exactly the maximum is allowed. */
	ck_assert_int_eq(pv_buf_printf(&b, "%d", 67890), PV_OK);
	ck_assert_uint_eq(b.len, 10);
	ck_assert_str_eq(b.p, "1234567890");
	ck_assert_int_eq(pv_buf_add(&b, "", 0), PV_OK);
	ck_assert_int_eq(pv_buf_add(&b, "x", 1), PV_ETOOBIG);
	ck_assert_int_eq(pv_buf_printf(&b, "%c", 'x'), PV_ETOOBIG);
	/* A length that would wrap the sum must not. */
	ck_assert_int_eq(pv_buf_add(&b, "x", SIZE_MAX), PV_ETOOBIG);
	ck_assert_int_eq(pv_buf_add(&b, "x", SIZE_MAX - 5), PV_ETOOBIG);
	ck_assert_uint_eq(b.len, 10);
	ck_assert_str_eq(b.p, "1234567890");
	pv_buf_cleanup(&b);

	/* Over the limit through printf's heap path. */
	pv_buf_init(&b, 300);
	ck_assert_int_eq(pv_buf_add(&b, "ab", 2), PV_OK);
	ck_assert_int_eq(pv_buf_printf(&b, "%0299d", 1), PV_ETOOBIG);
	ck_assert_uint_eq(b.len, 2);
	ck_assert_str_eq(b.p, "ab");
	ck_assert_int_eq(pv_buf_printf(&b, "%0298d", 1), PV_OK);
	ck_assert_uint_eq(b.len, 300);
	pv_buf_cleanup(&b);

	/* A first add over the limit allocates nothing. */
	pv_buf_init(&b, 4);
	ck_assert_int_eq(pv_buf_add(&b, "12345", 5), PV_ETOOBIG);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.len, 0);
	pv_buf_cleanup(&b);
}
END_TEST

START_TEST(buf_cleanup_reuse)
{
	struct pv_buf b;

	pv_buf_init(&b, 8);
	pv_buf_cleanup(&b);		/* never used: harmless */
	ck_assert_ptr_null(b.p);
	ck_assert_int_eq(pv_buf_add(&b, "abcdefgh", 8), PV_OK);
	pv_buf_cleanup(&b);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	pv_buf_cleanup(&b);		/* twice: harmless */

	/* Reusable, and still bounded by the same maximum. */
	ck_assert_int_eq(pv_buf_add(&b, "again", 5), PV_OK);
	ck_assert_str_eq(b.p, "again");
	ck_assert_uint_eq(b.len, 5);
	ck_assert_int_eq(pv_buf_add(&b, "1234", 4), PV_ETOOBIG);
	ck_assert_int_eq(pv_buf_add(&b, "123", 3), PV_OK);
	ck_assert_str_eq(b.p, "again123");
	pv_buf_cleanup(&b);
}
END_TEST

/*
 * SIZE_MAX is a legal maximum ("no limit to speak of"); the capacity
 * clamp must not wrap around to a zero-sized block.
 */
START_TEST(buf_max_size_max)
{
	struct pv_buf b;

	pv_buf_init(&b, SIZE_MAX);
	ck_assert_int_eq(pv_buf_add(&b, "x", 1), PV_OK);
	ck_assert_uint_ge(b.cap, 2);
	ck_assert_int_eq(pv_buf_printf(&b, "%0100d", 0), PV_OK);
	ck_assert_uint_eq(b.len, 101);
	ck_assert_uint_gt(b.cap, b.len);
	ck_assert_uint_eq(strlen(b.p), 101);
	pv_buf_cleanup(&b);
}
END_TEST

/* Status strings. */

START_TEST(strerror_all)
{
	for (int i = PV_OK; i < PV__COUNT; i++) {
		const char *s = pv_strerror((pv_status)i);

		ck_assert_ptr_nonnull(s);
		ck_assert_msg(*s != '\0', "code %d: empty string", i);
		ck_assert_msg(strcmp(s, "unknown error") != 0,
		    "code %d has no string", i);
		ck_assert_msg(strchr(s, '\n') == NULL, "code %d: two lines", i);
		for (const char *c = s; *c != '\0'; c++)
			ck_assert_msg(*c < 'A' || *c > 'Z',
			    "code %d: not lowercase: %s", i, s);
		for (int j = PV_OK; j < i; j++)
			ck_assert_msg(strcmp(s, pv_strerror((pv_status)j)) != 0,
			    "codes %d and %d share \"%s\"", j, i, s);
	}
	ck_assert_str_eq(pv_strerror(PV__COUNT), "unknown error");
	ck_assert_str_eq(pv_strerror((pv_status)(PV__COUNT + 1)),
	    "unknown error");
	ck_assert_str_eq(pv_strerror((pv_status)1000), "unknown error");
	ck_assert_str_eq(pv_strerror((pv_status)-1), "unknown error");
}
END_TEST

/* Secure memory and helpers. */

START_TEST(secure_memory)
{
	static const size_t sizes[] = { 0, 1, 2, 15, 16, 17, 31, 32, 33, 64,
	    100, 255, 256, 1000, 4096, 4097, 65536, 1 << 20 };
	uint8_t *p[NELEM(sizes)];

	for (int pass = 0; pass < 2; pass++) {
		/* All live at once, each zeroed and none overlapping. */
		for (size_t i = 0; i < NELEM(sizes); i++) {
			p[i] = pv_secure_alloc(sizes[i]);
			ck_assert_ptr_nonnull(p[i]);
			ck_assert_msg(all_zero(p[i], sizes[i]),
			    "pass %d: %zu bytes not zeroed", pass,
			    sizes[i]);
			memset(p[i], (int)(0x11 * (i + 1)) & 0xff, sizes[i]);
		}
		for (size_t i = 0; i < NELEM(sizes); i++) {
			for (size_t k = 0; k < sizes[i]; k++)
				ck_assert_uint_eq(p[i][k],
				    (0x11 * (i + 1)) & 0xff);
			/*
			 * Freed dirty: the second pass's zero check shows
			 * it comes back clean.
			 */
			pv_secure_free(p[i], sizes[i]);
		}
	}

	/* More than the whole secure heap in turn: frees give it back. */
	for (int n = 0; n < 5000; n++) {
		size_t len = 1 + (size_t)n * 7919 % 8192;
		uint8_t *q = pv_secure_alloc(len);

		ck_assert_msg(q != NULL, "allocation %d of %zu bytes", n, len);
		ck_assert(all_zero(q, len));
		memset(q, 0xee, len);
		pv_secure_free(q, len);
	}
	pv_secure_free(NULL, 0);
	pv_secure_free(NULL, 32);
}
END_TEST

START_TEST(ct_eq_and_cleanse)
{
	uint8_t a[32], b[32];

	ck_assert_int_eq(pv_random(a, sizeof(a)), PV_OK);
	memcpy(b, a, sizeof(b));
	ck_assert_int_eq(pv_ct_eq(a, b, sizeof(a)), 1);
	ck_assert_int_eq(pv_ct_eq(a, b, 0), 1);
	for (size_t bit = 0; bit < sizeof(a) * 8; bit++) {
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_msg(pv_ct_eq(a, b, sizeof(a)) == 0,
		    "bit %zu difference missed", bit);
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* Only len bytes are compared. */
	b[31] ^= 1;
	ck_assert_int_eq(pv_ct_eq(a, b, 31), 1);
	ck_assert_int_eq(pv_ct_eq(a, b, 32), 0);

	memset(a, 0xff, sizeof(a));
	pv_cleanse(a, 16);
	ck_assert(all_zero(a, 16));
	ck_assert_uint_eq(a[16], 0xff);
	pv_cleanse(NULL, 0);
	pv_cleanse(a, 0);
	ck_assert_uint_eq(a[16], 0xff);
}
END_TEST

START_TEST(big_endian)
{
	uint8_t p[10], want8[8], want4[4];

	ck_assert_uint_eq(tu_unhex(want8, 8, "0102030405060708"), 8);
	memset(p, 0xee, sizeof(p));
	pv_put_u64(p + 1, UINT64_C(0x0102030405060708));
	ck_assert_mem_eq(p + 1, want8, 8);
	ck_assert_uint_eq(p[0], 0xee);
	ck_assert_uint_eq(p[9], 0xee);
	ck_assert_uint_eq(pv_get_u64(p + 1), UINT64_C(0x0102030405060708));

	ck_assert_uint_eq(tu_unhex(want4, 4, "deadbeef"), 4);
	memset(p, 0xee, sizeof(p));
	pv_put_u32(p + 1, UINT32_C(0xdeadbeef));
	ck_assert_mem_eq(p + 1, want4, 4);
	ck_assert_uint_eq(p[0], 0xee);
	ck_assert_uint_eq(p[5], 0xee);
	ck_assert_uint_eq(pv_get_u32(p + 1), UINT32_C(0xdeadbeef));

	pv_put_u64(p, 0);
	ck_assert(all_zero(p, 8));
	ck_assert_uint_eq(pv_get_u64(p), 0);
	pv_put_u64(p, UINT64_MAX);
	ck_assert_uint_eq(pv_get_u64(p), UINT64_MAX);
	pv_put_u32(p, UINT32_MAX);
	ck_assert_uint_eq(pv_get_u32(p), UINT32_MAX);

	for (int n = 0; n < 1000; n++) {
		uint64_t v;
		uint32_t w;

		ck_assert_int_eq(pv_random(&v, sizeof(v)), PV_OK);
		w = (uint32_t)v;
		pv_put_u64(p, v);
		ck_assert_uint_eq(pv_get_u64(p), v);
		ck_assert_uint_eq(p[0], (uint8_t)(v >> 56));
		ck_assert_uint_eq(p[7], (uint8_t)v);
		pv_put_u32(p, w);
		ck_assert_uint_eq(pv_get_u32(p), w);
		ck_assert_uint_eq(p[0], (uint8_t)(w >> 24));
		ck_assert_uint_eq(p[3], (uint8_t)w);
	}
}
END_TEST

START_TEST(clock_pin)
{
	uint64_t t0, now, t1;

	pv_clock_set(UINT64_C(1234567890));
	ck_assert_uint_eq(pv_now(), UINT64_C(1234567890));
	ck_assert_uint_eq(pv_now(), UINT64_C(1234567890));
	pv_clock_set(UINT64_C(4102444800));	/* 2100-01-01 */
	ck_assert_uint_eq(pv_now(), UINT64_C(4102444800));

	pv_clock_set(0);
	t0 = (uint64_t)time(NULL);
	now = pv_now();
	t1 = (uint64_t)time(NULL);
	ck_assert_uint_ge(now, t0);
	ck_assert_uint_le(now, t1);
}
END_TEST

/* The JSON writer: commas, escaping, nesting, and its sticky errors. */
START_TEST(json_writer)
{
	static const char ctl[] = "q\"b\\n\n\x01\x1f\x7f\xc3\xa9";
	struct pv_buf b;
	struct pv_json j;

	pv_buf_init(&b, 4096);
	pv_json_init(&j, &b);
	pv_json_obj(&j);
	pv_json_kstr(&j, "id", "rec_1");
	pv_json_key(&j, "list");
	pv_json_arr(&j);
	pv_json_u64(&j, UINT64_MAX);
	pv_json_i64(&j, INT64_MIN);
	pv_json_bool(&j, 1);
	pv_json_null(&j);
	pv_json_obj(&j);
	pv_json_close(&j);
	pv_json_arr(&j);
	pv_json_close(&j);
	pv_json_close(&j);
	pv_json_key(&j, "s\"k");
	pv_json_strn(&j, ctl, sizeof(ctl) - 1);
	pv_json_key(&j, "none");
	pv_json_str_or_null(&j, NULL);
	pv_json_kbool(&j, "f", 0);
	pv_json_ku64(&j, "n", 0);
	pv_json_key(&j, "d");
	pv_json_dbl(&j, 0.5);
	pv_json_key(&j, "raw");
	pv_json_raw(&j, "[1]", 3);
	pv_json_keyn(&j, "k\"xyz", 2);	/* a counted name, escaped too */
	pv_json_str(&j, "");
	pv_json_close(&j);
	ck_assert_int_eq(pv_json_end(&j), PV_OK);
	ck_assert_str_eq(b.p, "{\"id\":\"rec_1\",\"list\":[18446744073709551615,"
	    "-9223372036854775808,true,null,{},[]],\"s\\\"k\":"
	    "\"q\\\"b\\\\n\\n\\u0001\\u001f\\u007f\xc3\xa9\",\"none\":null,"
	    "\"f\":false,\"n\":0,\"d\":0.5,\"raw\":[1],\"k\\\"\":\"\"}");
	pv_buf_cleanup(&b);
}
END_TEST

START_TEST(json_writer_misuse)
{
	struct pv_buf b;
	struct pv_json j;

	/* A document left open, a key outside an object, a close too many. */
	pv_buf_init(&b, 4096);
	pv_json_init(&j, &b);
	pv_json_obj(&j);
	ck_assert_int_eq(pv_json_end(&j), PV_EINVAL);
	pv_buf_cleanup(&b);

	pv_json_init(&j, &b);
	pv_json_arr(&j);
	pv_json_key(&j, "k");
	pv_json_close(&j);
	ck_assert_int_eq(pv_json_end(&j), PV_EINVAL);
	pv_buf_cleanup(&b);

	pv_json_init(&j, &b);
	pv_json_obj(&j);
	pv_json_close(&j);
	pv_json_close(&j);
	ck_assert_int_eq(pv_json_end(&j), PV_EINVAL);
	pv_buf_cleanup(&b);

	/* Too deep, and over the buffer's maximum: the first error sticks. */
	pv_json_init(&j, &b);
	for (int i = 0; i <= PV_JSON_DEPTH; i++)
		pv_json_arr(&j);
	ck_assert_int_eq(pv_json_end(&j), PV_ETOOBIG);
	pv_buf_cleanup(&b);

	pv_buf_init(&b, 8);
	pv_json_init(&j, &b);
	pv_json_obj(&j);
	pv_json_kstr(&j, "key", "a long value");
	pv_json_close(&j);
	ck_assert_int_eq(pv_json_end(&j), PV_ETOOBIG);
	pv_buf_cleanup(&b);
}
END_TEST

START_TEST(mono_clock)
{
	uint64_t a = pv_mono_us(), b = pv_mono_us();

	ck_assert_uint_gt(a, 0);
	ck_assert_uint_ge(b, a);
}
END_TEST

static Suite *
pv_suite(void)
{
	Suite *s = suite_create("pv");
	TCase *kat = tcase_create("kat");
	TCase *aead = tcase_create("aead");
	TCase *enc = tcase_create("encoding");
	TCase *val = tcase_create("validation");
	TCase *buf = tcase_create("buf");
	TCase *misc = tcase_create("misc");

	tcase_add_test(kat, gcm_kat_case16);
	tcase_add_test(kat, gcm_kat_case13_empty);
	tcase_add_test(kat, gcm_keyed_matches_one_shot);
	tcase_add_test(kat, hmac_rfc4231);
	tcase_add_test(kat, hmac_parts);
	tcase_add_test(kat, hkdf_rfc5869);
	tcase_add_test(kat, block_fips197);
	suite_add_tcase(s, kat);

	/* Thousands of opens: generous under the sanitizers. */
	tcase_set_timeout(aead, 120);
	tcase_add_test(aead, aead_tamper);
	tcase_add_test(aead, aead_tamper_empty);
	tcase_add_test(aead, aead_roundtrip);
	tcase_add_test(aead, aead_fresh_nonces);
	tcase_add_test(aead, random_bytes);
	suite_add_tcase(s, aead);

	tcase_set_timeout(enc, 120);
	tcase_add_test(enc, key_b64_kat);
	tcase_add_test(enc, key_b64_roundtrip);
	tcase_add_test(enc, key_b64_reject_length);
	tcase_add_test(enc, key_b64_reject_pad);
	tcase_add_test(enc, key_b64_reject_char);
	tcase_add_test(enc, key_b64_reject_noncanonical);
	tcase_add_test(enc, key_b64_reject_nul);
	tcase_add_test(enc, b64url_kat);
	tcase_add_test(enc, b64url_roundtrip);
	tcase_add_test(enc, b64url_reject);
	tcase_add_test(enc, hex_encode);
	suite_add_tcase(s, enc);

	tcase_add_test(val, utf8_accepts);
	tcase_add_test(val, utf8_rejects);
	tcase_add_test(val, field_names);
	suite_add_tcase(s, val);

	tcase_add_test(buf, buf_grow);
	tcase_add_test(buf, buf_toobig);
	tcase_add_test(buf, buf_cleanup_reuse);
	tcase_add_test(buf, buf_max_size_max);
	tcase_add_test(buf, json_writer);
	tcase_add_test(buf, json_writer_misuse);
	suite_add_tcase(s, buf);

	tcase_set_timeout(misc, 60);
	tcase_add_test(misc, strerror_all);
	tcase_add_test(misc, secure_memory);
	tcase_add_test(misc, ct_eq_and_cleanse);
	tcase_add_test(misc, big_endian);
	tcase_add_test(misc, clock_pin);
	tcase_add_test(misc, mono_clock);
	suite_add_tcase(s, misc);
	return s;
}

int
main(void)
{
	return tu_run(pv_suite());
}
