// Loopback TCP for tests that talk to the servers they watch: a free port,
// a connection, one request and its answer, and load from several clients.
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "support/process.hpp"

namespace sw::test {

// A loopback TCP port nobody listens on now.
inline int free_port() {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);
    return ntohs(a.sin_port);
}

inline int connect_to(int port) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(s);
        return -1;
    }
    return s;
}

inline bool port_open(int port, std::chrono::milliseconds timeout) {
    return poll_until(
        [&] {
            int s = connect_to(port);
            if (s < 0) return false;
            ::close(s);
            return true;
        },
        timeout, 50ms);
}

// Sends `request` and reads until `until` appears in the answer (or EOF).
inline bool exchange(int s, const std::string& request, const std::string& until) {
    if (::send(s, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return false;
    std::string got;
    char buf[4096];
    while (got.find(until) == std::string::npos) {
        ssize_t n = ::recv(s, buf, sizeof buf, 0);
        if (n <= 0) return got.find(until) != std::string::npos;
        got.append(buf, static_cast<size_t>(n));
    }
    return true;
}

// `clients` threads, each making requests through `one` for `seconds`;
// returns how many succeeded.
inline long load(int clients, std::chrono::milliseconds length, const std::function<bool()>& one) {
    std::atomic<long> done{0};
    std::vector<std::thread> ts;
    auto end = std::chrono::steady_clock::now() + length;
    for (int i = 0; i < clients; ++i)
        ts.emplace_back([&] {
            while (std::chrono::steady_clock::now() < end)
                if (one()) ++done;
        });
    for (auto& t : ts) t.join();
    return done;
}

}  // namespace sw::test
