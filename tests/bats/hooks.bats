#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Distro detection, hooks and what they write, on small synthetic rootfs trees whose
# update-initramfs, dracut and grub-mkimage are fakes that record their command lines
# (tests/lib/boot-tree). The real tools run in tests/boot/.

load ../lib/common

setup() {
	requires root busybox jq python3
	common_setup
}

teardown() {
	common_teardown
}

# tree_tar TOOL [ID]: the synthetic rootfs as a tarball, made once per file and tool.
tree_tar() {
	local tool=$1 id=${2:-debian} out=$BATS_FILE_TMPDIR/$1-${2:-debian}.tar
	if [ ! -f "$out" ]; then
		rm -rf --one-file-system "${BATS_FILE_TMPDIR:?}/tree-$tool-$id"
		"$CVM_SRCDIR/tests/lib/boot-tree" "$BATS_FILE_TMPDIR/tree-$tool-$id" "$tool" "$id"
		tar --numeric-owner -C "$BATS_FILE_TMPDIR/tree-$tool-$id" -cf "$out" .
	fi
	echo "$out"
}

# build_kept ARGS...: build with the work directory kept in $T/work; sets W to the unpacked
# root as the hooks left it, and J to the --json summary.
build_kept() {
	mkdir -p "$T/work"
	run --separate-stderr "$CVM_IMAGE" -v build --json --keep-workdir --workdir "$T/work" "$@"
	echo "$stderr"
	[ "$status" -eq 0 ]
	J=$output
	W=$(echo "$T"/work/cvm-image.*/root)
	[ -d "$W" ]
}

# golden VARIANT: every file of tests/golden/VARIANT equals the same file of $W, the build's
# UUIDs put in for the placeholders.
golden() {
	local g=$CVM_SRCDIR/tests/golden/$1 f luks fs esp
	luks=$(jq -r .luks.uuid <<<"$J")
	fs=$(jq -r .root_filesystem.uuid <<<"$J")
	esp=$(jq -r .esp.volume_id <<<"$J")
	[ "$(find "$g" -type f | wc -l)" -ge 5 ]
	for f in $(cd "$g" && find . -type f | sort); do
		# The grub lock's hash is random: each file's own, checked in a test of its own.
		local hash
		hash=$(sed -n 's/^password_pbkdf2 root \(grub\.pbkdf2\.sha512\.10000\.[0-9A-F]*\.[0-9A-F]*\)$/\1/p' "$W/$f")
		diff -u <(sed "s/@LUKS_UUID@/$luks/g; s/@LUKS_UUID_NODASH@/${luks//-/}/g; s/@FS_UUID@/$fs/g; s/@ESP_UUID@/$esp/g; s/@GRUB_PBKDF2@/$hash/g" "$g/$f") "$W/$f"
	done
}

@test "hooks: initramfs-tools rootfs: detected, configured (golden files), tools run once per kernel" {
	build_kept --serial-console "$(tree_tar initramfs-tools)" -o "$T/out/a.img"
	[ "$(jq -r .distro <<<"$J")" = debian ]
	[ "$(jq -r .initramfs <<<"$J")" = initramfs-tools ]
	[ "$(jq -c .kernels <<<"$J")" = '["6.1.0-10-amd64","6.1.0-9-amd64"]' ]
	golden initramfs-tools
	# The key file: 0600 in a 0700 directory, holding the key of slot 0.
	local key=$W/etc/cryptsetup-keys.d/luks-$(jq -r .luks.uuid <<<"$J").key
	[ "$(stat -c %a "$key")" = 600 ]
	[ "$(stat -c %a "$W/etc/cryptsetup-keys.d")" = 700 ]
	cmp "$key" "$T/out/a.img.key"
	# Every initramfs has the key and is 0600 (the UMASK setting reached the tool).
	"$CVM_SRCDIR/tests/lib/initrd-members" "$W/boot/initrd.img-6.1.0-10-amd64" > "$T/members"
	grep -q "^cryptroot/keyfiles/cr_root.key 0600 $(sha256sum < "$T/out/a.img.key" | cut -c1-16)$" "$T/members"
	[ "$(stat -c %a "$W/boot/initrd.img-6.1.0-9-amd64")" = 600 ]
	# /boot/efi went to the ESP and was emptied; the hooks' /run left nothing behind.
	[ -z "$(ls -A "$W/boot/efi")" ]
	[ -z "$(ls -A "$W/run")" ]
}

