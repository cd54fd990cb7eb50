#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# cvm-image build: the image it makes, checked with independent tools (sfdisk, blkid,
# cryptsetup, fsck.fat, qemu-img). The decryption check is in build-guestfs.bats.

load ../lib/common

setup() {
	requires root sfdisk blkid cryptsetup fsck.fat jq setfattr setfacl
	common_setup
	TAR=$(fixture_tar)
}

teardown() {
	common_teardown
}

@test "build: raw image has a GPT with the ESP and the Linux root partition" {
	run "$CVM_IMAGE" build --distro none "$TAR" -o "$T/out/disk.img"
	[ "$status" -eq 0 ]
	run sfdisk --json "$T/out/disk.img"
	[ "$status" -eq 0 ]
	[ "$(jq -r .partitiontable.label <<<"$output")" = gpt ]
	[ "$(jq '.partitiontable.partitions | length' <<<"$output")" = 2 ]
	[ "$(jq -r '.partitiontable.partitions[0].type' <<<"$output")" = C12A7328-F81F-11D2-BA4B-00A0C93EC93B ]
	[ "$(jq -r '.partitiontable.partitions[1].type' <<<"$output")" = 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 ]
	[ "$(jq '.partitiontable.partitions[0].start' <<<"$output")" = 2048 ]
	[ "$(jq '.partitiontable.partitions[0].size' <<<"$output")" = $((99 * 2048)) ]
	[ "$(jq '.partitiontable.partitions[1].start' <<<"$output")" = $((100 * 2048)) ]
	assert_no_leftovers "$T/out"
}

@test "build: blkid sees FAT32 on p1 and LUKS version 1 on p2, with the UUIDs --json reports" {
	"$CVM_IMAGE" build --distro none --json "$TAR" -o "$T/out/disk.img" > "$T/summary.json"
	local luks_uuid esp_id
	luks_uuid=$(jq -r .luks.uuid "$T/summary.json")
	esp_id=$(jq -r .esp.volume_id "$T/summary.json")
	run blkid -p -O $((1024 * 1024)) -o export "$T/out/disk.img"
	[[ "$output" == *TYPE=vfat* ]]
	[[ "$output" == *VERSION=FAT32* ]]
	[[ "$output" == *"UUID=$esp_id"* ]]
	run blkid -p -O $((100 * 1024 * 1024)) -o export "$T/out/disk.img"
	[[ "$output" == *TYPE=crypto_LUKS* ]]
	[[ "$output" == *VERSION=1* ]]
	[[ "$output" == *"UUID=$luks_uuid"* ]]
	run sfdisk --json "$T/out/disk.img"
	[ "$(jq -r .partitiontable.id <<<"$output")" = "$(jq -r .partition_table.uuid "$T/summary.json" | tr a-z A-Z)" ]
	[ "$(jq -r .partitiontable.partitions[1].uuid <<<"$output")" = "$(jq -r '.partition_table.partitions[1].uuid' "$T/summary.json" | tr a-z A-Z)" ]
}

@test "build: LUKS1 aes-xts-plain64, 512-bit key, sha256, slot 0 at 1000 iterations, no other slot" {
	"$CVM_IMAGE" build --distro none "$TAR" -o "$T/out/disk.img"
	extract_region "$T/out/disk.img" 100 2 "$T/hdr"
	run cryptsetup luksDump "$T/hdr"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Version:       	1"* ]]
	grep -q '^Cipher name:[[:space:]]*aes$' <<<"$output"
	grep -q '^Cipher mode:[[:space:]]*xts-plain64$' <<<"$output"
	grep -q '^Hash spec:[[:space:]]*sha256$' <<<"$output"
	grep -q '^MK bits:[[:space:]]*512$' <<<"$output"
	grep -q '^Payload offset:[[:space:]]*4096$' <<<"$output"
	[ "$(grep -c ': ENABLED' <<<"$output")" = 1 ]
	grep -A1 '^Key Slot 0: ENABLED' <<<"$output" | grep -q 'Iterations:[[:space:]]*1000$'
	# The key file opens slot 0; something else does not.
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$T/out/disk.img.key" "$T/hdr"
	printf 'wrong' > "$T/wrong"
	run cryptsetup open --test-passphrase --key-file "$T/wrong" "$T/hdr"
	[ "$status" -ne 0 ]
}

