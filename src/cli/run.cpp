// `stallwatch run [options] -- PROGRAM ARGS...`: start the program as our
// child (so Yama's ptrace_scope=1 allows us to trace it) and watch it from
// its first moment; pass signals on; exit with its status. With --preload,
// the program runs with libstallwatch-preload.so in LD_PRELOAD, which makes
// its event loops watchable with no change to it (docs/preload.md).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/watch.hpp"
#include "common/unique_fd.hpp"
#include "proc/program.hpp"

namespace sw::cli {
namespace {

const std::vector<int> forwarded = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

constexpr const char* preload_name = "libstallwatch-preload.so";

// Where libstallwatch-preload.so is: $STALLWATCH_PRELOAD_LIBRARY when set,
// else beside our own executable (a build tree), else where the package
// puts it relative to our executable (an unpacked or relocated install),
// else where it is installed.
Result<std::string> find_preload_library() {
    if (const char* env = std::getenv("STALLWATCH_PRELOAD_LIBRARY"); env && *env) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(env, ec))
            return make_error(Errc::usage, fmt::format("STALLWATCH_PRELOAD_LIBRARY={}: no such file", env));
        return std::filesystem::absolute(env, ec).string();
    }
    std::vector<std::string> tried;
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        tried.push_back((self.parent_path() / preload_name).string());
        tried.push_back((self.parent_path() / STALLWATCH_PRELOAD_FROM_BINDIR / preload_name).lexically_normal().string());
    }
    tried.push_back(STALLWATCH_PRELOAD_INSTALLED);
    for (const auto& p : tried)
        if (std::filesystem::is_regular_file(p, ec)) return p;
    std::string where;
    for (const auto& p : tried) where += (where.empty() ? "" : ", ") + p;
    return make_error(Errc::usage, fmt::format("cannot find {} (looked for {}); set STALLWATCH_PRELOAD_LIBRARY "
                                               "to its path",
                                               preload_name, where));
}

// The environment for the program: ours, with `library` added at the end
// of LD_PRELOAD (after the user's own, which may need to come first, as
// AddressSanitizer's runtime does), unless it is there already.
std::vector<std::string> environment_with_preload(const std::string& library) {
    std::vector<std::string> env;
    bool seen = false;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        if (kv.rfind("LD_PRELOAD=", 0) == 0) {
            seen = true;
            std::string list = kv.substr(11);
            bool present = false;
            std::size_t start = 0;
            while (start <= list.size()) {
                std::size_t end = list.find_first_of(": ", start);
                if (end == std::string::npos) end = list.size();
                if (list.substr(start, end - start) == library) present = true;
                start = end + 1;
            }
            if (!present) kv = list.empty() ? "LD_PRELOAD=" + library : kv + ":" + library;
        }
        env.push_back(std::move(kv));
    }
    if (!seen) env.push_back("LD_PRELOAD=" + library);
    return env;
}

// Why a program run with the preload shows no table: what its file says
// (statically linked, set-user-ID…), else whether the library is in its
// memory (looked at while it runs: an ended process cannot be read).
class PreloadExplainer final : public NoTableExplainer {
public:
    PreloadExplainer(std::string program, proc::ProgramFacts facts)
        : program_(std::move(program)), facts_(std::move(facts)) {}

    void look(proc::Target& target) override {
        auto now = std::chrono::steady_clock::now();
        if (now < next_look_) return;
        next_look_ = now + std::chrono::milliseconds(100);
        auto maps = target.mappings();
        if (!maps || maps->empty()) return;  // ended, or not readable: keep what we knew
        looked_ = true;
        loaded_ = std::any_of(maps->begin(), maps->end(), [](const proc::Mapping& m) {
            return std::filesystem::path(proc::without_deleted(m.path)).filename() == preload_name;
        });
    }

