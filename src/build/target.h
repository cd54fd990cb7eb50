/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Files cvm-image itself writes into the unpacked target root: the key file, fstab, hostname,
 * root password, SSH keys. Every path is resolved inside the root (openat2 RESOLVE_IN_ROOT on
 * the host, the daemon's chrooted realpath in the appliance), so a symlink in the tarball can
 * never send a write to the build host. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/cleanup.h"

struct appliance;

/* The target root: a directory of the host (the bubblewrap route) or the filesystem mounted
 * in the appliance (vm != NULL). */
struct target {
	int rootfd;
	struct appliance *vm;
};

/* The rules for what cvm-image reads and replaces in the target, on the host and in the
 * appliance alike: it reads a regular file of at most max bytes, and replaces a regular file
 * or a symlink, nothing else. Each returns 0, or logs the refusal and returns -EPERM/-EFBIG. */
int target_check_read(const char *path, mode_t mode, uint64_t size, size_t max);
int target_check_replace(const char *path, mode_t mode);

/* target_write_file() and target_read_file_max() on either kind of target. */
int target_put(const struct target *t, const char *path, const void *data, size_t len, mode_t mode);
int target_get(const struct target *t, const char *path, size_t max, char **ret, size_t *ret_len,
	       mode_t *ret_mode);

/* The calls on a directory of the host, below (also for the hooks' run directory). */

/* Open a path of the target (absolute or relative) as if the root were '/'. -errno. */
int target_open(int rootfd, const char *path, int flags, mode_t mode);

/* The same, but no component may be a symlink (RESOLVE_NO_SYMLINKS): -ELOOP if one is. */
int target_open_nofollow(int rootfd, const char *path, int flags, mode_t mode);

/* mkdir -p inside the target; the last component gets mode. -errno. */
int target_mkdir_p(int rootfd, const char *path, mode_t mode);

/* Replace a file of the target atomically (temporary name, rename). A symlink there is
 * replaced, never followed; a FIFO, device, socket or directory is refused. Logs. */
int target_write_file(int rootfd, const char *path, const void *data, size_t len, mode_t mode);

/* Read a regular file of the target (at most 16 MiB) into a NUL-terminated buffer. Returns
 * -ENOENT, not logged, if it is absent; refuses (and logs) anything but a regular file. */
int target_read_file(int rootfd, const char *path, char **ret, size_t *ret_len);

/* The same, at most max bytes, and its mode (ret_mode may be NULL). */
int target_read_file_max(int rootfd, const char *path, size_t max, char **ret, size_t *ret_len,
			 mode_t *ret_mode);

/* /etc/cryptsetup-keys.d/luks-<uuid>.key (0600, directory 0700). Returns the path. Logs. */
int target_write_key_file(const struct target *t, const char *luks_uuid, const struct secret *key,
			  char **ret_path);

/* /etc/fstab with libmount's table API: root by filesystem UUID, the ESP at /boot/efi; the
 * tarball's other entries and comments kept. Logs. */
int target_write_fstab(const struct target *t, const char *fs_uuid, const char *esp_volume_id);

int target_set_hostname(const struct target *t, const char *hostname);
/* Hash (SHA-512 crypt) into /etc/shadow's root entry. Logs. */
int target_set_root_password(const struct target *t, const struct secret *password);
/* /root/.ssh/authorized_keys (0600, directory 0700). Logs. */
int target_set_ssh_keys(const struct target *t, const char *src_path);

/* Kernel versions from /boot/vmlinuz-*, newest first, NULL-terminated. Logs. */
int target_kernel_versions(const struct target *t, char ***ret);

/* True for a hostname of letters, digits and '-', dot-separated labels, at most 64. */
int hostname_valid(const char *s);
