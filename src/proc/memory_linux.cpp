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

    std::size_t read_ranges(std::span<const Range> ranges) override {
        // process_vm_readv takes at most IOV_MAX ranges; the window asks for 3.
        constexpr std::size_t most = 8;
        if (ranges.size() > most) return MemoryReader::read_ranges(ranges);
        iovec local[most], remote[most];
        std::size_t n = 0;
        for (const auto& r : ranges) {
            if (r.out.empty()) continue;
            local[n] = {r.out.data(), r.out.size()};
            remote[n] = {reinterpret_cast<void*>(r.addr.value()), r.out.size()};
            ++n;
        }
        if (n == 0) return 0;
        ssize_t got = ::process_vm_readv(pid_, local, n, remote, n, 0);
        return got > 0 ? static_cast<std::size_t>(got) : 0;
    }

private:
    pid_t pid_;
};

}  // namespace

std::unique_ptr<MemoryReader> open_memory(pid_t pid) { return std::make_unique<ProcessMemory>(pid); }

}  // namespace sw::proc
