/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rekey: the key's copies inside the root filesystem (the key file, the pin, every
 * initramfs), found and checked before anything changes (preflight, prepare), written as
 * steps of the rekey (rekey.c) and of --reencrypt's copy (reencrypt.c). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rekey.h"
#include "context.h"
#include "common/confine.h"
#include "common/log.h"
#include "image/keys.h"
#include "initramfs/gzpatch.h"
#include "shared/cleanup.h"
#include "shared/fault.h"
#include "shared/strv.h"
#include "shared/util.h"

static int fs_pread(void *userdata, uint64_t off, void *buf, size_t len)
{
	const struct fs_file *ff = userdata;

	return cryptfs_pread(ff->fs, ff->path, off, buf, len);
}

static int fs_pwrite(void *userdata, uint64_t off, const void *buf, size_t len)
{
	const struct fs_file *ff = userdata;

	return cryptfs_pwrite_grow(ff->fs, ff->path, off, buf, len);
}

static int fs_truncate(void *userdata, uint64_t size)
{
	const struct fs_file *ff = userdata;

	return cryptfs_truncate(ff->fs, ff->path, size);
}

/*
 * An initramfs planned in pieces of it, so that rekey's memory stays bounded whatever its
 * size: as cvm-image build left it, only the key archive at its end is read and will be
 * written; one the guest's own tools made has its archives read in pieces (of a gzip one,
 * only the blocks around the key are compressed again; a zstd one is written again into a
 * temporary file). Returns 1 when d is prepared so, 0 when the whole-file path must do it
 * (a compression it cannot stream, or a member it cannot find: that path says what is
 * wrong), -errno.
 */
static int prepare_streamed(struct rekey_ctx *c, struct initrd *d, uint64_t size)
{
	struct fs_file ff = { c->fs, d->path };
	struct gz_file f = { fs_pread, fs_pwrite, &ff, size, fs_truncate };
	unsigned n_old = 0, n_new = 0;
	int r;

	/* A new UUID or pin changes the distro's members too: the whole-file path. */
	if (c->new_uuid[0] || c->new_pin[0] || c->new_key.size != c->old_key.size)
		return 0;
	r = initramfs_stream_plan(d->path, &f, c->old_key.data, c->new_key.data,
				  c->old_key.size, &d->edit, &n_old, &n_new);
	if (r == -EOPNOTSUPP)
		return 0;
	if (r < 0)
		return r;
	if (n_old > 0) {
		d->keys = n_old;
		return 1;
	}
	/* Resuming, an initramfs written before the stop holds the new key already. */
	if (c->resuming && n_new > 0) {
		d->keys = n_new;
		return 1;
	}
	return 0;
}

/*
 * What rekey_prepare_files() and the steps parse in the root filesystem (libext2fs's open, its
 * bitmaps and directories, the key file, every initramfs's chain of archives: the contents a
 * guest that knows the disk key could have crafted) read first in a confined child
 * (confine.h), which answers nothing but whether it lived. Only what that reader survived is
 * then parsed here, with our privileges: a memory bug the contents find kills the child, not
 * us, and nothing is changed. Its errors are left to the real pass (logged once, there).
 */
static int preflight_read(void *userdata, int out_fd)
{
	struct rekey_ctx *c = userdata;
	_cleanup_free_ char *key_path = NULL, *key = NULL;
	struct cryptfs *fs = NULL;
	char **kernels = NULL;
	size_t key_len = 0;
	int r;

	(void)out_fd;
	close(STDERR_FILENO); /* the real pass says what is wrong */
	if (fault_requested("rekey-reader-crash"))
		abort();
	r = cryptfs_open(c->im->fd, image_payload_off(c->im), c->xts, false, &fs);
	if (r < 0)
		return 0;
	key_path = strdupf("/etc/cryptsetup-keys.d/luks-%s.key", luks_uuid(c->cd));
	if (key_path)
		(void)cryptfs_read_file(fs, key_path, &key, &key_len);
	if (!key)
		return 0;
	r = cryptfs_list(fs, "/boot", "vmlinuz-*", &kernels);
	for (size_t i = 0; r == 0 && kernels && kernels[i]; i++)
		for (unsigned k = 0; k < INITRAMFS_NAMES; k++) {
			_cleanup_free_ char *path = initramfs_path(kernels[i] + strlen("vmlinuz-"), k);
			_cleanup_free_ char *data = NULL;
			struct initramfs_edit *e = NULL;
			struct fs_file ff = { fs, path };
			/* Read only: no writer, no truncate (so no zstd rewrite either). */
			struct gz_file f = { .pread = fs_pread, .userdata = &ff };
			unsigned n_old, n_new, count;
			uint32_t mode;
			size_t len;

			if (!path || cryptfs_stat(fs, path, &mode, &f.size) < 0 || !S_ISREG(mode))
				continue;
			/* As the real pass reads it: in pieces (the key archive, plain, gzip and
			 * zstd archives), else whole (another compression) up to 32 MiB. */
			r = initramfs_stream_plan(path, &f, key, key, key_len, &e, &n_old, &n_new);
			initramfs_edit_free(e);
			if (r == -EOPNOTSUPP && f.size <= 32 * MiB &&
			    cryptfs_read_file(fs, path, &data, &len) == 0)
				(void)initramfs_count_key(path, data, len, key, key_len, &count);
			r = 0;
		}
	return 0; /* fs, kernels: the child ends here */
}

