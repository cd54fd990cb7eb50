#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# cvm-image rekey on images built from synthetic rootfs trees (real initramfs cpio chains,
# tests/lib/boot-tree): the header (cryptsetup), the files inside (the libguestfs appliance,
# tests/lib/initrd-members), what changes and what does not, bad input, and the fault
# injection matrix: wherever the process dies, the image opens with one of the two keys.
# The fixtures are made as root; rekey (and inspect) run as an ordinary user on them (cvm), as
# on a provisioning host that needs no privilege for it.

load ../lib/common

setup() {
	requires root busybox jq python3 cryptsetup
	common_setup
	ensure_test_user
	printf 'recovery words\n' > "$T/recovery"
	printf 'recovery words' > "$T/recovery.typed"
}

teardown() {
	common_teardown
}

# image [TOOL] [COMPRESS] [no-key-archive]: a copy of an image built once per file:
# $T/out/disk.img, its key in $T/out/disk.img.key, the build's JSON in $T/build.json. With
# no-key-archive, each initramfs is left as its tool made it (the key in the distro's own
# archive, as after a kernel update in the guest) instead of ending with cvm-image's key
# archive.
image() {
	fixture_image --tool "${1:-initramfs-tools}" --compress "${2:-gzip}" ${3:+--fault "$3"}
}

# refused_unchanged IMAGE KEY MESSAGE: rekey IMAGE with KEY fails (exit 1) saying MESSAGE,
# and IMAGE is byte for byte as it was.
refused_unchanged() {
	local sum
	sum=$(sha256sum < "$1")
	run --separate-stderr cvm rekey "$1" --key-file "$2"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"$3"* ]]
	[ "$(sha256sum < "$1")" = "$sum" ]
}

header() { extract_region "$1" 100 2 "$T/hdr"; }
opens_with() { cryptsetup open --test-passphrase --key-file "$2" "$1" 2>/dev/null; }

@test "rekey: the new key alone opens slot 0 at 1000 iterations; the recovery slot is unchanged" {
	image
	header "$T/out/disk.img"
	cryptsetup luksDump "$T/hdr" | sed -n '/^Key Slot 1/,/^Key Slot 2/p' > "$T/slot1.before"
	cp "$T/out/disk.img.key" "$T/old.key"
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/old.key" --json
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$(jq -r '"\(.old_slot) \(.new_slot)"' <<<"$output")" = "0 0" ]
	[ "$(jq -r .key_file <<<"$output")" = "$T/out/disk.img.key" ]
	[ "$(jq '.initramfs | length' <<<"$output")" = 2 ]
	header "$T/out/disk.img"
	run cryptsetup luksDump "$T/hdr"
	[ "$(grep -c ': ENABLED' <<<"$output")" = 2 ]
	grep -A1 '^Key Slot 0: ENABLED' <<<"$output" | grep -q 'Iterations:[[:space:]]*1000$'
	diff -u "$T/slot1.before" <(sed -n '/^Key Slot 1/,/^Key Slot 2/p' <<<"$output")
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$T/out/disk.img.key" "$T/hdr"
	run ! opens_with "$T/hdr" "$T/old.key"
	opens_with "$T/hdr" "$T/recovery.typed"
	# The new key: 0600, 44 characters, and not the old one; nothing left behind.
	[ "$(stat -c %a "$T/out/disk.img.key")" = 600 ]
	grep -Eq '^[A-Za-z0-9+/]{44}$' "$T/out/disk.img.key"
	run ! cmp -s "$T/old.key" "$T/out/disk.img.key"
	[ "$(ls -A "$T/out")" = "$(printf 'disk.img\ndisk.img.key')" ]
	assert_no_leftovers "$T/out"
	# Nothing secret on stdout or in the log.
	[[ "$output$stderr" != *"$(cat "$T/out/disk.img.key")"* ]]
}

@test "rekey: the root filesystem is read first by a confined child; a reader that dies refuses the rekey, nothing changed" {
	image
	local sum
	sum=$(sha256sum < "$T/out/disk.img")
	CVM_IMAGE_FAULT=rekey-reader-crash run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"its root filesystem killed the confined reader that reads it first"*"nothing changed"* ]]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
	run ! ls "$T/out/disk.img.key.new"
}

@test "rekey: only the header, the key file, the initramfs files and their metadata change" {
	image
	cp --sparse=always "$T/out/disk.img" "$T/before.img"
	cvm -q rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	# Outside the LUKS partition: identical.
	cmp -n $((100 * 1024 * 1024)) "$T/before.img" "$T/out/disk.img"
	# Inside the payload: count the 4 KiB blocks that differ.
	local changed
	changed=$(cmp -l "$T/before.img" "$T/out/disk.img" | awk -v p=$((102 * 1024 * 1024)) '$1 > p { print int(($1 - 1) / 4096) }' | uniq | wc -l)
	echo "payload blocks changed: $changed"
	# Two initramfs images (written again whole: mostly the gzip-compressed 3.7 MB module of
	# boot-tree), the key file, inodes, bitmaps, group descriptors, superblock: the blocks of
	# the two initramfs files and a few dozen more, out of 75 000.
	local initrd_blocks
	initrd_blocks=$(( $(seq 1 200000 | sed 's/^/module data /' | gzip -c | wc -c) / 4096 + 2 ))
	echo "blocks of each initramfs: about $initrd_blocks"
	[ "$changed" -gt 0 ]
	[ "$changed" -lt $((2 * initrd_blocks + 64)) ]
}

# initrd_archives IMAGE: every member of every archive of IMAGE, as OFFSET COMPRESSION NAME
# MODE SHA256[:16], into $T/archives (and the log).
initrd_archives() {
	"$CVM_SRCDIR/tests/lib/initrd-members" --archives "$1" > "$T/archives"
	cat "$T/archives"
}

# key_archive_holds FILE SHA COMPRESSION: the archives in $T/archives end with cvm-image's key
# archive (plain, at a multiple of 512, the key file alone, 0600, holding the key of digest SHA);
# the key member in the distro's COMPRESSION archive before it is zeroed (44 zero bytes); no
# other member holds a key.
key_archive_holds() {
	local zeros last
	zeros=$(head -c 44 /dev/zero | sha256sum | cut -c1-16)
	last=$(tail -n 1 "$T/archives" | cut -d' ' -f1)
	[ $((last % 512)) -eq 0 ]
	[ "$(grep -c "^$last " "$T/archives")" -eq 1 ]
	grep -qx "$last plain $1 0600 $2" "$T/archives"
	grep -qx "[0-9]* $3 $1 0600 $zeros" "$T/archives"
	[ "$(grep -c '\.key ' "$T/archives")" -eq 2 ]
}

# rekeyed_tree: $T/out/disk.img (rekeyed from $T/old.key) opened in the appliance: e2fsck
# clean, its tree in $T/root, its key file the new key; sets uuid, and new and old (the keys'
# digests as initrd-members prints them).
rekeyed_tree() {
	run "$CVM_SRCDIR/tests/lib/guestfs-check" "$T/out/disk.img" raw "$T/out/disk.img.key" "$T/root.tar"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *e2fsck-exit=0* ]]
	mkdir "$T/root"
	tar --numeric-owner -xpf "$T/root.tar" -C "$T/root"
	uuid=$(jq -r .luks.uuid "$T/build.json")
	new=$(sha256sum < "$T/out/disk.img.key" | cut -c1-16)
	old=$(sha256sum < "$T/old.key" | cut -c1-16)
	cmp "$T/root/etc/cryptsetup-keys.d/luks-$uuid.key" "$T/out/disk.img.key"
}

