/*
 * cmd_kms.c: piivault kms SUBCOMMAND.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_int.h"

static int kms_status_cmd(int argc, char **argv);

static const struct cli_cmd kms_commands[] = {
	{ "status", kms_status_cmd, "show every key version, its state and "
	    "use" },
};

static void
iso_time(char out[static 32], uint64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(out, 32, "%llu", (unsigned long long)t);
}

static int
kms_status_cmd(int argc, char **argv)
{
	struct cli_common c;
	struct vault_info info;
	struct vault *v = NULL;
	char when[32];
	pv_status rc;
	int r, first;

	if ((r = cli_parse(argc, argv, &c, &first, "kms status [--json]\n\n"
	    "Shows the vault, and every key version: kind, state, creation\n"
	    "time, and for KEKs how many records each wraps now and how\n"
	    "many DEKs it has wrapped in all (counters, not a scan).", NULL)) !=
	    CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("kms status", "unexpected argument");
	if ((r = cli_open(&c, "kms status", &v)) != CLI_OK)
		return r;
	if ((rc = vault_info(v, &info)) != PV_OK) {
		vault_close(v);
		return cli_fail("kms status", NULL, rc);
	}
	if (c.json) {
		(void)printf("{\"vault_id\":\"%s\",\"format\":%u,"
		    "\"records\":%llu,\"keys\":[", info.vault_id, info.format,
		    (unsigned long long)info.records);
		for (size_t i = 0; i < info.nkeys; i++) {
			const struct kms_key_info *k = &info.keys[i];

			iso_time(when, k->created);
			(void)printf("%s{\"kind\":\"%s\",\"version\":%u,"
			    "\"state\":\"%s\",\"created\":\"%s\","
			    "\"records\":%llu,\"wrapped_total\":%llu}",
			    i ? "," : "", kms_kind_name(k->kind), k->version,
			    kms_state_name(k->state), when,
			    (unsigned long long)k->wraps_live,
			    (unsigned long long)k->wraps_total);
		}
		(void)printf("]}\n");
	} else {
		(void)printf("vault %s  format %u  records %llu\n\n",
		    info.vault_id, info.format,
		    (unsigned long long)info.records);
		(void)printf("%-6s %7s  %-12s  %-20s  %10s  %12s\n", "kind",
		    "version", "state", "created", "records", "wrapped");
		for (size_t i = 0; i < info.nkeys; i++) {
			const struct kms_key_info *k = &info.keys[i];

			iso_time(when, k->created);
			if (k->kind == KMS_KEK)
				(void)printf("%-6s %7u  %-12s  %-20s  %10llu"
				    "  %12llu\n", kms_kind_name(k->kind),
				    k->version, kms_state_name(k->state),
				    when, (unsigned long long)k->wraps_live,
				    (unsigned long long)k->wraps_total);
			else
				(void)printf("%-6s %7u  %-12s  %-20s  %10s"
				    "  %12s\n", kms_kind_name(k->kind),
				    k->version, kms_state_name(k->state),
				    when, "-", "-");
		}
	}
	free(info.keys);
	vault_close(v);
	if (fflush(stdout) != 0)
		return cli_fail("kms status", "stdout", PV_EIO);
	return CLI_OK;
}

int
cmd_kms(int argc, char **argv)
{
	return cli_dispatch("kms", kms_commands, sizeof(kms_commands) /
	    sizeof(kms_commands[0]), argc, argv);
}
