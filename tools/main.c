/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c: the piivault binary.  A process that holds keys: no core dumps,
 * no ptrace attach, and stdout unbuffered, so that no decrypted value
 * lingers in stdio's heap buffer after it is written.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>

#include "cli_int.h"

int
main(int argc, char **argv)
{
	pv_status rc;

	/* Whatever this process creates is its user's alone. */
	(void)umask(077);
	if ((rc = pv_harden_process()) != PV_OK ||
	    (rc = pv_init()) != PV_OK) {
		(void)fprintf(stderr, "piivault: start-up: %s\n",
		    pv_strerror(rc));
		return CLI_FAIL;
	}
#ifdef PV_TEST_HOOKS
	/*
	 * piivault-test only (PV_TEST_HOOKS): pin the clock that retention,
	 * request windows and cryptoperiods read (seconds since the epoch),
	 * and stop audit archive and backup half-way (cli_int.h).
	 * piivault itself reads the system clock, which only something
	 * outside it (libfaketime) can move.
	 */
	{
		unsigned long long now;
		int r;

		if ((r = cli_env_number("PIIVAULT_FAKE_NOW", 1,
		    CLI_TIME_MAX, &now)) != CLI_OK)
			return r;
		if (now != 0)
			pv_clock_set(now);
		if ((r = cli_env_number("PIIVAULT_TEST_ARCHIVE_BATCH", 1,
		    100000, &cli_test_archive_batch)) != CLI_OK ||
		    (r = cli_env_number("PIIVAULT_TEST_ARCHIVE_KILL", 1,
		    1000000, &cli_test_archive_kill)) != CLI_OK ||
		    (r = cli_env_number("PIIVAULT_TEST_BACKUP_KILL", 1, 1,
		    &cli_test_backup_kill)) != CLI_OK)
			return r;
	}
#endif
	if (setvbuf(stdout, NULL, _IONBF, 0) != 0) {
		(void)fprintf(stderr, "piivault: start-up: stdout\n");
		return CLI_FAIL;
	}
	api_init();
	return cli_main(argc, argv);
}
