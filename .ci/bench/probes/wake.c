// What one thread waking another costs on this machine: a round trip (two
// wake-ups) through a pair of pipes, after an idle spell of IDLE_US, with
// the two threads on the same CPU or on two. The streaming benchmark's
// path crosses threads and processes about a dozen times per request.
//
// usage: wake [samples=2000]
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

static int ping[2], pong[2];
static int echo_cpu;

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *echo(void *unused) {
    (void)unused;
    pin(echo_cpu);
    char c;
    while (read(ping[0], &c, 1) == 1)
        if (write(pong[1], &c, 1) != 1) break;
    return NULL;
}

int main(int argc, char **argv) {
    int samples = argc > 1 ? atoi(argv[1]) : 2000;
    if (samples < 100) samples = 100;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    const int idle_us[] = {0, 1000, 20000};
    double *rtt = malloc(sizeof(double) * samples);
    for (int other = 0; other <= (cpus > 1); other++) {
        for (size_t k = 0; k < sizeof idle_us / sizeof idle_us[0]; k++) {
            if (pipe(ping) || pipe(pong)) return 1;
            echo_cpu = other;
            pthread_t thread;
            pthread_create(&thread, NULL, echo, NULL);
            pin(0);
            char c = 'x';
            int n = k == 2 ? samples / 10 : samples; // 20 ms idles add up
            for (int i = 0; i < n; i++) {
                if (idle_us[k]) usleep(idle_us[k]);
                double start = now_us();
                if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1) return 1;
                rtt[i] = now_us() - start;
            }
            close(ping[1]);
            pthread_join(thread, NULL);
            close(ping[0]);
            close(pong[0]);
            close(pong[1]);
            qsort(rtt, n, sizeof(double), by_value);
            printf("threads on %s, idle %5d us before each: round trip (2 wake-ups) p50 %6.1f us, p99 %6.1f us\n",
                   other ? "two CPUs" : "one CPU ", idle_us[k], rtt[n / 2], rtt[n * 99 / 100]);
        }
    }
    free(rtt);
    return 0;
}
