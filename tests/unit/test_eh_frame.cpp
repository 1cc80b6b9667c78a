// The .eh_frame indexer (src/unwind/eh_frame.cpp) on real images, where
// the linker's .eh_frame_hdr is the reference, on hand-built sections, and
// on truncated and hostile bytes; and the classification of the C library
// linked into a static executable.
#include <doctest/doctest.h>

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>
#include <elf.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "report/classify.hpp"
#include "support/child.hpp"
#include "unwind/eh_frame.hpp"

using sw::unwind::ElfUnwindLayout;
using sw::unwind::index_eh_frame;
using sw::unwind::read_elf_layout;
using sw::unwind::read_from;
using sw::unwind::SearchTable;

namespace {

using Bytes = std::vector<std::byte>;

Bytes read_whole(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in, "cannot read " << path);
    std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Bytes out(chars.size());
    std::memcpy(out.data(), chars.data(), chars.size());
    return out;
}

template <class T>
T get(const Bytes& b, std::size_t off) {
    REQUIRE(off + sizeof(T) <= b.size());
    T v;
    std::memcpy(&v, b.data() + off, sizeof v);
    return v;
}

// The table's entries as absolute {pc_begin, FDE address} pairs.
std::vector<std::pair<std::uint64_t, std::uint64_t>> absolute(const SearchTable& t) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    for (std::size_t i = 0; i < t.entries(); ++i) {
        auto start = get<std::int32_t>(t.bytes, i * 8);
        auto fde = get<std::int32_t>(t.bytes, i * 8 + 4);
        out.emplace_back(t.segbase + static_cast<std::uint64_t>(std::int64_t{start}),
                         t.segbase + static_cast<std::uint64_t>(std::int64_t{fde}));
    }
    return out;
}

// The linker's table, from the file's PT_GNU_EH_FRAME (datarel|sdata4
// entries relative to the header's address), as absolute pairs.
std::vector<std::pair<std::uint64_t, std::uint64_t>> linker_table(const Bytes& file) {
    auto eh = get<Elf64_Ehdr>(file, 0);
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        auto ph = get<Elf64_Phdr>(file, eh.e_phoff + i * sizeof(Elf64_Phdr));
        if (ph.p_type != PT_GNU_EH_FRAME) continue;
        std::size_t off = ph.p_offset;
        REQUIRE(get<std::uint8_t>(file, off) == 1);
        REQUIRE(get<std::uint8_t>(file, off + 1) == 0x1b);  // eh_frame_ptr: pcrel|sdata4
        REQUIRE(get<std::uint8_t>(file, off + 2) == 0x03);  // fde_count: udata4
        REQUIRE(get<std::uint8_t>(file, off + 3) == 0x3b);  // table: datarel|sdata4
        auto count = get<std::uint32_t>(file, off + 8);
        std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
        for (std::uint32_t k = 0; k < count; ++k) {
            auto start = get<std::int32_t>(file, off + 12 + k * 8);
            auto fde = get<std::int32_t>(file, off + 16 + k * 8);
            out.emplace_back(ph.p_vaddr + static_cast<std::uint64_t>(std::int64_t{start}),
                             ph.p_vaddr + static_cast<std::uint64_t>(std::int64_t{fde}));
        }
        return out;
    }
    FAIL("no PT_GNU_EH_FRAME");
    return {};
}

// The .eh_frame of `file` indexed at its link-time address (bias 0).
std::optional<SearchTable> index_file(const Bytes& file, ElfUnwindLayout* layout_out = nullptr) {
    auto layout = read_elf_layout(read_from(file));
    REQUIRE(layout.has_value());
    REQUIRE(layout->eh_frame.has_value());
    if (layout_out) *layout_out = *layout;
    const auto& s = *layout->eh_frame;
    REQUIRE(s.offset + s.size <= file.size());
    return index_eh_frame(std::span(file).subspan(s.offset, s.size), s.vaddr);
}