    std::string reason() override {
        if (const char* d = std::getenv("STALLWATCH_DISABLE"); d && *d && std::strcmp(d, "0") != 0)
            return "STALLWATCH_DISABLE is set in its environment, which turns the preload off";
        if (facts_.statically_linked)
            return fmt::format("{} is statically linked: no dynamic loader runs in it, so LD_PRELOAD cannot "
                               "load {} (docs/preload.md)",
                               program_, preload_name);
        if (!facts_.secure_execution.empty())
            return fmt::format("{} is {}: the dynamic loader runs it in secure-execution mode and ignores "
                               "LD_PRELOAD (docs/preload.md)",
                               program_, facts_.secure_execution);
        std::string waits = "epoll_wait, epoll_pwait, poll, ppoll, select or pselect";
        if (looked_ && !loaded_)
            return fmt::format("{} is not loaded in it (did the program drop LD_PRELOAD from its environment, or "
                               "re-exec itself without it?)",
                               preload_name);
        if (looked_)
            return fmt::format("{} is loaded, but no thread has called {}: a program that waits through raw "
                               "system calls or io_uring (Go's runtime, for one) cannot be seen (docs/preload.md)",
                               preload_name, waits);
        return fmt::format("no thread called {} before it ended", waits);
    }

private:
    std::string program_;
    proc::ProgramFacts facts_;
    bool looked_ = false, loaded_ = false;
    std::chrono::steady_clock::time_point next_look_{};
};

// Starts `argv` with default signal handling (and `env` for its
// environment, when given). Returns the pid, or an errno when exec failed
// (reported back through a close-on-exec pipe).
Result<pid_t> start_child(const std::vector<std::string>& argv, const std::vector<std::string>* env) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return make_error(Errc::io, std::strerror(errno), errno);
    UniqueFd rd(fds[0]), wr(fds[1]);
    std::vector<char*> cargs;
    for (const auto& a : argv) cargs.push_back(const_cast<char*>(a.c_str()));
    cargs.push_back(nullptr);
    std::vector<char*> cenv;
    if (env) {
        for (const auto& kv : *env) cenv.push_back(const_cast<char*>(kv.c_str()));
        cenv.push_back(nullptr);
    }

    pid_t pid = ::fork();
    if (pid < 0) return make_error(Errc::io, fmt::format("fork: {}", std::strerror(errno)), errno);
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int s : forwarded) ::signal(s, SIG_DFL);
        ::signal(SIGPIPE, SIG_DFL);
        if (env)
            ::execvpe(cargs[0], cargs.data(), cenv.data());
        else
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

    std::optional<std::vector<std::string>> env;
    std::shared_ptr<NoTableExplainer> explainer;
    if (opt.preload) {
        auto library = find_preload_library();
        if (!library) {
            fmt::print(err, "stallwatch: {}\n", library.error().message);
            return exit_code::usage;
        }
        env = environment_with_preload(*library);
        std::string program = proc::resolve_program(opt.command.front());
        explainer = std::make_shared<PreloadExplainer>(opt.command.front(), proc::inspect_program(program));
    }

    // Block the forwarded signals before the child exists: none is lost.
    sigset_t set, old;
    sigemptyset(&set);
    for (int s : forwarded) sigaddset(&set, s);
    ::sigprocmask(SIG_BLOCK, &set, &old);
    auto child = start_child(opt.command, env ? &*env : nullptr);
    if (!child) {
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        fmt::print(err, "stallwatch: {}\n", child.error().message);
        return child.error().sys_errno == ENOENT ? 127 : 126;
    }
    pid_t pid = *child;

    auto writer = report::make_writer(opt.out.format, output->stream(),
                                      writer_options(opt.out, STDERR_FILENO));
    WatchOptions w;
    w.timing = opt.timing;
    w.sampler = sampler_options(opt.out);
    w.skip_joined_updates = opt.out.format == report::Format::text;
    w.wait_for_table = true;
    w.explain_no_table = explainer;
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
    else  // the program ended: the closing line of attach
        fmt::print(err, "stallwatch: {}\n", exited_line(pid, result));
    return status_to_exit_code(status);
}

}  // namespace sw::cli
