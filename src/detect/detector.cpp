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

void Detector::emit_report(std::vector<Event>& out, Track& t, EventKind kind, Clock::time_point now) {
    ++t.reports;
    t.next_report = t.next_report * 2;
    // A stall's first report says something no other report does; an update
    // of a stall already reported only says it goes on. Those updates may
    // not take the bucket below half, so that under a flood the first report
    // of each stall still gets through.
    double keep = kind == EventKind::stall_update && t.made > 0 ? cfg_.burst / 2.0 : 0.0;
    if (!take_token(now, keep)) {
        ++pending_suppressed_;
        ++total_suppressed_;
        return;
    }
    ++t.made;
    out.push_back(Event{kind, t.last, t.stalled, t.episode, t.reports, pending_suppressed_});
    pending_suppressed_ = 0;
}

std::vector<Event> Detector::observe(const table::Snapshot& snap, Clock::time_point now,
                                     const FrozenProbe& frozen) {
    std::vector<Event> out;
    if (!started_) {
        started_ = true;
        tokens_ = cfg_.burst;
        tokens_at_ = now;
        last_now_ = now;
    }
    Duration dt = std::max(Duration::zero(), Duration(now - last_now_));
    if (dt > std::max(cfg_.threshold / 2, 5 * cfg_.interval)) dt = cfg_.interval;
    last_now_ = now;

    std::map<Key, Track> next;
    for (const auto& w : snap.workers) {
        Key key{w.slot, w.generation, w.tid};
        auto it = tracks_.find(key);
        if (it == tracks_.end()) {  // new registration, reused slot or new tid: start afresh
            Track t;
            t.last = w;
            next.emplace(key, std::move(t));
            continue;
        }
        Track t = std::move(it->second);
        tracks_.erase(it);
        bool moved = w.progress != t.last.progress;
        bool parked = w.state == table::WorkerState::parked;
        t.last = w;

        if (moved || parked) {
            if (t.episode && t.made > 0)
                out.push_back(Event{EventKind::recovered, w, t.stalled, t.episode, t.reports, 0});
            t.stalled = Duration::zero();
            t.episode = 0;
            t.made = 0;
            t.reports = 0;
        } else if (!frozen || !frozen(w.tid)) {
            t.stalled += dt;
            if (!t.episode && t.stalled >= cfg_.threshold) {
                t.episode = next_episode_++;
                // Updates at 2x, 4x ... the threshold; with a zero threshold,
                // of the interval, so that updates do not come every read.
                t.next_report = std::max(cfg_.threshold, cfg_.interval);
                emit_report(out, t, EventKind::stall, now);
            } else if (t.episode && t.stalled >= t.next_report) {
                emit_report(out, t, EventKind::stall_update, now);
            }
        }
        next.emplace(key, std::move(t));
    }
    // Whatever is left unregistered (or its slot changed hands) since last time.
    for (auto& [key, t] : tracks_)
        if (t.episode && t.made > 0)
            out.push_back(Event{EventKind::ended, t.last, t.stalled, t.episode, t.reports, 0});
    tracks_ = std::move(next);
    return out;
}

void Detector::withdraw(std::uint64_t episode) {
    for (auto& [key, t] : tracks_)
        if (t.episode == episode && t.made > 0) --t.made;
}

}  // namespace sw::detect
