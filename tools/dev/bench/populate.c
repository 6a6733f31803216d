/* SPDX-License-Identifier: Apache-2.0 */
/*
 * populate.c: fill a vault with N records of four fields (email, phone,
 * name, city) through the vault API, 1000 a commit, for the benchmark's
 * key-lifecycle and footprint figures.  Prints the record ids, one a line,
 * to stdout when asked (for shred), and a JSON line of seconds, records and
 * value bytes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vault.h"

#define BATCH_MAX	1000

int
main(int argc, char **argv)
{
	struct vault_opts o;
	struct vault *v;
	struct vault_record_in recs[BATCH_MAX];
	struct vault_put_result res[BATCH_MAX];
	struct vault_field (*f)[4];
	char (*vals)[4][48], (*toks)[4][VAULT_ID_STRLEN + 1];
	struct timespec t0, t1;
	unsigned long n, ids;
	unsigned long long vbytes = 0;
	pv_status rc;

	size_t batch = BATCH_MAX;

	if (argc < 4) {
		(void)fprintf(stderr, "usage: populate DATA_DIR KEY_FILE N "
		    "[ids|commit1]\n");
		return 2;
	}
	n = strtoul(argv[3], NULL, 10);
	ids = argc > 4 && strcmp(argv[4], "ids") == 0;
	/* commit1: one record a commit, to measure the durable commit rate */
	if (argc > 4 && strcmp(argv[4], "commit1") == 0)
		batch = 1;
	if (pv_init() != PV_OK)
		return 1;
	memset(&o, 0, sizeof(o));
	o.data_dir = argv[1];
	o.unlock.key_file = argv[2];
	o.map_size = 64ull << 30;
	if ((rc = vault_open(&o, &v)) != PV_OK) {
		(void)fprintf(stderr, "populate: %s\n", pv_strerror(rc));
		return 1;
	}
	f = calloc(BATCH_MAX, sizeof(*f));
	vals = calloc(BATCH_MAX, sizeof(*vals));
	toks = calloc(BATCH_MAX, sizeof(*toks));
	if (f == NULL || vals == NULL || toks == NULL)
		return 1;
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned long done = 0; done < n; ) {
		size_t k = n - done < batch ? n - done : batch;

		for (size_t i = 0; i < k; i++) {
			unsigned long u = done + i;
			static const char *const names[4] = { "email", "phone",
			    "name", "city" };

			(void)snprintf(vals[i][0], 48, "user%lu@bench.example",
			    u);
			(void)snprintf(vals[i][1], 48, "+1 555 %07lu",
			    u % 10000000);
			(void)snprintf(vals[i][2], 48, "Bench User %lu", u);
			(void)snprintf(vals[i][3], 48, "City %lu", u % 997);
			for (int j = 0; j < 4; j++)
			{
				f[i][j] = (struct vault_field){ names[j],
				    strlen(names[j]), vals[i][j],
				    strlen(vals[i][j]) };
				vbytes += f[i][j].len;
			}
			recs[i] = (struct vault_record_in){ f[i], 4, 0, 0 };
			res[i].tokens = toks[i];
		}
		if ((rc = vault_put(v, recs, k, res)) != PV_OK) {
			(void)fprintf(stderr, "populate: %s\n",
			    pv_strerror(rc));
			return 1;
		}
		if (ids)
			for (size_t i = 0; i < k; i++)
				(void)printf("%s\n", res[i].id);
		done += k;
	}
	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	(void)fprintf(stderr, "{\"seconds\":%.3f,\"records\":%lu,"
	    "\"value_bytes\":%llu}\n", (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, n, vbytes);
	vault_close(v);
	free(f);
	free(vals);
	free(toks);
	return 0;
}
