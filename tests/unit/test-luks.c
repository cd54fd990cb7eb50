/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Our own LUKS1 unlock (luks1-open.c, luks_unlock() in its confined child) against
 * libcryptsetup's on the headers libcryptsetup writes: every slot, sha256 and sha1, wrong keys,
 * and hostile fields that must be refused or skipped, never followed. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libcryptsetup.h>

#include "tap.h"
#include "common/log.h"
#include "image/luks.h"
#include "image/luks1-open.h"
#include "shared/cleanup.h"

#define REGION (4096 * 512)

static struct secret sec(const char *s)
{
	return (struct secret){ .data = (unsigned char *)s, .size = strlen(s) };
}

/* A LUKS1 header file made by libcryptsetup itself: hash, and pass in every one of the 8 slots
 * (slot N: pass with the digit N appended), at 1000 iterations. Returns the volume key in vk. */
static int make_header(const char *path, const char *hash, unsigned char vk[64])
{
	struct crypt_pbkdf_type fast = { .type = CRYPT_KDF_PBKDF2, .hash = hash, .iterations = 1000,
					 .flags = CRYPT_PBKDF_NO_BENCHMARK };
	struct crypt_params_luks1 p = { .hash = hash };
	struct crypt_device *cd = NULL;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), r;

	if (fd < 0 || ftruncate(fd, REGION) < 0)
		return -errno;
	close(fd);
	for (int i = 0; i < 64; i++)
		vk[i] = (unsigned char)(i * 7 + 3);
	r = crypt_init(&cd, path);
	if (r == 0)
		r = crypt_set_pbkdf_type(cd, &fast);
	if (r == 0)
		r = crypt_format(cd, CRYPT_LUKS1, "aes", "xts-plain64", NULL, (const char *)vk, 64, &p);
	for (int slot = 0; r >= 0 && slot < 8; slot++) {
		char pass[16];

		snprintf(pass, sizeof(pass), "pass%d", slot);
		r = crypt_keyslot_add_by_volume_key(cd, slot, (const char *)vk, 64, pass, strlen(pass));
	}
	crypt_free(cd);
	return r < 0 ? r : 0;
}

static unsigned char *slurp(const char *path)
{
	unsigned char *b = malloc(REGION);
	int fd = open(path, O_RDONLY);

	if (!b || fd < 0 || pread(fd, b, REGION, 0) != REGION) {
		free(b);
		b = NULL;
	}
	if (fd >= 0)
		close(fd);
	return b;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void check_hash(const char *hash)
{
	char path[] = "/tmp/cvm-test-luks.XXXXXX";
	unsigned char vk[64], got[64], *h, *m;
	struct crypt_device *cd = NULL;
	struct secret out = {}, p;
	int fd = mkstemp(path), slot = -1, all = 1, r;

	ok(fd >= 0 && close(fd) == 0 && make_header(path, hash, vk) == 0,
	   "%s: libcryptsetup wrote a header with all 8 slots in use", hash);
	h = slurp(path);
	ok(h != NULL, "%s: the header region is read", hash);
	if (!h)
		return;
	for (int i = 0; i < 8; i++) {
		char pass[16];

		snprintf(pass, sizeof(pass), "pass%d", i);
		p = sec(pass);
		r = luks1_open(h, REGION, &p, 1000, got, &slot);
		if (r != 0 || slot != i || memcmp(got, vk, 64) != 0)
			all = 0;
	}
	ok(all, "%s: each slot's passphrase opens that slot, with libcryptsetup's volume key", hash);
	p = sec("pass9");
	ok(luks1_open(h, REGION, &p, 1000, got, &slot) == -EPERM, "%s: a wrong passphrase: -EPERM", hash);
	p = sec("pass3");
	ok(luks1_open(h, REGION, &p, 999, got, &slot) == -E2BIG,
	   "%s: a digest over the iteration cap: -E2BIG, no slot tried", hash);

	/* Through luks_unlock(): the confined child, as inspect and rekey use it. */
	ok(luks_load(path, &cd) == 0, "%s: libcryptsetup loads it", hash);
	p = sec("pass5");
	slot = -1;
	ok(cd && luks_unlock(cd, &p, &out, &slot) == 0 && slot == 5 && out.size == 64 &&
		   memcmp(out.data, vk, 64) == 0,
	   "%s: luks_unlock() in its confined child: slot 5, the volume key", hash);
	secret_free(&out);
	p = sec("nope");
	ok(cd && luks_unlock(cd, &p, &out, &slot) == -EPERM && out.data == NULL,
	   "%s: luks_unlock() with a wrong passphrase: -EPERM, no key", hash);
	luks_free(cd);

	/* Hostile fields: each refused or the slot skipped, none followed. */
	m = malloc(REGION);
	memcpy(m, h, REGION);
	put32(m + 208 + 48 * 2 + 44, 3999); /* slot 2's stripes */
	p = sec("pass2");
	ok(luks1_open(m, REGION, &p, 1000, got, &slot) == -EPERM, "%s: stripes not 4000: slot skipped", hash);
	memcpy(m, h, REGION);
	put32(m + 208 + 48 * 2 + 40, REGION / 512 - 1); /* key material past the region */
	ok(luks1_open(m, REGION, &p, 1000, got, &slot) == -EPERM,
	   "%s: key material beyond the region: slot skipped", hash);
	memcpy(m, h, REGION);
	put32(m + 208 + 48 * 2 + 40, 0); /* key material over the header */
	ok(luks1_open(m, REGION, &p, 1000, got, &slot) == -EPERM, "%s: key material over the header: skipped",
	   hash);
	memcpy(m, h, REGION);
	put32(m + 208 + 48 * 2 + 4, 1u << 30); /* the slot's iterations */
	ok(luks1_open(m, REGION, &p, 1000, got, &slot) == -EPERM, "%s: a slot over the cap: not tried", hash);
	memcpy(m, h, REGION);
	memcpy(m + 8, "twofish", 8);
	ok(luks1_open(m, REGION, &p, 1000, got, &slot) == -EMEDIUMTYPE, "%s: another cipher: -EMEDIUMTYPE",
	   hash);
	memcpy(m, h, REGION);
	memset(m + 72, 'a', 32); /* a hash name without its NUL */
	ok(luks1_open(m, REGION, &p, 1000, got, &slot) == -EMEDIUMTYPE, "%s: an unterminated hash name", hash);
	memcpy(m, h, REGION);
	put32(m + 108, 32);
	ok(luks1_open(m, REGION, &p, 1000, got, &slot) == -EMEDIUMTYPE, "%s: a 256-bit key: -EMEDIUMTYPE", hash);
	ok(luks1_open(h, 500, &p, 1000, got, &slot) == -EMEDIUMTYPE, "%s: a region shorter than a header",
	   hash);
	free(m);
	free(h);
	unlink(path);
}

/* libcryptsetup's own notes (a header file too small to activate: it never is) not on stderr. */
static void quiet(int level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

int main(void)
{
	log_set_max_level(LOG_LEVEL_ERR);
	crypt_set_log_callback(NULL, quiet, NULL);
	check_hash("sha256");
	check_hash("sha1");
	return tap_done();
}
