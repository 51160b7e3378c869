/* System calls through the i386 entry point (int 0x80) and the x32 bit, to
 * check that a seccomp filter's argument rules hold on every ABI a process
 * can use (the default profile lists SCMP_ARCH_X86 and SCMP_ARCH_X32).
 * Each line: "<what>: <ERRNO>" or "<what>: ok domain=<SO_DOMAIN of the fd>". */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AF_VSOCK_ 40
#define X32_BIT 0x40000000L

static long i386_call(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

static long native(long nr, long a, long b, long c) {
    long r = syscall(nr, a, b, c);
    return r < 0 ? -errno : r;
}

static void say(const char *what, long r) {
    if (r < 0 && r > -4096) {
        printf("%s: %s\n", what, strerrorname_np((int)-r));
        return;
    }
    int domain = -1;
    socklen_t len = sizeof domain;
    getsockopt((int)r, SOL_SOCKET, SO_DOMAIN, &domain, &len);
    printf("%s: ok domain=%d\n", what, domain);
    close((int)r);
}

int main(void) {
    /* i386 socketcall(SYS_SOCKET, args): the arguments are in memory, as 32-bit words */
    static unsigned int args[3] = {AF_VSOCK_, SOCK_STREAM, 0};
    say("socket", native(SYS_socket, AF_VSOCK_, SOCK_STREAM, 0));
    say("i386 socket", i386_call(359, AF_VSOCK_, SOCK_STREAM, 0));
    say("i386 socketcall", i386_call(102, 1, (long)(unsigned long)args, 0));
    say("x32 socket", native(X32_BIT | 41, AF_VSOCK_, SOCK_STREAM, 0));
    return 0;
}
