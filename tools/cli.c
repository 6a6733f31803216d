/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.c: the piivault command: the sub-command table, the options every
 * sub-command shares, and how the root key's passphrase is obtained.
 */
#include <sys/stat.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli_int.h"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

/* The table every sub-command comes from (wireguard-tools wg.c). */
static const struct cli_cmd commands[] = {
	{ "init", cmd_init, "create a vault and its root key", cli_init_opts,
	    NULL },
	{ "put", cmd_put, "store records read as JSON lines from stdin",
	    cli_opts_vault, NULL },
	{ "get", cmd_get, "print the values behind tokens", cli_opts_vault,
	    NULL },
	{ "lookup", cmd_lookup, "find records by an exact email or phone",
	    cli_opts_vault, NULL },
	{ "kms", NULL, "key management: status, rotate, rewrap, retire, "
	    "destroy, ...", NULL, cli_kms_cmds },
	{ "shred", cmd_shred, "crypto-shred records, with signed receipts",
	    cli_shred_opts, NULL },
	{ "compact", cmd_compact, "rewrite the data file with live data only",
	    cli_opts_vault, NULL },
	{ "backup", cmd_backup, "back up the vault to one signed file; "
	    "verify one", cli_backup_opts, cli_backup_cmds },
	{ "receipt", NULL, "verify shred receipts", NULL, cli_receipt_cmds },
	{ "audit", NULL, "verify, export and archive the audit log", NULL,
	    cli_audit_cmds },
	{ "retention", NULL, "shred records past their retention date", NULL,
	    cli_retention_cmds },
	{ "serve", cmd_serve, "serve the HTTP API", cli_serve_opts, NULL },
	{ "apikey", NULL, "create, list, rotate and revoke API keys", NULL,
	    cli_apikey_cmds },
	{ "version", cmd_version, "print the version of piivault and its "
	    "libraries", NULL, NULL },
	{ "help", cmd_help, "show this help", NULL, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

const struct option cli_opts_vault[] = { CLI_OPTS_VAULT, CLI_OPT_END };

static void
usage_all(FILE *f)
{
	(void)fprintf(f, "usage: piivault [--config FILE] [--data-dir DIR] "
	    "[--key-file FILE]\n"
	    "                COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
	for (size_t i = 0; commands[i].name != NULL; i++)
		(void)fprintf(f, "  %-9s %s\n", commands[i].name,
		    commands[i].help);
	(void)fprintf(f, "\nEach command takes -h or --help (or: piivault help "
	    "COMMAND [SUBCOMMAND])\nand no option it does not list there.  "
	    "Every command takes, before or\nafter its name:\n"
	    "  --data-dir DIR   vault directory (env PIIVAULT_DATA_DIR, "
	    "default " CLI_DATA_DIR_DEFAULT ")\n"
	    "  --key-file FILE  root key file (env PIIVAULT_KEY_FILE, "
	    "default " CLI_KEY_FILE_DEFAULT ")\n"
	    "  --config FILE    read settings from FILE (env PIIVAULT_CONFIG; "
	    "none by default)\n"
	    "A vault created with a passphrase reads it from "
	    "PIIVAULT_PASSPHRASE, or asks on the terminal.\n\n"
	    "The configuration file has one \"name = value\" a line, name "
	    "being a long\noption without its dashes (data-dir, key-file, and "
	    "serve's options;\ninsecure-plaintext = true or false), and '#' "
	    "comments: a line's first\ncharacter, or after a space or tab.  "
	    "\"...\" keeps a value's spaces and\n'#'s.  Relative paths in it are "
	    "relative to its directory.  It must not\nbe writable by group or "
	    "others, and be yours or root's.  A setting comes\nfrom the command "
	    "line, else the file, else the environment, else the\ndefault: "
	    "piivault serve --check-config prints them.\n");
}

/* help [COMMAND [SUBCOMMAND]]: the list, or that command's --help. */
static int
cmd_help(int argc, char **argv)
{
	char *args[4];

	if (argc == 1 || (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0))) {
		usage_all(stdout);
		return CLI_OK;
	}
	/* No option: "help --help --help" must not come back here. */
	for (int i = 1; i < argc; i++)
		if (argv[i][0] == '-')
			return cli_usage("help", "expected COMMAND [SUBCOMMAND]");
	if (argc > 3)
		return cli_usage("help", "expected COMMAND [SUBCOMMAND]");
	args[0] = (char *)"piivault";
	for (int i = 1; i < argc; i++)
		args[i] = argv[i];
	args[argc] = (char *)"--help";
	return cli_main(argc + 1, args);
}

/*
 * One line: piivault's version and those of the libraries it runs with,
 * as loaded (not as compiled against), for bug reports and inventories.
 */
static int
cmd_version(int argc, char **argv)
{
	char lmdb[32];

	if (argc > 1 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		(void)printf("usage: piivault version\n\nPrints piivault's "
		    "version and those of the libraries it runs with.\n");
		return CLI_OK;
	}
	if (argc > 1)
		return cli_usage("version", "takes no arguments");
	vault_store_version(lmdb);
	(void)printf("piivault %s (OpenSSL %s, LMDB %s, libmicrohttpd %s)\n",
	    PV_VERSION, pv_crypto_version(), lmdb, api_http_version());
	return CLI_OK;
}

int
cli_fail(const char *cmd, const char *what, pv_status rc)
{
	if (what != NULL && *what != '\0')
		(void)fprintf(stderr, "piivault: %s: %s: %s\n", cmd, what,
		    pv_strerror(rc));
	else
		(void)fprintf(stderr, "piivault: %s: %s\n", cmd,
		    pv_strerror(rc));
	return CLI_FAIL;
}

/* Where a refusal points in the configuration file; see cli_where. */
static struct {
	const char	*path;
	unsigned	 line;
} where;

void
cli_where(const char *path, unsigned line)
{
	where.path = path;
	where.line = line;
}

int
cli_usage(const char *cmd, const char *msg)
{
	char line[16] = "";

	if (where.path != NULL && where.line > 0)
		(void)snprintf(line, sizeof(line), ":%u", where.line);
	/* Before a command's name (cmd ""), the hint is the whole help. */
	(void)fprintf(stderr, "piivault: %s%s%s%s%s%s (see piivault %s%s"
	    "--help)\n", cmd, *cmd != '\0' ? ": " : "",
	    where.path != NULL ? where.path : "", line,
	    where.path != NULL ? ": " : "", msg, cmd, *cmd != '\0' ? " " : "");
	return CLI_USAGE;
}

/*
 * The path in environment variable name if set and not empty, else dflt;
 * *from says which.
 */
static const char *
env_or(const char *name, const char *dflt, enum cli_from *from)
{
	const char *env = getenv(name);

	if (env == NULL || *env == '\0') {
		*from = CLI_FROM_DEFAULT;
		return dflt;
	}
	*from = CLI_FROM_ENV;
	return env;
}

/* The command being run, for messages; see cli_name. */
static char cmd_name[64];

const char *
cli_name(void)
{
	return cmd_name;
}

static void
set_name(const char *group, const char *cmd)
{
	if (group != NULL)
		(void)snprintf(cmd_name, sizeof(cmd_name), "%s %s", group, cmd);
	else
		(void)snprintf(cmd_name, sizeof(cmd_name), "%s", cmd);
}

/*
 * Say that arg (an option as given) is refused, and why.  Its name is
 * shown only if it looks like one: whatever else starts with a dash may
 * be a value, and a value is never echoed.
 */
static int
bad_option(const char *arg, const char *why)
{
	size_t n = strcspn(arg, "="), dashes = arg[1] == '-' ? 2 : 1;
	char msg[128];

	/* "--name" or "-n", a lowercase letter first, at most 32 long. */
	if (n > dashes && n - dashes <= 32 && arg[dashes] >= 'a' &&
	    arg[dashes] <= 'z' && strspn(arg + dashes,
	    "abcdefghijklmnopqrstuvwxyz0123456789-") == n - dashes)
		(void)snprintf(msg, sizeof(msg), "%s %.*s", why, (int)n, arg);
	else
		(void)snprintf(msg, sizeof(msg), "%s", why);
	return cli_usage(cmd_name, msg);
}

/*
 * The same for a command or subcommand name that is not one: shown only
 * if it looks like one.
 */
static int
bad_word(const char *word, const char *why)
{
	size_t n = strlen(word);
	int shown = n > 0 && n <= 32 && word[0] >= 'a' && word[0] <= 'z' &&
	    strspn(word, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;

	(void)fprintf(stderr, "piivault: %s%s%s%s%s%s (see piivault %s%s)\n",
	    cmd_name, cmd_name[0] != '\0' ? ": " : "", why,
	    shown ? " '" : "", shown ? word : "", shown ? "'" : "",
	    cmd_name[0] != '\0' ? cmd_name : "help",
	    cmd_name[0] != '\0' ? " --help" : "");
	return CLI_USAGE;
}

/* The help cli_parse prints for --help: usage, then the options. */
static void
print_help(const char *usage, const struct option *opts, const char *own)
{
	(void)printf("usage: piivault %s\n\n%s", usage, own != NULL ? own :
	    "");
	for (size_t i = 0; opts[i].name != NULL; i++)
		switch (opts[i].val & ~CLI_OPT_FLAGS) {
		case CLI_O_DATA_DIR:
			(void)printf("  --data-dir DIR   vault directory (env "
			    "PIIVAULT_DATA_DIR, default "
			    CLI_DATA_DIR_DEFAULT ")\n");
			break;
		case CLI_O_KEY_FILE:
			(void)printf("  --key-file FILE  root key file (env "
			    "PIIVAULT_KEY_FILE, default "
			    CLI_KEY_FILE_DEFAULT ")\n");
			break;
		case CLI_O_CONFIG:
			(void)printf("  --config FILE    settings file (env "
			    "PIIVAULT_CONFIG; see piivault --help)\n");
			break;
		case CLI_O_PASSPHRASE:
			(void)printf("  --passphrase     derive the root key "
			    "from a passphrase (Argon2id)\n");
			break;
		case CLI_O_JSON:
			(void)printf("  --json           machine-readable "
			    "output\n");
			break;
		}
}

/*
 * One option, name its name as given ("--name=V", or a configuration
 * file's "name"), with val its value or NULL: into c, or to own.
 */
static int
take_option(const struct option *o, const char *name, const char *val,
    struct cli_common *c, const struct cli_own *own, enum cli_from from,
    unsigned line)
{
	int v = o->val & ~CLI_OPT_FLAGS;

	switch (v) {
	case CLI_O_DATA_DIR:
		c->data_dir = val;
		c->data_dir_from = from;
		c->data_dir_line = line;
		break;
	case CLI_O_KEY_FILE:
		c->key_file = val;
		c->key_file_from = from;
		c->key_file_line = line;
		break;
	case CLI_O_CONFIG:
		break;		/* read by cli_parse before the others */
	case CLI_O_PASSPHRASE:
		c->passphrase = 1;
		break;
	case CLI_O_JSON:
		c->json = 1;
		break;
	default:
		if (own == NULL || own->fn == NULL || v < CLI_OPT_OWN)
			return bad_option(name, "unknown option");
		return own->fn(own->arg, v, val);
	}
	return CLI_OK;
}

/* The command being run: its entry (see cli_parse), set by cli_main. */
static const struct cli_cmd *cur;
/* The options given before the command's name, for cli_parse. */
static char **pre;
static int npre;
/*
 * The configuration file cli_parse read, kept until the command ends:
 * c->data_dir and own options' values may point into it.
 */
static struct cli_config config;

/* Options a table may have: cli_parse marks those given in 64 bits. */
#define OPTS_MAX	64

/* Each option of cur->opts as cli_parse left it, for cli_settings_print. */
static struct {
	const char	*val[OPTS_MAX];	/* NULL: not given */
	enum cli_from	 from[OPTS_MAX];
	unsigned	 line[OPTS_MAX];
} eff;

/* An option given on the command line. */
struct given {
	size_t		 k;	/* its index in the table */
	const char	*arg;	/* as given: "--name" or "--name=V" */
	const char	*val;	/* or NULL */
};

/*
 * Scan args[0..n) against opts[0..nopts): options into g[*ng], operands
 * into ops[*nops]; *seen marks those given.  CLI_OK, CLI_USAGE (said), or
 * -1 for --help.
 */
static int
scan(char **args, int n, const struct option *opts, size_t nopts,
    uint64_t *seen, struct given *g, size_t *ng, char **ops, size_t *nops)
{
	const char *arg, *val;
	size_t len, k;

	for (int i = 0; i < n; i++) {
		arg = args[i];
		if (strcmp(arg, "--") == 0) {
			while (++i < n)
				ops[(*nops)++] = args[i];
			break;
		}
		if (arg[0] != '-' || arg[1] == '\0') {
			ops[(*nops)++] = args[i];
			continue;
		}
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
			return -1;
		if (arg[1] != '-')
			return bad_option(arg, "unknown option");
		len = strcspn(arg + 2, "=");
		for (k = 0; k < nopts; k++)
			if (strlen(opts[k].name) == len &&
			    strncmp(opts[k].name, arg + 2, len) == 0)
				break;
		if (k == nopts)
			return bad_option(arg, "unknown option");
		if ((*seen & (UINT64_C(1) << k)) &&
		    (opts[k].val & CLI_OPT_REPEAT) == 0)
			return bad_option(arg, "repeated option");
		*seen |= UINT64_C(1) << k;
		val = NULL;
		if (arg[2 + len] == '=') {
			if (opts[k].has_arg == no_argument)
				return bad_option(arg, "no value allowed for");
			val = arg + 2 + len + 1;
		} else if (opts[k].has_arg == required_argument) {
			if (i + 1 == n)
				return bad_option(arg, "missing value for");
			val = args[++i];
		}
		g[*ng].k = k;
		g[*ng].arg = arg;
		g[*ng].val = val;
		(*ng)++;
	}
	return CLI_OK;
}

/*
 * Whether a configuration file may set name: CLI_OK if some command takes
 * it as a setting; else CLI_USAGE, saying why (cli_where set).
 */
static int
setting_known(const char *name)
{
	const struct cli_cmd *t;
	char msg[160];
	int once = 0;

	/* Each command, then its subcommands (a group's own opts are NULL). */
	for (size_t i = 0; commands[i].name != NULL; i++)
		for (size_t j = 0; (t = j == 0 ? &commands[i] :
		    commands[i].sub != NULL ? &commands[i].sub[j - 1] : NULL) !=
		    NULL && t->name != NULL; j++)
			for (size_t k = 0; t->opts != NULL &&
			    t->opts[k].name != NULL; k++) {
				if (strcmp(t->opts[k].name, name) != 0)
					continue;
				if ((t->opts[k].val & CLI_OPT_ONCE) == 0)
					return CLI_OK;
				once = 1;
			}
	if (strcmp(name, "config") == 0)
		return cli_usage(cmd_name, "config cannot be set in a "
		    "configuration file");
	if (once)
		(void)snprintf(msg, sizeof(msg), "%.40s is not a setting: give "
		    "--%.40s on the command line", name, name);
	else
		(void)snprintf(msg, sizeof(msg), "unknown setting '%.40s'%s",
		    name, strlen(name) > 40 ? "..." : "");
	return cli_usage(cmd_name, msg);
}

/* A boolean setting's value: 1 or 0, -1 if it is not one. */
static int
boolean(const char *s)
{
	if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 ||
	    strcmp(s, "1") == 0)
		return 1;
	if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 ||
	    strcmp(s, "0") == 0)
		return 0;
	return -1;
}

/* Apply what config sets that opts[0..nopts) takes. */
static int
config_apply(const struct option *opts, size_t nopts, struct cli_common *c,
    const struct cli_own *own)
{
	char msg[160];
	const char *val;
	size_t k;
	int r = CLI_OK, on = 1;

	for (size_t i = 0; i < config.n && r == CLI_OK; i++) {
		struct cli_setting *s = &config.set[i];

		cli_where(config.path, s->line);
		for (k = 0; k < nopts; k++)
			if (strcmp(opts[k].name, s->name) == 0)
				break;
		if (k == nopts)
			continue;	/* another command's */
		val = s->value;
		if (opts[k].has_arg == no_argument) {
			if ((on = boolean(val)) < 0) {
				(void)snprintf(msg, sizeof(msg), "%s must be "
				    "true or false (or yes, no, 1, 0)",
				    s->name);
				r = cli_usage(cmd_name, msg);
				break;
			}
			val = on ? "true" : "false";
		} else if ((opts[k].val & CLI_OPT_PATH) != 0 &&
		    (r = cli_config_path(&config, s, &val)) != CLI_OK)
			break;
		eff.val[k] = val;
		eff.from[k] = CLI_FROM_CONFIG;
		eff.line[k] = s->line;
		if (opts[k].has_arg == no_argument && !on)
			continue;
		r = take_option(&opts[k], s->name, opts[k].has_arg ==
		    no_argument ? NULL : val, c, own, CLI_FROM_CONFIG,
		    s->line);
	}
	cli_where(NULL, 0);
	return r;
}

int
cli_parse(int argc, char **argv, struct cli_common *c, int *first,
    const char *usage, const struct cli_own *own)
{
	const struct option *opts = cur->opts;
	uint64_t seen = 0;	/* bit i: opts[i] was given */
	struct given *g = NULL;
	const char *cfg = NULL;
	char **operands = NULL;
	size_t nopts, ng = 0, nops = 0;
	int r, env = 0;

	memset(c, 0, sizeof(*c));
	memset(&eff, 0, sizeof(eff));
	c->data_dir = env_or("PIIVAULT_DATA_DIR", CLI_DATA_DIR_DEFAULT,
	    &c->data_dir_from);
	c->key_file = env_or("PIIVAULT_KEY_FILE", CLI_KEY_FILE_DEFAULT,
	    &c->key_file_from);
	for (nopts = 0; opts[nopts].name != NULL; nopts++) {
		assert(nopts < OPTS_MAX);
		if ((opts[nopts].val & ~CLI_OPT_FLAGS) == CLI_O_DATA_DIR &&
		    c->data_dir_from == CLI_FROM_ENV) {
			eff.val[nopts] = c->data_dir;
			eff.from[nopts] = CLI_FROM_ENV;
		}
		if ((opts[nopts].val & ~CLI_OPT_FLAGS) == CLI_O_KEY_FILE &&
		    c->key_file_from == CLI_FROM_ENV) {
			eff.val[nopts] = c->key_file;
			eff.from[nopts] = CLI_FROM_ENV;
		}
	}
	if ((operands = calloc((size_t)(argc + npre), sizeof(*operands))) ==
	    NULL || (g = calloc((size_t)(argc + npre), sizeof(*g))) == NULL) {
		r = cli_fail(cmd_name, NULL, PV_ENOMEM);
		goto out;
	}
	if ((r = scan(pre, npre, opts, nopts, &seen, g, &ng, operands,
	    &nops)) != CLI_OK || (r = scan(argv + 1, argc - 1, opts, nopts,
	    &seen, g, &ng, operands, &nops)) != CLI_OK) {
		if (r < 0)
			print_help(usage, opts, own != NULL ? own->help :
			    NULL);
		goto out;
	}
	/* The configuration file: --config's, else PIIVAULT_CONFIG's. */
	for (size_t i = 0; i < ng; i++)
		if ((opts[g[i].k].val & ~CLI_OPT_FLAGS) == CLI_O_CONFIG)
			cfg = g[i].val;
	if (cfg == NULL && (cfg = getenv("PIIVAULT_CONFIG")) != NULL) {
		env = 1;
		if (*cfg == '\0')
			cfg = NULL;
	}
	if (cfg != NULL && *cfg == '\0') {
		r = cli_usage(cmd_name, "empty path");
		goto out;
	}
	if (cfg != NULL && ((r = cli_config_load(cfg, env, setting_known,
	    &config)) !=
	    CLI_OK || (r = config_apply(opts, nopts, c, own)) != CLI_OK))
		goto out;
	/* The command line's last: it wins. */
	for (size_t i = 0; i < ng && r == CLI_OK; i++) {
		const struct option *o = &opts[g[i].k];

		eff.val[g[i].k] = o->has_arg == no_argument ? "true" : g[i].val;
		eff.from[g[i].k] = CLI_FROM_OPTION;
		eff.line[g[i].k] = 0;
		r = take_option(o, g[i].arg, g[i].val, c, own, CLI_FROM_OPTION,
		    0);
	}
	if (r == CLI_OK && (c->data_dir[0] == '\0' || c->key_file[0] == '\0'))
		r = cli_usage(cmd_name, "empty path");
	if (r == CLI_OK) {
		/* The operands last, in order; what precedes them is spent. */
		memcpy(argv + argc - nops, operands, nops * sizeof(*operands));
		*first = argc - (int)nops;
	}
out:
	free(operands);
	free(g);
	return r;
}

/* A value as the configuration file would take it back. */
static int
print_setting(const char *name, const char *val, const char *from)
{
	const char *q = strpbrk(val, " \t#") != NULL || val[0] == '"' ?
	    "\"" : "";

	return printf("%s = %s%s%s  # %s\n", name, q, val, q, from) < 0 ?
	    -1 : 0;
}

int
cli_settings_print(const char *(*dflt)(int val))
{
	const struct option *opts = cur->opts;
	char from[64];
	int bad = 0;

	if (config.path != NULL)
		bad |= printf("# piivault %s: the settings in effect, with "
		    "%s\n", cmd_name, config.path) < 0;
	else
		bad |= printf("# piivault %s: the settings in effect\n",
		    cmd_name) < 0;
	for (size_t k = 0; opts[k].name != NULL; k++) {
		int v = opts[k].val & ~CLI_OPT_FLAGS;
		const char *val = eff.val[k];

		if ((opts[k].val & CLI_OPT_ONCE) != 0)
			continue;
		switch (val != NULL ? eff.from[k] : CLI_FROM_DEFAULT) {
		case CLI_FROM_OPTION:
			(void)snprintf(from, sizeof(from), "flag");
			break;
		case CLI_FROM_CONFIG:
			(void)snprintf(from, sizeof(from), "config:%u",
			    eff.line[k]);
			break;
		case CLI_FROM_ENV:
			(void)snprintf(from, sizeof(from), "env %s",
			    v == CLI_O_DATA_DIR ? "PIIVAULT_DATA_DIR" :
			    "PIIVAULT_KEY_FILE");
			break;
		case CLI_FROM_DEFAULT:
			(void)snprintf(from, sizeof(from), "default");
			val = v == CLI_O_DATA_DIR ? CLI_DATA_DIR_DEFAULT :
			    v == CLI_O_KEY_FILE ? CLI_KEY_FILE_DEFAULT :
			    opts[k].has_arg == no_argument ? "false" : dflt(v);
			break;
		}
		if (val == NULL)
			bad |= printf("# %s is not set\n", opts[k].name) < 0;
		else
			bad |= print_setting(opts[k].name, val, from) != 0;
	}
	if (bad || fflush(stdout) != 0)
		return cli_fail(cmd_name, "stdout", PV_EIO);
	return CLI_OK;
}

int
cli_keyset_add(struct cli_keyset *ks, const char *cmd, const char *val)
{
	const char *eq = strchr(val, '=');
	unsigned long long ver = 0;
	char *end;
	int bad = 0;

	if (ks->n == CLI_KEYS_MAX)
		return cli_usage(cmd, "more than 64 --public-key");
	if (eq != NULL) {
		if (val[0] < '1' || val[0] > '9')
			bad = 1;
		else {
			ver = strtoull(val, &end, 10);
			if (end != eq || ver > UINT32_MAX)
				bad = 1;
		}
		val = eq + 1;
	}
	if (bad || api_pubkey_decode(ks->k[ks->n].pub, val, strlen(val)) !=
	    PV_OK)
		return cli_usage(cmd, "--public-key must be pvpub_... or "
		    "VERSION=pvpub_...");
	ks->k[ks->n].version = (uint32_t)ver;
	ks->any[ks->n] = eq == NULL;
	ks->n++;
	return CLI_OK;
}

pv_status
cli_keyset_check(const struct cli_keyset *ks, uint32_t ver,
    pv_status (*check)(const void *arg,
    const uint8_t pub[static PV_ED25519_LEN]), const void *arg)
{
	pv_status rc = PV_ENOTFOUND;

	for (size_t i = 0; i < ks->n; i++) {
		if (!ks->any[i] && ks->k[i].version != ver)
			continue;
		if (check(arg, ks->k[i].pub) == PV_OK)
			return PV_OK;
		rc = PV_EINTEGRITY;
	}
	return rc;
}

int
cli_number(const char *cmd, const char *what, const char *s,
    unsigned long long min, unsigned long long max, unsigned long long *out)
{
	unsigned long long v;
	char *end, msg[128];

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < min ||
	    v > max) {
		(void)snprintf(msg, sizeof(msg), "%s must be a number from "
		    "%llu to %llu", what, min, max);
		return cli_usage(cmd, msg);
	}
	*out = v;
	return CLI_OK;
}

