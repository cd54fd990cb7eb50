/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The newc parser and the key-archive finder on initramfs images made here: a key member
 * found with its mode; build's key archive found at the end and only there; a key archive
 * repeated (the old key in the clear a thousand times) not taken for the whole story. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "tap.h"
#include "initramfs/gzpatch.h"
#include "initramfs/initramfs.h"
#include "initramfs/zstdframe.h"
#include "shared/cleanup.h"

static const char KEY[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; /* 44 bytes, as base64 of 33 */
static const char NEW[] = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

struct buf {
	unsigned char *d;
	size_t len;
};

static void put(struct buf *b, const void *p, size_t n)
{
	b->d = realloc(b->d, b->len + n);
	memcpy(b->d + b->len, p, n);
	b->len += n;
}

static void pad4(struct buf *b)
{
	while (b->len % 4)
		put(b, "", 1);
}

/* One newc member (070701), as cpio -H newc writes it. */
static void member(struct buf *b, const char *name, unsigned mode, const void *data, size_t len)
{
	char h[111];

	snprintf(h, sizeof(h), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 1u, mode, 0u, 0u, 1u, 0u, (unsigned)len, 0u, 0u, 0u, 0u, (unsigned)strlen(name) + 1, 0u);
	put(b, h, 110);
	put(b, name, strlen(name) + 1);
	pad4(b);
	put(b, data, len);
	pad4(b);
}

static void archive(struct buf *b, const char *keyname, unsigned mode)
{
	member(b, "init", 0100755, "#!/bin/sh\n", 10);
	member(b, keyname, mode, KEY, 44);
	member(b, "TRAILER!!!", 0, "", 0);
}

static int mem_pread(void *userdata, uint64_t off, void *out, size_t len)
{
	const struct buf *b = userdata;

	if (off > b->len || len > b->len - off)
		return -EIO;
	memcpy(out, b->d + off, len);
	return 0;
}

static int mem_truncate(void *userdata, uint64_t size)
{
	((struct buf *)userdata)->len = (size_t)size;
	return 0;
}

/* b's bytes compressed with zstd (libarchive's writer, as process() uses it), appended to z. */
static void zstd(struct buf *z, const struct buf *b)
{
	struct archive *w = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	size_t cap = b->len + 4096, used = 0;
	unsigned char *out = malloc(cap);

	archive_write_set_format_raw(w);
	archive_write_add_filter_zstd(w);
	archive_write_set_bytes_in_last_block(w, 1);
	archive_write_open_memory(w, out, cap, &used);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_write_header(w, e);
	archive_write_data(w, b->d, b->len);
	archive_write_close(w);
	archive_write_free(w);
	archive_entry_free(e);
	put(z, out, used);
	free(out);
}

/* A zstd archive holding the key, zero padding, then an uncompressed archive (as dracut 112
 * and initramfs-tools with zstd installed leave an image before build's key archive). */
static void zstd_chain(void)
{
	struct initramfs_member m[4];
	struct buf b = {}, z = {}, tail = {};
	size_t n = 0;
	unsigned count = 0, moved = 0, n_old = 0, n_new = 0;
	void *out = NULL;
	size_t out_len = 0;
	struct initramfs_edit *e = NULL;
	struct gz_file f = { .pread = mem_pread, .truncate = mem_truncate, .userdata = &z };
	int r;

	archive(&b, "etc/cryptsetup-keys.d/luks-x.key", 0100600);
	zstd(&z, &b);
	put(&z, (unsigned char[64]){ 0 }, 64);
	member(&tail, "etc/motd", 0100644, "hi\n", 3);
	member(&tail, "TRAILER!!!", 0, "", 0);
	put(&z, tail.d, tail.len);

	r = initramfs_key_members("t", z.d, z.len, KEY, 44, m, 4, &n);
	ok(r == 0 && n == 1 && m[0].holds_key, "zstd, zero padding, an archive: the key member found (%d, %zu)", r, n);
	initramfs_members_done(m, n);
	ok(initramfs_count_key("t", z.d, z.len, KEY, 44, &count) == 0 && count == 1,
	   "zstd, zero padding, an archive: one copy (%u)", count);
	r = initramfs_move_key("t", z.d, z.len, KEY, 44, &out, &out_len, &moved);
	ok(r == 0 && moved == 1, "zstd chain: build's key archive appended (%d)", r);
	n = 0;
	ok(r == 0 && initramfs_key_members("t", out, out_len, KEY, 44, m, 4, &n) == 0 && n == 1 &&
		   m[0].holds_key, "zstd chain after the move: the key member read back");
	initramfs_members_done(m, n);
	free(out);

	/* The streamed plan cuts the file after the zstd archive it writes again: refused
	 * while an archive follows, taken with only zero padding after it. */
	f.size = z.len;
	r = initramfs_stream_plan("t", &f, KEY, NEW, 44, &e, &n_old, &n_new);
	ok(r == -EOPNOTSUPP, "zstd then an archive: the streamed plan leaves it to the whole-file path (%d)", r);
	initramfs_edit_free(e);
	e = NULL;
	z.len -= tail.len;
	f.size = z.len;
	r = initramfs_stream_plan("t", &f, KEY, NEW, 44, &e, &n_old, &n_new);
	ok(r == 0 && e && n_old == 1, "zstd then zero padding: the streamed plan finds the key (%d, %u)", r, n_old);
	initramfs_edit_free(e);
	free(b.d);
	free(z.d);
	free(tail.d);

	/* --reencrypt --new-uuid: the key already in build's plain key archive, the old UUID in
	 * a distro member of the zstd archive (initramfs-tools' conf/conf.d/cryptroot): that
	 * archive is written again with the new UUID, not copied as it was. */
	{
		static const char OLDU[] = "11111111-2222-3333-4444-555555555555";
		static const char NEWU[] = "66666666-7777-8888-9999-aaaaaaaaaaaa";
		struct buf a = {}, c = {}, k = {};
		char conf[128];
		void *res = NULL;
		size_t res_len = 0;
		unsigned replaced = 0;
		bool new_seen = false, old_seen = false;

		snprintf(conf, sizeof(conf), "target=cr_root,source=UUID=%s\n", OLDU);
		member(&a, "conf/conf.d/cryptroot", 0100644, conf, strlen(conf));
		member(&a, "TRAILER!!!", 0, "", 0);
		zstd(&c, &a);
		put(&c, (unsigned char[64]){ 0 }, 64);
		member(&k, "cryptroot/keyfiles/cr_root.key", 0100600, KEY, 44);
		member(&k, "TRAILER!!!", 0, "", 0);
		put(&c, k.d, k.len);
		r = initramfs_replace_key_uuid("t", c.d, c.len, KEY, 44, NEW, 44, OLDU, NEWU, NULL,
					       NULL, &res, &res_len, &replaced);
		ok(r == 0 && replaced == 1, "new UUID: the key replaced (%d, %u)", r, replaced);
		if (r == 0) {
			struct archive *rd = archive_read_new();
			struct archive_entry *ent;
			char data[128] = "";
			size_t end = res_len;

			/* The zstd archive alone: libarchive stops at what follows it. */
			(void)zstd_frames_end_mem(res, res_len, 0, &end);
			archive_read_support_filter_all(rd);
			archive_read_support_format_cpio(rd);
			if (archive_read_open_memory(rd, res, end) == ARCHIVE_OK &&
			    archive_read_next_header(rd, &ent) == ARCHIVE_OK &&
			    archive_read_data(rd, data, sizeof(data) - 1) > 0) {
				new_seen = strstr(data, NEWU) != NULL;
				old_seen = strstr(data, OLDU) != NULL;
			}
			archive_read_free(rd);
		}
		ok(new_seen && !old_seen, "new UUID: the zstd archive's member carries it (new %d, old %d)",
		   new_seen, old_seen);
		free(res);
		free(a.d);
		free(c.d);
		free(k.d);
	}
}

/* Zeros before the first archive (a sparse initramfs: the kernel skips them): every reader
 * sees the key behind them, as the kernel does, so inspect, rekey and --reencrypt agree. */
static void leading_zeros(void)
{
	struct initramfs_member m[4];
	struct buf b = {}, k = {};
	size_t n = 0;
	unsigned count = 0, replaced = 0, n_old = 0, n_new = 0;
	void *out = NULL;
	size_t out_len = 0;
	struct initramfs_edit *e = NULL;
	struct gz_file f = { .pread = mem_pread, .userdata = &b };
	int r;

	b.d = calloc(1, 1 << 20);
	b.len = 1 << 20;
	archive(&k, "cryptroot/keyfiles/cr_root.key", 0100600);
	put(&b, k.d, k.len);
	r = initramfs_key_members("t", b.d, b.len, KEY, 44, m, 4, &n);
	ok(r == 0 && n == 1 && m[0].holds_key, "1 MiB of zeros, then the archive: its key member (%d, %zu)", r, n);
	initramfs_members_done(m, n);
	ok(initramfs_count_key("t", b.d, b.len, KEY, 44, &count) == 0 && count == 1,
	   "zeros first: one copy counted (%u)", count);
	r = initramfs_replace_key("t", b.d, b.len, KEY, 44, NEW, 44, &out, &out_len, &replaced);
	ok(r == 0 && replaced == 1 && out_len == b.len && memcmp(out, b.d, 1 << 20) == 0,
	   "zeros first: the whole-file path replaces it, the zeros kept (%d, %u)", r, replaced);
	free(out);
	f.size = b.len;
	r = initramfs_stream_plan("t", &f, KEY, NEW, 44, &e, &n_old, &n_new);
	ok(r == 0 && e && n_old == 1, "zeros first: the streamed plan finds it too (%d, %u)", r, n_old);
	initramfs_edit_free(e);
	free(b.d);
	free(k.d);
}

/* A gzip archive with a 600 MiB member named *.key (zeros: 600 KiB compressed) beside the
 * real key, as a guest could write one: --reencrypt's whole-file path copies it a piece at a
 * time (it had allocated the claimed size, up to 256 MiB, and refused past it) and holds at
 * most 256 MiB of the decompressed archive. */
static void big_key_member(void)
{
	static const char OLDU[] = "11111111-2222-3333-4444-555555555555";
	static const char NEWU[] = "66666666-7777-8888-9999-aaaaaaaaaaaa";
	struct archive *w = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	size_t cap = 8 << 20, used = 0, big = (size_t)600 << 20;
	unsigned char *gz = malloc(cap), *zeros = calloc(1, 1 << 20);
	void *out = NULL;
	size_t out_len = 0;
	unsigned replaced = 0;
	struct rusage ru;
	int r;

	archive_write_set_format_cpio_newc(w);
	archive_write_add_filter_gzip(w);
	archive_write_set_filter_option(w, NULL, "compression-level", "1");
	archive_write_set_bytes_in_last_block(w, 1);
	archive_write_open_memory(w, gz, cap, &used);
	archive_entry_set_pathname(e, "etc/big.key");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0600);
	archive_entry_set_size(e, (la_int64_t)big);
	archive_write_header(w, e);
	for (size_t done = 0; done < big; done += 1 << 20)
		archive_write_data(w, zeros, 1 << 20);
	archive_entry_clear(e);
	archive_entry_set_pathname(e, "cryptroot/keyfiles/cr_root.key");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0600);
	archive_entry_set_size(e, 44);
	archive_write_header(w, e);
	archive_write_data(w, KEY, 44);
	archive_write_close(w);
	archive_write_free(w);
	archive_entry_free(e);
	r = initramfs_replace_key_uuid("t", gz, used, KEY, 44, NEW, 44, OLDU, NEWU, NULL, NULL,
				       &out, &out_len, &replaced);
	getrusage(RUSAGE_SELF, &ru);
	ok(r == 0 && replaced == 1, "a 600 MiB *.key member beside the key: rewritten (%d, %u)", r, replaced);
	ok(ru.ru_maxrss < 320 * 1024, "... holding at most 256 MiB of it (peak RSS %ld KiB)", ru.ru_maxrss);
	free(out);
	free(gz);
	free(zeros);
}
/* raw's bytes compressed by filter (libarchive's writer, level 1), appended to z. */
static void compress_with(struct buf *z, int filter, const void *raw, size_t len, size_t zeros)
{
	struct archive *w = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	size_t cap = 16 << 20, used = 0;
	unsigned char *out = malloc(cap), *zero = calloc(1, 1 << 20);

	archive_write_set_format_raw(w);
	archive_write_add_filter(w, filter);
	archive_write_set_filter_option(w, NULL, "compression-level", "1");
	archive_write_set_bytes_in_last_block(w, 1);
	archive_write_open_memory(w, out, cap, &used);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_write_header(w, e);
	archive_write_data(w, raw, len);
	for (size_t done = 0; done < zeros; done += 1 << 20)
		archive_write_data(w, zero, 1 << 20);
	archive_write_close(w);
	archive_write_free(w);
	archive_entry_free(e);
	put(z, out, used);
	free(out);
	free(zero);
}

