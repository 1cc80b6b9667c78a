#include "cli/sampler.hpp"

#include <sys/syscall.h>
#include <time.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <span>

#include "report/writer.hpp"

namespace sw::cli {

SamplerOptions sampler_options(const OutputOptions& out) {
    SamplerOptions s;
    s.max_frames = out.max_frames;
    s.symbols.debuginfod = out.debuginfod;
    s.holder_stacks = out.holder_stacks;
    s.text_folded = out.format == report::Format::text && !out.full;
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

std::vector<std::string> Sampler::take_notices() {
    std::lock_guard lock(symbolizer_mutex_);
    return symbolizer_.take_notices();
}

void Sampler::prewarm() {
    proc::prewarm_capture(opt_.capture);
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
    auto c = capture(event, still_stalled);
    if (!c) return std::nullopt;
    auto frames = symbolize(*c);
    return finish(std::move(*c), std::move(frames));
}

std::optional<Captured> Sampler::capture(const detect::Event& event, const proc::StillStalled& still_stalled) {
    Captured c;
    report::StallReport& r = c.report;
    r.event = event;
    r.target = target_;
    pid_t tid = event.worker.tid;
    using clock = std::chrono::steady_clock;
    auto mark = clock::now();
    auto lap = [&mark](std::chrono::nanoseconds& into) {
        auto now = clock::now();
        into += now - mark;
        mark = now;
    };
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
        return c;
    }
    lap(phases_.before);
    auto got = process_.capture(tid, *maps, opt_.capture, still_stalled);
    lap(phases_.capture);
    ++phases_.captures;
    if (!got) {
        r.capture_error = got.error().message;
        r.thread_exited = got.error().code == Errc::no_such_process;
        r.capture_denied = got.error().code == Errc::permission_denied;
        return c;
    }
    if (got->dropped) return std::nullopt;
    r.stop_window = got->capture.stopped;
    r.stop_wait = got->capture.stop_wait;
    phases_.stopped += r.stop_window;
    phases_.stop_wait += r.stop_wait;

    // The thread runs again: everything from here costs it nothing. Files
    // are opened with the target's rights, not ours.
    auto as_target = process_.file_access();
    if (auto sig = proc::executable_signature(*maps); sig != unwound_maps_) {
        unwinder_.flush();  // modules came or went since the last unwind
        unwound_maps_ = sig;
    }
    c.raw = unwinder_.unwind(got->capture, opt_.max_frames);
    lap(phases_.unwind);
    r.stopped_early = c.raw.stopped_early;
    c.capture = std::move(got->capture);
    c.capture.stack.bytes = {};  // unwound: the copy is not needed any more
    c.maps = std::move(*maps);
    c.captured = true;
    return c;
}

std::vector<symbolize::Frame> Sampler::symbolize(const Captured& c) {
    if (!c.captured) return {};
    return symbolize_raw(c.raw, &c.maps);
}

report::StallReport Sampler::finish(Captured c, std::vector<symbolize::Frame> frames) {
    if (!c.captured) return std::move(c.report);
    const auto start = std::chrono::steady_clock::now();
    c.report.frames = std::move(frames);
    follow_locks(c.report, c.capture, c.maps);
    phases_.locks += std::chrono::steady_clock::now() - start;
    return std::move(c.report);
}

std::vector<symbolize::Frame> Sampler::symbolize_raw(const unwind::RawStack& raw,
                                                     const std::vector<proc::Mapping>* maps) {
    std::lock_guard lock(symbolizer_mutex_);
    const auto start = std::chrono::steady_clock::now();
    auto as_target = process_.file_access();  // on this thread: file identities are per thread
    if (maps) symbolizer_.refresh(*maps);
    std::vector<symbolize::Frame> frames;
    if (!opt_.text_folded)
        frames = symbolizer_.symbolize(raw);
    else
        frames = symbolizer_.symbolize(raw, report::text_detail(symbolizer_.modules(raw), target_.executable));
    phases_.symbolize += std::chrono::steady_clock::now() - start;
    return frames;
}

void Sampler::begin_round(const std::vector<table::Worker>& workers) {
    workers_ = workers;
    holders_.clear();
}

std::optional<pid_t> Sampler::thread_of_target(pid_t id_in_target) {
    const pid_t tid = process_.tid_from_namespace(id_in_target);
    return tid > 0 ? std::optional<pid_t>(tid) : std::nullopt;
}

namespace {

// Why a lock's holder is not stopped for its stack, "" when it may be. A
// stop is made only where it is known to change nothing for the thread
// (docs/capture.md 4.5): running in user space, or in a call the kernel
// executes again after the stop (a futex wait, a sleep, a wait for a child,
// poll and select, a read or write of a file that is not a socket). A
// socket call may carry a timeout that a stop turns into EINTR; a thread in
// uninterruptible sleep would not stop at all.
std::string holder_not_stopped(proc::Target& process, const proc::ThreadState& st) {
    if (st.state == 'D') return "not stopped: it is in uninterruptible sleep (disk or network I/O)";
    switch (st.syscall_nr) {
    case -1:  // running, or about to: no call to disturb
    case SYS_futex:
    case SYS_nanosleep:
    case SYS_clock_nanosleep:
    case SYS_pause:
    case SYS_poll:
    case SYS_ppoll:
    case SYS_select:
    case SYS_pselect6:
    case SYS_wait4:
    case SYS_waitid:
    case SYS_sched_yield:
    case SYS_restart_syscall:
        return {};
    case SYS_read:
    case SYS_write:
    case SYS_readv:
    case SYS_writev:
    case SYS_pread64:
    case SYS_pwrite64: {
        auto file = process.fd_target(static_cast<int>(st.syscall_arg0));
        if (file && file->rfind("socket:", 0) != 0) return {};
        break;
    }
    default:
        break;
    }
    return fmt::format("not stopped: it is in {}, which a stop might interrupt", proc::syscall_name(st.syscall_nr));
}

}  // namespace

// The holder of a lock: named, and (unless the options say not to, or a
// stop could disturb it) captured once, with the same guarantees as the
// stalled thread's own capture.
report::LockHolder Sampler::holder(pid_t tid, const std::vector<proc::Mapping>& maps) {
    if (auto it = holders_.find(tid); it != holders_.end()) return it->second;
    report::LockHolder h;
    h.tid = tid;
    h.ns_tid = process_.tid_in_namespace(tid);
    const auto worker =
        std::find_if(workers_.begin(), workers_.end(), [tid](const table::Worker& w) { return w.tid == tid; });
    if (worker != workers_.end()) {
        h.name = worker->name;
        h.registered = true;
    } else {
        h.name = process_.thread_name(tid);
    }
    auto state = process_.thread_state(tid);
    if (!opt_.holder_stacks) {
        h.capture_error = "not stopped (--no-holder-stacks)";
    } else if (worker != workers_.end() && worker->state == table::WorkerState::parked) {
        h.capture_error = "not stopped: it is a parked worker (waiting for work)";
    } else if (auto why = holder_not_stopped(process_, state); !why.empty()) {
        h.capture_error = why;
    } else if (auto got = process_.capture(tid, maps, opt_.capture, [] { return true; }); !got) {
        h.capture_error = got.error().message;
    } else {
        h.stop_window = got->capture.stopped;
        auto as_target = process_.file_access();
        auto raw = unwinder_.unwind(got->capture, opt_.max_frames);
        h.frames = symbolize_raw(raw, nullptr);
        h.stopped_early = raw.stopped_early;
        h.waits = report::analyze_wait(got->capture.regs, h.frames, target_.executable,
                                       std::span(got->capture.lock_bytes.data(), got->capture.lock_read),
                                       h.ns_tid > 0 ? h.ns_tid : tid,
                                       [this](pid_t id) { return thread_of_target(id); });
    }
    holders_[tid] = h;
    return h;
}

// A cycle found from captures taken one after the other: each link is
// checked again now, and all must hold (each thread still waits on the
// same futex, each mutex still names the same owner). A real deadlock does;
// a chain that moved on while it was followed does not.
bool Sampler::cycle_holds(const report::Deadlock& d) {
    for (const auto& link : d.cycle) {
        // A thread let go a moment ago (its own capture) runs again before it
        // is back in its futex wait: /proc says "running" meanwhile. Give it
        // up to 100 ms to get back there; any other call says it moved on.
        auto st = process_.thread_state(link.tid);
        for (int tries = 0; st.syscall_nr < 0 && tries < 100; ++tries) {
            timespec ms{0, 1'000'000};
            ::nanosleep(&ms, nullptr);
            st = process_.thread_state(link.tid);
        }
        if (st.syscall_nr != SYS_futex || st.syscall_arg0 != link.waits.address.value()) return false;
        std::int32_t owner = 0;
        if (!process_.memory().read_value(link.waits.address + 8, owner) || owner != link.waits.owner_in_memory)
            return false;
    }
    return true;
}

// What the thread waits on, who holds it, what that one waits on ... until
// an owner is unknown, the chain closes (a deadlock) or it grows too long.
void Sampler::follow_locks(report::StallReport& r, const proc::ThreadCapture& capture,
                           const std::vector<proc::Mapping>& maps) {
    auto as_target = process_.file_access();
    const pid_t self = r.event.worker.tid;
    r.lock = report::analyze_wait(capture.regs, r.frames, target_.executable,
                                  std::span(capture.lock_bytes.data(), capture.lock_read),
                                  r.event.worker.ns_tid > 0 ? r.event.worker.ns_tid : self,
                                  [this](pid_t id) { return thread_of_target(id); });
    std::vector<pid_t> chain{self};
    pid_t owner = r.lock ? r.lock->owner : 0;
    while (owner > 0) {
        if (auto seen = std::find(chain.begin(), chain.end(), owner); seen != chain.end()) {
            // Each thread from `seen` on waits for a mutex the next holds,
            // and the last for one `owner` holds: a cycle.
            report::Deadlock d;
            for (auto k = static_cast<std::size_t>(seen - chain.begin()); k < chain.size(); ++k) {
                report::DeadlockLink link;
                if (k == 0) {
                    link.tid = self;
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
            if (cycle_holds(d))
                r.deadlock = std::move(d);
            else
                r.chain_end = "the chain moved on while it was followed: not a deadlock";
            break;
        }
        if (r.holders.size() == SamplerOptions::max_holders) {
            r.chain_end = fmt::format("more than {} holders: not followed further", SamplerOptions::max_holders);
            break;
        }
        chain.push_back(owner);
        r.holders.push_back(holder(owner, maps));
        const auto& last = r.holders.back();
        owner = last.waits ? last.waits->owner : 0;
    }
}

}  // namespace sw::cli
