// Syscall transparency: workers blocked in system calls are captured
// thousands of times, with the very PTRACE_SEIZE + PTRACE_INTERRUPT + detach
// that `stallwatch dump` and `attach` do (proc::capture_thread), and the
// calls must not notice: no EINTR, no timeout that comes early, no wake-up
// without an event. For the calls that Linux fails with EINTR after any stop
// (epoll_wait and a few others, signal(7)), the test asserts exactly that:
// one EINTR per call that a capture stopped, and nothing else.
// docs/capture.md, section 4.5, has the table this test measures.
//
// Besides the fixture's own counters (fixtures/syscalls/syscalls.c), every
// capture reads rax at the stop. When the stop interrupted a system call, rax
// holds the kernel's verdict on it: -ERESTARTSYS, -ERESTARTNOHAND or
// -ERESTART_RESTARTBLOCK (the call is restarted on resume, since no signal
// handler runs) or -EINTR (the call fails).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/sem.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "proc/capture.hpp"
#include "proc/maps.hpp"
#include "proc/table_file.hpp"
#include "support/child.hpp"

using namespace sw::test;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// The kernel's internal restart codes (include/linux/errno.h), as rax holds
// them at a stop inside a system call.
constexpr long k_erestartsys = -512;
constexpr long k_erestartnointr = -513;
constexpr long k_erestartnohand = -514;
constexpr long k_erestart_restartblock = -516;
constexpr long k_eintr = -4;

const char* code_name(long code) {
    switch (code) {
    case k_erestartsys: return "ERESTARTSYS";
    case k_erestartnointr: return "ERESTARTNOINTR";
    case k_erestartnohand: return "ERESTARTNOHAND";
    case k_erestart_restartblock: return "ERESTART_RESTARTBLOCK";
    case k_eintr: return "EINTR";
    default: return "?";
    }
}
bool is_stop_code(long rax) {
    return rax == k_erestartsys || rax == k_erestartnointr || rax == k_erestartnohand ||
           rax == k_erestart_restartblock || rax == k_eintr;
}

// What each fixture worker must see, as measured (Linux 6.x, glibc 2.36) and
// explained in docs/capture.md, section 4.5.
enum class After { restarted, eintr };
struct Expected {
    const char* worker;
    long code;    // rax at a stop inside the call
    After after;  // what the program sees when the thread resumes
};
constexpr Expected k_expected[] = {
    {"nanosleep", k_erestart_restartblock, After::restarted},
    {"clock_nanosleep", k_erestart_restartblock, After::restarted},
    {"clock_nanosleep_abs", k_erestartnohand, After::restarted},
    {"futex_timed", k_erestart_restartblock, After::restarted},
    {"futex", k_erestartsys, After::restarted},
    {"cond_timedwait", k_erestart_restartblock, After::restarted},
    {"read", k_erestartsys, After::restarted},
    {"poll_timed", k_erestart_restartblock, After::restarted},
    {"poll", k_erestart_restartblock, After::restarted},  // even without a timeout
    {"ppoll", k_erestartnohand, After::restarted},
    {"select", k_erestartnohand, After::restarted},
    {"epoll_wait", k_eintr, After::eintr},
    {"epoll_pwait", k_eintr, After::eintr},
    {"accept", k_erestartsys, After::restarted},
    {"recvfrom", k_erestartsys, After::restarted},
    {"recvfrom_rcvtimeo", k_eintr, After::eintr},
    {"sigtimedwait", k_eintr, After::eintr},
    {"semtimedop", k_eintr, After::eintr},
};

// One line of the fixture's report.
struct Counters {
    pid_t tid = 0;
    long calls = 0, ok = 0, eintr = 0, shortw = 0, spurious = 0, errors = 0, last_errno = 0;
};
using Report = std::map<std::string, Counters>;

Counters operator-(const Counters& a, const Counters& b) {
    Counters d = a;
    d.calls -= b.calls;
    d.ok -= b.ok;
    d.eintr -= b.eintr;
    d.shortw -= b.shortw;
    d.spurious -= b.spurious;
    d.errors -= b.errors;
    return d;
}

// The fixture, started with 5 ms timeouts and one event per worker every
// 5 ms: ~200 calls a second per worker, and several captures land in each.
struct SyscallFixture {
    Child child;
    pid_t pid = 0;
    long workers = 0;
    int sem = -1;

