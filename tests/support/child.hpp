// Test harness: run fixture programs and the stallwatch binary as children,
// with a readiness handshake (a line on stdout), hard time-outs, and a guard
// that kills the child whatever happens to the test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sw::test {

using namespace std::chrono_literals;

class Child {
public:
    // Starts argv[0] with `argv`; `env` entries are added to the environment.
    // stdin is a pipe kept open by the guard (closing it ends the fixtures);
    // stdout is a pipe the test reads; stderr is inherited.
    explicit Child(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& env = {});
    ~Child();
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const { return pid_; }
    // Next line of stdout (without '\n'), or nullopt on EOF or time-out.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout = 10s);
    // Writes `text` to its stdin (a fixture's "go" line, say).
    void say(const std::string& text);
    // Closes stdin and waits for the exit; returns the wait status or nullopt on time-out.
    std::optional<int> finish(std::chrono::milliseconds timeout = 10s);

private:
    pid_t pid_ = -1;
    int in_ = -1;
    int out_ = -1;
    std::string buffered_;
    bool reaped_ = false;
};

struct RunResult {
    int exit_code = -1;  // -1: killed by a signal or timed out
    bool timed_out = false;
    std::string out;
    std::string err;
};

// Runs a command to completion with a time-out, capturing stdout and stderr.
RunResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 30s,
              const std::map<std::string, std::string>& env = {});

// "key=value" field of a line like "ready pid=1 init=0 live=2".
std::optional<long> field(const std::string& line, const std::string& key);

// Where the build put its programs (compile definitions from CMake).
std::string stallwatch_binary();
std::string fixture(const std::string& name);

}  // namespace sw::test
