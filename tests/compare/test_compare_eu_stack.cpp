// `stallwatch dump --all-threads` against an independent unwinder, elfutils'
// `eu-stack -p`, on the same threads: our stall fixtures in every build
// (static and static-pie included), and
// two multi-threaded programs this project did not write (CPython, memcached).
//
// Both tools must see the same threads. For each thread, our non-inlined
// frames are aligned by index with eu-stack's (which has no inlined frames):
// the counts must be equal; at every index the addresses must agree (equal, or
// 1 apart: eu-stack may print a caller's pc - 1); where both tools name the
// frame, the functions must be the same after canonicalize() below; and a
// frame eu-stack names must have a name from stallwatch too. Each thread needs
// at least two named frames compared, so a thread one tool could not unwind
// fails. Debian packages needed: elfutils, python3-minimal, memcached, and
// libc6-dbg (without it neither tool names libc's internal functions, and
// memcached's condition-variable threads keep a single named frame).
#include <doctest/doctest.h>

#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/child.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/threads.hpp"

using namespace sw::test;
using nlohmann::json;

namespace {

namespace fs = std::filesystem;

// The first try, then up to this many retries (see check_agreement).
constexpr int kRetries = 3;
// Both tools' output is about a process that must not take long to sample.
constexpr auto kToolTimeout = std::chrono::seconds(15);
// Debuginfod could go to the network: the tests never do.
const std::map<std::string, std::string> kEnv = {{"DEBUGINFOD_URLS", ""}};

// ---- Locating the programs ------------------------------------------------------

// `name` on PATH (then /usr/sbin, /usr/bin), or "" if absent.
std::string find_program(const std::string& name) {
    std::vector<std::string> dirs;
    if (const char* path = ::getenv("PATH")) {
        std::stringstream in(path);
        for (std::string d; std::getline(in, d, ':');)
            if (!d.empty()) dirs.push_back(d);
    }
    dirs.insert(dirs.end(), {"/usr/sbin", "/usr/bin"});
    for (const auto& d : dirs) {
        auto p = d + "/" + name;
        if (::access(p.c_str(), X_OK) == 0) return p;
    }
    return "";
}

// A program the test needs. Missing means the host is not set up: fail, naming
// the Debian package (CI installs it), rather than skip and prove nothing.
std::string require_program(const std::string& path_or_name, const std::string& debian) {
    std::string p = path_or_name.find('/') != std::string::npos
                        ? (::access(path_or_name.c_str(), X_OK) == 0 ? path_or_name : "")
                        : find_program(path_or_name);
    if (p.empty())
        FAIL(path_or_name << " not found: install the Debian package '" << debian
                          << "' (apt-get install " << debian << ", or packaging/install-deps.sh)");
    return p;
}

// ---- Name canonicalisation -------------------------------------------------------

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Drops a trailing C++ parameter list "(...)", with the qualifiers that may
// follow it; "operator()" itself stays.
void strip_parameter_list(std::string& s) {
    for (bool again = true; again;) {
        again = false;
        for (const char* q : {" const", " volatile", " &&", " &", " noexcept"})
            if (ends_with(s, q)) {
                s.erase(s.size() - std::string(q).size());
                again = true;
            }
    }
    if (!ends_with(s, ")")) return;
    int depth = 0;
    for (std::size_t i = s.size(); i-- > 0;) {
        if (s[i] == ')') ++depth;
        else if (s[i] == '(' && --depth == 0) {
            // "operator()" with no parameter list after it: nothing to drop.
            if (i > 0 && ends_with(s.substr(0, i), "operator") && i + 2 == s.size()) return;
            if (i > 0) s.erase(i);
            return;
        }
    }
}

// The function name both tools should agree on. The same function is named
// from different sources: eu-stack from the ELF symbol tables (the .symtab of
// libc6-dbg's file when installed, else .dynsym), stallwatch from DWARF
// (DW_AT_name of the subprogram) when there is debug info. Each rule is a
// difference observed between the two for the same address:
std::string canonicalize(std::string s, const std::string& module) {
    // 1. Symbol versions: the symbol table names glibc's versioned symbols
    //    "clock_nanosleep@GLIBC_2.2.5", "pthread_cond_wait@@GLIBC_2.3.2".
    if (auto at = s.find('@'); at != std::string::npos) s.erase(at);
    // 2. GCC clones: the symbol is "sleep_in_handler.isra.0" (fixtures) or
    //    "__new_sem_wait_slow64.constprop.0" (libc), demangled C++ clones
    //    "f(int) [clone .isra.0]"; DWARF names the source function.
    for (std::size_t c; ends_with(s, "]") && (c = s.rfind(" [clone ")) != std::string::npos;) s.erase(c);
    static const std::regex clone(R"(\.(isra|constprop|part|cold|lto_priv|localalias)(\.[0-9]+)?$)");
    for (std::smatch m; std::regex_search(s, m, clone);) s.erase(static_cast<std::size_t>(m.position(0)));
    // 3. C++: eu-stack demangles the mangled symbol, parameter list included;
    //    DWARF may name the function without it.
    strip_parameter_list(s);
    // 4. glibc's internal aliases: DWARF says "__GI___clock_nanosleep",
    //    "___pthread_cond_wait", "__GI___libc_read" where the symbol table says
    //    "clock_nanosleep", "pthread_cond_wait", "read" (the project's
    //    fingerprint rule, src/report/report.cpp canonical_function, plus the
    //    "libc_" left after it: __libc_read is read's implementation).
    if (s.rfind("__GI_", 0) == 0) s.erase(0, 5);
    if (s.rfind("_Z", 0) != 0) s.erase(0, std::min(s.find_first_not_of('_'), s.size()));
    if (s.rfind("libc_", 0) == 0) s.erase(0, 5);
    // 5. glibc's versioned implementations, in libc only: DWARF names
    //    "__libc_start_main_impl", exported as __libc_start_main@@GLIBC_2.34
    //    (csu/libc-start.c: versioned_symbol (libc, __libc_start_main_impl, ...)).
    if (fs::path(module).filename().string().rfind("libc.so", 0) == 0 && ends_with(s, "_impl"))
        s.erase(s.size() - 5);
    return s;
}

// ---- The two tools' stacks ---------------------------------------------------------

struct OurFrame {
    std::optional<std::string> name;
    std::uint64_t address = 0;
    std::string module;
    bool inlined = false;
};
struct TheirFrame {
    std::optional<std::string> name;
    std::uint64_t address = 0;
};
using OurStacks = std::map<pid_t, std::vector<OurFrame>>;  // all frames, inlined too
using TheirStacks = std::map<pid_t, std::vector<TheirFrame>>;

// One sample of every thread by each tool, or why one could not be taken.
struct Sample {
    OurStacks ours;
    std::map<pid_t, std::string> our_notes;  // capture error, truncation: for the failure message
    TheirStacks theirs;
    std::string error;
};

std::uint64_t hex(const std::string& s) { return std::stoull(s, nullptr, 16); }

std::string parse_stallwatch(const std::string& out, OurStacks& stacks, std::map<pid_t, std::string>& notes) {
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        json j;
        try {
            j = json::parse(line);
        } catch (const json::exception& e) {
            return "stallwatch printed a line that is not JSON (" + std::string(e.what()) + "): " + line;
        }
        if (j.value("event", "") != "sample") return "stallwatch printed an unexpected event: " + line;
        auto tid = j.at("thread.id").get<pid_t>();
        auto& frames = stacks[tid];
        for (const char* key : {"stallwatch.capture_error", "stallwatch.stack.truncated"})
            if (j.contains(key) && j[key].is_string())
                notes[tid] += std::string(key) + ": " + j[key].get<std::string>() + "; ";
        for (const auto& f : j.at("frames")) {
            OurFrame o;
            if (const auto& n = f.at("code.function.name"); n.is_string()) o.name = n.get<std::string>();
            o.address = hex(f.at("stallwatch.frame.address").get<std::string>());
            if (const auto& m = f.at("stallwatch.frame.module"); m.is_string())
                o.module = m.get<std::string>();
            o.inlined = f.at("stallwatch.frame.inlined").get<bool>();
            frames.push_back(std::move(o));
        }
    }
    return "";
}

