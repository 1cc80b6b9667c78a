// stallwatch for Boost.Asio (1.74 and later): one call makes every thread
// that runs handlers of an execution context a watched worker.
//
//     stallwatch_init("my-service", 0);
//     boost::asio::io_context ctx;               // or boost::asio::thread_pool
//     stallwatch::asio::watch(ctx, "io");       // threads become io-0, io-1, ...
//     ... ctx.run() on as many threads as you like
//
// A worker is RUNNING while it runs a handler or a coroutine step, and
// PARKED while the context waits for work, so idle pool threads are never
// reported and a handler that blocks is. It needs Asio's handler tracking
// hooks: build every file that includes Asio with
// -DBOOST_ASIO_CUSTOM_HANDLER_TRACKING='"stallwatch/asio_tracking.hpp"'
// (CMake: link stallwatch::asio). docs/adapters.md explains the choice.
#ifndef STALLWATCH_ASIO_HPP
#define STALLWATCH_ASIO_HPP

#include <boost/asio/detail/handler_tracking.hpp>  // includes the tracking header named by the definition
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "stallwatch/stallwatch.h"

#if !defined(STALLWATCH_ASIO_TRACKING)
#error "stallwatch/asio.hpp needs Asio's handler tracking hooks: compile with -DBOOST_ASIO_CUSTOM_HANDLER_TRACKING='\"stallwatch/asio_tracking.hpp\"' (CMake: target_link_libraries(... stallwatch::asio))"
#endif

namespace stallwatch::asio_detail {
// Serialises watch() and unwatch(); operations read the records without it.
inline std::mutex& watch_mutex() {
    static std::mutex m;
    return m;
}
}  // namespace stallwatch::asio_detail

namespace stallwatch::asio_detail {

// The extra threads of one compensated io_context. Lives as long as the
// process (the watchdog may call back at any time): never freed.
struct compensator {
    boost::asio::io_context* context = nullptr;
    int group = 0;
    unsigned max_extra = 1;
    std::atomic<bool> episode{false};
    std::atomic<unsigned> running{0};
    sigset_t mask;  // the signal mask of the thread that called compensate(): the extra threads take it
};

// The watchdog's callback: at an episode's start, up to max_extra threads
// run the context until it ends; each finishes its handler, then leaves.
inline void on_episode(int group, int begins, void* arg) {
    auto* c = static_cast<compensator*>(arg);
    if (!begins) {
        c->episode.store(false, std::memory_order_release);
        return;
    }
    c->episode.store(true, std::memory_order_release);
    for (unsigned i = c->running.load(std::memory_order_acquire); i < c->max_extra; ++i) {
        // Each change of the count is reported with the value its own
        // read-modify-write made: no stale count can be stored last.
        stallwatch_compensation_threads(group, c->running.fetch_add(1, std::memory_order_acq_rel) + 1);
        try {
            std::thread([c, group] {
                // Started by the shim's watchdog, which blocks every signal:
                // run the application's handlers with the application's mask.
                pthread_sigmask(SIG_SETMASK, &c->mask, nullptr);
                current_thread.compensating = true;
                while (c->episode.load(std::memory_order_acquire) && !c->context->stopped())
                    c->context->run_one_for(std::chrono::milliseconds(20));
                stallwatch_compensation_threads(group, c->running.fetch_sub(1, std::memory_order_acq_rel) - 1);
            }).detach();
        } catch (...) {  // no thread to be had: the episode goes on without it
            stallwatch_compensation_threads(group, c->running.fetch_sub(1, std::memory_order_acq_rel) - 1);
            break;
        }
    }
}

}  // namespace stallwatch::asio_detail

namespace stallwatch::asio {

// Watches `context`: each thread that runs one of its handlers is registered
// at its first handler, as "<prefix>-<n>" (n from 0, in that order). Call it
// before the threads run the context. Watching the same context again
// changes nothing. Throws std::length_error past 64 calls that watched a
// context (unwatch() does not give one back).
inline void watch(boost::asio::execution_context& context, const char* prefix) {
    using namespace ::stallwatch::asio_detail;
    std::lock_guard<std::mutex> lock(watch_mutex());
    const void* key = &context;
    if (find(key) != nullptr) return;
    // A record is never reused: operations of an unwatched context may still
    // point at its record, and read its prefix without a lock.
    const std::size_t slot = records_used.load(std::memory_order_relaxed);
    if (slot == max_watched) throw std::length_error("stallwatch::asio::watch: more than 64 contexts watched");
    watch_record& r = records[slot];
    std::strncpy(r.prefix, prefix != nullptr ? prefix : "asio", sizeof r.prefix - 1);
    r.context.store(key, std::memory_order_release);  // the prefix is seen with it
    records_used.store(slot + 1, std::memory_order_release);
}

// Stops watching `context` (before destroying it). Operations created
// afterwards are not tracked; threads already registered keep their slots
// until they exit.
// With compensate(): stops it, and waits for its extra threads to leave
// (each finishes the handler it runs), so the context may then be destroyed.
inline void unwatch(boost::asio::execution_context& context) {
    using namespace ::stallwatch::asio_detail;
    std::lock_guard<std::mutex> lock(watch_mutex());
    auto* r = find(&context);
    if (r == nullptr) return;
    if (auto* c = static_cast<compensator*>(r->compensator)) {
        stallwatch_compensate(c->group, 0, nullptr, nullptr);  // no call from here on
        c->episode.store(false, std::memory_order_release);
        while (c->running.load(std::memory_order_acquire) != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    r->context.store(nullptr, std::memory_order_relaxed);
}

// Compensation for a watched io_context (docs/adapters.md, "Compensation"):
// when every running thread of the context has made no progress for
// `threshold`, up to `max_extra_threads` more threads run it until one of
// them recovers. The context must be watched, and this called before its
// threads run handlers (they join its group at their first handler); the
// table must have groups (stallwatch_init_groups). Returns 0 or -errno
// (-ENOENT: not watched; the shim's errors otherwise).
inline int compensate(boost::asio::io_context& context, unsigned max_extra_threads = 1,
                      std::chrono::milliseconds threshold = std::chrono::milliseconds(200)) {
    using namespace ::stallwatch::asio_detail;
    std::lock_guard<std::mutex> lock(watch_mutex());
    watch_record* r = find(static_cast<boost::asio::execution_context*>(&context));
    if (r == nullptr) return -ENOENT;
    const int group = stallwatch_group(r->prefix);
    if (group < 0) return group;
    // One compensated context per group: two contexts watched under one
    // prefix would be judged as one pool.
    for (std::size_t i = 0; i < records_used.load(std::memory_order_acquire); ++i)
        if (records[i].compensator != nullptr && records[i].group.load(std::memory_order_relaxed) == group)
            return -EEXIST;
    auto* c = new compensator;  // kept: see compensator
    pthread_sigmask(SIG_SETMASK, nullptr, &c->mask);
    c->context = &context;
    c->group = group;
    c->max_extra = max_extra_threads;
    const int rc = stallwatch_compensate(group, static_cast<std::uint32_t>(threshold.count()), on_episode, c);
    if (rc != 0) {
        delete c;
        return rc;
    }
    r->compensator = c;
    r->group.store(group, std::memory_order_release);
    return 0;
}

}  // namespace stallwatch::asio

#endif  // STALLWATCH_ASIO_HPP
