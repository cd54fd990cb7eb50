#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Hostile tarballs and hooks: nothing they do reaches the build host (DESIGN.md §0, §3).
# Each case checks the message and exit code, that decoy files outside the work directory
# are unchanged, and that no mount, process or temporary file is left.

load ../lib/common

setup() {
	requires root busybox python3 bwrap
	common_setup
	# Decoys outside /tmp: the sandbox has a tmpfs there, and a symlink in the tarball to
	# the decoys' absolute path must resolve to the same path inside the target.
	DECOY=$(mktemp -d /var/tmp/cvm-decoy.XXXXXX)
	echo "host file a" > "$DECOY/a"
	echo "host file b" > "$DECOY/b"
	mkdir "$DECOY/dir"
	echo "host file c" > "$DECOY/dir/c"
	chmod 0640 "$DECOY/a"
	decoy_sums > "$T/decoys.before"
}

teardown() {
	common_teardown
	[ -z "${DECOY:-}" ] || rm -rf --one-file-system "${DECOY:?}"
}

decoy_sums() {
	(cd "$DECOY" && find . -printf '%p %m %s\n' | LC_ALL=C sort && find . -type f -exec sha256sum {} + | LC_ALL=C sort)
}

# The host is as it was: decoys, no mount or process of this test, no temporary file.
assert_host_untouched() {
	decoy_sums | diff -u "$T/decoys.before" -
	if findmnt -rn -o TARGET | grep -q "^$T\|^$DECOY"; then
		echo "a mount is left below $T or $DECOY" >&2
		return 1
	fi
	if pgrep -f "$T" >/dev/null; then
		pgrep -af "$T" >&2
		return 1
	fi
	assert_no_leftovers "$T/out"
}

# tree: a synthetic initramfs-tools rootfs in $T/t; tar_tree: $T/t.tar of it.
tree() {
	rm -rf --one-file-system "${T:?}/t"
	"$CVM_SRCDIR/tests/lib/boot-tree" "$T/t" initramfs-tools
	mkdir -p "$T/t$DECOY/dir"
}
tar_tree() {
	tar --numeric-owner -C "$T/t" -cf "$T/t.tar" .
}

# proc_root_writer: the tree's update-initramfs writes to the decoys through every
# /proc/PID/root it sees, and makes no initramfs.
proc_root_writer() {
	cat > "$T/t/usr/sbin/update-initramfs" <<EOF
#!/bin/sh
for p in \$(ls /proc | grep '^[0-9]*\$'); do
	echo pwned > /proc/\$p/root$DECOY/a 2>/dev/null
	echo pwned > /proc/\$p/root$DECOY/new-file 2>/dev/null
done
echo pwned > /proc/self/root$DECOY/b 2>/dev/null
exit 0
EOF
	chmod 0755 "$T/t/usr/sbin/update-initramfs"
}

# build_ok ARGS: the build succeeds, its work directory kept; W is the target root.
build_ok() {
	mkdir -p "$T/work"
	run --separate-stderr "$CVM_IMAGE" build --keep-workdir --workdir "$T/work" "$@" "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 0 ]
	W=$(echo "$T"/work/cvm-image.*/root)
	[ -d "$W" ]
}

# build_fails MESSAGE ARGS: exit 1 with MESSAGE, no output, nothing left.
build_fails() {
	local msg=$1
	shift
	run --separate-stderr timeout 300 "$CVM_IMAGE" build "$@" -o "$T/out/a.img"
	echo "status=$status"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"$msg"* ]]
	[ -z "$output" ]
	[ -z "$(ls -A "$T/out")" ]
}

@test "hostile: grub modules copied through boot/grub/x86_64-efi/zz.mod -> /proc/2/root/HOST stay in the target" {
	tree
	echo "module from the tarball" > "$T/t/usr/lib/grub/x86_64-efi/zz.mod"
	mkdir -p "$T/t/boot/grub/x86_64-efi"
	ln -s "/proc/2/root$DECOY/a" "$T/t/boot/grub/x86_64-efi/zz.mod"
	tar_tree
	build_ok
	assert_host_untouched
	# The cp wrote through the link inside the sandbox: into the target's own tree.
	grep -q "module from the tarball" "$W$DECOY/a"
}

@test "hostile: etc/crypttab.cvm-new -> /proc/2/root/HOST: the hook's write stays in the target" {
	tree
	ln -s "/proc/2/root$DECOY/b" "$T/t/etc/crypttab.cvm-new"
	tar_tree
	build_ok
	assert_host_untouched
	grep -q "UUID=" "$W$DECOY/b"
}

