// The table parser against good and hostile bytes.
#include <doctest/doctest.h>

#include "support/table_image.hpp"
#include "table/parse.hpp"

using sw::Errc;
using sw::test::TableImage;
namespace table = sw::table;

namespace {
sw::Result<table::Snapshot> parse(const TableImage& img) {
    auto b = img.bytes();
    return table::parse_table(b, b.size());
}
}  // namespace

TEST_CASE("a well-formed table gives its header and live workers in slot order") {
    TableImage img(8, "my-service");
    img.worker(0, "io-0", 100, 7);
    img.worker(2, "io-2", 102, 9, STALLWATCH_SLOT_PARKED);
    img.worker(3, "gone", 103, 1, STALLWATCH_SLOT_FREE);
    img.worker(4, "half", 104, 1, STALLWATCH_SLOT_CLAIMED);
    auto snap = parse(img);
    REQUIRE(snap.ok());
    CHECK(snap->header.app_name == "my-service");
    CHECK(snap->header.capacity == 8);
    CHECK(snap->header.high_water == 5);
    CHECK(snap->header.pid == 4242);
    REQUIRE(snap->workers.size() == 2);
    CHECK(snap->workers[0].name == "io-0");
    CHECK(snap->workers[0].tid == 100);
    CHECK(snap->workers[0].progress == 7);
    CHECK(snap->workers[0].state == table::WorkerState::running);
    CHECK(snap->workers[1].slot == 2);
    CHECK(snap->workers[1].state == table::WorkerState::parked);
}

TEST_CASE("slots at or past the high-water mark are not read") {
    TableImage img(4);
    img.worker(0, "a", 10);
    img.slots[3].state = 99;  // garbage beyond high water is ignored
    auto snap = parse(img);
    REQUIRE(snap.ok());
    CHECK(snap->workers.size() == 1);
}

TEST_CASE("truncated header") {
    TableImage img;
    auto b = img.bytes();
    for (std::size_t n : {1u, 8u, 64u, 127u}) {
        auto r = table::parse_table(std::span(b).first(n), n);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == Errc::corrupt_table);
        CHECK(r.error().message.find("header") != std::string::npos);
    }
}

TEST_CASE("wrong magic, and a header not yet published") {
    TableImage img;
    img.header.magic[0] = 'X';
    auto r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == Errc::corrupt_table);
    CHECK(r.error().message.find("magic") != std::string::npos);

    std::memset(img.header.magic, 0, sizeof img.header.magic);
    r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == Errc::table_not_ready);
}

TEST_CASE("a future version is refused with advice to upgrade") {
    TableImage img;
    img.header.version = STALLWATCH_TABLE_VERSION_MAX + 1;
    auto r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == Errc::unsupported_version);
    CHECK(r.error().message.find("upgrade stallwatch") != std::string::npos);
    img.header.version = 0;
    r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == Errc::unsupported_version);
}

TEST_CASE("capacity that overflows the size, or is out of range") {
    TableImage img(4);
    img.header.capacity = 5;  // one more slot than the bytes hold
    auto r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("needs") != std::string::npos);

    img.header.capacity = 0xffffffffu;  // would overflow 32-bit size arithmetic
    r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == Errc::corrupt_table);

    img.header.capacity = 0;
    r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == Errc::corrupt_table);
}

TEST_CASE("high-water mark beyond capacity") {
    TableImage img(4);
    img.header.slots_high_water = 5;
    auto r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("exceeds capacity") != std::string::npos);
}

TEST_CASE("slot and header size mismatch") {
    TableImage img;
    img.header.slot_size = 128;
    auto r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("slot size 128") != std::string::npos);

    img.header.slot_size = STALLWATCH_SLOT_SIZE;
    img.header.header_size = 64;
    r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("header size 64") != std::string::npos);
}

TEST_CASE("names without NUL") {
    TableImage img;
    std::memset(img.header.app_name, 'A', sizeof img.header.app_name);
    auto r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("application name") != std::string::npos);

    TableImage img2;
    auto& s = img2.worker(1, "x", 10);
    std::memset(s.name, 'B', sizeof s.name);
    r = parse(img2);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("slot 1 name") != std::string::npos);
}

TEST_CASE("invalid slot state and tid") {
    TableImage img;
    img.worker(0, "x", 10).state = 7;
    auto r = parse(img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("unknown state 7") != std::string::npos);

    TableImage img2;
    img2.worker(0, "x", -5);
    r = parse(img2);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("invalid tid") != std::string::npos);
}

TEST_CASE("bad creator pid") {
    TableImage img;
    img.header.pid = 0;
    CHECK_FALSE(parse(img).ok());
}

TEST_CASE("an image shorter than the high-water mark holds the slots it has") {
    // A worker registered after the reader sized its read: seen next time.
    TableImage img(4);
    img.worker(0, "first", 10);
    img.worker(3, "late", 13);
    auto b = img.bytes();
    auto r = table::parse_table(std::span(b).first(STALLWATCH_HEADER_SIZE + STALLWATCH_SLOT_SIZE), b.size());
    REQUIRE(r.ok());
    REQUIRE(r->workers.size() == 1);
    CHECK(r->workers[0].name == "first");
}

