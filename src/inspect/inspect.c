/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inspect: the checks, in the order a reader follows the image (disk, ESP, header, tree). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "checks.h"
#include "deep.h"
#include "inspect.h"
#include "common/confine.h"
#include "common/json.h"
#include "common/log.h"
#include "image/cryptfs.h"
#include "image/esp.h"
#include "image/gpt.h"
#include "image/grub.h"
#include "image/image.h"
#include "image/keys.h"
#include "image/luks.h"
#include "image/xts.h"
#include "initramfs/initramfs.h"
#include "shared/cleanup.h"
#include "shared/fault.h"
#include "shared/interrupt.h"
#include "shared/strv.h"
#include "shared/util.h"

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

static const char *const state_names[] = { "ok", "warning", "fail" };

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(data, len, md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

/* Remember a tree file for --deep. */
static void note_file(struct inspect_ctx *c, const char *path, uint32_t mode, const void *data,
		      size_t len)
{
	struct inspect_file *f;

	if (greedy_realloc((void **)&c->files, &c->cap_files, c->n_files + 1, sizeof(*f)) < 0)
		return;
	f = &c->files[c->n_files++];
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->mode = mode;
	sha256_hex(data, len, f->sha256);
}

static bool memmem_secret(const void *hay, size_t len, const struct secret *s)
{
	return s->size > 0 && memmem(hay, len, s->data, s->size) != NULL;
}

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
static int open_rootfs(struct inspect_ctx *c)
{
	char a[32], b[32];
	int r;

	r = cryptfs_open(c->im->fd, image_payload_off(c->im), c->xts, false, &c->fs);
	if (r < 0) {
		checks_add(&c->checks, "rootfs", CHECK_FAIL, "the LUKS payload holds no ext4 filesystem");
		return 0;
	}
	cryptfs_info(c->fs, &c->fsinfo);
	c->have_fs = true;
	checks_add(&c->checks, "rootfs", CHECK_OK, "ext4 UUID %s%s%s%s, %s free of %s", c->fsinfo.uuid,
		    *c->fsinfo.label ? ", label '" : "", c->fsinfo.label, *c->fsinfo.label ? "'" : "",
		    format_size(c->fsinfo.free_blocks * c->fsinfo.block_size, a, sizeof(a)),
		    format_size(c->fsinfo.blocks * c->fsinfo.block_size, b, sizeof(b)));
	return 0;
}

/* A file of the tree (NULL, 0 when absent: the caller says what that means). */
static int read_tree_file(struct inspect_ctx *c, const char *path, char **ret, size_t *ret_len,
			  uint32_t *ret_mode)
{
	uint64_t size;
	int r;

	*ret = NULL;
	*ret_len = 0;
	*ret_mode = 0;
	r = cryptfs_stat(c->fs, path, ret_mode, &size);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if ((*ret_mode & S_IFMT) != S_IFREG)
		return 0;
	r = cryptfs_read_file(c->fs, path, ret, ret_len);
	if (r < 0)
		return r;
	note_file(c, path, *ret_mode, *ret, *ret_len);
	return 0;
}

/* Why read_tree_file() gave no contents, from the mode it found (0: nothing there). */
static const char *not_a_file(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case 0:
		return "missing";
	case S_IFLNK:
		return "a symbolic link (not followed: it may point anywhere)";
	case S_IFDIR:
		return "a directory, not a file";
	case S_IFIFO:
		return "a FIFO, not a file";
	default:
		return "not a regular file";
	}
}

