#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot tests: real Debian 12 and 13 images (debootstrap, cached by tests/lib/make-rootfs) built
# by cvm-image and booted under qemu (q35, TCG) with OVMF, answered over the serial line by
# cvm-image boot. One unlock in grub, none in the initramfs, / on the opened LUKS device.
# Variants: initramfs-tools, dracut (Debian 12), trixie-initramfs-tools, trixie-dracut, and
# sid-dracut (the next release), each with the distro's full grub package (grub-efi-amd64) and
# zstd. 'make check-boot' runs this file with maintained-trixie.bats, maintained-bookworm.bats
# (the guest's own maintenance, each variant) and rekey.bats, two files at a time; about two
# minutes per boot here. appliance.bats and guest-made.bats ('make check-boot-more') are beyond CI's hour.
# This file: the next release, and what a failed or swapped root device does.

load lib

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

@test "boot: initramfs-tools: the root device missing: the guest powers off at once, no (initramfs) shell (Debian 12 and 13)" {
	local v
	for v in initramfs-tools trixie-initramfs-tools; do
		boot_direct "$v" rootdelay=10
		[ "$RC" -eq 0 ] # qemu ended by itself (-no-reboot): not a hang, not a shell
		# cryptroot gives up waiting for the device; the pin check, next, finds nothing
		# opened and powers off (initramfs-tools' own panic= reboot would come after).
		grep -q "cvm-image: refusing the root device: 0 opened devices for LUKS UUID .*; powering off" "$T/direct.log"
		assert_no_initramfs_shell "$T/direct.log"
	done
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

@test "boot: a LUKS header swapped after grub: the pin refuses it and the guest powers off (Debian 12 and 13, both tools)" {
	local v
	for v in initramfs-tools dracut trixie-initramfs-tools trixie-dracut; do
		swap_header "$v" "$T/swapped.img"
		DISK=$T/swapped.img boot_direct "$v"
		[ "$RC" -eq 0 ] # powered off by itself
		grep -q "cvm-image: refusing the root device: the volume key of '.*' is not the one this image was built with; powering off" "$T/direct.log"
		run ! grep -q "THE HOST ROOT RUNS" "$T/direct.log"
		run ! grep -q "login: " "$T/direct.log"
		assert_no_initramfs_shell "$T/direct.log"
		rm -f "$T/swapped.img"
	done
}
