/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rekey: a new slot-0 key for an image, the key file replaced inside the root filesystem
 * and every initramfs, offline, in an order that keeps the image bootable at every instant.
 * This file: the context, the header and slot steps, the step table and its runner, and
 * rekey_run(); the key copies are files.c, --resume resume.c, --reencrypt reencrypt.c. */
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
#include "common/json.h"
#include "common/leftovers.h"
#include "common/log.h"
#include "image/keys.h"
#include "shared/cleanup.h"
#include "shared/fault.h"
#include "shared/interrupt.h"
#include "shared/util.h"

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
	c->bytes_read += c->im->hdr_size;
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
	r = pwrite_all(fd, hdr, c->im->hdr_size, 0);
	if (r < 0 || fsync(fd) < 0)
		return log_error_errno(r < 0 ? r : -errno, "cannot write '%s': %m", c->backup_path);
	c->backup_done = true;
	return 0;
}

/* The header copy, as libcryptsetup left it, back into the image; synced. */
static int splice_header(struct rekey_ctx *c)
{
	_cleanup_close_ int hfd = open(c->hdr_path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ unsigned char *hdr = malloc(c->im->hdr_size);
	int r;

	if (hfd < 0 || !hdr)
		return log_error_errno(hfd < 0 ? errno : ENOMEM, "cannot read '%s': %m", c->hdr_path);
	r = pread_all(hfd, hdr, c->im->hdr_size, 0);
	if (r < 0)
		return log_error_errno(r, "cannot read '%s': %m", c->hdr_path);
	r = pwrite_all(c->im->fd, hdr, c->im->hdr_size, (off_t)c->im->luks_off);
	if (r < 0 || fdatasync(c->im->fd) < 0)
		return log_error_errno(r < 0 ? r : -errno, "cannot write the LUKS header into '%s': %m",
				       c->im->raw_path);
	c->bytes_written += c->im->hdr_size;
	return 0;
}

static int unlock(struct rekey_ctx *c)
{
	const struct rekey_options *o = c->opt;
	int r;

	if (c->resuming)
		r = secret_copy(&c->secret, &c->new_key);
	else
		r = image_read_secret(o->key_file, o->recovery_file, &c->secret);
	if (r < 0)
		return r;
	r = image_unlock(c->cd, &c->secret, &c->vk, &c->used_slot, &c->xts);
	if (r == -EPERM)
		return log_error_errno(r, "the %s does not open '%s': nothing changed",
				       o->key_file ? "key in the key file" : "recovery passphrase",
				       o->image);
	return r;
}

/* --reencrypt: the copy's volume key, so that its pin (luks_pin()) is known before the
 * initramfs archives are rewritten; the old pin is what the image's initramfs checks now. */
int rekey_choose_new_volume_key(struct rekey_ctx *c)
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
int rekey_choose_retired_slots(struct rekey_ctx *c)
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

int rekey_rename_key(struct rekey_ctx *c)
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
 * "rekey --resume" finishes or undoes it from there (rekey_resume_decide()).
 */
static const struct rekey_step steps[] = {
	{ "key-saved", save_new_key, true, "the new key is in KEY.new; the image is unchanged" },
	{ "backup", write_backup, true, "the header is backed up beside the image; unchanged" },
	{ "slot-added", add_slot, false, "both keys open the image; the tree holds the old key" },
	{ "rootfs-key", rekey_step_rootfs_key, false, "both keys open it; the tree's key file is new" },
	{ "initramfs", rekey_step_initramfs, false, "both keys open it; every initramfs holds the new key" },
	{ "files", rekey_step_files, false, "both keys open it; the filesystem is flushed and synced" },
	{ "old-slot-killed", retire_old_slot, false, "only the new key (slot 0) opens it" },
	{ "key-renamed", rekey_rename_key, false, "KEY holds the new key; KEY.new is gone" },
};

/* The first step a resumed rekey runs: the new key is saved and in its slot already. */
#define RESUME_FROM 3

int rekey_run_steps(struct rekey_ctx *c, const struct rekey_step *table, size_t n, size_t first)
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
	json_add_str(o, "format", c->im->qcow2 ? "qcow2" : "raw");
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

static void rekey_ctx_done(struct rekey_ctx *c)
{
	if (c->fs)
		cryptfs_abort(c->fs);
	if (!c->done && c->slot_added) {
		rekey_report_unfinished(c);
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

int rekey_run(const struct rekey_options *opt)
{
	struct rekey_ctx c = {
		.opt = opt, .t0 = now_seconds(),
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

		r = rekey_resume_decide(&c, &forward);
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
		r = rekey_preflight(&c);
	if (r == 0)
		r = rekey_prepare_files(&c);
	if (r == 0 && interrupt_pending())
		r = log_error_errno(EINTR, "interrupted: nothing changed");
	if (r < 0)
		goto out;
	if (opt->output) {
		/* A new image; the original is only read. */
		r = rekey_reencrypt(&c);
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
	r = rekey_run_steps(&c, steps, ELEMENTSOF(steps), c.resuming ? RESUME_FROM : 0);
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
