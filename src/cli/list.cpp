// `stallwatch list`: which processes on this host carry a progress table,
// with their workers running, parked and stalled now.
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <thread>

#include "cli/commands.hpp"
#include "common/duration.hpp"
#include "common/text.hpp"
#include "proc/target.hpp"
#include "report/writer.hpp"

namespace sw::cli {
namespace {

struct Found {
    pid_t pid = 0;
    std::string user;
    std::string command;
    proc::TableFile table;
    table::Snapshot first;
    std::size_t running = 0, parked = 0, stalled = 0;
    std::string error;  // the table could not be read
};

}  // namespace

int run_list(const ListOptions& opt, std::ostream& out, std::ostream& /*err*/) {
    std::vector<Found> found;
    std::size_t unreadable = 0;
    pid_t self = ::getpid();
    for (pid_t pid : proc::all_processes()) {
        if (pid == self) continue;
        auto process = proc::open_target(pid);
        auto t = process->open_table();
        if (!t) {
            if (t.error().code == Errc::permission_denied) ++unreadable;
            continue;  // no table, or exited meanwhile
        }
        Found f{pid, process->owner(), process->name(), std::move(*t), {}, 0, 0, 0, {}};
        if (auto s = f.table.read(); s) f.first = std::move(*s);
        else f.error = s.error().message;
        found.push_back(std::move(f));
    }
    // Stalled now: running at both reads, one threshold apart, with no progress.
    if (!found.empty()) std::this_thread::sleep_for(opt.threshold);
    for (auto& f : found) {
        if (!f.error.empty()) continue;
        auto second = f.table.read();
        if (!second) {
            f.error = second.error().message;
            continue;
        }
        for (const auto& w : f.first.workers) {
            if (w.state == table::WorkerState::parked) {
                ++f.parked;
                continue;
            }
            ++f.running;
            for (const auto& v : second->workers)
                if (v.same_identity(w) && v.state == table::WorkerState::running && v.progress == w.progress)
                    ++f.stalled;
        }
    }

    if (opt.format == report::Format::json) {
        using json = nlohmann::ordered_json;
        std::string now = report::now_rfc3339();
        for (const auto& f : found) {
            json j;
            j["timestamp"] = now;
            j["event"] = "process";
            j["stallwatch.schema_version"] = report::json_schema_version;
            j["process.pid"] = f.pid;
            // Absent values are null, never "" (docs/json-events.md).
            auto str_or_null = [](const std::string& v) { return v.empty() ? json(nullptr) : json(v); };
            j["process.owner"] = str_or_null(f.user);
            j["process.command"] = str_or_null(f.command);
            j["service.name"] = str_or_null(f.first.header.app_name);
            j["stallwatch.workers.running"] = f.running;
            j["stallwatch.workers.parked"] = f.parked;
            j["stallwatch.workers.stalled"] = f.stalled;
            j["error.message"] = f.error.empty() ? json(nullptr) : json(f.error);
            out << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
        }
        json s;
        s["timestamp"] = now;
        s["event"] = "list_summary";
        s["stallwatch.schema_version"] = report::json_schema_version;
        s["stallwatch.processes"] = found.size();
        s["stallwatch.unreadable"] = unreadable;
        s["stallwatch.threshold_ms"] = static_cast<double>(opt.threshold.count()) / 1e6;
        out << s.dump() << '\n';
    } else {
        if (found.empty()) {
            fmt::print(out, "no process with a stallwatch table\n");
        } else {
            fmt::print(out, "{:>8}  {:<12} {:<16} {:<20} {:>7} {:>6} {:>7}\n", "PID", "USER", "COMMAND", "APP",
                       "RUNNING", "PARKED", "STALLED");
            for (const auto& f : found) {
                if (!f.error.empty()) {
                    fmt::print(out, "{:>8}  {:<12} {:<16} {}\n", f.pid, printable(f.user), printable(f.command),
                               printable(f.error));
                    continue;
                }
                fmt::print(out, "{:>8}  {:<12} {:<16} {:<20} {:>7} {:>6} {:>7}\n", f.pid, printable(f.user),
                           printable(f.command), printable(f.first.header.app_name), f.running, f.parked,
                           f.stalled);
            }
        }
        if (unreadable > 0)
            fmt::print(out, "({} process(es) could not be inspected: not permitted; run as root to see them)\n",
                       unreadable);
        fmt::print(out, "(stalled: running and without progress for {})\n", format_duration(opt.threshold));
    }
    out.flush();
    return exit_code::ok;
}

}  // namespace sw::cli