// eu-stack's text: "PID n - process", then per thread "TID n:" and frames
// "#k  0xADDR name" (no name when the symbol tables have none).
std::string parse_eu_stack(const std::string& out, TheirStacks& stacks) {
    static const std::regex tid_line(R"(^TID ([0-9]+):$)");
    static const std::regex frame_line(R"(^#([0-9]+)\s+0x([0-9a-fA-F]+)(\s+(.*\S))?\s*$)");
    std::istringstream in(out);
    std::vector<TheirFrame>* cur = nullptr;
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (std::regex_match(line, m, tid_line)) {
            cur = &stacks[static_cast<pid_t>(std::stol(m[1]))];
        } else if (std::regex_match(line, m, frame_line)) {
            if (!cur) return "eu-stack printed a frame before any TID line: " + line;
            if (std::stoul(m[1]) != cur->size()) return "eu-stack skipped a frame number: " + line;
            TheirFrame t;
            t.address = hex(m[2]);
            if (m[4].matched) t.name = m[4].str();
            cur->push_back(std::move(t));
        } else if (line.rfind("PID ", 0) != 0 && !line.empty()) {
            return "eu-stack printed a line this test does not know: " + line;
        }
    }
    return "";
}

Sample take_sample(pid_t pid, const std::string& eu_stack) {
    Sample s;
    // One tool after the other: each ptraces the threads, and a thread can
    // have one tracer at a time.
    auto ours = run({stallwatch_binary(), "dump", std::to_string(pid), "--all-threads", "--format", "json"},
                    kToolTimeout, kEnv);
    if (ours.timed_out || ours.exit_code != 0) {
        s.error = "stallwatch dump failed (exit " + std::to_string(ours.exit_code) +
                  (ours.timed_out ? ", timed out" : "") + "): " + ours.err;
        return s;
    }
    if (auto e = parse_stallwatch(ours.out, s.ours, s.our_notes); !e.empty()) {
        s.error = e;
        return s;
    }
    auto theirs = run({eu_stack, "-p", std::to_string(pid)}, kToolTimeout, kEnv);
    if (theirs.timed_out || theirs.exit_code != 0) {
        s.error = "eu-stack failed (exit " + std::to_string(theirs.exit_code) +
                  (theirs.timed_out ? ", timed out" : "") + "): " + theirs.err + "\n" + theirs.out;
        return s;
    }
    if (auto e = parse_eu_stack(theirs.out, s.theirs); !e.empty()) s.error = e;
    return s;
}

