/* The benchmark workload: print CLOCK_REALTIME in ns, as a static binary so it
 * runs in a busybox root (busybox's date has no %N). Built by bench_run.py. */
#include <stdio.h>
#include <time.h>

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    return 0;
}
