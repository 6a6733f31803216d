/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vault.c: records, envelopes, tokens and the blind index.
 *
 * Byte layouts are in docs/format.md; the offsets below are that document
 * in code.  Parsing a stored record is total: bytes that do not parse are
 * reported as PV_EINTEGRITY, never trusted.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vault_int.h"

/*
 * vault.h names the key ring's kinds, states and limits itself, so that
 * nothing above the vault sees kms.h; they are kms's, by value.
 */
static_assert(VAULT_VAULT_ID_LEN == KMS_VAULT_ID_LEN, "vault id length");
static_assert(VAULT_PASSPHRASE_MAX == KMS_PASSPHRASE_MAX, "passphrase");
static_assert(VAULT_KDF_MEMORY_MIN == KMS_KDF_MEMORY_MIN, "kdf memory");
static_assert((int)VAULT_KEK == (int)KMS_KEK &&
    (int)VAULT_IDS == (int)KMS_IDS && (int)VAULT_INDEX == (int)KMS_INDEX &&
    (int)VAULT_SIGN == (int)KMS_SIGN, "key kinds");
static_assert((int)VAULT_KEY_ACTIVE == (int)KMS_ACTIVE &&
    (int)VAULT_KEY_DECRYPT_ONLY == (int)KMS_DECRYPT_ONLY &&
    (int)VAULT_KEY_RETIRED == (int)KMS_RETIRED &&
    (int)VAULT_KEY_DESTROYED == (int)KMS_DESTROYED, "key states");

enum kms_kind
vault_kms_kind(enum vault_key_kind kind)
{
	return (enum kms_kind)kind;
}

enum kms_state
vault_kms_state(enum vault_key_state st)
{
	return (enum kms_state)st;
}

const char *
vault_key_kind_name(enum vault_key_kind kind)
{
	return kms_kind_name(vault_kms_kind(kind));
}

const char *
vault_key_state_name(enum vault_key_state st)
{
	if (st == VAULT_KEY_VERIFY_ONLY)
		return "verify_only";
	return kms_state_name(vault_kms_state(st));
}

void
vault_key_info_from(struct vault_key_info *out, const struct kms_key_info *in)
{
	out->kind = (enum vault_key_kind)in->kind;
	out->version = in->version;
	out->state = (enum vault_key_state)in->state;
	/* A signing key's private key is destroyed at rotation: it verifies. */
	if (in->kind == KMS_SIGN && in->state == KMS_DESTROYED)
		out->state = VAULT_KEY_VERIFY_ONLY;
	out->created = in->created;
	out->wraps_live = in->wraps_live;
	out->wraps_total = in->wraps_total;
}

void
vault_unlock_kms(struct kms_unlock *out, const struct vault_unlock *u)
{
	out->key_file = u->key_file;
	out->use_passphrase = u->use_passphrase;
	out->passphrase = u->passphrase;
	out->arg = u->arg;
	out->kdf_time = u->kdf_time;
	out->kdf_memory_kib = u->kdf_memory_kib;
}

pv_status
vault_key_file_create(const char *path)
{
	return kms_key_file_create(path);
}

static const char *const indexed_fields[] = { "email", "phone" };

pv_status
vault_txn_begin(struct vault *v, int write, struct pv_txn **out)
{
	struct pv_txn *t;
	pv_status rc;

	if ((rc = pv_txn_begin(v->store, write, &t)) != PV_OK)
		return rc;
	if ((rc = kms_sync(v->kms, t)) != PV_OK) {
		pv_txn_abort(t);
		if (rc == PV_EINTEGRITY)
			(void)vault_alarm(v, "ring", "(ring, ring_gen, ring_mac)");
		return rc;
	}
	*out = t;
	return PV_OK;
}

pv_status
vault_row_mac(struct vault *v, enum pv_table tab, const void *key,
    size_t klen, const void *val, size_t vlen,
    uint8_t out[static VAULT_ROW_MAC_LEN])
{
	uint8_t hdr[1 + 4];
	struct pv_part parts[3] = {
		{ hdr, sizeof(hdr) }, { key, klen }, { val, vlen },
	};

	hdr[0] = (uint8_t)tab;
	pv_put_u32(hdr + 1, (uint32_t)klen);
	return kms_keyed_hash(v->kms, KMS_H_ROW, out, parts, 3);
}

pv_status
vault_header_verify(struct vault *v, uint64_t seq, const uint8_t *rec,
    size_t len)
{
	uint8_t ctx[DEK_CTX_LEN], *dek;
	uint32_t kekv;
	pv_status rc;

	if (len < R_FIELDS || rec[R_TYPE] != REC_LIVE)
		return vault_alarm(v, "record header", "records");
	if ((dek = pv_secure_alloc(PV_KEY_LEN)) == NULL)
		return PV_ENOMEM;
	vault_dek_ctx(ctx, seq, rec);
	kekv = pv_get_u32(rec + R_KEKV);
	rc = kms_dek_open(v->kms, ctx, sizeof(ctx), kekv, rec + R_DEK, dek);
	pv_secure_free(dek, PV_KEY_LEN);
	if (rc == PV_EINTEGRITY)
		return vault_alarm(v, "record header", "records");
	/*
	 * A destroyed KEK leaves nothing to protect: the record's values
	 * are gone with it, so its header need not be proven to let it go.
	 */
	if (rc == PV_EKEYSTATE &&
	    kms_version_state(v->kms, KMS_KEK, kekv) == KMS_DESTROYED)
		return PV_OK;
	return rc;
}

pv_status
vault_meta_u64(struct pv_txn *t, const char *name, uint64_t *out)
{
	const void *val;
	size_t vl;
	pv_status rc;

	if ((rc = pv_get(t, PV_T_META, name, strlen(name), &val, &vl)) !=
	    PV_OK)
		return rc == PV_ENOTFOUND ? PV_EFORMAT : rc;
	if (vl != 8)
		return PV_EFORMAT;
	*out = pv_get_u64(val);
	return PV_OK;
}

pv_status
vault_meta_set_u64(struct pv_txn *t, const char *name, uint64_t val)
{
	uint8_t b[8];

	pv_put_u64(b, val);
	return pv_put(t, PV_T_META, name, strlen(name), b, sizeof(b), 0);
}

/* Identifiers. */

void
vault_id_block(uint8_t out[static 16], uint64_t seq, const uint8_t *check)
{
	pv_put_u64(out, seq);
	memcpy(out + SEQ_LEN, check, CHECK_LEN);
}

pv_status
vault_id_format(struct vault *v, enum kms_id_domain d, uint64_t seq,
    const uint8_t *check, char out[static VAULT_ID_STRLEN + 1])
{
	uint8_t in[16], enc[16];
	pv_status rc;

	vault_id_block(in, seq, check);
	if ((rc = kms_id_seal(v->kms, d, enc, in)) != PV_OK)
		return rc;
	memcpy(out, d == KMS_ID_RECORD ? "rec_" : "tok_", 4);
	pv_b64url_encode16(out + 4, enc);
	return PV_OK;
}

pv_status
vault_id_parse(struct vault *v, enum kms_id_domain d, const char *s, size_t len,
    uint64_t *seq, uint8_t check[static CHECK_LEN])
{
	uint8_t enc[16], dec[16];
	pv_status rc;

	if (len != VAULT_ID_STRLEN ||
	    memcmp(s, d == KMS_ID_RECORD ? "rec_" : "tok_", 4) != 0)
		return PV_ETOKEN;
	if ((rc = pv_b64url_decode16(enc, s + 4, len - 4)) != PV_OK)
		return rc;
	if ((rc = kms_id_open(v->kms, d, dec, enc)) != PV_OK)
		return rc;
	*seq = pv_get_u64(dec);
	memcpy(check, dec + SEQ_LEN, CHECK_LEN);
	return PV_OK;
}

