#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# cvm-image inspect on images built from synthetic rootfs trees (tests/lib/boot-tree): fresh
# builds pass every check, raw and qcow2; images spoiled on purpose are each found by the
# right check; bad input is refused; the image is never written. --deep in the appliance.
# The fixtures are made as root; inspect (and rekey) run as an ordinary user on them (cvm),
# as a pipeline gate would, but in the tests about what they do as root (AS_ROOT=1).

load ../lib/common

setup() {
	requires root busybox jq python3 cryptsetup qemu-img sfdisk
	common_setup
	ensure_test_user
	printf 'recovery words\n' > "$T/recovery"
	printf 'recovery words' > "$T/recovery.typed"
}

teardown() {
	common_teardown
}

# image [TOOL] [HOOKS_DIR]: $T/out/disk.img and its key (fixture_image; with HOOKS_DIR,
# built fresh, for the spoiled ones). The recovery slot benchmarked long enough for 100000
# iterations on a loaded machine.
image() {
	fixture_image --tool "${1:-initramfs-tools}" --iter-time 200 ${2:+--hooks "$2"}
}

# inspect ARGS...: run inspect with --json as the ordinary test user (cvm), or as root with
# AS_ROOT=1; $output is the JSON, $stderr the log.
inspect() {
	if [ -n "${AS_ROOT:-}" ]; then
		run --separate-stderr "$CVM_IMAGE" inspect "$@" --json
	else
		run --separate-stderr cvm inspect "$@" --json
	fi
	echo "$stderr"
	echo "$output" | jq -r '.checks[]? | "\(.status) \(.name): \(.detail)"'
}

# check_is NAME STATUS [DETAIL]: the check NAME has STATUS (and DETAIL in its detail).
check_is() {
	local got
	got=$(jq -r --arg n "$1" '.checks[] | select(.name == $n) | "\(.status) \(.detail)"' <<<"$output")
	[ -n "$got" ] || { echo "no check '$1'"; return 1; }
	[ "${got%% *}" = "$2" ] || { echo "check '$1': $got"; return 1; }
	[ -z "${3:-}" ] || [[ "$got" == *"$3"* ]] || { echo "check '$1': $got"; return 1; }
}

# Every check but those named is ok.
all_ok_but() {
	local bad
	bad=$(jq -r '.checks[] | select(.status != "ok") | .name' <<<"$output" | grep -vxF -e "${1:-}" -e "${2:-}" || true)
	[ -z "$bad" ] || { echo "not ok: $bad"; return 1; }
}

header_region() { extract_region "$1" 100 2 "$T/hdr"; }
# put_header_region IMAGE: $T/hdr back into IMAGE's LUKS partition.
put_header_region() { dd if="$T/hdr" of="$1" bs=1M seek=100 conv=notrunc status=none; }

@test "inspect: fresh builds (initramfs-tools, dracut; raw and qcow2) pass every check, the image unchanged" {
	local tool sum key
	for tool in initramfs-tools dracut; do
		image "$tool"
		key=$(cat "$T/out/disk.img.key")
		sum=$(sha256sum < "$T/out/disk.img")
		inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
		[ "$status" -eq 0 ]
		all_ok_but
		[ "$(jq '.checks | length' <<<"$output")" -ge 17 ]
		[ "$(jq -r .passed <<<"$output")" = true ]
		for c in gpt esp esp-grub luks-header grub-early-config key-slots key-opens rootfs \
			key-file pin crypttab initramfs-settings default-grub grub-cfg grub-boots \
			grub-update esp-no-key; do
			check_is "$c" ok
		done
		check_is key-opens ok "slot 0"
		[ "$(jq -r .rootfs.initramfs_tool <<<"$output")" = "$tool" ]
		[ "$(jq '.rootfs.kernels | length' <<<"$output")" = 2 ]
		[ "$(jq '[.rootfs.kernels[].key_members[] | select(.holds_key and .mode == "0600")] | length' <<<"$output")" = 2 ]
		[ "$(jq -r '.luks.slots | map("\(.slot)") | join(",")' <<<"$output")" = 0,1 ]
		[ "$(jq -r .esp.grub_unlocks <<<"$output")" = "$(jq -r .luks.uuid <<<"$output" | tr -d -)" ]
		# Never the key, on stdout or in the log.
		[[ "$output$stderr" != *"$key"* ]]
		[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]

		# The same through qcow2, read in place.
		qemu-img convert -f raw -O qcow2 "$T/out/disk.img" "$T/out/disk.qcow2"
		sum=$(sha256sum < "$T/out/disk.qcow2")
		inspect "$T/out/disk.qcow2" --key-file "$T/out/disk.img.key"
		[ "$status" -eq 0 ]
		all_ok_but
		[ "$(jq -r .format <<<"$output")" = qcow2 ]
		[ "$(sha256sum < "$T/out/disk.qcow2")" = "$sum" ]
		rm "$T/out/disk.qcow2"
	done
	assert_no_leftovers "$T/out"
	# No export left mounted, no qemu-storage-daemon left running.
	run ! grep -q cvm-image-export /proc/self/mountinfo
	run ! pgrep -f "qemu-storage-daemon.*$T/out"
}

