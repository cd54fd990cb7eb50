/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvm-image secret: the disk key for an AMD SEV guest: table, measure, build, inject. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "exitcode.h"
#include "common/log.h"
#include "sev/verbs.h"
#include "shared/cleanup.h"
#include "shared/util.h"

enum {
	ARG_KEY_FILE = 0x100,
	ARG_IMAGE,
	ARG_ENTRY,
	ARG_FORCE,
	ARG_TIK,
	ARG_TEK,
	ARG_BLOB,
	ARG_API_MAJOR,
	ARG_API_MINOR,
	ARG_BUILD_ID,
	ARG_POLICY,
	ARG_FIRMWARE,
	ARG_KERNEL,
	ARG_INITRD,
	ARG_CMDLINE,
	ARG_LAUNCH_DIGEST,
	ARG_TABLE,
	ARG_IV,
	ARG_QMP_JSON,
	ARG_QMP,
	ARG_NO_CONT,
	ARG_JSON,
	ARG_MIN_API,
	ARG_MIN_BUILD,
	ARG_TIMEOUT,
};

static const struct option options[] = {
	{ "key-file", required_argument, NULL, ARG_KEY_FILE },
	{ "image", required_argument, NULL, ARG_IMAGE },
	{ "entry", required_argument, NULL, ARG_ENTRY },
	{ "output", required_argument, NULL, 'o' },
	{ "force", no_argument, NULL, ARG_FORCE },
	{ "tik", required_argument, NULL, ARG_TIK },
	{ "tek", required_argument, NULL, ARG_TEK },
	{ "launch-measure-blob", required_argument, NULL, ARG_BLOB },
	{ "api-major", required_argument, NULL, ARG_API_MAJOR },
	{ "api-minor", required_argument, NULL, ARG_API_MINOR },
	{ "build-id", required_argument, NULL, ARG_BUILD_ID },
	{ "policy", required_argument, NULL, ARG_POLICY },
	{ "firmware", required_argument, NULL, ARG_FIRMWARE },
	{ "kernel", required_argument, NULL, ARG_KERNEL },
	{ "initrd", required_argument, NULL, ARG_INITRD },
	{ "cmdline", required_argument, NULL, ARG_CMDLINE },
	{ "launch-digest", required_argument, NULL, ARG_LAUNCH_DIGEST },
	{ "table", required_argument, NULL, ARG_TABLE },
	{ "iv", required_argument, NULL, ARG_IV },
	{ "qmp-json", required_argument, NULL, ARG_QMP_JSON },
	{ "qmp", required_argument, NULL, ARG_QMP },
	{ "no-cont", no_argument, NULL, ARG_NO_CONT },
	{ "min-api", required_argument, NULL, ARG_MIN_API },
	{ "min-build", required_argument, NULL, ARG_MIN_BUILD },
	{ "timeout", required_argument, NULL, ARG_TIMEOUT },
	{ "json", no_argument, NULL, ARG_JSON },
	{ "help", no_argument, NULL, 'h' },
	{},
};

