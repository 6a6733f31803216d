/* SPDX-License-Identifier: Apache-2.0 */
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
 * A record parsed from JSON text, in the shape of POST /v1/records's body:
 * {"fields":{"email":"a@b.example","name":"Ada"},"consent":{"marketing":
 * false},"retention_days":365}, fields required.  PV_EJSON for text that
 * is not one JSON object, PV_EMEMBER for a member not of that shape,
 * PV_EVALUE for a member of the wrong type or range, PV_ETOOBIG over
 * PV_FIELDS_MAX fields or API_BODY_MAX bytes (err says what is wrong; it
 * never quotes a value).  The record's strings point into the parsed
 * object and live until api_record_free.  The record is not checked
 * (vault_record_check does that).
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

/*
 * Output, through the one JSON writer (pv_json in pv.h).  Each function
 * writes one JSON value into j, where a value may go (the top, an array,
 * or after a key); errors stay in j until pv_json_end.
 */

/*
 * {"error":{"code":…,"message":…}}: every error, of a request or of one
 * item of a batch; api_json_kerror writes only its member "error", into
 * an object the caller has open.
 */
void	  api_json_error(struct pv_json *j, const char *code,
	      const char *message);
void	  api_json_kerror(struct pv_json *j, const char *code,
	      const char *message);

/*
 * One token's answer of a detokenize, item index of its batch:
 * {"index":…,"token":…,"field":…,"value":…}, with "masked" (and, for
 * research, "pseudonym") instead of "value" where r says so, or
 * {"index":…,"token":…,"error":{"code":…,"message":…}}.  token (len
 * bytes, as submitted) is echoed only if it is a token by its form
 * (vault_token_valid), so that a value sent by mistake never comes back.
 */
void	  api_json_reveal(struct pv_json *j, size_t index, const char *token,
	      size_t len, const struct vault_reveal *r);

/*
 * {"id":"rec_…","tokens":{"email":"tok_…",…}} for a stored record, its
 * field names taken from rec.
 */
void	  api_json_put_result(struct pv_json *j,
	      const struct vault_record_in *rec,
	      const struct vault_put_result *res);

/*
 * Shred receipts as JSON:
 * {"receipt":{"vault":…,"record":…,"shredded_at":…,"kek_version":…,
 * "audit_seq":…,"signing_key_version":…,"reason":…},"signature":…}, the
 * signature base64url.  api_receipt_parse reads one back (PV_EJSON,
 * PV_EVALUE, PV_EMEMBER); a receipt without "signing_key_version" is one
 * made before signing keys had versions (sign_version 0).  It does not
 * check the signature (vault_receipt_verify does).
 */
void	  api_json_receipt(struct pv_json *j,
	      const struct vault_receipt *r);
pv_status api_receipt_parse(const char *text, size_t len,
	      struct vault_receipt *out, char err[static API_ERR_MAX]) PV_WUR;

/*
 * One audit event: {"seq":…,"time":…,"actor":…,"action":…,"outcome":…,
 * "code":…,"purpose":…,"reason":…,"request_id":…,"records":[…],
 * "fields":[…],"items":[{"record":…,"field":…,"outcome":…,"code":…},…]};
 * code, purpose, reason and request_id only when the event has them; an
 * item's record and field when known, its code when refused (as
 * api_error_code says).
 */
void	  api_json_event(struct pv_json *j, const struct vault_audit_entry *e);

/*
 * An audit archive's first and last lines (docs/format.md):
 * {"archive":{"format":1,"vault":…,"first_seq":…,"last_seq":…,"count":…,
 * "before":…,"created":…,"signing_key_version":…}} and
 * {"archive_end":{"events":…,"hash":"<64 hex>"},"signature":…}, the
 * signature base64url.  The parsers read them back (PV_EJSON, PV_EMEMBER,
 * PV_EVALUE, err saying which); they check no signature.
 * api_archive_event_parse reads an event line's "seq" and "time".
 */
#define API_ARCHIVE_FORMAT	1
void	  api_json_archive_head(struct pv_json *j,
	      const struct vault_archive_head *h);
pv_status api_archive_head_parse(const char *text, size_t len,
	      struct vault_archive_head *out, char err[static API_ERR_MAX])
	      PV_WUR;
void	  api_json_archive_end(struct pv_json *j, uint64_t events,
	      const uint8_t hash[static PV_HMAC_LEN],
	      const uint8_t sig[static PV_ED25519_SIG_LEN]);
pv_status api_archive_end_parse(const char *text, size_t len,
	      uint64_t *events, uint8_t hash[static PV_HMAC_LEN],
	      uint8_t sig[static PV_ED25519_SIG_LEN],
	      char err[static API_ERR_MAX]) PV_WUR;
pv_status api_archive_event_parse(const char *text, size_t len,
	      uint64_t *seq, uint64_t *time, char err[static API_ERR_MAX])
	      PV_WUR;

/* A public key as text: "pvpub_" and 44 base64url characters. */
#define API_PUBKEY_STRLEN	(6 + 2 * PV_B64URL16_LEN)
void	  api_pubkey_encode(char out[static API_PUBKEY_STRLEN + 1],
	      const uint8_t pub[static PV_ED25519_LEN]);
