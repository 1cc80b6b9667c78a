// A running fixture program that says "ready ... pid=P ..." once set up
// (sw_fixture_stall by default: its victim blocks at once, its busy workers
// tick every millisecond), for the integration tests that only need its pid.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "support/child.hpp"

namespace sw::test {

struct StallFixture {
    Child child;
    pid_t pid = 0;
    explicit StallFixture(std::vector<std::string> args, const std::string& binary = "sw_fixture_stall")
        : child([&] {
              args.insert(args.begin(), fixture(binary));
              return args;
          }()) {
        auto line = child.read_line();
        REQUIRE_MESSAGE(line.has_value(), binary << " did not say ready");
        pid = static_cast<pid_t>(field(*line, "pid").value_or(0));
        REQUIRE(pid > 0);
    }
};

}  // namespace sw::test
