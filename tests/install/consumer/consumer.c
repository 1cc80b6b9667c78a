/*
 * A program outside the stallwatch tree, built against the INSTALLED shim
 * (pkg-config). Used by tests/install/consumer-test.sh.
 *
 *   consumer APP_NAME WORKER_NAME
 *
 * Creates the table, starts one worker thread that registers as WORKER_NAME,
 * ticks, and then waits parked. Prints "ready pid=P init=R live=L" once the
 * worker is registered. Then reads commands, one per line, from stdin:
 *   unregister   the worker thread unregisters and exits; prints "unregistered"
 * End of stdin ends the program (exit status 0).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stallwatch/stallwatch.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_registered; /* 1 once the worker has its slot */
static int g_live;       /* stallwatch_worker_is_live of the worker */
static int g_stop;       /* the worker is asked to leave */

static void *worker_main(void *arg)
{
    stallwatch_worker *w = stallwatch_register((const char *)arg);
    for (int i = 0; i < 100; ++i)
        stallwatch_tick(w);

    pthread_mutex_lock(&g_lock);
    g_live = stallwatch_worker_is_live(w);
    g_registered = 1;
    pthread_cond_broadcast(&g_cond);
    /* Idle: parked while it waits, so the monitor never calls it stuck. */
    stallwatch_park(w);
    while (!g_stop)
        pthread_cond_wait(&g_cond, &g_lock);
    pthread_mutex_unlock(&g_lock);
    stallwatch_unpark(w);
    stallwatch_unregister(w);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s APP_NAME WORKER_NAME\n", argv[0]);
        return 64;
    }
    int rc = stallwatch_init(argv[1], 0);

    pthread_t thread;
    if (pthread_create(&thread, NULL, worker_main, argv[2]) != 0) {
        perror("pthread_create");
        return 1;
    }
    pthread_mutex_lock(&g_lock);
    while (!g_registered)
        pthread_cond_wait(&g_cond, &g_lock);
    int live = g_live;
    pthread_mutex_unlock(&g_lock);

    printf("ready pid=%d init=%d live=%d\n", (int)getpid(), rc, live);
    fflush(stdout);

    int joined = 0;
    char line[128];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, "unregister") == 0 && !joined) {
            pthread_mutex_lock(&g_lock);
            g_stop = 1;
            pthread_cond_broadcast(&g_cond);
            pthread_mutex_unlock(&g_lock);
            pthread_join(thread, NULL);
            joined = 1;
            printf("unregistered\n");
            fflush(stdout);
        } else {
            fprintf(stderr, "consumer: unknown command '%s'\n", line);
        }
    }

    if (!joined) {
        pthread_mutex_lock(&g_lock);
        g_stop = 1;
        pthread_cond_broadcast(&g_cond);
        pthread_mutex_unlock(&g_lock);
        pthread_join(thread, NULL);
    }
    return 0;
}
