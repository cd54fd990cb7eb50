#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot tests (tests/boot/lib.bash): Debian 13 images maintained in the guest as Debian's kernel
# and grub packages do on an upgrade (the initramfs tool, update-grub, grub-install), rebooted,
# rekeyed offline and booted again: one prompt, locked, pinned, with each initramfs tool.

load lib

@test "boot: Debian 13 dracut, maintained in the guest (kernel and grub postinst: dracut, update-grub, grub-install), rebooted, rekeyed: one prompt, locked, pinned" {
	maintained trixie-dracut
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /' .after_reboot)" = "/dev/mapper/luks-$(jq -r .luks.uuid "$BOOT_DIR/trixie-dracut.json")" ]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"rd.shell=0 rd.emergency=poweroff panic=-1"* ]]
}

@test "boot: Debian 13 initramfs-tools, maintained in the guest (kernel and grub postinst: update-initramfs, update-grub, grub-install), rebooted, rekeyed: one prompt, locked, pinned" {
	maintained trixie-initramfs-tools
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /' .after_reboot)" = /dev/mapper/cr_root ]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"panic=-1"* ]]
}
