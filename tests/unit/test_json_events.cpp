// JSON events within --max-event-bytes, from report values: what is left
// out first, what always stays, and how the event says so.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/options.hpp"
#include "report/json.hpp"
#include "report/writer.hpp"

using namespace sw;
using json = nlohmann::json;

namespace {

const std::string app = "/srv/app/bin/server";

symbolize::Frame frame(std::string fn, std::string module, std::string file = "", int line = 0) {
    symbolize::Frame f;
    f.function = std::move(fn);
    f.module = std::move(module);
    f.pc = 0x7f0000001000;
    f.module_offset = 0x1000;
    if (!file.empty()) f.location = symbolize::SourceLocation{std::move(file), line, 3};
    return f;
}
symbolize::Frame app_frame(std::string fn, int line) {
    return frame(std::move(fn), app, "/srv/app/src/server.cpp", line);
}
symbolize::Frame libc_frame(std::string fn) { return frame(std::move(fn), "/lib/x86_64-linux-gnu/libc.so.6"); }
symbolize::Frame runtime_frame(std::string fn) {
    return frame(std::move(fn), "/usr/lib/x86_64-linux-gnu/libevent-2.1.so.7");
}

report::StallReport report_with(std::vector<symbolize::Frame> frames) {
    report::StallReport r;
    r.event.kind = detect::EventKind::stall;
    r.event.worker.tid = 4242;
    r.event.worker.name = "worker-7";
    r.event.episode = 1;
    r.event.report = 1;
    r.target.pid = 4200;
    r.target.process_name = "server";
    r.target.executable = app;
    r.target.app_name = "server";
    r.unix_ns = 1'790'000'000'000'000'000ULL;
    r.thread.state = 'S';
    r.frames = std::move(frames);
    return r;
}

// A stack 200 frames deep: clock_nanosleep < nanosleep < sleep (libc),
// handle_request (the first application frame, index 3), 196 frames of a
// recursive descend, then start_thread and clone3.
report::StallReport deep_report() {
    std::vector<symbolize::Frame> f{libc_frame("clock_nanosleep"), libc_frame("nanosleep"), libc_frame("sleep"),
                                    app_frame("handle_request", 61)};
    for (int i = 0; i < 194; ++i) f.push_back(app_frame("descend", 152));
    f.push_back(libc_frame("start_thread"));
    f.push_back(libc_frame("clone3"));
    return report_with(std::move(f));
}

std::set<std::size_t> indices(const json& j) {
    std::set<std::size_t> s;
    for (const auto& f : j["frames"]) s.insert(f["index"].get<std::size_t>());
    return s;
}

}  // namespace

TEST_CASE("a stack event within the limit is written whole, with its stack trace as one string") {
    auto r = deep_report();
    r.frames.resize(28);
    const std::string line = report::stack_event_line(r, report::default_max_event_bytes);
    CHECK(line == report::stack_event_line(r, 0));
    const json j = json::parse(line);
    CHECK(j["frames"].size() == 28);
    CHECK(j["stallwatch.stack.frames_dropped"] == 0);
    CHECK(j["stallwatch.stack.truncated"].is_null());
    CHECK_FALSE(j.contains("stallwatch.strings_cut"));
    const std::string trace = j["code.stacktrace"].get<std::string>();
    CHECK(trace.rfind("clock_nanosleep (libc.so.6+0x1000)\nnanosleep (libc.so.6+0x1000)\nsleep (libc.so.6+0x1000)\n"
                      "handle_request (server.cpp:61)\ndescend (server.cpp:152)\n", 0) == 0);
    CHECK(std::count(trace.begin(), trace.end(), '\n') == 27);
}

