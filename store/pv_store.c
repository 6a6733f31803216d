/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_store.c: LMDB behind pv_store.h.  LMDB's 0 / MDB_* / errno returns are
 * translated here and never leave this file.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "pv_store.h"

struct pv_store {
	MDB_env		*env;
	MDB_dbi		 dbi[PV_T__COUNT];
	char		 dir[PATH_MAX];
	char		 path[PATH_MAX];
	int		 lockfd;
};

#define STORE_LOCK_FILE	"piivault.lock"
#define STORE_TMP_DIR	"compact.tmp"


struct pv_txn {
	struct pv_store	*s;
	MDB_txn		*txn;
};

struct pv_cursor {
	struct pv_store	*s;
	MDB_cursor	*cur;
};

static const struct {
	const char	*name;
	unsigned int	 flags;
} tables[PV_T__COUNT] = {
	[PV_T_META] = { "meta", 0 },
	[PV_T_RING] = { "ring", 0 },
	[PV_T_RECORDS] = { "records", 0 },
	[PV_T_TOKENS] = { "tokens", 0 },
	/* DUPFIXED: every index value is 32 bytes (vault_int.h). */
	[PV_T_INDEX] = { "index", MDB_DUPSORT | MDB_DUPFIXED },
	[PV_T_APIKEYS] = { "apikeys", 0 },
	[PV_T_AUDIT] = { "audit", 0 },
	[PV_T_AUDIT_REC] = { "audit_by_record", 0 },
	[PV_T_RETAIN] = { "retention", 0 },
};

/* The maximum number of processes and threads reading at once. */
#define STORE_MAX_READERS	1024

static pv_status
xlate(int r, const char *what)
{
	switch (r) {
	case MDB_SUCCESS:
		return PV_OK;
	case MDB_NOTFOUND:
		return PV_ENOTFOUND;
	case MDB_KEYEXIST:
		return PV_EEXIST;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return PV_EFULL;
	case ENOMEM:
		return PV_ENOMEM;
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
	case MDB_INCOMPATIBLE:
		pv_log(PV_LOG_ERROR, "%s: %s", what, mdb_strerror(r));
		return PV_EFORMAT;
	default:
		pv_log(PV_LOG_ERROR, "%s: %s", what, mdb_strerror(r));
		return PV_ESTORE;
	}
}

/*
 * The advisory lock every process holds while it has the store open: a
 * compaction, which replaces the file, must be alone.
 */
