#include "report/writer.hpp"

#include "common/text.hpp"

namespace sw::report {

std::unique_ptr<Writer> make_text_writer(std::ostream& out, WriterOptions opt);
std::unique_ptr<Writer> make_json_writer(std::ostream& out, std::size_t max_event_bytes);
std::unique_ptr<Writer> make_folded_writer(std::ostream& out);

std::unique_ptr<Writer> make_writer(Format f, std::ostream& out, WriterOptions opt) {
    switch (f) {
    case Format::json: return make_json_writer(out, opt.max_event_bytes);
    case Format::folded: return make_folded_writer(out);
    case Format::text: break;
    }
    return make_text_writer(out, opt);
}

std::string_view to_string(Format f) {
    switch (f) {
    case Format::text: return "text";
    case Format::json: return "json";
    case Format::folded: return "folded";
    }
    return "text";
}

std::uint64_t unix_now_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

std::string now_rfc3339() { return rfc3339(unix_now_ns()); }

}  // namespace sw::report