// A little-endian .eh_frame writer for hand-built sections.
struct Section {
    Bytes b;
    std::size_t size() const { return b.size(); }
    void u8(unsigned v) { b.push_back(static_cast<std::byte>(v)); }
    void u32(std::uint32_t v) {
        for (int i = 0; i < 4; ++i) u8((v >> (8 * i)) & 0xff);
    }
    void u64(std::uint64_t v) {
        for (int i = 0; i < 8; ++i) u8(static_cast<unsigned>((v >> (8 * i)) & 0xff));
    }
    void uleb(std::uint64_t v) {
        do {
            unsigned byte = v & 0x7f;
            v >>= 7;
            u8(byte | (v ? 0x80 : 0));
        } while (v);
    }
    void str(const std::string& s) {
        for (char c : s) u8(static_cast<unsigned char>(c));
        u8(0);
    }
    void set32(std::size_t at, std::uint32_t v) { std::memcpy(b.data() + at, &v, 4); }
    // Starts a record: a length to patch, returned with the body's offset.
    std::size_t begin() {
        u32(0);
        return size();
    }
    void end(std::size_t body) { set32(body - 4, static_cast<std::uint32_t>(size() - body)); }

    // A CIE with augmentation `aug`, whose data `aug_data` writes; returns its offset.
    template <class F>
    std::size_t cie(const std::string& aug, F aug_data) {
        std::size_t at = size();
        auto body = begin();
        u32(0);        // CIE id
        u8(1);         // version
        str(aug);
        uleb(1);       // code alignment
        u8(0x78);      // data alignment -8 (sleb)
        u8(16);        // return address column
        if (!aug.empty() && aug[0] == 'z') {
            Section data;
            aug_data(data);
            uleb(data.size());
            b.insert(b.end(), data.b.begin(), data.b.end());
        }
        u8(0x0c), u8(7), u8(8);  // DW_CFA_def_cfa rsp+8
        while ((size() - body) % 8 != 4) u8(0);
        end(body);
        return at;
    }
    // An FDE of the CIE at `cie` for [pc, pc + range), pc encoded pcrel|sdata4
    // relative to the field's address, the section being at `address`.
    std::size_t fde_pcrel(std::size_t cie, std::uint64_t address, std::uint64_t pc, std::uint32_t range) {
        std::size_t at = size();
        auto body = begin();
        u32(static_cast<std::uint32_t>(body - cie));
        std::uint64_t field = address + size();
        u32(static_cast<std::uint32_t>(pc - field));
        u32(range);
        uleb(0);  // augmentation data length ('z')
        while ((size() - body) % 8 != 4) u8(0);
        end(body);
        return at;
    }
    std::size_t fde_abs(std::size_t cie, std::uint64_t pc, std::uint64_t range) {
        std::size_t at = size();
        auto body = begin();
        u32(static_cast<std::uint32_t>(body - cie));
        u64(pc);
        u64(range);
        end(body);
        return at;
    }
};

constexpr std::uint64_t kAddr = 0x4a9d28;  // where the hand-built sections are "loaded"

}  // namespace

TEST_CASE("eh_frame: our table equals the linker's .eh_frame_hdr on real images") {
    // This test program (C++: CIEs with personality and LSDA) and the C library.
    void* libc = ::dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    link_map* lm = nullptr;
    REQUIRE((libc && ::dlinfo(libc, RTLD_DI_LINKMAP, &lm) == 0 && lm));
    std::vector<std::string> paths = {"/proc/self/exe", lm->l_name};
    // Linked by lld: .eh_frame typed SHT_X86_64_UNWIND (clang's package brings it).
    if (::access("/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1", R_OK) == 0)
        paths.push_back("/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1");
    for (const auto& path : paths) {
        INFO(path);
        auto file = read_whole(path);
        ElfUnwindLayout layout;
        auto ours = index_file(file, &layout);
        REQUIRE(ours.has_value());
        CHECK(layout.has_eh_frame_hdr);
        auto mine = absolute(*ours);
        auto theirs = linker_table(file);
        CHECK(mine.size() > 100);
        CHECK(mine.size() == theirs.size());
        CHECK(std::set(mine.begin(), mine.end()) == std::set(theirs.begin(), theirs.end()));
        CHECK(std::is_sorted(mine.begin(), mine.end(), [](auto& a, auto& b) { return a.first < b.first; }));
        CHECK(ours->start_ip == mine.front().first);
    }
}

TEST_CASE("eh_frame: the static fixture has .eh_frame without a header, and it is indexed") {
    auto file = read_whole(sw::test::fixture("sw_fixture_stall_static"));
    ElfUnwindLayout layout;
    auto t = index_file(file, &layout);
    CHECK_FALSE(layout.has_eh_frame_hdr);
    CHECK_FALSE(layout.has_interp);
    REQUIRE(t.has_value());
    CHECK(t->entries() > 500);  // the fixture and the libc.a objects it pulled in
    auto e = absolute(*t);
    CHECK(std::is_sorted(e.begin(), e.end(), [](auto& a, auto& b) { return a.first < b.first; }));
    auto eh = get<Elf64_Ehdr>(file, 0);
    CHECK(eh.e_type == ET_EXEC);
    CHECK(t->start_ip >= 0x400000);
    CHECK(t->end_ip > t->start_ip);
    // A non-PIE executable is mapped where it was linked: no bias.
    REQUIRE_FALSE(layout.loads.empty());
    const auto& text = layout.loads.front();
    CHECK(layout.bias(text.vaddr & ~0xfffull, text.offset & ~0xfffull) == 0u);
}

