#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# The appliance route (--sandbox vm): cvm-image build with no privilege at all, as an ordinary
# user and as root in a default container (no CAP_SYS_ADMIN, no namespaces). The tarball is
# unpacked and the hooks run inside the libguestfs appliance.

load ../lib/common

setup() {
	requires root guestfs setpriv
	common_setup
	ensure_test_user
	NO_NS=$(dirname "$CVM_IMAGE")/tests/lib/no-namespaces
}

teardown() {
	common_teardown
}

# synthetic_tar: $T/t.tar, a synthetic initramfs-tools rootfs (tests/lib/boot-tree), readable
# by the test user.
synthetic_tar() {
	"$CVM_SRCDIR/tests/lib/boot-tree" "$T/tree" initramfs-tools >/dev/null
	tar --numeric-owner -C "$T/tree" -cf "$T/t.tar" .
	rm -rf --one-file-system "$T/tree"
}

# site_hook PHASE NAME BODY: an executable hook $T/site/hooks/PHASE/NAME running BODY.
site_hook() {
	mkdir -p "$T/site/hooks/$1"
	printf '#!/bin/sh\n%s\n' "$3" > "$T/site/hooks/$1/$2"
	chmod +x "$T/site/hooks/$1/$2"
}

@test "vm: an ordinary user builds a bootable image through the appliance; inspect passes" {
	synthetic_tar
	give_user "$T"
	run --separate-stderr as_user "$CVM_IMAGE" build --json "$T/t.tar" -o "$T/out/a.qcow2"
	echo "$stderr"
	[ "$status" -eq 0 ]
	# The choice and its reason, in the progress and in --json.
	[[ "$stderr" == *"sandbox: vm, the libguestfs appliance (not root: the bubblewrap route must run as root"* ]]
	[ "$(jq -r .sandbox <<< "$output")" = vm ]
	[[ "$(jq -r .sandbox_reason <<< "$output")" == "not root: "* ]]
	[ "$(jq -r .hooks_run <<< "$output")" -gt 0 ]
	[ "$(stat -c %U "$T/out/a.qcow2")" = "$TEST_USER" ]
	[ "$(stat -c %a "$T/out/a.qcow2.key")" = 600 ]
	run as_user "$CVM_IMAGE" inspect --key-file "$T/out/a.qcow2.key" "$T/out/a.qcow2"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ok      key-file "*"mode 0600, holds the key"* ]]
	[[ "$output" == *"ok      grub-boots "* ]]
	[[ "$output" == *"ok      esp-no-key "* ]]
	# No qemu, no work directory, no libguestfs temporary directory left.
	run ! pgrep -f "qemu-system.*$T/"
	assert_no_leftovers "$T/out"
}

@test "vm: root in a default container (no CAP_SYS_ADMIN, namespaces refused) takes the appliance" {
	synthetic_tar
	run --separate-stderr setpriv --bounding-set -sys_admin "$NO_NS" "$CVM_IMAGE" build --json "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"sandbox: vm, the libguestfs appliance (cannot create the sandbox for the distro's tools (bubblewrap needs CAP_SYS_ADMIN"* ]]
	[ "$(jq -r .sandbox <<< "$output")" = vm ]
	run "$CVM_IMAGE" inspect --key-file "$T/out/a.img.key" "$T/out/a.img"
	echo "$output"
	[ "$status" -eq 0 ]
	assert_no_leftovers "$T/out"
}

@test "vm: the filter of a default container refuses what bubblewrap needs" {
	# The wrapper really is what the test above claims: bwrap and unshare fail under it.
	run setpriv --bounding-set -sys_admin "$NO_NS" unshare -r true
	[ "$status" -ne 0 ]
	run setpriv --bounding-set -sys_admin "$NO_NS" bwrap --ro-bind / / true
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run setpriv --bounding-set -sys_admin "$NO_NS" true
	[ "$status" -eq 0 ]
}

@test "vm: hooks in the appliance get the documented environment; status, output and warnings come back" {
	synthetic_tar
	site_hook configure 95-env 'env > /var/log/cvm-env; echo "said by the hook"; echo "a warning from the appliance" >> "$CVM_STATE/warnings"'
	site_hook configure 96-not-mine 'exit 77'
	give_user "$T"
	run --separate-stderr as_user "$CVM_IMAGE" -v build --sandbox vm --hooks-dir "$T/site" "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"warning: hook configure/95-env: a warning from the appliance"* ]]
	[[ "$stderr" == *"hook configure/96-not-mine: not applicable"* ]]
	# A failing hook: its status and its last lines in the error; nothing left.
	site_hook initramfs 95-fail 'echo "the tool broke"; exit 3'
	give_user "$T"
	run --separate-stderr as_user "$CVM_IMAGE" build --sandbox vm --hooks-dir "$T/site" "$T/t.tar" -o "$T/out/b.img"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"hook initramfs/95-fail ('$T/site/hooks/initramfs/95-fail') failed with exit status 3:"* ]]
	[[ "$stderr" == *"the tool broke"* ]]
	[ ! -e "$T/out/b.img" ]
	run ! pgrep -f "qemu-system.*$T/"
	assert_no_leftovers "$T/out"
}

