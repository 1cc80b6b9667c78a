// report/locks.hpp and report/incidents.hpp: what a futex wait means and
// whether a mutex's owner is believed, over bytes the tests make (the
// target's memory is untrusted); and how stalls group into incidents.
#include <doctest/doctest.h>

#include <sys/syscall.h>

#include <cstring>
#include <map>
#include <optional>

#include "report/incidents.hpp"
#include "report/locks.hpp"

using namespace sw;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kMutexAt = 0x5000;
constexpr pid_t kHolder = 4242, kWaiter = 4243;
const std::string kExe = "/srv/pool";

symbolize::Frame libc(const std::string& function) {
    symbolize::Frame f;
    f.function = function;
    f.module = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    f.pc = 0x7f0000001000;
    return f;
}

symbolize::Frame app(const std::string& function) {
    symbolize::Frame f;
    f.function = function;
    f.module = kExe;
    f.pc = 0x555500001000;
    return f;
}

// glibc's pthread_mutex_t bytes: __lock, __count, __owner, __nusers, __kind.
std::vector<std::byte> mutex_bytes(std::uint32_t lock, std::int32_t owner, std::int32_t kind) {
    std::vector<std::byte> b(40);
    std::memcpy(b.data(), &lock, 4);
    std::memcpy(b.data() + 8, &owner, 4);
    std::memcpy(b.data() + 16, &kind, 4);
    return b;
}

proc::Registers in_futex(std::uint64_t uaddr, std::uint64_t op = 128 /* FUTEX_WAIT | FUTEX_PRIVATE_FLAG */) {
    proc::Registers r;
    r.syscall = SYS_futex;
    r.syscall_args = {uaddr, op, 2, 0, 0, 0};
    return r;
}

const std::vector<symbolize::Frame> kMutexStack = {libc("futex_wait"), libc("__GI___lll_lock_wait"),
                                                   libc("___pthread_mutex_lock"), app("update_db")};

// The target's threads: only kHolder and kWaiter exist.
std::optional<pid_t> threads_of_target(pid_t id) {
    if (id == kHolder || id == kWaiter) return id;
    return std::nullopt;
}

// `mutex`: the bytes at the futex address as read while the waiter was stopped.
std::optional<report::LockWait> analyze(const std::vector<std::byte>& mutex,
                                        const std::vector<symbolize::Frame>& frames = kMutexStack,
                                        proc::Registers regs = in_futex(kMutexAt)) {
    return report::analyze_wait(regs, frames, kExe, mutex, kWaiter, threads_of_target);
}

}  // namespace

TEST_CASE("locks: a thread of the target that holds a glibc mutex is its owner, for every kind") {
    struct Kind {
        std::int32_t kind;
        std::uint32_t lock;
        const char* type;
    };
    for (const Kind& k : {Kind{0, 2, "normal"}, Kind{1, 2, "recursive"}, Kind{2, 1, "error-checking"},
                          Kind{3, 2, "adaptive"}, Kind{16 | 128, 0x80000000u | kHolder, "normal, robust"},
                          Kind{32, kHolder, "normal, priority-inheritance"},
                          Kind{128, 2, "normal, process-shared"}}) {
        CAPTURE(k.type);
        auto w = analyze(mutex_bytes(k.lock, kHolder, k.kind));
        REQUIRE(w.has_value());
        CHECK(w->kind == report::LockKind::mutex);
        CHECK(w->function == "pthread_mutex_lock");
        CHECK(w->address == RemoteAddr{kMutexAt});
        CHECK(w->mutex_type == k.type);
        CHECK(w->owner == kHolder);
        CHECK(w->unknown.empty());
    }
}

