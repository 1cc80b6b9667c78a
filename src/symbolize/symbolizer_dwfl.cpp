#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string_view>
#include <unordered_map>

#include "symbolize/symbolizer.hpp"

namespace sw::symbolize {

std::string demangle(const char* name) {
    if (!name) return {};
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

// Tries "<dir>/<link>", "<dir>/.debug/<link>" and "/usr/lib/debug<dir>/<link>".
int open_debuglink(const char* file_name, const char* link, char** found) {
    if (!file_name || !link || !*link) return -1;
    std::string_view file(file_name);
    auto slash = file.rfind('/');
    std::string dir(slash == std::string_view::npos ? "." : file.substr(0, slash));
    for (const std::string& cand : {dir + "/" + link, dir + "/.debug/" + link,
                                    "/usr/lib/debug" + dir + "/" + link}) {
        if (cand == file) continue;
        int fd = ::open(cand.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            *found = ::strdup(cand.c_str());
            return fd;
        }
    }
    return -1;
}

// Separate debug info by build-id and debuglink only: the standard lookup
// would load libdebuginfod (and reach for the network when configured).
int find_debuginfo_local(Dwfl_Module* mod, void** userdata, const char* modname, Dwarf_Addr base,
                         const char* file_name, const char* debuglink, GElf_Word crc, char** found) {
    int fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name, debuglink, crc, found);
    if (fd >= 0) return fd;
    return open_debuglink(file_name, debuglink, found);
}

const Dwfl_Callbacks local_callbacks = {
    dwfl_linux_proc_find_elf, find_debuginfo_local, nullptr, &debuginfo_path};
const Dwfl_Callbacks debuginfod_callbacks = {
    dwfl_linux_proc_find_elf, dwfl_standard_find_debuginfo, nullptr, &debuginfo_path};

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
    pid_t pid;
    Options opt;
    Dwfl* dwfl = nullptr;
    std::size_t maps_signature = 0;
    bool reported = false;
    std::unordered_map<std::uint64_t, std::vector<Frame>> cache;  // by looked-up address

    void report() {
        dwfl_report_begin(dwfl);
        dwfl_linux_proc_report(dwfl, pid);
        dwfl_report_end(dwfl, nullptr, nullptr);
        cache.clear();
        cu_index.clear();
        static_module.clear();
        reported = true;
    }

    std::vector<Frame> lookup(std::uint64_t addr);
    Dwarf_Die* unit_of(Dwfl_Module* mod, Dwarf_Addr addr, Dwarf_Addr* bias, Dwarf_Die* storage);

    std::unordered_map<Dwfl_Module*, CuIndex> cu_index;  // modules without .debug_aranges
    std::unordered_map<Dwfl_Module*, bool> static_module;  // is_static_executable, once per module
};

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

std::vector<Frame> Symbolizer::Impl::lookup(std::uint64_t addr) {
    std::vector<Frame> out;
    Dwfl_Module* mod = dwfl ? dwfl_addrmodule(dwfl, addr) : nullptr;
    Frame base;
    if (!mod) {
        out.push_back(base);
        return out;
    }
    Dwarf_Addr start = 0;
    const char* mainfile = nullptr;
    const char* name = dwfl_module_info(mod, nullptr, &start, nullptr, nullptr, nullptr, &mainfile, nullptr);
    base.module = mainfile ? mainfile : (name ? name : "");
    base.module_offset = addr - start;
    auto known = static_module.find(mod);
    if (known == static_module.end()) known = static_module.emplace(mod, is_static_executable(mod)).first;
    base.static_executable = known->second;

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

Symbolizer::Symbolizer(pid_t pid, Options opt) : impl_(std::make_unique<Impl>()) {
    impl_->pid = pid;
    impl_->opt = opt;
    impl_->dwfl = dwfl_begin(opt.debuginfod ? &debuginfod_callbacks : &local_callbacks);
}

Symbolizer::~Symbolizer() {
    if (impl_->dwfl) dwfl_end(impl_->dwfl);
}

bool Symbolizer::refresh(const std::vector<proc::Mapping>& maps) {
    std::size_t sig = 0;
    for (const auto& m : maps)
        if (m.executable && !m.path.empty())
            sig = sig * 1000003u ^ std::hash<std::string>{}(m.path) ^ (m.start.value() * 31u) ^ m.inode;
    if (impl_->reported && sig == impl_->maps_signature) return false;
    impl_->maps_signature = sig;
    if (impl_->dwfl) impl_->report();
    return true;
}

std::vector<Frame> Symbolizer::symbolize(const unwind::RawStack& raw) {
    if (!impl_->reported && impl_->dwfl) impl_->report();
    std::vector<Frame> out;
    for (const auto& rf : raw.frames) {
        std::uint64_t pc = rf.pc.value();
        std::uint64_t addr = rf.activation ? pc : pc - 1;
        auto it = impl_->cache.find(addr);
        if (it == impl_->cache.end()) it = impl_->cache.emplace(addr, impl_->lookup(addr)).first;
        for (Frame f : it->second) {
            f.pc = pc;
            f.activation = rf.activation;
            f.module_offset = f.module_offset + (pc - addr);
            out.push_back(std::move(f));
        }
    }
    return out;
}

}  // namespace sw::symbolize
