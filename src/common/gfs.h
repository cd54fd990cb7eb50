/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A libguestfs handle as cvm-image uses one: quiet, no trace, KVM only where it works. */
#pragma once

#include <stdbool.h>

#include <guestfs.h>

/*
 * A new handle: errors are returned, not printed (we log once); the call trace is off (it
 * would print keys); the appliance's console goes to the debug log; KVM where a guest
 * runs with it (kvm_works()) and TCG otherwise, unless $LIBGUESTFS_BACKEND_SETTINGS says:
 * a /dev/kvm that opens need not work (nested virtualisation, many CI runners), and then
 * the appliance hangs where TCG only takes minutes. Logs.
 */
int gfs_new(guestfs_h **ret);

/* Whether $LIBGUESTFS_BACKEND_SETTINGS is set and not empty: then it decides KVM or TCG. */
bool gfs_settings_given(void);

/* Log libguestfs's last error for what; returns its -errno (-EIO when it has none). */
int gfs_error(guestfs_h *g, const char *what);
