#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# The appliance route (--sandbox vm): cvm-image build with no privilege at all, as an ordinary
# user and as root in a default container (no CAP_SYS_ADMIN, no namespaces). The tarball is
# unpacked and the hooks run inside the libguestfs appliance. (An ordinary user where bubblewrap
# can make a user namespace takes the bubblewrap route by default: build-guestfs.bats, hostile.bats.)

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
	rm -rf --one-file-system "${T:?}/tree"
}

# site_hook PHASE NAME BODY: an executable hook $T/site/hooks/PHASE/NAME running BODY.
site_hook() {
	mkdir -p "$T/site/hooks/$1"
	printf '#!/bin/sh\n%s\n' "$3" > "$T/site/hooks/$1/$2"
	chmod +x "$T/site/hooks/$1/$2"
}

@test "vm: an ordinary user builds a bootable image through the appliance; hooks get their environment; inspect passes" {
	synthetic_tar
	# The hooks' environment comes back as warnings: only CVM_* and the basics, nothing of
	# the host, and the appliance's init as PID 1.
	site_hook configure 95-env 'env | sed "s/^/env: /" >> "$CVM_STATE/warnings"; echo "pid1: $(tr "\0" " " < /proc/1/cmdline)" >> "$CVM_STATE/warnings"'
	site_hook configure 96-not-mine 'exit 77'
	give_user "$T"
	# Under a default container's seccomp filter: no user namespace for bubblewrap either.
	run --separate-stderr as_user "$NO_NS" env SECRET_OF_THE_HOST=leak "$CVM_IMAGE" -v build --json --hooks-dir "$T/site" "$T/t.tar" -o "$T/out/a.qcow2"
	echo "$stderr"
	[ "$status" -eq 0 ]
	# The choice and its reason, in the progress and in --json.
	[[ "$stderr" == *"sandbox: vm, the libguestfs appliance, under "*" (bubblewrap cannot make a user namespace here"* ]]
	[ "$(jq -r .sandbox <<< "$output")" = vm ]
	# KVM only where a guest runs with it: without /dev/kvm, TCG.
	if [ ! -e /dev/kvm ]; then
		[ "$(jq -r .sandbox_accel <<< "$output")" = tcg ]
		[[ "$stderr" == *"under TCG: KVM does not work here"* ]]
		[[ "$stderr" == *"KVM: no /dev/kvm"* ]]
	fi
	[[ "$(jq -r .sandbox_reason <<< "$output")" == "bubblewrap cannot make a user namespace here"* ]]
	[ "$(jq -r .sandbox_user_namespace <<< "$output")" = false ]
	[ "$(jq -r .hooks_run <<< "$output")" -gt 0 ]
	[[ "$stderr" == *"warning: hook configure/95-env: env: CVM_PHASE=configure"* ]]
	[[ "$stderr" == *"warning: hook configure/95-env: env: CVM_LUKS_UUID="* ]]
	[[ "$stderr" == *"warning: hook configure/95-env: env: PATH=/usr/local/sbin:"* ]]
	[[ "$stderr" == *"hook configure/96-not-mine: not applicable"* ]]
	jq -r '.warnings[]' <<< "$output" > "$T/env"
	grep -q '^env: CVM_KEY_FILE=/etc/cryptsetup-keys.d/luks-' "$T/env"
	run ! grep -q 'SECRET_OF_THE_HOST\|LIBGUESTFS\|HOME=/nonexistent\|bats' "$T/env"
	grep '^pid1: ' "$T/env"
	run ! grep -q '^pid1: .*\(systemd\|bats\|cvm-image\)' "$T/env"
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

@test "vm: a hook that hangs in the appliance: --hook-timeout stops it; one that fails: its status and last lines; nothing left; a KVM that fails: TCG, said" {
	synthetic_tar
	site_hook configure 95-hang 'sleep 600'
	give_user "$T"
	# (With a /dev/kvm whose guests stop with "KVM internal error", as on many CI runners.)
	# (30 s: the distro's own hooks before it must finish in time under TCG on a loaded machine.)
	CVM_IMAGE_FAULT=kvm-broken run --separate-stderr as_user "$CVM_IMAGE" -v build --sandbox vm --hook-timeout 30 --hooks-dir "$T/site" "$T/t.tar" -o "$T/out/b.img"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"sandbox: vm, the libguestfs appliance, under TCG: KVM does not work here (--sandbox vm)"* ]]
	[[ "$stderr" == *"KVM: the test guest stopped with KVM exit reason 17 (KVM internal error), not HLT (CVM_IMAGE_FAULT=kvm-broken)"* ]]
	[[ "$stderr" == *"error: hook configure/95-hang did not finish within 30 s (--hook-timeout): the appliance was stopped"* ]]
	run ! pgrep -f "qemu-system.*$T/"
	assert_no_leftovers "$T/out"
	rm -rf --one-file-system "${T:?}/site"
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

