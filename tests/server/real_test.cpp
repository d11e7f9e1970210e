// The real server: llama3-tiny from ../shared on a real engine, over HTTP on a
// free loopback port.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <thread>

#include "harness.h"
#include "model/model.h"
#include "runtime/scheduler.h"
#include "server/engine_scheduler.h"

using namespace loom;
using namespace loom::test;
using nlohmann::json;

namespace {

// Forwards to the real engine and notes the engine step at which the server first
// cancelled a request (it noticed a client had gone).
struct NotingEngine final : server::Engine {
    explicit NotingEngine(std::unique_ptr<server::Engine> e) : inner(std::move(e)) {}
    uint64_t submit(server::GenParams p, server::GenCallbacks cb) override { return inner->submit(std::move(p), std::move(cb)); }
    void cancel(uint64_t id) override {
        uint64_t none = 0;
        cancel_step.compare_exchange_strong(none, inner->stats().steps + 1);
        inner->cancel(id);
    }
    server::EngineStats stats() const override { return inner->stats(); }
    int n_ctx() const override { return inner->n_ctx(); }
    std::unique_ptr<server::Engine> inner;
    std::atomic<uint64_t> cancel_step{0};  // steps run when cancel() came, plus one (0: none yet)
};

struct RealServer {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tok;
    std::unique_ptr<Scheduler> sched;
    std::unique_ptr<NotingEngine> eng;
    std::unique_ptr<server::HttpServer> http;
    int port = 0;
    explicit RealServer(int n_parallel = 4, int ctx = 1024, int batch_tokens = 64) {
        model = Model::load(model_path("llama3-tiny.q8_0.gguf"));
        tok = Tokenizer::from_gguf(model->file());
        ContextParams cp;
        cp.n_ctx = ctx;
        cp.n_threads = 2;
        cp.n_seq_max = 2 * n_parallel + 8;
        cp.n_batch = batch_tokens;
        SchedulerParams sp;
        sp.n_parallel = n_parallel;
        sp.batch_tokens = batch_tokens;
        sp.max_waiting = 64;
        sched = std::make_unique<Scheduler>(*model, cp, sp, tok.get());
        sched->start();
        eng = std::make_unique<NotingEngine>(server::make_scheduler_engine(*sched, ctx));
        server::ServerOptions o;
        o.port = 0;
        o.n_parallel = n_parallel;
        http = std::make_unique<server::HttpServer>(o);
        port = http->start();
        http->set_model(model_info(*tok, *eng, "tiny"));
    }
    ~RealServer() {
        http->stop();
        sched->stop();
    }
    json post(const std::string& path, const json& body, int expect = 200) const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(60, 0);
        auto r = c.Post(path, body.dump(), "application/json");
        EXPECT_TRUE(r);
        if (!r) return {};
        EXPECT_EQ(r->status, expect) << r->body;
        return json::parse(r->body);
    }
    std::string get(const std::string& path) const {
        httplib::Client c("127.0.0.1", port);
        auto r = c.Get(path);
        return r ? r->body : "";
    }
};

json chat_body(const std::string& user, int max_tokens = 12) {
    return {{"model", "tiny"},
            {"messages", {{{"role", "user"}, {"content", user}}}},
            {"max_tokens", max_tokens},
            {"temperature", 0},
            {"seed", 1}};
}

// Text of a streamed response (chat deltas or completion texts), and its finish reason.
std::pair<std::string, std::string> stream_text(const SseResult& s) {
    std::string text, finish;
    for (const auto& d : s.data) {
        if (d == "[DONE]") break;
        const json j = json::parse(d);
        for (const auto& c : j["choices"]) {
            if (c.contains("delta") && c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
            if (c.contains("text")) text += c["text"].get<std::string>();
            if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
        }
    }
    return {text, finish};
}

}  // namespace

