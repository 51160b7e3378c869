/* Wait for a short-lived setup process of pyinit (a process other than PID 1
 * and our own ancestors, whose comm is COMM) and PTRACE_SEIZE it. Writes one
 * line to REPORT: "seized COMM CapEff=<hex>" on success, "refused COMM: ERRNO"
 * if the kernel said no, nothing if none appeared while we looked.
 * Usage: seize COMM REPORT READY. Writes a line to the FIFO READY once it is
 * looking (so whoever started it can go on), and gives up after LOOKS scans. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOOKS 200000

static int read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return 0;
}

static void report(const char *path, const char *line) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, line, strlen(line)) < 0)
            perror("write");
        close(fd);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: seize COMM REPORT READY\n");
        return 2;
    }
    pid_t me = getpid(), parent = getppid();
    report(argv[3], "looking\n");
    for (int look = 0; look < LOOKS; look++) {
        DIR *proc = opendir("/proc");
        if (!proc)
            return 1;
        struct dirent *e;
        while ((e = readdir(proc))) {
            pid_t pid = atoi(e->d_name);
            if (pid <= 1 || pid == me || pid == parent)
                continue;
            char path[64], comm[64];
            snprintf(path, sizeof path, "/proc/%d/comm", pid);
            if (read_file(path, comm, sizeof comm) < 0)
                continue;
            comm[strcspn(comm, "\n")] = 0;
            if (strcmp(comm, argv[1]) != 0)
                continue;
            char line[256];
            if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0) {
                snprintf(line, sizeof line, "refused %s: %s\n", comm, strerrorname_np(errno));
                report(argv[2], line);
                return 0;
            }
            char status[4096] = "";
            snprintf(path, sizeof path, "/proc/%d/status", pid);
            read_file(path, status, sizeof status);
            char *cap = strstr(status, "CapEff:\t");
            snprintf(line, sizeof line, "seized %s CapEff=%.16s\n", comm, cap ? cap + 8 : "?");
            report(argv[2], line);
            ptrace(PTRACE_DETACH, pid, 0, 0);
            return 0;
        }
        closedir(proc);
    }
    return 0;
}
