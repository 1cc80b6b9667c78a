// Stall detection with a fake clock and hand-made snapshots.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

#include "detect/detector.hpp"

using namespace std::chrono_literals;
using sw::detect::Config;
using sw::detect::Detector;
using sw::detect::Event;
using sw::detect::EventKind;
using sw::table::Snapshot;
using sw::table::Worker;
using sw::table::WorkerState;

namespace {

struct Sim {
    Config cfg;
    Detector det;
    sw::detect::Clock::time_point now{};  // fake clock, starts at 0
    Snapshot snap;
    std::set<pid_t> frozen_tids;
    std::vector<Event> events;

    explicit Sim(Config c = {}) : cfg(c), det(c) {}

    Worker& add(std::uint32_t slot, pid_t tid, std::string name = "w") {
        Worker w;
        w.slot = slot;
        w.generation = 1;
        w.tid = tid;
        w.name = std::move(name);
        snap.workers.push_back(w);
        return snap.workers.back();
    }
    Worker& get(pid_t tid) {
        for (auto& w : snap.workers)
            if (w.tid == tid) return w;
        FAIL("no worker " << tid);
        throw;
    }
    // Advances the fake clock by `d` in steps of the interval, observing each.
    void run(sw::detect::Duration d) {
        for (auto t = sw::detect::Duration::zero(); t < d; t += cfg.interval) step(cfg.interval);
    }
    void step(sw::detect::Duration d) {
        now += d;
        auto ev = det.observe(snap, now, [&](pid_t tid) { return frozen_tids.count(tid) > 0; });
        events.insert(events.end(), ev.begin(), ev.end());
    }
    std::vector<Event> of(EventKind k) const {
        std::vector<Event> out;
        for (const auto& e : events)
            if (e.kind == k) out.push_back(e);
        return out;
    }
};

}  // namespace

TEST_CASE("a running worker whose progress moves is never stalled") {
    Sim s;
    s.add(0, 10);
    for (int i = 0; i < 200; ++i) {
        s.get(10).progress++;
        s.step(10ms);
    }
    CHECK(s.events.empty());
}

TEST_CASE("a running worker without progress for the threshold is reported once") {
    Sim s;
    s.add(0, 10, "io-0");
    s.run(90ms);
    CHECK(s.events.empty());
    s.run(20ms);
    auto stalls = s.of(EventKind::stall);
    REQUIRE(stalls.size() == 1);
    CHECK(stalls[0].worker.name == "io-0");
    CHECK(stalls[0].stalled_for >= 100ms);
    CHECK(stalls[0].stalled_for <= 110ms);
    CHECK(stalls[0].episode == 1);
    CHECK(stalls[0].report == 1);
    s.run(50ms);
    CHECK(s.of(EventKind::stall).size() == 1);  // one stall event per episode
}

TEST_CASE("a parked worker is never reported, even after ten thresholds") {
    Sim s;
    s.add(0, 10).state = WorkerState::parked;
    s.run(1000ms);
    CHECK(s.events.empty());
}

TEST_CASE("a stall that goes on is reported again at 2x, 4x, 8x the threshold") {
    Sim s;
    s.add(0, 10);
    s.run(1000ms);
    auto updates = s.of(EventKind::stall_update);
    REQUIRE(updates.size() == 3);
    CHECK(updates[0].stalled_for >= 200ms);
    CHECK(updates[0].stalled_for < 210ms);
    CHECK(updates[1].stalled_for >= 400ms);
    CHECK(updates[2].stalled_for >= 800ms);
    CHECK(updates[2].report == 4);
    for (const auto& u : updates) CHECK(u.episode == 1);
}

TEST_CASE("progress after a stall gives recovered with the total duration, then a new episode") {
    Sim s;
    s.add(0, 10);
    s.run(250ms);
    s.get(10).progress++;
    s.step(10ms);
    auto rec = s.of(EventKind::recovered);
    REQUIRE(rec.size() == 1);
    // Unchanged from the first observation (t=10ms) to the last one before it moved.
    CHECK(rec[0].stalled_for == 240ms);
    CHECK(rec[0].episode == 1);
    s.run(150ms);
    auto stalls = s.of(EventKind::stall);
    REQUIRE(stalls.size() == 2);
    CHECK(stalls[1].episode == 2);
}

TEST_CASE("parking after a stall ends it as recovered") {
    Sim s;
    s.add(0, 10);
    s.run(150ms);
    s.get(10).state = WorkerState::parked;
    s.step(10ms);
    CHECK(s.of(EventKind::recovered).size() == 1);
    s.run(500ms);
    CHECK(s.of(EventKind::stall).size() == 1);
}