@test "rekey: in the appliance: opens with the new key, e2fsck clean; of each initramfs only the key archive at its end changed" {
	requires guestfs
	local uuid new old
	image
	cp "$T/out/disk.img.key" "$T/old.key"
	cvm --debug rekey "$T/out/disk.img" --key-file "$T/old.key" 2> "$T/log"
	[ "$(grep -c 'initrd.img-.*: 1 key copy replaced in its key archive$' "$T/log")" -eq 2 ]
	run ! grep -q "compressed again" "$T/log"
	rekeyed_tree
	for img in "$T"/root/boot/initrd.img-*[0-9]; do
		"$CVM_SRCDIR/tests/lib/initrd-members" "$img" > "$T/members"
		grep -q "^cryptroot/keyfiles/cr_root.key 0600 $new$" "$T/members"
		grep -qx "init 0600 $(echo 'fake init' | sha256sum | cut -c1-16)" "$T/members"
		grep -qx "usr/lib/modules/fake.ko 0600 $(seq 1 200000 | sed 's/^/module data /' | sha256sum | cut -c1-16)" "$T/members"
		# Archive by archive: the old key is in none of them (the build zeroed the distro's
		# copy), the new one only in the key archive.
		initrd_archives "$img"
		run ! grep -q "$old" "$T/archives"
		key_archive_holds cryptroot/keyfiles/cr_root.key "$new" gzip
		[ "$(stat -c %a "$img")" = 600 ]
	done
}

@test "rekey: an initramfs the guest's tools made again (no key archive): its gzip archive changed in place, in pieces" {
	requires guestfs
	local uuid new old
	image initramfs-tools gzip no-key-archive
	cp "$T/out/disk.img.key" "$T/old.key"
	cvm --debug rekey "$T/out/disk.img" --key-file "$T/old.key" 2> "$T/log"
	# Each gzip archive was changed in place, read in pieces: the blocks around the key
	# compressed again, not the 3.7 MB module after it (the decoded members are checked
	# below). How much depends on where the random key's block boundaries fall: once more
	# than a quarter of it.
	grep "compressed again" "$T/log"
	[ "$(grep -c 'initrd.img-.*: 1 key copy replaced in pieces' "$T/log")" -eq 2 ]
	sed -n 's/.*replaced in pieces (\([0-9]*\) bytes compressed again)$/\1/p' "$T/log" |
		awk '{ print } $1 > 3700000 / 3 { bad = 1 } END { exit NR != 2 || bad }'
	rekeyed_tree
	[ "$(stat -c %a "$T/root/etc/cryptsetup-keys.d/luks-$uuid.key")" = 600 ]
	for img in "$T"/root/boot/initrd.img-*[0-9]; do
		"$CVM_SRCDIR/tests/lib/initrd-members" "$img" > "$T/members"
		cat "$T/members"
		grep -q "^cryptroot/keyfiles/cr_root.key 0600 $new$" "$T/members"
		run ! grep -q "$old" "$T/members"
		# The other members are still there, unchanged (the initramfs was made with umask 077).
		grep -qx "kernel/x86/microcode/AuthenticAMD.bin 0600 $(echo 'fake microcode' | sha256sum | cut -c1-16)" "$T/members"
		grep -qx "init 0600 $(echo 'fake init' | sha256sum | cut -c1-16)" "$T/members"
		grep -qx "usr/bin/init-link 0777 -" "$T/members"
		# The early archive stays uncompressed in front, the main one gzip.
		head -c 6 "$img" | grep -q 070701
		python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); sys.exit(b"\x1f\x8b" not in d[:4096])' "$img"
	done
}

@test "rekey: a 256 MiB initramfs the guest's tools made (no key archive), gzip and zstd: peak memory under 64 MiB, every copy of the key new" {
	requires zstd
	local comp tree
	for comp in gzip zstd; do
		tree=$T/big-$comp
		"$CVM_SRCDIR/tests/lib/boot-tree" "$tree" initramfs-tools
		echo 256 > "$tree/etc/fake-initrd-pad-mb"
		echo "$comp" > "$tree/etc/fake-compress"
		[ "$comp" != zstd ] || install_program "$tree" zstd
		tar --numeric-owner -C "$tree" -cf "$T/big.tar" .
		rm -rf --one-file-system "${tree:?}"
		CVM_IMAGE_FAULT=no-key-archive "$CVM_IMAGE" -q build --size 300M --json "$T/big.tar" -o "$T/out/big.img" > "$T/build.json"
		cp "$T/out/big.img.key" "$T/old.key"
		give_user "$T"
		as_user /usr/bin/time -f %M -o "$T/rss" "$CVM_IMAGE" --debug rekey "$T/out/big.img" --key-file "$T/old.key" 2> "$T/log" ||
			{ cat "$T/log"; false; }
		echo "$comp: peak RSS: $(cat "$T/rss") KiB"
		[ "$(grep -c 'initrd.img-.*: 1 key copy replaced in pieces' "$T/log")" -eq 2 ]
		[ "$(cat "$T/rss")" -lt $((64 * 1024)) ]
		# What the image holds now, read offline: the new key opens slot 0 only, and every
		# initramfs decodes (its checksums checked) to the new key where the tool put it.
		run cvm inspect "$T/out/big.img" --key-file "$T/out/big.img.key"
		echo "$output"
		[ "$status" -eq 0 ]
		[ "$(grep -c '^ok  *initramfs 6.1.0-.*1 key member (mode 0600) holding the key' <<<"$output")" -eq 2 ]
		run cvm inspect "$T/out/big.img" --key-file "$T/old.key"
		[ "$status" -eq 1 ]
		rm -f "$T/out/big.img" "$T/out/big.img.key" "$T/big.tar"
	done
}

@test "rekey: a zstd initramfs: zeroed in its zstd archive at build, only the key archive rewritten" {
	requires guestfs zstd
	image initramfs-tools zstd
	cp "$T/out/disk.img.key" "$T/old.key"
	cvm --debug rekey "$T/out/disk.img" --key-file "$T/old.key" 2> "$T/log"
	[ "$(grep -c 'key copy replaced in its key archive$' "$T/log")" -eq 2 ]
	local uuid new old
	rekeyed_tree
	for img in "$T"/root/boot/initrd.img-*[0-9]; do
		"$CVM_SRCDIR/tests/lib/initrd-members" "$img" > "$T/members"
		grep -q "^cryptroot/keyfiles/cr_root.key 0600 $new$" "$T/members"
		grep -qx "usr/lib/modules/fake.ko 0600 $(seq 1 200000 | sed 's/^/module data /' | sha256sum | cut -c1-16)" "$T/members"
		initrd_archives "$img"
		run ! grep -q "$old" "$T/archives"
		key_archive_holds cryptroot/keyfiles/cr_root.key "$new" zstd
	done
}

