// Statically linked targets (issue 9, item 14): `attach` and `dump` unwind a
// -static (non-PIE: no .eh_frame_hdr) and a -static-pie build of the stall
// fixture down to the thread's entry, name the fixture's frames at their
// lines, classify the C library's frames inside the executable as libc, and
// report no truncation. A stack that really ends early (code without CFI)
// says why.
#include <doctest/doctest.h>

#include <sys/types.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/child.hpp"
#include "support/markers.hpp"
#include "support/process.hpp"
#include "support/text_report.hpp"

using namespace sw::test;
using nlohmann::json;

namespace {

const std::vector<std::string> static_builds = {"sw_fixture_stall_static", "sw_fixture_stall_static_pie"};

// A fixture started with `args`, ready ("ready pid=P victim=T").
struct Ready {
    Child child;
    pid_t pid = -1;
    pid_t victim = -1;

    Ready(const std::string& binary, std::vector<std::string> args) : child(with(binary, std::move(args))) {
        auto line = child.read_line();
        REQUIRE_MESSAGE(line.has_value(), binary << " did not say ready");
        auto p = field(*line, "pid");
        auto v = field(*line, "victim");
        REQUIRE_MESSAGE((p && v), "no pid or victim in: " << *line);
        pid = static_cast<pid_t>(*p);
        victim = static_cast<pid_t>(*v);
        REQUIRE(pid == child.pid());
    }
    static std::vector<std::string> with(const std::string& binary, std::vector<std::string> args) {
        args.insert(args.begin(), fixture(binary));
        return args;
    }
};

// The JSON events of `out` that carry a stack.
std::vector<json> stack_events(const std::string& out) {
    std::vector<json> events;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        auto e = json::parse(line, nullptr, false);
        REQUIRE_MESSAGE(!e.is_discarded(), "not JSON: " << line);
        if (e.contains("frames")) events.push_back(std::move(e));
    }
    return events;
}

std::string basename_of_path(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Whether thread `tid` of `pid` sits in system call `nr` (/proc/.../syscall).
bool in_syscall(pid_t pid, pid_t tid, int nr) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/syscall");
    std::string first;
    return in >> first && first == std::to_string(nr);
}

std::string name_of(const json& f) {
    const auto& n = f["code.function.name"];
    return n.is_string() ? n.get<std::string>() : "";
}
std::string class_of(const json& f) { return f["stallwatch.frame.class"].get<std::string>(); }

std::string describe(const json& frames) {
    std::string s;
    for (const auto& f : frames) s += "  " + name_of(f) + " [" + class_of(f) + "]\n";
    return s;
}

// glibc's names for the frames under the fixture's code and above its
// thread entry, as the static binary's symbol table gives them.
const std::set<std::string> lock_wait = {"__lll_lock_wait"};
const std::set<std::string> mutex_lock = {"__pthread_mutex_lock", "___pthread_mutex_lock", "pthread_mutex_lock"};
const std::set<std::string> thread_start = {"start_thread"};
const std::set<std::string> clone_names = {"__clone3", "clone3", "__clone", "clone"};

// The victim blocked on the mutex at recursion depth 2: glibc's lock wait
// (libc), the fixture's chain at its marker lines (application), glibc's
// thread entry (libc) last; no truncation.
void check_mutex_victim(const json& e) {
    const json& fr = e["frames"];
    INFO("frames:\n" << describe(fr));
    CHECK(e["stallwatch.stack.truncated"].is_null());
    REQUIRE(fr.size() == 11);
    CHECK(lock_wait.count(name_of(fr[0])));
    CHECK(mutex_lock.count(name_of(fr[1])));
    CHECK(class_of(fr[0]) == "libc");
    CHECK(class_of(fr[1]) == "libc");
    struct Expect {
        std::string function;
        int line;
    };
    std::vector<Expect> chain = {{"wait_for_lock", marker_line("mutex")},
                                 {"block_now", marker_line("block_mutex")},
                                 {"descend", marker_line("descend")},
                                 {"descend", marker_line("descend")},
                                 {"descend", marker_line("descend")},
                                 {"handle_request", marker_line("handle_request")},
                                 {"victim_main", marker_line("victim")}};
    for (std::size_t k = 0; k < chain.size(); ++k) {
        const json& f = fr[2 + k];
        INFO("frame " << 2 + k << ": expected " << chain[k].function << " at stall.c:" << chain[k].line);
        CHECK(name_of(f) == chain[k].function);
        CHECK(class_of(f) == "application");
        REQUIRE(f["code.file.path"].is_string());
        CHECK(basename_of_path(f["code.file.path"].get<std::string>()) == "stall.c");
        CHECK(f["code.line.number"] == chain[k].line);
    }
    CHECK(thread_start.count(name_of(fr[9])));
    CHECK(clone_names.count(name_of(fr[10])));
    CHECK(class_of(fr[9]) == "libc");
    CHECK(class_of(fr[10]) == "libc");
}

}  // namespace

