// `stallwatch top` in a real terminal: tmux runs it in a pane of a server of
// its own (a socket named for this test, never a user's server), the test
// reads the screen with capture-pane and types with send-keys.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <regex>
#include <sstream>
#include <string>

#include "proc/table_file.hpp"
#include "support/child.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"
#include "support/stall_fixture.hpp"

using namespace sw::test;

namespace {

constexpr const char* tmux_binary = "/usr/bin/tmux";

// One tmux server with one session running `command` in a shell, in a
// 120x40 (or other) window. The shell prints stallwatch's exit status when
// it ends and then waits, so that the screen it left can be read. The
// server is killed when the test ends, whatever happened.
class Tmux {
public:
    Tmux(const std::string& command, int cols = 120, int rows = 40)
        : socket_("sw-test-" + std::to_string(::getpid()) + "-" + std::to_string(++count_)) {
        REQUIRE_MESSAGE(std::filesystem::exists(tmux_binary),
                        "tmux is not installed (packaging/install-deps.sh installs it)");
        // Traps, not ignored signals: stallwatch must get Ctrl-C and Ctrl-\,
        // and an ignored signal would stay ignored across exec. The shell
        // goes on to say how stallwatch ended. No core files from the tests
        // of fatal signals.
        std::string script =
            "trap 'true' INT QUIT; ulimit -c 0; " + command + "; echo \"top exit status $?\"; exec sleep 60";
        // The shell named, not tmux's default-shell, and the command as its
        // own arguments (no second round of shell parsing by tmux).
        auto r = tmux({"new-session", "-d", "-s", "sw", "-x", std::to_string(cols), "-y", std::to_string(rows),
                       "/bin/sh", "-c", script});
        REQUIRE_MESSAGE(r.exit_code == 0, "tmux new-session failed: " << r.err);
    }
    ~Tmux() { tmux({"kill-server"}); }
    Tmux(const Tmux&) = delete;
    Tmux& operator=(const Tmux&) = delete;

    RunResult tmux(std::vector<std::string> args) {
        // -f /dev/null: no configuration of the user's or the system's
        // (another prefix key, hooks, a default-command) at the server's start.
        args.insert(args.begin(), {tmux_binary, "-f", "/dev/null", "-L", socket_});
        // Not inside a tmux of the caller's, whatever the environment says.
        return run(args, std::chrono::seconds(10), {{"TERM", "xterm-256color"}, {"TMUX", ""}});
    }
    std::string screen() { return tmux({"capture-pane", "-p", "-t", "sw"}).out; }
    std::string format(const std::string& f) {
        auto out = tmux({"display-message", "-p", "-t", "sw", f}).out;
        while (!out.empty() && out.back() == '\n') out.pop_back();
        return out;
    }
    void keys(const std::string& k) { tmux({"send-keys", "-t", "sw", k}); }
    // Waits until `done` holds for the screen (it returns as soon as it
    // does: the long default is for a loaded machine); the screen then.
    std::string wait_until(const std::function<bool(const std::string&)>& done,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        std::string last;
        poll_until([&] { return done(last = screen()); }, timeout, std::chrono::milliseconds(50));
        return last;
    }
    // Waits until the screen holds `text`; the screen then.
    std::string wait_for(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        return wait_until([&](const std::string& screen) { return screen.find(text) != std::string::npos; }, timeout);
    }
    // The pid of the program the pane's shell runs (stallwatch), 0 if none.
    pid_t program_pid() {
        auto shell = format("#{pane_pid}");
        pid_t child = 0;
        poll_until(
            [&] {
                std::ifstream in("/proc/" + shell + "/task/" + shell + "/children");
                return static_cast<bool>(in >> child) && child > 0;
            },
            std::chrono::seconds(10));
        return child;
    }

private:
    static inline int count_ = 0;
    std::string socket_;
};

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// The row of the screen that names worker `name`.
std::string row_of(const std::string& screen, const std::string& name) {
    std::istringstream in(screen);
    for (std::string line; std::getline(in, line);) {
        while (!line.empty() && line.back() == ' ') line.pop_back();
        if (line.size() > name.size() && line.compare(line.size() - name.size() - 2, std::string::npos, "  " + name) == 0)
            return line;
    }
    return {};
}

// No thread of `pid` has a tracer: nothing stopped it to sample it.
bool untraced(pid_t pid) {
    for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
        std::ifstream status(task.path() / "status");
        for (std::string line; std::getline(status, line);)
            if (line.rfind("TracerPid:", 0) == 0 && std::stol(line.substr(10)) != 0) return false;
    }
    return true;
}

