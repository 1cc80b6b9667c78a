// The shim and the reader against each other, in this process.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "proc/maps.hpp"
#include "proc/memory.hpp"
#include "proc/table_file.hpp"
#include "stallwatch/stallwatch.h"
#include "stallwatch/stallwatch.hpp"
#include "support/table_image.hpp"

namespace table = sw::table;
using sw::proc::TableFile;

namespace {

constexpr std::uint32_t kCapacity = 32;

void ensure_init() {
    static const int rc = stallwatch_init("unit-tests", kCapacity);
    REQUIRE(rc == 0);
}

table::Snapshot read_self() {
    auto f = TableFile::open(::getpid());
    REQUIRE_MESSAGE(f.ok(), (f.ok() ? "" : f.error().message));
    auto s = f->read();
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
    return *s;
}

const table::Worker* find(const table::Snapshot& s, const std::string& name) {
    for (const auto& w : s.workers)
        if (w.name == name) return &w;
    return nullptr;
}

// Runs `body` on a new thread that stays alive (registered) until released.
class HeldThread {
public:
    explicit HeldThread(std::string name) {
        t_ = std::thread([this, name] {
            stallwatch::Worker w(name.c_str());
            w.tick();
            {
                std::unique_lock lk(m_);
                worker_ = w.get();
                ready_ = true;
                cv_.notify_all();
                cv_.wait(lk, [&] { return release_; });
            }
        });
        std::unique_lock lk(m_);
        cv_.wait(lk, [&] { return ready_; });
    }
    void finish() {
        {
            std::lock_guard lk(m_);
            release_ = true;
        }
        cv_.notify_all();
        t_.join();
    }
    ~HeldThread() {
        if (t_.joinable()) finish();
    }
    stallwatch_worker* worker() const { return worker_; }

private:
    std::thread t_;
    std::mutex m_;
    std::condition_variable cv_;
    bool ready_ = false, release_ = false;
    stallwatch_worker* worker_ = nullptr;
};

}  // namespace

TEST_CASE("init is idempotent and the table is found by pid") {
    ensure_init();
    CHECK(stallwatch_init("other-name", 4) == 0);
    auto snap = read_self();
    CHECK(snap.header.app_name == "unit-tests");
    CHECK(snap.header.capacity == kCapacity);
    CHECK(snap.header.pid == ::getpid());
    CHECK(snap.header.version == STALLWATCH_TABLE_VERSION);
}

TEST_CASE("tick, park and unpark are seen by the reader") {
    ensure_init();
    stallwatch_worker* w = stallwatch_register("main-worker");
    REQUIRE(stallwatch_worker_is_live(w));
    CHECK(stallwatch_register("again") == w);  // one worker per thread
    for (int i = 0; i < 5; ++i) stallwatch_tick(w);

    auto snap = read_self();
    const auto* seen = find(snap, "main-worker");
    REQUIRE(seen);
    CHECK(seen->progress == 5);
    CHECK(seen->tid == ::gettid());
    CHECK(seen->state == table::WorkerState::running);

    stallwatch_park(w);
    seen = find(snap = read_self(), "main-worker");
    REQUIRE(seen);
    CHECK(seen->state == table::WorkerState::parked);

    stallwatch_unpark(w);
    seen = find(snap = read_self(), "main-worker");
    REQUIRE(seen);
    CHECK(seen->state == table::WorkerState::running);
    CHECK(seen->progress == 6);  // unpark counts as progress

    stallwatch_unregister(w);
    CHECK(find(read_self(), "main-worker") == nullptr);
}

TEST_CASE("a thread's slot is released at thread exit and reused with a new generation") {
    ensure_init();
    std::uint32_t slot = 0, generation = 0;
    {
        HeldThread t("ephemeral");
        auto snap = read_self();
        const auto* w = find(snap, "ephemeral");
        REQUIRE(w);
        CHECK(w->progress == 1);
        slot = w->slot;
        generation = w->generation;
        t.finish();
    }
    CHECK(find(read_self(), "ephemeral") == nullptr);

    HeldThread next("successor");
    auto snap = read_self();
    const auto* w = find(snap, "successor");
    REQUIRE(w);
    CHECK(w->slot == slot);  // the lowest free slot is taken again
    CHECK(w->generation == generation + 1);
}

TEST_CASE("explicit unregister frees the slot and the thread may register again") {
    ensure_init();
    std::thread([] {
        stallwatch_worker* a = stallwatch_register("first-name");
        REQUIRE(stallwatch_worker_is_live(a));
        stallwatch_unregister(a);
        CHECK(find(read_self(), "first-name") == nullptr);
        stallwatch_worker* b = stallwatch_register("second-name");
        REQUIRE(stallwatch_worker_is_live(b));
        CHECK(find(read_self(), "second-name") != nullptr);
    }).join();
    CHECK(find(read_self(), "second-name") == nullptr);  // released at thread exit
}

