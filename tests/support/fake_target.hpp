// An in-memory target process for unit tests of the logic above the
// platform (proc/target.hpp): its table is a memfd the test rewrites, its
// threads' states, its fds and its exit are plain fields, and a capture
// returns what the test decides (a stack, an error, or "moved on").
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <functional>
#include <map>

#include "proc/target.hpp"
#include "support/fake_memory.hpp"
#include "support/table_image.hpp"

namespace sw::test {

class FakeTarget final : public proc::Target {
public:
    // The pid is this test process's own, so that the unwinder and the
    // symbolizer the sampler builds find a real process to look at.
    FakeTarget() : pid_(::getpid()), table_fd_(::memfd_create("fake-stallwatch-table", MFD_CLOEXEC)) {}

    // Writes the table's bytes (the whole image, in place).
    void write_table(const TableImage& image) {
        auto bytes = image.bytes();
        REQUIRE(::pwrite(table_fd_.get(), bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
    }

    // ---- what the test controls ----
    bool has_table = true;
    std::uint64_t table_file_inode = 1;          // change it to play an exec
    std::map<pid_t, proc::ThreadState> states;   // default: running, no syscall
    bool is_exited = false;
    // Called for each capture; the default captures an empty stack.
    std::function<Result<proc::CaptureOutcome>(pid_t tid, const proc::StillStalled&)> on_capture;
    std::vector<pid_t> captured;  // tids, in order
    FakeMemory fake_memory;

    // ---- proc::Target ----
    pid_t pid() const override { return pid_; }
    std::string name() override { return "fake"; }
    std::string executable() override { return "/fake/app"; }
    std::string owner() override { return "tester"; }
    pid_t pid_in_namespace() override { return 0; }
    pid_t tid_in_namespace(pid_t) override { return 0; }
    pid_t tid_from_namespace(pid_t inner) override { return has_thread(inner) ? inner : 0; }
    std::string cgroup() override { return "/fake.slice/app.service"; }
    Result<std::vector<pid_t>> threads() override {
        std::vector<pid_t> out;
        for (const auto& entry : states) out.push_back(entry.first);
        return out;
    }
    std::string thread_name(pid_t tid) override { return "thread-" + std::to_string(tid); }
    proc::ThreadState thread_state(pid_t tid) override {
        auto it = states.find(tid);
        return it == states.end() ? proc::ThreadState{'R', -1, ""} : it->second;
    }
    bool thread_frozen(pid_t tid) override {
        char s = thread_state(tid).state;
        return s == 'T' || s == 't';
    }
    bool has_thread(pid_t tid) override { return states.count(tid) != 0; }
    Result<std::vector<proc::Mapping>> mappings() override { return std::vector<proc::Mapping>{}; }
    proc::MemoryReader& memory() override { return fake_memory; }
    std::unique_ptr<proc::FileAccess> file_access() override { return std::make_unique<proc::FileAccess>(); }
    // Its files are this machine's (the pid is ours).
    Result<proc::OpenedFile> open_mapped_file(const proc::Mapping& m) override {
        auto fd = open_file(m.path);
        if (!fd) return std::move(fd).error();
        return proc::OpenedFile{std::move(*fd), false};
    }
    Result<UniqueFd> open_file(const std::string& path) override {
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd.valid()) return make_error(Errc::io, "fake: cannot open " + path);
        return fd;
    }
    Result<proc::TableFile> open_table() override {
        if (!has_table) return make_error(Errc::no_table, "fake: no table");
        return proc::TableFile::adopt(UniqueFd(::dup(table_fd_.get())), pid_);
    }
    std::optional<proc::FileId> fd_file(int) override {
        if (!has_table) return std::nullopt;
        return proc::FileId{1, table_file_inode};
    }
    UniqueFd exit_notifier() override { return UniqueFd(); }
    bool exited() override { return is_exited; }
    Result<proc::CaptureOutcome> capture(pid_t tid, const std::vector<proc::Mapping>&, const proc::CaptureOptions&,
                                         const proc::StillStalled& still_stalled) override {
        captured.push_back(tid);
        if (on_capture) return on_capture(tid, still_stalled);
        proc::CaptureOutcome out;
        out.capture.pid = pid_;
        out.capture.tid = tid;
        out.dropped = still_stalled && !still_stalled();
        return out;
    }

private:
    pid_t pid_;
    UniqueFd table_fd_;
};

}  // namespace sw::test
