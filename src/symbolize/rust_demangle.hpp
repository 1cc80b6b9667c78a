// Rust symbol names, the way Rust users read them: legacy mangling
// (_ZN…17h<hash>E) without the hash and with rustc's escapes undone, and v0
// mangling (_R…) for paths, impls and generic arguments. Closures read
// `{{closure}}` in both. Pure: unit-tested on names from real binaries.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sw::symbolize {

// The demangled name, or nullopt when `mangled` is not a Rust symbol (a C++
// name, a plain C one) or uses a part of v0 that is not handled.
std::optional<std::string> demangle_rust(std::string_view mangled);

}  // namespace sw::symbolize
