/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inspect's context, shared by its checks (inspect.c: the disk, ESP and header, and the
 * confined stage; tree.c: the root filesystem's checks; report.c: the output). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checks.h"
#include "deep.h"
#include "inspect.h"
#include "image/cryptfs.h"
#include "image/gpt.h"
#include "image/image.h"
#include "image/luks.h"
#include "image/xts.h"
#include "initramfs/initramfs.h"
#include "shared/secretbuf.h"

#define MAX_KEY_MEMBERS 16

struct kernel {
	char version[96];
	char initrd[160];    /* "" when none */
	uint32_t initrd_mode;
	uint64_t initrd_size;
	struct initramfs_member members[MAX_KEY_MEMBERS];
	size_t n_members;
};

struct inspect_ctx {
	const struct inspect_options *opt;
	struct image *im;
	struct checks checks;
	struct gpt_table gpt;
	int esp_index, luks_index; /* into gpt.parts, -1: none */
	char **esp_files;
	char grub_uuid[40];        /* the UUID BOOTX64.EFI's early config unlocks */
	bool grub_early_locked;    /* and it sets superusers */
	struct luks_desc luks;
	bool have_luks;
	struct crypt_device *cd;
	char *hdr_path;
	struct secret key;         /* the slot-0 key (given, or the tree's key file) */
	struct secret vk;
	int opened_slot;           /* -1: not tried or none */
	struct xts *xts;
	struct cryptfs *fs;
	struct cryptfs_info fsinfo;
	bool unlocked;             /* c->xts set up with the volume key */
	size_t tree_key_check;     /* the key-file check to finish, when c->key is the tree's */
	uint32_t tree_key_mode;
	bool have_fs;
	char tool[24];             /* "initramfs-tools", "dracut", "" */
	struct kernel *kernels;
	size_t n_kernels;
	struct inspect_file *files;
	size_t n_files, cap_files;
};

/* tree.c: in the confined child, on the root filesystem of an unlocked image. */
int inspect_open_rootfs(struct inspect_ctx *c);
int inspect_check_key_file(struct inspect_ctx *c);
int inspect_check_tree_key(struct inspect_ctx *c);
int inspect_check_pin(struct inspect_ctx *c);
int inspect_check_config(struct inspect_ctx *c);
int inspect_check_kernels(struct inspect_ctx *c);
int inspect_check_esp_key(struct inspect_ctx *c);

/* report.c */
void inspect_print_text(const struct inspect_ctx *c);
int inspect_print_json(const struct inspect_ctx *c, bool passed);
