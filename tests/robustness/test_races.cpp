// Races with the target: threads that exit between detection and capture and
// during it, a process that exits or execs while one of its threads is being
// sampled, a process that forks all the time, one that somebody else stops
// and continues, and one whose worker another debugger already traces.
// Each time stallwatch says what happened and goes on (or ends with its
// documented exit code, 2 when the target exits), never dies of a signal,
// never hangs, and never leaves a thread traced or stopped.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "proc/table_file.hpp"
#include "support/child.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"
#include "support/spawn.hpp"
#include "support/text_report.hpp"
#include "support/threads.hpp"

using namespace sw::test;
using Clock = std::chrono::steady_clock;

namespace {

std::string racer() { return fixture("hostile/sw_hostile_racer"); }

std::vector<std::string> attach_args(pid_t pid, std::vector<std::string> extra) {
    std::vector<std::string> argv = {stallwatch_binary(), "attach", std::to_string(pid)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

// A fixture started with `argv` that said "ready pid=P ...".
struct Started {
    Child child;
    pid_t pid = -1;
    std::string ready;
    explicit Started(std::vector<std::string> argv) : child(argv) {
        auto line = child.read_line(10s);
        REQUIRE_MESSAGE(line.has_value(), argv[0] << " did not say ready");
        ready = *line;
        pid = static_cast<pid_t>(field(ready, "pid").value_or(-1));
        REQUIRE(pid == child.pid());
    }
    // The next line that starts with `prefix`.
    std::optional<std::string> line_starting(const std::string& prefix, std::chrono::milliseconds timeout = 10s) {
        auto deadline = Clock::now() + timeout;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) return std::nullopt;
            auto line = child.read_line(left);
            if (!line) return std::nullopt;
            if (line->rfind(prefix, 0) == 0) return line;
        }
    }
    pid_t worker_tid(const std::string& name) const {
        auto t = sw::proc::TableFile::open(pid);
        REQUIRE(t.ok());
        auto s = t->read();
        REQUIRE(s.ok());
        for (const auto& w : s->workers)
            if (w.name == name) return w.tid;
        FAIL("no worker " << name << " in pid " << pid);
        return -1;
    }
};

// stallwatch ended by itself (not by a signal) with `code`, in time.
void check_ended(Process& sw, int code, std::chrono::milliseconds timeout = 10s) {
    auto st = sw.wait(timeout);
    INFO("stdout:\n" << sw.out() << "stderr:\n" << sw.err());
    REQUIRE_MESSAGE(st.has_value(), "stallwatch did not end in time");
    CHECK(sw.term_signal() == 0);
    CHECK(sw.exit_code() == code);
}

// SIGTERM, then it ends with 0 in time.
void stop_watching(Process& sw) {
    sw.signal(SIGTERM);
    check_ended(sw, 0);
    CHECK(sw.err().find("Terminated received;") != std::string::npos);
}

void check_released(pid_t pid) {
    bool released = poll_until([&] { return held_threads(pid).empty(); }, 3s);
    INFO("still held: " << held_threads(pid));
    CHECK(released);
}

}  // namespace

TEST_CASE("threads that exit between detection and capture, and during it, are skipped and the watch goes on") {
    // Four threads start worker after worker; each stalls 1..20 ms and exits,
    // some without unregistering (their slots name threads that are gone).
    Started fx({racer(), "--mode", "churn", "--churners", "4", "--max-stall-ms", "20", "--stale", "8"});
    std::string said;
    for (long hold : {0L, 2000L}) {
        INFO("hold " << hold << " us");
        Process sw(attach_args(fx.pid, {"--threshold", "2ms", "--interval", "1ms"}), hold_stop_env(hold));
        REQUIRE_MESSAGE(sw.wait_for_err("stallwatch: watching pid", 5s), sw.err());
        sw.watch_for(1500ms);
        stop_watching(sw);
        INFO("stdout:\n" << sw.out() << "stderr:\n" << sw.err());
        // The long stall is reported with its stack whatever the others do.
        CHECK(has_stack(sw.out(), "victim", "victim_main"));
        // Whatever was sampled is a thread of the racer.
        CHECK(sw.out().find("refused to stop it") == std::string::npos);
        said += sw.err();
        check_released(fx.pid);
    }
    // The stale slots, at least, name threads that are gone.
    CHECK(said.find("exited before it could be sampled") != std::string::npos);
    REQUIRE(fx.child.finish(5s) == std::optional<int>(0));
    auto end = fx.line_starting("churned=");
    REQUIRE(end.has_value());
    CHECK(field(*end, "churned").value_or(0) > 100);
}

