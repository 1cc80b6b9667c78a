// Answers at a glance: status's two reads, top's live view and its screen,
// with hand-made snapshots and a fake clock.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <set>
#include <string>

#include "cli/options.hpp"
#include "cli/terminal.hpp"
#include "cli/top_screen.hpp"
#include "common/duration.hpp"
#include "detect/glance.hpp"

using namespace std::chrono_literals;
using sw::detect::Clock;
using sw::table::Snapshot;
using sw::table::Worker;
using sw::table::WorkerState;

namespace {

Worker worker(std::uint32_t slot, pid_t tid, std::uint64_t progress, WorkerState state = WorkerState::running,
              std::string name = "w") {
    Worker w;
    w.slot = slot;
    w.generation = 1;
    w.tid = tid;
    w.progress = progress;
    w.state = state;
    w.name = std::move(name);
    return w;
}

Snapshot snap(std::vector<Worker> workers) {
    Snapshot s;
    s.workers = std::move(workers);
    return s;
}

const sw::detect::FrozenProbe none = [](pid_t) { return false; };

}  // namespace

TEST_CASE("status: two reads bound the time since progress, and flag only running workers that did not move") {
    auto first = snap({worker(0, 10, 5), worker(1, 11, 7), worker(2, 12, 3, WorkerState::parked),
                       worker(3, 13, 9), worker(4, 14, 1, WorkerState::parked)});
    auto second = snap({worker(0, 10, 9), worker(1, 11, 7), worker(2, 12, 3, WorkerState::parked),
                        worker(3, 13, 9, WorkerState::parked), worker(4, 14, 2),  // unparked: progress + 1
                        worker(5, 15, 0)});
    sw::detect::ReadSpan span{100ms, 104ms};
    auto g = sw::detect::glance(first, second, span, 100ms, none);
    REQUIRE(g.size() == 6);
    // Moved: at most the span of both reads ago.
    CHECK(g[0].moved);
    CHECK(g[0].since->at_least == 0ms);
    CHECK(g[0].since->at_most == 104ms);
    CHECK_FALSE(g[0].stalled);
    // Running at both reads, unmoved: at least the time between them, STALLED.
    CHECK_FALSE(g[1].moved);
    CHECK(g[1].since->at_least == 100ms);
    CHECK_FALSE(g[1].since->at_most.has_value());
    CHECK(g[1].stalled);
    // Parked: never stalled, however long.
    CHECK_FALSE(g[2].stalled);
    CHECK(g[2].since->at_least == 100ms);
    // Parked at the second read: not stalled.
    CHECK_FALSE(g[3].stalled);
    // Unparked between the reads (progress moved): not stalled.
    CHECK(g[4].moved);
    CHECK_FALSE(g[4].stalled);
    // Registered between the reads: nothing known.
    CHECK_FALSE(g[5].seen_at_first);
    CHECK_FALSE(g[5].since.has_value());
    CHECK_FALSE(g[5].stalled);
}

TEST_CASE("status: a thread stopped by a signal or a debugger is not STALLED, and reads closer than the "
          "threshold flag nobody") {
    auto first = snap({worker(0, 10, 5), worker(1, 11, 5)});
    auto frozen = [](pid_t tid) { return tid == 11; };
    auto g = sw::detect::glance(first, first, {150ms, 151ms}, 100ms, frozen);
    CHECK(g[0].stalled);
    CHECK_FALSE(g[1].stalled);
    CHECK(g[1].frozen);
    auto early = sw::detect::glance(first, first, {50ms, 51ms}, 100ms, none);
    CHECK_FALSE(early[0].stalled);
    // A slot reused by another registration is a new worker.
    auto reused = snap({worker(0, 99, 5)});
    auto r = sw::detect::glance(first, reused, {150ms, 151ms}, 100ms, none);
    CHECK_FALSE(r[0].seen_at_first);
    CHECK_FALSE(r[0].stalled);
}

