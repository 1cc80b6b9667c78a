#include "proc/program.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>

#include "common/unique_fd.hpp"

namespace sw::proc {

std::string resolve_program(const std::string& argv0) {
    if (argv0.empty()) return {};
    if (argv0.find('/') != std::string::npos) return argv0;
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    std::size_t start = 0;
    for (;;) {
        std::size_t colon = dirs.find(':', start);
        std::string dir = dirs.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + argv0;
        struct stat st {};
        if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
            return candidate;
        if (colon == std::string::npos) return {};
        start = colon + 1;
    }
}

namespace {

// Whether the ELF file has a program interpreter (PT_INTERP); nullopt-like
// -1 when it is not a readable 64-bit ELF file.
int has_interpreter(int fd) {
    Elf64_Ehdr eh{};
    if (::pread(fd, &eh, sizeof eh, 0) != static_cast<ssize_t>(sizeof eh)) return -1;
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64) return -1;
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 4096) return -1;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph{};
        auto off = static_cast<off_t>(eh.e_phoff + static_cast<std::uint64_t>(i) * sizeof ph);
        if (::pread(fd, &ph, sizeof ph, off) != static_cast<ssize_t>(sizeof ph)) return -1;
        if (ph.p_type == PT_INTERP) return 1;
    }
    return 0;
}

}  // namespace

ProgramFacts inspect_program(const std::string& path) {
    ProgramFacts facts;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0) return facts;
    facts.statically_linked = has_interpreter(fd.get()) == 0;
    // The kernel sets AT_SECURE when exec changes the effective ids (the
    // set-id bits of a file owned by someone else) or grants capabilities.
    if ((st.st_mode & S_ISUID) && st.st_uid != ::geteuid())
        facts.secure_execution = fmt::format("set-user-ID (owner uid {})", st.st_uid);
    else if ((st.st_mode & S_ISGID) && st.st_gid != ::getegid())
        facts.secure_execution = fmt::format("set-group-ID (group {})", st.st_gid);
    else if (::fgetxattr(fd.get(), "security.capability", nullptr, 0) > 0)
        facts.secure_execution = "file capabilities (security.capability)";
    return facts;
}

}  // namespace sw::proc
