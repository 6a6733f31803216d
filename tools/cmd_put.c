/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_put.c: piivault put.
 *
 * Records come one a line, each in the shape of POST /v1/records's body,
 * and are stored as POST /v1/records/batch stores them: the good ones in
 * commits of up to VAULT_BATCH_MAX records (or API_BODY_MAX bytes of
 * input), even when others are refused.  Each line that holds a record
 * gets one line of output, in order: its id and tokens, or its error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_int.h"

#define PUT_MSG_MAX	(API_ERR_MAX + 128)

/* stdin, read in chunks (not stdio: its buffer would keep values). */
struct lines {
	char		chunk[4096];
	size_t		pos, len;
	int		eof;
	unsigned long long no;		/* the line's number, from 1 */
};

/*
 * The next line into b (reset first, without its newline): 1, or 0 at the
 * end of input, or -1 if stdin cannot be read.  A line longer than b's
 * maximum is skipped to its end, and *over set.
 */
static int
line_next(struct lines *in, struct pv_buf *b, int *over)
{
	int any = 0;

	b->len = 0;
	*over = 0;
	for (;;) {
		char *nl;
		size_t n;
		ssize_t r;

		if (in->pos == in->len) {
			if (in->eof)
				break;
			r = read(STDIN_FILENO, in->chunk, sizeof(in->chunk));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -1;
			if (r == 0) {
				in->eof = 1;
				break;
			}
			in->pos = 0;
			in->len = (size_t)r;
		}
		any = 1;
		nl = memchr(in->chunk + in->pos, '\n', in->len - in->pos);
		n = (nl != NULL ? (size_t)(nl - in->chunk) : in->len) - in->pos;
		if (!*over && pv_buf_add(b, in->chunk + in->pos, n) != PV_OK) {
			*over = 1;
			b->len = 0;
		}
		in->pos += n;
		if (nl != NULL) {
			in->pos++;
			break;
		}
	}
	if (!any)
		return 0;
	in->no++;
	return 1;
}

static int
blank(const struct pv_buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (b->p[i] != ' ' && b->p[i] != '\t' && b->p[i] != '\r')
			return 0;
	return 1;
}

/* A line read and not yet answered. */
struct item {
	unsigned long long	 no;
	struct api_record	*rec;	/* NULL: refused before the vault */
	pv_status		 st;
	char			 msg[PUT_MSG_MAX];
	char		       (*tokens)[VAULT_ID_STRLEN + 1];
};

struct put {
	struct item		 items[VAULT_BATCH_MAX];
	struct vault_record_in	 in[VAULT_BATCH_MAX];
	struct vault_put_result	 res[VAULT_BATCH_MAX];
	size_t			 n;		/* items pending */
	size_t			 bytes;		/* their input */
	size_t			 failed;	/* lines refused so far */
};

/* One line of output: the record's id and tokens, or its error. */
static int
put_emit(struct item *it, const struct vault_record_in *in,
    const struct vault_put_result *res)
{
	struct pv_buf out;
	struct pv_json j;
	int r;

	pv_buf_init(&out, API_BODY_MAX);
	pv_json_init(&j, &out);
	if (it->st == PV_OK)
		api_json_put_result(&j, in, res);
	else {
		/* The line's number, never its text. */
		(void)fprintf(stderr, "piivault: put: line %llu: %s\n", it->no,
		    it->msg);
		api_json_error(&j, api_error_code(it->st), it->msg);
	}
	r = cli_emit_json("put", &j);
	pv_buf_cleanup(&out);
	return r;
}

/* Store the pending records in one commit and answer every pending line. */
static int
put_flush(struct vault *v, struct put *p)
{
	size_t nin = 0;
	pv_status rc = PV_OK;
	int r = CLI_OK;

	for (size_t i = 0; i < p->n; i++) {
		struct item *it = &p->items[i];

		if (it->rec == NULL)
			continue;
		p->in[nin] = *api_record_in(it->rec);
		memset(&p->res[nin], 0, sizeof(p->res[nin]));
		p->res[nin].tokens = it->tokens;
		nin++;
	}
	if (nin > 0 && (rc = vault_put(v, p->in, nin, p->res)) != PV_OK) {
		/* Nothing of this commit was stored; earlier ones were. */
		r = cli_fail("put", p->items[0].no == p->items[p->n - 1].no ?
		    "storing the record" : "storing the records", rc);
		(void)fprintf(stderr, "piivault: put: lines %llu to %llu not "
		    "stored\n", p->items[0].no, p->items[p->n - 1].no);
		goto out;
	}
	for (size_t i = 0, k = 0; i < p->n && r == CLI_OK; i++) {
		struct item *it = &p->items[i];

		if (it->rec != NULL) {
			if ((it->st = p->res[k].status) != PV_OK)
				(void)snprintf(it->msg, sizeof(it->msg), "%s",
				    p->res[k].why[0] != '\0' ?
				    p->res[k].why : pv_strerror(it->st));
			r = put_emit(it, &p->in[k], &p->res[k]);
			k++;
		} else
			r = put_emit(it, NULL, NULL);
		if (it->st != PV_OK)
			p->failed++;
	}
out:
	for (size_t i = 0; i < p->n; i++) {
		api_record_free(p->items[i].rec);
		free(p->items[i].tokens);
	}
	memset(p->in, 0, sizeof(p->in));
	p->n = 0;
	p->bytes = 0;
	return r;
}

