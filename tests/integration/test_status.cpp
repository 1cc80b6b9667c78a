// The table across processes: fixtures found by pid, and `stallwatch status`.
#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <cerrno>
#include <filesystem>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <set>

#include "proc/table_file.hpp"
#include "support/child.hpp"
#include "support/skip.hpp"

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
