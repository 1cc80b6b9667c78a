// Small facts about a process from /proc.
#pragma once

#include <sys/types.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace sw::proc {

// Checks that `pid` names a live process; no_such_process otherwise.
Status check_process(pid_t pid);

// The process (thread group) that `id` belongs to: `id` itself for a
// process, its leader for a thread (/proc/ID exists for a thread too, hidden
// from listings, so a thread id passes for a pid). nullopt when /proc/ID is
// gone or cannot be read.
std::optional<pid_t> process_of_thread(pid_t id);

// The process's comm name, or "?" when it cannot be read.
std::string comm(pid_t pid);

// The real, effective, saved and filesystem user ids of `pid` (the Uid:
// line of /proc/<pid>/status), and its group ids likewise.
struct Ids {
    std::array<uid_t, 4> uid{};
    std::array<gid_t, 4> gid{};
};
Result<Ids> process_ids(pid_t pid);

// The numeric entries of a /proc directory (/proc itself: pids; /proc/<pid>/task:
// tids), sorted; nullopt with errno set when it cannot be opened.
std::optional<std::vector<pid_t>> numeric_entries(const std::string& dir);

// One clear sentence on why we may not inspect `pid`, for permission errors.
std::string permission_hint(pid_t pid);

}  // namespace sw::proc