int
vault_token_valid(const char *s, size_t len)
{
	uint8_t enc[16];

	return len == VAULT_ID_STRLEN && memcmp(s, "tok_", 4) == 0 &&
	    pv_b64url_decode16(enc, s + 4, len - 4) == PV_OK;
}

/* Validation and normalization. */

int
vault_field_indexed(const char *field, size_t len)
{
	for (size_t i = 0; i < sizeof(indexed_fields) /
	    sizeof(indexed_fields[0]); i++)
		if (strlen(indexed_fields[i]) == len &&
		    memcmp(indexed_fields[i], field, len) == 0)
			return 1;
	return 0;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static pv_status
normalize_email(char *out, size_t *outlen, const char *s, size_t len)
{
	size_t at = 0, nat = 0, i;

	while (len > 0 && is_space(s[0])) {
		s++;
		len--;
	}
	while (len > 0 && is_space(s[len - 1]))
		len--;
	if (len < 3 || len > 254)
		return PV_EVALUE;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == 0x7f)
			return PV_EVALUE;
		if (c == '@') {
			at = i;
			nat++;
		}
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
	}
	/* local@domain.tld: one '@', a dotted domain without empty labels. */
	if (nat != 1 || at == 0 || at > 64 || at + 1 >= len)
		return PV_EVALUE;
	if (s[at + 1] == '.' || s[len - 1] == '.' ||
	    memchr(s + at + 1, '.', len - at - 1) == NULL)
		return PV_EVALUE;
	for (i = at + 1; i + 1 < len; i++)
		if (s[i] == '.' && s[i + 1] == '.')
			return PV_EVALUE;
	*outlen = len;
	return PV_OK;
}

static pv_status
normalize_phone(char *out, size_t *outlen, const char *s, size_t len)
{
	size_t n = 0, digits = 0;
	int seen = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9') {
			out[n++] = c;
			digits++;
			seen = 1;
		} else if (c == '+') {
			if (seen)
				return PV_EVALUE;
			out[n++] = c;
			seen = 1;
		} else if (c == '(' || c == ')' || c == '-' || c == '.') {
			seen = 1;
		} else if (c != ' ')
			return PV_EVALUE;
	}
	/* E.164 allows at most 15 digits; fewer than 4 is no number. */
	if (digits < 4 || digits > 15)
		return PV_EVALUE;
	*outlen = n;
	return PV_OK;
}

pv_status
vault_normalize(char *out, size_t *outlen, const char *field, size_t fieldlen,
    const char *value, size_t len)
{
	char tmp[PV_VALUE_MAX];
	size_t n = 0;
	pv_status rc;

	if (len > PV_VALUE_MAX)
		return PV_ETOOBIG;
	if (fieldlen == 5 && memcmp(field, "email", 5) == 0)
		rc = normalize_email(tmp, &n, value, len);
	else if (fieldlen == 5 && memcmp(field, "phone", 5) == 0)
		rc = normalize_phone(tmp, &n, value, len);
	else
		rc = PV_ENOTINDEXED;
	/* Written only on success; the scratch held personal data. */
	if (rc == PV_OK) {
		memcpy(out, tmp, n);
		*outlen = n;
	}
	pv_cleanse(tmp, sizeof(tmp));
	return rc;
}

void
vault_field_why(char why[static VAULT_WHY_MAX], const struct vault_field *f,
    size_t index, const char *what)
{
	/* Only a valid name is echoed: it holds no byte but [a-z0-9_]. */
	if (pv_field_name_valid(f->name, f->namelen))
		(void)snprintf(why, VAULT_WHY_MAX, "field %.*s: %s",
		    (int)f->namelen, f->name, what);
	else
		(void)snprintf(why, VAULT_WHY_MAX, "field at index %zu: %s",
		    index, what);
}

/* Refuse field f with rc, saying what in why. */
static pv_status
field_refused(char why[static VAULT_WHY_MAX], const struct vault_field *f,
    size_t index, pv_status rc, const char *what)
{
	vault_field_why(why, f, index, what);
	return rc;
}

/* vault_field_check with a value limit of max bytes. */
static pv_status
field_check(const struct vault_field *f, size_t index, size_t max,
    char why[static VAULT_WHY_MAX])
{
	char norm[PV_VALUE_MAX], what[48];
	size_t normlen;
	pv_status rc;

	if (!pv_field_name_valid(f->name, f->namelen))
		return field_refused(why, f, index, PV_EFIELD, VAULT_NAME_RULE);
	if (f->len > max) {
		(void)snprintf(what, sizeof(what), "longer than %zu bytes",
		    max);
		return field_refused(why, f, index, PV_ETOOBIG, what);
	}
	if (f->len == 0)
		return field_refused(why, f, index, PV_EVALUE, "empty; a "
		    "value has at least 1 byte");
	if (!pv_utf8_valid(f->value, f->len))
		return field_refused(why, f, index, PV_EVALUE, "not valid "
		    "UTF-8");
	if (!vault_field_indexed(f->name, f->namelen))
		return PV_OK;
	rc = vault_normalize(norm, &normlen, f->name, f->namelen, f->value,
	    f->len);
	pv_cleanse(norm, sizeof(norm));
	if (rc == PV_EVALUE)
		return field_refused(why, f, index, rc, f->namelen == 5 &&
		    memcmp(f->name, "email", 5) == 0 ?
		    "not a valid email address" : "not a valid phone number");
	return rc;
}

pv_status
vault_field_check(const struct vault_field *f, size_t index,
    char why[static VAULT_WHY_MAX])
{
	return field_check(f, index, PV_VALUE_MAX, why);
}

pv_status
vault_record_check(const struct vault_record_in *r,
    char why[static VAULT_WHY_MAX])
{
	pv_status rc;

	why[0] = '\0';
	if (r->nfields == 0) {
		(void)snprintf(why, VAULT_WHY_MAX, "a record needs fields");
		return PV_EINVAL;
	}
	if (r->nfields > PV_FIELDS_MAX) {
		(void)snprintf(why, VAULT_WHY_MAX, "more than %d fields",
		    PV_FIELDS_MAX);
		return PV_ETOOBIG;
	}
	for (size_t i = 0; i < r->nfields; i++) {
		const struct vault_field *f = &r->fields[i];

		if ((rc = vault_field_check(f, i, why)) != PV_OK)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (r->fields[j].namelen == f->namelen &&
			    memcmp(r->fields[j].name, f->name,
			    f->namelen) == 0)
				return field_refused(why, f, i, PV_EFIELD,
				    "named twice");
	}
	if (r->retention_days > VAULT_RETENTION_DAYS_MAX) {
		(void)snprintf(why, VAULT_WHY_MAX, "retention_days must be "
		    "from 1 to %d", VAULT_RETENTION_DAYS_MAX);
		return PV_EINVAL;
	}
	return PV_OK;
}