@test "rekey: a zstd initramfs the guest's tools made again is written again in pieces, still zstd, every other member unchanged" {
	requires guestfs zstd
	image initramfs-tools zstd no-key-archive
	cp "$T/out/disk.img.key" "$T/old.key"
	cvm --debug rekey "$T/out/disk.img" --key-file "$T/old.key" 2> "$T/log"
	# Written again in pieces (through an unnamed temporary file), not held whole.
	[ "$(grep -c 'initrd.img-.*: 1 key copy replaced in pieces' "$T/log")" -eq 2 ]
	local uuid new old
	rekeyed_tree
	for img in "$T"/root/boot/initrd.img-*[0-9]; do
		"$CVM_SRCDIR/tests/lib/initrd-members" "$img" > "$T/members"
		grep -q "^cryptroot/keyfiles/cr_root.key 0600 $new$" "$T/members"
		run ! grep -q "$old" "$T/members"
		grep -qx "usr/lib/modules/fake.ko 0600 $(seq 1 200000 | sed 's/^/module data /' | sha256sum | cut -c1-16)" "$T/members"
		grep -qx "init 0600 $(echo 'fake init' | sha256sum | cut -c1-16)" "$T/members"
		# The early archive uncompressed in front, then zstd (magic 28 b5 2f fd).
		head -c 6 "$img" | grep -q 070701
		python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); sys.exit(b"\x28\xb5\x2f\xfd" not in d[:4096])' "$img"
	done
}

@test "rekey: a dracut image: the key file under etc/cryptsetup-keys.d in the initramfs" {
	requires guestfs
	image dracut
	cvm -q rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key" --new-key-out "$T/new.key"
	# --new-key-out: the new key there, the image's .key file left as it was.
	[ "$(stat -c %a "$T/new.key")" = 600 ]
	header "$T/out/disk.img"
	opens_with "$T/hdr" "$T/new.key"
	run ! opens_with "$T/hdr" "$T/out/disk.img.key"
	run "$CVM_SRCDIR/tests/lib/guestfs-check" "$T/out/disk.img" raw "$T/new.key" "$T/root.tar"
	[[ "$output" == *e2fsck-exit=0* ]]
	mkdir "$T/root"
	tar --numeric-owner -xpf "$T/root.tar" -C "$T/root"
	local uuid
	uuid=$(jq -r .luks.uuid "$T/build.json")
	"$CVM_SRCDIR/tests/lib/initrd-members" "$T/root/boot/initrd.img-6.1.0-10-amd64" > "$T/members"
	grep -q "^etc/cryptsetup-keys.d/luks-$uuid.key 0600 $(sha256sum < "$T/new.key" | cut -c1-16)$" "$T/members"
	initrd_archives "$T/root/boot/initrd.img-6.1.0-10-amd64"
	key_archive_holds "etc/cryptsetup-keys.d/luks-$uuid.key" "$(sha256sum < "$T/new.key" | cut -c1-16)" gzip
	run ! grep -q "$(sha256sum < "$T/out/disk.img.key" | cut -c1-16)" "$T/archives"
}

@test "rekey: with the recovery passphrase; twice in a row" {
	image
	cp "$T/out/disk.img.key" "$T/old.key"
	run --separate-stderr cvm rekey "$T/out/disk.img" --recovery-passphrase-file "$T/recovery" --json
	[ "$status" -eq 0 ]
	[ "$(jq -r .old_slot <<<"$output")" = 0 ]
	header "$T/out/disk.img"
	opens_with "$T/hdr" "$T/out/disk.img.key"
	run ! opens_with "$T/hdr" "$T/old.key"
	opens_with "$T/hdr" "$T/recovery.typed"
	cp "$T/out/disk.img.key" "$T/second.key"
	cvm -q rekey "$T/out/disk.img" --key-file "$T/second.key"
	header "$T/out/disk.img"
	opens_with "$T/hdr" "$T/out/disk.img.key"
	! opens_with "$T/hdr" "$T/second.key"
}

@test "rekey: a qcow2 image stays qcow2 and leaves no temporary copy" {
	image
	qemu-img convert -O qcow2 "$T/out/disk.img" "$T/out/disk.qcow2"
	cp "$T/out/disk.img.key" "$T/out/disk.qcow2.key"
	rm "$T/out/disk.img" "$T/out/disk.img.key"
	cvm -q rekey "$T/out/disk.qcow2" --key-file "$T/out/disk.qcow2.key"
	[ "$(qemu-img info --output=json "$T/out/disk.qcow2" | jq -r .format)" = qcow2 ]
	qemu-img convert -O raw "$T/out/disk.qcow2" "$T/check.img"
	header "$T/check.img"
	opens_with "$T/hdr" "$T/out/disk.qcow2.key"
	[ "$(ls -A "$T/out")" = "$(printf 'disk.qcow2\ndisk.qcow2.key')" ]
}

@test "rekey: a wrong key changes nothing" {
	image
	local sum
	sum=$(sha256sum < "$T/out/disk.img")
	printf 'not the key' > "$T/wrong"
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/wrong"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the key in the key file does not open '$T/out/disk.img': nothing changed"* ]]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
	[ "$(ls -A "$T/out")" = "$(printf 'disk.img\ndisk.img.key')" ]
	assert_no_leftovers "$T/out"
}

@test "rekey: images not made this way say what is missing" {
	head -c 10M /dev/zero > "$T/out/zero.img"
	run --separate-stderr cvm rekey "$T/out/zero.img" --key-file "$T/recovery"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"has no partition table"* ]]
	truncate -s 20M "$T/out/gpt.img"
	echo 'label: gpt
start=2048, size=10240, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4' | sfdisk -q "$T/out/gpt.img"
	run --separate-stderr cvm rekey "$T/out/gpt.img" --key-file "$T/recovery"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"has no LUKS1 partition"* ]]
	# An encrypted disk without boot configuration has no key file inside.
	mkdir -p "$T/plain/etc"
	echo ID=debian > "$T/plain/etc/os-release"
	tar -C "$T/plain" -cf "$T/plain.tar" .
	"$CVM_IMAGE" -q build --distro none --size 200M "$T/plain.tar" -o "$T/out/plain.img"
	local sum
	sum=$(sha256sum < "$T/out/plain.img")
	run --separate-stderr cvm rekey "$T/out/plain.img" --key-file "$T/out/plain.img.key"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"has no key file /etc/cryptsetup-keys.d/luks-"*"in its root filesystem"* ]]
	[ "$(sha256sum < "$T/out/plain.img")" = "$sum" ]
	assert_no_leftovers "$T/out"
}

@test "rekey: an image built with --distro none: refused, saying so (not 'not made by cvm-image'), unchanged" {
	"$CVM_SRCDIR/tests/lib/boot-tree" "$T/tree" initramfs-tools
	tar --numeric-owner -C "$T/tree" -cf "$T/tree.tar" .
	"$CVM_IMAGE" -q build --distro none --size 300M "$T/tree.tar" -o "$T/none.img"
	refused_unchanged "$T/none.img" "$T/none.img.key" "has no key file /etc/cryptsetup-keys.d/luks-"
	[[ "$stderr" == *"(built with --distro none, or not by cvm-image build): rekey keeps the key's copies inside an image in step and finds none; nothing changed"* ]]
	[[ "$stderr" != *"not an image made by"* ]]
}

@test "rekey: an initramfs compression it cannot write back: refused before any change" {
	image initramfs-tools bzip2
	refused_unchanged "$T/out/disk.img" "$T/out/disk.img.key" \
		"the key is in a bzip2-compressed archive, which cvm-image cannot write back"
	assert_no_leftovers "$T/out"
}

