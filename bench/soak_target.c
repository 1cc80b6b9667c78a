/*
 * Soak target: a worker ("victim") that stalls for --stall-ms every
 * --period-ms (300 ms of every second by default), beside --workers busy
 * workers (3) that tick every --tick-ms (1); with --park-ms N they park for
 * N ms instead, then unpark and tick (workers waiting for work, as a pool
 * that is mostly idle: bench/monitor_cost.sh). Prints "begin N" and "end N"
 * (flushed) around each stall, so that a watcher knows how many stalls
 * really happened. --no-victim leaves the victim out: only busy workers,
 * for measuring what watching costs (bench/agent_cost.sh). Ends when stdin
 * closes.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stallwatch/stallwatch.h"

static long g_stall_ms = 300, g_period_ms = 1000, g_tick_ms = 1, g_park_ms = 0;

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
        if (g_park_ms > 0) {
            stallwatch_park(w);
            sleep_ms(g_park_ms);
            stallwatch_unpark(w);
            stallwatch_tick(w);
            continue;
        }
        stallwatch_tick(w);
        sleep_ms(g_tick_ms);
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
    int workers = 3, victim_too = 1;
    for (int i = 1; i < argc; ++i) {
        const char *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(argv[i], "--stall-ms")) g_stall_ms = atol(v), ++i;
        else if (!strcmp(argv[i], "--period-ms")) g_period_ms = atol(v), ++i;
        else if (!strcmp(argv[i], "--tick-ms")) g_tick_ms = atol(v), ++i;
        else if (!strcmp(argv[i], "--park-ms")) g_park_ms = atol(v), ++i;
        else if (!strcmp(argv[i], "--workers")) workers = atoi(v), ++i;
        else if (!strcmp(argv[i], "--no-victim")) victim_too = 0;
    }
    if (workers < 0 || workers > 4096) return 64;
    /* Room for every worker: the default capacity is 256 slots. */
    if (stallwatch_init("soak", workers >= 256 ? (uint32_t)workers + 1 : 0) != 0) return 1;
    pthread_t t;
    char (*names)[16] = calloc((size_t)workers + 1, sizeof *names);
    for (int i = 0; i < workers; ++i) {
        snprintf(names[i], sizeof names[i], "busy-%d", i);
        pthread_create(&t, NULL, busy, names[i]);
    }
    if (victim_too)
        pthread_create(&t, NULL, victim, NULL);
    printf("ready pid=%d\n", (int)getpid());
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    _exit(0);
}
