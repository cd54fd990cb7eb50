#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# cvm-image boot without a bootable image: usage errors, what it says when nothing boots, and
# that the key never reaches qemu's command line or environment, run as an ordinary user (cvm).
# The boots themselves are tests/boot/ (make check-boot).

load ../lib/common

setup() {
	requires qemu-system-x86_64 jq
	[ -r /usr/share/OVMF/OVMF_CODE_4M.fd ] || requires "OVMF (package ovmf)"
	common_setup
	[ "$(id -u)" != 0 ] || ensure_test_user
	printf 'AAAAkeykeykeykeykeykeykeykeykeykeykeykeyZZZZ' > "$T/key"
}

teardown() {
	common_teardown
}

# qemu_of PATTERN: the pid of the qemu whose command line matches PATTERN, once it runs
# (within 10 s); fails if none does.
qemu_of() {
	local i q
	for i in $(seq 50); do
		q=$(pgrep -f "$1" || true)
		if [ -n "$q" ]; then
			echo "$q"
			return 0
		fi
		sleep 0.2
	done
	return 1
}

@test "boot: usage errors: exit 2, said" {
	run --separate-stderr cvm boot
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"missing IMAGE"* ]]
	run --separate-stderr cvm boot "$T/x.img"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--key-file KEY is needed"* ]]
	run --separate-stderr cvm boot "$T/x.img" --key-file "$T/key" --run true
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--run and --then-reboot need --root-password-file"* ]]
	run --separate-stderr cvm boot "$T/x.img" --key-file "$T/key" --timeout 0
	[ "$status" -eq 2 ]
	run --separate-stderr cvm boot "$T/x.img" --key-file "$T/key" --expect maybe
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"invalid --expect 'maybe'"* ]]
	run --separate-stderr cvm boot "$T/x.img" --key-file "$T/nokey"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"'$T/nokey'"* ]]
	run --separate-stderr cvm boot "$T/x.img" --key-file "$T/key"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"cannot open '$T/x.img': No such file or directory"* ]]
}

@test "boot: --prompt-timeout: no grub prompt within S seconds of qemu's start ends the boot then, whatever --timeout says" {
	truncate -s 64M "$T/blank.img"
	local t0=$SECONDS
	run --separate-stderr cvm boot "$T/blank.img" --key-file "$T/key" --timeout 3000 \
		--prompt-timeout 15 --json --log "$T/serial.log"
	echo "$stderr"
	[ "$status" -eq 1 ]
	# Well before --timeout: qemu's start, 15 s, and the teardown.
	[ $(( SECONDS - t0 )) -lt 120 ]
	[ "$(jq -r .error <<<"$output")" = "no grub passphrase prompt within 15 s of the start" ]
	[[ "$stderr" == *"did not boot as expected: error (no grub passphrase prompt within 15 s of the start)"* ]]
	run ! pgrep -f "qemu-system-x86_64.*$T/blank.img"
}

@test "boot: --prompt-timeout out of range: exit 2, the range said" {
	run --separate-stderr cvm boot "$T/blank.img" --key-file "$T/key" --prompt-timeout 0
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"invalid --prompt-timeout '0': expected 1 to 86400 seconds"* ]]
}

@test "boot: --cpus out of range: exit 2, the range said" {
	run --separate-stderr cvm boot "$T/blank.img" --key-file "$T/key" --cpus 0
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"invalid --cpus '0': expected 1 to 64"* ]]
	run --separate-stderr cvm boot "$T/blank.img" --key-file "$T/key" --cpus 2x
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"invalid --cpus '2x': expected 1 to 64"* ]]
}

@test "boot --kvm where /dev/kvm opens but is no KVM: exit 3, why said, no qemu; without --kvm, TCG" {
	requires root bwrap
	truncate -s 64M "$T/blank.img"
	# /dev/kvm that opens (a /dev/null in its place, in a mount namespace of the test's own).
	run --separate-stderr bwrap --dev-bind / / --dev-bind /dev/null /dev/kvm \
		"$CVM_IMAGE" boot "$T/blank.img" --key-file "$T/key" --kvm
	echo "$stderr"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"--kvm: KVM does not work here: /dev/kvm is not KVM: Inappropriate ioctl for device"* ]]
	run ! pgrep -f "qemu-system-x86_64.*$T/blank.img"
	run --separate-stderr bwrap --dev-bind / / --dev-bind /dev/null /dev/kvm \
		"$CVM_IMAGE" -v boot "$T/blank.img" --key-file "$T/key" --prompt-timeout 5
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"boot: qemu with TCG (minutes)"* ]]
}

