// What a blocked thread waits on, and who holds it (docs/locks.md): from the
// system call the thread was stopped in (a futex wait, its word's address),
// the C library functions on its stack (which kind of lock), and for a glibc
// mutex the owner's thread id that glibc keeps in the mutex. Pure logic over
// a capture, its frames and a reader of the target's memory: the memory is
// the target's, so every value read is checked, and a thread id it names is
// believed only when it is a thread of the target.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/remote_addr.hpp"
#include "proc/capture.hpp"
#include "symbolize/symbolizer.hpp"

namespace sw::report {

enum class LockKind {
    mutex,               // pthread_mutex_t (std::mutex, std::recursive_mutex, std::timed_mutex ...)
    condition_variable,  // pthread_cond_t (std::condition_variable)
    rwlock,              // pthread_rwlock_t (std::shared_mutex)
    semaphore,           // sem_t (std::counting_semaphore in libstdc++ 12 is a bare futex: see futex)
    libc_internal,       // a lock inside the C library (stdio, malloc arenas, the loader)
    futex,               // a futex wait no known lock function made
};

// "mutex", "condition variable", "read-write lock", "semaphore", ...
std::string_view to_string(LockKind k);

struct LockWait {
    LockKind kind = LockKind::futex;
    RemoteAddr address;      // the lock (for a mutex, the pthread_mutex_t); else the futex word
    std::string function;    // the C library function that waits: "pthread_mutex_lock", "" if none known
    std::string mutex_type;  // a mutex: "normal", "recursive", "error-checking", "adaptive", and
                             // ", robust", ", priority-inheritance", ", priority-protect", ", process-shared"
    pid_t owner = 0;         // the holder, as this monitor names threads; > 0 only when known and checked
    pid_t owner_in_memory = 0;  // the thread id the mutex names (the target's own id), 0 when none
    std::string unknown;     // why the owner is not known, "" when it is
};

// Translates a thread id as the target names it (in its own PID namespace)
// into this monitor's id of that thread, or nullopt when the target has no
// such thread now.
using ThreadOfTarget = std::function<std::optional<pid_t>(pid_t id_in_target)>;

// What `regs` (a capture's registers) and `frames` (its stack, innermost
// first) say the thread waits on; nullopt when it is not in a futex wait.
// `executable` is the target's (report::classify). `lock_bytes` are the
// bytes at the futex address read while the thread was stopped
// (proc::ThreadCapture::lock_bytes), `waiter_in_target` the thread's own id
// as the target names it.
std::optional<LockWait> analyze_wait(const proc::Registers& regs, const std::vector<symbolize::Frame>& frames,
                                     const std::string& executable, std::span<const std::byte> lock_bytes,
                                     pid_t waiter_in_target, const ThreadOfTarget& thread_of);

// One line for people: "mutex 0x5581c0a0 (normal)", "condition variable 0x7ffd...".
std::string describe_lock(const LockWait& w);

// The holder of a lock a stalled thread waits on, as captured just after it.
struct LockHolder {
    pid_t tid = 0;
    pid_t ns_tid = 0;          // its id in the target's namespace, when that differs; else 0
    std::string name;          // worker name if registered, else thread name
    bool registered = false;   // a worker of the table
    std::vector<symbolize::Frame> frames;
    std::string stopped_early;
    std::string capture_error;  // set when its stack could not be taken
    std::chrono::nanoseconds stop_window{};
    std::optional<LockWait> waits;  // what the holder itself waits on
};

// A cycle of threads each waiting for a mutex the next one holds.
struct DeadlockLink {
    pid_t tid = 0;
    pid_t ns_tid = 0;
    std::string name;
    bool registered = false;
    LockWait waits;            // the mutex it waits for (its owner is the next link's thread)
    std::string at;            // its first application frame: "update_db (pool.c:27)", "" if none
};

struct Deadlock {
    std::vector<DeadlockLink> cycle;  // in wait order: each waits for a mutex held by the next; the last by the first
    // A stable identity of the cycle, the same whichever thread it is found from.
    std::string key() const;
};

}  // namespace sw::report
