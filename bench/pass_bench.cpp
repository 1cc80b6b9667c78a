// One pass of the watch loop, in this process and without the wait between
// passes: TableFile::read (copy, parse, confirm) and Detector::observe, on a
// table this process writes itself, so that what each costs can be seen
// apart from the wakeups and the noise of a whole monitor
// (bench/monitor_cost.sh measures the whole monitor).
//
//   1,024 slots whose workers park and unpark (between two passes half of
//   them tick and flip their state, as bench/monitor_cost.sh's target does),
//   sealed (read through a mapping);
//   65,536 slots, every worker running and stalled, sealed and unsealed.
//
// Prints for each: `pass_read_us_<case>`, `pass_observe_us_<case>` (medians
// over the passes). Information: the goals are checked by monitor_cost.sh.
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "detect/detector.hpp"
#include "proc/table_file.hpp"
#include "support/table_image.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

struct Result {
    double read_us = 0, observe_us = 0;
};

Result run(const std::string& name, std::uint32_t slots, bool sealed, bool parking, int passes) {
    int fd = ::memfd_create("stallwatch", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) std::perror("memfd_create"), std::exit(1);
    sw::test::TableImage img(slots, "pass-bench");
    img.header.pid = ::getpid();
    for (std::uint32_t i = 0; i < slots; ++i)
        img.worker(i, fmt::format("worker-{}", i), ::gettid(), 0,
                   parking ? STALLWATCH_SLOT_PARKED : STALLWATCH_SLOT_RUNNING);
    auto bytes = img.bytes();
    if (::pwrite(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()))
        std::perror("pwrite"), std::exit(1);
    if (sealed && ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        std::perror("F_ADD_SEALS"), std::exit(1);
    auto* map = static_cast<unsigned char*>(::mmap(nullptr, bytes.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (map == MAP_FAILED) std::perror("mmap"), std::exit(1);
    auto* slot0 = reinterpret_cast<stallwatch_slot*>(map + bytes.size() - std::size_t{slots} * sizeof(stallwatch_slot));

    auto table = sw::proc::TableFile::adopt(sw::UniqueFd(::dup(fd)), ::getpid());
    sw::detect::Detector detector{sw::detect::Config{}};
    auto now = sw::detect::Clock::time_point{};
    const auto no_frozen = [](pid_t) { return false; };
    std::vector<double> reads, observes;
    for (int p = 0; p < passes; ++p) {
        if (parking) {  // half the workers ticked and unparked or parked again since the last pass
            for (std::uint32_t i = static_cast<std::uint32_t>(p % 2); i < slots; i += 2) {
                slot0[i].progress = slot0[i].progress + 1;
                slot0[i].state = (p / 2) % 2 ? STALLWATCH_SLOT_RUNNING : STALLWATCH_SLOT_PARKED;
            }
        }
        now += std::chrono::milliseconds(10);
        auto t0 = Clock::now();
        auto snap = table.read();
        auto t1 = Clock::now();
        if (!snap) std::fprintf(stderr, "pass_bench: %s\n", snap.error().message.c_str()), std::exit(1);
        auto events = detector.observe(*snap, now, no_frozen);
        auto t2 = Clock::now();
        if (p > 2) {  // the first passes set up the buffers and the tracks
            reads.push_back(us(t1 - t0));
            observes.push_back(us(t2 - t1));
        }
    }
    ::munmap(map, bytes.size());
    ::close(fd);
    Result r{median(reads), median(observes)};
    std::printf("%s: %u slots, %s, %s: read %.1f us, observe %.1f us (medians of %zu passes)\n", name.c_str(), slots,
                sealed ? "sealed (mapped)" : "unsealed (pread)", parking ? "parking workers" : "all stalled",
                r.read_us, r.observe_us, reads.size());
    return r;
}

}  // namespace

int main() {
    auto a = run("1024", 1024, true, true, 2000);
    auto b = run("65536", 65536, true, false, 60);
    auto c = run("65536_unsealed", 65536, false, false, 60);
    std::printf("pass_read_us_1024: %.1f\npass_observe_us_1024: %.1f\n", a.read_us, a.observe_us);
    std::printf("pass_read_us_65536: %.1f\npass_observe_us_65536: %.1f\n", b.read_us, b.observe_us);
    std::printf("pass_read_us_65536_unsealed: %.1f\npass_observe_us_65536_unsealed: %.1f\n", c.read_us,
                c.observe_us);
    return 0;
}
