/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An image opened, locked, its qcow2 exported as a file, its LUKS header found and loaded. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpt.h"
#include "image.h"
#include "keys.h"
#include "luks.h"
#include "xts.h"
#include "common/log.h"
#include "common/run.h"
#include "shared/fault.h"
#include "shared/interrupt.h"
#include "shared/qemulock.h"
#include "shared/spawn.h"
#include "shared/util.h"

/* A log file of a few KiB, NUL-terminated. */
static int read_small_file(const char *path, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = malloc(64 * 1024);
	ssize_t n;

	if (fd < 0 || !buf)
		return fd < 0 ? -errno : -ENOMEM;
	n = read(fd, buf, 64 * 1024 - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	*ret_len = (size_t)n;
	*ret = TAKE_PTR(buf);
	return 0;
}

static const char *tmp_dir(void)
{
	return getenv("TMPDIR") ?: "/var/tmp";
}

/* qemu-img check before anything is read from a qcow2 image: a truncated or corrupt one would
 * read as zeros where its clusters are missing. Leaked clusters (exit status 3) are harmless. */
static int check_qcow2(const char *image)
{
	char *argv[] = { "qemu-img", "check", "-q", "-U", "-f", "qcow2", (char *)image, NULL };
	struct spawn_result res;
	int r = spawn_capture(argv, NULL, &res);

	if (r < 0)
		return log_error_errno(r, "cannot run 'qemu-img check': %m");
	log_child_output("qemu-img", res.output);
	if (res.status != 0 && res.status != 3) {
		const char *why = *res.output ? last_lines(res.output, 2) : "errors found";

		if (strstr(res.output, "backing file") || strstr(res.output, "Could not open '"))
			r = log_error_errno(ENOMEDIUM, "'%s': its backing file cannot be opened "
					    "(qemu-img check: %s): nothing changed", image, why);
		else
			r = log_error_errno(EBADMSG, "'%s' is a damaged qcow2 image (qemu-img check: "
					    "%s): nothing changed", image, why);
	}
	spawn_result_free(&res);
	return r;
}

/* QEMU's -blockdev option syntax: a comma in a value is written twice. */
static char *qemu_escape(const char *s)
{
	size_t n = 0;
	char *out, *p;

	for (const char *c = s; *c; c++)
		n += *c == ',' ? 2 : 1;
	out = p = malloc(n + 1);
	if (!out)
		return NULL;
	for (const char *c = s; *c; c++) {
		*p++ = *c;
		if (*c == ',')
			*p++ = ',';
	}
	*p = '\0';
	return out;
}

static bool is_mounted(const char *path, const char *dir)
{
	struct stat a, b;

	return stat(path, &a) == 0 && stat(dir, &b) == 0 && a.st_dev != b.st_dev;
}

static void stop_export(struct image *im)
{
	_cleanup_free_ char *log_path = NULL;

	if (im->export_pid > 0) {
		kill(im->export_pid, SIGTERM);
		while (waitpid(im->export_pid, NULL, 0) < 0 && errno == EINTR)
			;
		im->export_pid = 0;
	}
	if (!im->export_dir)
		return;
	if (im->raw_path) {
		if (is_mounted(im->raw_path, im->export_dir))
			umount2(im->raw_path, MNT_DETACH);
		unlink(im->raw_path);
	}
	log_path = strdupf("%s/log", im->export_dir);
	if (log_path)
		unlink(log_path);
	rmdir(im->export_dir);
}

/*
 * A qcow2 image as a file of its guest's view, without a copy: qemu-storage-daemon exports it
 * through FUSE onto a file in a private directory. Every reader here (libblkid, the header
 * copy, libext2fs's I/O manager, mtools) takes a file, so this keeps one code path for raw and
 * qcow2; an NBD client library would need a second one for each. The daemon dies with us
 * (PR_SET_PDEATHSIG); a mount left by a SIGKILL is swept by the next run (leftovers.c).
 */
static int export_qcow2(struct image *im, char *why, size_t why_len)
{
	_cleanup_free_ char *file = NULL, *blk_file = NULL, *blk_qcow2 = NULL, *exp = NULL;
	_cleanup_free_ char *log_path = NULL;
	const char *ro = im->writable ? "off" : "on";
	double deadline;
	pid_t pid;
	int status;

	/* For tests: a machine without FUSE. */
	if (fault_requested("no-fuse")) {
		snprintf(why, why_len, "CVM_IMAGE_FAULT=no-fuse");
		return -ENOTSUP;
	}

	im->export_dir = strdupf("%s/cvm-image-export.%d.XXXXXX", tmp_dir(), (int)getpid());
	if (!im->export_dir)
		return log_error_errno(ENOMEM, "out of memory");
	if (!mkdtemp(im->export_dir)) {
		int r = log_error_errno(errno, "cannot create a directory in '%s': %m", tmp_dir());

		free(im->export_dir);
		im->export_dir = NULL;
		return r;
	}
	im->raw_path = strdupf("%s/disk", im->export_dir);
	log_path = strdupf("%s/log", im->export_dir);
	file = qemu_escape(im->path);
	if (!im->raw_path || !log_path || !file)
		return log_error_errno(ENOMEM, "out of memory");
	/* locking=off: we hold QEMU's locks on the image ourselves (image_open()). */
	blk_file = strdupf("driver=file,node-name=file,filename=%s,locking=off,read-only=%s", file, ro);
	blk_qcow2 = strdupf("driver=qcow2,node-name=disk,file=file,read-only=%s", ro);
	exp = strdupf("type=fuse,id=export,node-name=disk,mountpoint=%s,writable=%s", im->raw_path,
		      im->writable ? "on" : "off");
	if (!blk_file || !blk_qcow2 || !exp)
		return log_error_errno(ENOMEM, "out of memory");
	{
		_cleanup_close_ int mfd = open(im->raw_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

		if (mfd < 0)
			return log_error_errno(errno, "cannot create '%s': %m", im->raw_path);
	}

	char *argv[] = { "qemu-storage-daemon", "--blockdev", blk_file, "--blockdev", blk_qcow2,
			 "--export", exp, NULL };
	pid = fork();
	if (pid < 0)
		return log_error_errno(errno, "cannot fork: %m");
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY), out = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		/* Its own process group: a ^C reaches us, and we stop it after the reads. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (nul < 0 || out < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		_exit(127);
	}
	im->export_pid = pid;
	log_debug("image: exporting '%s' onto '%s'", im->path, im->raw_path);
	deadline = now_seconds() + 30;
	while (!is_mounted(im->raw_path, im->export_dir)) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		if (waitpid(pid, &status, WNOHANG) == pid) {
			_cleanup_free_ char *out = NULL;
			size_t len;

			im->export_pid = 0;
			if (read_small_file(log_path, &out, &len) == 0)
				log_child_output("qemu-storage-daemon", out);
			if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && (!out || !*out))
				return log_error_errno(ENOPKG, "cannot run 'qemu-storage-daemon' "
						       "(package qemu-system-common)");
			snprintf(why, why_len, "%s", out && *out ? last_lines(out, 1) : "it exited");
			return -ENOTSUP; /* the caller says what it does instead */
		}
		if (interrupt_pending())
			return log_error_errno(EINTR, "interrupted");
		if (now_seconds() > deadline)
			return log_error_errno(ETIMEDOUT, "qemu-storage-daemon did not export '%s' in 30 s",
					       im->path);
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* No FUSE (no /dev/fuse, or a kernel without it): a read-only caller gets a temporary raw
 * copy instead, said so; a writer does not. */
static int copy_qcow2(struct image *im)
{
	int r, tfd;

	stop_export(im);
	free(im->raw_path);
	free(im->export_dir);
	im->raw_path = im->export_dir = NULL;
	im->raw_path = strdupf("%s/cvm-image-export.%d.XXXXXX", tmp_dir(), (int)getpid());
	if (!im->raw_path)
		return log_error_errno(ENOMEM, "out of memory");
	tfd = mkostemp(im->raw_path, O_CLOEXEC);
	if (tfd < 0)
		return log_error_errno(errno, "cannot create a file in '%s': %m", tmp_dir());
	close(tfd);
	im->export_copied = true;
	char *argv[] = { "qemu-img", "convert", "-q", "-U", "-f", "qcow2", "-O", "raw",
			 im->path, im->raw_path, NULL };
	r = run_program(argv, NULL);
	return r;
}

int image_open(const char *path, unsigned flags, struct image **ret)
{
	_cleanup_(image_closep) struct image *im = calloc(1, sizeof(*im));
	unsigned char magic[4];
	struct stat st;
	int r;

	if (!im)
		return log_error_errno(ENOMEM, "out of memory");
	im->lock_fd = im->fd = -1;
	im->writable = flags & IMAGE_WRITABLE;
	im->path = strdup(path);
	if (!im->path)
		return log_error_errno(ENOMEM, "out of memory");
	im->lock_fd = open(path, (im->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (im->lock_fd < 0 && errno == EISDIR)
		return log_error_errno(EISDIR, "'%s' is a directory, not a disk image", path);
	if (im->lock_fd < 0 && im->writable && (errno == EROFS || errno == EACCES)) {
		int e = errno;

		/* An ordinary user's read-only file: called what root's is called below. */
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && !(st.st_mode & 0222))
			return log_error_errno(EROFS, "'%s' is read-only (mode %04o): nothing changed",
					       path, st.st_mode & 07777);
		return log_error_errno(e, "cannot open '%s' for writing: %s: nothing changed", path,
				       strerror(e));
	}
	if (im->lock_fd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", path);
	if (fstat(im->lock_fd, &st) < 0)
		return log_error_errno(errno, "cannot stat '%s': %m", path);
	/* root may write anything: the file's mode is what says "read-only" here. */
	if (im->writable && S_ISREG(st.st_mode) && !(st.st_mode & 0222))
		return log_error_errno(EROFS, "'%s' is read-only (mode %04o): nothing changed", path,
				       st.st_mode & 07777);
	if (S_ISDIR(st.st_mode))
		return log_error_errno(EISDIR, "'%s' is a directory, not a disk image", path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return log_error_errno(EMEDIUMTYPE, "'%s' is not a disk image (not a regular file)",
				       path);
	if (flock(im->lock_fd, (im->writable ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0)
		return log_error_errno(errno == EWOULDBLOCK ? EBUSY : errno,
				       "'%s' is in use by another cvm-image process%s", path,
				       im->writable ? "" : " (a rekey?)");
	/* A running VM (QEMU's own locks, which flock() does not see). */
	r = qemu_lock_image(im->lock_fd, im->writable);
	if (r == -EBUSY)
		return log_error_errno(r, "'%s' is in use by another process (QEMU holds its lock: "
				       "a running VM?): nothing changed", path);
	if (r < 0)
		return log_error_errno(r, "cannot lock '%s': %m", path);
	if (pread_all(im->lock_fd, magic, 4, 0) == 0 && memcmp(magic, "QFI\xfb", 4) == 0)
		im->qcow2 = true;

	if (!im->qcow2) {
		im->raw_path = strdup(path);
		im->fd = dup(im->lock_fd);
		if (!im->raw_path || im->fd < 0)
			return log_error_errno(im->raw_path ? errno : ENOMEM, "cannot open '%s': %m", path);
		im->size = (uint64_t)st.st_size;
		if (S_ISBLK(st.st_mode)) {
			off_t end = lseek(im->fd, 0, SEEK_END);

			im->size = end > 0 ? (uint64_t)end : 0;
		}
		*ret = TAKE_PTR(im);
		return 0;
	}
	static const char *const progs[] = { "qemu-img", NULL };
	r = require_programs(progs);
	if (r == 0)
		r = check_qcow2(path);
	if (r < 0)
		return r;
	char why[256] = "";
	r = export_qcow2(im, why, sizeof(why));
	if (r == -ENOTSUP && im->writable)
		return log_error_errno(r, "'%s' cannot be edited in place: qemu-storage-daemon cannot "
				       "export it through FUSE (%s): nothing changed", path, why);
	if (r == -ENOTSUP) {
		log_warning("'%s': qemu-storage-daemon cannot export it (%s): reading a temporary raw "
			    "copy instead", path, why);
		r = copy_qcow2(im);
	}
	if (r < 0)
		return r;
	im->fd = open(im->raw_path, (im->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (im->fd < 0 || fstat(im->fd, &st) < 0)
		return log_error_errno(errno, "cannot open the export of '%s': %m", path);
	im->size = (uint64_t)st.st_size;
	*ret = TAKE_PTR(im);
	return 0;
}

void image_close(struct image *im)
{
	if (!im)
		return;
	if (im->fd >= 0)
		close(im->fd);
	if (im->export_copied && im->raw_path)
		unlink(im->raw_path);
	else
		stop_export(im);
	if (im->lock_fd >= 0)
		close(im->lock_fd);
	free(im->export_dir);
	free(im->raw_path);
	free(im->path);
	free(im);
}

int image_find_luks(struct image *im)
{
	struct gpt_table t;
	int r = gpt_read_table(im->raw_path, im->path, &t);
	unsigned i;

	if (r < 0)
		return r;
	for (i = 0; i < t.n && !streq(t.parts[i].fs_type, "crypto_LUKS"); i++)
		;
	if (i == t.n)
		return log_error_errno(EMEDIUMTYPE, "'%s' has no LUKS1 partition", im->path);
	if (!streq(t.parts[i].fs_version, "1"))
		return log_error_errno(EMEDIUMTYPE, "'%s': partition %u is LUKS version %s, not LUKS1",
				       im->path, t.parts[i].number, t.parts[i].fs_version);
	im->luks_off = t.parts[i].start;
	im->luks_size = t.parts[i].size;
	r = luks_header_size(im->fd, im->luks_off, &im->hdr_size);
	if (r < 0)
		return log_error_errno(r, "'%s': no LUKS1 header in the LUKS partition", im->path);
	if (im->luks_off + im->hdr_size > im->size)
		return log_error_errno(EMEDIUMTYPE, "'%s' ends inside its LUKS header (truncated?)",
				       im->path);
	return 0;
}

int image_read_header(struct image *im, unsigned char **ret)
{
	_cleanup_free_ unsigned char *hdr = malloc(im->hdr_size);
	int r;

	if (!hdr)
		return log_error_errno(ENOMEM, "out of memory");
	r = pread_all(im->fd, hdr, im->hdr_size, (off_t)im->luks_off);
	if (r < 0)
		return log_error_errno(r, "cannot read '%s': %m", im->path);
	*ret = TAKE_PTR(hdr);
	return 0;
}

int image_load_header(struct image *im, char **ret_path, struct crypt_device **ret_cd)
{
	_cleanup_free_ unsigned char *hdr = NULL;
	_cleanup_free_ char *path = strdupf("%s/cvm-image-header.%d.XXXXXX",
					    getenv("TMPDIR") ?: "/tmp", (int)getpid());
	_cleanup_close_ int fd = -1;
	int r;

	if (!path)
		return log_error_errno(ENOMEM, "out of memory");
	r = image_read_header(im, &hdr);
	if (r < 0)
		return r;
	fd = mkostemp(path, O_CLOEXEC); /* 0600 */
	if (fd < 0)
		return log_error_errno(errno, "cannot create '%s': %m", path);
	r = pwrite_all(fd, hdr, im->hdr_size, 0);
	if (r < 0)
		r = log_error_errno(r, "cannot write '%s': %m", path);
	else
		r = luks_load(path, ret_cd);
	if (r < 0) {
		unlink(path);
		return r;
	}
	*ret_path = TAKE_PTR(path);
	return 0;
}

int image_read_secret(const char *key_file, const char *recovery_file, struct secret *ret)
{
	return key_file ? keys_read_key_file(key_file, ret) :
			  keys_read_passphrase_file(recovery_file, ret);
}

int image_unlock(struct crypt_device *cd, const struct secret *s, struct secret *ret_vk,
		 int *ret_slot, struct xts **ret_xts)
{
	int r = luks_unlock(cd, s, ret_vk, ret_slot);

	if (r < 0)
		return r;
	if (ret_xts) {
		r = xts_new(ret_vk->data, ret_vk->size, ret_xts);
		if (r < 0)
			return log_error_errno(r, "cannot set up AES-XTS: %m");
	}
	return 0;
}
