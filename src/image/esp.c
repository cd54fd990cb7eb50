/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The EFI System Partition: FAT32 made in user space (mkfs.fat, mtools), no vfat driver. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp.h"
#include "common/log.h"
#include "common/run.h"
#include "shared/cleanup.h"
#include "shared/fault.h"
#include "shared/spawn.h"
#include "shared/strv.h"
#include "shared/util.h"

/* mtools refuses images whose geometry does not look like a floppy unless told not to. */
static char *const mtools_env[] = { "MTOOLS_SKIP_CHECK=1", "MTOOLS_NO_VFAT=0", NULL };

/* mtools on an ESP we did not make: a crafted FAT reaches mdir and mcopy, which run under
 * limits (prlimit): CPU time for a looping chain, address space, no core, and what mcopy may
 * write for a file claiming gigabytes. */
#define ESP_FILE_MAX 67108864 /* 64 MiB */
#define STRINGIFY2(x) #x
#define STRINGIFY(x) STRINGIFY2(x)
#define MTOOLS_LIMITS "prlimit", "--cpu=60", "--as=1073741824", "--core=0", \
	"--fsize=" STRINGIFY(ESP_FILE_MAX), "--"

/*
 * And in bubblewrap, so that a memory bug a crafted FAT finds in mtools (a directory that
 * contains itself crashed mdir once) is neither root on the host nor the user with its files
 * (its keys): it sees /usr read-only, the image (read-only unless mcopy writes to it) and the
 * directory mcopy writes to, nothing else of the host's filesystem; no capabilities, its own
 * PID, IPC, network and UTS namespaces (and, for an ordinary user, a user namespace, which
 * bwrap makes itself when it is not setuid), a minimal /dev; killed with cvm-image. Why
 * bubblewrap and not confine.c: mtools is a program, and confine_run()'s child may not exec
 * one. Where bubblewrap cannot make namespaces (a default container's seccomp filter): the
 * limits alone, and the debug log says so.
 */
static const char *const bwrap_base[] = {
	"--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
	"--die-with-parent", "--new-session", "--cap-drop", "ALL",
	"--ro-bind", "/usr", "/usr",
	"--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
	"--ro-bind-try", "/etc/mtools.conf", "/etc/mtools.conf",
	"--dev", "/dev", NULL,
};
/* The top-level names the programs in /usr are found through: symlinks into /usr on a
 * merged-/usr system, directories otherwise. */
static const char *const usr_links[] = { "bin", "sbin", "lib", "lib32", "lib64", "libx32", NULL };

/* bwrap and the options above, plus usr_links as they are on the host. */
static int bwrap_prefix(char ***v, size_t *n)
{
	_cleanup_free_ char *bwrap = find_program_path("bwrap");
	int r;

	if (!bwrap)
		return -ENOENT;
	r = strv_push(v, n, strdup(bwrap));
	for (size_t i = 0; r >= 0 && bwrap_base[i]; i++)
		r = strv_push(v, n, strdup(bwrap_base[i]));
	for (size_t i = 0; r >= 0 && usr_links[i]; i++) {
		_cleanup_free_ char *path = strdupf("/%s", usr_links[i]);
		char target[PATH_MAX];
		struct stat st;
		ssize_t len;

		if (!path)
			return -ENOMEM;
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode) && (len = readlink(path, target, sizeof(target) - 1)) > 0) {
			target[len] = '\0';
			r = strv_push(v, n, strdup("--symlink"));
			if (r >= 0)
				r = strv_push(v, n, strdup(target));
		} else if (S_ISDIR(st.st_mode)) {
			r = strv_push(v, n, strdup("--ro-bind"));
			if (r >= 0)
				r = strv_push(v, n, strdup(path));
		} else
			continue;
		if (r >= 0)
			r = strv_push(v, n, strdup(path));
	}
	return r;
}

