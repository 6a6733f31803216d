/*
 * json.c: the JSON codec.  The only file that includes jansson; its
 * NULL / -1 conventions end here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api_int.h"

struct api_record {
	json_t			*root;
	struct vault_field	 fields[PV_FIELDS_MAX];
	struct vault_record_in	 in;
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
	json_error_t jerr;
	const char *name;
	json_t *val;
	size_t n = 0;
	pv_status rc;

	err[0] = '\0';
	if (len > API_BODY_MAX) {
		(void)snprintf(err, API_ERR_MAX, "input over %u bytes",
		    API_BODY_MAX);
		return PV_ETOOBIG;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return PV_ENOMEM;
	r->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (r->root == NULL) {
		/*
		 * jansson's own text quotes the input near the error, which
		 * may be a personal value: say what and where, never that.
		 */
		(void)snprintf(err, API_ERR_MAX, "line %d column %d: %s",
		    jerr.line, jerr.column, json_error_what(&jerr));
		pv_cleanse(&jerr, sizeof(jerr));
		rc = PV_EJSON;
		goto out;
	}
	if (!json_is_object(r->root)) {
		(void)snprintf(err, API_ERR_MAX, "expected a json object");
		rc = PV_EJSON;
		goto out;
	}
	if (json_object_size(r->root) > PV_FIELDS_MAX) {
		(void)snprintf(err, API_ERR_MAX, "more than %d fields",
		    PV_FIELDS_MAX);
		rc = PV_ETOOBIG;
		goto out;
	}
	json_object_foreach(r->root, name, val) {
		struct vault_field *f = &r->fields[n++];

		f->name = name;
		f->namelen = strlen(name);
		if (!json_is_string(val)) {
			if (pv_field_name_valid(f->name, f->namelen))
				(void)snprintf(err, API_ERR_MAX, "field %s: "
				    "value must be a string", name);
			else
				(void)snprintf(err, API_ERR_MAX, "every "
				    "value must be a string");
			rc = PV_EJSON;
			goto out;
		}
		f->value = json_string_value(val);
		f->len = json_string_length(val);
	}
	r->in.fields = r->fields;
	r->in.nfields = n;
	*out = r;
	r = NULL;
	rc = PV_OK;
out:
	api_record_free(r);
	return rc;
}

const struct vault_record_in *
api_record_in(const struct api_record *r)
{
	return &r->in;
}

void
api_record_free(struct api_record *r)
{
	if (r == NULL)
		return;
	json_decref(r->root);
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

pv_status
api_json_quote(struct pv_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;
	pv_status rc;

	if ((rc = pv_buf_add(b, "\"", 1)) != PV_OK)
		return rc;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if ((rc = pv_buf_add(b, s + run, i - run)) != PV_OK)
			return rc;
		run = i + 1;
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		if ((rc = pv_buf_add(b, esc, elen)) != PV_OK)
			return rc;
	}
	if ((rc = pv_buf_add(b, s + run, len - run)) != PV_OK)
		return rc;
	return pv_buf_add(b, "\"", 1);
}

pv_status
api_json_put_result(struct pv_buf *b, const struct vault_record_in *rec,
    const struct vault_put_result *res)
{
	pv_status rc;

	if ((rc = pv_buf_printf(b, "{\"id\":\"%s\",\"tokens\":{", res->id)) !=
	    PV_OK)
		return rc;
	for (size_t i = 0; i < rec->nfields; i++) {
		if (i > 0 && (rc = pv_buf_add(b, ",", 1)) != PV_OK)
			return rc;
		if ((rc = api_json_quote(b, rec->fields[i].name,
		    rec->fields[i].namelen)) != PV_OK ||
		    (rc = pv_buf_printf(b, ":\"%s\"", res->tokens[i])) != PV_OK)
			return rc;
	}
	return pv_buf_add(b, "}}", 2);
}

/* Request bodies. */

