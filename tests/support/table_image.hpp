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
    std::vector<stallwatch_table_group> groups;  // version 2 only (with_groups)
    std::vector<stallwatch_slot> slots;

    // Makes it a version 2 table with `n` group records.
    TableImage& with_groups(std::uint32_t n) {
        header.version = STALLWATCH_TABLE_VERSION_GROUPS;
        header.group_capacity = n;
        header.header_size = STALLWATCH_HEADER_SIZE + n * STALLWATCH_GROUP_SIZE;
        groups.assign(n, stallwatch_table_group{});
        return *this;
    }

    // Makes group `k` (index), as the shim does.
    stallwatch_table_group& group(std::uint32_t k, const std::string& name) {
        auto& g = groups.at(k);
        g = stallwatch_table_group{};
        g.state = STALLWATCH_GROUP_ACTIVE;
        std::strncpy(g.name, name.c_str(), sizeof g.name - 1);
        return g;
    }

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
        const std::size_t g = groups.size() * sizeof(stallwatch_table_group);
        std::vector<std::byte> out(sizeof header + g + slots.size() * sizeof(stallwatch_slot));
        std::memcpy(out.data(), &header, sizeof header);
        if (!groups.empty()) std::memcpy(out.data() + sizeof header, groups.data(), g);
        if (!slots.empty())
            std::memcpy(out.data() + sizeof header + g, slots.data(), slots.size() * sizeof(stallwatch_slot));
        return out;
    }
};

}  // namespace sw::test