static int check_key_file(struct inspect_ctx *c)
{
	_cleanup_free_ char *path = strdupf("/etc/cryptsetup-keys.d/luks-%s.key", c->luks.uuid);
	char *data = NULL;
	uint32_t mode = 0;
	size_t len;
	int r;

	if (!path)
		return log_error_errno(ENOMEM, "out of memory");
	r = read_tree_file(c, path, &data, &len, &mode);
	if (r < 0)
		return r;
	if (!data) {
		checks_add(&c->checks, "key-file", CHECK_FAIL, "%s: %s", path, mode ? not_a_file(mode) :
			    "missing (an image built with --distro none, or not by cvm-image?)");
		return 0;
	}
	struct secret tree = { (unsigned char *)data, len };
	if (c->key.size) {
		if (len != c->key.size || memcmp(data, c->key.data, len) != 0)
			checks_add(&c->checks, "key-file", CHECK_FAIL, "%s does not hold the given key", path);
		else if ((mode & 07777) != 0600)
			checks_add(&c->checks, "key-file", CHECK_FAIL, "%s holds the key but has mode %04o, "
				    "not 0600", path, mode & 07777);
		else
			checks_add(&c->checks, "key-file", CHECK_OK, "%s, mode 0600, holds the key", path);
		secret_free(&tree);
		return 0;
	}
	/* With the recovery passphrase: the tree's key is the one to look for elsewhere. Which
	 * slot it opens is for the parent to say (libcryptsetup reads the header file, which the
	 * confined reader cannot open): check_tree_key(). */
	c->key = tree;
	c->tree_key_mode = mode;
	c->tree_key_check = c->checks.n;
	checks_add(&c->checks, "key-file", CHECK_OK, "%s", path);
	return 0;
}

/* In the parent, after the confined reader: the tree's key file tried against the slots. */
static int check_tree_key(struct inspect_ctx *c)
{
	_cleanup_secret_ struct secret vk = {};
	struct check *k = &c->checks.v[c->tree_key_check];
	char path[256];
	int r, slot;

	snprintf(path, sizeof(path), "%.255s", k->detail);
	r = luks_unlock(c->cd, &c->key, &vk, &slot);
	if (r == -EPERM) {
		k->state = CHECK_FAIL;
		snprintf(k->detail, sizeof(k->detail), "%s opens no key slot", path);
	} else if (r < 0) {
		return r;
	} else if ((c->tree_key_mode & 07777) != 0600) {
		k->state = CHECK_FAIL;
		snprintf(k->detail, sizeof(k->detail), "%s opens slot %d but has mode %04o, not 0600",
			 path, slot, c->tree_key_mode & 07777);
	} else {
		snprintf(k->detail, sizeof(k->detail), "%s, mode 0600, opens slot %d", path, slot);
	}
	return 0;
}

static int check_pin(struct inspect_ctx *c)
{
	_cleanup_free_ char *path = strdupf("/etc/cryptsetup-keys.d/luks-%s.pin", c->luks.uuid);
	_cleanup_free_ char *data = NULL;
	char pin[LUKS_PIN_LEN + 1];
	uint32_t mode = 0;
	size_t len;
	int r;

	if (!path)
		return log_error_errno(ENOMEM, "out of memory");
	r = read_tree_file(c, path, &data, &len, &mode);
	if (r < 0)
		return r;
	if (!data) {
		checks_add(&c->checks, "pin", CHECK_WARN, "%s missing: the initramfs does not check the root's "
			    "volume key (built before cvm-image pinned the root?)", path);
		return 0;
	}
	r = luks_pin(c->luks.uuid, &c->vk, pin);
	if (r < 0)
		return log_error_errno(r, "cannot compute the pin: %m");
	if (!streq(pin, data))
		checks_add(&c->checks, "pin", CHECK_FAIL, "%s does not match this header's UUID and volume "
			    "key: the initramfs would refuse the root", path);
	else
		checks_add(&c->checks, "pin", CHECK_OK, "%s matches the volume key", path);
	return 0;
}

static bool has_line(const char *text, const char *const words[])
{
	_cleanup_free_ char *copy = strdup(text ?: "");
	char *save = NULL;

	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		bool all = *l != '#';

		for (size_t i = 0; all && words[i]; i++)
			all = strstr(l, words[i]) != NULL;
		if (all)
			return true;
	}
	return false;
}

