/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inspect: the checks, in the order a reader follows the image (disk, ESP, header, then the
 * root filesystem's, tree.c, in a confined child), and the run that prints them (report.c). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "context.h"
#include "deep.h"
#include "common/confine.h"
#include "common/log.h"
#include "image/cryptfs.h"
#include "image/esp.h"
#include "image/gpt.h"
#include "image/image.h"
#include "image/luks.h"
#include "image/xts.h"
#include "initramfs/initramfs.h"
#include "shared/cleanup.h"
#include "shared/fault.h"
#include "shared/interrupt.h"
#include "shared/util.h"

/* ---- without a key ------------------------------------------------------------------- */

static int check_gpt(struct inspect_ctx *c)
{
	struct gpt_table *t = &c->gpt;
	char a[32], b[32];
	int r;

	c->esp_index = c->luks_index = -1;
	r = gpt_read_table(c->im->raw_path, c->im->path, t);
	if (r < 0) {
		checks_add(&c->checks, "gpt", CHECK_FAIL, "no usable partition table");
		return r;
	}
	for (unsigned i = 0; i < t->n; i++) {
		if (streq(t->parts[i].type_guid, GPT_TYPE_ESP) && c->esp_index < 0)
			c->esp_index = (int)i;
		if (streq(t->parts[i].fs_type, "crypto_LUKS") && c->luks_index < 0)
			c->luks_index = (int)i;
		if (t->parts[i].start + t->parts[i].size > c->im->size) {
			checks_add(&c->checks, "gpt", CHECK_FAIL, "partition %u ends at %s, the image at %s "
				    "(truncated?)", t->parts[i].number,
				    format_size(t->parts[i].start + t->parts[i].size, a, sizeof(a)),
				    format_size(c->im->size, b, sizeof(b)));
			return -EMEDIUMTYPE;
		}
	}
	if (!streq(t->type, "gpt")) {
		checks_add(&c->checks, "gpt", CHECK_FAIL, "a '%s' partition table, not GPT", t->type);
		return -EMEDIUMTYPE;
	}
	if (c->esp_index < 0 || c->luks_index < 0) {
		checks_add(&c->checks, "gpt", CHECK_FAIL, "GPT with %u partition%s, %s (not an image made by "
			    "cvm-image?)", t->n, t->n == 1 ? "" : "s",
			    c->esp_index < 0 && c->luks_index < 0 ? "no EFI System Partition and no LUKS partition" :
			    c->esp_index < 0 ? "no EFI System Partition" : "no LUKS partition");
		return -EMEDIUMTYPE;
	}
	if (t->primary_damage[0]) {
		checks_add(&c->checks, "gpt", CHECK_FAIL, "%s (the backup was read): damaged, or changed "
			    "by something that did not mend it", t->primary_damage);
		return 0;
	}
	checks_add(&c->checks, "gpt", CHECK_OK, "GPT %s: ESP partition %u (%s), LUKS partition %u (%s)",
		    t->ptuuid, t->parts[c->esp_index].number,
		    format_size(t->parts[c->esp_index].size, a, sizeof(a)),
		    t->parts[c->luks_index].number,
		    format_size(t->parts[c->luks_index].size, b, sizeof(b)));
	return 0;
}

/* The UUID after "cryptomount -u " in grub's embedded early config. */
static void find_grub_uuid(const unsigned char *p, size_t len, char out[40])
{
	static const char tag[] = "cryptomount -u ";
	const unsigned char *m = memmem(p, len, tag, sizeof(tag) - 1);
	size_t i = 0;

	out[0] = '\0';
	if (!m)
		return;
	m += sizeof(tag) - 1;
	while (m + i < p + len && i < 39 && (strchr("0123456789abcdef-", m[i]) && m[i]))
		i++;
	memcpy(out, m, i);
	out[i] = '\0';
}

static int check_esp(struct inspect_ctx *c)
{
	const struct gpt_part *p = &c->gpt.parts[c->esp_index];
	_cleanup_free_ unsigned char *efi = NULL;
	_cleanup_free_ char *tmp = strdupf("%s/cvm-image-inspect.%d.XXXXXX", getenv("TMPDIR") ?: "/var/tmp",
					   (int)getpid());
	size_t len, n = 0;
	int r;

	if (!streq(p->fs_type, "vfat")) {
		checks_add(&c->checks, "esp", CHECK_FAIL, "the EFI System Partition holds %s, not FAT",
			    *p->fs_type ? p->fs_type : "nothing libblkid knows");
		return 0;
	}
	r = esp_list_files(c->im->raw_path, p->start, &c->esp_files);
	if (r < 0) {
		checks_add(&c->checks, "esp", CHECK_FAIL, "its FAT filesystem cannot be read");
		return 0;
	}
	while (c->esp_files[n])
		n++;
	checks_add(&c->checks, "esp", CHECK_OK, "FAT, volume id %s, %zu file%s", p->fs_uuid, n,
		    n == 1 ? "" : "s");
	if (!tmp || !mkdtemp(tmp))
		return log_error_errno(tmp ? errno : ENOMEM, "cannot create a temporary directory: %m");
	r = esp_read_file(c->im->raw_path, p->start, "EFI/BOOT/BOOTX64.EFI", tmp, &efi, &len);
	rmdir(tmp);
	if (r == -ENOENT) {
		checks_add(&c->checks, "esp-grub", CHECK_FAIL, "no \\EFI\\BOOT\\BOOTX64.EFI (the removable path)");
		return 0;
	}
	if (r == -EIO) {
		checks_add(&c->checks, "esp-grub", CHECK_FAIL, "\\EFI\\BOOT\\BOOTX64.EFI cannot be read from the "
			    "FAT filesystem (damaged)");
		return 0;
	}
	if (r == -EFBIG || r == -EBADMSG) {
		checks_add(&c->checks, "esp-grub", CHECK_FAIL, "\\EFI\\BOOT\\BOOTX64.EFI: %s",
			    r == -EFBIG ? "its directory entry claims more than an ESP file can be" :
			    "its directory entry and its cluster chain disagree on its size");
		return 0;
	}
	if (r < 0)
		return r;
	find_grub_uuid(efi, len, c->grub_uuid);
	c->grub_early_locked = memmem(efi, len, "set superusers=", 15) != NULL;
	if (len < 2 || memcmp(efi, "MZ", 2) != 0)
		checks_add(&c->checks, "esp-grub", CHECK_FAIL, "\\EFI\\BOOT\\BOOTX64.EFI is no EFI binary");
	else if (!c->grub_uuid[0])
		checks_add(&c->checks, "esp-grub", CHECK_FAIL, "\\EFI\\BOOT\\BOOTX64.EFI (%zu bytes) has no "
			    "early config unlocking a LUKS UUID (not grub made by cvm-image?)", len);
	else
		checks_add(&c->checks, "esp-grub", CHECK_OK, "\\EFI\\BOOT\\BOOTX64.EFI (%zu bytes), its early "
			    "config unlocks %s", len, c->grub_uuid);
	return 0;
}

static bool uuid_eq_nodash(const char *a, const char *b)
{
	while (*a || *b) {
		if (*a == '-') {
			a++;
			continue;
		}
		if (*b == '-') {
			b++;
			continue;
		}
		if (*a++ != *b++)
			return false;
	}
	return true;
}

static int check_luks(struct inspect_ctx *c)
{
	const struct gpt_part *p = &c->gpt.parts[c->luks_index];
	_cleanup_free_ unsigned char *hdr = NULL;
	struct luks_desc *d = &c->luks;
	char slots[8 * 32] = ""; /* 8 × "7 (4294967295 iterations), " */
	size_t n = 0;
	int r;

	if (!streq(p->fs_version, "1")) {
		checks_add(&c->checks, "luks-header", CHECK_FAIL, "partition %u is LUKS version %s, not LUKS1",
			    p->number, p->fs_version);
		return -EMEDIUMTYPE;
	}
	r = image_find_luks(c->im);
	if (r == 0)
		r = image_read_header(c->im, &hdr);
	if (r == 0)
		r = luks_describe(hdr, c->im->hdr_size, d);
	if (r < 0) {
		checks_add(&c->checks, "luks-header", CHECK_FAIL, "the LUKS partition's header cannot be read");
		return r;
	}
	/* libcryptsetup loads it too: the checks it makes (digest, key material in range). */
	r = image_load_header(c->im, &c->hdr_path, &c->cd);
	if (r < 0) {
		checks_add(&c->checks, "luks-header", CHECK_FAIL, "libcryptsetup refuses the header");
		return r;
	}
	c->have_luks = true;
	/* A gate: a header that encrypts with anything but AES-XTS (cipher_null-ecb encrypts
	 * nothing, and opens with any key) fails; other parameters are a warning. */
	if (!streq(d->cipher, "aes") || !streq(d->mode, "xts-plain64"))
		checks_add(&c->checks, "luks-header", CHECK_FAIL, "LUKS1 %s-%s: not aes-xts-plain64, the only "
			    "cipher an image may use; UUID %s", d->cipher, d->mode, d->uuid);
	else if (d->key_bits != 512 || !streq(d->hash, "sha256"))
		checks_add(&c->checks, "luks-header", CHECK_WARN, "LUKS1 %s-%s, %u-bit key, %s: not what "
			    "cvm-image makes (aes-xts-plain64, 512, sha256); UUID %s", d->cipher,
			    d->mode, d->key_bits, d->hash, d->uuid);
	else
		checks_add(&c->checks, "luks-header", CHECK_OK, "LUKS1 aes-xts-plain64, 512-bit key, sha256, "
			    "UUID %s, payload at %" PRIu64 " KiB", d->uuid, d->payload_offset / 1024);
	if (c->grub_uuid[0] && !uuid_eq_nodash(c->grub_uuid, d->uuid))
		checks_add(&c->checks, "grub-early-config", CHECK_FAIL, "grub's early config unlocks %s, the "
			    "LUKS header is %s", c->grub_uuid, d->uuid);
	else if (c->grub_uuid[0])
		checks_add(&c->checks, "grub-early-config", CHECK_OK, "unlocks this LUKS UUID");

	for (int i = 0; i < 8; i++) {
		int k;

		if (!d->slots[i].active)
			continue;
		k = snprintf(slots + n, sizeof(slots) - n, "%s%d (%" PRIu32 " iterations)",
			     n ? ", " : "", i, d->slots[i].iterations);
		if (k < 0 || (size_t)k >= sizeof(slots) - n)
			break; /* cannot happen with the size below; never past the buffer */
		n += (size_t)k;
	}
	if (d->digest_iterations > LUKS_MAX_TRY_ITERATIONS)
		checks_add(&c->checks, "key-slots", CHECK_FAIL, "the volume key digest asks for %" PRIu32 " PBKDF2 "
			    "iterations (more than %u: every try of a key would take minutes); in use: %s",
			    d->digest_iterations, LUKS_MAX_TRY_ITERATIONS, n ? slots : "none");
	else if (!d->slots[0].active)
		checks_add(&c->checks, "key-slots", CHECK_FAIL, "slot 0 (the image's key) is not in use; in use: %s",
			    n ? slots : "none");
	else if (d->slots[0].iterations != LUKS_FAST_ITERATIONS)
		checks_add(&c->checks, "key-slots", CHECK_WARN, "slot 0 at %" PRIu32 " iterations, not %d "
			    "(grub's unlock is slow); in use: %s", d->slots[0].iterations,
			    LUKS_FAST_ITERATIONS, slots);
	else if (d->slots[1].active && d->slots[1].iterations < 100000)
		checks_add(&c->checks, "key-slots", CHECK_WARN, "the recovery slot 1 at %" PRIu32 " iterations "
			    "(under 100000: a passphrase is weak against guessing); in use: %s",
			    d->slots[1].iterations, slots);
	else {
		bool extra = false;

		for (int i = 2; i < 8; i++)
			extra |= d->slots[i].active;
		checks_add(&c->checks, "key-slots", extra ? CHECK_WARN : CHECK_OK, "%s%s; volume key digest at "
			    "%" PRIu32 " iterations", extra ?
			    "slots beyond 0 and 1 in use (a key nobody may hold; rekey --kill-slot "
			    "removes one): " : "in use: ", slots, d->digest_iterations);
	}
	return 0;
}

/* ---- with a key ---------------------------------------------------------------------- */

static int unlock(struct inspect_ctx *c)
{
	const struct inspect_options *o = c->opt;
	_cleanup_secret_ struct secret pass = {};
	int r;

	c->opened_slot = -1;
	r = image_read_secret(o->key_file, o->recovery_file, &pass);
	if (r < 0)
		return r;
	r = image_unlock(c->cd, &pass, &c->vk, &c->opened_slot, &c->xts);
	if (r == -EPERM) {
		checks_add(&c->checks, "key-opens", CHECK_FAIL, "the %s opens no key slot",
			    o->key_file ? "key in the key file" : "recovery passphrase");
		c->opened_slot = -1;
		return 0;
	}
	if (r == -ECHILD) {
		checks_add(&c->checks, "key-opens", CHECK_FAIL, "the confined reader of the LUKS key "
			   "slots was killed: the header is damaged or crafted");
		c->opened_slot = -1;
		return 0;
	}
	if (r < 0)
		return r;
	if (o->key_file && c->opened_slot != 0)
		checks_add(&c->checks, "key-opens", CHECK_WARN, "the key opens slot %d, not slot 0", c->opened_slot);
	else
		checks_add(&c->checks, "key-opens", CHECK_OK, "the %s opens slot %d",
			    o->key_file ? "key" : "recovery passphrase", c->opened_slot);
	if (o->key_file) {
		c->key = pass;
		pass = (struct secret){};
	}
	c->unlocked = true;
	return 0;
}

/* The root filesystem opened (libext2fs through the XTS I/O manager): the confined child's
 * first step. */
/* ---- the root filesystem, confined --------------------------------------------------- */

/*
 * What the confined child sends back: this header, then n_checks struct check, n_kernels
 * struct kernel (their member names after them, NAME_MAX + 1 bytes each, n_members in all),
 * n_files struct inspect_file, and the tree's key (read with the recovery passphrase, for
 * inspect_check_tree_key()). The same binary on both ends (a fork), so the records are the
 * structs themselves; the parent checks every count against the length and terminates every
 * string, because the child may have been taken over by what it read.
 */
struct rootfs_answer {
	int32_t r;
	uint32_t have_fs;
	struct cryptfs_info fsinfo;
	char tool[24];
	uint32_t n_checks, n_kernels, n_members, n_files;
	uint32_t tree_key_len, tree_key_check, tree_key_mode; /* tree_key_len bytes at the end */
};

#define MEMBER_NAME 256
#define KEY_FILE_MAX (64 * 1024)
#define ANSWER_MAX (8 * MiB)

static int write_answer(int fd, const struct inspect_ctx *c, size_t first_check, int r)
{
	struct rootfs_answer a = { .r = r, .have_fs = c->have_fs, .fsinfo = c->fsinfo,
				   .n_checks = (uint32_t)(c->checks.n - first_check),
				   .n_kernels = (uint32_t)c->n_kernels, .n_files = (uint32_t)c->n_files };
	int w;

	memcpy(a.tool, c->tool, sizeof(a.tool));
	if (!c->opt->key_file && c->key.size) {
		a.tree_key_len = (uint32_t)c->key.size;
		a.tree_key_check = (uint32_t)(c->tree_key_check - first_check);
		a.tree_key_mode = c->tree_key_mode;
	}
	for (size_t i = 0; i < c->n_kernels; i++)
		a.n_members += (uint32_t)c->kernels[i].n_members;
	w = write_all(fd, &a, sizeof(a));
	if (w == 0)
		w = write_all(fd, c->checks.v + first_check, a.n_checks * sizeof(struct check));
	if (w == 0 && c->n_kernels)
		w = write_all(fd, c->kernels, c->n_kernels * sizeof(struct kernel));
	for (size_t i = 0; w == 0 && i < c->n_kernels; i++)
		for (size_t j = 0; w == 0 && j < c->kernels[i].n_members; j++) {
			char name[MEMBER_NAME] = {};

			snprintf(name, sizeof(name), "%s", c->kernels[i].members[j].name ?: "");
			w = write_all(fd, name, sizeof(name));
		}
	if (w == 0 && c->n_files)
		w = write_all(fd, c->files, c->n_files * sizeof(struct inspect_file));
	if (w == 0 && a.tree_key_len)
		w = write_all(fd, c->key.data, a.tree_key_len);
	return w;
}

#define TERMINATE(a) ((a)[sizeof(a) - 1] = '\0')

/* The child's answer taken into c, every count and string checked. */
static int read_answer(struct inspect_ctx *c, const char *p, size_t len)
{
	struct rootfs_answer a;
	size_t need, first = c->checks.n;

	if (len < sizeof(a))
		return -EBADMSG;
	memcpy(&a, p, sizeof(a));
	if (a.n_checks > 1024 || a.n_kernels > 64 || a.n_files > 1024 ||
	    a.n_members > a.n_kernels * MAX_KEY_MEMBERS || a.tree_key_len > KEY_FILE_MAX ||
	    (a.tree_key_len && a.tree_key_check >= a.n_checks))
		return -EBADMSG;
	need = sizeof(a) + a.n_checks * sizeof(struct check) + a.n_kernels * sizeof(struct kernel) +
	       a.n_members * (size_t)MEMBER_NAME + a.n_files * sizeof(struct inspect_file) +
	       a.tree_key_len;
	if (len != need)
		return -EBADMSG;
	p += sizeof(a);
	for (uint32_t i = 0; i < a.n_checks; i++, p += sizeof(struct check)) {
		struct check k;

		memcpy(&k, p, sizeof(k));
		TERMINATE(k.name);
		TERMINATE(k.detail);
		if ((unsigned)k.state > CHECK_FAIL)
			return -EBADMSG;
		checks_add(&c->checks, k.name, k.state, "%s", k.detail);
	}
	c->have_fs = a.have_fs != 0;
	c->fsinfo = a.fsinfo;
	TERMINATE(c->fsinfo.uuid);
	TERMINATE(c->fsinfo.label);
	memcpy(c->tool, a.tool, sizeof(c->tool));
	TERMINATE(c->tool);
	c->kernels = calloc(a.n_kernels ?: 1, sizeof(*c->kernels));
	if (!c->kernels)
		return -ENOMEM;
	memcpy(c->kernels, p, a.n_kernels * sizeof(struct kernel));
	p += a.n_kernels * sizeof(struct kernel);
	c->n_kernels = a.n_kernels;
	for (size_t i = 0, m = 0; i < c->n_kernels; i++) {
		struct kernel *k = &c->kernels[i];

		TERMINATE(k->version);
		TERMINATE(k->initrd);
		for (size_t j = 0; j < MAX_KEY_MEMBERS; j++)
			k->members[j].name = NULL; /* the child's pointers */
		if (k->n_members > MAX_KEY_MEMBERS || m + k->n_members > a.n_members) {
			k->n_members = 0;
			return -EBADMSG;
		}
		for (size_t j = 0; j < k->n_members; j++, m++, p += MEMBER_NAME) {
			k->members[j].name = strndup(p, MEMBER_NAME - 1);
			if (!k->members[j].name) {
				k->n_members = j;
				return -ENOMEM;
			}
		}
	}
	if (a.n_files) {
		c->files = calloc(a.n_files, sizeof(*c->files));
		if (!c->files)
			return -ENOMEM;
		memcpy(c->files, p, a.n_files * sizeof(struct inspect_file));
		c->n_files = c->cap_files = a.n_files;
		for (size_t i = 0; i < c->n_files; i++) {
			TERMINATE(c->files[i].path);
			TERMINATE(c->files[i].sha256);
		}
		p += a.n_files * sizeof(struct inspect_file);
	}
	if (a.tree_key_len) {
		if (secret_alloc(&c->key, a.tree_key_len) < 0)
			return -ENOMEM;
		memcpy(c->key.data, p, a.tree_key_len);
		c->tree_key_check = first + a.tree_key_check;
		c->tree_key_mode = a.tree_key_mode;
		return a.r ?: inspect_check_tree_key(c);
	}
	return a.r;
}

/* In the confined child: the root filesystem's checks, their findings written to out_fd. */
static int rootfs_stage(void *userdata, int out_fd)
{
	struct inspect_ctx *c = userdata;
	size_t first = c->checks.n;
	int r;

	/* For the tests: what the confinement refuses, and a reader that dies. */
	if (fault_requested("rootfs-reader-probe")) {
		int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC), e_open = fd < 0 ? errno : 0;
		int e_exec = execl("/bin/true", "true", (char *)NULL) < 0 ? errno : 0;
		int s = socket(AF_UNIX, SOCK_STREAM, 0), e_sock = s < 0 ? errno : 0;

		checks_add(&c->checks, "reader-probe", CHECK_WARN, "uid %u, open %s, exec %s, socket %s",
			    (unsigned)geteuid(), strerrorname_np(e_open) ?: "ok",
			    strerrorname_np(e_exec) ?: "ok", strerrorname_np(e_sock) ?: "ok");
	}
	if (fault_requested("rootfs-reader-crash"))
		abort();
	r = inspect_open_rootfs(c);
	if (r == 0 && c->have_fs) {
		r = inspect_check_key_file(c);
		if (r == 0)
			r = inspect_check_pin(c);
		if (r == 0)
			r = inspect_check_config(c);
		if (r == 0)
			r = inspect_check_kernels(c);
		if (r == 0)
			r = inspect_check_esp_key(c);
	}
	return write_answer(out_fd, c, first, r);
}

