#include "common/error.hpp"

namespace sw {

int exit_code_for(Errc code) {
    switch (code) {
    case Errc::usage: return exit_code::usage;
    case Errc::no_such_process: return exit_code::no_such_process;
    case Errc::permission_denied: return exit_code::permission_denied;
    case Errc::no_table:
    case Errc::table_not_ready: return exit_code::no_table;
    case Errc::unsupported_version:
    case Errc::corrupt_table: return exit_code::bad_table;
    case Errc::io: return exit_code::failure;
    }
    return exit_code::failure;
}

}  // namespace sw
