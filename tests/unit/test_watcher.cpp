// The watch loop's decisions (cli::Watcher) against an in-memory target
// (support/fake_target.hpp) and a clock the test moves: what is sampled,
// reported, withdrawn or skipped, and when the table is given up or found;
// and the sampler's own decisions.
#include <doctest/doctest.h>

#include <sys/syscall.h>

#include <sstream>

#include "cli/watch.hpp"
#include "support/fake_target.hpp"

using namespace std::chrono_literals;
using sw::cli::Watcher;

namespace {

// Counts what the watcher writes.
class RecordingWriter final : public sw::report::Writer {
public:
    RecordingWriter() : Writer(sink_) {}
    void attached(const sw::report::Target&, const sw::report::WatchInfo&) override { ++attached_count; }
    void detached(const sw::report::Target&, const sw::report::Detached& d) override {
        detached_reason = std::string(d.reason);
        passes = d.passes;
    }
    void error(const sw::report::Target&, std::string_view message) override { errors.emplace_back(message); }
    void stall(const sw::report::StallReport& r) override { stalls.push_back(r); }
    void event(const sw::report::Target&, const sw::detect::Event& e) override { events.push_back(e.kind); }

    int attached_count = 0;
    std::string detached_reason;
    std::uint64_t passes = 0;
    std::vector<std::string> errors;
    std::vector<sw::report::StallReport> stalls;
    std::vector<sw::detect::EventKind> events;

private:
    std::ostringstream sink_;
};

struct Rig {
    sw::test::FakeTarget target;
    sw::test::TableImage table{4, "rig"};
    RecordingWriter writer;
    std::ostringstream err;
    sw::cli::WatchOptions opt;
    Watcher::Clock::time_point now{std::chrono::seconds(1000)};
    std::optional<Watcher> watcher;

    Rig() {
        opt.timing.threshold = 100ms;
        opt.timing.interval = 10ms;
        table.worker(0, "worker-0", 101, 5);
        target.write_table(table);
    }
    std::optional<sw::cli::WatchResult> start() {
        watcher.emplace(target, opt, writer, err, [this] { return now; });
        return watcher->start();
    }
    // `n` rounds, one interval apart; the first result that ends the watch.
    std::uint64_t rounds_run = 0;
    std::optional<sw::cli::WatchResult> rounds(int n) {
        for (int i = 0; i < n; ++i) {
            now += opt.timing.interval;
            ++rounds_run;
            if (auto r = watcher->round()) return r;
        }
        return std::nullopt;
    }
    void set_progress(std::uint64_t progress) {
        table.slots[0].progress = progress;
        target.write_table(table);
    }
};

}  // namespace

TEST_CASE("watcher: a stalled worker is sampled once, reported, and its recovery announced") {
    Rig rig;
    REQUIRE_FALSE(rig.start());
    CHECK(rig.writer.attached_count == 1);
    CHECK(rig.err.str().find("watching pid") != std::string::npos);
    CHECK_FALSE(rig.rounds(5));
    CHECK(rig.target.captured.empty());  // not stalled yet: 50 ms of 100
    CHECK_FALSE(rig.rounds(10));
    REQUIRE(rig.target.captured.size() == 1);
    CHECK(rig.target.captured[0] == 101);
    REQUIRE(rig.writer.stalls.size() == 1);
    CHECK(rig.writer.stalls[0].event.worker.tid == 101);
    CHECK(rig.writer.stalls[0].target.executable == "/fake/app");
    CHECK(rig.writer.stalls[0].target.app_name == "rig");

    rig.set_progress(6);
    CHECK_FALSE(rig.rounds(1));
    REQUIRE(rig.writer.events.size() == 1);
    CHECK(rig.writer.events[0] == sw::detect::EventKind::recovered);
    auto end = rig.watcher->end(sw::cli::WatchEnd::signal, 2);
    CHECK(end.reports == 1);
    CHECK(end.withdrawn == 0);
    CHECK(rig.writer.detached_reason == "signal");
    // Every read of the table was a pass, and the detached event says how many.
    CHECK(end.passes == rig.rounds_run);
    CHECK(rig.writer.passes == end.passes);
    CHECK(end.pass_max <= end.pass_total);
}

