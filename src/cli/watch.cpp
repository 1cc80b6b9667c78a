#include "cli/watch.hpp"

#include <poll.h>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cli/signals.hpp"
#include "common/duration.hpp"
#include "common/text.hpp"
#include "common/unique_fd.hpp"
#include "proc/capture.hpp"

namespace sw::cli {
namespace {

using Clock = std::chrono::steady_clock;

// The budget of stalls that join an incident without a token of the rate
// limit: each still costs a stop of its thread (and of a lock's holder) and
// a JSON event, so it is bounded too, more loosely than first reports.
constexpr double joined_burst = 64, joined_per_second = 4;

detect::Config detector_config(const WatchTiming& timing) {
    detect::Config cfg;
    cfg.threshold = timing.threshold;
    cfg.interval = timing.interval;
    return cfg;
}

}  // namespace

Watcher::Watcher(proc::Target& process, const WatchOptions& opt, report::Writer& writer, std::ostream& err,
                 Now now)
    : process_(process),
      opt_(opt),
      now_(std::move(now)),
      writer_(writer),
      err_(err),
      target_(describe_target(process, {})),
      cfg_(detector_config(opt.timing)),
      detector_(cfg_) {}

bool Watcher::take_joined_budget(Clock::time_point now) {
    if (joined_budget_at_ == Clock::time_point{}) {
        joined_budget_ = joined_burst;
    } else {
        const double elapsed = std::chrono::duration<double>(now - joined_budget_at_).count();
        joined_budget_ = std::min(joined_burst, joined_budget_ + std::max(0.0, elapsed) * joined_per_second);
    }
    joined_budget_at_ = now;
    if (joined_budget_ < 1.0) return false;
    joined_budget_ -= 1.0;
    return true;
}

// At the end: what the rate limit held back and the stalls still open,
// when the limit held anything back or (except after --once, which ends
// on purpose in the middle of a stall) a stall is open.
void Watcher::summarize_at_exit(bool once) {
    bool held_back = detector_.total_suppressed() > 0 || detector_.waiting() > 0;
    auto s = detector_.summary(now_(), true);
    if (held_back || (!once && s.open > 0)) writer_.summary(target_, s);
}

WatchResult Watcher::fail(Error e) {
    writer_.error(target_, e.message);
    result_.end = WatchEnd::failed;
    result_.error = std::move(e);
    return result_;
}

report::Detached Watcher::detached(std::string_view reason) const {
    return report::Detached{reason,           result_.reports,    result_.withdrawn,
                            result_.passes,   result_.pass_total, result_.pass_max};
}

WatchResult Watcher::end(WatchEnd why, int signal) {
    result_.end = why;
    if (why == WatchEnd::target_exited && !ever_connected_ && !said_no_table_ && opt_.explain_no_table)
        fmt::print(err_, "stallwatch: pid {} ended without a stallwatch table: {}\n", process_.pid(),
                   opt_.explain_no_table->reason());
    if (why == WatchEnd::signal) result_.signal = signal;
    summarize_at_exit(false);
    writer_.detached(target_, detached(why == WatchEnd::signal ? "signal" : "target_exited"));
    return result_;
}

// Opens the table (now, or when it appears under `run`) and says so.
std::optional<Error> Watcher::connect() {
    auto t = process_.open_table();
    if (!t) return std::move(t).error();
    auto snap = t->read();
    if (!snap && snap.error().code != Errc::table_not_ready) return std::move(snap).error();
    target_ = describe_target(process_, snap ? snap->header.app_name : std::string{});
    table_file_ = process_.fd_file(t->fd_number());
    groups_.clear();  // a new table: its groups start afresh
    groups_read_ = false;
    table_.emplace(std::move(*t));
    ever_connected_ = true;
    sampler_.emplace(process_, target_, opt_.sampler);
    sampler_->prewarm();
    say_notices();
    std::size_t workers = snap ? snap->workers.size() : 0;
    fmt::print(err_, "stallwatch: watching pid {} ({}), {} worker(s); threshold {}, interval {}\n", process_.pid(),
               printable(target_.process_name), workers, format_duration(opt_.timing.threshold),
               format_duration(opt_.timing.interval));
    writer_.attached(target_, report::WatchInfo{workers, opt_.timing.threshold, opt_.timing.interval});
    return std::nullopt;
}

// Modules whose frames show no names, and why: once each, on stderr.
void Watcher::say_notices() {
    for (const auto& n : sampler_->take_notices()) fmt::print(err_, "stallwatch: {}\n", n);
}

std::optional<WatchResult> Watcher::start() {
    if (!opt_.wait_for_table)
        if (auto e = connect()) return fail(*e);
    started_ = next_table_look_ = now_();
    return std::nullopt;
}

// Whether the process left the table being watched (an exec closes it:
// MFD_CLOEXEC), and if so says so and starts looking for a new one. True
// when there is no table to read this round.
bool Watcher::left_table() {
    next_table_check_ = now_() + opt_.table_check_every;
    if (!table_ || !table_file_ || process_.fd_file(table_->fd_number()) == table_file_) return false;
    if (process_.exited()) return true;  // the next round says so
    std::string what = fmt::format("pid {} no longer holds the table being watched (it called exec, or "
                                   "closed it); watching for a new one",
                                   process_.pid());
    fmt::print(err_, "stallwatch: {}\n", what);
    writer_.error(target_, what);
    if (detector_.total_suppressed() > 0) writer_.summary(target_, detector_.summary(now_(), true));
    table_.reset();
    sampler_.reset();
    detector_ = detect::Detector(cfg_);
    incidents_ = report::Incidents();
    deadlocks_said_.clear();
    started_ = next_table_look_ = now_();
    said_no_table_ = false;
    return false;
}

std::optional<WatchResult> Watcher::round() {
    if (given_up_) return std::nullopt;
    pid_t pid = process_.pid();
    bool checked = false;
    if (opt_.table_check_every.count() == 0 || now_() >= next_table_check_) {
        checked = true;
        if (left_table()) return std::nullopt;
    }
    if (!table_) {
        // Look often at first (a table appears early in a program's
        // life), then every half second.
        auto now = now_();
        if (now < next_table_look_) return std::nullopt;
        if (now - started_ > std::chrono::seconds(2)) next_table_look_ = now + std::chrono::milliseconds(500);
        auto e = connect();
        if (e && e->code != Errc::no_table && e->code != Errc::table_not_ready) {
            fmt::print(err_, "stallwatch: {}; not watching\n", e->message);
            writer_.error(target_, e->message);
            given_up_ = true;
            return std::nullopt;
        }
        if (!table_) {
            if (opt_.explain_no_table) opt_.explain_no_table->look(process_);
            if (!said_no_table_ && now - started_ > std::chrono::seconds(2) && opt_.explain_no_table) {
                said_no_table_ = true;
                fmt::print(err_, "stallwatch: pid {} has no stallwatch table after 2s: {}; it runs on, watched as "
                                 "soon as one appears\n",
                           pid, opt_.explain_no_table->reason());
            } else if (!said_no_table_ && now - started_ > std::chrono::seconds(2)) {
                said_no_table_ = true;
                fmt::print(err_, "stallwatch: pid {} has no stallwatch table yet (is it linked with the shim and "
                                 "calling stallwatch_init()? an event loop can be run with --preload); it runs on, "
                                 "watched as soon as one appears\n",
                           pid);
            }
            return std::nullopt;
        }
    }
    const auto pass_began = Clock::now();
    auto snap = table_->read();
    if (!snap) {
        if (snap.error().code == Errc::table_not_ready) return std::nullopt;
        if (!opt_.wait_for_table) return fail(std::move(snap).error());
        fmt::print(err_, "stallwatch: {}; not watching any more\n", snap.error().message);
        writer_.error(target_, snap.error().message);
        given_up_ = true;
        return std::nullopt;
    }
    follow_groups(*snap);
    auto now = now_();
    // Asked once per thread per read (a table may name one thread in many
    // slots), and for a rationed few workers only (detect::Config).
    std::vector<std::pair<pid_t, bool>> asked;
    auto frozen = [&](pid_t tid) {
        for (const auto& [t, f] : asked)
            if (t == tid) return f;
        bool f = process_.thread_frozen(tid);
        asked.emplace_back(tid, f);
        return f;
    };
    auto events = detector_.observe(*snap, now, frozen);
    {
        const auto took = Clock::now() - pass_began;
        ++result_.passes;
        result_.pass_total += took;
        result_.pass_max = std::max<std::chrono::nanoseconds>(result_.pass_max, took);
    }
    const bool sampling = std::any_of(events.begin(), events.end(), [](const detect::Event& e) {
        return e.kind == detect::EventKind::stall || e.kind == detect::EventKind::stall_update;
    });
    // Checked less often than every round (the agent): a stale table's
    // workers look stalled, so check before sampling any of them.
    if (!checked && sampling && (left_table() || !table_)) return std::nullopt;
    if (sampling && sampler_) sampler_->begin_round(snap->workers);
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        if (e.kind == detect::EventKind::recovered || e.kind == detect::EventKind::ended) {
            detect::Event closed = e;
            incidents_.close(closed, now);
            writer_.event(target_, closed);
            continue;
        }
        // An update of a stall that joined an incident, for text output:
        // nothing to print (its INCIDENT line says it), so no stop either.
        if (opt_.skip_joined_updates && e.kind == detect::EventKind::stall_update &&
            incidents_.joined(e.episode)) {
            incidents_.went_on(e);
            detector_.refund();
            continue;
        }
        // Every report below that is not written is withdrawn, so that
        // the detector never follows it with an update or a recovery
        // of a stall whose first report nobody saw.
        // The slot is read inside the stop window: from the target's own
        // mapping of the table along with the stack when it has one, else
        // with a pread of our descriptor.
        proc::StillStalled still(
            [&](std::span<const std::byte> in_window) {
                auto slot = in_window.empty() ? table_->read_slot(e.worker.slot, e.worker.generation)
                                             : proc::TableFile::slot_from_bytes(in_window, e.worker.generation);
                return slot && slot->progress == e.worker.progress;
            },
            table_->slot_location(e.worker.slot));
        auto r = sampler_->sample(e, still);
        if (!r) {  // it moved while we looked: not a stall after all
            detector_.withdraw(e.episode);
            ++result_.withdrawn;
            continue;
        }
        if (r->thread_exited) {  // skipped, not fatal
            fmt::print(err_, "stallwatch: worker \"{}\" (tid {}) exited before it could be sampled\n",
                       printable(e.worker.name), e.worker.tid);
            detector_.withdraw(e.episode);
            continue;
        }
        incidents_.place(*r, now);
        // One more worker at a stack already shown prints one line: its
        // first report costs the rate limit nothing.
        if (r->event.kind == detect::EventKind::stall && r->event.joined && take_joined_budget(now))
            detector_.refund();
        writer_.stall(*r);
        if (r->deadlock && deadlocks_said_.insert(r->deadlock->key()).second)
            writer_.deadlock(target_, *r->deadlock);
        say_notices();
        if (!writer_.good())
            return fail(make_error(Errc::io, fmt::format("cannot write the report: {}", std::strerror(errno)), errno));
        ++result_.reports;
        if (opt_.once) {
            for (std::size_t k = i + 1; k < events.size(); ++k)
                if (events[k].kind == detect::EventKind::stall || events[k].kind == detect::EventKind::stall_update)
                    detector_.withdraw(events[k].episode);
            result_.end = WatchEnd::once;
            summarize_at_exit(true);
            writer_.detached(target_, detached("once"));
            return result_;
        }
    }
    for (const auto& news : incidents_.take_news(now)) writer_.incident(target_, news);
    if (auto s = detector_.summary_due(now)) writer_.summary(target_, *s);
    return std::nullopt;
}

