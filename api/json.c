/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json.c: the JSON codec.  The only file that includes jansson; its
 * NULL / -1 conventions end here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api_int.h"

/* POST /v1/records's body, for the CLI (api.h). */
struct api_record {
	struct api_records	*recs;
};

/*
 * jansson's free() is not told the size, so each block carries its own,
 * and is wiped before it goes back to the heap: parsed requests hold
 * personal values.
 */
#define HDR	16	/* keeps the user block 16-byte aligned */

static void *
wipe_malloc(size_t n)
{
	unsigned char *p;

	if (n > SIZE_MAX - HDR || (p = malloc(n + HDR)) == NULL)
		return NULL;
	memcpy(p, &n, sizeof(n));
	return p + HDR;
}

static void
wipe_free(void *q)
{
	unsigned char *p;
	size_t n;

	if (q == NULL)
		return;
	p = (unsigned char *)q - HDR;
	memcpy(&n, p, sizeof(n));
	pv_cleanse(p, n + HDR);
	free(p);
}

static const char *
json_error_what(const json_error_t *e)
{
	switch (json_error_code(e)) {
	case json_error_out_of_memory:
		return "out of memory";
	case json_error_stack_overflow:
		return "nested too deeply";
	case json_error_invalid_utf8:
		return "invalid utf-8";
	case json_error_premature_end_of_input:
		return "unexpected end of input";
	case json_error_end_of_input_expected:
		return "unexpected text after the json value";
	case json_error_null_character:
	case json_error_null_byte_in_key:
		return "\\u0000 is not allowed";
	case json_error_duplicate_key:
		return "duplicate member";
	case json_error_numeric_overflow:
		return "number out of range";
	default:
		return "invalid json syntax";
	}
}

/* Say in err what is wrong, never quoting a value, and return rc. */
static pv_status bad(char err[static API_ERR_MAX], pv_status rc,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static pv_status
bad(char err[static API_ERR_MAX], pv_status rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, API_ERR_MAX, fmt, ap);
	va_end(ap);
	return rc;
}

/* PV_EMEMBER naming the first member of obj not in allowed. */
static pv_status
only_members(json_t *obj, const char *const *allowed, const char *where,
    char err[static API_ERR_MAX])
{
	const char *name;
	json_t *val;

	json_object_foreach(obj, name, val) {
		int ok = 0;

		for (const char *const *a = allowed; *a != NULL; a++)
			if (strcmp(*a, name) == 0)
				ok = 1;
		if (!ok) {
			/* A member name may itself be data: name it only
			 * if it looks like one of ours. */
			if (pv_field_name_valid(name, strlen(name)))
				return bad(err, PV_EMEMBER, "%s: unknown "
				    "member \"%s\"", where, name);
			return bad(err, PV_EMEMBER, "%s: unknown member",
			    where);
		}
	}
	return PV_OK;
}

/*
 * Parse text that must be one JSON object and, unless members is NULL,
 * have no member but those (PV_EMEMBER, naming where).  NULL with *rc
 * set and err saying why if it is not.
 */
