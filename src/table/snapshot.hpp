// What the monitor knows of a progress table at one instant: value types
// only, produced by the parser from untrusted bytes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sw::table {

enum class WorkerState : std::uint32_t { running = 2, parked = 3 };

std::string_view to_string(WorkerState s);

struct Header {
    std::uint32_t version = 0;
    std::uint32_t header_size = 0;     // where slot 0 starts: 128, plus the group records in version 2
    std::uint32_t group_capacity = 0;  // version 2's group records; 0 in version 1
    std::uint32_t capacity = 0;
    std::uint32_t high_water = 0;
    pid_t pid = 0;
    std::uint64_t created_unix_ns = 0;
    std::string app_name;
};

struct Worker {
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;
    pid_t tid = 0;     // as this monitor sees it (0: no such thread, see proc/namespaces.hpp)
    pid_t ns_tid = 0;  // as the target sees it, when that differs (in another PID namespace); else 0
    WorkerState state = WorkerState::running;
    std::uint64_t progress = 0;
    std::uint32_t group = 0;  // 0: none; else the index + 1 of its group in Snapshot::groups' records
    std::string name;

    // Same registration: same slot, same claim, same thread.
    bool same_identity(const Worker& o) const {
        return slot == o.slot && generation == o.generation && tid == o.tid && name == o.name;
    }
};

// A group of workers (version 2) and its compensation episodes, as the
// process's shim records them (docs/table-format.md, section 12).
struct Group {
    std::uint32_t id = 0;  // index + 1: what Worker::group names
    std::string name;
    std::uint32_t threshold_ms = 0;  // 0: no compensation registered
    std::uint64_t episodes = 0;      // episodes begun so far
    std::uint64_t episode_begin_unix_ns = 0;  // 0: no episode running
    std::uint32_t extra_threads = 0;
    std::uint32_t extra_threads_peak = 0;

    bool operator==(const Group&) const = default;
};

struct Snapshot {
    Header header;
    std::vector<Worker> workers;  // live slots only, in slot order
    std::vector<Group> groups;    // made groups only, in record order
    // False when the two reads of a confirmed snapshot disagreed on the
    // groups (an episode began or ended between them): `groups` is then
    // empty, and says nothing about them.
    bool groups_consistent = true;
};

}  // namespace sw::table
