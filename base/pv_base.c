/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_base.c: status strings, bounded buffers, encodings, validation,
 * logging and the clock.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

#define LOG_LINE_MAX	8192	/* a line with every field */
#define LOG_STR_MAX	1024	/* a message or a field's value */

static enum pv_log_level log_level = PV_LOG_INFO;
static enum pv_log_format log_format = PV_LOG_TEXT;
static const char *const level_name[] = { "error", "warn", "info", "debug" };

void
pv_log_set_level(enum pv_log_level lvl)
{
	log_level = lvl;
}

void
pv_log_set_format(enum pv_log_format fmt)
{
	log_format = fmt;
}

int
pv_log_on(enum pv_log_level lvl)
{
	return lvl <= log_level;
}

pv_status
pv_log_level_parse(const char *s, enum pv_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_name) / sizeof(level_name[0]);
	    i++)
		if (strcmp(s, level_name[i]) == 0) {
			*out = (enum pv_log_level)i;
			return PV_OK;
		}
	return PV_EUSAGE;
}

pv_status
pv_log_format_parse(const char *s, enum pv_log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = PV_LOG_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = PV_LOG_JSON;
	else
		return PV_EUSAGE;
	return PV_OK;
}

int
pv_log_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (e == NULL || *e < '0' || *e > '9')
		return 0;
	errno = 0;
	dev = strtoull(e, &end, 10);
	if (*end != ':' || end[1] < '0' || end[1] > '9')
		return 0;
	ino = strtoull(end + 1, &end, 10);
	if (errno != 0 || *end != '\0' || fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

/*
 * s as a log may hold it, into out: cut to LOG_STR_MAX bytes at a
 * character's start, and if it is not UTF-8 (a path, say), every byte
 * over 0x7f as '?', so that a JSON line always parses.  In text, control
 * characters become '?' too (JSON escapes them).
 */
static void
log_clean(char out[static LOG_STR_MAX + 1], const char *s, int text)
{
	size_t n = strnlen(s, LOG_STR_MAX);

	if (s[n] != '\0')
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	memcpy(out, s, n);
	out[n] = '\0';
	if (!pv_utf8_valid(out, n))
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)out[i] > 0x7f)
				out[i] = '?';
	if (text)
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
				out[i] = '?';
}

/* A text value: bare, or quoted when it has what would split it. */
static pv_status
text_value(struct pv_buf *b, const char *s)
{
	pv_status rc;

	if (*s != '\0' && strpbrk(s, " \"=\\") == NULL)
		return pv_buf_add(b, s, strlen(s));
	if ((rc = pv_buf_add(b, "\"", 1)) != PV_OK)
		return rc;
	for (; *s != '\0' && rc == PV_OK; s++)
		if (*s == '"' || *s == '\\')
			rc = pv_buf_printf(b, "\\%c", *s);
		else
			rc = pv_buf_add(b, s, 1);
	return rc == PV_OK ? pv_buf_add(b, "\"", 1) : rc;
}

static void
log_write(const char *p, size_t len)
{
	ssize_t w;

	while (len > 0) {
		if ((w = write(STDERR_FILENO, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			return;		/* nowhere left to say so */
		}
		p += w;
		len -= (size_t)w;
	}
}

static pv_status
log_format_line(struct pv_buf *b, enum pv_log_level lvl, const char *ts,
    const char *msg, const struct pv_log_field *f, size_t n)
{
	char v[LOG_STR_MAX + 1], num[32];
	struct pv_json j;
	pv_status rc;

	if (log_format == PV_LOG_JSON) {
		pv_json_init(&j, b);
		pv_json_obj(&j);
		pv_json_kstr(&j, "ts", ts);
		pv_json_kstr(&j, "level", level_name[lvl]);
		log_clean(v, msg, 0);
		pv_json_kstr(&j, "msg", v);
	} else {
		log_clean(v, msg, 1);
		if ((rc = pv_buf_printf(b, "%s %s %s", ts, level_name[lvl],
		    v)) != PV_OK)
			return rc;
	}
	for (size_t i = 0; i < n; i++) {
		if (f[i].type == PV_LF_STR)
			log_clean(v, f[i].s != NULL ? f[i].s : "-",
			    log_format == PV_LOG_TEXT);
		else if (f[i].type == PV_LF_U64)
			(void)snprintf(num, sizeof(num), "%llu",
			    (unsigned long long)f[i].u);
		else
			(void)snprintf(num, sizeof(num), "%llu.%03llu",
			    (unsigned long long)(f[i].u / 1000),
			    (unsigned long long)(f[i].u % 1000));
		if (log_format == PV_LOG_JSON) {
			pv_json_key(&j, f[i].key);
			if (f[i].type == PV_LF_STR)
				pv_json_str(&j, v);
			else
				pv_json_raw(&j, num, strlen(num));
			continue;
		}
		if ((rc = pv_buf_printf(b, " %s=", f[i].key)) != PV_OK ||
		    (rc = f[i].type == PV_LF_STR ? text_value(b, v) :
		    pv_buf_add(b, num, strlen(num))) != PV_OK)
			return rc;
	}
	if (log_format == PV_LOG_JSON) {
		pv_json_close(&j);
		if ((rc = pv_json_end(&j)) != PV_OK)
			return rc;
	}
	return pv_buf_add(b, "\n", 1);
}

void
pv_log_event(enum pv_log_level lvl, const char *msg,
    const struct pv_log_field *f, size_t n)
{
	struct timespec now;
	struct tm tm;
	struct pv_buf b;
	char ts[96], line[192];
	int len;

	if ((unsigned)lvl > (unsigned)PV_LOG_DEBUG || lvl > log_level)
		return;
	if (clock_gettime(CLOCK_REALTIME, &now) != 0 ||
	    gmtime_r(&now.tv_sec, &tm) == NULL) {
		memset(&tm, 0, sizeof(tm));	/* the epoch: never expected */
		tm.tm_year = 70;
		tm.tm_mday = 1;
		now.tv_nsec = 0;
	}
	(void)snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(now.tv_nsec / 1000000));
	pv_buf_init(&b, LOG_LINE_MAX);
	if (log_format_line(&b, lvl, ts, msg, f, n) == PV_OK) {
		/* One write per line: lines from threads never interleave. */
		log_write(b.p, b.len);
		pv_buf_cleanup(&b);
		return;
	}
	pv_buf_cleanup(&b);
	/* Out of memory or over the line's limit: say that much. */
	len = snprintf(line, sizeof(line), log_format == PV_LOG_JSON ?
	    "{\"ts\":\"%s\",\"level\":\"error\",\"msg\":\"log event "
	    "dropped\"}\n" : "%s error log event dropped\n", ts);
	if (len > 0 && (size_t)len < sizeof(line))
		log_write(line, (size_t)len);
}

void
pv_log(enum pv_log_level lvl, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (lvl > log_level)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pv_log_event(lvl, msg, NULL, 0);
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
