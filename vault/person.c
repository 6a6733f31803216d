/* SPDX-License-Identifier: Apache-2.0 */
/*
 * person.c: what a person may ask of their record (access, correction,
 * consent), legal hold, and retention.
 *
 * Every change here runs as a group-commit job, so that the change, its
 * audit event and (for requests limited per window) the count that allowed
 * it are one transaction: two concurrent requests cannot both slip under a
 * limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vault_int.h"

#define RETAIN_KEY_LEN	(2 * SEQ_LEN)

pv_status
vault_retain_put(struct pv_txn *t, uint64_t until, uint64_t seq)
{
	uint8_t key[RETAIN_KEY_LEN];
	const uint8_t one = 1;

	pv_put_u64(key, until);
	pv_put_u64(key + SEQ_LEN, seq);
	return pv_put(t, PV_T_RETAIN, key, sizeof(key), &one, 1, 0);
}

pv_status
vault_retain_del(struct pv_txn *t, uint64_t until, uint64_t seq)
{
	uint8_t key[RETAIN_KEY_LEN];
	pv_status rc;

	pv_put_u64(key, until);
	pv_put_u64(key + SEQ_LEN, seq);
	rc = pv_del(t, PV_T_RETAIN, key, sizeof(key), NULL, 0);
	return rc == PV_ENOTFOUND ? PV_OK : rc;
}

void
vault_set_policy(struct vault *v, const struct vault_policy *p)
{
	(void)pthread_mutex_lock(&v->gc_lock);
	atomic_store(&v->retention_days, p->retention_days);
	v->limit_count = p->request_limit;
	v->limit_window = p->request_window;
	(void)pthread_mutex_unlock(&v->gc_lock);
}

/* Fetch a live record by id into a heap copy, inside t. */
static pv_status
fetch_copy(struct vault *v, struct pv_txn *t, const char *id, size_t len,
    uint64_t *seq, uint8_t **copy, size_t *clen)
{
	uint8_t check[CHECK_LEN];
	const uint8_t *rec;
	pv_status rc;

	if ((rc = vault_id_parse(v, KMS_ID_RECORD, id, len, seq, check)) !=
	    PV_OK)
		return rc;
	if ((rc = vault_record_fetch(t, *seq, check, &rec, clen)) != PV_OK)
		return rc;
	if ((*copy = malloc(*clen)) == NULL)
		return PV_ENOMEM;
	memcpy(*copy, rec, *clen);
	return PV_OK;
}

/* Access: everything about a record, for the person it belongs to. */

void
vault_record_view_free(struct vault_record_view *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nfields; i++)
		pv_secure_free(r->fields[i].value, r->fields[i].len + 1);
	vault_audit_entries_free(r->reads, r->nreads);
	pv_cleanse(r, sizeof(*r));
	free(r);
}

struct access_arg {
	const struct vault_event	*ev;
	uint64_t			 seq;
	int				 limited;	/* an access request */
	pv_status			 st;	/* the request's own outcome */
	uint64_t			 retry;
	int				 logged;
};

/*
 * Count against the limit (an access request) and log, in one
 * transaction.  Only a request that is answered counts: one over the limit
 * is logged as refused, and one whose record was shredded since the
 * snapshot is the caller's to log, like any other refusal for its id.
 */
static pv_status
access_apply(struct vault *v, struct gc_ctx *g, void *arg)
{
	struct access_arg *a = arg;
	struct vault_event ev = *a->ev;
	uint8_t key[SEQ_LEN];
	const uint8_t *rec;
	size_t len;
	pv_status rc;

	pv_put_u64(key, a->seq);
	if ((rc = pv_get(g->t, PV_T_RECORDS, key, sizeof(key),
	    (const void **)&rec, &len)) != PV_OK)
		return rc;
	if (len >= 1 && rec[R_TYPE] == REC_TOMBSTONE) {
		a->st = PV_ESHREDDED;
		return PV_OK;
	}
	ev.recs = &a->seq;
	ev.nrecs = 1;
	ev.kind = VAULT_EK_NONE;
	a->logged = 1;
	if (a->limited && (a->st = vault_request_limit(v, g->t, a->seq,
	    VAULT_EK_ACCESS, &a->retry)) != PV_OK) {
		if (a->st != PV_ELIMIT)
			return a->st;
		/* Refused, and logged with the record it was about. */
		ev.ok = 0;
		ev.code = "too_many_requests";
		return vault_audit_in(v, g->t, &ev, NULL);
	}
	if (a->limited)
		ev.kind = VAULT_EK_ACCESS;
	ev.ok = 1;
	return vault_audit_in(v, g->t, &ev, NULL);
}

/*
 * What the vault holds about a record, from one snapshot: its header, its
 * fields' names and tokens, with values when values is set, and who read
 * them; then the request is logged (and, with values, counted as an
 * access request) before the view is handed out.  Without values the
 * header is proven through the DEK, as opening the values would prove it.
 */
