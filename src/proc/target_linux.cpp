// Linux: a target through /proc, ptrace (capture_linux.cpp), process_vm_readv
// (memory_linux.cpp) and a pidfd.
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <fstream>

#include "proc/fs_identity.hpp"
#include "proc/namespaces.hpp"
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

// Test-only hook (a build with STALLWATCH_TEST_HOOKS; docs/capture.md):
// STALLWATCH_TEST_NO_MAP_FILES=1 acts as if /proc/<pid>/map_files could not
// be opened (no CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), so that tests reach
// the path through the target's root and its build-id check.
#ifdef STALLWATCH_TEST_HOOKS
const bool test_no_map_files = [] {
    const char* v = std::getenv("STALLWATCH_TEST_NO_MAP_FILES");
    return v && *v && std::string_view(v) != "0";
}();
#else
constexpr bool test_no_map_files = false;
#endif

// The same mount namespace as ours: a path means the same file to both.
bool same_mount_namespace(pid_t pid) {
    struct stat a {}, b {};
    return ::stat(fmt::format("/proc/{}/ns/mnt", pid).c_str(), &a) == 0 && ::stat("/proc/self/ns/mnt", &b) == 0 &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

Error open_error(pid_t pid, const std::string& path, int e) {
    if (e == ESRCH) return make_error(Errc::no_such_process, fmt::format("process {} exited", pid), e);
    if (e == EACCES || e == EPERM)
        return make_error(Errc::permission_denied,
                          fmt::format("not permitted to open {} as pid {} sees it: {}", path, pid, permission_hint(pid)),
                          e);
    return make_error(Errc::io, fmt::format("cannot open {} as pid {} sees it: {}", path, pid, std::strerror(e)), e);
}

// `path` resolved inside the root of `pid` (/proc/<pid>/root, its mount
// namespace as well): "..", absolute symlinks and mount points all stay in
// that root, as openat2's RESOLVE_IN_ROOT guarantees; magic links (such as
// /proc/self/...) are refused.
Result<UniqueFd> open_in_root(pid_t pid, const std::string& path) {
    UniqueFd root(::open(fmt::format("/proc/{}/root", pid).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root.valid()) return open_error(pid, path, errno);
    open_how how{};
    how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(::syscall(SYS_openat2, root.get(), path.c_str(), &how, sizeof how));
    if (fd < 0 && errno == ENOSYS) {
        // Before Linux 5.6 nothing resolves safely inside another root; in
        // our own mount namespace the path means the same file anyway.
        if (!same_mount_namespace(pid))
            return make_error(Errc::io,
                              fmt::format("cannot open {} as pid {} sees it: it runs in another mount namespace "
                                          "and this kernel has no openat2 (Linux 5.6)",
                                          path, pid),
                              ENOSYS);
        fd = ::open(path.c_str(), static_cast<int>(how.flags));
    }
    if (fd < 0) return open_error(pid, path, errno);
    UniqueFd out(fd);
    // Only regular files: a FIFO or a device under a known path is not ELF.
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return make_error(Errc::io, fmt::format("{} (as pid {} sees it) is not a regular file", path, pid));
    ::fcntl(fd, F_SETFL, 0);
    return out;
}

class LinuxTarget final : public Target {
public:
    explicit LinuxTarget(pid_t pid) : pid_(pid), memory_(open_memory(pid)) {}

    pid_t pid() const override { return pid_; }

    std::string name() override { return comm(pid_); }

    std::string executable() override {
        char buf[4096];
        ssize_t n = ::readlink(fmt::format("/proc/{}/exe", pid_).c_str(), buf, sizeof buf - 1);
        // Without " (deleted)", as module paths: still the program's path
        // after an upgrade replaced its file.
        return n > 0 ? without_deleted(std::string(buf, static_cast<std::size_t>(n))) : std::string{};
    }

    std::string owner() override {
        struct stat st {};
        if (::stat(fmt::format("/proc/{}", pid_).c_str(), &st) != 0) return "?";
        if (passwd* pw = ::getpwuid(st.st_uid)) return pw->pw_name;
        return std::to_string(st.st_uid);
    }

    pid_t pid_in_namespace() override {
        auto& n = ids();
        return n.nested() ? n.inner_pid() : 0;
    }
    pid_t tid_in_namespace(pid_t tid) override {
        auto& n = ids();
        return n.nested() ? n.inner_tid(tid) : 0;
    }
    pid_t tid_from_namespace(pid_t inner) override {
        if (inner <= 0) return 0;
        auto& n = ids();
        const pid_t host = n.nested() ? n.host_tid(inner) : inner;
        return has_thread(host) ? host : 0;
    }
    std::string cgroup() override { return NamespaceIds::cgroup_of(pid_); }

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
    // /proc/PID/task/TID exists only for a thread of PID; an exited main
    // thread waiting for the others (a zombie) is no running thread.
    bool has_thread(pid_t tid) override {
        if (tid <= 0) return false;
        char s = thread_state_letter(pid_, tid);
        return s != '?' && s != 'Z' && s != 'X';
    }

    Result<std::vector<Mapping>> mappings() override {
        auto maps = read_maps(pid_);
        // Empty: the main thread has exited (pthread_exit()) while others run
        // on. Its /proc entries for the memory, the map and the root are gone
        // with it; stacks are not taken then (man/stallwatch.1, status).
        if (maps && maps->empty() && stand_in_thread(pid_))
            return make_error(Errc::io, fmt::format("the main thread of pid {} has exited (pthread_exit) while "
                                                    "others run on: its memory map can no longer be read, so no "
                                                    "stack is taken",
                                                    pid_));
        return maps;
    }
    MemoryReader& memory() override { return *memory_; }
    std::unique_ptr<FileAccess> file_access() override { return std::make_unique<FsAccess>(pid_); }

    // The kernel's own handle on the mapped file (/proc/<pid>/map_files:
    // CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), which is right across mount
    // namespaces and after the file was deleted or replaced; else the path
    // inside the target's root.
    Result<OpenedFile> open_mapped_file(const Mapping& m) override {
        std::string link = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid_, m.start.value(), m.end.value());
        int fd = test_no_map_files ? -1 : ::open(link.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd >= 0) {
            UniqueFd out(fd);
            struct stat st {};
            if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
                ::fcntl(fd, F_SETFL, 0);
                return OpenedFile{std::move(out), true};
            }
        }
        if (m.path.empty() || m.path.front() != '/')
            return make_error(Errc::io, fmt::format("mapping {:#x} of pid {} has no file", m.start.value(), pid_));
        // The kernel writes a mapped file's path as the reader sees it when
        // the file is within the reader's root (a chroot below ours), else as
        // the target's mount namespace names it (a container's own root).
        // So: inside its root first, then in ours; the file whose inode is
        // the mapped one wins, else the first that opened, for the caller's
        // build-id check to judge. A deleted or replaced file: whatever is at
        // its path now, which that check then most likely refuses.
        std::string path = without_deleted(m.path);
        auto same_inode = [&](const UniqueFd& file) {
            struct stat st {};
            return ::fstat(file.get(), &st) == 0 && st.st_ino == m.inode;
        };
        auto in_root = open_in_root(pid_, path);
        if (in_root && same_inode(*in_root)) return OpenedFile{std::move(*in_root), true};
        if (!same_mount_namespace(pid_) || !in_root) {
            UniqueFd ours(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
            struct stat st {};
            if (ours.valid() && ::fstat(ours.get(), &st) == 0 && S_ISREG(st.st_mode)) {
                ::fcntl(ours.get(), F_SETFL, 0);
                if (st.st_ino == m.inode || !in_root) return OpenedFile{std::move(ours), st.st_ino == m.inode};
            }
        }
        if (!in_root) return std::move(in_root).error();
        return OpenedFile{std::move(*in_root), false};
    }
    Result<UniqueFd> open_file(const std::string& path) override { return open_in_root(pid_, path); }

    Result<TableFile> open_table() override { return TableFile::open(pid_, ids_ptr()); }

    // Exec closes the table (MFD_CLOEXEC): the watch compares this with
    // what it opened to tell whether the process still holds that table.
    std::optional<FileId> fd_file(int fd) override {
        if (fd < 0) return std::nullopt;
        return through_fd_dir(fd, [](const std::string& path) -> std::optional<FileId> {
            struct stat st {};
            if (::stat(path.c_str(), &st) != 0) return std::nullopt;
            return FileId{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
        });
    }

    std::optional<std::string> fd_target(int fd) override {
        if (fd < 0) return std::nullopt;
        return through_fd_dir(fd, [](const std::string& path) -> std::optional<std::string> {
            char buf[512];
            ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
            if (n <= 0) return std::nullopt;
            return std::string(buf, static_cast<std::size_t>(n));
        });
    }

    // Readable when the process exits (Linux 5.3+); invalid if unavailable.
    UniqueFd exit_notifier() override { return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0))); }

    // Every thread has exited (a zombie, not yet reaped by its parent, is
    // gone for us too). Not when only the main thread has (pthread_exit())
    // and others run on: the process works on, its leader a zombie. A pidfd
    // says so as the kernel's wait(2) does (readable only once the whole
    // thread group has exited); without one, /proc and kill(2).
    bool exited() override {
        if (exited_) return true;
        if (!pidfd_tried_) {
            pidfd_tried_ = true;
            int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
            if (fd < 0 && errno == ESRCH) return exited_ = true;
            pidfd_.reset(fd);
        }
        if (pidfd_.valid()) {
            pollfd p{pidfd_.get(), POLLIN, 0};
            int n = ::poll(&p, 1, 0);
            if (n > 0) return exited_ = true;
            if (n == 0) return false;
        }
        return exited_ = process_ended(pid_);
    }

    Result<CaptureOutcome> capture(pid_t tid, const std::vector<Mapping>& maps, const CaptureOptions& opt,
                                   const StillStalled& still_stalled) override {
        return capture_thread(pid_, tid, maps, opt, still_stalled, *memory_);
    }