pv_status api_pubkey_decode(uint8_t pub[static PV_ED25519_LEN],
	      const char *s, size_t len) PV_WUR;
/*
 * One receipt-signing key, as GET /v1/keys/signing lists them and
 * piivault kms public-key prints them: {"version":…,"public_key":"pvpub_…",
 * "state":"active"|"verify_only"}.
 */
void	  api_json_signing_key(struct pv_json *j,
	      const struct vault_signing_key *k);

/*
 * The HTTP server.  Limits are configurable; each has a default (0 picks
 * it) and going over any of them gets a clear error.  fields_max and
 * value_max may only lower the vault's own PV_FIELDS_MAX and PV_VALUE_MAX.
 */
/* serve's defaults, shared by api_serve and the CLI's help. */
#define API_LISTEN_DEFAULT	"127.0.0.1:7400"
#define API_THREADS_DEFAULT	64
#define API_CONNECTIONS_DEFAULT	256
#define API_IDLE_DEFAULT	30	/* seconds */
#define API_LARGE_DEFAULT	4
#define API_SWEEP_DEFAULT	3600	/* seconds between retention sweeps */
#define API_PER_ADDRESS_DEFAULT	64	/* connections from one address */
#define API_REQUEST_TIMEOUT_DEFAULT 10	/* seconds to send a whole request */
#define API_RATE_LIMIT_DEFAULT	1000	/* requests a second, see rate_limit */
#define API_SECURE_HEAP_DEFAULT	16	/* MiB */
/*
 * TLS 1.2 and 1.3 only, forward-secret AEAD suites only, in the server's
 * order (a GnuTLS priority string).
 */
#define API_TLS_PRIORITIES_DEFAULT \
	"SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" \
	"-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-GCM:" \
	"-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-MAC-ALL:+AEAD:" \
	"%SERVER_PRECEDENCE"

struct api_limits {
	size_t		body_max;	/* request body bytes: 1 MiB */
	size_t		fields_max;	/* fields per record: 64 */
	size_t		value_max;	/* bytes per value: 4096 */
	size_t		batch_max;	/* records or tokens per request: 1000 */
	unsigned	connections;	/* concurrent connections: 256 */
	unsigned	idle_timeout;	/* seconds a connection may idle: 30 */
	unsigned	threads;	/* worker threads: 64 */
	unsigned	large;		/* large bodies decoded at once: 4 */
	/* Connections from one client address at once; 0: no limit. */
	unsigned	per_address;
	/* Seconds a client has to send a whole request (headers, body). */
	unsigned	request_timeout;
	/*
	 * Requests a second allowed to one API key, and to one address for
	 * requests without a valid key; 0: no limit.
	 */
	unsigned	rate_limit;
	/*
	 * MiB of secure heap (0: API_SECURE_HEAP_DEFAULT), a power of two;
	 * serve checks it against api_secure_need at start.
	 */
	unsigned	secure_heap_mib;
};

/*
 * The secure heap a server with limits l needs (0s read as defaults):
 * *per_thread, what each worker thread may hold without asking (one value
 * in flight and its keys), and *largest, what the largest request (a
 * record's access, every field at once) reserves from the heap's budget
 * (pv_secure_reserve) before it runs, waiting up to 2 s, else 503 with
 * Retry-After.  A heap is big enough when it holds the key ring, slack,
 * threads x *per_thread and *largest; the budget is what is left after
 * the first three.
 */
void	  api_secure_need(const struct api_limits *l, size_t *per_thread,
	      size_t *largest);

struct api_serve_opts {
	const char	*listen;	/* "127.0.0.1:7400", "[::1]:7400" */
	const char	*tls_cert;	/* PEM files, or NULL for plain HTTP */
	const char	*tls_key;
	int		 insecure_plaintext; /* allow non-loopback without TLS */
	/* A GnuTLS priority string; NULL: API_TLS_PRIORITIES_DEFAULT. */
	const char	*tls_priorities;
	/*
	 * PEM file of the CA whose client certificates are required (mutual
	 * TLS), or NULL: no client certificate asked for.
	 */
	const char	*tls_client_ca;
	struct api_limits limits;
	/* Called once the socket listens, with its URL (port resolved). */
	void		(*ready)(void *arg, const char *url);
	/* Called once told to stop, before the requests in flight drain. */
	void		(*stopping)(void *arg);
	void		*arg;
	/*
	 * serve --check-config: make every check of o that comes before
	 * listening (the address parses, TLS files read and load), then
	 * return PV_OK without listening.
	 */
	int		 check_only;
};

/*
 * Serve the API over v until SIGINT or SIGTERM, then stop accepting, let
 * requests in flight finish (up to 10 seconds) and return PV_OK.  The
 * caller MUST block SIGINT and SIGTERM in every thread before calling (so
 * that this function can wait for them).  PV_EUSAGE for a listen address
 * that does not parse, or one off loopback without TLS or
 * insecure_plaintext; PV_EIO if it cannot listen or read the TLS files;
 * PV_EINVAL if TLS is asked for and not available.
 */
pv_status api_serve(struct vault *v, const struct api_serve_opts *o) PV_WUR;

/* The version of libmicrohttpd in use (run time): "0.9.75". */
const char *api_http_version(void);

#endif /* API_H */
