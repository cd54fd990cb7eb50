/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* build: the prepare stage: the output's paths and space, the size, the sandbox route and the
 * privileges it needs, the distro and its hooks, the work directory; nothing written yet. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "context.h"
#include "appliance.h"
#include "distro.h"
#include "hooks.h"
#include "hookrun.h"
#include "sandbox.h"
#include "tarball.h"
#include "common/gfs.h"
#include "common/kvm.h"
#include "common/leftovers.h"
#include "common/log.h"
#include "common/run.h"
#include "image/esp.h"
#include "image/ext4.h"
#include "image/gpt.h"
#include "image/keys.h"
#include "image/luks.h"
#include "image/output.h"
#include "shared/cleanup.h"
#include "shared/strv.h"
#include "shared/util.h"

static uint64_t free_bytes(const char *dir, dev_t *dev)
{
	struct statvfs sv;
	struct stat st;

	if (statvfs(dir, &sv) < 0 || stat(dir, &st) < 0)
		return UINT64_MAX; /* unknown: let the build find out */
	*dev = st.st_dev;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/*
 * Refuse to start when there is obviously not enough space: the lower bounds are the
 * unpacked tree in the work directory and the filesystem's data in the raw image (the output
 * directory, or the work directory for qcow2). Metadata and the ESP come on top, so this is
 * no guarantee.
 */
static int check_space(struct build_ctx *c, const char *workparent, const char *outdir)
{
	uint64_t data = c->idx.data_bytes, need_work = data, need_out = data;
	dev_t wdev = 0, odev = 1;
	uint64_t wfree = free_bytes(workparent, &wdev), ofree = free_bytes(outdir, &odev);
	char a[32], b[32];

	if (c->format == IMAGE_FORMAT_QCOW2)
		need_work += data;
	if (wdev == odev) {
		need_work += need_out;
		need_out = 0;
	}
	if (wfree < need_work)
		return log_error_errno(ENOSPC, "not enough space in '%s': about %s needed, %s free",
				       workparent, format_size(need_work, a, sizeof(a)),
				       format_size(wfree, b, sizeof(b)));
	if (ofree < need_out)
		return log_error_errno(ENOSPC, "not enough space in '%s': about %s needed, %s free",
				       outdir, format_size(need_out, a, sizeof(a)),
				       format_size(ofree, b, sizeof(b)));
	return 0;
}

static int check_output_paths(struct build_ctx *c, char **ret_outdir)
{
	const struct build_options *o = c->opt;
	_cleanup_free_ char *outdir = path_dirname(o->output), *keydir = NULL;
	struct stat st;

	if (!outdir)
		return log_error_errno(ENOMEM, "out of memory");
	if (stat(outdir, &st) < 0)
		return log_error_errno(errno, "output directory '%s': %m", outdir);
	if (!S_ISDIR(st.st_mode))
		return log_error_errno(ENOTDIR, "output directory '%s': %m", outdir);
	if (streq(c->key_out, o->output))
		return log_error_errno(EINVAL, "the key file and the image cannot be the same file");
	keydir = path_dirname(c->key_out);
	if (!keydir)
		return log_error_errno(ENOMEM, "out of memory");
	if (stat(keydir, &st) < 0)
		return log_error_errno(errno, "key file directory '%s': %m", keydir);
	*ret_outdir = TAKE_PTR(outdir);
	return 0;
}

/* What a killed cvm-image left in the places this build uses. */
static void sweep_leftovers(struct build_ctx *c, const char *workparent, const char *outdir)
{
	_cleanup_free_ char *keydir = path_dirname(c->key_out);

	leftovers_sweep(workparent, leftovers_workdirs);
	leftovers_sweep(outdir, leftovers_outputs);
	if (keydir && !streq(keydir, outdir))
		leftovers_sweep(keydir, leftovers_outputs);
}

/* The outputs, locked and created under temporary names (0600) now, so that an unwritable
 * place or a concurrent build of the same image fails in the first second. */
static int begin_output(struct build_ctx *c)
{
	mode_t mask = umask(0);

	umask(mask);
	return output_begin(&c->out, c->opt->output, c->key_out, c->opt->force, 0644 & ~mask);
}

static int choose_size(struct build_ctx *c)
{
	uint64_t min_fs = ext4_min_size(c->idx.data_bytes, c->idx.entries);
	uint64_t min_disk = gpt_disk_size_for_root(LUKS1_PAYLOAD_OFFSET + min_fs), disk;
	char a[32], b[32];

	if (c->opt->size) {
		disk = round_up(c->opt->size, MiB);
		if (disk < min_disk)
			return log_error_errno(EINVAL,
					       "--size %s is too small for this rootfs: at least %" PRIu64
					       " MiB is needed (%s of files, %" PRIu64 " entries)",
					       format_size(c->opt->size, a, sizeof(a)),
					       min_disk / MiB,
					       format_size(c->idx.data_bytes, b, sizeof(b)),
					       c->idx.entries);
	} else {
		/* Room to grow: half again the minimum, and at least 1 GiB free. */
		uint64_t extra = min_fs / 2 > GiB ? min_fs / 2 : GiB;

		disk = gpt_disk_size_for_root(LUKS1_PAYLOAD_OFFSET + min_fs + extra);
	}
	if (gpt_plan_compute(disk, &c->plan) < 0)
		return log_error_errno(EINVAL, "cannot lay out a disk of %" PRIu64 " bytes", disk);
	c->fs_size = round_down(c->plan.root_size - LUKS1_PAYLOAD_OFFSET, EXT4_BLOCK_SIZE);
	return 0;
}

static int choose_ids(struct build_ctx *c)
{
	int r = 0;

	r = r ?: uuid_random(c->luks_uuid);
	r = r ?: uuid_random(c->fs_uuid);
	r = r ?: uuid_random(c->plan.disk_uuid);
	r = r ?: uuid_random(c->plan.esp_uuid);
	r = r ?: uuid_random(c->plan.root_uuid);
	if (r == 0 && getrandom(&c->esp_volid_num, sizeof(c->esp_volid_num), 0) < 0)
		r = -errno;
	if (r < 0)
		return log_error_errno(r, "cannot get random bytes: %m");
	esp_format_volume_id(c->esp_volid_num, c->esp_volid);
	return 0;
}

static int make_workdir(struct build_ctx *c, const char *parent)
{
	int r = output_workdir(parent, "cvm-image", &c->workdir);

	if (r < 0)
		return r;
	c->rootdir = strdupf("%s/root", c->workdir);
	c->hdr_path = strdupf("%s/luks.hdr", c->workdir);
	c->esp_path = strdupf("%s/esp.fat", c->workdir);
	c->rundir = strdupf("%s/run", c->workdir);
	c->fs_path = strdupf("%s/root.ext4", c->workdir);
	c->efi_dir = strdupf("%s/efi", c->workdir);
	if (!c->rootdir || !c->hdr_path || !c->esp_path || !c->rundir || !c->fs_path || !c->efi_dir)
		return log_error_errno(ENOMEM, "out of memory");
	if (mkdir(c->rootdir, 0755) < 0)
		return log_error_errno(errno, "cannot create '%s': %m", c->rootdir);
	if (mkdir(c->rundir, 0700) < 0)
		return log_error_errno(errno, "cannot create '%s': %m", c->rundir);
	log_info("work directory: %s", c->workdir);
	return 0;
}

/* The identities 0..max of a /proc/self/{uid,gid}_map: all mapped to themselves or to some
 * range (a user namespace with every owner the tarball names)? */
static bool ids_mapped(const char *map, uint64_t max)
{
	_cleanup_(fclosep) FILE *f = fopen(map, "re");
	unsigned long long inside, outside, count;

	if (!f)
		return true; /* no user namespaces in this kernel: the initial one */
	while (fscanf(f, "%llu %llu %llu", &inside, &outside, &count) == 3)
		if (inside == 0 && count > max)
			return true;
	return false;
}

static bool has_capability(uint64_t caps, int cap)
{
	return caps & (UINT64_C(1) << cap);
}

/* The effective capabilities of this process, from /proc/self/status. */
static uint64_t effective_capabilities(void)
{
	_cleanup_(fclosep) FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long caps = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	return caps;
}

/*
 * The bubblewrap route as root unpacks the tarball on the host with its owners, modes, device
 * nodes and file capabilities: that needs root's powers over every identity the tarball names.
 * Root with less (in a user namespace that maps too few ids, a container without CAP_MKNOD)
 * would give an image with wrong owners, silently. Returns -ENOTSUP with the reason in *why
 * (not logged) when that route cannot be taken. (An ordinary user takes another way, owners.h.)
 */
static int check_privileges(struct build_ctx *c, char **why)
{
	static const struct {
		int cap;
		const char *name;
	} needed[] = {
		{ 0 /* CAP_CHOWN */, "CAP_CHOWN" },
		{ 1 /* CAP_DAC_OVERRIDE */, "CAP_DAC_OVERRIDE" },
		{ 3 /* CAP_FOWNER */, "CAP_FOWNER" },
		{ 4 /* CAP_FSETID */, "CAP_FSETID" },
		{ 31 /* CAP_SETFCAP */, "CAP_SETFCAP" },
	};
	uint64_t caps = effective_capabilities();

	*why = NULL;
	if (!ids_mapped("/proc/self/uid_map", c->idx.max_uid) ||
		 !ids_mapped("/proc/self/gid_map", c->idx.max_gid))
		*why = strdupf("cvm-image runs in a user namespace that does not map every owner of "
			       "the tarball (up to user %" PRIu64 ", group %" PRIu64 "): the image's "
			       "files would get wrong owners", c->idx.max_uid, c->idx.max_gid);
	else {
		for (size_t i = 0; i < ELEMENTSOF(needed) && !*why; i++)
			if (!has_capability(caps, needed[i].cap))
				*why = strdupf("cvm-image lacks %s: the image's files would not get "
					       "the tarball's owners, modes and capabilities",
					       needed[i].name);
		if (!*why && c->idx.devices > 0 && !has_capability(caps, 27 /* CAP_MKNOD */))
			*why = strdupf("the tarball has %" PRIu64 " device nodes and cvm-image lacks "
				       "CAP_MKNOD to make them", c->idx.devices);
		if (!*why)
			return 0;
	}
	return *why ? -ENOTSUP : -ENOMEM;
}

/*
 * --sandbox: bubblewrap where cvm-image has root's powers and bwrap can make its namespaces
 * (the fastest route), the libguestfs appliance otherwise (no privilege at all: the tarball
 * is unpacked and the hooks run by the appliance's root, in a VM). "auto" says why it took
 * the appliance. Exit 3 when neither can run here.
 */
static int choose_route(struct build_ctx *c)
{
	enum sandbox_kind want = c->opt->sandbox;
	_cleanup_free_ char *why = NULL;
	int r;

	if (want != SANDBOX_VM) {
		if (geteuid() != 0) {
			/* bwrap makes mke2fs's user namespace even with --distro none. */
			r = sandbox_check(&why);
			c->userns = r == 0;
		} else {
			r = check_privileges(c, &why);
			if (r == 0 && c->distro)
				r = sandbox_check(&why);
		}
		if (r == 0) {
			c->route = SANDBOX_BWRAP;
			c->route_why = strdup(want == SANDBOX_BWRAP ? "--sandbox bwrap" :
					      c->userns ? "an ordinary user, and bubblewrap can make "
							  "a user namespace here" :
							  "root, and bubblewrap works here");
			return c->route_why ? 0 : log_error_errno(ENOMEM, "out of memory");
		}
		if (!why)
			return log_error_errno(r, "out of memory");
		if (want == SANDBOX_BWRAP) {
			log_error("--sandbox bwrap: %s", why);
			return r;
		}
	}
	r = appliance_check();
	if (r < 0) {
		if (why)
			log_error("and bubblewrap cannot be used either: %s", why);
		return r;
	}
	c->route = SANDBOX_VM;
	c->route_why = why ? TAKE_PTR(why) : strdup("--sandbox vm");
	return c->route_why ? 0 : log_error_errno(ENOMEM, "out of memory");
}

/* Which distro, which initramfs tool, which hooks, and is everything they need in the
 * tarball: decided here, in the first second, before anything is written. */
static int prepare_distro(struct build_ctx *c)
{
	const struct build_options *o = c->opt;
	int r;

	if (o->distro && streq(o->distro, DISTRO_NONE)) {
		log_info("distro: none (no boot configuration)");
		return 0;
	}
	r = o->distro ? distro_load(o->distro, &c->distro) : distro_detect(c->idx.os_release, &c->distro);
	if (r < 0)
		return r;
	r = distro_initramfs_tool(c->distro, &c->idx, &c->initramfs_tool);
	if (r < 0)
		return r;
	r = distro_check_requires(c->distro, c->initramfs_tool, &c->idx);
	if (r < 0)
		return r;
	r = hooks_resolve(c->distro, c->initramfs_tool, o->hooks_dirs, &c->hooks);
	if (r < 0)
		return r;
	log_info("distro: %s, initramfs tool: %s, %zu hooks", c->distro->id, c->initramfs_tool,
		 c->hooks.n);
	return 0;
}

int build_stage_prepare(struct build_ctx *c)
{
	static const char *const progs[] = { "mke2fs", "mkfs.fat", "mmd", NULL };
	static const char *const progs_qcow2[] = { "qemu-img", NULL };
	const struct build_options *o = c->opt;
	_cleanup_free_ char *outdir = NULL;
	const char *parent = o->workdir_parent ?: getenv("TMPDIR") ?: "/var/tmp";
	char a[32];
	int r;

	r = require_programs(progs);
	if (r == 0 && c->format == IMAGE_FORMAT_QCOW2)
		r = require_programs(progs_qcow2);
	if (r < 0)
		return r;
	r = check_output_paths(c, &outdir);
	if (r < 0)
		return r;
	sweep_leftovers(c, parent, outdir);
	r = begin_output(c);
	if (r < 0)
		return r;
	if (o->recovery_passphrase_file) {
		r = keys_read_passphrase_file(o->recovery_passphrase_file, &c->recovery);
		if (r < 0)
			return r;
	}
	if (o->root_password_file) {
		r = keys_read_passphrase_file(o->root_password_file, &c->root_password);
		if (r < 0)
			return r;
	}
	if (o->ssh_keys_file && access(o->ssh_keys_file, R_OK) < 0)
		return log_error_errno(errno, "cannot read '%s': %m", o->ssh_keys_file);

	r = tarball_scan(o->rootfs, &c->idx);
	if (r < 0)
		return r;
	if (!c->idx.os_release)
		return log_error_errno(ENOENT,
				       "'%s' has no /etc/os-release or /usr/lib/os-release: "
				       "is it a root filesystem?",
				       o->rootfs);
	log_info("rootfs: %" PRIu64 " entries, %s of files, os-release from %s", c->idx.entries,
		 format_size(c->idx.data_bytes, a, sizeof(a)), c->idx.os_release_path);
	r = prepare_distro(c);
	if (r < 0)
		return r;
	r = choose_route(c);
	if (r < 0)
		return r;
	if (c->route == SANDBOX_VM) {
		const char *why = NULL;

		c->vm_kvm = kvm_works(&why);
		log_notice("sandbox: vm, the libguestfs appliance, %s (%s)",
			   gfs_settings_given() ? "as $LIBGUESTFS_BACKEND_SETTINGS says" :
			   c->vm_kvm ? "under KVM" : "under TCG: KVM does not work here", c->route_why);
		if (!c->vm_kvm && !gfs_settings_given())
			log_info("KVM: %s", why);
	} else if (c->userns)
		log_notice("sandbox: bwrap, bubblewrap on the host in a user namespace where you are "
			   "root; the tarball's owners, device nodes and security attributes written "
			   "into the ext4 by cvm-image (%s)", c->route_why);
	else
		log_notice("sandbox: bwrap, bubblewrap on the host (%s)", c->route_why);

	r = choose_size(c);
	if (r < 0)
		return r;
	r = choose_ids(c);
	if (r < 0)
		return r;
	r = check_space(c, parent, outdir);
	if (r < 0)
		return r;

	r = make_workdir(c, parent);
	if (r < 0)
		return r;
	if (c->format == IMAGE_FORMAT_QCOW2)
		c->raw_path = strdupf("%s/disk.raw", c->workdir);
	else
		c->raw_path = strdup(c->out.image.path);
	if (!c->raw_path)
		return log_error_errno(ENOMEM, "out of memory");
	r = secret_alloc(&c->volume_key, LUKS_VOLUME_KEY_BYTES);
	if (r == 0 && getrandom(c->volume_key.data, c->volume_key.size, 0) != (ssize_t)c->volume_key.size)
		r = -errno;
	if (r < 0)
		return log_error_errno(r, "cannot make the volume key: %m");
	return keys_generate(&c->key);
}
