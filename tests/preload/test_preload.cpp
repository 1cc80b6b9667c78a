// libstallwatch-preload.so on programs that know nothing of stallwatch
// (fixtures/eventloop): what is reported and what never is, what dump does
// with parked loops, fork, the calls' transparency, and what `run
// --preload` says when it cannot watch a program.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "preload/preload_run.hpp"
#include "support/markers.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"

using namespace sw::test;

namespace {

std::string loop_fixture() { return fixture("sw_fixture_loop"); }

// "report turns=N eintr=E errors=X" from the loop fixture.
struct LoopCounts {
    long turns = -1, eintr = -1, errors = -1;
};

LoopCounts loop_report(Child& loop) {
    loop.say("report\n");
    for (int i = 0; i < 20; ++i) {
        auto line = loop.read_line(5s);
        if (!line) break;
        if (line->rfind("report ", 0) == 0)
            return {field(*line, "turns").value_or(-1), field(*line, "eintr").value_or(-1),
                    field(*line, "errors").value_or(-1)};
    }
    FAIL("the loop fixture did not answer \"report\"");
    return {};
}

std::string status_of(pid_t pid) {
    auto r = run({stallwatch_binary(), "status", std::to_string(pid)}, 10s);
    INFO("status: " << r.out << r.err);
    REQUIRE(r.exit_code == 0);
    return r.out;
}

// The status lines of workers named `name`.
std::vector<std::string> worker_lines(const std::string& status, const std::string& name) {
    std::vector<std::string> out;
    std::istringstream in(status);
    for (std::string line; std::getline(in, line);)
        if (line.size() >= name.size() && line.compare(line.size() - name.size(), name.size(), name) == 0)
            out.push_back(line);
    return out;
}

}  // namespace

TEST_CASE("a loop nobody changed: its blocked handler is reported with function and line, then its recovery, "
          "while idle, a condition-variable pool and a busy poller are never reported") {
    TempDir dir("sw-preload");
    const std::string out = dir.file("events.json");
    Child run_({stallwatch_binary(), "run", "--preload", "-f", "json", "-o", out, "--", loop_fixture()});
    auto ready = run_.read_line(10s);
    REQUIRE_MESSAGE(ready.has_value(), "the loop did not start");
    const pid_t pid = static_cast<pid_t>(field(*ready, "pid").value_or(0));
    REQUIRE(pid > 0);
    REQUIRE_MESSAGE(wait_for_event(out, "attached"), "stallwatch did not find the preload's table");

    // Idle: the loop parks in epoll_wait between its 50 ms timer turns.
    std::this_thread::sleep_for(1500ms);
    auto status = status_of(pid);
    INFO("status:\n" << status);
    auto loop = worker_lines(status, "sw_fixture_loop");
    auto poller = worker_lines(status, "busy-poller");
    REQUIRE(loop.size() == 1);
    CHECK(loop[0].find(std::to_string(pid)) != std::string::npos);  // the main thread
    REQUIRE(poller.size() == 1);
    CHECK(poller[0].find("running") != std::string::npos);  // zero-timeout polls never park
    CHECK(worker_lines(status, "pool-worker").empty());     // never waits in a wrapped call
    // Named by the main thread after its first wait: registered again under
    // its name at a later wait; only the main thread has the process's name.
    CHECK(worker_lines(status, "late-named").size() == 1);
    CHECK(events_of(read_events(out), "stall").empty());

    // One handler blocks 800 ms.
    run_.say("block 800\n");
    auto counts = loop_report(run_);  // answered once the handler is done
    CHECK(counts.errors == 0);
    CHECK(counts.eintr == 0);  // attach never stops a parked loop
    REQUIRE(wait_for_event(out, "recovered", 5s));

    auto events = read_events(out);
    auto stalls = events_of(events, "stall");
    auto updates = events_of(events, "stall_update");
    REQUIRE(stalls.size() == 1);
    const auto& s = stalls[0];
    INFO("stack: " << frame_names(s));
    CHECK(s["thread.id"] == pid);
    CHECK(s["thread.name"] == "sw_fixture_loop");
    CHECK(has_frame(s, "slow_handler", marker_line("loop_block", "eventloop/loop.c")));
    CHECK(s["stallwatch.thread.syscall"] == "clock_nanosleep");
    for (const auto& u : updates) CHECK(u["thread.id"] == pid);  // the same episode, the same thread
    auto recovered = events_of(events, "recovered");
    REQUIRE(recovered.size() == 1);
    CHECK(recovered[0]["thread.id"] == pid);
    CHECK(recovered[0].value("stallwatch.stall.duration_ms", 0.0) >= 700.0);
    CHECK(recovered[0].value("stallwatch.stall.duration_ms", 0.0) <= 2000.0);

    run_.say("spin 400\n");
    loop_report(run_);
    REQUIRE(run_.finish(10s) == std::optional<int>(0));
    auto all = read_events(out);
    auto spins = events_of(all, "stall");
    REQUIRE(spins.size() == 2);
    INFO("stack: " << frame_names(spins[1]));
    CHECK(has_frame(spins[1], "busy_handler"));
    for (const auto& e : spins) CHECK(e["thread.id"] == pid);  // never the poller, never the pool
}

