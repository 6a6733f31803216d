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
	const char *env;
	pv_status rc;

	/* Whatever this process creates is its user's alone. */
	(void)umask(077);
	if ((rc = pv_harden_process()) != PV_OK ||
	    (rc = pv_init()) != PV_OK) {
		(void)fprintf(stderr, "piivault: start-up: %s\n",
		    pv_strerror(rc));
		return CLI_FAIL;
	}
	/*
	 * For tests only: pin the clock that retention, request windows and
	 * cryptoperiods read (seconds since the epoch).
	 */
	if ((env = getenv("PIIVAULT_FAKE_NOW")) != NULL && *env != '\0')
		pv_clock_set(strtoull(env, NULL, 10));
	if (setvbuf(stdout, NULL, _IONBF, 0) != 0) {
		(void)fprintf(stderr, "piivault: start-up: stdout\n");
		return CLI_FAIL;
	}
	api_init();
	return cli_main(argc, argv);
}