/* In a child: fn's return value < 0 (its exit status 0), and the child's peak RSS in KiB. */
static bool refused_in_child(int (*fn)(const struct buf *b), const struct buf *b, long *maxrss)
{
	struct rusage ru = {};
	int status = -1;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (!getenv("TEST_VERBOSE"))
			freopen("/dev/null", "w", stderr);
		_exit(fn(b) < 0 ? 0 : 1);
	}
	if (pid < 0 || wait4(pid, &status, 0, &ru) != pid)
		return false;
	*maxrss = ru.ru_maxrss;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* What fn logged on stderr (in a child), into out. */
static void stderr_of(int (*fn)(const struct buf *b), const struct buf *b, char *out, size_t size)
{
	char path[] = "/tmp/test-initramfs.XXXXXX";
	int fd = mkstemp(path), status;
	ssize_t n = -1;
	pid_t pid;

	out[0] = '\0';
	if (fd < 0)
		return;
	unlink(path);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		dup2(fd, 2);
		_exit(fn(b) < 0 ? 0 : 1);
	}
	if (pid > 0 && waitpid(pid, &status, 0) == pid)
		n = pread(fd, out, size - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
}

static int do_key_members(const struct buf *b)
{
	struct initramfs_member m[4];
	size_t n = 0;
	int r = initramfs_key_members("t", b->d, b->len, KEY, 44, m, 4, &n);

	if (r == 0)
		initramfs_members_done(m, n);
	return r;
}