@test "hostile: etc/default and boot/grub as symlinks through /proc/2/root to host directories: writes stay in the target" {
	tree
	rm -rf --one-file-system "${T:?}/t/etc/default" "${T:?}/t/boot/grub"
	ln -s "/proc/2/root$DECOY/dir" "$T/t/etc/default"
	ln -s "/proc/2/root$DECOY" "$T/t/boot/grub"
	tar_tree
	build_ok
	assert_host_untouched
	grep -qx 'GRUB_ENABLE_CRYPTODISK="y"' "$W$DECOY/dir/grub"
	[ -f "$W$DECOY/grub.cfg" ]
}

@test "hostile: the tarball's own update-initramfs writing through /proc/*/root reaches nothing of the host" {
	tree
	proc_root_writer
	tar_tree
	# It made no initramfs: the bootloader hook says so; the host is untouched.
	build_fails "no initramfs for kernel 6.1.0-10-amd64 in /boot" "$T/t.tar"
	assert_host_untouched
	[ ! -e "$DECOY/new-file" ]
}

@test "hostile: a hook looks around: only its own processes, no host device, nothing of the host writable" {
	tree
	tar_tree
	mkdir -p "$T/site/hooks/configure"
	cat > "$T/site/hooks/configure/10-look" <<EOF
#!/bin/sh
r=/var/log/look
mkdir -p \$r
ls /proc | grep '^[0-9]*\$' > \$r/pids
for p in \$(cat \$r/pids); do tr '\\0' ' ' < /proc/\$p/cmdline; echo; done > \$r/cmdlines
find /dev -type b > \$r/block-devices
ls /dev > \$r/dev
for p in \$(cat \$r/pids) self; do echo pwned > /proc/\$p/root$DECOY/a 2>/dev/null; done
busybox mknod /dev/disk-copy b 8 0 2>/dev/null && echo mknod >> \$r/allowed
busybox mount -t devtmpfs none /mnt 2>/dev/null && echo mount-devtmpfs >> \$r/allowed
busybox mount -t proc proc /mnt 2>/dev/null && echo mount-proc >> \$r/allowed
echo x > /proc/sys/kernel/domainname 2>/dev/null && echo proc-sys >> \$r/allowed
echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo proc-sys-vm >> \$r/allowed
echo x > /proc/sysrq-trigger 2>/dev/null && echo sysrq >> \$r/allowed
touch /sys/cvm-test 2>/dev/null && echo sys >> \$r/allowed
echo x > /sys/kernel/mm/ksm/run 2>/dev/null && echo sys-setting >> \$r/allowed
ls -A /tmp > \$r/tmp
env | sort > \$r/env
exit 0
EOF
	chmod +x "$T/site/hooks/configure/10-look"
	build_ok --hooks-dir "$T/site"
	assert_host_untouched
	local r=$W/var/log/look
	cat "$r/cmdlines" "$r/dev"
	# PID 1 (bwrap's), the hook's shell and what it ran: nothing of the host.
	[ "$(wc -l < "$r/pids")" -le 6 ]
	run ! grep -q "^$CVM_IMAGE \|bats-exec\|bin/bats" "$r/cmdlines"
	[ ! -s "$r/block-devices" ]
	diff -u <(printf '%s\n' core fd full null ptmx pts random shm stderr stdin stdout tty urandom zero) "$r/dev"
	[ ! -e "$r/allowed" ] || { cat "$r/allowed"; false; }
	[ ! -s "$r/tmp" ]
	# The documented environment, TMPDIR set for the target, nothing of the caller's.
	grep -qx "TMPDIR=/tmp" "$r/env"
	run ! grep -q "^CVM_IMAGE=\|^CVM_SRCDIR=\|^BATS\|^T=" "$r/env"
}

@test "hostile: boot/efi -> /etc would put /etc on the ESP: refused, nothing written" {
	tree
	rmdir "$T/t/boot/efi" 2>/dev/null || true
	ln -s /etc "$T/t/boot/efi"
	tar_tree
	build_fails "/boot/efi in the rootfs is a symlink or lies below one: the ESP is made only from a real directory of the tree" "$T/t.tar"
	assert_host_untouched
}

@test "hostile: a file on the ESP that holds the key is refused, naming it" {
	tree
	tar_tree
	mkdir -p "$T/site/hooks/bootloader"
	printf '#!/bin/sh\nmkdir -p /boot/efi/EFI/vendor\n{ echo "key:"; cat "$CVM_KEY_FILE"; } > /boot/efi/EFI/vendor/leak.txt\n' \
		> "$T/site/hooks/bootloader/90-leak"
	chmod +x "$T/site/hooks/bootloader/90-leak"
	build_fails "/boot/efi/EFI/vendor/leak.txt holds the disk's key" --hooks-dir "$T/site" "$T/t.tar"
	assert_host_untouched
}

