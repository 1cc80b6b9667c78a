// Real log pipelines (issue 10, section 4): `stallwatch attach --format json`
// for a stall 200 frames deep, sent through logger(1) to syslog-ng (with
// json-parser) and to rsyslog (with mmjsonparse), each started here as our
// own foreground process with its own configuration, socket, pid and state
// files in a temporary directory. The record each daemon stores is written
// from the fields it parsed, so finding the thread id, the function of the
// first application frame and the fingerprint in it shows the event went
// through whole: one line, within the daemon's message size.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "report/writer.hpp"
#include "support/child.hpp"
#include "support/skip.hpp"
#include "support/temp_dir.hpp"

using namespace sw::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
    REQUIRE(out.good());
}

bool alive(pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) == 0; }

// Waits, bounded, until `path` exists while `daemon` runs: a daemon binds its
// socket when its configuration is loaded, and a datagram sent to the bound
// socket waits there until the daemon reads it.
void wait_for_socket(const Child& daemon, const std::string& path, const std::string& name) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    struct stat st {};
    while (::stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
        REQUIRE_MESSAGE(alive(daemon.pid()), name << " exited before it was ready (its errors are above)");
        REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, name << " did not bind " << path << " in 10 s");
        std::this_thread::sleep_for(10ms);
    }
}

// Waits, bounded, for the first line of `path` that holds `needle`.
std::string wait_for_record(const Child& daemon, const std::string& path, const std::string& needle,
                            const std::string& name) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
        std::istringstream in(slurp(path));
        for (std::string line; std::getline(in, line);)
            if (line.find(needle) != std::string::npos) return line;
        REQUIRE_MESSAGE(alive(daemon.pid()), name << " exited before it stored the event");
        REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                        name << " stored no record with " << needle << " in 10 s; it stored:\n" << slurp(path));
        std::this_thread::sleep_for(20ms);
    }
}

// What stallwatch itself wrote, to compare with what the daemon stored.
struct Sent {
    long tid = 0;             // the victim's, from the fixture
    std::string fingerprint;  // of the stall event
};

// Starts the stall fixture 200 frames deep and sends what `attach --once
// --format json` writes through logger(1) to the unix datagram socket
// `socket`; keeps a copy of the lines in `events`, and checks them: valid
// lines, none over the default --max-event-bytes, a shortened stall event.
Sent send_deep_stall(const std::string& socket, const std::string& events) {
    Child fx({fixture("sw_fixture_stall"), "--depth", "200", "--stall-ms", "4000", "--delay-ms", "50"});
    auto ready = fx.read_line();
    REQUIRE(ready.has_value());
    Sent sent;
    sent.tid = field(*ready, "victim").value_or(0);
    const long pid = field(*ready, "pid").value_or(0);
    REQUIRE(sent.tid > 0);
    // -n 256: the whole stack (about 208 frames), so that the default limit,
    // not --max-frames, decides what goes.
    auto r = run({"/bin/bash", "-c",
                  "set -o pipefail; \"$0\" attach --once --format json -n 256 \"$1\" | tee \"$2\" | "
                  "logger --socket-errors=on -u \"$3\" --size 65536 -t stallwatch",
                  stallwatch_binary(), std::to_string(pid), events, socket},
                 30s);
    INFO("stderr: " << r.err);
    REQUIRE(!r.timed_out);
    REQUIRE(r.exit_code == 0);

    std::istringstream in(slurp(events));
    std::size_t stalls = 0;
    for (std::string line; std::getline(in, line);) {
        CHECK_MESSAGE(line.size() + 1 <= sw::report::default_max_event_bytes,
                      "an event of " << line.size() + 1 << " bytes");
        json j = json::parse(line);
        if (j["event"] != "stall") continue;
        ++stalls;
        CHECK(j["thread.id"] == sent.tid);
        CHECK(j["frames"].size() < 200);  // shortened to fit ...
        CHECK(j["stallwatch.stack.frames_dropped"].get<int>() > 0);  // ... and says so
        sent.fingerprint = j["stallwatch.stack.fingerprint"].get<std::string>();
    }
    REQUIRE(stalls == 1);
    return sent;
}

// The function of the first application frame in a frames array.
std::string first_application_function(const json& frames) {
    for (const auto& f : frames)
        if (f["stallwatch.frame.class"] == "application") return f["code.function.name"].get<std::string>();
    return {};
}

// rsyslogd: a package install, or the package unpacked by
// packaging/install-deps.sh (rsyslog and syslog-ng-core conflict).
struct Rsyslog {
    std::string binary;
    std::string modules;  // "" for the built-in module directory
};
std::optional<Rsyslog> find_rsyslog() {
    if (const char* env = std::getenv("STALLWATCH_RSYSLOGD"); env && *env) return Rsyslog{env, ""};
    if (::access("/usr/sbin/rsyslogd", X_OK) == 0) return Rsyslog{"/usr/sbin/rsyslogd", ""};
    const fs::path root = "/opt/stallwatch-test/rsyslog";
    if (::access((root / "usr/sbin/rsyslogd").c_str(), X_OK) != 0) return std::nullopt;
    std::error_code ec;
    for (const auto& d : fs::directory_iterator(root / "usr/lib", ec))
        if (fs::exists(d.path() / "rsyslog/mmjsonparse.so"))
            return Rsyslog{(root / "usr/sbin/rsyslogd").string(), (d.path() / "rsyslog").string()};
    return std::nullopt;
}

}  // namespace

