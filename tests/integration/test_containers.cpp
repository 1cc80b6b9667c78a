// Targets in containers, and binaries that changed on disk (issue 10,
// section 2). The stall fixture runs in its own PID namespace (unshare
// --pid --fork --mount-proc), then also in a private root filesystem where
// the host has no file at the program's path, and again with a decoy at
// that host path. list, status, attach (text and JSON) and dump (with and
// without --all-threads) must name the blocked frame's function at its
// file:line, give both tids, never the decoy's names, and leave nothing
// stopped. A binary replaced or deleted on disk while it runs still
// symbolizes; when only its path can be opened (STALLWATCH_TEST_NO_MAP_FILES)
// the build-id check refuses the new file: "??" and one notice, never
// wrong names.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/child.hpp"
#include "support/markers.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"
#include "support/temp_dir.hpp"
#include "support/text_report.hpp"
#include "support/threads.hpp"

using namespace sw::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The frames of the stalled victim (--mode sleep, --depth 0) from the
// fixture's code, innermost first, at their marker lines.
struct Expect {
    std::string function;
    int line;
};
std::vector<Expect> victim_chain() {
    return {{"sleep_in_handler", marker_line("sleep")},
            {"block_now", marker_line("block_sleep")},
            {"descend", marker_line("descend")},
            {"handle_request", marker_line("handle_request")},
            {"victim_main", marker_line("victim")}};
}

void check_chain(const TextReport& r) {
    INFO("report:\n" << r.text);
    auto at = r.find("sleep_in_handler");
    REQUIRE(at != TextReport::npos);
    auto chain = victim_chain();
    REQUIRE(r.frames.size() >= at + chain.size());
    for (std::size_t k = 0; k < chain.size(); ++k) {
        const auto& f = r.frames[at + k];
        CHECK(f.function == chain[k].function);
        CHECK(f.basename() == "stall.c");
        CHECK(f.line == chain[k].line);
    }
    CHECK(r.frames[at].first_app);
    // The C library's frame under it is named too (its file came from the
    // target's root as well).
    REQUIRE(at > 0);
    CHECK(r.frames[0].function.find("clock_nanosleep") != std::string::npos);
}

// The reports of `out` whose worker is `name` (attach's STALL, dump's samples).
std::vector<TextReport> reports_of(const std::string& out, const std::string& name) {
    std::vector<TextReport> all;
    std::istringstream in(out);
    TextReport* cur = nullptr;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("  ", 0) != 0) {
            cur = nullptr;
            if (line.find("worker \"" + name + "\" (tid ") != std::string::npos) {
                all.emplace_back();
                cur = &all.back();
                cur->header = line;
            }
            continue;
        }
        if (!cur) continue;
        cur->text += line + "\n";
        if (auto f = detail::parse_frame(line)) cur->frames.push_back(*f);
    }
    for (auto& r : all) r.text = r.header + "\n" + r.text;
    return all;
}

// The id of `tid` (a host tid) in the innermost PID namespace (NSpid:).
pid_t inner_id(pid_t pid, pid_t tid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("NSpid:", 0) == 0) {
            std::istringstream ids(line.substr(6));
            pid_t v = 0, last = 0;
            while (ids >> v) last = v;
            return last;
        }
    return 0;
}

// The one child of `parent` (unshare --fork runs the program as its child).
pid_t only_child(pid_t parent) {
    pid_t found = 0;
    poll_until(
        [&] {
            std::ifstream in("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children");
            pid_t c = 0;
            if (in >> c) found = c;
            return found > 0;
        },
        5s);
    return found;
}

// The stall fixture started through `prefix` (an unshare command line),
// ready: its host pid, and the victim's tid on both sides.
struct Contained {
    Child child;
    pid_t pid = 0;        // as we see it
    pid_t inner_pid = 0;  // as it sees itself
    pid_t victim = 0;     // the victim's tid, ours
    pid_t inner_victim = 0;

    // `argv` starts the fixture (with fixture_args()) in its own PID namespace.
    explicit Contained(const std::vector<std::string>& argv) : child(argv) {
        auto line = child.read_line(10s);
        REQUIRE_MESSAGE(line.has_value(), "the contained fixture did not say ready");
        inner_pid = static_cast<pid_t>(field(*line, "pid").value_or(0));
        inner_victim = static_cast<pid_t>(field(*line, "victim").value_or(0));
        pid = only_child(child.pid());
        REQUIRE(pid > 0);
        // It really runs in another PID namespace: its own pid differs.
        REQUIRE(inner_pid != pid);
        for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
            pid_t tid = std::stoi(entry.path().filename().string());
            if (inner_id(pid, tid) == inner_victim) victim = tid;
        }
        REQUIRE(victim > 0);
        // The victim blocks 200 ms after "ready": be past that before a dump.
        std::this_thread::sleep_for(600ms);
    }
};