TEST_CASE("a 200-frame stack fits the default limit and keeps the innermost frame, the first application frame "
          "and its neighbours") {
    const auto r = deep_report();
    const std::string whole = report::stack_event_line(r, 0);
    REQUIRE(whole.size() + 1 > report::default_max_event_bytes);
    const std::string line = report::stack_event_line(r, report::default_max_event_bytes);
    CHECK(line.size() + 1 <= report::default_max_event_bytes);
    const json j = json::parse(line);
    const auto kept = indices(j);
    for (std::size_t i : {0, 1, 2, 3, 4, 5, 6}) CHECK_MESSAGE(kept.count(i) == 1, "frame " << i << " left out");
    CHECK(j["frames"][3]["code.function.name"] == "handle_request");
    // The rest is left out from the outer end: what stays is one run from the innermost frame.
    CHECK(*kept.rbegin() == kept.size() - 1);
    const std::size_t dropped = 200 - kept.size();
    CHECK(j["stallwatch.stack.frames_dropped"] == dropped);
    CHECK(j["stallwatch.stack.truncated"] ==
          std::to_string(dropped) + " of 200 frames left out to fit --max-event-bytes 16384");
    CHECK_FALSE(j.contains("stallwatch.strings_cut"));
    // The identity of the stack is the whole stack's.
    CHECK(j["stallwatch.stack.fingerprint"] == json::parse(whole)["stallwatch.stack.fingerprint"]);
    const std::string trace = j["code.stacktrace"].get<std::string>();
    CHECK(trace.size() > 100);
    CHECK(trace.substr(trace.rfind('\n') + 1) == "... " + std::to_string(dropped) + " frames left out");
    // Close to the limit: no more frames were left out than needed.
    CHECK(line.size() + 1 > report::default_max_event_bytes - 600);
}

TEST_CASE("the middles of runtime runs go before application frames, and the stack says why it stops early") {
    // libc, 11 application frames (the first at 1), 100 frames of an event
    // loop, 8 application frames, start_thread, clone3: 122 frames.
    std::vector<symbolize::Frame> f{libc_frame("epoll_wait")};
    for (int i = 1; i <= 11; ++i) f.push_back(app_frame("app_" + std::to_string(i), i));
    for (int i = 12; i <= 111; ++i) f.push_back(runtime_frame("event_process_active"));
    for (int i = 112; i <= 119; ++i) f.push_back(app_frame("outer_" + std::to_string(i), i));
    f.push_back(libc_frame("start_thread"));
    f.push_back(libc_frame("clone3"));
    auto r = report_with(std::move(f));
    r.stopped_early = "stopped at 122 frames (--max-frames)";
    const json j = json::parse(report::stack_event_line(r, report::default_max_event_bytes));
    const auto kept = indices(j);
    // Every application frame stays, and the runtime frames next to them.
    for (std::size_t i = 0; i <= 12; ++i) CHECK_MESSAGE(kept.count(i) == 1, "frame " << i << " left out");
    for (std::size_t i = 111; i <= 120; ++i) CHECK_MESSAGE(kept.count(i) == 1, "frame " << i << " left out");
    // Of the run's middle (13..110), what stays is its inner part: it went from the outer end.
    std::size_t middle_kept = 0;
    for (std::size_t i = 13; i <= 110; ++i) middle_kept += kept.count(i);
    CHECK(middle_kept < 98);
    for (std::size_t i = 13; i < 13 + middle_kept; ++i) CHECK_MESSAGE(kept.count(i) == 1, "frame " << i << " left out");
    CHECK(j["stallwatch.stack.frames_dropped"] == 122 - kept.size());
    CHECK(j["stallwatch.stack.truncated"].get<std::string>().rfind(
              "stopped at 122 frames (--max-frames); ", 0) == 0);
    CHECK(j["code.stacktrace"].get<std::string>().find("\nevent_process_active (libevent-2.1.so.7+0x1000)\n... ") !=
          std::string::npos);
}

