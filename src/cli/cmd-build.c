/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvm-image build: options into struct build_options, then the pipeline. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "exitcode.h"
#include "build/build.h"
#include "build/target.h"
#include "common/log.h"
#include "image/keys.h"
#include "shared/cleanup.h"
#include "shared/util.h"

enum {
	ARG_FORMAT = 0x100,
	ARG_FORCE,
	ARG_KEY_OUT,
	ARG_MAPPER_NAME,
	ARG_WORKDIR,
	ARG_KEEP_WORKDIR,
	ARG_RECOVERY_FILE,
	ARG_RECOVERY_ITER_TIME,
	ARG_JSON,
	ARG_DISTRO,
	ARG_HOOKS_DIR,
	ARG_SERIAL_CONSOLE,
	ARG_KERNEL_CMDLINE,
	ARG_ROOT_PASSWORD_FILE,
	ARG_SSH_KEYS,
	ARG_HOSTNAME,
	ARG_GRUB_PASSWORD_FILE,
	ARG_SANDBOX,
	ARG_HOOK_TIMEOUT,
};

static const char options_s[] = "o:s:h";
static const struct option options[] = {
	{ "output", required_argument, NULL, 'o' },
	{ "size", required_argument, NULL, 's' },
	{ "format", required_argument, NULL, ARG_FORMAT },
	{ "force", no_argument, NULL, ARG_FORCE },
	{ "key-out", required_argument, NULL, ARG_KEY_OUT },
	{ "mapper-name", required_argument, NULL, ARG_MAPPER_NAME },
	{ "workdir", required_argument, NULL, ARG_WORKDIR },
	{ "keep-workdir", no_argument, NULL, ARG_KEEP_WORKDIR },
	{ "recovery-passphrase-file", required_argument, NULL, ARG_RECOVERY_FILE },
	{ "recovery-iter-time", required_argument, NULL, ARG_RECOVERY_ITER_TIME },
	{ "json", no_argument, NULL, ARG_JSON },
	{ "distro", required_argument, NULL, ARG_DISTRO },
	{ "hooks-dir", required_argument, NULL, ARG_HOOKS_DIR },
	{ "serial-console", no_argument, NULL, ARG_SERIAL_CONSOLE },
	{ "kernel-cmdline", required_argument, NULL, ARG_KERNEL_CMDLINE },
	{ "root-password-file", required_argument, NULL, ARG_ROOT_PASSWORD_FILE },
	{ "ssh-authorized-keys", required_argument, NULL, ARG_SSH_KEYS },
	{ "hostname", required_argument, NULL, ARG_HOSTNAME },
	{ "grub-password-file", required_argument, NULL, ARG_GRUB_PASSWORD_FILE },
	{ "sandbox", required_argument, NULL, ARG_SANDBOX },
	{ "hook-timeout", required_argument, NULL, ARG_HOOK_TIMEOUT },
	{ "help", no_argument, NULL, 'h' },
	{},
};

