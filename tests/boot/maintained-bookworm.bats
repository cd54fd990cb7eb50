#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot tests (tests/boot/lib.bash): Debian 12 images maintained in the guest (grub's postinst:
# grub-install, update-grub; the kernel's zz-update-grub), rebooted, rekeyed offline and booted
# again: one prompt, locked, pinned, with each initramfs tool.

load lib

@test "boot: Debian 12 initramfs-tools, maintained in the guest (grub's postinst: grub-install, update-grub; the kernel's zz-update-grub), rebooted, rekeyed: one prompt, locked, pinned" {
	maintained initramfs-tools "$MAINTAIN_GRUB"
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /')" = /dev/mapper/cr_root ]
	[[ "$(out 'cat /proc/cmdline')" == *"root=UUID=$(jq -r .root_filesystem.uuid "$BOOT_DIR/initramfs-tools.json")"* ]]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"root=UUID=$(jq -r .root_filesystem.uuid "$BOOT_DIR/initramfs-tools.json")"* ]]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"panic=-1"* ]]
}

@test "boot: Debian 12 dracut, maintained in the guest (grub's postinst: grub-install, update-grub; the kernel's zz-update-grub), rebooted, rekeyed: one prompt, locked, pinned" {
	local uuid
	maintained dracut "$MAINTAIN_GRUB"
	uuid=$(jq -r .luks.uuid "$BOOT_DIR/dracut.json")
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /')" = "/dev/mapper/luks-$uuid" ]
	for b in "" .after_reboot; do
		[[ "$(out 'cat /proc/cmdline' "$b")" == *"rd.luks.uuid=$uuid"* ]]
		[[ "$(out 'cat /proc/cmdline' "$b")" == *"rd.shell=0 rd.emergency=poweroff panic=-1"* ]]
	done
}