    explicit SyscallFixture(const std::map<std::string, std::string>& env = {})
        : child({SW_FIXTURE_SYSCALLS, "--timeout-ms", "5", "--period-ms", "5"}, env) {
        auto ready = child.read_line();
        REQUIRE_MESSAGE(ready.has_value(), "the fixture did not say ready");
        pid = child.pid();
        workers = field(*ready, "workers").value_or(0);
        sem = static_cast<int>(field(*ready, "sem").value_or(-1));
        REQUIRE(workers == static_cast<long>(std::size(k_expected)));
    }
    // The fixture removes its semaphore set when it exits normally; a test
    // that fails kills it, and the set would stay behind.
    ~SyscallFixture() {
        if (sem >= 0) ::semctl(sem, 0, IPC_RMID);
    }
    SyscallFixture(const SyscallFixture&) = delete;
    SyscallFixture& operator=(const SyscallFixture&) = delete;

    // The fixture reads "report" lines on its standard input. Child keeps that
    // pipe's write end to itself, so the command goes in through the
    // fixture's /proc/PID/fd/0: opening it gives another write end of the
    // same pipe.
    Report report() {
        auto path = "/proc/" + std::to_string(pid) + "/fd/0";
        int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        REQUIRE_MESSAGE(fd >= 0, "cannot open " << path);
        bool sent = ::write(fd, "report\n", 7) == 7;
        ::close(fd);
        REQUIRE(sent);
        Report r;
        for (;;) {
            auto line = child.read_line(10s);
            REQUIRE_MESSAGE(line.has_value(), "the fixture's report ended early");
            if (*line == "end") break;
            REQUIRE_MESSAGE(line->rfind("worker=", 0) == 0, "unexpected line: " << *line);
            auto name = line->substr(7, line->find(' ') - 7);
            auto get = [&](const char* key) {
                auto v = field(*line, key);
                REQUIRE_MESSAGE(v.has_value(), "no " << key << " in: " << *line);
                return *v;
            };
            Counters c;
            c.tid = static_cast<pid_t>(get("tid"));
            c.calls = get("calls");
            c.ok = get("ok");
            c.eintr = get("eintr");
            c.shortw = get("short");
            c.spurious = get("spurious");
            c.errors = get("errors");
            c.last_errno = get("errno");
            r[name] = c;
        }
        REQUIRE(static_cast<long>(r.size()) == workers);
        return r;
    }

    // A report taken once every worker has finished a call after the last
    // capture: the call that capture stopped has returned and been counted.
    Report settled_report() {
        auto first = report();
        for (auto deadline = Clock::now() + 10s;;) {
            std::this_thread::sleep_for(20ms);
            auto r = report();
            bool all = true;
            for (const auto& [name, c] : r) all = all && c.calls > first[name].calls;
            if (all || Clock::now() > deadline) return r;
        }
    }

    // Without captures the fixture counts nothing but timeouts and events,
    // so anything it counts later is the captures' doing. Returns the report
    // that the sampled phase starts from.
    Report control() {
        auto r0 = report();
        std::this_thread::sleep_for(1s);
        auto r1 = report();
        for (const auto& e : k_expected) {
            INFO("control, worker " << e.worker);
            auto d = r1[e.worker] - r0[e.worker];
            CHECK(d.calls > 0);
            CHECK(d.eintr == 0);
            CHECK(d.shortw == 0);
            CHECK(d.spurious == 0);
            CHECK(d.errors == 0);
        }
        return r1;
    }
};

// What the captures of one worker found.
struct Sampled {
    pid_t tid = 0;
    sw::table::Worker slot;
    long captures = 0;  // successful captures
    long failed = 0;    // capture_thread errors
    std::string first_error;
    std::map<long, long> at_stop;  // stop code in rax -> captures
    // Calls that at least one capture stopped in. The worker ticks after
    // each call returns, so its progress, read inside the window, names the
    // call: captures at the same progress stopped the same call. For a call
    // that is restarted that is the normal case (several captures land in one
    // 5 ms call). For a call that fails with EINTR it means that the capture
    // found the thread still on its way out of the previous stop (resumed,
    // but not yet run on a busy machine), with rax still holding the earlier
    // verdict: one EINTR, not two.
    long calls_hit = 0;
    std::optional<std::uint64_t> last_progress;
    long no_progress = 0;  // the slot could not be read in the window
    std::chrono::nanoseconds max_stop{};

    long in_call() const {
        long n = 0;
        for (auto [code, count] : at_stop) n += count;
        return n;
    }
};

bool traced_or_stopped(pid_t pid, pid_t tid) {
    auto status = sw::proc::read_text_file("/proc/" + std::to_string(pid) + "/task/" +
                                           std::to_string(tid) + "/status");
    if (!status) return false;
    return status->find("TracerPid:\t0\n") == std::string::npos ||
           status->find("State:\tt") != std::string::npos || status->find("State:\tT") != std::string::npos;
}

}  // namespace