TEST_CASE("a process that exits while watched, between detection and capture or while held: exit code 2") {
    std::mt19937 rng(std::random_device{}());
    for (int i = 0; i < 8; ++i) {
        // It exits 0..130 ms after stallwatch is watching: around detection
        // (20 ms) and the first captures, from the main thread or from the
        // victim, with and without stops held for 50 ms. The count starts on
        // a "go" line sent once stallwatch says it watches (a slow start, as
        // under ASan, must not let the target exit before the table is found).
        long after = std::uniform_int_distribution<long>(0, 130)(rng);
        bool from_worker = i % 2 == 1;
        long hold = i % 4 >= 2 ? 50000 : 0;
        INFO("round " << i << ": exit after " << after << " ms, " << (from_worker ? "from the victim" : "from main")
                      << ", hold " << hold << " us");
        std::vector<std::string> argv = {racer(), "--mode", "exit", "--after-ms", std::to_string(after), "--go-line"};
        if (from_worker) argv.push_back("--from-worker");
        Started fx(argv);
        Process sw(attach_args(fx.pid, {"--threshold", "20ms", "--interval", "1ms"}), hold_stop_env(hold));
        REQUIRE_MESSAGE(sw.wait_for_err("stallwatch: watching pid", 10s), sw.err());
        fx.child.say("go\n");
        check_ended(sw, 2);
        CHECK(sw.err().find("stallwatch: pid " + std::to_string(fx.pid) + " exited;") != std::string::npos);
        CHECK(fx.child.finish(5s) == std::optional<int>(0));
    }

    SUBCASE("while its stalled thread is held stopped") {
        Started fx({fixture("sw_fixture_stall"), "--mode", "sleep", "--stall-ms", "5000", "--workers", "2"});
        Process sw(attach_args(fx.pid, {"--threshold", "20ms"}), hold_stop_env(300000));
        REQUIRE_MESSAGE(poll_until([&] { return held_by(fx.pid, sw.pid()); }, 5s), sw.err());
        // The process exits with one of its threads in our stop. Its parent
        // must see it end, not wait for stallwatch to go away: the dead
        // thread is reaped by its tracer as soon as the hold is over.
        auto t0 = Clock::now();
        auto st = fx.child.finish(3s);
        REQUIRE_MESSAGE(st.has_value(), "the target could not finish exiting while stallwatch runs");
        CHECK(*st == 0);
        CHECK(Clock::now() - t0 < 2s);
        check_ended(sw, 2);
        CHECK(sw.err().find("stallwatch: pid " + std::to_string(fx.pid) + " exited;") != std::string::npos);
    }
}

