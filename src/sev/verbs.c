/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvm-image secret's verbs (verbs.h): the key, the measurement, the packet, the injection. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "verbs.h"
#include "qmp.h"
#include "secret.h"
#include "common/json.h"
#include "common/log.h"
#include "image/image.h"
#include "image/keys.h"
#include "image/luks.h"
#include "shared/cleanup.h"
#include "shared/tmpfile.h"
#include "shared/util.h"

/* ---- inputs ------------------------------------------------------------------------ */

static int read_file_max(const char *path, const char *what, struct secret *ret, size_t max)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int r;

	if (fd < 0)
		return log_error_errno(errno, "cannot open %s '%s': %m", what, path);
	r = secret_read_fd(fd, max, ret);
	if (r == -EFBIG)
		return log_error_errno(EFBIG, "%s '%s' is longer than %zu bytes", what, path, max);
	if (r == -ENOMEM)
		return log_error_errno(ENOMEM, "out of memory");
	if (r < 0)
		return log_error_errno(r, "cannot read %s '%s': %m", what, path);
	return 0;
}

/* want bytes from a file holding them raw, or as base64 text. */
static int read_bytes_file(const char *path, const char *what, uint8_t *out, size_t want)
{
	_cleanup_secret_ struct secret s = {};
	size_t n = 0;
	int r = read_file_max(path, what, &s, 4096);

	if (r < 0)
		return r;
	if (s.size == want) {
		memcpy(out, s.data, want);
		return 0;
	}
	s.data[s.size] = '\0';
	if (base64_decode((const char *)s.data, out, want, &n) == 0 && n == want)
		return 0;
	return log_error_errno(EINVAL, "%s '%s' holds %zu bytes: it must be %zu bytes, raw or "
			       "base64", what, path, s.size, want);
}

/* want bytes given as base64 on the command line, or the path of a file holding them. */
static int read_bytes_arg(const char *arg, const char *what, uint8_t *out, size_t want)
{
	struct stat st;
	size_t n = 0;

	if (stat(arg, &st) == 0)
		return read_bytes_file(arg, what, out, want);
	if (base64_decode(arg, out, want, &n) < 0 || n != want)
		return log_error_errno(EINVAL, "%s '%s' is neither a file nor the base64 of %zu bytes",
				       what, arg, want);
	return 0;
}

/* The disk key: --key-file, or IMAGE.key checked against the image's LUKS header, read
 * through the image module (raw or qcow2, a shared lock, the header in a 0600 copy). */
static int check_key_opens(const char *image, const struct secret *key)
{
	_cleanup_(image_closep) struct image *im = NULL;
	_cleanup_secret_ struct secret vk = {};
	_cleanup_free_ char *hdr_path = NULL;
	struct crypt_device *cd = NULL;
	int r, slot;

	r = image_open(image, 0, &im);
	if (r < 0)
		return r;
	r = image_find_luks(im);
	if (r < 0)
		return r;
	r = image_load_header(im, &hdr_path, &cd);
	if (r < 0)
		return r;
	r = image_unlock(cd, key, &vk, &slot, NULL);
	if (r == -EPERM)
		log_error("the key in '%s.key' does not open '%s'", image, image);
	luks_free(cd);
	unlink(hdr_path);
	return r;
}

/* The secret table: the disk passphrase entry (the key and a NUL, as grub's efisecret
 * wants it), then --entry files verbatim. */
