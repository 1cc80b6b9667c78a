// Boost.Asio's custom handler tracking, used by stallwatch/asio.hpp: every
// translation unit that includes Asio must be compiled with
//
//     -DBOOST_ASIO_CUSTOM_HANDLER_TRACKING='"stallwatch/asio_tracking.hpp"'
//
// (CMake: link stallwatch::asio, which adds it). Asio then calls these hooks
// when it creates an operation and around every handler it invokes, on the
// thread that invokes it. For a context given to stallwatch::asio::watch(),
// the invoking thread is registered as a worker at its first handler, is
// RUNNING while a handler (or a coroutine step) runs, and PARKED otherwise:
// waiting in the reactor, on the scheduler's condition variable, or outside
// the context. For any other context the hooks do nothing but one compare.
#ifndef STALLWATCH_ASIO_TRACKING_HPP
#define STALLWATCH_ASIO_TRACKING_HPP

#define STALLWATCH_ASIO_TRACKING 1

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <utility>  // Asio 1.74's awaitable.hpp uses std::exchange on this path

#include "stallwatch/stallwatch.h"

namespace boost::asio {
class execution_context;
}

namespace stallwatch::asio_detail {

// One watched execution context (io_context, thread_pool, ...). Records are
// never freed nor reused: unwatch() clears `context` (operations created
// later find nothing), while operations created before may still point at
// the record. Written once under watch()'s mutex, before `context` is
// published; read without a lock.
struct watch_record {
    std::atomic<const void*> context{nullptr};
    char prefix[STALLWATCH_WORKER_NAME_SIZE - 14] = {};
    std::atomic<unsigned> next_index{0};
    std::atomic<unsigned> next_extra{0};
    std::atomic<int> group{0};  // the shim's group its threads join (compensate()), 0: none
    void* compensator = nullptr;  // compensate()'s state (asio.hpp), under watch()'s mutex
};

inline constexpr std::size_t max_watched = 64;
inline watch_record records[max_watched];
inline std::atomic<std::size_t> records_used{0};

inline watch_record* find(const void* context) noexcept {
    const std::size_t n = records_used.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < n; ++i)
        if (records[i].context.load(std::memory_order_acquire) == context) return &records[i];
    return nullptr;
}

// The calling thread as a worker: registered at its first handler of a
// watched context; `depth` counts nested invocations (dispatch() from inside
// a handler runs the inner one at once).
struct thread_state {
    stallwatch_worker* worker = nullptr;
    unsigned depth = 0;
    bool compensating = false;  // an extra thread of compensate(): never in the group
};
inline thread_local thread_state current_thread;

// The base every Asio operation gets: which watched context (if any) it
// belongs to, set when the operation is created.
struct tracked_handler {
    watch_record* stallwatch_watch_ = nullptr;
};

template <class Context, class Operation, class... Rest>
inline void creation(Context& context, Operation& op, Rest&&...) noexcept {
    const boost::asio::execution_context& base = context;  // io_context, thread_pool, ...
    op.stallwatch_watch_ = find(&base);
}

// Lives in the scope where Asio completes an operation, around the upcall.
class completion {
public:
    explicit completion(const tracked_handler& op) noexcept : watch_(op.stallwatch_watch_) {}
    completion(const completion&) = delete;
    completion& operator=(const completion&) = delete;
    ~completion() { invocation_end(); }  // the handler threw: leave the state right

    template <class... Args>
    void invocation_begin(Args&&...) noexcept {
        if (watch_ == nullptr || running_) return;
        thread_state& t = current_thread;
        if (t.worker == nullptr) {
            char name[STALLWATCH_WORKER_NAME_SIZE];
            if (t.compensating)
                std::snprintf(name, sizeof name, "%s-extra-%u", watch_->prefix,
                              watch_->next_extra.fetch_add(1, std::memory_order_relaxed));
            else
                std::snprintf(name, sizeof name, "%s-%u", watch_->prefix,
                              watch_->next_index.fetch_add(1, std::memory_order_relaxed));
            t.worker = stallwatch_register(name);
            const int group = watch_->group.load(std::memory_order_acquire);
            if (group > 0 && !t.compensating) stallwatch_join(t.worker, group);
        }
        if (t.depth++ == 0) stallwatch_unpark(t.worker);
        running_ = true;
    }

    void invocation_end() noexcept {
        if (!running_) return;
        running_ = false;
        thread_state& t = current_thread;
        stallwatch_tick(t.worker);
        if (--t.depth == 0) stallwatch_park(t.worker);
    }

private:
    watch_record* watch_;
    bool running_ = false;
};

}  // namespace stallwatch::asio_detail

#define BOOST_ASIO_INHERIT_TRACKED_HANDLER : public ::stallwatch::asio_detail::tracked_handler
#define BOOST_ASIO_ALSO_INHERIT_TRACKED_HANDLER , public ::stallwatch::asio_detail::tracked_handler
#define BOOST_ASIO_HANDLER_TRACKING_INIT (void)0
#define BOOST_ASIO_HANDLER_LOCATION(loc) (void)0
#define BOOST_ASIO_HANDLER_CREATION(args) ::stallwatch::asio_detail::creation args
#define BOOST_ASIO_HANDLER_COMPLETION(args) ::stallwatch::asio_detail::completion stallwatch_completion_ args
#define BOOST_ASIO_HANDLER_INVOCATION_BEGIN(args) stallwatch_completion_.invocation_begin args
#define BOOST_ASIO_HANDLER_INVOCATION_END stallwatch_completion_.invocation_end()
#define BOOST_ASIO_HANDLER_OPERATION(args) (void)0
#define BOOST_ASIO_HANDLER_REACTOR_REGISTRATION(args) (void)0
#define BOOST_ASIO_HANDLER_REACTOR_DEREGISTRATION(args) (void)0
#define BOOST_ASIO_HANDLER_REACTOR_READ_EVENT 0
#define BOOST_ASIO_HANDLER_REACTOR_WRITE_EVENT 0
#define BOOST_ASIO_HANDLER_REACTOR_ERROR_EVENT 0
#define BOOST_ASIO_HANDLER_REACTOR_EVENTS(args) (void)0
#define BOOST_ASIO_HANDLER_REACTOR_OPERATION(args) (void)0

#endif  // STALLWATCH_ASIO_TRACKING_HPP