static int do_replace(const struct buf *b)
{
	void *out = NULL;
	size_t out_len = 0;
	unsigned replaced = 0;
	int r = initramfs_replace_key("t", b->d, b->len, KEY, 44, NEW, 44, &out, &out_len, &replaced);

	free(out);
	return r;
}

static int do_stream_plan(const struct buf *b)
{
	struct gz_file f = { .pread = mem_pread, .truncate = mem_truncate, .userdata = (void *)b,
			     .size = b->len };
	struct initramfs_edit *e = NULL;
	unsigned n_old = 0, n_new = 0;
	int r = initramfs_stream_plan("t", &f, KEY, NEW, 44, &e, &n_old, &n_new);

	initramfs_edit_free(e);
	return r;
}

/*
 * A compressed archive whose member claims a name, or a symlink a target, of 768 MiB, and
 * holds that many zeros (a few hundred KiB compressed), as a hostile guest could write one:
 * the kernel skips such a member (more than PATH_MAX), libarchive allocated what it claims
 * and filled it (the initramfs fuzzer's out-of-memory). Every reader refuses it, holding
 * little: whole-file readers at most gzip_inflate()'s 256 MiB, the others a few MiB.
 */
static void huge_name_or_target(void)
{
	static const struct {
		const char *what;
		unsigned mode, namesize, filesize;
	} cases[] = {
		{ "a name", 0100600, 0x30000000u, 0 },
		{ "a symlink's target", 0120777, 5, 0x30000000u },
	};
	static const struct {
		const char *what;
		int filter;
	} filters[] = { { "gzip", ARCHIVE_FILTER_GZIP }, { "zstd", ARCHIVE_FILTER_ZSTD } };

	for (size_t c = 0; c < ELEMENTSOF(cases); c++)
		for (size_t f = 0; f < ELEMENTSOF(filters); f++) {
			struct buf b = {};
			char h[111];
			long rss = 0;

			snprintf(h, sizeof(h), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
				 1u, cases[c].mode, 0u, 0u, 1u, 0u, cases[c].filesize, 0u, 0u, 0u, 0u,
				 cases[c].namesize, 0u);
			compress_with(&b, filters[f].filter, h, 110, (size_t)0x30000000u + (1 << 20));
			ok(refused_in_child(do_key_members, &b, &rss) && rss < 64 * 1024,
			   "%s, %s of 768 MiB: the member scan refuses it (peak RSS %ld KiB)",
			   filters[f].what, cases[c].what, rss);
			ok(refused_in_child(do_replace, &b, &rss) && rss < 320 * 1024,
			   "%s, %s of 768 MiB: the whole-file rewrite refuses it (peak RSS %ld KiB)",
			   filters[f].what, cases[c].what, rss);
			if (filters[f].filter == ARCHIVE_FILTER_ZSTD)
				ok(refused_in_child(do_stream_plan, &b, &rss) && rss < 64 * 1024,
				   "%s, %s of 768 MiB: the streamed plan refuses it (peak RSS %ld KiB)",
				   filters[f].what, cases[c].what, rss);
			free(b.d);
		}
}