int rekey_preflight(struct rekey_ctx *c)
{
	_cleanup_free_ char *answer = NULL;
	size_t len;
	int sig, r;

	r = confine_run(preflight_read, c, c->im->fd, 16, &answer, &len, &sig);
	if (r == -ECHILD)
		return log_error_errno(EMEDIUMTYPE, "'%s': its root filesystem killed the confined "
				       "reader that reads it first (%s): damaged or crafted contents; "
				       "nothing changed", c->opt->image, strsignal(sig));
	return r;
}

/* The key inside the image, the slot it opens, and the new contents of every initramfs:
 * all worked out before the first write, so a problem leaves the image untouched. */
/* The image's key file, read from the root filesystem (opened here): the old key. Resuming,
 * it is KEY's whichever of the two keys the tree holds. */
static int read_tree_key(struct rekey_ctx *c)
{
	char *data = NULL;
	size_t len;
	int r;

	r = cryptfs_open(c->im->fd, image_payload_off(c->im), c->xts, !c->opt->output, &c->fs);
	if (r < 0)
		return r;
	c->fs_key_path = strdupf("/etc/cryptsetup-keys.d/luks-%s.key", luks_uuid(c->cd));
	if (!c->fs_key_path)
		return log_error_errno(ENOMEM, "out of memory");
	r = cryptfs_read_file(c->fs, c->fs_key_path, &data, &len);
	if (r == -ENOENT)
		return log_error_errno(r, "'%s' has no key file %s in its root filesystem (built with "
					  "--distro none, or not by cvm-image build): rekey keeps the key's "
					  "copies inside an image in step and finds none; nothing changed",
				       c->opt->image, c->fs_key_path);
	if (r < 0)
		return r;
	c->old_key = (struct secret){ (unsigned char *)data, len };
	if (c->resuming) {
		/* Stopped between the slot and the old key's removal: the tree holds the old key
		 * or, past the rootfs-key step, the new one already. Either way the old key is
		 * KEY's, and its slot the one to retire. */
		bool is_old = len == c->given_old.size && !memcmp(data, c->given_old.data, len);
		bool is_new = len == c->new_key.size && !memcmp(data, c->new_key.data, len);

		if (!is_old && !is_new)
			return log_error_errno(EINVAL, "--resume: the key file inside '%s' holds neither "
					       "the key in '%s' nor the one in '%s': nothing changed",
					       c->opt->image, c->key_out, c->key_new);
		secret_free(&c->old_key);
		r = secret_copy(&c->old_key, &c->given_old);
		if (r < 0)
			return log_error_errno(r, "out of memory");
	}
	return 0;
}

/* The slot to retire is the one the image's own key file opens (c->old_slot, -1: none). */
static int find_old_slot(struct rekey_ctx *c)
{
	_cleanup_secret_ struct secret vk = {};
	int r, slot;

	r = luks_unlock(c->cd, &c->old_key, &vk, &slot);
	if (r == -EPERM) {
		log_warning("the key file inside '%s' opens no slot: no old slot to remove",
			    c->opt->image);
		slot = -1;
	} else if (r < 0) {
		return r;
	}
	c->old_slot = slot;
	if (c->opt->key_file && slot != c->used_slot && !c->resuming)
		log_warning("the given key opens slot %d, the image's key file slot %d", c->used_slot,
			    slot);
	return 0;
}

/* An initramfs at path, if there is one: checked (a regular file, 0600, not too large) and
 * its change prepared, in pieces where it can be, else as a whole new file. */
