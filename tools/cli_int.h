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

struct cli_cmd {
	const char	*name;
	int		(*fn)(int argc, char **argv);
	const char	*help;
};

/* Where a path option's value came from, for messages that name it. */
enum cli_from { CLI_FROM_DEFAULT, CLI_FROM_ENV, CLI_FROM_OPTION };

/* The options cli_parse itself handles, for the commands that take them. */
struct cli_common {
	const char	*data_dir;
	const char	*key_file;
	enum cli_from	 data_dir_from;
	enum cli_from	 key_file_from;
	int		 passphrase;	/* init: use a passphrase root */
	int		 json;		/* machine-readable output */
};

/*
 * A command's options are one table of getopt_long entries (struct
 * option: name, has_arg, NULL, val), ended by CLI_OPT_END, that lists
 * every option it takes and no other.  The shared ones below are handled
 * by cli_parse into struct cli_common; a command's own options have a val
 * of at least CLI_OPT_OWN and go to its fn with their argument; fn
 * returns CLI_OK or CLI_USAGE (after saying why).  --help is taken by
 * every command and is not listed.
 */
enum { CLI_O_DATA_DIR = 256, CLI_O_KEY_FILE, CLI_O_PASSPHRASE, CLI_O_JSON };
#define CLI_OPT_OWN	512
/* Or'ed into an own option's val: it may be given more than once. */
#define CLI_OPT_REPEAT	0x10000
#define CLI_OPT_DATA_DIR \
	{ "data-dir", required_argument, NULL, CLI_O_DATA_DIR }
#define CLI_OPT_KEY_FILE \
	{ "key-file", required_argument, NULL, CLI_O_KEY_FILE }
#define CLI_OPT_PASSPHRASE \
	{ "passphrase", no_argument, NULL, CLI_O_PASSPHRASE }
#define CLI_OPT_JSON	{ "json", no_argument, NULL, CLI_O_JSON }
#define CLI_OPT_END	{ NULL, 0, NULL, 0 }
/* What every command that opens the vault takes. */
#define CLI_OPTS_VAULT	CLI_OPT_DATA_DIR, CLI_OPT_KEY_FILE

struct cli_own {
	const struct option	*opts;	/* the table; see above */
	int			(*fn)(void *arg, int ch, const char *val);
	void			*arg;
	const char		*help;	/* lines for --help */
};

/*
 * Parse argv (argv[0] is the command's name) against own->opts, or, if
 * own is NULL, CLI_OPTS_VAULT alone; leave the operands, in their order,
 * in argv[*first..argc-1].  Options and operands may be mixed; "--" ends
 * the options; "-" is an operand.  An option must be spelled whole
 * (no abbreviations), at most once (unless its val has CLI_OPT_REPEAT); a value follows as "--opt=V" or as
 * the next argument.  Anything else is refused with CLI_USAGE and a line
 * naming the option and the command (never an option's value or an
 * operand, which may be personal data).  usage is printed with --help.
 * Returns CLI_OK, CLI_USAGE, CLI_FAIL (out of memory), or -1 when --help
 * was printed and the caller should exit 0.
 */
int	cli_parse(int argc, char **argv, struct cli_common *c, int *first,
	    const char *usage, const struct cli_own *own);

/*
 * The command being run, whole ("kms rewrap"), for messages: set by
 * cli_main and cli_dispatch before the command's function is called.
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

/* Run the sub-command of a group ("kms", "apikey") named by argv[1]. */
int	cli_dispatch(const char *group, const struct cli_cmd *cmds, size_t n,
	    int argc, char **argv);

/* Sub-commands. */
int	cmd_init(int argc, char **argv);
int	cmd_put(int argc, char **argv);
int	cmd_get(int argc, char **argv);
int	cmd_lookup(int argc, char **argv);
int	cmd_kms(int argc, char **argv);
int	cmd_serve(int argc, char **argv);
int	cmd_shred(int argc, char **argv);
int	cmd_compact(int argc, char **argv);
int	cmd_receipt(int argc, char **argv);
int	cmd_audit(int argc, char **argv);
int	cmd_retention(int argc, char **argv);
int	cmd_apikey(int argc, char **argv);

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

/* The whole program, for main() and the tests. */
int	cli_main(int argc, char **argv);

#endif /* CLI_INT_H */