static int make_table(const struct secret_options *o, uint8_t *table, int *ret_len)
{
	_cleanup_secret_ struct secret key = {}, pass = {};
	struct secret extra[SECRET_ENTRIES_MAX] = {};
	struct sev_entry e[SECRET_ENTRIES_MAX + 1] = {};
	_cleanup_free_ char *key_path = NULL;
	int r, len;

	if (o->image && !(key_path = strdupf("%s.key", o->image)))
		return log_error_errno(ENOMEM, "out of memory");
	r = keys_read_key_file(key_path ?: o->key_file, &key);
	if (r < 0)
		return r;
	if (memchr(key.data, '\0', key.size))
		return log_error_errno(EINVAL, "key file '%s' contains a NUL byte: grub's efisecret "
				       "would cut the passphrase there", key_path ?: o->key_file);
	if (o->image) {
		r = check_key_opens(o->image, &key);
		if (r < 0)
			return r;
	}
	if (secret_alloc(&pass, key.size + 1) < 0)
		return log_error_errno(ENOMEM, "out of memory");
	memcpy(pass.data, key.data, key.size);
	sev_guid_parse(SEV_DISK_PASSPHRASE_GUID, e[0].guid);
	e[0].data = pass.data;
	e[0].len = pass.size;
	for (size_t i = 0; i < o->n_entries && r == 0; i++) {
		_cleanup_free_ char *guid = strdup(o->entries[i]);
		char *colon = guid ? strchr(guid, ':') : NULL;

		if (!colon || (*colon = '\0', sev_guid_parse(guid, e[i + 1].guid) < 0)) {
			r = log_error_errno(EINVAL, "invalid --entry '%s': expected GUID:FILE with a GUID "
					    "like %s", o->entries[i], SEV_DISK_PASSPHRASE_GUID);
			break;
		}
		r = read_file_max(colon + 1, "entry file", &extra[i], SEV_SECRET_AREA_MAX);
		e[i + 1].data = extra[i].data;
		e[i + 1].len = extra[i].size;
	}
	len = r < 0 ? r : sev_table_build(e, o->n_entries + 1, table);
	for (size_t i = 0; i < o->n_entries; i++)
		secret_free(&extra[i]);
	if (len == -E2BIG)
		return log_error_errno(E2BIG, "the secret table would be larger than the %d bytes of "
				       "the guest's secret area", SEV_SECRET_AREA_MAX);
	if (len < 0)
		return len;
	*ret_len = len;
	return 0;
}

/* A table given with --table: read and checked as Linux's efi_secret reads one. */
static int read_table(const char *path, uint8_t *table, int *ret_len)
{
	_cleanup_secret_ struct secret s = {};
	bool disk;
	int r = read_file_max(path, "secret table", &s, SEV_SECRET_AREA_MAX);

	if (r < 0)
		return r;
	if (sev_table_check(s.data, s.size, &disk) < 0)
		return log_error_errno(EINVAL, "'%s' is not a secret table (header GUID %s, a length "
				       "within it, entries of at least 20 bytes that fill it, padded "
				       "to 16 bytes)", path, SEV_TABLE_GUID);
	if (!disk)
		log_warning("'%s' has no disk passphrase entry (%s): grub will not find the key "
			    "there", path, SEV_DISK_PASSPHRASE_GUID);
	memcpy(table, s.data, s.size);
	*ret_len = (int)s.size;
	return 0;
}

static int the_table(const struct secret_options *o, uint8_t *table, int *ret_len)
{
	return o->table ? read_table(o->table, table, ret_len) : make_table(o, table, ret_len);
}

/* ---- outputs ----------------------------------------------------------------------- */

struct out_file {
	struct tmpfile t;
	const void *data;
	size_t len;
};

/* Write every file under its temporary name, then commit them all: a failure leaves none. */
static int write_outputs(struct out_file *f, size_t n, bool force)
{
	struct stat st;
	int r = 0;

	for (size_t i = 0; i < n; i++)
		if (!force && lstat(f[i].t.final, &st) == 0)
			return log_error_errno(EEXIST, "'%s' exists (use --force to replace it)",
					       f[i].t.final);
	for (size_t i = 0; i < n && r == 0; i++) {
		const char *name = f[i].t.final;

		f[i].t.final = NULL;
		r = tmpfile_create(&f[i].t, name, f[i].t.mode);
		if (r == 0)
			r = pwrite_all(f[i].t.fd, f[i].data, f[i].len, 0);
		if (r < 0)
			log_error_errno(r, "cannot write '%s': %m", name);
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		r = tmpfile_commit(&f[i].t, force);
		if (r < 0)
			log_error_errno(r, "cannot write '%s': %m", f[i].t.final);
	}
	for (size_t i = 0; i < n; i++)
		tmpfile_discard(&f[i].t);
	return r;
}

#define OUT(path, mode_, buf, n) { .t = { .final = (char *)(path), .fd = -1, .mode = (mode_) }, \
				  .data = (buf), .len = (n) }

/* ---- measurement ------------------------------------------------------------------- */

bool secret_have_measure_options(const struct secret_options *o)
{
	return o->firmware || o->launch_digest;
}

