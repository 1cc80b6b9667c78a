#include "report/report.hpp"

#include "report/classify.hpp"

namespace sw::report {

bool is_application_frame(const symbolize::Frame& f, const std::string& executable) {
    return classify(f, executable) == FrameClass::application;
}

std::optional<std::size_t> first_application_frame(const StallReport& r) {
    for (std::size_t i = 0; i < r.frames.size(); ++i)
        if (is_application_frame(r.frames[i], r.target.executable)) return i;
    return std::nullopt;
}

std::string_view canonical_function(std::string_view name) {
    // glibc's debug info names internal aliases (__GI___clock_nanosleep)
    // where its symbol table says clock_nanosleep: the same function, so the
    // same fingerprint with or without libc6-dbg installed.
    if (name.substr(0, 5) == "__GI_") name.remove_prefix(5);
    while (!name.empty() && name.front() == '_' && name.substr(0, 2) != "_Z") name.remove_prefix(1);
    return name;
}

std::string stack_fingerprint(const std::vector<symbolize::Frame>& frames) {
    // FNV-1a over module file name and function of every frame: no address,
    // no path, so ASLR, install prefixes and rebuilds with the same code
    // leave it unchanged.
    std::uint64_t h = 0xcbf29ce484222325ull;
    auto mix = [&](std::string_view s) {
        for (unsigned char c : s) {
            h ^= c;
            h *= 0x100000001b3ull;
        }
        h ^= 0xff;  // separator that no name contains
        h *= 0x100000001b3ull;
    };
    for (const auto& f : frames) {
        mix(basename_of(f.module));
        mix(f.function.empty() ? std::string_view("??") : canonical_function(f.function));
    }
    char out[17];
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i, h >>= 4) out[i] = hex[h & 0xf];
    out[16] = '\0';
    return out;
}

}  // namespace sw::report
