/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vault_int.h: private to vault/.  The record layout of docs/format.md in
 * code, and the pieces the vault's files share.
 */
#ifndef VAULT_INT_H
#define VAULT_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "kms.h"
#include "pv_store.h"
#include "vault.h"

/* vault.h's key names and unlock, as kms.h has them (vault.c). */
enum kms_kind	vault_kms_kind(enum vault_key_kind kind);
enum kms_state	vault_kms_state(enum vault_key_state st);
void	  vault_key_info_from(struct vault_key_info *out,
	      const struct kms_key_info *in);
void	  vault_unlock_kms(struct kms_unlock *out, const struct vault_unlock *u);

/* Meta keys owned by the vault. */
#define META_NEXT_REC	"next_rec"
#define META_NEXT_TOK	"next_tok"
#define META_RECORDS	"records"

/* Record value. */
#define REC_LIVE	1
#define REC_TOMBSTONE	2
#define RF_MARKETING	0x01
#define RF_HOLD		0x02	/* legal hold: no shred, no sweep */
#define RF_LIMITED	0x04	/* request-limit counter rows exist (person.c) */

#define R_TYPE		0
#define R_FLAGS		1
#define R_CHECK		2
#define R_KEKV		10
#define R_DEK		14
#define R_CREATED	(R_DEK + KMS_WRAPPED_LEN)
#define R_RETAIN	(R_CREATED + 8)
#define R_NFIELDS	(R_RETAIN + 8)
#define R_FIELDS	(R_NFIELDS + 2)

/* Field entry flags. */
#define FF_INDEXED	0x01

/* Token value: record seq, token check, name length, name. */
#define T_REC		0
#define T_CHECK		8
#define T_NAMELEN	16
#define T_NAME		17
#define TOKEN_VAL_MAX	(T_NAME + PV_FIELD_NAME_MAX)

#define CHECK_LEN	8
#define SEQ_LEN		8
/* Index value: record seq, token seq, truncated MAC over all and digest. */
#define INDEX_MAC_LEN	16
#define INDEX_VAL_LEN	(2 * SEQ_LEN + INDEX_MAC_LEN)
#define AAD_MAX		(KMS_VAULT_ID_LEN + 16 + SEQ_LEN + PV_FIELD_NAME_MAX)

struct put_arg;

/* One group commit's shared state, handed to each job in it. */
struct gc_ctx {
	struct pv_txn		*t;
	uint64_t		 records;
	uint32_t		 kekv;		/* KEK that wrapped here */
	uint64_t		 wrapped;	/* DEKs wrapped here */
	uint8_t			*dek;		/* secure scratch */
	struct put_arg		*puts;		/* sealed puts, by number */
};

/*
 * A piece of work for the group commit.  apply runs inside the leader's
 * transaction; it MUST fail only for what fails the whole commit (storage,
 * crypto, memory) and leave per-item outcomes in its arg.  weight bounds a
 * commit's size.
 */
struct gc_job {
	pv_status	(*apply)(struct vault *v, struct gc_ctx *g, void *arg);
	void		*arg;
	size_t		 weight;
	pv_status	 rc;
	int		 done;
	struct gc_job	*next;
};

/*
 * Lease nrec record numbers and ntok token numbers (each run contiguous)
 * for this process, before the commit that uses them: every number comes
 * from a lease, never from inside a commit.  PV_EFULL once numbers pass
 * 2^63; PV_EIO, PV_ESTORE.
 */
pv_status vault_lease(struct vault *v, uint64_t nrec, uint64_t ntok,
	      uint64_t *rec0, uint64_t *tok0) PV_WUR;

/* Run job in a group commit; its status once durable, or the failure. */
pv_status vault_commit_job(struct vault *v, struct gc_job *job) PV_WUR;

struct vault {
	struct pv_store	*store;
	struct kms	*kms;

	/*
	 * Group commit: writers queue their jobs; whoever finds no commit
	 * in progress becomes the leader, takes the whole queue and commits
	 * it in one transaction, then wakes the others.
	 */
	pthread_mutex_t	 gc_lock;
	pthread_cond_t	 gc_done;
	struct gc_job	*gc_head, *gc_tail;
	int		 gc_busy;
	uint64_t	 gc_commits;	/* for tests and metrics */
	uint64_t	 max_kek_age;	/* cryptoperiod, seconds; 0: none */
	uint64_t	 max_kek_wraps;	/* cryptoperiod, DEKs; 0: none */
	atomic_uint	 retention_days; /* default for new records; 0: none */
	atomic_ullong	 alarms;	/* integrity failures seen (vault_alarm) */
	const char	*actor;		/* logs this process's own operations */
	unsigned	 duty;		/* long jobs' share of the writer, % */
	uint32_t	 limit_count;	/* person's requests per window */
	uint64_t	 limit_window;	/* seconds */

