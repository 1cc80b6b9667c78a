// Who holds the lock (docs/locks.md): fixtures/locks.c blocks a worker on
// each kind of lock; stallwatch must name a mutex's holder with its stack,
// follow chains, report a deadlock once, say "owner unknown" where there is
// no owner to know, and refuse a mutex that names a thread of another
// process. Also: incidents of one stack, recursion collapsed, colour only
// on a terminal, folded stacks weighted by milliseconds.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/child.hpp"
#include "support/markers.hpp"
#include "support/process.hpp"
#include "support/spawn.hpp"
#include "support/threads.hpp"

using namespace sw::test;
using json = nlohmann::json;

namespace {

// sw_fixture_locks SCENARIO, once its worker is about to block.
struct Locks {
    Child child;
    pid_t pid = 0;
    pid_t holder = 0;  // the thread that holds the lock, 0 when none
    explicit Locks(const std::string& scenario, std::vector<std::string> extra = {})
        : child(argv(scenario, std::move(extra))) {
        auto line = child.read_line();
        REQUIRE_MESSAGE(line.has_value(), "sw_fixture_locks " << scenario << " did not say ready");
        pid = static_cast<pid_t>(field(*line, "pid").value_or(0));
        holder = static_cast<pid_t>(field(*line, "holder").value_or(0));
        REQUIRE(pid == child.pid());
    }
    static std::vector<std::string> argv(const std::string& scenario, std::vector<std::string> extra) {
        std::vector<std::string> a{fixture("sw_fixture_locks"), scenario};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }
};

// `stallwatch attach PID --once` and what it printed.
RunResult attach_once(pid_t pid, std::vector<std::string> extra = {}) {
    std::vector<std::string> a{stallwatch_binary(), "attach", std::to_string(pid), "--once", "--threshold", "100ms"};
    a.insert(a.end(), extra.begin(), extra.end());
    return run(a, 20s);
}

std::string line_of(const std::string& marker) { return "locks.c:" + std::to_string(marker_line(marker, "locks.c")); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The events of JSON Lines output: every whole line (one that ends in a
// newline). Output still being written may end in part of a line: not yet.
std::vector<json> events(const std::string& jsonl) {
    std::vector<json> out;
    std::size_t start = 0;
    for (std::size_t end; (end = jsonl.find('\n', start)) != std::string::npos; start = end + 1)
        if (end > start) out.push_back(json::parse(jsonl.substr(start, end - start)));
    return out;
}

// The target was left as it was: no thread stopped or traced.
void check_untouched(pid_t pid) {
    INFO("held threads: " << held_threads(pid));
    CHECK(held_threads(pid).empty());
}

}  // namespace

TEST_CASE("a mutex's holder is named with its stack: normal, recursive, error-checking and robust mutexes") {
    for (std::string kind : {"normal", "recursive", "errorcheck", "robust"}) {
        CAPTURE(kind);
        Locks fx(kind);
        REQUIRE(fx.holder > 0);
        auto r = attach_once(fx.pid);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        const std::string type = kind == "errorcheck" ? "error-checking" : kind == "robust" ? "normal, robust" : kind;
        // The blocked worker's own stack, then the lock, its holder and where the holder is.
        CHECK(contains(r.out, "update_db at "));
        CHECK(contains(r.out, line_of("update_db")));
        std::regex held("waiting for mutex 0x[0-9a-f]+ \\(" + type + "\\) held by tid " + std::to_string(fx.holder) +
                        " \"maintenance\" at hold_db_for_maintenance \\(" + line_of("maintenance") + "\\)");
        CHECK(std::regex_search(r.out, held));
        // The holder's stack is printed below, with its frame and line.
        std::regex holder_stack("holder tid " + std::to_string(fx.holder) +
                                " \"maintenance\", stopped \\S+ to sample:\n(    .*\n)*.*hold_db_for_maintenance at \\S*" +
                                line_of("maintenance"));
        CHECK(std::regex_search(r.out, holder_stack));
        check_untouched(fx.pid);
    }
}

TEST_CASE("a chain of holders is followed: the holder waits for a mutex another thread holds") {
    Locks fx("chain");
    auto r = attach_once(fx.pid);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(std::regex_search(r.out, std::regex("waiting for mutex 0x[0-9a-f]+ \\(normal\\) held by tid " +
                                              std::to_string(fx.holder) + " \"middle\" at pass_on_to_b \\(" +
                                              line_of("middle_waits") + "\\)")));
    CHECK(std::regex_search(r.out, std::regex("which is waiting for mutex 0x[0-9a-f]+ \\(normal\\) held by tid "
                                              "\\d+ \"maintenance\" at sleep_forever \\(" +
                                              line_of("holder_sleeps") + "\\)")));
    CHECK(!contains(r.out, "DEADLOCK"));
    check_untouched(fx.pid);
}

TEST_CASE("two threads that wait for each other's mutexes: one deadlock event naming both threads and both locks") {
    Locks fx("deadlock");
    Process sw({stallwatch_binary(), "attach", std::to_string(fx.pid), "--threshold", "100ms", "--format", "json"});
    // Both workers stall; each report finds the same cycle.
    REQUIRE_MESSAGE(sw.wait_for([&] {
        int stalls = 0;
        for (const auto& e : events(sw.out())) stalls += e["event"] == "stall";
        return stalls >= 2;
    }, 10s), sw.out() << sw.err());
    sw.watch_for(500ms);
    sw.signal(SIGTERM);
    REQUIRE(sw.wait().has_value());
    CHECK(sw.exit_code() == 0);
    std::vector<json> deadlocks, stalls;
    for (auto& e : events(sw.out())) {
        if (e["event"] == "deadlock") deadlocks.push_back(e);
        if (e["event"] == "stall") stalls.push_back(e);
    }
    INFO(sw.out());
    REQUIRE(deadlocks.size() == 1);
    REQUIRE(stalls.size() == 2);
    const auto& cycle = deadlocks[0]["stallwatch.deadlock.threads"];
    REQUIRE(cycle.size() == 2);
    std::set<std::string> names;
    std::set<std::string> locks;
    std::set<long> tids;
    for (const auto& link : cycle) {
        names.insert(link["thread.name"].get<std::string>());
        locks.insert(link["stallwatch.lock"]["address"].get<std::string>());
        tids.insert(link["thread.id"].get<long>());
        CHECK(link["stallwatch.lock"]["kind"] == "mutex");
        CHECK(link["stallwatch.frame.application"] == "take_in_order (" + line_of("deadlock") + ")");
    }
    CHECK(names == std::set<std::string>{"left", "right"});
    CHECK(locks.size() == 2);
    // Each waits for the lock the other holds.
    CHECK(cycle[0]["stallwatch.lock.held_by"] == cycle[1]["thread.id"]);
    CHECK(cycle[1]["stallwatch.lock.held_by"] == cycle[0]["thread.id"]);
    for (const auto& s : stalls) {
        CHECK(s["stallwatch.lock"]["deadlock"] == true);
        CHECK(tids.count(s["stallwatch.lock"]["owner_tid"].get<long>()) == 1);
    }
    check_untouched(fx.pid);

    // In text, and for a thread that locks a mutex it holds itself.
    Locks self("self");
    auto r = attach_once(self.pid);
    INFO(r.out << r.err);
    CHECK(std::regex_search(r.out, std::regex("held by tid \\d+ \"db-worker\" itself: a DEADLOCK")));
    CHECK(contains(r.out, "DEADLOCK in pid " + std::to_string(self.pid)));
    CHECK(contains(r.out, "a thread waits for a mutex it holds itself"));
}

TEST_CASE("locks without an owner to know: condition variable, rwlock, semaphore say owner unknown and never guess") {
    const std::map<std::string, std::string> said = {
        {"condvar", "waiting for condition variable 0x[0-9a-f]+: owner unknown \\(a condition variable has no owner"},
        {"rwlock", "waiting for read-write lock 0x[0-9a-f]+: owner unknown \\(glibc does not record"},
        {"semaphore", "waiting for semaphore 0x[0-9a-f]+: owner unknown \\(a semaphore has no owner"},
    };
    for (const auto& [scenario, pattern] : said) {
        const std::string name = scenario;  // no structured binding in INFO (clang 14)
        CAPTURE(name);
        Locks fx(name);
        auto r = attach_once(fx.pid);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(std::regex_search(r.out, std::regex(pattern)));
        CHECK(contains(r.out, line_of(name)));
        CHECK(!contains(r.out, "held by"));
        check_untouched(fx.pid);
    }
}

TEST_CASE("a hostile mutex that names a thread of another process is refused, and that thread is never stopped") {
    // The fixture writes our own pid into the mutex's owner field.
    Locks fx("hostile", {"--foreign-tid", std::to_string(::getpid())});
    ThreadSpy spy({::getpid()});
    auto r = attach_once(fx.pid, {"--format", "json"});
    spy.stop();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    bool seen = false;
    for (const auto& e : events(r.out)) {
        if (e["event"] != "stall") continue;
        seen = true;
        const auto& lock = e["stallwatch.lock"];
        CHECK(lock["kind"] == "mutex");
        CHECK(lock["owner_tid"].is_null());
        CHECK(lock["owner_tid_in_memory"] == ::getpid());
        CHECK(contains(lock["owner_unknown"].get<std::string>(), "not a thread of this process: not trusted"));
        CHECK(!lock.contains("holders"));
    }
    CHECK(seen);
    CHECK(spy.sightings().empty());
    check_untouched(fx.pid);
}

TEST_CASE("--no-holder-stacks names the holder without stopping it") {
    Locks fx("normal");
    ThreadSpy spy({fx.pid});
    auto r = attach_once(fx.pid, {"--no-holder-stacks"});
    spy.stop();
    INFO(r.out << r.err);
    CHECK(std::regex_search(r.out, std::regex("held by tid " + std::to_string(fx.holder) + " \"maintenance\"")));
    CHECK(contains(r.out, "holder's stack: not stopped (--no-holder-stacks)"));
    // Only the stalled worker was stopped (the spy may miss a stop that
    // short, but must never see the holder's).
    CHECK(!contains(spy.sightings(), "tid " + std::to_string(fx.holder) + " "));
}

TEST_CASE("a holder in a call that a stop would interrupt (epoll_wait) is named and never stopped") {
    Locks fx("holder-epoll");
    ThreadSpy spy({fx.pid});
    auto r = attach_once(fx.pid);
    spy.stop();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(std::regex_search(r.out, std::regex("held by tid " + std::to_string(fx.holder) + " \"maintenance\"")));
    CHECK(contains(r.out, "holder's stack: not stopped: it is in epoll_wait, which a stop might interrupt"));
    // Its epoll_wait went on undisturbed: the fixture prints EINTR if it ever fails so.
    CHECK(!fx.child.read_line(300ms).has_value());
    CHECK(!contains(spy.sightings(), "tid " + std::to_string(fx.holder) + " "));
    check_untouched(fx.pid);
}

TEST_CASE("recursion: a run of identical frames is one line in text, every frame in JSON") {
    Locks fx("recursion");
    auto text = attach_once(fx.pid, {"--max-frames", "128"});
    INFO(text.out << text.err);
    // recurse(40) down to recurse(0): 40 calls from the same place.
    std::smatch m;
    REQUIRE(std::regex_search(text.out, m,
                              std::regex("#(\\d+)-(\\d+) recurse at \\S*" + line_of("recurse") +
                                         ":\\d+ \u00d7(\\d+) \\[sw_fixture_locks\\+0x[0-9a-f]+\\]")));
    CHECK(std::stoi(m[3]) == 40);
    CHECK(std::stoi(m[2]) - std::stoi(m[1]) + 1 == 40);
    auto js = attach_once(fx.pid, {"--max-frames", "128", "--format", "json", "--max-event-bytes", "0"});
    int recurse_frames = 0;
    for (const auto& e : events(js.out))
        if (e["event"] == "stall")
            for (const auto& f : e["frames"]) recurse_frames += f["code.function.name"] == "recurse";
    CHECK(recurse_frames == 41);  // the 40 calls, and recurse(0) itself
}

TEST_CASE("colour: only on a terminal (or --color=always), never with NO_COLOR, TERM=dumb or into a pipe") {
    Locks fx("normal");
    const std::string sw = stallwatch_binary(), pid = std::to_string(fx.pid);
    const std::string cmd = sw + " attach " + pid + " --once --threshold 100ms";
    // `script` gives the command a terminal of its own.
    auto tty = run({"/usr/bin/script", "-qec", cmd, "/dev/null"}, 20s, {{"TERM", "xterm"}});
    INFO(tty.out << tty.err);
    CHECK(contains(tty.out, "\x1b[1;31mSTALL #1\x1b[0m"));
    CHECK(contains(tty.out, "\x1b[1;35mtid " + std::to_string(fx.holder) + " \"maintenance\"\x1b[0m"));
    CHECK(std::regex_search(tty.out, std::regex("\x1b\\[1;33m>#\\d+ +0x[0-9a-f]+ update_db at")));
    CHECK(contains(tty.out, "\x1b[31m#0-"));  // the blocked frames: where it waits
    auto no_color = run({"/usr/bin/script", "-qec", cmd, "/dev/null"}, 20s, {{"TERM", "xterm"}, {"NO_COLOR", "1"}});
    CHECK(contains(no_color.out, "STALL #1"));
    CHECK(!contains(no_color.out, "\x1b["));
    auto dumb = run({"/usr/bin/script", "-qec", cmd, "/dev/null"}, 20s, {{"TERM", "dumb"}});
    CHECK(contains(dumb.out, "STALL #1"));
    CHECK(!contains(dumb.out, "\x1b["));
    auto never = run({"/usr/bin/script", "-qec", cmd + " --color=never", "/dev/null"}, 20s, {{"TERM", "xterm"}});
    CHECK(contains(never.out, "STALL #1"));
    CHECK(!contains(never.out, "\x1b["));
    auto piped = attach_once(fx.pid);
    CHECK(contains(piped.out, "STALL #1"));
    CHECK(!contains(piped.out, "\x1b["));
    auto always = attach_once(fx.pid, {"--color=always"});
    CHECK(contains(always.out, "\x1b[1;31mSTALL #1\x1b[0m"));
}

TEST_CASE("an incident: 40 workers blocked on one lock are one stack, 39 lines and INCIDENT lines, and in JSON one incident id") {
    for (std::string format : {"text", "json"}) {
        CAPTURE(format);
        Child fx({fixture("sw_fixture_incident"), "--workers", "40", "--hold-ms", "1500", "--period-ms", "60000",
                  "--first-ms", "100", "--on-signal"});
        auto ready = fx.read_line();
        REQUIRE(ready.has_value());
        const pid_t pid = static_cast<pid_t>(field(*ready, "pid").value_or(0));
        Process sw({stallwatch_binary(), "attach", std::to_string(pid), "--threshold", "100ms", "--format", format});
        REQUIRE_MESSAGE(sw.wait_for_err("stallwatch: watching pid", 10s), sw.err());
        ::kill(pid, SIGUSR1);
        // The hold begins 0.1 s after the signal and lasts 1.5 s; then every stall ends.
        if (format == "text")
            REQUIRE_MESSAGE(sw.wait_for_out(", ended\n", 10s), sw.out() << sw.err());
        else
            sw.watch_for(2500ms);
        sw.signal(SIGTERM);
        REQUIRE(sw.wait().has_value());
        INFO(sw.out() << sw.err());
        if (format == "text") {
            const std::string& out = sw.out();
            std::smatch m;
            REQUIRE(std::regex_search(out, m, std::regex(" STALL #(\\d+): worker \"worker-\\d+\"")));
            const std::string first = m[1];
            auto count = [&](const std::regex& re) {
                return std::distance(std::sregex_iterator(out.begin(), out.end(), re), std::sregex_iterator());
            };
            CHECK(count(std::regex(" STALL #\\d+: ")) == 1);  // one full report
            CHECK(count(std::regex(" \\+ worker \"worker-\\d+\" \\(tid \\d+, slot \\d+\\): same stack as STALL #" +
                                   first + " \\(incident #" + first + "\\), \\S+; waits for mutex 0x[0-9a-f]+ "
                                   "\\(normal\\) held by tid \\d+ \"maintenance\"")) == 39);
            // The stack: in the first report and in its updates, never for the others.
            CHECK(count(std::regex("lock_shared at ")) ==
                  1 + count(std::regex(" STALL #" + first + " still going ")));
            CHECK(std::regex_search(out, std::regex("INCIDENT #" + first + ": 40 workers of pid " +
                                                    std::to_string(pid) +
                                                    " stalled at lock_shared \\(incident\\.c:\\d+\\), longest \\S+, "
                                                    "ended\n")));
            CHECK(count(std::regex("RECOVERED #")) == 1);  // the first; the others are in the incident's end
        } else {
            std::map<long, std::set<long>> incident_tids;
            for (const auto& e : events(sw.out()))
                if (e["event"] == "stall") incident_tids[e["stallwatch.incident"].get<long>()].insert(e["thread.id"].get<long>());
            REQUIRE(incident_tids.size() == 1);
            CHECK(incident_tids.begin()->second.size() == 40);
        }
    }
}

TEST_CASE("attach --format folded weighs each stack by the milliseconds it stalled") {
    Locks fx("normal");
    Process sw({stallwatch_binary(), "attach", std::to_string(fx.pid), "--threshold", "100ms", "--format", "folded"});
    REQUIRE_MESSAGE(sw.wait_for_err("stallwatch: watching pid", 10s), sw.err());
    sw.watch_for(1500ms);
    sw.signal(SIGTERM);
    REQUIRE(sw.wait().has_value());
    INFO(sw.out() << sw.err());
    // One stall, still going at the end: about 1.5 s, one stack.
    std::smatch m;
    REQUIRE(std::regex_search(sw.out(), m, std::regex("^db-worker;.*;update_db;.* (\\d+)\n")));
    const long weight = std::stol(m[1]);
    CHECK(weight >= 500);  // a loaded machine may hide some of it (a gap counts as one interval)
    CHECK(weight <= 3000);
}
