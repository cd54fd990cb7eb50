#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot test beyond CI's hour ('make check-boot-more'): an image built by an ordinary user
# through the appliance (its initramfs tool runs under TCG there: 10 to 20 minutes here).

load lib

@test "boot: Debian 12 initramfs-tools built by an ordinary user through the appliance (--sandbox vm, no privilege): one prompt, locked, pinned" {
	rootfs_for_user initramfs-tools
	# Under TCG the appliance runs the initramfs tool many times slower than the host: minutes.
	as_user "$CVM_IMAGE" build --sandbox vm --serial-console --root-password-file "$T/root.pw" \
		--json "$T/rootfs.tar" -o "$T/out/vm.qcow2" > "$T/vm.json"
	[ "$(jq -r .sandbox "$T/vm.json")" = vm ]
	boot "$T/out/vm.qcow2" "$T/out/vm.qcow2.key" --try-menu
	logged_in_locked
}
