/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An image cvm-image reads or edits: opened and locked (against other cvm-image processes and
 * against QEMU), raw or qcow2 (a qcow2 read in place through a FUSE export of
 * qemu-storage-daemon), its LUKS partition found and its header copied and loaded, and unlocked
 * with a key file or the recovery passphrase. Used by inspect and rekey. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/cleanup.h"

struct crypt_device;

struct image {
	char *path;       /* as given: what every message names */
	int lock_fd;      /* path, holding the flock and QEMU's locks */
	bool writable;
	bool qcow2;
	char *raw_path;   /* the guest's view as a file: path itself, or the qcow2's export */
	int fd;           /* raw_path */
	uint64_t size;    /* of the guest's view */
	char *export_dir; /* qcow2: the private directory holding the export */
	pid_t export_pid; /* qcow2: qemu-storage-daemon */
	bool export_copied; /* qcow2 without FUSE: raw_path is a temporary copy */
	uint64_t luks_off, luks_size, hdr_size; /* the LUKS partition and its header, bytes */
};

/* Where the encrypted payload (the root filesystem) starts in the guest's view, bytes. */
static inline uint64_t image_payload_off(const struct image *im)
{
	return im->luks_off + im->hdr_size;
}

/* IMAGE_WRITABLE: an exclusive lock and a writable view; otherwise shared and read-only. */
#define IMAGE_WRITABLE 1u

/*
 * Open path: -ENOENT/-EACCES as open(2), -EISDIR, -EMEDIUMTYPE when it is neither a
 * regular file nor a block device, -EBUSY when another cvm-image process or a QEMU holds it,
 * -EBADMSG for a damaged qcow2 (qemu-img check), -ENOMEDIUM when a qcow2's backing file is
 * missing. Logs.
 */
int image_open(const char *path, unsigned flags, struct image **ret);
void image_close(struct image *im);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct image *, image_close);

/* Find the LUKS1 partition and its header's size (im->luks_off, luks_size, hdr_size). Logs. */
int image_find_luks(struct image *im);

/* The header region as the image holds it now, copied into a pid-named 0600 temporary file
 * ($TMPDIR or /tmp) and loaded with libcryptsetup. The caller unlinks *ret_path. Logs. */
int image_load_header(struct image *im, char **ret_path, struct crypt_device **ret_cd);

/* The header region's bytes (im->hdr_size of them), newly allocated. Logs. */
int image_read_header(struct image *im, unsigned char **ret);

struct secret;
struct xts;

/* The secret that opens an image: the key file's bytes (key_file), or else the recovery
 * passphrase from recovery_file (its one trailing newline dropped). Logs. */
int image_read_secret(const char *key_file, const char *recovery_file, struct secret *ret);

/*
 * Try s on cd (the header of image_load_header()): the volume key in *ret_vk, the slot it
 * opened in *ret_slot and, with ret_xts, the AES-XTS cipher of the payload. -EPERM, not
 * logged, when it opens no slot (the caller says what that means for it); other errors
 * logged.
 */
int image_unlock(struct crypt_device *cd, const struct secret *s, struct secret *ret_vk,
		 int *ret_slot, struct xts **ret_xts);
