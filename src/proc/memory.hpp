// Reading the target's memory: the one way any stage reads it. One
// implementation per platform (memory_linux.cpp: process_vm_readv), and
// in-memory ones in the tests.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <type_traits>

#include "common/remote_addr.hpp"

namespace sw::proc {

class MemoryReader {
public:
    virtual ~MemoryReader() = default;

    // Copies the target's bytes [addr, addr + out.size()) into `out`.
    // Returns how many were copied from the start of the range: fewer when
    // the range runs into memory that is not mapped or not readable, 0 (with
    // errno set) when none could be. Never allocates: it is called inside a
    // thread's stop window.
    virtual std::size_t read(RemoteAddr addr, std::span<std::byte> out) = 0;

    // One range of a read_ranges() call.
    struct Range {
        RemoteAddr addr;
        std::span<std::byte> out;
    };

    // Reads the ranges in order, in one go where the platform can (one
    // system call inside the stop window instead of several). Returns how
    // many bytes were copied in all: it stops at the first range that could
    // not be read whole, so the ranges before it are complete and that one
    // holds what was copied of it. Never allocates.
    virtual std::size_t read_ranges(std::span<const Range> ranges) {
        std::size_t total = 0;
        for (const auto& r : ranges) {
            std::size_t got = read(r.addr, r.out);
            total += got;
            if (got < r.out.size()) break;
        }
        return total;
    }

    // The whole range, or false.
    bool read_exact(RemoteAddr addr, std::span<std::byte> out) { return read(addr, out) == out.size(); }

    // One value of a trivially copyable type, copied bytewise (never a cast
    // into the buffer: the bytes are the target's).
    template <class T>
    bool read_value(RemoteAddr addr, T& out) {
        static_assert(std::is_trivially_copyable_v<T>);
        std::byte buf[sizeof(T)];
        if (!read_exact(addr, buf)) return false;
        std::memcpy(&out, buf, sizeof(T));
        return true;
    }
};

// The memory of process `pid` (Linux: process_vm_readv, which needs the same
// rights as ptrace and does not stop the process).
std::unique_ptr<MemoryReader> open_memory(pid_t pid);

}  // namespace sw::proc
