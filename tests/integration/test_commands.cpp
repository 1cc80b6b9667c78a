// What a new user meets at the command line: messages that name the file and
// the reason, a thread id given for a pid, dump without the right to trace,
// and dump's worker state taken at each worker's own capture.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/child.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"

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

// The stall fixture under `run`: the victim stalls 2s from 0.5s after it is
// ready (long after the watch found the table, even on a loaded machine),
// and the program exits at 4s (the victim done 1.5s before).
std::vector<std::string> run_stall_fixture() {
    return {fixture("sw_fixture_stall"), "--delay-ms", "500", "--stall-ms", "2000", "--exit-after-ms", "4000"};
}

TEST_CASE("run: a report that cannot be written is named, and the program runs on") {
    std::vector<std::string> argv = {stallwatch_binary(), "run", "--threshold", "500ms", "-o", "/dev/full", "--"};
    for (const auto& a : run_stall_fixture()) argv.push_back(a);
    auto r = run(argv);
    CHECK(r.exit_code == 0);  // the program's status
    CHECK(r.err.find("stallwatch: cannot write to /dev/full: No space left on device\n") != std::string::npos);
    CHECK(r.out.find("victim: done") != std::string::npos);
}

TEST_CASE("run ends with the closing line of attach: the pid, and how many reports it made") {
    std::vector<std::string> argv = {stallwatch_binary(), "run", "--threshold", "500ms", "--"};
    for (const auto& a : run_stall_fixture()) argv.push_back(a);
    auto r = run(argv);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);  // the program's status
    auto pid = field(r.out.substr(0, r.out.find('\n')), "pid");
    REQUIRE(pid.has_value());
    // attach's line when the target exits (test_attach.cpp): the same form.
    std::smatch m;
    CHECK(std::regex_search(r.err, m,
                            std::regex("\nstallwatch: pid " + std::to_string(*pid) +
                                       " exited; ([1-9][0-9]*) stall report\\(s\\) made(, [0-9]+ withdrawn \\(the "
                                       "worker moved on while it was being sampled\\))?\n$")));
    CHECK(std::regex_search(r.err, std::regex("STALL #[0-9]+: worker \"victim\"")));
}

