// Writes the seed corpus of the fuzz targets: tables as the shim writes them
// (built with tests/support/table_image.hpp), the hostile tables of
// tests/unit/test_parse.cpp, maps files, names and .eh_frame sections. The output is checked in
// under fuzz/corpus/; the test "fuzz: the checked-in seeds are what
// sw_fuzz_make_corpus writes" keeps the two in step.
//
//   sw_fuzz_make_corpus fuzz/corpus      (rewrites the generated seeds only;
//                                          regression inputs are left alone)
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "stallwatch/table_abi.h"
#include "support/table_image.hpp"

namespace fs = std::filesystem;
using sw::test::TableImage;
using Bytes = std::vector<std::byte>;

namespace {

fs::path g_out;

void write(const std::string& target, const std::string& name, const Bytes& b) {
    fs::create_directories(g_out / target);
    std::ofstream f(g_out / target / name, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    if (!f) {
        std::fprintf(stderr, "sw_fuzz_make_corpus: cannot write %s/%s\n", target.c_str(), name.c_str());
        std::exit(1);
    }
}

void append(Bytes& b, const void* p, std::size_t n) {
    auto* c = static_cast<const std::byte*>(p);
    b.insert(b.end(), c, c + n);
}

template <class T>
void append_le(Bytes& b, T v) {  // x86-64: memory order is little-endian
    append(b, &v, sizeof v);
}

void append(Bytes& b, std::string_view s) { append(b, s.data(), s.size()); }

// fuzz_table input: file size, then the image (optionally cut short).
void table_seed(const std::string& name, const Bytes& image, std::uint64_t file_size) {
    Bytes b;
    append_le<std::uint64_t>(b, file_size);
    append(b, image.data(), image.size());
    write("table", name, b);
}
void table_seed(const std::string& name, const TableImage& img) {
    auto image = img.bytes();
    table_seed(name, image, image.size());
}

// fuzz_table_confirm input: file size, length of the first image, both images.
void confirm_seed(const std::string& name, const TableImage& a, const TableImage& b) {
    auto ia = a.bytes(), ib = b.bytes();
    Bytes out;
    append_le<std::uint64_t>(out, ia.size());
    append_le<std::uint32_t>(out, static_cast<std::uint32_t>(ia.size()));
    append(out, ia.data(), ia.size());
    append(out, ib.data(), ib.size());
    write("table_confirm", name, out);
}

Bytes text(std::string_view s) {
    Bytes b;
    append(b, s);
    return b;
}

// fuzz_text input: creation time, then a name.
void text_seed(const std::string& name, std::uint64_t created_ns, std::string_view s) {
    Bytes b;
    append_le<std::uint64_t>(b, created_ns);
    append(b, s);
    write("text", name, b);
}

// Page-rounded, as the shim sizes the file: larger than the slots need.
std::uint64_t page_rounded(const TableImage& img) {
    return (img.bytes().size() + 4095) / 4096 * 4096;
}

void tables() {
    // Valid tables, as the shim leaves them.
    {
        TableImage img(8, "my-service");
        img.worker(0, "io-0", 100, 7);
        img.worker(2, "io-2", 102, 9, STALLWATCH_SLOT_PARKED);
        img.worker(3, "gone", 103, 1, STALLWATCH_SLOT_FREE);
        img.worker(4, "half", 104, 1, STALLWATCH_SLOT_CLAIMED);
        table_seed("valid-workers", img);
        table_seed("valid-workers-page-rounded", img.bytes(), page_rounded(img));
    }
    {
        TableImage img(16, "full-table");
        for (std::uint32_t i = 0; i < 16; ++i)
            img.worker(i, std::string(37, 'w') + "-" + std::to_string(i % 10),  // 39 bytes: the most
                       1000 + static_cast<std::int32_t>(i), 0xffffffffffull * i,
                       i % 2 ? STALLWATCH_SLOT_PARKED : STALLWATCH_SLOT_RUNNING);
        table_seed("valid-full", img);
    }
    {
        TableImage img(4, "\xd1\x81\xd0\xb5\xd1\x80\xd0\xb2\xd0\xb8\xd1\x81");  // UTF-8 "сервис"
        img.worker(1, "\xe5\xb7\xa5\xe4\xbd\x9c-1", 7, 1);                       // UTF-8 "工作-1"
        table_seed("valid-utf8-names", img);
    }
    {
        TableImage img(4);
        table_seed("valid-no-workers", img);
    }
    {
        TableImage img(4);  // a worker whose slot was released and claimed again
        img.worker(0, "again", 11, 3).generation = 0xffffffffu;
        table_seed("valid-generation-wrapped", img);
    }
    {
        // Maximum capacity: the header is whole, the image stops after slot 1.
        TableImage img(2, "big");
        img.header.capacity = STALLWATCH_MAX_CAPACITY;
        img.header.slots_high_water = STALLWATCH_MAX_CAPACITY;
        img.worker(0, "a", 1);
        img.worker(1, "b", 2);
        img.header.slots_high_water = STALLWATCH_MAX_CAPACITY;
        table_seed("valid-max-capacity-short-image", img.bytes(),
                   STALLWATCH_HEADER_SIZE + std::uint64_t{STALLWATCH_MAX_CAPACITY} * STALLWATCH_SLOT_SIZE);
    }

    // The hostile cases of tests/unit/test_parse.cpp.
    {
        TableImage img(4);
        img.worker(0, "a", 10);
        img.slots[3].state = 99;
        table_seed("garbage-beyond-high-water", img);
    }
    for (std::size_t n : {1u, 8u, 64u, 127u}) {
        auto b = TableImage().bytes();
        b.resize(n);
        table_seed("truncated-header-" + std::to_string(n), b, n);
    }
    {
        TableImage img;
        img.header.magic[0] = 'X';
        table_seed("wrong-magic", img);
        std::memset(img.header.magic, 0, sizeof img.header.magic);
        table_seed("magic-not-yet-published", img);
    }
    {
        TableImage img;
        img.header.version = STALLWATCH_TABLE_VERSION_MAX + 1;
        table_seed("future-version", img);
        img.header.version = 0;
        table_seed("version-0", img);
    }
    {
        TableImage img(4);
        img.with_groups(2);
        auto& g = img.group(0, "pool");
        g.threshold_ms = 100;
        g.episodes = 1;
        g.episode_begin_unix_ns = 1'700'000'000'000'000'000ull;
        img.worker(0, "in-pool", 11).group = 1;
        img.worker(1, "alone", 12);
        table_seed("version-2-groups", img);
        img.slots[0].group = 3;
        table_seed("version-2-slot-names-no-such-group", img);
    }
    {
        TableImage img(4);
        img.header.capacity = 5;
        table_seed("capacity-past-file-size", img);
        img.header.capacity = 0xffffffffu;
        table_seed("capacity-overflows-32-bits", img);
        img.header.capacity = 0;
        table_seed("capacity-0", img);
    }
    {
        TableImage img(4);
        img.header.slots_high_water = 5;
        table_seed("high-water-past-capacity", img);
    }
    {
        TableImage img;
        img.header.slot_size = 128;
        table_seed("slot-size-128", img);
        img.header.slot_size = STALLWATCH_SLOT_SIZE;
        img.header.header_size = 64;
        table_seed("header-size-64", img);
    }
    {
        TableImage img;
        std::memset(img.header.app_name, 'A', sizeof img.header.app_name);
        table_seed("app-name-without-nul", img);
        TableImage img2;
        std::memset(img2.worker(1, "x", 10).name, 'B', STALLWATCH_WORKER_NAME_SIZE);
        table_seed("worker-name-without-nul", img2);
    }
    {
        TableImage img;
        img.worker(0, "x", 10).state = 7;
        table_seed("unknown-slot-state", img);
        TableImage img2;
        img2.worker(0, "x", -5);
        table_seed("negative-tid", img2);
    }
    {
        TableImage img;
        img.header.pid = 0;
        table_seed("creator-pid-0", img);
    }
    {
        TableImage img(4);
        img.worker(0, "first", 10);
        img.worker(3, "late", 13);
        auto b = img.bytes();
        std::uint64_t size = b.size();
        b.resize(STALLWATCH_HEADER_SIZE + STALLWATCH_SLOT_SIZE);
        table_seed("image-shorter-than-high-water", b, size);
    }
    table_seed("empty-file", {}, 0);
    {
        TableImage img(4);  // the file shrank below the image that was read
        img.worker(0, "a", 10);
        table_seed("file-smaller-than-image", img.bytes(), STALLWATCH_HEADER_SIZE + 10);
    }
    {
        TableImage img(4);
        img.worker(0, "\x1b[2J\x1b[Hforged\nline", 10);  // control bytes in a name
        table_seed("control-bytes-in-name", img);
    }
}

void confirm_pairs() {
    TableImage a(4);
    a.worker(0, "stay", 10, 1);
    a.worker(1, "reclaimed", 11, 1);
    a.worker(2, "released", 12, 1);
    TableImage b = a;
    b.slots[0].progress = 50;
    b.slots[1].generation = 2;
    b.slots[2].state = STALLWATCH_SLOT_FREE;
    confirm_seed("reclaimed-and-released", a, b);
    confirm_seed("unchanged", a, a);

    TableImage c = a;  // a slot claimed between the reads, names torn
    c.worker(3, "new", 13, 0);
    c.slots[0].tid = 99;
    std::memcpy(c.slots[1].name, "recl", 4);
    confirm_seed("new-slot-and-torn-identity", a, c);

    TableImage corrupt = a;
    corrupt.slots[0].state = 9;
    confirm_seed("second-read-corrupt", a, corrupt);
}

void maps() {
    write("maps", "typical", text(
        "55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1048603                    /usr/bin/server\n"
        "55d0c0a02000-55d0c0a07000 r-xp 00002000 fd:01 1048603                    /usr/bin/server\n"
        "55d0c1f6e000-55d0c1f8f000 rw-p 00000000 00:00 0                          [heap]\n"
        "7f2a3c000000-7f2a3c021000 rw-p 00000000 00:00 0 \n"
        "7f2a40a00000-7f2a40a28000 r--p 00000000 fd:01 1050321                    /usr/lib/x86_64-linux-gnu/libc.so.6\n"
        "7f2a40a28000-7f2a40bbd000 r-xp 00028000 fd:01 1050321                    /usr/lib/x86_64-linux-gnu/libc.so.6\n"
        "7f2a40c00000-7f2a40c01000 rw-s 00000000 00:01 4242                       /memfd:stallwatch (deleted)\n"
        "7ffd5a9e1000-7ffd5aa02000 rw-p 00000000 00:00 0                          [stack]\n"
        "7ffd5abf3000-7ffd5abf7000 r--p 00000000 00:00 0                          [vvar]\n"
        "7ffd5abf7000-7ffd5abf9000 r-xp 00000000 00:00 0                          [vdso]\n"
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"));
    // Paths the target chose: spaces, a fake " (deleted)", what looks like
    // another line's fields, the kernel's \012 for a newline in a name.
    write("maps", "hostile-paths", text(
        "7f0000000000-7f0000001000 r-xp 00000000 fd:01 17 /tmp/a b  c/lib evil.so\n"
        "7f0000001000-7f0000002000 r-xp 00001000 fd:01 18 /tmp/x (deleted) (deleted)\n"
        "7f0000002000-7f0000003000 r-xp 00000000 fd:01 19 /tmp/7f0000000000-7fffffffffff r-xp 0 0:0 0 /bin/sh\n"
        "7f0000003000-7f0000004000 r--p 00000000 fd:01 20 /tmp/new\\012line\n"
        "7f0000004000-7f0000005000 r--p 00000000 fd:01 21 /tmp/\x1b[31mred\x07\n"));
    write("maps", "malformed", text(
        "\n"
        "not a maps line\n"
        "7f00-7e00 r-xp 0 fd:01 1 /end-before-start\n"
        "zzzz-7f00 r-xp 00000000 fd:01 1 /bad-hex\n"
        "7f00-7f01 rwxpXX 00000000 fd:01 1 /long-perms\n"
        "ffffffffffffffffffff-1 r-xp ffffffffffffffffffff fd:01 99999999999999999999 /overflow\n"
        "-1--1 r-xp -1 fd:01 -1 /negative\n"
        "7f00-7f01 r-xp 00000000 fd:01\n"
        "7f00-7f01 r-xp 00000000 fd:01 5"));
    write("maps", "empty", {});
}

void names() {
    text_seed("plain", 1'700'000'000'000'000'000ull, "io-worker-3");
    text_seed("escapes", 0, "\x1b]0;owned\x07\x1b[2J\r\nstallwatch: forged line\\x41\x7f");
    text_seed("utf8", 1'700'000'000'123'456'789ull, "\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xbd\xd0\xb8\xd0\xba-1 \xe2\x9c\x93");
    text_seed("invalid-utf8", ~0ull, "\xff\xfe\xc0\x80\xed\xa0\x80");
    text_seed("nul-inside", 1, std::string_view("a\0b\\", 4));
    text_seed("time-year-2262", 0x8000000000000000ull, "");
}

// fuzz_eh_frame input: a mode byte, a load address, then the bytes.
void eh_frame_seed(const std::string& name, std::uint8_t mode, std::uint64_t address, const Bytes& body) {
    Bytes b;
    append_le<std::uint8_t>(b, mode);
    append_le<std::uint64_t>(b, address);
    append(b, body.data(), body.size());
    write("eh_frame", name, b);
}

// A CIE with augmentation `aug` (its data `aug_data`) and FDEs of it for
// the pcs in `pcs` (pcrel|sdata4 when the CIE has 'R', 8-byte absolute
// otherwise), as GCC lays them out; then the zero terminator.
Bytes eh_frame_section(std::uint64_t address, std::string_view aug, const Bytes& aug_data,
                       const std::vector<std::uint32_t>& pcs) {
    Bytes b;
    auto record = [&](const Bytes& body) {
        append_le<std::uint32_t>(b, static_cast<std::uint32_t>(body.size()));
        append(b, body.data(), body.size());
    };
    Bytes cie;
    append_le<std::uint32_t>(cie, 0);  // CIE id
    append_le<std::uint8_t>(cie, 1);   // version
    append(cie, aug);
    append_le<std::uint8_t>(cie, 0);
    append(cie, "\x01\x78\x10");  // code alignment 1, data alignment -8, return address r16
    if (!aug.empty()) {
        append_le<std::uint8_t>(cie, static_cast<std::uint8_t>(aug_data.size()));
        append(cie, aug_data.data(), aug_data.size());
    }
    append(cie, "\x0c\x07\x08");  // DW_CFA_def_cfa rsp+8
    while (cie.size() % 8 != 4) cie.push_back(std::byte{0});
    record(cie);
    const bool pcrel = aug.find('R') != std::string_view::npos;
    for (std::uint32_t pc : pcs) {
        Bytes fde;
        append_le<std::uint32_t>(fde, static_cast<std::uint32_t>(b.size() + 4));  // back to the CIE at 0
        if (pcrel) {
            std::uint64_t field = address + b.size() + 8;
            append_le<std::uint32_t>(fde, static_cast<std::uint32_t>(pc - field));
            append_le<std::uint32_t>(fde, 0x40);
            append_le<std::uint8_t>(fde, 0);  // augmentation data length
        } else {
            append_le<std::uint64_t>(fde, pc);
            append_le<std::uint64_t>(fde, 0x40);
        }
        while (fde.size() % 8 != 4) fde.push_back(std::byte{0});
        record(fde);
    }
    append_le<std::uint32_t>(b, 0);
    return b;
}

void eh_frames() {
    constexpr std::uint64_t at = 0x4a9d28;
    eh_frame_seed("zR-two-fdes", 0, at, eh_frame_section(at, "zR", {std::byte{0x1b}}, {0x402000, 0x401000}));
    eh_frame_seed("zPLR", 0, at,
                  eh_frame_section(at, "zPLR",
                                   {std::byte{0x9b}, std::byte{0x34}, std::byte{0x12}, std::byte{0},
                                    std::byte{0}, std::byte{0x1b}, std::byte{0x1b}},
                                   {0x401000, 0x401100, 0x401200}));
    eh_frame_seed("no-augmentation", 0, at, eh_frame_section(at, "", {}, {0x401000}));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
        return 64;
    }
    g_out = argv[1];
    tables();
    confirm_pairs();
    maps();
    names();
    eh_frames();
    return 0;
}
