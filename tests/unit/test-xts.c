/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* AES-XTS against IEEE P1619 XTS-AES-256 vector 10 (512-byte data unit), plus plain64 IVs. */
#include <errno.h>
#include <string.h>

#include <errno.h>

#include "tap.h"
#include "image/xts.h"

static const char key_hex[] =
	"2718281828459045235360287471352662497757247093699959574966967627"
	"3141592653589793238462643383279502884197169399375105820974944592";

/* IEEE P1619/D16 vector 10: data unit sequence number 0xff, plaintext 00..ff 00..ff. */
static const char ct_hex[] =
	"1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
	"5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd"
	"5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
	"c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca"
	"2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0"
	"b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
	"93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec"
	"583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a"
	"84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
	"505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae"
	"9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29"
	"a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
	"6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f"
	"645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed4385"
	"1ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
	"773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151";

int main(void)
{
	unsigned char key[64], ct[512], pt[512], buf[3 * 512];
	struct xts *x = NULL;

	ok(unhex(key_hex, key, sizeof(key)) == 64 && unhex(ct_hex, ct, sizeof(ct)) == 512,
	   "test vectors decode");
	for (int i = 0; i < 512; i++)
		pt[i] = (unsigned char)i;

	ok(xts_new(key, 64, &x) == 0, "AES-256-XTS context");

	memcpy(buf, pt, 512);
	ok(xts_encrypt(x, buf, 512, 0xff) == 0 && memcmp(buf, ct, 512) == 0,
	   "vector 10: sector 0xff encrypts to the IEEE ciphertext");
	ok(xts_decrypt(x, buf, 512, 0xff) == 0 && memcmp(buf, pt, 512) == 0,
	   "vector 10: decrypts back to the plaintext");

	/* Three sectors in one call starting at 0xfe: the middle one is sector 0xff. */
	for (int s = 0; s < 3; s++)
		memcpy(buf + s * 512, pt, 512);
	ok(xts_encrypt(x, buf, sizeof(buf), 0xfe) == 0 && memcmp(buf + 512, ct, 512) == 0,
	   "multi-sector call: each sector gets its own plain64 IV");
	ok(memcmp(buf, buf + 512, 512) != 0 && memcmp(buf + 1024, buf + 512, 512) != 0,
	   "neighbouring sectors with equal plaintext differ");

	/* plain64 is 64-bit: a sector number above 2^32 must change the IV (plain would wrap). */
	memcpy(buf, pt, 512);
	memcpy(buf + 512, pt, 512);
	xts_encrypt(x, buf, 512, 0xff);
	xts_encrypt(x, buf + 512, 512, 0xffULL | (1ULL << 32));
	ok(memcmp(buf, buf + 512, 512) != 0, "plain64: sector 2^32+0xff differs from 0xff");

	ok(xts_encrypt(x, buf, 100, 0) == -EINVAL, "a partial sector is refused");
	ok(xts_new(key, 48, &(struct xts *){ NULL }) == -EINVAL, "a 384-bit key is refused");
	xts_free(x);
	return tap_done();
}
