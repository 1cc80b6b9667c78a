// The shim and the reader against each other, in this process.
#include <doctest/doctest.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

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
