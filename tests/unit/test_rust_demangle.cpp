// Rust symbol names as Rust users read them (symbolize/rust_demangle.hpp);
// the mangled names come from the http-blocking example's binary
// (bindings/rust), built by rustc 1.95 (legacy names for the crates, v0 for
// the standard library).
#include <doctest/doctest.h>

#include "symbolize/rust_demangle.hpp"

using sw::symbolize::demangle_rust;

TEST_CASE("legacy Rust names lose their hash and rustc's escapes") {
    CHECK(demangle_rust("_ZN13http_blocking6handle28_$u7b$$u7b$closure$u7d$$u7d$17h0c37d3f1091d2397E") ==
          "http_blocking::handle::{{closure}}");
    CHECK(demangle_rust("_ZN5hyper5proto2h18dispatch32Dispatcher$LT$D$C$Bs$C$I$C$T$GT$9poll_loop17h567ad0f50eaded6eE") ==
          "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_loop");
    CHECK(demangle_rust("_ZN102_$LT$hyper..server..conn..ProtoServer$LT$T$C$B$C$S$C$E$GT$$u20$as$u20$core..future..future..Future$GT$4poll17hea1422bca99642f4E") ==
          "<hyper::server::conn::ProtoServer<T,B,S,E> as core::future::future::Future>::poll");
    CHECK(demangle_rust("_ZN3std2rt10lang_start17h0123456789abcdefE.llvm.123") == "std::rt::lang_start");
}

TEST_CASE("v0 Rust names: paths, inherent impls, back-references, closures, generic arguments") {
    CHECK(demangle_rust("_RNvNtNtCsjrHSEGnQ3l9_3std6thread9functions5sleep") == "std::thread::functions::sleep");
    CHECK(demangle_rust("_RNvNvMs0_NtNtNtCsjrHSEGnQ3l9_3std3sys6thread4unixNtB7_6Thread3new12thread_start") ==
          "<std::sys::thread::unix::Thread>::new::thread_start");
    CHECK(demangle_rust("_RNCNvCs1234_5hello4main0B3_") == "hello::main::{{closure}}");
    CHECK(demangle_rust("_RINvCs1234_3foo3barmjE") == "foo::bar<u32, usize>");
}

TEST_CASE("names that are not Rust are left to the C++ demangler") {
    CHECK_FALSE(demangle_rust("_ZN3foo3barEv").has_value());    // C++: no hash
    CHECK_FALSE(demangle_rust("_ZN3foo3barE").has_value());
    CHECK_FALSE(demangle_rust("_ZN3foo17hnothexatall_12345E").has_value());
    CHECK_FALSE(demangle_rust("main").has_value());
    CHECK_FALSE(demangle_rust("_RZZZ").has_value());            // malformed v0
    CHECK_FALSE(demangle_rust("_RNvB999_3foo").has_value());    // back-reference out of range
}

namespace {

// A base-62 back-reference to position `p` of a v0 name (after "_R").
std::string backref_to(std::size_t p) {
    if (p == 0) return "B_";
    std::string digits;
    for (std::size_t v = p - 1;; v /= 62) {
        const std::size_t d = v % 62;
        digits.insert(digits.begin(), static_cast<char>(d < 10 ? '0' + d : d < 36 ? 'a' + d - 10 : 'A' + d - 36));
        if (v < 62) break;
    }
    return "B" + digits + "_";
}

}  // namespace

TEST_CASE("hostile Rust names (they come from the watched program) fail fast, never hang or blow up") {
    // Lengths that overflow when added to the position.
    CHECK_FALSE(demangle_rust("_ZN18446744073709551596").has_value());
    CHECK_FALSE(demangle_rust("_ZN184467440737095515963foo17h0123456789abcdefE").has_value());
    CHECK_FALSE(demangle_rust("_RNvC18446744073709551615_3foo").has_value());
    // A back-reference whose base-62 value wraps: followed at most a bounded
    // number of times, whatever it points at.
    auto wrapped = demangle_rust("_RNvB99999999999999999999999_3foo");
    CHECK((!wrapped.has_value() || wrapped->size() <= 4096));
    // Bytes >= 0x80 where digits are expected.
    CHECK_FALSE(demangle_rust("_ZN\xff\xfe" "3foo17h0123456789abcdefE").has_value());
    CHECK_FALSE(demangle_rust("_R\xe9NvC3foo").has_value());
    // Tuples of two back-references to the tuple before, 60 deep: 2^60 names
    // if each were expanded. Refused after a bounded number of expansions.
    std::string name = "INvC1a1b";  // a::b<...>
    std::size_t prev = name.size();
    name += "l";  // i32
    for (int i = 0; i < 60; ++i) {
        const std::size_t here = name.size();
        name += "T" + backref_to(prev) + backref_to(prev) + "E";
        prev = here;
    }
    name += "E";
    auto out = demangle_rust("_R" + name);
    CHECK((!out.has_value() || out->size() <= 4096));
}
