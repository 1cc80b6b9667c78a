#include <fmt/format.h>
#include <fmt/ostream.h>

#include <optional>
#include <set>

#include "common/duration.hpp"
#include "common/text.hpp"
#include "report/classify.hpp"
#include "report/report.hpp"
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

// SGR sequences for a terminal (--color); empty strings when colour is off.
struct Palette {
    const char* alarm = "";    // STALL, DEADLOCK
    const char* blocked = "";  // the innermost frame: where the thread waits
    const char* app = "";      // the first application frame
    const char* holder = "";   // who holds the lock
    const char* good = "";     // RECOVERED
    const char* dim = "";      // folded runtime frames
    const char* reset = "";

    static Palette on() { return {"\x1b[1;31m", "\x1b[31m", "\x1b[1;33m", "\x1b[1;35m", "\x1b[32m", "\x1b[2m", "\x1b[0m"}; }
};

std::string paint(const std::string& s, const char* sgr, const Palette& p) {
    if (*sgr == '\0') return s;
    return std::string(sgr) + s + p.reset;
}

std::string where_of(const symbolize::Frame& f) {
    if (!f.location) return {};
    std::string where = fmt::format(" at {}:{}", printable(f.location->file), f.location->line);
    if (f.location->column > 0) where += fmt::format(":{}", f.location->column);
    return where;
}

void frame_line(std::ostream& out, const symbolize::Frame& f, std::size_t number, bool marked, const char* sgr,
                const Palette& p, const std::string& indent) {
    const char* mark = marked ? ">" : " ";
    std::string line;
    if (f.inlined)
        line = fmt::format("{}#{:<3} {:18} {} (inlined){} [{}]", mark, number, "", function_of(f), where_of(f),
                           module_of(f));
    else
        line = fmt::format("{}#{:<3} {:#018x} {}{} [{}]", mark, number, f.pc, function_of(f), where_of(f),
                           module_of(f));
    fmt::print(out, "{}  {}\n", indent, paint(line, sgr, p));
}

// A run of runtime frames [first, last] as one line: their functions, innermost
// first. A long run (a tokio worker has some 60 frames between the handler and
// the thread's start) names its first kFoldHead and last kFoldTail frames and
// counts the rest; --full shows every frame.
constexpr std::size_t kFoldHead = 3, kFoldTail = 2;

void folded_line(std::ostream& out, const std::vector<symbolize::Frame>& frames, std::size_t first,
                 std::size_t last, const Palette& p, const std::string& indent) {
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
    // The run that holds frame 0 is where the thread is blocked.
    fmt::print(out, "{}   {}\n", indent,
               paint(fmt::format("#{}-{} {} [{} runtime frames: {}]", first, last, names, last - first + 1, mods),
                     first == 0 ? p.blocked : p.dim, p));
}

// Frames i and j are the same call: recursion shows as a run of them.
bool same_frame(const symbolize::Frame& a, const symbolize::Frame& b) {
    return a.pc == b.pc && a.inlined == b.inlined && a.function == b.function && a.module == b.module;
}

// Runs of this many identical frames or more are printed as one line.
constexpr std::size_t kRecursionRun = 3;

// A stack: runtime runs folded and recursion collapsed (unless --full), the
// innermost and the first application frame marked.
void stack_lines(std::ostream& out, const std::vector<symbolize::Frame>& fr, const std::string& executable, bool full,
                 const Palette& p, const std::string& indent) {
    std::optional<std::size_t> app;
    for (std::size_t i = 0; i < fr.size() && !app; ++i)
        if (is_application_frame(fr[i], executable)) app = i;
    for (std::size_t i = 0; i < fr.size();) {
        std::size_t same = i;
        while (same + 1 < fr.size() && same_frame(fr[same + 1], fr[i])) ++same;
        if (!full && same + 1 - i >= kRecursionRun) {
            const bool has_app = app && *app >= i && *app <= same;
            const std::string line = fmt::format("{}#{}-{} {}{} \u00d7{} [{}]", has_app ? ">" : " ", i, same,
                                                 function_of(fr[i]), where_of(fr[i]), same + 1 - i, module_of(fr[i]));
            fmt::print(out, "{}  {}\n", indent, paint(line, has_app ? p.app : "", p));
            i = same + 1;
            continue;
        }
        bool runtime = !is_application_frame(fr[i], executable);
        std::size_t j = i;
        while (runtime && j + 1 < fr.size() && !is_application_frame(fr[j + 1], executable)) ++j;
        if (!full && runtime && j > i) {
            folded_line(out, fr, i, j, p, indent);
            i = j + 1;
            continue;
        }
        const bool is_app = app && *app == i;
        frame_line(out, fr[i], i, is_app, is_app ? p.app : i == 0 ? p.blocked : "", p, indent);
        ++i;
    }
    if (fr.empty()) fmt::print(out, "{}  (no frames)\n", indent);
}

}  // namespace

