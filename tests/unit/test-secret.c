/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SEV formats against virtee/sevctl's own test vectors (tests/secretbuild.rs,
 * tests/measurementbuild.rs; ../shared/test-vectors/sev-launch-secret.md). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "sev/secret.h"
#include "shared/cleanup.h"
#include "shared/util.h"

static size_t b64(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	if (base64_decode(s, out, cap, &n) < 0)
		return 0;
	return n;
}

static bool equals_b64(const uint8_t *data, size_t len, const char *want)
{
	_cleanup_free_ char *got = base64_encode(data, len);

	if (got && strcmp(got, want) != 0)
		printf("# got  %s\n# want %s\n", got, want);
	return got && strcmp(got, want) == 0;
}

static void test_guid(void)
{
	uint8_t g[16];

	ok(sev_guid_parse("736869e5-84f0-4973-92ec-06879ce3da0b", g) == 0 && g[0] == 0xe5 &&
		   g[3] == 0x73 && g[4] == 0xf0 && g[5] == 0x84 && g[6] == 0x73 && g[7] == 0x49 &&
		   g[8] == 0x92 && g[15] == 0x0b,
	   "GUID in EFI byte order: the first three fields swapped");
	ok(sev_guid_parse("736869e5-84f0-4973-92ec-06879ce3da0", g) == -EINVAL, "short GUID refused");
	ok(sev_guid_parse("736869e5x84f0-4973-92ec-06879ce3da0b", g) == -EINVAL, "bad separator refused");
	ok(sev_guid_parse("7368g9e5-84f0-4973-92ec-06879ce3da0b", g) == -EINVAL, "bad hex refused");
}

/* sevctl secret build: the secret as given (no NUL), one and two entries. */
static void test_packet(void)
{
	uint8_t tik[16], tek[16], iv[16], blob[48], table[SEV_SECRET_AREA_MAX],
		payload[SEV_SECRET_AREA_MAX], header[SEV_PACKET_HEADER_LEN];
	struct sev_entry e[2] = {
		{ .data = (const uint8_t *)"MY-LUKS-PASSPHRASE", .len = 18 },
		{ .data = (const uint8_t *)"SOME OTHER SECRET", .len = 17 },
	};
	int len;

	ok(b64("xtWplWEzBQkSsku+XDcmhg==", tik, 16) == 16 && b64("Uqhpt5q5wTu2qSsFYWGcsw==", tek, 16) == 16 &&
		   b64("rFR07U3TLH2YnsUj2SVZ7A==", iv, 16) == 16 &&
		   b64("TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS", blob, 48) == 48,
	   "vectors decode");
	sev_guid_parse("736869e5-84f0-4973-92ec-06879ce3da0b", e[0].guid);
	sev_guid_parse("736869e5-aaaa-4973-92ec-06879ce3da0b", e[1].guid);

	static const struct {
		size_t n;
		int len;
		const char *header, *payload;
	} vec[] = {
		{ 1, 64, "AAAAAKxUdO1N0yx9mJ7FI9klWey8FSzeYQ4X8K71VzNKLU/KQsIsQxLjtbhaPUewqshX5Q==",
		  "0U3e5PcXv0UW+H4tSBFKOdCYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCCwD/2w5cPA==" },
		{ 2, 96, "AAAAAKxUdO1N0yx9mJ7FI9klWeyZ3r0dOEKHUOhIRqzGYYvTJgdMtBPL1nK6GD9aGET7Ng==",
		  "0U3e5PcXv0UW+H4tSBFKObWYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCC+WWs332lpLNUX1ZI3YK7vYgtys4X+uGxEIlkIQ90v8/w8ZFmQMe" },
	};
	for (size_t v = 0; v < ELEMENTSOF(vec); v++) {
		len = sev_table_build(e, vec[v].n, table);
		ok(len == vec[v].len, "%zu entries: padded to %d bytes (%d)", vec[v].n, vec[v].len, len);
		ok(sev_packet(tek, tik, iv, table, (size_t)len, blob, header, payload) == 0, "packet built");
		ok(equals_b64(header, sizeof(header), vec[v].header), "%zu entries: the header is sevctl's",
		   vec[v].n);
		ok(equals_b64(payload, (size_t)len, vec[v].payload), "%zu entries: the payload is sevctl's",
		   vec[v].n);
	}
	len = sev_table_build(e, 1, table);
	ok(table[16] == 58 && table[17] == 0 && table[36] == 38, "lengths without the padding");
	{
		bool disk = false;
		uint8_t t[SEV_SECRET_AREA_MAX];

		ok(sev_table_check(table, (size_t)len, &disk) == 0 && disk,
		   "the table built passes the entry walk, its disk passphrase entry found");
		memcpy(t, table, (size_t)len);
		t[36] = 19; /* an entry shorter than its own header */
		ok(sev_table_check(t, (size_t)len, NULL) == -EINVAL, "an entry length under 20: refused");
		memcpy(t, table, (size_t)len);
		t[36] = 39; /* past the table's length */
		ok(sev_table_check(t, (size_t)len, NULL) == -EINVAL, "an entry past the table: refused");
		memcpy(t, table, (size_t)len);
		t[16] = 57; /* the entries do not fill the table's length exactly */
		ok(sev_table_check(t, (size_t)len, NULL) == -EINVAL, "a length inside an entry: refused");
		memcpy(t, table, (size_t)len);
		t[16] = (uint8_t)(len + 1);
		ok(sev_table_check(t, (size_t)len, NULL) == -EINVAL, "a length past the file: refused");
		ok(sev_table_check(table, (size_t)len - 16, NULL) == -EINVAL, "cut short: refused");
		t[0] ^= 1;
		ok(sev_table_check(t, (size_t)len, NULL) == -EINVAL, "another header GUID: refused");
	}

	/* The 4 KiB secret area is the limit. */
	{
		static uint8_t big[4096];
		struct sev_entry b = { .data = big, .len = 4096 - 40 };

		ok(sev_table_build(&b, 1, table) == 4096, "a table of exactly 4096 bytes fits");
		b.len++;
		ok(sev_table_build(&b, 1, table) == -E2BIG, "one byte more does not");
	}
	ok(sev_packet(tek, tik, iv, table, 20, blob, header, payload) == -EINVAL,
	   "a table that is not a multiple of 16 is refused");
}

