// The shim under ThreadSanitizer: threads that initialise, register, tick,
// park, unregister and exit all at once, while other threads read the table
// the way the monitor does (proc::TableFile: pread, parse, confirm).
// Built only with STALLWATCH_SANITIZE=thread (tests/tsan/CMakeLists.txt).
#include <doctest/doctest.h>

#include <dirent.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "proc/table_file.hpp"
#include "stallwatch/stallwatch.h"

using sw::proc::TableFile;

namespace {

constexpr std::uint32_t kCapacity = 8;  // fewer slots than threads: the table fills
constexpr int kThreads = 16;            // per wave
constexpr int kWaves = 6;
constexpr int kRounds = 2000;

// How many fds of this process are stallwatch tables.
int tables_in_this_process() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    REQUIRE(d != nullptr);
    while (dirent* e = ::readdir(d)) {
        char target[256];
        std::string path = std::string("/proc/self/fd/") + e->d_name;
        ssize_t len = ::readlink(path.c_str(), target, sizeof target);
        if (len > 0 && std::string_view(target, static_cast<size_t>(len)) ==
                           "/memfd:" STALLWATCH_TABLE_MEMFD_NAME " (deleted)")
            ++n;
    }
    ::closedir(d);
    return n;
}

// Worker "t<n>" is thread n of the whole test; its tid is known before any
// reader starts.
std::array<std::atomic<pid_t>, kThreads * kWaves> g_tids{};

int thread_number(const std::string& name) {
    if (name.size() < 2 || name[0] != 't') return -1;
    char* end = nullptr;
    long n = std::strtol(name.c_str() + 1, &end, 10);
    if (*end != '\0' || n < 0 || n >= kThreads * kWaves) return -1;
    return static_cast<int>(n);
}

// What a reader may see at any instant, however the writers interleave:
// only whole registrations (a name with its own thread's tid), each thread
// at most once, never more workers than slots.
struct Reader {
    Reader(const std::atomic<bool>& s, const std::atomic<bool>& t) : stop(s), table_made(t) {}

    const std::atomic<bool>& stop;
    const std::atomic<bool>& table_made;  // some worker's stallwatch_init returned
    std::atomic<long> reads{0};
    std::atomic<long> workers_seen{0};
    std::string failure;

    void run() {
        // The readers start while the first wave races to create the table;
        // opening before any stallwatch_init returned would find nothing.
        while (!table_made.load(std::memory_order_acquire) && !stop.load(std::memory_order_acquire))
            std::this_thread::yield();
        auto table = TableFile::open(::getpid());
        if (!table) {
            failure = "open: " + table.error().message;
            return;
        }
        while (!stop.load(std::memory_order_acquire) && failure.empty()) {
            auto snap = table->read();
            if (!snap) {
                failure = "read: " + snap.error().message;
                return;
            }
            reads.fetch_add(1, std::memory_order_relaxed);
            if (snap->workers.size() > kCapacity) failure = "more workers than slots";
            std::set<pid_t> tids;
            for (const auto& w : snap->workers) {
                int n = thread_number(w.name);
                if (n < 0) {
                    failure = "torn or foreign name '" + w.name + "'";
                } else if (w.tid != g_tids[static_cast<size_t>(n)].load(std::memory_order_acquire)) {
                    failure = "worker " + w.name + " shows tid " + std::to_string(w.tid) +
                              " of another thread";
                } else if (!tids.insert(w.tid).second) {
                    failure = "thread " + std::to_string(w.tid) + " holds two slots";
                }
                // The monitor's cheap re-read of one slot, during a stop.
                (void)table->read_progress(w.slot, w.generation);
            }
            workers_seen.fetch_add(static_cast<long>(snap->workers.size()),
                                   std::memory_order_relaxed);
        }
    }
};

}  // namespace

TEST_CASE("init from many threads at once creates one table") {
    std::barrier start(kThreads);
    std::array<int, kThreads> results{};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i)
        threads.emplace_back([&, i] {
            start.arrive_and_wait();
            results[static_cast<size_t>(i)] = stallwatch_init("tsan-init", kCapacity);
        });
    for (auto& t : threads) t.join();
    for (int r : results) CHECK(r == 0);
    CHECK(tables_in_this_process() == 1);
}

TEST_CASE("workers come, work and go while readers read the table") {
    std::atomic<bool> stop{false}, table_made{false};
    Reader readers[2] = {Reader(stop, table_made), Reader(stop, table_made)};
    std::vector<std::thread> reader_threads;
    std::atomic<int> live_at_full{0}, sinks_at_full{0};

    for (int wave = 0; wave < kWaves; ++wave) {
        // Every thread of a wave registers, then all meet: exactly
        // kCapacity of them got a slot, the others the private sink.
        std::barrier registered(kThreads);
        std::barrier tids_known(kThreads + 1);
        std::vector<std::thread> workers;
        for (int i = 0; i < kThreads; ++i) {
            int n = wave * kThreads + i;
            workers.emplace_back([&, n] {
                g_tids[static_cast<size_t>(n)].store(::gettid(), std::memory_order_release);
                tids_known.arrive_and_wait();
                // Racing the first registrations, as a late library might.
                CHECK(stallwatch_init("tsan-churn", kCapacity) == 0);
                table_made.store(true, std::memory_order_release);
                const std::string name = "t" + std::to_string(n);
                stallwatch_worker* w = stallwatch_register(name.c_str());
                if (stallwatch_worker_is_live(w))
                    live_at_full.fetch_add(1);
                else
                    sinks_at_full.fetch_add(1);
                registered.arrive_and_wait();
                for (int round = 0; round < kRounds; ++round) {
                    for (int k = 0; k < 20; ++k) stallwatch_tick(w);
                    stallwatch_park(w);
                    stallwatch_unpark(w);
                    if (round % 10 == n % 10) {  // leave and come back, maybe elsewhere
                        stallwatch_unregister(w);
                        w = stallwatch_register(name.c_str());
                    }
                }
                // Half leave explicitly; the others rely on the thread-exit hook.
                if (n % 2 == 0) stallwatch_unregister(w);
            });
        }
        tids_known.arrive_and_wait();
        if (wave == 0)  // readers start once the first tids are published
            for (auto& r : readers) reader_threads.emplace_back([&r] { r.run(); });
        for (auto& t : workers) t.join();
    }
    stop.store(true, std::memory_order_release);
    for (auto& t : reader_threads) t.join();

    for (auto& r : readers) {
        MESSAGE("reader: " << r.reads.load() << " reads, " << r.workers_seen.load()
                           << " workers seen");
        INFO(r.failure);
        CHECK(r.failure.empty());
        CHECK(r.reads.load() > 0);
    }
    CHECK(live_at_full.load() == static_cast<int>(kCapacity) * kWaves);
    CHECK(sinks_at_full.load() == (kThreads - static_cast<int>(kCapacity)) * kWaves);

    // Every thread is gone: every slot was given back.
    auto table = TableFile::open(::getpid());
    REQUIRE(table.ok());
    auto last = table->read();
    REQUIRE(last.ok());
    CHECK(last->workers.empty());
    CHECK(last->header.high_water == kCapacity);
}
