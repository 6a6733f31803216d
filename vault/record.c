/* SPDX-License-Identifier: Apache-2.0 */
/*
 * record.c: the one encoder and decoder of a stored record's field
 * entries, the one AAD a field's value is sealed under, and the token and
 * index values that point at a field.  Every writer (put, correction,
 * index rebuild, shred) and every reader goes through here, so that the
 * layout of docs/format.md is written once.
 *
 * Decoding is total: bytes that do not parse are PV_EINTEGRITY.
 */
#include <string.h>

#include "vault_int.h"

/*
 * A field's AAD: the vault id, the record block (number and check), the
 * token number and the field name.  A ciphertext moved to another vault,
 * record, token or field, or renamed on disk, then fails to open.
 */
static size_t
field_aad(uint8_t aad[static AAD_MAX], const struct kms *k,
    const uint8_t rec[static 16], uint64_t tok_seq, const char *name,
    size_t namelen)
{
	memcpy(aad, kms_vault_id(k), KMS_VAULT_ID_LEN);
	memcpy(aad + KMS_VAULT_ID_LEN, rec, 16);
	pv_put_u64(aad + KMS_VAULT_ID_LEN + 16, tok_seq);
	memcpy(aad + KMS_VAULT_ID_LEN + 16 + SEQ_LEN, name, namelen);
	return KMS_VAULT_ID_LEN + 16 + SEQ_LEN + namelen;
}

size_t
vault_record_nfields(const uint8_t *rec)
{
	return (size_t)rec[R_NFIELDS] << 8 | rec[R_NFIELDS + 1];
}

void
vault_record_set_nfields(uint8_t *rec, size_t n)
{
	rec[R_NFIELDS] = (uint8_t)(n >> 8);
	rec[R_NFIELDS + 1] = (uint8_t)n;
}

size_t
vault_field_size(size_t namelen, int indexed, size_t len)
{
	return 1 + namelen + 1 + (indexed ? PV_HMAC_LEN : 0) + SEQ_LEN + 2 +
	    PV_GCM_NONCE_LEN + len + PV_GCM_TAG_LEN;
}

pv_status
vault_field_put(struct vault *v, const uint8_t rec[static 16],
    const uint8_t *dek, const struct field_in *f, uint8_t **pos)
{
	uint8_t aad[AAD_MAX], *q = *pos, *nonce, *ct;
	size_t aadlen;
	pv_status rc;

	*q++ = (uint8_t)f->namelen;
	memcpy(q, f->name, f->namelen);
	q += f->namelen;
	*q++ = f->digest != NULL ? FF_INDEXED : 0;
	if (f->digest != NULL) {
		memcpy(q, f->digest, PV_HMAC_LEN);
		q += PV_HMAC_LEN;
	}
	pv_put_u64(q, f->tok_seq);
	q += SEQ_LEN;
	*q++ = (uint8_t)(f->len >> 8);
	*q++ = (uint8_t)f->len;
	nonce = q;
	ct = q + PV_GCM_NONCE_LEN;
	aadlen = field_aad(aad, v->kms, rec, f->tok_seq, f->name, f->namelen);
	if (f->nonce != NULL) {
		memcpy(nonce, f->nonce, PV_GCM_NONCE_LEN);
		rc = pv_aead_seal_nonce(ct, ct + f->len, dek, nonce, aad,
		    aadlen, f->value, f->len);
	} else
		rc = pv_aead_seal(ct, nonce, ct + f->len, dek, aad, aadlen,
		    f->value, f->len);
	if (rc != PV_OK)
		return rc;
	*pos = ct + f->len + PV_GCM_TAG_LEN;
	return PV_OK;
}

