/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* LUKS1 headers through libcryptsetup, on a header file (no device-mapper, no loop device). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <libcryptsetup.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <openssl/evp.h>

#include "luks.h"
#include "luks1-open.h"
#include "xts.h"
#include "common/confine.h"
#include "shared/fault.h"
#include "common/log.h"
#include "shared/cleanup-libs.h"
#include "shared/cleanup.h"
#include "shared/util.h"


/* Slot 0 and the volume key digest: the fixed PBKDF2 minimum, no benchmark. */
static const struct crypt_pbkdf_type pbkdf_fast = {
	.type = CRYPT_KDF_PBKDF2,
	.hash = LUKS_HASH,
	.iterations = LUKS_FAST_ITERATIONS,
	.flags = CRYPT_PBKDF_NO_BENCHMARK,
};

static void luks_log(int level, const char *msg, void *userdata)
{
	size_t len = strlen(msg);

	/* libcryptsetup messages end in a newline; ours add one. Errors are reported by us. */
	log_debug("libcryptsetup: %.*s", (int)(len && msg[len - 1] == '\n' ? len - 1 : len), msg);
}

/* A crypt device on a header file, its messages routed to our debug log. Logs. */
static int header_open(const char *path, struct crypt_device **ret)
{
	int r;

	crypt_set_log_callback(NULL, luks_log, NULL);
	r = crypt_init(ret, path);
	if (r < 0)
		return log_error_errno(r, "cannot open LUKS header file '%s': %m", path);
	crypt_set_log_callback(*ret, luks_log, NULL);
	return 0;
}

void luks_header_done(struct luks_header *h)
{
	secret_free(&h->volume_key);
}

int luks_format(const char *header_path, const char *uuid, const struct secret *volume_key,
		const struct secret *key, const struct secret *recovery, uint32_t recovery_iter_ms,
		struct luks_header *ret)
{
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	_cleanup_secret_ struct secret vk = {};
	struct crypt_params_luks1 params = { .hash = LUKS_HASH };
	struct crypt_pbkdf_type slow = {
		.type = CRYPT_KDF_PBKDF2,
		.hash = LUKS_HASH,
		.time_ms = recovery_iter_ms,
	};
	struct crypt_pbkdf_type got;
	size_t vk_size = LUKS_VOLUME_KEY_BYTES;
	int r;

	r = header_open(header_path, &cd);
	if (r < 0)
		return r;
	r = crypt_set_pbkdf_type(cd, &pbkdf_fast);
	if (r < 0)
		return log_error_errno(r, "cannot set PBKDF2 parameters: %m");
	if (volume_key && volume_key->size != LUKS_VOLUME_KEY_BYTES)
		return log_error_errno(EINVAL, "a volume key of %zu bytes, not %d", volume_key->size,
				       LUKS_VOLUME_KEY_BYTES);
	r = crypt_format(cd, CRYPT_LUKS1, LUKS_CIPHER, LUKS_CIPHER_MODE, uuid,
			 volume_key ? (const char *)volume_key->data : NULL, LUKS_VOLUME_KEY_BYTES,
			 &params);
	if (r < 0)
		return log_error_errno(r, "cannot format LUKS1 header: %m");

	r = secret_alloc(&vk, LUKS_VOLUME_KEY_BYTES);
	if (r < 0)
		return log_error_errno(r, "cannot allocate volume key: %m");
	r = crypt_keyslot_add_by_volume_key(cd, LUKS_KEY_SLOT, NULL, 0, (const char *)key->data,
					    key->size);
	if (r < 0)
		return log_error_errno(r, "cannot add key slot %d: %m", LUKS_KEY_SLOT);
	r = crypt_volume_key_get(cd, LUKS_KEY_SLOT, (char *)vk.data, &vk_size,
				 (const char *)key->data, key->size);
	if (r < 0 || vk_size != LUKS_VOLUME_KEY_BYTES)
		return log_error_errno(r < 0 ? r : -EIO, "cannot read back the volume key: %m");

	memset(ret, 0, sizeof(*ret));
	ret->slots[ret->n_slots++] = (struct luks_slot_info){ LUKS_KEY_SLOT, LUKS_FAST_ITERATIONS };

