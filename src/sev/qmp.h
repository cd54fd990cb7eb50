/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A QEMU Machine Protocol client on a unix socket (json-c for the JSON). */
#pragma once

#include <json-c/json.h>

/* The peer is the VM host, the adversary of the guest owner: every answer has a time limit of
 * its own (not reset by bytes trickling in), the whole conversation an overall deadline, and
 * the events skipped while waiting for one answer are counted. */
#define QMP_ANSWER_TIMEOUT_S 30
#define QMP_MAX_EVENTS 1000

struct qmp {
	int fd;
	char *path;
	char buf[65536];
	size_t len;
	double deadline;  /* now_seconds() past which nothing more is waited for */
};

/* Connect, read the greeting, negotiate capabilities; everything on q, until qmp_close(), ends
 * within timeout_s seconds. Logs, naming the socket. */
int qmp_open(struct qmp *q, const char *path, double timeout_s);
/* The same over a connected socket fd (taken over: qmp_close() closes it), named name. */
int qmp_open_fd(struct qmp *q, int fd, const char *name, double timeout_s);
void qmp_close(struct qmp *q);

/*
 * Execute command with args (may be NULL; taken over) and return its "return" object in
 * *ret (a new reference, may be NULL). Events in between are skipped. A QMP error is logged
 * with QEMU's description and returns -EIO. Logs.
 */
int qmp_execute(struct qmp *q, const char *command, json_object *args, json_object **ret);
