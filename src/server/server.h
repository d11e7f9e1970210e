// loom serve: an OpenAI-compatible HTTP server (cpp-httplib) in front of an Engine.
//
// The server listens before the model is loaded: /health answers 503 until
// set_model(), 200 after. HTTP threads never run the engine: they submit jobs
// and wait for their own job's tokens, so /health and /metrics answer during a
// long prefill. Each open connection holds one HTTP thread (cpp-httplib's
// model), so the pool is sized for every running and queued request plus
// admin calls.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat.h"
#include "server/engine.h"
#include "server/metrics.h"
#include "tokenizer/tokenizer.h"

namespace loom::server {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;                 // 0: any free port (see HttpServer::port())
    std::string api_key;             // empty: no authentication
    int n_parallel = 8;              // engine's running requests (sizes the HTTP pool)
    int max_queue = 64;              // engine's waiting requests (sizes the HTTP pool)
    int http_threads = 0;            // 0: n_parallel + max_queue + 16
    size_t max_body = 8u << 20;      // bytes; larger bodies get 413
    int max_tokens = 0;              // generated tokens per choice (0: up to the context); more asked: 400
    double request_timeout_s = 600;  // a request running longer (from arrival) is cut: finish_reason
                                     // "length" with the text so far (0: no limit)
    double receive_timeout_s = 60;   // a request must arrive whole (headers and body) within this
                                     // from the connection's start or the previous response's end;
                                     // slower: 408 and the connection closed (0: no limit)
    double ping_interval_s = 1.0;    // ": ping" while a streamed request waits for its first token
    int read_timeout_s = 30, write_timeout_s = 30, keep_alive_timeout_s = 5;
    std::string replica_id;          // non-empty: every response carries "X-Loom-Replica: <id>"
};

struct ModelInfo {
    std::string name;                          // reported in responses and /v1/models
    std::vector<std::string> accepted_names;   // "model" values accepted besides name
    const Tokenizer* tok = nullptr;
    Engine* engine = nullptr;
    // The conversation in the model's chat template (with the assistant's turn opened).
    std::function<std::vector<ChatPart>(std::span<const ChatMessage>)> render_chat;
    nlohmann::json meta = nlohmann::json::object();  // extra facts for /v1/models
};

class HttpServer {
public:
    explicit HttpServer(ServerOptions opts);
    ~HttpServer();
    // Binds and starts listening on a thread; returns the port. Throws std::runtime_error
    // naming host and port when the bind fails.
    int start();
    void set_model(ModelInfo m);   // from now on /health is 200 and generation is served
    void stop();                   // stops listening, ends streams, joins the threads
    int port() const;
    Metrics& metrics();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace loom::server