std::vector<std::string> fixture_args() { return {"--stall-ms", "60000", "--delay-ms", "200"}; }

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

void check_released(pid_t pid) {
    bool released = poll_until([&] { return held_threads(pid).empty(); }, 3s);
    INFO("still held: " << held_threads(pid));
    CHECK(released);
}

// list, status, attach (text, JSON), dump and dump --all-threads on a
// contained fixture, each checked for the victim's stack and both ids.
void check_all_commands(const Contained& fx, const std::map<std::string, std::string>& env = {}) {
    std::string pid = std::to_string(fx.pid);
    std::string both = "tid " + std::to_string(fx.victim) + ", " + std::to_string(fx.inner_victim) + " in its namespace";

    SUBCASE("list and status") {
        auto list = run({stallwatch_binary(), "list"}, 10s, env);
        INFO("list:\n" << list.out << list.err);
        CHECK(list.exit_code == 0);
        CHECK(list.out.find("\n" + std::string(8 - std::min<std::size_t>(8, pid.size()), ' ') + pid + "  ") !=
              std::string::npos);
        auto status = run({stallwatch_binary(), "status", pid}, 10s, env);
        INFO("status:\n" << status.out << status.err);
        CHECK(status.exit_code == 0);
        CHECK(status.out.find("pid " + std::to_string(fx.inner_pid) + " in its namespace") != std::string::npos);
        CHECK(status.out.find("NS-TID") != std::string::npos);
        bool row = false;
        std::istringstream rows(status.out);
        for (std::string line; std::getline(rows, line);) {
            std::istringstream cols(line);
            std::string slot, tid, inner;
            if (cols >> slot >> tid >> inner && tid == std::to_string(fx.victim) &&
                inner == std::to_string(fx.inner_victim))
                row = line.find("victim") != std::string::npos;
            if (row) break;
        }
        CHECK(row);
    }
    SUBCASE("attach, text") {
        auto r = run({stallwatch_binary(), "attach", pid, "--threshold", "100ms", "--once"}, 20s, env);
        INFO("attach:\n" << r.out << r.err);
        CHECK(r.exit_code == 0);
        auto reports = parse_reports(r.out);
        REQUIRE(reports.size() == 1);
        CHECK(reports[0].header.find("worker \"victim\" (" + both + ", slot ") != std::string::npos);
        CHECK(reports[0].header.find("pid " + std::to_string(fx.inner_pid) + " in its namespace") != std::string::npos);
        check_chain(reports[0]);
        check_released(fx.pid);
    }
    SUBCASE("attach, JSON") {
        auto r = run({stallwatch_binary(), "attach", pid, "--threshold", "100ms", "--once", "--format", "json"}, 20s,
                     env);
        INFO("attach:\n" << r.out << r.err);
        CHECK(r.exit_code == 0);
        bool seen = false;
        std::istringstream in(r.out);
        for (std::string line; std::getline(in, line);) {
            auto e = json::parse(line, nullptr, false);
            REQUIRE_MESSAGE(!e.is_discarded(), line);
            CHECK(e["process.pid"] == fx.pid);
            CHECK(e["stallwatch.process.pid_in_namespace"] == fx.inner_pid);
            if (e["event"] != "stall") continue;
            seen = true;
            CHECK(e["thread.id"] == fx.victim);
            CHECK(e["stallwatch.thread.id_in_namespace"] == fx.inner_victim);
            bool named = false;
            for (const auto& f : e["frames"])
                if (f["code.function.name"] == "sleep_in_handler")
                    named = f["code.line.number"] == marker_line("sleep");
            CHECK(named);
        }
        CHECK(seen);
    }
    SUBCASE("dump") {
        auto r = run({stallwatch_binary(), "dump", pid}, 20s, env);
        INFO("dump:\n" << r.out << r.err);
        CHECK(r.exit_code == 0);
        auto victims = reports_of(r.out, "victim");
        REQUIRE(victims.size() == 1);
        CHECK(victims[0].header.find(both) != std::string::npos);
        check_chain(victims[0]);
        CHECK(has_stack(r.out, "busy-0", "busy_main"));
        check_released(fx.pid);
    }
    SUBCASE("dump --all-threads") {
        auto r = run({stallwatch_binary(), "dump", pid, "--all-threads"}, 20s, env);
        INFO("dump:\n" << r.out << r.err);
        CHECK(r.exit_code == 0);
        auto victims = reports_of(r.out, "victim");
        REQUIRE(victims.size() == 1);
        check_chain(victims[0]);
        // The main thread is no worker: its own id in the namespace is its pid there.
        CHECK(r.out.find("thread " + pid + " (" + std::to_string(fx.inner_pid) + " in its namespace)") !=
              std::string::npos);
        check_released(fx.pid);
    }
}

