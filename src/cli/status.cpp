// `stallwatch status PID`: the progress table, read twice --threshold apart,
// with each worker's time since its last progress as far as the two reads
// bound it, and STALLED for a running worker that made none in between.
// Only reads the table: no thread is stopped.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <string>
#include <thread>

#include "cli/commands.hpp"
#include "cli/sampler.hpp"
#include "common/duration.hpp"
#include "common/text.hpp"
#include "detect/glance.hpp"
#include "proc/target.hpp"
#include "report/json.hpp"
#include "report/writer.hpp"

namespace sw::cli {
namespace {

using Clock = std::chrono::steady_clock;

// The two reads and what they tell.
struct TwoReads {
    table::Snapshot second;
    detect::ReadSpan span;
    std::vector<detect::WorkerGlance> workers;
    std::size_t running = 0, parked = 0, stalled = 0, frozen = 0, gone = 0;
};

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

// "<101ms" (moved), ">=100ms" (did not move), "-" (registered between the reads).
std::string since_text(const detect::WorkerGlance& g) {
    if (!g.since) return "-";
    if (g.since->at_most) return "<" + format_duration_up(*g.since->at_most);
    return ">=" + format_duration_down(g.since->at_least);
}

// Never empty ("-"): a script that splits a line at whitespace finds the
// same fields in every line (NAME, which may hold spaces, last).
std::string_view flag_text(const detect::WorkerGlance& g) {
    if (g.gone) return "gone";
    if (g.stalled) return "STALLED";
    if (g.frozen) return "stopped";
    if (!g.seen_at_first) return "new";
    return "-";
}

void print_text(std::ostream& out, const StatusOptions& opt, proc::Target& process, const TwoReads& r) {
    const auto& snap = r.second;
    const auto& h = snap.header;
    pid_t inner = process.pid_in_namespace();
    std::string where = inner > 0 ? fmt::format("; pid {} in its namespace", inner) : std::string{};
    if (std::string cg = process.cgroup(); inner > 0 && !cg.empty()) where += ", cgroup " + printable(cg);
    fmt::print(out, "pid {} ({}{}) app \"{}\": table format {}, {} of {} slots in use "
                    "({} running, {} parked), created {}\n",
               opt.pid, printable(process.name()), where, printable(h.app_name), h.version, snap.workers.size(),
               h.capacity, r.running, r.parked, rfc3339(h.created_unix_ns));
    if (snap.workers.empty()) {
        fmt::print(out, "no worker is registered\n");
        return;
    }
    // In another PID namespace the table's tids are the process's own: both
    // columns, ours first. A tid that maps to no thread shows as "-". The
    // name stays last, as in ps(1): it may hold spaces, so it is the rest of
    // the line after the fields before it, which are never empty (FLAG is
    // "-" when there is nothing to flag); scripts are pointed to --format
    // json. What the two reads tell comes before it.
    auto tid = [](pid_t t) { return t > 0 ? std::to_string(t) : std::string("-"); };
    if (inner > 0)
        fmt::print(out, "{:>5}  {:>8}  {:>8}  {:<8}  {:>14}  {:<14}  {:<7}  {}\n", "SLOT", "TID", "NS-TID", "STATE",
                   "PROGRESS", "SINCE PROGRESS", "FLAG", "NAME");
    else
        fmt::print(out, "{:>5}  {:>8}  {:<8}  {:>14}  {:<14}  {:<7}  {}\n", "SLOT", "TID", "STATE", "PROGRESS",
                   "SINCE PROGRESS", "FLAG", "NAME");
    for (const auto& g : r.workers) {
        const auto& w = g.worker;
        if (inner > 0)
            fmt::print(out, "{:>5}  {:>8}  {:>8}  {:<8}  {:>14}  {:<14}  {:<7}  {}\n", w.slot, tid(w.tid), w.ns_tid,
                       table::to_string(w.state), w.progress, since_text(g), flag_text(g), printable(w.name));
        else
            fmt::print(out, "{:>5}  {:>8}  {:<8}  {:>14}  {:<14}  {:<7}  {}\n", w.slot, tid(w.tid),
                       table::to_string(w.state), w.progress, since_text(g), flag_text(g), printable(w.name));
    }
    std::string stopped = r.frozen == 0 ? std::string{}
                                        : fmt::format("; {} stopped by a signal or a debugger, not counted", r.frozen);
    if (r.gone > 0)
        stopped += fmt::format("; {} gone (the thread exited without unregistering, or is not visible from here), "
                               "not counted",
                               r.gone);
    fmt::print(out, "({} STALLED: running, with no progress between two reads of the table {} apart{})\n", r.stalled,
               format_duration_down(r.span.between), stopped);
}

void print_json(std::ostream& out, const StatusOptions& opt, proc::Target& process, const TwoReads& r) {
    using json = nlohmann::ordered_json;
    const auto target = describe_target(process, r.second.header.app_name);
    const std::string now = report::now_rfc3339();
    for (const auto& g : r.workers) {
        const auto& w = g.worker;
        json j = report::event_base("status_worker", target, now);
        // 0: no thread of the process has that id now (gone, or in a nested
        // PID namespace, not visible from here).
        j["thread.id"] = w.tid > 0 ? json(w.tid) : json(nullptr);
        j["thread.name"] = w.name.empty() ? json(nullptr) : json(w.name);
        j["stallwatch.thread.id_in_namespace"] = w.ns_tid > 0 ? json(w.ns_tid) : json(nullptr);
        j["stallwatch.worker.slot"] = w.slot;
        j["stallwatch.worker.state"] = table::to_string(w.state);
        j["stallwatch.worker.progress"] = w.progress;
        j["stallwatch.worker.progress_moved"] = g.seen_at_first ? json(g.moved) : json(nullptr);
        j["stallwatch.worker.since_progress_min_ms"] = g.since ? json(ms(g.since->at_least)) : json(nullptr);
        j["stallwatch.worker.since_progress_max_ms"] =
            g.since && g.since->at_most ? json(ms(*g.since->at_most)) : json(nullptr);
        j["stallwatch.worker.stalled"] = g.stalled;
        j["stallwatch.thread.frozen"] = g.frozen;
        j["stallwatch.thread.gone"] = g.gone;
        out << report::event_line(j) << '\n';
    }
    const auto& h = r.second.header;
    json s = report::event_base("status_summary", target, now);
    s["stallwatch.table.version"] = h.version;
    s["stallwatch.table.capacity"] = h.capacity;
    s["stallwatch.table.created"] = rfc3339(h.created_unix_ns);
    s["stallwatch.workers.registered"] = r.second.workers.size();
    s["stallwatch.workers.running"] = r.running;
    s["stallwatch.workers.parked"] = r.parked;
    s["stallwatch.workers.stalled"] = r.stalled;
    s["stallwatch.threshold_ms"] = ms(opt.threshold);
    s["stallwatch.reads_apart_ms"] = ms(r.span.between);
    out << report::event_line(s) << '\n';
}

}  // namespace

int run_status(const StatusOptions& opt, std::ostream& out, std::ostream& err) {
    auto fail = [&](const Error& e) {
        fmt::print(err, "stallwatch: {}\n", e.message);
        return exit_code_for(e.code);
    };
    auto process = proc::open_target(opt.pid);
    auto file = process->open_table();
    if (!file) return fail(file.error());
    const auto table_id = process->fd_file(file->fd_number());

    const auto t0 = Clock::now();
    auto first = file->read();
    const auto t1 = Clock::now();
    if (!first) return fail(first.error());
    std::this_thread::sleep_for(opt.threshold);
    const auto t2 = Clock::now();
    auto second = file->read();
    const auto t3 = Clock::now();
    if (!second) return fail(second.error());
    // Our descriptor keeps the table readable after the process is gone or
    // has left it (exec): its counters would then look stalled.
    if (process->exited()) {
        fmt::print(err, "stallwatch: pid {} exited while its table was being read\n", opt.pid);
        return exit_code::target_exited;
    }
    if (process->fd_file(file->fd_number()) != table_id)
        return fail(make_error(Errc::no_table, fmt::format("pid {} no longer holds the table being read (it called "
                                                           "exec, or closed it)",
                                                           opt.pid)));

    TwoReads r;
    r.span = detect::ReadSpan{t2 - t1, t3 - t0};
    auto frozen = [&](pid_t tid) { return process->thread_frozen(tid); };
    auto gone = [&](pid_t tid) { return !process->has_thread(tid); };
    r.workers = detect::glance(*first, *second, r.span, opt.threshold, frozen, gone);
    r.second = std::move(*second);
    for (const auto& g : r.workers) {
        (g.worker.state == table::WorkerState::parked ? r.parked : r.running)++;
        r.stalled += g.stalled;
        r.frozen += g.frozen;
        r.gone += g.gone;
    }
    if (opt.format == report::Format::json)
        print_json(out, opt, *process, r);
    else
        print_text(out, opt, *process, r);
    out.flush();
    return exit_code::ok;
}

}  // namespace sw::cli
