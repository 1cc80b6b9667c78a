// The search tables of one process's modules that have .eh_frame but no
// .eh_frame_hdr (static non-PIE executables), built from their files on
// first use (see eh_frame.hpp) and kept until flush.
//
// libunwind reads a remote table through our access_mem, so each table is
// given an address in a range no mapping can have: non-canonical on x86-64
// with 4- and 5-level paging alike, served from this process's memory.
#pragma once

#include <libunwind.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "proc/maps.hpp"
#include "proc/target.hpp"
#include "unwind/eh_frame.hpp"

namespace sw::unwind {

class EhFrameTables {
public:
    // The first table's address; each next one is 4 GiB further.
    static constexpr std::uint64_t reserved_base = 0x4000'0000'0000'0000ull;

    explicit EhFrameTables(proc::Target& target) : target_(target) {}

    // libunwind's description of the table that covers `ip`, or nullptr when
    // its module is no file, has an .eh_frame_hdr (libunwind uses that), or
    // has no usable .eh_frame. Opens the module's file (as the target sees
    // it: Target::open_mapped_file) once per mapping;
    // failures are remembered too. Call with the target's file-system rights.
    // The pointer is valid until the next call.
    unw_dyn_info_t* find(std::uint64_t ip);

    // The table already built for the module of `ip`, or nullptr: checked
    // before libunwind's own lookup, which would map the file again for
    // every frame of a module it has no table for.
    unw_dyn_info_t* built(std::uint64_t ip);

    // The word at `addr` if it is in a table's reserved range: nullopt if
    // `addr` is not in the reserved ranges at all, false if it is but no
    // table holds it (then true and *out set when one does).
    std::optional<bool> read(std::uint64_t addr, unw_word_t* out) const;

    // Forgets the mappings read for the current unwind (they are re-read
    // once at the next miss) and, with `tables`, every table.
    void forget(bool tables);

private:
    struct Module {
        std::uint64_t start = 0, end = 0;  // the executable mapping that was looked at
        std::uint64_t inode = 0;
        std::optional<SearchTable> table;  // nullopt: nothing to add to libunwind's view
        unw_dyn_info_t info{};
    };
    std::optional<SearchTable> build(const proc::Mapping& m) const;

    proc::Target& target_;
    std::vector<Module> modules_;
    std::optional<std::vector<proc::Mapping>> maps_;
};

}  // namespace sw::unwind
