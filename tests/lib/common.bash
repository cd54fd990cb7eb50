# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared helpers for the bats tests: requirements, fixtures, leftover checks.
bats_require_minimum_version 1.5.0


CVM_IMAGE=${CVM_IMAGE:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)/cvm-image}
CVM_SRCDIR=${CVM_SRCDIR:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
# The appliance libguestfs builds on first use, shared by every test (by default it would be
# kept in each test's private $TMPDIR, and built again there).
export LIBGUESTFS_CACHEDIR=${LIBGUESTFS_CACHEDIR:-/var/tmp}
# KVM or TCG for the appliance: cvm-image's own choice (it runs a test guest with KVM first),
# unless the caller sets LIBGUESTFS_BACKEND_SETTINGS. (tests/lib/guestfs-check, which runs
# guestfish, forces TCG itself.)

# requires WHAT...: skip the test, loudly and with the reason, when something it needs is
# missing. With CVM_TEST_NO_SKIP=1 (CI) a missing requirement fails the test instead.
requires() {
	local what reason=
	for what in "$@"; do
		case $what in
		root) [ "$(id -u)" = 0 ] || reason="needs root" ;;
		guestfs)
			command -v guestfish >/dev/null || reason="needs guestfish (libguestfs-tools)"
			ls /boot/vmlinuz-* >/dev/null 2>&1 || reason="needs a kernel in /boot for the libguestfs appliance (linux-image-amd64)"
			;;
		mount)
			local m
			m=$(mktemp -d)
			if mount -t tmpfs -o size=1m tmpfs "$m" 2>/dev/null; then umount "$m"; else reason="needs to mount tmpfs"; fi
			rmdir "$m"
			;;
		*) command -v "$what" >/dev/null || reason="needs the program '$what'" ;;
		esac
		[ -z "$reason" ] || break
	done
	[ -z "$reason" ] && return 0
	if [ "${CVM_TEST_NO_SKIP:-0}" = 1 ]; then
		echo "requirement missing and skipping is not allowed here: $reason" >&2
		return 1
	fi
	echo "# SKIP: $reason" >&3
	skip "$reason"
}

common_setup() {
	T=$BATS_TEST_TMPDIR
	mkdir -p "$T/tmp" "$T/out"
	# The work directory goes to $TMPDIR: a private one, so leftovers are visible.
	export TMPDIR=$T/tmp
}

# The ordinary user that the commands working on image files (inspect, rekey) run as in
# their tests, on fixtures root made: a system user without a home or a login shell, created
# once (ensure_test_user, from a root setup) and kept.
TEST_USER=cvm-image-test
ensure_test_user() {
	id -u "$TEST_USER" >/dev/null 2>&1 ||
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$TEST_USER"
}

# give_user PATH...: each PATH (recursively) owned by $TEST_USER, the directories above it
# traversable, and the test's $TMPDIR writable by it.
give_user() {
	local p d
	for p in "$@" "$TMPDIR"; do
		chown -R "$TEST_USER:" "$p"
		d=$(dirname "$p")
		while [ "$d" != / ]; do
			chmod o+x "$d"
			d=$(dirname "$d")
		done
	done
}

# as_user CMD...: CMD as $TEST_USER, with its groups and capabilities only (none) and
# $TMPDIR kept; what a login user running cvm-image has.
as_user() {
	setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --clear-groups --inh-caps=-all \
		env HOME=/nonexistent TMPDIR="$TMPDIR" "$@"
}

# cvm ARGS...: cvm-image as $TEST_USER (ensure_test_user in setup), on the test's files, given
# to it first: inspect, rekey, secret and boot's checks work on image and key files and need
# no privilege, so their tests run them as a user would. (A test about what cvm-image does as
# root runs "$CVM_IMAGE" itself, and says so in its name.) A suite run by an ordinary user
# runs it as that user.
cvm() {
	if [ "$(id -u)" != 0 ]; then
		"$CVM_IMAGE" "$@"
		return
	fi
	give_user "$T"
	as_user "$CVM_IMAGE" "$@"
}

