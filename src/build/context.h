/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The build's context, shared by its stages (build.c: the pipeline and the stages that make the
 * tree boot; prepare.c: the checks and choices before anything is written; disk.c: the stages
 * that make the disk from the tree). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "appliance.h"
#include "build.h"
#include "hooks.h"
#include "hookrun.h"
#include "distro.h"
#include "sandbox.h"
#include "image/ext4-owners.h"
#include "tarball.h"
#include "target.h"
#include "image/gpt.h"
#include "image/luks.h"
#include "image/output.h"
#include "shared/secretbuf.h"
#include "shared/util.h"

/* LUKS1 with a 512-bit key and cryptsetup's default 1 MiB alignment: the payload starts
 * 2 MiB into the partition. Known up front so the filesystem size is; checked after format. */
#define LUKS1_PAYLOAD_OFFSET (2 * MiB)
#define ROOT_FS_LABEL "root"
#define ENCRYPT_CHUNK (1 * MiB)

struct build_ctx {
	const struct build_options *opt;
	double t0;

	char *workdir;   /* everything temporary but the output lives here */
	char *rootdir;   /* workdir/root: the unpacked tarball (bubblewrap route) */
	char *fs_path;   /* workdir/root.ext4: the appliance's filesystem (vm route) */
	char *efi_dir;   /* workdir/efi: its /boot/efi, copied out for the ESP (vm route) */
	char *hdr_path;  /* workdir/luks.hdr */
	char *esp_path;  /* workdir/esp.fat */
	char *rundir;    /* workdir/run: the hooks' files, SANDBOX_RUNDIR in the sandbox */
	char *raw_path;  /* the raw disk being assembled: out.path, or workdir/disk.raw */
	char *key_out;
	enum image_format format;

	struct rootfs_index idx;
	struct gpt_plan plan;
	uint64_t fs_size;
	char luks_uuid[37], fs_uuid[37], esp_volid[10];
	uint32_t esp_volid_num;

	struct secret key, recovery, root_password;
	struct secret volume_key; /* chosen in prepare: the initramfs pins it at configure */
	struct luks_header luks;
	struct output out;

	/* boot configuration; distro is NULL with --distro none */
	struct distro *distro;
	char *initramfs_tool;
	struct hook_set hooks;
	struct hook_runner hooks_runner;
	enum sandbox_kind route; /* SANDBOX_BWRAP or SANDBOX_VM, chosen in prepare */
	char *route_why;
	bool vm_kvm;              /* the appliance under KVM (kvm_works()) */
	/* The bubblewrap route as an ordinary user (owners.h): what the tree cannot hold. */
	bool userns;
	struct ext4_owners owners;
	struct appliance vm;
	struct target tree; /* the target root, on the host or in the appliance */
	int rootfd;
	char **kernels;
	char *key_path_in_target;
	char *cmdline, *extra_cmdline;

	uint64_t fs_allocated, image_allocated;
	double encrypt_seconds;
	double stage_seconds[16];
};

/* prepare.c */
int build_stage_prepare(struct build_ctx *c);

/* disk.c */
int build_stage_esp(struct build_ctx *c);
int build_stage_mkfs(struct build_ctx *c);
int build_stage_luks(struct build_ctx *c);
int build_stage_encrypt(struct build_ctx *c);
int build_stage_assemble(struct build_ctx *c);
int build_stage_output(struct build_ctx *c);
