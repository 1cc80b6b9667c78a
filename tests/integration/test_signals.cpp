// Signals are not lost: signals sent to a thread while stallwatch holds it
// stopped, or while it is being seized and let go, all reach the program,
// real-time ones in the order they were sent, with their payloads.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/child.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"
#include "support/spawn.hpp"

using namespace sw::test;

namespace {

// sw_fixture_signals, ready: its victim stalls and reports each signal.
struct SignalFixture {
    Child child{{fixture("sw_fixture_signals")}};
    pid_t pid = -1;
    pid_t victim = -1;

    SignalFixture() {
        auto line = child.read_line();
        REQUIRE_MESSAGE(line.has_value(), "the signals fixture did not say ready");
        pid = static_cast<pid_t>(field(*line, "pid").value_or(-1));
        victim = static_cast<pid_t>(field(*line, "victim").value_or(-1));
        REQUIRE(pid == child.pid());
        REQUIRE(victim > 0);
    }

    // SIGUSR1 to the victim thread.
    void usr1() const { REQUIRE(::syscall(SYS_tgkill, pid, victim, SIGUSR1) == 0); }

    // SIGRTMIN with `payload` to the victim thread, as sigqueue(3) would.
    // False if it could not be queued. No doctest assertion: it runs on
    // the sender thread too.
    bool rt(int payload) const {
        siginfo_t si{};
        si.si_signo = SIGRTMIN;
        si.si_code = SI_QUEUE;
        si.si_pid = ::getpid();
        si.si_uid = ::getuid();
        si.si_value.sival_int = payload;
        return ::syscall(SYS_rt_tgsigqueueinfo, pid, victim, SIGRTMIN, &si) == 0;
    }

    // Reads the victim's lines until `usr1s` "usr1" and `rts` "rt N" lines
    // came (or 10 s passed): the count of each, and the payloads in order.
    struct Seen {
        int usr1 = 0;
        std::vector<int> rt;
    };
    Seen read_signals(int usr1s, std::size_t rts) {
        Seen seen;
        while (seen.usr1 < usr1s || seen.rt.size() < rts) {
            auto line = child.read_line(10s);
            if (!line) break;
            if (*line == "usr1")
                ++seen.usr1;
            else if (line->rfind("rt ", 0) == 0)
                seen.rt.push_back(std::stoi(line->substr(3)));
            else
                FAIL("unexpected line from the fixture: " << *line);
        }
        return seen;
    }
};

}  // namespace

TEST_CASE("signals sent while the thread is held stopped all arrive, real-time ones in order with their payloads") {
    SignalFixture fx;
    constexpr int rounds = 5, rt_per_round = 20;
    int sent_usr1 = 0;
    std::vector<int> sent_rt;
    for (int round = 0; round < rounds; ++round) {
        // dump stops the victim once; the test hook holds that stop 300 ms.
        Process sw({stallwatch_binary(), "dump", std::to_string(fx.pid)}, hold_stop_env(300'000));
        REQUIRE_MESSAGE(poll_until([&] { return held_by(fx.pid, sw.pid()); }, 5s),
                        "the victim never entered stallwatch's stop: " << sw.err());
        // One SIGUSR1 per stop (standard signals do not queue: two pending
        // SIGUSR1 are one, with or without stallwatch), many real-time ones.
        fx.usr1();
        ++sent_usr1;
        for (int k = 0; k < rt_per_round; ++k) {
            int payload = round * 1000 + k;
            REQUIRE(fx.rt(payload));
            sent_rt.push_back(payload);
        }
        // They were all sent inside the stop.
        REQUIRE_MESSAGE(held_by(fx.pid, sw.pid()), "the stop ended before the signals were all sent");
        REQUIRE(sw.wait(15s).has_value());
        INFO("stallwatch said: " << sw.err() << sw.out());
        REQUIRE(sw.exit_code() == 0);
        CHECK(sw.out().find("clock_nanosleep") != std::string::npos);
    }
    auto seen = fx.read_signals(sent_usr1, sent_rt.size());
    CHECK(seen.usr1 == sent_usr1);
    CHECK(seen.rt == sent_rt);
}

// A signal that reaches a thread between the seize and the interrupt is
// met by the tracer as a signal-delivery stop: it is taken out of the
// thread's queue, and only the tracer can put it back, at the detach.
TEST_CASE("a signal that the seize intercepts is passed on at the detach, with its payload") {
    SignalFixture fx;
    constexpr int rounds = 3;
    std::vector<int> sent;
    for (int round = 0; round < rounds; ++round) {
        Process sw({stallwatch_binary(), "dump", std::to_string(fx.pid)}, hold_seize_env(300'000));
        // Seized (traced) but not yet interrupted: still asleep.
        REQUIRE_MESSAGE(poll_until([&] { return traced_by(fx.pid, sw.pid()); }, 5s),
                        "the victim was never seized: " << sw.err());
        REQUIRE(fx.rt(7000 + round));
        sent.push_back(7000 + round);
        // The signal wakes it into a signal-delivery stop, before the interrupt.
        CHECK_MESSAGE(poll_until([&] { return held_by(fx.pid, sw.pid()); }, 250ms),
                      "the signal did not stop the traced thread before the interrupt");
        REQUIRE(sw.wait(15s).has_value());
        INFO("stallwatch said: " << sw.err() << sw.out());
        REQUIRE(sw.exit_code() == 0);
    }
    auto seen = fx.read_signals(0, sent.size());
    CHECK(seen.rt == sent);
}

TEST_CASE("a stream of real-time signals across many seizes and releases: none lost, none reordered") {
    SignalFixture fx;
    // A sender thread queues signals with increasing payloads, a few at a
    // time, while dump seizes and releases the victim over and over: signals
    // land before, inside and after the stops, and at the moment of each.
    std::atomic<bool> stop{false};
    std::atomic<int> sent{0};
    std::atomic<bool> send_failed{false};
    std::thread sender([&] {
        while (!stop && !send_failed) {
            for (int k = 0; k < 4 && !send_failed; ++k) {
                if (fx.rt(sent))
                    ++sent;
                else
                    send_failed = true;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });
    int dumps = 0;
    for (auto end = std::chrono::steady_clock::now() + 2s; std::chrono::steady_clock::now() < end; ++dumps) {
        auto r = run({stallwatch_binary(), "dump", std::to_string(fx.pid)}, 20s);
        if (r.exit_code != 0) {
            stop = true;
            sender.join();
            FAIL("dump failed: " << r.err);
        }
    }
    stop = true;
    sender.join();
    MESSAGE(sent.load() << " signals across " << dumps << " dumps");
    REQUIRE_FALSE(send_failed);
    CHECK(dumps >= 5);
    auto seen = fx.read_signals(0, static_cast<std::size_t>(sent.load()));
    std::vector<int> expected(static_cast<std::size_t>(sent.load()));
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<int>(i);
    CHECK(seen.rt.size() == expected.size());
    CHECK(seen.rt == expected);
}
