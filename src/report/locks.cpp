#include "report/locks.hpp"

#include <sys/syscall.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <span>

#include "report/classify.hpp"
#include "report/report.hpp"

namespace sw::report {
namespace {

// The futex commands that wait (linux/futex.h), without the private and
// clock flags.
constexpr std::uint64_t futex_cmd_mask = ~std::uint64_t{128 | 256};
constexpr std::uint64_t futex_wait = 0, futex_lock_pi = 6, futex_wait_bitset = 9, futex_wait_requeue_pi = 11,
                        futex_lock_pi2 = 13;

// glibc's pthread_mutex_t on x86-64 (struct __pthread_mutex_s, stable ABI):
// int __lock; unsigned __count; int __owner; unsigned __nusers; int __kind;
// short __spins, __elision; a list of two pointers. The futex word of
// every kind is __lock, at the start: the waiter's futex address is the mutex.
constexpr std::size_t mutex_size = 40;
constexpr std::size_t lock_at = 0, owner_at = 8, kind_at = 16;
// __kind: the type in the low two bits, then flags.
constexpr int kind_type_mask = 3, kind_robust = 16, kind_prio_inherit = 32, kind_prio_protect = 64,
              kind_pshared = 128, kind_elision = 256, kind_no_elision = 512;
constexpr int kind_known = kind_type_mask | kind_robust | kind_prio_inherit | kind_prio_protect | kind_pshared |
                           kind_elision | kind_no_elision;
// The owner of a robust or priority-inheritance mutex is also in its lock
// word, under these flag bits.
constexpr std::uint32_t futex_tid_mask = 0x3fffffff;
// __owner of a robust mutex whose owner died, or that can no longer be used.
constexpr int owner_inconsistent = 0x7fffffff, owner_not_recoverable = 0x7ffffffe;
// The largest thread id Linux hands out (PID_MAX_LIMIT).
constexpr int max_tid = 4 * 1024 * 1024;

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool has(std::string_view s, std::string_view p) { return s.find(p) != std::string_view::npos; }

// Which lock a C library function that waits belongs to, by its name
// without version, clone suffix and leading underscores (canonical_function).
std::optional<LockKind> kind_of_function(std::string_view f) {
    if (starts_with(f, "pthread_mutex_") && has(f, "lock") && !has(f, "unlock") && !has(f, "trylock"))
        return LockKind::mutex;
    if (starts_with(f, "pthread_cond_") && has(f, "wait")) return LockKind::condition_variable;
    if (starts_with(f, "pthread_rwlock_") && has(f, "lock") && !has(f, "unlock") && !has(f, "try"))
        return LockKind::rwlock;
    if ((starts_with(f, "sem_") || starts_with(f, "new_sem_")) && has(f, "wait") && !has(f, "trywait"))
        return LockKind::semaphore;
    if (f == "lll_lock_wait_private") return LockKind::libc_internal;
    return std::nullopt;
}

std::string mutex_type(int kind) {
    static constexpr const char* types[] = {"normal", "recursive", "error-checking", "adaptive"};
    std::string t = types[kind & kind_type_mask];
    if (kind & kind_robust) t += ", robust";
    if (kind & kind_prio_inherit) t += ", priority-inheritance";
    if (kind & kind_prio_protect) t += ", priority-protect";
    // glibc marks every robust mutex shared (the kernel wakes its waiters
    // when the owner dies): only a non-robust one says it was made so.
    if ((kind & kind_pshared) && !(kind & kind_robust)) t += ", process-shared";
    return t;
}

template <class T>
T field(const std::byte* bytes, std::size_t at) {
    T v;
    std::memcpy(&v, bytes + at, sizeof v);
    return v;
}

// Fills in the mutex's type and owner from its bytes (read while the waiter
// was stopped), or why the owner is not known. `waiter` is the waiting
// thread, as the target names it.
void read_mutex_owner(LockWait& w, std::span<const std::byte> bytes, pid_t waiter_in_target,
                      const ThreadOfTarget& thread_of) {
    if (bytes.size() < mutex_size) {
        w.unknown = fmt::format("the mutex at {:#x} could not be read", w.address.value());
        return;
    }
    const auto lock = field<std::uint32_t>(bytes.data(), lock_at);
    const auto owner = field<std::int32_t>(bytes.data(), owner_at);
    const auto kind = field<std::int32_t>(bytes.data(), kind_at);
    if ((kind & ~kind_known) != 0) {
        w.unknown = fmt::format("the bytes at {:#x} are not a glibc mutex (kind {:#x}): owner unknown",
                                w.address.value(), static_cast<std::uint32_t>(kind));
        return;
    }
    w.mutex_type = mutex_type(kind);
    if (owner == owner_inconsistent || owner == owner_not_recoverable) {
        w.unknown = owner == owner_inconsistent ? "its owner died holding it (a robust mutex, now inconsistent)"
                                                : "it can no longer be locked (a robust mutex left unrecoverable)";
        return;
    }
    if (lock == 0 || owner == 0) {
        w.unknown = "it shows no owner: it was let go as the thread stopped";
        return;
    }
    if (owner < 0 || owner > max_tid) {
        w.unknown = fmt::format("it names {} as its owner, which is no thread id: not trusted", owner);
        return;
    }
    if ((kind & (kind_robust | kind_prio_inherit)) != 0 &&
        static_cast<std::int32_t>(lock & futex_tid_mask) != owner) {
        w.unknown = fmt::format("its lock word names tid {} and its owner field tid {}: owner unknown",
                                lock & futex_tid_mask, owner);
        return;
    }
    // A recursive mutex lets its owner in again, an error-checking one says
    // EDEADLK: neither waits for itself. Bytes that say so are not glibc's.
    const int type = kind & kind_type_mask;
    if (owner == waiter_in_target && (type == 1 || type == 2)) {
        w.unknown = fmt::format("it names the waiting thread itself as its owner, which a {} mutex never "
                                "does: owner unknown",
                                type == 1 ? "recursive" : "error-checking");
        return;
    }
    w.owner_in_memory = owner;
    auto ours = thread_of(owner);
    if (!ours) {
        w.unknown = (kind & kind_pshared)
                        ? fmt::format("it names tid {}, not a thread of this process (the mutex is "
                                      "process-shared or robust: another process may hold it)",
                                      owner)
                        : fmt::format("it names tid {}, which is not a thread of this process: not trusted",
                                      owner);
        return;
    }
    w.owner = *ours;
}

// glibc's C library (libpthread before 2.34): the only one whose mutex
// layout is read.
bool is_glibc(const symbolize::Frame& f) {
    const auto name = basename_of(f.module);
    return name == "libc.so.6" || name == "libpthread.so.0";
}

}  // namespace

std::string_view to_string(LockKind k) {
    switch (k) {
    case LockKind::mutex: return "mutex";
    case LockKind::condition_variable: return "condition variable";
    case LockKind::rwlock: return "read-write lock";
    case LockKind::semaphore: return "semaphore";
    case LockKind::libc_internal: return "C library lock";
    case LockKind::futex: return "futex";
    }
    return "futex";
}

std::optional<LockWait> analyze_wait(const proc::Registers& regs, const std::vector<symbolize::Frame>& frames,
                                     const std::string& executable, std::span<const std::byte> lock_bytes,
                                     pid_t waiter_in_target, const ThreadOfTarget& thread_of) {
    if (regs.syscall != SYS_futex) return std::nullopt;
    const std::uint64_t cmd = regs.syscall_args[1] & futex_cmd_mask;
    if (cmd != futex_wait && cmd != futex_wait_bitset && cmd != futex_lock_pi && cmd != futex_lock_pi2 &&
        cmd != futex_wait_requeue_pi)
        return std::nullopt;
    LockWait w;
    w.address = RemoteAddr{regs.syscall_args[0]};
    // The innermost C library function that names a lock decides, looking
    // no further than the first application frame: glibc's mutex lock waits
    // in __lll_lock_wait, a condition variable that wakes takes its mutex
    // back in __pthread_mutex_cond_lock, and so on.
    const symbolize::Frame* decided_by = nullptr;
    for (const auto& f : frames) {
        if (classify(f, executable) == FrameClass::application) break;
        if (f.function.empty()) continue;
        const std::string name = canonical_function(f.function);
        if (auto k = kind_of_function(name)) {
            w.kind = *k;
            w.function = name;
            decided_by = &f;
            break;
        }
    }
    switch (w.kind) {
    case LockKind::mutex:
        if (decided_by && is_glibc(*decided_by))
            read_mutex_owner(w, lock_bytes, waiter_in_target, thread_of);
        else
            w.unknown = "a mutex of a C library other than glibc (or linked into a static executable): its "
                        "layout is not known, so its owner is not read";
        break;
    case LockKind::condition_variable:
        w.unknown = "a condition variable has no owner: the thread waits until another signals it";
        break;
    case LockKind::rwlock:
        w.unknown = "glibc does not record which threads hold a read-write lock";
        break;
    case LockKind::semaphore:
        w.unknown = "a semaphore has no owner: the thread waits until another posts it";
        break;
    case LockKind::libc_internal:
        w.unknown = "the C library does not record who holds its internal locks";
        break;
    case LockKind::futex:
        w.unknown = "a futex wait of no lock stallwatch knows (another library's lock, or not glibc): "
                    "its owner is not recorded anywhere stallwatch can read";
        break;
    }
    return w;
}

std::string describe_lock(const LockWait& w) {
    std::string s = fmt::format("{} {:#x}", to_string(w.kind), w.address.value());
    if (!w.mutex_type.empty()) s += fmt::format(" ({})", w.mutex_type);
    return s;
}

std::string Deadlock::key() const {
    // The cycle starting at its smallest thread id: the same from any member.
    if (cycle.empty()) return {};
    auto first = std::min_element(cycle.begin(), cycle.end(),
                                  [](const DeadlockLink& a, const DeadlockLink& b) { return a.tid < b.tid; });
    std::string k;
    for (std::size_t n = 0, i = static_cast<std::size_t>(first - cycle.begin()); n < cycle.size();
         ++n, i = (i + 1) % cycle.size())
        k += fmt::format("{}>{:#x};", cycle[i].tid, cycle[i].waits.address.value());
    return k;
}

}  // namespace sw::report
