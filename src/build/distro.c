/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Distro definitions: distro/<id>/distro.conf, detection from os-release, requirements. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distro.h"
#include "common/log.h"
#include "shared/cleanup.h"
#include "shared/envfile.h"
#include "shared/strv.h"
#include "shared/util.h"

#define INHERIT_MAX 8

const char *cvm_datadir(void)
{
	static char exe_dir[PATH_MAX], build_dir[PATH_MAX];
	const char *env = getenv("CVM_IMAGE_DATADIR");
	ssize_t n;

	if (env && *env)
		return env;
	/* An uninstalled binary (run from its build directory) uses its source tree. */
	n = readlink("/proc/self/exe", exe_dir, sizeof(exe_dir) - 1);
	if (n > 0) {
		char *slash;

		exe_dir[n] = '\0';
		slash = strrchr(exe_dir, '/');
		if (slash)
			*slash = '\0';
		/* /proc/self/exe is resolved: resolve the build directory too. */
		if (realpath(CVM_BUILDDIR, build_dir) && streq(exe_dir, build_dir))
			return CVM_SRCDIR;
	}
	return CVM_PKGDATADIR;
}

static char **split_words(const char *s, size_t *n)
{
	_cleanup_free_ char *copy = strdup(s ? s : "");
	char **v = NULL, *save = NULL;

	*n = 0;
	if (!copy)
		return NULL;
	v = calloc(strlen(copy) / 2 + 2, sizeof(char *));
	if (!v)
		return NULL;
	for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
		v[(*n)++] = strdup(w);
	return v;
}