/* Read a line from the terminal without echo. */
static pv_status
prompt(const char *what, char *buf, size_t cap, size_t *len)
{
	struct termios old, quiet;
	pv_status rc = PV_EPASSPHRASE;
	size_t n = 0;
	char ch;
	int fd;

	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) < 0)
		return PV_EPASSPHRASE;
	if (tcgetattr(fd, &old) != 0)
		goto out;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (write(fd, what, strlen(what)) < 0 ||
	    tcsetattr(fd, TCSAFLUSH, &quiet) != 0)
		goto out;
	for (;;) {
		ssize_t r = read(fd, &ch, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || ch == '\n')
			break;
		if (n == cap) {
			rc = PV_ETOOBIG;
			break;
		}
		buf[n++] = ch;
	}
	ch = 0;
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* Only the echo of a newline is lost. */
	}
	if (rc != PV_ETOOBIG && n > 0) {
		*len = n;
		rc = PV_OK;
	}
out:
	if (rc != PV_OK)
		pv_cleanse(buf, cap);
	(void)close(fd);
	return rc;
}

/*
 * vault_unlock's passphrase callback.  arg is a struct cli_pass, or NULL for
 * the vault's passphrase asked once.
 */
pv_status
cli_passphrase(void *arg, char *buf, size_t cap, size_t *len)
{
	const struct cli_pass *cp = arg;
	const char *env = getenv(cp != NULL ? cp->env : "PIIVAULT_PASSPHRASE");
	char *again;
	size_t n, n2;
	pv_status rc;

	if (env != NULL && *env != '\0') {
		if ((n = strlen(env)) > cap)
			return PV_ETOOBIG;
		memcpy(buf, env, n);
		*len = n;
		return PV_OK;
	}
	if ((rc = prompt(cp != NULL && cp->prompt != NULL ? cp->prompt :
	    "vault passphrase: ", buf, cap, &n)) != PV_OK)
		return rc;
	if (cp != NULL && cp->confirm) {
		if ((again = pv_secure_alloc(cap)) == NULL)
			return PV_ENOMEM;
		rc = prompt("again: ", again, cap, &n2);
		if (rc == PV_OK && (n2 != n || !pv_ct_eq(buf, again, n)))
			rc = PV_EPASSPHRASE;
		pv_secure_free(again, cap);
		if (rc != PV_OK) {
			pv_cleanse(buf, cap);
			return rc;
		}
	}
	*len = n;
	return PV_OK;
}