// Captures every worker of the fixture `target` times and checks what its
// calls saw. `env`: the fixture's extra environment.
void captures_are_transparent(const std::map<std::string, std::string>& env, const long target) {
    SyscallFixture fx(env);

    // The workers, as stallwatch finds them: registered and RUNNING.
    auto table = sw::proc::TableFile::open(fx.pid);
    REQUIRE_MESSAGE(table.ok(), (table.ok() ? "" : table.error().message));
    auto snap = table->read();
    REQUIRE_MESSAGE(snap.ok(), (snap.ok() ? "" : snap.error().message));
    REQUIRE(static_cast<long>(snap->workers.size()) == fx.workers);
    std::map<std::string, Sampled> sampled;
    for (const auto& w : snap->workers) {
        CHECK(w.state == sw::table::WorkerState::running);
        sampled[w.name].tid = w.tid;
        sampled[w.name].slot = w;
    }
    for (const auto& e : k_expected) REQUIRE_MESSAGE(sampled.count(e.worker), "no worker " << e.worker);

    auto before = fx.control();
    for (const auto& e : k_expected) CHECK(before[e.worker].tid == sampled[e.worker].tid);

    // Round after round over all workers, until each has been captured
    // `target` times (or the time budget is spent). The maps are read once:
    // they only bound the stack copy, and the stacks do not move.
    const auto budget = 20s;
    auto maps = sw::proc::read_maps(fx.pid);
    REQUIRE(maps.ok());
    const sw::proc::CaptureOptions opt;
    const auto t_start = Clock::now();
    for (bool done = false; !done && Clock::now() - t_start < budget;) {
        done = true;
        for (auto& entry : sampled) {  // no structured binding: a lambda captures it (clang 14)
            Sampled& s = entry.second;
            // Inside the window, as `attach` does to confirm a stall: the
            // worker's progress while it is stopped. The sample is kept.
            std::optional<std::uint64_t> progress;
            auto out = sw::proc::capture_thread(fx.pid, s.tid, *maps, opt, [&] {
                progress = table->read_progress(s.slot.slot, s.slot.generation);
                return true;
            });
            if (!out.ok()) {
                if (s.failed++ == 0) s.first_error = out.error().message;
                continue;
            }
            ++s.captures;
            s.max_stop = std::max(s.max_stop, out->capture.stopped);
            auto rax = static_cast<long>(out->capture.regs.dwarf[0]);  // DWARF register 0 is rax
            if (is_stop_code(rax)) {
                ++s.at_stop[rax];
                if (!progress) ++s.no_progress;
                s.calls_hit += progress != s.last_progress;
                s.last_progress = progress;
            }
            done = done && s.captures >= target;
        }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t_start).count();
    auto after = fx.settled_report();

    for (const auto& entry : sampled) {
        INFO("worker " << entry.first);
        CHECK_FALSE(traced_or_stopped(fx.pid, entry.second.tid));
    }

    // The measured table (docs/capture.md, section 4.5, quotes it).
    long total = 0;
    for (const auto& [name, s] : sampled) total += s.captures;
    std::printf("\n%ld captures of %ld workers in %.1f s (%.0f us each), 5 ms timeouts and events\n",
                total, fx.workers, secs, total ? secs * 1e6 / static_cast<double>(total) : 0.0);
    std::printf("%-20s %6s %8s %8s %9s %-22s %6s %6s %8s %6s %8s\n", "worker", "calls", "captures",
                "in call", "calls hit", "rax at the stop", "eintr", "short", "spurious", "errors",
                "max stop");
    for (const auto& e : k_expected) {
        const auto& s = sampled[e.worker];
        auto d = after[e.worker] - before[e.worker];
        std::string codes;
        for (auto [code, count] : s.at_stop)
            codes += (codes.empty() ? "" : ",") + std::string(code_name(code)) +
                     (s.at_stop.size() > 1 ? "=" + std::to_string(count) : "");
        std::printf("%-20s %6ld %8ld %8ld %9ld %-22s %6ld %6ld %8ld %6ld %6ld us\n", e.worker, d.calls,
                    s.captures, s.in_call(), s.calls_hit, codes.c_str(), d.eintr, d.shortw, d.spurious,
                    d.errors, static_cast<long>(s.max_stop.count() / 1000));
    }
    std::fflush(stdout);

    for (const auto& e : k_expected) {
        const auto& s = sampled[e.worker];
        auto d = after[e.worker] - before[e.worker];
        INFO("worker " << e.worker << ": " << s.captures << " captures, " << s.in_call()
                       << " inside the call, " << s.calls_hit << " calls hit; calls=" << d.calls
                       << " eintr=" << d.eintr << " short=" << d.shortw << " spurious=" << d.spurious
                       << " errors=" << d.errors << " (errno " << after[e.worker].last_errno << ")");
        // Every capture worked, and most caught the worker inside its call
        // (between two calls it runs only a few instructions).
        CHECK_MESSAGE(s.failed == 0, s.first_error);
        CHECK(s.no_progress == 0);
        CHECK(s.captures >= target / 2);
        CHECK(s.in_call() * 2 >= s.captures);
        // The kernel's verdict at the stop is the same every time.
        CHECK_MESSAGE(s.at_stop.count(e.code) == 1, "expected " << code_name(e.code));
        CHECK(s.at_stop.size() == 1);
        // The worker went on making calls, and never saw what it should not.
        CHECK(d.calls > 0);
        CHECK(d.shortw == 0);
        CHECK(d.spurious == 0);
        CHECK(d.errors == 0);
        if (e.after == After::restarted) {
            CHECK(d.eintr == 0);
        } else {
            // One EINTR for each call that a capture stopped, none otherwise.
            CHECK(d.eintr == s.calls_hit);
        }
    }
    CHECK(fx.child.finish() == std::optional<int>(0));
}