@test "hooks: the ESP holds \\EFI\\BOOT\\BOOTX64.EFI made by the target's grub-mkimage" {
	local uuid
	uuid=$("$CVM_IMAGE" -q build --json "$(tree_tar initramfs-tools)" -o "$T/out/a.img" | jq -r .luks.uuid)
	extract_region "$T/out/a.img" 1 99 "$T/esp"
	MTOOLS_SKIP_CHECK=1 mtype -i "$T/esp" ::/EFI/BOOT/BOOTX64.EFI > "$T/efi"
	[ "$(head -n1 "$T/efi")" = MZFAKE-EFI ]
	# The early config it embeds unlocks this image's LUKS root.
	grep -qx "cryptomount -u ${uuid//-/}" "$T/efi"
	fsck.fat -n "$T/esp"
}

@test "hooks: dracut rootfs: rd.luks.uuid, install_items, dracut --kver per kernel (golden files)" {
	build_kept --kernel-cmdline "quiet mitigations=auto" "$(tree_tar dracut)" -o "$T/out/a.img"
	[ "$(jq -r .initramfs <<<"$J")" = dracut ]
	golden dracut
	"$CVM_SRCDIR/tests/lib/initrd-members" "$W/boot/initrd.img-6.1.0-10-amd64" > "$T/members"
	grep -q "^etc/cryptsetup-keys.d/luks-$(jq -r .luks.uuid <<<"$J").key 0600 $(sha256sum < "$T/out/a.img.key" | cut -c1-16)$" "$T/members"
}

@test "hooks: key-archive: each initramfs ends with the key alone in a plain archive; the tool's copy is zeroed" {
	local tool img key zeros name last
	key=$T/out/a.img.key
	zeros=$(head -c 44 /dev/zero | sha256sum | cut -c1-16)
	for tool in initramfs-tools dracut; do
		rm -rf --one-file-system "${T:?}/work" "${T:?}/out/a.img" "${key:?}"
		build_kept "$(tree_tar "$tool")" -o "$T/out/a.img"
		[[ "$stderr" == *"key-archive: the key into its own archive at the end of each initramfs"* ]]
		[ "$tool" = dracut ] && name=etc/cryptsetup-keys.d/luks-$(jq -r .luks.uuid <<<"$J").key ||
			name=cryptroot/keyfiles/cr_root.key
		for img in "$W"/boot/initrd.img-*-amd64; do
			"$CVM_SRCDIR/tests/lib/initrd-members" --archives "$img" > "$T/archives"
			cat "$T/archives"
			# (initramfs-tools' early archive,) the tool's gzip one with the key zeroed, the
			# key archive at a multiple of 512 holding the key under the same name, 0600.
			[[ "$(cut -d' ' -f1,2 "$T/archives" | uniq | cut -d' ' -f2 | tr '\n' ' ')" == *"gzip plain " ]]
			last=$(tail -n 1 "$T/archives" | cut -d' ' -f1)
			[ $((last % 512)) -eq 0 ]
			grep -qx "[0-9]* gzip $name 0600 $zeros" "$T/archives"
			[ "$(grep -c "^$last " "$T/archives")" -eq 1 ]
			grep -qx "$last plain $name 0600 $(sha256sum < "$key" | cut -c1-16)" "$T/archives"
			# The key itself in the file only once, in the clear at the end: the gzip
			# archive decompressed holds no copy.
			[ "$(grep -c "$(cat "$key")" <(python3 -c 'import sys, zlib; d = open(sys.argv[1], "rb").read(); i = d.index(b"\x1f\x8b"); sys.stdout.buffer.write(zlib.decompressobj(31).decompress(d[i:]))' "$img"))" -eq 0 ]
			[ "$(stat -c %a "$img")" = 600 ]
		done
		# What the kernel unpacks: the key, where the tool looks for it.
		"$CVM_SRCDIR/tests/lib/initrd-members" "$W/boot/initrd.img-6.1.0-10-amd64" > "$T/members"
		grep -qx "$name 0600 $(sha256sum < "$key" | cut -c1-16)" "$T/members"
		# inspect agrees.
		run "$CVM_IMAGE" inspect "$T/out/a.img" --key-file "$key"
		[ "$status" -eq 0 ] || { echo "$output"; false; }
		[[ "$output" == *"initramfs 6.1.0-10-amd64"*"1 key member (mode 0600) holding the key"* ]]
	done
	# CVM_IMAGE_FAULT=no-key-archive: left as the tool made it (what rekey's tests of the
	# whole-file path start from).
	rm -rf --one-file-system "${T:?}/work" "${T:?}/out/a.img" "${key:?}"
	CVM_IMAGE_FAULT=no-key-archive build_kept "$(tree_tar initramfs-tools)" -o "$T/out/a.img"
	"$CVM_SRCDIR/tests/lib/initrd-members" --archives "$W/boot/initrd.img-6.1.0-10-amd64" > "$T/archives"
	[ "$(cut -d' ' -f2 "$T/archives" | uniq | tr '\n' ' ')" = "plain gzip " ]
	grep -qx "[0-9]* gzip cryptroot/keyfiles/cr_root.key 0600 $(sha256sum < "$key" | cut -c1-16)" "$T/archives"
}

