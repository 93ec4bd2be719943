/* A wall clock of its own for one process: LD_PRELOAD it, and CLOCK_REALTIME (clock_gettime,
 * gettimeofday, time) reads the real one plus the seconds in the file $WALL_CLOCK_OFFSET_FILE,
 * read again on every call, so a test can step it while the process runs. CLOCK_MONOTONIC,
 * timers and the kernel's packet stamps are left alone, as a real clock step leaves them.
 * (libfaketime also rewrites absolute timerfd deadlines on CLOCK_MONOTONIC by the offset,
 * which a real step never does.) Built by the clock-step lab test. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long offset(void) {
    const char *path = getenv("WALL_CLOCK_OFFSET_FILE");
    long long v = 0;
    FILE *f;
    if (!path || !(f = fopen(path, "re")))
        return 0;
    if (fscanf(f, "%lld", &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(clock, ts);
    if (r == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
        ts->tv_sec += offset();
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    (void)tz;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return 0;
}

time_t time(time_t *t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t)
        *t = ts.tv_sec;
    return ts.tv_sec;
}
