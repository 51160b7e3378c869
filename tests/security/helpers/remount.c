/* Make the read-only mount DIR writable and write DIR/NAME (issue 9 finding 5):
 * mount(MS_REMOUNT|MS_BIND) without MS_RDONLY, then mount_setattr clearing
 * MOUNT_ATTR_RDONLY, each followed by a write attempt. One line per step. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static const char *res(int rc) { return rc < 0 ? strerrorname_np(errno) : "ok"; }

static void write_file(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        printf("write: %s\n", res(-1));
        return;
    }
    int rc = write(fd, "owned\n", 6) == 6 ? 0 : -1;
    printf("write: %s\n", res(rc));
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: remount DIR NAME\n");
        return 2;
    }
    printf("remount: %s\n", res(mount(NULL, argv[1], NULL, MS_REMOUNT | MS_BIND, NULL)));
    write_file(argv[1], argv[2]);
    struct mount_attr attr = {.attr_clr = MOUNT_ATTR_RDONLY};
    printf("mount_setattr: %s\n",
           res(mount_setattr(AT_FDCWD, argv[1], AT_RECURSIVE, &attr, sizeof attr)));
    write_file(argv[1], argv[2]);
    fflush(stdout);
    return 0;
}
