/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bubblewrap route as an ordinary user: the tarball unpacked by that user, the tools run
 * in a user namespace where the user is root, and what the tree cannot hold (the tarball's
 * owners, device nodes, security.* and trusted.* xattrs, POSIX ACLs) kept here from the
 * archive and written into the ext4 afterwards (image/ext4-owners.c).
 */
#pragma once

#include <stdbool.h>

#include "image/ext4-owners.h"

struct archive_entry;

/*
 * Before unpacking one entry (path and the hard link's target normalised, "etc/shadow"; seen:
 * a tsearch(3) tree of the paths with records so far, NULL at first, tdestroy()ed with free()):
 * keep in o what the user cannot unpack, and change the entry to what it can: the user's own
 * ids (libarchive drops a setuid or setgid bit whose owner it cannot give), none of the xattrs
 * kept. A record of an earlier entry of the same path is dropped (the later one replaces it).
 * *ret_skip: a device node (or a hard link to one), made in the ext4 instead. 0 or -ENOMEM,
 * logged.
 */
int owners_defer_entry(struct ext4_owners *o, void **seen, struct archive_entry *e,
		       const char *path, const char *hardlink, bool *ret_skip);

/* After unpacking into the tree at dirfd: each kept file's identity (to tell it from a
 * replacement later), its ACLs read and removed (mke2fs in the user namespace would see their
 * ids mapped). Logs. */
int owners_after_unpack(struct ext4_owners *o, int dirfd);

/*
 * After the tools ran, before mke2fs: a file gone, or of another type, gets nothing; one the
 * tools replaced or rewrote keeps its owner (as sed -i, dpkg and cvm-image's own writes keep
 * it on the root route) but not its xattrs (the kernel drops file capabilities on a write).
 * Logs.
 */
int owners_settle(struct ext4_owners *o, int rootfd);
