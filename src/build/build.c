/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The build pipeline: a table of stages over one context that owns every resource. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "appliance.h"
#include "build.h"
#include "distro.h"
#include "hooks.h"
#include "hookrun.h"
#include "sandbox.h"
#include "tarball.h"
#include "target.h"
#include "common/gfs.h"
#include "common/json.h"
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
#include "image/xts.h"
#include "initramfs/initramfs.h"
#include "shared/cleanup.h"
#include "shared/fault.h"
#include "shared/interrupt.h"
#include "shared/spawn.h"
#include "shared/strv.h"
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

struct stage {
	const char *name;
	const char *summary;
	int (*run)(struct build_ctx *c);
};

enum image_format image_format_from_string(const char *s)
{
	if (streq(s, "raw"))
		return IMAGE_FORMAT_RAW;
	if (streq(s, "qcow2"))
		return IMAGE_FORMAT_QCOW2;
	return IMAGE_FORMAT_AUTO;
}

enum image_format image_format_for_path(const char *path)
{
	return str_ends_with(path, ".qcow2") ? IMAGE_FORMAT_QCOW2 : IMAGE_FORMAT_RAW;
}

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

#define NOT_ROOT_WHY "not root: the bubblewrap route must run as root, to give the image's " \
	"files their owners from the tarball"

/*
 * The bubblewrap route unpacks the tarball on the host: its owners, modes, device nodes and
 * file capabilities can only be given to the files with root's powers over every identity
 * the tarball names. Anything less (a user namespace of one user, a container without
 * CAP_MKNOD) would give an image with wrong owners, silently. Returns -ENOTSUP with the
 * reason in *why (not logged) when that route cannot be taken.
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
	if (geteuid() != 0)
		*why = strdup(NOT_ROOT_WHY);
	else if (!ids_mapped("/proc/self/uid_map", c->idx.max_uid) ||
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
		r = check_privileges(c, &why);
		if (r == 0 && c->distro)
			r = sandbox_check(&why);
		if (r == 0) {
			c->route = SANDBOX_BWRAP;
			c->route_why = strdup(want == SANDBOX_BWRAP ? "--sandbox bwrap" :
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

static int stage_prepare(struct build_ctx *c)
{
	static const char *const progs[] = { "mke2fs", "mkfs.fat", "mmd", NULL };
	static const char *const progs_qcow2[] = { "qemu-img", NULL };
	const struct build_options *o = c->opt;
	_cleanup_free_ char *outdir = NULL;
	const char *parent = o->workdir_parent ?: getenv("TMPDIR") ?: "/var/tmp";
	char a[32];
	int r;

	/* What needs no look at the tarball is said before anything is written. */
	if (o->sandbox == SANDBOX_BWRAP && geteuid() != 0)
		return log_error_errno(ENOTSUP, "--sandbox bwrap: " NOT_ROOT_WHY);
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
	} else
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

/* The pin of the volume key beside the key file (0600): the initramfs checks the opened root
 * against it (templates/cvm-pin-check, DESIGN.md §7). */
static int write_pin(struct build_ctx *c)
{
	_cleanup_free_ char *path = strdupf("/etc/cryptsetup-keys.d/luks-%s.pin", c->luks_uuid);
	char pin[LUKS_PIN_LEN + 1];
	int r;

	if (!path)
		return log_error_errno(ENOMEM, "out of memory");
	r = luks_pin(c->luks_uuid, &c->volume_key, pin);
	if (r < 0)
		return log_error_errno(r, "cannot make the volume key's pin: %m");
	return target_put(&c->tree, path, pin, strlen(pin), 0600);
}

/* The appliance's disk: an empty ext4 of the final size, made on the host (mke2fs needs no
 * privilege on a file), filled in the appliance. */