# fedora_tar: a synthetic RHEL-like rootfs (grub2-mkimage, dracut, no dpkg) as a tarball.
fedora_tar() {
	local d=$T/fedora
	"$CVM_SRCDIR/tests/lib/boot-tree" "$d" dracut rhel
	mv "$d/usr/bin/grub-mkimage" "$d/usr/bin/grub2-mkimage"
	printf 'ID="rhel"\nID_LIKE="fedora"\n' > "$d/etc/os-release"
	tar --numeric-owner -C "$d" -cf "$T/fedora.tar" .
	echo "$T/fedora.tar"
}

@test "hooks: fedora-like rootfs: grub2 paths and tool prefix, dracut" {
	build_kept "$(fedora_tar)" -o "$T/out/a.img"
	[ "$(jq -r .distro <<<"$J")" = fedora ]
	[ -f "$W/boot/grub2/grub.cfg" ]
	[ ! -e "$W/boot/grub/grub.cfg" ]
	grep -q '^grub2-mkimage .* -p /boot/grub2 ' "$W/var/log/fake/grub-mkimage"
	grep -qx 'set prefix=($root)/boot/grub2' "$W/var/log/fake/early.cfg"
}

@test "hooks: ubuntu inherits debian; --distro overrides detection" {
	local d=$T/u
	"$CVM_SRCDIR/tests/lib/boot-tree" "$d" initramfs-tools ubuntu
	tar --numeric-owner -C "$d" -cf "$T/u.tar" .
	run --separate-stderr "$CVM_IMAGE" build --json "$T/u.tar" -o "$T/out/a.img"
	[ "$status" -eq 0 ]
	[ "$(jq -r .distro <<<"$output")" = ubuntu ]
	run --separate-stderr "$CVM_IMAGE" build --distro debian --json "$T/u.tar" -o "$T/out/b.img"
	[ "$(jq -r .distro <<<"$output")" = debian ]
}