std::vector<symbolize::Detail> text_detail(const std::vector<std::string>& modules, const std::string& executable) {
    std::vector<symbolize::Detail> detail;
    detail.reserve(modules.size());
    for (const auto& m : modules)
        detail.push_back(runtime_module(m, executable) ? symbolize::Detail::name : symbolize::Detail::full);
    return detail;
}

namespace {

std::string kernel_state(const proc::ThreadState& t) {
    std::string kernel = fmt::format("state {} ({})", t.state, proc::state_name(t.state));
    if (t.syscall_nr >= 0) kernel += ", in " + proc::syscall_name(t.syscall_nr);
    if (!t.wchan.empty()) kernel += ", waiting in " + printable(t.wchan);
    return kernel;
}

// "tid 7607 "maintenance"" (with its namespace id when it has one).
std::string thread_label(pid_t tid, pid_t ns_tid, const std::string& name) {
    std::string id = ns_tid > 0 ? fmt::format("tid {} ({} in its namespace)", tid, ns_tid) : fmt::format("tid {}", tid);
    return name.empty() ? id : fmt::format("{} \"{}\"", id, printable(name));
}

class TextWriter final : public Writer {
public:
    TextWriter(std::ostream& out, WriterOptions opt)
        : Writer(out), opt_(opt), p_(opt.color ? Palette::on() : Palette{}) {}

    void stall(const StallReport& r) override {
        const auto& e = r.event;
        if (e.joined) {  // one line: the incident's first report showed the stack
            if (e.kind == detect::EventKind::stall) joined_line(r);
            out_.flush();
            return;
        }
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
                       paint(what, p_.alarm, p_), worker_label(e.worker), process_label(r.target),
                       format_duration(e.stalled_for), e.worker.progress);
        }
        if (e.suppressed > 0)
            fmt::print(out_, "  ({} earlier report(s) suppressed by the rate limit)\n", e.suppressed);