/* Whether mtools runs in bubblewrap here: bwrap makes its sandbox (tried once). */
static bool mtools_confined(void)
{
	static int confined = -1;
	_cleanup_strv_free_ char **v = NULL;
	struct spawn_result res = {};
	size_t n = 0;
	int r;

	if (confined >= 0)
		return confined;
	confined = 0;
	r = bwrap_prefix(&v, &n);
	if (r >= 0)
		r = strv_push(&v, &n, strdup("--"));
	if (r >= 0)
		r = strv_push(&v, &n, strdup("true"));
	if (r >= 0)
		r = spawn_capture(v, NULL, &res);
	if (r >= 0 && res.status == 0)
		confined = 1;
	else
		log_debug("mtools runs without bubblewrap, under its limits alone: %s",
			  r == -ENOENT ? "bwrap is not installed" :
			  r < 0 ? "bwrap cannot be run" : last_lines(res.output ?: "", 1));
	spawn_result_free(&res);
	return confined;
}

/*
 * mtools' argv on image (its partition at offset: argv names it "IMAGE@@OFFSET"), run under
 * its limits and, where mtools_confined(), in bubblewrap with image bound at its own path
 * (read-write if writable) and dir, the directory mcopy reads and writes files in (NULL:
 * none). Returns spawn_capture()'s value.
 */
static int mtools_capture(char *const argv[], const char *image, bool writable, const char *dir,
			  struct spawn_result *res)
{
	static const char *const limits[] = { MTOOLS_LIMITS, NULL };
	_cleanup_strv_free_ char **v = NULL;
	size_t n = 0;
	int r = 0;

	if (mtools_confined()) {
		struct stat st;
		/* A block device keeps its node only with --dev-bind, which is read-write. */
		bool dev = stat(image, &st) == 0 && S_ISBLK(st.st_mode);

		r = bwrap_prefix(&v, &n);
		if (r >= 0)
			r = strv_push(&v, &n, strdup(dev ? "--dev-bind" : writable ? "--bind" : "--ro-bind"));
		if (r >= 0)
			r = strv_push(&v, &n, strdup(image));
		if (r >= 0)
			r = strv_push(&v, &n, strdup(image));
		if (r >= 0 && dir) {
			r = strv_push(&v, &n, strdup("--bind"));
			if (r >= 0)
				r = strv_push(&v, &n, strdup(dir));
			if (r >= 0)
				r = strv_push(&v, &n, strdup(dir));
		}
		if (r >= 0)
			r = strv_push(&v, &n, strdup("--"));
	}
	for (size_t i = 0; r >= 0 && limits[i]; i++)
		r = strv_push(&v, &n, strdup(limits[i]));
	for (size_t i = 0; r >= 0 && argv[i]; i++)
		r = strv_push(&v, &n, strdup(argv[i]));
	if (r < 0)
		return r;
	return spawn_capture(v, mtools_env, res);
}

void esp_format_volume_id(uint32_t id, char out[10])
{
	snprintf(out, 10, "%04X-%04X", id >> 16, id & 0xffff);
}

int esp_make(const char *path, uint64_t size, uint32_t volume_id)
{
	char kib[32], volid[16];
	_cleanup_free_ char *img = strdupf("%s", path);
	int r;

	if (!img)
		return log_error_errno(ENOMEM, "out of memory");
	snprintf(kib, sizeof(kib), "%" PRIu64, size / 1024);
	snprintf(volid, sizeof(volid), "%08" PRIX32, volume_id);

	char *mkfs[] = { "mkfs.fat", "-F", "32", "-s", "1", "-n", ESP_LABEL, "-i", volid,
			 "-C", img, kib, NULL };
	r = run_program(mkfs, NULL);
	if (r < 0)
		return r;

	char *mmd[] = { "mmd", "-i", img, "::/EFI", "::/EFI/BOOT", NULL };
	return run_program(mmd, mtools_env);
}

int esp_add_file(const char *esp_path, const char *src, const char *dest)
{
	_cleanup_free_ char *target = strdupf("::/%s", dest);

	if (!target)
		return log_error_errno(ENOMEM, "out of memory");
	char *argv[] = { "mcopy", "-o", "-i", (char *)esp_path, (char *)src, target, NULL };
	return run_program(argv, mtools_env);
}

static bool esp_dir_exists(const char *esp_path, const char *dir)
{
	char *argv[] = { "mdir", "-b", "-i", (char *)esp_path, (char *)dir, NULL };
	struct spawn_result res;
	bool exists;

	if (spawn_capture(argv, mtools_env, &res) < 0)
		return false;
	exists = res.status == 0;
	spawn_result_free(&res);
	return exists;
}

