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

struct StatusOptions {
    pid_t pid = 0;
};

struct AttachOptions {
    pid_t pid = 0;
    std::chrono::nanoseconds threshold = std::chrono::milliseconds(100);
    std::chrono::nanoseconds interval = std::chrono::milliseconds(10);
    bool once = false;
    std::size_t max_frames = 64;
    std::string output;  // "" for standard output
    bool debuginfod = false;
    report::Format format = report::Format::text;
    bool full = false;   // text: every frame, runtime frames not folded
};

struct DumpOptions {
    pid_t pid = 0;
    bool all_threads = false;
    std::size_t max_frames = 64;
    std::string output;
    bool debuginfod = false;
    report::Format format = report::Format::text;
    bool full = false;
};

struct RunOptions {
    std::vector<std::string> command;  // program and its arguments
    std::chrono::nanoseconds threshold = std::chrono::milliseconds(100);
    std::chrono::nanoseconds interval = std::chrono::milliseconds(10);
    std::size_t max_frames = 64;
    std::string output;  // "" for standard error: never the program's stdout
    bool debuginfod = false;
    report::Format format = report::Format::text;
    bool full = false;
};

struct ListOptions {
    report::Format format = report::Format::text;
    std::chrono::nanoseconds threshold = std::chrono::milliseconds(100);
};

using Command = std::variant<StatusOptions, AttachOptions, DumpOptions, RunOptions, ListOptions>;

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
