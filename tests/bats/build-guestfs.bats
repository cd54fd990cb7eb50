#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# The independent check of the offline encryption: the libguestfs appliance's kernel opens
# the LUKS root with its own dm-crypt, e2fsck -fn passes, and the files read back match the
# tarball: contents, owners, modes, times, links, device nodes, xattrs and ACLs.

load ../lib/common

setup() {
	requires root guestfs qemu-img getfattr setfacl setpriv
	common_setup
	TAR=$(fixture_tar)
}

teardown() {
	common_teardown
}

# compare_with_tarball IMAGE_TAR [TARBALL]: the exported root against the fixture tarball (or
# TARBALL, made from the fixture tree and more).
compare_with_tarball() {
	mkdir -p "$T/want" "$T/got"
	tar --numeric-owner --xattrs --xattrs-include='*' --acls -xpf "${2:-$TAR}" -C "$T/want"
	# What guestfs-check described instead of exporting (SPARSE).
	local p
	for p in ${SPARSE:-}; do
		manifest "$T/want" | grep "^.$p|" > "$T/sparse.manifest"
		rm "$T/want$p"
	done
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

# full_tar: $T/full.tar, the fixture tree and everything else of a rootfs that an unpacker can
# get wrong: an SELinux label, three hard links, a 1 GiB sparse file, owners 65534 and
# 4000000000, setgid and sticky directories, a 255-byte name, a long symlink.
full_tar() {
	local d=$T/full
	make_tree "$d"
	setfattr -n security.selinux -v "system_u:object_r:etc_t:s0" "$d/etc/hello"
	ln "$d/usr/bin/blob" "$d/usr/bin/blob-third"
	truncate -s 1G "$d/var/sparse-1g"
	echo end >> "$d/var/sparse-1g"
	echo n > "$d/etc/nobody"
	chown 65534:65534 "$d/etc/nobody"
	echo b > "$d/etc/big-ids"
	chown 4000000000:4000000000 "$d/etc/big-ids"
	mkdir -p "$d/srv/shared" "$d/tmp"
	chmod 2775 "$d/srv/shared"
	chmod 1777 "$d/tmp"
	: > "$d/usr/bin/setgid"
	chmod 2755 "$d/usr/bin/setgid"
	echo x > "$d/etc/$(printf 'l%.0s' {1..255})"
	ln -s "$(printf 'a/%.0s' {1..1000})end" "$d/etc/long-link"
	# Directories their owner may not change or enter: an ordinary user's build must still
	# read them and remove its tree.
	mkdir -p "$d/usr/share/read-only" "$d/var/closed/inner"
	echo r > "$d/usr/share/read-only/file"
	echo c > "$d/var/closed/inner/file"
	chmod 0555 "$d/usr/share/read-only"
	chmod 0000 "$d/var/closed/inner" "$d/var/closed"
	# A user xattr on a file and a directory their owner may not write (the kernel asks for
	# write permission to set one: libarchive sets it before the mode).
	echo ro > "$d/etc/read-only"
	setfattr -n user.ro -v "kept" "$d/etc/read-only" "$d/usr/share/read-only"
	chmod 0444 "$d/etc/read-only"
	make_tar "$d" "$T/full.tar"
	rm -rf --one-file-system "${d:?}"
}

# full_check IMAGE: the image's files against full.tar, field by field.
full_check() {
	# The 1 GiB sparse file is described, not exported: tar-out would send its holes.
	export SPARSE=/var/sparse-1g
	CHECK_TIMES="/etc/hello /etc/future" run "$CVM_SRCDIR/tests/lib/guestfs-check" "$1" raw "$1.key" "$T/root.tar"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *cryptsetup-open-ok* ]]
	[[ "$output" == *e2fsck-exit=0* ]]
	compare_with_tarball "$T/root.tar" "$T/full.tar"
	grep -q 'etc/future|regular file|.*|7258118400|' "$T/want.manifest"
	grep -q 'etc/hello|.*security.selinux=' "$T/want.manifest"
	grep -q 'etc/big-ids|regular file|644|4000000000:4000000000|' "$T/want.manifest"
	grep -q 'srv/shared|directory|2775|' "$T/want.manifest"
	grep -q 'var/closed/inner/file|regular file|644|0:0|2|' "$T/want.manifest"
	grep -q '^./usr/share/read-only|directory|555|.*user.ro=' "$T/want.manifest"
	grep -q '^./etc/read-only|regular file|444|.*user.ro=' "$T/want.manifest"
	grep -q '^./tmp|directory|1777|' "$T/want.manifest"
	grep -q 'etc/long-link|symbolic link|777|0:0|2003|' "$T/want.manifest"
	grep -q 'var/sparse-1g|regular file|644|0:0|1073741828|' "$T/sparse.manifest"
	# In the image: its size, its last bytes, and still a few blocks only.
	[[ "$output" == *"sparse:/sysroot/var/sparse-1g:1073741828:"*":00000000656e640a"* ]]
	[ "$(grep -o 'sparse:/sysroot/var/sparse-1g:1073741828:[0-9]*' <<< "$output" | cut -d: -f4)" -lt 1024 ]
	[ "$(stat -c %i "$T/got/usr/bin/blob")" = "$(stat -c %i "$T/got/usr/bin/blob-third")" ]
	[[ "$output" == *"times:/sysroot/etc/hello:"*":981173106.123456789"* ]]
	[[ "$output" == *"times:/sysroot/etc/future:"*":7258118400.500000000"* ]]
	# Still sparse in the image: the root filesystem holds far less than the 1 GiB.
	[ "$(jq -r .root_filesystem.allocated "$T/build.json")" -lt $((512 * 1024 * 1024)) ]
}

@test "guestfs: raw image, bubblewrap route (root): opens with the key in the appliance's dm-crypt, e2fsck clean, every kind of file equal to the tarball's" {
	full_tar
	"$CVM_IMAGE" build --sandbox bwrap --distro none --json "$T/full.tar" -o "$T/out/disk.img" > "$T/build.json"
	full_check "$T/out/disk.img"
}

@test "guestfs: raw image, bubblewrap route as an ordinary user (a user namespace; owners, nodes, capabilities, labels and ACLs by libext2fs): opens, e2fsck clean, every kind of file equal to the tarball's" {
	ensure_test_user
	full_tar
	give_user "$T"
	as_user "$CVM_IMAGE" build --distro none --json "$T/full.tar" -o "$T/out/disk.img" > "$T/build.json"
	[ "$(jq -r .sandbox "$T/build.json")" = bwrap ]
	[ "$(jq -r .sandbox_user_namespace "$T/build.json")" = true ]
	full_check "$T/out/disk.img"
	assert_no_leftovers "$T/out"
}

@test "guestfs: raw image, appliance route (an ordinary user): opens, e2fsck clean, every kind of file equal to the tarball's" {
	ensure_test_user
	full_tar
	give_user "$T"
	as_user "$CVM_IMAGE" build --sandbox vm --distro none --json "$T/full.tar" -o "$T/out/disk.img" > "$T/build.json"
	[ "$(jq -r .sandbox "$T/build.json")" = vm ]
	full_check "$T/out/disk.img"
}
