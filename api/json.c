/*
 * json.c: the JSON codec.  The only file that includes jansson; its
 * NULL / -1 conventions end here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"

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
		return "not_indexed";
	case PV_EKEYSTATE:
		return "key_unavailable";
	case PV_EINTEGRITY:
		return "integrity";
	case PV_EFULL:
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