@test "hooks: order, override by name, masking, exit 77, and the CVM_ environment" {
	local s=$T/site
	mkdir -p "$s/hooks/configure" "$s/hooks/initramfs" "$s/hooks/finalize" "$s/hooks/bootloader"
	# Each records its name: the order they ran in.
	for h in configure/10-first configure/99-last configure/55-between initramfs/10-skip; do
		printf '#!/bin/sh\necho %s >> /var/log/order\n' "$h" > "$s/hooks/$h"
	done
	printf '#!/bin/sh\necho initramfs/10-skip >> /var/log/order\nexit 77\n' > "$s/hooks/initramfs/10-skip"
	# Replaces the shared 50-default-grub; masks the initramfs check.
	printf '#!/bin/sh\nset -e\nmkdir -p /etc/default\necho site-grub > /etc/default/grub\necho configure/50-default-grub-site >> /var/log/order\n' \
		> "$s/hooks/configure/50-default-grub"
	: > "$s/hooks/finalize/50-check-initramfs"
	printf '#!/bin/sh\nenv | grep ^CVM_ | sort > /var/log/env\numask > /var/log/umask\ncat > /var/log/stdin\nls /proc/self >/dev/null && echo proc-ok > /var/log/proc\n' \
		> "$s/hooks/bootloader/90-env"
	chmod +x "$s"/hooks/*/*
	chmod -x "$s/hooks/finalize/50-check-initramfs"
	build_kept --hooks-dir "$s" "$(tree_tar initramfs-tools)" -o "$T/out/a.img"
	diff -u - "$W/var/log/order" <<-EOF
	configure/10-first
	configure/50-default-grub-site
	configure/55-between
	configure/99-last
	initramfs/10-skip
	EOF
	[ "$(cat "$W/etc/default/grub")" = site-grub ]
	[[ "$stderr" == *"hook initramfs/10-skip: not applicable"* ]]
	[[ "$stderr" == *"hook finalize/50-check-initramfs: masked by '$s/hooks/finalize/50-check-initramfs'"* ]]
	# The documented variables, with the build's values; nothing of the host's environment.
	grep -qx "CVM_LUKS_UUID=$(jq -r .luks.uuid <<<"$J")" "$W/var/log/env"
	grep -qx "CVM_PHASE=bootloader" "$W/var/log/env"
	grep -qx "CVM_KERNEL_VERSIONS=6.1.0-10-amd64 6.1.0-9-amd64" "$W/var/log/env"
	grep -qx "CVM_KEY_FILE=/etc/cryptsetup-keys.d/luks-$(jq -r .luks.uuid <<<"$J").key" "$W/var/log/env"
	grep -qx "CVM_MAPPER_NAME=cr_root" "$W/var/log/env"
	run ! grep -q "^CVM_IMAGE=\|^CVM_SRCDIR=" "$W/var/log/env"
	[ "$(cat "$W/var/log/umask")" = 0077 ]
	[ ! -s "$W/var/log/stdin" ]
	[ "$(cat "$W/var/log/proc")" = proc-ok ]
}

@test "hooks: hooks list shows the merge: replaced and masked hooks, the directories in order" {
	local s=$T/site
	mkdir -p "$s/hooks/configure" "$s/hooks/finalize"
	printf '#!/bin/sh\n' > "$s/hooks/configure/50-default-grub"
	chmod +x "$s/hooks/configure/50-default-grub"
	: > "$s/hooks/finalize/50-check-initramfs"
	touch "$s/hooks/configure/60-backup~"
	run "$CVM_IMAGE" hooks list --distro ubuntu --initramfs initramfs-tools --hooks-dir "$s"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"50-default-grub          $s/hooks/configure/50-default-grub"* ]]
	[[ "$output" == *"(replaces $CVM_SRCDIR/distro/common/hooks/configure/50-default-grub)"* ]]
	[[ "$output" == *"50-check-initramfs       masked by $s/hooks/finalize/50-check-initramfs"* ]]
	[[ "$output" != *backup* ]]
	# common, the tool, debian (inherited), ubuntu, the site: in that order.
	[ "$(grep -n "^  $CVM_SRCDIR/distro/\|^  $s" <<<"$output" | cut -d: -f2 | xargs -n1 basename | tr '\n' ' ')" = "common initramfs-tools debian ubuntu site " ]
	run "$CVM_IMAGE" hooks list
	[[ "$output" == *"ubuntu       initramfs auto             inherits debian"* ]]
	run --separate-stderr "$CVM_IMAGE" hooks list --distro debian
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"give --initramfs"* ]]
	run --separate-stderr "$CVM_IMAGE" hooks list --distro nosuch --initramfs dracut
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"unknown distro 'nosuch'"* ]]
}

@test "hooks: a failing hook fails the build with its name and output; nothing left, nothing mounted" {
	local s=$T/site
	mkdir -p "$s/hooks/initramfs"
	printf '#!/bin/sh\necho "some context"\necho "the reason it failed" >&2\nexit 3\n' > "$s/hooks/initramfs/20-broken"
	chmod +x "$s/hooks/initramfs/20-broken"
	run --separate-stderr "$CVM_IMAGE" build --hooks-dir "$s" "$(tree_tar initramfs-tools)" -o "$T/out/a.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"hook initramfs/20-broken ('$s/hooks/initramfs/20-broken') failed with exit status 3:"* ]]
	[[ "$stderr" == *"the reason it failed"* ]]
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
	! findmnt -rn -o TARGET | grep -q "$T"
}

@test "hooks: a hook that is not executable is an error in the prepare stage" {
	local s=$T/site
	mkdir -p "$s/hooks/configure"
	echo 'echo hi' > "$s/hooks/configure/20-noexec"
	run --separate-stderr "$CVM_IMAGE" build --hooks-dir "$s" "$(tree_tar initramfs-tools)" -o "$T/out/a.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"hook '$s/hooks/configure/20-noexec' is not executable"* ]]
	[[ "$stderr" != *"] unpack:"* ]]
	assert_no_leftovers "$T/out"
}

@test "hooks: SIGINT during a hook kills everything in its sandbox, even what ignores SIGTERM" {
	local s=$T/site
	mkdir -p "$s/hooks/configure"
	printf '#!/bin/sh\necho started > /var/log/slow\n(trap "" TERM INT HUP; exec sleep 301) &\nsleep 300\n' > "$s/hooks/configure/20-slow"
	chmod +x "$s/hooks/configure/20-slow"
	"$CVM_IMAGE" -v build --hooks-dir "$s" "$(tree_tar initramfs-tools)" -o "$T/out/a.img" 2> "$T/stderr" &
	local pid=$! i rc=0
	for i in $(seq 300); do
		pgrep -f "^sleep 301$" >/dev/null && pgrep -f "^sleep 300$" >/dev/null && break
		sleep 0.1
	done
	pgrep -f "^sleep 301$" >/dev/null
	kill -INT "$pid"
	wait "$pid" || rc=$?
	cat "$T/stderr"
	[ "$rc" -eq 1 ]
	grep -q "error: interrupted while running hook configure/20-slow" "$T/stderr"
	# The kernel kills the rest of the sandbox's PID namespace when its PID 1 dies, after
	# bwrap: under load that can take a moment after cvm-image has returned (seen in CI).
	for i in $(seq 50); do
		pgrep -f "^sleep 30[01]$" >/dev/null || break
		sleep 0.1
	done
	run ! pgrep -f "^sleep 30[01]$"
	run ! pgrep -f "bwrap.*$TMPDIR"
	[ -z "$(findmnt -rn -o TARGET | grep "$T")" ]
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

# refused_in_prepare TREE MESSAGE: a build of TREE fails (exit 1) in the prepare stage, before
# anything is unpacked, saying MESSAGE, and leaves nothing.
refused_in_prepare() {
	tar --numeric-owner -C "$1" -cf "$T/t.tar" .
	run --separate-stderr "$CVM_IMAGE" build "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"$2"* ]]
	[[ "$stderr" != *"] unpack:"* ]]
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

@test "hooks: missing pieces fail in the prepare stage and say what to install" {
	local d=$T/t
	check() { # what-to-remove expected-message
		rm -rf --one-file-system "${d:?}"
		"$CVM_SRCDIR/tests/lib/boot-tree" "$d" initramfs-tools
		rm -rf --one-file-system "${d:?}"/$1
		refused_in_prepare "$d" "$2"
	}
	check 'boot/vmlinuz-*' "the rootfs has no '/boot/vmlinuz-*' (needed by distro 'debian'): install 'linux-image-amd64' in the rootfs"
	check usr/sbin/cryptsetup "the rootfs has no '/usr/sbin/cryptsetup' (needed by distro 'debian'): install 'cryptsetup' in the rootfs"
	check usr/lib/grub/x86_64-efi "install 'grub-efi-amd64-bin' in the rootfs"
	check usr/share/initramfs-tools/hooks/cryptroot "(needed by initramfs-tools): install 'cryptsetup-initramfs' in the rootfs"
	check usr/sbin/update-initramfs "the rootfs has no initramfs tool: install initramfs-tools (with cryptsetup-initramfs) or dracut in the rootfs"
}

@test "hooks: dracut without systemd-cryptsetup: refused in prepare, naming the package of the release" {
	local d=$T/t v want
	for v in 13 12 ''; do
		case $v in
		12) want="(needed by dracut on distro 'debian' 12): install 'systemd' in the rootfs" ;;
		13) want="(needed by dracut on distro 'debian' 13): install 'systemd-cryptsetup' in the rootfs" ;;
		'') want="(needed by dracut on distro 'debian'): install 'systemd-cryptsetup' in the rootfs" ;;
		esac
		rm -rf --one-file-system "${d:?}"
		"$CVM_SRCDIR/tests/lib/boot-tree" "$d" dracut
		[ -z "$v" ] || printf 'VERSION_ID="%s"\n' "$v" >> "$d/etc/os-release"
		# With it, the release builds.
		tar --numeric-owner -C "$d" -cf "$T/t.tar" .
		"$CVM_IMAGE" build "$T/t.tar" -o "$T/out/a.img"
		rm -f "$T/out/a.img" "$T/out/a.img.key"
		rm "$d/usr/lib/systemd/systemd-cryptsetup"
		refused_in_prepare "$d" "the rootfs has no '/usr/lib/systemd/systemd-cryptsetup' $want"
	done
}

@test "hooks: an unknown distro without --distro says what to do" {
	local d=$T/t
	"$CVM_SRCDIR/tests/lib/boot-tree" "$d" initramfs-tools plan9
	tar --numeric-owner -C "$d" -cf "$T/t.tar" .
	run --separate-stderr "$CVM_IMAGE" build "$T/t.tar" -o "$T/out/a.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"no distro definition matches the rootfs (ID=plan9): give --distro ID (one of: debian, fedora, ubuntu), or --distro none"* ]]
	run --separate-stderr "$CVM_IMAGE" build --distro nosuch "$T/t.tar" -o "$T/out/a.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"unknown distro 'nosuch'"* ]]
	assert_no_leftovers "$T/out"
}

@test "hooks: an os-release that only a shell would understand is refused, not run" {
	local d=$T/t
	"$CVM_SRCDIR/tests/lib/boot-tree" "$d" initramfs-tools
	printf 'ID=$(touch /tmp/cvm-pwned)\n' > "$d/etc/os-release"
	tar --numeric-owner -C "$d" -cf "$T/t.tar" .
	run --separate-stderr "$CVM_IMAGE" build "$T/t.tar" -o "$T/out/a.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"os-release, line 1: not os-release syntax"* ]]
	[ ! -e /tmp/cvm-pwned ]
}

@test "hooks: symlinks in the tarball cannot send cvm-image's writes to the build host" {
	local d=$T/t host
	host=$(mktemp -d /var/tmp/cvm-host.XXXXXX)
	mkdir -p "$host/etc"
	"$CVM_SRCDIR/tests/lib/boot-tree" "$d" initramfs-tools
	# The same absolute paths inside the root: where the links resolve inside it.
	mkdir -p "$d$host/etc"
	# /etc/cryptsetup-keys.d and /etc/fstab would land in $host/etc if followed on the host.
	ln -s "$host/etc" "$d/etc/cryptsetup-keys.d"
	rm "$d/etc/fstab"
	ln -s "$host/etc/fstab" "$d/etc/fstab"
	tar --numeric-owner -C "$d" -cf "$T/t.tar" .
	mkdir -p "$T/work"
	run --separate-stderr "$CVM_IMAGE" build --keep-workdir --workdir "$T/work" "$T/t.tar" -o "$T/out/a.img"
	echo "$stderr"
	local left
	left=$(ls -A "$host/etc")
	rm -rf --one-file-system "${host:?}"
	[ -z "$left" ]
	# Resolved inside the root, as the guest will see them.
	[ "$status" -eq 0 ]
	ls "$T"/work/cvm-image.*/root/"$host/etc"/luks-*.key
}

