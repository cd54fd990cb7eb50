#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# The command line: global options, dispatch, exit codes, and the man pages agreeing with
# --help.

load ../lib/common

# options_in_help CMD...: the long options --help lists, one per line, sorted.
options_in_help() {
	"$CVM_IMAGE" "$@" --help | grep -oE -- '--[a-z][a-z0-9-]*' | grep -v -- '--help$' | sort -u
}

# options_in_man PAGE: the long options the man page documents as items (.TP then .B/.BR).
options_in_man() {
	grep -A1 '^\.TP' "$1" | grep -oE -- '\\-\\-[a-z][a-z0-9\\-]*' | sed 's/\\//g' |
		grep -v -- '--help$' | sort -u
}

@test "cli: --help lists the commands and the exit codes, on stdout" {
	run --separate-stderr "$CVM_IMAGE" --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"build "* ]]
	[[ "$output" == *"3 unsuitable environment"* ]]
	[ -z "$stderr" ]
}

@test "cli: --version" {
	run "$CVM_IMAGE" --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^cvm-image\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}

@test "cli: no command, an unknown command, an unknown global option: exit 2" {
	run --separate-stderr "$CVM_IMAGE"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"missing command"* ]]
	run --separate-stderr "$CVM_IMAGE" frobnicate
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"unknown command 'frobnicate'"* ]]
	run --separate-stderr "$CVM_IMAGE" --frobnicate build
	[ "$status" -eq 2 ]
}

@test "cli: build --help lists every option and every stage" {
	run "$CVM_IMAGE" build --help
	[ "$status" -eq 0 ]
	[[ "$(tr '\n' ' ' <<<"$output")" == *"Stages: prepare, unpack, configure, initramfs, bootloader, finalize, key-archive, esp, mkfs, luks, encrypt, assemble, output."* ]]
}

@test "man: cvm-image(1) documents exactly the global options of --help" {
	diff -u <(options_in_help) <(options_in_man "$CVM_SRCDIR/man/cvm-image.1")
}

@test "man: cvm-image-build(1) documents exactly the options of build --help" {
	diff -u <(options_in_help build) <(options_in_man "$CVM_SRCDIR/man/cvm-image-build.1")
	# And the option lists are not trivially empty.
	[ "$(options_in_help build | wc -l)" -ge 11 ]
}

@test "man: cvm-image-hooks(1) documents exactly the options of hooks --help" {
	diff -u <(options_in_help hooks) <(options_in_man "$CVM_SRCDIR/man/cvm-image-hooks.1")
	[ "$(options_in_help hooks | wc -l)" -ge 3 ]
}

@test "man: cvm-image-boot(1) documents exactly the options of boot --help" {
	diff -u <(options_in_help boot) <(options_in_man "$CVM_SRCDIR/man/cvm-image-boot.1")
	[ "$(options_in_help boot | wc -l)" -ge 10 ]
}

@test "man: cvm-image-inspect(1) documents exactly the options of inspect --help" {
	diff -u <(options_in_help inspect) <(options_in_man "$CVM_SRCDIR/man/cvm-image-inspect.1")
	[ "$(options_in_help inspect | wc -l)" -ge 4 ]
}

@test "man: cvm-image-rekey(1) documents exactly the options of rekey --help" {
	diff -u <(options_in_help rekey) <(options_in_man "$CVM_SRCDIR/man/cvm-image-rekey.1")
	[ "$(options_in_help rekey | wc -l)" -ge 4 ]
}

@test "man: cvm-image-secret(1) documents exactly the options of secret --help" {
	diff -u <(options_in_help secret) <(options_in_man "$CVM_SRCDIR/man/cvm-image-secret.1")
	[ "$(options_in_help secret | wc -l)" -ge 20 ]
}

