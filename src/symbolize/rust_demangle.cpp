#include "symbolize/rust_demangle.hpp"

#include <cctype>
#include <optional>
#include <utility>
#include <vector>

namespace sw::symbolize {
namespace {

// Symbol names come from the watched program: untrusted. Every length is
// checked against what is left before it is used, and a v0 name may follow
// at most kMaxBackrefs back-references in all (nested ones could otherwise
// expand a short name exponentially).
constexpr std::size_t kMaxBackrefs = 256;
constexpr std::size_t kMaxOutput = 4096;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }

// ---- legacy: _ZN <len ident>... 17h<16 hex> E ----------------------------------

// The escapes rustc uses in legacy identifiers.
std::string unescape_legacy(std::string_view s) {
    static constexpr std::pair<std::string_view, std::string_view> escapes[] = {
        {"$SP$", "@"}, {"$BP$", "*"}, {"$RF$", "&"}, {"$LT$", "<"}, {"$GT$", ">"}, {"$LP$", "("},
        {"$RP$", ")"}, {"$C$", ","},  {"$u7e$", "~"}, {"$u20$", " "}, {"$u27$", "'"}, {"$u3d$", "="},
        {"$u5b$", "["}, {"$u5d$", "]"}, {"$u7b$", "{"}, {"$u7d$", "}"}, {"$u3b$", ";"}, {"$u2b$", "+"},
        {"$u21$", "!"}, {"$u22$", "\""}};
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        if (s[i] == '$') {
            bool done = false;
            for (auto [from, to] : escapes)
                if (s.substr(i, from.size()) == from) {
                    out += to;
                    i += from.size();
                    done = true;
                    break;
                }
            if (done) continue;
        }
        if (s.substr(i, 2) == "..") {
            out += "::";
            i += 2;
            continue;
        }
        out += s[i++];
    }
    return out;
}

std::optional<std::string> legacy(std::string_view m) {
    if (m.substr(0, 3) != "_ZN") return std::nullopt;
    std::vector<std::string_view> parts;
    std::size_t i = 3;
    while (i < m.size() && m[i] != 'E') {
        std::size_t len = 0, start = i;
        while (i < m.size() && is_digit(m[i])) {
            len = len * 10 + static_cast<std::size_t>(m[i++] - '0');
            if (len > m.size()) return std::nullopt;  // longer than the name: never valid
        }
        if (i == start || len == 0 || len > m.size() - i) return std::nullopt;
        parts.push_back(m.substr(i, len));
        i += len;
    }
    if (i >= m.size() || parts.size() < 2) return std::nullopt;
    // The last part is the hash: "h" and 16 hex digits. Without it, this is
    // a C++ name.
    auto hash = parts.back();
    if (hash.size() != 17 || hash[0] != 'h') return std::nullopt;
    for (char c : hash.substr(1))
        if (!is_hex(c)) return std::nullopt;
    parts.pop_back();
    std::string out;
    for (auto p : parts) {
        if (!out.empty()) out += "::";
        // A leading "_$" keeps an identifier from starting with '$'.
        if (p.substr(0, 2) == "_$") p.remove_prefix(1);
        out += unescape_legacy(p);
    }
    return out;
}

// ---- v0: _R ... ------------------------------------------------------------------

class V0 {
public:
    explicit V0(std::string_view s) : s_(s) {}

    std::optional<std::string> run() {
        if (is_digit(peek())) decimal();  // encoding version
        auto p = path();
        if (!p || !ok_ || p->size() > kMaxOutput) return std::nullopt;
        return p;
    }

private:
    char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
    char next() { return pos_ < s_.size() ? s_[pos_++] : (ok_ = false, '\0'); }
    bool eat(char c) {
        if (peek() != c) return false;
        ++pos_;
        return true;
    }

