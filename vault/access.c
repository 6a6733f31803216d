/*
 * access.c: API keys, and answering a caller's tokens under its role, its
 * purpose, its fields and the person's consent.
 */
#include <stdlib.h>
#include <string.h>

#include "vault_int.h"

/* API key value: docs/format.md. */
#define K_VERSION	0
#define K_ROLE		1
#define K_REVEAL	2
#define K_PURPOSES	4
#define K_CREATED	8
#define K_REVOKED	16
#define K_NAMELEN	24
#define K_NAME		25
#define K_VAL_MAX	(K_NAME + VAULT_APIKEY_NAME_MAX + 1 + \
			    VAULT_APIKEY_FIELDS_MAX * (1 + PV_FIELD_NAME_MAX))

static const char *const role_names[] = {
	[VAULT_ROLE_WRITER] = "writer",
	[VAULT_ROLE_READER] = "reader",
	[VAULT_ROLE_ADMIN] = "admin",
	[VAULT_ROLE_AUDITOR] = "auditor",
};

static const char *const purpose_names[VAULT_P__COUNT] = {
	[VAULT_P_SERVICE] = "service",
	[VAULT_P_NOTICES] = "notices",
	[VAULT_P_MARKETING] = "marketing",
	[VAULT_P_RESEARCH] = "research",
	[VAULT_P_CONTEST] = "contest",
	[VAULT_P_PAYMENT] = "payment",
	[VAULT_P_LEGAL] = "legal",
};

const char *
vault_role_name(enum vault_role r)
{
	if (r < VAULT_ROLE_WRITER || r > VAULT_ROLE_AUDITOR)
		return "unknown";
	return role_names[r];
}

const char *
vault_purpose_name(enum vault_purpose p)
{
	if ((unsigned)p >= VAULT_P__COUNT)
		return "unknown";
	return purpose_names[p];
}

static int
name_is(const char *name, const char *s, size_t len)
{
	return strlen(name) == len && memcmp(name, s, len) == 0;
}

pv_status
vault_role_parse(const char *s, size_t len, enum vault_role *out)
{
	for (int r = VAULT_ROLE_WRITER; r <= VAULT_ROLE_AUDITOR; r++)
		if (name_is(role_names[r], s, len)) {
			*out = (enum vault_role)r;
			return PV_OK;
		}
	return PV_EINVAL;
}

pv_status
vault_purpose_parse(const char *s, size_t len, enum vault_purpose *out)
{
	for (int p = 0; p < VAULT_P__COUNT; p++)
		if (name_is(purpose_names[p], s, len)) {
			*out = (enum vault_purpose)p;
			return PV_OK;
		}
	return PV_EINVAL;
}

int
vault_apikey_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > VAULT_APIKEY_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return 0;
	}
	return 1;
}

/* Serialize a key; returns the length. */
static size_t
key_encode(uint8_t *p, const struct vault_apikey *k)
{
	size_t n, pos;

	memset(p, 0, K_NAME);
	p[K_VERSION] = 1;
	p[K_ROLE] = (uint8_t)k->role;
	p[K_REVEAL] = (uint8_t)k->reveal;
	pv_put_u32(p + K_PURPOSES, k->purposes);
	pv_put_u64(p + K_CREATED, k->created);
	pv_put_u64(p + K_REVOKED, k->revoked);
	n = strlen(k->name);
	p[K_NAMELEN] = (uint8_t)n;
	memcpy(p + K_NAME, k->name, n);
	pos = K_NAME + n;
	p[pos++] = (uint8_t)k->nfields;
	for (size_t i = 0; i < k->nfields; i++) {
		n = strlen(k->fields[i]);
		p[pos++] = (uint8_t)n;
		memcpy(p + pos, k->fields[i], n);
		pos += n;
	}
	return pos;
}