static pv_status
record_view(struct vault *v, const struct vault_event *ev, const char *id,
    size_t len, int values, struct vault_record_view **out, uint64_t *retry,
    int *logged)
{
	struct vault_record_view *r = NULL;
	struct access_arg a = { ev, 0, values, PV_OK, 0, 0 };
	struct gc_job job = { access_apply, &a, 1, PV_OK, 0, NULL };
	struct pv_txn *t = NULL;
	uint8_t *copy = NULL;
	size_t clen = 0, pos = R_FIELDS, nf;
	pv_status rc;

	*logged = 0;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return PV_ENOMEM;
	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		goto out;
	if ((rc = fetch_copy(v, t, id, len, &a.seq, &copy, &clen)) != PV_OK)
		goto out;
	if (!values && (rc = vault_header_verify(v, a.seq, copy, clen)) !=
	    PV_OK)
		goto out;
	memcpy(r->id, id, len);
	r->marketing = (copy[R_FLAGS] & RF_MARKETING) != 0;
	r->hold = (copy[R_FLAGS] & RF_HOLD) != 0;
	r->created = pv_get_u64(copy + R_CREATED);
	r->retain_until = pv_get_u64(copy + R_RETAIN);
	nf = vault_record_nfields(copy);
	for (size_t i = 0; i < nf; i++) {
		struct vault_record_field *f = &r->fields[i];
		struct resolved res;
		uint8_t tk[SEQ_LEN];
		const uint8_t *tv;
		size_t tl;

		if (i == PV_FIELDS_MAX) {
			rc = PV_EINTEGRITY;
			goto out;
		}
		if ((rc = vault_field_next(copy, clen, &pos, &res.f)) != PV_OK)
			goto out;
		memcpy(f->name, res.f.name, res.f.namelen);
		if (!values) {
			r->nfields++;
			continue;
		}
		res.rec_seq = a.seq;
		res.rec = copy;
		res.reclen = clen;
		if ((rc = vault_field_open(v, &res, &f->value)) != PV_OK)
			goto out;
		f->len = res.f.ctlen;
		r->nfields++;
		pv_put_u64(tk, res.f.tok_seq);
		if ((rc = pv_get(t, PV_T_TOKENS, tk, sizeof(tk),
		    (const void **)&tv, &tl)) != PV_OK || tl < T_NAME ||
		    (rc = vault_id_format(v, KMS_ID_TOKEN, res.f.tok_seq,
		    tv + T_CHECK, f->token)) != PV_OK) {
			rc = rc == PV_OK ? PV_EINTEGRITY : rc;
			goto out;
		}
	}
	if ((rc = vault_audit_by_record(v, t, a.seq, VAULT_EK_READ, 0,
	    VAULT_READS_MAX, &r->reads, &r->nreads)) != PV_OK)
		goto out;
	pv_txn_abort(t);
	t = NULL;
	/* No access without a record: logged (and counted) first. */
	if ((rc = vault_commit_job(v, &job)) != PV_OK)
		goto out;
	*logged = a.logged;
	if ((rc = a.st) != PV_OK) {
		*retry = a.retry;
		goto out;
	}
	*out = r;
	r = NULL;
out:
	pv_txn_abort(t);
	if (copy != NULL) {
		pv_cleanse(copy, clen);
		free(copy);
	}
	vault_record_view_free(r);
	return rc;
}

pv_status
vault_record_access(struct vault *v, const struct vault_event *ev,
    const char *id, size_t len, struct vault_record_view **out,
    uint64_t *retry, int *logged)
{
	return record_view(v, ev, id, len, 1, out, retry, logged);
}

pv_status
vault_record_metadata(struct vault *v, const struct vault_event *ev,
    const char *id, size_t len, struct vault_record_view **out, int *logged)
{
	uint64_t retry = 0;

	return record_view(v, ev, id, len, 0, out, &retry, logged);
}

/* Changes to one record: correction, consent, hold. */

struct change_arg {
	const struct vault_event	*ev;
	const char			*id;
	size_t				 len;
	/* correction */
	const struct vault_field	*fields;	/* value NULL: remove */
	size_t				 nfields;
	char				(*tokens)[VAULT_ID_STRLEN + 1];
	char				(*names)[PV_FIELD_NAME_MAX + 1];
	size_t				 ntokens;
	uint64_t			 tok, tok_end;	/* leased */
	/* flags */
	uint8_t				 set, clear;
	pv_status			 st;
	char				*why;	/* VAULT_WHY_MAX: a refusal */
	int				 logged;
};

/* Re-wrap a record copy's DEK for its (changed) header. */
static pv_status
rewrap_header(struct vault *v, struct pv_txn *t, uint64_t seq, uint8_t *rec,
    const uint8_t *old_ctx, uint8_t *dek)
{
	uint8_t ctx[DEK_CTX_LEN];
	uint32_t oldv = pv_get_u32(rec + R_KEKV), newv;
	pv_status rc;

	if ((rc = kms_dek_open(v->kms, old_ctx, DEK_CTX_LEN, oldv, rec + R_DEK,
	    dek)) != PV_OK)
		return rc;
	vault_dek_ctx(ctx, seq, rec);
	if ((rc = kms_dek_wrap(v->kms, ctx, sizeof(ctx), dek, &newv,
	    rec + R_DEK)) != PV_OK)
		return rc;
	pv_put_u32(rec + R_KEKV, newv);
	/* Every wrap counts toward the KEK's cryptoperiod. */
	if (newv != oldv &&
	    (rc = kms_count_wraps(v->kms, t, oldv, -1, 0)) != PV_OK)
		return rc;
	return kms_count_wraps(v->kms, t, newv, newv != oldv, 1);
}

