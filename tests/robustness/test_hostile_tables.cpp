// Hostile tables: a writer that does not use the shim rewrites the header,
// shrinks and grows its unsealed memfd, and flips slot states and tids at
// full speed while status, attach, dump and list read it; a slot names a
// thread of another process; a table is as big as the format allows. Every
// command gives a clear error or skips what it cannot use, and never
// crashes, hangs, or stops a thread outside the target.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <set>
#include <sstream>

#include "support/child.hpp"
#include "support/text_report.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"
#include "support/spawn.hpp"
#include "support/threads.hpp"

using namespace sw::test;
using Clock = std::chrono::steady_clock;

namespace {

std::string writer() { return fixture("hostile/sw_hostile_writer"); }

// A hostile writer started with `args`: "ready pid=P own=TID mutator=TID".
struct Writer {
    Child child;
    pid_t pid = -1;
    pid_t own = -1;
    explicit Writer(std::vector<std::string> args) : child(with_binary(std::move(args))) {
        auto line = child.read_line(10s);
        REQUIRE_MESSAGE(line.has_value(), "the hostile writer did not say ready");
        pid = static_cast<pid_t>(field(*line, "pid").value_or(-1));
        own = static_cast<pid_t>(field(*line, "own").value_or(-1));
        REQUIRE(pid == child.pid());
    }
    static std::vector<std::string> with_binary(std::vector<std::string> args) {
        args.insert(args.begin(), writer());
        return args;
    }
};

// Another process, with a table of its own or not, whose threads nobody may
// stop: its worker's tid is what the hostile slots name.
struct Bystander {
    Child child;
    pid_t pid = -1;
    pid_t worker = -1;
    Bystander() : child({fixture("sw_fixture_workers"), "--no-init", "--running", "2"}) {
        REQUIRE(child.read_line(10s).has_value());
        pid = child.pid();
        for (pid_t tid : thread_ids(pid))
            if (tid != pid) worker = tid;
        REQUIRE(worker > 0);
    }
};

std::string pid_arg(pid_t pid) { return std::to_string(pid); }

// Every line of `err` is a stallwatch message, and there is at most `max`.
void check_clear_errors(const std::string& err, std::size_t max) {
    std::istringstream in(err);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line); ++n) {
        INFO("stderr line: " << line);
        CHECK(line.rfind("stallwatch: ", 0) == 0);
    }
    CHECK(n <= max);
}

// The first error line, cut to its kind (for the summary of what was seen).
std::string kind_of(const std::string& err) {
    auto line = err.substr(0, err.find('\n'));
    auto colon = line.find(':', 12);
    return line.substr(0, std::min<std::size_t>(colon == std::string::npos ? line.size() : colon, 70));
}

