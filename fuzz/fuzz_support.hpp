// What the fuzz targets share: reading fixed-width fields off the front of
// the input, and invariants that stop the run like a crash when they break.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string_view>

// Aborts (a finding for libFuzzer) when an invariant of the code under test
// does not hold. Not assert(): it must survive -DNDEBUG.
#define SW_FUZZ_CHECK(cond)                                                               \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", __FILE__, __LINE__, \
                         #cond);                                                          \
            std::abort();                                                                 \
        }                                                                                 \
    } while (0)

namespace sw::fuzz {

// The input, consumed from the front. Fields past the end read as zero, so
// every input, even an empty one, is a valid test case.
class Input {
public:
    Input(const std::uint8_t* data, std::size_t size)
        : bytes_(reinterpret_cast<const std::byte*>(data), size) {}

    std::uint64_t u64() { return take<std::uint64_t>(); }
    std::uint32_t u32() { return take<std::uint32_t>(); }

    // The next `n` bytes (fewer if the input ends first).
    std::span<const std::byte> bytes(std::size_t n) {
        auto out = bytes_.first(std::min(n, bytes_.size()));
        bytes_ = bytes_.subspan(out.size());
        return out;
    }
    std::span<const std::byte> rest() { return bytes(bytes_.size()); }

private:
    template <class T>
    T take() {
        T v{};
        auto b = bytes(sizeof v);
        std::memcpy(&v, b.data(), b.size());  // little-endian, as on the target
        return v;
    }
    std::span<const std::byte> bytes_;
};

inline std::string_view as_chars(std::span<const std::byte> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// True when `s` holds no byte a terminal or a line-based log would act on.
inline bool no_control_bytes(std::string_view s) {
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return false;
    return true;
}

}  // namespace sw::fuzz
