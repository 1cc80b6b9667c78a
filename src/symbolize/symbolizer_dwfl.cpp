#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "common/unique_fd.hpp"
#include "proc/loaded_module.hpp"
#include "symbolize/rust_demangle.hpp"
#include "symbolize/symbolizer.hpp"

namespace sw::symbolize {

std::string demangle(const char* name) {
    if (!name) return {};
    if (auto rust = demangle_rust(name)) return *rust;
    if (name[0] == '_' && name[1] == 'Z') {
        int status = 0;
        char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
        if (status == 0 && d) {
            std::string out(d);
            std::free(d);
            return out;
        }
        std::free(d);
    }
    return name;
}

namespace {

char* debuginfo_path = nullptr;  // libdwfl's default: the file's dir, .debug/, /usr/lib/debug

}  // namespace

// What the callbacks of one reported module need: set as the module's
// libdwfl user data.
struct ModuleContext {
    Symbolizer::Impl* impl = nullptr;
    proc::Mapping head;              // its first mapping (the ELF header)
    std::vector<std::byte> build_id;  // as loaded in the target; empty when it has none
};

namespace {

int find_elf_in_target(Dwfl_Module*, void**, const char*, Dwarf_Addr, char**, Elf**);
int find_debuginfo_in_target(Dwfl_Module*, void**, const char*, Dwarf_Addr, const char*, const char*, GElf_Word,
                             char**);

const Dwfl_Callbacks callbacks = {find_elf_in_target, find_debuginfo_in_target, nullptr, &debuginfo_path};

const char* attr_string(Dwarf_Die* die, int name) {
    Dwarf_Attribute attr;
    return dwarf_formstring(dwarf_attr_integrate(die, name, &attr));
}

// The best name of a subprogram or inlined subroutine: its linkage name
// demangled (qualified, with parameters), else its plain name.
std::string die_function_name(Dwarf_Die* die) {
    if (const char* linkage = attr_string(die, DW_AT_linkage_name)) return demangle(linkage);
    if (const char* linkage = attr_string(die, DW_AT_MIPS_linkage_name)) return demangle(linkage);
    if (const char* name = attr_string(die, DW_AT_name)) return name;
    return {};
}

std::optional<SourceLocation> call_site(Dwarf_Die* inlined, Dwarf_Files* files) {
    Dwarf_Attribute attr;
    Dwarf_Word file_idx = 0, line = 0, column = 0;
    if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_file, &attr), &file_idx) != 0) return std::nullopt;
    if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_line, &attr), &line) != 0) return std::nullopt;
    dwarf_formudata(dwarf_attr(inlined, DW_AT_call_column, &attr), &column);
    const char* file = files ? dwarf_filesrc(files, file_idx, nullptr, nullptr) : nullptr;
    if (!file) return std::nullopt;
    return SourceLocation{file, static_cast<int>(line), static_cast<int>(column)};
}

std::optional<SourceLocation> line_of(Dwfl_Module* mod, Dwarf_Addr addr) {
    Dwfl_Line* l = dwfl_module_getsrc(mod, addr);
    if (!l) return std::nullopt;
    int line = 0, col = 0;
    const char* file = dwfl_lineinfo(l, nullptr, &line, &col, nullptr, nullptr);
    if (!file || line <= 0) return std::nullopt;
    return SourceLocation{file, line, col};
}

std::optional<SourceLocation> line_in_cu(Dwarf_Die* cudie, Dwarf_Addr addr) {
    Dwarf_Line* l = dwarf_getsrc_die(cudie, addr);
    if (!l) return std::nullopt;
    int line = 0, col = 0;
    dwarf_lineno(l, &line);
    dwarf_linecol(l, &col);
    const char* file = dwarf_linesrc(l, nullptr, nullptr);
    if (!file || line <= 0) return std::nullopt;
    return SourceLocation{file, line, col};
}

// The address ranges of every compile unit of a module, for modules whose
// debug info has no .debug_aranges (clang does not emit it by default, and
// without it libdw finds no unit for an address).
struct CuIndex {
    struct Range {
        Dwarf_Addr low, high;
        Dwarf_Off die;
    };
    std::vector<Range> ranges;  // sorted by low

