/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* LUKS1 headers through libcryptsetup, on a header file (no device-mapper, no loop device). */
#include <errno.h>
#include <string.h>

#include <libcryptsetup.h>

#include "log.h"
#include "luks.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, crypt_free);

static void luks_log(int level, const char *msg, void *userdata)
{
	size_t len = strlen(msg);

	/* libcryptsetup messages end in a newline; ours add one. Errors are reported by us. */
	log_debug("libcryptsetup: %.*s", (int)(len && msg[len - 1] == '\n' ? len - 1 : len), msg);
}

void luks_header_done(struct luks_header *h)
{
	secret_free(&h->volume_key);
}

int luks_format(const char *header_path, const char *uuid, const struct secret *key,
		const struct secret *recovery, uint32_t recovery_iter_ms, struct luks_header *ret)
{
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	_cleanup_secret_ struct secret vk = {};
	struct crypt_params_luks1 params = { .hash = LUKS_HASH };
	struct crypt_pbkdf_type fast = {
		.type = CRYPT_KDF_PBKDF2,
		.hash = LUKS_HASH,
		.iterations = LUKS_FAST_ITERATIONS,
		.flags = CRYPT_PBKDF_NO_BENCHMARK,
	};
	struct crypt_pbkdf_type slow = {
		.type = CRYPT_KDF_PBKDF2,
		.hash = LUKS_HASH,
		.time_ms = recovery_iter_ms,
	};
	struct crypt_pbkdf_type got;
	size_t vk_size = LUKS_VOLUME_KEY_BYTES;
	int r;

	crypt_set_log_callback(NULL, luks_log, NULL);
	r = crypt_init(&cd, header_path);
	if (r < 0)
		return log_error_errno(r, "cannot open LUKS header file '%s': %m", header_path);
	crypt_set_log_callback(cd, luks_log, NULL);

	/* The volume key digest and slot 0 use the fixed minimum: no benchmark. */
	r = crypt_set_pbkdf_type(cd, &fast);
	if (r < 0)
		return log_error_errno(r, "cannot set PBKDF2 parameters: %m");
	r = crypt_format(cd, CRYPT_LUKS1, LUKS_CIPHER, LUKS_CIPHER_MODE, uuid, NULL,
			 LUKS_VOLUME_KEY_BYTES, &params);
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
