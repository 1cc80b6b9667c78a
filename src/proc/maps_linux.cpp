#include "proc/maps.hpp"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <sstream>
#include <string_view>

#include "common/unique_fd.hpp"
#include "proc/process.hpp"

namespace sw::proc {

Result<std::string> read_text_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        int e = errno;
        Errc code = (e == ENOENT || e == ESRCH) ? Errc::no_such_process
                    : (e == EACCES || e == EPERM) ? Errc::permission_denied
                                                  : Errc::io;
        return make_error(code, fmt::format("cannot open {}: {}", path, std::strerror(e)), e);
    }
    std::string out;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            Errc code = e == ESRCH ? Errc::no_such_process : Errc::io;
            return make_error(code, fmt::format("cannot read {}: {}", path, std::strerror(e)), e);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

std::vector<Mapping> parse_maps(const std::string& text) {
    std::vector<Mapping> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        Mapping m;
        char perms[5] = {};
        unsigned long long start = 0, end = 0, offset = 0, inode = 0;
        unsigned int major = 0, minor = 0;
        int path_at = 0;
        if (std::sscanf(line.c_str(), "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, perms,
                        &offset, &major, &minor, &inode, &path_at) < 7)
            continue;
        m.start = RemoteAddr{start};
        m.end = RemoteAddr{end};
        m.offset = offset;
        m.inode = inode;
        m.dev = makedev(major, minor);
        m.shared = perms[3] == 's';
        m.readable = perms[0] == 'r';
        m.writable = perms[1] == 'w';
        m.executable = perms[2] == 'x';
        if (path_at > 0 && static_cast<size_t>(path_at) <= line.size()) m.path = line.substr(static_cast<size_t>(path_at));
        out.push_back(std::move(m));
    }
    return out;
}

Result<std::vector<Mapping>> read_maps(pid_t pid) {
    auto text = read_text_file(fmt::format("/proc/{}/maps", pid));
    if (!text) {
        Error e = std::move(text).error();
        if (e.code == Errc::permission_denied)
            e.message = fmt::format("not permitted to read the memory map of pid {}: {}", pid,
                                    permission_hint(pid));
        return e;
    }
    return parse_maps(*text);
}

std::size_t executable_signature(const std::vector<Mapping>& maps) {
    std::size_t sig = 0;
    for (const auto& m : maps)
        if (m.executable && !m.path.empty())
            sig = sig * 1000003u ^ std::hash<std::string>{}(m.path) ^ (m.start.value() * 31u) ^ m.inode;
    return sig;
}

std::string without_deleted(const std::string& path) {
    constexpr std::string_view suffix = " (deleted)";
    if (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
        return path.substr(0, path.size() - suffix.size());
    return path;
}

const Mapping* find_mapping(const std::vector<Mapping>& maps, RemoteAddr addr) {
    auto it = std::upper_bound(maps.begin(), maps.end(), addr,
                               [](RemoteAddr a, const Mapping& m) { return a < m.start; });
    if (it == maps.begin()) return nullptr;
    --it;
    return it->contains(addr) ? &*it : nullptr;
}

std::optional<RemoteAddr> find_mapped(const std::vector<Mapping>& maps, const MappedFileBytes& what) {
    if (what.size == 0) return std::nullopt;
    for (const auto& m : maps) {
        if (!m.shared || !m.readable || m.dev != what.dev || m.inode != what.inode || m.inode == 0) continue;
        if (what.offset < m.offset || what.offset - m.offset > m.size() ||
            m.size() - (what.offset - m.offset) < what.size)
            continue;
        return m.start + (what.offset - m.offset);
    }
    return std::nullopt;
}

}  // namespace sw::proc
