#include "cli/output.hpp"

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace sw::cli {

report::WriterOptions writer_options(const OutputOptions& o, int standard_fd) {
    report::WriterOptions w;
    w.full = o.full;
    w.max_event_bytes = o.max_event_bytes;
    if (o.color == ColorMode::always) {
        w.color = true;
    } else if (o.color == ColorMode::auto_) {
        const char* no_color = std::getenv("NO_COLOR");
        const char* term = std::getenv("TERM");
        w.color = o.output.empty() && ::isatty(standard_fd) == 1 && (no_color == nullptr || *no_color == '\0') &&
                  !(term != nullptr && std::string_view(term) == "dumb");
    }
    return w;
}

// An output buffer over an open file that keeps the errno of the first
// failed write (std::ofstream does not say why it failed). It writes the
// file's descriptor with write(2); the FILE is only its owner.
class FdStreambuf final : public std::streambuf {
public:
    using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;
    explicit FdStreambuf(File file) : file_(std::move(file)) { setp(buf_.data(), buf_.data() + buf_.size()); }
    ~FdStreambuf() override { (void)drain(); }
    int error() const { return error_; }

protected:
    int_type overflow(int_type ch) override {
        if (drain() != 0) return traits_type::eof();
        if (!traits_type::eq_int_type(ch, traits_type::eof())) {
            *pptr() = traits_type::to_char_type(ch);
            pbump(1);
        }
        return traits_type::not_eof(ch);
    }
    int sync() override { return drain(); }

private:
    // Writes out the buffer; after a failure, drops what it holds and fails.
    int drain() {
        const char* p = pbase();
        while (error_ == 0 && p < pptr()) {
            ssize_t n = ::write(::fileno(file_.get()), p, static_cast<std::size_t>(pptr() - p));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) error_ = n < 0 ? errno : EIO;
            else p += n;
        }
        setp(buf_.data(), buf_.data() + buf_.size());
        return error_ == 0 ? 0 : -1;
    }

    File file_;
    std::array<char, 8192> buf_{};
    int error_ = 0;
};

std::unique_ptr<Output> Output::open(const std::string& path, std::ostream& standard, std::string standard_name,
                                     std::ostream& err) {
    std::unique_ptr<Output> out(new Output);
    if (path.empty()) {
        out->name_ = std::move(standard_name);
        out->stream_ = &standard;
        return out;
    }
    // Opened as std::ofstream(path, std::ios::app) opens it ("e": close on
    // exec, so that run's program does not inherit it).
    FdStreambuf::File file(std::fopen(path.c_str(), "ae"), &std::fclose);
    if (!file) {
        fmt::print(err, "stallwatch: cannot open {} for appending: {}\n", path, std::strerror(errno));
        return nullptr;
    }
    out->name_ = path;
    out->buf_ = std::make_unique<FdStreambuf>(std::move(file));
    out->file_ = std::make_unique<std::ostream>(out->buf_.get());
    out->stream_ = out->file_.get();
    return out;
}

Output::~Output() = default;

std::string Output::write_error(int seen_errno) const {
    int e = buf_ && buf_->error() != 0 ? buf_->error() : seen_errno;
    if (e == 0) return fmt::format("cannot write to {}", name_);
    return fmt::format("cannot write to {}: {}", name_, std::strerror(e));
}

}  // namespace sw::cli