/* The value a shell assignment NAME=VALUE (quoted or not, last one wins) gives name, in buf. */
static bool shell_var(const char *text, const char *name, char *buf, size_t size)
{
	_cleanup_free_ char *copy = strdup(text ?: "");
	size_t nlen = strlen(name);
	char *save = NULL;
	bool found = false;

	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		size_t len;

		l += strspn(l, " \t");
		if (strncmp(l, "export ", 7) == 0)
			l += 7 + strspn(l + 7, " \t");
		if (strncmp(l, name, nlen) != 0 || l[nlen] != '=')
			continue;
		l += nlen + 1;
		len = strcspn(l, " \t#");
		if (len >= 2 && (l[0] == '"' || l[0] == '\'') && l[len - 1] == l[0]) {
			l++;
			len -= 2;
		}
		snprintf(buf, size, "%.*s", (int)len, l);
		found = true;
	}
	return found;
}

/* The grub.cfg in use boots its default entry without a password: a restricted entry under
 * a lock stops at "Enter username:" and nobody knows the password of cvm-image's lock. */
static void check_grub_boots(struct inspect_ctx *c, const char *cfg, const char *cfg_path)
{
	struct grub_cfg_lock g;

	grub_cfg_lock_scan(cfg, &g);
	if (!g.superusers && !c->grub_early_locked)
		checks_add(&c->checks, "grub-boots", CHECK_WARN, "%s boots, but grub's menu editor and command "
			    "line are not locked (no superusers)", cfg_path);
	else if (!g.has_entry)
		checks_add(&c->checks, "grub-boots", CHECK_FAIL, "%s has no menu entry", cfg_path);
	else if (!g.first_unrestricted)
		checks_add(&c->checks, "grub-boots", CHECK_FAIL, "'%s', the first entry of %s%s, is not "
			    "--unrestricted under grub's lock: the guest stops at 'Enter username:'",
			    g.first_title, cfg_path, g.generated ? " (written by grub-mkconfig)" : "");
	else
		checks_add(&c->checks, "grub-boots", CHECK_OK, "'%s', the first entry of %s%s, boots without a "
			    "password; the editor and command line are locked", g.first_title, cfg_path,
			    g.generated ? " (written by grub-mkconfig)" : "");
}

/* What the guest's own update-grub (every kernel and grub package upgrade runs it) would write:
 * the boot entries --unrestricted (the 10_linux wrapper over the diverted original) and the
 * lock (01_cvm-image-lock), or it bricks the guest at its next boot. Only where /etc/grub.d
 * has a 10_linux, as Debian's and Ubuntu's grub-common install it. */
static int check_grub_update(struct inspect_ctx *c)
{
	_cleanup_free_ char *linux_ = NULL, *lock = NULL, *diverted = NULL;
	uint32_t mode;
	size_t len;
	int r;

	r = read_tree_file(c, "/etc/grub.d/10_linux", &linux_, &len, &mode);
	if (r == 0)
		r = read_tree_file(c, "/etc/grub.d/01_cvm-image-lock", &lock, &len, &mode);
	if (r == 0)
		r = read_tree_file(c, "/usr/lib/cvm-image/grub.d/10_linux", &diverted, &len, &mode);
	if (r < 0)
		return r;
	bool wrapper = linux_ && strstr(linux_, "--unrestricted");
	bool locked = lock && strstr(lock, "superusers");

	if (!linux_ && diverted)
		checks_add(&c->checks, "grub-update", CHECK_FAIL, "/etc/grub.d/10_linux is missing while grub's "
			    "own is diverted: update-grub in the guest would write a grub.cfg without "
			    "Linux entries");
	else if (!linux_)
		return 0;
	else if (!wrapper && (locked || c->grub_early_locked))
		checks_add(&c->checks, "grub-update", CHECK_FAIL, "update-grub in the guest (run by every "
			    "kernel upgrade) would write entries that ask for grub's superuser password: "
			    "/etc/grub.d/10_linux does not make them --unrestricted");
	else if (!locked)
		checks_add(&c->checks, "grub-update", CHECK_WARN, "update-grub in the guest would write a "
			    "grub.cfg without grub's lock (no /etc/grub.d/01_cvm-image-lock)");
	else
		checks_add(&c->checks, "grub-update", CHECK_OK, "update-grub in the guest keeps the entries "
			    "--unrestricted and grub locked");
	return 0;
}