TEST_CASE("attach to a process whose main thread exited (pthread_exit): the stall is reported, without a stack "
          "and saying why, and the watch ends when the process does") {
    Started fx({fixture("sw_fixture_stall"), "--workers", "1", "--stall-ms", "60000", "--main-exits"});
    const std::string pid = std::to_string(fx.get("pid"));
    auto r = run({stallwatch_binary(), "attach", pid, "--once", "--threshold", "300ms"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("STALL #1: worker \"victim\"") != std::string::npos);
    CHECK(r.out.find("  no stack: the main thread of pid " + pid +
                     " has exited (pthread_exit) while others run on: its memory map can no longer be read, so no "
                     "stack is taken\n") != std::string::npos);
    CHECK(r.err.find("no longer holds the table") == std::string::npos);

    // A watch that runs on: not fooled into "exited" by the main thread's
    // end, it ends with exit 2 when the last threads do.
    Process watch({stallwatch_binary(), "attach", pid, "--threshold", "300ms"});
    CHECK(watch.wait_for([&] { return watch.out().find("STALL #1: worker \"victim\"") != std::string::npos; },
                         std::chrono::seconds(30)));
    fx.child.finish();
    REQUIRE(watch.wait(std::chrono::seconds(30)).has_value());
    INFO(watch.out() << watch.err());
    CHECK(watch.exit_code() == 2);
    CHECK(watch.err().find("stallwatch: pid " + pid + " exited; ") != std::string::npos);
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

namespace {

// stallwatch's stderr as lines.
std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

}  // namespace

TEST_CASE("dump of a process it may not trace: one line and exit 4, as the other commands") {
    // As root: our own fixture, and stallwatch as nobody. Otherwise: pid 1,
    // if it is another user's.
    std::optional<Started> fx;
    std::vector<std::string> as_other;
    std::string pid;
    if (::geteuid() == 0) {
        fx.emplace(std::vector<std::string>{fixture("sw_fixture_stall"), "--stall-ms", "10000"});
        pid = std::to_string(fx->get("pid"));
        as_other = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    } else {
        struct stat st {};
        if (::stat("/proc/1", &st) != 0 || st.st_uid == ::geteuid())
            SW_SKIP("not root, and pid 1 is ours: no process of another user to try");
        pid = "1";
    }
    for (bool all : {true, false}) {
        auto argv = as_other;
        for (std::string a : {stallwatch_binary(), std::string("dump"), pid}) argv.push_back(a);
        if (all) argv.push_back("--all-threads");
        auto r = run(argv);
        INFO("all threads: " << all << "\nstderr:\n" << r.err);
        CHECK(r.exit_code == 4);
        CHECK(r.out.empty());
        auto lines = lines_of(r.err);
        CHECK(lines.size() == 1);
        CHECK(r.err.find("not permitted") != std::string::npos);
    }
}

TEST_CASE("dump of a process whose every thread another debugger traces: one line and exit 4") {
    if (::geteuid() != 0) SW_SKIP("needs root, to trace with a second tracer under Yama");
    Started fx({fixture("sw_fixture_workers"), "--running", "2"});
    pid_t pid = fx.get("pid");
    std::vector<std::unique_ptr<Child>> tracers;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
        tracers.push_back(std::make_unique<Child>(
            std::vector<std::string>{fixture("hostile/sw_hostile_tracer"), entry.path().filename().string()}));
        auto said = tracers.back()->read_line();
        REQUIRE(said.has_value());
        REQUIRE(said->rfind("tracing ", 0) == 0);
    }
    REQUIRE(tracers.size() == 3);
    for (bool all : {true, false}) {
        std::vector<std::string> argv = {stallwatch_binary(), "dump", std::to_string(pid)};
        if (all) argv.push_back("--all-threads");
        auto r = run(argv);
        INFO("all threads: " << all << "\nstderr:\n" << r.err);
        CHECK(r.exit_code == 4);
        CHECK(lines_of(r.err).size() == 1);
        CHECK(r.err.find("already traced by pid") != std::string::npos);
    }
    // One thread free: the others are shown, the traced ones named; exit 1.
    tracers.pop_back();
    auto r = run({stallwatch_binary(), "dump", std::to_string(pid), "--all-threads"});
    CHECK(r.exit_code == 1);
    CHECK(lines_of(r.err).size() == 2);
}

TEST_CASE("dump shows each worker's state and progress as they were at its own capture") {
    // Six workers flip between parked (in parked_wait) and running (in
    // running_work) every millisecond or so: a state read once before the
    // captures disagrees with the stacks taken after it. --all-threads
    // captures parked workers too; plain dumps leave a worker that is
    // parked when its turn comes unstopped, and say so.
    Started fx({STALLWATCH_TEST_LIFECYCLE, "--mode", "flip", "--workers", "6"});
    const std::string pid = std::to_string(fx.get("pid"));
    int matched = 0, wrong = 0, unstopped = 0;
    for (int i = 0; i < 6; ++i) {
        auto r = run({stallwatch_binary(), "dump", pid, "--format", "json"});
        REQUIRE(r.exit_code == 0);
        for (const auto& e : json_lines(r.out)) {
            INFO("plain dump " << i << ": " << e.dump());
            if (e.value("stallwatch.not_stopped", "") == "parked") {
                ++unstopped;
                CHECK(e["stallwatch.worker.state"] == "parked");
                CHECK(e["frames"].empty());
                CHECK(e["stallwatch.stop_window_us"] == 0.0);
            } else {
                CHECK(!e["frames"].empty());  // running when its turn came, and captured
            }
        }
    }
    CHECK(unstopped > 0);  // the workers are parked about half of the time
    for (int i = 0; i < 6; ++i) {
        auto r = run({stallwatch_binary(), "dump", pid, "--all-threads", "--format", "json"});
        REQUIRE(r.exit_code == 0);
        for (const auto& e : json_lines(r.out)) {
            if (!e.contains("stallwatch.worker.state") || e["stallwatch.worker.state"].is_null()) continue;
            CHECK_FALSE(e.contains("stallwatch.not_stopped"));
            bool parked_wait = false, running_work = false;
            for (const auto& f : e["frames"]) {
                parked_wait = parked_wait || f["code.function.name"] == "parked_wait";
                running_work = running_work || f["code.function.name"] == "running_work";
            }
            const auto& state = e["stallwatch.worker.state"];
            std::string where = parked_wait ? "parked_wait" : running_work ? "running_work" : "neither";
            INFO("dump " << i << ": " << e["thread.name"].dump() << " " << state.dump() << ", stack in " << where);
            if ((state == "parked" && running_work) || (state == "running" && parked_wait)) {
                ++wrong;
                CHECK_MESSAGE(false, "state and stack disagree");
            } else if (parked_wait || running_work) {
                ++matched;
            }
        }
    }
    CHECK(wrong == 0);
    CHECK(matched >= 24);  // most of the 36 samples are inside one of the two
}
