#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# cvm-image secret: the EFI secret table (parsed back by tests/lib/secret-table, written from
# the guest's rules), sevctl's test vectors through the command line, and inject against a
# QMP stand-in (tests/lib/fake-qmp) that computes the measurement itself. The commands run as
# an ordinary user (cvm): secret needs no privilege.

load ../lib/common

setup() {
	requires python3 openssl
	common_setup
	[ "$(id -u)" != 0 ] || ensure_test_user
	cd "$T"
	# sevctl's vectors (../shared/test-vectors/sev-launch-secret.md).
	echo xtWplWEzBQkSsku+XDcmhg== | base64 -d > tik
	echo Uqhpt5q5wTu2qSsFYWGcsw== | base64 -d > tek
	head -c 44 /dev/urandom | base64 -w0 | head -c 44 > key
	chmod 0600 key tik tek
	head -c 65536 /dev/urandom > fw.fd
}

teardown() {
	common_teardown
}

# the table parsed back: "GUID LENGTH BASE64" lines.
parse_table() {
	"$CVM_SRCDIR/tests/lib/secret-table" "$@"
}

@test "secret table: the key with its NUL in the disk passphrase entry, further entries verbatim, mode 0600" {
	printf 'other secret' > other
	run --separate-stderr cvm secret table --key-file key --entry 736869e5-aaaa-4973-92ec-06879ce3da0b:other -o t.bin
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$(stat -c %a t.bin)" = 600 ]
	[ $(( $(stat -c %s t.bin) % 16 )) -eq 0 ]
	run parse_table t.bin --disk-passphrase
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "736869e5-84f0-4973-92ec-06879ce3da0b 45 $( (cat key; printf '\0') | base64 -w0)" ]
	[ "${lines[1]}" = "736869e5-aaaa-4973-92ec-06879ce3da0b 12 $(base64 -w0 < other)" ]
	# Never the key on stdout or stderr.
	[[ "$stderr" != *"$(cat key)"* ]]
	# An existing table is not replaced without --force.
	run --separate-stderr cvm secret table --key-file key -o t.bin
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"'t.bin' exists (use --force to replace it)"* ]]
	run cvm secret table --key-file key -o t.bin --force
	[ "$status" -eq 0 ]
}

@test "secret table --image: the key is IMAGE.key and must open the image" {
	requires root
	run "$CVM_IMAGE" -q build --distro none "$(fixture_tar)" -o "$T/out/d.img"
	[ "$status" -eq 0 ]
	run --separate-stderr cvm secret table --image "$T/out/d.img" -o t.bin
	echo "$stderr"
	[ "$status" -eq 0 ]
	parse_table t.bin --disk-passphrase | grep -q "^736869e5-84f0-4973-92ec-06879ce3da0b 45 $( (cat "$T/out/d.img.key"; printf '\0') | base64 -w0)$"
	# A key file that does not open it: refused, nothing written.
	cp key "$T/out/d.img.key"
	run --separate-stderr cvm secret table --image "$T/out/d.img" -o t2.bin
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the key in '$T/out/d.img.key' does not open '$T/out/d.img'"* ]]
	[ ! -e t2.bin ]
	assert_no_leftovers "$T"
}

@test "secret table --image: a qcow2 image is read in place, as inspect and rekey read it" {
	requires root
	run "$CVM_IMAGE" -q build --distro none "$(fixture_tar)" -o "$T/out/d.qcow2"
	[ "$status" -eq 0 ]
	cp "$T/out/d.qcow2" "$T/before.qcow2"
	run --separate-stderr cvm secret table --image "$T/out/d.qcow2" -o t.bin
	echo "$stderr"
	[ "$status" -eq 0 ]
	parse_table t.bin --disk-passphrase | grep -q "^736869e5-84f0-4973-92ec-06879ce3da0b 45 $( (cat "$T/out/d.qcow2.key"; printf '\0') | base64 -w0)$"
	cmp "$T/out/d.qcow2" "$T/before.qcow2"
	# A key file that does not open it: refused, nothing written.
	cp key "$T/out/d.qcow2.key"
	run --separate-stderr cvm secret table --image "$T/out/d.qcow2" -o t2.bin
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the key in '$T/out/d.qcow2.key' does not open '$T/out/d.qcow2'"* ]]
	[ ! -e t2.bin ]
	assert_no_leftovers "$T"
}

