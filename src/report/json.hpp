// One JSON event within a size limit (docs/json-events.md, "Size limit"):
// exposed so that unit tests can check the shortening on report values.
#pragma once

#include <cstddef>
#include <string>

#include "report/report.hpp"

namespace sw::report {

// A stack report (`stall`, `stall_update`, `sample`) as one JSON Lines line,
// without its newline. With `max_bytes` > 0 the line and its newline take at
// most `max_bytes` bytes (for max_bytes >= min_max_event_bytes): frames are
// dropped, then strings cut, in the documented order, and the event says so.
std::string stack_event_line(const StallReport& r, std::size_t max_bytes);

}  // namespace sw::report
