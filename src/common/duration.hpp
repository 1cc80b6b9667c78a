// Durations on the command line: a number with a unit (250ms, 2s, 1.5s).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sw {

// Accepts ns, us, ms, s, m and h, with an optional fraction. A bare number
// is refused ("100" could mean anything), except 0.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

// For people: "850us", "105ms", "2.30s", "3m05s".
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace sw