static pv_status
store_lock(struct pv_store *s, int exclusive)
{
	char path[PATH_MAX];
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", s->dir, STORE_LOCK_FILE);
	if (n < 0 || (size_t)n >= sizeof(path))
		return PV_EINVAL;
	if ((s->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return PV_EIO;
	if (flock(s->lockfd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0)
		return errno == EWOULDBLOCK ? PV_EBUSY : PV_EIO;
	return PV_OK;
}

/*
 * Whoever may write the data directory may swap its files (an older data
 * file, a planted lock file): like the key file, a directory that group
 * or others may write is refused, never silently used or repaired.  A
 * symbolic link is followed; the directory it names is what is checked.
 */
static pv_status
dir_private(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) != 0)
		return errno == ENOENT ? PV_ENOVAULT : PV_EIO;
	if (!S_ISDIR(st.st_mode))
		return PV_ENOTDIR;
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		return PV_EDIRPERM;
	return PV_OK;
}

pv_status
pv_store_open(const char *dir, const struct pv_store_opts *opts,
    struct pv_store **out)
{
	struct pv_store *s = NULL;
	MDB_txn *txn = NULL;
	struct stat st;
	pv_status rc;
	int r, n, fd;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return PV_ENOMEM;
	s->lockfd = -1;
	n = snprintf(s->path, sizeof(s->path), "%s/%s", dir,
	    PV_STORE_DATA_FILE);
	if (n < 0 || (size_t)n >= sizeof(s->path) ||
	    strlen(dir) >= sizeof(s->dir)) {
		rc = PV_EINVAL;
		goto out;
	}
	memcpy(s->dir, dir, strlen(dir) + 1);
	if (opts->create) {
		/* ENOTDIR: dir, or a directory above it, is a file. */
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			rc = errno == ENOTDIR ? PV_ENOTDIR : PV_EIO;
			goto out;
		}
		/*
		 * Claim the data file with O_EXCL: of two concurrent inits
		 * exactly one gets it, and only that one may remove it again.
		 * LMDB takes an empty file as a new environment.
		 */
		if ((fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600)) < 0) {
			rc = errno == EEXIST ? PV_EEXIST : errno == ENOTDIR ?
			    PV_ENOTDIR : PV_EIO;
			goto out;
		}
		(void)close(fd);
	} else if (stat(dir, &st) != 0) {
		rc = errno == ENOENT ? PV_ENOVAULT : errno == ENOTDIR ?
		    PV_ENOTDIR : PV_EIO;
		goto out;
	} else if (!S_ISDIR(st.st_mode)) {
		rc = PV_ENOTDIR;
		goto out;
	} else if (stat(s->path, &st) != 0) {
		rc = errno == ENOENT ? PV_ENOVAULT : PV_EIO;
		goto out;
	}
	if ((rc = dir_private(dir)) != PV_OK)
		goto out;
	if ((rc = store_lock(s, opts->exclusive)) != PV_OK)
		goto out;
	if ((rc = xlate(mdb_env_create(&s->env), "mdb_env_create")) != PV_OK)
		goto out;
	if ((rc = xlate(mdb_env_set_maxdbs(s->env, PV_T__COUNT + 4),
	    "mdb_env_set_maxdbs")) != PV_OK)
		goto out;
	if ((rc = xlate(mdb_env_set_maxreaders(s->env, STORE_MAX_READERS),
	    "mdb_env_set_maxreaders")) != PV_OK)
		goto out;
	if ((rc = xlate(mdb_env_set_mapsize(s->env, opts->map_size ?
	    opts->map_size : PV_STORE_MAP_DEFAULT), "mdb_env_set_mapsize")) !=
	    PV_OK)
		goto out;
	/*
	 * MDB_NOTLS: read transactions are not tied to a thread's slot, so a
	 * thread pool may reuse them.  Durability stays LMDB's default: every
	 * commit is fsynced before it returns.
	 */
	if ((r = mdb_env_open(s->env, dir, MDB_NOTLS, 0600)) != 0) {
		rc = r == ENOENT ? PV_ENOVAULT : xlate(r, "mdb_env_open");
		goto out;
	}
	/*
	 * Open every table.  A vault made before a table was added to format
	 * 1 gets it created, empty, in a write transaction; a file without
	 * our meta table is not a vault.
	 */
	for (int pass = 0, write = opts->create; pass < 2; pass++) {
		int missing = 0;

		if ((rc = xlate(mdb_txn_begin(s->env, NULL, write ? 0 :
		    MDB_RDONLY, &txn), "mdb_txn_begin")) != PV_OK)
			goto out;
		for (int i = 0; i < PV_T__COUNT; i++) {
			r = mdb_dbi_open(txn, tables[i].name, tables[i].flags |
			    (write ? MDB_CREATE : 0), &s->dbi[i]);
			if (r == MDB_NOTFOUND && i != PV_T_META) {
				missing = 1;
				continue;
			}
			if (r == MDB_NOTFOUND) {
				rc = PV_EFORMAT;
				goto out;
			}
			if ((rc = xlate(r, "mdb_dbi_open")) != PV_OK)
				goto out;
		}
		if (missing) {
			mdb_txn_abort(txn);
			txn = NULL;
			write = 1;
			continue;
		}
		r = mdb_txn_commit(txn);
		txn = NULL;
		if ((rc = xlate(r, "mdb_txn_commit")) != PV_OK)
			goto out;
		break;
	}
	*out = s;
	s = NULL;
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	pv_store_close(s);
	return rc;
}

void
pv_store_remove(const char *dir)
{
	static const char *const files[] = { PV_STORE_DATA_FILE, "lock.mdb" };
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int n = snprintf(path, sizeof(path), "%s/%s", dir, files[i]);

		if (n > 0 && (size_t)n < sizeof(path) && unlink(path) != 0 &&
		    errno != ENOENT)
			pv_log(PV_LOG_WARN, "remove %s: %s", path,
			    strerror(errno));
	}
}

void
pv_store_close(struct pv_store *s)
{
	if (s == NULL)
		return;
	if (s->env != NULL)
		mdb_env_close(s->env);
	if (s->lockfd >= 0)
		(void)close(s->lockfd);		/* releases the lock */
	free(s);
}

static pv_status
fsync_path(const char *path, int dir)
{
	int fd, r;

	if ((fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) |
	    O_CLOEXEC)) < 0)
		return PV_EIO;
	r = fsync(fd);
	(void)close(fd);
	return r == 0 ? PV_OK : PV_EIO;
}

