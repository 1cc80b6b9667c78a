#include "proc/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <memory>
#include <string_view>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace sw::proc {

Status check_process(pid_t pid) {
    if (pid <= 0) return make_error(Errc::usage, fmt::format("{} is not a valid pid", pid));
    struct stat st {};
    std::string dir = fmt::format("/proc/{}", pid);
    if (::stat(dir.c_str(), &st) != 0) {
        int e = errno;
        if (e == ENOENT) return make_error(Errc::no_such_process, fmt::format("no process with pid {}", pid), e);
        return make_error(Errc::io, fmt::format("cannot inspect {}: {}", dir, std::strerror(e)), e);
    }
    return ok_status();
}

std::optional<pid_t> process_of_thread(pid_t id) {
    std::ifstream in(fmt::format("/proc/{}/status", id));
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("Tgid:", 0) != 0) continue;
        std::string_view v(line);
        v.remove_prefix(5);
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        pid_t tgid = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), tgid);
        if (ec != std::errc{} || end != v.data() + v.size() || tgid <= 0) return std::nullopt;
        return tgid;
    }
    return std::nullopt;
}

char thread_state_letter(pid_t pid, pid_t tid) {
    char buf[512];
    int fd = ::open(fmt::format("/proc/{}/task/{}/stat", pid, tid).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return '?';
    ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    if (n <= 0) return '?';
    // "tid (comm) S ...": comm may hold spaces and parentheses (at most 15
    // bytes of it, so the state is within the first read); the state
    // follows the last ')'.
    std::string_view stat(buf, static_cast<std::size_t>(n));
    auto close = stat.rfind(')');
    if (close == std::string_view::npos || close + 2 >= stat.size()) return '?';
    return stat[close + 2];
}

namespace {
bool dead_state(char s) { return s == 'Z' || s == 'X'; }
}  // namespace

std::optional<pid_t> stand_in_thread(pid_t pid) {
    if (thread_state_letter(pid, pid) != 'Z') return std::nullopt;
    auto tids = numeric_entries(fmt::format("/proc/{}/task", pid));
    if (!tids) return std::nullopt;
    for (pid_t tid : *tids) {
        if (tid == pid) continue;
        char s = thread_state_letter(pid, tid);
        if (s != '?' && !dead_state(s)) return tid;
    }
    return std::nullopt;
}

std::string fd_dir(pid_t pid) {
    if (auto tid = stand_in_thread(pid)) return fmt::format("/proc/{}/task/{}/fd", pid, *tid);
    return fmt::format("/proc/{}/fd", pid);
}

bool process_ended(pid_t pid) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    char leader = thread_state_letter(pid, pid);
    if (leader == '?') return ::kill(pid, 0) != 0 && errno == ESRCH;  // unreadable: only what kill says
    if (!dead_state(leader)) return false;
    // The main thread is a zombie: the process ended unless another thread runs on.
    return !stand_in_thread(pid).has_value();
}

std::string comm(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/comm", pid));
    std::string name;
    if (!std::getline(in, name) || name.empty()) return "?";
    return name;
}

namespace {
int read_int_file(const char* path, int fallback) {
    std::ifstream in(path);
    int v = fallback;
    if (!(in >> v)) return fallback;
    return v;
}
}  // namespace

Result<Ids> process_ids(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/status", pid));
    if (!in) return make_error(Errc::no_such_process, fmt::format("process {} exited", pid));
    Ids ids;
    bool got_uid = false, got_gid = false;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("Uid:", 0) == 0)
            got_uid = std::sscanf(line.c_str() + 4, "%u %u %u %u", &ids.uid[0], &ids.uid[1], &ids.uid[2],
                                  &ids.uid[3]) == 4;
        else if (line.rfind("Gid:", 0) == 0)
            got_gid = std::sscanf(line.c_str() + 4, "%u %u %u %u", &ids.gid[0], &ids.gid[1], &ids.gid[2],
                                  &ids.gid[3]) == 4;
    }
    if (!got_uid || !got_gid)
        return make_error(Errc::io, fmt::format("cannot read the user of process {}", pid));
    return ids;
}

std::optional<std::vector<pid_t>> numeric_entries(const std::string& dir) {
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (!d) return std::nullopt;
    std::vector<pid_t> out;
    while (dirent* e = ::readdir(d.get())) {
        pid_t id = 0;
        std::string_view name(e->d_name);
        auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
        if (ec == std::errc{} && p == name.data() + name.size() && id > 0) out.push_back(id);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string permission_hint(pid_t pid) {
    struct stat st {};
    std::string dir = fmt::format("/proc/{}", pid);
    uid_t me = ::geteuid();
    if (::stat(dir.c_str(), &st) == 0 && st.st_uid != me && me != 0)
        return fmt::format("pid {} belongs to uid {} and you are uid {}: run stallwatch as that "
                           "user, or as root",
                           pid, st.st_uid, me);
    int yama = read_int_file("/proc/sys/kernel/yama/ptrace_scope", 0);
    if (yama >= 1 && me != 0)
        return fmt::format("kernel.yama.ptrace_scope is {}: use 'stallwatch run' to start the "
                           "program as a child, or grant CAP_SYS_PTRACE",
                           yama);
    return "missing CAP_SYS_PTRACE or the process is not dumpable";
}

}  // namespace sw::proc
