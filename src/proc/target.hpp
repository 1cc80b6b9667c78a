// A target process, as every stage above the platform sees it: its identity,
// its threads and their kernel states, its mappings, its memory, its files,
// its table, its end, and the stop of one of its threads. One implementation
// per platform (target_linux.cpp: /proc, ptrace, process_vm_readv, pidfd),
// and in-memory fakes in the unit tests (tests/support/fake_target.hpp).
//
// Ids here are the ones this monitor's platform calls take (on Linux, ids in
// stallwatch's own PID namespace). Where a target sees other ids or other
// files (a container), the translation belongs in the implementation, never
// in the logic that uses this interface (docs/architecture.md).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "common/unique_fd.hpp"
#include "proc/capture.hpp"
#include "proc/maps.hpp"
#include "proc/memory.hpp"
#include "proc/table_file.hpp"
#include "proc/thread_info.hpp"

namespace sw::proc {

// One open file, for "is it still the same file" checks.
struct FileId {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    friend bool operator==(const FileId&, const FileId&) = default;
};

// A file of the target, opened for reading.
struct OpenedFile {
    UniqueFd fd;
    // Known to be the file the target has mapped, not just the file at the
    // same path now (which a package upgrade may have replaced).
    bool mapped_file = false;
};

// While alive, files this thread opens are opened with the target's rights
// (FsIdentity on Linux). Destroy it on the thread that made it.
class FileAccess {
public:
    virtual ~FileAccess() = default;
};

class Target {
public:
    virtual ~Target() = default;

    virtual pid_t pid() const = 0;

    // ---- who it is (best effort) ----
    virtual std::string name() = 0;        // its command name, "?" when unreadable
    virtual std::string executable() = 0;  // its program's path, "" when unreadable
    virtual std::string owner() = 0;       // its owner's user name (or uid), "?" when unreadable

    // ---- the ids it sees (containers) ----
    // Its pid as it sees itself, when that differs from pid() (it runs in
    // another PID namespace); else 0.
    virtual pid_t pid_in_namespace() = 0;
    // The id it gives its thread `tid`, when that differs from tid; else 0.
    virtual pid_t tid_in_namespace(pid_t tid) = 0;
    // The reverse: this monitor's id of the thread it calls `inner` (an id
    // read from its memory); 0 when it has no such thread now. A thread of
    // another process is never the answer.
    virtual pid_t tid_from_namespace(pid_t inner) = 0;
    // Its cgroup (v2) path, "" when none (or the root).
    virtual std::string cgroup() = 0;

    // ---- its threads ----
    // Every thread now, sorted. Errors: no_such_process, permission_denied.
    virtual Result<std::vector<pid_t>> threads() = 0;
    virtual std::string thread_name(pid_t tid) = 0;  // "" when unreadable
    // State, system call and wait channel; read before a stop (capture.hpp).
    virtual ThreadState thread_state(pid_t tid) = 0;
    // Stopped by a signal or by a tracer: not a stall of its own making.
    virtual bool thread_frozen(pid_t tid) = 0;
    // `tid` is a thread of this process right now, and has not exited (an
    // exited main thread that waits for the others, a zombie, has).
    virtual bool has_thread(pid_t tid) = 0;

    // ---- its memory and files ----
    virtual Result<std::vector<Mapping>> mappings() = 0;
    virtual MemoryReader& memory() = 0;
    virtual std::unique_ptr<FileAccess> file_access() = 0;
    // The file behind mapping `m` as the target sees it: the very file it
    // has mapped (even one deleted or replaced on disk since) where the
    // platform allows, else the file at m.path in the target's own root.
    virtual Result<OpenedFile> open_mapped_file(const Mapping& m) = 0;
    // `path` as the target sees it: resolved in its root and mounts, never
    // outside that root (a container's symlink cannot lead to our files).
    virtual Result<UniqueFd> open_file(const std::string& path) = 0;

    // ---- its table ----
    // Finds and opens its progress table (errors as TableFile::open).
    virtual Result<TableFile> open_table() = 0;
    // The file behind its descriptor `fd`, nullopt when it has none (closed,
    // or the process is gone). Still answered after its main thread exited
    // while others run on.
    virtual std::optional<FileId> fd_file(int fd) = 0;
    // What its descriptor `fd` refers to, as the platform names it (on
    // Linux the /proc/PID/fd/N link: "/var/db/x", "socket:[123]", "pipe:[4]");
    // nullopt when unknown.
    virtual std::optional<std::string> fd_target(int /*fd*/) { return std::nullopt; }

    // ---- its end ----
    // A descriptor that becomes readable when it exits; invalid when the
    // platform has none (then poll exited()).
    virtual UniqueFd exit_notifier() = 0;
    // It has exited: no thread of it runs (a zombie counts as exited). A
    // process whose main thread exited while other threads run on has not.
    virtual bool exited() = 0;

    // ---- stopping one thread (capture.hpp) ----
    virtual Result<CaptureOutcome> capture(pid_t tid, const std::vector<Mapping>& maps, const CaptureOptions& opt,
                                           const StillStalled& still_stalled) = 0;
};

// The process `pid` on this machine. Nothing is checked yet: every call
// reports its own failure (check_process for a clear first error).
std::unique_ptr<Target> open_target(pid_t pid);

// Every process on this machine, sorted (those this monitor can see).
std::vector<pid_t> all_processes();

}  // namespace sw::proc