TEST_CASE("syslog-ng with json-parser stores a deep stall event parsed whole") {
    if (::access("/usr/sbin/syslog-ng", X_OK) != 0)
        SW_SKIP("syslog-ng is not installed (packaging/install-deps.sh installs syslog-ng-core)");
    TempDir tmp("sw-pipeline");
    const std::string socket = tmp.file("log.sock"), out = tmp.file("stored.jsonl");
    // The stored record: the parsed name-value pairs as JSON (format-json
    // nests dotted names: thread.id becomes {"thread":{"id":...}}; the frames
    // array is kept as JSON text).
    write_file(tmp.file("syslog-ng.conf"),
               "@version: 3.38\n"
               "options { log-msg-size(65536); stats-freq(0); };\n"
               "source s_in { unix-dgram(\"" + socket + "\"); };\n"
               "parser p_json { json-parser(prefix(\".sw.\")); };\n"
               "destination d_out { file(\"" + out +
                   "\" template(\"$(format-json --key .sw.* --shift-levels 2)\\n\")); };\n"
               "log { source(s_in); parser(p_json); destination(d_out); };\n");
    Child daemon({"/usr/sbin/syslog-ng", "-F", "-e", "--no-caps", "-f", tmp.file("syslog-ng.conf"),
                  "--persist-file=" + tmp.file("syslog-ng.persist"), "--pidfile=" + tmp.file("syslog-ng.pid"),
                  "--control=" + tmp.file("syslog-ng.ctl")});
    wait_for_socket(daemon, socket, "syslog-ng");

    const Sent sent = send_deep_stall(socket, tmp.file("events.jsonl"));
    const std::string line = wait_for_record(daemon, out, "\"stall\"", "syslog-ng");
    INFO("stored: " << line.substr(0, 600));
    const json rec = json::parse(line);
    CHECK(rec["event"] == "stall");
    CHECK(rec["thread"]["id"] == std::to_string(sent.tid));
    CHECK(rec["stallwatch"]["stack"]["fingerprint"] == sent.fingerprint);
    REQUIRE(rec["frames"].is_string());
    CHECK(first_application_function(json::parse(rec["frames"].get<std::string>())) == "sleep_in_handler");
    CHECK(rec["code"]["stacktrace"].get<std::string>().find("\nsleep_in_handler (stall.c:") != std::string::npos);
}

TEST_CASE("rsyslog with mmjsonparse stores a deep stall event parsed whole") {
    auto rsyslog = find_rsyslog();
    if (!rsyslog)
        SW_SKIP("rsyslogd not found (packaging/install-deps.sh unpacks it into /opt/stallwatch-test/rsyslog)");
    TempDir tmp("sw-pipeline");
    const std::string socket = tmp.file("log.sock"), out = tmp.file("stored.jsonl");
    // maxMessageSize: rsyslog's default (8k) is below stallwatch's default
    // --max-event-bytes; it must come before the inputs. cookie="": the
    // message is plain JSON, without the "@cee:" prefix. The stored record
    // is the parsed tree ($!all-json).
    write_file(tmp.file("rsyslog.conf"),
               "global(maxMessageSize=\"64k\" workDirectory=\"" + tmp.path.string() + "\")\n"
               "module(load=\"imuxsock\" SysSock.Use=\"off\")\n"
               "module(load=\"mmjsonparse\")\n"
               "input(type=\"imuxsock\" Socket=\"" + socket + "\" RateLimit.Interval=\"0\")\n"
               "template(name=\"parsed\" type=\"list\") { property(name=\"$!all-json\") constant(value=\"\\n\") }\n"
               "action(type=\"mmjsonparse\" cookie=\"\")\n"
               "action(type=\"omfile\" file=\"" + out + "\" template=\"parsed\")\n");
    std::vector<std::string> argv{rsyslog->binary, "-n", "-f", tmp.file("rsyslog.conf"), "-i", tmp.file("rsyslog.pid")};
    if (!rsyslog->modules.empty()) {
        argv.push_back("-M");
        argv.push_back(rsyslog->modules);
    }
    Child daemon(argv);
    wait_for_socket(daemon, socket, "rsyslog");

    const Sent sent = send_deep_stall(socket, tmp.file("events.jsonl"));
    const std::string line = wait_for_record(daemon, out, "\"stall\"", "rsyslog");
    INFO("stored: " << line.substr(0, 600));
    const json rec = json::parse(line);
    CHECK(rec["event"] == "stall");
    CHECK(rec["thread.id"] == sent.tid);
    CHECK(rec["stallwatch.stack.fingerprint"] == sent.fingerprint);
    CHECK(first_application_function(rec["frames"]) == "sleep_in_handler");
    CHECK(rec["stallwatch.stack.frames_dropped"].get<int>() > 0);
    CHECK(rec["code.stacktrace"].get<std::string>().find("\nsleep_in_handler (stall.c:") != std::string::npos);
}
