/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testutil.c: helpers shared by the check suites.
 */
#include <sys/stat.h>

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pv.h"
#include "vault.h"
#include "testutil.h"

static char lastdir[PATH_MAX];	/* what tu_tmpdir made last */

void
tu_tmpdir(char out[PATH_MAX])
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || *base == '\0')
		base = "/tmp";
	ck_assert_int_lt(snprintf(out, PATH_MAX, "%s/pvtest.XXXXXX", base),
	    PATH_MAX);
	ck_assert_ptr_nonnull(mkdtemp(out));
	memcpy(lastdir, out, sizeof(lastdir));
}

void
tu_vault_setup(char dir[PATH_MAX], char keyfile[PATH_MAX + 16],
    char datadir[PATH_MAX + 16], struct vault_opts *opts)
{
	tu_tmpdir(dir);
	(void)snprintf(keyfile, PATH_MAX + 16, "%s/root.key", dir);
	(void)snprintf(datadir, PATH_MAX + 16, "%s/data", dir);
	if (opts == NULL)
		return;
	memset(opts, 0, sizeof(*opts));
	opts->data_dir = datadir;
	opts->unlock.key_file = keyfile;
	ck_assert_int_eq(vault_key_file_create(keyfile), PV_OK);
}

void
tu_teardown(void)
{
	pv_clock_set(0);
	if (lastdir[0] != '\0')
		tu_rmrf(lastdir);
	lastdir[0] = '\0';
}

void
tu_expect_value(struct vault *v, const char *tok, const char *field,
    const char *value, size_t len)
{
	struct vault_value *val = NULL;
	pv_status rc;

	rc = vault_get(v, tok, strlen(tok), &val);
	ck_assert_msg(rc == PV_OK, "token %s: %s", tok, pv_strerror(rc));
	ck_assert_str_eq(val->field, field);
	ck_assert_uint_eq(val->len, len);
	ck_assert_mem_eq(val->value, value, len);
	vault_value_free(val);
}

pv_status
tu_get_status(struct vault *v, const char *tok)
{
	struct vault_value *val = NULL;
	pv_status rc;

	rc = vault_get(v, tok, strlen(tok), &val);
	if (rc == PV_OK)
		vault_value_free(val);
	else
		ck_assert_ptr_null(val);
	return rc;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
tu_rmrf(const char *path)
{
	(void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const void *search_needle;
static size_t search_len;
static int search_found;

static int
search_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	FILE *f;
	char *buf;
	size_t n;

	(void)ftw;
	if (flag != FTW_F || !S_ISREG(st->st_mode) || st->st_size == 0)
		return 0;
	ck_assert_ptr_nonnull(f = fopen(path, "rb"));
	ck_assert_ptr_nonnull(buf = malloc((size_t)st->st_size));
	n = fread(buf, 1, (size_t)st->st_size, f);
	(void)fclose(f);
	if (memmem(buf, n, search_needle, search_len) != NULL)
		search_found = 1;
	free(buf);
	return 0;
}

int
tu_dir_contains(const char *dir, const void *needle, size_t len)
{
	search_needle = needle;
	search_len = len;
	search_found = 0;
	ck_assert_int_eq(nftw(dir, search_one, 16, FTW_PHYS), 0);
	return search_found;
}

size_t
tu_unhex(unsigned char *out, size_t cap, const char *hex)
{
	size_t n = strlen(hex) / 2;

	ck_assert_uint_le(n, cap);
	for (size_t i = 0; i < n; i++) {
		unsigned int b;

		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &b), 1);
		out[i] = (unsigned char)b;
	}
	return n;
}

Suite *
tu_suite_core(const char *name, void (*setup)(void), void (*teardown)(void),
    double timeout, ...)
{
	Suite *s = suite_create(name);
	TCase *tc = tcase_create("core");
	const TTest *t;
	va_list ap;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, timeout);
	va_start(ap, timeout);
	while ((t = va_arg(ap, const TTest *)) != NULL)
		tcase_add_test(tc, t);
	va_end(ap);
	suite_add_tcase(s, tc);
	return s;
}

int
tu_run(Suite *s)
{
	SRunner *sr;
	int failed;

	if (pv_init() != PV_OK) {
		fprintf(stderr, "pv_init failed\n");
		return 1;
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
