/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inspect: the checks printed, as text or one JSON object. */
#include <errno.h>
#include <stdio.h>

#include "context.h"
#include "common/json.h"
#include "image/gpt.h"
#include "image/image.h"
#include "image/luks.h"

static const char *const state_names[] = { "ok", "warning", "fail" };

/* ---- output -------------------------------------------------------------------------- */

void inspect_print_text(const struct inspect_ctx *c)
{
	for (size_t i = 0; i < c->checks.n; i++)
		printf("%-7s %-28s %s\n", state_names[c->checks.v[i].state], c->checks.v[i].name,
		       c->checks.v[i].detail);
}

static char *mode_text(char buf[8], unsigned mode)
{
	snprintf(buf, 8, "%04o", mode & 07777);
	return buf;
}

int inspect_print_json(const struct inspect_ctx *c, bool passed)
{
	const struct gpt_table *t = &c->gpt;
	struct json_object *o = json_object_new_object(), *gpt = json_object_new_object();
	struct json_object *parts = json_object_new_array(), *esp = json_object_new_object();
	struct json_object *files = json_object_new_array(), *checks = json_object_new_array();
	char mode[8];

	json_add_str(o, "image", c->im ? c->im->path : c->opt->image);
	json_add_str(o, "format", c->im && c->im->qcow2 ? "qcow2" : "raw");
	json_add_u64(o, "size", c->im ? c->im->size : 0);
	json_add_bool(o, "passed", passed);
	json_add_str(gpt, "type", t->type);
	json_add_str(gpt, "uuid", t->ptuuid);
	for (unsigned i = 0; i < t->n; i++) {
		const struct gpt_part *p = &t->parts[i];
		struct json_object *e = json_object_new_object();

		json_add_u64(e, "number", p->number);
		json_add_u64(e, "start", p->start);
		json_add_u64(e, "size", p->size);
		json_add_str(e, "type", p->type_guid);
		json_add_str(e, "uuid", p->partuuid);
		json_add_str(e, "name", p->name);
		json_add_str(e, "fs_type", p->fs_type);
		json_add_str(e, "fs_uuid", p->fs_uuid);
		json_object_array_add(parts, e);
	}
	json_add(gpt, "partitions", parts);
	json_add(o, "gpt", gpt);
	for (size_t i = 0; c->esp_files && c->esp_files[i]; i++)
		json_object_array_add(files, json_str(c->esp_files[i]));
	json_add(esp, "files", files);
	json_add_str(esp, "grub_unlocks", c->grub_uuid);
	json_add(o, "esp", esp);
	if (c->have_luks) {
		const struct luks_desc *d = &c->luks;
		struct json_object *luks = json_object_new_object(), *slots = json_object_new_array();

		json_add_u64(luks, "version", d->version);
		json_add_str(luks, "cipher", d->cipher);
		json_add_str(luks, "mode", d->mode);
		json_add_str(luks, "hash", d->hash);
		json_add_str(luks, "uuid", d->uuid);
		json_add_u64(luks, "key_bits", d->key_bits);
		json_add_u64(luks, "payload_offset", d->payload_offset);
		for (int i = 0; i < 8; i++) {
			struct json_object *e;

			if (!d->slots[i].active)
				continue;
			e = json_object_new_object();
			json_add_int(e, "slot", i);
			json_add_u64(e, "iterations", d->slots[i].iterations);
			json_object_array_add(slots, e);
		}
		json_add(luks, "slots", slots);
		if (c->opt->key_file || c->opt->recovery_file)
			json_add_int(luks, "opened_slot", c->opened_slot);
		json_add(o, "luks", luks);
	}
	if (c->have_fs) {
		struct json_object *fs = json_object_new_object(), *kernels = json_object_new_array();

		json_add_str(fs, "uuid", c->fsinfo.uuid);
		json_add_str(fs, "label", c->fsinfo.label);
		json_add_str(fs, "initramfs_tool", c->tool);
		json_add_u64(fs, "size", c->fsinfo.blocks * c->fsinfo.block_size);
		json_add_u64(fs, "free", c->fsinfo.free_blocks * c->fsinfo.block_size);
		for (size_t i = 0; i < c->n_kernels; i++) {
			const struct kernel *k = &c->kernels[i];
			struct json_object *e = json_object_new_object(), *members = json_object_new_array();

			json_add_str(e, "version", k->version);
			json_add_str(e, "initramfs", k->initrd);
			json_add_str(e, "initramfs_mode", mode_text(mode, k->initrd_mode));
			for (size_t m = 0; m < k->n_members; m++) {
				struct json_object *km = json_object_new_object();

				json_add_str(km, "name", k->members[m].name);
				json_add_str(km, "mode", mode_text(mode, k->members[m].mode));
				json_add_bool(km, "holds_key", k->members[m].holds_key);
				json_object_array_add(members, km);
			}
			json_add(e, "key_members", members);
			json_object_array_add(kernels, e);
		}
		json_add(fs, "kernels", kernels);
		json_add(o, "rootfs", fs);
	}
	for (size_t i = 0; i < c->checks.n; i++) {
		struct json_object *e = json_object_new_object();

		json_add_str(e, "name", c->checks.v[i].name);
		json_add_str(e, "status", state_names[c->checks.v[i].state]);
		json_add_str(e, "detail", c->checks.v[i].detail);
		json_object_array_add(checks, e);
	}
	json_add(o, "checks", checks);
	return json_print(o, stdout);
}

