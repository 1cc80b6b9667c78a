// The table across processes: fixtures found by pid, and `stallwatch status`.
#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <cerrno>
#include <filesystem>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "proc/table_file.hpp"
#include "support/child.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"
#include "support/stall_fixture.hpp"
#include "support/temp_dir.hpp"

using namespace sw::test;
using sw::proc::TableFile;

namespace {

struct Fixture {
    Child child;
    std::string ready;

    explicit Fixture(std::vector<std::string> args, std::map<std::string, std::string> env = {})
        : child(with_binary(std::move(args)), env) {
        auto line = child.read_line();
        REQUIRE_MESSAGE(line.has_value(), "fixture did not say ready");
        ready = *line;
    }
    static std::vector<std::string> with_binary(std::vector<std::string> args) {
        args.insert(args.begin(), fixture("sw_fixture_workers"));
        return args;
    }
    long get(const std::string& key) const {
        auto v = field(ready, key);
        REQUIRE_MESSAGE(v.has_value(), "no " << key << " in: " << ready);
        return *v;
    }
};

// The line of `status` text output for worker `name`: the last column.
std::string row_of(const std::string& out, const std::string& name) {
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (line.size() > name.size() && line.compare(line.size() - name.size() - 2, std::string::npos, "  " + name) == 0)
            return line;
    return {};
}

sw::table::Snapshot snapshot(pid_t pid) {
    auto f = TableFile::open(pid);
    REQUIRE_MESSAGE(f.ok(), (f.ok() ? "" : f.error().message));
    auto s = f->read();
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
    return *s;
}

}  // namespace

TEST_CASE("a fixture's workers are found by pid, and running ones make progress") {
    Fixture fx({"--app", "itest", "--running", "3", "--parked", "1"});
    CHECK(fx.get("init") == 0);
    CHECK(fx.get("live") == 4);
    auto first = snapshot(fx.child.pid());
    CHECK(first.header.app_name == "itest");
    CHECK(first.header.pid == fx.child.pid());
    REQUIRE(first.workers.size() == 4);
    int parked = 0;
    for (const auto& w : first.workers) parked += w.state == sw::table::WorkerState::parked;
    CHECK(parked == 1);

    // Progress moves: poll (no sleep-and-hope) until every running worker advanced.
    bool advanced = false;
    for (int i = 0; i < 2000 && !advanced; ++i) {
        auto now = snapshot(fx.child.pid());
        advanced = now.workers.size() == 4;
        for (std::size_t k = 0; k < now.workers.size() && advanced; ++k)
            if (now.workers[k].state == sw::table::WorkerState::running)
                advanced = now.workers[k].progress > first.workers[k].progress;
    }
    CHECK(advanced);
    auto st = fx.child.finish();
    REQUIRE(st.has_value());
    CHECK(*st == 0);
}

TEST_CASE("stallwatch status prints one line per worker") {
    Fixture fx({"--app", "status-app", "--running", "2", "--parked", "1"});
    auto r = run({stallwatch_binary(), "status", std::to_string(fx.child.pid())});
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
    CHECK(r.out.find("app \"status-app\"") != std::string::npos);
    CHECK(r.out.find("3 of 256 slots in use (2 running, 1 parked)") != std::string::npos);
    CHECK(r.out.find("worker-0") != std::string::npos);
    CHECK(r.out.find("worker-1") != std::string::npos);
    CHECK(r.out.find("parked    ") != std::string::npos);
    CHECK(r.out.find("idle-2") != std::string::npos);
}

