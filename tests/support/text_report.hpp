// Reads back the text reports `stallwatch attach` prints, so that tests
// assert on frames (function, file:line, order) rather than on raw text.
// Header-only test helpers.
#pragma once

#include <cctype>
#include <cstddef>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace sw::test {

struct TextFrame {
    int number = -1;
    int last = -1;  // number of the last frame on this line (> number when folded)
    bool first_app = false;  // marked '>'
    bool inlined = false;
    // A run of runtime frames printed as one line ("#3-5 a < b < c [3 runtime
    // frames: libc.so.6]"): `function` holds the names as printed, `line` is 0.
    bool folded = false;
    std::string function;
    std::string file;  // as printed (may be a path)
    int line = 0;      // 0: no location printed
    std::string module;  // "name+0xoffset" inside the brackets
    std::string text;    // the whole line

    std::string basename() const {
        auto slash = file.rfind('/');
        return slash == std::string::npos ? file : file.substr(slash + 1);
    }
};

struct TextReport {
    std::string header;  // "<time> STALL #1: worker "victim" (tid ...) ..."
    std::string thread;  // "  thread: state S ..."
    std::vector<TextFrame> frames;
    std::string text;

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    // Index of the first frame named `function` at or after `from`, or npos.
    std::size_t find(const std::string& function, std::size_t from = 0) const {
        for (std::size_t i = from; i < frames.size(); ++i)
            if (frames[i].function == function) return i;
        return npos;
    }
    std::size_t count(const std::string& function) const {
        std::size_t n = 0;
        for (const auto& f : frames) n += f.function == function;
        return n;
    }
};

namespace detail {

inline bool all_digits(const std::string& s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

// "  >#12  0x000055d0... name at file:12:3 [module+0x12]" or
// "   #0                      name (inlined) at file:3 [module+0x12]".
inline std::optional<TextFrame> parse_frame(const std::string& line) {
    if (line.size() < 5 || line.compare(0, 2, "  ") != 0 || line[3] != '#') return std::nullopt;
    if (line[2] != ' ' && line[2] != '>') return std::nullopt;
    TextFrame f;
    f.text = line;
    f.first_app = line[2] == '>';
    std::size_t i = 4, j = i;
    while (j < line.size() && std::isdigit(static_cast<unsigned char>(line[j]))) ++j;
    if (j == i) return std::nullopt;
    f.number = std::stoi(line.substr(i, j - i));
    if (j < line.size() && line[j] == '-') {  // a folded run: "#3-5 names [n runtime frames: ...]"
        auto open = line.rfind(" [");
        auto space = line.find(' ', j);
        if (open == std::string::npos || space == std::string::npos || space > open) return std::nullopt;
        f.folded = true;
        std::size_t k = j + 1;
        while (k < line.size() && std::isdigit(static_cast<unsigned char>(line[k]))) ++k;
        if (k == j + 1) return std::nullopt;
        f.last = std::stoi(line.substr(j + 1, k - j - 1));
        f.function = line.substr(space + 1, open - space - 1);
        f.module = line.substr(open + 2, line.size() - open - 3);
        return f;
    }
    f.last = f.number;
    while (j < line.size() && line[j] == ' ') ++j;
    if (line.compare(j, 2, "0x") == 0) {
        while (j < line.size() && line[j] != ' ') ++j;
        while (j < line.size() && line[j] == ' ') ++j;
    }
    auto open = line.rfind(" [");
    if (open == std::string::npos || open < j || line.back() != ']') return std::nullopt;
    f.module = line.substr(open + 2, line.size() - open - 3);
    std::string rest = line.substr(j, open - j);
    if (auto at = rest.rfind(" at "); at != std::string::npos) {
        std::string where = rest.substr(at + 4);
        rest.erase(at);
        // file:line or file:line:column
        auto c1 = where.rfind(':');
        if (c1 != std::string::npos && all_digits(where.substr(c1 + 1))) {
            auto c2 = where.rfind(':', c1 - 1);
            if (c2 != std::string::npos && c2 < c1 && all_digits(where.substr(c2 + 1, c1 - c2 - 1))) {
                f.file = where.substr(0, c2);
                f.line = std::stoi(where.substr(c2 + 1, c1 - c2 - 1));
            } else {
                f.file = where.substr(0, c1);
                f.line = std::stoi(where.substr(c1 + 1));
            }
        }
    }
    const std::string inl = " (inlined)";
    if (rest.size() >= inl.size() && rest.compare(rest.size() - inl.size(), inl.size(), inl) == 0) {
        f.inlined = true;
        rest.erase(rest.size() - inl.size());
    }
    f.function = rest;
    return f;
}

}  // namespace detail

// Every stall report (STALL #n, and its "still going" updates) in `text`;
// RECOVERED / ENDED lines are not reports and are skipped.
inline std::vector<TextReport> parse_reports(const std::string& text) {
    std::vector<TextReport> out;
    std::istringstream in(text);
    TextReport* cur = nullptr;
    for (std::string line; std::getline(in, line);) {
        bool indented = line.rfind("  ", 0) == 0;
        if (!indented) {
            cur = nullptr;
            if (line.find(" STALL #") != std::string::npos) {
                out.emplace_back();
                cur = &out.back();
                cur->header = line;
                cur->text = line + "\n";
            }
            continue;
        }
        if (!cur) continue;
        cur->text += line + "\n";
        if (line.rfind("  thread: ", 0) == 0) cur->thread = line;
        else if (auto f = detail::parse_frame(line)) cur->frames.push_back(*f);
    }
    return out;
}

// A duration as stallwatch prints it ("350us", "206ms", "1.23s", "12s"),
// in milliseconds; nullopt if `text` is not one.
inline std::optional<double> printed_ms(const std::string& text) {
    std::size_t i = 0;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (i == 0) return std::nullopt;
    double value = std::stod(text.substr(0, i));
    std::string unit = text.substr(i);
    if (unit == "ns") return value / 1e6;
    if (unit == "us") return value / 1e3;
    if (unit == "ms") return value;
    if (unit == "s") return value * 1e3;
    return std::nullopt;
}

// How many times `what` occurs in `text` (not overlapping).
inline std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + what.size())) ++n;
    return n;
}

// A report (attach's STALL, or one of dump's) of worker `name` whose stack
// goes through `function`.
inline bool has_stack(const std::string& out, const std::string& name, const std::string& function) {
    std::istringstream in(out);
    bool ours = false;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("  ", 0) != 0) {
            ours = line.find("worker \"" + name + "\" (tid ") != std::string::npos;
            continue;
        }
        if (ours && line.rfind("  no stack:", 0) != 0 && line.find(" " + function + " ") != std::string::npos)
            return true;
    }
    return false;
}

}  // namespace sw::test
