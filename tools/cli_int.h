/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_int.h: private to tools/: the piivault command line.
 *
 * Each sub-command is a function taking (argc, argv) after the
 * sub-command's own name, and returning the process exit status:
 * CLI_OK, CLI_FAIL (the operation failed; one line on stderr says why) or
 * CLI_USAGE (bad command line).
 */
#ifndef CLI_INT_H
#define CLI_INT_H

#include <getopt.h>
#include <stdio.h>

#include "api.h"
#include "vault.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

#define CLI_DATA_DIR_DEFAULT	"./piivault-data"
#define CLI_KEY_FILE_DEFAULT	"./piivault.key"

/* A number macro as a string, for help text: CLI_STR(API_THREADS_DEFAULT). */
#define CLI_STR_(x)	#x
#define CLI_STR(x)	CLI_STR_(x)

/*
 * One entry of a command table (wireguard-tools wg.c).  A command has fn
 * and opts, the table of every option it takes (see cli_parse; NULL for
 * help and version, which take none); a group (kms, apikey) has neither,
 * and its subcommands in sub, ended by an entry whose name is NULL.  A
 * group may also have fn and opts (backup): they run when the word after
 * the group's name names no subcommand.  The
 * names a configuration file may set are read from these tables.
 */
struct cli_cmd {
	const char		*name;
	int			(*fn)(int argc, char **argv);
	const char		*help;
	const struct option	*opts;
	const struct cli_cmd	*sub;
};

/* Where an option's value came from, for messages that name it. */
enum cli_from { CLI_FROM_DEFAULT, CLI_FROM_ENV, CLI_FROM_OPTION,
    CLI_FROM_CONFIG };

/* The options cli_parse itself handles, for the commands that take them. */
struct cli_common {
	const char	*data_dir;
	const char	*key_file;
	enum cli_from	 data_dir_from;
	enum cli_from	 key_file_from;
	unsigned	 data_dir_line;	/* of the configuration file */
	unsigned	 key_file_line;
	int		 passphrase;	/* init: use a passphrase root */
	int		 json;		/* machine-readable output */
};

/*
 * A command's options are one table of getopt_long entries (struct
 * option: name, has_arg, NULL, val), ended by CLI_OPT_END, that lists
 * every option it takes and no other; its entry in the command table
 * points to it.  The shared ones below are handled by cli_parse into
 * struct cli_common; a command's own options have a val of at least
 * CLI_OPT_OWN and go to its fn with their argument; fn returns CLI_OK or
 * CLI_USAGE (after saying why).  --help (-h) is taken by every command
 * and is not listed.
 *
 * Every option may also be set in the configuration file (--config), by
 * its long name, unless it is a request of one run rather than a setting:
 * those have CLI_OPT_ONCE.
 */
enum { CLI_O_DATA_DIR = 256, CLI_O_KEY_FILE, CLI_O_PASSPHRASE, CLI_O_JSON,
    CLI_O_CONFIG };
#define CLI_OPT_OWN	512
/* Or'ed into an own option's val: it may be given more than once. */
#define CLI_OPT_REPEAT	0x10000
/*
 * Or'ed into an option's val: its value is a file name, which a
 * configuration file gives relative to the directory it is in.
 */
#define CLI_OPT_PATH	0x20000
/* Or'ed into an option's val: not a setting; refused in a config file. */
#define CLI_OPT_ONCE	0x40000
#define CLI_OPT_FLAGS	(CLI_OPT_REPEAT | CLI_OPT_PATH | CLI_OPT_ONCE)
#define CLI_OPT_DATA_DIR \
	{ "data-dir", required_argument, NULL, CLI_O_DATA_DIR | CLI_OPT_PATH }
#define CLI_OPT_KEY_FILE \
	{ "key-file", required_argument, NULL, CLI_O_KEY_FILE | CLI_OPT_PATH }
#define CLI_OPT_CONFIG \
	{ "config", required_argument, NULL, CLI_O_CONFIG | CLI_OPT_ONCE }
#define CLI_OPT_PASSPHRASE \
	{ "passphrase", no_argument, NULL, CLI_O_PASSPHRASE | CLI_OPT_ONCE }