@test "boot: an image that does not boot: exit 1, what was awaited said; the key in no argv, environment or log" {
	truncate -s 64M "$T/blank.img"
	cvm boot "$T/blank.img" --key-file "$T/key" --timeout 25 --json --log "$T/serial.log" \
		> "$T/out.json" 2> "$T/err" &
	local pid=$! q
	q=$(qemu_of "qemu-system-x86_64.*$T/blank.img")
	run ! grep -aqF "$(cat "$T/key")" "/proc/$q/cmdline" "/proc/$q/environ"
	# snapshot=on, the format given: the image is never written.
	tr '\0' ' ' < "/proc/$q/cmdline" | grep -q "file=$T/blank.img,format=raw,if=virtio,snapshot=on"
	local rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 1 ]
	cat "$T/err"
	[ "$(jq -r .outcome "$T/out.json")" = error ]
	[[ "$(jq -r .error "$T/out.json")" == "timed out after "* ]]
	[ "$(jq -r .passphrase_prompts "$T/out.json")" = 0 ]
	grep -q "'$T/blank.img' did not boot as expected: error (timed out after" "$T/err"
	run ! grep -aqF "$(cat "$T/key")" "$T/serial.log" "$T/out.json" "$T/err"
	# qemu is gone, and so is the temporary firmware variable store.
	run ! pgrep -f "qemu-system-x86_64.*$T/blank.img"
	[ -z "$(ls -A "$TMPDIR")" ]
}

@test "boot --then-reboot --cpus 1: qemu runs with -no-reboot (a reset is a new launch) and -smp 1 on a qcow2 over the image that keeps the guest's writes; the image never written, the qcow2 removed" {
	truncate -s 64M "$T/blank.img"
	printf 'a root password\n' > "$T/pw"
	local sum pid q overlay
	sum=$(sha256sum < "$T/blank.img")
	cvm boot "$T/blank.img" --key-file "$T/key" --root-password-file "$T/pw" --then-reboot true \
		--prompt-timeout 15 --cpus 1 --json > "$T/out.json" 2> "$T/err" &
	pid=$!
	q=$(qemu_of "qemu-system-x86_64.*$TMPDIR/cvm-image-boot")
	tr '\0' '\n' < "/proc/$q/cmdline" > "$T/cmdline"
	cat "$T/cmdline"
	grep -qx -- -no-reboot "$T/cmdline"
	# --cpus 1: one virtual CPU (-smp 1, not the default 2). No VGA device.
	grep -A1 -x -- -smp "$T/cmdline" > "$T/smp"
	[ "$(sed -n 2p "$T/smp")" = 1 ]
	grep -A1 -x -- -vga "$T/cmdline" > "$T/vga"
	[ "$(sed -n 2p "$T/vga")" = none ]
	overlay=$(sed -n 's/^file=\(.*overlay\.qcow2\),format=qcow2,if=virtio$/\1/p' "$T/cmdline")
	[ -n "$overlay" ]
	[ "$(qemu-img info -U --output json "$overlay" | jq -r '."backing-filename"')" = "$T/blank.img" ]
	local rc=0
	wait "$pid" || rc=$?
	cat "$T/err"
	[ "$rc" -eq 1 ]
	[ "$(jq -r .error "$T/out.json")" = "no grub passphrase prompt within 15 s of the start" ]
	[ "$(sha256sum < "$T/blank.img")" = "$sum" ]
	[ -z "$(ls -A "$TMPDIR")" ]
}

@test "boot as an ordinary user: qemu and OVMF run without privilege; a blank image: exit 1, what was awaited said, nothing left" {
	requires root
	ensure_test_user
	truncate -s 64M "$T/blank.img"
	give_user "$T/blank.img" "$T/key" "$T"
	run --separate-stderr as_user "$CVM_IMAGE" boot "$T/blank.img" --key-file "$T/key" --prompt-timeout 15 --json
	echo "$stderr"
	[ "$status" -eq 1 ]
	[ "$(jq -r .error <<<"$output")" = "no grub passphrase prompt within 15 s of the start" ]
	[[ "$stderr" == *"did not boot as expected: error (no grub passphrase prompt within 15 s of the start)"* ]]
	run ! pgrep -f "qemu-system-x86_64.*$T/blank.img"
	[ -z "$(ls -A "$TMPDIR")" ]
}