    std::size_t decimal() {
        std::size_t n = 0;
        if (!is_digit(peek())) ok_ = false;
        while (ok_ && is_digit(peek())) {
            n = n * 10 + static_cast<std::size_t>(next() - '0');
            if (n > s_.size()) ok_ = false;  // longer than the name: never valid
        }
        return ok_ ? n : 0;
    }

    // base-62-number: digits, then "_"; "_" alone is 0, else value + 1.
    std::size_t base62() {
        if (eat('_')) return 0;
        std::size_t n = 0;
        while (pos_ < s_.size() && s_[pos_] != '_') {
            char c = next();
            int d = is_digit(c)               ? c - '0'
                    : (c >= 'a' && c <= 'z') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'Z') ? c - 'A' + 36
                                             : -1;
            if (d < 0) {
                ok_ = false;
                return 0;
            }
            // May wrap for a hostile name: a disambiguator's value is not
            // used, and a back-reference's is checked against the position.
            n = n * 62 + static_cast<std::size_t>(d);
        }
        if (!eat('_')) ok_ = false;
        return n + 1;
    }

    void disambiguator() {
        if (eat('s')) base62();
    }

    std::string identifier() {
        disambiguator();
        eat('u');  // punycode: shown as encoded
        std::size_t len = decimal();
        eat('_');
        if (!ok_ || len > s_.size() - pos_) {
            ok_ = false;
            return {};
        }
        std::string id(s_.substr(pos_, len));
        pos_ += len;
        return id;
    }

    // Parses at a back-reference's target, then returns here.
    template <typename F>
    auto backref(F&& parse) -> decltype(parse()) {
        std::size_t target = base62();
        if (!ok_ || target >= pos_ || ++depth_ > 64 || ++backrefs_ > kMaxBackrefs) {
            ok_ = false;
            return {};
        }
        std::size_t here = pos_;
        pos_ = target;
        auto r = parse();
        pos_ = here;
        --depth_;
        return r;
    }

    std::optional<std::string> path() {
        if (++depth_ > 200) return ok_ = false, std::nullopt;
        struct Leave {
            int& d;
            ~Leave() { --d; }
        } leave{depth_};
        char c = next();
        switch (c) {
        case 'C': return identifier();
        case 'M': {  // inherent impl: <T>
            disambiguator();
            path();  // the impl's own path: not shown
            auto t = type();
            return t ? std::optional<std::string>("<" + *t + ">") : std::nullopt;
        }
        case 'X': {  // trait impl: <T as Trait>
            disambiguator();
            path();
            auto t = type();
            auto tr = path();
            if (!t || !tr) return std::nullopt;
            return "<" + *t + " as " + *tr + ">";
        }
        case 'Y': {
            auto t = type();
            auto tr = path();
            if (!t || !tr) return std::nullopt;
            return "<" + *t + " as " + *tr + ">";
        }
        case 'N': {
            char ns = next();
            auto p = path();
            std::string id = identifier();
            if (!p) return std::nullopt;
            if (ns == 'C') return *p + "::{{closure}}";
            if (ns == 'S') return *p + "::{{shim}}";
            if (std::isupper(static_cast<unsigned char>(ns))) return *p + "::{{" + std::string(1, ns) + "}}";
            return *p + "::" + id;
        }
        case 'I': {
            auto p = path();
            std::string args;
            while (ok_ && !eat('E')) {
                auto a = generic_arg();
                if (!a) return std::nullopt;
                if (!a->empty()) args += (args.empty() ? "" : ", ") + *a;
                if (args.size() > kMaxOutput) return ok_ = false, std::nullopt;
            }
            if (!p) return std::nullopt;
            return args.empty() ? *p : *p + "<" + args + ">";
        }
        case 'B': return backref([&] { return path(); });
        default: ok_ = false; return std::nullopt;
        }
    }

    std::optional<std::string> generic_arg() {
        if (eat('L')) {  // lifetimes are not shown
            base62();
            return std::string();
        }
        if (eat('K')) return constant();
        return type();
    }

    std::optional<std::string> constant() {
        if (eat('p')) return std::string("_");
        if (eat('B')) return backref([&] { return constant(); });
        auto t = type();
        bool negative = eat('n');
        std::string hex;
        while (ok_ && peek() != '_') hex += next();
        eat('_');
        if (!t) return std::nullopt;
        unsigned long long v = 0;
        for (char h : hex) v = v * 16 + static_cast<unsigned long long>(is_digit(h) ? h - '0' : h - 'a' + 10);
        if (*t == "bool") return std::string(v ? "true" : "false");
        return (negative ? "-" : "") + std::to_string(v);
    }

    std::optional<std::string> type() {
        if (++depth_ > 200) return ok_ = false, std::nullopt;
        struct Leave {
            int& d;
            ~Leave() { --d; }
        } leave{depth_};
        char c = peek();
        static constexpr std::pair<char, const char*> basic[] = {
            {'a', "i8"},  {'b', "bool"},  {'c', "char"}, {'d', "f64"},  {'e', "str"}, {'f', "f32"},
            {'h', "u8"},  {'i', "isize"}, {'j', "usize"}, {'l', "i32"}, {'m', "u32"}, {'n', "i128"},
            {'o', "u128"}, {'s', "i16"},  {'t', "u16"},  {'u', "()"},  {'v', "..."}, {'x', "i64"},
            {'y', "u64"}, {'z', "!"},    {'p', "_"}};
        for (auto [k, name] : basic)
            if (c == k) {
                ++pos_;
                return std::string(name);
            }
        switch (c) {
        case 'R':
        case 'Q': {
            ++pos_;
            if (eat('L')) base62();
            auto t = type();
            if (!t) return std::nullopt;
            return (c == 'R' ? "&" : "&mut ") + *t;
        }
        case 'P':
        case 'O': {
            ++pos_;
            auto t = type();
            if (!t) return std::nullopt;
            return (c == 'P' ? "*const " : "*mut ") + *t;
        }
        case 'A': {
            ++pos_;
            auto t = type();
            auto n = constant();
            if (!t || !n) return std::nullopt;
            return "[" + *t + "; " + *n + "]";
        }
        case 'S': {
            ++pos_;
            auto t = type();
            if (!t) return std::nullopt;
            return "[" + *t + "]";
        }
        case 'T': {
            ++pos_;
            std::string out = "(";
            int n = 0;
            while (ok_ && !eat('E')) {
                auto t = type();
                if (!t) return std::nullopt;
                out += (n++ ? ", " : "") + *t;
                if (out.size() > kMaxOutput) return ok_ = false, std::nullopt;
            }
            return out + (n == 1 ? ",)" : ")");
        }
        case 'B': ++pos_; return backref([&] { return type(); });
        case 'C':
        case 'M':
        case 'X':
        case 'Y':
        case 'N':
        case 'I': return path();
        default: ok_ = false; return std::nullopt;  // fn pointers, dyn: not shown
        }
    }

    std::string_view s_;
    std::size_t pos_ = 0;
    int depth_ = 0;
    std::size_t backrefs_ = 0;
    bool ok_ = true;
};

}  // namespace

std::optional<std::string> demangle_rust(std::string_view mangled) {
    // A symbol may carry a version or a ".llvm.NNN" suffix: cut it first.
    if (auto at = mangled.find('@'); at != std::string_view::npos) mangled = mangled.substr(0, at);
    if (mangled.substr(0, 2) == "_R") {
        auto dot = mangled.find('.');
        auto out = V0(mangled.substr(2, dot == std::string_view::npos ? std::string_view::npos : dot - 2)).run();
        return out;
    }
    if (mangled.substr(0, 3) == "_ZN") return legacy(mangled);  // stops at its 'E': a suffix is ignored
    return std::nullopt;
}

}  // namespace sw::symbolize
