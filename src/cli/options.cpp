#include "cli/options.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <charconv>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <variant>

#include "common/duration.hpp"
#include "common/error.hpp"
#include "stallwatch/table_abi.h"

#ifndef STALLWATCH_VERSION
#error "STALLWATCH_VERSION must be defined by the build"
#endif

namespace sw::cli {
namespace {

// Reading the table more often than this costs a core and measures nothing
// finer: a stall is found one interval late at most, and 1 ms is far below
// any threshold worth reporting (man/stallwatch.1, --interval).
constexpr std::chrono::milliseconds min_interval{1};

// CLI11 validator for "250ms", "2s": checks the text; the value is parsed after.
struct DurationValidator : CLI::Validator {
    // `what` names the option in the message about a too short value.
    DurationValidator(bool allow_zero, std::chrono::nanoseconds at_least = {}, std::string what = {}) {
        name_ = "DURATION";
        func_ = [=](std::string& s) -> std::string {
            auto d = read_duration(s);
            if (!d) return d.error().message;
            if (!allow_zero && d->count() == 0) return "must be more than zero";
            if (*d < at_least)
                return fmt::format("'{}' is too short: the {} is at least {}", s, what, format_duration(at_least));
            return {};
        };
    }
};

// A process id: a decimal number from 1 to the largest pid_t.
struct PidValidator : CLI::Validator {
    PidValidator() {
        name_ = "PID";
        func_ = [](std::string& s) -> std::string {
            pid_t pid = 0;
            auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), pid);
            if (ec != std::errc{} || end != s.data() + s.size() || pid <= 0)
                return fmt::format("'{}' is not a process id: give a number from 1 to {}", s,
                                   std::numeric_limits<pid_t>::max());
            return {};
        };
    }
};

// --output names a file; an empty name is a mistake, not standard output.
struct FileNameValidator : CLI::Validator {
    explicit FileNameValidator(std::string standard) {
        name_ = "FILE";
        func_ = [standard](std::string& s) -> std::string {
            if (s.empty()) return fmt::format("give a file name (without --output, reports go to {})", standard);
            return {};
        };
    }
};

// --max-event-bytes: 0 (no limit) or at least the smallest limit in which a
// stack event always fits.
class MaxEventBytesValidator : public CLI::Validator {
public:
    MaxEventBytesValidator() {
        name_ = "BYTES";
        func_ = [](std::string& s) -> std::string {
            std::size_t n = 0;
            auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
            if (ec != std::errc{} || end != s.data() + s.size())
                return fmt::format("'{}' is not a number of bytes", s);
            if (n != 0 && n < report::min_max_event_bytes)
                return fmt::format("{} bytes is too small: give 0 (no limit) or at least {}", n,
                                   report::min_max_event_bytes);
            return {};
        };
    }
};

constexpr const char* command_names = "status, attach, dump, run, list or top";

// The screen of `top` is redrawn at most this often: faster cannot be read,
// and the table is read every 10ms between redraws anyway.
constexpr std::chrono::milliseconds min_refresh{100};

// What every duration option takes (common/duration.cpp), for the footers.
std::string duration_help(bool zero_allowed) {
    return fmt::format("DURATION: a number and a unit: ns, us, ms, s, m (or min), h; for example 250ms, 1.5s, "
                       "2m. A number without a unit is refused{}.",
                       zero_allowed ? ", except 0" : "");
}

constexpr const char* exit_status_help =
    "Exit status: 0 ok, 1 failure (dump: some thread could not be sampled), 2 target exited, 3 no such process, "
    "4 not permitted, 5 no table, 6 unsupported or corrupt table, 64 usage error. run exits with the program's "
    "status (128+N if signal N killed it; 126/127 if it could not be started).\nSee stallwatch(1).";

// A command's footer: its units (`durations`, "" when it has no duration
// option), two or three examples, and the exit status.
std::string command_footer(const std::string& durations, std::initializer_list<const char*> examples) {
    std::string text = durations.empty() ? std::string() : durations + "\n\n";
    text += "Examples:\n";
    for (const char* e : examples) text += fmt::format("  {}\n", e);
    return text + "\n" + exit_status_help;
}

report::Format parse_format(const std::string& name) {
    if (name == "json") return report::Format::json;
    if (name == "folded") return report::Format::folded;
    return report::Format::text;
}