static int check_config(struct inspect_ctx *c)
{
	_cleanup_free_ char *crypttab = NULL, *hook = NULL, *conf = NULL, *dracut = NULL;
	_cleanup_free_ char *grub = NULL, *cfg = NULL;
	_cleanup_free_ char *uuid_eq = strdupf("UUID=%s", c->luks.uuid);
	_cleanup_free_ char *keypath = strdupf("/etc/cryptsetup-keys.d/luks-%s.key", c->luks.uuid);
	char nodash[40];
	const char *cfg_path = "/boot/grub/grub.cfg";
	uint32_t mode;
	size_t len, j = 0;
	int r;

	if (!uuid_eq || !keypath)
		return log_error_errno(ENOMEM, "out of memory");
	for (const char *s = c->luks.uuid; *s && j < sizeof(nodash) - 1; s++)
		if (*s != '-')
			nodash[j++] = *s;
	nodash[j] = '\0';

	r = read_tree_file(c, "/etc/crypttab", &crypttab, &len, &mode);
	if (r < 0)
		return r;
	const char *const ct[] = { uuid_eq, keypath, "luks", NULL };
	if (has_line(crypttab, ct))
		checks_add(&c->checks, "crypttab", CHECK_OK, "/etc/crypttab opens %s with the key file", uuid_eq);
	else
		checks_add(&c->checks, "crypttab", CHECK_FAIL, "/etc/crypttab %s", crypttab ?
			    "has no line opening this LUKS UUID with the key file" :
			    not_a_file(mode));

	r = read_tree_file(c, "/etc/cryptsetup-initramfs/conf-hook", &hook, &len, &mode);
	if (r == 0)
		r = read_tree_file(c, "/etc/initramfs-tools/conf.d/cvm-image", &conf, &len, &mode);
	if (r == 0)
		r = read_tree_file(c, "/etc/dracut.conf.d/90-cvm-image.conf", &dracut, &len, &mode);
	if (r < 0)
		return r;
	const char *const kp[] = { "KEYFILE_PATTERN=", "/etc/cryptsetup-keys.d/", NULL };
	const char *const um[] = { "UMASK=0077", NULL };
	const char *const ii[] = { "install_items", "/etc/cryptsetup-keys.d/", NULL };
	if (dracut) {
		snprintf(c->tool, sizeof(c->tool), "dracut");
		if (has_line(dracut, ii))
			checks_add(&c->checks, "initramfs-settings", CHECK_OK, "dracut: "
				    "/etc/dracut.conf.d/90-cvm-image.conf installs the key file");
		else
			checks_add(&c->checks, "initramfs-settings", CHECK_FAIL, "dracut: "
				    "/etc/dracut.conf.d/90-cvm-image.conf does not install the key file");
	} else if (hook || conf) {
		snprintf(c->tool, sizeof(c->tool), "initramfs-tools");
		if (has_line(hook, kp) && has_line(conf, um))
			checks_add(&c->checks, "initramfs-settings", CHECK_OK, "initramfs-tools: KEYFILE_PATTERN "
				    "takes the key file, UMASK=0077");
		else
			checks_add(&c->checks, "initramfs-settings", CHECK_FAIL, "initramfs-tools: %s",
				    !has_line(hook, kp) ? "no KEYFILE_PATTERN for /etc/cryptsetup-keys.d "
				    "in /etc/cryptsetup-initramfs/conf-hook" :
				    "no UMASK=0077 in /etc/initramfs-tools/conf.d/cvm-image");
	} else {
		checks_add(&c->checks, "initramfs-settings", CHECK_FAIL, "neither initramfs-tools' nor "
			    "dracut's settings from cvm-image (made with --distro none?)");
	}

	r = read_tree_file(c, "/etc/default/grub", &grub, &len, &mode);
	if (r < 0)
		return r;
	char val[64];
	if (shell_var(grub, "GRUB_ENABLE_CRYPTODISK", val, sizeof(val)) && streq(val, "y"))
		checks_add(&c->checks, "default-grub", CHECK_OK, "/etc/default/grub: GRUB_ENABLE_CRYPTODISK=y");
	else
		checks_add(&c->checks, "default-grub", CHECK_FAIL, "/etc/default/grub %s", grub ?
			    "does not set GRUB_ENABLE_CRYPTODISK=y" : not_a_file(mode));

	r = read_tree_file(c, cfg_path, &cfg, &len, &mode);
	if (r == 0 && !cfg && !mode) {
		cfg_path = "/boot/grub2/grub.cfg";
		r = read_tree_file(c, cfg_path, &cfg, &len, &mode);
	}
	if (r < 0)
		return r;
	if (!cfg && mode)
		checks_add(&c->checks, "grub-cfg", CHECK_FAIL, "%s is %s", cfg_path, not_a_file(mode));
	else if (!cfg)
		checks_add(&c->checks, "grub-cfg", CHECK_FAIL, "no /boot/grub/grub.cfg or /boot/grub2/grub.cfg");
	else if (!strstr(cfg, c->fsinfo.uuid))
		checks_add(&c->checks, "grub-cfg", CHECK_FAIL, "%s does not name the root filesystem %s",
			    cfg_path, c->fsinfo.uuid);
	else if (!strstr(cfg, nodash) && !strstr(cfg, c->luks.uuid) && !strstr(cfg, "insmod luks"))
		checks_add(&c->checks, "grub-cfg", CHECK_FAIL, "%s does not load LUKS support", cfg_path);
	else
		checks_add(&c->checks, "grub-cfg", CHECK_OK, "%s finds the root filesystem %s", cfg_path,
			    c->fsinfo.uuid);
	if (cfg)
		check_grub_boots(c, cfg, cfg_path);
	return check_grub_update(c);
}