@test "build: the key file is 0600, 44 base64 characters, no newline" {
	"$CVM_IMAGE" build --distro none "$TAR" -o "$T/out/disk.img"
	[ "$(stat -c %a "$T/out/disk.img.key")" = 600 ]
	[ "$(stat -c %s "$T/out/disk.img.key")" = 44 ]
	grep -Eq '^[A-Za-z0-9+/]{44}$' "$T/out/disk.img.key"
	[ "$(tail -c1 "$T/out/disk.img.key" | od -An -c | tr -d ' ')" != '\n' ]
	[ "$(base64 -d "$T/out/disk.img.key" | wc -c)" = 33 ]
}

@test "build: --recovery-passphrase-file adds slot 1 with benchmarked iterations" {
	printf 'correct horse battery staple\n' > "$T/recovery"
	"$CVM_IMAGE" build --distro none --recovery-passphrase-file "$T/recovery" --recovery-iter-time 200 \
		--json "$TAR" -o "$T/out/disk.img" > "$T/summary.json"
	extract_region "$T/out/disk.img" 100 2 "$T/hdr"
	run cryptsetup luksDump "$T/hdr"
	[ "$(grep -c ': ENABLED' <<<"$output")" = 2 ]
	local iters
	iters=$(grep -A1 '^Key Slot 1: ENABLED' <<<"$output" | sed -n 's/.*Iterations:[[:space:]]*//p')
	[ "$iters" -gt 1000 ]
	[ "$(jq '.luks.key_slots[1].iterations' "$T/summary.json")" = "$iters" ]
	# The passphrase as typed (without the file's newline) opens slot 1.
	printf 'correct horse battery staple' | cryptsetup open --test-passphrase --key-slot 1 --key-file - "$T/hdr"
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$T/out/disk.img.key" "$T/hdr"
}

@test "build: the ESP is a clean FAT32 with \\EFI\\BOOT" {
	"$CVM_IMAGE" build --distro none "$TAR" -o "$T/out/disk.img"
	extract_region "$T/out/disk.img" 1 99 "$T/esp"
	run fsck.fat -n "$T/esp"
	[ "$status" -eq 0 ]
	MTOOLS_SKIP_CHECK=1 mdir -i "$T/esp" ::/EFI/BOOT
	run file -s "$T/esp"
	[[ "$output" == *"FAT (32 bit)"* ]]
}

@test "build: the raw image stays sparse" {
	"$CVM_IMAGE" build --distro none --json "$TAR" -o "$T/out/disk.img" > "$T/summary.json"
	local size alloc fsalloc
	size=$(stat -c %s "$T/out/disk.img")
	alloc=$(( $(stat -c %b "$T/out/disk.img") * 512 ))
	fsalloc=$(jq .root_filesystem.allocated "$T/summary.json")
	[ "$size" = "$(jq .size "$T/summary.json")" ]
	# Allocated: the filesystem's allocated blocks, the LUKS header and the FAT metadata.
	[ "$alloc" -lt $(( fsalloc + 2 * 1024 * 1024 + 4 * 1024 * 1024 )) ]
	[ "$alloc" -lt $(( size / 4 )) ]
}

@test "build: qcow2 by the output's extension, raw when --format says so" {
	"$CVM_IMAGE" build --distro none "$TAR" -o "$T/out/disk.qcow2"
	[ "$(qemu-img info --output=json "$T/out/disk.qcow2" | jq -r .format)" = qcow2 ]
	[ -f "$T/out/disk.qcow2.key" ]
	"$CVM_IMAGE" build --distro none --format raw "$TAR" -o "$T/out/other.qcow2"
	[ "$(qemu-img info --output=json "$T/out/other.qcow2" | jq -r .format)" = raw ]
	"$CVM_IMAGE" build --distro none --format qcow2 "$TAR" -o "$T/out/third.img"
	[ "$(qemu-img info --output=json "$T/out/third.img" | jq -r .format)" = qcow2 ]
	assert_no_leftovers "$T/out"
}

@test "build: gzip, xz and zstd tarballs" {
	local c
	for c in gzip xz zstd; do
		make_tar "$BATS_FILE_TMPDIR/tree" "$T/rootfs.tar.$c" "$c"
		"$CVM_IMAGE" -q build --distro none "$T/rootfs.tar.$c" -o "$T/out/$c.img"
		blkid -p -O $((100 * 1024 * 1024)) "$T/out/$c.img" | grep -q crypto_LUKS
	done
}

