/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_compact.c: piivault compact.
 */
#include "cli_int.h"

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
		return rc == PV_ENOVAULT || rc == PV_EDIRPERM ||
		    rc == PV_ENOTDIR || rc == PV_ENOTFOUND || rc == PV_EKEYPERM ||
		    rc == PV_EKEYFORMAT ? cli_open_fail(&c, "compact", rc) :
		    cli_fail("compact", NULL, rc);
	(void)printf("compacted %s: %llu -> %llu bytes\n", c.data_dir,
	    (unsigned long long)before, (unsigned long long)after);
	return CLI_OK;
}
