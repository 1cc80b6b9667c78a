/*
 * The external observer of bench/compare-busy.sh: runs one command (a
 * stack-dumping tool) and, while it runs, reads the state of each healthy
 * thread of the target from /proc/PID/task/TID/stat every --period-us
 * (100 us), to see whether the command stopped it and for how long.
 *
 *   sw_bench_stop_sampler --pid P --healthy T1,T2,... [--period-us N]
 *                         [--out FILE] -- COMMAND ARGS...
 *
 * Prints one line when the command ends:
 *   wall_ms=W rc=R scans=S period_us=N seen_stopped=K threads_stopped=M
 *   longest_stop_ms=L freeze_ms=F
 * wall_ms: from the spawn of the command to its exit; seen_stopped: scans
 * that saw a healthy thread stopped (state t or T), summed over the
 * threads; threads_stopped: how many healthy threads were ever seen
 * stopped; longest_stop_ms: the longest run of one thread seen stopped, from
 * the first scan that saw it stopped to the first that saw it running again
 * (so it may exceed the real stop by one scan period; a stop shorter than a
 * scan period may go unseen); freeze_ms: the same for scans that saw every
 * healthy thread stopped at once (0: never). The sampling thread runs at
 * SCHED_FIFO 1 when it may, so that the spinning threads do not starve it;
 * it sleeps between scans. The command's standard output goes to --out
 * (default /dev/null).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { MAX_THREADS = 256 };

static int g_fds[MAX_THREADS];
static int g_n;
static long g_period_us = 100;
static atomic_int g_done;

struct result {
    long scans, seen_stopped, threads_stopped;
    double longest_stop_ms, freeze_ms;
};
static struct result g_res;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* 1 when the thread is in a stop (t: traced, T: job control), 0 otherwise or
 * when it is gone. */
static int stopped(int fd)
{
    char buf[512];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    if (!paren || paren[1] != ' ')
        return 0;
    return paren[2] == 't' || paren[2] == 'T';
}

static void *sample(void *arg)
{
    (void)arg;
    struct sched_param sp = {.sched_priority = 1};
    pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp); /* best effort */
    double since[MAX_THREADS]; /* when this run of stops was first seen; 0: running */
    int ever[MAX_THREADS];
    memset(ever, 0, sizeof ever);
    for (int i = 0; i < g_n; ++i)
        since[i] = 0;
    double freeze_since = 0;
    struct timespec period = {0, g_period_us * 1000};
    while (!atomic_load(&g_done)) {
        int all = 1;
        double t = now_ms();
        for (int i = 0; i < g_n; ++i) {
            if (stopped(g_fds[i])) {
                g_res.seen_stopped++;
                ever[i] = 1;
                if (since[i] == 0)
                    since[i] = t;
            } else {
                all = 0;
                if (since[i] != 0 && t - since[i] > g_res.longest_stop_ms)
                    g_res.longest_stop_ms = t - since[i];
                since[i] = 0;
            }
        }
        if (all && freeze_since == 0)
            freeze_since = t;
        if (!all && freeze_since != 0) {
            if (t - freeze_since > g_res.freeze_ms)
                g_res.freeze_ms = t - freeze_since;
            freeze_since = 0;
        }
        g_res.scans++;
        nanosleep(&period, NULL);
    }
    double t = now_ms(); /* runs still open when the command ended */
    for (int i = 0; i < g_n; ++i) {
        if (since[i] != 0 && t - since[i] > g_res.longest_stop_ms)
            g_res.longest_stop_ms = t - since[i];
        g_res.threads_stopped += ever[i];
    }
    if (freeze_since != 0 && t - freeze_since > g_res.freeze_ms)
        g_res.freeze_ms = t - freeze_since;
    return NULL;
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s --pid P --healthy T1,T2,... [--period-us N] [--out FILE] -- COMMAND ARGS...\n",
            argv0);
    return 64;
}

int main(int argc, char **argv)
{
    long pid = 0;
    const char *healthy = NULL, *out = "/dev/null";
    int i = 1;
    for (; i < argc; ++i) {
        if (strcmp(argv[i], "--") == 0) {
            ++i;
            break;
        }
        if (i + 1 >= argc)
            return usage(argv[0]);
        if (strcmp(argv[i], "--pid") == 0)
            pid = atol(argv[++i]);
        else if (strcmp(argv[i], "--healthy") == 0)
            healthy = argv[++i];
        else if (strcmp(argv[i], "--period-us") == 0)
            g_period_us = atol(argv[++i]);
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[++i];
        else
            return usage(argv[0]);
    }
    if (pid <= 0 || !healthy || i >= argc || g_period_us < 1 || g_period_us >= 1000000)
        return usage(argv[0]);
    char *list = strdup(healthy);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && g_n < MAX_THREADS;
         tok = strtok_r(NULL, ",", &save)) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/task/%s/stat", pid, tok);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "stop_sampler: %s: %s\n", path, strerror(errno));
            return 1;
        }
        g_fds[g_n++] = fd;
    }
    free(list);

    pthread_t sampler;
    pthread_create(&sampler, NULL, sample, NULL);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    double t0 = now_ms();
    pid_t child;
    int err = posix_spawnp(&child, argv[i], &fa, NULL, argv + i, environ);
    if (err != 0) {
        atomic_store(&g_done, 1);
        pthread_join(sampler, NULL);
        fprintf(stderr, "stop_sampler: %s: %s\n", argv[i], strerror(err));
        return 1;
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    double wall = now_ms() - t0;
    atomic_store(&g_done, 1);
    pthread_join(sampler, NULL);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("wall_ms=%.2f rc=%d scans=%ld period_us=%ld seen_stopped=%ld threads_stopped=%ld "
           "longest_stop_ms=%.2f freeze_ms=%.2f\n",
           wall, rc, g_res.scans, g_period_us, g_res.seen_stopped, g_res.threads_stopped, g_res.longest_stop_ms,
           g_res.freeze_ms);
    return 0;
}
