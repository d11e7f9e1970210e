// The HTTP layer over a scripted fake engine: routes, statuses, error bodies,
// stream format, disconnects, the queue limit. tests/server/real_test.cpp runs
// the real scheduler and models.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "harness.h"

using namespace loom;
using namespace loom::test;
using nlohmann::json;

namespace {

struct FakeServer : ::testing::Test {
    std::unique_ptr<TokenizerFixture> tf;
    FakeEngine eng;
    std::unique_ptr<server::HttpServer> http;
    int port = 0;
    void SetUp() override {
        LOOM_REQUIRE_SHARED();
        tf = std::make_unique<TokenizerFixture>();
        server::ServerOptions o;
        o.port = 0;
        o.max_body = 4096;
        o.ping_interval_s = 0.05;
        http = std::make_unique<server::HttpServer>(o);
        port = http->start();
    }
    void ready() { http->set_model(model_info(*tf->tok, eng)); }
    httplib::Client client() {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(30, 0);
        return c;
    }
};

const char* kChat = R"({"model":"tiny","messages":[{"role":"user","content":"hello"}],"max_tokens":4})";

}  // namespace

TEST_F(FakeServer, HealthIs503UntilTheModelIsSet) {
    auto c = client();
    auto r = c.Get("/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "loading");
    auto g = c.Post("/v1/chat/completions", kChat, "application/json");
    EXPECT_EQ(g->status, 503);
    EXPECT_TRUE(g->has_header("Retry-After"));
    ready();
    EXPECT_EQ(c.Get("/health")->status, 200);
}

TEST_F(FakeServer, HealthAnswersWhileTheEngineIsStuck) {
    ready();
    eng.pause(true);  // a "long prefill": nothing comes out of the engine
    std::thread t([&] { post_sse(port, "/v1/chat/completions", kChat); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto c = client();
    auto h = c.Get("/health");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 200);
    auto m = c.Get("/metrics");
    ASSERT_TRUE(m);
    EXPECT_NE(m->body.find("loom:num_requests_running"), std::string::npos);
    eng.pause(false);
    t.join();
}

TEST_F(FakeServer, ChatNonStreamShape) {
    ready();
    auto c = client();
    auto r = c.Post("/v1/chat/completions", kChat, "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const json j = json::parse(r->body);
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["model"], "tiny");
    EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
    EXPECT_TRUE(j["created"].is_number_integer());
    EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
    EXPECT_EQ(j["choices"][0]["message"]["content"], "w0 w1 w2 w3 ");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(j["usage"]["completion_tokens"], 4);
    EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 3);
    EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + 4);
    EXPECT_TRUE(j["usage"]["prompt_tokens_details"]["cached_tokens"].is_number());
    for (const char* k : {"prompt_n", "prompt_ms", "prompt_per_second", "predicted_n", "predicted_ms",
                          "predicted_per_second", "cache_n"})
        EXPECT_TRUE(j["timings"].contains(k)) << k;
}

TEST_F(FakeServer, ChatStreamShape) {
    ready();
    const auto s = post_sse(port, "/v1/chat/completions",
                            R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}})");
    EXPECT_EQ(s.status, 200);
    EXPECT_EQ(s.content_type, "text/event-stream");
    ASSERT_EQ(s.data.size(), 3u + 1 + 1 + 1);  // 3 tokens, finish, usage, [DONE]
    const json first = json::parse(s.data[0]);
    EXPECT_EQ(first["object"], "chat.completion.chunk");
    EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
    EXPECT_EQ(first["choices"][0]["delta"]["content"], "w0 ");
    EXPECT_TRUE(first["usage"].is_null());
    EXPECT_FALSE(json::parse(s.data[1])["choices"][0]["delta"].contains("role"));
    const json fin = json::parse(s.data[3]);
    EXPECT_EQ(fin["choices"][0]["finish_reason"], "length");
    const json usage = json::parse(s.data[4]);
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"]["completion_tokens"], 3);
    EXPECT_EQ(s.data[5], "[DONE]");
}

