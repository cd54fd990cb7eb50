#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot tests beyond CI's hour ('make check-boot-more'): the Debian 12 images maintained in the
# guest with the kernel package's whole postinst, as Debian 13's are in CI (its initramfs tool,
# then zz-update-grub; then grub's postinst: grub-install, update-grub), rebooted, rekeyed in
# place offline and booted again. CI's Debian 12 tests run grub's half and the kernel's grub
# hook only: Debian 12's initramfs tools regenerate the initramfs for over ten minutes under
# emulation (MODULES=most, a process per module), which CI's hour does not hold for both.

load lib

@test "boot: Debian 12 initramfs-tools, maintained in the guest (kernel and grub postinst: update-initramfs, update-grub, grub-install), rebooted, rekeyed in place: one prompt, locked, pinned" {
	maintained initramfs-tools
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /' .after_reboot)" = /dev/mapper/cr_root ]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"panic=-1"* ]]
}

@test "boot: Debian 12 dracut, maintained in the guest (kernel and grub postinst: dracut, update-grub, grub-install), rebooted, rekeyed in place: one prompt, locked, pinned" {
	maintained dracut
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /' .after_reboot)" = "/dev/mapper/luks-$(jq -r .luks.uuid "$BOOT_DIR/dracut.json")" ]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"rd.shell=0 rd.emergency=poweroff panic=-1"* ]]
}