	if (recovery) {
		/* Benchmarked here, on the build host: never calibrated inside an emulator. */
		r = crypt_set_pbkdf_type(cd, &slow);
		if (r < 0)
			return log_error_errno(r, "cannot set PBKDF2 parameters: %m");
		r = crypt_keyslot_add_by_volume_key(cd, LUKS_RECOVERY_SLOT, (const char *)vk.data,
						    vk.size, (const char *)recovery->data,
						    recovery->size);
		if (r < 0)
			return log_error_errno(r, "cannot add recovery key slot %d: %m",
					       LUKS_RECOVERY_SLOT);
		if (crypt_keyslot_get_pbkdf(cd, LUKS_RECOVERY_SLOT, &got) < 0)
			got.iterations = 0;
		ret->slots[ret->n_slots++] =
			(struct luks_slot_info){ LUKS_RECOVERY_SLOT, got.iterations };
	}

	ret->payload_offset = crypt_get_data_offset(cd) * 512;
	ret->volume_key = vk;
	vk.data = NULL;
	return 0;
}

int luks_header_size(int fd, uint64_t off, uint64_t *ret)
{
	unsigned char phdr[112];
	uint32_t payload;
	int r = pread_all(fd, phdr, sizeof(phdr), (off_t)off);

	if (r < 0)
		return r;
	/* LUKS1 on-disk header: magic "LUKS\xba\xbe", big-endian version 1, and at byte 104
	 * the payload offset in 512-byte sectors. */
	if (memcmp(phdr, "LUKS\xba\xbe", 6) != 0 || phdr[6] != 0 || phdr[7] != 1)
		return -EMEDIUMTYPE;
	memcpy(&payload, phdr + 104, 4);
	payload = ntohl(payload);
	if (payload < 8 || payload > 65536)
		return -EMEDIUMTYPE;
	*ret = (uint64_t)payload * 512;
	return 0;
}

int luks_load(const char *path, struct crypt_device **ret)
{
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	int r;

	r = header_open(path, &cd);
	if (r < 0)
		return r;
	r = crypt_load(cd, CRYPT_LUKS1, NULL);
	if (r < 0)
		return log_error_errno(r, "cannot load the LUKS1 header: %m");
	*ret = TAKE_PTR(cd);
	return 0;
}

void luks_free(struct crypt_device *cd)
{
	crypt_free(cd);
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What the unlock child is given, and answers: the slot's number, then the volume key. */
struct unlock_args {
	int fd;
	const struct secret *pass;
};

#define ANSWER_LEN (1 + LUKS_VOLUME_KEY_BYTES)
/* The header region a LUKS1 header can have (luks_header_size()'s bound). */
#define HDR_REGION_MAX (65536 * 512)

/* In confine.c's child: the header copy read from its fd, the slots tried (luks1-open.c). */
static int unlock_child(void *userdata, int out_fd)
{
	const struct unlock_args *a = userdata;
	_cleanup_free_ unsigned char *hdr = NULL;
	unsigned char answer[ANSWER_LEN] = {};
	struct stat st;
	int slot = -1, r;

	if (fault_requested("luks-reader-probe")) {
		int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC), e_open = fd < 0 ? errno : 0;
		int sk = socket(AF_ALG, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), e_sock = sk < 0 ? errno : 0;

		log_warning("luks-reader-probe: uid %u, open %s, socket %s", (unsigned)geteuid(),
			    strerrorname_np(e_open) ?: "ok", strerrorname_np(e_sock) ?: "ok");
	}
	if (fault_requested("luks-reader-crash"))
		abort();
	if (fstat(a->fd, &st) < 0)
		return -errno;
	if (st.st_size < 592 || st.st_size > HDR_REGION_MAX)
		return -EMEDIUMTYPE;
	hdr = malloc((size_t)st.st_size);
	if (!hdr)
		return -ENOMEM;
	r = pread_all(a->fd, hdr, (size_t)st.st_size, 0);
	if (r < 0)
		return r;
	r = luks1_open(hdr, (size_t)st.st_size, a->pass, LUKS_MAX_TRY_ITERATIONS, answer + 1, &slot);
	if (r == -EPERM)
		answer[0] = 0xff;
	else if (r < 0)
		return r;
	else
		answer[0] = (unsigned char)slot;
	r = write_all(out_fd, answer, r == 0 ? ANSWER_LEN : 1);
	OPENSSL_cleanse(answer, sizeof(answer));
	return r;
}

/* What the child will use of OpenSSL, made ready here: once forked and filtered, it could not
 * read the configuration or load a provider. */
