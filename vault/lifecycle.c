/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lifecycle.c: crypto-shredding, receipts, and the key lifecycle over the
 * records: re-wrapping, index rebuilds, shred epochs and compaction.
 *
 * Long jobs run in bounded write transactions so that a server on the same
 * directory keeps getting its turn at the writer lock, and keep their
 * position in the meta table so that a rerun after a crash resumes.
 */
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "vault_int.h"

/* Tombstone value: docs/format.md. */
#define TS_FLAGS	1
#define TS_KEKV		10
#define TS_AT		14
#define TS_AUDIT	22
#define TS_REASONLEN	30
#define TS_REASON	31
/* The row MAC follows the reason (all but vaults not yet upgraded). */
#define TS_MAX		(TS_REASON + VAULT_REASON_MAX + KMS_SEAL_OVERHEAD + \
			    VAULT_ROW_MAC_LEN)
/*
 * TS_FLAGS: 0 in tombstones with the reason in plain text (vaults made
 * before), TSF_SEALED in those made since: the reason is sealed under
 * K_reason, AAD TS_REASON_AAD || record seq.
 */
#define TSF_SEALED	1
#define TS_REASON_AAD	2

/* The most a tombstone's stored reason may be: 0 for a bad flags byte. */
static size_t
ts_reason_max(const uint8_t *ts)
{
	if (ts[TS_FLAGS] == 0)
		return VAULT_REASON_MAX;
	if (ts[TS_FLAGS] == TSF_SEALED)
		return VAULT_REASON_MAX + KMS_SEAL_OVERHEAD;
	return 0;
}

/* Meta keys of resumable jobs. */
#define META_REWRAP	"rewrap_pos"	/* u32 target, u32 from, u64 next */
#define META_INDEX	"index_pos"	/* u32 target, u64 next */
#define META_EPOCH	"epoch"		/* u32 target KEK, u8 step */
#define META_EPOCHS	"epochs"	/* u64 epochs completed, row MAC */

#define BATCH_DEFAULT	1000
#define SCAN_FACTOR	16	/* records scanned per batch slot at most */

void
vault_set_duty(struct vault *v, unsigned percent)
{
	v->duty = percent == 0 || percent > 100 ? 100 : percent;
}

void
vault_pace(struct vault *v, uint64_t since_us)
{
	uint64_t held = pv_mono_us() - since_us, rest;
	struct timespec ts;

	if (v->duty == 0 || v->duty >= 100)
		return;
	rest = held * (100 - v->duty) / v->duty;
	ts.tv_sec = (time_t)(rest / 1000000u);
	ts.tv_nsec = (long)(rest % 1000000u) * 1000;
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Receipts. */

int
vault_reason_valid(const char *s, size_t len)
{
	if (len == 0 || len > VAULT_REASON_MAX || !pv_utf8_valid(s, len))
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		/* C0, DEL, and C1 (U+0080..U+009F: 0xc2 0x80..0x9f). */
		if (c < 0x20 || c == 0x7f || (c == 0xc2 && i + 1 < len &&
		    (unsigned char)s[i + 1] < 0xa0))
			return 0;
	}
	return 1;
}

void
vault_receipt_message(char out[static VAULT_RECEIPT_MSG_MAX],
    const struct vault_receipt *r)
{
	/* Version 1, before signing keys rotated: still checked as it was. */
	if (r->sign_version == 0)
		(void)snprintf(out, VAULT_RECEIPT_MSG_MAX,
		    "piivault-receipt-v1\nvault=%s\nrecord=%s\n"
		    "shredded_at=%llu\nkek_version=%u\naudit_seq=%llu\n"
		    "reason=%s\n", r->vault_id, r->id,
		    (unsigned long long)r->shredded_at, r->kek_version,
		    (unsigned long long)r->audit_seq, r->reason);
	else
		(void)snprintf(out, VAULT_RECEIPT_MSG_MAX,
		    "piivault-receipt-v2\nvault=%s\nrecord=%s\n"
		    "shredded_at=%llu\nkek_version=%u\naudit_seq=%llu\n"
		    "signing_key_version=%u\nreason=%s\n", r->vault_id, r->id,
		    (unsigned long long)r->shredded_at, r->kek_version,
		    (unsigned long long)r->audit_seq, r->sign_version,
		    r->reason);
}

uint32_t
vault_receipt_key_version(const struct vault_receipt *r)
{
	return r->sign_version == 0 ? 1 : r->sign_version;
}

pv_status
vault_receipt_verify(const struct vault_receipt *r,
    const uint8_t pub[static PV_ED25519_LEN])
{
	char msg[VAULT_RECEIPT_MSG_MAX];

	vault_receipt_message(msg, r);
	return pv_ed25519_verify(pub, r->sig, msg, strlen(msg));
}

pv_status
vault_signing_keys(struct vault *v, struct vault_signing_key **out,
    size_t *n)
{
	struct vault_signing_key *vk = NULL;
	struct kms_pubkey *pk = NULL;
	struct pv_txn *t;
	size_t cnt = 0;
	pv_status rc;

	/* A transaction loads the ring another process may have rotated. */
	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		return rc;
	pv_txn_abort(t);
	if ((rc = kms_public_keys(v->kms, &pk, &cnt)) != PV_OK)
		return rc;
	if ((vk = calloc(cnt ? cnt : 1, sizeof(*vk))) == NULL) {
		free(pk);
		return PV_ENOMEM;
	}
	for (size_t i = 0; i < cnt; i++) {
		vk[i].version = pk[i].version;
		vk[i].state = pk[i].state == KMS_ACTIVE ? VAULT_KEY_ACTIVE :
		    VAULT_KEY_VERIFY_ONLY;
		memcpy(vk[i].pub, pk[i].pub, PV_ED25519_LEN);
	}
	free(pk);
	*out = vk;
	*n = cnt;
	return PV_OK;
}

/*
 * A tombstone is MAC'd under its record seq, so that no edit of its time,
 * reason, KEK version or audit number, and no tombstone moved from another
 * record, is taken for real.  One without a MAC is accepted only in a
 * vault not yet upgraded.  *body is its length without the MAC.
 */
pv_status
vault_tomb_verify(struct vault *v, uint64_t seq, const uint8_t *ts,
    size_t len, size_t *body)
{
	uint8_t key[SEQ_LEN], mac[VAULT_ROW_MAC_LEN];
	size_t n;
	pv_status rc;

	if (len < TS_REASON || ts[R_TYPE] != REC_TOMBSTONE ||
	    ts[TS_REASONLEN] > ts_reason_max(ts))
		return vault_alarm(v, "tombstone", "records");
	n = TS_REASON + (size_t)ts[TS_REASONLEN];
	if (len == n && !kms_authenticated(v->kms)) {
		*body = n;
		return PV_OK;
	}
	if (len != n + VAULT_ROW_MAC_LEN)
		return vault_alarm(v, "tombstone", "records");
	pv_put_u64(key, seq);
	if ((rc = vault_row_mac(v, PV_T_RECORDS, key, sizeof(key), ts, n,
	    mac)) != PV_OK)
		return rc;
	if (!pv_ct_eq(mac, ts + n, sizeof(mac)))
		return vault_alarm(v, "tombstone", "records");
	*body = n;
	return PV_OK;
}

