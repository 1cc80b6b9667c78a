// libstallwatch-preload.so on real programs from Debian, unmodified:
// redis-server, python3 asyncio, node, memcached and nginx. Each is started
// the way its users start it, watched, left idle, put under loopback load,
// and (where it has a way to) made to block.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <dirent.h>
#include <filesystem>
#include <fstream>
#include <thread>

#include "preload/preload_run.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/threads.hpp"

using namespace sw::test;

namespace {

std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> out;
    for (const auto& d : std::filesystem::directory_iterator("/proc")) {
        std::string name = d.path().filename();
        if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
        std::ifstream st(d.path() / "stat");
        std::string line;
        std::getline(st, line);
        auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        char state;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (ppid == parent) out.push_back(std::stoi(name));
    }
    return out;
}

int count_workers(const std::string& status) {
    int n = 0;
    std::istringstream in(status);
    for (std::string line; std::getline(in, line);)
        n += line.find(" parked ") != std::string::npos || line.find(" running ") != std::string::npos;
    return n;
}

pid_t watched_pid(const std::string& events_file) {
    auto attached = events_of(read_events(events_file), "attached");
    REQUIRE(!attached.empty());
    return attached[0]["process.pid"].get<pid_t>();
}

}  // namespace

TEST_CASE("redis-server: DEBUG SLEEP 1.5 is one stall of the main thread in debugCommand, recovered 1.5 s "
          "later, and idle or under redis-benchmark nothing is reported") {
    TempDir dir("sw-redis");
    const std::string out = dir.file("events.json");
    const int port = free_port();
    Child redis({stallwatch_binary(), "run", "--preload", "-f", "json", "-o", out, "--", "/usr/bin/redis-server",
                 "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--enable-debug-command", "yes", "--dir", dir.path.string(), "--logfile", dir.file("redis.log")});
    REQUIRE_MESSAGE(wait_for_event(out, "attached", 15s), "no table from redis-server under the preload");
    REQUIRE(port_open(port, 10s));
    const pid_t pid = watched_pid(out);
    const std::string p = std::to_string(port);

    std::this_thread::sleep_for(10s);  // idle
    CHECK(events_of(read_events(out), "stall").empty());

    auto slept = run({"/usr/bin/redis-cli", "-p", p, "DEBUG", "SLEEP", "1.5"}, 20s);
    CHECK(slept.out == "OK\n");
    REQUIRE(wait_for_event(out, "recovered", 5s));
    auto events = read_events(out);
    auto stalls = events_of(events, "stall");
    REQUIRE(stalls.size() == 1);
    INFO("stack: " << frame_names(stalls[0]));
    CHECK(stalls[0]["thread.id"] == pid);
    CHECK(has_frame(stalls[0], "debugCommand"));
    CHECK(has_frame(stalls[0], "aeMain"));
    for (const auto& u : events_of(events, "stall_update")) CHECK(u["stallwatch.episode"] == 1);
    auto recovered = events_of(events, "recovered");
    REQUIRE(recovered.size() == 1);
    double ms = recovered[0].value("stallwatch.stall.duration_ms", 0.0);
    CHECK(ms >= 1300.0);
    CHECK(ms <= 2500.0);

    auto bench = run({"/usr/bin/redis-benchmark", "-q", "-p", p, "-t", "set,get", "-n", "200000"}, 120s);
    INFO("redis-benchmark: " << bench.out << bench.err);
    CHECK(bench.exit_code == 0);
    CHECK(bench.out.find("requests per second") != std::string::npos);
    CHECK(events_of(read_events(out), "stall").size() == 1);  // still only DEBUG SLEEP's

    run({"/usr/bin/redis-cli", "-p", p, "SHUTDOWN", "NOSAVE"}, 10s);
    CHECK(redis.finish(15s).has_value());
}