TEST_F(FakeServer, PingsWhileWaitingForTheFirstToken) {
    ready();
    eng.pause(true);
    std::thread t([&] {
        // 300 ms (6 ping intervals) from when the request waits in the engine, however
        // long it took to get there (bounded: 10 s).
        for (int i = 0; i < 1000 && eng.stats().waiting == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        eng.pause(false);
    });
    const auto s = post_sse(port, "/v1/completions", R"({"prompt":"x","max_tokens":2,"stream":true})");
    t.join();
    EXPECT_GE(s.pings, 1);
    ASSERT_GE(s.data.size(), 3u);
    EXPECT_EQ(json::parse(s.data[0])["object"], "text_completion");
    EXPECT_EQ(s.data.back(), "[DONE]");
}

TEST_F(FakeServer, DisconnectCancelsTheRequest) {
    ready();
    eng.step_ms = 5;
    int seen = 0;
    post_sse(port, "/v1/chat/completions",
             R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":200,"stream":true})",
             [&](const std::string&) { return ++seen < 3; });
    EXPECT_EQ(seen, 3);
    auto c = client();
    for (int i = 0; i < 200 && eng.stats().running > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(eng.stats().running, 0);
    EXPECT_GE(eng.cancels.load(), 1);
    auto m = c.Get("/metrics");
    EXPECT_NE(m->body.find("loom:request_success_total{finished_reason=\"abort\"} 1"), std::string::npos) << m->body;
}

TEST_F(FakeServer, QueueFullIs503WithRetryAfter) {
    ready();
    eng.pause(true);
    eng.n_parallel = 1;
    eng.max_queue = 1;
    std::thread t([&] { post_sse(port, "/v1/chat/completions", kChat); });
    for (int i = 0; i < 200 && eng.stats().waiting == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    auto c = client();
    auto r = c.Post("/v1/chat/completions", kChat, "application/json");
    EXPECT_EQ(r->status, 503);
    EXPECT_EQ(r->get_header_value("Retry-After"), "1");
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
    eng.pause(false);
    t.join();
}

TEST_F(FakeServer, BadRequestsOverHttp) {
    ready();
    struct Case {
        const char* method;
        const char* path;
        std::string body;
        int status;
        const char* text;
    };
    const std::string big(5000, 'x');
    const std::vector<Case> cases = {
        {"POST", "/v1/chat/completions", "{oops", 400, "malformed JSON"},
        {"POST", "/v1/chat/completions", "[]", 400, "JSON object"},
        {"POST", "/v1/chat/completions", R"({"messages":[]})", 400, "'messages' must not be empty"},
        {"POST", "/v1/chat/completions", R"({"messages":[{"role":"user","content":1}]})", 400, "messages[0].content"},
        {"POST", "/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"temperature":-1})", 400, "'temperature'"},
        {"POST", "/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"n":"2"})", 400, "'n' must be an integer"},
        {"POST", "/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})", 400, "'tools' is not supported"},
        {"POST", "/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}})", 400, "'response_format'"},
        {"POST", "/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"max_tokens":250})", 400, "over the context of 256"},
        {"POST", "/v1/chat/completions", R"({"model":"gpt-4","messages":[{"role":"user","content":"x"}]})", 404, "model 'gpt-4' does not exist"},
        {"POST", "/v1/completions", R"({"prompt":[1,200000]})", 400, "outside the vocabulary"},
        {"POST", "/v1/completions", R"({"prompt":"x","echo":true})", 400, "'echo'"},
        {"POST", "/v1/completions", R"({"max_tokens":3})", 400, "'prompt' is required"},
        {"POST", "/v1/completions", R"({"prompt":"x","max_tokens":1e999})", 400, "malformed JSON"},  // was 500
        {"POST", "/v1/completions", json{{"prompt", big}}.dump(), 413, "over the limit"},
        {"POST", "/v1/completions", json{{"prompt", std::string(300, 'a') + " b"}}.dump(), 200, ""},
        {"GET", "/v1/chat/completions", "", 405, "not allowed"},
        {"DELETE", "/v1/models", "", 405, "not allowed"},
        {"POST", "/health", "{}", 405, "not allowed"},
        {"GET", "/v2/nothing", "", 404, "no route"},
        {"GET", "/v1/models/other", "", 404, "does not exist"},
        {"POST", "/tokenize", R"({"text":"x"})", 400, "'content' is required"},
        {"POST", "/detokenize", R"({"tokens":[-1]})", 400, "outside the vocabulary"},
        {"POST", "/detokenize", R"({"tokens":"1,2"})", 400, "'tokens' must be"},
        {"POST", "/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e","f","g","h","i"]})", 400, "at most 8"},
    };
    int checked = 0;
    for (const Case& k : cases) {
        httplib::Client c("127.0.0.1", port);
        httplib::Result r = k.method == std::string("GET")      ? c.Get(k.path)
                            : k.method == std::string("DELETE") ? c.Delete(k.path)
                                                                : c.Post(k.path, k.body, "application/json");
        ASSERT_TRUE(r) << k.method << " " << k.path;
        if (k.status == 200) {
            // a long prompt: the tokenizer may make it fit or not; only no crash and a JSON answer
            EXPECT_TRUE(r->status == 200 || r->status == 400) << r->body;
            continue;
        }
        EXPECT_EQ(r->status, k.status) << k.path << " " << k.body.substr(0, 80) << " -> " << r->body;
        const json j = json::parse(r->body, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << r->body;
        ASSERT_TRUE(j.contains("error")) << r->body;
        for (const char* f : {"message", "type", "param", "code"}) EXPECT_TRUE(j["error"].contains(f)) << f;
        EXPECT_NE(j["error"]["message"].get<std::string>().find(k.text), std::string::npos)
            << k.path << " " << k.body.substr(0, 80) << " -> " << r->body;
        checked++;
    }
    EXPECT_GE(checked, 20);
}

TEST(ServerAuth, KeyRequired) {
    LOOM_REQUIRE_SHARED();
    TokenizerFixture tf;
    FakeEngine eng;
    server::ServerOptions o;
    o.port = 0;
    o.api_key = "sekrit";
    server::HttpServer http(o);
    const int port = http.start();
    http.set_model(model_info(*tf.tok, eng));
    httplib::Client c("127.0.0.1", port);
    EXPECT_EQ(c.Get("/health")->status, 200);  // health needs no key
    auto r = c.Get("/v1/models");
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(json::parse(r->body)["error"]["type"], "authentication_error");
    EXPECT_EQ(c.Get("/v1/models", {{"Authorization", "Bearer wrong"}})->status, 401);
    auto ok = c.Get("/v1/models", {{"Authorization", "Bearer sekrit"}});
    EXPECT_EQ(ok->status, 200);
    EXPECT_EQ(json::parse(ok->body)["data"][0]["id"], "tiny");
}

TEST(ServerReplica, EveryResponseNamesTheReplica) {
    LOOM_REQUIRE_SHARED();
    TokenizerFixture tf;
    FakeEngine eng;
    server::ServerOptions o;
    o.port = 0;
    o.replica_id = "replica-7";
    server::HttpServer http(o);
    const int port = http.start();
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(30, 0);
    auto loading = c.Get("/health");  // before the model: 503, still named
    ASSERT_TRUE(loading);
    EXPECT_EQ(loading->status, 503);
    EXPECT_EQ(loading->get_header_value("X-Loom-Replica"), "replica-7");
    http.set_model(model_info(*tf.tok, eng));
    for (const char* path : {"/health", "/metrics", "/v1/models", "/no-such-route"}) {
        auto r = c.Get(path);
        ASSERT_TRUE(r) << path;
        EXPECT_EQ(r->get_header_value("X-Loom-Replica"), "replica-7") << path << " " << r->status;
    }
    auto plain = c.Post("/v1/chat/completions", kChat, "application/json");
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->status, 200);
    EXPECT_EQ(plain->get_header_value("X-Loom-Replica"), "replica-7");
    // A stream: the header comes with the response head, before the first event.
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.set_header("Content-Type", "application/json");
    req.body = R"({"model":"tiny","messages":[{"role":"user","content":"hello"}],"max_tokens":4,"stream":true})";
    std::string replica, type;
    req.response_handler = [&](const httplib::Response& r) {
        replica = r.get_header_value("X-Loom-Replica");
        type = r.get_header_value("Content-Type");
        return true;
    };
    req.content_receiver = [](const char*, size_t, uint64_t, uint64_t) { return true; };
    httplib::Response res;
    httplib::Error err;
    ASSERT_TRUE(c.send(req, res, err));
    EXPECT_EQ(type, "text/event-stream");
    EXPECT_EQ(replica, "replica-7");
}

TEST(ServerReplica, NoHeaderWithoutAnId) {
    LOOM_REQUIRE_SHARED();
    server::ServerOptions o;
    o.port = 0;
    server::HttpServer http(o);
    const int port = http.start();
    httplib::Client c("127.0.0.1", port);
    auto r = c.Get("/health");
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->has_header("X-Loom-Replica"));
}

