// JSON Lines: one event per line, flushed per line. Field names follow the
// OpenTelemetry semantic conventions where one exists (process.*, thread.*,
// code.*, service.name, error.*); the rest live under "stallwatch.".
// docs/json-events.md and docs/json-events.schema.json are the contract.
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "common/text.hpp"
#include "proc/thread_info.hpp"
#include "report/classify.hpp"
#include "report/json.hpp"
#include "report/writer.hpp"

namespace sw::report {
namespace {

using json = nlohmann::ordered_json;  // keys in the order written: timestamp and event first

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }
double us(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e3; }

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

std::string_view kind_name(detect::EventKind k) {
    switch (k) {
    case detect::EventKind::stall: return "stall";
    case detect::EventKind::stall_update: return "stall_update";
    case detect::EventKind::recovered: return "recovered";
    case detect::EventKind::ended: return "ended";
    case detect::EventKind::sample: return "sample";
    }
    return "stall";
}

// Absent values are null, never "" (docs/json-events.md).
json str_or_null(std::string_view s) { return s.empty() ? json(nullptr) : json(std::string(s)); }

std::string dump(const json& j) {
    // Names come from the target and may hold any byte: replace invalid
    // UTF-8 rather than fail, so no event is ever lost.
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json base(std::string_view event, const Target& t, std::string timestamp) {
    json j;
    j["timestamp"] = std::move(timestamp);
    j["event"] = event;
    j["stallwatch.schema_version"] = json_schema_version;
    j["process.pid"] = t.pid;
    j["process.executable.name"] = str_or_null(basename_of(t.executable.empty() ? t.process_name : t.executable));
    j["process.executable.path"] = str_or_null(t.executable);
    j["service.name"] = str_or_null(t.app_name);
    // A process in a container: its own pid there, and its cgroup, so that
    // the report can be matched with the container's logs.
    j["stallwatch.process.pid_in_namespace"] = t.pid_in_namespace > 0 ? json(t.pid_in_namespace) : json(nullptr);
    j["stallwatch.process.cgroup"] = str_or_null(t.cgroup);
    return j;
}

void add_worker(json& j, const detect::Event& e, bool registered = true) {
    j["thread.id"] = e.worker.tid;
    j["thread.name"] = str_or_null(e.worker.name);
    j["stallwatch.thread.id_in_namespace"] = e.worker.ns_tid > 0 ? json(e.worker.ns_tid) : json(nullptr);
    if (!registered) {  // a plain thread (dump --all-threads): no worker fields
        j["stallwatch.worker.slot"] = nullptr;
        j["stallwatch.worker.state"] = nullptr;
        j["stallwatch.worker.progress"] = nullptr;
        return;
    }
    j["stallwatch.worker.slot"] = e.worker.slot;
    j["stallwatch.worker.state"] = table::to_string(e.worker.state);
    j["stallwatch.worker.progress"] = e.worker.progress;
    if (e.kind == detect::EventKind::sample) return;
    j["stallwatch.episode"] = e.episode;
    j["stallwatch.report"] = e.report;
    j["stallwatch.stall.duration_ms"] = ms(e.stalled_for);
    j["stallwatch.incident"] = e.incident > 0 ? json(e.incident) : json(nullptr);
}

json lock_json(const LockWait& w) {
    json j;
    j["kind"] = to_string(w.kind);
    j["address"] = hex(w.address.value());
    j["function"] = str_or_null(w.function);
    j["mutex_type"] = str_or_null(w.mutex_type);
    j["owner_tid"] = w.owner > 0 ? json(w.owner) : json(nullptr);
    j["owner_tid_in_memory"] = w.owner_in_memory > 0 ? json(w.owner_in_memory) : json(nullptr);
    j["owner_unknown"] = str_or_null(w.unknown);
    return j;
}

// The fields that name a thread outside the worker fields: a lock's holder,
// a link of a deadlock.
json thread_json(pid_t tid, pid_t ns_tid, const std::string& name, bool registered) {
    json k;
    k["thread.id"] = tid;
    k["thread.name"] = str_or_null(name);
    k["stallwatch.thread.id_in_namespace"] = ns_tid > 0 ? json(ns_tid) : json(nullptr);
    k["stallwatch.worker.registered"] = registered;
    return k;
}

// One line per frame, as code.stacktrace has them.
std::string stack_lines_of(const std::vector<symbolize::Frame>& frames);

json frame_json(const symbolize::Frame& f, std::size_t index, FrameClass cls) {
    json j;
    j["index"] = index;
    j["code.function.name"] = str_or_null(f.function);
    if (f.location) {
        j["code.file.path"] = str_or_null(f.location->file);
        j["code.line.number"] = f.location->line > 0 ? json(f.location->line) : json(nullptr);
        j["code.column.number"] = f.location->column > 0 ? json(f.location->column) : json(nullptr);
    } else {
        j["code.file.path"] = nullptr;
        j["code.line.number"] = nullptr;
        j["code.column.number"] = nullptr;
    }
    j["stallwatch.frame.address"] = hex(f.pc);
    j["stallwatch.frame.module"] = str_or_null(f.module);
    j["stallwatch.frame.module_offset"] = hex(f.module_offset);
    j["stallwatch.frame.inlined"] = f.inlined;
    j["stallwatch.frame.class"] = to_string(cls);
    return j;
}

// ---- Fitting an event into --max-event-bytes (docs/json-events.md, "Size limit")

// `s` cut to at most `cap` bytes, ending in "…", never inside a UTF-8
// sequence. True if it was cut.
bool cut(std::string& s, std::size_t cap) {
    if (s.size() <= cap) return false;
    constexpr std::string_view ellipsis = "\xE2\x80\xA6";
    std::size_t keep = cap > ellipsis.size() ? cap - ellipsis.size() : 0;
    while (keep > 0 && (static_cast<unsigned char>(s[keep]) & 0xC0) == 0x80) --keep;
    s.resize(keep);
    s += ellipsis;
    return true;
}

// Cuts every string value in `j` to `cap` bytes, except code.stacktrace
// (made of names cut to the same cap) and stallwatch.stack.truncated
// (stallwatch's own short sentence); returns how many it cut.
std::size_t cut_strings(json& j, std::size_t cap) {
    if (j.is_string()) return cut(j.get_ref<std::string&>(), cap) ? 1 : 0;
    std::size_t n = 0;
    if (j.is_array()) {
        for (auto& e : j) n += cut_strings(e, cap);
    } else if (j.is_object()) {
        for (auto it = j.begin(); it != j.end(); ++it)
            if (it.key() != "code.stacktrace" && it.key() != "stallwatch.stack.truncated")
                n += cut_strings(it.value(), cap);
    }
    return n;
}

// The string caps tried in turn once leaving out frames is not enough. The
// smallest leaves the fixed-size fields (timestamps, hex addresses,
// fingerprints: at most 29 bytes) whole.
constexpr std::size_t string_caps[] = {256, 96, 32};

// Frames kept whatever their number, until strings have been cut to the
// smallest cap: the innermost, the first application frame and this many
// on either side of it.
constexpr std::size_t anchor_window = 3;

// What a stack report says before any rendering: the class of each frame,
// the fingerprint (of the whole stack, whatever is left out) and the order
// in which frames are left out.
struct StackFacts {
    std::vector<FrameClass> classes;
    std::string fingerprint;
    std::vector<std::size_t> drop_order;  // first = first left out
    std::size_t unprotected = 0;          // how many of drop_order go before strings are cut

    explicit StackFacts(const StallReport& r) {
        const std::size_t n = r.frames.size();
        classes.reserve(n);
        for (const auto& f : r.frames) classes.push_back(classify(f, r.target.executable));
        if (n > 0) fingerprint = stack_fingerprint(r.frames, r.target.executable);
        auto app = [&](std::size_t i) { return classes[i] == FrameClass::application; };
        std::size_t anchor = 0;  // the first application frame, else the innermost
        while (anchor < n && !app(anchor)) ++anchor;
        if (anchor == n) anchor = 0;
        // Tier 0: protected; 1: application frames and the frames next to
        // them (where application code calls in or is called from);
        // 2: the middles of runs of runtime, libc and unknown frames.
        std::vector<std::size_t> tier[3];
        for (std::size_t i = n; i-- > 0;) {  // outermost first within a tier
            std::size_t t = 2;
            if (i == 0 || (i + anchor_window >= anchor && i <= anchor + anchor_window)) t = 0;
            else if (app(i) || app(i - 1) || (i + 1 < n && app(i + 1))) t = 1;
            tier[t].push_back(i);
        }
        drop_order = tier[2];
        drop_order.insert(drop_order.end(), tier[1].begin(), tier[1].end());
        unprotected = drop_order.size();
        // Last resort, after strings were cut to the smallest cap: the
        // protected frames, outermost first, the anchor last of all.
        for (std::size_t i : tier[0])
            if (i != anchor) drop_order.push_back(i);
        if (n > 0) drop_order.push_back(anchor);
    }
};

// One line of code.stacktrace: "function (file:line)", "function
// (module+0xoffset)" without a source line.
std::string stack_line(const symbolize::Frame& f, std::size_t cap) {
    std::string function = f.function.empty() ? "??" : f.function;
    std::string where;
    if (f.location && !f.location->file.empty())
        where = fmt::format("{}:{}", basename_of(f.location->file), f.location->line);
    else if (!f.module.empty())
        where = fmt::format("{}+{:#x}", basename_of(f.module), f.module_offset);
    else
        where = hex(f.pc);
    if (cap > 0) {
        cut(function, cap);
        cut(where, cap);
    }
    return fmt::format("{} ({}){}", function, where, f.inlined ? " [inlined]" : "");
}

std::string stacktrace(const StallReport& r, const std::vector<bool>& keep, std::size_t cap) {
    std::string out;
    std::size_t gap = 0;
    auto close_gap = [&] {
        if (gap == 0) return;
        out += fmt::format("... {} frame{} left out\n", gap, gap == 1 ? "" : "s");
        gap = 0;
    };
    for (std::size_t i = 0; i < r.frames.size(); ++i) {
        if (!keep[i]) {
            ++gap;
            continue;
        }
        close_gap();
        out += stack_line(r.frames[i], cap);
        out += '\n';
    }
    close_gap();
    if (!out.empty()) out.pop_back();
    return out;
}

// The stack event with the first `dropped` frames of the drop order left
// out and, with `cap` > 0, every string cut to `cap` bytes.
json stack_json(const StallReport& r, const StackFacts& facts, std::size_t dropped, std::size_t cap,
                std::size_t max_bytes, bool holder_stacks = true) {
    const auto& e = r.event;
    json j = base(kind_name(e.kind), r.target, rfc3339(r.unix_ns));
    add_worker(j, e, r.registered);
    if (e.kind != detect::EventKind::sample) j["stallwatch.suppressed"] = e.suppressed;
    j["stallwatch.thread.state"] = std::string(1, r.thread.state);
    j["stallwatch.thread.syscall"] =
        r.thread.syscall_nr >= 0 ? str_or_null(proc::syscall_name(r.thread.syscall_nr)) : json(nullptr);
    j["stallwatch.thread.wchan"] = str_or_null(r.thread.wchan);
    j["stallwatch.capture_error"] = str_or_null(r.capture_error);
    if (!r.not_stopped.empty()) j["stallwatch.not_stopped"] = r.not_stopped;
    j["stallwatch.stop_window_us"] = static_cast<double>(r.stop_window.count()) / 1e3;
    j["stallwatch.stop_wait_us"] = static_cast<double>(r.stop_wait.count()) / 1e3;
    j["stallwatch.stack.fingerprint"] = str_or_null(facts.fingerprint);
    // What it waits on (absent when it is not in a futex wait), its
    // holders and whether the chain is a deadlock: all under one object, so
    // that no key is a value in one event and an object in another.
    if (r.lock) {
        json lock = lock_json(*r.lock);
        lock["deadlock"] = r.deadlock.has_value();
        lock["chain_end"] = str_or_null(r.chain_end);
        if (!holder_stacks) lock["holder_stacks_left_out"] = true;
        if (!r.holders.empty()) {
            json holders = json::array();
            for (const auto& h : r.holders) {
                json k = thread_json(h.tid, h.ns_tid, h.name, h.registered);
                k["stallwatch.capture_error"] = str_or_null(h.capture_error);
                k["stallwatch.stop_window_us"] = static_cast<double>(h.stop_window.count()) / 1e3;
                k["stallwatch.holder.stacktrace"] =
                    h.frames.empty() || !holder_stacks ? json(nullptr) : json(stack_lines_of(h.frames));
                if (h.waits) k["stallwatch.lock"] = lock_json(*h.waits);
                holders.push_back(std::move(k));
            }
            lock["holders"] = std::move(holders);
        }
        j["stallwatch.lock"] = std::move(lock);
    }

    std::string truncated = r.stopped_early;
    if (dropped > 0) {
        if (!truncated.empty()) truncated += "; ";
        truncated += fmt::format("{} of {} frames left out to fit --max-event-bytes {}", dropped, r.frames.size(),
                                 max_bytes);
    }
    j["stallwatch.stack.truncated"] = str_or_null(truncated);
    j["stallwatch.stack.frames_dropped"] = dropped;

    std::vector<bool> keep(r.frames.size(), true);
    for (std::size_t k = 0; k < dropped; ++k) keep[facts.drop_order[k]] = false;
    j["code.stacktrace"] = r.frames.empty() ? json(nullptr) : json(stacktrace(r, keep, cap));
    json frames = json::array();
    for (std::size_t i = 0; i < r.frames.size(); ++i)
        if (keep[i]) frames.push_back(frame_json(r.frames[i], i, facts.classes[i]));
    if (cap > 0) {
        std::size_t n = cut_strings(j, cap) + cut_strings(frames, cap);
        if (n > 0) j["stallwatch.strings_cut"] = n;
    }
    j["frames"] = std::move(frames);
    return j;
}

std::string stack_lines_of(const std::vector<symbolize::Frame>& frames) {
    std::string out;
    for (const auto& f : frames) out += stack_line(f, 0) + "\n";
    if (!out.empty()) out.pop_back();
    return out;
}

bool fits(const std::string& line, std::size_t max_bytes) { return max_bytes == 0 || line.size() + 1 <= max_bytes; }

// Any other event: strings cut until it fits (they are short but for names
// from the target).
std::string fitted_line(const json& j, std::size_t max_bytes) {
    std::string line = dump(j);
    for (std::size_t cap : string_caps) {
        if (fits(line, max_bytes)) break;
        json c = j;
        std::size_t n = cut_strings(c, cap);
        if (n > 0) c["stallwatch.strings_cut"] = n;
        line = dump(c);
    }
    return line;
}

class JsonWriter final : public Writer {
public:
    JsonWriter(std::ostream& out, std::size_t max_event_bytes) : Writer(out), max_(max_event_bytes) {}

    void attached(const Target& t, const WatchInfo& w) override {
        json j = base("attached", t, now_rfc3339());
        j["stallwatch.workers.registered"] = w.workers;
        j["stallwatch.threshold_ms"] = ms(w.threshold);
        j["stallwatch.interval_ms"] = ms(w.interval);
        emit(j);
    }

    void detached(const Target& t, const Detached& d) override {
        json j = base("detached", t, now_rfc3339());
        j["stallwatch.reason"] = d.reason;
        j["stallwatch.reports"] = d.reports;
        j["stallwatch.reports_withdrawn"] = d.withdrawn;
        j["stallwatch.passes"] = d.passes;
        if (d.passes > 0) {
            j["stallwatch.pass_us_mean"] = us(d.pass_total) / static_cast<double>(d.passes);
            j["stallwatch.pass_us_max"] = us(d.pass_max);
        }
        emit(j);
    }

    void error(const Target& t, std::string_view message) override {
        json j = base("error", t, now_rfc3339());
        j["error.message"] = message;
        emit(j);
    }

    void stall(const StallReport& r) override { write(stack_event_line(r, max_)); }

    void event(const Target& t, const detect::Event& e) override {
        json j = base(kind_name(e.kind), t, now_rfc3339());
        add_worker(j, e);
        emit(j);
    }

    void deadlock(const Target& t, const Deadlock& d) override {
        json j = base("deadlock", t, now_rfc3339());
        j["stallwatch.deadlock.key"] = d.key();
        json threads = json::array();
        for (std::size_t i = 0; i < d.cycle.size(); ++i) {
            const auto& l = d.cycle[i];
            json k = thread_json(l.tid, l.ns_tid, l.name, l.registered);
            k["stallwatch.frame.application"] = str_or_null(l.at);
            k["stallwatch.lock"] = lock_json(l.waits);
            k["stallwatch.lock.held_by"] = d.cycle[(i + 1) % d.cycle.size()].tid;
            threads.push_back(std::move(k));
        }
        j["stallwatch.deadlock.threads"] = std::move(threads);
        emit(j);
    }

    void compensation(const Target& t, const CompensationEvent& c) override {
        json j = base("compensation", t, now_rfc3339());
        j["stallwatch.compensation.phase"] = c.begins ? "begin" : "end";
        j["stallwatch.group.name"] = c.group;
        j["stallwatch.compensation.episode"] = c.episode;
        j["stallwatch.compensation.threshold_ms"] = c.threshold_ms;
        j["stallwatch.compensation.extra_threads"] = c.extra_threads;
        j["stallwatch.compensation.extra_threads_peak"] = c.extra_threads_peak;
        if (!c.begins) j["stallwatch.compensation.duration_ms"] = c.duration_ms;
        emit(j);
    }

    void summary(const Target& t, const detect::Summary& s) override {
        json j = base("summary", t, now_rfc3339());
        j["stallwatch.summary.at_exit"] = s.at_exit;
        j["stallwatch.summary.period_ms"] = ms(s.period);
        j["stallwatch.summary.stalls"] = s.stalls;
        j["stallwatch.summary.unreported"] = s.unreported;
        j["stallwatch.summary.updates_suppressed"] = s.updates_suppressed;
        j["stallwatch.summary.total_stalls"] = s.total_stalls;
        j["stallwatch.summary.total_unreported"] = s.total_unreported;
        j["stallwatch.summary.total_updates_suppressed"] = s.total_updates_suppressed;
        j["stallwatch.summary.open_count"] = s.open;
        j["stallwatch.summary.open_unreported"] = s.open_unreported;
        json open = json::array();
        for (const auto& o : s.listed) {
            json k;
            k["stallwatch.episode"] = o.episode;
            k["thread.id"] = o.worker.tid;
            k["thread.name"] = str_or_null(o.worker.name);
            k["stallwatch.worker.slot"] = o.worker.slot;
            k["stallwatch.stall.duration_ms"] = ms(o.stalled_for);
            k["stallwatch.reported"] = o.reported;
            open.push_back(std::move(k));
        }
        j["stallwatch.summary.open_stalls"] = std::move(open);
        emit(j);
    }

private:
    void emit(const json& j) { write(fitted_line(j, max_)); }

    void write(const std::string& line) {
        out_ << line << '\n';
        out_.flush();
    }

    std::size_t max_;
};

}  // namespace

std::string stack_event_line(const StallReport& r, std::size_t max_bytes) {
    const StackFacts facts(r);
    // The holders' stacks go first (the thread's own stack is the report),
    // then frames of the thread's stack as below.
    bool holder_stacks = true;
    auto render = [&](std::size_t dropped, std::size_t cap) {
        return dump(stack_json(r, facts, dropped, cap, max_bytes, holder_stacks));
    };
    std::string line = render(0, 0);
    if (fits(line, max_bytes)) return line;
    if (!r.holders.empty()) {
        holder_stacks = false;
        line = render(0, 0);
        if (fits(line, max_bytes)) return line;
    }
    // Leave out the fewest frames that make it fit: first with every string
    // whole, then with strings cut shorter and shorter; only at the smallest
    // cap may the protected frames go too. The size falls as frames go, so
    // a binary search over how many go finds the fewest.
    std::size_t caps[] = {0, string_caps[0], string_caps[1], string_caps[2]};
    for (std::size_t cap : caps) {
        std::size_t hi = cap == string_caps[2] ? facts.drop_order.size() : facts.unprotected;
        std::string best = render(hi, cap);
        if (!fits(best, max_bytes)) continue;
        std::size_t lo = 0;
        while (lo < hi) {
            std::size_t mid = lo + (hi - lo) / 2;
            std::string candidate = render(mid, cap);
            if (fits(candidate, max_bytes)) {
                hi = mid;
                best = std::move(candidate);
            } else {
                lo = mid + 1;
            }
        }
        return best;
    }
    return render(facts.drop_order.size(), string_caps[2]);  // only below min_max_event_bytes
}

std::unique_ptr<Writer> make_json_writer(std::ostream& out, std::size_t max_event_bytes) {
    return std::make_unique<JsonWriter>(out, max_event_bytes);
}

nlohmann::ordered_json event_base(std::string_view event, const Target& t, std::string timestamp) {
    return base(event, t, std::move(timestamp));
}

std::string event_line(const nlohmann::ordered_json& j) { return dump(j); }

}  // namespace sw::report
