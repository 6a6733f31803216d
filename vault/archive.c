/* SPDX-License-Identifier: Apache-2.0 */
/*
 * archive.c: audit retention.  The oldest events leave the vault for a
 * signed archive file, and a checkpoint takes their place: the last
 * archived event's seq and chain hash h(seq), from which the chain goes on
 * verifying (audit.c starts every walk there).
 *
 * The order makes a crash harmless: the caller makes the archive durable
 * first; then one commit writes the checkpoint, logs the archive and
 * removes the first batch; later commits remove the rest.  Events left
 * below the checkpoint by a crash are skipped by every walk and removed
 * by the next prune.  The checkpoint carries a row MAC under K_row, which
 * only the vault can make, so that nobody with the data file alone can
 * delete events and write a checkpoint over the gap; and a signature, so
 * that it is the same statement as the archive's, checkable with the
 * public key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vault_int.h"

/* The checkpoint: meta "audit_ckpt", docs/format.md. */
#define META_AUDIT_CKPT	"audit_ckpt"
#define CK_VERSION	1
#define CK_SEQ		1
#define CK_HASH		(CK_SEQ + 8)
#define CK_ARCHIVED	(CK_HASH + PV_HMAC_LEN)
#define CK_BEFORE	(CK_ARCHIVED + 8)
#define CK_CREATED	(CK_BEFORE + 8)
#define CK_AHASH	(CK_CREATED + 8)
#define CK_SIGNV	(CK_AHASH + PV_HMAC_LEN)
#define CK_SIG		(CK_SIGNV + 4)
#define CK_MAC		(CK_SIG + PV_ED25519_SIG_LEN)
#define CK_LEN		(CK_MAC + VAULT_ROW_MAC_LEN)

#define ARCHIVE_LABEL	"piivault-audit-archive-v1"

/* The text a checkpoint's signature covers. */
#define CK_MSG_MAX	512
static void
ckpt_message(struct vault *v, char out[static CK_MSG_MAX],
    const struct vault_audit_checkpoint *ck)
{
	char id[2 * KMS_VAULT_ID_LEN + 1], h[2 * PV_HMAC_LEN + 1];
	char ah[2 * PV_HMAC_LEN + 1];

	pv_hex_encode(id, kms_vault_id(v->kms), KMS_VAULT_ID_LEN);
	pv_hex_encode(h, ck->hash, PV_HMAC_LEN);
	pv_hex_encode(ah, ck->archive_hash, PV_HMAC_LEN);
	(void)snprintf(out, CK_MSG_MAX, "piivault-audit-checkpoint-v1\n"
	    "vault=%s\nseq=%llu\nchain_hash=%s\narchived=%llu\nbefore=%llu\n"
	    "created=%llu\narchive_hash=%s\nsigning_key_version=%u\n", id,
	    (unsigned long long)ck->seq, h,
	    (unsigned long long)ck->archived, (unsigned long long)ck->before,
	    (unsigned long long)ck->created, ah, ck->sign_version);
}

static void
ckpt_encode(uint8_t p[static CK_LEN], const struct vault_audit_checkpoint *ck)
{
	p[0] = CK_VERSION;
	pv_put_u64(p + CK_SEQ, ck->seq);
	memcpy(p + CK_HASH, ck->hash, PV_HMAC_LEN);
	pv_put_u64(p + CK_ARCHIVED, ck->archived);
	pv_put_u64(p + CK_BEFORE, ck->before);
	pv_put_u64(p + CK_CREATED, ck->created);
	memcpy(p + CK_AHASH, ck->archive_hash, PV_HMAC_LEN);
	pv_put_u32(p + CK_SIGNV, ck->sign_version);
	memcpy(p + CK_SIG, ck->sig, PV_ED25519_SIG_LEN);
}

pv_status
vault_audit_ckpt_get(struct vault *v, struct pv_txn *t,
    struct vault_audit_checkpoint *out)
{
	uint8_t mac[VAULT_ROW_MAC_LEN];
	const uint8_t *p;
	size_t len;
	pv_status rc;

