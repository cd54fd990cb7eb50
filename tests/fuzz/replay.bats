#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every fuzz target's regression inputs (tests/fuzz/regressions/TARGET/*.b64: what the fuzzers
# found, base64 so that no binary is kept; and the inputs that crashed it before, made here)
# and seeds, replayed with the ordinary compiler: make check's half of the fuzzing (smoke.bats
# runs the fuzzers themselves).

load ../lib/common

setup() {
	requires root busybox
	common_setup
	R=$(dirname "$CVM_IMAGE")/tests/fuzz
}

teardown() {
	common_teardown
}

# replay TARGET DIR...: every input through the target's replay program; none may crash.
replay() {
	local t=$1
	shift
	run "$R/replay-$t" "$@"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^replayed ' <<<"$output")" -ge 1 ]
}

@test "fuzz replay: seeds made from a built image, through every target" {
	"$CVM_SRCDIR/tests/fuzz/make-seeds" "$CVM_IMAGE" "$CVM_SRCDIR" "$T/seeds"
	local t
	for t in gpt luks-header initramfs gzip zstd envfile grub-cfg qmp ext4 sev-table; do
		replay "$t" "$T/seeds/$t"
		if [ -d "$CVM_SRCDIR/tests/fuzz/regressions/$t" ]; then
			mkdir -p "$T/regressions/$t"
			for f in "$CVM_SRCDIR/tests/fuzz/regressions/$t"/*.b64; do
				base64 -d < "$f" > "$T/regressions/$t/$(basename "$f" .b64)"
			done
			replay "$t" "$T/regressions/$t"
		fi
	done
}

@test "fuzz replay: the inputs that crashed cvm-image once" {
	# ext4: s_first_data_block 100 (libext2fs 1.47.0's heap overflow in ext2fs_read_bitmaps).
	mkdir -p "$T/small/etc"
	echo "cr_root UUID=x none luks" > "$T/small/etc/crypttab"
	mke2fs -q -F -t ext4 -O ^metadata_csum -d "$T/small" "$T/first-data-block.ext4" 1M
	python3 -c 'import sys, struct; f = open(sys.argv[1], "r+b"); f.seek(1044); f.write(struct.pack("<I", 100))' "$T/first-data-block.ext4"
	replay ext4 "$T/first-data-block.ext4"
	# GPT: 8388608 entries, the header's CRC mended (libblkid read 1 GiB).
	python3 - "$T/gpt-entries" <<-'PY'
	import struct, sys, zlib
	h = bytearray(92)
	h[0:8] = b"EFI PART"; h[8:12] = struct.pack("<I", 0x10000); h[12:16] = struct.pack("<I", 92)
	h[24:32] = struct.pack("<Q", 1); h[32:40] = struct.pack("<Q", 8191)
	h[72:80] = struct.pack("<Q", 2); h[80:84] = struct.pack("<I", 8388608); h[84:88] = struct.pack("<I", 128)
	h[16:20] = struct.pack("<I", zlib.crc32(bytes(h)))
	open(sys.argv[1], "wb").write(b"\0" * 510 + b"\x55\xaa" + bytes(h) + b"\0" * 420 + bytes(h) + b"\0" * 420)
	PY
	replay gpt "$T/gpt-entries"
	# QMP: a null state and a null data, then nothing more.
	printf '%s\r\n' '{"QMP": {"version": {}, "capabilities": []}}' '{"return": {}}' \
		'{"return": {"state": null, "policy": -1}}' '{"return": {"data": null}}' > "$T/qmp-null"
	replay qmp "$T/qmp-null"
}
