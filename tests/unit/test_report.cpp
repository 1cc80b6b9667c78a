// The writers, from report values: what a target names cannot forge output.
#include <doctest/doctest.h>

#include <sstream>

#include "report/writer.hpp"

using namespace sw;

TEST_CASE("folded output: semicolons, newlines and spaces in names never add a frame, a line or a field") {
    report::StallReport r;
    r.event.kind = detect::EventKind::sample;  // dump: each sample counts 1
    r.event.worker.name = "w;x y\nz";
    symbolize::Frame inner, outer;
    inner.function = "inner;fake_frame\nfake_line 7";
    inner.module = "/bin/app";
    outer.function = "operator()(int) const";  // spaces in a C++ name stay
    outer.module = "/bin/app";
    r.frames = {inner, outer};
    std::ostringstream out;
    auto w = report::make_writer(report::Format::folded, out);
    w->stall(r);
    w->stall(r);
    w->finish();
    CHECK(out.str() == "w_x_y_z;operator()(int) const;inner_fake_frame_fake_line 7 2\n");
}

TEST_CASE("folded output of a watch: each stack weighs the milliseconds its stalls lasted, on their last stack") {
    using namespace std::chrono_literals;
    auto report = [](std::uint64_t episode, const char* function, std::chrono::milliseconds stalled) {
        report::StallReport r;
        r.event.kind = detect::EventKind::stall;
        r.event.episode = episode;
        r.event.stalled_for = stalled;
        r.event.worker.name = "w";
        symbolize::Frame f;
        f.function = function;
        f.module = "/bin/app";
        r.frames = {f};
        return r;
    };
    auto end = [](std::uint64_t episode, std::chrono::milliseconds stalled) {
        detect::Event e;
        e.kind = detect::EventKind::recovered;
        e.episode = episode;
        e.stalled_for = stalled;
        return e;
    };
    std::ostringstream out;
    auto w = report::make_writer(report::Format::folded, out);
    report::Target t;
    w->stall(report(1, "wait_a", 100ms));
    w->stall(report(1, "wait_a", 200ms));  // an update: the same stall, not another
    w->event(t, end(1, 1500ms));
    w->stall(report(2, "wait_b", 100ms));
    w->event(t, end(2, 250ms));
    w->stall(report(3, "wait_a", 100ms));
    w->event(t, end(3, 300ms));
    w->event(t, end(9, 5000ms));  // never reported: weighs nothing
    w->finish();
    CHECK(out.str() == "w;wait_a 1800\nw;wait_b 250\n");
}
