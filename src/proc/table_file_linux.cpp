#include "proc/table_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>

#include "proc/process.hpp"
#include "stallwatch/table_abi.h"
#include "table/parse.hpp"

namespace sw::proc {
namespace {

constexpr std::string_view memfd_link = "/memfd:" STALLWATCH_TABLE_MEMFD_NAME " (deleted)";

struct DirCloser {
    void operator()(DIR* d) const { ::closedir(d); }
};

Error access_error(pid_t pid, int e, std::string_view what) {
    if (e == ENOENT || e == ESRCH)
        return make_error(Errc::no_such_process, fmt::format("process {} exited", pid), e);
    if (e == EACCES || e == EPERM)
        return make_error(Errc::permission_denied,
                          fmt::format("not permitted to read {} of pid {}: {}", what, pid,
                                      permission_hint(pid)),
                          e);
    return make_error(Errc::io, fmt::format("cannot read {} of pid {}: {}", what, pid,
                                            std::strerror(e)),
                      e);
}

std::optional<int> parse_fd(const char* name) {
    int v = -1;
    std::string_view s(name);
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v < 0) return std::nullopt;
    return v;
}

Result<std::uint64_t> file_size(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        return make_error(Errc::io, fmt::format("fstat of the table: {}", std::strerror(errno)),
                          errno);
    if (!S_ISREG(st.st_mode))
        return make_error(Errc::corrupt_table, "the table is not a regular memory file");
    return static_cast<std::uint64_t>(st.st_size);
}

// The fd we opened must be what the shim creates: a memory file (memfd or
// shmem, the only files that answer F_GET_SEALS), regular, and owned by the
// user the process runs as. Anything else (a FIFO that would block, a file
// of another user slipped into the process) is refused.
Status vet(int fd, pid_t pid) {
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        return make_error(Errc::io, fmt::format("fstat of the table: {}", std::strerror(errno)), errno);
    if (!S_ISREG(st.st_mode) || ::fcntl(fd, F_GET_SEALS) < 0)
        return make_error(Errc::corrupt_table,
                          fmt::format("the table of pid {} is not a memory file (memfd): refused", pid));
    auto ids = process_ids(pid);
    if (!ids) return std::move(ids).error();
    for (uid_t u : ids->uid)
        if (st.st_uid == u) return ok_status();
    return make_error(Errc::corrupt_table,
                      fmt::format("the table of pid {} belongs to uid {}, not to the user the process "
                                  "runs as (uid {}): refused",
                                  pid, st.st_uid, ids->uid[1]));
}

}  // namespace

Result<TableFile> TableFile::open(pid_t pid, std::shared_ptr<NamespaceIds> ids) {
    if (auto st = check_process(pid); !st) return std::move(st).error();
    if (!ids) ids = std::make_shared<NamespaceIds>(pid);

    // /proc/PID/fd, or a running thread's when the main thread has exited
    // (pthread_exit()) while others run on: the main thread's is empty then.
    std::string dir = fd_dir(pid);
    std::unique_ptr<DIR, DirCloser> d(::opendir(dir.c_str()));
    if (!d) return access_error(pid, errno, "the open files");

    std::vector<int> found;
    while (dirent* e = ::readdir(d.get())) {
        auto n = parse_fd(e->d_name);
        if (!n) continue;
        char target[256];
        ssize_t len = ::readlinkat(::dirfd(d.get()), e->d_name, target, sizeof target);
        if (len <= 0 || static_cast<size_t>(len) >= sizeof target) continue;
        if (std::string_view(target, static_cast<size_t>(len)) == memfd_link) found.push_back(*n);
    }
    if (found.empty())
        return make_error(
            Errc::no_table,
            fmt::format("process {} ({}) has no stallwatch table: link it with the stallwatch "
                        "shim (pkg-config --libs stallwatch) and call stallwatch_init() at "
                        "start-up, or start an event loop with libstallwatch-preload.so in "
                        "LD_PRELOAD (stallwatch run --preload), and check that STALLWATCH_DISABLE "
                        "is not set",
                        pid, comm(pid)));

    // Normally one. With several (a table inherited from a parent that did
    // not use our shim, a dup), prefer the one this process created.
    std::optional<TableFile> fallback;
    std::optional<Error> first_error;
    for (int n : found) {
        std::string path = fmt::format("{}/{}", dir, n);
        // O_NONBLOCK: if the fd was swapped for a FIFO since readlink, the
        // open must not hang; vet() then refuses it.
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
            if (!first_error) first_error = access_error(pid, errno, "the table");
            continue;
        }
        TableFile tf(UniqueFd(fd), pid, n, ids);
        if (auto ok = vet(fd, pid); !ok) {
            if (!first_error) first_error = std::move(ok).error();
            continue;
        }
        std::int32_t creator = 0;
        if (::pread(fd, &creator, sizeof creator, offsetof(stallwatch_table_header, pid)) ==
                sizeof creator &&
            (creator == pid || creator == ids->inner_pid()))  // the shim writes the pid it sees
            return tf;
        if (!fallback) fallback.emplace(std::move(tf));
    }
    if (fallback) return std::move(*fallback);
    return std::move(*first_error);
}

