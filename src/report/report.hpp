// The report model: plain values that the writers render. Nothing here
// knows libunwind or libdw.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detect/detector.hpp"
#include "proc/thread_info.hpp"
#include "report/locks.hpp"
#include "symbolize/symbolizer.hpp"
#include "table/snapshot.hpp"

namespace sw::report {

struct Target {
    pid_t pid = 0;
    std::string process_name;  // comm
    std::string executable;    // /proc/<pid>/exe target, "" if unreadable
    std::string app_name;      // from the table
    pid_t pid_in_namespace = 0;  // its pid as it sees itself, when that differs (a container); else 0
    std::string cgroup;          // its cgroup v2 path, "" when none
};

// A compensation episode of a group (table format version 2) seen in the
// table: its start or its end, as the process's shim recorded it.
struct CompensationEvent {
    bool begins = true;
    std::string group;
    std::uint64_t episode = 0;       // the group's episode number (its `episodes` count)
    std::uint32_t threshold_ms = 0;
    std::uint32_t extra_threads = 0;       // at this read
    std::uint32_t extra_threads_peak = 0;  // the most at once so far in the episode
    std::uint64_t begin_unix_ns = 0;       // when the shim saw it begin
    double duration_ms = 0;                // an end: how long it ran (as far as this monitor saw)
};

struct StallReport {
    detect::Event event;          // kind, worker, stalled_for, episode, report, suppressed
    Target target;
    std::uint64_t unix_ns = 0;    // when the sample was taken
    proc::ThreadState thread;     // read just before the stop
    std::vector<symbolize::Frame> frames;
    std::string stopped_early;    // why the stack ends early, "" if complete
    std::chrono::nanoseconds stop_window{};  // how long the thread was frozen (stop seen to detach)
    std::chrono::nanoseconds stop_wait{};    // before it: PTRACE_INTERRUPT to the stop
    std::string capture_error;    // set when no stack could be taken
    bool thread_exited = false;   // ... because the thread is gone
    bool capture_denied = false;  // ... because we may not inspect it (Errc::permission_denied)
    bool registered = true;       // false: a thread that is not a worker (dump --all-threads)
    // Set when the thread was deliberately not stopped: "parked" for a
    // worker waiting for work (dump without --all-threads): its stack is
    // its wait, and a stop would make some waits (epoll_wait) return EINTR.
    std::string not_stopped;

    // What it waits on when stopped in a futex wait (docs/locks.md), and
    // who holds it: holders[0] holds `lock`, holders[i + 1] holds what
    // holders[i] waits on, as far as owners are known.
    std::optional<LockWait> lock;
    std::vector<LockHolder> holders;
    // The chain came back to a thread already in it, and every link held
    // when checked again.
    std::optional<Deadlock> deadlock;
    // Why the chain of holders stops where it does when that is not an
    // unknown owner: it grew too long, or a cycle did not hold.
    std::string chain_end;
};

// "update_db (pool.c:27)" for the first application frame of `frames`, ""
// when there is none.
std::string application_frame_label(const std::vector<symbolize::Frame>& frames, const std::string& executable);

// A frame in the application's own code (see classify.hpp).
bool is_application_frame(const symbolize::Frame& f, const std::string& executable);

// Index of the first application frame, if any.
std::optional<std::size_t> first_application_frame(const StallReport& r);

// How much the text output without --full needs to know of each frame,
// given the frames' modules (Symbolizer::modules): frames in runtime modules
// (runtime_module in classify.hpp: the C library, the C++ runtime, other
// system libraries) are named from their module's symbol table, without
// inlined calls or file:line, as eu-stack names them (Detail::name); the
// application's frames in full, inlined calls and file:line (Detail::full).
std::vector<symbolize::Detail> text_detail(const std::vector<std::string>& modules, const std::string& executable);

// The name a function goes by for the fingerprint and for comparisons:
// without symbol version, compiler clone suffix, glibc's __GI_ aliases and
// leading underscores.
std::string canonical_function(std::string_view name);

// A stable identity of a stack: 16 hex digits from the module file name and
// canonical function of its application frames (all named frames when it
// has none), the same across ASLR, restarts, hosts and debug info.
std::string stack_fingerprint(const std::vector<symbolize::Frame>& frames, const std::string& executable);

}  // namespace sw::report