@test "rekey: a key file open to others, with a second name, or not a regular file: refused before any change" {
	image
	local sum key
	key=$(cat "$T/out/disk.img.key")
	chmod 0644 "$T/out/disk.img.key"
	refused_unchanged "$T/out/disk.img" "$T/out/disk.img.key" "key file '$T/out/disk.img.key' has mode 0644, open to others: nothing changed ('chmod 0600 $T/out/disk.img.key' first)"
	chmod 0600 "$T/out/disk.img.key"
	mkdir -p "$T/www"
	ln "$T/out/disk.img.key" "$T/www/key.txt"
	refused_unchanged "$T/out/disk.img" "$T/out/disk.img.key" "key file '$T/out/disk.img.key' has 2 names (hard links)"
	[ "$(cat "$T/www/key.txt")" = "$key" ]
	rm "$T/www/key.txt"
	# --new-key-out names a FIFO: not written through.
	mkfifo "$T/out/fifo"
	sum=$(sha256sum < "$T/out/disk.img")
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key" --new-key-out "$T/out/fifo"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"key file '$T/out/fifo' is not a regular file: nothing changed"* ]]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
	[ "$(cat "$T/out/disk.img.key")" = "$key" ]
	# Fixed, it goes through.
	run cvm -q rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 0 ]
	[ "$(stat -c '%a %h' "$T/out/disk.img.key")" = "600 1" ]
}

@test "rekey: an initramfs open to others in the image (the guest's own chmod): refused before any change" {
	mkdir -p "$T/site/hooks/finalize"
	printf '#!/bin/sh\nchmod 0644 /boot/initrd.img-6.1.0-9-amd64\n' > "$T/site/hooks/finalize/90-spoil"
	chmod +x "$T/site/hooks/finalize/90-spoil"
	"$CVM_SRCDIR/tests/lib/boot-tree" "$T/tree" initramfs-tools
	tar --numeric-owner -C "$T/tree" -cf "$T/tree.tar" .
	"$CVM_IMAGE" -q build --size 300M --hooks-dir "$T/site" "$T/tree.tar" -o "$T/spoiled.img"
	refused_unchanged "$T/spoiled.img" "$T/spoiled.img.key" "'$T/spoiled.img': /boot/initrd.img-6.1.0-9-amd64 has mode 0644 in its root filesystem: the new key would be readable by others; nothing changed (chmod 0600 it in the guest first)"
	[ ! -e "$T/spoiled.img.key.new" ]
}

@test "rekey: a read-only image, a locked image, usage errors" {
	image
	local sum
	sum=$(sha256sum < "$T/out/disk.img")
	chmod 0444 "$T/out/disk.img"
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"is read-only (mode 0444): nothing changed"* ]]
	chmod 0644 "$T/out/disk.img"
	hold_lock "$T/out/disk.img"
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	kill "$HOLDER"
	wait "$HOLDER" || true
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"is in use by another cvm-image process"* ]]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
	run --separate-stderr cvm rekey "$T/out/disk.img"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"give exactly one of --key-file and --recovery-passphrase-file"* ]]
	run --separate-stderr cvm rekey --key-file "$T/out/disk.img.key"
	[ "$status" -eq 2 ]
	run --separate-stderr cvm rekey "$T/nope.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"cannot open '$T/nope.img': No such file or directory"* ]]
}

