#include "report/incidents.hpp"

#include <algorithm>

namespace sw::report {

void Incidents::refresh(Incident& in) {
    auto& s = in.summary;
    s.open = in.open.size();
    s.workers = s.open + in.closed;
    for (const auto& [episode, stalled] : in.open) s.longest = std::max(s.longest, stalled);
    s.ended = s.open == 0;
}

void Incidents::place(StallReport& r, Clock::time_point now) {
    auto& e = r.event;
    if (auto known = of_episode_.find(e.episode); known != of_episode_.end()) {  // an update
        auto& in = incidents_.at(known->second);
        in.open[e.episode] = e.stalled_for;
        e.incident = in.summary.id;
        e.joined = e.episode != in.summary.id;
        refresh(in);
        return;
    }
    const std::string fp = r.frames.empty() ? std::string() : stack_fingerprint(r.frames, r.target.executable);
    const auto began = now - e.stalled_for;
    Incident* joined = nullptr;
    if (!fp.empty())
        for (auto& [id, in] : incidents_)
            if (in.summary.fingerprint == fp &&
                (began <= in.last_begin + window_ || (in.summary.ended && began <= in.last_end + window_)))
                joined = &in;
    if (!joined) {
        Incident in;
        in.summary.id = e.episode;
        in.summary.fingerprint = fp;
        in.summary.at = application_frame_label(r.frames, r.target.executable);
        joined = &incidents_.emplace(e.episode, std::move(in)).first->second;
    } else {
        joined->news = true;
    }
    joined->open[e.episode] = e.stalled_for;
    joined->last_begin = std::max(joined->last_begin, began);
    of_episode_[e.episode] = joined->summary.id;
    e.incident = joined->summary.id;
    e.joined = e.episode != joined->summary.id;
    refresh(*joined);
}

bool Incidents::joined(std::uint64_t episode) const {
    auto known = of_episode_.find(episode);
    return known != of_episode_.end() && known->second != episode;
}

void Incidents::went_on(const detect::Event& e) {
    auto known = of_episode_.find(e.episode);
    if (known == of_episode_.end()) return;
    auto& in = incidents_.at(known->second);
    in.open[e.episode] = e.stalled_for;
    refresh(in);
}

void Incidents::close(detect::Event& e, Clock::time_point now) {
    auto known = of_episode_.find(e.episode);
    if (known == of_episode_.end()) return;
    auto& in = incidents_.at(known->second);
    of_episode_.erase(known);
    e.incident = in.summary.id;
    e.joined = e.episode != in.summary.id;
    in.open.erase(e.episode);
    ++in.closed;
    in.summary.longest = std::max(in.summary.longest, e.stalled_for);
    refresh(in);
    const bool several = in.summary.workers > 1;
    if (in.summary.ended) in.last_end = now;
    // Said when it ends, and when its first stall (the one shown in full)
    // ends while others go on: their recoveries are not printed one by one.
    if (several && (in.summary.ended || !e.joined)) in.news = true;
}

std::vector<IncidentSummary> Incidents::take_news(Clock::time_point now) {
    std::vector<IncidentSummary> out;
    for (auto it = incidents_.begin(); it != incidents_.end();) {
        auto& in = it->second;
        if (in.news && in.summary.workers > 1) out.push_back(in.summary);
        in.news = false;
        if (in.summary.ended && now - in.last_end > window_ + std::chrono::seconds(10))
            it = incidents_.erase(it);
        else
            ++it;
    }
    return out;
}

}  // namespace sw::report
