// The Rust crate (bindings/rust) seen from stallwatch: `status` and `list`
// read the table it writes, and its tokio examples run under `stallwatch
// run` are reported exactly when a worker is stuck in one poll: never when
// it is idle, busy with short tasks, or serving a saturating load.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <regex>
#include <thread>

#include "preload/preload_run.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/text_report.hpp"

using namespace sw::test;

namespace {

// A program cargo built (debug), by its path under target/debug.
std::string rust_program(const std::string& name) { return std::string(SW_RUST_DEBUG_DIR) + "/" + name; }

pid_t watched_pid(const std::string& events_file) {
    auto attached = events_of(read_events(events_file), "attached");
    REQUIRE(!attached.empty());
    return attached[0]["process.pid"].get<pid_t>();
}

// The status line of the worker called `name`, or "".
std::string status_line(const std::string& status, const std::string& name) {
    std::istringstream in(status);
    for (std::string line; std::getline(in, line);)
        if (line.size() > name.size() && line.compare(line.size() - name.size(), name.size(), name) == 0 &&
            line[line.size() - name.size() - 1] == ' ')
            return line;
    return "";
}

// The PROGRESS column of a status line ("    0  1234  running  925  ticking").
long progress_of(const std::string& line) {
    std::istringstream in(line);
    long slot = 0, tid = 0, progress = -1;
    std::string state;
    in >> slot >> tid >> state >> progress;
    return progress;
}

const std::string fast_request = "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string slow_request = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";

// `clients` keep-alive connections, each making /fast requests one after the
// other, `total` in all or until `length` has passed; returns how many were
// answered.
long fast_requests(int port, int clients, long total, std::chrono::milliseconds length) {
    std::atomic<long> answered{0}, started{0};
    const auto end = std::chrono::steady_clock::now() + length;
    std::vector<std::thread> ts;
    for (int i = 0; i < clients; ++i)
        ts.emplace_back([&] {
            int s = connect_to(port);
            if (s < 0) return;
            while (std::chrono::steady_clock::now() < end && started++ < total) {
                if (!exchange(s, fast_request, "fast\n")) break;
                ++answered;
            }
            ::close(s);
        });
    for (auto& t : ts) t.join();
    return answered;
}

// Asks the watched program to stop (SIGTERM) and waits for `stallwatch run`.
void stop(Child& run_child, pid_t target) {
    ::kill(target, SIGTERM);
    CHECK(run_child.finish(15s).has_value());
}

}  // namespace

TEST_CASE("status and list read the table the Rust crate wrote: app name, workers, states and progress") {
    Child ticker({rust_program("examples/ticker")});
    auto ready = ticker.read_line(15s);
    REQUIRE(ready);
    auto pid = field(*ready, "pid");
    REQUIRE(pid);
    const std::string p = std::to_string(*pid);

    auto first = run({stallwatch_binary(), "status", p});
    INFO(first.out << first.err);
    CHECK(first.exit_code == 0);
    CHECK(first.out.rfind("pid " + p + " (ticker) app \"rust-ticker\": table format 1, 2 of 256 slots in use "
                          "(1 running, 1 parked)", 0) == 0);
    const std::string ticking = status_line(first.out, "ticking"), idle = status_line(first.out, "idle");
    CHECK(ticking.find(" running ") != std::string::npos);
    CHECK(idle.find(" parked ") != std::string::npos);
    std::this_thread::sleep_for(200ms);
    auto second = run({stallwatch_binary(), "status", p});
    CHECK(progress_of(status_line(second.out, "ticking")) > progress_of(ticking));
    CHECK(progress_of(status_line(second.out, "idle")) == 0);

    auto list = run({stallwatch_binary(), "list"});
    CHECK(list.exit_code == 0);
    bool listed = false;
    std::istringstream in(list.out);
    for (std::string line; std::getline(in, line);) {
        std::istringstream cols(line);
        std::string lpid, user, command, app;
        long running = -1, parked = -1, stalled = -1;
        cols >> lpid >> user >> command >> app >> running >> parked >> stalled;
        if (lpid != p) continue;
        listed = true;
        CHECK(app == "rust-ticker");
        CHECK(running == 1);
        CHECK(parked == 1);
        CHECK(stalled == 0);
    }
    CHECK(listed);
    CHECK(ticker.finish(5s).has_value());
}