TEST_CASE("static builds: attach --once shows the blocked victim's whole stack, libc frames as libc") {
    for (const auto& build : static_builds) {
        SUBCASE(build.c_str()) {
            Ready fx(build, {"--mode", "mutex", "--stall-ms", "3000", "--depth", "2", "--workers", "0"});
            auto r = run({stallwatch_binary(), "attach", std::to_string(fx.pid), "--once", "--threshold", "100ms",
                          "--format", "json"},
                         20s);
            INFO("stdout:\n" << r.out << "stderr:\n" << r.err);
            CHECK_FALSE(r.timed_out);
            CHECK(r.exit_code == 0);
            auto events = stack_events(r.out);
            REQUIRE(events.size() == 1);
            CHECK(events[0]["event"] == "stall");
            CHECK(events[0]["thread.id"] == fx.victim);
            check_mutex_victim(events[0]);

            // The text report: glibc's frames folded, the first application
            // frame marked on the fixture's blocking call.
            Ready again(build, {"--mode", "mutex", "--stall-ms", "3000", "--depth", "2", "--workers", "0"});
            auto t = run({stallwatch_binary(), "attach", std::to_string(again.pid), "--once", "--threshold", "100ms"},
                         20s);
            INFO("text stdout:\n" << t.out);
            auto reports = parse_reports(t.out);
            REQUIRE(reports.size() == 1);
            const auto& rep = reports.front();
            REQUIRE_FALSE(rep.frames.empty());
            CHECK(rep.frames.front().folded);
            auto blocked = rep.find("wait_for_lock");
            REQUIRE(blocked != TextReport::npos);
            CHECK(rep.frames[blocked].first_app);
            CHECK(rep.frames[blocked].line == marker_line("mutex"));
            CHECK(rep.frames.back().folded);
            CHECK(rep.text.find("  ... ") == std::string::npos);  // no truncation line
        }
    }
}

TEST_CASE("static builds: dump unwinds every thread to its entry point") {
    for (const auto& build : static_builds) {
        SUBCASE(build.c_str()) {
            Ready fx(build, {"--mode", "mutex", "--stall-ms", "20000", "--depth", "2", "--workers", "0"});
            // Every thread in glibc: main reading its stdin, the victim on the
            // lock's futex (the blocker sleeps: it holds the lock).
            REQUIRE(poll_until([&] { return in_syscall(fx.pid, fx.victim, 202) && in_syscall(fx.pid, fx.pid, 0); },
                               10s));
            auto r = run({stallwatch_binary(), "dump", std::to_string(fx.pid), "--all-threads", "--format", "json"},
                         20s);
            INFO("stdout:\n" << r.out << "stderr:\n" << r.err);
            CHECK(r.exit_code == 0);
            auto events = stack_events(r.out);
            // main, the blocker, the victim.
            REQUIRE(events.size() == 3);
            bool saw_victim = false;
            for (const auto& e : events) {
                const json& fr = e["frames"];
                INFO("thread " << e["thread.id"] << ":\n" << describe(fr));
                CHECK(e["stallwatch.stack.truncated"].is_null());
                REQUIRE(fr.size() >= 4);
                // The outermost frame is glibc's: _start for the main thread,
                // clone3 for the others; both libc.
                std::string last = name_of(fr.back());
                if (e["thread.id"] == fx.pid) CHECK(last == "_start");
                else CHECK(clone_names.count(last));
                CHECK(class_of(fr.back()) == "libc");
                if (e["thread.id"] == fx.victim) {
                    saw_victim = true;
                    check_mutex_victim(e);
                }
            }
            CHECK(saw_victim);
        }
    }
}

TEST_CASE("a stack that ends under code without unwind information says why") {
    Ready fx("sw_fixture_nocfi", {});
    auto r = run({stallwatch_binary(), "dump", std::to_string(fx.pid), "--format", "json"}, 20s);
    INFO("stdout:\n" << r.out << "stderr:\n" << r.err);
    CHECK(r.exit_code == 0);
    auto events = stack_events(r.out);
    REQUIRE(events.size() == 1);
    const json& fr = events[0]["frames"];
    INFO("frames:\n" << describe(fr));
    REQUIRE(fr.size() >= 2);
    CHECK(name_of(fr.back()) == "nocfi_block");
    // Nothing can be said past nocfi_block: the stack ends there, and says why.
    const auto& truncated = events[0]["stallwatch.stack.truncated"];
    REQUIRE(truncated.is_string());
    CHECK(truncated.get<std::string>() ==
          "no unwind information for the frame at " + fr.back()["stallwatch.frame.address"].get<std::string>());

    auto t = run({stallwatch_binary(), "dump", std::to_string(fx.pid)}, 20s);
    INFO("text:\n" << t.out);
    CHECK(t.out.find("  ... no unwind information for the frame at 0x") != std::string::npos);
}
