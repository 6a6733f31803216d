/* SPDX-License-Identifier: Apache-2.0 */
/*
 * audit.c: the tamper-evident audit log.
 *
 * Each event is stored under its sequence number with a chain hash:
 * h(n) = HMAC-SHA256(K_audit, h(n-1) || seq || event), h(0) = 32 zeros.
 * Anyone holding the key detects an edited, deleted, reordered or inserted
 * event; nobody without it can cover one up.  What the chain cannot show
 * on its own is the loss of its newest events together with a rollback of
 * everything else (a whole-file restore); exporting the log elsewhere
 * anchors it (SECURITY.md).
 */
#include <stdlib.h>
#include <string.h>

#include "vault_int.h"

/* Event value: docs/format.md. */
#define E_VERSION	0
#define E_TIME		1
#define E_OK		9
#define E_PURPOSE	10
#define E_KIND		11
#define E_STRINGS	12
#define AR_KEY_LEN	(SEQ_LEN + 1 + SEQ_LEN)
/*
 * Version 1 stores the reason as plain text; version 2 stores it sealed
 * under K_reason, AAD REASON_AAD_AUDIT || seq; version 3 is version 2
 * followed by the items: what each token of a read got; version 4
 * (written since) is version 3 followed by the HTTP request's id.
 */
#define E_V_PLAIN	1
#define E_V_SEALED	2
#define E_V_ITEMS	3
#define E_V_REQID	4
#define REASON_AAD_AUDIT 1
/* An item: outcome (1), status (1), record seq (8, 0 none), field. */
#define ITEM_FIXED	(1 + 1 + SEQ_LEN)

