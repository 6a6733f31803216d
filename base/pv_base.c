/*
 * pv_base.c: status strings, bounded buffers, encodings, validation,
 * logging and the clock.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pv.h"

static const char *const status_str[PV__COUNT] = {
	[PV_OK] = "success",
	[PV_ENOMEM] = "out of memory",
	[PV_EINVAL] = "invalid argument",
	[PV_EIO] = "input/output error",
	[PV_ECRYPTO] = "cryptographic library failure",
	[PV_EINTEGRITY] = "integrity check failed: data was altered or moved",
	[PV_EBADKEY] = "wrong root key or passphrase",
	[PV_EKEYPERM] = "key file must be a regular file of yours, not "
	    "accessible by group or others (chmod 600 it)",
	[PV_EKEYFORMAT] = "key file does not hold one base64 256-bit key",
	[PV_EEXIST] = "already exists",
	[PV_ENOTFOUND] = "not found",
	[PV_EFORMAT] = "unsupported vault format",
	[PV_ESTORE] = "storage failure",
	[PV_EFULL] = "storage is full (map size reached)",
	[PV_EFIELD] = "invalid field name",
	[PV_EVALUE] = "invalid field value",
	[PV_ETOOBIG] = "input exceeds a limit",
	[PV_ENOVAULT] = "no vault in the data directory (run piivault init)",
	[PV_EKEYSTATE] = "key version is not usable for this operation",
	[PV_ESHREDDED] = "record was crypto-shredded",
	[PV_ENOTINDEXED] = "field has no blind index",
	[PV_EJSON] = "malformed json",
	[PV_EUSAGE] = "invalid usage",
	[PV_EPASSPHRASE] = "no passphrase given",
	[PV_ETOKEN] = "malformed token or record id",
	[PV_EUNAUTH] = "missing, unknown or revoked api key",
	[PV_EFORBIDDEN] = "not allowed for this api key",
	[PV_EPURPOSE] = "purpose not allowed for this api key",
	[PV_ECONSENT] = "consent withdrawn for this purpose",
	[PV_EREASON] = "this purpose requires a reason",
	[PV_EMEMBER] = "unknown json member",
	[PV_EUNAVAIL] = "service unavailable, try again",
	[PV_EBUSY] = "the vault is in use by another process (stop it "
	    "first)",
	[PV_EHOLD] = "the record is under legal hold",
	[PV_ELIMIT] = "too many requests for this record in the window",
	[PV_EOPTOUT] = "important notices cannot be opted out of",
	[PV_EDIRPERM] = "data directory is writable by group or others "
	    "(chmod 700 it)",
	[PV_ENOTDIR] = "data directory is not a directory",
};

const char *
pv_strerror(pv_status rc)
{
	if ((unsigned)rc >= PV__COUNT || status_str[rc] == NULL)
		return "unknown error";
	return status_str[rc];
}

/* Bounded buffers. */

void
pv_buf_init(struct pv_buf *b, size_t max)
{
	b->p = NULL;
	b->len = b->cap = 0;
	/* Clamped so that len + add + 1 and the doubling never wrap. */
	b->max = max > SIZE_MAX / 4 ? SIZE_MAX / 4 : max;
}

void
pv_buf_cleanup(struct pv_buf *b)
{
	if (b->p != NULL)
		pv_cleanse(b->p, b->cap);
	free(b->p);
	pv_buf_init(b, b->max);
}

pv_status
pv_buf_add(struct pv_buf *b, const void *p, size_t len)
{
	size_t need;
	char *np;

	if (len > b->max || b->len > b->max - len)
		return PV_ETOOBIG;
	need = b->len + len + 1;
	if (need > b->cap) {
		size_t ncap = b->cap ? b->cap : 64;

		while (ncap < need)
			ncap *= 2;
		if (ncap > b->max + 1)
			ncap = b->max + 1;
		/* Not realloc: the old block is wiped before it is freed. */
		if ((np = malloc(ncap)) == NULL)
			return PV_ENOMEM;
		if (b->p != NULL) {
			memcpy(np, b->p, b->len);
			pv_cleanse(b->p, b->cap);
			free(b->p);
		}
		b->p = np;
		b->cap = ncap;
	}
	if (len > 0)
		memcpy(b->p + b->len, p, len);
	b->len += len;
	b->p[b->len] = '\0';
	return PV_OK;
}

