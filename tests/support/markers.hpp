// Line numbers of the `/* LINE:name */` marker comments in the fixture
// sources, so that no test hard-codes a line number.
#pragma once

#include <fstream>
#include <stdexcept>
#include <string>

#ifndef STALLWATCH_FIXTURE_SOURCE_DIR
#error "STALLWATCH_FIXTURE_SOURCE_DIR must be defined by the build (the fixtures/ source folder)"
#endif

namespace sw::test {

// The 1-based line of fixtures/<file> that carries `/* LINE:<name> */`.
// Throws if the marker is missing or appears more than once.
inline int marker_line(const std::string& name, const std::string& file = "stall.c") {
    const std::string path = std::string(STALLWATCH_FIXTURE_SOURCE_DIR) + "/" + file;
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    const std::string tag = "/* LINE:" + name + " */";
    int found = 0;
    int number = 0;
    for (std::string line; std::getline(in, line);) {
        ++number;
        if (line.find(tag) == std::string::npos) continue;
        if (found) throw std::runtime_error("marker LINE:" + name + " appears twice in " + path);
        found = number;
    }
    if (!found) throw std::runtime_error("no marker LINE:" + name + " in " + path);
    return found;
}

}  // namespace sw::test
