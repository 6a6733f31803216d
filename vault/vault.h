/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vault.h: records of personal data, envelope-encrypted, behind tokens.
 *
 * A record is a set of named fields.  Each record has its own random DEK,
 * wrapped by the active KEK; each field value is sealed with
 * AES-256-GCM under that DEK, its AAD binding the vault id, the record id
 * and the field name.  Every field gets a token; email and phone fields
 * also get a blind-index entry for exact look-ups.  Record ids and tokens
 * are a keyed permutation of ascending sequence numbers plus a random check
 * value: unguessable, and revealing nothing, creation order included.
 *
 * Identifiers are strings: "rec_" or "tok_" followed by 22 base64url
 * characters (VAULT_ID_STRLEN characters in all).
 *
 * A struct vault is safe to share between threads, and several processes
 * may open the same data directory at once.
 *
 * NULL policy, ownership and out-parameters as in pv.h: arguments are
 * borrowed; returned objects are the caller's, released with the matching
 * _free.  Every function that reads or writes the store may also return
 * PV_ENOMEM, PV_ECRYPTO, PV_ESTORE, PV_EIO, and, from the key ring it
 * reloads when another process changed it, PV_EINTEGRITY and PV_EFORMAT;
 * every write may return PV_EFULL.
 */
#ifndef VAULT_H
#define VAULT_H

#include "pv.h"

/*
 * This header is the whole contract for the layers above (api/, tools/):
 * the key management and the store below are the vault's own business,
 * and no name of theirs appears here.
 */

#define VAULT_ID_STRLEN		(4 + PV_B64URL16_LEN)
#define VAULT_LOOKUP_MAX	1000	/* matches returned by one look-up */
#define VAULT_BATCH_MAX		1000	/* records or tokens per call */
#define VAULT_DAY		86400ull	/* seconds */
#define VAULT_RETENTION_DAYS_MAX 36500	/* a record's retention_days */
#define VAULT_KEY_BATCH_MAX	100000	/* records per key-job commit */
#define VAULT_VAULT_ID_LEN	16	/* bytes of a vault's id */
#define VAULT_PASSPHRASE_MAX	1024	/* bytes of a passphrase */
#define VAULT_KDF_MEMORY_MIN	8192	/* KiB */

struct vault;

/*
 * How to obtain the root key.  A vault records at creation whether its
 * root is a key file or a passphrase; opening consults only the matching
 * member.
 */
struct vault_unlock {
	const char	*key_file;	/* path to a key file */
	int		 use_passphrase; /* vault_create: passphrase root */
	/*
	 * Called for a passphrase vault: writes at most cap bytes to buf and
	 * their count to *len; PV_EPASSPHRASE if none can be had.
	 */
	pv_status	(*passphrase)(void *arg, char *buf, size_t cap,
			    size_t *len);
	void		*arg;
	uint32_t	 kdf_time;	/* vault_create: Argon2id passes, 0 = 3 */
	uint32_t	 kdf_memory_kib; /* vault_create: 0 = 65536 (64 MiB) */
};

struct vault_opts {
	const char		*data_dir;
	struct vault_unlock	 unlock;
	uint64_t		 map_size;	/* 0: the store's default */
};

/*
 * Write a new random root key to path as one base64 line, mode 0600,
 * refusing to replace anything (PV_EEXIST).  PV_EIO on other failures.
 */
pv_status vault_key_file_create(const char *path) PV_WUR;

/*
 * Create a vault in o->data_dir (created if absent, mode 0700).  PV_EEXIST
 * if it already holds one.  The root key must already exist (a key file:
 * vault_key_file_create) or be obtainable (a passphrase).  PV_EINVAL for
 * Argon2id costs out of bounds; PV_ENOTDIR, PV_EDIRPERM and the key-file
 * statuses of vault_open.
 */
pv_status vault_create(const struct vault_opts *o, struct vault **out) PV_WUR;

/*
 * Open the vault in o->data_dir.  PV_ENOVAULT if there is none;
 * PV_ENOTDIR if o->data_dir is not a directory, PV_EDIRPERM if group or
 * others may write it; PV_EFORMAT for an unknown or newer format; PV_EBADKEY for a wrong root
 * key or passphrase; PV_EKEYPERM, PV_EKEYFORMAT, PV_ENOTFOUND, PV_EIO
 * from the key file; PV_EINVAL for a key-file vault given no key file;
 * PV_EPASSPHRASE; PV_EINTEGRITY if the key ring was altered.
 */
pv_status vault_open(const struct vault_opts *o, struct vault **out) PV_WUR;
void	  vault_close(struct vault *v);

/* One named field; name and value need not be NUL-terminated. */
struct vault_field {
	const char	*name;
	size_t		 namelen;
	const char	*value;
	size_t		 len;
};

struct vault_record_in {
	const struct vault_field *fields;
	size_t			 nfields;
	int			 marketing;	  /* consent; default no */
	uint32_t		 retention_days;  /* 0: no set date */
};

/*
 * Why a record, a field or a value was refused, in words for the caller
 * (at most VAULT_WHY_MAX bytes with the NUL): which field and what is
 * wrong with it, never a byte of the value.  A field is named by its name
 * when that is a valid field name, else by its position ("field at index
 * 2", counting from 0), so that nothing a client chose is echoed unless it
 * is a valid name: "field email: not a valid email address", "field at
 * index 2: name must match [a-z][a-z0-9_]{0,63}", "field name: longer
 * than 4096 bytes", "more than 64 fields".
 */
#define VAULT_WHY_MAX		128

/* "field NAME: what" or "field at index I: what" (see VAULT_WHY_MAX). */
void	  vault_field_why(char why[static VAULT_WHY_MAX],
	      const struct vault_field *f, size_t index, const char *what);

/*
 * Check a record without storing it: PV_EFIELD for a bad or repeated
 * field name, PV_EVALUE for a value that is empty, not UTF-8 or not a
 * valid email or phone, PV_ETOOBIG over PV_FIELDS_MAX fields or
 * PV_VALUE_MAX bytes, PV_EINVAL for a record without fields or a
 * retention over VAULT_RETENTION_DAYS_MAX.  On failure why says which
 * field and why (its first bad field, in order).
 */
pv_status vault_record_check(const struct vault_record_in *r,
	      char why[static VAULT_WHY_MAX]) PV_WUR;
/*
 * The same for one field, at position index of its record (for why):
 * name, then length, then value.
 */
pv_status vault_field_check(const struct vault_field *f, size_t index,
	      char why[static VAULT_WHY_MAX]) PV_WUR;

struct vault_put_result {
	pv_status	  status;	/* this record's outcome */
	char		  id[VAULT_ID_STRLEN + 1];
	/*
	 * The caller points this at an array of the record's nfields
	 * strings; token i belongs to field i.
	 */
	char		(*tokens)[VAULT_ID_STRLEN + 1];
	char		  why[VAULT_WHY_MAX];	/* why it was refused */
};