    static CuIndex build(Dwarf* dw) {
        CuIndex index;
        Dwarf_Off off = 0, next = 0;
        std::size_t header = 0;
        while (dwarf_nextcu(dw, off, &next, &header, nullptr, nullptr, nullptr) == 0) {
            Dwarf_Die cu;
            if (dwarf_offdie(dw, off + header, &cu)) {
                Dwarf_Addr base = 0, low = 0, high = 0;
                for (ptrdiff_t r = 0; (r = dwarf_ranges(&cu, r, &base, &low, &high)) > 0;)
                    if (high > low) index.ranges.push_back({low, high, off + header});
            }
            off = next;
        }
        std::sort(index.ranges.begin(), index.ranges.end(),
                  [](const Range& a, const Range& b) { return a.low < b.low; });
        return index;
    }

    std::optional<Dwarf_Off> find(Dwarf_Addr addr) const {
        auto it = std::upper_bound(ranges.begin(), ranges.end(), addr,
                                   [](Dwarf_Addr a, const Range& r) { return a < r.low; });
        while (it != ranges.begin()) {  // ranges of different units do not overlap in practice
            --it;
            if (addr >= it->low && addr < it->high) return it->die;
            if (it->high <= addr && it->low + (1u << 30) < addr) break;
        }
        return std::nullopt;
    }
};

// No PT_INTERP, and ET_EXEC or a PIE (DF_1_PIE): a statically linked
// executable. Shared libraries have no PT_INTERP either, but are neither.
bool is_static_executable(Dwfl_Module* mod) {
    Dwarf_Addr bias = 0;
    Elf* elf = dwfl_module_getelf(mod, &bias);
    GElf_Ehdr eh;
    std::size_t phnum = 0;
    if (!elf || !gelf_getehdr(elf, &eh) || elf_getphdrnum(elf, &phnum) != 0) return false;
    for (std::size_t i = 0; i < phnum; ++i) {
        GElf_Phdr ph;
        if (gelf_getphdr(elf, static_cast<int>(i), &ph) && ph.p_type == PT_INTERP) return false;
    }
    if (eh.e_type == ET_EXEC) return true;
    if (eh.e_type != ET_DYN) return false;
    for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn; scn = elf_nextscn(elf, scn)) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNAMIC || sh.sh_entsize == 0) continue;
        Elf_Data* data = elf_getdata(scn, nullptr);
        for (std::size_t i = 0; data && i < sh.sh_size / sh.sh_entsize; ++i) {
            GElf_Dyn dyn;
            if (!gelf_getdyn(data, static_cast<int>(i), &dyn)) break;
            if (dyn.d_tag == DT_FLAGS_1) return (dyn.d_un.d_val & DF_1_PIE) != 0;
        }
    }
    return false;
}

}  // namespace

struct Symbolizer::Impl {
    proc::Target& target;
    Options opt;
    Dwfl* dwfl = nullptr;
    std::size_t maps_signature = 0;
    bool reported = false;
    std::unordered_map<std::uint64_t, std::vector<Frame>> cache;  // by looked-up address
    std::deque<ModuleContext> contexts;  // the reported modules' user data
    std::set<std::string> warned;        // modules whose file was refused, said once each
    std::vector<std::string> notices;    // said since the last take_notices

    explicit Impl(proc::Target& t) : target(t) {}

    void report(const std::vector<proc::Mapping>& maps);

    std::vector<Frame> lookup(std::uint64_t addr);
    Frame lookup_name(std::uint64_t addr);
    // Module, offset and static_executable of `addr`, in `base`; nullptr
    // when no module holds it.
    Dwfl_Module* module_of(std::uint64_t addr, Frame& base);
    std::unordered_map<std::uint64_t, Frame> name_cache;  // Detail::name lookups, by address
    Dwarf_Die* unit_of(Dwfl_Module* mod, Dwarf_Addr addr, Dwarf_Addr* bias, Dwarf_Die* storage);

    // The module's file as the target sees it, if its build-id is the one
    // the target runs; -1 (and a notice, once) otherwise.
    int open_module_file(const ModuleContext& ctx, const char* name, char** file_name);
    // A separate debug file for the module, by build-id or debuglink.
    int open_debug_file(const ModuleContext& ctx, const char* file_name, const char* debuglink, char** found);

    std::unordered_map<Dwfl_Module*, CuIndex> cu_index;  // modules without .debug_aranges
    std::unordered_map<Dwfl_Module*, bool> static_module;  // is_static_executable, once per module
};

