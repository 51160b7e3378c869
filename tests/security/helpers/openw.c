/* Open each PATH for writing (O_WRONLY|O_APPEND) and close it again, without
 * writing a byte: proves whether the process could change the file.
 * One line each: "PATH: ok" or "PATH: ERRNO". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0) {
            printf("%s: %s\n", argv[i], strerrorname_np(errno));
        } else {
            printf("%s: ok\n", argv[i]);
            close(fd);
        }
    }
    return 0;
}