TEST_CASE("unregister of a worker that is not the caller's does nothing") {
    ensure_init();
    HeldThread other("not-mine");
    REQUIRE(find(read_self(), "not-mine") != nullptr);
    stallwatch_unregister(other.worker());
    CHECK(find(read_self(), "not-mine") != nullptr);
}

TEST_CASE("a forked child writes nothing into its parent's table") {
    ensure_init();
    stallwatch_worker* w = stallwatch_register("fork-parent");
    REQUIRE(stallwatch_worker_is_live(w));
    for (int i = 0; i < 3; ++i) stallwatch_tick(w);

    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // In the child: the inherited worker must point at private memory.
        for (int i = 0; i < 1000; ++i) stallwatch_tick(w);
        stallwatch_park(w);
        stallwatch_worker* c = stallwatch_register("fork-child");
        int code = 0;
        if (stallwatch_worker_is_live(c)) code |= 1;  // no table until init
        auto own = TableFile::open(::getpid());
        if (own.ok() || own.error().code != sw::Errc::no_table) code |= 2;  // fd not inherited
        if (stallwatch_init("child-table", 4) != 0) code |= 4;  // may start its own
        c = stallwatch_register("fork-child");
        if (!stallwatch_worker_is_live(c)) code |= 8;
        auto mine = TableFile::open(::getpid());
        if (!mine.ok()) code |= 16;
        else if (auto s = mine->read(); !s.ok() || s->header.app_name != "child-table") code |= 32;
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);

    auto snap = read_self();
    const auto* seen = find(snap, "fork-parent");
    REQUIRE(seen);
    CHECK(seen->progress == 3);
    CHECK(seen->state == table::WorkerState::running);
    CHECK(find(snap, "fork-child") == nullptr);
    stallwatch_unregister(w);
}

namespace {

// In a forked child (its own table: the shim forgets the parent's), runs
// `body`, which returns "" or what went wrong; the parent gets the text.
std::string in_child(const std::function<std::string()>& body) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(fds[0]);
        std::string what = body();
        if (what.empty()) what = "ok";
        (void)!::write(fds[1], what.data(), what.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string got;
    char buf[512];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    return got;
}

struct Episodes {
    std::mutex m;
    std::condition_variable cv;
    std::vector<int> calls;  // 1: begins, 0: ends
};

void on_episode(int, int begins, void* arg) {
    auto* e = static_cast<Episodes*>(arg);
    std::lock_guard lk(e->m);
    e->calls.push_back(begins);
    e->cv.notify_all();
}

}  // namespace

TEST_CASE("groups: a table made with groups is version 2, groups are made once by name, workers join them, "
          "and the reader sees both") {
    auto what = in_child([]() -> std::string {
        if (stallwatch_group("early") != -ECANCELED) return "a group before init";
        if (stallwatch_init_groups("groups", 8, 2) != 0) return "init_groups failed";
        int a = stallwatch_group("pool-a"), b = stallwatch_group("pool-b");
        if (a != 1 || b != 2) return "group ids " + std::to_string(a) + " " + std::to_string(b);
        if (stallwatch_group("pool-a") != 1) return "pool-a made twice";
        if (stallwatch_group("pool-c") != -ENOSPC) return "a third group in a table of two";
        if (stallwatch_group("") != -EINVAL) return "an empty name";
        stallwatch_worker* w = stallwatch_register("member");
        if (stallwatch_join(w, 3) != -EINVAL) return "joined a group that does not exist";
        if (stallwatch_join(w, b) != 0) return "join failed";
        stallwatch_register("loner");  // same thread: the same worker
        auto f = TableFile::open(::getpid());
        if (!f.ok()) return "open: " + f.error().message;
        auto snap = f->read();
        if (!snap.ok()) return "read: " + snap.error().message;
        if (snap->header.version != STALLWATCH_TABLE_VERSION_GROUPS) return "not version 2";
        if (snap->header.group_capacity != 2) return "group capacity";
        if (snap->groups.size() != 2 || snap->groups[1].name != "pool-b" || snap->groups[1].id != 2)
            return "groups as read";
        const auto* m = find(*snap, "member");
        if (!m || m->group != 2) return "the member's group as read";
        if (stallwatch_join(w, 0) != 0) return "leave failed";
        return "";
    });
    CHECK(what == "ok");
}

TEST_CASE("groups: a table without groups stays version 1 and refuses them") {
    ensure_init();
    CHECK(stallwatch_group("pool") == -ENOTSUP);
    CHECK(stallwatch_compensate(1, 100, on_episode, nullptr) == -ENOTSUP);
    CHECK(read_self().header.version == STALLWATCH_TABLE_VERSION);
}

