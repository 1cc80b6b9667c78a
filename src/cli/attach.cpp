// `stallwatch attach PID`: watch the table, sample stalled workers, report.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "cli/commands.hpp"
#include "cli/sampler.hpp"
#include "common/duration.hpp"
#include "common/text.hpp"
#include "common/unique_fd.hpp"
#include "proc/table_file.hpp"
#include "proc/thread_info.hpp"
#include "report/text.hpp"

namespace sw::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Ctrl-C, SIGTERM and SIGHUP arrive as readable data on a signalfd: the loop
// finishes what it is doing (never in the middle of a stop) and ends.
class QuitSignals {
public:
    QuitSignals() {
        sigemptyset(&set_);
        for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set_, s);
        ::sigprocmask(SIG_BLOCK, &set_, &old_);
        fd_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
    }
    ~QuitSignals() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }
    int fd() const { return fd_.get(); }
    int read_signal() {
        signalfd_siginfo info{};
        if (::read(fd_.get(), &info, sizeof info) != sizeof info) return 0;
        return static_cast<int>(info.ssi_signo);
    }

private:
    sigset_t set_{}, old_{};
    UniqueFd fd_;
};

// Becomes readable when the process exits (Linux 5.3+); -1 if unavailable.
UniqueFd open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#else
    (void)pid;
    return UniqueFd();
#endif
}

bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace

int run_attach(const AttachOptions& opt, std::ostream& out, std::ostream& err) {
    auto fail = [&](const Error& e) {
        fmt::print(err, "stallwatch: {}\n", e.message);
        return exit_code_for(e.code);
    };
    auto table = proc::TableFile::open(opt.pid);
    if (!table) return fail(table.error());
    auto first = table->read();
    if (!first && first.error().code != Errc::table_not_ready) return fail(first.error());

    std::ofstream file;
    std::ostream* sink = &out;
    if (!opt.output.empty()) {
        file.open(opt.output, std::ios::app);
        if (!file) {
            fmt::print(err, "stallwatch: cannot open {} for appending: {}\n", opt.output, std::strerror(errno));
            return exit_code::failure;
        }
        sink = &file;
    }

    QuitSignals quit;
    UniqueFd pidfd = open_pidfd(opt.pid);
    detect::Config cfg;
    cfg.threshold = opt.threshold;
    cfg.interval = opt.interval;
    detect::Detector detector(cfg);
    SamplerOptions sopt;
    sopt.max_frames = opt.max_frames;
    sopt.symbols.debuginfod = opt.debuginfod;
    Sampler sampler(describe_target(opt.pid, first ? first->header.app_name : std::string{}), sopt);

    fmt::print(err, "stallwatch: watching pid {} ({}), {} worker(s); threshold {}, interval {}\n",
               opt.pid, printable(sampler.target().process_name), first ? first->workers.size() : 0,
               format_duration(opt.threshold), format_duration(opt.interval));

    std::uint64_t reports = 0;
    auto frozen = [&](pid_t tid) { return proc::thread_frozen(opt.pid, tid); };
    auto next = Clock::now();
    for (;;) {
        next += opt.interval;
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
        if (wait.count() < 0) {  // we fell behind: do not try to catch up in a burst
            next = Clock::now();
            wait = std::chrono::milliseconds(0);
        }
        pollfd fds[2] = {{quit.fd(), POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
        int n = ::poll(fds, pidfd.valid() ? 2 : 1, static_cast<int>(wait.count()));
        if (n < 0 && errno != EINTR) {
            fmt::print(err, "stallwatch: poll: {}\n", std::strerror(errno));
            return exit_code::failure;
        }
        if (n > 0 && (fds[0].revents & POLLIN)) {
            int sig = quit.read_signal();
            fmt::print(err, "stallwatch: {} received; {} stall report(s) made, detached\n",
                       sig ? strsignal(sig) : "signal", reports);
            return exit_code::ok;
        }
        if ((n > 0 && (fds[1].revents & POLLIN)) || (!pidfd.valid() && process_gone(opt.pid))) {
            fmt::print(err, "stallwatch: pid {} exited; {} stall report(s) made\n", opt.pid, reports);
            return exit_code::target_exited;
        }
        proc::release_lingering();

        auto snap = table->read();
        if (!snap) {
            if (snap.error().code == Errc::table_not_ready) continue;
            return fail(snap.error());
        }
        for (const auto& e : detector.observe(*snap, Clock::now(), frozen)) {
            if (e.kind == detect::EventKind::recovered || e.kind == detect::EventKind::ended) {
                report::write_text_event(*sink, sampler.target(), e);
                continue;
            }
            auto still = [&] {
                return table->read_progress(e.worker.slot, e.worker.generation) == e.worker.progress;
            };
            auto r = sampler.sample(e, still);
            if (!r) {  // it moved while we looked: not a stall after all
                detector.withdraw(e.episode);
                continue;
            }
            if (r->thread_exited) {  // skipped, not fatal
                fmt::print(err, "stallwatch: worker \"{}\" (tid {}) exited before it could be sampled\n",
                           printable(e.worker.name), e.worker.tid);
                detector.withdraw(e.episode);
                continue;
            }
            report::write_text(*sink, *r);
            if (!*sink) {
                fmt::print(err, "stallwatch: cannot write the report: {}\n", std::strerror(errno));
                return exit_code::failure;
            }
            ++reports;
            if (opt.once) return exit_code::ok;
        }
    }
}

}  // namespace sw::cli
