/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvm-image secret: the disk key for an AMD SEV guest: table, measure, build, inject. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "cmd.h"
#include "exitcode.h"
#include "common/json.h"
#include "common/log.h"
#include "image/image.h"
#include "image/keys.h"
#include "image/luks.h"
#include "sev/qmp.h"
#include "sev/secret.h"
#include "shared/cleanup.h"
#include "shared/tmpfile.h"
#include "shared/util.h"

#define ENTRIES_MAX 16

enum {
	ARG_KEY_FILE = 0x100,
	ARG_IMAGE,
	ARG_ENTRY,
	ARG_FORCE,
	ARG_TIK,
	ARG_TEK,
	ARG_BLOB,
	ARG_API_MAJOR,
	ARG_API_MINOR,
	ARG_BUILD_ID,
	ARG_POLICY,
	ARG_FIRMWARE,
	ARG_KERNEL,
	ARG_INITRD,
	ARG_CMDLINE,
	ARG_LAUNCH_DIGEST,
	ARG_TABLE,
	ARG_IV,
	ARG_QMP_JSON,
	ARG_QMP,
	ARG_NO_CONT,
	ARG_JSON,
	ARG_MIN_API,
	ARG_MIN_BUILD,
	ARG_TIMEOUT,
};

static const struct option options[] = {
	{ "key-file", required_argument, NULL, ARG_KEY_FILE },
	{ "image", required_argument, NULL, ARG_IMAGE },
	{ "entry", required_argument, NULL, ARG_ENTRY },
	{ "output", required_argument, NULL, 'o' },
	{ "force", no_argument, NULL, ARG_FORCE },
	{ "tik", required_argument, NULL, ARG_TIK },
	{ "tek", required_argument, NULL, ARG_TEK },
	{ "launch-measure-blob", required_argument, NULL, ARG_BLOB },
	{ "api-major", required_argument, NULL, ARG_API_MAJOR },
	{ "api-minor", required_argument, NULL, ARG_API_MINOR },
	{ "build-id", required_argument, NULL, ARG_BUILD_ID },
	{ "policy", required_argument, NULL, ARG_POLICY },
	{ "firmware", required_argument, NULL, ARG_FIRMWARE },
	{ "kernel", required_argument, NULL, ARG_KERNEL },
	{ "initrd", required_argument, NULL, ARG_INITRD },
	{ "cmdline", required_argument, NULL, ARG_CMDLINE },
	{ "launch-digest", required_argument, NULL, ARG_LAUNCH_DIGEST },
	{ "table", required_argument, NULL, ARG_TABLE },
	{ "iv", required_argument, NULL, ARG_IV },
	{ "qmp-json", required_argument, NULL, ARG_QMP_JSON },
	{ "qmp", required_argument, NULL, ARG_QMP },
	{ "no-cont", no_argument, NULL, ARG_NO_CONT },
	{ "min-api", required_argument, NULL, ARG_MIN_API },
	{ "min-build", required_argument, NULL, ARG_MIN_BUILD },
	{ "timeout", required_argument, NULL, ARG_TIMEOUT },
	{ "json", no_argument, NULL, ARG_JSON },
	{ "help", no_argument, NULL, 'h' },
	{},
};

