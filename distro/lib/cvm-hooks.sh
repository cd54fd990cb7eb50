# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for cvm-image hooks, POSIX sh. A hook runs it with: . "$CVM_LIB"
# Hooks run chrooted in the target root, umask 077, stdin /dev/null; see cvm-image-hooks(7).

# cvm_die MESSAGE: fail the build with MESSAGE.
cvm_die() {
	echo "$*" >&2
	exit 1
}

# cvm_render TEMPLATE: print a template of $CVM_TEMPLATES with every @NAME@ replaced by the
# value of the environment variable NAME (only CVM_* names; an unset one is an error).
cvm_render() {
	_t=$CVM_TEMPLATES/$1
	[ -f "$_t" ] || cvm_die "template '$1' not found"
	_sed=
	for _v in $(grep -o '@CVM_[A-Z0-9_]*@' "$_t" | sort -u | tr -d @); do
		eval "_val=\${$_v-__cvm_unset__}"
		[ "$_val" != __cvm_unset__ ] || cvm_die "template '$1' uses @$_v@, which is not set"
		# Escape what sed's replacement would interpret.
		_val=$(printf '%s' "$_val" | sed 's/[\\&|]/\\&/g')
		_sed="$_sed;s|@$_v@|$_val|g"
	done
	sed "${_sed#;}" "$_t"
}

# cvm_set_var FILE NAME VALUE: NAME="VALUE" in a shell-style settings file: the first
# assignment replaced (others removed), or appended.
cvm_set_var() {
	_f=$1 _n=$2 _val=$3
	[ -f "$_f" ] || : > "$_f"
	_line="$_n=\"$_val\""
	awk -v n="$_n" -v line="$_line" '
		$0 ~ "^[ \t]*(export[ \t]+)?" n "=" { if (!done) print line; done = 1; next }
		{ print }
		END { if (!done) print line }' "$_f" > "$_f.cvm-new"
	chmod --reference="$_f" "$_f.cvm-new" 2>/dev/null || chmod 0644 "$_f.cvm-new"
	mv "$_f.cvm-new" "$_f"
}

# Arguments that hooks add to the kernel command line, one file each in cmdline.d.
cvm_hook_cmdline() {
	for _f in "$CVM_STATE"/cmdline.d/*; do
		[ -f "$_f" ] && printf ' %s' "$(cat "$_f")"
	done
	return 0
}

# cvm_cmdline: the whole kernel command line (root=, ro, the extras, the hooks' additions).
cvm_cmdline() {
	printf '%s%s\n' "$CVM_KERNEL_CMDLINE" "$(cvm_hook_cmdline)"
}

# cvm_extra_cmdline: the same without root= and ro, for GRUB_CMDLINE_LINUX (grub-mkconfig
# adds those itself).
cvm_extra_cmdline() {
	printf '%s%s\n' "$CVM_EXTRA_CMDLINE" "$(cvm_hook_cmdline)" | sed 's/^ *//'
}

# cvm_initrd VERSION: the initramfs file of a kernel, as the tools name it.
cvm_initrd() {
	for _i in /boot/initrd.img-"$1" /boot/initramfs-"$1".img /boot/initrd-"$1"; do
		[ -f "$_i" ] && { echo "$_i"; return 0; }
	done
	return 1
}
