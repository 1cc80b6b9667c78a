// Fast, bare child processes for tests that start stallwatch hundreds of
// times (fault injection): posix_spawn with the output going to one file,
// an exact bounded wait through a pidfd (no polling), and a guard that
// kills and reaps. Plus small /proc helpers the robustness tests share.
// Header-only.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/threads.hpp"

extern char** environ;

namespace sw::test {

// A number from the environment, or `fallback`.
inline long env_number(const char* name, long fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    return end && *end == '\0' ? n : fallback;
}

// The current environment with `extra` added or replaced, ready for posix_spawn.
class SpawnEnv {
public:
    explicit SpawnEnv(const std::map<std::string, std::string>& extra = {}) {
        for (char** e = environ; *e; ++e) {
            std::string kv(*e);
            if (!extra.count(kv.substr(0, kv.find('=')))) strings_.push_back(kv);
        }
        for (const auto& [k, v] : extra) strings_.push_back(k + "=" + v);
        for (auto& s : strings_) ptrs_.push_back(s.data());
        ptrs_.push_back(nullptr);
    }
    SpawnEnv(const SpawnEnv&) = delete;
    SpawnEnv& operator=(const SpawnEnv&) = delete;
    char* const* get() const { return ptrs_.data(); }

private:
    std::vector<std::string> strings_;
    std::vector<char*> ptrs_;
};

// An in-memory file that a child writes its stdout and stderr into
// (appending), which the test can empty and read back.
class OutputFile {
public:
    OutputFile() : fd_(::memfd_create("sw-test-output", MFD_CLOEXEC)) {
        if (fd_ < 0 || ::fcntl(fd_, F_SETFL, O_APPEND) != 0) throw std::runtime_error("memfd_create failed");
    }
    ~OutputFile() { ::close(fd_); }
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;
    int fd() const { return fd_; }
    void clear() { (void)!::ftruncate(fd_, 0); }
    std::string read() const {
        std::string out;
        char buf[8192];
        off_t at = 0;
        for (ssize_t n; (n = ::pread(fd_, buf, sizeof buf, at)) > 0; at += n) out.append(buf, static_cast<size_t>(n));
        return out;
    }

private:
    int fd_;
};

// Starts argv[0] with stdin from /dev/null and stdout and stderr into `out`
// (-1: /dev/null). Throws if it cannot be started.
inline pid_t spawn_to(const std::vector<std::string>& argv, const SpawnEnv& env, int out) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (out >= 0) {
        posix_spawn_file_actions_adddup2(&fa, out, 1);
        posix_spawn_file_actions_adddup2(&fa, out, 2);
    } else {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    std::vector<std::string> args = argv;
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, cargs[0], &fa, nullptr, cargs.data(), env.get());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + argv.at(0) + ": " + std::strerror(rc));
    return pid;
}

// Waits for child `pid` to end, at most `timeout`: the wait status, or
// nullopt (still running). Blocks on a pidfd, so it returns the moment the
// child ends.
inline std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
    int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (pfd >= 0) ::close(pfd);
            return status;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if ((r < 0 && errno != EINTR) || left.count() <= 0) break;
        if (pfd >= 0) {
            pollfd p{pfd, POLLIN, 0};
            ::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 1000)));
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    if (pfd >= 0) ::close(pfd);
    return std::nullopt;
}

// Kills (SIGKILL) and reaps a child when it goes out of scope, unless it was
// reaped already (`reaped()`).
class ChildGuard {
public:
    explicit ChildGuard(pid_t pid) : pid_(pid) {}
    ~ChildGuard() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int status;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    ChildGuard(const ChildGuard&) = delete;
    ChildGuard& operator=(const ChildGuard&) = delete;
    void reaped() { pid_ = -1; }

private:
    pid_t pid_;
};

// Describes how a wait status ended: "exit 2", "signal 11 (Segmentation fault)".
inline std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return "signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")";
    return "status " + std::to_string(status);
}

// Whether some thread of `pid` is traced by `tracer` (any tracer when 0).
inline bool traced_by(pid_t pid, pid_t tracer = 0) {
    for (const auto& s : thread_statuses(pid))
        if (tracer ? s.tracer == tracer : s.tracer != 0) return true;
    return false;
}

// Whether some thread of `pid` sits in a tracing stop of `tracer`.
inline bool held_by(pid_t pid, pid_t tracer) {
    for (const auto& s : thread_statuses(pid))
        if (s.tracer == tracer && s.state == 't') return true;
    return false;
}

// Watches the threads of some processes from a thread of its own, as often
// as it can, and remembers every sighting of one that is traced or stopped:
// evidence that somebody stopped a thread it had no business stopping.
class ThreadSpy {
public:
    explicit ThreadSpy(std::vector<pid_t> pids) : pids_(std::move(pids)), thread_([this] { run(); }) {}
    ~ThreadSpy() { stop(); }
    ThreadSpy(const ThreadSpy&) = delete;
    ThreadSpy& operator=(const ThreadSpy&) = delete;

    void stop() {
        done_ = true;
        if (thread_.joinable()) thread_.join();
    }
    // "pid P tid T state S tracer R; ..." for every distinct sighting.
    std::string sightings() {
        std::lock_guard lk(mutex_);
        std::string out;
        for (const auto& s : seen_) out += s + "; ";
        return out;
    }
    unsigned long looks() const { return looks_; }

private:
    void run() {
        while (!done_) {
            for (pid_t pid : pids_)
                for (const auto& s : thread_statuses(pid))
                    if (s.tracer != 0 || s.state == 't' || s.state == 'T') {
                        std::lock_guard lk(mutex_);
                        seen_.insert("pid " + std::to_string(pid) + " tid " + std::to_string(s.tid) + " state " +
                                     s.state + " tracer " + std::to_string(s.tracer));
                    }
            ++looks_;
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }

    std::vector<pid_t> pids_;
    std::atomic<bool> done_{false};
    std::atomic<unsigned long> looks_{0};
    std::mutex mutex_;
    std::set<std::string> seen_;
    std::thread thread_;
};

}  // namespace sw::test