/* Total: any bytes give a key or PV_EINTEGRITY. */
static pv_status
key_decode(struct vault_apikey *k, const uint8_t *p, size_t len)
{
	size_t pos, n;

	memset(k, 0, sizeof(*k));
	if (len < K_NAME + 1 || p[K_VERSION] != 1)
		return PV_EINTEGRITY;
	k->role = p[K_ROLE];
	k->reveal = p[K_REVEAL];
	k->purposes = pv_get_u32(p + K_PURPOSES);
	k->created = pv_get_u64(p + K_CREATED);
	k->revoked = pv_get_u64(p + K_REVOKED);
	n = p[K_NAMELEN];
	if (n == 0 || n > VAULT_APIKEY_NAME_MAX || len < K_NAME + n + 1)
		return PV_EINTEGRITY;
	memcpy(k->name, p + K_NAME, n);
	pos = K_NAME + n;
	k->nfields = p[pos++];
	if (k->nfields > VAULT_APIKEY_FIELDS_MAX)
		return PV_EINTEGRITY;
	for (size_t i = 0; i < k->nfields; i++) {
		if (pos >= len || (n = p[pos++]) == 0 ||
		    n > PV_FIELD_NAME_MAX || len - pos < n)
			return PV_EINTEGRITY;
		memcpy(k->fields[i], p + pos, n);
		pos += n;
	}
	if (pos != len || k->role < VAULT_ROLE_WRITER ||
	    k->role > VAULT_ROLE_AUDITOR)
		return PV_EINTEGRITY;
	return PV_OK;
}

static pv_status
secret_hash(struct vault *v, const uint8_t raw[static 32],
    uint8_t out[static PV_HMAC_LEN])
{
	struct pv_part part = { raw, 32 };

	return kms_keyed_hash(v->kms, KMS_H_APIKEY, out, &part, 1);
}

/*
 * Find a key by name.  The table is keyed by secret hash and holds a few
 * keys, so a scan is the index.
 */
static pv_status
key_find(struct pv_txn *t, const char *name, uint8_t hash[PV_HMAC_LEN],
    struct vault_apikey *out)
{
	struct pv_cursor *c;
	const void *k, *val;
	size_t kl, vl;
	pv_status rc;

	if ((rc = pv_cursor_open(t, PV_T_APIKEYS, &c)) != PV_OK)
		return rc;
	for (rc = pv_cursor_seek(c, NULL, 0, 0, &k, &kl, &val, &vl);
	    rc == PV_OK; rc = pv_cursor_next(c, 0, &k, &kl, &val, &vl)) {
		if (kl != PV_HMAC_LEN) {
			rc = PV_EINTEGRITY;
			break;
		}
		if ((rc = key_decode(out, val, vl)) != PV_OK)
			break;
		if (strcmp(out->name, name) == 0) {
			if (hash != NULL)
				memcpy(hash, k, PV_HMAC_LEN);
			break;
		}
	}
	pv_cursor_close(c);
	return rc;
}

pv_status
vault_apikey_create(struct vault *v, const struct vault_apikey *spec,
    char secret[static VAULT_APIKEY_SECRET_LEN + 1])
{
	uint8_t raw[32], hash[PV_HMAC_LEN], val[K_VAL_MAX];
	struct vault_apikey k, found;
	struct pv_txn *t = NULL;
	size_t len;
	pv_status rc;

	k = *spec;
	if (!vault_apikey_name_valid(k.name, strnlen(k.name,
	    sizeof(k.name))) || vault_role_name(k.role)[0] == 'u' ||
	    (k.reveal != VAULT_REVEAL_PLAIN &&
	    k.reveal != VAULT_REVEAL_MASKED) ||
	    k.purposes >= (1u << VAULT_P__COUNT) ||
	    k.nfields > VAULT_APIKEY_FIELDS_MAX)
		return PV_EINVAL;
	for (size_t i = 0; i < k.nfields; i++)
		if (!pv_field_name_valid(k.fields[i], strnlen(k.fields[i],
		    sizeof(k.fields[i]))))
			return PV_EFIELD;
	k.created = pv_now();
	k.revoked = 0;
	if ((rc = pv_random(raw, sizeof(raw))) != PV_OK ||
	    (rc = secret_hash(v, raw, hash)) != PV_OK)
		goto out;
	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		goto out;
	rc = key_find(t, k.name, NULL, &found);
	if (rc == PV_OK) {
		rc = PV_EEXIST;
		goto out;
	}
	if (rc != PV_ENOTFOUND)
		goto out;
	len = key_encode(val, &k);
	if ((rc = pv_put(t, PV_T_APIKEYS, hash, sizeof(hash), val, len,
	    PV_PUT_NOOVERWRITE)) != PV_OK ||
	    (rc = vault_log_op(v, t, "apikey.create", VAULT_EK_NONE, NULL, 0,
	    k.name, NULL)) != PV_OK)
		goto out;
	rc = pv_txn_commit(t);
	t = NULL;
	if (rc != PV_OK)
		goto out;
	memcpy(secret, "pvk_", 4);
	pv_b64url_encode16(secret + 4, raw);
	pv_b64url_encode16(secret + 4 + PV_B64URL16_LEN, raw + 16);
out:
	pv_txn_abort(t);
	pv_cleanse(raw, sizeof(raw));
	return rc;
}