TEST_CASE("eh_frame: hand-built sections") {
    SUBCASE("zR with pcrel|sdata4, two FDEs out of order") {
        Section s;
        auto cie = s.cie("zR", [](Section& d) { d.u8(0x1b); });
        auto f1 = s.fde_pcrel(cie, kAddr, 0x402000, 0x40);
        auto f2 = s.fde_pcrel(cie, kAddr, 0x401000, 0x10);
        s.u32(0);  // terminator
        s.fde_pcrel(cie, kAddr, 0x403000, 0x10);  // after it: not read
        auto t = index_eh_frame(s.b, kAddr);
        REQUIRE(t.has_value());
        auto e = absolute(*t);
        REQUIRE(e.size() == 2);
        CHECK(e[0] == std::pair<std::uint64_t, std::uint64_t>{0x401000, kAddr + f2});
        CHECK(e[1] == std::pair<std::uint64_t, std::uint64_t>{0x402000, kAddr + f1});
        CHECK(t->segbase == kAddr);
        CHECK(t->start_ip == 0x401000);
        CHECK(t->end_ip == 0x402040);
    }
    SUBCASE("zPLR: the personality pointer is skipped by its encoding") {
        Section s;
        auto cie = s.cie("zPLR", [](Section& d) {
            d.u8(0x9b);  // personality: indirect|pcrel|sdata4
            d.u32(0x1234);
            d.u8(0x1b);  // LSDA encoding
            d.u8(0x1b);  // FDE encoding
        });
        s.fde_pcrel(cie, kAddr, 0x401000, 0x20);
        auto t = index_eh_frame(s.b, kAddr);
        REQUIRE(t.has_value());
        CHECK(absolute(*t).front().first == 0x401000);
    }
    SUBCASE("zPR with an aligned absolute personality, then 'S'") {
        Section s;
        auto cie = s.cie("zPRS", [&](Section& d) {
            d.u8(0x50);  // aligned absptr
            // The CIE header so far is 4+4+1+5+1+1+1 = 17 bytes, the aug length 1,
            // the encoding 1: the pointer is at offset 19, aligned up to 24.
            for (int i = 0; i < 5; ++i) d.u8(0);
            d.u64(0x1234);
            d.u8(0x1b);
        });
        s.fde_pcrel(cie, kAddr, 0x405000, 0x20);
        auto t = index_eh_frame(s.b, kAddr);
        REQUIRE(t.has_value());
        CHECK(absolute(*t).front().first == 0x405000);
    }
    SUBCASE("no augmentation: absolute 8-byte pointers") {
        Section s;
        auto cie = s.cie("", [](Section&) {});
        s.fde_abs(cie, 0x401000, 0x30);
        auto t = index_eh_frame(s.b, kAddr);
        REQUIRE(t.has_value());
        CHECK(absolute(*t).front().first == 0x401000);
        CHECK(t->end_ip == 0x401030);
    }
    SUBCASE("FDEs of CIEs we cannot read are left out, the others kept") {
        Section s;
        auto unknown = s.cie("X", [](Section&) {});                               // no 'z': size unknown
        auto datarel = s.cie("zR", [](Section& d) { d.u8(0x3b); });               // datarel: no base
        auto good = s.cie("zR", [](Section& d) { d.u8(0x1b); });
        s.fde_pcrel(unknown, kAddr, 0x401000, 0x10);
        s.fde_pcrel(datarel, kAddr, 0x402000, 0x10);
        s.fde_pcrel(good, kAddr, 0x403000, 0x10);
        auto t = index_eh_frame(s.b, kAddr);
        REQUIRE(t.has_value());
        auto e = absolute(*t);
        REQUIRE(e.size() == 1);
        CHECK(e[0].first == 0x403000);
    }
    SUBCASE("an FDE whose CIE pointer names another FDE, or points before the section") {
        Section s;
        auto cie = s.cie("zR", [](Section& d) { d.u8(0x1b); });
        auto f = s.fde_pcrel(cie, kAddr, 0x401000, 0x10);
        s.fde_pcrel(f, kAddr, 0x402000, 0x10);  // "CIE" is an FDE: its id is not 0
        auto body = s.begin();
        s.u32(static_cast<std::uint32_t>(body + 100));  // before the section's start
        s.u32(0), s.u32(0x10);
        s.end(body);
        auto t = index_eh_frame(s.b, kAddr);
        REQUIRE(t.has_value());
        CHECK(t->entries() == 1);
    }
    SUBCASE("a pc too far from the section for a 32-bit offset, and an empty range") {
        Section s;
        auto cie = s.cie("", [](Section&) {});
        s.fde_abs(cie, 0x7fff'0000'0000ull, 0x10);
        s.fde_abs(cie, 0x401000, 0);
        CHECK_FALSE(index_eh_frame(s.b, kAddr).has_value());
    }
    SUBCASE("empty and terminator-only sections") {
        CHECK_FALSE(index_eh_frame({}, kAddr).has_value());
        Section s;
        s.u32(0);
        CHECK_FALSE(index_eh_frame(s.b, kAddr).has_value());
    }
}

