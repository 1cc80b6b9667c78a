// Trust: a table stallwatch did not expect is refused; root's rights are not
// lent to the target when files are opened on its behalf.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "proc/fs_identity.hpp"
#include "support/child.hpp"
#include "support/skip.hpp"
#include "support/table_image.hpp"

using namespace sw::test;

namespace {

constexpr uid_t nobody = 65534;

// A child that holds `fd` open (as fd 3) and runs as `uid` until killed.
struct Holder {
    pid_t pid = -1;
    Holder(int fd, uid_t uid) {
        int ready[2];
        REQUIRE(::pipe(ready) == 0);
        pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(ready[0]);
            if (fd != 3) ::dup2(fd, 3);
            if (uid != 0 && (::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0)) ::_exit(1);
            (void)!::write(ready[1], "x", 1);
            for (;;) ::pause();
        }
        ::close(ready[1]);
        char c;
        REQUIRE(::read(ready[0], &c, 1) == 1);
        ::close(ready[0]);
    }
    ~Holder() {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
};

int valid_table_memfd() {
    int fd = ::memfd_create("stallwatch", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    REQUIRE(fd >= 0);
    TableImage img(4, "planted");
    img.worker(0, "w", 1);
    auto b = img.bytes();
    REQUIRE(::pwrite(fd, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()));
    ::fcntl(fd, F_SETFD, 0);  // inherited by the holder
    return fd;
}

}  // namespace

TEST_CASE("a table owned by another user than the process is refused") {
    if (::geteuid() != 0) SW_SKIP("needs root, to make a process of another user hold a root-owned table");
    int fd = valid_table_memfd();  // owned by root
    Holder h(fd, nobody);          // ... held by a process of nobody
    ::close(fd);
    auto r = run({stallwatch_binary(), "status", std::to_string(h.pid)});
    CHECK(r.exit_code == 6);
    CHECK(r.err.find("belongs to uid 0, not to the user the process runs as (uid 65534): refused") !=
          std::string::npos);
}

TEST_CASE("a file posing as the table that is not a memfd is refused, a FIFO without hanging") {
    if (::geteuid() != 0) SW_SKIP("needs root, to create the posing file /memfd:stallwatch");
    const char* path = "/memfd:stallwatch";
    SUBCASE("regular file") {
        int fd = ::open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        ::unlink(path);  // now its fd link reads "/memfd:stallwatch (deleted)"
        TableImage img(4, "fake");
        auto b = img.bytes();
        REQUIRE(::pwrite(fd, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()));
        ::fcntl(fd, F_SETFD, 0);
        Holder h(fd, 0);
        ::close(fd);
        auto r = run({stallwatch_binary(), "status", std::to_string(h.pid)}, 10s);
        CHECK(r.exit_code == 6);
        CHECK(r.err.find("is not a memory file (memfd): refused") != std::string::npos);
    }
    SUBCASE("FIFO") {
        REQUIRE(::mkfifo(path, 0600) == 0);
        int fd = ::open(path, O_RDWR | O_CLOEXEC);  // O_RDWR does not block on Linux
        REQUIRE(fd >= 0);
        ::unlink(path);
        ::fcntl(fd, F_SETFD, 0);
        Holder h(fd, 0);
        ::close(fd);
        auto r = run({stallwatch_binary(), "status", std::to_string(h.pid)}, 10s);
        CHECK_FALSE(r.timed_out);
        CHECK(r.exit_code == 6);
    }
}

TEST_CASE("files opened on a target's behalf are opened with the target's rights") {
    if (::geteuid() != 0) SW_SKIP("needs root: the guarantee is about root's rights");
    // A file only root may read, and a process of nobody.
    std::string secret = "/tmp/sw-secret-XXXXXX";
    int sfd = ::mkstemp(secret.data());
    REQUIRE(sfd >= 0);
    ::fchmod(sfd, 0600);
    ::close(sfd);
    Holder h(-1, nobody);
    {
        sw::proc::FsIdentity as_target(h.pid);
        CHECK(as_target.switched());
        errno = 0;
        int fd = ::open(secret.c_str(), O_RDONLY | O_CLOEXEC);
        CHECK(fd < 0);
        CHECK(errno == EACCES);
        if (fd >= 0) ::close(fd);
    }
    int fd = ::open(secret.c_str(), O_RDONLY | O_CLOEXEC);  // root again
    CHECK(fd >= 0);
    if (fd >= 0) ::close(fd);
    ::unlink(secret.c_str());
}

// End to end: a process of nobody that maps a library only root may read
// (it mapped it while it was root). Root samples it. The library's blocking
// function is static: its name and file:line are only in the file (symbol
// table, debug info), never in the process's memory, so printing them means
// having read the file. With the file readable by nobody (the control), they
// are printed; with it root-only, they must not be.
TEST_CASE("root sampling a process of nobody does not read for it a file only root may read") {
    if (::geteuid() != 0) SW_SKIP("needs root: the guarantee is about root's rights");
    for (mode_t mode : {mode_t{0644}, mode_t{0600}}) {
        CAPTURE(mode);
        char dir[] = "/tmp/sw-rights-XXXXXX";
        REQUIRE(::mkdtemp(dir) != nullptr);
        ::chmod(dir, 0755);
        std::string lib = std::string(dir) + "/libsecret.so";
        std::filesystem::copy_file(STALLWATCH_SECRET_LIB, lib);
        REQUIRE(::chmod(lib.c_str(), mode) == 0);
        std::string out;
        {
            Child fx({STALLWATCH_DROPPER, lib});
            auto ready = fx.read_line();
            REQUIRE_MESSAGE(ready.has_value(), "the dropper fixture did not say ready");
            REQUIRE(field(*ready, "uid") == nobody);
            auto pid = field(*ready, "pid").value_or(0);
            // Until the victim is inside the library (its frame is there).
            for (int i = 0; i < 50; ++i) {
                auto r = run({stallwatch_binary(), "dump", std::to_string(pid), "--format", "json"}, 20s);
                REQUIRE_MESSAGE(r.exit_code == 0, r.err);
                out = r.out;
                if (out.find("libsecret.so") != std::string::npos) break;
                std::this_thread::sleep_for(20ms);
            }
        }
        std::filesystem::remove_all(dir);
        INFO("dump said: " << out);
        REQUIRE(out.find("libsecret.so") != std::string::npos);  // the victim was inside the library
        bool named = out.find("hidden_wait_in_secret_library") != std::string::npos;
        bool located = out.find("secret_lib.c") != std::string::npos;
        if (mode == 0644) {
            CHECK(named);  // the control: the test does see a file that was read
            CHECK(located);
        } else {
            CHECK_FALSE(named);
            CHECK_FALSE(located);
        }
    }
}

TEST_CASE("root keeps its rights for a root process, and for a process of its own user") {
    if (::geteuid() != 0) SW_SKIP("needs root: the guarantee is about root's rights");
    Holder h(-1, 0);
    sw::proc::FsIdentity as_target(h.pid);
    CHECK_FALSE(as_target.switched());
}

TEST_CASE("the monitor's sources never write into a target") {
    // No memory or register writes, no ptrace options that tie the target's
    // life to ours: checked over every source file of the monitor.
    namespace fs = std::filesystem;
    const char* forbidden[] = {"PTRACE_POKE", "process_vm_writev", "PTRACE_SETREGS", "PTRACE_SETFPREGS",
                               "PTRACE_O_EXITKILL", "PTRACE_SETOPTIONS", "PTRACE_ATTACH", "O_RDWR", "O_WRONLY"};
    int files = 0;
    for (const auto& e : fs::recursive_directory_iterator(std::string(STALLWATCH_SOURCE_DIR) + "/src")) {
        auto path = e.path().string();
        if (!e.is_regular_file() || path.find("/src/shim/") != std::string::npos) continue;
        std::ifstream in(path);
        std::string text;
        for (std::string line; std::getline(in, line);)  // code only: comments may name them
            text += line.substr(0, line.find("//")) + "\n";
        ++files;
        for (const char* f : forbidden)
            CHECK_MESSAGE(text.find(f) == std::string::npos, path << " uses " << std::string(f));
    }
    CHECK(files > 20);
}

TEST_CASE("without --debuginfod, debuginfod is never loaded, whatever DEBUGINFOD_URLS says") {
    // A stripped binary: its debug info is looked for, and not found on disk,
    // which is when a lookup would go on to debuginfod.
    Child fx({fixture("sw_fixture_stall_stripped"), "--stall-ms", "3000"});
    auto line = fx.read_line();
    REQUIRE(line.has_value());
    auto pid = field(*line, "pid").value_or(0);
    auto r = run({stallwatch_binary(), "attach", std::to_string(pid), "--once"}, 30s,
                 {{"DEBUGINFOD_URLS", "http://127.0.0.1:9/"}, {"LD_DEBUG", "files"}});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("STALL #1: worker \"victim\"") != std::string::npos);
    CHECK(r.err.find("file=libdw.so") != std::string::npos);  // LD_DEBUG does report loads
    CHECK(r.err.find("libdebuginfod") == std::string::npos);
}
