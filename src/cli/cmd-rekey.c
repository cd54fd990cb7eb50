/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvm-image rekey: options into struct rekey_options, then the rekey. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>

#include "cmd.h"
#include "exitcode.h"
#include "common/log.h"
#include "rekey/rekey.h"
#include "shared/util.h"

enum {
	ARG_KEY_FILE = 0x100,
	ARG_RECOVERY_FILE,
	ARG_NEW_KEY_OUT,
	ARG_JSON,
	ARG_REENCRYPT,
	ARG_FORCE,
	ARG_RECOVERY_ITER_TIME,
	ARG_NEW_UUID,
	ARG_KILL_SLOT,
	ARG_RESUME,
};

static const struct option options[] = {
	{ "key-file", required_argument, NULL, ARG_KEY_FILE },
	{ "recovery-passphrase-file", required_argument, NULL, ARG_RECOVERY_FILE },
	{ "new-key-out", required_argument, NULL, ARG_NEW_KEY_OUT },
	{ "json", no_argument, NULL, ARG_JSON },
	{ "reencrypt", no_argument, NULL, ARG_REENCRYPT },
	{ "output", required_argument, NULL, 'o' },
	{ "force", no_argument, NULL, ARG_FORCE },
	{ "new-uuid", no_argument, NULL, ARG_NEW_UUID },
	{ "recovery-iter-time", required_argument, NULL, ARG_RECOVERY_ITER_TIME },
	{ "kill-slot", required_argument, NULL, ARG_KILL_SLOT },
	{ "resume", no_argument, NULL, ARG_RESUME },
	{ "help", no_argument, NULL, 'h' },
	{},
};

static void help(void)
{
	printf("Usage: cvm-image rekey IMAGE (--key-file OLD | --recovery-passphrase-file FILE)\n"
	       "                      [--new-key-out FILE] [--reencrypt -o NEW_IMAGE [--new-uuid]]\n"
	       "                      [--kill-slot N]... [--json]\n"
	       "       cvm-image rekey IMAGE --resume [--key-file OLD] [--new-key-out FILE]\n"
	       "Give an image built by cvm-image a new slot-0 key, in place: the LUKS header, the\n"
	       "key file in the root filesystem and in every initramfs. No boot, no mount.\n"
	       "\n"
	       "Options:\n"
	       "      --key-file OLD        the image's current key (e.g. IMAGE.key)\n"
	       "      --recovery-passphrase-file FILE\n"
	       "                            open the image with the recovery passphrase instead\n"
	       "      --new-key-out FILE    where the new key goes (default: IMAGE.key, replaced;\n"
	       "                            NEW_IMAGE.key with --reencrypt)\n"
	       "      --reencrypt           write a copy with a new volume key instead (needs -o)\n"
	       "  -o, --output NEW_IMAGE    the copy --reencrypt writes (raw, or qcow2 by extension)\n"
	       "      --force               replace an existing NEW_IMAGE and its key file\n"
	       "      --new-uuid            give the copy a new LUKS UUID as well\n"
	       "      --recovery-iter-time MS\n"
	       "                            PBKDF2 time for the copy's recovery slot (default: 2000)\n"
	       "      --kill-slot N         also remove key slot N (0-7), one neither key opens\n"
	       "      --resume              finish or undo a rekey that was interrupted (FILE.new\n"
	       "                            left); OLD defaults to FILE\n"
	       "      --json                print a JSON summary on stdout\n"
	       "  -h, --help                show this help\n"
	       "\n"
	       "See cvm-image-rekey(1).\n");
}

static int do_rekey(int argc, char *argv[])
{
	struct rekey_options o = { .recovery_iter_ms = 2000 };
	bool reencrypt = false;
	int c;

	while ((c = getopt_long(argc, argv, "ho:", options, NULL)) != -1) {
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
		case ARG_REENCRYPT:
			reencrypt = true;
			break;
		case 'o':
			o.output = optarg;
			break;
		case ARG_FORCE:
			o.force = true;
			break;
		case ARG_NEW_UUID:
			o.new_uuid = true;
			break;
		case ARG_RECOVERY_ITER_TIME:
			if (parse_iter_time(optarg, &o.recovery_iter_ms) < 0) {
				log_error("invalid --recovery-iter-time '%s': expected 1 to 60000 ms",
					  optarg);
				return EXIT_USAGE;
			}
			break;
		case ARG_KILL_SLOT: {
			char *end;
			long n;

			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || n < 0 || n > 7) {
				log_error("invalid --kill-slot '%s': expected a LUKS1 key slot, 0 to 7",
					  optarg);
				return EXIT_USAGE;
			}
			o.kill_slots |= 1u << n;
			break;
		}
		case ARG_RESUME:
			o.resume = true;
			break;
		case 'h':
			help();
			return EXIT_OK;
		default:
			log_error("see 'cvm-image rekey --help'");
			return EXIT_USAGE;
		}
	}
	if (cmd_one_operand(argc, argv, "rekey", "IMAGE", &o.image) < 0)
		return EXIT_USAGE;
	if (o.resume && (reencrypt || o.recovery_file || o.kill_slots)) {
		log_error("--resume goes with none of --reencrypt, --recovery-passphrase-file and "
			  "--kill-slot");
		return EXIT_USAGE;
	}
	if (!o.resume && !o.key_file == !o.recovery_file) {
		log_error("give exactly one of --key-file and --recovery-passphrase-file");
		return EXIT_USAGE;
	}
	if (reencrypt != !!o.output) {
		log_error("--reencrypt and -o NEW_IMAGE go together");
		return EXIT_USAGE;
	}
	if (o.kill_slots && reencrypt) {
		log_error("--kill-slot is for an in-place rekey: the --reencrypt copy has no other slots");
		return EXIT_USAGE;
	}
	if (o.new_uuid && !reencrypt) {
		log_error("--new-uuid goes with --reencrypt -o NEW_IMAGE");
		return EXIT_USAGE;
	}
	return exit_status_from_errno(rekey_run(&o));
}

const struct cvm_cmd cvm_cmd_rekey = {
	.name = "rekey",
	.cmd = do_rekey,
	.help = "give an image a new key, offline",
};