/*
 * The request-limit counter: one row per record and limited kind in
 * audit_rec, key record seq (8) || 0x80 | kind (1) || zeros (8), value
 * n (1) || n request times (8 each) || row MAC.  A record whose header
 * carries RF_LIMITED (bound by the DEK's AAD) has the access row, so
 * deleting or editing it, or the audit_rec index rows, never lowers the
 * count.  Only access requests are limited: a deletion is granted once,
 * since it shreds the record (vaults made before also hold a deletion row,
 * which is no longer read).
 */
#define LIM_KEY_LEN	(2 * SEQ_LEN + 1)
#define LIM_KIND	0x80
#define LIM_TIMES_MAX	255
#define LIM_VAL_MAX	(1 + LIM_TIMES_MAX * 8 + VAULT_ROW_MAC_LEN)

static void
lim_key(uint8_t key[static LIM_KEY_LEN], uint64_t seq, int kind)
{
	pv_put_u64(key, seq);
	key[SEQ_LEN] = (uint8_t)(LIM_KIND | kind);
	pv_put_u64(key + SEQ_LEN + 1, 0);
}

/* The counter row of seq and kind, checked: its times and their count. */
static pv_status
lim_read(struct vault *v, struct pv_txn *t, uint64_t seq, int kind,
    uint64_t times[static LIM_TIMES_MAX], size_t *n)
{
	uint8_t key[LIM_KEY_LEN], mac[VAULT_ROW_MAC_LEN];
	const uint8_t *val;
	size_t vl;
	pv_status rc;

	lim_key(key, seq, kind);
	rc = pv_get(t, PV_T_AUDIT_REC, key, sizeof(key), (const void **)&val,
	    &vl);
	if (rc == PV_ENOTFOUND)
		return vault_alarm(v, "request limit", "audit_by_record");
	if (rc != PV_OK)
		return rc;
	if (vl < 1 + VAULT_ROW_MAC_LEN ||
	    vl != 1 + (size_t)val[0] * 8 + VAULT_ROW_MAC_LEN)
		return vault_alarm(v, "request limit", "audit_by_record");
	if ((rc = vault_row_mac(v, PV_T_AUDIT_REC, key, sizeof(key), val,
	    vl - VAULT_ROW_MAC_LEN, mac)) != PV_OK)
		return rc;
	if (!pv_ct_eq(mac, val + vl - VAULT_ROW_MAC_LEN, sizeof(mac)))
		return vault_alarm(v, "request limit", "audit_by_record");
	*n = val[0];
	for (size_t i = 0; i < *n; i++)
		times[i] = pv_get_u64(val + 1 + 8 * i);
	return PV_OK;
}

static pv_status
lim_write(struct vault *v, struct pv_txn *t, uint64_t seq, int kind,
    const uint64_t *times, size_t n)
{
	uint8_t key[LIM_KEY_LEN], val[LIM_VAL_MAX];
	size_t vl = 1 + n * 8;
	pv_status rc;

	lim_key(key, seq, kind);
	val[0] = (uint8_t)n;
	for (size_t i = 0; i < n; i++)
		pv_put_u64(val + 1 + 8 * i, times[i]);
	if ((rc = vault_row_mac(v, PV_T_AUDIT_REC, key, sizeof(key), val, vl,
	    val + vl)) != PV_OK)
		return rc;
	return pv_put(t, PV_T_AUDIT_REC, key, sizeof(key), val,
	    vl + VAULT_ROW_MAC_LEN, 0);
}

/* Seed kind's counter of seq from the index rows in the window. */
static pv_status
lim_seed(struct vault *v, struct pv_txn *t, uint64_t seq, int kind,
    uint64_t since)
{
	struct vault_audit_entry *e = NULL;
	uint64_t times[LIM_TIMES_MAX];
	size_t n = 0;
	pv_status rc;

	if ((rc = vault_audit_by_record(v, t, seq, kind, since, LIM_TIMES_MAX,
	    &e, &n)) != PV_OK)
		return rc;
	for (size_t i = 0; i < n; i++)
		times[i] = e[i].time;
	vault_audit_entries_free(e, n);
	return lim_write(v, t, seq, kind, times, n);
}

/*
 * Prove seq's header; the first time, set RF_LIMITED (re-wrapping the DEK,
 * as a consent change does) and seed kind's counter.  *counted is 0 for a
 * record whose KEK is destroyed: nothing of it is left to protect, and
 * the index alone counts.
 */
