// Internals shared by server.cpp (routes, admin endpoints) and generate.cpp
// (completions). Not part of the server's interface.
#pragma once
#include <httplib.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "server/api.h"
#include "server/format.h"
#include "server/receive_guard.h"
#include "server/server.h"

namespace loom::server {

struct HttpServer::Impl {
    ServerOptions opts;
    httplib::Server svr;
    std::thread listener;
    int port = 0;
    int listen_fd = -1;         // the listening socket (seen by the socket-options hook)
    Metrics metrics;
    std::unique_ptr<ReceiveGuard> receive_guard;  // --receive-timeout (null: none)
    std::atomic<bool> ready{false}, stopping{false};
    std::mutex model_mutex;     // guards model while set_model runs
    ModelInfo model;
    // Jobs outlive the server when the engine finishes them later (its destructor
    // cancels what is left): their completion records through this guard, which the
    // server's destructor closes, never through a dangling Impl.
    struct Guard {
        std::mutex m;
        Impl* impl = nullptr;
    };
    std::shared_ptr<Guard> guard = std::make_shared<Guard>();

    void routes();
    void send_error(httplib::Response& res, const ApiError& e);
    bool model_known(const std::string& name) const;
    void generate(const httplib::Request& req, httplib::Response& res, ApiKind kind);
    void record(const Job& job);   // metrics of a finished job
};

double steady_now();

}  // namespace loom::server