@test "secret table --image as an ordinary user: a qcow2 image root made and gave it, read in place, the table 0600" {
	requires root
	ensure_test_user
	run "$CVM_IMAGE" -q build --distro none "$(fixture_tar)" -o "$T/out/d.qcow2"
	[ "$status" -eq 0 ]
	cp "$T/out/d.qcow2" "$T/before.qcow2"
	give_user "$T/out" "$T"
	run --separate-stderr as_user "$CVM_IMAGE" secret table --image "$T/out/d.qcow2" -o "$T/t.bin"
	echo "$stderr"
	[ "$status" -eq 0 ]
	parse_table "$T/t.bin" --disk-passphrase | grep -q "^736869e5-84f0-4973-92ec-06879ce3da0b 45 $( (cat "$T/out/d.qcow2.key"; printf '\0') | base64 -w0)$"
	[ "$(stat -c '%a %U' "$T/t.bin")" = "600 $TEST_USER" ]
	cmp "$T/out/d.qcow2" "$T/before.qcow2"
	assert_no_leftovers "$T"
}

@test "secret build: byte-compatible with sevctl's vectors, one and two secrets, and the QMP command" {
	python3 - <<-'EOF'
	import struct, uuid
	def entry(g, d): return uuid.UUID(g).bytes_le + struct.pack('<I', 20 + len(d)) + d
	def table(es):
	    body = b''.join(es)
	    t = uuid.UUID('1e74f542-71dd-4d66-963e-ef4287ff173b').bytes_le + struct.pack('<I', 20 + len(body)) + body
	    return t + b'\0' * (-len(t) % 16)
	a = entry('736869e5-84f0-4973-92ec-06879ce3da0b', b'MY-LUKS-PASSPHRASE')
	b = entry('736869e5-aaaa-4973-92ec-06879ce3da0b', b'SOME OTHER SECRET')
	open('one.table', 'wb').write(table([a]))
	open('two.table', 'wb').write(table([a, b]))
	EOF
	local blob=TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS iv=rFR07U3TLH2YnsUj2SVZ7A==
	run --separate-stderr cvm secret build --tik tik --tek tek --launch-measure-blob "$blob" --iv "$iv" --table one.table --qmp-json q.json h1 p1
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$(base64 -w0 < h1)" = "AAAAAKxUdO1N0yx9mJ7FI9klWey8FSzeYQ4X8K71VzNKLU/KQsIsQxLjtbhaPUewqshX5Q==" ]
	[ "$(base64 -w0 < p1)" = "0U3e5PcXv0UW+H4tSBFKOdCYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCCwD/2w5cPA==" ]
	[ "$(jq -r .execute q.json)" = sev-inject-launch-secret ]
	[ "$(jq -r '.arguments."packet-header"' q.json)" = "$(base64 -w0 < h1)" ]
	[ "$(jq -r .arguments.secret q.json)" = "$(base64 -w0 < p1)" ]
	run cvm secret build --tik tik --tek tek --launch-measure-blob "$blob" --iv "$iv" --table two.table h2 p2
	[ "$status" -eq 0 ]
	[ "$(base64 -w0 < h2)" = "AAAAAKxUdO1N0yx9mJ7FI9klWeyZ3r0dOEKHUOhIRqzGYYvTJgdMtBPL1nK6GD9aGET7Ng==" ]
	[ "$(base64 -w0 < p2)" = "0U3e5PcXv0UW+H4tSBFKObWYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCC+WWs332lpLNUX1ZI3YK7vYgtys4X+uGxEIlkIQ90v8/w8ZFmQMe" ]
	# Without --iv the IV is random: two packets differ.
	run cvm secret build --tik tik --tek tek --launch-measure-blob "$blob" --key-file key h3 p3
	[ "$status" -eq 0 ]
	run cvm secret build --tik tik --tek tek --launch-measure-blob "$blob" --key-file key h4 p4
	[ "$status" -eq 0 ]
	[ -s h3 ]
	[ -s h4 ]
	run ! cmp -s h3 h4
}

