#include <sys/socket.h>

#include <chrono>
#include <stdexcept>

#include "server/impl.h"

namespace loom::server {

using nlohmann::json;

double steady_now() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

HttpServer::HttpServer(ServerOptions opts) : impl_(std::make_unique<Impl>()) {
    impl_->opts = std::move(opts);
    impl_->guard->impl = impl_.get();
}

HttpServer::~HttpServer() {
    stop();
    std::lock_guard lk(impl_->guard->m);
    impl_->guard->impl = nullptr;
}

Metrics& HttpServer::metrics() { return impl_->metrics; }
int HttpServer::port() const { return impl_->port; }

void HttpServer::Impl::send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    if (e.status == 503) res.set_header("Retry-After", "1");
    res.set_content(dump(error_json(e)), "application/json");
    metrics.add_http_error(e.status);
}

bool HttpServer::Impl::model_known(const std::string& name) const {
    if (name.empty() || name == model.name) return true;
    for (const auto& a : model.accepted_names)
        if (a == name) return true;
    return false;
}

namespace {

constexpr int kListenBacklog = 1024;   // the kernel caps it at net.core.somaxconn

// Equal without an early exit on the first differing byte.
bool same_key(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
    return diff == 0 && !b.empty();
}

const char* status_type(int status) {
    switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 405: return "invalid_request_error";
    case 413: return "invalid_request_error";
    case 503: return "unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

}  // namespace

void HttpServer::Impl::routes() {
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (opts.api_key.empty() || req.path == "/health" || req.path == "/v1/health")
            return httplib::Server::HandlerResponse::Unhandled;
        std::string auth = req.get_header_value("Authorization");
        const std::string bearer = "Bearer ";
        std::string key;
        if (auth.compare(0, bearer.size(), bearer) == 0) key = auth.substr(bearer.size());
        else key = req.get_header_value("x-api-key");
        if (key.empty()) {
            send_error(res, ApiError(401, "missing API key: send the header 'Authorization: Bearer KEY'",
                                     "authentication_error", {}, "missing_api_key"));
            return httplib::Server::HandlerResponse::Handled;
        }
        if (!same_key(key, opts.api_key)) {
            send_error(res, ApiError(401, "invalid API key", "authentication_error", {}, "invalid_api_key"));
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    // Errors cpp-httplib produces itself (no route, body too large, bad request line):
    // give them the JSON error body. Our own errors already have one.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string msg;
        switch (res.status) {
        case 404: msg = "no route " + req.method + " " + req.path; break;
        case 413: msg = "request body over the limit of " + std::to_string(opts.max_body) + " bytes (--max-body)"; break;
        case 400: msg = "malformed HTTP request"; break;
        case 414: msg = "request URI too long"; break;
        default: msg = "HTTP error " + std::to_string(res.status); break;
        }
        const int st = res.status;
        send_error(res, ApiError(st, msg, status_type(st), {}, st == 404 ? "not_found" : ""));
        return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string msg = "internal error";
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            msg = std::string("internal error: ") + e.what();
        } catch (...) {
        }
        send_error(res, ApiError(500, msg, "server_error"));
    });

    auto health = [this](const httplib::Request&, httplib::Response& res) {
        if (!ready) {
            send_error(res, ApiError(503, "loading model", "unavailable_error", {}, "loading"));
            return;
        }
        res.set_content(R"({"status":"ok"})", "application/json");
    };
    auto models = [this](const httplib::Request&, httplib::Response& res) {
        if (!ready) return send_error(res, ApiError(503, "loading model", "unavailable_error", {}, "loading"));
        json m = {{"id", model.name}, {"object", "model"}, {"created", unix_time()}, {"owned_by", "loom"},
                  {"meta", model.meta}};
        res.set_content(dump({{"object", "list"}, {"data", json::array({m})}}), "application/json");
    };
    auto model_one = [this](const httplib::Request& req, httplib::Response& res) {
        if (!ready) return send_error(res, ApiError(503, "loading model", "unavailable_error", {}, "loading"));
        const std::string id = req.matches[1];
        if (!model_known(id))
            return send_error(res, ApiError(404, "model '" + id + "' does not exist (this server has '" + model.name + "')",
                                            "not_found_error", "model", "model_not_found"));
        res.set_content(dump({{"id", model.name}, {"object", "model"}, {"created", unix_time()}, {"owned_by", "loom"}}),
                        "application/json");
    };
    auto metrics_h = [this](const httplib::Request&, httplib::Response& res) {
        EngineStats s;
        if (ready) s = model.engine->stats();
        res.set_content(metrics.render(s, ready), "text/plain; version=0.0.4");
    };
    auto tokenize = [this](const httplib::Request& req, httplib::Response& res) {
        try {
            if (!ready) throw ApiError(503, "loading model", "unavailable_error", {}, "loading");
            const TokenizeRequest t = parse_tokenize(req.body);
            const auto ids = model.tok->tokenize(t.content, t.add_special, /*parse_special=*/true);
            json toks = json::array();
            for (int32_t id : ids) {
                if (t.with_pieces) toks.push_back({{"id", id}, {"piece", model.tok->token_to_piece(id)}});
                else toks.push_back(id);
            }
            res.set_content(dump({{"tokens", toks}}), "application/json");
        } catch (const ApiError& e) {
            send_error(res, e);
        }
    };
    auto detokenize = [this](const httplib::Request& req, httplib::Response& res) {
        try {
            if (!ready) throw ApiError(503, "loading model", "unavailable_error", {}, "loading");
            const auto ids = parse_detokenize(req.body, model.tok->n_vocab());
            res.set_content(dump({{"content", model.tok->detokenize(ids)}}), "application/json");
        } catch (const ApiError& e) {
            send_error(res, e);
        }
    };
    auto chat = [this](const httplib::Request& req, httplib::Response& res) { generate(req, res, ApiKind::Chat); };
    auto completion = [this](const httplib::Request& req, httplib::Response& res) {
        generate(req, res, ApiKind::Completion);
    };

    struct Route {
        const char* path;
        bool post;
        httplib::Server::Handler h;
    };
    const std::vector<Route> table = {
        {"/health", false, health},           {"/v1/health", false, health},
        {"/v1/models", false, models},        {"/models", false, models},
        {R"(/v1/models/(.+))", false, model_one},
        {"/metrics", false, metrics_h},       {"/tokenize", true, tokenize},
        {"/detokenize", true, detokenize},    {"/v1/chat/completions", true, chat},
        {"/chat/completions", true, chat},    {"/v1/completions", true, completion},
        {"/completions", true, completion},
    };
    // Once a request has arrived whole, --receive-timeout stops counting until it is answered.
    auto guarded = [this](httplib::Server::Handler h) {
        return [this, h](const httplib::Request& req, httplib::Response& res) {
            if (receive_guard) receive_guard->handling(req.remote_addr, req.remote_port);
            h(req, res);
        };
    };
    svr.set_logger([this](const httplib::Request& req, const httplib::Response&) {
        if (receive_guard) receive_guard->answered(req.remote_addr, req.remote_port);
    });
    for (const Route& r : table) {
        const std::string allow = r.post ? "POST" : "GET";
        auto wrong = guarded([this, allow](const httplib::Request& req, httplib::Response& res) {
            res.set_header("Allow", allow);
            send_error(res, ApiError(405, "method " + req.method + " not allowed on " + req.path + " (use " + allow + ")",
                                     "invalid_request_error", {}, "method_not_allowed"));
        });
        if (r.post) {
            svr.Post(r.path, guarded(r.h));
            svr.Get(r.path, wrong);
        } else {
            svr.Get(r.path, guarded(r.h));
            svr.Post(r.path, wrong);
        }
        svr.Put(r.path, wrong);
        svr.Delete(r.path, wrong);
        svr.Patch(r.path, wrong);
    }
}

