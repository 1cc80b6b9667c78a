// Fuzzes the .eh_frame indexer and the ELF header reader
// (src/unwind/eh_frame.hpp). Both read a file the target maps: a hostile
// target chooses every byte of it.
//
// Input: 1 byte mode, 8-byte LE load address, then the bytes. Mode even:
// the bytes are an .eh_frame section loaded at the address. Mode odd: they
// are an ELF file; its .eh_frame, if the headers name one inside the file, is
// indexed at its link-time address plus the given one.
#include <algorithm>
#include <cstring>

#include "fuzz_support.hpp"
#include "unwind/eh_frame.hpp"

namespace {

void check_table(const sw::unwind::SearchTable& t, std::uint64_t address, std::size_t section_size) {
    SW_FUZZ_CHECK(t.bytes.size() % 8 == 0);
    SW_FUZZ_CHECK(t.entries() > 0);
    SW_FUZZ_CHECK(t.segbase == address);
    SW_FUZZ_CHECK(t.start_ip < t.end_ip);
    std::int32_t prev = 0;
    for (std::size_t i = 0; i < t.entries(); ++i) {
        std::int32_t start = 0, fde = 0;
        std::memcpy(&start, t.bytes.data() + i * 8, 4);
        std::memcpy(&fde, t.bytes.data() + i * 8 + 4, 4);
        SW_FUZZ_CHECK(i == 0 || prev <= start);  // sorted: libunwind searches it
        prev = start;
        // Every entry names a record inside the section.
        SW_FUZZ_CHECK(fde >= 0 && static_cast<std::size_t>(fde) < section_size);
        std::uint64_t pc = address + static_cast<std::uint64_t>(std::int64_t{start});
        SW_FUZZ_CHECK(pc >= t.start_ip && pc < t.end_ip);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 9) return 0;
    const bool elf = data[0] & 1;
    std::uint64_t address = 0;
    std::memcpy(&address, data + 1, 8);
    std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data) + 9, size - 9);

    if (!elf) {
        if (auto t = sw::unwind::index_eh_frame(bytes, address)) check_table(*t, address, bytes.size());
        return 0;
    }
    auto layout = sw::unwind::read_elf_layout(sw::unwind::read_from(bytes));
    if (!layout) return 0;
    for (const auto& l : layout->loads) (void)layout->bias(address, l.offset);
    if (!layout->eh_frame) return 0;
    const auto& s = *layout->eh_frame;
    if (s.offset > bytes.size() || bytes.size() - s.offset < s.size) return 0;
    std::uint64_t at = s.vaddr + address;
    if (auto t = sw::unwind::index_eh_frame(bytes.subspan(s.offset, s.size), at)) check_table(*t, at, s.size);
    return 0;
}
