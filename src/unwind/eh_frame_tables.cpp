#include "unwind/eh_frame_tables.hpp"

#include <unistd.h>

#include <cstring>
#include <limits>

#include "common/unique_fd.hpp"

namespace sw::unwind {
namespace {

constexpr std::uint64_t slot_size = std::uint64_t{1} << 32;
// An .eh_frame larger than this is not indexed (libLLVM-14's, a large one,
// is under 5 MiB): a hostile target's file cannot make the monitor read more.
constexpr std::uint64_t max_eh_frame = std::uint64_t{64} << 20;

ReadAt read_file(int fd) {
    return [fd](std::uint64_t offset, std::span<std::byte> out) {
        std::size_t done = 0;
        while (done < out.size()) {
            if (offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max()) - done) return false;
            ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
            if (n <= 0) return false;
            done += static_cast<std::size_t>(n);
        }
        return true;
    };
}

}  // namespace

std::optional<SearchTable> EhFrameTables::build(const proc::Mapping& m) const {
    // The file the target has mapped, opened with its rights (the caller's
    // FsIdentity); when only its path could be opened, the inode check
    // refuses a file swapped in under that path.
    auto file = target_.open_mapped_file(m);
    if (!file || !file->mapped_file) return std::nullopt;
    auto read = read_file(file->fd.get());
    auto layout = read_elf_layout(read);
    if (!layout || layout->has_eh_frame_hdr || !layout->eh_frame) return std::nullopt;
    const auto& sec = *layout->eh_frame;
    auto bias = layout->bias(m.start.value(), m.offset);
    if (!bias || sec.size == 0 || sec.size > max_eh_frame) return std::nullopt;
    std::vector<std::byte> bytes(sec.size);
    if (!read(sec.offset, bytes)) return std::nullopt;
    return index_eh_frame(bytes, sec.vaddr + *bias);
}

unw_dyn_info_t* EhFrameTables::find(std::uint64_t ip) {
    for (auto& mod : modules_)
        if (ip >= mod.start && ip < mod.end) {
            if (!mod.table || ip < mod.table->start_ip || ip >= mod.table->end_ip) return nullptr;
            return &mod.info;
        }
    if (!maps_) {
        auto maps = target_.mappings();
        if (!maps) return nullptr;
        maps_ = std::move(*maps);
    }
    const proc::Mapping* m = proc::find_mapping(*maps_, RemoteAddr{ip});
    if (!m || !m->executable || m->path.empty() || m->path.front() != '/') return nullptr;

    Module mod;
    mod.start = m->start.value();
    mod.end = m->end.value();
    mod.inode = m->inode;
    mod.table = build(*m);
    if (mod.table) {
        const SearchTable& t = *mod.table;
        mod.info.format = UNW_INFO_FORMAT_REMOTE_TABLE;
        mod.info.start_ip = t.start_ip;
        mod.info.end_ip = t.end_ip;
        mod.info.gp = 0;
        mod.info.u.rti.name_ptr = 0;
        mod.info.u.rti.segbase = t.segbase;
        mod.info.u.rti.table_len = t.bytes.size() / sizeof(unw_word_t);
        mod.info.u.rti.table_data = reserved_base + modules_.size() * slot_size;
    }
    modules_.push_back(std::move(mod));
    Module& added = modules_.back();
    if (!added.table || ip < added.table->start_ip || ip >= added.table->end_ip) return nullptr;
    return &added.info;
}

unw_dyn_info_t* EhFrameTables::built(std::uint64_t ip) {
    for (auto& mod : modules_)
        if (mod.table && ip >= mod.table->start_ip && ip < mod.table->end_ip) return &mod.info;
    return nullptr;
}

std::optional<bool> EhFrameTables::read(std::uint64_t addr, unw_word_t* out) const {
    if (addr < reserved_base) return std::nullopt;
    std::uint64_t slot = (addr - reserved_base) / slot_size;
    if (slot >= modules_.size() || !modules_[slot].table) return false;
    const auto& bytes = modules_[slot].table->bytes;
    std::uint64_t off = (addr - reserved_base) % slot_size;
    if (off > bytes.size() || bytes.size() - off < sizeof *out) return false;
    std::memcpy(out, bytes.data() + off, sizeof *out);
    return true;
}

void EhFrameTables::forget(bool tables) {
    maps_.reset();
    if (tables) modules_.clear();
}

}  // namespace sw::unwind
