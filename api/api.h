/*
 * api.h: piivault's outward interface: the JSON codec that the CLI and the
 * HTTP server share.  jansson is included only by api/json.c.
 *
 * Personal values pass through here in both directions, so the codec
 * allocates through an allocator that wipes every block it frees, and
 * writes output into pv_buf, which does the same.
 *
 * NULL policy, ownership and out-parameters as in pv.h.
 */
#ifndef API_H
#define API_H

#include "pv.h"
#include "vault.h"

#define API_BODY_MAX	(1u << 20)	/* request body, bytes */
#define API_ERR_MAX	160		/* error detail, bytes */

/* Call once before any other function here (sets jansson's allocator). */
void	  api_init(void);

/*
 * A record parsed from JSON text.  api_record_parse accepts one JSON object
 * whose members are field names and whose values are strings:
 * {"email":"a@b.example","name":"Ada"}.  PV_EJSON for text that is not
 * such an object (err says what is wrong; it never quotes a value),
 * PV_ETOOBIG over PV_FIELDS_MAX members.  The record's strings point into
 * the parsed object and live until api_record_free.
 */
struct api_record;
pv_status api_record_parse(const char *text, size_t len,
	      struct api_record **out, char err[static API_ERR_MAX]) PV_WUR;
const struct vault_record_in *api_record_in(const struct api_record *r);
void	  api_record_free(struct api_record *r);

/*
 * The stable, machine-readable code for a status, as the API and the CLI
 * print it ("not_found", "invalid_field", ...); never NULL.
 */
const char *api_error_code(pv_status rc);

/* Append s as a quoted, escaped JSON string. */
pv_status api_json_quote(struct pv_buf *b, const char *s, size_t len) PV_WUR;

/*
 * {"id":"rec_…","tokens":{"email":"tok_…",…}} for a stored record, its
 * field names taken from rec.
 */
pv_status api_json_put_result(struct pv_buf *b,
	      const struct vault_record_in *rec,
	      const struct vault_put_result *res) PV_WUR;

#endif /* API_H */
