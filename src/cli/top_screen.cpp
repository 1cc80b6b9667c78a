#include "cli/top_screen.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/duration.hpp"
#include "common/text.hpp"

namespace sw::cli {
namespace {

constexpr const char* row_format = "{:>5}  {:>8}  {:<7}  {:<7}  {:>10}  {:<14}  {:>6}  {}";

// Progress per second: "-" until a rate window has passed, "?" when the
// counter went backwards.
std::string rate_text(const std::optional<double>& rate) {
    if (!rate) return "-";
    if (!std::isfinite(*rate)) return "?";  // the counter went backwards
    if (*rate < 10) return fmt::format("{:.1f}", *rate);
    return fmt::format("{:.0f}", *rate);
}

// "<11ms" (moved at the last read), "<2.32s" (an upper bound: the time
// since the last read that saw the previous value, rounded up), or ">=12s"
// (no move seen since the view began: a lower bound).
std::string since_text(const detect::LiveWorker& w) {
    if (!w.progress_seen) return ">=" + format_duration_down(w.since_progress);
    return "<" + format_duration_up(w.since_progress);
}

const char* flag_text(const detect::LiveWorker& w) {
    if (w.gone) return "gone";
    if (w.stalled) return "STALLED";
    if (w.frozen) return "stopped";
    return "";
}

// Stalled first, then running, then parked; within each, longest without
// progress first (in steps of the read interval, so that workers that all
// just moved keep their slot order).
void sort_for_view(std::vector<detect::LiveWorker>& workers, std::chrono::nanoseconds read_interval) {
    auto rank = [](const detect::LiveWorker& w) {
        if (w.stalled) return 0;
        return w.worker.state == table::WorkerState::parked ? 2 : 1;
    };
    auto step = std::max<std::int64_t>(read_interval.count(), 1);
    std::stable_sort(workers.begin(), workers.end(), [&](const detect::LiveWorker& a, const detect::LiveWorker& b) {
        if (rank(a) != rank(b)) return rank(a) < rank(b);
        auto sa = a.since_progress.count() / step, sb = b.since_progress.count() / step;
        if (sa != sb) return sa > sb;
        return a.worker.slot < b.worker.slot;
    });
}

}  // namespace

std::string fit_width(const std::string& line, int cols) {
    if (cols <= 0) return {};
    int used = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
        auto c = static_cast<unsigned char>(line[i]);
        if ((c & 0xC0) == 0x80) continue;  // inside a sequence
        // ASCII takes one column; anything else is counted as two, the most
        // a character takes (CJK, emoji, or ambiguous-width ones on a
        // terminal set to draw them wide): a line may end a little short of
        // the edge, but never wraps.
        int width = c < 0x80 ? 1 : 2;
        if (used + width > cols) return line.substr(0, i);
        used += width;
    }
    return line;
}

std::vector<std::string> render_top(const TopScreen& s, int rows, int cols) {
    std::vector<std::string> lines;
    auto add = [&](const std::string& l) {
        if (static_cast<int>(lines.size()) < rows) lines.push_back(fit_width(l, cols));
    };
    auto workers = s.workers;
    sort_for_view(workers, s.read_interval);
    std::size_t running = 0, parked = 0, stalled = 0, gone = 0;
    for (const auto& w : workers) {
        (w.worker.state == table::WorkerState::parked ? parked : running)++;
        stalled += w.stalled;
        gone += w.gone;
    }
    add(fmt::format("stallwatch top: pid {} ({}), app \"{}\"; q or Ctrl-C quits", s.pid, printable(s.process_name),
                    printable(s.app_name)));
    add(fmt::format("{} worker(s): {} running, {} parked, {} STALLED{}; {} stall(s) seen; threshold {}, redrawn every "
                    "{}, watching for {}",
                    workers.size(), running, parked, stalled,
                    gone > 0 ? fmt::format(", {} gone (thread exited, still registered)", gone) : std::string{},
                    s.total_stalls, format_duration(s.threshold), format_duration(s.interval),
                    format_duration_down(s.watched)));
    if (!s.note.empty()) add(s.note);
    if (rows >= 10) add("");
    add(fmt::format(fmt::runtime(row_format), "SLOT", "TID", "STATE", "FLAG", "RATE/S", "SINCE PROGRESS", "STALLS",
                    "NAME"));

    const int room = rows - static_cast<int>(lines.size());
    if (room <= 0) return lines;
    std::size_t shown = workers.size();
    if (static_cast<int>(workers.size()) > room) shown = static_cast<std::size_t>(room - 1);
    for (std::size_t i = 0; i < shown; ++i) {
        const auto& w = workers[i];
        auto tid = w.worker.tid > 0 ? std::to_string(w.worker.tid) : std::string("-");
        add(fmt::format(fmt::runtime(row_format), w.worker.slot, tid, table::to_string(w.worker.state), flag_text(w),
                        rate_text(w.rate), since_text(w), w.stalls, printable(w.worker.name)));
    }
    if (shown < workers.size())
        add(fmt::format("+ {} more worker(s) not shown: the terminal has {} rows (listed: stalled first, then by "
                        "time since progress)",
                        workers.size() - shown, rows));
    return lines;
}

}  // namespace sw::cli