// The target runs on as before: alive, its busy workers still making progress.
void check_untouched(pid_t pid) {
    CHECK(::kill(pid, 0) == 0);
    auto table = sw::proc::TableFile::open(pid);
    REQUIRE(table.ok());
    auto before = table->read();
    REQUIRE(before.ok());
    bool moved = poll_until(
        [&] {
            auto now = table->read();
            if (!now.ok()) return false;
            for (const auto& w : now->workers)
                for (const auto& b : before->workers)
                    if (w.name == "busy-0" && b.name == "busy-0" && w.progress != b.progress) return true;
            return false;
        },
        std::chrono::seconds(2));
    CHECK(moved);
    CHECK(untraced(pid));
}

// The terminal's modes (stty -a) on the pane.
std::string stty_of(Tmux& t) {
    auto stty = run({"/bin/stty", "-F", t.format("#{pane_tty}"), "-a"});
    INFO(stty.out << stty.err);
    CHECK(stty.exit_code == 0);
    return stty.out;
}

bool has_mode(const std::string& stty, const std::string& mode) {
    return std::regex_search(stty, std::regex("(^|\\s)" + mode + "(\\s|$)"));
}

// The terminal as the view sets it: alternate screen, no cursor, no line
// editing, echo, flow control or literal-next; signals still raised.
void check_raw(Tmux& t) {
    CHECK(t.format("#{alternate_on}") == "1");
    CHECK(t.format("#{cursor_flag}") == "0");
    auto stty = stty_of(t);
    INFO(stty);
    for (const char* off : {"-icanon", "-echo", "-ixon", "-iexten"}) CHECK_MESSAGE(has_mode(stty, off), off);
    CHECK(has_mode(stty, "isig"));
}

// The terminal as the shell had it: main screen, cursor shown, line
// editing, echo, flow control and literal-next back on.
void check_restored(Tmux& t) {
    CHECK(t.format("#{alternate_on}") == "0");
    CHECK(t.format("#{cursor_flag}") == "1");
    auto stty = stty_of(t);
    INFO(stty);
    for (const char* on : {"icanon", "echo", "ixon", "iexten", "isig"}) CHECK_MESSAGE(has_mode(stty, on), on);
}

// The STALLS column of a worker's row (the field before the name).
std::string stalls_of(const std::string& row) {
    std::istringstream in(row);
    std::vector<std::string> f{std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
    return f.size() >= 2 ? f[f.size() - 2] : std::string();
}

std::string top_command(pid_t pid, const std::string& extra = "") {
    // A threshold of 1s: the victim stalls for far longer, a busy worker
    // that ticks every millisecond is not held up that long even on a
    // loaded machine.
    return quoted(stallwatch_binary()) + " top " + std::to_string(pid) + " --interval 200ms --threshold 1s" + extra;
}

// The view is up and shows the victim STALLED, once.
std::string wait_for_victim_stalled(Tmux& t) {
    auto screen = t.wait_until([](const std::string& s) { return row_of(s, "victim").find(" STALLED ") != std::string::npos; });
    INFO(screen);
    auto victim = row_of(screen, "victim");
    CHECK(victim.find(" running  STALLED ") != std::string::npos);
    CHECK(stalls_of(victim) == "1");
    return screen;
}

// The closing line with its count of stalls: at least the victim's.
void check_closing(const std::string& screen, const std::string& before_count, const std::string& after_count,
                   int exit_status) {
    INFO(screen);
    CHECK(std::regex_search(screen, std::regex(before_count + "[1-9][0-9]* stall\\(s\\) seen" + after_count +
                                               "\ntop exit status " + std::to_string(exit_status) + "\n")));
    CHECK(screen.find("SLOT") == std::string::npos);  // the view's screen is gone with it
}

}  // namespace

