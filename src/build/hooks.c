/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hook resolution: hooks/<phase>/NN-name from the shared, tool, distro and site directories. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hooks.h"
#include "common/log.h"
#include "shared/cleanup.h"
#include "shared/util.h"

const char *const hook_phases[] = { "configure", "initramfs", "bootloader", "finalize", NULL };

void hook_set_done(struct hook_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->hooks[i].name);
		free(s->hooks[i].path);
		free(s->hooks[i].overridden);
	}
	free(s->hooks);
	for (size_t i = 0; i < s->n_dirs; i++)
		free(s->dirs[i]);
	free(s->dirs);
	memset(s, 0, sizeof(*s));
}

/* Names as in run-parts(8): letters, digits, '_' and '-' (and '.' not first), so that
 * editor backups and package manager leftovers are ignored. */
static bool hook_name_ok(const char *n)
{
	if (!*n || *n == '.')
		return false;
	for (const char *p = n; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", *p))
			return false;
	return !str_ends_with(n, "~") && !strstr(n, ".dpkg-") && !strstr(n, ".rpm");
}

static int add_dir(struct hook_set *s, const char *dir)
{
	char **v = realloc(s->dirs, (s->n_dirs + 1) * sizeof(char *));

	if (!v)
		return -ENOMEM;
	s->dirs = v;
	s->dirs[s->n_dirs] = strdup(dir);
	return s->dirs[s->n_dirs++] ? 0 : -ENOMEM;
}

static int merge_dir(struct hook_set *s, const char *dir)
{
	for (size_t p = 0; hook_phases[p]; p++) {
		_cleanup_free_ char *pdir = strdupf("%s/hooks/%s", dir, hook_phases[p]);
		struct dirent **names = NULL;
		int n, r = 0;

		if (!pdir)
			return log_error_errno(ENOMEM, "out of memory");
		n = scandir(pdir, &names, NULL, alphasort);
		if (n < 0) {
			if (errno == ENOENT)
				continue;
			return log_error_errno(errno, "cannot read hook directory '%s': %m", pdir);
		}
		for (int i = 0; i < n; i++) {
			const char *name = names[i]->d_name;
			_cleanup_free_ char *path = NULL;
			struct hook *h = NULL;
			struct stat st;

			if (r < 0 || !hook_name_ok(name))
				goto next;
			path = strdupf("%s/%s", pdir, name);
			if (!path || stat(path, &st) < 0) {
				r = log_error_errno(path ? errno : ENOMEM, "hook '%s': %m", path);
				goto next;
			}
			if (!S_ISREG(st.st_mode))
				goto next;
			if (st.st_size > 0 && !(st.st_mode & 0111)) {
				r = log_error_errno(EPERM, "hook '%s' is not executable (chmod +x it, or "
							   "make it empty to mask a hook of that name)", path);
				goto next;
			}
			for (size_t k = 0; k < s->n; k++)
				if (s->hooks[k].phase == hook_phases[p] && streq(s->hooks[k].name, name))
					h = &s->hooks[k];
			if (h) {
				free(h->overridden);
				h->overridden = h->path;
			} else {
				struct hook *v = realloc(s->hooks, (s->n + 1) * sizeof(*v));

				if (!v) {
					r = log_error_errno(ENOMEM, "out of memory");
					goto next;
				}
				s->hooks = v;
				h = &s->hooks[s->n++];
				*h = (struct hook){ .phase = hook_phases[p], .name = strdup(name) };
			}
			h->path = TAKE_PTR(path);
			h->masked = st.st_size == 0;
		next:
			free(names[i]);
		}
		free(names);
		if (r < 0)
			return r;
	}
	return 0;
}

static int phase_index(const char *phase)
{
	for (int i = 0; hook_phases[i]; i++)
		if (hook_phases[i] == phase)
			return i;
	return -1;
}

static int cmp_hook(const void *a, const void *b)
{
	const struct hook *x = a, *y = b;
	int d = phase_index(x->phase) - phase_index(y->phase);

	return d ? d : strcmp(x->name, y->name);
}

int hooks_resolve(const struct distro *d, const char *tool, char *const site_dirs[],
		  struct hook_set *ret)
{
	struct hook_set s = {};
	const struct distro *chain[16];
	size_t n_chain = 0;
	_cleanup_free_ char *common = strdupf("%s/distro/common", cvm_datadir());
	_cleanup_free_ char *tooldir = strdupf("%s/distro/initramfs/%s", cvm_datadir(), tool);
	int r;

	if (!common || !tooldir)
		return log_error_errno(ENOMEM, "out of memory");
	for (const struct distro *p = d; p && n_chain < ELEMENTSOF(chain); p = p->parent)
		chain[n_chain++] = p;

	r = add_dir(&s, common);
	if (r == 0)
		r = add_dir(&s, tooldir);
	for (size_t i = n_chain; r == 0 && i > 0; i--)
		r = add_dir(&s, chain[i - 1]->dir);
	for (size_t i = 0; r == 0 && site_dirs && site_dirs[i]; i++) {
		struct stat st;
		int e = stat(site_dirs[i], &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;

		if (e) {
			hook_set_done(&s);
			return log_error_errno(e, "hooks directory '%s': %m", site_dirs[i]);
		}
		r = add_dir(&s, site_dirs[i]);
	}
	if (r < 0) {
		hook_set_done(&s);
		return log_error_errno(r, "out of memory");
	}
	for (size_t i = 0; i < s.n_dirs; i++) {
		r = merge_dir(&s, s.dirs[i]);
		if (r < 0) {
			hook_set_done(&s);
			return r;
		}
	}
	qsort(s.hooks, s.n, sizeof(*s.hooks), cmp_hook);
	*ret = s;
	return 0;
}