@test "hooks: --root-password-file, --ssh-authorized-keys, --hostname" {
	printf 's3cret pass\n' > "$T/pw"
	echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3kHhJ2qE1yU0cFh9lP0r2c0q0XbXbq0Xq7z5cXzQ1a test@host" > "$T/keys"
	build_kept --root-password-file "$T/pw" --ssh-authorized-keys "$T/keys" --hostname guest-1 \
		"$(tree_tar initramfs-tools)" -o "$T/out/a.img"
	local hash
	hash=$(grep '^root:' "$W/etc/shadow" | cut -d: -f2)
	[[ "$hash" == '$6$'* ]]
	python3 -c 'import crypt, sys; sys.exit(crypt.crypt("s3cret pass", sys.argv[1]) != sys.argv[1])' "$hash" 2>/dev/null
	grep -q '^daemon:\*:' "$W/etc/shadow"
	[ "$(stat -c '%a %u:%g' "$W/etc/shadow")" = "640 0:42" ]
	cmp "$T/keys" "$W/root/.ssh/authorized_keys"
	[ "$(stat -c %a "$W/root/.ssh/authorized_keys") $(stat -c %a "$W/root/.ssh")" = "600 700" ]
	[ "$(cat "$W/etc/hostname")" = guest-1 ]
	grep -qx '127.0.1.1	guest-1' "$W/etc/hosts"
	run ! grep -q old-name "$W/etc/hosts"
	# The password is in no log.
	[[ "$stderr" != *"s3cret"* ]]
}

