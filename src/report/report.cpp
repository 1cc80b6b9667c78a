#include "report/report.hpp"

#include <initializer_list>
#include <string_view>

namespace sw::report {

namespace {
bool under(std::string_view path, std::initializer_list<std::string_view> dirs) {
    for (auto d : dirs)
        if (path.substr(0, d.size()) == d) return true;
    return false;
}
}  // namespace

bool is_application_frame(const symbolize::Frame& f, const std::string& executable) {
    if (f.module.empty()) return false;
    // Code inlined from system headers (std::this_thread::sleep_for ...) is
    // the runtime's, even inside the application's binary.
    if (f.location && under(f.location->file, {"/usr/include/", "/usr/lib/gcc/", "/usr/lib/llvm"}))
        return false;
    if (!executable.empty() && f.module == executable) return true;
    std::string_view m(f.module);
    if (under(m, {"/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/libexec/"})) return false;
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
