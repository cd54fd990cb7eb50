/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Files cvm-image itself writes into the unpacked target root: the key file, fstab, hostname,
 * root password, SSH keys. Every path is resolved inside the root (openat2 RESOLVE_IN_ROOT),
 * so a symlink in the tarball can never send a write to the build host. */
#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <libmount/libmount.h>

#include "appliance.h"
#include "target.h"
#include "common/log.h"
#include "shared/cleanup-libs.h"
#include "shared/strv.h"
#include "shared/util.h"


static int open_in_root(int rootfd, const char *path, int flags, mode_t mode, uint64_t resolve)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve,
	};
	long fd;

	while (*path == '/')
		path++;
	/* glibc 2.36 has no openat2() wrapper. */
	fd = syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

static const char *type_name(mode_t m)
{
	return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device" :
	       S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : S_ISLNK(m) ? "a symlink" :
						       "not a regular file";
}

int target_check_read(const char *path, mode_t mode, uint64_t size, size_t max)
{
	if (!S_ISREG(mode))
		return log_error_errno(EPERM, "refusing to read '%s' in the rootfs: it is %s, not a "
				       "regular file", path, type_name(mode));
	if (size > max)
		return log_error_errno(EFBIG, "refusing to read '%s' in the rootfs: %llu bytes, "
				       "more than %zu", path, (unsigned long long)size, max);
	return 0;
}

int target_check_replace(const char *path, mode_t mode)
{
	if (!S_ISREG(mode) && !S_ISLNK(mode))
		return log_error_errno(EPERM, "refusing to replace '%s' in the rootfs: it is %s, not "
				       "a regular file", path, type_name(mode));
	return 0;
}

int target_open(int rootfd, const char *path, int flags, mode_t mode)
{
	return open_in_root(rootfd, path, flags, mode, 0);
}

int target_open_nofollow(int rootfd, const char *path, int flags, mode_t mode)
{
	return open_in_root(rootfd, path, flags, mode, RESOLVE_NO_SYMLINKS);
}

/* Open the parent directory of path inside the target; *ret_name points into path. */
static int open_parent(int rootfd, const char *path, char **ret_dir, const char **ret_name)
{
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
	int fd;

	if (!dir)
		return -ENOMEM;
	fd = target_open(rootfd, *dir ? dir : "/", O_DIRECTORY | O_RDONLY, 0);
	if (fd < 0)
		return fd;
	*ret_name = slash ? slash + 1 : path;
	if (ret_dir)
		*ret_dir = TAKE_PTR(dir);
	return fd;
}

int target_mkdir_p(int rootfd, const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);
	int r;

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; ; s++) {
		bool last = *s == '\0';

		if (*s == '/' || last) {
			_cleanup_close_ int dfd = -1;
			const char *name;
			char saved = *s;

			*s = '\0';
			dfd = open_parent(rootfd, p, NULL, &name);
			if (dfd < 0)
				return dfd;
			r = mkdirat(dfd, name, last ? mode : 0755);
			if (r < 0 && errno != EEXIST)
				return -errno;
			*s = saved;
			if (last)
				break;
		}
	}
	return 0;
}

int target_write_file(int rootfd, const char *path, const void *data, size_t len, mode_t mode)
{
	_cleanup_close_ int dfd = -1, fd = -1;
	char tmp[64];
	const char *name;
	struct stat old;
	int r = 0;

	dfd = open_parent(rootfd, path, NULL, &name);
	if (dfd < 0)
		return log_error_errno(dfd, "cannot open the directory of '%s' in the rootfs: %m", path);
	snprintf(tmp, sizeof(tmp), ".cvm-image.%d.tmp", getpid());
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return log_error_errno(errno, "cannot create '%s' in the rootfs: %m", path);
	/* A replaced file keeps its owner and group (/etc/shadow is root:shadow on Debian). A
	 * symlink is replaced, never followed; anything else but a regular file stays. */
	if (fstatat(dfd, name, &old, AT_SYMLINK_NOFOLLOW) == 0) {
		r = target_check_replace(path, old.st_mode);
		if (r < 0) {
			unlinkat(dfd, tmp, 0);
			return r;
		}
		if (S_ISREG(old.st_mode) && fchown(fd, old.st_uid, old.st_gid) < 0)
			r = -errno;
	}
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0)
		r = pwrite_all(fd, data, len, 0);
	if (r < 0) {
		unlinkat(dfd, tmp, 0);
		return log_error_errno(r, "cannot write '%s' in the rootfs: %m", path);
	}
	if (renameat(dfd, tmp, dfd, name) < 0) {
		r = -errno;
		unlinkat(dfd, tmp, 0);
		return log_error_errno(r, "cannot replace '%s' in the rootfs: %m", path);
	}
	return 0;
}