Status TableFile::read_image(std::vector<std::byte>& out, std::uint64_t size) {
    out.resize(size);  // no fill when the size is the last one
    std::uint64_t done = 0;
    while (done < size) {
        ssize_t n = ::pread(fd_.get(), out.data() + done, size - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return make_error(Errc::io, fmt::format("reading the table: {}", std::strerror(errno)),
                              errno);
        if (n == 0) break;  // the file shrank: the parser reports it
        done += static_cast<std::uint64_t>(n);
    }
    out.resize(done);
    return ok_status();
}

TableFile::TableFile(UniqueFd fd, pid_t pid, int fd_number, std::shared_ptr<NamespaceIds> ids)
    : fd_(std::move(fd)), pid_(pid), fd_number_(fd_number), ids_(std::move(ids)) {
    struct stat st {};
    if (fd_.valid() && ::fstat(fd_.get(), &st) == 0) {
        dev_ = st.st_dev;
        inode_ = st.st_ino;
    }
}

std::optional<TableFile::SlotNow> TableFile::slot_from_bytes(std::span<const std::byte> bytes,
                                                             std::uint32_t generation) {
    stallwatch_slot s{};
    if (bytes.size() != sizeof s) return std::nullopt;
    std::memcpy(&s, bytes.data(), sizeof s);
    bool live = s.state == STALLWATCH_SLOT_RUNNING || s.state == STALLWATCH_SLOT_PARKED;
    if (!live || s.generation != generation) return std::nullopt;
    return SlotNow{s.state == STALLWATCH_SLOT_PARKED ? table::WorkerState::parked : table::WorkerState::running,
                   s.progress};
}

std::optional<TableFile::SlotNow> TableFile::read_slot(std::uint32_t slot, std::uint32_t generation) {
    if (slot >= STALLWATCH_MAX_CAPACITY) return std::nullopt;
    std::byte b[sizeof(stallwatch_slot)];
    off_t at = static_cast<off_t>(slots_at_ + std::uint64_t{slot} * STALLWATCH_SLOT_SIZE);
    ssize_t n;
    do n = ::pread(fd_.get(), b, sizeof b, at);
    while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof b)) return std::nullopt;
    return slot_from_bytes(b, generation);
}

std::optional<MappedFileBytes> TableFile::slot_location(std::uint32_t slot) const {
    if (slot >= STALLWATCH_MAX_CAPACITY || inode_ == 0) return std::nullopt;
    return MappedFileBytes{dev_, inode_, slots_at_ + std::uint64_t{slot} * STALLWATCH_SLOT_SIZE,
                           sizeof(stallwatch_slot)};
}

std::optional<std::uint64_t> TableFile::read_progress(std::uint32_t slot, std::uint32_t generation) {
    auto now = read_slot(slot, generation);
    if (!now) return std::nullopt;
    return now->progress;
}

void TableFile::Unmap::operator()(const std::byte* p) const noexcept {
    if (p) ::munmap(const_cast<std::byte*>(p), size);
}

// The largest file a valid table needs (header, group records, every slot),
// with room for page rounding: a bigger one is read with pread, whose path
// reports what is wrong with it.
constexpr std::uint64_t largest_table =
    2 * (STALLWATCH_HEADER_SIZE + std::uint64_t{STALLWATCH_MAX_GROUPS} * STALLWATCH_GROUP_SIZE +
         std::uint64_t{STALLWATCH_MAX_CAPACITY} * STALLWATCH_SLOT_SIZE);