namespace {

std::vector<std::byte> file_build_id(int fd) {
    std::vector<std::byte> id;
    Elf* elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
    if (!elf) return id;
    const void* bits = nullptr;
    ssize_t n = dwelf_elf_gnu_build_id(elf, &bits);
    if (n > 0 && bits) {
        const auto* b = static_cast<const std::byte*>(bits);
        id.assign(b, b + n);
    }
    elf_end(elf);
    return id;
}

ModuleContext* context_of(void** userdata) { return userdata ? static_cast<ModuleContext*>(*userdata) : nullptr; }

int find_elf_in_target(Dwfl_Module*, void** userdata, const char* name, Dwarf_Addr, char** file_name, Elf** elfp) {
    *elfp = nullptr;
    ModuleContext* ctx = context_of(userdata);
    if (!ctx) return -1;
    return ctx->impl->open_module_file(*ctx, name, file_name);
}

int find_debuginfo_in_target(Dwfl_Module* mod, void** userdata, const char* modname, Dwarf_Addr base,
                             const char* file_name, const char* debuglink, GElf_Word crc, char** found) {
    ModuleContext* ctx = context_of(userdata);
    if (ctx && ctx->impl->opt.debuginfod)  // the standard search: build-id on this machine, then debuginfod
        return dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink, crc, found);
    if (!ctx) return -1;
    return ctx->impl->open_debug_file(*ctx, file_name, debuglink, found);
}

}  // namespace

int Symbolizer::Impl::open_module_file(const ModuleContext& ctx, const char* name, char** file_name) {
    auto file = target.open_mapped_file(ctx.head);
    std::string why;
    if (!file) {
        why = file.error().message;
    } else {
        auto on_disk = file_build_id(file->fd.get());
        if (!ctx.build_id.empty() && on_disk != ctx.build_id)
            why = fmt::format("its file has build-id {}, the process runs {}",
                              on_disk.empty() ? "none" : proc::build_id_hex(on_disk),
                              proc::build_id_hex(ctx.build_id));
        else if (ctx.build_id.empty() && !file->mapped_file)
            why = "it has no build-id and the file at its path may not be the one it runs";
    }
    if (!why.empty()) {
        if (warned.insert(ctx.head.path).second)
            notices.push_back(fmt::format("no symbols for {} of pid {}: {}", proc::without_deleted(ctx.head.path),
                                          target.pid(), why));
        return -1;
    }
    *file_name = ::strdup(name);
    return file->fd.release();
}

int Symbolizer::Impl::open_debug_file(const ModuleContext& ctx, const char* file_name, const char* debuglink,
                                      char** found) {
    // A debug file must be the module's own: with a build-id on both sides
    // they must agree (a debuglink names a file, not a build).
    auto take = [&](UniqueFd fd, const std::string& where) -> int {
        if (!fd.valid()) return -1;
        if (!ctx.build_id.empty() && file_build_id(fd.get()) != ctx.build_id) return -1;
        *found = ::strdup(where.c_str());
        return fd.release();
    };
    auto in_target = [&](const std::string& path) -> int {
        auto fd = target.open_file(path);
        return fd ? take(std::move(*fd), path) : -1;
    };
    if (!ctx.build_id.empty()) {
        std::string hex = proc::build_id_hex(ctx.build_id);
        std::string rel = fmt::format("/usr/lib/debug/.build-id/{}/{}.debug", hex.substr(0, 2), hex.substr(2));
        // The target's own debug files first, then this machine's (the
        // same build-id is the same build wherever the file lies).
        if (int fd = in_target(rel); fd >= 0) return fd;
        if (int fd = take(UniqueFd(::open(rel.c_str(), O_RDONLY | O_CLOEXEC)), rel); fd >= 0) return fd;
    }
    if (!file_name || !debuglink || !*debuglink) return -1;
    std::string_view file(file_name);
    auto slash = file.rfind('/');
    std::string dir(slash == std::string_view::npos ? "." : file.substr(0, slash));
    for (const std::string& cand : {dir + "/" + debuglink, dir + "/.debug/" + debuglink,
                                    "/usr/lib/debug" + dir + "/" + debuglink}) {
        if (cand == file) continue;
        if (int fd = in_target(cand); fd >= 0) return fd;
    }
    return -1;
}

