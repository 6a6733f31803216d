/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_receipt.c: piivault receipt SUBCOMMAND: checking shred receipts.
 */
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

enum { O_PUBKEY = CLI_OPT_OWN };

/* --public-key [V=]pvpub_…: for receipts of version V, or for any. */
static int
receipt_opt(void *arg, int ch, const char *val)
{
	if (ch != O_PUBKEY)
		return CLI_OK;
	return cli_keyset_add(arg, "receipt verify", val);
}

static pv_status
receipt_check(const void *arg, const uint8_t pub[static PV_ED25519_LEN])
{
	return vault_receipt_verify(arg, pub);
}

/*
 * Check r with the keys for the version it names, given or the vault's:
 * PV_OK if one verifies it, PV_ENOTFOUND if none is for that version,
 * else PV_EINTEGRITY.
 */
static pv_status
check_one(const struct cli_keyset *ks, const struct vault_signing_key *vk,
    size_t nvk, const struct vault_receipt *r)
{
	uint32_t ver = vault_receipt_key_version(r);
	pv_status rc;

	if ((rc = cli_keyset_check(ks, ver, receipt_check, r)) == PV_OK)
		return PV_OK;
	for (size_t i = 0; i < nvk; i++) {
		if (vk[i].version != ver)
			continue;
		if (vault_receipt_verify(r, vk[i].pub) == PV_OK)
			return PV_OK;
		rc = PV_EINTEGRITY;
	}
	return rc;
}

static int
receipt_verify(int argc, char **argv)
{
	struct cli_keyset ks;
	struct cli_own own = { receipt_opt, &ks,
	    "  --public-key [V=]KEY  a key from GET /v1/keys/signing or "
	    "kms public-key,\n"
	    "                        for receipts of version V (or any); "
	    "repeatable\n" };
	struct vault_signing_key *vk = NULL;
	struct vault_receipt rcpt;
	struct cli_common c;
	struct vault *v = NULL;
	char err[API_ERR_MAX], line[2048], when[CLI_TIME_LEN];
	size_t count = 0, nvk = 0;
	FILE *f;
	pv_status rc;
	int r, first;

	memset(&ks, 0, sizeof(ks));
	if ((r = cli_parse(argc, argv, &c, &first, "receipt verify FILE "
	    "[--public-key [V=]KEY]...\n\nChecks every receipt in FILE (one "
	    "JSON a line, as piivault shred\nprints them) with the public key "
	    "of the signing key version it\nnames: the keys given, which "
	    "need no vault, or else the vault's.\nA receipt without "
	    "signing_key_version was signed by version 1.  Prints\n"
	    "\"ok rec_... shredded at TIME\" a receipt (RFC 3339, UTC).\n",
	    &own)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (argc - first != 1)
		return cli_usage("receipt verify", "expected FILE");
	if (ks.n == 0) {
		if ((r = cli_open(&c, "receipt verify", &v)) != CLI_OK)
			return r;
		rc = vault_signing_keys(v, &vk, &nvk);
		vault_close(v);
		if (rc != PV_OK)
			return cli_fail("receipt verify", NULL, rc);
	}
	if ((f = cli_fopen(argv[first])) == NULL) {
		free(vk);
		return cli_fail("receipt verify", argv[first], PV_EIO);
	}
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
		if ((rc = check_one(&ks, vk, nvk, &rcpt)) != PV_OK) {
			(void)fprintf(stderr, "piivault: receipt verify: "
			    "receipt %zu (%s): %s %u\n", count, rcpt.id,
			    rc == PV_ENOTFOUND ? "no public key for signing key "
			    "version" : "signature does not verify with "
			    "signing key version",
			    vault_receipt_key_version(&rcpt));
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
	free(vk);
	return r;
}

static const struct option receipt_verify_opts[] = {
	/* The vault is opened only when no key is given. */
	CLI_OPTS_VAULT,
	{ "public-key", required_argument, NULL,
	    O_PUBKEY | CLI_OPT_REPEAT | CLI_OPT_ONCE },
	CLI_OPT_END,
};

const struct cli_cmd cli_receipt_cmds[] = {
	{ "verify", receipt_verify, "check receipts against the signing keys",
	    receipt_verify_opts, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};
