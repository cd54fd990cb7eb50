/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What confinement costs a reader (confine.h): the median of N runs of confine_run() with a
 * reader that answers a few bytes, against a plain fork + pipe + wait doing the same, measured
 * in the same run. Prints microseconds and the ratio. bench/confine-cost [N] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/confine.h"

static int answer(void *userdata, int fd)
{
	(void)userdata;
	return write(fd, "ok", 2) == 2 ? 0 : -5;
}

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 101;
	double *conf = calloc((size_t)n, sizeof(double)), *plain = calloc((size_t)n, sizeof(double));

	if (n < 1 || !conf || !plain)
		return 1;
	for (int i = 0; i < n; i++) {
		char *out, buf[8];
		size_t len;
		int sig, p[2], st;
		double t = now_us();

		if (confine_run(answer, NULL, -1, 64, &out, &len, &sig) < 0)
			return 1;
		free(out);
		conf[i] = now_us() - t;
		t = now_us();
		if (pipe(p) < 0)
			return 1;
		pid_t pid = fork();
		if (pid == 0) {
			close(p[0]);
			_exit(answer(NULL, p[1]) < 0);
		}
		close(p[1]);
		while (read(p[0], buf, sizeof(buf)) > 0)
			;
		close(p[0]);
		waitpid(pid, &st, 0);
		plain[i] = now_us() - t;
	}
	qsort(conf, (size_t)n, sizeof(double), cmp);
	qsort(plain, (size_t)n, sizeof(double), cmp);
	printf("confined reader: median %.0f us over %d runs; plain fork+pipe+wait: %.0f us; ratio %.2f\n",
	       conf[n / 2], n, plain[n / 2], conf[n / 2] / plain[n / 2]);
	return 0;
}
