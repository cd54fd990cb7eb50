/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An image and its key file written under temporary names with a lock, committed together. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output.h"
#include "common/log.h"
#include "common/run.h"
#include "shared/fault.h"
#include "shared/util.h"

static int take_lock(struct lockfile *l, const char *path, const char *what)
{
	pid_t holder;
	int r = lockfile_take(l, path, &holder);

	if (r == -EBUSY && holder > 0)
		return log_error_errno(r, "%s '%s' is being written by another cvm-image (process "
				       "%d): wait for it to finish", what, path, (int)holder);
	if (r == -EBUSY)
		return log_error_errno(r, "%s '%s' is being written by another process", what, path);
	if (r < 0)
		return log_error_errno(r, "cannot create %s '%s': %m", what, path);
	return 0;
}

int output_begin(struct output *o, const char *image, const char *key, bool force,
		 mode_t image_mode)
{
	struct stat st;
	int r;

	o->force = force;
	r = take_lock(&o->key_lock, key, "key file");
	if (r < 0)
		return r;
	r = take_lock(&o->image_lock, image, "output");
	if (r < 0)
		return r;
	if (lstat(image, &st) == 0 && S_ISDIR(st.st_mode))
		return log_error_errno(EISDIR, "output '%s' is a directory", image);
	if (lstat(image, &st) == 0 && !force)
		return log_error_errno(EEXIST, "output '%s' exists (use --force to replace it)", image);
	if (lstat(key, &st) == 0 && !force)
		return log_error_errno(EEXIST, "key file '%s' exists (use --force to replace it)", key);
	r = tmpfile_create(&o->key, key, 0600);
	if (r < 0)
		return log_error_errno(r, "cannot create key file '%s': %m", key);
	r = tmpfile_create(&o->image, image, image_mode);
	if (r < 0)
		return log_error_errno(r, "cannot create output '%s': %m", image);
	return 0;
}

static int rename_image(struct output *o)
{
	if (fault_requested("output-rename"))
		return -EIO;
	if (renameat2(AT_FDCWD, o->image.path, AT_FDCWD, o->image.final,
		      o->force ? 0 : RENAME_NOREPLACE) < 0)
		return -errno;
	return 0;
}

int output_commit(struct output *o, const struct secret *key)
{
	const char *kpath = o->key.final, *ipath = o->image.final;
	struct stat st;
	bool exchanged = false;
	int r;

	r = pwrite_all(o->key.fd, key->data, key->size, 0);
	if (r == 0)
		r = tmpfile_sync(&o->key);
	if (r < 0)
		return log_error_errno(r, "cannot write key file '%s': %m", kpath);
	r = tmpfile_sync(&o->image);
	if (r < 0)
		return log_error_errno(r, "cannot write output '%s': %m", ipath);

	/* The key first: an image is never in place without the key that opens it. */
	if (o->force && lstat(kpath, &st) == 0) {
		if (renameat2(AT_FDCWD, o->key.path, AT_FDCWD, kpath, RENAME_EXCHANGE) < 0)
			return log_error_errno(errno, "cannot replace key file '%s': %m (the previous "
					       "image and key file are unchanged)", kpath);
		exchanged = true; /* the old key is at the temporary name now */
	} else if (renameat2(AT_FDCWD, o->key.path, AT_FDCWD, kpath, RENAME_NOREPLACE) < 0) {
		return log_error_errno(errno, "cannot create key file '%s': %m", kpath);
	}

	r = rename_image(o);
	if (r < 0) {
		/* Put the previous key file back (or remove the new one): the pair on disk is
		 * the one that was there before. */
		if (exchanged &&
		    renameat2(AT_FDCWD, o->key.path, AT_FDCWD, kpath, RENAME_EXCHANGE) == 0)
			return log_error_errno(r, "cannot create output '%s': %m (the previous image "
					       "and key file are unchanged)", ipath);
		if (!exchanged && unlink(kpath) == 0) {
			free(o->key.path);
			o->key.path = NULL;
			return log_error_errno(r, "cannot create output '%s': %m (no image or key "
					       "file was written)", ipath);
		}
		/* Keep the new key's temporary name from being removed: it names what is where. */
		log_error_errno(r, "cannot create output '%s': %m; the new key file is '%s' and the "
				"new image '%s'", ipath, kpath, o->image.path);
		free(o->image.path);
		o->image.path = NULL;
		free(o->key.path);
		o->key.path = NULL;
		return r;
	}
	free(o->image.path);
	o->image.path = NULL;
	if (!exchanged) {
		free(o->key.path);
		o->key.path = NULL;
	}
	/* With an exchange, the key's temporary name holds the old key: discard removes it. */
	(void)fsync_dir_of(kpath);
	(void)fsync_dir_of(ipath);
	return 0;
}

int output_workdir(const char *parent, const char *prefix, char **ret)
{
	/* Absolute: the sandbox is given paths below it. */
	_cleanup_free_ char *abs = realpath(parent, NULL);
	_cleanup_free_ char *tmpl = abs ? strdupf("%s/%s.%d.XXXXXX", abs, prefix, (int)getpid()) : NULL;

	if (!abs)
		return log_error_errno(errno, "cannot create a work directory in '%s': %m", parent);
	if (!tmpl)
		return log_error_errno(ENOMEM, "out of memory");
	if (!mkdtemp(tmpl))
		return log_error_errno(errno, "cannot create a work directory in '%s': %m", parent);
	*ret = TAKE_PTR(tmpl);
	return 0;
}

int output_convert_qcow2(struct output *o, const char *raw)
{
	char *argv[] = { "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", (char *)raw,
			 o->image.path, NULL };
	int r = run_program(argv, NULL);

	if (r < 0)
		return r;
	unlink(raw);
	return 0;
}

void output_discard(struct output *o)
{
	tmpfile_discard(&o->image);
	tmpfile_discard(&o->key);
	lockfile_release(&o->image_lock);
	lockfile_release(&o->key_lock);
}
