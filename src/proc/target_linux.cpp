// Linux: a target through /proc, ptrace (capture_linux.cpp), process_vm_readv
// (memory_linux.cpp) and a pidfd.
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <fstream>

#include "proc/fs_identity.hpp"
#include "proc/process.hpp"
#include "proc/target.hpp"

namespace sw::proc {
namespace {

class FsAccess final : public FileAccess {
public:
    explicit FsAccess(pid_t pid) : guard_(pid) {}

private:
    FsIdentity guard_;
};

class LinuxTarget final : public Target {
public:
    explicit LinuxTarget(pid_t pid) : pid_(pid), memory_(open_memory(pid)) {}

    pid_t pid() const override { return pid_; }

    std::string name() override { return comm(pid_); }

    std::string executable() override {
        char buf[4096];
        ssize_t n = ::readlink(fmt::format("/proc/{}/exe", pid_).c_str(), buf, sizeof buf - 1);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string{};
    }

    std::string owner() override {
        struct stat st {};
        if (::stat(fmt::format("/proc/{}", pid_).c_str(), &st) != 0) return "?";
        if (passwd* pw = ::getpwuid(st.st_uid)) return pw->pw_name;
        return std::to_string(st.st_uid);
    }

    // The "0::" line of /proc/PID/cgroup is the v2 hierarchy (the only line
    // on a v2-only host; absent on a v1-only one).
    std::string cgroup() override {
        std::ifstream in(fmt::format("/proc/{}/cgroup", pid_));
        for (std::string line; std::getline(in, line);)
            if (line.rfind("0::", 0) == 0) return line.substr(3);
        return {};
    }

    Result<std::vector<pid_t>> threads() override {
        auto tids = numeric_entries(fmt::format("/proc/{}/task", pid_));
        if (!tids) {
            int e = errno;
            if (e == ENOENT)
                return make_error(Errc::no_such_process, fmt::format("no process with pid {}", pid_), e);
            return make_error(Errc::permission_denied,
                              fmt::format("not permitted to list the threads of pid {}: {}", pid_,
                                          permission_hint(pid_)),
                              e);
        }
        return std::move(*tids);
    }

    std::string thread_name(pid_t tid) override {
        std::ifstream in(fmt::format("/proc/{}/task/{}/comm", pid_, tid));
        std::string name;
        std::getline(in, name);
        return name;
    }

    ThreadState thread_state(pid_t tid) override { return read_thread_state(pid_, tid); }
    bool thread_frozen(pid_t tid) override { return proc::thread_frozen(pid_, tid); }
    bool has_thread(pid_t tid) override { return process_of_thread(tid) == pid_; }

    Result<std::vector<Mapping>> mappings() override { return read_maps(pid_); }
    MemoryReader& memory() override { return *memory_; }
    std::unique_ptr<FileAccess> file_access() override { return std::make_unique<FsAccess>(pid_); }

    Result<TableFile> open_table() override { return TableFile::open(pid_); }

    // Exec closes the table (MFD_CLOEXEC): the watch compares this with
    // what it opened to tell whether the process still holds that table.
    std::optional<FileId> fd_file(int fd) override {
        struct stat st {};
        if (fd < 0 || ::stat(fmt::format("/proc/{}/fd/{}", pid_, fd).c_str(), &st) != 0) return std::nullopt;
        return FileId{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    }

    // Readable when the process exits (Linux 5.3+); invalid if unavailable.
    UniqueFd exit_notifier() override { return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0))); }

    bool exited() override {
        if (::kill(pid_, 0) != 0 && errno == ESRCH) return true;
        // A zombie (exited, not yet reaped by its parent) is gone for us too.
        auto st = read_thread_state(pid_, pid_);
        return st.state == 'Z' || st.state == 'X';
    }

    Result<CaptureOutcome> capture(pid_t tid, const std::vector<Mapping>& maps, const CaptureOptions& opt,
                                   const StillStalled& still_stalled) override {
        return capture_thread(pid_, tid, maps, opt, still_stalled, *memory_);
    }

private:
    pid_t pid_;
    std::unique_ptr<MemoryReader> memory_;
};

}  // namespace

std::unique_ptr<Target> open_target(pid_t pid) { return std::make_unique<LinuxTarget>(pid); }

std::vector<pid_t> all_processes() { return numeric_entries("/proc").value_or(std::vector<pid_t>{}); }

}  // namespace sw::proc
