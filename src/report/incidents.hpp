// Incidents: stalls with the same stack that begin together are one
// incident (40 workers blocked on one lock), so that people read one stack
// and one line per further worker, not 40 stacks. Pure logic over the
// reports and an injected clock; the writers render what it decides.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "detect/detector.hpp"
#include "report/report.hpp"

namespace sw::report {

// What an incident amounts to, said when it grows and when it ends.
struct IncidentSummary {
    std::uint64_t id = 0;        // the episode of its first stall
    std::size_t workers = 0;     // stalls in it so far
    std::size_t open = 0;        // ... still going
    std::string at;              // its first application frame: "update_db (pool.c:27)"
    std::string fingerprint;     // the stack fingerprint they share
    std::chrono::nanoseconds longest{};  // the longest stall in it, as last seen
    bool ended = false;          // every stall in it is over
};

class Incidents {
public:
    using Clock = std::chrono::steady_clock;

    // A stall joins an incident of the same stack fingerprint when it began
    // at most `window` after the latest stall of it began, or after the
    // last of them ended.
    explicit Incidents(std::chrono::nanoseconds window = std::chrono::seconds(1)) : window_(window) {}

    // A stall report (stall or stall_update) with its stack: sets
    // r.event.incident and r.event.joined.
    void place(StallReport& r, Clock::time_point now);
    // Whether the stall of `episode` joined an incident it did not begin.
    bool joined(std::uint64_t episode) const;
    // An update of a joined stall that was not sampled: how long it lasts.
    void went_on(const detect::Event& e);
    // A recovered or ended event: sets e.incident and e.joined, and closes
    // the stall in its incident.
    void close(detect::Event& e, Clock::time_point now);

    // Incidents of two stalls or more that grew, whose first stall ended
    // while others go on, or that ended, since the last call. Ended
    // incidents are forgotten 10 s after a stall could last join them.
    std::vector<IncidentSummary> take_news(Clock::time_point now);

private:
    struct Incident {
        IncidentSummary summary;
        std::map<std::uint64_t, std::chrono::nanoseconds> open;  // episode -> stalled so far
        std::size_t closed = 0;
        Clock::time_point last_begin{}, last_end{};
        bool news = false;
    };
    void refresh(Incident& in);

    std::chrono::nanoseconds window_;
    std::map<std::uint64_t, Incident> incidents_;        // by id
    std::map<std::uint64_t, std::uint64_t> of_episode_;  // open episode -> incident id
};

}  // namespace sw::report
