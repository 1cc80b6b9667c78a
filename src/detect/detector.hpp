// Stall detection: pure logic over successive table snapshots and an
// injected clock. No system calls; the caller supplies the time and tells
// whether a thread is frozen by someone else (SIGSTOP, a debugger).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
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
    // of `burst` reports refilled at `refill_per_second`. First reports come
    // first: a first report that finds the bucket empty waits (while its stall
    // lasts) and is made as soon as a token comes, workers never reported
    // before served first; an update is made only when no first report waits
    // and the bucket is more than half full; and no update is ever made for
    // a stall whose first report was not made.
    unsigned burst = 20;
    double refill_per_second = 1.0;
    // What the rate limit held back is summed up at most once every
    // `summary_every`, `summary_settle` after the first thing held back (so
    // that one summary covers an incident), naming at most `summary_list`
    // of the stalls still open.
    Duration summary_every = std::chrono::seconds(10);
    Duration summary_settle = std::chrono::seconds(1);
    std::size_t summary_list = 10;
    // Whether a thread is stopped by a signal or a debugger costs a /proc
    // read. At most this many running workers whose progress did not move
    // are asked about per read, in turn by slot; the time of one not asked
    // is held apart until it is, then counted if its thread is not frozen
    // and dropped if it is. So frozen time never counts, and a stall begins
    // or is reported only in a read that asked. With no more such workers
    // than this, every one is asked every read.
    std::size_t frozen_checks_per_read = 64;
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
    unsigned report = 0;        // 1 for stall, 2, 3 ... for its updates: the how-manyth report made
    // Reports dropped by the rate limit since the previous report made:
    // updates not made, and stalls that ended without their first report.
    std::uint64_t suppressed = 0;
    // Set after detection, by whoever groups stalls into incidents
    // (report/incidents.hpp): the incident's id (the episode of its first
    // stall), 0 when none; `joined` when this stall is not that first one.
    std::uint64_t incident = 0;
    bool joined = false;
};

// A stall episode going on, as a summary names it.
struct OpenStall {
    std::uint64_t episode = 0;
    table::Worker worker;
    Duration stalled_for{};
    bool reported = false;  // its first report was made
};

// What the rate limit held back: counts for the period since the previous
// summary and since the start, and the stalls open now.
struct Summary {
    bool at_exit = false;
    Duration period{};                      // what the period counts cover
    std::uint64_t stalls = 0;               // episodes that began in the period
    std::uint64_t unreported = 0;           // ... that ended in it without a first report
    std::uint64_t updates_suppressed = 0;   // updates not made in the period
    std::uint64_t total_stalls = 0;         // the same, since the start
    std::uint64_t total_unreported = 0;
    std::uint64_t total_updates_suppressed = 0;
    std::uint64_t open = 0;                 // stall episodes going on now
    std::uint64_t open_unreported = 0;      // ... whose first report is still waiting
    std::vector<OpenStall> listed;          // at most Config::summary_list: waiting ones first, then by episode
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

    // The last report of `episode` was not made after all (the worker moved
    // while being sampled, its thread exited, the watch ended first). If it
    // was the first report, the stall counts as not reported: none of its
    // updates, nor its recovery, will be announced unless a first report is
    // made later (it is due again at the next report time).
    void withdraw(std::uint64_t episode);

    // A first report made was worth less than the token it took (it joined
    // an incident already reported, and prints one line): the token goes back.
    void refund() noexcept;

    // Reports the rate limit dropped so far, in total (as Event::suppressed).
    std::uint64_t total_suppressed() const noexcept { return total_unreported_ + total_updates_suppressed_; }
    // First reports waiting for the rate limit now.
    std::size_t waiting() const noexcept;

    // A summary, when one is due: something was held back since the last
    // summary, `summary_settle` ago or more, and the last summary is
    // `summary_every` old. Starts a new period.
    std::optional<Summary> summary_due(Clock::time_point now);
    // A summary now, due or not (at exit: `at_exit`). Starts a new period.
    Summary summary(Clock::time_point now, bool at_exit);

private:
    struct Track {
        bool used = false;              // a registration holds this slot
        std::uint64_t seen = 0;         // the read that last saw it
        table::Worker last;
        Duration stalled{};             // accumulated time without progress
        Duration unasked{};             // time since the thread was last asked whether it is frozen (rationed checks)
        std::uint64_t episode = 0;      // 0: no stall episode
        unsigned made = 0;              // reports of this episode made (0: no first report)
        Duration due{};                 // stalled time at which the next report is due
        bool denied = false;            // the rate limit held its first report back
        // When a first report of this worker was last made (across episodes;
        // the value before the last one, for a withdrawal).
        std::optional<Clock::time_point> shown, shown_before;
    };

    bool take_token(Clock::time_point now, double keep);
    Duration next_due(Duration stalled) const;
    void end_episode(std::vector<Event>& out, Track& t, EventKind kind);
    void held_back(Clock::time_point now);

    Config cfg_;
    std::vector<Track> tracks_;  // by slot
    std::vector<Track*> unmoved_;  // this read's running workers whose progress did not move
    std::uint32_t probe_cursor_ = 0;  // the slot from which the next read's rationed frozen checks begin
    std::uint64_t round_ = 0;
    bool started_ = false;
    Clock::time_point last_now_{};
    std::uint64_t next_episode_ = 1;
    double tokens_ = 0;
    Clock::time_point tokens_at_{};
    std::uint64_t pending_suppressed_ = 0;  // for the next Event::suppressed
    // Counts for the summaries: the period's and the totals.
    Clock::time_point period_start_{};
    std::optional<Clock::time_point> last_summary_;
    std::optional<Clock::time_point> unsaid_since_;  // first thing held back since the last summary
    std::uint64_t stalls_ = 0, unreported_ = 0, updates_suppressed_ = 0;
    std::uint64_t total_stalls_ = 0, total_unreported_ = 0, total_updates_suppressed_ = 0;
};

}  // namespace sw::detect
