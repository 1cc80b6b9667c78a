// Capturing one thread with the shortest possible stop: registers and a copy
// of the live part of its stack, taken while the thread is frozen, then the
// thread is let go. Unwinding happens afterwards, from the copy.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "common/remote_addr.hpp"
#include "common/result.hpp"
#include "proc/maps.hpp"
#include "proc/memory.hpp"

namespace sw::proc {

// General registers in DWARF numbering for the host architecture.
struct Registers {
    static constexpr std::size_t max = 32;
    std::array<std::uint64_t, max> dwarf{};
    RemoteAddr pc;
    RemoteAddr sp;
    // The system call the thread was in when it stopped (its number and
    // first six arguments), syscall < 0 when it stopped outside one. What a
    // blocked thread waits on (report/locks.hpp) is read from these.
    long syscall = -1;
    std::array<std::uint64_t, 6> syscall_args{};
};

struct StackCopy {
    RemoteAddr base;                // target address of bytes[0]
    std::vector<std::byte> bytes;   // [base, base + size) of the target's stack
    bool reached_top = false;       // the copy ends where the stack mapping ends

    bool contains(RemoteAddr addr, std::size_t len) const {
        return addr >= base && addr - base <= bytes.size() && bytes.size() - (addr - base) >= len;
    }
};

struct ThreadCapture {
    pid_t pid = 0;
    pid_t tid = 0;
    Registers regs;
    StackCopy stack;
    // How long the thread was frozen: from the moment the stop was seen to
    // the detach. And before it, how long the stop took to come after
    // PTRACE_INTERRUPT: the thread runs (or waits for a CPU) meanwhile, and
    // on a busy machine that can take milliseconds (docs/capture.md).
    std::chrono::nanoseconds stopped{};
    std::chrono::nanoseconds stop_wait{};
    // Stopped in a futex wait: the bytes at the futex address, read while it
    // was stopped (a lock's state must be the one it waited on, not a later
    // one: report/locks.hpp). `lock_read` counts the bytes read, 0 when none.
    std::array<std::byte, 40> lock_bytes{};
    std::size_t lock_read = 0;
    int forwarded_signal = 0;            // a signal that arrived during the stop, passed on
};

struct CaptureOptions {
    std::size_t max_stack_bytes = 512 * 1024;
    std::chrono::milliseconds stop_timeout{500};
};

// Called while the thread is stopped, after the copy: false drops the sample
// (the worker moved on its own, so what we hold is not the stall).
//
// `read_with_stack`, when set and mapped by the target, is read inside the
// window together with the stack (one process_vm_readv for both) and handed
// to `check`; `check` gets an empty span when it was not set, not mapped, or
// could not be read, and must then read on its own.
struct StillStalled {
    std::function<bool(std::span<const std::byte> read_with_stack)> check;
    std::optional<MappedFileBytes> read_with_stack;

    StillStalled() = default;
    template <class F>
        requires std::is_invocable_r_v<bool, F&, std::span<const std::byte>>
    StillStalled(F f, std::optional<MappedFileBytes> bytes = std::nullopt)
        : check(std::move(f)), read_with_stack(bytes) {}
    template <class F>
        requires(std::is_invocable_r_v<bool, F&> && !std::is_invocable_v<F&, std::span<const std::byte>>)
    StillStalled(F f) : check([f = std::move(f)](std::span<const std::byte>) mutable { return f(); }) {}

    explicit operator bool() const { return static_cast<bool>(check); }
    bool operator()(std::span<const std::byte> bytes = {}) const { return check(bytes); }
};

// Stops thread `tid` of process `pid` (PTRACE_SEIZE + PTRACE_INTERRUPT),
// copies registers and stack, detaches. `maps` (read before the stop) bounds
// the stack copy. Errors: no_such_process (the thread exited: skip it),
// permission_denied (with the reason: another tracer, Yama, ...), io.
struct CaptureOutcome {
    bool dropped = false;  // still_stalled said no
    ThreadCapture capture;
};
Result<CaptureOutcome> capture_thread(pid_t pid, pid_t tid, const std::vector<Mapping>& maps,
                                      const CaptureOptions& opt, const StillStalled& still_stalled);
// The same, with the stack read through `memory` (the target's reader).
Result<CaptureOutcome> capture_thread(pid_t pid, pid_t tid, const std::vector<Mapping>& maps,
                                      const CaptureOptions& opt, const StillStalled& still_stalled,
                                      MemoryReader& memory);

// Runs the code of a capture's window once, with no thread stopped, so that
// the first capture of a fresh monitor does not take page faults on it inside
// the window: the stack buffer, the system call wrappers, the timer, the
// priority check. Cheap (microseconds); call it before the first capture.
void prewarm_capture(const CaptureOptions& opt);

// Threads we attached to that did not stop in time (a thread in
// uninterruptible sleep): they cannot be detached until they stop. Each call
// detaches those that have stopped since. Returns how many are still pending.
std::size_t release_lingering();

}  // namespace sw::proc
