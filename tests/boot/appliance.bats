#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot test beyond CI's hour ('make check-boot-more'): an image built by an ordinary user in a
# default container (the seccomp filter of tests/lib/no-namespaces: no user namespace, so
# --sandbox auto takes the appliance, whose initramfs tool runs under TCG: 10 to 20 minutes
# here).

load lib

@test "boot: Debian 12 initramfs-tools built by an ordinary user in a default container (namespaces refused: the appliance, no privilege): one prompt, locked, pinned" {
	rootfs_for_user initramfs-tools
	# Under TCG the appliance runs the initramfs tool many times slower than the host: minutes.
	as_user "$(dirname "$CVM_IMAGE")/tests/lib/no-namespaces" "$CVM_IMAGE" build --serial-console \
		--root-password-file "$T/root.pw" --json "$T/rootfs.tar" -o "$T/out/vm.qcow2" > "$T/vm.json"
	[ "$(jq -r .sandbox "$T/vm.json")" = vm ]
	[[ "$(jq -r .sandbox_reason "$T/vm.json")" == "bubblewrap cannot make a user namespace here"* ]]
	boot "$T/out/vm.qcow2" "$T/out/vm.qcow2.key" --try-menu
	logged_in_locked
}
