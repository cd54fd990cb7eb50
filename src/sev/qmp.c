/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A QEMU Machine Protocol client on a unix socket (json-c for the JSON). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp.h"
#include "common/log.h"
#include "shared/cleanup.h"
#include "shared/interrupt.h"
#include "shared/util.h"

/* One JSON message: QMP sends each on a line of its own. It must be whole by end. */
static int read_message(struct qmp *q, double end, json_object **ret)
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
		double left = (end < q->deadline ? end : q->deadline) - now_seconds();

		if (left <= 0)
			return log_error_errno(ETIMEDOUT, "'%s': %s", q->path, end < q->deadline ?
					       "no whole answer from QEMU within 30 s" :
					       "the conversation with QEMU went past its deadline (--timeout)");
		pr = poll(&p, 1, (int)(left * 1000) + 1);
		if (pr < 0 && errno == EINTR && !interrupt_pending())
			continue;
		if (pr < 0)
			return log_error_errno(interrupt_pending() ? EINTR : errno,
					       "'%s': %m", q->path);
		if (pr == 0)
			continue; /* the time is checked above */
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

static int send_all(int fd, const char *s, size_t len)
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
	r = send_all(q->fd, text, strlen(text));
	if (r == 0)
		r = send_all(q->fd, "\n", 1);
	json_object_put(cmd);
	if (r < 0)
		return log_error_errno(r, "cannot send '%s' to '%s': %m", command, q->path);
	double end = now_seconds() + QMP_ANSWER_TIMEOUT_S;

	for (unsigned events = 0;; events++) {
		r = read_message(q, end, &msg);
		if (r < 0)
			return r;
		if (!json_object_object_get_ex(msg, "event", NULL))
			break;
		json_object_put(msg);
		if (events == QMP_MAX_EVENTS)
			return log_error_errno(EPROTO, "'%s': more than %d events and no answer to '%s'",
					       q->path, QMP_MAX_EVENTS, command);
	}
	if (json_object_object_get_ex(msg, "error", &v)) {
		_cleanup_free_ char *said = NULL;
		json_object *desc = NULL;

		json_object_object_get_ex(v, "desc", &desc);
		/* QEMU's words, from the host: printable, and not a screenful. */
		said = str_printable(desc && json_object_is_type(desc, json_type_string) ?
				     json_object_get_string(desc) : json_object_to_json_string(v), 200);
		log_error("QEMU refused '%s': %s", command, said ?: "(out of memory)");
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

static int handshake(struct qmp *q);

int qmp_open(struct qmp *q, const char *path, double timeout_s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(q, 0, sizeof(*q));
	q->fd = -1;
	q->deadline = now_seconds() + timeout_s;
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
	return handshake(q);
}

int qmp_open_fd(struct qmp *q, int fd, const char *name, double timeout_s)
{
	memset(q, 0, sizeof(*q));
	q->fd = fd;
	q->deadline = now_seconds() + timeout_s;
	q->path = strdup(name);
	if (!q->path)
		return log_error_errno(ENOMEM, "out of memory");
	return handshake(q);
}

/* The greeting, then capabilities negotiated. */
static int handshake(struct qmp *q)
{
	json_object *greeting = NULL;
	int r;

	r = read_message(q, now_seconds() + QMP_ANSWER_TIMEOUT_S, &greeting);
	if (r < 0)
		return r;
	r = json_object_object_get_ex(greeting, "QMP", NULL) ? 0 : -EPROTO;
	json_object_put(greeting);
	if (r < 0)
		return log_error_errno(r, "'%s' does not speak QMP: no greeting", q->path);
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