/* The path the tool puts the key at, inside the initramfs. */
static bool expected_member(const struct inspect_ctx *c, const char *name)
{
	char want[128];

	while (*name == '.' || *name == '/')
		name++;
	if (streq(c->tool, "initramfs-tools"))
		return strncmp(name, "cryptroot/keyfiles/", 19) == 0;
	snprintf(want, sizeof(want), "etc/cryptsetup-keys.d/luks-%s.key", c->luks.uuid);
	return streq(name, want);
}

/* k->initrd: the kernel's initramfs by Debian's name, else dracut's default; "" if neither. */
static int find_initrd(struct inspect_ctx *c, struct kernel *k)
{
	for (int t = 0; t < 2; t++) {
		uint64_t size;
		uint32_t mode;
		int r;

		snprintf(k->initrd, sizeof(k->initrd), t == 0 ? "/boot/initrd.img-%s" :
			 "/boot/initramfs-%s.img", k->version);
		r = cryptfs_stat(c->fs, k->initrd, &mode, &size);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		k->initrd_mode = mode;
		k->initrd_size = size;
		return 0;
	}
	k->initrd[0] = '\0';
	return 0;
}

/* The check "initramfs VERSION": found, not too large, 0600, readable as a cpio chain,
 * holding the key where the tool looks for it in 0600 members, and (initramfs-tools) its
 * crypttab naming this image's LUKS UUID. Returns -errno only for errors, not findings. */
