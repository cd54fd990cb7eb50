/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A secret table given to 'secret build/inject --table': the walk of its entries, as Linux's
 * efi_secret and grub's efisecret make it; a table that passes is rebuilt from its entries
 * and must come out the same. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sev/secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sev_entry e[256];
	uint8_t out[SEV_SECRET_AREA_MAX];
	size_t n = 0, len, off;
	bool disk;
	int built;

	fuzz_quiet();
	if (sev_table_check(data, size, &disk) < 0)
		return 0;
	len = (size_t)data[16] | (size_t)data[17] << 8 | (size_t)data[18] << 16 | (size_t)data[19] << 24;
	for (off = 20; off < len && n < 256; n++) {
		size_t elen = (size_t)data[off + 16] | (size_t)data[off + 17] << 8 |
			      (size_t)data[off + 18] << 16 | (size_t)data[off + 19] << 24;

		memcpy(e[n].guid, data + off, SEV_GUID_LEN);
		e[n].data = data + off + 20;
		e[n].len = elen - 20;
		off += elen;
	}
	if (off < len)
		return 0; /* more than 256 entries: not rebuilt */
	built = sev_table_build(e, n, out);
	/* The same bytes up to the length; the padding is the builder's zeros. */
	if (built < 0 || memcmp(out, data, len) != 0)
		abort();
	return 0;
}
