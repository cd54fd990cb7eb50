/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hook runner (hookrun.h): files in, environment, one sandbox per hook, warnings out. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hookrun.h"
#include "target.h"
#include "common/log.h"
#include "image/grub.h"
#include "shared/cleanup.h"
#include "shared/spawn.h"
#include "shared/strv.h"
#include "shared/util.h"

/* Copy a file of the host below dirfd, resolved inside it. */
static int copy_into(int dirfd, const char *src, const char *dest, mode_t mode)
{
	_cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return log_error_errno(errno, "cannot read '%s': %m", src);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return log_error_errno(ENOMEM, "out of memory");
	if (st.st_size > 0 && pread_all(fd, buf, (size_t)st.st_size, 0) < 0)
		return log_error_errno(errno, "cannot read '%s': %m", src);
	return target_write_file(dirfd, dest, buf, (size_t)st.st_size, mode);
}

/* The hooks, the hook library and the templates, in the work directory's run/: the sandbox
 * sees it as SANDBOX_RUNDIR. Paths below are relative to that directory. */
static int install_hook_files(struct hook_runner *hr)
{
	_cleanup_free_ char *lib = strdupf("%s/distro/lib/cvm-hooks.sh", cvm_datadir());
	_cleanup_free_ char *tdir = strdupf("%s/templates", cvm_datadir());
	struct dirent **names = NULL;
	int n, r;

	if (!lib || !tdir)
		return log_error_errno(ENOMEM, "out of memory");
	for (size_t p = 0; hook_phases[p]; p++) {
		_cleanup_free_ char *d = strdupf("/hooks/%s", hook_phases[p]);

		r = d ? target_mkdir_p(hr->rundirfd, d, 0700) : -ENOMEM;
		if (r < 0)
			return log_error_errno(r, "cannot create '%s%s': %m", hr->rundir, d);
	}
	r = target_mkdir_p(hr->rundirfd, "/templates", 0700);
	if (r == 0)
		r = target_mkdir_p(hr->rundirfd, "/state/cmdline.d", 0700);
	if (r < 0)
		return log_error_errno(r, "cannot create the hooks' directories in '%s': %m", hr->rundir);
	r = copy_into(hr->rundirfd, lib, "/lib.sh", 0600);
	if (r < 0)
		return r;
	for (size_t i = 0; i < hr->hooks->n; i++) {
		const struct hook *h = &hr->hooks->hooks[i];
		_cleanup_free_ char *dest = strdupf("/hooks/%s/%s", h->phase, h->name);

		if (h->masked)
			continue;
		if (!dest)
			return log_error_errno(ENOMEM, "out of memory");
		r = copy_into(hr->rundirfd, h->path, dest, 0700);
		if (r < 0)
			return r;
	}
	n = scandir(tdir, &names, NULL, alphasort);
	if (n < 0)
		return log_error_errno(errno, "cannot read '%s': %m", tdir);
	r = 0;
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *src = strdupf("%s/%s", tdir, names[i]->d_name);
		_cleanup_free_ char *dest = strdupf("/templates/%s", names[i]->d_name);
		struct stat st;

		if (r == 0 && src && dest && names[i]->d_name[0] != '.' && stat(src, &st) == 0 &&
		    S_ISREG(st.st_mode))
			r = copy_into(hr->rundirfd, src, dest, 0600);
		free(names[i]);
	}
	free(names);
	return r;
}

/* The grub lock the bootloader hook puts in grub.cfg ($CVM_STATE/grub-lock.cfg: the
 * --grub-password-file password, or none) and in the ESP's early config
 * ($CVM_STATE/grub-lock-early.cfg: always none, so that nothing on the unencrypted ESP helps
 * a guess). Files, not variables: hooks' environments are visible to the target's tools. */
