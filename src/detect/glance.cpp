#include "detect/glance.hpp"

#include <algorithm>
#include <limits>
#include <set>
#include <unordered_map>

namespace sw::detect {

std::vector<WorkerGlance> glance(const table::Snapshot& first, const table::Snapshot& second, ReadSpan span,
                                 Duration threshold, const FrozenProbe& frozen, const GoneProbe& gone) {
    std::vector<WorkerGlance> out;
    out.reserve(second.workers.size());
    // A table may hold 65536 workers: by slot, not one search each.
    std::unordered_map<std::uint32_t, const table::Worker*> at_first;
    at_first.reserve(first.workers.size());
    for (const auto& v : first.workers) at_first.emplace(v.slot, &v);
    for (const auto& w : second.workers) {
        WorkerGlance g;
        g.worker = w;
        g.gone = w.tid <= 0 || (gone && gone(w.tid));
        auto found = at_first.find(w.slot);
        const table::Worker* before = found != at_first.end() && found->second->same_identity(w) ? found->second : nullptr;
        if (before) {
            g.seen_at_first = true;
            g.moved = before->progress != w.progress;
            // Moved: the last progress came after the first read's value was
            // taken. Not moved: none came between the two values.
            g.since = g.moved ? SinceProgress{Duration::zero(), span.across} : SinceProgress{span.between, {}};
            bool running = before->state == table::WorkerState::running && w.state == table::WorkerState::running;
            if (!g.moved && running && span.between >= threshold && !g.gone) {
                g.frozen = frozen && frozen(w.tid);
                g.stalled = !g.frozen;
            }
        }
        out.push_back(std::move(g));
    }
    return out;
}

namespace {

// The detector's rule, without its rate limit: here every stall episode is
// counted, and nothing is printed.
Config live_detector_config(const LiveConfig& cfg) {
    Config c;
    c.threshold = cfg.threshold;
    c.interval = cfg.read_interval;
    c.burst = std::numeric_limits<unsigned>::max();
    c.refill_per_second = 1e12;
    return c;
}

}  // namespace

LiveView::LiveView(LiveConfig cfg) : cfg_(cfg), detector_(live_detector_config(cfg)) {}

void LiveView::observe(const table::Snapshot& snap, Clock::time_point now, const FrozenProbe& frozen,
                       const GoneProbe& gone) {
    // Which threads the detector found frozen or gone (it asks only about
    // running workers whose progress did not move). Neither kind's time
    // counts toward a stall.
    std::set<pid_t> asked, frozen_now, gone_now;
    auto probe = [&](pid_t tid) {
        asked.insert(tid);
        if (tid <= 0) {
            gone_now.insert(tid);
            return true;
        }
        if (frozen && frozen(tid)) {
            frozen_now.insert(tid);
            return true;
        }
        if (gone && gone(tid)) {
            gone_now.insert(tid);
            return true;
        }
        return false;
    };
    auto events = detector_.observe(snap, now, probe);

    std::map<Key, Track> next;
    for (const auto& w : snap.workers) {
        Key key{w.slot, w.generation, w.tid};
        Track t;
        bool moved = false;
        if (auto it = tracks_.find(key); it != tracks_.end()) {
            t = std::move(it->second);
            moved = w.progress != t.last.progress;
            if (moved) {
                // It moved after the previous read took the old value, not
                // just before this one: the bound is from that read.
                t.value_since = t.last_read;
                t.progress_seen = true;
            }
        } else {  // first seen now: its value's age is unknown
            t.value_since = now;
            t.mark_at = now;
            t.mark_progress = w.progress;
        }
        if (now - t.mark_at >= cfg_.rate_window) {
            double seconds = std::chrono::duration<double>(now - t.mark_at).count();
            // A counter that went backwards (no shim does that: a table
            // written by something else) has no rate: NaN, not 1.8e19/s.
            t.rate = w.progress >= t.mark_progress
                         ? static_cast<double>(w.progress - t.mark_progress) / seconds
                         : std::numeric_limits<double>::quiet_NaN();
            t.mark_at = now;
            t.mark_progress = w.progress;
        }
        t.last = w;
        t.last_read = now;
        t.frozen = frozen_now.count(w.tid) > 0;
        if (w.tid <= 0) {
            t.gone = true;
        } else if (asked.count(w.tid) > 0) {
            t.gone = gone_now.count(w.tid) > 0;
        } else if (moved) {
            t.gone = false;  // somebody moves it: its thread, alive
        } else if (gone && (!t.gone_asked_ever || now - t.gone_asked >= cfg_.rate_window)) {
            // Parked, or just registered: not asked by the detector, and
            // not every read either.
            t.gone = gone(w.tid);
            t.gone_asked = now;
            t.gone_asked_ever = true;
        }
        next.emplace(key, std::move(t));
    }
    tracks_ = std::move(next);

    for (const auto& e : events) {
        auto it = tracks_.find(Key{e.worker.slot, e.worker.generation, e.worker.tid});
        if (e.kind == EventKind::stall) {
            ++total_stalls_;
            if (it != tracks_.end()) {
                ++it->second.stalls;
                it->second.stalled = true;
            }
        } else if ((e.kind == EventKind::recovered || e.kind == EventKind::ended) && it != tracks_.end()) {
            it->second.stalled = false;
        }
    }
}

std::vector<LiveWorker> LiveView::workers(Clock::time_point now) const {
    std::vector<LiveWorker> out;
    out.reserve(tracks_.size());
    for (const auto& [key, t] : tracks_) {
        LiveWorker w;
        w.worker = t.last;
        w.since_progress = std::max(Duration::zero(), Duration(now - t.value_since));
        w.progress_seen = t.progress_seen;
        w.rate = t.rate;
        w.stalls = t.stalls;
        w.gone = t.gone;
        w.frozen = t.frozen && !t.gone;
        w.stalled = t.stalled && !w.gone && !w.frozen;
        out.push_back(std::move(w));
    }
    return out;
}

}  // namespace sw::detect