TEST_CASE("no recovered event for a stall that was never reported") {
    Sim s;
    s.add(0, 10);
    s.run(50ms);
    s.get(10).progress++;
    s.step(10ms);
    CHECK(s.events.empty());
}

TEST_CASE("a withdrawn report is not followed by recovered") {
    Sim s;
    s.add(0, 10);
    s.run(110ms);
    auto stalls = s.of(EventKind::stall);
    REQUIRE(stalls.size() == 1);
    s.det.withdraw(stalls[0].episode);
    s.get(10).progress++;
    s.step(10ms);
    CHECK(s.of(EventKind::recovered).empty());
}

TEST_CASE("a withdrawn update does not hide the recovery of a reported stall") {
    Sim s;
    s.add(0, 10);
    s.run(210ms);
    auto updates = s.of(EventKind::stall_update);
    REQUIRE(updates.size() == 1);
    s.det.withdraw(updates[0].episode);  // the update's sample was dropped
    s.get(10).progress++;
    s.step(10ms);
    CHECK(s.of(EventKind::recovered).size() == 1);  // the stall itself was reported
}

TEST_CASE("slot reuse or a new tid starts afresh") {
    Sim s;
    s.add(0, 10);
    s.run(80ms);
    SUBCASE("new generation") { s.get(10).generation = 2; }
    SUBCASE("new tid") { s.get(10).tid = 11; s.frozen_tids.clear(); }
    s.run(80ms);  // 160 ms in all, but only 80 ms for the new registration
    CHECK(s.of(EventKind::stall).empty());
    s.run(30ms);
    CHECK(s.of(EventKind::stall).size() == 1);
}

TEST_CASE("a worker that unregisters while stalled ends its episode") {
    Sim s;
    s.add(0, 10);
    s.run(150ms);
    s.snap.workers.clear();
    s.step(10ms);
    auto ended = s.of(EventKind::ended);
    REQUIRE(ended.size() == 1);
    CHECK(ended[0].episode == 1);
    s.run(500ms);
    CHECK(s.of(EventKind::ended).size() == 1);
}

TEST_CASE("a thread frozen by SIGSTOP or a debugger is not a stall, and frozen time does not count") {
    Sim s;
    s.add(0, 10);
    s.run(60ms);
    s.frozen_tids.insert(10);
    s.run(2000ms);
    CHECK(s.events.empty());
    s.frozen_tids.clear();
    s.run(30ms);
    CHECK(s.events.empty());  // 90 ms of real stall so far
    s.run(20ms);
    CHECK(s.of(EventKind::stall).size() == 1);
}

TEST_CASE("with more unmoved workers than frozen checks per read, each is asked in turn and none is reported unasked") {
    Config c;
    c.frozen_checks_per_read = 2;
    c.burst = 100;  // no rate limit in the way
    Sim s(c);
    for (pid_t tid = 10; tid < 15; ++tid) s.add(static_cast<std::uint32_t>(tid - 10), tid);
    s.frozen_tids.insert(14);  // stopped by a debugger all along
    std::map<pid_t, int> asked_total;
    int most_in_a_read = 0;
    for (int i = 0; i < 30; ++i) {
        std::set<pid_t> asked;
        s.now += c.interval;
        auto ev = s.det.observe(s.snap, s.now, [&](pid_t tid) {
            asked.insert(tid);
            ++asked_total[tid];
            return s.frozen_tids.count(tid) > 0;
        });
        most_in_a_read = std::max(most_in_a_read, static_cast<int>(asked.size()));
        for (const auto& e : ev) {
            CAPTURE(e.worker.tid);
            CHECK(asked.count(e.worker.tid) == 1);  // reported only in a read that asked about it
        }
        s.events.insert(s.events.end(), ev.begin(), ev.end());
    }
    CHECK(most_in_a_read == 2);
    for (pid_t tid = 10; tid < 15; ++tid) CHECK(asked_total[tid] >= 10);  // in turn: 60 asks over 5 workers
    // 300 ms: the four that are not frozen are reported, late by at most the
    // reads it takes to come round to them; the frozen one never.
    std::set<pid_t> reported;
    for (const auto& e : s.of(EventKind::stall)) {
        reported.insert(e.worker.tid);
        CHECK(e.stalled_for >= c.threshold);
        CHECK(e.stalled_for <= c.threshold + 3 * c.interval);
    }
    CHECK(reported == std::set<pid_t>{10, 11, 12, 13});
}

