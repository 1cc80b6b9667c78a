// The host agent, `attach --all`: one loop that runs a Watcher per process
// carrying a table, finds new ones as they come, drops those that exit and
// gives up, with one error, on one that misbehaves, never on itself.
#pragma once

#include <string>

namespace sw::cli {

// --comm: a shell pattern (fnmatch(3), no flags) over the command name.
bool comm_matches(const std::string& pattern, const std::string& comm);

// --cgroup: `path` is `prefix` or below it, component by component
// ("/a" matches "/a" and "/a/b", not "/ab"); a trailing slash is ignored.
// A process without a cgroup v2 path ("") never matches.
bool cgroup_matches(const std::string& prefix, const std::string& path);

}  // namespace sw::cli
