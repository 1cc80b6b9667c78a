// Where reports go: standard output (or error), or a file appended to.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <cerrno>
#include <cstring>

#include "cli/commands.hpp"

namespace sw::cli {

std::ostream* open_output(const std::string& path, std::ofstream& file, std::ostream& fallback,
                          std::ostream& err) {
    if (path.empty()) return &fallback;
    file.open(path, std::ios::app);
    if (!file) {
        fmt::print(err, "stallwatch: cannot open {} for appending: {}\n", path, std::strerror(errno));
        return nullptr;
    }
    return &file;
}

}  // namespace sw::cli