static void help(void)
{
	printf("Usage: cvm-image secret table (--key-file KEY | --image IMAGE) [--entry GUID:FILE]...\n"
	       "                             -o TABLE [--force]\n"
	       "       cvm-image secret measure --tik FILE --launch-measure-blob B64|FILE\n"
	       "                             --api-major N --api-minor N --build-id N --policy N\n"
	       "                             (--firmware OVMF.fd [--kernel K --initrd I --cmdline S]\n"
	       "                              | --launch-digest B64)\n"
	       "       cvm-image secret build --tik FILE --tek FILE --launch-measure-blob B64|FILE\n"
	       "                             (--key-file KEY | --table TABLE) [--iv B64]\n"
	       "                             [--qmp-json FILE] [MEASURE OPTIONS] HEADER PAYLOAD\n"
	       "       cvm-image secret inject --qmp SOCKET --tik FILE --tek FILE\n"
	       "                             (--firmware OVMF.fd [...] | --launch-digest B64)\n"
	       "                             (--key-file KEY | --table TABLE) [--policy N]\n"
	       "                             [--min-api MAJOR.MINOR] [--min-build N] [--timeout S]\n"
	       "                             [--no-cont] [--json]\n"
	       "Give an AMD SEV guest its disk key: the EFI secret table grub's efisecret reads, the\n"
	       "launch measurement check, the LAUNCH_SECRET packet, and QMP injection.\n"
	       "\n"
	       "Options:\n"
	       "      --key-file KEY        the image's key file: the disk passphrase entry\n"
	       "      --image IMAGE         take the key from IMAGE.key, checked to open IMAGE (raw)\n"
	       "      --entry GUID:FILE     a further secret table entry, FILE's bytes verbatim\n"
	       "  -o, --output TABLE        the table to write (mode 0600: it holds the key)\n"
	       "      --force               replace existing output files\n"
	       "      --tik FILE            the TIK of the launch session (16 bytes, raw or base64)\n"
	       "      --tek FILE            the TEK of the launch session (16 bytes, raw or base64)\n"
	       "      --launch-measure-blob B64|FILE\n"
	       "                            query-sev-launch-measure's data: measurement and nonce\n"
	       "      --api-major N, --api-minor N, --build-id N, --policy N\n"
	       "                            the platform's SEV API version and the guest policy\n"
	       "      --firmware OVMF.fd    the launch digest from the firmware QEMU loads\n"
	       "      --kernel K, --initrd I, --cmdline S\n"
	       "                            with QEMU's kernel hashes (-kernel, kernel-hashes=on)\n"
	       "      --launch-digest B64   the launch digest itself (SHA-256)\n"
	       "      --table TABLE         a secret table made by 'secret table'\n"
	       "      --iv B64              the packet's IV (default: random)\n"
	       "      --qmp-json FILE       also write the sev-inject-launch-secret command\n"
	       "      --qmp SOCKET          QEMU's QMP socket; QEMU started paused (-S)\n"
	       "      --no-cont             do not resume the guest after the injection\n"
	       "  inject: the host's query-sev must match, or nothing is sent:\n"
	       "      --policy N            the guest policy required, exactly (default: any with\n"
	       "                            NODBG and NOKS set: no SEV debugging, no key sharing)\n"
	       "      --min-api MAJOR.MINOR the lowest SEV firmware API version accepted\n"
	       "      --min-build N         the lowest firmware build accepted (with --min-api:\n"
	       "                            at that version)\n"
	       "      --timeout S           give up on QEMU after S seconds in all (default 120;\n"
	       "                            each answer within 30)\n"
	       "      --json                print what was done as JSON on stdout\n"
	       "  -h, --help                show this help\n"
	       "\n"
	       "Key material is read from files only and wiped after use. See cvm-image-secret(1).\n");
}