static json_t *
load(const char *text, size_t len, const char *const *members,
    const char *where, char err[static API_ERR_MAX], pv_status *rc)
{
	json_error_t jerr;
	json_t *root;

	if ((root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL) {
		/*
		 * jansson's own text quotes the input near the error, which
		 * may be a personal value: say what and where, never that.
		 */
		*rc = bad(err, PV_EJSON, "line %d column %d: %s", jerr.line,
		    jerr.column, json_error_what(&jerr));
		pv_cleanse(&jerr, sizeof(jerr));
		return NULL;
	}
	if (!json_is_object(root))
		*rc = bad(err, PV_EJSON, "expected a json object");
	else if (members == NULL ||
	    (*rc = only_members(root, members, where, err)) == PV_OK)
		return root;
	json_decref(root);
	return NULL;
}

void
api_init(void)
{
	json_set_alloc_funcs(wipe_malloc, wipe_free);
}

pv_status
api_record_parse(const char *text, size_t len, struct api_record **out,
    char err[static API_ERR_MAX])
{
	struct api_record *r;
	pv_status rc;

	err[0] = '\0';
	if (len > API_BODY_MAX)
		return bad(err, PV_ETOOBIG, "input over %u bytes",
		    API_BODY_MAX);
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return PV_ENOMEM;
	if ((rc = api_records_parse(text, len, 0, 1, &r->recs, err)) !=
	    PV_OK) {
		free(r);
		return rc;
	}
	*out = r;
	return PV_OK;
}

const struct vault_record_in *
api_record_in(const struct api_record *r)
{
	return api_records_in(r->recs, 0);
}

void
api_record_free(struct api_record *r)
{
	if (r == NULL)
		return;
	api_records_free(r->recs);
	free(r);
}

const char *
api_error_code(pv_status rc)
{
	switch (rc) {
	case PV_OK:
		return "ok";
	case PV_ENOTFOUND:
	case PV_ENOVAULT:
		return "not_found";
	case PV_ETOKEN:
		return "invalid_token";
	case PV_EFIELD:
		return "invalid_field";
	case PV_EVALUE:
	case PV_EINVAL:
		return "invalid_value";
	case PV_ETOOBIG:
		return "too_large";
	case PV_EJSON:
		return "invalid_json";
	case PV_ESHREDDED:
		return "shredded";
	case PV_ENOTINDEXED:
		return "invalid_field";
	case PV_EKEYSTATE:
		return "key_unavailable";
	case PV_EINTEGRITY:
		return "integrity";
	case PV_EHOLD:
		return "legal_hold";
	case PV_ELIMIT:
		return "too_many_requests";
	case PV_EOPTOUT:
		return "cannot_opt_out";
	case PV_EUNAUTH:
		return "unauthenticated";
	case PV_EFORBIDDEN:
		return "forbidden";
	case PV_EPURPOSE:
		return "purpose_not_allowed";
	case PV_ECONSENT:
		return "consent_withdrawn";
	case PV_EREASON:
		return "reason_required";
	case PV_EMEMBER:
		return "unknown_member";
	case PV_EFULL:
	case PV_EUNAVAIL:
		return "unavailable";
	default:
		return "internal";
	}
}

/* Output. */

void
api_json_kerror(struct pv_json *j, const char *code, const char *message)
{
	pv_json_key(j, "error");
	pv_json_obj(j);
	pv_json_kstr(j, "code", code);
	pv_json_kstr(j, "message", message);
	pv_json_close(j);
}

void
api_json_error(struct pv_json *j, const char *code, const char *message)
{
	pv_json_obj(j);
	api_json_kerror(j, code, message);
	pv_json_close(j);
}

/* Why one token got no answer, in words (its code says it for machines). */
static const char *
reveal_message(pv_status st)
{
	switch (st) {
	case PV_ETOKEN:
		return "not a token: tok_ and 22 base64url characters";
	case PV_ENOTFOUND:
		return "no such token";
	case PV_EFORBIDDEN:
		return "its field is not among this key's fields";
	case PV_ECONSENT:
		return "the person gave no marketing consent";
	default:
		return pv_strerror(st);
	}
}

void
api_json_reveal(struct pv_json *j, size_t index, const char *token,
    size_t len, const struct vault_reveal *r)
{
	pv_json_obj(j);
	pv_json_ku64(j, "index", index);
	/* Only a token is echoed: a mistaken value never comes back. */
	if (vault_token_valid(token, len)) {
		pv_json_key(j, "token");
		pv_json_strn(j, token, len);
	}
	if (r->status != PV_OK) {
		api_json_kerror(j, api_error_code(r->status),
		    reveal_message(r->status));
		pv_json_close(j);
		return;
	}
	pv_json_kstr(j, "field", r->field);
	if (r->value != NULL) {
		pv_json_key(j, "value");
		pv_json_strn(j, r->value, r->len);
	} else {
		pv_json_kstr(j, "masked", r->masked);
		if (r->pseudonym[0] != '\0')
			pv_json_kstr(j, "pseudonym", r->pseudonym);
	}
	pv_json_close(j);
}

void
api_json_put_result(struct pv_json *j, const struct vault_record_in *rec,
    const struct vault_put_result *res)
{
	pv_json_obj(j);
	pv_json_kstr(j, "id", res->id);
	pv_json_key(j, "tokens");
	pv_json_obj(j);
	for (size_t i = 0; i < rec->nfields; i++) {
		pv_json_keyn(j, rec->fields[i].name, rec->fields[i].namelen);
		pv_json_str(j, res->tokens[i]);
	}
	pv_json_close(j);
	pv_json_close(j);
}

/* Request bodies. */

struct api_records {
	json_t			*root;
	size_t			 n;
	struct vault_record_in	*in;
	struct vault_field	*fields;	/* every record's, in a row */
	size_t			*off;		/* record i's first field */
	pv_status		*status;
	char			(*detail)[API_ERR_MAX];
};

/* Decode one record object into r's slot i. */
static pv_status
record_decode(struct api_records *r, size_t i, json_t *obj,
    char err[static API_ERR_MAX])
{
	static const char *const members[] = { "fields", "consent",
	    "retention_days", NULL };
	static const char *const consent_members[] = { "marketing", NULL };
	struct vault_record_in *in = &r->in[i];
	struct vault_field *f = r->fields + r->off[i];
	json_t *fields, *consent, *days, *mk, *val;
	const char *name;
	pv_status rc;
	size_t n = 0;

	if (!json_is_object(obj)) {
		return bad(err, PV_EVALUE, "a record must be an object");
	}
	if ((rc = only_members(obj, members, "record", err)) != PV_OK)
		return rc;
	fields = json_object_get(obj, "fields");
	if (!json_is_object(fields)) {
		return bad(err, PV_EVALUE, "\"fields\" must be an "
		    "object of strings");
	}
	if (json_object_size(fields) > PV_FIELDS_MAX) {
		return bad(err, PV_ETOOBIG, "more than %d fields",
		    PV_FIELDS_MAX);
	}
	json_object_foreach(fields, name, val) {
		f[n].name = name;
		f[n].namelen = strlen(name);
		if (!json_is_string(val)) {
			vault_field_why(err, &f[n], n, "value must be a "
			    "string");
			return PV_EVALUE;
		}
		f[n].value = json_string_value(val);
		f[n].len = json_string_length(val);
		n++;
	}
	in->fields = f;
	in->nfields = n;
	if ((consent = json_object_get(obj, "consent")) != NULL) {
		if (!json_is_object(consent)) {
			return bad(err, PV_EVALUE, "\"consent\" must be "
			    "an object");
		}
		if ((rc = only_members(consent, consent_members, "consent",
		    err)) != PV_OK)
			return rc;
		if ((mk = json_object_get(consent, "marketing")) != NULL) {
			if (!json_is_boolean(mk)) {
				return bad(err, PV_EVALUE, "\"marketing\" "
				    "must be true or false");
			}
			in->marketing = json_is_true(mk);
		}
	}
	if ((days = json_object_get(obj, "retention_days")) != NULL) {
		if (!json_is_integer(days) || json_integer_value(days) < 1 ||
		    json_integer_value(days) > VAULT_RETENTION_DAYS_MAX) {
			return bad(err, PV_EVALUE, "\"retention_days\" "
			    "must be an integer from 1 to %d",
			    VAULT_RETENTION_DAYS_MAX);
		}
		in->retention_days = (uint32_t)json_integer_value(days);
	}
	return PV_OK;
}

pv_status
api_records_parse(const char *text, size_t len, int batch, size_t max,
    struct api_records **out, char err[static API_ERR_MAX])
{
	static const char *const members[] = { "records", NULL };
	struct api_records *r;
	json_t *list = NULL;
	size_t nfields = 0;
	pv_status rc = PV_OK;

	err[0] = '\0';
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return PV_ENOMEM;
	if ((r->root = load(text, len, batch ? members : NULL, "body", err,
	    &rc)) == NULL)
		goto out;
	if (batch) {
		list = json_object_get(r->root, "records");
		if (!json_is_array(list) || json_array_size(list) == 0) {
			rc = bad(err, PV_EVALUE, "\"records\" must be "
			    "a non-empty array");
			goto out;
		}
		r->n = json_array_size(list);
		if (r->n > max) {
			rc = bad(err, PV_ETOOBIG, "more than %zu "
			    "records", max);
			goto out;
		}
	} else
		r->n = 1;
	/* Room for exactly the fields there are (a record over the limit
	 * is refused before it is read). */
	if ((r->off = calloc(r->n, sizeof(*r->off))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	for (size_t i = 0, total = 0; i < r->n; i++) {
		json_t *rec = batch ? json_array_get(list, i) : r->root;
		json_t *fl = json_is_object(rec) ?
		    json_object_get(rec, "fields") : NULL;
		size_t k = json_is_object(fl) ? json_object_size(fl) : 0;

		r->off[i] = total;
		total += k <= PV_FIELDS_MAX ? k : 0;
		nfields = total;
	}
	if ((r->in = calloc(r->n, sizeof(*r->in))) == NULL ||
	    (r->fields = calloc(nfields ? nfields : 1,
	    sizeof(*r->fields))) == NULL ||
	    (r->status = calloc(r->n, sizeof(*r->status))) == NULL ||
	    (r->detail = calloc(r->n, sizeof(*r->detail))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < r->n; i++) {
		r->status[i] = record_decode(r, i, batch ?
		    json_array_get(list, i) : r->root, r->detail[i]);
		if (!batch && r->status[i] != PV_OK) {
			rc = r->status[i];
			memcpy(err, r->detail[0], API_ERR_MAX);
			goto out;
		}
	}
	*out = r;
	r = NULL;
out:
	api_records_free(r);
	return rc;
}

size_t
api_records_count(const struct api_records *r)
{
	return r->n;
}

struct vault_record_in *
api_records_in(struct api_records *r, size_t i)
{
	return &r->in[i];
}

pv_status
api_records_status(const struct api_records *r, size_t i,
    const char **detail)
{
	*detail = r->detail[i];
	return r->status[i];
}

void
api_records_free(struct api_records *r)
{
	if (r == NULL)
		return;
	json_decref(r->root);
	free(r->in);
	free(r->fields);
	free(r->off);
	free(r->status);
	free(r->detail);
	free(r);
}

pv_status
api_detok_parse(const char *text, size_t len, size_t max,
    struct api_detok **out, char err[static API_ERR_MAX])
{
	static const char *const members[] = { "tokens", "purpose", "reason",
	    NULL };
	struct api_detok *d;
	json_t *root, *toks, *purpose, *reason;
	pv_status rc = PV_OK;

	err[0] = '\0';
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return PV_ENOMEM;
	if ((root = load(text, len, members, "body", err, &rc)) == NULL)
		goto out;
	d->root = root;
	toks = json_object_get(root, "tokens");
	purpose = json_object_get(root, "purpose");
	reason = json_object_get(root, "reason");
	if (!json_is_array(toks) || json_array_size(toks) == 0) {
		rc = bad(err, PV_EVALUE, "\"tokens\" must be a "
		    "non-empty array of strings");
		goto out;
	}
	if ((d->n = json_array_size(toks)) > max) {
		rc = bad(err, PV_ETOOBIG, "more than %zu tokens", max);
		goto out;
	}
	if (!json_is_string(purpose)) {
		rc = bad(err, PV_EVALUE, "\"purpose\" must be a "
		    "string");
		goto out;
	}
	if (vault_purpose_parse(json_string_value(purpose),
	    json_string_length(purpose), &d->purpose) != PV_OK) {
		rc = bad(err, PV_EVALUE, "unknown purpose");
		goto out;
	}
	if (reason != NULL && !json_is_string(reason)) {
		rc = bad(err, PV_EVALUE, "\"reason\" must be a "
		    "string");
		goto out;
	}
	d->reason = reason ? json_string_value(reason) : NULL;
	if ((d->tokens = calloc(d->n, sizeof(*d->tokens))) == NULL ||
	    (d->lens = calloc(d->n, sizeof(*d->lens))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < d->n; i++) {
		json_t *t = json_array_get(toks, i);

		if (!json_is_string(t)) {
			rc = bad(err, PV_EVALUE, "\"tokens\" must be "
			    "a non-empty array of strings");
			goto out;
		}
		d->tokens[i] = json_string_value(t);
		d->lens[i] = json_string_length(t);
	}
	*out = d;
	d = NULL;
out:
	api_detok_free(d);
	return rc;
}

void
api_detok_free(struct api_detok *d)
{
	if (d == NULL)
		return;
	json_decref(d->root);
	free(d->tokens);
	free(d->lens);
	free(d);
}

pv_status
api_lookup_parse(const char *text, size_t len, size_t max,
    struct api_lookup **out, char err[static API_ERR_MAX])
{
	static const char *const members[] = { "field", "value", "values",
	    "purpose", "reason", NULL };
	struct api_lookup *l;
	json_t *root, *field, *value, *values, *purpose, *reason;
	pv_status rc = PV_OK;

	err[0] = '\0';
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return PV_ENOMEM;
	if ((root = load(text, len, members, "body", err, &rc)) == NULL)
		goto out;
	l->root = root;
	field = json_object_get(root, "field");
	value = json_object_get(root, "value");
	values = json_object_get(root, "values");
	if (!json_is_string(field)) {
		rc = bad(err, PV_EVALUE, "\"field\" must be a string");
		goto out;
	}
	l->field = json_string_value(field);
	l->fieldlen = json_string_length(field);
	/* One value, or a batch of them: never both. */
	if ((value == NULL) == (values == NULL)) {
		rc = bad(err, PV_EVALUE, "give either \"value\" or "
		    "\"values\"");
		goto out;
	}
	if (value != NULL && !json_is_string(value)) {
		rc = bad(err, PV_EVALUE, "\"value\" must be a string");
		goto out;
	}
	if (values != NULL) {
		if (!json_is_array(values) || json_array_size(values) == 0) {
			rc = bad(err, PV_EVALUE, "\"values\" must be a "
			    "non-empty array of strings");
			goto out;
		}
		if (json_array_size(values) > max) {
			rc = bad(err, PV_ETOOBIG, "more than %zu values",
			    max);
			goto out;
		}
	}
	/* A look-up states its purpose as a detokenize does. */
	purpose = json_object_get(root, "purpose");
	reason = json_object_get(root, "reason");
	if (!json_is_string(purpose)) {
		rc = bad(err, PV_EVALUE, "\"purpose\" must be a string");
		goto out;
	}
	if (vault_purpose_parse(json_string_value(purpose),
	    json_string_length(purpose), &l->purpose) != PV_OK) {
		rc = bad(err, PV_EVALUE, "unknown purpose");
		goto out;
	}
	if (reason != NULL && !json_is_string(reason)) {
		rc = bad(err, PV_EVALUE, "\"reason\" must be a string");
		goto out;
	}
	l->reason = reason ? json_string_value(reason) : NULL;
	l->batch = values != NULL;
	l->n = l->batch ? json_array_size(values) : 1;
	if ((l->values = calloc(l->n, sizeof(*l->values))) == NULL ||
	    (l->lens = calloc(l->n, sizeof(*l->lens))) == NULL) {
		rc = PV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < l->n; i++) {
		json_t *v = l->batch ? json_array_get(values, i) : value;

		if (!json_is_string(v)) {
			rc = bad(err, PV_EVALUE, "\"values\" must be a "
			    "non-empty array of strings");
			goto out;
		}
		l->values[i] = json_string_value(v);
		l->lens[i] = json_string_length(v);
	}
	*out = l;
	l = NULL;
out:
	api_lookup_free(l);
	return rc;
}

void
api_lookup_free(struct api_lookup *l)
{
	if (l == NULL)
		return;
	json_decref(l->root);
	free(l->values);
	free(l->lens);
	free(l);
}

/* Receipts. */

/* n * 16 bytes as n * 22 base64url characters, and back. */
static void
b64url_blocks(char *out, const uint8_t *in, size_t nblocks)
{
	for (size_t i = 0; i < nblocks; i++)
		pv_b64url_encode16(out + i * PV_B64URL16_LEN, in + i * 16);
	out[nblocks * PV_B64URL16_LEN] = '\0';
}

static pv_status
b64url_unblocks(uint8_t *out, const char *in, size_t len, size_t nblocks)
{
	if (len != nblocks * PV_B64URL16_LEN)
		return PV_EVALUE;
	for (size_t i = 0; i < nblocks; i++)
		if (pv_b64url_decode16(out + i * 16, in + i * PV_B64URL16_LEN,
		    PV_B64URL16_LEN) != PV_OK)
			return PV_EVALUE;
	return PV_OK;
}

void
api_pubkey_encode(char out[static API_PUBKEY_STRLEN + 1],
    const uint8_t pub[static PV_ED25519_LEN])
{
	memcpy(out, "pvpub_", 6);
	b64url_blocks(out + 6, pub, PV_ED25519_LEN / 16);
}

pv_status
api_pubkey_decode(uint8_t pub[static PV_ED25519_LEN], const char *s,
    size_t len)
{
	if (len != API_PUBKEY_STRLEN || memcmp(s, "pvpub_", 6) != 0)
		return PV_EVALUE;
	return b64url_unblocks(pub, s + 6, len - 6, PV_ED25519_LEN / 16);
}

void
api_json_receipt(struct pv_json *j, const struct vault_receipt *r)
{
	char sig[4 * PV_B64URL16_LEN + 1];

	b64url_blocks(sig, r->sig, PV_ED25519_SIG_LEN / 16);
	pv_json_obj(j);
	pv_json_key(j, "receipt");
	pv_json_obj(j);
	pv_json_kstr(j, "vault", r->vault_id);
	pv_json_kstr(j, "record", r->id);
	pv_json_ku64(j, "shredded_at", r->shredded_at);
	pv_json_ku64(j, "kek_version", r->kek_version);
	pv_json_ku64(j, "audit_seq", r->audit_seq);
	if (r->sign_version != 0)
		pv_json_ku64(j, "signing_key_version", r->sign_version);
	pv_json_kstr(j, "reason", r->reason);
	pv_json_close(j);
	pv_json_kstr(j, "signature", sig);
	pv_json_close(j);
}

void
api_json_signing_key(struct pv_json *j, const struct vault_signing_key *k)
{
	char text[API_PUBKEY_STRLEN + 1];

	api_pubkey_encode(text, k->pub);
	pv_json_obj(j);
	pv_json_ku64(j, "version", k->version);
	pv_json_kstr(j, "public_key", text);
	pv_json_kstr(j, "state", vault_key_state_name(k->state));
	pv_json_close(j);
}

/* Copy a string member of at most cap - 1 bytes. */
static pv_status
get_str(json_t *obj, const char *name, char *out, size_t cap)
{
	json_t *v = json_object_get(obj, name);

	if (!json_is_string(v) || json_string_length(v) >= cap ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return PV_EVALUE;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return PV_OK;
}

static pv_status
get_uint(json_t *obj, const char *name, uint64_t max, uint64_t *out)
{
	json_t *v = json_object_get(obj, name);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return PV_EVALUE;
	*out = (uint64_t)json_integer_value(v);
	return PV_OK;
}

pv_status
api_receipt_parse(const char *text, size_t len, struct vault_receipt *out,
    char err[static API_ERR_MAX])
{
	static const char *const top[] = { "receipt", "signature", NULL };
	static const char *const fields[] = { "vault", "record", "shredded_at",
	    "kek_version", "audit_seq", "signing_key_version", "reason", NULL };
	struct vault_receipt r;
	char sig[4 * PV_B64URL16_LEN + 1];
	json_t *root, *rec;
	uint64_t kv, sv = 0;
	pv_status rc = PV_OK;

	err[0] = '\0';
	memset(&r, 0, sizeof(r));
	if ((root = load(text, len, top, "receipt file", err, &rc)) == NULL)
		return rc;
	rec = json_object_get(root, "receipt");
	if (!json_is_object(rec)) {
		rc = bad(err, PV_EVALUE, "\"receipt\" must be an "
		    "object");
		goto out;
	}
	if ((rc = only_members(rec, fields, "receipt", err)) != PV_OK)
		goto out;
	if ((rc = get_str(rec, "vault", r.vault_id, sizeof(r.vault_id))) !=
	    PV_OK || (rc = get_str(rec, "record", r.id, sizeof(r.id))) !=
	    PV_OK || (rc = get_str(rec, "reason", r.reason,
	    sizeof(r.reason))) != PV_OK ||
	    (rc = get_uint(rec, "shredded_at", UINT64_MAX, &r.shredded_at)) !=
	    PV_OK || (rc = get_uint(rec, "kek_version", UINT32_MAX, &kv)) !=
	    PV_OK || (rc = get_uint(rec, "audit_seq", UINT64_MAX,
	    &r.audit_seq)) != PV_OK ||
	    /* Absent in receipts made before: their message names none. */
	    (json_object_get(rec, "signing_key_version") != NULL &&
	    ((rc = get_uint(rec, "signing_key_version", UINT32_MAX, &sv)) !=
	    PV_OK || (sv == 0 && (rc = PV_EVALUE) != PV_OK))) ||
	    (rc = get_str(root, "signature", sig, sizeof(sig))) != PV_OK ||
	    (rc = b64url_unblocks(r.sig, sig, strlen(sig),
	    PV_ED25519_SIG_LEN / 16)) != PV_OK) {
		(void)snprintf(err, API_ERR_MAX, "a receipt member is missing "
		    "or malformed");
		goto out;
	}
	r.kek_version = (uint32_t)kv;
	r.sign_version = (uint32_t)sv;
	*out = r;
out:
	json_decref(root);
	return rc;
}

/* Audit archives. */

void
api_json_archive_head(struct pv_json *j, const struct vault_archive_head *h)
{
	pv_json_obj(j);
	pv_json_key(j, "archive");
	pv_json_obj(j);
	pv_json_ku64(j, "format", API_ARCHIVE_FORMAT);
	pv_json_kstr(j, "vault", h->vault_id);
	pv_json_ku64(j, "first_seq", h->first);
	pv_json_ku64(j, "last_seq", h->last);
	pv_json_ku64(j, "count", h->count);
	pv_json_ku64(j, "before", h->before);
	pv_json_ku64(j, "created", h->created);
	pv_json_ku64(j, "signing_key_version", h->sign_version);
	pv_json_close(j);
	pv_json_close(j);
}

pv_status
api_archive_head_parse(const char *text, size_t len,
    struct vault_archive_head *out, char err[static API_ERR_MAX])
{
	static const char *const top[] = { "archive", NULL };
	static const char *const members[] = { "format", "vault",
	    "first_seq", "last_seq", "count", "before", "created",
	    "signing_key_version", NULL };
	struct vault_archive_head h;
	json_t *root, *a;
	uint64_t fmt, sv;
	pv_status rc;

	err[0] = '\0';
	memset(&h, 0, sizeof(h));
	if ((root = load(text, len, top, "archive header", err, &rc)) == NULL)
		return rc;
	a = json_object_get(root, "archive");
	if (!json_is_object(a)) {
		rc = bad(err, PV_EVALUE, "not an archive header");
		goto out;
	}
	if ((rc = only_members(a, members, "archive header", err)) != PV_OK)
		goto out;
	if ((rc = get_uint(a, "format", UINT32_MAX, &fmt)) != PV_OK ||
	    fmt != API_ARCHIVE_FORMAT) {
		rc = bad(err, PV_EVALUE, "not an archive of format %d",
		    API_ARCHIVE_FORMAT);
		goto out;
	}
	if ((rc = get_str(a, "vault", h.vault_id, sizeof(h.vault_id))) !=
	    PV_OK || strlen(h.vault_id) != 2 * VAULT_VAULT_ID_LEN ||
	    (rc = get_uint(a, "first_seq", UINT64_MAX, &h.first)) != PV_OK ||
	    (rc = get_uint(a, "last_seq", UINT64_MAX, &h.last)) != PV_OK ||
	    (rc = get_uint(a, "count", UINT64_MAX, &h.count)) != PV_OK ||
	    (rc = get_uint(a, "before", UINT64_MAX, &h.before)) != PV_OK ||
	    (rc = get_uint(a, "created", UINT64_MAX, &h.created)) != PV_OK ||
	    (rc = get_uint(a, "signing_key_version", UINT32_MAX, &sv)) !=
	    PV_OK || h.first == 0 || h.last < h.first ||
	    h.count != h.last - h.first + 1 || sv == 0) {
		rc = bad(err, PV_EVALUE, "an archive header member is "
		    "missing or malformed");
		goto out;
	}
	h.sign_version = (uint32_t)sv;
	*out = h;
out:
	json_decref(root);
	return rc;
}

void
api_json_archive_end(struct pv_json *j, uint64_t events,
    const uint8_t hash[static PV_HMAC_LEN],
    const uint8_t sig[static PV_ED25519_SIG_LEN])
{
	char hx[2 * PV_HMAC_LEN + 1], s[4 * PV_B64URL16_LEN + 1];

	pv_hex_encode(hx, hash, PV_HMAC_LEN);
	b64url_blocks(s, sig, PV_ED25519_SIG_LEN / 16);
	pv_json_obj(j);
	pv_json_key(j, "archive_end");
	pv_json_obj(j);
	pv_json_ku64(j, "events", events);
	pv_json_kstr(j, "hash", hx);
	pv_json_close(j);
	pv_json_kstr(j, "signature", s);
	pv_json_close(j);
}

/* Lower-case hex of exactly n bytes. */
static pv_status
hex_decode(uint8_t *out, size_t n, const char *s)
{
	if (strlen(s) != 2 * n)
		return PV_EVALUE;
	for (size_t i = 0; i < 2 * n; i++) {
		int c = s[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return PV_EVALUE;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(d << 4);
		else
			out[i / 2] |= (uint8_t)d;
	}
	return PV_OK;
}

pv_status
api_archive_end_parse(const char *text, size_t len, uint64_t *events,
    uint8_t hash[static PV_HMAC_LEN], uint8_t sig[static PV_ED25519_SIG_LEN],
    char err[static API_ERR_MAX])
{
	static const char *const top[] = { "archive_end", "signature", NULL };
	static const char *const members[] = { "events", "hash", NULL };
	char hx[2 * PV_HMAC_LEN + 1], s[4 * PV_B64URL16_LEN + 1];
	json_t *root, *a;
	pv_status rc;

	err[0] = '\0';
	if ((root = load(text, len, top, "archive end", err, &rc)) == NULL)
		return rc;
	a = json_object_get(root, "archive_end");
	if (!json_is_object(a)) {
		rc = bad(err, PV_EVALUE, "not an archive's end");
		goto out;
	}
	if ((rc = only_members(a, members, "archive end", err)) != PV_OK)
		goto out;
	if ((rc = get_uint(a, "events", UINT64_MAX, events)) != PV_OK ||
	    (rc = get_str(a, "hash", hx, sizeof(hx))) != PV_OK ||
	    (rc = hex_decode(hash, PV_HMAC_LEN, hx)) != PV_OK ||
	    (rc = get_str(root, "signature", s, sizeof(s))) != PV_OK ||
	    (rc = b64url_unblocks(sig, s, strlen(s),
	    PV_ED25519_SIG_LEN / 16)) != PV_OK)
		rc = bad(err, PV_EVALUE, "an archive end member is missing or "
		    "malformed");
out:
	json_decref(root);
	return rc;
}

pv_status
api_archive_event_parse(const char *text, size_t len, uint64_t *seq,
    uint64_t *time, char err[static API_ERR_MAX])
{
	json_t *root;
	pv_status rc;

	err[0] = '\0';
	if ((root = load(text, len, NULL, "event", err, &rc)) == NULL)
		return rc;
	if ((rc = get_uint(root, "seq", UINT64_MAX, seq)) != PV_OK ||
	    (rc = get_uint(root, "time", UINT64_MAX, time)) != PV_OK)
		rc = bad(err, PV_EVALUE, "not an event: \"seq\" or \"time\" "
		    "missing or malformed");
	json_decref(root);
	return rc;
}

/* Bodies of the person's requests. */

struct api_patch {
	json_t			*root;
	struct vault_field	 fields[VAULT_FIELDS_PATCH_MAX];
	size_t			 n;
};

pv_status
api_patch_parse(const char *text, size_t len, struct api_patch **out,
    char err[static API_ERR_MAX])
{
	static const char *const members[] = { "fields", NULL };
	struct api_patch *p;
	const char *name;
	json_t *fields, *val;
	pv_status rc = PV_OK;

	err[0] = '\0';
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return PV_ENOMEM;
	if ((p->root = load(text, len, members, "body", err, &rc)) == NULL)
		goto out;
	fields = json_object_get(p->root, "fields");
	if (!json_is_object(fields) || json_object_size(fields) == 0) {
		rc = bad(err, PV_EVALUE, "\"fields\" must be a "
		    "non-empty object of strings or nulls");
		goto out;
	}
	if (json_object_size(fields) > VAULT_FIELDS_PATCH_MAX) {
		rc = bad(err, PV_ETOOBIG, "more than %d fields",
		    VAULT_FIELDS_PATCH_MAX);
		goto out;
	}
	json_object_foreach(fields, name, val) {
		struct vault_field *f = &p->fields[p->n++];

		f->name = name;
		f->namelen = strlen(name);
		if (json_is_null(val))
			continue;	/* value NULL: remove the field */
		if (!json_is_string(val)) {
			rc = bad(err, PV_EVALUE, "every field value "
			    "must be a string or null");
			goto out;
		}
		f->value = json_string_value(val);
		f->len = json_string_length(val);
	}
	*out = p;
	p = NULL;
out:
	api_patch_free(p);
	return rc;
}

const struct vault_field *
api_patch_fields(const struct api_patch *p, size_t *n)
{
	*n = p->n;
	return p->fields;
}

void
api_patch_free(struct api_patch *p)
{
	if (p == NULL)
		return;
	json_decref(p->root);
	free(p);
}

/*
 * A small object of booleans and one optional string:
 * {"marketing":false,"notices":true} or {"hold":true,"reason":"…"}.
 * Members not named are PV_EMEMBER; a named boolean that is absent is -1.
 */
pv_status
api_flags_parse(const char *text, size_t len, const char *const *bools,
    int *vals, const char *str, char *sval, size_t scap,
    char err[static API_ERR_MAX])
{
	const char *members[8];
	json_t *root, *v;
	size_t n = 0;
	pv_status rc = PV_OK;

	err[0] = '\0';
	for (; bools[n] != NULL && n < 6; n++)
		members[n] = bools[n];
	if (str != NULL)
		members[n++] = str;
	members[n] = NULL;
	if ((root = load(text, len, members, "body", err, &rc)) == NULL)
		return rc;
	for (size_t i = 0; bools[i] != NULL && i < 6; i++) {
		v = json_object_get(root, bools[i]);
		if (v != NULL && !json_is_boolean(v)) {
			rc = bad(err, PV_EVALUE, "\"%s\" must be true "
			    "or false", bools[i]);
			goto out;
		}
		vals[i] = v == NULL ? -1 : json_is_true(v);
	}
	if (str != NULL) {
		sval[0] = '\0';
		v = json_object_get(root, str);
		if (v != NULL && (!json_is_string(v) ||
		    json_string_length(v) >= scap ||
		    strlen(json_string_value(v)) != json_string_length(v))) {
			rc = bad(err, PV_EVALUE, "\"%s\" must be a "
			    "string of fewer than %zu bytes", str, scap);
			goto out;
		}
		if (v != NULL)
			memcpy(sval, json_string_value(v),
			    json_string_length(v) + 1);
	}
out:
	json_decref(root);
	return rc;
}

pv_status
api_reason_parse(const char *text, size_t len, char *reason, size_t cap,
    int *given, char err[static API_ERR_MAX])
{
	static const char *const members[] = { "reason", NULL };
	json_t *root, *v;
	pv_status rc = PV_OK;

	err[0] = '\0';
	if ((root = load(text, len, members, "body", err, &rc)) == NULL)
		return rc;
	v = json_object_get(root, "reason");
	if (v != NULL && (!json_is_string(v) || json_string_length(v) >= cap ||
	    strlen(json_string_value(v)) != json_string_length(v))) {
		rc = bad(err, PV_EVALUE, "\"reason\" must be a string of "
		    "fewer than %zu bytes", cap);
		goto out;
	}
	reason[0] = '\0';
	if (v != NULL)
		memcpy(reason, json_string_value(v), json_string_length(v) + 1);
	*given = v != NULL;
out:
	json_decref(root);
	return rc;
}

void
api_json_event(struct pv_json *j, const struct vault_audit_entry *e)
{
	pv_json_obj(j);
	pv_json_ku64(j, "seq", e->seq);
	pv_json_ku64(j, "time", e->time);
	pv_json_kstr(j, "actor", e->actor);
	pv_json_kstr(j, "action", e->action);
	pv_json_kstr(j, "outcome", e->ok ? "allowed" : "denied");
	if (e->code[0] != '\0')
		pv_json_kstr(j, "code", e->code);
	if (e->purpose >= 0)
		pv_json_kstr(j, "purpose",
		    vault_purpose_name((enum vault_purpose)e->purpose));
	if (e->reason[0] != '\0')
		pv_json_kstr(j, "reason", e->reason);
	if (e->request_id[0] != '\0')
		pv_json_kstr(j, "request_id", e->request_id);
	pv_json_key(j, "records");
	pv_json_arr(j);
	for (size_t i = 0; i < e->nrecs; i++)
		pv_json_str(j, e->ids[i]);
	pv_json_close(j);
	pv_json_key(j, "fields");
	pv_json_arr(j);
	for (size_t i = 0; i < e->nfields; i++)
		pv_json_str(j, e->fields[i]);
	pv_json_close(j);
	pv_json_key(j, "items");
	pv_json_arr(j);
	for (size_t i = 0; i < e->nitems; i++) {
		static const char *const outcomes[] = {
			[VAULT_ITEM_REVEALED] = "revealed",
			[VAULT_ITEM_MASKED] = "masked",
			[VAULT_ITEM_REFUSED] = "refused",
		};
		const struct vault_audit_item *it = &e->items[i];

		pv_json_obj(j);
		if (it->id[0] != '\0')
			pv_json_kstr(j, "record", it->id);
		if (it->field[0] != '\0')
			pv_json_kstr(j, "field", it->field);
		/* The vault decodes only these three. */
		pv_json_kstr(j, "outcome", outcomes[it->outcome]);
		if (it->outcome == VAULT_ITEM_REFUSED)
			pv_json_kstr(j, "code", api_error_code(it->code));
		pv_json_close(j);
	}
	pv_json_close(j);
	pv_json_close(j);
}
