#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# The libFuzzer targets of tests/fuzz, built with clang (ASan + UBSan) and run for
# FUZZ_SECONDS each (make check-fuzz: 10; make fuzz: 600) from seeds made now from a small
# image: a crash, a leak or a timeout fails the test, its input kept in
# BUILDDIR/fuzz/artifacts (add it, base64, to tests/fuzz/regressions/TARGET/ as a regression
# case: replay.bats replays those).
# Each test prints the run's executions and coverage.

load ../lib/common

setup_file() {
	requires clang
	export FUZZ_DIR=$(dirname "$CVM_IMAGE")/fuzz
	mkdir -p "$FUZZ_DIR/artifacts"
	"$CVM_SRCDIR/tests/fuzz/build-fuzzers" "$CVM_SRCDIR" "$(dirname "$CVM_IMAGE")" "$FUZZ_DIR" >&3 2>&1
	rm -rf --one-file-system "${FUZZ_DIR:?}/seeds"
	"$CVM_SRCDIR/tests/fuzz/make-seeds" "$CVM_IMAGE" "$CVM_SRCDIR" "$FUZZ_DIR/seeds"
}

setup() {
	requires clang root busybox
	common_setup
}

teardown() {
	common_teardown
}

# fuzz TARGET: run it; the corpus it grows is kept in BUILDDIR/fuzz/corpus/TARGET.
fuzz() {
	local t=$1 corpus=$FUZZ_DIR/corpus/$1
	mkdir -p "$corpus"
	run "$FUZZ_DIR/fuzz-$t" -max_total_time="${FUZZ_SECONDS:-20}" -close_fd_mask=2 -timeout=10 \
		-rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 \
		-artifact_prefix="$FUZZ_DIR/artifacts/$t-" "$corpus" "$FUZZ_DIR/seeds/$t"
	echo "$output" | tail -n 30
	# The last status line (executions, coverage: cov, ft, corp) and the final stats.
	echo "# fuzz-$t: $(grep -E '^#[0-9]+.*cov: ' <<<"$output" | tail -n1 | tr -s '\t ' ' ')" \
		"$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' <<<"$output" | tr '\n' ' ')" >&3
	[ "$status" -eq 0 ]
	run ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' <<<"$output"
}

@test "fuzz: GPT headers and libblkid's probe" { fuzz gpt; }
@test "fuzz: the LUKS1 header fields" { fuzz luks-header; }
@test "fuzz: initramfs newc chains and the key archive finder" { fuzz initramfs; }
@test "fuzz: gzip members, whole and streamed" { fuzz gzip; }
@test "fuzz: zstd frames and the chains they end" { fuzz zstd; }
@test "fuzz: os-release and distro.conf" { fuzz envfile; }
@test "fuzz: grub.cfg's lock scan" { fuzz grub-cfg; }
@test "fuzz: QMP answers" { fuzz qmp; }
@test "fuzz: SEV secret tables" { fuzz sev-table; }
@test "fuzz: the ext4 open path through the XTS I/O manager" { fuzz ext4; }
