/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A libguestfs handle as cvm-image uses one (gfs.h). */
#include <errno.h>
#include <stdlib.h>

#include "gfs.h"
#include "kvm.h"
#include "log.h"
#include "shared/interrupt.h"

int gfs_new(guestfs_h **ret)
{
	guestfs_h *g = guestfs_create();

	if (!g)
		return log_error_errno(ENOMEM, "cannot create a libguestfs handle");
	guestfs_set_error_handler(g, NULL, NULL);
	guestfs_set_trace(g, 0);
	guestfs_set_verbose(g, log_get_max_level() >= LOG_LEVEL_DEBUG);
	if (!gfs_settings_given() && !kvm_works(NULL) &&
	    guestfs_set_backend_setting(g, "force_tcg", "1") < 0) {
		int r = gfs_error(g, "set_backend_setting");

		guestfs_close(g);
		return r;
	}
	*ret = g;
	return 0;
}

bool gfs_settings_given(void)
{
	const char *s = getenv("LIBGUESTFS_BACKEND_SETTINGS");

	return s && *s;
}

int gfs_error(guestfs_h *g, const char *what)
{
	const char *e = guestfs_last_error(g);
	int err = guestfs_last_errno(g);

	/* The signal killed the appliance (interrupt_kill_on_signal()): that is what happened. */
	if (interrupt_pending())
		return log_error_errno(EINTR, "interrupted while the appliance ran %s", what);
	return log_error_errno(err > 0 ? err : EIO, "appliance: %s: %s", what, e ?: "failed");
}
