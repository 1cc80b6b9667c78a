// The adapters (docs/adapters.md) on their fixtures, watched by `stallwatch
// run`: Boost.Asio in the three pool shapes (fixtures/adapters/asio_echo.cpp)
// and a libuv loop in four modes (fixtures/adapters/uv_loop.c). A handler or
// callback that blocks is reported on its own thread, at its line; idle
// threads, idle loops, busy loops and loaded pools never are.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "preload/preload_run.hpp"
#include "support/markers.hpp"
#include "support/net.hpp"
#include "support/process.hpp"

using namespace sw::test;

namespace {

std::string fixture_path(const std::string& name) { return fixture("adapters/" + name); }

// A fixture started under `stallwatch run --threshold 200ms -f json -o FILE`.
struct Watched {
    TempDir dir{"sw-adapters"};
    std::string events = dir.file("events.json");
    Child child;
    pid_t pid = -1;
    int port = -1;

    explicit Watched(std::vector<std::string> argv)
        : child([&] {
              std::vector<std::string> a{stallwatch_binary(), "run", "--threshold", "200ms", "-f", "json", "-o",
                                         events, "--"};
              a.insert(a.end(), argv.begin(), argv.end());
              return a;
          }()) {
        auto ready = child.read_line(15s);
        REQUIRE_MESSAGE(ready.has_value(), "no ready line from " << argv[0]);
        pid = static_cast<pid_t>(field(*ready, "pid").value_or(-1));
        port = static_cast<int>(field(*ready, "port").value_or(-1));
        REQUIRE(pid > 0);
    }

