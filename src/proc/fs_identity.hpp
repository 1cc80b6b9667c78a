// Opening files on a target's behalf with no more privilege than it has.
//
// Symbolization and unwinding open the files a target has mapped, by the
// paths its /proc/<pid>/maps shows: paths the target controls (it can swap
// one for a symlink to a file it may not read). When stallwatch runs as root
// against a process of another user, this guard makes the calling thread's
// file system accesses use that user's ids (setfsuid/setfsgid), so root's
// rights are never lent to the target. Nothing changes otherwise, nor for
// a process that is not dumpable (a set-user-ID program: its /proc files
// belong to root and only root may read them).
#pragma once

#include <sys/types.h>

namespace sw::proc {

class FsIdentity {
public:
    explicit FsIdentity(pid_t pid);
    ~FsIdentity();
    FsIdentity(const FsIdentity&) = delete;
    FsIdentity& operator=(const FsIdentity&) = delete;

    bool switched() const { return switched_; }

private:
    bool switched_ = false;
    uid_t old_uid_ = 0;
    gid_t old_gid_ = 0;
};

}  // namespace sw::proc