int
cli_confirm(const char *question)
{
	char answer[16];
	size_t n = 0;
	ssize_t r;
	int fd;

	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) < 0)
		return 0;
	if (write(fd, question, strlen(question)) < 0) {
		(void)close(fd);
		return 0;
	}
	while (n < sizeof(answer) - 1 && (r = read(fd, answer + n, 1)) == 1 &&
	    answer[n] != '\n')
		n++;
	(void)close(fd);
	answer[n] = '\0';
	return strcmp(answer, "y") == 0 || strcmp(answer, "yes") == 0;
}

void
cli_time(char out[static CLI_TIME_LEN], uint64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t > CLI_TIME_MAX || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, CLI_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(out, CLI_TIME_LEN, "%llu", (unsigned long long)t);
}

/* The bar on a terminal: done of total, as a percentage and 40 marks. */
static void
progress_bar(const struct cli_progress *cp, const struct vault_progress *p,
    double rate)
{
	uint64_t whole = p->total > p->done ? p->total : p->done;
	unsigned pct = 100, marks;
	char bar[41];

	if (p->total != 0)
		pct = (unsigned)(p->done * 100 / whole);
	marks = pct * 40 / 100;
	memset(bar, '#', marks);
	memset(bar + marks, '.', 40 - marks);
	bar[40] = '\0';
	(void)fprintf(stderr, "\r%s [%s] %3u%% %llu/%llu %.0f/s", cp->step, bar,
	    pct, (unsigned long long)p->done, (unsigned long long)p->total,
	    rate);
}

