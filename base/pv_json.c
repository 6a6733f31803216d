/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_json.c: the JSON writer (pv.h).  Small on purpose: it only has to
 * produce what piivault sends, and every string goes through one escaper.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pv.h"

void
pv_json_init(struct pv_json *j, struct pv_buf *b)
{
	memset(j, 0, sizeof(*j));
	j->b = b;
}

static void
fail(struct pv_json *j, pv_status rc)
{
	if (j->rc == PV_OK)
		j->rc = rc;
}

static void
add(struct pv_json *j, const char *s, size_t len)
{
	if (j->rc == PV_OK)
		j->rc = pv_buf_add(j->b, s, len);
}

/* Before any value or key: the comma that separates it from the last. */
static void
item(struct pv_json *j)
{
	if (j->key) {		/* a member's value follows its key */
		j->key = 0;
		return;
	}
	if (j->depth > 0) {
		if (j->n[j->depth - 1] != 0)
			add(j, ",", 1);
		j->n[j->depth - 1] = 1;
	}
}

static void
open_level(struct pv_json *j, const char *open, char close)
{
	item(j);
	if (j->depth == PV_JSON_DEPTH) {
		fail(j, PV_ETOOBIG);
		return;
	}
	add(j, open, 1);
	j->n[j->depth] = 0;
	j->close[j->depth++] = close;
}

void
pv_json_obj(struct pv_json *j)
{
	open_level(j, "{", '}');
}

void
pv_json_arr(struct pv_json *j)
{
	open_level(j, "[", ']');
}

void
pv_json_close(struct pv_json *j)
{
	if (j->depth == 0 || j->key) {
		fail(j, PV_EINVAL);
		return;
	}
	j->depth--;
	add(j, &j->close[j->depth], 1);
}

void
pv_json_keyn(struct pv_json *j, const char *k, size_t len)
{
	if (j->depth == 0 || j->close[j->depth - 1] != '}' || j->key) {
		fail(j, PV_EINVAL);
		return;
	}
	item(j);
	if (j->rc == PV_OK)
		j->rc = pv_json_quote(j->b, k, len);
	add(j, ":", 1);
	j->key = 1;
}

void
pv_json_key(struct pv_json *j, const char *k)
{
	pv_json_keyn(j, k, strlen(k));
}

void
pv_json_strn(struct pv_json *j, const char *s, size_t len)
{
	item(j);
	if (j->rc == PV_OK)
		j->rc = pv_json_quote(j->b, s, len);
}

void
pv_json_str(struct pv_json *j, const char *s)
{
	pv_json_strn(j, s, strlen(s));
}

void
pv_json_str_or_null(struct pv_json *j, const char *s)
{
	if (s == NULL)
		pv_json_null(j);
	else
		pv_json_str(j, s);
}

void
pv_json_u64(struct pv_json *j, uint64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRIu64, v);

	item(j);
	add(j, num, (size_t)n);
}

void
pv_json_i64(struct pv_json *j, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRId64, v);

	item(j);
	add(j, num, (size_t)n);
}

void
pv_json_dbl(struct pv_json *j, double v)
{
	char num[32];
	int n;

	if (!isfinite(v)) {		/* JSON has no NaN or infinity */
		fail(j, PV_EINVAL);
		return;
	}
	n = snprintf(num, sizeof(num), "%.17g", v);
	item(j);
	add(j, num, (size_t)n);
}

void
pv_json_bool(struct pv_json *j, int v)
{
	item(j);
	add(j, v ? "true" : "false", v ? 4 : 5);
}

void
pv_json_null(struct pv_json *j)
{
	item(j);
	add(j, "null", 4);
}

void
pv_json_raw(struct pv_json *j, const char *s, size_t len)
{
	item(j);
	add(j, s, len);
}

void
pv_json_kstr(struct pv_json *j, const char *k, const char *s)
{
	pv_json_key(j, k);
	pv_json_str(j, s);
}

void
pv_json_ku64(struct pv_json *j, const char *k, uint64_t v)
{
	pv_json_key(j, k);
	pv_json_u64(j, v);
}

void
pv_json_kbool(struct pv_json *j, const char *k, int v)
{
	pv_json_key(j, k);
	pv_json_bool(j, v);
}

pv_status
pv_json_end(const struct pv_json *j)
{
	if (j->rc != PV_OK)
		return j->rc;
	return j->depth == 0 && !j->key ? PV_OK : PV_EINVAL;
}

pv_status
pv_json_quote(struct pv_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;
	pv_status rc;

	if ((rc = pv_buf_add(b, "\"", 1)) != PV_OK)
		return rc;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
			continue;
		if ((rc = pv_buf_add(b, s + run, i - run)) != PV_OK)
			return rc;
		run = i + 1;
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		if ((rc = pv_buf_add(b, esc, elen)) != PV_OK)
			return rc;
	}
	if ((rc = pv_buf_add(b, s + run, len - run)) != PV_OK)
		return rc;
	return pv_buf_add(b, "\"", 1);
}
