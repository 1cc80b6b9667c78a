#include "cli/terminal.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

namespace sw::cli {
namespace {

// ECMA-48 and xterm's private modes.
constexpr std::string_view alternate_screen_on = "\x1b[?1049h";
constexpr std::string_view alternate_screen_off = "\x1b[?1049l";
constexpr std::string_view cursor_off = "\x1b[?25l";
constexpr std::string_view cursor_on = "\x1b[?25h";
constexpr std::string_view home = "\x1b[H";
constexpr std::string_view clear_line = "\x1b[2K";
constexpr std::string_view clear_below = "\x1b[J";

}  // namespace

std::unique_ptr<Terminal> Terminal::open(int in_fd, int out_fd) {
    if (!::isatty(out_fd)) return nullptr;
    std::unique_ptr<Terminal> t(new Terminal(in_fd, out_fd));
    t->keys_ = in_fd >= 0 && ::isatty(in_fd);
    return t;
}

void Terminal::enter() {
    if (entered_) return;
    termios now{};
    if (keys_ && ::tcgetattr(in_fd_, &now) == 0) {
        saved_ = now;
        // Keys as they are typed, not echoed. ISIG stays: Ctrl-C is SIGINT,
        // which the view reads like any other signal, after which leave()
        // runs; Ctrl-Z is SIGTSTP, for which the view leaves, stops, and
        // enters again when continued.
        now.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
        now.c_cc[VMIN] = 1;
        now.c_cc[VTIME] = 0;
        ::tcsetattr(in_fd_, TCSANOW, &now);
    }
    entered_ = true;
    std::string seq;
    seq += alternate_screen_on;
    seq += cursor_off;
    seq += home;
    seq += "\x1b[2J";
    write_all(seq);
}

void Terminal::leave() {
    if (!entered_) return;
    entered_ = false;
    std::string seq;
    seq += cursor_on;
    seq += alternate_screen_off;
    write_all(seq);  // a terminal that is gone cannot be restored: nothing to do then
    if (saved_) {
        ::tcsetattr(in_fd_, TCSANOW, &*saved_);
        saved_.reset();
    }
}

Terminal::Size Terminal::size() const {
    winsize ws{};
    if (::ioctl(out_fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
        return Size{ws.ws_row, ws.ws_col};
    return Size{};
}

bool Terminal::draw(const std::vector<std::string>& lines) {
    // Each line is cleared, then written; no line break after the last one,
    // which may fill the bottom row: the screen never scrolls. A line of
    // exactly the width leaves the cursor waiting to wrap, and the "\r\n"
    // that follows goes to the next row as it should.
    std::string frame(home);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) frame += "\r\n";
        frame += clear_line;
        frame += lines[i];
    }
    if (lines.empty() || static_cast<int>(lines.size()) < size().rows) {
        if (!lines.empty()) frame += "\r\n";
        frame += clear_below;
    }
    return write_all(frame);
}

std::optional<std::string> Terminal::read_keys() {
    char buf[64];
    for (;;) {
        ssize_t n = ::read(in_fd_, buf, sizeof buf);
        if (n > 0) return std::string(buf, static_cast<std::size_t>(n));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return std::string();
        return std::nullopt;  // end of input, or the terminal went away
    }
}

bool Terminal::write_all(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::write(out_fd_, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace sw::cli
