// An address in the target process: its own type, so that it is never
// mistaken for a size, an offset or an address of this process (rr's
// remote_ptr). Built only explicitly from an integer; moves by byte counts;
// the distance between two is a byte count. Formats as its integer does
// ("{:#x}").
#pragma once

#include <compare>
#include <cstdint>

#include <fmt/format.h>

namespace sw {

class RemoteAddr {
public:
    constexpr RemoteAddr() = default;
    constexpr explicit RemoteAddr(std::uint64_t value) : value_(value) {}

    constexpr std::uint64_t value() const { return value_; }
    constexpr bool is_null() const { return value_ == 0; }

    // Wrap-around arithmetic, as the integer's: callers that take untrusted
    // values check bounds themselves (see StackCopy::contains).
    constexpr RemoteAddr& operator+=(std::uint64_t n) { value_ += n; return *this; }
    constexpr RemoteAddr& operator-=(std::uint64_t n) { value_ -= n; return *this; }
    friend constexpr RemoteAddr operator+(RemoteAddr a, std::uint64_t n) { return a += n; }
    friend constexpr RemoteAddr operator-(RemoteAddr a, std::uint64_t n) { return a -= n; }
    // Bytes from `b` to `a`.
    friend constexpr std::uint64_t operator-(RemoteAddr a, RemoteAddr b) { return a.value_ - b.value_; }

    friend constexpr auto operator<=>(RemoteAddr, RemoteAddr) = default;

private:
    std::uint64_t value_ = 0;
};

// A half-open range [start, end) of target addresses.
constexpr bool in_range(RemoteAddr a, RemoteAddr start, RemoteAddr end) { return a >= start && a < end; }

}  // namespace sw

template <>
struct fmt::formatter<sw::RemoteAddr> : fmt::formatter<std::uint64_t> {
    template <class Context>
    auto format(sw::RemoteAddr a, Context& ctx) const {
        return fmt::formatter<std::uint64_t>::format(a.value(), ctx);
    }
};
