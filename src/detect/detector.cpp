#include "detect/detector.hpp"

#include <algorithm>

namespace sw::detect {

bool Detector::take_token(Clock::time_point now, double keep) {
    double elapsed = std::chrono::duration<double>(now - tokens_at_).count();
    tokens_ = std::min<double>(cfg_.burst, tokens_ + std::max(0.0, elapsed) * cfg_.refill_per_second);
    tokens_at_ = now;
    if (tokens_ < 1.0 + keep) return false;
    tokens_ -= 1.0;
    return true;
}

// The first of base, 2 base, 4 base ... past `stalled`, base being the
// threshold (or, with a zero threshold, the interval, so that updates do
// not come every read). After a late first report or a gap, the next
// report is not due at once.
Duration Detector::next_due(Duration stalled) const {
    Duration d = std::max({cfg_.threshold, cfg_.interval, Duration(1)});
    while (d <= stalled) d *= 2;
    return d;
}

void Detector::held_back(Clock::time_point now) {
    if (!unsaid_since_) unsaid_since_ = now;
}

// The episode of `t` ends: announced if its first report was made, counted
// as a stall the rate limit kept quiet if it held the first report back.
void Detector::end_episode(std::vector<Event>& out, Track& t, EventKind kind) {
    if (t.made > 0) {
        out.push_back(Event{kind, t.last, t.stalled, t.episode, t.made, 0});
    } else if (t.denied) {
        ++pending_suppressed_;
        ++unreported_;
        ++total_unreported_;
    }
    t.stalled = Duration::zero();
    t.episode = 0;
    t.made = 0;
    t.denied = false;
}

std::vector<Event> Detector::observe(const table::Snapshot& snap, Clock::time_point now,
                                     const FrozenProbe& frozen) {
    std::vector<Event> out;
    if (!started_) {
        started_ = true;
        tokens_ = cfg_.burst;
        tokens_at_ = now;
        last_now_ = now;
        period_start_ = now;
    }
    Duration dt = std::max(Duration::zero(), Duration(now - last_now_));
    if (dt > std::max(cfg_.threshold / 2, 5 * cfg_.interval)) dt = cfg_.interval;
    last_now_ = now;

    // First the tracks, and which reports are due; then the tokens, so that
    // who gets one does not depend on the order of the slots. One track per
    // slot, kept from read to read: no allocation in a read where nothing
    // is due (a monitor reads a 1,024-worker table a hundred times a second).
    ++round_;
    unmoved_.clear();  // (left filled if a frozen probe threw last time)
    if (!snap.workers.empty() && tracks_.size() <= snap.workers.back().slot)
        tracks_.resize(static_cast<std::size_t>(snap.workers.back().slot) + 1);
    std::vector<Track*> firsts, updates;
    std::vector<Track> gone;  // registrations whose slot changed hands, in slot order
    for (const auto& w : snap.workers) {
        if (w.slot >= tracks_.size()) continue;  // not in slot order: never from the parser
        Track& t = tracks_[w.slot];
        if (!t.used || t.last.generation != w.generation || t.last.tid != w.tid) {
            // New registration, reused slot or new tid: start afresh.
            if (t.used && t.episode) gone.push_back(std::move(t));
            t = Track{};
            t.used = true;
            t.seen = round_;
            t.last = w;
            continue;
        }
        t.seen = round_;
        bool moved = w.progress != t.last.progress;
        bool parked = w.state == table::WorkerState::parked;
        // The same registration: only what moves is copied (not the name).
        t.last.progress = w.progress;
        t.last.state = w.state;
        t.last.group = w.group;
        t.last.ns_tid = w.ns_tid;

        if (moved || parked) {
            if (t.episode) end_episode(out, t, EventKind::recovered);
            t.stalled = Duration::zero();
            t.unasked = Duration::zero();
        } else {
            unmoved_.push_back(&t);
        }
    }
    // The unmoved workers (in slot order): which are asked whether their
    // thread is frozen (all of them, or a rationed few in turn by slot, from
    // the slot after the last one asked), then their time.
    const std::size_t n = unmoved_.size();
    const bool rationed = frozen && n > cfg_.frozen_checks_per_read;
    std::size_t first_asked = 0;
    if (rationed) {
        auto from = std::lower_bound(unmoved_.begin(), unmoved_.end(), probe_cursor_,
                                     [](const Track* t, std::uint32_t slot) { return t->last.slot < slot; });
        first_asked = from == unmoved_.end() ? 0 : static_cast<std::size_t>(from - unmoved_.begin());
    }
    const std::size_t asked = !frozen ? 0 : rationed ? cfg_.frozen_checks_per_read : n;
    if (rationed) probe_cursor_ = unmoved_[(first_asked + asked - 1) % n]->last.slot + 1;
    for (std::size_t i = 0; i < n; ++i) {
        Track& t = *unmoved_[i];
        const bool ask = !frozen || (i + n - first_asked) % n < asked;
        if (!ask) {  // held apart until it is asked
            t.unasked += dt;
            continue;
        }
        const Duration since = t.unasked + dt;
        t.unasked = Duration::zero();
        if (frozen && frozen(t.last.tid)) continue;  // frozen time does not count
        t.stalled += since;
        if (!t.episode && t.stalled >= cfg_.threshold) {
            t.episode = next_episode_++;
            t.due = t.stalled;
            ++stalls_;
            ++total_stalls_;
        }
        if (t.episode && t.stalled >= t.due) (t.made == 0 ? firsts : updates).push_back(&t);
    }
    unmoved_.clear();
    // Whatever unregistered since last time, or whose slot changed hands, in
    // slot order.
    for (auto& t : tracks_) {
        if (!t.used || t.seen == round_) continue;
        if (t.episode) gone.push_back(std::move(t));
        t = Track{};
    }
    std::stable_sort(gone.begin(), gone.end(), [](const Track& a, const Track& b) { return a.last.slot < b.last.slot; });
    for (auto& t : gone) end_episode(out, t, EventKind::ended);

    // First reports: workers never shown first, then those shown longest
    // ago, then the oldest stall. One held back stays due and tries again
    // at the next read: it costs nothing until a token comes.
    std::sort(firsts.begin(), firsts.end(), [](const Track* a, const Track* b) {
        if (a->shown.has_value() != b->shown.has_value()) return !a->shown.has_value();
        if (a->shown != b->shown) return *a->shown < *b->shown;
        return a->episode < b->episode;
    });
    bool waiting = false;
    for (Track* t : firsts) {
        if (!take_token(now, 0.0)) {
            waiting = true;
            if (!t->denied) held_back(now);
            t->denied = true;
            continue;
        }
        t->made = 1;
        t->due = next_due(t->stalled);
        t->shown_before = t->shown;
        t->shown = now;
        out.push_back(Event{EventKind::stall, t->last, t->stalled, t->episode, 1, pending_suppressed_});
        pending_suppressed_ = 0;
    }
    // Updates of stalls already reported: never while a first report
    // waits, and never below half the bucket, so that the next incident's
    // first reports find tokens.
    std::sort(updates.begin(), updates.end(), [](const Track* a, const Track* b) { return a->episode < b->episode; });
    for (Track* t : updates) {
        t->due = next_due(t->stalled);
        if (waiting || !take_token(now, cfg_.burst / 2.0)) {
            ++pending_suppressed_;
            ++updates_suppressed_;
            ++total_updates_suppressed_;
            held_back(now);
            continue;
        }
        ++t->made;
        out.push_back(Event{EventKind::stall_update, t->last, t->stalled, t->episode, t->made, pending_suppressed_});
        pending_suppressed_ = 0;
    }
    return out;
}

void Detector::withdraw(std::uint64_t episode) {
    for (auto& t : tracks_) {
        if (!t.used || t.episode != episode || t.made == 0) continue;
        if (--t.made == 0) t.shown = t.shown_before;  // due again at t.due, not at the next read
    }
}

void Detector::refund() noexcept { tokens_ = std::min<double>(cfg_.burst, tokens_ + 1.0); }

std::size_t Detector::waiting() const noexcept {
    std::size_t n = 0;
    for (const auto& t : tracks_) n += t.used && t.episode && t.made == 0 && t.denied;
    return n;
}

std::optional<Summary> Detector::summary_due(Clock::time_point now) {
    if (!unsaid_since_ || now - *unsaid_since_ < cfg_.summary_settle) return std::nullopt;
    if (last_summary_ && now - *last_summary_ < cfg_.summary_every) return std::nullopt;
    return summary(now, false);
}

Summary Detector::summary(Clock::time_point now, bool at_exit) {
    Summary s;
    s.at_exit = at_exit;
    s.period = started_ ? std::max(Duration::zero(), Duration(now - period_start_)) : Duration::zero();
    s.stalls = stalls_;
    s.unreported = unreported_;
    s.updates_suppressed = updates_suppressed_;
    s.total_stalls = total_stalls_;
    s.total_unreported = total_unreported_;
    s.total_updates_suppressed = total_updates_suppressed_;
    std::vector<OpenStall> open;
    for (const auto& t : tracks_) {
        if (!t.used || !t.episode) continue;
        open.push_back(OpenStall{t.episode, t.last, t.stalled, t.made > 0});
        s.open_unreported += t.made == 0;
    }
    s.open = open.size();
    std::sort(open.begin(), open.end(), [](const OpenStall& a, const OpenStall& b) {
        if (a.reported != b.reported) return !a.reported;
        return a.episode < b.episode;
    });
    if (open.size() > cfg_.summary_list) open.resize(cfg_.summary_list);
    s.listed = std::move(open);

    stalls_ = unreported_ = updates_suppressed_ = 0;
    period_start_ = now;
    last_summary_ = now;
    unsaid_since_.reset();
    return s;
}

}  // namespace sw::detect
