// Text helpers for strings that come from the target (names it wrote).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sw {

// `s` with every byte a terminal could take for a control escaped as \xNN
// (lower-case hex), so that a hostile name cannot move the cursor, ring the
// bell, set a window title or forge a line of output: the C0 controls, DEL,
// the backslash itself (so that an escape cannot be forged either), the
// UTF-8 encodings of the C1 controls U+0080..U+009F (U+009B is CSI, as
// ESC [ is), each of their bytes, and every byte that is not part of a
// well-formed UTF-8 sequence (a raw 0x9b is CSI to an 8-bit terminal).
// Well-formed UTF-8 text otherwise stays as it is ("naïve", CJK).
std::string printable(std::string_view s);

// `unix_ns` (ns since the epoch) as RFC 3339 local time with its UTC offset,
// millisecond precision: 2026-11-24T06:34:03.123+01:00.
std::string rfc3339(std::uint64_t unix_ns);

}  // namespace sw