/* Tombstones the upgrade MACs in one transaction, and scans at most. */
#define TOMB_BATCH	64

pv_status
vault_tomb_upgrade(struct vault *v, uint64_t *done)
{
	uint8_t key[SEQ_LEN], (*vals)[TS_MAX] = NULL;
	uint64_t *seqs = NULL, next = 0;
	size_t *lens = NULL, kl, vl, n, scanned;
	struct pv_cursor *c = NULL;
	struct pv_txn *t = NULL;
	const uint8_t *k, *val;
	int end;
	pv_status rc;

	*done = 0;
	if ((vals = calloc(TOMB_BATCH, sizeof(*vals))) == NULL ||
	    (seqs = calloc(TOMB_BATCH, sizeof(*seqs))) == NULL ||
	    (lens = calloc(TOMB_BATCH, sizeof(*lens))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	/*
	 * Each transaction MACs up to TOMB_BATCH tombstones that have none;
	 * after a crash the next open scans again and skips those done.
	 */
	for (;;) {
		if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
			goto out;
		if ((rc = pv_cursor_open(t, PV_T_RECORDS, &c)) != PV_OK)
			goto out;
		pv_put_u64(key, next);
		n = 0;
		scanned = 0;
		for (rc = pv_cursor_seek(c, key, sizeof(key), 0,
		    (const void **)&k, &kl, (const void **)&val, &vl);
		    rc == PV_OK; rc = pv_cursor_next(c, 0, (const void **)&k,
		    &kl, (const void **)&val, &vl)) {
			if (kl != SEQ_LEN) {
				rc = vault_alarm(v, "record key", "records");
				goto out;
			}
			next = pv_get_u64(k);
			if (n == TOMB_BATCH ||
			    scanned++ == TOMB_BATCH * SCAN_FACTOR)
				break;
			if (vl < TS_REASON || val[R_TYPE] != REC_TOMBSTONE ||
			    vl != TS_REASON + (size_t)val[TS_REASONLEN])
				continue;
			if (val[TS_REASONLEN] > ts_reason_max(val)) {
				rc = vault_alarm(v, "tombstone", "records");
				goto out;
			}
			memcpy(vals[n], val, vl);
			lens[n] = vl;
			seqs[n++] = next;
		}
		pv_cursor_close(c);
		c = NULL;
		end = rc == PV_ENOTFOUND;
		if (rc != PV_OK && !end)
			goto out;
		for (size_t i = 0; i < n; i++) {
			pv_put_u64(key, seqs[i]);
			if ((rc = vault_row_mac(v, PV_T_RECORDS, key,
			    sizeof(key), vals[i], lens[i], vals[i] +
			    lens[i])) != PV_OK ||
			    (rc = pv_put(t, PV_T_RECORDS, key, sizeof(key),
			    vals[i], lens[i] + VAULT_ROW_MAC_LEN, 0)) != PV_OK)
				goto out;
		}
		rc = pv_txn_commit(t);
		t = NULL;
		if (rc != PV_OK)
			goto out;
		*done += n;
		if (end)
			break;
	}
	rc = PV_OK;
out:
	pv_cursor_close(c);
	pv_txn_abort(t);
	free(vals);
	free(seqs);
	free(lens);
	return rc;
}

/* Fill a receipt from a tombstone, and sign it. */
static pv_status
receipt_make(struct vault *v, uint64_t seq, const uint8_t *ts, size_t len,
    struct vault_receipt *r)
{
	char msg[VAULT_RECEIPT_MSG_MAX];
	uint8_t aad[1 + SEQ_LEN];
	size_t rl;
	pv_status rc;

	if (len < TS_REASON || len != TS_REASON + (size_t)ts[TS_REASONLEN] ||
	    ts[TS_REASONLEN] > ts_reason_max(ts))
		return PV_EINTEGRITY;
	memset(r, 0, sizeof(*r));
	pv_hex_encode(r->vault_id, kms_vault_id(v->kms), KMS_VAULT_ID_LEN);
	if ((rc = vault_id_format(v, KMS_ID_RECORD, seq, ts + R_CHECK,
	    r->id)) != PV_OK)
		return rc;
	r->kek_version = pv_get_u32(ts + TS_KEKV);
	r->shredded_at = pv_get_u64(ts + TS_AT);
	r->audit_seq = pv_get_u64(ts + TS_AUDIT);
	rl = ts[TS_REASONLEN];
	if (ts[TS_FLAGS] == TSF_SEALED) {
		aad[0] = TS_REASON_AAD;
		pv_put_u64(aad + 1, seq);
		if (rl < KMS_SEAL_OVERHEAD || kms_reason_open(v->kms,
		    (uint8_t *)r->reason, aad, sizeof(aad), ts + TS_REASON,
		    rl) != PV_OK)
			return vault_alarm(v, "tombstone reason", "records");
		rl -= KMS_SEAL_OVERHEAD;
	} else
		memcpy(r->reason, ts + TS_REASON, rl);
	r->reason[rl] = '\0';
	/*
	 * The message names the version that signs it.  A rotation between
	 * naming and signing (another thread loading a new ring) makes
	 * kms_sign refuse; name the new one and sign again.
	 */
	for (int tries = 0;; tries++) {
		r->sign_version = kms_active_version(v->kms, KMS_SIGN);
		vault_receipt_message(msg, r);
		rc = kms_sign(v->kms, r->sign_version, r->sig, msg,
		    strlen(msg));
		if (rc != PV_EKEYSTATE || tries == 2 || r->sign_version ==
		    kms_active_version(v->kms, KMS_SIGN))
			return rc;
	}
}

/* Shredding. */

/* The stored value of record seq, live or tombstone, as it is. */
static pv_status
rec_get(struct pv_txn *t, uint64_t seq, const uint8_t **rec, size_t *len)
{
	uint8_t key[SEQ_LEN];

	pv_put_u64(key, seq);
	return pv_get(t, PV_T_RECORDS, key, sizeof(key), (const void **)rec,
	    len);
}

/*
 * What a shred would do to one record: PV_OK if it is live and may go,
 * PV_ESHREDDED (its tombstone copied to ts) if it went before, or why not.
 */
static pv_status
shred_check(struct vault *v, struct pv_txn *t, uint64_t seq,
    const uint8_t *check,
    uint8_t ts[static TS_MAX], size_t *tslen)
{
	const uint8_t *rec;
	size_t len;
	pv_status rc;

	if ((rc = rec_get(t, seq, &rec, &len)) != PV_OK)
		return rc;
	/* A tombstone's MAC first: one moved from another record alarms. */
	if (len >= 1 && rec[R_TYPE] == REC_TOMBSTONE) {
		if ((rc = vault_tomb_verify(v, seq, rec, len, tslen)) != PV_OK)
			return rc;
		if (!pv_ct_eq(rec + R_CHECK, check, CHECK_LEN))
			return PV_ENOTFOUND;
		memcpy(ts, rec, *tslen);
		return PV_ESHREDDED;
	}
	if (len < R_CHECK + CHECK_LEN ||
	    !pv_ct_eq(rec + R_CHECK, check, CHECK_LEN))
		return PV_ENOTFOUND;
	if (rec[R_TYPE] != REC_LIVE || len < R_FIELDS)
		return vault_alarm(v, "record", "records");
	if (rec[R_FLAGS] & RF_HOLD)
		return PV_EHOLD;
	/* A hold cleared on disk fails here: the DEK's AAD binds it. */
	return vault_header_verify(v, seq, rec, len);
}

/*
 * Shred one record inside t.  ts receives the tombstone (for the receipt),
 * whether made now or found (then PV_ESHREDDED); *kekv the KEK that
 * wrapped its DEK, for the counters.
 */
static pv_status
shred_one(struct vault *v, struct pv_txn *t, uint64_t seq,
    const uint8_t *check, const char *reason, size_t reasonlen,
    uint64_t audit_seq, uint8_t ts[static TS_MAX],
    size_t *tslen, uint32_t *kekv)
{
	uint8_t key[SEQ_LEN], tk[SEQ_LEN], tokval[T_NAME], aad[1 + SEQ_LEN];
	uint8_t *copy = NULL, *zero = NULL;
	const uint8_t *rec, *tv;
	struct field_view f;
	size_t len, pos, nf, tl;
	pv_status rc;

	if ((rc = shred_check(v, t, seq, check, ts, tslen)) != PV_OK)
		return rc;
	if (reasonlen > VAULT_REASON_MAX)
		return PV_EVALUE;
	pv_put_u64(key, seq);
	if ((rc = rec_get(t, seq, &rec, &len)) != PV_OK)
		return rc;
	/* Work on a copy: every write below moves the map's pages. */
	if ((copy = malloc(len)) == NULL || (zero = calloc(1, len)) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	memcpy(copy, rec, len);
	nf = vault_record_nfields(copy);
	pos = R_FIELDS;
	for (size_t i = 0; i < nf; i++) {
		if ((rc = vault_field_next(copy, len, &pos, &f)) != PV_OK)
			goto out;
		if (f.indexed &&
		    (rc = vault_index_del(v, t, seq, &f, NULL)) != PV_OK)
			goto out;
		/*
		 * The token keeps pointing at the record, so that it can
		 * answer "shredded"; its field is forgotten.
		 */
		pv_put_u64(tk, f.tok_seq);
		rc = pv_get(t, PV_T_TOKENS, tk, sizeof(tk), (const void **)&tv,
		    &tl);
		if (rc == PV_ENOTFOUND)
			continue;
		if (rc != PV_OK || tl < T_NAME) {
			rc = rc == PV_OK ? PV_EINTEGRITY : rc;
			goto out;
		}
		memcpy(tokval, tv, T_NAMELEN);
		tokval[T_NAMELEN] = 0;
		if ((rc = pv_put(t, PV_T_TOKENS, tk, sizeof(tk), tokval,
		    sizeof(tokval), 0)) != PV_OK)
			goto out;
	}
	/*
	 * Zeros first, then the tombstone: LMDB leaves a deleted value's
	 * bytes in the free space of a live page.  LMDB 0.9.24's compacting
	 * copy writes only the used part of each page, but nothing promises
	 * that of every version, so the bytes left there are zeros.
	 */
	if ((rc = pv_put(t, PV_T_RECORDS, key, sizeof(key), zero, len, 0)) !=
	    PV_OK)
		goto out;
	memset(ts, 0, TS_REASON);
	ts[R_TYPE] = REC_TOMBSTONE;
	memcpy(ts + R_CHECK, check, CHECK_LEN);
	memcpy(ts + TS_KEKV, copy + R_KEKV, 4);
	pv_put_u64(ts + TS_AT, pv_now());
	pv_put_u64(ts + TS_AUDIT, audit_seq);
	ts[TS_FLAGS] = TSF_SEALED;
	ts[TS_REASONLEN] = (uint8_t)(reasonlen + KMS_SEAL_OVERHEAD);
	aad[0] = TS_REASON_AAD;
	pv_put_u64(aad + 1, seq);
	if ((rc = kms_reason_seal(v->kms, ts + TS_REASON, aad, sizeof(aad),
	    reason, reasonlen)) != PV_OK)
		goto out;
	*tslen = TS_REASON + reasonlen + KMS_SEAL_OVERHEAD;
	if ((rc = vault_row_mac(v, PV_T_RECORDS, key, sizeof(key), ts, *tslen,
	    ts + *tslen)) != PV_OK ||
	    (rc = pv_put(t, PV_T_RECORDS, key, sizeof(key), ts, *tslen +
	    VAULT_ROW_MAC_LEN, 0)) != PV_OK)
		goto out;
	if (pv_get_u64(copy + R_RETAIN) != 0 && (rc = vault_retain_del(t,
	    pv_get_u64(copy + R_RETAIN), seq)) != PV_OK)
		goto out;
	*kekv = pv_get_u32(copy + R_KEKV);
	rc = PV_OK;
out:
	if (copy != NULL) {
		pv_cleanse(copy, len);
		free(copy);
	}
	free(zero);
	return rc;
}

pv_status
vault_shred_in(struct vault *v, struct pv_txn *t, uint64_t seq,
    const char *reason, uint64_t audit_seq)
{
	uint8_t ts[TS_MAX], check[CHECK_LEN];
	const uint8_t *rec;
	size_t tslen, rl;
	uint32_t kekv;
	pv_status rc;

	if ((rc = rec_get(t, seq, &rec, &rl)) != PV_OK)
		return rc;
	if (rl < R_CHECK + CHECK_LEN)
		return PV_EINTEGRITY;
	memcpy(check, rec + R_CHECK, CHECK_LEN);
	if ((rc = shred_one(v, t, seq, check, reason, strlen(reason),
	    audit_seq, ts, &tslen, &kekv)) != PV_OK)
		return rc;
	return kms_count_wraps(v->kms, t, kekv, -1, 0);
}

struct shred_arg {
	const struct vault_event	*ev;
	const char *const		*ids;
	const size_t			*lens;
	size_t				 n;
	const char			*reason;
	uint8_t				(*ts)[TS_MAX];
	size_t				*tslen;
	uint64_t			*seqs;
	pv_status			*status;
	int				 logged;
};

/*
 * Log ev's refusal (code) or repeat of a deletion of record *seq inside t.
 * Neither is a deletion: kind none, so that it is not indexed as one.
 */
static pv_status
shred_note(struct vault *v, struct pv_txn *t, const struct vault_event *ev,
    const uint64_t *seq, int ok, const char *code)
{
	struct vault_event e = *ev;

	e.recs = seq;
	e.nrecs = 1;
	e.kind = VAULT_EK_NONE;
	e.ok = ok;
	e.code = code;
	return vault_audit_in(v, t, &e, NULL);
}

/*
 * Two passes: first decide each record's fate, then log the shreds (so
 * that each tombstone, and its receipt, carries the event's number), then
 * shred, all in the commit's one transaction.  With an event, a hold's
 * refusal and a repeat (the record went before) are logged too, each on
 * its own, with its record.
 */
static pv_status
shred_apply(struct vault *v, struct gc_ctx *g, void *arg)
{
	struct shred_arg *a = arg;
	uint8_t (*checks)[CHECK_LEN] = NULL;
	uint64_t *live = NULL, audit_seq = 0;
	size_t nlive = 0;
	uint32_t kekv = 0;
	pv_status rc = PV_OK;

	if ((live = calloc(a->n ? a->n : 1, sizeof(*live))) == NULL ||
	    (checks = calloc(a->n ? a->n : 1, sizeof(*checks))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < a->n; i++) {
		pv_status *st = &a->status[i];

		*st = vault_id_parse(v, KMS_ID_RECORD, a->ids[i], a->lens[i],
		    &a->seqs[i], checks[i]);
		if (*st != PV_OK)
			continue;
		*st = shred_check(v, g->t, a->seqs[i], checks[i], a->ts[i],
		    &a->tslen[i]);
		if (*st == PV_ESHREDDED || *st == PV_EHOLD) {
			int again = *st == PV_ESHREDDED;

			/* Twice is harmless: the first receipt, again. */
			if (again)
				*st = PV_OK;
			if (a->ev != NULL && (rc = shred_note(v, g->t, a->ev,
			    &a->seqs[i], again, again ? "already_shredded" :
			    "legal_hold")) != PV_OK)
				goto out;
			a->logged |= a->ev != NULL;
			continue;
		}
		if (*st == PV_OK)
			live[nlive++] = a->seqs[i];
		else if (*st != PV_ENOTFOUND) {
			rc = *st;		/* fails the commit */
			goto out;
		}
	}
	if (nlive > 0 && a->ev != NULL) {
		struct vault_event ev = *a->ev;

		ev.recs = live;
		ev.nrecs = nlive;
		ev.kind = VAULT_EK_DELETE;
		ev.ok = 1;
		rc = vault_audit_in(v, g->t, &ev, &audit_seq);
	} else if (nlive > 0)
		rc = vault_log_op(v, g->t, "shred", VAULT_EK_DELETE, live,
		    nlive, a->reason, &audit_seq);
	if (rc != PV_OK)
		goto out;
	for (size_t i = 0, j = 0; i < a->n && j < nlive; i++) {
		if (a->status[i] != PV_OK || a->seqs[i] != live[j])
			continue;
		j++;
		rc = shred_one(v, g->t, a->seqs[i], checks[i], a->reason,
		    strlen(a->reason), audit_seq, a->ts[i], &a->tslen[i],
		    &kekv);
		if (rc == PV_ESHREDDED) {
			rc = PV_OK;	/* the same id twice in one request */
			continue;
		}
		if (rc != PV_OK)
			goto out;
		g->records--;
		if ((rc = kms_count_wraps(v->kms, g->t, kekv, -1, 0)) != PV_OK)
			goto out;
	}
	a->logged |= nlive > 0;
out:
	free(live);
	free(checks);
	return rc;
}

pv_status
vault_shred_ev(struct vault *v, const struct vault_event *ev,
    const struct vault_shred_req *rq)
{
	struct shred_arg a = { ev, rq->ids, rq->lens, rq->n, rq->reason,
	    NULL, NULL, NULL, rq->status, 0 };
	struct gc_job job = { shred_apply, &a, 0, PV_OK, 0, NULL };
	size_t n = rq->n;
	pv_status rc;

	*rq->logged = 0;
	if (rq->reason == NULL || !vault_reason_valid(rq->reason,
	    strlen(rq->reason)))
		return PV_EVALUE;
	if (n > VAULT_BATCH_MAX)
		return PV_ETOOBIG;
	job.weight = n;
	if ((a.ts = calloc(n ? n : 1, sizeof(*a.ts))) == NULL ||
	    (a.tslen = calloc(n ? n : 1, sizeof(*a.tslen))) == NULL ||
	    (a.seqs = calloc(n ? n : 1, sizeof(*a.seqs))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	if ((rc = vault_commit_job(v, &job)) != PV_OK)
		goto out;
	/* Receipts are signed once the shreds are durable. */
	for (size_t i = 0; i < n; i++) {
		if (rq->status[i] != PV_OK)
			continue;
		if ((rq->status[i] = receipt_make(v, a.seqs[i], a.ts[i],
		    a.tslen[i], &rq->out[i])) != PV_OK)
			rc = rq->status[i];
	}
	*rq->logged = a.logged;
out:
	free(a.ts);
	free(a.tslen);
	free(a.seqs);
	return rc;
}

pv_status
vault_shred(struct vault *v, const char *const *ids, const size_t *lens,
    size_t n, const char *reason, struct vault_receipt *out,
    pv_status *status)
{
	int logged;
	struct vault_shred_req rq = { ids, lens, n, reason, out, status,
	    &logged };

	return vault_shred_ev(v, NULL, &rq);
}

/* Re-wrapping. */

struct candidate {
	uint64_t	 seq;
	uint8_t		*val;
	size_t		 len;
};

static void
candidates_free(struct candidate *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].val);
	free(c);
}

/*
 * Collect up to batch live records from seq start for which want() says
 * yes; *next is where the next batch starts, 0 at the end of the table.
 */
static pv_status
collect(struct pv_txn *t, uint64_t start, size_t batch,
    int (*want)(const uint8_t *rec, size_t len, void *arg), void *arg,
    struct candidate **out, size_t *n, uint64_t *next)
{
	struct candidate *c;
	struct pv_cursor *cur = NULL;
	const uint8_t *k, *val;
	uint8_t key[SEQ_LEN];
	size_t cnt = 0, kl, vl, scanned = 0;
	pv_status rc;

	if ((c = calloc(batch, sizeof(*c))) == NULL)
		return PV_ENOMEM;
	*next = 0;
	pv_put_u64(key, start);
	if ((rc = pv_cursor_open(t, PV_T_RECORDS, &cur)) != PV_OK)
		goto out;
	for (rc = pv_cursor_seek(cur, key, sizeof(key), 0, (const void **)&k,
	    &kl, (const void **)&val, &vl); rc == PV_OK;
	    rc = pv_cursor_next(cur, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl)) {
		if (kl != SEQ_LEN) {
			rc = PV_EINTEGRITY;
			goto out;
		}
		if (cnt == batch || scanned++ == batch * SCAN_FACTOR) {
			*next = pv_get_u64(k);
			break;
		}
		if (vl < R_FIELDS || val[R_TYPE] != REC_LIVE ||
		    !want(val, vl, arg))
			continue;
		if ((c[cnt].val = malloc(vl)) == NULL) {
			rc = PV_ENOMEM;
			goto out;
		}
		memcpy(c[cnt].val, val, vl);
		c[cnt].len = vl;
		c[cnt++].seq = pv_get_u64(k);
	}
	if (rc != PV_OK && rc != PV_ENOTFOUND)
		goto out;
	*out = c;
	*n = cnt;
	c = NULL;
	rc = PV_OK;
out:
	pv_cursor_close(cur);
	if (c != NULL)
		candidates_free(c, cnt);
	return rc;
}

/* A long job's progress over its bounded transactions. */
struct job {
	vault_progress_fn	*progress;
	void			*arg;
	uint64_t		*done;		/* records handled so far */
	struct vault_progress	 p;
	uint64_t		 t0;		/* this transaction's start, us */
};

/*
 * The end of each of a long job's transactions: commit *t (consumed), then
 * count and free the n candidates it handled and report progress.
 */
static pv_status
job_tail(struct job *j, struct pv_txn **t, struct candidate **c, size_t n)
{
	pv_status rc;

	rc = pv_txn_commit(*t);
	*t = NULL;
	if (rc != PV_OK)
		return rc;
	*j->done += n;
	candidates_free(*c, n);
	*c = NULL;
	j->p.done = *j->done;
	if (j->progress != NULL)
		j->progress(j->arg, &j->p);
	return PV_OK;
}

struct rewrap_want {
	struct vault	*v;
	uint32_t	 active;
	uint32_t	 from;
};

/*
 * Records under an older version that may still unwrap.  Those under a
 * retired or destroyed version cannot be moved and are left where they
 * are.
 */
static int
want_rewrap(const uint8_t *rec, size_t len, void *arg)
{
	const struct rewrap_want *w = arg;
	uint32_t kv = pv_get_u32(rec + R_KEKV);

	(void)len;
	return kv != w->active && (w->from == 0 || kv == w->from) &&
	    kms_version_state(w->v->kms, KMS_KEK, kv) == KMS_DECRYPT_ONLY;
}

/*
 * PV_ENOTFOUND if the ring has no KEK version from, PV_EKEYSTATE if it is
 * retired or destroyed: its records stay where they are.
 */
static pv_status
rewrap_from_ok(struct vault *v, uint32_t from)
{
	switch (kms_version_state(v->kms, KMS_KEK, from)) {
	case KMS_ACTIVE:
	case KMS_DECRYPT_ONLY:
		return PV_OK;
	case KMS_RETIRED:
	case KMS_DESTROYED:
		return PV_EKEYSTATE;
	default:
		return PV_ENOTFOUND;
	}
}

/* Sum of records wrapped under versions other than active (or from). */
static uint64_t
rewrap_total(struct vault *v, uint32_t active, uint32_t from)
{
	struct vault_info info;
	uint64_t total = 0;

	if (vault_info(v, &info) != PV_OK)
		return 0;
	for (size_t i = 0; i < info.nkeys; i++)
		if (info.keys[i].kind == VAULT_KEK &&
		    info.keys[i].version != active &&
		    (from == 0 || info.keys[i].version == from))
			total += info.keys[i].wraps_live;
	free(info.keys);
	return total;
}

/* Per-version decrements gathered over one transaction. */
#define VERSIONS_MAX	64

pv_status
vault_rewrap(struct vault *v, uint32_t from, size_t batch,
    vault_progress_fn *progress, void *arg, uint64_t *done)
{
	struct job job = { progress, arg, done, { 0, 0 }, 0 };
	struct candidate *c = NULL;
	struct kms_rewrap *rw = NULL;
	struct pv_txn *t = NULL;
	uint32_t oldv[VERSIONS_MAX], nv;
	int64_t oldn[VERSIONS_MAX];
	uint8_t *nonces = NULL, pos[16];
	uint64_t start, next;
	size_t n = 0, nold;
	pv_status rc;

	if (batch == 0)
		batch = BATCH_DEFAULT;
	if (batch > VAULT_KEY_BATCH_MAX)
		return PV_EINVAL;
	if ((nonces = malloc(batch * PV_GCM_NONCE_LEN)) == NULL)
		return PV_ENOMEM;
	*done = 0;
	for (;;) {
		struct rewrap_want w;
		const void *pv;
		size_t pl;

		job.t0 = pv_mono_us();
		if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
			goto out;
		if ((w.active = kms_active_version(v->kms, KMS_KEK)) == 0) {
			rc = PV_EKEYSTATE;
			goto out;
		}
		w.v = v;
		w.from = from;
		/*
		 * A version that is not in the ring, or whose records cannot
		 * be moved (it may not unwrap), is the caller's mistake, not
		 * a job with nothing to do.
		 */
		if (from != 0 && (rc = rewrap_from_ok(v, from)) != PV_OK)
			goto out;
		if (from == w.active) {
			rc = PV_OK;		/* nothing is older than itself */
			goto out;
		}
		if (job.p.total == 0)
			job.p.total = rewrap_total(v, w.active, from);
		start = 1;
		/*
		 * Resume where a run stopped, even if the KEK rotated since
		 * (a server's cryptoperiod may rotate it often): what was
		 * moved before stays readable under its version, and a rerun
		 * after this pass moves it on.
		 */
		rc = pv_get(t, PV_T_META, META_REWRAP, strlen(META_REWRAP),
		    &pv, &pl);
		if (rc == PV_OK && pl == sizeof(pos) && pv_get_u32((const uint8_t *)
		    pv + 4) == from)
			start = pv_get_u64((const uint8_t *)pv + 8);
		else if (rc != PV_OK && rc != PV_ENOTFOUND)
			goto out;
		if ((rc = collect(t, start, batch, want_rewrap, &w, &c, &n,
		    &next)) != PV_OK)
			goto out;
		nold = 0;
		/* One draw of nonces and one key set-up for the batch. */
		if (n > 0 && ((rc = pv_random(nonces, n * PV_GCM_NONCE_LEN)) !=
		    PV_OK || (rc = kms_rewrap_new(v->kms, &rw, &nv)) !=
		    PV_OK))
			goto out;
		/* The ring is the transaction's: its active KEK is counted. */
		if (n > 0 && nv != w.active) {
			rc = PV_EKEYSTATE;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			uint8_t ctx[DEK_CTX_LEN], key[SEQ_LEN];
			uint32_t kv = pv_get_u32(c[i].val + R_KEKV);
			size_t j;

			vault_dek_ctx(ctx, c[i].seq, c[i].val);
			if ((rc = kms_rewrap_dek(rw, ctx, sizeof(ctx), kv,
			    nonces + i * PV_GCM_NONCE_LEN, c[i].val + R_DEK)) !=
			    PV_OK)
				goto out;
			pv_put_u32(c[i].val + R_KEKV, nv);
			pv_put_u64(key, c[i].seq);
			if ((rc = pv_put(t, PV_T_RECORDS, key, sizeof(key),
			    c[i].val, c[i].len, 0)) != PV_OK)
				goto out;
			for (j = 0; j < nold && oldv[j] != kv; j++)
				;
			if (j == nold && nold == VERSIONS_MAX) {
				/* Many versions in one batch: count at once. */
				if ((rc = kms_count_wraps(v->kms, t, kv, -1,
				    0)) != PV_OK)
					goto out;
				continue;
			}
			if (j == nold) {
				oldv[nold] = kv;
				oldn[nold++] = 0;
			}
			oldn[j]--;
		}
		for (size_t j = 0; j < nold; j++)
			if ((rc = kms_count_wraps(v->kms, t, oldv[j], oldn[j],
			    0)) != PV_OK)
				goto out;
		kms_rewrap_free(rw);
		rw = NULL;
		if (n > 0 && (rc = kms_count_wraps(v->kms, t, w.active,
		    (int64_t)n, n)) != PV_OK)
			goto out;
		if (next != 0) {
			pv_put_u32(pos, w.active);
			pv_put_u32(pos + 4, from);
			pv_put_u64(pos + 8, next);
			rc = pv_put(t, PV_T_META, META_REWRAP,
			    strlen(META_REWRAP), pos, sizeof(pos), 0);
		} else {
			rc = pv_del(t, PV_T_META, META_REWRAP,
			    strlen(META_REWRAP), NULL, 0);
			if (rc == PV_ENOTFOUND)
				rc = PV_OK;
		}
		if (rc != PV_OK ||
		    (rc = job_tail(&job, &t, &c, n)) != PV_OK)
			goto out;
		if (next == 0)
			break;
		vault_pace(v, job.t0);
	}
	rc = vault_log_op(v, NULL, "kms.rewrap", VAULT_EK_NONE, NULL, 0,
	    NULL, NULL);
out:
	kms_rewrap_free(rw);
	pv_txn_abort(t);
	if (c != NULL)
		candidates_free(c, n);
	free(nonces);
	return rc;
}

pv_status
vault_rotate(struct vault *v, enum vault_key_kind vkind, uint32_t *newv)
{
	enum kms_kind kind = vault_kms_kind(vkind);
	struct pv_txn *t;
	pv_status rc;

	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		return rc;
	if ((rc = kms_rotate(v->kms, t, kind, newv)) != PV_OK ||
	    (rc = vault_log_op(v, t, kind == KMS_KEK ? "kms.rotate" :
	    kind == KMS_SIGN ? "kms.rotate_signing" : "kms.rotate_index",
	    VAULT_EK_NONE, NULL, 0, NULL, NULL)) != PV_OK) {
		pv_txn_abort(t);
		return rc;
	}
	return pv_txn_commit(t);
}

pv_status
vault_key_state(struct vault *v, enum vault_key_kind vkind, uint32_t version,
    enum vault_key_state vst, int force, uint64_t *wrapped)
{
	enum kms_kind kind = vault_kms_kind(vkind);
	enum kms_state st = vault_kms_state(vst);
	struct kms_key_info info;
	struct pv_txn *t;
	pv_status rc;

	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		return rc;
	if ((rc = kms_key_info(v->kms, t, kind, version, &info)) != PV_OK)
		goto out;
	*wrapped = kind == KMS_KEK ? info.wraps_live : 0;
	if (info.state == KMS_ACTIVE && st != KMS_DESTROYED) {
		rc = PV_EKEYSTATE;	/* rotate first, whatever it wraps */
		goto out;
	}
	if (kind == KMS_KEK && info.wraps_live > 0 && !force &&
	    (st == KMS_RETIRED || st == KMS_DESTROYED)) {
		rc = PV_EBUSY;
		goto out;
	}
	if ((rc = kms_set_state(v->kms, t, kind, version, st)) != PV_OK ||
	    (rc = vault_log_op(v, t, st == KMS_DESTROYED ? "kms.destroy" :
	    st == KMS_RETIRED ? "kms.retire" : "kms.state", VAULT_EK_NONE,
	    NULL, 0, kms_kind_name(kind), NULL)) != PV_OK)
		goto out;
	return pv_txn_commit(t);
out:
	pv_txn_abort(t);
	return rc;
}

pv_status
vault_rotate_root(struct vault *v, const struct vault_unlock *vu)
{
	struct kms_unlock nu;
	struct pv_txn *t;
	pv_status rc;

	vault_unlock_kms(&nu, vu);
	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		return rc;
	if ((rc = kms_rotate_root(v->kms, t, &nu)) != PV_OK ||
	    (rc = vault_log_op(v, t, "kms.rotate_root", VAULT_EK_NONE, NULL,
	    0, NULL, NULL)) != PV_OK) {
		pv_txn_abort(t);
		return rc;
	}
	return pv_txn_commit(t);
}

/* The index rebuild. */

static int
want_indexed(const uint8_t *rec, size_t len, void *arg)
{
	struct vault *v = arg;
	size_t pos = R_FIELDS, nf = vault_record_nfields(rec);
	struct field_view f;
	enum kms_state st = kms_version_state(v->kms, KMS_KEK,
	    pv_get_u32(rec + R_KEKV));

	/* A record whose KEK may not unwrap cannot be read to re-index. */
	if (st != KMS_ACTIVE && st != KMS_DECRYPT_ONLY)
		return 0;
	for (size_t i = 0; i < nf; i++) {
		if (vault_field_next(rec, len, &pos, &f) != PV_OK)
			return 1;	/* let the rebuild report it */
		if (f.indexed)
			return 1;
	}
	return 0;
}

/*
 * Move one record's index entries to the active index key.  *changed says
 * whether the record's stored digests changed.
 */
static pv_status
reindex_one(struct vault *v, struct pv_txn *t, struct candidate *c,
    int *changed)
{
	uint8_t digest[PV_HMAC_LEN], idx[INDEX_VAL_LEN];
	struct resolved r;
	struct field_view f;
	size_t pos = R_FIELDS, nf;
	char *plain;
	pv_status rc;

	*changed = 0;
	nf = vault_record_nfields(c->val);
	for (size_t i = 0; i < nf; i++) {
		if ((rc = vault_field_next(c->val, c->len, &pos, &f)) != PV_OK)
			return rc;
		if (!f.indexed)
			continue;
		r.rec_seq = c->seq;
		r.rec = c->val;
		r.reclen = c->len;
		r.f = f;
		if ((rc = vault_field_open(v, &r, &plain)) != PV_OK)
			return rc;
		rc = vault_field_digest(v, 0, f.name, f.namelen, plain,
		    f.ctlen, digest);
		pv_secure_free(plain, f.ctlen + 1);
		if (rc != PV_OK)
			return rc;
		if (pv_ct_eq(digest, f.digest, PV_HMAC_LEN))
			continue;
		if ((rc = vault_index_del(v, t, c->seq, &f, idx)) != PV_OK ||
		    (rc = vault_index_mac(v, idx, digest)) != PV_OK ||
		    (rc = pv_put(t, PV_T_INDEX, digest, PV_HMAC_LEN, idx,
		    sizeof(idx), 0)) != PV_OK)
			return rc;
		/* The record's copy of the digest, for a later shred. */
		memcpy((uint8_t *)f.digest, digest, PV_HMAC_LEN);
		*changed = 1;
	}
	return PV_OK;
}

/*
 * Destroy every version of kind but the active one (only those below
 * version below, if not 0), in t.  A KEK that
 * still wraps records (a rotation raced the job that moved them) is left
 * alone: *left says how many such versions there are.
 */
static pv_status
destroy_older(struct vault *v, struct pv_txn *t, enum kms_kind kind,
    uint32_t below, size_t *left)
{
	struct kms_key_info *info = NULL;
	size_t n = 0;
	pv_status rc;

	*left = 0;
	if ((rc = kms_status(v->kms, t, &info, &n)) != PV_OK)
		return rc;
	for (size_t i = 0; i < n && rc == PV_OK; i++) {
		if (info[i].kind != kind || info[i].state == KMS_ACTIVE ||
		    info[i].state == KMS_DESTROYED ||
		    (below != 0 && info[i].version >= below))
			continue;
		if (kind == KMS_KEK && info[i].wraps_live > 0) {
			/*
			 * Decrypt-only: a rotation raced the re-wrap, move
			 * them and come back.  Retired: an operator made its
			 * records unreadable on purpose; left for kms destroy.
			 */
			if (info[i].state == KMS_DECRYPT_ONLY)
				(*left)++;
			continue;
		}
		rc = kms_set_state(v->kms, t, kind, info[i].version,
		    KMS_DESTROYED);
	}
	free(info);
	return rc;
}

pv_status
vault_rotate_index(struct vault *v, size_t batch, vault_progress_fn *progress,
    void *arg, uint64_t *done)
{
	struct job job = { progress, arg, done, { 0, 0 }, 0 };
	struct candidate *c = NULL;
	struct pv_txn *t = NULL;
	uint8_t pos[12];
	uint64_t start, next;
	uint32_t active, newv;
	size_t n = 0, left;
	const void *pv;
	size_t pl;
	pv_status rc;

	if (batch == 0)
		batch = BATCH_DEFAULT;
	if (batch > VAULT_KEY_BATCH_MAX)
		return PV_EINVAL;
	*done = 0;
	/* Start a rebuild, unless one was interrupted. */
	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		return rc;
	active = kms_active_version(v->kms, KMS_INDEX);
	rc = pv_get(t, PV_T_META, META_INDEX, strlen(META_INDEX), &pv, &pl);
	if (rc == PV_ENOTFOUND || (rc == PV_OK && (pl != sizeof(pos) ||
	    pv_get_u32(pv) != active))) {
		if ((rc = kms_rotate(v->kms, t, KMS_INDEX, &newv)) != PV_OK)
			goto out;
		pv_put_u32(pos, newv);
		pv_put_u64(pos + 4, 1);
		if ((rc = pv_put(t, PV_T_META, META_INDEX, strlen(META_INDEX),
		    pos, sizeof(pos), 0)) != PV_OK)
			goto out;
	} else if (rc != PV_OK)
		goto out;
	rc = pv_txn_commit(t);
	t = NULL;
	if (rc != PV_OK)
		return rc;
	{
		struct vault_info info;

		if (vault_info(v, &info) == PV_OK) {
			job.p.total = info.records;
			free(info.keys);
		}
	}
	for (;;) {
		job.t0 = pv_mono_us();
		if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
			goto out;
		if ((rc = pv_get(t, PV_T_META, META_INDEX, strlen(META_INDEX),
		    &pv, &pl)) != PV_OK || pl != sizeof(pos)) {
			rc = rc == PV_OK ? PV_EFORMAT : rc;
			goto out;
		}
		start = pv_get_u64((const uint8_t *)pv + 4);
		/*
		 * Another rotation since this rebuild began: entries moved so
		 * far are under a key that is no longer active; start over
		 * under the one that is, so that no key is destroyed while an
		 * entry still needs it.
		 */
		if (pv_get_u32(pv) != kms_active_version(v->kms, KMS_INDEX))
			start = 1;
		if ((rc = collect(t, start, batch, want_indexed, v, &c, &n,
		    &next)) != PV_OK)
			goto out;
		for (size_t i = 0; i < n; i++) {
			uint8_t key[SEQ_LEN];
			int changed;

			if ((rc = reindex_one(v, t, &c[i], &changed)) != PV_OK)
				goto out;
			pv_put_u64(key, c[i].seq);
			if (changed && (rc = pv_put(t, PV_T_RECORDS, key,
			    sizeof(key), c[i].val, c[i].len, 0)) != PV_OK)
				goto out;
		}
		if (next != 0) {
			pv_put_u32(pos, kms_active_version(v->kms, KMS_INDEX));
			pv_put_u64(pos + 4, next);
			rc = pv_put(t, PV_T_META, META_INDEX,
			    strlen(META_INDEX), pos, sizeof(pos), 0);
		} else if ((rc = destroy_older(v, t, KMS_INDEX, 0, &left)) ==
		    PV_OK && (rc = pv_del(t, PV_T_META, META_INDEX,
		    strlen(META_INDEX), NULL, 0)) == PV_OK)
			rc = vault_log_op(v, t, "kms.index_rebuilt",
			    VAULT_EK_NONE, NULL, 0, NULL, NULL);
		if (rc != PV_OK ||
		    (rc = job_tail(&job, &t, &c, n)) != PV_OK)
			goto out;
		if (next == 0)
			break;
		vault_pace(v, job.t0);
	}
	rc = PV_OK;
out:
	pv_txn_abort(t);
	if (c != NULL)
		candidates_free(c, n);
	return rc;
}

/* Shred epochs. */

enum { EPOCH_REWRAP = 1, EPOCH_INDEX = 2, EPOCH_DESTROY = 3 };

static pv_status
epoch_set(struct pv_txn *t, uint32_t target, uint8_t step)
{
	uint8_t e[5];

	pv_put_u32(e, target);
	e[4] = step;
	return pv_put(t, PV_T_META, META_EPOCH, strlen(META_EPOCH), e,
	    sizeof(e), 0);
}

static pv_status
epoch_step(struct vault *v, uint32_t target, uint8_t step)
{
	struct pv_txn *t;
	pv_status rc;

	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		return rc;
	if ((rc = epoch_set(t, target, step)) != PV_OK) {
		pv_txn_abort(t);
		return rc;
	}
	return pv_txn_commit(t);
}

pv_status
vault_epochs_get(struct vault *v, struct pv_txn *t, uint64_t *out)
{
	uint8_t mac[VAULT_ROW_MAC_LEN];
	const uint8_t *e;
	size_t el;
	pv_status rc;

	rc = pv_get(t, PV_T_META, META_EPOCHS, strlen(META_EPOCHS),
	    (const void **)&e, &el);
	if (rc == PV_ENOTFOUND) {
		*out = 0;		/* a vault from before the counter */
		return PV_OK;
	}
	if (rc != PV_OK)
		return rc;
	if (el != 8 + VAULT_ROW_MAC_LEN)
		return vault_alarm(v, "shred-epoch counter", "meta");
	if ((rc = vault_row_mac(v, PV_T_META, META_EPOCHS,
	    strlen(META_EPOCHS), e, 8, mac)) != PV_OK)
		return rc;
	if (!pv_ct_eq(mac, e + 8, sizeof(mac)))
		return vault_alarm(v, "shred-epoch counter", "meta");
	*out = pv_get_u64(e);
	return PV_OK;
}

/* Count one more completed shred epoch, in t. */
static pv_status
epochs_bump(struct vault *v, struct pv_txn *t)
{
	uint8_t val[8 + VAULT_ROW_MAC_LEN];
	uint64_t n;
	pv_status rc;

	if ((rc = vault_epochs_get(v, t, &n)) != PV_OK)
		return rc;
	pv_put_u64(val, n + 1);
	if ((rc = vault_row_mac(v, PV_T_META, META_EPOCHS,
	    strlen(META_EPOCHS), val, 8, val + 8)) != PV_OK)
		return rc;
	return pv_put(t, PV_T_META, META_EPOCHS, strlen(META_EPOCHS), val,
	    sizeof(val), 0);
}

pv_status
vault_shred_epoch(struct vault *v, size_t batch, vault_progress_fn *progress,
    void *arg)
{
	struct pv_txn *t = NULL;
	const uint8_t *e;
	uint64_t done;
	uint32_t target, newv;
	uint8_t step;
	size_t el;
	pv_status rc;

	if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
		return rc;
	rc = pv_get(t, PV_T_META, META_EPOCH, strlen(META_EPOCH),
	    (const void **)&e, &el);
	if (rc == PV_OK && el == 5 &&
	    pv_get_u32(e) == kms_active_version(v->kms, KMS_KEK)) {
		target = pv_get_u32(e);		/* resume */
		step = e[4];
		pv_txn_abort(t);
		t = NULL;
	} else if (rc == PV_OK || rc == PV_ENOTFOUND) {
		if ((rc = kms_rotate(v->kms, t, KMS_KEK, &newv)) != PV_OK ||
		    (rc = epoch_set(t, newv, EPOCH_REWRAP)) != PV_OK)
			goto out;
		rc = pv_txn_commit(t);
		t = NULL;
		if (rc != PV_OK)
			return rc;
		target = newv;
		step = EPOCH_REWRAP;
	} else
		goto out;
	if (step == EPOCH_REWRAP) {
		if ((rc = vault_rewrap(v, 0, batch, progress, arg, &done)) !=
		    PV_OK || (rc = epoch_step(v, target, EPOCH_INDEX)) != PV_OK)
			return rc;
		step = EPOCH_INDEX;
	}
	if (step == EPOCH_INDEX) {
		if ((rc = vault_rotate_index(v, batch, progress, arg,
		    &done)) != PV_OK ||
		    (rc = epoch_step(v, target, EPOCH_DESTROY)) != PV_OK)
			return rc;
	}
	/*
	 * Destroy the older KEKs that wrap nothing.  If a rotation raced the
	 * re-wrap, records sit under a version that is no longer active:
	 * move them too, and try again.
	 */
	for (int tries = 0;; tries++) {
		size_t left;

		if ((rc = vault_txn_begin(v, 1, &t)) != PV_OK)
			return rc;
		/*
		 * Only what existed before the epoch must go: a version a
		 * cryptoperiod made since never wrapped a record shredded
		 * before it.
		 */
		if ((rc = destroy_older(v, t, KMS_KEK, target, &left)) !=
		    PV_OK)
			goto out;
		if (left == 0 && ((rc = pv_del(t, PV_T_META, META_EPOCH,
		    strlen(META_EPOCH), NULL, 0)) != PV_OK ||
		    (rc = epochs_bump(v, t)) != PV_OK ||
		    (rc = vault_log_op(v, t, "kms.shred_epoch", VAULT_EK_NONE,
		    NULL, 0, NULL, NULL)) != PV_OK))
			goto out;
		rc = pv_txn_commit(t);
		t = NULL;
		if (rc != PV_OK || left == 0)
			break;
		if (tries == 8) {
			rc = PV_EBUSY;	/* rotations faster than re-wraps */
			break;
		}
		if ((rc = vault_rewrap(v, 0, batch, progress, arg, &done)) !=
		    PV_OK)
			break;
	}
out:
	pv_txn_abort(t);
	return rc;
}

/* Compaction. */

pv_status
vault_compact(const struct vault_opts *o, uint64_t *before, uint64_t *after)
{
	struct pv_store_opts so = { o->map_size, 0, 1 };
	struct pv_store *s;
	pv_status rc;

	if ((rc = pv_store_open(o->data_dir, &so, &s)) != PV_OK)
		return rc;
	rc = pv_store_compact(s, before, after);
	pv_store_close(s);
	return rc;
}

void
vault_set_cryptoperiod(struct vault *v, uint64_t max_age, uint64_t max_wraps)
{
	(void)pthread_mutex_lock(&v->gc_lock);
	v->max_kek_age = max_age;
	v->max_kek_wraps = max_wraps;
	(void)pthread_mutex_unlock(&v->gc_lock);
}
