// Tests that cannot run here say so: they are counted as skipped, never as
// passed. And tests that need a test hook of the monitor fail, naming the
// build option, when the build lacks it.
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <map>
#include <string>

namespace sw::test {

// The marker that CTest's SKIP_REGULAR_EXPRESSION looks for (tests/CMakeLists.txt,
// sw_discover_tests): a test whose output carries it is reported as skipped,
// and tests/run-all.sh fails on any skip when it runs as root, as CI does.
inline constexpr const char* skip_marker = "STALLWATCH-TEST-SKIPPED:";

inline void announce_skip(const std::string& reason) {
    std::printf("%s %s\n", skip_marker, reason.c_str());
    std::fflush(stdout);
}

// Whether the monitor under test was built with STALLWATCH_TEST_HOOKS.
inline constexpr bool test_hooks_built =
#ifdef STALLWATCH_TEST_HOOKS
    true;
#else
    false;
#endif

// The environment that sets one of the monitor's test hooks (nothing for 0).
// Fails the test when the build has no hooks.
inline std::map<std::string, std::string> test_hook_env(const std::string& name, long us) {
    REQUIRE_MESSAGE(test_hooks_built,
                    "this test needs the monitor's test hooks: configure with -DSTALLWATCH_TEST_HOOKS=ON "
                    "(tests/run-all.sh does)");
    if (us <= 0) return {};
    return {{name, std::to_string(us)}};
}

// Every stop of a target thread is held `us` microseconds.
inline std::map<std::string, std::string> hold_stop_env(long us) {
    return test_hook_env("STALLWATCH_TEST_HOLD_STOP_US", us);
}

// The monitor opens a target's files by their paths in its root, as if
// /proc/PID/map_files were closed to it.
inline std::map<std::string, std::string> no_map_files_env() {
    return test_hook_env("STALLWATCH_TEST_NO_MAP_FILES", 1);
}

// `us` microseconds pass between the seize of a thread and its interrupt.
inline std::map<std::string, std::string> hold_seize_env(long us) {
    return test_hook_env("STALLWATCH_TEST_HOLD_SEIZE_US", us);
}

}  // namespace sw::test

// Ends the current test case as skipped, with the reason in its output.
#define SW_SKIP(reason)                         \
    do {                                        \
        ::sw::test::announce_skip(reason);      \
        return;                                 \
    } while (0)
