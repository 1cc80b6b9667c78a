// Builds progress-table images byte by byte, for parser tests and fuzz seeds.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "stallwatch/table_abi.h"

namespace sw::test {

struct TableImage {
    stallwatch_table_header header{};
    std::vector<stallwatch_slot> slots;

    explicit TableImage(std::uint32_t capacity = 4, std::string app = "demo") : slots(capacity) {
        std::memcpy(header.magic, STALLWATCH_TABLE_MAGIC, STALLWATCH_TABLE_MAGIC_SIZE);
        header.version = STALLWATCH_TABLE_VERSION;
        header.header_size = STALLWATCH_HEADER_SIZE;
        header.slot_size = STALLWATCH_SLOT_SIZE;
        header.capacity = capacity;
        header.pid = 4242;
        header.created_unix_ns = 1'700'000'000'000'000'000ull;
        std::strncpy(header.app_name, app.c_str(), sizeof header.app_name - 1);
    }

    // Claims slot `i` for a worker; raises the high-water mark.
    stallwatch_slot& worker(std::uint32_t i, const std::string& name, std::int32_t tid,
                            std::uint64_t progress = 0,
                            std::uint32_t state = STALLWATCH_SLOT_RUNNING) {
        auto& s = slots.at(i);
        s = stallwatch_slot{};
        s.state = state;
        s.tid = tid;
        s.progress = progress;
        s.generation = 1;
        std::strncpy(s.name, name.c_str(), sizeof s.name - 1);
        if (header.slots_high_water < i + 1) header.slots_high_water = i + 1;
        return s;
    }

    std::vector<std::byte> bytes() const {
        std::vector<std::byte> out(sizeof header + slots.size() * sizeof(stallwatch_slot));
        std::memcpy(out.data(), &header, sizeof header);
        if (!slots.empty())
            std::memcpy(out.data() + sizeof header, slots.data(), slots.size() * sizeof(stallwatch_slot));
        return out;
    }
};

}  // namespace sw::test