@test "hooks: bad boot options are usage errors" {
	local tar
	tar=$(tree_tar initramfs-tools)
	run --separate-stderr "$CVM_IMAGE" build --kernel-cmdline 'quiet; reboot' "$tar" -o "$T/out/a.img"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"invalid --kernel-cmdline"* ]]
	run --separate-stderr "$CVM_IMAGE" build --hostname 'bad_name!' "$tar" -o "$T/out/a.img"
	[ "$status" -eq 2 ]
	echo nokey > "$T/keys"
	run --separate-stderr "$CVM_IMAGE" build --ssh-authorized-keys "$T/keys" "$tar" -o "$T/out/a.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"holds no SSH public key"* ]]
	run --separate-stderr "$CVM_IMAGE" build --hooks-dir "$T/nope" "$tar" -o "$T/out/a.img"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"hooks directory '$T/nope': No such file or directory"* ]]
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}

# pbkdf2_matches FILE PASSWORD: the password_pbkdf2 line of FILE verifies PASSWORD, as grub
# checks it (PBKDF2-HMAC-SHA512 of the password with the salt).
pbkdf2_matches() {
	python3 - "$1" "$2" <<-'EOF'
	import hashlib, re, sys
	m = re.search(r'^password_pbkdf2 root grub\.pbkdf2\.sha512\.(\d+)\.([0-9A-F]+)\.([0-9A-F]+)$', open(sys.argv[1]).read(), re.M)
	it, salt, want = int(m.group(1)), bytes.fromhex(m.group(2)), bytes.fromhex(m.group(3))
	sys.exit(hashlib.pbkdf2_hmac('sha512', sys.argv[2].encode(), salt, it, len(want)) != want)
	EOF
}

