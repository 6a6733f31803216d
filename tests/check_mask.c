/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_mask.c: vault_mask, the masked form a masked or research key sees,
 * as a property over every length from 1 to 64 and every UTF-8 width:
 * it reveals at most a quarter of a value's characters (rounded down) and
 * nothing of a value of 4 characters or fewer, per part for an email; a
 * phone shows its last 2 digits from 8 digits on and nothing before; the
 * output is UTF-8 and never longer than VAULT_MASKED_MAX.
 *
 * "Revealed" is counted as the lead (UTF-8) characters of the output other
 * than the '*' runs and the '@' separator; the values built here hold
 * neither, so the count is exact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pv.h"
#include "testutil.h"
#include "vault.h"

#define LEN_MAX		64
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* One character of each UTF-8 width, none of them '*' or '@'. */
static const char *const widths[] = {
	"k",			/* 1 byte */
	"\xc3\xa9",		/* 2: e acute */
	"\xe2\x82\xac",		/* 3: euro sign */
	"\xf0\x9f\x98\x80",	/* 4: an emoji */
};

/* The characters of s (UTF-8). */
static size_t
chars(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

/*
 * n characters into buf, cycling through the widths from w (w < 4), or
 * all of width w % 4 when mixed is 0; returns the bytes written.
 */
static size_t
build(char *buf, size_t n, size_t w, int mixed)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		const char *c = widths[mixed ? (w + i) % 4 : w % 4];

		memcpy(buf + len, c, strlen(c));
		len += strlen(c);
	}
	buf[len] = '\0';
	return len;
}

/*
 * The shape of one part of a mask: out[0..len) must be a prefix of
 * value's characters then "***"; returns how many characters it shows.
 */
static size_t
part_shown(const char *out, size_t len, const char *value, size_t vlen)
{
	ck_assert_msg(len >= 3 && memcmp(out + len - 3, "***", 3) == 0,
	    "mask part [%.*s] does not end in ***", (int)len, out);
	ck_assert_msg(len - 3 <= vlen && memcmp(out, value, len - 3) == 0,
	    "mask part [%.*s] is not a prefix of the value", (int)len, out);
	return chars(out, len - 3);
}

static size_t
allowed(size_t n)
{
	return n <= 4 ? 0 : n / 4;
}

static void
check_common(const char *out)
{
	size_t len = strlen(out);

	ck_assert_uint_le(len, VAULT_MASKED_MAX);
	ck_assert_msg(pv_utf8_valid(out, len), "mask is not UTF-8");
}

/* Every length and width, for a field with no rule of its own. */
START_TEST(test_plain_lengths)
{
	char value[LEN_MAX * 4 + 1], out[VAULT_MASKED_MAX + 1];

	for (size_t n = 1; n <= LEN_MAX; n++) {
		for (size_t w = 0; w < 8; w++) {
			size_t len = build(value, n, w % 4, w >= 4), shown;

			vault_mask(out, "name", 4, value, len);
			check_common(out);
			shown = part_shown(out, strlen(out), value, len);
			ck_assert_msg(shown <= n / 4 && shown ==
			    allowed(n), "%zu characters (width %zu%s): shows "
			    "%zu", n, w % 4 + 1, w >= 4 ? ", mixed" : "",
			    shown);
			/* White space around it changes nothing. */
			{
				char padded[sizeof(value) + 8], again[
				    VAULT_MASKED_MAX + 1];

				memcpy(padded, " \t", 2);
				memcpy(padded + 2, value, len);
				memcpy(padded + 2 + len, "\r\n ", 3);
				vault_mask(again, "city", 4, padded, len + 5);
				ck_assert_str_eq(again, out);
			}
		}
	}
}
END_TEST

/* The issue's examples, and the rule's own. */
START_TEST(test_examples)
{
	static const struct {
		const char	*field, *value, *want;
	} ex[] = {
		{ "name", "F", "***" },
		{ "city", "\xc3\x89", "***" },
		{ "email", "j@x.org", "***@x***" },
		{ "phone", "5551", "***" },
		{ "name", "Ada", "***" },
		{ "name", "Adam", "***" },
		{ "name", "Adams", "A***" },
		{ "name", "Alexander", "Al***" },
		{ "name", "  Bo  ", "***" },
		{ "name", " \t ", "***" },
		{ "name", "", "***" },
		{ "email", "alexander@gmail.com", "al***@gm***" },
		{ "email", "ada.lovelace@b.example", "ada***@b.***" },
		{ "email", "@", "***@***" },
		{ "backup_email", "alexander@gmail.com", "alex***" },
		{ "phone", "+1 555 0100", "***00" },
		{ "phone", "5550 0100", "***00" },
		{ "phone", "555 0100", "***" },
		{ "phone", "+1 (555) 867-5309", "***09" },
		{ "phone", "", "***" },
		{ "name", "\xff\xfe invalid UTF-8 here", "***" },
	};
	char out[VAULT_MASKED_MAX + 1];

	for (size_t i = 0; i < NELEM(ex); i++) {
		vault_mask(out, ex[i].field, strlen(ex[i].field), ex[i].value,
		    strlen(ex[i].value));
		ck_assert_msg(strcmp(out, ex[i].want) == 0, "%s [%s]: got "
		    "[%s], want [%s]", ex[i].field, ex[i].value, out,
		    ex[i].want);
		check_common(out);
	}
}
END_TEST