static int check_kernel(struct inspect_ctx *c, struct kernel *k)
{
	_cleanup_free_ char *data = NULL;
	char name[128], sizebuf[32], crypttab[4096];
	size_t len = 0, good = 0, bad_mode = 0, bad_path = 0;
	struct initramfs_text text = {};
	bool wrong_uuid = false;
	int r;

	snprintf(name, sizeof(name), "initramfs %s", k->version);
	r = find_initrd(c, k);
	if (r < 0)
		return r;
	if (!k->initrd[0]) {
		checks_add(&c->checks, name, CHECK_FAIL, "no /boot/initrd.img-%s or "
			    "/boot/initramfs-%s.img", k->version, k->version);
		return 0;
	}
	if (k->initrd_size > INITRAMFS_SIZE_MAX) {
		checks_add(&c->checks, name, CHECK_FAIL, "%s is %s, larger than the %llu MiB "
			    "cvm-image reads", k->initrd,
			    format_size(k->initrd_size, sizebuf, sizeof(sizebuf)),
			    INITRAMFS_SIZE_MAX / MiB);
		return 0;
	}
	r = cryptfs_read_file(c->fs, k->initrd, &data, &len);
	if (r < 0)
		return r;
	note_file(c, k->initrd, k->initrd_mode, data, len);
	/* initramfs-tools' cryptroot opens what its crypttab names: this image's UUID.
	 * Read in the same pass as the key members. */
	text = (struct initramfs_text){ "cryptroot/crypttab", crypttab, sizeof(crypttab) };
	r = initramfs_scan(k->initrd, data, len, c->key.data, c->key.size, k->members,
			   MAX_KEY_MEMBERS, &k->n_members,
			   streq(c->tool, "initramfs-tools") ? &text : NULL);
	if (r < 0) {
		checks_add(&c->checks, name, CHECK_FAIL, "%s cannot be read as a chain of cpio archives",
			    k->initrd);
		return 0;
	}
	if (text.found) {
		char want[64];

		snprintf(want, sizeof(want), "UUID=%s", c->luks.uuid);
		wrong_uuid = !strstr(crypttab, want);
	}
	for (size_t m = 0; m < k->n_members; m++) {
		if (!k->members[m].holds_key)
			continue;
		good++;
		bad_mode += k->members[m].mode != 0600;
		bad_path += !expected_member(c, k->members[m].name);
	}
	if ((k->initrd_mode & 07777) != 0600)
		checks_add(&c->checks, name, CHECK_FAIL, "%s has mode %04o, not 0600 (it holds the "
			    "disk key)", k->initrd, k->initrd_mode & 07777);
	else if (good == 0)
		checks_add(&c->checks, name, CHECK_FAIL, "%s holds no copy of the key (%zu *.key "
			    "member%s): the initramfs would ask again", k->initrd, k->n_members,
			    k->n_members == 1 ? "" : "s");
	else if (bad_mode)
		checks_add(&c->checks, name, CHECK_FAIL, "%s: a key member is not mode 0600", k->initrd);
	else if (bad_path)
		checks_add(&c->checks, name, CHECK_FAIL, "%s: the key is not where %s looks for it",
			    k->initrd, *c->tool ? c->tool : "the initramfs tool");
	else if (wrong_uuid)
		checks_add(&c->checks, name, CHECK_FAIL, "%s: its cryptroot/crypttab does not open "
			    "UUID=%s, this image's LUKS volume: the initramfs would wait for "
			    "another disk", k->initrd, c->luks.uuid);
	else
		checks_add(&c->checks, name, CHECK_OK, "%s, mode 0600, %zu key member%s (mode 0600) "
			    "holding the key", k->initrd, good, good == 1 ? "" : "s");
	return 0;
}

