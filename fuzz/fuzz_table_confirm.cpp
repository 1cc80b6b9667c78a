// Fuzzes the reader's two-read protocol: two images of one table, parsed
// (src/table/parse.hpp) and confirmed against each other; and
// confirm_images, which proc::TableFile::read uses to confirm without a
// second parse, checked to keep exactly what confirm keeps.
//
// Input: an 8-byte little-endian file size, a 4-byte little-endian length
// of the first image, the first image, then the second image (the rest).
#include <cstdint>

#include "fuzz_support.hpp"
#include "table/parse.hpp"

namespace {

namespace table = sw::table;

// What confirm must return, computed the slow, obvious way.
bool expected_kept(const table::Worker& w, const table::Snapshot& second) {
    for (const auto& o : second.workers)
        if (w.same_identity(o)) return true;
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    sw::fuzz::Input in(data, size);
    const std::uint64_t file_size = in.u64();
    const std::uint32_t first_len = in.u32();
    const auto first_image = in.bytes(first_len);
    const auto second_image = in.rest();

    auto a = table::parse_table(first_image, file_size);
    auto b = table::parse_table(second_image, file_size);
    if (!a || !b) return 0;

    auto c = table::confirm(*a, *b);
    SW_FUZZ_CHECK(c.header.app_name == a->header.app_name);
    SW_FUZZ_CHECK(c.header.capacity == a->header.capacity);
    // Exactly the workers of the first read whose identity held, in slot
    // order, with the first read's state and progress.
    std::size_t k = 0;
    for (const auto& w : a->workers) {
        if (!expected_kept(w, *b)) continue;
        SW_FUZZ_CHECK(k < c.workers.size());
        const auto& got = c.workers[k++];
        SW_FUZZ_CHECK(got.same_identity(w));
        SW_FUZZ_CHECK(got.state == w.state);
        SW_FUZZ_CHECK(got.progress == w.progress);
    }
    SW_FUZZ_CHECK(k == c.workers.size());

    // confirm_images, which the reader uses instead of a second parse, keeps
    // exactly the same workers, and groups only when confirm does.
    auto d = table::confirm_images(*a, first_image, second_image, file_size);
    SW_FUZZ_CHECK(d.ok());
    SW_FUZZ_CHECK(d->workers.size() == c.workers.size());
    for (std::size_t i = 0; i < c.workers.size() && i < d->workers.size(); ++i) {
        SW_FUZZ_CHECK(d->workers[i].same_identity(c.workers[i]));
        SW_FUZZ_CHECK(d->workers[i].state == c.workers[i].state);
        SW_FUZZ_CHECK(d->workers[i].progress == c.workers[i].progress);
    }
    if (d->groups_consistent) {
        SW_FUZZ_CHECK(c.groups_consistent);
        SW_FUZZ_CHECK(d->groups == c.groups);
    }
    return 0;
}