/* Append a length-prefixed string, cut to max and without controls. */
static size_t
put_str(uint8_t *p, const char *s, size_t max)
{
	size_t n = s != NULL ? strnlen(s, max) : 0;

	/* Cut at a character boundary: never half a UTF-8 sequence. */
	if (s != NULL && s[n] != '\0')
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	p[0] = (uint8_t)n;
	for (size_t i = 0; i < n; i++)
		p[1 + i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' :
		    (uint8_t)s[i];
	return 1 + n;
}

/*
 * The most event_encode can write for ev: with at most VAULT_BATCH_MAX
 * records, fields and items, about 150 KB (docs/format.md).
 */
static size_t
event_size(const struct vault_event *ev)
{
	size_t nf = ev->nfields > VAULT_BATCH_MAX ? VAULT_BATCH_MAX :
	    ev->nfields;

	return E_STRINGS + 4 + VAULT_ACTOR_MAX + VAULT_ACTION_MAX +
	    VAULT_CODE_MAX + VAULT_REASON_MAX + KMS_SEAL_OVERHEAD + 2 +
	    ev->nrecs * SEQ_LEN + 2 +
	    nf * (1 + PV_FIELD_NAME_MAX) + 2 +
	    ev->nitems * (ITEM_FIXED + 1 + PV_FIELD_NAME_MAX) +
	    1 + VAULT_REQUEST_ID_MAX;
}

/* AAD of event seq's sealed reason. */
static void
reason_aad(uint8_t aad[static 1 + SEQ_LEN], uint64_t seq)
{
	aad[0] = REASON_AAD_AUDIT;
	pv_put_u64(aad + 1, seq);
}

/*
 * Append the reason sealed: a length byte (0 for none, else the sealed
 * length) and nonce || ciphertext || tag.  *pos advances.
 */
static pv_status
put_reason(struct vault *v, uint8_t *p, size_t *pos, const char *reason,
    uint64_t seq)
{
	uint8_t pt[1 + VAULT_REASON_MAX], aad[1 + SEQ_LEN];
	size_t n;
	pv_status rc;

	n = put_str(pt, reason, VAULT_REASON_MAX) - 1;
	if (n == 0) {
		p[(*pos)++] = 0;
		return PV_OK;
	}
	reason_aad(aad, seq);
	rc = kms_reason_seal(v->kms, p + *pos + 1, aad, sizeof(aad), pt + 1,
	    n);
	pv_cleanse(pt, sizeof(pt));
	if (rc != PV_OK)
		return rc;
	p[*pos] = (uint8_t)(n + KMS_SEAL_OVERHEAD);
	*pos += 1 + n + KMS_SEAL_OVERHEAD;
	return PV_OK;
}

static pv_status
event_encode(struct vault *v, uint8_t *p, size_t *len,
    const struct vault_event *ev, uint64_t seq, uint64_t now)
{
	size_t pos = E_STRINGS, nf = ev->nfields;
	pv_status rc;

	p[E_VERSION] = E_V_REQID;
	pv_put_u64(p + E_TIME, now);
	p[E_OK] = ev->ok ? 1 : 0;
	p[E_PURPOSE] = ev->purpose < 0 ? 0xff : (uint8_t)ev->purpose;
	p[E_KIND] = (uint8_t)ev->kind;
	pos += put_str(p + pos, ev->actor, VAULT_ACTOR_MAX);
	pos += put_str(p + pos, ev->action, VAULT_ACTION_MAX);
	pos += put_str(p + pos, ev->code, VAULT_CODE_MAX);
	if ((rc = put_reason(v, p, &pos, ev->reason, seq)) != PV_OK)
		return rc;
	p[pos++] = (uint8_t)(ev->nrecs >> 8);
	p[pos++] = (uint8_t)ev->nrecs;
	for (size_t i = 0; i < ev->nrecs; i++, pos += SEQ_LEN)
		pv_put_u64(p + pos, ev->recs[i]);
	if (nf > VAULT_BATCH_MAX)
		nf = VAULT_BATCH_MAX;
	p[pos++] = (uint8_t)(nf >> 8);
	p[pos++] = (uint8_t)nf;
	for (size_t i = 0; i < nf; i++)
		pos += put_str(p + pos, ev->fields[i], PV_FIELD_NAME_MAX);
	p[pos++] = (uint8_t)(ev->nitems >> 8);
	p[pos++] = (uint8_t)ev->nitems;
	for (size_t i = 0; i < ev->nitems; i++) {
		const struct vault_item *it = &ev->items[i];

		p[pos++] = (uint8_t)it->outcome;
		p[pos++] = (uint8_t)it->code;
		pv_put_u64(p + pos, it->rec);
		pos += SEQ_LEN;
		pos += put_str(p + pos, it->field, PV_FIELD_NAME_MAX);
	}
	pos += put_str(p + pos, ev->request_id, VAULT_REQUEST_ID_MAX);
	*len = pos;
	return PV_OK;
}

/* h = HMAC(K_audit, prev || seq || event). */
static pv_status
chain_hash(struct vault *v, uint8_t out[static PV_HMAC_LEN],
    const uint8_t *prev, uint64_t seq, const uint8_t *ev, size_t len)
{
	uint8_t s[SEQ_LEN];
	struct pv_part parts[3] = {
		{ prev, PV_HMAC_LEN }, { s, sizeof(s) }, { ev, len },
	};

	pv_put_u64(s, seq);
	return kms_keyed_hash(v->kms, KMS_H_AUDIT, out, parts, 3);
}

/* The newest event's seq and hash; seq 0 and zeros for an empty log. */
pv_status
vault_audit_head(struct pv_txn *t, uint64_t *seq, uint8_t hash[static PV_HMAC_LEN])
{
	struct pv_cursor *c;
	const uint8_t *k, *val;
	size_t kl, vl;
	pv_status rc;

	if ((rc = pv_cursor_open(t, PV_T_AUDIT, &c)) != PV_OK)
		return rc;
	rc = pv_cursor_last(c, (const void **)&k, &kl, (const void **)&val,
	    &vl);
	if (rc == PV_ENOTFOUND) {
		*seq = 0;
		memset(hash, 0, PV_HMAC_LEN);
		rc = PV_OK;
	} else if (rc == PV_OK) {
		if (kl != SEQ_LEN || vl < E_STRINGS + PV_HMAC_LEN)
			rc = PV_EINTEGRITY;
		else {
			*seq = pv_get_u64(k);
			memcpy(hash, val + vl - PV_HMAC_LEN, PV_HMAC_LEN);
		}
	}
	pv_cursor_close(c);
	return rc;
}

pv_status
vault_audit_in(struct vault *v, struct pv_txn *t, const struct vault_event *ev,
    uint64_t *seqp)
{
	uint8_t prev[PV_HMAC_LEN], key[SEQ_LEN], ak[AR_KEY_LEN], *buf;
	const uint8_t one = 1;
	uint64_t seq;
	size_t len;
	pv_status rc;

	if (ev->nrecs > VAULT_BATCH_MAX || ev->nitems > VAULT_BATCH_MAX)
		return PV_EINVAL;
	for (size_t i = 0; i < ev->nitems; i++)
		if (ev->items[i].outcome < VAULT_ITEM_REVEALED ||
		    ev->items[i].outcome > VAULT_ITEM_REFUSED ||
		    (ev->items[i].outcome == VAULT_ITEM_REFUSED) !=
		    (ev->items[i].code != PV_OK) ||
		    (unsigned)ev->items[i].code > UINT8_MAX)
			return PV_EINVAL;
	if ((buf = malloc(event_size(ev) + PV_HMAC_LEN)) == NULL)
		return PV_ENOMEM;
	if ((rc = vault_audit_head(t, &seq, prev)) != PV_OK)
		goto out;
	seq++;
	if ((rc = event_encode(v, buf, &len, ev, seq, pv_now())) != PV_OK)
		goto out;
	if ((rc = chain_hash(v, buf + len, prev, seq, buf, len)) != PV_OK)
		goto out;
	pv_put_u64(key, seq);
	if ((rc = pv_put(t, PV_T_AUDIT, key, sizeof(key), buf,
	    len + PV_HMAC_LEN, PV_PUT_APPEND)) != PV_OK)
		goto out;
	if (ev->kind != VAULT_EK_NONE)
		for (size_t i = 0; i < ev->nrecs; i++) {
			pv_put_u64(ak, ev->recs[i]);
			ak[SEQ_LEN] = (uint8_t)ev->kind;
			pv_put_u64(ak + SEQ_LEN + 1, seq);
			if ((rc = pv_put(t, PV_T_AUDIT_REC, ak, sizeof(ak),
			    &one, 1, 0)) != PV_OK)
				goto out;
		}
	if (seqp != NULL)
		*seqp = seq;
out:
	free(buf);
	return rc;
}

struct audit_arg {
	const struct vault_event	*ev;
	uint64_t			 seq;
};

static pv_status
audit_apply(struct vault *v, struct gc_ctx *g, void *arg)
{
	struct audit_arg *a = arg;

	return vault_audit_in(v, g->t, a->ev, &a->seq);
}

pv_status
vault_audit(struct vault *v, const struct vault_event *ev, uint64_t *seq)
{
	struct audit_arg a = { ev, 0 };
	struct gc_job job = { audit_apply, &a, 1, PV_OK, 0, NULL };
	pv_status rc;

	if ((rc = vault_commit_job(v, &job)) != PV_OK)
		return rc;
	if (seq != NULL)
		*seq = a.seq;
	return PV_OK;
}

void
vault_set_actor(struct vault *v, const char *actor)
{
	v->actor = actor;
}

pv_status
vault_log_op(struct vault *v, struct pv_txn *t, const char *action, int kind,
    const uint64_t *recs, size_t nrecs, const char *reason, uint64_t *seq)
{
	struct vault_event ev = { .actor = v->actor, .action = action,
	    .ok = 1, .purpose = -1, .reason = reason, .recs = recs,
	    .nrecs = nrecs, .kind = kind };

	if (v->actor == NULL)
		return PV_OK;
	if (t != NULL)
		return vault_audit_in(v, t, &ev, seq);
	return vault_audit(v, &ev, seq);
}

/* Reading the log back. */

static pv_status
get_str(char *out, size_t cap, const uint8_t *p, size_t len, size_t *pos)
{
	size_t n;

	if (*pos >= len || (n = p[*pos]) >= cap || len - *pos - 1 < n)
		return PV_EINTEGRITY;
	memcpy(out, p + *pos + 1, n);
	out[n] = '\0';
	*pos += 1 + n;
	return PV_OK;
}

/* Event seq's sealed reason at *pos, opened into out. */
static pv_status
get_reason(struct vault *v, char *out, const uint8_t *p, size_t len,
    size_t *pos, uint64_t seq)
{
	uint8_t aad[1 + SEQ_LEN];
	size_t n;

	if (*pos >= len || len - *pos - 1 < (n = p[*pos]))
		return PV_EINTEGRITY;
	if (n == 0) {
		out[0] = '\0';
		*pos += 1;
		return PV_OK;
	}
	if (n < KMS_SEAL_OVERHEAD || n - KMS_SEAL_OVERHEAD > VAULT_REASON_MAX)
		return vault_alarm(v, "audit reason", "audit");
	reason_aad(aad, seq);
	if (kms_reason_open(v->kms, (uint8_t *)out, aad, sizeof(aad),
	    p + *pos + 1, n) != PV_OK)
		return vault_alarm(v, "audit reason", "audit");
	out[n - KMS_SEAL_OVERHEAD] = '\0';
	*pos += 1 + n;
	return PV_OK;
}

/*
 * Record seq's id, made from its record's check value, which a record
 * keeps live or shredded; "rec_unknown" if there is no such record.
 */
static pv_status
rec_id(struct vault *v, struct pv_txn *t, uint64_t seq,
    char out[static VAULT_ID_STRLEN + 1])
{
	uint8_t key[SEQ_LEN];
	const uint8_t *rec;
	size_t rl;

	pv_put_u64(key, seq);
	if (pv_get(t, PV_T_RECORDS, key, sizeof(key), (const void **)&rec,
	    &rl) == PV_OK && rl >= R_CHECK + CHECK_LEN)
		return vault_id_format(v, KMS_ID_RECORD, seq, rec + R_CHECK,
		    out);
	memcpy(out, "rec_unknown", 12);
	return PV_OK;
}

/*
 * The items of a version 3 event at *pos: into e with keep, else only
 * checked (nothing is looked up).
 */
static pv_status
get_items(struct vault *v, struct pv_txn *t, const uint8_t *p, size_t len,
    size_t *pos, int keep, struct vault_audit_entry *e)
{
	struct vault_audit_item scratch;
	uint64_t prev = 0;
	size_t n;
	pv_status rc;

	if (len - *pos < 2)
		return PV_EINTEGRITY;
	n = (size_t)p[*pos] << 8 | p[*pos + 1];
	*pos += 2;
	if (n > VAULT_BATCH_MAX || len - *pos < n * (ITEM_FIXED + 1))
		return PV_EINTEGRITY;
	if (keep) {
		if ((e->items = calloc(n ? n : 1, sizeof(*e->items))) == NULL)
			return PV_ENOMEM;
		e->nitems = n;
	}
	for (size_t i = 0; i < n; i++) {
		struct vault_audit_item *it = keep ? &e->items[i] : &scratch;
		uint64_t rs;

		if (len - *pos < ITEM_FIXED)
			return PV_EINTEGRITY;
		it->outcome = p[*pos];
		it->code = (pv_status)p[*pos + 1];
		rs = pv_get_u64(p + *pos + 2);
		*pos += ITEM_FIXED;
		if (it->outcome < VAULT_ITEM_REVEALED ||
		    it->outcome > VAULT_ITEM_REFUSED ||
		    (it->outcome == VAULT_ITEM_REFUSED) != (it->code != PV_OK))
			return PV_EINTEGRITY;
		/* A request's tokens often share a record: look it up once. */
		if (keep && rs != 0 && rs == prev)
			memcpy(it->id, it[-1].id, sizeof(it->id));
		else if (keep && rs != 0 && (rc = rec_id(v, t, rs, it->id)) !=
		    PV_OK)
			return rc;
		prev = rs;
		if ((rc = get_str(it->field, sizeof(it->field), p, len,
		    pos)) != PV_OK)
			return rc;
	}
	return PV_OK;
}

/*
 * Decode an event; record ids are made from their records' checks.  The
 * items only with items (the request listings show none).
 */
static pv_status
event_decode(struct vault *v, struct pv_txn *t, uint64_t seq,
    const uint8_t *p, size_t len, int items, struct vault_audit_entry *e)
{
	size_t pos = E_STRINGS;
	pv_status rc;

	memset(e, 0, sizeof(*e));
	if (len < E_STRINGS || p[E_VERSION] < E_V_PLAIN ||
	    p[E_VERSION] > E_V_REQID)
		return PV_EINTEGRITY;
	e->seq = seq;
	e->time = pv_get_u64(p + E_TIME);
	e->ok = p[E_OK];
	e->purpose = p[E_PURPOSE] == 0xff ? -1 : p[E_PURPOSE];
	if ((rc = get_str(e->actor, sizeof(e->actor), p, len, &pos)) != PV_OK ||
	    (rc = get_str(e->action, sizeof(e->action), p, len, &pos)) !=
	    PV_OK || (rc = get_str(e->code, sizeof(e->code), p, len, &pos)) !=
	    PV_OK)
		return rc;
	if (p[E_VERSION] == E_V_PLAIN)
		rc = get_str(e->reason, sizeof(e->reason), p, len, &pos);
	else
		rc = get_reason(v, e->reason, p, len, &pos, seq);
	if (rc != PV_OK)
		return rc;
	if (len - pos < 2)
		return PV_EINTEGRITY;
	e->nrecs = (size_t)p[pos] << 8 | p[pos + 1];
	pos += 2;
	if (e->nrecs > VAULT_BATCH_MAX || len - pos < e->nrecs * SEQ_LEN)
		return PV_EINTEGRITY;
	if ((e->ids = calloc(e->nrecs ? e->nrecs : 1, sizeof(*e->ids))) ==
	    NULL)
		return PV_ENOMEM;
	for (size_t i = 0; i < e->nrecs; i++, pos += SEQ_LEN)
		if ((rc = rec_id(v, t, pv_get_u64(p + pos), e->ids[i])) !=
		    PV_OK)
			return rc;
	if (len - pos < 2)
		return PV_EINTEGRITY;
	e->nfields = (size_t)p[pos] << 8 | p[pos + 1];
	pos += 2;
	if (e->nfields > VAULT_BATCH_MAX)
		return PV_EINTEGRITY;
	if ((e->fields = calloc(e->nfields ? e->nfields : 1,
	    sizeof(*e->fields))) == NULL)
		return PV_ENOMEM;
	for (size_t i = 0; i < e->nfields; i++)
		if ((rc = get_str(e->fields[i], sizeof(e->fields[i]), p, len,
		    &pos)) != PV_OK)
			return rc;
	if (p[E_VERSION] >= E_V_ITEMS &&
	    (rc = get_items(v, t, p, len, &pos, items, e)) != PV_OK)
		return rc;
	if (p[E_VERSION] >= E_V_REQID && (rc = get_str(e->request_id,
	    sizeof(e->request_id), p, len, &pos)) != PV_OK)
		return rc;
	return pos == len ? PV_OK : PV_EINTEGRITY;
}

pv_status
vault_audit_event_info(const uint8_t *p, size_t len, uint64_t *time,
    int *kind, const uint8_t **recs, size_t *nrecs)
{
	size_t pos = E_STRINGS;

	if (len < E_STRINGS + PV_HMAC_LEN)
		return PV_EINTEGRITY;
	len -= PV_HMAC_LEN;
	/* actor, action, code, reason: each a length byte and bytes */
	for (int i = 0; i < 4; i++) {
		if (pos >= len || len - pos - 1 < p[pos])
			return PV_EINTEGRITY;
		pos += 1 + (size_t)p[pos];
	}
	if (len - pos < 2)
		return PV_EINTEGRITY;
	*nrecs = (size_t)p[pos] << 8 | p[pos + 1];
	pos += 2;
	if (*nrecs > VAULT_BATCH_MAX || len - pos < *nrecs * SEQ_LEN)
		return PV_EINTEGRITY;
	*recs = p + pos;
	*time = pv_get_u64(p + E_TIME);
	*kind = p[E_KIND];
	return PV_OK;
}

void
vault_audit_entries_free(struct vault_audit_entry *e, size_t n)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(e[i].ids);
		free(e[i].fields);
		free(e[i].items);
	}
	free(e);
}

