// libunwind-ptrace backend. Every accessor is ours, so nothing here needs
// the thread to be stopped. The unwind tables are the .eh_frame_hdr search
// tables the target has loaded (eh_frame_hdr.hpp), found through its
// mappings and read through its memory: the vDSO's, and those of modules in
// a container or replaced on disk, as well as the others. Modules without
// .eh_frame_hdr (static executables) get a table built from their file
// (eh_frame_tables.hpp). libunwind's own _UPT_find_proc_info is not used:
// it opens the paths of /proc/<pid>/maps in our mount namespace.
#include <libunwind-ptrace.h>

#include <fmt/format.h>

#include <cstring>
#include <deque>
#include <optional>
#include <unordered_map>

#include "proc/loaded_module.hpp"
#include "proc/memory.hpp"
#include "proc/target.hpp"
#include "unwind/eh_frame_hdr.hpp"
#include "unwind/eh_frame_tables.hpp"
#include "unwind/unwinder.hpp"
#include "unwind/vdso.hpp"

// libunwind's remote-table lookup: exported, but not declared by its headers.
#define sw_dwarf_search_unwind_table UNW_OBJ(dwarf_search_unwind_table)
extern "C" int sw_dwarf_search_unwind_table(unw_addr_space_t, unw_word_t, unw_dyn_info_t*, unw_proc_info_t*,
                                            int, void*);

namespace sw::unwind {
namespace {

// libunwind passes its `arg` through to the UPT helpers, which need theirs:
// the capture being unwound is reached through this pointer instead. The
// monitor unwinds on one thread at a time.
thread_local const proc::ThreadCapture* current = nullptr;

constexpr std::uint64_t page_size = 4096;

}  // namespace

struct Unwinder::Impl {
    proc::Target& target;
    proc::MemoryReader* memory;
    void* upt = nullptr;
    unw_addr_space_t as = nullptr;
    unw_accessors_t acc{};
    // Pages of the live process read so far (unwind tables, code): they do
    // not change while the mapping exists, so one read serves every capture.
    std::unordered_map<std::uint64_t, std::vector<std::byte>> pages;
    bool hit_copy_end = false;
    // The vDSO's unwind table, found on first use (it has no file on disk).
    std::optional<VdsoTable> vdso;
    bool vdso_looked = false;
    // The loaded .eh_frame_hdr table of each executable mapping looked at
    // (nullopt: it has none), kept until flush. A deque: libunwind holds
    // pointers to the descriptions while it searches.
    struct ModuleTable {
        std::uint64_t start = 0, end = 0;
        std::optional<unw_dyn_info_t> info;
    };
    std::deque<ModuleTable> module_tables;
    // The mappings, read once per unwind at the first miss.
    std::optional<std::vector<proc::Mapping>> maps;
    // Tables built from .eh_frame for modules linked without .eh_frame_hdr.
    EhFrameTables eh_frames;

    explicit Impl(proc::Target& t) : target(t), memory(&t.memory()), eh_frames(t) {}

    const std::vector<proc::Mapping>* mappings() {
        if (!maps) {
            auto got = target.mappings();
            if (!got) return nullptr;
            maps = std::move(*got);
        }
        return &*maps;
    }

    // The loaded search table that covers `ip`, or nullptr.
    unw_dyn_info_t* module_table(std::uint64_t ip) {
        for (auto& t : module_tables)
            if (ip >= t.start && ip < t.end) return t.info ? &*t.info : nullptr;
        const auto* all = mappings();
        const proc::Mapping* m = all ? proc::find_mapping(*all, RemoteAddr{ip}) : nullptr;
        if (!m || !m->executable) return nullptr;
        ModuleTable& t = module_tables.emplace_back();
        t.start = m->start.value();
        t.end = m->end.value();
        auto mod = proc::read_loaded_module(*memory, *all, *m);
        if (!mod || !mod->eh_frame_hdr) return nullptr;
        std::byte head[16];
        std::size_t got = memory->read(*mod->eh_frame_hdr, head);
        t.info = eh_frame_hdr_table(std::span(head, got), mod->eh_frame_hdr->value(), mod->eh_frame_hdr_size,
                                    mod->text_start.value(), mod->text_end.value());
        return t.info ? &*t.info : nullptr;
    }

