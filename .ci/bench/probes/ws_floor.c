// The kernel's floor for the gateway benchmark's fan-out on this machine:
// no WebSocket, no JSON, no runtime. SENDERS threads write one FRAME-byte
// frame to each of MEMBERS loopback TCP sockets every 100 ms (a plain
// write() per socket, as the gateway's one send per member); a second
// process reads them on READERS threads (epoll, non-blocking) and times
// each from the send stamp inside it. Whatever the gateway and its load
// generator do beyond this costs on top of these figures.
//
// usage: ws_floor [senders=2] [readers=2] [members=1000] [rounds=200] [frame=320]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

static int senders = 2, readers = 2, members = 1000, rounds = 200, frame_len = 320;
static int *server_fds;
static int epoll_fd;
static double *latencies;
static long received, cut_reads;
static pthread_mutex_t latencies_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t round_start, round_end;

static double cpu_us(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
}

static void *read_frames(void *unused) {
    (void)unused;
    struct epoll_event events[256];
    char buf[16384];
    for (;;) {
        int n = epoll_wait(epoll_fd, events, 256, 3000);
        if (n <= 0) return NULL; // 3 s without a frame: the sender is done
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            ssize_t got = read(fd, buf, sizeof buf);
            if (got < 0 && errno == EAGAIN) continue; // the other reader took it
            if (got <= 0) {
                epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL);
                continue;
            }
            double at = now_us();
            // On loopback each write arrives as one segment, so a read
            // holds whole frames, back to back; one that does not is
            // counted, and the run's figures are then not to be trusted.
            pthread_mutex_lock(&latencies_lock);
            if (got % frame_len) cut_reads++;
            for (ssize_t off = 0; off + frame_len <= got; off += frame_len) {
                double sent;
                memcpy(&sent, buf + off, sizeof sent);
                latencies[received++] = at - sent;
            }
            pthread_mutex_unlock(&latencies_lock);
        }
    }
}

struct shard { int from, to; };

static void *write_frames(void *arg) {
    struct shard *shard = arg;
    char *frame = malloc(frame_len);
    memset(frame, 'x', frame_len);
    for (int r = 0; r < rounds; r++) {
        pthread_barrier_wait(&round_start);
        double sent = now_us();
        memcpy(frame, &sent, sizeof sent);
        for (int i = shard->from; i < shard->to; i++)
            if (write(server_fds[i], frame, frame_len) != frame_len) perror("write");
        pthread_barrier_wait(&round_end);
    }
    free(frame);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) senders = atoi(argv[1]);
    if (argc > 2) readers = atoi(argv[2]);
    if (argc > 3) members = atoi(argv[3]);
    if (argc > 4) rounds = atoi(argv[4]);
    if (argc > 5) frame_len = atoi(argv[5]);
    if (senders < 1 || senders > 64 || readers < 1 || readers > 64 || members < 1 || rounds < 1 || frame_len < 8) {
        fprintf(stderr, "usage: ws_floor [senders] [readers] [members] [rounds] [frame bytes >= 8]\n");
        return 2;
    }
    int one = 1;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t addr_len = sizeof addr;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 4096) ||
        getsockname(listener, (struct sockaddr *)&addr, &addr_len)) {
        perror("listen");
        return 1;
    }
    pid_t reader = fork();
    if (reader == 0) {
        epoll_fd = epoll_create1(0);
        latencies = malloc(sizeof(double) * (size_t)members * rounds);
        for (int i = 0; i < members; i++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(fd, (struct sockaddr *)&addr, sizeof addr)) {
                perror("connect");
                exit(1);
            }
            fcntl(fd, F_SETFL, O_NONBLOCK);
            struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
            epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
        }
        double cpu_before = cpu_us();
        pthread_t threads[64];
        for (int i = 0; i < readers; i++) pthread_create(&threads[i], NULL, read_frames, NULL);
        for (int i = 0; i < readers; i++) pthread_join(threads[i], NULL);
        double cpu = cpu_us() - cpu_before;
        if (received == 0) return 1;
        qsort(latencies, received, sizeof(double), by_value);
        printf("fan-out floor: %d members, %d rounds every 100 ms, %d-byte frames, %d writer / %d reader threads: "
               "n=%ld p50=%.2fms p99=%.2fms max=%.2fms; lost %ld, reads ending mid-frame %ld\n",
               members, rounds, frame_len, senders, readers, received, latencies[received / 2] / 1e3,
               latencies[received * 99 / 100] / 1e3, latencies[received - 1] / 1e3,
               (long)members * rounds - received, cut_reads);
        printf("  reader CPU: %.2f us per frame\n", cpu / received);
        return 0;
    }
    server_fds = malloc(sizeof(int) * members);
    for (int i = 0; i < members; i++) {
        server_fds[i] = accept(listener, NULL, NULL);
        setsockopt(server_fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    usleep(500000);
    pthread_barrier_init(&round_start, NULL, senders + 1);
    pthread_barrier_init(&round_end, NULL, senders + 1);
    pthread_t threads[64];
    struct shard shards[64];
    for (int i = 0; i < senders; i++) {
        shards[i] = (struct shard){members * i / senders, members * (i + 1) / senders};
        pthread_create(&threads[i], NULL, write_frames, &shards[i]);
    }
    double cpu_before = cpu_us();
    for (int r = 0; r < rounds; r++) {
        pthread_barrier_wait(&round_start);
        pthread_barrier_wait(&round_end);
        usleep(100000);
    }
    double cpu = cpu_us() - cpu_before;
    for (int i = 0; i < senders; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < members; i++) close(server_fds[i]);
    int status;
    waitpid(reader, &status, 0);
    printf("  writer CPU: %.2f us per frame\n", cpu / ((double)members * rounds));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