/*
 * Store n records (at most VAULT_BATCH_MAX) in one durable commit.  Each
 * record is checked first (vault_record_check; res[i].why says why one was
 * refused); the valid ones are stored even when others are
 * not, and res[i].status tells each record's outcome.  Returns PV_OK when
 * the commit succeeded (or nothing was valid), else the commit's failure,
 * which is then every valid record's status too: PV_EFULL when the map is
 * full or record numbers are spent (past 2^63).  Nothing is stored unless
 * PV_OK is returned.
 */
pv_status vault_put(struct vault *v, const struct vault_record_in *recs,
	      size_t n, struct vault_put_result *res) PV_WUR;

/*
 * The audit log.  Every request and every CLI operation that reads or
 * changes keys or records appends one event; a write's event commits in
 * the write's own transaction, a read's before its answer is released.
 * Functions here that take an event log what they did; a request they
 * refuse is the caller's to log (vault_audit), before it answers.
 * Events hold no personal value, no token and no secret.  Each carries
 * HMAC-SHA256(audit key, previous hash || seq || event), so editing,
 * deleting, reordering or inserting events breaks the chain.
 */
#define VAULT_ACTOR_MAX		64
#define VAULT_ACTION_MAX	32
#define VAULT_CODE_MAX		32
#define VAULT_REASON_MAX	200
/*
 * A request's id, [A-Za-z0-9._-]{1,64} (the API checks the form; the log
 * stores what it is given, cut to this length, controls as '?').
 */
#define VAULT_REQUEST_ID_MAX	64

/*
 * What one token of a read (detokenize, get) got, in the read's event:
 * its record and field where the token led to them, never the token or a
 * value.
 */
enum vault_item_outcome {
	VAULT_ITEM_REVEALED = 1,	/* the value */
	VAULT_ITEM_MASKED = 2,		/* its masked form (and pseudonym) */
	VAULT_ITEM_REFUSED = 3,		/* nothing: code says why */
};
struct vault_item {
	uint64_t	 rec;		/* record seq (internal); 0: none */
	const char	*field;		/* field name, or NULL */
	int		 outcome;	/* enum vault_item_outcome */
	pv_status	 code;		/* refused: why; PV_OK otherwise */
};

struct vault_event {
	const char		*actor;		/* API key name, "cli", ... */
	const char		*action;	/* "detokenize", "kms.rotate" */
	int			 ok;		/* allowed and succeeded */
	const char		*code;		/* error code, or NULL */
	int			 purpose;	/* enum vault_purpose, or -1 */
	const char		*reason;	/* or NULL */
	const uint64_t		*recs;		/* record seqs (internal) */
	size_t			 nrecs;
	const char *const	*fields;	/* field names */
	size_t			 nfields;
	int			 kind;		/* VAULT_EK_*: how it counts */
	const struct vault_item	*items;		/* per token, in order */
	size_t			 nitems;	/* at most VAULT_BATCH_MAX */
	const char		*request_id;	/* the HTTP request's, or NULL */
};
enum { VAULT_EK_NONE, VAULT_EK_READ, VAULT_EK_ACCESS, VAULT_EK_DELETE };

/* Store records as vault_put does, with ev (its recs filled in) in the
 * same commit. */
pv_status vault_put_ev(struct vault *v, const struct vault_record_in *recs,
	      size_t n, struct vault_put_result *res,
	      const struct vault_event *ev) PV_WUR;

/*
 * Name this process in the events of operations that take no event of
 * their own (the CLI's: "cli"); the string MUST outlive the vault.  Until
 * one is set, those operations are not logged.
 */
void	  vault_set_actor(struct vault *v, const char *actor);

/*
 * Append ev in a commit of its own (group-committed); *seq its number.
 * PV_EINVAL over VAULT_BATCH_MAX records or items.
 */
pv_status vault_audit(struct vault *v, const struct vault_event *ev,
	      uint64_t *seq) PV_WUR;

/* One item of an event read back: id and field "" where none. */
struct vault_audit_item {
	char		id[VAULT_ID_STRLEN + 1];
	char		field[PV_FIELD_NAME_MAX + 1];
	int		outcome;	/* enum vault_item_outcome */
	pv_status	code;		/* refused: why; PV_OK otherwise */
};

/* One event read back, for export and the API. */
struct vault_audit_entry {
	uint64_t	seq;
	uint64_t	time;
	int		ok;
	int		purpose;	/* -1: none */
	char		actor[VAULT_ACTOR_MAX + 1];
	char		action[VAULT_ACTION_MAX + 1];
	char		code[VAULT_CODE_MAX + 1];
	char		reason[VAULT_REASON_MAX + 1];
	size_t		nrecs;
	char		(*ids)[VAULT_ID_STRLEN + 1];	/* nrecs record ids */
	size_t		nfields;
	char		(*fields)[PV_FIELD_NAME_MAX + 1];
	size_t		nitems;		/* 0 for events made before items */
	struct vault_audit_item *items;
	/* The HTTP request's id; "" for none and in events made before. */
	char		request_id[VAULT_REQUEST_ID_MAX + 1];
};
void	  vault_audit_entries_free(struct vault_audit_entry *e, size_t n);

/*
 * A page of the log: the events after seq after up to seq end
 * (VAULT_AUDIT_END_NONE: the newest), oldest first, each checked against
 * the chain (PV_EINTEGRITY if one does not verify); at most limit
 * (1..VAULT_BATCH_MAX, else PV_EINVAL) of them, and fewer where more
 * would take the page over VAULT_AUDIT_PAGE_BYTES stored bytes, but never
 * none while one is due.  *out (release with vault_audit_entries_free)
 * holds *n; *last is the newest event's seq in the same snapshot (0 for
 * an empty log), so that a reader can fix where its paging ends.  Events
 * up to the checkpoint were archived: a page after a seq below it starts
 * at the checkpoint, and *archived (if not NULL) is the checkpoint's seq
 * in the same snapshot (0: nothing was archived).
 */
#define VAULT_AUDIT_END_NONE	UINT64_MAX
#define VAULT_AUDIT_PAGE_BYTES	(512u << 10)
pv_status vault_audit_read(struct vault *v, uint64_t after, uint64_t end,
	      size_t limit, struct vault_audit_entry **out, size_t *n,
	      uint64_t *last, uint64_t *archived) PV_WUR;

/*
 * Audit retention.  The oldest events can be moved out of the vault into
 * a signed archive (piivault audit archive writes the file; its format is
 * in docs/format.md) and removed, leaving a checkpoint: the last archived
 * event's seq and chain hash, from which the rest of the chain verifies.
 * The checkpoint carries a row MAC (K_row), which only the vault can
 * make, and an Ed25519 signature under the active signing key, so that a
 * forged or moved checkpoint hiding deleted events is an integrity error.
 * Fields are private but for reading.
 */
