/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvm_works(): the answer of a guest that ran, or why none did; asked once per process. */
#include <string.h>
#include <unistd.h>

#include "common/kvm.h"

#include "tap.h"

int main(void)
{
	const char *why = NULL, *why2 = NULL;
	bool works = kvm_works(&why);

	if (access("/dev/kvm", F_OK) < 0)
		ok(!works && why && strcmp(why, "no /dev/kvm") == 0,
		   "no /dev/kvm: KVM does not work, and that is why (%s)", why ?: "(null)");
	else
		ok(works ? why == NULL : why && why[0],
		   "a /dev/kvm: a guest ran with it, or why not is said (%s)",
		   works ? "it works" : why ?: "(null)");
	ok(kvm_works(&why2) == works && why2 == why, "asked again: the same answer, not probed again");
	return tap_done();
}