TEST_CASE("status: a worker whose thread is gone (exited, or tid 0: not visible from here) is never STALLED") {
    auto first = snap({worker(0, 10, 5), worker(1, 0, 5), worker(2, 12, 5), worker(3, 13, 5, WorkerState::parked)});
    std::set<pid_t> asked;
    auto gone = [&](pid_t tid) {
        asked.insert(tid);
        return tid == 12 || tid == 13;
    };
    auto g = sw::detect::glance(first, first, {150ms, 151ms}, 100ms, none, gone);
    CHECK_FALSE(g[0].gone);
    CHECK(g[0].stalled);
    CHECK(g[1].gone);  // tid 0: gone without asking
    CHECK_FALSE(g[1].stalled);
    CHECK(g[2].gone);
    CHECK_FALSE(g[2].stalled);
    CHECK_FALSE(g[2].frozen);
    CHECK(g[3].gone);  // parked too: asked about every worker
    CHECK(asked == std::set<pid_t>{10, 12, 13});
}

TEST_CASE("top: the live view's times, rates and stall episodes") {
    sw::detect::LiveConfig cfg;
    cfg.threshold = 100ms;
    cfg.read_interval = 10ms;
    cfg.rate_window = 1s;
    sw::detect::LiveView view(cfg);
    Clock::time_point now{};
    std::uint64_t busy = 0;
    std::uint64_t stuck = 0;
    std::set<pid_t> frozen_tids;
    auto probe = [&](pid_t tid) { return frozen_tids.count(tid) > 0; };
    auto read = [&](WorkerState stuck_state = WorkerState::running) {
        return snap({worker(0, 10, busy), worker(1, 11, stuck, stuck_state), worker(2, 12, 0, WorkerState::parked)});
    };
    auto run_for = [&](sw::detect::Duration d, bool stuck_moves, WorkerState st = WorkerState::running) {
        for (auto t = 0ms; t < d; t += 10ms) {
            now += 10ms;
            busy += 5;
            if (stuck_moves) ++stuck;
            view.observe(read(st), now, probe);
        }
    };
    view.observe(read(), now, probe);
    auto w = view.workers(now);
    REQUIRE(w.size() == 3);
    CHECK_FALSE(w[0].rate.has_value());  // no window has passed
    CHECK_FALSE(w[0].progress_seen);

    run_for(1s, true);
    w = view.workers(now);
    REQUIRE(w[0].rate.has_value());
    CHECK(*w[0].rate == doctest::Approx(500.0));
    CHECK(w[0].progress_seen);
    // Moved at this read: after the previous read, 10ms ago, took the old value.
    CHECK(w[0].since_progress == 10ms);
    CHECK(w[2].since_progress == 1s);  // parked all along: only a lower bound
    CHECK_FALSE(w[2].progress_seen);
    CHECK(view.total_stalls() == 0);

    // Worker 1 stops: STALLED past the threshold, one episode.
    run_for(300ms, false);
    w = view.workers(now);
    CHECK(w[1].stalled);
    CHECK(w[1].stalls == 1);
    // Its last move was seen 300ms ago, and came after the read before that:
    // at most 310ms ago (never less than the truth).
    CHECK(w[1].since_progress == 310ms);
    // Between reads, the bound grows with the time.
    CHECK(view.workers(now + 5ms)[1].since_progress == 315ms);
    CHECK_FALSE(w[0].stalled);
    CHECK_FALSE(w[2].stalled);  // parked: never
    // It moves again, then stops again: a second episode.
    run_for(50ms, true);
    CHECK_FALSE(view.workers(now)[1].stalled);
    run_for(200ms, false);
    w = view.workers(now);
    CHECK(w[1].stalled);
    CHECK(w[1].stalls == 2);
    CHECK(view.total_stalls() == 2);
    // Parked: the episode ends, and no new one begins.
    run_for(500ms, false, WorkerState::parked);
    w = view.workers(now);
    CHECK_FALSE(w[1].stalled);
    CHECK(w[1].stalls == 2);
    // Frozen by someone else: shown as stopped, not STALLED, not counted.
    frozen_tids.insert(11);
    run_for(500ms, false);
    w = view.workers(now);
    CHECK_FALSE(w[1].stalled);
    CHECK(w[1].frozen);
    CHECK(view.total_stalls() == 2);
}

