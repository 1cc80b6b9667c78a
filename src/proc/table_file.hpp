// Finding and reading a process's progress table (Linux: a memfd named
// "stallwatch" among /proc/<pid>/fd). All system calls of the table path live
// here; the bytes go to the pure parser in table/.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "common/result.hpp"
#include "common/unique_fd.hpp"
#include "proc/maps.hpp"
#include "proc/namespaces.hpp"
#include "stallwatch/table_abi.h"
#include "table/snapshot.hpp"

namespace sw::proc {

class TableFile {
public:
    // Finds and opens the table of `pid`. Errors: no_such_process,
    // permission_denied, no_table (with a hint on adding the shim), io.
    // `ids` translates the table's tids (one is made when not given).
    static Result<TableFile> open(pid_t pid, std::shared_ptr<NamespaceIds> ids = nullptr);

    // Wraps an already open table file (tests, and tables handed over by
    // `run`). `pid` is the process the table belongs to.
    static TableFile adopt(UniqueFd fd, pid_t pid) {
        return TableFile(std::move(fd), pid, -1, std::make_shared<NamespaceIds>(pid));
    }

    // Reads a consistent snapshot of the live workers, their tids as this
    // monitor sees them (NamespaceIds::translate). Errors: table_not_ready,
    // unsupported_version, corrupt_table, io.
    Result<table::Snapshot> read();

    // The state and progress of one slot if it is still the same live
    // registration (same generation), else nullopt. One small pread: cheap
    // enough for the stop window.
    struct SlotNow {
        table::WorkerState state = table::WorkerState::running;
        std::uint64_t progress = 0;
    };
    std::optional<SlotNow> read_slot(std::uint32_t slot, std::uint32_t generation);

    // read_slot's progress.
    std::optional<std::uint64_t> read_progress(std::uint32_t slot, std::uint32_t generation);

    // Where slot `slot` is in the table file, for reading it from the
    // target's own shared mapping of the table inside the stop window, in
    // the same system call as the stack (proc::StillStalled). Nullopt when
    // the file cannot be identified.
    std::optional<MappedFileBytes> slot_location(std::uint32_t slot) const;

    // read_slot's answer from a slot's bytes read elsewhere (exactly
    // STALLWATCH_SLOT_SIZE of them, else nullopt).
    static std::optional<SlotNow> slot_from_bytes(std::span<const std::byte> bytes, std::uint32_t generation);

    pid_t pid() const noexcept { return pid_; }
    int fd_number() const noexcept { return fd_number_; }

private:
    TableFile(UniqueFd fd, pid_t pid, int fd_number, std::shared_ptr<NamespaceIds> ids);
    // Reads the table's first `size` bytes into `out` (fewer if the file is
    // shorter). The two buffers are kept from read to read: a monitor reads
    // a large table a hundred times a second.
    Status read_image(std::vector<std::byte>& out, std::uint64_t size);
    std::vector<std::byte> first_, second_;

    // A read-only shared mapping of the whole table, made at the first read
    // when the file's size is sealed (F_SEAL_SHRINK, F_SEAL_GROW and
    // F_SEAL_SEAL, as the shim and the Rust crate leave it): such a file can
    // never shrink under the mapping, so reading it cannot fault. The read
    // then copies from it instead of two preads (no system call per read).
    struct Unmap {
        std::size_t size;  // no default member initializer: unique_ptr needs it default-constructible here
        void operator()(const std::byte* p) const noexcept;
    };
    std::unique_ptr<const std::byte, Unmap> map_;
    bool map_tried_ = false;
    void try_map();
    Result<table::Snapshot> read_mapped();

    UniqueFd fd_;
    pid_t pid_;
    int fd_number_;
    std::shared_ptr<NamespaceIds> ids_;
    std::uint64_t last_image_size_ = 0;  // bytes the last read needed
    std::uint64_t dev_ = 0, inode_ = 0;  // the table file's identity (fstat), 0 when unknown
    std::uint64_t slots_at_ = STALLWATCH_HEADER_SIZE;  // slot 0's offset (the header's header_size)
    // The header bytes and file size of the last read (file size asked
    // again only when the header changes).
    std::vector<std::byte> last_header_;
    std::optional<std::uint64_t> last_file_size_;
};

}  // namespace sw::proc