pv_status
pv_buf_printf(struct pv_buf *b, const char *fmt, ...)
{
	char small[256], *big = NULL;
	va_list ap;
	pv_status rc;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return PV_EINVAL;
	/* Both copies are wiped: what is formatted may be personal. */
	if ((size_t)n < sizeof(small)) {
		rc = pv_buf_add(b, small, (size_t)n);
		pv_cleanse(small, sizeof(small));
		return rc;
	}
	pv_cleanse(small, sizeof(small));
	if ((big = malloc((size_t)n + 1)) == NULL)
		return PV_ENOMEM;
	va_start(ap, fmt);
	(void)vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rc = pv_buf_add(b, big, (size_t)n);
	pv_cleanse(big, (size_t)n + 1);
	free(big);
	return rc;
}

/*
 * Base64 without look-up tables or data-dependent branches, after
 * wireguard-tools encoding.c.  url selects the "-_" alphabet.
 */
static void
b64_encode3(char dst[static 4], const uint8_t src[static 3], int url)
{
	const int in[4] = {
		(src[0] >> 2) & 63,
		((src[0] << 4) | (src[1] >> 4)) & 63,
		((src[1] << 2) | (src[2] >> 6)) & 63,
		src[2] & 63,
	};

	for (int i = 0; i < 4; i++)
		dst[i] = (char)(in[i] + 'A' +
		    (((25 - in[i]) >> 8) & 6) -
		    (((51 - in[i]) >> 8) & 75) -
		    (((61 - in[i]) >> 8) & (url ? 13 : 15)) +
		    (((62 - in[i]) >> 8) & (url ? 49 : 3)));
}

/* Decodes four characters; the result is negative if any was invalid. */
static int
b64_decode4(const char src[static 4], int url)
{
	const int c62 = url ? '-' : '+', c63 = url ? '_' : '/';
	int val = 0;

	for (int i = 0; i < 4; i++) {
		int c = (unsigned char)src[i];

		val |= (-1 +
		    (((('A' - 1) - c) & (c - ('Z' + 1))) >> 8 & (c - 64)) +
		    (((('a' - 1) - c) & (c - ('z' + 1))) >> 8 & (c - 70)) +
		    (((('0' - 1) - c) & (c - ('9' + 1))) >> 8 & (c + 5)) +
		    ((((c62 - 1) - c) & (c - (c62 + 1))) >> 8 & 63) +
		    ((((c63 - 1) - c) & (c - (c63 + 1))) >> 8 & 64))
		    * (1 << (18 - 6 * i));
	}
	return val;
}

void
pv_b64url_encode16(char out[static PV_B64URL16_LEN + 1],
    const uint8_t in[static 16])
{
	char last[4];
	int i;

	for (i = 0; i < 5; i++)
		b64_encode3(out + i * 4, in + i * 3, 1);
	b64_encode3(last, (const uint8_t[3]){ in[15], 0, 0 }, 1);
	out[20] = last[0];
	out[21] = last[1];
	out[22] = '\0';
}

pv_status
pv_b64url_decode16(uint8_t out[static 16], const char *in, size_t inlen)
{
	uint8_t tmp[16];
	unsigned bad = 0;
	int val, i;

	if (inlen != PV_B64URL16_LEN)
		return PV_ETOKEN;
	for (i = 0; i < 5; i++) {
		val = b64_decode4(in + i * 4, 1);
		bad |= (unsigned)val >> 31;
		tmp[i * 3] = (uint8_t)(val >> 16);
		tmp[i * 3 + 1] = (uint8_t)(val >> 8);
		tmp[i * 3 + 2] = (uint8_t)val;
	}
	val = b64_decode4((const char[4]){ in[20], in[21], 'A', 'A' }, 1);
	/* Invalid, or non-canonical: the four unused bits must be zero. */
	bad |= ((unsigned)val >> 31) | ((unsigned)val & 0xffff);
	tmp[15] = (uint8_t)(val >> 16);
	/* The 16 bytes may be half an API secret: wipe them on every path. */
	pv_cleanse(&val, sizeof(val));
	if (bad == 0)
		memcpy(out, tmp, sizeof(tmp));
	pv_cleanse(tmp, sizeof(tmp));
	return bad == 0 ? PV_OK : PV_ETOKEN;
}

