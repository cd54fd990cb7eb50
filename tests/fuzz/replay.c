/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A fuzz target's inputs replayed without libFuzzer, with the ordinary compiler (make check):
 * each file named, or each file of each directory named, once through LLVMFuzzerTestOneInput.
 * Prints one line per input; a crash fails the test that runs it. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL;
	size_t size = 0, cap = 0, n;

	if (!f) {
		perror(path);
		return 1;
	}
	for (;;) {
		if (size == cap) {
			uint8_t *d = realloc(data, cap = cap ? 2 * cap : 65536);

			if (!d) {
				free(data);
				fclose(f);
				return 1;
			}
			data = d;
		}
		n = fread(data + size, 1, cap - size, f);
		if (n == 0)
			break;
		size += n;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	printf("replayed %s (%zu bytes)\n", path, size);
	return 0;
}

int main(int argc, char *argv[])
{
	int bad = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		struct dirent **names;
		int n;

		if (stat(argv[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
			bad |= run_file(argv[i]);
			continue;
		}
		n = scandir(argv[i], &names, NULL, alphasort);
		for (int k = 0; k < n; k++) {
			char path[4096];

			if (names[k]->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name);
				bad |= run_file(path);
			}
			free(names[k]);
		}
		free(n >= 0 ? names : NULL);
	}
	return bad;
}
