// What `stallwatch top` shows: the lines of one screen, from the live view's
// workers and the terminal's size. Pure, so that tests check it without a
// terminal (the terminal itself is cli/terminal.hpp).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "detect/glance.hpp"

namespace sw::cli {

struct TopScreen {
    pid_t pid = 0;
    std::string process_name;
    std::string app_name;
    std::chrono::nanoseconds threshold{};
    std::chrono::nanoseconds interval{};       // the redraw
    std::chrono::nanoseconds read_interval{};  // how often the table is read
    std::chrono::nanoseconds watched{};        // since the view started
    std::vector<detect::LiveWorker> workers;   // any order
    std::uint64_t total_stalls = 0;
    std::string note;  // a line about the table (none yet, left behind), or ""
};

// At most `rows` lines of at most `cols` columns (fit_width). Workers are listed
// stalled first, then running ones by time since progress (longest first),
// then parked ones the same way; those that do not fit are counted on the
// last line.
std::vector<std::string> render_top(const TopScreen& s, int rows, int cols);

// `line` cut to `cols` terminal columns, conservatively: an ASCII character
// is one column, any other (a UTF-8 sequence, never cut) two, the most one
// can take, so that no line wraps whatever the terminal's widths.
std::string fit_width(const std::string& line, int cols);

}  // namespace sw::cli
