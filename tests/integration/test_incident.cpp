// An incident (issue 9, item 15): 40 workers of one process block on one
// lock, held by another thread for 2 s every 5 s. The rate limit lets only
// some first reports through; what it holds back must be counted and said,
// and no stall may appear as an update (or a recovery) without its first
// report.
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "support/child.hpp"
#include "support/process.hpp"
#include "support/text_report.hpp"

using namespace sw::test;
using json = nlohmann::json;

namespace {

constexpr int workers = 40;

// sw_fixture_incident, ready with all its workers registered. Its holds
// begin `first_ms` after start() (SIGUSR1); it says "hold N" as each one
// begins.
struct Incident {
    Child child;
    pid_t pid = -1;
    // `distinct`: each worker blocks through a stack of its own, so that
    // every stall is an incident of its own and the rate limit is what
    // holds reports back.
    Incident(int first_ms, bool distinct, int hold_ms = 2000)
        : child(args(first_ms, distinct, hold_ms)) {
        auto line = child.read_line();
        REQUIRE_MESSAGE(line.has_value(), "sw_fixture_incident did not say ready");
        pid = static_cast<pid_t>(field(*line, "pid").value_or(0));
        REQUIRE(pid == child.pid());
        REQUIRE(field(*line, "live") == std::optional<long>(workers));
    }
    static std::vector<std::string> args(int first_ms, bool distinct, int hold_ms) {
        std::vector<std::string> a{fixture("sw_fixture_incident"), "--workers", std::to_string(workers), "--hold-ms",
                                   std::to_string(hold_ms), "--period-ms", "5000", "--first-ms",
                                   std::to_string(first_ms), "--on-signal"};
        if (distinct) a.push_back("--distinct-stacks");
        return a;
    }
    void start() const { REQUIRE(::kill(pid, SIGUSR1) == 0); }
    // Reads the monitor's output while waiting for "hold N"; false on time-out.
    bool wait_for_hold(Process& monitor, int n, std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            monitor.watch_for(50ms);
            if (auto line = child.read_line(5ms)) {
                if (*line == "hold " + std::to_string(n)) return true;
            }
        }
        return false;
    }
};

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

std::uint64_t num(const std::smatch& m, std::size_t i) { return std::stoull(m[i].str()); }

// A scratch file removed at the end of the test.
struct TempFile {
    std::string path;
    TempFile() {
        char tmpl[] = "/tmp/sw-incident-XXXXXX";
        int fd = ::mkstemp(tmpl);
        REQUIRE(fd >= 0);
        ::close(fd);
        path = tmpl;
    }
    ~TempFile() { std::filesystem::remove(path); }
};

}  // namespace

