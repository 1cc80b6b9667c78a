// The report for people: a header line, the thread's kernel state, and
// numbered frames with the first application frame marked.
#pragma once

#include <ostream>

#include "report/report.hpp"

namespace sw::report {

void write_text(std::ostream& out, const StallReport& r);

// One line for recovered / ended events.
void write_text_event(std::ostream& out, const Target& t, const detect::Event& e);

}  // namespace sw::report