static int openssl_ready(const EVP_MD *md)
{
	static const unsigned char key[64] = { 1 };
	_cleanup_(xts_freep) struct xts *x = NULL;
	unsigned char out[20];

	if (PKCS5_PBKDF2_HMAC("", 0, key, 1, 1, md, sizeof(out), out) <= 0 ||
	    xts_new(key, sizeof(key), &x) < 0)
		return -EIO;
	return 0;
}

int luks_unlock(struct crypt_device *cd, const struct secret *pass, struct secret *ret_vk,
		int *ret_slot)
{
	/* Said once per header (rekey and inspect try several keys on the same one). */
	static const void *warned_for;
	const char *path = crypt_get_metadata_device_name(cd) ?: crypt_get_device_name(cd);
	_cleanup_close_ int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	_cleanup_secret_ struct secret vk = {};
	struct unlock_args a = { .fd = fd, .pass = pass };
	unsigned char hdr[592];
	struct luks_desc d;
	char *answer = NULL;
	size_t len = 0;
	bool warn = warned_for != cd;
	const EVP_MD *md;
	int r, sig;

	if (fd < 0 || pread_all(fd, hdr, sizeof(hdr), 0) < 0 || luks_describe(hdr, sizeof(hdr), &d) < 0)
		return log_error_errno(EIO, "cannot read the LUKS header");
	if (d.digest_iterations > LUKS_MAX_TRY_ITERATIONS)
		return log_error_errno(E2BIG, "the LUKS header's volume key digest asks for %" PRIu32
				       " PBKDF2 iterations, more than the %u any key is tried against: "
				       "no key was tried", d.digest_iterations, LUKS_MAX_TRY_ITERATIONS);
	md = luks1_hash(hdr, sizeof(hdr));
	if (!md || strcmp(d.cipher, LUKS_CIPHER) != 0 || strcmp(d.mode, LUKS_CIPHER_MODE) != 0 ||
	    d.key_bits != LUKS_VOLUME_KEY_BYTES * 8)
		return log_error_errno(EMEDIUMTYPE, "the LUKS header is %s-%s with a %u-bit key and %s: "
				       "cvm-image opens aes-xts-plain64 with a 512-bit key and sha256, "
				       "sha1 or sha512", d.cipher, d.mode, d.key_bits, d.hash);
	warned_for = cd;
	for (int slot = 0; warn && slot < 8; slot++)
		if (d.slots[slot].active && d.slots[slot].iterations > LUKS_MAX_TRY_ITERATIONS)
			log_warning("key slot %d asks for %" PRIu32 " PBKDF2 iterations, more than the "
				    "%u a key is tried against: not tried", slot, d.slots[slot].iterations,
				    LUKS_MAX_TRY_ITERATIONS);
	if (openssl_ready(md) < 0)
		return log_error_errno(EIO, "cannot set up PBKDF2 and AES-XTS");
	r = confine_run(unlock_child, &a, fd, ANSWER_LEN, &answer, &len, &sig);
	if (r == -ECHILD)
		return log_error_errno(ECHILD, "the confined reader of the LUKS key slots was killed (%s): "
				       "the header is damaged or crafted; no slot was opened",
				       sig ? strsignal(sig) : "its answer was too long");
	if (r < 0)
		return log_error_errno(r, "cannot unlock the LUKS header: %m");
	if (len == 1 && (unsigned char)answer[0] == 0xff) {
		free(answer);
		return -EPERM;
	}
	if (len != ANSWER_LEN || (unsigned char)answer[0] > 7) {
		OPENSSL_cleanse(answer, len);
		free(answer);
		return log_error_errno(EIO, "the LUKS header's reader gave a malformed answer");
	}
	r = secret_alloc(&vk, LUKS_VOLUME_KEY_BYTES);
	if (r == 0)
		memcpy(vk.data, answer + 1, LUKS_VOLUME_KEY_BYTES);
	*ret_slot = (unsigned char)answer[0];
	OPENSSL_cleanse(answer, len);
	free(answer);
	if (r < 0)
		return log_error_errno(r, "out of memory");
	*ret_vk = vk;
	vk.data = NULL;
	return 0;
}

int luks_add_fast_key(struct crypt_device *cd, const struct secret *vk, const struct secret *key,
		      int slot)
{
	int r = crypt_set_pbkdf_type(cd, &pbkdf_fast);

	if (r == 0)
		r = crypt_keyslot_add_by_volume_key(cd, slot < 0 ? CRYPT_ANY_SLOT : slot,
						    (const char *)vk->data, vk->size,
						    (const char *)key->data, key->size);
	if (r < 0)
		return log_error_errno(r, "cannot add a key slot: %m");
	return r;
}

