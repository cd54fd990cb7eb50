/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvm-image boot: options into struct boot_options, then the boot. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "exitcode.h"
#include "boot/boot.h"
#include "common/log.h"
#include "shared/cleanup.h"
#include "shared/util.h"

enum {
	ARG_KEY_FILE = 0x100,
	ARG_PASSWORD_FILE,
	ARG_RUN,
	ARG_THEN_REBOOT,
	ARG_TIMEOUT,
	ARG_LOG,
	ARG_SERIAL,
	ARG_EXPECT,
	ARG_TRY_MENU,
	ARG_JSON,
	ARG_KVM,
	ARG_PERSIST,
	ARG_PROMPT_TIMEOUT,
	ARG_CPUS,
};

static const struct option options[] = {
	{ "key-file", required_argument, NULL, ARG_KEY_FILE },
	{ "root-password-file", required_argument, NULL, ARG_PASSWORD_FILE },
	{ "run", required_argument, NULL, ARG_RUN },
	{ "then-reboot", required_argument, NULL, ARG_THEN_REBOOT },
	{ "timeout", required_argument, NULL, ARG_TIMEOUT },
	{ "prompt-timeout", required_argument, NULL, ARG_PROMPT_TIMEOUT },
	{ "log", required_argument, NULL, ARG_LOG },
	{ "serial", no_argument, NULL, ARG_SERIAL },
	{ "expect", required_argument, NULL, ARG_EXPECT },
	{ "try-menu", no_argument, NULL, ARG_TRY_MENU },
	{ "json", no_argument, NULL, ARG_JSON },
	{ "kvm", no_argument, NULL, ARG_KVM },
	{ "cpus", required_argument, NULL, ARG_CPUS },
	{ "persist", no_argument, NULL, ARG_PERSIST },
	{ "help", no_argument, NULL, 'h' },
	{},
};

static void help(void)
{
	printf("Usage: cvm-image boot IMAGE --key-file KEY [--root-password-file FILE [--run CMD]...\n"
	       "                     [--then-reboot CMD]] [--timeout S] [--prompt-timeout S]\n"
	       "                     [--serial] [--log FILE]\n"
	       "                     [--expect boot|denied] [--try-menu] [--persist] [--kvm]\n"
	       "                     [--cpus N] [--json]\n"
	       "Boot an image under qemu + OVMF (TCG, or KVM with --kvm), type the key at\n"
	       "grub's prompt over the serial line and wait for the login prompt. The image is\n"
	       "never written (qemu's snapshot mode) unless --persist is given.\n"
	       "\n"
	       "Options:\n"
	       "      --key-file KEY        the key to type at grub's passphrase prompt\n"
	       "      --root-password-file FILE\n"
	       "                            log in as root with this password\n"
	       "      --run CMD             after logging in, run CMD (repeatable); its output is\n"
	       "                            printed (in \"output\" with --json)\n"
	       "      --then-reboot CMD     then run CMD, reboot and go through it all again\n"
	       "      --timeout S           give up after S seconds (default: 900)\n"
	       "      --prompt-timeout S    give up when grub's passphrase prompt has not come S\n"
	       "                            seconds after qemu's start or the reboot (default: 600)\n"
	       "      --serial              show the serial console on stderr as it comes\n"
	       "      --log FILE            write the serial console to FILE (the key left out)\n"
	       "      --expect WHAT         boot (default) or denied: grub must refuse the key\n"
	       "      --try-menu            grub's menu editor and command line must ask for the\n"
	       "                            superuser and refuse a wrong password (after\n"
	       "                            --then-reboot's reboot too)\n"
	       "      --persist             keep what the guest writes (its package upgrades, say)\n"
	       "                            in the image instead of discarding it\n"
	       "      --kvm                 use KVM (where /dev/kvm works) instead of TCG\n"
	       "      --cpus N              the guest's virtual CPUs (default: 2, or 1 on a\n"
	       "                            host with one CPU)\n"
	       "      --json                print the milestones (seconds), outcome and outputs\n"
	       "  -h, --help                show this help\n"
	       "\n"
	       "Exit status: 0 it booted as expected with one passphrase prompt, 1 it did not,\n"
	       "2 usage error, 3 qemu or OVMF missing. See cvm-image-boot(1).\n");
}

static int do_boot(int argc, char *argv[])
{
	struct boot_options o = { .timeout = 900, .prompt_timeout = 600 };
	int c;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case ARG_KEY_FILE:
			o.key_file = optarg;
			break;
		case ARG_PASSWORD_FILE:
			o.password_file = optarg;
			break;
		case ARG_RUN:
			if (o.n_run == BOOT_MAX_RUN) {
				log_error("at most %d --run commands", BOOT_MAX_RUN);
				return EXIT_USAGE;
			}
			o.run[o.n_run++] = optarg;
			break;
		case ARG_THEN_REBOOT:
			o.then_reboot = optarg;
			break;
		case ARG_TIMEOUT:
		case ARG_PROMPT_TIMEOUT:
			if (parse_seconds(optarg, c == ARG_TIMEOUT ? &o.timeout : &o.prompt_timeout) < 0) {
				log_error("invalid --%s '%s': expected 1 to 86400 seconds",
					  c == ARG_TIMEOUT ? "timeout" : "prompt-timeout", optarg);
				return EXIT_USAGE;
			}
			break;
		case ARG_LOG:
			o.log_file = optarg;
			break;
		case ARG_SERIAL:
			o.serial = true;
			break;
		case ARG_EXPECT:
			if (streq(optarg, "denied"))
				o.expect_denied = true;
			else if (!streq(optarg, "boot")) {
				log_error("invalid --expect '%s': expected boot or denied", optarg);
				return EXIT_USAGE;
			}
			break;
		case ARG_TRY_MENU:
			o.try_menu = true;
			break;
		case ARG_JSON:
			o.json = true;
			break;
		case ARG_KVM:
			o.kvm = true;
			break;
		case ARG_CPUS: {
			unsigned long v;

			if (parse_1_to(optarg, BOOT_MAX_CPUS, &v) < 0) {
				log_error("invalid --cpus '%s': expected 1 to %d", optarg, BOOT_MAX_CPUS);
				return EXIT_USAGE;
			}
			o.cpus = (unsigned)v;
			break;
		}
		case ARG_PERSIST:
			o.persist = true;
			break;
		case 'h':
			help();
			return EXIT_OK;
		default:
			log_error("see 'cvm-image boot --help'");
			return EXIT_USAGE;
		}
	}
	if (cmd_one_operand(argc, argv, "boot", "IMAGE", &o.image) < 0)
		return EXIT_USAGE;
	if (!o.key_file) {
		log_error("--key-file KEY is needed: it is what is typed at grub's prompt");
		return EXIT_USAGE;
	}
	if ((o.n_run || o.then_reboot) && !o.password_file) {
		log_error("--run and --then-reboot need --root-password-file to log in");
		return EXIT_USAGE;
	}
	if (o.expect_denied && (o.n_run || o.then_reboot || o.try_menu || o.password_file)) {
		log_error("--expect denied goes with none of --root-password-file, --run, "
			  "--then-reboot and --try-menu");
		return EXIT_USAGE;
	}
	return exit_status_from_errno(boot_run(&o));
}

const struct cvm_cmd cvm_cmd_boot = {
	.name = "boot",
	.cmd = do_boot,
	.help = "boot an image under qemu and type its key at grub's prompt",
};
