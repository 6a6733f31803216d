/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_store.h: the storage layer, a small ordered key-value interface over
 * LMDB (the only code that includes lmdb.h is pv_store.c).  A second
 * backend could be added behind this header without touching kms, vault,
 * api or tools.
 *
 * The tables are the on-disk format (docs/format.md): they are fixed here,
 * in one place, rather than registered by each module.
 *
 * Concurrency: one write transaction at a time across every process that
 * opens the directory (LMDB's writer lock); any number of read
 * transactions, each a consistent snapshot.  A transaction belongs to the
 * thread that began it until it ends.  Values returned by pv_get and the
 * cursor functions point into the map and are valid only until the
 * transaction ends or, in a write transaction, until the next write.
 *
 * NULL policy and statuses as in pv.h.  Every function may also return
 * PV_ESTORE for an unexpected engine error (logged with LMDB's message).
 */
#ifndef PV_STORE_H
#define PV_STORE_H

#include "pv.h"

enum pv_table {
	PV_T_META,		/* name -> value: format, vault id, counters */
	PV_T_RING,		/* (kind, version) -> wrapped key and state */
	PV_T_RECORDS,		/* record seq -> record (or tombstone) */
	PV_T_TOKENS,		/* token seq -> record seq, check, field */
	PV_T_INDEX,		/* blind index digest -> {record seq, token seq} */
	PV_T_APIKEYS,		/* keyed hash of an API key's secret -> key */
	PV_T_AUDIT,		/* audit seq -> event and chain hash */
	PV_T_AUDIT_REC,		/* record seq, kind, audit seq -> nothing */
	PV_T_RETAIN,		/* retain-until, record seq -> nothing */
	PV_T__COUNT
};

struct pv_store;
struct pv_txn;
struct pv_cursor;

struct pv_store_opts {
	uint64_t	map_size;	/* bytes; 0 selects the default */
	int		create;		/* create the directory and files */
	int		exclusive;	/* no other process may have it open */
};

#define PV_STORE_MAP_DEFAULT	(32ull << 30)	/* 32 GiB, sparse */
#define PV_STORE_DATA_FILE	"data.mdb"

/*
 * Open the store in dir.  Without opts->create, a directory without a data
 * file is PV_ENOVAULT; with it, an existing data file is PV_EEXIST.  Every
 * open holds a shared lock on dir/piivault.lock; with opts->exclusive, an
 * exclusive one, and PV_EBUSY if another process has the store open.
 * PV_ENOTDIR if dir (or a directory above it) is not a directory,
 * PV_EDIRPERM if group or others may write it.
 */
pv_status pv_store_open(const char *dir, const struct pv_store_opts *opts,
	      struct pv_store **out) PV_WUR;
void	  pv_store_close(struct pv_store *s);

/*
 * Remove the store's files from dir, for undoing a creation that failed
 * half-way.  The store MUST be closed, and MUST have been created by the
 * caller: this is no way to delete a vault.
 */
void	  pv_store_remove(const char *dir);

/* Begin a transaction; write != 0 for a write transaction. */
pv_status pv_txn_begin(struct pv_store *s, int write, struct pv_txn **out)
	      PV_WUR;
/* Commit durably (fsync) and free the transaction, even on failure. */
pv_status pv_txn_commit(struct pv_txn *t) PV_WUR;
/* Discard and free; accepts NULL. */
void	  pv_txn_abort(struct pv_txn *t);

/* PV_ENOTFOUND if absent. */
pv_status pv_get(struct pv_txn *t, enum pv_table tab, const void *key,
	      size_t klen, const void **val, size_t *vlen) PV_WUR;

enum {
	PV_PUT_APPEND = 1 << 0,		/* key sorts after every other */
	PV_PUT_NOOVERWRITE = 1 << 1,	/* PV_EEXIST if present */
};
/* Store a copy of val.  PV_EFULL when the map is full. */
pv_status pv_put(struct pv_txn *t, enum pv_table tab, const void *key,
	      size_t klen, const void *val, size_t vlen, int flags) PV_WUR;
/*
 * Reserve vlen bytes for key's value and return where to write them, to
 * build a value in place without a copy.  Valid until the next write.
 */
pv_status pv_reserve(struct pv_txn *t, enum pv_table tab, const void *key,
	      size_t klen, size_t vlen, int flags, void **val) PV_WUR;
/*
 * Delete key; in the index table, only the given duplicate (val may be
 * NULL elsewhere).  PV_ENOTFOUND if absent.
 */
pv_status pv_del(struct pv_txn *t, enum pv_table tab, const void *key,
	      size_t klen, const void *val, size_t vlen) PV_WUR;

/* Number of entries in a table, from the engine's own count. */
pv_status pv_count(struct pv_txn *t, enum pv_table tab, uint64_t *out) PV_WUR;

/*
 * Cursors.  pv_cursor_seek positions at the first entry whose key is >= key
 * (or exactly key, for the index table, at its first duplicate; or at the
 * table's first entry if key is NULL); next moves
 * on (dup_only: only among key's duplicates).  Both return PV_ENOTFOUND at
 * the end.
 */
pv_status pv_cursor_open(struct pv_txn *t, enum pv_table tab,
	      struct pv_cursor **out) PV_WUR;
void	  pv_cursor_close(struct pv_cursor *c);
pv_status pv_cursor_seek(struct pv_cursor *c, const void *key, size_t klen,
	      int exact, const void **k, size_t *kl, const void **v,
	      size_t *vl) PV_WUR;
pv_status pv_cursor_next(struct pv_cursor *c, int dup_only, const void **k,
	      size_t *kl, const void **v, size_t *vl) PV_WUR;
pv_status pv_cursor_last(struct pv_cursor *c, const void **k, size_t *kl,
	      const void **v, size_t *vl) PV_WUR;
pv_status pv_cursor_prev(struct pv_cursor *c, const void **k, size_t *kl,
	      const void **v, size_t *vl) PV_WUR;

/*
 * Rewrite the data file with live pages only (LMDB's compacting copy) and
 * put it in place of the old one: copied into dir/compact.tmp, synced,
 * then renamed over data.mdb, so a crash at any point leaves one whole
 * file.  The store MUST be open exclusive, and MUST be closed right after.
 * *before and *after are the file's sizes in bytes.
 */
pv_status pv_store_compact(struct pv_store *s, uint64_t *before,
	      uint64_t *after) PV_WUR;

/*
 * Write a compacting copy of the store (live pages only: nothing freed,
 * so no bytes of deleted values) to dir/data.mdb, mode 0600, synced.  It
 * is taken in one read transaction, so it is the state of one commit;
 * writers go on meanwhile.  dir MUST exist and hold no data file
 * (PV_ESTORE otherwise, from LMDB).  PV_EINVAL if the path is too long,
 * PV_EIO; on failure no data file is left in dir.
 */
pv_status pv_store_copy(struct pv_store *s, const char *dir) PV_WUR;

/* The version of LMDB in use (run time), as "0.9.24", into out. */
void	  pv_store_version(char out[static 32]);

/* The data file's path, for tools that inspect or copy it. */
const char *pv_store_path(const struct pv_store *s);

#endif /* PV_STORE_H */