struct vault_audit_checkpoint {
	uint64_t	seq;		/* last event archived; 0: none */
	uint64_t	archived;	/* events archived in all */
	uint64_t	before;		/* the last archive's DATE */
	uint64_t	created;	/* when the last archive was made */
	uint32_t	sign_version;	/* the signing key that signed it */
	uint8_t		hash[PV_HMAC_LEN];	/* chain hash h(seq) */
	uint8_t		archive_hash[PV_HMAC_LEN]; /* its archive's hash */
	uint8_t		sig[PV_ED25519_SIG_LEN];
};

/*
 * Check the whole chain, from the checkpoint if there is one (into *ck,
 * if not NULL: seq 0 without one).  PV_OK with *count events, or
 * PV_EINTEGRITY with *bad the first sequence number that does not verify
 * (an edited, reordered or inserted event, or a gap where one was
 * deleted), *bad 0 if the checkpoint itself fails its MAC or signature.
 */
pv_status vault_audit_verify(struct vault *v, uint64_t *count, uint64_t *bad,
	      struct vault_audit_checkpoint *ck) PV_WUR;

/*
 * What an archive holds, as its first line says: the events first..last
 * (count of them, no gaps) of vault vault_id, every one older than before
 * (seconds since the epoch), made at created and signed by signing key
 * version sign_version.
 */
struct vault_archive_head {
	char		vault_id[2 * VAULT_VAULT_ID_LEN + 1];
	uint64_t	first;
	uint64_t	last;
	uint64_t	count;
	uint64_t	before;
	uint64_t	created;
	uint32_t	sign_version;
};

/*
 * Plan an archive of the events older than before (time < before) after
 * the checkpoint, into *out (created now, signed by the active signing
 * key).  The events archived are a prefix of the log: it stops at the
 * first event at or after before.  PV_ENOTFOUND if there is none;
 * PV_EINTEGRITY (an alarm) if the checkpoint fails.
 */
pv_status vault_audit_archive_plan(struct vault *v, uint64_t before,
	      struct vault_archive_head *out) PV_WUR;

/*
 * The hash chain over an archive's lines: c = HMAC-SHA256 under the
 * public key "piivault-audit-archive-v1" of prev (NULL for the first
 * line) and the line's bytes.  Anyone can compute it; the signature over
 * the last one is what authenticates.  PV_ECRYPTO.
 */
pv_status vault_archive_line_hash(uint8_t out[static PV_HMAC_LEN],
	      const uint8_t *prev, const char *line, size_t len) PV_WUR;

/*
 * The exact bytes an archive's signature covers, NUL-terminated, into
 * out: "piivault-audit-archive-v1" with h's members and hash, the last
 * line's chain hash (docs/format.md).
 */
#define VAULT_ARCHIVE_MSG_MAX	512
void	  vault_archive_message(char out[static VAULT_ARCHIVE_MSG_MAX],
	      const struct vault_archive_head *h,
	      const uint8_t hash[static PV_HMAC_LEN]);
/*
 * Sign an archive with h->sign_version, which must still be the active
 * signing key (PV_EKEYSTATE after a rotation: plan again).  Check one
 * against a public key: PV_OK or PV_EINTEGRITY.
 */
pv_status vault_archive_sign(struct vault *v,
	      const struct vault_archive_head *h,
	      const uint8_t hash[static PV_HMAC_LEN],
	      uint8_t sig[static PV_ED25519_SIG_LEN]) PV_WUR;
pv_status vault_archive_verify(const struct vault_archive_head *h,
	      const uint8_t hash[static PV_HMAC_LEN],
	      const uint8_t sig[static PV_ED25519_SIG_LEN],
	      const uint8_t pub[static PV_ED25519_LEN]) PV_WUR;

/*
 * Once the archive of h (chain hash hash) is durable: in one commit,
 * write the checkpoint at h->last, log an "audit.archive" event after it,
 * and remove the first batch (1..VAULT_KEY_BATCH_MAX, else PV_EINVAL) of
 * the archived events with their per-record index rows; *removed counts
 * them.  PV_EBUSY if the checkpoint moved since the plan (another
 * archive); PV_EINTEGRITY if event h->last is not there.  Then call
 * vault_audit_archive_prune until it removes nothing.
 */
pv_status vault_audit_archive_commit(struct vault *v,
	      const struct vault_archive_head *h,
	      const uint8_t hash[static PV_HMAC_LEN], size_t batch,
	      uint64_t *removed) PV_WUR;
/*
 * Remove up to batch archived events (at or before the checkpoint) still
 * in the store, in one commit; *removed counts them (0: none is left).
 * Resumes a removal that was interrupted: the chain verifies from the
 * checkpoint whatever is left below it.  PV_EINVAL for a bad batch.
 */
pv_status vault_audit_archive_prune(struct vault *v, size_t batch,
	      uint64_t *removed) PV_WUR;

/*
 * The privacy policy's knobs: default retention for records created
 * without one, and how many access requests one record may get answered
 * per window (0: no limit).  Deletion requests are not limited: one is
 * granted once, since it shreds the record, and neither a refusal nor a
 * repeat counts.
 */
struct vault_policy {
	uint32_t	retention_days;		/* 0: keep until deleted */
	uint32_t	request_limit;		/* default 3 */
	uint64_t	request_window;		/* seconds, default 30 days */
};
#define VAULT_REQUEST_LIMIT_DEFAULT	3
#define VAULT_REQUEST_WINDOW_DEFAULT	(30 * VAULT_DAY)
void	  vault_set_policy(struct vault *v, const struct vault_policy *p);

/* Everything about one record, for the person it belongs to. */
#define VAULT_READS_MAX		1000
struct vault_record_field {
	char	 name[PV_FIELD_NAME_MAX + 1];
	char	 token[VAULT_ID_STRLEN + 1];
	char	*value;			/* secure memory */
	size_t	 len;
};
struct vault_record_view {
	char			 id[VAULT_ID_STRLEN + 1];
	int			 marketing;
	int			 hold;
	uint64_t		 created;
	uint64_t		 retain_until;	/* 0: none */
	size_t			 nfields;
	struct vault_record_field fields[PV_FIELDS_MAX];
	/* Who read its values: detokenize events, oldest first. */
	struct vault_audit_entry *reads;
	size_t			 nreads;
};
void	  vault_record_view_free(struct vault_record_view *r);

/*
 * Access request (ev: actor, action).  Counted against the request limit
 * and logged before anything is returned, in one commit; only a request
 * answered PV_OK counts.  PV_ELIMIT with *retry seconds when over it
 * (logged as refused, with the record; not counted).  PV_ETOKEN,
 * PV_ENOTFOUND, PV_ESHREDDED for the id, PV_EINTEGRITY and PV_EKEYSTATE
 * for a value that cannot be opened (not logged, not counted).  *logged
 * says whether the vault wrote the request's event.
 */
pv_status vault_record_access(struct vault *v, const struct vault_event *ev,
	      const char *id, size_t len, struct vault_record_view **out,
	      uint64_t *retry, int *logged) PV_WUR;

