// Target addresses and target memory: RemoteAddr, the copy of a stack, the
// mapping lookup, and the MemoryReader helpers over in-memory bytes.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <type_traits>

#include "proc/capture.hpp"
#include "proc/maps.hpp"
#include "support/fake_memory.hpp"

using sw::RemoteAddr;

TEST_CASE("a remote address is built explicitly, moves by bytes and formats as its integer") {
    static_assert(!std::is_convertible_v<std::uint64_t, RemoteAddr>);
    static_assert(!std::is_convertible_v<RemoteAddr, std::uint64_t>);
    RemoteAddr a{0x1000};
    CHECK((a + 0x10).value() == 0x1010);
    CHECK((a - 1).value() == 0xfff);
    CHECK(RemoteAddr{0x1010} - a == 0x10);
    CHECK(a < a + 1);
    CHECK(a == RemoteAddr{0x1000});
    CHECK(RemoteAddr{}.is_null());
    CHECK(fmt::format("{:#x}", a) == "0x1000");
    CHECK(fmt::format("{:#018x}", a) == "0x0000000000001000");
    CHECK(fmt::format("{}", a) == "4096");
    CHECK(sw::in_range(a, a, a + 1));
    CHECK_FALSE(sw::in_range(a + 1, a, a + 1));
}

TEST_CASE("the stack copy answers only for the bytes it holds") {
    sw::proc::StackCopy s;
    s.base = RemoteAddr{0x7000};
    s.bytes.resize(64);
    CHECK(s.contains(RemoteAddr{0x7000}, 8));
    CHECK(s.contains(RemoteAddr{0x7038}, 8));
    CHECK_FALSE(s.contains(RemoteAddr{0x7039}, 8));
    CHECK_FALSE(s.contains(RemoteAddr{0x6fff}, 1));
    CHECK_FALSE(s.contains(RemoteAddr{~0ull}, 8));  // no wrap-around
}

TEST_CASE("find_mapping takes a remote address") {
    auto maps = sw::proc::parse_maps(
        "00400000-00401000 r-xp 00000000 08:01 42 /bin/app\n"
        "7ffd0000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n");
    REQUIRE(maps.size() == 2);
    CHECK(maps[0].start == RemoteAddr{0x400000});
    CHECK(maps[1].size() == 0x2000);
    CHECK(sw::proc::find_mapping(maps, RemoteAddr{0x400fff}) == &maps[0]);
    CHECK(sw::proc::find_mapping(maps, RemoteAddr{0x401000}) == nullptr);
    CHECK(sw::proc::find_mapping(maps, RemoteAddr{0x7ffd1000}) == &maps[1]);
}

TEST_CASE("a memory reader reads what is mapped, short where it ends") {
    sw::test::FakeMemory mem;
    std::vector<std::byte> page(16);
    for (std::size_t i = 0; i < page.size(); ++i) page[i] = std::byte(i);
    mem.add(RemoteAddr{0x1000}, page);

    std::uint32_t v = 0;
    REQUIRE(mem.read_value(RemoteAddr{0x1004}, v));
    CHECK(v == 0x07060504u);
    std::vector<std::byte> out(8);
    CHECK(mem.read(RemoteAddr{0x100c}, out) == 4);  // runs off the end
    CHECK_FALSE(mem.read_exact(RemoteAddr{0x100c}, out));
    CHECK(mem.read(RemoteAddr{0x2000}, out) == 0);
}
