#include "unwind/eh_frame.hpp"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <string_view>

namespace sw::unwind {
namespace {

// DWARF pointer encodings (DW_EH_PE_*): the low nibble is the value's
// format, bits 4-6 what it is relative to, bit 7 an indirection.
constexpr std::uint8_t pe_omit = 0xff;
constexpr std::uint8_t pe_absptr = 0x00, pe_uleb128 = 0x01, pe_udata2 = 0x02, pe_udata4 = 0x03,
                       pe_udata8 = 0x04, pe_sleb128 = 0x09, pe_sdata2 = 0x0a, pe_sdata4 = 0x0b,
                       pe_sdata8 = 0x0c;
constexpr std::uint8_t pe_pcrel = 0x10, pe_aligned = 0x50;

// Checked reads from [pos, end) of a byte span; every read moves pos.
class Reader {
public:
    Reader(std::span<const std::byte> bytes, std::uint64_t pos, std::uint64_t end)
        : b_(bytes), pos_(pos), end_(std::min<std::uint64_t>(end, bytes.size())) {}

    std::uint64_t pos() const { return pos_; }
    std::uint64_t end() const { return end_; }

    bool skip(std::uint64_t n) {
        if (pos_ > end_ || end_ - pos_ < n) return false;
        pos_ += n;
        return true;
    }
    template <class T>
    std::optional<T> fixed() {
        if (pos_ > end_ || end_ - pos_ < sizeof(T)) return std::nullopt;
        T v;
        std::memcpy(&v, b_.data() + pos_, sizeof v);
        pos_ += sizeof v;
        return v;
    }
    std::optional<std::uint64_t> uleb() {
        std::uint64_t v = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
            auto byte = fixed<std::uint8_t>();
            if (!byte) return std::nullopt;
            v |= std::uint64_t{*byte & 0x7fu} << shift;
            if (!(*byte & 0x80)) return v;
        }
        return std::nullopt;  // longer than any 64-bit value
    }
    std::optional<std::int64_t> sleb() {
        std::uint64_t v = 0;
        for (unsigned shift = 0; shift < 64;) {
            auto byte = fixed<std::uint8_t>();
            if (!byte) return std::nullopt;
            v |= std::uint64_t{*byte & 0x7fu} << shift;
            shift += 7;
            if (!(*byte & 0x80)) {
                if (shift < 64 && (*byte & 0x40)) v |= ~std::uint64_t{0} << shift;
                return static_cast<std::int64_t>(v);
            }
        }
        return std::nullopt;
    }
    std::optional<std::string_view> cstr() {
        if (pos_ >= end_) return std::nullopt;
        const char* p = reinterpret_cast<const char*>(b_.data() + pos_);
        const void* nul = std::memchr(p, 0, end_ - pos_);
        if (!nul) return std::nullopt;
        std::string_view s(p, static_cast<std::size_t>(static_cast<const char*>(nul) - p));
        pos_ += s.size() + 1;
        return s;
    }

private:
    std::span<const std::byte> b_;
    std::uint64_t pos_, end_;
};

// The value of a pointer in format `enc & 0x0f`, unapplied.
std::optional<std::uint64_t> read_value(Reader& r, std::uint8_t enc) {
    switch (enc & 0x0f) {
    case pe_absptr:
    case pe_udata8: return r.fixed<std::uint64_t>();
    case pe_sdata8: return r.fixed<std::uint64_t>();
    case pe_uleb128: return r.uleb();
    case pe_udata2:
        if (auto v = r.fixed<std::uint16_t>()) return std::uint64_t{*v};
        return std::nullopt;
    case pe_udata4:
        if (auto v = r.fixed<std::uint32_t>()) return std::uint64_t{*v};
        return std::nullopt;
    case pe_sleb128:
        if (auto v = r.sleb()) return static_cast<std::uint64_t>(*v);
        return std::nullopt;
    case pe_sdata2:
        if (auto v = r.fixed<std::int16_t>()) return static_cast<std::uint64_t>(std::int64_t{*v});
        return std::nullopt;
    case pe_sdata4:
        if (auto v = r.fixed<std::int32_t>()) return static_cast<std::uint64_t>(std::int64_t{*v});
        return std::nullopt;
    default: return std::nullopt;
    }
}

// A pointer encoded with `enc` at the reader's position, the section being
// loaded at `address`. Only absolute, pc-relative and aligned pointers:
// text-, data- and function-relative ones need bases .eh_frame lacks.
std::optional<std::uint64_t> read_pointer(Reader& r, std::uint8_t enc, std::uint64_t address) {
    if (enc == pe_omit) return std::nullopt;
    std::uint64_t field = address + r.pos();
    switch (enc & 0x70) {
    case 0x00: return read_value(r, enc);
    case pe_pcrel:
        if (auto v = read_value(r, enc)) return *v + field;  // modulo 2^64, as the hardware adds
        return std::nullopt;
    case pe_aligned: {
        std::uint64_t pad = (8 - field % 8) % 8;
        if (!r.skip(pad)) return std::nullopt;
        return r.fixed<std::uint64_t>();
    }
    default: return std::nullopt;
    }
}

// What an FDE needs from its CIE: how its pc_begin and pc_range are encoded.
struct Cie {
    std::uint8_t fde_encoding = pe_absptr;
};

// The CIE at `off`, or nullopt if it is malformed or uses what we do not know.
std::optional<Cie> parse_cie(std::span<const std::byte> s, std::uint64_t off, std::uint64_t address) {
    Reader head(s, off, s.size());
    auto length = head.fixed<std::uint32_t>();
    if (!length || *length == 0 || *length == 0xffffffffu) return std::nullopt;
    Reader r(s, head.pos(), head.pos() + *length);
    if (r.end() - head.pos() != *length) return std::nullopt;
    auto id = r.fixed<std::uint32_t>();
    auto version = r.fixed<std::uint8_t>();
    auto aug = r.cstr();
    if (!id || *id != 0 || !version || (*version != 1 && *version != 3 && *version != 4) || !aug)
        return std::nullopt;
    std::string_view a = *aug;
    if (a.substr(0, 2) == "eh") {  // an old GCC's eh_ptr, before the alignment factors
        if (!r.skip(8)) return std::nullopt;
        a.remove_prefix(2);
    }
    if (*version == 4 && !r.skip(2)) return std::nullopt;  // address_size, segment_size
    if (!r.uleb() || !r.sleb()) return std::nullopt;       // code and data alignment factors
    if (*version == 1 ? !r.fixed<std::uint8_t>() : !r.uleb()) return std::nullopt;  // return address column

    Cie cie;
    if (a.empty()) return cie;
    if (a.front() != 'z') return std::nullopt;  // unknown data of unknown size follows
    auto aug_len = r.uleb();
    if (!aug_len || r.end() - r.pos() < *aug_len) return std::nullopt;
    Reader data(s, r.pos(), r.pos() + *aug_len);
    for (char c : a.substr(1)) {
        switch (c) {
        case 'R': {
            auto enc = data.fixed<std::uint8_t>();
            if (!enc) return std::nullopt;
            cie.fde_encoding = *enc;
            break;
        }
        case 'P': {  // the personality routine: skipped, but its size depends on its encoding
            auto enc = data.fixed<std::uint8_t>();
            if (!enc || !read_pointer(data, static_cast<std::uint8_t>(*enc & 0x7f), address))
                return std::nullopt;
            break;
        }
        case 'L':
            if (!data.fixed<std::uint8_t>()) return std::nullopt;
            break;
        case 'S':  // a signal frame
        case 'B':  // AArch64 pointer authentication key B
        case 'G':  // AArch64 memory tagging
            break;
        default:
            // The 'z' length lets the rest be skipped (libunwind does the same).
            return cie;
        }
    }
    return cie;
}

struct Entry {
    std::int32_t start;
    std::int32_t fde;
};

std::optional<std::int32_t> offset32(std::uint64_t value, std::uint64_t base) {
    auto d = static_cast<std::int64_t>(value - base);
    if (d < std::numeric_limits<std::int32_t>::min() || d > std::numeric_limits<std::int32_t>::max())
        return std::nullopt;
    return static_cast<std::int32_t>(d);
}

}  // namespace

