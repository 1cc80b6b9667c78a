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
    std::string name;

    // Same registration: same slot, same claim, same thread.
    bool same_identity(const Worker& o) const {
        return slot == o.slot && generation == o.generation && tid == o.tid && name == o.name;
    }
};

struct Snapshot {
    Header header;
    std::vector<Worker> workers;  // live slots only, in slot order
};

}  // namespace sw::table