TEST_CASE("a process that execs while watched: the old table is dropped, a new one is watched") {
    for (bool from_worker : {false, true}) {
        for (long hold : {0L, 100000L}) {
            INFO((from_worker ? "exec from the victim" : "exec from main") << ", hold " << hold << " us");
            // The exec comes 150 ms after stallwatch says it watches, after
            // the first stall report (20 ms); with a 100 ms hold, often while
            // the victim is held. The new image creates a table with one
            // stalled worker.
            std::vector<std::string> argv = {racer(), "--mode", "exec", "--after-ms", "150", "--reinit", "--go-line"};
            if (from_worker) argv.push_back("--from-worker");
            Started fx(argv);
            Process sw(attach_args(fx.pid, {"--threshold", "20ms", "--interval", "1ms"}), hold_stop_env(hold));
            REQUIRE_MESSAGE(sw.wait_for_err("stallwatch: watching pid", 10s), sw.err());
            fx.child.say("go\n");
            auto execd = fx.line_starting("exec'd pid=", 5s);
            REQUIRE_MESSAGE(execd.has_value(), "the exec did not complete: " << sw.err());
            bool reborn = sw.wait_for_out("worker \"reborn\"", 5s);
            INFO("stdout:\n" << sw.out() << "stderr:\n" << sw.err());
            CHECK(reborn);
            CHECK(sw.err().find("no longer holds the table being watched (it called exec") != std::string::npos);
            CHECK(count_of(sw.err(), "stallwatch: watching pid " + std::to_string(fx.pid)) == 2);
            CHECK(has_stack(sw.out(), "reborn", "after_exec"));
            check_released(fx.pid);
            REQUIRE(fx.child.finish(5s) == std::optional<int>(0));
            check_ended(sw, 2);
        }
    }

    SUBCASE("exec while the stalled thread is held stopped: the exec completes at once") {
        // Exec kills the other threads, the held one too, and waits until
        // each is reaped; a traced thread is reaped by its tracer only.
        Started fx({racer(), "--mode", "exec", "--after-ms", "-1"});
        Process sw(attach_args(fx.pid, {"--threshold", "20ms", "--interval", "1ms"}), hold_stop_env(300000));
        REQUIRE_MESSAGE(poll_until([&] { return held_by(fx.pid, sw.pid()); }, 5s), sw.err());
        auto t0 = Clock::now();
        // Closing its input makes it exec, and the new image then ends.
        auto st = fx.child.finish(3s);
        REQUIRE_MESSAGE(st.has_value(), "the exec hung while stallwatch held a thread: " << sw.err());
        CHECK(*st == 0);
        CHECK(Clock::now() - t0 < 2s);
        CHECK(fx.line_starting("exec'd pid=", 1s).has_value());
        check_ended(sw, 2);
    }
}

TEST_CASE("a process that forks all the time: the stall is reported, children are never traced") {
    // Two threads fork without pause; the victim stalls in waitpid for a
    // child of its own that sleeps 1.5 s.
    Started fx({racer(), "--mode", "fork", "--churners", "2", "--stall-ms", "1500"});
    Process sw(attach_args(fx.pid, {"--threshold", "100ms", "--interval", "5ms"}));
    ThreadSpy spy({fx.pid});
    auto done = fx.line_starting("victim: done", 10s);
    REQUIRE_MESSAGE(done.has_value(), sw.err());
    sw.wait_for_out("RECOVERED #", 2s);
    stop_watching(sw);
    spy.stop();
    INFO("stdout:\n" << sw.out() << "stderr:\n" << sw.err());
    CHECK(has_stack(sw.out(), "victim", "victim_main"));
    INFO(*done);
    CHECK(field(*done, "eintr") == 0);
    CHECK(field(*done, "short") == 0);
    check_released(fx.pid);
    REQUIRE(fx.child.finish(5s) == std::optional<int>(0));
    auto end = fx.line_starting("churned=");
    REQUIRE(end.has_value());
    CHECK(field(*end, "forks").value_or(0) > 100);
}