static pv_status
ensure_kinds(struct vault *v)
{
	struct pv_txn *t;
	pv_status rc;
	int added;

	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		return rc;
	if ((rc = kms_ensure(v->kms, t, &added)) != PV_OK) {
		pv_txn_abort(t);
		return rc;
	}
	if ((rc = pv_txn_commit(t)) != PV_OK)
		return rc;
	/* Load what was added. */
	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		return rc;
	pv_txn_abort(t);
	return PV_OK;
}

static pv_status
vault_start(const struct vault_opts *o, int create, struct vault **out)
{
	struct pv_store_opts so = { o->map_size, create, 0 };
	struct kms_unlock u;
	struct vault *v;
	struct pv_txn *t = NULL;
	pv_status rc;

	vault_unlock_kms(&u, &o->unlock);
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return PV_ENOMEM;
	if (pthread_mutex_init(&v->gc_lock, NULL) != 0) {
		free(v);
		return PV_ENOMEM;
	}
	if (pthread_mutex_init(&v->lease_lock, NULL) != 0) {
		(void)pthread_mutex_destroy(&v->gc_lock);
		free(v);
		return PV_ENOMEM;
	}
	if (pthread_cond_init(&v->gc_done, NULL) != 0) {
		(void)pthread_mutex_destroy(&v->lease_lock);
		(void)pthread_mutex_destroy(&v->gc_lock);
		free(v);
		return PV_ENOMEM;
	}
	if ((rc = pv_store_open(o->data_dir, &so, &v->store)) != PV_OK)
		goto out;
	if ((rc = pv_txn_begin(v->store, create, &t)) != PV_OK)
		goto out;
	if (create) {
		if ((rc = kms_init(t, &u, &v->kms)) != PV_OK ||
		    (rc = vault_meta_set_u64(t, META_NEXT_REC, 1)) != PV_OK ||
		    (rc = vault_meta_set_u64(t, META_NEXT_TOK, 1)) != PV_OK ||
		    (rc = vault_meta_set_u64(t, META_RECORDS, 0)) != PV_OK)
			goto out;
		rc = pv_txn_commit(t);
		t = NULL;
		if (rc != PV_OK)
			goto out;
	} else {
		if ((rc = kms_open(t, &u, &v->kms)) != PV_OK) {
			if (rc == PV_EINTEGRITY)
				(void)vault_alarm(v, "ring",
				    "(ring, ring_gen, ring_mac)");
			goto out;
		}
		pv_txn_abort(t);
		t = NULL;
		/* A vault made before a key kind existed gets it now. */
		if (kms_active_version(v->kms, KMS_SIGN) == 0 &&
		    (rc = ensure_kinds(v)) != PV_OK)
			goto out;
		/* And one made before rows were authenticated, this. */
		if (!kms_authenticated(v->kms) &&
		    (rc = vault_auth_upgrade(v)) != PV_OK)
			goto out;
	}
	*out = v;
	v = NULL;
out:
	pv_txn_abort(t);
	if (v != NULL && create && v->store != NULL) {
		/* A half-made vault would make every retry "exist". */
		vault_close(v);
		pv_store_remove(o->data_dir);
		return rc;
	}
	vault_close(v);
	return rc;
}

pv_status
vault_create(const struct vault_opts *o, struct vault **out)
{
	return vault_start(o, 1, out);
}

pv_status
vault_open(const struct vault_opts *o, struct vault **out)
{
	return vault_start(o, 0, out);
}

void
vault_close(struct vault *v)
{
	if (v == NULL)
		return;
	kms_free(v->kms);
	pv_store_close(v->store);
	(void)pthread_cond_destroy(&v->gc_done);
	(void)pthread_mutex_destroy(&v->lease_lock);
	(void)pthread_mutex_destroy(&v->gc_lock);
	free(v);
}

/* Writing records. */

/*
 * The DEK's context: the record block and the record's header (type,
 * flags, created, retain until), so that consent or dates edited on disk
 * make the DEK fail to unwrap.
 */
void
vault_dek_ctx(uint8_t ctx[static DEK_CTX_LEN], uint64_t seq, const uint8_t *rec)
{
	vault_id_block(ctx, seq, rec + R_CHECK);
	ctx[16] = rec[R_TYPE];
	ctx[17] = rec[R_FLAGS];
	memcpy(ctx + 18, rec + R_CREATED, 16);	/* created, retain */
}

/* The MAC that ties a blind-index entry to its digest. */
pv_status
vault_index_mac(struct vault *v, uint8_t val[static INDEX_VAL_LEN],
    const uint8_t digest[static PV_HMAC_LEN])
{
	uint8_t mac[PV_HMAC_LEN];
	struct pv_part parts[2] = {
		{ digest, PV_HMAC_LEN }, { val, 2 * SEQ_LEN },
	};
	pv_status rc;

	if ((rc = kms_keyed_hash(v->kms, KMS_H_INDEX, mac, parts, 2)) !=
	    PV_OK)
		return rc;
	memcpy(val + 2 * SEQ_LEN, mac, INDEX_MAC_LEN);
	return PV_OK;
}

/* The bytes record r takes in the records table. */
static size_t
record_size(const struct vault_record_in *r)
{
	size_t size = R_FIELDS;

	for (size_t i = 0; i < r->nfields; i++) {
		const struct vault_field *f = &r->fields[i];

		size += vault_field_size(f->namelen,
		    vault_field_indexed(f->name, f->namelen), f->len);
	}
	return size;
}

/*
 * One record to seal (seal_one): number seq, its tokens numbered from tok,
 * kept days unless r says.
 */
struct seal {
	const struct vault_record_in	*r;
	uint64_t			 seq;
	uint64_t			 tok;
	uint32_t			 days;
	uint8_t				*p;	/* record_size(r) bytes */
	uint8_t			       (*tc)[CHECK_LEN];	/* per field */
	uint8_t			       (*im)[INDEX_MAC_LEN];	/* per field */
	uint8_t				*dek;	/* secure scratch */
	uint64_t			*retain;	/* out: retain until */
	struct vault_put_result		*res;	/* out: id and tokens */
};

/*
 * Seal s->r: build its stored value in s->p, draw its token checks and MAC
 * its index entries into s->tc and s->im (one slot per field), and format
 * its id and tokens into s->res.  Nothing is written to the store.
 */
