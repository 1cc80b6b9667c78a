// Linux: one thread stopped with PTRACE_SEIZE + PTRACE_INTERRUPT, owned by a
// guard whose destructor detaches on every path.
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>

#include "proc/capture.hpp"
#include "proc/memory.hpp"
#include "proc/process.hpp"
#include "proc/registers.hpp"

namespace sw::proc {
namespace {

using Clock = std::chrono::steady_clock;

// Red zone below the stack pointer that leaf functions may use (x86-64 ABI).
constexpr std::uint64_t red_zone = 128;

// Test-only hooks, only in a build configured with STALLWATCH_TEST_HOOKS
// (never a package); documented in docs/capture.md, not in --help or the
// manual. Read once. STALLWATCH_TEST_HOLD_STOP_US holds every stop this long
// (µs), so that tests can look at the target while one of its threads is
// stopped, or kill us in the window. STALLWATCH_TEST_HOLD_SEIZE_US waits this
// long between the seize and the interrupt, so that a test can send a signal
// that the traced thread then meets as a signal-delivery stop.
#ifdef STALLWATCH_TEST_HOOKS
long test_hook_us(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::max(0L, std::strtol(v, nullptr, 10)) : 0L;
}
const long test_hold_us = test_hook_us("STALLWATCH_TEST_HOLD_STOP_US");
const long test_seize_hold_us = test_hook_us("STALLWATCH_TEST_HOLD_SEIZE_US");
#else
constexpr long test_hold_us = 0;
constexpr long test_seize_hold_us = 0;
#endif

void sleep_us(long us) {
    timespec ts{us / 1'000'000, us % 1'000'000 * 1000};
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

std::mutex lingering_mutex;
std::vector<pid_t> lingering;  // seized, not yet stopped, so not yet detached

pid_t tracer_of(pid_t pid, pid_t tid) {
    auto text = read_text_file(fmt::format("/proc/{}/task/{}/status", pid, tid));
    if (!text) return 0;
    auto pos = text->find("TracerPid:");
    if (pos == std::string::npos) return 0;
    return static_cast<pid_t>(std::strtol(text->c_str() + pos + 10, nullptr, 10));
}

// Whether `tid` is a thread of process `pid` right now. The kernel resolves
// /proc/PID/task/TID only for a thread in PID's thread group (the lookup
// checks same_thread_group), so a tid of any other process gives ENOENT, even
// though /proc/TID itself exists.
bool is_thread_of(pid_t pid, pid_t tid) {
    struct stat st {};
    return ::stat(fmt::format("/proc/{}/task/{}", pid, tid).c_str(), &st) == 0;
}

// The process (thread group) that thread `tid` belongs to, 0 if there is none.
pid_t thread_group_of(pid_t tid) {
    auto text = read_text_file(fmt::format("/proc/{}/status", tid));
    if (!text) return 0;
    auto pos = text->find("\nTgid:");
    if (pos == std::string::npos) return 0;
    return static_cast<pid_t>(std::strtol(text->c_str() + pos + 6, nullptr, 10));
}

// The table names the threads to stop, and the table is the target's to
// write: a slot may name a tid of ANOTHER process (a hostile table, or a
// stale slot whose thread exited and whose tid was reused). ptrace takes a
// bare tid, so that thread would be stopped and read. Refuse it.
Error not_a_thread_of(pid_t pid, pid_t tid) {
    pid_t owner = thread_group_of(tid);
    if (owner <= 0 || owner == pid)  // gone (or just became a thread of pid: it exited and came back)
        return make_error(Errc::no_such_process, fmt::format("thread {} exited", tid), ESRCH);
    return make_error(Errc::permission_denied,
                      fmt::format("tid {} is not a thread of pid {} but of pid {} ({}): the table names a "
                                  "thread outside the process (a stale or hostile slot); refused to stop it",
                                  tid, pid, owner, comm(owner)),
                      EPERM);
}

Error seize_error(pid_t pid, pid_t tid, int e) {
    if (e == ESRCH)
        return make_error(Errc::no_such_process, fmt::format("thread {} exited", tid), e);
    if (e == EPERM) {
        if (pid_t t = tracer_of(pid, tid); t > 0)
            return make_error(Errc::permission_denied,
                              fmt::format("thread {} is already traced by pid {} ({}): only one "
                                          "debugger may trace a thread; detach it first",
                                          tid, t, comm(t)),
                              e);
        return make_error(Errc::permission_denied,
                          fmt::format("not permitted to trace thread {}: {}", tid, permission_hint(pid)),
                          e);
    }
    return make_error(Errc::io, fmt::format("ptrace(SEIZE) of thread {}: {}", tid, std::strerror(e)), e);
}

// Interrupts a blocking waitpid of this thread at a deadline: a timer
// signals this thread (SIGALRM, handled without SA_RESTART, so the wait
// returns EINTR) at the deadline and then every 20 ms, so that a signal
// that lands just before the wait begins cannot leave it blocked for good.
class WaitTimer {
public:
    explicit WaitTimer(Clock::time_point deadline) {
        static const bool installed = [] {
            struct sigaction sa {};
            sa.sa_handler = [](int) {};
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = 0;  // no SA_RESTART
            return ::sigaction(SIGALRM, &sa, nullptr) == 0;
        }();
        if (!installed) return;
        sigevent ev{};
        ev.sigev_notify = SIGEV_THREAD_ID;
        ev.sigev_signo = SIGALRM;
        ev._sigev_un._tid = ::gettid();
        if (::timer_create(CLOCK_MONOTONIC, &ev, &timer_) != 0) return;
        armed_ = true;
        auto left = std::max(Clock::duration(std::chrono::microseconds(1)), deadline - Clock::now());
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        itimerspec its{};
        its.it_value = {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
        its.it_interval = {0, 20'000'000};
        ::timer_settime(timer_, 0, &its, nullptr);
    }
    ~WaitTimer() {
        if (armed_) ::timer_delete(timer_);
    }
    WaitTimer(const WaitTimer&) = delete;
    WaitTimer& operator=(const WaitTimer&) = delete;

private:
    timer_t timer_{};
    bool armed_ = false;
};

// For the length of the capture, run at the lowest real-time priority when
// we may (root or CAP_SYS_NICE): a tracer preempted inside the window keeps
// the target thread stopped for a time slice. Nothing changes otherwise.
class RealtimeWindow {
public:
    RealtimeWindow() {
        old_policy_ = ::sched_getscheduler(0);
        if (old_policy_ != SCHED_OTHER || ::sched_getparam(0, &old_) != 0) return;
        sched_param p{};
        p.sched_priority = 1;
        raised_ = ::sched_setscheduler(0, SCHED_FIFO, &p) == 0;
    }
    ~RealtimeWindow() {
        if (raised_) ::sched_setscheduler(0, old_policy_, &old_);
    }
    RealtimeWindow(const RealtimeWindow&) = delete;
    RealtimeWindow& operator=(const RealtimeWindow&) = delete;

private:
    int old_policy_ = SCHED_OTHER;
    sched_param old_{};
    bool raised_ = false;
};

// Owns the tracing of one thread from PTRACE_SEIZE until the detach.
class Seized {
public:
    explicit Seized(pid_t tid) : tid_(tid) {}
    Seized(const Seized&) = delete;
    Seized& operator=(const Seized&) = delete;
    ~Seized() { release(); }

    // Waits for the stop that PTRACE_INTERRUPT (or a signal) causes: 50 us
    // of polling, then a blocking wait that a timer ends at the deadline.
    // Never a yield: on a busy machine a yield hands the CPU away for a
    // whole time slice while the thread sits stopped.
    Status wait_stop(Clock::time_point deadline) {
        // A stop usually comes within microseconds: poll for a short while
        // (never yielding) so that we see it at once, then block.
        auto spin_until = Clock::now() + std::chrono::microseconds(50);
        std::optional<WaitTimer> timer;
        for (;;) {
            int status = 0;
            bool spinning = Clock::now() < spin_until;
            if (!spinning && !timer) timer.emplace(deadline);
            pid_t r = ::waitpid(tid_, &status, __WALL | (spinning ? WNOHANG : 0));
            if (r == 0) continue;  // not stopped yet (spinning)
            if (r == tid_) {
                if (WIFEXITED(status) || WIFSIGNALED(status)) {
                    gone_ = true;
                    return make_error(Errc::no_such_process, fmt::format("thread {} exited", tid_));
                }
                if (WIFSTOPPED(status)) {
                    int sig = WSTOPSIG(status);
                    int event = status >> 16;
                    // PTRACE_EVENT_STOP: our interrupt (SIGTRAP) or a group stop
                    // (SIGSTOP & co.), which the detach leaves in place. Anything
                    // else is a signal on its way in: pass it on at the detach.
                    if (event != PTRACE_EVENT_STOP) signal_ = sig;
                    stopped_ = true;
                    return ok_status();
                }
                continue;
            }
            if (r < 0 && errno != EINTR) {
                int e = errno;
                if (e == ECHILD) gone_ = true;
                return make_error(Errc::no_such_process,
                                  fmt::format("waiting for thread {}: {}", tid_, std::strerror(e)), e);
            }
            if (Clock::now() >= deadline)
                return make_error(Errc::io, fmt::format("thread {} did not stop in time (in "
                                                        "uninterruptible sleep?)",
                                                        tid_));
        }
    }

    int forwarded_signal() const { return signal_; }

    void release() {
        if (tid_ <= 0 || gone_) return;
        if (stopped_) {
            if (::ptrace(PTRACE_DETACH, tid_, nullptr, reinterpret_cast<void*>(static_cast<long>(signal_))) != 0 &&
                errno == ESRCH)
                reap_killed();
        } else {
            // Seized but not stopped: the kernel only detaches a stopped
            // tracee. Keep it for release_lingering(); our exit detaches it too.
            std::lock_guard lk(lingering_mutex);
            lingering.push_back(tid_);
        }
        tid_ = -1;
    }

private:
    // The detach found the thread no longer stopped: it was killed in the
    // stop (its process exited, another thread exec'd, or SIGKILL), and it
    // is now, or is about to be, a zombie that only its tracer may reap.
    // Until we reap it, its process cannot finish exiting (the parent is not
    // told, and attach never sees the exit), and an exec by another thread
    // of the process waits for it in the kernel (de_thread) -- while our next
    // PTRACE_SEIZE of that thread would wait for the exec: a deadlock. So
    // reap it now, for at most 100 ms; release_lingering() finishes the job.
    void reap_killed() {
        auto deadline = Clock::now() + std::chrono::milliseconds(100);
        WaitTimer timer(deadline);
        for (;;) {
            int status = 0;
            pid_t r = ::waitpid(tid_, &status, __WALL);
            if (r == tid_ && !WIFSTOPPED(status)) return;  // reaped
            if (r < 0 && errno == ECHILD) return;          // not ours any more
            if (r < 0 && errno != EINTR) break;
            if (Clock::now() >= deadline) break;
        }
        std::lock_guard lk(lingering_mutex);
        lingering.push_back(tid_);
    }

    pid_t tid_;
    bool stopped_ = false;
    bool gone_ = false;
    int signal_ = 0;
};

// The buffer the stack is read into inside the window: allocated and touched
// before any stop, so the window pays no allocation and no page fault.
std::vector<std::byte>& scratch(std::size_t size) {
    static thread_local std::vector<std::byte> buf;
    if (buf.size() < size) buf.assign(size, std::byte{0});
    return buf;
}

// Copies [sp - red zone, end of the stack mapping) capped at `max_bytes`
// into `buf`; returns the base address and the bytes read.
std::pair<RemoteAddr, std::size_t> copy_stack(MemoryReader& mem, const Registers& regs,
                                              const std::vector<Mapping>& maps,
                                              std::vector<std::byte>& buf, bool& reached_top) {
    RemoteAddr lo = regs.sp.value() >= red_zone ? regs.sp - red_zone : RemoteAddr{};
    RemoteAddr hi = lo + buf.size();
    const Mapping* m = find_mapping(maps, regs.sp);
    if (m) {
        lo = std::max(lo, m->start);
        if (m->end <= hi) {
            hi = m->end;
            reached_top = true;
        }
    }
    std::size_t got = mem.read(lo, std::span(buf.data(), static_cast<std::size_t>(hi - lo)));
    if (got > 0 && got < hi - lo) reached_top = true;  // end of readable memory
    return {lo, got};
}

}  // namespace

Result<CaptureOutcome> capture_thread(pid_t pid, pid_t tid, const std::vector<Mapping>& maps,
                                      const CaptureOptions& opt, const StillStalled& still_stalled) {
    auto memory = open_memory(pid);  // before the stop: it allocates
    return capture_thread(pid, tid, maps, opt, still_stalled, *memory);
}

Result<CaptureOutcome> capture_thread(pid_t pid, pid_t tid, const std::vector<Mapping>& maps,
                                      const CaptureOptions& opt, const StillStalled& still_stalled,
                                      MemoryReader& memory) {
    // A worker whose tid names no thread of the target (NamespaceIds gives 0):
    // never a pid ptrace could take for "any".
    if (tid <= 0) return make_error(Errc::no_such_process, "the thread exited (its id maps to no thread)", ESRCH);
    // No PTRACE_O_EXITKILL, no other option: if we die, the kernel detaches
    // and the thread runs on.
    {
        std::lock_guard lk(lingering_mutex);
        if (std::find(lingering.begin(), lingering.end(), tid) != lingering.end())
            return make_error(Errc::io, fmt::format("thread {} has still not stopped since the last attempt "
                                                    "(uninterruptible sleep?)",
                                                    tid));
    }
    auto& buf = scratch(opt.max_stack_bytes);
    RealtimeWindow priority;
    // Only a thread of the target is ever seized. The check and the seize are
    // two system calls, and between them the thread may exit and its tid be
    // given to a thread of another process. The kernel narrows and then
    // closes that gap: tids are handed out cyclically, so a tid comes back
    // only after pid_max others were allocated (here within microseconds, at
    // real-time priority); and once seized, the tid is pinned to the task we
    // trace: a traced thread that exits stays a zombie, reaped only by its
    // tracer (us), so its tid cannot change hands while we hold it. Checking
    // again after the seize is therefore exact. If that second check fails,
    // a foreign thread was seized in that gap: it is stopped only to be
    // detached at once (the kernel cannot detach a running tracee), and
    // nothing of it is read.
    if (!is_thread_of(pid, tid)) return not_a_thread_of(pid, tid);
    if (::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) return seize_error(pid, tid, errno);
    Seized guard(tid);
    if (!is_thread_of(pid, tid)) {
        if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0)
            (void)guard.wait_stop(Clock::now() + opt.stop_timeout);
        return not_a_thread_of(pid, tid);  // the guard detaches
    }
    if (test_seize_hold_us > 0) sleep_us(test_seize_hold_us);
    auto t0 = Clock::now();
    if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
        int e = errno;
        return make_error(e == ESRCH ? Errc::no_such_process : Errc::io,
                          fmt::format("ptrace(INTERRUPT) of thread {}: {}", tid, std::strerror(e)), e);
    }
    if (auto st = guard.wait_stop(t0 + opt.stop_timeout); !st) return std::move(st).error();
    const auto stop_seen = Clock::now();

