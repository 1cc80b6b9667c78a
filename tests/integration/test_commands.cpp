// What a new user meets at the command line: messages that name the file and
// the reason, a thread id given for a pid, dump without the right to trace,
// and dump's worker state taken at each worker's own capture.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "support/child.hpp"

using namespace sw::test;
using json = nlohmann::json;

namespace {

// A started fixture and the fields of its "ready" line.
struct Started {
    Child child;
    std::string ready;
    explicit Started(std::vector<std::string> argv) : child(argv) {
        auto line = child.read_line();
        REQUIRE_MESSAGE(line.has_value(), "the fixture did not say ready");
        ready = *line;
    }
    pid_t get(const std::string& key) const {
        auto v = field(ready, key);
        REQUIRE_MESSAGE(v.has_value(), "no " << key << " in: " << ready);
        return static_cast<pid_t>(*v);
    }
};

std::vector<json> json_lines(const std::string& text) {
    std::vector<json> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
}

std::string sh_quote(const std::string& s) { return "'" + s + "'"; }

}  // namespace

TEST_CASE("a report that cannot be written names the file and the reason, and exits 1") {
    Started fx({fixture("sw_fixture_stall"), "--stall-ms", "10000"});
    auto pid = std::to_string(fx.get("pid"));
    const std::string full = "stallwatch: cannot write to /dev/full: No space left on device\n";
    SUBCASE("dump") {
        auto r = run({stallwatch_binary(), "dump", pid, "-o", "/dev/full"});
        CHECK(r.exit_code == 1);
        CHECK(r.err == full);
    }
    SUBCASE("dump --format json") {
        auto r = run({stallwatch_binary(), "dump", pid, "--format", "json", "--output", "/dev/full"});
        CHECK(r.exit_code == 1);
        CHECK(r.err == full);
    }
    SUBCASE("attach") {
        auto r = run({stallwatch_binary(), "attach", pid, "--once", "-o", "/dev/full"});
        CHECK(r.exit_code == 1);
        CHECK(r.err.find(full) != std::string::npos);
        CHECK(r.err.find("cannot write the report") == std::string::npos);
    }
    SUBCASE("standard output") {
        auto r = run({"/bin/sh", "-c", sh_quote(stallwatch_binary()) + " dump " + pid + " >/dev/full"});
        CHECK(r.exit_code == 1);
        CHECK(r.err == "stallwatch: cannot write to standard output: No space left on device\n");
    }
}

TEST_CASE("run: a report that cannot be written is named, and the program runs on") {
    auto r = run({stallwatch_binary(), "run", "-o", "/dev/full", "--", fixture("sw_fixture_stall"), "--stall-ms",
                  "300", "--exit-after-ms", "600"});
    CHECK(r.exit_code == 0);  // the program's status
    CHECK(r.err.find("stallwatch: cannot write to /dev/full: No space left on device\n") != std::string::npos);
    CHECK(r.out.find("victim: done") != std::string::npos);
}

TEST_CASE("a thread id given for a pid is taken as its process, with a note") {
    Started fx({fixture("sw_fixture_stall"), "--stall-ms", "10000"});
    pid_t pid = fx.get("pid"), tid = fx.get("victim");
    REQUIRE(tid != pid);
    const std::string p = std::to_string(pid), t = std::to_string(tid);
    const std::string note = "stallwatch: " + t + " is a thread of process " + p + " (sw_fixture_stal); using pid " + p + "\n";
    SUBCASE("status") {
        auto r = run({stallwatch_binary(), "status", t});
        CHECK(r.exit_code == 0);
        CHECK(r.err == note);
        CHECK(r.out.rfind("pid " + p + " (", 0) == 0);
    }
    SUBCASE("dump") {
        auto r = run({stallwatch_binary(), "dump", t});
        CHECK(r.exit_code == 0);
        CHECK(r.err == note);
        CHECK(r.out.find("of pid " + p + " (") != std::string::npos);
        CHECK(r.out.find("of pid " + t + " (") == std::string::npos);
        auto j = run({stallwatch_binary(), "dump", t, "--all-threads", "--format", "json"});
        CHECK(j.exit_code == 0);
        auto events = json_lines(j.out);
        CHECK(events.size() >= 5);
        for (const auto& e : events) CHECK(e["process.pid"] == pid);
    }
    SUBCASE("attach") {
        auto r = run({stallwatch_binary(), "attach", t, "--once", "--format", "json"});
        CHECK(r.exit_code == 0);
        CHECK(r.err.rfind(note, 0) == 0);
        auto events = json_lines(r.out);
        CHECK(events.size() >= 3);  // attached, stall, detached
        for (const auto& e : events) CHECK(e["process.pid"] == pid);
    }
}
