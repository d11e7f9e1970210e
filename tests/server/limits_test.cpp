// The server's limits, each enforced with its documented answer (docs/errors.md):
// generated tokens per choice (--max-tokens: 400), request time (--timeout: the
// choices end with finish_reason "length"), context (-c: 400), request body
// (--max-body: 413), running and queued requests (--parallel, --max-queue: 503).
// ServerLimits runs the HTTP layer over the fake engine; ServeLimits runs bin/loom serve.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "harness.h"
#include "spawn.h"

using namespace loom;
using namespace loom::test;
using nlohmann::json;

namespace {

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

struct LimitServer {
    std::unique_ptr<TokenizerFixture> tf = std::make_unique<TokenizerFixture>();
    FakeEngine eng;
    std::unique_ptr<server::HttpServer> http;
    int port = 0;
    explicit LimitServer(const server::ServerOptions& base) {
        server::ServerOptions o = base;
        o.port = 0;
        o.ping_interval_s = 0.05;
        http = std::make_unique<server::HttpServer>(o);
        port = http->start();
        http->set_model(model_info(*tf->tok, eng));
    }
    httplib::Result post(const std::string& path, const std::string& body) {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(30, 0);
        return c.Post(path, body, "application/json");
    }
};

}  // namespace

TEST(ServerLimits, MaxTokensCapsEveryChoice) {
    LOOM_REQUIRE_SHARED();
    server::ServerOptions o;
    o.max_tokens = 8;
    LimitServer s(o);
    auto over = s.post("/v1/completions", R"({"prompt":"hi","max_tokens":9})");
    ASSERT_TRUE(over);
    EXPECT_EQ(over->status, 400);
    const json e = json::parse(over->body)["error"];
    EXPECT_EQ(e["param"], "max_tokens");
    EXPECT_EQ(e["code"], "max_tokens_exceeded");
    EXPECT_NE(e["message"].get<std::string>().find("at most 8 tokens per choice (--max-tokens)"), std::string::npos);
    // Without max_tokens: the cap, not the context (256), bounds the answer.
    auto def = s.post("/v1/completions", R"({"prompt":"hi","n":2})");
    ASSERT_EQ(def->status, 200) << def->body;
    const json j = json::parse(def->body);
    EXPECT_EQ(j["usage"]["completion_tokens"], 16);
    EXPECT_EQ(j["choices"][1]["finish_reason"], "length");
    auto ok = s.post("/v1/completions", R"({"prompt":"hi","max_tokens":8})");
    EXPECT_EQ(ok->status, 200) << ok->body;
}

// A request running past --timeout ends with finish_reason "length" and what it has
// generated, streamed or not; the engine is told to stop it.
TEST(ServerLimits, RequestTimeoutEndsWithLength) {
    LOOM_REQUIRE_SHARED();
    server::ServerOptions o;
    o.request_timeout_s = 0.4;
    LimitServer s(o);
    s.eng.step_ms = 20;  // 200 tokens: 4 s without the limit
    const double t0 = now_s();
    auto r = s.post("/v1/completions", R"({"prompt":"hi","max_tokens":200})");
    const double took = now_s() - t0;
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const json j = json::parse(r->body);
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    const int n = j["usage"]["completion_tokens"];
    EXPECT_GT(n, 0);
    EXPECT_LT(n, 200);
    EXPECT_LT(took, 3.0);
    EXPECT_GE(s.eng.cancels.load(), 1);

    const auto st = post_sse(s.port, "/v1/chat/completions",
                             R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":200,"stream":true,"stream_options":{"include_usage":true}})");
    EXPECT_EQ(st.status, 200);
    ASSERT_GE(st.data.size(), 3u);
    EXPECT_EQ(st.data.back(), "[DONE]");
    const json fin = json::parse(st.data[st.data.size() - 3]);
    EXPECT_EQ(fin["choices"][0]["finish_reason"], "length") << fin.dump();
    EXPECT_LT(json::parse(st.data[st.data.size() - 2])["usage"]["completion_tokens"].get<int>(), 200);
    httplib::Client c("127.0.0.1", s.port);
    const std::string m = c.Get("/metrics")->body;
    EXPECT_NE(m.find("loom:request_success_total{finished_reason=\"length\"} 2"), std::string::npos) << m;
}