#define CLI_OPT_JSON \
	{ "json", no_argument, NULL, CLI_O_JSON | CLI_OPT_ONCE }
#define CLI_OPT_END	{ NULL, 0, NULL, 0 }
/* What every command takes: where the vault is, and the config file. */
#define CLI_OPTS_VAULT	CLI_OPT_DATA_DIR, CLI_OPT_KEY_FILE, CLI_OPT_CONFIG

/* The options of a command that takes CLI_OPTS_VAULT alone. */
extern const struct option cli_opts_vault[];

struct cli_own {
	int			(*fn)(void *arg, int ch, const char *val);
	void			*arg;
	const char		*help;	/* lines for --help */
};

/*
 * Parse a command's options, against the table its command-table entry
 * names: first those given before the command's name ("piivault
 * --data-dir D kms status"), then argv (argv[0] is the command's name);
 * leave the operands, in their order, in argv[*first..argc-1].  Options
 * and operands may be mixed; "--" ends the options; "-" is an operand.
 * An option must be spelled whole (no abbreviations), at most once in
 * all (unless its val has CLI_OPT_REPEAT); a value follows as "--opt=V"
 * or as the next argument.  Anything else is refused with CLI_USAGE and a
 * line naming the option and the command (never an option's value or an
 * operand, which may be personal data).  usage is printed with --help.
 *
 * Then the configuration file, if --config or else PIIVAULT_CONFIG names
 * one (cli_config_load): every name in it must be a setting some command
 * takes; the command applies those it takes, checked as the options are,
 * and ignores the others.  A value comes from the command line, else the
 * file, else the environment (PIIVAULT_DATA_DIR, PIIVAULT_KEY_FILE),
 * else the default: own->fn gets the file's value before the command
 * line's.
 *
 * Returns CLI_OK, CLI_USAGE, CLI_FAIL (out of memory), or -1 when --help
 * was printed and the caller should exit 0.
 */
int	cli_parse(int argc, char **argv, struct cli_common *c, int *first,
	    const char *usage, const struct cli_own *own);

/*
 * serve --check-config: print every setting the command parsed by
 * cli_parse takes (its options but the CLI_OPT_ONCE ones), one a line, in
 * the configuration file's syntax: "name = value  # from", from being
 * "flag", "config:LINE", "env NAME" or "default".  A setting not given
 * has the value dflt(val) (val without CLI_OPT_FLAGS), or, if that is
 * NULL, none: "# name is not set".  CLI_OK, or CLI_FAIL if stdout fails.
 */
int	cli_settings_print(const char *(*dflt)(int val));

/*
 * A configuration file (cli_config.c): "name = value" lines, '#'
 * comments, at most CLI_CONFIG_MAX bytes; see cli_config_load.
 */
#define CLI_CONFIG_MAX	(64u << 10)

struct cli_setting {
	const char	*name;
	const char	*value;
	unsigned	 line;
	char		*path;	/* value as a path, once cli_config_path made it */
};

struct cli_config {
	const char		*path;	/* as named */
	int			 env;	/* named by PIIVAULT_CONFIG */
	char			*text;	/* the file, cut into names and values */
	struct cli_setting	*set;
	size_t			 n;
};

/*
 * Read and parse the configuration file at path (named by
 * PIIVAULT_CONFIG if env, else by --config) into *cf.  Refused, with
 * CLI_USAGE after one line on stderr naming the file (and the line): a
 * file that is missing, unreadable, not a regular file, owned by another
 * user than the caller or root, writable by group or others, or larger
 * than CLI_CONFIG_MAX; a line that is not blank, a comment or
 * NAME = VALUE; a control character but tab; a name set twice; a name
 * that known (called with cli_where set to its line) refuses.  CLI_FAIL
 * when out of memory.  On failure *cf holds nothing.
 */
int	cli_config_load(const char *path, int env,
	    int (*known)(const char *name), struct cli_config *cf);
/* A setting's value as a path: relative to the file's directory. */
int	cli_config_path(const struct cli_config *cf, struct cli_setting *s,
	    const char **out);
void	cli_config_free(struct cli_config *cf);
/*
 * Until cleared (path NULL), cli_usage says "PATH:LINE: " (or "PATH: "
 * for line 0) before its message: a refusal of a configuration file's
 * value is the option's own, and says where.
 */
