// `stallwatch attach PID`: watch a running process until Ctrl-C, SIGTERM,
// SIGHUP, the process's exit, or (--once) the first report.
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/watch.hpp"

namespace sw::cli {

int run_attach(const AttachOptions& opt, std::ostream& out, std::ostream& err) {
    auto output = Output::open(opt.out.output, out, "standard output", err);
    if (!output) return exit_code::failure;
    auto writer = report::make_writer(opt.out.format, output->stream(),
                                      writer_options(opt.out, STDOUT_FILENO));

    WatchOptions w;
    w.timing = opt.timing;
    w.once = opt.once;
    w.sampler = sampler_options(opt.out);
    w.skip_joined_updates = opt.out.format == report::Format::text;
    auto result = watch(opt.pid, w, *writer, err, {SIGINT, SIGTERM, SIGHUP}, [](int, bool) { return true; });
    writer->finish();
    if (!output->stream()) {  // the watch's own message does not name the file
        int seen = result.error && result.error->sys_errno ? result.error->sys_errno : errno;
        fmt::print(err, "stallwatch: {}\n", output->write_error(seen));
        return exit_code::failure;
    }

    switch (result.end) {
    case WatchEnd::signal:
        fmt::print(err, "stallwatch: {} received; {} stall report(s) made{}, detached\n", strsignal(result.signal),
                   result.reports, withdrawn_note(result));
        return exit_code::ok;
    case WatchEnd::once:
        return exit_code::ok;
    case WatchEnd::target_exited:
        fmt::print(err, "stallwatch: {}\n", exited_line(opt.pid, result));
        return exit_code::target_exited;
    case WatchEnd::failed:
        break;
    }
    fmt::print(err, "stallwatch: {}\n", result.error ? result.error->message : "failed");
    return result.error ? exit_code_for(result.error->code) : exit_code::failure;
}

}  // namespace sw::cli