// A second server cannot take a port in use (no silent SO_REUSEPORT sharing).
TEST(ServerListen, APortInUseIsAnError) {
    server::ServerOptions o;
    o.port = 0;
    server::HttpServer a(o);
    o.port = a.start();
    server::HttpServer b(o);
    try {
        b.start();
        FAIL() << "a second server started on port " << o.port;
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("address in use"), std::string::npos) << e.what();
    }
}

// A burst of new connections (a load balancer opening its upstream connections) is all
// queued: none is dropped to wait for a SYN retransmit (1 s), as with a backlog of 5.
TEST(ServerListen, ABurstOfConnectionsIsQueuedNotDropped) {
    server::ServerOptions o;
    o.port = 0;
    server::HttpServer http(o);
    const int port = http.start();
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    constexpr int kBurst = 64;
    std::vector<int> fds;
    for (int i = 0; i < kBurst; ++i) {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ASSERT_GE(fd, 0);
        fds.push_back(fd);
        const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
        ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << strerror(errno);
    }
    // Connected = writable with no socket error. Under the SYN retransmit time.
    int connected = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(700);
    std::vector<bool> done(kBurst, false);
    while (connected < kBurst && std::chrono::steady_clock::now() < deadline) {
        for (int i = 0; i < kBurst; ++i) {
            if (done[i]) continue;
            pollfd p{fds[i], POLLOUT, 0};
            if (poll(&p, 1, 0) == 1 && (p.revents & POLLOUT)) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len);
                EXPECT_EQ(err, 0) << strerror(err);
                done[i] = true;
                connected++;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (int fd : fds) close(fd);
    EXPECT_EQ(connected, kBurst) << "connections still waiting after 700 ms: their SYNs were dropped";
}
