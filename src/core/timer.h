/* Monotonic wall-clock time, for load/prompt/generation statistics and progress bars. */
#ifndef QR_CORE_TIMER_H
#define QR_CORE_TIMER_H

#include <time.h>

/* Seconds since an arbitrary fixed point; only differences are meaningful. */
static inline double qr_time_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
