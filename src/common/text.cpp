#include "common/text.hpp"

#include <ctime>

#include <fmt/format.h>

namespace sw {

std::string printable(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f || c == '\\')
            out += fmt::format("\\x{:02x}", c);
        else
            out += static_cast<char>(c);
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
