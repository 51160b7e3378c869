/* A process whose main thread exits while another thread runs on: the thread
 * group lives, but its leader is a zombie, and /proc/PID/stat says "Z". Prints
 * one line, then holds nothing of the caller's. Used by test_review4_pid1.py. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *forever(void *arg) {
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

int main(void) {
    pthread_t thread;

    if (pthread_create(&thread, NULL, forever, NULL) != 0)
        return 1;
    puts("leader exits");
    fflush(stdout);
    close(0);
    close(1);
    close(2);
    pthread_exit(NULL);
}
