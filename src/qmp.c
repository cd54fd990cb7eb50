/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A QEMU Machine Protocol client on a unix socket (json-c for the JSON). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "qmp.h"
#include "shared/interrupt.h"
#include "shared/util.h"

#define QMP_TIMEOUT_MS 30000

/* One JSON message: QMP sends each on a line of its own. */
static int read_message(struct qmp *q, json_object **ret)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		ssize_t n;
		int pr;

		if (nl) {
			*nl = '\0';
			*ret = json_tokener_parse(q->buf);
			q->len -= (size_t)(nl + 1 - q->buf);
			memmove(q->buf, nl + 1, q->len);
			if (!*ret || !json_object_is_type(*ret, json_type_object)) {
				json_object_put(*ret);
				return log_error_errno(EPROTO, "'%s' does not speak QMP: a message that "
						       "is not a JSON object", q->path);
			}
			return 0;
		}
		if (q->len >= sizeof(q->buf) - 1)
			return log_error_errno(EPROTO, "'%s': a QMP message longer than %zu bytes",
					       q->path, sizeof(q->buf));
		pr = poll(&p, 1, QMP_TIMEOUT_MS);
		if (pr < 0 && errno == EINTR && !interrupt_pending())
			continue;
		if (pr < 0)
			return log_error_errno(interrupt_pending() ? EINTR : errno,
					       "'%s': %m", q->path);
		if (pr == 0)
			return log_error_errno(ETIMEDOUT, "'%s': no answer from QEMU in %d s", q->path,
					       QMP_TIMEOUT_MS / 1000);
		n = read(q->fd, q->buf + q->len, sizeof(q->buf) - 1 - q->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return log_error_errno(errno, "cannot read from '%s': %m", q->path);
		if (n == 0)
			return log_error_errno(ECONNRESET, "'%s' closed the connection", q->path);
		q->len += (size_t)n;
	}
}

static int write_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

int qmp_execute(struct qmp *q, const char *command, json_object *args, json_object **ret)
{
	json_object *cmd = json_object_new_object(), *msg = NULL, *v;
	const char *text;
	int r;

	if (ret)
		*ret = NULL;
	if (!cmd) {
		json_object_put(args);
		return log_error_errno(ENOMEM, "out of memory");
	}
	json_object_object_add(cmd, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(cmd, "arguments", args);
	text = json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	r = write_all(q->fd, text, strlen(text));
	if (r == 0)
		r = write_all(q->fd, "\n", 1);
	json_object_put(cmd);
	if (r < 0)
		return log_error_errno(r, "cannot send '%s' to '%s': %m", command, q->path);
	for (;;) {
		r = read_message(q, &msg);
		if (r < 0)
			return r;
		if (json_object_object_get_ex(msg, "event", NULL)) {
			json_object_put(msg);
			continue;
		}
		break;
	}
	if (json_object_object_get_ex(msg, "error", &v)) {
		json_object *desc = NULL;

		json_object_object_get_ex(v, "desc", &desc);
		log_error("QEMU refused '%s': %s", command,
			  desc ? json_object_get_string(desc) : json_object_to_json_string(v));
		json_object_put(msg);
		return -EIO;
	}
	if (!json_object_object_get_ex(msg, "return", &v)) {
		json_object_put(msg);
		return log_error_errno(EPROTO, "'%s' does not speak QMP: no 'return' for '%s'", q->path,
				       command);
	}
	if (ret)
		*ret = json_object_get(v);
	json_object_put(msg);
	return 0;
}

int qmp_open(struct qmp *q, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	json_object *greeting = NULL;
	int r;

	memset(q, 0, sizeof(*q));
	q->fd = -1;
	q->path = strdup(path);
	if (!q->path)
		return log_error_errno(ENOMEM, "out of memory");
	if (strlen(path) >= sizeof(sa.sun_path))
		return log_error_errno(ENAMETOOLONG, "QMP socket path '%s' is too long", path);
	strcpy(sa.sun_path, path);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->fd < 0)
		return log_error_errno(errno, "cannot create a socket: %m");
	if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return log_error_errno(errno, "cannot connect to the QMP socket '%s': %m", path);
	r = read_message(q, &greeting);
	if (r < 0)
		return r;
	r = json_object_object_get_ex(greeting, "QMP", NULL) ? 0 : -EPROTO;
	json_object_put(greeting);
	if (r < 0)
		return log_error_errno(r, "'%s' does not speak QMP: no greeting", path);
	return qmp_execute(q, "qmp_capabilities", NULL, NULL);
}

void qmp_close(struct qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	free(q->path);
	q->fd = -1;
	q->path = NULL;
}