@test "secret measure: sevctl's vector; exit 0 when the blob matches, 1 when not" {
	echo NWnPYaMqYCuHGFrG4PVZEw== | base64 -d > mtik
	local good bad
	good=$( (echo lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI4= | base64 -d; echo wxP6tRHCFrFQWxsuqZA8QA== | base64 -d) | base64 -w0)
	run --separate-stderr cvm secret measure --tik mtik --launch-measure-blob "$good" --api-major 0x01 \
		--api-minor 40 --build-id 40 --policy 0x03 --launch-digest xkvRAfyaSizgonxAjZIAkR8TmolUabBKQKb6KJCDDSM=
	[ "$status" -eq 0 ]
	[ "$output" = lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI4= ]
	run --separate-stderr cvm secret measure --tik mtik --launch-measure-blob "$good" --api-major 0x01 \
		--api-minor 40 --build-id 40 --policy 0x07 --launch-digest xkvRAfyaSizgonxAjZIAkR8TmolUabBKQKb6KJCDDSM=
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"SEV-ES"* ]]
	run --separate-stderr cvm secret measure --tik mtik --launch-measure-blob "$good" --api-major 0x01 \
		--api-minor 41 --build-id 40 --policy 0x03 --launch-digest xkvRAfyaSizgonxAjZIAkR8TmolUabBKQKb6KJCDDSM=
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the launch measurement does not match: the guest reports lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI4="* ]]
	# --firmware: the same measurement as --launch-digest of its SHA-256 (computed here).
	run --separate-stderr cvm secret measure --tik mtik --launch-measure-blob "$good" --api-major 1 --api-minor 40 \
		--build-id 40 --policy 3 --launch-digest "$(openssl dgst -sha256 -binary fw.fd | base64 -w0)"
	local via_digest=$output
	run --separate-stderr cvm secret measure --tik mtik --launch-measure-blob "$good" --api-major 1 --api-minor 40 \
		--build-id 40 --policy 3 --firmware fw.fd
	[ "$output" = "$via_digest" ]
	[ "$status" -eq 1 ]
	# sevctl's firmware-file vectors when its test data is at hand (SEVCTL_TEST_DATA).
	if [ -n "${SEVCTL_TEST_DATA:-}" ]; then
		run --separate-stderr cvm secret measure --tik mtik --launch-measure-blob "$good" --api-major 1 --api-minor 40 \
			--build-id 40 --policy 3 --firmware "$SEVCTL_TEST_DATA"/OVMF.amdsev.fd_*
		[ "$output" = oMDewIouJSpbpNRHj7Mk3p08H2dPZQdsZMU14qIymBk= ]
		run --separate-stderr cvm secret measure --tik mtik --launch-measure-blob "$good" --api-major 1 --api-minor 40 \
			--build-id 40 --policy 3 --firmware "$SEVCTL_TEST_DATA"/OVMF.amdsev.fd_* \
			--kernel "$SEVCTL_TEST_DATA/vmlinuz-fake" --initrd "$SEVCTL_TEST_DATA/initrd-fake" \
			--cmdline "foo bar baz fake kernel=cmdline"
		[ "$output" = h3auYbWQnVW7EGLWN4Hf9SN0oEYMPU2sK4bLnefWPws= ]
	fi
}

@test "secret build with the measurement options refuses a blob that does not match: nothing written" {
	local blob=TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS
	run --separate-stderr cvm secret build --tik tik --tek tek --launch-measure-blob "$blob" \
		--api-major 1 --api-minor 40 --build-id 40 --policy 3 --firmware fw.fd --key-file key h p
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the launch measurement does not match"* ]]
	[ ! -e h ]
	[ ! -e p ]
	assert_no_leftovers "$T"
}

# start_qmp MODE [FIRMWARE]: the stand-in on $T/qmp.sock, recording in $T/rec.
start_qmp() {
	mkdir -p "$T/rec"
	rm -f "$T/qmp.sock"
	"$CVM_SRCDIR/tests/lib/fake-qmp" "$T/qmp.sock" --tik tik --firmware "${2:-fw.fd}" --record "$T/rec" --mode "$1" &
	QMP_PID=$!
	local i
	for i in $(seq 100); do
		[ -S "$T/qmp.sock" ] && return 0
		sleep 0.05
	done
	return 1
}

