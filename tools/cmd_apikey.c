/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_apikey.c: piivault apikey SUBCOMMAND: the server's API keys.
 */
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

enum { O_NAME = CLI_OPT_OWN, O_ROLE, O_PURPOSES, O_FIELDLIST, O_REVEAL,
    O_CERT, O_EXPIRES, O_OVERLAP };

/* rotate's default overlap: a day to roll the new secret out. */
#define OVERLAP_HOURS_DEFAULT	24
#define OVERLAP_HOURS_MAX	(VAULT_APIKEY_OVERLAP_MAX / 3600)

struct apikey_opts {
	struct vault_apikey	spec;
	int			have_name, have_role, have_reveal;
	const char		*purposes, *fields;
};

/*
 * The restricting options each role honours, from what the server does
 * with a key (api/server.c, vault/access.c): a reader's detokenize
 * follows its purposes, fields and reveal mode; a writer's look-up its
 * purposes and fields (it is never shown a value, so reveal means
 * nothing to it); an admin's and an auditor's routes read none of the
 * three.  An option its role does not honour is refused, never stored
 * and ignored.  --client-cert-sha256 binds a key of any role.
 */
enum { H_PURPOSES = 1, H_FIELDS = 2, H_REVEAL = 4 };
static const unsigned role_honours[] = {
	[VAULT_ROLE_WRITER] = H_PURPOSES | H_FIELDS,
	[VAULT_ROLE_READER] = H_PURPOSES | H_FIELDS | H_REVEAL,
	[VAULT_ROLE_ADMIN] = 0,
	[VAULT_ROLE_AUDITOR] = 0,
};

/* The value of a hexadecimal digit, or -1. */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * A certificate's SHA-256 as 64 hexadecimal digits, in either case, with
 * any colons ("AB:CD:..." as openssl x509 -fingerprint prints it) left out.
 */
static int
cert_hash_parse(const char *s, uint8_t out[static VAULT_CERT_HASH_LEN])
{
	size_t n = 0;
	int hi = -1, d;

	for (; *s != '\0'; s++) {
		if (*s == ':')
			continue;
		if ((d = hexval(*s)) < 0 || n == VAULT_CERT_HASH_LEN)
			return -1;
		if (hi < 0) {
			hi = d;
			continue;
		}
		out[n++] = (uint8_t)(hi << 4 | d);
		hi = -1;
	}
	return n == VAULT_CERT_HASH_LEN && hi < 0 ? 0 : -1;
}

static int
apikey_opt(void *arg, int ch, const char *val)
{
	struct apikey_opts *a = arg;
	size_t n = strlen(val);

	switch (ch) {
	case O_NAME:
		if (!vault_apikey_name_valid(val, n))
			return cli_usage("apikey create", "--name must match "
			    "[a-z0-9][a-z0-9_.-]{0,63}");
		memcpy(a->spec.name, val, n + 1);
		a->have_name = 1;
		break;
	case O_ROLE:
		if (vault_role_parse(val, n, &a->spec.role) != PV_OK)
			return cli_usage("apikey create", "--role must be "
			    "writer, reader, admin or auditor");
		a->have_role = 1;
		break;
	case O_PURPOSES:
		a->purposes = val;
		break;
	case O_FIELDLIST:
		a->fields = val;
		break;
	case O_REVEAL:
		if (strcmp(val, "plain") == 0)
			a->spec.reveal = VAULT_REVEAL_PLAIN;
		else if (strcmp(val, "masked") == 0)
			a->spec.reveal = VAULT_REVEAL_MASKED;
		else
			return cli_usage("apikey create", "--reveal must be "
			    "plain or masked");
		a->have_reveal = 1;
		break;
	case O_CERT:
		if (cert_hash_parse(val, a->spec.cert_sha256) != 0)
			return cli_usage("apikey create", "--client-cert-sha256 "
			    "must be 64 hexadecimal digits (colons allowed)");
		a->spec.cert_bound = 1;
		break;
	case O_EXPIRES: {
		unsigned long long days;
		int r;

		if ((r = cli_number("apikey create", "--expires-days", val, 1,
		    VAULT_APIKEY_DAYS_MAX, &days)) != CLI_OK)
			return r;
		a->spec.expires_days = (uint32_t)days;
		break;
	}
	}
	return CLI_OK;
}

