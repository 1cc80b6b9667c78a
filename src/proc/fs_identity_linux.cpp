#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "proc/fs_identity.hpp"
#include "proc/process.hpp"

namespace sw::proc {

FsIdentity::FsIdentity(pid_t pid) {
    if (::geteuid() != 0) return;  // not more privileged than the user already
    auto ids = process_ids(pid);
    if (!ids) return;
    uid_t uid = ids->uid[3];  // the target's file system ids
    gid_t gid = ids->gid[3];
    if (uid == 0) return;
    struct stat st {};
    if (::stat(fmt::format("/proc/{}", pid).c_str(), &st) != 0 || st.st_uid != ids->uid[1])
        return;  // not dumpable: its /proc files are root's
    old_gid_ = static_cast<gid_t>(::setfsgid(gid));
    old_uid_ = static_cast<uid_t>(::setfsuid(uid));
    switched_ = true;
}

FsIdentity::~FsIdentity() {
    if (!switched_) return;
    ::setfsuid(old_uid_);
    ::setfsgid(old_gid_);
}

}  // namespace sw::proc