TEST_CASE("locks: hostile or stale mutex bytes never name an owner") {
    auto unknown = [](const std::vector<std::byte>& bytes) {
        auto w = analyze(bytes);
        REQUIRE(w.has_value());
        CHECK(w->owner == 0);
        CHECK(!w->unknown.empty());
        return w->unknown;
    };
    // A thread id that is no thread of the target (another process's, pid 1).
    CHECK(unknown(mutex_bytes(2, 1, 0)).find("not a thread of this process: not trusted") != std::string::npos);
    CHECK(unknown(mutex_bytes(2, 99999, 128)).find("process-shared or robust") != std::string::npos);
    // Not a thread id at all.
    CHECK(unknown(mutex_bytes(2, -5, 0)).find("which is no thread id") != std::string::npos);
    CHECK(unknown(mutex_bytes(2, 0x3fffffff, 0)).find("which is no thread id") != std::string::npos);
    // A kind glibc does not have: not a glibc mutex.
    CHECK(unknown(mutex_bytes(2, kHolder, 0x4000)).find("not a glibc mutex") != std::string::npos);
    // Let go as it was read.
    CHECK(unknown(mutex_bytes(0, 0, 0)).find("let go") != std::string::npos);
    CHECK(unknown(mutex_bytes(2, 0, 0)).find("let go") != std::string::npos);
    // A robust mutex whose lock word and owner field disagree.
    CHECK(unknown(mutex_bytes(0x80000000u | kWaiter, kHolder, 16 | 128)).find("its lock word names tid 4243") !=
          std::string::npos);
    // glibc's marks for a robust mutex whose owner died.
    CHECK(unknown(mutex_bytes(0x40000000u, 0x7fffffff, 16 | 128)).find("owner died") != std::string::npos);
    // Memory that could not be read at the stop, or only in part.
    CHECK(unknown({}).find("could not be read") != std::string::npos);
    CHECK(unknown(std::vector<std::byte>(12)).find("could not be read") != std::string::npos);
    // A recursive or error-checking mutex never makes its owner wait.
    CHECK(unknown(mutex_bytes(2, kWaiter, 1)).find("never does") != std::string::npos);
    CHECK(unknown(mutex_bytes(2, kWaiter, 2)).find("never does") != std::string::npos);
    // ... a normal one does: a thread that locks it twice waits for itself.
    auto self = analyze(mutex_bytes(2, kWaiter, 0));
    REQUIRE(self.has_value());
    CHECK(self->owner == kWaiter);
}

TEST_CASE("locks: a mutex of another C library is not read as glibc's") {
    auto musl = [](const std::string& function) {
        auto f = libc(function);
        f.module = "/lib/ld-musl-x86_64.so.1";
        return f;
    };
    auto w = analyze(mutex_bytes(2, kHolder, 0), {musl("__futexwait"), musl("pthread_mutex_lock"), app("update_db")});
    REQUIRE(w.has_value());
    CHECK(w->kind == report::LockKind::mutex);
    CHECK(w->owner == 0);
    CHECK(w->unknown.find("other than glibc") != std::string::npos);
}

TEST_CASE("locks: the kind of wait comes from the innermost lock function, the owner only from a mutex") {
    const auto bytes = mutex_bytes(2, kHolder, 0);
    auto kind_of = [&](const std::vector<symbolize::Frame>& frames) {
        auto w = analyze(bytes, frames);
        REQUIRE(w.has_value());
        if (w->kind != report::LockKind::mutex) CHECK(w->owner == 0);
        return w->kind;
    };
    using K = report::LockKind;
    CHECK(kind_of({libc("__futex_abstimed_wait_common"), libc("__pthread_cond_wait_common"),
                   libc("pthread_cond_wait@@GLIBC_2.3.2"), app("wait_for_job")}) == K::condition_variable);
    // A condition variable that woke and takes its mutex back waits for the mutex.
    CHECK(kind_of({libc("__lll_lock_wait"), libc("__pthread_mutex_cond_lock"), libc("__pthread_cond_wait_common"),
                   libc("pthread_cond_wait"), app("wait_for_job")}) == K::mutex);
    CHECK(kind_of({libc("__futex_abstimed_wait_common"), libc("__pthread_rwlock_rdlock_full64"),
                   libc("pthread_rwlock_rdlock"), app("read_config")}) == K::rwlock);
    CHECK(kind_of({libc("__futex_abstimed_wait_common"), libc("do_futex_wait"), libc("__new_sem_wait_slow64"),
                   app("take_slot")}) == K::semaphore);
    CHECK(kind_of({libc("__lll_lock_wait_private"), libc("_IO_flockfile"), app("log_line")}) == K::libc_internal);
    // A futex wait with no lock function before the application's frames
    // (the same name further out, called by the application, does not count).
    CHECK(kind_of({libc("syscall"), app("my_own_lock"), libc("pthread_mutex_lock"), app("update_db")}) == K::futex);
    CHECK(kind_of({}) == K::futex);
}

TEST_CASE("locks: no lock outside a futex wait") {
    const auto bytes = mutex_bytes(2, kHolder, 0);
    proc::Registers outside;  // stopped in user space
    CHECK(!analyze(bytes, kMutexStack, outside).has_value());
    proc::Registers nanosleep = in_futex(kMutexAt);
    nanosleep.syscall = SYS_nanosleep;
    CHECK(!analyze(bytes, kMutexStack, nanosleep).has_value());
    // A futex call that wakes, not waits.
    CHECK(!analyze(bytes, kMutexStack, in_futex(kMutexAt, 1 | 128)).has_value());
    // FUTEX_WAIT_BITSET with the clock flag, and FUTEX_LOCK_PI, are waits.
    CHECK(analyze(bytes, kMutexStack, in_futex(kMutexAt, 9 | 128 | 256)).has_value());
    CHECK(analyze(bytes, kMutexStack, in_futex(kMutexAt, 6)).has_value());
}