static int parse_number(const char *s, const char *what, int64_t max, int64_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 0); /* decimal, or hex with 0x */
	if (errno || end == s || *end || v < 0 || v > max) {
		log_error("invalid %s '%s': expected a number from 0 to %" PRId64 " (decimal or 0x hex)",
			  what, s, max);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int __attribute__((format(printf, 1, 2))) usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("cvm-image: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -EINVAL;
}

/* What each verb requires; the rest is checked where it is read. */
static int check_options(struct secret_options *o, int argc, char **argv)
{
	bool key_ok = !!o->key_file + !!o->image + !!o->table == 1;
	const char *v = o->verb;

	if (!streq(v, "inject") && (o->min_api_major >= 0 || o->min_build >= 0))
		return usage("%s: --min-api and --min-build go with inject", v);
	if (o->kernel && (!o->initrd || !o->cmdline))
		return usage("%s: --kernel needs --initrd and --cmdline", v);
	if ((o->initrd || o->cmdline) && !o->kernel)
		return usage("%s: --initrd and --cmdline go with --kernel", v);
	if (o->firmware && o->launch_digest)
		return usage("%s: give --firmware or --launch-digest, not both", v);
	if (o->kernel && !o->firmware)
		return usage("%s: --kernel goes with --firmware", v);
	if (streq(v, "table")) {
		if (o->table || !key_ok)
			return usage("%s: give --key-file KEY or --image IMAGE", v);
		if (!o->output)
			return usage("%s: missing -o TABLE", v);
	} else if (streq(v, "measure")) {
		if (!o->tik || !o->blob || !secret_have_measure_options(o))
			return usage("%s: give --tik, --launch-measure-blob and --firmware or "
				     "--launch-digest", v);
		if (secret_need_platform(o) < 0)
			return -EINVAL;
	} else if (streq(v, "build")) {
		if (!o->tik || !o->tek || !o->blob)
			return usage("%s: give --tik, --tek and --launch-measure-blob", v);
		if (!key_ok || o->image)
			return usage("%s: give --key-file KEY or --table TABLE", v);
		if (argc - optind != 2)
			return usage("%s: give the HEADER and PAYLOAD files to write", v);
		o->header = argv[optind];
		o->payload = argv[optind + 1];
	} else if (streq(v, "inject")) {
		if (!o->qmp || !o->tik || !o->tek || !secret_have_measure_options(o))
			return usage("%s: give --qmp, --tik, --tek and --firmware or --launch-digest", v);
		if (!key_ok || o->image)
			return usage("%s: give --key-file KEY or --table TABLE", v);
	}
	if (!streq(v, "build") && optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	return 0;
}

/* "--api-major" for ARG_API_MAJOR, for messages. */
static const char *option_name(int val)
{
	static char name[32];

	for (size_t i = 0; options[i].name; i++)
		if (options[i].val == val) {
			snprintf(name, sizeof(name), "--%s", options[i].name);
			return name;
		}
	return "?";
}

static int parse_options(int argc, char *argv[], struct secret_options *o)
{
	int64_t n;
	int c;

	while ((c = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
		switch (c) {
		case ARG_KEY_FILE: o->key_file = optarg; break;
		case ARG_IMAGE: o->image = optarg; break;
		case ARG_ENTRY:
			if (o->n_entries >= SECRET_ENTRIES_MAX)
				return usage("at most %d --entry options", SECRET_ENTRIES_MAX);
			o->entries[o->n_entries++] = optarg;
			break;
		case 'o': o->output = optarg; break;
		case ARG_FORCE: o->force = true; break;
		case ARG_TIK: o->tik = optarg; break;
		case ARG_TEK: o->tek = optarg; break;
		case ARG_BLOB: o->blob = optarg; break;
		case ARG_API_MAJOR:
		case ARG_API_MINOR:
		case ARG_BUILD_ID: {
			long *dest = c == ARG_API_MAJOR ? &o->api_major :
				     c == ARG_API_MINOR ? &o->api_minor : &o->build_id;

			if (parse_number(optarg, option_name(c), 255, &n) < 0)
				return -EINVAL;
			*dest = (long)n;
			break;
		}
		case ARG_POLICY:
			if (parse_number(optarg, "--policy", UINT32_MAX, &o->policy) < 0)
				return -EINVAL;
			break;
		case ARG_FIRMWARE: o->firmware = optarg; break;
		case ARG_KERNEL: o->kernel = optarg; break;
		case ARG_INITRD: o->initrd = optarg; break;
		case ARG_CMDLINE: o->cmdline = optarg; break;
		case ARG_LAUNCH_DIGEST: o->launch_digest = optarg; break;
		case ARG_TABLE: o->table = optarg; break;
		case ARG_IV: o->iv = optarg; break;
		case ARG_QMP_JSON: o->qmp_json = optarg; break;
		case ARG_QMP: o->qmp = optarg; break;
		case ARG_NO_CONT: o->no_cont = true; break;
		case ARG_MIN_API: {
			unsigned a, b;
			char tail;

			if (sscanf(optarg, "%u.%u%c", &a, &b, &tail) != 2 || a > 255 || b > 255)
				return usage("invalid --min-api '%s': expected MAJOR.MINOR, each 0 to 255", optarg);
			o->min_api_major = a, o->min_api_minor = b;
			break;
		}
		case ARG_MIN_BUILD:
			if (parse_number(optarg, "--min-build", 255, &n) < 0)
				return -EINVAL;
			o->min_build = (long)n;
			break;
		case ARG_TIMEOUT:
			if (parse_number(optarg, "--timeout", 86400, &n) < 0 || n == 0)
				return n == 0 ? usage("invalid --timeout '%s': at least 1 second", optarg) : -EINVAL;
			o->timeout = (unsigned)n;
			break;
		case ARG_JSON: o->json = true; break;
		case 'h':
			help();
			return 1;
		default:
			return usage("see '%s'", "cvm-image secret --help");
		}
	}
	return check_options(o, argc, argv);
}

static const struct {
	const char *name;
	int (*run)(const struct secret_options *o);
} verbs[] = {
	{ "table", secret_verb_table },
	{ "measure", secret_verb_measure },
	{ "build", secret_verb_build },
	{ "inject", secret_verb_inject },
};

/* cvm-image secret VERB [OPTIONS]: argv[0] is "secret". */
static int do_secret(int argc, char *argv[])
{
	struct secret_options o = { .api_major = -1, .api_minor = -1, .build_id = -1, .policy = -1,
				    .min_api_major = -1, .min_api_minor = -1, .min_build = -1,
				    .timeout = 120 };
	int r;

	if (argc < 2) {
		log_error("missing subcommand: table, measure, build or inject; see 'cvm-image secret --help'");
		return EXIT_USAGE;
	}
	if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
		help();
		return EXIT_OK;
	}
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
		if (!streq(argv[1], verbs[i].name))
			continue;
		o.verb = verbs[i].name;
		optind = 0; /* a fresh getopt: argv[0] is the subcommand */
		r = parse_options(argc - 1, argv + 1, &o);
		if (r > 0)
			return EXIT_OK;
		if (r < 0)
			return EXIT_USAGE;
		r = verbs[i].run(&o);
		/* A measurement that does not match is a failure (1), not a usage error. */
		return r == -EBADMSG ? EXIT_FAILED : exit_status_from_errno(r);
	}
	log_error("unknown subcommand '%s': table, measure, build or inject", argv[1]);
	return EXIT_USAGE;
}

const struct cvm_cmd cvm_cmd_secret = {
	.name = "secret",
	.cmd = do_secret,
	.help = "give an AMD SEV guest its disk key (table, measure, build, inject)",
};
