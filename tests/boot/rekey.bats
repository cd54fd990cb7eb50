#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot tests (tests/boot/lib.bash): images rekeyed by cvm-image, booted with their new key: a rekey
# stopped dead and resumed, --reencrypt copies, and a rekey interrupted by ^C. (An initramfs
# the guest's own tools made, rekeyed in pieces: guest-made.bats.)

load lib

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
