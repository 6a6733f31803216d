/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_lookup.c: piivault lookup.
 */
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

int
cmd_lookup(int argc, char **argv)
{
	const struct cli_start start = { "lookup",
	    "lookup FIELD VALUE\n\n"
	    "Finds records whose FIELD (email or phone) equals VALUE after\n"
	    "normalization, and prints {\"matches\":[{\"id\":...,"
	    "\"token\":...}]}.", NULL, 2, "expected FIELD and VALUE" };
	struct cli_common c;
	struct pv_buf out;
	struct pv_json j;
	struct vault_match *m = NULL;
	struct vault *v = NULL;
	size_t n = 0;
	pv_status rc;
	int r, first;

	if ((r = cli_begin(&start, argc, argv, &c, &first, &v)) !=
	    CLI_OK || v == NULL)
		return r;
	pv_buf_init(&out, (size_t)VAULT_LOOKUP_MAX * 128 + 64);
	if ((rc = vault_lookup(v, argv[first], strlen(argv[first]),
	    argv[first + 1], strlen(argv[first + 1]), &m, &n)) != PV_OK) {
		r = cli_fail("lookup", rc == PV_EVALUE ? argv[first] : NULL,
		    rc);
		goto out;
	}
	pv_json_init(&j, &out);
	pv_json_obj(&j);
	pv_json_key(&j, "matches");
	pv_json_arr(&j);
	for (size_t i = 0; i < n; i++) {
		pv_json_obj(&j);
		pv_json_kstr(&j, "id", m[i].id);
		pv_json_kstr(&j, "token", m[i].token);
		pv_json_close(&j);
	}
	pv_json_close(&j);
	pv_json_close(&j);
	r = cli_emit_json("lookup", &j);
out:
	free(m);
	pv_buf_cleanup(&out);
	vault_close(v);
	return r;
}