static int write_grub_locks(struct hook_runner *hr, const struct secret *password)
{
	static const char *const names[] = { "/state/grub-lock.cfg", "/state/grub-lock-early.cfg" };
	int r = 0;

	for (size_t i = 0; i < ELEMENTSOF(names) && r == 0; i++) {
		_cleanup_free_ char *text = NULL;

		r = grub_lock_config(i == 0 ? password : NULL, &text);
		if (r == 0)
			r = target_write_file(hr->rundirfd, names[i], text, strlen(text), 0600);
	}
	return r;
}

/* What every hook gets: the documented CVM_* variables (cvm-image-hooks(7)), nothing of ours. */
static int make_hook_env(struct hook_runner *hr, const struct hook_values *v)
{
	_cleanup_free_ char *kernels = NULL;
	size_t n = 0, len = 0;
	char **env = NULL;
	int r = 0;

	for (size_t i = 0; v->kernels[i]; i++)
		len += strlen(v->kernels[i]) + 1;
	kernels = calloc(1, len + 1);
	if (!kernels)
		return log_error_errno(ENOMEM, "out of memory");
	for (size_t i = 0; v->kernels[i]; i++) {
		strcat(kernels, i ? " " : "");
		strcat(kernels, v->kernels[i]);
	}
	r = r ?: strv_push(&env, &n, strdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
	r = r ?: strv_push(&env, &n, strdup("HOME=/root"));
	r = r ?: strv_push(&env, &n, strdup("LC_ALL=C"));
	r = r ?: strv_push(&env, &n, strdup("TMPDIR=/tmp"));
	r = r ?: strv_push(&env, &n, strdupf("CVM_DISTRO=%s", v->distro));
	r = r ?: strv_push(&env, &n, strdupf("CVM_INITRAMFS=%s", v->initramfs_tool));
	r = r ?: strv_push(&env, &n, strdupf("CVM_LUKS_UUID=%s", v->luks_uuid));
	r = r ?: strv_push(&env, &n, strdupf("CVM_MAPPER_NAME=%s", v->mapper_name));
	r = r ?: strv_push(&env, &n, strdupf("CVM_KEY_FILE=%s", v->key_file));
	r = r ?: strv_push(&env, &n, strdupf("CVM_ESP_UUID=%s", v->esp_uuid));
	r = r ?: strv_push(&env, &n, strdupf("CVM_ROOT_FS_UUID=%s", v->root_fs_uuid));
	r = r ?: strv_push(&env, &n, strdupf("CVM_KERNEL_VERSIONS=%s", kernels));
	r = r ?: strv_push(&env, &n, strdupf("CVM_KERNEL_CMDLINE=%s", v->cmdline));
	r = r ?: strv_push(&env, &n, strdupf("CVM_EXTRA_CMDLINE=%s", v->extra_cmdline));
	r = r ?: strv_push(&env, &n, strdupf("CVM_SERIAL_CONSOLE=%d", v->serial_console));
	r = r ?: strv_push(&env, &n, strdupf("CVM_GRUB_DIR=%s", v->grub_dir));
	r = r ?: strv_push(&env, &n, strdupf("CVM_GRUB_TOOL_PREFIX=%s", v->grub_tool_prefix));
	r = r ?: strv_push(&env, &n, strdup("CVM_ESP_DIR=/boot/efi"));
	r = r ?: strv_push(&env, &n, strdup("CVM_LIB=" SANDBOX_RUNDIR "/lib.sh"));
	r = r ?: strv_push(&env, &n, strdup("CVM_TEMPLATES=" SANDBOX_RUNDIR "/templates"));
	r = r ?: strv_push(&env, &n, strdup("CVM_STATE=" SANDBOX_RUNDIR "/state"));
	r = r ?: strv_push(&env, &n, strdup("CVM_PHASE=")); /* set per phase: keep last */
	if (r < 0) {
		strv_free(env);
		return log_error_errno(r, "out of memory");
	}
	hr->env = env;
	return 0;
}

/*
 * A hook that leaves the image working but less than it should be (cvm-image-hooks(7): a lock
 * that the guest's own tools will drop, say) writes one line per warning to
 * $CVM_STATE/warnings. They are printed after the hook as warnings, in --json too. The file is
 * the target's to write, so it is read with a bound and its control characters replaced.
 */
static int take_hook_warnings(struct hook_runner *hr, const struct hook *h)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	r = sandbox_take_file(&hr->sandbox, "state/warnings", 64 * 1024, &text, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (char *line = text, *next; line && line < text + len; line = next) {
		next = memchr(line, '\n', (size_t)(text + len - line));
		if (next)
			*next++ = '\0';
		for (char *p = line; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		if (!*line)
			continue;
		log_warning("hook %s/%s: %s", h->phase, h->name, line);
		r = strv_push(&hr->warnings, &hr->n_warnings, strdup(line));
		if (r < 0)
			return log_error_errno(r, "out of memory");
	}
	return 0;
}

int hook_runner_phase(struct hook_runner *hr, const char *phase)
{
	size_t last = 0;
	int r;

	while (hr->env[last + 1])
		last++;
	free(hr->env[last]);
	hr->env[last] = strdupf("CVM_PHASE=%s", phase);
	if (!hr->env[last])
		return log_error_errno(ENOMEM, "out of memory");

	for (size_t i = 0; i < hr->hooks->n; i++) {
		const struct hook *h = &hr->hooks->hooks[i];
		_cleanup_free_ char *path = NULL, *what = NULL, *output = NULL;
		int status;

		if (!streq(h->phase, phase))
			continue;
		if (h->masked) {
			log_info("hook %s/%s: masked by '%s'", phase, h->name, h->path);
			continue;
		}
		path = strdupf(SANDBOX_RUNDIR "/hooks/%s/%s", phase, h->name);
		what = strdupf("hook %s/%s", phase, h->name);
		if (!path || !what)
			return log_error_errno(ENOMEM, "out of memory");
		char *argv[] = { path, NULL };
		double t = now_seconds();

		log_info("hook %s/%s (%s)", phase, h->name, h->path);
		r = sandbox_run(&hr->sandbox, what, argv, hr->env, &status, &output);
		if (r < 0)
			return r;
		hr->n_run++;
		r = take_hook_warnings(hr, h);
		if (r < 0)
			return r;
		if (status == 77) {
			log_info("hook %s/%s: not applicable", phase, h->name);
			continue;
		}
		if (status != 0)
			return log_error_errno(EIO, "hook %s/%s ('%s') failed with exit status %d:\n%s",
					       phase, h->name, h->path, status, last_lines(output, 10));
		log_debug("hook %s/%s: done in %.2fs", phase, h->name, now_seconds() - t);
	}
	return 0;
}

int hook_runner_init(struct hook_runner *hr, const struct hook_set *hooks, const char *root,
		     const char *rundir, struct appliance *vm, const struct hook_values *v)
{
	int r;

	hr->hooks = hooks;
	hr->rundir = rundir;
	hr->rundirfd = open(rundir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (hr->rundirfd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", rundir);
	r = install_hook_files(hr);
	if (r == 0)
		r = write_grub_locks(hr, v->grub_password);
	if (r == 0)
		r = make_hook_env(hr, v);
	/* Last: the appliance gets a copy of the files. */
	if (r == 0)
		r = sandbox_init(&hr->sandbox, root, rundir, vm);
	hr->sandbox.timeout = v->hook_timeout;
	return r;
}

void hook_runner_done(struct hook_runner *hr)
{
	sandbox_done(&hr->sandbox);
	if (hr->rundirfd >= 0)
		close(hr->rundirfd);
	hr->rundirfd = -1;
	strv_free(hr->env);
	hr->env = NULL;
	strv_free(hr->warnings);
	hr->warnings = NULL;
	hr->n_warnings = 0;
}
