/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a QMP peer (the VM host's QEMU, or whatever sits on its socket) answers: the greeting,
 * events, and the answers to secret inject's queries, as one byte stream. */
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "sev/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmp q;
	json_object *ret = NULL;
	int sv[2];

	fuzz_quiet();
	/* Within what the socket buffers: the peer's bytes are all there before we read. */
	if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR); /* then end of stream, not a wait */
	if (qmp_open_fd(&q, sv[0], "fuzz", 5) == 0 && qmp_execute(&q, "query-sev", NULL, &ret) == 0) {
		json_object_put(ret);
		ret = NULL;
		if (qmp_execute(&q, "query-sev-launch-measure", NULL, &ret) == 0)
			json_object_put(ret);
	}
	qmp_close(&q);
	close(sv[1]);
	return 0;
}