// Compensation episodes, from the groups' records (docs/table-format.md,
// section 12): a start when an episode's begin time appears (or the count
// moved on), an end when it goes back to 0. An episode already running at
// the first read is reported as starting then.
void Watcher::follow_groups(const table::Snapshot& snap) {
    if (!snap.groups_consistent) return;  // the next read will tell
    for (const auto& g : snap.groups) {
        GroupSeen& seen = groups_[g.id];
        const GroupSeen before = seen;
        seen.episodes = g.episodes;
        seen.begin_unix_ns = g.episode_begin_unix_ns;
        seen.peak = g.extra_threads_peak;
        if (groups_read_ && before.episodes == g.episodes && before.begin_unix_ns == g.episode_begin_unix_ns)
            continue;
        report::CompensationEvent e;
        e.group = g.name;
        e.threshold_ms = g.threshold_ms;
        e.extra_threads = g.extra_threads;
        auto end_of = [&](std::uint64_t episode, std::uint64_t begin, std::uint32_t peak) {
            report::CompensationEvent end = e;
            end.begins = false;
            end.episode = episode;
            end.extra_threads_peak = peak;
            end.begin_unix_ns = begin;
            const std::uint64_t now = report::unix_now_ns();
            end.duration_ms = now > begin ? static_cast<double>(now - begin) / 1e6 : 0.0;
            writer_.compensation(target_, end);
        };
        // An episode this monitor saw begin has ended (or a newer one replaced it).
        if (groups_read_ && before.begin_unix_ns != 0 &&
            (g.episode_begin_unix_ns == 0 || g.episodes != before.episodes))
            end_of(before.episodes, before.begin_unix_ns,
                   g.episodes == before.episodes ? g.extra_threads_peak : before.peak);
        const std::uint64_t begun_unseen =
            groups_read_ && g.episodes > before.episodes ? g.episodes - before.episodes : 0;
        if (g.episode_begin_unix_ns != 0 && (!groups_read_ || g.episodes != before.episodes || before.begin_unix_ns == 0)) {
            e.begins = true;
            e.episode = g.episodes;
            e.extra_threads_peak = g.extra_threads_peak;
            e.begin_unix_ns = g.episode_begin_unix_ns;
            writer_.compensation(target_, e);
            if (begun_unseen > 1)  // others came and went between two reads
                fmt::print(err_, "stallwatch: group \"{}\" of pid {}: {} compensation episode(s) began and ended "
                                 "between two reads\n",
                           printable(g.name), target_.pid, begun_unseen - 1);
        } else if (begun_unseen > 0 && g.episode_begin_unix_ns == 0) {
            fmt::print(err_, "stallwatch: group \"{}\" of pid {}: {} compensation episode(s) began and ended "
                             "between two reads\n",
                       printable(g.name), target_.pid, begun_unseen);
        }
    }
    groups_read_ = true;
}

