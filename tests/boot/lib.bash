# SPDX-License-Identifier: LGPL-2.1-or-later
# What the boot test files share: the images (tests/lib/boot-image, from make-rootfs's rootfs),
# booting them through cvm-image boot, and the guest's own maintenance (maintained()).

load ../lib/common

setup_file() {
	# ./run-tests builds the images beforehand into CVM_BOOT_DIR (tests/lib/boot-image).
	export BOOT_DIR=${CVM_BOOT_DIR:-$BATS_FILE_TMPDIR}
	export XTS_ENCRYPT=${XTS_ENCRYPT:-$(dirname "$CVM_IMAGE")/tests/lib/xts-encrypt}
}

setup() {
	requires root qemu-system-x86_64 debootstrap python3
	[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || requires ovmf-missing
	common_setup
	# Renamed into place: the boot test files run two at a time (make check-boot), and a
	# file truncated by one lane's setup() must never be read half written by the other.
	put "$BOOT_DIR/root.pw" 'cvm root password\n'
	put "$BOOT_DIR/recovery" 'the recovery passphrase\n'
	put "$BOOT_DIR/recovery.typed" 'the recovery passphrase'
}

# put FILE FORMAT: FILE holds printf FORMAT, replaced by a rename.
put() {
	printf "$2" > "$1.$$"
	mv -f "$1.$$" "$1"
}

teardown() {
	common_teardown
}

# image VARIANT: the qcow2 of the rootfs VARIANT (make-rootfs's names), built once into
# $BOOT_DIR by tests/lib/boot-image (by ./run-tests already, while the other tests ran).
image() {
	"$CVM_SRCDIR/tests/lib/boot-image" "$1" "$BOOT_DIR"
}

# The boot test files run two at a time (make check-boot's lanes) on CI's two cores: one
# virtual CPU each, as two boots side by side reach their login prompt sooner so than with
# two (bench/boot-cpus).
CPUS=(--cpus 1)

# boot IMAGE KEYFILE [--expect denied]: boot and log in; sets R to cvm-image boot's JSON result.
boot() {
	local img=$1 key=$2
	shift 2
	run --separate-stderr "$CVM_IMAGE" boot "$img" --key-file "$key" --root-password-file "$BOOT_DIR/root.pw" --json "${CPUS[@]}" \
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
	# The console's last lines (bats shows them when the test fails), escapes removed.
	echo "--- the last lines of the console log:"
	tail -n 80 "$T/serial.log" 2>/dev/null | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' | tr -cd '[:print:]\n\t' | tail -n 40
	# Times to the grub prompt and to login, for the closing figures.
	echo "# boot $(basename "$img") $(jq -c '{grub_prompt_s, login_prompt_s}' <<<"$R")" >&3
}

# rootfs_for_user VARIANT: make-rootfs's VARIANT as $T/rootfs.tar and the root password as
# $T/root.pw, $T the test user's, for a build as that user.
rootfs_for_user() {
	local tar
	ensure_test_user
	tar=$("$CVM_SRCDIR/tests/lib/make-rootfs" "$1")
	cp "$tar" "$T/rootfs.tar"
	cp "$BOOT_DIR/root.pw" "$T/root.pw"
	give_user "$T"
}

# logged_in_locked: the boot in R (booted with --try-menu) logged in with slot 0 after one
# prompt, grub's editor and command line refused, the root opened as cr_root and pinned, the key
# file and the initramfs 0600.
logged_in_locked() {
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .slot <<<"$R")" = 0 ]
	[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
	[ "$(jq -c .menu <<<"$R")" = '{"edit":"refused","cmdline":"refused"}' ]
	[ "$(out 'findmnt -no SOURCE /')" = /dev/mapper/cr_root ]
	[ "$(out "$PINNED")" = 1 ]
	[ "$(out 'stat -c %a /etc/cryptsetup-keys.d/*.key')" = 600 ]
	[ "$(out 'stat -c %a /boot/initrd.img-*')" = 600 ]
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
	local try
	for try in 1 2; do
		RC=0
		timeout 600 qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu max -smp 1 -m 1536 \
			-no-reboot -nic none -display none -vga none -monitor none -serial "file:$T/direct.log" \
			${DISK:+-drive "file=$DISK,format=raw,if=virtio,snapshot=on"} \
			-kernel "$kernel" -initrd "$initrd" -append "$cmdline $*" </dev/null || RC=$?
		# The emulated kernel has panicked under TCG before running any of the initramfs
		# ("Fatal exception in interrupt" at 2 s, seen once in 20 boots): that run proves
		# nothing either way, so it is run once more, and said. A panic after /init ran
		# counts.
		grep -q "Kernel panic" "$T/direct.log" || break
		! grep -q "Run /init as init process" "$T/direct.log" || break
		echo "# $v: the emulated kernel panicked before its /init ran (try $try): booting again" >&3
		cp "$T/direct.log" "$T/direct-panic-$try.log"
	done
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
	rm -rf --one-file-system "${T:?}/hostroot"
	mkdir -p "$T/hostroot/sbin" "$T/hostroot/bin" "$T/hostroot/dev" "$T/hostroot/proc"
	cp "$(command -v busybox)" "$T/hostroot/bin/busybox"
	printf '#!/bin/busybox sh\necho THE HOST ROOT RUNS\n/bin/busybox poweroff -f\n' > "$T/hostroot/sbin/init"
	chmod 0755 "$T/hostroot/sbin/init"
	rm -f "$T/hostroot.ext4"
	mke2fs -q -F -t ext4 -U "$fsuuid" -d "$T/hostroot" "$T/hostroot.ext4" 64M
	"$XTS_ENCRYPT" "$T/host.vk" "$T/hostroot.ext4" "$out" $(( (start + 4096) * 512 ))
}

# swapped_header_refused VARIANT...: each image with its LUKS header swapped (swap_header),
# booted from its own kernel and initramfs: the pin refuses the device and the guest powers off
# by itself; the host's root never runs, no login, no shell.
swapped_header_refused() {
	local v
	for v in "$@"; do
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

# No shell prompt of the initramfs (initramfs-tools' busybox/klibc sh, dracut's emergency).
assert_no_initramfs_shell() {
	run ! grep -qE '\(initramfs\)|Give root password for maintenance|Press Enter for maintenance|emergency shell|Entering emergency mode. Exit the shell' "$1"
}

# The guest maintained as Debian does it on a kernel or grub package upgrade: the running
# kernel's postinst hooks (the initramfs tool, then zz-update-grub) and grub's postinst
# (grub-install, to the removable path too, then update-grub). MAINTAIN_GRUB is the grub half
# alone, and the kernel's grub hook: on Debian 12 the whole of it (bookworm-kernel.bats, make
# check-boot-more) took 1072 s with initramfs-tools (MODULES=most, a process per module) and
# 670 s with dracut, against 592 s and 510 s in CI's lanes, which CI's hour cannot hold;
# Debian 13 runs it all in CI.
MAINTAIN='dpkg-reconfigure -fnoninteractive linux-image-$(uname -r) && dpkg-reconfigure -fnoninteractive grub-efi-amd64'
MAINTAIN_GRUB='DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/zz-update-grub $(uname -r) && dpkg-reconfigure -fnoninteractive grub-efi-amd64'
PINNED='dmesg | grep -c "cvm-image: the root device .* matches its pin"'

# maintained VARIANT [CMD]: a copy of the VARIANT image ($T/m.qcow2) booted with grub's menu
# tried, maintained in the guest (CMD, default $MAINTAIN; kept: --persist) and rebooted; both boots: one prompt,
# grub's editor and command line refused, the root pinned, the key and the initramfs 0600; the
# second from the grub.cfg and initramfs the guest's own tools wrote. Then inspect passes it,
# it is rekeyed offline (REKEY: in-place, stopped, reencrypt; see below) and boots once more,
# with the new key, and grub refuses the old one. Each boot's JSON in $T/boot-N.json.
maintained() {
	local v=$1 cmd=${2:-$MAINTAIN} img b uuid
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
	# Rekeyed offline (REKEY), the initramfs the guest's tools made changed in pieces: in place
	# (the default); stopped dead after its initramfs step, booted so with the old key, then
	# resumed; or a --reencrypt --new-uuid copy. Then booted with the new key.
	cp "$T/m.qcow2.key" "$T/old.key"
	img=$T/m.qcow2
	case ${REKEY:-in-place} in
	in-place)
		"$CVM_IMAGE" -q rekey "$img" --key-file "$T/old.key"
		;;
	stopped)
		rekey_stopped_dead "$img"
		;;
	reencrypt)
		img=$T/copy.qcow2
		"$CVM_IMAGE" -q rekey "$T/m.qcow2" --key-file "$T/old.key" --reencrypt -o "$img" --new-uuid
		;;
	*)
		echo "unknown REKEY=$REKEY" >&2
		return 1
		;;
	esac
	run ! cmp -s "$img.key" "$T/old.key"
	boot "$img" "$img.key" --try-menu
	echo "$R" > "$T/boot-2.json"
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .slot <<<"$R")" = 0 ]
	[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
	[ "$(jq -c .menu <<<"$R")" = '{"edit":"refused","cmdline":"refused"}' ]
	[ "$(out "$PINNED")" = 1 ]
	[ "$(out 'stat -c %a /etc/cryptsetup-keys.d/*.key')" = 600 ]
	if [ "${REKEY:-}" = reencrypt ]; then
		# The copy's own LUKS UUID, the one grub asked for; its pin is its own volume key's.
		qemu-img convert -O raw "$img" "$T/copy.raw"
		extract_region "$T/copy.raw" 100 2 "$T/hdr"
		rm -f "$T/copy.raw"
		uuid=$(cryptsetup luksUUID "$T/hdr")
		[ -n "$uuid" ]
		[ "$uuid" != "$(jq -r .luks.uuid "$BOOT_DIR/$v.json")" ]
		# grub 2.06 prints the UUID without its dashes; 2.12 (Debian 13) may keep them.
		grep -aqiE "Enter passphrase for hd0,gpt2 \((${uuid//-/}|$uuid)\)" "$T/serial.log"
	fi
	# The old key, now a wrong one: grub's "access denied", nothing boots, and the key typed
	# is never in the console log.
	run --separate-stderr "$CVM_IMAGE" boot "$img" --key-file "$T/old.key" --expect denied --json "${CPUS[@]}" \
		--log "$T/serial-old.log" --timeout 300
	echo "$output"
	echo "$stderr"
	[ "$status" -eq 0 ] # expected, so a success
	[ "$(jq -r .outcome <<<"$output")" = denied ]
	grep -aq '<secret typed>' "$T/serial-old.log"
	grep -aq 'access denied' "$T/serial-old.log"
	run ! grep -aqF "$(cat "$T/old.key")" "$T/serial-old.log"
	run ! grep -aq 'Linux version' "$T/serial-old.log"
}


# rekey_stopped_dead IMAGE: IMAGE (key IMAGE.key, copied to $T/old.key) rekeyed with a stop
# dead after the initramfs step, booted so, and resumed. Both slots are there and the
# initramfs already holds the new key: grub takes the old one, the initramfs unlocks with the
# new one without asking. --resume finishes it: the new key alone (slot 0), no KEY.new left.
rekey_stopped_dead() {
	local img=$1
	run env CVM_IMAGE_FAULT=initramfs "$CVM_IMAGE" -q rekey "$img" --key-file "$T/old.key"
	[ "$status" -eq 99 ]
	boot "$img" "$T/old.key"
	echo "$R" > "$T/boot-stopped.json"
	[ "$(jq -r .outcome <<<"$R")" = logged-in ]
	[ "$(jq -r .passphrase_prompts <<<"$R")" = 1 ]
	[ "$(out "$PINNED")" = 1 ]
	"$CVM_IMAGE" rekey "$img" --resume --key-file "$T/old.key"
	[ ! -e "$img.key.new" ]
}
