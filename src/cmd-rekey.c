/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvm-image rekey: options into struct rekey_options, then the rekey. */
#include <getopt.h>
#include <stdio.h>

#include "cmd.h"
#include "exitcode.h"
#include "log.h"
#include "rekey.h"

enum {
	ARG_KEY_FILE = 0x100,
	ARG_RECOVERY_FILE,
	ARG_NEW_KEY_OUT,
	ARG_JSON,
};

static const struct option options[] = {
	{ "key-file", required_argument, NULL, ARG_KEY_FILE },
	{ "recovery-passphrase-file", required_argument, NULL, ARG_RECOVERY_FILE },
	{ "new-key-out", required_argument, NULL, ARG_NEW_KEY_OUT },
	{ "json", no_argument, NULL, ARG_JSON },
	{ "help", no_argument, NULL, 'h' },
	{},
};

static void help(void)
{
	printf("Usage: cvm-image rekey IMAGE (--key-file OLD | --recovery-passphrase-file FILE)\n"
	       "                      [--new-key-out FILE] [--json]\n"
	       "Give an image built by cvm-image a new slot-0 key, in place: the LUKS header, the\n"
	       "key file in the root filesystem and in every initramfs. No boot, no mount.\n"
	       "\n"
	       "Options:\n"
	       "      --key-file OLD        the image's current key (e.g. IMAGE.key)\n"
	       "      --recovery-passphrase-file FILE\n"
	       "                            open the image with the recovery passphrase instead\n"
	       "      --new-key-out FILE    where the new key goes (default: IMAGE.key, replaced)\n"
	       "      --json                print a JSON summary on stdout\n"
	       "  -h, --help                show this help\n"
	       "\n"
	       "See cvm-image-rekey(1).\n");
}

static int do_rekey(int argc, char *argv[])
{
	struct rekey_options o = {};
	int c;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case ARG_KEY_FILE:
			o.key_file = optarg;
			break;
		case ARG_RECOVERY_FILE:
			o.recovery_file = optarg;
			break;
		case ARG_NEW_KEY_OUT:
			o.new_key_out = optarg;
			break;
		case ARG_JSON:
			o.json = true;
			break;
		case 'h':
			help();
			return EXIT_OK;
		default:
			log_error("see 'cvm-image rekey --help'");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		log_error("missing IMAGE; see 'cvm-image rekey --help'");
		return EXIT_USAGE;
	}
	if (optind + 1 < argc) {
		log_error("unexpected argument '%s'", argv[optind + 1]);
		return EXIT_USAGE;
	}
	if (!o.key_file == !o.recovery_file) {
		log_error("give exactly one of --key-file and --recovery-passphrase-file");
		return EXIT_USAGE;
	}
	o.image = argv[optind];
	return exit_status_from_errno(rekey_run(&o));
}

const struct cvm_cmd cvm_cmd_rekey = {
	.name = "rekey",
	.cmd = do_rekey,
	.help = "give an image a new key, offline",
};
