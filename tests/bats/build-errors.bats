#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# cvm-image build on bad input and in bad places: a specific message, the documented exit
# code, and nothing left behind (no output, no temporary file, no work directory, no mount).

load ../lib/common

setup() {
	requires root python3
	common_setup
	TAR=$(fixture_tar)
}

teardown() {
	common_teardown
}

# big_tar SIZE: $T/big.tar, a rootfs with SIZE of incompressible data: a build slow enough
# to interrupt.
big_tar() {
	mkdir -p "$T/big/usr/lib"
	echo ID=debian > "$T/big/usr/lib/os-release"
	head -c "$1" /dev/urandom > "$T/big/data"
	tar -C "$T/big" -cf "$T/big.tar" .
	rm -rf --one-file-system "${T:?}/big"
}

# site_hook PHASE NAME BODY: an executable hook $T/site/hooks/PHASE/NAME running BODY.
site_hook() {
	mkdir -p "$T/site/hooks/$1"
	printf '#!/bin/sh\n%s\n' "$3" > "$T/site/hooks/$1/$2"
	chmod +x "$T/site/hooks/$1/$2"
}

# synthetic_tar: $T/t.tar, a synthetic initramfs-tools rootfs (tests/lib/boot-tree).
synthetic_tar() {
	"$CVM_SRCDIR/tests/lib/boot-tree" "$T/tree" initramfs-tools
	tar --numeric-owner -C "$T/tree" -cf "$T/t.tar" .
}

# fails_with STATUS MESSAGE ARGS...: run build, check the exit status, the message, no output.
fails_with() {
	local want=$1 msg=$2
	shift 2
	run --separate-stderr "$CVM_IMAGE" build --distro none "$@"
	echo "status=$status stderr=$stderr"
	[ "$status" -eq "$want" ]
	[[ "$stderr" == *"$msg"* ]]
	[ -z "$output" ]
}