/* Every pair of local-part and domain lengths, each width. */
START_TEST(test_email_lengths)
{
	char value[2 * LEN_MAX * 4 + 2], out[VAULT_MASKED_MAX + 1];
	size_t w = (size_t)_i;

	for (size_t nl = 1; nl <= LEN_MAX; nl++) {
		for (size_t nd = 1; nd <= LEN_MAX; nd++) {
			size_t ll = build(value, nl, w % 4, w >= 4), dl, sl;
			const char *at;

			value[ll] = '@';
			dl = build(value + ll + 1, nd, (w + 1) % 4, w >= 4);
			vault_mask(out, "email", 5, value, ll + 1 + dl);
			check_common(out);
			ck_assert_msg((at = strchr(out, '@')) != NULL,
			    "[%s] has no @", out);
			ck_assert_ptr_null(strchr(at + 1, '@'));
			sl = part_shown(out, (size_t)(at - out), value, ll);
			ck_assert_msg(sl <= nl / 4 && sl == allowed(nl),
			    "local part of %zu: shows %zu", nl, sl);
			sl = part_shown(at + 1, strlen(at + 1), value + ll + 1,
			    dl);
			ck_assert_msg(sl <= nd / 4 && sl == allowed(nd),
			    "domain of %zu: shows %zu", nd, sl);
		}
	}
}
END_TEST

/* Phones of 1 to 64 digits, with and without separators. */
START_TEST(test_phone_lengths)
{
	char value[3 * LEN_MAX + 2], out[VAULT_MASKED_MAX + 1], want[8];

	for (size_t n = 1; n <= LEN_MAX; n++) {
		for (int sep = 0; sep < 2; sep++) {
			size_t len = 0;

			if (sep)
				value[len++] = '+';
			for (size_t i = 0; i < n; i++) {
				value[len++] = (char)('0' + (i * 7 + 3) % 10);
				if (sep && i % 3 == 2)
					value[len++] = ' ';
			}
			vault_mask(out, "phone", 5, value, len);
			check_common(out);
			if (n < 8)
				ck_assert_str_eq(out, "***");
			else {
				size_t d1 = ((n - 2) * 7 + 3) % 10;
				size_t d2 = ((n - 1) * 7 + 3) % 10;

				(void)snprintf(want, sizeof(want), "***%zu%zu",
				    d1, d2);
				ck_assert_str_eq(out, want);
				ck_assert_uint_le(2, n / 4);
			}
		}
	}
}
END_TEST

/* The longest values: cut at a character boundary, within the bound. */
START_TEST(test_long_values)
{
	char value[PV_VALUE_MAX + 1], out[VAULT_MASKED_MAX + 1];

	for (size_t w = 0; w < 8; w++) {
		size_t n = PV_VALUE_MAX / (w % 4 + 1), len, shown;

		if (w >= 4)
			n = PV_VALUE_MAX / 4;	/* mixed: 10 bytes per 4 */
		len = build(value, n, w % 4, w >= 4);
		ck_assert_uint_le(len, PV_VALUE_MAX);
		vault_mask(out, "name", 4, value, len);
		check_common(out);
		shown = part_shown(out, strlen(out), value, len);
		ck_assert_uint_le(shown, n / 4);
		ck_assert_uint_gt(shown, 0);
		/* As much as fits: the next character would not. */
		ck_assert_uint_gt(strlen(out) - 3 + 4, VAULT_MASKED_MAX - 3);

		/* An email of two long parts. */
		{
			size_t half = (n - 1) / 2;

			len = build(value, half, w % 4, w >= 4);
			value[len++] = '@';
			len += build(value + len, half, w % 4, w >= 4);
			ck_assert_uint_le(len, PV_VALUE_MAX);
			vault_mask(out, "email", 5, value, len);
			check_common(out);
			ck_assert_ptr_nonnull(strchr(out, '@'));
			ck_assert_uint_gt(strlen(out), 2 * 3 + 1 + 2 * 100);
		}
	}
}
END_TEST

static Suite *
mask_suite(void)
{
	Suite *s = suite_create("mask");
	TCase *tc = tcase_create("mask");

	tcase_add_test(tc, test_examples);
	tcase_add_test(tc, test_plain_lengths);
	tcase_add_loop_test(tc, test_email_lengths, 0, 8);
	tcase_add_test(tc, test_phone_lengths);
	tcase_add_test(tc, test_long_values);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run(mask_suite());
}