static int launch_digest(const struct secret_options *o, uint8_t digest[SEV_DIGEST_LEN])
{
	int r;

	if (o->launch_digest)
		return read_bytes_arg(o->launch_digest, "--launch-digest", digest, SEV_DIGEST_LEN);
	r = sev_launch_digest(o->firmware, o->kernel, o->initrd, o->cmdline, digest);
	if (r < 0)
		return log_error_errno(r, "cannot hash the firmware '%s'%s: %m", o->firmware,
				       o->kernel ? " with the kernel, initrd and command line" : "");
	return 0;
}

/* The measurement the guest should report, compared with the blob's. */
static int check_measurement(const struct secret_options *o, const uint8_t tik[SEV_KEY_LEN],
			     const uint8_t blob[SEV_BLOB_LEN], uint8_t digest[SEV_DIGEST_LEN],
			     uint8_t expected[SEV_MEASUREMENT_LEN])
{
	_cleanup_free_ char *want = NULL, *got = NULL;
	int r;

	if (o->policy & SEV_POLICY_ES)
		return log_error_errno(EINVAL, "policy 0x%" PRIx64 " has SEV-ES (0x04): its launch "
				       "digest covers the VMSAs of the vCPUs, which this does not "
				       "compute; give the digest with --launch-digest", o->policy);
	r = launch_digest(o, digest);
	if (r < 0)
		return r;
	r = sev_measurement(tik, (uint8_t)o->api_major, (uint8_t)o->api_minor, (uint8_t)o->build_id,
			    (uint32_t)o->policy, digest, blob + SEV_MEASUREMENT_LEN, expected);
	if (r < 0)
		return log_error_errno(r, "cannot compute the measurement: %m");
	if (sev_measurement_equal(expected, blob))
		return 0;
	want = base64_encode(expected, SEV_MEASUREMENT_LEN);
	got = base64_encode(blob, SEV_MEASUREMENT_LEN);
	log_error("the launch measurement does not match: the guest reports %s, this firmware, "
		  "policy and platform give %s; the guest is not the one expected (or the host "
		  "lies): nothing is given to it", got ?: "?", want ?: "?");
	return -EBADMSG;
}

int secret_need_platform(const struct secret_options *o)
{
	if (o->api_major < 0 || o->api_minor < 0 || o->build_id < 0 || o->policy < 0) {
		log_error("give --api-major, --api-minor, --build-id and --policy (from query-sev)");
		return -EINVAL;
	}
	return 0;
}

/* ---- the verbs --------------------------------------------------------------------- */

int secret_verb_table(const struct secret_options *o)
{
	uint8_t table[SEV_SECRET_AREA_MAX];
	int len = 0, r;

	r = the_table(o, table, &len);
	if (r == 0) {
		struct out_file f[] = { OUT(o->output, 0600, table, (size_t)len) };

		r = write_outputs(f, ELEMENTSOF(f), o->force);
	}
	OPENSSL_cleanse(table, sizeof(table));
	if (r == 0)
		log_notice("wrote the secret table '%s' (%d bytes, mode 0600)", o->output, len);
	return r;
}

int secret_verb_measure(const struct secret_options *o)
{
	uint8_t tik[SEV_KEY_LEN], blob[SEV_BLOB_LEN], digest[SEV_DIGEST_LEN], expected[SEV_MEASUREMENT_LEN];
	_cleanup_free_ char *text = NULL;
	int r;

	r = read_bytes_file(o->tik, "TIK", tik, SEV_KEY_LEN);
	if (r == 0)
		r = read_bytes_arg(o->blob, "--launch-measure-blob", blob, SEV_BLOB_LEN);
	if (r == 0)
		r = check_measurement(o, tik, blob, digest, expected);
	OPENSSL_cleanse(tik, sizeof(tik));
	if (r < 0 && r != -EBADMSG)
		return r;
	text = base64_encode(expected, SEV_MEASUREMENT_LEN);
	if (text)
		printf("%s\n", text);
	return r;
}

