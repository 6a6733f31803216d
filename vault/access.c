/* SPDX-License-Identifier: Apache-2.0 */
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
#define K_FLAGS		3	/* version 2: bit 0 bound to a certificate */
#define K_PURPOSES	4
#define K_CREATED	8
#define K_REVOKED	16
#define K_NAMELEN	24
#define K_NAME		25
/* Version 3: before the MAC, expires (8), lifetime days (4), replaced (8). */
#define K_V3_TAIL	20
#define K_VAL_MAX	(K_NAME + VAULT_APIKEY_NAME_MAX + 1 + \
			    VAULT_APIKEY_FIELDS_MAX * (1 + PV_FIELD_NAME_MAX) + \
			    VAULT_CERT_HASH_LEN + K_V3_TAIL + VAULT_ROW_MAC_LEN)
#define KF_CERT		0x01
#define K_V1		1	/* before rows were authenticated */
#define K_V2		2	/* with cert binding and the row's MAC */
#define K_V3		3	/* with expiry and rotation */

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

/*
 * Serialize a key stored under hash, its MAC last; *len is the length.
 * Version 3 for a key with a lifetime or an old secret of a rotation,
 * else version 2, as before they existed.  PV_ECRYPTO.
 */
static pv_status
key_encode(struct vault *v, const uint8_t hash[static PV_HMAC_LEN],
    uint8_t *p, const struct vault_apikey *k, size_t *len)
{
	int v3 = k->expires != 0 || k->expires_days != 0 ||
	    k->replaced_until != 0;
	size_t n, pos;
	pv_status rc;

	memset(p, 0, K_NAME);
	p[K_VERSION] = v3 ? K_V3 : K_V2;
	p[K_ROLE] = (uint8_t)k->role;
	p[K_REVEAL] = (uint8_t)k->reveal;
	p[K_FLAGS] = k->cert_bound ? KF_CERT : 0;
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
	if (k->cert_bound) {
		memcpy(p + pos, k->cert_sha256, VAULT_CERT_HASH_LEN);
		pos += VAULT_CERT_HASH_LEN;
	}
	if (v3) {
		pv_put_u64(p + pos, k->expires);
		pv_put_u32(p + pos + 8, k->expires_days);
		pv_put_u64(p + pos + 12, k->replaced_until);
		pos += K_V3_TAIL;
	}
	if ((rc = vault_row_mac(v, PV_T_APIKEYS, hash, PV_HMAC_LEN, p, pos,
	    p + pos)) != PV_OK)
		return rc;
	*len = pos + VAULT_ROW_MAC_LEN;
	return PV_OK;
}

/*
 * Total: any bytes give a key or PV_EINTEGRITY.  A version 2 or 3 key
 * must carry the MAC of its value under the hash it is stored under (so
 * that no byte of it, its expiry included, and no value moved from
 * another key, is accepted); a version 1 key only in a vault not yet
 * upgraded (*legacy is then set).
 */
static pv_status
key_decode(struct vault *v, const uint8_t hash[static PV_HMAC_LEN],
    struct vault_apikey *k, const uint8_t *p, size_t len, int *legacy)
{
	uint8_t mac[VAULT_ROW_MAC_LEN];
	size_t pos, n;
	pv_status rc;