TEST_CASE("dump shows a parked loop as parked and does not stop it, while --all-threads stops it, and its "
          "epoll_wait returns EINTR") {
    Child loop({loop_fixture()}, {{"LD_PRELOAD", preload_library()}});
    auto ready = loop.read_line(10s);
    REQUIRE(ready.has_value());
    const pid_t pid = loop.pid();
    REQUIRE(poll_until([&] { return status_of(pid).find("parked") != std::string::npos; }, 5s, 100ms));

    for (int i = 0; i < 20; ++i) {
        auto r = run({stallwatch_binary(), "dump", std::to_string(pid)}, 10s);
        INFO("dump: " << r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.out.find("parked: waiting for work, not stopped") != std::string::npos);
        CHECK(r.out.find("in epoll_wait") != std::string::npos);
        CHECK(r.out.find("stopped to sample") == std::string::npos);
    }
    auto before = loop_report(loop);
    CHECK(before.eintr == 0);
    CHECK(before.errors == 0);

    // The JSON form says the same.
    auto j = run({stallwatch_binary(), "dump", "-f", "json", std::to_string(pid)}, 10s);
    REQUIRE(j.exit_code == 0);
    bool parked_main = false;
    std::istringstream in(j.out);
    for (std::string line; std::getline(in, line);) {
        auto e = nlohmann::json::parse(line);
        if (e["thread.id"] == pid) {
            parked_main = e.value("stallwatch.not_stopped", "") == "parked" && e["frames"].empty() &&
                          e["stallwatch.thread.syscall"] == "epoll_wait";
        }
    }
    CHECK(parked_main);

    auto all = run({stallwatch_binary(), "dump", "--all-threads", std::to_string(pid)}, 10s);
    INFO("dump --all-threads: " << all.out << all.err);
    REQUIRE(all.exit_code == 0);
    CHECK(all.out.find("not stopped") == std::string::npos);
    auto after = loop_report(loop);
    CHECK(after.eintr >= 1);  // the stop in epoll_wait: the kernel fails it with EINTR
    CHECK(after.errors == 0);
    CHECK(loop.finish(10s) == std::optional<int>(0));
}

