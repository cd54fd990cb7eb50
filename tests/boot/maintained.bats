#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# The boot tests beyond CI's hour ('make check-boot-more'): the guest's own maintenance of the
# two variants boot.bats does not maintain (Debian 12 with dracut, Debian 13 with
# initramfs-tools), rekey in pieces of an initramfs the guest's tools made, booted, and an image
# built by an ordinary user through the appliance (its initramfs tool runs under TCG there:
# 10 to 20 minutes here, too long for CI's hour).

load lib

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


@test "boot: Debian 13 initramfs-tools, maintained in the guest (kernel and grub postinst: update-initramfs, update-grub, grub-install), rebooted, rekeyed: one prompt, locked, pinned" {
	maintained trixie-initramfs-tools
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /' .after_reboot)" = /dev/mapper/cr_root ]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"panic=-1"* ]]
}


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

@test "boot: Debian 12 initramfs-tools built by an ordinary user through the appliance (--sandbox vm, no privilege): one prompt, locked, pinned" {
	local tar
	ensure_test_user
	tar=$("$CVM_SRCDIR/tests/lib/make-rootfs" initramfs-tools)
	cp "$tar" "$T/rootfs.tar"
	cp "$BOOT_DIR/root.pw" "$T/root.pw"
	give_user "$T"
	# Under TCG the appliance runs the initramfs tool many times slower than the host: minutes.
	as_user "$CVM_IMAGE" build --sandbox vm --serial-console --root-password-file "$T/root.pw" \
		--json "$T/rootfs.tar" -o "$T/out/vm.qcow2" > "$T/vm.json"
	[ "$(jq -r .sandbox "$T/vm.json")" = vm ]
	boot "$T/out/vm.qcow2" "$T/out/vm.qcow2.key" --try-menu
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .slot <<<"$R")" = 0 ]
	[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
	[ "$(jq -c .menu <<<"$R")" = '{"edit":"refused","cmdline":"refused"}' ]
	[ "$(out 'findmnt -no SOURCE /')" = /dev/mapper/cr_root ]
	[ "$(out "$PINNED")" = 1 ]
	[ "$(out 'stat -c %a /etc/cryptsetup-keys.d/*.key')" = 600 ]
	[ "$(out 'stat -c %a /boot/initrd.img-*')" = 600 ]
}
