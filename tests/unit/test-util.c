/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Size parsing and formatting, UUIDs, sparse copies. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/util.h"
#include <errno.h>

#include "tap.h"

static int size_is(const char *s, uint64_t want)
{
	uint64_t v = 0;

	return parse_size(s, &v) == 0 && v == want;
}

int main(void)
{
	uint64_t v;
	char buf[32], u[37];

	{
		int *a = NULL;
		size_t cap = 0;

		ok(greedy_realloc((void **)&a, &cap, 1, sizeof(*a)) == 0 && a && cap == 16,
		   "greedy_realloc: room for 16 at first");
		a[15] = 7;
		ok(greedy_realloc((void **)&a, &cap, 16, sizeof(*a)) == 0 && cap == 16,
		   "greedy_realloc: no change while it fits");
		ok(greedy_realloc((void **)&a, &cap, 40, sizeof(*a)) == 0 && cap == 64 && a[15] == 7,
		   "greedy_realloc: doubled until it fits, contents kept");
		ok(greedy_realloc((void **)&a, &cap, SIZE_MAX / 2, sizeof(*a)) == -ENOMEM && cap == 64 &&
			   a[15] == 7,
		   "greedy_realloc: an impossible size is -ENOMEM, the array untouched");
		free(a);
	}
	ok(size_is("4G", 4 * GiB), "4G");
	ok(size_is("4GiB", 4 * GiB), "4GiB");
	ok(size_is("4gb", 4 * GiB), "4gb");
	ok(size_is("512M", 512 * MiB), "512M");
	ok(size_is("1.5G", 3 * GiB / 2), "1.5G");
	ok(size_is("1048576", MiB), "plain bytes");
	ok(size_is("2T", 2048 * GiB), "2T");
	ok(size_is("100k", 100 * KiB), "100k");
	ok(parse_size("", &v) == -EINVAL, "empty refused");
	ok(parse_size("-1G", &v) == -EINVAL, "negative refused");
	ok(parse_size("4X", &v) == -EINVAL, "unknown suffix refused");
	ok(parse_size("4G extra", &v) == -EINVAL, "trailing junk refused");
	ok(parse_size("0", &v) == -EINVAL, "zero refused");
	ok(parse_size(" 4G", &v) == -EINVAL, "leading space refused");
	ok(parse_size("99999999999T", &v) == -ERANGE, "overflow refused");

	ok(strcmp(format_size(1536 * MiB, buf, sizeof(buf)), "1.5 GiB") == 0, "format 1.5 GiB");
	ok(strcmp(format_size(100, buf, sizeof(buf)), "100 B") == 0, "format 100 B");

	ok(uuid_random(u) == 0 && strlen(u) == 36 && u[14] == '4' && strchr("89ab", u[19]),
	   "random UUID is version 4, RFC variant");

	ok(round_up(1, MiB) == MiB && round_up(MiB, MiB) == MiB && round_down(MiB + 1, MiB) == MiB,
	   "rounding");

	{
		char src[] = "/tmp/cvm-test-src.XXXXXX", dst[] = "/tmp/cvm-test-dst.XXXXXX";
		int s = mkstemp(src), d = mkstemp(dst);
		unsigned char data[8192], back[8192];
		struct stat st;

		memset(data, 0, sizeof(data));
		memset(data + 4096, 0xab, 4096);
		ok(s >= 0 && d >= 0 && pwrite_all(s, data, sizeof(data), 0) == 0 &&
			   ftruncate(d, 4 * MiB) == 0 &&
			   copy_range_sparse(s, 0, d, MiB, sizeof(data)) == 0,
		   "sparse copy");
		ok(pread_all(d, back, sizeof(back), MiB) == 0 && memcmp(back, data, 8192) == 0,
		   "sparse copy: content lands at the offset");
		ok(fstat(d, &st) == 0 && st.st_blocks * 512 <= 8192,
		   "sparse copy: zero blocks are not written (%lld bytes allocated)",
		   (long long)st.st_blocks * 512);
		unlink(src);
		unlink(dst);
		close(s);
		close(d);
	}
	{
		char *u8;

		u8 = utf8_valid_copy("plain \"quoted\" a\\b");
		ok(u8 && strcmp(u8, "plain \"quoted\" a\\b") == 0, "UTF-8: ASCII unchanged");
		free(u8);
		u8 = utf8_valid_copy("gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac \xf0\x9f\x94\x91");
		ok(u8 && strcmp(u8, "gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac \xf0\x9f\x94\x91") == 0,
		   "UTF-8: two-, three- and four-byte sequences unchanged");
		free(u8);
		u8 = utf8_valid_copy("a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d\xf4\x90\x80\x80" "e\xe2\x82");
		ok(u8 && strcmp(u8, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd" "c"
				    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "d"
				    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "e"
				    "\xef\xbf\xbd\xef\xbf\xbd") == 0,
		   "UTF-8: a stray byte, an overlong form, a surrogate, above U+10FFFF and a cut "
		   "sequence: each byte U+FFFD");
		free(u8);
		ok(utf8_sequence_len((const unsigned char *)"\xe2\x82\xac", 2) == 0,
		   "UTF-8: a sequence longer than the bytes left is not one");
	}
	return tap_done();
}
