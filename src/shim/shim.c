/*
 * stallwatch shim: creates the progress table and hands out worker slots.
 * Depends on libc only. Nothing here runs on the hot path: stallwatch_tick,
 * _park and _unpark are inline in the public header.
 */
#define _GNU_SOURCE
#include "stallwatch/stallwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim/shim_internal.h"

/* Process-wide state. Written under g_lock; g_live is read without it. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_init_result = 1; /* 1: never tried; 0: live; <0: -errno */
static int g_live;            /* 1 while the shared table is usable */
static int g_fd = -1;
static unsigned char *g_base;
static size_t g_size;
static uint32_t g_capacity; /* private copy: never trust the shared bytes */
static uint32_t g_groups;   /* group records (version 2), 0 in version 1 */
static size_t g_slots_at;   /* header_size: where slot 0 starts */
static pthread_key_t g_key;
static int g_key_ready;
static int g_atfork_ready;

/* The calling thread's slot in the table, or NULL. */
__thread stallwatch_worker *sw_shim_worker; /* shim_internal.h */
__thread unsigned char sw_shim_shared;      /* shim_internal.h */
#define t_worker sw_shim_worker
/* Where ticks of an unregistered or disabled thread go: nobody reads it. */
static __thread stallwatch_worker t_sink __attribute__((aligned(64)));

static struct stallwatch_table_header *header(void)
{
    return (struct stallwatch_table_header *)(void *)g_base;
}

static stallwatch_worker *slot_at(uint32_t i)
{
    return (stallwatch_worker *)(void *)(g_base + g_slots_at + (size_t)i * STALLWATCH_SLOT_SIZE);
}

static struct stallwatch_table_group *group_at(uint32_t index)
{
    return (struct stallwatch_table_group *)(void *)(g_base + STALLWATCH_HEADER_SIZE +
                                               (size_t)index * STALLWATCH_GROUP_SIZE);
}

static int owns(const stallwatch_worker *w)
{
    const unsigned char *p = (const unsigned char *)w;
    if (!g_base || p < g_base + g_slots_at || p >= g_base + g_size)
        return 0;
    return ((size_t)(p - g_base - g_slots_at) % STALLWATCH_SLOT_SIZE) == 0;
}

/* Where slot 0 starts in a table of `groups` group records. */
static size_t slots_offset(uint32_t groups)
{
    return STALLWATCH_HEADER_SIZE + (size_t)groups * STALLWATCH_GROUP_SIZE;
}

/* Copies at most size-1 bytes, never cutting a UTF-8 character in two, and
 * zero-fills the rest: no stale tail. */
static void copy_name(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;
    while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
        --n; /* src[n] continues the character that src[n-1] began */
    memset(dst, 0, size);
    if (n)
        memcpy(dst, src, n);
}

static int env_disabled(void)
{
    const char *v = getenv("STALLWATCH_DISABLE");
    return v && *v && strcmp(v, "0") != 0;
}

static void release_slot(stallwatch_worker *w)
{
    __atomic_store_n(&w->state, (uint32_t)STALLWATCH_SLOT_FREE, __ATOMIC_RELEASE);
}

static void on_thread_exit(void *value)
{
    stallwatch_worker *w = value;
    if (w && w == t_worker && owns(w))
        release_slot(w);
    t_worker = NULL;
    sw_shim_shared = 0;
}

/*
 * In a forked child the table mapping is still shared with the parent. Swap
 * it for private zeroed memory at the same address, so that worker pointers
 * the child still holds stay valid but write nowhere the monitor reads, and
 * close the inherited fd so the child does not look as if it had a table.
 * The child may call stallwatch_init again to get a table of its own.
 */
