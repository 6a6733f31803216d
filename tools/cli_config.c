/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_config.c: the configuration file that --config (or PIIVAULT_CONFIG)
 * names: who may have written it, and its syntax.  What its names mean,
 * and which of them a command takes, is cli_parse's.
 *
 * The syntax, whole:
 *   - a line is blank, a comment (its first character that is not a
 *     space or tab is '#'), or NAME = VALUE;
 *   - NAME is an option's long name without its dashes (lowercase
 *     letters, digits, '-'); spaces and tabs may surround the '=';
 *   - VALUE is either everything up to the end of the line or to a '#'
 *     that follows a space or tab (a comment), less its leading and
 *     trailing spaces and tabs; or "TEXT", which keeps its spaces and
 *     '#'s and ends at the next '"' (no escapes: TEXT has no '"');
 *   - a value is never empty; a name is set at most once;
 *   - no control character but tab, anywhere (so no CR: Unix line ends).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_int.h"

#define NAME_SHOWN_MAX	40	/* longer names are not echoed */

/* Say what is wrong with the file, or with its line (0: the file). */
static int
refuse(const struct cli_config *cf, unsigned line, const char *msg)
{
	char named[192];
	int r;

	if (line == 0 && cf->env) {
		(void)snprintf(named, sizeof(named), "%s (PIIVAULT_CONFIG "
		    "names it)", msg);
		msg = named;
	}
	cli_where(cf->path, line);
	r = cli_usage(cli_name(), msg);
	cli_where(NULL, 0);
	return r;
}

/* Who may have written the file: its owner, the caller or root, alone. */
static const char *
file_fault(const struct stat *st)
{
	if (S_ISDIR(st->st_mode))
		return "is a directory, not a configuration file";
	if (!S_ISREG(st->st_mode))
		return "is not a regular file";
	if (st->st_uid != geteuid() && st->st_uid != 0)
		return "belongs to another user (it must be yours or root's)";
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0)
		return "is writable by group or others (chmod go-w it)";
	if ((unsigned long long)st->st_size > CLI_CONFIG_MAX)
		return "is larger than 64 KiB";
	return NULL;
}

