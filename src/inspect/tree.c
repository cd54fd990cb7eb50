/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inspect: the root filesystem's checks (key file, pin, crypttab and initramfs settings, grub,
 * every kernel's initramfs), run in the confined child on an unlocked image. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/sha.h>

#include "context.h"
#include "common/log.h"
#include "image/cryptfs.h"
#include "image/gpt.h"
#include "image/grub.h"
#include "image/image.h"
#include "image/luks.h"
#include "initramfs/initramfs.h"
#include "shared/cleanup.h"
#include "shared/strv.h"
#include "shared/util.h"

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

int inspect_open_rootfs(struct inspect_ctx *c)
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

int inspect_check_key_file(struct inspect_ctx *c)
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
	 * confined reader cannot open): inspect_check_tree_key(). */
	c->key = tree;
	c->tree_key_mode = mode;
	c->tree_key_check = c->checks.n;
	checks_add(&c->checks, "key-file", CHECK_OK, "%s", path);
	return 0;
}

/* In the parent, after the confined reader: the tree's key file tried against the slots. */
int inspect_check_tree_key(struct inspect_ctx *c)
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

int inspect_check_pin(struct inspect_ctx *c)
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

int inspect_check_config(struct inspect_ctx *c)
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

int inspect_check_kernels(struct inspect_ctx *c)
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
int inspect_check_esp_key(struct inspect_ctx *c)
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