/* sevctl measurement build: --launch-digest, and the firmware file when its test data is here. */
static void test_measurement(void)
{
	uint8_t tik[16], nonce[16], digest[32], m[32], want[32];
	const char *data = getenv("SEVCTL_TEST_DATA");

	ok(b64("NWnPYaMqYCuHGFrG4PVZEw==", tik, 16) == 16 && b64("wxP6tRHCFrFQWxsuqZA8QA==", nonce, 16) == 16 &&
		   b64("xkvRAfyaSizgonxAjZIAkR8TmolUabBKQKb6KJCDDSM=", digest, 32) == 32,
	   "vectors decode");
	ok(sev_measurement(tik, 0x01, 40, 40, 0x03, digest, nonce, m) == 0 &&
		   equals_b64(m, 32, "lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI4="),
	   "measurement from a launch digest is sevctl's");
	b64("lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI4=", want, 32);
	ok(sev_measurement_equal(m, want), "equal measurements compare equal");
	m[31] ^= 1;
	ok(!sev_measurement_equal(m, want), "one bit differs: not equal");

	if (data) {
		_cleanup_free_ char *fw = strdupf("%s/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9", data);
		_cleanup_free_ char *k = strdupf("%s/vmlinuz-fake", data), *i = strdupf("%s/initrd-fake", data);

		ok(sev_launch_digest(fw, NULL, NULL, NULL, digest) == 0 &&
			   sev_measurement(tik, 0x01, 40, 40, 0x03, digest, nonce, m) == 0 &&
			   equals_b64(m, 32, "oMDewIouJSpbpNRHj7Mk3p08H2dPZQdsZMU14qIymBk="),
		   "measurement from sevctl's firmware file is sevctl's");
		ok(sev_launch_digest(fw, k, i, "foo bar baz fake kernel=cmdline", digest) == 0 &&
			   sev_measurement(tik, 0x01, 40, 40, 0x03, digest, nonce, m) == 0 &&
			   equals_b64(m, 32, "h3auYbWQnVW7EGLWN4Hf9SN0oEYMPU2sK4bLnefWPws="),
		   "with kernel, initrd and command line hashes: sevctl's");
	} else {
		printf("# SEVCTL_TEST_DATA not set: the firmware-file vectors (sevctl's tests/data) "
		       "are checked by tests/bats/secret.bats against an independent digest\n");
	}
	ok(sev_launch_digest("/nonexistent", NULL, NULL, NULL, digest) == -ENOENT, "missing firmware: -ENOENT");
	ok(sev_launch_digest("/dev/null", "/dev/null", NULL, "x", digest) == -EINVAL,
	   "a kernel without initrd: -EINVAL");
}

int main(void)
{
	test_guid();
	test_packet();
	test_measurement();
	return tap_done();
}
