// Facts about the machine and C library this monitor runs on (not about a
// target): one implementation per platform (host_linux.cpp today).
#pragma once

#include <string_view>

namespace sw::proc {

// The C library this monitor runs on exports a symbol `name` (looked up
// without loading anything: it is loaded already). False when unknown.
bool host_libc_exports(std::string_view name);

}  // namespace sw::proc