@test "inspect: without a key, the disk, the ESP and the header; with the recovery passphrase, the tree" {
	image
	inspect "$T/out/disk.img"
	[ "$status" -eq 0 ]
	all_ok_but
	[ "$(jq '.checks | length' <<<"$output")" = 6 ]
	run ! jq -e .rootfs <<<"$output"
	inspect "$T/out/disk.img" --recovery-passphrase-file "$T/recovery"
	[ "$status" -eq 0 ]
	all_ok_but
	check_is key-opens ok "recovery passphrase opens slot 1"
	check_is key-file ok "opens slot 0"
	# The text form: one line per check, the summary on stderr.
	run --separate-stderr cvm inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^ok ' <<<"$output")" = "$(wc -l <<<"$output")" ]
	[[ "$stderr" == *"'$T/out/disk.img': 19 checks passed"* ]]
}

@test "inspect: a wrong key says so, exit 1" {
	image
	printf 'not-the-key-not-the-key-not-the-key-00000000' > "$T/wrong.key"
	inspect "$T/out/disk.img" --key-file "$T/wrong.key"
	[ "$status" -eq 1 ]
	check_is key-opens fail "opens no key slot"
	[ "$(jq -r .passed <<<"$output")" = false ]
	[[ "$stderr" == *"1 of 7 checks failed: key-opens"* ]]
}

@test "inspect: a key file left 0644 in the tree (a finalize hook) fails key-file" {
	mkdir -p "$T/site/hooks/finalize"
	printf '#!/bin/sh\nchmod 0644 /etc/cryptsetup-keys.d/*.key\n' > "$T/site/hooks/finalize/90-spoil"
	chmod +x "$T/site/hooks/finalize/90-spoil"
	image initramfs-tools "$T/site"
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	check_is key-file fail "has mode 0644, not 0600"
	all_ok_but key-file
}

# regrub_hook WRAPPER: a finalize hook that writes grub.cfg as the guest's update-grub would
# (grub-mkconfig's header, the root found, then /etc/grub.d's lock and 10_linux); with WRAPPER
# "gone", grub's own 10_linux put back in its place first (as if the diversion were undone).
regrub_hook() {
	mkdir -p "$T/site/hooks/finalize"
	{
		printf '#!/bin/sh\nset -e\n'
		[ "$1" = gone ] && printf 'cp /usr/lib/cvm-image/grub.d/10_linux /etc/grub.d/10_linux\n'
		printf 'fs=$(sed -n "s|^UUID=\\([^ ]*\\) / .*|\\1|p" /etc/fstab)\n'
		printf '{ echo "# DO NOT EDIT THIS FILE"; echo "insmod luks"; echo "search --fs-uuid $fs"\n'
		printf '  /etc/grub.d/01_cvm-image-lock; /etc/grub.d/10_linux 2>/dev/null; } > /boot/grub/grub.cfg\n'
	} > "$T/site/hooks/finalize/90-regrub"
	chmod +x "$T/site/hooks/finalize/90-regrub"
}

@test "inspect: grub.cfg as the guest's update-grub writes it through cvm-image's 10_linux: it boots, locked" {
	regrub_hook kept
	image initramfs-tools "$T/site"
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 0 ]
	check_is grub-boots ok "'Synthetic GNU/Linux', the first entry of /boot/grub/grub.cfg (written by grub-mkconfig), boots without a password"
	check_is grub-update ok "keeps the entries --unrestricted and grub locked"
	all_ok_but
}

@test "inspect: grub.cfg as update-grub writes it with grub's own 10_linux (restricted entries under the lock) fails grub-boots and grub-update" {
	regrub_hook gone
	image initramfs-tools "$T/site"
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	check_is grub-boots fail "'Synthetic GNU/Linux', the first entry of /boot/grub/grub.cfg (written by grub-mkconfig), is not --unrestricted under grub's lock: the guest stops at 'Enter username:'"
	check_is grub-update fail "/etc/grub.d/10_linux does not make them --unrestricted"
	all_ok_but grub-boots grub-update
	[[ "$stderr" == *"2 of "*" checks failed: grub-boots, grub-update"* ]]
}