@test "vm: no qemu, no appliance, no kernel for it: exit 3 in prepare, naming what is missing" {
	synthetic_tar
	give_user "$T"
	run --separate-stderr as_user "$NO_NS" env LIBGUESTFS_HV=/nonexistent/qemu-system-x86_64 "$CVM_IMAGE" build "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"--sandbox vm: qemu ('/nonexistent/qemu-system-x86_64') is not installed (Debian package 'qemu-system-x86')"* ]]
	# auto says why it did not take bubblewrap either.
	[[ "$stderr" == *"and bubblewrap cannot be used either: bubblewrap cannot make a user namespace here"* ]]
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

@test "vm: ^C while a hook runs in the appliance, and SIGKILL: no qemu left; the next build removes what was left" {
	synthetic_tar
	site_hook configure 95-hang 'sleep 600'
	give_user "$T"
	# SIGINT: the appliance is killed at once (it is in a process group of its own, so the
	# handler kills it), the build says it was interrupted and leaves nothing.
	as_user "$CVM_IMAGE" build --sandbox vm --hooks-dir "$T/site" "$T/t.tar" -o "$T/out/a.img" 2> "$T/int.log" &
	local pid=$! i
	for i in $(seq 600); do
		grep -q '\] configure:' "$T/int.log" && break
		sleep 0.2
	done
	sleep 5
	# cvm-image itself (setpriv and env exec it), not the recovery process it forks.
	pkill -INT -o -f "^$CVM_IMAGE build --sandbox vm --hooks-dir $T/site"
	local t0=$SECONDS rc=0
	wait $pid || rc=$?
	cat "$T/int.log"
	[ "$rc" -eq 1 ]
	[ $((SECONDS - t0)) -lt 60 ]
	grep -q 'error: interrupted while the appliance ran hook configure/95-hang' "$T/int.log"
	run ! pgrep -f "qemu-system.*$T/"
	assert_no_leftovers "$T/out"
	rm -rf --one-file-system "${T:?}/site"
	as_user env CVM_IMAGE_FAULT=kill-in-configure "$CVM_IMAGE" -q build --sandbox vm "$T/t.tar" -o "$T/out/a.img" || true
	# libguestfs's recovery process kills qemu within a second or two of its parent's death.
	local i
	for i in $(seq 50); do
		pgrep -f "qemu-system.*$T/" >/dev/null || break
		sleep 0.2
	done
	run ! pgrep -f "qemu-system.*$T/"
	ls -A "$T/tmp" | grep -q '^cvm-image\.'
	# The next build removes them before it reads its tarball (this one is not one).
	echo "not a tarball" > "$T/not.tar"
	run --separate-stderr as_user "$CVM_IMAGE" build --distro none "$T/not.tar" -o "$T/out/b.img"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"removed '$T/tmp/cvm-image."*"', left by cvm-image process "*" that is gone"* ]]
	assert_no_leftovers "$T/out"
}

@test "vm: the GitLab example's script, as root in a default container (no CAP_SYS_ADMIN, namespaces refused): image, key, report" {
	synthetic_tar
	mkdir "$T/job"
	mv "$T/t.tar" "$T/job/rootfs.tar"
	"$CVM_SRCDIR/tests/lib/ci-commands" "$CVM_SRCDIR/examples/ci/gitlab-ci.yml" > "$T/script"
	[ "$(wc -l < "$T/script")" -eq 2 ]
	run --separate-stderr setpriv --bounding-set -sys_admin "$NO_NS" \
		env PATH="$(dirname "$CVM_IMAGE"):$PATH" bash -c 'cd "$1" && set -e && . "$2"' _ "$T/job" "$T/script"
	echo "$stderr"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"sandbox: vm, the libguestfs appliance, under "*" (cannot create the sandbox for the distro's tools (bubblewrap needs CAP_SYS_ADMIN"* ]]
	[ "$(jq -r .sandbox "$T/job/build.json")" = vm ]
	[ -s "$T/job/disk.qcow2" ]
	[ "$(stat -c %a "$T/job/disk.qcow2.key")" = 600 ]
	[[ "$output" == *"ok      key-opens "* ]]
	[[ "$stderr" == *"disk.qcow2': "*" checks passed"* ]]
	run ! pgrep -f "qemu-system.*$T/"
	assert_no_leftovers "$T/job"
}

@test "vm: a root filesystem the appliance wrote that e2fsck finds damaged is refused before cvm-image reads it" {
	synthetic_tar
	give_user "$T"
	# As a program of the tarball could write it through the disk under it: the superblock's
	# s_first_data_block, on which libext2fs's ext2fs_read_bitmaps() overflows its heap.
	run --separate-stderr as_user env CVM_IMAGE_FAULT=corrupt-appliance-fs "$CVM_IMAGE" build --sandbox vm --distro none "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"'e2fsck' failed with exit status"* ]]
	[[ "$stderr" == *"error: the root filesystem the appliance wrote does not pass e2fsck -fn (its output above): refusing to read it"* ]]
	[ -z "$(ls -A "$T/out")" ]
	run ! pgrep -f "qemu-system.*$T/"
	assert_no_leftovers "$T/out"
}
