/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_shred.c: piivault shred.
 */
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

enum { O_FROMFILE = CLI_OPT_OWN, O_REASON };

struct shred_opts {
	const char	*from_file;
	const char	*reason;
};

static int
shred_opt(void *arg, int ch, const char *val)
{
	struct shred_opts *o = arg;

	if (ch == O_FROMFILE)
		o->from_file = val;
	else if (ch == O_REASON)
		o->reason = val;
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
	struct pv_json j;
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
		pv_json_init(&j, &b);
		api_json_receipt(&j, &out[i]);
		if ((rc = pv_json_end(&j)) != PV_OK) {
			r = cli_fail("shred", NULL, rc);
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

const struct option cli_shred_opts[] = {
	CLI_OPTS_VAULT,
	{ "from-file", required_argument, NULL, O_FROMFILE | CLI_OPT_ONCE },
	{ "reason", required_argument, NULL, O_REASON | CLI_OPT_ONCE },
	CLI_OPT_END,
};

int
cmd_shred(int argc, char **argv)
{
	struct shred_opts o = { NULL, "request" };
	struct cli_own own = { shred_opt, &o,
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
	    "harmless.  The bytes leave the data file with piivault compact;\n"
	    "backups made before keep them until their root key is gone\n"
	    "(SECURITY.md, crypto-shredding).\n", &own)) !=
	    CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first == argc && o.from_file == NULL)
		return cli_usage("shred", "no record id given");
	if (o.from_file != NULL && (f = cli_fopen(o.from_file)) == NULL)
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
		n++;
		if (n == VAULT_BATCH_MAX) {
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
	cli_fclose(f);
	vault_close(v);
	return r;
}
