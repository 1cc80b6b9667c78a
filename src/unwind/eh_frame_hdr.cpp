#include "unwind/eh_frame_hdr.hpp"

#include <cstring>

namespace sw::unwind {
namespace {

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

std::optional<unw_dyn_info_t> eh_frame_hdr_table(std::span<const std::byte> head, std::uint64_t hdr_addr,
                                                 std::uint64_t hdr_size, std::uint64_t start, std::uint64_t end) {
    if (head.size() < 4 || start >= end) return std::nullopt;
    auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(head[i]); };
    // libunwind's binary search needs datarel|sdata4 entries and a udata4 count.
    if (byte(0) != 1 || byte(2) != 0x03 || byte(3) != 0x3b) return std::nullopt;
    std::size_t ptr_size = encoded_size(byte(1));
    if (ptr_size == 0 || head.size() < 4 + ptr_size + 4) return std::nullopt;
    std::uint32_t fde_count = 0;
    std::memcpy(&fde_count, head.data() + 4 + ptr_size, sizeof fde_count);
    std::uint64_t table = 4 + ptr_size + 4;
    if (fde_count == 0 || table + std::uint64_t{fde_count} * 8 > hdr_size) return std::nullopt;

    unw_dyn_info_t info{};
    info.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    info.start_ip = start;
    info.end_ip = end;
    info.gp = 0;
    info.u.rti.name_ptr = 0;
    info.u.rti.segbase = hdr_addr;
    info.u.rti.table_data = hdr_addr + table;
    info.u.rti.table_len = std::uint64_t{fde_count} * 8 / sizeof(unw_word_t);
    return info;
}

}  // namespace sw::unwind
