// `stallwatch dump PID`: the stack of every worker (or, with --all-threads,
// every thread) right now, stopping one thread at a time, each only for its
// own capture window.
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <string_view>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/sampler.hpp"
#include "cli/symbolize_ahead.hpp"
#include "common/text.hpp"
#include "proc/process.hpp"
#include "proc/target.hpp"

namespace sw::cli {
namespace {

struct Thread {
    table::Worker worker;  // for a plain thread: tid and comm as name
    bool registered = false;
};

struct Failure {
    pid_t tid = 0;
    std::string message;
    bool denied = false;  // not permitted, for a thread of the process itself
};

using Clock = std::chrono::steady_clock;

double ms(std::chrono::nanoseconds d) { return std::chrono::duration<double, std::milli>(d).count(); }

// STALLWATCH_DUMP_PHASES=1: where this dump's time went, on standard error
// (docs/capture.md section 5.2). Symbolization runs on a thread of its own
// (SymbolizeAhead), overlapping the captures: `waited` is the part of it
// that the main thread waited for.
void print_phases(std::ostream& err, Clock::time_point begin, Clock::time_point sampling, Clock::time_point end,
                  const SamplerPhases& p, std::chrono::nanoseconds waited) {
    const char* v = std::getenv("STALLWATCH_DUMP_PHASES");
    if (!v || !*v || std::string_view(v) == "0") return;
    auto on_main = p.before + p.capture + p.unwind + p.locks + waited;
    fmt::print(err,
               "stallwatch: phases: setup {:.2f} ms; {} captures: /proc before {:.2f} ms, capture {:.2f} ms "
               "(waiting for the stops {:.2f} ms, stopped {:.2f} ms), unwind {:.2f} ms, locks {:.2f} ms; "
               "symbolize {:.2f} ms on its own thread, of which waited for {:.2f} ms; writing and the rest "
               "{:.2f} ms; total {:.2f} ms from main\n",
               ms(sampling - begin), p.captures, ms(p.before), ms(p.capture), ms(p.stop_wait), ms(p.stopped),
               ms(p.unwind), ms(p.locks), ms(p.symbolize), ms(waited), ms(end - sampling - on_main),
               ms(end - begin));
}

}  // namespace

int run_dump(const DumpOptions& opt, std::ostream& out, std::ostream& err) {
    const auto begin = Clock::now();
    auto fail = [&](const Error& e) {
        fmt::print(err, "stallwatch: {}\n", e.message);
        return exit_code_for(e.code);
    };
    if (auto st = proc::check_process(opt.pid); !st) return fail(st.error());

    auto process = proc::open_target(opt.pid);

    // The table: required for workers; optional (names) with --all-threads.
    // Kept open: each worker's state and progress are read again at its own
    // capture, since the snapshot is older than every capture but the first.
    std::optional<proc::TableFile> table_file;
    std::optional<table::Snapshot> snap;
    if (auto file = process->open_table(); !file) {
        if (!opt.all_threads) return fail(file.error());  // --all-threads needs no table
    } else if (auto s = file->read(); s) {
        snap = std::move(*s);
        table_file.emplace(std::move(*file));
    } else if (!opt.all_threads) {
        return fail(s.error());
    }

    std::vector<Thread> threads;
    if (opt.all_threads) {
        auto tids = process->threads();
        if (!tids) return fail(tids.error());
        for (pid_t tid : *tids) {
            Thread t;
            t.worker.tid = tid;
            t.worker.ns_tid = process->tid_in_namespace(tid);
            t.worker.name = process->thread_name(tid);
            if (snap)
                for (const auto& w : snap->workers)
                    if (w.tid == tid) {
                        t.worker = w;
                        t.registered = true;
                    }
            threads.push_back(std::move(t));
        }
    } else {
        // A hostile table may name one thread in many slots: stop it once.
        std::set<pid_t> seen;
        for (const auto& w : snap->workers)
            if (seen.insert(w.tid).second) threads.push_back(Thread{w, true});
        if (threads.empty()) {
            fmt::print(err, "stallwatch: pid {} has a table but no registered worker (try --all-threads)\n", opt.pid);
            return exit_code::ok;
        }
    }

    auto output = Output::open(opt.out.output, out, "standard output", err);
    if (!output) return exit_code::failure;
    auto writer = report::make_writer(opt.out.format, output->stream(),
                                      writer_options(opt.out, STDOUT_FILENO));
    auto cannot_write = [&](int seen) {
        fmt::print(err, "stallwatch: {}\n", output->write_error(seen));
        return exit_code::failure;
    };
    Sampler sampler(*process, describe_target(*process, snap ? snap->header.app_name : std::string{}),
                    sampler_options(opt.out));

    proc::prewarm_capture(sampler_options(opt.out).capture);
    if (snap) sampler.begin_round(snap->workers);
    const auto sampling = Clock::now();
    std::set<std::string> deadlocks_said;
    std::size_t sampled = 0;
    std::vector<Failure> failures;
    // Each thread's report, in order, once its frames are named on the
    // symbolizing thread; false when the output cannot be written.
    SymbolizeAhead ahead(sampler);
    auto write_ready = [&](bool wait) {
        while (!ahead.empty() && (wait || ahead.front_ready())) {
            auto [c, frames] = ahead.take();
            auto r = sampler.finish(std::move(c), std::move(frames));
            if (r.thread_exited) continue;  // gone since we listed it: nothing to show
            if (!r.capture_error.empty()) {
                // A slot naming another process's thread is refused as "not
                // permitted" too, but says nothing of our rights to this one.
                bool ours = process->has_thread(r.event.worker.tid);
                failures.push_back(Failure{r.event.worker.tid, r.capture_error, r.capture_denied && ours});
                continue;
            }
            writer->stall(r);
            if (r.deadlock && deadlocks_said.insert(r.deadlock->key()).second)
                writer->deadlock(sampler.target(), *r.deadlock);
            for (const auto& n : sampler.take_notices()) fmt::print(err, "stallwatch: {}\n", n);
            if (!writer->good()) return false;
            ++sampled;
        }
        return true;
    };
    for (const auto& t : threads) {
        detect::Event e;
        e.kind = detect::EventKind::sample;
        e.worker = t.worker;
        // Read while the thread is stopped, so state and progress go with
        // the stack. A worker that unregistered meanwhile is not one any more.
        std::optional<proc::TableFile::SlotNow> now;
        proc::StillStalled at_capture;
        if (t.registered && table_file)
            at_capture = proc::StillStalled(
                [&](std::span<const std::byte> in_window) {
                    now = in_window.empty() ? table_file->read_slot(t.worker.slot, t.worker.generation)
                                            : proc::TableFile::slot_from_bytes(in_window, t.worker.generation);
                    return now.has_value();
                },
                table_file->slot_location(t.worker.slot));
        // A parked worker waits for work: its stack is its wait, and a
        // stop would make some waits return EINTR (docs/capture.md 4.5).
        // Without --all-threads it is shown as parked, from /proc alone.
        if (t.registered && table_file && !opt.all_threads) {
            auto slot = table_file->read_slot(t.worker.slot, t.worker.generation);
            if (!slot) continue;  // unregistered since the snapshot
            if (slot->state == table::WorkerState::parked) {
                Captured parked;
                report::StallReport& r = parked.report;
                r.event = e;
                r.event.worker.state = slot->state;
                r.event.worker.progress = slot->progress;
                r.target = sampler.target();
                r.unix_ns = report::unix_now_ns();
                r.thread = process->thread_state(t.worker.tid);
                r.not_stopped = "parked";
                r.registered = true;
                ahead.push(std::move(parked));
                if (!write_ready(false)) return cannot_write(errno);
                continue;
            }
        }
        auto c = sampler.capture(e, at_capture);
        if (!c) continue;  // unregistered during its capture
        if (now) {
            c->report.event.worker.state = now->state;
            c->report.event.worker.progress = now->progress;
        }
        c->report.registered = t.registered;
        ahead.push(std::move(*c));
        if (!write_ready(false)) return cannot_write(errno);  // stop no more threads for nothing
    }
    if (!write_ready(true)) return cannot_write(errno);
    writer->finish();
    print_phases(err, begin, sampling, Clock::now(), sampler.phases(), ahead.waited());
    if (!writer->good()) return cannot_write(errno);
    // Not permitted to sample any thread (another user's process, Yama, a
    // debugger on every thread): one line and exit 4, as the other commands,
    // not the same sentence once per thread.
    if (sampled == 0 && !failures.empty() &&
        std::all_of(failures.begin(), failures.end(), [](const Failure& f) { return f.denied; })) {
        const auto& first = failures.front().message;
        bool alike = std::all_of(failures.begin(), failures.end(), [&](const Failure& f) { return f.message == first; });
        if (alike || failures.size() == 1)
            fmt::print(err, "stallwatch: {}\n", first);
        else
            fmt::print(err, "stallwatch: {} (nor could the other {} thread(s) of pid {} be traced)\n", first,
                       failures.size() - 1, opt.pid);
        return exit_code::permission_denied;
    }
    // Like eu-stack: 0 when every thread was shown, 1 when some could not be.
    for (const auto& f : failures) fmt::print(err, "stallwatch: thread {}: {}\n", f.tid, f.message);
    return failures.empty() ? exit_code::ok : exit_code::failure;
}

}  // namespace sw::cli
