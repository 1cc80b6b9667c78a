// Linux: one thread stopped with PTRACE_SEIZE + PTRACE_INTERRUPT, owned by a
// guard whose destructor detaches on every path.
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

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

// Whether any task but the caller is runnable on the machine now: the
// fourth field of /proc/loadavg ("R/T", R counting the caller). True when it
// cannot be read. The file is kept open: one pread before each capture.
bool others_runnable() {
    static const int fd = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;
    char text[128];
    ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
    if (n <= 0) return true;
    text[n] = '\0';
    const char* slash = std::strchr(text, '/');
    if (!slash) return true;
    const char* p = slash;
    while (p > text && p[-1] >= '0' && p[-1] <= '9') --p;
    if (p == slash) return true;
    return std::strtol(p, nullptr, 10) > 1;
}

// For the length of the capture, run at the lowest real-time priority when
// we may (root or CAP_SYS_NICE) and another task is runnable: a tracer
// preempted inside the window keeps the target thread stopped for a time
// slice. When nothing else is runnable nothing can preempt the tracer, and
// the priority would only cost time: the detach would then wake the thread
// on another CPU instead of queueing it here, and waking an idle CPU (a
// vCPU) inside the PTRACE_DETACH measured 2-3 us (docs/capture.md 5.1).
// Nothing changes when the priority may not be raised. The current policy
// is read at construction, so that raise() is a single system call; the
// destructor puts it back.
class RealtimeWindow {
public:
    RealtimeWindow() {
        old_policy_ = ::sched_getscheduler(0);
        may_raise_ = old_policy_ == SCHED_OTHER && ::sched_getparam(0, &old_) == 0 && others_runnable();
    }
    void raise() {
        if (!may_raise_ || raised_) return;
        sched_param p{};
        p.sched_priority = 1;
        raised_ = ::sched_setscheduler(0, SCHED_FIFO, &p) == 0;
    }
    void restore() {
        if (raised_) ::sched_setscheduler(0, old_policy_, &old_);
        raised_ = false;
    }
    ~RealtimeWindow() { restore(); }
    RealtimeWindow(const RealtimeWindow&) = delete;
    RealtimeWindow& operator=(const RealtimeWindow&) = delete;

private:
    int old_policy_ = SCHED_OTHER;
    sched_param old_{};
    bool may_raise_ = false;
    bool raised_ = false;
};

// Owns the tracing of one thread from PTRACE_SEIZE until the detach.
class Seized {
public:
    explicit Seized(pid_t tid) : tid_(tid) {}
    Seized(const Seized&) = delete;
    Seized& operator=(const Seized&) = delete;
    ~Seized() { release(); }