/* Does the file hold needle anywhere? Read in chunks that overlap by the needle's length. */
static int file_contains(int fd, const struct secret *needle)
{
	_cleanup_free_ unsigned char *buf = malloc(1 << 20);
	size_t keep = 0, n = needle->size;
	off_t off = 0;

	if (!buf)
		return -ENOMEM;
	if (n == 0 || n >= (1 << 19))
		return -EINVAL;
	for (;;) {
		ssize_t got = pread(fd, buf + keep, (1 << 20) - keep, off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return 0;
		off += got;
		keep += (size_t)got;
		if (memmem(buf, keep, needle->data, n))
			return 1;
		if (keep >= n) {
			memmove(buf, buf + keep - (n - 1), n - 1);
			keep = n - 1;
		}
	}
}

/*
 * Walk the tree below dfd. With esp_path NULL, only check: directories and regular files
 * only, none holding the key. Otherwise copy it into the ESP image. Returns the file count.
 */
static int walk_dir(const char *esp_path, int dfd, const char *rel, const char *label,
		    const struct secret *key, unsigned depth)
{
	int fd = dup(dfd), count = 0, r = 0;
	struct dirent *de;
	DIR *d;

	if (depth > 16)
		return log_error_errno(ELOOP, "%s/%s: too deep", label, rel);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return log_error_errno(errno, "cannot read %s/%s: %m", label, rel);
	}
	rewinddir(d); /* a dup shares the offset: start from the beginning */
	while (r >= 0 && (de = readdir(d))) {
		_cleanup_free_ char *child = NULL, *dest = NULL, *src = NULL;
		_cleanup_close_ int cfd = -1;
		struct stat st;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		child = *rel ? strdupf("%s/%s", rel, de->d_name) : strdup(de->d_name);
		dest = child ? strdupf("::/%s", child) : NULL;
		if (!dest) {
			r = log_error_errno(ENOMEM, "out of memory");
			break;
		}
		/* O_PATH first: neither a FIFO nor a device is ever opened. */
		cfd = openat(dfd, de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0 || fstat(cfd, &st) < 0) {
			r = log_error_errno(errno, "%s/%s: %m", label, child);
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			r = log_error_errno(EPERM, "%s/%s: a symlink cannot go on the FAT ESP", label,
					    child);
			break;
		}
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
			r = log_error_errno(EPERM, "%s/%s: only files and directories can go on the ESP",
					    label, child);
			break;
		}
		close(cfd);
		cfd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC |
						      (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
		if (cfd < 0) {
			r = log_error_errno(errno, "%s/%s: %m", label, child);
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			char *mmd[] = { "mmd", "-i", (char *)esp_path, dest, NULL };

			/* \EFI and \EFI\BOOT exist already (mmd fails on those, even with -D s). */
			if (esp_path)
				r = esp_dir_exists(esp_path, dest) ? 0 : run_program(mmd, mtools_env);
			if (r >= 0)
				r = walk_dir(esp_path, cfd, child, label, key, depth + 1);
			if (r > 0)
				count += r;
		} else if (!esp_path) {
			r = file_contains(cfd, key);
			if (r < 0)
				r = log_error_errno(r, "cannot read %s/%s: %m", label, child);
			else if (r > 0)
				r = log_error_errno(EPERM, "%s/%s holds the disk's key: it would be in "
						    "the clear on the unencrypted ESP (a hook or a "
						    "symlink in the tarball put it there)", label, child);
			count++;
		} else {
			src = strdupf("/proc/%d/fd/%d", getpid(), cfd);
			if (!src) {
				r = log_error_errno(ENOMEM, "out of memory");
				break;
			}
			char *mcopy[] = { "mcopy", "-o", "-i", (char *)esp_path, src, dest, NULL };
			r = run_program(mcopy, mtools_env);
			count++;
		}
	}
	closedir(d);
	return r < 0 ? r : count;
}

/* Remove everything below dfd, never following symlinks. */
static int clear_dir(int dfd)
{
	int fd = dup(dfd), r = 0;
	struct dirent *de;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(d); /* the dup shares the offset populate_dir left at the end */
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0)
			continue;
		if (errno == EISDIR || errno == EPERM) {
			_cleanup_close_ int sub = openat(dfd, de->d_name,
							 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub < 0 || clear_dir(sub) < 0 || unlinkat(dfd, de->d_name, AT_REMOVEDIR) < 0)
				r = -errno;
		} else {
			r = -errno;
		}
	}
	closedir(d);
	return r;
}

