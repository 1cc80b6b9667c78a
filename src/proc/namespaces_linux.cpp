#include "proc/namespaces.hpp"

#include <fmt/format.h>

#include <charconv>
#include <string_view>
#include <vector>

#include "proc/maps.hpp"
#include "proc/process.hpp"

namespace sw::proc {
namespace {

// The ids of the NSpid: line of a status file, outermost first; empty when
// the line is missing (a kernel before 4.1) or unreadable.
std::vector<pid_t> nspid(const std::string& status_path) {
    std::vector<pid_t> ids;
    auto text = read_text_file(status_path);
    if (!text) return ids;
    auto at = text->find("\nNSpid:");
    if (at == std::string::npos) return ids;
    std::string_view rest(*text);
    rest.remove_prefix(at + 7);
    rest = rest.substr(0, rest.find('\n'));
    while (!rest.empty()) {
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
        if (rest.empty()) break;
        pid_t v = 0;
        auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), v);
        if (ec != std::errc{} || v <= 0) return {};
        ids.push_back(v);
        rest.remove_prefix(static_cast<std::size_t>(end - rest.data()));
    }
    return ids;
}

}  // namespace

NamespaceIds::NamespaceIds(pid_t pid) : pid_(pid), inner_pid_(pid) {
    auto ids = nspid(fmt::format("/proc/{}/status", pid));
    if (ids.size() > 1 && ids.front() == pid) {
        nested_ = true;
        inner_pid_ = ids.back();
    }
}

void NamespaceIds::rescan() {
    to_host_.clear();
    to_inner_.clear();
    auto tids = numeric_entries(fmt::format("/proc/{}/task", pid_));
    if (!tids) return;
    for (pid_t tid : *tids) {
        // Listed under /proc/<pid>/task: a thread of this process, and the
        // first id is ours (the directory's name) by construction.
        auto ids = nspid(fmt::format("/proc/{}/task/{}/status", pid_, tid));
        if (ids.size() < 2 || ids.front() != tid) continue;
        to_host_[ids.back()] = tid;
        to_inner_[tid] = ids.back();
    }
}

pid_t NamespaceIds::lookup(const std::unordered_map<pid_t, pid_t>& map, pid_t id) {
    if (!nested_) return id;
    auto it = map.find(id);
    if (it == map.end()) {
        rescan();  // a thread started since: it refills `map`
        it = map.find(id);
    }
    return it == map.end() ? 0 : it->second;
}

pid_t NamespaceIds::host_tid(pid_t inner) { return lookup(to_host_, inner); }

pid_t NamespaceIds::inner_tid(pid_t host) { return lookup(to_inner_, host); }

void NamespaceIds::translate(table::Snapshot& snap) {
    if (!nested_) return;
    bool rescanned = false;
    for (auto& w : snap.workers) {
        pid_t inner = w.tid;
        w.ns_tid = inner;
        auto seen = slots_.find(w.slot);
        if (seen != slots_.end() && seen->second.generation == w.generation && seen->second.inner == inner) {
            w.tid = seen->second.host;
            continue;
        }
        // A new registration: its tid may be one that an exited thread had,
        // so the threads are read again rather than trusted from before.
        if (!rescanned) {
            rescan();
            rescanned = true;
        }
        auto it = to_host_.find(inner);
        w.tid = it == to_host_.end() ? 0 : it->second;
        slots_[w.slot] = Seen{w.generation, inner, w.tid};
    }
}

std::string NamespaceIds::cgroup_of(pid_t pid) {
    auto text = read_text_file(fmt::format("/proc/{}/cgroup", pid));
    if (!text) return {};
    std::string_view all(*text);
    for (std::size_t at = 0; at < all.size();) {
        auto nl = all.find('\n', at);
        auto line = all.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
        if (line.rfind("0::", 0) == 0) {
            auto path = line.substr(3);
            return path == "/" ? std::string{} : std::string(path);
        }
        if (nl == std::string_view::npos) break;
        at = nl + 1;
    }
    return {};
}

}  // namespace sw::proc
