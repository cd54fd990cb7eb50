/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rekey: a new slot-0 key for an image, the key file replaced inside the root filesystem
 * and every initramfs, offline, in an order that keeps the image bootable at every instant. */
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
#include "common/confine.h"
#include "common/json.h"
#include "common/leftovers.h"
#include "common/log.h"
#include "common/run.h"
#include "image/cryptfs.h"
#include "image/esp.h"
#include "image/gpt.h"
#include "image/image.h"
#include "image/keys.h"
#include "image/luks.h"
#include "image/output.h"
#include "image/recrypt.h"
#include "image/xts.h"
#include "initramfs/gzpatch.h"
#include "initramfs/initramfs.h"
#include "shared/cleanup.h"
#include "shared/fault.h"
#include "shared/interrupt.h"
#include "shared/qemulock.h"
#include "shared/spawn.h"
#include "shared/strv.h"
#include "shared/tmpfile.h"
#include "shared/util.h"


struct initrd {
	char *path;
	struct initramfs_edit *edit; /* changed in pieces (initramfs_stream_plan()), or */
	void *data;                  /* the whole new file */
	size_t len;
	unsigned keys;
};

/* An initramfs in the root filesystem as a struct gz_file, for the streaming functions. */
struct fs_file {
	struct cryptfs *fs;
	const char *path;
};

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

struct rekey_ctx {
	const struct rekey_options *opt;
	double t0;
	struct image *im;      /* the image, locked; a qcow2 one through its export */
	bool qcow2;
	const char *raw_path;  /* im->raw_path: the guest's view as a file */
	int fd;                /* im->fd */
	char *key_out, *key_new;
	char *backup_path;
	char *hdr_path;
	bool backup_done, new_key_saved, slot_added, done;
	uint64_t part_off, part_size, hdr_size;
	struct crypt_device *cd;
	struct secret vk, secret, old_key, new_key;
	struct secret new_vk;           /* --reencrypt: the copy's volume key, chosen up front */
	char old_pin[LUKS_PIN_LEN + 1], new_pin[LUKS_PIN_LEN + 1]; /* "" when it does not change */
	int used_slot, old_slot, new_slot;
	unsigned retire;       /* the slots the new key replaces: bit N for slot N */
	struct xts *xts;
	struct cryptfs *fs;
	char *fs_key_path;
	struct initrd *initrds;
	size_t n_initrds;
	uint64_t bytes_read, bytes_written;
	double reencrypt_rate;
	char new_uuid[37];             /* with --new-uuid */
	bool resuming;                 /* --resume, rolling forward: KEY.new is the new key, its
					* slot added already; old_key is the given KEY */
	struct secret given_old;       /* --resume: the key in KEY (the rekey's old key) */
	unsigned uuid_edits;
	struct reencrypt {     /* --reencrypt: the copy being written */
		struct output dest;
		char *workdir, *hdr, *raw; /* raw: the copy as a raw disk (dest's image, or a
					    * file in workdir converted to qcow2 at the end) */
		int out;
		uint64_t size;
		struct luks_header lh;
		struct xts *nx;
		struct cryptfs *nfs;
		bool begun;            /* the output was begun: a failure says what is left */
	} re;
};

/* A step of a table (the in-place rekey's, --reencrypt's): its name (in CVM_IMAGE_FAULT and
 * the debug log), its action, whether an interruption is honoured after it, and what is true
 * after it. */
struct rekey_step {
	const char *name;
	int (*run)(struct rekey_ctx *c);
	bool interruptible;
	const char *after; /* what opens the image, and what holds which key, after it */
};

/* After each step: CVM_IMAGE_FAULT=STEP stops dead there (as if killed: no cleanup, exit 99),
 * CVM_IMAGE_FAULT=fail-after-STEP fails there as an error would (the messages after a
 * failure are tested against what the image then opens with), signal-after-STEP sends us
 * SIGINT there (a ^C between steps). */
static int fault(const char *step)
{
	char fail[64];

	log_debug("rekey: step %s done", step);
	if (fault_requested(step)) {
		log_warning("CVM_IMAGE_FAULT=%s: stopping dead here", step);
		_exit(99);
	}
	snprintf(fail, sizeof(fail), "fail-after-%s", step);
	if (fault_requested(fail))
		return log_error_errno(EIO, "CVM_IMAGE_FAULT=%s: failing here", fail);
	snprintf(fail, sizeof(fail), "signal-after-%s", step);
	if (fault_requested(fail))
		kill(getpid(), SIGINT);
	return 0;
}

/* The image locked (flock, and QEMU's locks: a running VM refuses it) and, for qcow2, its
 * guest's view exported as a file that is edited in place. */
static int open_image(struct rekey_ctx *c)
{
	int r = image_open(c->opt->image, c->opt->output ? 0 : IMAGE_WRITABLE, &c->im);

	if (r < 0)
		return r;
	c->qcow2 = c->im->qcow2;
	c->raw_path = c->im->raw_path;
	c->fd = c->im->fd;
	return 0;
}

/* What a killed cvm-image left beside the image and in $TMPDIR. */
static void sweep_leftovers(struct rekey_ctx *c)
{
	_cleanup_free_ char *dir = path_dirname(c->opt->image);
	_cleanup_free_ char *outdir = c->opt->output ? path_dirname(c->opt->output) : NULL;

	leftovers_sweep(getenv("TMPDIR") ?: "/var/tmp", leftovers_workdirs);
	if (!getenv("TMPDIR"))
		leftovers_sweep("/tmp", leftovers_workdirs); /* the header copies' default */
	if (dir)
		leftovers_sweep(dir, leftovers_outputs);
	/* --reencrypt's temporary output, when it is elsewhere */
	if (outdir && (!dir || !streq(outdir, dir)))
		leftovers_sweep(outdir, leftovers_outputs);
}