@test "secret inject: checks the measurement, injects a packet the TEK decrypts to the key, continues" {
	start_qmp ok
	run --separate-stderr cvm secret inject --qmp "$T/qmp.sock" --tik tik --tek tek --firmware fw.fd --key-file key --json
	echo "$stderr"
	wait "$QMP_PID"
	[ "$status" -eq 0 ]
	[ "$(cat "$T/rec/commands" | tr '\n' ' ')" = "qmp_capabilities query-sev query-sev-launch-measure sev-inject-launch-secret cont " ]
	[ "$(jq -r .measurement_matches <<<"$output")" = true ]
	[ "$(jq -r .injected <<<"$output")" = true ]
	[ "$(jq -r .continued <<<"$output")" = true ]
	[ "$(jq -r .launch_digest <<<"$output")" = "$(openssl dgst -sha256 -binary fw.fd | base64 -w0)" ]
	[[ "$output" != *"$(cat key)"* ]]
	[[ "$stderr" != *"$(cat key)"* ]]
	# The guest's side: the header's HMAC under the TIK, the payload under the TEK.
	jq -r '."packet-header"' "$T/rec/inject.json" | base64 -d > hdr
	jq -r .secret "$T/rec/inject.json" | base64 -d > payload
	local iv
	iv=$(dd if=hdr bs=1 skip=4 count=16 status=none | od -An -tx1 | tr -d ' \n')
	openssl enc -d -aes-128-ctr -K "$(od -An -tx1 tek | tr -d ' \n')" -iv "$iv" -in payload -out table
	# The HMAC: 0x01 || flags || IV || length || length || payload || measurement, under the TIK.
	python3 - "$T/rec/measurement" <<-'EOF'
	import hashlib, hmac, struct, sys
	hdr, payload, tik = open('hdr', 'rb').read(), open('payload', 'rb').read(), open('tik', 'rb').read()
	m = open(sys.argv[1], 'rb').read()
	msg = b'\x01' + hdr[:4] + hdr[4:20] + struct.pack('<II', len(payload), len(payload)) + payload + m
	sys.exit(hmac.new(tik, msg, hashlib.sha256).digest() != hdr[20:52] or hdr[:4] != b'\0' * 4)
	EOF
	run parse_table table --disk-passphrase
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "736869e5-84f0-4973-92ec-06879ce3da0b 45 $( (cat key; printf '\0') | base64 -w0)" ]
	# --no-cont: injected, not resumed.
	start_qmp ok
	run cvm secret inject --qmp "$T/qmp.sock" --tik tik --tek tek --firmware fw.fd --key-file key --no-cont
	wait "$QMP_PID"
	[ "$status" -eq 0 ]
	[ "$(tail -n1 "$T/rec/commands")" = sev-inject-launch-secret ]
}

@test "secret inject: a wrong firmware digest: nothing injected, the guest not continued, exit 1" {
	head -c 4096 /dev/urandom > other.fd
	start_qmp ok other.fd
	run --separate-stderr cvm secret inject --qmp "$T/qmp.sock" --tik tik --tek tek --firmware fw.fd --key-file key
	echo "$stderr"
	wait "$QMP_PID" || true
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the launch measurement does not match"* ]]
	[[ "$stderr" == *"nothing is given to it"* ]]
	[ ! -e "$T/rec/inject.json" ]
	run ! grep -qx cont "$T/rec/commands"
}

@test "secret inject: not QMP, a QMP error, a guest not in the launch-secret state, no socket" {
	start_qmp not-qmp
	run --separate-stderr cvm secret inject --qmp "$T/qmp.sock" --tik tik --tek tek --firmware fw.fd --key-file key
	wait "$QMP_PID" || true
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"'$T/qmp.sock' does not speak QMP"* ]]
	start_qmp error
	run --separate-stderr cvm secret inject --qmp "$T/qmp.sock" --tik tik --tek tek --firmware fw.fd --key-file key
	wait "$QMP_PID" || true
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"QEMU refused 'query-sev': SEV feature is not available?[2J?]0;owned?"* ]]
	# The host's words reach the terminal without their escape sequences.
	[[ "$stderr" != *$'\e'* ]]
	start_qmp running
	run --separate-stderr cvm secret inject --qmp "$T/qmp.sock" --tik tik --tek tek --firmware fw.fd --key-file key
	wait "$QMP_PID" || true
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the guest is in the SEV state 'running', not 'launch-secret'"* ]]
	[ ! -e "$T/rec/inject.json" ]
	run --separate-stderr cvm secret inject --qmp "$T/none.sock" --tik tik --tek tek --firmware fw.fd --key-file key
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"cannot connect to the QMP socket '$T/none.sock': No such file or directory"* ]]
}

