// JSON Lines: one event per line, flushed per line. Field names follow the
// OpenTelemetry semantic conventions where one exists (process.*, thread.*,
// code.*, service.name, error.*); the rest live under "stallwatch.".
// docs/json-events.md and docs/json-events.schema.json are the contract.
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "common/text.hpp"
#include "proc/thread_info.hpp"
#include "report/classify.hpp"
#include "report/writer.hpp"

namespace sw::report {
namespace {

using json = nlohmann::ordered_json;  // keys in the order written: timestamp and event first

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

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

json base(std::string_view event, const Target& t, std::string timestamp) {
    json j;
    j["timestamp"] = std::move(timestamp);
    j["event"] = event;
    j["stallwatch.schema_version"] = json_schema_version;
    j["process.pid"] = t.pid;
    j["process.executable.name"] = std::string(basename_of(t.executable.empty() ? t.process_name : t.executable));
    j["process.executable.path"] = t.executable.empty() ? json(nullptr) : json(t.executable);
    j["service.name"] = t.app_name;
    return j;
}

void add_worker(json& j, const detect::Event& e, bool registered = true) {
    j["thread.id"] = e.worker.tid;
    j["thread.name"] = e.worker.name;
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
}

json frame_json(const symbolize::Frame& f, std::size_t index, const std::string& executable) {
    json j;
    j["index"] = index;
    j["code.function.name"] = f.function.empty() ? json(nullptr) : json(f.function);
    if (f.location) {
        j["code.file.path"] = f.location->file;
        j["code.line.number"] = f.location->line;
        j["code.column.number"] = f.location->column > 0 ? json(f.location->column) : json(nullptr);
    } else {
        j["code.file.path"] = nullptr;
        j["code.line.number"] = nullptr;
        j["code.column.number"] = nullptr;
    }
    j["stallwatch.frame.address"] = hex(f.pc);
    j["stallwatch.frame.module"] = f.module.empty() ? json(nullptr) : json(f.module);
    j["stallwatch.frame.module_offset"] = hex(f.module_offset);
    j["stallwatch.frame.inlined"] = f.inlined;
    j["stallwatch.frame.class"] = to_string(classify(f, executable));
    return j;
}

class JsonWriter final : public Writer {
public:
    explicit JsonWriter(std::ostream& out) : Writer(out) {}

    void attached(const Target& t, const WatchInfo& w) override {
        json j = base("attached", t, now_rfc3339());
        j["stallwatch.workers.registered"] = w.workers;
        j["stallwatch.threshold_ms"] = ms(w.threshold);
        j["stallwatch.interval_ms"] = ms(w.interval);
        emit(j);
    }

    void detached(const Target& t, std::string_view reason, std::uint64_t reports,
                  std::uint64_t withdrawn) override {
        json j = base("detached", t, now_rfc3339());
        j["stallwatch.reason"] = reason;
        j["stallwatch.reports"] = reports;
        j["stallwatch.reports_withdrawn"] = withdrawn;
        emit(j);
    }

    void error(const Target& t, std::string_view message) override {
        json j = base("error", t, now_rfc3339());
        j["error.message"] = message;
        emit(j);
    }

    void stall(const StallReport& r) override {
        const auto& e = r.event;
        json j = base(kind_name(e.kind), r.target, rfc3339(r.unix_ns));
        add_worker(j, e, r.registered);
        if (e.kind != detect::EventKind::sample) j["stallwatch.suppressed"] = e.suppressed;
        j["stallwatch.thread.state"] = std::string(1, r.thread.state);
        j["stallwatch.thread.syscall"] =
            r.thread.syscall_nr >= 0 ? json(proc::syscall_name(r.thread.syscall_nr)) : json(nullptr);
        j["stallwatch.thread.wchan"] = r.thread.wchan.empty() ? json(nullptr) : json(r.thread.wchan);
        j["stallwatch.capture_error"] = r.capture_error.empty() ? json(nullptr) : json(r.capture_error);
        j["stallwatch.stop_window_us"] = static_cast<double>(r.stop_window.count()) / 1e3;
        j["stallwatch.stack.fingerprint"] = r.frames.empty() ? json(nullptr) : json(stack_fingerprint(r.frames, r.target.executable));
        j["stallwatch.stack.truncated"] = r.stopped_early.empty() ? json(nullptr) : json(r.stopped_early);
        json frames = json::array();
        for (std::size_t i = 0; i < r.frames.size(); ++i)
            frames.push_back(frame_json(r.frames[i], i, r.target.executable));
        j["frames"] = std::move(frames);
        emit(j);
    }

    void event(const Target& t, const detect::Event& e) override {
        json j = base(kind_name(e.kind), t, now_rfc3339());
        add_worker(j, e);
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
            k["thread.name"] = o.worker.name;
            k["stallwatch.worker.slot"] = o.worker.slot;
            k["stallwatch.stall.duration_ms"] = ms(o.stalled_for);
            k["stallwatch.reported"] = o.reported;
            open.push_back(std::move(k));
        }
        j["stallwatch.summary.open_stalls"] = std::move(open);
        emit(j);
    }

private:
    void emit(const json& j) {
        // Names come from the target and may hold any byte: replace invalid
        // UTF-8 rather than fail, so no event is ever lost.
        out_ << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
        out_.flush();
    }

};

}  // namespace

std::unique_ptr<Writer> make_json_writer(std::ostream& out) { return std::make_unique<JsonWriter>(out); }

}  // namespace sw::report
