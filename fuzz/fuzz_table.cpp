// Fuzzes the progress-table reader (src/table/parse.hpp) with the bytes a
// hostile or corrupt target could leave in its table.
//
// Input: an 8-byte little-endian file size (what fstat said), then the image
// (what pread returned; it may be shorter or longer than the file claims).
#include <algorithm>
#include <string>

#include "fuzz_support.hpp"
#include "stallwatch/table_abi.h"
#include "table/parse.hpp"

namespace {

using sw::Errc;
namespace table = sw::table;

void check_error(const sw::Error& e) {
    SW_FUZZ_CHECK(e.code == Errc::table_not_ready || e.code == Errc::unsupported_version ||
                  e.code == Errc::corrupt_table);
    // One clear line: never empty, and no byte of the table leaks into it
    // as a control character that could forge output.
    SW_FUZZ_CHECK(!e.message.empty());
    SW_FUZZ_CHECK(sw::fuzz::no_control_bytes(e.message));
}

bool valid_name(const std::string& s, std::size_t field) {
    return s.size() < field && s.find('\0') == std::string::npos;
}

void check_header(const table::Header& h, std::uint64_t file_size) {
    SW_FUZZ_CHECK(h.version == STALLWATCH_TABLE_VERSION || h.version == STALLWATCH_TABLE_VERSION_GROUPS);
    SW_FUZZ_CHECK(h.header_size == STALLWATCH_HEADER_SIZE + h.group_capacity * STALLWATCH_GROUP_SIZE);
    SW_FUZZ_CHECK(h.group_capacity <= STALLWATCH_MAX_GROUPS);
    SW_FUZZ_CHECK((h.version == STALLWATCH_TABLE_VERSION) == (h.group_capacity == 0));
    SW_FUZZ_CHECK(h.capacity >= 1 && h.capacity <= STALLWATCH_MAX_CAPACITY);
    SW_FUZZ_CHECK(h.high_water <= h.capacity);
    SW_FUZZ_CHECK(h.pid > 0);
    SW_FUZZ_CHECK(valid_name(h.app_name, STALLWATCH_APP_NAME_SIZE));
    // What a reader fetches next never exceeds the file.
    SW_FUZZ_CHECK(table::image_size(h) <= file_size);
}

void check_snapshot(const table::Snapshot& s, std::size_t image_bytes) {
    SW_FUZZ_CHECK(image_bytes >= s.header.header_size);
    std::uint64_t fetched = (image_bytes - s.header.header_size) / STALLWATCH_SLOT_SIZE;
    std::uint32_t prev_group = 0;
    for (const auto& g : s.groups) {
        SW_FUZZ_CHECK(g.id > prev_group && g.id <= s.header.group_capacity);  // record order, made ones only
        prev_group = g.id;
        SW_FUZZ_CHECK(valid_name(g.name, STALLWATCH_GROUP_NAME_SIZE));
    }
    std::int64_t prev = -1;
    for (const auto& w : s.workers) {
        SW_FUZZ_CHECK(static_cast<std::int64_t>(w.slot) > prev);  // slot order, no duplicates
        prev = w.slot;
        SW_FUZZ_CHECK(w.slot < s.header.high_water);
        SW_FUZZ_CHECK(w.slot < fetched);  // only slots that were in the image
        SW_FUZZ_CHECK(w.tid > 0);
        SW_FUZZ_CHECK(w.state == table::WorkerState::running ||
                      w.state == table::WorkerState::parked);
        // A worker's group is none or one of the groups read.
        SW_FUZZ_CHECK(w.group == 0 || std::any_of(s.groups.begin(), s.groups.end(),
                                                  [&](const table::Group& g) { return g.id == w.group; }));
        SW_FUZZ_CHECK(valid_name(w.name, STALLWATCH_WORKER_NAME_SIZE));
        SW_FUZZ_CHECK(!table::to_string(w.state).empty());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    sw::fuzz::Input in(data, size);
    const std::uint64_t file_size = in.u64();
    const auto image = in.rest();

    auto header = table::parse_header(image, file_size);
    auto snap = table::parse_table(image, file_size);
    if (!header) {
        check_error(header.error());
        // The table parser refuses what the header parser refuses, alike.
        SW_FUZZ_CHECK(!snap.ok());
        SW_FUZZ_CHECK(snap.error().code == header.error().code);
        SW_FUZZ_CHECK(snap.error().message == header.error().message);
        return 0;
    }
    check_header(*header, file_size);
    if (!snap) {
        // Past a good header only the slots can be wrong.
        check_error(snap.error());
        SW_FUZZ_CHECK(snap.error().code == Errc::corrupt_table);
        return 0;
    }
    SW_FUZZ_CHECK(snap->header.app_name == header->app_name);
    SW_FUZZ_CHECK(snap->header.high_water == header->high_water);
    check_snapshot(*snap, image.size());

    // Two reads of a table that did not change: confirm keeps every worker.
    auto same = table::confirm(*snap, *snap);
    SW_FUZZ_CHECK(same.workers.size() == snap->workers.size());
    return 0;
}