	/*
	 * Numbers leased for records and tokens, so that writes are sealed
	 * before their commit: [lease_rec, lease_rec_end) and the same for
	 * tokens, taken from the meta counters a block at a time.
	 */
	pthread_mutex_t	 lease_lock;
	uint64_t	 lease_rec, lease_rec_end;
	uint64_t	 lease_tok, lease_tok_end;
	uint64_t	 lease_size;	/* records the last lease took */
};

/* A parsed view of one field entry inside a stored record. */
struct field_view {
	const uint8_t	*entry;		/* the entry's bytes, entrylen of them */
	size_t		 entrylen;
	const char	*name;
	size_t		 namelen;
	int		 indexed;
	const uint8_t	*digest;
	uint64_t	 tok_seq;
	const uint8_t	*nonce;
	const uint8_t	*ct;
	size_t		 ctlen;
	const uint8_t	*tag;
};

/* A token resolved to its live record and field, inside a transaction. */
struct resolved {
	uint64_t	 rec_seq;
	const uint8_t	*rec;
	size_t		 reclen;
	struct field_view f;
};

/* The DEK's context: record block, type, flags, created, retain until. */
#define DEK_CTX_LEN	(16 + 2 + 8 + 8)

pv_status vault_meta_u64(struct pv_txn *t, const char *name, uint64_t *out)
	      PV_WUR;
pv_status vault_meta_set_u64(struct pv_txn *t, const char *name,
	      uint64_t val) PV_WUR;
void	  vault_id_block(uint8_t out[static 16], uint64_t seq,
	      const uint8_t *check);
pv_status vault_id_parse(struct vault *v, enum kms_id_domain d, const char *s,
	      size_t len, uint64_t *seq, uint8_t check[static CHECK_LEN])
	      PV_WUR;
void	  vault_dek_ctx(uint8_t ctx[static DEK_CTX_LEN], uint64_t seq,
	      const uint8_t *rec);
/* Fill val's MAC (after its two seqs) for an index entry under digest. */
pv_status vault_index_mac(struct vault *v, uint8_t val[static INDEX_VAL_LEN],
	      const uint8_t digest[static PV_HMAC_LEN]) PV_WUR;
/*
 * A live record by seq, its check compared (if not NULL) in constant time:
 * PV_ENOTFOUND, PV_ESHREDDED for a tombstone, PV_EINTEGRITY.
 */
pv_status vault_record_fetch(struct pv_txn *t, uint64_t seq,
	      const uint8_t *check, const uint8_t **rec, size_t *len) PV_WUR;
/*
 * Append an audit event inside t (audit.c); *seq (if not NULL) is its
 * sequence number.  Also indexes it by each record for read listings and
 * request limits.
 */
/*
 * Shred epochs completed (meta "epochs", under a row MAC; 0 for a vault
 * from before the counter).  PV_EINTEGRITY (an alarm) for a row that
 * fails its MAC.
 */
pv_status vault_epochs_get(struct vault *v, struct pv_txn *t, uint64_t *out)
	      PV_WUR;
/* The newest event's seq and chain hash; 0 and zeros for an empty log. */
pv_status vault_audit_head(struct pv_txn *t, uint64_t *seq,
	      uint8_t hash[static PV_HMAC_LEN]) PV_WUR;
pv_status vault_audit_in(struct vault *v, struct pv_txn *t,
	      const struct vault_event *ev, uint64_t *seq) PV_WUR;
/*
 * The stored event p (len bytes, chain hash included): its time, kind and
 * record seqs (nrecs big-endian seqs at *recs, pointing into p), for the
 * archive's removal of its index rows.  PV_EINTEGRITY if it does not parse.
 */
pv_status vault_audit_event_info(const uint8_t *p, size_t len,
	      uint64_t *time, int *kind, const uint8_t **recs, size_t *nrecs)
	      PV_WUR;
/*
 * The audit checkpoint in t (archive.c): seq 0 if there is none;
 * PV_EINTEGRITY (an alarm) if it is malformed or fails its row MAC.
 * vault_audit_ckpt_sig_check checks its signature with the public key of
 * the version it names: PV_EINTEGRITY (an alarm) if it fails.
 */
pv_status vault_audit_ckpt_get(struct vault *v, struct pv_txn *t,
	      struct vault_audit_checkpoint *out) PV_WUR;
