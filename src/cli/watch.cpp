#include "cli/watch.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <cerrno>
#include <cstring>

#include "common/duration.hpp"
#include "common/text.hpp"
#include "common/unique_fd.hpp"
#include "proc/capture.hpp"
#include "proc/table_file.hpp"
#include "proc/thread_info.hpp"

namespace sw::cli {
namespace {

using Clock = std::chrono::steady_clock;

// The signals we handle arrive as data on a signalfd: the loop finishes what
// it is doing (never in the middle of a stop) and then acts on them.
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

// Becomes readable when the process exits (Linux 5.3+); invalid if unavailable.
UniqueFd open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#else
    (void)pid;
    return UniqueFd();
#endif
}

// The file behind fd `n` of `pid` (device, inode). Exec closes the table
// (MFD_CLOEXEC), and the copy we keep open then holds only the workers of
// an image that is gone, whose tids may be reused: this tells whether the
// process still holds the table we read.
std::optional<std::pair<dev_t, ino_t>> fd_file(pid_t pid, int n) {
    struct stat st {};
    if (n < 0 || ::stat(fmt::format("/proc/{}/fd/{}", pid, n).c_str(), &st) != 0) return std::nullopt;
    return std::pair{st.st_dev, st.st_ino};
}

bool process_gone(pid_t pid) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    // A zombie (exited, not yet reaped by its parent) is gone for us too.
    auto st = proc::read_thread_state(pid, pid);
    return st.state == 'Z' || st.state == 'X';
}

}  // namespace

