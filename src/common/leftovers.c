/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a killed cvm-image left behind (work directories, temporary outputs), found by the
 * process id in its name and removed by the next run. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmount/libmount.h>

#include "leftovers.h"
#include "log.h"
#include "shared/cleanup-libs.h"
#include "shared/cleanup.h"
#include "shared/tmpfile.h"
#include "shared/util.h"


/* "cvm-image.<pid>.XXXXXX" (build), "cvm-image-reencrypt.<pid>.XXXXXX",
 * "cvm-image-header.<pid>.XXXXXX" (rekey), "cvm-image-export.<pid>.XXXXXX" (a qcow2's FUSE
 * export, a mount) and "cvm-image-inspect.<pid>.XXXXXX". */
const char *const leftovers_workdirs[] = { "cvm-image.", "cvm-image-reencrypt.",
					   "cvm-image-header.", "cvm-image-export.",
					   "cvm-image-inspect.", NULL };
/* ".<name>.tmp-<pid>-XXXXXX" (tmpfile), ".cvm-image-rekey.<pid>.XXXXXX" (rekey). */
const char *const leftovers_outputs[] = { TMPFILE_MARK, ".cvm-image-rekey.", NULL };

/* Is pid a running cvm-image? */
static bool owner_alive(pid_t pid)
{
	_cleanup_free_ char *path = strdupf("/proc/%d/comm", (int)pid);
	_cleanup_(fclosep) FILE *f = NULL;
	char comm[32] = "";

	if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
		return false;
	if (!path || !(f = fopen(path, "re")))
		return true; /* cannot tell: keep it */
	if (!fgets(comm, sizeof(comm), f))
		return true;
	comm[strcspn(comm, "\n")] = '\0';
	/* The kernel truncates comm to 15 characters. */
	return strncmp(comm, "cvm-image", 9) == 0;
}

/* The pid in name after prefix (for TMPFILE_MARK anywhere in a name that starts with '.'). */
static pid_t pid_in_name(const char *name, const char *prefix)
{
	const char *p;
	char *end;
	long pid;

	if (streq(prefix, TMPFILE_MARK)) {
		if (name[0] != '.')
			return 0;
		p = strstr(name, TMPFILE_MARK);
		while (p && strstr(p + 1, TMPFILE_MARK))
			p = strstr(p + 1, TMPFILE_MARK);
	} else {
		p = strncmp(name, prefix, strlen(prefix)) == 0 ? name : NULL;
	}
	if (!p)
		return 0;
	p += strlen(prefix);
	pid = strtol(p, &end, 10);
	if (end == p || pid <= 0 || (*end != '.' && *end != '-') || strlen(end + 1) != 6)
		return 0;
	return (pid_t)pid;
}

/* Detach whatever is mounted below path (an older cvm-image mounted in its work directory). */
static void detach_mounts_below(const char *path)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = mnt_new_table();
	_cleanup_(mnt_free_iterp) struct libmnt_iter *it = mnt_new_iter(MNT_ITER_BACKWARD);
	size_t len = strlen(path);
	struct libmnt_fs *fs;

	if (!tb || !it || mnt_table_parse_file(tb, "/proc/self/mountinfo") < 0)
		return;
	while (mnt_table_next_fs(tb, it, &fs) == 0) {
		const char *t = mnt_fs_get_target(fs);

		if (t && strncmp(t, path, len) == 0 && t[len] == '/') {
			if (umount2(t, MNT_DETACH) == 0)
				log_notice("detached '%s', a mount left by a cvm-image that is gone", t);
			else
				log_warning("cannot detach '%s': %s", t, strerror(errno));
		}
	}
}

/* A lock file (".NAME.lock", shared/lockfile.c) that nobody holds, of a process that is gone:
 * removed under the lock, so that a process taking it meanwhile sees the file change. */
static bool stale_lock(int dfd, const char *name, pid_t *ret_pid)
{
	size_t len = strlen(name);
	char buf[32] = "";
	int fd;
	bool stale = false;

	if (name[0] != '.' || len < 6 || !streq(name + len - 5, ".lock"))
		return false;
	fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && pread(fd, buf, sizeof(buf) - 1, 0) > 0) {
		*ret_pid = (pid_t)strtol(buf, NULL, 10);
		stale = *ret_pid > 0 && !owner_alive(*ret_pid) && unlinkat(dfd, name, 0) == 0;
	}
	close(fd);
	return stale;
}

int leftovers_sweep(const char *dir, const char *const prefixes[])
{
	_cleanup_close_ int dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	struct dirent *de;
	int removed = 0;
	DIR *d;

	if (dfd < 0 || !(d = fdopendir(dfd)))
		return 0;
	dfd = -1; /* the DIR owns it */
	while ((de = readdir(d))) {
		_cleanup_free_ char *path = NULL;
		struct stat st;
		pid_t pid = 0;
		int r;

		if (prefixes == leftovers_outputs && stale_lock(dirfd(d), de->d_name, &pid)) {
			log_notice("removed '%s/%s', a lock left by cvm-image process %d that is gone",
				   dir, de->d_name, (int)pid);
			removed++;
			continue;
		}
		for (size_t i = 0; prefixes[i] && !pid; i++)
			pid = pid_in_name(de->d_name, prefixes[i]);
		if (!pid || owner_alive(pid))
			continue;
		path = strdupf("%s/%s", dir, de->d_name);
		if (!path || lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			detach_mounts_below(path);
			r = rm_rf(path);
		} else {
			r = unlink(path) < 0 ? -errno : 0;
		}
		if (r < 0) {
			log_warning_errno(r, "cannot remove '%s', left by cvm-image process %d that is "
					  "gone: %m; remove it by hand", path, (int)pid);
			continue;
		}
		log_notice("removed '%s', left by cvm-image process %d that is gone", path, (int)pid);
		removed++;
	}
	closedir(d);
	return removed;
}