/* The LUKS partition, its header's size, and the copy of the header libcryptsetup edits. */
static int read_header(struct rekey_ctx *c)
{
	int r = image_find_luks(c->im);

	if (r < 0)
		return r;
	c->part_off = c->im->luks_off;
	c->part_size = c->im->luks_size;
	c->hdr_size = c->im->hdr_size;
	c->bytes_read += c->hdr_size;
	return image_load_header(c->im, &c->hdr_path, &c->cd);
}

static int write_backup(struct rekey_ctx *c)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ unsigned char *hdr = NULL;
	int r;

	r = image_read_header(c->im, &hdr);
	if (r < 0)
		return r;
	c->backup_path = strdupf("%s.luks-header-backup", c->opt->image);
	if (!c->backup_path)
		return log_error_errno(ENOMEM, "out of memory");
	fd = open(c->backup_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = log_error_errno(errno, "cannot create header backup '%s': %m%s", c->backup_path,
				    errno == EEXIST ? " (left by an interrupted rekey? restore it with "
						      "cryptsetup luksHeaderRestore or remove it)" : "");
		free(c->backup_path);
		c->backup_path = NULL;
		return r;
	}
	r = pwrite_all(fd, hdr, c->hdr_size, 0);
	if (r < 0 || fsync(fd) < 0)
		return log_error_errno(r < 0 ? r : -errno, "cannot write '%s': %m", c->backup_path);
	c->backup_done = true;
	return 0;
}

/* The header copy, as libcryptsetup left it, back into the image; synced. */
static int splice_header(struct rekey_ctx *c)
{
	_cleanup_close_ int hfd = open(c->hdr_path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ unsigned char *hdr = malloc(c->hdr_size);
	int r;

	if (hfd < 0 || !hdr)
		return log_error_errno(hfd < 0 ? errno : ENOMEM, "cannot read '%s': %m", c->hdr_path);
	r = pread_all(hfd, hdr, c->hdr_size, 0);
	if (r < 0)
		return log_error_errno(r, "cannot read '%s': %m", c->hdr_path);
	r = pwrite_all(c->fd, hdr, c->hdr_size, (off_t)c->part_off);
	if (r < 0 || fdatasync(c->fd) < 0)
		return log_error_errno(r < 0 ? r : -errno, "cannot write the LUKS header into '%s': %m",
				       c->raw_path);
	c->bytes_written += c->hdr_size;
	return 0;
}

static int unlock(struct rekey_ctx *c)
{
	const struct rekey_options *o = c->opt;
	int r;

	if (c->resuming)
		r = secret_copy(&c->secret, &c->new_key);
	else
		r = o->key_file ? keys_read_key_file(o->key_file, &c->secret) :
				  keys_read_passphrase_file(o->recovery_file, &c->secret);
	if (r < 0)
		return r;
	r = luks_unlock(c->cd, &c->secret, &c->vk, &c->used_slot);
	if (r == -EPERM)
		return log_error_errno(r, "the %s does not open '%s': nothing changed",
				       o->key_file ? "key in the key file" : "recovery passphrase",
				       o->image);
	if (r < 0)
		return r;
	r = xts_new(c->vk.data, c->vk.size, &c->xts);
	if (r < 0)
		return log_error_errno(r, "cannot set up AES-XTS: %m");
	return 0;
}

/* --reencrypt: the copy's volume key, so that its pin (luks_pin()) is known before the
 * initramfs archives are rewritten; the old pin is what the image's initramfs checks now. */
static int choose_new_volume_key(struct rekey_ctx *c)
{
	int r;

	if (!c->opt->output)
		return 0; /* a rekey keeps the volume key: the pin stays valid */
	r = secret_alloc(&c->new_vk, LUKS_VOLUME_KEY_BYTES);
	if (r == 0 && getrandom(c->new_vk.data, c->new_vk.size, 0) != (ssize_t)c->new_vk.size)
		r = -errno;
	if (r == 0 && c->vk.size == LUKS_VOLUME_KEY_BYTES)
		r = luks_pin(luks_uuid(c->cd), &c->vk, c->old_pin);
	if (r == 0 && c->vk.size == LUKS_VOLUME_KEY_BYTES)
		r = luks_pin(c->new_uuid[0] ? c->new_uuid : luks_uuid(c->cd), &c->new_vk, c->new_pin);
	if (r < 0)
		return log_error_errno(r, "cannot make the copy's volume key: %m");
	return 0;
}

static void format_slots(unsigned mask, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < 32 && n < size; i++)
		if (mask & (1u << i))
			n += (size_t)snprintf(buf + n, size - n, "%s%d", n ? ", " : "", i);
}

/* After a rekey the image opens with the new key (in slot 0, or the old key's slot) and the
 * recovery passphrase, nothing else. Retired: the slot of the image's key file, the slot the
 * given key opens (when it is not the recovery slot: a key that is being replaced) and the
 * --kill-slot ones. Any other slot in use (a key nobody holds: an interrupted rekey's, or one
 * added by hand) is refused before anything changes, naming it. */