/*
 * The root filesystem's checks (ext4, crypttab, grub.cfg, os-release, every initramfs: what
 * the guest could write) in a confined child (confine.h), so that a memory bug a crafted
 * filesystem finds in libext2fs or in our parsers cannot act as us.
 */
static int check_rootfs(struct inspect_ctx *c)
{
	_cleanup_free_ char *answer = NULL;
	size_t len;
	int sig, r;

	r = confine_run(rootfs_stage, c, c->im->fd, ANSWER_MAX, &answer, &len, &sig);
	if (r == -ECHILD) {
		checks_add(&c->checks, "rootfs", CHECK_FAIL, "the confined reader of the root filesystem was "
			    "killed (%s): its contents are damaged or crafted", strsignal(sig));
		return -EMEDIUMTYPE;
	}
	if (r < 0)
		return r;
	r = read_answer(c, answer, len);
	explicit_bzero(answer, len); /* it may end with the tree's key */
	if (r == -EBADMSG)
		return log_error_errno(r, "the confined reader of the root filesystem answered "
					  "out of bounds");
	return r;
}

static void inspect_ctx_done(struct inspect_ctx *c)
{
	if (c->fs)
		cryptfs_abort(c->fs);
	if (c->xts)
		xts_free(c->xts);
	if (c->cd)
		luks_free(c->cd);
	if (c->hdr_path) {
		unlink(c->hdr_path);
		free(c->hdr_path);
	}
	secret_free(&c->key);
	secret_free(&c->vk);
	for (size_t i = 0; c->esp_files && c->esp_files[i]; i++)
		free(c->esp_files[i]);
	free(c->esp_files);
	for (size_t i = 0; i < c->n_kernels; i++)
		initramfs_members_done(c->kernels[i].members, c->kernels[i].n_members);
	free(c->kernels);
	free(c->files);
	checks_done(&c->checks);
	image_close(c->im);
}