/*
 * What the vault holds about a record, without a value and without a
 * token: the view vault_record_access gives, with each field's name only
 * (value NULL, len 0, token ""), and the same reads.  Not an access
 * request: neither limited nor counted.  The header (consent, hold,
 * dates) is proven through the record's wrapped DEK first: PV_EINTEGRITY
 * (an alarm) if it was edited, PV_EKEYSTATE if its KEK may no longer
 * unwrap.  Logged as ev (with the record) before it returns; PV_ETOKEN,
 * PV_ENOTFOUND, PV_ESHREDDED for the id (not logged).  *logged says
 * whether the vault wrote the request's event.
 */
pv_status vault_record_metadata(struct vault *v, const struct vault_event *ev,
	      const char *id, size_t len, struct vault_record_view **out,
	      int *logged) PV_WUR;

/*
 * Correction of record c->id: fields with a value replace or add, fields
 * with value NULL are removed.  Existing tokens keep resolving, to the new
 * values; the blind index follows.  c->tokens/c->names (PV_FIELDS_MAX
 * each; tokens may be NULL) receive every field's token after the change,
 * *c->ntokens of them.  PV_EFIELD, PV_EVALUE,
 * PV_ETOOBIG, PV_EINVAL (nothing left) as vault_record_check would say of
 * the result (logged as refused, with the record); PV_ENOTFOUND,
 * PV_ESHREDDED, PV_ETOKEN for the id (not logged); PV_EINVAL, PV_ETOOBIG
 * or PV_EFIELD for a patch of no, too many or repeated fields (not
 * logged); PV_EFULL when token numbers are spent; PV_EKEYSTATE if the
 * record's KEK may no longer unwrap.  *c->logged says whether the vault
 * wrote the request's event; c->why (VAULT_WHY_MAX bytes) says why a
 * patch or its result was refused (PV_EFIELD, PV_EVALUE, PV_ETOOBIG,
 * PV_EINVAL), field positions counting in the patch.
 */
#define VAULT_FIELDS_PATCH_MAX	PV_FIELDS_MAX
struct vault_correction {
	const char			*id;		/* the record */
	size_t				 len;
	const struct vault_field	*fields;	/* the patch */
	size_t				 nfields;	/* 1..PATCH_MAX */
	char			       (*tokens)[VAULT_ID_STRLEN + 1];
	char			       (*names)[PV_FIELD_NAME_MAX + 1];
	size_t				*ntokens;	/* out */
	int				*logged;	/* out */
	char				*why;	/* out: VAULT_WHY_MAX bytes */
};
pv_status vault_record_correct(struct vault *v, const struct vault_event *ev,
	      const struct vault_correction *c) PV_WUR;

/* Marketing consent, and legal hold (a held record is neither shredded
 * nor swept).  The record's DEK is re-wrapped for its new header. */
pv_status vault_record_consent(struct vault *v, const struct vault_event *ev,
	      const char *id, size_t len, int marketing) PV_WUR;
pv_status vault_record_hold(struct vault *v, const struct vault_event *ev,
	      const char *id, size_t len, int hold) PV_WUR;

/*
 * Shred every record past its retention date that is not held, in
 * transactions of batch records; with dry_run only count.  *shredded and
 * *held say how many.
 */
pv_status vault_retention_sweep(struct vault *v, int dry_run, size_t batch,
	      uint64_t *shredded, uint64_t *held) PV_WUR;

/* A decrypted value.  value lives in secure memory. */
struct vault_value {
	char		 field[PV_FIELD_NAME_MAX + 1];
	char		 id[VAULT_ID_STRLEN + 1];	/* its record */
	char		*value;		/* NUL-terminated, len bytes */
	size_t		 len;
};
void	  vault_value_free(struct vault_value *val);

/*
 * Whether s is a token by its form ("tok_" and 22 base64url characters,
 * canonical), whether or not one such exists.
 */
int	  vault_token_valid(const char *s, size_t len);

/*
 * Resolve a token to its value.  PV_ETOKEN if it is malformed,
 * PV_ENOTFOUND if no such token exists, PV_ESHREDDED if its record was
 * shredded, PV_EKEYSTATE if its KEK may no longer unwrap, PV_EINTEGRITY if
 * the stored bytes were altered, moved or renamed; PV_EUNAVAIL if the
 * read could not be logged (nothing is returned then).  With an actor set
 * (vault_set_actor), every call that reaches the store is logged, failed
 * or not, before it returns: action "get", one item (the record and field
 * where the token led to them; refused with its status on failure), and
 * on success the record (kind read) and the field.
 */
pv_status vault_get(struct vault *v, const char *token, size_t len,
	      struct vault_value **out) PV_WUR;

struct vault_match {
	char	id[VAULT_ID_STRLEN + 1];
	char	token[VAULT_ID_STRLEN + 1];
	/* Research look-ups: the record's pseudonym; id and token "". */
	char	pseudonym[4 + PV_B64URL16_LEN + 1];
};

/*
 * Exact look-up of a value through the blind index; the value is
 * normalized as when it was stored.  PV_ENOTINDEXED for a field without an
 * index, PV_EFIELD, PV_EVALUE or PV_ETOOBIG for bad input, PV_EINTEGRITY if
 * an index entry was altered or moved, PV_EKEYSTATE if an index key may
 * not be used, PV_EUNAVAIL if the look-up could not be logged (nothing is
 * returned then).  *out (free()) holds *n matches, oldest first, at most
 * VAULT_LOOKUP_MAX; shredded records are skipped.
 */
pv_status vault_lookup(struct vault *v, const char *field, size_t fieldlen,
	      const char *value, size_t len, struct vault_match **out,
	      size_t *n) PV_WUR;

/*
 * A batch look-up: n values of one field (at most VAULT_BATCH_MAX), each
 * looked up as vault_lookup does, all from one snapshot.  The answer is
 * bounded: its matches, all values together, are at most
 * VAULT_LOOKUP_MAX (one audit event lists their records).  Values are
 * answered in order; one whose matches would take the answer over that
 * bound gets PV_ETOOBIG ("the answer is full"), and so does every value
 * after it, which is not looked up at all: the caller asks for those
 * again in another request.
 */
struct vault_lookup_result {
	pv_status	 status;	/* PV_OK, or why this value failed */
	char		 why[VAULT_WHY_MAX];	/* words for a failed value */
	size_t		 first;		/* its matches: (*matches)[first..] */
	size_t		 n;		/* how many */
};

struct vault_lookup_req {
	const char			*field;
	size_t				 fieldlen;
	const char *const		*values;	/* lens[i] bytes each */
	const size_t			*lens;
	size_t				 n;		/* 1..VAULT_BATCH_MAX */
	size_t				 value_max;	/* 0: PV_VALUE_MAX */
	struct vault_lookup_result	*res;		/* n results, out */
	struct vault_match	       **matches;	/* out, free() */
};

