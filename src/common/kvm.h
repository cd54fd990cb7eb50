/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whether KVM works here: proved by a guest that runs, not by /dev/kvm opening. */
#pragma once

#include <stdbool.h>

/*
 * A /dev/kvm that opens need not work: under nested virtualisation and on many CI runners
 * the first instruction fails ("KVM internal error"), and a qemu or a libguestfs appliance
 * started with KVM there hangs or dies where TCG would only be slow. So KVM counts as working
 * only when a one-instruction guest (hlt) ran to its end through the KVM API, in a forked
 * child given 5 seconds. Probed once per process. Returns true when KVM works; otherwise
 * false, and *ret_why (if not NULL) says why, as "no /dev/kvm", "/dev/kvm: Permission
 * denied", "the test guest stopped with KVM exit reason 17, not HLT", ... (static storage).
 * CVM_IMAGE_FAULT=kvm-broken makes it answer as a /dev/kvm that opens and fails would.
 */
bool kvm_works(const char **ret_why);