#define TARGET_READ_MAX (16 * 1024 * 1024)

int target_read_file(int rootfd, const char *path, char **ret, size_t *ret_len)
{
	return target_read_file_max(rootfd, path, TARGET_READ_MAX, ret, ret_len, NULL);
}

int target_read_file_max(int rootfd, const char *path, size_t max, char **ret, size_t *ret_len,
			 mode_t *ret_mode)
{
	_cleanup_close_ int pfd = -1, fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	int r;

	/* O_PATH first: a FIFO would block the open, a device's driver would see it. */
	pfd = target_open(rootfd, path, O_PATH, 0);
	if (pfd == -ENOENT)
		return pfd;
	if (pfd < 0)
		return log_error_errno(pfd, "cannot open '%s' in the rootfs: %m", path);
	if (fstat(pfd, &st) < 0)
		return log_error_errno(errno, "cannot stat '%s' in the rootfs: %m", path);
	r = target_check_read(path, st.st_mode, (uint64_t)st.st_size, max);
	if (r < 0)
		return r;
	/* Nothing else changes the tree while cvm-image reads it: no sandbox is running. */
	fd = target_open(rootfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(fd, "cannot open '%s' in the rootfs: %m", path);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return log_error_errno(ENOMEM, "out of memory");
	r = pread_all(fd, buf, (size_t)st.st_size, 0);
	if (r < 0)
		return log_error_errno(r, "cannot read '%s' in the rootfs: %m", path);
	buf[st.st_size] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = (size_t)st.st_size;
	if (ret_mode)
		*ret_mode = st.st_mode;
	return 0;
}

int target_put(const struct target *t, const char *path, const void *data, size_t len, mode_t mode)
{
	return t->vm ? appliance_write_file(t->vm, path, data, len, mode) :
		       target_write_file(t->rootfd, path, data, len, mode);
}

int target_get(const struct target *t, const char *path, size_t max, char **ret, size_t *ret_len,
	       mode_t *ret_mode)
{
	return t->vm ? appliance_read_file(t->vm, path, max, ret, ret_len, ret_mode) :
		       target_read_file_max(t->rootfd, path, max, ret, ret_len, ret_mode);
}

/* mkdir -p, then the last directory root's and mode, even if it existed (mkdir keeps an
 * existing one's mode). Root in the image: cvm-image's own ids (an ordinary user's tree is
 * made into the ext4 where that user is root, owners.h). Logs. */
static int mkdir_secure(const struct target *t, const char *path, mode_t mode)
{
	_cleanup_close_ int dfd = -1;
	int r;

	if (t->vm)
		return appliance_mkdir_secure(t->vm, path, mode);
	r = target_mkdir_p(t->rootfd, path, mode);
	if (r < 0)
		return log_error_errno(r, "cannot create %s in the rootfs: %m", path);
	dfd = target_open(t->rootfd, path, O_DIRECTORY | O_RDONLY, 0);
	if (dfd < 0 || fchmod(dfd, mode) < 0 || fchown(dfd, geteuid(), getegid()) < 0)
		return log_error_errno(dfd < 0 ? dfd : -errno, "cannot secure %s in the rootfs: %m",
				       path);
	return 0;
}

int target_write_key_file(const struct target *t, const char *luks_uuid, const struct secret *key,
			  char **ret_path)
{
	_cleanup_free_ char *path = strdupf("/etc/cryptsetup-keys.d/luks-%s.key", luks_uuid);
	int r;

	if (!path)
		return log_error_errno(ENOMEM, "out of memory");
	r = mkdir_secure(t, "/etc/cryptsetup-keys.d", 0700);
	if (r < 0)
		return r;
	r = target_put(t, path, key->data, key->size, 0600);
	if (r < 0)
		return r;
	*ret_path = TAKE_PTR(path);
	return 0;
}

static int fstab_set(struct libmnt_table *tb, const char *source, const char *target,
		     const char *fstype, const char *options, int passno)
{
	_cleanup_(mnt_unref_fsp) struct libmnt_fs *fs = mnt_new_fs();
	struct libmnt_fs *old;
	int r;

	/* An entry for the same mount point would clash: ours replaces it. */
	while ((old = mnt_table_find_target(tb, target, MNT_ITER_FORWARD)))
		mnt_table_remove_fs(tb, old);
	if (!fs)
		return -ENOMEM;
	r = mnt_fs_set_source(fs, source);
	if (r == 0)
		r = mnt_fs_set_target(fs, target);
	if (r == 0)
		r = mnt_fs_set_fstype(fs, fstype);
	if (r == 0)
		r = mnt_fs_set_options(fs, options);
	if (r == 0)
		r = mnt_fs_set_passno(fs, passno);
	if (r == 0)
		r = mnt_table_add_fs(tb, fs);
	return r;
}

int target_write_fstab(const struct target *t, const char *fs_uuid, const char *esp_volume_id)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = mnt_new_table();
	_cleanup_free_ char *old = NULL, *root_src = strdupf("UUID=%s", fs_uuid),
			       *esp_src = strdupf("UUID=%s", esp_volume_id), *text = NULL;
	size_t text_len = 0;
	FILE *f;
	int r;

	if (!tb || !root_src || !esp_src)
		return log_error_errno(ENOMEM, "out of memory");
	mnt_table_enable_comments(tb, 1);
	r = target_get(t, "/etc/fstab", TARGET_READ_MAX, &old, NULL, NULL);
	if (r == 0) {
		f = fmemopen(old, strlen(old), "r");
		if (!f)
			return log_error_errno(errno, "cannot read the rootfs's /etc/fstab: %m");
		r = mnt_table_parse_stream(tb, f, "/etc/fstab");
		fclose(f);
		if (r < 0)
			return log_error_errno(r, "cannot parse the rootfs's /etc/fstab: %m");
	} else if (r != -ENOENT) {
		return r;
	}
	/* The filesystem UUID names the root whatever the opened LUKS device is called
	 * (initramfs-tools uses the crypttab name, systemd-cryptsetup luks-<UUID>). */
	r = fstab_set(tb, root_src, "/", "ext4", "errors=remount-ro", 1);
	if (r == 0)
		r = fstab_set(tb, esp_src, "/boot/efi", "vfat", "umask=0077", 2);
	if (r < 0)
		return log_error_errno(r, "cannot build /etc/fstab: %m");

	f = open_memstream(&text, &text_len);
	if (!f)
		return log_error_errno(errno, "cannot build /etc/fstab: %m");
	r = mnt_table_write_file(tb, f);
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r < 0)
		return log_error_errno(r, "cannot build /etc/fstab: %m");
	return target_put(t, "/etc/fstab", text, text_len, 0644);
}