std::optional<SearchTable> index_eh_frame(std::span<const std::byte> s, std::uint64_t address) {
    std::map<std::uint64_t, std::optional<Cie>> cies;
    std::vector<Entry> entries;
    std::uint64_t lo = std::numeric_limits<std::uint64_t>::max(), hi = 0;

    for (std::uint64_t off = 0; off < s.size();) {
        Reader head(s, off, s.size());
        auto length = head.fixed<std::uint32_t>();
        if (!length || *length == 0) break;  // the end, or the zero terminator
        if (*length == 0xffffffffu) {        // 64-bit DWARF: libunwind reads it differently; skip it
            auto length64 = head.fixed<std::uint64_t>();
            if (!length64 || !head.skip(*length64)) break;
            off = head.pos();
            continue;
        }
        std::uint64_t body = head.pos();
        if (!head.skip(*length)) break;
        std::uint64_t next = head.pos();

        Reader r(s, body, next);
        auto cie_ptr = r.fixed<std::uint32_t>();
        if (!cie_ptr) break;
        if (*cie_ptr != 0 && *cie_ptr <= body) {  // an FDE; its CIE is cie_ptr bytes back
            std::uint64_t cie_off = body - *cie_ptr;
            auto it = cies.find(cie_off);
            if (it == cies.end()) it = cies.emplace(cie_off, parse_cie(s, cie_off, address)).first;
            if (it->second) {
                std::uint8_t enc = it->second->fde_encoding;
                auto pc_begin = read_pointer(r, enc, address);
                auto pc_range = read_value(r, static_cast<std::uint8_t>(enc & 0x0f));
                if (pc_begin && pc_range && *pc_range != 0 && *pc_begin != 0 &&
                    *pc_begin <= std::numeric_limits<std::uint64_t>::max() - *pc_range) {
                    auto start = offset32(*pc_begin, address);
                    auto fde = offset32(address + off, address);
                    if (start && fde) {
                        entries.push_back({*start, *fde});
                        lo = std::min(lo, *pc_begin);
                        hi = std::max(hi, *pc_begin + *pc_range);
                    }
                }
            }
        }
        off = next;
    }
    if (entries.empty()) return std::nullopt;

    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.start < b.start; });
    SearchTable t;
    t.segbase = address;
    t.start_ip = lo;
    t.end_ip = hi;
    t.bytes.resize(entries.size() * sizeof(Entry));
    for (std::size_t i = 0; i < entries.size(); ++i) {
        std::memcpy(t.bytes.data() + i * 8, &entries[i].start, 4);
        std::memcpy(t.bytes.data() + i * 8 + 4, &entries[i].fde, 4);
    }
    return t;
}