@test "hooks: grub is locked: superusers with an unknown password, entries --unrestricted, the early config too" {
	build_kept "$(tree_tar initramfs-tools)" -o "$T/out/a.img"
	local cfg=$W/boot/grub/grub.cfg early=$W/var/log/fake/early.cfg
	grep -qx 'set superusers="root"' "$cfg"
	grep -qx 'set superusers="root"' "$early"
	grep -qE '^password_pbkdf2 root grub\.pbkdf2\.sha512\.10000\.[0-9A-F]{128}\.[0-9A-F]{128}$' "$cfg"
	grep -qE '^password_pbkdf2 root grub\.pbkdf2\.sha512\.10000\.[0-9A-F]{128}\.[0-9A-F]{128}$' "$early"
	# The lock comes before anything that could stop the early config, without comments
	# (grub's parser of the embedded config does not take them).
	[ "$(head -n 1 "$early")" = 'set superusers="root"' ]
	run ! grep -q '^#' "$early"
	[ "$(grep -c '^menuentry ' "$cfg")" -eq 2 ]
	[ "$(grep -c '^menuentry .* --unrestricted ' "$cfg")" -eq 2 ]
	# Random: the two configs' hashes differ, and so do another build's.
	[ "$(grep ^password_pbkdf2 "$cfg")" != "$(grep ^password_pbkdf2 "$early")" ]
	local first
	first=$(grep ^password_pbkdf2 "$cfg")
	mkdir -p "$T/work2"
	run "$CVM_IMAGE" -q build --keep-workdir --workdir "$T/work2" "$(tree_tar initramfs-tools)" -o "$T/out/b.img"
	[ "$status" -eq 0 ]
	[ "$(grep ^password_pbkdf2 "$T"/work2/cvm-image.*/root/boot/grub/grub.cfg)" != "$first" ]
	# The grub module that checks it is in the EFI binary.
	grep -q ' password_pbkdf2$' "$W/var/log/fake/grub-mkimage"
	# No (initramfs) shell: panic=-1 on the kernel command line, kept for update-grub.
	grep -q '^	linux .* panic=-1$' "$cfg"
	grep -q '^GRUB_CMDLINE_LINUX=".*panic=-1"$' "$W/etc/default/grub"
}

@test "hooks: Debian: the guest's own update-grub keeps grub locked and bootable (10_linux diverted and wrapped, the lock in /etc/grub.d)" {
	build_kept "$(tree_tar initramfs-tools)" -o "$T/out/a.img"
	local cfg=$W/boot/grub/grub.cfg
	# grub-common's 10_linux diverted (package upgrades put theirs there), a wrapper in its place.
	grep -qx 'dpkg-divert --quiet --local --rename --divert /usr/lib/cvm-image/grub.d/10_linux --add /etc/grub.d/10_linux' \
		"$W/var/log/fake/dpkg-divert"
	grep -q 'Generating grub configuration' "$W/usr/lib/cvm-image/grub.d/10_linux"
	[ "$(stat -c %a "$W/etc/grub.d/10_linux")" = 755 ]
	[ "$(stat -c %a "$W/etc/grub.d/01_cvm-image-lock")" = 700 ]
	# What update-grub would write with them: the lock (grub.cfg's own), then the distro's
	# entries, each --unrestricted but the recovery one.
	"$CVM_SRCDIR/tests/lib/in-target" "$W" /etc/grub.d/01_cvm-image-lock > "$T/lock"
	diff -u <(grep -E '^(set superusers|export superusers|password_pbkdf2)' "$cfg") "$T/lock"
	"$CVM_SRCDIR/tests/lib/in-target" "$W" /etc/grub.d/10_linux > "$T/entries"
	cat "$T/entries"
	[ "$(grep -cE '^\s*(menuentry|submenu) ' "$T/entries")" -eq 4 ]
	[ "$(grep -cE '^\s*(menuentry|submenu) .* --unrestricted \{$' "$T/entries")" -eq 3 ]
	grep -qE "^menuentry 'Synthetic GNU/Linux' .*'gnulinux-simple-x' --unrestricted \{$" "$T/entries"
	grep -qE "^\s+menuentry .*'gnulinux-6.1.0-10-amd64-recovery-x' \{$" "$T/entries"
	# A failing generator fails update-grub as before.
	printf '#!/bin/sh\nexit 3\n' > "$W/usr/lib/cvm-image/grub.d/10_linux"
	run "$CVM_SRCDIR/tests/lib/in-target" "$W" /etc/grub.d/10_linux
	[ "$status" -eq 3 ]
	# grub's postinst: grub-install writes the removable path too and leaves NVRAM alone, and
	# runs at all, since the ESP has EFI/debian.
	grep -qx 'grub-efi-amd64 grub2/force_efi_extra_removable boolean true' "$W/var/log/fake/debconf-selections"
	grep -qx 'grub-efi-amd64 grub2/update_nvram boolean false' "$W/var/log/fake/debconf-selections"
	extract_region "$T/out/a.img" 1 99 "$T/esp"
	MTOOLS_SKIP_CHECK=1 mdir -i "$T/esp" ::/EFI/debian
	# Debian 13's postinst looks for grub-install's own copy of the core image instead.
	MTOOLS_SKIP_CHECK=1 mtype -i "$T/esp" ::/EFI/BOOT/BOOTX64.EFI > "$T/efi"
	cmp "$T/efi" "$W/boot/grub/x86_64-efi/core.efi"
	# The early config locks too, and the build did not warn.
	grep -qx 'set superusers="root"' "$W/var/log/fake/early.cfg"
	[ "$(jq -c .warnings <<<"$J")" = '[]' ]
	[[ "$stderr" != *warning* ]]
}

