// A scratch directory that is removed whatever happens to the test, and a
// whole-file reader. Header-only.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace sw::test {

class TempDir {
public:
    // A new directory /tmp/<prefix>-XXXXXX.
    explicit TempDir(const std::string& prefix = "sw-test") {
        std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    // The path of `name` inside it.
    std::string file(const std::string& name) const { return (path / name).string(); }

    std::filesystem::path path;
};

// The whole content of a file ("" if it cannot be read).
inline std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace sw::test