TEST(ServerReal, ChatAndCompletionsStreamedOrNot) {
    LOOM_REQUIRE_SHARED();
    RealServer s;
    EXPECT_EQ(s.get("/health"), R"({"status":"ok"})");
    const json plain = s.post("/v1/chat/completions", chat_body("Tell me a story."));
    const std::string text = plain["choices"][0]["message"]["content"];
    EXPECT_EQ(plain["usage"]["completion_tokens"].get<int>() > 0, true);
    json sb = chat_body("Tell me a story.");
    sb["stream"] = true;
    const auto st = post_sse(s.port, "/v1/chat/completions", sb.dump());
    EXPECT_EQ(st.content_type, "text/event-stream");
    const auto [stext, sfinish] = stream_text(st);
    EXPECT_EQ(stext, text);
    EXPECT_EQ(sfinish, plain["choices"][0]["finish_reason"]);
    EXPECT_EQ(st.data.back(), "[DONE]");

    const json comp = s.post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}});
    EXPECT_EQ(comp["object"], "text_completion");
    EXPECT_EQ(comp["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(comp["usage"]["completion_tokens"], 8);
    const auto cs = post_sse(s.port, "/v1/completions",
                             json{{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}, {"stream", true}}.dump());
    EXPECT_EQ(stream_text(cs).first, comp["choices"][0]["text"]);
}

TEST(ServerReal, TwoChoicesShareThePrompt) {
    LOOM_REQUIRE_SHARED();
    RealServer s;
    json b = chat_body("Pick a number.", 10);
    b["n"] = 2;
    const json r = s.post("/v1/chat/completions", b);
    ASSERT_EQ(r["choices"].size(), 2u);
    EXPECT_EQ(r["choices"][0]["index"], 0);
    EXPECT_EQ(r["choices"][1]["index"], 1);
    EXPECT_EQ(r["choices"][0]["message"]["content"], r["choices"][1]["message"]["content"]);  // greedy
    EXPECT_EQ(r["usage"]["completion_tokens"].get<int>(), 20);
    b["temperature"] = 1.0;
    b["seed"] = 5;
    b["stream"] = true;
    const auto st = post_sse(s.port, "/v1/chat/completions", b.dump());
    int finishes[2] = {0, 0};
    for (const auto& d : st.data) {
        if (d == "[DONE]") break;
        const json j = json::parse(d);
        const int i = j["choices"][0]["index"];
        if (!j["choices"][0]["finish_reason"].is_null()) finishes[i]++;
    }
    EXPECT_EQ(finishes[0], 1);
    EXPECT_EQ(finishes[1], 1);
}

TEST(ServerReal, StopStrings) {
    LOOM_REQUIRE_SHARED();
    RealServer s;
    json b = {{"prompt", "The quick brown fox"}, {"max_tokens", 24}, {"temperature", 0}};
    const std::string full = s.post("/v1/completions", b)["choices"][0]["text"];
    ASSERT_GE(full.size(), 8u) << full;
    // A stop string from the middle of the greedy text (ASCII-safe: two bytes that
    // are not inside a multi-byte character).
    size_t k = full.size() / 2;
    while (k + 2 < full.size() && ((full[k] & 0x80) || (full[k + 1] & 0x80))) ++k;
    ASSERT_LT(k + 2, full.size() + 1);
    const std::string stop = full.substr(k, 2);
    b["stop"] = {stop, "never-appears-xyz"};
    const json r = s.post("/v1/completions", b);
    EXPECT_EQ(r["choices"][0]["text"], full.substr(0, full.find(stop)));
    EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
    b["stream"] = true;
    const auto [text, finish] = stream_text(post_sse(s.port, "/v1/completions", b.dump()));
    EXPECT_EQ(text, full.substr(0, full.find(stop)));
    EXPECT_EQ(finish, "stop");
}

TEST(ServerReal, ModelsTokenizeDetokenize) {
    LOOM_REQUIRE_SHARED();
    RealServer s;
    const json m = json::parse(s.get("/v1/models"));
    EXPECT_EQ(m["object"], "list");
    EXPECT_EQ(m["data"][0]["id"], "tiny");
    const std::string text = "Hello world, loom! Ünïcödé 漢字 🙂";
    const json t = s.post("/tokenize", {{"content", text}});
    ASSERT_TRUE(t["tokens"].is_array());
    EXPECT_GT(t["tokens"].size(), 5u);
    const json d = s.post("/detokenize", {{"tokens", t["tokens"]}});
    EXPECT_EQ(d["content"], text);
    const json p = s.post("/tokenize", {{"content", "Hi"}, {"with_pieces", true}, {"add_special", true}});
    EXPECT_EQ(p["tokens"][0]["id"], s.tok->bos());
}

TEST(ServerReal, ContextOverflowNamesBothNumbers) {
    LOOM_REQUIRE_SHARED();
    RealServer s(4, 256);
    const json e = s.post("/v1/completions", {{"prompt", "a b c d"}, {"max_tokens", 300}}, 400);
    const std::string msg = e["error"]["message"];
    EXPECT_NE(msg.find("max_tokens is 300"), std::string::npos) << msg;
    EXPECT_NE(msg.find("context of 256"), std::string::npos) << msg;
    EXPECT_EQ(e["error"]["param"], "max_tokens");
}

TEST(ServerReal, MetricsParseAsPrometheusText) {
    LOOM_REQUIRE_SHARED();
    RealServer s;
    for (int i = 0; i < 3; ++i) s.post("/v1/completions", {{"prompt", "Count: " + std::to_string(i)}, {"max_tokens", 5}});
    const std::string text = s.get("/metrics");
    const std::regex comment(R"(^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$)");
    const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? ([-+]?[0-9.eE+-]+|\+Inf|NaN)$)");
    std::map<std::string, double> values;
    std::istringstream in(text);
    int n = 0;
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (std::regex_match(line, m, comment)) continue;
        ASSERT_TRUE(std::regex_match(line, m, sample)) << "not Prometheus text: " << line;
        values[m[1].str() + m[2].str()] = std::stod(m[4].str() == "+Inf" ? "inf" : m[4].str());
        n++;
    }
    EXPECT_GT(n, 40);
    for (const char* k : {"loom:num_requests_running", "loom:num_requests_waiting", "loom:kv_cache_usage_perc",
                          "loom:prompt_tokens_total", "loom:generation_tokens_total", "loom:prefix_cache_queries_total",
                          "loom:prefix_cache_hits_total", "loom:preemptions_total",
                          "loom:time_to_first_token_seconds_count", "loom:inter_token_latency_seconds_count",
                          "loom:e2e_request_latency_seconds_count", "loom:request_queue_time_seconds_count"})
        EXPECT_TRUE(values.count(k)) << k;
    EXPECT_EQ(values["loom:e2e_request_latency_seconds_count"], 3);
    EXPECT_EQ(values["loom:generation_tokens_total"], 15);
    EXPECT_EQ(values["loom:request_success_total{finished_reason=\"length\"}"], 3);
    EXPECT_EQ(values["loom:inter_token_latency_seconds_count"], 12);
    EXPECT_EQ(values["loom:time_to_first_token_seconds_bucket{le=\"+Inf\"}"], 3);
}

