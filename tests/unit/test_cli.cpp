// Command-line parsing, durations, frame classes and fingerprints.
#include <doctest/doctest.h>

#include <algorithm>
#include <sstream>

#include "cli/agent.hpp"
#include "cli/options.hpp"
#include "common/duration.hpp"
#include "common/text.hpp"
#include "report/classify.hpp"
#include "report/report.hpp"

using namespace std::chrono_literals;
using sw::cli::parse_command_line;

namespace {
template <class T>
T parsed(std::vector<std::string> args) {
    args.insert(args.begin(), "stallwatch");
    auto r = parse_command_line(args);
    auto* o = std::get_if<sw::cli::Options>(&r);
    REQUIRE_MESSAGE(o, (o ? "" : std::get<sw::cli::EarlyExit>(r).err));
    auto* t = std::get_if<T>(&o->command);
    REQUIRE(t);
    return *t;
}
sw::cli::EarlyExit early(std::vector<std::string> args) {
    args.insert(args.begin(), "stallwatch");
    auto r = parse_command_line(args);
    auto* e = std::get_if<sw::cli::EarlyExit>(&r);
    REQUIRE(e);
    return *e;
}
sw::symbolize::Frame frame(std::string fn, std::string module, std::string file = "") {
    sw::symbolize::Frame f;
    f.function = std::move(fn);
    f.module = std::move(module);
    if (!file.empty()) f.location = sw::symbolize::SourceLocation{file, 1, 0};
    return f;
}
}  // namespace

TEST_CASE("durations need a unit") {
    CHECK(sw::parse_duration("250ms") == 250ms);
    CHECK(sw::parse_duration("2s") == 2s);
    CHECK(sw::parse_duration("1.5s") == 1500ms);
    CHECK(sw::parse_duration("100us") == 100us);
    CHECK(sw::parse_duration("3m") == 3min);
    CHECK(sw::parse_duration("0s") == 0s);
    CHECK(sw::parse_duration("0") == 0s);
    for (const char* bad : {"100", "ms", "", "1..2s", "-5ms", "5 ms", "5parsecs", "1e3ms"})
        CHECK_MESSAGE(!sw::parse_duration(bad), bad);
    CHECK(sw::format_duration(850us) == "850us");
    CHECK(sw::format_duration(105ms) == "105ms");
    CHECK(sw::format_duration(2300ms) == "2.30s");
    CHECK(sw::format_duration(185s) == "3m05s");
}

TEST_CASE("attach options and their defaults") {
    auto a = parsed<sw::cli::AttachOptions>({"attach", "42"});
    CHECK(a.pid == 42);
    CHECK(a.timing.threshold == 100ms);
    CHECK(a.timing.interval == 10ms);
    CHECK_FALSE(a.once);
    CHECK(a.out.format == sw::report::Format::text);
    a = parsed<sw::cli::AttachOptions>({"attach", "7", "--threshold", "250ms", "-i", "5ms", "--once",
                                        "--format", "json", "--max-frames", "12", "-o", "/tmp/x", "--full"});
    CHECK(a.timing.threshold == 250ms);
    CHECK(a.timing.interval == 5ms);
    CHECK(a.once);
    CHECK(a.out.format == sw::report::Format::json);
    CHECK(a.out.max_frames == 12);
    CHECK(a.out.output == "/tmp/x");
    CHECK(a.out.full);
}

TEST_CASE("usage errors are one line and exit 64") {
    for (std::vector<std::string> bad : {std::vector<std::string>{"attach"},
                                         {"attach", "-3"},
                                         {"attach", "1", "--threshold", "100"},
                                         {"attach", "1", "--interval", "0s"},
                                         {"attach", "1", "--format", "xml"},
                                         {"dump"},
                                         {"run"},
                                         {"bogus"},
                                         {}}) {
        auto e = early(bad);
        CHECK(e.code == 64);
        CHECK(e.out.empty());
        CHECK(e.err.rfind("stallwatch: ", 0) == 0);
        CHECK(std::count(e.err.begin(), e.err.end(), '\n') == 1);
    }
    CHECK(early({"attach", "1", "--threshold", "100"}).err.find("unit") != std::string::npos);
}