// status, dump, dump --all-threads, list and attach against a table that
// changes under them. Returns the kinds of errors seen.
std::set<std::string> battery(const Writer& w, int statuses, int dumps, std::chrono::milliseconds watch) {
    std::set<std::string> seen;
    const std::string pid = pid_arg(w.pid);
    for (int i = 0; i < statuses; ++i) {
        auto r = run({stallwatch_binary(), "status", pid}, 10s);
        INFO("status " << i << ": exit " << r.exit_code << "\nstderr:\n" << r.err);
        REQUIRE_FALSE(r.timed_out);
        CHECK((r.exit_code == 0 || r.exit_code == 5 || r.exit_code == 6));
        if (r.exit_code == 0) CHECK(r.out.rfind("pid " + pid + " ", 0) == 0);
        else check_clear_errors(r.err, 1);
        seen.insert("status: " + (r.exit_code == 0 ? std::string("ok") : kind_of(r.err)));
    }
    for (int i = 0; i < dumps; ++i) {
        std::vector<std::string> argv = {stallwatch_binary(), "dump", pid};
        if (i == dumps - 1) argv.push_back("--all-threads");
        auto r = run(argv, 20s);
        INFO(argv.back() << " " << i << ": exit " << r.exit_code << "\nstderr:\n" << r.err);
        REQUIRE_FALSE(r.timed_out);
        CHECK((r.exit_code == 0 || r.exit_code == 1 || r.exit_code == 5 || r.exit_code == 6));
        check_clear_errors(r.err, 1000);
        seen.insert("dump: " + (r.exit_code == 0 ? std::string("ok") : kind_of(r.err)));
    }
    {
        auto r = run({stallwatch_binary(), "list", "--threshold", "10ms"}, 20s);
        INFO("list: exit " << r.exit_code << "\nstdout:\n" << r.out << "stderr:\n" << r.err);
        REQUIRE_FALSE(r.timed_out);
        CHECK(r.exit_code == 0);
        CHECK(r.err.empty());
        // The writer is listed, with its counts or with the error its table gave.
        CHECK(r.out.find(" " + pid + "  ") != std::string::npos);
    }
    {
        Process sw({stallwatch_binary(), "attach", pid, "--threshold", "1ms", "--interval", "1ms"});
        bool ended = sw.wait_for([] { return false; }, watch);  // reads its output meanwhile
        (void)ended;
        sw.signal(SIGTERM);
        auto st = sw.wait(10s);
        INFO("attach: stdout:\n" << sw.out().substr(0, 4000) << "stderr:\n" << sw.err());
        REQUIRE_MESSAGE(st.has_value(), "attach did not end");
        CHECK(sw.term_signal() == 0);
        // Ended by SIGTERM (0), or earlier by one clear error about the table.
        CHECK((sw.exit_code() == 0 || sw.exit_code() == 5 || sw.exit_code() == 6));
        check_clear_errors(sw.err(), 1000);
        if (sw.exit_code() != 0) {
            auto last = sw.err().substr(sw.err().rfind('\n', sw.err().size() - 2) + 1);
            seen.insert("attach: " + kind_of(last));
        } else {
            seen.insert("attach: ran until SIGTERM");
        }
    }
    return seen;
}

std::string join(const std::set<std::string>& s) {
    std::string out;
    for (const auto& x : s) out += "\n  " + x;
    return out;
}

}  // namespace

TEST_CASE("a slot naming a thread of another process: stallwatch refuses to stop it") {
    Bystander other;
    // The tid of a worker thread of the other process, and its main thread.
    for (pid_t foreign : {other.worker, other.pid}) {
        INFO("foreign tid " << foreign << " of pid " << other.pid);
        Writer w({"--mode", "foreign", "--tid", std::to_string(foreign)});
        // Any stop of a thread of the other process would last 100 ms: the
        // spy could not miss it.
        ThreadSpy spy({other.pid});

        Process sw({stallwatch_binary(), "attach", pid_arg(w.pid), "--threshold", "20ms", "--interval", "5ms"},
                   hold_stop_env(100000));
        bool both = sw.wait_for([&] { return sw.out().find("refused to stop it") != std::string::npos &&
                                             has_stack(sw.out(), "own", "own_main"); },
                                10s);
        sw.signal(SIGTERM);
        REQUIRE(sw.wait(10s).has_value());
        INFO("attach stdout:\n" << sw.out() << "stderr:\n" << sw.err());
        CHECK(both);
        CHECK(sw.exit_code() == 0);
        CHECK(sw.out().find("  no stack: tid " + std::to_string(foreign) + " is not a thread of pid " +
                            pid_arg(w.pid) + " but of pid " + pid_arg(other.pid) + " (sw_fixture_work)") !=
              std::string::npos);

        auto r = run({stallwatch_binary(), "dump", pid_arg(w.pid)}, 20s, hold_stop_env(100000));
        INFO("dump stdout:\n" << r.out << "stderr:\n" << r.err);
        CHECK(r.exit_code == 1);  // one worker could not be sampled
        CHECK(r.err.find("stallwatch: thread " + std::to_string(foreign) + ": tid " + std::to_string(foreign) +
                         " is not a thread of pid " + pid_arg(w.pid)) != std::string::npos);
        CHECK(has_stack(r.out, "own", "own_main"));

        spy.stop();
        INFO("the other process's threads were looked at " << spy.looks() << " times");
        CHECK(spy.looks() > 100);
        CHECK(spy.sightings().empty());
    }
    CHECK(other.child.finish(5s) == std::optional<int>(0));
}

