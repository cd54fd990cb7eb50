#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot tests (tests/boot/lib.bash) of the initramfs-tools images, Debian 12 and 13: maintained in
# the guest as Debian's kernel and grub packages do on an upgrade, rebooted, rekeyed offline and
# booted again (Debian 12: a rekey stopped dead, booted, resumed; Debian 13: a --reencrypt
# --new-uuid copy); a Debian 12 image built by an ordinary user (bubblewrap in a user
# namespace); the root device missing; a LUKS header swapped after grub; a rekey
# interrupted by ^C. 'make check-boot' runs this file
# beside dracut.bats, one lane each (a boot keeps about one host core busy).

load lib

@test "boot: Debian 12 initramfs-tools, maintained in the guest (grub's postinst: grub-install, update-grub; the kernel's zz-update-grub), rebooted, a rekey stopped dead (boots with the old key) and resumed: one prompt, locked, pinned" {
	REKEY=stopped maintained initramfs-tools "$MAINTAIN_GRUB"
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /')" = /dev/mapper/cr_root ]
	[[ "$(out 'cat /proc/cmdline')" == *"root=UUID=$(jq -r .root_filesystem.uuid "$BOOT_DIR/initramfs-tools.json")"* ]]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"root=UUID=$(jq -r .root_filesystem.uuid "$BOOT_DIR/initramfs-tools.json")"* ]]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"panic=-1"* ]]
}

@test "boot: Debian 13 initramfs-tools, maintained in the guest (kernel and grub postinst: update-initramfs, update-grub, grub-install), rebooted, a --reencrypt --new-uuid copy: one prompt, locked, pinned to its own volume key" {
	REKEY=reencrypt maintained trixie-initramfs-tools
	R=$(cat "$T/boot-1.json")
	[ "$(out 'findmnt -no SOURCE /' .after_reboot)" = /dev/mapper/cr_root ]
	[[ "$(out 'cat /proc/cmdline' .after_reboot)" == *"panic=-1"* ]]
}

@test "boot: Debian 12 initramfs-tools built by an ordinary user (bubblewrap in a user namespace, no privilege): one prompt, locked, pinned; the tarball's owners and setuid/setgid bits in the guest" {
	rootfs_for_user initramfs-tools
	as_user "$CVM_IMAGE" build --serial-console --root-password-file "$T/root.pw" \
		--json "$T/rootfs.tar" -o "$T/out/u.qcow2" > "$T/u.json"
	[ "$(jq -r .sandbox "$T/u.json")" = bwrap ]
	[ "$(jq -r .sandbox_user_namespace "$T/u.json")" = true ]
	# Files whose owner or group is not root's, with setuid or setgid bits: as the tarball
	# has them ("-rw-r----- 0/42 etc/shadow").
	local files=(etc/shadow etc/gshadow usr/bin/chage usr/bin/gpasswd usr/sbin/unix_chkpwd var/mail var/log/journal)
	tar --numeric-owner --no-recursion -tvf "$T/rootfs.tar" "${files[@]/#/./}" |
		awk '{ sub("^\\./", "", $6); sub("/$", "", $6); print $1, $2, $6 }' | sort > "$T/want"
	[ "$(wc -l < "$T/want")" -eq 7 ]
	grep -q '^-rw-r----- 0/42 etc/shadow$' "$T/want"
	boot "$T/out/u.qcow2" "$T/out/u.qcow2.key" --try-menu \
		--run "cd / && stat -c '%A %u/%g %n' ${files[*]} | sort"
	logged_in_locked
	diff -u "$T/want" <(out "cd / && stat -c '%A %u/%g %n' ${files[*]} | sort")
}

@test "boot: initramfs-tools: the root device missing: the guest powers off at once, no (initramfs) shell (Debian 12 and 13)" {
	local v
	for v in initramfs-tools trixie-initramfs-tools; do
		boot_direct "$v" rootdelay=10
		[ "$RC" -eq 0 ] # qemu ended by itself (-no-reboot): not a hang, not a shell
		# cryptroot gives up waiting for the device; the pin check, next, finds nothing
		# opened and powers off (initramfs-tools' own panic= reboot would come after).
		grep -q "cvm-image: refusing the root device: 0 opened devices for LUKS UUID .*; powering off" "$T/direct.log"
		assert_no_initramfs_shell "$T/direct.log"
	done
}

@test "boot: initramfs-tools: a LUKS header swapped after grub: the pin refuses it and the guest powers off (Debian 12 and 13)" {
	swapped_header_refused initramfs-tools trixie-initramfs-tools
}

@test "rekey: a ^C during a qcow2 rekey, before its first header write: nothing changed, nothing left" {
	local img sum rc=0
	img=$(image initramfs-tools)
	cp --sparse=always "$img" "$T/rk.qcow2"
	cp "$img.key" "$T/rk.qcow2.key"
	sum=$(sha256sum < "$T/rk.qcow2")
	# The signal arrives after the backup, while the image is open through its FUSE export.
	CVM_IMAGE_FAULT=signal-after-backup "$CVM_IMAGE" -v rekey "$T/rk.qcow2" --key-file "$T/rk.qcow2.key" 2> "$T/stderr" || rc=$?
	cat "$T/stderr"
	[ "$rc" -eq 1 ]
	grep -q 'interrupted after step backup' "$T/stderr"
	[ "$(sha256sum < "$T/rk.qcow2")" = "$sum" ]
	[ ! -e "$T/rk.qcow2.key.new" ]
	[ ! -e "$T/rk.qcow2.luks-header-backup" ]
	cmp "$T/rk.qcow2.key" "$img.key"
	# The export is gone with it: no mount, no qemu-storage-daemon, no directory (its own:
	# another boot test file may be rekeying a qcow2 at the same time).
	run ! grep -qF "$TMPDIR/cvm-image-export" /proc/self/mountinfo
	run ! pgrep -f "qemu-storage-daemon.*$T/rk.qcow2"
	[ -z "$(ls -A "${TMPDIR:-/var/tmp}" | grep cvm-image-export || true)" ]
}
