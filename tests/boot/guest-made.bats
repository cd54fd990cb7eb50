#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot test beyond CI's hour ('make check-boot-more'; its build and boot take about five
# minutes): an image whose initramfs its own tools made, rekeyed in pieces, boots with the new
# key. (tests/bats/rekey.bats checks the same rekey on the files, in CI.)

load lib

@test "boot: an image whose initramfs its own tools made (no key archive), rekeyed in pieces, boots with the new key" {
	local tar
	tar=$("$CVM_SRCDIR/tests/lib/make-rootfs" initramfs-tools)
	# As after a kernel update in the guest: the key in the distro's gzip archive only.
	CVM_IMAGE_FAULT=no-key-archive "$CVM_IMAGE" -q build --format qcow2 --serial-console \
		--root-password-file "$BOOT_DIR/root.pw" "$tar" -o "$T/regen.qcow2"
	cp "$T/regen.qcow2.key" "$T/old.key"
	/usr/bin/time -f %M -o "$T/rss" "$CVM_IMAGE" --debug rekey "$T/regen.qcow2" --key-file "$T/old.key" 2> "$T/rekey.log" ||
		{ cat "$T/rekey.log"; false; }
	grep 'replaced in pieces' "$T/rekey.log"
	echo "peak RSS: $(cat "$T/rss") KiB"
	[ "$(cat "$T/rss")" -lt $((64 * 1024)) ]
	boot "$T/regen.qcow2" "$T/regen.qcow2.key"
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
	[ "$(out 'findmnt -no SOURCE /')" = /dev/mapper/cr_root ]
	[ "$(out 'dmesg | grep -c "cvm-image: the root device .* matches its pin"')" = 1 ]
}
