// Fuzzes the text helpers applied to what the target wrote
// (src/common/text.hpp): printable() on names, rfc3339() on the table's
// creation time.
//
// Input: an 8-byte little-endian creation time (ns since the epoch), then
// the name.
#include <string>

#include "common/text.hpp"
#include "fuzz_support.hpp"

namespace {

// Undoes printable(): \xNN back to the byte. Returns false on anything
// printable() cannot have written.
bool unescape(std::string_view s, std::string& out) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        if (s.size() - i < 4 || s[i + 1] != 'x') return false;
        int hi = hex(s[i + 2]), lo = hex(s[i + 3]);
        if (hi < 0 || lo < 0) return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 3;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    sw::fuzz::Input in(data, size);
    const std::uint64_t created_ns = in.u64();
    const std::string_view name = sw::fuzz::as_chars(in.rest());

    // Nothing that moves a cursor or starts a line gets through, and the
    // escaping loses nothing: two different names never print the same.
    const std::string shown = sw::printable(name);
    SW_FUZZ_CHECK(sw::fuzz::no_control_bytes(shown));
    std::string back;
    SW_FUZZ_CHECK(unescape(shown, back));
    SW_FUZZ_CHECK(back == name);

    const std::string when = sw::rfc3339(created_ns);
    SW_FUZZ_CHECK(!when.empty());
    SW_FUZZ_CHECK(sw::fuzz::no_control_bytes(when));
    return 0;
}
