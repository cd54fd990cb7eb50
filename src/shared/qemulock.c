/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The image locks QEMU itself takes (block/file-posix.c), so that a running VM and cvm-image
 * see each other. Never logs. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "qemulock.h"

/*
 * QEMU's scheme: for permission bit i (consistent read, write, write unchanged, resize, ...),
 * a shared OFD lock on byte 100 + i says "I hold it", one on byte 200 + i says "I do not let
 * others hold it". Byte ranges are OFD locks (F_OFD_SETLK), not flock(), which QEMU ignores.
 */
#define PERM_BASE 100
#define SHARED_BASE 200
#define N_PERMS 5 /* consistent read, write, write unchanged, resize, graph mod */

enum { PERM_CONSISTENT_READ, PERM_WRITE, PERM_WRITE_UNCHANGED, PERM_RESIZE };
/* (N_PERMS: the range QEMU uses; write-unchanged is shared, as QEMU's disks share it.) */

static int ofd(int fd, int cmd, short type, off_t byte, bool *ret_conflict)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = byte;
	fl.l_len = 1;
	if (fcntl(fd, cmd, &fl) < 0)
		return -errno;
	if (ret_conflict)
		*ret_conflict = fl.l_type != F_UNLCK;
	return 0;
}

int qemu_lock_image(int fd, bool write)
{
	/* Which of the others' bytes conflict with us: with write, another's write or resize,
	 * or one that does not let us read, write or resize; read-only, another's write or
	 * resize, or one that does not let us read. Reads are shared, as QEMU shares them. */
	const off_t conflicts_w[] = { PERM_BASE + PERM_WRITE, PERM_BASE + PERM_RESIZE,
				      SHARED_BASE + PERM_CONSISTENT_READ, SHARED_BASE + PERM_WRITE,
				      SHARED_BASE + PERM_RESIZE };
	const off_t conflicts_r[] = { PERM_BASE + PERM_WRITE, PERM_BASE + PERM_RESIZE,
				      SHARED_BASE + PERM_CONSISTENT_READ };
	/* What we hold, and what we do not share. */
	const off_t ours_w[] = { PERM_BASE + PERM_CONSISTENT_READ, PERM_BASE + PERM_WRITE,
				 PERM_BASE + PERM_RESIZE, SHARED_BASE + PERM_WRITE,
				 SHARED_BASE + PERM_RESIZE };
	const off_t ours_r[] = { PERM_BASE + PERM_CONSISTENT_READ, SHARED_BASE + PERM_WRITE,
				 SHARED_BASE + PERM_RESIZE };
	const off_t *c = write ? conflicts_w : conflicts_r, *o = write ? ours_w : ours_r;
	size_t nc = write ? sizeof(conflicts_w) / sizeof(*c) : sizeof(conflicts_r) / sizeof(*c);
	size_t no = write ? sizeof(ours_w) / sizeof(*o) : sizeof(ours_r) / sizeof(*o);
	int r;

	for (size_t i = 0; i < nc; i++) {
		bool conflict = false;

		/* F_OFD_GETLK with a write lock: any lock of another open file description. */
		r = ofd(fd, F_OFD_GETLK, F_WRLCK, c[i], &conflict);
		if (r < 0)
			return r;
		if (conflict)
			return -EBUSY;
	}
	for (size_t i = 0; i < no; i++) {
		r = ofd(fd, F_OFD_SETLK, F_RDLCK, o[i], NULL);
		if (r == -EAGAIN || r == -EACCES)
			return -EBUSY;
		if (r < 0)
			return r;
	}
	return 0;
}