// The options every command that writes reports has; `format` and `color`
// are parsed after. `standard` is where reports go without --output.
void add_output_options(CLI::App& cmd, OutputOptions& o, std::string& format, std::string& color,
                        const std::string& standard) {
    cmd.add_option("-f,--format", format,
                   "text (for people), json (JSON Lines, one event per line, for log pipelines) or "
                   "folded (one 'frame;frame;... count' line per distinct stack, at the end, for "
                   "flame graphs)")
        ->check(CLI::IsMember({"text", "json", "folded"}))
        ->capture_default_str();
    cmd.add_flag("--full", o.full,
                 "Text: show every frame, with inlined calls and file:line; by default runs of C library "
                 "and runtime frames are folded into one line, a run of identical frames (recursion) too, "
                 "and system libraries' frames are named from their symbol table alone");
    cmd.add_option("-n,--max-frames", o.max_frames, "Deepest stack to print")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    cmd.add_option("--max-event-bytes", o.max_event_bytes,
                   fmt::format("JSON: the most bytes one event line may take, newline included (0: no "
                               "limit, else at least {}). A longer stack event leaves out frames (the "
                               "first application frame and its neighbours last), if need be cuts long "
                               "strings, and says so (stallwatch.stack.frames_dropped, "
                               "stallwatch.stack.truncated); see stallwatch(1)",
                               report::min_max_event_bytes))
        ->type_name("N")
        ->check(MaxEventBytesValidator())
        ->capture_default_str();
    cmd.add_option("-o,--output", o.output, fmt::format("Append reports to FILE instead of {}", standard))
        ->type_name("FILE")
        ->check(FileNameValidator(standard));
    cmd.add_flag("--debuginfod", o.debuginfod,
                 "Fetch missing debug info with debuginfod (uses the network; off by default)");
    cmd.add_option("--color", color,
                   "Text: colour the blocked frame, the first application frame and a lock's holder. auto: "
                   "only when reports go to a terminal and NO_COLOR is unset; never into a file or a pipe")
        ->check(CLI::IsMember({"auto", "always", "never"}))
        ->capture_default_str();
    cmd.add_flag("!--no-holder-stacks", o.holder_stacks,
                 "A thread blocked on a mutex: name the mutex's holder without stopping it for its stack "
                 "(by default the holder is stopped once, for microseconds, and chains of holders and "
                 "deadlocks are followed; docs/locks.md)");
}

ColorMode parse_color(const std::string& name) {
    if (name == "always") return ColorMode::always;
    if (name == "never") return ColorMode::never;
    return ColorMode::auto_;
}

// --threshold and --interval, as strings parsed after (the validator checks them).
void add_timing_options(CLI::App& cmd, std::string& threshold, std::string& interval) {
    cmd.add_option("-t,--threshold", threshold,
                   "How long a running worker may go without progress before it is reported "
                   "(0: any running worker whose progress did not move between two reads)")
        ->type_name("DURATION")
        ->check(DurationValidator(true))
        ->capture_default_str();
    cmd.add_option("-i,--interval", interval, "How often the progress table is read (at least 1ms)")
        ->type_name("DURATION")
        ->check(DurationValidator(false, min_interval, "interval"))
        ->capture_default_str();
}

// What `attach` refuses in the agent's options, or nullopt.
std::optional<std::string> check_agent_options(const AttachOptions& a, bool pid_given) {
    const auto& f = a.filter;
    if (a.all && pid_given) return "attach takes a pid or --all, not both";
    if (!a.all && (!f.user.empty() || !f.comm.empty() || !f.cgroup.empty()))
        return "--user, --comm and --cgroup choose among the processes of --all: give --all too";
    if (!a.all && !pid_given) return "attach needs a pid, or --all to watch every process that carries a table";
    if (a.all && a.once) return "--once ends at one report of one process: give a pid, not --all";
    // The kernel keeps 15 bytes of a command name: a longer literal name
    // would silently match nothing.
    if (f.comm.size() > 15 && f.comm.find_first_of("*?[") == std::string::npos)
        return fmt::format("--comm '{}' can never match: the kernel keeps 15 bytes of a command name ('{}'); "
                           "give those, or end the pattern with *",
                           f.comm, f.comm.substr(0, 15));
    if (a.all && !f.cgroup.empty() && f.cgroup.front() != '/')
        return fmt::format("--cgroup '{}' is not a cgroup v2 path: it starts with / (as in /proc/PID/cgroup)",
                           f.cgroup);
    return std::nullopt;
}