	memset(k, 0, sizeof(*k));
	*legacy = 0;
	if (len < K_NAME + 1)
		return PV_EINTEGRITY;
	if (p[K_VERSION] == K_V1 && !kms_authenticated(v->kms))
		*legacy = 1;
	else if ((p[K_VERSION] == K_V2 || p[K_VERSION] == K_V3) &&
	    len > VAULT_ROW_MAC_LEN) {
		len -= VAULT_ROW_MAC_LEN;
		if ((rc = vault_row_mac(v, PV_T_APIKEYS, hash, PV_HMAC_LEN, p,
		    len, mac)) != PV_OK)
			return rc;
		if (!pv_ct_eq(mac, p + len, sizeof(mac)))
			return PV_EINTEGRITY;
		if (len < K_NAME + 1 || (p[K_FLAGS] & ~KF_CERT) != 0)
			return PV_EINTEGRITY;
		if (p[K_VERSION] == K_V3) {
			if (len < K_NAME + 1 + K_V3_TAIL)
				return PV_EINTEGRITY;
			len -= K_V3_TAIL;
			k->expires = pv_get_u64(p + len);
			k->expires_days = pv_get_u32(p + len + 8);
			k->replaced_until = pv_get_u64(p + len + 12);
			if (k->expires_days > VAULT_APIKEY_DAYS_MAX)
				return PV_EINTEGRITY;
		}
		k->cert_bound = (p[K_FLAGS] & KF_CERT) != 0;
		if (k->cert_bound) {
			if (len < K_NAME + 1 + VAULT_CERT_HASH_LEN)
				return PV_EINTEGRITY;
			len -= VAULT_CERT_HASH_LEN;
			memcpy(k->cert_sha256, p + len, VAULT_CERT_HASH_LEN);
		}
	} else
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

/* A secret's text: "pvk_" and its 32 random bytes in base64url. */
static void
secret_format(char secret[static VAULT_APIKEY_SECRET_LEN + 1],
    const uint8_t raw[static 32])
{
	memcpy(secret, "pvk_", 4);
	pv_b64url_encode16(secret + 4, raw);
	pv_b64url_encode16(secret + 4 + PV_B64URL16_LEN, raw + 16);
	secret[VAULT_APIKEY_SECRET_LEN] = '\0';
}

static pv_status
secret_hash(struct vault *v, const uint8_t raw[static 32],
    uint8_t out[static PV_HMAC_LEN])
{
	struct pv_part part = { raw, 32 };

	return kms_keyed_hash(v->kms, KMS_H_APIKEY, out, &part, 1);
}

/*
 * The revocation list (meta KMS_META_REVOKED): the hashes of every revoked
 * key, 32 bytes each, in the order revoked.  The ring MAC covers it, so it
 * cannot be shortened or copied back from an older file without the ring
 * MAC failing; and a key's own row copied back from before its revocation
 * is refused because its hash is here.
 */
static pv_status
revoked_has(struct pv_txn *t, const uint8_t hash[static PV_HMAC_LEN],
    int *found)
{
	const uint8_t *l;
	size_t ll;
	int hit = 0;
	pv_status rc;

	rc = pv_get(t, PV_T_META, KMS_META_REVOKED, strlen(KMS_META_REVOKED),
	    (const void **)&l, &ll);
	if (rc == PV_ENOTFOUND)
		ll = 0;
	else if (rc != PV_OK)
		return rc;
	if (ll % PV_HMAC_LEN != 0)
		return PV_EINTEGRITY;
	for (size_t i = 0; i < ll; i += PV_HMAC_LEN)
		hit |= pv_ct_eq(l + i, hash, PV_HMAC_LEN);
	*found = hit;
	return PV_OK;
}

static pv_status
revoked_add(struct pv_txn *t, const uint8_t hash[static PV_HMAC_LEN])
{
	const uint8_t *l;
	uint8_t *nl;
	size_t ll;
	int found;
	pv_status rc;

	if ((rc = revoked_has(t, hash, &found)) != PV_OK || found)
		return rc;
	rc = pv_get(t, PV_T_META, KMS_META_REVOKED, strlen(KMS_META_REVOKED),
	    (const void **)&l, &ll);
	if (rc == PV_ENOTFOUND) {
		l = NULL;
		ll = 0;
	} else if (rc != PV_OK)
		return rc;
	if ((nl = malloc(ll + PV_HMAC_LEN)) == NULL)
		return PV_ENOMEM;
	if (ll > 0)
		memcpy(nl, l, ll);
	memcpy(nl + ll, hash, PV_HMAC_LEN);
	rc = pv_put(t, PV_T_META, KMS_META_REVOKED, strlen(KMS_META_REVOKED),
	    nl, ll + PV_HMAC_LEN, 0);
	free(nl);
	return rc;
}

/*
 * A stored key, checked: its row's MAC, and (when t's ring is proven) the
 * revocation list.  A row that fails is an alarm and PV_EINTEGRITY; a key
 * the list says is revoked but whose row says not (a row copied back from
 * before its revocation) is an alarm too, and comes back revoked.
 */
static pv_status
key_load(struct vault *v, struct pv_txn *t, const uint8_t *hash, size_t kl,
    const uint8_t *val, size_t vl, struct vault_apikey *out)
{
	int legacy, rev;
	pv_status rc;

	if (kl != PV_HMAC_LEN)
		return vault_alarm(v, "api key", "apikeys");
	if ((rc = key_decode(v, hash, out, val, vl, &legacy)) != PV_OK)
		return rc == PV_EINTEGRITY ? vault_alarm(v, "api key",
		    "apikeys") : rc;
	if ((rc = revoked_has(t, hash, &rev)) != PV_OK)
		return rc == PV_EINTEGRITY ? vault_alarm(v, "revocation list",
		    "meta") : rc;
	/*
	 * Listed: revoked, or the old secret of a rotation, whose row says
	 * when it stops.  A row that says neither was copied back.
	 */
	if (rev && out->revoked == 0 && out->replaced_until == 0) {
		(void)vault_alarm(v, "api key (revocation rolled back)",
		    "apikeys");
		out->revoked = 1;
	}
	return PV_OK;
}

int
vault_apikey_live(const struct vault_apikey *k, uint64_t now)
{
	return k->revoked == 0 && (k->expires == 0 || now < k->expires) &&
	    (k->replaced_until == 0 || now < k->replaced_until);
}

/*
 * Find a key's current secret by name (an old secret of a rotation is
 * not it).  The table is keyed by secret hash and holds a few keys, so a
 * scan is the index.  A row that fails its MAC is skipped (an alarm): it
 * is no key of that name.
 */
static pv_status
key_find(struct vault *v, struct pv_txn *t, const char *name,
    uint8_t hash[PV_HMAC_LEN], struct vault_apikey *out)
{
	struct pv_cursor *c;
	const void *k, *val;
	size_t kl, vl;
	pv_status rc;

	if ((rc = pv_cursor_open(t, PV_T_APIKEYS, &c)) != PV_OK)
		return rc;
	for (rc = pv_cursor_seek(c, NULL, 0, 0, &k, &kl, &val, &vl);
	    rc == PV_OK; rc = pv_cursor_next(c, 0, &k, &kl, &val, &vl)) {
		rc = key_load(v, t, k, kl, val, vl, out);
		if (rc == PV_EINTEGRITY)
			continue;
		if (rc != PV_OK)
			break;
		if (strcmp(out->name, name) == 0 && out->replaced_until == 0) {
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
	    k.nfields > VAULT_APIKEY_FIELDS_MAX ||
	    (k.cert_bound != 0 && k.cert_bound != 1) ||
	    k.expires_days > VAULT_APIKEY_DAYS_MAX)
		return PV_EINVAL;
	for (size_t i = 0; i < k.nfields; i++)
		if (!pv_field_name_valid(k.fields[i], strnlen(k.fields[i],
		    sizeof(k.fields[i]))))
			return PV_EFIELD;
	k.created = pv_now();
	k.revoked = 0;
	k.expires = k.expires_days != 0 ? k.created + k.expires_days *
	    VAULT_DAY : 0;
	k.replaced_until = 0;
	if ((rc = pv_random(raw, sizeof(raw))) != PV_OK ||
	    (rc = secret_hash(v, raw, hash)) != PV_OK)
		goto out;
	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		goto out;
	rc = key_find(v, t, k.name, NULL, &found);
	if (rc == PV_OK) {
		rc = PV_EEXIST;
		goto out;
	}
	if (rc != PV_ENOTFOUND)
		goto out;
	if ((rc = key_encode(v, hash, val, &k, &len)) != PV_OK)
		goto out;
	if ((rc = pv_put(t, PV_T_APIKEYS, hash, sizeof(hash), val, len,
	    PV_PUT_NOOVERWRITE)) != PV_OK ||
	    (rc = vault_log_op(v, t, "apikey.create", VAULT_EK_NONE, NULL, 0,
	    k.name, NULL)) != PV_OK)
		goto out;
	rc = pv_txn_commit(t);
	t = NULL;
	if (rc != PV_OK)
		goto out;
	secret_format(secret, raw);
out:
	pv_txn_abort(t);
	pv_cleanse(raw, sizeof(raw));
	return rc;
}

/* The ring, its generation and the revocation list, proven in t. */
static pv_status
ring_proven(struct vault *v, struct pv_txn *t)
{
	pv_status rc;

	if ((rc = kms_ring_check(v->kms, t)) == PV_EINTEGRITY)
		return vault_alarm(v, "ring or revocation list",
		    "(ring, meta)");
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
	if ((rc = ring_proven(v, t)) != PV_OK)
		goto out;
	if ((rc = pv_cursor_open(t, PV_T_APIKEYS, &c)) != PV_OK)
		goto out;
	/* A forged row is refused, not listed as real. */
	for (rc = pv_cursor_seek(c, NULL, 0, 0, &k, &kl, &val, &vl);
	    rc == PV_OK; rc = pv_cursor_next(c, 0, &k, &kl, &val, &vl)) {
		if ((nk = realloc(keys, (cnt + 1) * sizeof(*keys))) == NULL) {
			rc = PV_ENOMEM;
			goto out;
		}
		keys = nk;
		if ((rc = key_load(v, t, k, kl, val, vl, &keys[cnt++])) !=
		    PV_OK)
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

/*
 * The hashes of every row (current and old secrets) of key name, that
 * passes its MAC, into *out (free()).  PV_ENOTFOUND if there is none.
 */
static pv_status
key_rows(struct vault *v, struct pv_txn *t, const char *name,
    uint8_t (**out)[PV_HMAC_LEN], size_t *n)
{
	uint8_t (*h)[PV_HMAC_LEN] = NULL, (*nh)[PV_HMAC_LEN];
	struct vault_apikey k;
	struct pv_cursor *c;
	const void *kk, *val;
	size_t kl, vl, cnt = 0;
	pv_status rc;

	if ((rc = pv_cursor_open(t, PV_T_APIKEYS, &c)) != PV_OK)
		return rc;
	for (rc = pv_cursor_seek(c, NULL, 0, 0, &kk, &kl, &val, &vl);
	    rc == PV_OK; rc = pv_cursor_next(c, 0, &kk, &kl, &val, &vl)) {
		rc = key_load(v, t, kk, kl, val, vl, &k);
		if (rc == PV_EINTEGRITY)
			continue;
		if (rc != PV_OK)
			break;
		if (strcmp(k.name, name) != 0)
			continue;
		if ((nh = realloc(h, (cnt + 1) * sizeof(*h))) == NULL) {
			rc = PV_ENOMEM;
			break;
		}
		h = nh;
		memcpy(h[cnt++], kk, PV_HMAC_LEN);
	}
	pv_cursor_close(c);
	if (rc == PV_ENOTFOUND && cnt > 0)
		rc = PV_OK;
	if (rc != PV_OK) {
		free(h);
		return rc;
	}
	*out = h;
	*n = cnt;
	return PV_OK;
}

/* Revoke the row under hash in t: its value and the revocation list. */
static pv_status
row_revoke(struct vault *v, struct pv_txn *t, const uint8_t *hash,
    uint64_t now)
{
	uint8_t val[K_VAL_MAX];
	struct vault_apikey k;
	const void *cur;
	size_t len, cl;
	pv_status rc;

	if ((rc = pv_get(t, PV_T_APIKEYS, hash, PV_HMAC_LEN, &cur, &cl)) !=
	    PV_OK ||
	    (rc = key_load(v, t, hash, PV_HMAC_LEN, cur, cl, &k)) != PV_OK)
		return rc;
	if (k.revoked == 0)
		k.revoked = now;
	if ((rc = key_encode(v, hash, val, &k, &len)) != PV_OK ||
	    (rc = pv_put(t, PV_T_APIKEYS, hash, PV_HMAC_LEN, val, len,
	    0)) != PV_OK)
		return rc;
	return revoked_add(t, hash);
}

pv_status
vault_apikey_revoke(struct vault *v, const char *name)
{
	uint8_t (*rows)[PV_HMAC_LEN] = NULL;
	uint64_t now = pv_now();
	struct pv_txn *t;
	size_t n = 0;
	pv_status rc;

	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		return rc;
	if ((rc = ring_proven(v, t)) != PV_OK ||
	    (rc = key_rows(v, t, name, &rows, &n)) != PV_OK)
		goto out;
	/*
	 * The rows, the list and the ring MAC over the list change together:
	 * copying back either the rows or the list alone revives nothing.
	 * Every secret of the key goes, the old ones of a rotation too.
	 */
	for (size_t i = 0; i < n; i++)
		if ((rc = row_revoke(v, t, rows[i], now)) != PV_OK)
			goto out;
	if ((rc = kms_ring_seal(v->kms, t)) != PV_OK ||
	    (rc = vault_log_op(v, t, "apikey.revoke", VAULT_EK_NONE, NULL, 0,
	    name, NULL)) != PV_OK)
		goto out;
	free(rows);
	return pv_txn_commit(t);
out:
	free(rows);
	pv_txn_abort(t);
	return rc;
}

pv_status
vault_apikey_rotate(struct vault *v, const char *name, uint64_t overlap,
    char secret[static VAULT_APIKEY_SECRET_LEN + 1])
{
	uint8_t raw[32], hash[PV_HMAC_LEN], oldh[PV_HMAC_LEN], val[K_VAL_MAX];
	uint8_t (*rows)[PV_HMAC_LEN] = NULL;
	struct vault_apikey cur, k, old;
	struct pv_txn *t = NULL;
	uint64_t now = pv_now();
	const void *rv;
	size_t len, n = 0, rl;
	pv_status rc;

	if (overlap > VAULT_APIKEY_OVERLAP_MAX)
		return PV_EINVAL;
	if ((rc = pv_random(raw, sizeof(raw))) != PV_OK ||
	    (rc = secret_hash(v, raw, hash)) != PV_OK)
		goto out;
	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		goto out;
	if ((rc = ring_proven(v, t)) != PV_OK ||
	    (rc = key_find(v, t, name, oldh, &cur)) != PV_OK)
		goto out;
	if (cur.revoked != 0) {
		rc = PV_EKEYSTATE;
		goto out;
	}
	/* Old secrets past their overlap go: they work no more. */
	if ((rc = key_rows(v, t, name, &rows, &n)) != PV_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if ((rc = pv_get(t, PV_T_APIKEYS, rows[i], PV_HMAC_LEN, &rv,
		    &rl)) != PV_OK ||
		    (rc = key_load(v, t, rows[i], PV_HMAC_LEN, rv, rl,
		    &old)) != PV_OK)
			goto out;
		if (old.replaced_until != 0 && now >= old.replaced_until &&
		    (rc = pv_del(t, PV_T_APIKEYS, rows[i], PV_HMAC_LEN, NULL,
		    0)) != PV_OK)
			goto out;
	}
	/* The new secret: the same rights, the same lifetime from now. */
	k = cur;
	k.created = now;
	k.expires = k.expires_days != 0 ? now + k.expires_days * VAULT_DAY :
	    0;
	k.replaced_until = 0;
	if ((rc = key_encode(v, hash, val, &k, &len)) != PV_OK ||
	    (rc = pv_put(t, PV_T_APIKEYS, hash, sizeof(hash), val, len,
	    PV_PUT_NOOVERWRITE)) != PV_OK)
		goto out;
	/*
	 * The old one stops at the overlap's end (at once for 0: now is
	 * already past "now < replaced_until").  Its hash joins the list,
	 * under the ring MAC, so that its row from before cannot be copied
	 * back to make it work for good.
	 */
	cur.replaced_until = now + overlap;
	if ((rc = key_encode(v, oldh, val, &cur, &len)) != PV_OK ||
	    (rc = pv_put(t, PV_T_APIKEYS, oldh, sizeof(oldh), val, len,
	    0)) != PV_OK ||
	    (rc = revoked_add(t, oldh)) != PV_OK ||
	    (rc = kms_ring_seal(v->kms, t)) != PV_OK ||
	    (rc = vault_log_op(v, t, "apikey.rotate", VAULT_EK_NONE, NULL, 0,
	    name, NULL)) != PV_OK)
		goto out;
	rc = pv_txn_commit(t);
	t = NULL;
	if (rc != PV_OK)
		goto out;
	secret_format(secret, raw);
out:
	pv_txn_abort(t);
	free(rows);
	pv_cleanse(raw, sizeof(raw));
	pv_cleanse(val, sizeof(val));
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
		rc = key_load(v, t, hash, sizeof(hash), val, vl, &k);
	/* A key that failed its MAC is no key: 401, and an alarm raised. */
	if (rc == PV_EINTEGRITY)
		rc = PV_EUNAUTH;
	if (rc == PV_OK)
		rc = ring_proven(v, t);
	pv_txn_abort(t);
	/* Expired, revoked or replaced: refused exactly as unknown. */
	if (rc == PV_ENOTFOUND || (rc == PV_OK && !vault_apikey_live(&k,
	    pv_now())))
		return PV_EUNAUTH;
	if (rc != PV_OK)
		return rc;
	*out = k;
	return PV_OK;
}

/* Rows the upgrade MACs in one transaction. */
#define UPGRADE_BATCH	64

pv_status
vault_auth_upgrade(struct vault *v)
{
	uint8_t (*hashes)[PV_HMAC_LEN] = NULL, val[K_VAL_MAX];
	struct vault_apikey *keys = NULL;
	struct pv_cursor *c = NULL;
	struct pv_txn *t = NULL;
	const void *k, *kv;
	size_t kl, vl, n, len;
	uint64_t done = 0, tombs = 0;
	int legacy;
	pv_status rc;

	if ((hashes = calloc(UPGRADE_BATCH, sizeof(*hashes))) == NULL ||
	    (keys = calloc(UPGRADE_BATCH, sizeof(*keys))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	/*
	 * Each batch converts up to UPGRADE_BATCH version-1 keys to version 2
	 * (MAC'd) and adds the revoked among them to the revocation list,
	 * in one transaction: after a crash the next open finds the rest
	 * still at version 1 and goes on.  The mark comes last.
	 */
	for (;;) {
		if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
			goto out;
		if (kms_authenticated(v->kms))
			break;	/* another process finished it */
		if ((rc = pv_cursor_open(t, PV_T_APIKEYS, &c)) != PV_OK)
			goto out;
		n = 0;
		for (rc = pv_cursor_seek(c, NULL, 0, 0, &k, &kl, &kv, &vl);
		    rc == PV_OK && n < UPGRADE_BATCH;
		    rc = pv_cursor_next(c, 0, &k, &kl, &kv, &vl)) {
			if (kl != PV_HMAC_LEN) {
				rc = vault_alarm(v, "api key", "apikeys");
				goto out;
			}
			if ((rc = key_decode(v, k, &keys[n], kv, vl,
			    &legacy)) != PV_OK)
				goto out;
			if (legacy)
				memcpy(hashes[n++], k, PV_HMAC_LEN);
		}
		pv_cursor_close(c);
		c = NULL;
		if (rc != PV_OK && rc != PV_ENOTFOUND)
			goto out;
		if (n == 0)
			break;
		for (size_t i = 0; i < n; i++) {
			if ((rc = key_encode(v, hashes[i], val, &keys[i],
			    &len)) != PV_OK ||
			    (rc = pv_put(t, PV_T_APIKEYS, hashes[i],
			    PV_HMAC_LEN, val, len, 0)) != PV_OK ||
			    (keys[i].revoked != 0 &&
			    (rc = revoked_add(t, hashes[i])) != PV_OK))
				goto out;
		}
		rc = pv_txn_commit(t);
		t = NULL;
		if (rc != PV_OK)
			goto out;
		done += n;
	}
	if (!kms_authenticated(v->kms)) {
		pv_txn_abort(t);
		t = NULL;
		if ((rc = vault_tomb_upgrade(v, &tombs)) != PV_OK ||
		    (rc = vault_txn_begin(v, 1, &t)) != PV_OK)
			goto out;
	}
	if (!kms_authenticated(v->kms)) {
		if ((rc = kms_mark_authenticated(v->kms, t)) != PV_OK)
			goto out;
		rc = pv_txn_commit(t);
		t = NULL;
		if (rc != PV_OK)
			goto out;
		pv_log(PV_LOG_INFO, "vault upgraded: %llu api keys, %llu "
		    "tombstones and the ring authenticated",
		    (unsigned long long)done, (unsigned long long)tombs);
	}
	rc = PV_OK;
out:
	pv_cursor_close(c);
	pv_txn_abort(t);
	free(hashes);
	if (keys != NULL) {
		pv_cleanse(keys, UPGRADE_BATCH * sizeof(*keys));
		free(keys);
	}
	pv_cleanse(val, sizeof(val));
	return rc;
}

/* Masking and pseudonyms. */

/*
 * The masking rule is stated in vault.h at vault_mask.  A part of a value
 * shows its first n / 4 characters (none if n <= 4), at most max bytes of
 * them, then "***"; out must have room for max + 3 bytes.  s is UTF-8.
 */
static size_t
mask_part(char *out, const char *s, size_t len, size_t max)
{
	size_t n = 0, k, i, end = 0;

	for (i = 0; i < len; i++)		/* characters: lead bytes */
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	k = n <= 4 ? 0 : n / 4;
	for (i = 0; i < len && k > 0; k--) {
		size_t next = i + 1;

		while (next < len && ((unsigned char)s[next] & 0xc0) == 0x80)
			next++;
		if (next > max)
			break;
		i = next;
		end = next;
	}
	memcpy(out, s, end);
	memcpy(out + end, "***", 3);
	return end + 3;
}

static int
mask_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Each part of an email's mask, so that "P***@P***" fits. */
#define MASK_EMAIL_PART_MAX	((VAULT_MASKED_MAX - 7) / 2)

void
vault_mask(char out[static VAULT_MASKED_MAX + 1], const char *field,
    size_t fieldlen, const char *value, size_t len)
{
	const char *at;
	size_t n, digits = 0, i;

	if (fieldlen == 5 && memcmp(field, "phone", 5) == 0) {
		char last[2];

		for (i = len; i > 0; i--) {
			if (value[i - 1] < '0' || value[i - 1] > '9')
				continue;
			if (digits < 2)
				last[1 - digits] = value[i - 1];
			digits++;
		}
		memcpy(out, "***", 3);
		n = 3;
		if (digits >= 8) {
			memcpy(out + 3, last, 2);
			n = 5;
		}
		out[n] = '\0';
		return;
	}
	while (len > 0 && mask_space(*value)) {
		value++;
		len--;
	}
	while (len > 0 && mask_space(value[len - 1]))
		len--;
	if (!pv_utf8_valid(value, len)) {
		memcpy(out, "***", 4);	/* nothing of what cannot be counted */
		return;
	}
	if (fieldlen == 5 && memcmp(field, "email", 5) == 0 &&
	    (at = memrchr(value, '@', len)) != NULL) {
		n = mask_part(out, value, (size_t)(at - value),
		    MASK_EMAIL_PART_MAX);
		out[n++] = '@';
		n += mask_part(out + n, at + 1, len - (size_t)(at - value) - 1,
		    MASK_EMAIL_PART_MAX);
	} else
		n = mask_part(out, value, len, VAULT_MASKED_MAX - 3);
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

/* What the log keeps of one token's answer: never the token or a value. */
struct logged {
	uint64_t	seq;		/* its record; 0: the token led to none */
	char		field[PV_FIELD_NAME_MAX + 1];	/* "": none */
	int		outcome;	/* enum vault_item_outcome */
	pv_status	code;
};

/* Note in lg the record and field res names. */
static void
log_target(struct logged *lg, const struct resolved *res)
{
	size_t n = res->f.namelen > PV_FIELD_NAME_MAX ? PV_FIELD_NAME_MAX :
	    res->f.namelen;

	lg->seq = res->rec_seq;
	memcpy(lg->field, res->f.name, n);
	lg->field[n] = '\0';
}

/*
 * Answer one token from snapshot t into r; lg receives its record and
 * field as far as the token led to them, whatever the answer.
 */
static pv_status
reveal_one(struct vault *v, struct pv_txn *t, const struct vault_access *a,
    const char *token, size_t len, struct vault_reveal *r, struct logged *lg)
{
	struct resolved res;
	char *plain = NULL;
	pv_status rc;

	rc = vault_token_resolve(v, t, token, len, &res);
	if (rc == PV_OK || rc == PV_ESHREDDED)
		log_target(lg, &res);
	if (rc != PV_OK)
		return rc;
	if (!vault_apikey_field_allowed(a->key, res.f.name, res.f.namelen))
		return PV_EFORBIDDEN;
	/* Notices cannot be opted out of; marketing needs consent. */
	if (a->purpose == VAULT_P_MARKETING &&
	    !(res.rec[R_FLAGS] & RF_MARKETING))
		return PV_ECONSENT;
	if ((rc = vault_field_open(v, &res, &plain)) != PV_OK)
		return rc;
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
		lg->outcome = VAULT_ITEM_MASKED;
		return rc;
	}
	r->value = plain;
	r->len = res.f.ctlen;
	lg->outcome = VAULT_ITEM_REVEALED;
	return PV_OK;
}


/*
 * Log a detokenize: the records whose values (or masked forms) it
 * released and their fields, each once, and what each token got.
 */
static pv_status
log_reveals(struct vault *v, const struct vault_event *tmpl,
    const struct logged *lg, size_t n)
{
	struct vault_event ev = *tmpl;
	struct vault_item *items = NULL;
	const char **fields = NULL;
	uint64_t *seqs = NULL;
	size_t ns = 0, nf = 0;
	pv_status rc;

	if ((seqs = calloc(n ? n : 1, sizeof(*seqs))) == NULL ||
	    (fields = calloc(n ? n : 1, sizeof(*fields))) == NULL ||
	    (items = calloc(n ? n : 1, sizeof(*items))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t j;

		items[i].rec = lg[i].seq;
		items[i].field = lg[i].field[0] != '\0' ? lg[i].field : NULL;
		items[i].outcome = lg[i].outcome;
		items[i].code = lg[i].code;
		if (lg[i].outcome == VAULT_ITEM_REFUSED)
			continue;
		seqs[ns++] = lg[i].seq;
		for (j = 0; j < nf && strcmp(fields[j], lg[i].field) != 0;
		    j++)
			;
		if (j == nf)
			fields[nf++] = lg[i].field;
	}
	qsort(seqs, ns, sizeof(*seqs), vault_seq_cmp);
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
	ev.items = items;
	ev.nitems = n;
	rc = vault_audit(v, &ev, NULL);
out:
	free(seqs);
	free(fields);
	free(items);
	return rc;
}

/* The answers one token may get; anything else fails the whole request. */
static int
token_status(pv_status st)
{
	switch (st) {
	case PV_OK:
	case PV_ETOKEN:
	case PV_ENOTFOUND:
	case PV_ESHREDDED:
	case PV_EFORBIDDEN:
	case PV_ECONSENT:
	case PV_EKEYSTATE:
	case PV_EINTEGRITY:
		return 1;
	default:
		return 0;
	}
}

/*
 * The purpose rules that detokenize and look-up share: a purpose the key
 * holds, a reason where the purpose needs one, and a reason fit for the
 * audit log (short, no control codes).
 */
static pv_status
purpose_check(const struct vault_access *a)
{
	if ((unsigned)a->purpose >= VAULT_P__COUNT ||
	    !(a->key->purposes & (1u << a->purpose)))
		return PV_EPURPOSE;
	if (a->purpose == VAULT_P_LEGAL && blank(a->reason))
		return PV_EREASON;
	if (a->reason != NULL && *a->reason != '\0' &&
	    !vault_reason_valid(a->reason, strlen(a->reason)))
		return PV_EREASON;
	return PV_OK;
}

pv_status
vault_detokenize(struct vault *v, const struct vault_access *a,
    const struct vault_event *ev, const char *const *tokens,
    const size_t *lens, size_t n, vault_reveal_fn fn, void *arg)
{
	struct vault_reveal r;
	struct logged *lg = NULL;
	struct pv_txn *t = NULL;
	pv_status rc;

	if (a->key->role != VAULT_ROLE_READER)
		return PV_EFORBIDDEN;
	if ((rc = purpose_check(a)) != PV_OK)
		return rc;
	if (n > VAULT_BATCH_MAX)
		return PV_ETOOBIG;
	if ((lg = calloc(n ? n : 1, sizeof(*lg))) == NULL)
		return PV_ENOMEM;
	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		goto out;
	/*
	 * One value at a time: each plaintext is in the secure heap only
	 * while fn copies it out, so a request holds one value and its keys
	 * there, whatever the size of the batch.
	 */
	for (size_t i = 0; i < n; i++) {
		memset(&r, 0, sizeof(r));
		rc = reveal_one(v, t, a, tokens[i], lens[i], &r, &lg[i]);
		if (!token_status(rc)) {
			/* No room for a value: the request, not the token. */
			if (rc == PV_ENOMEM)
				rc = PV_EUNAVAIL;
			goto out;
		}
		if (rc != PV_OK) {	/* nothing of a failed answer stays */
			pv_cleanse(&r, sizeof(r));
			lg[i].outcome = VAULT_ITEM_REFUSED;
			lg[i].code = rc;
		}
		r.status = rc;
		rc = fn(arg, i, &r);
		pv_secure_free(r.value, r.len + 1);
		pv_cleanse(&r, sizeof(r));
		if (rc != PV_OK)
			goto out;
	}
	pv_txn_abort(t);
	t = NULL;
	/* No access without a record: the event is durable first. */
	if (ev != NULL && log_reveals(v, ev, lg, n) != PV_OK) {
		rc = PV_EUNAVAIL;
		goto out;
	}
	rc = PV_OK;
out:
	pv_txn_abort(t);
	free(lg);
	return rc;
}

/*
 * A record's pseudonym, for research look-ups: a keyed hash, under the
 * pseudonym key, of the record's internal sequence number, which never
 * changes.  Its first part is a zero byte, where a value's pseudonym
 * begins with a field name (never empty), so the two never coincide.
 */
static pv_status
record_pseudonym(struct vault *v, char out[static VAULT_PSEUDONYM_STRLEN + 1],
    uint64_t rec_seq)
{
	static const uint8_t tag[2] = { 0, 'r' };
	uint8_t mac[PV_HMAC_LEN], seq[8];
	pv_status rc;

	for (size_t i = 0; i < sizeof(seq); i++)
		seq[i] = (uint8_t)(rec_seq >> (56 - 8 * i));
	{
		struct pv_part parts[2] = {
			{ tag, sizeof(tag) }, { seq, sizeof(seq) },
		};

		if ((rc = kms_keyed_hash(v->kms, KMS_H_PSEUDONYM, mac, parts,
		    2)) != PV_OK)
			return rc;
	}
	memcpy(out, "psn_", 4);
	pv_b64url_encode16(out + 4, mac);
	return PV_OK;
}

/*
 * Whether match hit may be answered for a's purpose, in snapshot t: for
 * marketing only with the record's consent, for research as its
 * pseudonym only (hit rewritten).  *keep says; failures are the request's.
 */
static pv_status
match_filter(struct vault *v, struct pv_txn *t, const struct vault_access *a,
    struct vault_match *hit, int *keep)
{
	struct resolved res;
	char *plain = NULL;
	pv_status rc;

	*keep = 0;
	rc = vault_token_resolve(v, t, hit->token, strlen(hit->token), &res);
	if (rc == PV_ESHREDDED || rc == PV_ENOTFOUND)
		return PV_OK;	/* shredded since the look-up */
	if (rc != PV_OK)
		return rc;
	if (a->purpose == VAULT_P_MARKETING) {
		/*
		 * The consent flag counts only once the DEK, whose context
		 * binds the record's header, has opened.
		 */
		if (vault_field_open(v, &res, &plain) != PV_OK)
			return PV_OK;	/* consent unconfirmed */
		pv_secure_free(plain, res.f.ctlen + 1);
		*keep = (res.rec[R_FLAGS] & RF_MARKETING) != 0;
		return PV_OK;
	}
	/* Research: a pseudonym of the record, nothing else. */
	memset(hit, 0, sizeof(*hit));
	if ((rc = record_pseudonym(v, hit->pseudonym, res.rec_seq)) != PV_OK)
		return rc;
	*keep = 1;
	return PV_OK;
}

pv_status
vault_lookup_access(struct vault *v, const struct vault_access *a,
    const struct vault_event *ev, const struct vault_lookup_req *rq)
{
	struct vault_match *m = NULL;
	struct pv_txn *t = NULL;
	size_t w = 0;
	pv_status rc;

	if (a->key->role != VAULT_ROLE_READER &&
	    a->key->role != VAULT_ROLE_WRITER)
		return PV_EFORBIDDEN;
	if ((rc = purpose_check(a)) != PV_OK)
		return rc;
	/* Whether a value exists is itself something a key may not see. */
	if (!vault_apikey_field_allowed(a->key, rq->field, rq->fieldlen))
		return PV_EFORBIDDEN;
	{
		struct vault_lookup_req own = *rq;

		own.matches = &m;
		if ((rc = vault_lookup_many(v, ev, &own)) != PV_OK)
			return rc;
	}
	if (a->purpose != VAULT_P_MARKETING && a->purpose != VAULT_P_RESEARCH)
		goto done;
	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		goto out;
	/* Each value's matches stay in order, packed to the front. */
	for (size_t i = 0; i < rq->n; i++) {
		struct vault_lookup_result *r = &rq->res[i];
		size_t from = r->first, n = r->n;

		r->first = w;
		for (size_t k = from; k < from + n; k++) {
			struct vault_match hit = m[k];
			int keep;

			if ((rc = match_filter(v, t, a, &hit, &keep)) != PV_OK)
				goto out;
			if (keep)
				m[w++] = hit;
		}
		r->n = w - r->first;
	}
done:
	*rq->matches = m;
	m = NULL;
	rc = PV_OK;
out:
	pv_txn_abort(t);
	free(m);
	return rc;
}
