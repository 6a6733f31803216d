/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backup.c: one-file backups of a running vault, and checking them
 * without any key (docs/format.md, "Backup files").
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vault_int.h"

#define BK_MAGIC	"PVBACKUP"
#define BK_VERSION	1
#define BK_HEAD_LEN	160
#define BK_SIGNED_LEN	64	/* header bytes the signature covers */
#define BK_MANIFEST_MAX	(1u << 20)
#define BK_CHUNK	(1u << 16)
#define BK_CONTEXT	"piivault-backup-v1\n"
#define BK_LOCK_FILE	"piivault.lock"

/* Header offsets (big-endian numbers). */
#define H_VERSION	8
#define H_SIGN		12
#define H_MLEN		16
#define H_DLEN		24
#define H_DSHA		32
#define H_MSHA		64
#define H_SSHA		96
#define H_HSHA		128

static pv_status
sha256(uint8_t out[static PV_SHA256_LEN], const void *p, size_t len)
{
	struct pv_sha256 *h;
	pv_status rc;

	if ((rc = pv_sha256_new(&h)) != PV_OK)
		return rc;
	if ((rc = pv_sha256_update(h, p, len)) != PV_OK) {
		pv_sha256_free(h);
		return rc;
	}
	return pv_sha256_final(h, out);
}