/*
 * A batch look-up for a caller, under detokenize's rules.  Whole-request
 * failures: PV_EFORBIDDEN unless the key is a writer or reader that may
 * read rq->field, PV_EPURPOSE if the purpose is not among the key's,
 * PV_EREASON if it is legal without a reason (or the reason is not
 * valid), PV_EFIELD for a field name that is not valid, PV_ENOTINDEXED
 * for a field without a blind index, PV_ETOOBIG for n out of bounds,
 * PV_EINTEGRITY if an index entry was altered or moved, PV_EKEYSTATE if
 * an index key may not be used, PV_EUNAVAIL if the look-up could not be
 * logged (nothing is returned then).  Otherwise rq->res[i] answers
 * values[i]: PV_OK with its matches, oldest first, at most
 * VAULT_LOOKUP_MAX, shredded records left out; or PV_EVALUE (empty, not
 * UTF-8, not a valid email or phone), PV_ETOOBIG (longer than value_max,
 * or the answer is full), with why.  Marketing look-ups leave out the
 * records without marketing consent; research look-ups answer each
 * record's pseudonym only (a keyed hash of the record, not of a value),
 * with id and token "".  ev (its purpose and reason set by the caller) is
 * logged once, with the field and every record the index found for any
 * value, before anything is returned.
 */
struct vault_access;		/* below, with detokenize */
pv_status vault_lookup_access(struct vault *v, const struct vault_access *a,
	      const struct vault_event *ev, const struct vault_lookup_req *rq)
	      PV_WUR;

/* Whether a field name has a blind index (email, phone). */
int	  vault_field_indexed(const char *field, size_t len);

/*
 * Normalize a value of an indexed field into out (PV_VALUE_MAX bytes):
 * email trimmed and lower-cased, phone reduced to '+' and digits.
 * PV_EVALUE if it is not a valid email or phone.
 */
pv_status vault_normalize(char *out, size_t *outlen, const char *field,
	      size_t fieldlen, const char *value, size_t len) PV_WUR;

/* Commits made by this handle's group commit; for tests and metrics. */
uint64_t  vault_commits(struct vault *v);

/*
 * Access control.  API keys carry a role, the purposes they may state and
 * the fields they may read.  The secret ("pvk_" + 44 characters, 256 bits)
 * is shown once at creation and stored only as a keyed hash.
 */
enum vault_role {
	VAULT_ROLE_WRITER = 1,	/* creates records */
	VAULT_ROLE_READER,	/* detokenizes within purposes and fields */
	VAULT_ROLE_ADMIN,	/* manages records on a person's behalf */
	VAULT_ROLE_AUDITOR,	/* reads the audit log */
};

/* The purposes of the privacy policy; VAULT_P__COUNT bits in a mask. */
enum vault_purpose {
	VAULT_P_SERVICE,	/* deliver products, orders, customer service */
	VAULT_P_NOTICES,	/* important notices: no opting out */
	VAULT_P_MARKETING,	/* only while marketing consent is given */
	VAULT_P_RESEARCH,	/* masked values and pseudonyms only */
	VAULT_P_CONTEST,	/* a promotion the person entered */
	VAULT_P_PAYMENT,	/* banking partners */
	VAULT_P_LEGAL,		/* required by law: a reason is required */
	VAULT_P__COUNT
};

enum vault_reveal_mode { VAULT_REVEAL_PLAIN = 1, VAULT_REVEAL_MASKED = 2 };

#define VAULT_CERT_HASH_LEN	32
#define VAULT_APIKEY_NAME_MAX	64
#define VAULT_APIKEY_FIELDS_MAX	32
#define VAULT_APIKEY_SECRET_LEN	(4 + 2 * PV_B64URL16_LEN)
#define VAULT_APIKEY_DAYS_MAX	3650	/* a key's lifetime, days */
#define VAULT_APIKEY_OVERLAP_MAX (30 * VAULT_DAY) /* a rotation's, seconds */

struct vault_apikey {
	char		 name[VAULT_APIKEY_NAME_MAX + 1];
	enum vault_role	 role;
	uint32_t	 purposes;	/* 1u << enum vault_purpose */
	enum vault_reveal_mode reveal;
	size_t		 nfields;	/* 0: every field */
	char		 fields[VAULT_APIKEY_FIELDS_MAX][PV_FIELD_NAME_MAX + 1];
	uint64_t	 created;	/* when this secret was issued */
	uint64_t	 revoked;	/* 0, or when it was revoked */
	/*
	 * Expiry: expires_days (0 none, at most VAULT_APIKEY_DAYS_MAX) is
	 * the key's lifetime; expires is when this secret stops working (0
	 * never), created + expires_days days.  A rotation issues the new
	 * secret with the same lifetime from the rotation on.
	 */
	uint32_t	 expires_days;
	uint64_t	 expires;
	/*
	 * Not 0 for an old secret of a rotated key: when it stops working
	 * (the end of the overlap).  The current secret has 0.
	 */
	uint64_t	 replaced_until;
	/*
	 * With cert_bound, the key is accepted only over a connection whose
	 * client certificate's DER hashes (SHA-256) to cert_sha256.
	 */
	int		 cert_bound;
	uint8_t		 cert_sha256[VAULT_CERT_HASH_LEN];
};

const char *vault_role_name(enum vault_role r);
const char *vault_purpose_name(enum vault_purpose p);
/* PV_EINVAL for an unknown name. */
pv_status vault_role_parse(const char *s, size_t len, enum vault_role *out)
	      PV_WUR;
pv_status vault_purpose_parse(const char *s, size_t len,
	      enum vault_purpose *out) PV_WUR;
/* Names match [a-z0-9][a-z0-9_.-]{0,63}. */
int	  vault_apikey_name_valid(const char *s, size_t len);

/*
 * Create an API key from spec (name, role, purposes, reveal, fields,
 * expires_days; the times are set here) and write its secret,
 * NUL-terminated.  PV_EEXIST if the name is taken, PV_EINVAL for a bad
 * name, role, field or lifetime.
 */
pv_status vault_apikey_create(struct vault *v, const struct vault_apikey *spec,
	      char secret[static VAULT_APIKEY_SECRET_LEN + 1]) PV_WUR;
/*
 * Every key's secrets (the current one, and the old ones of a rotation
 * until the next rotation drops those past their overlap), in the table's
 * order; *out is released with free().
 */
pv_status vault_apikey_list(struct vault *v, struct vault_apikey **out,
	      size_t *n) PV_WUR;
/* Revoke by name, every secret of it (old ones of a rotation too), at
 * once for every process.  PV_ENOTFOUND; revoking twice is PV_OK. */
pv_status vault_apikey_revoke(struct vault *v, const char *name) PV_WUR;
/*
 * Rotate key name: issue a new secret, written to secret NUL-terminated,
 * with the key's name, role, purposes, fields, reveal mode, certificate
 * binding and lifetime (expires_days from now); the old secret keeps
 * working overlap seconds more (0: it stops at once), then is refused as
 * an unknown key.  Old secrets past their overlap are dropped.  An expired
 * key may be rotated (that renews it).  PV_ENOTFOUND, PV_EKEYSTATE for a
 * revoked key, PV_EINVAL for an overlap over VAULT_APIKEY_OVERLAP_MAX.
 */
