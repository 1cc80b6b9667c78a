// Which code a frame belongs to: the application's own, or the plumbing
// under it (C library, C++ runtime, known runtimes and event loops).
#pragma once

#include <string>
#include <string_view>

#include "symbolize/symbolizer.hpp"

namespace sw::report {

enum class FrameClass { application, libc, cxx_runtime, runtime, unknown };

std::string_view to_string(FrameClass c);

// `executable` is the target's main executable path (frames in it are the
// application's unless their code was inlined from a system header).
FrameClass classify(const symbolize::Frame& f, const std::string& executable);

// The file name part of a path.
std::string_view basename_of(std::string_view path);

}  // namespace sw::report
