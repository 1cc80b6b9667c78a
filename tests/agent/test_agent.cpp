// `stallwatch attach --all`, the host agent, against real fixtures: one
// started before it, one after it, one that exits while watched, one in a
// PID namespace, and a hostile table beside them; its filters; its usage
// errors. Each stall is checked down to the blocked function and its
// file:line, as the attach tests do.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "support/child.hpp"
#include "support/markers.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"
#include "support/spawn.hpp"
#include "support/text_report.hpp"

using namespace sw::test;
using json = nlohmann::json;

namespace {

// A stall fixture (fixtures/stall.c) whose victim sleeps in sleep_in_handler
// at depth 1, after `delay_ms`, for `stall_ms`. `wrap` runs it under
// another program (unshare).
struct Fixture {
    Child child;
    pid_t pid = -1;     // as stallwatch sees it
    pid_t victim = -1;  // the victim's tid as the fixture printed it (in its own PID namespace)

    Fixture(long delay_ms, long stall_ms, std::vector<std::string> wrap = {})
        : child(argv(delay_ms, stall_ms, std::move(wrap))) {
        auto line = child.read_line();
        REQUIRE_MESSAGE(line.has_value(), "the stall fixture did not say ready");
        auto p = field(*line, "pid");
        auto v = field(*line, "victim");
        REQUIRE_MESSAGE((p && v), "no pid or victim in: " << *line);
        victim = static_cast<pid_t>(*v);
        pid = static_cast<pid_t>(*p);
    }
    static std::vector<std::string> argv(long delay_ms, long stall_ms, std::vector<std::string> wrap) {
        for (std::string a : {fixture("sw_fixture_stall"), std::string("--mode"), std::string("sleep"),
                              std::string("--depth"), std::string("1"), std::string("--workers"), std::string("0"),
                              std::string("--delay-ms"), std::to_string(delay_ms), std::string("--stall-ms"),
                              std::to_string(stall_ms)})
            wrap.push_back(a);
        return wrap;
    }
};

// The one child of `parent` (unshare --fork's child), or -1.
pid_t only_child(pid_t parent) {
    std::ifstream in("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children");
    long child = -1, more = -1;
    in >> child >> more;
    return more == -1 ? static_cast<pid_t>(child) : -1;
}

std::vector<std::string> agent_args(std::vector<std::string> extra) {
    std::vector<std::string> argv = {stallwatch_binary(), "attach", "--all"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

// The complete JSON lines the agent wrote so far.
std::vector<json> events_of(const Process& agent) {
    std::vector<json> out;
    std::istringstream in(agent.out());
    for (std::string line; std::getline(in, line);) {
        if (in.eof()) break;  // not complete yet
        out.push_back(json::parse(line));
    }
    return out;
}

// The first event `kind` about process `pid`, if any.
std::optional<json> find_event(const Process& agent, const std::string& kind, pid_t pid) {
    for (auto& e : events_of(agent))
        if (e["event"] == kind && e["process.pid"] == pid) return e;
    return std::nullopt;
}

// Waits (bounded) for event `kind` about `pid`.
json wait_event(Process& agent, const std::string& kind, pid_t pid, std::chrono::milliseconds timeout = 15s) {
    std::optional<json> found;
    agent.wait_for([&] { return (found = find_event(agent, kind, pid)).has_value(); }, timeout);
    REQUIRE_MESSAGE(found.has_value(), "no " << kind << " event for pid " << pid << " in:\n"
                                             << agent.out() << "stderr:\n" << agent.err());
    return *found;
}

std::string basename_of(const json& path) {
    if (!path.is_string()) return {};
    return std::filesystem::path(path.get<std::string>()).filename().string();
}

// A stall event of the victim: the stack goes sleep_in_handler (at its
// sleep), block_now, descend twice, handle_request, victim_main, each at
// the line of its call in stall.c.
void check_victim_stall(const json& e, pid_t tid) {
    INFO("event: " << e.dump());
    CHECK(e["thread.name"] == "victim");
    CHECK(e["thread.id"] == tid);
    const auto& frames = e["frames"];
    std::size_t at = frames.size();
    for (std::size_t i = 0; i < frames.size(); ++i)
        if (frames[i]["code.function.name"] == "sleep_in_handler") {
            at = i;
            break;
        }
    REQUIRE_MESSAGE(at < frames.size(), "no sleep_in_handler frame");
    CHECK(basename_of(frames[at]["code.file.path"]) == "stall.c");
    CHECK(frames[at]["code.line.number"] == marker_line("sleep"));
    struct Expect {
        const char* function;
        const char* marker;
    };
    const Expect chain[] = {{"block_now", "block_sleep"},
                            {"descend", "descend"},
                            {"descend", "descend"},
                            {"handle_request", "handle_request"},
                            {"victim_main", "victim"}};
    for (std::size_t k = 0; k < std::size(chain); ++k) {
        std::size_t i = at + 1 + k;
        INFO("expected frame " << i << ": " << chain[k].function << " at stall.c:" << marker_line(chain[k].marker));
        REQUIRE(i < frames.size());
        CHECK(frames[i]["code.function.name"] == chain[k].function);
        CHECK(basename_of(frames[i]["code.file.path"]) == "stall.c");
        CHECK(frames[i]["code.line.number"] == marker_line(chain[k].marker));
    }
}

// The host tid of the thread that `pid` (in its own PID namespace) calls
// `ns_tid`: the last field of an NSpid: line is the innermost id.
pid_t host_tid(pid_t pid, pid_t ns_tid) {
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        std::ifstream in(task.path() / "status");
        for (std::string line; std::getline(in, line);) {
            if (line.rfind("NSpid:", 0) != 0) continue;
            std::istringstream ids(line.substr(6));
            long id = 0, last = 0;
            while (ids >> id) last = id;
            if (last == ns_tid) return static_cast<pid_t>(std::stol(task.path().filename().string()));
        }
    }
    return -1;
}

// One agent over: A started before it, C started before it that exits once
// its stall is reported, B started after it, a hostile table beside them,
// and (with `in_namespace`) N under unshare --pid --fork --mount-proc.
void agent_scenario(bool in_namespace) {
    Fixture a(300, 5000), c(300, 5000);
    Child hostile({fixture("hostile/sw_hostile_writer"), "--mode", "chaos"});
    auto ready = hostile.read_line();
    REQUIRE_MESSAGE(ready.has_value(), "the hostile writer did not say ready");
    pid_t hostile_pid = static_cast<pid_t>(field(*ready, "pid").value_or(-1));
    std::optional<Fixture> n;
    pid_t n_pid = -1, n_victim = -1;
    if (in_namespace) {
        n.emplace(300, 5000,
                  std::vector<std::string>{"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", "--kill-child"});
        CHECK(n->pid == 1);  // it sees itself as the namespace's first process
        REQUIRE(poll_until([&] { return (n_pid = only_child(n->child.pid())) > 0; }, 5s));
        n_victim = host_tid(n_pid, n->victim);
        REQUIRE_MESSAGE(n_victim > 0, "no thread of pid " << n_pid << " is tid " << n->victim << " inside");
    }

    Process agent(agent_args({"--format", "json", "--threshold", "200ms"}));
    INFO("agent stderr:\n" << agent.err());
    wait_event(agent, "attached", a.pid);
    wait_event(agent, "attached", c.pid);

    // C: reported, then it exits; the agent says so and goes on.
    check_victim_stall(wait_event(agent, "stall", c.pid), c.victim);
    auto status = c.child.finish();
    REQUIRE(status.has_value());
    auto detached = wait_event(agent, "detached", c.pid);
    CHECK(detached["stallwatch.reason"] == "target_exited");
    CHECK(agent.wait_for_err("pid " + std::to_string(c.pid) + " (sw_fixture_stal) exited; ", 5s));

    // B: started while the agent runs; found within a discovery period (0.5 s),
    // then its symbols are loaded before "attached" (~0.1 s here; give ASan
    // builds on a busy machine room).
    Fixture b(300, 3000);
    auto found_from = std::chrono::steady_clock::now();
    wait_event(agent, "attached", b.pid);
    auto took = std::chrono::steady_clock::now() - found_from;
    INFO("B was watched " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                          << " ms after its table was made");
    CHECK(took < 2000ms);
    check_victim_stall(wait_event(agent, "stall", b.pid), b.victim);
    check_victim_stall(wait_event(agent, "stall", a.pid), a.victim);

    // The hostile table: one error naming that process, never the agent's end.
    auto error = wait_event(agent, "error", hostile_pid);
    CHECK(error["error.message"].is_string());
    CHECK(agent.err().find("pid " + std::to_string(hostile_pid) + " (sw_hostile_writ): ") != std::string::npos);

    if (in_namespace) {
        // The stall of a worker that the table names by its tid inside the
        // namespace: reported with the right stack, our tid as thread.id and
        // its own beside it (docs/json-events.md).
        auto e = wait_event(agent, "stall", n_pid);
        CHECK(e["thread.id"] == n_victim);
        CHECK(e["stallwatch.thread.id_in_namespace"] == n->victim);
        CHECK(e["stallwatch.process.pid_in_namespace"] == 1);
        check_victim_stall(e, n_victim);
    }

    agent.signal(SIGTERM);
    auto st = agent.wait();
    REQUIRE(st.has_value());
    CHECK(agent.exit_code() == 0);
    for (pid_t pid : {a.pid, b.pid}) {
        auto d = find_event(agent, "detached", pid);
        REQUIRE_MESSAGE(d.has_value(), "no detached event for pid " << pid);
        CHECK((*d)["stallwatch.reason"] == "signal");
    }
    CHECK(agent.err().find("Terminated received;") != std::string::npos);
}

}  // namespace

TEST_CASE("one attach --all reports a process started before it, one started after it and one that exits, "
          "and goes on past a hostile table") {
    agent_scenario(false);
}

TEST_CASE("one attach --all reports those and a process in its own PID namespace") {
    if (::geteuid() != 0) SW_SKIP("unshare --pid needs root");
    agent_scenario(true);
}

TEST_CASE("a process that exits while the agent holds its stalled thread is dropped, and the agent goes on") {
    Fixture x(300, 5000), y(3000, 3000);
    // Every stop held 300 ms (a test hook): the exit lands inside a capture.
    Process agent(agent_args({"--format", "json", "--threshold", "200ms"}), hold_stop_env(300000));
    INFO("agent stderr:\n" << agent.err());
    REQUIRE_MESSAGE(poll_until([&] { return held_by(x.pid, agent.pid()); }, 10s), agent.err());
    auto st = x.child.finish(3s);
    REQUIRE_MESSAGE(st.has_value(), "the target could not finish exiting while the agent runs");
    CHECK(*st == 0);
    CHECK(wait_event(agent, "detached", x.pid)["stallwatch.reason"] == "target_exited");
    CHECK(agent.wait_for_err("pid " + std::to_string(x.pid) + " (sw_fixture_stal) exited; ", 5s));
    check_victim_stall(wait_event(agent, "stall", y.pid), y.victim);
    agent.signal(SIGTERM);
    REQUIRE(agent.wait().has_value());
    CHECK(agent.exit_code() == 0);
}

TEST_CASE("attach --all in text: every report names its process, with that process's stack") {
    Fixture one(300, 3000), two(300, 3000);
    Process agent(agent_args({"--threshold", "200ms"}));
    INFO("agent stdout:\n" << agent.out() << "stderr:\n" << agent.err());
    auto reported = [&](const Fixture& f) {
        for (const auto& r : parse_reports(agent.out()))
            if (r.header.find(" of pid " + std::to_string(f.pid) + " (sw_fixture_stal)") != std::string::npos)
                return true;
        return false;
    };
    CHECK(agent.wait_for([&] { return reported(one) && reported(two); }, 15s));
    agent.signal(SIGINT);
    REQUIRE(agent.wait().has_value());
    CHECK(agent.exit_code() == 0);
    for (const Fixture* f : {&one, &two}) {
        std::string of_pid = " of pid " + std::to_string(f->pid) + " (sw_fixture_stal)";
        for (const auto& r : parse_reports(agent.out())) {
            if (r.header.find(of_pid) == std::string::npos) continue;
            INFO("report:\n" << r.text);
            CHECK(r.header.find("worker \"victim\" (tid " + std::to_string(f->victim) + ", ") != std::string::npos);
            auto at = r.find("sleep_in_handler");
            REQUIRE(at != TextReport::npos);
            CHECK(r.frames[at].basename() == "stall.c");
            CHECK(r.frames[at].line == marker_line("sleep"));
            auto main_at = r.find("victim_main", at);
            REQUIRE(main_at != TextReport::npos);
            CHECK(r.frames[main_at].line == marker_line("victim"));
        }
        CHECK(agent.err().find("watching pid " + std::to_string(f->pid) + " (sw_fixture_stal)") !=
              std::string::npos);
    }
}

TEST_CASE("attach --all with --comm, --user and --cgroup watches only the processes that match them all") {
    Child workers({fixture("sw_fixture_workers")});
    auto line = workers.read_line();
    REQUIRE_MESSAGE(line.has_value(), "sw_fixture_workers did not say ready");
    pid_t workers_pid = static_cast<pid_t>(field(*line, "pid").value_or(-1));
    Fixture stall(60000, 1000);  // never stalls while watched here
    std::string me = std::to_string(::geteuid());
    std::string my_cgroup;
    {
        std::ifstream in("/proc/self/cgroup");
        for (std::string l; std::getline(in, l);)
            if (l.rfind("0::", 0) == 0) my_cgroup = l.substr(3);
    }

    // Runs the agent with `filters` until it watches `watched` (or, when -1,
    // says it waits), one discovery more, and says whether it watched `other`.
    auto watches = [&](std::vector<std::string> filters, pid_t watched, pid_t other) {
        filters.insert(filters.end(), {"--format", "json"});
        Process agent(agent_args(filters));
        INFO("filters: " << filters[0] << " " << filters[1]);
        if (watched > 0) wait_event(agent, "attached", watched);
        else CHECK(agent.wait_for_err("carries a table yet; waiting for one", 10s));
        agent.watch_for(1200ms);  // two more looks at every process
        bool seen = find_event(agent, "attached", other).has_value();
        agent.signal(SIGINT);
        REQUIRE(agent.wait().has_value());
        CHECK(agent.exit_code() == 0);
        return seen;
    };
    SUBCASE("--comm: a pattern, or the exact command name") {
        CHECK_FALSE(watches({"--comm", "sw_fixture_st*"}, stall.pid, workers_pid));
        CHECK_FALSE(watches({"--comm", "sw_fixture_work"}, workers_pid, stall.pid));
    }
    SUBCASE("--user: a uid or a name, with --comm") {
        CHECK_FALSE(watches({"--user", me, "--comm", "sw_fixture_st[a]l"}, stall.pid, workers_pid));
        CHECK_FALSE(watches({"--user", std::to_string(::geteuid() + 4242)}, -1, stall.pid));
        if (::geteuid() == 0)
            CHECK_FALSE(watches({"--user", "root", "--comm", "sw_fixture_w*"}, workers_pid, stall.pid));
    }
    SUBCASE("--cgroup: this test's cgroup v2 path and what is below it") {
        if (!my_cgroup.empty())
            CHECK_FALSE(watches({"--cgroup", my_cgroup, "--comm", "sw_fixture_work"}, workers_pid, stall.pid));
        CHECK_FALSE(watches({"--cgroup", "/no-such-stallwatch-test.slice"}, -1, stall.pid));
    }
}

TEST_CASE("attach --all: usage errors exit 64 with one line") {
    struct Bad {
        std::vector<std::string> args;
        std::string says;
    };
    for (const auto& bad : {Bad{{"attach", "--all", "1"}, "a pid or --all, not both"},
                            Bad{{"attach", "1", "--user", "root"}, "give --all too"},
                            Bad{{"attach", "--all", "--once"}, "--once"},
                            Bad{{"attach", "--all", "--user", "no-such-user-stallwatch"}, "no such user"}}) {
        std::vector<std::string> argv = {stallwatch_binary()};
        argv.insert(argv.end(), bad.args.begin(), bad.args.end());
        auto r = run(argv, 10s);
        INFO("stderr: " << r.err);
        CHECK(r.exit_code == 64);
        CHECK(r.out.empty());
        CHECK(r.err.find(bad.says) != std::string::npos);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
}
