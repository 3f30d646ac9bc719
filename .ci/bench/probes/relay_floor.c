// The floor for the streaming benchmark on this machine: a client, a relay
// and an upstream, three processes on loopback TCP, one thread per stream
// in each, every thread a blocking loop doing nothing but read() and
// write(). A client stream sends a request; the relay passes it to the
// upstream; the upstream waits FIRST_BYTE_MS, answers with a first chunk
// carrying the time it took itself, then the rest of the reply in one
// write, and the relay passes the bytes back as they come. The client
// reports what the relay and the hops add to the first chunk: the round
// trip minus the upstream's own time, as `just bench-stream` reports what
// Spec Gen adds. Streams start spread over one reply's length and send
// their next request as soon as a reply has ended, as the benchmark does.
//
// usage: relay_floor [requests per stream=150] [first_byte_ms=50] [streams=1] [chunks=1]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
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
#define FIRST_CHUNK_LEN 600
// An SSE delta event, roughly, for the chunks after the first.
#define CHUNK_LEN 150
#define BUF_LEN 65536

static int read_exact(int fd, char *buf, int len) {
    for (int got = 0; got < len;) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0) return -1;
        got += n;
    }
    return 0;
}

static int listen_any(struct sockaddr_in *addr, int backlog) {
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof *addr;
    *addr = (struct sockaddr_in){.sin_family = AF_INET};
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) || listen(fd, backlog + 16) ||
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

static int requests, first_byte_ms, streams, chunks;

static size_t reply_len(void) { return FIRST_CHUNK_LEN + (size_t)(chunks - 1) * CHUNK_LEN; }

static void sleep_us(long us) {
    struct timespec wait = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&wait, NULL);
}

static void *upstream_stream(void *arg) { // wait, then answer with its own time
    int fd = (int)(long)arg;
    char *buf = calloc(1, reply_len() > REQUEST_LEN ? reply_len() : REQUEST_LEN);
    while (read_exact(fd, buf, REQUEST_LEN) == 0) {
        double start = now_us();
        sleep_us(first_byte_ms * 1000L);
        double own = now_us() - start;
        memcpy(buf, &own, sizeof own);
        if (write(fd, buf, FIRST_CHUNK_LEN) != FIRST_CHUNK_LEN) break;
        size_t rest = reply_len() - FIRST_CHUNK_LEN;
        if (rest && write(fd, buf + FIRST_CHUNK_LEN, rest) != (ssize_t)rest) break;
    }
    return NULL;
}

static struct sockaddr_in upstream_addr;

static void *relay_stream(void *arg) { // pass each request on and the reply back
    int client = (int)(long)arg, to_upstream = connect_to(&upstream_addr);
    char *buf = malloc(BUF_LEN);
    while (read_exact(client, buf, REQUEST_LEN) == 0) {
        if (write(to_upstream, buf, REQUEST_LEN) != REQUEST_LEN) break;
        for (size_t passed = 0; passed < reply_len();) {
            ssize_t n = read(to_upstream, buf, BUF_LEN);
            if (n <= 0 || write(client, buf, n) != n) return NULL;
            passed += n;
        }
    }
    close(to_upstream);
    return NULL;
}

static struct sockaddr_in relay_addr;

struct client_stream {
    int index;
    double *added;
};

static void *client_stream(void *arg) {
    struct client_stream *stream = arg;
    sleep_us((long)stream->index * first_byte_ms * 1000L / streams);
    int fd = connect_to(&relay_addr);
    char request[REQUEST_LEN], *reply = malloc(reply_len());
    memset(request, 'r', sizeof request);
    for (int i = 0; i < requests; i++) {
        double start = now_us();
        if (write(fd, request, REQUEST_LEN) != REQUEST_LEN || read_exact(fd, reply, FIRST_CHUNK_LEN)) exit(1);
        double own;
        memcpy(&own, reply, sizeof own);
        stream->added[i] = now_us() - start - own;
        if (read_exact(fd, reply, reply_len() - FIRST_CHUNK_LEN)) exit(1);
    }
    close(fd);
    return NULL;
}

// Accepts `streams` connections and runs `run` on a thread for each.
static void serve(int listener, void *(*run)(void *)) {
    pthread_t *threads = malloc(sizeof(pthread_t) * streams);
    for (int i = 0; i < streams; i++)
        pthread_create(&threads[i], NULL, run, (void *)(long)accept_one(listener));
    for (int i = 0; i < streams; i++) pthread_join(threads[i], NULL);
}

int main(int argc, char **argv) {
    requests = argc > 1 ? atoi(argv[1]) : 150;
    first_byte_ms = argc > 2 ? atoi(argv[2]) : 50;
    streams = argc > 3 ? atoi(argv[3]) : 1;
    chunks = argc > 4 ? atoi(argv[4]) : 1;
    if (requests < 10 || first_byte_ms < 0 || streams < 1 || chunks < 1) return 2;
    int upstream_listener = listen_any(&upstream_addr, streams);
    pid_t upstream = fork();
    if (upstream == 0) {
        serve(upstream_listener, upstream_stream);
        return 0;
    }
    int relay_listener = listen_any(&relay_addr, streams);
    pid_t relay = fork();
    if (relay == 0) {
        serve(relay_listener, relay_stream);
        return 0;
    }
    int samples = requests * streams;
    double *added = malloc(sizeof(double) * samples);
    struct client_stream *clients = malloc(sizeof *clients * streams);
    pthread_t *threads = malloc(sizeof(pthread_t) * streams);
    double started = now_us();
    for (int i = 0; i < streams; i++) {
        clients[i] = (struct client_stream){.index = i, .added = added + (size_t)i * requests};
        pthread_create(&threads[i], NULL, client_stream, &clients[i]);
    }
    for (int i = 0; i < streams; i++) pthread_join(threads[i], NULL);
    double seconds = (now_us() - started) / 1e6;
    waitpid(relay, NULL, 0);
    kill(upstream, SIGTERM);
    waitpid(upstream, NULL, 0);
    qsort(added, samples, sizeof(double), by_value);
    printf("relay floor, %d stream(s), %d chunk(s), first byte after %d ms: n=%d (%.0f replies/s) added "
           "min=%.3fms p50=%.3fms p99=%.3fms max=%.3fms\n",
           streams, chunks, first_byte_ms, samples, samples / seconds, added[0] / 1e3, added[samples / 2] / 1e3,
           added[samples * 99 / 100] / 1e3, added[samples - 1] / 1e3);
    return 0;
}