TEST_CASE("a process that somebody else stops and continues at random: no hang, nothing left stopped") {
    Started fx({fixture("sw_fixture_stall"), "--mode", "sleep", "--stall-ms", "2500", "--workers", "2"});
    std::mt19937 rng(std::random_device{}());
    auto ms = [&](int hi) { return std::chrono::microseconds(std::uniform_int_distribution<int>(0, hi * 1000)(rng)); };
    // Stops held for 3 ms, so that many SIGSTOPs and SIGCONTs land inside one.
    Process sw(attach_args(fx.pid, {"--threshold", "5ms", "--interval", "1ms"}), hold_stop_env(3000));
    REQUIRE_MESSAGE(sw.wait_for_err("stallwatch: watching pid", 5s), sw.err());
    int stops = 0;
    for (auto end = Clock::now() + 1500ms; Clock::now() < end; ++stops) {
        ::kill(fx.pid, SIGSTOP);
        std::this_thread::sleep_for(ms(8));  // random delays: the point of the test
        ::kill(fx.pid, SIGCONT);
        std::this_thread::sleep_for(ms(8));
    }
    ::kill(fx.pid, SIGCONT);
    // Nothing stays stopped once the last SIGCONT is in: not by the group
    // stop, not by us.
    check_released(fx.pid);
    auto done = fx.line_starting("victim: done", 10s);
    REQUIRE(done.has_value());
    INFO(*done);
    CHECK(field(*done, "eintr") == 0);
    CHECK(field(*done, "short") == 0);
    stop_watching(sw);
    INFO("stdout:\n" << sw.out() << "stderr:\n" << sw.err());
    CHECK(has_stack(sw.out(), "victim", "sleep_in_handler"));
    check_released(fx.pid);
    MESSAGE(stops << " SIGSTOP/SIGCONT pairs");
}

TEST_CASE("a worker that another debugger traces: stallwatch says so and samples the others") {
    // Two stalled workers; another tracer holds "victim" (traced, running).
    Started fx({racer(), "--mode", "churn", "--churners", "0", "--victims", "2"});
    pid_t victim = fx.worker_tid("victim");
    Child tracer({fixture("hostile/sw_hostile_tracer"), std::to_string(victim)});
    auto line = tracer.read_line(5s);
    REQUIRE(line.has_value());
    REQUIRE_MESSAGE(line->rfind("tracing ", 0) == 0, *line);
    const std::string by = "already traced by pid " + std::to_string(tracer.pid());

    SUBCASE("attach") {
        Process sw(attach_args(fx.pid, {"--threshold", "50ms", "--interval", "5ms"}));
        bool said = sw.wait_for([&] { return sw.out().find(by) != std::string::npos &&
                                             has_stack(sw.out(), "victim-1", "stalled_main"); },
                                5s);
        INFO("stdout:\n" << sw.out() << "stderr:\n" << sw.err());
        CHECK(said);
        sw.watch_for(200ms);  // and it goes on watching
        CHECK(::kill(sw.pid(), 0) == 0);
        stop_watching(sw);
        CHECK(sw.out().find("  no stack: thread " + std::to_string(victim) + " is " + by) != std::string::npos);
    }
    SUBCASE("dump") {
        auto r = run({stallwatch_binary(), "dump", std::to_string(fx.pid)}, 20s);
        INFO("stdout:\n" << r.out << "stderr:\n" << r.err);
        CHECK(r.exit_code == 1);  // one thread could not be sampled
        CHECK(r.err.find("stallwatch: thread " + std::to_string(victim) + ": thread " + std::to_string(victim) +
                         " is " + by) != std::string::npos);
        CHECK(has_stack(r.out, "victim-1", "stalled_main"));
        CHECK(has_stack(r.out, "busy-0", "busy_main"));
        CHECK(has_stack(r.out, "busy-1", "busy_main"));
    }
    // The other debugger keeps its thread; stallwatch keeps nothing.
    auto s = thread_status(fx.pid, victim);
    REQUIRE(s.has_value());
    CHECK(s->tracer == tracer.pid());
    for (const auto& t : thread_statuses(fx.pid)) {
        INFO("tid " << t.tid << " state " << t.state << " tracer " << t.tracer);
        CHECK((t.tracer == 0 || (t.tid == victim && t.tracer == tracer.pid())));
        CHECK(t.state != 't');
        CHECK(t.state != 'T');
    }
    REQUIRE(tracer.finish(5s) == std::optional<int>(0));
    check_released(fx.pid);
}