/* Split a comma list, calling fn on each item; CLI_USAGE on failure. */
static int
each_item(const char *list, int (*fn)(void *arg, const char *s, size_t n),
    void *arg)
{
	const char *p = list, *comma;
	size_t n;

	for (;;) {
		comma = strchr(p, ',');
		if (comma != NULL)
			n = (size_t)(comma - p);
		else
			n = strlen(p);
		if (n == 0 || fn(arg, p, n) != CLI_OK)
			return CLI_USAGE;
		if (comma == NULL)
			return CLI_OK;
		p = comma + 1;
	}
}

static int
add_purpose(void *arg, const char *s, size_t n)
{
	struct vault_apikey *k = arg;
	enum vault_purpose p;

	if (vault_purpose_parse(s, n, &p) != PV_OK)
		return CLI_USAGE;
	k->purposes |= 1u << p;
	return CLI_OK;
}

static int
add_field(void *arg, const char *s, size_t n)
{
	struct vault_apikey *k = arg;

	if (!pv_field_name_valid(s, n) || k->nfields == VAULT_APIKEY_FIELDS_MAX)
		return CLI_USAGE;
	memcpy(k->fields[k->nfields], s, n);
	k->fields[k->nfields][n] = '\0';
	k->nfields++;
	return CLI_OK;
}

/* CLI_USAGE, saying which, for an option the key's role does not honour. */
static int
role_check(const struct apikey_opts *a)
{
	unsigned honours = role_honours[a->spec.role];
	const char *opt = NULL;
	char msg[128];

	if (a->purposes != NULL && (honours & H_PURPOSES) == 0)
		opt = "--purposes";
	else if (a->fields != NULL && (honours & H_FIELDS) == 0)
		opt = "--fields";
	else if (a->have_reveal && (honours & H_REVEAL) == 0)
		opt = "--reveal";
	if (opt == NULL)
		return CLI_OK;
	(void)snprintf(msg, sizeof(msg), "%s does not apply to %s %s key, "
	    "which would ignore it", opt, a->spec.role == VAULT_ROLE_ADMIN ||
	    a->spec.role == VAULT_ROLE_AUDITOR ? "an" : "a",
	    vault_role_name(a->spec.role));
	return cli_usage("apikey create", msg);
}