/* vault_progress_fn: a bar on a terminal, a JSON line otherwise. */
void
cli_progress(void *arg, const struct vault_progress *p)
{
	struct cli_progress *cp = arg;
	double secs = (double)(pv_mono_us() - cp->t0) / 1e6;
	double rate = secs > 0 ? (double)p->done / secs : 0;
	struct pv_buf b;
	struct pv_json j;

	if (cp->tty) {
		progress_bar(cp, p, rate);
		return;
	}
	pv_buf_init(&b, 256);
	pv_json_init(&j, &b);
	pv_json_obj(&j);
	pv_json_kstr(&j, "step", cp->step);
	pv_json_ku64(&j, "done", p->done);
	pv_json_ku64(&j, "total", p->total);
	cli_json_fixed(&j, "seconds", secs, 3);
	pv_json_close(&j);
	/* A progress line that cannot be built or written is only lost. */
	if (pv_json_end(&j) == PV_OK)
		(void)printf("%s\n", b.p);
	pv_buf_cleanup(&b);
}

void
cli_progress_init(struct cli_progress *cp, const char *step)
{
	cp->step = step;
	cp->tty = isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
	cp->t0 = pv_mono_us();
}

void
cli_json_fixed(struct pv_json *j, const char *key, double v, int decimals)
{
	char num[400];		/* %.0f of DBL_MAX is 309 digits */
	int n;

	pv_json_key(j, key);
	if (!isfinite(v) || decimals < 0 || decimals > 17) {
		pv_json_dbl(j, v);	/* the writer's own error for NaN */
		return;
	}
	n = snprintf(num, sizeof(num), "%.*f", decimals, v);
	if (n < 0 || (size_t)n >= sizeof(num)) {
		pv_json_dbl(j, v);
		return;
	}
	pv_json_raw(j, num, (size_t)n);
}

