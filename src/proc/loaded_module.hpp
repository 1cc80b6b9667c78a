// What a loaded ELF module looks like in the target's memory: its header and
// program headers as the dynamic loader mapped them, read through the
// target's MemoryReader, never from a file. The build-id found here is the
// one the process runs, whatever the file at its path holds now; the
// .eh_frame_hdr found here is the unwind index it runs with.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/remote_addr.hpp"
#include "proc/maps.hpp"
#include "proc/memory.hpp"

namespace sw::proc {

struct LoadedModule {
    RemoteAddr base;              // where its ELF header is mapped
    std::uint64_t bias = 0;       // run-time address minus link-time address
    std::vector<std::byte> build_id;  // NT_GNU_BUILD_ID's bytes; empty when it has none
    // PT_GNU_EH_FRAME (the .eh_frame_hdr), at run-time addresses.
    std::optional<RemoteAddr> eh_frame_hdr;
    std::uint64_t eh_frame_hdr_size = 0;
    // The lowest and highest run-time addresses of its executable segments.
    RemoteAddr text_start, text_end;
};

// The module that mapping `m` belongs to (the mappings of the same file, the
// first of which maps its ELF header). nullopt when it is not an ELF file
// mapped whole (a data file, a mapping whose header is not readable).
std::optional<LoadedModule> read_loaded_module(MemoryReader& memory, const std::vector<Mapping>& maps,
                                               const Mapping& m);

// The first mapping of the file that `m` maps (offset 0), or nullptr.
const Mapping* module_head(const std::vector<Mapping>& maps, const Mapping& m);

// Hex digits of a build-id, for messages.
std::string build_id_hex(const std::vector<std::byte>& id);

}  // namespace sw::proc
