// Linux: target memory through process_vm_readv.
#include <sys/uio.h>

#include "proc/memory.hpp"

namespace sw::proc {
namespace {

class ProcessMemory final : public MemoryReader {
public:
    explicit ProcessMemory(pid_t pid) : pid_(pid) {}

    std::size_t read(RemoteAddr addr, std::span<std::byte> out) override {
        if (out.empty()) return 0;
        iovec local{out.data(), out.size()};
        iovec remote{reinterpret_cast<void*>(addr.value()), out.size()};
        ssize_t n = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
        return n > 0 ? static_cast<std::size_t>(n) : 0;
    }

private:
    pid_t pid_;
};

}  // namespace

std::unique_ptr<MemoryReader> open_memory(pid_t pid) { return std::make_unique<ProcessMemory>(pid); }

}  // namespace sw::proc