// A root filesystem holding `program` at `inner` and the libraries it
// needs (ldd's list) at their paths.
void build_root(const fs::path& root, const std::string& program, const std::string& inner) {
    auto deps = run({"/usr/bin/ldd", program}, 10s);
    REQUIRE_MESSAGE(deps.exit_code == 0, deps.out << deps.err);
    std::vector<std::string> files = {program};
    std::istringstream in(deps.out);
    for (std::string word; in >> word;)
        if (word.front() == '/') files.push_back(word);
    for (const auto& f : files) {
        fs::path to = root / (f == program ? inner : f).substr(1);
        fs::create_directories(to.parent_path());
        fs::copy_file(fs::canonical(f), to, fs::copy_options::overwrite_existing);
        fs::permissions(to, fs::perms::owner_all, fs::perm_options::add);
    }
}

// A file at a host path, removed at the end with every directory made for it.
struct HostFile {
    fs::path top;  // the first directory that did not exist
    HostFile(const fs::path& path, const std::string& from) {
        top = path.parent_path();
        while (!fs::exists(top.parent_path())) top = top.parent_path();
        REQUIRE_MESSAGE(!fs::exists(top), top << " exists on this host already");
        fs::create_directories(path.parent_path());
        fs::copy_file(from, path);
    }
    ~HostFile() {
        std::error_code ec;
        fs::remove_all(top, ec);
    }
};

// Two ways into a private root. A chroot below our root (unshare --root):
// /proc shows the program's path as we see it. A container's own root
// (pivot_root, as Docker and systemd-nspawn do, here in a mount namespace
// of its own): /proc shows the path as the container sees it, and the host
// has no file there, or a decoy.
void check_private_root(bool pivoted) {
    TempDir root("sw-root");
    // A path that the host does not have (checked), unique to this run.
    std::string inner = "/sw-container-" + std::to_string(::getpid()) + "/bin/stall";
    REQUIRE(!fs::exists(fs::path(inner).parent_path().parent_path()));
    build_root(root.path, fixture("sw_fixture_stall"), inner);
    std::string dir = root.path.string();
    std::vector<std::string> chroot = {"/usr/bin/unshare", "--pid", "--fork", "--mount", "--root=" + dir, inner};
    // The bind mount makes the directory a mount point of this namespace
    // only; pivot_root makes it the root; the old root stays at /.old.
    std::vector<std::string> pivot = {
        "/usr/bin/unshare", "--pid", "--fork", "--mount", "/bin/sh", "-c",
        "mount --bind \"$1\" \"$1\" && cd \"$1\" && mkdir .old && pivot_root . .old && shift && exec \"$@\"",
        "sh", dir, inner};
    Contained fx(concat(pivoted ? pivot : chroot, fixture_args()));
    if (pivoted) {
        // /proc names the program as the container does.
        auto maps = slurp("/proc/" + std::to_string(fx.pid) + "/maps");
        REQUIRE_MESSAGE(maps.find(" " + inner + "\n") != std::string::npos, maps);
    }
    REQUIRE(!fs::exists(inner));
    SUBCASE("through map_files") { check_all_commands(fx); }
    SUBCASE("through its root") { check_all_commands(fx, no_map_files_env()); }
    SUBCASE("with a decoy at the host path") {
        // Another program with other symbols where the host would look.
        HostFile decoy(inner, fixture("sw_fixture_workers"));
        SUBCASE("through map_files") { check_all_commands(fx); }
        SUBCASE("through its root") { check_all_commands(fx, no_map_files_env()); }
    }
}

}  // namespace

TEST_CASE("a target in its own PID namespace: list, status, attach and dump translate its tids") {
    if (::geteuid() != 0) SW_SKIP("unshare --pid needs root");
    Contained fx(concat({"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", fixture("sw_fixture_stall")},
                        fixture_args()));
    check_all_commands(fx);
}