TEST_CASE("top in a terminal shows workers, states and STALLED, and q ends it with the terminal restored and "
          "the target untouched") {
    StallFixture fx({"--workers", "2", "--stall-ms", "60000"});
    Tmux t(top_command(fx.pid));
    auto screen = wait_for_victim_stalled(t);
    INFO(screen);
    REQUIRE(screen.find("stallwatch top: pid " + std::to_string(fx.pid)) != std::string::npos);
    CHECK(screen.find("SLOT       TID  STATE    FLAG") != std::string::npos);
    auto victim = row_of(screen, "victim");
    CHECK(victim.find(" >=") != std::string::npos);  // no move seen since the view began
    for (const char* busy : {"busy-0", "busy-1"}) {
        auto row = row_of(screen, busy);
        CHECK_MESSAGE(row.find(" running ") != std::string::npos, busy);
        CHECK_MESSAGE(row.find("STALLED") == std::string::npos, busy);
        CHECK_MESSAGE(row.find(" <") != std::string::npos, busy);  // seen to move: an upper bound
    }
    check_raw(t);
    CHECK(untraced(fx.pid));

    t.keys("q");
    screen = t.wait_for("top exit status");
    check_closing(screen, "stallwatch: q pressed; ", ", detached", 0);
    check_restored(t);
    check_untouched(fx.pid);
}

TEST_CASE("top: a screen too small for every worker says how many are hidden, a resize shows them all, and "
          "Ctrl-C ends it") {
    StallFixture fx({"--workers", "20", "--stall-ms", "60000"});
    Tmux t(top_command(fx.pid), 100, 12);
    auto screen = wait_for_victim_stalled(t);
    INFO(screen);
    // 12 rows: 4 of header, the stalled worker first, 6 more, and the count of the others.
    CHECK(screen.find("21 worker(s): 21 running, 0 parked, 1 STALLED") != std::string::npos);
    CHECK(screen.find("+ 14 more worker(s) not shown") != std::string::npos);

    t.tmux({"resize-window", "-t", "sw", "-x", "100", "-y", "30"});
    // A frame drawn for the new size: every worker, and no count of hidden ones.
    screen = t.wait_until([](const std::string& s) {
        return s.find("busy-19") != std::string::npos && s.find("more worker(s) not shown") == std::string::npos;
    });
    INFO(screen);
    CHECK(screen.find("busy-19") != std::string::npos);
    CHECK(screen.find("more worker(s) not shown") == std::string::npos);
    CHECK(row_of(screen, "victim").find("STALLED") != std::string::npos);

    t.keys("C-c");
    screen = t.wait_for("top exit status");
    check_closing(screen, "stallwatch: Interrupt received; ", ", detached", 0);
    check_restored(t);
    check_untouched(fx.pid);
}

TEST_CASE("top: Ctrl-backslash (SIGQUIT) ends it as Ctrl-C does, with the terminal restored and no core dump") {
    StallFixture fx({"--workers", "1", "--stall-ms", "60000"});
    Tmux t(top_command(fx.pid));
    wait_for_victim_stalled(t);
    t.keys("C-\\");
    auto screen = t.wait_for("top exit status");
    check_closing(screen, "stallwatch: Quit received; ", ", detached", 0);
    check_restored(t);
    check_untouched(fx.pid);
}

TEST_CASE("top: SIGTERM and SIGHUP end it with status 0 and the terminal restored") {
    for (int sig : {SIGTERM, SIGHUP}) {
        INFO("signal " << sig);
        StallFixture fx({"--workers", "1", "--stall-ms", "60000"});
        Tmux t(top_command(fx.pid));
        wait_for_victim_stalled(t);
        pid_t top = t.program_pid();
        REQUIRE(top > 0);
        REQUIRE(::kill(top, sig) == 0);
        auto screen = t.wait_for("top exit status");
        check_closing(screen, std::string("stallwatch: ") + (sig == SIGTERM ? "Terminated" : "Hangup") + " received; ",
                      ", detached", 0);
        check_restored(t);
        check_untouched(fx.pid);
    }
}

TEST_CASE("top: a fatal signal (SIGSEGV, SIGABRT) still gives the terminal back before the program dies of it") {
    for (int sig : {SIGSEGV, SIGABRT}) {
        INFO("signal " << sig);
        StallFixture fx({"--workers", "1", "--stall-ms", "60000"});
        Tmux t(top_command(fx.pid));
        wait_for_victim_stalled(t);
        pid_t top = t.program_pid();
        REQUIRE(top > 0);
        REQUIRE(::kill(top, sig) == 0);
        auto screen = t.wait_for("top exit status");
        INFO(screen);
        // Killed by the signal, as without the handler (128 + the signal).
        CHECK(screen.find("top exit status " + std::to_string(128 + sig) + "\n") != std::string::npos);
        CHECK(screen.find("SLOT") == std::string::npos);
        check_restored(t);
        check_untouched(fx.pid);
    }
}