void TableFile::try_map() {
    map_tried_ = true;
    constexpr int sealed = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    int seals = ::fcntl(fd_.get(), F_GET_SEALS);
    if (seals < 0 || (seals & sealed) != sealed) return;
    // Plain shared memory only: a hugetlb file can lose its pages (a hole
    // punched, the pool used up) and fault the reader even when sealed.
    struct statfs fs {};
    if (::fstatfs(fd_.get(), &fs) != 0 || fs.f_type != TMPFS_MAGIC) return;
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(STALLWATCH_HEADER_SIZE) ||
        static_cast<std::uint64_t>(st.st_size) > largest_table)
        return;
    auto size = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd_.get(), 0);
    if (p == MAP_FAILED) return;
    map_ = std::unique_ptr<const std::byte, Unmap>(static_cast<const std::byte*>(p), Unmap{size});
}

// The sealed table: its size is fixed, so it is asked once. The image is
// copied into a buffer of our own before it is parsed (the parser must not
// see bytes change under it), then the live mapping serves as the second
// image that confirms what the first one says.
Result<table::Snapshot> TableFile::read_mapped() {
    const std::size_t size = map_.get_deleter().size;
    std::span<const std::byte> live(map_.get(), size);
    auto& first = first_;
    first.assign(live.begin(), live.begin() + static_cast<std::ptrdiff_t>(STALLWATCH_HEADER_SIZE));
    auto header = table::parse_header(first, size);
    if (!header) return std::move(header).error();
    auto want = table::image_size(*header);
    if (want > size)
        return make_error(Errc::corrupt_table, fmt::format("corrupt stallwatch table: {} bytes needed, the "
                                                           "file has {}",
                                                           want, size));
    slots_at_ = header->header_size;
    first.assign(live.begin(), live.begin() + static_cast<std::ptrdiff_t>(want));
    auto a = table::parse_table(first, size);
    if (!a) return std::move(a).error();
    auto second = live.first(static_cast<std::size_t>(want));
    table::Snapshot snap;
    if (std::memcmp(first.data(), second.data(), want) == 0) {
        snap = std::move(*a);
    } else {
        auto c = table::confirm_images(std::move(*a), first, second, size);
        if (!c) return std::move(c).error();
        snap = std::move(*c);
    }
    ids_->translate(snap);
    return snap;
}

Result<table::Snapshot> TableFile::read() {
    if (!map_tried_) try_map();
    if (map_) return read_mapped();
    // pread, never mmap: a table that its writer shrinks gives a short read
    // here, not a SIGBUS in the monitor.
    // One read of the image as large as it was last time (the header alone
    // the first time): the header and the slots usually come together.
    auto& first = first_;
    if (auto st = read_image(first, std::max<std::uint64_t>(last_image_size_, STALLWATCH_HEADER_SIZE)); !st)
        return std::move(st).error();
    // The file's size is asked again only when the header changed (a host
    // agent reads hundreds of tables a hundred times a second). A file cut
    // short under an unchanged header still shows, as a short read below.
    std::size_t head = std::min<std::size_t>(first.size(), STALLWATCH_HEADER_SIZE);
    if (!last_file_size_ || last_header_.size() != head ||
        std::memcmp(last_header_.data(), first.data(), head) != 0) {
        auto size = file_size(fd_.get());
        if (!size) return std::move(size).error();
        last_file_size_ = *size;
        last_header_.assign(first.begin(), first.begin() + static_cast<std::ptrdiff_t>(head));
    }
    auto size = last_file_size_;
    auto header = table::parse_header(first, *size);
    if (!header) return std::move(header).error();

    auto want = table::image_size(*header);
    slots_at_ = header->header_size;
    auto changed = [&](std::size_t got) {
        return make_error(Errc::corrupt_table,
                          fmt::format("corrupt stallwatch table: it changed size while being read "
                                      "({} of {} bytes)",
                                      got, want));
    };
    if (first.size() < want) {  // more slots in use than last time
        if (auto st = read_image(first, want); !st) return std::move(st).error();
        if (first.size() < want) return changed(first.size());
    }
    first.resize(want);
    last_image_size_ = want;
    auto a = table::parse_table(first, *size);
    if (!a) return std::move(a).error();
    auto& second = second_;
    if (auto st = read_image(second, want); !st) return std::move(st).error();
    if (second.size() < want) return changed(second.size());
    // The same bytes twice: nothing moved between the reads, and the second
    // parse would give the first's workers back (confirm keeps them all).
    // Else only the identities of the first's workers are checked in the
    // second image (what confirm() of a second parse would keep).
    table::Snapshot snap;
    if (std::memcmp(first.data(), second.data(), want) == 0) {
        snap = std::move(*a);
    } else {
        auto c = table::confirm_images(std::move(*a), first, second, *size);
        if (!c) return std::move(c).error();
        snap = std::move(*c);
    }
    ids_->translate(snap);
    return snap;
}

}  // namespace sw::proc