pv_status vault_apikey_rotate(struct vault *v, const char *name,
	      uint64_t overlap, char secret[static VAULT_APIKEY_SECRET_LEN + 1])
	      PV_WUR;
/*
 * Whether key works at now: not revoked, not expired, and not an old
 * secret past its overlap.
 */
int	  vault_apikey_live(const struct vault_apikey *key, uint64_t now);
/*
 * The key a secret belongs to.  PV_EUNAUTH if it is malformed, unknown,
 * revoked, expired, or an old secret past its overlap, all alike.  Reads
 * the store each time, so revocation takes effect at once.
 */
pv_status vault_apikey_auth(struct vault *v, const char *secret, size_t len,
	      struct vault_apikey *out) PV_WUR;

/* Whether key may read field (a key without a field list reads all). */
int	  vault_apikey_field_allowed(const struct vault_apikey *key,
	      const char *field, size_t len);

/* A caller asking for values: its key, its purpose, and why. */
struct vault_access {
	const struct vault_apikey *key;
	enum vault_purpose	 purpose;
	const char		*reason;	/* may be NULL */
};

#define VAULT_MASKED_MAX	320
#define VAULT_PSEUDONYM_STRLEN	(4 + PV_B64URL16_LEN)

/*
 * One token's answer.  value is in secure memory and is valid only during
 * the vault_reveal_fn call that receives it.
 */
struct vault_reveal {
	pv_status	 status;	/* PV_OK, or why this token failed */
	char		 field[PV_FIELD_NAME_MAX + 1];
	char		*value;		/* plain value, or NULL */
	size_t		 len;
	char		 masked[VAULT_MASKED_MAX + 1];	/* "" unless masked */
	char		 pseudonym[VAULT_PSEUDONYM_STRLEN + 1]; /* research */
};

/*
 * Receives the answer for tokens[i], in order, once per token.  It MUST
 * copy out what it keeps: r and its value are wiped when it returns.  Any
 * status but PV_OK stops the request, which then returns that status.
 */
typedef pv_status (*vault_reveal_fn)(void *arg, size_t i,
	      const struct vault_reveal *r);

/*
 * Answer n tokens (at most VAULT_BATCH_MAX) for a caller, from one
 * snapshot, one token at a time: each value is decrypted, handed to fn and
 * wiped before the next, so a request holds one value (and its keys) in
 * the secure heap whatever n is.  Whole-request failures: PV_EFORBIDDEN
 * unless the key is a reader, PV_EPURPOSE if the purpose is not among its
 * purposes, PV_EREASON if the purpose is legal and no reason is given,
 * PV_ETOOBIG, PV_EUNAVAIL if the secure heap has no room for a value now
 * (try again), PV_ENOMEM, PV_ESTORE and the like for failures that are not
 * a token's.  Otherwise each answer's status is PV_OK or: PV_ETOKEN,
 * PV_ENOTFOUND, PV_ESHREDDED, PV_EFORBIDDEN (field not among the key's),
 * PV_ECONSENT (marketing without consent), PV_EKEYSTATE, PV_EINTEGRITY.
 * Research and masked keys get masked (and, for research, pseudonym)
 * instead of value.
 *
 * With ev (actor, action, purpose, reason), an answered request is logged
 * once every token is answered (kind read): the records and fields whose
 * values or masked forms it released, and an item per token, in order,
 * saying what the token got (vault_item); if the event cannot be written,
 * PV_EUNAVAIL.  Unless PV_OK is returned, the caller MUST wipe and discard
 * everything fn received and release none of it: no access without a
 * record.  Refusals are the caller's to log.
 */
pv_status vault_detokenize(struct vault *v, const struct vault_access *a,
	      const struct vault_event *ev, const char *const *tokens,
	      const size_t *lens, size_t n, vault_reveal_fn fn,
	      void *arg) PV_WUR;

/*
 * The masked form of a value.  It reveals at most a quarter of the value's
 * characters (UTF-8 characters, rounded down), and nothing of a value of 4
 * characters or fewer.  Leading and trailing white space (space, tab, CR,
 * LF) is removed first; a value of n characters then shows its first n / 4
 * characters, none if n <= 4, followed by "***": "Alexander" gives "Al***",
 * "Ada" and "F" give "***".  An "email" field with an '@' is masked so in
 * its local part and its domain separately, around its last '@':
 * "alexander@gmail.com" gives "al***@gm***", "j@x.org" gives "***@x***".
 * A "phone" field shows "***" and its last 2 digits if it has 8 digits or
 * more, "***" alone otherwise: "+1 555 0100" gives "***00", "5551" "***".
 * A value that is not UTF-8 gives "***".  What is shown is cut at a
 * character boundary to fit VAULT_MASKED_MAX bytes (156 bytes per part of
 * an email), so out is always UTF-8 of at most VAULT_MASKED_MAX bytes.
 */
void	  vault_mask(char out[static VAULT_MASKED_MAX + 1], const char *field,
	      size_t fieldlen, const char *value, size_t len);

/*
 * Crypto-shredding.  A shred destroys, in one transaction, a record's
 * wrapped DEK and field ciphertexts (overwritten, then replaced by a
 * tombstone of id, time, reason and KEK version), its blind-index entries,
 * and its tokens' mappings to fields: its tokens then answer
 * PV_ESHREDDED.  Each shred gets a receipt signed with the vault's
 * Ed25519 key, checkable by anyone with the public key.
 */
struct vault_receipt {
	char		vault_id[2 * VAULT_VAULT_ID_LEN + 1];
	char		id[VAULT_ID_STRLEN + 1];
	uint64_t	shredded_at;
	uint32_t	kek_version;	/* the KEK that wrapped its DEK */
	uint64_t	audit_seq;	/* its audit event; 0 without one */
	/*
	 * The signing key version that signed it.  0: a receipt made before
	 * signing keys had versions, whose message does not name one; it
	 * was signed by version 1.
	 */
	uint32_t	sign_version;
	char		reason[VAULT_REASON_MAX + 1];
	uint8_t		sig[PV_ED25519_SIG_LEN];
};

/* A reason is UTF-8 without control characters, 1..VAULT_REASON_MAX. */
int	  vault_reason_valid(const char *s, size_t len);

/*
 * Shred n records (at most VAULT_BATCH_MAX) by id in one commit.  status[i]
 * is PV_OK (shredded now, or before: shredding twice is harmless and
 * answers the first receipt), PV_ETOKEN for a malformed id, PV_ENOTFOUND
 * or PV_EHOLD; out[i] is the receipt when status[i] is PV_OK.  Returns
 * PV_EVALUE for a bad reason, else the commit's status.
 */
pv_status vault_shred(struct vault *v, const char *const *ids,
	      const size_t *lens, size_t n, const char *reason,
	      struct vault_receipt *out, pv_status *status) PV_WUR;

