// Cheap facts for finding the processes worth watching on a whole host
// (`attach --all`): which process a pid is now (pid reuse), who owns it,
// which descriptors it holds. Each is one or two system calls, so that a
// look at hundreds of processes every half second stays cheap; opening a
// table (TableFile::open) reads every descriptor's link and is done only
// when these say something changed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sw::proc {

// What /proc/PID/stat says about a process's identity.
struct ProcessStart {
    std::uint64_t start = 0;  // start time (clock ticks after boot): pid + start names one process
    bool kernel_thread = false;  // never has a table
};
// nullopt when the process is gone.
std::optional<ProcessStart> process_start(pid_t pid);

// The user id that owns /proc/PID (what `list` shows as USER).
std::optional<uid_t> owner_uid(pid_t pid);

// A user name or a decimal uid, as --user takes it. nullopt for an unknown name.
std::optional<uid_t> find_user(const std::string& name_or_uid);

// The numbers of its open descriptors (one getdents, no readlink), sorted.
// nullopt with errno set when they cannot be listed (gone, not permitted).
std::optional<std::vector<int>> descriptor_numbers(pid_t pid);

}  // namespace sw::proc