TEST_CASE("rationed frozen checks come round to every stalled worker, whoever drops in and out between reads") {
    // Workers in slots 0-1 progress every other read, so the list of unmoved
    // workers changes length from read to read: the turn goes by slot.
    Config c;
    c.frozen_checks_per_read = 2;
    c.burst = 100;
    Sim s(c);
    for (pid_t tid = 10; tid < 16; ++tid) s.add(static_cast<std::uint32_t>(tid - 10), tid);
    for (int i = 0; i < 60; ++i) {
        if (i % 2) {
            s.get(10).progress++;
            s.get(11).progress++;
        }
        s.step(c.interval);
    }
    std::set<pid_t> reported;
    for (const auto& e : s.of(EventKind::stall)) reported.insert(e.worker.tid);
    CHECK(reported == std::set<pid_t>{12, 13, 14, 15});
}

TEST_CASE("rationed frozen checks: time a thread spent stopped does not count, even between its checks") {
    Config c;
    c.frozen_checks_per_read = 2;
    Sim s(c);
    for (pid_t tid = 10; tid < 16; ++tid) {
        s.add(static_cast<std::uint32_t>(tid - 10), tid);
        s.frozen_tids.insert(tid);  // a process stopped by SIGSTOP, mid-unit
    }
    s.run(3000ms);
    CHECK(s.events.empty());
    s.frozen_tids.clear();  // SIGCONT: they run on, without progress
    s.run(60ms);
    CHECK(s.events.empty());  // 60 ms of real stall, whatever the 3 s stopped
    s.run(200ms);
    CHECK(s.of(EventKind::stall).size() == 6);
    for (const auto& e : s.of(EventKind::stall)) CHECK(e.stalled_for <= 200ms);
}

TEST_CASE("with no more unmoved workers than frozen checks per read, every one is asked every read") {
    Sim s;
    for (pid_t tid = 10; tid < 13; ++tid) s.add(static_cast<std::uint32_t>(tid - 10), tid);
    std::map<pid_t, int> asked;
    for (int i = 0; i < 6; ++i) {  // the first read only meets them
        s.now += s.cfg.interval;
        (void)s.det.observe(s.snap, s.now, [&](pid_t tid) { return ++asked[tid] < 0; });
    }
    CHECK(asked == std::map<pid_t, int>{{10, 5}, {11, 5}, {12, 5}});
}

TEST_CASE("a jump of the clock (host suspended, monitor stopped) is not counted as a stall") {
    Sim s;
    s.add(0, 10);
    s.run(50ms);
    s.step(std::chrono::hours(3));
    CHECK(s.events.empty());
    s.run(30ms);
    CHECK(s.events.empty());
    s.run(30ms);  // 50 + one interval for the gap + 60 = 120 ms
    CHECK(s.of(EventKind::stall).size() == 1);
}

TEST_CASE("the global rate limit holds first reports back, makes them late, and counts those it never made") {
    Config c;
    c.burst = 3;
    c.refill_per_second = 1.0;
    Sim s(c);
    for (pid_t t = 1; t <= 10; ++t) s.add(static_cast<std::uint32_t>(t), t);
    s.run(110ms);  // ten workers stall together: three reports get through, seven wait
    CHECK(s.of(EventKind::stall).size() == 3);
    CHECK(s.det.waiting() == 7);
    CHECK(s.det.total_suppressed() == 0);  // waiting is not lost yet
    s.run(1500ms);  // 1.5 tokens refilled: one more first report, made late; no update at all
    auto stalls = s.of(EventKind::stall);
    REQUIRE(stalls.size() == 4);
    CHECK(stalls[3].stalled_for >= 1000ms);
    CHECK(stalls[3].report == 1);
    CHECK(s.of(EventKind::stall_update).empty());  // first reports wait: no update goes before them
    CHECK(s.det.waiting() == 6);
    for (pid_t t = 1; t <= 10; ++t) s.get(t).progress++;
    s.step(10ms);
    CHECK(s.of(EventKind::recovered).size() == 4);  // only the stalls reported
    CHECK(s.det.waiting() == 0);
    auto sum = s.det.summary(s.now, false);
    CHECK(sum.total_unreported == 6);  // the six never reported
    CHECK(sum.total_updates_suppressed > 0);  // the updates that waited behind them
    CHECK(s.det.total_suppressed() == sum.total_unreported + sum.total_updates_suppressed);
    s.snap.workers.resize(1);
    s.run(1000ms);  // the next report made says how many were dropped before it
    auto later = s.of(EventKind::stall);
    REQUIRE(later.size() == 5);
    CHECK(later[4].suppressed >= 6);
    std::uint64_t said = 0;  // what is dropped after the last report made is said by the next one
    for (const auto& e : s.events) said += e.suppressed;
    CHECK(said <= s.det.total_suppressed());
    CHECK(said >= sum.total_unreported + sum.total_updates_suppressed);
}

