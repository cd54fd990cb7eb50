/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The AES-XTS/plain64 cipher alone, in memory, one core: median MB/s over several runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/xts.h"
#include "shared/util.h"

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char *argv[])
{
	const size_t chunk = 1 << 20, total = 512u << 20;
	int runs = argc > 1 ? atoi(argv[1]) : 5;
	unsigned char key[64];
	double rates[64];
	struct xts *x;
	unsigned char *buf = calloc(1, chunk);

	if (runs < 1 || runs > 64 || !buf)
		return 2;
	for (int i = 0; i < 64; i++)
		key[i] = (unsigned char)(i * 37 + 11);
	if (xts_new(key, sizeof(key), &x) < 0)
		return 1;
	for (int r = 0; r < runs; r++) {
		double t = now_seconds();

		for (size_t off = 0; off < total; off += chunk)
			xts_encrypt(x, buf, chunk, off / 512);
		rates[r] = (double)total / (now_seconds() - t) / 1e6;
	}
	qsort(rates, (size_t)runs, sizeof(double), cmp);
	printf("%.0f\n", rates[runs / 2]);
	xts_free(x);
	free(buf);
	return 0;
}