static pv_status
seal_one(struct vault *v, const struct seal *s)
{
	const struct vault_record_in *r = s->r;
	uint8_t rec[16], ctx[DEK_CTX_LEN], idx[INDEX_VAL_LEN];
	uint8_t digest[PV_HMAC_LEN];
	uint8_t rnd[CHECK_LEN + PV_FIELDS_MAX * (CHECK_LEN +
	    PV_GCM_NONCE_LEN)], *nonce, *p = s->p, *q;
	uint64_t now = pv_now(), retain, tok = s->tok;
	uint32_t kekv, days = s->days;
	pv_status rc;

	/* One draw for the record's check, token checks and nonces. */
	if (r->nfields > PV_FIELDS_MAX)
		return PV_EINVAL;
	if ((rc = pv_random(rnd, CHECK_LEN + r->nfields * (CHECK_LEN +
	    PV_GCM_NONCE_LEN))) != PV_OK)
		goto out;
	memcpy(p + R_CHECK, rnd, CHECK_LEN);
	memcpy(s->tc, rnd + CHECK_LEN, r->nfields * CHECK_LEN);
	nonce = rnd + CHECK_LEN + r->nfields * CHECK_LEN;
	vault_id_block(rec, s->seq, p + R_CHECK);
	p[R_TYPE] = REC_LIVE;
	p[R_FLAGS] = r->marketing ? RF_MARKETING : 0;
	pv_put_u64(p + R_CREATED, now);
	if (r->retention_days != 0)
		days = r->retention_days;
	retain = days ? now + (uint64_t)days * VAULT_DAY : 0;
	pv_put_u64(p + R_RETAIN, retain);
	vault_dek_ctx(ctx, s->seq, p);
	if ((rc = kms_dek_new(v->kms, ctx, sizeof(ctx), s->dek, &kekv,
	    p + R_DEK)) != PV_OK)
		goto out;
	pv_put_u32(p + R_KEKV, kekv);
	vault_record_set_nfields(p, r->nfields);
	q = p + R_FIELDS;
	for (size_t i = 0; i < r->nfields; i++) {
		const struct vault_field *f = &r->fields[i];
		struct field_in in = { f->name, f->namelen, NULL, tok,
		    f->value, f->len, nonce + i * PV_GCM_NONCE_LEN };

		if (vault_field_indexed(f->name, f->namelen)) {
			if ((rc = vault_field_digest(v, 0, f->name, f->namelen,
			    f->value, f->len, digest)) != PV_OK ||
			    (rc = vault_index_val(v, s->seq, tok, digest,
			    idx)) != PV_OK)
				goto out;
			memcpy(s->im[i], idx + 2 * SEQ_LEN, INDEX_MAC_LEN);
			in.digest = digest;
		}
		if ((rc = vault_field_put(v, rec, s->dek, &in, &q)) != PV_OK ||
		    (rc = vault_id_format(v, KMS_ID_TOKEN, tok, s->tc[i],
		    s->res->tokens[i])) != PV_OK)
			goto out;
		tok++;
	}
	if ((rc = vault_id_format(v, KMS_ID_RECORD, s->seq, p + R_CHECK,
	    s->res->id)) == PV_OK)
		*s->retain = retain;
out:
	pv_cleanse(rnd, sizeof(rnd));
	return rc;
}

/*
 * A put, sealed by its caller's thread before the commit, so that the
 * commit's leader (one thread) only stores it.  Record k of those stored
 * is number rec0 + k; its tokens follow on from tok0.
 */
struct put_arg {
	const struct vault_record_in	*recs;
	struct vault_put_result		*res;
	size_t				 n, stored, ntok;
	const struct vault_event	*ev;
	uint64_t			 rec0, tok0;
	uint32_t			 days;	/* default retention */
	uint64_t			 gen;	/* ring generation; 0: reseal */
	uint8_t				*buf;	/* the records, back to back */
	size_t				*off;	/* record i at buf + off[i] */
	uint64_t			*retain;
	uint8_t			       (*tc)[CHECK_LEN];	/* per token */
	uint8_t			       (*im)[INDEX_MAC_LEN];
	struct put_arg			*next;	/* the commit's puts */
};

/* Seal every record of a that is to be stored (see struct put_arg). */
static pv_status
put_seal(struct vault *v, struct put_arg *a)
{
	uint64_t gen = kms_generation(v->kms), seq = a->rec0, tok = a->tok0;
	uint8_t *dek;
	pv_status rc = PV_OK;

	if ((dek = pv_secure_alloc(PV_KEY_LEN)) == NULL)
		return PV_ENOMEM;
	for (size_t i = 0, k = 0; i < a->n && rc == PV_OK; i++) {
		struct seal s = { &a->recs[i], seq, tok, a->days,
		    a->buf + a->off[i], a->tc + k, a->im + k, dek,
		    &a->retain[i], &a->res[i] };

		if (a->res[i].status != PV_OK)
			continue;
		rc = seal_one(v, &s);
		seq++;
		tok += a->recs[i].nfields;
		k += a->recs[i].nfields;
	}
	pv_secure_free(dek, PV_KEY_LEN);
	/* Sealed under one ring, or the leader seals again. */
	a->gen = rc == PV_OK && kms_generation(v->kms) == gen ? gen : 0;
	return rc;
}

/*
 * Put at key, which normally sorts after every other: append, or insert
 * where higher numbers were stored first (another process's, or a put
 * that finished sealing before one leased earlier).
 */
static pv_status
put_seq(struct pv_txn *t, enum pv_table tab, uint64_t seq, const void *val,
    size_t len)
{
	uint8_t key[SEQ_LEN];
	pv_status rc;

	pv_put_u64(key, seq);
	rc = pv_put(t, tab, key, sizeof(key), val, len, PV_PUT_APPEND);
	if (rc == PV_EEXIST)
		rc = pv_put(t, tab, key, sizeof(key), val, len,
		    PV_PUT_NOOVERWRITE);
	return rc;
}

/* Store the sealed records of a inside t. */
static pv_status
put_store(struct pv_txn *t, const struct put_arg *a)
{
	uint8_t tokval[TOKEN_VAL_MAX], idx[INDEX_VAL_LEN];
	struct field_view f;
	uint64_t seq = a->rec0;
	size_t k = 0;
	pv_status rc;

	for (size_t i = 0; i < a->n; i++) {
		const uint8_t *p = a->buf + a->off[i];
		size_t len = a->off[i + 1] - a->off[i], pos = R_FIELDS;

		if (a->res[i].status != PV_OK)
			continue;
		if ((rc = put_seq(t, PV_T_RECORDS, seq, p, len)) != PV_OK ||
		    (a->retain[i] != 0 && (rc = vault_retain_put(t,
		    a->retain[i], seq)) != PV_OK))
			return rc;
		for (size_t j = 0; j < a->recs[i].nfields; j++, k++) {
			if ((rc = vault_field_next(p, len, &pos, &f)) != PV_OK)
				return rc;
			if ((rc = put_seq(t, PV_T_TOKENS, f.tok_seq, tokval,
			    vault_token_val(tokval, seq, a->tc[k], f.name,
			    f.namelen))) != PV_OK)
				return rc;
			if (!f.indexed)
				continue;
			pv_put_u64(idx, seq);
			pv_put_u64(idx + SEQ_LEN, f.tok_seq);
			memcpy(idx + 2 * SEQ_LEN, a->im[k], INDEX_MAC_LEN);
			if ((rc = pv_put(t, PV_T_INDEX, f.digest, PV_HMAC_LEN,
			    idx, sizeof(idx), 0)) != PV_OK)
				return rc;
		}
		seq++;
	}
	return PV_OK;
}

/*
 * Records one group commit takes at most, to bound its transaction: LMDB
 * holds a commit's dirty pages (about two a record, with indexed fields)
 * in memory, and keeps them for reuse.  Two batches of 1000 fit; the
 * benchmark's peak anonymous memory fell from 62 to 56 MiB at 2000.
 */
#define GC_MAX_WEIGHT	2000

/*
 * Rotate the KEK in this commit if it is past its cryptoperiod: AES-GCM
 * with random nonces must stay far below 2^32 encryptions under one key.
 */
