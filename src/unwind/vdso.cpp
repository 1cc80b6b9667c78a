#include "unwind/vdso.hpp"

#include <elf.h>

#include <cstring>
#include <vector>

#include "proc/maps.hpp"

namespace sw::unwind {
namespace {

template <class T>
std::optional<T> read_at(std::span<const std::byte> b, std::uint64_t off) {
    if (off > b.size() || b.size() - off < sizeof(T)) return std::nullopt;
    T v;
    std::memcpy(&v, b.data() + off, sizeof v);
    return v;
}

// Bytes taken by a DWARF pointer encoding's value format, 0 if unsupported.
std::size_t encoded_size(std::uint8_t enc) {
    switch (enc & 0x0f) {
    case 0x02: case 0x0a: return 2;  // udata2, sdata2
    case 0x03: case 0x0b: return 4;  // udata4, sdata4
    case 0x04: case 0x0c: return 8;  // udata8, sdata8
    default: return 0;
    }
}

}  // namespace

std::optional<VdsoTable> parse_vdso(std::span<const std::byte> image, std::uint64_t start) {
    auto eh = read_at<Elf64_Ehdr>(image, 0);
    if (!eh || std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_phentsize != sizeof(Elf64_Phdr))
        return std::nullopt;
    std::optional<Elf64_Phdr> load, frame_hdr;
    for (unsigned i = 0; i < eh->e_phnum; ++i) {
        auto ph = read_at<Elf64_Phdr>(image, eh->e_phoff + std::uint64_t{i} * sizeof(Elf64_Phdr));
        if (!ph) return std::nullopt;
        if (ph->p_type == PT_LOAD && !load) load = ph;
        if (ph->p_type == PT_GNU_EH_FRAME) frame_hdr = ph;
    }
    if (!load || !frame_hdr || frame_hdr->p_vaddr < load->p_vaddr) return std::nullopt;

    // The image starts at the first PT_LOAD's vaddr, mapped at `start`.
    std::uint64_t off = frame_hdr->p_vaddr - load->p_vaddr;
    auto version = read_at<std::uint8_t>(image, off);
    auto ptr_enc = read_at<std::uint8_t>(image, off + 1);
    auto count_enc = read_at<std::uint8_t>(image, off + 2);
    auto table_enc = read_at<std::uint8_t>(image, off + 3);
    // libunwind's binary search needs datarel|sdata4 entries and a udata4 count.
    if (!version || *version != 1 || !ptr_enc || !count_enc || *count_enc != 0x03 || !table_enc ||
        *table_enc != 0x3b)
        return std::nullopt;
    std::size_t ptr_size = encoded_size(*ptr_enc);
    if (ptr_size == 0) return std::nullopt;
    auto fde_count = read_at<std::uint32_t>(image, off + 4 + ptr_size);
    std::uint64_t table = off + 4 + ptr_size + 4;
    if (!fde_count || *fde_count == 0 || table + std::uint64_t{*fde_count} * 8 > image.size()) return std::nullopt;

    VdsoTable v;
    v.start = start;
    v.end = start + image.size();
    v.info.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    v.info.start_ip = start;
    v.info.end_ip = start + image.size();
    v.info.gp = 0;
    v.info.u.rti.name_ptr = 0;
    v.info.u.rti.segbase = start + off;
    v.info.u.rti.table_data = start + table;
    v.info.u.rti.table_len = std::uint64_t{*fde_count} * 8 / sizeof(unw_word_t);
    return v;
}

std::optional<VdsoTable> load_vdso(pid_t pid, proc::MemoryReader& memory) {
    auto maps = proc::read_maps(pid);
    if (!maps) return std::nullopt;
    for (const auto& m : *maps) {
        if (m.path != "[vdso]" || m.size() > (1u << 20)) continue;
        std::vector<std::byte> image(m.size());
        if (!memory.read_exact(m.start, image)) return std::nullopt;
        return parse_vdso(image, m.start.value());
    }
    return std::nullopt;
}

}  // namespace sw::unwind
