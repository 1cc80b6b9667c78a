#include "cli/sampler.hpp"

#include <sys/syscall.h>

#include <chrono>

#include "report/writer.hpp"

namespace sw::cli {

SamplerOptions sampler_options(const OutputOptions& out) {
    SamplerOptions s;
    s.max_frames = out.max_frames;
    s.symbols.debuginfod = out.debuginfod;
    return s;
}

report::Target describe_target(proc::Target& process, std::string app_name) {
    report::Target t;
    t.pid = process.pid();
    t.process_name = process.name();
    t.app_name = std::move(app_name);
    t.executable = process.executable();
    t.pid_in_namespace = process.pid_in_namespace();
    t.cgroup = process.cgroup();
    return t;
}

Sampler::Sampler(proc::Target& process, report::Target target, SamplerOptions opt)
    : process_(process), target_(std::move(target)), opt_(opt), unwinder_(process), symbolizer_(process, opt.symbols) {}

std::vector<std::string> Sampler::take_notices() { return symbolizer_.take_notices(); }

void Sampler::prewarm() {
    auto as_target = process_.file_access();
    auto maps = process_.mappings();
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
    r.thread = process_.thread_state(tid);
    if (r.thread.syscall_nr == SYS_restart_syscall) {
        if (auto it = last_syscall_.find(tid); it != last_syscall_.end()) {
            r.thread.syscall_nr = it->second.syscall_nr;
            r.thread.wchan = it->second.wchan;
        }
    } else if (r.thread.syscall_nr >= 0) {
        last_syscall_[tid] = r.thread;
    }
    r.unix_ns = report::unix_now_ns();

    auto maps = process_.mappings();
    if (!maps) {
        r.capture_error = maps.error().message;
        r.capture_denied = maps.error().code == Errc::permission_denied;
        return r;
    }
    auto got = process_.capture(tid, *maps, opt_.capture, still_stalled);
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
    auto as_target = process_.file_access();
    if (symbolizer_.refresh(*maps)) unwinder_.flush();
    auto raw = unwinder_.unwind(got->capture, opt_.max_frames);
    r.frames = symbolizer_.symbolize(raw);
    r.stopped_early = raw.stopped_early;
    return r;
}

}  // namespace sw::cli
