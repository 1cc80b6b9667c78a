// Target memory held in this process, for unit tests of the code that reads
// a target through proc::MemoryReader: regions at chosen remote addresses;
// a read stops where the regions stop, as process_vm_readv does.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "proc/memory.hpp"

namespace sw::test {

class FakeMemory final : public proc::MemoryReader {
public:
    void add(RemoteAddr at, std::vector<std::byte> bytes) { regions_[at] = std::move(bytes); }

    std::size_t read(RemoteAddr addr, std::span<std::byte> out) override {
        std::size_t done = 0;
        while (done < out.size()) {
            RemoteAddr at = addr + done;
            auto it = regions_.upper_bound(at);
            if (it == regions_.begin()) break;
            --it;
            const auto& bytes = it->second;
            std::uint64_t off = at - it->first;
            if (off >= bytes.size()) break;
            std::size_t n = std::min<std::size_t>(bytes.size() - off, out.size() - done);
            std::memcpy(out.data() + done, bytes.data() + off, n);
            done += n;
        }
        if (done == 0 && !out.empty()) errno = EFAULT;
        ++reads;
        return done;
    }

    std::size_t reads = 0;

private:
    std::map<RemoteAddr, std::vector<std::byte>> regions_;
};

}  // namespace sw::test
