// `stallwatch top` in a real terminal: tmux runs it in a pane of a server of
// its own (a socket named for this test, never a user's server), the test
// reads the screen with capture-pane and types with send-keys.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "proc/table_file.hpp"
#include "support/child.hpp"
#include "support/process.hpp"

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
        // A trap, not an ignored SIGINT: stallwatch must get Ctrl-C, and an
        // ignored signal would stay ignored across exec. The shell goes on
        // to say how stallwatch ended.
        std::string script = "trap 'true' INT; " + command + "; echo \"top exit status $?\"; exec sleep 60";
        auto r = tmux({"new-session", "-d", "-s", "sw", "-x", std::to_string(cols), "-y", std::to_string(rows),
                       script});
        REQUIRE_MESSAGE(r.exit_code == 0, "tmux new-session failed: " << r.err);
    }
    ~Tmux() { tmux({"kill-server"}); }
    Tmux(const Tmux&) = delete;
    Tmux& operator=(const Tmux&) = delete;

    RunResult tmux(std::vector<std::string> args) {
        args.insert(args.begin(), {tmux_binary, "-L", socket_});
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
    // Waits until the screen holds `text`; the screen then.
    std::string wait_for(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        std::string last;
        poll_until([&] { return (last = screen()).find(text) != std::string::npos; }, timeout,
                   std::chrono::milliseconds(50));
        return last;
    }

private:
    static inline int count_ = 0;
    std::string socket_;
};

std::string quoted(const std::string& s) { return "'" + s + "'"; }

struct StallFixture {
    Child child;
    pid_t pid = 0;
    explicit StallFixture(std::vector<std::string> args) : child([&] {
        args.insert(args.begin(), fixture("sw_fixture_stall"));
        return args;
    }()) {
        auto line = child.read_line();
        REQUIRE_MESSAGE(line.has_value(), "fixture did not say ready");
        pid = static_cast<pid_t>(field(*line, "pid").value_or(0));
        REQUIRE(pid > 0);
    }
};

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

// The terminal as the shell had it: main screen, cursor shown, line
// editing and echo back on.
void check_restored(Tmux& t) {
    CHECK(t.format("#{alternate_on}") == "0");
    CHECK(t.format("#{cursor_flag}") == "1");
    auto stty = run({"/bin/stty", "-F", t.format("#{pane_tty}"), "-a"});
    INFO(stty.out << stty.err);
    CHECK(stty.exit_code == 0);
    CHECK(stty.out.find(" icanon") != std::string::npos);
    CHECK(stty.out.find("-icanon") == std::string::npos);
    CHECK(stty.out.find(" echo ") != std::string::npos);
}

}  // namespace

TEST_CASE("top in a terminal shows workers, states and STALLED, and q ends it with the terminal restored and "
          "the target untouched") {
    StallFixture fx({"--workers", "2", "--stall-ms", "20000"});
    Tmux t(quoted(stallwatch_binary()) + " top " + std::to_string(fx.pid) + " --interval 200ms");
    auto screen = t.wait_for("running  STALLED");
    INFO(screen);
    REQUIRE(screen.find("stallwatch top: pid " + std::to_string(fx.pid)) != std::string::npos);
    CHECK(screen.find("SLOT       TID  STATE    FLAG") != std::string::npos);
    auto victim = row_of(screen, "victim");
    CHECK(victim.find(" running  STALLED ") != std::string::npos);
    CHECK(victim.find(" >=") != std::string::npos);  // no move seen since the view began
    for (const char* busy : {"busy-0", "busy-1"}) {
        auto row = row_of(screen, busy);
        CHECK_MESSAGE(row.find(" running ") != std::string::npos, busy);
        CHECK_MESSAGE(row.find("STALLED") == std::string::npos, busy);
    }
    CHECK(t.format("#{alternate_on}") == "1");
    CHECK(t.format("#{cursor_flag}") == "0");
    CHECK(untraced(fx.pid));

    t.keys("q");
    screen = t.wait_for("top exit status");
    INFO(screen);
    CHECK(screen.find("stallwatch: q pressed; 1 stall(s) seen, detached\ntop exit status 0\n") != std::string::npos);
    CHECK(screen.find("SLOT") == std::string::npos);  // the view's screen is gone with it
    check_restored(t);
    check_untouched(fx.pid);
}

TEST_CASE("top: a screen too small for every worker says how many are hidden, a resize shows them all, and "
          "Ctrl-C ends it") {
    StallFixture fx({"--workers", "20", "--stall-ms", "20000"});
    Tmux t(quoted(stallwatch_binary()) + " top " + std::to_string(fx.pid) + " --interval 200ms", 100, 12);
    auto screen = t.wait_for("running  STALLED");
    INFO(screen);
    // 12 rows: 4 of header, the stalled worker first, 6 more, and the count of the others.
    CHECK(screen.find("21 worker(s): 21 running, 0 parked, 1 STALLED") != std::string::npos);
    CHECK(row_of(screen, "victim").find("STALLED") != std::string::npos);
    CHECK(screen.find("+ 14 more worker(s) not shown") != std::string::npos);

    t.tmux({"resize-window", "-t", "sw", "-x", "100", "-y", "30"});
    screen = t.wait_for("busy-19");
    INFO(screen);
    CHECK(screen.find("more worker(s) not shown") == std::string::npos);
    CHECK(row_of(screen, "victim").find("STALLED") != std::string::npos);

    t.keys("C-c");
    screen = t.wait_for("top exit status");
    CHECK(screen.find("stallwatch: Interrupt received; 1 stall(s) seen, detached\ntop exit status 0\n") !=
          std::string::npos);
    check_restored(t);
    check_untouched(fx.pid);
}

TEST_CASE("top (as attach --live) ends with exit 2 when the target exits") {
    auto fx = std::make_unique<StallFixture>(std::vector<std::string>{"--workers", "1", "--stall-ms", "20000"});
    const pid_t pid = fx->pid;
    Tmux t(quoted(stallwatch_binary()) + " attach " + std::to_string(pid) + " --live --interval 200ms");
    auto screen = t.wait_for("running  STALLED");
    INFO(screen);
    CHECK(row_of(screen, "victim").find("STALLED") != std::string::npos);
    fx->child.finish();  // the fixture ends when its standard input closes
    screen = t.wait_for("top exit status");
    CHECK(screen.find("stallwatch: pid " + std::to_string(pid) + " exited; 1 stall(s) seen\ntop exit status 2\n") !=
          std::string::npos);
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