// ---- The comparison ----------------------------------------------------------------

std::string show(const std::optional<std::string>& name) { return name ? *name : "(no name)"; }
std::string hexs(std::uint64_t v) {
    std::ostringstream o;
    o << "0x" << std::hex << v;
    return o.str();
}

std::string both_stacks(pid_t tid, const std::vector<OurFrame>& ours, const std::string& note,
                        const std::vector<TheirFrame>& theirs) {
    std::ostringstream o;
    o << "  stallwatch, tid " << tid << " (inlined frames marked [i], not compared)"
      << (note.empty() ? "" : " " + note) << ":\n";
    for (std::size_t i = 0; i < ours.size(); ++i)
        o << "    #" << i << (ours[i].inlined ? " [i] " : "     ") << hexs(ours[i].address) << " "
          << show(ours[i].name) << "  (" << fs::path(ours[i].module).filename().string() << ")\n";
    o << "  eu-stack, tid " << tid << ":\n";
    for (std::size_t i = 0; i < theirs.size(); ++i)
        o << "    #" << i << "     " << hexs(theirs[i].address) << " " << show(theirs[i].name) << "\n";
    return o.str();
}

// Every disagreement of one sample, one entry per thread (with both stacks);
// empty when the tools agree.
std::vector<std::string> disagreements(const Sample& s, std::size_t min_threads) {
    std::vector<std::string> out;
    std::set<pid_t> our_tids, their_tids;
    for (const auto& [tid, f] : s.ours) our_tids.insert(tid);
    for (const auto& [tid, f] : s.theirs) their_tids.insert(tid);
    if (our_tids != their_tids) {
        std::ostringstream o;
        o << "the tools saw different threads: stallwatch";
        for (auto t : our_tids) o << " " << t;
        o << "; eu-stack";
        for (auto t : their_tids) o << " " << t;
        out.push_back(o.str());
        return out;
    }
    if (our_tids.size() < min_threads)
        out.push_back("only " + std::to_string(our_tids.size()) + " threads, expected at least " +
                      std::to_string(min_threads));

    for (const auto& [tid, all] : s.ours) {
        const auto& theirs = s.theirs.at(tid);
        std::vector<OurFrame> ours;
        std::copy_if(all.begin(), all.end(), std::back_inserter(ours),
                     [](const OurFrame& f) { return !f.inlined; });
        std::vector<std::string> problems;
        if (ours.size() != theirs.size())
            problems.push_back(std::to_string(ours.size()) + " physical frames from stallwatch, " +
                               std::to_string(theirs.size()) + " from eu-stack");
        std::size_t compared = 0;
        for (std::size_t i = 0; i < std::min(ours.size(), theirs.size()); ++i) {
            const auto& a = ours[i];
            const auto& b = theirs[i];
            std::uint64_t d = a.address > b.address ? a.address - b.address : b.address - a.address;
            if (d > 1)
                problems.push_back("frame " + std::to_string(i) + ": address " + hexs(a.address) + " vs " +
                                   hexs(b.address));
            // eu-stack names it from a symbol table and we do not: our symbolizer lost a name.
            if (b.name && !a.name)
                problems.push_back("frame " + std::to_string(i) + ": eu-stack names it " + *b.name +
                                   ", stallwatch has no name");
            if (!a.name || !b.name) continue;
            ++compared;
            auto ca = canonicalize(*a.name, a.module), cb = canonicalize(*b.name, a.module);
            if (ca != cb)
                problems.push_back("frame " + std::to_string(i) + ": " + *a.name + " vs " + *b.name +
                                   " (canonical " + ca + " vs " + cb + ")");
        }
        if (compared < 2) {
            std::string hint;
            // Without libc's full symbol table (only .dynsym), neither tool
            // names libc's internal functions (start_thread, __clone3, the
            // futex waits): memcached's condition-variable threads then have
            // one named frame. Say which package brings the names.
            if (std::any_of(ours.begin(), ours.end(), [](const OurFrame& f) {
                    return !f.name && fs::path(f.module).filename().string().rfind("libc.so", 0) == 0;
                }))
                hint = " (libc frames without a name: libc's symbols come with the Debian package "
                       "libc6-dbg, which this test needs: apt-get install libc6-dbg)";
            problems.push_back("only " + std::to_string(compared) +
                               " frame(s) named by both tools; at least 2 are needed" + hint);
        }
        if (!problems.empty()) {
            std::ostringstream o;
            o << "thread " << tid << " disagrees:";
            for (const auto& p : problems) o << "\n  - " << p;
            o << "\n" << both_stacks(tid, all, s.our_notes.count(tid) ? s.our_notes.at(tid) : "", theirs);
            out.push_back(o.str());
        }
    }
    return out;
}