TEST_CASE("tokio: a worker kept busy by short instrumented tasks without parking is never reported, and a task "
          "stuck in one poll is, at tokio_busy::stuck_in_poll (tokio-busy.rs:21)") {
    TempDir dir("sw-rust-busy");
    const std::string out = dir.file("events.json");
    Child app({stallwatch_binary(), "run", "--threshold", "100ms", "-f", "json", "-o", out, "--",
               rust_program("examples/tokio-busy")});
    REQUIRE(app.read_line(15s) == std::optional<std::string>("busy"));
    REQUIRE(wait_for_event(out, "attached", 5s));
    const std::string p = std::to_string(watched_pid(out));

    // During the busy phase the worker is running and its counter moves.
    std::this_thread::sleep_for(500ms);
    auto a = run({stallwatch_binary(), "status", p});
    std::this_thread::sleep_for(500ms);
    auto b = run({stallwatch_binary(), "status", p});
    INFO(a.out << b.out);
    const std::string line_a = status_line(a.out, "busy-worker-0"), line_b = status_line(b.out, "busy-worker-0");
    CHECK(line_a.find(" running ") != std::string::npos);
    CHECK(line_b.find(" running ") != std::string::npos);
    CHECK(progress_of(line_b) > progress_of(line_a) + 1000);  // thousands of polls, no park in between

    REQUIRE(app.read_line(10s) == std::optional<std::string>("stuck"));
    CHECK(events_of(read_events(out), "stall").empty());  // nothing in 2 s of busy
    REQUIRE(app.read_line(10s) == std::optional<std::string>("done"));
    auto status = app.finish(15s);
    REQUIRE(status);
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 0);

    auto events = read_events(out);
    auto stalls = events_of(events, "stall");
    REQUIRE(stalls.size() == 1);
    INFO("stack: " << frame_names(stalls[0]));
    CHECK(stalls[0]["thread.name"] == "busy-worker-0");
    CHECK(has_frame(stalls[0], "tokio_busy::stuck_in_poll", 21));
    auto recovered = events_of(events, "recovered");
    REQUIRE(recovered.size() == 1);
    const double ms = recovered[0].value("stallwatch.stall.duration_ms", 0.0);
    CHECK(ms >= 600.0);
    CHECK(ms <= 1500.0);
}

TEST_CASE("tokio + hyper (http-blocking): /fast x1000 and 10 s of saturating /fast are never reported at 100 ms, "
          "and /slow is one stall of one worker at the handler (main.rs:17), recovered after about 5 s") {
    TempDir dir("sw-rust-http");
    const std::string out = dir.file("events.json");
    const int port = free_port();
    Child server({stallwatch_binary(), "run", "--threshold", "100ms", "-f", "json", "-o", out, "--",
                  rust_program("http-blocking"), std::to_string(port)});
    REQUIRE(wait_for_event(out, "attached", 15s));
    REQUIRE(port_open(port, 10s));
    const pid_t pid = watched_pid(out);

    CHECK(fast_requests(port, 4, 1000, 60s) == 1000);
    CHECK(events_of(read_events(out), "stall").empty());

    const long saturating = fast_requests(port, 4, 1L << 40, 10s);
    MESSAGE("/fast answered in 10 s of saturating load: " << saturating);
    CHECK(saturating > 1000);
    CHECK(events_of(read_events(out), "stall").empty());

    int s = connect_to(port);
    REQUIRE(s >= 0);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(exchange(s, slow_request, "slow\n"));
    ::close(s);
    CHECK(std::chrono::steady_clock::now() - t0 >= 4900ms);
    REQUIRE(wait_for_event(out, "recovered", 5s));

    auto events = read_events(out);
    auto stalls = events_of(events, "stall");
    REQUIRE(stalls.size() == 1);
    INFO("stack: " << frame_names(stalls[0]));
    CHECK(stalls[0]["thread.name"].get<std::string>().rfind("tokio-worker-", 0) == 0);
    CHECK(stalls[0]["stallwatch.thread.syscall"] == "clock_nanosleep");
    CHECK(has_frame(stalls[0], "http_blocking::handle::{{closure}}", 17));
    for (const auto& u : events_of(events, "stall_update")) CHECK(u["stallwatch.episode"] == stalls[0]["stallwatch.episode"]);
    auto recovered = events_of(events, "recovered");
    REQUIRE(recovered.size() == 1);
    const double ms = recovered[0].value("stallwatch.stall.duration_ms", 0.0);
    CHECK(ms >= 4500.0);
    CHECK(ms <= 6000.0);
    stop(server, pid);
}