/*
 * One compressed stream holding two archives: the first ends with its trailer, the second
 * holds a copy of the key. The kernel unpacks both (init/initramfs.c goes on after a
 * trailer); libarchive's cpio reader stopped at the first trailer, so the copy went unseen.
 * Every reader sees it or refuses the archive; none says "no key here". Zeros after the
 * trailer (cpio's padding) stay fine.
 */
static void after_trailer(void)
{
	static const struct {
		const char *what;
		int filter;
	} filters[] = { { "gzip", ARCHIVE_FILTER_GZIP }, { "zstd", ARCHIVE_FILTER_ZSTD } };

	for (size_t f = 0; f < ELEMENTSOF(filters); f++) {
		struct buf raw = {}, b = {}, padded = {}, pz = {};
		struct initramfs_member m[4];
		size_t n = 0;
		unsigned count = 0, replaced = 0;
		void *out = NULL;
		size_t out_len = 0;
		int r;

		member(&raw, "init", 0100755, "#!/bin/sh\n", 10);
		member(&raw, "TRAILER!!!", 0, "", 0);
		put(&padded, raw.d, raw.len);
		put(&padded, (char[512]){ 0 }, 512);
		member(&raw, "etc/cryptsetup-keys.d/hidden.key", 0100644, KEY, 44);
		member(&raw, "TRAILER!!!", 0, "", 0);
		compress_with(&b, filters[f].filter, raw.d, raw.len, 0);
		compress_with(&pz, filters[f].filter, padded.d, padded.len, 0);

		r = initramfs_key_members("t", b.d, b.len, KEY, 44, m, 4, &n);
		ok(r < 0 || (n == 1 && m[0].holds_key),
		   "%s, a key copy in a second archive after the trailer: the member scan sees it or "
		   "refuses (%d, %zu members)", filters[f].what, r, n);
		if (r == 0)
			initramfs_members_done(m, n);
		{
			char err[1024];

			stderr_of(do_key_members, &b, err, sizeof(err));
			ok(strstr(err, "t: the archive goes on after its trailer (byte 252 of the "
				       "uncompressed archive)") != NULL,
			   "%s, ... the refusal names the byte where the second archive starts (252: "
			   "after init, 128 bytes, and the trailer, 124)", filters[f].what);
		}
		r = initramfs_count_key("t", b.d, b.len, KEY, 44, &count);
		ok(r < 0 || count == 1, "%s, ... the key count sees it or refuses (%d, %u)",
		   filters[f].what, r, count);
		r = initramfs_replace_key("t", b.d, b.len, KEY, 44, NEW, 44, &out, &out_len, &replaced);
		ok(r < 0 || replaced == 1, "%s, ... the whole-file rewrite replaces it or refuses "
		   "(%d, %u)", filters[f].what, r, replaced);
		free(out);
		out = NULL;
		{
			struct gz_file gf = { .pread = mem_pread, .truncate = mem_truncate,
					      .userdata = &b, .size = b.len };
			struct initramfs_edit *e = NULL;
			unsigned n_old = 0, n_new = 0;

			r = initramfs_stream_plan("t", &gf, KEY, NEW, 44, &e, &n_old, &n_new);
			ok(r < 0 || n_old == 1, "%s, ... the streamed plan sees it or refuses (%d, %u)",
			   filters[f].what, r, n_old);
			initramfs_edit_free(e);
		}
		n = 0;
		r = initramfs_key_members("t", pz.d, pz.len, KEY, 44, m, 4, &n);
		ok(r == 0 && n == 0, "%s, zeros after the trailer: read, no key (%d, %zu)",
		   filters[f].what, r, n);
		if (r == 0)
			initramfs_members_done(m, n);
		free(raw.d);
		free(b.d);
		free(padded.d);
		free(pz.d);
	}
}