# inject_with MODE [FAKE-QMP OPTIONS...] -- [INJECT OPTIONS...]: secret inject against the
# stand-in; status, output and stderr as run sets them.
inject_with() {
	local mode=$1 fake=() extra=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do fake+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	extra=("$@")
	mkdir -p "$T/rec"
	rm -f "$T/qmp.sock" "$T/rec/inject.json" "$T/rec/commands"
	"$CVM_SRCDIR/tests/lib/fake-qmp" "$T/qmp.sock" --tik tik --firmware fw.fd --record "$T/rec" \
		--mode "$mode" "${fake[@]}" &
	QMP_PID=$!
	local i
	for i in $(seq 100); do
		[ -S "$T/qmp.sock" ] && break
		sleep 0.05
	done
	run --separate-stderr cvm secret inject --qmp "$T/qmp.sock" --tik tik --tek tek \
		--firmware fw.fd --key-file key "${extra[@]}"
	echo "$stderr"
	kill "$QMP_PID" 2>/dev/null || true
	wait "$QMP_PID" 2>/dev/null || true
}

@test "secret inject: a host that lies (null state or data, numbers out of range): exit 1, nothing sent, no crash" {
	inject_with null-state
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"query-sev did not say the API version, build (0 to 255), policy (32 bits) and state (a string): nothing was injected"* ]]
	[ ! -e "$T/rec/inject.json" ]
	inject_with null-data
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"query-sev-launch-measure did not give 48 bytes of base64: nothing was injected"* ]]
	[ ! -e "$T/rec/inject.json" ]
	inject_with api-256 -- --json
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"policy (32 bits) and state (a string), in range: nothing was injected"* ]]
	[ -z "$output" ]
	[ ! -e "$T/rec/inject.json" ]
	inject_with negative-policy -- --json
	[ "$status" -eq 1 ]
	[[ "$stderr" == *", in range: nothing was injected"* ]]
	[[ "$stderr" != *0xffffffff* ]]
	[ ! -e "$T/rec/inject.json" ]
}

@test "secret inject: the guest owner's policy and firmware: the host's report must match, or nothing is sent" {
	# SEV debugging allowed (policy 0): refused by default; key sharing (NOKS unset) too.
	inject_with ok --policy 0 -- --json
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the host reports the guest policy 0x0, which allows SEV debugging (NODBG, 0x01, is not set): nothing was injected"* ]]
	[ ! -e "$T/rec/inject.json" ]
	[ -z "$output" ]
	inject_with ok --policy 0x1
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"allows key sharing (NOKS, 0x02, is not set)"* ]]
	# --policy is required exactly, not replaced by the host's.
	inject_with ok --policy 0x3 -- --policy 0x1
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the host reports the guest policy 0x3, not the 0x1 required by --policy: nothing was injected"* ]]
	[ ! -e "$T/rec/inject.json" ]
	inject_with ok --policy 0x1 -- --policy 0x1 --json
	[ "$status" -eq 0 ]
	[ "$(jq -r .policy <<<"$output")" = 1 ]
	[ -e "$T/rec/inject.json" ]
	# The firmware: API version, then the build at that version.
	inject_with ok --api 1.52 --build 4 -- --min-api 1.53
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the host reports SEV API 1.52, older than --min-api 1.53: nothing was injected"* ]]
	inject_with ok --api 1.52 --build 4 -- --min-api 1.52 --min-build 5
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the host reports SEV firmware build 4, older than --min-build 5"* ]]
	[ ! -e "$T/rec/inject.json" ]
	inject_with ok --api 1.52 --build 4 -- --min-api 1.51 --min-build 9
	[ "$status" -eq 0 ]
	inject_with ok --api 1.52 --build 4 -- --min-api 1.52 --min-build 4
	[ "$status" -eq 0 ]
	run --separate-stderr cvm secret measure --tik tik --launch-measure-blob x --min-api 1.2 --firmware fw.fd
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--min-api and --min-build go with inject"* ]]
}

@test "secret inject: a host that stalls or floods is given up on: exit 1, nothing sent" {
	local t0
	t0=$(date +%s)
	# One byte every 5 s: the overall --timeout ends it (not each byte's wait).
	inject_with trickle -- --timeout 6
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the conversation with QEMU went past its deadline (--timeout)"* ]]
	[ "$(( $(date +%s) - t0 ))" -lt 30 ]
	[ ! -e "$T/rec/inject.json" ]
	inject_with flood
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"more than 1000 events and no answer to 'query-sev'"* ]]
	[ ! -e "$T/rec/inject.json" ]
	run --separate-stderr cvm secret inject --qmp x --tik tik --tek tek --firmware fw.fd --key-file key --timeout 0
	[ "$status" -eq 2 ]
}