@test "inspect: a symlinked crypttab and a FIFO grub.cfg are called what they are, not missing" {
	mkdir -p "$T/site/hooks/finalize"
	cat > "$T/site/hooks/finalize/90-spoil" <<-'EOF'
	#!/bin/sh
	set -e
	mv /etc/crypttab /etc/crypttab.real
	ln -s crypttab.real /etc/crypttab
	rm /boot/grub/grub.cfg
	busybox mkfifo /boot/grub/grub.cfg
	EOF
	chmod +x "$T/site/hooks/finalize/90-spoil"
	image initramfs-tools "$T/site"
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	check_is crypttab fail "/etc/crypttab a symbolic link (not followed: it may point anywhere)"
	check_is grub-cfg fail "/boot/grub/grub.cfg is a FIFO, not a file"
}

@test "inspect: an initramfs whose cryptroot/crypttab names another LUKS UUID (initramfs-tools) fails that kernel's check" {
	mkdir -p "$T/site/hooks/finalize"
	# The newest kernel's initramfs made again with the key, but its crypttab for another disk
	# (as a copy whose UUID changed and whose initramfs did not would have it).
	cat > "$T/site/hooks/finalize/90-spoil" <<-'EOF'
	#!/bin/sh
	set -e
	w=$(mktemp -d)
	mkdir -p "$w/cryptroot/keyfiles"
	sed 's/UUID=[0-9a-f-]*/UUID=00000000-1111-2222-3333-444444444444/' /etc/crypttab > "$w/cryptroot/crypttab"
	cp "$CVM_KEY_FILE" "$w/cryptroot/keyfiles/cr_root.key"
	(cd "$w" && find cryptroot | cpio -o -H newc 2>/dev/null) | gzip > /boot/initrd.img-6.1.0-10-amd64
	chmod 0600 /boot/initrd.img-6.1.0-10-amd64
	rm -rf "${w:?}"
	EOF
	chmod +x "$T/site/hooks/finalize/90-spoil"
	image initramfs-tools "$T/site"
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	check_is "initramfs 6.1.0-10-amd64" fail "its cryptroot/crypttab does not open UUID="
	check_is "initramfs 6.1.0-9-amd64" ok
	all_ok_but "initramfs 6.1.0-10-amd64"
}

@test "inspect: an initramfs without the key (a finalize hook rewrites it) fails that kernel's check" {
	mkdir -p "$T/site/hooks/finalize"
	# The newest kernel's initramfs made again, without the key file in it.
	cat > "$T/site/hooks/finalize/90-spoil" <<-'EOF'
	#!/bin/sh
	set -e
	cd /etc && echo crypttab | cpio -o -H newc 2>/dev/null | gzip > /boot/initrd.img-6.1.0-10-amd64
	EOF
	chmod +x "$T/site/hooks/finalize/90-spoil"
	image initramfs-tools "$T/site"
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	check_is "initramfs 6.1.0-10-amd64" fail "holds no copy of the key"
	check_is "initramfs 6.1.0-9-amd64" ok
	all_ok_but "initramfs 6.1.0-10-amd64"
}

@test "inspect: a header with all 8 key slots in use (valid, luksAddKey) is read and reported, with and without --json" {
	image
	header_region "$T/out/disk.img"
	for i in 2 3 4 5 6 7; do
		printf 'key number %s' "$i" > "$T/k$i"
		cryptsetup luksAddKey --batch-mode --key-file "$T/out/disk.img.key" --pbkdf-force-iterations 4294967 \
			--key-slot "$i" "$T/hdr" "$T/k$i"
	done
	put_header_region "$T/out/disk.img"
	run --separate-stderr cvm inspect "$T/out/disk.img"
	echo "$output$stderr"
	[ "$status" -eq 0 ]
	[[ "$output" == *"5 (4294967 iterations), 6 (4294967 iterations), 7 (4294967 iterations)"* ]]
	inspect "$T/out/disk.img"
	[ "$status" -eq 0 ]
	check_is key-slots warning "6 (4294967 iterations), 7 (4294967 iterations)"
	[ "$(jq '.luks.slots | length' <<<"$output")" -eq 8 ]
}