// Reports each file-backed module of `maps` (its mappings' whole range, as
// libdwfl's own /proc reader would), with the build-id it has in memory;
// find_elf_in_target opens its file when it is first needed.
void Symbolizer::Impl::report(const std::vector<proc::Mapping>& maps) {
    dwfl_report_begin(dwfl);
    contexts.clear();
    for (std::size_t i = 0; i < maps.size();) {
        const auto& m = maps[i];
        std::size_t j = i + 1;
        if (m.path.empty() || m.path.front() != '/') {
            i = j;
            continue;
        }
        RemoteAddr end = m.end;
        bool executable = m.executable;
        while (j < maps.size() && maps[j].path == m.path && maps[j].inode == m.inode) {
            end = maps[j].end;
            executable = executable || maps[j].executable;
            ++j;
        }
        const proc::Mapping* head = proc::module_head(maps, maps[j - 1]);
        i = j;
        if (!executable || !head) continue;
        // Named by its path, without " (deleted)": frames and fingerprints
        // stay the same across an upgrade that replaced the file.
        Dwfl_Module* mod = dwfl_report_module(dwfl, proc::without_deleted(m.path).c_str(), m.start.value(), end.value());
        if (!mod) continue;
        ModuleContext& ctx = contexts.emplace_back();
        ctx.impl = this;
        ctx.head = *head;
        if (auto loaded = proc::read_loaded_module(target.memory(), maps, *head)) ctx.build_id = loaded->build_id;
        void** userdata = nullptr;
        dwfl_module_info(mod, &userdata, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
        if (userdata) *userdata = &ctx;
    }
    dwfl_report_end(dwfl, nullptr, nullptr);
    cache.clear();
    name_cache.clear();
    cu_index.clear();
    static_module.clear();
    reported = true;
}

Dwarf_Die* Symbolizer::Impl::unit_of(Dwfl_Module* mod, Dwarf_Addr addr, Dwarf_Addr* bias, Dwarf_Die* storage) {
    if (Dwarf_Die* cu = dwfl_module_addrdie(mod, addr, bias)) return cu;
    Dwarf* dw = dwfl_module_getdwarf(mod, bias);
    if (!dw) return nullptr;
    auto it = cu_index.find(mod);
    if (it == cu_index.end()) it = cu_index.emplace(mod, CuIndex::build(dw)).first;
    auto off = it->second.find(addr - *bias);
    if (!off || !dwarf_offdie(dw, *off, storage)) return nullptr;
    return storage;
}

Dwfl_Module* Symbolizer::Impl::module_of(std::uint64_t addr, Frame& base) {
    Dwfl_Module* mod = dwfl ? dwfl_addrmodule(dwfl, addr) : nullptr;
    if (!mod) return nullptr;
    Dwarf_Addr start = 0;
    const char* mainfile = nullptr;
    const char* name = dwfl_module_info(mod, nullptr, &start, nullptr, nullptr, nullptr, &mainfile, nullptr);
    base.module = mainfile ? mainfile : (name ? name : "");
    base.module_offset = addr - start;
    auto known = static_module.find(mod);
    if (known == static_module.end()) known = static_module.emplace(mod, is_static_executable(mod)).first;
    base.static_executable = known->second;
    return mod;
}

// The symbol table alone: dwfl_module_addrinfo reads the .symtab of the
// module's file, or of its separate debug file when the file has only
// .dynsym, and never loads DWARF.
Frame Symbolizer::Impl::lookup_name(std::uint64_t addr) {
    Frame f;
    Dwfl_Module* mod = module_of(addr, f);
    if (!mod) return f;
    GElf_Off off = 0;
    GElf_Sym sym;
    if (const char* sname = dwfl_module_addrinfo(mod, addr, &off, &sym, nullptr, nullptr, nullptr))
        f.function = demangle(sname);
    return f;
}

std::vector<Frame> Symbolizer::Impl::lookup(std::uint64_t addr) {
    std::vector<Frame> out;
    Frame base;
    Dwfl_Module* mod = module_of(addr, base);
    if (!mod) {
        out.push_back(base);
        return out;
    }

    Dwarf_Addr bias = 0;
    Dwarf_Die cu_storage;
    Dwarf_Die* cudie = unit_of(mod, addr, &bias, &cu_storage);
    // dwarf_getscopes finds the innermost scope of the address; its concrete
    // parents (inlined callers up to the real function) come from
    // dwarf_getscopes_die, which does not wander into abstract origins.
    Dwarf_Die* innermost = nullptr;
    Dwarf_Die* scopes = nullptr;
    int nscopes = 0;
    if (cudie && dwarf_getscopes(cudie, addr - bias, &innermost) > 0)
        nscopes = dwarf_getscopes_die(&innermost[0], &scopes);
    std::free(innermost);
    if (nscopes > 0) {
        Dwarf_Files* files = nullptr;
        std::size_t nfiles = 0;
        dwarf_getsrcfiles(cudie, &files, &nfiles);
        std::optional<SourceLocation> loc = line_in_cu(cudie, addr - bias);
        for (int i = 0; i < nscopes; ++i) {
            int tag = dwarf_tag(&scopes[i]);
            if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine) continue;
            Frame f = base;
            f.function = die_function_name(&scopes[i]);
            f.location = loc;
            f.inlined = tag == DW_TAG_inlined_subroutine;
            out.push_back(f);
            if (tag == DW_TAG_subprogram) break;
            loc = call_site(&scopes[i], files);  // where the caller called it
        }
    }
    std::free(scopes);
    if (out.empty() || out.back().function.empty()) {
        // No debug info (or no name in it): the ELF symbol table.
        GElf_Off off = 0;
        GElf_Sym sym;
        const char* sname = dwfl_module_addrinfo(mod, addr, &off, &sym, nullptr, nullptr, nullptr);
        if (out.empty()) {
            base.location = line_of(mod, addr);
            out.push_back(base);
        }
        if (sname) out.back().function = demangle(sname);
    }
    return out;
}