pv_status
vault_apikey_list(struct vault *v, struct vault_apikey **out, size_t *n)
{
	struct vault_apikey *keys = NULL, *nk;
	struct pv_cursor *c = NULL;
	struct pv_txn *t;
	const void *k, *val;
	size_t cnt = 0, kl, vl;
	pv_status rc;

	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		return rc;
	if ((rc = pv_cursor_open(t, PV_T_APIKEYS, &c)) != PV_OK)
		goto out;
	for (rc = pv_cursor_seek(c, NULL, 0, 0, &k, &kl, &val, &vl);
	    rc == PV_OK; rc = pv_cursor_next(c, 0, &k, &kl, &val, &vl)) {
		if ((nk = realloc(keys, (cnt + 1) * sizeof(*keys))) == NULL) {
			rc = PV_ENOMEM;
			goto out;
		}
		keys = nk;
		if ((rc = key_decode(&keys[cnt++], val, vl)) != PV_OK)
			goto out;
	}
	if (rc != PV_ENOTFOUND)
		goto out;
	*out = keys;
	*n = cnt;
	keys = NULL;
	rc = PV_OK;
out:
	pv_cursor_close(c);
	pv_txn_abort(t);
	free(keys);
	return rc;
}

pv_status
vault_apikey_revoke(struct vault *v, const char *name)
{
	uint8_t hash[PV_HMAC_LEN], val[K_VAL_MAX];
	struct vault_apikey k;
	struct pv_txn *t;
	pv_status rc;

	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		return rc;
	if ((rc = key_find(t, name, hash, &k)) != PV_OK)
		goto out;
	if (k.revoked != 0) {
		pv_txn_abort(t);
		return PV_OK;
	}
	k.revoked = pv_now();
	if ((rc = pv_put(t, PV_T_APIKEYS, hash, sizeof(hash), val,
	    key_encode(val, &k), 0)) != PV_OK ||
	    (rc = vault_log_op(v, t, "apikey.revoke", VAULT_EK_NONE, NULL, 0,
	    name, NULL)) != PV_OK)
		goto out;
	return pv_txn_commit(t);
out:
	pv_txn_abort(t);
	return rc;
}

pv_status
vault_apikey_auth(struct vault *v, const char *secret, size_t len,
    struct vault_apikey *out)
{
	uint8_t raw[32], hash[PV_HMAC_LEN];
	struct vault_apikey k;
	struct pv_txn *t;
	const void *val;
	size_t vl;
	pv_status rc;

	if (len != VAULT_APIKEY_SECRET_LEN || memcmp(secret, "pvk_", 4) != 0)
		return PV_EUNAUTH;
	if (pv_b64url_decode16(raw, secret + 4, PV_B64URL16_LEN) != PV_OK ||
	    pv_b64url_decode16(raw + 16, secret + 4 + PV_B64URL16_LEN,
	    PV_B64URL16_LEN) != PV_OK) {
		pv_cleanse(raw, sizeof(raw));
		return PV_EUNAUTH;
	}
	rc = secret_hash(v, raw, hash);
	pv_cleanse(raw, sizeof(raw));
	if (rc != PV_OK)
		return rc;
	/*
	 * The look-up is by a keyed hash of the secret: its timing tells
	 * nothing an attacker without the vault's keys can steer.
	 */
	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		return rc;
	rc = pv_get(t, PV_T_APIKEYS, hash, sizeof(hash), &val, &vl);
	if (rc == PV_OK)
		rc = key_decode(&k, val, vl);
	pv_txn_abort(t);
	if (rc == PV_ENOTFOUND || (rc == PV_OK && k.revoked != 0))
		return PV_EUNAUTH;
	if (rc != PV_OK)
		return rc;
	*out = k;
	return PV_OK;
}