TEST_CASE("40 stalls at 40 different stacks: no update without its first report, what the limit held back is said") {
    Incident fx(200, true);
    Process sw({stallwatch_binary(), "attach", std::to_string(fx.pid), "--threshold", "100ms"});
    REQUIRE_MESSAGE(sw.wait_for_err("stallwatch: watching pid " + std::to_string(fx.pid), 10s), sw.err());
    fx.start();
    // Four holds (at 0.2, 5.2, 10.2 and 15.2 s); stop in the middle of the fourth,
    // when every worker has been stalled for a while.
    REQUIRE_MESSAGE(fx.wait_for_hold(sw, 1, 5s), sw.err());
    REQUIRE_MESSAGE(fx.wait_for_hold(sw, 4, 20s), sw.err());
    sw.watch_for(700ms);
    sw.signal(SIGTERM);
    REQUIRE(sw.wait(15s).has_value());
    INFO("stderr:\n" << sw.err());
    CHECK(sw.exit_code() == 0);
    const std::string& out = sw.out();

    std::regex first_re(R"( STALL #(\d+): )"), update_re(R"( STALL #(\d+) still going \(report (\d+)\))"),
        end_re(R"( (RECOVERED|ENDED) #(\d+): )");
    std::regex periodic_re(
        R"(RATE LIMITED in the last \S+: (\d+) stall\(s\) began, (\d+) ended never reported, (\d+) update\(s\) )"
        R"(suppressed \(in all: (\d+) stall\(s\), (\d+) never reported, (\d+) update\(s\) suppressed\); (\d+) )"
        R"(stall\(s\) open, (\d+) waiting for a first report$)");
    std::regex exit_re(R"(SUMMARY of pid (\d+) at exit: (\d+) stall\(s\), (\d+) never reported and (\d+) )"
                       R"(update\(s\) suppressed by the rate limit; (\d+) stall\(s\) open, (\d+) of them not reported$)");
    std::regex listed_re(R"(^    #(\d+) worker "worker-\d+" \(tid \d+, slot \d+\) for \S+, (not reported|reported)$)");

    std::set<std::uint64_t> first;
    std::size_t updates = 0, orphans = 0, periodic = 0, exit_summaries = 0, listed_at_exit = 0;
    std::uint64_t said_unreported = 0, said_updates = 0;
    std::optional<std::smatch> at_exit;
    bool in_exit_summary = false;
    std::string more_at_exit;
    const auto all = lines(out);  // at_exit points into it
    for (const auto& line : all) {
        std::smatch m;
        if (std::regex_search(line, m, first_re)) {
            CHECK_MESSAGE(first.insert(num(m, 1)).second, "two first reports of #" << num(m, 1));
        } else if (std::regex_search(line, m, update_re)) {
            ++updates;
            if (!first.count(num(m, 1))) {
                ++orphans;
                FAIL_CHECK("an update before its first report: " << line);
            }
        } else if (std::regex_search(line, m, end_re)) {
            CHECK_MESSAGE(first.count(num(m, 2)) == 1, "an end before its first report: " << line);
        } else if (std::regex_search(line, m, periodic_re)) {
            ++periodic;
            said_unreported += num(m, 2);
            said_updates += num(m, 3);
            CHECK(num(m, 5) == said_unreported);  // "in all" adds up the periods
            CHECK(num(m, 6) == said_updates);
            CHECK(num(m, 8) <= num(m, 7));
        } else if (std::regex_search(line, m, exit_re)) {
            ++exit_summaries;
            at_exit = m;
            in_exit_summary = true;
            continue;
        } else if (in_exit_summary && std::regex_search(line, m, listed_re)) {
            ++listed_at_exit;
            continue;
        } else if (in_exit_summary && line.rfind("    ... and ", 0) == 0) {
            more_at_exit = line;
            continue;
        }
        in_exit_summary = false;
    }
    MESSAGE(first.size() << " first reports, " << updates << " updates, " << periodic << " periodic summaries; at exit: "
                         << (at_exit ? at_exit->str() : std::string("none")));

    CHECK(orphans == 0);
    CHECK(first.size() >= 20);  // the burst went to first reports
    // Suppression is counted and said while watching ...
    CHECK(periodic >= 2);  // after the first hold, and at most every 10 s
    CHECK(periodic <= 3);
    CHECK(said_unreported > 0);
    // ... and at exit, with the stalls open then: all 40 workers.
    REQUIRE(exit_summaries == 1);
    REQUIRE(at_exit.has_value());
    auto& e = *at_exit;
    CHECK(num(e, 1) == static_cast<std::uint64_t>(fx.pid));
    std::uint64_t stalls = num(e, 2), unreported = num(e, 3), open = num(e, 5), open_unreported = num(e, 6);
    CHECK(stalls >= 4 * workers);
    CHECK(unreported >= said_unreported);
    CHECK(num(e, 4) >= said_updates);
    CHECK(open == static_cast<std::uint64_t>(workers));
    CHECK(open_unreported > 0);
    CHECK(open_unreported < open);  // the late first reports of the hold, and the burst refilled meanwhile
    // Every stall is reported, counted as never reported, or open without a report.
    CHECK(first.size() + unreported + open_unreported <= stalls);
    CHECK(first.size() + unreported + open_unreported + workers >= stalls);  // a few withdrawn at most
    CHECK(listed_at_exit == 10);  // bounded
    CHECK(more_at_exit == "    ... and 30 more open stall(s)");
}

TEST_CASE("40 different stalls in JSON: summary events validate, and no event of a stall comes before its first report") {
    Incident fx(200, true);
    TempFile events;
    Process sw({stallwatch_binary(), "attach", std::to_string(fx.pid), "--threshold", "100ms", "--format", "json",
                "--output", events.path});
    REQUIRE_MESSAGE(sw.wait_for_err("stallwatch: watching pid " + std::to_string(fx.pid), 10s), sw.err());
    fx.start();
    REQUIRE_MESSAGE(fx.wait_for_hold(sw, 1, 5s), sw.err());
    sw.watch_for(1500ms);  // the periodic summary comes 1 s after the first report held back
    sw.signal(SIGTERM);
    REQUIRE(sw.wait(15s).has_value());
    INFO("stderr:\n" << sw.err());
    CHECK(sw.exit_code() == 0);

    auto v = run({"/usr/bin/python3", std::string(STALLWATCH_SOURCE_DIR) + "/tests/support/validate-events.py",
                  std::string(STALLWATCH_SOURCE_DIR) + "/docs/json-events.schema.json", events.path});
    INFO(v.out << v.err);
    CHECK(v.exit_code == 0);

    std::ifstream in(events.path);
    std::set<std::uint64_t> first;
    std::vector<json> summaries;
    for (std::string line; std::getline(in, line);) {
        auto j = json::parse(line);
        std::string kind = j["event"];
        if (kind == "stall") first.insert(j["stallwatch.episode"].get<std::uint64_t>());
        else if (kind == "stall_update" || kind == "recovered" || kind == "ended")
            CHECK_MESSAGE(first.count(j["stallwatch.episode"].get<std::uint64_t>()) == 1,
                          kind << " before its first report: " << line);
        else if (kind == "summary") summaries.push_back(j);
        else if (kind == "detached") CHECK(!summaries.empty());
    }
    REQUIRE(summaries.size() == 2);
    CHECK(summaries[0]["stallwatch.summary.at_exit"] == false);
    CHECK(summaries[1]["stallwatch.summary.at_exit"] == true);
    CHECK(summaries[0]["stallwatch.summary.open_unreported"].get<int>() > 0);
    CHECK(summaries[1]["stallwatch.summary.open_count"] == workers);
    CHECK(summaries[1]["stallwatch.summary.total_stalls"].get<int>() >= workers);
    CHECK(summaries[1]["stallwatch.summary.open_stalls"].size() == 10);
    CHECK(first.size() >= 20);
    CHECK(first.size() + summaries[1]["stallwatch.summary.open_unreported"].get<std::size_t>() >=
          static_cast<std::size_t>(workers));
}