    std::vector<nlohmann::json> stalls() const { return events_of(read_events(events), "stall"); }
    std::string status() const { return run({stallwatch_binary(), "status", std::to_string(pid)}).out; }
};

// Worker lines of `stallwatch status` whose name starts with `prefix`, and
// how many of them are parked.
std::pair<int, int> workers(const std::string& status, const std::string& prefix) {
    int all = 0, parked = 0;
    std::istringstream in(status);
    for (std::string line; std::getline(in, line);) {
        // SLOT TID STATE PROGRESS SINCE-PROGRESS [FLAG] NAME: the name is last.
        std::istringstream cols(line);
        std::vector<std::string> fields;
        for (std::string f; cols >> f;) fields.push_back(f);
        if (fields.size() < 6) continue;
        const std::string& state = fields[2];
        const std::string& name = fields.back();
        if (name.rfind(prefix, 0) != 0) continue;
        ++all;
        parked += state == "parked";
    }
    return {all, parked};
}

// `clients` connections sending lines and reading the echo for `length`;
// returns how many were echoed.
long echo_load(int port, int clients, std::chrono::milliseconds length) {
    std::atomic<long> echoed{0};
    const auto end = std::chrono::steady_clock::now() + length;
    std::vector<std::thread> ts;
    for (int i = 0; i < clients; ++i)
        ts.emplace_back([&, i] {
            int s = connect_to(port);
            if (s < 0) return;
            for (long n = 0; std::chrono::steady_clock::now() < end; ++n) {
                const std::string line = "client " + std::to_string(i) + " line " + std::to_string(n) + "\n";
                if (!exchange(s, line, line)) break;
                ++echoed;
            }
            ::close(s);
        });
    for (auto& t : ts) t.join();
    return echoed;
}

// The Asio checks for one shape: idle, then load, then one blocked handler.
void asio_shape(const std::string& shape, const std::string& prefix, std::chrono::milliseconds idle) {
    Watched w({fixture_path("sw_fixture_asio_echo"), "--shape", shape, "--threads", "4"});
    REQUIRE(w.port > 0);

    // Threads register at their first handler: some traffic first, so that
    // the idle time below is spent by registered threads.
    CHECK(echo_load(w.port, 4, 500ms) > 0);
    std::this_thread::sleep_for(idle);
    const auto idle_workers = workers(w.status(), prefix);  // (registered, parked)
    CHECK(idle_workers.first >= 2);
    CHECK(idle_workers.second == idle_workers.first);
    CHECK(w.stalls().empty());

    const long echoed = echo_load(w.port, 4, 3s);
    MESSAGE(shape << ": " << echoed << " lines echoed in 3 s");
    CHECK(echoed > 1000);
    const auto loaded_workers = workers(w.status(), prefix);
    CHECK(loaded_workers.first >= idle_workers.first);
    CHECK(loaded_workers.second == loaded_workers.first);
    CHECK(w.stalls().empty());

    int s = connect_to(w.port);
    REQUIRE(s >= 0);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(exchange(s, "block\n", "42 block\n"));
    ::close(s);
    CHECK(std::chrono::steady_clock::now() - t0 >= 1900ms);
    REQUIRE(wait_for_event(w.events, "recovered", 5s));

    auto events = read_events(w.events);
    auto stalls = events_of(events, "stall");
    REQUIRE(stalls.size() == 1);
    INFO("stack: " << frame_names(stalls[0]));
    CHECK(stalls[0]["thread.name"].get<std::string>().rfind(prefix, 0) == 0);
    CHECK(stalls[0]["stallwatch.thread.syscall"] == "futex");
    CHECK(has_frame(stalls[0], "wait_for_answer", marker_line("asio-block", "adapters/asio_echo.cpp")));
    for (const auto& u : events_of(events, "stall_update")) CHECK(u["thread.id"] == stalls[0]["thread.id"]);
    auto recovered = events_of(events, "recovered");
    REQUIRE(recovered.size() == 1);
    CHECK(recovered[0]["thread.id"] == stalls[0]["thread.id"]);
    const double ms = recovered[0].value("stallwatch.stall.duration_ms", 0.0);
    CHECK(ms >= 1700.0);
    CHECK(ms <= 2600.0);

    auto status = w.child.finish(15s);
    REQUIRE(status);
    CHECK(WIFEXITED(*status));
}

// The libuv fixture in `mode`, to its end; returns its output lines.
struct UvRun {
    std::vector<std::string> lines;
    std::vector<nlohmann::json> events;
    std::string status_mid_run;  // `stallwatch status` a second in
    std::string status_later;    // and 300 ms later
};

// The PROGRESS column of the status line of the worker called `name`.
long progress_of(const std::string& status, const std::string& name) {
    std::istringstream in(status);
    for (std::string line; std::getline(in, line);) {
        // SLOT TID STATE PROGRESS ... NAME: the name is last.
        std::istringstream cols(line);
        std::string slot, tid, state, n;
        long progress = -1;
        if (!(cols >> slot >> tid >> state >> progress)) continue;
        for (std::string f; cols >> f;) n = f;
        if (n == name) return progress;
    }
    return -1;
}

UvRun uv_mode(const std::string& mode) {
    Watched w({fixture_path("sw_fixture_uv_loop"), "--mode", mode});
    UvRun r;
    if (mode != "alive") {
        std::this_thread::sleep_for(1s);
        r.status_mid_run = w.status();
        std::this_thread::sleep_for(300ms);
        r.status_later = w.status();
    }
    while (auto line = w.child.read_line(15s)) r.lines.push_back(*line);
    auto status = w.child.finish(15s);
    REQUIRE(status);
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 0);
    r.events = read_events(w.events);
    return r;
}

std::optional<long> line_field(const std::vector<std::string>& lines, const std::string& first_word,
                               const std::string& key) {
    for (const auto& l : lines)
        if (l.rfind(first_word + " ", 0) == 0) return field(l, key);
    return std::nullopt;
}

// "ran <ms> iterations=<n>": the milliseconds uv_run() took.
std::optional<long> ran_ms(const std::vector<std::string>& lines) {
    for (const auto& l : lines)
        if (l.rfind("ran ", 0) == 0) return std::stol(l.substr(4));
    return std::nullopt;
}

bool closed_cleanly(const std::vector<std::string>& lines) {
    return std::find(lines.begin(), lines.end(), "closed 0") != lines.end();
}

}  // namespace

TEST_CASE("asio, one io_context run by 4 threads: idle for 10 s and under load nothing is reported, and a handler "
          "blocked 2 s on std::future::get is, on its own thread, at wait_for_answer") {
    asio_shape("pool", "io-", 10s);
}

TEST_CASE("asio, boost::asio::thread_pool of 4: idle and loaded threads are never reported, and the blocked "
          "handler's thread is") {
    asio_shape("thread_pool", "pool-", 2s);
}