int hostname_valid(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 64 || s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (const char *p = s; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", *p) ||
		    ++label > 63)
			return 0;
	}
	return 1;
}

int target_set_hostname(const struct target *t, const char *hostname)
{
	_cleanup_free_ char *line = strdupf("%s\n", hostname), *hosts = NULL, *out = NULL;
	size_t out_len = 0;
	FILE *f;
	int r;

	if (!line)
		return log_error_errno(ENOMEM, "out of memory");
	r = target_put(t, "/etc/hostname", line, strlen(line), 0644);
	if (r < 0)
		return r;
	/* /etc/hosts: the 127.0.1.1 line names the host, as Debian's installer writes it. */
	r = target_get(t, "/etc/hosts", TARGET_READ_MAX, &hosts, NULL, NULL);
	if (r < 0 && r != -ENOENT)
		return r;
	f = open_memstream(&out, &out_len);
	if (!f)
		return log_error_errno(errno, "out of memory");
	if (hosts) {
		char *save = NULL;

		for (char *l = strtok_r(hosts, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			if (strncmp(l, "127.0.1.1", 9) != 0)
				fprintf(f, "%s\n", l);
	} else {
		fprintf(f, "127.0.0.1\tlocalhost\n");
	}
	fprintf(f, "127.0.1.1\t%s\n", hostname);
	if (fclose(f) != 0)
		return log_error_errno(errno, "out of memory");
	return target_put(t, "/etc/hosts", out, out_len, 0644);
}

int target_set_root_password(const struct target *t, const struct secret *password)
{
	_cleanup_free_ char *shadow = NULL, *out = NULL, *pw = NULL;
	_cleanup_free_ struct crypt_data *cd = calloc(1, sizeof(struct crypt_data));
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	const char *hash;
	size_t out_len = 0;
	bool found = false;
	FILE *f;
	int r;

	if (!cd || !(pw = strndup((const char *)password->data, password->size)))
		return log_error_errno(ENOMEM, "out of memory");
	/* SHA-512 crypt: understood by every distro's PAM, old and new. */
	if (!crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof(salt)))
		return log_error_errno(errno, "cannot make a password salt: %m");
	hash = crypt_r(pw, salt, cd);
	explicit_bzero(pw, strlen(pw));
	if (!hash || hash[0] == '*')
		return log_error_errno(EINVAL, "cannot hash the root password");

	r = target_get(t, "/etc/shadow", TARGET_READ_MAX, &shadow, NULL, NULL);
	if (r == -ENOENT)
		return log_error_errno(r, "the rootfs has no /etc/shadow: cannot set root's password");
	if (r < 0)
		return r;
	f = open_memstream(&out, &out_len);
	if (!f)
		return log_error_errno(errno, "out of memory");
	for (char *l = shadow, *nl; *l; l = nl ? nl + 1 : l + strlen(l)) {
		nl = strchr(l, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(l, "root:", 5) == 0) {
			const char *rest = strchr(l + 5, ':');

			fprintf(f, "root:%s%s\n", hash, rest ? rest : "::0:99999:7:::");
			found = true;
		} else {
			fprintf(f, "%s\n", l);
		}
		if (!nl)
			break;
	}
	if (!found)
		fprintf(f, "root:%s:19000:0:99999:7:::\n", hash);
	if (fclose(f) != 0)
		return log_error_errno(errno, "out of memory");
	r = target_put(t, "/etc/shadow", out, out_len, 0640);
	explicit_bzero(out, out_len);
	explicit_bzero(cd, sizeof(*cd));
	return r;
}

int target_set_ssh_keys(const struct target *t, const char *src_path)
{
	_cleanup_free_ char *keys = NULL;
	_cleanup_close_ int fd = open(src_path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n;
	int r;

	if (fd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", src_path);
	keys = malloc(1 << 20);
	if (!keys)
		return log_error_errno(ENOMEM, "out of memory");
	while ((n = read(fd, keys + len, (1 << 20) - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		return log_error_errno(errno, "cannot read '%s': %m", src_path);
	if (len == 0 || (!memmem(keys, len, "ssh-", 4) && !memmem(keys, len, "ecdsa-", 6) &&
			 !memmem(keys, len, "sk-", 3)))
		return log_error_errno(EINVAL, "'%s' holds no SSH public key", src_path);
	r = mkdir_secure(t, "/root/.ssh", 0700);
	if (r < 0)
		return r;
	return target_put(t, "/root/.ssh/authorized_keys", keys, len, 0600);
}

static int cmp_version_desc(const void *a, const void *b)
{
	return -strverscmp(*(char *const *)a, *(char *const *)b);
}

/* The names in /boot of the target. */
static int list_boot(const struct target *t, char ***ret)
{
	int fd;
	char **v = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	if (t->vm)
		return appliance_list(t->vm, "/boot", ret);
	fd = target_open(t->rootfd, "/boot", O_DIRECTORY | O_RDONLY, 0);
	if (fd < 0)
		return log_error_errno(fd, "cannot open /boot in the rootfs: %m");
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return log_error_errno(errno, "cannot read /boot in the rootfs: %m");
	}
	while ((de = readdir(d)))
		if (strv_push(&v, &n, strdup(de->d_name)) < 0) {
			closedir(d);
			strv_free(v);
			return log_error_errno(ENOMEM, "out of memory");
		}
	closedir(d);
	*ret = v;
	return 0;
}

int target_kernel_versions(const struct target *t, char ***ret)
{
	_cleanup_strv_free_ char **names = NULL;
	char **v = NULL;
	size_t n = 0;
	int r;

	r = list_boot(t, &names);
	if (r < 0)
		return r;
	for (size_t i = 0; names && names[i]; i++) {
		if (strncmp(names[i], "vmlinuz-", 8) != 0 || !names[i][8])
			continue;
		if (strv_push(&v, &n, strdup(names[i] + 8)) < 0) {
			strv_free(v);
			return log_error_errno(ENOMEM, "out of memory");
		}
	}
	if (n == 0) {
		free(v);
		return log_error_errno(ENOENT, "no kernel in the rootfs's /boot (vmlinuz-*)");
	}
	qsort(v, n, sizeof(char *), cmp_version_desc);
	*ret = v;
	return 0;
}
