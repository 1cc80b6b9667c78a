// What a program file says about running it under LD_PRELOAD, read before
// it runs (`run --preload`): the dynamic loader only honours LD_PRELOAD in
// a dynamically linked program that does not run in secure-execution mode.
#pragma once

#include <string>
#include <vector>

namespace sw::proc {

// The file execvp would run for `argv0`: as given when it has a slash, else
// the first executable file of that name in $PATH. "" when there is none.
std::string resolve_program(const std::string& argv0);

struct ProgramFacts {
    bool statically_linked = false;  // an ELF file without PT_INTERP
    // Why the loader would run it in secure-execution mode (AT_SECURE), for
    // a caller with our identity: "set-user-ID (owner uid 65534)",
    // "set-group-ID (group 0)", "file capabilities"; "" when it would not.
    std::string secure_execution;
};

// What can be told from the file at `path`; nothing when it is unreadable
// or not ELF (a script: its interpreter decides, and is dynamic or not).
ProgramFacts inspect_program(const std::string& path);

}  // namespace sw::proc