// Samples `pid` with both tools and requires them to agree. The two samples
// are taken one after the other, not at one instant: a thread that moves in
// between (a fixture's busy worker waking from its 1 ms nanosleep to tick, a
// memcached maintenance thread waking from usleep, a Python thread between
// bytecodes) is legitimately seen at two different places. So a disagreement
// takes both samples again, up to kRetries times; one that persists over
// every try is real, and fails with the stacks of the last try.
void check_agreement(pid_t pid, std::size_t min_threads) {
    auto eu_stack = require_program("eu-stack", "elfutils");
    std::vector<std::string> last;
    for (int attempt = 0; attempt <= kRetries; ++attempt) {
        auto s = take_sample(pid, eu_stack);
        last = s.error.empty() ? disagreements(s, min_threads) : std::vector<std::string>{s.error};
        if (last.empty()) {
            if (attempt > 0) MESSAGE("the tools agreed on try " << attempt + 1);
            return;
        }
        if (attempt < kRetries) {
            std::ostringstream o;
            for (const auto& d : last) o << d << "\n";
            MESSAGE("try " << attempt + 1 << " disagreed, sampling again:\n" << o.str());
        }
    }
    for (const auto& d : last) ADD_FAIL_CHECK_AT(__FILE__, __LINE__, d);
    FAIL("stallwatch dump --all-threads and eu-stack -p " << pid << " did not agree on " << 1 + kRetries
                                                        << " tries in a row (above: the last try)");
}