TEST_CASE("watcher: a worker that moves on during its capture is withdrawn, not reported") {
    Rig rig;
    rig.target.on_capture = [&rig](pid_t tid, const sw::proc::StillStalled& still) -> sw::Result<sw::proc::CaptureOutcome> {
        rig.set_progress(7);  // it moves while stopped... as far as the table says
        sw::proc::CaptureOutcome out;
        out.capture.tid = tid;
        out.dropped = still && !still();
        return out;
    };
    REQUIRE_FALSE(rig.start());
    CHECK_FALSE(rig.rounds(15));
    CHECK(rig.target.captured.size() == 1);
    CHECK(rig.writer.stalls.empty());
    CHECK_FALSE(rig.rounds(3));
    CHECK(rig.writer.events.empty());  // no recovery of a stall nobody saw
    auto end = rig.watcher->end(sw::cli::WatchEnd::target_exited);
    CHECK(end.withdrawn == 1);
    CHECK(end.reports == 0);
}

TEST_CASE("watcher: a thread that exited before its capture is skipped with one line") {
    Rig rig;
    rig.target.on_capture = [](pid_t tid, const sw::proc::StillStalled&) -> sw::Result<sw::proc::CaptureOutcome> {
        return sw::make_error(sw::Errc::no_such_process, "thread " + std::to_string(tid) + " exited");
    };
    REQUIRE_FALSE(rig.start());
    CHECK_FALSE(rig.rounds(15));
    CHECK(rig.writer.stalls.empty());
    CHECK(rig.err.str().find("worker \"worker-0\" (tid 101) exited before it could be sampled") != std::string::npos);
}

TEST_CASE("watcher: a thread stopped by a signal is not a stall") {
    Rig rig;
    rig.target.states[101] = sw::proc::ThreadState{'T', -1, ""};
    REQUIRE_FALSE(rig.start());
    CHECK_FALSE(rig.rounds(30));
    CHECK(rig.target.captured.empty());
}

TEST_CASE("watcher: --once ends the watch at the first report") {
    Rig rig;
    rig.opt.once = true;
    REQUIRE_FALSE(rig.start());
    auto r = rig.rounds(30);
    REQUIRE(r);
    CHECK(r->end == sw::cli::WatchEnd::once);
    CHECK(r->reports == 1);
    CHECK(rig.writer.detached_reason == "once");
}

TEST_CASE("watcher: a table the process no longer holds is left within 100 ms, and the next one watched") {
    Rig rig;
    REQUIRE(rig.opt.table_check_every == 100ms);  // the default: checked every tenth round
    REQUIRE_FALSE(rig.start());
    CHECK_FALSE(rig.rounds(2));
    rig.target.table_file_inode = 2;  // as after an exec: another file behind the fd
    CHECK_FALSE(rig.rounds(10));
    REQUIRE(rig.writer.errors.size() == 1);
    CHECK(rig.writer.errors[0].find("no longer holds the table being watched") != std::string::npos);
    CHECK_FALSE(rig.rounds(1));
    CHECK(rig.writer.attached_count == 2);
}

TEST_CASE("watcher: checked every round, a table the process no longer holds is left at the next round") {
    Rig rig;
    rig.opt.table_check_every = 0ms;
    REQUIRE_FALSE(rig.start());
    CHECK_FALSE(rig.rounds(2));
    rig.target.table_file_inode = 2;
    CHECK_FALSE(rig.rounds(1));
    CHECK(rig.writer.errors.size() == 1);
}