    static inline std::unordered_map<unw_addr_space_t, Impl*> by_as;

    bool read_live(std::uint64_t addr, unw_word_t* out) {
        std::uint64_t page = addr & ~(page_size - 1);
        if (addr + sizeof(unw_word_t) > page + page_size)  // straddles two pages
            return memory->read_value(RemoteAddr{addr}, *out);
        auto it = pages.find(page);
        if (it == pages.end()) {
            std::vector<std::byte> buf(page_size);
            if (!memory->read_exact(RemoteAddr{page}, buf)) return false;
            it = pages.emplace(page, std::move(buf)).first;
        }
        std::memcpy(out, it->second.data() + (addr - page), sizeof *out);
        return true;
    }
};

namespace {

Unwinder::Impl* impl_of(unw_addr_space_t as) {
    auto it = Unwinder::Impl::by_as.find(as);
    return it == Unwinder::Impl::by_as.end() ? nullptr : it->second;
}

int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t* pi, int need, void* arg) {
    auto* self = impl_of(as);
    if (!self) return -UNW_EINVAL;
    if (!self->vdso_looked) {
        self->vdso_looked = true;
        if (const auto* maps = self->mappings()) self->vdso = load_vdso(*maps, *self->memory);
    }
    if (self->vdso && self->vdso->contains(ip))
        return sw_dwarf_search_unwind_table(as, ip, &self->vdso->info, pi, need, arg);
    if (auto* di = self->eh_frames.built(ip)) return sw_dwarf_search_unwind_table(as, ip, di, pi, need, arg);
    if (auto* di = self->module_table(ip)) return sw_dwarf_search_unwind_table(as, ip, di, pi, need, arg);
    // No .eh_frame_hdr (a static non-PIE executable): our own table.
    if (auto* di = self->eh_frames.find(ip)) return sw_dwarf_search_unwind_table(as, ip, di, pi, need, arg);
    return -UNW_ENOINFO;
}

void put_unwind_info(unw_addr_space_t as, unw_proc_info_t* pi, void*) {
    if (auto* self = impl_of(as)) _UPT_put_unwind_info(as, pi, self->upt);
}

int get_dyn_info_list_addr(unw_addr_space_t, unw_word_t*, void*) { return -UNW_ENOINFO; }

int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t* val, int write, void*) {
    if (write) return -UNW_EREADONLYREG;
    auto* self = impl_of(as);
    if (!self || !current) return -UNW_EINVAL;
    if (auto table = self->eh_frames.read(addr, val)) return *table ? 0 : -UNW_EINVAL;
    const auto& stack = current->stack;
    RemoteAddr at{addr};
    if (stack.contains(at, sizeof *val)) {
        std::memcpy(val, stack.bytes.data() + (at - stack.base), sizeof *val);
        return 0;
    }
    // A stack address past the copy: the live stack has moved on since, so
    // reading it would invent frames. Stop here instead.
    if (at >= stack.base && at < stack.base + stack.bytes.size() + (1u << 20) && !stack.reached_top) {
        self->hit_copy_end = true;
        return -UNW_EINVAL;
    }
    return self->read_live(addr, val) ? 0 : -UNW_EINVAL;
}

int access_reg(unw_addr_space_t, unw_regnum_t reg, unw_word_t* val, int write, void*) {
    if (write || !current) return -UNW_EREADONLYREG;
    if (reg < 0 || static_cast<std::size_t>(reg) >= proc::Registers::max) return -UNW_EBADREG;
    *val = current->regs.dwarf[static_cast<std::size_t>(reg)];
    return 0;
}

int access_fpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t*, int, void*) { return -UNW_EBADREG; }

int resume(unw_addr_space_t, unw_cursor_t*, void*) { return -UNW_EINVAL; }

int get_proc_name(unw_addr_space_t, unw_word_t, char*, size_t, unw_word_t*, void*) {
    return -UNW_ENOINFO;  // names come from libdw
}