void	cli_where(const char *path, unsigned line);

/*
 * The command being run, whole ("kms rewrap"), for messages: set by
 * cli_main (and, for a group, its dispatch) before the command's function is called.
 */
const char *cli_name(void);

/* Fill vault options from common options; the passphrase comes from
 * PIIVAULT_PASSPHRASE or, failing that, a prompt on the terminal. */
void	cli_vault_opts(const struct cli_common *c, struct vault_opts *o);

/*
 * Environment variable name as a whole decimal number in [min, max] into
 * *out, 0 if it is unset.  Set but anything else ("", "12abc", "-1", " 1",
 * too large): says so, naming it, and returns CLI_USAGE.
 */
int	cli_env_number(const char *name, unsigned long long min,
	    unsigned long long max, unsigned long long *out);
/* PIIVAULT_KDF_MEMORY_KIB as cli_main checked it; 0 if unset. */
uint32_t cli_kdf_memory_kib(void);

/* The bounds kms_init holds Argon2id memory to (kms.h), in KiB. */
#define CLI_KDF_MEMORY_MIN	8192
#define CLI_KDF_MEMORY_MAX	(4u << 20)
/* PIIVAULT_MAP_SIZE_MIB at most 16 TiB. */
#define CLI_MAP_MIB_MAX		(1u << 24)
/* PIIVAULT_FAKE_NOW (piivault-test) at most 9999-12-31T23:59:59Z. */
#define CLI_TIME_MAX		253402300799ull

/* How cli_passphrase asks: which variable, what prompt, twice or not. */
struct cli_pass {
	const char	*env;
	const char	*prompt;
	int		 confirm;
};
pv_status cli_passphrase(void *arg, char *buf, size_t cap, size_t *len);

/* Ask y/N on the terminal; 0 without one. */
int	cli_confirm(const char *question);

/*
 * The one way a time is shown to a person: t (seconds since the epoch) as
 * RFC 3339 in UTC, "2026-12-07T23:30:50Z".  JSON output gives times as
 * the number of seconds, as the HTTP API does.  A time past
 * 9999-12-31T23:59:59Z has no such form and is printed as its number.
 */
#define CLI_TIME_LEN	32
void	cli_time(char out[static CLI_TIME_LEN], uint64_t t);

struct cli_progress {
	const char	*step;
	int		 tty;
	uint64_t	 t0;
};
void	cli_progress_init(struct cli_progress *cp, const char *step);
vault_progress_fn cli_progress;

/* Open the vault, printing a one-line reason on failure. */
int	cli_open(const struct cli_common *c, const char *cmd,
	    struct vault **out);
/*
 * Say why vault_open, vault_create or vault_compact failed with rc: which
 * of the data directory and the key file is at fault, as the user named
 * it (option, environment or default), and what is wrong with it.
 * Returns CLI_FAIL.
 */
int	cli_open_fail(const struct cli_common *c, const char *cmd,
	    pv_status rc);
/*
 * "piivault: CMD: " then the data directory (key == 0) or the key file
 * as the user named it: "--data-dir X" for an option, "data directory X
 * (PIIVAULT_DATA_DIR)" for the environment, "data directory X" for the
 * default (key file alike); then what, what is wrong with it.  Returns
 * CLI_FAIL.
 */
int	cli_path_fail(const struct cli_common *c, const char *cmd, int key,
	    const char *what);
/* 0 if the directory path would be in is known not to exist. */
int	cli_parent_exists(const char *path);

/* How a command that opens the vault starts: see cli_begin. */
struct cli_start {
	const char		*cmd;		/* "apikey list", for messages */
	const char		*usage;		/* as for cli_parse */
	const struct cli_own	*own;		/* or NULL */
	int			 nargs;		/* operands it takes */
	const char		*nargs_msg;	/* said when there are others */
};

/*
 * cli_parse, then exactly s->nargs operands, then cli_open.  Returns
 * CLI_OK with *v open and the operands from argv[*first]; otherwise the
 * exit status, with *v NULL: CLI_OK too after --help, so the caller
 * returns whenever *v is NULL.
 */
