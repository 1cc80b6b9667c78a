// Text helpers for strings that come from the target (names it wrote).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sw {

// `s` with control bytes and DEL escaped as \xNN, so a hostile name cannot
// move the cursor, ring the bell or forge a line of output.
std::string printable(std::string_view s);

// `unix_ns` (ns since the epoch) as RFC 3339 local time with its UTC offset,
// millisecond precision: 2026-11-24T06:34:03.123+01:00.
std::string rfc3339(std::uint64_t unix_ns);

}  // namespace sw