TEST_CASE("attach --all: the agent's options, its filters and what it refuses") {
    auto a = parsed<sw::cli::AttachOptions>({"attach", "--all"});
    CHECK(a.all);
    CHECK(a.pid == 0);
    a = parsed<sw::cli::AttachOptions>({"attach", "--all", "--user", "www-data", "--comm", "nginx*", "--cgroup",
                                        "/system.slice", "-f", "json", "-t", "250ms"});
    CHECK(a.filter.user == "www-data");
    CHECK(a.filter.comm == "nginx*");
    CHECK(a.filter.cgroup == "/system.slice");
    CHECK(a.out.format == sw::report::Format::json);
    CHECK(a.timing.threshold == 250ms);
    struct Bad {
        std::vector<std::string> args;
        std::string says;
    };
    for (const auto& bad : {Bad{{"attach", "--all", "42"}, "a pid or --all, not both"},
                            Bad{{"attach", "42", "--comm", "x"}, "give --all too"},
                            Bad{{"attach", "--user", "root"}, "give --all too"},
                            Bad{{"attach", "--all", "--once"}, "--once"},
                            Bad{{"attach", "--all", "--comm", "a_name_over_15_bytes"}, "15 bytes"},
                            Bad{{"attach", "--all", "--cgroup", "system.slice"}, "starts with /"}}) {
        auto e = early(bad.args);
        INFO(e.err);
        CHECK(e.code == 64);
        CHECK(e.err.find(bad.says) != std::string::npos);
        CHECK(std::count(e.err.begin(), e.err.end(), '\n') == 1);
    }
    // A pattern may be longer than 15 bytes when it has a wildcard.
    CHECK(parsed<sw::cli::AttachOptions>({"attach", "--all", "--comm", "a_name_over_15_*"}).all);
}

TEST_CASE("attach --all: --comm is a shell pattern, --cgroup a path prefix by components") {
    using sw::cli::cgroup_matches;
    using sw::cli::comm_matches;
    CHECK(comm_matches("nginx", "nginx"));
    CHECK_FALSE(comm_matches("nginx", "nginx-worker"));
    CHECK(comm_matches("nginx*", "nginx-worker"));
    CHECK(comm_matches("w?rker-[0-9]", "worker-3"));
    CHECK_FALSE(comm_matches("w?rker-[0-9]", "worker-x"));
    CHECK(cgroup_matches("/system.slice", "/system.slice"));
    CHECK(cgroup_matches("/system.slice", "/system.slice/nginx.service"));
    CHECK(cgroup_matches("/system.slice/", "/system.slice/nginx.service"));
    CHECK_FALSE(cgroup_matches("/system.slice", "/system.slicex/a.service"));
    CHECK_FALSE(cgroup_matches("/system.slice/nginx.service", "/system.slice"));
    CHECK(cgroup_matches("/", "/user.slice"));
    CHECK(cgroup_matches("/", ""));  // the root cgroup (Target::cgroup gives "") is under "/"
    CHECK_FALSE(cgroup_matches("/system.slice", ""));
}

TEST_CASE("run takes the program and its own options after --") {
    auto r = parsed<sw::cli::RunOptions>({"run", "--threshold", "1s", "--", "./app", "--threshold", "x"});
    CHECK(r.timing.threshold == 1s);
    CHECK(r.command == std::vector<std::string>{"./app", "--threshold", "x"});
}

TEST_CASE("dump and list") {
    auto d = parsed<sw::cli::DumpOptions>({"dump", "9", "--all-threads", "-f", "folded"});
    CHECK(d.all_threads);
    CHECK(d.out.format == sw::report::Format::folded);
    auto l = parsed<sw::cli::ListOptions>({"list", "--format", "json"});
    CHECK(l.format == sw::report::Format::json);
}

TEST_CASE("help and version exit 0 on stdout") {
    auto v = early({"--version"});
    CHECK(v.code == 0);
    CHECK(v.out.find("table format versions: 1") != std::string::npos);
    CHECK(v.out.find("reads table format versions: 1, 2\n") != std::string::npos);  // version 2: groups
    auto h = early({"attach", "--help"});
    CHECK(h.code == 0);
    CHECK(h.out.find("--threshold") != std::string::npos);
}