TEST_CASE("eh_frame: truncated and hostile bytes") {
    Section s;
    auto cie = s.cie("zPLR", [](Section& d) {
        d.u8(0x9b), d.u32(0x1234), d.u8(0x1b), d.u8(0x1b);
    });
    for (int i = 0; i < 8; ++i) s.fde_pcrel(cie, kAddr, 0x401000 + 0x100u * static_cast<unsigned>(i), 0x40);
    auto full = index_eh_frame(s.b, kAddr);
    REQUIRE(full.has_value());
    REQUIRE(full->entries() == 8);

    SUBCASE("every prefix: no more entries than the whole, never out of bounds") {
        for (std::size_t n = 0; n <= s.size(); ++n) {
            auto t = index_eh_frame(std::span(s.b).first(n), kAddr);
            if (t) CHECK(t->entries() <= 8);
        }
    }
    SUBCASE("a length that runs past the end ends the walk") {
        Section h = s;
        h.set32(0, 0xfffffff0u);  // the CIE's length
        CHECK_FALSE(index_eh_frame(h.b, kAddr).has_value());
        Section g = s;
        g.set32(g.size() - 24, 0x7fffffffu);  // the last FDE's length
        auto t = index_eh_frame(g.b, kAddr);
        REQUIRE(t.has_value());
        CHECK(t->entries() == 7);
    }
    SUBCASE("a 64-bit length is skipped, not misread") {
        Section h;
        h.u32(0xffffffffu);
        h.u64(8);
        h.u64(0);
        h.b.insert(h.b.end(), s.b.begin(), s.b.end());
        auto t = index_eh_frame(h.b, kAddr);
        // The CIE pointers of the copied FDEs still point back by the same
        // distance: the table is the same, 20 bytes further.
        REQUIRE(t.has_value());
        CHECK(t->entries() == 8);
    }
    SUBCASE("an endless uleb in the augmentation") {
        Section h;
        auto body = h.begin();
        h.u32(0), h.u8(1), h.str("zR"), h.uleb(1), h.u8(0x78), h.u8(16);
        for (int i = 0; i < 20; ++i) h.u8(0xff);
        h.end(body);
        h.fde_pcrel(0, kAddr, 0x401000, 0x10);
        CHECK_FALSE(index_eh_frame(h.b, kAddr).has_value());
    }
    SUBCASE("random bytes, and random bytes after a valid CIE") {
        std::mt19937_64 rng(12345);
        for (int round = 0; round < 2000; ++round) {
            Bytes junk(rng() % 512);
            for (auto& c : junk) c = static_cast<std::byte>(rng());
            (void)index_eh_frame(junk, rng());
            Section h = s;
            for (std::size_t k = 0; k < 1 + rng() % 8; ++k)
                h.b[rng() % h.size()] = static_cast<std::byte>(rng());
            if (auto t = index_eh_frame(h.b, kAddr)) CHECK(t->bytes.size() % 8 == 0);
        }
    }
}

