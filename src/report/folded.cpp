// Folded stacks ("outermost;...;innermost count"), the input format of
// flame-graph tools: one line per distinct stack, written at the end.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <map>

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

    void stall(const StallReport& r) override {
        if (r.frames.empty()) return;
        std::string line = r.event.worker.name.empty() ? "worker" : r.event.worker.name;
        for (char& c : line)
            if (c == ';' || c == '\n' || c == '\r' || c == ' ') c = '_';
        for (auto it = r.frames.rbegin(); it != r.frames.rend(); ++it) line += ";" + frame_name(*it);
        ++counts_[line];
    }

    void event(const Target&, const detect::Event&) override {}

    void finish() override {
        for (const auto& [stack, n] : counts_) fmt::print(out_, "{} {}\n", stack, n);
        out_.flush();
        counts_.clear();
    }

private:
    std::map<std::string, std::uint64_t> counts_;
};

}  // namespace

std::unique_ptr<Writer> make_folded_writer(std::ostream& out) { return std::make_unique<FoldedWriter>(out); }

}  // namespace sw::report