TEST_CASE("a target chrooted into a private root (unshare --root): its files are found, never the host's decoy") {
    if (::geteuid() != 0) SW_SKIP("unshare --mount needs root");
    check_private_root(false);
}

TEST_CASE("a target whose root is its own (pivot_root): its files are opened as it sees them, never the host's decoy") {
    if (::geteuid() != 0) SW_SKIP("unshare --mount needs root");
    check_private_root(true);
}

TEST_CASE("a binary replaced or deleted on disk while it runs still symbolizes, and by path alone gives ?? and says why") {
    TempDir dir("sw-replaced");
    std::string path = dir.file("stall");
    fs::copy_file(fixture("sw_fixture_stall"), path);
    Child fx({path, "--stall-ms", "60000", "--delay-ms", "200"});
    auto ready = fx.read_line(10s);
    REQUIRE(ready.has_value());
    pid_t pid = static_cast<pid_t>(field(*ready, "pid").value_or(0));
    REQUIRE(pid == fx.pid());
    std::string spid = std::to_string(pid);
    std::this_thread::sleep_for(600ms);  // the victim blocks 200 ms after "ready"

    // An upgrade: a new file renamed over the old path (the running one
    // keeps its inode), here another program with other symbols.
    fs::copy_file(fixture("sw_fixture_workers"), dir.file("stall.new"));
    fs::rename(dir.file("stall.new"), path);

    // One report of the stall, with the whole chain named; stallwatch's stderr.
    auto attach_once = [&] {
        auto r = run({stallwatch_binary(), "attach", spid, "--threshold", "100ms", "--once"}, 20s);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        auto reports = parse_reports(r.out);
        REQUIRE(reports.size() == 1);
        check_chain(reports[0]);
        return r.err;
    };
    SUBCASE("replaced: the mapped file is used") {
        CHECK(attach_once().find("no symbols for") == std::string::npos);
    }
    SUBCASE("replaced, by path only: no names for the executable, never the new file's") {
        auto r = run({stallwatch_binary(), "dump", spid}, 20s, no_map_files_env());
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        // Said once for the whole dump (four workers), naming the file and both build-ids.
        CHECK(count_of(r.err, "stallwatch: no symbols for " + path + " of pid " + spid +
                                  ": its file has build-id ") == 1);
        CHECK(r.err.find(", the process runs ") != std::string::npos);
        auto victims = reports_of(r.out, "victim");
        REQUIRE(victims.size() == 1);
        const auto& v = victims[0];
        std::size_t in_exe = 0;
        for (const auto& f : v.frames) {
            if (f.module.rfind("stall+", 0) != 0) continue;
            ++in_exe;
            CHECK(f.function == "??");
            CHECK(f.line == 0);
        }
        // The unwind went through the executable all the same (its tables
        // come from memory), and the C library is still named.
        CHECK(in_exe >= 5);
        CHECK(v.frames.at(0).function.find("clock_nanosleep") != std::string::npos);
        check_released(pid);
    }
    SUBCASE("deleted") {
        fs::remove(path);
        attach_once();
    }
}

TEST_CASE("a mutex's holder in a PID namespace: the id in the mutex is translated, and both ids are shown") {
    if (::geteuid() != 0) SW_SKIP("unshare --pid needs root");
    // fixtures/locks.c: "db-worker" blocks on a mutex that "maintenance"
    // holds; the mutex holds the holder's id as the process sees it.
    Child fx({"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", fixture("sw_fixture_locks"), "normal"});
    auto line = fx.read_line(10s);
    REQUIRE_MESSAGE(line.has_value(), "the contained fixture did not say ready");
    const pid_t inner_holder = static_cast<pid_t>(field(*line, "holder").value_or(0));
    const pid_t pid = only_child(fx.pid());
    REQUIRE(pid > 0);
    pid_t holder = 0;
    for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
        pid_t tid = std::stoi(entry.path().filename().string());
        if (inner_id(pid, tid) == inner_holder) holder = tid;
    }
    REQUIRE(holder > 0);
    REQUIRE(holder != inner_holder);
    auto r = run({stallwatch_binary(), "attach", std::to_string(pid), "--threshold", "100ms", "--once"}, 20s);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("held by tid " + std::to_string(holder) + " (" + std::to_string(inner_holder) +
                     " in its namespace) \"maintenance\" at hold_db_for_maintenance") != std::string::npos);
    check_released(pid);
}
