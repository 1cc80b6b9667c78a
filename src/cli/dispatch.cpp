// Dispatch from parsed options to the command that runs them.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/commands.hpp"
#include "common/text.hpp"
#include "proc/process.hpp"

namespace sw::cli {
namespace {

// A thread id given for a pid: /proc/TID answers like a process, so without
// this every report would name the thread as the process. Take its process,
// and say so. A pid that is gone is left to the command to report.
pid_t as_process(pid_t given, std::ostream& err) {
    auto process = proc::process_of_thread(given);
    if (!process || *process == given) return given;
    fmt::print(err, "stallwatch: {} is a thread of process {} ({}); using pid {}\n", given, *process,
               printable(proc::comm(*process)), *process);
    return *process;
}

template <class T>
T with_process(T opt, std::ostream& err) {
    opt.pid = as_process(opt.pid, err);
    return opt;
}

}  // namespace

int run(const Options& opt, std::ostream& out, std::ostream& err) {
    struct Dispatch {
        std::ostream& out;
        std::ostream& err;
        int operator()(const StatusOptions& o) const { return run_status(with_process(o, err), out, err); }
        int operator()(const AttachOptions& o) const {
            return o.all ? run_attach_all(o, out, err) : run_attach(with_process(o, err), out, err);
        }
        int operator()(const DumpOptions& o) const { return run_dump(with_process(o, err), out, err); }
        int operator()(const RunOptions& o) const { return run_run(o, err); }
        int operator()(const ListOptions& o) const { return run_list(o, out, err); }
        int operator()(const TopOptions& o) const { return run_top(with_process(o, err), out, err); }
    };
    return std::visit(Dispatch{out, err}, opt.command);
}

}  // namespace sw::cli
