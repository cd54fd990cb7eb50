/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* build: the stages that make the disk from the prepared tree: the ESP, the ext4, the LUKS1
 * header, the encryption of the allocated blocks, the GPT around them, and the output. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "context.h"
#include "appliance.h"
#include "distro.h"
#include "owners.h"
#include "sandbox.h"
#include "target.h"
#include "common/kvm.h"
#include "common/log.h"
#include "common/run.h"
#include "image/esp.h"
#include "image/ext4.h"
#include "image/ext4-owners.h"
#include "image/gpt.h"
#include "image/luks.h"
#include "image/output.h"
#include "image/xts.h"
#include "shared/cleanup.h"
#include "shared/fault.h"
#include "shared/interrupt.h"
#include "shared/strv.h"
#include "shared/util.h"

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

int build_stage_mkfs(struct build_ctx *c)
{
	_cleanup_close_ int fd = open(c->raw_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	_cleanup_strv_free_ char **wrap = NULL;
	int r;

	if (fd < 0)
		return log_error_errno(errno, "cannot create '%s': %m", c->raw_path);
	if (ftruncate(fd, (off_t)c->plan.disk_size) < 0)
		return log_error_errno(errno, "cannot size '%s': %m", c->raw_path);
	if (c->route == SANDBOX_VM)
		return copy_appliance_fs(c, fd);
	if (!c->userns)
		return ext4_mkfs(c->raw_path, fs_offset(c), c->fs_size, c->fs_uuid, ROOT_FS_LABEL,
				 c->rootdir, NULL);
	/* An ordinary user's tree: mke2fs where that user is root (so every file it made is
	 * root's, and it reads what only an owner with root's powers could), then what the tree
	 * could not hold. */
	r = owners_settle(&c->owners, c->rootfd);
	if (r < 0)
		return r;
	wrap = sandbox_userns_wrap();
	if (!wrap)
		return log_error_errno(ENOMEM, "out of memory");
	r = ext4_mkfs(c->raw_path, fs_offset(c), c->fs_size, c->fs_uuid, ROOT_FS_LABEL, c->rootdir,
		      wrap);
	if (r < 0)
		return r;
	log_info("mkfs: %zu entries of the tarball given their owner, node or attributes",
		 c->owners.n);
	return ext4_owners_apply(c->raw_path, fs_offset(c), &c->owners);
}

int build_stage_luks(struct build_ctx *c)
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

int build_stage_encrypt(struct build_ctx *c)
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

int build_stage_esp(struct build_ctx *c)
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

int build_stage_assemble(struct build_ctx *c)
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

int build_stage_output(struct build_ctx *c)
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
