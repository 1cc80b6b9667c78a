#include "cli/terminal.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <iterator>

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

// How long a terminal that answers EAGAIN is waited for, per write.
constexpr std::chrono::milliseconds write_patience{500};

// ---- the restore on a fatal signal ----
//
// Everything the handler touches is set before it is installed and left
// alone while it is: plain statics, one entered terminal at a time.
constexpr char restore_sequence[] = "\x1b[?25h\x1b[?1049l";  // cursor_on, alternate_screen_off
constexpr int fatal_signals[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
struct FatalRestore {
    int out_fd = -1;
    int in_fd = -1;  // -1: no termios to put back
    termios saved{};
    struct sigaction previous[std::size(fatal_signals)]{};
};
FatalRestore fatal_restore;

// Async-signal-safe only: write(2), tcsetattr(3) and raise(3). SA_RESETHAND
// made the disposition the default again and SA_NODEFER left the signal
// unblocked: raise() ends the process as the signal would have.
extern "C" void restore_on_fatal_signal(int sig) {
    const int saved_errno = errno;
    const char* p = restore_sequence;
    std::size_t left = sizeof restore_sequence - 1;
    for (int tries = 0; left > 0 && tries < 16; ++tries) {
        ssize_t n = ::write(fatal_restore.out_fd, p, left);
        if (n > 0) {
            p += n;
            left -= static_cast<std::size_t>(n);
        } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
            break;
        }
    }
    if (fatal_restore.in_fd >= 0) ::tcsetattr(fatal_restore.in_fd, TCSANOW, &fatal_restore.saved);
    errno = saved_errno;
    ::raise(sig);
}

void install_fatal_handlers(int out_fd, int in_fd, const std::optional<termios>& saved) {
    fatal_restore.out_fd = out_fd;
    fatal_restore.in_fd = saved ? in_fd : -1;
    if (saved) fatal_restore.saved = *saved;
    struct sigaction sa {};
    sa.sa_handler = restore_on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    for (std::size_t i = 0; i < std::size(fatal_signals); ++i)
        ::sigaction(fatal_signals[i], &sa, &fatal_restore.previous[i]);
}

void remove_fatal_handlers() {
    for (std::size_t i = 0; i < std::size(fatal_signals); ++i)
        ::sigaction(fatal_signals[i], &fatal_restore.previous[i], nullptr);
}

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
        // Keys as they are typed, not echoed. ISIG stays: Ctrl-C is SIGINT
        // and Ctrl-\ SIGQUIT, which the view reads like any other signal,
        // after which leave() runs; Ctrl-Z is SIGTSTP, for which the view
        // leaves, stops, and enters again when continued. No IXON: Ctrl-S
        // would stop the terminal's output, and the next draw() with it
        // (Ctrl-Q is just a key then). No IEXTEN: Ctrl-V would hold back
        // the next key.
        now.c_iflag &= static_cast<tcflag_t>(~IXON);
        now.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO | IEXTEN));
        now.c_cc[VMIN] = 1;
        now.c_cc[VTIME] = 0;
        ::tcsetattr(in_fd_, TCSANOW, &now);
    }
    entered_ = true;
    install_fatal_handlers(out_fd_, in_fd_, saved_);
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
    remove_fatal_handlers();
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
    // Timed out: the rest of this frame is dropped; the next one starts at
    // home and clears every line it writes.
    return write_all(frame) != Written::failed;
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

Terminal::Written Terminal::write_all(std::string_view bytes) {
    using Clock = std::chrono::steady_clock;
    const auto give_up = Clock::now() + write_patience;
    while (!bytes.empty()) {
        ssize_t n = ::write(out_fd_, bytes.data(), bytes.size());
        if (n > 0) {
            bytes.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            // A non-blocking descriptor (another process may have set
            // O_NONBLOCK on the terminal's shared description): wait until
            // it takes more, for a while.
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - Clock::now());
            if (left.count() <= 0) return Written::timed_out;
            pollfd p{out_fd_, POLLOUT, 0};
            int r = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
            if (r < 0 && errno != EINTR) return Written::failed;
            if (r > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL))) {
                errno = EIO;
                return Written::failed;
            }
            continue;
        }
        if (n == 0) errno = EIO;
        return Written::failed;
    }
    return Written::all;
}

}  // namespace sw::cli
