/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Cleanup attributes for the handles of the libraries cvm-image links, one definition each
 * (cleanup.h has those of libc). Include it where such a handle is declared. */
#pragma once

#include <archive.h>
#include <blkid/blkid.h>
#include <guestfs.h>
#include <libcryptsetup.h>
#include <libdeflate.h>
#include <libfdisk/libfdisk.h>
#include <libmount/libmount.h>

#include "cleanup.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_read_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_write_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(blkid_probe, blkid_free_probe);
DEFINE_TRIVIAL_CLEANUP_FUNC(guestfs_h *, guestfs_close);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, crypt_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libdeflate_decompressor *, libdeflate_free_decompressor);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_context *, fdisk_unref_context);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_partition *, fdisk_unref_partition);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_parttype *, fdisk_unref_parttype);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_table *, mnt_unref_table);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_fs *, mnt_unref_fs);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_iter *, mnt_free_iter);