/* The compacting copy of s into dir/data.mdb (path), mode 0600, synced. */
static pv_status
store_copy(struct pv_store *s, const char *dir, const char *path)
{
	pv_status rc;

	if ((rc = xlate(mdb_env_copy2(s->env, dir, MDB_CP_COMPACT),
	    "mdb_env_copy2")) != PV_OK)
		return rc;
	/* LMDB creates the copy by the umask; the vault's files are 0600. */
	if (chmod(path, 0600) != 0)
		return PV_EIO;
	return fsync_path(path, 0);
}

pv_status
pv_store_copy(struct pv_store *s, const char *dir)
{
	char path[PATH_MAX];
	pv_status rc;
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", dir, PV_STORE_DATA_FILE);
	if (n < 0 || (size_t)n >= sizeof(path))
		return PV_EINVAL;
	if ((rc = store_copy(s, dir, path)) != PV_OK)
		(void)unlink(path);
	return rc;
}

pv_status
pv_store_compact(struct pv_store *s, uint64_t *before, uint64_t *after)
{
	char tmp[PATH_MAX], tmpfile[PATH_MAX], lock[PATH_MAX];
	struct stat st;
	pv_status rc;
	int n;

	n = snprintf(tmp, sizeof(tmp), "%s/%s", s->dir, STORE_TMP_DIR);
	if (n < 0 || (size_t)n >= sizeof(tmp) ||
	    (n = snprintf(tmpfile, sizeof(tmpfile), "%s/%s", tmp,
	    PV_STORE_DATA_FILE)) < 0 || (size_t)n >= sizeof(tmpfile))
		return PV_EINVAL;
	if (stat(s->path, &st) != 0)
		return PV_EIO;
	*before = (uint64_t)st.st_size;
	/* What a crash left of an earlier attempt is discarded. */
	(void)unlink(tmpfile);
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
		return PV_EIO;
	if ((rc = store_copy(s, tmp, tmpfile)) != PV_OK)
		goto fail;
	if (rename(tmpfile, s->path) != 0) {
		rc = PV_EIO;
		goto fail;
	}
	if ((rc = fsync_path(s->dir, 1)) != PV_OK)
		return rc;
	(void)rmdir(tmp);
	/* Readers' slots of the old file mean nothing for the new one. */
	if ((n = snprintf(lock, sizeof(lock), "%s/lock.mdb", s->dir)) > 0 &&
	    (size_t)n < sizeof(lock))
		(void)unlink(lock);
	if (stat(s->path, &st) != 0)
		return PV_EIO;
	*after = (uint64_t)st.st_size;
	return PV_OK;
fail:
	(void)unlink(tmpfile);
	(void)rmdir(tmp);
	return rc;
}

const char *
pv_store_path(const struct pv_store *s)
{
	return s->path;
}

pv_status
pv_txn_begin(struct pv_store *s, int write, struct pv_txn **out)
{
	struct pv_txn *t;
	pv_status rc;

	if ((t = malloc(sizeof(*t))) == NULL)
		return PV_ENOMEM;
	t->s = s;
	rc = xlate(mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY,
	    &t->txn), "mdb_txn_begin");
	if (rc != PV_OK) {
		free(t);
		return rc;
	}
	*out = t;
	return PV_OK;
}

pv_status
pv_txn_commit(struct pv_txn *t)
{
	pv_status rc;

	rc = xlate(mdb_txn_commit(t->txn), "mdb_txn_commit");
	free(t);
	return rc;
}

void
pv_txn_abort(struct pv_txn *t)
{
	if (t == NULL)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

pv_status
pv_get(struct pv_txn *t, enum pv_table tab, const void *key, size_t klen,
    const void **val, size_t *vlen)
{
	MDB_val k = { klen, (void *)key }, v;
	pv_status rc;

	if ((rc = xlate(mdb_get(t->txn, t->s->dbi[tab], &k, &v), "mdb_get")) !=
	    PV_OK)
		return rc;
	*val = v.mv_data;
	*vlen = v.mv_size;
	return PV_OK;
}

static unsigned int
put_flags(int flags)
{
	unsigned int f = 0;

	if (flags & PV_PUT_APPEND)
		f |= MDB_APPEND;
	if (flags & PV_PUT_NOOVERWRITE)
		f |= MDB_NOOVERWRITE;
	return f;
}

pv_status
pv_put(struct pv_txn *t, enum pv_table tab, const void *key, size_t klen,
    const void *val, size_t vlen, int flags)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	unsigned int f = put_flags(flags);

	/* In a DUPSORT table, appending means appending a duplicate. */
	if (tab == PV_T_INDEX && (f & MDB_APPEND))
		f = (f & ~(unsigned)MDB_APPEND) | MDB_APPENDDUP;
	return xlate(mdb_put(t->txn, t->s->dbi[tab], &k, &v, f), "mdb_put");
}