@test "man: the rekey and --reencrypt steps in cvm-image-rekey(1) are the ones CVM_IMAGE_FAULT knows" {
	local table steps lists
	# The two parenthesised lists of the CVM_IMAGE_FAULT entry: the in-place steps, then
	# --reencrypt's.
	lists=$(sed -n '/^\.B CVM_IMAGE_FAULT/,/^\.SH/p' "$CVM_SRCDIR/man/cvm-image-rekey.1" | tr '\n' ' ' |
		grep -oE '\(([a-z-]+, )+[a-z-]+\)' | tr -d '(),')
	[ "$(echo "$lists" | wc -l)" -eq 2 ]
	for table in steps reencrypt_steps; do
		steps=$(cat "$CVM_SRCDIR"/src/rekey/*.c | sed -n "/^static const struct rekey_step $table\[\] = {/,/^};/p" |
			grep -oE '^	\{ "[a-z-]+"' | grep -oE '[a-z-]+' | tr '\n' ' ')
		[ -n "$steps" ]
		echo "$table: $steps"
		if [ "$table" = steps ]; then
			[ "$(echo "$lists" | sed -n 1p) " = "$steps" ]
		else
			[ "$(echo "$lists" | sed -n 2p) " = "$steps" ]
		fi
	done
}

@test "man: cvm-image-hooks(7) documents every CVM_ variable a hook gets" {
	local v vars
	# The variables the hook runner puts in a hook's environment...
	vars=$(grep -oE '"CVM_[A-Z_]+=' "$CVM_SRCDIR/src/build/hookrun.c" | tr -d '"=' | sort -u)
	[ "$(echo "$vars" | wc -w)" -ge 15 ]
	for v in $vars; do
		grep -q "^\.B .*$v" "$CVM_SRCDIR/man/cvm-image-hooks.7" || { echo "undocumented: $v"; return 1; }
	done
	# ...and the page documents no variable that is not set.
	for v in $(grep -oE '^\.B (CVM_[A-Z_]+)( ", " CVM_[A-Z_]+)*' "$CVM_SRCDIR/man/cvm-image-hooks.7" | grep -oE 'CVM_[A-Z_]+'); do
		grep -q "\"$v=" "$CVM_SRCDIR/src/build/hookrun.c" || { echo "documented but not set: $v"; return 1; }
	done
}

@test "man: every command in --help has a man page, and cvm-image(1) names it" {
	local cmd
	for cmd in $("$CVM_IMAGE" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }'); do
		[ -f "$CVM_SRCDIR/man/cvm-image-$cmd.1" ]
		grep -q "cvm-image-$cmd (1)" "$CVM_SRCDIR/man/cvm-image.1"
	done
}

@test "man: the pages render without warnings" {
	requires man
	local p
	for p in "$CVM_SRCDIR"/man/*.1; do
		run --separate-stderr env MANWIDTH=80 man --warnings -l "$p"
		[ "$status" -eq 0 ]
		[ -z "$stderr" ]
	done
}

@test "man: the stages in cvm-image-build(1) are the ones the build runs" {
	local s
	for s in $("$CVM_IMAGE" build --help | sed -n '/^Stages:/,/\.$/p' | sed 's/Stages://' | grep -oE '[a-z-]+'); do
		grep -q "fB$s\\\\fR" "$CVM_SRCDIR/man/cvm-image-build.1" || { echo "stage $s undocumented"; return 1; }
	done
}

@test "tests: no bats line '! cmd' or 'A && B' that cannot fail (only a test's last line fails it)" {
	run "$CVM_SRCDIR/tests/lib/bats-lint" "$CVM_SRCDIR"/tests/bats/*.bats "$CVM_SRCDIR"/tests/boot/*.bats \
		"$CVM_SRCDIR"/tests/fuzz/*.bats
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "tests: bats-lint finds a non-final '! cmd' and 'A && B', and not what can fail" {
	local t=$BATS_TEST_TMPDIR/t.bats
	# The fixture is written line by line: bats rewrites a line that starts with @test even in
	# a heredoc, and other checkers read a heredoc's lines as the test's own.
	local q="'"
	printf '%s\n' '@''test "x" {' '! false' '[ -e a ] ''&& [ -e b ]' '[[ a == b ''&& c == d ]]' \
		'[ -e a ] ''&& [ -e b ] || fail' 'for i in 1 2; do [ -e a ] ''&& break; done' \
		'if [ -e a ] ''&& [ -e b ]; then :; fi' 'x=$(a ''&& b)' "cat > f <<-${q}INNER${q}" \
		'a ''&& b' 'INNER' "awk ${q}" "	a ''&& b${q} f" '[ -e a ] ''&& [ -e b ]' '}' > "$t"
	run "$CVM_SRCDIR/tests/lib/bats-lint" "$t"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[ "${lines[0]}" = "$t:2: ! false" ]
	[ "${lines[1]}" = "$t:3: [ -e a ] && [ -e b ]" ]
}

@test "build --help: every option on a line of its own" {
	local help
	help=$("$CVM_IMAGE" build --help)
	grep -q '^  -h, --help  ' <<<"$help"
	grep -q '^      --hostname NAME  ' <<<"$help"
	run ! grep -E '[^ ]  +-h, --help' <<<"$help"
}

# complete WORDS...: what the bash completion offers for the last word.
complete_words() {
	bash -c '. /usr/share/bash-completion/bash_completion; . "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_cvm_image cvm-image "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$CVM_SRCDIR/shell-completion/cvm-image" "$@" | sort
}

@test "completion: every command, and for each command exactly the options of its --help" {
	[ -f /usr/share/bash-completion/bash_completion ] || { echo "bash-completion is not installed"; return 1; }
	local cmds c
	cmds=$("$CVM_IMAGE" --help | sed -n '/^Commands:/,/^$/p' | awk 'NF > 1 { print $1 }' | sort)
	[ "$(wc -l <<<"$cmds")" -ge 5 ]
	diff -u <(echo "$cmds") <(complete_words cvm-image "")
	for c in $cmds; do
		diff -u <( (options_in_help "$c"; echo --help) | sort) <(complete_words cvm-image "$c" -- | sort -u) | sed "s/^/$c: /"
		[ "${PIPESTATUS[0]}" -eq 0 ]
	done
	diff -u <(printf 'inspect\n') <(complete_words cvm-image ins)
	diff -u <(printf -- '--deep\n') <(complete_words cvm-image inspect disk.img --de)
	diff -u <(printf 'raw\n') <(complete_words cvm-image build --format r)
	diff -u <(printf 'build\n') <(complete_words cvm-image secret bu)
}

@test "examples: the CI jobs call cvm-image only with options its commands have; the container has the appliance's kernel, readable" {
	requires python3
	local line cmd o n=0
	while read -r line; do
		[[ "$line" == cvm-image\ * ]] || continue
		n=$((n + 1))
		read -r -a w <<< "${line%%>*}"
		cmd=${w[1]}
		for o in "${w[@]:2}"; do
			[[ "$o" == --* ]] || continue
			if ! "$CVM_IMAGE" "$cmd" --help | grep -q -- "${o%%=*}\b"; then
				echo "examples: 'cvm-image $cmd' has no option $o"
				return 1
			fi
		done
	done < <("$CVM_SRCDIR/tests/lib/ci-commands" "$CVM_SRCDIR"/examples/ci/*.yml)
	[ "$n" -eq 4 ]
	grep -q 'apt-get install .*linux-image-amd64' "$CVM_SRCDIR/Containerfile"
	grep -q 'chmod 0644 /boot/vmlinuz-\*' "$CVM_SRCDIR/Containerfile"
	grep -q '^USER builder$' "$CVM_SRCDIR/Containerfile"
}
