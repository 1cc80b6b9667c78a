// What the kernel says about one thread, from /proc: cheap reads, best effort.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace sw::proc {

struct ThreadState {
    char state = '?';     // R, S, D, T, t, Z ... from /proc/<pid>/task/<tid>/stat
    long syscall_nr = -1; // the system call it is in, -1 when none or unknown
    std::string wchan;    // kernel function it waits in, "" when none
    std::uint64_t syscall_arg0 = 0;  // the call's first argument (a futex address, a file descriptor ...)
};

// Reads state, syscall and wait channel. Read it before stopping the thread:
// after a ptrace stop the kernel reports restart_syscall for a sleep.
ThreadState read_thread_state(pid_t pid, pid_t tid);

// Stopped by a signal (T) or by a tracer (t): not a stall of its own making.
bool thread_frozen(pid_t pid, pid_t tid);

// "clock_nanosleep" for 230 on x86-64; "syscall N" for numbers not in the table.
std::string syscall_name(long nr);

// "sleeping", "running", "disk sleep" ... for a state letter.
std::string state_name(char state);

}  // namespace sw::proc
