// One JSON event within a size limit (docs/json-events.md, "Size limit"):
// exposed so that unit tests can check the shortening on report values.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

#include "report/report.hpp"

namespace sw::report {

// A stack report (`stall`, `stall_update`, `sample`) as one JSON Lines line,
// without its newline. With `max_bytes` > 0 the line and its newline take at
// most `max_bytes` bytes (for max_bytes >= min_max_event_bytes): frames are
// dropped, then strings cut, in the documented order, and the event says so.
std::string stack_event_line(const StallReport& r, std::size_t max_bytes);

// For events written outside a Writer (`status`): the fields every event
// about process `t` starts with (docs/json-events.md, "Common fields"), and
// an event as one line, without its newline (invalid UTF-8 replaced).
nlohmann::ordered_json event_base(std::string_view event, const Target& t, std::string timestamp);
std::string event_line(const nlohmann::ordered_json& j);

}  // namespace sw::report
