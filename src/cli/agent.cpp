// `stallwatch attach --all`: the host agent. Every half second it looks at
// the processes of the host; each one that passes the filters and carries a
// table gets a Watcher of its own, and one loop reads them all every
// interval. A look is kept cheap for processes already known: a watched
// one is not looked at again (its pidfd says when it exits); one without a
// table is remembered by pid and start time, and its table is looked for
// again only when it holds a descriptor number it did not hold before, or
// every 10 s (a table can take a number that was closed meanwhile).
#include "cli/agent.hpp"

#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/signals.hpp"
#include "cli/watch.hpp"
#include "common/duration.hpp"
#include "common/text.hpp"
#include "proc/capture.hpp"
#include "proc/discovery.hpp"
#include "proc/target.hpp"

namespace sw::cli {

bool comm_matches(const std::string& pattern, const std::string& comm) {
    return ::fnmatch(pattern.c_str(), comm.c_str(), 0) == 0;
}

bool cgroup_matches(const std::string& prefix, const std::string& path) {
    std::string p = prefix;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    if (p == "/") return true;  // every process is under the root (whose path Target::cgroup gives as "")
    if (path.empty()) return false;
    return path.compare(0, p.size(), p) == 0 && (path.size() == p.size() || path[p.size()] == '/');
}

namespace {

using Clock = std::chrono::steady_clock;

// A new table is found within this (plus one interval) of its creation.
constexpr auto discovery_period = std::chrono::milliseconds(500);
// ... or within this when it took a descriptor number closed meanwhile.
constexpr auto full_look_period = std::chrono::seconds(10);

struct Filter {
    std::optional<uid_t> uid;
    std::string comm;
    std::string cgroup;
};

// A process not watched, and why.
enum class Unwatched {
    kernel_thread,  // never has a table
    filtered,       // looked at again each time: exec renames, cgroups move
    no_table,
    denied,         // not permitted to list its descriptors
    failed,         // its table was bad: given up until it is another process
};

struct Seen {
    std::uint64_t start = 0;
    Unwatched why = Unwatched::no_table;
    std::vector<int> fds;          // no_table: its descriptor numbers at the last look
    Clock::time_point full_look{};  // no_table: when to open its table again whatever fds says
};

struct Watched {
    std::uint64_t start = 0;
    std::string name;  // its command name when watching began (messages after its exit)
    std::unique_ptr<proc::Target> target;
    UniqueFd exit_fd;
    std::unique_ptr<Watcher> watcher;  // declared last: destroyed before its target
};

class Agent {
public:
    Agent(Filter filter, const WatchOptions& opt, report::Writer& writer, std::ostream& err)
        : filter_(std::move(filter)),
          opt_(opt),
          writer_(writer),
          err_(err),
          self_(::getpid()),
          exits_(::epoll_create1(EPOLL_CLOEXEC)) {}

    // One look at every process of the host.
    void discover();
    // One round of every watcher. False on a write error (the agent ends).
    bool round();
    // One descriptor, readable when a watched process has exited: an epoll
    // set of their pidfds, so that a wait costs the same for 1 or 500.
    int exits_fd() const { return exits_.get(); }
    // Ends the watches of the processes that exited: the agent goes on.
    void reap();
    // Ends every watch (a signal).
    void end(int signal);

    std::size_t watching() const { return watched_.size(); }
    std::uint64_t reports() const { return reports_; }

private:
    bool passes(pid_t pid, proc::Target& target);
    void look(pid_t pid, Seen& seen, bool fresh, Clock::time_point now);
    void watch(pid_t pid, std::uint64_t start, std::unique_ptr<proc::Target> target);
    void give_up(pid_t pid, const Watched& w, const WatchResult& r);
    void exited(pid_t pid);