	memset(out, 0, sizeof(*out));
	rc = pv_get(t, PV_T_META, META_AUDIT_CKPT, strlen(META_AUDIT_CKPT),
	    (const void **)&p, &len);
	if (rc == PV_ENOTFOUND)
		return PV_OK;
	if (rc != PV_OK)
		return rc;
	if (len != CK_LEN || p[0] != CK_VERSION)
		return vault_alarm(v, "audit checkpoint", "meta");
	if ((rc = vault_row_mac(v, PV_T_META, META_AUDIT_CKPT,
	    strlen(META_AUDIT_CKPT), p, CK_MAC, mac)) != PV_OK)
		return rc;
	if (!pv_ct_eq(mac, p + CK_MAC, sizeof(mac)) ||
	    pv_get_u64(p + CK_SEQ) == 0)
		return vault_alarm(v, "audit checkpoint", "meta");
	out->seq = pv_get_u64(p + CK_SEQ);
	memcpy(out->hash, p + CK_HASH, PV_HMAC_LEN);
	out->archived = pv_get_u64(p + CK_ARCHIVED);
	out->before = pv_get_u64(p + CK_BEFORE);
	out->created = pv_get_u64(p + CK_CREATED);
	memcpy(out->archive_hash, p + CK_AHASH, PV_HMAC_LEN);
	out->sign_version = pv_get_u32(p + CK_SIGNV);
	memcpy(out->sig, p + CK_SIG, PV_ED25519_SIG_LEN);
	return PV_OK;
}

pv_status
vault_audit_ckpt_sig_check(struct vault *v,
    const struct vault_audit_checkpoint *ck)
{
	struct kms_pubkey *pk = NULL;
	char msg[CK_MSG_MAX];
	size_t n = 0;
	pv_status rc;

	if ((rc = kms_public_keys(v->kms, &pk, &n)) != PV_OK)
		return rc;
	ckpt_message(v, msg, ck);
	rc = PV_EINTEGRITY;
	for (size_t i = 0; i < n; i++)
		if (pk[i].version == ck->sign_version)
			rc = pv_ed25519_verify(pk[i].pub, ck->sig, msg,
			    strlen(msg));
	free(pk);
	if (rc == PV_EINTEGRITY)
		return vault_alarm(v, "audit checkpoint signature", "meta");
	return rc;
}

pv_status
vault_archive_line_hash(uint8_t out[static PV_HMAC_LEN], const uint8_t *prev,
    const char *line, size_t len)
{
	struct pv_part parts[2] = {
		{ prev, prev != NULL ? PV_HMAC_LEN : 0 }, { line, len },
	};

	return pv_hmac(out, (const uint8_t *)ARCHIVE_LABEL,
	    strlen(ARCHIVE_LABEL), parts, 2);
}

void
vault_archive_message(char out[static VAULT_ARCHIVE_MSG_MAX],
    const struct vault_archive_head *h, const uint8_t hash[static PV_HMAC_LEN])
{
	char hx[2 * PV_HMAC_LEN + 1];

	pv_hex_encode(hx, hash, PV_HMAC_LEN);
	(void)snprintf(out, VAULT_ARCHIVE_MSG_MAX, ARCHIVE_LABEL "\n"
	    "vault=%s\nfirst_seq=%llu\nlast_seq=%llu\ncount=%llu\n"
	    "before=%llu\ncreated=%llu\nsigning_key_version=%u\nhash=%s\n",
	    h->vault_id, (unsigned long long)h->first,
	    (unsigned long long)h->last, (unsigned long long)h->count,
	    (unsigned long long)h->before, (unsigned long long)h->created,
	    h->sign_version, hx);
}

pv_status
vault_archive_sign(struct vault *v, const struct vault_archive_head *h,
    const uint8_t hash[static PV_HMAC_LEN],
    uint8_t sig[static PV_ED25519_SIG_LEN])
{
	char msg[VAULT_ARCHIVE_MSG_MAX];

	vault_archive_message(msg, h, hash);
	return kms_sign(v->kms, h->sign_version, sig, msg, strlen(msg));
}

pv_status
vault_archive_verify(const struct vault_archive_head *h,
    const uint8_t hash[static PV_HMAC_LEN],
    const uint8_t sig[static PV_ED25519_SIG_LEN],
    const uint8_t pub[static PV_ED25519_LEN])
{
	char msg[VAULT_ARCHIVE_MSG_MAX];

	vault_archive_message(msg, h, hash);
	return pv_ed25519_verify(pub, sig, msg, strlen(msg));
}