TEST_CASE("compensation: the callback begins once when every running worker of the group is stuck, ends when "
          "one moves, and the group's record counts the episode") {
    auto what = in_child([]() -> std::string {
        if (stallwatch_init_groups("compensation", 8, 1) != 0) return "init_groups failed";
        const int g = stallwatch_group("pool");
        static Episodes e;
        if (stallwatch_compensate(g, 100, on_episode, &e) != 0) return "compensate failed";
        std::atomic<bool> go_on{false};
        std::atomic<int> registered{0};
        std::vector<std::thread> workers;
        for (int i = 0; i < 2; ++i)
            workers.emplace_back([&, i] {
                stallwatch_worker* w = stallwatch_register(("w" + std::to_string(i)).c_str());
                stallwatch_join(w, g);
                stallwatch_park(w);  // parked workers do not count: no episode before both are in
                ++registered;
                while (registered < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
                stallwatch_unpark(w);
                while (!go_on) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // stuck: no tick
                stallwatch_tick(w);
                stallwatch_park(w);
                while (go_on) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            });
        {
            std::unique_lock lk(e.m);
            if (!e.cv.wait_for(lk, std::chrono::seconds(3), [&] { return !e.calls.empty(); }))
                return "no episode began";
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // still stuck: no second call
        auto f = TableFile::open(::getpid());
        auto during = f.ok() ? f->read() : sw::Result<table::Snapshot>(f.error());
        if (!during.ok()) return "read: " + during.error().message;
        go_on = true;
        {
            std::unique_lock lk(e.m);
            if (!e.cv.wait_for(lk, std::chrono::seconds(3), [&] { return e.calls.size() >= 2; }))
                return "the episode did not end";
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // parked now: no new episode
        auto after = f->read();
        go_on = false;
        for (auto& t : workers) t.join();
        std::lock_guard lk(e.m);
        if (e.calls != std::vector<int>{1, 0}) return "calls: " + std::to_string(e.calls.size());
        if (!during->groups_consistent || during->groups.size() != 1 || during->groups[0].episodes != 1 ||
            during->groups[0].episode_begin_unix_ns == 0 || during->groups[0].threshold_ms != 100)
            return "the record during the episode";
        if (!after.ok() || after->groups.size() != 1 || after->groups[0].episodes != 1 ||
            after->groups[0].episode_begin_unix_ns != 0)
            return "the record after the episode";
        return "";
    });
    CHECK(what == "ok");
}

// The still-stalled check inside the stop window reads a worker's slot from
// the target's own shared mapping of the table, in the same system call as
// the stack. Here this process is the target: the bytes found through its
// maps must say what a pread of the table file says.
TEST_CASE("a slot read through the target's shared mapping of the table says what read_slot says") {
    int fd = ::memfd_create("stallwatch", MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    sw::test::TableImage img(8);
    img.worker(0, "a", 100, 7);
    img.worker(3, "b", 101, 9, STALLWATCH_SLOT_PARKED);
    auto bytes = img.bytes();
    REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
    void* shared = ::mmap(nullptr, bytes.size(), PROT_READ, MAP_SHARED, fd, 0);
    REQUIRE(shared != MAP_FAILED);
    void* copy = ::mmap(nullptr, bytes.size(), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    REQUIRE(copy != MAP_FAILED);
    std::memset(copy, 0xff, bytes.size());  // a private copy that no longer matches the file
    auto tf = TableFile::adopt(sw::UniqueFd(::dup(fd)), ::getpid());
    REQUIRE(tf.read().ok());  // learns where the slots start
    auto maps = sw::proc::read_maps(::getpid());
    REQUIRE(maps.ok());
    auto memory = sw::proc::open_memory(::getpid());
    for (std::uint32_t slot : {0u, 3u, 5u}) {
        CAPTURE(slot);
        auto where = tf.slot_location(slot);
        REQUIRE(where.has_value());
        auto at = sw::proc::find_mapped(*maps, *where);
        REQUIRE(at.has_value());
        CHECK(at->value() == reinterpret_cast<std::uintptr_t>(shared) + where->offset);  // never the private copy
        std::array<std::byte, sizeof(stallwatch_slot)> got{};
        REQUIRE(memory->read_exact(*at, got));
        auto mapped = TableFile::slot_from_bytes(got, 1);
        auto pread = tf.read_slot(slot, 1);
        REQUIRE(mapped.has_value() == pread.has_value());
        if (pread) {
            CHECK(mapped->progress == pread->progress);
            CHECK(mapped->state == pread->state);
        }
        CHECK_FALSE(TableFile::slot_from_bytes(got, 2));  // another registration
    }
    CHECK(tf.read_slot(0, 1)->progress == 7);
    CHECK(tf.read_slot(3, 1)->state == sw::table::WorkerState::parked);
    CHECK_FALSE(tf.read_slot(5, 1));  // free
    std::array<std::byte, 10> short_bytes{};
    CHECK_FALSE(TableFile::slot_from_bytes(short_bytes, 1));
    ::munmap(shared, bytes.size());
    ::munmap(copy, bytes.size());
    ::close(fd);
}

// A table whose size is sealed (as the shim leaves it) is read through a
// read-only shared mapping instead of preads; an unsealed one never is.
TEST_CASE("a sealed table is read through a mapping, an unsealed one with pread, and both say the same") {
    auto mappings_of = [](int fd) {
        struct stat st {};
        REQUIRE(::fstat(fd, &st) == 0);
        auto maps = sw::proc::read_maps(::getpid());
        REQUIRE(maps.ok());
        int n = 0;
        for (const auto& m : *maps) n += m.inode == st.st_ino && m.dev == st.st_dev && m.shared;
        return n;
    };
    sw::test::TableImage img(16);
    for (std::uint32_t i = 0; i < 16; ++i) img.worker(i, "w" + std::to_string(i), 200 + static_cast<int>(i), i * 3);
    auto bytes = img.bytes();
    std::vector<std::vector<std::string>> seen;
    for (bool sealed : {false, true}) {
        CAPTURE(sealed);
        int fd = ::memfd_create("stallwatch", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        REQUIRE(fd >= 0);
        REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
        if (sealed) REQUIRE(::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
        auto tf = TableFile::adopt(sw::UniqueFd(::dup(fd)), ::getpid());
        CHECK(mappings_of(fd) == 0);
        auto snap = tf.read();
        REQUIRE(snap.ok());
        CHECK(mappings_of(fd) == (sealed ? 1 : 0));
        std::vector<std::string> w;
        for (const auto& x : snap->workers) w.push_back(fmt::format("{} {} {} {}", x.slot, x.name, x.tid, x.progress));
        seen.push_back(w);
        // A change is seen at the next read, through the mapping too.
        std::uint64_t progress = 999;
        REQUIRE(::pwrite(fd, &progress, sizeof progress,
                         static_cast<off_t>(bytes.size() - 16 * sizeof(stallwatch_slot) +
                                            offsetof(stallwatch_slot, progress))) == sizeof progress);
        auto again = tf.read();
        REQUIRE(again.ok());
        CHECK(again->workers.at(0).progress == 999);
        ::close(fd);
    }
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].size() == 16);
    CHECK(seen[0] == seen[1]);
}

TEST_CASE("a table shrunk under the reader gives an error, never a crash") {
    int fd = ::memfd_create("shrink-test", MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    sw::test::TableImage img(64);
    for (std::uint32_t i = 0; i < 64; ++i) img.worker(i, "w" + std::to_string(i), 100 + static_cast<int>(i));
    auto bytes = img.bytes();
    REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
    auto tf = TableFile::adopt(sw::UniqueFd(::dup(fd)), ::getpid());

    auto full = tf.read();
    REQUIRE(full.ok());
    CHECK(full->workers.size() == 64);

    REQUIRE(::ftruncate(fd, 1000) == 0);
    auto shrunk = tf.read();
    REQUIRE_FALSE(shrunk.ok());
    CHECK(shrunk.error().code == sw::Errc::corrupt_table);

    // A writer that grows and shrinks the file at full speed while we read.
    std::atomic<bool> stop{false};
    std::thread flipper([&] {
        for (int i = 0; !stop; ++i) {
            if (i % 2) {
                (void)::pwrite(fd, bytes.data(), bytes.size(), 0);
            } else {
                (void)::ftruncate(fd, static_cast<off_t>(i % 7) * 500);
            }
        }
    });
    // Until both outcomes were seen many times (bounded): a read is either
    // refused with a message, or whole, every worker in it the one written
    // to its slot. A read that mixed states would show a worker with
    // another slot's name or tid.
    int good = 0, bad = 0, torn = 0, reads = 0;
    for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         (good < 200 || bad < 200) && std::chrono::steady_clock::now() < end; ++reads) {
        auto r = tf.read();
        if (r.ok()) {
            ++good;
            CHECK(r->workers.size() <= 64);
            for (const auto& w : r->workers)
                if (w.name != "w" + std::to_string(w.slot) || w.tid != 100 + static_cast<pid_t>(w.slot)) ++torn;
        } else {
            ++bad;
            CHECK(!r.error().message.empty());
        }
    }
    stop = true;
    flipper.join();
    ::close(fd);
    INFO(reads << " reads: " << good << " whole, " << bad << " refused");
    CHECK(good > 0);  // reading while the file changes still works ...
    CHECK(bad > 0);   // ... and the shrunk states were met and refused
    CHECK(torn == 0);
    MESSAGE("reads during shrinking: " << good << " whole, " << bad << " refused");
}
