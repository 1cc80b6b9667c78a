#include "report/classify.hpp"

#include <initializer_list>

#include "proc/host.hpp"
#include "report/report.hpp"

namespace sw::report {
namespace {

bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
    for (auto p : prefixes)
        if (s.substr(0, p.size()) == p) return true;
    return false;
}

FrameClass by_module(std::string_view base) {
    if (starts_with_any(base, {"libc.so", "libc-", "libm.so", "libpthread", "ld-linux", "ld64.so",
                               "libdl.so", "librt.so", "libresolv"}))
        return FrameClass::libc;
    if (starts_with_any(base, {"libstdc++", "libc++", "libgcc_s", "libsupc++"}))
        return FrameClass::cxx_runtime;
    if (starts_with_any(base, {"libstallwatch.", "libuv.", "libevent", "libev.", "libboost_",
                               "libglib-", "libgio-", "libtbb", "libfolly", "libjemalloc",
                               "libtcmalloc", "libpython", "libruby", "libjvm", "libnode"}))
        return FrameClass::runtime;
    return FrameClass::application;
}

FrameClass by_function(std::string_view fn) {
    if (starts_with_any(fn, {"std::", "void std::", "__gnu_cxx::", "__cxxabiv1::", "execute_native_thread_routine"}))
        return FrameClass::cxx_runtime;
    if (starts_with_any(fn, {"boost::asio::detail::", "boost::context::", "uv_run", "uv__",
                             "event_base_loop", "g_main_loop", "g_main_context", "tokio::runtime::",
                             "folly::EventBase"}))
        return FrameClass::runtime;
    if (fn == "__rust_try") return FrameClass::runtime;  // std's unwinding shim: no source of its own
    return FrameClass::application;
}

// Rust: the standard library, the async runtime and its ecosystem, as
// symbolize/rust_demangle names them (a leading '<' opens an impl). Only
// for code from a .rs file: a C++ program may well have a core:: or
// tracing:: namespace of its own.
bool rust_runtime(std::string_view fn) {
    return starts_with_any(fn, {"std::", "<std::", "core::", "<core::", "alloc::", "<alloc::", "tokio::", "<tokio::",
                                "hyper::", "<hyper::", "h2::", "<h2::", "futures::", "<futures::", "futures_",
                                "<futures_", "mio::", "<mio::", "tracing::", "<tracing::", "tracing_", "<tracing_",
                                "stallwatch::tokio_runtime::", "<stallwatch::tokio_runtime::"});
}

// The class of a frame by its module alone, for a module that is not the
// executable: the C library, the C++ runtime, known runtimes; other system
// libraries are plumbing too; anything else is the app's.
FrameClass class_of_module(std::string_view module) {
    if (auto c = by_module(basename_of(module)); c != FrameClass::application) return c;
    if (starts_with_any(module, {"/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/libexec/"}))
        return FrameClass::runtime;
    return FrameClass::application;
}

// glibc exports `name` (the glibc this monitor runs on).
bool exported_by_libc(std::string_view name) { return proc::host_libc_exports(name); }

// The C library's code linked into a static executable (see classify.hpp).
bool libc_in_static_executable(const symbolize::Frame& f) {
    std::string_view fn = f.function;
    if (auto at = fn.find('@'); at != std::string_view::npos) fn = fn.substr(0, at);
    // Names the C standard reserves for the implementation; "_Z" is a
    // mangled C++ name that did not demangle.
    if (fn.size() > 1 && fn[0] == '_' && fn.substr(0, 2) != "_Z") return true;
    // glibc's thread entry, not exported.
    if (fn == "start_thread" || fn == "clone" || fn == "clone3") return true;
    // A public libc function: unless the frame has a source line (Debian's
    // libc.a has no debug info, an application built with -g does), as an
    // application may define a function of the same name.
    return !f.location && exported_by_libc(canonical_function(fn));
}

}  // namespace

std::string_view basename_of(std::string_view path) {
    auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view to_string(FrameClass c) {
    switch (c) {
    case FrameClass::application: return "application";
    case FrameClass::libc: return "libc";
    case FrameClass::cxx_runtime: return "cxx_runtime";
    case FrameClass::runtime: return "runtime";
    case FrameClass::unknown: return "unknown";
    }
    return "unknown";
}

FrameClass classify(const symbolize::Frame& f, const std::string& executable) {
    if (f.module.empty()) return FrameClass::unknown;
    if (f.module.rfind("[vdso", 0) == 0) return FrameClass::libc;  // the kernel's part of libc
    // Code inlined from system headers is the runtime's, even inside the
    // application's binary.
    if (f.location) {
        std::string_view file = f.location->file;
        if (starts_with_any(file, {"/usr/include/c++/", "/usr/lib/gcc/", "/usr/lib/llvm"}))
            return FrameClass::cxx_runtime;
        if (starts_with_any(file, {"/usr/include/"})) return FrameClass::runtime;
    }
    if (f.location && f.location->file.ends_with(".rs") && rust_runtime(f.function)) return FrameClass::runtime;
    if (auto c = by_function(f.function); c != FrameClass::application) return c;
    if (f.static_executable && libc_in_static_executable(f)) return FrameClass::libc;
    if (!executable.empty() && f.module == executable) return FrameClass::application;
    return class_of_module(f.module);
}

bool runtime_module(std::string_view module, const std::string& executable) {
    if (module.empty() || module.rfind("[vdso", 0) == 0) return true;  // unknown, libc
    if (!executable.empty() && module == executable) return false;
    return class_of_module(module) != FrameClass::application;
}

}  // namespace sw::report