TEST_CASE("no update is made for a stall whose first report was not made") {
    Config c;
    c.burst = 1;
    c.refill_per_second = 0.1;
    Sim s(c);
    s.add(0, 10);
    s.add(1, 11);
    s.run(3000ms);
    std::set<std::uint64_t> first;
    for (const auto& e : s.events) {
        if (e.kind == EventKind::stall) first.insert(e.episode);
        else CHECK_MESSAGE(first.count(e.episode) == 1, "event of episode " << e.episode << " before its first report");
    }
    CHECK(first.size() == 1);
    CHECK(s.det.waiting() == 1);
}

TEST_CASE("a first report that waits goes before an update due at the same read, whatever the slots") {
    Config c;
    c.burst = 2;
    c.refill_per_second = 1.0;
    Sim s(c);
    s.add(0, 10);  // stalls first: its update falls due when the other stalls
    s.run(110ms);
    REQUIRE(s.of(EventKind::stall).size() == 1);
    s.add(1, 11);
    s.run(2000ms);
    auto stalls = s.of(EventKind::stall);
    REQUIRE(stalls.size() == 2);
    CHECK(stalls[1].worker.tid == 11);
    for (const auto& u : s.of(EventKind::stall_update)) CHECK(u.stalled_for > stalls[1].stalled_for);
}

TEST_CASE("a withdrawn first report leaves the stall unreported until its next report time") {
    Sim s;
    s.add(0, 10);
    s.run(110ms);
    auto stalls = s.of(EventKind::stall);
    REQUIRE(stalls.size() == 1);
    s.det.withdraw(stalls[0].episode);  // e.g. the thread exited before it could be sampled
    s.run(80ms);
    CHECK(s.events.size() == 1);  // not retried at every read, and no update
    s.run(30ms);                  // at 200 ms it is due again, as a first report
    stalls = s.of(EventKind::stall);
    REQUIRE(stalls.size() == 2);
    CHECK(stalls[1].episode == stalls[0].episode);
    CHECK(stalls[1].report == 1);
    CHECK(s.of(EventKind::stall_update).empty());
}

TEST_CASE("a summary of what was held back: after it settles, at most every period, bounded") {
    Config c;
    c.burst = 2;
    c.summary_list = 3;
    Sim s(c);
    auto moving = [&](sw::detect::Duration d) {
        for (auto t = sw::detect::Duration::zero(); t < d; t += c.interval) {
            for (auto& w : s.snap.workers) w.progress++;
            s.step(c.interval);
        }
    };
    SUBCASE("nothing held back, no summary") {
        s.add(0, 10);
        s.run(150ms);
        moving(5000ms);
        REQUIRE(s.of(EventKind::stall).size() == 1);
        CHECK_FALSE(s.det.summary_due(s.now).has_value());
    }
    SUBCASE("held back") {
        for (pid_t t = 1; t <= 6; ++t) s.add(static_cast<std::uint32_t>(t), t);
        s.run(110ms);
        REQUIRE(s.det.waiting() == 4);
        s.run(500ms);
        CHECK_FALSE(s.det.summary_due(s.now).has_value());  // it settles for a second
        s.run(600ms);
        auto sum = s.det.summary_due(s.now);
        REQUIRE(sum.has_value());
        CHECK_FALSE(sum->at_exit);
        CHECK(sum->stalls == 6);
        CHECK(sum->open == 6);
        CHECK(sum->open_unreported == 3);  // one made late, at 1.1 s
        REQUIRE(sum->listed.size() == 3);
        for (const auto& o : sum->listed) CHECK_FALSE(o.reported);  // waiting ones named first
        CHECK(sum->listed[0].episode < sum->listed[1].episode);
        moving(100ms);
        s.run(2000ms);  // held back again: one summary per period
        moving(200ms);
        CHECK_FALSE(s.det.summary_due(s.now).has_value());
        moving(8000ms);
        auto next = s.det.summary_due(s.now);
        REQUIRE(next.has_value());
        CHECK(next->unreported == 3 + 4);
        CHECK(next->total_unreported == 3 + 4);
        CHECK(next->total_stalls == 12);
        auto last = s.det.summary(s.now, true);
        CHECK(last.at_exit);
        CHECK(last.stalls == 0);
        CHECK(last.total_stalls == 12);
        CHECK(last.open == 0);
    }
}