pv_status vault_audit_ckpt_sig_check(struct vault *v,
	      const struct vault_audit_checkpoint *ck) PV_WUR;
/*
 * Events of kind (VAULT_EK_*) about record rec at or after since, oldest
 * first, at most max, from snapshot t.
 */
pv_status vault_audit_by_record(struct vault *v, struct pv_txn *t,
	      uint64_t rec, int kind, uint64_t since, size_t max,
	      struct vault_audit_entry **out, size_t *n) PV_WUR;

/*
 * Whether another request of kind (VAULT_EK_ACCESS) on record seq fits the
 * configured window: PV_ELIMIT with *retry seconds if not; if it fits, it
 * is counted in t, so call it only for a request about to be granted.
 */
pv_status vault_request_limit(struct vault *v, struct pv_txn *t, uint64_t seq,
	      int kind, uint64_t *retry) PV_WUR;
/*
 * Shred live record seq inside t (retention), its tombstone naming audit
 * event audit_seq; counts the KEK's wraps.
 */
pv_status vault_shred_in(struct vault *v, struct pv_txn *t, uint64_t seq,
	      const char *reason, uint64_t audit_seq) PV_WUR;

/* Record seq under retain-until in the retention table, or remove it. */
pv_status vault_retain_put(struct pv_txn *t, uint64_t until, uint64_t seq)
	      PV_WUR;
pv_status vault_retain_del(struct pv_txn *t, uint64_t until, uint64_t seq)
	      PV_WUR;

/* What a refusal of a bad field name says (vault_field_why). */
#define VAULT_NAME_RULE	"name must match [a-z][a-z0-9_]{0,63}"

/* qsort's order of uint64_t record numbers. */
int	  vault_seq_cmp(const void *a, const void *b);

/*
 * The look-ups of rq without the access rules (vault_lookup_access does
 * those): every value's matches, from one snapshot, into *rq->matches,
 * logged first as ev (NULL: as this process's own "lookup") with the field
 * and every record found.  Statuses as vault_lookup_access's.
 */
pv_status vault_lookup_many(struct vault *v, const struct vault_event *ev,
	      const struct vault_lookup_req *rq) PV_WUR;

/*
 * Log one of this process's own operations as v->actor (nothing if none
 * is set): inside t if not NULL, else in a commit of its own.
 */
pv_status vault_log_op(struct vault *v, struct pv_txn *t, const char *action,
	      int kind, const uint64_t *recs, size_t nrecs, const char *reason,
	      uint64_t *seq) PV_WUR;

/*
 * After a long job's transaction that began at since_us (pv_mono_us),
 * leave the writer lock free for a while, so that the job holds it at
 * most v->duty percent of the time.
 */
void	  vault_pace(struct vault *v, uint64_t since_us);

pv_status vault_txn_begin(struct vault *v, int write, struct pv_txn **out)
	      PV_WUR;
pv_status vault_id_format(struct vault *v, enum kms_id_domain d, uint64_t seq,
	      const uint8_t *check, char out[static VAULT_ID_STRLEN + 1])
	      PV_WUR;
/*
 * A token to its live record and field in t: PV_ETOKEN, PV_ENOTFOUND,
 * PV_ESHREDDED, PV_EINTEGRITY.  On PV_ESHREDDED (and only then on a
 * failure) out->rec_seq and out->f.name, f.namelen name the shredded record
 * and the token's field, for the audit log; nothing else of out is set.
 */
pv_status vault_token_resolve(struct vault *v, struct pv_txn *t,
	      const char *token, size_t len, struct resolved *out) PV_WUR;

/*
 * The record codec (record.c): the one encoder and decoder of field
 * entries and the one AAD builder (vault id, record block, token number,
 * field name) that every writer and reader uses.
 */

/* A record's field count, read from or written to its header. */
size_t	  vault_record_nfields(const uint8_t *rec);
void	  vault_record_set_nfields(uint8_t *rec, size_t n);

/* One field entry to encode; value is sealed under the record's DEK. */
struct field_in {
	const char	*name;
	size_t		 namelen;
	const uint8_t	*digest;	/* PV_HMAC_LEN bytes; NULL: not indexed */
	uint64_t	 tok_seq;
	const char	*value;
	size_t		 len;
	const uint8_t	*nonce;		/* fresh random bytes; NULL: drawn here */
};

/* The bytes a field entry takes. */
size_t	  vault_field_size(size_t namelen, int indexed, size_t len);
/*
 * Encode f at *pos (vault_field_size bytes) for the record whose id block
 * is rec, sealing its value under dek; *pos moves past it.  PV_ECRYPTO.
 */