TEST_CASE("slots whose tids flip at full speed, some of them foreign: only the target's threads are stopped") {
    Bystander other;
    // A slot changes every 2 ms, each lives ~16 ms: long enough to be found
    // stalled (1 ms) and sampled, with whatever tid it names at that moment.
    Writer w({"--mode", "flip", "--tame", "--capacity", "8", "--period-us", "2000", "--tid",
              std::to_string(other.worker)});
    ThreadSpy spy({other.pid});
    Process sw({stallwatch_binary(), "attach", pid_arg(w.pid), "--threshold", "1ms", "--interval", "1ms"},
               hold_stop_env(20000));
    sw.watch_for(1500ms);
    sw.signal(SIGTERM);
    REQUIRE(sw.wait(10s).has_value());
    spy.stop();
    INFO("attach stdout (start):\n" << sw.out().substr(0, 4000) << "stderr:\n" << sw.err().substr(0, 4000));
    CHECK(sw.exit_code() == 0);
    CHECK(sw.out().find(" STALL #") != std::string::npos);
    CHECK(sw.out().find("refused to stop it") != std::string::npos);
    CHECK(spy.looks() > 100);
    CHECK(spy.sightings().empty());
    bool released = poll_until([&] { return held_threads(w.pid).empty(); }, 3s);
    CHECK(released);
    CHECK(other.child.finish(5s) == std::optional<int>(0));
}

TEST_CASE("a table rewritten, shrunk and flipped at full speed: clear errors or skips, never a crash or a hang") {
    // "flip, sealed": a table whose size is sealed is read through a mapping
    // (proc/table_file.hpp), while its slots flip under it.
    for (std::string mode : {"rewrite", "shrink", "flip", "flip, sealed", "chaos"}) {
        SUBCASE(mode.c_str()) {
            Writer w(mode == "flip, sealed" ? std::vector<std::string>{"--mode", "flip", "--sealed"}
                                            : std::vector<std::string>{"--mode", mode});
            auto seen = battery(w, 20, 3, 700ms);
            MESSAGE(mode << ": what the commands said:" << join(seen));
            // The writer is unharmed and nothing of it is left held.
            CHECK(held_threads(w.pid).empty());
            CHECK(w.child.finish(5s) == std::optional<int>(0));
        }
    }
}

