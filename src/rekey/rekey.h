/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rekey: a new slot-0 key for an image, the key file replaced inside the root filesystem
 * and every initramfs, offline, in an order that keeps the image bootable at every instant. */
#pragma once

#include <stdbool.h>

struct rekey_options {
	const char *image;
	const char *key_file;          /* the old key, byte for byte */
	const char *recovery_file;     /* or the recovery passphrase */
	const char *new_key_out;       /* NULL: IMAGE.key (NEW.key with --reencrypt) */
	bool json;
	unsigned kill_slots;           /* --kill-slot N: bit N, removed with the old key's slot */
	bool resume;                   /* finish or undo an interrupted rekey (KEY.new left) */

	/* --reencrypt -o NEW: a copy with a new volume key instead of an in-place rekey */
	const char *output;
	bool force;
	bool new_uuid;                 /* the copy gets a new LUKS UUID */
	uint32_t recovery_iter_ms;     /* for the copy's recovery slot (opened by recovery) */
};

/* The slot cvm-image build gives the recovery passphrase: never taken for a leftover. */
#define REKEY_RECOVERY_SLOT 1

int rekey_run(const struct rekey_options *opt);
