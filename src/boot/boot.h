/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* boot: an image booted under qemu + OVMF (KVM when /dev/kvm opens, TCG otherwise), its serial
 * console driven as a person would: the key typed at grub's prompt (never on a command line),
 * the login prompt awaited, optionally a login and commands, then qemu stopped. The image is
 * never written (qemu's snapshot=on) unless persist is set. */
#pragma once

#include <stdbool.h>

#define BOOT_MAX_RUN 32
#define BOOT_MAX_CPUS 64

struct boot_options {
	const char *image;
	const char *key_file;
	const char *password_file;  /* root's password: log in and run the commands */
	const char *run[BOOT_MAX_RUN];
	unsigned n_run;
	const char *then_reboot;    /* run in the guest, reboot, and go through it all again */
	const char *log_file;       /* the serial console, the typed secrets left out */
	bool serial;                /* the serial console on stderr as it comes */
	bool expect_denied;         /* the key must be refused by grub */
	bool try_menu;              /* grub's editor and command line must ask for the superuser */
	bool json;
	bool kvm;                   /* -accel kvm instead of TCG */
	unsigned cpus;              /* -smp; 0: 2, or 1 on a host with one CPU */
	bool persist;               /* the guest's writes reach the image (no snapshot) */
	unsigned timeout;           /* seconds, for the whole run */
	unsigned prompt_timeout;    /* seconds from qemu's start, and from the reboot, to grub's prompt */
};

/* Boot and report (JSON on stdout with o->json, else the commands' output on stdout and the
 * milestones on stderr). Returns 0 when the boot went as expected (one grub prompt, the login
 * prompt, the commands run; or, with expect_denied, the key refused), -EUCLEAN when it did not
 * (said why), another -errno when qemu could not be run (logged). */
int boot_run(const struct boot_options *o);
