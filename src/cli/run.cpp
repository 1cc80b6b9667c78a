// `stallwatch run [options] -- PROGRAM ARGS...`: start the program as our
// child (so Yama's ptrace_scope=1 allows us to trace it) and watch it from
// its first moment; pass signals on; exit with its status.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/watch.hpp"
#include "common/unique_fd.hpp"

namespace sw::cli {
namespace {

const std::vector<int> forwarded = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

// Starts `argv` with default signal handling. Returns the pid, or an errno
// when exec failed (reported back through a close-on-exec pipe).
Result<pid_t> start_child(const std::vector<std::string>& argv) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return make_error(Errc::io, std::strerror(errno), errno);
    UniqueFd rd(fds[0]), wr(fds[1]);
    std::vector<char*> cargs;
    for (const auto& a : argv) cargs.push_back(const_cast<char*>(a.c_str()));
    cargs.push_back(nullptr);

    pid_t pid = ::fork();
    if (pid < 0) return make_error(Errc::io, fmt::format("fork: {}", std::strerror(errno)), errno);
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int s : forwarded) ::signal(s, SIG_DFL);
        ::signal(SIGPIPE, SIG_DFL);
        ::execvp(cargs[0], cargs.data());
        int e = errno;
        (void)!::write(wr.get(), &e, sizeof e);
        ::_exit(127);
    }
    wr.reset();
    int e = 0;
    ssize_t n;
    while ((n = ::read(rd.get(), &e, sizeof e)) < 0 && errno == EINTR) {
    }
    if (n == sizeof e) {
        int status;
        ::waitpid(pid, &status, 0);
        return make_error(Errc::usage, fmt::format("cannot run {}: {}", argv[0], std::strerror(e)), e);
    }
    return pid;
}

int status_to_exit_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return exit_code::failure;
}

}  // namespace

int run_run(const RunOptions& opt, std::ostream& err) {
    // Reports never go to the program's standard output: stderr, or --output.
    auto output = Output::open(opt.out.output, err, "standard error", err);
    if (!output) return exit_code::failure;

    // Block the forwarded signals before the child exists: none is lost.
    sigset_t set, old;
    sigemptyset(&set);
    for (int s : forwarded) sigaddset(&set, s);
    ::sigprocmask(SIG_BLOCK, &set, &old);
    auto child = start_child(opt.command);
    if (!child) {
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        fmt::print(err, "stallwatch: {}\n", child.error().message);
        return child.error().sys_errno == ENOENT ? 127 : 126;
    }
    pid_t pid = *child;

    auto writer = report::make_writer(opt.out.format, output->stream(),
                                      report::WriterOptions{opt.out.full, opt.out.max_event_bytes});
    WatchOptions w;
    w.timing = opt.timing;
    w.sampler = sampler_options(opt.out);
    w.wait_for_table = true;
    auto on_signal = [pid](int sig, bool from_terminal) {
        // Ctrl-C and friends from the terminal reach the child directly (same
        // process group): passing them on would deliver them twice.
        if (!from_terminal) ::kill(pid, sig);
        return false;  // the watch ends when the child does
    };
    auto result = watch(pid, w, *writer, err, forwarded, on_signal);
    writer->finish();
    int seen = result.error && result.error->sys_errno ? result.error->sys_errno : errno;

    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    if (!output->stream())  // the program ran on, unwatched: say where the reports did not go
        fmt::print(err, "stallwatch: {}\n", output->write_error(seen));
    else if (result.end == WatchEnd::failed && result.error)
        fmt::print(err, "stallwatch: {}\n", result.error->message);
    return status_to_exit_code(status);
}

}  // namespace sw::cli
