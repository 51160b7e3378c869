/* Push TEXT into the terminal on fd 0 as if typed (TIOCSTI; issue 9 finding 4).
 * Prints "tiocsti: ok" or "tiocsti: EPERM" (the first failure). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tiocsti TEXT\n");
        return 2;
    }
    for (const char *p = argv[1]; *p; p++) {
        if (ioctl(0, TIOCSTI, p) < 0) {
            printf("tiocsti: %s\n", strerrorname_np(errno));
            return 0;
        }
    }
    printf("tiocsti: ok\n");
    return 0;
}