// Whether CFI covers `ip` (for a return address, the call before it).
bool has_unwind_info(unw_addr_space_t as, unw_word_t ip) {
    unw_proc_info_t pi{};
    if (find_proc_info(as, ip, &pi, 0, nullptr) < 0) return false;
    put_unwind_info(as, &pi, nullptr);
    return true;
}

}  // namespace

Unwinder::Unwinder(proc::Target& target) : impl_(std::make_unique<Impl>(target)) {
    // Only for _UPT_put_unwind_info, which frees what the table search
    // allocated; it reads nothing of the process.
    impl_->upt = _UPT_create(target.pid());
    impl_->acc.find_proc_info = find_proc_info;
    impl_->acc.put_unwind_info = put_unwind_info;
    impl_->acc.get_dyn_info_list_addr = get_dyn_info_list_addr;
    impl_->acc.access_mem = access_mem;
    impl_->acc.access_reg = access_reg;
    impl_->acc.access_fpreg = access_fpreg;
    impl_->acc.resume = resume;
    impl_->acc.get_proc_name = get_proc_name;
    impl_->as = unw_create_addr_space(&impl_->acc, 0);
    if (impl_->as) {
        unw_set_caching_policy(impl_->as, UNW_CACHE_GLOBAL);
        Impl::by_as[impl_->as] = impl_.get();
    }
}

Unwinder::~Unwinder() {
    if (impl_->as) {
        Impl::by_as.erase(impl_->as);
        unw_destroy_addr_space(impl_->as);
    }
    if (impl_->upt) _UPT_destroy(impl_->upt);
}

void Unwinder::flush() {
    if (impl_->as) unw_flush_cache(impl_->as, 0, 0);
    impl_->pages.clear();
    impl_->vdso_looked = false;
    impl_->module_tables.clear();
    impl_->eh_frames.forget(true);
}

RawStack Unwinder::unwind(const proc::ThreadCapture& cap, std::size_t max_frames) {
    RawStack out;
    if (!impl_->as || !impl_->upt) {
        out.stopped_early = "libunwind could not be initialised";
        return out;
    }
    current = &cap;
    impl_->hit_copy_end = false;
    impl_->maps.reset();
    impl_->eh_frames.forget(false);
    struct Reset {
        ~Reset() { current = nullptr; }
    } reset;

    unw_cursor_t cursor;
    if (int rc = unw_init_remote(&cursor, impl_->as, nullptr); rc < 0) {
        out.frames.push_back(RawFrame{cap.regs.pc, true});
        out.stopped_early = fmt::format("libunwind: {}", unw_strerror(rc));
        return out;
    }
    bool activation = true;
    bool outermost = false;  // libunwind found no caller (not an error)
    for (;;) {
        unw_word_t pc = 0;
        if (unw_get_reg(&cursor, UNW_REG_IP, &pc) < 0 || pc == 0) {
            outermost = !out.frames.empty();
            break;
        }
        out.frames.push_back(RawFrame{RemoteAddr{pc}, activation});
        if (out.frames.size() >= max_frames) {
            out.stopped_early = fmt::format("stopped at {} frames (--max-frames)", max_frames);
            break;
        }
        // The frame after a signal trampoline was interrupted, not calling.
        bool signal_frame = unw_is_signal_frame(&cursor) > 0;
        int rc = unw_step(&cursor);
        if (rc == 0) {
            outermost = true;
            break;
        }
        if (rc < 0) {
            out.stopped_early = impl_->hit_copy_end
                                    ? "stack deeper than the copied part"
                                    : fmt::format("no unwind information past this frame ({})",
                                                  unw_strerror(rc));
            break;
        }
        activation = signal_frame;
    }
    // A real end when the last frame's CFI says so (the return address
    // undefined: _start, clone3). Without CFI libunwind guessed from rbp, and
    // rbp == 0 (or a guess that read 0) ended the stack silently: say so.
    // (Not unw_get_proc_info: it reports success for a frame without CFI.)
    if (outermost) {
        const RawFrame& last = out.frames.back();
        if (!has_unwind_info(impl_->as, (last.activation ? last.pc : last.pc - 1).value()))
            out.stopped_early = fmt::format("no unwind information for the frame at {:#x}", last.pc);
    }
    return out;
}

}  // namespace sw::unwind
