// Reading a stopped thread's registers: one implementation per architecture
// (registers_x86_64.cpp today), chosen by CMake.
#pragma once

#include <sys/types.h>

#include "proc/capture.hpp"

namespace sw::proc {

// `tid` must be in a ptrace stop owned by the caller. False on failure (errno set).
bool read_registers(pid_t tid, Registers& out);

}  // namespace sw::proc
