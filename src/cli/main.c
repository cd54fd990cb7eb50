/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvm-image: global options, the command table, dispatch and exit codes. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "exitcode.h"
#include "common/log.h"
#include "shared/cleanup.h"
#include "shared/interrupt.h"
#include "shared/util.h"

static const struct cvm_cmd *const cmds[] = {
	&cvm_cmd_boot,
	&cvm_cmd_build,
	&cvm_cmd_hooks,
	&cvm_cmd_inspect,
	&cvm_cmd_rekey,
	&cvm_cmd_secret,
};

static const char options_s[] = "+hVvq";
static const struct option options[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "debug", no_argument, NULL, 'd' },
	{},
};

static void help(void)
{
	printf("Usage: cvm-image [OPTIONS] COMMAND [COMMAND OPTIONS]\n"
	       "Build encrypted, EFI-bootable VM disk images for confidential computing.\n"
	       "\n"
	       "Options:\n"
	       "  -v, --verbose   more progress detail\n"
	       "  -q, --quiet     errors only\n"
	       "      --debug     also the output of helper programs and libraries\n"
	       "  -V, --version   show the version\n"
	       "  -h, --help      show this help\n"
	       "\n"
	       "Commands:\n");
	for (size_t i = 0; i < ELEMENTSOF(cmds); i++)
		printf("  %-14s  %s\n", cmds[i]->name, cmds[i]->help);
	printf("\nExit status: 0 success, 1 failure, 2 usage error, 3 unsuitable environment.\n"
	       "See cvm-image(1).\n");
}

int main(int argc, char *argv[])
{
	const char *name;
	int c;

	while ((c = getopt_long(argc, argv, options_s, options, NULL)) != -1) {
		switch (c) {
		case 'h':
			help();
			return EXIT_OK;
		case 'V':
			printf("cvm-image %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		case 'v':
			log_set_max_level(LOG_LEVEL_INFO);
			break;
		case 'q':
			log_set_max_level(LOG_LEVEL_WARNING);
			break;
		case 'd':
			log_set_max_level(LOG_LEVEL_DEBUG);
			break;
		default:
			log_error("see 'cvm-image --help'");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		log_error("missing command; see 'cvm-image --help'");
		return EXIT_USAGE;
	}
	name = argv[optind];
	for (size_t i = 0; i < ELEMENTSOF(cmds); i++) {
		if (!streq(cmds[i]->name, name))
			continue;
		if (interrupt_install() < 0) {
			log_error("cannot install signal handlers");
			return EXIT_FAILED;
		}
		/* Each command parses from its own name on. */
		argc -= optind;
		argv += optind;
		optind = 0;
		return cmds[i]->cmd(argc, argv);
	}
	log_error("unknown command '%s'; see 'cvm-image --help'", name);
	return EXIT_USAGE;
}