int luks_kill_slot(struct crypt_device *cd, int slot)
{
	int r = crypt_keyslot_destroy(cd, slot);

	if (r < 0)
		return log_error_errno(r, "cannot remove key slot %d: %m", slot);
	return 0;
}

const char *luks_uuid(struct crypt_device *cd)
{
	return crypt_get_uuid(cd);
}

unsigned luks_active_slots(struct crypt_device *cd)
{
	unsigned mask = 0;

	for (int i = 0; i < crypt_keyslot_max(CRYPT_LUKS1); i++) {
		crypt_keyslot_info k = crypt_keyslot_status(cd, i);

		if (k == CRYPT_SLOT_ACTIVE || k == CRYPT_SLOT_ACTIVE_LAST)
			mask |= 1u << i;
	}
	return mask;
}

int luks_pin(const char *uuid, const struct secret *volume_key, char out[LUKS_PIN_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	char hex[2 * LUKS_VOLUME_KEY_BYTES + 1], nodash[33];
	unsigned char sum[SHA256_DIGEST_LENGTH];
	size_t j = 0;

	if (volume_key->size != LUKS_VOLUME_KEY_BYTES)
		return -EINVAL;
	for (size_t i = 0; uuid[i] && j < 32; i++)
		if (uuid[i] != '-')
			nodash[j++] = uuid[i];
	nodash[j] = '\0';
	/* The key as the kernel's table shows it (dmsetup table --showkeys): lower-case hex. */
	for (size_t i = 0; i < volume_key->size; i++) {
		hex[2 * i] = digits[volume_key->data[i] >> 4];
		hex[2 * i + 1] = digits[volume_key->data[i] & 15];
	}
	SHA256((const unsigned char *)hex, 2 * LUKS_VOLUME_KEY_BYTES, sum);
	OPENSSL_cleanse(hex, sizeof(hex));
	j = (size_t)snprintf(out, LUKS_PIN_LEN + 1, "%s %s-%s %d ", nodash, LUKS_CIPHER, LUKS_CIPHER_MODE,
			     LUKS_VOLUME_KEY_BYTES * 8);
	for (size_t i = 0; i < sizeof(sum); i++) {
		out[j++] = digits[sum[i] >> 4];
		out[j++] = digits[sum[i] & 15];
	}
	out[j++] = '\n';
	out[j] = '\0';
	return j == LUKS_PIN_LEN ? 0 : -EIO;
}


static void printable_field(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

int luks_describe(const unsigned char *hdr, size_t len, struct luks_desc *ret)
{
	struct luks_desc d = {};

	/* LUKS1 on-disk format: magic[6] version[2] cipher-name[32] cipher-mode[32]
	 * hash-spec[32] payload-offset[4] key-bytes[4] mk-digest[20] mk-digest-salt[32]
	 * mk-digest-iter[4] uuid[40], then 8 key slots of active[4] iterations[4] salt[32]
	 * key-material-offset[4] stripes[4], from byte 208. */
	if (len < 208 + 8 * 48 || memcmp(hdr, "LUKS\xba\xbe", 6) != 0)
		return -EMEDIUMTYPE;
	d.version = (unsigned)hdr[6] << 8 | hdr[7];
	if (d.version != 1)
		return -EMEDIUMTYPE;
	memcpy(d.cipher, hdr + 8, 32);
	memcpy(d.mode, hdr + 40, 32);
	memcpy(d.hash, hdr + 72, 32);
	d.payload_offset = (uint64_t)be32(hdr + 104) * 512;
	d.key_bits = be32(hdr + 108) * 8;
	d.digest_iterations = be32(hdr + 164);
	memcpy(d.uuid, hdr + 168, 40);
	for (int i = 0; i < 8; i++) {
		const unsigned char *s = hdr + 208 + 48 * i;

		d.slots[i].active = be32(s) == 0x00AC71F3;
		d.slots[i].iterations = be32(s + 4);
	}
	/* The names are the image's to choose: printable, or they could drive the terminal
	 * they are printed on. */
	printable_field(d.cipher);
	printable_field(d.mode);
	printable_field(d.hash);
	printable_field(d.uuid);
	*ret = d;
	return 0;
}