static int prepare_initrd(struct rekey_ctx *c, const char *path)
{
	_cleanup_free_ char *old = NULL;
	size_t old_len;
	uint64_t size;
	uint32_t mode;
	struct initrd *d;
	int r;

	r = cryptfs_stat(c->fs, path, &mode, &size);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	/* It will hold the new key: not where others could read it. */
	if (!S_ISREG(mode))
		return log_error_errno(EPERM, "'%s': %s is not a regular file in its root "
				       "filesystem; nothing changed", c->opt->image, path);
	if (size > INITRAMFS_SIZE_MAX)
		return log_error_errno(EFBIG, "'%s': %s is larger than the %llu MiB cvm-image "
				       "reads; nothing changed", c->opt->image, path,
				       INITRAMFS_SIZE_MAX / MiB);
	if (mode & 0077)
		return log_error_errno(EPERM, "'%s': %s has mode %04o in its root filesystem: "
				       "the new key would be readable by others; nothing "
				       "changed (chmod 0600 it in the guest first)",
				       c->opt->image, path, (unsigned)(mode & 07777));
	d = realloc(c->initrds, (c->n_initrds + 1) * sizeof(*d));
	if (!d)
		return log_error_errno(ENOMEM, "out of memory");
	c->initrds = d;
	d = &c->initrds[c->n_initrds++];
	*d = (struct initrd){ .path = strdup(path) };
	if (!d->path)
		return log_error_errno(ENOMEM, "out of memory");
	r = prepare_streamed(c, d, size);
	if (r != 0)
		return r < 0 ? r : 0;
	r = cryptfs_read_file(c->fs, d->path, &old, &old_len);
	if (r < 0)
		return r;
	r = initramfs_replace_key_uuid(d->path, old, old_len, c->old_key.data,
				       c->old_key.size, c->new_key.data, c->new_key.size,
				       c->new_uuid[0] ? luks_uuid(c->cd) : NULL,
				       c->new_uuid[0] ? c->new_uuid : NULL,
				       c->new_pin[0] ? c->old_pin : NULL,
				       c->new_pin[0] ? c->new_pin : NULL, &d->data,
				       &d->len, &d->keys);
	if (r < 0)
		return r;
	/* Resuming, an initramfs written before the stop holds the new key already. */
	if (d->keys == 0 && c->resuming &&
	    initramfs_count_key(d->path, d->data, d->len, c->new_key.data,
				c->new_key.size, &d->keys) == 0 && d->keys > 0)
		return 0;
	if (d->keys == 0)
		return log_error_errno(ENOENT, "'%s': %s holds no copy of the image's key file",
				       c->opt->image, d->path);
	return 0;
}

int rekey_prepare_files(struct rekey_ctx *c)
{
	char **kernels = NULL;
	int r;

	r = read_tree_key(c);
	if (r == 0)
		r = find_old_slot(c);
	if (r == 0 && !c->opt->output)
		r = rekey_choose_retired_slots(c);
	if (r == 0 && !c->resuming)
		r = keys_generate(&c->new_key);
	if (r == 0)
		r = rekey_choose_new_volume_key(c);
	if (r < 0)
		return r;
	/* The initramfs of each installed kernel, by the names the tools give them (Debian's,
	 * then dracut's default): not every initrd.img-* (update-initramfs keeps .bak copies). */
	r = cryptfs_list(c->fs, "/boot", "vmlinuz-*", &kernels);
	for (size_t i = 0; r == 0 && kernels && kernels[i]; i++) {
		const char *v = kernels[i] + strlen("vmlinuz-");

		for (unsigned k = 0; r == 0 && k < INITRAMFS_NAMES; k++) {
			_cleanup_free_ char *path = initramfs_path(v, k);

			r = path ? prepare_initrd(c, path) : log_error_errno(ENOMEM, "out of memory");
		}
	}
	strv_free(kernels);
	if (r == 0 && c->n_initrds == 0)
		log_warning("'%s' has no initramfs in /boot", c->opt->image);
	return r;
}

/* The copy's pin in its root filesystem (luks-UUID.pin beside the key file, renamed with
 * --new-uuid); the initramfs copies were changed with the key. Images without a pin (built
 * before cvm-image pinned the root) have nothing to change. */