common_teardown() {
	local m
	# Never leave a test mount behind, even when the test failed half way.
	for m in $(findmnt -rn -o TARGET | grep "^$BATS_TEST_TMPDIR" | sort -r); do
		umount -l "$m" || true
	done
}

# make_tree DIR: a small root filesystem with the things a tarball can carry.
make_tree() {
	local d=$1
	mkdir -p "$d"/{etc,usr/lib,usr/bin,var/empty,home/user,dev}
	printf 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Test rootfs"\n' > "$d/usr/lib/os-release"
	ln -s ../usr/lib/os-release "$d/etc/os-release"
	echo hello > "$d/etc/hello"
	chown 1234:5678 "$d/etc/hello"
	chmod 0640 "$d/etc/hello"
	setfattr -n user.cvm -v "xattr value" "$d/etc/hello"
	setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$d/usr/bin/ping" 2>/dev/null ||
		{ : > "$d/usr/bin/ping"; setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$d/usr/bin/ping"; }
	chmod 4755 "$d/usr/bin/ping"
	head -c 1500000 /dev/urandom > "$d/usr/bin/blob"
	ln "$d/usr/bin/blob" "$d/usr/bin/blob-hardlink"
	truncate -s 50M "$d/var/sparse"
	echo tail >> "$d/var/sparse"
	mkdir -p "$d/home/user/acl"
	chown 1000:1000 "$d/home/user" "$d/home/user/acl"
	chmod 0700 "$d/home/user"
	setfacl -m u:4242:rwx "$d/home/user/acl"
	mkfifo "$d/var/fifo"
	mknod "$d/dev/null" c 1 3
	chmod 0666 "$d/dev/null"
	ln -s /nonexistent "$d/etc/dangling"
	touch -d '2001-02-03 04:05:06.123456789' "$d/etc/hello"
	# Past 2038 (ext4 keeps it in two more bits of epoch), with nanoseconds.
	echo later > "$d/etc/future"
	touch -d '2200-01-01 00:00:00.5' "$d/etc/future"
	printf 'x%.0s' {1..200} > "$d/etc/$(printf 'n%.0s' {1..200})"
}

# make_tar DIR OUT [gzip|xz|zstd]: GNU tar with numeric owners, xattrs and ACLs.
make_tar() {
	local src=$1 out=$2 comp=${3:-}
	local flags=(--numeric-owner --xattrs --xattrs-include='*' --acls --sparse)
	case $comp in
	"") tar "${flags[@]}" -C "$src" -cf "$out" . ;;
	gzip) tar "${flags[@]}" -C "$src" -czf "$out" . ;;
	xz) tar "${flags[@]}" -C "$src" -cJf "$out" . ;;
	zstd) tar "${flags[@]}" -C "$src" --zstd -cf "$out" . ;;
	esac
}

# The fixture tarball, made once per test file.
fixture_tar() {
	if [ ! -f "$BATS_FILE_TMPDIR/rootfs.tar" ]; then
		make_tree "$BATS_FILE_TMPDIR/tree" >&2
		make_tar "$BATS_FILE_TMPDIR/tree" "$BATS_FILE_TMPDIR/rootfs.tar"
	fi
	echo "$BATS_FILE_TMPDIR/rootfs.tar"
}

# assert_no_leftovers DIR...: no work directory in $TMPDIR, no temporary output in DIRs, no
# mount below the test directory.
# hold_lock FILE: an exclusive flock on FILE held in the background (as a running rekey holds
# its image) until HOLDER is killed; returns once it is held, whatever the machine's load
# (a fixed sleep was not always enough under CI's).
hold_lock() {
	local i
	flock --no-fork -x "$1" sleep 120 &
	HOLDER=$!
	for i in $(seq 300); do
		flock -n "$1" true || return 0
		sleep 0.1
	done
	echo "hold_lock: $1 was not locked after 30 s" >&2
	return 1
}

assert_no_leftovers() {
	local d left
	left=$(ls -A "$TMPDIR")
	if [ -n "$left" ]; then
		echo "left in TMPDIR: $left" >&2
		return 1
	fi
	for d in "$@"; do
		left=$(find "$d" -maxdepth 1 -name '.*.tmp-*')
		if [ -n "$left" ]; then
			echo "temporary files left: $left" >&2
			return 1
		fi
	done
	if findmnt -rn -o TARGET | grep -q "^$BATS_TEST_TMPDIR/.*/root"; then
		echo "mount left" >&2
		return 1
	fi
}