int
cli_emit(const char *cmd, const struct pv_buf *b)
{
	if (fwrite(b->p, 1, b->len, stdout) != b->len ||
	    fputc('\n', stdout) == EOF || fflush(stdout) != 0)
		return cli_fail(cmd, "stdout", PV_EIO);
	return CLI_OK;
}

int
cli_emit_json(const char *cmd, const struct pv_json *j)
{
	pv_status rc;

	if ((rc = pv_json_end(j)) != PV_OK)
		return cli_fail(cmd, NULL, rc);
	return cli_emit(cmd, j->b);
}

FILE *
cli_fopen(const char *path)
{
	if (strcmp(path, "-") == 0)
		return stdin;
	return fopen(path, "r");
}

void
cli_fclose(FILE *f)
{
	if (f != NULL && f != stdin)
		(void)fclose(f);
}

/*
 * The numeric environment knobs, read and checked once by cli_main: a bad
 * value is a command-line error, never 0 or a silent default.
 */
static struct {
	uint32_t	kdf_memory_kib;	/* 0: the vault's default */
	uint64_t	map_size;	/* bytes; 0: the store's default */
} knobs;

int
cli_env_number(const char *name, unsigned long long min,
    unsigned long long max, unsigned long long *out)
{
	const char *s = getenv(name);
	unsigned long long v;
	char *end;

	*out = 0;
	if (s == NULL)
		return CLI_OK;
	/* strtoull alone takes " 12", "+12" and "-1" (as ULLONG_MAX). */
	if (*s >= '0' && *s <= '9') {
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno == 0 && *end == '\0' && v >= min && v <= max) {
			*out = v;
			return CLI_OK;
		}
	}
	(void)fprintf(stderr, "piivault: environment: %s must be a number "
	    "from %llu to %llu\n", name, min, max);
	return CLI_USAGE;
}