    Filter filter_;
    WatchOptions opt_;
    report::Writer& writer_;
    std::ostream& err_;
    pid_t self_;
    UniqueFd exits_;
    std::map<pid_t, Watched> watched_;
    std::map<pid_t, Seen> seen_;
    std::size_t denied_ = 0, denied_said_ = 0;
    std::uint64_t reports_ = 0;
    bool said_none_ = false;
};

bool Agent::passes(pid_t pid, proc::Target& target) {
    if (filter_.uid && proc::owner_uid(pid) != filter_.uid) return false;
    if (!filter_.comm.empty() && !comm_matches(filter_.comm, target.name())) return false;
    if (!filter_.cgroup.empty() && !cgroup_matches(filter_.cgroup, target.cgroup())) return false;
    return true;
}

void Agent::discover() {
    auto now = Clock::now();
    auto pids = proc::all_processes();  // sorted
    // Forget the processes that are gone.
    for (auto it = seen_.begin(); it != seen_.end();) {
        if (std::binary_search(pids.begin(), pids.end(), it->first)) ++it;
        else {
            if (it->second.why == Unwatched::denied) --denied_;
            it = seen_.erase(it);
        }
    }
    for (pid_t pid : pids) {
        if (pid == self_ || watched_.count(pid)) continue;
        auto st = proc::process_start(pid);
        if (!st) continue;  // gone meanwhile
        auto it = seen_.find(pid);
        bool fresh = it == seen_.end() || it->second.start != st->start;
        if (fresh) {
            if (it != seen_.end() && it->second.why == Unwatched::denied) --denied_;
            Seen s{st->start, st->kernel_thread ? Unwatched::kernel_thread : Unwatched::no_table, {}, {}};
            it = seen_.insert_or_assign(pid, std::move(s)).first;
        }
        auto why = it->second.why;
        if (why == Unwatched::kernel_thread || why == Unwatched::denied || why == Unwatched::failed) continue;
        look(pid, it->second, fresh, now);
    }
    if (denied_ > denied_said_)
        fmt::print(err_, "stallwatch: {} process(es) could not be inspected (not permitted); run as root, or "
                         "with CAP_SYS_PTRACE, to watch them\n", denied_);
    denied_said_ = denied_;
    if (watched_.empty() && !said_none_) {
        said_none_ = true;
        fmt::print(err_, "stallwatch: no process{} carries a table yet; waiting for one\n",
                   filter_.uid || !filter_.comm.empty() || !filter_.cgroup.empty() ? " that passes the filters" : "");
    }
}

// Looks for the table of a process not watched (yet).
void Agent::look(pid_t pid, Seen& seen, bool fresh, Clock::time_point now) {
    auto target = proc::open_target(pid);
    if (!passes(pid, *target)) {
        seen.why = Unwatched::filtered;
        return;
    }
    auto fds = proc::descriptor_numbers(pid);
    if (!fds) {
        if (errno == EACCES || errno == EPERM) {
            seen.why = Unwatched::denied;
            ++denied_;
        }
        return;  // or gone
    }
    bool known = seen.why == Unwatched::no_table && !fresh && now < seen.full_look &&
                 std::includes(seen.fds.begin(), seen.fds.end(), fds->begin(), fds->end());
    seen.why = Unwatched::no_table;
    seen.fds = std::move(*fds);
    if (known) return;
    seen.full_look = now + full_look_period;
    auto table = target->open_table();
    if (!table) {
        switch (table.error().code) {
        case Errc::no_table:
        case Errc::no_such_process: return;
        case Errc::permission_denied:
            seen.why = Unwatched::denied;
            ++denied_;
            return;
        default: break;
        }
        // A table we refuse (not a memory file, another user's): say so once.
        auto t = describe_target(*target, {});
        fmt::print(err_, "stallwatch: pid {} ({}): {}; not watching it\n", pid, printable(t.process_name),
                   table.error().message);
        writer_.error(t, table.error().message);
        seen.why = Unwatched::failed;
        return;
    }
    watch(pid, seen.start, std::move(target));
}

void Agent::watch(pid_t pid, std::uint64_t start, std::unique_ptr<proc::Target> target) {
    Watched w;
    w.start = start;
    w.name = target->name();
    w.exit_fd = target->exit_notifier();
    w.target = std::move(target);
    w.watcher = std::make_unique<Watcher>(*w.target, opt_, writer_, err_);
    if (auto r = w.watcher->start()) {  // its table went bad (or away) since the look
        give_up(pid, w, *r);
        return;
    }
    if (w.exit_fd.valid()) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = static_cast<std::uint64_t>(pid);
        // Without it, exits are polled in round().
        if (::epoll_ctl(exits_.get(), EPOLL_CTL_ADD, w.exit_fd.get(), &ev) != 0) w.exit_fd.reset();
    }
    seen_.erase(pid);
    said_none_ = false;
    watched_.emplace(pid, std::move(w));
}

// A watch that failed: one line, and the process is not watched again
// (until its pid names another process). The error event is written.
void Agent::give_up(pid_t pid, const Watched& w, const WatchResult& r) {
    reports_ += r.reports;
    std::string why = r.error ? r.error->message : "failed";
    fmt::print(err_, "stallwatch: pid {} ({}): {}; not watching it any more\n", pid, printable(w.name), why);
    bool gone = r.error && (r.error->code == Errc::no_such_process || r.error->code == Errc::no_table);
    seen_.insert_or_assign(pid, Seen{w.start, gone ? Unwatched::no_table : Unwatched::failed, {}, {}});
}

bool Agent::round() {
    proc::release_lingering();
    for (auto it = watched_.begin(); it != watched_.end();) {
        auto r = it->second.watcher->round();
        if (!writer_.good()) return false;
        if (!r) {
            ++it;
            continue;
        }
        give_up(it->first, it->second, *r);
        it = watched_.erase(it);
    }
    // Without exit notifiers (kernels before 5.3), exits are polled here.
    for (auto it = watched_.begin(); it != watched_.end();) {
        auto next = std::next(it);
        if (!it->second.exit_fd.valid() && it->second.target->exited()) exited(it->first);
        it = next;
    }
    return writer_.good();
}

void Agent::reap() {
    epoll_event ev[64];
    for (int n; (n = ::epoll_wait(exits_.get(), ev, 64, 0)) > 0;)
        for (int i = 0; i < n; ++i) exited(static_cast<pid_t>(ev[i].data.u64));
}

void Agent::exited(pid_t pid) {
    auto it = watched_.find(pid);
    if (it == watched_.end()) return;
    auto r = it->second.watcher->end(WatchEnd::target_exited);
    reports_ += r.reports;
    fmt::print(err_, "stallwatch: pid {} ({}) exited; {} stall report(s) made; no longer watching it\n", pid,
               printable(it->second.name), r.reports);
    watched_.erase(it);
}

void Agent::end(int signal) {
    for (auto& [pid, w] : watched_) reports_ += w.watcher->end(WatchEnd::signal, signal).reports;
    watched_.clear();
}

std::string describe_filter(const AgentFilter& f) {
    std::string out;
    if (!f.user.empty()) out += fmt::format(", user {}", f.user);
    if (!f.comm.empty()) out += fmt::format(", command {}", f.comm);
    if (!f.cgroup.empty()) out += fmt::format(", in cgroup {}", f.cgroup);
    return out;
}

}  // namespace