TEST(ServerReal, ConcurrentClientsMatchAlone) {
    LOOM_REQUIRE_SHARED();
    RealServer s(16, 4096, 64);
    constexpr int kClients = 16;
    auto body = [](int i) {
        json b = {{"prompt", "Client " + std::to_string(i) + " says:" + std::string(static_cast<size_t>(i % 5), '!')},
                  {"max_tokens", 16}, {"seed", 100 + i}};
        b["temperature"] = i % 2 ? 0.9 : 0.0;  // odd: seeded sampling; even: greedy
        return b;
    };
    std::vector<std::string> alone(kClients), together(kClients);
    for (int i = 0; i < kClients; ++i) alone[static_cast<size_t>(i)] = s.post("/v1/completions", body(i))["choices"][0]["text"];
    std::vector<std::thread> th;
    for (int i = 0; i < kClients; ++i)
        th.emplace_back([&, i] {
            json b = body(i);
            b["stream"] = i % 3 == 0;
            if (b["stream"]) together[static_cast<size_t>(i)] = stream_text(post_sse(s.port, "/v1/completions", b.dump())).first;
            else together[static_cast<size_t>(i)] = s.post("/v1/completions", b)["choices"][0]["text"];
        });
    for (auto& t : th) t.join();
    for (int i = 0; i < kClients; ++i) EXPECT_EQ(together[static_cast<size_t>(i)], alone[static_cast<size_t>(i)]) << "client " << i;
}

TEST(ServerReal, DisconnectFreesTheSequenceWithinAStep) {
    LOOM_REQUIRE_SHARED();
    RealServer s(4, 2048, 64);
    const json long_req = {{"prompt", "Go on and on"}, {"max_tokens", 1500}, {"ignore_eos", true}, {"stream", true}};
    std::atomic<bool> other_done{false}, stop_other{false};
    std::thread other([&] {
        post_sse(s.port, "/v1/completions", long_req.dump(), [&](const std::string&) { return !stop_other.load(); });
        other_done = true;
    });
    uint64_t steps_at_hangup = 0;
    int chunks = 0;
    post_sse(s.port, "/v1/completions", long_req.dump(), [&](const std::string&) {
        if (++chunks < 5) return true;
        steps_at_hangup = s.eng->stats().steps;
        return false;
    });
    // The server notices at a token write (the kernel still takes the first write after
    // the hang-up; the next one fails) and cancels; the scheduler drops the sequence
    // at its next step.
    int running = 2;
    uint64_t steps_at_drop = 0;
    for (int i = 0; i < 2000 && !other_done; ++i) {
        const auto st = s.eng->stats();
        running = st.running;
        if (running <= 1) {
            steps_at_drop = st.steps;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_FALSE(other_done.load()) << "the other stream ended first: cannot tell";
    EXPECT_LE(running, 1);
    const uint64_t noticed = s.eng->cancel_step.load();
    ASSERT_GT(noticed, 0u) << "the server never cancelled the request";
    const uint64_t noticed_at = noticed - 1;
    // From the server's cancel to the sequence's drop: within one step (the step that
    // starts next; the one under way when the cancel came finishes first).
    EXPECT_LE(steps_at_drop, noticed_at + 1) << "cancel at step " << noticed_at << ", dropped at " << steps_at_drop;
    // From the hang-up to the cancel: the tokens already on their way, at most a few
    // (the client reads the step counter after its 5th chunk, the server may be ahead).
    EXPECT_LE(noticed_at, steps_at_hangup + 8) << "hang-up at step " << steps_at_hangup;
    const std::string m = s.get("/metrics");
    EXPECT_NE(m.find("loom:num_requests_running 1"), std::string::npos) << m.substr(0, 0);
    stop_other = true;
    other.join();
}