/* Take one line: decoded and pending, or refused with its error. */
static pv_status
put_line(struct put *p, const struct pv_buf *line, int over,
    unsigned long long no)
{
	struct item *it = &p->items[p->n];
	char err[API_ERR_MAX];
	pv_status st;

	memset(it, 0, sizeof(*it));
	it->no = no;
	if (over) {
		it->st = PV_ETOOBIG;
		(void)snprintf(it->msg, sizeof(it->msg), "%s: a line holds at "
		    "most %u bytes", pv_strerror(it->st), API_BODY_MAX);
	} else if ((st = api_record_parse(line->p, line->len, &it->rec,
	    err)) != PV_OK) {
		if (st == PV_ENOMEM)
			return st;
		it->st = st;
		(void)snprintf(it->msg, sizeof(it->msg), "%s: %s",
		    pv_strerror(st), err);
	} else if ((it->tokens = calloc(api_record_in(it->rec)->nfields ?
	    api_record_in(it->rec)->nfields : 1, sizeof(*it->tokens))) ==
	    NULL) {
		api_record_free(it->rec);
		return PV_ENOMEM;
	}
	p->n++;
	p->bytes += line->len;
	return PV_OK;
}

int
cmd_put(int argc, char **argv)
{
	struct cli_common c;
	struct lines *in = NULL;
	struct put *p = NULL;
	struct pv_buf line;
	struct vault *v = NULL;
	pv_status rc;
	int r, first, got, over;

	if ((r = cli_parse(argc, argv, &c, &first, "put < records.jsonl\n\n"
	    "Reads records from stdin, one JSON object a line, each as the\n"
	    "body of POST /v1/records, e.g.\n"
	    "  {\"fields\":{\"email\":\"a@b.example\",\"name\":\"Ada\"},"
	    "\"consent\":{\"marketing\":false},\"retention_days\":365}\n"
	    "and stores them as POST /v1/records/batch does: the good ones\n"
	    "even when others are refused.  Prints one line per record, in\n"
	    "order: {\"id\":\"rec_...\",\"tokens\":{...}}, or\n"
	    "{\"error\":{\"code\":...,\"message\":...}} with "
	    "\"line N: ...\" on\nstderr.  Blank lines are skipped.  Exits 1 if any record was\n"
	    "refused.", NULL)) != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (first != argc)
		return cli_usage("put", "unexpected argument");
	if ((r = cli_open(&c, "put", &v)) != CLI_OK)
		return r;
	pv_buf_init(&line, API_BODY_MAX);
	if ((in = calloc(1, sizeof(*in))) == NULL ||
	    (p = calloc(1, sizeof(*p))) == NULL) {
		r = cli_fail("put", NULL, PV_ENOMEM);
		goto out;
	}
	while ((got = line_next(in, &line, &over)) == 1) {
		if (!over && blank(&line))
			continue;
		/* A commit at most as large as one batch request. */
		if ((p->n == VAULT_BATCH_MAX || p->bytes + line.len >
		    API_BODY_MAX) && (r = put_flush(v, p)) != CLI_OK)
			goto out;
		if ((rc = put_line(p, &line, over, in->no)) != PV_OK) {
			r = cli_fail("put", NULL, rc);
			goto out;
		}
	}
	if (got < 0) {
		r = cli_fail("put", "stdin", PV_EIO);
		goto out;
	}
	if ((r = put_flush(v, p)) == CLI_OK && p->failed > 0) {
		(void)fprintf(stderr, "piivault: put: %zu record%s refused\n",
		    p->failed, p->failed == 1 ? "" : "s");
		r = CLI_FAIL;
	}
out:
	if (p != NULL) {
		for (size_t i = 0; i < p->n; i++) {
			api_record_free(p->items[i].rec);
			free(p->items[i].tokens);
		}
		pv_cleanse(p, sizeof(*p));
		free(p);
	}
	if (in != NULL) {
		pv_cleanse(in, sizeof(*in));
		free(in);
	}
	pv_buf_cleanup(&line);
	vault_close(v);
	return r;
}