// `attach PID --live`: the options of `top`, or what is wrong with them.
// Its --interval is then the screen's refresh (1s unless given).
std::variant<TopOptions, std::string> live_view_options(const CLI::App& at, pid_t pid, const std::string& threshold,
                                                        const std::string& interval) {
    for (const CLI::Option* o : at.get_options()) {
        const std::string& name = o->get_name();
        if (o->count() == 0 || name == "--live" || name == "--threshold" || name == "--interval" || name == "pid")
            continue;
        return fmt::format("--live shows the live view of 'stallwatch top', which takes a pid, --threshold and "
                           "--interval; not {}",
                           name);
    }
    if (pid == 0) return std::string("--live needs a pid");
    TopOptions top;
    top.pid = pid;
    top.threshold = *read_duration(threshold);
    if (top.threshold.count() == 0) return std::string("--live: the --threshold must be more than zero");
    if (at.get_option("--interval")->count() > 0) {
        top.interval = *read_duration(interval);
        if (top.interval < min_refresh)
            return fmt::format("--live: '{}' is too short: the screen is redrawn at most every {}", interval,
                               format_duration(min_refresh));
    }
    return top;
}

WatchTiming parse_timing(const std::string& threshold, const std::string& interval) {
    return WatchTiming{*read_duration(threshold), *read_duration(interval)};
}

}  // namespace

std::string version_text() {
#ifdef STALLWATCH_TEST_HOOKS
    constexpr const char* hooks = "built with test hooks (STALLWATCH_TEST_HOOKS): not for production\n";
#else
    constexpr const char* hooks = "";
#endif
    return fmt::format("stallwatch {}\nreads table format versions: {}, {}\n{}", STALLWATCH_VERSION,
                       STALLWATCH_TABLE_VERSION, STALLWATCH_TABLE_VERSION_GROUPS, hooks);
}

