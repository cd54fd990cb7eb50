/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers that never log: sizes, paths, files, time, strings. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KiB (UINT64_C(1024))
#define MiB (UINT64_C(1024) * KiB)
#define GiB (UINT64_C(1024) * MiB)

/* A decimal from 1 to max (no sign, nothing after it). Returns 0 or -EINVAL. */
int parse_1_to(const char *s, unsigned long max, unsigned long *ret);
/* Parse a PBKDF2 time in milliseconds, 1 to 60000. Returns 0 or -EINVAL. */
int parse_iter_time(const char *s, uint32_t *ret);
/* A time limit: 1 to 86400 seconds, decimal. -EINVAL otherwise. */
int parse_seconds(const char *s, unsigned *ret);

/* fsync() the directory that holds path, so a rename in it is durable. */
int fsync_dir_of(const char *path);

/* Parse "512M", "4G", "4GiB", "1048576", "1.5G" into bytes. Returns 0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *ret);
/* Format bytes as "1.5 GiB" into buf. */
const char *format_size(uint64_t bytes, char *buf, size_t len);

#define MIN(a, b) ((a) < (b) ? (a) : (b))

static inline uint64_t round_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) / align * align;
}
static inline uint64_t round_down(uint64_t v, uint64_t align)
{
	return v / align * align;
}

/* Make room for need elements of size bytes in the array *p of *cap elements: its capacity
 * doubled (at least 16) when too small, as systemd's GREEDY_REALLOC. Returns 0 or -ENOMEM
 * (*p untouched). */
int greedy_realloc(void **p, size_t *cap, size_t need, size_t size);

/* Monotonic clock in seconds. */
double now_seconds(void);

/* pwrite()/pread() the whole buffer; -errno on failure, -EIO on short read at EOF. */
/* The whole buffer written (to a pipe, say), or -errno. */
int write_all(int fd, const void *buf, size_t len);
int pwrite_all(int fd, const void *buf, size_t len, off_t off);
int pread_all(int fd, void *buf, size_t len, off_t off);

/* Copy [src_off, src_off+len) of src into dst at dst_off, skipping the source's holes and
 * all-zero blocks so that the destination stays sparse. The destination range must read as
 * zeros already (a fresh sparse file): what is skipped is not written. */
int copy_range_sparse(int src, off_t src_off, int dst, off_t dst_off, uint64_t len);

/* Directory part / file part of a path, newly allocated. */
char *path_dirname(const char *path);
char *path_basename(const char *path);

/* Remove a directory tree (no symlinks followed, stays on one filesystem). */
int rm_rf(const char *path);

/* Random UUID as a lower-case string (37 bytes with NUL). */
int uuid_random(char out[37]);

/* Replace every occurrence of the UUID a in buf, with dashes or without (as grub's
 * cryptomount -u spells it), by b. a and b are canonical 36-character UUIDs. Returns the count. */
unsigned uuid_replace_all(void *buf, size_t len, const char *a, const char *b);

/* asprintf that returns NULL on failure. */
char *strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

bool str_ends_with(const char *s, const char *suffix);

/* A copy of s (NULL: "(null)") fit for a terminal: control characters (C0, DEL) as '?', cut
 * after max bytes with "...". For text from an untrusted peer or image. */
char *str_printable(const char *s, size_t max);

/* The length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF) at s, of at most n bytes; 0 if s does not start one. */
size_t utf8_sequence_len(const unsigned char *s, size_t n);
/* A copy of s with each byte that starts no valid UTF-8 sequence replaced by U+FFFD: text from
 * an image or a file name, fit for JSON. NULL on ENOMEM. */
char *utf8_valid_copy(const char *s);

/* Look a program up in $PATH; true if found and executable. */
bool find_program(const char *name);
/* The same, returning its path (newly allocated), or NULL. */
char *find_program_path(const char *name);

/* Base64 (with padding; a trailing newline ignored) into out of cap bytes: -EINVAL if it is
 * not base64 or does not fit. */
int base64_decode(const char *in, uint8_t *out, size_t cap, size_t *ret_len);
/* Base64 of len bytes, NUL-terminated, newly allocated (NULL when out of memory). */
char *base64_encode(const uint8_t *in, size_t len);
