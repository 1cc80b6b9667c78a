// Cost of one stallwatch_tick() on a real, registered worker, measured side by
// side with the cheapest thing a worker could do instead: `++counter` on a
// thread-owned uint64_t. Both loops have the same shape and the same compiler
// barrier, run the same number of iterations, alternate with each other, and
// the median of many rounds is reported. Ends with:
//   tick_ns: X
//   baseline_ns: Y
//   tick_ratio: X/Y
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

    const double x = median(tick_ns);
    const double y = median(base_ns);
    std::printf("tick_ns: %.3f\n", x);
    std::printf("baseline_ns: %.3f\n", y);
    std::printf("tick_ratio: %.2f\n", x / y);
    return 0;
}
