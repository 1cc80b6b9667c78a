#include <dlfcn.h>

#include <string>

#include "proc/host.hpp"

namespace sw::proc {

bool host_libc_exports(std::string_view name) {
    static void* const libc = ::dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (!libc || name.empty()) return false;
    return ::dlsym(libc, std::string(name).c_str()) != nullptr;
}

}  // namespace sw::proc