TEST_CASE("elf layout: hostile headers") {
    auto file = read_whole(sw::test::fixture("sw_fixture_stall_static"));
    CHECK(read_elf_layout(read_from(std::span(file).first(10))) == std::nullopt);
    Bytes bad = file;
    bad[EI_CLASS] = std::byte{ELFCLASS32};
    CHECK(read_elf_layout(read_from(bad)) == std::nullopt);

    auto eh = get<Elf64_Ehdr>(file, 0);
    SUBCASE("section headers past the end: program headers only") {
        Bytes b = file;
        Elf64_Ehdr h = eh;
        h.e_shoff = b.size() - 10;
        std::memcpy(b.data(), &h, sizeof h);
        auto l = read_elf_layout(read_from(b));
        REQUIRE(l.has_value());
        CHECK_FALSE(l->eh_frame.has_value());
        CHECK_FALSE(l->loads.empty());
    }
    SUBCASE("a section-name table index out of range") {
        Bytes b = file;
        Elf64_Ehdr h = eh;
        h.e_shstrndx = static_cast<Elf64_Half>(h.e_shnum + 5);
        std::memcpy(b.data(), &h, sizeof h);
        auto l = read_elf_layout(read_from(b));
        REQUIRE(l.has_value());
        CHECK_FALSE(l->eh_frame.has_value());
    }
    SUBCASE("names that run past the string table") {
        Bytes b = file;
        for (unsigned i = 0; i < eh.e_shnum; ++i) {
            std::size_t at = eh.e_shoff + i * sizeof(Elf64_Shdr);
            auto sh = get<Elf64_Shdr>(b, at);
            sh.sh_name = 0xfffffff0u;
            std::memcpy(b.data() + at, &sh, sizeof sh);
        }
        auto l = read_elf_layout(read_from(b));
        REQUIRE(l.has_value());
        CHECK_FALSE(l->eh_frame.has_value());
    }
    SUBCASE("program headers of the wrong size") {
        Bytes b = file;
        Elf64_Ehdr h = eh;
        h.e_phentsize = 12;
        std::memcpy(b.data(), &h, sizeof h);
        CHECK(read_elf_layout(read_from(b)) == std::nullopt);
    }
}

TEST_CASE("elf layout: load bias of a PIE mapping") {
    ElfUnwindLayout l;
    l.loads.push_back({0, 0, 0x1000});
    l.loads.push_back({0x1000, 0x1000, 0x5000});
    l.loads.push_back({0x6d68, 0x7d68, 0x300});  // data: vaddr - offset = 0x1000
    CHECK(l.bias(0x5555'5555'4000ull, 0) == 0x5555'5555'4000ull);
    CHECK(l.bias(0x5555'5555'5000ull, 0x1000) == 0x5555'5555'4000ull);
    CHECK(l.bias(0x5555'5555'b000ull, 0x6000) == 0x5555'5555'4000ull);
    CHECK(l.bias(0x5555'5556'0000ull, 0x9000) == std::nullopt);
}

namespace {

sw::symbolize::Frame in_static(std::string fn, std::string module, bool with_line = false) {
    sw::symbolize::Frame f;
    f.function = std::move(fn);
    f.module = std::move(module);
    f.static_executable = true;
    if (with_line) f.location = sw::symbolize::SourceLocation{"/src/app/server.c", 42, 0};
    return f;
}

}  // namespace

TEST_CASE("frame classes in a statically linked executable") {
    using sw::report::classify;
    using sw::report::FrameClass;
    const std::string exe = "/app/server";
    // Reserved names, glibc's thread entry, and glibc's exports: libc.
    for (const char* fn : {"__lll_lock_wait", "___pthread_mutex_lock", "__clock_nanosleep", "_start",
                           "__libc_start_call_main", "start_thread", "clone3", "clone", "clock_nanosleep",
                           "pthread_mutex_lock", "read", "nanosleep@GLIBC_2.2.5", "epoll_wait"}) {
        INFO(fn);
        CHECK(classify(in_static(fn, exe), exe) == FrameClass::libc);
    }
    // The application's own functions, and a libc name it defines with debug info.
    CHECK(classify(in_static("handle_request", exe), exe) == FrameClass::application);
    CHECK(classify(in_static("main", exe), exe) == FrameClass::application);
    CHECK(classify(in_static("read", exe, true), exe) == FrameClass::application);
    CHECK(classify(in_static("_ZN3app6handleEv", exe), exe) == FrameClass::application);
    CHECK(classify(in_static("", exe), exe) == FrameClass::application);
    // C++ runtime names keep their class.
    CHECK(classify(in_static("std::thread::_State_impl::_M_run()", exe), exe) == FrameClass::cxx_runtime);
    // The same names in a dynamically linked executable stay the application's.
    auto dynamic = in_static("__lll_lock_wait", exe);
    dynamic.static_executable = false;
    CHECK(classify(dynamic, exe) == FrameClass::application);
}
