// The watch loop shared by `attach` and `run`: read the table every
// interval, feed the detector, sample stalled workers, write reports; end on
// a signal, the target's exit, or the first report with --once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <ostream>

#include "cli/sampler.hpp"
#include "common/error.hpp"
#include "report/writer.hpp"

namespace sw::cli {

struct WatchOptions {
    std::chrono::nanoseconds threshold = std::chrono::milliseconds(100);
    std::chrono::nanoseconds interval = std::chrono::milliseconds(10);
    bool once = false;
    SamplerOptions sampler;
    // `run`: the table may appear later; keep looking for it. And a table
    // that turns bad is given up with one error, while the child runs on.
    bool wait_for_table = false;
};

enum class WatchEnd { signal, target_exited, once, failed };

struct WatchResult {
    WatchEnd end = WatchEnd::failed;
    int signal = 0;             // WatchEnd::signal: which one
    std::uint64_t reports = 0;  // stall reports written
    std::uint64_t withdrawn = 0;  // samples dropped: the worker moved on while sampled
    std::optional<Error> error; // WatchEnd::failed: why
};

// What to do with SIGINT, SIGTERM, SIGHUP (and, for run, SIGQUIT, SIGUSR1,
// SIGUSR2): return true to end the watch, false to go on. `from_terminal`
// is true when the kernel sent it (Ctrl-C at the terminal, which the whole
// foreground process group receives), false when a process sent it.
using SignalHandler = std::function<bool(int sig, bool from_terminal)>;

WatchResult watch(pid_t pid, const WatchOptions& opt, report::Writer& writer, std::ostream& err,
                  const std::vector<int>& signals, const SignalHandler& on_signal);

}  // namespace sw::cli
