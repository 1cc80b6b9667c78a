/*
 * Busy target of bench/compare-busy.sh: --spinners N threads (8) that spin on
 * the CPU forever (more than the machine has cores, so they take turns), and
 * one thread ("blocked") that sleeps in clock_nanosleep under a chain of
 * --depth noinline calls (24, so about 27 frames with its thread start). Not
 * instrumented: `dump --all-threads` needs no table, as eu-stack and gdb need
 * none.
 *
 * Prints "ready pid=P blocked=TID healthy=T1,T2,..." once every thread runs
 * (healthy: the spinners), then ends when its standard input closes.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

enum { MAX_SPINNERS = 64 };

static int g_depth = 24;
static pthread_barrier_t g_ready;
static pid_t g_tids[MAX_SPINNERS + 1];
static volatile unsigned long g_sink[MAX_SPINNERS];

static void *spin(void *arg)
{
    long i = (long)arg;
    g_tids[i + 1] = (pid_t)syscall(SYS_gettid);
    pthread_barrier_wait(&g_ready);
    for (;;)
        g_sink[i]++;
    return NULL;
}

NOINLINE static void block_here(void)
{
    for (;;) {
        struct timespec ts = {3600, 0};
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
    }
}

NOINLINE static int descend(int n)
{
    if (n <= 0)
        block_here();
    else
        descend(n - 1);
    KEEP_FRAME();
    return n;
}

static void *blocked(void *arg)
{
    (void)arg;
    g_tids[0] = (pid_t)syscall(SYS_gettid);
    pthread_barrier_wait(&g_ready);
    descend(g_depth);
    return NULL;
}

int main(int argc, char **argv)
{
    int spinners = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--spinners") == 0)
            spinners = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--depth") == 0)
            g_depth = atoi(argv[i + 1]);
    }
    if (spinners < 1 || spinners > MAX_SPINNERS || g_depth < 0) {
        fprintf(stderr, "usage: %s [--spinners 1..%d] [--depth N]\n", argv[0], MAX_SPINNERS);
        return 64;
    }
    pthread_barrier_init(&g_ready, NULL, (unsigned)spinners + 2);
    pthread_t t;
    pthread_create(&t, NULL, blocked, NULL);
    for (long i = 0; i < spinners; ++i)
        pthread_create(&t, NULL, spin, (void *)i);
    pthread_barrier_wait(&g_ready);
    printf("ready pid=%d blocked=%d healthy=", (int)getpid(), (int)g_tids[0]);
    for (int i = 1; i <= spinners; ++i)
        printf("%s%d", i > 1 ? "," : "", (int)g_tids[i]);
    printf("\n");
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    return 0;
}
