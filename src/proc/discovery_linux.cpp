// Linux: /proc/PID/stat, the owner of /proc/PID, getpwnam and /proc/PID/fd.
#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <string_view>

#include "common/unique_fd.hpp"
#include "proc/discovery.hpp"

namespace sw::proc {

std::optional<ProcessStart> process_start(pid_t pid) {
    UniqueFd fd(::open(fmt::format("/proc/{}/stat", pid).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    char buf[1024];
    ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    if (n <= 0) return std::nullopt;
    std::string_view s(buf, static_cast<std::size_t>(n));
    // The command name (field 2) may hold spaces and ')': fields count from
    // the last ')'. After it: state (3), ppid, pgrp, session, tty_nr,
    // tpgid, flags (9) ... starttime (22).
    auto close = s.rfind(')');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view rest = s.substr(close + 1);
    ProcessStart out;
    int field = 2;
    for (std::size_t i = 0; i < rest.size() && field < 22;) {
        while (i < rest.size() && rest[i] == ' ') ++i;
        std::size_t j = i;
        while (j < rest.size() && rest[j] != ' ') ++j;
        ++field;
        std::string_view word = rest.substr(i, j - i);
        if (field == 9) {
            unsigned long flags = 0;
            std::from_chars(word.data(), word.data() + word.size(), flags);
            out.kernel_thread = (flags & 0x00200000UL) != 0;  // PF_KTHREAD
        } else if (field == 22) {
            auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), out.start);
            if (ec != std::errc{}) return std::nullopt;
            return out;
        }
        i = j;
    }
    return std::nullopt;
}

std::optional<uid_t> owner_uid(pid_t pid) {
    struct stat st {};
    if (::stat(fmt::format("/proc/{}", pid).c_str(), &st) != 0) return std::nullopt;
    return st.st_uid;
}

std::optional<uid_t> find_user(const std::string& name_or_uid) {
    if (passwd* pw = ::getpwnam(name_or_uid.c_str())) return pw->pw_uid;
    uid_t uid = 0;
    const char* end = name_or_uid.data() + name_or_uid.size();
    auto [at, ec] = std::from_chars(name_or_uid.data(), end, uid);
    if (name_or_uid.empty() || ec != std::errc{} || at != end) return std::nullopt;
    return uid;
}

// numeric_entries() leaves out 0, which is a descriptor here (a daemon that
// closed its standard input gets 0 from memfd_create).
std::optional<std::vector<int>> descriptor_numbers(pid_t pid) {
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(fmt::format("/proc/{}/fd", pid).c_str()), ::closedir);
    if (!d) return std::nullopt;
    std::vector<int> out;
    while (dirent* e = ::readdir(d.get())) {
        int fd = 0;
        std::string_view name(e->d_name);
        auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), fd);
        if (ec == std::errc{} && p == name.data() + name.size()) out.push_back(fd);
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace sw::proc