# A region of a raw image as its own file (sparse), for tools that take a device.
extract_region() {
	local img=$1 off_mib=$2 len_mib=$3 out=$4
	dd if="$img" of="$out" bs=1M skip="$off_mib" count="$len_mib" conv=sparse status=none
}

# manifest DIR: one line per file with type, mode, owner, size, link target, mtime for
# non-directories, content hash and xattrs (ACLs included), sorted; lost+found left out.
manifest() {
	local d=$1
	(
		cd "$d"
		find . -path ./lost+found -prune -o -printf '%p\n' | LC_ALL=C sort | while read -r p; do
			[ "$p" = . ] && continue
			local line
			line=$(stat -c '%F|%a|%u:%g|%s|%t:%T' "$p")
			if [ -L "$p" ]; then
				line+="|->$(readlink "$p")"
			elif [ -f "$p" ]; then
				line+="|$(stat -c %Y "$p")|$(sha256sum < "$p" | cut -c1-16)"
			fi
			line+="|$(getfattr -h -d -m - -e hex --absolute-names "$p" 2>/dev/null | grep -v '^#' | LC_ALL=C sort | tr '\n' ' ')"
			echo "$p|$line"
		done
	)
}

# install_program TREE PROGRAM: the host's PROGRAM and the libraries it loads, into TREE.
install_program() {
	local bin lib
	bin=$(command -v "$2")
	cp "$bin" "$1/usr/bin/"
	for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
		mkdir -p "$1$(dirname "$lib")"
		cp -L "$lib" "$1$lib"
	done
}

# fixture_image [--tool TOOL] [--compress gzip|zstd] [--fault FAULT] [--hooks DIR]
#               [--iter-time MS]
# The image the inspect and rekey tests start from: tests/lib/boot-tree's synthetic tree for
# TOOL (initramfs-tools or dracut; its fake tool compresses with COMPRESS, default gzip),
# built 300M with the recovery passphrase of $T/recovery in slot 1 (PBKDF2 benchmarked for
# MS, default 50) and CVM_IMAGE_FAULT=FAULT; once per test file and combination, or once per
# test with site hooks (--hooks). Copied to $T/out/disk.img and $T/out/disk.img.key; the
# build's JSON in $T/build.json, its tarball's path in $FIXTURE_TAR.
fixture_image() {
	local tool=initramfs-tools comp=gzip fault= hooks= iter=50 base
	while [ $# -gt 0 ]; do
		case $1 in
		--tool) tool=$2 ;;
		--compress) comp=$2 ;;
		--fault) fault=$2 ;;
		--hooks) hooks=$2 ;;
		--iter-time) iter=$2 ;;
		*) echo "fixture_image: unknown option '$1'" >&2; return 2 ;;
		esac
		shift 2
	done
	base=$BATS_FILE_TMPDIR/img-$tool-$comp-$iter${fault:+-$fault}
	[ -z "$hooks" ] || base=$T/img-hooks
	FIXTURE_TAR=$base/tree.tar
	if [ ! -f "$base/disk.img" ]; then
		mkdir -p "$base"
		"$CVM_SRCDIR/tests/lib/boot-tree" "$base/tree" "$tool" >&2
		echo "$comp" > "$base/tree/etc/fake-compress"
		# busybox has no zstd compressor: the host's, with the libraries it loads.
		[ "$comp" != zstd ] || install_program "$base/tree" zstd
		tar --numeric-owner -C "$base/tree" -cf "$base/tree.tar" .
		CVM_IMAGE_FAULT=$fault "$CVM_IMAGE" -q build --size 300M \
			--recovery-passphrase-file "$T/recovery" --recovery-iter-time "$iter" \
			${hooks:+--hooks-dir "$hooks"} --json "$base/tree.tar" -o "$base/disk.img" \
			> "$base/build.json"
	fi
	cp --sparse=always "$base/disk.img" "$base/disk.img.key" "$T/out/"
	cp "$base/build.json" "$T/build.json"
}