static void after_fork_child(void)
{
    if (g_base) {
        void *p = mmap(g_base, g_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        (void)p; /* on failure the old mapping stays; nothing safer exists */
    }
    if (g_fd >= 0)
        close(g_fd);
    g_fd = -1;
    g_base = NULL; /* the private copy is left mapped on purpose */
    g_size = 0;
    g_capacity = 0;
    g_groups = 0;
    g_slots_at = 0;
    sw_shim_compensation_after_fork(); /* no watchdog thread in the child */
    __atomic_store_n(&g_live, 0, __ATOMIC_RELEASE);
    g_init_result = 1;
    t_worker = NULL;
    sw_shim_shared = 0;
    if (g_key_ready)
        pthread_setspecific(g_key, NULL);
    pthread_mutex_init(&g_lock, NULL);
}

/*
 * A process can hold two copies of this code: the static shim linked into
 * the program and the preload library (src/preload), which carries its own.
 * Whichever initialises second takes the table the first one made, so that
 * the process has one table: the slot claim is a compare-and-swap and every
 * slot has one writer, so two copies share a table as two threads do.
 * Adopted: a memfd of ours in this process, sealed, with a header this
 * process wrote (its pid) in the format this code writes. No allocation:
 * the directory is read with getdents64 into a stack buffer.
 */
static int adopt_table(void)
{
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    static const char link[] = "/memfd:" STALLWATCH_TABLE_MEMFD_NAME " (deleted)";
    int adopted = -1;
    char buf[4096] __attribute__((aligned(8)));
    long n;
    while (adopted != 0 && (n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n && adopted != 0;) {
            const char *name = buf + off + 19; /* d_ino 8, d_off 8, d_reclen 2, d_type 1 */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            off += reclen;
            if (name[0] < '0' || name[0] > '9')
                continue;
            char target[sizeof link + 1];
            ssize_t len = readlinkat(dir, name, target, sizeof target);
            if (len != (ssize_t)sizeof link - 1 || memcmp(target, link, sizeof link - 1) != 0)
                continue;
            int fd = atoi(name);
            if (fd == dir)
                continue;
            struct stat st;
            int seals = fcntl(fd, F_GET_SEALS);
            if (fstat(fd, &st) != 0 || seals < 0 ||
                (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW) ||
                st.st_size < (off_t)STALLWATCH_HEADER_SIZE)
                continue;
            size_t size = (size_t)st.st_size;
            void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (base == MAP_FAILED)
                continue;
            const struct stallwatch_table_header *h = base;
            uint64_t magic, want;
            memcpy(&want, STALLWATCH_TABLE_MAGIC, sizeof want);
            magic = __atomic_load_n((const uint64_t *)(const void *)h->magic, __ATOMIC_ACQUIRE);
            uint32_t groups = h->version == STALLWATCH_TABLE_VERSION_GROUPS ? h->group_capacity : 0;
            int mine = magic == want &&
                       (h->version == STALLWATCH_TABLE_VERSION ||
                        (h->version == STALLWATCH_TABLE_VERSION_GROUPS && groups >= 1 &&
                         groups <= STALLWATCH_MAX_GROUPS)) &&
                       h->header_size == slots_offset(groups) &&
                       h->slot_size == STALLWATCH_SLOT_SIZE && h->capacity <= STALLWATCH_MAX_CAPACITY &&
                       slots_offset(groups) + (size_t)h->capacity * STALLWATCH_SLOT_SIZE <= size &&
                       h->pid == (int32_t)getpid();
            int own = mine ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
            if (own < 0) {
                munmap(base, size);
                continue;
            }
            g_fd = own;
            g_base = base;
            g_size = size;
            g_capacity = h->capacity;
            g_groups = groups;
            g_slots_at = slots_offset(groups);
            adopted = 0;
        }
    }
    close(dir);
    return adopted;
}

static int create_table(const char *app_name, uint32_t capacity, uint32_t groups)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t bytes = slots_offset(groups) + (size_t)capacity * STALLWATCH_SLOT_SIZE;
    size_t size = (bytes + page - 1) / page * page;

    int fd = memfd_create(STALLWATCH_TABLE_MEMFD_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    /* Nobody, not even a hostile holder of the fd, can shrink it under us
     * (the next tick would die of SIGBUS). Without the seal the shim would
     * put the application at that risk, so it creates no table: init fails
     * with the error and every call stays a no-op. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        int e = errno;
        close(fd);
        return -e;
    }

    struct stallwatch_table_header *h = base;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* Version 1 unless groups were asked for: a table without them stays
     * readable by every stallwatch that reads version 1. */
    h->version = groups ? STALLWATCH_TABLE_VERSION_GROUPS : STALLWATCH_TABLE_VERSION;
    h->header_size = (uint32_t)slots_offset(groups);
    h->group_capacity = groups;
    h->slot_size = STALLWATCH_SLOT_SIZE;
    h->capacity = capacity;
    h->pid = (int32_t)getpid();
    h->flags = 0;
    h->created_unix_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    h->slots_high_water = 0;
    copy_name(h->app_name, sizeof h->app_name,
              app_name ? app_name : program_invocation_short_name);
    /* The magic goes last, as one aligned 8-byte release store: a reader that
     * sees it sees a complete header, and never half a magic. */
    uint64_t magic;
    memcpy(&magic, STALLWATCH_TABLE_MAGIC, sizeof magic);
    __atomic_store_n((uint64_t *)(void *)h->magic, magic, __ATOMIC_RELEASE);

    g_fd = fd;
    g_base = base;
    g_size = size;
    g_capacity = capacity;
    g_groups = groups;
    g_slots_at = slots_offset(groups);
    return 0;
}

static int init_table(const char *app_name, uint32_t capacity, uint32_t groups)
{
    pthread_mutex_lock(&g_lock);
    if (g_init_result != 1) {
        int r = g_init_result < 0 ? g_init_result : 0;
        pthread_mutex_unlock(&g_lock);
        return r;
    }
    int r;
    if (env_disabled())
        r = -ECANCELED;
    else if (capacity > STALLWATCH_MAX_CAPACITY || groups > STALLWATCH_MAX_GROUPS)
        r = -EINVAL;
    else {
        r = 0;
        if (!g_key_ready) {
            r = -pthread_key_create(&g_key, on_thread_exit);
            g_key_ready = (r == 0);
        }
        if (r == 0 && !g_atfork_ready) {
            r = -pthread_atfork(NULL, NULL, after_fork_child);
            g_atfork_ready = (r == 0);
        }
        if (r == 0 && adopt_table() != 0)
            r = create_table(app_name, capacity ? capacity : STALLWATCH_DEFAULT_CAPACITY, groups);
    }
    g_init_result = r;
    if (r == 0)
        __atomic_store_n(&g_live, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_lock);
    return r;
}

int stallwatch_init(const char *app_name, uint32_t capacity)
{
    return init_table(app_name, capacity, 0);
}

int stallwatch_init_groups(const char *app_name, uint32_t capacity, uint32_t groups)
{
    if (groups == 0)
        return -EINVAL;
    return init_table(app_name, capacity, groups);
}

/* ---- Groups (version 2) ------------------------------------------------------ */

int stallwatch_group(const char *name)
{
    if (!name || !*name)
        return -EINVAL;
    pthread_mutex_lock(&g_lock);
    int r;
    if (!__atomic_load_n(&g_live, __ATOMIC_ACQUIRE))
        r = g_init_result < 0 ? g_init_result : -ECANCELED;
    else if (g_groups == 0)
        r = -ENOTSUP;
    else {
        char want[STALLWATCH_GROUP_NAME_SIZE];
        copy_name(want, sizeof want, name);
        r = -ENOSPC;
        for (uint32_t i = 0; i < g_groups; ++i) {
            struct stallwatch_table_group *g = group_at(i);
            if (__atomic_load_n(&g->state, __ATOMIC_RELAXED) == STALLWATCH_GROUP_ACTIVE) {
                if (memcmp(g->name, want, sizeof want) == 0) {
                    r = (int)i + 1;
                    break;
                }
                continue;
            }
            memcpy(g->name, want, sizeof want);
            __atomic_store_n(&g->state, (uint32_t)STALLWATCH_GROUP_ACTIVE, __ATOMIC_RELEASE);
            r = (int)i + 1;
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

int stallwatch_join(stallwatch_worker *w, int group)
{
    if (!w || w != t_worker || !owns(w))
        return w == &t_sink ? 0 : -EINVAL; /* a no-op worker joins nothing, quietly */
    if (group < 0 || (uint32_t)group > g_groups ||
        (group > 0 &&
         __atomic_load_n(&group_at((uint32_t)group - 1)->state, __ATOMIC_ACQUIRE) != STALLWATCH_GROUP_ACTIVE))
        return -EINVAL;
    __atomic_store_n(&w->group, (uint32_t)group, __ATOMIC_RELEASE);
    return 0;
}

/* For compensation.c: the table as this shim maps it. */
int sw_shim_table(struct sw_shim_view *view)
{
    if (!__atomic_load_n(&g_live, __ATOMIC_ACQUIRE) || g_groups == 0)
        return -1;
    view->capacity = g_capacity;
    view->groups = g_groups;
    view->header = header();
    view->group0 = group_at(0);
    view->slot0 = slot_at(0);
    return 0;
}

static void raise_high_water(uint32_t n)
{
    uint32_t *hw = &header()->slots_high_water;
    uint32_t cur = __atomic_load_n(hw, __ATOMIC_RELAXED);
    while (cur < n &&
           !__atomic_compare_exchange_n(hw, &cur, n, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
    }
}

stallwatch_worker *stallwatch_register(const char *name)
{
    if (t_worker) {
        sw_shim_shared = 1;
        return t_worker;
    }
    if (!__atomic_load_n(&g_live, __ATOMIC_ACQUIRE))
        return &t_sink;

    for (uint32_t i = 0; i < g_capacity; ++i) {
        stallwatch_worker *w = slot_at(i);
        uint32_t expected = STALLWATCH_SLOT_FREE;
        if (__atomic_load_n(&w->state, __ATOMIC_RELAXED) != expected ||
            !__atomic_compare_exchange_n(&w->state, &expected, (uint32_t)STALLWATCH_SLOT_CLAIMED,
                                         0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            continue;
        /* We own the slot: identity first, then generation, then state. */
        w->tid = (int32_t)gettid();
        __atomic_store_n(&w->group, 0, __ATOMIC_RELAXED); /* the watchdog may be reading it */
        copy_name(w->name, sizeof w->name, name);
        __atomic_store_n(&w->progress, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&w->generation, w->generation + 1, __ATOMIC_RELAXED);
        raise_high_water(i + 1);
        __atomic_store_n(&w->state, (uint32_t)STALLWATCH_SLOT_RUNNING, __ATOMIC_RELEASE);
        t_worker = w;
        pthread_setspecific(g_key, w);
        return w;
    }
    return &t_sink; /* table full */
}

void stallwatch_unregister(stallwatch_worker *w)
{
    if (!w || w != t_worker)
        return;
    if (owns(w))
        release_slot(w);
    t_worker = NULL;
    sw_shim_shared = 0;
    pthread_setspecific(g_key, NULL);
}

stallwatch_worker *sw_shim_thread_worker(void)
{
    if (t_worker)
        return t_worker;
    /* Another copy of the shim in this process (the program's static one)
     * may have registered the thread in the same, adopted table. */
    if (!__atomic_load_n(&g_live, __ATOMIC_ACQUIRE))
        return NULL;
    int32_t tid = (int32_t)gettid();
    uint32_t n = __atomic_load_n(&header()->slots_high_water, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n && i < g_capacity; ++i) {
        stallwatch_worker *w = slot_at(i);
        uint32_t state = __atomic_load_n(&w->state, __ATOMIC_ACQUIRE);
        if ((state == STALLWATCH_SLOT_RUNNING || state == STALLWATCH_SLOT_PARKED) &&
            __atomic_load_n(&w->tid, __ATOMIC_RELAXED) == tid)
            return w;
    }
    return NULL;
}

int stallwatch_worker_is_live(const stallwatch_worker *w)
{
    return w && w != &t_sink && owns(w);
}
