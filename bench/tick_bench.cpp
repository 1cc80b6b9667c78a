// Cost of one stallwatch_tick() on a real, registered worker, measured side by
// side with the cheapest thing a worker could do instead: `++counter` on a
// thread-owned uint64_t. Both loops have the same shape and the same compiler
// barrier, run the same number of iterations, alternate with each other, and
// the median of many rounds is reported. These micro-figures are shown for
// information: two loops that differ by one store measure code placement as
// much as the store (identical code placed differently differs 7x on some
// CPUs). The gate is a workload: a worker loop doing about 50 ns of real
// work per unit (hashing a 40-byte buffer), with a tick per unit and
// without, in alternating rounds, for nine buffer sizes (32 to 64 bytes);
// the tick's cost is what the throughput loses, the median of the sizes.
// Ends with:
//   tick_ns: X
//   baseline_ns: Y
//   tick_ratio: X/Y
//   work_unit_ns: W             (one unit, without tick; median of the sizes)
//   work_unit_tick_ns: T        (the same with a tick per unit)
//   tick_overhead_pct: P        (median of the sizes' overheads; goal: at
//                                most 1.0; PASS/MISS said)
// Exits 1 (without figures) when the worker is not a slot of the shared table,
// since timing the private no-op slot would prove nothing.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "stallwatch/stallwatch.h"

namespace {

// The baseline's counter: one cache line of its own, like a slot.
struct alignas(64) OwnedCounter {
    std::uint64_t value = 0;
};

// Times `iterations` calls of `step`, in ns per call. noinline and shared by
// both measurements, so both loops are compiled from the same template body.
// ClobberMemory after each step makes the compiler assume memory was read and
// written: the counter is loaded and stored once per iteration in both loops,
// and neither can be hoisted, merged into one add, or vectorized.
template <class Step>
[[gnu::noinline]] double ns_per_step(Step step, std::uint64_t iterations)
{
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < iterations; ++i) {
        step();
        benchmark::ClobberMemory();
    }
    const auto stop = std::chrono::steady_clock::now();
    const std::chrono::duration<double, std::nano> elapsed = stop - start;
    return elapsed.count() / static_cast<double>(iterations);
}

// One unit of a worker's real work: hash a `Bytes`-byte buffer (FNV-1a:
// one dependent multiply a byte, 30 to 80 ns for 32 to 64 bytes), and fold
// the result back into the buffer so that the next unit depends on it (no
// unit can be skipped or overlapped away). Several sizes are measured:
// where the loops land in memory changes one size's figure by a few
// percent either way (the code, not the tick), so the gate is the median.
//
// The unit is a function of its own (noinline, 64-byte aligned), called by
// both loops: the hashing is then the same machine code at the same address
// with a tick and without, and the two loops differ only by the tick and the
// few instructions around the call. A worker's unit of work is a call too.
template <unsigned Bytes>
struct Work {
    alignas(64) unsigned char buf[Bytes];
    [[gnu::noinline, gnu::aligned(64)]] std::uint64_t unit() {
        std::uint64_t h = 0xcbf29ce484222325ull;
        for (unsigned char c : buf) {
            h ^= c;
            h *= 0x100000001b3ull;
        }
        buf[h % Bytes] = static_cast<unsigned char>(h >> 56);
        return h;
    }
};

// Times `units` units of work, each followed by `after` (a tick or nothing),
// in ns per unit. noinline and shared by both loops, as ns_per_step.
template <class W, class After>
[[gnu::noinline]] double ns_per_unit(W& work, After after, std::uint64_t units)
{
    std::uint64_t sink = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < units; ++i) {
        sink += work.unit();
        after();
    }
    const auto stop = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(sink);
    const std::chrono::duration<double, std::nano> elapsed = stop - start;
    return elapsed.count() / static_cast<double>(units);
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

} // namespace