@test "rekey: fault injection: wherever it dies, the image opens with the old key or KEY.new, e2fsck clean" {
	requires guestfs
	local step
	for step in key-saved backup slot-added rootfs-key initramfs files old-slot-killed; do
		image
		cp "$T/out/disk.img.key" "$T/old.key"
		CVM_IMAGE_FAULT=$step run cvm -q rekey "$T/out/disk.img" --key-file "$T/old.key"
		[ "$status" -eq 99 ]
		header "$T/out/disk.img"
		local key=
		if opens_with "$T/hdr" "$T/old.key"; then
			key=$T/old.key
		elif [ -f "$T/out/disk.img.key.new" ] && opens_with "$T/hdr" "$T/out/disk.img.key.new"; then
			key=$T/out/disk.img.key.new
		fi
		echo "after $step: opens with ${key:-nothing}"
		[ -n "$key" ]
		# The backup of the original header is there from its step on; the new key before.
		[ -f "$T/out/disk.img.key.new" ]
		[ "$step" = key-saved ] || [ -f "$T/out/disk.img.luks-header-backup" ]
		run "$CVM_SRCDIR/tests/lib/guestfs-check" "$T/out/disk.img" raw "$key" "$T/root.tar"
		[[ "$output" == *e2fsck-exit=0* ]] || { echo "$output"; false; }
		# A second rekey says what was left instead of guessing.
		if [ -f "$T/out/disk.img.key.new" ]; then
			run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/old.key"
			[ "$status" -eq 1 ]
			[[ "$stderr" == *"left by an interrupted rekey"* ]]
		fi
		rm -f "$T"/out/*
	done
}

@test "rekey: the new key cannot be saved: nothing changes, nothing is left, and it says so" {
	local sum
	image
	sum=$(sha256sum < "$T/out/disk.img")
	mkdir "$T/ro"
	mount -t tmpfs -o ro tmpfs "$T/ro"
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key" --new-key-out "$T/ro/new.key"
	umount "$T/ro"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"cannot create '$T/ro/new.key.new': Read-only file system; nothing in '$T/out/disk.img' changed"* ]]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
	[ "$(ls -A "$T/out")" = "$(printf 'disk.img\ndisk.img.key')" ]
	# No slot was added: the old key's slot 0 and the recovery slot 1 only.
	header "$T/out/disk.img"
	[ "$(cryptsetup luksDump "$T/hdr" | grep -c ': ENABLED')" = 2 ]
}

# what_opens: "old", "new", "both" or "none": which of $T/old.key and KEY.new open the image.
what_opens() {
	local o=0 n=0
	header "$T/out/disk.img"
	opens_with "$T/hdr" "$T/old.key" && o=1
	[ -f "$T/out/disk.img.key.new" ] && opens_with "$T/hdr" "$T/out/disk.img.key.new" && n=1
	case $o$n in 11) echo both ;; 10) echo old ;; 01) echo new ;; *) echo none ;; esac
}

@test "rekey: wherever it fails, what the message says opens the image does, and what it keeps is what is needed" {
	local step said
	for step in key-saved backup slot-added rootfs-key initramfs files old-slot-killed; do
		image
		cp "$T/out/disk.img.key" "$T/old.key"
		CVM_IMAGE_FAULT=fail-after-$step run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/old.key"
		echo "after $step: $stderr"
		[ "$status" -eq 1 ]
		[[ "$stderr" == *"CVM_IMAGE_FAULT=fail-after-$step: failing here"* ]]
		case $stderr in
		*"opens with the old key and with the new key in '$T/out/disk.img.key.new'"*) said=both ;;
		*"opens with the new key in '$T/out/disk.img.key.new' only: rename it to '$T/out/disk.img.key'"*) said=new ;;
		*"nothing in '$T/out/disk.img' changed; it opens with the old key, as before"* | \
		*"opens with the old key only, as before"*) said=old ;;
		*) said=unknown ;;
		esac
		[ "$said" = "$(what_opens)" ]
		# What goes when it no longer matters: KEY.new if it opens nothing, the backup if
		# the old key no longer opens the image.
		case $said in
		old)
			[ ! -e "$T/out/disk.img.key.new" ]
			[ ! -e "$T/out/disk.img.luks-header-backup" ]
			;;
		new) [ ! -e "$T/out/disk.img.luks-header-backup" ] ;;
		both) [ -f "$T/out/disk.img.luks-header-backup" ] ;;
		esac
		rm -f "$T"/out/*
	done
}

@test "rekey: a qcow2 image is edited in place: wherever it fails, what the message says opens it does" {
	local step said
	for step in slot-added initramfs old-slot-killed; do
		image
		cp "$T/out/disk.img.key" "$T/old.key"
		qemu-img convert -O qcow2 "$T/out/disk.img" "$T/out/disk.qcow2"
		cp "$T/out/disk.img.key" "$T/out/disk.qcow2.key"
		rm "$T/out/disk.img" "$T/out/disk.img.key"
		CVM_IMAGE_FAULT=fail-after-$step run --separate-stderr cvm rekey "$T/out/disk.qcow2" --key-file "$T/old.key"
		echo "after $step: $stderr"
		[ "$status" -eq 1 ]
		case $stderr in
		*"opens with the old key and with the new key in '$T/out/disk.qcow2.key.new'"*) said=both ;;
		*"opens with the new key in '$T/out/disk.qcow2.key.new' only: rename it to '$T/out/disk.qcow2.key'"*) said=new ;;
		*) said=unknown ;;
		esac
		# The edits reached the qcow2 image itself (no raw copy in between).
		qemu-img check -q "$T/out/disk.qcow2"
		qemu-img convert -O raw "$T/out/disk.qcow2" "$T/out/disk.img"
		if [ -f "$T/out/disk.qcow2.key.new" ]; then
			cp "$T/out/disk.qcow2.key.new" "$T/out/disk.img.key.new"
		fi
		[ "$said" = "$(what_opens)" ]
		[ -z "$(ls -A "$T/out" | grep cvm-image-rekey)" ]
		rm -f "$T"/out/*
	done
	run ! grep -q cvm-image-export /proc/self/mountinfo
}

@test "rekey: a truncated raw image is called truncated, not 'no partition table', and is left as it is" {
	image
	truncate -s 20M "$T/out/disk.img"
	refused_unchanged "$T/out/disk.img" "$T/out/disk.img.key" "'$T/out/disk.img' is shorter than its partition table says: 20.0 MiB of 300.0 MiB (truncated?)"
	head -c 1M /dev/zero > "$T/zero.img"
	refused_unchanged "$T/zero.img" "$T/out/disk.img.key" "'$T/zero.img' has no partition table (not an image made by cvm-image?)"
}

# slots_enabled IMAGE: the LUKS key slots in use, as "0 1".
slots_enabled() {
	header "$1"
	cryptsetup luksDump "$T/hdr" | sed -n 's/^Key Slot \([0-7]\): ENABLED$/\1/p' | tr '\n' ' ' | sed 's/ $//'
}

# rekeyed_to_slot_0 NEWKEY ARGS...: rekey $T/out/disk.img with $T/old.key and ARGS succeeds; the
# new key NEWKEY is in slot 0, the recovery slot 1 is the only other, the old key opens nothing.
rekeyed_to_slot_0() {
	local new=$1
	shift
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/old.key" --json "$@"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$(jq -r .new_slot <<<"$output")" = 0 ]
	[ "$(slots_enabled "$T/out/disk.img")" = "0 1" ]
	opens_with "$T/hdr" "$new"
	run ! opens_with "$T/hdr" "$T/old.key"
}

@test "rekey: the recovery once advised after a stop (remove KEY.new, rekey again) leaves the new key in slot 0, the recovery slot, nothing else" {
	image
	cp "$T/out/disk.img.key" "$T/old.key"
	CVM_IMAGE_FAULT=files run cvm -q rekey "$T/out/disk.img" --key-file "$T/old.key"
	[ "$status" -eq 99 ]
	[ "$(slots_enabled "$T/out/disk.img")" = "0 1 2" ]
	rm "$T/out/disk.img.key.new" "$T/out/disk.img.luks-header-backup"
	# The image's key file now holds the lost key of slot 2; the old key still opens slot 0.
	rekeyed_to_slot_0 "$T/new.key" --new-key-out "$T/new.key"
	opens_with "$T/hdr" "$T/recovery.typed"
}

@test "rekey: a slot that no key given opens is refused, named, until --kill-slot removes it" {
	local sum
	image
	cp "$T/out/disk.img.key" "$T/old.key"
	CVM_IMAGE_FAULT=slot-added run cvm -q rekey "$T/out/disk.img" --key-file "$T/old.key"
	[ "$status" -eq 99 ]
	# Its key thrown away: slot 2 opens with a key nobody holds.
	rm "$T/out/disk.img.key.new" "$T/out/disk.img.luks-header-backup"
	sum=$(sha256sum < "$T/out/disk.img")
	refused_unchanged "$T/out/disk.img" "$T/old.key" "'$T/out/disk.img' has key slot 2 in use that neither the given key nor the image's key file opens (left by an interrupted rekey, or added by hand): nothing changed; to remove it, give --kill-slot for it"
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/old.key" --kill-slot 2 --kill-slot 5
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"--kill-slot 5: not in use in '$T/out/disk.img': nothing changed"* ]]
	run --separate-stderr cvm rekey "$T/out/disk.img" --recovery-passphrase-file "$T/recovery" --kill-slot 1 --kill-slot 2
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"--kill-slot 1: that is the slot the recovery passphrase opens"* ]]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
	for bad in 8 -1 x 2x ''; do
		run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/old.key" --kill-slot "$bad"
		[ "$status" -eq 2 ]
		[[ "$stderr" == *"invalid --kill-slot '$bad': expected a LUKS1 key slot, 0 to 7"* ]]
	done
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/old.key" --kill-slot 2 --reencrypt -o "$T/copy.img"
	[ "$status" -eq 2 ]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
	rekeyed_to_slot_0 "$T/out/disk.img.key" --kill-slot 2
}

# shared_blocks A B OFFSET END: 4 KiB blocks in [OFFSET, END) that hold data and are equal.
shared_blocks() {
	python3 - "$1" "$2" "$3" "$4" <<'PY'
import sys
a, b, off, end = open(sys.argv[1], "rb"), open(sys.argv[2], "rb"), int(sys.argv[3]), int(sys.argv[4])
a.seek(off); b.seek(off)
zero, same, data = bytes(4096), 0, 0
while off < end:
    x, y = a.read(4096), b.read(4096)
    off += 4096
    if not x:
        break
    if x != zero:
        data += 1
        same += x == y
print(same, data)
PY
}

@test "rekey --reencrypt: a copy with its own volume key; the original untouched" {
	requires guestfs
	image
	local sum uuid
	sum=$(sha256sum < "$T/out/disk.img")
	uuid=$(jq -r .luks.uuid "$T/build.json")
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key" \
		--reencrypt -o "$T/out/copy.img" --json
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$(jq -r .output <<<"$output")" = "$T/out/copy.img" ]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
	# Its own key opens it, the original's does not; the same LUKS UUID; no recovery slot.
	header "$T/out/copy.img"
	[ "$(stat -c %a "$T/out/copy.img.key")" = 600 ]
	opens_with "$T/hdr" "$T/out/copy.img.key"
	run ! opens_with "$T/hdr" "$T/out/disk.img.key"
	run ! opens_with "$T/hdr" "$T/recovery.typed"
	[ "$(cryptsetup luksUUID "$T/hdr")" = "$uuid" ]
	[ "$(cryptsetup luksDump "$T/hdr" | grep -c ': ENABLED')" = 1 ]
	# No block of data is the same as in the original: a new volume key throughout.
	# The payload: from 102 MiB to the end of the partition, 1 MiB before the end of the disk.
	read -r same data < <(shared_blocks "$T/out/disk.img" "$T/out/copy.img" $((102 * 1024 * 1024)) \
		$(( $(stat -c %s "$T/out/disk.img") - 1024 * 1024 )))
	echo "shared $same of $data"
	[ "$data" -gt 1000 ]
	[ "$same" -eq 0 ]
	# Outside the LUKS partition, the same bytes.
	cmp -n $((100 * 1024 * 1024)) "$T/out/disk.img" "$T/out/copy.img"
	# The same files, but for the copies of the key.
	run "$CVM_SRCDIR/tests/lib/guestfs-check" "$T/out/copy.img" raw "$T/out/copy.img.key" "$T/copy.tar"
	[[ "$output" == *e2fsck-exit=0* ]]
	"$CVM_SRCDIR/tests/lib/guestfs-check" "$T/out/disk.img" raw "$T/out/disk.img.key" "$T/orig.tar" >/dev/null
	mkdir "$T/a" "$T/b"
	tar --numeric-owner -xpf "$T/orig.tar" -C "$T/a"
	tar --numeric-owner -xpf "$T/copy.tar" -C "$T/b"
	diff -r --no-dereference -x "luks-$uuid.key" -x "luks-$uuid.pin" -x 'initrd.img-*' "$T/a" "$T/b"
	cmp "$T/b/etc/cryptsetup-keys.d/luks-$uuid.key" "$T/out/copy.img.key"
	"$CVM_SRCDIR/tests/lib/initrd-members" "$T/b/boot/initrd.img-6.1.0-9-amd64" |
		grep -q "^cryptroot/keyfiles/cr_root.key 0600 $(sha256sum < "$T/out/copy.img.key" | cut -c1-16)$"
}

@test "rekey --reencrypt: opened with the recovery passphrase, the copy keeps it in slot 1; qcow2 out" {
	image
	run --separate-stderr cvm rekey "$T/out/disk.img" --recovery-passphrase-file "$T/recovery" \
		--recovery-iter-time 50 --reencrypt -o "$T/out/copy.qcow2"
	[ "$status" -eq 0 ]
	[ "$(qemu-img info --output=json "$T/out/copy.qcow2" | jq -r .format)" = qcow2 ]
	qemu-img convert -O raw "$T/out/copy.qcow2" "$T/copy.raw"
	header "$T/copy.raw"
	opens_with "$T/hdr" "$T/out/copy.qcow2.key"
	cryptsetup open --test-passphrase --key-slot 1 --key-file "$T/recovery.typed" "$T/hdr"
	assert_no_leftovers "$T/out"
}

@test "rekey --reencrypt: usage, an existing output, --force" {
	image
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key" --reencrypt
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--reencrypt and -o NEW_IMAGE go together"* ]]
	echo precious > "$T/out/copy.img"
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key" \
		--reencrypt -o "$T/out/copy.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"output '$T/out/copy.img' exists (use --force to replace it)"* ]]
	[ "$(cat "$T/out/copy.img")" = precious ]
	assert_no_leftovers "$T/out"
	# --force replaces it with the copy.
	cvm -q rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key" --reencrypt \
		-o "$T/out/copy.img" --force
	header "$T/out/copy.img"
	opens_with "$T/hdr" "$T/out/copy.img.key"
	assert_no_leftovers "$T/out"
}

# The steps of --reencrypt, as its table in src/rekey/reencrypt.c names them.
reencrypt_steps() {
	sed -n '/^static const struct rekey_step reencrypt_steps\[\] = {/,/^};/p' "$CVM_SRCDIR/src/rekey/reencrypt.c" |
		grep -oE '^	\{ "[a-z-]+"' | grep -oE '[a-z-]+'
}

@test "rekey --reencrypt: wherever it fails, stops dead or is interrupted, no copy appears, the original is only read, and it says so" {
	local sum step steps out
	image
	sum=$(sha256sum < "$T/out/disk.img")
	steps=$(reencrypt_steps)
	[ "$(echo "$steps" | wc -l)" -ge 6 ]
	for out in copy.img copy.qcow2; do
		for step in $steps; do
			[ "$step" = committed ] && continue # its failures are output_commit's (build's tests)
			CVM_IMAGE_FAULT=fail-after-$step run --separate-stderr cvm rekey "$T/out/disk.img" \
				--key-file "$T/out/disk.img.key" --reencrypt -o "$T/out/$out"
			echo "$step $out: $stderr"
			[ "$status" -eq 1 ]
			[[ "$stderr" == *"CVM_IMAGE_FAULT=fail-after-$step: failing here"* ]]
			[[ "$stderr" == *"no copy was written: neither '$T/out/$out' nor '$T/out/$out.key' exists; '$T/out/disk.img' was only read"* ]]
			[ ! -e "$T/out/$out" ]
			[ ! -e "$T/out/$out.key" ]
			assert_no_leftovers "$T/out"
			[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]

			CVM_IMAGE_FAULT=signal-after-$step run --separate-stderr cvm rekey "$T/out/disk.img" \
				--key-file "$T/out/disk.img.key" --reencrypt -o "$T/out/$out"
			[ "$status" -eq 1 ]
			[[ "$stderr" == *"interrupted after step $step"* ]]
			[[ "$stderr" == *"no copy was written"* ]]
			[ ! -e "$T/out/$out" ]
			[ ! -e "$T/out/$out.key" ]
			assert_no_leftovers "$T/out"
		done
	done
	# Stopped dead (as by SIGKILL) in the middle: the next run removes what it left, says so,
	# and writes the copy.
	CVM_IMAGE_FAULT=data-reencrypted run --separate-stderr cvm rekey "$T/out/disk.img" \
		--key-file "$T/out/disk.img.key" --reencrypt -o "$T/out/copy.qcow2"
	[ "$status" -eq 99 ]
	[ -n "$(ls -A "$TMPDIR")" ]
	[ -n "$(find "$T/out" -maxdepth 1 -name '.*.tmp-*')" ]
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key" \
		--reencrypt -o "$T/out/copy.qcow2"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"removed"*"cvm-image-reencrypt."* ]]
	assert_no_leftovers "$T/out"
	qemu-img convert -O raw "$T/out/copy.qcow2" "$T/copy.raw"
	header "$T/copy.raw"
	opens_with "$T/hdr" "$T/out/copy.qcow2.key"
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
}

@test "rekey: a qcow2 image is rekeyed in place, with no room for a raw copy beside it" {
	requires mount
	image
	mkdir "$T/small"
	qemu-img convert -O qcow2 "$T/out/disk.img" "$T/disk.qcow2"
	local need ino
	need=$(du -k "$T/disk.qcow2" | cut -f1)
	# Room for the qcow2 image, not for a raw copy of it as well.
	mount -t tmpfs -o size=$(( need + 2048 ))k tmpfs "$T/small"
	cp "$T/disk.qcow2" "$T/small/"
	cp "$T/out/disk.img.key" "$T/small/disk.qcow2.key"
	ino=$(stat -c %i "$T/small/disk.qcow2")
	run --separate-stderr cvm rekey "$T/small/disk.qcow2" --key-file "$T/small/disk.qcow2.key"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$(stat -c %i "$T/small/disk.qcow2")" = "$ino" ]
	[ "$(ls -A "$T/small")" = "$(printf 'disk.qcow2\ndisk.qcow2.key')" ]
	run --separate-stderr cvm inspect "$T/small/disk.qcow2" --key-file "$T/small/disk.qcow2.key"
	echo "$output"
	[ "$status" -eq 0 ]
	umount "$T/small"
}

@test "rekey --reencrypt --new-uuid: the copy's key file, crypttab, grub config, initramfs and grub's EFI binary name the new UUID" {
	requires guestfs
	image dracut
	local old new
	old=$(jq -r .luks.uuid "$T/build.json")
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key" \
		--reencrypt -o "$T/out/copy.img" --new-uuid --json
	echo "$stderr"
	[ "$status" -eq 0 ]
	new=$(jq -r .luks_uuid <<<"$output")
	[ "$new" != "$old" ]
	header "$T/out/copy.img"
	[ "$(cryptsetup luksUUID "$T/hdr")" = "$new" ]
	opens_with "$T/hdr" "$T/out/copy.img.key"
	# grub's early config in BOOTX64.EFI (outside the LUKS partition).
	extract_region "$T/out/copy.img" 1 99 "$T/esp"
	MTOOLS_SKIP_CHECK=1 mtype -i "$T/esp" ::/EFI/BOOT/BOOTX64.EFI > "$T/efi"
	grep -qx "cryptomount -u ${new//-/}" "$T/efi"
	run ! grep -q "${old//-/}" "$T/efi"
	# Inside: nothing names the old UUID any more.
	run "$CVM_SRCDIR/tests/lib/guestfs-check" "$T/out/copy.img" raw "$T/out/copy.img.key" "$T/copy.tar"
	[[ "$output" == *e2fsck-exit=0* ]]
	mkdir "$T/b"
	tar --numeric-owner -xpf "$T/copy.tar" -C "$T/b"
	cmp "$T/b/etc/cryptsetup-keys.d/luks-$new.key" "$T/out/copy.img.key"
	[ ! -e "$T/b/etc/cryptsetup-keys.d/luks-$old.key" ]
	grep -qx "luks-$new UUID=$new /etc/cryptsetup-keys.d/luks-$new.key luks" "$T/b/etc/crypttab"
	grep -q "rd.luks.uuid=$new" "$T/b/boot/grub/grub.cfg"
	grep -q "rd.luks.uuid=$new" "$T/b/etc/default/grub"
	run ! grep -rq "$old" "$T/b/etc" "$T/b/boot/grub"
	"$CVM_SRCDIR/tests/lib/initrd-members" "$T/b/boot/initrd.img-6.1.0-10-amd64" > "$T/members"
	grep -q "^etc/cryptsetup-keys.d/luks-$new.key 0600 $(sha256sum < "$T/out/copy.img.key" | cut -c1-16)$" "$T/members"
	run ! grep -q "$old" "$T/members"
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key" --new-uuid
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--new-uuid goes with --reencrypt -o NEW_IMAGE"* ]]
}

@test "rekey: an image a QEMU has open (its own locks, not flock) is refused, unchanged" {
	requires qemu-io
	image
	local sum holder
	sum=$(sha256sum < "$T/out/disk.img")
	# qemu-io holds the image open read-write, with QEMU's OFD locks, until its input ends.
	mkfifo "$T/qemu-in"
	qemu-io -f raw "$T/out/disk.img" < "$T/qemu-in" > "$T/qemu-io.log" 2>&1 &
	holder=$!
	exec 9> "$T/qemu-in"
	sleep 1
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	echo "$stderr"
	exec 9>&-
	wait "$holder" || true
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"'$T/out/disk.img' is in use by another process (QEMU holds its lock: a running VM?): nothing changed"* ]]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
	[ ! -e "$T/out/disk.img.key.new" ]
}

@test "rekey: a KEY.new while another rekey holds the image: 'in use', not 'an interrupted rekey'" {
	image
	echo leftover > "$T/out/disk.img.key.new"
	hold_lock "$T/out/disk.img"
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	kill "$HOLDER"
	wait "$HOLDER" || true
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"is in use by another cvm-image process"* ]]
	[[ "$stderr" != *"interrupted rekey"* ]]
	# Without the other process, the leftover is what is said.
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"'$T/out/disk.img.key.new' exists, left by an interrupted rekey"* ]]
}

@test "rekey: a damaged root filesystem is named by libext2fs's own message, not an unknown code" {
	image
	# The ext4 superblock, 1 KiB into the LUKS payload (2 MiB into the root partition).
	local start
	start=$(sfdisk -J "$T/out/disk.img" | jq '.partitiontable.partitions[1].start')
	dd if=/dev/urandom of="$T/out/disk.img" bs=512 seek=$((start + 4096)) count=8 conv=notrunc status=none
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" != *"Unknown code ext2"* ]]
	[[ "$stderr" == *"Bad magic number in super-block"* || "$stderr" == *"superblock"* ]]
}

@test "rekey: a truncated qcow2 image is refused before anything is read or changed" {
	image
	qemu-img convert -f raw -O qcow2 "$T/out/disk.img" "$T/out/disk.qcow2"
	cp "$T/out/disk.img.key" "$T/out/disk.qcow2.key"
	truncate -s $(( $(stat -c %s "$T/out/disk.qcow2") * 3 / 4 )) "$T/out/disk.qcow2"
	refused_unchanged "$T/out/disk.qcow2" "$T/out/disk.qcow2.key" \
		"'$T/out/disk.qcow2' is a damaged qcow2 image (qemu-img check: "
	[[ "$stderr" == *"nothing changed"* ]]
	[ -z "$(ls -A "$T/out" | grep -v '^disk\.\(img\|qcow2\)\(\.key\)\?$')" ]
}

# check_ok NAME [DETAIL]: in inspect's JSON ($output), the check NAME is ok (saying DETAIL).
check_ok() {
	local got
	got=$(jq -r --arg n "$1" '.checks[] | select(.name == $n) | "\(.status) \(.detail)"' <<<"$output")
	[[ "$got" == "ok "*"${2:-}"* ]] || { echo "check '$1': $got"; return 1; }
}

# resumed_ok IMAGE KEY: after --resume, KEY alone opens IMAGE's slot 0, the recovery slot 1 is
# the only other, nothing was left, and inspect finds KEY in the tree and every initramfs.
resumed_ok() {
	local img=$1 key=$2 raw=$1
	[ ! -e "$key.new" ] && [ ! -e "$img.luks-header-backup" ]
	if [[ $img == *.qcow2 ]]; then
		raw=$T/resumed.img
		qemu-img convert -f qcow2 -O raw "$img" "$raw"
	fi
	[ "$(slots_enabled "$raw")" = "0 1" ]
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$key" "$T/hdr"
	opens_with "$T/hdr" "$T/recovery.typed"
	run --separate-stderr cvm inspect "$img" --key-file "$key" --json
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ -z "$(jq -r '.checks[] | select(.status == "fail") | .name' <<<"$output")" ]
	check_ok key-file && check_ok key-opens "slot 0" && check_ok "initramfs 6.1.0-10-amd64"
	rm -f "$T/resumed.img"
}

# stopped_dead FORMAT STEP [IMAGE-ARGS]: a copy of image (IMAGE-ARGS) as $img, raw (img) or
# qcow2, its key also in $T/old.key, rekeyed and stopped dead after STEP (exit 99).
stopped_dead() {
	local fmt=$1 step=$2
	shift 2
	image "$@"
	img=$T/out/disk.$fmt
	if [ "$fmt" = qcow2 ]; then
		qemu-img convert -f raw -O qcow2 "$T/out/disk.img" "$img"
		mv "$T/out/disk.img.key" "$img.key"
		rm "$T/out/disk.img"
	fi
	cp "$img.key" "$T/old.key"
	CVM_IMAGE_FAULT=$step run cvm -q rekey "$img" --key-file "$img.key"
	[ "$status" -eq 99 ]
}

@test "rekey --resume: stopped dead after any step (raw and qcow2), it finishes or undoes the rekey: one key in slot 0, the recovery slot, nothing else" {
	local step fmt img said
	for fmt in img qcow2; do
		for step in key-saved backup slot-added rootfs-key initramfs files old-slot-killed key-renamed; do
			stopped_dead "$fmt" "$step"
			run --separate-stderr cvm rekey "$img" --resume
			echo "$fmt after $step: $stderr"
			[ "$status" -eq 0 ]
			case $step in
			key-saved | backup) said="had not changed it" ;;
			slot-added | rootfs-key | initramfs | files) said="resuming the interrupted rekey" ;;
			old-slot-killed) said="the interrupted rekey is finished" ;;
			key-renamed) said="was finished but for removing the header backup" ;;
			esac
			[[ "$stderr" == *"$said"* ]]
			resumed_ok "$img" "$img.key"
			# Rolled forward or finished: the old key opens nothing any more.
			case $step in
			key-saved | backup) cmp -s "$T/old.key" "$img.key" ;;
			*) run ! opens_with "$T/hdr" "$T/old.key" ;;
			esac
			run ! grep -q cvm-image-export /proc/self/mountinfo
			rm -f "$T"/out/* "$T"/out/.cvm* 2>/dev/null || true
		done
	done
}

@test "rekey: a qcow2 image where FUSE is missing is refused, exit 3, unchanged" {
	image
	qemu-img convert -f raw -O qcow2 "$T/out/disk.img" "$T/out/disk.qcow2"
	cp "$T/out/disk.img.key" "$T/out/disk.qcow2.key"
	local sum
	sum=$(sha256sum < "$T/out/disk.qcow2")
	CVM_IMAGE_FAULT=no-fuse run --separate-stderr cvm rekey "$T/out/disk.qcow2" --key-file "$T/out/disk.qcow2.key"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"'$T/out/disk.qcow2' cannot be edited in place: qemu-storage-daemon cannot export it through FUSE (CVM_IMAGE_FAULT=no-fuse): nothing changed"* ]]
	[ "$(sha256sum < "$T/out/disk.qcow2")" = "$sum" ]
	[ ! -e "$T/out/disk.qcow2.key.new" ]
	assert_no_leftovers "$T/out"
}

@test "rekey: a ^C between the steps stops it where nothing changed yet, and only there" {
	local sum
	image
	cp "$T/out/disk.img.key" "$T/old.key"
	sum=$(sha256sum < "$T/out/disk.img")
	for step in key-saved backup; do
		CVM_IMAGE_FAULT=signal-after-$step run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
		echo "$stderr"
		[ "$status" -eq 1 ]
		[[ "$stderr" == *"interrupted after step $step"* ]]
		[[ "$stderr" == *"nothing in '$T/out/disk.img' changed; it opens with the old key, as before"* ]]
		[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
		[ ! -e "$T/out/disk.img.key.new" ]
		[ ! -e "$T/out/disk.img.luks-header-backup" ]
		cmp "$T/old.key" "$T/out/disk.img.key"
	done
	# From the first header write on, it runs to the end.
	CVM_IMAGE_FAULT=signal-after-slot-added run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$(slots_enabled "$T/out/disk.img")" = "0 1" ]
	run ! opens_with "$T/hdr" "$T/old.key"
	opens_with "$T/hdr" "$T/out/disk.img.key"
}

@test "rekey --resume: an initramfs the guest's tools made (changed in pieces), stopped dead around its write, raw and qcow2" {
	local step fmt img
	for fmt in img qcow2; do
		for step in slot-added rootfs-key initramfs files; do
			stopped_dead "$fmt" "$step" initramfs-tools gzip no-key-archive
			run --separate-stderr cvm --debug rekey "$img" --resume
			echo "$fmt after $step: $stderr" | grep -v '^cvm-image: debug' || true
			[ "$status" -eq 0 ]
			[[ "$stderr" == *"resuming the interrupted rekey"* ]]
			# Before the initramfs step the copies are changed now; after it they hold
			# the new key already and are left as they are.
			case $step in
			slot-added | rootfs-key) [[ "$stderr" == *"1 key copy replaced in pieces"* ]] ;;
			*) run ! grep -q "replaced in pieces" <<<"$stderr" ;;
			esac
			resumed_ok "$img" "$img.key"
			run ! opens_with "$T/hdr" "$T/old.key"
			rm -f "$T"/out/* "$T"/out/.cvm* 2>/dev/null || true
		done
	done
}

@test "rekey --resume: e2fsck clean in the appliance after a resume from half-written key copies" {
	requires guestfs
	image
	CVM_IMAGE_FAULT=rootfs-key run cvm -q rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 99 ]
	cvm -q rekey "$T/out/disk.img" --resume
	run "$CVM_SRCDIR/tests/lib/guestfs-check" "$T/out/disk.img" raw "$T/out/disk.img.key" "$T/root.tar"
	[[ "$output" == *e2fsck-exit=0* ]] || { echo "$output"; false; }
}

@test "rekey --resume: what it refuses: usage, neither key opening, a tree holding a third key" {
	image
	run --separate-stderr cvm rekey "$T/out/disk.img" --resume --reencrypt -o "$T/x.img"
	[ "$status" -eq 2 ]
	run --separate-stderr cvm rekey "$T/out/disk.img" --resume --recovery-passphrase-file "$T/recovery"
	[ "$status" -eq 2 ]
	# A plain rekey with KEY.new there points to --resume.
	printf 'leftover' > "$T/out/disk.img.key.new"
	run --separate-stderr cvm rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"'cvm-image rekey $T/out/disk.img --resume' finishes or undoes it"* ]]
	# Neither KEY nor KEY.new opens it: nothing changes, both stay.
	local sum
	sum=$(sha256sum < "$T/out/disk.img")
	printf 'not the key either' > "$T/other.key"
	run --separate-stderr cvm rekey "$T/out/disk.img" --resume --key-file "$T/other.key"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"neither the key in '$T/other.key' nor the one in '$T/out/disk.img.key.new' opens"* ]]
	[ "$(sha256sum < "$T/out/disk.img")" = "$sum" ]
	[ -f "$T/out/disk.img.key.new" ]
}

@test "rekey as an ordinary user: a raw and a qcow2 image root made, given to the user, rekeyed in place; the new key file its own, 0600; the old key opens nothing" {
	ensure_test_user
	image
	qemu-img convert -O qcow2 "$T/out/disk.img" "$T/out/disk.qcow2"
	cp "$T/out/disk.img.key" "$T/out/disk.qcow2.key"
	cp "$T/out/disk.img.key" "$T/old.key"
	give_user "$T/out"
	local img
	for img in "$T/out/disk.img" "$T/out/disk.qcow2"; do
		run --separate-stderr as_user "$CVM_IMAGE" rekey "$img" --key-file "$img.key"
		echo "$stderr"
		[ "$status" -eq 0 ]
		[ "$(stat -c '%U %a' "$img.key")" = "$TEST_USER 600" ]
		run ! cmp -s "$img.key" "$T/old.key"
		run --separate-stderr as_user "$CVM_IMAGE" inspect "$img" --key-file "$img.key"
		echo "$stderr"
		[ "$status" -eq 0 ]
	done
	# The raw image's header: the new key opens it, the old one nothing.
	header "$T/out/disk.img"
	opens_with "$T/hdr" "$T/out/disk.img.key"
	run ! opens_with "$T/hdr" "$T/old.key"
	# An image the user may not write is refused before anything changes.
	chown root: "$T/out/disk.img"
	run --separate-stderr as_user "$CVM_IMAGE" rekey "$T/out/disk.img" --key-file "$T/out/disk.img.key"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"'$T/out/disk.img'"*"Permission denied"* ]]
	[ -z "$(ls -A "$TMPDIR")" ]
}