TEST_CASE("python3 asyncio: a coroutine in time.sleep(1) is reported in clock_nanosleep under time_sleep, and "
          "the loop idle in asyncio.sleep never is") {
    TempDir dir("sw-asyncio");
    const std::string out = dir.file("events.json"), script = dir.file("service.py");
    std::ofstream(script) << "import asyncio, time\n"
                             "async def blocking_handler():\n"
                             "    time.sleep(1)\n"
                             "async def main():\n"
                             "    await asyncio.sleep(3)\n"
                             "    await blocking_handler()\n"
                             "    await asyncio.sleep(0.5)\n"
                             "asyncio.run(main())\n";
    auto r = run({stallwatch_binary(), "run", "--preload", "-f", "json", "-o", out, "--", "/usr/bin/python3", script},
                 60s);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    auto events = read_events(out);
    REQUIRE(!events_of(events, "attached").empty());
    const pid_t pid = watched_pid(out);
    auto stalls = events_of(events, "stall");
    REQUIRE(stalls.size() == 1);  // not the 3.5 s in asyncio.sleep
    INFO("stack: " << frame_names(stalls[0]));
    CHECK(stalls[0]["thread.id"] == pid);
    CHECK(stalls[0]["stallwatch.thread.syscall"] == "clock_nanosleep");
    bool time_sleep = false;
    for (const auto& f : stalls[0]["frames"])
        time_sleep = time_sleep || (f["code.function.name"].is_string() &&
                                    f["code.function.name"].get<std::string>().rfind("time_sleep", 0) == 0);
    CHECK(time_sleep);
    CHECK(events_of(events, "recovered").size() == 1);
}

TEST_CASE("node: a setTimeout callback that spins 1 s is reported, unwound as far as it honestly goes, idle node "
          "never is, and libuv's threadpool threads are never registered") {
    TempDir dir("sw-node");
    const std::string out = dir.file("events.json"), script = dir.file("service.js");
    std::ofstream(script) << "const fs = require('fs');\n"
                             "function spin(ms) { const end = Date.now() + ms; while (Date.now() < end) {} }\n"
                             "fs.readFile('/etc/hostname', () => {\n"
                             "  console.log('ready');\n"
                             "  setTimeout(function blockTheLoop() { spin(1000); }, 2500);\n"
                             "  setTimeout(() => {}, 4000);\n"
                             "});\n";
    Child node({stallwatch_binary(), "run", "--preload", "-f", "json", "-o", out, "--", "/usr/bin/node", script});
    REQUIRE(node.read_line(20s) == std::optional<std::string>("ready"));  // the threadpool has run
    REQUIRE(wait_for_event(out, "attached", 10s));
    const pid_t pid = watched_pid(out);
    std::this_thread::sleep_for(500ms);
    auto status = run({stallwatch_binary(), "status", std::to_string(pid)}, 10s);
    INFO("status: " << status.out);
    auto threads = thread_ids(pid);
    // The main loop, and at most node's own delayed-task loop: never the
    // (at least four) libuv threadpool threads, which wait on a condition
    // variable.
    CHECK(status.out.find(" " + std::to_string(pid) + "  parked") != std::string::npos);
    CHECK(count_workers(status.out) >= 1);
    CHECK(count_workers(status.out) <= 2);
    CHECK(threads.size() >= 6);
    CHECK(node.finish(20s) == std::optional<int>(0));

    auto events = read_events(out);
    auto stalls = events_of(events, "stall");
    REQUIRE(stalls.size() == 1);
    INFO("stack: " << frame_names(stalls[0]));
    CHECK(stalls[0]["thread.id"] == pid);
    CHECK(has_frame(stalls[0], "uv_run"));
    bool timers = false;
    for (const auto& f : stalls[0]["frames"])
        timers = timers || (f["code.function.name"].is_string() &&
                            f["code.function.name"].get<std::string>().find("RunTimers") != std::string::npos);
    CHECK(timers);
    CHECK(events_of(events, "recovered").size() == 1);
}