TEST_CASE("enormous names are cut, at UTF-8 boundaries, once leaving out frames is not enough") {
    auto r = deep_report();
    std::string huge_utf8;
    for (int i = 0; i < 3000; ++i) huge_utf8 += "\xC3\xA9";  // é
    for (auto& f : r.frames) {
        f.function += std::string(5000, 'x');
        f.location = symbolize::SourceLocation{"/src/" + huge_utf8 + ".cpp", 7, 0};
    }
    r.target.app_name = std::string(10000, 's');
    r.event.worker.name = huge_utf8;
    for (std::size_t limit : {report::default_max_event_bytes, report::min_max_event_bytes}) {
        CAPTURE(limit);
        const std::string line = report::stack_event_line(r, limit);
        CHECK(line.size() + 1 <= limit);
        CHECK(line.find("\xEF\xBF\xBD") == std::string::npos);  // no U+FFFD: no sequence was split
        CHECK(line.find("\\ufffd") == std::string::npos);
        const json j = json::parse(line);
        CHECK(j["stallwatch.strings_cut"].get<std::size_t>() > 0);
        CHECK(j["stallwatch.stack.frames_dropped"].get<std::size_t>() == 200 - j["frames"].size());
        CHECK(j["stallwatch.stack.truncated"].get<std::string>().find("frames left out") != std::string::npos);
        CHECK(j["stallwatch.stack.fingerprint"].get<std::string>().size() == 16);
        CHECK(j["thread.id"] == 4242);
        // The first application frame is the last to go.
        const auto kept = indices(j);
        CHECK(kept.count(3) == 1);
        const std::string fn = j["frames"][kept.count(0) + kept.count(1) + kept.count(2)]["code.function.name"];
        CHECK(fn.rfind("handle_requestxxx", 0) == 0);
        CHECK(fn.size() < 300);
        CHECK(fn.substr(fn.size() - 3) == "\xE2\x80\xA6");  // …
        if (limit == report::default_max_event_bytes)
            for (std::size_t i : {0, 1, 2, 3, 4, 5, 6}) CHECK_MESSAGE(kept.count(i) == 1, "frame " << i << " left out");
    }
}

TEST_CASE("with no limit nothing is left out") {
    const auto r = deep_report();
    const json j = json::parse(report::stack_event_line(r, 0));
    CHECK(j["frames"].size() == 200);
    CHECK(j["stallwatch.stack.frames_dropped"] == 0);
}

TEST_CASE("absent values are null, never empty strings") {
    auto r = deep_report();
    r.target.app_name.clear();  // dump --all-threads of a process without a table
    r.event.worker.name.clear();
    r.event.kind = detect::EventKind::sample;
    r.registered = false;
    r.frames.clear();
    r.capture_error = "thread exited";
    std::ostringstream out;
    auto w = report::make_writer(report::Format::json, out);
    w->stall(r);
    const json j = json::parse(out.str());
    CHECK(j["service.name"].is_null());
    CHECK(j["thread.name"].is_null());
    CHECK(j["code.stacktrace"].is_null());
    CHECK(j["stallwatch.stack.fingerprint"].is_null());
    CHECK(j["frames"].empty());
    for (auto it = j.begin(); it != j.end(); ++it) CHECK_MESSAGE(it.value() != "", it.key() << " is \"\"");
}

TEST_CASE("--max-event-bytes: every command that writes JSON events, 0 or at least the minimum") {
    auto parse = [](std::vector<std::string> args) {
        args.insert(args.begin(), "stallwatch");
        return sw::cli::parse_command_line(args);
    };
    auto attach = std::get<sw::cli::AttachOptions>(std::get<sw::cli::Options>(parse({"attach", "7"})).command);
    CHECK(attach.out.max_event_bytes == 16384);
    attach = std::get<sw::cli::AttachOptions>(
        std::get<sw::cli::Options>(parse({"attach", "7", "--max-event-bytes", "0"})).command);
    CHECK(attach.out.max_event_bytes == 0);
    auto dump = std::get<sw::cli::DumpOptions>(
        std::get<sw::cli::Options>(parse({"dump", "7", "--max-event-bytes", "65536"})).command);
    CHECK(dump.out.max_event_bytes == 65536);
    auto run = std::get<sw::cli::RunOptions>(
        std::get<sw::cli::Options>(parse({"run", "--max-event-bytes", "2048", "--", "true"})).command);
    CHECK(run.out.max_event_bytes == 2048);
    for (std::string bad : {"2047", "1", "-5", "16k", ""}) {
        auto r = parse({"attach", "7", "--max-event-bytes", bad});
        auto* e = std::get_if<sw::cli::EarlyExit>(&r);
        REQUIRE_MESSAGE(e, bad);
        CHECK(e->code == 64);
    }
}

TEST_CASE("the deepest stack --max-frames allows (4096 frames) fits too") {
    auto r = deep_report();
    while (r.frames.size() < 4096) r.frames.insert(r.frames.begin() + 4, app_frame("descend", 152));
    const std::string line = report::stack_event_line(r, report::default_max_event_bytes);
    CHECK(line.size() + 1 <= report::default_max_event_bytes);
    const json j = json::parse(line);
    CHECK(j["stallwatch.stack.frames_dropped"].get<std::size_t>() == 4096 - j["frames"].size());
    CHECK(j["frames"][3]["code.function.name"] == "handle_request");
}
