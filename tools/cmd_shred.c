/*
 * cmd_shred.c: piivault shred, compact and receipt.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

enum { O_FROMFILE = CLI_OPT_OWN, O_REASON, O_PUBKEY };

struct shred_opts {
	const char	*from_file;
	const char	*reason;
	const char	*pubkey;
};

static int
shred_opt(void *arg, int ch, const char *val)
{
	struct shred_opts *o = arg;

	if (ch == O_FROMFILE)
		o->from_file = val;
	else if (ch == O_REASON)
		o->reason = val;
	else if (ch == O_PUBKEY)
		o->pubkey = val;
	return CLI_OK;
}

/* Shred one chunk of ids, printing a receipt or an error for each. */
static int
shred_chunk(struct vault *v, char **ids, size_t n, const char *reason,
    size_t *failed)
{
	struct vault_receipt *out;
	pv_status *st, rc;
	size_t *lens;
	struct pv_buf b;
	int r = CLI_OK;

	out = calloc(n, sizeof(*out));
	st = calloc(n, sizeof(*st));
	lens = calloc(n, sizeof(*lens));
	if (out == NULL || st == NULL || lens == NULL) {
		r = cli_fail("shred", NULL, PV_ENOMEM);
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(ids[i]);
	if ((rc = vault_shred(v, (const char *const *)ids, lens, n, reason,
	    out, st)) != PV_OK) {
		r = cli_fail("shred", rc == PV_EVALUE ? "--reason must be 1 "
		    "to 200 characters without control characters" : NULL,
		    rc);
		goto done;
	}
	pv_buf_init(&b, 4096);
	for (size_t i = 0; i < n; i++) {
		if (st[i] != PV_OK) {
			(*failed)++;
			(void)fprintf(stderr, "piivault: shred: %.*s: %s\n",
			    (int)(lens[i] > 40 ? 40 : lens[i]), ids[i],
			    pv_strerror(st[i]));
			continue;
		}
		pv_buf_cleanup(&b);
		if (api_json_receipt(&b, &out[i]) != PV_OK) {
			r = cli_fail("shred", NULL, PV_ENOMEM);
			break;
		}
		(void)printf("%s\n", b.p);
	}
	pv_buf_cleanup(&b);
done:
	free(out);
	free(st);
	free(lens);
	return r;
}

int
cmd_shred(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from-file", required_argument, NULL, O_FROMFILE },
		{ "reason", required_argument, NULL, O_REASON },
		{ NULL, 0, NULL, 0 },
	};
	struct shred_opts o = { NULL, "request", NULL };
	struct cli_own own = { opts, shred_opt, &o,
	    "  --from-file F    ids to shred, one a line ('-' for stdin)\n"
	    "  --reason TEXT    why (default \"request\"); never personal "
	    "data\n" };
	struct cli_common c;
	struct vault *v = NULL;
	char *ids[VAULT_BATCH_MAX], line[256];
	size_t n = 0, failed = 0, total = 0;
	FILE *f = NULL;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "shred [rec_...] "
	    "[--from-file F] [--reason TEXT]\n\nCrypto-shreds records: their "
	    "DEKs, ciphertexts, index entries and token\nmappings go in one "
	    "transaction; a tombstone without personal data\nstays.  Prints "
	    "one signed receipt (JSON) a record.  Shredding twice is\n"
	    "harmless.  The bytes leave the data file with piivault compact,\n"
	    "and every backup with piivault kms shred-epoch.\n", &own)) !=
	    CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first == argc && o.from_file == NULL)
		return cli_usage("shred", "no record id given");
	if (o.from_file != NULL && (f = strcmp(o.from_file, "-") == 0 ? stdin :
	    fopen(o.from_file, "r")) == NULL)
		return cli_fail("shred", o.from_file, PV_EIO);
	if ((r = cli_open(&c, "shred", &v)) != CLI_OK)
		goto out;
	for (int i = first; i < argc; i++) {
		ids[n++] = argv[i];
		if (n == VAULT_BATCH_MAX) {
			if ((r = shred_chunk(v, ids, n, o.reason, &failed)) !=
			    CLI_OK)
				goto out;
			total += n;
			n = 0;
		}
	}
	if ((r = shred_chunk(v, ids, n, o.reason, &failed)) != CLI_OK)
		goto out;
	total += n;
	n = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		size_t len = strcspn(line, "\r\n");

		line[len] = '\0';
		if (len == 0)
			continue;
		if ((ids[n] = strdup(line)) == NULL) {
			r = cli_fail("shred", NULL, PV_ENOMEM);
			goto out;
		}
		if (++n == VAULT_BATCH_MAX) {
			r = shred_chunk(v, ids, n, o.reason, &failed);
			total += n;
			while (n > 0)
				free(ids[--n]);
			if (r != CLI_OK)
				goto out;
		}
	}
	if (f != NULL && ferror(f)) {
		r = cli_fail("shred", o.from_file, PV_EIO);
		goto out;
	}
	if (n > 0)
		r = shred_chunk(v, ids, n, o.reason, &failed);
	total += n;
	if (r == CLI_OK && failed > 0) {
		(void)fprintf(stderr, "piivault: shred: %zu of %zu not "
		    "shredded\n", failed, total);
		r = CLI_FAIL;
	}