pv_status
pv_reserve(struct pv_txn *t, enum pv_table tab, const void *key, size_t klen,
    size_t vlen, int flags, void **val)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, NULL };
	pv_status rc;

	if (tab == PV_T_INDEX)
		return PV_EINVAL;	/* LMDB cannot reserve duplicates */
	rc = xlate(mdb_put(t->txn, t->s->dbi[tab], &k, &v,
	    put_flags(flags) | MDB_RESERVE), "mdb_put");
	if (rc != PV_OK)
		return rc;
	*val = v.mv_data;
	return PV_OK;
}

pv_status
pv_del(struct pv_txn *t, enum pv_table tab, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	return xlate(mdb_del(t->txn, t->s->dbi[tab], &k, val ? &v : NULL),
	    "mdb_del");
}

pv_status
pv_count(struct pv_txn *t, enum pv_table tab, uint64_t *out)
{
	MDB_stat st;
	pv_status rc;

	if ((rc = xlate(mdb_stat(t->txn, t->s->dbi[tab], &st), "mdb_stat")) !=
	    PV_OK)
		return rc;
	*out = st.ms_entries;
	return PV_OK;
}

pv_status
pv_cursor_open(struct pv_txn *t, enum pv_table tab, struct pv_cursor **out)
{
	struct pv_cursor *c;
	pv_status rc;

	if ((c = malloc(sizeof(*c))) == NULL)
		return PV_ENOMEM;
	c->s = t->s;
	rc = xlate(mdb_cursor_open(t->txn, t->s->dbi[tab], &c->cur),
	    "mdb_cursor_open");
	if (rc != PV_OK) {
		free(c);
		return rc;
	}
	*out = c;
	return PV_OK;
}

void
pv_cursor_close(struct pv_cursor *c)
{
	if (c == NULL)
		return;
	mdb_cursor_close(c->cur);
	free(c);
}

static pv_status
cursor_get(struct pv_cursor *c, MDB_val *k, MDB_cursor_op op, const void **kp,
    size_t *kl, const void **vp, size_t *vl)
{
	MDB_val v = { 0, NULL };
	pv_status rc;

	if ((rc = xlate(mdb_cursor_get(c->cur, k, &v, op), "mdb_cursor_get")) !=
	    PV_OK)
		return rc;
	if (kp != NULL) {
		*kp = k->mv_data;
		*kl = k->mv_size;
	}
	if (vp != NULL) {
		*vp = v.mv_data;
		*vl = v.mv_size;
	}
	return PV_OK;
}

pv_status
pv_cursor_seek(struct pv_cursor *c, const void *key, size_t klen, int exact,
    const void **k, size_t *kl, const void **v, size_t *vl)
{
	MDB_val mk = { klen, (void *)key };

	if (key == NULL)
		return cursor_get(c, &mk, MDB_FIRST, k, kl, v, vl);
	return cursor_get(c, &mk, exact ? MDB_SET_KEY : MDB_SET_RANGE, k, kl,
	    v, vl);
}

pv_status
pv_cursor_next(struct pv_cursor *c, int dup_only, const void **k, size_t *kl,
    const void **v, size_t *vl)
{
	MDB_val mk = { 0, NULL };

	return cursor_get(c, &mk, dup_only ? MDB_NEXT_DUP : MDB_NEXT, k, kl,
	    v, vl);
}

pv_status
pv_cursor_last(struct pv_cursor *c, const void **k, size_t *kl,
    const void **v, size_t *vl)
{
	MDB_val mk = { 0, NULL };

	return cursor_get(c, &mk, MDB_LAST, k, kl, v, vl);
}

pv_status
pv_cursor_prev(struct pv_cursor *c, const void **k, size_t *kl,
    const void **v, size_t *vl)
{
	MDB_val mk = { 0, NULL };

	return cursor_get(c, &mk, MDB_PREV, k, kl, v, vl);
}

void
pv_store_version(char out[static 32])
{
	int major, minor, patch;

	(void)mdb_version(&major, &minor, &patch);
	(void)snprintf(out, 32, "%d.%d.%d", major, minor, patch);
}