pv_status
vault_audit_archive_plan(struct vault *v, uint64_t before,
    struct vault_archive_head *out)
{
	struct vault_audit_checkpoint ck;
	struct pv_cursor *c = NULL;
	struct pv_txn *t = NULL;
	const uint8_t *k, *val, *recs;
	uint8_t key[SEQ_LEN];
	uint64_t last = 0, when;
	size_t kl, vl, nrecs;
	pv_status rc;
	int kind;

	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		return rc;
	if ((rc = vault_audit_ckpt_get(v, t, &ck)) != PV_OK ||
	    (rc = pv_cursor_open(t, PV_T_AUDIT, &c)) != PV_OK)
		goto out;
	pv_put_u64(key, ck.seq + 1);
	for (rc = pv_cursor_seek(c, key, sizeof(key), 0, (const void **)&k,
	    &kl, (const void **)&val, &vl); rc == PV_OK;
	    rc = pv_cursor_next(c, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl)) {
		/* The chain is checked as the events are read for the file. */
		if (kl != SEQ_LEN || pv_get_u64(k) != (last ? last :
		    ck.seq) + 1 || vault_audit_event_info(val, vl, &when,
		    &kind, &recs, &nrecs) != PV_OK) {
			rc = PV_EINTEGRITY;
			goto out;
		}
		if (when >= before)
			break;
		last = pv_get_u64(k);
	}
	if (rc != PV_OK && rc != PV_ENOTFOUND)
		goto out;
	if (last == 0) {
		rc = PV_ENOTFOUND;
		goto out;
	}
	memset(out, 0, sizeof(*out));
	pv_hex_encode(out->vault_id, kms_vault_id(v->kms), KMS_VAULT_ID_LEN);
	out->first = ck.seq + 1;
	out->last = last;
	out->count = last - ck.seq;
	out->before = before;
	out->created = pv_now();
	out->sign_version = kms_active_version(v->kms, KMS_SIGN);
	rc = PV_OK;
out:
	pv_cursor_close(c);
	pv_txn_abort(t);
	return rc;
}

/*
 * Remove up to batch events at or before seq upto, each with its
 * per-record index rows, inside t; *removed counts them.
 */
static pv_status
prune_in(struct pv_txn *t, uint64_t upto, size_t batch, uint64_t *removed)
{
	struct pv_cursor *c = NULL;
	const uint8_t *k, *val, *recs;
	uint64_t *seqs, when;
	uint8_t key[SEQ_LEN], ak[SEQ_LEN + 1 + SEQ_LEN];
	size_t kl, vl, n = 0, nrecs;
	pv_status rc;
	int kind;

	*removed = 0;
	if ((seqs = calloc(batch, sizeof(*seqs))) == NULL)
		return PV_ENOMEM;
	/* Collect first: a cursor is not walked across deletions. */
	if ((rc = pv_cursor_open(t, PV_T_AUDIT, &c)) != PV_OK)
		goto out;
	for (rc = pv_cursor_seek(c, NULL, 0, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl); rc == PV_OK && n < batch;
	    rc = pv_cursor_next(c, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl)) {
		if (kl != SEQ_LEN || pv_get_u64(k) > upto)
			break;
		seqs[n++] = pv_get_u64(k);
	}
	pv_cursor_close(c);
	c = NULL;
	if (rc != PV_OK && rc != PV_ENOTFOUND)
		goto out;
	for (size_t i = 0; i < n; i++) {
		pv_put_u64(key, seqs[i]);
		if ((rc = pv_get(t, PV_T_AUDIT, key, sizeof(key),
		    (const void **)&val, &vl)) != PV_OK)
			goto out;
		/*
		 * An event that does not parse has no index rows we can
		 * name; it goes all the same (it was archived as it read).
		 */
		if (vault_audit_event_info(val, vl, &when, &kind, &recs,
		    &nrecs) == PV_OK && kind != VAULT_EK_NONE)
			for (size_t r = 0; r < nrecs; r++) {
				memcpy(ak, recs + r * SEQ_LEN, SEQ_LEN);
				ak[SEQ_LEN] = (uint8_t)kind;
				pv_put_u64(ak + SEQ_LEN + 1, seqs[i]);
				rc = pv_del(t, PV_T_AUDIT_REC, ak, sizeof(ak),
				    NULL, 0);
				if (rc != PV_OK && rc != PV_ENOTFOUND)
					goto out;
			}
		/* val pointed into the map: no use of it after this. */
		if ((rc = pv_del(t, PV_T_AUDIT, key, sizeof(key), NULL, 0)) !=
		    PV_OK)
			goto out;
	}
	*removed = n;
	rc = PV_OK;
out:
	pv_cursor_close(c);
	free(seqs);
	return rc;
}

