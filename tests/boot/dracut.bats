#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot tests (tests/boot/lib.bash) of the dracut images: Debian 12 and 13 maintained in the guest
# as Debian's kernel and grub packages do on an upgrade, rebooted, rekeyed offline (Debian 12: a
# --reencrypt --new-uuid copy; Debian 13: in place) and booted again; a LUKS header swapped
# after grub; Debian sid, the next release (grub 2.14, dracut 112, systemd 262, kernel 7.x); the root
# device missing. 'make check-boot' runs this file beside initramfs-tools.bats, one lane each.

load lib

@test "boot: Debian 12 dracut, maintained in the guest (grub's postinst: grub-install, update-grub; the kernel's zz-update-grub), rebooted, a --reencrypt --new-uuid copy: one prompt, locked, pinned to its own volume key" {
	local uuid
	REKEY=reencrypt maintained dracut "$MAINTAIN_GRUB"
	uuid=$(jq -r .luks.uuid "$BOOT_DIR/dracut.json")
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /')" = "/dev/mapper/luks-$uuid" ]
	for b in "" .after_reboot; do
		[[ "$(out 'cat /proc/cmdline' "$b")" == *"rd.luks.uuid=$uuid"* ]]
		[[ "$(out 'cat /proc/cmdline' "$b")" == *"rd.shell=0 rd.emergency=poweroff panic=-1"* ]]
	done
}

@test "boot: Debian 13 dracut, maintained in the guest (kernel and grub postinst: dracut, update-grub, grub-install), rebooted, rekeyed in place: one prompt, locked, pinned" {
	maintained trixie-dracut
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /' .after_reboot)" = "/dev/mapper/luks-$(jq -r .luks.uuid "$BOOT_DIR/trixie-dracut.json")" ]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"rd.shell=0 rd.emergency=poweroff panic=-1"* ]]
}

@test "boot: Debian sid (the next release: grub 2.14, dracut 112, systemd 262, kernel 7.x) with dracut: the recovery passphrase opens slot 1; one prompt, locked, pinned" {
	local img
	img=$(image sid-dracut)
	boot "$img" "$BOOT_DIR/recovery.typed" --try-menu
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .slot <<<"$R")" = 1 ]
	[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
	[ "$(jq -c .menu <<<"$R")" = '{"edit":"refused","cmdline":"refused"}' ]
	[ "$(out 'findmnt -no SOURCE /')" = "/dev/mapper/luks-$(jq -r .luks.uuid "$BOOT_DIR/sid-dracut.json")" ]
	[ "$(out "$PINNED")" = 1 ]
	[ "$(out 'stat -c %a /etc/cryptsetup-keys.d/*.key')" = 600 ]
	[ "$(out 'stat -c %a /boot/initrd.img-*')" = 600 ]
}

@test "boot: dracut: the root device missing: the guest powers off, no emergency shell (Debian 12 and 13)" {
	local v
	for v in dracut trixie-dracut; do
		boot_direct "$v" rd.timeout=20 rd.retry=10
		[ "$RC" -eq 0 ]
		grep -qiE "power(ing)? off|reboot: Power down" "$T/direct.log"
		assert_no_initramfs_shell "$T/direct.log"
	done
}

@test "boot: dracut: a LUKS header swapped after grub: the pin refuses it and the guest powers off (Debian 12 and 13)" {
	swapped_header_refused dracut trixie-dracut
}