/* The packet for the table, and the QMP command that injects it. */
static int make_packet(const struct secret_options *o, const uint8_t *blob, uint8_t *header,
		       uint8_t *payload, int *ret_len, json_object **ret_args)
{
	uint8_t tik[SEV_KEY_LEN], tek[SEV_KEY_LEN], iv[SEV_IV_LEN], table[SEV_SECRET_AREA_MAX];
	int r, len = 0;

	r = read_bytes_file(o->tik, "TIK", tik, SEV_KEY_LEN);
	if (r == 0)
		r = read_bytes_file(o->tek, "TEK", tek, SEV_KEY_LEN);
	if (r == 0 && o->iv)
		r = read_bytes_arg(o->iv, "--iv", iv, SEV_IV_LEN);
	else if (r == 0 && getrandom(iv, sizeof(iv), 0) != sizeof(iv))
		r = log_error_errno(errno, "cannot get random bytes: %m");
	if (r == 0)
		r = the_table(o, table, &len);
	if (r == 0 && sev_packet(tek, tik, iv, table, (size_t)len, blob, header, payload) < 0)
		r = log_error_errno(EIO, "cannot build the LAUNCH_SECRET packet");
	OPENSSL_cleanse(tik, sizeof(tik));
	OPENSSL_cleanse(tek, sizeof(tek));
	OPENSSL_cleanse(table, sizeof(table));
	if (r < 0)
		return r;
	if (ret_args) {
		_cleanup_free_ char *h = base64_encode(header, SEV_PACKET_HEADER_LEN);
		_cleanup_free_ char *p = base64_encode(payload, (size_t)len);
		json_object *args = json_object_new_object();

		if (!h || !p || !args) {
			json_object_put(args);
			return log_error_errno(ENOMEM, "out of memory");
		}
		json_object_object_add(args, "packet-header", json_object_new_string(h));
		json_object_object_add(args, "secret", json_object_new_string(p));
		*ret_args = args;
	}
	*ret_len = len;
	return 0;
}

int secret_verb_build(const struct secret_options *o)
{
	uint8_t blob[SEV_BLOB_LEN], header[SEV_PACKET_HEADER_LEN], payload[SEV_SECRET_AREA_MAX];
	json_object *args = NULL, *cmd = NULL;
	const char *qmp_text = NULL;
	int r, len = 0;

	r = read_bytes_arg(o->blob, "--launch-measure-blob", blob, SEV_BLOB_LEN);
	if (r < 0)
		return r;
	if (secret_have_measure_options(o)) {
		uint8_t tik[SEV_KEY_LEN], digest[SEV_DIGEST_LEN], expected[SEV_MEASUREMENT_LEN];

		r = secret_need_platform(o);
		if (r == 0)
			r = read_bytes_file(o->tik, "TIK", tik, SEV_KEY_LEN);
		if (r == 0)
			r = check_measurement(o, tik, blob, digest, expected);
		OPENSSL_cleanse(tik, sizeof(tik));
		if (r < 0)
			return r;
	}
	r = make_packet(o, blob, header, payload, &len, o->qmp_json ? &args : NULL);
	if (r < 0)
		return r;
	if (args) {
		cmd = json_object_new_object();
		json_object_object_add(cmd, "execute", json_object_new_string("sev-inject-launch-secret"));
		json_object_object_add(cmd, "arguments", args);
		qmp_text = json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	}
	{
		struct out_file f[] = {
			OUT(o->header, 0644, header, sizeof(header)),
			OUT(o->payload, 0644, payload, (size_t)len),
			OUT(o->qmp_json, 0644, qmp_text, qmp_text ? strlen(qmp_text) : 0),
		};

		r = write_outputs(f, o->qmp_json ? 3 : 2, o->force);
	}
	json_object_put(cmd);
	if (r == 0)
		log_notice("wrote the LAUNCH_SECRET header '%s' (%d bytes) and payload '%s' (%d bytes)",
			   o->header, SEV_PACKET_HEADER_LEN, o->payload, len);
	return r;
}

/* A number of the host's query-sev answer, in 0..max. */
static int get_u(json_object *o, const char *key, int64_t max, int64_t *ret)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return -EPROTO;
	n = json_object_get_int64(v);
	if (n < 0 || n > max)
		return -ERANGE;
	*ret = n;
	return 0;
}

/* The host's report of the platform and the guest against what the guest owner requires:
 * the policy (exactly --policy; without it NODBG and NOKS set), and the firmware version. */
