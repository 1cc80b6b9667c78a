#include "common/duration.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace sw {

Result<std::chrono::nanoseconds> read_duration(std::string_view text) {
    auto not_one = [&] {
        return make_error(Errc::usage,
                          fmt::format("'{}' is not a duration: give a number and a unit, like 250ms or 2s", text));
    };
    if (text == "0") return std::chrono::nanoseconds(0);  // zero needs no unit
    std::size_t i = 0;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    if (i == 0 || i == text.size()) return not_one();
    std::string number(text.substr(0, i));
    if (number.find('.') != number.rfind('.')) return not_one();
    char* end = nullptr;
    double value = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size() || !std::isfinite(value)) return not_one();
    std::string_view unit = text.substr(i);
    double scale = 0;
    if (unit == "ns") scale = 1;
    else if (unit == "us" || unit == "\xc2\xb5s") scale = 1e3;
    else if (unit == "ms") scale = 1e6;
    else if (unit == "s") scale = 1e9;
    else if (unit == "m" || unit == "min") scale = 60e9;
    else if (unit == "h") scale = 3600e9;
    else return not_one();
    double ns = value * scale;
    if (ns > static_cast<double>(max_duration.count()))
        return make_error(Errc::usage, fmt::format("'{}' is too long: at most {}h", text,
                                                   max_duration.count() / 3'600'000'000'000LL));
    return std::chrono::nanoseconds(static_cast<long long>(std::llround(ns)));
}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
    auto d = read_duration(text);
    if (!d) return std::nullopt;
    return *d;
}

std::string format_duration(std::chrono::nanoseconds d) {
    auto ns = d.count();
    if (ns < 0) ns = 0;
    if (ns < 1'000) return fmt::format("{}ns", ns);
    if (ns < 1'000'000) return fmt::format("{}us", ns / 1'000);
    if (ns < 10'000'000'000LL) {
        if (ns < 1'000'000'000) return fmt::format("{}ms", ns / 1'000'000);
        return fmt::format("{:.2f}s", static_cast<double>(ns) / 1e9);
    }
    auto s = ns / 1'000'000'000;
    if (s < 60) return fmt::format("{}s", s);
    if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
    return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
}

namespace {

// The last digit format_duration shows for `ns`.
long long shown_step(long long ns) {
    if (ns < 1'000) return 1;
    if (ns < 1'000'000) return 1'000;
    if (ns < 1'000'000'000) return 1'000'000;
    if (ns < 10'000'000'000LL) return 10'000'000;
    if (ns < 3'600'000'000'000LL) return 1'000'000'000;
    return 60'000'000'000LL;
}

}  // namespace

std::string format_duration_down(std::chrono::nanoseconds d) {
    auto ns = std::max<long long>(d.count(), 0);
    auto step = shown_step(ns);
    return format_duration(std::chrono::nanoseconds(ns / step * step));
}

std::string format_duration_up(std::chrono::nanoseconds d) {
    auto ns = std::max<long long>(d.count(), 0);
    auto step = shown_step(ns);
    auto up = ns % step == 0 ? ns : (ns / step + 1) * step;
    // Rounding up can reach the next magnitude (999.5ms is 1.00s): its own
    // step then divides it, since each step divides the next.
    return format_duration(std::chrono::nanoseconds(up));
}

}  // namespace sw