static int unpack_in_appliance(struct build_ctx *c)
{
	_cleanup_close_ int fd = open(c->fs_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int r;

	if (fd < 0 || ftruncate(fd, (off_t)c->fs_size) < 0)
		return log_error_errno(errno, "cannot create '%s': %m", c->fs_path);
	r = ext4_mkfs(c->fs_path, 0, c->fs_size, c->fs_uuid, ROOT_FS_LABEL, NULL);
	if (r < 0)
		return r;
	r = appliance_start(&c->vm, c->fs_path, c->workdir);
	if (r < 0)
		return r;
	c->tree = (struct target){ .rootfd = -1, .vm = &c->vm };
	return appliance_unpack(&c->vm, c->opt->rootfs);
}

static int stage_unpack(struct build_ctx *c)
{
	int r;

	if (c->route == SANDBOX_VM)
		return unpack_in_appliance(c);
	r = tarball_extract(c->opt->rootfs, c->rootdir, c->idx.entries);
	if (r < 0)
		return r;
	c->rootfd = open(c->rootdir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (c->rootfd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", c->rootdir);
	c->tree = (struct target){ .rootfd = c->rootfd };
	return 0;
}

static int build_cmdline(struct build_ctx *c)
{
	const char *serial = c->opt->serial_console ? "console=tty0 console=ttyS0,115200" : "";
	const char *user = c->opt->kernel_cmdline ?: "";

	c->extra_cmdline = strdupf("%s%s%s", serial, *serial && *user ? " " : "", user);
	if (!c->extra_cmdline)
		return log_error_errno(ENOMEM, "out of memory");
	c->cmdline = strdupf("root=UUID=%s ro%s%s", c->fs_uuid, *c->extra_cmdline ? " " : "",
			     c->extra_cmdline);
	return c->cmdline ? 0 : log_error_errno(ENOMEM, "out of memory");
}

static int stage_configure(struct build_ctx *c)
{
	const struct build_options *o = c->opt;
	int r;

	if (o->hostname) {
		r = target_set_hostname(&c->tree, o->hostname);
		if (r < 0)
			return r;
	}
	if (c->root_password.data) {
		r = target_set_root_password(&c->tree, &c->root_password);
		if (r < 0)
			return r;
	}
	if (o->ssh_keys_file) {
		r = target_set_ssh_keys(&c->tree, o->ssh_keys_file);
		if (r < 0)
			return r;
	}
	if (!c->distro)
		return 0;

	r = target_kernel_versions(&c->tree, &c->kernels);
	if (r < 0)
		return r;
	/* The key file exists before any hook runs, so the initramfs is made once, with it. */
	r = target_write_key_file(&c->tree, c->luks_uuid, &c->key, &c->key_path_in_target);
	if (r == 0)
		r = write_pin(c);
	if (r < 0)
		return r;
	r = target_write_fstab(&c->tree, c->fs_uuid, c->esp_volid);
	if (r < 0)
		return r;
	r = build_cmdline(c);
	if (r < 0)
		return r;
	r = hook_runner_init(&c->hooks_runner, &c->hooks, c->rootdir, c->rundir,
			     c->route == SANDBOX_VM ? &c->vm : NULL, &(struct hook_values) {
		.distro = c->distro->id,
		.initramfs_tool = c->initramfs_tool,
		.luks_uuid = c->luks_uuid,
		.mapper_name = o->mapper_name,
		.key_file = c->key_path_in_target,
		.esp_uuid = c->esp_volid,
		.root_fs_uuid = c->fs_uuid,
		.kernels = c->kernels,
		.cmdline = c->cmdline,
		.extra_cmdline = c->extra_cmdline,
		.serial_console = o->serial_console,
		.grub_dir = c->distro->grub_dir,
		.grub_tool_prefix = c->distro->grub_tool_prefix,
		.grub_password = o->grub_password,
		.hook_timeout = o->hook_timeout,
	});
	if (r < 0)
		return r;
	return hook_runner_phase(&c->hooks_runner, "configure");
}

static int stage_initramfs(struct build_ctx *c)
{
	return c->distro ? hook_runner_phase(&c->hooks_runner, "initramfs") : 0;
}

static int stage_bootloader(struct build_ctx *c)
{
	return c->distro ? hook_runner_phase(&c->hooks_runner, "bootloader") : 0;
}

static int stage_finalize(struct build_ctx *c)
{
	return c->distro ? hook_runner_phase(&c->hooks_runner, "finalize") : 0;
}

/*
 * The key out of the distro's archives into one of its own at the end of each initramfs
 * (initramfs_move_key()), so that a rekey rewrites a few bytes at the end of the file
 * instead of decompressing and compressing again the main archive (seconds and a few hundred
 * MiB for a large one). An initramfs without the key, or with it in a compression cvm-image
 * cannot write (xz, lz4, bzip2), stays as the tool made it: inspect and rekey say what they
 * find there.
 */
static int stage_key_archive(struct build_ctx *c)
{
	char **versions = NULL;
	int r;

	/* CVM_IMAGE_FAULT=no-key-archive: as an image whose initramfs the guest's own tools made
	 * again, for the tests and the benchmark of rekey on such an initramfs. */
	if (!c->distro || fault_requested("no-key-archive"))
		return 0;
	r = target_kernel_versions(&c->tree, &versions);
	for (size_t i = 0; r == 0 && versions && versions[i]; i++) {
		for (unsigned k = 0; r == 0 && k < INITRAMFS_NAMES; k++) {
			_cleanup_free_ char *path = initramfs_path(versions[i], k);
			_cleanup_free_ char *data = NULL;
			_cleanup_free_ void *moved = NULL;
			size_t len, moved_len;
			unsigned n;
			mode_t mode;

			if (!path) {
				r = log_error_errno(ENOMEM, "out of memory");
				break;
			}
			r = target_get(&c->tree, path, 1024 * MiB, &data, &len, &mode);
			if (r == -ENOENT) {
				r = 0;
				continue;
			}
			if (r < 0)
				break;
			r = initramfs_move_key(path, data, len, c->key.data, c->key.size, &moved,
					       &moved_len, &n);
			explicit_bzero(data, len);
			if (r == -EMEDIUMTYPE) {
				log_warning("%s: the key stays in the distro's archive; a rekey will "
					    "refuse this compression", path);
				r = 0;
				continue;
			}
			if (r < 0)
				break;
			if (n == 0) {
				log_debug("%s holds no copy of the key: left as it is", path);
				continue;
			}
			r = target_put(&c->tree, path, moved, moved_len, mode & 07777);
			explicit_bzero(moved, moved_len);
			if (r == 0)
				log_debug("%s: %u key cop%s moved into its own archive at the end", path,
					  n, n == 1 ? "y" : "ies");
		}
	}
	strv_free(versions);
	return r;
}

static uint64_t fs_offset(const struct build_ctx *c)
{
	return c->plan.root_start + LUKS1_PAYLOAD_OFFSET;
}

/* The filesystem goes straight into the disk image at the payload offset and is encrypted
 * there in place: no second plaintext copy to write and read back. */
struct copy_job {
	int in, out;
	off_t base;
	const char *in_path, *out_path;
};

static int copy_allocated(uint64_t off, uint64_t len, void *userdata)
{
	struct copy_job *j = userdata;
	int r;

	if (interrupt_pending())
		return log_error_errno(EINTR, "interrupted");
	r = copy_range_sparse(j->in, (off_t)off, j->out, j->base + (off_t)off, len);
	if (r < 0)
		return log_error_errno(r, "cannot copy '%s' into '%s': %m", j->in_path, j->out_path);
	return 0;
}

/*
 * The filesystem the appliance wrote is untrusted: the tarball's programs ran as root there,
 * with the disk under it as /dev/sda, and libext2fs has crashed on crafted metadata (a heap
 * overflow in ext2fs_read_bitmaps(), DESIGN.md §0). e2fsck -fn, a process of its own that
 * checks the superblock and group descriptors before it trusts them, must find it clean
 * before cvm-image's own libext2fs walks it.
 */
static int check_appliance_fs(struct build_ctx *c)
{
	char *argv[] = { "e2fsck", "-fn", c->fs_path, NULL };
	int r;

	/* CVM_IMAGE_FAULT=corrupt-appliance-fs: s_first_data_block 100, as a hostile program
	 * could write it through /dev/sda. */
	if (fault_requested("corrupt-appliance-fs")) {
		_cleanup_close_ int fd = open(c->fs_path, O_WRONLY | O_CLOEXEC);
		uint32_t v = 100;

		if (fd < 0 || pwrite_all(fd, &v, sizeof(v), 1024 + 20) < 0)
			return log_error_errno(EIO, "fault injection failed");
	}
	r = run_program(argv, NULL);
	if (r == -EIO)
		return log_error_errno(EUCLEAN, "the root filesystem the appliance wrote does not pass "
				       "e2fsck -fn (its output above): refusing to read it (the "
				       "tarball's programs could write to the disk under it)");
	return r;
}

/*
 * The appliance's filesystem, finished (the appliance shut down), into the disk image:
 * only the blocks its bitmap marks allocated. What the hooks wrote and deleted (an initramfs
 * tool's temporary copies of the key, say) lies in free blocks, which the encrypt stage does
 * not touch: they are never copied, and stay holes of zeros in the image.
 */
static int copy_appliance_fs(struct build_ctx *c, int out)
{
	struct copy_job j = { .out = out, .base = (off_t)fs_offset(c), .in_path = c->fs_path,
			      .out_path = c->raw_path };
	uint64_t allocated;
	int r;

	r = appliance_finish(&c->vm);
	appliance_done(&c->vm);
	if (r == 0)
		r = check_appliance_fs(c);
	if (r < 0)
		return r;
	j.in = open(c->fs_path, O_RDONLY | O_CLOEXEC);
	if (j.in < 0)
		return log_error_errno(errno, "cannot open '%s': %m", c->fs_path);
	r = ext4_for_each_allocated(c->fs_path, 0, copy_allocated, &j, &allocated);
	close(j.in);
	if (r == 0 && unlink(c->fs_path) < 0)
		r = log_error_errno(errno, "cannot remove '%s': %m", c->fs_path);
	return r;
}

static int stage_mkfs(struct build_ctx *c)
{
	_cleanup_close_ int fd = open(c->raw_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return log_error_errno(errno, "cannot create '%s': %m", c->raw_path);
	if (ftruncate(fd, (off_t)c->plan.disk_size) < 0)
		return log_error_errno(errno, "cannot size '%s': %m", c->raw_path);
	if (c->route == SANDBOX_VM)
		return copy_appliance_fs(c, fd);
	return ext4_mkfs(c->raw_path, fs_offset(c), c->fs_size, c->fs_uuid, ROOT_FS_LABEL,
			 c->rootdir);
}

static int stage_luks(struct build_ctx *c)
{
	_cleanup_close_ int fd = -1;
	int r;

	/* libcryptsetup wants an existing device of at least one sector; it grows the file. */
	fd = open(c->hdr_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 4096) < 0)
		return log_error_errno(errno, "cannot create '%s': %m", c->hdr_path);
	r = luks_format(c->hdr_path, c->luks_uuid, &c->volume_key, &c->key,
			c->recovery.data ? &c->recovery : NULL, c->opt->recovery_iter_ms, &c->luks);
	if (r < 0)
		return r;
	if (c->luks.payload_offset != LUKS1_PAYLOAD_OFFSET)
		return log_error_errno(EIO, "LUKS payload offset is %" PRIu64 ", expected %" PRIu64,
				       c->luks.payload_offset, (uint64_t)LUKS1_PAYLOAD_OFFSET);
	return 0;
}

struct encrypt_job {
	int fd;
	off_t base;
	struct xts *xts;
	unsigned char *buf;
	const char *raw_path;
};

static int encrypt_range(uint64_t off, uint64_t len, void *userdata)
{
	struct encrypt_job *j = userdata;
	int r;

	while (len > 0) {
		size_t n = len < ENCRYPT_CHUNK ? (size_t)len : ENCRYPT_CHUNK;

		if (interrupt_pending())
			return log_error_errno(EINTR, "interrupted");
		r = pread_all(j->fd, j->buf, n, j->base + (off_t)off);
		if (r < 0)
			return log_error_errno(r, "cannot read '%s': %m", j->raw_path);
		r = xts_encrypt(j->xts, j->buf, n, off / XTS_SECTOR_SIZE);
		if (r < 0)
			return log_error_errno(r, "encryption failed: %m");
		r = pwrite_all(j->fd, j->buf, n, j->base + (off_t)off);
		if (r < 0)
			return log_error_errno(r, "cannot write '%s': %m", j->raw_path);
		off += n;
		len -= n;
	}
	return 0;
}

static int stage_encrypt(struct build_ctx *c)
{
	_cleanup_(xts_freep) struct xts *xts = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ unsigned char *buf = malloc(ENCRYPT_CHUNK);
	struct encrypt_job j;
	double t = now_seconds();
	char a[32];
	int r;

	if (!buf)
		return log_error_errno(ENOMEM, "out of memory");
	r = xts_new(c->luks.volume_key.data, c->luks.volume_key.size, &xts);
	if (r < 0)
		return log_error_errno(r, "cannot set up AES-XTS: %m");
	fd = open(c->raw_path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", c->raw_path);

	/* In place. Every block the bitmap marks allocated is encrypted, the holes mke2fs may
	 * have left in it included (as encrypted zeros): DESIGN.md §2.4. */
	j = (struct encrypt_job){
		.fd = fd,
		.base = (off_t)fs_offset(c),
		.xts = xts,
		.buf = buf,
		.raw_path = c->raw_path,
	};
	r = ext4_for_each_allocated(c->raw_path, fs_offset(c), encrypt_range, &j, &c->fs_allocated);
	if (r < 0)
		return r;
	/* No sync here: the output is fsync'd once, when it is committed. */
	c->encrypt_seconds = now_seconds() - t;
	log_info("encrypt: %s allocated in %.2fs", format_size(c->fs_allocated, a, sizeof(a)),
		 c->encrypt_seconds);
	return 0;
}

static int stage_esp(struct build_ctx *c)
{
	_cleanup_close_ int efi = -1;
	int r, n;

	r = esp_make(c->esp_path, c->plan.esp_size, c->esp_volid_num);
	if (r < 0 || !c->distro)
		return r;
	/* What the hooks staged in the target's /boot/efi goes on the ESP: a real directory of
	 * the tree, reached through no symlink (boot/efi -> /etc would put /etc on the ESP). */
	if (c->route == SANDBOX_VM) {
		if (mkdir(c->efi_dir, 0700) < 0)
			return log_error_errno(errno, "cannot create '%s': %m", c->efi_dir);
		efi = appliance_copy_out(&c->vm, "/boot/efi", c->efi_dir);
		if (efi == 0) {
			efi = open(c->efi_dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
			if (efi < 0)
				efi = -errno;
		}
	} else
		efi = target_open_nofollow(c->rootfd, "/boot/efi", O_DIRECTORY | O_RDONLY, 0);
	if (efi == -ENOENT)
		return 0;
	if (efi == -ELOOP || efi == -ENOTDIR)
		return log_error_errno(EPERM, "/boot/efi in the rootfs is %s: the ESP is made only "
				       "from a real directory of the tree", efi == -ELOOP ?
				       "a symlink or lies below one" : "not a directory");
	if (efi < 0)
		return log_error_errno(efi, "cannot open /boot/efi in the rootfs: %m");
	n = esp_populate(c->esp_path, efi, "/boot/efi", &c->key);
	if (n < 0)
		return n;
	log_info("esp: %d files from /boot/efi", n);
	return 0;
}

static int splice_file(const char *src_path, uint64_t len, int out, uint64_t off, const char *out_path)
{
	_cleanup_close_ int in = open(src_path, O_RDONLY | O_CLOEXEC);
	int r;

	if (in < 0)
		return log_error_errno(errno, "cannot open '%s': %m", src_path);
	r = copy_range_sparse(in, 0, out, (off_t)off, len);
	if (r < 0)
		return log_error_errno(r, "cannot copy '%s' into '%s': %m", src_path, out_path);
	return 0;
}

static int stage_assemble(struct build_ctx *c)
{
	_cleanup_close_ int out = -1;
	int r;

	r = gpt_write(c->raw_path, &c->plan);
	if (r < 0)
		return r;
	out = open(c->raw_path, O_RDWR | O_CLOEXEC);
	if (out < 0)
		return log_error_errno(errno, "cannot open '%s': %m", c->raw_path);
	r = splice_file(c->hdr_path, c->luks.payload_offset, out, c->plan.root_start, c->raw_path);
	if (r < 0)
		return r;
	r = splice_file(c->esp_path, c->plan.esp_size, out, c->plan.esp_start, c->raw_path);
	if (r < 0)
		return r;
	return gpt_verify(c->raw_path, &c->plan, c->luks_uuid, c->esp_volid, NULL);
}

static int stage_output(struct build_ctx *c)
{
	struct stat st;
	int r;

	if (c->format == IMAGE_FORMAT_QCOW2) {
		r = output_convert_qcow2(&c->out, c->raw_path);
		if (r < 0)
			return r;
	}
	if (fstat(c->out.image.fd, &st) < 0)
		return log_error_errno(errno, "cannot stat '%s': %m", c->out.image.path);
	c->image_allocated = (uint64_t)st.st_blocks * 512;

	return output_commit(&c->out, &c->key);
}

static const struct stage stages[] = {
	{ "prepare", "checking the tarball, distro, sizes and tools", stage_prepare },
	{ "unpack", "extracting the tarball", stage_unpack },
	{ "configure", "key file, fstab and the distro's configure hooks", stage_configure },
	{ "initramfs", "the distro's initramfs hooks", stage_initramfs },
	{ "bootloader", "the distro's bootloader hooks", stage_bootloader },
	{ "finalize", "the distro's finalize hooks", stage_finalize },
	{ "key-archive", "the key into its own archive at the end of each initramfs",
	  stage_key_archive },
	{ "esp", "making the EFI System Partition", stage_esp },
	{ "mkfs", "making the ext4 root filesystem", stage_mkfs },
	{ "luks", "writing the LUKS1 header", stage_luks },
	{ "encrypt", "encrypting the allocated blocks", stage_encrypt },
	{ "assemble", "writing the GPT and placing the partitions", stage_assemble },
	{ "output", "writing the image and the key file", stage_output },
};

const char *build_stage_name(size_t i)
{
	return i < ELEMENTSOF(stages) ? stages[i].name : NULL;
}

static void build_ctx_done(struct build_ctx *c)
{
	/* Reverse order of acquisition; safe on a half-initialised context. The sandboxes'
	 * mounts live in their own mount namespaces and are gone with them: nothing is mounted
	 * below the work directory on the host, and rm_rf() stays on its filesystem anyway. */
	hook_runner_done(&c->hooks_runner);
	appliance_done(&c->vm);
	if (c->rootfd >= 0)
		close(c->rootfd);
	if (c->workdir) {
		if (c->opt->keep_workdir)
			log_notice("work directory kept: %s", c->workdir);
		else if (rm_rf(c->workdir) < 0)
			log_warning("cannot remove work directory '%s'", c->workdir);
	}
	output_discard(&c->out);
	luks_header_done(&c->luks);
	free(c->cmdline);
	free(c->extra_cmdline);
	free(c->key_path_in_target);
	strv_free(c->kernels);
	hook_set_done(&c->hooks);
	free(c->initramfs_tool);
	distro_free(c->distro);
	secret_free(&c->root_password);
	secret_free(&c->recovery);
	secret_free(&c->key);
	secret_free(&c->volume_key);
	rootfs_index_done(&c->idx);
	free(c->raw_path);
	free(c->rundir);
	free(c->route_why);
	free(c->fs_path);
	free(c->efi_dir);
	free(c->esp_path);
	free(c->hdr_path);
	free(c->rootdir);
	free(c->workdir);
	free(c->key_out);
}

static struct json_object *json_part(unsigned number, const char *name, const char *uuid,
				     uint64_t start, uint64_t size)
{
	struct json_object *p = json_object_new_object();

	json_add_u64(p, "number", number);
	json_add_str(p, "name", name);
	json_add_str(p, "uuid", uuid);
	json_add_u64(p, "start", start);
	json_add_u64(p, "size", size);
	return p;
}

static void print_json(const struct build_ctx *c)
{
	struct json_object *o = json_object_new_object(), *pt = json_object_new_object();
	struct json_object *parts = json_object_new_array(), *luks = json_object_new_object();
	struct json_object *slots = json_object_new_array(), *fs = json_object_new_object();
	struct json_object *esp = json_object_new_object(), *stage_times = json_object_new_object();
	struct json_object *rss = json_object_new_object();
	struct rusage self, children;

	json_add_str(o, "image", c->opt->output);
	json_add_str(o, "format", c->format == IMAGE_FORMAT_QCOW2 ? "qcow2" : "raw");
	json_add_u64(o, "size", c->plan.disk_size);
	json_add_u64(o, "allocated", c->image_allocated);
	json_add_str(pt, "type", "gpt");
	json_add_str(pt, "uuid", c->plan.disk_uuid);
	json_object_array_add(parts, json_part(1, "esp", c->plan.esp_uuid, c->plan.esp_start,
					       c->plan.esp_size));
	json_object_array_add(parts, json_part(2, "root", c->plan.root_uuid, c->plan.root_start,
					       c->plan.root_size));
	json_add(pt, "partitions", parts);
	json_add(o, "partition_table", pt);
	json_add_u64(luks, "version", 1);
	json_add_str(luks, "uuid", c->luks_uuid);
	json_add_str(luks, "cipher", LUKS_CIPHER "-" LUKS_CIPHER_MODE);
	json_add_u64(luks, "key_bits", LUKS_VOLUME_KEY_BYTES * 8);
	json_add_str(luks, "hash", LUKS_HASH);
	json_add_u64(luks, "payload_offset", c->luks.payload_offset);
	for (unsigned i = 0; i < c->luks.n_slots; i++) {
		struct json_object *e = json_object_new_object();

		json_add_int(e, "slot", c->luks.slots[i].slot);
		json_add_str(e, "role", c->luks.slots[i].slot == LUKS_KEY_SLOT ? "key" : "recovery");
		json_add_str(e, "pbkdf", "pbkdf2");
		json_add_u64(e, "iterations", c->luks.slots[i].iterations);
		json_object_array_add(slots, e);
	}
	json_add(luks, "key_slots", slots);
	json_add(o, "luks", luks);
	json_add_str(fs, "type", "ext4");
	json_add_str(fs, "uuid", c->fs_uuid);
	json_add_u64(fs, "size", c->fs_size);
	json_add_u64(fs, "allocated", c->fs_allocated);
	json_add(o, "root_filesystem", fs);
	json_add_str(esp, "type", "vfat");
	json_add_str(esp, "volume_id", c->esp_volid);
	json_add(o, "esp", esp);
	if (c->distro) {
		struct json_object *kernels = json_object_new_array();
		struct json_object *warnings = json_object_new_array();

		json_add_str(o, "distro", c->distro->id);
		json_add_str(o, "initramfs", c->initramfs_tool);
		json_add_u64(o, "hooks_run", c->hooks_runner.n_run);
		for (size_t i = 0; c->kernels && c->kernels[i]; i++)
			json_object_array_add(kernels, json_str(c->kernels[i]));
		json_add(o, "kernels", kernels);
		json_add_str(o, "kernel_cmdline", c->cmdline);
		for (size_t i = 0; i < c->hooks_runner.n_warnings; i++)
			json_object_array_add(warnings, json_str(c->hooks_runner.warnings[i]));
		json_add(o, "warnings", warnings);
	} else
		json_add(o, "distro", NULL);
	json_add_str(o, "sandbox", sandbox_kind_to_string(c->route));
	json_add_str(o, "sandbox_reason", c->route_why);
	if (c->route == SANDBOX_VM) {
		json_add_double(o, "sandbox_startup", c->vm.startup_seconds, 3);
		json_add_str(o, "sandbox_accel", gfs_settings_given() ? "settings" :
			     c->vm_kvm ? "kvm" : "tcg");
	}
	json_add_str(o, "mapper_name", c->opt->mapper_name);
	json_add_str(o, "key_file", c->key_out);
	for (size_t i = 0; i < ELEMENTSOF(stages); i++)
		json_add_double(stage_times, stages[i].name, c->stage_seconds[i], 3);
	json_add(o, "stages", stage_times);
	json_add_u64(o, "encrypt_rate", c->encrypt_seconds > 0 ?
		     (uint64_t)((double)c->fs_allocated / c->encrypt_seconds) : 0);
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &children);
	json_add_u64(rss, "self", (uint64_t)self.ru_maxrss * 1024);
	json_add_u64(rss, "largest_child", (uint64_t)children.ru_maxrss * 1024);
	json_add(o, "peak_rss", rss);
	/* The image is in place when this is printed: a failure to print is said, not returned. */
	if (json_print(o, stdout) < 0)
		log_warning_errno(errno ?: EIO, "cannot write the --json report: %m");
}

/* CVM_IMAGE_FAULT=kill-in-STAGE: SIGKILL at the start of that stage, for the tests of what a
 * killed build leaves and how the next one cleans it up. stop-in-STAGE: SIGSTOP there, for the
 * tests that look at the build's files between two stages (the test sends SIGCONT). */
static void kill_point(const char *stage)
{
	char point[64];

	snprintf(point, sizeof(point), "kill-in-%s", stage);
	if (fault_requested(point))
		raise(SIGKILL);
	snprintf(point, sizeof(point), "stop-in-%s", stage);
	if (fault_requested(point))
		raise(SIGSTOP);
}

int build_run(const struct build_options *opt)
{
	struct build_ctx c = { .opt = opt, .t0 = now_seconds(), .out = OUTPUT_INIT };
	char a[32], b[32];
	int r = 0;

	c.rootfd = c.hooks_runner.rundirfd = -1;
	c.format = opt->format != IMAGE_FORMAT_AUTO ? opt->format : image_format_for_path(opt->output);
	c.key_out = opt->key_out ? strdup(opt->key_out) : strdupf("%s.key", opt->output);
	if (!c.key_out)
		return log_error_errno(ENOMEM, "out of memory");

	for (size_t i = 0; i < ELEMENTSOF(stages); i++) {
		double t = now_seconds();

		if (interrupt_pending()) {
			r = log_error_errno(EINTR, "interrupted");
			break;
		}
		log_notice("[%7.1fs] %s: %s", t - c.t0, stages[i].name, stages[i].summary);
		kill_point(stages[i].name);
		r = stages[i].run(&c);
		c.stage_seconds[i] = now_seconds() - t;
		log_info("%s: done in %.2fs", stages[i].name, c.stage_seconds[i]);
		if (r < 0)
			break;
	}
	if (r == 0) {
		log_notice("[%7.1fs] built '%s' (%s, %s, %s allocated), key in '%s'",
			   now_seconds() - c.t0, opt->output,
			   c.format == IMAGE_FORMAT_QCOW2 ? "qcow2" : "raw",
			   format_size(c.plan.disk_size, a, sizeof(a)),
			   format_size(c.image_allocated, b, sizeof(b)), c.key_out);
		if (opt->json)
			print_json(&c);
	}
	build_ctx_done(&c);
	return r;
}