static void help(void)
{
	printf("Usage: cvm-image secret table (--key-file KEY | --image IMAGE) [--entry GUID:FILE]...\n"
	       "                             -o TABLE [--force]\n"
	       "       cvm-image secret measure --tik FILE --launch-measure-blob B64|FILE\n"
	       "                             --api-major N --api-minor N --build-id N --policy N\n"
	       "                             (--firmware OVMF.fd [--kernel K --initrd I --cmdline S]\n"
	       "                              | --launch-digest B64)\n"
	       "       cvm-image secret build --tik FILE --tek FILE --launch-measure-blob B64|FILE\n"
	       "                             (--key-file KEY | --table TABLE) [--iv B64]\n"
	       "                             [--qmp-json FILE] [MEASURE OPTIONS] HEADER PAYLOAD\n"
	       "       cvm-image secret inject --qmp SOCKET --tik FILE --tek FILE\n"
	       "                             (--firmware OVMF.fd [...] | --launch-digest B64)\n"
	       "                             (--key-file KEY | --table TABLE) [--policy N]\n"
	       "                             [--min-api MAJOR.MINOR] [--min-build N] [--timeout S]\n"
	       "                             [--no-cont] [--json]\n"
	       "Give an AMD SEV guest its disk key: the EFI secret table grub's efisecret reads, the\n"
	       "launch measurement check, the LAUNCH_SECRET packet, and QMP injection.\n"
	       "\n"
	       "Options:\n"
	       "      --key-file KEY        the image's key file: the disk passphrase entry\n"
	       "      --image IMAGE         take the key from IMAGE.key, checked to open IMAGE (raw)\n"
	       "      --entry GUID:FILE     a further secret table entry, FILE's bytes verbatim\n"
	       "  -o, --output TABLE        the table to write (mode 0600: it holds the key)\n"
	       "      --force               replace existing output files\n"
	       "      --tik FILE            the TIK of the launch session (16 bytes, raw or base64)\n"
	       "      --tek FILE            the TEK of the launch session (16 bytes, raw or base64)\n"
	       "      --launch-measure-blob B64|FILE\n"
	       "                            query-sev-launch-measure's data: measurement and nonce\n"
	       "      --api-major N, --api-minor N, --build-id N, --policy N\n"
	       "                            the platform's SEV API version and the guest policy\n"
	       "      --firmware OVMF.fd    the launch digest from the firmware QEMU loads\n"
	       "      --kernel K, --initrd I, --cmdline S\n"
	       "                            with QEMU's kernel hashes (-kernel, kernel-hashes=on)\n"
	       "      --launch-digest B64   the launch digest itself (SHA-256)\n"
	       "      --table TABLE         a secret table made by 'secret table'\n"
	       "      --iv B64              the packet's IV (default: random)\n"
	       "      --qmp-json FILE       also write the sev-inject-launch-secret command\n"
	       "      --qmp SOCKET          QEMU's QMP socket; QEMU started paused (-S)\n"
	       "      --no-cont             do not resume the guest after the injection\n"
	       "  inject: the host's query-sev must match, or nothing is sent:\n"
	       "      --policy N            the guest policy required, exactly (default: any with\n"
	       "                            NODBG and NOKS set: no SEV debugging, no key sharing)\n"
	       "      --min-api MAJOR.MINOR the lowest SEV firmware API version accepted\n"
	       "      --min-build N         the lowest firmware build accepted (with --min-api:\n"
	       "                            at that version)\n"
	       "      --timeout S           give up on QEMU after S seconds in all (default 120;\n"
	       "                            each answer within 30)\n"
	       "      --json                print what was done as JSON on stdout\n"
	       "  -h, --help                show this help\n"
	       "\n"
	       "Key material is read from files only and wiped after use. See cvm-image-secret(1).\n");
}

struct secret_options {
	const char *verb;
	const char *key_file, *image, *output, *tik, *tek, *blob, *firmware, *kernel, *initrd,
		*cmdline, *launch_digest, *table, *iv, *qmp_json, *qmp, *header, *payload;
	const char *entries[ENTRIES_MAX];
	size_t n_entries;
	long api_major, api_minor, build_id;
	int64_t policy;
	long min_api_major, min_api_minor, min_build;  /* inject: -1, none required */
	unsigned timeout;                               /* inject: seconds in all */
	bool force, no_cont, json;
};

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

static int parse_number(const char *s, const char *what, int64_t max, int64_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 0); /* decimal, or hex with 0x */
	if (errno || end == s || *end || v < 0 || v > max) {
		log_error("invalid %s '%s': expected a number from 0 to %" PRId64 " (decimal or 0x hex)",
			  what, s, max);
		return -EINVAL;
	}
	*ret = v;
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
	r = luks_unlock(cd, key, &vk, &slot);
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
	struct secret extra[ENTRIES_MAX] = {};
	struct sev_entry e[ENTRIES_MAX + 1] = {};
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

static bool have_measure_options(const struct secret_options *o)
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