int rekey_replace_pin(struct rekey_ctx *c, struct cryptfs *fs)
{
	const char *old = luks_uuid(c->cd), *uuid = c->new_uuid[0] ? c->new_uuid : old;
	_cleanup_free_ char *oldname = strdupf("luks-%s.pin", old);
	_cleanup_free_ char *path = strdupf("/etc/cryptsetup-keys.d/luks-%s.pin", uuid);
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	if (!oldname || !path)
		return log_error_errno(ENOMEM, "out of memory");
	if (!c->new_pin[0])
		return 0;
	if (c->new_uuid[0]) {
		r = cryptfs_rename(fs, "/etc/cryptsetup-keys.d", oldname, path + strlen("/etc/cryptsetup-keys.d/"));
		if (r == -ENOENT)
			return 0;
		if (r < 0)
			return r;
	}
	r = cryptfs_read_file(fs, path, &text, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (len != strlen(c->old_pin) || memcmp(text, c->old_pin, len) != 0)
		log_warning("'%s' in '%s' is not the pin of its volume key: replaced", path,
			    c->opt->image);
	r = cryptfs_write_file(fs, path, c->new_pin, strlen(c->new_pin));
	if (r == 0)
		log_info("reencrypt: the pin of the new volume key in %s", path);
	return r;
}

/* The key file in the root filesystem fs. */
static int write_rootfs_key(struct rekey_ctx *c, struct cryptfs *fs)
{
	return cryptfs_write_file(fs, c->fs_key_path, c->new_key.data, c->new_key.size);
}

/* Every initramfs of fs, as prepared. */
static int write_initramfs(struct rekey_ctx *c, struct cryptfs *fs)
{
	for (size_t i = 0; i < c->n_initrds; i++) {
		const struct initrd *d = &c->initrds[i];
		struct fs_file ff = { fs, d->path };
		struct gz_file f = { fs_pread, fs_pwrite, &ff, 0, fs_truncate };
		size_t redone = 0;
		int r;

		if (d->edit) {
			r = initramfs_stream_apply(d->path, d->edit, &f, &redone);
			if (r < 0)
				return r;
			if (initramfs_edit_in_key_archive(d->edit))
				log_info("rekey: %s: %u key cop%s replaced in its key archive", d->path,
					 d->keys, d->keys == 1 ? "y" : "ies");
			else
				log_info("rekey: %s: %u key cop%s replaced in pieces (%zu bytes "
					 "compressed again)", d->path, d->keys,
					 d->keys == 1 ? "y" : "ies", redone);
			continue;
		}
		if (!d->data)
			continue; /* resumed: it holds the new key already */
		r = cryptfs_write_file(fs, d->path, d->data, d->len);
		if (r < 0)
			return r;
		log_info("rekey: %s: %u key cop%s replaced", d->path, d->keys,
			 d->keys == 1 ? "y" : "ies");
	}
	return 0;
}

/* --reencrypt: both into the copy's filesystem. */
int rekey_replace_key_copies(struct rekey_ctx *c, struct cryptfs *fs)
{
	int r = write_rootfs_key(c, fs);

	return r < 0 ? r : write_initramfs(c, fs);
}

/* The steps of an in-place rekey on the image's own filesystem. */
int rekey_step_rootfs_key(struct rekey_ctx *c)
{
	return write_rootfs_key(c, c->fs);
}

int rekey_step_initramfs(struct rekey_ctx *c)
{
	return write_initramfs(c, c->fs);
}

/* The filesystem flushed, closed and synced. */
int rekey_step_files(struct rekey_ctx *c)
{
	uint64_t rd, wr;
	int r;

	cryptfs_stats(c->fs, &rd, &wr);
	c->bytes_read += rd;
	c->bytes_written += wr;
	r = cryptfs_close(c->fs);
	c->fs = NULL;
	if (r < 0)
		return r;
	if (fsync(c->im->fd) < 0)
		return log_error_errno(errno, "cannot write '%s': %m", c->im->raw_path);
	return 0;
}

/* --new-uuid: the key file's name, and the UUID in the configuration that names it. */
int rekey_change_uuid_in_files(struct rekey_ctx *c, struct cryptfs *fs)
{
	static const char *const files[] = {
		"/etc/crypttab", "/etc/default/grub", "/boot/grub/grub.cfg", "/boot/grub2/grub.cfg",
	};
	const char *old = luks_uuid(c->cd);
	_cleanup_free_ char *oldname = strdupf("luks-%s.key", old);
	_cleanup_free_ char *newname = strdupf("luks-%s.key", c->new_uuid);
	int r;

	if (!oldname || !newname)
		return log_error_errno(ENOMEM, "out of memory");
	r = cryptfs_rename(fs, "/etc/cryptsetup-keys.d", oldname, newname);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *text = NULL;
		size_t len;
		unsigned n;

		r = cryptfs_read_file(fs, files[i], &text, &len);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		n = uuid_replace_all(text, len, old, c->new_uuid);
		if (n == 0)
			continue;
		r = cryptfs_write_file(fs, files[i], text, len);
		if (r < 0)
			return r;
		log_info("new UUID: %u in %s", n, files[i]);
		c->uuid_edits += n;
	}
	return 0;
}
