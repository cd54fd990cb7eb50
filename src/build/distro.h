/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Distro definitions: distro/<id>/distro.conf, detection from os-release, requirements. */
#pragma once

#include <stddef.h>

#include "tarball.h"
#include "shared/envfile.h"

#define DISTRO_NONE "none" /* --distro none: an encrypted disk without boot configuration */

struct distro {
	char *id;
	char *dir;
	char **match;
	size_t n_match;
	char *initramfs;        /* "initramfs-tools", "dracut", ..., or "auto" */
	char **requires;        /* "GLOB:PACKAGE" */
	size_t n_requires;
	char *grub_dir;         /* "/boot/grub" */
	char *grub_tool_prefix; /* "grub" or "grub2" */
	struct distro *parent;  /* INHERIT */
	struct envfile conf;    /* distro.conf, parsed */
};

/* Where distro/ and templates/ are: $CVM_IMAGE_DATADIR, the source tree for an uninstalled
 * binary, or the installed package data directory. */
const char *cvm_datadir(void);

/* Load distro/<id>/distro.conf and its INHERIT chain. Logs. */
int distro_load(const char *id, struct distro **ret);
/* The distro whose MATCH names os-release's ID, else the first ID_LIKE word it names. Logs. */
int distro_detect(const char *os_release, struct distro **ret);
void distro_free(struct distro *d);
static inline void distro_freep(struct distro **d)
{
	if (*d)
		distro_free(*d);
}

/* The initramfs tool: the distro's INITRAMFS, or with "auto" the tool whose DETECT path is in
 * the rootfs (distro/initramfs/<tool>/tool.conf). Logs what to install if none. */
int distro_initramfs_tool(const struct distro *d, const struct rootfs_index *idx, char **ret);

/* Every REQUIRES of the distro and of the tool, checked against the tarball's index. Logs
 * each missing piece with the package to install in the rootfs; -ENOENT if any. */
int distro_check_requires(const struct distro *d, const char *tool,
			  const struct rootfs_index *idx);

/* The ids of all distro definitions, for messages and 'hooks list'. NULL-terminated. */
char **distro_list(void);
