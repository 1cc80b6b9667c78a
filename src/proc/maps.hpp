// The memory map of a process (/proc/<pid>/maps), parsed into value types.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/remote_addr.hpp"
#include "common/result.hpp"

namespace sw::proc {

struct Mapping {
    RemoteAddr start;
    RemoteAddr end;  // one past the last byte
    bool readable = false, writable = false, executable = false;
    bool shared = false;  // MAP_SHARED: the file's own pages, not a private copy
    std::uint64_t offset = 0;
    std::uint64_t dev = 0;  // the file's device, as in st_dev (makedev(major, minor))
    std::uint64_t inode = 0;
    std::string path;  // empty for anonymous memory; "[stack]" etc. for special ones

    bool contains(RemoteAddr addr) const { return in_range(addr, start, end); }
    std::uint64_t size() const { return end - start; }
};

// `path` without the " (deleted)" that /proc appends to the path of a file
// deleted (or replaced by a rename, as package upgrades do) since it was
// mapped or executed.
std::string without_deleted(const std::string& path);

// Parses the text of a maps file. Lines that do not parse are skipped.
std::vector<Mapping> parse_maps(const std::string& text);

// Bytes of a file that the target maps shared (the stallwatch table): the
// file's identity (st_dev, st_ino), the offset in it and the length, at
// most 64 bytes.
struct MappedFileBytes {
    std::uint64_t dev = 0, inode = 0, offset = 0;
    std::size_t size = 0;
};

// Finds where the target maps `what`: a readable MAP_SHARED mapping of the
// same file that covers the whole range (a private mapping may hold a copy
// that differs from the file). Nullopt when there is none.
std::optional<RemoteAddr> find_mapped(const std::vector<Mapping>& maps, const MappedFileBytes& what);

// A hash of the executable file mappings (path, start, inode): it changes
// when a module is loaded, unloaded or moved (dlopen, dlclose).
std::size_t executable_signature(const std::vector<Mapping>& maps);

// Reads /proc/<pid>/maps. Errors: no_such_process, permission_denied, io.
Result<std::vector<Mapping>> read_maps(pid_t pid);

// The mapping that contains `addr`, or nullptr.
const Mapping* find_mapping(const std::vector<Mapping>& maps, RemoteAddr addr);

// Reads a whole small file (from /proc) into a string.
Result<std::string> read_text_file(const std::string& path);

}  // namespace sw::proc
