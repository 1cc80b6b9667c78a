// A child process whose stdout AND stderr the test reads while it runs (the
// stallwatch monitor: status lines on stderr, reports on stdout), that the
// test can signal, and that a guard kills and reaps whatever happens.
// Header-only so that it adds no source to the test targets.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace sw::test {

// Polls `done` every `step` until it holds or `timeout` passes; true if it held.
inline bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                       std::chrono::microseconds step = std::chrono::milliseconds(1)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (done()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(step);
    }
}

class Process {
public:
    using Clock = std::chrono::steady_clock;

    // Starts argv[0] with stdin from /dev/null and stdout and stderr piped to
    // the test; `env` entries are added to (or replace) the environment.
    explicit Process(const std::vector<std::string>& argv,
                     const std::map<std::string, std::string>& env = {}) {
        int out[2], err[2];
        if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
        if (::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
        int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, devnull, 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_adddup2(&fa, err[1], 2);
        std::vector<std::string> args = argv, envs = merged_env(env);
        auto cargs = c_strings(args), cenv = c_strings(envs);
        int rc = posix_spawn(&pid_, cargs[0], &fa, nullptr, cargs.data(), cenv.data());
        posix_spawn_file_actions_destroy(&fa);
        ::close(devnull);
        ::close(out[1]);
        ::close(err[1]);
        fds_[0] = out[0];
        fds_[1] = err[0];
        if (rc != 0) {
            pid_ = -1;
            throw std::runtime_error("cannot start " + argv.at(0) + ": " + std::strerror(rc));
        }
    }

    ~Process() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
        }
        for (int fd : fds_)
            if (fd >= 0) ::close(fd);
    }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& out() const { return out_; }
    const std::string& err() const { return err_; }

    // Reads what the child writes until `done()` holds; false on time-out.
    bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
        auto deadline = Clock::now() + timeout;
        for (;;) {
            if (done()) return true;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) return false;
            if (!pump(std::min(left, std::chrono::milliseconds(20)))) {
                // Both pipes closed: nothing more will come.
                if (done()) return true;
                reap(deadline);
                return done();
            }
        }
    }
    bool wait_for_out(const std::string& text, std::chrono::milliseconds timeout) {
        return wait_for([&] { return out_.find(text) != std::string::npos; }, timeout);
    }
    bool wait_for_err(const std::string& text, std::chrono::milliseconds timeout) {
        return wait_for([&] { return err_.find(text) != std::string::npos; }, timeout);
    }

    // Keeps reading the pipes for `period` (the child runs on meanwhile).
    void watch_for(std::chrono::milliseconds period) {
        auto deadline = Clock::now() + period;
        while (Clock::now() < deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (!pump(std::max(left, std::chrono::milliseconds(1)))) {
                std::this_thread::sleep_for(deadline - Clock::now());
                break;
            }
        }
    }

    void signal(int sig) {
        if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
    }

    // Reads both pipes to their end and reaps the child. Returns the wait
    // status, or nullopt on time-out (the guard kills it later).
    std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
        auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (!pump(std::max(left, std::chrono::milliseconds(1)))) break;
        }
        if (!reap(deadline)) return std::nullopt;
        return status_;
    }

    // After wait(): the exit code, or -1 if a signal ended it.
    int exit_code() const { return reaped_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1; }
    int term_signal() const { return reaped_ && WIFSIGNALED(status_) ? WTERMSIG(status_) : 0; }

private:
    // One poll of both pipes for at most `timeout`; false once both are closed.
    bool pump(std::chrono::milliseconds timeout) {
        pollfd p[2] = {{fds_[0], POLLIN, 0}, {fds_[1], POLLIN, 0}};
        if (fds_[0] < 0 && fds_[1] < 0) return false;
        int n = ::poll(p, 2, static_cast<int>(timeout.count()));
        if (n < 0 && errno != EINTR) return false;
        std::string* sinks[2] = {&out_, &err_};
        for (int i = 0; i < 2 && n > 0; ++i) {
            if (fds_[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[8192];
            ssize_t got = ::read(fds_[i], buf, sizeof buf);
            if (got > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(got));
            } else if (got == 0 || errno != EINTR) {
                ::close(fds_[i]);
                fds_[i] = -1;
            }
        }
        return fds_[0] >= 0 || fds_[1] >= 0;
    }

    bool reap(Clock::time_point deadline) {
        while (!reaped_) {
            pid_t r = ::waitpid(pid_, &status_, WNOHANG);
            if (r == pid_) reaped_ = true;
            else if (r < 0 && errno != EINTR) return false;
            else if (Clock::now() >= deadline) return false;
            else std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return true;
    }

    static std::vector<std::string> merged_env(const std::map<std::string, std::string>& extra) {
        std::vector<std::string> out;
        for (char** e = environ; *e; ++e) {
            std::string kv(*e);
            if (!extra.count(kv.substr(0, kv.find('=')))) out.push_back(kv);
        }
        for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
        return out;
    }
    static std::vector<char*> c_strings(std::vector<std::string>& v) {
        std::vector<char*> out;
        for (auto& s : v) out.push_back(s.data());
        out.push_back(nullptr);
        return out;
    }

    pid_t pid_ = -1;
    int fds_[2] = {-1, -1};
    std::string out_, err_;
    int status_ = 0;
    bool reaped_ = false;
};

}  // namespace sw::test