@test "inspect: a header whose cipher is cipher_null-ecb (it encrypts nothing) fails luks-header, exit 1; its names printed without control characters" {
	image
	header_region "$T/out/disk.img"
	# The cipher name and mode fields of the LUKS1 header, NUL-padded to 32 bytes each.
	python3 - "$T/hdr" <<-'EOF'
	import sys
	f = open(sys.argv[1], "r+b")
	f.seek(8); f.write(b"cipher_null".ljust(32, b"\0"))
	f.seek(40); f.write(b"ecb\x1b[2J".ljust(32, b"\0"))
	EOF
	put_header_region "$T/out/disk.img"
	inspect "$T/out/disk.img"
	[ "$status" -eq 1 ]
	check_is luks-header fail "LUKS1 cipher_null-ecb?[2J: not aes-xts-plain64"
	[[ "$output$stderr" != *$'\e'* ]]
	[[ "$stderr" == *"checks failed: luks-header"* ]]
}

# hostile_root PYTHON: the image's root replaced by a fresh small ext4 that PYTHON (run on the
# plain filesystem file, sys.argv[1]) then spoils, encrypted under the image's own volume key:
# what the guest, which knows the key, can write.
hostile_root() {
	header_region "$T/out/disk.img"
	rm -f "$T/vk"
	cryptsetup luksDump --batch-mode --dump-volume-key --volume-key-file "$T/vk" \
		--key-file "$T/out/disk.img.key" "$T/hdr" > /dev/null
	rm -f "$T/root.ext4"
	mke2fs -q -F -t ext4 -O ^metadata_csum "$T/root.ext4" 64M # no checksum to mend
	python3 -c "$1" "$T/root.ext4"
	"$(dirname "$CVM_IMAGE")/tests/lib/xts-encrypt" "$T/vk" "$T/root.ext4" "$T/out/disk.img" $((102 * 1024 * 1024))
}

# hostile_tree DIR: the image's root replaced by an ext4 made from DIR (mke2fs -d, holes
# kept), encrypted under the image's own volume key.
hostile_tree() {
	header_region "$T/out/disk.img"
	rm -f "$T/vk" "$T/root.ext4"
	cryptsetup luksDump --batch-mode --dump-volume-key --volume-key-file "$T/vk" \
		--key-file "$T/out/disk.img.key" "$T/hdr" > /dev/null
	mke2fs -q -F -t ext4 -O ^metadata_csum -d "$1" "$T/root.ext4" 64M
	"$(dirname "$CVM_IMAGE")/tests/lib/xts-encrypt" "$T/vk" "$T/root.ext4" "$T/out/disk.img" $((102 * 1024 * 1024))
}

@test "inspect, rekey and --reencrypt: a 2 GiB sparse initramfs gets one verdict (larger than cvm-image reads), nothing changed" {
	image
	local uuid sum
	header_region "$T/out/disk.img"
	uuid=$(cryptsetup luksUUID "$T/hdr")
	mkdir -p "$T/tree/boot" "$T/tree/etc/cryptsetup-keys.d"
	install -m 0600 "$T/out/disk.img.key" "$T/tree/etc/cryptsetup-keys.d/luks-$uuid.key"
	echo kernel > "$T/tree/boot/vmlinuz-6.1.0-10-amd64"
	truncate -s 2G "$T/tree/boot/initrd.img-6.1.0-10-amd64"
	chmod 0600 "$T/tree/boot/initrd.img-6.1.0-10-amd64"
	hostile_tree "$T/tree"
	sum=$(sha256sum < "$T/out/disk.img")
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	check_is "initramfs 6.1.0-10-amd64" fail "larger than the 512 MiB cvm-image reads"
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"/boot/initrd.img-6.1.0-10-amd64 is larger than the 512 MiB cvm-image reads; nothing changed"* ]]
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key" --reencrypt -o "$T/copy.img"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"is larger than the 512 MiB cvm-image reads; nothing changed"* ]]
	run ! ls "$T/copy.img"
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
}

@test "inspect and rekey: a root filesystem whose superblock lies (s_first_data_block 100): refused, named, no crash" {
	image
	# s_first_data_block, le32 at byte 20 of the superblock (at 1024).
	hostile_root 'import sys, struct; f = open(sys.argv[1], "r+b"); f.seek(1024 + 20); f.write(struct.pack("<I", 100))'
	local sum
	sum=$(sha256sum < "$T/out/disk.img")
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the root filesystem's superblock says a first data block that is not the one of its block size"* ]]
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the root filesystem's superblock says a first data block"* ]]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
	# Inodes per group beyond what a bitmap block holds (1024-byte blocks: 8192 at most).
	hostile_root 'import sys, struct; f = open(sys.argv[1], "r+b"); f.seek(1024 + 40); f.write(struct.pack("<I", 16384))'
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	check_is rootfs fail
	[[ "$stderr" == *"the root filesystem's superblock says"* || "$stderr" == *"the LUKS payload holds no ext4 filesystem"* ]]
}

