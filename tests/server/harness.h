// Test helpers for tests/server: an in-process server on a free loopback port,
// a scripted fake engine, and a small SSE client.
#pragma once
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat.h"
#include "gguf/gguf.h"
#include "server/engine.h"
#include "server/server.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace loom::test {

// Generates "w0 w1 w2 ..." (one word per token, one token per choice per step),
// step_ms apart, finishing "length" at max_tokens. At most n_parallel requests
// run; max_queue wait; more: EngineBusy.
class FakeEngine : public server::Engine {
public:
    // Atomic: tests change them while the engine's thread runs (a plain int is a data
    // race, ThreadSanitizer says so).
    std::atomic<int> n_parallel{4}, max_queue{4}, step_ms{2}, ctx{256};
    std::atomic<int> cancels{0};
    FakeEngine() : th_([this] { loop(); }) {}
    ~FakeEngine() override {
        {
            std::lock_guard lk(m_);
            stop_ = true;
        }
        cv_.notify_all();
        th_.join();
    }
    uint64_t submit(server::GenParams p, server::GenCallbacks cb) override {
        std::lock_guard lk(m_);
        if (static_cast<int>(waiting_.size()) >= max_queue) throw server::EngineBusy("queue full");
        const uint64_t id = next_++;
        waiting_.push_back({id, std::move(p), std::move(cb), 0, false});
        cv_.notify_all();
        return id;
    }
    void cancel(uint64_t id) override {
        std::lock_guard lk(m_);
        cancels++;
        for (auto& r : running_) if (r.id == id) r.cancel = true;
        for (auto& r : waiting_) if (r.id == id) r.cancel = true;
    }
    server::EngineStats stats() const override {
        std::lock_guard lk(m_);
        server::EngineStats s;
        s.running = static_cast<int>(running_.size());
        s.waiting = static_cast<int>(waiting_.size());
        s.kv_usage = 0.25;
        return s;
    }
    int n_ctx() const override { return ctx; }
    void pause(bool on) {
        std::lock_guard lk(m_);
        paused_ = on;
        cv_.notify_all();
    }

private:
    struct Req {
        uint64_t id;
        server::GenParams p;
        server::GenCallbacks cb;
        int produced;
        bool cancel;
    };
    static double now() {
        using namespace std::chrono;
        return duration<double>(steady_clock::now().time_since_epoch()).count();
    }
    void finish(Req& r, const std::string& reason) {
        for (int c = 0; c < r.p.n; ++c) {
            server::ChoiceDone d;
            d.choice = c;
            d.finish_reason = reason;
            d.n_prompt = static_cast<int>(r.p.prompt.size());
            d.n_gen = r.produced;
            d.prompt_ms = 1;
            d.gen_ms = r.produced * step_ms;
            d.t = now();
            r.cb.on_done(d);
        }
    }
    void loop() {
        std::unique_lock lk(m_);
        while (!stop_) {
            cv_.wait_for(lk, std::chrono::milliseconds(step_ms.load()));
            if (paused_) continue;
            while (static_cast<int>(running_.size()) < n_parallel && !waiting_.empty()) {
                running_.push_back(std::move(waiting_.front()));
                waiting_.pop_front();
            }
            for (auto it = running_.begin(); it != running_.end();) {
                Req& r = *it;
                bool ended = r.cancel;
                if (!ended) {
                    for (int c = 0; c < r.p.n && !ended; ++c) {
                        server::TokenOut t;
                        t.choice = c;
                        t.token = 100 + r.produced;
                        t.text = std::to_string(r.produced);  // "w<k> " (appended, not "w" + ...: GCC 12's
                        t.text.insert(0, 1, 'w');             // -Wrestrict misfires on operator+ here)
                        t.text += ' ';
                        t.t = now();
                        if (!r.cb.on_token(t)) ended = true;
                    }
                    r.produced++;
                }
                if (ended || r.produced >= r.p.max_tokens) {
                    finish(r, ended ? "cancelled" : "length");
                    it = running_.erase(it);
                } else {
                    ++it;
                }
            }
        }
        for (auto& r : running_) finish(r, "cancelled");
        for (auto& r : waiting_) finish(r, "cancelled");
    }
    mutable std::mutex m_;
    std::condition_variable cv_;
    std::deque<Req> waiting_;
    std::vector<Req> running_;
    uint64_t next_ = 1;
    bool stop_ = false, paused_ = false;
    std::thread th_;
};

inline std::string model_path(const char* name) { return (shared_dir() / "models" / name).string(); }

// The llama3-tiny tokenizer and the Llama 3 chat template.
struct TokenizerFixture {
    std::unique_ptr<gguf::File> file;
    std::unique_ptr<Tokenizer> tok;
    TokenizerFixture() {
        file = gguf::File::open(model_path("llama3-tiny.q8_0.gguf"));
        tok = Tokenizer::from_gguf(*file);
    }
};

inline server::ModelInfo model_info(const Tokenizer& tok, server::Engine& eng, const std::string& name = "tiny") {
    server::ModelInfo mi;
    mi.name = name;
    mi.tok = &tok;
    mi.engine = &eng;
    mi.render_chat = [](std::span<const ChatMessage> m) { return render_chat_parts(ChatTemplate::Llama3, m, true); };
    return mi;
}

struct SseResult {
    int status = 0;
    std::string content_type, body;          // body: only when not an event stream
    std::vector<std::string> data;           // "data:" payloads in order
    int pings = 0;                           // ": ping" comments
};

// POST with a streamed answer. on_data may return false to hang up.
inline SseResult post_sse(int port, const std::string& path, const std::string& body,
                          const std::function<bool(const std::string&)>& on_data = {},
                          const httplib::Headers& headers = {}) {
    httplib::Client cli("127.0.0.1", port);
    cli.set_read_timeout(30, 0);
    SseResult out;
    std::string buf;
    bool stop = false;
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.headers = headers;
    req.set_header("Content-Type", "application/json");
    req.body = body;
    req.response_handler = [&](const httplib::Response& r) {
        out.status = r.status;
        out.content_type = r.get_header_value("Content-Type");
        return true;
    };
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
        if (out.content_type != "text/event-stream") {
            out.body.append(d, n);
            return true;
        }
        buf.append(d, n);
        size_t e;
        while ((e = buf.find("\n\n")) != std::string::npos) {
            const std::string ev = buf.substr(0, e);
            buf.erase(0, e + 2);
            if (ev.rfind(": ping", 0) == 0) out.pings++;
            else if (ev.rfind("data: ", 0) == 0) {
                out.data.push_back(ev.substr(6));
                if (on_data && !on_data(out.data.back())) stop = true;
            }
        }
        return !stop;
    };
    httplib::Response res;
    httplib::Error err;
    cli.send(req, res, err);
    if (out.status == 0) out.status = res.status;
    return out;
}

}  // namespace loom::test