int esp_populate(const char *esp_path, int dirfd, const char *label, const struct secret *key)
{
	int n = walk_dir(NULL, dirfd, "", label, key, 0), r;

	if (n < 0)
		return n;
	n = walk_dir(esp_path, dirfd, "", label, key, 0);
	if (n < 0)
		return n;
	r = clear_dir(dirfd);
	if (r < 0)
		return log_error_errno(r, "cannot empty %s after copying it to the ESP: %m", label);
	return n;
}

int esp_replace_uuid(const char *image, uint64_t offset, const char *path, const char *old,
		     const char *new_uuid, const char *tmpdir)
{
	_cleanup_free_ char *img = strdupf("%s@@%" PRIu64, image, offset);
	_cleanup_free_ char *src = strdupf("::/%s", path), *tmp = strdupf("%s/esp-file", tmpdir);
	_cleanup_free_ unsigned char *buf = NULL;
	_cleanup_close_ int fd = -1;
	size_t len;
	unsigned n;
	int r;

	if (!img || !src || !tmp)
		return log_error_errno(ENOMEM, "out of memory");
	r = esp_read_file(image, offset, path, tmpdir, &buf, &len);
	if (r == -ENOENT)
		return log_error_errno(r, "'%s' is not on the ESP", path);
	if (r < 0)
		return r;
	n = uuid_replace_all(buf, len, old, new_uuid);
	if (n == 0)
		return 0;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_error_errno(errno, "cannot create '%s': %m", tmp);
	r = pwrite_all(fd, buf, len, 0);
	if (r < 0)
		return log_error_errno(r, "cannot write '%s': %m", tmp);
	/* mtools takes "image@@offset": the partition inside the disk image. */
	char *put[] = { "mcopy", "-o", "-n", "-i", img, tmp, src, NULL };
	struct spawn_result res;

	r = mtools_capture(put, image, true, tmpdir, &res);
	unlink(tmp);
	if (r < 0)
		return log_error_errno(r, "cannot run 'mcopy': %m");
	log_child_output("mcopy", res.output);
	if (res.status != 0)
		r = log_error_errno(EIO, "'mcopy' failed with exit status %d:\n%s", res.status,
				    last_lines(res.output, 8));
	spawn_result_free(&res);
	return r < 0 ? r : (int)n;
}

int esp_list_files(const char *image, uint64_t offset, char ***ret)
{
	_cleanup_free_ char *img = strdupf("%s@@%" PRIu64, image, offset);
	struct spawn_result res;
	char **list = NULL, *save = NULL;
	size_t n = 0, cap = 0;
	int r;

	if (!img)
		return log_error_errno(ENOMEM, "out of memory");
	/* -/ recursive, -b bare: one "::/DIR/FILE" per line, directories with a trailing '/'. */
	char *argv[] = { "mdir", "-/", "-b", "-i", img, "::/", NULL };
	/* The tests' mdir turned hostile: it writes beside the image and says whether it could
	 * write to the image. */
	char *escape[] = { "sh", "-c", "echo escaped > \"$0.escaped\"; [ -w \"$0\" ] && "
			   "echo 'esp-escape: the image is writable' || "
			   "echo 'esp-escape: the image is read-only'; exit 1", (char *)image, NULL };
	r = mtools_capture(fault_requested("esp-escape") ? escape : argv, image, false, NULL, &res);
	if (r < 0)
		return log_error_errno(r, "cannot run 'mdir': %m");
	if (res.status != 0) {
		size_t len = strlen(res.output);

		while (len > 0 && res.output[len - 1] == '\n')
			res.output[--len] = '\0';
		r = log_error_errno(EMEDIUMTYPE, "the ESP holds no FAT filesystem mtools reads (%s)",
				    last_lines(res.output, 1));
		spawn_result_free(&res);
		return r;
	}
	for (char *line = strtok_r(res.output, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "::/", 3) != 0 || str_ends_with(line, "/"))
			continue;
		r = greedy_realloc((void **)&list, &cap, n + 2, sizeof(*list));
		if (r < 0 || !(list[n] = strdup(line + 3))) {
			spawn_result_free(&res);
			for (size_t i = 0; i < n; i++)
				free(list[i]);
			free(list);
			return log_error_errno(ENOMEM, "out of memory");
		}
		list[++n] = NULL;
	}
	spawn_result_free(&res);
	if (!list && !(list = calloc(1, sizeof(*list))))
		return log_error_errno(ENOMEM, "out of memory");
	*ret = list;
	return 0;
}