pv_status vault_field_put(struct vault *v, const uint8_t rec[static 16],
	      const uint8_t *dek, const struct field_in *f, uint8_t **pos)
	      PV_WUR;
/*
 * Decode the field entry at *pos (R_FIELDS for the first) and move *pos
 * past it.  PV_EINTEGRITY for bytes that do not parse.
 */
pv_status vault_field_next(const uint8_t *rec, size_t len, size_t *pos,
	      struct field_view *f) PV_WUR;
/*
 * Decrypt a resolved field into a fresh secure buffer of f.ctlen + 1
 * bytes (NUL-terminated), released with pv_secure_free.  PV_EKEYSTATE,
 * PV_EINTEGRITY (altered, moved or renamed bytes), PV_ENOMEM.
 */
pv_status vault_field_open(struct vault *v, const struct resolved *r,
	      char **out) PV_WUR;
/*
 * The blind-index digest of a value of an indexed field, under INDEX key
 * version (0: the active one).  PV_EVALUE, PV_ETOOBIG, PV_EKEYSTATE.
 */
pv_status vault_field_digest(struct vault *v, uint32_t version,
	      const char *name, size_t namelen, const char *value, size_t len,
	      uint8_t digest[static PV_HMAC_LEN]) PV_WUR;
/* An index entry's value: record seq, token seq, and its MAC. */
pv_status vault_index_val(struct vault *v, uint64_t seq, uint64_t tok_seq,
	      const uint8_t digest[static PV_HMAC_LEN],
	      uint8_t val[static INDEX_VAL_LEN]) PV_WUR;
/*
 * Delete field f's index entry of record seq, if there is one; its value
 * is left in val (if not NULL), for an entry moved elsewhere.
 */
pv_status vault_index_del(struct vault *v, struct pv_txn *t, uint64_t seq,
	      const struct field_view *f, uint8_t *val) PV_WUR;
/* A token's value (record seq, check, field name); returns its length. */
size_t	  vault_token_val(uint8_t out[static TOKEN_VAL_MAX], uint64_t rec_seq,
	      const uint8_t check[static CHECK_LEN], const char *name,
	      size_t namelen);

/*
 * An integrity failure in the data directory (a forged or rolled-back
 * value): logged as an alarm, naming what and where but never a value,
 * and counted for /metrics.  Returns PV_EINTEGRITY for the caller to pass
 * on.
 */
pv_status vault_alarm(struct vault *v, const char *what, const char *where);

/*
 * Row authentication (docs/format.md, "what authenticates each table"):
 * HMAC-SHA256 under the row subkey of the IDS key over the table, the
 * row's key and its value (without the MAC), stored after the value.
 */
#define VAULT_ROW_MAC_LEN	PV_HMAC_LEN
pv_status vault_row_mac(struct vault *v, enum pv_table tab, const void *key,
	      size_t klen, const void *val, size_t vlen,
	      uint8_t out[static VAULT_ROW_MAC_LEN]) PV_WUR;
/*
 * Prove a live record's header (type, flags, created, retain until) by
 * unwrapping its DEK, whose AAD binds them, before deciding on them
 * without opening the record (shred, sweep, hold).  PV_EINTEGRITY (an
 * alarm) if it was edited; PV_EKEYSTATE if its KEK may not unwrap (PV_OK
 * if the KEK was destroyed: nothing is left to protect).
 */
/*
 * Tombstone ts (len bytes) of record seq: PV_OK with *body its length
 * without the row MAC; PV_EINTEGRITY (an alarm) if it is malformed, its
 * MAC fails, or it has none in an upgraded vault.
 */
pv_status vault_tomb_verify(struct vault *v, uint64_t seq, const uint8_t *ts,
	      size_t len, size_t *body) PV_WUR;
/*
 * MAC every tombstone that has none, in batches of their own commits
 * (resumable: a rerun skips those done); *done how many.  Before the
 * upgrade's mark.
 */
pv_status vault_tomb_upgrade(struct vault *v, uint64_t *done) PV_WUR;
pv_status vault_header_verify(struct vault *v, uint64_t seq,
	      const uint8_t *rec, size_t len) PV_WUR;
/*
 * Upgrade a vault made before rows were authenticated (access.c): MAC
 * every API key in bounded transactions, then mark the vault.  Resumes
 * where a crash left it.
 */
pv_status vault_auth_upgrade(struct vault *v) PV_WUR;

#endif /* VAULT_INT_H */