TEST_CASE("tokio + hyper (http-blocking), text: /slow's first application frame is the handler closure at "
          "main.rs:17, Rust names carry no hash, and tokio, hyper and std frames are folded") {
    TempDir dir("sw-rust-text");
    const std::string out = dir.file("report.txt"), events = dir.file("events.json");
    const int port = free_port();
    Child server({stallwatch_binary(), "run", "-o", out, "--", rust_program("http-blocking"), std::to_string(port)});
    REQUIRE(server.read_line(15s).has_value());  // "listening on ..."
    REQUIRE(port_open(port, 10s));
    int s = connect_to(port);
    REQUIRE(s >= 0);
    CHECK(exchange(s, slow_request, "slow\n"));
    ::close(s);
    // The /slow stall's recovery (its number is not always 1: on a loaded
    // machine a worker kept off the CPU may have been reported first).
    INFO("report file:\n" << slurp(out));
    REQUIRE(poll_until([&] { return slurp(out).find(" RECOVERED #") != std::string::npos; }, 10s, 20ms));

    const std::string text = slurp(out);
    auto reports = parse_reports(text);
    REQUIRE(!reports.empty());
    // The report of the /slow handler (the first one, unless a starved
    // worker was reported before it).
    auto slow = std::find_if(reports.begin(), reports.end(), [](const auto& rep) {
        return rep.text.find("http_blocking::handle::{{closure}}") != std::string::npos;
    });
    REQUIRE(slow != reports.end());
    const auto& r = *slow;
    INFO(r.text);
    const TextFrame* app = nullptr;
    for (const auto& f : r.frames)
        if (f.first_app) app = &f;
    REQUIRE(app != nullptr);
    CHECK(app->function == "http_blocking::handle::{{closure}}");
    CHECK(app->basename() == "main.rs");
    CHECK(app->line == 17);
    // No legacy hash suffix, no raw mangled name.
    CHECK_FALSE(std::regex_search(text, std::regex("::h[0-9a-f]{16}\\b")));
    CHECK(text.find("_ZN") == std::string::npos);
    CHECK(text.find(" _R") == std::string::npos);
    // The frames of the runtime crates are folded, below and above the
    // handler, and the long run above it is shortened.
    std::size_t folded_lines = 0;
    for (const auto& f : r.frames) {
        const bool runtime_crate = std::regex_search(f.function, std::regex("^<?(tokio|hyper|std|core|futures)::"));
        if (f.folded) ++folded_lines;
        else CHECK_MESSAGE(!runtime_crate, "not folded: " << f.text);
    }
    CHECK(folded_lines >= 2);
    const auto& above = r.frames.at(r.find("http_blocking::handle::{{closure}}") + 1);
    CHECK(above.folded);
    CHECK(above.function.rfind("<hyper::proto::h1::dispatch::Server<S,hyper::body::body::Body> as "
                               "hyper::proto::h1::dispatch::Dispatch>::poll_msg < ", 0) == 0);
    CHECK(std::regex_search(above.function, std::regex(" < \\.\\.\\. [0-9]+ more \\.\\.\\. < start_thread < __clone3$")));
    CHECK(above.last - above.number > 40);
    const std::string pid_line = text.substr(0, text.find('\n'));
    auto of_pid = pid_line.find(" of pid ");
    REQUIRE(of_pid != std::string::npos);
    stop(server, static_cast<pid_t>(std::stol(pid_line.substr(of_pid + 8))));
}
