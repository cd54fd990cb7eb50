#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot tests: real Debian 12 and 13 images (debootstrap, cached by tests/lib/make-rootfs) built
# by cvm-image and booted under qemu (q35, TCG) with OVMF, answered over the serial line by
# cvm-image boot. One unlock in grub, none in the initramfs, / on the opened LUKS device.
# Variants: initramfs-tools, dracut (Debian 12), trixie-initramfs-tools, trixie-dracut, and
# sid-dracut (the next release), each with the distro's full grub package (grub-efi-amd64).
# 'make check-boot'; about two minutes per boot here.

load ../lib/common

setup_file() {
	export BOOT_DIR=$BATS_FILE_TMPDIR
	export XTS_ENCRYPT=${XTS_ENCRYPT:-$(dirname "$CVM_IMAGE")/tests/lib/xts-encrypt}
}

setup() {
	requires root qemu-system-x86_64 debootstrap python3
	[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || requires ovmf-missing
	common_setup
	printf 'cvm root password\n' > "$BOOT_DIR/root.pw"
	printf 'the recovery passphrase\n' > "$BOOT_DIR/recovery"
	printf 'the recovery passphrase' > "$BOOT_DIR/recovery.typed"
}

teardown() {
	common_teardown
}

# image VARIANT: build (once per file) a qcow2 of the rootfs VARIANT (make-rootfs's names).
image() {
	local v=$1 img=$BOOT_DIR/$1.qcow2
	if [ ! -f "$img" ]; then
		local tar
		tar=$("$CVM_SRCDIR/tests/lib/make-rootfs" "$v")
		# The work directory kept: its kernel and initramfs boot directly in the
		# initramfs failure tests.
		mkdir -p "$BOOT_DIR/work-$v"
		"$CVM_IMAGE" build --format qcow2 --serial-console --root-password-file "$BOOT_DIR/root.pw" \
			--recovery-passphrase-file "$BOOT_DIR/recovery" --recovery-iter-time 50 \
			--keep-workdir --workdir "$BOOT_DIR/work-$v" \
			--json "$tar" -o "$img" > "$BOOT_DIR/$v.json" 2> "$BOOT_DIR/$v.build.log" ||
			{ cat "$BOOT_DIR/$v.build.log" >&2; return 1; }
	fi
	echo "$img"
}

# boot IMAGE KEYFILE [--expect denied]: boot and log in; sets R to cvm-image boot's JSON result.
boot() {
	local img=$1 key=$2
	shift 2
	run --separate-stderr "$CVM_IMAGE" boot "$img" --key-file "$key" --root-password-file "$BOOT_DIR/root.pw" --json \
		--log "$T/serial.log" \
		--run 'findmnt -no SOURCE /' \
		--run 'stat -c %a /etc/cryptsetup-keys.d/*.key' \
		--run 'stat -c %a /boot/initrd.img-*' \
		--run 'cat /proc/cmdline' \
		--run 'dmsetup table --target crypt | wc -l' \
		--run 'dmesg | grep -c "cvm-image: the root device .* matches its pin"' "$@"
	R=$output
	echo "$stderr"
	echo "$R"
	# Times to the grub prompt and to login, for the closing figures.
	echo "# boot $(basename "$img") $(jq -c '{grub_prompt_s, login_prompt_s}' <<<"$R")" >&3
}

# out CMD [BASE]: the output of the --run CMD (of the boot at BASE: .after_reboot).
out() { jq -r --arg c "$1" "${2:-}.output[\$c]" <<<"$R"; }

# boot_direct VARIANT EXTRA...: the image's own kernel and initramfs booted without a disk
# (qemu -kernel/-initrd/-append with grub.cfg's command line and EXTRA), as grub would have
# loaded them; -no-reboot, so a reboot or power-off ends qemu. Sets RC and $T/direct.log.
boot_direct() {
	local v=$1 w kernel initrd cmdline
	shift
	image "$v" >/dev/null
	w=$(echo "$BOOT_DIR/work-$v"/cvm-image.*/root)
	kernel=$(ls "$w"/boot/vmlinuz-* | sort -V | tail -n 1)
	initrd=$w/boot/initrd.img-${kernel##*/vmlinuz-}
	cmdline=$(sed -n 's/^\tlinux [^ ]* //p' "$w/boot/grub/grub.cfg" | head -n 1)
	RC=0
	timeout 600 qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu max -smp 2 -m 1536 \
		-no-reboot -nic none -display none -monitor none -serial "file:$T/direct.log" \
		${DISK:+-drive "file=$DISK,format=raw,if=virtio,snapshot=on"} \
		-kernel "$kernel" -initrd "$initrd" -append "$cmdline $*" </dev/null || RC=$?
	tail -n 15 "$T/direct.log"
}

# swap_header VARIANT OUT: a raw copy of the VARIANT image whose LUKS header a hostile host
# replaced after grub loaded the kernel: the same UUID, slot 0 opening with the image's key
# (as a cipher_null header takes any key: CVE-2025-59054's class), another volume key, and as
# its payload a plain ext4 with the root's filesystem UUID whose /sbin/init announces itself.
swap_header() {
	local v=$1 out=$2 img uuid fsuuid start
	img=$(image "$v")
	uuid=$(jq -r .luks.uuid "$BOOT_DIR/$v.json")
	fsuuid=$(jq -r .root_filesystem.uuid "$BOOT_DIR/$v.json")
	qemu-img convert -U -f qcow2 -O raw "$img" "$out"
	start=$(sfdisk -J "$out" | jq '.partitiontable.partitions[1].start')
	rm -f "$T/hdr"
	truncate -s 4M "$T/hdr" # room for a payload, or luksFormat warns
	head -c 64 /dev/urandom > "$T/host.vk"
	cryptsetup luksFormat --type luks1 --batch-mode --uuid "$uuid" --cipher aes-xts-plain64 \
		--key-size 512 --hash sha256 --pbkdf-force-iterations 1000 \
		--volume-key-file "$T/host.vk" --key-file "$img.key" "$T/hdr"
	dd if="$T/hdr" of="$out" bs=512 count=4096 seek="$start" conv=notrunc status=none
	rm -rf --one-file-system "$T/hostroot"
	mkdir -p "$T/hostroot/sbin" "$T/hostroot/bin" "$T/hostroot/dev" "$T/hostroot/proc"
	cp "$(command -v busybox)" "$T/hostroot/bin/busybox"
	printf '#!/bin/busybox sh\necho THE HOST ROOT RUNS\n/bin/busybox poweroff -f\n' > "$T/hostroot/sbin/init"
	chmod 0755 "$T/hostroot/sbin/init"
	rm -f "$T/hostroot.ext4"
	mke2fs -q -F -t ext4 -U "$fsuuid" -d "$T/hostroot" "$T/hostroot.ext4" 64M
	"$XTS_ENCRYPT" "$T/host.vk" "$T/hostroot.ext4" "$out" $(( (start + 4096) * 512 ))
}

# No shell prompt of the initramfs (initramfs-tools' busybox/klibc sh, dracut's emergency).
assert_no_initramfs_shell() {
	run ! grep -qE '\(initramfs\)|Give root password for maintenance|Press Enter for maintenance|emergency shell|Entering emergency mode. Exit the shell' "$1"
}

@test "boot: the recovery passphrase opens slot 1 and boots" {
	local img
	img=$(image initramfs-tools)
	boot "$img" "$BOOT_DIR/recovery.typed"
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .slot <<<"$R")" = 1 ]
	[ "$(out 'findmnt -no SOURCE /')" = /dev/mapper/cr_root ]
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

# The guest maintained as Debian does it on a kernel or grub package upgrade: the running
# kernel's postinst hooks (the initramfs tool, then zz-update-grub) and grub's postinst
# (grub-install, to the removable path too, then update-grub). MAINTAIN_GRUB is the grub half
# alone, and the kernel's grub hook: on Debian 12 the initramfs tools take over ten minutes
# under emulation here (MODULES=most, a process per module), which CI's time cannot hold for
# both of them; Debian 13 runs it all.
MAINTAIN='dpkg-reconfigure -fnoninteractive linux-image-$(uname -r) && dpkg-reconfigure -fnoninteractive grub-efi-amd64'
MAINTAIN_GRUB='DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/zz-update-grub $(uname -r) && dpkg-reconfigure -fnoninteractive grub-efi-amd64'
PINNED='dmesg | grep -c "cvm-image: the root device .* matches its pin"'

# maintained VARIANT [CMD]: a copy of the VARIANT image ($T/m.qcow2) booted with grub's menu
# tried, maintained in the guest (CMD, default $MAINTAIN; kept: --persist) and rebooted; both boots: one prompt,
# grub's editor and command line refused, the root pinned, the key and the initramfs 0600; the
# second from the grub.cfg and initramfs the guest's own tools wrote. Then inspect passes it,
# it is rekeyed offline and boots once more, with the new key. Each boot's JSON in $T/boot-N.json.
maintained() {
	local v=$1 cmd=${2:-$MAINTAIN} img b
	img=$(image "$v")
	cp --sparse=always "$img" "$T/m.qcow2"
	cp "$img.key" "$T/m.qcow2.key"
	boot "$T/m.qcow2" "$T/m.qcow2.key" --try-menu --persist --timeout 3000 --then-reboot "$cmd" \
		--run 'stat -c %Y /boot/initrd.img-$(uname -r)' \
		--run 'grep -c "^### BEGIN /etc/grub.d/10_linux ###" /boot/grub/grub.cfg' \
		--run 'ls /boot/efi/EFI/debian'
	echo "$R" > "$T/boot-1.json"
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .after_reboot.outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .after_reboot.command_status <<<"$R")" = 0 ]
	for b in "" .after_reboot; do
		[ "$(jq -r "${b}.passphrase_prompts" <<<"$R")" = 1 ]
		[ "$(jq -c "${b}.menu" <<<"$R")" = '{"edit":"refused","cmdline":"refused"}' ]
		[ "$(out 'dmsetup table --target crypt | wc -l' "$b")" = 1 ]
		[ "$(out "$PINNED" "$b")" = 1 ]
		[ "$(out 'stat -c %a /etc/cryptsetup-keys.d/*.key' "$b")" = 600 ]
		[ "$(out 'stat -c %a /boot/initrd.img-*' "$b")" = 600 ]
	done
	# Before: cvm-image's grub.cfg, nothing in EFI/debian. After: update-grub's, the initramfs
	# written again, and grub-install's EFI/debian/grubx64.efi.
	[ "$(out 'grep -c "^### BEGIN /etc/grub.d/10_linux ###" /boot/grub/grub.cfg')" = 0 ]
	[ "$(out 'grep -c "^### BEGIN /etc/grub.d/10_linux ###" /boot/grub/grub.cfg' .after_reboot)" = 1 ]
	[ "$(out 'ls /boot/efi/EFI/debian' .after_reboot)" = grubx64.efi ]
	if [ "$cmd" = "$MAINTAIN" ]; then
		# The second boot came from the initramfs the guest's own tool wrote.
		[ "$(out 'stat -c %Y /boot/initrd.img-$(uname -r)' .after_reboot)" -gt \
			"$(out 'stat -c %Y /boot/initrd.img-$(uname -r)')" ]
	fi
	# The key never reached the serial console.
	run ! grep -qF "$(cat "$T/m.qcow2.key")" "$T/serial.log"
	# The reboot after the maintenance, as the console showed it (for the record).
	grep -a -E "Enter passphrase for|Enter username|access denied|Loading Linux|matches its pin|login: " "$T/serial.log" |
		tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/^ *//' | tr -s ' ' | cut -c1-160 |
		tail -n 8 | sed "s/^/# $v serial: /" >&3
	# The pipeline gate agrees: the grub.cfg update-grub wrote boots, locked.
	run --separate-stderr "$CVM_IMAGE" inspect "$T/m.qcow2" --key-file "$T/m.qcow2.key" --json
	echo "$output" | jq -r '.checks[] | "\(.status) \(.name): \(.detail)"'
	[ "$status" -eq 0 ]
	[ "$(jq -r '.checks[] | select(.name == "grub-boots") | .status' <<<"$output")" = ok ]
	[[ "$(jq -r '.checks[] | select(.name == "grub-boots") | .detail' <<<"$output")" == *"(written by grub-mkconfig)"* ]]
	[ "$(jq -r '.checks[] | select(.name == "grub-update") | .status' <<<"$output")" = ok ]
	# Rekeyed offline: the initramfs the guest's tools made is changed in pieces.
	cp "$T/m.qcow2.key" "$T/old.key"
	"$CVM_IMAGE" -q rekey "$T/m.qcow2" --key-file "$T/old.key"
	run ! cmp -s "$T/m.qcow2.key" "$T/old.key"
	boot "$T/m.qcow2" "$T/m.qcow2.key" --try-menu
	echo "$R" > "$T/boot-2.json"
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .slot <<<"$R")" = 0 ]
	[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
	[ "$(jq -c .menu <<<"$R")" = '{"edit":"refused","cmdline":"refused"}' ]
	[ "$(out "$PINNED")" = 1 ]
	[ "$(out 'stat -c %a /etc/cryptsetup-keys.d/*.key')" = 600 ]
}

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

@test "boot: Debian 13 initramfs-tools, maintained in the guest (kernel and grub postinst: update-initramfs, update-grub, grub-install), rebooted, rekeyed: one prompt, locked, pinned" {
	maintained trixie-initramfs-tools
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /' .after_reboot)" = /dev/mapper/cr_root ]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"panic=-1"* ]]
}

@test "boot: Debian 13 dracut, maintained in the guest (kernel and grub postinst: dracut, update-grub, grub-install), rebooted, rekeyed: one prompt, locked, pinned" {
	maintained trixie-dracut
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /' .after_reboot)" = "/dev/mapper/luks-$(jq -r .luks.uuid "$BOOT_DIR/trixie-dracut.json")" ]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"rd.shell=0 rd.emergency=poweroff panic=-1"* ]]
}

@test "boot: Debian sid (the next release: grub 2.14, dracut 11x, kernel 7.x) with dracut: one prompt, locked, pinned" {
	local img
	img=$(image sid-dracut)
	boot "$img" "$img.key" --try-menu
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
	[ "$(jq -c .menu <<<"$R")" = '{"edit":"refused","cmdline":"refused"}' ]
	[ "$(out 'findmnt -no SOURCE /')" = "/dev/mapper/luks-$(jq -r .luks.uuid "$BOOT_DIR/sid-dracut.json")" ]
	[ "$(out "$PINNED")" = 1 ]
	[ "$(out 'stat -c %a /etc/cryptsetup-keys.d/*.key')" = 600 ]
	[ "$(out 'stat -c %a /boot/initrd.img-*')" = 600 ]
}

@test "boot: a wrong key gets grub's 'access denied' and nothing boots" {
	local img
	img=$(image initramfs-tools)
	printf 'this is not the key' > "$T/wrong"
	run --separate-stderr "$CVM_IMAGE" boot "$img" --key-file "$T/wrong" --expect denied --json --log "$T/serial.log" --timeout 300
	echo "$output"
	echo "$stderr"
	# Expected, so a success; the key typed is never in the console log.
	[ "$status" -eq 0 ]
	[ "$(jq -r .outcome <<<"$output")" = denied ]
	grep -aq '<secret typed>' "$T/serial.log"
	grep -aq 'access denied' "$T/serial.log"
	run ! grep -aqF "$(cat "$T/wrong")" "$T/serial.log"
	run ! grep -aq 'Linux version' "$T/serial.log"
}

# rekeyed VARIANT [FAULT]: a rekeyed copy of the VARIANT image, key in $T/rk.qcow2.key; the old
# key in $T/old.key. With FAULT, the rekey is stopped dead after that step.
rekeyed() {
	local img
	img=$(image "$1")
	cp --sparse=always "$img" "$T/rk.qcow2"
	cp "$img.key" "$T/old.key"
	if [ -n "${2:-}" ]; then
		run env CVM_IMAGE_FAULT="$2" "$CVM_IMAGE" -q rekey "$T/rk.qcow2" --key-file "$T/old.key"
		[ "$status" -eq 99 ]
		rm -f "$T"/.cvm-image-rekey.*
	else
		"$CVM_IMAGE" -q rekey "$T/rk.qcow2" --key-file "$T/old.key" --new-key-out "$T/rk.qcow2.key"
	fi
}

@test "boot: a rekeyed initramfs-tools image boots with the new key; grub refuses the old one" {
	rekeyed initramfs-tools
	boot "$T/rk.qcow2" "$T/rk.qcow2.key"
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
	[ "$(out 'findmnt -no SOURCE /')" = /dev/mapper/cr_root ]
	# rekey kept the volume key: the pin still holds.
	[ "$(out 'dmesg | grep -c "cvm-image: the root device .* matches its pin"')" = 1 ]
	run --separate-stderr "$CVM_IMAGE" boot "$T/rk.qcow2" --key-file "$T/old.key" --expect denied --json --log "$T/serial-old.log" --timeout 300
	[ "$(jq -r .outcome <<<"$output")" = denied ]
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
	[ ! -e "$T/rk.qcow2.key.new" ] && [ ! -e "$T/rk.qcow2.luks-header-backup" ]
	cmp "$T/rk.qcow2.key" "$img.key"
	# The export is gone with it: no mount, no qemu-storage-daemon, no directory.
	run ! grep -q cvm-image-export /proc/self/mountinfo
	run ! pgrep -f "qemu-storage-daemon.*$T/rk.qcow2"
	[ -z "$(ls -A "${TMPDIR:-/var/tmp}" | grep cvm-image-export || true)" ]
}
