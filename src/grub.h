/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* grub's lock: a superuser whose PBKDF2 hash guards the menu editor and the command line. */
#pragma once

#include "shared/cleanup.h"

#define GRUB_SUPERUSER "root"
#define GRUB_PBKDF2_ITERATIONS 10000 /* grub-mkpasswd-pbkdf2's default */

/*
 * grub script that sets superusers and its password_pbkdf2 line: with password NULL, the
 * hash of a random password that is discarded at once, so nobody can unlock the editor or
 * the command line. *ret is newly allocated. Logs.
 */
int grub_lock_config(const struct secret *password, char **ret);
