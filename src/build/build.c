/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The build pipeline: a table of stages over one context that owns every resource. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "context.h"
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
#include "common/log.h"
#include "image/ext4.h"
#include "image/luks.h"
#include "image/output.h"
#include "initramfs/initramfs.h"
#include "shared/cleanup.h"
#include "shared/fault.h"
#include "shared/interrupt.h"
#include "shared/strv.h"
#include "shared/util.h"

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
	r = ext4_mkfs(c->fs_path, 0, c->fs_size, c->fs_uuid, ROOT_FS_LABEL, NULL, NULL);
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
	r = tarball_extract(c->opt->rootfs, c->rootdir, c->idx.entries,
			    c->userns ? &c->owners : NULL);
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


static const struct stage stages[] = {
	{ "prepare", "checking the tarball, distro, sizes and tools", build_stage_prepare },
	{ "unpack", "extracting the tarball", stage_unpack },
	{ "configure", "key file, fstab and the distro's configure hooks", stage_configure },
	{ "initramfs", "the distro's initramfs hooks", stage_initramfs },
	{ "bootloader", "the distro's bootloader hooks", stage_bootloader },
	{ "finalize", "the distro's finalize hooks", stage_finalize },
	{ "key-archive", "the key into its own archive at the end of each initramfs",
	  stage_key_archive },
	{ "esp", "making the EFI System Partition", build_stage_esp },
	{ "mkfs", "making the ext4 root filesystem", build_stage_mkfs },
	{ "luks", "writing the LUKS1 header", build_stage_luks },
	{ "encrypt", "encrypting the allocated blocks", build_stage_encrypt },
	{ "assemble", "writing the GPT and placing the partitions", build_stage_assemble },
	{ "output", "writing the image and the key file", build_stage_output },
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
	ext4_owners_done(&c->owners);
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
	json_add_bool(o, "sandbox_user_namespace", c->userns);
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
