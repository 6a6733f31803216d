/*
 * cmd_receipt.c: piivault receipt SUBCOMMAND: checking shred receipts.
 */
#include <string.h>

#include "cli_int.h"

enum { O_PUBKEY = CLI_OPT_OWN };

static int
receipt_opt(void *arg, int ch, const char *val)
{
	const char **pubkey = arg;

	if (ch == O_PUBKEY)
		*pubkey = val;
	return CLI_OK;
}

static int
receipt_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		/* It needs no vault: no --data-dir, no --key-file. */
		{ "public-key", required_argument, NULL, O_PUBKEY },
		CLI_OPT_END,
	};
	const char *pubkey = NULL;
	struct cli_own own = { opts, receipt_opt, &pubkey,
	    "  --public-key KEY the vault's key (piivault kms public-key)\n" };
	uint8_t pub[PV_ED25519_LEN];
	struct vault_receipt rcpt;
	struct cli_common c;
	char err[API_ERR_MAX], line[2048], when[CLI_TIME_LEN];
	size_t count = 0;
	FILE *f;
	pv_status rc;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "receipt verify FILE "
	    "--public-key KEY\n\nChecks every receipt in FILE (one JSON a line, "
	    "as piivault shred\nprints them) against the vault's public key; "
	    "needs no vault.  Prints\n\"ok rec_... shredded at TIME\" a "
	    "receipt (RFC 3339, UTC).\n", &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (argc - first != 1 || pubkey == NULL)
		return cli_usage("receipt verify", "expected FILE and "
		    "--public-key");
	if (api_pubkey_decode(pub, pubkey, strlen(pubkey)) != PV_OK)
		return cli_usage("receipt verify", "--public-key is not a "
		    "pvpub_ key");
	if ((f = cli_fopen(argv[first])) == NULL)
		return cli_fail("receipt verify", argv[first], PV_EIO);
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
		cli_time(when, rcpt.shredded_at);
		(void)printf("ok %s shredded at %s\n", rcpt.id, when);
	}
	if (r == CLI_OK && count == 0)
		r = cli_fail("receipt verify", argv[first], PV_EJSON);
	else if (r == CLI_OK && ferror(f))
		r = cli_fail("receipt verify", argv[first], PV_EIO);
	cli_fclose(f);
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
