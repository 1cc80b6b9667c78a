#include <fmt/format.h>
#include <fmt/ostream.h>

#include <set>

#include "common/duration.hpp"
#include "common/text.hpp"
#include "report/classify.hpp"
#include "report/writer.hpp"

namespace sw::report {
namespace {

// A thread of a process in another PID namespace goes by two ids: ours
// first (what ps, top and gdb on this host take), then its own.
std::string tid_label(const table::Worker& w) {
    if (w.ns_tid > 0) return fmt::format("tid {}, {} in its namespace", w.tid, w.ns_tid);
    return fmt::format("tid {}", w.tid);
}

std::string worker_label(const table::Worker& w) {
    return fmt::format("worker \"{}\" ({}, slot {})", printable(w.name), tid_label(w), w.slot);
}

// "pid 812 (name)", or for a process in a container "pid 812 (name; pid 1
// in its namespace, cgroup /…)".
std::string process_label(const Target& t) {
    if (t.pid_in_namespace <= 0) return fmt::format("pid {} ({})", t.pid, printable(t.process_name));
    std::string inner = fmt::format("pid {} in its namespace", t.pid_in_namespace);
    if (!t.cgroup.empty()) inner += ", cgroup " + printable(t.cgroup);
    return fmt::format("pid {} ({}; {})", t.pid, printable(t.process_name), inner);
}

std::string function_of(const symbolize::Frame& f) {
    return f.function.empty() ? "??" : printable(f.function);
}

std::string module_of(const symbolize::Frame& f) {
    return f.module.empty() ? "unmapped"
                            : fmt::format("{}+{:#x}", printable(basename_of(f.module)), f.module_offset);
}

void frame_line(std::ostream& out, const symbolize::Frame& f, std::size_t number, bool marked) {
    std::string where;
    if (f.location) {
        where = fmt::format(" at {}:{}", printable(f.location->file), f.location->line);
        if (f.location->column > 0) where += fmt::format(":{}", f.location->column);
    }
    const char* mark = marked ? ">" : " ";
    if (f.inlined)
        fmt::print(out, "  {}#{:<3} {:18} {} (inlined){} [{}]\n", mark, number, "", function_of(f), where,
                   module_of(f));
    else
        fmt::print(out, "  {}#{:<3} {:#018x} {}{} [{}]\n", mark, number, f.pc, function_of(f), where,
                   module_of(f));
}

// A run of runtime frames [first, last] as one line: their functions, innermost
// first. A long run (a tokio worker has some 60 frames between the handler and
// the thread's start) names its first kFoldHead and last kFoldTail frames and
// counts the rest; --full shows every frame.
constexpr std::size_t kFoldHead = 3, kFoldTail = 2;

void folded_line(std::ostream& out, const std::vector<symbolize::Frame>& frames, std::size_t first,
                 std::size_t last) {
    std::string names;
    std::set<std::string> modules;
    const std::size_t count = last - first + 1;
    const bool elide = count > kFoldHead + kFoldTail + 1;
    for (std::size_t i = first; i <= last; ++i) {
        if (!frames[i].module.empty()) modules.insert(printable(basename_of(frames[i].module)));
        const std::size_t k = i - first;
        if (elide && k >= kFoldHead && k < count - kFoldTail) {
            if (k == kFoldHead) names += fmt::format(" < ... {} more ...", count - kFoldHead - kFoldTail);
            continue;
        }
        if (!names.empty()) names += " < ";
        names += function_of(frames[i]);
    }
    std::string mods;
    for (const auto& m : modules) mods += (mods.empty() ? "" : ", ") + m;
    fmt::print(out, "   #{}-{} {} [{} runtime frames: {}]\n", first, last, names, last - first + 1, mods);
}

class TextWriter final : public Writer {
public:
    TextWriter(std::ostream& out, WriterOptions opt) : Writer(out), opt_(opt) {}