@test "inspect: the root filesystem is read by a confined child: no files, no exec, no socket, nobody when root; its death is a failed check" {
	image
	# What the reader can do, from inside it (a test fault point).
	AS_ROOT=1 CVM_IMAGE_FAULT=rootfs-reader-probe inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 0 ]
	check_is reader-probe warning "uid 65534, open EPERM, exec EPERM, socket EPERM"
	check_is key-file ok
	check_is "initramfs 6.1.0-10-amd64" ok
	# A reader that dies (as one would on a memory bug a crafted filesystem finds): the check
	# table says so, exit 1, and nothing of the tree's checks is made up.
	AS_ROOT=1 CVM_IMAGE_FAULT=rootfs-reader-crash inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	check_is rootfs fail "the confined reader of the root filesystem was killed"
	[ "$(jq '[.checks[] | select(.name == "key-file")] | length' <<<"$output")" = 0 ]
	[[ "$stderr" == *"1 of "*" checks failed: rootfs"* ]]
}

@test "inspect: libblkid's probe of the partition table runs in a confined child: nobody when root, no open; its death fails gpt" {
	image
	AS_ROOT=1 CVM_IMAGE_FAULT=gpt-reader-probe inspect "$T/out/disk.img"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"gpt-reader-probe: uid 65534, open EPERM"* ]]
	check_is gpt ok
	AS_ROOT=1 CVM_IMAGE_FAULT=gpt-reader-crash inspect "$T/out/disk.img"
	[ "$status" -eq 1 ]
	check_is gpt fail "no usable partition table"
	[[ "$stderr" == *"the confined reader of its partition table was killed ("* ]]
	# rekey opens the image through the same reader: it refuses, the image unchanged.
	cp "$T/out/disk.img" "$T/before.img"
	CVM_IMAGE_FAULT=gpt-reader-crash run cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	[[ "$output" == *"the confined reader of its partition table was killed"* ]]
	cmp "$T/out/disk.img" "$T/before.img"
}

@test "inspect: the LUKS key slots are opened in a confined child: nobody when root, no open, no socket; its death fails key-opens" {
	image
	AS_ROOT=1 CVM_IMAGE_FAULT=luks-reader-probe inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"luks-reader-probe: uid 65534, open EPERM, socket EPERM"* ]]
	check_is key-opens ok "the key opens slot 0"
	AS_ROOT=1 CVM_IMAGE_FAULT=luks-reader-crash inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	check_is key-opens fail "the confined reader of the LUKS key slots was killed"
	[ "$(jq '[.checks[] | select(.name == "key-file")] | length' <<<"$output")" = 0 ]
	# rekey unlocks through the same reader: it refuses, the image and its key unchanged.
	cp "$T/out/disk.img" "$T/before.img"
	cp "$T/out/disk.img.key" "$T/before.key"
	CVM_IMAGE_FAULT=luks-reader-crash run cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	[[ "$output" == *"the confined reader of the LUKS key slots was killed ("* ]]
	cmp "$T/out/disk.img" "$T/before.img"
	cmp "$T/out/disk.img.key" "$T/before.key"
	[ ! -e "$T/out/disk.img.key.new" ]
}

@test "inspect: as root and as an ordinary user, mtools reads the ESP in bubblewrap: an mdir turned hostile cannot write beside the image" {
	image
	# The test fault point runs, in mdir's place, a shell that writes IMAGE.escaped and says
	# whether it could write to the image.
	AS_ROOT=1 CVM_IMAGE_FAULT=esp-escape inspect "$T/out/disk.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"esp-escape: the image is read-only"* ]]
	[ ! -e "$T/out/disk.img.escaped" ]
	# The real mdir in the same sandbox reads it.
	AS_ROOT=1 inspect "$T/out/disk.img"
	[ "$status" -eq 0 ]
	check_is esp ok
	# An ordinary user's mtools too (what it could reach are the user's own files: its keys),
	# in a user namespace of its own: the image, the user's, is read-only there.
	CVM_IMAGE_FAULT=esp-escape inspect "$T/out/disk.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"esp-escape: the image is read-only"* ]]
	[ ! -e "$T/out/disk.img.escaped" ]
	inspect "$T/out/disk.img"
	[ "$status" -eq 0 ]
	check_is esp ok
}