static int check_platform(const struct secret_options *o, int64_t major, int64_t minor,
			  int64_t build, int64_t policy)
{
	const int64_t safe = SEV_POLICY_NODBG | SEV_POLICY_NOKS;

	if (o->policy >= 0 && policy != o->policy)
		return log_error_errno(EPERM, "the host reports the guest policy 0x%" PRIx64 ", not the "
				       "0x%" PRIx64 " required by --policy: nothing was injected",
				       policy, o->policy);
	if (o->policy < 0 && (policy & safe) != safe)
		return log_error_errno(EPERM, "the host reports the guest policy 0x%" PRIx64 ", which "
				       "allows %s: nothing was injected (--policy N accepts exactly N)",
				       policy, !(policy & SEV_POLICY_NODBG) ? "SEV debugging (NODBG, "
				       "0x01, is not set)" : "key sharing (NOKS, 0x02, is not set)");
	if (o->min_api_major >= 0 &&
	    (major < o->min_api_major || (major == o->min_api_major && minor < o->min_api_minor)))
		return log_error_errno(EPERM, "the host reports SEV API %" PRId64 ".%" PRId64 ", older "
				       "than --min-api %ld.%ld: nothing was injected", major, minor,
				       o->min_api_major, o->min_api_minor);
	if (o->min_build >= 0 &&
	    (o->min_api_major < 0 || (major == o->min_api_major && minor == o->min_api_minor)) &&
	    build < o->min_build)
		return log_error_errno(EPERM, "the host reports SEV firmware build %" PRId64 ", older "
				       "than --min-build %ld: nothing was injected", build, o->min_build);
	return 0;
}

/* query-sev: the platform and the guest's state, validated; the guest must wait for its
 * secret and the platform be one o accepts. p takes the host's values for the measurement. */
static int query_platform(struct qmp *q, const struct secret_options *o, struct secret_options *p)
{
	json_object *sev = NULL, *state;
	int64_t major, minor, build, policy;
	int r;

	r = qmp_execute(q, "query-sev", NULL, &sev);
	if (r < 0)
		return r;
	r = get_u(sev, "api-major", 255, &major);
	r = r ?: get_u(sev, "api-minor", 255, &minor);
	r = r ?: get_u(sev, "build-id", 255, &build);
	r = r ?: get_u(sev, "policy", UINT32_MAX, &policy);
	if (r == 0 && (!json_object_object_get_ex(sev, "state", &state) ||
		       !json_object_is_type(state, json_type_string)))
		r = -EPROTO;
	if (r < 0) {
		r = log_error_errno(EPROTO, "'%s': query-sev did not say the API version, build (0 to "
				    "255), policy (32 bits) and state (a string)%s: nothing was "
				    "injected", o->qmp, r == -ERANGE ? ", in range" : "");
		goto out;
	}
	if (!streq(json_object_get_string(state), "launch-secret")) {
		_cleanup_free_ char *st = str_printable(json_object_get_string(state), 64);

		r = log_error_errno(EBUSY, "the guest is in the SEV state '%s', not 'launch-secret': "
				    "start QEMU paused (-S) and inject before it runs; nothing was "
				    "injected", st ?: "?");
		goto out;
	}
	p->api_major = major, p->api_minor = minor, p->build_id = build, p->policy = policy;
	log_notice("secret: SEV API %" PRId64 ".%" PRId64 " build %" PRId64 ", policy 0x%" PRIx64
		   "; checking the policy, the firmware and the launch measurement", major, minor,
		   build, policy);
	r = check_platform(o, major, minor, build, policy);
out:
	json_object_put(sev);
	return r;
}

/* query-sev-launch-measure: the launch measurement blob, 48 bytes. */
static int query_measurement(struct qmp *q, const struct secret_options *o,
			     uint8_t blob[SEV_BLOB_LEN])
{
	json_object *meas = NULL, *data;
	size_t n = 0;
	int r;

	r = qmp_execute(q, "query-sev-launch-measure", NULL, &meas);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(meas, "data", &data) ||
	    !json_object_is_type(data, json_type_string) ||
	    base64_decode(json_object_get_string(data), blob, SEV_BLOB_LEN, &n) < 0 ||
	    n != SEV_BLOB_LEN)
		r = log_error_errno(EPROTO, "'%s': query-sev-launch-measure did not give 48 bytes of "
				    "base64: nothing was injected", o->qmp);
	json_object_put(meas);
	return r;
}

