#include "cli/sampler.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>

#include "proc/fs_identity.hpp"
#include "proc/maps.hpp"
#include "proc/process.hpp"
#include "proc/thread_info.hpp"
#include "report/writer.hpp"

namespace sw::cli {

SamplerOptions sampler_options(const OutputOptions& out) {
    SamplerOptions s;
    s.max_frames = out.max_frames;
    s.symbols.debuginfod = out.debuginfod;
    return s;
}

report::Target describe_target(pid_t pid, std::string app_name) {
    report::Target t;
    t.pid = pid;
    t.process_name = proc::comm(pid);
    t.app_name = std::move(app_name);
    char buf[4096];
    ssize_t n = ::readlink(fmt::format("/proc/{}/exe", pid).c_str(), buf, sizeof buf - 1);
    if (n > 0) t.executable.assign(buf, static_cast<std::size_t>(n));
    return t;
}

Sampler::Sampler(report::Target target, SamplerOptions opt)
    : target_(std::move(target)), opt_(opt), unwinder_(target_.pid), symbolizer_(target_.pid, opt.symbols) {}

void Sampler::prewarm() {
    proc::FsIdentity as_target(target_.pid);
    auto maps = proc::read_maps(target_.pid);
    if (!maps) return;
    symbolizer_.refresh(*maps);
    unwind::RawStack probe;
    for (const auto& m : *maps)
        if (m.executable && !m.path.empty() && m.path[0] == '/') probe.frames.push_back({m.start, true});
    (void)symbolizer_.symbolize(probe);
}

std::optional<report::StallReport> Sampler::sample(const detect::Event& event,
                                                   const proc::StillStalled& still_stalled) {
    report::StallReport r;
    r.event = event;
    r.target = target_;
    pid_t tid = event.worker.tid;
    // Before the stop: a sleeping thread reports restart_syscall once stopped.
    r.thread = proc::read_thread_state(target_.pid, tid);
    if (r.thread.syscall_nr == SYS_restart_syscall) {
        if (auto it = last_syscall_.find(tid); it != last_syscall_.end()) {
            r.thread.syscall_nr = it->second.syscall_nr;
            r.thread.wchan = it->second.wchan;
        }
    } else if (r.thread.syscall_nr >= 0) {
        last_syscall_[tid] = r.thread;
    }
    r.unix_ns = report::unix_now_ns();

    auto maps = proc::read_maps(target_.pid);
    if (!maps) {
        r.capture_error = maps.error().message;
        r.capture_denied = maps.error().code == Errc::permission_denied;
        return r;
    }
    auto got = proc::capture_thread(target_.pid, tid, *maps, opt_.capture, still_stalled);
    if (!got) {
        r.capture_error = got.error().message;
        r.thread_exited = got.error().code == Errc::no_such_process;
        r.capture_denied = got.error().code == Errc::permission_denied;
        return r;
    }
    if (got->dropped) return std::nullopt;
    r.stop_window = got->capture.stopped;

    // The thread runs again: everything from here costs it nothing. Files
    // are opened with the target's rights, not ours.
    proc::FsIdentity as_target(target_.pid);
    if (symbolizer_.refresh(*maps)) unwinder_.flush();
    auto raw = unwinder_.unwind(got->capture, opt_.max_frames);
    r.frames = symbolizer_.symbolize(raw);
    r.stopped_early = raw.stopped_early;
    return r;
}

}  // namespace sw::cli
