/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_init.c: piivault init.
 */
#include <unistd.h>

#include "cli_int.h"

const struct option cli_init_opts[] = {
	CLI_OPTS_VAULT, CLI_OPT_PASSPHRASE, CLI_OPT_END,
};

int
cmd_init(int argc, char **argv)
{
	struct cli_pass twice = { "PIIVAULT_PASSPHRASE", NULL, 1 };
	struct cli_common c;
	struct vault_opts o;
	struct vault *v = NULL;
	pv_status rc;
	int r, first, made_key = 0;

	if ((r = cli_parse(argc, argv, &c, &first, "init [--passphrase]\n\n"
	    "Creates the data directory, the root key file (mode 0600)\n"
	    "unless --passphrase is given, and the first key of each kind.\n"
	    "Refuses to overwrite an existing vault or key file.\n", NULL)) !=
	    CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("init", "unexpected argument");
	cli_vault_opts(&c, &o);
	if (c.passphrase)
		o.unlock.arg = &twice;	/* a new passphrase is asked twice */
	else {
		if ((rc = vault_key_file_create(c.key_file)) != PV_OK)
			return cli_path_fail(&c, "init", 1, rc == PV_EEXIST ?
			    "already exists; init never overwrites one" :
			    !cli_parent_exists(c.key_file) ? "cannot be "
			    "created: the directory it would be in does not "
			    "exist" : pv_strerror(rc));
		made_key = 1;
	}
	if ((rc = vault_create(&o, &v)) != PV_OK) {
		/* Leave nothing behind that a retry would trip over. */
		if (made_key && unlink(c.key_file) != 0)
			pv_log(PV_LOG_WARN, "init: could not remove %s",
			    c.key_file);
		if (rc == PV_EEXIST)
			return cli_path_fail(&c, "init", 0, "already holds a "
			    "vault; init never overwrites one");
		return cli_open_fail(&c, "init", rc);
	}
	vault_close(v);
	if (c.passphrase)
		(void)printf("initialized vault in %s (root key from "
		    "passphrase)\n", c.data_dir);
	else
		(void)printf("initialized vault in %s, root key in %s\n",
		    c.data_dir, c.key_file);
	return CLI_OK;
}
