// The report model: plain values that the writers render. Nothing here
// knows libunwind or libdw.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "detect/detector.hpp"
#include "proc/thread_info.hpp"
#include "symbolize/symbolizer.hpp"
#include "table/snapshot.hpp"

namespace sw::report {

struct Target {
    pid_t pid = 0;
    std::string process_name;  // comm
    std::string executable;    // /proc/<pid>/exe target, "" if unreadable
    std::string app_name;      // from the table
};

struct StallReport {
    detect::Event event;          // kind, worker, stalled_for, episode, report, suppressed
    Target target;
    std::uint64_t unix_ns = 0;    // when the sample was taken
    proc::ThreadState thread;     // read just before the stop
    std::vector<symbolize::Frame> frames;
    std::string stopped_early;    // why the stack ends early, "" if complete
    std::chrono::nanoseconds stop_window{};  // how long the thread was stopped
    std::string capture_error;    // set when no stack could be taken
    bool thread_exited = false;   // ... because the thread is gone
};

// A frame in the application's own code (not libc, the C++ runtime, the
// dynamic loader or the stallwatch shim).
bool is_application_frame(const symbolize::Frame& f, const std::string& executable);

// Index of the first application frame, if any.
std::optional<std::size_t> first_application_frame(const StallReport& r);

}  // namespace sw::report
