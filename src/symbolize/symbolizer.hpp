// Symbolization with elfutils libdwfl: function names (demangled), source
// file:line:column, inlined frames, module and offset. One per target
// process; modules are cached and refreshed when the process's mappings of
// executable files change (dlopen, dlclose).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proc/maps.hpp"
#include "proc/target.hpp"
#include "unwind/unwinder.hpp"

namespace sw::symbolize {

struct SourceLocation {
    std::string file;  // as recorded in the debug info (usually absolute)
    int line = 0;
    int column = 0;    // 0 when unknown
};

struct Frame {
    std::uint64_t pc = 0;
    std::string function;        // demangled; empty when nothing names the address
    std::string module;          // path of the ELF file, or "" when unmapped
    std::uint64_t module_offset = 0;  // pc - the module's load address
    std::optional<SourceLocation> location;
    bool inlined = false;        // inlined into the frame that follows it
    bool activation = false;     // see RawFrame
    // The module is an executable linked without a dynamic loader (gcc
    // -static or -static-pie): the C library's code is inside it.
    bool static_executable = false;
};

// How much to find out about a frame.
enum class Detail {
    full,  // names from the debug info, inlined calls, file:line
    // The module, its offset and the ELF symbol table's name: the symbol
    // table of a separate debug file is read, its DWARF never (decompressing
    // a C library's debug info costs tens of milliseconds).
    name,
};

struct Options {
    // Look up missing debug info with debuginfod (network). Off by default:
    // only build-id and .gnu_debuglink files on this machine are used.
    bool debuginfod = false;
};

class Symbolizer {
public:
    // Reads `target`'s modules through it: the files it has mapped (as it
    // sees them, in its container if it runs in one) and the build-ids in
    // its memory; a file whose build-id differs gives no names ("??"),
    // never wrong ones. `target` outlives the symbolizer.
    Symbolizer(proc::Target& target, Options opt);
    ~Symbolizer();
    Symbolizer(const Symbolizer&) = delete;
    Symbolizer& operator=(const Symbolizer&) = delete;

    // Re-reads the module list if the executable mappings in `maps` differ
    // from the last call. Returns true when they changed.
    bool refresh(const std::vector<proc::Mapping>& maps);

    // One or more frames per raw frame (inlined calls first, innermost
    // first). `detail[i]` says how much to find out for raw frame i; every
    // frame in full when it is empty. A frame looked up with Detail::name is
    // one frame, without location.
    std::vector<Frame> symbolize(const unwind::RawStack& raw, std::span<const Detail> detail = {});

    // The module path of each raw frame ("" when unmapped), as symbolize
    // names it, without opening any file.
    std::vector<std::string> modules(const unwind::RawStack& raw);

    // What was learnt since the last call that the user should hear once:
    // a module whose file could not be opened or is not the one the target
    // runs (so its frames show no names).
    std::vector<std::string> take_notices();

    struct Impl;

private:
    void report_if_needed();  // the modules as the process maps them now, the first time

    std::unique_ptr<Impl> impl_;
};

// `name` demangled if it is a mangled C++ name, else unchanged.
std::string demangle(const char* name);

}  // namespace sw::symbolize