TEST_CASE("top: a worker whose thread is gone is flagged gone and never counted, one stopped after its stall "
          "began shows stopped, not STALLED") {
    sw::detect::LiveConfig cfg;
    cfg.threshold = 100ms;
    cfg.read_interval = 10ms;
    sw::detect::LiveView view(cfg);
    Clock::time_point now{};
    std::set<pid_t> frozen_tids, gone_tids;
    int parked_asks = 0;
    auto frozen = [&](pid_t tid) { return frozen_tids.count(tid) > 0; };
    auto gone = [&](pid_t tid) {
        if (tid == 13) ++parked_asks;
        return gone_tids.count(tid) > 0;
    };
    std::uint64_t busy = 0;
    auto read = [&] {
        return snap({worker(0, 10, busy), worker(1, 11, 0), worker(2, 0, 0), worker(3, 13, 0, WorkerState::parked)});
    };
    auto run_for = [&](sw::detect::Duration d) {
        for (auto t = 0ms; t < d; t += 10ms) {
            now += 10ms;
            ++busy;
            view.observe(read(), now, frozen, gone);
        }
    };
    gone_tids.insert(13);
    view.observe(read(), now, frozen, gone);
    run_for(300ms);
    auto w = view.workers(now);
    REQUIRE(w.size() == 4);
    CHECK_FALSE(w[0].gone);
    CHECK(w[1].stalled);  // alive, unmoved: STALLED
    CHECK_FALSE(w[1].gone);
    CHECK(w[2].gone);  // tid 0
    CHECK_FALSE(w[2].stalled);
    CHECK(w[2].stalls == 0);
    CHECK(w[3].gone);  // parked, its thread gone
    CHECK(parked_asks <= 2);  // not at every read: once per rate window
    CHECK(view.total_stalls() == 1);

    // A debugger stops the stalled thread: stopped, no longer STALLED.
    frozen_tids.insert(11);
    run_for(50ms);
    w = view.workers(now);
    CHECK(w[1].frozen);
    CHECK_FALSE(w[1].stalled);
    CHECK(w[1].stalls == 1);
    // Its thread exits: gone, not stalled, nothing more counted.
    frozen_tids.clear();
    gone_tids.insert(11);
    run_for(500ms);
    w = view.workers(now);
    CHECK(w[1].gone);
    CHECK_FALSE(w[1].stalled);
    CHECK_FALSE(w[1].frozen);
    CHECK(view.total_stalls() == 1);

    sw::cli::TopScreen s;
    s.read_interval = 10ms;
    s.workers = w;
    auto lines = sw::cli::render_top(s, 20, 160);
    INFO(lines[1]);
    CHECK(lines[1].find("4 worker(s): 3 running, 1 parked, 0 STALLED, 3 gone (thread exited, still registered)") !=
          std::string::npos);
    std::size_t gone_rows = 0;
    for (const auto& l : lines) gone_rows += l.find(" gone    ") != std::string::npos;
    CHECK(gone_rows == 3);
}