static int check_kernels(struct inspect_ctx *c)
{
	char **names = NULL;
	int r;

	r = cryptfs_list(c->fs, "/boot", "vmlinuz-*", &names);
	if (r < 0)
		return r;
	for (size_t i = 0; names && names[i]; i++)
		c->n_kernels++;
	c->kernels = calloc(c->n_kernels ?: 1, sizeof(*c->kernels));
	if (!c->kernels)
		r = log_error_errno(ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < c->n_kernels; i++) {
		struct kernel *k = &c->kernels[i];

		snprintf(k->version, sizeof(k->version), "%s", names[i] + strlen("vmlinuz-"));
		r = check_kernel(c, k);
	}
	strv_free(names);
	if (r == 0 && c->n_kernels == 0)
		checks_add(&c->checks, "kernels", CHECK_FAIL, "no /boot/vmlinuz-*");
	return r;
}

/* The key in the clear anywhere on the ESP: every byte of the partition is read, so deleted
 * files and slack count too. */
static int check_esp_key(struct inspect_ctx *c)
{
	const struct gpt_part *p = &c->gpt.parts[c->esp_index];
	const size_t chunk = 4 * MiB, overlap = 4096;
	_cleanup_free_ unsigned char *buf = malloc(chunk + overlap);
	bool found = false;

	if (!buf)
		return log_error_errno(ENOMEM, "out of memory");
	for (uint64_t off = 0; off < p->size && !found; off += chunk) {
		size_t n = (size_t)MIN((uint64_t)chunk + overlap, p->size - off);
		ssize_t got = pread(c->im->fd, buf, n, (off_t)(p->start + off));

		if (got < 0)
			return log_error_errno(errno, "cannot read '%s': %m", c->im->path);
		found = memmem_secret(buf, (size_t)got, &c->key);
	}
	explicit_bzero(buf, chunk + overlap);
	if (found)
		checks_add(&c->checks, "esp-no-key", CHECK_FAIL, "the key is on the ESP, in the clear");
	else
		checks_add(&c->checks, "esp-no-key", CHECK_OK, "the key is nowhere on the ESP");
	return 0;
}

/* ---- the root filesystem, confined --------------------------------------------------- */

/*
 * What the confined child sends back: this header, then n_checks struct check, n_kernels
 * struct kernel (their member names after them, NAME_MAX + 1 bytes each, n_members in all),
 * n_files struct inspect_file, and the tree's key (read with the recovery passphrase, for
 * check_tree_key()). The same binary on both ends (a fork), so the records are the
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
		return a.r ?: check_tree_key(c);
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
	r = open_rootfs(c);
	if (r == 0 && c->have_fs) {
		r = check_key_file(c);
		if (r == 0)
			r = check_pin(c);
		if (r == 0)
			r = check_config(c);
		if (r == 0)
			r = check_kernels(c);
		if (r == 0)
			r = check_esp_key(c);
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

/* ---- output -------------------------------------------------------------------------- */

static void print_text(const struct inspect_ctx *c)
{
	for (size_t i = 0; i < c->checks.n; i++)
		printf("%-7s %-28s %s\n", state_names[c->checks.v[i].state], c->checks.v[i].name,
		       c->checks.v[i].detail);
}

static char *mode_text(char buf[8], unsigned mode)
{
	snprintf(buf, 8, "%04o", mode & 07777);
	return buf;
}

