/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inspect --deep through the libguestfs C API. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deep.h"
#include "common/gfs.h"
#include "common/log.h"
#include "shared/cleanup-libs.h"
#include "shared/spawn.h"
#include "shared/strv.h"
#include "shared/util.h"

#define MAPPER "cvmroot"



/* The LUKS partition, as the appliance names it (its own names, whatever order the disks
 * came up in). */
static int find_luks(guestfs_h *g, char **ret)
{
	_cleanup_strv_free_ char **parts = guestfs_list_partitions(g);

	if (!parts)
		return gfs_error(g, "list_partitions");
	for (char **p = parts; *p; p++) {
		char *t = guestfs_vfs_type(g, *p);
		bool luks = t && streq(t, "crypto_LUKS");

		free(t);
		if (luks) {
			*ret = strdup(*p);
			return *ret ? 0 : -ENOMEM;
		}
	}
	return log_error_errno(ENOENT, "appliance: no crypto_LUKS partition");
}

/* e2fsck -n, which changes nothing and reports every problem: guestfs_e2fsck() only runs
 * -p or -y and counts "errors corrected" as success, so it goes through the appliance's
 * debug shell, with a fixed command line (no user input in it). */
static int e2fsck_n(guestfs_h *g, struct checks *c)
{
	char *const args[] = { "e2fsck", "-fn", "/dev/mapper/" MAPPER, "2>&1;", "echo",
			       "cvm-e2fsck-status=$?", NULL };
	_cleanup_free_ char *out = guestfs_debug(g, "sh", args);
	const char *st;
	int status;

	if (!out)
		return gfs_error(g, "e2fsck");
	log_child_output("e2fsck", out);
	st = strstr(out, "cvm-e2fsck-status=");
	if (!st || sscanf(st, "cvm-e2fsck-status=%d", &status) != 1)
		return log_error_errno(EIO, "appliance: e2fsck gave no exit status");
	if (status == 0)
		checks_add(c, "deep-e2fsck", CHECK_OK, "e2fsck -fn of the root through dm-crypt: clean");
	else
		checks_add(c, "deep-e2fsck", CHECK_FAIL, "e2fsck -fn of the root through dm-crypt: "
			    "exit status %d (%s)", status, last_lines(out, 3));
	return 0;
}

int deep_inspect(struct checks *c, const char *image, const char *format,
		 const struct secret *key, const struct inspect_file *files, size_t n_files)
{
	_cleanup_(guestfs_closep) guestfs_h *g = NULL;
	_cleanup_free_ char *luks = NULL, *pass = NULL;
	size_t same = 0;
	double t0 = now_seconds();
	int r;

	r = gfs_new(&g);
	if (r < 0)
		return r;
	/* The key as the API's string: a NUL-terminated copy, wiped after. */
	pass = calloc(1, key->size + 1);
	if (!pass)
		return log_error_errno(ENOMEM, "out of memory");
	memcpy(pass, key->data, key->size);
	if (memchr(pass, '\0', key->size)) {
		explicit_bzero(pass, key->size);
		return log_error_errno(EINVAL, "--deep: the key holds a NUL byte, which the appliance's "
				       "API cannot pass");
	}
	/* readonly: libguestfs puts a qcow2 overlay over it; nothing reaches the image. */
	if (guestfs_add_drive_opts(g, image, GUESTFS_ADD_DRIVE_OPTS_FORMAT, format,
				   GUESTFS_ADD_DRIVE_OPTS_READONLY, 1, -1) < 0) {
		r = gfs_error(g, "add_drive");
		goto out;
	}
	log_notice("inspect --deep: starting the libguestfs appliance (a minute or more without KVM)");
	if (guestfs_launch(g) < 0) {
		r = gfs_error(g, "launch");
		goto out;
	}
	r = find_luks(g, &luks);
	if (r < 0)
		goto out;
	if (guestfs_cryptsetup_open(g, luks, pass, MAPPER, GUESTFS_CRYPTSETUP_OPEN_READONLY, 1,
				    -1) < 0) {
		checks_add(c, "deep-open", CHECK_FAIL, "the appliance's cryptsetup does not open %s "
			    "with the key: %s", luks, guestfs_last_error(g) ?: "failed");
		r = 0;
		goto out;
	}
	checks_add(c, "deep-open", CHECK_OK, "the appliance's dm-crypt opens %s with the key", luks);
	r = e2fsck_n(g, c);
	if (r < 0)
		goto out;
	if (guestfs_mount_ro(g, "/dev/mapper/" MAPPER, "/") < 0) {
		checks_add(c, "deep-files", CHECK_FAIL, "the kernel does not mount the root: %s",
			    guestfs_last_error(g) ?: "failed");
		goto out;
	}
	for (size_t i = 0; i < n_files; i++) {
		struct guestfs_statns *st = guestfs_lstatns(g, files[i].path);
		_cleanup_free_ char *sum = st ? guestfs_checksum(g, "sha256", files[i].path) : NULL;

		if (!st || !sum) {
			checks_add(c, "deep-files", CHECK_FAIL, "%s: %s through the kernel", files[i].path,
				    guestfs_last_error(g) ?: "cannot be read");
		} else if ((uint32_t)st->st_mode != files[i].mode || !streq(sum, files[i].sha256)) {
			checks_add(c, "deep-files", CHECK_FAIL, "%s differs through the kernel: mode "
				    "%04" PRIo64 " (offline %04o)%s", files[i].path, st->st_mode & 07777,
				    files[i].mode & 07777,
				    streq(sum, files[i].sha256) ? "" : ", other contents");
		} else {
			same++;
		}
		if (st)
			guestfs_free_statns(st);
		if (!st || !sum || same != i + 1)
			goto files_done;
	}
	checks_add(c, "deep-files", CHECK_OK, "%zu files read offline have the same mode and "
		    "contents through the kernel's dm-crypt and ext4 (%.0f s in the appliance)", same,
		    now_seconds() - t0);
files_done:
	guestfs_umount_all(g);
	if (guestfs_cryptsetup_close(g, "/dev/mapper/" MAPPER) < 0)
		log_debug("appliance: cryptsetup_close: %s", guestfs_last_error(g) ?: "failed");
	r = 0;
out:
	explicit_bzero(pass, key->size);
	if (g)
		guestfs_shutdown(g);
	return r;
}
