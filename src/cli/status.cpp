#include <fmt/format.h>
#include <fmt/ostream.h>

#include <string>

#include "cli/commands.hpp"
#include "common/text.hpp"
#include "proc/target.hpp"

namespace sw::cli {

int run_status(const StatusOptions& opt, std::ostream& out, std::ostream& err) {
    auto fail = [&](const Error& e) {
        fmt::print(err, "stallwatch: {}\n", e.message);
        return exit_code_for(e.code);
    };
    auto process = proc::open_target(opt.pid);
    auto file = process->open_table();
    if (!file) return fail(file.error());
    auto snap = file->read();
    if (!snap) return fail(snap.error());

    const auto& h = snap->header;
    std::size_t parked = 0;
    for (const auto& w : snap->workers) parked += w.state == table::WorkerState::parked;
    pid_t inner = process->pid_in_namespace();
    std::string where = inner > 0 ? fmt::format("; pid {} in its namespace", inner) : std::string{};
    if (std::string cg = process->cgroup(); inner > 0 && !cg.empty()) where += ", cgroup " + printable(cg);
    fmt::print(out, "pid {} ({}{}) app \"{}\": table format {}, {} of {} slots in use "
                    "({} running, {} parked), created {}\n",
               opt.pid, printable(process->name()), where, printable(h.app_name), h.version,
               snap->workers.size(), h.capacity, snap->workers.size() - parked, parked,
               rfc3339(h.created_unix_ns));
    if (snap->workers.empty()) {
        fmt::print(out, "no worker is registered\n");
        return exit_code::ok;
    }
    // In another PID namespace the table's tids are the process's own: both
    // columns, ours first. A tid that maps to no thread shows as "-".
    auto tid = [](pid_t t) { return t > 0 ? std::to_string(t) : std::string("-"); };
    if (inner > 0) {
        fmt::print(out, "{:>5}  {:>8}  {:>8}  {:<8}  {:>14}  {}\n", "SLOT", "TID", "NS-TID", "STATE", "PROGRESS",
                   "NAME");
        for (const auto& w : snap->workers)
            fmt::print(out, "{:>5}  {:>8}  {:>8}  {:<8}  {:>14}  {}\n", w.slot, tid(w.tid), w.ns_tid,
                       table::to_string(w.state), w.progress, printable(w.name));
    } else {
        fmt::print(out, "{:>5}  {:>8}  {:<8}  {:>14}  {}\n", "SLOT", "TID", "STATE", "PROGRESS", "NAME");
        for (const auto& w : snap->workers)
            fmt::print(out, "{:>5}  {:>8}  {:<8}  {:>14}  {}\n", w.slot, tid(w.tid), table::to_string(w.state),
                       w.progress, printable(w.name));
    }
    out.flush();
    return exit_code::ok;
}

}  // namespace sw::cli
