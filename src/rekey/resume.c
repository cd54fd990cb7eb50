/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rekey --resume, and what an unfinished rekey says: which key opens the image now, tried
 * on its header, and from there finish the rekey or undo it. */
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
#include "image/keys.h"
#include "shared/cleanup.h"
#include "shared/util.h"

/*
 * --resume: what an interrupted rekey left (KEY.new, maybe the header backup), tried against
 * the header the image holds: undone when KEY.new opens nothing (the slot was never added),
 * finished by renaming when only KEY.new opens it (the old slot was already removed), and
 * rolled forward from the key copies on when both open it (*ret_forward: the caller goes on
 * with the steps after slot-added). Returns 1 when nothing more is to be done.
 */
int rekey_resume_decide(struct rekey_ctx *c, bool *ret_forward)
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
		r = rekey_rename_key(c);
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
void rekey_report_unfinished(struct rekey_ctx *c)
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