pv_status
vault_audit_archive_commit(struct vault *v, const struct vault_archive_head *h,
    const uint8_t hash[static PV_HMAC_LEN], size_t batch, uint64_t *removed)
{
	struct vault_audit_checkpoint old, ck;
	struct pv_txn *t = NULL;
	const uint8_t *val;
	uint8_t key[SEQ_LEN], p[CK_LEN];
	char msg[CK_MSG_MAX], why[VAULT_REASON_MAX + 1], hx[17];
	struct vault_event ev = { .action = "audit.archive", .ok = 1,
	    .purpose = -1 };
	size_t vl;
	pv_status rc;

	if (batch == 0 || batch > VAULT_KEY_BATCH_MAX)
		return PV_EINVAL;
	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		return rc;
	if ((rc = vault_audit_ckpt_get(v, t, &old)) != PV_OK)
		goto out;
	if (old.seq + 1 != h->first || h->last < h->first ||
	    h->count != h->last - old.seq) {
		rc = PV_EBUSY;
		goto out;
	}
	pv_put_u64(key, h->last);
	if ((rc = pv_get(t, PV_T_AUDIT, key, sizeof(key), (const void **)&val,
	    &vl)) != PV_OK || vl < PV_HMAC_LEN) {
		rc = rc == PV_OK || rc == PV_ENOTFOUND ? PV_EINTEGRITY : rc;
		goto out;
	}
	memset(&ck, 0, sizeof(ck));
	ck.seq = h->last;
	memcpy(ck.hash, val + vl - PV_HMAC_LEN, PV_HMAC_LEN);
	ck.archived = old.archived + h->count;
	ck.before = h->before;
	ck.created = h->created;
	memcpy(ck.archive_hash, hash, PV_HMAC_LEN);
	ck.sign_version = kms_active_version(v->kms, KMS_SIGN);
	ckpt_message(v, msg, &ck);
	if ((rc = kms_sign(v->kms, ck.sign_version, ck.sig, msg,
	    strlen(msg))) != PV_OK)
		goto out;
	ckpt_encode(p, &ck);
	if ((rc = vault_row_mac(v, PV_T_META, META_AUDIT_CKPT,
	    strlen(META_AUDIT_CKPT), p, CK_MAC, p + CK_MAC)) != PV_OK ||
	    (rc = pv_put(t, PV_T_META, META_AUDIT_CKPT,
	    strlen(META_AUDIT_CKPT), p, sizeof(p), 0)) != PV_OK)
		goto out;
	/*
	 * Logged after the checkpoint, whoever runs it: the log is never
	 * left without an event above the checkpoint, where the next one
	 * chains from (audit_head).
	 */
	pv_hex_encode(hx, hash, 8);
	(void)snprintf(why, sizeof(why), "archived events %llu-%llu "
	    "(%llu) older than %llu, archive hash %s...",
	    (unsigned long long)h->first, (unsigned long long)h->last,
	    (unsigned long long)h->count, (unsigned long long)h->before, hx);
	ev.actor = v->actor != NULL ? v->actor : "vault";
	ev.reason = why;
	if ((rc = vault_audit_in(v, t, &ev, NULL)) != PV_OK ||
	    (rc = prune_in(t, ck.seq, batch, removed)) != PV_OK)
		goto out;
	rc = pv_txn_commit(t);
	t = NULL;
out:
	pv_txn_abort(t);
	return rc;
}

pv_status
vault_audit_archive_prune(struct vault *v, size_t batch, uint64_t *removed)
{
	struct vault_audit_checkpoint ck;
	struct pv_txn *t = NULL;
	pv_status rc;

	if (batch == 0 || batch > VAULT_KEY_BATCH_MAX)
		return PV_EINVAL;
	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		return rc;
	if ((rc = vault_audit_ckpt_get(v, t, &ck)) != PV_OK ||
	    (rc = prune_in(t, ck.seq, batch, removed)) != PV_OK)
		goto out;
	if (*removed == 0) {
		pv_txn_abort(t);	/* nothing to commit */
		return PV_OK;
	}
	rc = pv_txn_commit(t);
	t = NULL;
out:
	pv_txn_abort(t);
	return rc;
}
