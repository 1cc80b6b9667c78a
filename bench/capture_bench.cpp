// The cost of sampling a stalled worker, end to end, measured side by side in
// one run on real fixture processes:
//   - the stop window of capture_thread (warm at depth ~10 and depth 200, and
//     cold: the first capture of a fresh process, from fresh subprocesses);
//   - whether any OTHER thread of the target is ever seen stopped or traced;
//   - the wall time of `stallwatch attach --once` against `eu-stack -p`,
//     interleaved;
//   - warm symbolization of a 30-frame stack;
//   - detection latency of `stallwatch attach` (--threshold 100ms
//     --interval 10ms) from the victim's last tick to its report.
// Targets are printed with PASS/MISS (a figure that was not measured, or a
// failed self-test of the watcher, is a MISS) and a closing "verdict:" line,
// then the figures as `name: value` lines ("not measured" when empty).
//
//   sw_bench_capture [--fixture PATH] [--stallwatch PATH] [--quick] [--no-load]
//   sw_bench_capture --cold-child PID       (internal: one cold capture)
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "proc/capture.hpp"
#include "proc/maps.hpp"
#include "proc/table_file.hpp"
#include "symbolize/symbolizer.hpp"
#include "unwind/unwinder.hpp"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::nanoseconds;

#ifndef SW_BENCH_FIXTURE
#define SW_BENCH_FIXTURE "sw_fixture_stall"
#endif
#ifndef SW_BENCH_STALLWATCH
#define SW_BENCH_STALLWATCH "stallwatch"
#endif