static int
env_knobs(void)
{
	unsigned long long v;
	int r;

	/* Argon2id memory for new passphrase roots; small values for tests. */
	if ((r = cli_env_number("PIIVAULT_KDF_MEMORY_KIB", CLI_KDF_MEMORY_MIN,
	    CLI_KDF_MEMORY_MAX, &v)) != CLI_OK)
		return r;
	knobs.kdf_memory_kib = (uint32_t)v;
	/* The LMDB map, in MiB: how large the data file may grow. */
	if ((r = cli_env_number("PIIVAULT_MAP_SIZE_MIB", 1, CLI_MAP_MIB_MAX,
	    &v)) != CLI_OK)
		return r;
	knobs.map_size = (uint64_t)v << 20;
	return CLI_OK;
}

uint32_t
cli_kdf_memory_kib(void)
{
	return knobs.kdf_memory_kib;
}

void
cli_vault_opts(const struct cli_common *c, struct vault_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->data_dir = c->data_dir;
	o->unlock.key_file = c->key_file;
	o->unlock.use_passphrase = c->passphrase;
	o->unlock.passphrase = cli_passphrase;
	o->unlock.arg = NULL;
	o->unlock.kdf_memory_kib = knobs.kdf_memory_kib;
	o->map_size = knobs.map_size;
}

