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

// The state letter of thread `tid` of process `pid` (/proc/PID/task/TID/stat:
// R, S, D, T, t, Z, X ...), '?' when there is no such thread of that process
// or it cannot be read.
char thread_state_letter(pid_t pid, pid_t tid);

// When the main thread of `pid` has exited (pthread_exit(), a zombie now)
// while other threads run on, one of those: its /proc/PID/task/TID entries
// show the files and memory the process shares, which the main thread's
// /proc/PID/fd and /proc/PID/maps no longer do (they are empty then).
// nullopt when the main thread runs, or no thread of `pid` does.
std::optional<pid_t> stand_in_thread(pid_t pid);

// The directory of the open files of `pid`: /proc/PID/fd, or that of its
// stand_in_thread() when its main thread has exited.
std::string fd_dir(pid_t pid);

// No thread of `pid` runs any more: it is gone, or a zombie waiting for its
// parent. A process whose main thread exited while others run on has not
// ended. Without a pidfd to ask (Target::exited() asks one when it can).
bool process_ended(pid_t pid);

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
