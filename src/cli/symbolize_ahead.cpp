#include "cli/symbolize_ahead.hpp"

namespace sw::cli {

SymbolizeAhead::SymbolizeAhead(Sampler& sampler) : sampler_(sampler), thread_([this] { run(); }) {}

SymbolizeAhead::~SymbolizeAhead() {
    {
        std::lock_guard lock(mutex_);
        closing_ = true;
    }
    changed_.notify_all();
    thread_.join();
}

void SymbolizeAhead::push(Captured c) {
    {
        std::lock_guard lock(mutex_);
        items_.push_back(Item{std::move(c), {}, nullptr, false});
    }
    changed_.notify_all();
}

bool SymbolizeAhead::empty() {
    std::lock_guard lock(mutex_);
    return items_.empty();
}

bool SymbolizeAhead::front_ready() {
    std::lock_guard lock(mutex_);
    return !items_.empty() && items_.front().done;
}

std::pair<Captured, std::vector<symbolize::Frame>> SymbolizeAhead::take() {
    std::unique_lock lock(mutex_);
    const auto start = std::chrono::steady_clock::now();
    changed_.wait(lock, [this] { return !items_.empty() && items_.front().done; });
    waited_ += std::chrono::steady_clock::now() - start;
    Item item = std::move(items_.front());
    items_.pop_front();
    --next_;
    if (item.error) std::rethrow_exception(item.error);
    return {std::move(item.captured), std::move(item.frames)};
}

void SymbolizeAhead::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        changed_.wait(lock, [this] { return closing_ || next_ < items_.size(); });
        if (next_ >= items_.size()) return;  // closing, and nothing left to do
        if (closing_) return;                // the caller gave up: the rest is dropped
        // A deque's elements stay where they are when others are pushed or
        // popped at its ends, and this one is not popped before it is done.
        Item& item = items_[next_];
        lock.unlock();
        std::vector<symbolize::Frame> frames;
        std::exception_ptr error;
        try {
            frames = sampler_.symbolize(item.captured);
        } catch (...) {
            error = std::current_exception();
        }
        lock.lock();
        item.frames = std::move(frames);
        item.error = error;
        item.done = true;
        ++next_;
        changed_.notify_all();
    }
}

}  // namespace sw::cli
