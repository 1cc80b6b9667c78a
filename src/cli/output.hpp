// Where a command's reports go: the file --output names, appended to, or the
// command's standard stream. A write that fails is reported with the name of
// the destination and the system's reason.
#pragma once

#include <memory>
#include <ostream>
#include <streambuf>
#include <string>

#include "cli/options.hpp"
#include "report/writer.hpp"

namespace sw::cli {

// The writer's options for `o`. Colour: --color=always, or auto when the
// reports go to a terminal (`standard_fd` without --output), NO_COLOR is
// unset or empty and TERM is not "dumb"; never into a file or a pipe.
report::WriterOptions writer_options(const OutputOptions& o, int standard_fd);

class FdStreambuf;

class Output {
public:
    // `path` opened for appending (created 0666 & ~umask), or `standard`,
    // called `standard_name` in messages, when path is "". nullptr, after one
    // line on `err`, when the file cannot be opened.
    static std::unique_ptr<Output> open(const std::string& path, std::ostream& standard,
                                        std::string standard_name, std::ostream& err);
    ~Output();
    Output(const Output&) = delete;
    Output& operator=(const Output&) = delete;

    std::ostream& stream() { return *stream_; }

    // "cannot write to /dev/full: No space left on device". A file's write
    // error is kept as it happens; for a standard stream, whose write(2) is
    // not ours, `seen_errno` is the errno read right after the failed write.
    std::string write_error(int seen_errno) const;

private:
    Output() = default;
    std::string name_;
    std::unique_ptr<FdStreambuf> buf_;  // a file: its own buffer
    std::unique_ptr<std::ostream> file_;
    std::ostream* stream_ = nullptr;
};

}  // namespace sw::cli