static pv_status
cryptoperiod(struct vault *v, struct pv_txn *t, uint32_t kekv)
{
	struct kms_key_info info;
	uint64_t max_age, max_wraps;
	uint32_t newv;
	pv_status rc;

	max_age = v->max_kek_age;	/* read under gc_lock: we lead */
	max_wraps = v->max_kek_wraps;
	if (max_age == 0 && max_wraps == 0)
		return PV_OK;
	if ((rc = kms_key_info(v->kms, t, KMS_KEK, kekv, &info)) != PV_OK)
		return rc;
	if ((max_age == 0 || pv_now() < info.created + max_age) &&
	    (max_wraps == 0 || info.wraps_total < max_wraps))
		return PV_OK;
	if ((rc = kms_rotate(v->kms, t, KMS_KEK, &newv)) != PV_OK)
		return rc;
	pv_log(PV_LOG_INFO, "kek %u reached its cryptoperiod (%llu wraps, "
	    "%llu s old): kek %u is active", kekv,
	    (unsigned long long)info.wraps_total,
	    (unsigned long long)(pv_now() - info.created), newv);
	return vault_audit_in(v, t, &(struct vault_event){ .actor = "server",
	    .action = "kms.rotate", .ok = 1, .purpose = -1,
	    .reason = "cryptoperiod" }, NULL);
}

/* Commit a chain of jobs in one write transaction. */
static pv_status
commit_jobs(struct vault *v, struct gc_job *jobs)
{
	struct gc_ctx g;
	uint64_t added;
	pv_status rc;

	memset(&g, 0, sizeof(g));
	if ((g.dek = pv_secure_alloc(PV_KEY_LEN)) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	if ((rc = vault_txn_begin(v, 1, &g.t)) != PV_OK)
		goto out;
	if ((rc = vault_meta_u64(g.t, META_RECORDS, &g.records)) != PV_OK)
		goto out;
	added = g.records;
	for (struct gc_job *j = jobs; j != NULL; j = j->next)
		if ((rc = j->apply(v, &g, j->arg)) != PV_OK)
			goto out;
	for (struct put_arg *a = g.puts; a != NULL; a = a->next)
		if ((rc = put_store(g.t, a)) != PV_OK)
			goto out;
	if (g.wrapped > 0) {
		/* One write transaction holds one ring state: one KEK. */
		if ((rc = kms_count_wraps(v->kms, g.t, g.kekv,
		    (int64_t)g.wrapped, g.wrapped)) != PV_OK ||
		    (rc = cryptoperiod(v, g.t, g.kekv)) != PV_OK)
			goto out;
	}
	if (added != g.records && (rc = vault_meta_set_u64(g.t, META_RECORDS,
	    g.records)) != PV_OK)
		goto out;
	rc = pv_txn_commit(g.t);
	g.t = NULL;
out:
	pv_txn_abort(g.t);
	pv_secure_free(g.dek, PV_KEY_LEN);
	return rc;
}

/*
 * Group commit.  Each caller queues its job; a caller that finds no commit
 * under way becomes the leader: it takes the queue (up to GC_MAX_WEIGHT),
 * applies every job in one transaction, commits it durably and wakes
 * everyone.  A job is answered only after the commit that holds it
 * returned, so PV_OK means durable; a failed commit fails every job in it.
 */
pv_status
vault_commit_job(struct vault *v, struct gc_job *job)
{
	struct gc_job *take, *last, *next;
	size_t total;
	pv_status rc;

	job->rc = PV_OK;
	job->done = 0;
	job->next = NULL;
	if (pthread_mutex_lock(&v->gc_lock) != 0)
		return PV_EIO;
	if (v->gc_tail != NULL)
		v->gc_tail->next = job;
	else
		v->gc_head = job;
	v->gc_tail = job;
	while (!job->done) {
		if (v->gc_busy) {
			(void)pthread_cond_wait(&v->gc_done, &v->gc_lock);
			continue;
		}
		take = last = v->gc_head;
		total = take->weight;
		while (last->next != NULL &&
		    total + last->next->weight <= GC_MAX_WEIGHT) {
			last = last->next;
			total += last->weight;
		}
		v->gc_head = last->next;
		if (v->gc_head == NULL)
			v->gc_tail = NULL;
		last->next = NULL;
		v->gc_busy = 1;
		(void)pthread_mutex_unlock(&v->gc_lock);

		rc = commit_jobs(v, take);

		(void)pthread_mutex_lock(&v->gc_lock);
		for (struct gc_job *j = take; j != NULL; j = next) {
			next = j->next;		/* j's owner may return */
			j->rc = rc;
			j->done = 1;
		}
		v->gc_busy = 0;
		v->gc_commits++;
		(void)pthread_cond_broadcast(&v->gc_done);
	}
	(void)pthread_mutex_unlock(&v->gc_lock);
	return job->rc;
}

/*
 * Put a into the commit: seal it again if the ring changed since it was
 * sealed, log it, and queue it in number order for commit_jobs to store.
 */
static pv_status
put_apply(struct vault *v, struct gc_ctx *g, void *arg)
{
	struct put_arg *a = arg, **pp;
	struct vault_event ev;
	uint64_t *seqs;
	uint32_t kekv = 0;
	pv_status rc;

	if ((a->gen == 0 || a->gen != kms_generation(v->kms)) &&
	    (rc = put_seal(v, a)) != PV_OK)
		return rc;
	for (size_t i = 0; i < a->n && kekv == 0; i++)
		if (a->res[i].status == PV_OK)
			kekv = pv_get_u32(a->buf + a->off[i] + R_KEKV);
	/* One ring, one active KEK: every put of a commit shares it. */
	if (g->wrapped > 0 && kekv != g->kekv)
		return PV_ECRYPTO;
	g->kekv = kekv;
	g->wrapped += a->stored;
	g->records += a->stored;
	for (pp = &g->puts; *pp != NULL && (*pp)->rec0 < a->rec0;
	    pp = &(*pp)->next)
		continue;
	a->next = *pp;
	*pp = a;

	if ((seqs = calloc(a->stored, sizeof(*seqs))) == NULL)
		return PV_ENOMEM;
	for (size_t k = 0; k < a->stored; k++)
		seqs[k] = a->rec0 + k;
	if (a->ev != NULL) {
		ev = *a->ev;
		ev.recs = seqs;
		ev.nrecs = a->stored;
		ev.ok = 1;
		rc = vault_audit_in(v, g->t, &ev, NULL);
	} else
		rc = vault_log_op(v, g->t, "put", VAULT_EK_NONE, seqs,
		    a->stored, NULL, NULL);
	free(seqs);
	return rc;
}

/* Records a lease takes at most, unless one put needs more. */
#define LEASE_MAX	65536
/* Tokens leased per record leased. */
#define LEASE_TOK	4

/*
 * Lease nrec record numbers and ntok token numbers, each run contiguous,
 * from this process's block; take a new block from the meta counters (its
 * own durable commit) when this one runs short, extending ours if no other
 * process took numbers since.  Leases double from one record up to
 * LEASE_MAX, so that a short-lived process (one CLI put) leaves only a
 * small gap.  The rest of a block is lost on exit: numbers only grow.
 */
pv_status
vault_lease(struct vault *v, uint64_t nrec, uint64_t ntok, uint64_t *rec0,
    uint64_t *tok0)
{
	struct pv_txn *t = NULL;
	uint64_t next_rec, next_tok, size, take_rec = 0, take_tok = 0;
	pv_status rc = PV_OK;

	if (pthread_mutex_lock(&v->lease_lock) != 0)
		return PV_EIO;
	size = v->lease_size ? v->lease_size * 2 : 1;
	if (size > LEASE_MAX)
		size = LEASE_MAX;
	/* Each run is refilled only when short, so numbers stay dense. */
	if (v->lease_rec_end - v->lease_rec < nrec)
		take_rec = nrec > size ? nrec : size;
	if (v->lease_tok_end - v->lease_tok < ntok)
		take_tok = ntok > size * LEASE_TOK ? ntok : size * LEASE_TOK;
	if (take_rec == 0 && take_tok == 0)
		goto give;
	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK ||
	    (rc = vault_meta_u64(t, META_NEXT_REC, &next_rec)) != PV_OK ||
	    (rc = vault_meta_u64(t, META_NEXT_TOK, &next_tok)) != PV_OK)
		goto out;
	if (next_rec > UINT64_MAX / 2 || next_tok > UINT64_MAX / 2) {
		rc = PV_EFULL;		/* numbers never wrap around */
		goto out;
	}
	if ((take_rec != 0 && (rc = vault_meta_set_u64(t, META_NEXT_REC,
	    next_rec + take_rec)) != PV_OK) || (take_tok != 0 &&
	    (rc = vault_meta_set_u64(t, META_NEXT_TOK, next_tok +
	    take_tok)) != PV_OK))
		goto out;
	rc = pv_txn_commit(t);
	t = NULL;
	if (rc != PV_OK)
		goto out;
	/* A block that follows on from ours extends it. */
	v->lease_size = take_rec > size ? take_rec : size;
	if (take_rec != 0) {
		if (v->lease_rec_end != next_rec)
			v->lease_rec = next_rec;
		v->lease_rec_end = next_rec + take_rec;
	}
	if (take_tok != 0) {
		if (v->lease_tok_end != next_tok)
			v->lease_tok = next_tok;
		v->lease_tok_end = next_tok + take_tok;
	}
give:
	*rec0 = v->lease_rec;
	*tok0 = v->lease_tok;
	v->lease_rec += nrec;
	v->lease_tok += ntok;
out:
	pv_txn_abort(t);
	(void)pthread_mutex_unlock(&v->lease_lock);
	return rc;
}