int	cli_begin(const struct cli_start *s, int argc, char **argv,
	    struct cli_common *c, int *first, struct vault **v);

/* Print "piivault: CMD: what: reason" on stderr; returns CLI_FAIL. */
int	cli_fail(const char *cmd, const char *what, pv_status rc);
int	cli_usage(const char *cmd, const char *msg);

/* Read all of stdin, at most max bytes (PV_ETOOBIG beyond). */
pv_status cli_read_stdin(struct pv_buf *b, size_t max) PV_WUR;

/* Open FILE for reading, or stdin for "-"; NULL on failure. */
FILE	*cli_fopen(const char *path);
/* Close what cli_fopen opened (NULL and stdin are left alone). */
void	 cli_fclose(FILE *f);

/*
 * Write a whole buffer to stdout, then a newline; CLI_OK, or CLI_FAIL
 * after saying why.
 */
int	cli_emit(const char *cmd, const struct pv_buf *b);
/* cli_emit of a document built with the JSON writer, once it is whole. */
int	cli_emit_json(const char *cmd, const struct pv_json *j);
/*
 * A member whose value is v with the given number of decimals ("%.3f"):
 * the JSON writer's own doubles print every digit, the CLI's lines round.
 */
void	cli_json_fixed(struct pv_json *j, const char *key, double v,
	    int decimals);

/* Sub-commands, and their option tables. */
int	cmd_init(int argc, char **argv);
int	cmd_put(int argc, char **argv);
int	cmd_get(int argc, char **argv);
int	cmd_lookup(int argc, char **argv);
int	cmd_serve(int argc, char **argv);
int	cmd_shred(int argc, char **argv);
int	cmd_compact(int argc, char **argv);
/* backup --to FILE: a group (cli_backup_cmds) with a command of its own. */
int	cmd_backup(int argc, char **argv);
extern const struct option cli_backup_opts[];
extern const struct option cli_init_opts[], cli_serve_opts[],
	    cli_shred_opts[];
/* The groups' subcommands. */
extern const struct cli_cmd cli_kms_cmds[], cli_receipt_cmds[],
	    cli_audit_cmds[], cli_retention_cmds[], cli_apikey_cmds[],
	    cli_backup_cmds[];

/*
 * Public keys given on a command line (--public-key [V=]pvpub_…, from
 * GET /v1/keys/signing or kms public-key): each for signatures of version
 * V, or of any version.  cli_keyset_add takes one (CLI_OK, or CLI_USAGE
 * after saying why, naming cmd); cli_keyset_check checks a signature by
 * version ver with each key that fits: PV_OK if one verifies it,
 * PV_ENOTFOUND if none is for ver, else PV_EINTEGRITY.
 */
#define CLI_KEYS_MAX	64
struct cli_keyset {
	struct vault_signing_key	 k[CLI_KEYS_MAX];
	int				 any[CLI_KEYS_MAX];
	size_t				 n;
};
int	cli_keyset_add(struct cli_keyset *ks, const char *cmd,
	    const char *val);
pv_status cli_keyset_check(const struct cli_keyset *ks, uint32_t ver,
	    pv_status (*check)(const void *arg,
	    const uint8_t pub[static PV_ED25519_LEN]), const void *arg);

/* Parse a whole decimal number in [min, max]; CLI_USAGE otherwise. */
int	cli_number(const char *cmd, const char *what, const char *s,
	    unsigned long long min, unsigned long long max,
	    unsigned long long *out);

/*
 * piivault-test only (set by tools/main.c under PV_TEST_HOOKS from
 * PIIVAULT_TEST_ARCHIVE_BATCH and PIIVAULT_TEST_ARCHIVE_KILL): audit
 * archive removes this many events a commit (0: its default), and is
 * killed (SIGKILL) after this many commits (0: never), as a crash would.
 */
extern unsigned long long cli_test_archive_batch;
extern unsigned long long cli_test_archive_kill;
/*
 * piivault-test only (PIIVAULT_TEST_BACKUP_KILL=1): backup is killed
 * (SIGKILL) once its first piece of data is written, as a crash would.
 */
extern unsigned long long cli_test_backup_kill;

/* The whole program, for main() and the tests. */
int	cli_main(int argc, char **argv);

#endif /* CLI_INT_H */