TEST_CASE("a forked child's loop gets a table of its own, and the parent's stays its own") {
    Child loop({loop_fixture(), "--child-ms", "4000"}, {{"LD_PRELOAD", preload_library()}});
    REQUIRE(loop.read_line(10s).has_value());
    const pid_t parent = loop.pid();
    REQUIRE(poll_until([&] { return !worker_lines(status_of(parent), "sw_fixture_loop").empty(); }, 5s, 100ms));
    loop.say("fork\n");
    pid_t child = 0;
    for (int i = 0; i < 10 && child == 0; ++i) {
        auto line = loop.read_line(5s);
        REQUIRE(line.has_value());
        if (line->rfind("child ", 0) == 0) child = static_cast<pid_t>(field(*line, "pid").value_or(0));
    }
    REQUIRE(child > 0);
    std::string child_status;
    REQUIRE(poll_until(
        [&] {
            auto r = run({stallwatch_binary(), "status", std::to_string(child)}, 10s);
            child_status = r.out;
            return r.exit_code == 0 && !worker_lines(r.out, "sw_fixture_loop").empty();
        },
        3s, 100ms));
    INFO("child:\n" << child_status);
    auto mine = worker_lines(child_status, "sw_fixture_loop");
    REQUIRE(mine.size() == 1);
    CHECK(mine[0].find(std::to_string(child)) != std::string::npos);
    // Only the thread that forked lives on in the child: no busy-poller there.
    CHECK(worker_lines(child_status, "busy-poller").empty());
    auto parent_status = status_of(parent);
    INFO("parent:\n" << parent_status);
    CHECK(worker_lines(parent_status, "sw_fixture_loop").size() == 1);
    CHECK(worker_lines(parent_status, "busy-poller").size() == 1);
    CHECK(parent_status.find(std::to_string(child)) == std::string::npos);
    CHECK(loop.finish(10s) == std::optional<int>(0));
    ::waitpid(child, nullptr, WNOHANG);
}

namespace {

// The fixture's lines without the last ("tables=…"), and that last line.
std::pair<std::string, std::string> split_table_line(const std::string& out) {
    auto at = out.rfind("tables=");
    if (at == std::string::npos) return {out, ""};
    return {out.substr(0, at), out.substr(at)};
}

}  // namespace

TEST_CASE("every wrapped wait call returns, fails, times out, takes signals, swaps masks and is cancelled "
          "exactly as without the preload") {
    auto plain = run({fixture("sw_fixture_waitcalls")}, 30s);
    auto preloaded = run({fixture("sw_fixture_waitcalls")}, 30s, {{"LD_PRELOAD", preload_library()}});
    REQUIRE(plain.exit_code == 0);
    REQUIRE(preloaded.exit_code == 0);
    auto [plain_lines, plain_table] = split_table_line(plain.out);
    auto [pre_lines, pre_table] = split_table_line(preloaded.out);
    CHECK(plain_lines.find("ret=") != std::string::npos);
    CHECK(plain_lines.find("cancel poll=1 epoll_wait=1 select=1 ppoll=1 epoll_pwait=1") != std::string::npos);
    CHECK(pre_lines == plain_lines);
    CHECK(plain_table == "tables=0\n");
    CHECK(pre_table == "tables=1\n");  // the wrappers were there, and registered the thread
    CHECK(preloaded.err.empty());
}

// With the shim linked too: its own table, the preload's wrappers, and
// still one table. Shared shim: the program binds to the preload's copy.
// Static shim: two copies, and the second adopts the first's table.
void one_table_with_the_shim(const std::string& program) {
    auto plain = run({fixture("sw_fixture_waitcalls")}, 30s);
    auto shim_only = run({program}, 30s);
    auto both = run({program}, 30s, {{"LD_PRELOAD", preload_library()}});
    REQUIRE(shim_only.exit_code == 0);
    REQUIRE(both.exit_code == 0);
    auto [plain_lines, plain_table] = split_table_line(plain.out);
    auto [shim_lines, shim_table] = split_table_line(shim_only.out);
    auto [both_lines, both_table] = split_table_line(both.out);
    CHECK(shim_lines == plain_lines);
    CHECK(both_lines == plain_lines);
    CHECK(shim_table == "tables=1\n");
    CHECK(both_table == "tables=1\n");
}

TEST_CASE("a program linked with the shared shim and preloaded too has one table, and its calls behave the same") {
    one_table_with_the_shim(fixture("sw_fixture_waitcalls_shim"));
}

TEST_CASE("a program with the static shim and preloaded too has one table, and its calls behave the same") {
    one_table_with_the_shim(fixture("sw_fixture_waitcalls_shim_static"));
}