int main()
{
    if (int rc = stallwatch_init("sw_bench_tick", 0); rc != 0) {
        std::fprintf(stderr, "sw_bench_tick: stallwatch_init failed: %s%s\n", std::strerror(-rc),
                     rc == -ECANCELED ? " (STALLWATCH_DISABLE is set)" : "");
        return 1;
    }
    stallwatch_worker *w = stallwatch_register("bench");
    if (!stallwatch_worker_is_live(w)) {
        std::fprintf(stderr, "sw_bench_tick: the worker is not a live table slot "
                             "(is STALLWATCH_DISABLE set?); refusing to time a no-op\n");
        return 1;
    }

    OwnedCounter owned;
    OwnedCounter *counter = &owned;
    // Let the baseline's address escape, so ClobberMemory covers it as it
    // covers the slot (otherwise the counter could live in a register).
    benchmark::DoNotOptimize(counter);

    const auto tick = [w] { stallwatch_tick(w); };
    const auto baseline = [counter] { ++counter->value; };

    constexpr std::uint64_t kIterations = 20'000'000; // ~tens of ms per loop
    constexpr int kRounds = 15;

    // Warm up caches, page tables and the CPU clock before the first round.
    ns_per_step(tick, kIterations);
    ns_per_step(baseline, kIterations);

    std::vector<double> tick_ns, base_ns;
    for (int round = 0; round < kRounds; ++round) {
        // Alternate which loop goes first, so a drift in clock speed or a
        // burst of noise does not always land on the same side.
        if (round % 2 == 0) {
            tick_ns.push_back(ns_per_step(tick, kIterations));
            base_ns.push_back(ns_per_step(baseline, kIterations));
        } else {
            base_ns.push_back(ns_per_step(baseline, kIterations));
            tick_ns.push_back(ns_per_step(tick, kIterations));
        }
    }

    // Both counters must have moved by every iteration, warm-up included.
    const std::uint64_t expected = kIterations * (kRounds + 1);
    if (w->progress < expected || owned.value != expected) {
        std::fprintf(stderr, "sw_bench_tick: counters did not advance as expected\n");
        return 1;
    }

    std::printf("rounds: %d x %llu iterations each, interleaved\n", kRounds,
                static_cast<unsigned long long>(kIterations));
    std::printf("tick_ns per round:");
    for (double v : tick_ns) std::printf(" %.3f", v);
    std::printf("\nbaseline_ns per round:");
    for (double v : base_ns) std::printf(" %.3f", v);
    std::printf("\n");

    // The workload: the same units, with a tick after each and without,
    // alternating; each round's overhead from the pair; per buffer size the
    // median of its rounds, and the gate the median of the sizes.
    const std::uint64_t before_work = w->progress;
    std::uint64_t work_ticks = 0;
    std::vector<double> size_overhead, size_plain, size_tick;
    auto workload = [&](auto work, unsigned bytes) {
        constexpr std::uint64_t kUnits = 1'000'000;  // ~50 ms per loop
        constexpr int kWorkRounds = 9;
        for (unsigned i = 0; i < bytes; ++i) work.buf[i] = static_cast<unsigned char>(i * 7 + 1);
        const auto nothing = [] {};
        ns_per_unit(work, tick, kUnits);  // warm-up
        ns_per_unit(work, nothing, kUnits);
        work_ticks += kUnits;
        std::vector<double> plain_unit, tick_unit, overhead;
        for (int round = 0; round < kWorkRounds; ++round) {
            double with = 0, without = 0;
            if (round % 2 == 0) {
                with = ns_per_unit(work, tick, kUnits);
                without = ns_per_unit(work, nothing, kUnits);
            } else {
                without = ns_per_unit(work, nothing, kUnits);
                with = ns_per_unit(work, tick, kUnits);
            }
            work_ticks += kUnits;
            tick_unit.push_back(with);
            plain_unit.push_back(without);
            overhead.push_back(100.0 * (with - without) / without);
        }
        std::printf("workload, %u-byte units: %.1f ns a unit, %.1f ns with a tick: overhead %.2f%%\n", bytes,
                    median(plain_unit), median(tick_unit), median(overhead));
        size_overhead.push_back(median(overhead));
        size_plain.push_back(median(plain_unit));
        size_tick.push_back(median(tick_unit));
    };
    workload(Work<32>{}, 32);
    workload(Work<36>{}, 36);
    workload(Work<40>{}, 40);
    workload(Work<44>{}, 44);
    workload(Work<48>{}, 48);
    workload(Work<52>{}, 52);
    workload(Work<56>{}, 56);
    workload(Work<60>{}, 60);
    workload(Work<64>{}, 64);
    if (w->progress - before_work != work_ticks) {
        std::fprintf(stderr, "sw_bench_tick: the workload's ticks did not all land\n");
        return 1;
    }

    const double x = median(tick_ns);
    const double y = median(base_ns);
    const double pct = median(size_overhead);
    std::printf("tick_overhead: %.2f%% (median of the sizes) of a %.0f ns unit of work (goal <= 1.0%%): %s\n", pct,
                median(size_plain), pct <= 1.0 ? "PASS" : "MISS");
    std::printf("tick_ns: %.3f\n", x);
    std::printf("baseline_ns: %.3f\n", y);
    std::printf("tick_ratio: %.2f\n", x / y);
    std::printf("work_unit_ns: %.2f\n", median(size_plain));
    std::printf("work_unit_tick_ns: %.2f\n", median(size_tick));
    std::printf("tick_overhead_pct: %.2f\n", pct);
    return 0;
}
