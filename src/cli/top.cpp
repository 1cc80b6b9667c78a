// `stallwatch top PID` (and `attach PID --live`): a live view of the
// workers on the terminal, redrawn every --interval. The table is read every
// 10ms, as attach reads it by default, so that times and stall episodes are
// as precise as attach's; no thread of the target is ever stopped (nothing
// here captures: the view only reads the table and /proc).
//
// Three parts: LiveTable follows the target's table (the connection, its
// identity, the view over its reads); run_top owns the terminal and the
// loop (signals, keys, the target's exit, the redraw); the screen itself is
// cli/top_screen.cpp.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "cli/commands.hpp"
#include "cli/signals.hpp"
#include "cli/terminal.hpp"
#include "cli/top_screen.hpp"
#include "common/duration.hpp"
#include "detect/glance.hpp"
#include "proc/target.hpp"

namespace sw::cli {
namespace {

using Clock = std::chrono::steady_clock;

// As `attach` reads the table by default.
constexpr std::chrono::milliseconds read_interval{10};
// Without a table (not created yet, or left by an exec), it is looked for this often.
constexpr std::chrono::milliseconds table_look_interval{500};

// Test-only hook, only in a build configured with STALLWATCH_TEST_HOOKS
// (docs/capture.md, section 6): STALLWATCH_TEST_TOP_THROW_AFTER=N throws an
// exception out of the view's loop once N frames are drawn, for the test of
// the terminal's restore on an exception.
#ifdef STALLWATCH_TEST_HOOKS
const long test_throw_after = [] {
    const char* v = std::getenv("STALLWATCH_TEST_TOP_THROW_AFTER");
    return v ? std::max(0L, std::strtol(v, nullptr, 10)) : 0L;
}();
#else
constexpr long test_throw_after = 0;
#endif

class LiveTable {
public:
    LiveTable(proc::Target& process, const TopOptions& opt)
        : process_(process), cfg_{opt.threshold, read_interval, opt.interval}, view_(cfg_) {}

    // Opens the table. An error when there is none, or it is bad; a table
    // still being created is waited for.
    std::optional<Error> connect() {
        auto t = process_.open_table();
        if (!t) return std::move(t).error();
        auto snap = t->read();
        if (!snap && snap.error().code != Errc::table_not_ready) return std::move(snap).error();
        if (snap) app_name_ = snap->header.app_name;
        table_id_ = process_.fd_file(t->fd_number());
        table_.emplace(std::move(*t));
        view_ = detect::LiveView(cfg_);
        note_.clear();
        return std::nullopt;
    }

    // One read at `now`. An error when the table went bad.
    std::optional<Error> read(Clock::time_point now) {
        if (table_ && process_.fd_file(table_->fd_number()) != table_id_) {
            if (process_.exited()) return std::nullopt;  // the loop sees the exit
            // Our descriptor would keep the old table readable, its
            // counters frozen: every worker would look stalled.
            earlier_stalls_ += view_.total_stalls();
            table_.reset();
            view_ = detect::LiveView(cfg_);
            note_ = fmt::format("pid {} no longer holds its table (it called exec, or closed it); looking for a new "
                                "one",
                                process_.pid());
            next_look_ = now + table_look_interval;
        }
        if (!table_) {
            if (now < next_look_) return std::nullopt;
            next_look_ = now + table_look_interval;
            if (auto e = connect(); e && e->code != Errc::no_table) return e;
            if (!table_) return std::nullopt;
        }
        auto snap = table_->read();
        if (!snap) {
            if (snap.error().code == Errc::table_not_ready) return std::nullopt;
            return std::move(snap).error();
        }
        app_name_ = snap->header.app_name;
        // A thread that exited without unregistering is gone, never stalled.
        view_.observe(
            *snap, now, [&](pid_t tid) { return process_.thread_frozen(tid); },
            [&](pid_t tid) { return !process_.has_thread(tid); });
        return std::nullopt;
    }

    std::uint64_t stalls() const { return earlier_stalls_ + view_.total_stalls(); }

    TopScreen screen(const TopOptions& opt, Clock::time_point now, Clock::time_point started) const {
        TopScreen s;
        s.pid = process_.pid();
        s.process_name = process_name_;
        s.app_name = app_name_;
        s.threshold = opt.threshold;
        s.interval = opt.interval;
        s.read_interval = read_interval;
        s.watched = now - started;
        if (table_) s.workers = view_.workers(now);
        s.total_stalls = stalls();
        s.note = note_.empty() && !table_ ? fmt::format("pid {} has no table yet; looking for one", s.pid) : note_;
        return s;
    }

