/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The image locks QEMU itself takes (block/file-posix.c), so that a running VM and cvm-image
 * see each other. Never logs. */
#pragma once

#include <stdbool.h>

/*
 * On an open image file: fail with -EBUSY if a QEMU (or qemu-img, qemu-io, qemu-nbd) has it
 * open in a way that conflicts (someone writing or resizing it, or not letting others read,
 * or with write, not letting others write), else
 * take QEMU's OFD locks for our use, held as long as the open file description: a QEMU that
 * starts on the image meanwhile fails with "Failed to get ... lock". Returns 0 or -errno.
 */
int qemu_lock_image(int fd, bool write);