@test "vm: the hooks' environment is only CVM_* and the basics, nothing of the host" {
	synthetic_tar
	site_hook configure 95-env 'env | sort > /etc/cvm-env; ls / > /etc/cvm-root; cat /proc/1/cmdline | tr "\0" " " > /etc/cvm-pid1'
	give_user "$T"
	run --separate-stderr as_user env SECRET_OF_THE_HOST=leak "$CVM_IMAGE" build --sandbox vm --hooks-dir "$T/site" "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 0 ]
	run "$CVM_SRCDIR/tests/lib/guestfs-check" "$T/out/a.img" raw "$T/out/a.img.key" "$T/root.tar"
	[ "$status" -eq 0 ]
	mkdir "$T/got"
	tar -xf "$T/root.tar" -C "$T/got" ./etc/cvm-env ./etc/cvm-root ./etc/cvm-pid1
	cat "$T/got/etc/cvm-env"
	grep -q '^CVM_PHASE=configure$' "$T/got/etc/cvm-env"
	grep -q '^CVM_LUKS_UUID=' "$T/got/etc/cvm-env"
	run ! grep -q 'SECRET_OF_THE_HOST\|LIBGUESTFS\|^TMPDIR=/tmp/bats\|HOME=/nonexistent' "$T/got/etc/cvm-env"
	# PID 1 is the appliance's init, not anything of the host's.
	run ! grep -q 'systemd\|bats' "$T/got/etc/cvm-pid1"
}

@test "vm: no qemu, no appliance, no kernel for it: exit 3 in prepare, naming what is missing" {
	synthetic_tar
	give_user "$T"
	run --separate-stderr as_user env LIBGUESTFS_HV=/nonexistent/qemu-system-x86_64 "$CVM_IMAGE" build "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"--sandbox vm: qemu ('/nonexistent/qemu-system-x86_64') is not installed (Debian package 'qemu-system-x86')"* ]]
	# auto says why it did not take bubblewrap either.
	[[ "$stderr" == *"and bubblewrap cannot be used either: not root"* ]]
	[[ "$stderr" != *"] unpack:"* ]]
	run --separate-stderr as_user env LIBGUESTFS_PATH=/nonexistent "$CVM_IMAGE" build --sandbox vm "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"--sandbox vm: no libguestfs appliance in '/nonexistent'"* ]]
	run --separate-stderr as_user env SUPERMIN_KERNEL=/nonexistent/vmlinuz "$CVM_IMAGE" build --sandbox vm "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"--sandbox vm: no kernel for the appliance"* ]]
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

@test "vm: killed while the appliance runs: no qemu left; the next build removes what it left" {
	synthetic_tar
	give_user "$T"
	as_user env CVM_IMAGE_FAULT=kill-in-configure "$CVM_IMAGE" -q build --sandbox vm "$T/t.tar" -o "$T/out/a.img" || true
	# libguestfs's recovery process kills qemu within a second or two of its parent's death.
	local i
	for i in $(seq 50); do
		pgrep -f "qemu-system.*$T/" >/dev/null || break
		sleep 0.2
	done
	run ! pgrep -f "qemu-system.*$T/"
	ls -A "$T/tmp" | grep -q '^cvm-image\.'
	run --separate-stderr as_user "$CVM_IMAGE" build --distro none "$T/t.tar" -o "$T/out/b.img"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"removed"* ]]
	rm -f "$T/out/b.img" "$T/out/b.img.key"
	assert_no_leftovers "$T/out"
}
