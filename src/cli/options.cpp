#include "cli/options.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <sstream>

#include "common/error.hpp"
#include "stallwatch/table_abi.h"

#ifndef STALLWATCH_VERSION
#error "STALLWATCH_VERSION must be defined by the build"
#endif

namespace sw::cli {

std::string version_text() {
    return fmt::format("stallwatch {}\nreads table format versions: {}\n", STALLWATCH_VERSION,
                       STALLWATCH_TABLE_VERSION);
}

ParseResult parse_command_line(const std::vector<std::string>& args) {
    CLI::App app{"stallwatch: find the stack of a stalled worker thread, from outside the "
                 "process.\n\nThe application links the stallwatch shim, which keeps one "
                 "progress counter per worker in a shared table; stallwatch reads that table.",
                 "stallwatch"};
    app.require_subcommand(1);
    app.set_version_flag("-V,--version", version_text);
    app.footer("Exit status: 0 ok, 1 failure, 3 no such process, 4 not permitted, 5 no table, "
               "6 unsupported or corrupt table, 64 usage error.\nSee stallwatch(1).");

    StatusOptions status;
    auto* st = app.add_subcommand("status", "Print the progress table of a process: one line per "
                                            "registered worker (slot, tid, state, progress, name).");
    st->add_option("pid", status.pid, "Process id of the instrumented program")
        ->required()
        ->check(CLI::PositiveNumber);

    std::vector<std::string> rev(args.rbegin(), args.rend());
    if (!rev.empty()) rev.pop_back();  // program name
    try {
        app.parse(rev);
    } catch (const CLI::ParseError& e) {
        std::ostringstream out, err;
        int code = app.exit(e, out, err);
        // --help and --version are successes; everything else is a usage error.
        if (code != 0) {
            // One line: what was wrong, and where to read more.
            return EarlyExit{exit_code::usage, {},
                             fmt::format("stallwatch: {} (see 'stallwatch --help')\n", e.what())};
        }
        return EarlyExit{0, out.str(), {}};
    }
    if (st->parsed()) return Options{status};
    return EarlyExit{exit_code::usage, {}, "stallwatch: no command given; see --help\n"};
}

}  // namespace sw::cli
