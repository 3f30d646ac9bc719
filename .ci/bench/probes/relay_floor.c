// The floor for the streaming benchmark's one-stream figure on this
// machine: a client, a relay and an upstream, three processes on loopback
// TCP, each a blocking loop doing nothing but read() and write(). The
// client sends a request; the relay passes it to the upstream; the upstream
// waits FIRST_BYTE_MS, answers with a first chunk carrying the time it took
// itself, and the relay passes that back. The client reports what the relay
// and the hops add: the round trip minus the upstream's own time, as
// `just bench-stream` reports what Spec Gen adds.
//
// usage: relay_floor [requests=150] [first_byte_ms=50]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

#define REQUEST_LEN 700
#define CHUNK_LEN 600

static int read_exact(int fd, char *buf, int len) {
    for (int got = 0; got < len;) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0) return -1;
        got += n;
    }
    return 0;
}

static int listen_any(struct sockaddr_in *addr) {
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof *addr;
    *addr = (struct sockaddr_in){.sin_family = AF_INET};
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)addr, &len)) {
        perror("listen");
        exit(1);
    }
    return fd;
}

static int accept_one(int listener) {
    int one = 1, fd = accept(listener, NULL, NULL);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int connect_to(struct sockaddr_in *addr) {
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)addr, sizeof *addr)) {
        perror("connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int main(int argc, char **argv) {
    int requests = argc > 1 ? atoi(argv[1]) : 150;
    int first_byte_ms = argc > 2 ? atoi(argv[2]) : 50;
    if (requests < 10 || first_byte_ms < 0) return 2;
    struct sockaddr_in upstream_addr, relay_addr;
    int upstream_listener = listen_any(&upstream_addr);
    pid_t upstream = fork();
    if (upstream == 0) { // the upstream: wait, then answer with its own time
        int fd = accept_one(upstream_listener);
        char buf[REQUEST_LEN > CHUNK_LEN ? REQUEST_LEN : CHUNK_LEN];
        memset(buf, 'u', sizeof buf);
        while (read_exact(fd, buf, REQUEST_LEN) == 0) {
            double start = now_us();
            struct timespec wait = {first_byte_ms / 1000, (first_byte_ms % 1000) * 1000000L};
            nanosleep(&wait, NULL);
            double own = now_us() - start;
            memcpy(buf, &own, sizeof own);
            if (write(fd, buf, CHUNK_LEN) != CHUNK_LEN) break;
        }
        return 0;
    }
    int relay_listener = listen_any(&relay_addr);
    pid_t relay = fork();
    if (relay == 0) { // the relay: pass each request on and each answer back
        int to_upstream = connect_to(&upstream_addr);
        int client = accept_one(relay_listener);
        char buf[REQUEST_LEN > CHUNK_LEN ? REQUEST_LEN : CHUNK_LEN];
        while (read_exact(client, buf, REQUEST_LEN) == 0) {
            if (write(to_upstream, buf, REQUEST_LEN) != REQUEST_LEN) break;
            if (read_exact(to_upstream, buf, CHUNK_LEN) || write(client, buf, CHUNK_LEN) != CHUNK_LEN) break;
        }
        return 0;
    }
    int fd = connect_to(&relay_addr);
    char request[REQUEST_LEN], chunk[CHUNK_LEN];
    memset(request, 'r', sizeof request);
    double *added = malloc(sizeof(double) * requests);
    for (int i = 0; i < requests; i++) {
        double start = now_us();
        if (write(fd, request, REQUEST_LEN) != REQUEST_LEN || read_exact(fd, chunk, CHUNK_LEN)) return 1;
        double own;
        memcpy(&own, chunk, sizeof own);
        added[i] = now_us() - start - own;
    }
    close(fd);
    waitpid(relay, NULL, 0);
    kill(upstream, SIGTERM);
    waitpid(upstream, NULL, 0);
    qsort(added, requests, sizeof(double), by_value);
    printf("relay floor, 1 stream, first byte after %d ms: n=%d added min=%.3fms p50=%.3fms p99=%.3fms max=%.3fms\n",
           first_byte_ms, requests, added[0] / 1e3, added[requests / 2] / 1e3, added[requests * 99 / 100] / 1e3,
           added[requests - 1] / 1e3);
    free(added);
    return 0;
}