pv_status
vault_put(struct vault *v, const struct vault_record_in *recs, size_t n,
    struct vault_put_result *res)
{
	return vault_put_ev(v, recs, n, res, NULL);
}

/*
 * Check, lease numbers, seal (in this thread) and commit (in the group):
 * only the stores run in the commit's leader.
 */
pv_status
vault_put_ev(struct vault *v, const struct vault_record_in *recs, size_t n,
    struct vault_put_result *res, const struct vault_event *ev)
{
	struct put_arg a;
	struct gc_job job = { put_apply, &a, 0, PV_OK, 0, NULL };
	size_t size = 0;
	pv_status rc;

	if (n > VAULT_BATCH_MAX)
		return PV_ETOOBIG;
	memset(&a, 0, sizeof(a));
	a.recs = recs;
	a.res = res;
	a.n = n;
	a.ev = ev;
	for (size_t i = 0; i < n; i++)
		if ((res[i].status = vault_record_check(&recs[i],
		    res[i].why)) == PV_OK) {
			a.stored++;
			a.ntok += recs[i].nfields;
		}
	if (a.stored == 0)
		return PV_OK;	/* nothing stored, nothing logged here */
	job.weight = a.stored;
	if ((a.off = calloc(n + 1, sizeof(*a.off))) == NULL ||
	    (a.retain = calloc(n + 1, sizeof(*a.retain))) == NULL ||
	    (a.tc = calloc(a.ntok, sizeof(*a.tc))) == NULL ||
	    (a.im = calloc(a.ntok, sizeof(*a.im))) == NULL) {
		rc = PV_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		a.off[i] = size;
		if (res[i].status == PV_OK)
			size += record_size(&recs[i]);
	}
	a.off[n] = size;
	if ((a.buf = malloc(size)) == NULL) {
		rc = PV_ENOMEM;
		goto fail;
	}
	a.days = atomic_load(&v->retention_days);
	if ((rc = vault_lease(v, a.stored, a.ntok, &a.rec0, &a.tok0)) == PV_OK &&
	    (rc = put_seal(v, &a)) == PV_OK &&
	    (rc = vault_commit_job(v, &job)) == PV_OK)
		goto out;
fail:
	for (size_t i = 0; i < n; i++)
		if (res[i].status == PV_OK) {
			res[i].status = rc;
			res[i].id[0] = '\0';
		}
out:
	free(a.buf);
	free(a.off);
	free(a.retain);
	if (a.tc != NULL)
		pv_cleanse(a.tc, a.ntok * sizeof(*a.tc));
	free(a.tc);
	free(a.im);
	return rc;
}

uint64_t
vault_commits(struct vault *v)
{
	uint64_t n;

	(void)pthread_mutex_lock(&v->gc_lock);
	n = v->gc_commits;
	(void)pthread_mutex_unlock(&v->gc_lock);
	return n;
}

/* Reading records. */

/* Fetch the live record seq; check its check value in constant time. */
pv_status
vault_record_fetch(struct pv_txn *t, uint64_t seq, const uint8_t *check,
    const uint8_t **rec, size_t *len)
{
	uint8_t key[SEQ_LEN];
	const void *val;
	size_t vl;
	pv_status rc;

	pv_put_u64(key, seq);
	if ((rc = pv_get(t, PV_T_RECORDS, key, sizeof(key), &val, &vl)) !=
	    PV_OK)
		return rc;
	if (vl < R_FIELDS && !(vl >= R_CHECK + CHECK_LEN &&
	    ((const uint8_t *)val)[R_TYPE] == REC_TOMBSTONE))
		return PV_EINTEGRITY;
	if (check != NULL &&
	    !pv_ct_eq((const uint8_t *)val + R_CHECK, check, CHECK_LEN))
		return PV_ENOTFOUND;
	if (((const uint8_t *)val)[R_TYPE] == REC_TOMBSTONE)
		return PV_ESHREDDED;
	if (((const uint8_t *)val)[R_TYPE] != REC_LIVE)
		return PV_EINTEGRITY;
	*rec = val;
	*len = vl;
	return PV_OK;
}

void
vault_value_free(struct vault_value *val)
{
	if (val == NULL)
		return;
	pv_secure_free(val->value, val->len + 1);
	pv_cleanse(val, sizeof(*val));
	free(val);
}

pv_status
vault_token_resolve(struct vault *v, struct pv_txn *t, const char *token,
    size_t len, struct resolved *out)
{
	uint8_t check[CHECK_LEN], key[SEQ_LEN];
	const uint8_t *tv, *rec;
	struct field_view f;
	uint64_t tok_seq, rec_seq;
	size_t tl, rl, pos, nf;
	pv_status rc;

	if ((rc = vault_id_parse(v, KMS_ID_TOKEN, token, len, &tok_seq, check)) !=
	    PV_OK)
		return rc;
	pv_put_u64(key, tok_seq);
	if ((rc = pv_get(t, PV_T_TOKENS, key, sizeof(key),
	    (const void **)&tv, &tl)) != PV_OK)
		return rc;
	if (tl < T_NAME || tl != T_NAME + (size_t)tv[T_NAMELEN])
		return PV_EINTEGRITY;
	if (!pv_ct_eq(tv + T_CHECK, check, CHECK_LEN))
		return PV_ENOTFOUND;
	rec_seq = pv_get_u64(tv + T_REC);
	if ((rc = vault_record_fetch(t, rec_seq, NULL, &rec, &rl)) != PV_OK) {
		if (rc == PV_ESHREDDED) {
			/* Which record and field, for the audit log. */
			memset(out, 0, sizeof(*out));
			out->rec_seq = rec_seq;
			out->f.name = (const char *)tv + T_NAME;
			out->f.namelen = tv[T_NAMELEN];
		}
		return rc;
	}
	nf = vault_record_nfields(rec);
	pos = R_FIELDS;
	for (size_t i = 0;; i++) {
		if (i == nf)
			return PV_ENOTFOUND;	/* field since removed */
		if ((rc = vault_field_next(rec, rl, &pos, &f)) != PV_OK)
			return rc;
		if (f.tok_seq == tok_seq)
			break;
	}
	if (f.namelen != tv[T_NAMELEN] ||
	    memcmp(f.name, tv + T_NAME, f.namelen) != 0)
		return PV_EINTEGRITY;
	out->rec_seq = rec_seq;
	out->rec = rec;
	out->reclen = rl;
	out->f = f;
	return PV_OK;
}