@test "build: --size is honoured and rounded up to MiB" {
	"$CVM_IMAGE" build --distro none --size 300M "$TAR" -o "$T/out/a.img"
	[ "$(stat -c %s "$T/out/a.img")" = $((300 * 1024 * 1024)) ]
	"$CVM_IMAGE" build --distro none --size 314572801 "$TAR" -o "$T/out/b.img"
	[ "$(stat -c %s "$T/out/b.img")" = $((301 * 1024 * 1024)) ]
}

@test "build: the default size leaves room to grow" {
	"$CVM_IMAGE" build --distro none --json "$TAR" -o "$T/out/a.img" > "$T/summary.json"
	# At least 1 GiB beyond what the files need.
	[ "$(jq .root_filesystem.size "$T/summary.json")" -gt $((1024 * 1024 * 1024)) ]
}

@test "build: --key-out, --mapper-name, --workdir and --keep-workdir" {
	mkdir -p "$T/keys" "$T/work"
	"$CVM_IMAGE" build --distro none --json --key-out "$T/keys/k" --mapper-name cr_test --workdir "$T/work" \
		--keep-workdir "$TAR" -o "$T/out/a.img" > "$T/summary.json"
	[ "$(stat -c %a "$T/keys/k")" = 600 ]
	[ ! -e "$T/out/a.img.key" ]
	[ "$(jq -r .key_file "$T/summary.json")" = "$T/keys/k" ]
	[ "$(jq -r .mapper_name "$T/summary.json")" = cr_test ]
	# The work directory was made in --workdir and kept, with the unpacked tree in it.
	[ "$(ls "$T/work" | wc -l)" = 1 ]
	[ -f "$T"/work/cvm-image.*/root/etc/hello ]
	assert_no_leftovers "$T/out"
}

@test "build: --json is one JSON object with stage times and nothing secret" {
	printf 'recovery secret\n' > "$T/recovery"
	run --separate-stderr "$CVM_IMAGE" --debug build --distro none --json --recovery-passphrase-file "$T/recovery" \
		--recovery-iter-time 100 "$TAR" -o "$T/out/a.img"
	[ "$status" -eq 0 ]
	[ "$(jq -r .format <<<"$output")" = raw ]
	[ "$(jq -r '.stages | keys_unsorted | join(",")' <<<"$output")" = prepare,unpack,configure,initramfs,bootloader,finalize,key-archive,esp,mkfs,luks,encrypt,assemble,output ]
	# build --help lists the stages the build runs, in order.
	[ "$("$CVM_IMAGE" build --help | sed -n '/^Stages:/,/\.$/p' | sed 's/Stages://' | grep -oE '[a-z-]+' | paste -sd,)" = "$(jq -r '.stages | keys_unsorted | join(",")' <<<"$output")" ]
	[ "$(jq '.luks.key_slots | map(.slot) | join(",")' <<<"$output")" = '"0,1"' ]
	jq -e '.root_filesystem.uuid and .esp.volume_id and .partition_table.uuid' <<<"$output"
	# Neither the key nor the recovery passphrase on stdout or in the debug log.
	local key
	key=$(cat "$T/out/a.img.key")
	[[ "$output" != *"$key"* ]]
	[[ "$stderr" != *"$key"* ]]
	[[ "$output$stderr" != *"recovery secret"* ]]
}

@test "build: progress lines name each stage with the elapsed time; -q is quiet" {
	run --separate-stderr "$CVM_IMAGE" build --distro none "$TAR" -o "$T/out/a.img"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	local s
	for s in prepare unpack mkfs luks encrypt esp assemble output; do
		grep -Eq "^cvm-image: \[ *[0-9]+\.[0-9]s\] $s: " <<<"$stderr"
	done
	run --separate-stderr "$CVM_IMAGE" -q build --distro none "$TAR" -o "$T/out/b.img"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
}

@test "build: --force replaces an existing image and key file" {
	"$CVM_IMAGE" build --distro none "$TAR" -o "$T/out/a.img"
	local old
	old=$(cat "$T/out/a.img.key")
	"$CVM_IMAGE" build --distro none --force "$TAR" -o "$T/out/a.img"
	[ "$(cat "$T/out/a.img.key")" != "$old" ]
	extract_region "$T/out/a.img" 100 2 "$T/hdr"
	cryptsetup open --test-passphrase --key-file "$T/out/a.img.key" "$T/hdr"
}
