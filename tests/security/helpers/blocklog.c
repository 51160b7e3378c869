/* Take PID 1's log channel with pidfd_getfd (CAP_SYS_PTRACE), fill it while
 * the parent is not reading, and clear O_NONBLOCK on the copy: the flag lives
 * on the open file description, which PID 1's descriptor shares.
 *   filled: N|ERRNO         bytes queued before the socket was full
 *   blocking: ok|none|ERRNO whether O_NONBLOCK is now clear on PID 1's end
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

int main(void) {
    int pidfd = syscall(SYS_pidfd_open, 1, 0);
    if (pidfd < 0) {
        printf("blocking: %s\n", strerrorname_np(errno));
        return 0;
    }
    for (int target = 3; target < 256; target++) {
        int fd = syscall(SYS_pidfd_getfd, pidfd, target, 0);
        if (fd < 0)
            continue;
        struct stat st;
        char c;
        int flags = fcntl(fd, F_GETFL);
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && (flags & O_NONBLOCK)
            && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
            static char line[4096];
            memset(line, 'x', sizeof line - 1);
            line[sizeof line - 1] = '\n';
            long total = 0;
            for (;;) {
                ssize_t n = send(fd, line, sizeof line, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0)
                    break;
                total += n;
            }
            if (errno != EAGAIN)
                printf("filled: %s\n", strerrorname_np(errno));
            else
                printf("filled: %ld\n", total > 0 ? 1L : 0L);
            if (fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                printf("blocking: %s\n", strerrorname_np(errno));
            else
                printf("blocking: ok\n");
            return 0;
        }
        close(fd);
    }
    printf("blocking: none\n");
    return 0;
}
