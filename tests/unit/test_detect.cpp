// Stall detection with a fake clock and hand-made snapshots.
#include <doctest/doctest.h>

#include <set>

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

TEST_CASE("the global rate limit suppresses reports, counts them and says so") {
    Config c;
    c.burst = 3;
    c.refill_per_second = 1.0;
    Sim s(c);
    for (pid_t t = 1; t <= 10; ++t) s.add(static_cast<std::uint32_t>(t), t);
    s.run(110ms);  // ten workers stall together: three reports get through
    CHECK(s.of(EventKind::stall).size() == 3);
    CHECK(s.det.total_suppressed() == 7);
    s.run(1500ms);  // at 1.6 s of stall the updates compete for the 1.5 tokens refilled
    auto reports = s.of(EventKind::stall).size() + s.of(EventKind::stall_update).size();
    CHECK(reports == 4);
    std::uint64_t said = 0;
    for (const auto& e : s.events) said += e.suppressed;
    CHECK(said >= 7);  // the first report after the drop says how many were dropped
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