/* Masking and pseudonyms. */

/* Bytes of the UTF-8 sequence starting at s (1 if it is not one). */
static size_t
utf8_seqlen(const char *s, size_t len)
{
	unsigned char c = (unsigned char)s[0];
	size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;

	return n <= len ? n : 1;
}

void
vault_mask(char out[static VAULT_MASKED_MAX + 1], const char *field,
    size_t fieldlen, const char *value, size_t len)
{
	const char *at;
	size_t n, digits = 0, i;

	if (fieldlen == 5 && memcmp(field, "phone", 5) == 0) {
		char last[4];

		for (i = len; i > 0 && digits < 4; i--)
			if (value[i - 1] >= '0' && value[i - 1] <= '9')
				last[3 - digits++] = value[i - 1];
		memcpy(out, "***", 3);
		memcpy(out + 3, last + 4 - digits, digits);
		out[3 + digits] = '\0';
		return;
	}
	while (len > 0 && (*value == ' ' || *value == '\t' || *value == '\r' ||
	    *value == '\n')) {
		value++;
		len--;
	}
	if (len == 0) {
		memcpy(out, "***", 4);
		return;
	}
	n = utf8_seqlen(value, len);
	memcpy(out, value, n);
	memcpy(out + n, "***", 3);
	n += 3;
	if (fieldlen == 5 && memcmp(field, "email", 5) == 0 &&
	    (at = memrchr(value, '@', len)) != NULL) {
		size_t dl = len - (size_t)(at - value);

		while (dl > 0 && (at[dl - 1] == ' ' || at[dl - 1] == '\t' ||
		    at[dl - 1] == '\r' || at[dl - 1] == '\n'))
			dl--;
		if (dl > VAULT_MASKED_MAX - n)
			dl = VAULT_MASKED_MAX - n;
		memcpy(out + n, at, dl);
		n += dl;
	}
	out[n] = '\0';
}

static pv_status
pseudonym(struct vault *v, char out[static VAULT_PSEUDONYM_STRLEN + 1],
    const char *field, size_t fieldlen, const char *value, size_t len)
{
	uint8_t mac[PV_HMAC_LEN];
	char *norm;
	size_t normlen;
	const uint8_t sep = 0;
	pv_status rc;

	if ((norm = pv_secure_alloc(PV_VALUE_MAX)) == NULL)
		return PV_ENOMEM;
	rc = vault_normalize(norm, &normlen, field, fieldlen, value, len);
	if (rc == PV_ENOTINDEXED || rc == PV_EVALUE) {
		memcpy(norm, value, len);	/* equal values, equal names */
		normlen = len;
	} else if (rc != PV_OK)
		goto out;
	{
		struct pv_part parts[3] = {
			{ field, fieldlen }, { &sep, 1 }, { norm, normlen },
		};

		if ((rc = kms_keyed_hash(v->kms, KMS_H_PSEUDONYM, mac, parts,
		    3)) != PV_OK)
			goto out;
	}
	memcpy(out, "psn_", 4);
	pv_b64url_encode16(out + 4, mac);
out:
	pv_secure_free(norm, PV_VALUE_MAX);
	return rc;
}

int
vault_apikey_field_allowed(const struct vault_apikey *k, const char *f,
    size_t len)
{
	if (k->nfields == 0)
		return 1;
	for (size_t i = 0; i < k->nfields; i++)
		if (name_is(k->fields[i], f, len))
			return 1;
	return 0;
}

static int
blank(const char *s)
{
	if (s == NULL)
		return 1;
	for (; *s != '\0'; s++)
		if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
			return 0;
	return 1;
}

