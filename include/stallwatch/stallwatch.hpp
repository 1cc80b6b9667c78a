// stallwatch shim, C++ layer: RAII over the C API in stallwatch.h.
// Header-only; needs C++17 or later and links against the same library.
#ifndef STALLWATCH_STALLWATCH_HPP
#define STALLWATCH_STALLWATCH_HPP

#include <cstdint>

#include "stallwatch/stallwatch.h"

namespace stallwatch {

// Creates the process's table (idempotent). 0 or a negative errno.
inline int init(const char* app_name = nullptr, std::uint32_t capacity = 0) noexcept {
    return stallwatch_init(app_name, capacity);
}

// The calling thread's registration, released when the object is destroyed.
// Create it on the worker thread itself; it is neither copyable nor movable
// because the slot belongs to that thread.
class Worker {
public:
    explicit Worker(const char* name) noexcept : w_(stallwatch_register(name)) {}
    ~Worker() { stallwatch_unregister(w_); }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void tick() noexcept { stallwatch_tick(w_); }
    void park() noexcept { stallwatch_park(w_); }
    void unpark() noexcept { stallwatch_unpark(w_); }
    // True when the worker is visible to the monitor (not disabled or full).
    bool live() const noexcept { return stallwatch_worker_is_live(w_) != 0; }
    stallwatch_worker* get() const noexcept { return w_; }

private:
    stallwatch_worker* w_;
};

// Parks the worker for the lifetime of the scope: wrap the wait for work.
class ParkedScope {
public:
    explicit ParkedScope(Worker& w) noexcept : w_(w) { w_.park(); }
    ~ParkedScope() { w_.unpark(); }
    ParkedScope(const ParkedScope&) = delete;
    ParkedScope& operator=(const ParkedScope&) = delete;

private:
    Worker& w_;
};

}  // namespace stallwatch

#endif  // STALLWATCH_STALLWATCH_HPP
