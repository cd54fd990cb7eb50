/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A QEMU Machine Protocol client on a unix socket (json-c for the JSON). */
#pragma once

#include <json-c/json.h>

struct qmp {
	int fd;
	char *path;
	char buf[65536];
	size_t len;
};

/* Connect, read the greeting, negotiate capabilities. Logs, naming the socket. */
int qmp_open(struct qmp *q, const char *path);
void qmp_close(struct qmp *q);

/*
 * Execute command with args (may be NULL; taken over) and return its "return" object in
 * *ret (a new reference, may be NULL). Events in between are skipped. A QMP error is logged
 * with QEMU's description and returns -EIO. Logs.
 */
int qmp_execute(struct qmp *q, const char *command, json_object *args, json_object **ret);
