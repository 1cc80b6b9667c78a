// Sampling one worker: kernel state, capture (the short stop), unwinding and
// symbolization after the thread runs again, into a StallReport.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>

#include "cli/options.hpp"
#include "proc/capture.hpp"
#include "proc/target.hpp"
#include "proc/thread_info.hpp"
#include "report/report.hpp"
#include "symbolize/symbolizer.hpp"
#include "unwind/unwinder.hpp"

namespace sw::cli {

struct SamplerOptions {
    std::size_t max_frames = 64;
    // A thread blocked on a mutex: stop its holder too (once, for its
    // stack), and follow the chain of holders (docs/locks.md). Off: the
    // holder is named, never stopped.
    bool holder_stacks = true;
    static constexpr std::size_t max_holders = 16;  // a longer chain is not followed
    // The report is written as text without --full: frames in runtime
    // modules are named from their symbol table alone, without reading the
    // module's debug info (report::text_detail).
    bool text_folded = false;
    proc::CaptureOptions capture;
    symbolize::Options symbols;
};

// Where the time of the samples taken so far went, summed over them
// (STALLWATCH_DUMP_PHASES, docs/capture.md section 5.2).
struct SamplerPhases {
    using ns = std::chrono::nanoseconds;
    std::size_t captures = 0;
    ns before{};     // the thread's state and the process's mappings, from /proc
    ns capture{};    // seize to detach, for the capture call as a whole
    ns stop_wait{};  // of which: interrupt asked -> stop seen
    ns stopped{};    // of which: stop seen -> detach (the thread frozen)
    ns unwind{};
    ns symbolize{};
    ns locks{};      // lock analysis, holders' captures included
};

// A thread captured and unwound, not yet symbolized (Sampler::capture).
struct Captured {
    report::StallReport report;  // no frames yet; capture_error set when there is no stack
    bool captured = false;       // a stack was taken (raw, capture and maps are set)
    unwind::RawStack raw;
    proc::ThreadCapture capture;  // registers and lock bytes; the stack copy is released
    std::vector<proc::Mapping> maps;
};

class Sampler {
public:
    // `process` is the process that `target` describes; it outlives the sampler.
    Sampler(proc::Target& process, report::Target target, SamplerOptions opt);

    // Samples the worker of `event`. Returns nullopt when the sample was
    // dropped because `still_stalled` said the worker moved during the stop.
    // A thread that exits or cannot be stopped gives a report whose
    // capture_error says so.
    std::optional<report::StallReport> sample(const detect::Event& event,
                                              const proc::StillStalled& still_stalled);

    // sample() in three steps, for a caller that symbolizes one thread's
    // stack on a thread of its own while it captures the next:
    // capture() stops the thread, copies and unwinds its stack (nullopt:
    // dropped, as sample()); symbolize() may run on another thread than
    // the other calls (the symbolizer has a lock of its own); finish()
    // follows the locks the thread waits on, which may stop their holders.
    std::optional<Captured> capture(const detect::Event& event, const proc::StillStalled& still_stalled);
    std::vector<symbolize::Frame> symbolize(const Captured& c);
    report::StallReport finish(Captured c, std::vector<symbolize::Frame> frames);

    // Loads the modules and their debug info now, so that the first stall
    // report does not pay for it (decompressing a large debug file can take
    // tens of milliseconds). Best effort.
    void prewarm();

    const report::Target& target() const { return target_; }
    const SamplerPhases& phases() const { return phases_; }

    // The workers of the table as last read: a lock's holder is named by
    // its worker name when it has one. Also starts a new round: a holder
    // captured for one stalled thread serves the others of the round.
    // Called only in rounds that sample (it copies the workers).
    void begin_round(const std::vector<table::Worker>& workers);

    // Said once each, since the last call: modules whose frames show no
    // names because their file could not be opened or is not the one the
    // target runs (Symbolizer::take_notices).
    std::vector<std::string> take_notices();

private:
    void follow_locks(report::StallReport& r, const proc::ThreadCapture& capture,
                      const std::vector<proc::Mapping>& maps);
    bool cycle_holds(const report::Deadlock& d);
    report::LockHolder holder(pid_t tid, const std::vector<proc::Mapping>& maps);
    std::optional<pid_t> thread_of_target(pid_t id_in_target);
    // Under symbolizer_mutex_; refreshes the modules from `maps` first when given.
    std::vector<symbolize::Frame> symbolize_raw(const unwind::RawStack& raw, const std::vector<proc::Mapping>* maps);

    proc::Target& process_;
    report::Target target_;
    SamplerOptions opt_;
    unwind::Unwinder unwinder_;
    // Per thread, the system call and wait channel it was last seen in:
    // after our first stop the kernel reports a sleep as restart_syscall
    // (waiting in do_syscall_64), which says nothing.
    std::map<pid_t, proc::ThreadState> last_syscall_;
    std::size_t unwound_maps_ = 0;  // proc::executable_signature of the maps of the last unwind
    std::mutex symbolizer_mutex_;   // symbolizer_ and phases_.symbolize
    symbolize::Symbolizer symbolizer_;
    std::vector<table::Worker> workers_;  // the table's workers, as read for this round
    std::map<pid_t, report::LockHolder> holders_;  // captured this round
    SamplerPhases phases_;
};

// The sampler settings the output options ask for.
SamplerOptions sampler_options(const OutputOptions& out);

// pid, comm and executable path of a process, plus the table's app name.
report::Target describe_target(proc::Target& process, std::string app_name);

}  // namespace sw::cli