@test "secret inject: the connection drops right after the secret was sent: said that it may be in" {
	inject_with drop-after-inject
	[ "$status" -eq 1 ]
	[ -e "$T/rec/inject.json" ]
	[[ "$stderr" == *"the secret was sent to '$T/qmp.sock', but QEMU's answer never came: it may be in the guest already"* ]]
	[[ "$stderr" == *"do not send this key to another host"* ]]
	run ! grep -qx cont "$T/rec/commands"
}

@test "secret: bad input names the input, exits 1 or 2, writes nothing" {
	local blob=TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS
	head -c 15 /dev/urandom > short
	run --separate-stderr cvm secret build --tik tik --tek short --launch-measure-blob "$blob" --key-file key h p
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"TEK 'short' holds 15 bytes: it must be 16 bytes, raw or base64"* ]]
	run --separate-stderr cvm secret build --tik tik --tek tek --launch-measure-blob "AAAA" --key-file key h p
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"--launch-measure-blob 'AAAA' is neither a file nor the base64 of 48 bytes"* ]]
	run --separate-stderr cvm secret build --tik tik --tek tek --launch-measure-blob "$blob" --iv '!!!notbase64!!!' --key-file key h p
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"--iv '!!!notbase64!!!' is neither a file nor the base64 of 16 bytes"* ]]
	head -c 5000 /dev/urandom > big
	run --separate-stderr cvm secret table --key-file key --entry 736869e5-aaaa-4973-92ec-06879ce3da0b:big -o t.bin
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"is longer than 4096 bytes"* || "$stderr" == *"larger than the 4096 bytes"* ]]
	head -c 4000 /dev/urandom > big
	run --separate-stderr cvm secret table --key-file key --entry 736869e5-aaaa-4973-92ec-06879ce3da0b:big -o t.bin
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"the secret table would be larger than the 4096 bytes of the guest's secret area"* ]]
	run --separate-stderr cvm secret table --key-file key --entry not-a-guid:key -o t.bin
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"invalid --entry 'not-a-guid:key'"* ]]
	run --separate-stderr cvm secret table --key-file key --entry 736869e5-aaaa-4973-92ec-06879ce3da0b:missing -o t.bin
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"cannot open entry file 'missing': No such file or directory"* ]]
	run --separate-stderr cvm secret table --key-file nokey -o t.bin
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"cannot open 'nokey'"* ]]
	echo notatable > bad.table
	run --separate-stderr cvm secret build --tik tik --tek tek --launch-measure-blob "$blob" --table bad.table h p
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"'bad.table' is not a secret table"* ]]
	# A table whose header is right but whose entry is not (length 19, under its own header):
	# efi_secret would stop there; refused before anything is sent or built.
	cvm -q secret table --key-file key -o good.table
	python3 -c 'import sys; d = bytearray(open("good.table", "rb").read()); d[36:40] = (19).to_bytes(4, "little"); open("bad-entry.table", "wb").write(d)'
	run --separate-stderr cvm secret build --tik tik --tek tek --launch-measure-blob "$blob" --table bad-entry.table h p
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"'bad-entry.table' is not a secret table"* ]]
	# Usage errors: exit 2.
	run --separate-stderr cvm secret
	[ "$status" -eq 2 ]
	run --separate-stderr cvm secret frob
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"unknown subcommand 'frob'"* ]]
	run --separate-stderr cvm secret measure --tik tik --launch-measure-blob "$blob" --firmware fw.fd
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"give --api-major, --api-minor, --build-id and --policy"* ]]
	run --separate-stderr cvm secret measure --tik tik --launch-measure-blob "$blob" --api-major 300 --api-minor 1 --build-id 1 --policy 1 --firmware fw.fd
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"invalid --api-major '300'"* ]]
	run --separate-stderr cvm secret build --tik tik --tek tek --launch-measure-blob "$blob" --key-file key h
	[ "$status" -eq 2 ]
	run --separate-stderr cvm secret inject --qmp x --tik tik --tek tek --firmware fw.fd --kernel k --key-file key
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--kernel needs --initrd and --cmdline"* ]]
	[ ! -e h ]
	[ ! -e p ]
	[ ! -e t.bin ]
	assert_no_leftovers "$T"
}
