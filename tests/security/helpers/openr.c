/* Reopen each PATH (a /proc/PID/fd/N magic link) for reading, as a thief of
 * what its owner writes there would. One line per pipe or socket it names:
 * "pipe: ok" or "socket: ENXIO" (the kind, not the inode, which varies).
 * Other targets (files, anon inodes) are skipped. Reads nothing. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char target[256];
        ssize_t n = readlink(argv[i], target, sizeof target - 1);
        if (n < 0)
            continue;  /* closed since the shell listed it */
        target[n] = '\0';
        const char *kind = strncmp(target, "pipe:", 5) == 0     ? "pipe"
                           : strncmp(target, "socket:", 7) == 0 ? "socket"
                                                                : NULL;
        if (kind == NULL)
            continue;
        int fd = open(argv[i], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        printf("%s: %s\n", kind, fd < 0 ? strerrorname_np(errno) : "ok");
        if (fd >= 0)
            close(fd);
    }
    return 0;
}