    // ---- the window: only what must happen while the thread is frozen ----
    CaptureOutcome out;
    out.capture.pid = pid;
    out.capture.tid = tid;
    if (!read_registers(tid, out.capture.regs)) {
        int e = errno;
        return make_error(e == ESRCH ? Errc::no_such_process : Errc::io,
                          fmt::format("reading the registers of thread {}: {}", tid, std::strerror(e)), e);
    }
    auto [base, got] = copy_stack(memory, out.capture.regs, maps, buf, out.capture.stack.reached_top);
    // In a futex wait: the lock it waits on, as it is while the thread waits
    // (one small read; docs/locks.md).
    if (out.capture.regs.syscall == SYS_futex)
        out.capture.lock_read = memory.read(RemoteAddr{out.capture.regs.syscall_args[0]}, out.capture.lock_bytes);
    if (test_hold_us > 0) sleep_us(test_hold_us);
    if (still_stalled && !still_stalled()) out.dropped = true;
    out.capture.forwarded_signal = guard.forwarded_signal();
    guard.release();
    // ---- end of the window ----
    const auto detached = Clock::now();
    out.capture.stopped = detached - stop_seen;
    out.capture.stop_wait = stop_seen - t0;
    out.capture.stack.base = base;
    out.capture.stack.bytes.assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got));
    return out;
}

std::size_t release_lingering() {
    std::lock_guard lk(lingering_mutex);
    std::erase_if(lingering, [](pid_t tid) {
        int status = 0;
        pid_t r = ::waitpid(tid, &status, WNOHANG | __WALL);
        if (r == 0) return false;  // still not stopped
        if (r == tid && WIFSTOPPED(status)) {
            int sig = (status >> 16) == PTRACE_EVENT_STOP ? 0 : WSTOPSIG(status);
            ::ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
        }
        return true;  // detached, exited, or no longer ours
    });
    return lingering.size();
}

}  // namespace sw::proc