        std::string kernel = kernel_state(r.thread);
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
        // The frozen time; a stop that was slow to come (the thread waited
        // for a CPU to enter it, running meanwhile) is said apart.
        std::string wait;
        if (r.stop_wait >= std::chrono::milliseconds(1))
            wait = fmt::format(" (the stop came {} after it was asked for)", format_duration(r.stop_wait));
        fmt::print(out_, "  thread: {}; stopped {} to sample{}\n", kernel, format_duration(r.stop_window), wait);
        stack_lines(out_, r.frames, r.target.executable, opt_.full, p_, "");
        if (!r.stopped_early.empty()) fmt::print(out_, "  ... {}\n", r.stopped_early);
        if (first_application_frame(r)) fmt::print(out_, "  > first frame in the application\n");
        lock_lines(r);
        fmt::print(out_, "\n");
        out_.flush();
    }

    void deadlock(const Target& t, const Deadlock& d) override {
        if (d.cycle.size() == 1)
            fmt::print(out_, "{} {} in {}: a thread waits for a mutex it holds itself\n", now_rfc3339(),
                       paint("DEADLOCK", p_.alarm, p_), process_label(t));
        else
            fmt::print(out_, "{} {} in {}: {} threads wait for each other's mutexes\n", now_rfc3339(),
                       paint("DEADLOCK", p_.alarm, p_), process_label(t), d.cycle.size());
        for (std::size_t i = 0; i < d.cycle.size(); ++i) {
            const auto& l = d.cycle[i];
            const auto& next = d.cycle[(i + 1) % d.cycle.size()];
            fmt::print(out_, "  {}{} waits for {}, held by {}\n", thread_label(l.tid, l.ns_tid, l.name),
                       l.at.empty() ? "" : " at " + printable(l.at), describe_lock(l.waits),
                       paint(thread_label(next.tid, next.ns_tid, next.name), p_.holder, p_));
        }
        fmt::print(out_, "\n");
        out_.flush();
    }

    void incident(const Target& t, const IncidentSummary& s) override {
        fmt::print(out_, "{} {}: {} workers of pid {} stalled at {}, longest {}, {}\n\n", now_rfc3339(),
                   paint(fmt::format("INCIDENT #{}", s.id), s.ended ? p_.good : p_.alarm, p_), s.workers, t.pid,
                   s.at.empty() ? std::string("the same stack") : printable(s.at), format_duration(s.longest),
                   s.ended ? std::string("ended") : fmt::format("{} still stalled", s.open));
        out_.flush();
    }

    void event(const Target& t, const detect::Event& e) override {
        using K = detect::EventKind;
        if (e.joined) return;  // counted in the incident's end (INCIDENT ... ended)
        if (e.kind == K::recovered)
            fmt::print(out_, "{} {}: {} of pid {} made progress again after {}\n\n", now_rfc3339(),
                       paint(fmt::format("RECOVERED #{}", e.episode), p_.good, p_), worker_label(e.worker), t.pid,
                       format_duration(e.stalled_for));
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
    // `+ worker "io-7" (tid 812, slot 7): same stack as STALL #3, 1.9s`
    void joined_line(const StallReport& r) {
        const auto& e = r.event;
        std::string lock;
        if (r.lock && r.lock->owner > 0) {
            std::string holder = r.holders.empty() ? fmt::format("tid {}", r.lock->owner)
                                                   : thread_label(r.holders[0].tid, r.holders[0].ns_tid, r.holders[0].name);
            lock = fmt::format("; waits for {} held by {}", describe_lock(*r.lock), paint(holder, p_.holder, p_));
        }
        fmt::print(out_, "{} + {}: same stack as STALL #{} (incident #{}), {}{}\n", rfc3339(r.unix_ns),
                   worker_label(e.worker), e.incident, e.incident, format_duration(e.stalled_for), lock);
    }

    // What the thread waits on, who holds it and the holder's stack, then
    // what that one waits on ... (docs/locks.md).
    void lock_lines(const StallReport& r) {
        if (!r.lock) return;
        const LockWait* w = &*r.lock;
        std::string waiter = "  waiting for ";
        for (std::size_t k = 0;; ++k) {
            if (w->owner <= 0) {
                fmt::print(out_, "{}{}: owner unknown ({})\n", waiter, describe_lock(*w), printable(w->unknown));
                return;
            }
            if (k >= r.holders.size()) {
                // The chain came back to a thread in it (a deadlock, or a
                // cycle that did not hold when checked again), or grew too long.
                std::string who = fmt::format("tid {}", w->owner);
                if (w->owner == r.event.worker.tid)
                    who = thread_label(w->owner, r.event.worker.ns_tid, r.event.worker.name) + (k == 0 ? " itself" : "");
                for (const auto& h : r.holders)
                    if (h.tid == w->owner) who = thread_label(h.tid, h.ns_tid, h.name);
                if (r.deadlock)
                    fmt::print(out_, "{}{} held by {}: {}\n", waiter, describe_lock(*w), paint(who, p_.holder, p_),
                               paint("a DEADLOCK", p_.alarm, p_));
                else
                    fmt::print(out_, "{}{} held by {} ({})\n", waiter, describe_lock(*w), paint(who, p_.holder, p_),
                               printable(r.chain_end));
                return;
            }
            const auto& h = r.holders[k];
            std::string at = application_frame_label(h.frames, r.target.executable);
            fmt::print(out_, "{}{} held by {}{}\n", waiter, describe_lock(*w),
                       paint(thread_label(h.tid, h.ns_tid, h.name), p_.holder, p_),
                       at.empty() ? "" : " at " + printable(at));
            if (!h.capture_error.empty()) {
                fmt::print(out_, "    holder's stack: {}\n", printable(h.capture_error));
                return;
            }
            fmt::print(out_, "    holder {}{}, stopped {} to sample:\n", h.registered ? "worker " : "",
                       thread_label(h.tid, h.ns_tid, h.name), format_duration(h.stop_window));
            stack_lines(out_, h.frames, r.target.executable, opt_.full, p_, "    ");
            if (!h.stopped_early.empty()) fmt::print(out_, "      ... {}\n", h.stopped_early);
            if (!h.waits) return;
            w = &*h.waits;
            waiter = "  which is waiting for ";
        }
    }

    WriterOptions opt_;
    Palette p_;
};

}  // namespace

std::unique_ptr<Writer> make_text_writer(std::ostream& out, WriterOptions opt) {
    return std::make_unique<TextWriter>(out, opt);
}

}  // namespace sw::report