@test "hooks: a distro whose grub-mkconfig cannot be made to write --unrestricted entries: bootable, unlocked early, and the build says so" {
	build_kept "$(fedora_tar)" -o "$T/out/a.img"
	[[ "$stderr" == *"warning: hook bootloader/50-grub-efi: grub's menu editor and command line are locked only until the guest's own grub-mkconfig"* ]]
	[ "$(jq -r '.warnings | length' <<<"$J")" -eq 1 ]
	[[ "$(jq -r '.warnings[0]' <<<"$J")" == *"no hook of distro 'fedora' makes its boot entries --unrestricted"* ]]
	# Nothing in the early config that a regenerated grub.cfg would trip on; no lock in grub.d.
	run ! grep -q superusers "$W/var/log/fake/early.cfg"
	[ ! -e "$W/etc/grub.d/01_cvm-image-lock" ]
	# The grub.cfg written at build still locks, its entries unrestricted.
	grep -qx 'set superusers="root"' "$W/boot/grub2/grub.cfg"
	[ "$(grep -c '^menuentry .* --unrestricted ' "$W/boot/grub2/grub.cfg")" -eq 2 ]
}

@test "hooks: what a hook says in \$CVM_STATE/warnings: printed as a warning, control characters replaced, in --json" {
	local h=$T/hooks
	mkdir -p "$h/hooks/configure"
	printf '#!/bin/sh\nprintf "first one\\n\\033[31mred\\n" >> "$CVM_STATE/warnings"\n' > "$h/hooks/configure/90-warn"
	chmod 0755 "$h/hooks/configure/90-warn"
	build_kept --hooks-dir "$h" "$(tree_tar initramfs-tools)" -o "$T/out/a.img"
	[[ "$stderr" == *"warning: hook configure/90-warn: first one"* ]]
	[[ "$stderr" == *"warning: hook configure/90-warn: ?[31mred"* ]]
	[[ "$stderr" != *$'\033'* ]]
	[ "$(jq -c .warnings <<<"$J")" = '["first one","?[31mred"]' ]
	# Taken once: no later hook repeats them.
	[ "$(grep -c 'first one' <<<"$stderr")" -eq 1 ]
}

@test "hooks: --grub-password-file: grub.cfg's hash opens with it, the ESP's early config's does not" {
	printf 'grub secret\n' > "$T/gpw"
	build_kept --grub-password-file "$T/gpw" "$(tree_tar initramfs-tools)" -o "$T/out/a.img"
	pbkdf2_matches "$W/boot/grub/grub.cfg" 'grub secret'
	run ! pbkdf2_matches "$W/boot/grub/grub.cfg" 'grub secreT'
	run ! pbkdf2_matches "$W/var/log/fake/early.cfg" 'grub secret'
	# The password is in no log, no file of the tree, nothing on the ESP.
	[[ "$stderr" != *"grub secret"* ]]
	run ! grep -rq "grub secret" "$W"
	extract_region "$T/out/a.img" 1 99 "$T/esp"
	run ! grep -aq "grub secret" "$T/esp"
}

@test "hooks: dracut: no emergency shell (rd.shell=0 rd.emergency=poweroff)" {
	build_kept "$(tree_tar dracut)" -o "$T/out/a.img"
	grep -q '^	linux .* rd.shell=0 rd.emergency=poweroff panic=-1$' "$W/boot/grub/grub.cfg"
}

@test "hooks: a bad --grub-password-file is a usage error, nothing left" {
	local tar
	tar=$(tree_tar initramfs-tools)
	: > "$T/empty"
	run --separate-stderr "$CVM_IMAGE" build --grub-password-file "$T/empty" "$tar" -o "$T/out/a.img"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"passphrase file '$T/empty' is empty"* ]]
	run --separate-stderr "$CVM_IMAGE" build --grub-password-file "$T/none" "$tar" -o "$T/out/a.img"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"cannot open '$T/none': No such file or directory"* ]]
	head -c 600 /dev/zero | tr '\0' x > "$T/long"
	run --separate-stderr "$CVM_IMAGE" build --grub-password-file "$T/long" "$tar" -o "$T/out/a.img"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"'$T/long' is longer than 512 bytes"* ]]
	[ -z "$(ls -A "$T/out")" ]
	assert_no_leftovers "$T/out"
}