    void set_process_name(std::string name) { process_name_ = std::move(name); }

private:
    proc::Target& process_;
    detect::LiveConfig cfg_;
    detect::LiveView view_;
    std::optional<proc::TableFile> table_;
    std::optional<proc::FileId> table_id_;
    std::string process_name_, app_name_, note_;
    std::uint64_t earlier_stalls_ = 0;  // seen in tables the process left
    Clock::time_point next_look_{};
};

enum class TopEnd { quit, signal, terminal_gone, target_exited, failed };

struct LoopEnd {
    TopEnd end = TopEnd::failed;
    int signal = 0;
    std::optional<Error> error;
};

// Reads, keys, signals and redraws until something ends the view. The
// terminal is entered; the caller leaves it, whatever happens here.
LoopEnd run_loop(const TopOptions& opt, proc::Target& process, LiveTable& live, Terminal& terminal,
                 SignalQueue& sigq, const UniqueFd& exit_fd) {
    const auto started = Clock::now();
    auto next_round = started;
    // The first frame after a few reads, so that it has moved counters to show.
    auto next_draw = started + std::min<std::chrono::nanoseconds>(opt.interval, std::chrono::milliseconds(100));
    long frames = 0;
    LoopEnd out;
    for (;;) {
        timespec ts = wait_for_next_round(next_round, read_interval);
        pollfd fds[3] = {{sigq.fd(), POLLIN, 0}, {exit_fd.get(), POLLIN, 0}, {terminal.key_fd(), POLLIN, 0}};
        int n = ::ppoll(fds, 3, &ts, nullptr);  // an fd of -1 is not polled
        if (n < 0 && errno != EINTR) {
            out.error = make_error(Errc::io, fmt::format("poll: {}", std::strerror(errno)), errno);
            return out;
        }
        bool redraw = false;
        if (n > 0 && (fds[0].revents & POLLIN)) {
            for (int sig; (sig = sigq.next()) != 0;) {
                if (sig == SIGWINCH) {
                    redraw = true;
                } else if (sig == SIGTSTP) {  // Ctrl-Z: give the terminal back while stopped
                    terminal.leave();
                    ::kill(::getpid(), SIGSTOP);
                    terminal.enter();
                    redraw = true;
                } else {
                    out.signal = sig;
                }
            }
            if (out.signal != 0) {
                out.end = TopEnd::signal;
                return out;
            }
        }
        if ((n > 0 && exit_fd.valid() && (fds[1].revents & POLLIN)) || (!exit_fd.valid() && process.exited())) {
            out.end = TopEnd::target_exited;
            return out;
        }
        if (n > 0 && fds[2].fd >= 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
            auto keys = terminal.read_keys();
            if (!keys) {
                out.end = TopEnd::terminal_gone;
                return out;
            }
            if (keys->find_first_of("qQ") != std::string::npos) {
                out.end = TopEnd::quit;
                return out;
            }
        }
        auto now = Clock::now();
        if ((out.error = live.read(now))) return out;
        if (now >= next_draw || redraw) {
            if (now >= next_draw) next_draw = std::max(next_draw + opt.interval, now);
            auto size = terminal.size();
            if (!terminal.draw(render_top(live.screen(opt, now, started), size.rows, size.cols))) {
                out.error = make_error(Errc::io, fmt::format("cannot write to the terminal: {}", std::strerror(errno)),
                                       errno);
                return out;
            }
            if (test_throw_after > 0 && ++frames >= test_throw_after)
                throw std::runtime_error("STALLWATCH_TEST_TOP_THROW_AFTER: a test's exception out of top's loop");
        }
    }
}

}  // namespace

int run_top(const TopOptions& opt, std::ostream& /*out*/, std::ostream& err) {
    auto terminal = Terminal::open(STDIN_FILENO, STDOUT_FILENO);
    if (!terminal) {
        fmt::print(err, "stallwatch: top draws a live view on a terminal, and standard output is not one; for one "
                        "snapshot use 'stallwatch status {}' (with --format json for a program)\n",
                   opt.pid);
        return exit_code::usage;
    }
    auto process = proc::open_target(opt.pid);
    LiveTable live(*process, opt);
    // The table first, on the normal screen, where an error stays readable.
    if (auto e = live.connect()) {
        fmt::print(err, "stallwatch: {}\n", e->message);
        return exit_code_for(e->code);
    }
    live.set_process_name(process->name());

    // Ctrl-C and Ctrl-\ (SIGQUIT: not its core dump, which would leave the
    // terminal as drawn) end the view as q does; so do SIGTERM and SIGHUP.
    SignalQueue sigq({SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP});
    UniqueFd exit_fd = process->exit_notifier();
    LoopEnd result;
    terminal->enter();
    try {
        result = run_loop(opt, *process, live, *terminal, sigq, exit_fd);
    } catch (...) {
        // Nothing up the stack catches (the exception ends the program, and
        // without unwinding no destructor would run): the terminal first.
        terminal->leave();
        throw;
    }
    terminal->leave();
    const TopEnd end = result.end;
    const int end_signal = result.signal;
    const auto& error = result.error;

    // The closing line, as attach's, on the restored screen.
    const auto stalls = live.stalls();
    switch (end) {
    case TopEnd::quit:
        fmt::print(err, "stallwatch: q pressed; {} stall(s) seen, detached\n", stalls);
        return exit_code::ok;
    case TopEnd::signal:
        fmt::print(err, "stallwatch: {} received; {} stall(s) seen, detached\n", strsignal(end_signal), stalls);
        return exit_code::ok;
    case TopEnd::terminal_gone:
        fmt::print(err, "stallwatch: the terminal closed; {} stall(s) seen, detached\n", stalls);
        return exit_code::ok;
    case TopEnd::target_exited:
        fmt::print(err, "stallwatch: pid {} exited; {} stall(s) seen\n", opt.pid, stalls);
        return exit_code::target_exited;
    case TopEnd::failed:
        break;
    }
    fmt::print(err, "stallwatch: {}\n", error ? error->message : "failed");
    return error ? exit_code_for(error->code) : exit_code::failure;
}

}  // namespace sw::cli
