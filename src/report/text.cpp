#include "report/text.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "common/duration.hpp"
#include "common/text.hpp"

namespace sw::report {
namespace {

std::string basename_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string worker_label(const table::Worker& w) {
    return fmt::format("worker \"{}\" (tid {}, slot {})", printable(w.name), w.tid, w.slot);
}

}  // namespace

void write_text(std::ostream& out, const StallReport& r) {
    const auto& e = r.event;
    std::string what = e.kind == detect::EventKind::stall
                           ? fmt::format("STALL #{}", e.episode)
                           : fmt::format("STALL #{} still going (report {})", e.episode, e.report);
    fmt::print(out, "{} {}: {} of pid {} ({}) has made no progress for {} (progress {})\n",
               rfc3339(r.unix_ns), what, worker_label(e.worker), r.target.pid,
               printable(r.target.process_name), format_duration(e.stalled_for), e.worker.progress);
    if (e.suppressed > 0)
        fmt::print(out, "  ({} earlier report(s) suppressed by the rate limit)\n", e.suppressed);

    std::string kernel = fmt::format("state {} ({})", r.thread.state, proc::state_name(r.thread.state));
    if (r.thread.syscall_nr >= 0) kernel += ", in " + proc::syscall_name(r.thread.syscall_nr);
    if (!r.thread.wchan.empty()) kernel += ", waiting in " + printable(r.thread.wchan);
    if (!r.capture_error.empty()) {
        fmt::print(out, "  thread: {}\n  no stack: {}\n\n", kernel, r.capture_error);
        out.flush();
        return;
    }
    fmt::print(out, "  thread: {}; stopped {} to sample\n", kernel, format_duration(r.stop_window));

    auto app = first_application_frame(r);
    std::size_t number = 0;
    for (std::size_t i = 0; i < r.frames.size(); ++i) {
        const auto& f = r.frames[i];
        std::string name = f.function.empty() ? "??" : printable(f.function);
        std::string where;
        if (f.location) {
            where = fmt::format(" at {}:{}", printable(f.location->file), f.location->line);
            if (f.location->column > 0) where += fmt::format(":{}", f.location->column);
        }
        std::string module = f.module.empty()
                                 ? "unmapped"
                                 : fmt::format("{}+{:#x}", printable(basename_of(f.module)), f.module_offset);
        const char* mark = app && *app == i ? ">" : " ";
        if (f.inlined)
            fmt::print(out, "  {}#{:<3} {:18} {} (inlined){} [{}]\n", mark, number, "", name, where, module);
        else
            fmt::print(out, "  {}#{:<3} {:#018x} {}{} [{}]\n", mark, number, f.pc, name, where, module);
        ++number;
    }
    if (r.frames.empty()) fmt::print(out, "  (no frames)\n");
    if (!r.stopped_early.empty()) fmt::print(out, "  ... {}\n", r.stopped_early);
    if (app) fmt::print(out, "  > first frame in the application\n");
    fmt::print(out, "\n");
    out.flush();
}

void write_text_event(std::ostream& out, const Target& t, const detect::Event& e) {
    using K = detect::EventKind;
    std::string now = rfc3339(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count()));
    if (e.kind == K::recovered)
        fmt::print(out, "{} RECOVERED #{}: {} of pid {} made progress again after {}\n\n", now,
                   e.episode, worker_label(e.worker), t.pid, format_duration(e.stalled_for));
    else if (e.kind == K::ended)
        fmt::print(out, "{} ENDED #{}: {} of pid {} went away after {} without progress\n\n", now,
                   e.episode, worker_label(e.worker), t.pid, format_duration(e.stalled_for));
    out.flush();
}

}  // namespace sw::report