@test "inspect: a GPT claiming 8388608 partition entries (CRC mended) is refused before it is read; a damaged primary header fails gpt" {
	image
	local sum
	sum=$(sha256sum < "$T/out/disk.img")
	# NumberOfPartitionEntries (le32 at 80 of the header at LBA 1), then the header's CRC.
	python3 - "$T/out/disk.img" <<-'EOF'
	import struct, sys, zlib
	f = open(sys.argv[1], "r+b")
	f.seek(512); h = bytearray(f.read(92))
	h[80:84] = struct.pack("<I", 8388608); h[16:20] = b"\0" * 4
	h[16:20] = struct.pack("<I", zlib.crc32(bytes(h)))
	f.seek(512); f.write(h)
	EOF
	give_user "$T"
	run --separate-stderr as_user /usr/bin/time -f %M -o "$T/rss" "$CVM_IMAGE" inspect "$T/out/disk.img"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"its primary GPT header claims 8388608 partition entries of 128 bytes: more than a disk image's GPT holds"* ]]
	# (time's last line: the peak RSS in KiB, after its note of the exit status)
	[ "$(tail -n 1 "$T/rss")" -lt $((64 * 1024)) ]
	# The primary header changed without its CRC mended: libblkid takes the backup; a fail.
	image
	printf 'X' | dd of="$T/out/disk.img" bs=1 seek=$((512 + 56)) conv=notrunc status=none
	inspect "$T/out/disk.img"
	[ "$status" -eq 1 ]
	check_is gpt fail "its primary GPT header's CRC does not match (the backup was read)"
}

@test "inspect and rekey: PBKDF2 iteration counts a key is not tried against: a slot's skipped (said), the digest's refused" {
	image
	header_region "$T/out/disk.img"
	printf 'a slow key' > "$T/slow"
	# 2^23 + 1: just over the bound (about 5 s here; 2^31 would take 20 minutes a try).
	cryptsetup luksAddKey --batch-mode --key-file "$T/out/disk.img.key" --pbkdf-force-iterations 8388609 \
		--key-slot 2 "$T/hdr" "$T/slow"
	put_header_region "$T/out/disk.img"
	printf 'not the key' > "$T/wrong"
	inspect "$T/out/disk.img" --key-file "$T/wrong"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"warning: key slot 2 asks for 8388609 PBKDF2 iterations, more than the 8388608 a key is tried against: not tried"* ]]
	[ "$(grep -c 'key slot 2 asks for' <<<"$stderr")" -eq 1 ]
	check_is key-opens fail
	# The slot's own key is not tried either: nothing opens.
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/slow" --new-key-out "$T/new.key"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"key slot 2 asks for 8388609 PBKDF2 iterations"* ]]
	# The volume key digest's count (be32 at 164): every try would pay it; refused, and shown.
	image
	python3 -c 'import sys, struct; f = open(sys.argv[1], "r+b"); f.seek(100 * 1048576 + 164); f.write(struct.pack(">I", 2**31))' "$T/out/disk.img"
	give_user "$T"
	run --separate-stderr as_user timeout 60 "$CVM_IMAGE" inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key" --json
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the LUKS header's volume key digest asks for 2147483648 PBKDF2 iterations, more than the 8388608 any key is tried against: no key was tried"* ]]
	check_is key-slots fail "the volume key digest asks for 2147483648 PBKDF2 iterations"
	run --separate-stderr as_user timeout 60 "$CVM_IMAGE" rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"no key was tried"* ]]
}

@test "inspect: an ESP whose BOOTX64.EFI starts at a cluster beyond the FAT: a failed check in the table, nothing left behind" {
	image
	# The 8.3 directory entry of BOOTX64.EFI: its first cluster (high 16 bits at 20, low at 26).
	python3 - "$T/out/disk.img" <<-'EOF'
	import struct, sys
	f = open(sys.argv[1], "r+b")
	f.seek(1 << 20); esp = f.read(99 << 20)
	i = esp.find(b"BOOTX64 EFI")
	assert i >= 0
	f.seek((1 << 20) + i + 20); f.write(struct.pack("<H", 0x0fff))
	f.seek((1 << 20) + i + 26); f.write(struct.pack("<H", 0xfff0))
	EOF
	mkdir -p "$T/tmp"
	TMPDIR=$T/tmp inspect "$T/out/disk.img"
	[ "$status" -eq 1 ]
	check_is esp-grub fail "\\EFI\\BOOT\\BOOTX64.EFI cannot be read from the FAT filesystem (damaged)"
	check_is luks-header ok
	[ -z "$(ls -A "$T/tmp")" ]
}

