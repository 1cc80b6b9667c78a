// What /proc says about the threads of a process: state letter and tracer.
// Header-only test helpers.
#pragma once

#include <sys/types.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace sw::test {

struct ThreadStatus {
    pid_t tid = 0;
    char state = '?';   // R, S, D, T (stopped), t (tracing stop), Z ...
    pid_t tracer = 0;   // TracerPid
};

// The thread ids of `pid` now (empty if the process is gone).
inline std::vector<pid_t> thread_ids(pid_t pid) {
    std::vector<pid_t> out;
    std::error_code ec;
    for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/task", ec), end;
         !ec && it != end; it.increment(ec))
        out.push_back(static_cast<pid_t>(std::atol(it->path().filename().c_str())));
    return out;
}

// State and TracerPid of one thread, from /proc/<pid>/task/<tid>/status.
inline std::optional<ThreadStatus> thread_status(pid_t pid, pid_t tid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status");
    if (!in) return std::nullopt;
    ThreadStatus s;
    s.tid = tid;
    bool state = false, tracer = false;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("State:", 0) == 0) {
            auto pos = line.find_first_not_of(" \t", 6);
            if (pos != std::string::npos) s.state = line[pos];
            state = true;
        } else if (line.rfind("TracerPid:", 0) == 0) {
            s.tracer = static_cast<pid_t>(std::atol(line.c_str() + 10));
            tracer = true;
        }
    }
    if (!state || !tracer) return std::nullopt;
    return s;
}

inline std::vector<ThreadStatus> thread_statuses(pid_t pid) {
    std::vector<ThreadStatus> out;
    for (pid_t tid : thread_ids(pid))
        if (auto s = thread_status(pid, tid)) out.push_back(*s);
    return out;
}

// Threads that are traced or stopped (TracerPid != 0, or state t or T), as text.
inline std::string held_threads(pid_t pid) {
    std::ostringstream out;
    for (const auto& s : thread_statuses(pid))
        if (s.tracer != 0 || s.state == 't' || s.state == 'T')
            out << "tid " << s.tid << " state " << s.state << " tracer " << s.tracer << "; ";
    return out.str();
}

}  // namespace sw::test
