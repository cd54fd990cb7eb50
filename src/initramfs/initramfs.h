/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An initramfs image as a chain of cpio archives (an uncompressed early one, a compressed
 * main one, ...): find members and replace the key file in it, keeping each archive's
 * compression and every other member's contents, owner and mode. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* An installed kernel's initramfs, by the names the tools give it: which 0 is Debian's
 * (/boot/initrd.img-VERSION), 1 dracut's default (/boot/initramfs-VERSION.img). NULL when
 * out of memory. */
#define INITRAMFS_NAMES 2
char *initramfs_path(const char *version, unsigned which);

/*
 * Replace the contents of every member whose name ends in ".key" and whose contents are
 * exactly old (the disk key, wherever the initramfs tool put it: cryptroot/keyfiles/ for
 * initramfs-tools, etc/cryptsetup-keys.d/ for dracut) with new. Archives without such a
 * member are copied byte for byte; plain and gzip archives are changed in place (gzpatch.h)
 * when new is as long as old, others are written again through libarchive. *ret_replaced counts the members replaced.
 * Returns 0, -EMEDIUMTYPE for a compression we cannot write back (logged, naming it), or
 * another -errno (logged).
 */
int initramfs_replace_key(const char *what, const void *in, size_t in_len, const void *old,
			  size_t old_len, const void *new_key, size_t new_len, void **ret,
			  size_t *ret_len, unsigned *ret_replaced);

/* The same, and in the archives rewritten, every occurrence of the LUKS UUID old_uuid (with
 * dashes or without) in member names and in other regular members' contents replaced by
 * new_uuid (same length): the key file's name, crypttab; and every member named *.pin that
 * holds exactly old_pin (the volume key's pin, luks.h) given new_pin (as long) instead. Any of
 * old_uuid and old_pin may be NULL. */
int initramfs_replace_key_uuid(const char *what, const void *in, size_t in_len, const void *old,
			       size_t old_len, const void *new_key, size_t new_len,
			       const char *old_uuid, const char *new_uuid, const char *old_pin,
			       const char *new_pin, void **ret, size_t *ret_len,
			       unsigned *ret_replaced);


/* Count the members that hold exactly key (for checks). Logs. */
int initramfs_count_key(const char *what, const void *in, size_t in_len, const void *key,
			size_t key_len, unsigned *ret_count);

/* A member named *.key, as the kernel would unpack it. */
struct initramfs_member {
	char *name;
	unsigned mode; /* permission bits */
	bool regular, holds_key;
};

/* Every member whose name ends in ".key", in every archive of the chain, and whether it holds
 * exactly key (at most max of them). Only those members' contents are read. Logs. */
int initramfs_key_members(const char *what, const void *in, size_t in_len, const void *key,
			  size_t key_len, struct initramfs_member *ret, size_t max, size_t *ret_n);
void initramfs_members_done(struct initramfs_member *m, size_t n);

/* A regular member whose contents are wanted too: the last one named name (as the kernel
 * unpacks them), at most max - 1 bytes into buf, NUL-terminated; found says whether it was. */
struct initramfs_text {
	const char *name;
	char *buf;
	size_t max;
	bool found;
};

/* initramfs_key_members() and, with text not NULL, that member's contents, in one pass. */
int initramfs_scan(const char *what, const void *in, size_t in_len, const void *key,
		   size_t key_len, struct initramfs_member *ret, size_t max, size_t *ret_n,
		   struct initramfs_text *text);
/*
 * cvm-image build's key archive: every member of the initramfs image in (in_len bytes) that
 * holds exactly key is zeroed where it is (same length, same compression: see
 * initramfs_replace_key()) and the key is written once more, under each such name and mode,
 * into an uncompressed newc archive appended at a 512-byte boundary (the kernel unpacks the
 * archives in order; a later regular file replaces an earlier one). rekey then changes only
 * the end of the file (initramfs_key_archive()), and the key is nowhere else in it.
 * *ret (NULL and *ret_moved 0 when no member holds the key) is the new image. Logs.
 */
int initramfs_move_key(const char *what, const void *in, size_t in_len, const void *key,
		       size_t key_len, void **ret, size_t *ret_len, unsigned *ret_moved);

/* The largest initramfs inspect, rekey and --reencrypt read: beyond it all three refuse it
 * alike (the whole-file paths hold it in memory; the key archive path alone would not need
 * to, but one image gets one verdict). */
#define INITRAMFS_SIZE_MAX (512ULL * 1024 * 1024)

/* How far from the end of an initramfs its key archive may start. */
#define INITRAMFS_KEY_ARCHIVE_MAX (64 * 1024)

/*
 * Whether tail, the last len bytes of an initramfs read from a file offset that is a multiple
 * of 4, ends with such a key archive whose members are all key_len bytes long: the number of
 * members (at most max), each one's data at ret_offs[i] in tail; 0 if it does not.
 */
int initramfs_key_archive(const void *tail, size_t len, size_t key_len, size_t *ret_offs,
			  size_t max);

/*
 * The key members of an initramfs too large to hold in memory, changed with bounded memory.
 * When it ends with cvm-image build's key archive, that alone is read and planned. Otherwise
 * it is read in pieces through f (gzpatch.h's struct gz_file), its uncompressed archives and one
 * gzip archive holding the key, whose deflate blocks around the key are compressed again
 * (gz_stream_*). Counts the members holding old (*ret_old, to be changed) and, when new_key
 * is given, those holding new_key already (*ret_new: a resumed rekey). Returns 0 with *ret
 * the plan (NULL when nothing holds old), -EOPNOTSUPP when this initramfs needs the
 * whole-file path (another compression, a key of another length, no room for a longer gzip
 * member; nothing logged), or -errno (logged here, or by f's reader for its own errors).
 * Nothing is written. An f without truncate makes it a read-only count: zstd archives are read
 * and counted but not planned, so such a plan must not be applied.
 */
struct gz_file;
struct initramfs_edit;
int initramfs_stream_plan(const char *what, const struct gz_file *f, const void *old,
			  const void *new_key, size_t key_len, struct initramfs_edit **ret,
			  unsigned *ret_old, unsigned *ret_new);
/* Whether the plan changes only cvm-image build's key archive at the end of the file: then
 * only its last INITRAMFS_KEY_ARCHIVE_MAX bytes were read, and only the key is written. */
bool initramfs_edit_in_key_archive(const struct initramfs_edit *e);
/* Write it through f. *ret_recompressed: the bytes of data compressed again. Logs, but for
 * f's own errors (its writer logs them). */
int initramfs_stream_apply(const char *what, struct initramfs_edit *e, const struct gz_file *f,
			   size_t *ret_recompressed);
void initramfs_edit_free(struct initramfs_edit *e);
