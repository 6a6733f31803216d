/*
 * testutil.h: helpers shared by the check suites.  White-box: tests may
 * include private headers and the storage layer.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <limits.h>
#include <stddef.h>

#include <check.h>

/* Make a fresh directory under $TMPDIR (or /tmp); aborts the test on error. */
void	tu_tmpdir(char out[PATH_MAX]);
/* Remove a directory tree; missing is fine. */
void	tu_rmrf(const char *path);
/* 1 if any regular file under dir contains needle. */
int	tu_dir_contains(const char *dir, const void *needle, size_t len);
/* Hex string to bytes; returns the byte count. */
size_t	tu_unhex(unsigned char *out, size_t cap, const char *hex);
/* Run a suite with its tests; returns the process exit status. */
int	tu_run(Suite *s);

#endif /* TESTUTIL_H */
