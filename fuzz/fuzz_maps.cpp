// Fuzzes the /proc/<pid>/maps parser (src/proc/maps.hpp). The kernel writes
// the file, but the target chooses the paths in it: a file it maps may be
// named with spaces, parentheses, " (deleted)", or anything but a newline.
//
// Input: the text of a maps file.
#include <algorithm>
#include <string>

#include "fuzz_support.hpp"
#include "proc/maps.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const auto maps = sw::proc::parse_maps(text);

    // At most one mapping per line, and a path never spans lines.
    SW_FUZZ_CHECK(maps.size() <= static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
    for (const auto& m : maps) SW_FUZZ_CHECK(m.path.find('\n') == std::string::npos);

    // Lookups as the symbolizer does them. find_mapping expects the kernel's
    // order (ascending, disjoint); other text only gets the parse above.
    bool ordered = std::is_sorted(maps.begin(), maps.end(), [](const auto& x, const auto& y) {
        return x.start < y.start;
    });
    for (std::size_t i = 0; ordered && i < maps.size(); ++i)
        ordered = maps[i].start < maps[i].end && (i == 0 || maps[i - 1].end <= maps[i].start);
    if (!ordered) return 0;
    for (const auto& m : maps) {
        for (sw::RemoteAddr addr : {m.start, m.end - 1, m.end}) {
            const auto* hit = sw::proc::find_mapping(maps, addr);
            if (hit) SW_FUZZ_CHECK(hit->contains(addr));
        }
        SW_FUZZ_CHECK(sw::proc::find_mapping(maps, m.start) == &m);
    }
    return 0;
}