void
pv_key_to_base64(char out[static PV_KEY_B64_LEN + 1],
    const uint8_t key[static PV_KEY_LEN])
{
	int i;

	for (i = 0; i < PV_KEY_LEN / 3; i++)
		b64_encode3(out + i * 4, key + i * 3, 0);
	b64_encode3(out + i * 4, (const uint8_t[3]){ key[30], key[31], 0 }, 0);
	out[PV_KEY_B64_LEN - 1] = '=';
	out[PV_KEY_B64_LEN] = '\0';
}

pv_status
pv_key_from_base64(uint8_t key[static PV_KEY_LEN], const char *in,
    size_t inlen)
{
	volatile unsigned bad = 0;
	uint8_t tmp[PV_KEY_LEN];
	int val, i;

	if (inlen != PV_KEY_B64_LEN || in[PV_KEY_B64_LEN - 1] != '=')
		return PV_EKEYFORMAT;
	for (i = 0; i < PV_KEY_LEN / 3; i++) {
		val = b64_decode4(in + i * 4, 0);
		bad |= (unsigned)val >> 31;
		tmp[i * 3] = (uint8_t)(val >> 16);
		tmp[i * 3 + 1] = (uint8_t)(val >> 8);
		tmp[i * 3 + 2] = (uint8_t)val;
	}
	val = b64_decode4((const char[4]){ in[i * 4], in[i * 4 + 1],
	    in[i * 4 + 2], 'A' }, 0);
	bad |= ((unsigned)val >> 31) | ((unsigned)val & 0xff);
	tmp[30] = (uint8_t)(val >> 16);
	tmp[31] = (uint8_t)(val >> 8);
	pv_cleanse(&val, sizeof(val));
	if (bad != 0) {
		pv_cleanse(tmp, sizeof(tmp));
		return PV_EKEYFORMAT;
	}
	memcpy(key, tmp, sizeof(tmp));
	pv_cleanse(tmp, sizeof(tmp));
	return PV_OK;
}

void
pv_hex_encode(char *out, const uint8_t *in, size_t len)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * len] = '\0';
}

/* Validation. */

int
pv_field_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > PV_FIELD_NAME_MAX)
		return 0;
	if (name[0] < 'a' || name[0] > 'z')
		return 0;
	for (size_t i = 1; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_'))
			return 0;
	}
	return 1;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, surrogates or NUL. */
int
pv_utf8_valid(const void *p, size_t len)
{
	const uint8_t *s = p, *end = s + len;

	while (s < end) {
		uint8_t c = *s;
		size_t n;
		uint32_t cp, min;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			s++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else
			return 0;
		if ((size_t)(end - s) <= n)
			return 0;
		for (size_t i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += n + 1;
	}
	return 1;
}

/* Logging. */

static enum pv_log_level log_level = PV_LOG_INFO;

void
pv_log_set_level(enum pv_log_level lvl)
{
	log_level = lvl;
}

void
pv_log(enum pv_log_level lvl, const char *fmt, ...)
{
	static const char *const name[] = { "error", "warn", "info", "debug" };
	char msg[512];
	va_list ap;

	if (lvl > log_level)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One write per line, so lines from threads do not interleave. */
	(void)fprintf(stderr, "piivault: %s: %s\n", name[lvl], msg);
}

/* Clock. */

static uint64_t pinned_now;

uint64_t
pv_mono_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
pv_now(void)
{
	if (pinned_now != 0)
		return pinned_now;
	return (uint64_t)time(NULL);
}

void
pv_clock_set(uint64_t t)
{
	pinned_now = t;
}
