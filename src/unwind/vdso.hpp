// The vDSO has no file on disk, so libunwind's ptrace helpers cannot find
// its unwind tables, and a thread caught inside it (clock_gettime,
// gettimeofday) would not be unwound past it. This reads the vDSO's ELF
// image from the target's memory and describes its .eh_frame_hdr search
// table for libunwind's remote-table lookup.
#pragma once

#include <libunwind.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/remote_addr.hpp"
#include "proc/maps.hpp"
#include "proc/memory.hpp"

namespace sw::unwind {

struct VdsoTable {
    std::uint64_t start = 0, end = 0;  // the vDSO mapping in the target
    unw_dyn_info_t info{};             // UNW_INFO_FORMAT_REMOTE_TABLE over target memory

    bool contains(std::uint64_t ip) const { return ip >= start && ip < end; }
};

// Parses `image` (the vDSO mapping's bytes, mapped at `start` in the
// target). Pure; nullopt when the image is not an ELF64 with a usable
// .eh_frame_hdr.
std::optional<VdsoTable> parse_vdso(std::span<const std::byte> image, std::uint64_t start);

// Finds the [vdso] mapping in `maps` and reads it through `memory`. nullopt
// if there is none.
std::optional<VdsoTable> load_vdso(const std::vector<proc::Mapping>& maps, proc::MemoryReader& memory);

}  // namespace sw::unwind