/*
 * Token to value in t.  it->rec and field (PV_FIELD_NAME_MAX + 1 bytes)
 * receive the token's record and field as far as it led to them, also
 * when it fails.
 */
static pv_status
get_in(struct vault *v, struct pv_txn *t, const char *token, size_t toklen,
    struct vault_value **out, struct vault_item *it, char *field)
{
	struct vault_value *val;
	struct resolved r;
	pv_status rc;

	rc = vault_token_resolve(v, t, token, toklen, &r);
	if (rc == PV_OK || rc == PV_ESHREDDED) {
		size_t n = r.f.namelen > PV_FIELD_NAME_MAX ? PV_FIELD_NAME_MAX :
		    r.f.namelen;

		it->rec = r.rec_seq;
		memcpy(field, r.f.name, n);
		field[n] = '\0';
	}
	if (rc != PV_OK)
		return rc;
	if ((val = calloc(1, sizeof(*val))) == NULL)
		return PV_ENOMEM;
	if ((rc = vault_field_open(v, &r, &val->value)) != PV_OK) {
		free(val);
		return rc;
	}
	val->len = r.f.ctlen;
	memcpy(val->field, field, strlen(field) + 1);
	if ((rc = vault_id_format(v, KMS_ID_RECORD, r.rec_seq,
	    r.rec + R_CHECK, val->id)) != PV_OK) {
		vault_value_free(val);
		return rc;
	}
	*out = val;
	return PV_OK;
}

pv_status
vault_get(struct vault *v, const char *token, size_t len,
    struct vault_value **out)
{
	char field[PV_FIELD_NAME_MAX + 1] = "";
	const char *fields[1] = { field };
	struct vault_item it = { 0, NULL, VAULT_ITEM_REVEALED, PV_OK };
	struct vault_event ev = { .actor = v->actor, .action = "get",
	    .ok = 1, .purpose = -1, .kind = VAULT_EK_READ, .items = &it,
	    .nitems = 1 };
	struct vault_value *val = NULL;
	struct pv_txn *t;
	pv_status rc;

	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		return rc;
	rc = get_in(v, t, token, len, &val, &it, field);
	pv_txn_abort(t);
	if (field[0] != '\0')
		it.field = field;
	if (rc == PV_OK) {
		ev.recs = &it.rec;
		ev.nrecs = 1;
		ev.fields = fields;
		ev.nfields = 1;
	} else {
		it.outcome = VAULT_ITEM_REFUSED;
		it.code = rc;
	}
	/*
	 * No access without a record, and no failed read without one
	 * either: logged before anything is returned.
	 */
	if (v->actor != NULL && vault_audit(v, &ev, NULL) != PV_OK) {
		vault_value_free(val);
		return PV_EUNAVAIL;
	}
	if (rc == PV_OK)
		*out = val;
	return rc;
}

int
vault_seq_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct hit {
	uint64_t	rec_seq, tok_seq;
	uint8_t		rec_check[CHECK_LEN], tok_check[CHECK_LEN];
};

static int
hit_cmp(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;

	if (x->rec_seq != y->rec_seq)
		return x->rec_seq < y->rec_seq ? -1 : 1;
	return x->tok_seq < y->tok_seq ? -1 : x->tok_seq > y->tok_seq;
}

/* Collect the live entries under one digest into hits. */
static pv_status
lookup_digest(struct vault *v, struct pv_txn *t,
    const uint8_t digest[static PV_HMAC_LEN], struct hit *hits, size_t *n)
{
	struct pv_cursor *c = NULL;
	const uint8_t *iv, *tv, *rec;
	uint8_t key[SEQ_LEN], want[INDEX_VAL_LEN];
	size_t il, tl, rl;
	pv_status rc;

	if ((rc = pv_cursor_open(t, PV_T_INDEX, &c)) != PV_OK)
		return rc;
	for (rc = pv_cursor_seek(c, digest, PV_HMAC_LEN, 1, NULL, NULL,
	    (const void **)&iv, &il); rc == PV_OK && *n < VAULT_LOOKUP_MAX;
	    rc = pv_cursor_next(c, 1, NULL, NULL, (const void **)&iv, &il)) {
		uint64_t rec_seq, tok_seq;

		if (il != INDEX_VAL_LEN) {
			rc = PV_EINTEGRITY;
			break;
		}
		/* An entry moved to another digest, or edited, fails here. */
		memcpy(want, iv, 2 * SEQ_LEN);
		if ((rc = vault_index_mac(v, want, digest)) != PV_OK)
			break;
		if (!pv_ct_eq(want, iv, INDEX_VAL_LEN)) {
			rc = PV_EINTEGRITY;
			break;
		}
		rec_seq = pv_get_u64(iv);
		tok_seq = pv_get_u64(iv + SEQ_LEN);
		pv_put_u64(key, tok_seq);
		rc = pv_get(t, PV_T_TOKENS, key, sizeof(key),
		    (const void **)&tv, &tl);
		if (rc == PV_ENOTFOUND)
			continue;
		if (rc != PV_OK)
			break;
		if (tl < T_NAME || pv_get_u64(tv + T_REC) != rec_seq) {
			rc = PV_EINTEGRITY;
			break;
		}
		rc = vault_record_fetch(t, rec_seq, NULL, &rec, &rl);
		if (rc == PV_ESHREDDED || rc == PV_ENOTFOUND)
			continue;
		if (rc != PV_OK)
			break;
		hits[*n].rec_seq = rec_seq;
		hits[*n].tok_seq = tok_seq;
		memcpy(hits[*n].rec_check, rec + R_CHECK, CHECK_LEN);
		memcpy(hits[*n].tok_check, tv + T_CHECK, CHECK_LEN);
		(*n)++;
	}
	pv_cursor_close(c);
	return rc == PV_ENOTFOUND ? PV_OK : rc;
}

/*
 * Log a look-up with the records it found (not a read of values): seqs,
 * n of them, sorted and made unique here.
 */
static pv_status
lookup_log(struct vault *v, const struct vault_event *tmpl, const char *field,
    uint64_t *seqs, size_t n)
{
	struct vault_event ev;
	size_t w = 0;

	if (tmpl == NULL)
		return vault_log_op(v, NULL, "lookup", VAULT_EK_NONE, NULL, 0,
		    NULL, NULL) == PV_OK ? PV_OK : PV_EUNAVAIL;
	qsort(seqs, n, sizeof(*seqs), vault_seq_cmp);
	for (size_t i = 0; i < n; i++)
		if (w == 0 || seqs[i] != seqs[w - 1])
			seqs[w++] = seqs[i];
	ev = *tmpl;
	ev.ok = 1;
	ev.recs = seqs;
	ev.nrecs = w;
	ev.fields = &field;
	ev.nfields = 1;
	return vault_audit(v, &ev, NULL) == PV_OK ? PV_OK : PV_EUNAVAIL;
}