static int print_json(const struct inspect_ctx *c, bool passed)
{
	const struct gpt_table *t = &c->gpt;
	struct json_object *o = json_object_new_object(), *gpt = json_object_new_object();
	struct json_object *parts = json_object_new_array(), *esp = json_object_new_object();
	struct json_object *files = json_object_new_array(), *checks = json_object_new_array();
	char mode[8];

	json_add_str(o, "image", c->im ? c->im->path : c->opt->image);
	json_add_str(o, "format", c->im && c->im->qcow2 ? "qcow2" : "raw");
	json_add_u64(o, "size", c->im ? c->im->size : 0);
	json_add_bool(o, "passed", passed);
	json_add_str(gpt, "type", t->type);
	json_add_str(gpt, "uuid", t->ptuuid);
	for (unsigned i = 0; i < t->n; i++) {
		const struct gpt_part *p = &t->parts[i];
		struct json_object *e = json_object_new_object();

		json_add_u64(e, "number", p->number);
		json_add_u64(e, "start", p->start);
		json_add_u64(e, "size", p->size);
		json_add_str(e, "type", p->type_guid);
		json_add_str(e, "uuid", p->partuuid);
		json_add_str(e, "name", p->name);
		json_add_str(e, "fs_type", p->fs_type);
		json_add_str(e, "fs_uuid", p->fs_uuid);
		json_object_array_add(parts, e);
	}
	json_add(gpt, "partitions", parts);
	json_add(o, "gpt", gpt);
	for (size_t i = 0; c->esp_files && c->esp_files[i]; i++)
		json_object_array_add(files, json_str(c->esp_files[i]));
	json_add(esp, "files", files);
	json_add_str(esp, "grub_unlocks", c->grub_uuid);
	json_add(o, "esp", esp);
	if (c->have_luks) {
		const struct luks_desc *d = &c->luks;
		struct json_object *luks = json_object_new_object(), *slots = json_object_new_array();

		json_add_u64(luks, "version", d->version);
		json_add_str(luks, "cipher", d->cipher);
		json_add_str(luks, "mode", d->mode);
		json_add_str(luks, "hash", d->hash);
		json_add_str(luks, "uuid", d->uuid);
		json_add_u64(luks, "key_bits", d->key_bits);
		json_add_u64(luks, "payload_offset", d->payload_offset);
		for (int i = 0; i < 8; i++) {
			struct json_object *e;

			if (!d->slots[i].active)
				continue;
			e = json_object_new_object();
			json_add_int(e, "slot", i);
			json_add_u64(e, "iterations", d->slots[i].iterations);
			json_object_array_add(slots, e);
		}
		json_add(luks, "slots", slots);
		if (c->opt->key_file || c->opt->recovery_file)
			json_add_int(luks, "opened_slot", c->opened_slot);
		json_add(o, "luks", luks);
	}
	if (c->have_fs) {
		struct json_object *fs = json_object_new_object(), *kernels = json_object_new_array();

		json_add_str(fs, "uuid", c->fsinfo.uuid);
		json_add_str(fs, "label", c->fsinfo.label);
		json_add_str(fs, "initramfs_tool", c->tool);
		json_add_u64(fs, "size", c->fsinfo.blocks * c->fsinfo.block_size);
		json_add_u64(fs, "free", c->fsinfo.free_blocks * c->fsinfo.block_size);
		for (size_t i = 0; i < c->n_kernels; i++) {
			const struct kernel *k = &c->kernels[i];
			struct json_object *e = json_object_new_object(), *members = json_object_new_array();

			json_add_str(e, "version", k->version);
			json_add_str(e, "initramfs", k->initrd);
			json_add_str(e, "initramfs_mode", mode_text(mode, k->initrd_mode));
			for (size_t m = 0; m < k->n_members; m++) {
				struct json_object *km = json_object_new_object();

				json_add_str(km, "name", k->members[m].name);
				json_add_str(km, "mode", mode_text(mode, k->members[m].mode));
				json_add_bool(km, "holds_key", k->members[m].holds_key);
				json_object_array_add(members, km);
			}
			json_add(e, "key_members", members);
			json_object_array_add(kernels, e);
		}
		json_add(fs, "kernels", kernels);
		json_add(o, "rootfs", fs);
	}
	for (size_t i = 0; i < c->checks.n; i++) {
		struct json_object *e = json_object_new_object();

		json_add_str(e, "name", c->checks.v[i].name);
		json_add_str(e, "status", state_names[c->checks.v[i].state]);
		json_add_str(e, "detail", c->checks.v[i].detail);
		json_object_array_add(checks, e);
	}
	json_add(o, "checks", checks);
	return json_print(o, stdout);
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
		r = print_json(&c, failed == 0);
		if (r < 0) {
			log_error_errno(r, "cannot write the --json report: %m");
			goto out;
		}
	} else
		print_text(&c);
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
