/*
 * vault.h: records of personal data, envelope-encrypted, behind tokens.
 *
 * A record is a set of named fields.  Each record has its own random DEK,
 * wrapped by the active KEK (kms.h); each field value is sealed with
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
 * _free.  Every function may also return PV_ENOMEM, PV_ECRYPTO and
 * PV_ESTORE.
 */
#ifndef VAULT_H
#define VAULT_H

#include "kms.h"
#include "pv.h"

#define VAULT_ID_STRLEN		(4 + PV_B64URL16_LEN)
#define VAULT_LOOKUP_MAX	1000	/* matches returned by one look-up */
#define VAULT_BATCH_MAX		1000	/* records or tokens per call */

struct vault;

struct vault_opts {
	const char		*data_dir;
	struct kms_unlock	 unlock;
	uint64_t		 map_size;	/* 0: PV_STORE_MAP_DEFAULT */
};

/*
 * Create a vault in o->data_dir (created if absent, mode 0700).  PV_EEXIST
 * if it already holds one.  The root key must already exist (a key file:
 * kms_key_file_create) or be obtainable (a passphrase).
 */
pv_status vault_create(const struct vault_opts *o, struct vault **out) PV_WUR;

/*
 * Open the vault in o->data_dir.  PV_ENOVAULT if there is none; the
 * statuses of kms_open (PV_EBADKEY, PV_EKEYPERM, PV_EFORMAT, ...).
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
 * Check a record without storing it: PV_EFIELD for a bad or repeated
 * field name, PV_EVALUE for a value that is not UTF-8 or not a valid
 * email or phone, PV_ETOOBIG over PV_FIELDS_MAX fields or PV_VALUE_MAX
 * bytes, PV_EINVAL for a record without fields.
 */
pv_status vault_record_check(const struct vault_record_in *r) PV_WUR;

struct vault_put_result {
	pv_status	  status;	/* this record's outcome */
	char		  id[VAULT_ID_STRLEN + 1];
	/*
	 * The caller points this at an array of the record's nfields
	 * strings; token i belongs to field i.
	 */
	char		(*tokens)[VAULT_ID_STRLEN + 1];
};

/*
 * Store n records (at most VAULT_BATCH_MAX) in one durable commit.  Each
 * record is checked first; the valid ones are stored even when others are
 * not, and res[i].status tells each record's outcome.  Returns PV_OK when
 * the commit succeeded (or nothing was valid), else the commit's failure,
 * which is then every valid record's status too: PV_EFULL when the map is
 * full.  Nothing is stored unless PV_OK is returned.
 */
pv_status vault_put(struct vault *v, const struct vault_record_in *recs,
	      size_t n, struct vault_put_result *res) PV_WUR;

/* A decrypted value.  value lives in secure memory. */
struct vault_value {
	char		 field[PV_FIELD_NAME_MAX + 1];
	char		 id[VAULT_ID_STRLEN + 1];	/* its record */
	char		*value;		/* NUL-terminated, len bytes */
	size_t		 len;
};
void	  vault_value_free(struct vault_value *val);

/*
 * Resolve a token to its value.  PV_ETOKEN if it is malformed,
 * PV_ENOTFOUND if no such token exists, PV_ESHREDDED if its record was
 * shredded, PV_EKEYSTATE if its KEK may no longer unwrap, PV_EINTEGRITY if
 * the stored bytes were altered or moved.
 */
pv_status vault_get(struct vault *v, const char *token, size_t len,
	      struct vault_value **out) PV_WUR;

struct vault_match {
	char	id[VAULT_ID_STRLEN + 1];
	char	token[VAULT_ID_STRLEN + 1];
};

/*
 * Exact look-up of a value through the blind index; the value is
 * normalized as when it was stored.  PV_ENOTINDEXED for a field without an
 * index, PV_EFIELD or PV_EVALUE for bad input.  *out (free()) holds *n
 * matches, oldest first, at most VAULT_LOOKUP_MAX.
 */
pv_status vault_lookup(struct vault *v, const char *field, size_t fieldlen,
	      const char *value, size_t len, struct vault_match **out,
	      size_t *n) PV_WUR;

/* Whether a field name has a blind index (email, phone). */
int	  vault_field_indexed(const char *field, size_t len);

/*
 * Normalize a value of an indexed field into out (PV_VALUE_MAX bytes):
 * email trimmed and lower-cased, phone reduced to '+' and digits.
 * PV_EVALUE if it is not a valid email or phone.
 */
pv_status vault_normalize(char *out, size_t *outlen, const char *field,
	      size_t fieldlen, const char *value, size_t len) PV_WUR;

struct vault_info {
	char			 vault_id[2 * KMS_VAULT_ID_LEN + 1];
	uint32_t		 format;
	uint64_t		 records;	/* live records */
	struct kms_key_info	*keys;		/* free() */
	size_t			 nkeys;
};

/* The vault's state; keys from kms_status.  Release keys with free(). */
pv_status vault_info(struct vault *v, struct vault_info *out) PV_WUR;

#endif /* VAULT_H */