TEST_CASE("the largest table the format allows, and capacities beyond it") {
    SUBCASE("65536 slots in use, one of them stalled") {
        Writer w({"--mode", "huge"});
        auto t0 = Clock::now();
        auto r = run({stallwatch_binary(), "status", pid_arg(w.pid)}, 20s);
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("65536 of 65536 slots in use (1 running, 65535 parked)") != std::string::npos);
        CHECK(Clock::now() - t0 < 5s);

        r = run({stallwatch_binary(), "list", "--threshold", "20ms"}, 20s);
        INFO(r.out);
        CHECK(r.exit_code == 0);
        CHECK(r.out.find(" " + pid_arg(w.pid) + "  ") != std::string::npos);

        Process sw({stallwatch_binary(), "attach", pid_arg(w.pid), "--threshold", "20ms"});
        bool reported = sw.wait_for([&] { return has_stack(sw.out(), "own-65535", "own_main"); }, 10s);
        sw.signal(SIGTERM);
        REQUIRE(sw.wait(10s).has_value());
        INFO("stderr:\n" << sw.err());
        CHECK(reported);
        CHECK(sw.exit_code() == 0);
        CHECK(sw.err().find("65536 worker(s)") != std::string::npos);
        CHECK(w.child.finish(5s) == std::optional<int>(0));
    }
    SUBCASE("65536 slots in use, sealed as the shim leaves a table: read through a mapping") {
        Writer w({"--mode", "huge", "--sealed"});
        Process sw({stallwatch_binary(), "attach", pid_arg(w.pid), "--threshold", "20ms", "--format", "json"});
        bool reported = sw.wait_for([&] { return sw.out().find("\"own-65535\"") != std::string::npos; }, 10s);
        sw.signal(SIGTERM);
        REQUIRE(sw.wait(10s).has_value());
        INFO("stderr:\n" << sw.err());
        CHECK(reported);
        CHECK(sw.exit_code() == 0);
        CHECK(sw.out().find("\"stallwatch.passes\":") != std::string::npos);
        CHECK(w.child.finish(5s) == std::optional<int>(0));
    }
    SUBCASE("every one of 4096 slots stalled: the reports are rate-limited") {
        // (Whether a thread is frozen is asked of at most 64 unmoved workers
        // per read, once per thread: detect::Config.)
        Writer w({"--mode", "huge", "--capacity", "4096", "--running-all"});
        Process sw({stallwatch_binary(), "attach", pid_arg(w.pid), "--threshold", "20ms"});
        auto stalls = [&] {
            std::size_t n = 0;
            for (auto p = sw.out().find(" STALL #"); p != std::string::npos; p = sw.out().find(" STALL #", p + 1)) ++n;
            return n;
        };
        auto t0 = Clock::now();
        REQUIRE_MESSAGE(sw.wait_for([&] { return stalls() >= 20; }, 10s), sw.err());
        sw.watch_for(1000ms);
        auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
        sw.signal(SIGTERM);
        REQUIRE(sw.wait(10s).has_value());
        CHECK(sw.exit_code() == 0);
        // A burst of 20 reports, then one a second; and, as they all stall
        // at one stack (one incident), up to 64 more workers at once, then
        // 4 a second (the joined budget, docs/locks.md): not 4096.
        INFO(stalls() << " reports in " << secs << " s");
        CHECK(stalls() <= 20 + 64 + static_cast<std::size_t>(secs * 5) + 2);
        CHECK(w.child.finish(5s) == std::optional<int>(0));
    }
    SUBCASE("2048 slots naming one thread: dump shows it once, parked as its first slot says, unstopped") {
        Writer w({"--mode", "huge", "--capacity", "2048"});
        auto r = run({stallwatch_binary(), "dump", pid_arg(w.pid)}, 30s);
        CHECK_FALSE(r.timed_out);
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("worker \"idle-0\"") != std::string::npos);  // the first slot that names it
        CHECK(count_of(r.out, "\n  thread: ") == 1);
        CHECK(count_of(r.out, "parked: waiting for work, not stopped") == 1);
        CHECK(held_threads(w.pid).empty());
        CHECK(w.child.finish(5s) == std::optional<int>(0));
    }
    SUBCASE("2048 RUNNING slots naming one thread: dump stops that thread once, in bounded time") {
        Writer w({"--mode", "huge", "--capacity", "2048", "--running-all"});
        auto t0 = Clock::now();
        auto r = run({stallwatch_binary(), "dump", pid_arg(w.pid)}, 30s);
        CHECK_FALSE(r.timed_out);
        CHECK(r.exit_code == 0);
        CHECK(has_stack(r.out, "own-0", "own_main"));  // the first slot that names it
        CHECK(count_of(r.out, "\n  thread: ") == 1);
        MESSAGE("dump of 2048 workers took "
                << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count() << " ms");
        CHECK(held_threads(w.pid).empty());
        CHECK(w.child.finish(5s) == std::optional<int>(0));
    }
    for (std::string capacity : {"65537", "4294967295"}) {
        SUBCASE(("capacity " + capacity).c_str()) {
            Writer w({"--mode", "huge", "--capacity", capacity});
            std::string want = "corrupt stallwatch table: capacity " + capacity + " is outside 1..65536";
            auto r = run({stallwatch_binary(), "status", pid_arg(w.pid)}, 10s);
            CHECK(r.exit_code == 6);
            CHECK(r.err == "stallwatch: " + want + "\n");
            r = run({stallwatch_binary(), "attach", pid_arg(w.pid)}, 10s);
            CHECK(r.exit_code == 6);
            CHECK(r.err.find(want) != std::string::npos);
            r = run({stallwatch_binary(), "dump", pid_arg(w.pid)}, 10s);
            CHECK(r.exit_code == 6);
            CHECK(r.err == "stallwatch: " + want + "\n");
            CHECK(w.child.finish(5s) == std::optional<int>(0));
        }
    }
}
