#include "report/incidents.hpp"

#include <algorithm>

namespace sw::report {

void Incidents::refresh(Incident& in) {
    auto& s = in.summary;
    s.workers = in.members.size();
    s.open = 0;
    for (const auto& [episode, m] : in.members) {
        s.open += m.open;
        s.longest = std::max(s.longest, m.stalled);
    }
    s.ended = s.open == 0;
}

void Incidents::place(StallReport& r, Clock::time_point now) {
    auto& e = r.event;
    if (auto known = of_episode_.find(e.episode); known != of_episode_.end()) {  // an update
        auto& in = incidents_.at(known->second);
        in.members[e.episode].stalled = e.stalled_for;
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
            if (in.summary.fingerprint == fp && (in.summary.open > 0 || began <= in.last_end + window_)) joined = &in;
    if (!joined) {
        Incident in;
        in.summary.id = e.episode;
        in.summary.fingerprint = fp;
        in.summary.at = application_frame_label(r.frames, r.target.executable);
        joined = &incidents_.emplace(e.episode, std::move(in)).first->second;
    } else {
        joined->news = true;
    }
    joined->members[e.episode] = Member{true, e.stalled_for};
    of_episode_[e.episode] = joined->summary.id;
    e.incident = joined->summary.id;
    e.joined = e.episode != joined->summary.id;
    refresh(*joined);
}

void Incidents::close(detect::Event& e, Clock::time_point now) {
    auto known = of_episode_.find(e.episode);
    if (known == of_episode_.end()) return;
    auto& in = incidents_.at(known->second);
    of_episode_.erase(known);
    e.incident = in.summary.id;
    e.joined = e.episode != in.summary.id;
    auto& m = in.members[e.episode];
    m.open = false;
    m.stalled = e.stalled_for;
    refresh(in);
    if (in.summary.ended) {
        in.last_end = now;
        in.news = in.news || in.members.size() > 1;
    }
}

std::vector<IncidentSummary> Incidents::take_news(Clock::time_point now) {
    std::vector<IncidentSummary> out;
    for (auto it = incidents_.begin(); it != incidents_.end();) {
        auto& in = it->second;
        if (in.news && in.members.size() > 1) out.push_back(in.summary);
        in.news = false;
        // An ended incident is kept for its window (a stall may still join
        // it), and forgotten once no stall of it can: then its episodes too.
        if (in.summary.ended && now - in.last_end > window_ + std::chrono::seconds(10))
            it = incidents_.erase(it);
        else
            ++it;
    }
    return out;
}

}  // namespace sw::report