TEST_CASE("top: a counter that goes backwards (a table no shim wrote) has no rate, not an absurd one") {
    sw::detect::LiveConfig cfg;
    cfg.rate_window = 100ms;
    sw::detect::LiveView view(cfg);
    Clock::time_point now{};
    view.observe(snap({worker(0, 10, 1000)}), now, none);
    view.observe(snap({worker(0, 10, 5)}), now + 100ms, none);
    auto w = view.workers(now + 100ms);
    REQUIRE(w.size() == 1);
    REQUIRE(w[0].rate.has_value());
    CHECK(std::isnan(*w[0].rate));
    sw::cli::TopScreen s;
    s.read_interval = 10ms;
    s.workers = w;
    auto lines = sw::cli::render_top(s, 10, 120);
    REQUIRE(lines.size() == 5);
    INFO(lines[4]);
    CHECK(lines[4].find(" running                    ?  <100ms ") != std::string::npos);
    // Forward again: a rate again.
    view.observe(snap({worker(0, 10, 55)}), now + 200ms, none);
    w = view.workers(now + 200ms);
    CHECK(*w[0].rate == doctest::Approx(500.0));
}

TEST_CASE("top: no line is wider than the terminal, whatever the names' characters") {
    sw::cli::TopScreen s;
    s.pid = 7;
    s.process_name = "\xe6\x97\xa5\xe6\x9c\xac";
    s.app_name = std::string(30, 'a');
    s.read_interval = 10ms;
    sw::detect::LiveWorker w;
    w.worker = worker(0, 100, 1, WorkerState::running, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe6\x97\xa5\xe6\x9c\xac");
    s.workers = {w};
    for (int cols : {20, 40, 80, 81}) {
        for (const auto& l : sw::cli::render_top(s, 10, cols)) {
            int columns = 0;  // CJK characters take two columns each
            for (unsigned char c : l) columns += c < 0x80 ? 1 : (c & 0xC0) == 0xC0 ? 2 : 0;
            CHECK_MESSAGE(columns <= cols, l);
        }
    }
}

TEST_CASE("top: the time since progress is bounded from the read before the change, whatever the gap "
          "between reads") {
    sw::detect::LiveConfig cfg;
    sw::detect::LiveView view(cfg);
    Clock::time_point t0{};
    view.observe(snap({worker(0, 10, 1)}), t0, none);
    view.observe(snap({worker(0, 10, 1)}), t0 + 10ms, none);
    // A late read (a loaded machine): 40ms later it sees the move, which may
    // have come just after the read at 10ms.
    view.observe(snap({worker(0, 10, 2)}), t0 + 50ms, none);
    auto w = view.workers(t0 + 50ms);
    REQUIRE(w.size() == 1);
    CHECK(w[0].progress_seen);
    CHECK(w[0].since_progress == 40ms);
    sw::cli::TopScreen s;
    s.read_interval = 10ms;
    s.workers = view.workers(t0 + 50ms + 300us);
    auto lines = sw::cli::render_top(s, 10, 120);
    REQUIRE(lines.size() == 5);
    INFO(lines[4]);
    CHECK(lines[4].find(" <41ms ") != std::string::npos);  // 40.3ms, rounded up
    // Unchanged since: the bound stays from that read.
    view.observe(snap({worker(0, 10, 2)}), t0 + 60ms, none);
    CHECK(view.workers(t0 + 60ms)[0].since_progress == 50ms);
}

TEST_CASE("top: the screen lists stalled workers first, fits the terminal and says how many are hidden") {
    sw::cli::TopScreen s;
    s.pid = 4321;
    s.process_name = "shop";
    s.app_name = "shop";
    s.threshold = 100ms;
    s.interval = 1s;
    s.read_interval = 10ms;
    s.watched = 12s;
    s.total_stalls = 3;
    for (std::uint32_t i = 0; i < 30; ++i) {
        sw::detect::LiveWorker w;
        w.worker = worker(i, static_cast<pid_t>(100 + i), 1000 + i, i >= 25 ? WorkerState::parked : WorkerState::running,
                          "io-worker-" + std::to_string(i));
        w.rate = 812.0;
        w.progress_seen = true;
        w.since_progress = 10ms;
        s.workers.push_back(w);
    }
    s.workers[17].stalled = true;
    s.workers[17].stalls = 2;
    s.workers[17].since_progress = 2310ms;
    s.workers[17].rate = 0.0;
    s.workers[3].progress_seen = false;
    s.workers[3].since_progress = 12s;

    auto lines = sw::cli::render_top(s, 40, 120);
    REQUIRE(lines.size() == 34);  // 4 lines of header, all 30 workers, no footer
    CHECK(lines[0].find("pid 4321 (shop)") != std::string::npos);
    CHECK(lines[1].find("30 worker(s): 25 running, 5 parked, 1 STALLED; 3 stall(s) seen") != std::string::npos);
    CHECK(lines[3].find("SINCE PROGRESS") != std::string::npos);
    CHECK(lines[4].find("STALLED") != std::string::npos);
    CHECK(lines[4].find("io-worker-17") != std::string::npos);
    CHECK(lines[4].find(" <2.31s ") != std::string::npos);  // an upper bound
    CHECK(lines[5].find(">=12s") != std::string::npos);  // then the longest without progress
    CHECK(lines[5].find("io-worker-3") != std::string::npos);
    CHECK(lines[6].find(" <10ms ") != std::string::npos);
    CHECK(lines[6].find("io-worker-0") != std::string::npos);
    CHECK(lines.back().find("parked") != std::string::npos);  // parked last

    // Fewer rows than workers: the first ones, and a line for the others.
    lines = sw::cli::render_top(s, 12, 120);
    REQUIRE(lines.size() == 12);
    CHECK(lines[4].find("io-worker-17") != std::string::npos);
    CHECK(lines.back().find("+ 23 more worker(s) not shown") != std::string::npos);
    // Narrow: every line cut to the width.
    lines = sw::cli::render_top(s, 12, 40);
    for (const auto& l : lines) CHECK(l.size() <= 40);
    // Tiny: never more lines than rows.
    CHECK(sw::cli::render_top(s, 2, 80).size() == 2);
    // Cut by columns, conservatively: a character past ASCII counts as two
    // (a CJK one takes two), and a sequence is never cut.
    CHECK(sw::cli::fit_width("ab\xc3\xa9" "cd", 4) == "ab\xc3\xa9");
    CHECK(sw::cli::fit_width("ab\xc3\xa9" "cd", 3) == "ab");
    CHECK(sw::cli::fit_width("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 5) == "\xe6\x97\xa5\xe6\x9c\xac");
    CHECK(sw::cli::fit_width("abc", 3) == "abc");
    CHECK(sw::cli::fit_width("abc", 0).empty());
}

TEST_CASE("top: names from the target reach the screen escaped: C0 and C1 controls, invalid UTF-8") {
    sw::cli::TopScreen s;
    s.pid = 7;
    s.process_name = "shop\xc2\x9b" "2J";   // U+009B, CSI in UTF-8
    s.app_name = "app\x1b]0;title\x07";    // an OSC that would set the window title
    s.read_interval = 10ms;
    sw::detect::LiveWorker evil;
    evil.worker = worker(0, 100, 1, WorkerState::running, std::string("w\x9b" "H\xc2\x85x\xff"));
    sw::detect::LiveWorker fine;
    fine.worker = worker(1, 101, 1, WorkerState::running, "na\xc3\xafve-\xe6\x97\xa5");
    s.workers = {evil, fine};
    auto lines = sw::cli::render_top(s, 40, 200);
    REQUIRE(lines.size() == 6);
    CHECK(lines[0] == "stallwatch top: pid 7 (shop\\xc2\\x9b2J), app \"app\\x1b]0;title\\x07\"; q or Ctrl-C quits");
    INFO(lines[4] << "\n" << lines[5]);
    CHECK(lines[4].ends_with("  w\\x9bH\\xc2\\x85x\\xff"));
    CHECK(lines[5].ends_with("  na\xc3\xafve-\xe6\x97\xa5"));  // well-formed UTF-8 stays
    for (const auto& l : lines)
        for (std::size_t i = 0; i < l.size(); ++i) {
            auto c = static_cast<unsigned char>(l[i]);
            CHECK_MESSAGE((c >= 0x20 && c != 0x7f), l);
            if (c == 0xc2 && i + 1 < l.size()) CHECK_MESSAGE(static_cast<unsigned char>(l[i + 1]) >= 0xa0, l);
        }
}

namespace {

// A pseudo-terminal: the master end is the "terminal emulator", the slave
// end the terminal the view draws on.
struct Pty {
    int master = -1, slave = -1;
    Pty() {
        master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        REQUIRE(master >= 0);
        REQUIRE(::grantpt(master) == 0);
        REQUIRE(::unlockpt(master) == 0);
        slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
        REQUIRE(slave >= 0);
    }
    ~Pty() {
        ::close(slave);
        ::close(master);
    }
    // Everything the view wrote so far: read until nothing more comes for
    // `quiet` (the kernel moves a pty's output to its master in the
    // background).
    std::string drain(int quiet_ms = 200) {
        std::string out;
        char buf[4096];
        for (;;) {
            pollfd p{master, POLLIN, 0};
            if (::poll(&p, 1, quiet_ms) <= 0) return out;
            ssize_t n = ::read(master, buf, sizeof buf);
            if (n <= 0) return out;
            out.append(buf, static_cast<std::size_t>(n));
        }
    }
    termios modes() const {
        termios t{};
        REQUIRE(::tcgetattr(slave, &t) == 0);
        return t;
    }
};

}  // namespace

TEST_CASE("top's terminal: raw input without flow control or literal-next, signals kept, all given back") {
    Pty pty;
    const termios before = pty.modes();
    REQUIRE((before.c_iflag & IXON) != 0);
    REQUIRE((before.c_lflag & IEXTEN) != 0);
    auto t = sw::cli::Terminal::open(pty.slave, pty.slave);
    REQUIRE(t);
    t->enter();
    auto raw = pty.modes();
    CHECK((raw.c_lflag & ICANON) == 0);
    CHECK((raw.c_lflag & ECHO) == 0);
    CHECK((raw.c_iflag & IXON) == 0);  // Ctrl-S would stop the output, and draw() with it
    CHECK((raw.c_lflag & IEXTEN) == 0);
    CHECK((raw.c_lflag & ISIG) != 0);  // Ctrl-C, Ctrl-\ and Ctrl-Z still signal
    CHECK(pty.drain().find("\x1b[?1049h\x1b[?25l") == 0);
    t->leave();
    auto after = pty.modes();
    CHECK(after.c_lflag == before.c_lflag);
    CHECK(after.c_iflag == before.c_iflag);
    CHECK(pty.drain() == "\x1b[?25h\x1b[?1049l");
}

TEST_CASE("top's terminal: a non-blocking terminal that takes no more output drops a frame, not the view") {
    Pty pty;
    // Another process may have set O_NONBLOCK on the terminal's description.
    REQUIRE(::fcntl(pty.slave, F_SETFL, ::fcntl(pty.slave, F_GETFL) | O_NONBLOCK) == 0);
    auto t = sw::cli::Terminal::open(-1, pty.slave);
    REQUIRE(t);
    // Nobody reads the master: a frame of 100KB fills what a pty buffers
    // (64KB and a little in Linux).
    std::vector<std::string> lines(100, std::string(1000, 'x'));
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 2; ++i) CHECK(t->draw(lines));
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= 500ms);  // it waited for the terminal before it gave a frame up
    CHECK(took < 10s);
    // The terminal reads again: frames go through whole.
    CHECK_FALSE(pty.drain().empty());
    std::vector<std::string> small = {"a", "b"};
    CHECK(t->draw(small));
    CHECK(pty.drain().find("\x1b[2Kb") != std::string::npos);
}

TEST_CASE("bounds are printed so that they stay bounds") {
    CHECK(sw::format_duration_down(1006ms) == "1.00s");
    CHECK(sw::format_duration_up(1006ms) == "1.01s");
    CHECK(sw::format_duration_down(100ms + 900us) == "100ms");
    CHECK(sw::format_duration_up(100ms + 100us) == "101ms");
    CHECK(sw::format_duration_up(999ms + 500us) == "1.00s");
    CHECK(sw::format_duration_up(100ms) == "100ms");
}

TEST_CASE("status and top options, and attach --live is top") {
    auto parse = [](std::vector<std::string> args) {
        args.insert(args.begin(), "stallwatch");
        return sw::cli::parse_command_line(args);
    };
    auto opt = [&](std::vector<std::string> args) {
        auto r = parse(std::move(args));
        auto* o = std::get_if<sw::cli::Options>(&r);
        REQUIRE_MESSAGE(o, (o ? "" : std::get<sw::cli::EarlyExit>(r).err));
        return o->command;
    };
    auto st = std::get<sw::cli::StatusOptions>(opt({"status", "7"}));
    CHECK(st.threshold == 100ms);
    CHECK(st.format == sw::report::Format::text);
    st = std::get<sw::cli::StatusOptions>(opt({"status", "7", "-t", "1s", "--format", "json"}));
    CHECK(st.threshold == 1s);
    CHECK(st.format == sw::report::Format::json);
    auto top = std::get<sw::cli::TopOptions>(opt({"top", "7"}));
    CHECK(top.pid == 7);
    CHECK(top.interval == 1s);
    CHECK(top.threshold == 100ms);
    top = std::get<sw::cli::TopOptions>(opt({"attach", "7", "--live", "-t", "250ms"}));
    CHECK(top.pid == 7);
    CHECK(top.threshold == 250ms);
    CHECK(top.interval == 1s);  // not attach's 10ms read interval
    top = std::get<sw::cli::TopOptions>(opt({"attach", "7", "--live", "--interval", "500ms"}));
    CHECK(top.interval == 500ms);

    auto refused = [&](std::vector<std::string> args, const std::string& what) {
        auto r = parse(args);
        auto* e = std::get_if<sw::cli::EarlyExit>(&r);
        REQUIRE(e);
        INFO(e->err);
        CHECK(e->code == 64);
        CHECK(e->err.find(what) != std::string::npos);
    };
    refused({"status", "7", "-t", "0"}, "must be more than zero");
    refused({"status", "7", "-f", "folded"}, "folded");
    refused({"top", "7", "-i", "10ms"}, "'10ms' is too short: the interval is at least 100ms");
    refused({"attach", "7", "--live", "--once"}, "not --once");
    refused({"attach", "--all", "--live"}, "not --all");
    refused({"attach", "7", "--live", "--format", "json"}, "not --format");
    refused({"attach", "7", "--live", "-t", "0"}, "more than zero");
    refused({"attach", "7", "--live", "-i", "10ms"}, "too short");
}

TEST_CASE("each command's help gives the units of its durations and examples") {
    for (const char* cmd : {"status", "attach", "dump", "run", "list", "top"}) {
        std::vector<std::string> args = {"stallwatch", cmd, "--help"};
        auto r = sw::cli::parse_command_line(args);
        auto* e = std::get_if<sw::cli::EarlyExit>(&r);
        REQUIRE(e);
        INFO(cmd << ":\n" << e->out);
        CHECK(e->code == 0);
        CHECK(e->out.find("Examples:\n  stallwatch " + std::string(cmd == std::string("top") ? "top" : cmd)) !=
              std::string::npos);
        CHECK(e->out.find("Exit status:") != std::string::npos);
        bool durations = e->out.find("--threshold") != std::string::npos;
        CHECK(durations == (std::string(cmd) != "dump"));
        if (durations) {
            CHECK(e->out.find("DURATION: a number and a unit: ns, us, ms, s, m (or min), h") != std::string::npos);
            CHECK(e->out.find("--threshold DURATION") != std::string::npos);
        }
    }
}