TEST_CASE("blocking system calls captured thousands of times see no EINTR, early return or "
          "spurious wake-up, except the calls the kernel fails after any stop") {
    captures_are_transparent({}, 5000);
}

// The fixture's poll, ppoll, select, pselect, epoll_wait and epoll_pwait go
// through the preload's wrappers. Its workers are its own (the static shim
// registered them): the preload adopts its table and leaves them RUNNING,
// so the captures land inside the wrapped calls.
TEST_CASE("the same under libstallwatch-preload.so, which wraps half of those calls") {
    const std::map<std::string, std::string> preload = {{"LD_PRELOAD", SW_PRELOAD_LIBRARY}};
    {
        SyscallFixture fx(preload);
        std::ifstream maps("/proc/" + std::to_string(fx.pid) + "/maps");
        std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
        REQUIRE_MESSAGE(text.find("libstallwatch-preload.so") != std::string::npos, "the preload is not loaded");
        // The program's shim made the table; the preload adopted it (a dup).
        auto table = sw::proc::TableFile::open(fx.pid);
        REQUIRE(table.ok());
        auto snap = table->read();
        REQUIRE(snap.ok());
        CHECK(static_cast<long>(snap->workers.size()) == fx.workers);
        std::set<ino_t> inodes;
        for (const auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(fx.pid) + "/fd")) {
            std::error_code ec;
            auto link = std::filesystem::read_symlink(fd.path(), ec);
            struct stat st {};
            if (!ec && link.string() == "/memfd:stallwatch (deleted)" && ::stat(fd.path().c_str(), &st) == 0)
                inodes.insert(st.st_ino);
        }
        CHECK_MESSAGE(inodes.size() == 1, "one table, however many fds name it");
    }
    captures_are_transparent(preload, 2000);
}

TEST_CASE("stallwatch dump in a loop: the same, end to end") {
    SyscallFixture fx;
    auto before = fx.control();

    // Each dump stops every worker once, one after the other.
    const int dumps = 20;
    const auto pid = std::to_string(fx.pid);
    for (int i = 0; i < dumps; ++i) {
        auto r = run({stallwatch_binary(), "dump", pid}, 30s, {{"DEBUGINFOD_URLS", ""}});
        REQUIRE_MESSAGE(r.exit_code == 0, r.err);
        CHECK(r.err.empty());
        if (i == 0)
            for (const auto& e : k_expected)
                CHECK_MESSAGE(r.out.find("worker \"" + std::string(e.worker) + "\"") != std::string::npos,
                              e.worker);
    }
    auto after = fx.settled_report();
    std::printf("\n%d dumps, EINTR seen:", dumps);
    for (const auto& e : k_expected)
        if (e.after == After::eintr)
            std::printf(" %s=%ld", e.worker, after[e.worker].eintr - before[e.worker].eintr);
    std::printf("\n");
    std::fflush(stdout);
    for (const auto& e : k_expected) {
        auto d = after[e.worker] - before[e.worker];
        INFO("worker " << e.worker << ": calls=" << d.calls << " eintr=" << d.eintr << " short="
                       << d.shortw << " spurious=" << d.spurious << " errors=" << d.errors);
        CHECK(d.calls > 0);
        CHECK(d.shortw == 0);
        CHECK(d.spurious == 0);
        CHECK(d.errors == 0);
        if (e.after == After::restarted) {
            CHECK(d.eintr == 0);
        } else {
            // At most one per dump: a dump that finds the worker between two
            // calls (a few instructions) costs it nothing.
            CHECK(d.eintr > 0);
            CHECK(d.eintr <= dumps);
        }
    }
    CHECK(fx.child.finish() == std::optional<int>(0));
}