# esp_size IMAGE SIZE: BOOTX64.EFI's directory entry made to claim SIZE bytes.
esp_size() {
	python3 - "$1" "$2" <<-'EOF'
	import struct, sys
	f = open(sys.argv[1], "r+b")
	f.seek(1 << 20); esp = f.read(99 << 20)
	i = esp.find(b"BOOTX64 EFI")
	assert i >= 0
	f.seek((1 << 20) + i + 28); f.write(struct.pack("<I", int(sys.argv[2])))
	EOF
}

@test "inspect: a BOOTX64.EFI whose directory entry claims 4 GiB, or more than its cluster chain holds: esp-grub fails, nothing copied, nothing left" {
	image
	esp_size "$T/out/disk.img" 4294967295
	mkdir -p "$T/tmp"
	TMPDIR=$T/tmp inspect "$T/out/disk.img"
	[ "$status" -eq 1 ]
	check_is esp-grub fail "its directory entry claims more than an ESP file can be"
	[[ "$stderr" == *"claims 4294967295 bytes, more than cvm-image reads from an ESP (64 MiB)"* ]]
	check_is luks-header ok
	[ -z "$(ls -A "$T/tmp")" ]
	image
	esp_size "$T/out/disk.img" 12288
	TMPDIR=$T/tmp inspect "$T/out/disk.img"
	[ "$status" -eq 1 ]
	check_is esp-grub fail "its directory entry and its cluster chain disagree on its size"
	[ -z "$(ls -A "$T/tmp")" ]
}

@test "inspect: an extra key slot, and slot 0 at high iterations, are warnings (exit 0)" {
	image
	header_region "$T/out/disk.img"
	printf 'another key' > "$T/another"
	cryptsetup luksAddKey --batch-mode --key-file "$T/out/disk.img.key" --pbkdf-force-iterations 1000 "$T/hdr" "$T/another"
	put_header_region "$T/out/disk.img"
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 0 ]
	check_is key-slots warning "slots beyond 0 and 1 in use"
	check_is key-slots warning "2 (1000 iterations)"
	all_ok_but key-slots

	image
	header_region "$T/out/disk.img"
	cryptsetup luksKillSlot --batch-mode --key-file "$T/recovery.typed" "$T/hdr" 0
	cryptsetup luksAddKey --batch-mode --key-file "$T/recovery.typed" --key-slot 0 --pbkdf-force-iterations 200000 "$T/hdr" "$T/out/disk.img.key"
	put_header_region "$T/out/disk.img"
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 0 ]
	check_is key-slots warning "slot 0 at 200000 iterations, not 1000"
	all_ok_but key-slots
}

@test "inspect: a GPT disk not made by cvm-image, a truncated image, a corrupt header: exit 1, named" {
	truncate -s 64M "$T/other.img"
	printf 'label: gpt\nstart=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' | sfdisk -q "$T/other.img"
	inspect "$T/other.img"
	[ "$status" -eq 1 ]
	check_is gpt fail "no EFI System Partition and no LUKS partition"

	image
	cp --sparse=always "$T/out/disk.img" "$T/trunc.img"
	truncate -s 150M "$T/trunc.img"
	inspect "$T/trunc.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"truncated"* ]]

	# The payload offset and key size zeroed: no LUKS header libcryptsetup takes.
	printf '\0\0\0\0\0\0\0\0' | dd of="$T/out/disk.img" bs=1 seek=$((100 * 1024 * 1024 + 104)) conv=notrunc status=none
	inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	check_is luks-header fail
}

@test "inspect: bad input: missing, a directory, not a disk image, held by a rekey, a qcow2 whose backing file is gone" {
	run --separate-stderr cvm inspect "$T/nothing.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"cannot open '$T/nothing.img': No such file or directory"* ]]
	run --separate-stderr cvm inspect "$T"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"'$T' is a directory, not a disk image"* ]]
	head -c 1M /dev/urandom > "$T/random.bin"
	run --separate-stderr cvm inspect "$T/random.bin"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"has no partition table"* ]]
	[ -z "$output" ] || [[ "$output" == *"fail"* ]]

	image
	sum=$(sha256sum < "$T/out/disk.img")
	# rekey holds an exclusive flock while it runs.
	hold_lock "$T/out/disk.img"
	run --separate-stderr cvm inspect "$T/out/disk.img"
	kill "$HOLDER"
	wait "$HOLDER" || true
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"is in use by another cvm-image process (a rekey?)"* ]]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]

	qemu-img convert -f raw -O qcow2 "$T/out/disk.img" "$T/base.qcow2"
	qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/out/top.qcow2"
	rm "$T/base.qcow2"
	run --separate-stderr cvm inspect "$T/out/top.qcow2"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"'$T/out/top.qcow2': its backing file cannot be opened"* ]]
	run --separate-stderr cvm inspect "$T/out/disk.img" --deep
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--deep needs --key-file or --recovery-passphrase-file"* ]]
	run --separate-stderr cvm inspect "$T/out/disk.img" --key-file a --recovery-passphrase-file b
	[ "$status" -eq 2 ]
	assert_no_leftovers "$T/out"
}