TEST_CASE("top: an exception out of the view's loop leaves the terminal as it was before the program ends") {
    StallFixture fx({"--workers", "1", "--stall-ms", "60000"});
    REQUIRE_MESSAGE(test_hooks_built, "this test needs the monitor's test hooks: configure with "
                                      "-DSTALLWATCH_TEST_HOOKS=ON (tests/run-all.sh does)");
    Tmux t("STALLWATCH_TEST_TOP_THROW_AFTER=3 " + top_command(fx.pid));
    auto screen = t.wait_for("top exit status");
    INFO(screen);
    // Nothing catches it further up: std::terminate, abort(), after the terminal was left.
    CHECK(screen.find("STALLWATCH_TEST_TOP_THROW_AFTER: a test's exception out of top's loop") != std::string::npos);
    CHECK(screen.find("top exit status 134\n") != std::string::npos);
    CHECK(screen.find("SLOT") == std::string::npos);
    check_restored(t);
    check_untouched(fx.pid);
}

TEST_CASE("top (as attach --live) ends with exit 2 when the target exits") {
    auto fx = std::make_unique<StallFixture>(std::vector<std::string>{"--workers", "1", "--stall-ms", "60000"});
    const pid_t pid = fx->pid;
    Tmux t(quoted(stallwatch_binary()) + " attach " + std::to_string(pid) + " --live --interval 200ms --threshold 1s");
    wait_for_victim_stalled(t);
    fx->child.finish();  // the fixture ends when its standard input closes
    auto screen = t.wait_for("top exit status");
    check_closing(screen, "stallwatch: pid " + std::to_string(pid) + " exited; ", "", 2);
    check_restored(t);
}

TEST_CASE("top of a process whose main thread exited (pthread_exit) while its workers run on: it draws on, "
          "and ends with exit 2 once every thread is gone") {
    auto fx = std::make_unique<StallFixture>(
        std::vector<std::string>{"--workers", "1", "--stall-ms", "60000", "--main-exits"});
    const pid_t pid = fx->pid;
    Tmux t(top_command(pid));
    auto screen = wait_for_victim_stalled(t);
    INFO(screen);
    // The view goes on: the busy worker keeps moving from frame to frame.
    auto busy = row_of(screen, "busy-0");
    CHECK(busy.find(" running ") != std::string::npos);
    CHECK(busy.find("STALLED") == std::string::npos);
    CHECK(screen.find("no longer holds its table") == std::string::npos);
    // Seconds later, its table is still read: the busy worker was seen to
    // move within the last read or two, not seconds ago.
    screen = t.wait_until([](const std::string& s) {
        return std::regex_search(s, std::regex("watching for ([3-9]\\.[0-9]+s|[1-9][0-9]+s)"));
    });
    INFO(screen);
    CHECK(row_of(screen, "victim").find(" STALLED ") != std::string::npos);
    CHECK(screen.find("no longer holds its table") == std::string::npos);
    std::istringstream fields(row_of(screen, "busy-0"));
    std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
    REQUIRE(f.size() == 7);  // SLOT TID STATE RATE/S SINCE STALLS NAME (no FLAG)
    CHECK(std::regex_match(f[4], std::regex("<[0-9]+ms")));
    fx->child.finish();
    screen = t.wait_for("top exit status");
    check_closing(screen, "stallwatch: pid " + std::to_string(pid) + " exited; ", "", 2);
    check_restored(t);
}

TEST_CASE("top refuses to draw when standard output is not a terminal: one line, exit 64") {
    StallFixture fx({"--workers", "1", "--stall-ms", "20000"});
    auto r = run({stallwatch_binary(), "top", std::to_string(fx.pid)});
    CHECK(r.exit_code == 64);
    CHECK(r.out.empty());
    CHECK(r.err == "stallwatch: top draws a live view on a terminal, and standard output is not one; for one "
                   "snapshot use 'stallwatch status " +
                       std::to_string(fx.pid) + "' (with --format json for a program)\n");
}