TEST_CASE("asio, one io_context per thread (4): each context's thread is a worker, and only the blocked one is "
          "reported") {
    asio_shape("per-thread", "ctx", 2s);
}

TEST_CASE("libuv: a timer callback that blocks 1 s is reported at blocking_timer_cb, then recovered") {
    auto r = uv_mode("block");
    auto stalls = events_of(r.events, "stall");
    REQUIRE(stalls.size() == 1);
    INFO("stack: " << frame_names(stalls[0]));
    CHECK(stalls[0]["thread.name"] == "uv-loop");
    CHECK(has_frame(stalls[0], "blocking_timer_cb", marker_line("uv-block", "adapters/uv_loop.c")));
    auto recovered = events_of(r.events, "recovered");
    REQUIRE(recovered.size() == 1);
    const double ms = recovered[0].value("stallwatch.stall.duration_ms", 0.0);
    CHECK(ms >= 800.0);
    CHECK(ms <= 1500.0);
    CHECK(closed_cleanly(r.lines));
}

TEST_CASE("libuv: an idle loop is parked between its timers and never reported") {
    auto r = uv_mode("idle");
    const auto mid = workers(r.status_mid_run, "uv-loop");  // (registered, parked)
    CHECK(mid.first == 1);
    CHECK(mid.second == 1);
    CHECK(events_of(r.events, "stall").empty());
    CHECK(line_field(r.lines, "ran", "iterations").value_or(0) >= 10);
    CHECK(closed_cleanly(r.lines));
}

TEST_CASE("libuv: a loop kept busy by an idle handle (zero-timeout polling) ticks every iteration and is never "
          "reported") {
    auto r = uv_mode("busy");
    INFO(r.status_mid_run << r.status_later);
    CHECK(workers(r.status_mid_run, "uv-loop").first == 1);
    // It parks only for the instant of each zero-timeout poll: its counter
    // moves by thousands between two reads.
    CHECK(progress_of(r.status_later, "uv-loop") > progress_of(r.status_mid_run, "uv-loop") + 1000);
    CHECK(events_of(r.events, "stall").empty());
    CHECK(line_field(r.lines, "ran", "iterations").value_or(0) > 10000);
    CHECK(closed_cleanly(r.lines));
}

TEST_CASE("libuv: the adapter does not keep a loop alive, and its handles close with the loop") {
    auto r = uv_mode("alive");
    std::string all;
    for (const auto& l : r.lines) all += l + "\n";
    INFO(all);
    auto ran = ran_ms(r.lines);
    REQUIRE(ran.has_value());
    CHECK(*ran < 200);  // uv_run returned at once: nothing but the adapter was left
    CHECK(closed_cleanly(r.lines));
    CHECK(events_of(r.events, "stall").empty());
}

namespace {

// A pool of 2 (asio_echo, shape pool) whose two handlers both block 3 s; a
// third request sent 500 ms into the block: its round trip, in ms.
double third_request_ms(bool compensate) {
    std::vector<std::string> argv{fixture_path("sw_fixture_asio_echo"), "--shape", "pool", "--threads", "2",
                                  "--block-ms", "3000"};
    if (compensate) argv.insert(argv.end(), {"--compensate", "1", "--compensate-ms", "100"});
    Child fx(argv);
    auto ready = fx.read_line(15s);
    REQUIRE(ready.has_value());
    const int port = static_cast<int>(field(*ready, "port").value_or(-1));
    REQUIRE(port > 0);
    std::vector<std::thread> blockers;
    std::atomic<int> answered{0};
    for (int i = 0; i < 2; ++i)
        blockers.emplace_back([&] {
            int s = connect_to(port);
            if (s >= 0 && exchange(s, "block\n", "42 block\n")) ++answered;
            if (s >= 0) ::close(s);
        });
    std::this_thread::sleep_for(500ms);
    const auto t0 = std::chrono::steady_clock::now();
    int s = connect_to(port);
    REQUIRE(s >= 0);
    CHECK(exchange(s, "hello\n", "hello\n"));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ::close(s);
    for (auto& t : blockers) t.join();
    CHECK(answered == 2);
    auto status = fx.finish(15s);
    REQUIRE(status.has_value());
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 0);
    return ms;
}

}  // namespace

