#include "unwind/vdso.hpp"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "proc/maps.hpp"
#include "unwind/eh_frame_hdr.hpp"

namespace sw::unwind {
namespace {

template <class T>
std::optional<T> read_at(std::span<const std::byte> b, std::uint64_t off) {
    if (off > b.size() || b.size() - off < sizeof(T)) return std::nullopt;
    T v;
    std::memcpy(&v, b.data() + off, sizeof v);
    return v;
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
    if (off >= image.size()) return std::nullopt;
    std::uint64_t size = std::min<std::uint64_t>(frame_hdr->p_memsz, image.size() - off);
    auto info = eh_frame_hdr_table(image.subspan(off), start + off, size, start, start + image.size());
    if (!info) return std::nullopt;
    VdsoTable v;
    v.start = start;
    v.end = start + image.size();
    v.info = *info;
    return v;
}

std::optional<VdsoTable> load_vdso(const std::vector<proc::Mapping>& maps, proc::MemoryReader& memory) {
    for (const auto& m : maps) {
        if (m.path != "[vdso]" || m.size() > (1u << 20)) continue;
        std::vector<std::byte> image(m.size());
        if (!memory.read_exact(m.start, image)) return std::nullopt;
        return parse_vdso(image, m.start.value());
    }
    return std::nullopt;
}

}  // namespace sw::unwind