int run_attach_all(const AttachOptions& opt, std::ostream& out, std::ostream& err) {
    Filter filter{std::nullopt, opt.filter.comm, opt.filter.cgroup};
    if (!opt.filter.user.empty()) {
        filter.uid = proc::find_user(opt.filter.user);
        if (!filter.uid) {
            fmt::print(err, "stallwatch: --user {}: no such user (give a user name or a uid)\n",
                       printable(opt.filter.user));
            return exit_code::usage;
        }
    }
    auto output = Output::open(opt.out.output, out, "standard output", err);
    if (!output) return exit_code::failure;
    auto writer = report::make_writer(opt.out.format, output->stream(),
                                      writer_options(opt.out, STDOUT_FILENO));
    WatchOptions w;
    w.timing = opt.timing;
    w.sampler = sampler_options(opt.out);
    w.skip_joined_updates = opt.out.format == report::Format::text;
    // A stat per table per round would be most of what the agent spends on
    // a quiet process; the Watcher checks before sampling anyway.
    w.table_check_every = discovery_period;

    SignalQueue sigq({SIGINT, SIGTERM, SIGHUP});
    Agent agent(filter, w, *writer, err);
    fmt::print(err, "stallwatch: watching every process that carries a table{}; threshold {}, interval {}\n",
               describe_filter(opt.filter), format_duration(opt.timing.threshold),
               format_duration(opt.timing.interval));
    agent.discover();

    auto next = Clock::now();
    auto next_discovery = next + discovery_period;
    int stop = 0;
    bool write_failed = false;
    while (stop == 0) {
        timespec ts = wait_for_next_round(next, opt.timing.interval);
        pollfd fds[2] = {{sigq.fd(), POLLIN, 0}, {agent.exits_fd(), POLLIN, 0}};
        int n = ::ppoll(fds, 2, &ts, nullptr);
        if (n < 0 && errno != EINTR) {
            fmt::print(err, "stallwatch: poll: {}\n", std::strerror(errno));
            agent.end(SIGTERM);
            writer->finish();
            return exit_code::failure;
        }
        if (n > 0 && (fds[0].revents & POLLIN))
            for (int sig; (sig = sigq.next()) != 0;) stop = sig;
        if (stop != 0) break;
        if (n > 0 && (fds[1].revents & POLLIN)) agent.reap();
        if (!agent.round()) {
            write_failed = true;
            break;
        }
        if (Clock::now() >= next_discovery) {
            agent.discover();
            next_discovery = Clock::now() + discovery_period;
        }
    }
    std::size_t watched = agent.watching();
    if (!write_failed) agent.end(stop);
    writer->finish();
    if (write_failed || !output->stream()) {
        fmt::print(err, "stallwatch: {}\n", output->write_error(errno));
        return exit_code::failure;
    }
    fmt::print(err, "stallwatch: {} received; {} stall report(s) made, detached from {} process(es)\n",
               strsignal(stop), agent.reports(), watched);
    return exit_code::ok;
}

}  // namespace sw::cli
