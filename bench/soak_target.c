/*
 * Soak target: a worker ("victim") that stalls for --stall-ms every
 * --period-ms (300 ms of every second by default), beside busy workers.
 * Prints "begin N" and "end N" (flushed) around each stall, so that a
 * watcher knows how many stalls really happened. Ends when stdin closes.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stallwatch/stallwatch.h"

static long g_stall_ms = 300, g_period_ms = 1000;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) != 0) {
    }
}

__attribute__((noinline)) static void slow_call(void)
{
    sleep_ms(g_stall_ms);
    __asm__ volatile("" ::: "memory");
}

static void *busy(void *arg)
{
    stallwatch_worker *w = stallwatch_register(arg);
    for (;;) {
        stallwatch_tick(w);
        sleep_ms(1);
    }
    return NULL;
}

static void *victim(void *arg)
{
    (void)arg;
    stallwatch_worker *w = stallwatch_register("victim");
    for (unsigned long n = 1;; ++n) {
        for (long t = 0; t < g_period_ms - g_stall_ms; ++t) {
            stallwatch_tick(w);
            sleep_ms(1);
        }
        printf("begin %lu\n", n);
        fflush(stdout);
        slow_call();
        stallwatch_tick(w);
        printf("end %lu\n", n);
        fflush(stdout);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--stall-ms")) g_stall_ms = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--period-ms")) g_period_ms = atol(argv[i + 1]);
    }
    if (stallwatch_init("soak", 0) != 0) return 1;
    pthread_t t;
    static char names[3][16];
    for (int i = 0; i < 3; ++i) {
        snprintf(names[i], sizeof names[i], "busy-%d", i);
        pthread_create(&t, NULL, busy, names[i]);
    }
    pthread_create(&t, NULL, victim, NULL);
    printf("ready pid=%d\n", (int)getpid());
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    _exit(0);
}
