/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_promises.c: sentences of SECURITY.md, each tried the way an
 * operator or an attacker would, through the real binary, so that a
 * sentence that stops being true fails here.  Records are written with
 * the vault API in-process (the CLI's put reads standard input); every
 * other step is the piivault command.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvutil.h"
#include "testutil.h"

#define EMAIL		"promise.kept@example.org"

static char dir[PATH_MAX], keyfile[PATH_MAX + 16], datadir[PATH_MAX + 16];
static char rec[VAULT_ID_STRLEN + 1], tok[VAULT_ID_STRLEN + 1];

/* A vault in dir/data, root key dir/root.key, holding one record. */
static void
setup(void)
{
	static const struct vault_field f[] = {
		{ "email", 5, EMAIL, sizeof(EMAIL) - 1 },
	};
	const struct vault_record_in in = { f, 1, 0, 0 };
	char toks[1][VAULT_ID_STRLEN + 1];
	struct vault_put_result res = { .tokens = toks };
	struct vault_opts o;
	struct vault *v = NULL;

	tu_vault_setup(dir, keyfile, datadir, &o);
	memcpy(su_tdir, dir, sizeof(su_tdir));	/* where su_cli keeps stderr */
	ck_assert_int_lt(snprintf(su_logpath, sizeof(su_logpath),
	    "%s/serve.log", dir), (int)sizeof(su_logpath));
	memset(&su_srv, 0, sizeof(su_srv));
	ck_assert_int_eq(vault_create(&o, &v), PV_OK);
	ck_assert_int_eq(vault_put(v, &in, 1, &res), PV_OK);
	ck_assert_int_eq(res.status, PV_OK);
	memcpy(rec, res.id, sizeof(rec));
	memcpy(tok, toks[0], sizeof(tok));
	vault_close(v);
}

static void
teardown(void)
{
	if (su_srv.pid > 0)
		su_srv_stop();
	su_logs_collect();
	tu_teardown();
}

/* Run piivault a1 [a2 [a3]] --data-dir d --key-file k. */
static void
cli(struct su_run *r, const char *d, const char *k, const char *a1,
    const char *a2, const char *a3)
{
	const char *args[8];
	size_t n = 0;

	args[n++] = a1;
	if (a2 != NULL)
		args[n++] = a2;
	if (a2 != NULL && a3 != NULL)
		args[n++] = a3;
	args[n++] = "--data-dir";
	args[n++] = d;
	args[n++] = "--key-file";
	args[n++] = k;
	args[n] = NULL;
	su_cli_argv(r, NULL, args);
}

static void
copy_dir(const char *from, const char *to)
{
	char *const argv[] = { (char *)"/bin/cp", (char *)"-a", (char *)from,
	    (char *)to, NULL };
	int st;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/*
 * "Crypto-shredding, 3": a copy made before a shred still reveals the
 * record after kms shred-epoch (it brings its own KEKs, sealed by the
 * same root key), and stops revealing anything once the root key is
 * rotated away and the old key file is gone.
 */
START_TEST(shred_epoch_and_older_copies)
{
	char copy[PATH_MAX + 16], newkey[PATH_MAX + 16];
	struct su_run r;

	(void)snprintf(copy, sizeof(copy), "%s/copy", dir);
	(void)snprintf(newkey, sizeof(newkey), "%s/root2.key", dir);
	copy_dir(datadir, copy);

	cli(&r, datadir, keyfile, "shred", rec, NULL);
	ck_assert_msg(r.status == 0, "shred: %s", r.err);
	su_run_free(&r);
	cli(&r, datadir, keyfile, "kms", "shred-epoch", NULL);
	ck_assert_msg(r.status == 0, "shred-epoch: %s", r.err);
	su_run_free(&r);

	/* The live vault: shredded. */
	cli(&r, datadir, keyfile, "get", tok, NULL);
	ck_assert_int_ne(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "shredded"));
	ck_assert_ptr_null(strstr(r.out, EMAIL));
	su_run_free(&r);

	/* The older copy, same root key: the record comes back. */
	cli(&r, copy, keyfile, "get", tok, NULL);
	ck_assert_msg(r.status == 0, "get on the copy: %s", r.err);
	ck_assert_ptr_nonnull(strstr(r.out, EMAIL));
	su_run_free(&r);

	/* Rotate the root away and destroy the old key file. */
	{
		const char *args[] = { "kms", "rotate-root", "--new-key-file",
		    newkey, "--data-dir", datadir, "--key-file", keyfile,
		    NULL };

		su_cli_argv(&r, NULL, args);
	}
	ck_assert_msg(r.status == 0, "rotate-root: %s", r.err);
	su_run_free(&r);
	ck_assert_int_eq(unlink(keyfile), 0);

	/* The live vault opens with the new root; the copy does not. */
	cli(&r, datadir, newkey, "kms", "status", NULL);
	ck_assert_msg(r.status == 0, "status: %s", r.err);
	su_run_free(&r);
	cli(&r, copy, newkey, "get", tok, NULL);
	ck_assert_int_ne(r.status, 0);
	ck_assert_ptr_null(strstr(r.out, EMAIL));
	ck_assert_msg(strstr(r.err, "wrong root key") != NULL, "%s", r.err);
	su_run_free(&r);
	ck_assert(!tu_dir_contains(copy, EMAIL, sizeof(EMAIL) - 1));
}
END_TEST

/*
 * "Secrets in memory" and "Access over HTTP": no personal value in the
 * data directory, and a wrong root key changes nothing on disk.
 */
START_TEST(wrong_root_key_changes_nothing)
{
	char other[PATH_MAX + 16], path[PATH_MAX + 32];
	struct stat before, after;
	struct su_run r;

	(void)snprintf(other, sizeof(other), "%s/other.key", dir);
	(void)snprintf(path, sizeof(path), "%s/data.mdb", datadir);
	ck_assert_int_eq(vault_key_file_create(other), PV_OK);
	ck_assert(!tu_dir_contains(datadir, EMAIL, sizeof(EMAIL) - 1));
	ck_assert_int_eq(stat(path, &before), 0);
	cli(&r, datadir, other, "get", tok, NULL);
	ck_assert_int_ne(r.status, 0);
	ck_assert_msg(strstr(r.err, "wrong root key") != NULL, "%s", r.err);
	ck_assert_ptr_null(strstr(r.out, EMAIL));
	su_run_free(&r);
	ck_assert_int_eq(stat(path, &after), 0);
	ck_assert_int_eq(before.st_mtime, after.st_mtime);
	ck_assert_int_eq(before.st_size, after.st_size);
}
END_TEST

/* "a local user other than the owner": modes of what piivault makes. */
START_TEST(modes_of_what_it_makes)
{
	char path[PATH_MAX + 32];
	struct stat st;

	ck_assert_int_eq(stat(datadir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(keyfile, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	(void)snprintf(path, sizeof(path), "%s/data.mdb", datadir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 077, 0);
}
END_TEST

/*
 * "Secrets in memory": a process that holds keys makes no core dump.  The
 * server, once it serves, has RLIMIT_CORE 0 (read from /proc, as an
 * operator would).
 */
START_TEST(server_makes_no_core)
{
	const char *const extra[] = { "--data-dir", datadir, NULL };
	char path[64], *lim, *line;
	size_t len;

	struct rlimit rl;

	/* The server must lower it itself: it inherits a limit above 0. */
	ck_assert_int_eq(getrlimit(RLIMIT_CORE, &rl), 0);
	ck_assert_msg(rl.rlim_max > 0, "hard core limit is 0 here");
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_CORE, &rl), 0);
	su_srv_start_local(keyfile, extra, NULL);
	(void)snprintf(path, sizeof(path), "/proc/%d/limits", (int)su_srv.pid);
	ck_assert_ptr_nonnull(lim = su_slurp(path, &len));
	ck_assert_ptr_nonnull(line = strstr(lim, "Max core file size"));
	line += strlen("Max core file size");
	while (*line == ' ')
		line++;
	ck_assert_msg(strncmp(line, "0 ", 2) == 0, "core limit: %.40s", line);
	free(lim);
	su_srv_stop();
}
END_TEST

/*
 * "Secrets in memory": under a memlock limit too small for the secure
 * heap (and without CAP_IPC_LOCK, which root would otherwise have), the
 * binary says so and names the exact fix.
 */
START_TEST(memlock_warning_names_the_fix)
{
	char errpath[PATH_MAX + 16], *err;
	size_t len;
	int st, fd;
	pid_t pid;

	(void)snprintf(errpath, sizeof(errpath), "%s/memlock.err", dir);
	ck_assert_int_ge(fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC,
	    0600), 0);
	ck_assert_int_ge(pid = fork(), 0);
	if (pid == 0) {
		char *const argv[] = { (char *)"/usr/bin/prlimit",
		    (char *)"--memlock=1048576:1048576",
		    (char *)"/usr/bin/setpriv", (char *)"--inh-caps=-ipc_lock",
		    (char *)"--bounding-set=-ipc_lock", (char *)PIIVAULT_BIN, (char *)"kms", (char *)"status",
		    (char *)"--data-dir", datadir, (char *)"--key-file", keyfile,
		    NULL };

		if (dup2(fd, 2) < 0 || dup2(open("/dev/null", O_WRONLY), 1) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	(void)close(fd);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_ptr_nonnull(err = su_slurp(errpath, &len));
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d: %s",
	    st, err);
	ck_assert_msg(strstr(err, "is not locked in memory") != NULL &&
	    strstr(err, "RLIMIT_MEMLOCK is 1024 KiB") != NULL &&
	    strstr(err, "ulimit -l") != NULL &&
	    strstr(err, "LimitMEMLOCK=") != NULL, "%s", err);
	free(err);
}
END_TEST

int
main(void)
{
	return su_suite_main("check_promises", tu_suite_core("promises",
	    setup, teardown, 120, shred_epoch_and_older_copies,
	    wrong_root_key_changes_nothing, modes_of_what_it_makes,
	    server_makes_no_core, memlock_warning_names_the_fix, NULL));
}