// Polls until `pid` has at least `threads` threads, all asleep ('S'), so that
// the samples find them blocked rather than on their way there; bounded.
void wait_settled(pid_t pid, std::size_t threads, const std::string& what) {
    std::string last;
    bool ok = poll_until(
        [&] {
            auto st = thread_statuses(pid);
            std::ostringstream o;
            for (const auto& t : st) o << t.tid << ":" << t.state << " ";
            last = o.str();
            return st.size() >= threads &&
                   std::all_of(st.begin(), st.end(), [](const ThreadStatus& t) { return t.state == 'S'; });
        },
        std::chrono::seconds(10));
    REQUIRE_MESSAGE(ok, what << " (pid " << pid << ") did not reach " << threads
                             << " sleeping threads in 10 s; last seen: " << last);
}

// ---- Targets -----------------------------------------------------------------------

// A stall fixture: main, 3 busy workers, the victim (blocked 60 s), and in
// mutex mode the thread that holds the lock.
void check_fixture(const std::string& build, const std::string& mode) {
    Child child({fixture(build), "--mode", mode, "--stall-ms", "60000", "--workers", "3"});
    auto line = child.read_line();
    REQUIRE_MESSAGE(line.has_value(), build << " did not say ready");
    auto pid = field(*line, "pid");
    REQUIRE_MESSAGE(pid.has_value(), "no pid in: " << *line);
    REQUIRE(*pid == child.pid());
    std::size_t threads = mode == "mutex" ? 6 : 5;
    wait_settled(child.pid(), threads, build);
    check_agreement(child.pid(), threads);
}

// CPython from Debian (not the python3 first on PATH, which may be pyenv's):
// two threads in time.sleep (clock_nanosleep), one in Event.wait (a semaphore
// wait in libc), the main thread reading stdin.
constexpr const char* kPythonScript = R"(
import os, sys, threading, time
def sleeper(): time.sleep(3600)
def waiter(): threading.Event().wait()
for target in (sleeper, sleeper, waiter):
    threading.Thread(target=target, daemon=True).start()
print("ready pid=%d" % os.getpid(), flush=True)
sys.stdin.read()
)";

// Whether the main thread of `pid` waits in epoll (an event loop's idle state).
bool in_epoll_wait(pid_t pid) {
    std::ifstream wchan("/proc/" + std::to_string(pid) + "/wchan");
    std::string w;
    if (wchan >> w && w == "ep_poll") return true;
    // wchan may be hidden ("0"): the system call number says it too.
    std::ifstream sys("/proc/" + std::to_string(pid) + "/syscall");
    long nr = -1;
    if (!(sys >> nr)) return false;
#ifdef SYS_epoll_wait
    if (nr == SYS_epoll_wait) return true;
#endif
    return nr == SYS_epoll_pwait;
}


}  // namespace

// The rules of canonicalize(), one pair per difference seen between DWARF
// (stallwatch) and the symbol tables (eu-stack); the C++ ones are not reached
// by the programs below (all C), so they are pinned here.
TEST_CASE("canonical function names: the rules the comparison relies on") {
    const std::string libc = "/usr/lib/x86_64-linux-gnu/libc.so.6", app = "/usr/bin/app";
    auto same = [&](const std::string& ours, const std::string& theirs, const std::string& module) {
        INFO(ours << " vs " << theirs);
        CHECK(canonicalize(ours, module) == canonicalize(theirs, module));
    };
    same("__GI___clock_nanosleep", "clock_nanosleep@GLIBC_2.2.5", libc);
    same("___pthread_cond_wait", "pthread_cond_wait@@GLIBC_2.3.2", libc);
    same("___pthread_mutex_lock", "__pthread_mutex_lock@GLIBC_2.2.5", libc);
    same("__GI___libc_read", "read", libc);
    same("__GI___nanosleep", "__nanosleep", libc);
    same("__libc_start_main_impl", "__libc_start_main@@GLIBC_2.34", libc);
    same("__new_sem_wait_slow64", "__new_sem_wait_slow64.constprop.0", libc);
    same("sleep_in_handler", "sleep_in_handler.isra.0", app);
    same("ns::Pool::run", "ns::Pool::run(int, std::vector<int, std::allocator<int> > const&) const", app);
    same("ns::Pool::run", "ns::Pool::run(int) [clone .constprop.0]", app);
    same("ns::Fn::operator()", "ns::Fn::operator()(int)", app);
    same("(anonymous namespace)::work", "(anonymous namespace)::work()", app);
    // ...and what stays different.
    CHECK(canonicalize("busy_main", app) != canonicalize("victim_main", app));
    CHECK(canonicalize("ns::Fn::operator()", app) != canonicalize("ns::Fn::operator", app));
    CHECK(canonicalize("frame_impl", app) != canonicalize("frame", app));  // _impl: libc only
    CHECK(canonicalize("read", libc) != canonicalize("write", libc));
}