static void help(void)
{
	printf("Usage: cvm-image build [OPTIONS] ROOTFS.tar -o IMAGE\n"
	       "Build an encrypted, EFI-bootable disk image from a root filesystem tarball.\n"
	       "\n"
	       "Options:\n"
	       "  -o, --output IMAGE        the image to write (required)\n"
	       "  -s, --size SIZE           disk size, e.g. 4G (default: from the rootfs size)\n"
	       "      --format raw|qcow2    image format (default: qcow2 for *.qcow2, else raw)\n"
	       "      --force               replace an existing image and key file\n"
	       "      --key-out FILE        where to write the slot-0 key (default: IMAGE.key)\n"
	       "      --mapper-name NAME    device-mapper name of the opened root (default: cr_root)\n"
	       "      --workdir DIR         create the work directory in DIR (default: $TMPDIR or /var/tmp)\n"
	       "      --keep-workdir        do not delete the work directory afterwards\n"
	       "      --recovery-passphrase-file FILE\n"
	       "                            add FILE's passphrase to key slot 1\n"
	       "      --recovery-iter-time MS\n"
	       "                            PBKDF2 time for the recovery slot (default: 2000)\n"
	       "      --json                print a JSON summary on stdout\n"
	       "      --sandbox auto|bwrap|vm\n"
	       "                            where the tarball is unpacked and the distro's tools run:\n"
	       "                            bubblewrap on the host (root, or a user namespace of\n"
	       "                            an ordinary user), the libguestfs appliance (no\n"
	       "                            namespaces), or auto: bwrap where it can (default)\n"
	       "\n"
	       "Making it boot:\n"
	       "      --distro ID           use distro/ID instead of detecting it from os-release;\n"
	       "                            'none' makes an encrypted disk without boot configuration\n"
	       "      --hooks-dir DIR       site hooks (DIR/hooks/PHASE/NN-name) on top; repeatable\n"
	       "      --hook-timeout S      stop a hook (the appliance with it) that runs longer\n"
	       "                            than S seconds (default: 3600)\n"
	       "      --serial-console      kernel and grub on the serial line (ttyS0, 115200)\n"
	       "      --kernel-cmdline ARGS extra kernel command line arguments\n"
	       "      --root-password-file FILE\n"
	       "                            set root's password (hashed into /etc/shadow)\n"
	       "      --ssh-authorized-keys FILE\n"
	       "                            install FILE as root's authorized_keys\n"
	       "      --hostname NAME       write /etc/hostname and /etc/hosts\n"
	       "      --grub-password-file FILE\n"
	       "                            a grub superuser password for the menu editor and the\n"
	       "                            command line (default: locked, no password opens them)\n"
	       "  -h, --help                show this help\n"
	       "\n"
	       "Stages:");
	/* From the table the build runs, so that the list cannot go stale. */
	for (size_t i = 0, col = 7; build_stage_name(i); i++) {
		size_t w = strlen(build_stage_name(i)) + 2;

		if (col + w > 80) {
			fputs("\n", stdout);
			col = 0;
		}
		printf("%s%s%s", col ? " " : "", build_stage_name(i), build_stage_name(i + 1) ? "," : ".");
		col += w;
	}
	printf("\nSee cvm-image-build(1).\n");
}

static bool valid_mapper_name(const char *s)
{
	if (!*s || strlen(s) > 127 || streq(s, ".") || streq(s, ".."))
		return false;
	for (const char *p = s; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') ||
		      ('0' <= *p && *p <= '9') || strchr("_-.+", *p)))
			return false;
	return true;
}

/* The arguments land in grub.cfg and /etc/default/grub: nothing a shell or grub's script
 * language would interpret. */
static bool valid_cmdline(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || strchr("\"'\\$`;&|<>{}#", *p))
			return false;
	return true;
}

/* What build's options give, before build_run(). */
struct build_args {
	struct build_options o;
	char *hooks_dirs[17];
	size_t n_hooks_dirs;
	const char *grub_password_file;
};

/* An option that needs no check (a path, a flag): 0, or -ENOENT if c is not one. */
static int set_plain_option(struct build_options *o, int c)
{
	switch (c) {
	case 'o':
		o->output = optarg;
		return 0;
	case ARG_FORCE:
		o->force = true;
		return 0;
	case ARG_KEY_OUT:
		o->key_out = optarg;
		return 0;
	case ARG_WORKDIR:
		o->workdir_parent = optarg;
		return 0;
	case ARG_KEEP_WORKDIR:
		o->keep_workdir = true;
		return 0;
	case ARG_RECOVERY_FILE:
		o->recovery_passphrase_file = optarg;
		return 0;
	case ARG_JSON:
		o->json = true;
		return 0;
	case ARG_DISTRO:
		o->distro = optarg;
		return 0;
	case ARG_SERIAL_CONSOLE:
		o->serial_console = true;
		return 0;
	case ARG_ROOT_PASSWORD_FILE:
		o->root_password_file = optarg;
		return 0;
	case ARG_SSH_KEYS:
		o->ssh_keys_file = optarg;
		return 0;
	default:
		return -ENOENT;
	}
}