@test "inspect: a qcow2 image where FUSE is missing is read through a temporary raw copy, said, removed" {
	image
	qemu-img convert -f raw -O qcow2 "$T/out/disk.img" "$T/out/disk.qcow2"
	CVM_IMAGE_FAULT=no-fuse run --separate-stderr cvm inspect "$T/out/disk.qcow2" --key-file "$T/out/disk.img.key" --json
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"'$T/out/disk.qcow2': qemu-storage-daemon cannot export it (CVM_IMAGE_FAULT=no-fuse): reading a temporary raw copy instead"* ]]
	[ "$(jq -r .passed <<<"$output")" = true ]
	[ -z "$(ls -A "$TMPDIR")" ]
}

@test "inspect --deep: in the appliance, dm-crypt opens it, e2fsck -fn clean, the same files as offline (qcow2)" {
	requires guestfs
	image
	qemu-img convert -f raw -O qcow2 "$T/out/disk.img" "$T/out/disk.qcow2"
	sum=$(sha256sum < "$T/out/disk.qcow2")
	inspect "$T/out/disk.qcow2" --key-file "$T/out/disk.img.key" --deep
	[ "$status" -eq 0 ]
	all_ok_but
	check_is deep-open ok
	check_is deep-e2fsck ok "clean"
	check_is deep-files ok "have the same mode and contents through the kernel"
	# At least the key file, pin, crypttab, the settings, grub's files and both initramfs.
	[[ "$(jq -r '.checks[] | select(.name == "deep-files") | .detail' <<<"$output")" =~ ^([0-9]+)\ files ]]
	[ "${BASH_REMATCH[1]}" -ge 9 ]
	[[ "$output$stderr" != *"$(cat "$T/out/disk.img.key")"* ]]
	[ "$(sha256sum < "$T/out/disk.qcow2")" = "$sum" ]
	# libguestfs is linked, not only scripted.
	ldd "$CVM_IMAGE" | grep -q 'libguestfs\.so'
}

@test "--json of inspect, rekey and build: names with quotes, backslashes, a newline and a non-UTF-8 byte, read by a strict parser" {
	image
	local weird=$T/out/$'we"ird\\ na\nme \xff'
	mv "$T/out/disk.img" "$weird.img"
	mv "$T/out/disk.img.key" "$weird.img.key"
	# strict FIELD EXPECTED: $output is UTF-8 and JSON; its FIELD is EXPECTED with the byte
	# that is no UTF-8 as U+FFFD.
	strict() {
		W=$2 python3 -c '
import json, os, sys
doc = json.loads(sys.stdin.buffer.read().decode("utf-8", "strict"))
want = os.environb[b"W"].decode("utf-8", "replace")
got = doc[sys.argv[1]]
print(repr(got))
sys.exit(0 if got == want else 1)' "$1" <<<"$output"
	}
	inspect "$weird.img" --key-file "$weird.img.key"
	[ "$status" -eq 0 ]
	strict image "$weird.img"
	run --separate-stderr cvm rekey "$weird.img" --key-file "$weird.img.key" --json
	echo "$stderr"
	[ "$status" -eq 0 ]
	strict image "$weird.img"
	strict key_file "$weird.img.key"
	run --separate-stderr "$CVM_IMAGE" build --distro none --size 300M \
		"$FIXTURE_TAR" -o "$weird-2.img" --json
	echo "$stderr"
	[ "$status" -eq 0 ]
	strict image "$weird-2.img"
	strict key_file "$weird-2.img.key"
}

@test "inspect as an ordinary user on an image root made and gave it: every check passes; a key file root keeps to itself cannot be read, and it says so" {
	ensure_test_user
	image
	cp "$T/out/disk.img.key" "$T/root-only.key"
	chmod 0600 "$T/root-only.key"
	give_user "$T/out"
	run --separate-stderr as_user "$CVM_IMAGE" inspect "$T/out/disk.img" --key-file "$T/out/disk.img.key" --json
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.checks[] | select(.status != "ok")] | length' <<<"$output")" = 0 ]
	[ "$(jq -r '.checks | length' <<<"$output")" -ge 15 ]
	run --separate-stderr as_user "$CVM_IMAGE" inspect "$T/out/disk.img" --key-file "$T/root-only.key"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"'$T/root-only.key'"*"Permission denied"* ]]
}
