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

std::string application_frame_label(const std::vector<symbolize::Frame>& frames, const std::string& executable) {
    for (const auto& f : frames) {
        if (!is_application_frame(f, executable)) continue;
        std::string name = f.function.empty() ? std::string("??") : f.function;
        if (f.location && !f.location->file.empty())
            return name + " (" + std::string(basename_of(f.location->file)) + ":" + std::to_string(f.location->line) + ")";
        return name;
    }
    return {};
}

std::string canonical_function(std::string_view name) {
    // One function can go by several names: a symbol version (read@GLIBC_2.2.5),
    // a compiler clone (foo.isra.0, foo.constprop.1, foo.cold), glibc's
    // internal aliases in its debug info (__GI___libc_read for read).
    if (auto at = name.find('@'); at != std::string_view::npos) name = name.substr(0, at);
    if (auto clone = name.find(" [clone "); clone != std::string_view::npos) name = name.substr(0, clone);
    for (std::string_view suffix : {".isra.", ".constprop.", ".part.", ".cold", ".lto_priv.", ".localalias"})
        if (auto dot = name.find(suffix); dot != std::string_view::npos && dot > 0) name = name.substr(0, dot);
    if (name.substr(0, 5) == "__GI_") name.remove_prefix(5);
    if (name.substr(0, 2) != "_Z")
        while (!name.empty() && name.front() == '_') name.remove_prefix(1);
    if (name.substr(0, 5) == "libc_") name.remove_prefix(5);
    return std::string(name);
}

std::string stack_fingerprint(const std::vector<symbolize::Frame>& frames, const std::string& executable) {
    // FNV-1a over module file name and canonical function of the frames that
    // identify the stall: the application's own frames (or, when there are
    // none, every named frame). Addresses, paths and the C library's
    // internals stay out, so ASLR, install prefixes, other glibc versions
    // and whether debug info is installed leave it unchanged.
    bool any_app = false;
    for (const auto& f : frames) any_app = any_app || is_application_frame(f, executable);
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
        if (any_app ? !is_application_frame(f, executable) : f.function.empty()) continue;
        mix(basename_of(f.module));
        mix(f.function.empty() ? std::string("??") : canonical_function(f.function));
    }
    char out[17];
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i, h >>= 4) out[i] = hex[h & 0xf];
    out[16] = '\0';
    return out;
}

}  // namespace sw::report
