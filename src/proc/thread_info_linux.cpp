#include "proc/thread_info.hpp"

#include <sys/syscall.h>

#include <fmt/format.h>

#include <cstdlib>
#include <string_view>

#include "proc/maps.hpp"
#include "proc/process.hpp"

namespace sw::proc {
namespace {

char read_state(pid_t pid, pid_t tid) { return thread_state_letter(pid, tid); }

}  // namespace

ThreadState read_thread_state(pid_t pid, pid_t tid) {
    ThreadState st;
    st.state = read_state(pid, tid);
    if (auto sc = read_text_file(fmt::format("/proc/{}/task/{}/syscall", pid, tid)); sc) {
        if (!sc->empty() && (*sc)[0] >= '0' && (*sc)[0] <= '9') {
            // "NR ARG0 ARG1 ... SP PC", the arguments in hex.
            char* end = nullptr;
            st.syscall_nr = std::strtol(sc->c_str(), &end, 10);
            if (end && *end == ' ') st.syscall_arg0 = std::strtoull(end + 1, nullptr, 16);
        }
    }
    if (auto wc = read_text_file(fmt::format("/proc/{}/task/{}/wchan", pid, tid)); wc) {
        if (*wc != "0") st.wchan = *wc;
    }
    return st;
}

bool thread_frozen(pid_t pid, pid_t tid) {
    char s = read_state(pid, tid);
    return s == 'T' || s == 't';
}

std::string syscall_name(long nr) {
    struct Entry {
        long nr;
        std::string_view name;
    };
    // The calls a blocked worker is usually found in.
    static constexpr Entry table[] = {
        {SYS_read, "read"},           {SYS_write, "write"},
        {SYS_poll, "poll"},           {SYS_select, "select"},
        {SYS_nanosleep, "nanosleep"}, {SYS_clock_nanosleep, "clock_nanosleep"},
        {SYS_futex, "futex"},         {SYS_epoll_wait, "epoll_wait"},
        {SYS_epoll_pwait, "epoll_pwait"}, {SYS_accept, "accept"},
        {SYS_accept4, "accept4"},     {SYS_connect, "connect"},
        {SYS_recvfrom, "recvfrom"},   {SYS_recvmsg, "recvmsg"},
        {SYS_sendto, "sendto"},       {SYS_sendmsg, "sendmsg"},
        {SYS_wait4, "wait4"},         {SYS_waitid, "waitid"},
        {SYS_pause, "pause"},         {SYS_ppoll, "ppoll"},
        {SYS_pselect6, "pselect6"},   {SYS_restart_syscall, "restart_syscall"},
        {SYS_flock, "flock"},         {SYS_fcntl, "fcntl"},
        {SYS_fsync, "fsync"},         {SYS_fdatasync, "fdatasync"},
        {SYS_openat, "openat"},       {SYS_open, "open"},
        {SYS_pread64, "pread64"},     {SYS_pwrite64, "pwrite64"},
        {SYS_readv, "readv"},         {SYS_writev, "writev"},
        {SYS_io_getevents, "io_getevents"}, {SYS_io_uring_enter, "io_uring_enter"},
        {SYS_msgrcv, "msgrcv"},       {SYS_semop, "semop"},
        {SYS_semtimedop, "semtimedop"}, {SYS_rt_sigtimedwait, "rt_sigtimedwait"},
        {SYS_rt_sigsuspend, "rt_sigsuspend"}, {SYS_sched_yield, "sched_yield"},
        {SYS_getrandom, "getrandom"}, {SYS_mmap, "mmap"},
        {SYS_munmap, "munmap"},       {SYS_close, "close"},
    };
    for (const auto& e : table)
        if (e.nr == nr) return std::string(e.name);
    return fmt::format("syscall {}", nr);
}

std::string state_name(char state) {
    switch (state) {
    case 'R': return "running";
    case 'S': return "sleeping";
    case 'D': return "disk sleep";
    case 'T': return "stopped";
    case 't': return "tracing stop";
    case 'Z': return "zombie";
    case 'X': return "dead";
    case 'I': return "idle";
    default: return "unknown";
    }
}

}  // namespace sw::proc
