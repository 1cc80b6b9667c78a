// Answers at a glance: how long since each worker's last progress, and is it
// stalled now. Two uses, both pure (the caller reads the table, keeps the
// time and asks the platform whether a thread is frozen):
//
//  - glance(): two reads of a table some time apart (`stallwatch status`);
//  - LiveView: reads as they come, every few milliseconds, for a view that
//    is redrawn now and then (`stallwatch top`).
//
// The table holds no time of its own for a worker's progress (its slots have
// a counter, a state and an identity: docs/table-format.md, section 3.3), so
// every time here is what the reads can bound, never a guess: a lower bound,
// and an upper bound only where the reads give one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "detect/detector.hpp"
#include "table/snapshot.hpp"

namespace sw::detect {

// When two reads were made: from the end of the first to the start of the
// second (`between`), and from the start of the first to the end of the
// second (`across`). A counter's value is taken at some instant inside its
// read, so two equal values are at least `between` apart and two different
// ones at most `across`.
struct ReadSpan {
    Duration between{};
    Duration across{};
};

// Time since a worker's last progress, as of the second read: at least
// `at_least`, and at most `at_most` when that is known.
struct SinceProgress {
    Duration at_least{};
    std::optional<Duration> at_most;
};

// Whether thread `tid` is no running thread of the process now: it exited
// without unregistering its worker (or, in a nested PID namespace, names no
// thread this monitor can see). Asked only for tids above 0: a tid of 0 (one
// the namespace translation found no thread for) is gone without asking.
using GoneProbe = std::function<bool(pid_t tid)>;

struct WorkerGlance {
    table::Worker worker;           // as the second read saw it
    bool seen_at_first = false;     // the same registration was at the first read
    bool moved = false;             // its progress moved between the two reads
    std::optional<SinceProgress> since;  // nullopt when it registered between the reads
    bool frozen = false;            // running, unmoved, its thread stopped by a signal or a tracer
    bool gone = false;              // its thread is gone (GoneProbe): never stalled, never frozen
    // Running at both reads, progress unmoved, `between` at least the
    // threshold, and its thread there and not frozen. Never a parked worker.
    bool stalled = false;
};

// The workers of `second` (in its order), compared with `first`. `gone` is
// asked about every worker whose tid is above 0, `frozen` only about those
// that would otherwise be stalled.
std::vector<WorkerGlance> glance(const table::Snapshot& first, const table::Snapshot& second, ReadSpan span,
                                 Duration threshold, const FrozenProbe& frozen, const GoneProbe& gone = {});

// ---- the live view ----

struct LiveConfig {
    Duration threshold = std::chrono::milliseconds(100);
    Duration read_interval = std::chrono::milliseconds(10);  // how often observe() is called
    Duration rate_window = std::chrono::seconds(1);          // progress rates are taken over this
};

struct LiveWorker {
    table::Worker worker;  // as last read
    // When `progress_seen` (the value changed while this view watched): an
    // upper bound on the time since its last progress, the time since the
    // start of the last read that still saw the previous value (the progress
    // came after that read took it). It exceeds the true time by at most the
    // gap between that read and the next, about one read interval.
    // Otherwise the value has not changed since the view first saw the
    // worker, and this is only a lower bound: the time since that first read.
    Duration since_progress{};
    bool progress_seen = false;
    // Progress per second over the last rate window; nullopt until one
    // passed; NaN when the counter went backwards in it (not a shim's table).
    std::optional<double> rate;
    std::uint64_t stalls = 0;    // stall episodes this view saw begin (by the detector's rule)
    // In a stall episode now, its thread neither gone nor frozen (a debugger
    // that stops the thread after the stall began makes it `frozen`).
    bool stalled = false;
    bool frozen = false;         // at the last read: unmoved, thread stopped by a signal or a tracer
    bool gone = false;           // its thread is gone (GoneProbe): its time does not count
};

class LiveView {
public:
    explicit LiveView(LiveConfig cfg);

    // Feeds one read made at `now`. `frozen`, then `gone`, are asked about
    // running workers whose progress did not move (a gone or frozen
    // thread's time does not count toward a stall); `gone` is asked about
    // other unmoved workers at most once per rate window.
    void observe(const table::Snapshot& snap, Clock::time_point now, const FrozenProbe& frozen,
                 const GoneProbe& gone = {});

    // The workers of the last read, as of `now`, in slot order.
    std::vector<LiveWorker> workers(Clock::time_point now) const;

    // Stall episodes seen to begin since the view started, workers gone included.
    std::uint64_t total_stalls() const noexcept { return total_stalls_; }

private:
    using Key = std::tuple<std::uint32_t, std::uint32_t, pid_t>;  // slot, generation, tid, as the detector

    struct Track {
        table::Worker last;
        // progress_seen: the last read that saw the value before `last.progress`
        // (the progress came after it); else the first read of this worker.
        Clock::time_point value_since{};
        Clock::time_point last_read{};    // the last read that saw this worker
        bool progress_seen = false;
        Clock::time_point mark_at{};      // start of the current rate window
        std::uint64_t mark_progress = 0;
        std::optional<double> rate;
        std::uint64_t stalls = 0;
        bool stalled = false;
        bool frozen = false;
        bool gone = false;
        Clock::time_point gone_asked{};  // when `gone` was last asked outside the detector's probe
        bool gone_asked_ever = false;
    };

    LiveConfig cfg_;
    Detector detector_;
    std::map<Key, Track> tracks_;
    std::uint64_t total_stalls_ = 0;
};

}  // namespace sw::detect
