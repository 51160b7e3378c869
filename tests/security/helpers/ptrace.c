/* Attack PID N (issue 9 finding 2): PTRACE_ATTACH, PTRACE_SEIZE, and a read of
 * /proc/N/mem at the start of its first mapping. Prints one line per attempt:
 * "attach: ok" or "attach: EPERM". Detaches again; never writes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *res(long rc) { return rc < 0 ? strerrorname_np(errno) : "ok"; }

static void try(const char *what, enum __ptrace_request req, pid_t pid) {
    long rc = ptrace(req, pid, 0, 0);
    printf("%s: %s\n", what, res(rc));
    if (rc == 0) {
        if (req == PTRACE_ATTACH)
            waitpid(pid, NULL, __WALL);
        else {
            ptrace(PTRACE_INTERRUPT, pid, 0, 0);
            waitpid(pid, NULL, __WALL);
        }
        ptrace(PTRACE_DETACH, pid, 0, 0);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: ptrace PID\n");
        return 2;
    }
    pid_t pid = atoi(argv[1]);
    try("attach", PTRACE_ATTACH, pid);
    try("seize", PTRACE_SEIZE, pid);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    unsigned long start = 0;
    FILE *maps = fopen(path, "r");
    if (maps) {
        if (fscanf(maps, "%lx", &start) != 1)
            start = 0;
        fclose(maps);
    }
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("mem: %s\n", res(-1));
    } else {
        char byte;
        printf("mem: %s\n", res(pread(fd, &byte, 1, (off_t)start) == 1 ? 0 : -1));
        close(fd);
    }
    fflush(stdout);
    return 0;
}