ParseResult parse_command_line(const std::vector<std::string>& args) {
    CLI::App app{"stallwatch: find the stack of a stalled worker thread, from outside the "
                 "process.\n\nThe application links the stallwatch shim, which keeps one "
                 "progress counter per worker in a shared table; stallwatch reads that table, "
                 "and when a running worker stops making progress it stops that one thread "
                 "for microseconds, unwinds and symbolizes its stack, and prints it.",
                 "stallwatch"};
    app.require_subcommand(1);
    app.set_version_flag("-V,--version", version_text);
    app.footer(exit_status_help);

    StatusOptions status;
    std::string status_threshold = "100ms", status_format = "text";
    auto* st = app.add_subcommand(
        "status",
        "Print the progress table of a process: one line per registered worker (slot, tid, state, "
        "progress, time since its last progress, name), flagging STALLED each running worker that made "
        "no progress for --threshold. The table is read twice, --threshold apart; no thread is stopped.");
    st->add_option("pid", status.pid, "Process id of the instrumented program")
        ->required()
        ->check(PidValidator());
    st->add_option("-t,--threshold", status_threshold,
                   "How long to watch for progress, between the two reads: a running worker whose progress "
                   "did not move in that time is STALLED")
        ->type_name("DURATION")
        ->check(DurationValidator(false))
        ->capture_default_str();
    st->add_option("-f,--format", status_format, "text or json (JSON Lines: one status_worker event per worker, "
                                                 "then one status_summary)")
        ->check(CLI::IsMember({"text", "json"}))
        ->capture_default_str();

    AttachOptions attach;
    std::string threshold = "100ms", interval = "10ms", format = "text", color = "auto";
    auto* at = app.add_subcommand(
        "attach",
        "Watch a running process and print the stack of every worker that stops making progress "
        "while not parked. Only the stalled thread is stopped, for the few microseconds it takes "
        "to copy its registers and stack. Runs until Ctrl-C, SIGTERM or SIGHUP (exit 0), the "
        "process's exit (exit 2), or with --once the first report (exit 0).");
    auto* at_pid = at->add_option("pid", attach.pid, "Process id of the instrumented program (or --all)")
                       ->check(PidValidator());
    at->add_flag("--all", attach.all,
                 "Watch every process on this host that carries a table, now and as they come, until a "
                 "signal (the host agent); processes that exit are dropped, one whose table is bad is "
                 "given up with one error line, and the agent goes on");
    at->add_option("--user", attach.filter.user,
                   "With --all: only processes of this user (name or uid; the owner of /proc/PID)")
        ->type_name("USER");
    at->add_option("--comm", attach.filter.comm,
                   "With --all: only processes whose command name (/proc/PID/comm, at most 15 bytes) "
                   "matches this shell pattern (*, ?, [...]); without them, the exact name")
        ->type_name("PATTERN");
    at->add_option("--cgroup", attach.filter.cgroup,
                   "With --all: only processes in this cgroup v2 path or below it "
                   "(/system.slice matches /system.slice/x.service)")
        ->type_name("PATH");
    add_timing_options(*at, threshold, interval);
    bool live = false;
    at->add_flag("--live", live,
                 "Show the live view of 'stallwatch top' instead of reports (no thread is stopped); with it, "
                 "--threshold is more than zero and --interval is how often the screen is redrawn (default 1s, "
                 "at least 100ms), and the other options do not apply");
    at->add_flag("-1,--once", attach.once, "Exit after the first stall report");
    add_output_options(*at, attach.out, format, color, "standard output");

    DumpOptions dump;
    std::string dump_format = "text", dump_color = "auto";
    auto* du = app.add_subcommand(
        "dump",
        "Print the stack of every registered worker now (or of every thread with --all-threads, "
        "which works on any process, with or without a table). Threads are stopped one at a time, "
        "each only for its own capture; the process never stops as a whole.");
    du->add_option("pid", dump.pid, "Process id")->required()->check(PidValidator());
    du->add_flag("-a,--all-threads", dump.all_threads, "Every thread of the process, not only the workers");
    add_output_options(*du, dump.out, dump_format, dump_color, "standard output");

    RunOptions run;
    std::string run_threshold = "100ms", run_interval = "10ms", run_format = "text", run_color = "auto";
    auto* ru = app.add_subcommand(
        "run",
        "Start PROGRAM as a child and watch it from its first moment (works under Yama "
        "ptrace_scope=1). Reports go to standard error or --output, never to the program's "
        "standard output. SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on; "
        "stallwatch exits with the program's status (128+N if it died of signal N).");
    ru->add_flag("--preload", run.preload,
                 "Run PROGRAM with libstallwatch-preload.so added to LD_PRELOAD (any LD_PRELOAD of yours is "
                 "kept): every thread that waits in epoll_wait, poll, select or their variants becomes a "
                 "worker, parked while it waits, so a blocked event loop is reported without changing the "
                 "program (docs/preload.md). Says so when the program cannot be watched this way (statically "
                 "linked, set-user-ID, or no such wait ever made)");
    add_timing_options(*ru, run_threshold, run_interval);
    add_output_options(*ru, run.out, run_format, run_color, "standard error (the program keeps its own)");
    ru->add_option("command", run.command, "The program to run and its arguments (after --)")
        ->required();
    ru->positionals_at_end();

    ListOptions list;
    std::string list_format = "text", list_threshold = "100ms";
    auto* li = app.add_subcommand(
        "list",
        "List the processes on this host that carry a stallwatch table: pid, user, command, "
        "and workers running, parked and stalled now (running without progress for --threshold, "
        "measured by reading each table twice). Processes you may not inspect are counted.");
    li->add_option("-f,--format", list_format, "text or json (JSON Lines)")
        ->check(CLI::IsMember({"text", "json"}))
        ->capture_default_str();
    li->add_option("-t,--threshold", list_threshold, "How long to watch for progress")
        ->type_name("DURATION")
        ->check(DurationValidator(false))
        ->capture_default_str();

    TopOptions top;
    std::string top_threshold = "100ms", top_interval = "1s";
    auto* tp = app.add_subcommand(
        "top",
        "Show a live view of a process's workers on this terminal: state, progress per second, time since "
        "the last progress, stall episodes seen so far, STALLED while a running worker makes no progress for "
        "--threshold. Only reads the table (every 10ms); no thread is stopped. Ends on q, Ctrl-C, SIGTERM or "
        "SIGHUP (exit 0) or the process's exit (exit 2). Standard output must be a terminal (else exit 64).");
    tp->add_option("pid", top.pid, "Process id of the instrumented program")->required()->check(PidValidator());
    tp->add_option("-t,--threshold", top_threshold,
                   "How long a running worker may go without progress before it is shown STALLED and counted "
                   "as a stall")
        ->type_name("DURATION")
        ->check(DurationValidator(false))
        ->capture_default_str();
    tp->add_option("-i,--interval", top_interval, "How often the screen is redrawn (at least 100ms)")
        ->type_name("DURATION")
        ->check(DurationValidator(false, min_refresh, "interval"))
        ->capture_default_str();

    // Each command's help ends with the units of its durations and examples
    // (every one of them is in man/stallwatch.1: man/check-options.sh).
    st->footer(command_footer(duration_help(false),
                              {"stallwatch status 4321",
                               "stallwatch status 4321 --threshold 1s",
                               "stallwatch status 4321 --format json"}));
    at->footer(command_footer(duration_help(true),
                              {"stallwatch attach 4321",
                               "stallwatch attach 4321 --once --threshold 250ms --output stalls.log",
                               "stallwatch attach --all --format json",
                               "stallwatch attach 4321 --live"}));
    du->footer(command_footer({}, {"stallwatch dump 4321", "stallwatch dump 4321 --all-threads",
                                   "stallwatch dump 4321 --format folded > stacks.folded"}));
    ru->footer(command_footer(duration_help(true),
                              {"stallwatch run -- ./server --port 8080",
                               "stallwatch run --threshold 250ms --format json --output stalls.jsonl -- ./server",
                               "stallwatch run --preload -- redis-server --port 6380"}));
    li->footer(command_footer(duration_help(false),
                              {"stallwatch list", "stallwatch list --threshold 500ms --format json"}));
    tp->footer(command_footer(duration_help(false),
                              {"stallwatch top 4321", "stallwatch top 4321 --threshold 250ms --interval 500ms",
                               "stallwatch attach 4321 --live"}));

    std::vector<std::string> rev(args.rbegin(), args.rend());
    if (!rev.empty()) rev.pop_back();  // program name
    // Said here, not by CLI11: "A subcommand is required" names neither the
    // word that was not understood nor the commands there are.
    if (rev.empty())
        return EarlyExit{exit_code::usage, {},
                         fmt::format("stallwatch: no command given: use {} (see 'stallwatch --help')\n",
                                     command_names)};
    auto is_command = [&](const std::string& word) {
        return !app.get_subcommands([&](CLI::App* c) { return c->check_name(word); }).empty();
    };
    if (const auto& first = rev.back(); !first.empty() && first[0] != '-' && !is_command(first))
        return EarlyExit{exit_code::usage, {},
                         fmt::format("stallwatch: '{}' is not a command: use {} (see 'stallwatch --help')\n",
                                     first, command_names)};
    try {
        app.parse(rev);
    } catch (const CLI::ParseError& e) {
        std::ostringstream out, err;
        int code = app.exit(e, out, err);
        if (code != 0) {
            // One line: what was wrong, and where to read more.
            return EarlyExit{exit_code::usage, {},
                             fmt::format("stallwatch: {} (see 'stallwatch --help')\n", e.what())};
        }
        return EarlyExit{0, out.str(), {}};  // --help, --version
    }
    if (st->parsed()) {
        status.threshold = *read_duration(status_threshold);
        status.format = parse_format(status_format);
        return Options{status};
    }
    if (tp->parsed()) {
        top.threshold = *read_duration(top_threshold);
        top.interval = *read_duration(top_interval);
        return Options{top};
    }
    if (ru->parsed()) {
        run.timing = parse_timing(run_threshold, run_interval);
        run.out.format = parse_format(run_format);
        run.out.color = parse_color(run_color);
        return Options{run};
    }
    if (li->parsed()) {
        list.format = parse_format(list_format);
        list.threshold = *read_duration(list_threshold);
        return Options{list};
    }
    if (du->parsed()) {
        dump.out.format = parse_format(dump_format);
        dump.out.color = parse_color(dump_color);
        return Options{dump};
    }
    if (at->parsed() && live) {
        auto top_of = live_view_options(*at, attach.pid, threshold, interval);
        if (auto* e = std::get_if<std::string>(&top_of))
            return EarlyExit{exit_code::usage, {},
                             fmt::format("stallwatch: {} (see 'stallwatch attach --help')\n", *e)};
        return Options{std::get<TopOptions>(top_of)};
    }
    if (at->parsed()) {
        attach.timing = parse_timing(threshold, interval);
        attach.out.format = parse_format(format);
        attach.out.color = parse_color(color);
        if (auto e = check_agent_options(attach, at_pid->count() > 0))
            return EarlyExit{exit_code::usage, {},
                             fmt::format("stallwatch: {} (see 'stallwatch attach --help')\n", *e)};
        return Options{attach};
    }
    return EarlyExit{exit_code::usage, {}, "stallwatch: no command given (see 'stallwatch --help')\n"};
}

}  // namespace sw::cli