TEST_CASE("when the C library's wait functions cannot be found, one line says so and every call passes "
          "through unchanged") {
    auto hook = test_hook_env("STALLWATCH_TEST_PRELOAD_NO_NEXT", 1);
    hook["LD_PRELOAD"] = preload_library();
    auto plain = run({fixture("sw_fixture_waitcalls")}, 30s);
    auto failed = run({fixture("sw_fixture_waitcalls")}, 30s, hook);
    REQUIRE(failed.exit_code == 0);
    auto [plain_lines, plain_table] = split_table_line(plain.out);
    auto [lines, table] = split_table_line(failed.out);
    CHECK(lines == plain_lines);
    CHECK(table == "tables=0\n");
    CHECK(failed.err ==
          "stallwatch-preload: 10 of the C library's wait functions were not found (dlsym RTLD_NEXT); passing "
          "every wait through unwatched\n");
}

TEST_CASE("run --preload says why it cannot watch a program, runs it normally and exits with its status") {
    SUBCASE("statically linked") {
        auto r = run({stallwatch_binary(), "run", "--preload", "--", fixture("sw_fixture_loop_static"),
                      "--exit-after-ms", "600", "--exit-code", "7"},
                     30s);
        INFO(r.err);
        CHECK(r.exit_code == 7);
        CHECK(r.out.find("done turns=") != std::string::npos);
        CHECK(r.err.find("ended without a stallwatch table: " + fixture("sw_fixture_loop_static") +
                         " is statically linked") != std::string::npos);
    }
    SUBCASE("a program that never waits in a wrapped call") {
        auto r = run({stallwatch_binary(), "run", "--preload", "--", "/bin/sh", "-c", "sleep 2.6; exit 3"}, 30s);
        INFO(r.err);
        CHECK(r.exit_code == 3);
        CHECK(r.err.find("has no stallwatch table after 2s: libstallwatch-preload.so is loaded, but no thread "
                         "has called epoll_wait") != std::string::npos);
        CHECK(r.err.find("ended without") == std::string::npos);  // one line, not two
    }
    SUBCASE("a program that ends at once") {
        auto r = run({stallwatch_binary(), "run", "--preload", "--", "/bin/true"}, 30s);
        CHECK(r.exit_code == 0);
        CHECK(r.err.find("ended without a stallwatch table") != std::string::npos);
    }
}

TEST_CASE("run --preload on a set-user-ID program: the loader ignores LD_PRELOAD, stallwatch says so, and "
          "the program runs normally") {
    if (::geteuid() != 0) SW_SKIP("making a set-user-ID copy owned by another user needs root");
    TempDir dir("sw-setuid");
    ::chmod(dir.path.c_str(), 0755);
    const std::string copy = dir.file("waitcalls-setuid");
    std::filesystem::copy_file(fixture("sw_fixture_waitcalls"), copy);
    REQUIRE(::chown(copy.c_str(), 65534, 65534) == 0);
    REQUIRE(::chmod(copy.c_str(), 04755) == 0);
    auto r = run({stallwatch_binary(), "run", "--preload", "--", copy}, 30s);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("cancel poll=1") != std::string::npos);  // it ran, all of it
    CHECK(r.out.find("tables=0") != std::string::npos);      // without the preload
    CHECK(r.err.find("is set-user-ID (owner uid 65534): the dynamic loader runs it in secure-execution mode "
                     "and ignores LD_PRELOAD") != std::string::npos);
}

TEST_CASE("run --preload keeps the user's LD_PRELOAD, ahead of its own, and refuses a library that is not "
          "there") {
    const std::string theirs = SW_SHIM_LIBRARY;
    auto r = run({stallwatch_binary(), "run", "--preload", "--", "/usr/bin/env"}, 30s, {{"LD_PRELOAD", theirs}});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("LD_PRELOAD=" + theirs + ":" + preload_library() + "\n") != std::string::npos);

    auto bad = run({stallwatch_binary(), "run", "--preload", "--", "/bin/true"}, 30s,
                   {{"STALLWATCH_PRELOAD_LIBRARY", "/nonexistent/libstallwatch-preload.so"}});
    CHECK(bad.exit_code == 64);
    CHECK(bad.err == "stallwatch: STALLWATCH_PRELOAD_LIBRARY=/nonexistent/libstallwatch-preload.so: no such file\n");
}
