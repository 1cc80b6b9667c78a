// Watching a program under libstallwatch-preload.so from a test: `stallwatch
// run --preload -f json -o FILE -- PROGRAM…` (or a program started with
// LD_PRELOAD and `attach`), the JSON events read back from FILE.
#pragma once

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/child.hpp"
#include "support/temp_dir.hpp"

namespace sw::test {

inline std::string preload_library() { return SW_PRELOAD_LIBRARY; }

// The JSON events written so far to `path` (lines that do not parse are
// skipped: the last one may be half written).
inline std::vector<nlohmann::json> read_events(const std::string& path) {
    std::vector<nlohmann::json> out;
    std::istringstream in(slurp(path));
    for (std::string line; std::getline(in, line);) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded()) out.push_back(std::move(j));
    }
    return out;
}

inline std::vector<nlohmann::json> events_of(const std::vector<nlohmann::json>& all, const std::string& kind) {
    std::vector<nlohmann::json> out;
    for (const auto& e : all)
        if (e.value("event", "") == kind) out.push_back(e);
    return out;
}

// Waits until `path` holds an event of `kind` (at most `timeout`).
inline bool wait_for_event(const std::string& path, const std::string& kind,
                           std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (!events_of(read_events(path), kind).empty()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

// Whether any frame of stack event `e` is `function`, and if `line` > 0,
// at that line.
inline bool has_frame(const nlohmann::json& e, const std::string& function, int line = 0) {
    for (const auto& f : e.value("frames", nlohmann::json::array())) {
        const auto& name = f["code.function.name"];
        if (!name.is_string() || name != function) continue;
        if (line <= 0 || f["code.line.number"] == line) return true;
    }
    return false;
}

// All function names of stack event `e`, for messages.
inline std::string frame_names(const nlohmann::json& e) {
    std::string out;
    for (const auto& f : e.value("frames", nlohmann::json::array())) {
        const auto& name = f["code.function.name"];
        out += (name.is_string() ? name.get<std::string>() : std::string("??")) + " < ";
    }
    return out;
}

}  // namespace sw::test
