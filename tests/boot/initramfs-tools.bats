#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot tests (tests/boot/lib.bash) of the initramfs-tools images, Debian 12 and 13: maintained in
# the guest as Debian's kernel and grub packages do on an upgrade, rebooted, rekeyed offline and
# booted again; the root device missing; a LUKS header swapped after grub; rekeys stopped dead
# and resumed, --reencrypt copies, a rekey interrupted by ^C. 'make check-boot' runs this file
# beside dracut.bats, one lane each (a boot keeps about one host core busy).

load lib

@test "boot: Debian 12 initramfs-tools, maintained in the guest (grub's postinst: grub-install, update-grub; the kernel's zz-update-grub), rebooted, rekeyed: one prompt, locked, pinned" {
	maintained initramfs-tools "$MAINTAIN_GRUB"
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /')" = /dev/mapper/cr_root ]
	[[ "$(out 'cat /proc/cmdline')" == *"root=UUID=$(jq -r .root_filesystem.uuid "$BOOT_DIR/initramfs-tools.json")"* ]]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"root=UUID=$(jq -r .root_filesystem.uuid "$BOOT_DIR/initramfs-tools.json")"* ]]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"panic=-1"* ]]
}

@test "boot: Debian 13 initramfs-tools, maintained in the guest (kernel and grub postinst: update-initramfs, update-grub, grub-install), rebooted, rekeyed: one prompt, locked, pinned" {
	maintained trixie-initramfs-tools
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /' .after_reboot)" = /dev/mapper/cr_root ]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"panic=-1"* ]]
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

@test "boot: a rekey stopped dead after the initramfs step still boots, with the old key; resumed, with the new one" {
	local img
	img=$(image initramfs-tools)
	cp --sparse=always "$img" "$T/rk.qcow2"
	cp "$img.key" "$T/old.key"
	run env CVM_IMAGE_FAULT=initramfs "$CVM_IMAGE" -q rekey "$T/rk.qcow2" --key-file "$T/old.key"
	[ "$status" -eq 99 ]
	# Both slots are there; the initramfs already holds the new key: grub takes the old one,
	# the initramfs unlocks with the new one, without asking.
	boot "$T/rk.qcow2" "$T/old.key"
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
	# --resume finishes it: the new key alone (slot 0) boots it, the pin still holds.
	"$CVM_IMAGE" rekey "$T/rk.qcow2" --resume --key-file "$T/old.key"
	[ ! -e "$T/rk.qcow2.key.new" ]
	boot "$T/rk.qcow2" "$T/rk.qcow2.key"
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .slot <<<"$R")" = 0 ]
	[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
	[ "$(out 'dmesg | grep -c "cvm-image: the root device .* matches its pin"')" = 1 ]
}

@test "boot: --reencrypt --new-uuid copies boot with their key, pinned to their own volume key; the original key is refused (initramfs-tools and dracut)" {
	local v img uuid
	for v in initramfs-tools dracut; do
		img=$(image "$v")
		rm -f "$T/copy.qcow2" "$T/copy.qcow2.key"
		"$CVM_IMAGE" -q rekey "$img" --key-file "$img.key" --reencrypt -o "$T/copy.qcow2" --new-uuid
		boot "$T/copy.qcow2" "$T/copy.qcow2.key"
		[ "$(jq -r .outcome <<<"$R")" = logged-in ]
		[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
		uuid=$(qemu-img convert -O raw "$T/copy.qcow2" "$T/copy.raw" && extract_region "$T/copy.raw" 100 2 "$T/hdr" && cryptsetup luksUUID "$T/hdr")
		[ "$uuid" != "$(jq -r .luks.uuid "$BOOT_DIR/$v.json")" ]
		grep -aq "Enter passphrase for hd0,gpt2 (${uuid//-/})" "$T/serial.log"
		# The copy's pin is its own volume key's, and the initramfs checked it.
		[ "$(out 'dmesg | grep -c "cvm-image: the root device .* matches its pin"')" = 1 ]
		rm -f "$T/copy.raw"
	done
	# The original's key opens nothing of the last copy.
	run --separate-stderr "$CVM_IMAGE" boot "$T/copy.qcow2" --key-file "$img.key" --expect denied --json --log "$T/serial-old.log" --timeout 300
	[ "$(jq -r .outcome <<<"$output")" = denied ]
}

@test "rekey: a ^C during a qcow2 rekey, before its first header write: nothing changed, nothing left" {
	local img sum rc=0
	img=$(image initramfs-tools)
	cp --sparse=always "$img" "$T/rk.qcow2"
	cp "$img.key" "$T/rk.qcow2.key"
	sum=$(sha256sum < "$T/rk.qcow2")
	# The signal arrives after the backup, while the image is open through its FUSE export.
	CVM_IMAGE_FAULT=signal-after-backup "$CVM_IMAGE" -v rekey "$T/rk.qcow2" --key-file "$T/rk.qcow2.key" 2> "$T/stderr" || rc=$?
	cat "$T/stderr"
	[ "$rc" -eq 1 ]
	grep -q 'interrupted after step backup' "$T/stderr"
	[ "$(sha256sum < "$T/rk.qcow2")" = "$sum" ]
	[ ! -e "$T/rk.qcow2.key.new" ]
	[ ! -e "$T/rk.qcow2.luks-header-backup" ]
	cmp "$T/rk.qcow2.key" "$img.key"
	# The export is gone with it: no mount, no qemu-storage-daemon, no directory (its own:
	# another boot test file may be rekeying a qcow2 at the same time).
	run ! grep -qF "$TMPDIR/cvm-image-export" /proc/self/mountinfo
	run ! pgrep -f "qemu-storage-daemon.*$T/rk.qcow2"
	[ -z "$(ls -A "${TMPDIR:-/var/tmp}" | grep cvm-image-export || true)" ]
}