double us(nanoseconds d) { return static_cast<double>(d.count()) / 1e3; }
double ms(nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

std::string cleanup_dir;  // removed by die() too

[[noreturn]] void die(const std::string& what) {
    fmt::print(stderr, "sw_bench_capture: {}\n", what);
    if (!cleanup_dir.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(cleanup_dir, ec);
    }
    std::exit(1);
}

void sleep_for_us(long micros) {
    timespec ts{micros / 1'000'000, micros % 1'000'000 * 1000};
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// ---- statistics ------------------------------------------------------------

struct Stats {
    std::size_t n = 0;
    double min = 0, median = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

// Nearest-rank percentiles.
Stats stats_of(std::vector<double> v) {
    Stats s;
    s.n = v.size();
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    auto rank = [&](double p) {
        auto k = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
        return v[std::clamp<std::size_t>(k, 1, v.size()) - 1];
    };
    s.min = v.front();
    s.max = v.back();
    s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    s.p90 = rank(0.90);
    s.p99 = rank(0.99);
    double sum = 0;
    for (double x : v) sum += x;
    s.mean = sum / static_cast<double>(v.size());
    return s;
}

std::string describe(const Stats& s, const char* unit) {
    return fmt::format("n={} min={:.1f} median={:.1f} p90={:.1f} p99={:.1f} max={:.1f} mean={:.1f} {}",
                       s.n, s.min, s.median, s.p90, s.p99, s.max, s.mean, unit);
}

// ---- child processes ---------------------------------------------------------

struct Pipe {
    int rd = -1, wr = -1;
    Pipe() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) die(fmt::format("pipe2: {}", std::strerror(errno)));
        rd = fds[0];
        wr = fds[1];
    }
};

// Spawns argv with the given fds as its stdin/stdout/stderr (-1: /dev/null).
pid_t spawn(const std::vector<std::string>& args, int in_fd, int out_fd, int err_fd) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const int targets[3] = {0, 1, 2};
    const int sources[3] = {in_fd, out_fd, err_fd};
    for (int i = 0; i < 3; ++i) {
        if (sources[i] >= 0)
            posix_spawn_file_actions_adddup2(&fa, sources[i], targets[i]);
        else
            posix_spawn_file_actions_addopen(&fa, targets[i], "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) die(fmt::format("cannot start {}: {}", args[0], std::strerror(rc)));
    return pid;
}

// Reads fd to EOF.
std::string read_all(int fd) {
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return out;
    }
}

int wait_exit(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct RunResult {
    int exit_code = 0;
    std::string out;
    nanoseconds wall{};
};

// Runs a command to completion, stdout and stderr captured together.
RunResult run_command(const std::vector<std::string>& args) {
    Pipe p;
    auto t0 = Clock::now();
    pid_t pid = spawn(args, -1, p.wr, p.wr);
    ::close(p.wr);
    RunResult r;
    r.out = read_all(p.rd);
    r.exit_code = wait_exit(pid);
    r.wall = Clock::now() - t0;
    ::close(p.rd);
    return r;
}

// A running sw_fixture_stall; it ends when we close its stdin.
class Fixture {
public:
    Fixture(const std::string& path, int depth, int workers, long delay_ms, const char* mode = "sleep") {
        Pipe in, out;
        std::vector<std::string> args{path, "--mode", mode, "--stall-ms", "600000", "--depth",
                                      std::to_string(depth), "--workers", std::to_string(workers)};
        if (delay_ms > 0) {
            args.push_back("--delay-ms");
            args.push_back(std::to_string(delay_ms));
        }
        pid_ = spawn(args, in.rd, out.wr, -1);
        ::close(in.rd);
        ::close(out.wr);
        stdin_ = in.wr;
        stdout_ = out.rd;
        // "ready pid=P" once every worker is registered.
        std::string line;
        char c;
        while (line.find('\n') == std::string::npos) {
            ssize_t n = ::read(stdout_, &c, 1);
            if (n <= 0) die("the fixture ended before it was ready");
            line.push_back(c);
        }
        if (line.rfind("ready pid=", 0) != 0) die("unexpected fixture output: " + line);
        ready_at_ = Clock::now();
    }
    ~Fixture() {
        ::close(stdin_);
        ::close(stdout_);
        wait_exit(pid_);
    }
    Fixture(const Fixture&) = delete;
    Fixture& operator=(const Fixture&) = delete;

    pid_t pid() const { return pid_; }
    Clock::time_point ready_at() const { return ready_at_; }

private:
    pid_t pid_ = -1;
    int stdin_ = -1, stdout_ = -1;
    Clock::time_point ready_at_{};
};

// ---- the target seen through the project's own pieces --------------------------

sw::table::Worker find_victim(sw::proc::TableFile& table) {
    for (int attempt = 0; attempt < 200; ++attempt) {
        auto snap = table.read();
        if (snap) {
            for (const auto& w : snap->workers)
                if (w.name == "victim") return w;
        } else if (snap.error().code != sw::Errc::table_not_ready) {
            die("reading the table: " + snap.error().message);
        }
        sleep_for_us(5000);
    }
    die("no worker named \"victim\" in the table");
}

sw::proc::TableFile open_table(pid_t pid) {
    auto t = sw::proc::TableFile::open(pid);
    if (!t) die(fmt::format("opening the table of pid {}: {}", pid, t.error().message));
    return std::move(t).value();
}

// Waits until the victim's progress has not moved for `quiet`, i.e. it is
// blocked in its handler (the fixture starts it right away without --delay-ms).
sw::table::Worker wait_blocked(sw::proc::TableFile& table, std::chrono::milliseconds quiet) {
    auto w = find_victim(table);
    auto since = Clock::now();
    for (;;) {
        sleep_for_us(2000);
        auto p = table.read_progress(w.slot, w.generation);
        if (!p) die("the victim left the table");
        if (*p != w.progress) {
            w.progress = *p;
            since = Clock::now();
        } else if (Clock::now() - since >= quiet) {
            return w;
        }
    }
}

// Everything needed to sample one stalled thread, as the Sampler does it.
class Probe {
public:
    explicit Probe(pid_t pid)
        : pid_(pid), table_(open_table(pid)), target_(sw::proc::open_target(pid)), unwinder_(*target_),
          symbolizer_(*target_, sw::symbolize::Options{}) {
        victim_ = wait_blocked(table_, std::chrono::milliseconds(20));
    }

    pid_t pid() const { return pid_; }
    pid_t tid() const { return victim_.tid; }

    // One capture; `extra_hold` runs inside the window (used only by the
    // probe self-test). Returns nullopt on a dropped or failed capture.
    std::optional<sw::proc::ThreadCapture> capture(const std::function<void()>& extra_hold = {}) {
        auto maps = sw::proc::read_maps(pid_);
        if (!maps) die("read_maps: " + maps.error().message);
        maps_ = std::move(*maps);
        // As the watcher checks it: the slot read with the stack.
        sw::proc::StillStalled still(
            [&](std::span<const std::byte> in_window) {
                if (extra_hold) extra_hold();
                auto slot = in_window.empty() ? table_.read_slot(victim_.slot, victim_.generation)
                                              : sw::proc::TableFile::slot_from_bytes(in_window, victim_.generation);
                return slot && slot->progress == victim_.progress;
            },
            table_.slot_location(victim_.slot));
        auto r = sw::proc::capture_thread(pid_, victim_.tid, maps_, sw::proc::CaptureOptions{}, still);
        if (!r) {
            ++failed_;
            last_error_ = r.error().message;
            return std::nullopt;
        }
        if (r->dropped) {
            ++dropped_;
            return std::nullopt;
        }
        return std::move(r->capture);
    }

    sw::unwind::RawStack unwind(const sw::proc::ThreadCapture& cap, std::size_t max_frames) {
        if (symbolizer_.refresh(maps_)) unwinder_.flush();
        return unwinder_.unwind(cap, max_frames);
    }
    std::vector<sw::symbolize::Frame> symbolize(const sw::unwind::RawStack& raw) {
        return symbolizer_.symbolize(raw);
    }

    int failed() const { return failed_; }
    int dropped() const { return dropped_; }
    const std::string& last_error() const { return last_error_; }

private:
    pid_t pid_;
    sw::proc::TableFile table_;
    sw::table::Worker victim_;
    std::vector<sw::proc::Mapping> maps_;
    std::unique_ptr<sw::proc::Target> target_;
    sw::unwind::Unwinder unwinder_;
    sw::symbolize::Symbolizer symbolizer_;
    int failed_ = 0, dropped_ = 0;
    std::string last_error_;
};

bool has_function(const std::vector<sw::symbolize::Frame>& frames, std::string_view name) {
    for (const auto& f : frames)
        if (f.function.find(name) != std::string::npos) return true;
    return false;
}

// ---- watching the other threads ------------------------------------------------

// Samples /proc/PID/task/*/stat of every thread (state t/T = stopped) and, every
// few scans, /proc/PID/task/*/status (TracerPid) in a thread of its own.
class StopWatcher {
public:
    StopWatcher(pid_t pid, pid_t victim) {
        auto dir = fmt::format("/proc/{}/task", pid);
        std::vector<pid_t> tids;
        // Tasks known from the fixture: read the directory once.
        if (auto* d = ::opendir(dir.c_str())) {
            while (auto* e = ::readdir(d))
                if (e->d_name[0] >= '0' && e->d_name[0] <= '9') tids.push_back(std::atoi(e->d_name));
            ::closedir(d);
        }
        for (pid_t t : tids) {
            Thread th;
            th.tid = t;
            th.victim = t == victim;
            th.stat_fd = ::open(fmt::format("{}/{}/stat", dir, t).c_str(), O_RDONLY | O_CLOEXEC);
            th.status_fd = ::open(fmt::format("{}/{}/status", dir, t).c_str(), O_RDONLY | O_CLOEXEC);
            if (th.stat_fd < 0 || th.status_fd < 0) die("cannot open the task files of " + std::to_string(t));
            threads_.push_back(th);
        }
    }
    ~StopWatcher() {
        stop();
        for (auto& t : threads_) {
            ::close(t.stat_fd);
            ::close(t.status_fd);
        }
    }
    StopWatcher(const StopWatcher&) = delete;
    StopWatcher& operator=(const StopWatcher&) = delete;

    void start() {
        running_ = true;
        worker_ = std::thread([this] { loop(); });
    }
    void stop() {
        if (!worker_.joinable()) return;
        running_ = false;
        worker_.join();
    }

    struct Summary {
        std::size_t threads = 0;
        std::uint64_t scans = 0;
        double scan_interval_us = 0;
        std::uint64_t tracer_checks = 0;
        // Other threads.
        std::uint64_t others_stopped_samples = 0;
        double others_longest_lower_us = 0;  // first to last stopped sample of one run
        double others_longest_upper_us = 0;  // between the running samples around it
        std::uint64_t others_traced_samples = 0;
        // The victim (shows that the probe does see stops).
        std::uint64_t victim_stopped_samples = 0;
        std::uint64_t victim_stop_runs = 0;
        double victim_longest_lower_us = 0;
        double victim_longest_upper_us = 0;
        std::uint64_t victim_traced_samples = 0;
    };
    Summary summary() const {
        Summary s;
        s.threads = threads_.size();
        s.scans = scans_;
        s.scan_interval_us = scans_ > 1 ? us(last_scan_ - first_scan_) / static_cast<double>(scans_ - 1) : 0;
        s.tracer_checks = tracer_checks_;
        for (const auto& t : threads_) {
            if (t.victim) {
                s.victim_stopped_samples += t.stopped_samples;
                s.victim_stop_runs += t.runs;
                s.victim_longest_lower_us = std::max(s.victim_longest_lower_us, t.longest_lower_us);
                s.victim_longest_upper_us = std::max(s.victim_longest_upper_us, t.longest_upper_us);
                s.victim_traced_samples += t.traced_samples;
            } else {
                s.others_stopped_samples += t.stopped_samples;
                s.others_longest_lower_us = std::max(s.others_longest_lower_us, t.longest_lower_us);
                s.others_longest_upper_us = std::max(s.others_longest_upper_us, t.longest_upper_us);
                s.others_traced_samples += t.traced_samples;
            }
        }
        return s;
    }

private:
    struct Thread {
        pid_t tid = 0;
        bool victim = false;
        int stat_fd = -1, status_fd = -1;
        bool in_run = false;
        Clock::time_point run_first{}, run_last{}, run_after_running{}, last_running{};
        std::uint64_t stopped_samples = 0, runs = 0, traced_samples = 0;
        double longest_lower_us = 0, longest_upper_us = 0;
    };

    static char state_of(int fd) {
        char buf[512];
        ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        if (n <= 0) return '?';
        buf[n] = 0;
        const char* paren = std::strrchr(buf, ')');
        return paren && paren[1] == ' ' ? paren[2] : '?';
    }
    static long tracer_of(int fd) {
        char buf[2048];
        ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        if (n <= 0) return -1;
        buf[n] = 0;
        const char* p = std::strstr(buf, "TracerPid:");
        return p ? std::strtol(p + 10, nullptr, 10) : -1;
    }

    void loop() {
        ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
        first_scan_ = Clock::now();
        while (running_.load(std::memory_order_relaxed)) {
            bool check_tracer = scans_ % 4 == 0;
            for (auto& t : threads_) {
                char st = state_of(t.stat_fd);
                auto now = Clock::now();
                if (st == 't' || st == 'T') {
                    ++t.stopped_samples;
                    if (!t.in_run) {
                        t.in_run = true;
                        t.run_first = now;
                        t.run_after_running = t.last_running;
                    }
                    t.run_last = now;
                } else {
                    if (t.in_run) close_run(t, now);
                    t.last_running = now;
                }
                if (check_tracer) {
                    long tp = tracer_of(t.status_fd);
                    if (tp > 0) ++t.traced_samples;
                }
            }
            if (check_tracer) ++tracer_checks_;
            ++scans_;
            last_scan_ = Clock::now();
        }
        for (auto& t : threads_)
            if (t.in_run) close_run(t, Clock::now());
    }
    static void close_run(Thread& t, Clock::time_point now) {
        t.in_run = false;
        ++t.runs;
        t.longest_lower_us = std::max(t.longest_lower_us, us(t.run_last - t.run_first));
        auto before = t.run_after_running.time_since_epoch().count() ? t.run_after_running : t.run_first;
        t.longest_upper_us = std::max(t.longest_upper_us, us(now - before));
    }

    std::vector<Thread> threads_;
    std::atomic<bool> running_{false};
    std::thread worker_;
    std::uint64_t scans_ = 0, tracer_checks_ = 0;
    Clock::time_point first_scan_{}, last_scan_{};
};

// ---- the measurements --------------------------------------------------------------

// The kernel's floor for one stop, the least any tool can do: PTRACE_SEIZE,
// PTRACE_INTERRUPT, a blocking wait for the stop, PTRACE_GETREGS, one
// process_vm_readv of `stack_bytes` below the stack pointer's red zone,
// PTRACE_DETACH; nothing else. `frozen_us` is measured as stallwatch's window
// is (the stop seen to the detach), `seize_to_detach_us` from the seize.
struct FloorSample {
    double frozen_us = 0, seize_to_detach_us = 0, interrupt_to_detach_us = 0;
};

struct FloorExtras {
    bool poll = false;                       // 50 us of WNOHANG polling first
    bool realtime = false;                   // SCHED_FIFO 1 around the capture
    bool rt_late = false;                    // ... raised after the interrupt
    std::function<void()> in_window;         // run before the detach
};

std::optional<FloorSample> floor_capture(pid_t pid, pid_t tid, std::size_t stack_bytes, std::vector<std::byte>& buf,
                                         const FloorExtras& x = {}) {
    if (buf.size() < stack_bytes) buf.assign(stack_bytes, std::byte{0});
    bool rt = false;
    if (x.realtime && !x.rt_late) {
        sched_param p{};
        p.sched_priority = 1;
        rt = ::sched_setscheduler(0, SCHED_FIFO, &p) == 0;
    }
    const auto seized = Clock::now();
    if (::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) return std::nullopt;
    const auto interrupted = Clock::now();
    if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
        die(fmt::format("floor: PTRACE_INTERRUPT of {}: {}", tid, std::strerror(errno)));
    }
    if (x.realtime && x.rt_late) {
        sched_param p{};
        p.sched_priority = 1;
        rt = ::sched_setscheduler(0, SCHED_FIFO, &p) == 0;
    }
    int status = 0;
    auto spin_until = Clock::now() + std::chrono::microseconds(50);
    for (;;) {
        bool spinning = x.poll && Clock::now() < spin_until;
        pid_t r = ::waitpid(tid, &status, __WALL | (spinning ? WNOHANG : 0));
        if (r == tid) break;
        if (r < 0 && errno != EINTR) die(fmt::format("floor: waitpid {}: {}", tid, std::strerror(errno)));
    }
    const auto stopped = Clock::now();
    user_regs_struct regs{};
    ::ptrace(PTRACE_GETREGS, tid, nullptr, &regs);
    iovec local{buf.data(), stack_bytes};
    iovec remote{reinterpret_cast<void*>(regs.rsp - 128), stack_bytes};
    (void)::process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (x.in_window) x.in_window();
    ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    const auto detached = Clock::now();
    if (rt) {
        sched_param p{};
        ::sched_setscheduler(0, SCHED_OTHER, &p);
    }
    return FloorSample{us(detached - stopped), us(detached - seized), us(detached - interrupted)};
}

// Where the window's microseconds go: the floor alone, the floor with one of
// the things a capture could add, and stallwatch's own capture, in rotation
// on the same victim, each followed by the same unwind (the CPU the released
// thread wakes on depends on what the tracer does next). Printed as
// information; docs/capture.md 5.1 explains the rows.
void window_breakdown(Probe& probe, int n, const char* label, std::size_t max_frames) {
    auto table = open_table(probe.pid());
    std::vector<std::byte> buf;
    struct Variant {
        const char* name;
        FloorExtras extras;
        std::vector<double> frozen, interrupt_to_detach;
    };
    std::vector<Variant> vs;
    vs.push_back({"floor", {}, {}, {}});
    vs.push_back({"+ pread of the slot", {false, false, false, [&] { (void)table.read_progress(0, 0); }}, {}, {}});
    vs.push_back({"+ SCHED_FIFO before the seize", {false, true, false, {}}, {}, {}});
    vs.push_back({"+ SCHED_FIFO after the interrupt", {false, true, true, {}}, {}, {}});
    vs.push_back({"+ 50 us of polling, SCHED_FIFO", {true, true, true, {}}, {}, {}});
    std::vector<double> ours, ours_total;
    std::optional<sw::proc::ThreadCapture> last;
    for (int i = 0; i < n; ++i) {
        for (auto& v : vs) {
            auto f = floor_capture(probe.pid(), probe.tid(), last ? last->stack.bytes.size() : 4096, buf, v.extras);
            if (f) {
                v.frozen.push_back(f->frozen_us);
                v.interrupt_to_detach.push_back(f->interrupt_to_detach_us);
            }
            if (last) (void)probe.unwind(*last, max_frames);
            sleep_for_us(1000);
        }
        if (auto cap = probe.capture()) {
            ours.push_back(us(cap->stopped));
            ours_total.push_back(us(cap->stopped + cap->stop_wait));
            last = std::move(cap);
            (void)probe.unwind(*last, max_frames);
        }
        sleep_for_us(1000);
    }
    fmt::print("\n[where the window's microseconds go: {}] medians (p90), us\n", label);
    fmt::print("  {:34} {:>18} {:>22}\n", "", "stop seen -> detach", "interrupt -> detach");
    auto row = [](const char* name, const std::vector<double>& a, const std::vector<double>& b) {
        auto sa = stats_of(a), sb = stats_of(b);
        fmt::print("  {:34} {:>10.1f} ({:>5.1f}) {:>14.1f} ({:>5.1f})\n", name, sa.median, sa.p90, sb.median, sb.p90);
    };
    for (const auto& v : vs) row(v.name, v.frozen, v.interrupt_to_detach);
    row("stallwatch's capture_thread", ours, ours_total);
}

struct CaptureSeries {
    std::vector<double> stop_us;
    std::size_t min_frames = SIZE_MAX, max_frames = 0;
    std::vector<double> unwind_us;
};

// `n` captures, 1 ms apart (the victim is back in its sleep each time), each
// unwound afterwards to check that it is the stall.
CaptureSeries capture_series(Probe& probe, int n, std::size_t max_frames) {
    CaptureSeries s;
    for (int i = 0; i < n; ++i) {
        auto cap = probe.capture();
        if (cap) {
            s.stop_us.push_back(us(cap->stopped));
            auto t0 = Clock::now();
            auto raw = probe.unwind(*cap, max_frames);
            s.unwind_us.push_back(us(Clock::now() - t0));
            s.min_frames = std::min(s.min_frames, raw.frames.size());
            s.max_frames = std::max(s.max_frames, raw.frames.size());
        }
        sleep_for_us(1000);
    }
    if (s.stop_us.empty()) s.min_frames = 0;
    return s;
}

void warm_up(Probe& probe, int n, std::size_t max_frames, std::string_view must_see) {
    for (int i = 0; i < n; ++i) {
        auto cap = probe.capture();
        if (!cap) continue;
        auto frames = probe.symbolize(probe.unwind(*cap, max_frames));
        if (i == 0 && !has_function(frames, must_see))
            die(fmt::format("the capture of the victim does not show {}", must_see));
        sleep_for_us(1000);
    }
}

struct ColdRun {
    double stop_us = 0, unwind_us = 0, symbolize_us = 0;
    std::size_t frames = 0;
};

std::optional<ColdRun> cold_run(pid_t pid) {
    // /proc/self/exe, not its target: a rebuild may replace the file meanwhile.
    auto r = run_command({"/proc/self/exe", "--cold-child", std::to_string(pid)});
    if (r.exit_code != 0) return std::nullopt;
    ColdRun c;
    int found = 0;
    std::size_t pos = 0;
    while (pos < r.out.size()) {
        auto eol = r.out.find('\n', pos);
        std::string line = r.out.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
        pos = eol == std::string::npos ? r.out.size() : eol + 1;
        double v = 0;
        if (std::sscanf(line.c_str(), "cold_stop_us: %lf", &v) == 1) c.stop_us = v, ++found;
        else if (std::sscanf(line.c_str(), "cold_unwind_us: %lf", &v) == 1) c.unwind_us = v;
        else if (std::sscanf(line.c_str(), "cold_symbolize_us: %lf", &v) == 1) c.symbolize_us = v;
        else if (std::sscanf(line.c_str(), "cold_frames: %lf", &v) == 1) c.frames = static_cast<std::size_t>(v);
    }
    if (!found) return std::nullopt;
    return c;
}

// The child side: the first capture_thread of a fresh process, with a fresh
// Unwinder and Symbolizer, set up in the order the Sampler uses.
int cold_child(pid_t pid) {
    auto table = open_table(pid);
    auto victim = find_victim(table);
    auto target = sw::proc::open_target(pid);
    sw::unwind::Unwinder unwinder(*target);
    sw::symbolize::Symbolizer symbolizer(*target, sw::symbolize::Options{});
    auto maps = sw::proc::read_maps(pid);
    if (!maps) return 1;
    sw::proc::prewarm_capture(sw::proc::CaptureOptions{});  // as Sampler::prewarm and dump do
    sw::proc::StillStalled still(
        [&](std::span<const std::byte> in_window) {
            auto slot = in_window.empty() ? table.read_slot(victim.slot, victim.generation)
                                          : sw::proc::TableFile::slot_from_bytes(in_window, victim.generation);
            return slot && slot->progress == victim.progress;
        },
        table.slot_location(victim.slot));
    auto r = sw::proc::capture_thread(pid, victim.tid, *maps, sw::proc::CaptureOptions{}, still);
    if (!r || r->dropped) return 1;
    auto t0 = Clock::now();
    if (symbolizer.refresh(*maps)) unwinder.flush();
    auto raw = unwinder.unwind(r->capture, 256);
    auto t1 = Clock::now();
    auto frames = symbolizer.symbolize(raw);
    auto t2 = Clock::now();
    fmt::print("cold_stop_us: {:.3f}\ncold_unwind_us: {:.1f}\ncold_symbolize_us: {:.1f}\ncold_frames: {}\n",
               us(r->capture.stopped), us(t1 - t0), us(t2 - t1), raw.frames.size());
    return 0;
}

// "stopped 51us to sample" (the text report rounds to whole units).
std::optional<double> parse_stopped_us(const std::string& out) {
    auto p = out.find("stopped ");
    if (p == std::string::npos) return std::nullopt;
    double v = 0;
    char unit[8] = {};
    if (std::sscanf(out.c_str() + p, "stopped %lf%7[a-z\xc2\xb5]", &v, unit) != 2) return std::nullopt;
    std::string_view u(unit);
    if (u == "ns") return v / 1e3;
    if (u == "us") return v;
    if (u == "ms") return v * 1e3;
    if (u == "s") return v * 1e6;
    return std::nullopt;
}

struct DetectRun {
    bool ok = false;
    double latency_ms = 0;
    double reported_ms = 0;  // what the report says the stall lasted
    std::string note;
};

// One detection: a fixture that ticks for `delay_ms` then blocks; attach is
// started first; we timestamp the victim's last tick (polling the table every
// ~100 us) and the arrival of the report on attach's stdout.
DetectRun detect_once(const std::string& fixture, const std::string& stallwatch, long delay_ms) {
    DetectRun res;
    Fixture fx(fixture, 10, 4, delay_ms);
    Pipe out, err;
    pid_t attach = spawn({stallwatch, "attach", std::to_string(fx.pid()), "--once", "--threshold", "100ms",
                          "--interval", "10ms"},
                         -1, out.wr, err.wr);
    ::close(out.wr);
    ::close(err.wr);
    auto table = open_table(fx.pid());
    auto victim = find_victim(table);
    std::uint64_t last = victim.progress;
    Clock::time_point last_change = Clock::now();
    Clock::time_point report_at{}, watching_at{};
    bool got_report = false;
    std::string text, errtext;
    ::fcntl(out.rd, F_SETFL, O_NONBLOCK);
    ::fcntl(err.rd, F_SETFL, O_NONBLOCK);
    auto deadline = Clock::now() + std::chrono::milliseconds(delay_ms + 3000);
    bool out_open = true;
    while (out_open && Clock::now() < deadline) {
        if (auto p = table.read_progress(victim.slot, victim.generation); p && *p != last) {
            last = *p;
            last_change = Clock::now();
        }
        char buf[4096];
        ssize_t n = ::read(err.rd, buf, sizeof buf);
        if (n > 0) {
            if (errtext.empty()) watching_at = Clock::now();
            errtext.append(buf, static_cast<std::size_t>(n));
        }
        n = ::read(out.rd, buf, sizeof buf);
        if (n > 0) {
            if (!got_report) {
                got_report = true;
                report_at = Clock::now();
            }
            text.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0) {
            out_open = false;
        }
        sleep_for_us(100);
    }
    if (out_open) ::kill(attach, SIGTERM);
    int rc = wait_exit(attach);
    ::close(out.rd);
    ::close(err.rd);
    if (!got_report || rc != 0) {
        res.note = fmt::format("attach exit {} without a report: {}", rc, errtext);
        return res;
    }
    if (text.find("\"victim\"") == std::string::npos) {
        res.note = "the report is not about the victim";
        return res;
    }
    if (watching_at.time_since_epoch().count() == 0 || watching_at > last_change) {
        res.note = "attach was not watching before the stall began";
        return res;
    }
    res.ok = true;
    res.latency_ms = ms(report_at - last_change);
    auto p = text.find("no progress for ");
    if (p != std::string::npos) {
        double v = 0;
        char unit[8] = {};
        if (std::sscanf(text.c_str() + p, "no progress for %lf%7[a-z]", &v, unit) == 2)
            res.reported_ms = std::string_view(unit) == "s" ? v * 1e3 : std::string_view(unit) == "us" ? v / 1e3 : v;
    }
    return res;
}

std::string loadavg() {
    auto t = sw::proc::read_text_file("/proc/loadavg");
    if (!t) return "?";
    std::string s = *t;
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

// CPU-bound processes, to see the stop window when the monitor must compete.
class Hogs {
public:
    explicit Hogs(int n) {
        for (int i = 0; i < n; ++i) pids_.push_back(spawn({"/bin/sh", "-c", "while :; do :; done"}, -1, -1, -1));
    }
    ~Hogs() {
        for (pid_t p : pids_) ::kill(p, SIGKILL);
        for (pid_t p : pids_) wait_exit(p);
    }
    Hogs(const Hogs&) = delete;
    Hogs& operator=(const Hogs&) = delete;

private:
    std::vector<pid_t> pids_;
};

class PrivateCopy {
public:
    explicit PrivateCopy(const std::string& file) {
        char tmpl[] = "/tmp/sw_bench_capture.XXXXXX";
        if (!::mkdtemp(tmpl)) die(fmt::format("mkdtemp: {}", std::strerror(errno)));
        dir_ = tmpl;
        cleanup_dir = dir_;
        path_ = dir_ + "/" + std::filesystem::path(file).filename().string();
        std::error_code ec;
        std::filesystem::copy_file(file, path_, ec);
        if (ec) die(fmt::format("copying {}: {}", file, ec.message()));
        std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ec);
    }
    ~PrivateCopy() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    PrivateCopy(const PrivateCopy&) = delete;
    PrivateCopy& operator=(const PrivateCopy&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string dir_, path_;
};

struct Verdict {
    std::string line;
    bool pass = false;
};

std::vector<Verdict> verdicts;

// A measured figure, or nothing when its measurement produced no sample: it
// is then printed as "not measured" and its target counts as missed, never
// as a zero that passes every "<=" target.
using Figure = std::optional<double>;
Figure figure(const Stats& s, double Stats::*field) { return s.n > 0 ? Figure{s.*field} : std::nullopt; }

void check(const std::string& what, Figure value, const std::string& unit, double target, bool at_least = false) {
    bool pass = value && (at_least ? *value >= target : *value <= target);
    std::string shown = value ? fmt::format("{:>10.2f} {:<3}", *value, unit) : fmt::format("{:>14}", "not measured");
    verdicts.push_back({fmt::format("  {:<42} {} target {} {:<8} {}", what, shown, at_least ? ">=" : "<=",
                                    fmt::format("{:g}", target), pass ? "PASS" : "MISS"),
                        pass});
}

// A condition the figures depend on (a self-test): MISS when false.
void require(const std::string& what, bool ok) {
    verdicts.push_back({fmt::format("  {:<42} {:>14} {:<18} {}", what, ok ? "yes" : "no", "", ok ? "PASS" : "MISS"),
                        ok});
}

// One `name: value` line; "not measured" rather than a made-up zero.
void print_figure(const char* name, Figure value, int decimals) {
    if (value)
        fmt::print("{}: {:.{}f}\n", name, *value, decimals);
    else
        fmt::print("{}: not measured\n", name);
}

}  // namespace

int main(int argc, char** argv) {
    std::string fixture = SW_BENCH_FIXTURE, stallwatch = SW_BENCH_STALLWATCH;
    bool quick = false, load = true;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--cold-child" && i + 1 < argc) return cold_child(static_cast<pid_t>(std::atoi(argv[i + 1])));
        if (a == "--fixture" && i + 1 < argc) fixture = argv[++i];
        else if (a == "--stallwatch" && i + 1 < argc) stallwatch = argv[++i];
        else if (a == "--quick") quick = true;
        else if (a == "--no-load") load = false;
        else {
            fmt::print(stderr, "usage: {} [--fixture PATH] [--stallwatch PATH] [--quick] [--no-load]\n", argv[0]);
            return 64;
        }
    }
    if (::access(fixture.c_str(), X_OK) != 0) die("no fixture at " + fixture);
    // Run a private copy: a rebuild of the tree during the run would otherwise
    // leave the targets' executable "(deleted)", and no tool could name its frames.
    PrivateCopy fixture_copy(fixture);
    fixture = fixture_copy.path();
    if (::access(stallwatch.c_str(), X_OK) != 0) die("no stallwatch at " + stallwatch);
    ::signal(SIGPIPE, SIG_IGN);
    // No PR_SET_TIMERSLACK here: capture_thread's own sleeps must run with the
    // default slack, as in the CLI (only the watcher thread lowers its own).

    const int n_warm = quick ? 60 : 400;
    const int n_watch = quick ? 60 : 250;
    const int n_deep = quick ? 60 : 300;
    const int n_cold = quick ? 4 : 15;
    const int n_oneshot = quick ? 4 : 15;
    const int n_detect = quick ? 2 : 15;
    const std::size_t max_frames = 256;
    auto started = Clock::now();

    fmt::print("sw_bench_capture: fixture {}, stallwatch {}, {} cpu(s), load average {}\n", fixture, stallwatch,
               std::thread::hardware_concurrency(), loadavg());

    Fixture shallow(fixture, 10, 4, 0);
    Fixture deep(fixture, 200, 4, 0);
    Probe p10(shallow.pid());
    Probe p200(deep.pid());
    fmt::print("targets: depth 10 pid {} victim tid {}; depth 200 pid {} victim tid {}\n", p10.pid(), p10.tid(),
               p200.pid(), p200.tid());

    // ---- 1. warm stop windows, depth ~10 (nothing else running) ----
    warm_up(p10, 20, max_frames, "sleep_in_handler");
    auto warm = capture_series(p10, n_warm, max_frames);
    auto warm_s = stats_of(warm.stop_us);
    fmt::print("\n[stop window, depth 10, warm] {}\n", describe(warm_s, "us"));
    fmt::print("  frames per capture {}..{}; unwind after detach {}\n", warm.min_frames, warm.max_frames,
               describe(stats_of(warm.unwind_us), "us"));

    // ---- 1b. the floor, interleaved with stallwatch's own capture ----
    // Alternate rounds on the same victim, 1 ms apart: a capture_thread
    // (its window: the stop seen to the detach), then the floor loop on as
    // many stack bytes as that capture copied.
    std::vector<double> ours_us, floor_us, floor_seize_us, wait_us;
    std::vector<std::byte> floor_buf;
    for (int i = 0; i < n_warm; ++i) {
        auto cap = p10.capture();
        if (!cap) continue;
        ours_us.push_back(us(cap->stopped));
        wait_us.push_back(us(cap->stop_wait));
        (void)p10.unwind(*cap, max_frames);
        sleep_for_us(1000);
        if (auto f = floor_capture(p10.pid(), p10.tid(), cap->stack.bytes.size(), floor_buf)) {
            floor_us.push_back(f->frozen_us);
            floor_seize_us.push_back(f->seize_to_detach_us);
        }
        (void)p10.unwind(*cap, max_frames);
        sleep_for_us(1000);
    }
    auto ours_s = stats_of(ours_us), floor_s = stats_of(floor_us), floor_seize_s = stats_of(floor_seize_us);
    fmt::print("\n[stop window vs the floor, interleaved, depth 10]\n  stallwatch (stop seen -> detach) {}\n"
               "  floor      (stop seen -> detach) {}\n  floor      (seize -> detach)     {}\n"
               "  stallwatch's wait for the stop (interrupt -> stop seen) {}\n",
               describe(ours_s, "us"), describe(floor_s, "us"), describe(floor_seize_s, "us"),
               describe(stats_of(wait_us), "us"));

    // ---- 1c. where the microseconds go (information) ----
    const int n_breakdown = quick ? 40 : 200;
    window_breakdown(p10, n_breakdown, "victim asleep, machine idle", max_frames);
    {
        Fixture spin(fixture, 10, 1, 0, "spin");
        Probe spinning(spin.pid());
        window_breakdown(spinning, n_breakdown, "victim spinning on the CPU", max_frames);
    }
    if (load) {
        Hogs hogs(2 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
        sleep_for_us(50'000);
        window_breakdown(p10, n_breakdown, "victim asleep, 2 CPU-bound processes per CPU", max_frames);
    }

    // ---- 2. the same with the other threads watched ----
    StopWatcher watcher(p10.pid(), p10.tid());
    watcher.start();
    sleep_for_us(20'000);  // the watcher's own baseline
    auto watched = capture_series(p10, n_watch, max_frames);
    sleep_for_us(20'000);
    watcher.stop();
    auto ws = watcher.summary();
    auto watched_s = stats_of(watched.stop_us);
    fmt::print("\n[context: stop window, depth 10, while /proc is sampled in a busy thread] {}\n",
               describe(watched_s, "us"));
    fmt::print("  watcher: {} threads, {} scans (one every {:.1f} us), TracerPid checked {} times\n", ws.threads,
               ws.scans, ws.scan_interval_us, ws.tracer_checks);
    fmt::print("  other threads: {} stopped samples, longest run {:.1f} us (bounds {:.1f}..{:.1f}), "
               "{} samples with TracerPid != 0\n",
               ws.others_stopped_samples, ws.others_longest_upper_us, ws.others_longest_lower_us,
               ws.others_longest_upper_us, ws.others_traced_samples);
    fmt::print("  victim (the probe sees stops): {} stopped samples in {} runs, longest {:.1f}..{:.1f} us, "
               "{} samples with TracerPid != 0\n",
               ws.victim_stopped_samples, ws.victim_stop_runs, ws.victim_longest_lower_us,
               ws.victim_longest_upper_us, ws.victim_traced_samples);

    // Self-test of the watcher: a capture held 5 ms must be seen as ~5 ms;
    // if it is not, the watcher's "others never seen stopped" proves nothing.
    bool watcher_sees_stops = false;
    {
        StopWatcher selftest(p10.pid(), p10.tid());
        selftest.start();
        sleep_for_us(5000);
        auto held = p10.capture([] { sleep_for_us(5000); });
        sleep_for_us(5000);
        selftest.stop();
        auto st = selftest.summary();
        fmt::print("  watcher self-test: victim held {:.0f} us -> seen stopped {:.0f}..{:.0f} us; others {:.0f} us\n",
                   held ? us(held->stopped) : -1.0, st.victim_longest_lower_us, st.victim_longest_upper_us,
                   st.others_longest_upper_us);
        watcher_sees_stops = held && st.victim_longest_lower_us >= 2000;
        if (!watcher_sees_stops)
            fmt::print("  the watcher did not see the held stop: its figures about other threads mean nothing\n");
    }

    // ---- 3. depth 200 ----
    warm_up(p200, 20, max_frames, "descend");
    auto deep_series = capture_series(p200, n_deep, max_frames);
    auto deep_s = stats_of(deep_series.stop_us);
    fmt::print("\n[stop window, depth 200, warm] {}\n", describe(deep_s, "us"));
    fmt::print("  frames per capture {}..{}; unwind after detach {}\n", deep_series.min_frames,
               deep_series.max_frames, describe(stats_of(deep_series.unwind_us), "us"));

    // ---- 3b. context: the same under CPU load (2 spinning processes per CPU) ----
    if (load) {
        Stats loaded_s;
        {
            Hogs hogs(2 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
            sleep_for_us(50'000);
            loaded_s = stats_of(capture_series(p10, quick ? 60 : 200, max_frames).stop_us);
        }
        fmt::print("\n[context: stop window, depth 10, with {} CPU-bound processes] {}\n",
                   2 * std::max(1u, std::thread::hardware_concurrency()), describe(loaded_s, "us"));
    }

    // ---- 4. cold: the first capture of fresh processes ----
    std::vector<double> cold10, cold200, cold_unwind, cold_sym;
    for (int i = 0; i < n_cold; ++i) {
        if (auto c = cold_run(p10.pid())) {
            cold10.push_back(c->stop_us);
            cold_unwind.push_back(c->unwind_us);
            cold_sym.push_back(c->symbolize_us / 1e3);
        }
        sleep_for_us(2000);
        if (i % 2 == 0) {
            if (auto c = cold_run(p200.pid())) cold200.push_back(c->stop_us);
            sleep_for_us(2000);
        }
    }
    auto cold_s = stats_of(cold10), cold200_s = stats_of(cold200);
    fmt::print("\n[stop window, cold: first capture of a fresh process, depth 10] {}\n", describe(cold_s, "us"));
    fmt::print("[stop window, cold, depth 200] {}\n", describe(cold200_s, "us"));
    fmt::print("  cold unwind (after detach) {}\n  cold symbolize {}\n", describe(stats_of(cold_unwind), "us"),
               describe(stats_of(cold_sym), "ms"));

    // ---- 5. one-shot attach vs eu-stack, interleaved ----
    std::vector<double> oneshot_ms, eu_ms, eu_is_ms, attach_stop_us;
    std::string pid_s = std::to_string(p10.pid());
    // `--threshold 0` is refused by the CLI ("give a number and a unit"): 0ms.
    // With a zero threshold, a busy worker caught between two ticks is a
    // "stall" too: such a run is a complete one-shot all the same (capture,
    // unwind, symbolize) and is counted, but reported apart.
    int attach_bad = 0, eu_bad = 0, attach_other = 0;
    for (int i = 0; i < n_oneshot; ++i) {
        auto a = run_command({stallwatch, "attach", pid_s, "--once", "--threshold", "0ms", "--interval", "1ms"});
        if (a.exit_code == 0 && a.out.find("STALL #") != std::string::npos &&
            a.out.find("[sw_fixture_stall+") != std::string::npos) {
            oneshot_ms.push_back(ms(a.wall));
            if (a.out.find("sleep_in_handler") == std::string::npos) ++attach_other;
            if (auto s = parse_stopped_us(a.out)) attach_stop_us.push_back(*s);
        } else {
            ++attach_bad;
            std::string tail = a.out.substr(a.out.size() > 300 ? a.out.size() - 300 : 0);
            fmt::print("  attach run {}: exit {}, output ends: {}\n", i, a.exit_code, tail.empty() ? "(none)" : tail);
        }
        auto e = run_command({"eu-stack", "-p", pid_s});
        if (e.out.find("sleep_in_handler") != std::string::npos)
            eu_ms.push_back(ms(e.wall));
        else
            ++eu_bad;
        if (i % 3 == 0) {  // context only: eu-stack with inlines and source lines, as stallwatch prints
            auto e2 = run_command({"eu-stack", "-p", pid_s, "-i", "-s"});
            if (e2.out.find("sleep_in_handler") != std::string::npos) eu_is_ms.push_back(ms(e2.wall));
        }
    }
    auto oneshot_s = stats_of(oneshot_ms), eu_s = stats_of(eu_ms), eu_is_s = stats_of(eu_is_ms);
    auto attach_stop_s = stats_of(attach_stop_us);
    fmt::print("\n[stallwatch attach --once] {} ({} bad runs; {} reported a busy worker, not the victim)\n",
               describe(oneshot_s, "ms"), attach_bad, attach_other);
    fmt::print("[eu-stack -p]              {} ({} bad runs)\n", describe(eu_s, "ms"), eu_bad);
    fmt::print("[eu-stack -p -i -s]        {} (context only)\n", describe(eu_is_s, "ms"));
    fmt::print("[attach's own 'stopped ... to sample', cold] {}\n", describe(attach_stop_s, "us"));

    // ---- 6. warm symbolization of a 30-frame stack ----
    std::vector<double> sym_us, sym_new_us;
    std::size_t sym_frames = 0, raw30 = 0;
    {
        auto cap = p200.capture();
        if (!cap) die("capture for the symbolization bench failed: " + p200.last_error());
        auto raw = p200.unwind(*cap, 30);
        raw30 = raw.frames.size();
        (void)p200.symbolize(raw);  // warm
        for (int i = 0; i < 2000; ++i) {
            auto t0 = Clock::now();
            auto frames = p200.symbolize(raw);
            sym_us.push_back(us(Clock::now() - t0));
            sym_frames = frames.size();
        }
        // Same warm session, but 30 addresses it has not looked up yet (each
        // iteration walks every frame's address back by a few more bytes).
        for (int i = 1; i <= 150; ++i) {
            sw::unwind::RawStack fresh;
            for (std::size_t k = 0; k < raw.frames.size(); ++k)
                fresh.frames.push_back({raw.frames[k].pc - 1 - static_cast<std::uint64_t>(i) * 31 - k, true});
            auto t0 = Clock::now();
            (void)p200.symbolize(fresh);
            sym_new_us.push_back(us(Clock::now() - t0));
        }
    }
    auto sym_s = stats_of(sym_us), sym_new_s = stats_of(sym_new_us);
    fmt::print("\n[warm symbolize, {} raw frames -> {} frames, per-address cache hit] {}\n", raw30, sym_frames,
               describe(sym_s, "us"));
    fmt::print("[warm symbolize, {} addresses not seen before (warm libdwfl session)] {}\n", raw30,
               describe(sym_new_s, "us"));

    // ---- 7. detection latency ----
    std::vector<double> detect_ms, detect_reported;
    for (int i = 0; i < n_detect; ++i) {
        auto d = detect_once(fixture, stallwatch, 400);
        if (d.ok) {
            detect_ms.push_back(d.latency_ms);
            detect_reported.push_back(d.reported_ms);
        } else {
            fmt::print("  detection run {} failed: {}\n", i, d.note);
        }
    }
    auto detect_s = stats_of(detect_ms);
    fmt::print("\n[detection: victim's last tick -> report on attach's stdout] {}\n", describe(detect_s, "ms"));
    fmt::print("  the reports said 'no progress for' {}\n", describe(stats_of(detect_reported), "ms"));

    if (p10.failed() + p200.failed() + p10.dropped() + p200.dropped())
        fmt::print("\ncaptures failed {} (last: {}), dropped {}\n", p10.failed() + p200.failed(),
                   p10.last_error().empty() ? p200.last_error() : p10.last_error(), p10.dropped() + p200.dropped());

    // ---- verdicts, then the figures ----
    Figure ratio = oneshot_s.n > 0 && eu_s.n > 0 && oneshot_s.median > 0 ? Figure{eu_s.median / oneshot_s.median}
                                                                        : std::nullopt;
    Figure others_stopped = watcher_sees_stops && ws.scans > 0 ? Figure{ws.others_longest_upper_us} : std::nullopt;
    Figure others_traced =
        watcher_sees_stops && ws.scans > 0 ? Figure{static_cast<double>(ws.others_traced_samples)} : std::nullopt;
    Figure vs_floor = ours_s.n > 0 && floor_s.n > 0 && floor_s.median > 0
                          ? Figure{ours_s.median / floor_s.median}
                          : std::nullopt;
    Figure cold_vs_warm =
        cold_s.n > 0 && warm_s.n > 0 && warm_s.median > 0 ? Figure{cold_s.median / warm_s.median} : std::nullopt;
    check("stop window / floor, medians (ratio)", vs_floor, "x", 1.3);
    check("stop cold / warm, medians (ratio)", cold_vs_warm, "x", 1.2);
    check("stop p99, depth 10, goal (us)", figure(warm_s, &Stats::p99), "us", 200);
    check("stop median, depth 10 (us)", figure(warm_s, &Stats::median), "us", 50);
    check("stop median, depth 200 (us)", figure(deep_s, &Stats::median), "us", 50);
    check("stop p99, depth 200 (us)", figure(deep_s, &Stats::p99), "us", 500);
    check("stop cold median, depth 10 (us)", figure(cold_s, &Stats::median), "us", 50);
    check("stop cold max, depth 10 (us)", figure(cold_s, &Stats::max), "us", 500);
    check("stop cold median, depth 200 (us)", figure(cold200_s, &Stats::median), "us", 50);
    check("stop cold max, depth 200 (us)", figure(cold200_s, &Stats::max), "us", 500);
    require("watcher self-test saw a held stop", watcher_sees_stops);
    check("other threads seen stopped (us)", others_stopped, "us", 0);
    check("other threads seen traced (samples)", others_traced, "", 0);
    check("eu-stack / oneshot (ratio)", ratio, "x", 5, true);
    check("warm symbolize, cached (us)", figure(sym_s, &Stats::median), "us", 1000);
    check("warm symbolize, new addresses (us)", figure(sym_new_s, &Stats::median), "us", 1000);
    check("detection latency median (ms)", figure(detect_s, &Stats::median), "ms", 120);
    check("detection latency max (ms)", figure(detect_s, &Stats::max), "ms", 120);
    // Issue 15: p99 within threshold + interval + 5 ms (100 + 10 + 5).
    check("detection latency p99, goal (ms)", figure(detect_s, &Stats::p99), "ms", 115);
    std::size_t misses = 0;
    fmt::print("\ntargets:\n");
    for (const auto& v : verdicts) {
        fmt::print("{}\n", v.line);
        misses += !v.pass;
    }
    fmt::print("{} of {} targets missed; run took {:.1f} s\n", misses, verdicts.size(),
               ms(Clock::now() - started) / 1e3);
    fmt::print("verdict: {}\n", misses == 0 ? "PASS" : "MISS");
    print_figure("stop_cold_max_us (not in the block below)", figure(cold_s, &Stats::max), 1);
    fmt::print("load average at the end: {}\n\n", loadavg());

    print_figure("stop_floor_median_us", figure(floor_s, &Stats::median), 1);
    print_figure("stop_floor_seize_to_detach_median_us", figure(floor_seize_s, &Stats::median), 1);
    print_figure("stop_median_us", figure(warm_s, &Stats::median), 1);
    print_figure("stop_interleaved_median_us", figure(ours_s, &Stats::median), 1);
    print_figure("stop_cold_median_us", figure(cold_s, &Stats::median), 1);
    print_figure("stop_p99_us", figure(warm_s, &Stats::p99), 1);
    print_figure("stop_vs_floor", vs_floor, 2);
    print_figure("stop_cold_vs_warm", cold_vs_warm, 2);
    print_figure("stop_wait_median_us", figure(stats_of(wait_us), &Stats::median), 1);
    print_figure("stop_depth200_median_us", figure(deep_s, &Stats::median), 1);
    print_figure("stop_cold_us", figure(cold_s, &Stats::median), 1);
    print_figure("others_stopped_us", others_stopped, 1);
    print_figure("oneshot_wall_ms", figure(oneshot_s, &Stats::median), 2);
    print_figure("eu_stack_wall_ms", figure(eu_s, &Stats::median), 2);
    print_figure("oneshot_vs_eu_stack", ratio, 3);
    print_figure("warm_symbolize_us", figure(sym_s, &Stats::median), 2);
    print_figure("detect_latency_ms", figure(detect_s, &Stats::median), 1);
    print_figure("detect_latency_p99_ms", figure(detect_s, &Stats::p99), 1);
    return 0;
}
