// A binary-search table over a module's .eh_frame, for modules linked
// without one: Debian's static (non-PIE) links have no .eh_frame_hdr and no
// PT_GNU_EH_FRAME (gcc passes --eh-frame-hdr to the linker for dynamic links
// only), so libunwind's ptrace helpers find no table and fall back to
// guessing frames from rbp. The table built here has .eh_frame_hdr's layout,
// which libunwind's remote-table lookup (UNW_INFO_FORMAT_REMOTE_TABLE)
// searches; the FDEs it points to are read from the target's memory.
//
// Everything here is pure: ELF headers and .eh_frame bytes come from the
// file (untrusted: the target controls it) and are parsed with checked reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

namespace sw::unwind {

struct SearchTable {
    // Runtime address of .eh_frame's first byte: the entries are relative to it.
    std::uint64_t segbase = 0;
    // The lowest pc_begin and the highest pc_begin + pc_range indexed.
    std::uint64_t start_ip = 0, end_ip = 0;
    // Entries of two little-endian int32 each, {pc_begin - segbase,
    // FDE address - segbase}, sorted by pc_begin (.eh_frame_hdr's table).
    std::vector<std::byte> bytes;

    std::size_t entries() const { return bytes.size() / 8; }
};

// Indexes the FDEs of an .eh_frame section whose bytes are `section`, loaded
// at runtime address `address`. CIE augmentations 'z', 'R', 'P', 'L', 'S'
// (and 'B', 'G', which carry no data) are understood; FDEs of a CIE with
// anything else, with a pointer encoding other than absolute, pc-relative or
// aligned, or too far from `address` for a 32-bit offset, are left out.
// Walking stops at a zero terminator or at the first record that does not
// fit the section. nullopt when no FDE could be indexed.
std::optional<SearchTable> index_eh_frame(std::span<const std::byte> section, std::uint64_t address);

// What the unwinder needs from an ELF64 file's headers.
struct ElfUnwindLayout {
    bool has_eh_frame_hdr = false;  // a PT_GNU_EH_FRAME: libunwind reads that itself
    bool has_interp = false;        // a PT_INTERP: a dynamically linked executable
    struct Load {
        std::uint64_t offset = 0, vaddr = 0, filesz = 0;
    };
    std::vector<Load> loads;
    struct Section {
        std::uint64_t offset = 0, size = 0, vaddr = 0;
    };
    std::optional<Section> eh_frame;  // the SHF_ALLOC section named .eh_frame

    // The load bias of a mapping of file offset `file_offset` at `start`, or
    // nullopt when no PT_LOAD holds that offset.
    std::optional<std::uint64_t> bias(std::uint64_t start, std::uint64_t file_offset) const;
};

// Reads `out.size()` bytes at `offset` of the file; false if it cannot.
using ReadAt = std::function<bool(std::uint64_t offset, std::span<std::byte> out)>;

// The program and section headers of the ELF64 little-endian file `read`
// reads. nullopt when it is not one or its headers do not fit.
std::optional<ElfUnwindLayout> read_elf_layout(const ReadAt& read);

// A file's bytes as a ReadAt (for tests and the fuzzer).
ReadAt read_from(std::span<const std::byte> file);

}  // namespace sw::unwind
