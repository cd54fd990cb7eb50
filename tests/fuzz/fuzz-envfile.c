/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* os-release and distro.conf syntax (the tarball's os-release is untrusted). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "shared/envfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct envfile e = {};
	unsigned line;

	fuzz_quiet();
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (envfile_parse(text, &e, &line) == 0) {
		(void)envfile_get(&e, "ID");
		envfile_done(&e);
	}
	free(text);
	return 0;
}
