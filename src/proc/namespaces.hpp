// Ids across PID namespaces. A process in a container sees itself and its
// threads under the ids of its own (innermost) PID namespace, and the shim
// writes those into the table; this monitor's /proc, ptrace and signals take
// the ids of the namespace its /proc belongs to. The NSpid: line of
// /proc/<pid>/task/<tid>/status lists a thread's id in every namespace from
// that one (first) down to the thread's own (last).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_map>

#include "table/snapshot.hpp"

namespace sw::proc {

class NamespaceIds {
public:
    // Reads the NSpid: line of `pid`. When it cannot be read, or lists one
    // id, the target sees the ids we see and every translation is the
    // identity.
    explicit NamespaceIds(pid_t pid);

    // The target sees other ids than ours.
    bool nested() const noexcept { return nested_; }
    // Its pid as it sees it (pid itself when not nested).
    pid_t inner_pid() const noexcept { return inner_pid_; }

    // The thread of the target that it calls `inner`, as this monitor calls
    // it; 0 when it has none (gone, or never was: a stale or hostile slot).
    // A thread of another process is never the answer.
    pid_t host_tid(pid_t inner);
    // The id the target gives its thread `host`; 0 when unknown.
    pid_t inner_tid(pid_t host);

    // The table's tids are the target's own: each worker's tid becomes ours
    // (0 when none) and ns_tid keeps the table's (only when nested). A slot
    // seen before with the same generation and tid is not looked up again;
    // one rescan of the threads serves every new one.
    void translate(table::Snapshot& snap);

    // The cgroup (v2) the process is in: the path of /proc/<pid>/cgroup's
    // "0::" line, "" when there is none or it is the root.
    static std::string cgroup_of(pid_t pid);

private:
    void rescan();
    // `id` through `map` (to_host_ or to_inner_), rescanning once on a miss.
    pid_t lookup(const std::unordered_map<pid_t, pid_t>& map, pid_t id);

    pid_t pid_;
    bool nested_ = false;
    pid_t inner_pid_;
    std::unordered_map<pid_t, pid_t> to_host_, to_inner_;
    struct Seen {
        std::uint32_t generation;
        pid_t inner;
        pid_t host;
    };
    std::unordered_map<std::uint32_t, Seen> slots_;
};

}  // namespace sw::proc