/*
 * A walk of the chain from seq after+1: each event that verifies goes to
 * fn (if not NULL); it stops after seq end, after limit events (0: no
 * limit), and before an event that would take the events' stored bytes
 * over bytes (0: no limit; never before the first).  count and bad are
 * the walk's answers.
 */
struct chain_walk {
	uint64_t	 after;
	uint64_t	 end;
	size_t		 limit;
	size_t		 bytes;
	pv_status	(*fn)(void *arg, uint64_t seq, const uint8_t *ev,
			    size_t len);
	void		*arg;
	uint64_t	 count;		/* events that verified */
	uint64_t	 bad;		/* PV_EINTEGRITY: first that failed */
	struct vault_audit_checkpoint ck; /* where the chain starts now */
};

/* Walk the chain as w says: PV_EINTEGRITY with w->bad set, or PV_OK. */
static pv_status
walk(struct vault *v, struct pv_txn *t, struct chain_walk *w)
{
	uint8_t key[SEQ_LEN], prev[PV_HMAC_LEN], h[PV_HMAC_LEN];
	struct pv_cursor *c = NULL;
	const uint8_t *k, *val;
	uint64_t want = w->after + 1;
	size_t kl, vl, n = 0, used = 0;
	pv_status rc;

	w->count = 0;
	memset(prev, 0, sizeof(prev));
	/* Events up to the checkpoint were archived: start from it. */
	if ((rc = vault_audit_ckpt_get(v, t, &w->ck)) != PV_OK)
		return rc;
	if (w->ck.seq > 0 && w->after <= w->ck.seq) {
		w->after = w->ck.seq;
		want = w->after + 1;
		memcpy(prev, w->ck.hash, sizeof(prev));
	} else if (w->after > 0) {
		pv_put_u64(key, w->after);
		if ((rc = pv_get(t, PV_T_AUDIT, key, sizeof(key),
		    (const void **)&val, &vl)) != PV_OK)
			return rc == PV_ENOTFOUND ? PV_ENOTFOUND : rc;
		if (vl < PV_HMAC_LEN)
			return PV_EINTEGRITY;
		memcpy(prev, val + vl - PV_HMAC_LEN, PV_HMAC_LEN);
	}
	if ((rc = pv_cursor_open(t, PV_T_AUDIT, &c)) != PV_OK)
		return rc;
	pv_put_u64(key, want);
	for (rc = pv_cursor_seek(c, key, sizeof(key), 0, (const void **)&k,
	    &kl, (const void **)&val, &vl); rc == PV_OK;
	    rc = pv_cursor_next(c, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl)) {
		if ((w->limit != 0 && n == w->limit) || want > w->end)
			break;
		if (w->bytes != 0 && n > 0 && (vl > w->bytes ||
		    used > w->bytes - vl))
			break;
		used += vl;
		/* A gap is a deleted event; a wrong hash any other change. */
		if (kl != SEQ_LEN || pv_get_u64(k) != want ||
		    vl < E_STRINGS + PV_HMAC_LEN) {
			w->bad = want;
			rc = PV_EINTEGRITY;
			break;
		}
		if ((rc = chain_hash(v, h, prev, want, val, vl -
		    PV_HMAC_LEN)) != PV_OK)
			break;
		if (!pv_ct_eq(h, val + vl - PV_HMAC_LEN, PV_HMAC_LEN)) {
			w->bad = want;
			rc = PV_EINTEGRITY;
			break;
		}
		if (w->fn != NULL && (rc = w->fn(w->arg, want, val,
		    vl - PV_HMAC_LEN)) != PV_OK)
			break;
		memcpy(prev, h, sizeof(prev));
		want++;
		n++;
	}
	pv_cursor_close(c);
	w->count = n;
	return rc == PV_ENOTFOUND ? PV_OK : rc;
}