int HttpServer::start() {
    Impl& s = *impl_;
    const ServerOptions& o = s.opts;
    const int threads = o.http_threads > 0 ? o.http_threads : o.n_parallel + o.max_queue + 16;
    s.svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    s.svr.set_tcp_nodelay(true);
    // Behind a load balancer, which replica answered (affinity checks, debugging).
    if (!o.replica_id.empty()) s.svr.set_default_headers({{"X-Loom-Replica", o.replica_id}});
    s.svr.set_payload_max_length(o.max_body);
    s.svr.set_keep_alive_max_count(1000);
    s.svr.set_keep_alive_timeout(o.keep_alive_timeout_s);
    s.svr.set_read_timeout(o.read_timeout_s);
    s.svr.set_write_timeout(o.write_timeout_s);
    s.routes();
    // Debian's cpp-httplib sets SO_REUSEPORT (a second server on the same port would share
    // it silently instead of failing) and listens with a backlog of 5: a burst of new
    // connections (a load balancer opening many upstream connections at once) overflows
    // it and the dropped SYNs are retried a second later. Plain SO_REUSEADDR here, and a
    // deeper backlog once bound.
    s.svr.set_socket_options([&s](int sock) {
        int yes = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        s.listen_fd = sock;
    });
    if (o.port == 0) {
        s.port = s.svr.bind_to_any_port(o.host);
        if (s.port <= 0) throw std::runtime_error("cannot listen on " + o.host + " (no free port)");
    } else {
        if (!s.svr.bind_to_port(o.host, o.port))
            throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                                     " (address in use, or not an address of this machine)");
        s.port = o.port;
    }
    if (s.listen_fd >= 0) ::listen(s.listen_fd, kListenBacklog);
    if (o.receive_timeout_s > 0) s.receive_guard = std::make_unique<ReceiveGuard>(s.port, o.receive_timeout_s);
    s.listener = std::thread([&s] { s.svr.listen_after_bind(); });
    for (int i = 0; i < 2000 && !s.svr.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return s.port;
}

void HttpServer::set_model(ModelInfo m) {
    if (!m.tok || !m.engine) throw std::invalid_argument("set_model: tokenizer and engine are required");
    {
        std::lock_guard lk(impl_->model_mutex);
        impl_->model = std::move(m);
    }
    impl_->ready = true;
}

void HttpServer::stop() {
    if (!impl_) return;
    impl_->stopping = true;
    impl_->svr.stop();
    if (impl_->listener.joinable()) impl_->listener.join();
    impl_->receive_guard.reset();
}

}  // namespace loom::server
