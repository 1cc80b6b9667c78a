// The signals a watch handles arrive as data on a signalfd: the loop
// finishes what it is doing (never in the middle of a stop) and then acts
// on them. Shared by watch() and the host agent.
#pragma once

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <vector>

#include "common/unique_fd.hpp"

namespace sw::cli {

// The wait until the next round of a loop that runs every `interval`:
// advances `next` by it, and when the loop fell behind, starts again from
// now instead of catching up in a burst. For ppoll.
inline timespec wait_for_next_round(std::chrono::steady_clock::time_point& next,
                                    std::chrono::steady_clock::duration interval) {
    using Clock = std::chrono::steady_clock;
    next += interval;
    auto wait = next - Clock::now();
    if (wait.count() < 0) {
        next = Clock::now();
        wait = Clock::duration::zero();
    }
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

class SignalQueue {
public:
    explicit SignalQueue(const std::vector<int>& signals) {
        sigemptyset(&set_);
        for (int s : signals) sigaddset(&set_, s);
        ::sigprocmask(SIG_BLOCK, &set_, &old_);
        fd_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
    }
    ~SignalQueue() {
        // Drop what is still queued so that unblocking does not deliver it.
        while (next() != 0) {
        }
        ::sigprocmask(SIG_SETMASK, &old_, nullptr);
    }
    SignalQueue(const SignalQueue&) = delete;
    SignalQueue& operator=(const SignalQueue&) = delete;
    int fd() const { return fd_.get(); }
    // The next pending signal (0 when none), and whether the kernel sent it.
    int next(bool* from_kernel = nullptr) {
        signalfd_siginfo info{};
        if (::read(fd_.get(), &info, sizeof info) != sizeof info) return 0;
        if (from_kernel) *from_kernel = info.ssi_code == SI_KERNEL;
        return static_cast<int>(info.ssi_signo);
    }

private:
    sigset_t set_{}, old_{};
    UniqueFd fd_;
};

}  // namespace sw::cli
