#include "table/parse.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "stallwatch/table_abi.h"

namespace sw::table {
namespace {

// Bounds-checked little reads from a byte span; no alignment assumed.
class Bytes {
public:
    explicit Bytes(std::span<const std::byte> b) : b_(b) {}

    template <class T>
    std::optional<T> get(std::uint64_t off) const {
        if (off > b_.size() || b_.size() - off < sizeof(T)) return std::nullopt;
        T v;
        std::memcpy(&v, b_.data() + off, sizeof(T));
        return v;
    }

    // A NUL-terminated string stored in a field of `size` bytes at `off`,
    // as a view into the bytes (copied once, by the caller, where it keeps it).
    std::optional<std::string_view> cstr(std::uint64_t off, std::size_t size) const {
        if (off > b_.size() || b_.size() - off < size) return std::nullopt;
        const char* p = reinterpret_cast<const char*>(b_.data() + off);
        const void* nul = std::memchr(p, '\0', size);
        if (!nul) return std::nullopt;
        return std::string_view(p, static_cast<std::size_t>(static_cast<const char*>(nul) - p));
    }

private:
    std::span<const std::byte> b_;
};

Error corrupt(std::string what) {
    return make_error(Errc::corrupt_table, "corrupt stallwatch table: " + std::move(what));
}

bool all_zero(std::span<const std::byte> b) {
    for (auto x : b)
        if (x != std::byte{0}) return false;
    return true;
}

}  // namespace

std::string_view to_string(WorkerState s) {
    switch (s) {
    case WorkerState::running: return "running";
    case WorkerState::parked: return "parked";
    }
    return "?";
}

std::uint64_t image_size(const Header& h) {
    return std::uint64_t{h.header_size} + std::uint64_t{h.high_water} * STALLWATCH_SLOT_SIZE;
}

Result<Header> parse_header(std::span<const std::byte> bytes, std::uint64_t file_size) {
    using H = stallwatch_table_header;
    if (file_size == 0 || (bytes.empty() && file_size < STALLWATCH_HEADER_SIZE))
        return make_error(Errc::table_not_ready,
                          "the stallwatch table is still being created (empty file)");
    if (bytes.size() < STALLWATCH_HEADER_SIZE || file_size < STALLWATCH_HEADER_SIZE)
        return corrupt(fmt::format("{} bytes is smaller than the {}-byte header",
                                   std::min<std::uint64_t>(bytes.size(), file_size),
                                   STALLWATCH_HEADER_SIZE));
    auto magic = bytes.first(STALLWATCH_TABLE_MAGIC_SIZE);
    if (all_zero(magic))
        return make_error(Errc::table_not_ready,
                          "the stallwatch table is still being created (no magic yet)");
    if (std::memcmp(magic.data(), STALLWATCH_TABLE_MAGIC, STALLWATCH_TABLE_MAGIC_SIZE) != 0)
        return corrupt("wrong magic (not a stallwatch table)");

    Bytes in(bytes);
    Header h;
    h.version = *in.get<std::uint32_t>(offsetof(H, version));
    if (h.version != STALLWATCH_TABLE_VERSION && h.version != STALLWATCH_TABLE_VERSION_GROUPS)
        return make_error(
            Errc::unsupported_version,
            h.version > STALLWATCH_TABLE_VERSION_MAX
                ? fmt::format("table format version {} is newer than this stallwatch reads "
                              "(up to {}); upgrade stallwatch",
                              h.version, STALLWATCH_TABLE_VERSION_MAX)
                : fmt::format("table format version {} is not one this stallwatch reads ({} or {})",
                              h.version, STALLWATCH_TABLE_VERSION, STALLWATCH_TABLE_VERSION_GROUPS));

    auto header_size = *in.get<std::uint32_t>(offsetof(H, header_size));
    auto slot_size = *in.get<std::uint32_t>(offsetof(H, slot_size));
    if (h.version == STALLWATCH_TABLE_VERSION_GROUPS) {
        // Version 2: the group records sit between the header and the slots.
        h.group_capacity = *in.get<std::uint32_t>(offsetof(H, group_capacity));
        if (h.group_capacity == 0 || h.group_capacity > STALLWATCH_MAX_GROUPS)
            return corrupt(fmt::format("{} groups is outside 1..{}", h.group_capacity, STALLWATCH_MAX_GROUPS));
    }  // version 1 ignores the field, as it ignores every reserved byte
    const std::uint32_t want_header = STALLWATCH_HEADER_SIZE + h.group_capacity * STALLWATCH_GROUP_SIZE;
    if (header_size != want_header)
        return corrupt(fmt::format("header size {} (version {} with {} groups requires {})", header_size,
                                   h.version, h.group_capacity, want_header));
    if (slot_size != STALLWATCH_SLOT_SIZE)
        return corrupt(fmt::format("slot size {} (version {} requires {})", slot_size, h.version,
                                   STALLWATCH_SLOT_SIZE));
    h.header_size = header_size;  // the group records themselves are parse_table's

    h.capacity = *in.get<std::uint32_t>(offsetof(H, capacity));
    if (h.capacity == 0 || h.capacity > STALLWATCH_MAX_CAPACITY)
        return corrupt(fmt::format("capacity {} is outside 1..{}", h.capacity,
                                   STALLWATCH_MAX_CAPACITY));
    std::uint64_t needed =
        std::uint64_t{header_size} + std::uint64_t{h.capacity} * std::uint64_t{slot_size};
    if (needed > file_size)
        return corrupt(fmt::format("capacity {} needs {} bytes but the table has {}", h.capacity,
                                   needed, file_size));

    h.high_water = *in.get<std::uint32_t>(offsetof(H, slots_high_water));
    if (h.high_water > h.capacity)
        return corrupt(fmt::format("{} slots in use exceeds capacity {}", h.high_water,
                                   h.capacity));
    h.pid = *in.get<std::int32_t>(offsetof(H, pid));
    if (h.pid <= 0) return corrupt(fmt::format("creator pid {} is not valid", h.pid));
    h.created_unix_ns = *in.get<std::uint64_t>(offsetof(H, created_unix_ns));
    auto name = in.cstr(offsetof(H, app_name), STALLWATCH_APP_NAME_SIZE);
    if (!name) return corrupt("application name is not NUL-terminated");
    h.app_name = std::string(*name);
    return h;
}

Result<Snapshot> parse_table(std::span<const std::byte> bytes, std::uint64_t file_size) {
    using S = stallwatch_slot;
    using G = stallwatch_table_group;
    auto header = parse_header(bytes, file_size);
    if (!header) return std::move(header).error();

    Snapshot snap;
    snap.header = std::move(header.value());
    const std::uint64_t slots_at = snap.header.header_size;
    if (bytes.size() < slots_at)
        return corrupt(fmt::format("{} bytes is smaller than the {}-byte header with its groups", bytes.size(),
                                   slots_at));

    Bytes in(bytes);
    // Version 2's groups. A slot may name a group this read saw as not yet
    // made (the group is published before any worker joins it, but one read
    // is not atomic): such a slot reads as in no group.
    std::vector<bool> made(snap.header.group_capacity + 1, false);
    for (std::uint32_t k = 0; k < snap.header.group_capacity; ++k) {
        std::uint64_t base = STALLWATCH_HEADER_SIZE + std::uint64_t{k} * STALLWATCH_GROUP_SIZE;
        auto state = *in.get<std::uint32_t>(base + offsetof(G, state));
        if (state == STALLWATCH_GROUP_FREE) continue;
        if (state != STALLWATCH_GROUP_ACTIVE)
            return corrupt(fmt::format("group {} has unknown state {}", k, state));
        Group g;
        g.id = k + 1;
        auto name = in.cstr(base + offsetof(G, name), STALLWATCH_GROUP_NAME_SIZE);
        if (!name) return corrupt(fmt::format("group {} name is not NUL-terminated", k));
        g.name = std::string(*name);
        g.threshold_ms = *in.get<std::uint32_t>(base + offsetof(G, threshold_ms));
        g.episodes = *in.get<std::uint64_t>(base + offsetof(G, episodes));
        g.episode_begin_unix_ns = *in.get<std::uint64_t>(base + offsetof(G, episode_begin_unix_ns));
        g.extra_threads = *in.get<std::uint32_t>(base + offsetof(G, extra_threads));
        g.extra_threads_peak = *in.get<std::uint32_t>(base + offsetof(G, extra_threads_peak));
        made[g.id] = true;
        snap.groups.push_back(std::move(g));
    }

    // Slots registered after the caller sized its read lie beyond `bytes`:
    // they are seen on the next read, not treated as an error.
    std::uint64_t fetched = (bytes.size() - slots_at) / STALLWATCH_SLOT_SIZE;
    auto slots = static_cast<std::uint32_t>(std::min<std::uint64_t>(snap.header.high_water, fetched));

    snap.workers.reserve(slots);
    for (std::uint32_t i = 0; i < slots; ++i) {
        std::uint64_t base = slots_at + std::uint64_t{i} * STALLWATCH_SLOT_SIZE;
        auto state = *in.get<std::uint32_t>(base + offsetof(S, state));
        if (state == STALLWATCH_SLOT_FREE || state == STALLWATCH_SLOT_CLAIMED) continue;
        if (state != STALLWATCH_SLOT_RUNNING && state != STALLWATCH_SLOT_PARKED)
            return corrupt(fmt::format("slot {} has unknown state {}", i, state));

        const auto tid = *in.get<std::int32_t>(base + offsetof(S, tid));
        if (tid <= 0) return corrupt(fmt::format("slot {} has invalid tid {}", i, tid));
        auto name = in.cstr(base + offsetof(S, name), STALLWATCH_WORKER_NAME_SIZE);
        if (!name) return corrupt(fmt::format("slot {} name is not NUL-terminated", i));
        std::uint32_t group = 0;
        if (snap.header.version == STALLWATCH_TABLE_VERSION_GROUPS) {  // version 1: a reserved field
            group = *in.get<std::uint32_t>(base + offsetof(S, group));
            if (group > snap.header.group_capacity)
                return corrupt(fmt::format("slot {} names group {} of {}", i, group, snap.header.group_capacity));
            if (!made[group]) group = 0;
        }
        // Built in place: a worker is one string copy (a monitor parses a
        // table of a thousand workers a hundred times a second).
        Worker& w = snap.workers.emplace_back();
        w.slot = i;
        w.state = static_cast<WorkerState>(state);
        w.progress = *in.get<std::uint64_t>(base + offsetof(S, progress));
        w.tid = tid;
        w.generation = *in.get<std::uint32_t>(base + offsetof(S, generation));
        w.group = group;
        w.name.assign(*name);
    }
    return snap;
}

Snapshot confirm(const Snapshot& first, const Snapshot& second) {
    Snapshot out;
    out.header = first.header;
    // Groups: only what both reads agree on (a record caught between two of
    // the watchdog's stores would read as an episode that began and ended).
    if (first.groups == second.groups && first.groups_consistent && second.groups_consistent)
        out.groups = first.groups;
    else
        out.groups_consistent = false;
    out.workers.reserve(first.workers.size());
    auto it = second.workers.begin();
    for (const auto& w : first.workers) {
        while (it != second.workers.end() && it->slot < w.slot) ++it;
        if (it != second.workers.end() && w.same_identity(*it)) out.workers.push_back(w);
    }
    return out;
}

Result<Snapshot> confirm_images(Snapshot first, std::span<const std::byte> first_image,
                                std::span<const std::byte> second_image, std::uint64_t file_size) {
    using S = stallwatch_slot;
    auto header = parse_header(second_image, file_size);
    if (!header) return std::move(header).error();
    const std::uint64_t slots_at = header->header_size;
    // Group records: the same bytes, or not to be trusted this time.
    const std::uint64_t groups_end = first.header.header_size;
    if (groups_end != slots_at || first_image.size() < groups_end || second_image.size() < groups_end ||
        std::memcmp(first_image.data() + STALLWATCH_HEADER_SIZE, second_image.data() + STALLWATCH_HEADER_SIZE,
                    groups_end - STALLWATCH_HEADER_SIZE) != 0) {
        first.groups.clear();
        first.groups_consistent = false;
    }
    const std::uint64_t fetched =
        second_image.size() >= slots_at ? (second_image.size() - slots_at) / STALLWATCH_SLOT_SIZE : 0;
    const auto live = std::min<std::uint64_t>(header->high_water, fetched);
    Bytes in(second_image);
    std::erase_if(first.workers, [&](const Worker& w) {
        if (w.slot >= live) return true;
        const std::uint64_t base = slots_at + std::uint64_t{w.slot} * STALLWATCH_SLOT_SIZE;
        const auto state = *in.get<std::uint32_t>(base + offsetof(S, state));
        if (state != STALLWATCH_SLOT_RUNNING && state != STALLWATCH_SLOT_PARKED) return true;
        if (*in.get<std::int32_t>(base + offsetof(S, tid)) != w.tid) return true;
        if (*in.get<std::uint32_t>(base + offsetof(S, generation)) != w.generation) return true;
        // The name as cstr() would read it, compared in place.
        const auto field = second_image.subspan(base + offsetof(S, name), STALLWATCH_WORKER_NAME_SIZE);
        const char* p = reinterpret_cast<const char*>(field.data());
        const void* nul = std::memchr(p, '\0', field.size());
        return !nul || std::string_view(p, static_cast<const char*>(nul)) != w.name;
    });
    return first;
}

}  // namespace sw::table