/* Write all of p, or PV_EIO. */
static pv_status
put_all(int fd, const void *p, size_t len)
{
	const uint8_t *q = p;

	while (len > 0) {
		ssize_t n = write(fd, q, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return PV_EIO;
		q += n;
		len -= (size_t)n;
	}
	return PV_OK;
}

/* Read exactly len bytes; *got short of len only at the end of the file. */
static pv_status
get_all(int fd, void *p, size_t len, size_t *got)
{
	uint8_t *q = p;

	*got = 0;
	while (*got < len) {
		ssize_t n = read(fd, q + *got, len - *got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return PV_EIO;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return PV_OK;
}

/* The manifest's canonical JSON, from the copy's own rows (t). */
static pv_status
manifest(struct vault *v, struct pv_txn *t, struct vault_backup_info *m,
    struct pv_buf *b)
{
	struct kms_key_info *keys = NULL;
	struct pv_json j;
	char hex[2 * PV_SHA256_LEN + 1];
	size_t n = 0;
	pv_status rc;

	if ((rc = vault_meta_u64(t, META_RECORDS, &m->records)) != PV_OK ||
	    (rc = vault_audit_head(t, &m->audit_seq, m->audit_head)) != PV_OK ||
	    (rc = vault_epochs_get(v, t, &m->shred_epochs)) != PV_OK ||
	    (rc = kms_status(v->kms, t, &keys, &n)) != PV_OK)
		goto out;
	pv_json_init(&j, b);
	pv_json_obj(&j);
	pv_json_ku64(&j, "format", m->format);
	pv_json_kstr(&j, "vault_id", m->vault_id);
	pv_json_ku64(&j, "created", m->created);
	pv_json_ku64(&j, "records", m->records);
	pv_json_ku64(&j, "audit_seq", m->audit_seq);
	pv_hex_encode(hex, m->audit_head, PV_HMAC_LEN);
	pv_json_kstr(&j, "audit_head", hex);
	pv_json_key(&j, "keks");
	pv_json_arr(&j);
	m->keks = 0;
	for (size_t i = 0; i < n; i++) {
		struct vault_key_info ki;

		if (keys[i].kind != KMS_KEK)
			continue;
		vault_key_info_from(&ki, &keys[i]);
		pv_json_obj(&j);
		pv_json_ku64(&j, "version", ki.version);
		pv_json_kstr(&j, "state", vault_key_state_name(ki.state));
		pv_json_close(&j);
		m->keks++;
	}
	pv_json_close(&j);
	pv_json_ku64(&j, "shred_epochs", m->shred_epochs);
	pv_json_ku64(&j, "sign_version", m->sign_version);
	pv_json_ku64(&j, "data_bytes", m->data_len);
	pv_hex_encode(hex, m->data_sha256, PV_SHA256_LEN);
	pv_json_kstr(&j, "data_sha256", hex);
	pv_json_close(&j);
	rc = pv_json_end(&j);
out:
	free(keys);
	return rc;
}

/* The header, its digests of manifest and signature filled by the caller. */
static void
header(uint8_t h[static BK_HEAD_LEN], const struct vault_backup_info *m,
    size_t mlen)
{
	memcpy(h, BK_MAGIC, 8);
	pv_put_u32(h + H_VERSION, BK_VERSION);
	pv_put_u32(h + H_SIGN, m->sign_version);
	pv_put_u32(h + H_MLEN, (uint32_t)mlen);
	pv_put_u32(h + H_MLEN + 4, 0);
	pv_put_u64(h + H_DLEN, m->data_len);
	memcpy(h + H_DSHA, m->data_sha256, PV_SHA256_LEN);
}

/* The bytes a signature covers: context, signed header bytes, manifest. */
static pv_status
signed_msg(struct pv_buf *b, const uint8_t *head, const char *man, size_t mlen)
{
	pv_status rc;

	if ((rc = pv_buf_add(b, BK_CONTEXT, strlen(BK_CONTEXT))) != PV_OK ||
	    (rc = pv_buf_add(b, head, BK_SIGNED_LEN)) != PV_OK)
		return rc;
	return pv_buf_add(b, man, mlen);
}

static void
remove_copy(const char *dir)
{
	char p[PATH_MAX];
	int n;

	pv_store_remove(dir);
	n = snprintf(p, sizeof(p), "%s/%s", dir, BK_LOCK_FILE);
	if (n > 0 && (size_t)n < sizeof(p))
		(void)unlink(p);
	(void)rmdir(dir);
}

pv_status
vault_backup(struct vault *v, const char *path, vault_progress_fn *progress,
    void *arg, struct vault_backup_info *out)
{
	struct pv_store_opts so = { 0, 0, 1 };
	struct vault_backup_info m;
	struct vault_progress pr = { 0, 0 };
	struct pv_sha256 *h = NULL;
	struct pv_store *cs = NULL;
	struct pv_txn *t = NULL;
	struct pv_buf man, msg;
	struct stat st;
	char dir[PATH_MAX], tmp[PATH_MAX], data[PATH_MAX], *slash;
	uint8_t head[BK_HEAD_LEN], sig[PV_ED25519_SIG_LEN], *chunk = NULL;
	int fd = -1, dfd = -1, made_dir = 0, made_tmp = 0, n;
	size_t got;
	pv_status rc;

	pv_buf_init(&man, BK_MANIFEST_MAX);
	pv_buf_init(&msg, BK_MANIFEST_MAX + 256);
	memset(&m, 0, sizeof(m));
	if (lstat(path, &st) == 0)
		return PV_EEXIST;
	n = snprintf(dir, sizeof(dir), "%s.copy-XXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof(dir) ||
	    (n = snprintf(tmp, sizeof(tmp), "%s.incomplete-XXXXXX", path)) <
	    0 || (size_t)n >= sizeof(tmp))
		return PV_EINVAL;
	if ((chunk = malloc(BK_CHUNK)) == NULL)
		return PV_ENOMEM;
	rc = PV_EIO;
	if (mkdtemp(dir) == NULL)
		goto out;
	made_dir = 1;
	/* The copy is one read transaction: one commit's state, no free pages. */
	if ((rc = pv_store_copy(v->store, dir)) != PV_OK ||
	    (rc = pv_store_open(dir, &so, &cs)) != PV_OK ||
	    (rc = pv_txn_begin(cs, 0, &t)) != PV_OK)
		goto out;
	pv_hex_encode(m.vault_id, kms_vault_id(v->kms), KMS_VAULT_ID_LEN);
	m.format = KMS_FORMAT_VERSION;
	m.created = (uint64_t)time(NULL);
	m.sign_version = kms_active_version(v->kms, KMS_SIGN);
	n = snprintf(data, sizeof(data), "%s/%s", dir, PV_STORE_DATA_FILE);
	if (n < 0 || (size_t)n >= sizeof(data)) {
		rc = PV_EINVAL;
		goto out;
	}
	rc = PV_EIO;
	if ((dfd = open(data, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(dfd, &st) != 0)
		goto out;
	m.data_len = (uint64_t)st.st_size;
	pr.total = m.data_len;
	if ((fd = mkstemp(tmp)) < 0)
		goto out;
	made_tmp = 1;
	/* The header goes last, over these zeros, once the digests are known. */
	memset(head, 0, sizeof(head));
	if ((rc = put_all(fd, head, sizeof(head))) != PV_OK ||
	    (rc = pv_sha256_new(&h)) != PV_OK)
		goto out;
	for (;;) {
		if ((rc = get_all(dfd, chunk, BK_CHUNK, &got)) != PV_OK)
			goto out;
		if (got == 0)
			break;
		if ((rc = pv_sha256_update(h, chunk, got)) != PV_OK ||
		    (rc = put_all(fd, chunk, got)) != PV_OK)
			goto out;
		pr.done += got;
		if (progress != NULL)
			progress(arg, &pr);
	}
	rc = pv_sha256_final(h, m.data_sha256);
	h = NULL;
	if (rc != PV_OK)
		goto out;
	if (pr.done != m.data_len) {
		rc = PV_EIO;
		goto out;
	}
	if ((rc = manifest(v, t, &m, &man)) != PV_OK)
		goto out;
	header(head, &m, man.len);
	if ((rc = signed_msg(&msg, head, man.p, man.len)) != PV_OK ||
	    (rc = kms_sign(v->kms, m.sign_version, sig, msg.p, msg.len)) !=
	    PV_OK)
		goto out;
	if ((rc = sha256(head + H_MSHA, man.p, man.len)) != PV_OK ||
	    (rc = sha256(head + H_SSHA, sig, sizeof(sig))) != PV_OK ||
	    (rc = sha256(head + H_HSHA, head, H_HSHA)) != PV_OK)
		goto out;
	if ((rc = put_all(fd, man.p, man.len)) != PV_OK ||
	    (rc = put_all(fd, sig, sizeof(sig))) != PV_OK)
		goto out;
	rc = PV_EIO;
	if (pwrite(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
	    fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	/* link() refuses to replace a file made meanwhile; rename would not. */
	if (link(tmp, path) != 0) {
		rc = errno == EEXIST ? PV_EEXIST : PV_EIO;
		goto out;
	}
	(void)unlink(tmp);
	made_tmp = 0;
	if ((slash = strrchr(tmp, '/')) != NULL)
		*slash = '\0';
	else
		(void)snprintf(tmp, sizeof(tmp), ".");
	(void)close(dfd);
	if ((dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(dfd) != 0) {
		rc = PV_EIO;
		goto out;
	}
	*out = m;
	rc = PV_OK;
out:
	pv_sha256_free(h);
	pv_txn_abort(t);
	pv_store_close(cs);
	if (made_dir)
		remove_copy(dir);
	if (fd >= 0)
		(void)close(fd);
	if (dfd >= 0)
		(void)close(dfd);
	if (made_tmp)
		(void)unlink(tmp);
	pv_buf_cleanup(&man);
	pv_buf_cleanup(&msg);
	free(chunk);
	return rc;
}

void
vault_backup_file_free(struct vault_backup_file *f)
{
	if (f == NULL)
		return;
	free(f->manifest);
	free(f);
}

/*
 * The data part of a backup, len bytes from in's offset: hashed, written
 * to out too unless out is -1, and checked against want.  PV_EINTEGRITY
 * if the file ends short or the digest differs; PV_EIO, PV_ENOMEM,
 * PV_ECRYPTO.
 */
static pv_status
data_pass(int in, int out, uint64_t len,
    const uint8_t want[static PV_SHA256_LEN], vault_progress_fn *progress,
    void *arg)
{
	struct vault_progress pr = { 0, len };
	struct pv_sha256 *h = NULL;
	uint8_t d[PV_SHA256_LEN], *chunk;
	uint64_t left;
	size_t got;
	pv_status rc;

	if ((chunk = malloc(BK_CHUNK)) == NULL)
		return PV_ENOMEM;
	if ((rc = pv_sha256_new(&h)) != PV_OK)
		goto out;
	for (left = len; left > 0; left -= got) {
		size_t n = left < BK_CHUNK ? (size_t)left : BK_CHUNK;

		if ((rc = get_all(in, chunk, n, &got)) != PV_OK)
			goto out;
		rc = PV_EINTEGRITY;
		if (got != n)
			goto out;
		if ((rc = pv_sha256_update(h, chunk, got)) != PV_OK ||
		    (out >= 0 && (rc = put_all(out, chunk, got)) != PV_OK))
			goto out;
		pr.done += got;
		if (progress != NULL)
			progress(arg, &pr);
	}
	rc = pv_sha256_final(h, d);
	h = NULL;
	if (rc == PV_OK && memcmp(d, want, sizeof(d)) != 0)
		rc = PV_EINTEGRITY;
out:
	pv_sha256_free(h);
	free(chunk);
	return rc;
}

pv_status
vault_backup_read(const char *path, vault_progress_fn *progress, void *arg,
    struct vault_backup_file **out, const char **failed)
{
	struct vault_backup_file *f = NULL;
	struct stat st;
	uint8_t head[BK_HEAD_LEN], d[PV_SHA256_LEN];
	uint64_t mlen;
	size_t got;
	pv_status rc;
	int fd;

	*failed = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? PV_ENOTFOUND : PV_EIO;
	rc = PV_EIO;
	if (fstat(fd, &st) != 0)
		goto out;
	rc = PV_ENOMEM;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		goto out;
	if ((rc = get_all(fd, head, sizeof(head), &got)) != PV_OK)
		goto out;
	*failed = "header";
	rc = PV_EFORMAT;
	if (got < 8 || memcmp(head, BK_MAGIC, 8) != 0)
		goto out;
	rc = PV_EINTEGRITY;
	if (got < sizeof(head)) {
		*failed = "length";
		goto out;
	}
	if ((rc = sha256(d, head, H_HSHA)) != PV_OK)
		goto out;
	rc = PV_EINTEGRITY;
	if (memcmp(d, head + H_HSHA, sizeof(d)) != 0)
		goto out;
	rc = PV_EFORMAT;
	if (pv_get_u32(head + H_VERSION) != BK_VERSION)
		goto out;
	rc = PV_EINTEGRITY;
	mlen = pv_get_u32(head + H_MLEN);
	f->info.sign_version = pv_get_u32(head + H_SIGN);
	f->info.data_len = pv_get_u64(head + H_DLEN);
	memcpy(f->info.data_sha256, head + H_DSHA, PV_SHA256_LEN);
	memcpy(f->head, head, BK_SIGNED_LEN);
	if (mlen == 0 || mlen > BK_MANIFEST_MAX)
		goto out;
	*failed = "length";
	if (f->info.data_len > (uint64_t)st.st_size ||
	    (uint64_t)st.st_size != BK_HEAD_LEN + f->info.data_len + mlen +
	    PV_ED25519_SIG_LEN)
		goto out;
	/* Manifest and signature first: they are small, and name the data. */
	*failed = "manifest";
	rc = PV_ENOMEM;
	if ((f->manifest = malloc(mlen + 1)) == NULL)
		goto out;
	rc = PV_EIO;
	if (pread(fd, f->manifest, mlen, (off_t)(BK_HEAD_LEN +
	    f->info.data_len)) != (ssize_t)mlen ||
	    pread(fd, f->sig, sizeof(f->sig), (off_t)(BK_HEAD_LEN +
	    f->info.data_len + mlen)) != (ssize_t)sizeof(f->sig))
		goto out;
	f->manifest[mlen] = '\0';
	f->manifest_len = mlen;
	if ((rc = sha256(d, f->manifest, mlen)) != PV_OK)
		goto out;
	rc = PV_EINTEGRITY;
	if (memcmp(d, head + H_MSHA, sizeof(d)) != 0 ||
	    strlen(f->manifest) != mlen)
		goto out;
	*failed = "signature";
	if ((rc = sha256(d, f->sig, sizeof(f->sig))) != PV_OK)
		goto out;
	rc = PV_EINTEGRITY;
	if (memcmp(d, head + H_SSHA, sizeof(d)) != 0)
		goto out;
	*failed = "data";
	if ((rc = data_pass(fd, -1, f->info.data_len, f->info.data_sha256,
	    progress, arg)) != PV_OK)
		goto out;
	*failed = NULL;
	*out = f;
	f = NULL;
	rc = PV_OK;
out:
	vault_backup_file_free(f);
	(void)close(fd);
	return rc;
}

pv_status
vault_backup_verify(const struct vault_backup_file *f,
    const uint8_t pub[static PV_ED25519_LEN])
{
	struct pv_buf msg;
	pv_status rc;

	pv_buf_init(&msg, BK_MANIFEST_MAX + 256);
	if ((rc = signed_msg(&msg, f->head, f->manifest, f->manifest_len)) ==
	    PV_OK)
		rc = pv_ed25519_verify(pub, f->sig, msg.p, msg.len);
	pv_buf_cleanup(&msg);
	return rc;
}

pv_status
vault_backup_extract(const char *path, const struct vault_backup_file *f,
    const char *dir)
{
	char data[PATH_MAX];
	pv_status rc;
	int in = -1, out = -1, n;

	n = snprintf(data, sizeof(data), "%s/%s", dir, PV_STORE_DATA_FILE);
	if (n < 0 || (size_t)n >= sizeof(data))
		return PV_EINVAL;
	rc = PV_EIO;
	if ((in = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    lseek(in, BK_HEAD_LEN, SEEK_SET) != BK_HEAD_LEN)
		goto out;
	if ((out = open(data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) < 0) {
		rc = errno == EEXIST ? PV_EEXIST : PV_EIO;
		goto out;
	}
	if ((rc = data_pass(in, out, f->info.data_len, f->info.data_sha256,
	    NULL, NULL)) != PV_OK)
		goto out;
	rc = close(out) == 0 ? PV_OK : PV_EIO;
	out = -1;
out:
	if (out >= 0)
		(void)close(out);
	if (rc != PV_OK && rc != PV_EEXIST)
		(void)unlink(data);
	if (in >= 0)
		(void)close(in);
	return rc;
}

void
vault_backup_scratch_remove(const char *dir)
{
	remove_copy(dir);
}

pv_status
vault_check_records(struct vault *v, struct vault_check *out)
{
	struct vault_check c = { 0, 0, 0, 0 };
	struct pv_cursor *cur = NULL;
	struct pv_txn *t = NULL;
	const uint8_t *k, *rec;
	size_t kl, len, body;
	pv_status rc;

	if ((rc = vault_txn_begin(v, 0, &t)) != PV_OK)
		return rc;
	if ((rc = pv_cursor_open(t, PV_T_RECORDS, &cur)) != PV_OK)
		goto out;
	for (rc = pv_cursor_seek(cur, NULL, 0, 0, (const void **)&k, &kl,
	    (const void **)&rec, &len); rc == PV_OK; rc = pv_cursor_next(cur,
	    0, (const void **)&k, &kl, (const void **)&rec, &len)) {
		struct field_view f;
		size_t pos = R_FIELDS, nf;
		enum kms_state st;
		uint64_t seq;

		if (kl != SEQ_LEN || len < 1) {
			rc = vault_alarm(v, "record", "records");
			goto out;
		}
		seq = pv_get_u64(k);
		if (rec[R_TYPE] != REC_LIVE) {
			if ((rc = vault_tomb_verify(v, seq, rec, len, &body)) !=
			    PV_OK)
				goto out;
			c.tombstones++;
			continue;
		}
		if (len < R_FIELDS) {
			rc = vault_alarm(v, "record", "records");
			goto out;
		}
		st = kms_version_state(v->kms, KMS_KEK,
		    pv_get_u32(rec + R_KEKV));
		if (st != KMS_ACTIVE && st != KMS_DECRYPT_ONLY) {
			c.locked++;
			continue;
		}
		if ((rc = vault_header_verify(v, seq, rec, len)) != PV_OK)
			goto out;
		nf = vault_record_nfields(rec);
		for (size_t i = 0; i < nf; i++) {
			struct resolved r;
			char *plain;

			if ((rc = vault_field_next(rec, len, &pos, &f)) !=
			    PV_OK) {
				(void)vault_alarm(v, "record", "records");
				goto out;
			}
			r.rec_seq = seq;
			r.rec = rec;
			r.reclen = len;
			r.f = f;
			if ((rc = vault_field_open(v, &r, &plain)) != PV_OK)
				goto out;
			pv_secure_free(plain, f.ctlen + 1);
			c.fields++;
		}
		c.records++;
	}
	if (rc == PV_ENOTFOUND)
		rc = PV_OK;
out:
	*out = c;
	pv_cursor_close(cur);
	pv_txn_abort(t);
	return rc;
}
