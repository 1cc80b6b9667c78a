// stallwatch entry point: parse, dispatch, map to an exit code.
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/options.hpp"

int main(int argc, char** argv) {
    std::vector<std::string> args(argv, argv + argc);
    auto parsed = sw::cli::parse_command_line(args);
    if (auto* early = std::get_if<sw::cli::EarlyExit>(&parsed)) {
        std::cout << early->out;
        std::cerr << early->err;
        return early->code;
    }
    return sw::cli::run(std::get<sw::cli::Options>(parsed), std::cout, std::cerr);
}
