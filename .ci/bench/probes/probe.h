// What every probe needs: a monotonic clock in microseconds and a qsort
// order for doubles (to read percentiles off sorted samples).
#ifndef PROBE_H
#define PROBE_H
#include <time.h>

static inline double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static inline int by_value(const void *a, const void *b) {
    double d = *(const double *)a - *(const double *)b;
    return d < 0 ? -1 : d > 0;
}
#endif
