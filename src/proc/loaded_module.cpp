#include "proc/loaded_module.hpp"

#include <elf.h>

#include <fmt/format.h>

#include <cstring>

namespace sw::proc {
namespace {

// Bounds on what a target's memory may make us read.
constexpr std::size_t max_phdrs = 256;
constexpr std::uint64_t max_notes = 64 * 1024;
constexpr std::uint32_t max_build_id = 64;

// Notes are padded to 4 bytes, or 8 in a segment aligned so (.note.gnu.property).
std::uint64_t pad(std::uint64_t n, std::uint64_t align) { return (n + align - 1) & ~(align - 1); }

}  // namespace

const Mapping* module_head(const std::vector<Mapping>& maps, const Mapping& m) {
    if (m.path.empty() || m.path.front() != '/') return nullptr;
    const Mapping* head = nullptr;
    // The loader maps a file's segments in address order, the header first;
    // the nearest offset-0 mapping of the same file at or below `m` is it.
    for (const auto& c : maps) {
        if (c.start > m.start) break;
        if (c.offset == 0 && c.inode == m.inode && c.path == m.path) head = &c;
    }
    return head;
}

std::optional<LoadedModule> read_loaded_module(MemoryReader& memory, const std::vector<Mapping>& maps,
                                               const Mapping& m) {
    const Mapping* head = module_head(maps, m);
    if (!head || !head->readable) return std::nullopt;
    Elf64_Ehdr eh{};
    if (!memory.read_value(head->start, eh)) return std::nullopt;
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > max_phdrs ||
        eh.e_phoff >= head->size() || head->size() - eh.e_phoff < std::uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr))
        return std::nullopt;
    std::vector<Elf64_Phdr> ph(eh.e_phnum);
    if (!memory.read_exact(head->start + eh.e_phoff, std::as_writable_bytes(std::span(ph)))) return std::nullopt;

    LoadedModule out;
    out.base = head->start;
    // The segment that holds file offset 0 is mapped at `base`.
    const Elf64_Phdr* first = nullptr;
    for (const auto& p : ph)
        if (p.p_type == PT_LOAD && (!first || p.p_offset < first->p_offset)) first = &p;
    if (!first || first->p_offset > first->p_vaddr) return std::nullopt;
    out.bias = head->start.value() - (first->p_vaddr - first->p_offset);

    bool text = false;
    for (const auto& p : ph) {
        if (p.p_type == PT_LOAD && (p.p_flags & PF_X)) {
            RemoteAddr s{out.bias + p.p_vaddr}, e{out.bias + p.p_vaddr + p.p_memsz};
            if (!text || s < out.text_start) out.text_start = s;
            if (!text || e > out.text_end) out.text_end = e;
            text = true;
        } else if (p.p_type == PT_GNU_EH_FRAME && p.p_memsz > 0) {
            out.eh_frame_hdr = RemoteAddr{out.bias + p.p_vaddr};
            out.eh_frame_hdr_size = p.p_memsz;
        } else if (p.p_type == PT_NOTE && out.build_id.empty() && p.p_filesz > 0 && p.p_filesz <= max_notes) {
            std::vector<std::byte> notes(p.p_filesz);
            if (!memory.read_exact(RemoteAddr{out.bias + p.p_vaddr}, notes)) continue;
            std::uint64_t align = p.p_align == 8 ? 8 : 4;
            for (std::uint64_t at = 0; at + sizeof(Elf64_Nhdr) <= notes.size();) {
                Elf64_Nhdr n{};
                std::memcpy(&n, notes.data() + at, sizeof n);
                std::uint64_t name_at = at + sizeof n, desc_at = name_at + pad(n.n_namesz, align);
                std::uint64_t next = desc_at + pad(n.n_descsz, align);
                if (next > notes.size() || next <= at) break;
                if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 && n.n_descsz > 0 && n.n_descsz <= max_build_id &&
                    std::memcmp(notes.data() + name_at, "GNU", 4) == 0) {
                    out.build_id.assign(notes.begin() + static_cast<std::ptrdiff_t>(desc_at),
                                        notes.begin() + static_cast<std::ptrdiff_t>(desc_at + n.n_descsz));
                    break;
                }
                at = next;
            }
        }
    }
    if (!text) return std::nullopt;
    return out;
}

std::string build_id_hex(const std::vector<std::byte>& id) {
    std::string out;
    for (std::byte b : id) out += fmt::format("{:02x}", static_cast<unsigned>(b));
    return out;
}

}  // namespace sw::proc