@test "errors: a missing tarball" {
	fails_with 1 "error: cannot open '$T/nope.tar': No such file or directory" "$T/nope.tar" -o "$T/out/a.img"
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

@test "errors: an unreadable tarball (a directory)" {
	mkdir "$T/dir.tar"
	fails_with 1 "error: cannot read '$T/dir.tar'" "$T/dir.tar" -o "$T/out/a.img"
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

@test "errors: not an archive" {
	echo "just some text" > "$T/text.tar"
	fails_with 1 "Unrecognized archive format" "$T/text.tar" -o "$T/out/a.img"
	[ -z "$(ls -A "$T/out")" ]
}

@test "errors: a truncated archive" {
	head -c 1200000 "$TAR" > "$T/trunc.tar"
	fails_with 1 "error: cannot read '$T/trunc.tar': Truncated" "$T/trunc.tar" -o "$T/out/a.img"
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

@test "errors: an entry with '..' is refused by name, nothing written" {
	"$CVM_SRCDIR/tests/lib/bad-tar" dotdot "$T/bad.tar"
	fails_with 1 "refusing entry './etc/../../evil': path contains '..'" "$T/bad.tar" -o "$T/out/a.img"
	[ ! -e "$T/evil" ]
	[ ! -e "$T/../evil" ]
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

@test "errors: an absolute path is refused by name, nothing written" {
	"$CVM_SRCDIR/tests/lib/bad-tar" absolute "$T/bad.tar"
	fails_with 1 "refusing entry '/tmp/cvm-image-evil': absolute path" "$T/bad.tar" -o "$T/out/a.img"
	[ ! -e /tmp/cvm-image-evil ]
	assert_no_leftovers "$T/out"
}

@test "errors: a file below a symlink of the archive is refused, nothing written through it" {
	"$CVM_SRCDIR/tests/lib/bad-tar" through-symlink "$T/bad.tar"
	fails_with 1 "refusing entry './escape/cvm-image-evil': it lies below the symlink 'escape'" \
		"$T/bad.tar" -o "$T/out/a.img"
	[ ! -e /tmp/cvm-image-evil ]
	assert_no_leftovers "$T/out"
}

@test "errors: a hard link out of the tree is refused" {
	"$CVM_SRCDIR/tests/lib/bad-tar" hardlink-out "$T/bad.tar"
	fails_with 1 "refusing hard link './etc/shadow-link' to '../../etc/shadow'" "$T/bad.tar" -o "$T/out/a.img"
	assert_no_leftovers "$T/out"
}

@test "errors: a tarball without os-release" {
	mkdir -p "$T/tree/etc"
	echo x > "$T/tree/etc/hostname"
	tar -C "$T/tree" -cf "$T/noos.tar" .
	fails_with 1 "has no /etc/os-release or /usr/lib/os-release" "$T/noos.tar" -o "$T/out/a.img"
	assert_no_leftovers "$T/out"
}

@test "errors: an empty archive" {
	tar -cf "$T/empty.tar" -T /dev/null
	fails_with 1 "is empty" "$T/empty.tar" -o "$T/out/a.img"
}

@test "errors: --size too small says how much is needed" {
	fails_with 1 "--size 110.0 MiB is too small for this rootfs: at least " --size 110M "$TAR" -o "$T/out/a.img"
	[[ "$stderr" =~ at\ least\ [0-9]+\ MiB\ is\ needed ]]
	assert_no_leftovers "$T/out"
}

@test "errors: the output directory is missing" {
	fails_with 1 "output directory '$T/nope': No such file or directory" "$TAR" -o "$T/nope/a.img"
	assert_no_leftovers
}

@test "errors: the output exists and --force is not given: left untouched" {
	echo precious > "$T/out/a.img"
	fails_with 1 "output '$T/out/a.img' exists (use --force to replace it)" "$TAR" -o "$T/out/a.img"
	[ "$(cat "$T/out/a.img")" = precious ]
	[ ! -e "$T/out/a.img.key" ]
	assert_no_leftovers "$T/out"
}

@test "errors: the key file exists and --force is not given" {
	echo precious > "$T/out/a.img.key"
	fails_with 1 "key file '$T/out/a.img.key' exists (use --force to replace it)" "$TAR" -o "$T/out/a.img"
	[ "$(cat "$T/out/a.img.key")" = precious ]
	[ ! -e "$T/out/a.img" ]
}

@test "errors: the key-out path is not writable (read-only filesystem)" {
	requires mount
	mkdir "$T/ro"
	mount -t tmpfs -o ro,size=1m tmpfs "$T/ro"
	fails_with 1 "cannot create key file '$T/ro/k': Read-only file system" \
		--key-out "$T/ro/k" "$TAR" -o "$T/out/a.img"
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

@test "errors: the key-out directory is missing" {
	fails_with 1 "key file directory '$T/nokeys': No such file or directory" \
		--key-out "$T/nokeys/k" "$TAR" -o "$T/out/a.img"
	[ -z "$(ls -A "$T/out")" ]
}

@test "errors: obviously not enough space for the output: exit 3 before anything is written" {
	requires mount
	mkdir -p "$T/small"
	big_tar 20M
	mount -t tmpfs -o size=8m tmpfs "$T/small"
	fails_with 3 "not enough space in '$T/small': about 20.0 MiB needed" "$T/big.tar" -o "$T/small/a.img"
	[ -z "$(ls -A "$T/small")" ]
	assert_no_leftovers "$T/small"
}

@test "errors: the output filesystem fills up mid-build (ENOSPC): exit 3, nothing left" {
	requires mount
	mkdir -p "$T/small"
	big_tar 20M
	# Passes the early check (20 MiB of files) but not the journal and metadata on top.
	mount -t tmpfs -o size=24m tmpfs "$T/small"
	fails_with 3 "No space left on device" "$T/big.tar" -o "$T/small/a.img"
	[[ "$stderr" != *"not enough space in"* ]]

	[ -z "$(ls -A "$T/small")" ]
	assert_no_leftovers "$T/small"
}

@test "errors: the output filesystem fills up during mkfs: the host's filesystem is named full, not the image" {
	requires mount
	mkdir -p "$T/small"
	big_tar 20M
	# Just over the 20 MiB of files of the early check: mke2fs runs out of room on the host.
	mount -t tmpfs -o size=20500k tmpfs "$T/small"
	fails_with 3 "the root filesystem of" "$T/big.tar" -o "$T/small/a.img"
	[[ "$stderr" == *"could not be made: the filesystem holding '$T/small/"*"' is full ("*" KiB free); free room there"* ]]
	[[ "$stderr" != *"give a larger --size"* ]]
	[ -z "$(ls -A "$T/small")" ]
	assert_no_leftovers "$T/small"
}

@test "errors: SIGINT during mkfs stops the build and removes everything" {
	big_tar 400M
	"$CVM_IMAGE" build --distro none "$T/big.tar" -o "$T/out/a.img" 2> "$T/stderr" &
	local pid=$! i
	for i in $(seq 600); do
		grep -q '\] mkfs:' "$T/stderr" && break
		sleep 0.05
	done
	grep -q '\] mkfs:' "$T/stderr"
	kill -INT "$pid"
	local rc=0
	wait "$pid" || rc=$?
	cat "$T/stderr"
	[ "$rc" -eq 1 ]
	grep -q 'error: interrupted' "$T/stderr"
	run ! grep -q 'built ' "$T/stderr"
	[ -z "$(ls -A "$T/out")" ]
	run ! pgrep -f "mke2fs.*$T" >/dev/null
	assert_no_leftovers "$T/out"
}

@test "errors: SIGTERM during encryption stops the build and removes everything" {
	big_tar 400M
	"$CVM_IMAGE" build --distro none "$T/big.tar" -o "$T/out/a.img" 2> "$T/stderr" &
	local pid=$! i
	for i in $(seq 1200); do
		grep -q '\] encrypt:' "$T/stderr" && break
		sleep 0.02
	done
	grep -q '\] encrypt:' "$T/stderr"
	kill -TERM "$pid"
	local rc=0
	wait "$pid" || rc=$?
	cat "$T/stderr"
	[ "$rc" -eq 1 ]
	grep -q 'error: interrupted' "$T/stderr"
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

@test "errors: --sandbox bwrap as an ordinary user where no user namespace can be made (a default container's filter): exit 3 with the reason" {
	requires setpriv
	ensure_test_user
	cp "$TAR" "$T/rootfs.tar"
	give_user "$T"
	run --separate-stderr as_user "$(dirname "$CVM_IMAGE")/tests/lib/no-namespaces" "$CVM_IMAGE" build --sandbox bwrap --distro none "$T/rootfs.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"--sandbox bwrap: bubblewrap cannot make a user namespace here (a container's seccomp filter, or user namespaces turned off for ordinary users)"* ]]
	[ -z "$(ls -A "$T/out")" ]
}

@test "errors: a hook that hangs is stopped after --hook-timeout, with all it started" {
	synthetic_tar
	site_hook configure 95-hang 'sleep 304 & sleep 305'
	run --separate-stderr "$CVM_IMAGE" build --sandbox bwrap --hook-timeout 3 --hooks-dir "$T/site" "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"error: hook configure/95-hang did not finish within 3 s (--hook-timeout): stopped"* ]]
	run ! pgrep -f '^sleep 30[45]$'
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
	fails_with 2 "invalid --hook-timeout '0': expected 1 to 86400 seconds" --hook-timeout 0 "$TAR" -o "$T/out/a.img"
}

@test "errors: --sandbox takes auto, bwrap or vm" {
	fails_with 2 "invalid --sandbox 'chroot': expected auto, bwrap or vm" --sandbox chroot "$TAR" -o "$T/out/a.img"
}

@test "errors: a missing helper program: exit 3, names the Debian package" {
	mkdir "$T/bin"
	local p
	for p in mke2fs mmd qemu-img; do ln -s "$(command -v $p)" "$T/bin/$p"; done
	run --separate-stderr env PATH="$T/bin" "$CVM_IMAGE" build --distro none --distro none "$TAR" -o "$T/out/a.img"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"required program 'mkfs.fat' not found in \$PATH (install the Debian package 'dosfstools')"* ]]
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

@test "errors: usage errors exit 2" {
	fails_with 2 "missing -o IMAGE" "$TAR"
	fails_with 2 "missing ROOTFS tarball" -o "$T/out/a.img"
	fails_with 2 "invalid --size '12Q'" --size 12Q "$TAR" -o "$T/out/a.img"
	fails_with 2 "invalid --format 'vmdk'" --format vmdk "$TAR" -o "$T/out/a.img"
	fails_with 2 "invalid --mapper-name 'a/b'" --mapper-name a/b "$TAR" -o "$T/out/a.img"
	fails_with 2 "invalid --recovery-iter-time 'soon'" --recovery-iter-time soon "$TAR" -o "$T/out/a.img"
	fails_with 2 "unexpected argument" "$TAR" "$TAR" -o "$T/out/a.img"
	fails_with 2 "unrecognized option '--frobnicate'" --frobnicate "$TAR" -o "$T/out/a.img"
	[ -z "$(ls -A "$T/out")" ]
}

@test "errors: a bad recovery passphrase file" {
	: > "$T/empty"
	fails_with 1 "passphrase file '$T/empty' is empty" --recovery-passphrase-file "$T/empty" "$TAR" -o "$T/out/a.img"
	fails_with 1 "cannot open '$T/none'" --recovery-passphrase-file "$T/none" "$TAR" -o "$T/out/a.img"
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

@test "errors: the temporary output holding the plaintext filesystem is 0600 until it is encrypted" {
	# The build stops itself (SIGSTOP) at the start of each stage from luks on: between mkfs and
	# the output the temporary file holds the plaintext filesystem, then the encrypted image.
	big_tar 20M
	umask 022
	local stage pid i tmp m modes seen= state
	for stage in luks encrypt assemble output; do
		rm -f "$T/out/a.img" "$T/out/a.img.key"
		CVM_IMAGE_FAULT=stop-in-$stage "$CVM_IMAGE" build --distro none "$T/big.tar" \
			-o "$T/out/a.img" 2> "$T/stderr" &
		pid=$!
		state=
		for i in $(seq 600); do
			state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || true
			[ "$state" = T ] && break
			sleep 0.05
		done
		echo "$stage: state $state"
		if [ "$state" != T ]; then
			cat "$T/stderr"
			false
		fi
		modes=
		for tmp in "$T"/out/.a.img.tmp-*; do
			[ -e "$tmp" ] || continue
			m=$(stat -c %a "$tmp")
			echo "$stage: $(basename "$tmp") $m"
			seen+="$stage "
			modes+="$m "
		done
		# Let it go on before any check can fail: bats waits for a stopped child.
		kill -CONT "$pid"
		wait "$pid"
		[ -z "$(tr ' ' '\n' <<<"$modes" | grep -v '^600$' | grep .)" ]
		# The finished image gets the usual mode, the key 0600.
		[ "$(stat -c %a "$T/out/a.img")" = 644 ]
		[ "$(stat -c %a "$T/out/a.img.key")" = 600 ]
	done
	# The plaintext filesystem exists before luks and encrypt run: a temporary file was there.
	[[ "$seen" == *"luks "* ]]
	[[ "$seen" == *"encrypt "* ]]
}

@test "errors: a second build of the same output fails at once, naming the first" {
	site_hook configure 20-slow 'sleep 30'
	synthetic_tar
	"$CVM_IMAGE" build --force --hooks-dir "$T/site" "$T/t.tar" -o "$T/out/a.img" 2> "$T/first" &
	local pid=$! i
	for i in $(seq 300); do
		grep -q '\] configure:' "$T/first" && break
		sleep 0.05
	done
	run --separate-stderr timeout 20 "$CVM_IMAGE" build --force "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"output '$T/out/a.img' is being written by another cvm-image (process $pid)"* || \
	   "$stderr" == *"key file '$T/out/a.img.key' is being written by another cvm-image (process $pid)"* ]]
	[[ "$stderr" != *"] unpack:"* ]]
	kill -INT "$pid"
	wait "$pid" || true
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

@test "errors: --force keeps the previous image and key when the new image cannot be put in place" {
	echo "old image" > "$T/out/a.img"
	echo "old key" > "$T/out/a.img.key"
	run --separate-stderr env CVM_IMAGE_FAULT=output-rename "$CVM_IMAGE" build --distro none --force "$TAR" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"cannot create output '$T/out/a.img': Input/output error (the previous image and key file are unchanged)"* ]]
	[ "$(cat "$T/out/a.img")" = "old image" ]
	[ "$(cat "$T/out/a.img.key")" = "old key" ]
	assert_no_leftovers "$T/out"
	# Without a previous pair: neither is left.
	rm "$T/out/a.img" "$T/out/a.img.key"
	run --separate-stderr env CVM_IMAGE_FAULT=output-rename "$CVM_IMAGE" build --distro none "$TAR" -o "$T/out/a.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"(no image or key file was written)"* ]]
	[ -z "$(ls -A "$T/out")" ]
	# And with it working, the new pair replaces the old one.
	echo "old image" > "$T/out/a.img"
	echo "old key" > "$T/out/a.img.key"
	run "$CVM_IMAGE" -q build --distro none --force "$TAR" -o "$T/out/a.img"
	[ "$status" -eq 0 ]
	[ "$(wc -c < "$T/out/a.img.key")" = 44 ]
	assert_no_leftovers "$T/out"
}

@test "errors: a build killed in any stage leaves no process or mount; the next one removes its files and says so" {
	local stage
	synthetic_tar
	for stage in unpack configure initramfs bootloader finalize key-archive esp mkfs luks encrypt assemble output; do
		run env CVM_IMAGE_FAULT=kill-in-$stage "$CVM_IMAGE" build "$T/t.tar" -o "$T/out/a.img"
		[ "$status" -eq 137 ]
		[ -n "$(ls -A "$TMPDIR")" ]
		ls -A "$T/out" | grep -q '^\.a\.img\.tmp-'
		[ -z "$(findmnt -rn -o TARGET | grep "$T")" ]
		run ! pgrep -f "bwrap.*$TMPDIR"
		run --separate-stderr "$CVM_IMAGE" build --force "$T/t.tar" -o "$T/out/a.img"
		echo "$stage: $stderr"
		[ "$status" -eq 0 ]
		[[ "$stderr" == *"removed '$TMPDIR/cvm-image."*"', left by cvm-image process "*" that is gone"* ]]
		[[ "$stderr" == *"removed '$T/out/.a.img.tmp-"* ]]
		[[ "$stderr" == *"removed '$T/out/.a.img.lock', a lock left by cvm-image process"* ]]
		assert_no_leftovers "$T/out"
		[ -z "$(ls -A "$T/out" | grep -v '^a\.img\(\.key\)\?$')" ]
		rm "$T/out/a.img" "$T/out/a.img.key"
	done
}

@test "errors: an ordinary user's build killed in a hook or in mkfs: nothing of it runs on; the user's next build removes its tree, closed directories and all" {
	requires setpriv
	ensure_test_user
	"$CVM_SRCDIR/tests/lib/boot-tree" "$T/tree" initramfs-tools
	mkdir -p "$T/tree/var/closed/inner"
	echo c > "$T/tree/var/closed/inner/file"
	chmod 0000 "$T/tree/var/closed/inner" "$T/tree/var/closed"
	tar --numeric-owner -C "$T/tree" -cf "$T/t.tar" .
	rm -rf --one-file-system "${T:?}/tree"
	give_user "$T"
	local stage
	for stage in configure mkfs; do
		run as_user env CVM_IMAGE_FAULT=kill-in-$stage "$CVM_IMAGE" build "$T/t.tar" -o "$T/out/a.img"
		[ "$status" -eq 137 ]
		[ -n "$(ls -A "$TMPDIR")" ]
		run ! pgrep -f "bwrap.*$TMPDIR"
		run ! pgrep -f "$TMPDIR"
		run --separate-stderr as_user "$CVM_IMAGE" build --force "$T/t.tar" -o "$T/out/a.img"
		echo "$stage: $stderr"
		[ "$status" -eq 0 ]
		[[ "$stderr" == *"removed '$TMPDIR/cvm-image."*"', left by cvm-image process "*" that is gone"* ]]
		[[ "$stderr" == *"in a user namespace where you are root"* ]]
		assert_no_leftovers "$T/out"
		rm "$T/out/a.img" "$T/out/a.img.key"
	done
}

@test "errors: SIGKILL during a hook: the sandbox dies with cvm-image" {
	site_hook initramfs 20-slow '(trap "" TERM INT HUP; exec sleep 302) &
sleep 303'
	synthetic_tar
	"$CVM_IMAGE" build --hooks-dir "$T/site" "$T/t.tar" -o "$T/out/a.img" 2> "$T/stderr" &
	local pid=$! i
	for i in $(seq 300); do
		pgrep -f '^sleep 302$' >/dev/null && break
		sleep 0.1
	done
	pgrep -f '^sleep 302$' >/dev/null
	kill -KILL "$pid"
	wait "$pid" || true
	for i in $(seq 50); do
		pgrep -f '^sleep 30[23]$' >/dev/null || break
		sleep 0.1
	done
	run ! pgrep -f '^sleep 30[23]$'
	[ -z "$(findmnt -rn -o TARGET | grep "$T")" ]
}

@test "errors: --sandbox bwrap without the privileges it needs: prepare fails within a second with exit 3" {
	requires setpriv unshare
	chmod 0755 "$T" "$T/out" "$T/tmp"
	chmod 0644 "$TAR"
	# Root without CAP_SYS_ADMIN (a default container): no sandbox for the distro's tools.
	synthetic_tar
	run --separate-stderr setpriv --bounding-set -sys_admin "$CVM_IMAGE" build --sandbox bwrap "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"cannot create the sandbox for the distro's tools (bubblewrap needs CAP_SYS_ADMIN"* ]]
	[[ "$stderr" != *"] unpack:"* ]]
	[ -z "$(ls -A "$T/out")" ]
	# --distro none needs no sandbox: it builds there.
	run --separate-stderr setpriv --bounding-set -sys_admin "$CVM_IMAGE" -q build --distro none "$TAR" -o "$T/out/a.img"
	[ "$status" -eq 0 ]
	rm "$T/out/a.img" "$T/out/a.img.key"
	# A user namespace of one user: the owners could not be set. (In a place nobody can reach.)
	local p
	p=$(mktemp -d /var/tmp/cvm-priv.XXXXXX)
	chmod 0755 "$p"
	mkdir -m 0777 "$p/out" "$p/tmp"
	cp "$TAR" "$p/rootfs.tar"
	chmod 0644 "$p/rootfs.tar"
	run --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups env TMPDIR="$p/tmp" unshare -rm "$CVM_IMAGE" build --sandbox bwrap --distro none "$p/rootfs.tar" -o "$p/out/a.img"
	local left
	left=$(ls -A "$p/out" "$p/tmp")
	rm -rf --one-file-system "${p:?}"
	echo "$stderr"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"cvm-image runs in a user namespace that does not map every owner of the tarball (up to user 1234, group 5678)"* ]]
	[ -z "$(echo "$left" | grep -v ':$' | grep .)" ]
	# Without CAP_MKNOD, a tarball with device nodes.
	run --separate-stderr setpriv --bounding-set -mknod "$CVM_IMAGE" build --sandbox bwrap --distro none "$TAR" -o "$T/out/a.img"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"device nodes and cvm-image lacks CAP_MKNOD"* ]]
	[ -z "$(ls -A "$T/out")" ]
}