int main(void)
{
	struct initramfs_member m[4];
	struct buf b = {};
	size_t n = 0, offs[4];
	unsigned count = 0;

	archive(&b, "cryptroot/keyfiles/cr_root.key", 0100600);
	ok(initramfs_key_members("t", b.d, b.len, KEY, 44, m, 4, &n) == 0 && n == 1 &&
		   strcmp(m[0].name, "cryptroot/keyfiles/cr_root.key") == 0 && m[0].mode == 0600 &&
		   m[0].regular && m[0].holds_key,
	   "newc: the key member, its mode, holding the key");
	initramfs_members_done(m, n);
	ok(initramfs_count_key("t", b.d, b.len, KEY, 44, &count) == 0 && count == 1, "newc: one copy");

	/* build: the key moved into its archive at the end. */
	{
		void *out = NULL;
		size_t out_len = 0, start = 0;
		unsigned moved = 0;
		struct buf r = {};
		struct initramfs_edit *e = NULL;
		unsigned n_old = 0, n_new = 0;
		int k;

		ok(initramfs_move_key("t", b.d, b.len, KEY, 44, &out, &out_len, &moved) == 0 &&
			   moved == 1 && out_len % 4 == 0, "build's key archive appended");
		k = initramfs_key_archive(out, out_len, 44, offs, 4);
		ok(k == 1 && memcmp((char *)out + offs[0], KEY, 44) == 0,
		   "the key archive finder: build's archive at the end, its one key");
		/* Where it starts: the last 512-byte boundary holding a newc header. */
		for (size_t at = out_len / 512 * 512;; at -= 512) {
			if (at + 6 <= out_len && memcmp((char *)out + at, "070701", 6) == 0) {
				start = at;
				break;
			}
			if (at == 0)
				break;
		}
		ok(start > 0, "the key archive starts at a 512-byte boundary (%zu)", start);

		struct gz_file f = { .pread = mem_pread, .userdata = &r };
		put(&r, out, out_len);
		f.size = r.len;
		ok(initramfs_stream_plan("t", &f, KEY, NEW, 44, &e, &n_old, &n_new) == 0 && e &&
			   initramfs_edit_in_key_archive(e) && n_old == 1 && n_new == 0,
		   "rekey's plan: the key archive alone");
		initramfs_edit_free(e);
		e = NULL;

		/* The key archive repeated a thousand times: the last one alone is not all. */
		for (int i = 0; i < 999; i++)
			put(&r, (char *)out + start, out_len - start);
		f.size = r.len;
		n_old = n_new = 0;
		k = initramfs_stream_plan("t", &f, KEY, NEW, 44, &e, &n_old, &n_new);
		ok((k == -EOPNOTSUPP) || (k == 0 && e && !initramfs_edit_in_key_archive(e) && n_old == 1000),
		   "a repeated key archive: every copy planned, or the whole-file path (%d, %u)", k, n_old);
		initramfs_edit_free(e);
		free(r.d);
		free(out);
	}
	free(b.d);
	zstd_chain();
	leading_zeros();
	big_key_member();
	after_trailer();
	huge_name_or_target();
	return tap_done();
}