TEST_CASE("dump --all-threads agrees with eu-stack: sw_fixture_stall, sleep") {
    check_fixture("sw_fixture_stall", "sleep");
}

TEST_CASE("dump --all-threads agrees with eu-stack: sw_fixture_stall_nofp, sleep") {
    check_fixture("sw_fixture_stall_nofp", "sleep");
}

TEST_CASE("dump --all-threads agrees with eu-stack: sw_fixture_stall_nopie, sleep") {
    check_fixture("sw_fixture_stall_nopie", "sleep");
}

TEST_CASE("dump --all-threads agrees with eu-stack: sw_fixture_stall, mutex") {
    check_fixture("sw_fixture_stall", "mutex");
}

TEST_CASE("dump --all-threads agrees with eu-stack: sw_fixture_stall_nofp, mutex") {
    check_fixture("sw_fixture_stall_nofp", "mutex");
}

// Statically linked: glibc's code inside the executable, unwound from the
// executable's .eh_frame (no .eh_frame_hdr in a non-PIE static link).
TEST_CASE("dump --all-threads agrees with eu-stack: sw_fixture_stall_static, sleep") {
    check_fixture("sw_fixture_stall_static", "sleep");
}

TEST_CASE("dump --all-threads agrees with eu-stack: sw_fixture_stall_static, mutex") {
    check_fixture("sw_fixture_stall_static", "mutex");
}

TEST_CASE("dump --all-threads agrees with eu-stack: sw_fixture_stall_static_pie, sleep") {
    check_fixture("sw_fixture_stall_static_pie", "sleep");
}

TEST_CASE("dump --all-threads agrees with eu-stack: sw_fixture_stall_static_pie, mutex") {
    check_fixture("sw_fixture_stall_static_pie", "mutex");
}

TEST_CASE("dump --all-threads agrees with eu-stack: python3 with sleeping threads") {
    auto python = require_program("/usr/bin/python3", "python3-minimal");
    Child child({python, "-c", kPythonScript});
    auto line = child.read_line();
    REQUIRE_MESSAGE(line.has_value(), "python3 did not say ready");
    auto pid = field(*line, "pid");
    REQUIRE_MESSAGE(pid.has_value(), "no pid in: " << *line);
    REQUIRE(*pid == child.pid());
    wait_settled(child.pid(), 4, "python3");
    check_agreement(child.pid(), 4);
}

TEST_CASE("dump --all-threads agrees with eu-stack: memcached with 4 worker threads") {
    auto memcached = require_program("memcached", "memcached");
    TempDir dir("sw-compare");
    auto sock = dir.file("mc.sock");
    // A unix socket only (-s turns TCP off), no UDP: nothing listens on the network.
    std::vector<std::string> argv = {memcached, "-t", "4", "-s", sock, "-U", "0"};
    if (::geteuid() == 0) argv.insert(argv.begin() + 1, {"-u", "root"});  // refuses root without it
    Child child(argv);
    // Ready when the main thread waits in its event loop: memcached enters it
    // last, after starting its worker and maintenance threads and binding the
    // socket (an order that does not depend on when each version binds).
    bool up = poll_until([&] { return in_epoll_wait(child.pid()); }, std::chrono::seconds(10));
    REQUIRE_MESSAGE(up, "memcached (pid " << child.pid() << ") did not reach its event loop in 10 s");
    auto threads = thread_ids(child.pid()).size();
    REQUIRE_MESSAGE(threads >= 5,
                    "memcached -t 4 runs " << threads << " threads, expected main + 4 workers at least");
    wait_settled(child.pid(), threads, "memcached");
    check_agreement(child.pid(), threads);
}