static pv_status
lim_prove(struct vault *v, struct pv_txn *t, uint64_t seq, int kind,
    uint64_t since, int *counted)
{
	uint8_t key[SEQ_LEN], old_ctx[DEK_CTX_LEN], *copy = NULL, *dek = NULL;
	const uint8_t *rec;
	size_t len = 0;
	pv_status rc;

	*counted = 0;
	pv_put_u64(key, seq);
	if ((rc = pv_get(t, PV_T_RECORDS, key, sizeof(key),
	    (const void **)&rec, &len)) != PV_OK)
		return rc;
	if (len < R_FIELDS || rec[R_TYPE] != REC_LIVE)
		return vault_alarm(v, "record header", "records");
	if (rec[R_FLAGS] & RF_LIMITED) {
		if ((rc = vault_header_verify(v, seq, rec, len)) == PV_OK)
			*counted = kms_version_state(v->kms, KMS_KEK,
			    pv_get_u32(rec + R_KEKV)) != KMS_DESTROYED;
		return rc;
	}
	if (kms_version_state(v->kms, KMS_KEK, pv_get_u32(rec + R_KEKV)) ==
	    KMS_DESTROYED)
		return PV_OK;
	if ((copy = malloc(len)) == NULL ||
	    (dek = pv_secure_alloc(PV_KEY_LEN)) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	memcpy(copy, rec, len);
	vault_dek_ctx(old_ctx, seq, copy);
	copy[R_FLAGS] |= RF_LIMITED;
	if ((rc = rewrap_header(v, t, seq, copy, old_ctx, dek)) != PV_OK) {
		if (rc == PV_EINTEGRITY)
			rc = vault_alarm(v, "record header", "records");
		goto out;
	}
	if ((rc = pv_put(t, PV_T_RECORDS, key, sizeof(key), copy, len, 0)) !=
	    PV_OK ||
	    (rc = lim_seed(v, t, seq, kind, since)) != PV_OK)
		goto out;
	*counted = 1;
out:
	pv_secure_free(dek, PV_KEY_LEN);
	if (copy != NULL) {
		pv_cleanse(copy, len);
		free(copy);
	}
	return rc;
}

/* The old count, from the audit_rec index rows (which may be deleted). */
static pv_status
lim_index(struct vault *v, struct pv_txn *t, uint64_t seq, int kind,
    uint64_t since, uint64_t now, uint64_t *retry)
{
	struct vault_audit_entry *e = NULL;
	size_t n = 0;
	pv_status rc;

	if ((rc = vault_audit_by_record(v, t, seq, kind, since,
	    v->limit_count, &e, &n)) != PV_OK)
		return rc;
	if (n >= v->limit_count) {
		*retry = e[0].time + v->limit_window > now ?
		    e[0].time + v->limit_window - now : 1;
		rc = PV_ELIMIT;
	}
	vault_audit_entries_free(e, n);
	return rc;
}

/*
 * Whether another request of kind on record seq fits the window: PV_ELIMIT
 * with *retry (seconds until the oldest counted one leaves it) if not.  If
 * it fits, it is counted, in t: the caller calls this only for a request
 * it is about to grant, so that a refused one never counts.  A counter
 * that fails its MAC or is missing is an integrity error (and an alarm):
 * the request is refused.
 */
pv_status
vault_request_limit(struct vault *v, struct pv_txn *t, uint64_t seq, int kind,
    uint64_t *retry)
{
	uint64_t times[LIM_TIMES_MAX], now = pv_now(), since, old;
	size_t n = 0, keep = 0;
	int counted = 0;
	pv_status rc;

	if (v->limit_count == 0)
		return PV_OK;
	since = now > v->limit_window ? now - v->limit_window : 0;
	if ((rc = lim_prove(v, t, seq, kind, since, &counted)) != PV_OK)
		return rc;
	if (counted) {
		if ((rc = lim_read(v, t, seq, kind, times, &n)) != PV_OK)
			return rc;
		for (size_t i = 0; i < n; i++)
			if (times[i] >= since)
				times[keep++] = times[i];
		if (keep >= v->limit_count) {
			old = times[keep - v->limit_count];
			*retry = old + v->limit_window > now ?
			    old + v->limit_window - now : 1;
			return PV_ELIMIT;
		}
	}
	if ((rc = lim_index(v, t, seq, kind, since, now, retry)) != PV_OK ||
	    !counted)
		return rc;
	if (keep == LIM_TIMES_MAX) {
		memmove(times, times + 1, (keep - 1) * sizeof(times[0]));
		keep--;
	}
	times[keep++] = now;
	return lim_write(v, t, seq, kind, times, keep);
}

static pv_status
flags_apply(struct vault *v, struct gc_ctx *g, void *arg)
{
	struct change_arg *a = arg;
	struct vault_event ev = *a->ev;
	uint8_t old_ctx[DEK_CTX_LEN], key[SEQ_LEN], *copy = NULL;
	uint64_t seq = 0;
	size_t clen = 0;
	pv_status rc;

	a->st = fetch_copy(v, g->t, a->id, a->len, &seq, &copy, &clen);
	if (a->st == PV_OK) {
		vault_dek_ctx(old_ctx, seq, copy);
		copy[R_FLAGS] = (uint8_t)((copy[R_FLAGS] | a->set) & ~a->clear);
		if (copy[R_FLAGS] != old_ctx[17] &&
		    (rc = rewrap_header(v, g->t, seq, copy, old_ctx,
		    g->dek)) != PV_OK)
			goto out;
		pv_put_u64(key, seq);
		if ((rc = pv_put(g->t, PV_T_RECORDS, key, sizeof(key), copy,
		    clen, 0)) != PV_OK)
			goto out;
		ev.recs = &seq;
		ev.nrecs = 1;
		ev.ok = 1;
		rc = vault_audit_in(v, g->t, &ev, NULL);
	} else if (a->st == PV_ENOMEM || a->st == PV_EINTEGRITY ||
	    a->st == PV_ESTORE)
		rc = a->st;
	else
		rc = PV_OK;	/* refused: the caller logs it */
out:
	if (copy != NULL) {
		pv_cleanse(copy, clen);
		free(copy);
	}
	return rc;
}

static pv_status
change(struct vault *v, struct change_arg *a,
    pv_status (*apply)(struct vault *, struct gc_ctx *, void *))
{
	struct gc_job job = { apply, a, 1, PV_OK, 0, NULL };
	pv_status rc;

	if ((rc = vault_commit_job(v, &job)) != PV_OK)
		return rc;
	return a->st;
}

/* Set (on) or clear a header flag of record id. */
static pv_status
flag_change(struct vault *v, const struct vault_event *ev, const char *id,
    size_t len, uint8_t flag, int on)
{
	struct change_arg a = { .ev = ev, .id = id, .len = len };

	if (on)
		a.set = flag;
	else
		a.clear = flag;
	return change(v, &a, flags_apply);
}

pv_status
vault_record_consent(struct vault *v, const struct vault_event *ev,
    const char *id, size_t len, int marketing)
{
	return flag_change(v, ev, id, len, RF_MARKETING, marketing);
}

pv_status
vault_record_hold(struct vault *v, const struct vault_event *ev,
    const char *id, size_t len, int hold)
{
	return flag_change(v, ev, id, len, RF_HOLD, hold);
}

/*
 * Correction.  The record is rebuilt: kept fields are copied as they are,
 * changed ones are sealed anew under the same DEK with their old token
 * numbers (so existing tokens resolve to the new values), removed ones lose
 * their token and index entries, new ones get new tokens.
 */
struct slot {
	const char	*name;
	size_t		 namelen;
	const char	*value;		/* new value, or NULL to keep old */
	size_t		 len;
	struct field_view old;		/* when it existed */
	int		 existed;
	uint64_t	 tok_seq;
	uint8_t		 tok_check[CHECK_LEN];
	uint8_t		 digest[PV_HMAC_LEN];
	int		 indexed;
};

/* A correction under way: the record's fields, old and new, as slots. */
struct fix {
	uint64_t	 seq;
	const uint8_t	*old;		/* the record as it was */
	size_t		 oldlen;
	struct slot	*sl;		/* namelen 0: removed */
	size_t		 n;
	size_t		 nkeep;		/* fields the result has */
	size_t		 size;		/* bytes the result takes */
};

/*
 * Step 1: the old fields, then the patch applied to them: replace, remove
 * (value NULL) or add (a leased token number each).
 */
static pv_status
fix_slots(struct change_arg *a, struct fix *x)
{
	struct slot *sl = x->sl;
	size_t nold, pos = R_FIELDS, n = 0;
	pv_status rc;

	nold = vault_record_nfields(x->old);
	for (size_t i = 0; i < nold; i++) {
		if ((rc = vault_field_next(x->old, x->oldlen, &pos,
		    &sl[n].old)) != PV_OK)
			return rc;
		sl[n].existed = 1;
		sl[n].name = sl[n].old.name;
		sl[n].namelen = sl[n].old.namelen;
		sl[n].tok_seq = sl[n].old.tok_seq;
		n++;
	}
	for (size_t i = 0; i < a->nfields; i++) {
		const struct vault_field *f = &a->fields[i];
		size_t j;

		for (j = 0; j < n; j++)
			if (sl[j].namelen == f->namelen &&
			    memcmp(sl[j].name, f->name, f->namelen) == 0)
				break;
		if (j == n) {
			if (f->value == NULL)
				continue;	/* removing what is not there */
			if (a->tok == a->tok_end) {
				/* Cannot be: one is leased per value set. */
				a->st = PV_EINVAL;
				return PV_OK;
			}
			sl[n].name = f->name;
			sl[n].namelen = f->namelen;
			sl[n].tok_seq = a->tok++;
			if ((rc = pv_random(sl[n].tok_check, CHECK_LEN)) !=
			    PV_OK)
				return rc;
			n++;
		}
		sl[j].value = f->value;
		sl[j].len = f->len;
		if (f->value == NULL)
			sl[j].namelen = 0;	/* removed */
	}
	x->n = n;
	return PV_OK;
}

/* Step 2: the result must be a valid record: new values, and a count. */
static pv_status
fix_check(struct fix *x, char why[static VAULT_WHY_MAX])
{
	pv_status st;

	x->nkeep = 0;
	for (size_t i = 0; i < x->n; i++) {
		const struct slot *s = &x->sl[i];
		struct vault_field f = { s->name, s->namelen, s->value,
		    s->len };

		if (s->namelen == 0)
			continue;
		x->nkeep++;
		/* Names were checked first: every message names its field. */
		if (s->value != NULL && (st = vault_field_check(&f, i,
		    why)) != PV_OK)
			return st;
	}
	if (x->nkeep == 0) {
		(void)snprintf(why, VAULT_WHY_MAX, "a record keeps at least "
		    "one field (delete it instead)");
		return PV_EINVAL;
	}
	if (x->nkeep > PV_FIELDS_MAX) {
		(void)snprintf(why, VAULT_WHY_MAX, "the record would have "
		    "more than %d fields", PV_FIELDS_MAX);
		return PV_ETOOBIG;
	}
	return PV_OK;
}

/* Step 3: the digests of new indexed values, and the result's size. */
static pv_status
fix_size(struct vault *v, struct fix *x)
{
	pv_status rc;

	x->size = R_FIELDS;
	for (size_t i = 0; i < x->n; i++) {
		struct slot *s = &x->sl[i];

		if (s->namelen == 0)
			continue;
		s->indexed = vault_field_indexed(s->name, s->namelen);
		if (s->value == NULL) {
			x->size += s->old.entrylen;
			if (s->indexed)
				memcpy(s->digest, s->old.digest, PV_HMAC_LEN);
			continue;
		}
		if (s->indexed && (rc = vault_field_digest(v, 0, s->name,
		    s->namelen, s->value, s->len, s->digest)) != PV_OK)
			return rc;
		x->size += vault_field_size(s->namelen, s->indexed, s->len);
	}
	return PV_OK;
}

/*
 * Step 4: write the result in place of the record: its header as it was,
 * kept entries as they were, changed and new ones sealed under the same
 * DEK (in dek) with their token numbers.
 */
static pv_status
fix_write(struct vault *v, struct pv_txn *t, struct fix *x,
    const uint8_t *dek)
{
	uint8_t key[SEQ_LEN], rec[16], *p, *q;
	pv_status rc;

	vault_id_block(rec, x->seq, x->old + R_CHECK);
	pv_put_u64(key, x->seq);
	if ((rc = pv_reserve(t, PV_T_RECORDS, key, sizeof(key), x->size, 0,
	    (void **)&p)) != PV_OK)
		return rc;
	memcpy(p, x->old, R_FIELDS);
	vault_record_set_nfields(p, x->nkeep);
	q = p + R_FIELDS;
	for (size_t i = 0; i < x->n; i++) {
		const struct slot *s = &x->sl[i];
		struct field_in in = { s->name, s->namelen,
		    s->indexed ? s->digest : NULL, s->tok_seq, s->value,
		    s->len, NULL };

		if (s->namelen == 0)
			continue;
		if (s->value == NULL) {
			memcpy(q, s->old.entry, s->old.entrylen);
			q += s->old.entrylen;
		} else if ((rc = vault_field_put(v, rec, dek, &in, &q)) !=
		    PV_OK)
			return rc;
	}
	return PV_OK;
}

/*
 * Step 5: tokens and index entries follow the fields, and every field's
 * token after the change goes to the caller.
 */
static pv_status
fix_tokens(struct vault *v, struct pv_txn *t, struct change_arg *a,
    struct fix *x)
{
	uint8_t tk[SEQ_LEN], tokval[TOKEN_VAL_MAX], idx[INDEX_VAL_LEN];
	const uint8_t *tv;
	size_t tl;
	pv_status rc;

	a->ntokens = 0;
	for (size_t i = 0; i < x->n; i++) {
		struct slot *s = &x->sl[i];
		int changed = s->value != NULL || s->namelen == 0;

		if (s->existed && changed && s->old.indexed &&
		    (rc = vault_index_del(v, t, x->seq, &s->old, NULL)) != PV_OK)
			return rc;
		pv_put_u64(tk, s->tok_seq);
		if (s->namelen == 0) {
			rc = pv_del(t, PV_T_TOKENS, tk, sizeof(tk), NULL, 0);
			if (rc != PV_OK && rc != PV_ENOTFOUND)
				return rc;
			continue;
		}
		if (!s->existed) {
			if ((rc = pv_put(t, PV_T_TOKENS, tk, sizeof(tk),
			    tokval, vault_token_val(tokval, x->seq,
			    s->tok_check, s->name, s->namelen),
			    PV_PUT_NOOVERWRITE)) != PV_OK)
				return rc;
		} else {
			if ((rc = pv_get(t, PV_T_TOKENS, tk, sizeof(tk),
			    (const void **)&tv, &tl)) != PV_OK)
				return rc;
			if (tl < T_NAME)
				return PV_EINTEGRITY;
			memcpy(s->tok_check, tv + T_CHECK, CHECK_LEN);
		}
		if (s->indexed && changed &&
		    ((rc = vault_index_val(v, x->seq, s->tok_seq, s->digest,
		    idx)) != PV_OK || (rc = pv_put(t, PV_T_INDEX, s->digest,
		    PV_HMAC_LEN, idx, sizeof(idx), 0)) != PV_OK))
			return rc;
		if (a->tokens == NULL)
			continue;
		memcpy(a->names[a->ntokens], s->name, s->namelen);
		a->names[a->ntokens][s->namelen] = '\0';
		if ((rc = vault_id_format(v, KMS_ID_TOKEN, s->tok_seq,
		    s->tok_check, a->tokens[a->ntokens])) != PV_OK)
			return rc;
		a->ntokens++;
	}
	return PV_OK;
}

/*
 * Rebuild record seq (old, oldlen) with a's patch.  A refusal is a->st
 * with PV_OK returned; what fails the commit is returned.
 */
static pv_status
correct_build(struct vault *v, struct gc_ctx *g, struct change_arg *a,
    uint64_t seq, const uint8_t *old, size_t oldlen)
{
	struct fix x = { seq, old, oldlen, NULL, 0, 0, 0 };
	uint8_t ctx[DEK_CTX_LEN];
	pv_status rc;

	if ((x.sl = calloc(PV_FIELDS_MAX + VAULT_FIELDS_PATCH_MAX,
	    sizeof(*x.sl))) == NULL)
		return PV_ENOMEM;
	if ((rc = fix_slots(a, &x)) != PV_OK || a->st != PV_OK)
		goto out;
	if ((a->st = fix_check(&x, a->why)) != PV_OK)
		goto out;
	vault_dek_ctx(ctx, seq, old);
	if ((rc = kms_dek_open(v->kms, ctx, sizeof(ctx),
	    pv_get_u32(old + R_KEKV), old + R_DEK, g->dek)) != PV_OK)
		goto out;
	if ((rc = fix_size(v, &x)) != PV_OK ||
	    (rc = fix_write(v, g->t, &x, g->dek)) != PV_OK)
		goto out;
	rc = fix_tokens(v, g->t, a, &x);
out:
	pv_cleanse(g->dek, PV_KEY_LEN);
	free(x.sl);
	return rc;
}

static pv_status
correct_apply(struct vault *v, struct gc_ctx *g, void *arg)
{
	struct change_arg *a = arg;
	struct vault_event ev = *a->ev;
	const char *names[VAULT_FIELDS_PATCH_MAX];
	uint8_t *copy = NULL;
	uint64_t seq = 0;
	size_t clen = 0;
	pv_status rc;

	a->st = fetch_copy(v, g->t, a->id, a->len, &seq, &copy, &clen);
	if (a->st == PV_ENOMEM || a->st == PV_EINTEGRITY ||
	    a->st == PV_ESTORE) {
		rc = a->st;
		goto out;
	}
	rc = PV_OK;
	if (a->st != PV_OK)
		goto out;		/* no such record: the caller logs it */
	if ((rc = correct_build(v, g, a, seq, copy, clen)) != PV_OK)
		goto out;
	/* Field names, never values; a refusal names its record too. */
	for (size_t i = 0; i < a->nfields; i++)
		names[i] = a->fields[i].name;
	ev.fields = names;
	ev.nfields = a->nfields;
	ev.recs = &seq;
	ev.nrecs = 1;
	ev.ok = a->st == PV_OK;
	if (!ev.ok)
		ev.code = a->st == PV_EFIELD ? "invalid_field" :
		    a->st == PV_ETOOBIG ? "too_large" : "invalid_value";
	rc = vault_audit_in(v, g->t, &ev, NULL);
	a->logged = rc == PV_OK;
out:
	if (copy != NULL) {
		pv_cleanse(copy, clen);
		free(copy);
	}
	return rc;
}

pv_status
vault_record_correct(struct vault *v, const struct vault_event *ev,
    const struct vault_correction *c)
{
	const struct vault_field *fields = c->fields;
	size_t nfields = c->nfields, nvalues = 0;
	struct change_arg a = { .ev = ev, .id = c->id, .len = c->len,
	    .fields = fields, .nfields = nfields, .tokens = c->tokens,
	    .names = c->names, .why = c->why };
	uint64_t rec0;
	pv_status rc;

	c->why[0] = '\0';
	if (nfields == 0) {
		(void)snprintf(c->why, VAULT_WHY_MAX, "a patch needs fields");
		return PV_EINVAL;
	}
	if (nfields > VAULT_FIELDS_PATCH_MAX) {
		(void)snprintf(c->why, VAULT_WHY_MAX, "more than %d fields",
		    VAULT_FIELDS_PATCH_MAX);
		return PV_ETOOBIG;
	}
	/* Names and new values are checked before anything is touched. */
	for (size_t i = 0; i < nfields; i++) {
		if (!pv_field_name_valid(fields[i].name, fields[i].namelen)) {
			vault_field_why(c->why, &fields[i], i, VAULT_NAME_RULE);
			return PV_EFIELD;
		}
		for (size_t j = 0; j < i; j++)
			if (fields[j].namelen == fields[i].namelen &&
			    memcmp(fields[j].name, fields[i].name,
			    fields[i].namelen) == 0) {
				vault_field_why(c->why, &fields[i], i,
				    "named twice");
				return PV_EFIELD;
			}
	}
	/* A number for every value the patch sets, in case each is new. */
	for (size_t i = 0; i < nfields; i++)
		nvalues += fields[i].value != NULL;
	if (nvalues > 0 && (rc = vault_lease(v, 0, nvalues, &rec0,
	    &a.tok)) != PV_OK)
		return rc;
	a.tok_end = a.tok + nvalues;
	*c->logged = 0;
	rc = change(v, &a, correct_apply);
	*c->logged = a.logged;
	if (rc == PV_OK)
		*c->ntokens = a.ntokens;
	return rc;
}

/* Retention. */

struct sweep_arg {
	uint64_t	 now;
	size_t		 batch;
	int		 dry_run;
	uint64_t	 shredded, held;
	int		 more;
};

struct due {
	uint64_t	until, seq;
	int		live;		/* else a stale entry, to drop */
};

/*
 * One batch of the sweep: records past their date are shredded, held ones
 * skipped (they stay in the table and are swept once released), stale
 * entries dropped.  A dry run only counts, over the whole table.
 */
static pv_status
sweep_apply(struct vault *v, struct gc_ctx *g, void *arg)
{
	struct sweep_arg *a = arg;
	struct pv_cursor *c = NULL;
	const uint8_t *k, *val, *rec;
	struct due *due = NULL;
	uint64_t *gone = NULL, seq = 0;
	size_t kl, vl, n = 0, ngone = 0, rl;
	pv_status rc;

	a->more = 0;
	if ((due = calloc(a->batch, sizeof(*due))) == NULL ||
	    (gone = calloc(a->batch, sizeof(*gone))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	if ((rc = pv_cursor_open(g->t, PV_T_RETAIN, &c)) != PV_OK)
		goto out;
	for (rc = pv_cursor_seek(c, NULL, 0, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl); rc == PV_OK;
	    rc = pv_cursor_next(c, 0, (const void **)&k, &kl,
	    (const void **)&val, &vl)) {
		uint8_t key[SEQ_LEN];
		uint64_t until;
		int live;

		if (kl != RETAIN_KEY_LEN) {
			rc = PV_EINTEGRITY;
			goto out;
		}
		if ((until = pv_get_u64(k)) > a->now)
			break;
		memcpy(key, k + SEQ_LEN, SEQ_LEN);
		rc = pv_get(g->t, PV_T_RECORDS, key, sizeof(key),
		    (const void **)&rec, &rl);
		if (rc != PV_OK && rc != PV_ENOTFOUND)
			goto out;
		live = rc == PV_OK && rl >= R_FIELDS &&
		    rec[R_TYPE] == REC_LIVE &&
		    pv_get_u64(rec + R_RETAIN) == until;
		rc = PV_OK;
		if (live && (rec[R_FLAGS] & RF_HOLD)) {
			a->held++;
			continue;
		}
		/*
		 * The date and the hold decide a shred without opening the
		 * record: prove them first (the DEK's AAD binds both).  An
		 * edited header is an alarm, and the record stays.
		 */
		if (live) {
			pv_status hv = vault_header_verify(v, pv_get_u64(key),
			    rec, rl);

			if (hv == PV_EINTEGRITY || hv == PV_EKEYSTATE)
				continue;
			if (hv != PV_OK) {
				rc = hv;
				goto out;
			}
		}
		if (a->dry_run) {
			a->shredded += (uint64_t)live;
			continue;
		}
		if (n == a->batch) {
			a->more = 1;
			break;
		}
		due[n].until = until;
		due[n].seq = pv_get_u64(key);
		due[n++].live = live;
	}
	pv_cursor_close(c);
	c = NULL;
	if (rc != PV_OK && rc != PV_ENOTFOUND)
		goto out;
	rc = PV_OK;
	for (size_t i = 0; i < n; i++)
		if (due[i].live)
			gone[ngone++] = due[i].seq;
	/* Logged first, so that each tombstone names the event. */
	if (ngone > 0 && (rc = vault_audit_in(v, g->t, &(struct vault_event){
	    .actor = "retention", .action = "retention.sweep", .ok = 1,
	    .purpose = -1, .reason = "retention", .recs = gone,
	    .nrecs = ngone, .kind = VAULT_EK_NONE }, &seq)) != PV_OK)
		goto out;
	for (size_t i = 0; i < n && rc == PV_OK; i++) {
		if (!due[i].live) {
			rc = vault_retain_del(g->t, due[i].until, due[i].seq);
			continue;
		}
		if ((rc = vault_shred_in(v, g->t, due[i].seq, "retention",
		    seq)) != PV_OK)
			break;
		g->records--;
	}
	if (rc != PV_OK)
		goto out;
	a->shredded += ngone;
out:
	pv_cursor_close(c);
	free(due);
	free(gone);
	return rc;
}

pv_status
vault_retention_sweep(struct vault *v, int dry_run, size_t batch,
    uint64_t *shredded, uint64_t *held)
{
	struct sweep_arg a = { pv_now(), batch ? batch : 1000, dry_run, 0, 0,
	    0 };
	struct gc_job job = { sweep_apply, &a, 0, PV_OK, 0, NULL };
	pv_status rc;

	if (batch > VAULT_BATCH_MAX)
		return PV_EINVAL;
	job.weight = a.batch;
	/* Bounded transactions; a dry run counts in one and writes none. */
	do {
		a.held = 0;	/* held records are met again each batch */
		if ((rc = vault_commit_job(v, &job)) != PV_OK)
			return rc;
	} while (a.more);
	*shredded = a.shredded;
	*held = a.held;
	return PV_OK;
}
