#include <sys/ptrace.h>
#include <sys/user.h>

#include "proc/registers.hpp"

namespace sw::proc {

bool read_registers(pid_t tid, Registers& out) {
    user_regs_struct r {};
    if (::ptrace(PTRACE_GETREGS, tid, nullptr, &r) != 0) return false;
    // DWARF register numbers of the x86-64 psABI (libunwind's UNW_X86_64_* agree).
    const unsigned long long in_dwarf_order[] = {r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi,
                                                 r.rbp, r.rsp, r.r8,  r.r9,  r.r10, r.r11,
                                                 r.r12, r.r13, r.r14, r.r15, r.rip};
    static_assert(sizeof in_dwarf_order / sizeof in_dwarf_order[0] <= Registers::max);
    out = Registers{};
    for (std::size_t i = 0; i < sizeof in_dwarf_order / sizeof in_dwarf_order[0]; ++i)
        out.dwarf[i] = in_dwarf_order[i];
    out.pc = RemoteAddr{r.rip};
    out.sp = RemoteAddr{r.rsp};
    // orig_rax holds the number of the system call the thread is in; entries
    // into the kernel that are not system calls (interrupts, faults) leave a
    // negative value there.
    out.syscall = static_cast<long>(r.orig_rax);
    out.syscall_args = {r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9};
    return true;
}

}  // namespace sw::proc