/* A shred request for vault_shred_ev: its ids in, and where answers go. */
struct vault_shred_req {
	const char *const	*ids;		/* n ids, lens[i] bytes each */
	const size_t		*lens;
	size_t			 n;		/* at most VAULT_BATCH_MAX */
	const char		*reason;
	struct vault_receipt	*out;		/* n receipts */
	pv_status		*status;	/* n statuses */
	int			*logged;	/* whether an event was written */
};

/*
 * vault_shred with its audit event ev (kind delete) in the same commit,
 * the receipts carrying its sequence number.  In the same commit, each
 * record refused for its hold is logged as ev refused (code "legal_hold"),
 * and each shredded before as ev allowed with code "already_shredded"
 * (its status PV_OK, the first shred's receipt); both with their record,
 * and neither of kind delete.  *logged says whether an event was written
 * (not when every id was unknown).  PV_EVALUE for a bad reason,
 * PV_ETOOBIG over VAULT_BATCH_MAX ids, else the commit's status
 * (PV_EINTEGRITY for a damaged record among them).
 */
pv_status vault_shred_ev(struct vault *v, const struct vault_event *ev,
	      const struct vault_shred_req *rq) PV_WUR;

/*
 * The exact bytes a receipt's signature covers, NUL-terminated, into out
 * (VAULT_RECEIPT_MSG_MAX bytes): "piivault-receipt-v2" with the signing
 * key version, or for sign_version 0 the "piivault-receipt-v1" message of
 * receipts made before (docs/format.md).
 */
#define VAULT_RECEIPT_MSG_MAX	512
void	  vault_receipt_message(char out[static VAULT_RECEIPT_MSG_MAX],
	      const struct vault_receipt *r);
/*
 * Check a receipt against a public key, the one of the version it names
 * (version 1 for sign_version 0): PV_OK or PV_EINTEGRITY.
 */
pv_status vault_receipt_verify(const struct vault_receipt *r,
	      const uint8_t pub[static PV_ED25519_LEN]) PV_WUR;
/* The signing key version a receipt names (1 for sign_version 0). */
uint32_t  vault_receipt_key_version(const struct vault_receipt *r);


/*
 * Key lifecycle.  Each works in bounded transactions, so that a server on
 * the same directory keeps answering, and is resumable: run again after
 * an interruption (kill -9 included), it finishes the job.  progress, if
 * not NULL, is called after each transaction.
 */
struct vault_progress {
	uint64_t	done;		/* records handled so far */
	uint64_t	total;		/* an estimate of all there are */
};
typedef void	vault_progress_fn(void *arg, const struct vault_progress *p);

/*
 * Let the long jobs (rewrap, index rebuild, shred epoch) hold the writer
 * lock at most percent of the time (1..100, default 100), resting between
 * transactions, so that a server on the same vault keeps its turns.
 */
void	  vault_set_duty(struct vault *v, unsigned percent);

/* The kinds of keys in the vault's key ring. */
enum vault_key_kind {
	VAULT_KEK = 1,		/* wraps each record's DEK */
	VAULT_IDS = 2,		/* record ids, tokens, keyed hashes */
	VAULT_INDEX = 3,	/* the blind index */
	VAULT_SIGN = 4,		/* signs shred receipts */
};

/* States of a key version. */
enum vault_key_state {
	VAULT_KEY_ACTIVE = 1,		/* wraps new data; one per kind */
	VAULT_KEY_DECRYPT_ONLY = 2,	/* unwraps old data only */
	VAULT_KEY_RETIRED = 3,		/* may not unwrap */
	VAULT_KEY_DESTROYED = 4,	/* key material erased */
	VAULT_KEY_VERIFY_ONLY = 5,	/* a signing key: private key erased,
					   public key kept */
};

const char *vault_key_kind_name(enum vault_key_kind kind);
const char *vault_key_state_name(enum vault_key_state st);

/* One key version, as vault_info lists them. */
struct vault_key_info {
	enum vault_key_kind	kind;
	uint32_t		version;
	enum vault_key_state	state;
	uint64_t		created;	/* seconds since the epoch */
	uint64_t		wraps_live;	/* records wrapped now (KEK) */
	uint64_t		wraps_total;	/* DEKs ever wrapped (KEK) */
};

/*
 * The receipt-signing keys.  One is active and signs; vault_rotate of
 * VAULT_SIGN makes a new one and destroys the older one's private key,
 * keeping its public key (VAULT_KEY_VERIFY_ONLY) so that the receipts it
 * signed still verify.
 */
struct vault_signing_key {
	uint32_t		version;
	enum vault_key_state	state;	/* ACTIVE or VERIFY_ONLY */
	uint8_t			pub[PV_ED25519_LEN];
};

/*
 * Every signing key version whose public key the vault has, ascending, as
 * the store has them now (a rotation by another process included).  *out
 * is the caller's, released with free().  PV_ENOMEM, PV_ESTORE,
 * PV_EINTEGRITY (the ring failed its MAC).
 */
pv_status vault_signing_keys(struct vault *v, struct vault_signing_key **out,
	      size_t *n) PV_WUR;

/*
 * Rotate KEK, INDEX or SIGN (PV_EINVAL otherwise); the new version is
 * *newv.  For SIGN, the previous version's private key is destroyed in the
 * same commit and its public key kept (VAULT_KEY_VERIFY_ONLY).
 */
pv_status vault_rotate(struct vault *v, enum vault_key_kind kind,
	      uint32_t *newv) PV_WUR;
/*
 * Re-wrap the DEKs of records under older KEK versions (only version from,
 * if not 0) with the active one, batch records a transaction; field
 * ciphertexts are not touched.  *done counts records re-wrapped.
 * PV_EINVAL for a batch over VAULT_KEY_BATCH_MAX (0: 1000); PV_EKEYSTATE
 * if there is no active KEK, or if from is retired or destroyed (its
 * records cannot be moved); PV_ENOTFOUND if there is no KEK version from.
 * From the active version there is nothing to move: PV_OK, *done 0.
 */
pv_status vault_rewrap(struct vault *v, uint32_t from, size_t batch,
	      vault_progress_fn *progress, void *arg, uint64_t *done) PV_WUR;
/*
 * Set a version's state: decrypt-only <-> retired, and any -> destroyed,
 * whose key material is overwritten.  Retiring or destroying a KEK that
 * still wraps records is PV_EBUSY unless force; *wrapped says how many it
 * wraps.  PV_EKEYSTATE for any other move (an active version can only be
 * destroyed; rotate first) and for any SIGN version (only vault_rotate
 * changes those), PV_ENOTFOUND for an unknown version.
 */
pv_status vault_key_state(struct vault *v, enum vault_key_kind kind,
	      uint32_t version, enum vault_key_state st, int force,
	      uint64_t *wrapped) PV_WUR;
/*
 * Re-seal the ring under the new root nu describes; PV_EEXIST if it is the
 * root in use, and the key-file statuses of vault_open.  The handle holds
 * the new root afterwards and MUST be closed; other processes must be
 * restarted with the new root.
 */