static void free_words(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void distro_free(struct distro *d)
{
	if (!d)
		return;
	distro_free(d->parent);
	free(d->id);
	free(d->dir);
	free_words(d->match, d->n_match);
	free(d->initramfs);
	free_words(d->requires, d->n_requires);
	free(d->grub_dir);
	free(d->grub_tool_prefix);
	envfile_done(&d->conf);
	free(d);
}

static bool valid_id(const char *id)
{
	if (!*id || *id == '.' || streq(id, "common") || streq(id, "initramfs"))
		return false;
	for (const char *p = id; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789._-", *p))
			return false;
	return true;
}

static char *dup_or_inherit(const char *v, const char *parent, const char *dflt)
{
	return strdup(v ? v : parent ? parent : dflt);
}

static int load_depth(const char *id, unsigned depth, struct distro **ret)
{
	_cleanup_(distro_freep) struct distro *d = NULL;
	_cleanup_free_ char *dir = NULL, *conf = NULL;
	struct envfile e = {};
	const char *v, *inherit;
	unsigned line = 0;
	int r;

	if (!valid_id(id))
		return log_error_errno(EINVAL, "invalid distro id '%s'", id);
	if (depth > INHERIT_MAX)
		return log_error_errno(ELOOP, "distro '%s': INHERIT chain too long", id);
	dir = strdupf("%s/distro/%s", cvm_datadir(), id);
	conf = strdupf("%s/distro.conf", dir);
	if (!dir || !conf)
		return log_error_errno(ENOMEM, "out of memory");
	r = envfile_load(conf, &e, &line);
	if (r == -ENOENT)
		return log_error_errno(r, "unknown distro '%s' (no '%s')", id, conf);
	if (r == -EINVAL)
		return log_error_errno(r, "'%s' line %u: not os-release syntax", conf, line);
	if (r < 0)
		return log_error_errno(r, "cannot read '%s': %m", conf);

	d = calloc(1, sizeof(*d));
	if (!d) {
		envfile_done(&e);
		return log_error_errno(ENOMEM, "out of memory");
	}
	inherit = envfile_get(&e, "INHERIT");
	if (inherit && *inherit) {
		r = load_depth(inherit, depth + 1, &d->parent);
		if (r < 0) {
			envfile_done(&e);
			return r;
		}
	}
	d->id = strdup(id);
	d->dir = TAKE_PTR(dir);
	d->match = split_words(envfile_get(&e, "MATCH") ?: id, &d->n_match);
	d->initramfs = dup_or_inherit(envfile_get(&e, "INITRAMFS"),
				      d->parent ? d->parent->initramfs : NULL, "auto");
	d->grub_dir = dup_or_inherit(envfile_get(&e, "GRUB_DIR"),
				     d->parent ? d->parent->grub_dir : NULL, "/boot/grub");
	d->grub_tool_prefix = dup_or_inherit(envfile_get(&e, "GRUB_TOOL_PREFIX"),
					     d->parent ? d->parent->grub_tool_prefix : NULL, "grub");
	v = envfile_get(&e, "REQUIRES");
	if (!v && d->parent) {
		d->requires = calloc(d->parent->n_requires + 1, sizeof(char *));
		for (size_t i = 0; d->requires && i < d->parent->n_requires; i++)
			d->requires[d->n_requires++] = strdup(d->parent->requires[i]);
	} else {
		d->requires = split_words(v, &d->n_requires);
	}
	d->conf = e; /* for the keys read later (REQUIRES_<TOOL>) */
	e = (struct envfile){};
	if (!d->id || !d->match || !d->initramfs || !d->grub_dir || !d->grub_tool_prefix ||
	    !d->requires)
		return log_error_errno(ENOMEM, "out of memory");
	*ret = TAKE_PTR(d);
	return 0;
}

int distro_load(const char *id, struct distro **ret)
{
	return load_depth(id, 0, ret);
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **distro_list(void)
{
	_cleanup_free_ char *path = strdupf("%s/distro", cvm_datadir());
	DIR *dir = path ? opendir(path) : NULL;
	struct dirent *de;
	char **v = NULL;
	size_t n = 0;

	if (!dir)
		return calloc(1, sizeof(char *));
	while ((de = readdir(dir))) {
		_cleanup_free_ char *conf = strdupf("%s/%s/distro.conf", path, de->d_name);
		char **nv;

		if (!valid_id(de->d_name) || !conf || access(conf, R_OK) < 0)
			continue;
		nv = realloc(v, (n + 2) * sizeof(char *));
		if (!nv)
			break;
		v = nv;
		v[n++] = strdup(de->d_name);
		v[n] = NULL;
	}
	closedir(dir);
	if (!v)
		return calloc(1, sizeof(char *));
	qsort(v, n, sizeof(char *), cmp_strp);
	return v;
}


/* The distro whose MATCH contains word, or NULL. */
static int find_match(char **ids, const char *word, struct distro **ret)
{
	for (size_t i = 0; ids[i]; i++) {
		struct distro *d = NULL;
		int r = distro_load(ids[i], &d);

		if (r < 0)
			return r;
		for (size_t j = 0; j < d->n_match; j++)
			if (streq(d->match[j], word)) {
				*ret = d;
				return 1;
			}
		distro_free(d);
	}
	return 0;
}

int distro_detect(const char *os_release, struct distro **ret)
{
	struct envfile e = {};
	char **ids = distro_list();
	const char *id, *like;
	unsigned line = 0;
	size_t n = 0;
	char **words = NULL;
	int r;

	if (!ids)
		return log_error_errno(ENOMEM, "out of memory");
	r = envfile_parse(os_release, &e, &line);
	if (r < 0) {
		strv_free(ids);
		return log_error_errno(r, "the rootfs's os-release, line %u: not os-release syntax",
				       line);
	}
	id = envfile_get(&e, "ID") ?: "linux";
	like = envfile_get(&e, "ID_LIKE");
	r = find_match(ids, id, ret);
	if (r == 0 && like) {
		words = split_words(like, &n);
		for (size_t i = 0; r == 0 && words && i < n; i++)
			r = find_match(ids, words[i], ret);
		free_words(words, n);
	}
	if (r == 0) {
		char known[512] = "";

		for (size_t i = 0; ids[i]; i++) {
			strncat(known, i ? ", " : "", sizeof(known) - strlen(known) - 1);
			strncat(known, ids[i], sizeof(known) - strlen(known) - 1);
		}
		r = log_error_errno(ENOENT,
				    "no distro definition matches the rootfs (ID=%s%s%s): give --distro "
				    "ID (one of: %s), or --distro none for a disk that does not boot",
				    id, like ? ", ID_LIKE=" : "", like ? like : "", known);
	}
	envfile_done(&e);
	strv_free(ids);
	return r < 0 ? r : 0;
}

static int tool_conf(const char *tool, struct envfile *ret)
{
	_cleanup_free_ char *conf = strdupf("%s/distro/initramfs/%s/tool.conf", cvm_datadir(), tool);
	unsigned line = 0;
	int r;

	if (!conf)
		return log_error_errno(ENOMEM, "out of memory");
	r = envfile_load(conf, ret, &line);
	if (r == -ENOENT)
		return log_error_errno(r, "unknown initramfs tool '%s' (no '%s')", tool, conf);
	if (r < 0)
		return log_error_errno(r, "cannot read '%s' (line %u): %m", conf, line);
	return 0;
}

int distro_initramfs_tool(const struct distro *d, const struct rootfs_index *idx, char **ret)
{
	_cleanup_free_ char *dir = NULL;
	struct dirent **names = NULL;
	int n, r = 0;

	if (!streq(d->initramfs, "auto")) {
		*ret = strdup(d->initramfs);
		return *ret ? 0 : log_error_errno(ENOMEM, "out of memory");
	}
	dir = strdupf("%s/distro/initramfs", cvm_datadir());
	if (!dir)
		return log_error_errno(ENOMEM, "out of memory");
	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0)
		return log_error_errno(errno, "cannot read '%s': %m", dir);
	*ret = NULL;
	for (int i = 0; i < n; i++) {
		struct envfile e = {};
		const char *detect;

		if (names[i]->d_name[0] != '.' && !*ret && tool_conf(names[i]->d_name, &e) == 0) {
			detect = envfile_get(&e, "DETECT");
			if (detect && rootfs_index_find(idx, detect))
				*ret = strdup(names[i]->d_name);
			envfile_done(&e);
		}
		free(names[i]);
	}
	free(names);
	if (!*ret)
		r = log_error_errno(ENOENT,
				    "distro '%s': the rootfs has no initramfs tool: install "
				    "initramfs-tools (with cryptsetup-initramfs) or dracut in the rootfs",
				    d->id);
	return r;
}

static int check_list(char **reqs, size_t n, const char *who, const struct rootfs_index *idx)
{
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *glob = strdup(reqs[i]);
		char *pkg;

		if (!glob)
			return log_error_errno(ENOMEM, "out of memory");
		pkg = strrchr(glob, ':');
		if (pkg)
			*pkg++ = '\0';
		if (rootfs_index_find(idx, glob))
			continue;
		r = log_error_errno(ENOENT, "the rootfs has no '/%s' (needed by %s): install %s%s%s in the rootfs",
				    glob[0] == '/' ? glob + 1 : glob, who, pkg ? "'" : "the package that provides it",
				    pkg ? pkg : "", pkg ? "'" : "");
	}
	return r;
}

/* REQUIRES_<TOOL>_<N> (N: os-release VERSION_ID up to its first dot) or REQUIRES_<TOOL> of the
 * distro or, where it sets neither, of what it inherits: what a release's packaging needs
 * for that tool to unlock the root (Debian 13's dracut needs systemd-cryptsetup, which
 * Debian 12's systemd still contains). NULL with none; *ret_who names the definition. */
static int tool_requires(const struct distro *d, const char *tool, const char *os_release,
			 char **ret, char **ret_who)
{
	_cleanup_free_ char *key = strdupf("REQUIRES_%s", tool), *vkey = NULL, *version = NULL;
	struct envfile osr = {};
	unsigned line;

	*ret = *ret_who = NULL;
	if (!key)
		return log_error_errno(ENOMEM, "out of memory");
	for (char *p = key; *p; p++)
		*p = *p == '-' || *p == '.' ? '_' : (char)toupper((unsigned char)*p);
	if (os_release && envfile_parse(os_release, &osr, &line) == 0 &&
	    envfile_get(&osr, "VERSION_ID")) {
		version = strndup(envfile_get(&osr, "VERSION_ID"),
				  strcspn(envfile_get(&osr, "VERSION_ID"), "."));
		if (!version) {
			envfile_done(&osr);
			return log_error_errno(ENOMEM, "out of memory");
		}
	}
	envfile_done(&osr);
	if (version && *version) {
		vkey = strdupf("%s_%s", key, version);
		if (!vkey)
			return log_error_errno(ENOMEM, "out of memory");
	}
	for (const struct distro *top = d; d; d = d->parent) {
		const char *v = vkey ? envfile_get(&d->conf, vkey) : NULL;

		if (!v)
			v = envfile_get(&d->conf, key);
		if (!v)
			continue;
		*ret = strdup(v);
		*ret_who = strdupf("%s on distro '%s'%s%s", tool, top->id, vkey ? " " : "",
				   vkey ? version : "");
		return *ret && *ret_who ? 0 : log_error_errno(ENOMEM, "out of memory");
	}
	return 0;
}

/* The GLOB:PACKAGE words of one list checked; -ENOENT if any is missing. */
static int check_words(const char *words, const char *who, const struct rootfs_index *idx)
{
	size_t n = 0;
	char **v = split_words(words, &n);
	int r;

	if (!v)
		return log_error_errno(ENOMEM, "out of memory");
	r = check_list(v, n, who, idx);
	free_words(v, n);
	return r;
}

int distro_check_requires(const struct distro *d, const char *tool,
			  const struct rootfs_index *idx)
{
	_cleanup_free_ char *dwho = strdupf("distro '%s'", d->id), *twho = strdupf("%s", tool);
	_cleanup_free_ char *dtreq = NULL, *dtwho = NULL;
	struct envfile e = {};
	int r, r2;

	if (!dwho || !twho)
		return log_error_errno(ENOMEM, "out of memory");
	r = check_list(d->requires, d->n_requires, dwho, idx);
	r2 = tool_conf(tool, &e);
	if (r2 < 0)
		return r2;
	r2 = check_words(envfile_get(&e, "REQUIRES"), twho, idx);
	envfile_done(&e);
	if (r2 == -ENOMEM)
		return r2;
	if (r2 < 0 && r == 0)
		r = r2;
	r2 = tool_requires(d, tool, idx->os_release, &dtreq, &dtwho);
	if (r2 == 0 && dtreq)
		r2 = check_words(dtreq, dtwho, idx);
	if (r2 == -ENOMEM)
		return r2;
	return r < 0 ? r : r2;
}