out:
	if (f != NULL)
		while (n > 0)
			free(ids[--n]);
	if (f != NULL && f != stdin)
		(void)fclose(f);
	vault_close(v);
	return r;
}

int
cmd_compact(int argc, char **argv)
{
	struct cli_common c;
	struct vault_opts vo;
	uint64_t before = 0, after = 0;
	pv_status rc;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "compact\n\nRewrites the "
	    "data file with live data only, so that the freed pages\nthat "
	    "still hold shredded bytes are gone.  Crash-safe: the old file\n"
	    "stays until the new one is complete and synced.  Needs the vault\n"
	    "to itself: stop the server first.\n", NULL)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("compact", "unexpected argument");
	cli_vault_opts(&c, &vo);
	if ((rc = vault_compact(&vo, &before, &after)) != PV_OK)
		return cli_fail("compact", rc == PV_ENOVAULT ? c.data_dir :
		    NULL, rc);
	(void)printf("compacted %s: %llu -> %llu bytes\n", c.data_dir,
	    (unsigned long long)before, (unsigned long long)after);
	return CLI_OK;
}

static int
receipt_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "public-key", required_argument, NULL, O_PUBKEY },
		{ NULL, 0, NULL, 0 },
	};
	struct shred_opts o = { NULL, NULL, NULL };
	struct cli_own own = { opts, shred_opt, &o,
	    "  --public-key KEY the vault's key (piivault kms public-key)\n" };
	uint8_t pub[PV_ED25519_LEN];
	struct vault_receipt rcpt;
	struct cli_common c;
	struct pv_buf b;
	char err[API_ERR_MAX], line[2048];
	size_t count = 0;
	FILE *f;
	pv_status rc;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "receipt verify FILE "
	    "--public-key KEY\n\nChecks every receipt in FILE (one JSON a line, "
	    "as piivault shred\nprints them) against the vault's public key; "
	    "needs no vault.\n", &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (argc - first != 1 || o.pubkey == NULL)
		return cli_usage("receipt verify", "expected FILE and "
		    "--public-key");
	if (api_pubkey_decode(pub, o.pubkey, strlen(o.pubkey)) != PV_OK)
		return cli_usage("receipt verify", "--public-key is not a "
		    "pvpub_ key");
	if ((f = strcmp(argv[first], "-") == 0 ? stdin :
	    fopen(argv[first], "r")) == NULL)
		return cli_fail("receipt verify", argv[first], PV_EIO);
	pv_buf_init(&b, 1);
	r = CLI_OK;
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strcspn(line, "\r\n");

		if (len == 0)
			continue;
		count++;
		if ((rc = api_receipt_parse(line, len, &rcpt, err)) != PV_OK) {
			(void)fprintf(stderr, "piivault: receipt verify: "
			    "receipt %zu: %s: %s\n", count, pv_strerror(rc),
			    err);
			r = CLI_FAIL;
			break;
		}
		if ((rc = vault_receipt_verify(&rcpt, pub)) != PV_OK) {
			(void)fprintf(stderr, "piivault: receipt verify: "
			    "receipt %zu (%s): signature does not verify\n",
			    count, rcpt.id);
			r = CLI_FAIL;
			break;
		}
		(void)printf("ok %s shredded at %llu\n", rcpt.id,
		    (unsigned long long)rcpt.shredded_at);
	}
	if (r == CLI_OK && (ferror(f) || count == 0)) {
		r = cli_fail("receipt verify", argv[first], count == 0 ?
		    PV_EJSON : PV_EIO);
	}
	if (f != stdin)
		(void)fclose(f);
	return r;
}

static const struct cli_cmd receipt_commands[] = {
	{ "verify", receipt_verify, "check receipts against a public key" },
};

int
cmd_receipt(int argc, char **argv)
{
	return cli_dispatch("receipt", receipt_commands,
	    sizeof(receipt_commands) / sizeof(receipt_commands[0]), argc, argv);
}
