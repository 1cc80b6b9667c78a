#include "cli/sampler.hpp"

#include <sys/syscall.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "report/writer.hpp"

namespace sw::cli {

SamplerOptions sampler_options(const OutputOptions& out) {
    SamplerOptions s;
    s.max_frames = out.max_frames;
    s.symbols.debuginfod = out.debuginfod;
    s.holder_stacks = out.holder_stacks;
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
    follow_locks(r, got->capture.regs, *maps);
    return r;
}

void Sampler::begin_round(const std::vector<table::Worker>& workers) {
    worker_names_.clear();
    for (const auto& w : workers) worker_names_[w.tid] = w.name;
    holders_.clear();
}

std::optional<pid_t> Sampler::thread_of_target(pid_t id_in_target) {
    if (id_in_target <= 0) return std::nullopt;
    if (process_.pid_in_namespace() == 0)  // it sees the ids we see
        return process_.has_thread(id_in_target) ? std::optional<pid_t>(id_in_target) : std::nullopt;
    auto tids = process_.threads();
    if (!tids) return std::nullopt;
    for (pid_t tid : *tids)
        if (process_.tid_in_namespace(tid) == id_in_target) return tid;
    return std::nullopt;
}

namespace {

// Calls that a stop ends with EINTR (docs/capture.md, 4.5): a holder
// waiting in one is named, never stopped.
bool stop_interrupts(long syscall_nr) {
    switch (syscall_nr) {
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
    case SYS_epoll_pwait2:
    case SYS_rt_sigtimedwait:
    case SYS_semtimedop:
        return true;
    default:
        return false;
    }
}

}  // namespace

// The holder of a lock: named, and (unless the options say not to, or a
// stop would disturb it) captured once, with the same guarantees as the
// stalled thread's own capture.
report::LockHolder Sampler::holder(pid_t tid, const std::vector<proc::Mapping>& maps) {
    if (auto it = holders_.find(tid); it != holders_.end()) return it->second;
    report::LockHolder h;
    h.tid = tid;
    h.ns_tid = process_.tid_in_namespace(tid);
    if (auto it = worker_names_.find(tid); it != worker_names_.end()) {
        h.name = it->second;
        h.registered = true;
    } else {
        h.name = process_.thread_name(tid);
    }
    auto state = process_.thread_state(tid);
    if (!opt_.holder_stacks) {
        h.capture_error = "not stopped (--no-holder-stacks)";
    } else if (stop_interrupts(state.syscall_nr)) {
        h.capture_error = fmt::format("not stopped: it waits in {}, which a stop would interrupt",
                                      proc::syscall_name(state.syscall_nr));
    } else if (auto got = process_.capture(tid, maps, opt_.capture, [] { return true; }); !got) {
        h.capture_error = got.error().message;
    } else {
        h.stop_window = got->capture.stopped;
        auto as_target = process_.file_access();
        auto raw = unwinder_.unwind(got->capture, opt_.max_frames);
        h.frames = symbolizer_.symbolize(raw);
        h.stopped_early = raw.stopped_early;
        h.waits = report::analyze_wait(got->capture.regs, h.frames, target_.executable, process_.memory(),
                                       [this](pid_t id) { return thread_of_target(id); });
    }
    holders_[tid] = h;
    return h;
}

// What the thread waits on, who holds it, what that one waits on ... until
// an owner is unknown, the chain closes (a deadlock) or it grows too long.
void Sampler::follow_locks(report::StallReport& r, const proc::Registers& regs,
                           const std::vector<proc::Mapping>& maps) {
    constexpr std::size_t max_chain = 16;
    auto as_target = process_.file_access();
    r.lock = report::analyze_wait(regs, r.frames, target_.executable, process_.memory(),
                                  [this](pid_t id) { return thread_of_target(id); });
    std::vector<pid_t> chain{r.event.worker.tid};
    pid_t owner = r.lock ? r.lock->owner : 0;
    while (owner > 0 && r.holders.size() < max_chain) {
        if (auto seen = std::find(chain.begin(), chain.end(), owner); seen != chain.end()) {
            // Each thread from `seen` on waits for a mutex the next holds,
            // and the last for one `owner` holds: a cycle.
            report::Deadlock d;
            for (auto k = static_cast<std::size_t>(seen - chain.begin()); k < chain.size(); ++k) {
                report::DeadlockLink link;
                if (k == 0) {
                    link.tid = r.event.worker.tid;
                    link.ns_tid = r.event.worker.ns_tid;
                    link.name = r.event.worker.name;
                    link.registered = r.registered;
                    link.waits = *r.lock;
                    link.at = report::application_frame_label(r.frames, target_.executable);
                } else {
                    const auto& h = r.holders[k - 1];
                    link.tid = h.tid;
                    link.ns_tid = h.ns_tid;
                    link.name = h.name;
                    link.registered = h.registered;
                    link.waits = *h.waits;
                    link.at = report::application_frame_label(h.frames, target_.executable);
                }
                d.cycle.push_back(std::move(link));
            }
            r.deadlock = std::move(d);
            break;
        }
        chain.push_back(owner);
        r.holders.push_back(holder(owner, maps));
        const auto& last = r.holders.back();
        owner = last.waits ? last.waits->owner : 0;
    }
}

}  // namespace sw::cli