pv_status vault_rotate_root(struct vault *v, const struct vault_unlock *nu)
	      PV_WUR;
/*
 * Rotate the blind-index key and rebuild the index under it, online:
 * look-ups search both keys until the rebuild ends, then the old key is
 * destroyed.  Resumes an interrupted rebuild.  PV_EINVAL for a batch over
 * VAULT_KEY_BATCH_MAX (0: 1000).
 */
pv_status vault_rotate_index(struct vault *v, size_t batch,
	      vault_progress_fn *progress, void *arg, uint64_t *done) PV_WUR;
/*
 * Backup-safe shredding: rotate the KEK, re-wrap every record to it,
 * rotate and rebuild the index, then destroy every older KEK and index
 * key.  Afterwards no key that ever wrapped a shredded record's DEK
 * exists, in this file or any backup.  Resumable.
 */
pv_status vault_shred_epoch(struct vault *v, size_t batch,
	      vault_progress_fn *progress, void *arg) PV_WUR;

/*
 * Rewrite the data file with live data only, so that freed pages holding
 * shredded bytes are gone; crash-safe (the old file stays until the new
 * one is complete and synced).  Needs the vault to itself: PV_EBUSY if
 * another process (a server) has it open.  Takes a closed vault's opts.
 */
pv_status vault_compact(const struct vault_opts *o, uint64_t *before,
	      uint64_t *after) PV_WUR;

/*
 * Backups (docs/format.md).  vault_backup writes to path one file: a
 * header, a compacting copy of the data file taken in one read
 * transaction (the state of one commit, with no freed pages), and a
 * manifest signed with the active signing key.  It never holds the root
 * key.  The file is written under a temporary name in path's directory
 * and synced, then renamed: an interrupted backup leaves no file named
 * path.  PV_EEXIST if path exists; PV_EINVAL if path is too long;
 * PV_EIO, PV_ESTORE, PV_ENOMEM,
 * PV_ECRYPTO, PV_EINTEGRITY (the copy's key ring failed its MAC),
 * PV_EKEYSTATE (the signing key rotated meanwhile: run again).
 */
struct vault_backup_info {
	char		vault_id[2 * VAULT_VAULT_ID_LEN + 1];
	uint32_t	format;
	uint64_t	created;	/* seconds since the epoch */
	uint64_t	records;	/* live records */
	uint64_t	audit_seq;	/* the newest audit event; 0: none */
	uint8_t		audit_head[PV_HMAC_LEN];	/* its chain hash */
	uint64_t	keks;		/* KEK versions listed */
	uint64_t	shred_epochs;	/* kms shred-epoch runs completed */
	uint32_t	sign_version;
	uint64_t	data_len;	/* bytes of the data file */
	uint8_t		data_sha256[PV_SHA256_LEN];
};
pv_status vault_backup(struct vault *v, const char *path,
	      vault_progress_fn *progress, void *arg,
	      struct vault_backup_info *out) PV_WUR;

/*
 * A backup file read back by vault_backup_read, without any key: its
 * header's members (in info: sign_version, data_len, data_sha256) and
 * its manifest (canonical JSON, NUL-terminated) and signature.  Released
 * with vault_backup_file_free (NULL accepted).
 */
struct vault_backup_file {
	struct vault_backup_info  info;
	char			 *manifest;
	size_t			  manifest_len;
	uint8_t			  sig[PV_ED25519_SIG_LEN];
	uint8_t			  head[64];	/* signed header bytes */
};
/*
 * Check a backup file's structure and digests: the header's own digest,
 * the manifest's and the signature's digests the header holds, the
 * length, and the data's SHA-256.  PV_OK, or PV_EINTEGRITY with *failed
 * naming the part that failed ("header", "manifest", "signature", "data",
 * or "length": truncated or extended); PV_EFORMAT (*failed "header") for
 * a file that is no backup or of a version this code does not read;
 * PV_EIO, PV_ENOTFOUND (no such file), PV_ENOMEM, PV_ECRYPTO.
 */
pv_status vault_backup_read(const char *path, vault_progress_fn *progress,
	      void *arg, struct vault_backup_file **out, const char **failed)
	      PV_WUR;
void	  vault_backup_file_free(struct vault_backup_file *f);
/* Check its signature against pub: PV_OK or PV_EINTEGRITY. */
pv_status vault_backup_verify(const struct vault_backup_file *f,
	      const uint8_t pub[static PV_ED25519_LEN]) PV_WUR;

/*
 * For a deep check: write the data of the backup at path, which
 * vault_backup_read read into f, to dir/data.mdb (mode 0600; dir MUST
 * exist, be private and hold no vault), hashing it again as it goes:
 * PV_EINTEGRITY if it is not what f says (the file changed since);
 * PV_EEXIST, PV_EIO, PV_ENOMEM, PV_ECRYPTO.  vault_backup_scratch_remove
 * removes what a vault opened in dir left there, then dir.
 */
pv_status vault_backup_extract(const char *path,
	      const struct vault_backup_file *f, const char *dir) PV_WUR;
void	  vault_backup_scratch_remove(const char *dir);

/* What vault_check_records found. */
struct vault_check {
	uint64_t	records;	/* live records, DEK and fields opened */
	uint64_t	fields;		/* field ciphertexts authenticated */
	uint64_t	tombstones;	/* shredded records, MAC checked */
	uint64_t	locked;		/* under a retired or destroyed KEK */
};
/*
 * Walk every record in one read transaction: unwrap each live record's
 * DEK and authenticate every field's ciphertext (the values are wiped
 * unread), and check each tombstone's MAC.  PV_OK, or PV_EINTEGRITY (an
 * alarm) at the first that fails, with *out counting those before it;
 * PV_ESTORE, PV_ENOMEM.  A record under a KEK that may not unwrap is
 * counted in locked, not opened.
 */
pv_status vault_check_records(struct vault *v, struct vault_check *out)
	      PV_WUR;

/*
 * Cryptoperiods: with a limit set, a write that finds the active KEK older
 * than max_age seconds, or having wrapped max_wraps DEKs, rotates it in
 * the same commit.  0 means no limit.
 */
void	  vault_set_cryptoperiod(struct vault *v, uint64_t max_age,
	      uint64_t max_wraps);

struct vault_info {
	char			 vault_id[2 * VAULT_VAULT_ID_LEN + 1];
	uint32_t		 format;
	uint64_t		 records;	/* live records */
	struct vault_key_info	*keys;		/* free() */
	size_t			 nkeys;
};

/*
 * The vault's state; keys lists every key version, ordered by kind then
 * version.  Release keys with free().
 */
pv_status vault_info(struct vault *v, struct vault_info *out) PV_WUR;

/* The version of the store's library in use (LMDB), as "0.9.24". */
void	  vault_store_version(char out[static 32]);

/*
 * Integrity alarms since the vault was opened: values in the data
 * directory that failed authentication (forged, swapped or rolled back).
 */
uint64_t  vault_alarms(struct vault *v);

#endif /* VAULT_H */