TEST_CASE("memcached with 4 worker threads (libevent): registered, and idle or under loopback load never "
          "reported") {
    TempDir dir("sw-memcached");
    const std::string out = dir.file("events.json");
    const int port = free_port();
    Child mc({stallwatch_binary(), "run", "--preload", "-f", "json", "-o", out, "--", "/usr/bin/memcached", "-t", "4",
              "-p", std::to_string(port), "-l", "127.0.0.1", "-U", "0", "-u", "root"});
    REQUIRE(wait_for_event(out, "attached", 15s));
    REQUIRE(port_open(port, 10s));
    const pid_t pid = watched_pid(out);
    // memcached names each worker thread from the main thread after creating
    // it, so a worker can reach its first wait still called "memcached"; it
    // is registered again under its name at a later wait (the load below
    // wakes every worker).
    auto mc_workers = [&] {
        auto status = run({stallwatch_binary(), "status", std::to_string(pid)}, 10s);
        int n = 0;
        for (std::size_t at = 0; (at = status.out.find("mc-worker", at)) != std::string::npos; ++at) ++n;
        return std::pair{n, status.out};
    };
    std::this_thread::sleep_for(4s);
    const auto idle = mc_workers();  // (mc-worker names, status)
    INFO("status idle: " << idle.second);
    MESSAGE("mc-worker names seen while idle: " << idle.first << " of 4");
    CHECK(idle.second.find("5 of 256 slots in use (0 running, 5 parked)") != std::string::npos);  // main + 4

    long n = load(4, 3s, [&] {
        thread_local int s = -1;
        if (s < 0) s = connect_to(port);
        if (s < 0) return false;
        bool ok = exchange(s, "set k 0 0 5\r\nhello\r\n", "STORED\r\n") && exchange(s, "get k\r\n", "END\r\n");
        if (!ok) {
            ::close(s);
            s = -1;
        }
        return ok;
    });
    MESSAGE("memcached: " << n << " set+get pairs in 3 s");
    CHECK(n > 1000);
    const auto loaded = mc_workers();
    INFO("status after load: " << loaded.second);
    CHECK(loaded.first == 4);
    CHECK(events_of(read_events(out), "stall").empty());
    ::kill(mc.pid(), SIGTERM);  // run passes it on; memcached exits
    CHECK(mc.finish(15s).has_value());
}

TEST_CASE("nginx master and 2 workers: each worker process has a table (list shows it), and idle or under "
          "loopback load none is reported") {
    TempDir dir("sw-nginx");
    ::chmod(dir.path.c_str(), 0755);
    const int port = free_port();
    std::ofstream(dir.file("nginx.conf")) << "worker_processes 2;\n"
                                             "pid " << dir.file("nginx.pid") << ";\n"
                                             "error_log " << dir.file("error.log") << ";\n"
                                             "events { worker_connections 256; }\n"
                                             "http {\n  access_log off;\n"
                                             "  client_body_temp_path " << dir.file("body") << ";\n"
                                             "  server { listen 127.0.0.1:" << port << ";\n"
                                             "    location / { return 200 \"ok\\n\"; } }\n}\n";
    Child nginx({"/usr/sbin/nginx", "-p", dir.path.string(), "-c", dir.file("nginx.conf"), "-g", "daemon off;"},
                {{"LD_PRELOAD", preload_library()}});
    REQUIRE(port_open(port, 10s));
    std::vector<pid_t> workers;
    REQUIRE(poll_until([&] { return (workers = children_of(nginx.pid())).size() == 2; }, 10s, 50ms));

    // Every worker is listed once it has waited (at once, in epoll_wait).
    std::string listed;
    REQUIRE(poll_until(
        [&] {
            listed = run({stallwatch_binary(), "list"}, 10s).out;
            for (pid_t w : workers)
                if (listed.find(" " + std::to_string(w) + " ") == std::string::npos) return false;
            return true;
        },
        5s, 100ms));
    INFO("list: " << listed);
    CHECK(listed.find(" " + std::to_string(nginx.pid()) + " ") == std::string::npos);  // the master never waits so

    std::vector<std::unique_ptr<Child>> watchers;
    std::vector<std::string> outs;
    for (pid_t w : workers) {
        outs.push_back(dir.file("events-" + std::to_string(w) + ".json"));
        watchers.push_back(std::make_unique<Child>(
            std::vector<std::string>{stallwatch_binary(), "attach", "-f", "json", "-o", outs.back(), std::to_string(w)}));
    }
    for (const auto& o : outs) REQUIRE(wait_for_event(o, "attached", 10s));
    std::this_thread::sleep_for(3s);
    long n = load(4, 3s, [&] {
        int s = connect_to(port);
        if (s < 0) return false;
        bool ok = exchange(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n", "ok\n");
        ::close(s);
        return ok;
    });
    MESSAGE("nginx: " << n << " requests in 3 s");
    CHECK(n > 500);
    for (auto& w : watchers) ::kill(w->pid(), SIGINT);
    for (auto& w : watchers) CHECK(w->finish(10s).has_value());
    for (const auto& o : outs) {
        INFO(o);
        auto events = read_events(o);
        CHECK(events_of(events, "stall").empty());
        CHECK(!events_of(events, "detached").empty());
    }
    ::kill(nginx.pid(), SIGQUIT);
    CHECK(nginx.finish(15s).has_value());
}
