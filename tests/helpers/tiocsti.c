/* Push a command into the input queue of the terminal on fd 0 (TIOCSTI), the way
 * a hostile workload would type into the shell that started its runtime.
 * Prints "tiocsti: OK" or "tiocsti: <errno name>". Built static. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

int main(void) {
    const char *line = "echo INJECTED\n";
    int err = 0;
    for (const char *c = line; *c; c++) {
        if (ioctl(0, TIOCSTI, c) == -1) {
            err = errno;
            break;
        }
    }
    printf("tiocsti: %s\n", err == 0 ? "OK" : err == EPERM ? "EPERM" : err == EIO ? "EIO"
           : strerror(err));
    return 0;
}
