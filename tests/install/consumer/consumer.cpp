// A C++ program outside the stallwatch tree, built against the INSTALLED shim
// through find_package(stallwatch), with the header-only RAII layer.
// Used by tests/install/consumer-test.sh; same protocol as consumer.c:
//
//   consumer_cpp APP_NAME WORKER_NAME
//
// Prints "ready pid=P init=R live=L" once the worker is registered; on the
// stdin line "unregister" the worker's scope ends (stallwatch::Worker's
// destructor releases the slot) and it prints "unregistered"; end of stdin
// ends the program with status 0.
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include <unistd.h>

#include <stallwatch/stallwatch.hpp>

namespace {

std::mutex g_lock;
std::condition_variable g_cond;
bool g_registered = false;
bool g_live = false;
bool g_stop = false;

void worker_main(const std::string& name) {
    stallwatch::Worker worker(name.c_str());
    for (int i = 0; i < 100; ++i) worker.tick();

    std::unique_lock<std::mutex> lock(g_lock);
    g_live = worker.live();
    g_registered = true;
    g_cond.notify_all();
    // Idle: parked for as long as it waits.
    stallwatch::ParkedScope parked(worker);
    g_cond.wait(lock, [] { return g_stop; });
}  // ~ParkedScope unparks, ~Worker unregisters

void stop_worker(std::thread& t) {
    {
        std::lock_guard<std::mutex> lock(g_lock);
        g_stop = true;
    }
    g_cond.notify_all();
    t.join();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " APP_NAME WORKER_NAME\n";
        return 64;
    }
    int rc = stallwatch::init(argv[1]);

    std::thread worker(worker_main, std::string(argv[2]));
    bool live = false;
    {
        std::unique_lock<std::mutex> lock(g_lock);
        g_cond.wait(lock, [] { return g_registered; });
        live = g_live;
    }
    std::cout << "ready pid=" << getpid() << " init=" << rc << " live=" << (live ? 1 : 0)
              << std::endl;

    std::string line;
    while (std::getline(std::cin, line)) {
        if (line == "unregister" && worker.joinable()) {
            stop_worker(worker);
            std::cout << "unregistered" << std::endl;
        } else {
            std::cerr << "consumer_cpp: unknown command '" << line << "'\n";
        }
    }
    if (worker.joinable()) stop_worker(worker);
    return 0;
}
