/*
 * stallwatch progress table: the byte layout shared by the in-app shim and
 * the stallwatch monitor. docs/table-format.md is the normative description;
 * this header is its C rendering and must stay in step with it.
 *
 * WARNING: any change to the bytes below (an offset, a size, a state value,
 * the meaning of a field) requires bumping STALLWATCH_TABLE_VERSION and
 * documenting the new version in docs/table-format.md. Readers refuse
 * versions they do not know.
 */
#ifndef STALLWATCH_TABLE_ABI_H
#define STALLWATCH_TABLE_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The eight bytes "STALLWTB" at offset 0, compared bytewise. */
#define STALLWATCH_TABLE_MAGIC "STALLWTB"
#define STALLWATCH_TABLE_MAGIC_SIZE 8

/* The format versions this header describes: 1, the base format, which
 * every table without groups has; 2, the same with group records between
 * the header and the slots (tables made by stallwatch_init_groups). */
#define STALLWATCH_TABLE_VERSION 1u
#define STALLWATCH_TABLE_VERSION_GROUPS 2u
#define STALLWATCH_TABLE_VERSION_MAX 2u

/* Link name of the memfd that holds the table (memfd_create name). */
#define STALLWATCH_TABLE_MEMFD_NAME "stallwatch"

#define STALLWATCH_HEADER_SIZE 128u
#define STALLWATCH_SLOT_SIZE 64u
#define STALLWATCH_APP_NAME_SIZE 64u
#define STALLWATCH_WORKER_NAME_SIZE 40u

/* Version 2: group records, each 64 bytes, after the 128-byte header; the
 * slots start at header_size = 128 + group_capacity * 64. */
#define STALLWATCH_GROUP_SIZE 64u
#define STALLWATCH_GROUP_NAME_SIZE 32u
#define STALLWATCH_MAX_GROUPS 64u

/* Largest capacity a writer may declare; readers refuse larger tables. */
#define STALLWATCH_MAX_CAPACITY 65536u

/* Slot states. Any other value is a corrupt slot. */
enum stallwatch_slot_state {
    STALLWATCH_SLOT_FREE = 0,    /* nobody owns the slot */
    STALLWATCH_SLOT_CLAIMED = 1, /* being set up or torn down: not yet valid */
    STALLWATCH_SLOT_RUNNING = 2, /* owner is doing work: progress must move */
    STALLWATCH_SLOT_PARKED = 3   /* owner waits for work: not stalled */
};

/* One worker: exactly one cache line, written only by its owner thread
 * (except the claim, which is a compare-and-swap on `state`). */
struct stallwatch_slot {
    uint64_t progress;   /* units of work done; relaxed stores by owner */
    uint32_t state;      /* enum stallwatch_slot_state; release stores */
    int32_t tid;         /* owner's kernel thread id (gettid) */
    uint32_t generation; /* incremented each time the slot is claimed */
    uint32_t group;      /* 0: none (always, in version 1); else group index + 1 */
    char name[STALLWATCH_WORKER_NAME_SIZE]; /* UTF-8, NUL-terminated */
};

/* The table header, at offset 0 of the memfd. */
struct stallwatch_table_header {
    char magic[STALLWATCH_TABLE_MAGIC_SIZE]; /* written last, with release */
    uint32_t version;          /* STALLWATCH_TABLE_VERSION */
    uint32_t header_size;      /* STALLWATCH_HEADER_SIZE; slot 0 starts here */
    uint32_t slot_size;        /* STALLWATCH_SLOT_SIZE */
    uint32_t capacity;         /* number of slots that follow the header */
    int32_t pid;               /* process that created the table */
    uint32_t flags;            /* zero in version 1 */
    uint64_t created_unix_ns;  /* CLOCK_REALTIME at creation, ns since epoch */
    uint32_t slots_high_water; /* slots [0, high_water) were ever claimed */
    uint32_t group_capacity;   /* version 2: group records after the header, 1..64;
                                  version 1: zero */
    char app_name[STALLWATCH_APP_NAME_SIZE]; /* UTF-8, NUL-terminated */
    uint64_t reserved1[2];     /* zero */
};

/* Version 2: one group of workers (at 128 + index * 64). Written by the
 * process's shim only: `state` published last (release) when the group is
 * made, never freed while the table lives; the episode fields by the shim's
 * compensation watchdog. */
enum stallwatch_group_state {
    STALLWATCH_GROUP_FREE = 0,  /* not made yet */
    STALLWATCH_GROUP_ACTIVE = 1 /* name valid; workers may name it */
};

struct stallwatch_table_group {
    uint32_t state;                 /* enum stallwatch_group_state; release store */
    uint32_t threshold_ms;          /* compensation threshold; 0: no compensation */
    uint64_t episodes;              /* compensation episodes begun */
    uint64_t episode_begin_unix_ns; /* CLOCK_REALTIME at the running episode's start; 0: none */
    uint32_t extra_threads;         /* threads the compensation runs now */
    uint32_t extra_threads_peak;    /* most at once, in the running or last episode */
    char name[STALLWATCH_GROUP_NAME_SIZE]; /* UTF-8, NUL-terminated */
};

typedef struct stallwatch_slot stallwatch_worker;

#if defined(__cplusplus)
#define STALLWATCH_STATIC_ASSERT static_assert
#else
#define STALLWATCH_STATIC_ASSERT _Static_assert
#endif

STALLWATCH_STATIC_ASSERT(sizeof(struct stallwatch_slot) == STALLWATCH_SLOT_SIZE, "slot size");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_slot, progress) == 0, "slot.progress");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_slot, state) == 8, "slot.state");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_slot, tid) == 12, "slot.tid");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_slot, generation) == 16, "slot.generation");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_slot, name) == 24, "slot.name");

STALLWATCH_STATIC_ASSERT(sizeof(struct stallwatch_table_header) == STALLWATCH_HEADER_SIZE, "header size");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, magic) == 0, "hdr.magic");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, version) == 8, "hdr.version");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, header_size) == 12, "hdr.header_size");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, slot_size) == 16, "hdr.slot_size");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, capacity) == 20, "hdr.capacity");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, pid) == 24, "hdr.pid");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, flags) == 28, "hdr.flags");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, created_unix_ns) == 32, "hdr.created");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, slots_high_water) == 40, "hdr.high_water");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, app_name) == 48, "hdr.app_name");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, reserved1) == 112, "hdr.reserved1");

STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_header, group_capacity) == 44, "hdr.group_capacity");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_slot, group) == 20, "slot.group");
STALLWATCH_STATIC_ASSERT(sizeof(struct stallwatch_table_group) == STALLWATCH_GROUP_SIZE, "group size");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_group, episodes) == 8, "group.episodes");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_group, episode_begin_unix_ns) == 16, "group.begin");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_group, extra_threads) == 24, "group.extra");
STALLWATCH_STATIC_ASSERT(offsetof(struct stallwatch_table_group, name) == 32, "group.name");

#undef STALLWATCH_STATIC_ASSERT

#ifdef __cplusplus
}
#endif

#endif /* STALLWATCH_TABLE_ABI_H */
