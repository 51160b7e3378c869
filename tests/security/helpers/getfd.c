/* Take PID 1's log channel with pidfd_getfd (CAP_SYS_PTRACE), as a workload
 * that wants to read or forge PID 1's log would, and report what it gives:
 *   kind: pipe|socket       the descriptor among PID 1's fds 3..255 that is
 *                           a pipe, or a socket whose reading end is shut
 *                           (a peek returns end of file at once)
 *   reopen: ok|ERRNO        /proc/self/fd/M reopened for reading
 *   read: N|eof|ERRNO       a non-blocking read of the copy itself
 *   write: N|ERRNO          the bytes of stdin (one line) written to it
 * Never waits for anything. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *kind_of(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0)
        return NULL;
    if (S_ISFIFO(st.st_mode))
        return "pipe";
    if (S_ISSOCK(st.st_mode)) {
        char c;
        if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
            return "socket";
    }
    return NULL;
}

int main(void) {
    int pidfd = syscall(SYS_pidfd_open, 1, 0);
    if (pidfd < 0) {
        printf("pidfd_open: %s\n", strerrorname_np(errno));
        return 0;
    }
    int fd = -1;
    const char *kind = NULL;
    for (int target = 3; target < 256 && kind == NULL; target++) {
        fd = syscall(SYS_pidfd_getfd, pidfd, target, 0);
        if (fd < 0)
            continue;
        kind = kind_of(fd);
        if (kind == NULL)
            close(fd);
    }
    if (kind == NULL) {
        printf("kind: none\n");
        return 0;
    }
    printf("kind: %s\n", kind);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int again = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    printf("reopen: %s\n", again < 0 ? strerrorname_np(errno) : "ok");
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0)
        printf("read: %s\n", strerrorname_np(errno));
    else if (n == 0)
        printf("read: eof\n");
    else
        printf("read: %zd\n", n);
    n = read(0, buf, sizeof buf);
    ssize_t w = write(fd, buf, n > 0 ? (size_t)n : 0);
    if (w < 0)
        printf("write: %s\n", strerrorname_np(errno));
    else
        printf("write: %zd\n", w);
    return 0;
}