/*
 * Where a path the user did not give on the command line came from, for
 * a message: " (PIIVAULT_KEY_FILE)", " (FILE:LINE)" or "".
 */
static void
path_whence(char *out, size_t cap, const struct cli_common *c, int key)
{
	enum cli_from from = key ? c->key_file_from : c->data_dir_from;

	if (from == CLI_FROM_ENV)
		(void)snprintf(out, cap, " (%s)", key ? "PIIVAULT_KEY_FILE" :
		    "PIIVAULT_DATA_DIR");
	else if (from == CLI_FROM_CONFIG && config.path != NULL)
		(void)snprintf(out, cap, " (%s:%u)", config.path, key ?
		    c->key_file_line : c->data_dir_line);
	else
		out[0] = '\0';
}

int
cli_path_fail(const struct cli_common *c, const char *cmd, int key,
    const char *what)
{
	enum cli_from from = key ? c->key_file_from : c->data_dir_from;
	char whence[4096 + 32];

	path_whence(whence, sizeof(whence), c, key);
	(void)fprintf(stderr, "piivault: %s: %s %s%s %s\n", cmd,
	    from == CLI_FROM_OPTION ? (key ? "--key-file" : "--data-dir") :
	    (key ? "key file" : "data directory"),
	    key ? c->key_file : c->data_dir, whence, what);
	return CLI_FAIL;
}

/*
 * What is wrong with a key file that kms_key_file_read refused with
 * PV_EKEYPERM, looked at again to say which rule it broke; NULL if it
 * now breaks none (it changed in between).
 */
static const char *
key_file_fault(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return NULL;
	if (S_ISLNK(st.st_mode))
		return "is a symbolic link; name the key file itself";
	if (S_ISDIR(st.st_mode))
		return "is a directory, not a key file";
	if (!S_ISREG(st.st_mode))
		return "is not a regular file";
	if (st.st_uid != geteuid())
		return "belongs to another user";
	if ((st.st_mode & 077) != 0)
		return "is accessible by group or others (chmod 600 it)";
	return NULL;
}

/*
 * For PV_EIO: the first of the data directory and the key file that this
 * process cannot reach, and why (strerror); 0 if both can be.
 */
