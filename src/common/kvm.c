/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whether KVM works here (kvm.h). Our own probe: neither qemu nor libguestfs has one that
 * tells a /dev/kvm that works from one that only opens (qemu -accel kvm starts, then fails at
 * the guest's first instruction). The guest is the KVM API's smallest: one page, real mode,
 * one hlt. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <linux/kvm.h>
#endif

#include "kvm.h"
#include "log.h"
#include "shared/fault.h"

#define PROBE_SECONDS 5

#if defined(__x86_64__)
/* In the child: run the one-instruction guest; write what stopped it to out (a line). */
static void probe_child(int out)
{
	const size_t page = 0x1000;
	struct kvm_userspace_memory_region region = { 0 };
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 0x2 };
	struct kvm_run *run;
	unsigned char *mem;
	int kvm, vm, vcpu, size, api;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		dprintf(out, errno == ENOENT ? "no /dev/kvm" : "/dev/kvm: %m");
		return;
	}
	api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api < 0) {
		dprintf(out, "/dev/kvm is not KVM: %m");
		return;
	}
	if (api != KVM_API_VERSION) {
		dprintf(out, "/dev/kvm speaks KVM API %d, not %d", api, KVM_API_VERSION);
		return;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		dprintf(out, "KVM_CREATE_VM: %m");
		return;
	}
	mem = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		dprintf(out, "no memory for the test guest: %m");
		return;
	}
	mem[0] = 0xf4; /* hlt */
	region.guest_phys_addr = 0x1000;
	region.memory_size = page;
	region.userspace_addr = (unsigned long)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		dprintf(out, "KVM_SET_USER_MEMORY_REGION: %m");
		return;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu < 0 || size < (int)sizeof(*run)) {
		dprintf(out, "KVM_CREATE_VCPU: %m");
		return;
	}
	run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		dprintf(out, "cannot map the vCPU's state: %m");
		return;
	}
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) {
		dprintf(out, "KVM_GET_SREGS: %m");
		return;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0) {
		dprintf(out, "cannot set the test guest's registers: %m");
		return;
	}
	if (ioctl(vcpu, KVM_RUN, 0) < 0) {
		dprintf(out, "KVM_RUN: %m");
		return;
	}
	if (run->exit_reason != KVM_EXIT_HLT) {
		dprintf(out, "the test guest stopped with KVM exit reason %u%s, not HLT",
			run->exit_reason,
			run->exit_reason == KVM_EXIT_INTERNAL_ERROR ? " (KVM internal error)" : "");
		return;
	}
	dprintf(out, "ok");
}

/* The child's answer within PROBE_SECONDS, into buf; the child killed and reaped. */
static void probe(char *buf, size_t size)
{
	int p[2];
	pid_t pid;
	size_t n = 0;
	struct pollfd pfd;

	snprintf(buf, size, "the KVM probe could not run");
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		close(p[0]);
		probe_child(p[1]);
		_exit(0);
	}
	close(p[1]);
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	buf[0] = '\0';
	while (n + 1 < size) {
		ssize_t k;

		if (poll(&pfd, 1, PROBE_SECONDS * 1000) <= 0) {
			snprintf(buf, size, "the test guest did not stop within %d s", PROBE_SECONDS);
			n = 0;
			break;
		}
		k = read(p[0], buf + n, size - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	if (n > 0)
		buf[n] = '\0';
	else if (!buf[0])
		snprintf(buf, size, "the KVM probe died");
	close(p[0]);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}
#endif

bool kvm_works(const char **ret_why)
{
	static char answer[160];

	if (!answer[0]) {
#if defined(__x86_64__)
		if (fault_requested("kvm-broken"))
			snprintf(answer, sizeof(answer), "the test guest stopped with KVM exit "
				 "reason 17 (KVM internal error), not HLT (CVM_IMAGE_FAULT=kvm-broken)");
		else
			probe(answer, sizeof(answer));
#else
		snprintf(answer, sizeof(answer), "not an x86-64 host");
#endif
		log_debug("KVM: %s", answer);
	}
	if (strcmp(answer, "ok") == 0)
		return true;
	if (ret_why)
		*ret_why = answer;
	return false;
}
