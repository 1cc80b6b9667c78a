// Stall detection: pure logic over successive table snapshots and an
// injected clock. No system calls; the caller supplies the time and tells
// whether a thread is frozen by someone else (SIGSTOP, a debugger).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <tuple>
#include <vector>

#include "table/snapshot.hpp"

namespace sw::detect {

using Clock = std::chrono::steady_clock;
using Duration = std::chrono::nanoseconds;

struct Config {
    Duration threshold = std::chrono::milliseconds(100);
    // How often the caller observes. A gap between two observations longer
    // than max(threshold / 2, 5 * interval) means the monitor itself did not
    // run (host suspended, monitor stopped or starved): only one interval of
    // it is counted, so nobody is blamed for time nobody could see.
    Duration interval = std::chrono::milliseconds(10);
    // Global rate limit on stall reports (stall and stall_update): a bucket
    // of `burst` reports refilled at `refill_per_second`. Updates may only
    // use the upper half of the bucket: first reports of stalls come first.
    unsigned burst = 20;
    double refill_per_second = 1.0;
};

enum class EventKind {
    stall,         // a running worker's progress has not moved for the threshold
    stall_update,  // the same stall goes on (at 2x, 4x, 8x ... the threshold)
    recovered,     // progress moved again (or the worker parked) after a reported stall
    ended,         // the worker unregistered or its slot was reused while stalled
    sample,        // not a detection: a stack taken on request (`dump`)
};

struct Event {
    EventKind kind = EventKind::stall;
    table::Worker worker;       // the worker as last seen
    Duration stalled_for{};     // time without progress, not counting frozen time
    std::uint64_t episode = 0;  // one id per stall episode, from 1
    unsigned report = 0;        // 1 for stall, 2, 3 ... for its updates
    std::uint64_t suppressed = 0;  // reports dropped by the rate limit before this one
};

// Whether thread `tid` is stopped by a signal or a tracer right now.
using FrozenProbe = std::function<bool(pid_t tid)>;

class Detector {
public:
    explicit Detector(Config cfg) : cfg_(cfg) {}

    // Feeds one snapshot taken at `now`. `frozen` is asked only about running
    // workers whose progress did not move since the last snapshot.
    std::vector<Event> observe(const table::Snapshot& snap, Clock::time_point now,
                               const FrozenProbe& frozen);

    // One report of `episode` was not made after all (the worker moved
    // while being sampled). If no other report of the episode was made, its
    // recovery will not be announced either.
    void withdraw(std::uint64_t episode);

    // Reports the rate limit dropped so far, in total.
    std::uint64_t total_suppressed() const noexcept { return total_suppressed_; }

private:
    using Key = std::tuple<std::uint32_t, std::uint32_t, pid_t>;  // slot, generation, tid

    struct Track {
        table::Worker last;
        Duration stalled{};             // accumulated time without progress
        std::uint64_t episode = 0;      // 0: no stall episode
        unsigned made = 0;              // reports of this episode actually made
        unsigned reports = 0;
        Duration next_report{};         // stalled time at which to report again
    };

    bool take_token(Clock::time_point now, double keep);
    void emit_report(std::vector<Event>& out, Track& t, EventKind kind, Clock::time_point now);

    Config cfg_;
    std::map<Key, Track> tracks_;
    bool started_ = false;
    Clock::time_point last_now_{};
    std::uint64_t next_episode_ = 1;
    double tokens_ = 0;
    Clock::time_point tokens_at_{};
    std::uint64_t pending_suppressed_ = 0;
    std::uint64_t total_suppressed_ = 0;
};

}  // namespace sw::detect