pv_status
vault_audit_verify(struct vault *v, uint64_t *count, uint64_t *bad,
    struct vault_audit_checkpoint *ck)
{
	struct chain_walk w = { .end = UINT64_MAX };
	struct pv_txn *t;
	pv_status rc;

	*bad = 0;
	*count = 0;
	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		return rc;
	rc = walk(v, t, &w);
	pv_txn_abort(t);
	/* The MAC was checked by the walk; the signature is checked here. */
	if (rc == PV_EINTEGRITY && w.bad == 0)
		return rc;
	if (rc == PV_OK && w.ck.seq > 0)
		rc = vault_audit_ckpt_sig_check(v, &w.ck);
	*count = w.count;
	*bad = w.bad;
	if (ck != NULL)
		*ck = w.ck;
	return rc;
}

struct read_arg {
	struct vault		*v;
	struct pv_txn		*t;
	struct vault_audit_entry *e;
	size_t			 n;
};

static pv_status
read_one(void *arg, uint64_t seq, const uint8_t *ev, size_t len)
{
	struct read_arg *a = arg;
	pv_status rc;

	rc = event_decode(a->v, a->t, seq, ev, len, 1, &a->e[a->n]);
	a->n++;		/* freed whole, also when it failed half-way */
	return rc;
}

pv_status
vault_audit_read(struct vault *v, uint64_t after, uint64_t end, size_t limit,
    struct vault_audit_entry **out, size_t *n, uint64_t *last,
    uint64_t *archived)
{
	struct read_arg a = { v, NULL, NULL, 0 };
	struct chain_walk w = { .after = after, .end = end, .limit = limit,
	    .bytes = VAULT_AUDIT_PAGE_BYTES, .fn = read_one, .arg = &a };
	uint8_t head[PV_HMAC_LEN];
	uint64_t newest;
	pv_status rc;

	if (limit == 0 || limit > VAULT_BATCH_MAX)
		return PV_EINVAL;
	if ((a.e = calloc(limit, sizeof(*a.e))) == NULL)
		return PV_ENOMEM;
	if ((rc = vault_txn_begin(v, 0, &a.t)) != PV_OK)
		goto out;
	if ((rc = vault_audit_head(a.t, &newest, head)) != PV_OK)
		goto out;
	rc = walk(v, a.t, &w);
	if (rc == PV_ENOTFOUND)
		rc = PV_OK;		/* after is past the end: no events */
	if (rc != PV_OK)
		goto out;
	*out = a.e;
	*n = a.n;
	*last = newest;
	if (archived != NULL)
		*archived = w.ck.seq;
	a.e = NULL;
out:
	pv_txn_abort(a.t);
	vault_audit_entries_free(a.e, a.n);
	return rc;
}

