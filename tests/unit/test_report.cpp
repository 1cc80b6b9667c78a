// The writers, from report values: what a target names cannot forge output.
#include <doctest/doctest.h>

#include <sstream>

#include "report/writer.hpp"

using namespace sw;

TEST_CASE("folded output: semicolons, newlines and spaces in names never add a frame, a line or a field") {
    report::StallReport r;
    r.event.kind = detect::EventKind::stall;
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
