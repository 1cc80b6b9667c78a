/*
 * Test program: workers whose stalls end in each way an event reports, and
 * workers that change state all the time.
 *
 *   sw_test_lifecycle --mode events [--stall-ms N]
 *   sw_test_lifecycle --mode flip [--workers N]
 *
 * events: worker "returner" and worker "leaver" tick every millisecond. On
 *   SIGUSR1 both block for --stall-ms (default 450) in stall_here(); then the
 *   returner ticks again (a stall that recovers) and the leaver unregisters
 *   and its thread exits (a stall that ends). A watcher with a 100 ms
 *   threshold sees stall, stall_update, recovered and ended.
 * flip: --workers N (default 6) workers each park, wait in parked_wait(),
 *   unpark, work in running_work(), in a loop of about 2 ms, for ever: a
 *   worker shown "parked" must not have running_work() on its stack, nor a
 *   "running" one parked_wait().
 *
 * Prints "ready pid=P" once every worker is registered and runs until its
 * standard input closes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stallwatch/stallwatch.h"

#define NOINLINE __attribute__((noinline))
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

static volatile int g_go, g_stop;
static long g_stall_ms = 450;
static pthread_barrier_t g_registered;

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

NOINLINE static void stall_here(void)
{
    sleep_us(g_stall_ms * 1000);
    KEEP_FRAME();
}

static void *events_main(void *arg)
{
    int leaver = arg != NULL;
    stallwatch_worker *w = stallwatch_register(leaver ? "leaver" : "returner");
    pthread_barrier_wait(&g_registered);
    while (!g_go && !g_stop) {
        stallwatch_tick(w);
        sleep_us(1000);
    }
    stall_here();
    if (leaver) {
        stallwatch_unregister(w);
        return NULL;
    }
    while (!g_stop) {
        stallwatch_tick(w);
        sleep_us(1000);
    }
    return NULL;
}

NOINLINE static void parked_wait(long us)
{
    sleep_us(us);
    KEEP_FRAME();
}

NOINLINE static void running_work(stallwatch_worker *w, long us)
{
    sleep_us(us);
    stallwatch_tick(w);
    KEEP_FRAME();
}

static void *flip_main(void *arg)
{
    char name[16];
    snprintf(name, sizeof name, "flip-%d", (int)(long)arg);
    stallwatch_worker *w = stallwatch_register(name);
    pthread_barrier_wait(&g_registered);
    long us = 700 + 150 * (long)arg;  /* the workers drift apart */
    while (!g_stop) {
        stallwatch_park(w);
        parked_wait(us);
        stallwatch_unpark(w);
        running_work(w, us);
    }
    return NULL;
}

static void on_usr1(int sig)
{
    (void)sig;
    g_go = 1;
}

int main(int argc, char **argv)
{
    int flip = 0, workers = 6;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--mode")) flip = !strcmp(v, "flip"), ++i;
        else if (!strcmp(a, "--stall-ms")) g_stall_ms = atol(v), ++i;
        else if (!strcmp(a, "--workers")) workers = atoi(v), ++i;
        else { fprintf(stderr, "sw_test_lifecycle: unknown argument %s\n", a); return 64; }
    }
    if (workers < 1 || workers > 60) workers = 6;
    if (stallwatch_init("lifecycle", 0) != 0) {
        fprintf(stderr, "sw_test_lifecycle: stallwatch_init failed\n");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);

    int n = flip ? workers : 2;
    pthread_t threads[60];
    pthread_barrier_init(&g_registered, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; ++i)
        pthread_create(&threads[i], NULL, flip ? flip_main : events_main, flip || i ? (void *)(long)i : NULL);
    pthread_barrier_wait(&g_registered);
    printf("ready pid=%d\n", (int)getpid());
    fflush(stdout);

    char buf[64];
    for (;;) {
        ssize_t got = read(0, buf, sizeof buf);
        if (got == 0 || (got < 0 && errno != EINTR))
            break;
    }
    g_stop = 1;
    for (int i = 0; i < n; ++i)
        pthread_join(threads[i], NULL);
    return 0;
}
