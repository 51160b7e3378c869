/* Make PID 1 run system calls for us (ptrace syscall injection), to show
 * whether PID 1 is bound by the workload's seccomp filter. Each call is made
 * twice: directly ("self ...") and inside PID 1 ("pid1 ..."). Lines:
 * "<who> <call>: ok <result>" or "<who> <call>: <ERRNO>"; "attach: <ERRNO>"
 * when ptrace is refused. A descriptor PID 1 got is closed in PID 1 again.
 * "inject nice": only PID 1's CapEff, then setpriority(PRIO_PROCESS, 0, -20)
 * made by PID 1, which needs CAP_SYS_NICE in PID 1 ("pid1 setpriority: ok"). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t target = 1;
static struct user_regs_struct saved;

static long in_target(long nr, long a, long b, long c) {
    struct user_regs_struct r = saved;
    int status;
    r.rax = nr;
    r.rdi = a;
    r.rsi = b;
    r.rdx = c;
    r.orig_rax = -1; /* no syscall restart for our call */
    r.rip = saved.rip - 2; /* the syscall instruction PID 1 is stopped after */
    if (ptrace(PTRACE_SETREGS, target, 0, &r) == -1) return -errno;
    if (ptrace(PTRACE_SINGLESTEP, target, 0, 0) == -1) return -errno;
    if (waitpid(target, &status, __WALL) == -1) return -errno;
    if (ptrace(PTRACE_GETREGS, target, 0, &r) == -1) return -errno;
    return (long)r.rax;
}

static void say(const char *what, long r) {
    if (r < 0 && r > -4096) printf("%s: %s\n", what, strerrorname_np((int)-r));
    else printf("%s: ok\n", what);
}

static void cap_eff(void) {
    char line[256];
    FILE *f = fopen("/proc/1/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "CapEff:", 7) == 0) printf("pid1 %s", line);
    if (f) fclose(f);
}

int main(int argc, char **argv) {
    int nice_only = argc > 1 && strcmp(argv[1], "nice") == 0;
    long r = nice_only ? 0 : syscall(SYS_socket, 40, 1, 0);
    if (nice_only) {
        cap_eff();
    } else {
        say("self socket(AF_VSOCK)", r < 0 ? -errno : r);
        r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
        say("self keyctl", r < 0 ? -errno : r);
    }

    int status;
    if (ptrace(PTRACE_SEIZE, target, 0, 0) == -1 ||
        ptrace(PTRACE_INTERRUPT, target, 0, 0) == -1) {
        printf("attach: %s\n", strerrorname_np(errno));
        return 0;
    }
    waitpid(target, &status, __WALL);
    ptrace(PTRACE_GETREGS, target, 0, &saved);
    struct user_regs_struct restore = saved;
    long word = ptrace(PTRACE_PEEKTEXT, target, saved.rip - 2, 0);
    if ((word & 0xffff) != 0x050f) {
        /* Stopped in user space: run PID 1 to its next system call's entry,
         * and on leaving make it issue that call again. */
        ptrace(PTRACE_SYSCALL, target, 0, 0);
        waitpid(target, &status, __WALL);
        ptrace(PTRACE_GETREGS, target, 0, &saved);
        restore = saved;
        restore.rip = saved.rip - 2;
        restore.rax = saved.orig_rax;
        restore.orig_rax = -1;
        word = ptrace(PTRACE_PEEKTEXT, target, saved.rip - 2, 0);
    }
    if ((word & 0xffff) != 0x050f) {
        printf("attach: not stopped after a syscall instruction\n");
    } else if (nice_only) {
        say("pid1 setpriority", in_target(SYS_setpriority, PRIO_PROCESS, 0, -20));
    } else {
        long fd = in_target(SYS_socket, 40, 1, 0);
        say("pid1 socket(AF_VSOCK)", fd);
        if (fd >= 0) in_target(SYS_close, fd, 0, 0);
        say("pid1 keyctl", in_target(SYS_keyctl, 0, -3, 0));
    }
    ptrace(PTRACE_SETREGS, target, 0, &restore);
    ptrace(PTRACE_DETACH, target, 0, 0);
    return 0;
}
