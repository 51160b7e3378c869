/* Make one system call through the 32-bit x86 entry point (int $0x80) from a
 * 64-bit process, and print what it returned (a negative errno on failure).
 * Usage: int80 NR [ARG1 [ARG2]]   (arguments are numbers or strings)
 * Tests use it to check a seccomp filter's architectures: the kernel tags
 * such a call AUDIT_ARCH_I386, with the i386 numbering (mkdir is 39).
 * An argument that is a string must sit below 4 GiB to survive the 32-bit
 * registers, hence -static -no-pie and a static buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char bufs[2][256];

static long arg(const char *s, int i) {
    char *end;
    long v = strtol(s, &end, 0);
    if (*end == '\0')
        return v;
    strncpy(bufs[i], s, sizeof bufs[i] - 1);
    return (long)(unsigned long)bufs[i];
}

int main(int argc, char **argv) {
    long nr = strtol(argv[1], NULL, 0);
    long a = argc > 2 ? arg(argv[2], 0) : 0;
    long b = argc > 3 ? arg(argv[3], 1) : 0;
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b) : "memory");
    printf("%ld\n", ret);
    return 0;
}
