/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* boot: qemu + OVMF, the serial console read into a buffer and matched against the prompts
 * each stage shows (grub's passphrase prompt, its answer, the login prompt, a shell). The
 * console is driven by hand rather than with expect(1) or pexpect: the key and the root
 * password must be typed without ever being on a command line, in a script file or in a log. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "boot.h"
#include "common/json.h"
#include "common/kvm.h"
#include "common/run.h"
#include "common/log.h"
#include "image/keys.h"
#include "shared/cleanup.h"
#include "shared/interrupt.h"
#include "shared/spawn.h"
#include "shared/util.h"

#define OVMF_CODE "/usr/share/OVMF/OVMF_CODE_4M.fd"
#define OVMF_VARS "/usr/share/OVMF/OVMF_VARS_4M.fd"

/* grub 2.06 prints the UUID without its dashes, 2.12 with them. */
#define RE_GRUB_PROMPT "Enter passphrase for hd[0-9]+,gpt2 \\(([0-9a-f-]+)\\):"
/* A second unlock request, from the initramfs (initramfs-tools' or systemd's). */
#define RE_SECOND "Please unlock disk|Enter passphrase for disk|Please enter passphrase for disk"
#define RE_MENU "to edit the commands|selected OS"
/* grub wants a superuser to boot the entry: a restricted entry under a lock (nobody knows the
 * password of the lock cvm-image makes), as after a grub.cfg written without --unrestricted. */
#define RE_BOOT_LOCKED "Enter username:"

static inline double MIN_D(double a, double b)
{
	return a < b ? a : b;
}

struct console {
	pid_t pid;
	int in, out;         /* qemu's stdin, its stdout and stderr */
	char *buf;
	size_t len, cap, seen; /* before seen: matched already */
	FILE *log;
	bool serial;
	double t0, deadline;
	const char *vars;    /* OVMF's variable store, the guest's own copy */
	char *overlay;       /* --then-reboot without --persist: a qcow2 over the image */
};

/* What one boot showed; the JSON result has the same names. */
struct boot_result {
	const char *outcome;
	double grub_prompt_s, kernel_s, login_prompt_s;
	unsigned prompts;
	int slot;
	const char *menu_edit, *menu_cmdline;
	char *output[BOOT_MAX_RUN];
	int command_status;  /* --then-reboot's command, -1: not run */
	char error[256];
};

static double elapsed(const struct console *c)
{
	return now_seconds() - c->t0;
}

static int console_read(struct console *c, double timeout)
{
	struct pollfd p = { .fd = c->out, .events = POLLIN };
	char chunk[65536];
	ssize_t n;
	int r;

	r = poll(&p, 1, (int)(timeout * 1000) + 1);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (r == 0)
		return 0;
	n = read(c->out, chunk, sizeof(chunk));
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -EPIPE; /* qemu exited */
	if (greedy_realloc((void **)&c->buf, &c->cap, c->len + (size_t)n + 1, 1) < 0)
		return -ENOMEM;
	for (ssize_t i = 0; i < n; i++)
		c->buf[c->len + (size_t)i] = chunk[i] ? chunk[i] : ' '; /* regexec stops at NUL */
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	if (c->log)
		fwrite(chunk, 1, (size_t)n, c->log), fflush(c->log);
	if (c->serial)
		fwrite(chunk, 1, (size_t)n, stderr);
	return 0;
}

/*
 * Wait for the first of the patterns (POSIX extended regular expressions) to appear after
 * what was matched before, at most timeout seconds (and never past the run's deadline).
 * Returns its index, with the match in *m (groups in m[1...]); -ETIMEDOUT, -EPIPE when qemu
 * exited, -EINTR on SIGINT/SIGTERM.
 */
static int expect(struct console *c, const char *const patterns[], double timeout, regmatch_t m[3])
{
	regex_t re[8];
	size_t n = 0;
	double end = MIN_D(now_seconds() + timeout, c->deadline);
	int r = 0;

	while (patterns[n])
		if (regcomp(&re[n], patterns[n], REG_EXTENDED) != 0 || ++n == ELEMENTSOF(re))
			abort(); /* our own patterns */
	for (;;) {
		int best = -1;
		regmatch_t bm[3];

		for (size_t i = 0; i < n; i++) {
			regmatch_t mm[3] = { { (regoff_t)c->seen, (regoff_t)c->len } };

			if (regexec(&re[i], c->buf ?: "", 3, mm, c->buf ? REG_STARTEND : 0) == 0 &&
			    (best < 0 || mm[0].rm_so < bm[0].rm_so)) {
				best = (int)i;
				memcpy(bm, mm, sizeof(bm));
			}
		}
		if (best >= 0) {
			c->seen = (size_t)bm[0].rm_eo;
			memcpy(m, bm, sizeof(bm));
			r = best;
			break;
		}
		if (interrupt_pending()) {
			r = -EINTR;
			break;
		}
		if (now_seconds() >= end) {
			r = -ETIMEDOUT;
			break;
		}
		r = console_read(c, MIN_D(end - now_seconds(), 1.0));
		if (r < 0)
			break;
	}
	for (size_t i = 0; i < n; i++)
		regfree(&re[i]);
	return r;
}

static int send_bytes(struct console *c, const void *data, size_t len, bool secret)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(c->in, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	if (secret && c->log)
		fputs("<secret typed>", c->log);
	return 0;
}

static int send_str(struct console *c, const char *s)
{
	return send_bytes(c, s, strlen(s), false);
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	nanosleep(&ts, NULL);
}

/* One key at a time, as typed: grub's menu reads the serial line by polling. */
static int send_slowly(struct console *c, const char *s)
{
	for (; *s; s++) {
		int r = send_bytes(c, s, 1, false);

		if (r < 0)
			return r;
		sleep_s(0.2);
	}
	return 0;
}

static const char *fail_reason(int r)
{
	return r == -ETIMEDOUT ? "timed out" : r == -EPIPE ? "qemu exited" :
	       r == -EINTR ? "interrupted" : "console error";
}

/* The text between two markers the guest echoes after a command, \r removed, trimmed. */
static int command_output(struct console *c, unsigned n, char **ret)
{
	char begin[32], end_[32];
	char *b, *e, *out, *o;
	double end = now_seconds() + 120;

	snprintf(begin, sizeof(begin), "__CVM_BEGIN_%u__", n);
	snprintf(end_, sizeof(end_), "__CVM_END_%u__", n);
	for (;;) {
		b = c->buf ? memmem(c->buf + c->seen, c->len - c->seen, begin, strlen(begin)) : NULL;
		e = b ? memmem(b, c->len - (size_t)(b - c->buf), end_, strlen(end_)) : NULL;
		if (e)
			break;
		if (interrupt_pending())
			return -EINTR;
		if (now_seconds() >= MIN_D(end, c->deadline))
			return -ETIMEDOUT;
		int r = console_read(c, 1.0);
		if (r < 0)
			return r;
	}
	b += strlen(begin);
	c->seen = (size_t)(e - c->buf) + strlen(end_);
	out = o = malloc((size_t)(e - b) + 1);
	if (!out)
		return -ENOMEM;
	for (const char *p = b; p < e; p++)
		if (*p != '\r')
			*o++ = (unsigned char)*p < 0x80 ? *p : '?'; /* JSON-safe */
	*o = '\0';
	/* Trim the line breaks around it. */
	while (o > out && (o[-1] == '\n' || o[-1] == ' '))
		*--o = '\0';
	o = out;
	while (*o == '\n' || *o == ' ')
		o++;
	memmove(out, o, strlen(o) + 1);
	*ret = out;
	return 0;
}

/* At grub's menu: 'e' and 'c' must ask for the superuser, and a wrong password get nothing.
 * Then Enter boots the default entry. */
static int try_menu(struct console *c, struct boot_result *res)
{
	static const char *const menu[] = { RE_MENU, NULL };
	static const char *const pw[] = { "Enter password:", NULL };
	static const char *const opened[] = { "Minimum Emacs-like screen editing|Press Ctrl-x",
					      "Minimal BASH-like line editing|grub> " };
	regmatch_t m[3];
	int r = expect(c, menu, 600, m);

	if (r < 0)
		return r;
	for (int k = 0; k < 2; k++) {
		const char *const asked[] = { "Enter username:", opened[k], "Linux version|Booting ", NULL };
		const char *const after[] = { RE_MENU, opened[k], NULL };
		const char **slotp = k == 0 ? &res->menu_edit : &res->menu_cmdline;

		sleep_s(1);
		r = send_str(c, k == 0 ? "e" : "c");
		if (r >= 0)
			r = expect(c, asked, 60, m);
		if (r < 0)
			return r;
		if (r != 0) {
			*slotp = r == 1 ? "opened" : "booted";
			return 0;
		}
		r = send_slowly(c, "root\r");
		if (r >= 0)
			r = expect(c, pw, 30, m);
		if (r >= 0)
			r = send_slowly(c, "nope\r");
		if (r >= 0)
			r = expect(c, after, 60, m);
		if (r < 0)
			return r;
		*slotp = r == 0 ? "refused" : "opened-after-wrong-password";
		if (r != 0)
			return 0;
	}
	return send_str(c, "\r");
}

/* From grub's passphrase prompt to the commands' output. Returns 1 when it got as far as it
 * should, 0 when it ended earlier (res->outcome says how), -errno on a console failure. */
/* grub's passphrase prompt, the key typed, grub's answer. 1: a slot opened (res->slot), 0:
 * it ended there (res->outcome says how), -ETIME: no prompt within --prompt-timeout. */
static int unlock_at_grub(struct console *c, const struct boot_options *o,
			  const struct secret *key, struct boot_result *res)
{
	static const char *const grub[] = { RE_GRUB_PROMPT, NULL };
	static const char *const answer[] = { "Slot ([0-9]+) opened", "access denied|Invalid passphrase", NULL };
	static const char *const after_deny[] = { "Linux version", RE_SECOND, NULL };
	regmatch_t m[3];
	bool bounded;
	int r;

	/* A firmware that hangs (a reset under TCG that never comes back, say) is found in
	 * minutes, not at the end of a --timeout sized for the maintenance in between. */
	bounded = o->prompt_timeout < c->deadline - now_seconds();
	r = expect(c, grub, bounded ? o->prompt_timeout : c->deadline - now_seconds(), m);
	if (r == -ETIMEDOUT && bounded)
		return -ETIME;
	if (r < 0)
		return r;
	res->grub_prompt_s = elapsed(c);
	res->prompts = 1;
	log_info("[%7.1fs] grub asks for the passphrase", res->grub_prompt_s);
	sleep_s(0.5);
	r = send_bytes(c, key->data, key->size, true);
	if (r >= 0)
		r = send_str(c, "\r");
	if (r >= 0)
		r = expect(c, answer, c->deadline - now_seconds(), m);
	if (r < 0)
		return r;
	if (r == 1) {
		res->outcome = "denied";
		log_info("[%7.1fs] grub refused the key", elapsed(c));
		/* And grub must not go on to boot anything. */
		r = expect(c, after_deny, 20, m);
		if (r >= 0)
			res->outcome = "denied-but-booted";
		return r >= 0 || r == -ETIMEDOUT ? 0 : r;
	}
	res->slot = atoi(c->buf + m[1].rm_so);
	return 1;
}

/* From grub's boot to the login prompt. 1: the login prompt, 0: something else came first
 * (res->outcome says what). */
static int wait_for_login(struct console *c, struct boot_result *res)
{
	static const char *const kernel[] = { "Linux version", "login: ", RE_SECOND, RE_GRUB_PROMPT,
					      RE_BOOT_LOCKED, NULL };
	static const char *const login[] = { "login: ", RE_SECOND, RE_GRUB_PROMPT, NULL };
	regmatch_t m[3];
	int r;

	r = expect(c, kernel, c->deadline - now_seconds(), m);
	if (r == 4) {
		res->outcome = "boot-needs-password";
		log_error("[%7.1fs] grub asks for a user name and password to boot its default entry: "
			  "the entry is not --unrestricted under grub's lock", elapsed(c));
		return 0;
	}
	if (r == 0) {
		res->kernel_s = elapsed(c);
		log_info("[%7.1fs] the kernel starts", res->kernel_s);
		r = expect(c, login, c->deadline - now_seconds(), m);
	} else if (r > 0) {
		r--; /* no kernel messages on the console (no console=ttyS0): the login came first */
	}
	if (r < 0)
		return r;
	if (r == 2) {
		/* grub's prompt again: the guest reset before its login prompt (a kernel panic
		 * reboots at once, panic=-1), which is not the initramfs asking. */
		res->prompts++;
		res->outcome = "rebooted";
		log_error("[%7.1fs] the guest restarted before its login prompt: grub asks for the "
			  "passphrase again (see the console log for why)", elapsed(c));
		return 0;
	}
	if (r != 0) {
		res->prompts++;
		res->outcome = "second-prompt";
		log_error("[%7.1fs] the initramfs asks for the passphrase: '%.*s'", elapsed(c),
			  (int)(m[0].rm_eo - m[0].rm_so), c->buf + m[0].rm_so);
		return 0;
	}
	res->login_prompt_s = elapsed(c);
	res->outcome = "login";
	log_info("[%7.1fs] the login prompt", res->login_prompt_s);
	return 1;
}

/* Log in as root and run the --run commands, their output in res->output. */
static int log_in_and_run(struct console *c, const struct boot_options *o,
			  const struct secret *password, struct boot_result *res)
{
	static const char *const pw[] = { "Password: ", NULL };
	static const char *const shell[] = { "# ", NULL };
	regmatch_t m[3];
	int r;

	r = send_str(c, "root\r");
	if (r >= 0)
		r = expect(c, pw, 120, m);
	if (r >= 0)
		r = send_bytes(c, password->data, password->size, true);
	if (r >= 0)
		r = send_str(c, "\r");
	if (r >= 0)
		r = expect(c, shell, 120, m);
	/* The kernel's messages off the console (a guest still loading modules prints them on
	 * the serial line, inside the commands' output): emergencies only. */
	if (r >= 0)
		r = send_str(c, "dmesg -n 1 2>/dev/null\r");
	if (r >= 0)
		r = expect(c, shell, 120, m);
	if (r < 0)
		return r;
	for (unsigned n = 0; n < o->n_run; n++) {
		_cleanup_free_ char *line = strdupf("echo __CVM_BEGIN_%u\"__\"; %s; echo __CVM_END_%u\"__\"\r",
						    n, o->run[n], n);

		/* The markers are split in the echoed command, so only the output matches. */
		if (!line)
			return -ENOMEM;
		r = send_str(c, line);
		if (r >= 0)
			r = command_output(c, n, &res->output[n]);
		if (r < 0)
			return r;
	}
	res->outcome = "logged-in";
	return 1;
}

static int boot_once(struct console *c, const struct boot_options *o, const struct secret *key,
		     const struct secret *password, struct boot_result *res, bool menu)
{
	int r;

	r = unlock_at_grub(c, o, key, res);
	if (r <= 0)
		return r;
	if (o->expect_denied) {
		res->outcome = "opened";
		return 0;
	}
	if (menu) {
		r = try_menu(c, res);
		if (r < 0)
			return r;
	}
	r = wait_for_login(c, res);
	if (r <= 0 || !password)
		return r;
	return log_in_and_run(c, o, password, res);
}

static void result_done(struct boot_result *r)
{
	for (size_t i = 0; i < BOOT_MAX_RUN; i++)
		free(r->output[i]);
}

static void add_seconds(struct json_object *o, const char *name, double s)
{
	if (s > 0)
		json_add_double(o, name, s, 1);
	else
		json_add(o, name, NULL);
}

/* A boot's result as JSON (json.h: text from the guest made valid UTF-8). */
static struct json_object *result_json(const struct boot_options *o, const struct boot_result *r)
{
	struct json_object *j = json_object_new_object(), *out = json_object_new_object();

	json_add_str(j, "outcome", r->outcome ?: "error");
	add_seconds(j, "grub_prompt_s", r->grub_prompt_s);
	add_seconds(j, "kernel_s", r->kernel_s);
	add_seconds(j, "login_prompt_s", r->login_prompt_s);
	json_add_u64(j, "passphrase_prompts", r->prompts);
	if (r->slot >= 0)
		json_add_int(j, "slot", r->slot);
	if (r->menu_edit || r->menu_cmdline) {
		struct json_object *menu = json_object_new_object();

		if (r->menu_edit)
			json_add_str(menu, "edit", r->menu_edit);
		if (r->menu_cmdline)
			json_add_str(menu, "cmdline", r->menu_cmdline);
		json_add(j, "menu", menu);
	}
	if (r->command_status >= 0)
		json_add_int(j, "command_status", r->command_status);
	if (r->error[0])
		json_add_str(j, "error", r->error);
	for (unsigned n = 0; n < o->n_run; n++)
		if (r->output[n])
			json_add_str(out, o->run[n], r->output[n]);
	json_add(j, "output", out);
	return j;
}

/* s with its commas doubled, as QEMU's option syntax wants; NULL when out of memory. */
static char *qemu_escape(const char *s)
{
	char *esc = malloc(2 * strlen(s) + 1), *p = esc;

	if (!esc)
		return NULL;
	for (; *s; s++) {
		*p++ = *s;
		if (*s == ',')
			*p++ = ',';
	}
	*p = '\0';
	return esc;
}

/* The image's format by its first bytes ("qcow2" or "raw"), to be given to qemu, never
 * probed by it. */
static int image_format(const char *path, const char **ret)
{
	unsigned char magic[4] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", path);
	if (read(fd, magic, 4) != 4)
		memset(magic, 0, 4);
	close(fd);
	*ret = memcmp(magic, "QFI\xfb", 4) == 0 ? "qcow2" : "raw";
	return 0;
}

/*
 * qemu on o->image (or on overlay, a qcow2 over it that takes the guest's writes, when not
 * NULL). With --then-reboot, -no-reboot: the guest's reset ends qemu and run_then_reboot()
 * starts it again, because a warm reset under TCG can hang in the firmware (seen twice in
 * the maintained boot tests here: the console silent after "reboot: Restarting system"),
 * and because a confidential VM's reboot is a new launch anyway. KVM only with --kvm,
 * checked by boot_run().
 */
static int start_qemu(struct console *c, const struct boot_options *o)
{
	_cleanup_free_ char *code = strdupf("if=pflash,format=raw,unit=0,readonly=on,file=%s", OVMF_CODE);
	_cleanup_free_ char *varsd = strdupf("if=pflash,format=raw,unit=1,file=%s", c->vars);
	_cleanup_free_ char *esc = qemu_escape(c->overlay ?: o->image);
	_cleanup_free_ char *disk = NULL;
	const char *format = "qcow2";
	int in[2], out[2], r;
	bool kvm = o->kvm;

	/* The format given, never probed; snapshot: the image is never written (unless
	 * --persist; the overlay of --then-reboot takes the writes instead). */
	if (!c->overlay) {
		r = image_format(o->image, &format);
		if (r < 0)
			return r;
	}
	if (esc)
		disk = strdupf("file=%s,format=%s,if=virtio%s", esc, format,
			       c->overlay || o->persist ? "" : ",snapshot=on");
	if (!code || !varsd || !disk)
		return log_error_errno(ENOMEM, "out of memory");
	char smp[12];
	/* Two virtual CPUs unless asked, one on a host with one CPU: under TCG a vCPU thread
	 * with no core of its own makes the guest slower (bench/boot-cpus), which is why the
	 * boot test lanes, two boots side by side, pass --cpus 1. No display, so no VGA
	 * device either: nobody sees it, and its DRM driver's start cost the guest ~30 s under
	 * TCG (two boots side by side reached login in 91 s instead of 121 s); grub and OVMF
	 * keep the serial console. */
	long host = sysconf(_SC_NPROCESSORS_ONLN);
	snprintf(smp, sizeof(smp), "%u", o->cpus ?: host == 1 ? 1 : 2);
	char *argv[] = { "qemu-system-x86_64", "-machine", "q35", "-accel",
			 kvm ? "kvm" : "tcg,thread=multi", "-cpu", kvm ? "host" : "max", "-smp", smp,
			 "-m", "1536", "-drive", code, "-drive", varsd, "-drive", disk, "-nic", "none",
			 "-display", "none", "-vga", "none", "-serial", "stdio", "-monitor", "none",
			 o->then_reboot ? "-no-reboot" : NULL, NULL };
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		return log_error_errno(errno, "cannot make a pipe: %m");
	c->pid = fork();
	if (c->pid < 0)
		return log_error_errno(errno, "cannot fork: %m");
	if (c->pid == 0) {
		setpgid(0, 0); /* ^C reaches us; we stop qemu */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(2, "cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->in = in[1];
	c->out = out[0];
	c->seen = c->len; /* a new qemu: what the last one printed is not matched again */
	signal(SIGPIPE, SIG_IGN); /* a write to an exited qemu is an error, not a death */
	return 0;
}

static void stop_qemu(struct console *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
		c->pid = 0;
	}
	if (c->in >= 0)
		close(c->in);
	if (c->out >= 0)
		close(c->out);
	c->in = c->out = -1;
}

/* With --persist, a guest we are logged in to is powered off, so that what it wrote reaches
 * the image whole (a killed qemu may leave a qcow2 with leaked clusters). Waits at most 300 s
 * for qemu to exit; stop_qemu() kills it after that. */
static void power_off(struct console *c)
{
	double end = now_seconds() + 300;
	int r;

	log_info("[%7.1fs] powering the guest off (--persist)", elapsed(c));
	if (send_str(c, "sync; poweroff\r") < 0)
		return;
	do
		r = console_read(c, 1.0);
	while (r >= 0 && now_seconds() < end && !interrupt_pending());
	if (r != -EPIPE)
		log_warning("the guest did not power off within 300 s: qemu is stopped, what it "
			    "had not written yet is lost");
}

static bool went_well(const struct boot_options *o, const struct boot_result *r)
{
	bool menu_ok = !o->try_menu || (r->menu_edit && r->menu_cmdline &&
					streq(r->menu_edit, "refused") && streq(r->menu_cmdline, "refused"));

	if (!r->outcome || !menu_ok)
		return false;
	if (o->expect_denied)
		return streq(r->outcome, "denied");
	return streq(r->outcome, o->password_file ? "logged-in" : "login");
}

/* --then-reboot without --persist: what the guest writes must last across its reboot (a
 * new qemu, where snapshot=on would forget it) and never reach the image: a qcow2 in dir
 * over the image (its format given, never probed), removed at the end. */
static int make_overlay(const char *image, const char *dir, char **ret)
{
	_cleanup_free_ char *abs = realpath(image, NULL);
	_cleanup_free_ char *path = strdupf("%s/overlay.qcow2", dir);
	const char *format;
	int r;

	if (!abs)
		return log_error_errno(errno, "cannot open '%s': %m", image);
	r = image_format(abs, &format);
	if (r < 0)
		return r;
	if (!path)
		return log_error_errno(ENOMEM, "out of memory");
	char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-b", abs, "-F",
			 (char *)format, path, NULL };
	r = run_program(argv, NULL);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(path);
	return 0;
}

/* A private copy of OVMF's variable store: what the guest writes there (grub-install's boot
 * entry) lasts across its reboots, and nothing reaches the system's. */
static int copy_firmware_vars(const char *vars)
{
	char *argv[] = { "cp", OVMF_VARS, (char *)vars, NULL };

	return run_program(argv, NULL);
}

/* After the reboot command: qemu's exit (the guest's reset, -no-reboot) within timeout
 * seconds; -ESRCH if it has not come, -EINTR on a signal. */
static int wait_qemu_exit(struct console *c, unsigned timeout)
{
	double end = MIN_D(now_seconds() + timeout, c->deadline);
	int r;

	for (;;) {
		if (interrupt_pending())
			return -EINTR;
		if (now_seconds() >= end)
			return -ESRCH;
		r = console_read(c, MIN_D(end - now_seconds(), 1.0));
		if (r == -EPIPE)
			return 0;
		if (r < 0)
			return r;
	}
}

/* --then-reboot: the command run in the logged-in guest, its exit status, the reboot, and the
 * boot after it into again (res->outcome then says "after-reboot-..." if it ended early). */
static int run_then_reboot(struct console *c, const struct boot_options *o,
			   const struct secret *key, const struct secret *password,
			   struct boot_result *res, struct boot_result *again)
{
	static const char *const rc[] = { "__CVM_RC_([0-9]+)__", NULL };
	_cleanup_free_ char *line = strdupf("(%s) >/dev/null 2>&1 </dev/null; echo __CVM_RC_$?\"__\"; "
					    "sync; reboot\r", o->then_reboot);
	regmatch_t m[3];
	int r;

	r = line ? send_str(c, line) : -ENOMEM;
	if (r >= 0)
		r = expect(c, rc, c->deadline - now_seconds(), m);
	if (r < 0)
		return r;
	again->command_status = atoi(c->buf + m[1].rm_so);
	log_info("[%7.1fs] the command exited with %d; rebooting", elapsed(c), again->command_status);
	/* The guest's reset ends qemu (-no-reboot); started again on the same disk and
	 * variable store, as a host relaunches a confidential VM. */
	r = wait_qemu_exit(c, o->prompt_timeout);
	if (r < 0)
		return r;
	stop_qemu(c);
	log_info("[%7.1fs] the guest reset: qemu started again", elapsed(c));
	r = start_qemu(c, o);
	if (r < 0)
		return r;
	r = boot_once(c, o, key, password, again, o->try_menu);
	if (r == 0 && again->outcome) {
		static char outcome[64];

		snprintf(outcome, sizeof(outcome), "after-reboot-%s", again->outcome);
		res->outcome = outcome;
	}
	return r;
}

/* What was waited for when the boot failed (a timeout, qemu gone, an interruption), in the
 * result of the boot it happened in; those are outcomes (0), not errors. */
static int record_failure(struct console *c, const struct boot_options *o, int r, bool rebooted,
			  struct boot_result *res, struct boot_result *again)
{
	struct boot_result *w = rebooted ? again : res;

	if (r >= 0 || r == -ENOMEM)
		return r;
	if (r == -ETIME)
		snprintf(w->error, sizeof(w->error), "no grub passphrase prompt within %u s of the %s",
			 o->prompt_timeout, rebooted ? "reboot" : "start");
	else if (r == -ESRCH)
		snprintf(w->error, sizeof(w->error), "the guest did not reset within %u s of the "
			 "reboot command", o->prompt_timeout);
	else
		snprintf(w->error, sizeof(w->error), "%s after %.0f s%s%s", fail_reason(r),
			 elapsed(c), r == -EPIPE && c->len ? ": " : "",
			 r == -EPIPE && c->len ? last_lines(c->buf, 1) : "");
	res->outcome = "error";
	if (rebooted)
		again->outcome = "error";
	return r == -EPIPE || r == -ETIMEDOUT || r == -ETIME || r == -ESRCH || r == -EINTR ? 0 : r;
}

/* The results (JSON or the commands' output on stdout) and the verdict: 0 or -EUCLEAN. */
static int report(struct console *c, const struct boot_options *o, bool rebooted,
		  struct boot_result *res, struct boot_result *again)
{
	if (o->json) {
		struct json_object *j = result_json(o, res);
		int r;

		if (rebooted)
			json_add(j, "after_reboot", result_json(o, again));
		r = json_print(j, stdout);
		if (r < 0)
			return log_error_errno(r, "cannot print the result: %m");
	} else {
		for (unsigned n = 0; n < o->n_run; n++)
			if (res->output[n])
				printf("%s\n", res->output[n]);
	}
	fflush(stdout);
	if (went_well(o, res) && (!rebooted || went_well(o, again))) {
		log_notice("[%7.1fs] '%s': %s, with one passphrase prompt (grub's, at %.1f s)%s",
			   elapsed(c), o->image, o->expect_denied ? "the key was refused" :
			   o->password_file ? "booted, logged in and ran the commands" : "booted to the login prompt",
			   res->grub_prompt_s, rebooted ? "; again after the reboot" : "");
		return 0;
	}
	const struct boot_result *w = rebooted && again->outcome ? again : res;

	log_error("'%s' did not boot as expected: %s%s%s%s", o->image, res->outcome ?: "error",
		  w->error[0] ? " (" : "", w->error, w->error[0] ? ")" : "");
	return -EUCLEAN;
}

int boot_run(const struct boot_options *o)
{
	_cleanup_secret_ struct secret key = {}, password = {};
	_cleanup_free_ char *dir = strdupf("%s/cvm-image-boot.%d.XXXXXX", getenv("TMPDIR") ?: "/var/tmp",
					   (int)getpid());
	_cleanup_free_ char *vars = NULL;
	struct console c = { .in = -1, .out = -1 };
	struct boot_result res = { .slot = -1, .command_status = -1 };
	struct boot_result again = { .slot = -1, .command_status = -1 };
	const struct secret *pw = o->password_file ? &password : NULL;
	bool rebooted = false;
	int r;

	if (access(OVMF_CODE, R_OK) < 0 || access(OVMF_VARS, R_OK) < 0)
		return log_error_errno(ENOPKG, "no OVMF firmware in /usr/share/OVMF (package ovmf)");
	if (!find_program("qemu-system-x86_64"))
		return log_error_errno(ENOPKG, "cannot find 'qemu-system-x86_64' (package qemu-system-x86)");
	r = keys_read_key_file(o->key_file, &key);
	if (r == 0 && key.size && key.data[key.size - 1] == '\n')
		key.size--; /* typed: the Enter comes from us */
	if (r == 0 && o->password_file)
		r = keys_read_passphrase_file(o->password_file, &password);
	if (r < 0)
		return r;
	if (!dir || !mkdtemp(dir))
		return log_error_errno(dir ? errno : ENOMEM, "cannot create a temporary directory: %m");
	vars = strdupf("%s/vars.fd", dir);
	r = vars ? copy_firmware_vars(vars) : log_error_errno(ENOMEM, "out of memory");
	if (r < 0)
		goto out;
	c.vars = vars;
	/* KVM only when asked, and only where a guest runs with it (kvm_works(): a /dev/kvm
	 * that opens need not work); TCG always does. */
	{
		const char *why = NULL;
		bool kvm_ok = kvm_works(&why);

		if (o->kvm && !kvm_ok) {
			r = log_error_errno(ENOTSUP, "--kvm: KVM does not work here: %s", why);
			goto out;
		}
		log_info("boot: qemu with %s", o->kvm ? "KVM" :
			 kvm_ok ? "TCG (minutes; KVM works here: --kvm)" : "TCG (minutes)");
	}
	if (o->then_reboot && !o->persist) {
		r = make_overlay(o->image, dir, &c.overlay);
		if (r < 0)
			goto out;
	}
	if (o->log_file) {
		c.log = fopen(o->log_file, "we");
		if (!c.log) {
			r = log_error_errno(errno, "cannot create '%s': %m", o->log_file);
			goto out;
		}
	}
	c.serial = o->serial;
	c.t0 = now_seconds();
	c.deadline = c.t0 + o->timeout;
	r = start_qemu(&c, o);
	if (r < 0)
		goto out;
	log_notice("boot: '%s' under qemu + OVMF", o->image);
	r = boot_once(&c, o, &key, pw, &res, o->try_menu);
	if (r > 0 && o->then_reboot) {
		rebooted = true;
		r = run_then_reboot(&c, o, &key, pw, &res, &again);
	}
	r = record_failure(&c, o, r, rebooted, &res, &again);
	if (r < 0)
		goto out;
	if (o->persist && streq((rebooted ? &again : &res)->outcome ?: "", "logged-in"))
		power_off(&c);
	r = report(&c, o, rebooted, &res, &again);
out:
	stop_qemu(&c);
	if (c.log)
		fclose(c.log);
	result_done(&res);
	result_done(&again);
	if (vars)
		unlink(vars);
	if (c.overlay)
		unlink(c.overlay);
	free(c.overlay);
	rmdir(dir);
	return r;
}
