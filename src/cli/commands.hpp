// The commands, each taking its options and the streams to write to, and
// returning the process exit code.
#pragma once

#include <ostream>
#include <string>

#include "cli/options.hpp"

namespace sw::cli {

int run_status(const StatusOptions& opt, std::ostream& out, std::ostream& err);

int run_attach(const AttachOptions& opt, std::ostream& out, std::ostream& err);

// `attach --all`: the host agent (cli/agent.cpp).
int run_attach_all(const AttachOptions& opt, std::ostream& out, std::ostream& err);

int run_dump(const DumpOptions& opt, std::ostream& out, std::ostream& err);

// Reports go to `err` (or --output): the program owns standard output.
int run_run(const RunOptions& opt, std::ostream& err);

int run_list(const ListOptions& opt, std::ostream& out, std::ostream& err);

// `top` and `attach --live`: draws on the terminal of standard output itself
// (cli/terminal.hpp); `err` gets the closing line once the terminal is
// restored.
int run_top(const TopOptions& opt, std::ostream& out, std::ostream& err);

int run(const Options& opt, std::ostream& out, std::ostream& err);

}  // namespace sw::cli