/* Answer one token from snapshot t into r. */
static pv_status
reveal_one(struct vault *v, struct pv_txn *t, const struct vault_access *a,
    const char *token, size_t len, struct vault_reveal *r)
{
	struct resolved res;
	char *plain = NULL;
	pv_status rc;

	if ((rc = vault_token_resolve(v, t, token, len, &res)) != PV_OK)
		return rc;
	if (!vault_apikey_field_allowed(a->key, res.f.name, res.f.namelen))
		return PV_EFORBIDDEN;
	/* Notices cannot be opted out of; marketing needs consent. */
	if (a->purpose == VAULT_P_MARKETING &&
	    !(res.rec[R_FLAGS] & RF_MARKETING))
		return PV_ECONSENT;
	if ((rc = vault_field_open(v, &res, &plain)) != PV_OK)
		return rc;
	r->seq = res.rec_seq;
	memcpy(r->field, res.f.name, res.f.namelen);
	r->field[res.f.namelen] = '\0';
	if (a->purpose == VAULT_P_RESEARCH ||
	    a->key->reveal == VAULT_REVEAL_MASKED) {
		vault_mask(r->masked, r->field, res.f.namelen, plain,
		    res.f.ctlen);
		if (a->purpose == VAULT_P_RESEARCH)
			rc = pseudonym(v, r->pseudonym, r->field,
			    res.f.namelen, plain, res.f.ctlen);
		pv_secure_free(plain, res.f.ctlen + 1);
		return rc;
	}
	r->value = plain;
	r->len = res.f.ctlen;
	return PV_OK;
}

static int
seq_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Log a detokenize: the records whose values it released and the fields
 * it touched, each once.
 */
static pv_status
log_reveals(struct vault *v, const struct vault_event *tmpl,
    const struct vault_reveal *out, size_t n)
{
	struct vault_event ev = *tmpl;
	const char **fields = NULL;
	uint64_t *seqs = NULL;
	size_t ns = 0, nf = 0;
	pv_status rc;

	if ((seqs = calloc(n ? n : 1, sizeof(*seqs))) == NULL ||
	    (fields = calloc(n ? n : 1, sizeof(*fields))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t j;

		if (out[i].status != PV_OK)
			continue;
		seqs[ns++] = out[i].seq;
		for (j = 0; j < nf && strcmp(fields[j], out[i].field) != 0;
		    j++)
			;
		if (j == nf)
			fields[nf++] = out[i].field;
	}
	qsort(seqs, ns, sizeof(*seqs), seq_cmp);
	for (size_t i = 1, w = 1; i <= ns; i++) {
		if (i == ns) {
			ns = ns ? w : 0;
			break;
		}
		if (seqs[i] != seqs[w - 1])
			seqs[w++] = seqs[i];
	}
	ev.ok = 1;
	ev.kind = VAULT_EK_READ;
	ev.recs = seqs;
	ev.nrecs = ns;
	ev.fields = fields;
	ev.nfields = nf;
	rc = vault_audit(v, &ev, NULL);
out:
	free(seqs);
	free(fields);
	return rc;
}

pv_status
vault_detokenize(struct vault *v, const struct vault_access *a,
    const struct vault_event *ev, const char *const *tokens,
    const size_t *lens, size_t n, struct vault_reveal *out)
{
	struct pv_txn *t;
	pv_status rc;

	if (a->key->role != VAULT_ROLE_READER)
		return PV_EFORBIDDEN;
	if ((unsigned)a->purpose >= VAULT_P__COUNT ||
	    !(a->key->purposes & (1u << a->purpose)))
		return PV_EPURPOSE;
	if (a->purpose == VAULT_P_LEGAL && blank(a->reason))
		return PV_EREASON;
	/* A reason goes in the audit log: short, and no control codes. */
	if (a->reason != NULL && *a->reason != '\0' &&
	    !vault_reason_valid(a->reason, strlen(a->reason)))
		return PV_EREASON;
	if (n > VAULT_BATCH_MAX)
		return PV_ETOOBIG;
	memset(out, 0, n * sizeof(*out));
	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		pv_status st = reveal_one(v, t, a, tokens[i], lens[i], &out[i]);

		if (st != PV_OK)	/* nothing of a failed answer stays */
			pv_cleanse(&out[i], sizeof(out[i]));
		out[i].status = st;
	}
	pv_txn_abort(t);
	/* No access without a record: the event is durable first. */
	if (ev != NULL && (rc = log_reveals(v, ev, out, n)) != PV_OK) {
		vault_reveal_cleanup(out, n);
		return PV_EUNAVAIL;
	}
	return PV_OK;
}

void
vault_reveal_cleanup(struct vault_reveal *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		pv_secure_free(r[i].value, r[i].len + 1);
		pv_cleanse(&r[i], sizeof(r[i]));
	}
}