Symbolizer::Symbolizer(proc::Target& target, Options opt) : impl_(std::make_unique<Impl>(target)) {
    impl_->opt = opt;
    impl_->dwfl = dwfl_begin(&callbacks);
}

Symbolizer::~Symbolizer() {
    if (impl_->dwfl) dwfl_end(impl_->dwfl);
}

bool Symbolizer::refresh(const std::vector<proc::Mapping>& maps) {
    const std::size_t sig = proc::executable_signature(maps);
    if (impl_->reported && sig == impl_->maps_signature) return false;
    impl_->maps_signature = sig;
    if (impl_->dwfl) impl_->report(maps);
    return true;
}

std::vector<std::string> Symbolizer::take_notices() { return std::exchange(impl_->notices, {}); }

void Symbolizer::report_if_needed() {
    if (impl_->reported || !impl_->dwfl) return;
    if (auto maps = impl_->target.mappings()) refresh(*maps);
}

std::vector<Frame> Symbolizer::symbolize(const unwind::RawStack& raw, std::span<const Detail> detail) {
    report_if_needed();
    std::vector<Frame> out;
    for (std::size_t k = 0; k < raw.frames.size(); ++k) {
        const auto& rf = raw.frames[k];
        std::uint64_t pc = rf.pc.value();
        std::uint64_t addr = rf.activation ? pc : pc - 1;
        auto place = [&](Frame f) {
            f.pc = pc;
            f.activation = rf.activation;
            f.module_offset = f.module_offset + (pc - addr);
            out.push_back(std::move(f));
        };
        auto it = impl_->cache.find(addr);
        if (it == impl_->cache.end() && k < detail.size() && detail[k] == Detail::name) {
            auto named = impl_->name_cache.find(addr);
            if (named == impl_->name_cache.end()) named = impl_->name_cache.emplace(addr, impl_->lookup_name(addr)).first;
            place(named->second);
            continue;
        }
        if (it == impl_->cache.end()) it = impl_->cache.emplace(addr, impl_->lookup(addr)).first;
        for (const Frame& f : it->second) place(f);
    }
    return out;
}

std::vector<std::string> Symbolizer::modules(const unwind::RawStack& raw) {
    report_if_needed();
    std::vector<std::string> out;
    out.reserve(raw.frames.size());
    for (const auto& rf : raw.frames) {
        std::uint64_t pc = rf.pc.value();
        Dwfl_Module* mod = impl_->dwfl ? dwfl_addrmodule(impl_->dwfl, rf.activation ? pc : pc - 1) : nullptr;
        const char* mainfile = nullptr;
        const char* name = mod ? dwfl_module_info(mod, nullptr, nullptr, nullptr, nullptr, nullptr, &mainfile, nullptr)
                               : nullptr;
        out.emplace_back(mainfile ? mainfile : (name ? name : ""));
    }
    return out;
}

}  // namespace sw::symbolize