/* The whole file into cf->text, NUL-terminated; CLI_OK or the refusal. */
static int
slurp(struct cli_config *cf)
{
	char msg[160];
	const char *fault;
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd, r = CLI_OK;

	/* O_NONBLOCK: a FIFO must not hang us before fstat refuses it. */
	if ((fd = open(cf->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
		(void)snprintf(msg, sizeof(msg), errno == ENOENT ?
		    "does not exist" : "cannot be read: %s", strerror(errno));
		return refuse(cf, 0, msg);
	}
	if (fstat(fd, &st) != 0) {
		(void)snprintf(msg, sizeof(msg), "cannot be read: %s",
		    strerror(errno));
		r = refuse(cf, 0, msg);
		goto out;
	}
	if ((fault = file_fault(&st)) != NULL) {
		r = refuse(cf, 0, fault);
		goto out;
	}
	if ((cf->text = malloc(CLI_CONFIG_MAX + 1)) == NULL) {
		r = cli_fail(cli_name(), cf->path, PV_ENOMEM);
		goto out;
	}
	/* Read one byte past the limit: a file that grew is refused too. */
	while (len <= CLI_CONFIG_MAX && (n = read(fd, cf->text + len,
	    CLI_CONFIG_MAX + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			(void)snprintf(msg, sizeof(msg), "cannot be read: %s",
			    strerror(errno));
			r = refuse(cf, 0, msg);
			goto out;
		}
		len += (size_t)n;
	}
	if (len > CLI_CONFIG_MAX) {
		r = refuse(cf, 0, "is larger than 64 KiB");
		goto out;
	}
	cf->text[len] = '\0';
out:
	if (close(fd) != 0 && r == CLI_OK) {
		(void)snprintf(msg, sizeof(msg), "cannot be read: %s",
		    strerror(errno));
		r = refuse(cf, 0, msg);
	}
	return r;
}

static int
blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/*
 * One line (NUL-terminated, in the file's buffer): nothing, or a setting
 * into *s with name and value cut out in place.  CLI_OK, setting *got;
 * or the refusal.
 */
static int
parse_line(const struct cli_config *cf, unsigned line, char *p,
    struct cli_setting *s, int *got)
{
	char *name, *val, *end;

	*got = 0;
	for (const char *q = p; *q != '\0'; q++)
		if ((unsigned char)*q < 0x20 && *q != '\t')
			return refuse(cf, line, *q == '\r' ? "has a carriage "
			    "return (save the file with Unix line ends)" :
			    "has a control character");
		else if (*q == 0x7f)
			return refuse(cf, line, "has a control character");
	while (blank(*p))
		p++;
	if (*p == '\0' || *p == '#')
		return CLI_OK;
	/* A name starts with a letter, as an option's long name does. */
	name = p;
	while ((*p >= 'a' && *p <= 'z') || (p > name && ((*p >= '0' &&
	    *p <= '9') || *p == '-')))
		p++;
	end = p;
	while (blank(*p))
		p++;
	if (end == name || *p != '=')
		return refuse(cf, line, "expected NAME = VALUE (a lowercase "
		    "option name without its dashes)");
	*end = '\0';
	p++;
	while (blank(*p))
		p++;
	if (*p == '"') {
		val = ++p;
		if ((end = strchr(val, '"')) == NULL)
			return refuse(cf, line, "the value's '\"' is not "
			    "closed");
		*end = '\0';
		for (p = end + 1; blank(*p); p++)
			;
		if (*p != '\0' && *p != '#')
			return refuse(cf, line, "text after the value's "
			    "closing '\"'");
	} else {
		val = p;
		/* A '#' starts a comment only after a blank (val[-1] is
		 * one, or '='). */
		for (end = p; *end != '\0'; end++)
			if (*end == '#' && blank(end[-1]))
				break;
		while (end > val && blank(end[-1]))
			end--;
		*end = '\0';
	}
	if (*val == '\0') {
		char msg[96];

		(void)snprintf(msg, sizeof(msg), "%s has no value", name);
		return refuse(cf, line, msg);
	}
	s->name = name;
	s->value = val;
	s->line = line;
	s->path = NULL;
	*got = 1;
	return CLI_OK;
}

int
cli_config_load(const char *path, int env, int (*known)(const char *name),
    struct cli_config *cf)
{
	char *p, *nl, msg[160];
	unsigned line = 0;
	size_t lines = 1;
	int r, got;

	memset(cf, 0, sizeof(*cf));
	cf->path = path;
	cf->env = env;
	if ((r = slurp(cf)) != CLI_OK)
		goto out;
	for (p = cf->text; *p != '\0'; p++)
		lines += *p == '\n';
	if ((cf->set = calloc(lines, sizeof(*cf->set))) == NULL) {
		r = cli_fail(cli_name(), path, PV_ENOMEM);
		goto out;
	}
	for (p = cf->text; p != NULL; p = nl != NULL ? nl + 1 : NULL) {
		struct cli_setting *s = &cf->set[cf->n];

		line++;
		if ((nl = strchr(p, '\n')) != NULL)
			*nl = '\0';
		if ((r = parse_line(cf, line, p, s, &got)) != CLI_OK)
			goto out;
		if (!got)
			continue;
		cli_where(path, line);
		r = known(s->name);
		cli_where(NULL, 0);
		if (r != CLI_OK)
			goto out;
		for (size_t i = 0; i < cf->n; i++) {
			if (strcmp(cf->set[i].name, s->name) != 0)
				continue;
			(void)snprintf(msg, sizeof(msg), "%.*s is set twice "
			    "(lines %u and %u)", NAME_SHOWN_MAX, s->name,
			    cf->set[i].line, line);
			r = refuse(cf, line, msg);
			goto out;
		}
		cf->n++;
	}
	r = CLI_OK;
out:
	if (r != CLI_OK)
		cli_config_free(cf);
	return r;
}

int
cli_config_path(const struct cli_config *cf, struct cli_setting *s,
    const char **out)
{
	const char *slash = strrchr(cf->path, '/');
	size_t dir, n;

	if (s->path == NULL) {
		/* Absolute, or a file in the current directory: as it is. */
		if (s->value[0] == '/' || slash == NULL) {
			*out = s->value;
			return CLI_OK;
		}
		dir = (size_t)(slash - cf->path) + 1;
		n = strlen(s->value);
		if ((s->path = malloc(dir + n + 1)) == NULL)
			return cli_fail(cli_name(), cf->path, PV_ENOMEM);
		memcpy(s->path, cf->path, dir);
		memcpy(s->path + dir, s->value, n + 1);
	}
	*out = s->path;
	return CLI_OK;
}

void
cli_config_free(struct cli_config *cf)
{
	if (cf == NULL)
		return;
	for (size_t i = 0; i < cf->n; i++)
		free(cf->set[i].path);
	free(cf->set);
	free(cf->text);
	memset(cf, 0, sizeof(*cf));
}