    void stall(const StallReport& r) override {
        const auto& e = r.event;
        if (e.kind == detect::EventKind::sample) {
            if (r.registered)
                fmt::print(out_, "{} of {}: {}, progress {}\n", worker_label(e.worker), process_label(r.target),
                           table::to_string(e.worker.state), e.worker.progress);
            else if (e.worker.ns_tid > 0)
                fmt::print(out_, "thread {} ({} in its namespace) \"{}\" of {}\n", e.worker.tid, e.worker.ns_tid,
                           printable(e.worker.name), process_label(r.target));
            else
                fmt::print(out_, "thread {} \"{}\" of {}\n", e.worker.tid, printable(e.worker.name),
                           process_label(r.target));
        } else {
            std::string what = e.kind == detect::EventKind::stall
                                   ? fmt::format("STALL #{}", e.episode)
                                   : fmt::format("STALL #{} still going (report {})", e.episode, e.report);
            fmt::print(out_, "{} {}: {} of {} has made no progress for {} (progress {})\n", rfc3339(r.unix_ns),
                       what, worker_label(e.worker), process_label(r.target), format_duration(e.stalled_for),
                       e.worker.progress);
        }
        if (e.suppressed > 0)
            fmt::print(out_, "  ({} earlier report(s) suppressed by the rate limit)\n", e.suppressed);

        std::string kernel = fmt::format("state {} ({})", r.thread.state, proc::state_name(r.thread.state));
        if (r.thread.syscall_nr >= 0) kernel += ", in " + proc::syscall_name(r.thread.syscall_nr);
        if (!r.thread.wchan.empty()) kernel += ", waiting in " + printable(r.thread.wchan);
        if (!r.not_stopped.empty()) {
            fmt::print(out_, "  thread: {}; {}: waiting for work, not stopped (--all-threads samples it too)\n\n",
                       kernel, printable(r.not_stopped));
            out_.flush();
            return;
        }
        if (!r.capture_error.empty()) {
            fmt::print(out_, "  thread: {}\n  no stack: {}\n\n", kernel, printable(r.capture_error));
            out_.flush();
            return;
        }
        fmt::print(out_, "  thread: {}; stopped {} to sample\n", kernel, format_duration(r.stop_window));

        auto app = first_application_frame(r);
        const auto& fr = r.frames;
        for (std::size_t i = 0; i < fr.size();) {
            bool runtime = !is_application_frame(fr[i], r.target.executable);
            std::size_t j = i;
            while (runtime && j + 1 < fr.size() && !is_application_frame(fr[j + 1], r.target.executable)) ++j;
            if (!opt_.full && runtime && j > i) {
                folded_line(out_, fr, i, j);
                i = j + 1;
                continue;
            }
            frame_line(out_, fr[i], i, app && *app == i);
            ++i;
        }
        if (fr.empty()) fmt::print(out_, "  (no frames)\n");
        if (!r.stopped_early.empty()) fmt::print(out_, "  ... {}\n", r.stopped_early);
        if (app) fmt::print(out_, "  > first frame in the application\n");
        fmt::print(out_, "\n");
        out_.flush();
    }

    void event(const Target& t, const detect::Event& e) override {
        using K = detect::EventKind;
        if (e.kind == K::recovered)
            fmt::print(out_, "{} RECOVERED #{}: {} of pid {} made progress again after {}\n\n", now_rfc3339(),
                       e.episode, worker_label(e.worker), t.pid, format_duration(e.stalled_for));
        else if (e.kind == K::ended)
            fmt::print(out_, "{} ENDED #{}: {} of pid {} went away after {} without progress\n\n",
                       now_rfc3339(), e.episode, worker_label(e.worker), t.pid,
                       format_duration(e.stalled_for));
        out_.flush();
    }

    void compensation(const Target& t, const CompensationEvent& c) override {
        if (c.begins)
            fmt::print(out_, "{} COMPENSATION #{} begins: group \"{}\" of pid {}: every running worker made no "
                             "progress for {}ms; extra threads: {}\n\n",
                       now_rfc3339(), c.episode, printable(c.group), t.pid, c.threshold_ms, c.extra_threads);
        else
            fmt::print(out_, "{} COMPENSATION #{} ended: group \"{}\" of pid {} after {}, with up to {} extra "
                             "thread(s)\n\n",
                       now_rfc3339(), c.episode, printable(c.group), t.pid,
                       format_duration(std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::duration<double, std::milli>(c.duration_ms))),
                       c.extra_threads_peak);
        out_.flush();
    }

    void summary(const Target& t, const detect::Summary& s) override {
        if (s.at_exit)
            fmt::print(out_, "{} SUMMARY of pid {} at exit: {} stall(s), {} never reported and {} update(s) "
                             "suppressed by the rate limit; {} stall(s) open, {} of them not reported\n",
                       now_rfc3339(), t.pid, s.total_stalls, s.total_unreported, s.total_updates_suppressed,
                       s.open, s.open_unreported);
        else
            fmt::print(out_, "{} RATE LIMITED in the last {}: {} stall(s) began, {} ended never reported, {} "
                             "update(s) suppressed (in all: {} stall(s), {} never reported, {} update(s) "
                             "suppressed); {} stall(s) open, {} waiting for a first report\n",
                       now_rfc3339(), format_duration(s.period), s.stalls, s.unreported, s.updates_suppressed,
                       s.total_stalls, s.total_unreported, s.total_updates_suppressed, s.open,
                       s.open_unreported);
        for (const auto& o : s.listed)
            fmt::print(out_, "    #{} {} for {}, {}\n", o.episode, worker_label(o.worker),
                       format_duration(o.stalled_for), o.reported ? "reported" : "not reported");
        if (s.open > s.listed.size()) fmt::print(out_, "    ... and {} more open stall(s)\n", s.open - s.listed.size());
        fmt::print(out_, "\n");
        out_.flush();
    }

private:
    WriterOptions opt_;
};

}  // namespace

std::unique_ptr<Writer> make_text_writer(std::ostream& out, WriterOptions opt) {
    return std::make_unique<TextWriter>(out, opt);
}

}  // namespace sw::report