/* Requests by record: listings and limits. */

pv_status
vault_audit_by_record(struct vault *v, struct pv_txn *t, uint64_t rec,
    int kind, uint64_t since, size_t max, struct vault_audit_entry **out,
    size_t *n)
{
	struct vault_audit_entry *e = NULL;
	struct pv_cursor *c = NULL;
	const uint8_t *k, *val;
	uint8_t key[AR_KEY_LEN], ek[SEQ_LEN];
	size_t kl, vl, cnt = 0;
	pv_status rc;

	if ((e = calloc(max ? max : 1, sizeof(*e))) == NULL)
		return PV_ENOMEM;
	pv_put_u64(key, rec);
	key[SEQ_LEN] = (uint8_t)kind;
	pv_put_u64(key + SEQ_LEN + 1, 0);
	if ((rc = pv_cursor_open(t, PV_T_AUDIT_REC, &c)) != PV_OK)
		goto out;
	for (rc = pv_cursor_seek(c, key, sizeof(key), 0, (const void **)&k,
	    &kl, (const void **)&val, &vl); rc == PV_OK && cnt < max;
	    rc = pv_cursor_next(c, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl)) {
		const uint8_t *ev;
		size_t evl;

		if (kl != AR_KEY_LEN || memcmp(k, key, SEQ_LEN + 1) != 0)
			break;
		memcpy(ek, k + SEQ_LEN + 1, SEQ_LEN);
		if ((rc = pv_get(t, PV_T_AUDIT, ek, sizeof(ek),
		    (const void **)&ev, &evl)) != PV_OK ||
		    evl < E_STRINGS + PV_HMAC_LEN) {
			rc = rc == PV_OK ? PV_EINTEGRITY : rc;
			goto out;
		}
		if (pv_get_u64(ev + E_TIME) < since)
			continue;
		rc = event_decode(v, t, pv_get_u64(ek), ev, evl - PV_HMAC_LEN,
		    0, &e[cnt]);
		cnt++;
		if (rc != PV_OK)
			goto out;
	}
	if (rc != PV_OK && rc != PV_ENOTFOUND)
		goto out;
	*out = e;
	*n = cnt;
	e = NULL;
	rc = PV_OK;
out:
	pv_cursor_close(c);
	vault_audit_entries_free(e, cnt);
	return rc;
}