@test "hostile: a FIFO or a device at /etc/fstab, /etc/hosts or /etc/hostname is refused at once" {
	tree
	rm "$T/t/etc/fstab"
	mkfifo "$T/t/etc/fstab"
	tar_tree
	build_fails "refusing to read '/etc/fstab' in the rootfs: it is a FIFO, not a regular file" "$T/t.tar"
	assert_host_untouched

	tree
	rm "$T/t/etc/fstab"
	mknod "$T/t/etc/fstab" c 1 3
	tar_tree
	build_fails "refusing to read '/etc/fstab' in the rootfs: it is a character device, not a regular file" "$T/t.tar"
	assert_host_untouched

	tree
	rm "$T/t/etc/hosts"
	mkfifo "$T/t/etc/hosts"
	tar_tree
	build_fails "refusing to read '/etc/hosts' in the rootfs: it is a FIFO" --hostname guest "$T/t.tar"
	assert_host_untouched

	tree
	mkfifo "$T/t/etc/hostname"
	tar_tree
	build_fails "refusing to replace '/etc/hostname' in the rootfs: it is a FIFO, not a regular file" --hostname guest "$T/t.tar"
	assert_host_untouched
}

@test "hostile: a gzip tarball with a bad CRC is refused in the prepare stage" {
	tree
	tar --numeric-owner -C "$T/t" -czf "$T/t.tgz" .
	python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); d[-8]^=0xff; open(sys.argv[2],"wb").write(d)' "$T/t.tgz" "$T/bad.tgz"
	run ! gzip -t "$T/bad.tgz"
	build_fails "cannot read '$T/bad.tgz': gzip: incorrect data check" "$T/bad.tgz"
	[[ "$stderr" != *"] unpack:"* ]]
	assert_host_untouched
	# A bad length, and a truncated stream.
	python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); d[-2]^=0x01; open(sys.argv[2],"wb").write(d)' "$T/t.tgz" "$T/bad.tgz"
	build_fails "gzip: incorrect length check" "$T/bad.tgz"
	head -c -100 "$T/t.tgz" > "$T/bad.tgz"
	build_fails "gzip: unexpected end of the compressed data (truncated)" "$T/bad.tgz"
	# The good one builds, xz and zstd with damaged checksums are refused too.
	run "$CVM_IMAGE" -q build "$T/t.tgz" -o "$T/out/good.img"
	[ "$status" -eq 0 ]
	rm "$T/out/good.img" "$T/out/good.img.key"
	tar --numeric-owner -C "$T/t" --zstd -cf "$T/t.tzst" .
	python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); d[-1]^=0xff; open(sys.argv[2],"wb").write(d)' "$T/t.tzst" "$T/bad.tzst"
	# (libarchive reports the zstd checksum error as a truncated input)
	build_fails "cannot read '$T/bad.tzst'" "$T/bad.tzst"
	assert_host_untouched
}

@test "hostile: deep nesting, long names and long paths are refused in the prepare stage, naming the entry" {
	"$CVM_SRCDIR/tests/lib/bad-tar" deep 1001 "$T/deep.tar"
	build_fails "refusing entry './d/d/d/d/d" --distro none "$T/deep.tar"
	[[ "$stderr" == *"1002 levels deep, more than 1000"* ]]
	"$CVM_SRCDIR/tests/lib/bad-tar" deep 2040 "$T/deep.tar"
	build_fails "more than 1000" --distro none "$T/deep.tar"
	"$CVM_SRCDIR/tests/lib/bad-tar" long-name 256 "$T/long.tar"
	build_fails "a name in it is 256 bytes long, more than the 255 a file system takes" --distro none "$T/long.tar"
	"$CVM_SRCDIR/tests/lib/bad-tar" long-path 4300 "$T/long.tar"
	build_fails "more than 4095" --distro none "$T/long.tar"
	[[ "$stderr" != *"] unpack:"* ]]
	assert_host_untouched
	# 999 levels still build.
	"$CVM_SRCDIR/tests/lib/bad-tar" deep 998 "$T/deep.tar"
	run "$CVM_IMAGE" -q build --distro none "$T/deep.tar" -o "$T/out/deep.img"
	[ "$status" -eq 0 ]
}

@test "hostile: hard links through an archive symlink or to nothing earlier are refused" {
	"$CVM_SRCDIR/tests/lib/bad-tar" hardlink-through-symlink "$T/bad.tar"
	build_fails "refusing hard link './etc/shadow-link' to './escape/shadow': the target lies below the symlink 'escape'" --distro none "$T/bad.tar"
	"$CVM_SRCDIR/tests/lib/bad-tar" hardlink-missing "$T/bad.tar"
	build_fails "refusing hard link './etc/link' to './etc/not-in-the-archive': no such file earlier in the archive" --distro none "$T/bad.tar"
	assert_host_untouched
}

