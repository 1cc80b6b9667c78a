// Target addresses and target memory: RemoteAddr, the copy of a stack, the
// mapping lookup, and the MemoryReader helpers over in-memory bytes.
#include <doctest/doctest.h>

#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

#include <array>
#include <cstdint>
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

TEST_CASE("a mapping keeps its device and whether it is shared") {
    auto maps = sw::proc::parse_maps(
        "7f0000000000-7f0000004000 rw-s 00000000 00:01 1042 /memfd:stallwatch (deleted)\n"
        "00400000-00401000 r-xp 00000000 fd:03 42 /bin/app\n");
    REQUIRE(maps.size() == 2);
    CHECK(maps[0].shared);
    CHECK(maps[0].dev == makedev(0, 1));
    CHECK(maps[0].inode == 1042);
    CHECK_FALSE(maps[1].shared);
    CHECK(maps[1].dev == makedev(0xfd, 3));
}

TEST_CASE("find_mapped: only a readable shared mapping of the same file that holds the whole range") {
    using sw::proc::MappedFileBytes;
    auto maps = sw::proc::parse_maps(
        // a private copy of the file: never (its bytes may differ from the file's)
        "7e0000000000-7e0000004000 rw-p 00000000 00:01 1042 /memfd:stallwatch (deleted)\n"
        // the file from offset 0x1000, shared
        "7f0000000000-7f0000002000 rw-s 00001000 00:01 1042 /memfd:stallwatch (deleted)\n"
        // another file on the same device, shared
        "7f1000000000-7f1000004000 rw-s 00000000 00:01 1043 /memfd:other (deleted)\n"
        // the same inode number on another device
        "7f2000000000-7f2000004000 r--s 00000000 00:02 1042 /dev/shm/x\n");
    const auto dev = makedev(0, 1);
    auto at = [&](std::uint64_t offset, std::size_t size) {
        return sw::proc::find_mapped(maps, MappedFileBytes{dev, 1042, offset, size});
    };
    CHECK(at(0x1000, 64) == RemoteAddr{0x7f0000000000});
    CHECK(at(0x1040, 64) == RemoteAddr{0x7f0000000040});
    CHECK(at(0x2fc0, 64) == RemoteAddr{0x7f0000001fc0});  // the last 64 bytes mapped
    CHECK_FALSE(at(0x2fc1, 64));                           // runs past the mapping's end
    CHECK_FALSE(at(0x0fc0, 64));                           // before the mapped part
    CHECK_FALSE(at(0x1000, 0));
    CHECK(sw::proc::find_mapped(maps, MappedFileBytes{makedev(0, 2), 1042, 0, 64}) == RemoteAddr{0x7f2000000000});
    CHECK_FALSE(sw::proc::find_mapped(maps, MappedFileBytes{dev, 1044, 0, 64}));
    // Not readable: not used.
    auto unreadable = sw::proc::parse_maps("7f0000000000-7f0000002000 -w-s 00000000 00:01 1042 /memfd:stallwatch\n");
    CHECK_FALSE(sw::proc::find_mapped(unreadable, MappedFileBytes{dev, 1042, 0, 64}));
}

TEST_CASE("read_ranges reads in order and stops at the first range it cannot read whole") {
    sw::test::FakeMemory mem;
    std::vector<std::byte> a(16, std::byte{1}), b(8, std::byte{2});
    mem.add(RemoteAddr{0x1000}, a);
    mem.add(RemoteAddr{0x2000}, b);
    std::array<std::byte, 16> x{};
    std::array<std::byte, 12> y{};
    std::array<std::byte, 4> z{};
    const sw::proc::MemoryReader::Range all[] = {
        {RemoteAddr{0x1000}, std::span(x)}, {RemoteAddr{0x2000}, std::span(y)}, {RemoteAddr{0x1000}, std::span(z)}};
    CHECK(mem.read_ranges(all) == 16 + 8);  // y runs out after 8: z is not read
    CHECK(x[15] == std::byte{1});
    CHECK(y[7] == std::byte{2});
    CHECK(z[0] == std::byte{0});
    const sw::proc::MemoryReader::Range missing_first[] = {{RemoteAddr{0x9000}, std::span(z)},
                                                           {RemoteAddr{0x1000}, std::span(x)}};
    CHECK(mem.read_ranges(missing_first) == 0);
}

TEST_CASE("read_ranges of a live process: one call, the same answer, and a short read at an unmapped range") {
    // This process's own memory through process_vm_readv.
    auto mem = sw::proc::open_memory(::getpid());
    std::array<std::byte, 64> src1{}, src2{};
    src1.fill(std::byte{0x11});
    src2.fill(std::byte{0x22});
    std::array<std::byte, 64> d1{}, d2{}, d3{};
    auto addr = [](const void* p) { return RemoteAddr{reinterpret_cast<std::uintptr_t>(p)}; };
    const sw::proc::MemoryReader::Range ranges[] = {{addr(src1.data()), std::span(d1)},
                                                    {addr(src2.data()), std::span(d2)}};
    CHECK(mem->read_ranges(ranges) == 128);
    CHECK(d1[63] == std::byte{0x11});
    CHECK(d2[0] == std::byte{0x22});
    // Page 0 is never mapped: the read stops there and nothing after it is read.
    d2.fill(std::byte{0});
    const sw::proc::MemoryReader::Range broken[] = {{addr(src1.data()), std::span(d1)},
                                                    {RemoteAddr{0x10}, std::span(d3)},
                                                    {addr(src2.data()), std::span(d2)}};
    CHECK(mem->read_ranges(broken) == 64);
    CHECK(d2[0] == std::byte{0});
}
