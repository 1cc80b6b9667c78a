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
//
// A statically linked executable (Frame::static_executable) also holds the
// C library, so there a function is libc's when its name begins with '_'
// (reserved for the implementation in C; "_Z" mangled names excepted), is
// glibc's thread entry (start_thread, clone, clone3), or, for a frame
// without a source line, is exported by the glibc this monitor runs on.
// Limits: an application's own '_' names, or libc names it defines in code
// built without debug info, are counted as libc; musl's internal names that
// do not begin with '_' (its thread entry "start") stay the application's.
FrameClass classify(const symbolize::Frame& f, const std::string& executable);

// True when classify() says "not the application's" of every frame in
// `module`, whatever its function or source location: frames outside any
// module, the C library, the C++ runtime, known runtimes and other system
// libraries (but never the executable itself). Such frames need no debug
// info to be folded in the text output (text_detail in report.hpp).
bool runtime_module(std::string_view module, const std::string& executable);

// The file name part of a path.
std::string_view basename_of(std::string_view path);

}  // namespace sw::report
