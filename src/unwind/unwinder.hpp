// Remote DWARF unwinding of a captured thread, after it has been let go:
// stack reads come from the copy taken in the stop window, other memory
// (unwind tables, code) from the live process, which does not change it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proc/capture.hpp"
#include "proc/memory.hpp"
#include "proc/target.hpp"

namespace sw::unwind {

struct RawFrame {
    RemoteAddr pc;
    // True when pc is the exact instruction (the innermost frame, or the
    // frame a signal interrupted); false for return addresses, which point
    // just past the call and are looked up at pc - 1.
    bool activation = false;
};

struct RawStack {
    std::vector<RawFrame> frames;
    // Why unwinding stopped before the outermost frame, if it did ("" when
    // it reached the end): the copy's end, max frames, or missing CFI.
    std::string stopped_early;
};

// One per target process: keeps libunwind's address space and caches.
class Unwinder {
public:
    // Reads the live process through `target` (its memory, mappings and
    // files), which outlives the unwinder.
    explicit Unwinder(proc::Target& target);
    ~Unwinder();
    Unwinder(const Unwinder&) = delete;
    Unwinder& operator=(const Unwinder&) = delete;

    RawStack unwind(const proc::ThreadCapture& cap, std::size_t max_frames);

    // Drops cached unwind information (call when libraries were unloaded).
    void flush();

    struct Impl;  // defined by the backend

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace sw::unwind