TEST_CASE("status flags a running worker without progress STALLED, and neither a progressing nor a parked one") {
    StallFixture stall({"--workers", "2", "--stall-ms", "10000"});
    auto r = run({stallwatch_binary(), "status", std::to_string(stall.pid), "--threshold", "300ms"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.empty());
    CHECK(r.out.find("\n SLOT       TID  STATE           PROGRESS  SINCE PROGRESS  FLAG     NAME\n") != std::string::npos);
    auto victim = row_of(r.out, "victim");
    REQUIRE_FALSE(victim.empty());
    CHECK(victim.find(" running ") != std::string::npos);
    CHECK(victim.find(" STALLED  victim") != std::string::npos);
    CHECK(victim.find(" >=3") != std::string::npos);  // >=300ms or a little more: a lower bound, the table keeps no time
    for (const char* busy : {"busy-0", "busy-1"}) {
        auto row = row_of(r.out, busy);
        REQUIRE_FALSE(row.empty());
        CHECK(row.find("STALLED") == std::string::npos);
        CHECK(row.find(" <3") != std::string::npos);  // moved: less than the time across both reads, ~300ms
    }
    CHECK(r.out.find("\n(1 STALLED: running, with no progress between two reads of the table 3") != std::string::npos);
    // Every worker line has the same fields (FLAG is "-" when empty), the name last.
    CHECK(row_of(r.out, "busy-0").find(" -        busy-0") != std::string::npos);
    for (const char* name : {"victim", "busy-0", "busy-1"}) {
        std::istringstream fields(row_of(r.out, name));
        std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
        CHECK_MESSAGE(f.size() == 7, name);
        CHECK(f.back() == name);
    }

    Fixture parked({"--running", "1", "--parked", "1"});
    r = run({stallwatch_binary(), "status", std::to_string(parked.child.pid()), "-t", "300ms"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    auto idle = row_of(r.out, "idle-1");
    REQUIRE_FALSE(idle.empty());
    CHECK(idle.find(" parked ") != std::string::npos);
    CHECK(idle.find(" >=3") != std::string::npos);  // waiting for work all along, and that is no stall
    CHECK(idle.find("STALLED") == std::string::npos);
    CHECK(row_of(r.out, "worker-0").find("STALLED") == std::string::npos);
    CHECK(r.out.find("\n(0 STALLED: ") != std::string::npos);
}

TEST_CASE("status --format json: one status_worker event per worker and a status_summary, valid against the "
          "schema") {
    StallFixture stall({"--workers", "1", "--stall-ms", "10000"});
    auto r = run({stallwatch_binary(), "status", std::to_string(stall.pid), "--format", "json", "-t", "200ms"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.empty());
    std::vector<nlohmann::json> events;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) events.push_back(nlohmann::json::parse(line));
    REQUIRE(events.size() == 3);
    std::map<std::string, nlohmann::json> by_name;
    for (std::size_t i = 0; i < 2; ++i) {
        const auto& e = events[i];
        CHECK(e["event"] == "status_worker");
        CHECK(e["process.pid"] == stall.pid);
        CHECK(e["service.name"] == "stall-fixture");
        for (const char* key : {"timestamp", "thread.id", "stallwatch.worker.slot", "stallwatch.worker.state",
                                "stallwatch.worker.progress", "stallwatch.worker.progress_moved",
                                "stallwatch.worker.since_progress_min_ms", "stallwatch.worker.since_progress_max_ms",
                                "stallwatch.worker.stalled", "stallwatch.thread.frozen"})
            CHECK_MESSAGE(e.contains(key), key);
        by_name[e["thread.name"].get<std::string>()] = e;
    }
    const auto& victim = by_name.at("victim");
    CHECK(victim["stallwatch.worker.stalled"] == true);
    CHECK(victim["stallwatch.worker.progress_moved"] == false);
    CHECK(victim["stallwatch.worker.since_progress_min_ms"].get<double>() >= 200.0);
    CHECK(victim["stallwatch.worker.since_progress_max_ms"].is_null());  // not known: never a guess
    const auto& busy = by_name.at("busy-0");
    CHECK(busy["stallwatch.worker.stalled"] == false);
    CHECK(busy["stallwatch.worker.progress_moved"] == true);
    CHECK(busy["stallwatch.worker.since_progress_min_ms"].get<double>() == 0.0);
    CHECK(busy["stallwatch.worker.since_progress_max_ms"].get<double>() >= 200.0);
    const auto& sum = events[2];
    CHECK(sum["event"] == "status_summary");
    CHECK(sum["stallwatch.workers.registered"] == 2);
    CHECK(sum["stallwatch.workers.running"] == 2);
    CHECK(sum["stallwatch.workers.parked"] == 0);
    CHECK(sum["stallwatch.workers.stalled"] == 1);
    CHECK(sum["stallwatch.threshold_ms"].get<double>() == 200.0);
    CHECK(sum["stallwatch.reads_apart_ms"].get<double>() >= 200.0);
    CHECK(sum["stallwatch.table.version"] == 1);

    TempDir tmp("sw-status");
    std::string path = tmp.file("status.jsonl");
    std::ofstream(path) << r.out;
    auto v = run({"/usr/bin/python3", std::string(STALLWATCH_SOURCE_DIR) + "/tests/support/validate-events.py",
                  std::string(STALLWATCH_SOURCE_DIR) + "/docs/json-events.schema.json", path});
    INFO(v.out << v.err);
    CHECK(v.exit_code == 0);
}

TEST_CASE("status of a process that exits between its two reads: exit 2, not a table of stalls") {
    // It exits 1.5s after it said ready: long after the first read, even on
    // a loaded machine, and long before the second, 4s later.
    StallFixture stall({"--workers", "1", "--exit-after-ms", "1500"});
    auto r = run({stallwatch_binary(), "status", std::to_string(stall.pid), "-t", "4s"});
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err == "stallwatch: pid " + std::to_string(stall.pid) + " exited while its table was being read\n");
}

// The state letter of the main thread of `pid` (/proc/PID/stat), '?' when unreadable.
char main_thread_state(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    return close == std::string::npos || close + 2 >= stat.size() ? '?' : stat[close + 2];
}

TEST_CASE("status of a process whose main thread exited (pthread_exit) while its workers run on: a live "
          "process, its table read and its stall seen, and exit 2 only once every thread is gone") {
    StallFixture stall({"--workers", "1", "--stall-ms", "60000", "--main-exits"});
    // The main thread is a zombie now: /proc/PID/fd and /proc/PID/maps are empty.
    REQUIRE(poll_until([&] { return main_thread_state(stall.pid) == 'Z'; }, std::chrono::seconds(30)));
    auto r = run({stallwatch_binary(), "status", std::to_string(stall.pid), "-t", "300ms"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.empty());
    CHECK(r.out.find("2 of 256 slots in use (2 running, 0 parked)") != std::string::npos);
    CHECK(row_of(r.out, "victim").find(" STALLED  victim") != std::string::npos);
    auto busy = row_of(r.out, "busy-0");
    REQUIRE_FALSE(busy.empty());
    CHECK(busy.find("STALLED") == std::string::npos);
    CHECK(busy.find(" <3") != std::string::npos);  // it moved between the reads


    // The last threads exit between the two reads (the fixture, not reaped
    // by the test until the end, is a zombie then): exited, exit 2.
    StallFixture ending({"--workers", "1", "--stall-ms", "60000", "--main-exits", "--exit-after-ms", "1500"});
    r = run({stallwatch_binary(), "status", std::to_string(ending.pid), "-t", "4s"});
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err == "stallwatch: pid " + std::to_string(ending.pid) + " exited while its table was being read\n");
}

// The hostile writer (no shim): slot 0 "own" running and never moving, slot 1
// "idle" parked, slot 2 "foreign" running with tid `foreign`, which is not a
// thread of the writer. `prefix` runs it (unshare ...), or nothing.
struct ForeignSlot {
    Child child;
    pid_t pid = 0;  // as we see it
    ForeignSlot(std::vector<std::string> prefix, pid_t foreign)
        : child([&] {
              prefix.insert(prefix.end(), {fixture("hostile/sw_hostile_writer"), "--mode", "foreign", "--tid",
                                           std::to_string(foreign)});
              return prefix;
          }()) {
        auto line = child.read_line();
        REQUIRE_MESSAGE(line.has_value(), "the hostile writer did not say ready");
        pid = child.pid();
        if (field(*line, "pid") == child.pid()) return;  // no prefix: the writer itself
        // Under unshare --fork, the writer is its child.
        pid = 0;
        REQUIRE(poll_until(
            [&] {
                std::ifstream in("/proc/" + std::to_string(child.pid()) + "/task/" + std::to_string(child.pid()) +
                                 "/children");
                return static_cast<bool>(in >> pid) && pid > 0;
            },
            std::chrono::seconds(10)));
    }
};

std::map<std::string, nlohmann::json> status_workers_by_name(const std::string& out) {
    std::map<std::string, nlohmann::json> by_name;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        auto e = nlohmann::json::parse(line);
        if (e["event"] == "status_worker") by_name[e["thread.name"].get<std::string>()] = e;
    }
    return by_name;
}

void check_schema(const std::string& jsonl) {
    TempDir tmp("sw-status");
    std::string path = tmp.file("status.jsonl");
    std::ofstream(path) << jsonl;
    auto v = run({"/usr/bin/python3", std::string(STALLWATCH_SOURCE_DIR) + "/tests/support/validate-events.py",
                  std::string(STALLWATCH_SOURCE_DIR) + "/docs/json-events.schema.json", path});
    INFO(v.out << v.err);
    CHECK(v.exit_code == 0);
}

TEST_CASE("status: a worker whose thread is not one of the process is gone, not STALLED") {
    StallFixture other({"--workers", "1", "--stall-ms", "60000"});
    ForeignSlot w({}, other.pid);  // the other process's main thread
    auto r = run({stallwatch_binary(), "status", std::to_string(w.pid), "-t", "300ms"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    auto foreign = row_of(r.out, "foreign");
    CHECK(foreign.find(" " + std::to_string(other.pid) + "  running ") != std::string::npos);
    CHECK(foreign.find(" >=3") != std::string::npos);
    CHECK(foreign.find(" gone     foreign") != std::string::npos);
    CHECK(row_of(r.out, "own").find(" STALLED  own") != std::string::npos);
    CHECK(row_of(r.out, "idle").find(" -        idle") != std::string::npos);
    CHECK(r.out.find("\n(1 STALLED: running, with no progress between two reads of the table 3") != std::string::npos);
    CHECK(r.out.find("; 1 gone (the thread exited without unregistering, or is not visible from here), not "
                     "counted)\n") != std::string::npos);

    auto j = run({stallwatch_binary(), "status", std::to_string(w.pid), "-t", "300ms", "--format", "json"});
    INFO(j.out << j.err);
    REQUIRE(j.exit_code == 0);
    auto by_name = status_workers_by_name(j.out);
    REQUIRE(by_name.count("foreign") == 1);
    CHECK(by_name["foreign"]["thread.id"] == other.pid);
    CHECK(by_name["foreign"]["stallwatch.thread.gone"] == true);
    CHECK(by_name["foreign"]["stallwatch.worker.stalled"] == false);
    CHECK(by_name["own"]["stallwatch.thread.gone"] == false);
    CHECK(by_name["own"]["stallwatch.worker.stalled"] == true);
    check_schema(j.out);
}

TEST_CASE("status of a process in its own PID namespace whose slot names no thread there: thread.id null, gone") {
    // A user namespace too, so that no privilege is needed for the PID
    // namespace. Inside it the writer is pid 1: no thread has id 99999.
    ForeignSlot w({"/usr/bin/unshare", "--user", "--map-root-user", "--pid", "--fork"}, 99999);
    REQUIRE(w.pid != w.child.pid());
    auto r = run({stallwatch_binary(), "status", std::to_string(w.pid), "-t", "300ms"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("NS-TID") != std::string::npos);
    auto foreign = row_of(r.out, "foreign");
    CHECK(foreign.find("        -     99999  running ") != std::string::npos);
    CHECK(foreign.find(" gone     foreign") != std::string::npos);
    CHECK(row_of(r.out, "own").find(" STALLED  own") != std::string::npos);

    auto j = run({stallwatch_binary(), "status", std::to_string(w.pid), "-t", "300ms", "--format", "json"});
    INFO(j.out << j.err);
    REQUIRE(j.exit_code == 0);
    auto by_name = status_workers_by_name(j.out);
    REQUIRE(by_name.count("foreign") == 1);
    CHECK(by_name["foreign"]["thread.id"].is_null());
    CHECK(by_name["foreign"]["stallwatch.thread.id_in_namespace"] == 99999);
    CHECK(by_name["foreign"]["stallwatch.thread.gone"] == true);
    CHECK(by_name["foreign"]["stallwatch.worker.stalled"] == false);
    CHECK(by_name["own"]["thread.id"].is_number_integer());
    CHECK(by_name["own"]["stallwatch.worker.stalled"] == true);
    check_schema(j.out);
}

TEST_CASE("threads registering at once past capacity: exactly capacity slots, all distinct") {
    Fixture fx({"--capacity", "8", "--running", "12"});
    CHECK(fx.get("live") == 8);
    auto snap = snapshot(fx.child.pid());
    REQUIRE(snap.workers.size() == 8);
    std::set<pid_t> tids;
    std::set<std::uint32_t> slots;
    for (const auto& w : snap.workers) {
        tids.insert(w.tid);
        slots.insert(w.slot);
    }
    CHECK(tids.size() == 8);
    CHECK(slots.size() == 8);
    CHECK(*slots.rbegin() == 7);
}

TEST_CASE("STALLWATCH_DISABLE=1 leaves no table and every call a no-op") {
    Fixture fx({"--running", "2"}, {{"STALLWATCH_DISABLE", "1"}});
    CHECK(fx.get("init") == -ECANCELED);
    CHECK(fx.get("live") == 0);
    auto r = run({stallwatch_binary(), "status", std::to_string(fx.child.pid())});
    CHECK(r.exit_code == 5);
    CHECK(r.err.find("has no stallwatch table") != std::string::npos);
    CHECK(fx.child.finish() == std::optional<int>(0));
}

TEST_CASE("the table is sealed: nobody holding its fd can shrink or grow it, or unseal it") {
    Fixture fx({"--running", "2"});
    REQUIRE(fx.get("init") == 0);
    auto f = TableFile::open(fx.child.pid());
    REQUIRE(f.ok());
    // A writable description of the same file, as a hostile holder would get.
    auto path = "/proc/" + std::to_string(fx.child.pid()) + "/fd/" + std::to_string(f->fd_number());
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd >= 0);
    int seals = ::fcntl(fd, F_GET_SEALS);
    CHECK(seals == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    errno = 0;
    CHECK(::ftruncate(fd, 0) != 0);
    CHECK(errno == EPERM);
    errno = 0;
    CHECK(::ftruncate(fd, st.st_size + 4096) != 0);
    CHECK(errno == EPERM);
    CHECK(::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) != 0);  // F_SEAL_SEAL: no more seals either
    ::close(fd);
    CHECK(snapshot(fx.child.pid()).workers.size() == 2);  // and the table still reads
}

TEST_CASE("when the table cannot be sealed, the shim makes none: init fails with the error, calls are no-ops") {
    // A seccomp filter in the fixture makes fcntl(F_ADD_SEALS) fail with EPERM.
    Fixture fx({"--running", "2", "--deny-seals"});
    CHECK(fx.get("init") == -EPERM);
    CHECK(fx.get("live") == 0);
    auto r = run({stallwatch_binary(), "status", std::to_string(fx.child.pid())});
    CHECK(r.exit_code == 5);
    CHECK(r.err.find("has no stallwatch table") != std::string::npos);
    CHECK(fx.child.finish() == std::optional<int>(0));
}

TEST_CASE("the table is not inherited across exec") {
    Fixture fx({"--running", "1", "--exec-plain"});
    CHECK(fx.get("live") == 1);
    auto again = fx.child.read_line();  // the exec'd image says ready too
    REQUIRE(again.has_value());
    CHECK(field(*again, "pid") == fx.child.pid());
    CHECK(field(*again, "init") == 1);  // did not init
    auto f = TableFile::open(fx.child.pid());
    REQUIRE_FALSE(f.ok());
    CHECK(f.error().code == sw::Errc::no_table);
}

TEST_CASE("status errors: one line and a documented exit code") {
    SUBCASE("no such process") {
        auto r = run({stallwatch_binary(), "status", "999999999"});
        CHECK(r.exit_code == 3);
        CHECK(r.err == "stallwatch: no process with pid 999999999\n");
    }
    SUBCASE("a process without a table") {
        Fixture fx({"--no-init", "--running", "1"});
        auto r = run({stallwatch_binary(), "status", std::to_string(fx.child.pid())});
        CHECK(r.exit_code == 5);
        CHECK(r.err.find("link it with the stallwatch shim") != std::string::npos);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
    SUBCASE("usage") {
        auto r = run({stallwatch_binary(), "status"});
        CHECK(r.exit_code == 64);
        CHECK(r.err.find("pid") != std::string::npos);
        r = run({stallwatch_binary(), "status", "abc"});
        CHECK(r.exit_code == 64);
        r = run({stallwatch_binary()});
        CHECK(r.exit_code == 64);
        r = run({stallwatch_binary(), "frobnicate"});
        CHECK(r.exit_code == 64);
    }
    SUBCASE("version and help") {
        auto r = run({stallwatch_binary(), "--version"});
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("stallwatch " STALLWATCH_VERSION) == 0);
        CHECK(r.out.find("table format versions: 1") != std::string::npos);
        r = run({stallwatch_binary(), "--help"});
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("status") != std::string::npos);
    }
}

TEST_CASE("status of another user's process: not permitted, exit 4") {
    if (::geteuid() != 0) SW_SKIP("needs root, to run stallwatch as another user");
    Fixture fx({"--running", "1"});
    auto r = run({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                  stallwatch_binary(), "status", std::to_string(fx.child.pid())});
    CHECK(r.exit_code == 4);
    CHECK(r.err.find("not permitted") != std::string::npos);
    CHECK(r.err.find("belongs to uid 0") != std::string::npos);
}

TEST_CASE("the table is an anonymous memfd: nothing is left in /dev/shm, even after SIGKILL") {
    auto list_shm = [] {
        std::set<std::string> names;
        for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
            names.insert(e.path().filename().string());
        return names;
    };
    auto before = list_shm();
    {
        Fixture fx({"--running", "2"});
        auto f = TableFile::open(fx.child.pid());
        REQUIRE(f.ok());
        char link[256] = {};
        auto path = "/proc/" + std::to_string(fx.child.pid()) + "/fd/" + std::to_string(f->fd_number());
        REQUIRE(::readlink(path.c_str(), link, sizeof link - 1) > 0);
        CHECK(std::string(link) == "/memfd:stallwatch (deleted)");
        ::kill(fx.child.pid(), SIGKILL);
    }  // the guard reaps it
    CHECK(list_shm() == before);
}
