/* The conformance sequence through the C shim (tests/conformance.rs runs the
 * same through the crate): prints the table's bytes as hex. */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stallwatch/stallwatch.h"

static sem_t done, release;

static void *alpha(void *arg)
{
    (void)arg;
    stallwatch_worker *w = stallwatch_register("alpha");
    for (int i = 0; i < 3; ++i) stallwatch_tick(w);
    stallwatch_park(w);
    sem_post(&done);
    sem_wait(&release);
    return NULL;
}

static void *beta(void *arg)
{
    (void)arg;
    stallwatch_worker *w = stallwatch_register("beta-\xc3\xa9-a-name-that-is-longer-than-39-bytes");
    stallwatch_tick(w);
    stallwatch_park(w);
    stallwatch_unpark(w);
    sem_post(&done);
    sem_wait(&release);
    return NULL;
}

static void *gamma_(void *arg)
{
    (void)arg;
    stallwatch_worker *w = stallwatch_register("gamma");
    stallwatch_tick(w);
    stallwatch_unregister(w);
    sem_post(&done);
    return NULL;
}

int main(void)
{
    sem_init(&done, 0, 0);
    sem_init(&release, 0, 0);
    if (stallwatch_init("conformance", 4) != 0) return 1;
    void *(*steps[])(void *) = {alpha, beta, gamma_};
    pthread_t t[3];
    for (int i = 0; i < 3; ++i) {
        pthread_create(&t[i], NULL, steps[i], NULL);
        sem_wait(&done);
    }
    char path[64], link[128];
    for (int fd = 0; fd < 64; ++fd) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n <= 0) continue;
        link[n] = 0;
        if (strcmp(link, "/memfd:stallwatch (deleted)") != 0) continue;
        unsigned char buf[1 << 16];
        ssize_t got = pread(fd, buf, sizeof buf, 0);
        for (ssize_t i = 0; i < got; ++i) printf("%02x", buf[i]);
        printf("\n");
    }
    sem_post(&release);
    sem_post(&release);
    for (int i = 0; i < 3; ++i) pthread_join(t[i], NULL);
    return 0;
}
