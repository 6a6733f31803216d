/* SPDX-License-Identifier: Apache-2.0 */
/*
 * logscan.c: the log check of a whole test run.  The suites that run the
 * binary note what the logs must never hold (srvutil.h: su_note_secret)
 * in DIR/values.* and copy every log they made to DIR/log.*; this
 * searches every log for every string noted, as it is and as a JSON
 * string holds it, and fails naming the log, the line and the string.
 *
 * Usage: logscan DIR.  Exit 0 clean, 1 a string found (or nothing to
 * search: a check that saw nothing proves nothing), 2 an error.
 *
 * Each string's first SU_NOTE_MIN bytes go to a hash table, so a log is
 * read once whatever the number of strings.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srvutil.h"	/* SU_NOTE_MIN */

struct needle {
	char		*p;
	size_t		 len;
	struct needle	*next;		/* same prefix hash */
};

#define TABLE_BITS	20
static struct needle *table[1u << TABLE_BITS];
static size_t nneedles;

static void *
xmalloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL) {
		(void)fprintf(stderr, "logscan: out of memory\n");
		exit(2);
	}
	return p;
}

static uint32_t
prefix_hash(const unsigned char *p)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < SU_NOTE_MIN; i++)
		h = (h ^ p[i]) * 16777619u;
	return h >> (32 - TABLE_BITS);
}

static void
add(const char *p, size_t len)
{
	uint32_t h = prefix_hash((const unsigned char *)p);
	struct needle *n;

	for (n = table[h]; n != NULL; n = n->next)
		if (n->len == len && memcmp(n->p, p, len) == 0)
			return;
	n = xmalloc(sizeof(*n));
	n->p = xmalloc(len);
	memcpy(n->p, p, len);
	n->len = len;
	n->next = table[h];
	table[h] = n;
	nneedles++;
}

/* s as it is, and as the inside of a JSON string (if that differs). */
static void
add_both(const char *s, size_t len)
{
	char *e = xmalloc(6 * len + 1);
	size_t m = 0;

	add(s, len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			e[m++] = '\\';
			e[m++] = (char)c;
		} else if (c < 0x20) {
			m += (size_t)snprintf(e + m, 7, "\\u%04x", c);
		} else
			e[m++] = (char)c;
	}
	if (m != len || memcmp(e, s, len) != 0)
		add(e, m);
	free(e);
}

static int
unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (f == NULL) {
		(void)fprintf(stderr, "logscan: %s: %s\n", path,
		    strerror(errno));
		exit(2);
	}
	do {
		if (cap - n < 65536) {
			char *nb;

			cap = cap ? 2 * cap : 65536;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				(void)fprintf(stderr, "logscan: out of "
				    "memory\n");
				exit(2);
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	if (ferror(f) || fclose(f) != 0) {
		(void)fprintf(stderr, "logscan: %s: read error\n", path);
		exit(2);
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void
load_values(const char *path)
{
	size_t len, i = 0;
	char *s = slurp(path, &len), *line = xmalloc(len / 2 + 1);

	while (i < len) {
		size_t m = 0;

		for (; i + 1 < len && s[i] != '\n'; i += 2) {
			int a = unhex(s[i]), b = unhex(s[i + 1]);

			if (a < 0 || b < 0) {
				(void)fprintf(stderr, "logscan: %s: not hex\n",
				    path);
				exit(2);
			}
			line[m++] = (char)(a << 4 | b);
		}
		if (i < len && s[i] == '\n')
			i++;
		if (m >= SU_NOTE_MIN)
			add_both(line, m);
	}
	free(line);
	free(s);
}

/* Search one log: the number of strings found in it. */
static size_t
scan(const char *path, size_t *bytes)
{
	size_t len, found = 0, lineno = 1;
	char *s = slurp(path, &len);

	*bytes += len;
	for (size_t i = 0; i + SU_NOTE_MIN <= len; i++) {
		if (s[i] == '\n')
			lineno++;
		for (const struct needle *n = table[prefix_hash(
		    (const unsigned char *)s + i)]; n != NULL; n = n->next)
			if (n->len <= len - i && memcmp(s + i, n->p, n->len) ==
			    0) {
				(void)printf("logscan: %s line %zu holds a "
				    "string a test stored or was given: "
				    "[%.*s]\n", path, lineno, (int)n->len,
				    n->p);
				found++;
			}
	}
	free(s);
	return found;
}

int
main(int argc, char **argv)
{
	char path[4096];
	size_t logs = 0, found = 0, bytes = 0, values = 0;
	struct dirent *d;
	DIR *dp;

	if (argc != 2) {
		(void)fprintf(stderr, "usage: logscan DIR\n");
		return 2;
	}
	for (int pass = 0; pass < 2; pass++) {
		if ((dp = opendir(argv[1])) == NULL) {
			(void)fprintf(stderr, "logscan: %s: %s\n", argv[1],
			    strerror(errno));
			return 2;
		}
		while ((d = readdir(dp)) != NULL) {
			int is_values = strncmp(d->d_name, "values.", 7) == 0;
			int is_log = strncmp(d->d_name, "log.", 4) == 0;

			if ((pass == 0 && !is_values) || (pass == 1 && !is_log))
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", argv[1],
			    d->d_name) >= (int)sizeof(path)) {
				(void)fprintf(stderr, "logscan: path too "
				    "long\n");
				return 2;
			}
			if (pass == 0) {
				load_values(path);
				values++;
			} else {
				found += scan(path, &bytes);
				logs++;
			}
		}
		(void)closedir(dp);
	}
	(void)printf("logscan: %zu strings from %zu lists, %zu logs "
	    "(%zu bytes): %zu found\n", nneedles, values, logs, bytes, found);
	if (nneedles == 0 || logs == 0) {
		(void)printf("logscan: nothing to search: no suite noted or "
		    "collected anything\n");
		return 1;
	}
	return found == 0 ? 0 : 1;
}