/* One option (getopt's c) into a. Returns 0, 1 when --help was shown, or -EINVAL (said). */
static int parse_option(struct build_args *a, int c)
{
	int r = set_plain_option(&a->o, c);

	if (r != -ENOENT)
		return r;
	switch (c) {
	case 's':
		r = parse_size(optarg, &a->o.size);
		if (r < 0) {
			log_error("invalid --size '%s': expected a size such as 4G or 2048M",
				  optarg);
			return -EINVAL;
		}
		return 0;
	case ARG_FORMAT:
		a->o.format = image_format_from_string(optarg);
		if (a->o.format == IMAGE_FORMAT_AUTO) {
			log_error("invalid --format '%s': expected raw or qcow2", optarg);
			return -EINVAL;
		}
		return 0;
	case ARG_MAPPER_NAME:
		if (!valid_mapper_name(optarg)) {
			log_error("invalid --mapper-name '%s': use letters, digits and _-.+",
				  optarg);
			return -EINVAL;
		}
		a->o.mapper_name = optarg;
		return 0;
	case ARG_RECOVERY_ITER_TIME:
		if (parse_iter_time(optarg, &a->o.recovery_iter_ms) < 0) {
			log_error("invalid --recovery-iter-time '%s': expected 1 to 60000 ms",
				  optarg);
			return -EINVAL;
		}
		return 0;
	case ARG_HOOK_TIMEOUT:
		if (parse_seconds(optarg, &a->o.hook_timeout) < 0) {
			log_error("invalid --hook-timeout '%s': expected 1 to 86400 seconds",
				  optarg);
			return -EINVAL;
		}
		return 0;
	case ARG_SANDBOX: {
		int k = sandbox_kind_from_string(optarg);

		if (k < 0) {
			log_error("invalid --sandbox '%s': expected auto, bwrap or vm", optarg);
			return -EINVAL;
		}
		a->o.sandbox = (enum sandbox_kind)k;
		return 0;
	}
	case ARG_HOOKS_DIR:
		if (a->n_hooks_dirs + 1 >= ELEMENTSOF(a->hooks_dirs)) {
			log_error("too many --hooks-dir");
			return -EINVAL;
		}
		a->hooks_dirs[a->n_hooks_dirs++] = optarg;
		a->o.hooks_dirs = a->hooks_dirs;
		return 0;
	case ARG_KERNEL_CMDLINE:
		if (!valid_cmdline(optarg)) {
			log_error("invalid --kernel-cmdline '%s': no quotes, control characters "
				  "or any of \\$`;&|<>{}#", optarg);
			return -EINVAL;
		}
		a->o.kernel_cmdline = optarg;
		return 0;
	case ARG_GRUB_PASSWORD_FILE:
		a->grub_password_file = optarg;
		return 0;
	case ARG_HOSTNAME:
		if (!hostname_valid(optarg)) {
			log_error("invalid --hostname '%s'", optarg);
			return -EINVAL;
		}
		a->o.hostname = optarg;
		return 0;
	case 'h':
		help();
		return 1;
	default:
		log_error("see 'cvm-image build --help'");
		return -EINVAL;
	}
}

static int do_build(int argc, char *argv[])
{
	_cleanup_secret_ struct secret grub_password = {};
	struct build_args a = {
		.o = {
			.mapper_name = "cr_root",
			.recovery_iter_ms = 2000,
			.hook_timeout = 3600,
		},
	};
	int c, r;

	while ((c = getopt_long(argc, argv, options_s, options, NULL)) != -1) {
		r = parse_option(&a, c);
		if (r != 0)
			return r > 0 ? EXIT_OK : EXIT_USAGE;
	}
	if (cmd_one_operand(argc, argv, "build", "ROOTFS tarball", &a.o.rootfs) < 0)
		return EXIT_USAGE;
	if (!a.o.output) {
		log_error("missing -o IMAGE; see 'cvm-image build --help'");
		return EXIT_USAGE;
	}
	/* Read now: a bad password file is a usage error, before anything runs. */
	if (a.grub_password_file) {
		if (keys_read_passphrase_file(a.grub_password_file, &grub_password) < 0)
			return EXIT_USAGE;
		a.o.grub_password = &grub_password;
	}

	r = build_run(&a.o);
	return exit_status_from_errno(r);
}

const struct cvm_cmd cvm_cmd_build = {
	.name = "build",
	.cmd = do_build,
	.help = "build an encrypted, EFI-bootable image from a rootfs tarball",
};
