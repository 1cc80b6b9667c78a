// Watching one target: a Watcher holds the table connection, the detector
// over it, the sampler of its workers and the target's lifetime; watch()
// is the event loop that `attach` and `run` share around one Watcher
// (signals, the interval, the target's exit). A host agent runs many
// Watchers from one loop of its own.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <ostream>

#include "cli/options.hpp"
#include "cli/sampler.hpp"
#include "common/error.hpp"
#include "detect/detector.hpp"
#include "proc/target.hpp"
#include "report/writer.hpp"

namespace sw::cli {

// `run --preload`: why a program shows no table. look() is called at each
// look for the table while there is none (the program may end at any
// moment, and an ended process can no longer be read); reason() when the
// line is due: two seconds without a table, or the program's end.
class NoTableExplainer {
public:
    virtual ~NoTableExplainer() = default;
    virtual void look(proc::Target& target) = 0;
    virtual std::string reason() = 0;
};

struct WatchOptions {
    WatchTiming timing;  // threshold and interval
    bool once = false;
    SamplerOptions sampler;
    // `run`: the table may appear later; keep looking for it. And a table
    // that turns bad is given up with one error, while the child runs on.
    bool wait_for_table = false;
    // How often to check that the process still holds the table (an exec
    // closes it): every round when zero. Checked anyway before sampling.
    // A stat of /proc/PID/fd/N, which costs as much as reading a table of a
    // thousand workers: not every round (the agent, reading many tables,
    // spaces it out further).
    std::chrono::nanoseconds table_check_every{std::chrono::milliseconds(100)};
    // With wait_for_table: says why no table appeared, instead of the
    // shim's usual advice. None: that advice.
    std::shared_ptr<NoTableExplainer> explain_no_table;
    // Text output prints no update of a stall that joined an incident (its
    // INCIDENT line says it): such updates are then not sampled at all.
    bool skip_joined_updates = false;
};

enum class WatchEnd { signal, target_exited, once, failed };

struct WatchResult {
    WatchEnd end = WatchEnd::failed;
    int signal = 0;             // WatchEnd::signal: which one
    std::uint64_t reports = 0;  // stall reports written
    std::uint64_t withdrawn = 0;  // samples dropped: the worker moved on while sampled
    std::uint64_t passes = 0;     // reads of the table looked at by the detector
    std::chrono::nanoseconds pass_total{}, pass_max{};  // their time, sampling excluded
    std::optional<Error> error; // WatchEnd::failed: why
};

class Watcher {
public:
    using Clock = std::chrono::steady_clock;
    using Now = std::function<Clock::time_point()>;

    // `process`, `writer` and `err` outlive the watcher. `now` is the clock
    // (tests pass their own).
    Watcher(proc::Target& process, const WatchOptions& opt, report::Writer& writer, std::ostream& err,
            Now now = Clock::now);

    // Connects to the table now, unless the options wait for it. A result
    // when the watch ended there (no table, a bad table).
    std::optional<WatchResult> start();

    // One round: checks that the target still holds the table (or looks for
    // one), reads it, feeds the detector, samples stalled workers and writes
    // the reports. A result when the watch ended (--once, a write error, a
    // table gone bad under attach).
    std::optional<WatchResult> round();

    // Ends the watch from outside: a signal, or the target's exit. Writes
    // the closing summary and the detached event.
    WatchResult end(WatchEnd why, int signal = 0);
    report::Detached detached(std::string_view reason) const;
    // Ends it on an error of the loop itself.
    WatchResult fail(Error e);

    proc::Target& target() { return process_; }

private:
    std::optional<Error> connect();
    bool left_table();
    void summarize_at_exit(bool once);
    void say_notices();
    void follow_groups(const table::Snapshot& snap);

    proc::Target& process_;
    WatchOptions opt_;
    Now now_;
    report::Writer& writer_;
    std::ostream& err_;
    WatchResult result_;

    std::optional<proc::TableFile> table_;
    std::optional<proc::FileId> table_file_;  // the target's fd of it
    std::optional<Sampler> sampler_;
    report::Target target_;
    detect::Config cfg_;
    detect::Detector detector_;
    report::Incidents incidents_;

    bool given_up_ = false;  // run: the table went bad; the child runs on unwatched
    Clock::time_point started_;
    bool said_no_table_ = false;
    bool ever_connected_ = false;
    Clock::time_point next_table_look_;
    Clock::time_point next_table_check_{};

    // Each group's record as last read (table format version 2): its
    // episode count and the running episode's start, 0 when none.
    struct GroupSeen {
        std::uint64_t episodes = 0;
        std::uint64_t begin_unix_ns = 0;
        std::uint32_t peak = 0;
    };
    std::map<std::uint32_t, GroupSeen> groups_;
    bool groups_read_ = false;  // the first read only learns what was there
    std::set<std::string> deadlocks_said_;  // Deadlock::key() of each one reported
    // Stalls that join an incident give their rate-limit token back, within
    // a budget of their own: a burst, refilled at a rate (watch.cpp).
    double joined_budget_ = 0;
    Clock::time_point joined_budget_at_{};
    bool take_joined_budget(Clock::time_point now);
};

// ", N withdrawn (...)" when samples were dropped, else nothing: for the
// closing lines of attach and run.
std::string withdrawn_note(const WatchResult& r);
// "pid N exited; K stall report(s) made[, W withdrawn (...)]": the closing
// line of attach and run when the target ended.
std::string exited_line(pid_t pid, const WatchResult& r);

// What to do with SIGINT, SIGTERM, SIGHUP (and, for run, SIGQUIT, SIGUSR1,
// SIGUSR2): return true to end the watch, false to go on. `from_terminal`
// is true when the kernel sent it (Ctrl-C at the terminal, which the whole
// foreground process group receives), false when a process sent it.
using SignalHandler = std::function<bool(int sig, bool from_terminal)>;

// Watches `pid` until a signal, the target's exit, or the first report with --once.
WatchResult watch(pid_t pid, const WatchOptions& opt, report::Writer& writer, std::ostream& err,
                  const std::vector<int>& signals, const SignalHandler& on_signal);

// The same for a target already opened (or a fake one, in tests).
WatchResult watch(proc::Target& process, const WatchOptions& opt, report::Writer& writer, std::ostream& err,
                  const std::vector<int>& signals, const SignalHandler& on_signal);

}  // namespace sw::cli