static int choose_retired_slots(struct rekey_ctx *c)
{
	const struct rekey_options *o = c->opt;
	unsigned active = luks_active_slots(c->cd), keep, extra;
	char list[64];

	if (o->kill_slots & ~active) {
		format_slots(o->kill_slots & ~active, list, sizeof(list));
		return log_error_errno(EINVAL, "--kill-slot %s: not in use in '%s': nothing changed",
				       list, o->image);
	}
	if (o->recovery_file && (o->kill_slots & (1u << c->used_slot)))
		return log_error_errno(EINVAL, "--kill-slot %d: that is the slot the recovery "
					       "passphrase opens: nothing changed", c->used_slot);
	c->retire = o->kill_slots;
	if (c->old_slot >= 0)
		c->retire |= 1u << c->old_slot;
	if (o->key_file && c->used_slot != REKEY_RECOVERY_SLOT && !c->resuming)
		c->retire |= 1u << c->used_slot;
	keep = 1u << REKEY_RECOVERY_SLOT;
	if (c->resuming)
		keep |= 1u << c->new_slot; /* KEY.new's, added before the stop */
	if (o->recovery_file)
		keep |= 1u << c->used_slot;
	extra = active & ~keep & ~c->retire;
	if (extra) {
		format_slots(extra, list, sizeof(list));
		return log_error_errno(EEXIST, "'%s' has key slot%s %s in use that neither the given "
				       "key nor the image's key file opens (left by an interrupted "
				       "rekey, or added by hand): nothing changed; to remove %s, "
				       "give --kill-slot for %s", o->image,
				       strchr(list, ',') ? "s" : "", list,
				       strchr(list, ',') ? "them" : "it",
				       strchr(list, ',') ? "each" : "it");
	}
	return 0;
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
 * What prepare_files() and the steps parse in the root filesystem (libext2fs's open, its
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
	r = cryptfs_open(c->fd, c->part_off + c->hdr_size, c->xts, false, &fs);
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

static int preflight(struct rekey_ctx *c)
{
	_cleanup_free_ char *answer = NULL;
	size_t len;
	int sig, r;

	r = confine_run(preflight_read, c, c->fd, 16, &answer, &len, &sig);
	if (r == -ECHILD)
		return log_error_errno(EMEDIUMTYPE, "'%s': its root filesystem killed the confined "
				       "reader that reads it first (%s): damaged or crafted contents; "
				       "nothing changed", c->opt->image, strsignal(sig));
	return r;
}

/* The key inside the image, the slot it opens, and the new contents of every initramfs:
 * all worked out before the first write, so a problem leaves the image untouched. */
static int prepare_files(struct rekey_ctx *c)
{
	_cleanup_secret_ struct secret vk = {};
	char **kernels = NULL;
	size_t len;
	char *data = NULL;
	int r, slot;

	r = cryptfs_open(c->fd, c->part_off + c->hdr_size, c->xts, !c->opt->output, &c->fs);
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

	/* The slot to retire is the one the image's own key file opens. */
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
	if (!c->opt->output) {
		r = choose_retired_slots(c);
		if (r < 0)
			return r;
	}

	r = c->resuming ? 0 : keys_generate(&c->new_key);
	if (r < 0)
		return r;
	r = choose_new_volume_key(c);
	if (r < 0)
		return r;
	/* The initramfs of each installed kernel, by the names the tools give them (Debian's,
	 * then dracut's default): not every initrd.img-* (update-initramfs keeps .bak copies). */
	r = cryptfs_list(c->fs, "/boot", "vmlinuz-*", &kernels);
	for (size_t i = 0; r == 0 && kernels && kernels[i]; i++) {
		const char *v = kernels[i] + strlen("vmlinuz-");

		for (unsigned k = 0; r == 0 && k < INITRAMFS_NAMES; k++) {
			_cleanup_free_ char *path = initramfs_path(v, k);
			_cleanup_free_ char *old = NULL;
			size_t old_len;
			uint64_t size;
			uint32_t mode;
			struct initrd *d;

			if (!path) {
				r = log_error_errno(ENOMEM, "out of memory");
				break;
			}
			r = cryptfs_stat(c->fs, path, &mode, &size);
			if (r == -ENOENT) {
				r = 0;
				continue;
			}
			if (r < 0)
				break;
			/* It will hold the new key: not where others could read it. */
			if (!S_ISREG(mode)) {
				r = log_error_errno(EPERM, "'%s': %s is not a regular file in its root "
						    "filesystem; nothing changed", c->opt->image, path);
				break;
			}
			if (size > INITRAMFS_SIZE_MAX) {
				r = log_error_errno(EFBIG, "'%s': %s is larger than the %llu MiB cvm-image "
						    "reads; nothing changed", c->opt->image, path,
						    INITRAMFS_SIZE_MAX / MiB);
				break;
			}
			if (mode & 0077) {
				r = log_error_errno(EPERM, "'%s': %s has mode %04o in its root filesystem: "
						    "the new key would be readable by others; nothing "
						    "changed (chmod 0600 it in the guest first)",
						    c->opt->image, path, (unsigned)(mode & 07777));
				break;
			}
			d = realloc(c->initrds, (c->n_initrds + 1) * sizeof(*d));
			if (!d) {
				r = log_error_errno(ENOMEM, "out of memory");
				break;
			}
			c->initrds = d;
			d = &c->initrds[c->n_initrds++];
			*d = (struct initrd){ .path = TAKE_PTR(path) };
			/* In pieces where it can be, else the whole file, read, changed and
			 * written back. */
			r = prepare_streamed(c, d, size);
			if (r != 0) {
				r = r < 0 ? r : 0;
				continue;
			}
			r = cryptfs_read_file(c->fs, d->path, &old, &old_len);
			if (r < 0)
				break;
			r = initramfs_replace_key_uuid(d->path, old, old_len, c->old_key.data,
						       c->old_key.size, c->new_key.data, c->new_key.size,
						       c->new_uuid[0] ? luks_uuid(c->cd) : NULL,
						       c->new_uuid[0] ? c->new_uuid : NULL,
						       c->new_pin[0] ? c->old_pin : NULL,
						       c->new_pin[0] ? c->new_pin : NULL, &d->data,
						       &d->len, &d->keys);
			/* Resuming, an initramfs written before the stop holds the new key already. */
			if (r == 0 && d->keys == 0 && c->resuming &&
			    initramfs_count_key(d->path, d->data, d->len, c->new_key.data,
						c->new_key.size, &d->keys) == 0 && d->keys > 0)
				continue;
			if (r == 0 && d->keys == 0)
				r = log_error_errno(ENOENT, "'%s': %s holds no copy of the image's key file",
						    c->opt->image, d->path);
		}
	}
	strv_free(kernels);
	if (r == 0 && c->n_initrds == 0)
		log_warning("'%s' has no initramfs in /boot", c->opt->image);
	return r;
}

static int rename_key(struct rekey_ctx *c);

/*
 * --resume: what an interrupted rekey left (KEY.new, maybe the header backup), tried against
 * the header the image holds: undone when KEY.new opens nothing (the slot was never added),
 * finished by renaming when only KEY.new opens it (the old slot was already removed), and
 * rolled forward from the key copies on when both open it (*ret_forward: the caller goes on
 * with the steps after slot-added). Returns 1 when nothing more is to be done.
 */
static int resume_decide(struct rekey_ctx *c, bool *ret_forward)
{
	const char *img = c->opt->image;
	struct secret vk = {};
	bool old_opens, new_opens, backup;
	struct stat st;
	int r, slot = -1;

	*ret_forward = false;
	c->backup_path = strdupf("%s.luks-header-backup", img);
	if (!c->backup_path)
		return log_error_errno(ENOMEM, "out of memory");
	backup = lstat(c->backup_path, &st) == 0;
	if (lstat(c->key_new, &st) < 0 && backup) {
		/* Stopped after the rename, before the backup went: done if KEY opens it. */
		const char *key = c->opt->key_file ?: c->key_out;

		r = keys_read_key_file(key, &c->given_old);
		if (r < 0)
			return r;
		if (luks_unlock(c->cd, &c->given_old, &vk, &slot) < 0)
			return log_error_errno(EPERM, "--resume: '%s' is there, '%s' is not, and the key "
					       "in '%s' does not open '%s': restore its header from the "
					       "backup (cryptsetup luksHeaderRestore)", c->backup_path,
					       c->key_new, key, img);
		secret_free(&vk);
		unlink(c->backup_path);
		log_notice("'%s': the interrupted rekey was finished but for removing the header "
			   "backup, which is gone now; the key in '%s' opens slot %d", img, key, slot);
		return 1;
	}
	if (lstat(c->key_new, &st) < 0) {
		log_notice("'%s': no interrupted rekey ('%s' is not there): nothing to resume", img,
			   c->key_new);
		return 1;
	}
	r = keys_read_key_file(c->key_new, &c->new_key);
	if (r == 0)
		r = keys_read_key_file(c->opt->key_file ?: c->key_out, &c->given_old);
	if (r < 0)
		return r;
	new_opens = luks_unlock(c->cd, &c->new_key, &vk, &slot) == 0;
	secret_free(&vk);
	old_opens = luks_unlock(c->cd, &c->given_old, &vk, &c->old_slot) == 0;
	secret_free(&vk);
	if (!new_opens && !old_opens)
		return log_error_errno(EPERM, "--resume: neither the key in '%s' nor the one in '%s' "
				       "opens '%s'%s%s%s: nothing changed", c->opt->key_file ?: c->key_out,
				       c->key_new, img, backup ? "; its original header is in '" : "",
				       backup ? c->backup_path : "", backup ? "'" : "");
	if (!new_opens) {
		/* Stopped before the new slot: the image is as it was. */
		unlink(c->key_new);
		if (backup)
			unlink(c->backup_path);
		log_notice("'%s': the interrupted rekey had not changed it; it opens with '%s' as "
			   "before; '%s'%s removed", img, c->opt->key_file ?: c->key_out, c->key_new,
			   backup ? " and the header backup" : "");
		return 1;
	}
	c->new_slot = slot;
	if (!old_opens) {
		/* Stopped after the old slot's removal: only the rename was left. */
		r = rename_key(c);
		if (r < 0)
			return r;
		if (backup)
			unlink(c->backup_path);
		log_notice("'%s': the interrupted rekey is finished: the new key is in slot %d and in "
			   "'%s'; the old key opens nothing", img, c->new_slot, c->key_out);
		return 1;
	}
	/* Both open: the new slot is there, the key copies may be half written. */
	log_notice("'%s': resuming the interrupted rekey: its new key (slot %d) goes into the key "
		   "copies, the old key's slot %d is removed", img, c->new_slot, c->old_slot);
	c->resuming = true;
	c->new_key_saved = true;
	c->backup_done = backup;
	*ret_forward = true;
	return 0;
}

/* The copy's pin in its root filesystem (luks-UUID.pin beside the key file, renamed with
 * --new-uuid); the initramfs copies were changed with the key. Images without a pin (built
 * before cvm-image pinned the root) have nothing to change. */
static int replace_pin(struct rekey_ctx *c, struct cryptfs *fs)
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

static int save_new_key(struct rekey_ctx *c)
{
	_cleanup_close_ int fd = open(c->key_new, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int r;

	if (fd < 0)
		return log_error_errno(errno, "cannot create '%s': %m; nothing in '%s' changed",
				       c->key_new, c->opt->image);
	c->new_key_saved = true;
	r = pwrite_all(fd, c->new_key.data, c->new_key.size, 0);
	if (r < 0 || fsync(fd) < 0)
		return log_error_errno(r < 0 ? r : -errno, "cannot write '%s': %m", c->key_new);
	(void)fsync_dir_of(c->key_new);
	return 0;
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
static int replace_key_copies(struct rekey_ctx *c, struct cryptfs *fs)
{
	int r = write_rootfs_key(c, fs);

	return r < 0 ? r : write_initramfs(c, fs);
}

/* The steps of an in-place rekey on the image's own filesystem. */
static int step_rootfs_key(struct rekey_ctx *c)
{
	return write_rootfs_key(c, c->fs);
}

static int step_initramfs(struct rekey_ctx *c)
{
	return write_initramfs(c, c->fs);
}

/* The filesystem flushed, closed and synced. */
static int step_files(struct rekey_ctx *c)
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
	if (fsync(c->fd) < 0)
		return log_error_errno(errno, "cannot write '%s': %m", c->raw_path);
	return 0;
}

/* The new key in a free slot; from this first header write on, what opens the image is tried
 * after a failure. */
static int add_slot(struct rekey_ctx *c)
{
	int r;

	c->slot_added = true;
	r = luks_add_fast_key(c->cd, &c->vk, &c->new_key, -1);
	if (r < 0)
		return r;
	c->new_slot = r;
	return splice_header(c);
}

/* The retired slots removed and the new key moved into slot 0 (if it was among them) or the
 * old key's slot, the temporary slot gone: one header write. */
static int retire_old_slot(struct rekey_ctx *c)
{
	char list[64];
	int r, target;

	if (c->retire) {
		target = c->retire & 1u ? 0 : c->old_slot >= 0 ? c->old_slot : c->new_slot;
		for (int i = 0; i < 32; i++)
			if ((c->retire & (1u << i)) && (r = luks_kill_slot(c->cd, i)) < 0)
				return r;
		if (target != c->new_slot) {
			r = luks_add_fast_key(c->cd, &c->vk, &c->new_key, target);
			if (r >= 0)
				r = luks_kill_slot(c->cd, c->new_slot);
			if (r < 0)
				return r;
			c->new_slot = target;
		}
		r = splice_header(c);
		if (r < 0)
			return r;
		format_slots(c->retire, list, sizeof(list));
		log_info("rekey: slot%s %s removed; the new key is in slot %d",
			 strchr(list, ',') ? "s" : "", list, c->new_slot);
	}
	return 0;
}

static int rename_key(struct rekey_ctx *c)
{
	if (rename(c->key_new, c->key_out) < 0)
		return log_error_errno(errno, "cannot rename '%s' to '%s': %m (the new key is in '%s')",
				       c->key_new, c->key_out, c->key_new);
	c->new_key_saved = false;
	(void)fsync_dir_of(c->key_out);
	return 0;
}

/*
 * An in-place rekey, in order. After each step the runner calls fault() (CVM_IMAGE_FAULT) and,
 * where stopping changes nothing (interruptible), honours SIGINT/SIGTERM; after a failure,
 * rekey_ctx_done() says what opens the image by trying the keys on its header, and
 * "rekey --resume" finishes or undoes it from there (resume_decide()).
 */
static const struct rekey_step steps[] = {
	{ "key-saved", save_new_key, true, "the new key is in KEY.new; the image is unchanged" },
	{ "backup", write_backup, true, "the header is backed up beside the image; unchanged" },
	{ "slot-added", add_slot, false, "both keys open the image; the tree holds the old key" },
	{ "rootfs-key", step_rootfs_key, false, "both keys open it; the tree's key file is new" },
	{ "initramfs", step_initramfs, false, "both keys open it; every initramfs holds the new key" },
	{ "files", step_files, false, "both keys open it; the filesystem is flushed and synced" },
	{ "old-slot-killed", retire_old_slot, false, "only the new key (slot 0) opens it" },
	{ "key-renamed", rename_key, false, "KEY holds the new key; KEY.new is gone" },
};

/* The first step a resumed rekey runs: the new key is saved and in its slot already. */
#define RESUME_FROM 3

static int run_steps(struct rekey_ctx *c, const struct rekey_step *table, size_t n, size_t first)
{
	for (size_t i = first; i < n; i++) {
		const struct rekey_step *step = &table[i];
		int r = step->run(c);

		if (r == 0)
			r = fault(step->name);
		if (r < 0)
			return r;
		log_debug("rekey: %s: %s", step->name, step->after);
		if (step->interruptible && interrupt_pending())
			return log_error_errno(EINTR, "interrupted after step %s", step->name);
	}
	return 0;
}

static void print_json(const struct rekey_ctx *c)
{
	struct json_object *o = json_object_new_object(), *initrds = json_object_new_array();

	json_add_str(o, "image", c->opt->image);
	json_add_str(o, "format", c->qcow2 ? "qcow2" : "raw");
	json_add_str(o, "luks_uuid", c->new_uuid[0] ? c->new_uuid : luks_uuid(c->cd));
	json_add_int(o, "old_slot", c->old_slot);
	json_add_int(o, "new_slot", c->new_slot);
	json_add_str(o, "key_file", c->key_out);
	for (size_t i = 0; i < c->n_initrds; i++)
		json_object_array_add(initrds, json_str(c->initrds[i].path));
	json_add(o, "initramfs", initrds);
	json_add_u64(o, "bytes_read", c->bytes_read);
	json_add_u64(o, "bytes_written", c->bytes_written);
	json_add_double(o, "seconds", now_seconds() - c->t0, 3);
	if (c->opt->output) {
		json_add_str(o, "output", c->opt->output);
		json_add_u64(o, "reencrypt_rate", (uint64_t)c->reencrypt_rate);
	}
	/* The rekey is done when this is printed: a failure to print is said, not returned. */
	if (json_print(o, stdout) < 0)
		log_warning_errno(errno ?: EIO, "cannot write the --json report: %m");
}

/* Which of the old key (the image's key file) and the new one open the header that is in the
 * raw image now: read back, not assumed. -errno if that cannot be told. */
static int keys_opening_now(struct rekey_ctx *c, bool *old_opens, bool *new_opens)
{
	_cleanup_free_ char *path = NULL;
	struct crypt_device *cd = NULL;
	struct secret vk = {};
	int r, slot;

	r = image_load_header(c->im, &path, &cd);
	if (r < 0)
		return r;
	*old_opens = c->old_key.size && luks_unlock(cd, &c->old_key, &vk, &slot) == 0;
	secret_free(&vk);
	*new_opens = luks_unlock(cd, &c->new_key, &vk, &slot) == 0;
	secret_free(&vk);
	luks_free(cd);
	unlink(path);
	return 0;
}

/* After a failure once the header may have changed: say what opens the image, as tried now,
 * and what to do; keep KEY.new and the backup where they still matter. */
static void report_unfinished(struct rekey_ctx *c)
{
	const char *img = c->opt->image;
	bool old_opens = false, new_opens = false;
	int r;

	r = keys_opening_now(c, &old_opens, &new_opens);
	if (r < 0) {
		log_error("rekey did not finish, and which key opens '%s' cannot be told (%s): the "
			  "new key is in '%s', the original header in '%s'", img, strerror(-r),
			  c->key_new, c->backup_path);
	} else if (old_opens && new_opens) {
		log_error("rekey did not finish: '%s' opens with the old key and with the new key in "
			  "'%s'; the original header is in '%s'; 'cvm-image rekey %s --resume' finishes "
			  "it", img, c->key_new, c->backup_path, img);
	} else if (new_opens) {
		log_error("rekey did not finish: '%s' opens with the new key in '%s' only: rename it "
			  "to '%s' ('cvm-image rekey %s --resume' does)", img, c->key_new, c->key_out,
			  img);
		unlink(c->backup_path);
	} else if (old_opens) {
		/* The slot was never added: nothing in the image names the new key. */
		log_error("rekey did not finish: '%s' opens with the old key only, as before; '%s' "
			  "was removed", img, c->key_new);
		unlink(c->key_new);
		unlink(c->backup_path);
	} else {
		log_error("rekey did not finish: neither the old key nor the new one in '%s' opens "
			  "'%s' now: restore its header from '%s' (cryptsetup luksHeaderRestore on the "
			  "LUKS partition)", c->key_new, img, c->backup_path);
	}
}

static void rekey_ctx_done(struct rekey_ctx *c)
{
	if (c->fs)
		cryptfs_abort(c->fs);
	if (!c->done && c->slot_added) {
		report_unfinished(c);
	} else {
		if (!c->done && !c->opt->output && (c->new_key_saved || c->backup_done))
			log_error("rekey did not finish: nothing in '%s' changed; it opens with the old "
				  "key, as before", c->opt->image);
		if (c->new_key_saved)
			unlink(c->key_new);
		if (c->backup_done)
			unlink(c->backup_path);
	}
	if (c->hdr_path) {
		unlink(c->hdr_path);
		free(c->hdr_path);
	}
	for (size_t i = 0; i < c->n_initrds; i++) {
		free(c->initrds[i].path);
		initramfs_edit_free(c->initrds[i].edit);
		if (c->initrds[i].data)
			explicit_bzero(c->initrds[i].data, c->initrds[i].len);
		free(c->initrds[i].data);
	}
	free(c->initrds);
	free(c->fs_key_path);
	if (c->xts)
		xts_free(c->xts);
	secret_free(&c->vk);
	secret_free(&c->new_vk);
	secret_free(&c->secret);
	secret_free(&c->old_key);
	secret_free(&c->new_key);
	secret_free(&c->given_old);
	if (c->cd)
		luks_free(c->cd);
	image_close(c->im); /* stops a qcow2's export (flushed), releases the locks */
	free(c->backup_path);
	free(c->key_out);
	free(c->key_new);
}

/* --new-uuid: the key file's name, and the UUID in the configuration that names it. */
static int change_uuid_in_files(struct rekey_ctx *c, struct cryptfs *fs)
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

/*
 * --reencrypt: a copy with a new volume key, as its own table of steps over the part of the
 * context they share (struct reencrypt in rekey_ctx, freed by reencrypt_done() even half
 * made). The header is made anew (same LUKS UUID or --new-uuid's, the new key in slot 0, the
 * recovery passphrase in slot 1 if it is what opened the image), every block the filesystem
 * uses is decrypted with the old volume key and encrypted with the new one, the key copies
 * inside are replaced, and the output appears only at the last step (the output module: a
 * temporary name and a lock, then key and image committed). The original is only read, so
 * every step may be interrupted: the output is discarded and nothing is left.
 */
static int re_begin(struct rekey_ctx *c)
{
	const struct rekey_options *o = c->opt;
	struct reencrypt *re = &c->re;
	struct stat st;
	int r;

	if (fstat(c->fd, &st) < 0)
		return log_error_errno(errno, "cannot stat '%s': %m", c->raw_path);
	re->size = (uint64_t)st.st_size;
	r = output_begin(&re->dest, o->output, c->key_out, o->force, 0644);
	if (r < 0)
		return r;
	re->begun = true; /* from here on a failure says what was left */
	r = output_workdir(getenv("TMPDIR") ?: "/var/tmp", "cvm-image-reencrypt", &re->workdir);
	if (r < 0)
		return r;
	re->hdr = strdupf("%s/luks.hdr", re->workdir);
	re->raw = str_ends_with(o->output, ".qcow2") ? strdupf("%s/disk.raw", re->workdir) :
						       strdup(re->dest.image.path);
	if (!re->hdr || !re->raw)
		return log_error_errno(ENOMEM, "out of memory");
	re->out = open(re->raw, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (re->out < 0 || ftruncate(re->out, (off_t)re->size) < 0)
		return log_error_errno(errno, "cannot create '%s': %m", re->raw);
	return 0;
}

/* Everything outside the LUKS partition (GPT, ESP, backup GPT) as it is. */
static int re_copy_outside(struct rekey_ctx *c)
{
	struct reencrypt *re = &c->re;
	uint64_t end = c->part_off + c->part_size;
	int r = copy_range_sparse(c->fd, 0, re->out, 0, c->part_off);

	if (r == 0)
		r = copy_range_sparse(c->fd, (off_t)end, re->out, (off_t)end, re->size - end);
	if (r < 0)
		return log_error_errno(r, "cannot copy '%s': %m", c->raw_path);
	return 0;
}

/* A new header: the new volume key, the new key in slot 0. */
static int re_header(struct rekey_ctx *c)
{
	const struct rekey_options *o = c->opt;
	struct reencrypt *re = &c->re;
	_cleanup_close_ int hfd = open(re->hdr, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int r;

	if (hfd < 0 || ftruncate(hfd, 4096) < 0)
		return log_error_errno(errno, "cannot create '%s': %m", re->hdr);
	r = luks_format(re->hdr, c->new_uuid[0] ? c->new_uuid : luks_uuid(c->cd), &c->new_vk,
			&c->new_key, o->recovery_file ? &c->secret : NULL, o->recovery_iter_ms, &re->lh);
	if (r < 0)
		return r;
	if (re->lh.payload_offset != c->hdr_size)
		return log_error_errno(EMEDIUMTYPE, "the image's LUKS payload starts at %" PRIu64
				       ", a new header's at %" PRIu64 ": cannot re-encrypt it in place",
				       c->hdr_size, re->lh.payload_offset);
	r = copy_range_sparse(hfd, 0, re->out, (off_t)c->part_off, re->lh.payload_offset);
	if (r < 0)
		return log_error_errno(r, "cannot write the new header: %m");
	r = xts_new(re->lh.volume_key.data, re->lh.volume_key.size, &re->nx);
	if (r < 0)
		return log_error_errno(r, "cannot set up AES-XTS: %m");
	return 0;
}

/* Every block the filesystem uses, decrypted with the old volume key and encrypted with the
 * new one, on every core. */
static int re_data(struct rekey_ctx *c)
{
	struct reencrypt *re = &c->re;
	_cleanup_(recrypt_freep) struct recrypt *job = NULL;
	double t = now_seconds();
	uint64_t done = 0;
	int r;

	r = recrypt_new(c->fd, re->out, c->part_off + c->hdr_size, c->xts, re->nx, &job);
	if (r == 0)
		r = cryptfs_for_each_allocated(c->fs, recrypt_add, job, NULL);
	if (r == 0)
		r = recrypt_run(job, &done);
	if (r < 0)
		return r;
	t = now_seconds() - t;
	c->bytes_read += done;
	c->bytes_written += done;
	c->reencrypt_rate = t > 0 ? (double)done / t : 0;
	log_info("reencrypt: %" PRIu64 " MiB in %.2fs (%.0f MB/s)", done / MiB, t,
		 c->reencrypt_rate / 1e6);
	return 0;
}

/* The copy's own key inside it: the key file, every initramfs, the pin, and with --new-uuid
 * the names and configuration that name the UUID. */
static int re_key_copies(struct rekey_ctx *c)
{
	struct reencrypt *re = &c->re;
	uint64_t rd, wr;
	int r;

	r = cryptfs_open(re->out, c->part_off + c->hdr_size, re->nx, true, &re->nfs);
	if (r < 0)
		return r;
	r = replace_key_copies(c, re->nfs);
	if (r == 0 && c->new_uuid[0])
		r = change_uuid_in_files(c, re->nfs);
	if (r == 0)
		r = replace_pin(c, re->nfs);
	if (r < 0)
		return r;
	cryptfs_stats(re->nfs, &rd, &wr);
	c->bytes_read += rd;
	c->bytes_written += wr;
	r = cryptfs_close(re->nfs);
	re->nfs = NULL;
	return r;
}

/* --new-uuid: grub's early config, embedded in BOOTX64.EFI (cryptomount -u <UUID>). */
static int re_esp_uuid(struct rekey_ctx *c)
{
	struct reencrypt *re = &c->re;
	uint64_t esp_off, esp_size;
	int r;

	if (!c->new_uuid[0])
		return 0;
	r = gpt_find_esp(re->raw, &esp_off, &esp_size);
	if (r == 0)
		r = esp_replace_uuid(re->raw, esp_off, "EFI/BOOT/BOOTX64.EFI", luks_uuid(c->cd),
				     c->new_uuid, re->workdir);
	if (r == 0)
		log_warning("'EFI/BOOT/BOOTX64.EFI' on the ESP does not name the old LUKS UUID");
	if (r < 0)
		return r;
	c->uuid_edits += (unsigned)r;
	return 0;
}

/* The copy synced, and converted when the output is a qcow2 one. */
static int re_image(struct rekey_ctx *c)
{
	struct reencrypt *re = &c->re;

	if (fsync(re->out) < 0)
		return log_error_errno(errno, "cannot write '%s': %m", re->raw);
	if (streq(re->raw, re->dest.image.path))
		return 0;
	return output_convert_qcow2(&re->dest, re->raw);
}

static int re_commit(struct rekey_ctx *c)
{
	int r = output_commit(&c->re.dest, &c->new_key);

	if (r == 0)
		c->new_slot = 0;
	return r;
}

/* What a failed or interrupted --reencrypt leaves: the original only read; the output
 * discarded (its temporary files, the work directory). Then said as checked. */
static void reencrypt_done(struct rekey_ctx *c, bool failed)
{
	struct reencrypt *re = &c->re;
	struct stat st;

	if (re->nfs)
		cryptfs_abort(re->nfs);
	if (re->nx)
		xts_free(re->nx);
	luks_header_done(&re->lh);
	if (re->out >= 0)
		close(re->out);
	output_discard(&re->dest);
	if (re->workdir && rm_rf(re->workdir) < 0)
		log_warning("cannot remove work directory '%s'", re->workdir);
	if (failed && re->begun) {
		bool image = lstat(c->opt->output, &st) == 0, key = lstat(c->key_out, &st) == 0;

		if (!image && !key)
			log_error("no copy was written: neither '%s' nor '%s' exists; '%s' was only "
				  "read", c->opt->output, c->key_out, c->opt->image);
		else
			log_error("no copy was written: '%s' and '%s' are as they were before (--force "
				  "replaces them only at the end); '%s' was only read",
				  c->opt->output, c->key_out, c->opt->image);
	}
	free(re->workdir);
	free(re->hdr);
	free(re->raw);
}

static const struct rekey_step reencrypt_steps[] = {
	{ "output-begun", re_begin, true, "the output locked, under a temporary name" },
	{ "outside-copied", re_copy_outside, true, "GPT, ESP and backup GPT copied" },
	{ "header-written", re_header, true, "the copy's header: the new volume key, the key in slot 0" },
	{ "data-reencrypted", re_data, true, "every allocated block under the new volume key" },
	{ "copies-written", re_key_copies, true, "the key file, initramfs, pin (and UUID) in the copy" },
	{ "esp-renamed", re_esp_uuid, true, "with --new-uuid, grub's early config names it" },
	{ "image-written", re_image, true, "the copy synced (converted to qcow2)" },
	{ "committed", re_commit, false, "the key file, then the image, in place" },
};

int rekey_run(const struct rekey_options *opt)
{
	struct rekey_ctx c = {
		.opt = opt, .t0 = now_seconds(), .fd = -1,
		.old_slot = -1, .new_slot = -1,
		.re = { .dest = OUTPUT_INIT, .out = -1 },
	};
	struct stat st;
	int r;

	c.key_out = opt->new_key_out ? strdup(opt->new_key_out) :
				       strdupf("%s.key", opt->output ?: opt->image);
	c.key_new = c.key_out ? strdupf("%s.new", c.key_out) : NULL;
	if (!c.key_new) {
		r = log_error_errno(ENOMEM, "out of memory");
		goto out;
	}
	if (opt->new_uuid && (r = uuid_random(c.new_uuid)) < 0) {
		log_error_errno(r, "cannot get random bytes: %m");
		goto out;
	}
	/* Where the new key goes (IMAGE.key, usually the key file given too): a mode open to
	 * others would show the new key, a second name of the file would go on showing the
	 * old one as if it were the image's. */
	r = keys_check_private_file(c.key_out, "key file");
	if (r < 0)
		goto out;
	r = open_image(&c);
	/* After the lock: a KEY.new of a rekey that still runs is not a leftover. */
	if (r == 0 && !opt->resume && lstat(c.key_new, &st) == 0) {
		r = log_error_errno(EEXIST, "'%s' exists, left by an interrupted rekey: 'cvm-image "
					    "rekey %s --resume' finishes or undoes it", c.key_new,
				    opt->image);
		goto out;
	}
	if (r == 0)
		sweep_leftovers(&c);
	if (r == 0)
		r = read_header(&c);
	if (r == 0 && opt->resume) {
		bool forward;

		r = resume_decide(&c, &forward);
		if (r != 0 || !forward) {
			c.done = r >= 0;
			if (r > 0)
				r = 0;
			goto out;
		}
	}
	if (r == 0)
		r = unlock(&c);
	if (r == 0)
		r = preflight(&c);
	if (r == 0)
		r = prepare_files(&c);
	if (r == 0 && interrupt_pending())
		r = log_error_errno(EINTR, "interrupted: nothing changed");
	if (r < 0)
		goto out;
	if (opt->output) {
		/* A new image; the original is only read. */
		r = run_steps(&c, reencrypt_steps, ELEMENTSOF(reencrypt_steps), 0);
		reencrypt_done(&c, r < 0);
		if (r < 0)
			goto out;
		c.done = true;
		log_notice("[%7.1fs] '%s': a copy of '%s' with a new volume key; its key is in '%s'",
			   now_seconds() - c.t0, opt->output, opt->image, c.key_out);
		if (opt->json)
			print_json(&c);
		goto out;
	}

	/* From here on the image changes: the steps, from the first one (resuming: from the
	 * key copies on). */
	r = run_steps(&c, steps, ELEMENTSOF(steps), c.resuming ? RESUME_FROM : 0);
	if (r < 0)
		goto out;
	c.done = true;
	log_notice("[%7.1fs] rekeyed '%s': the new key is in slot %d and in '%s'%s",
		   now_seconds() - c.t0, opt->image, c.new_slot, c.key_out,
		   c.retire ? "; the old key opens nothing" : "");
	if (opt->json)
		print_json(&c);
out:
	rekey_ctx_done(&c);
	return r;
}