static int need_platform(const struct secret_options *o)
{
	if (o->api_major < 0 || o->api_minor < 0 || o->build_id < 0 || o->policy < 0) {
		log_error("give --api-major, --api-minor, --build-id and --policy (from query-sev)");
		return -EINVAL;
	}
	return 0;
}

/* ---- the verbs --------------------------------------------------------------------- */

static int verb_table(const struct secret_options *o)
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

static int verb_measure(const struct secret_options *o)
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

static int verb_build(const struct secret_options *o)
{
	uint8_t blob[SEV_BLOB_LEN], header[SEV_PACKET_HEADER_LEN], payload[SEV_SECRET_AREA_MAX];
	json_object *args = NULL, *cmd = NULL;
	const char *qmp_text = NULL;
	int r, len = 0;

	r = read_bytes_arg(o->blob, "--launch-measure-blob", blob, SEV_BLOB_LEN);
	if (r < 0)
		return r;
	if (have_measure_options(o)) {
		uint8_t tik[SEV_KEY_LEN], digest[SEV_DIGEST_LEN], expected[SEV_MEASUREMENT_LEN];

		r = need_platform(o);
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

static int verb_inject(const struct secret_options *o)
{
	struct qmp q = { .fd = -1 };
	json_object *sev = NULL, *meas = NULL, *data, *state, *args = NULL;
	uint8_t blob[SEV_BLOB_LEN], header[SEV_PACKET_HEADER_LEN], payload[SEV_SECRET_AREA_MAX];
	uint8_t tik[SEV_KEY_LEN], digest[SEV_DIGEST_LEN], expected[SEV_MEASUREMENT_LEN];
	struct secret_options p = *o;
	int64_t major, minor, build, policy;
	size_t n = 0;
	int r, len = 0;
	bool injected = false, continued = false;

	log_notice("secret: asking QEMU at '%s' for the SEV platform and the guest's state", o->qmp);
	r = qmp_open(&q, o->qmp, o->timeout);
	if (r == 0)
		r = qmp_execute(&q, "query-sev", NULL, &sev);
	if (r < 0)
		goto out;
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
	p.api_major = major, p.api_minor = minor, p.build_id = build, p.policy = policy;
	log_notice("secret: SEV API %" PRId64 ".%" PRId64 " build %" PRId64 ", policy 0x%" PRIx64
		   "; checking the policy, the firmware and the launch measurement", major, minor,
		   build, policy);
	r = check_platform(o, major, minor, build, policy);
	if (r < 0)
		goto out;
	r = qmp_execute(&q, "query-sev-launch-measure", NULL, &meas);
	if (r < 0)
		goto out;
	if (!json_object_object_get_ex(meas, "data", &data) ||
	    !json_object_is_type(data, json_type_string) ||
	    base64_decode(json_object_get_string(data), blob, sizeof(blob), &n) < 0 || n != SEV_BLOB_LEN) {
		r = log_error_errno(EPROTO, "'%s': query-sev-launch-measure did not give 48 bytes of "
				    "base64: nothing was injected", o->qmp);
		goto out;
	}
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
	r = qmp_execute(&q, "sev-inject-launch-secret", args, NULL);
	args = NULL;
	if (r == -EIO) {
		log_error("QEMU refused the secret: nothing was injected");
		goto out;
	}
	if (r < 0) {
		/* Sent, or partly: whether it went in is the host's to say, and it did not. */
		log_error("the secret was sent to '%s', but QEMU's answer never came: it may be in "
			  "the guest already. The guest stays paused unless the host resumes it: see "
			  "whether it boots; do not send this key to another host", o->qmp);
		goto out;
	}
	injected = true;
	if (!o->no_cont) {
		r = qmp_execute(&q, "cont", NULL, NULL);
		if (r < 0) {
			log_error("the secret was injected, but the guest was not resumed: send 'cont' "
				  "to '%s'", o->qmp);
			goto out;
		}
		continued = true;
		log_notice("secret: injected; the guest runs");
	} else {
		log_notice("secret: injected; the guest stays paused (--no-cont)");
	}
out:
	if (o->json && (r == 0 || r == -EBADMSG)) {
		_cleanup_free_ char *m = base64_encode(expected, SEV_MEASUREMENT_LEN);
		_cleanup_free_ char *d = base64_encode(digest, SEV_DIGEST_LEN);

		printf("{\"measurement_matches\":%s,\"expected_measurement\":", r == 0 ? "true" : "false");
		json_string(stdout, m ?: "");
		fputs(",\"launch_digest\":", stdout);
		json_string(stdout, d ?: "");
		printf(",\"api_major\":%ld,\"api_minor\":%ld,\"build_id\":%ld,\"policy\":%" PRId64
		       ",\"injected\":%s,\"continued\":%s}\n", p.api_major, p.api_minor, p.build_id,
		       p.policy, injected ? "true" : "false", continued ? "true" : "false");
	}
	OPENSSL_cleanse(payload, sizeof(payload));
	json_object_put(args);
	json_object_put(sev);
	json_object_put(meas);
	qmp_close(&q);
	return r;
}

/* ---- options ----------------------------------------------------------------------- */

static int __attribute__((format(printf, 1, 2))) usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("cvm-image: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -EINVAL;
}

/* What each verb requires; the rest is checked where it is read. */
static int check_options(struct secret_options *o, int argc, char **argv)
{
	bool key_ok = !!o->key_file + !!o->image + !!o->table == 1;
	const char *v = o->verb;

	if (!streq(v, "inject") && (o->min_api_major >= 0 || o->min_build >= 0))
		return usage("%s: --min-api and --min-build go with inject", v);
	if (o->kernel && (!o->initrd || !o->cmdline))
		return usage("%s: --kernel needs --initrd and --cmdline", v);
	if ((o->initrd || o->cmdline) && !o->kernel)
		return usage("%s: --initrd and --cmdline go with --kernel", v);
	if (o->firmware && o->launch_digest)
		return usage("%s: give --firmware or --launch-digest, not both", v);
	if (o->kernel && !o->firmware)
		return usage("%s: --kernel goes with --firmware", v);
	if (streq(v, "table")) {
		if (o->table || !key_ok)
			return usage("%s: give --key-file KEY or --image IMAGE", v);
		if (!o->output)
			return usage("%s: missing -o TABLE", v);
	} else if (streq(v, "measure")) {
		if (!o->tik || !o->blob || !have_measure_options(o))
			return usage("%s: give --tik, --launch-measure-blob and --firmware or "
				     "--launch-digest", v);
		if (need_platform(o) < 0)
			return -EINVAL;
	} else if (streq(v, "build")) {
		if (!o->tik || !o->tek || !o->blob)
			return usage("%s: give --tik, --tek and --launch-measure-blob", v);
		if (!key_ok || o->image)
			return usage("%s: give --key-file KEY or --table TABLE", v);
		if (argc - optind != 2)
			return usage("%s: give the HEADER and PAYLOAD files to write", v);
		o->header = argv[optind];
		o->payload = argv[optind + 1];
	} else if (streq(v, "inject")) {
		if (!o->qmp || !o->tik || !o->tek || !have_measure_options(o))
			return usage("%s: give --qmp, --tik, --tek and --firmware or --launch-digest", v);
		if (!key_ok || o->image)
			return usage("%s: give --key-file KEY or --table TABLE", v);
	}
	if (!streq(v, "build") && optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	return 0;
}

/* "--api-major" for ARG_API_MAJOR, for messages. */
static const char *option_name(int val)
{
	static char name[32];

	for (size_t i = 0; options[i].name; i++)
		if (options[i].val == val) {
			snprintf(name, sizeof(name), "--%s", options[i].name);
			return name;
		}
	return "?";
}

static int parse_options(int argc, char *argv[], struct secret_options *o)
{
	int64_t n;
	int c;

	while ((c = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
		switch (c) {
		case ARG_KEY_FILE: o->key_file = optarg; break;
		case ARG_IMAGE: o->image = optarg; break;
		case ARG_ENTRY:
			if (o->n_entries >= ENTRIES_MAX)
				return usage("at most %d --entry options", ENTRIES_MAX);
			o->entries[o->n_entries++] = optarg;
			break;
		case 'o': o->output = optarg; break;
		case ARG_FORCE: o->force = true; break;
		case ARG_TIK: o->tik = optarg; break;
		case ARG_TEK: o->tek = optarg; break;
		case ARG_BLOB: o->blob = optarg; break;
		case ARG_API_MAJOR:
		case ARG_API_MINOR:
		case ARG_BUILD_ID: {
			long *dest = c == ARG_API_MAJOR ? &o->api_major :
				     c == ARG_API_MINOR ? &o->api_minor : &o->build_id;

			if (parse_number(optarg, option_name(c), 255, &n) < 0)
				return -EINVAL;
			*dest = (long)n;
			break;
		}
		case ARG_POLICY:
			if (parse_number(optarg, "--policy", UINT32_MAX, &o->policy) < 0)
				return -EINVAL;
			break;
		case ARG_FIRMWARE: o->firmware = optarg; break;
		case ARG_KERNEL: o->kernel = optarg; break;
		case ARG_INITRD: o->initrd = optarg; break;
		case ARG_CMDLINE: o->cmdline = optarg; break;
		case ARG_LAUNCH_DIGEST: o->launch_digest = optarg; break;
		case ARG_TABLE: o->table = optarg; break;
		case ARG_IV: o->iv = optarg; break;
		case ARG_QMP_JSON: o->qmp_json = optarg; break;
		case ARG_QMP: o->qmp = optarg; break;
		case ARG_NO_CONT: o->no_cont = true; break;
		case ARG_MIN_API: {
			unsigned a, b;
			char tail;

			if (sscanf(optarg, "%u.%u%c", &a, &b, &tail) != 2 || a > 255 || b > 255)
				return usage("invalid --min-api '%s': expected MAJOR.MINOR, each 0 to 255", optarg);
			o->min_api_major = a, o->min_api_minor = b;
			break;
		}
		case ARG_MIN_BUILD:
			if (parse_number(optarg, "--min-build", 255, &n) < 0)
				return -EINVAL;
			o->min_build = (long)n;
			break;
		case ARG_TIMEOUT:
			if (parse_number(optarg, "--timeout", 86400, &n) < 0 || n == 0)
				return n == 0 ? usage("invalid --timeout '%s': at least 1 second", optarg) : -EINVAL;
			o->timeout = (unsigned)n;
			break;
		case ARG_JSON: o->json = true; break;
		case 'h':
			help();
			return 1;
		default:
			return usage("see '%s'", "cvm-image secret --help");
		}
	}
	return check_options(o, argc, argv);
}

static const struct {
	const char *name;
	int (*run)(const struct secret_options *o);
} verbs[] = {
	{ "table", verb_table },
	{ "measure", verb_measure },
	{ "build", verb_build },
	{ "inject", verb_inject },
};

/* cvm-image secret VERB [OPTIONS]: argv[0] is "secret". */
static int do_secret(int argc, char *argv[])
{
	struct secret_options o = { .api_major = -1, .api_minor = -1, .build_id = -1, .policy = -1,
				    .min_api_major = -1, .min_api_minor = -1, .min_build = -1,
				    .timeout = 120 };
	int r;

	if (argc < 2) {
		log_error("missing subcommand: table, measure, build or inject; see 'cvm-image secret --help'");
		return EXIT_USAGE;
	}
	if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
		help();
		return EXIT_OK;
	}
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
		if (!streq(argv[1], verbs[i].name))
			continue;
		o.verb = verbs[i].name;
		optind = 0; /* a fresh getopt: argv[0] is the subcommand */
		r = parse_options(argc - 1, argv + 1, &o);
		if (r > 0)
			return EXIT_OK;
		if (r < 0)
			return EXIT_USAGE;
		r = verbs[i].run(&o);
		/* A measurement that does not match is a failure (1), not a usage error. */
		return r == -EBADMSG ? EXIT_FAILED : exit_status_from_errno(r);
	}
	log_error("unknown subcommand '%s': table, measure, build or inject", argv[1]);
	return EXIT_USAGE;
}

const struct cvm_cmd cvm_cmd_secret = {
	.name = "secret",
	.cmd = do_secret,
	.help = "give an AMD SEV guest its disk key (table, measure, build, inject)",
};
