// The terminal a live view draws on, with plain ANSI (ECMA-48 / xterm)
// sequences and termios: no curses library. The view needs five sequences
// (alternate screen, cursor off and on, home, clear to the end of a line or
// of the screen), all of which every terminal emulator in use understands;
// ncurses would add a run-time dependency, a terminfo lookup and its own
// ideas about signals and the screen for that, and would make restoring the
// terminal at every exit path no simpler (docs: man/stallwatch.1, "top").
//
// One owner from enter() to leave(): the destructor restores whatever was
// changed. That covers every way out that returns or unwinds: q, the signals
// the view reads from its queue (SIGINT, SIGQUIT, SIGTERM, SIGHUP), the
// target's exit, an error, and an exception, which run_top catches to leave
// the terminal before it goes on (an exception nobody catches would not
// unwind, and no destructor would run). A fatal signal does not unwind
// either: while entered, SIGSEGV, SIGBUS, SIGABRT, SIGFPE and SIGILL run a
// one-shot handler that writes the fixed restore sequence, puts back the
// saved termios (both async-signal-safe), and raises the signal again for
// its default action (a core dump). Only SIGKILL leaves the terminal as it
// was drawn: `reset` (or `stty sane; tput rmcup`) gives it back then.
#pragma once

#include <termios.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sw::cli {

class Terminal {
public:
    // The terminal on `out_fd` (keys are read from `in_fd` when it is a
    // terminal too). nullptr when `out_fd` is not a terminal.
    static std::unique_ptr<Terminal> open(int in_fd, int out_fd);

    Terminal(const Terminal&) = delete;
    Terminal& operator=(const Terminal&) = delete;
    ~Terminal() { leave(); }

    // Raw input (no line editing, no echo, no Ctrl-S/Ctrl-Q flow control and
    // no Ctrl-V literal-next; Ctrl-C, Ctrl-\ and Ctrl-Z still raise their
    // signals), the alternate screen, the cursor hidden, and the handlers of
    // fatal signals that restore the terminal. Again after a suspension
    // (Ctrl-Z, then fg).
    void enter();
    // Back as it was: main screen, cursor shown, the saved input modes, the
    // fatal signals' handlers as they were.
    void leave();

    struct Size {
        int rows = 24;
        int cols = 80;
    };
    // Asked of the terminal each time (a resize is seen at the next frame);
    // 24x80 when it does not say.
    Size size() const;

    // Replaces the screen's content with `lines` (each cut by the caller to
    // the width), in one write. False when the terminal cannot be written
    // (errno says why). A terminal that takes no more output for a while
    // (a non-blocking descriptor answering EAGAIN) is waited for, up to half
    // a second; then the rest of that frame is dropped (the next one redraws
    // every line) and draw() still returns true.
    bool draw(const std::vector<std::string>& lines);

    // The descriptor to poll for keys, -1 when keys cannot be read.
    int key_fd() const { return keys_ ? in_fd_ : -1; }
    // The keys typed, once key_fd() polled readable; nullopt when input
    // ended (the terminal went away).
    std::optional<std::string> read_keys();

private:
    Terminal(int in_fd, int out_fd) : in_fd_(in_fd), out_fd_(out_fd) {}
    enum class Written { all, timed_out, failed };
    Written write_all(std::string_view bytes);

    int in_fd_ = -1;
    int out_fd_ = -1;
    bool keys_ = false;                 // in_fd_ is a terminal
    std::optional<termios> saved_;      // input modes before enter(), while changed
    bool entered_ = false;
};

}  // namespace sw::cli