std::string withdrawn_note(const WatchResult& r) {
    if (r.withdrawn == 0) return {};
    return fmt::format(", {} withdrawn (the worker moved on while it was being sampled)", r.withdrawn);
}

std::string exited_line(pid_t pid, const WatchResult& r) {
    return fmt::format("pid {} exited; {} stall report(s) made{}", pid, r.reports, withdrawn_note(r));
}

WatchResult watch(pid_t pid, const WatchOptions& opt, report::Writer& writer, std::ostream& err,
                  const std::vector<int>& signals, const SignalHandler& on_signal) {
    auto process = proc::open_target(pid);
    return watch(*process, opt, writer, err, signals, on_signal);
}

WatchResult watch(proc::Target& process, const WatchOptions& opt, report::Writer& writer, std::ostream& err,
                  const std::vector<int>& signals, const SignalHandler& on_signal) {
    SignalQueue sigq(signals);
    UniqueFd exit_fd = process.exit_notifier();
    Watcher watcher(process, opt, writer, err);
    if (auto r = watcher.start()) return *r;

    auto next = Clock::now();
    for (;;) {
        timespec ts = wait_for_next_round(next, opt.timing.interval);
        pollfd fds[2] = {{sigq.fd(), POLLIN, 0}, {exit_fd.get(), POLLIN, 0}};
        int n = ::ppoll(fds, exit_fd.valid() ? 2 : 1, &ts, nullptr);
        if (n < 0 && errno != EINTR)
            return watcher.fail(make_error(Errc::io, fmt::format("poll: {}", std::strerror(errno)), errno));
        if (n > 0 && (fds[0].revents & POLLIN)) {
            int stop = 0;
            bool from_kernel = false;
            for (int sig; (sig = sigq.next(&from_kernel)) != 0;)
                if (on_signal(sig, from_kernel)) stop = sig;
            if (stop != 0) return watcher.end(WatchEnd::signal, stop);
        }
        if ((n > 0 && exit_fd.valid() && (fds[1].revents & POLLIN)) || (!exit_fd.valid() && process.exited()))
            return watcher.end(WatchEnd::target_exited);
        proc::release_lingering();
        if (auto r = watcher.round()) return *r;
    }
}

}  // namespace sw::cli
