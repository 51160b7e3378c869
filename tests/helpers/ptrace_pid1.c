/* From inside a container: try to get at PID 1 the three ways ptrace access allows.
 * Prints one line per attempt, "what: OK" or "what: ERRNONAME". Built static,
 * because the container's root has no libc. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *name(int err) {
    switch (err) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case ESRCH: return "ESRCH";
    case ENOENT: return "ENOENT";
    default: return strerror(err);
    }
}

int main(void) {
    pid_t target = 1;
    int err = 0;
    if (ptrace(PTRACE_ATTACH, target, 0, 0) == -1) {
        err = errno;
    } else {
        int status;
        waitpid(target, &status, __WALL);
        ptrace(PTRACE_DETACH, target, 0, 0);
    }
    printf("attach: %s\n", name(err));

    char buf[8];
    struct iovec local = {buf, sizeof buf};
    struct iovec remote = {(void *)0x10000, sizeof buf}; /* any address: access is checked first */
    err = process_vm_readv(target, &local, 1, &remote, 1, 0) == -1 ? errno : 0;
    printf("process_vm_readv: %s\n", name(err == EFAULT ? 0 : err)); /* EFAULT: access was granted */

    int fd = open("/proc/1/mem", O_RDONLY);
    printf("open /proc/1/mem: %s\n", name(fd == -1 ? errno : 0));

    /* Steal each of PID 1's descriptors (pidfd_getfd needs ptrace access). */
    int pidfd = pidfd_open(target, 0);
    for (int n = 0; n < 1024 && pidfd >= 0; n++) {
        int got = pidfd_getfd(pidfd, n, 0);
        if (got == -1) {
            if (errno == EBADF) continue;
            printf("pidfd_getfd: %s\n", name(errno));
            break;
        }
        char link[64], where[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%d", got);
        ssize_t len = readlink(link, where, sizeof where - 1);
        where[len < 0 ? 0 : len] = 0;
        printf("pid1 fd %d -> %s\n", n, where);
        close(got);
    }
    return 0;
}
