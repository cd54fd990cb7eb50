/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvm-image inspect: options into struct inspect_options, then the checks. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "cmd.h"
#include "exitcode.h"
#include "common/log.h"
#include "inspect/inspect.h"

enum {
	ARG_KEY_FILE = 0x100,
	ARG_RECOVERY_FILE,
	ARG_DEEP,
	ARG_JSON,
};

static const struct option options[] = {
	{ "key-file", required_argument, NULL, ARG_KEY_FILE },
	{ "recovery-passphrase-file", required_argument, NULL, ARG_RECOVERY_FILE },
	{ "deep", no_argument, NULL, ARG_DEEP },
	{ "json", no_argument, NULL, ARG_JSON },
	{ "help", no_argument, NULL, 'h' },
	{},
};

static void help(void)
{
	printf("Usage: cvm-image inspect IMAGE [--key-file KEY | --recovery-passphrase-file FILE]\n"
	       "                        [--deep] [--json]\n"
	       "Check that an image is what cvm-image builds: its GPT, ESP, grub's early config and\n"
	       "LUKS header without a key; with one, its root filesystem, key file, pin, crypttab,\n"
	       "initramfs settings, grub and every initramfs. Raw or qcow2; the image is only read.\n"
	       "\n"
	       "Options:\n"
	       "      --key-file KEY        the image's key (e.g. IMAGE.key)\n"
	       "      --recovery-passphrase-file FILE\n"
	       "                            open it with the recovery passphrase instead\n"
	       "      --deep                also open it with the kernel's dm-crypt in the libguestfs\n"
	       "                            appliance: e2fsck -fn, the files compared (needs a key)\n"
	       "      --json                print everything as one JSON object (never the key)\n"
	       "  -h, --help                show this help\n"
	       "\n"
	       "Exit status: 0 every check passed (warnings allowed), 1 a check failed or the image\n"
	       "cannot be read, 2 usage error, 3 unsuitable environment. See cvm-image-inspect(1).\n");
}

static int do_inspect(int argc, char *argv[])
{
	struct inspect_options o = {};
	int c;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case ARG_KEY_FILE:
			o.key_file = optarg;
			break;
		case ARG_RECOVERY_FILE:
			o.recovery_file = optarg;
			break;
		case ARG_DEEP:
			o.deep = true;
			break;
		case ARG_JSON:
			o.json = true;
			break;
		case 'h':
			help();
			return EXIT_OK;
		default:
			log_error("see 'cvm-image inspect --help'");
			return EXIT_USAGE;
		}
	}
	if (cmd_one_operand(argc, argv, "inspect", "IMAGE", &o.image) < 0)
		return EXIT_USAGE;
	if (o.key_file && o.recovery_file) {
		log_error("give at most one of --key-file and --recovery-passphrase-file");
		return EXIT_USAGE;
	}
	if (o.deep && !o.key_file && !o.recovery_file) {
		log_error("--deep needs --key-file or --recovery-passphrase-file");
		return EXIT_USAGE;
	}
	return exit_status_from_errno(inspect_run(&o));
}

const struct cvm_cmd cvm_cmd_inspect = {
	.name = "inspect",
	.cmd = do_inspect,
	.help = "check that an image is what cvm-image builds",
};