TEST_CASE("an empty file is a table still being created, not a corrupt one") {
    std::vector<std::byte> none;
    auto r = table::parse_table(none, 0);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == Errc::table_not_ready);
}

TEST_CASE("confirm keeps only workers whose identity held across two reads") {
    TableImage a(4);
    a.worker(0, "stay", 10, 1);
    a.worker(1, "reclaimed", 11, 1);
    a.worker(2, "released", 12, 1);
    TableImage b = a;
    b.slots[0].progress = 50;                 // progress may move: still the same worker
    b.slots[1].generation = 2;                // slot claimed again in between
    b.slots[2].state = STALLWATCH_SLOT_FREE;  // released in between
    auto sa = parse(a);
    auto sb = parse(b);
    REQUIRE(sa.ok());
    REQUIRE(sb.ok());
    auto c = table::confirm(*sa, *sb);
    REQUIRE(c.workers.size() == 1);
    CHECK(c.workers[0].name == "stay");
    CHECK(c.workers[0].progress == 1);
}

TEST_CASE("version 2: groups between the header and the slots, workers naming them") {
    TableImage img(4);
    img.with_groups(3);
    auto& pool = img.group(1, "pool");
    pool.threshold_ms = 100;
    pool.episodes = 2;
    pool.episode_begin_unix_ns = 1'700'000'000'000'000'000ull;
    pool.extra_threads = 1;
    pool.extra_threads_peak = 2;
    img.worker(0, "in-pool", 11).group = 2;
    img.worker(1, "alone", 12);
    img.worker(2, "names-a-group-not-made", 13).group = 3;
    auto r = parse(img);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    CHECK(r->header.version == 2);
    CHECK(r->header.group_capacity == 3);
    CHECK(r->header.header_size == 128 + 3 * 64);
    REQUIRE(r->groups.size() == 1);
    CHECK(r->groups[0].id == 2);
    CHECK(r->groups[0].name == "pool");
    CHECK(r->groups[0].threshold_ms == 100);
    CHECK(r->groups[0].episodes == 2);
    CHECK(r->groups[0].extra_threads_peak == 2);
    REQUIRE(r->workers.size() == 3);
    CHECK(r->workers[0].group == 2);
    CHECK(r->workers[1].group == 0);
    CHECK(r->workers[2].group == 0);  // a group this read saw as not made: none
    CHECK(sw::table::image_size(r->header) == 128 + 3 * 64 + 3 * 64);
}

TEST_CASE("version 2: bad group capacity, header size, group state, group name or slot group is corrupt") {
    auto refused = [](TableImage img, const std::string& what) {
        auto r = parse(img);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == Errc::corrupt_table);
        CHECK_MESSAGE(r.error().message.find(what) != std::string::npos, r.error().message);
    };
    TableImage base(2);
    base.with_groups(2);
    base.group(0, "pool");
    base.worker(0, "w", 11).group = 1;
    REQUIRE(parse(base).ok());

    auto none = base;
    none.header.group_capacity = 0;
    refused(none, "0 groups is outside 1..64");
    auto many = base;
    many.header.group_capacity = 65;
    refused(many, "65 groups is outside 1..64");
    auto size = base;
    size.header.header_size = 128;
    refused(size, "header size 128 (version 2 with 2 groups requires 256)");
    auto state = base;
    state.groups[0].state = 7;
    refused(state, "group 0 has unknown state 7");
    auto name = base;
    std::memset(name.groups[0].name, 'x', sizeof name.groups[0].name);
    refused(name, "group 0 name is not NUL-terminated");
    auto slot = base;
    slot.slots[0].group = 3;
    refused(slot, "slot 0 names group 3 of 2");
}

TEST_CASE("version 1 ignores the group fields (reserved there), as it ignores every reserved byte") {
    TableImage img(2);
    img.header.group_capacity = 9;
    img.worker(0, "w", 11).group = 5;
    auto r = parse(img);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    CHECK(r->header.group_capacity == 0);
    CHECK(r->groups.empty());
    CHECK(r->workers[0].group == 0);
}

TEST_CASE("version 2: a confirmed read keeps the groups both reads agree on, and says when they did not") {
    TableImage img(2);
    img.with_groups(1);
    auto& g = img.group(0, "pool");
    g.episodes = 1;
    img.worker(0, "w", 11).group = 1;
    auto first = parse(img);
    REQUIRE(first.ok());
    auto same = sw::table::confirm(*first, *first);
    CHECK(same.groups_consistent);
    REQUIRE(same.groups.size() == 1);
    CHECK(same.groups[0].episodes == 1);

    img.groups[0].episode_begin_unix_ns = 1'700'000'000'000'000'000ull;  // an episode began between the reads
    auto second = parse(img);
    REQUIRE(second.ok());
    auto torn = sw::table::confirm(*first, *second);
    CHECK_FALSE(torn.groups_consistent);
    CHECK(torn.groups.empty());
    CHECK(torn.workers.size() == 1);  // the workers are confirmed as before
}

