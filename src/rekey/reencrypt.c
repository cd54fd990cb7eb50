/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rekey --reencrypt: a copy of the image under a new volume key, as its own table of steps. */
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
#include "common/log.h"
#include "image/esp.h"
#include "image/gpt.h"
#include "image/recrypt.h"
#include "shared/cleanup.h"
#include "shared/util.h"

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

	if (fstat(c->im->fd, &st) < 0)
		return log_error_errno(errno, "cannot stat '%s': %m", c->im->raw_path);
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
	uint64_t end = c->im->luks_off + c->im->luks_size;
	int r = copy_range_sparse(c->im->fd, 0, re->out, 0, c->im->luks_off);

	if (r == 0)
		r = copy_range_sparse(c->im->fd, (off_t)end, re->out, (off_t)end, re->size - end);
	if (r < 0)
		return log_error_errno(r, "cannot copy '%s': %m", c->im->raw_path);
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
	if (re->lh.payload_offset != c->im->hdr_size)
		return log_error_errno(EMEDIUMTYPE, "the image's LUKS payload starts at %" PRIu64
				       ", a new header's at %" PRIu64 ": cannot re-encrypt it in place",
				       c->im->hdr_size, re->lh.payload_offset);
	r = copy_range_sparse(hfd, 0, re->out, (off_t)c->im->luks_off, re->lh.payload_offset);
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

	r = recrypt_new(c->im->fd, re->out, image_payload_off(c->im), c->xts, re->nx, &job);
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

	r = cryptfs_open(re->out, image_payload_off(c->im), re->nx, true, &re->nfs);
	if (r < 0)
		return r;
	r = rekey_replace_key_copies(c, re->nfs);
	if (r == 0 && c->new_uuid[0])
		r = rekey_change_uuid_in_files(c, re->nfs);
	if (r == 0)
		r = rekey_replace_pin(c, re->nfs);
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

int rekey_reencrypt(struct rekey_ctx *c)
{
	int r = rekey_run_steps(c, reencrypt_steps, ELEMENTSOF(reencrypt_steps), 0);

	reencrypt_done(c, r < 0);
	return r;
}