private:
    // `use` applied to /proc/PID/fd/N, or, once the main thread has exited
    // while others run on (its fd directory is empty then), to the same
    // descriptor through a thread that runs on: they share one table of
    // files. The first answer that is not empty.
    template <class Use>
    auto through_fd_dir(int fd, const Use& use) -> decltype(use(std::string())) {
        auto via_thread = [&] { return use(fmt::format("/proc/{}/task/{}/fd/{}", pid_, stand_in_, fd)); };
        if (stand_in_ > 0)
            if (auto r = via_thread()) return r;
        if (auto r = use(fmt::format("/proc/{}/fd/{}", pid_, fd))) return r;
        stand_in_ = stand_in_thread(pid_).value_or(0);
        if (stand_in_ > 0) return via_thread();
        return {};
    }

    // Read on first use: `list` opens a target for every process.
    const std::shared_ptr<NamespaceIds>& ids_ptr() {
        if (!ids_) ids_ = std::make_shared<NamespaceIds>(pid_);
        return ids_;
    }
    NamespaceIds& ids() { return *ids_ptr(); }

    pid_t pid_;
    std::unique_ptr<MemoryReader> memory_;
    std::shared_ptr<NamespaceIds> ids_;
    UniqueFd pidfd_;            // for exited(), opened at its first call
    bool pidfd_tried_ = false;
    bool exited_ = false;       // once exited, always
    pid_t stand_in_ = 0;        // a thread that runs on after the main thread exited, or 0
};

}  // namespace

std::unique_ptr<Target> open_target(pid_t pid) { return std::make_unique<LinuxTarget>(pid); }

std::vector<pid_t> all_processes() { return numeric_entries("/proc").value_or(std::vector<pid_t>{}); }

}  // namespace sw::proc