TEST_CASE("watcher: a table checked less often (the agent) is still checked before a worker is sampled") {
    Rig rig;
    rig.opt.table_check_every = 10s;
    REQUIRE_FALSE(rig.start());
    CHECK_FALSE(rig.rounds(2));
    rig.target.table_file_inode = 2;  // an exec; the stale table's worker looks stalled
    CHECK_FALSE(rig.rounds(5));       // 50 ms: no stall yet, and no check due
    CHECK(rig.writer.errors.empty());
    CHECK_FALSE(rig.rounds(10));      // past the threshold: checked before sampling
    REQUIRE(rig.writer.errors.size() == 1);
    CHECK(rig.writer.errors[0].find("no longer holds the table being watched") != std::string::npos);
    CHECK(rig.target.captured.empty());
    CHECK(rig.writer.stalls.empty());
}

TEST_CASE("watcher: under run, no table yet is said once after 2 s, and a table that appears is watched") {
    Rig rig;
    rig.opt.wait_for_table = true;
    rig.target.has_table = false;
    REQUIRE_FALSE(rig.start());
    CHECK(rig.writer.attached_count == 0);
    CHECK_FALSE(rig.rounds(150));  // 1.5 s
    CHECK(rig.err.str().find("has no stallwatch table yet") == std::string::npos);
    CHECK_FALSE(rig.rounds(100));
    auto said = rig.err.str();
    CHECK(said.find("has no stallwatch table yet") != std::string::npos);
    CHECK_FALSE(rig.rounds(100));
    CHECK(rig.err.str() == said);  // once
    rig.target.has_table = true;
    CHECK_FALSE(rig.rounds(60));  // looked for every half second by now
    CHECK(rig.writer.attached_count == 1);
}

TEST_CASE("watcher: under attach a table that turns bad ends the watch with its error") {
    Rig rig;
    REQUIRE_FALSE(rig.start());
    rig.table.header.magic[0] = 'X';
    rig.target.write_table(rig.table);
    auto r = rig.rounds(1);
    REQUIRE(r);
    CHECK(r->end == sw::cli::WatchEnd::failed);
    REQUIRE(r->error);
    CHECK(rig.writer.errors.size() == 1);
}

TEST_CASE("sampler: a sleep seen as restart_syscall after an earlier stop keeps its first system call") {
    sw::test::FakeTarget target;
    sw::cli::Sampler sampler(target, sw::cli::describe_target(target, "app"), sw::cli::SamplerOptions{});
    sw::detect::Event e;
    e.kind = sw::detect::EventKind::stall;
    e.worker.tid = 101;
    target.states[101] = sw::proc::ThreadState{'S', SYS_clock_nanosleep, "hrtimer_nanosleep"};
    auto first = sampler.sample(e, {});
    REQUIRE(first);
    CHECK(first->thread.syscall_nr == SYS_clock_nanosleep);
    // After our stop the kernel shows the same sleep as restart_syscall.
    target.states[101] = sw::proc::ThreadState{'S', SYS_restart_syscall, "do_syscall_64"};
    auto second = sampler.sample(e, {});
    REQUIRE(second);
    CHECK(second->thread.syscall_nr == SYS_clock_nanosleep);
    CHECK(second->thread.wchan == "hrtimer_nanosleep");
    CHECK(second->target.app_name == "app");
    CHECK(target.captured == std::vector<pid_t>{101, 101});
}

TEST_CASE("sampler: a capture that is not permitted gives a report that says so") {
    sw::test::FakeTarget target;
    target.on_capture = [](pid_t, const sw::proc::StillStalled&) -> sw::Result<sw::proc::CaptureOutcome> {
        return sw::make_error(sw::Errc::permission_denied, "not permitted to trace thread 101");
    };
    sw::cli::Sampler sampler(target, sw::cli::describe_target(target, ""), sw::cli::SamplerOptions{});
    sw::detect::Event e;
    e.worker.tid = 101;
    auto r = sampler.sample(e, {});
    REQUIRE(r);
    CHECK(r->capture_denied);
    CHECK_FALSE(r->thread_exited);
    CHECK(r->capture_error == "not permitted to trace thread 101");
    CHECK(r->frames.empty());
}
