// Report writers: one interface, one implementation per format (text for
// people, JSON Lines for log pipelines, folded stacks for flame graphs), all
// writing to a std::ostream and flushing after each event.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "report/incidents.hpp"
#include "report/report.hpp"

namespace sw::report {

enum class Format { text, json, folded };

// `stallwatch.schema_version` of every JSON event (docs/json-events.md):
// bump it when a field is removed, renamed or retyped.
inline constexpr int json_schema_version = 3;

// --max-event-bytes: the default keeps every JSON line under the 16 KiB at
// which Docker's json-file log driver splits lines; 0 means no limit, and a
// limit is at least the minimum (what RFC 5424 receivers should accept), the
// smallest in which a stack event with its key frames always fits.
inline constexpr std::size_t default_max_event_bytes = 16384;
inline constexpr std::size_t min_max_event_bytes = 2048;

struct WriterOptions {
    bool full = false;  // text: show every frame, do not fold runtime frames
    std::size_t max_event_bytes = default_max_event_bytes;  // JSON: per line, newline included; 0: none
    bool color = false;  // text: colour for a terminal (--color)
};

// What `attached` says about the watch that begins.
struct WatchInfo {
    std::size_t workers = 0;
    std::chrono::nanoseconds threshold{};
    std::chrono::nanoseconds interval{};
};

// How a watch ended, and what it did.
struct Detached {
    std::string_view reason;      // "signal", "target_exited", "once"
    std::uint64_t reports = 0;    // stack reports written
    std::uint64_t withdrawn = 0;  // samples dropped: the worker moved on while it was sampled
    // Passes: one read of the table and the detector's look at it (sampling
    // excluded), what watching costs when nothing stalls.
    std::uint64_t passes = 0;
    std::chrono::nanoseconds pass_total{}, pass_max{};
};

class Writer {
public:
    explicit Writer(std::ostream& out) : out_(out) {}
    virtual ~Writer() = default;
    // False once a write failed (disk full, closed pipe).
    bool good() const { return static_cast<bool>(out_); }

    // Lifecycle: text writers leave these to the status lines on stderr.
    virtual void attached(const Target&, const WatchInfo&) {}
    virtual void detached(const Target&, const Detached&) {}
    virtual void error(const Target&, std::string_view /*message*/) {}
    // A stall or stall_update report with its stack.
    virtual void stall(const StallReport& r) = 0;
    // recovered and ended events.
    virtual void event(const Target& t, const detect::Event& e) = 0;
    // Threads that wait for each other's mutexes (docs/locks.md): once per
    // cycle, after the stall report that found it.
    virtual void deadlock(const Target&, const Deadlock&) {}
    // Stalls of one stack grouped as one incident grew or ended (text only:
    // JSON events carry the incident id, and log stores aggregate).
    virtual void incident(const Target&, const IncidentSummary&) {}
    // A group's compensation episode begins or ends (docs/adapters.md).
    virtual void compensation(const Target&, const CompensationEvent&) {}
    // What the rate limit held back, and the stalls open (periodically, and
    // at exit). Folded output has nowhere to put it.
    virtual void summary(const Target&, const detect::Summary&) {}
    // End of output (folded stacks are written here).
    virtual void finish() {}

protected:
    std::ostream& out_;
};

std::unique_ptr<Writer> make_writer(Format f, std::ostream& out, WriterOptions opt = {});

// "text", "json", "folded".
std::string_view to_string(Format f);

// RFC 3339 timestamp of the system clock now.
std::string now_rfc3339();
std::uint64_t unix_now_ns();

}  // namespace sw::report
