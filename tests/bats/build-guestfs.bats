#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# The independent check of the offline encryption: the libguestfs appliance's kernel opens
# the LUKS root with its own dm-crypt, e2fsck -fn passes, and the files read back match the
# tarball: contents, owners, modes, times, links, device nodes, xattrs and ACLs.

load ../lib/common

setup() {
	requires root guestfs qemu-img getfattr setfacl
	common_setup
	TAR=$(fixture_tar)
}

teardown() {
	common_teardown
}

# compare_with_tarball IMAGE_TAR: the exported root against the fixture tarball.
compare_with_tarball() {
	mkdir -p "$T/want" "$T/got"
	tar --numeric-owner --xattrs --xattrs-include='*' --acls -xpf "$TAR" -C "$T/want"
	tar --numeric-owner --xattrs --xattrs-include='*' --acls -xpf "$1" -C "$T/got"
	manifest "$T/want" > "$T/want.manifest"
	manifest "$T/got" > "$T/got.manifest"
	# The fixture really has what we mean to compare.
	grep -q 'etc/hello|regular file|640|1234:5678|.*user.cvm=' "$T/want.manifest"
	grep -q 'home/user/acl|directory|.*system.posix_acl_access=' "$T/want.manifest"
	grep -q 'usr/bin/ping|regular empty file|4755|.*security.capability=' "$T/want.manifest"
	grep -q 'dev/null|character special file|666|0:0|0|1:3' "$T/want.manifest"
	diff -u "$T/want.manifest" "$T/got.manifest"
	# Hard links stay hard links.
	[ "$(stat -c %i "$T/got/usr/bin/blob")" = "$(stat -c %i "$T/got/usr/bin/blob-hardlink")" ]
}

@test "guestfs: raw image opens with the key in the appliance's dm-crypt; e2fsck clean; files match" {
	"$CVM_IMAGE" build --distro none "$TAR" -o "$T/out/disk.img"
	CHECK_TIMES="/etc/hello /etc/future" run "$CVM_SRCDIR/tests/lib/guestfs-check" "$T/out/disk.img" raw "$T/out/disk.img.key" "$T/root.tar"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *cryptsetup-open-ok* ]]
	[[ "$output" == *e2fsck-exit=0* ]]
	compare_with_tarball "$T/root.tar"
	# Modification times with their nanoseconds, one past 2038, as the tarball has them
	# (mke2fs -d keeps neither; atime is the build's own reading).
	grep -q 'etc/future|regular file|.*|7258118400|' "$T/want.manifest"
	[[ "$output" == *"times:/sysroot/etc/hello:"*":981173106.123456789"* ]]
	[[ "$output" == *"times:/sysroot/etc/future:"*":7258118400.500000000"* ]]
}

@test "guestfs: qcow2 image opens with the recovery passphrase; e2fsck clean; files match" {
	printf 'a recovery passphrase\n' > "$T/recovery"
	printf 'a recovery passphrase' > "$T/recovery.typed"
	"$CVM_IMAGE" build --distro none --recovery-passphrase-file "$T/recovery" --recovery-iter-time 100 \
		--size 600M "$TAR" -o "$T/out/disk.qcow2"
	run "$CVM_SRCDIR/tests/lib/guestfs-check" "$T/out/disk.qcow2" qcow2 "$T/recovery.typed" "$T/root.tar"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *e2fsck-exit=0* ]]
	compare_with_tarball "$T/root.tar"
}

@test "guestfs: a wrong key does not open the image" {
	"$CVM_IMAGE" build --distro none "$TAR" -o "$T/out/disk.img"
	printf 'not-the-key' > "$T/wrong"
	run "$CVM_SRCDIR/tests/lib/guestfs-check" "$T/out/disk.img" raw "$T/wrong" "$T/root.tar"
	[ "$status" -ne 0 ]
	[[ "$output" != *cryptsetup-open-ok* ]]
	[ ! -e "$T/root.tar" ]
}
