// Symbolization on a thread of its own, one captured thread behind the
// captures: while the frames of one thread are named (a cold symbolizer
// loads and inflates debug info), the next thread is stopped, copied and
// unwound. `dump` uses it; the order of the results is the order of push.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "cli/sampler.hpp"

namespace sw::cli {

class SymbolizeAhead {
public:
    // `sampler` outlives this; only Sampler::symbolize runs on the thread.
    explicit SymbolizeAhead(Sampler& sampler);
    ~SymbolizeAhead();  // waits for the thread (what it has not reached is dropped)
    SymbolizeAhead(const SymbolizeAhead&) = delete;
    SymbolizeAhead& operator=(const SymbolizeAhead&) = delete;

    void push(Captured c);
    // Pushed and not yet taken.
    bool empty();
    // The oldest item is symbolized.
    bool front_ready();
    // The oldest item and its frames, waiting for them if need be. What
    // symbolizing it threw is thrown here, on the caller's thread.
    std::pair<Captured, std::vector<symbolize::Frame>> take();
    // How long take() waited for the thread, in all.
    std::chrono::nanoseconds waited() const { return waited_; }

private:
    struct Item {
        Captured captured;
        std::vector<symbolize::Frame> frames;
        std::exception_ptr error;
        bool done = false;
    };
    void run();

    Sampler& sampler_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<Item> items_;  // taken from the front; the thread works on `next_`
    std::size_t next_ = 0;    // index in items_ of the first not symbolized
    bool closing_ = false;
    std::chrono::nanoseconds waited_{};
    std::thread thread_;      // last: starts once the rest is built
};

}  // namespace sw::cli