static int
apikey_create(int argc, char **argv)
{
	struct apikey_opts a;
	struct cli_own own = { apikey_opt, &a,
	    "  --name NAME            the key's name, unique\n"
	    "  --role ROLE            writer, reader, admin or auditor\n"
	    "  --purposes P1,P2       purposes it may state (default "
	    "service): service,\n"
	    "                         notices, marketing, research, contest,"
	    " payment, legal\n"
	    "                         (readers and writers)\n"
	    "  --fields F1,F2|*       fields it may read or look up (default "
	    "*: all)\n"
	    "                         (readers and writers)\n"
	    "  --reveal plain|masked  what a reader sees (default plain; "
	    "readers only)\n"
	    "  --client-cert-sha256 HEX\n"
	    "                         accept the key only with this TLS "
	    "client certificate:\n"
	    "                         the SHA-256 of its DER, 64 hex digits "
	    "(colons allowed)\n"
	    "  --expires-days N       the key stops working N days (1-3650) "
	    "after it is made,\n"
	    "                         and N days after each rotation "
	    "(default: never)\n"
	    "An admin or auditor key takes none of --purposes, --fields and "
	    "--reveal,\nwhich its routes would not honour.\n" };
	char secret[VAULT_APIKEY_SECRET_LEN + 1];
	struct cli_common c;
	struct vault *v = NULL;
	pv_status rc;
	int r, first;

	memset(&a, 0, sizeof(a));
	a.spec.reveal = VAULT_REVEAL_PLAIN;
	if ((r = cli_parse(argc, argv, &c, &first, "apikey create --name NAME "
	    "--role ROLE [OPTIONS]\n\nCreates an API key and prints its "
	    "secret, the only time it is shown.\n", &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("apikey create", "unexpected argument");
	if (!a.have_name || !a.have_role)
		return cli_usage("apikey create", "--name and --role are "
		    "required");
	if ((r = role_check(&a)) != CLI_OK)
		return r;
	if ((role_honours[a.spec.role] & H_PURPOSES) != 0 &&
	    each_item(a.purposes ? a.purposes : "service", add_purpose,
	    &a.spec) != CLI_OK)
		return cli_usage("apikey create", "--purposes: unknown "
		    "purpose");
	if (a.fields != NULL && strcmp(a.fields, "*") != 0 &&
	    each_item(a.fields, add_field, &a.spec) != CLI_OK)
		return cli_usage("apikey create", "--fields: invalid field "
		    "name, or more than 32");
	if ((r = cli_open(&c, "apikey create", &v)) != CLI_OK)
		return r;
	rc = vault_apikey_create(v, &a.spec, secret);
	vault_close(v);
	if (rc != PV_OK)
		return cli_fail("apikey create", rc == PV_EEXIST ? a.spec.name :
		    NULL, rc);
	(void)printf("%s\n", secret);
	pv_cleanse(secret, sizeof(secret));
	return fflush(stdout) == 0 ? CLI_OK :
	    cli_fail("apikey create", "stdout", PV_EIO);
}

static const char *
reveal_name(const struct vault_apikey *k)
{
	return k->reveal == VAULT_REVEAL_MASKED ? "masked" : "plain";
}

/*
 * A secret's state at now: revoked; expired (its lifetime over, or an old
 * secret of a rotation past its overlap); rotated (an old secret still in
 * its overlap); or active.
 */
static const char *
key_state(const struct vault_apikey *k, uint64_t now)
{
	if (k->revoked != 0)
		return "revoked";
	if (!vault_apikey_live(k, now))
		return "expired";
	return k->replaced_until != 0 ? "rotated" : "active";
}

/* When a secret stops working by itself: 0 never. */
static uint64_t
key_end(const struct vault_apikey *k)
{
	if (k->replaced_until != 0 && (k->expires == 0 ||
	    k->replaced_until < k->expires))
		return k->replaced_until;
	return k->expires;
}

/* A time in seconds since the epoch, or JSON null for 0 (never). */
static void
json_time_or_null(struct pv_json *j, const char *key, uint64_t t)
{
	pv_json_key(j, key);
	if (t == 0)
		pv_json_null(j);
	else
		pv_json_u64(j, t);
}

/* The keys as one JSON array. */
static int
apikey_list_json(const struct vault_apikey *keys, size_t n, uint64_t now)
{
	char hex[2 * VAULT_CERT_HASH_LEN + 1];
	struct pv_buf b;
	struct pv_json j;
	int r;

	pv_buf_init(&b, (n + 1) * 4096);
	pv_json_init(&j, &b);
	pv_json_arr(&j);
	for (size_t i = 0; i < n; i++) {
		const struct vault_apikey *k = &keys[i];

		pv_json_obj(&j);
		pv_json_kstr(&j, "name", k->name);
		pv_json_kstr(&j, "role", vault_role_name(k->role));
		pv_json_kstr(&j, "reveal", reveal_name(k));
		pv_json_kbool(&j, "revoked", k->revoked != 0);
		pv_json_kstr(&j, "state", key_state(k, now));
		pv_json_ku64(&j, "created", k->created);
		json_time_or_null(&j, "expires", k->expires);
		pv_json_key(&j, "expires_days");
		if (k->expires_days != 0)
			pv_json_u64(&j, k->expires_days);
		else
			pv_json_str_or_null(&j, NULL);
		json_time_or_null(&j, "replaced_until", k->replaced_until);
		/* A certificate's hash is public: shown whole, to compare. */
		pv_json_key(&j, "client_cert_sha256");
		if (k->cert_bound) {
			pv_hex_encode(hex, k->cert_sha256, VAULT_CERT_HASH_LEN);
			pv_json_str(&j, hex);
		} else
			pv_json_str_or_null(&j, NULL);
		pv_json_key(&j, "purposes");
		pv_json_arr(&j);
		for (int p = 0; p < VAULT_P__COUNT; p++)
			if (k->purposes & (1u << p))
				pv_json_str(&j,
				    vault_purpose_name((enum vault_purpose)p));
		pv_json_close(&j);
		pv_json_key(&j, "fields");
		pv_json_arr(&j);
		if (k->nfields == 0)
			pv_json_str(&j, "*");
		for (size_t f = 0; f < k->nfields; f++)
			pv_json_str(&j, k->fields[f]);
		pv_json_close(&j);
		pv_json_close(&j);
	}
	pv_json_close(&j);
	r = cli_emit_json("apikey list", &j);
	pv_buf_cleanup(&b);
	return r;
}

/* The keys as a table, a line each. */
static int
apikey_list_table(const struct vault_apikey *keys, size_t n, uint64_t now)
{
	char when[CLI_TIME_LEN], until[CLI_TIME_LEN];
	char hex[2 * VAULT_CERT_HASH_LEN + 1];

	(void)printf("%-20s %-8s %-7s %-9s %-20s %-20s %-16s %s\n", "name",
	    "role", "reveal", "state", "created", "until", "client cert",
	    "purposes / fields");
	for (size_t i = 0; i < n; i++) {
		const struct vault_apikey *k = &keys[i];
		const char *sep = "";

		cli_time(when, k->created);
		if (key_end(k) != 0)
			cli_time(until, key_end(k));
		else
			memcpy(until, "-", 2);
		/* The first 16 hex digits of a bound key's certificate hash. */
		memcpy(hex, "-", 2);
		if (k->cert_bound) {
			pv_hex_encode(hex, k->cert_sha256, 8);
		}
		(void)printf("%-20s %-8s %-7s %-9s %-20s %-20s %-16s ", k->name,
		    vault_role_name(k->role), reveal_name(k), key_state(k, now),
		    when, until, hex);
		for (int p = 0; p < VAULT_P__COUNT; p++) {
			if ((k->purposes & (1u << p)) == 0)
				continue;
			(void)printf("%s%s", sep,
			    vault_purpose_name((enum vault_purpose)p));
			sep = ",";
		}
		(void)printf(" / ");
		if (k->nfields == 0)
			(void)printf("*");
		for (size_t f = 0; f < k->nfields; f++)
			(void)printf("%s%s", f > 0 ? "," : "", k->fields[f]);
		(void)printf("\n");
	}
	if (fflush(stdout) != 0)
		return cli_fail("apikey list", "stdout", PV_EIO);
	return CLI_OK;
}

static int
apikey_list(int argc, char **argv)
{
	const struct cli_start start = { "apikey list",
	    "apikey list [--json]\n\n"
	    "Lists API keys, a line a secret: name, role, reveal, state\n"
	    "(active; rotated: an old secret still in its overlap; expired;\n"
	    "revoked), created, until (when it stops by itself: its expiry,\n"
	    "or its overlap's end), purposes, fields: times in RFC 3339, UTC\n"
	    "(seconds since the epoch with --json).  Secrets are never\n"
	    "shown.\n", NULL, 0, "unexpected argument" };
	struct vault_apikey *keys = NULL;
	struct cli_common c;
	struct vault *v = NULL;
	size_t n = 0;
	pv_status rc;
	int r, first;

	if ((r = cli_begin(&start, argc, argv, &c, &first, &v)) !=
	    CLI_OK || v == NULL)
		return r;
	rc = vault_apikey_list(v, &keys, &n);
	vault_close(v);
	if (rc != PV_OK)
		return cli_fail("apikey list", NULL, rc);
	if (c.json)
		r = apikey_list_json(keys, n, pv_now());
	else
		r = apikey_list_table(keys, n, pv_now());
	free(keys);
	return r;
}

static int
apikey_revoke(int argc, char **argv)
{
	const struct cli_start start = { "apikey revoke",
	    "apikey revoke NAME\n\n"
	    "Revokes a key at once, for a running server too: every secret\n"
	    "of it, the old one of a rotation too.\n", NULL, 1,
	    "expected NAME" };
	struct cli_common c;
	struct vault *v = NULL;
	pv_status rc;
	int r, first;

	if ((r = cli_begin(&start, argc, argv, &c, &first, &v)) !=
	    CLI_OK || v == NULL)
		return r;
	rc = vault_apikey_revoke(v, argv[first]);
	vault_close(v);
	if (rc != PV_OK)
		return cli_fail("apikey revoke", argv[first], rc);
	(void)printf("revoked %s\n", argv[first]);
	return CLI_OK;
}

static int
apikey_rotate_opt(void *arg, int ch, const char *val)
{
	unsigned long long *hours = arg;

	if (ch != O_OVERLAP)
		return CLI_OK;
	return cli_number("apikey rotate", "--overlap-hours", val, 0,
	    OVERLAP_HOURS_MAX, hours);
}

static int
apikey_rotate(int argc, char **argv)
{
	unsigned long long hours = OVERLAP_HOURS_DEFAULT;
	struct cli_own own = { apikey_rotate_opt, &hours,
	    "  --overlap-hours H  the old secret keeps working H hours "
	    "(0-720; default 24;\n"
	    "                     0: it stops at once)\n" };
	char secret[VAULT_APIKEY_SECRET_LEN + 1];
	struct cli_common c;
	struct vault *v = NULL;
	pv_status rc;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "apikey rotate NAME "
	    "[--overlap-hours H]\n\nIssues a new secret for key NAME and "
	    "prints it, the only time it is\nshown.  The key keeps its name, "
	    "role, purposes, fields, reveal mode,\ncertificate binding and "
	    "lifetime (--expires-days counts again from\nnow).  The old "
	    "secret works H hours more, then gets 401 as an unknown\nkey.  "
	    "Revoking the key revokes both.\n", &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (argc - first != 1)
		return cli_usage("apikey rotate", "expected NAME");
	if ((r = cli_open(&c, "apikey rotate", &v)) != CLI_OK)
		return r;
	rc = vault_apikey_rotate(v, argv[first], hours * 3600, secret);
	vault_close(v);
	if (rc != PV_OK)
		return cli_fail("apikey rotate", rc == PV_EKEYSTATE ?
		    "the key is revoked" : argv[first], rc);
	(void)printf("%s\n", secret);
	pv_cleanse(secret, sizeof(secret));
	return fflush(stdout) == 0 ? CLI_OK :
	    cli_fail("apikey rotate", "stdout", PV_EIO);
}

/* Every option of these names one key or one run: none is a setting. */
#define AK_OPT(name, val) \
	{ name, required_argument, NULL, (val) | CLI_OPT_ONCE }

static const struct option apikey_create_opts[] = {
	CLI_OPTS_VAULT,
	AK_OPT("name", O_NAME),
	AK_OPT("role", O_ROLE),
	AK_OPT("purposes", O_PURPOSES),
	AK_OPT("fields", O_FIELDLIST),
	AK_OPT("reveal", O_REVEAL),
	AK_OPT("client-cert-sha256", O_CERT),
	AK_OPT("expires-days", O_EXPIRES),
	CLI_OPT_END,
};
static const struct option apikey_list_opts[] = {
	CLI_OPTS_VAULT, CLI_OPT_JSON, CLI_OPT_END,
};
static const struct option apikey_rotate_opts[] = {
	CLI_OPTS_VAULT, AK_OPT("overlap-hours", O_OVERLAP), CLI_OPT_END,
};

const struct cli_cmd cli_apikey_cmds[] = {
	{ "create", apikey_create, "create a key and print its secret",
	    apikey_create_opts, NULL },
	{ "list", apikey_list, "list keys (never their secrets)",
	    apikey_list_opts, NULL },
	{ "revoke", apikey_revoke, "revoke a key at once", cli_opts_vault,
	    NULL },
	{ "rotate", apikey_rotate, "issue a new secret; the old one works "
	    "for an overlap", apikey_rotate_opts, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};