/*
 * While the index is rebuilt under a new key, entries live under either
 * key's digest: look under every usable version and merge.
 */
#define INDEX_VERSIONS_MAX	4

/* A value the answer has no room for (vault.h). */
static void
lookup_full(struct vault_lookup_result *r)
{
	r->status = PV_ETOOBIG;
	(void)snprintf(r->why, sizeof(r->why), "the answer is full (%d "
	    "matches in all): look this value up in another request",
	    VAULT_LOOKUP_MAX);
}

/*
 * One value's look-up in snapshot t: its matches appended to m at *total
 * (their records to seqs), unless they would take the answer over
 * VAULT_LOOKUP_MAX: then r says the answer is full and *full is set.
 */
static pv_status
lookup_value(struct vault *v, struct pv_txn *t,
    const struct vault_lookup_req *rq, size_t i, struct hit *hits, struct vault_match *m, uint64_t *seqs,
    size_t *total, int *full)
{
	uint8_t digest[INDEX_VERSIONS_MAX][PV_HMAC_LEN];
	uint32_t vers[INDEX_VERSIONS_MAX];
	struct vault_lookup_result *r = &rq->res[i];
	const struct vault_field f = { rq->field, rq->fieldlen, rq->values[i],
	    rq->lens[i] };
	size_t max = rq->value_max, cnt = 0, uniq = 0, nv;
	char norm[PV_VALUE_MAX];
	size_t normlen;
	pv_status rc;

	memset(r, 0, sizeof(*r));
	r->first = *total;
	if (*full) {
		lookup_full(r);
		return PV_OK;
	}
	if (max == 0 || max > PV_VALUE_MAX)
		max = PV_VALUE_MAX;
	if ((r->status = field_check(&f, 0, max, r->why)) != PV_OK)
		return PV_OK;
	if ((rc = vault_normalize(norm, &normlen, f.name, f.namelen, f.value,
	    f.len)) != PV_OK)
		goto out;
	nv = kms_usable_versions(v->kms, KMS_INDEX, vers, INDEX_VERSIONS_MAX);
	for (size_t k = 0; k < nv; k++)
		if ((rc = kms_blind_index(v->kms, vers[k], digest[k], f.name,
		    f.namelen, norm, normlen)) != PV_OK)
			goto out;
	for (size_t k = 0; k < nv && cnt < VAULT_LOOKUP_MAX; k++)
		if ((rc = lookup_digest(v, t, digest[k], hits, &cnt)) != PV_OK)
			goto out;
	qsort(hits, cnt, sizeof(*hits), hit_cmp);
	for (size_t k = 0; k < cnt; k++)
		if (uniq == 0 || hit_cmp(&hits[k], &hits[uniq - 1]) != 0)
			hits[uniq++] = hits[k];
	if (*total + uniq > VAULT_LOOKUP_MAX) {
		*full = 1;
		lookup_full(r);
		rc = PV_OK;
		goto out;
	}
	for (size_t k = 0; k < uniq; k++) {
		struct vault_match *x = &m[*total + k];

		if ((rc = vault_id_format(v, KMS_ID_RECORD, hits[k].rec_seq,
		    hits[k].rec_check, x->id)) != PV_OK ||
		    (rc = vault_id_format(v, KMS_ID_TOKEN, hits[k].tok_seq,
		    hits[k].tok_check, x->token)) != PV_OK)
			goto out;
		seqs[*total + k] = hits[k].rec_seq;
	}
	r->n = uniq;
	*total += uniq;
	rc = PV_OK;
out:
	pv_cleanse(norm, sizeof(norm));
	return rc;
}

pv_status
vault_lookup_many(struct vault *v, const struct vault_event *ev,
    const struct vault_lookup_req *rq)
{
	struct vault_match *m = NULL;
	struct hit *hits = NULL;
	struct pv_txn *t = NULL;
	uint64_t *seqs = NULL;
	size_t total = 0;
	int full = 0;
	pv_status rc;

	if (!pv_field_name_valid(rq->field, rq->fieldlen))
		return PV_EFIELD;
	if (!vault_field_indexed(rq->field, rq->fieldlen))
		return PV_ENOTINDEXED;
	if (rq->n == 0 || rq->n > VAULT_BATCH_MAX)
		return PV_ETOOBIG;
	/* The answer's bound, whatever n is: one value's scan, the total. */
	if ((hits = calloc(VAULT_LOOKUP_MAX, sizeof(*hits))) == NULL ||
	    (m = calloc(VAULT_LOOKUP_MAX, sizeof(*m))) == NULL ||
	    (seqs = calloc(VAULT_LOOKUP_MAX, sizeof(*seqs))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		goto out;
	for (size_t i = 0; i < rq->n; i++)
		if ((rc = lookup_value(v, t, rq, i, hits, m, seqs, &total,
		    &full)) != PV_OK)
			goto out;
	pv_txn_abort(t);
	t = NULL;
	/* Every record found, logged before any is returned. */
	if ((rc = lookup_log(v, ev, rq->field, seqs, total)) != PV_OK)
		goto out;
	*rq->matches = m;
	m = NULL;
out:
	pv_txn_abort(t);
	free(hits);
	free(seqs);
	free(m);
	return rc;
}

pv_status
vault_lookup(struct vault *v, const char *field, size_t fieldlen,
    const char *value, size_t len, struct vault_match **out, size_t *n)
{
	struct vault_lookup_result res;
	struct vault_match *m = NULL;
	const char *values[1] = { value };
	const struct vault_lookup_req rq = { field, fieldlen, values, &len, 1,
	    0, &res, &m };
	pv_status rc;

	if ((rc = vault_lookup_many(v, NULL, &rq)) != PV_OK)
		return rc;
	if (res.status != PV_OK) {
		free(m);
		return res.status;
	}
	*out = m;
	*n = res.n;
	return PV_OK;
}

pv_status
vault_info(struct vault *v, struct vault_info *out)
{
	struct kms_key_info *keys = NULL;
	struct vault_key_info *vk = NULL;
	struct pv_txn *t;
	uint64_t records;
	size_t n = 0;
	pv_status rc;

	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		return rc;
	if ((rc = vault_meta_u64(t, META_RECORDS, &records)) != PV_OK ||
	    (rc = kms_status(v->kms, t, &keys, &n)) != PV_OK)
		goto out;
	if ((vk = calloc(n ? n : 1, sizeof(*vk))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		vault_key_info_from(&vk[i], &keys[i]);
	pv_hex_encode(out->vault_id, kms_vault_id(v->kms), KMS_VAULT_ID_LEN);
	out->format = KMS_FORMAT_VERSION;
	out->records = records;
	out->keys = vk;
	out->nkeys = n;
	vk = NULL;
out:
	pv_txn_abort(t);
	free(keys);
	free(vk);
	return rc;
}

pv_status
vault_alarm(struct vault *v, const char *what, const char *where)
{
	atomic_fetch_add(&v->alarms, 1);
	pv_log(PV_LOG_ERROR, "integrity alarm: %s%s%s failed authentication",
	    what, where != NULL ? " " : "", where != NULL ? where : "");
	return PV_EINTEGRITY;
}

uint64_t
vault_alarms(struct vault *v)
{
	return atomic_load(&v->alarms);
}

void
vault_store_version(char out[static 32])
{
	pv_store_version(out);
}
