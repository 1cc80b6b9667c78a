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
