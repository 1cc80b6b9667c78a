// Durations on the command line: a number with a unit (250ms, 2s, 1.5s).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace sw {

// The longest duration accepted: 10^18 ns (about 31 years, 277777h).
inline constexpr std::chrono::nanoseconds max_duration{1'000'000'000'000'000'000};

// Accepts ns, us, ms, s, m and h, with an optional fraction. A bare number
// is refused ("100" could mean anything), except 0. The error (Errc::usage)
// says in one phrase what is wrong with `text`: not a duration, or too long.
Result<std::chrono::nanoseconds> read_duration(std::string_view text);

// read_duration's value, or nullopt.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

// For people: "850us", "105ms", "2.30s", "3m05s".
std::string format_duration(std::chrono::nanoseconds d);

// format_duration of `d` first rounded down (up) to the last digit it
// shows, so that a lower (upper) bound stays one when printed: 1.006s is
// "1.00s" down and "1.01s" up.
std::string format_duration_down(std::chrono::nanoseconds d);
std::string format_duration_up(std::chrono::nanoseconds d);

}  // namespace sw