/* The size the directory entry of path claims (mdir's "1 file  N bytes" line). */
static int esp_claimed_size(const char *image, const char *img, const char *src, uint64_t *ret)
{
	char *argv[] = { "mdir", "-i", (char *)img, (char *)src, NULL };
	struct spawn_result res;
	const char *p;
	uint64_t n = 0;
	bool digits = false;
	int r;

	r = mtools_capture(argv, image, false, NULL, &res);
	if (r < 0)
		return log_error_errno(r, "cannot run 'mdir': %m");
	p = res.status == 0 ? strstr(res.output, " 1 file ") : NULL;
	if (p) {
		/* Digits grouped by spaces, then "bytes". */
		for (p += strlen(" 1 file "); *p == ' ' || (*p >= '0' && *p <= '9'); p++)
			if (*p != ' ' && n <= UINT64_MAX / 10) {
				n = n * 10 + (uint64_t)(*p - '0');
				digits = true;
			}
	}
	r = p && digits && strncmp(p, "bytes", 5) == 0 ? 0 : -EBADMSG;
	spawn_result_free(&res);
	*ret = n;
	return r;
}

int esp_read_file(const char *image, uint64_t offset, const char *path, const char *tmpdir,
		  unsigned char **ret, size_t *ret_len)
{
	_cleanup_free_ char *img = strdupf("%s@@%" PRIu64, image, offset);
	_cleanup_free_ char *src = strdupf("::/%s", path), *tmp = strdupf("%s/esp-file", tmpdir);
	_cleanup_free_ unsigned char *buf = NULL;
	_cleanup_close_ int fd = -1;
	struct spawn_result res;
	struct stat st;
	int r;

	uint64_t claimed = 0;
	bool have_claim;

	if (!img || !src || !tmp)
		return log_error_errno(ENOMEM, "out of memory");
	r = esp_claimed_size(image, img, src, &claimed);
	have_claim = r == 0; /* a file mdir does not list: mcopy says what is wrong */
	if (have_claim && claimed > ESP_FILE_MAX)
		return log_error_errno(EFBIG, "'%s' on the ESP claims %" PRIu64 " bytes, more than "
				       "cvm-image reads from an ESP (%d MiB): a damaged or crafted FAT",
				       path, claimed, ESP_FILE_MAX / (1024 * 1024));
	char *get[] = { "mcopy", "-n", "-i", img, src, tmp, NULL };
	r = mtools_capture(get, image, false, tmpdir, &res);
	if (r < 0)
		return log_error_errno(r, "cannot run 'mcopy': %m");
	log_child_output("mcopy", res.output);
	r = res.status == 0 ? 0 : strstr(res.output, "not found") ? -ENOENT : -EIO;
	spawn_result_free(&res);
	if (r < 0)
		unlink(tmp); /* what mcopy wrote of it before it stopped */
	if (r == -EIO)
		return log_error_errno(r, "cannot read '%s' from the ESP", path);
	if (r < 0)
		return r;
	fd = open(tmp, O_RDONLY | O_CLOEXEC);
	unlink(tmp);
	if (fd < 0 || fstat(fd, &st) < 0)
		return log_error_errno(errno, "cannot open '%s': %m", tmp);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return log_error_errno(ENOMEM, "out of memory");
	r = pread_all(fd, buf, (size_t)st.st_size, 0);
	if (r < 0)
		return log_error_errno(r, "cannot read '%s': %m", tmp);
	if (have_claim && (uint64_t)st.st_size != claimed)
		return log_error_errno(EBADMSG, "'%s' on the ESP: its directory entry says %" PRIu64
				       " bytes, its cluster chain holds %jd: a damaged or crafted FAT",
				       path, claimed, (intmax_t)st.st_size);
	*ret_len = (size_t)st.st_size;
	*ret = TAKE_PTR(buf);
	return 0;
}
