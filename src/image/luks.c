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

#include "luks.h"
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

/* The volume key digest's PBKDF2 iterations, from the header file cd was loaded from. */
static int digest_iterations(struct crypt_device *cd, uint32_t *ret)
{
	const char *path = crypt_get_metadata_device_name(cd) ?: crypt_get_device_name(cd);
	_cleanup_close_ int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	unsigned char b[4];

	if (fd < 0 || pread(fd, b, 4, 164) != 4)
		return log_error_errno(EIO, "cannot read the LUKS header's digest");
	*ret = be32(b);
	return 0;
}

int luks_unlock(struct crypt_device *cd, const struct secret *pass, struct secret *ret_vk,
		int *ret_slot)
{
	/* Said once per header (rekey and inspect try several keys on the same one). */
	static const void *warned_for;
	_cleanup_secret_ struct secret vk = {};
	size_t vk_size = LUKS_VOLUME_KEY_BYTES;
	uint32_t digest = 0;
	bool warn = warned_for != cd;
	int r;

	r = digest_iterations(cd, &digest);
	if (r < 0)
		return r;
	if (digest > LUKS_MAX_TRY_ITERATIONS)
		return log_error_errno(E2BIG, "the LUKS header's volume key digest asks for %" PRIu32
				       " PBKDF2 iterations, more than the %u any key is tried against: "
				       "no key was tried", digest, LUKS_MAX_TRY_ITERATIONS);
	warned_for = cd;
	r = secret_alloc(&vk, LUKS_VOLUME_KEY_BYTES);
	if (r < 0)
		return log_error_errno(r, "out of memory");
	for (int slot = 0; slot < 8; slot++) { /* LUKS1 has 8 */
		struct crypt_pbkdf_type pbkdf = {};
		crypt_keyslot_info st = crypt_keyslot_status(cd, slot);

		if (st != CRYPT_SLOT_ACTIVE && st != CRYPT_SLOT_ACTIVE_LAST)
			continue;
		if (crypt_keyslot_get_pbkdf(cd, slot, &pbkdf) < 0 ||
		    pbkdf.iterations > LUKS_MAX_TRY_ITERATIONS) {
			if (warn)
				log_warning("key slot %d asks for %" PRIu32 " PBKDF2 iterations, more than the "
					    "%u a key is tried against: not tried", slot, pbkdf.iterations,
					    LUKS_MAX_TRY_ITERATIONS);
			continue;
		}
		vk_size = LUKS_VOLUME_KEY_BYTES;
		r = crypt_volume_key_get(cd, slot, (char *)vk.data, &vk_size, (const char *)pass->data,
					 pass->size);
		if (r == -EPERM || r == -ENOENT)
			continue;
		if (r < 0)
			return log_error_errno(r, "cannot unlock the LUKS header: %m");
		vk.size = vk_size;
		*ret_slot = r;
		*ret_vk = vk;
		vk.data = NULL;
		return 0;
	}
	return -EPERM;
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
