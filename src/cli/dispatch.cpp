// Dispatch from parsed options to the command that runs them.
#include "cli/commands.hpp"

namespace sw::cli {

int run(const Options& opt, std::ostream& out, std::ostream& err) {
    struct Dispatch {
        std::ostream& out;
        std::ostream& err;
        int operator()(const StatusOptions& o) const { return run_status(o, out, err); }
        int operator()(const AttachOptions& o) const { return run_attach(o, out, err); }
        int operator()(const DumpOptions& o) const { return run_dump(o, out, err); }
        int operator()(const RunOptions& o) const { return run_run(o, err); }
        int operator()(const ListOptions& o) const { return run_list(o, out, err); }
    };
    return std::visit(Dispatch{out, err}, opt.command);
}

}  // namespace sw::cli