TEST_CASE("locks: a deadlock's key is the same from whichever thread it was found") {
    report::Deadlock a, b;
    auto link = [](pid_t tid, std::uint64_t lock) {
        report::DeadlockLink l;
        l.tid = tid;
        l.waits.address = RemoteAddr{lock};
        return l;
    };
    a.cycle = {link(10, 0xa), link(11, 0xb), link(12, 0xc)};
    b.cycle = {link(12, 0xc), link(10, 0xa), link(11, 0xb)};
    CHECK(a.key() == b.key());
    report::Deadlock other;
    other.cycle = {link(10, 0xb), link(11, 0xa)};
    CHECK(other.key() != a.key());
}

namespace {

report::StallReport stall_at(std::uint64_t episode, const std::string& function, std::chrono::milliseconds stalled,
                             detect::EventKind kind = detect::EventKind::stall) {
    report::StallReport r;
    r.event.kind = kind;
    r.event.episode = episode;
    r.event.stalled_for = stalled;
    r.target.executable = kExe;
    r.frames = {libc("futex_wait"), app(function), app("worker_main")};
    return r;
}

detect::Event ended(std::uint64_t episode, std::chrono::milliseconds stalled) {
    detect::Event e;
    e.kind = detect::EventKind::recovered;
    e.episode = episode;
    e.stalled_for = stalled;
    return e;
}

}  // namespace

TEST_CASE("incidents: the same stack while one goes on is one incident, said when it grows and when it ends") {
    report::Incidents in;
    auto t0 = std::chrono::steady_clock::time_point{} + 100s;
    auto a = stall_at(1, "update_db", 100ms);
    in.place(a, t0);
    CHECK(a.event.incident == 1);
    CHECK(!a.event.joined);
    CHECK(in.take_news(t0).empty());  // one stall: nothing to add

    auto b = stall_at(2, "update_db", 100ms), other = stall_at(3, "read_config", 100ms);
    in.place(b, t0 + 10ms);
    in.place(other, t0 + 10ms);
    CHECK(b.event.incident == 1);
    CHECK(b.event.joined);
    CHECK(other.event.incident == 3);  // another stack: an incident of its own
    CHECK(!other.event.joined);
    auto news = in.take_news(t0 + 10ms);
    REQUIRE(news.size() == 1);
    CHECK(news[0].id == 1);
    CHECK(news[0].workers == 2);
    CHECK(news[0].open == 2);
    CHECK(news[0].at == "update_db");
    CHECK(!news[0].ended);

    // An update of a joined stall keeps its incident.
    auto b2 = stall_at(2, "update_db", 400ms, detect::EventKind::stall_update);
    in.place(b2, t0 + 300ms);
    CHECK(b2.event.incident == 1);
    CHECK(b2.event.joined);

    auto e1 = ended(1, 2000ms), e2 = ended(2, 1900ms);
    in.close(e1, t0 + 2s);
    CHECK(e1.incident == 1);
    CHECK(!e1.joined);
    // The stall shown in full is over, another goes on: said once.
    news = in.take_news(t0 + 2s);
    REQUIRE(news.size() == 1);
    CHECK(!news[0].ended);
    CHECK(news[0].open == 1);
    CHECK(news[0].workers == 2);
    CHECK(in.joined(2));
    CHECK(!in.joined(1));
    in.close(e2, t0 + 2s);
    CHECK(e2.incident == 1);
    CHECK(e2.joined);
    news = in.take_news(t0 + 2s);
    REQUIRE(news.size() == 1);
    CHECK(news[0].ended);
    CHECK(news[0].workers == 2);
    CHECK(news[0].longest == 2000ms);

    // An unsampled update of a joined stall still counts for the longest.
    CHECK(in.take_news(t0 + 2s).empty());

    // Beginning within 1 s of the end, the same stack joins it again ...
    auto c = stall_at(4, "update_db", 100ms);
    in.place(c, t0 + 2500ms);  // began at 2.4 s
    CHECK(c.event.incident == 1);
    auto c_end = ended(4, 150ms);
    in.close(c_end, t0 + 2600ms);
    // ... later, it is a new incident.
    auto d = stall_at(5, "update_db", 100ms);
    in.place(d, t0 + 5s);
    CHECK(d.event.incident == 5);
    CHECK(!d.event.joined);

    // A stall wedged for good does not make the stack one incident forever:
    // a stall that begins long after the latest one began starts another.
    auto late = stall_at(6, "update_db", 100ms);
    in.place(late, t0 + 60s);
    CHECK(late.event.incident == 6);
}
