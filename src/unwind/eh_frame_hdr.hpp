// The .eh_frame_hdr search table of a module, as the target has it loaded:
// libunwind binary-searches it through our access_mem, so nothing is read
// from the module's file (which, in a container or after an upgrade, may
// not be the one the process runs).
#pragma once

#include <libunwind.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace sw::unwind {

// `head`: the first bytes of an .eh_frame_hdr (16 are enough) that sits at
// `hdr_addr` in the target and is `hdr_size` bytes long; [start, end) the
// code it covers. nullopt when the header is not one libunwind's search can
// use (version 1, a udata4 count, datarel|sdata4 entries) or the table does
// not fit in the header's size.
std::optional<unw_dyn_info_t> eh_frame_hdr_table(std::span<const std::byte> head, std::uint64_t hdr_addr,
                                                 std::uint64_t hdr_size, std::uint64_t start, std::uint64_t end);

}  // namespace sw::unwind