/* sev-inject-launch-secret with args (taken), then, unless --no-cont, cont; each failure said
 * with what it means for the secret. */
static int inject(struct qmp *q, const struct secret_options *o, json_object *args,
		  bool *injected, bool *continued)
{
	int r = qmp_execute(q, "sev-inject-launch-secret", args, NULL);

	if (r == -EIO) {
		log_error("QEMU refused the secret: nothing was injected");
		return r;
	}
	if (r < 0) {
		/* Sent, or partly: whether it went in is the host's to say, and it did not. */
		log_error("the secret was sent to '%s', but QEMU's answer never came: it may be in "
			  "the guest already. The guest stays paused unless the host resumes it: see "
			  "whether it boots; do not send this key to another host", o->qmp);
		return r;
	}
	*injected = true;
	if (o->no_cont) {
		log_notice("secret: injected; the guest stays paused (--no-cont)");
		return 0;
	}
	r = qmp_execute(q, "cont", NULL, NULL);
	if (r < 0) {
		log_error("the secret was injected, but the guest was not resumed: send 'cont' "
			  "to '%s'", o->qmp);
		return r;
	}
	*continued = true;
	log_notice("secret: injected; the guest runs");
	return 0;
}

static void print_inject_json(const struct secret_options *p, bool matches,
			      const uint8_t expected[SEV_MEASUREMENT_LEN],
			      const uint8_t digest[SEV_DIGEST_LEN], bool injected, bool continued)
{
	_cleanup_free_ char *m = base64_encode(expected, SEV_MEASUREMENT_LEN);
	_cleanup_free_ char *d = base64_encode(digest, SEV_DIGEST_LEN);
	struct json_object *j = json_object_new_object();

	json_add_bool(j, "measurement_matches", matches);
	json_add_str(j, "expected_measurement", m);
	json_add_str(j, "launch_digest", d);
	json_add_int(j, "api_major", p->api_major);
	json_add_int(j, "api_minor", p->api_minor);
	json_add_int(j, "build_id", p->build_id);
	json_add_int(j, "policy", p->policy);
	json_add_bool(j, "injected", injected);
	json_add_bool(j, "continued", continued);
	if (json_print(j, stdout) < 0)
		log_warning_errno(errno ?: EIO, "cannot write the --json report: %m");
}

int secret_verb_inject(const struct secret_options *o)
{
	struct qmp q = { .fd = -1 };
	json_object *args = NULL;
	uint8_t blob[SEV_BLOB_LEN], header[SEV_PACKET_HEADER_LEN], payload[SEV_SECRET_AREA_MAX];
	uint8_t tik[SEV_KEY_LEN], digest[SEV_DIGEST_LEN] = {}, expected[SEV_MEASUREMENT_LEN] = {};
	struct secret_options p = *o;
	int r, len = 0;
	bool injected = false, continued = false;

	log_notice("secret: asking QEMU at '%s' for the SEV platform and the guest's state", o->qmp);
	r = qmp_open(&q, o->qmp, o->timeout);
	if (r == 0)
		r = query_platform(&q, o, &p);
	if (r == 0)
		r = query_measurement(&q, o, blob);
	if (r < 0)
		goto out;
	r = read_bytes_file(o->tik, "TIK", tik, SEV_KEY_LEN);
	if (r == 0)
		r = check_measurement(&p, tik, blob, digest, expected);
	OPENSSL_cleanse(tik, sizeof(tik));
	if (r < 0)
		goto out; /* said: nothing given, the guest stays paused */
	r = make_packet(&p, blob, header, payload, &len, &args);
	if (r < 0)
		goto out;
	log_notice("secret: the measurement matches; injecting the secret (%d bytes)", len);
	r = inject(&q, o, TAKE_PTR(args), &injected, &continued);
out:
	if (o->json && (r == 0 || r == -EBADMSG))
		print_inject_json(&p, r == 0, expected, digest, injected, continued);
	OPENSSL_cleanse(payload, sizeof(payload));
	json_object_put(args);
	qmp_close(&q);
	return r;
}

/* ---- options ----------------------------------------------------------------------- */
