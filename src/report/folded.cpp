// Folded stacks ("outermost;...;innermost count"), the input format of
// flame-graph tools: one line per distinct stack, written at the end.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <utility>

#include "report/classify.hpp"
#include "report/writer.hpp"

namespace sw::report {
namespace {

std::string frame_name(const symbolize::Frame& f) {
    std::string name = f.function.empty()
                           ? fmt::format("{}+{:#x}", f.module.empty() ? "??" : std::string(basename_of(f.module)),
                                         f.module_offset)
                           : f.function;
    for (char& c : name)  // ';' separates frames and a newline ends the line
        if (c == ';' || c == '\n' || c == '\r') c = '_';
    return name;
}

class FoldedWriter final : public Writer {
public:
    explicit FoldedWriter(std::ostream& out) : Writer(out) {}

    // A sample (dump) counts once. A stall (attach, run) weighs the
    // milliseconds it lasted, known when it ends (or, for one still going,
    // at the end of the output), on its last stack.
    void stall(const StallReport& r) override {
        if (r.frames.empty()) return;
        std::string line = r.event.worker.name.empty() ? "worker" : r.event.worker.name;
        for (char& c : line)
            if (c == ';' || c == '\n' || c == '\r' || c == ' ') c = '_';
        for (auto it = r.frames.rbegin(); it != r.frames.rend(); ++it) line += ";" + frame_name(*it);
        if (r.event.kind == detect::EventKind::sample) {
            ++counts_[line];
            return;
        }
        open_[{r.target.pid, r.event.episode}] = Open{std::move(line), r.event.stalled_for, std::chrono::steady_clock::now()};
    }

    void event(const Target& t, const detect::Event& e) override {
        auto it = open_.find({t.pid, e.episode});
        if (it == open_.end()) return;
        add(it->second.stack, e.stalled_for);
        open_.erase(it);
    }

    // A watch of a process begins (again, after an exec: its episodes
    // start again from 1) or ends (it exited, the agent dropped it): its
    // stalls still going weigh what they lasted until now.
    void attached(const Target& t, const WatchInfo&) override { close_all(t.pid); }
    void detached(const Target& t, const Detached&) override { close_all(t.pid); }

    void finish() override {
        // Still going: as long as it had lasted at its last report, and since.
        const auto now = std::chrono::steady_clock::now();
        for (const auto& [episode, o] : open_) add(o.stack, o.stalled + (now - o.reported_at));
        open_.clear();
        for (const auto& [stack, n] : counts_) fmt::print(out_, "{} {}\n", stack, n);
        out_.flush();
        counts_.clear();
    }

private:
    void close_all(pid_t pid) {
        const auto now = std::chrono::steady_clock::now();
        for (auto it = open_.begin(); it != open_.end();) {
            if (it->first.first != pid) {
                ++it;
                continue;
            }
            add(it->second.stack, it->second.stalled + (now - it->second.reported_at));
            it = open_.erase(it);
        }
    }

    struct Open {
        std::string stack;
        std::chrono::nanoseconds stalled{};
        std::chrono::steady_clock::time_point reported_at;
    };
    // Whole milliseconds, at least 1: a flame graph takes integer weights.
    void add(const std::string& stack, std::chrono::nanoseconds stalled) {
        counts_[stack] += std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(stalled).count()));
    }

    std::map<std::string, std::uint64_t> counts_;
    std::map<std::pair<pid_t, std::uint64_t>, Open> open_;  // by pid and episode: stalls going on
};

}  // namespace

std::unique_ptr<Writer> make_folded_writer(std::ostream& out) { return std::make_unique<FoldedWriter>(out); }

}  // namespace sw::report