TEST_CASE("asio compensation: with both threads of a pool of 2 blocked for 3 s, a third request is answered "
          "within 200 ms by an extra thread, and only after the block without compensation") {
    const double with = third_request_ms(true);
    const double without = third_request_ms(false);
    MESSAGE("third request: " << with << " ms with compensation, " << without << " ms without");
    CHECK(with < 200.0);
    CHECK(without > 2000.0);
}


TEST_CASE("asio compensation under stallwatch run: the episode is reported with its group, extra threads and "
          "length, and the two blocked pool threads as stalls") {
    // A 300 ms threshold: the two blocks, sent together, are both in their
    // handlers long before it, so the episode is of the two of them.
    Watched w({fixture_path("sw_fixture_asio_echo"), "--shape", "pool", "--threads", "2", "--block-ms", "3000",
               "--compensate", "1", "--compensate-ms", "300"});
    // A second monitor, in text, on the same process.
    const std::string text = w.dir.file("report.txt");
    Child text_sw({stallwatch_binary(), "attach", std::to_string(w.pid), "--threshold", "200ms", "-o", text});
    REQUIRE(poll_until([&] { return run({stallwatch_binary(), "status", std::to_string(w.pid)}).exit_code == 0; },
                       5s, 50ms));
    std::this_thread::sleep_for(300ms);  // the text monitor has read the table once
    std::vector<std::thread> blockers;
    for (int i = 0; i < 2; ++i)
        blockers.emplace_back([&] {
            int s = connect_to(w.port);
            if (s >= 0) {
                CHECK(exchange(s, "block\n", "42 block\n"));
                ::close(s);
            }
        });
    std::this_thread::sleep_for(800ms);
    int s = connect_to(w.port);
    REQUIRE(s >= 0);
    CHECK(exchange(s, "hello\n", "hello\n"));
    ::close(s);
    for (auto& t : blockers) t.join();
    REQUIRE(poll_until(
        [&] {
            for (const auto& e : events_of(read_events(w.events), "compensation"))
                if (e["stallwatch.compensation.phase"] == "end") return true;
            return false;
        },
        5s, 50ms));

    auto events = read_events(w.events);
    auto comp = events_of(events, "compensation");
    REQUIRE(comp.size() == 2);
    CHECK(comp[0]["stallwatch.compensation.phase"] == "begin");
    CHECK(comp[1]["stallwatch.compensation.phase"] == "end");
    for (const auto& c : comp) {
        CHECK(c["stallwatch.group.name"] == "io");
        CHECK(c["stallwatch.compensation.episode"] == 1);
        CHECK(c["stallwatch.compensation.threshold_ms"] == 300);
    }
    CHECK(comp[1]["stallwatch.compensation.extra_threads_peak"] == 1);
    const double ms = comp[1].value("stallwatch.compensation.duration_ms", 0.0);
    CHECK(ms >= 1800.0);  // from 300 ms into the 3 s block to its end, read at the monitor's interval
    CHECK(ms <= 3500.0);
    auto stalls = events_of(events, "stall");
    CHECK(stalls.size() == 2);
    for (const auto& st : stalls) {
        const std::string name = st["thread.name"];
        CHECK(name.rfind("io-", 0) == 0);
        CHECK(name.find("extra") == std::string::npos);
    }
    ::kill(text_sw.pid(), SIGTERM);
    CHECK(text_sw.finish(10s).has_value());
    const std::string report = slurp(text);
    INFO(report);
    CHECK(report.find("COMPENSATION #1 begins: group \"io\" of pid " + std::to_string(w.pid) +
                      ": every running worker made no progress for 300ms") != std::string::npos);
    CHECK(report.find("COMPENSATION #1 ended: group \"io\" of pid " + std::to_string(w.pid)) != std::string::npos);
    CHECK(report.find("with up to 1 extra thread(s)") != std::string::npos);
    auto status = w.child.finish(15s);
    REQUIRE(status.has_value());
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 0);
    auto v = run({"/usr/bin/python3", std::string(STALLWATCH_SOURCE_DIR) + "/tests/support/validate-events.py",
                  std::string(STALLWATCH_SOURCE_DIR) + "/docs/json-events.schema.json", w.events});
    INFO(v.out << v.err);
    CHECK(v.exit_code == 0);
}