static int
unreachable(const struct cli_common *c, int *key)
{
	struct stat st;
	int fd;

	if (stat(c->data_dir, &st) != 0 && errno != ENOENT) {
		*key = 0;
		return errno;
	}
	if ((fd = open(c->key_file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) >= 0) {
		(void)close(fd);
		return 0;
	}
	if (errno == ENOENT || errno == ELOOP)
		return 0;
	*key = 1;
	return errno;
}

int
cli_parent_exists(const char *path)
{
	char parent[4096];
	const char *slash = strrchr(path, '/');
	struct stat st;
	size_t n;

	if (slash == NULL || slash == path)
		return 1;		/* "." or "/" */
	if ((n = (size_t)(slash - path)) >= sizeof(parent))
		return 1;		/* too long to tell; say nothing */
	memcpy(parent, path, n);
	parent[n] = '\0';
	return stat(parent, &st) == 0 || errno != ENOENT;
}

int
cli_open_fail(const struct cli_common *c, const char *cmd, pv_status rc)
{
	char what[160];
	const char *fault;
	struct stat st;
	int key = 0, e;

	switch (rc) {
	case PV_ENOTDIR:
		return cli_path_fail(c, cmd, 0, "is not a directory");
	case PV_EDIRPERM:
		return cli_path_fail(c, cmd, 0, "is writable by group or others "
		    "(chmod 700 it)");
	case PV_ENOVAULT:
		if (stat(c->data_dir, &st) == 0)
			return cli_path_fail(c, cmd, 0, "holds no vault (piivault "
			    "init makes one)");
		return cli_path_fail(c, cmd, 0, c->data_dir_from ==
		    CLI_FROM_DEFAULT ? "does not exist; set PIIVAULT_DATA_DIR "
		    "or --data-dir, or run piivault init" : "does not exist");
	case PV_ENOTFOUND:
		/* The key file: the one status of vault_open's that says so. */
		path_whence(what, sizeof(what), c, 1);
		(void)fprintf(stderr, "piivault: %s: no key file at %s%s\n",
		    cmd, c->key_file, c->key_file_from == CLI_FROM_DEFAULT ?
		    "; set PIIVAULT_KEY_FILE or --key-file" : what);
		return CLI_FAIL;
	case PV_EKEYPERM:
		if ((fault = key_file_fault(c->key_file)) != NULL)
			return cli_path_fail(c, cmd, 1, fault);
		return cli_fail(cmd, c->key_file, rc);
	case PV_EKEYFORMAT:
		return cli_path_fail(c, cmd, 1, "does not hold one base64 256-bit "
		    "key");
	case PV_EIO:
		if (!cli_parent_exists(c->data_dir))
			return cli_path_fail(c, cmd, 0, "cannot be created: "
			    "the directory it would be in does not exist");
		if ((e = unreachable(c, &key)) != 0) {
			(void)snprintf(what, sizeof(what), "cannot be read: %s",
			    strerror(e));
			return cli_path_fail(c, cmd, key, what);
		}
		return cli_fail(cmd, "cannot open vault", rc);
	default:
		return cli_fail(cmd, "cannot open vault", rc);
	}
}

int
cli_open(const struct cli_common *c, const char *cmd, struct vault **out)
{
	struct vault_opts o;
	pv_status rc;

	cli_vault_opts(c, &o);
	if ((rc = vault_open(&o, out)) == PV_OK) {
		/* The CLI's own reads and changes go in the audit log. */
		vault_set_actor(*out, "cli");
		return CLI_OK;
	}
	return cli_open_fail(c, cmd, rc);
}

int
cli_begin(const struct cli_start *s, int argc, char **argv,
    struct cli_common *c, int *first, struct vault **v)
{
	int r;

	*v = NULL;
	if ((r = cli_parse(argc, argv, c, first, s->usage, s->own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (argc - *first != s->nargs)
		return cli_usage(s->cmd, s->nargs_msg);
	return cli_open(c, s->cmd, v);
}

pv_status
cli_read_stdin(struct pv_buf *b, size_t max)
{
	char chunk[4096];
	pv_status rc = PV_OK;
	ssize_t n;

	for (;;) {
		n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = PV_EIO;
			break;
		}
		if (n == 0)
			break;
		if (b->len + (size_t)n > max) {
			rc = PV_ETOOBIG;
			break;
		}
		if ((rc = pv_buf_add(b, chunk, (size_t)n)) != PV_OK)
			break;
	}
	pv_cleanse(chunk, sizeof(chunk));
	return rc;
}

/*
 * Run the subcommand of group g named by argv[1]; for a group with a
 * function of its own (backup), that function when argv[1] names none.
 */
static int
dispatch(const struct cli_cmd *g, int argc, char **argv)
{
	FILE *f = argc < 2 ? stderr : stdout;
	int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0);

	if (g->fn != NULL) {
		for (const struct cli_cmd *t = g->sub; argc >= 2 &&
		    t->name != NULL; t++)
			if (strcmp(argv[1], t->name) == 0) {
				set_name(g->name, t->name);
				cur = t;
				return t->fn(argc - 1, argv + 1);
			}
		cur = g;
		return g->fn(argc, argv);
	}
	if (help && argc > 2)
		return cli_usage(g->name, "unexpected argument");
	if (argc < 2 || help) {
		(void)fprintf(f, "usage: piivault %s SUBCOMMAND\n\n"
		    "subcommands:\n", g->name);
		for (const struct cli_cmd *t = g->sub; t->name != NULL; t++)
			(void)fprintf(f, "  %-14s %s\n", t->name, t->help);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	for (const struct cli_cmd *t = g->sub; t->name != NULL; t++)
		if (strcmp(argv[1], t->name) == 0) {
			set_name(g->name, t->name);
			cur = t;
			return t->fn(argc - 1, argv + 1);
		}
	return bad_word(argv[1], "unknown subcommand");
}

/* Whether arg is one of the options every command takes. */
static int
common_option(const char *arg)
{
	static const char *const names[] = { "--data-dir", "--key-file",
	    "--config" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);

		if (strncmp(arg, names[i], n) == 0 &&
		    (arg[n] == '\0' || arg[n] == '='))
			return 1;
	}
	return 0;
}

int
cli_main(int argc, char **argv)
{
	const struct cli_cmd *cmd;
	int r, i;

	cmd_name[0] = '\0';
	cur = NULL;
	pre = NULL;
	npre = 0;
	if ((r = env_knobs()) != CLI_OK)
		return r;
	if (argc < 2) {
		usage_all(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(argc - 1, argv + 1);
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(argc - 1, argv + 1);
	/* The options every command takes may come before its name. */
	for (i = 1; i < argc && common_option(argv[i]); i++)
		if (strchr(argv[i], '=') == NULL && ++i == argc)
			return bad_option(argv[i - 1], "missing value for");
	if (i == argc)
		return cli_usage("", "expected a command");
	for (cmd = commands; cmd->name != NULL; cmd++)
		if (strcmp(argv[i], cmd->name) == 0)
			break;
	if (cmd->name == NULL)
		return argv[i][0] == '-' ? bad_option(argv[i],
		    "unknown option") : bad_word(argv[i], "unknown command");
	set_name(NULL, cmd->name);
	if (i > 1 && cmd->opts == NULL && cmd->sub == NULL)
		return cli_usage(cmd->name, "takes no options before its name");
	pre = argv + 1;
	npre = i - 1;
	if (cmd->sub != NULL)
		r = dispatch(cmd, argc - i, argv + i);
	else {
		cur = cmd;
		r = cmd->fn(argc - i, argv + i);
	}
	cli_config_free(&config);
	pre = NULL;
	npre = 0;
	return r;
}