@test "hostile: as an ordinary user (bubblewrap in a user namespace): the tarball's programs and a hook that looks around reach nothing of the user's own files" {
	requires setpriv
	ensure_test_user
	# The decoys are the user's own: what a sandbox that leaked would let a hook write.
	chown -R "$TEST_USER:" "$DECOY"
	decoy_sums > "$T/decoys.before"
	tree
	proc_root_writer
	tar_tree
	give_user "$T" "$DECOY"
	run --separate-stderr as_user timeout 300 "$CVM_IMAGE" build "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"sandbox: bwrap, bubblewrap on the host in a user namespace where you are root"* ]]
	[[ "$stderr" == *"no initramfs for kernel 6.1.0-10-amd64 in /boot"* ]]
	assert_host_untouched
	[ ! -e "$DECOY/new-file" ]

	tree
	tar_tree
	mkdir -p "$T/site/hooks/configure" "$T/work"
	cat > "$T/site/hooks/configure/10-look" <<EOF
#!/bin/sh
r=/var/log/look
mkdir -p \$r
ls /proc | grep '^[0-9]*\$' > \$r/pids
find /dev -type b > \$r/block-devices
for p in \$(cat \$r/pids) self; do echo pwned > /proc/\$p/root$DECOY/a 2>/dev/null; done
echo pwned > $DECOY/b 2>/dev/null
busybox mknod /dev/disk-copy b 8 0 2>/dev/null && echo mknod >> \$r/allowed
busybox mount -t proc proc /mnt 2>/dev/null && echo mount-proc >> \$r/allowed
busybox mount -t tmpfs none /mnt 2>/dev/null && echo mount-tmpfs >> \$r/allowed
echo x > /proc/sys/kernel/domainname 2>/dev/null && echo proc-sys >> \$r/allowed
touch /sys/cvm-test 2>/dev/null && echo sys >> \$r/allowed
id -u > \$r/uid
exit 0
EOF
	chmod +x "$T/site/hooks/configure/10-look"
	give_user "$T"
	run --separate-stderr as_user "$CVM_IMAGE" build --keep-workdir --workdir "$T/work" --hooks-dir "$T/site" "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 0 ]
	W=$(echo "$T"/work/cvm-image.*/root)
	local r=$W/var/log/look
	# Root in its namespace, and no more: its own processes, no block device, no mount.
	[ "$(cat "$r/uid")" = 0 ]
	[ "$(wc -l < "$r/pids")" -le 6 ]
	[ ! -s "$r/block-devices" ]
	if [ -e "$r/allowed" ]; then
		cat "$r/allowed"
		false
	fi
	rm -rf --one-file-system "${T:?}/work"
	rm "$T/out/a.img" "$T/out/a.img.key"
	assert_host_untouched
}

@test "hostile: through the appliance route (--sandbox vm) too: writes through /proc/*/root and a FIFO at /etc/fstab reach nothing of the host" {
	requires guestfs
	tree
	proc_root_writer
	tar_tree
	build_fails "no initramfs for kernel 6.1.0-10-amd64 in /boot" --sandbox vm "$T/t.tar"
	[[ "$stderr" == *"sandbox: vm, the libguestfs appliance, under "*" (--sandbox vm)"* ]]
	assert_host_untouched
	[ ! -e "$DECOY/new-file" ]

	tree
	rm "$T/t/etc/fstab"
	mkfifo "$T/t/etc/fstab"
	tar_tree
	build_fails "refusing to read '/etc/fstab' in the rootfs: it is a FIFO, not a regular file" --sandbox vm "$T/t.tar"
	assert_host_untouched
}

@test "hostile: through the appliance route too: /run or /boot/efi as a symlink is refused, naming it" {
	requires guestfs
	tree
	rm -rf "${T:?}/t/run"
	ln -s /etc "$T/t/run"
	tar_tree
	build_fails "'/run' in the rootfs is not a directory (a symlink?): the sandbox needs to mount there" --sandbox vm "$T/t.tar"
	assert_host_untouched

	tree
	rmdir "$T/t/boot/efi" 2>/dev/null || true
	ln -s /etc "$T/t/boot/efi"
	tar_tree
	build_fails "/boot/efi in the rootfs is a symlink or lies below one: the ESP is made only from a real directory of the tree" --sandbox vm "$T/t.tar"
	assert_host_untouched
}
