#include "report/report.hpp"

#include <string_view>

namespace sw::report {

bool is_application_frame(const symbolize::Frame& f, const std::string& executable) {
    if (f.module.empty()) return false;
    if (!executable.empty() && f.module == executable) return true;
    std::string_view m(f.module);
    for (std::string_view sys : {"/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/libexec/"})
        if (m.substr(0, sys.size()) == sys) return false;
    auto slash = m.rfind('/');
    std::string_view base = slash == std::string_view::npos ? m : m.substr(slash + 1);
    if (base.substr(0, 14) == "libstallwatch.") return false;
    return true;
}

std::optional<std::size_t> first_application_frame(const StallReport& r) {
    for (std::size_t i = 0; i < r.frames.size(); ++i)
        if (is_application_frame(r.frames[i], r.target.executable)) return i;
    return std::nullopt;
}

}  // namespace sw::report