int inspect_run(const struct inspect_options *o)
{
	struct inspect_ctx c = { .opt = o, .opened_slot = -1, .esp_index = -1, .luks_index = -1 };
	size_t failed = 0, warned = 0;
	int r;

	r = image_open(o->image, 0, &c.im);
	if (r < 0)
		goto out;
	r = check_gpt(&c);
	if (r == 0)
		r = check_esp(&c);
	if (r == 0)
		r = check_luks(&c);
	if (r == 0 && (o->key_file || o->recovery_file))
		r = unlock(&c);
	if (r == 0 && c.unlocked)
		r = check_rootfs(&c);
	if (r == 0 && o->deep && c.opened_slot >= 0) {
		_cleanup_secret_ struct secret pass = {};

		r = image_read_secret(o->key_file, o->recovery_file, &pass);
		if (r == 0)
			r = deep_inspect(&c.checks, o->image, c.im->qcow2 ? "qcow2" : "raw", &pass,
					 c.files, c.n_files);
	}
	if (r == 0 && interrupt_pending())
		r = log_error_errno(EINTR, "interrupted");
	/* A finding that stopped the checks (no table, no LUKS header) is a failed check,
	 * reported as such; anything else (no memory, a tool missing) is an error. */
	if (r < 0 && c.checks.n > 0 && c.checks.v[c.checks.n - 1].state == CHECK_FAIL &&
	    r != -EINTR && r != -ENOMEM && r != -ENOPKG)
		r = 0;
	if (r < 0)
		goto out;
	for (size_t i = 0; i < c.checks.n; i++) {
		failed += c.checks.v[i].state == CHECK_FAIL;
		warned += c.checks.v[i].state == CHECK_WARN;
	}
	if (o->json) {
		r = inspect_print_json(&c, failed == 0);
		if (r < 0) {
			log_error_errno(r, "cannot write the --json report: %m");
			goto out;
		}
	} else
		inspect_print_text(&c);
	fflush(stdout);
	if (failed) {
		_cleanup_free_ char *list = NULL;
		size_t n = 0;

		list = calloc(1, 64 * failed + 1);
		for (size_t i = 0; list && i < c.checks.n; i++)
			if (c.checks.v[i].state == CHECK_FAIL)
				n += (size_t)sprintf(list + n, "%s%.60s", n ? ", " : "", c.checks.v[i].name);
		log_error("'%s': %zu of %zu checks failed: %s", o->image, failed, c.checks.n,
			  list ?: "");
		r = -EUCLEAN;
	} else {
		log_notice("'%s': %zu checks passed%s%s", o->image, c.checks.n,
			   warned ? ", with warnings: " : "", warned ? "see above" : "");
	}
out:
	inspect_ctx_done(&c);
	return r;
}