WatchResult watch(pid_t pid, const WatchOptions& opt, report::Writer& writer, std::ostream& err,
                  const std::vector<int>& signals, const SignalHandler& on_signal) {
    WatchResult result;
    SignalQueue sigq(signals);
    UniqueFd pidfd = open_pidfd(pid);

    std::optional<proc::TableFile> table;
    std::optional<std::pair<dev_t, ino_t>> table_file;  // the target's fd of it
    std::optional<Sampler> sampler;
    report::Target target = describe_target(pid, {});
    detect::Config cfg;
    cfg.threshold = opt.threshold;
    cfg.interval = opt.interval;
    detect::Detector detector(cfg);
    auto frozen = [&](pid_t tid) { return proc::thread_frozen(pid, tid); };
    // At the end: what the rate limit held back and the stalls still open,
    // when the limit held anything back or (except after --once, which ends
    // on purpose in the middle of a stall) a stall is open.
    auto summarize_at_exit = [&](bool once) {
        bool held_back = detector.total_suppressed() > 0 || detector.waiting() > 0;
        auto s = detector.summary(Clock::now(), true);
        if (held_back || (!once && s.open > 0)) writer.summary(target, s);
    };
    auto fail = [&](Error e) {
        writer.error(target, e.message);
        result.end = WatchEnd::failed;
        result.error = std::move(e);
        return result;
    };

    // Opens the table (now, or when it appears under `run`) and says so.
    auto connect = [&]() -> std::optional<Error> {
        auto t = proc::TableFile::open(pid);
        if (!t) return std::move(t).error();
        auto snap = t->read();
        if (!snap && snap.error().code != Errc::table_not_ready) return std::move(snap).error();
        target = describe_target(pid, snap ? snap->header.app_name : std::string{});
        table_file = fd_file(pid, t->fd_number());
        table.emplace(std::move(*t));
        sampler.emplace(target, opt.sampler);
        sampler->prewarm();
        std::size_t workers = snap ? snap->workers.size() : 0;
        fmt::print(err, "stallwatch: watching pid {} ({}), {} worker(s); threshold {}, interval {}\n", pid,
                   printable(target.process_name), workers, format_duration(opt.threshold),
                   format_duration(opt.interval));
        writer.attached(target, report::WatchInfo{workers, opt.threshold, opt.interval});
        return std::nullopt;
    };
    if (!opt.wait_for_table)
        if (auto e = connect()) return fail(*e);
    bool given_up = false;  // run: the table went bad; the child runs on unwatched
    auto started = Clock::now();
    bool said_no_table = false;
    auto next_table_look = started;

    auto next = Clock::now();
    for (;;) {
        next += opt.interval;
        auto wait = next - Clock::now();
        if (wait.count() < 0) {  // we fell behind: do not try to catch up in a burst
            next = Clock::now();
            wait = Clock::duration::zero();
        }
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
        timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
        pollfd fds[2] = {{sigq.fd(), POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
        int n = ::ppoll(fds, pidfd.valid() ? 2 : 1, &ts, nullptr);
        if (n < 0 && errno != EINTR)
            return fail(make_error(Errc::io, fmt::format("poll: {}", std::strerror(errno)), errno));
        if (n > 0 && (fds[0].revents & POLLIN)) {
            bool stop = false, from_kernel = false;
            for (int sig; (sig = sigq.next(&from_kernel)) != 0;)
                if (on_signal(sig, from_kernel)) {
                    stop = true;
                    result.signal = sig;
                }
            if (stop) {
                result.end = WatchEnd::signal;
                summarize_at_exit(false);
                writer.detached(target, "signal", result.reports, result.withdrawn);
                return result;
            }
        }
        if ((n > 0 && pidfd.valid() && (fds[1].revents & POLLIN)) || (!pidfd.valid() && process_gone(pid))) {
            result.end = WatchEnd::target_exited;
            summarize_at_exit(false);
            writer.detached(target, "target_exited", result.reports, result.withdrawn);
            return result;
        }
        proc::release_lingering();

        if (given_up) continue;
        if (table && table_file && fd_file(pid, table->fd_number()) != table_file) {
            if (process_gone(pid)) continue;  // the next round says so
            std::string what = fmt::format("pid {} no longer holds the table being watched (it called exec, or "
                                           "closed it); watching for a new one",
                                           pid);
            fmt::print(err, "stallwatch: {}\n", what);
            writer.error(target, what);
            if (detector.total_suppressed() > 0) writer.summary(target, detector.summary(Clock::now(), true));
            table.reset();
            sampler.reset();
            detector = detect::Detector(cfg);
            started = next_table_look = Clock::now();
            said_no_table = false;
        }
        if (!table) {
            // Look often at first (a table appears early in a program's
            // life), then every half second.
            auto now = Clock::now();
            if (now < next_table_look) continue;
            if (now - started > std::chrono::seconds(2)) next_table_look = now + std::chrono::milliseconds(500);
            auto e = connect();
            if (e && e->code != Errc::no_table && e->code != Errc::table_not_ready) {
                fmt::print(err, "stallwatch: {}; not watching\n", e->message);
                writer.error(target, e->message);
                given_up = true;
                continue;
            }
            if (!table) {
                if (!said_no_table && now - started > std::chrono::seconds(2)) {
                    said_no_table = true;
                    fmt::print(err, "stallwatch: pid {} has no stallwatch table yet (is it linked with the shim and "
                                    "calling stallwatch_init()?); it runs on, watched as soon as one appears\n",
                               pid);
                }
                continue;
            }
        }
        auto snap = table->read();
        if (!snap) {
            if (snap.error().code == Errc::table_not_ready) continue;
            if (!opt.wait_for_table) return fail(std::move(snap).error());
            fmt::print(err, "stallwatch: {}; not watching any more\n", snap.error().message);
            writer.error(target, snap.error().message);
            given_up = true;
            continue;
        }
        auto now = Clock::now();
        auto events = detector.observe(*snap, now, frozen);
        for (std::size_t i = 0; i < events.size(); ++i) {
            const auto& e = events[i];
            if (e.kind == detect::EventKind::recovered || e.kind == detect::EventKind::ended) {
                writer.event(target, e);
                continue;
            }
            // Every report below that is not written is withdrawn, so that
            // the detector never follows it with an update or a recovery
            // of a stall whose first report nobody saw.
            auto still = [&] { return table->read_progress(e.worker.slot, e.worker.generation) == e.worker.progress; };
            auto r = sampler->sample(e, still);
            if (!r) {  // it moved while we looked: not a stall after all
                detector.withdraw(e.episode);
                ++result.withdrawn;
                continue;
            }
            if (r->thread_exited) {  // skipped, not fatal
                fmt::print(err, "stallwatch: worker \"{}\" (tid {}) exited before it could be sampled\n",
                           printable(e.worker.name), e.worker.tid);
                detector.withdraw(e.episode);
                continue;
            }
            writer.stall(*r);
            if (!writer.good())
                return fail(make_error(Errc::io, fmt::format("cannot write the report: {}", std::strerror(errno)), errno));
            ++result.reports;
            if (opt.once) {
                for (std::size_t k = i + 1; k < events.size(); ++k)
                    if (events[k].kind == detect::EventKind::stall || events[k].kind == detect::EventKind::stall_update)
                        detector.withdraw(events[k].episode);
                result.end = WatchEnd::once;
                summarize_at_exit(true);
                writer.detached(target, "once", result.reports, result.withdrawn);
                return result;
            }
        }
        if (auto s = detector.summary_due(now)) writer.summary(target, *s);
    }
}

}  // namespace sw::cli
