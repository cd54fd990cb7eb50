/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the rekey's files share (rekey.c, files.c, resume.c, reencrypt.c): the context and
 * the step table's entry. Not for use outside src/rekey/. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rekey.h"
#include "image/cryptfs.h"
#include "image/image.h"
#include "image/luks.h"
#include "image/output.h"
#include "image/xts.h"
#include "initramfs/initramfs.h"
#include "shared/secretbuf.h"

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

struct rekey_ctx {
	const struct rekey_options *opt;
	double t0;
	struct image *im;      /* the image, locked; a qcow2 one through its export */
	char *key_out, *key_new;
	char *backup_path;
	char *hdr_path;
	bool backup_done, new_key_saved, slot_added, done;
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

/* rekey.c: the slots, and the step runner (a fault point after each step) */
int rekey_choose_new_volume_key(struct rekey_ctx *c);
int rekey_choose_retired_slots(struct rekey_ctx *c);
int rekey_rename_key(struct rekey_ctx *c);
int rekey_run_steps(struct rekey_ctx *c, const struct rekey_step *table, size_t n, size_t first);

/* files.c: the key's copies in the root filesystem */
int rekey_preflight(struct rekey_ctx *c);
int rekey_prepare_files(struct rekey_ctx *c);
int rekey_replace_pin(struct rekey_ctx *c, struct cryptfs *fs);
int rekey_replace_key_copies(struct rekey_ctx *c, struct cryptfs *fs);
int rekey_step_rootfs_key(struct rekey_ctx *c);
int rekey_step_initramfs(struct rekey_ctx *c);
int rekey_step_files(struct rekey_ctx *c);
int rekey_change_uuid_in_files(struct rekey_ctx *c, struct cryptfs *fs);

/* resume.c */
int rekey_resume_decide(struct rekey_ctx *c, bool *ret_forward);
void rekey_report_unfinished(struct rekey_ctx *c);

/* reencrypt.c: the copy, from the first step to the commit or its discard */
int rekey_reencrypt(struct rekey_ctx *c);