static json_t *
load(const char *text, size_t len, char err[static API_ERR_MAX],
    pv_status *rc)
{
	json_error_t jerr;
	json_t *root;

	if ((root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL) {
		(void)snprintf(err, API_ERR_MAX, "line %d column %d: %s",
		    jerr.line, jerr.column, json_error_what(&jerr));
		pv_cleanse(&jerr, sizeof(jerr));
		*rc = PV_EJSON;
		return NULL;
	}
	if (!json_is_object(root)) {
		(void)snprintf(err, API_ERR_MAX, "expected a json object");
		json_decref(root);
		*rc = PV_EJSON;
		return NULL;
	}
	return root;
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
				(void)snprintf(err, API_ERR_MAX, "%s: unknown "
				    "member \"%s\"", where, name);
			else
				(void)snprintf(err, API_ERR_MAX, "%s: unknown "
				    "member", where);
			return PV_EMEMBER;
		}
	}
	return PV_OK;
}

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
		(void)snprintf(err, API_ERR_MAX, "a record must be an object");
		return PV_EVALUE;
	}
	if ((rc = only_members(obj, members, "record", err)) != PV_OK)
		return rc;
	fields = json_object_get(obj, "fields");
	if (!json_is_object(fields)) {
		(void)snprintf(err, API_ERR_MAX, "\"fields\" must be an "
		    "object of strings");
		return PV_EVALUE;
	}
	if (json_object_size(fields) > PV_FIELDS_MAX) {
		(void)snprintf(err, API_ERR_MAX, "more than %d fields",
		    PV_FIELDS_MAX);
		return PV_ETOOBIG;
	}
	json_object_foreach(fields, name, val) {
		f[n].name = name;
		f[n].namelen = strlen(name);
		if (!json_is_string(val)) {
			(void)snprintf(err, API_ERR_MAX, "every field value "
			    "must be a string");
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
			(void)snprintf(err, API_ERR_MAX, "\"consent\" must be "
			    "an object");
			return PV_EVALUE;
		}
		if ((rc = only_members(consent, consent_members, "consent",
		    err)) != PV_OK)
			return rc;
		if ((mk = json_object_get(consent, "marketing")) != NULL) {
			if (!json_is_boolean(mk)) {
				(void)snprintf(err, API_ERR_MAX, "\"marketing\" "
				    "must be true or false");
				return PV_EVALUE;
			}
			in->marketing = json_is_true(mk);
		}
	}
	if ((days = json_object_get(obj, "retention_days")) != NULL) {
		if (!json_is_integer(days) || json_integer_value(days) < 1 ||
		    json_integer_value(days) > 36500) {
			(void)snprintf(err, API_ERR_MAX, "\"retention_days\" "
			    "must be an integer from 1 to 36500");
			return PV_EVALUE;
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
	if ((r->root = load(text, len, err, &rc)) == NULL)
		goto out;
	if (batch) {
		if ((rc = only_members(r->root, members, "body", err)) !=
		    PV_OK)
			goto out;
		list = json_object_get(r->root, "records");
		if (!json_is_array(list) || json_array_size(list) == 0) {
			(void)snprintf(err, API_ERR_MAX, "\"records\" must be "
			    "a non-empty array");
			rc = PV_EVALUE;
			goto out;
		}
		r->n = json_array_size(list);
		if (r->n > max) {
			(void)snprintf(err, API_ERR_MAX, "more than %zu "
			    "records", max);
			rc = PV_ETOOBIG;
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
	if ((root = load(text, len, err, &rc)) == NULL)
		goto out;
	d->root = root;
	if ((rc = only_members(root, members, "body", err)) != PV_OK)
		goto out;
	toks = json_object_get(root, "tokens");
	purpose = json_object_get(root, "purpose");
	reason = json_object_get(root, "reason");
	if (!json_is_array(toks) || json_array_size(toks) == 0) {
		(void)snprintf(err, API_ERR_MAX, "\"tokens\" must be a "
		    "non-empty array of strings");
		rc = PV_EVALUE;
		goto out;
	}
	if ((d->n = json_array_size(toks)) > max) {
		(void)snprintf(err, API_ERR_MAX, "more than %zu tokens", max);
		rc = PV_ETOOBIG;
		goto out;
	}
	if (!json_is_string(purpose)) {
		(void)snprintf(err, API_ERR_MAX, "\"purpose\" must be a "
		    "string");
		rc = PV_EVALUE;
		goto out;
	}
	if (vault_purpose_parse(json_string_value(purpose),
	    json_string_length(purpose), &d->purpose) != PV_OK) {
		(void)snprintf(err, API_ERR_MAX, "unknown purpose");
		rc = PV_EVALUE;
		goto out;
	}
	if (reason != NULL && !json_is_string(reason)) {
		(void)snprintf(err, API_ERR_MAX, "\"reason\" must be a "
		    "string");
		rc = PV_EVALUE;
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
			(void)snprintf(err, API_ERR_MAX, "\"tokens\" must be "
			    "a non-empty array of strings");
			rc = PV_EVALUE;
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
api_lookup_parse(const char *text, size_t len, struct api_lookup **out,
    char err[static API_ERR_MAX])
{
	static const char *const members[] = { "field", "value", NULL };
	struct api_lookup *l;
	json_t *root, *field, *value;
	pv_status rc = PV_OK;

	err[0] = '\0';
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return PV_ENOMEM;
	if ((root = load(text, len, err, &rc)) == NULL)
		goto out;
	l->root = root;
	if ((rc = only_members(root, members, "body", err)) != PV_OK)
		goto out;
	field = json_object_get(root, "field");
	value = json_object_get(root, "value");
	if (!json_is_string(field) || !json_is_string(value)) {
		(void)snprintf(err, API_ERR_MAX, "\"field\" and \"value\" "
		    "must be strings");
		rc = PV_EVALUE;
		goto out;
	}
	l->field = json_string_value(field);
	l->fieldlen = json_string_length(field);
	l->value = json_string_value(value);
	l->len = json_string_length(value);
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

pv_status
api_json_receipt(struct pv_buf *b, const struct vault_receipt *r)
{
	char sig[4 * PV_B64URL16_LEN + 1];
	pv_status rc;

	b64url_blocks(sig, r->sig, PV_ED25519_SIG_LEN / 16);
	if ((rc = pv_buf_printf(b, "{\"receipt\":{\"vault\":\"%s\","
	    "\"record\":\"%s\",\"shredded_at\":%llu,\"kek_version\":%u,"
	    "\"audit_seq\":%llu,\"reason\":", r->vault_id, r->id,
	    (unsigned long long)r->shredded_at, r->kek_version,
	    (unsigned long long)r->audit_seq)) != PV_OK ||
	    (rc = api_json_quote(b, r->reason, strlen(r->reason))) != PV_OK)
		return rc;
	return pv_buf_printf(b, "},\"signature\":\"%s\"}", sig);
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
	    "kek_version", "audit_seq", "reason", NULL };
	struct vault_receipt r;
	char sig[4 * PV_B64URL16_LEN + 1];
	json_t *root, *rec;
	uint64_t kv;
	pv_status rc = PV_OK;

	err[0] = '\0';
	memset(&r, 0, sizeof(r));
	if ((root = load(text, len, err, &rc)) == NULL)
		return rc;
	if ((rc = only_members(root, top, "receipt file", err)) != PV_OK)
		goto out;
	rec = json_object_get(root, "receipt");
	if (!json_is_object(rec)) {
		(void)snprintf(err, API_ERR_MAX, "\"receipt\" must be an "
		    "object");
		rc = PV_EVALUE;
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
	    (rc = get_str(root, "signature", sig, sizeof(sig))) != PV_OK ||
	    (rc = b64url_unblocks(r.sig, sig, strlen(sig),
	    PV_ED25519_SIG_LEN / 16)) != PV_OK) {
		(void)snprintf(err, API_ERR_MAX, "a receipt member is missing "
		    "or malformed");
		goto out;
	}
	r.kek_version = (uint32_t)kv;
	*out = r;
out:
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
	if ((p->root = load(text, len, err, &rc)) == NULL)
		goto out;
	if ((rc = only_members(p->root, members, "body", err)) != PV_OK)
		goto out;
	fields = json_object_get(p->root, "fields");
	if (!json_is_object(fields) || json_object_size(fields) == 0) {
		(void)snprintf(err, API_ERR_MAX, "\"fields\" must be a "
		    "non-empty object of strings or nulls");
		rc = PV_EVALUE;
		goto out;
	}
	if (json_object_size(fields) > VAULT_FIELDS_PATCH_MAX) {
		(void)snprintf(err, API_ERR_MAX, "more than %d fields",
		    VAULT_FIELDS_PATCH_MAX);
		rc = PV_ETOOBIG;
		goto out;
	}
	json_object_foreach(fields, name, val) {
		struct vault_field *f = &p->fields[p->n++];

		f->name = name;
		f->namelen = strlen(name);
		if (json_is_null(val))
			continue;	/* value NULL: remove the field */
		if (!json_is_string(val)) {
			(void)snprintf(err, API_ERR_MAX, "every field value "
			    "must be a string or null");
			rc = PV_EVALUE;
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
	if ((root = load(text, len, err, &rc)) == NULL)
		return rc;
	if ((rc = only_members(root, members, "body", err)) != PV_OK)
		goto out;
	for (size_t i = 0; bools[i] != NULL && i < 6; i++) {
		v = json_object_get(root, bools[i]);
		if (v != NULL && !json_is_boolean(v)) {
			(void)snprintf(err, API_ERR_MAX, "\"%s\" must be true "
			    "or false", bools[i]);
			rc = PV_EVALUE;
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
			(void)snprintf(err, API_ERR_MAX, "\"%s\" must be a "
			    "string of fewer than %zu bytes", str, scap);
			rc = PV_EVALUE;
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
api_json_event(struct pv_buf *b, const struct vault_audit_entry *e, int comma)
{
	pv_status rc;

	if ((rc = pv_buf_printf(b, "%s{\"seq\":%llu,\"time\":%llu,\"actor\":",
	    comma ? "," : "", (unsigned long long)e->seq,
	    (unsigned long long)e->time)) != PV_OK ||
	    (rc = api_json_quote(b, e->actor, strlen(e->actor))) != PV_OK ||
	    (rc = pv_buf_add(b, ",\"action\":", 10)) != PV_OK ||
	    (rc = api_json_quote(b, e->action, strlen(e->action))) != PV_OK ||
	    (rc = pv_buf_printf(b, ",\"outcome\":\"%s\"", e->ok ? "allowed" :
	    "denied")) != PV_OK)
		return rc;
	if (e->code[0] != '\0' && ((rc = pv_buf_add(b, ",\"code\":", 8)) !=
	    PV_OK || (rc = api_json_quote(b, e->code, strlen(e->code))) !=
	    PV_OK))
		return rc;
	if (e->purpose >= 0 && (rc = pv_buf_printf(b, ",\"purpose\":\"%s\"",
	    vault_purpose_name((enum vault_purpose)e->purpose))) != PV_OK)
		return rc;
	if (e->reason[0] != '\0' && ((rc = pv_buf_add(b, ",\"reason\":", 10)) !=
	    PV_OK || (rc = api_json_quote(b, e->reason, strlen(e->reason))) !=
	    PV_OK))
		return rc;
	if ((rc = pv_buf_add(b, ",\"records\":[", 12)) != PV_OK)
		return rc;
	for (size_t i = 0; i < e->nrecs; i++)
		if ((rc = pv_buf_printf(b, "%s\"%s\"", i ? "," : "",
		    e->ids[i])) != PV_OK)
			return rc;
	if ((rc = pv_buf_add(b, "],\"fields\":[", 12)) != PV_OK)
		return rc;
	for (size_t i = 0; i < e->nfields; i++)
		if ((rc = pv_buf_printf(b, "%s\"%s\"", i ? "," : "",
		    e->fields[i])) != PV_OK)
			return rc;
	return pv_buf_add(b, "]}", 2);
}
