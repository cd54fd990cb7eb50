/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvm-image hooks list: the hooks a build would run, in order, and where each comes from. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "exitcode.h"
#include "build/distro.h"
#include "build/hooks.h"
#include "common/log.h"
#include "shared/cleanup.h"
#include "shared/util.h"

enum {
	ARG_DISTRO = 0x100,
	ARG_INITRAMFS,
	ARG_HOOKS_DIR,
};

static const struct option options[] = {
	{ "distro", required_argument, NULL, ARG_DISTRO },
	{ "initramfs", required_argument, NULL, ARG_INITRAMFS },
	{ "hooks-dir", required_argument, NULL, ARG_HOOKS_DIR },
	{ "help", no_argument, NULL, 'h' },
	{},
};

static void help(void)
{
	printf("Usage: cvm-image hooks list --distro ID [OPTIONS]\n"
	       "List the hooks a build for distro ID runs, phase by phase, and where each comes\n"
	       "from: what overrides or masks what.\n"
	       "\n"
	       "Options:\n"
	       "      --distro ID           the distro (see 'cvm-image hooks list' for the list)\n"
	       "      --initramfs TOOL      the initramfs tool, for distros that pick it from the\n"
	       "                            rootfs (INITRAMFS=auto): initramfs-tools or dracut\n"
	       "      --hooks-dir DIR       site hooks on top, as for build; repeatable\n"
	       "  -h, --help                show this help\n"
	       "\n"
	       "See cvm-image-hooks(7).\n");
}

static int list_distros(void)
{
	char **ids = distro_list();

	printf("Distros in %s/distro:\n", cvm_datadir());
	for (size_t i = 0; ids && ids[i]; i++) {
		struct distro *d = NULL;

		if (distro_load(ids[i], &d) == 0) {
			printf("  %-12s initramfs %-16s%s%s\n", d->id, d->initramfs,
			       d->parent ? " inherits " : "", d->parent ? d->parent->id : "");
			distro_free(d);
		}
		free(ids[i]);
	}
	free(ids);
	return EXIT_OK;
}

static int do_hooks(int argc, char *argv[])
{
	_cleanup_(distro_freep) struct distro *d = NULL;
	char *site[17] = {};
	size_t n_site = 0;
	const char *id = NULL, *tool = NULL;
	struct hook_set set = {};
	int c, r;

	if (argc < 2 || !streq(argv[1], "list")) {
		if (argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
			help();
			return EXIT_OK;
		}
		log_error("expected 'cvm-image hooks list'; see 'cvm-image hooks --help'");
		return EXIT_USAGE;
	}
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case ARG_DISTRO:
			id = optarg;
			break;
		case ARG_INITRAMFS:
			tool = optarg;
			break;
		case ARG_HOOKS_DIR:
			if (n_site + 1 >= ELEMENTSOF(site)) {
				log_error("too many --hooks-dir");
				return EXIT_USAGE;
			}
			site[n_site++] = optarg;
			break;
		case 'h':
			help();
			return EXIT_OK;
		default:
			log_error("see 'cvm-image hooks --help'");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (!id)
		return list_distros();

	r = distro_load(id, &d);
	if (r < 0)
		return exit_status_from_errno(r);
	if (!tool && streq(d->initramfs, "auto")) {
		log_error("distro '%s' picks its initramfs tool from the rootfs: give --initramfs "
			  "initramfs-tools or --initramfs dracut", id);
		return EXIT_USAGE;
	}
	if (!tool)
		tool = d->initramfs;
	r = hooks_resolve(d, tool, n_site ? site : NULL, &set);
	if (r < 0)
		return exit_status_from_errno(r);

	printf("distro %s, initramfs %s; directories, least specific first:\n", d->id, tool);
	for (size_t i = 0; i < set.n_dirs; i++)
		printf("  %s\n", set.dirs[i]);
	for (size_t p = 0; hook_phases[p]; p++) {
		printf("%s:\n", hook_phases[p]);
		for (size_t i = 0; i < set.n; i++) {
			const struct hook *h = &set.hooks[i];

			if (h->phase != hook_phases[p])
				continue;
			if (h->masked)
				printf("  %-24s masked by %s\n", h->name, h->path);
			else
				printf("  %-24s %s\n", h->name, h->path);
			if (h->overridden)
				printf("  %-24s   (replaces %s)\n", "", h->overridden);
		}
	}
	hook_set_done(&set);
	return EXIT_OK;
}

const struct cvm_cmd cvm_cmd_hooks = {
	.name = "hooks",
	.cmd = do_hooks,
	.help = "list the distro hooks a build runs, and where each comes from",
};
