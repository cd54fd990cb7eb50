/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The rootfs tarball: index scan with path checks, and secure extraction (libarchive). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct rootfs_index {
	uint64_t entries;
	uint64_t files;
	uint64_t data_bytes;  /* sum of regular file sizes, each rounded up to 4 KiB */
	char *os_release;     /* contents of etc/os-release or usr/lib/os-release, or NULL */
	const char *os_release_path;
	uint64_t max_uid, max_gid; /* the largest owner and group of any entry */
	uint64_t devices;     /* character and block device nodes */
	char **paths;         /* every entry, normalised ("etc/passwd"), sorted */
	size_t n_paths, cap_paths;
};

/*
 * The first entry matching the fnmatch(3) glob (relative, e.g. "boot/vmlinuz-*"), or NULL.
 * /bin, /sbin, /lib* and /usr/bin, /usr/sbin, /usr/lib* count as the same (merged /usr).
 */
const char *rootfs_index_find(const struct rootfs_index *idx, const char *glob);

void rootfs_index_done(struct rootfs_index *idx);

/*
 * Read the whole archive once, to its end (so that the compression's checksums are checked:
 * gzip's CRC-32 by zlib, xz and zstd by libarchive), without extracting anything: refuse
 * absolute paths, ".." components, entries below a symlink of the archive, hard links that
 * leave the tree or go through a symlink or to no earlier entry, names over 255 bytes,
 * paths over 4095 bytes or 1000 levels; detect truncation; find os-release; add up the
 * size. Logs, naming the bad entry.
 */
int tarball_scan(const char *path, struct rootfs_index *ret);

/* Extract into dir (which must exist) with numeric owners, modes, times, xattrs, ACLs and
 * libarchive's SECURE_* flags. defer (an ordinary user's build, owners.h): what the user cannot
 * unpack goes there instead; NULL as root. Logs. */
struct ext4_owners;
int tarball_extract(const char *path, const char *dir, uint64_t expected_entries,
		    struct ext4_owners *defer);

/* Write the archive again to fd as plain pax, every owner numeric (no user or group names),
 * modes, times with nanoseconds, xattrs, ACLs, hard links, sparse maps as they were: for a
 * tar that unpacks it elsewhere (the appliance). Logs. */
int tarball_export(const char *path, int fd);
