/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The GPT plan: ESP at 1..100 MiB, root after it, MiB aligned, backup GPT room at the end. */
#include "image/gpt.h"
#include "shared/util.h"
#include <errno.h>

#include "tap.h"

int main(void)
{
	struct gpt_plan p = {};

	ok(gpt_plan_compute(4 * GiB, &p) == 0, "4 GiB disk plans");
	ok(p.esp_start == 1 * MiB && p.esp_size == 99 * MiB, "ESP 1 MiB .. 100 MiB");
	ok(p.root_start == 100 * MiB, "root starts at 100 MiB");
	ok(p.root_start + p.root_size + MiB == 4 * GiB, "root ends 1 MiB before the end");
	ok(p.root_size % MiB == 0 && p.root_start % MiB == 0, "MiB aligned");
	ok((p.disk_size - (p.root_start + p.root_size)) / 512 >= 33,
	   "room for the backup GPT (33 sectors)");
	ok(gpt_plan_compute(4 * GiB + 512, &p) == -EINVAL, "unaligned disk size refused");
	ok(gpt_plan_compute(101 * MiB, &p) == -EINVAL, "disk with no room for root refused");
	ok(gpt_plan_compute(102 * MiB, &p) == 0 && p.root_size == MiB, "smallest disk: 1 MiB root");
	ok(gpt_disk_size_for_root(18 * MiB) == 119 * MiB, "disk size for an 18 MiB root");
	ok(gpt_disk_size_for_root(18 * MiB + 1) == 120 * MiB, "root size rounded up to MiB");
	return tap_done();
}
