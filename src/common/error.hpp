// Errors as values: what failed, the errno behind it (if any), and one
// sentence for the person at the terminal. Each kind maps to one exit code.
#pragma once

#include <string>
#include <utility>

namespace sw {

enum class Errc {
    usage,               // bad command line
    no_such_process,     // the pid does not exist (or exited)
    permission_denied,   // we may not inspect the process
    no_table,            // the process carries no stallwatch table
    table_not_ready,     // the table exists but its header is not published yet
    unsupported_version, // the table's format version is not one we read
    corrupt_table,       // the table's bytes break the format's rules
    io,                  // a system call failed for another reason
};

struct Error {
    Errc code;
    int sys_errno = 0;     // 0 when no system call is to blame
    std::string message;   // complete sentence fragment, no trailing newline
};

inline Error make_error(Errc code, std::string message, int sys_errno = 0) {
    return Error{code, sys_errno, std::move(message)};
}

// Documented exit codes (man/stallwatch.1, section EXIT STATUS).
namespace exit_code {
inline constexpr int ok = 0;
inline constexpr int failure = 1;
inline constexpr int target_exited = 2;
inline constexpr int no_such_process = 3;
inline constexpr int permission_denied = 4;
inline constexpr int no_table = 5;
inline constexpr int bad_table = 6;
inline constexpr int usage = 64;
}  // namespace exit_code

int exit_code_for(Errc code);

}  // namespace sw