TEST_CASE("an incident: 40 workers block on one lock for 2 s every 5 s") {
    // Issue 9 item 15. Before: of each incident's 40 stalls about one per
    // second got a first report, and updates were made for stalls never
    // reported. Now: no update without its first report; the bound holds
    // (burst + refill x time); every stall is either reported or counted;
    // over the incidents every worker is shown at least once; summaries come
    // at most once per period.
    Config c;
    Sim s(c);
    constexpr pid_t workers = 40;
    for (pid_t t = 1; t <= workers; ++t) s.add(static_cast<std::uint32_t>(t), 100 + t, "w" + std::to_string(t));
    std::vector<sw::detect::Summary> summaries;
    auto tick = [&](bool blocked) {
        if (!blocked)
            for (auto& w : s.snap.workers) w.progress++;
        s.step(10ms);
        if (auto sum = s.det.summary_due(s.now)) summaries.push_back(*sum);
    };
    const int seconds = 120;
    for (int cycle = 0; cycle < seconds / 5; ++cycle) {
        for (int i = 0; i < 300; ++i) tick(false);
        for (int i = 0; i < 200; ++i) tick(true);
    }
    auto final_summary = s.det.summary(s.now, true);

    std::set<std::uint64_t> first;
    std::set<pid_t> shown;
    for (const auto& e : s.events) {
        if (e.kind == EventKind::stall) {
            CHECK(first.insert(e.episode).second);
            shown.insert(e.worker.tid);
        } else {
            CHECK_MESSAGE(first.count(e.episode) == 1, "episode " << e.episode << " without its first report");
        }
    }
    auto reports = s.of(EventKind::stall).size() + s.of(EventKind::stall_update).size();
    CHECK(reports <= c.burst + static_cast<std::size_t>(seconds * c.refill_per_second) + 1);
    std::uint64_t episodes = final_summary.total_stalls;
    CHECK(episodes == static_cast<std::uint64_t>(workers * (seconds / 5)));
    CHECK(first.size() + final_summary.total_unreported + final_summary.open_unreported == episodes);
    CHECK(final_summary.open == static_cast<std::uint64_t>(workers));  // the last hold is still on
    CHECK(final_summary.listed.size() == c.summary_list);
    CHECK(shown.size() == static_cast<std::size_t>(workers));  // every worker's stack seen once at least
    CHECK(first.size() >= 20 + static_cast<std::size_t>(seconds) * 9 / 10);  // nearly every token went to a first report
    CHECK(summaries.size() <= seconds / 10 + 1);
    std::uint64_t unreported = final_summary.unreported;
    for (const auto& sum : summaries) unreported += sum.unreported;
    CHECK(unreported == final_summary.total_unreported);
    MESSAGE("first reports " << first.size() << " of " << episodes << " stalls; updates "
                             << s.of(EventKind::stall_update).size() << "; summaries " << summaries.size());
}

TEST_CASE("under a flood the first report of every stall gets through before updates") {
    // One worker stalls 300 ms of every second for a minute: stall and its
    // 200 ms update would need two reports a second, the bucket refills one.
    Config c;
    c.burst = 20;
    c.refill_per_second = 1.0;
    Sim s(c);
    s.add(0, 10);
    int stalls_made = 0;
    for (int second = 0; second < 60; ++second) {
        for (int i = 0; i < 70; ++i) {
            s.get(10).progress++;
            s.step(10ms);
        }
        s.run(300ms);
        ++stalls_made;
    }
    s.get(10).progress++;
    s.step(10ms);
    CHECK(static_cast<int>(s.of(EventKind::stall).size()) == stalls_made);
    CHECK(static_cast<int>(s.of(EventKind::recovered).size()) == stalls_made);
    CHECK(s.det.total_suppressed() > 0);  // updates were the ones dropped
}

TEST_CASE("several workers are tracked independently") {
    Sim s;
    s.add(0, 10, "busy");
    s.add(1, 11, "stuck");
    for (int i = 0; i < 30; ++i) {
        s.get(10).progress++;
        s.step(10ms);
    }
    auto stalls = s.of(EventKind::stall);
    REQUIRE(stalls.size() == 1);
    CHECK(stalls[0].worker.name == "stuck");
}

TEST_CASE("a zero threshold reports at once, and updates still back off") {
    Config c;
    c.threshold = 0ms;
    Sim s(c);
    s.add(0, 10);
    s.run(20ms);  // the first read only starts the track; the second one reports
    CHECK(s.of(EventKind::stall).size() == 1);
    s.run(200ms);
    // Updates at 20, 40, 80, 160 ms of stall: not one per read.
    CHECK(s.of(EventKind::stall_update).size() == 4);
}
