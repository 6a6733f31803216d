/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testutil.h: helpers shared by the check suites.  White-box: tests may
 * include private headers and the storage layer.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <limits.h>
#include <stddef.h>

#include <check.h>

#include "pv.h"
#include "vault.h"

/* Make a fresh directory under $TMPDIR (or /tmp); aborts the test on error. */
void	tu_tmpdir(char out[PATH_MAX]);
/*
 * A checked fixture for the suites that make a vault in-process: a fresh
 * directory (tu_tmpdir) in dir, keyfile naming root.key and datadir data
 * in it; when opts is not NULL, the key file is created and opts (zeroed)
 * points at both.  tu_teardown removes the directory the last tu_tmpdir
 * made and returns pv's clock to the system's.
 */
void	tu_vault_setup(char dir[PATH_MAX], char keyfile[PATH_MAX + 16],
	    char datadir[PATH_MAX + 16], struct vault_opts *opts);
void	tu_teardown(void);
/* tok reads back as (field, value[0..len)) from v. */
void	tu_expect_value(struct vault *v, const char *tok, const char *field,
	    const char *value, size_t len);
/* What vault_get says of tok; on failure it must hand nothing out. */
pv_status tu_get_status(struct vault *v, const char *tok);
/* Remove a directory tree; missing is fine. */
void	tu_rmrf(const char *path);
/* 1 if any regular file under dir contains needle. */
int	tu_dir_contains(const char *dir, const void *needle, size_t len);
/* Hex string to bytes; returns the byte count. */
size_t	tu_unhex(unsigned char *out, size_t cap, const char *hex);
/*
 * A suite name with one test case, "core": the checked fixture setup and
 * teardown, timeout seconds a test, and the tests listed, NULL last.
 */
Suite	*tu_suite_core(const char *name, void (*setup)(void),
	    void (*teardown)(void), double timeout, ...);
/* Run a suite with its tests; returns the process exit status. */
int	tu_run(Suite *s);

#endif /* TESTUTIL_H */
