// Command-line parsing into plain values, so that tests can build Options
// from an argv without running anything.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <variant>
#include <vector>

#include "report/writer.hpp"

namespace sw::cli {

// `status`: the table read twice, `threshold` apart.
struct StatusOptions {
    pid_t pid = 0;
    std::chrono::nanoseconds threshold = std::chrono::milliseconds(100);
    report::Format format = report::Format::text;  // text or json
};

// `top` (and `attach --live`): the live view on a terminal.
struct TopOptions {
    pid_t pid = 0;
    std::chrono::nanoseconds threshold = std::chrono::milliseconds(100);
    std::chrono::nanoseconds interval = std::chrono::seconds(1);  // how often the screen is redrawn
};

// What every command that writes reports takes.
// --color: auto colours text reports on a terminal unless NO_COLOR is set.
enum class ColorMode { auto_, always, never };

struct OutputOptions {
    report::Format format = report::Format::text;
    ColorMode color = ColorMode::auto_;
    bool full = false;   // text: every frame, runtime frames not folded
    std::size_t max_frames = 64;
    std::size_t max_event_bytes = report::default_max_event_bytes;  // json: per line; 0: no limit
    std::string output;  // "" for the command's default stream
    bool debuginfod = false;
    bool holder_stacks = true;  // stop a lock's holder for its stack (docs/locks.md)
};

// How attach and run watch.
struct WatchTiming {
    std::chrono::nanoseconds threshold = std::chrono::milliseconds(100);
    std::chrono::nanoseconds interval = std::chrono::milliseconds(10);
};

// `attach --all`: which processes the agent watches; each filter given must
// match (man/stallwatch.1, "The host agent").
struct AgentFilter {
    std::string user;    // a user name or uid: the owner of /proc/PID
    std::string comm;    // a glob (fnmatch) over the command name
    std::string cgroup;  // a cgroup v2 path: that cgroup and those below it
};

struct AttachOptions {
    pid_t pid = 0;     // 0 with `all`
    bool all = false;  // every process with a table (the host agent)
    AgentFilter filter;
    WatchTiming timing;
    bool once = false;
    OutputOptions out;  // output "" is standard output
};

struct DumpOptions {
    pid_t pid = 0;
    bool all_threads = false;
    OutputOptions out;
};

struct RunOptions {
    std::vector<std::string> command;  // program and its arguments
    bool preload = false;              // with libstallwatch-preload.so in LD_PRELOAD
    WatchTiming timing;
    OutputOptions out;  // output "" is standard error: never the program's stdout
};

struct ListOptions {
    report::Format format = report::Format::text;
    std::chrono::nanoseconds threshold = std::chrono::milliseconds(100);
};

using Command = std::variant<StatusOptions, AttachOptions, DumpOptions, RunOptions, ListOptions, TopOptions>;

struct Options {
    Command command;
};

// What parsing decided when it did not produce Options: print this text
// (help, version or an error) and exit with this code.
struct EarlyExit {
    int code = 0;
    std::string out;  // for stdout (help, version)
    std::string err;  // for stderr (one error line)
};

using ParseResult = std::variant<Options, EarlyExit>;

ParseResult parse_command_line(const std::vector<std::string>& args);

std::string version_text();

}  // namespace sw::cli