    // Waits for the stop that PTRACE_INTERRUPT (or a signal) causes, in a
    // blocking wait: the caller holds a WaitTimer that ends it at the
    // deadline. Never a polling loop: a thread woken by the interrupt is
    // usually placed on the tracer's own CPU, where a polling tracer keeps
    // it from running (at real-time priority, or for its whole spin), and
    // measured side by side a blocking wait was as quick to see the stop of
    // a thread running on another CPU (docs/capture.md 5.1).
    Status wait_stop(Clock::time_point deadline) {
        for (;;) {
            int status = 0;
            pid_t r = ::waitpid(tid_, &status, __WALL);
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

// The part of the stack to copy: [sp - red zone, end of the stack mapping),
// capped at `cap` bytes. `reached_top` when that is the mapping's end.
struct StackRange {
    RemoteAddr lo;
    std::size_t size = 0;
    bool reached_top = false;
};

StackRange stack_range(const Registers& regs, const std::vector<Mapping>& maps, std::size_t cap) {
    RemoteAddr lo = regs.sp.value() >= red_zone ? regs.sp - red_zone : RemoteAddr{};
    RemoteAddr hi = lo + cap;
    bool top = false;
    if (const Mapping* m = find_mapping(maps, regs.sp)) {
        lo = std::max(lo, m->start);
        if (m->end <= hi) {
            hi = m->end;
            top = true;
        }
    }
    return {lo, static_cast<std::size_t>(hi - lo), top};
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
    // Where the check's bytes are, found before the stop.
    std::optional<RemoteAddr> check_at;
    std::array<std::byte, 64> check_bytes{};
    std::size_t check_size = 0;
    if (still_stalled && still_stalled.read_with_stack && still_stalled.read_with_stack->size <= check_bytes.size()) {
        check_at = find_mapped(maps, *still_stalled.read_with_stack);
        check_size = still_stalled.read_with_stack->size;
    }
    // Ends a wait for the stop at the deadline. Armed before the seize and
    // deleted after the detach: its system calls delay neither the stop nor
    // the detach.
    // One deadline for the timer and for every wait below.
    const auto deadline = Clock::now() + opt.stop_timeout;
    WaitTimer timer(deadline);
    RealtimeWindow priority;  // raised once the interrupt is sent
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
            (void)guard.wait_stop(deadline);
        return not_a_thread_of(pid, tid);  // the guard detaches
    }
    if (test_seize_hold_us > 0) sleep_us(test_seize_hold_us);
    auto t0 = Clock::now();
    if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
        int e = errno;
        return make_error(e == ESRCH ? Errc::no_such_process : Errc::io,
                          fmt::format("ptrace(INTERRUPT) of thread {}: {}", tid, std::strerror(e)), e);
    }
    // Only now: a thread that the interrupt wakes is then placed on this CPU
    // and runs as soon as we block. Raised before the interrupt, it went to
    // the other CPU instead, and waking an idle CPU (a vCPU) took longer than
    // the whole window (docs/capture.md 5.1).
    priority.raise();
    if (auto st = guard.wait_stop(deadline); !st) return std::move(st).error();
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
    // One process_vm_readv, in this order: the still-stalled check's bytes
    // (the worker's slot where the target maps the table), the stack, and in
    // a futex wait the lock it waits on, as it is while the thread waits
    // (docs/locks.md). A range that cannot be read ends the call there, so
    // what follows it is read again on its own.
    const auto range = stack_range(out.capture.regs, maps, buf.size());
    const bool futex = out.capture.regs.syscall == SYS_futex;
    const MemoryReader::Range ranges[] = {
        {check_at.value_or(RemoteAddr{}), std::span(check_bytes.data(), check_at ? check_size : 0)},
        {range.lo, std::span(buf.data(), range.size)},
        {RemoteAddr{out.capture.regs.syscall_args[0]}, futex ? std::span(out.capture.lock_bytes) : std::span<std::byte>{}},
    };
    std::size_t read = memory.read_ranges(ranges);
    std::size_t check_got = 0, got = 0;
    if (read >= ranges[0].out.size()) {
        check_got = ranges[0].out.size();
        read -= check_got;
        got = std::min(read, range.size);
        read -= got;
        if (got == range.size) out.capture.lock_read = read;
        else if (futex) out.capture.lock_read = memory.read(ranges[2].addr, ranges[2].out);
    } else {
        got = memory.read(range.lo, ranges[1].out);
        if (futex) out.capture.lock_read = memory.read(ranges[2].addr, ranges[2].out);
    }
    if (test_hold_us > 0) sleep_us(test_hold_us);
    if (still_stalled && !still_stalled(std::span<const std::byte>(check_bytes.data(), check_got))) out.dropped = true;
    out.capture.forwarded_signal = guard.forwarded_signal();
    guard.release();
    // ---- end of the window ----
    const auto detached = Clock::now();
    priority.restore();  // at once: the thread may be queued behind us
    out.capture.stopped = detached - stop_seen;
    out.capture.stop_wait = stop_seen - t0;
    out.capture.stack.base = range.lo;
    out.capture.stack.reached_top = range.reached_top || (got > 0 && got < range.size);
    out.capture.stack.bytes.assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got));
    return out;
}

void prewarm_capture(const CaptureOptions& opt) {
    // Nothing here is stopped or traced: each call fails at once (ESRCH,
    // ECHILD) or reads our own memory, but runs the code a capture runs.
    (void)scratch(opt.max_stack_bytes);
    const pid_t self = static_cast<pid_t>(::gettid());
    { WaitTimer timer(Clock::now() + std::chrono::seconds(1)); }
    { RealtimeWindow priority; }
    Registers regs;
    (void)read_registers(self, regs);
    int status = 0;
    (void)::waitpid(self, &status, WNOHANG | __WALL);
    std::array<std::byte, 64> a{}, b{};
    const MemoryReader::Range ranges[] = {
        {RemoteAddr{reinterpret_cast<std::uintptr_t>(b.data())}, std::span(a)},
        {RemoteAddr{reinterpret_cast<std::uintptr_t>(a.data())}, std::span(b)},
    };
    auto memory = open_memory(::getpid());
    (void)memory->read_ranges(ranges);
    (void)stack_range(regs, {}, opt.max_stack_bytes);
    (void)::ptrace(PTRACE_DETACH, self, nullptr, nullptr);
    (void)Clock::now();
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