TEST_CASE("frame classes") {
    using sw::report::classify;
    using sw::report::FrameClass;
    const std::string exe = "/srv/app/bin/server";
    CHECK(classify(frame("handle", exe), exe) == FrameClass::application);
    CHECK(classify(frame("clock_nanosleep", "/usr/lib/x86_64-linux-gnu/libc.so.6"), exe) == FrameClass::libc);
    CHECK(classify(frame("x", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30"), exe) == FrameClass::cxx_runtime);
    CHECK(classify(frame("void std::this_thread::sleep_for<long>()", exe, "/usr/include/c++/12/bits/this_thread_sleep.h"),
                   exe) == FrameClass::cxx_runtime);
    CHECK(classify(frame("uv_run", "/usr/lib/x86_64-linux-gnu/libuv.so.1"), exe) == FrameClass::runtime);
    CHECK(classify(frame("x", "/usr/lib/x86_64-linux-gnu/libcurl.so.4"), exe) == FrameClass::runtime);
    CHECK(classify(frame("plugin_fn", "/opt/app/lib/libplugin.so"), exe) == FrameClass::application);
    CHECK(classify(frame("", ""), exe) == FrameClass::unknown);
}

TEST_CASE("runtime modules: every frame in them is classified as not the application's, so text names them "
          "from the symbol table alone") {
    using sw::report::runtime_module;
    using sw::symbolize::Detail;
    const std::string exe = "/srv/app/bin/server";
    CHECK(runtime_module("/usr/lib/x86_64-linux-gnu/libc.so.6", exe));
    CHECK(runtime_module("/lib/x86_64-linux-gnu/libstdc++.so.6", exe));
    CHECK(runtime_module("/usr/lib/x86_64-linux-gnu/libcurl.so.4", exe));
    CHECK(runtime_module("/opt/app/lib/libuv.so.1", exe));  // a known runtime, wherever it lies
    CHECK(runtime_module("", exe));                          // unmapped: unknown, never the application's
    CHECK_FALSE(runtime_module(exe, exe));
    CHECK_FALSE(runtime_module("/opt/app/lib/libplugin.so", exe));
    CHECK_FALSE(runtime_module("/usr/bin/server", "/usr/bin/server"));  // an executable under /usr is the app
    // Whatever the function or the source file, such a module's frames are never the application's.
    for (const char* fn : {"main", "handle", "std::thread::_State_impl<>::_M_run()"})
        CHECK(sw::report::classify(frame(fn, "/usr/lib/x86_64-linux-gnu/libfoo.so.1", "/srv/app/src/a.c"), exe) !=
              sw::report::FrameClass::application);
    auto d = sw::report::text_detail({"/usr/lib/x86_64-linux-gnu/libc.so.6", exe, exe, "",
                                      "/usr/lib/x86_64-linux-gnu/libc.so.6"},
                                     exe);
    CHECK(d == std::vector<Detail>{Detail::name, Detail::full, Detail::full, Detail::name, Detail::name});
}

TEST_CASE("Rust frames from .rs files: std, core, tokio, hyper, h2, futures, mio and tracing are runtime, the "
          "crate's own are not, and C++ namespaces of those names stay application") {
    using sw::report::classify;
    using sw::report::FrameClass;
    const std::string exe = "/srv/app/bin/http-blocking";
    const std::string rs = "src/lib.rs";
    for (const char* fn : {"std::thread::functions::sleep", "<std::sys::thread::unix::Thread>::new::thread_start",
                           "core::ops::function::FnOnce::call_once{{vtable.shim}}",
                           "<core::panic::unwind_safe::AssertUnwindSafe<F> as core::ops::function::FnOnce<()>>::call_once",
                           "alloc::boxed::Box<T>::new", "tokio::runtime::task::harness::poll_future",
                           "<tokio::runtime::blocking::task::BlockingTask<T> as core::future::future::Future>::poll",
                           "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_loop", "h2::proto::connection::poll",
                           "futures_util::future::future::FutureExt::poll_unpin", "mio::poll::Poll::poll",
                           "tracing::instrument::Instrumented<T>::poll",
                           "<stallwatch::tokio_runtime::Instrumented<F> as core::future::future::Future>::poll"})
        CHECK_MESSAGE(classify(frame(fn, exe, rs), exe) == FrameClass::runtime, fn);
    CHECK(classify(frame("__rust_try", exe), exe) == FrameClass::runtime);
    for (const char* fn : {"http_blocking::handle::{{closure}}", "http_blocking::main",
                           "<http_blocking::Instrumented as hyper::rt::Executor<F>>::execute", "stallwatch::Worker::tick",
                           "tokio_busy::stuck_in_poll", "hyperion::serve", "mioto::run", "futuresque::go"})
        CHECK_MESSAGE(classify(frame(fn, exe, rs), exe) == FrameClass::application, fn);
    // The same names in C++ code are the program's own.
    for (const char* fn : {"core::engine::step()", "tracing::span::enter()", "futures::wait_all()"})
        CHECK_MESSAGE(classify(frame(fn, exe, "/srv/app/src/engine.cpp"), exe) == FrameClass::application, fn);
}

TEST_CASE("fingerprints: application frames only, no addresses, no paths, no glibc internals") {
    const std::string exe = "/build/a/sw_fixture_stall";
    auto libc_dbg = frame("__GI___clock_nanosleep", "/usr/lib/x86_64-linux-gnu/libc.so.6");
    auto libc_plain = frame("clock_nanosleep@GLIBC_2.2.5", "/lib/x86_64-linux-gnu/libc.so.6");
    auto start = frame("start_thread", "/usr/lib/x86_64-linux-gnu/libc.so.6");
    auto unnamed = frame("", "/lib/x86_64-linux-gnu/libc.so.6");
    auto app = frame("sleep_in_handler", exe);
    auto app_clone = frame("sleep_in_handler.isra.0", "/opt/other/sw_fixture_stall");
    auto caller = frame("handle_request", exe);
    libc_dbg.pc = 0x7f0000001000;
    libc_plain.pc = 0x7f1111112000;
    using sw::report::stack_fingerprint;
    // With libc debug info, and without it on another host with another path.
    CHECK(stack_fingerprint({libc_dbg, app, caller, start}, exe) ==
          stack_fingerprint({libc_plain, app_clone, caller, unnamed}, "/opt/other/sw_fixture_stall"));
    CHECK(stack_fingerprint({app, caller}, exe) != stack_fingerprint({caller, app}, exe));
    CHECK(stack_fingerprint({app, caller}, exe) != stack_fingerprint({frame("other", exe), caller}, exe));
    // No application frame at all: the named frames decide.
    CHECK(stack_fingerprint({libc_dbg, start}, exe) == stack_fingerprint({libc_plain, start, unnamed}, exe));
    CHECK(stack_fingerprint({app}, exe).size() == 16);
    CHECK(sw::report::canonical_function("__GI___libc_read") == "read");
    CHECK(sw::report::canonical_function("___pthread_cond_wait") == "pthread_cond_wait");
    CHECK(sw::report::canonical_function("_ZN3foo3barEv") == "_ZN3foo3barEv");
    CHECK(sw::report::canonical_function("foo(int) [clone .cold]") == "foo(int)");
}

TEST_CASE("names from the target are made printable") {
    CHECK(sw::printable("ok name") == "ok name");
    CHECK(sw::printable("a\nb\x1b[2J") == "a\\x0ab\\x1b[2J");
    CHECK(sw::printable("back\\slash") == "back\\x5cslash");
    CHECK(sw::printable("del\x7f") == "del\\x7f");
    // Well-formed UTF-8 stays: Latin, CJK, a 4-byte emoji, U+00A0 (the first past C1).
    CHECK(sw::printable("na\xc3\xafve") == "na\xc3\xafve");
    CHECK(sw::printable("\xe6\x97\xa5\xe6\x9c\xac") == "\xe6\x97\xa5\xe6\x9c\xac");
    CHECK(sw::printable("\xf0\x9f\x98\x80") == "\xf0\x9f\x98\x80");
    CHECK(sw::printable("\xc2\xa0") == "\xc2\xa0");
    // The C1 controls in UTF-8 (U+009B is CSI, U+0085 NEL, U+0080): both bytes escaped.
    CHECK(sw::printable("a\xc2\x9b" "2Jb") == "a\\xc2\\x9b2Jb");
    CHECK(sw::printable("\xc2\x85\xc2\x80\xc2\x9f") == "\\xc2\\x85\\xc2\\x80\\xc2\\x9f");
    // Bytes outside well-formed UTF-8: a raw CSI, a stray continuation, a
    // lead byte without its continuation, overlong forms, a surrogate, past
    // U+10FFFF, bytes never used; what follows them is read afresh.
    CHECK(sw::printable("\x9b" "2J") == "\\x9b2J");
    CHECK(sw::printable("\x80x") == "\\x80x");
    CHECK(sw::printable("\xc3x") == "\\xc3x");
    CHECK(sw::printable("\xe6\x97x") == "\\xe6\\x97x");
    CHECK(sw::printable("\xc0\xaf") == "\\xc0\\xaf");
    CHECK(sw::printable("\xe0\x80\xaf") == "\\xe0\\x80\\xaf");
    CHECK(sw::printable("\xf0\x80\x80\xaf") == "\\xf0\\x80\\x80\\xaf");
    CHECK(sw::printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");
    CHECK(sw::printable("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");
    CHECK(sw::printable("\xff\xfe") == "\\xff\\xfe");
    CHECK(sw::printable("\xc3\xc3\xa9") == "\\xc3\xc3\xa9");  // the second lead byte starts a good sequence
    CHECK(sw::printable("end\xe6") == "end\\xe6");  // cut short at the end
    // Whatever the input, the output holds no byte a terminal takes for a control.
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    for (int c = 0x80; c < 0xa0; ++c) all += std::string("\xc2") + static_cast<char>(c);
    auto out = sw::printable(all);
    for (std::size_t i = 0; i < out.size(); ++i) {
        auto c = static_cast<unsigned char>(out[i]);
        CHECK_MESSAGE(c >= 0x20, i);
        CHECK_MESSAGE(c < 0x7f, i);  // every byte of this input past ASCII is escaped
    }
}

TEST_CASE("each usage error says what was wrong, in one short line") {
    auto says = [](std::vector<std::string> args, const std::string& what) {
        auto e = early(args);
        INFO(e.err);
        CHECK(e.code == 64);
        CHECK(e.err.find(what) != std::string::npos);
        CHECK(e.err.size() < 200);
        CHECK(std::count(e.err.begin(), e.err.end(), '\n') == 1);
        return e.err;
    };
    // A pid that is not a number: no CLI11 range with a 300-digit bound.
    for (const char* cmd : {"status", "attach", "dump"}) says({cmd, "abc"}, "'abc' is not a process id");
    says({"status", "0"}, "'0' is not a process id");
    says({"status", "99999999999999999999"}, "'99999999999999999999' is not a process id");
    // A command that does not exist is named as such.
    auto bogus = says({"bogus"}, "'bogus' is not a command: use status, attach, dump, run, list or top");
    CHECK(bogus.find("subcommand") == std::string::npos);
    says({}, "no command given: use status, attach, dump, run, list or top");
    // A duration too long for the clock is too long, not "not a duration".
    auto huge = says({"attach", "1", "--threshold", "100000000h"}, "'100000000h' is too long");
    CHECK(huge.find("not a duration") == std::string::npos);
    says({"list", "--threshold", "9999999999s"}, "'9999999999s' is too long");
    says({"attach", "1", "--threshold", "5 parsecs"}, "'5 parsecs' is not a duration");
    // An interval below 1 ms burns a core and measures nothing finer.
    says({"attach", "1", "--interval", "1ns"}, "'1ns' is too short: the interval is at least 1ms");
    says({"run", "--interval", "999us", "--", "true"}, "'999us' is too short: the interval is at least 1ms");
    CHECK(parsed<sw::cli::AttachOptions>({"attach", "1", "--interval", "1ms"}).timing.interval == 1ms);
    // -o "" is not standard output in disguise.
    for (const char* cmd : {"attach", "dump"}) says({cmd, "1", "-o", ""}, "--output: give a file name");
    says({"run", "--output", "", "--", "true"}, "--output: give a file name");
}

TEST_CASE("each command's help says truthfully where --output replaces") {
    auto output_line = [](const std::string& cmd) {
        auto h = early({cmd, "--help"});
        std::istringstream in(h.out);
        for (std::string line; std::getline(in, line);)
            if (line.find("-o,--output") != std::string::npos) return line;
        return std::string();
    };
    CHECK(output_line("run").find("instead of standard error") != std::string::npos);
    CHECK(output_line("run").find("standard output") == std::string::npos);
    CHECK(output_line("attach").find("instead of standard output") != std::string::npos);
    CHECK(output_line("dump").find("instead of standard output") != std::string::npos);
}