std::optional<std::uint64_t> ElfUnwindLayout::bias(std::uint64_t start, std::uint64_t file_offset) const {
    for (const auto& l : loads) {
        // A segment is mapped from the page that holds its first byte.
        std::uint64_t first = l.offset & ~std::uint64_t{0xfff};
        if (file_offset < first || file_offset - first >= (l.offset - first) + l.filesz) continue;
        // file_offset sits at l.vaddr + (file_offset - l.offset) + bias (modulo 2^64).
        return start - file_offset + l.offset - l.vaddr;
    }
    return std::nullopt;
}

std::optional<ElfUnwindLayout> read_elf_layout(const ReadAt& read) {
    Elf64_Ehdr eh;
    if (!read(0, std::as_writable_bytes(std::span(&eh, 1)))) return std::nullopt;
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB)
        return std::nullopt;

    ElfUnwindLayout out;
    // Bounded by the 16-bit counts: at most 65535 headers of either kind.
    if (eh.e_phnum != 0) {
        if (eh.e_phentsize != sizeof(Elf64_Phdr)) return std::nullopt;
        std::vector<Elf64_Phdr> ph(eh.e_phnum);
        if (!read(eh.e_phoff, std::as_writable_bytes(std::span(ph)))) return std::nullopt;
        for (const auto& p : ph) {
            if (p.p_type == PT_GNU_EH_FRAME) out.has_eh_frame_hdr = true;
            if (p.p_type == PT_INTERP) out.has_interp = true;
            if (p.p_type == PT_LOAD) out.loads.push_back({p.p_offset, p.p_vaddr, p.p_filesz});
        }
    }
    if (eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum || eh.e_shentsize != sizeof(Elf64_Shdr)) return out;
    std::vector<Elf64_Shdr> sh(eh.e_shnum);
    if (!read(eh.e_shoff, std::as_writable_bytes(std::span(sh)))) return out;
    const auto& strtab = sh[eh.e_shstrndx];
    constexpr std::string_view name = ".eh_frame";
    char buf[name.size() + 1];  // the name and its NUL
    for (const auto& s : sh) {
        // lld (and LLVM's own libraries) type it SHT_X86_64_UNWIND.
        if ((s.sh_type != SHT_PROGBITS && s.sh_type != SHT_X86_64_UNWIND) || !(s.sh_flags & SHF_ALLOC) ||
            s.sh_name >= strtab.sh_size ||
            strtab.sh_size - s.sh_name < sizeof buf)
            continue;
        if (!read(strtab.sh_offset + s.sh_name, std::as_writable_bytes(std::span(buf)))) continue;
        if (std::string_view(buf, name.size()) != name || buf[name.size()] != '\0') continue;
        out.eh_frame = ElfUnwindLayout::Section{s.sh_offset, s.sh_size, s.sh_addr};
        break;
    }
    return out;
}

ReadAt read_from(std::span<const std::byte> file) {
    return [file](std::uint64_t offset, std::span<std::byte> out) {
        if (offset > file.size() || file.size() - offset < out.size()) return false;
        std::memcpy(out.data(), file.data() + offset, out.size());
        return true;
    };
}

}  // namespace sw::unwind