pv_status
vault_field_next(const uint8_t *rec, size_t len, size_t *pos,
    struct field_view *f)
{
	size_t p = *pos;

#define NEED(n) do { if (len - p < (size_t)(n)) return PV_EINTEGRITY; } \
	while (0)
	NEED(1);
	f->entry = rec + p;
	f->namelen = rec[p++];
	NEED(f->namelen + 1);
	f->name = (const char *)rec + p;
	p += f->namelen;
	f->indexed = rec[p++] & FF_INDEXED;
	if (f->indexed) {
		NEED(PV_HMAC_LEN);
		f->digest = rec + p;
		p += PV_HMAC_LEN;
	}
	NEED(SEQ_LEN + 2 + PV_GCM_NONCE_LEN);
	f->tok_seq = pv_get_u64(rec + p);
	p += SEQ_LEN;
	f->ctlen = (size_t)rec[p] << 8 | rec[p + 1];
	p += 2;
	f->nonce = rec + p;
	p += PV_GCM_NONCE_LEN;
	NEED(f->ctlen + PV_GCM_TAG_LEN);
	f->ct = rec + p;
	p += f->ctlen;
	f->tag = rec + p;
	p += PV_GCM_TAG_LEN;
#undef NEED
	if (f->namelen == 0 || f->namelen > PV_FIELD_NAME_MAX ||
	    f->ctlen > PV_VALUE_MAX)
		return PV_EINTEGRITY;
	f->entrylen = p - *pos;
	*pos = p;
	return PV_OK;
}

pv_status
vault_field_open(struct vault *v, const struct resolved *r, char **out)
{
	uint8_t ctx[DEK_CTX_LEN], aad[AAD_MAX];
	uint8_t *dek = NULL;
	char *val = NULL;
	size_t aadlen;
	pv_status rc;

	if ((dek = pv_secure_alloc(PV_KEY_LEN)) == NULL ||
	    (val = pv_secure_alloc(r->f.ctlen + 1)) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	vault_dek_ctx(ctx, r->rec_seq, r->rec);
	if ((rc = kms_dek_open(v->kms, ctx, sizeof(ctx),
	    pv_get_u32(r->rec + R_KEKV), r->rec + R_DEK, dek)) != PV_OK)
		goto out;
	/* The record block is the DEK context's first 16 bytes. */
	aadlen = field_aad(aad, v->kms, ctx, r->f.tok_seq, r->f.name,
	    r->f.namelen);
	if ((rc = pv_aead_open((uint8_t *)val, dek, r->f.nonce, r->f.tag, aad,
	    aadlen, r->f.ct, r->f.ctlen)) != PV_OK)
		goto out;
	val[r->f.ctlen] = '\0';
	*out = val;
	val = NULL;
out:
	if (rc == PV_EINTEGRITY)	/* an edited header or ciphertext */
		(void)vault_alarm(v, "record", "records");
	pv_secure_free(dek, PV_KEY_LEN);
	pv_secure_free(val, r->f.ctlen + 1);
	return rc;
}

pv_status
vault_field_digest(struct vault *v, uint32_t version, const char *name,
    size_t namelen, const char *value, size_t len,
    uint8_t digest[static PV_HMAC_LEN])
{
	char norm[PV_VALUE_MAX];
	size_t normlen = 0;
	pv_status rc;

	if ((rc = vault_normalize(norm, &normlen, name, namelen, value,
	    len)) == PV_OK)
		rc = kms_blind_index(v->kms, version, digest, name, namelen,
		    norm, normlen);
	pv_cleanse(norm, sizeof(norm));
	return rc;
}

pv_status
vault_index_val(struct vault *v, uint64_t seq, uint64_t tok_seq,
    const uint8_t digest[static PV_HMAC_LEN], uint8_t val[static INDEX_VAL_LEN])
{
	pv_put_u64(val, seq);
	pv_put_u64(val + SEQ_LEN, tok_seq);
	return vault_index_mac(v, val, digest);
}

pv_status
vault_index_del(struct vault *v, struct pv_txn *t, uint64_t seq,
    const struct field_view *f, uint8_t *val)
{
	uint8_t idx[INDEX_VAL_LEN];
	pv_status rc;

	if (val == NULL)
		val = idx;
	if ((rc = vault_index_val(v, seq, f->tok_seq, f->digest, val)) !=
	    PV_OK)
		return rc;
	rc = pv_del(t, PV_T_INDEX, f->digest, PV_HMAC_LEN, val, INDEX_VAL_LEN);
	return rc == PV_ENOTFOUND ? PV_OK : rc;
}

size_t
vault_token_val(uint8_t out[static TOKEN_VAL_MAX], uint64_t rec_seq,
    const uint8_t check[static CHECK_LEN], const char *name, size_t namelen)
{
	pv_put_u64(out + T_REC, rec_seq);
	memcpy(out + T_CHECK, check, CHECK_LEN);
	out[T_NAMELEN] = (uint8_t)namelen;
	memcpy(out + T_NAME, name, namelen);
	return T_NAME + namelen;
}