namespace {

#define LOOM_REQUIRE_SERVE()                                                                        \
    do {                                                                                            \
        LOOM_REQUIRE_SHARED_FILE("models/llama3-tiny.q8_0.gguf");                                   \
        if (!std::filesystem::exists(loom_binary())) GTEST_SKIP() << "bin/loom not built";           \
    } while (0)

json error_of(const httplib::Result& r) {
    const json j = json::parse(r->body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"] : json();
}

}  // namespace

// -c, --max-body and --max-tokens through the command line.
TEST(ServeLimits, ContextBodyAndTokens) {
    LOOM_REQUIRE_SERVE();
    ServeProcess srv({"-m", model_path("llama3-tiny.q8_0.gguf"), "-c", "64", "--max-body", "2000", "--max-tokens",
                      "16", "-t", "1", "--parallel", "2"});
    ASSERT_TRUE(srv.ok()) << srv.log();
    auto c = srv.client();
    json ids = json::array();
    for (int i = 0; i < 70; ++i) ids.push_back(100 + i);
    auto r = c.Post("/v1/completions", json{{"prompt", ids}}.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(error_of(r)["code"], "context_length_exceeded") << r->body;
    EXPECT_NE(r->body.find("the prompt has 70 tokens; the context holds 64"), std::string::npos) << r->body;

    json ids60 = json::array();
    for (int i = 0; i < 60; ++i) ids60.push_back(100 + i);
    r = c.Post("/v1/completions", json{{"prompt", ids60}, {"max_tokens", 10}}.dump(), "application/json");
    EXPECT_EQ(r->status, 400);
    EXPECT_NE(r->body.find("70 over the context of 64 tokens"), std::string::npos) << r->body;

    r = c.Post("/v1/completions", R"({"prompt":"hi","max_tokens":17})", "application/json");
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(error_of(r)["code"], "max_tokens_exceeded") << r->body;

    r = c.Post("/v1/completions", json{{"prompt", std::string(2500, 'a')}}.dump(), "application/json");
    EXPECT_EQ(r->status, 413);
    EXPECT_NE(error_of(r)["message"].get<std::string>().find("over the limit of 2000 bytes"), std::string::npos)
        << r->body;

    r = c.Post("/v1/completions", R"({"prompt":"hi","ignore_eos":true})", "application/json");
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(json::parse(r->body)["usage"]["completion_tokens"], 16);
    EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// --parallel and --max-queue bound what runs and waits (more: 503 queue_full);
// --timeout cuts what runs too long (finish_reason "length").
TEST(ServeLimits, ParallelQueueAndTimeout) {
    LOOM_REQUIRE_SERVE();
    const double timeout = 2;
    ServeProcess srv({"-m", model_path("llama3-tiny.q8_0.gguf"), "-c", "16384", "--parallel", "2", "--max-queue", "1",
                      "--max-tokens", "8000", "--timeout", "2", "-t", "1"});
    ASSERT_TRUE(srv.ok()) << srv.log();
    constexpr int K = 6;
    std::atomic<int> max_running{0};
    std::atomic<bool> done{false};
    std::thread watch([&] {  // /metrics: never more running than --parallel
        auto c = srv.client(10);
        const std::regex re("loom:num_requests_running ([0-9.]+)");
        for (int i = 0; i < 2000 && !done; ++i) {
            if (auto m = c.Get("/metrics")) {
                std::smatch g;
                if (std::regex_search(m->body, g, re)) max_running = std::max(max_running.load(), std::stoi(g[1]));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    });
    std::vector<SseResult> res(K);
    std::vector<double> took(K);
    std::vector<std::thread> th;
    for (int i = 0; i < K; ++i)
        th.emplace_back([&, i] {
            const double t0 = now_s();
            res[i] = post_sse(srv.port(), "/v1/completions",
                              R"({"prompt":"hello","max_tokens":8000,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}})");
            took[i] = now_s() - t0;
        });
    for (auto& t : th) t.join();
    done = true;
    watch.join();
    int accepted = 0, busy = 0;
    for (int i = 0; i < K; ++i) {
        if (res[i].status == 503) {
            busy++;
            EXPECT_NE(res[i].body.find("queue_full"), std::string::npos) << res[i].body;
            continue;
        }
        ASSERT_EQ(res[i].status, 200) << res[i].body;
        accepted++;
        ASSERT_GE(res[i].data.size(), 3u);
        EXPECT_EQ(res[i].data.back(), "[DONE]");
        const json fin = json::parse(res[i].data[res[i].data.size() - 3]);
        EXPECT_EQ(fin["choices"][0]["finish_reason"], "length");
        EXPECT_LT(json::parse(res[i].data[res[i].data.size() - 2])["usage"]["completion_tokens"].get<int>(), 8000);
        EXPECT_LT(took[i], timeout + 8) << "request " << i;
    }
    EXPECT_GE(accepted, 1);
    EXPECT_LE(accepted, 3);  // --parallel 2 + --max-queue 1
    EXPECT_EQ(accepted + busy, K);
    EXPECT_LE(max_running.load(), 2);
    std::printf("accepted %d busy %d max_running %d\n", accepted, busy, max_running.load());
    EXPECT_EQ(srv.stop(), 0) << srv.log();
}

TEST(ServeLimits, BadLimitsAreRefused) {
    LOOM_REQUIRE_SERVE();
    for (const auto& [flag, val, msg] : {std::tuple{"--max-tokens", "-1", "--max-tokens must be >= 0"},
                                         std::tuple{"--timeout", "-5", "--timeout must be >= 0"},
                                         std::tuple{"--receive-timeout", "-1", "--receive-timeout must be >= 0"},
                                         std::tuple{"--max-body", "0", "--max-body must be >= 1"}}) {
        ServeProcess srv({"-m", model_path("llama3-tiny.q8_0.gguf"), flag, val}, 10);
        EXPECT_FALSE(srv.ok());
        EXPECT_NE(srv.stop(), 0);
        EXPECT_NE(srv.log().find(msg), std::string::npos) << srv.log();
    }
}
