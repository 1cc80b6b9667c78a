#include "common/text.hpp"

#include <ctime>

#include <fmt/format.h>

namespace sw {

namespace {

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629:
// no overlong forms, no surrogates, nothing past U+10FFFF), 0 when there is none.
std::size_t utf8_sequence(std::string_view s) {
    auto at = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    auto cont = [&](std::size_t i) { return i < s.size() && (at(i) & 0xC0) == 0x80; };
    unsigned char c = at(0);
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2)) return 0;
        if (c == 0xE0 && at(1) < 0xA0) return 0;   // overlong
        if (c == 0xED && at(1) > 0x9F) return 0;   // a surrogate
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        if (c == 0xF0 && at(1) < 0x90) return 0;   // overlong
        if (c == 0xF4 && at(1) > 0x8F) return 0;   // past U+10FFFF
        return 4;
    }
    return 0;  // a continuation byte alone, 0xC0, 0xC1, 0xF5..0xFF
}

void escape(std::string& out, unsigned char c) { out += fmt::format("\\x{:02x}", c); }

}  // namespace

std::string printable(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    while (!s.empty()) {
        std::size_t n = utf8_sequence(s);
        auto c = static_cast<unsigned char>(s[0]);
        if (n == 0) {  // not UTF-8: the byte alone
            escape(out, c);
            n = 1;
        } else if (n == 1) {
            if (c < 0x20 || c == 0x7f || c == '\\')
                escape(out, c);
            else
                out += static_cast<char>(c);
        } else if (n == 2 && c == 0xC2 && static_cast<unsigned char>(s[1]) <= 0x9F) {
            // U+0080..U+009F, the C1 controls: U+009B is CSI, as ESC [ is.
            escape(out, c);
            escape(out, static_cast<unsigned char>(s[1]));
        } else {
            out.append(s.data(), n);
        }
        s.remove_prefix(n);
    }
    return out;
}

std::string rfc3339(std::uint64_t unix_ns) {
    std::time_t secs = static_cast<std::time_t>(unix_ns / 1'000'000'000u);
    unsigned ms = static_cast<unsigned>(unix_ns % 1'000'000'000u / 1'000'000u);
    std::tm tm {};
    if (!::localtime_r(&secs, &tm)) return "?";
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}{:02}:{:02}", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms, sign,
                       off / 3600, off / 60 % 60);
}

}  // namespace sw
