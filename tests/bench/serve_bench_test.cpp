// loom bench serve's client against a canned OpenAI-style server (no model).
#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "bench/compare.h"
#include "bench/serve_bench.h"
#include "bench/svg.h"

using namespace loom::bench;
using nlohmann::json;

namespace {

// Streams `tokens` completion chunks, then usage and [DONE]; every fail_every-th request gets a 500.
struct CannedServer {
    httplib::Server svr;
    std::thread th;
    int port = 0;
    std::atomic<int> seen{0};
    CannedServer(int tokens, int fail_every) {
        svr.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(R"({"object":"list","data":[{"id":"canned"}]})", "application/json");
        });
        svr.Post("/v1/completions", [this, tokens, fail_every](const httplib::Request& req, httplib::Response& res) {
            const int n = ++seen;
            const json body = json::parse(req.body);
            if (fail_every > 0 && n % fail_every == 0) {
                res.status = 500;
                res.set_content(R"({"error":{"message":"canned failure"}})", "application/json");
                return;
            }
            EXPECT_EQ(body["model"], "canned");
            EXPECT_TRUE(body["stream"].get<bool>());
            res.set_chunked_content_provider("text/event-stream", [tokens](size_t, httplib::DataSink& sink) {
                std::string out = ": ping\n\n";
                for (int i = 0; i < tokens; ++i)
                    out += "data: " + json{{"choices", {{{"index", 0}, {"text", "t"}, {"finish_reason", nullptr}}}}}.dump() + "\n\n";
                out += "data: " + json{{"choices", json::array()}, {"usage", {{"prompt_tokens", 7}, {"completion_tokens", tokens}}}}.dump() + "\n\n";
                out += "data: [DONE]\n\n";
                sink.write(out.data(), out.size());
                sink.done();
                return true;
            });
        });
        port = svr.bind_to_any_port("127.0.0.1");
        th = std::thread([this] { svr.listen_after_bind(); });
        for (int i = 0; i < 1000 && !svr.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~CannedServer() {
        svr.stop();
        th.join();
    }
};

}  // namespace

TEST(ServeBench, CountsTokensLatenciesAndErrors) {
    CannedServer s(5, 4);
    ServeParams p;
    p.url = "http://127.0.0.1:" + std::to_string(s.port);
    p.n_prompt = 10;
    p.n_gen = 5;
    p.requests = 8;
    validate(p);
    const std::string model = first_model(p);
    EXPECT_EQ(model, "canned");
    const LevelResult r = run_level(p, model, 2);
    EXPECT_EQ(r.requests, 8);
    EXPECT_EQ(r.errors, 2);  // requests 4 and 8
    EXPECT_NE(r.first_error.find("HTTP 500: canned failure"), std::string::npos) << r.first_error;
    EXPECT_DOUBLE_EQ(r.mean_output_tokens, 5);
    EXPECT_DOUBLE_EQ(r.mean_prompt_tokens, 7);
    EXPECT_GT(r.req_per_s, 0);
    EXPECT_GE(r.ttft_ms.p99, r.ttft_ms.p50);

    const json rep = make_serve_report(p, model, {r}, "a", "b", "here");
    const json& res = rep["results"][0];
    for (const char* k : {"tg_tps", "ttft_ms", "latency_ms", "latency_p90_ms", "itl_ms_p99", "e2e_ms_p50", "req_per_s"})
        EXPECT_TRUE(res.contains(k)) << k;
    EXPECT_EQ(res["batch"], 2);
    const Comparison c = compare_reports(rep, rep);
    ASSERT_EQ(c.points.size(), 1u);
    EXPECT_DOUBLE_EQ(c.points[0].find("tg_tps")->pct, 0.0);
    EXPECT_NE(render_svg(rep).find("<svg"), std::string::npos);
    EXPECT_NE(render_serve_table(rep).find("ITL p50"), std::string::npos);
}

TEST(ServeBench, RejectsBadParameters) {
    ServeParams p;
    p.url = "http://10.1.2.3:8080";
    EXPECT_THROW(validate(p), std::invalid_argument);  // not loopback
    p.allow_remote = true;
    EXPECT_NO_THROW(validate(p));
    p.url = "ftp://127.0.0.1";
    EXPECT_THROW(validate(p), std::invalid_argument);
    p.url = "http://127.0.0.1:1";
    p.shared_prefix = p.n_prompt + 1;
    EXPECT_THROW(validate(p), std::invalid_argument);
}

TEST(ServeBench, SharedPrefixIsShared) {
    ServeParams p;
    p.n_prompt = 64;
    p.shared_prefix = 32;
    const std::string a = serve_prompt(p, 0), b = serve_prompt(p, 1);
    auto words = [](const std::string& s, int n) {
        size_t pos = 0;
        for (int i = 0; i < n; ++i) pos = s.find(' ', pos + 1);
        return s.substr(0, pos);
    };
    EXPECT_EQ(words(a, 32), words(b, 32));
    EXPECT_NE(a, b);
    EXPECT_EQ(serve_prompt(p, 1), b);  // deterministic
}

TEST(ServeBench, UnreachableServerIsOneLine) {
    ServeParams p;
    p.url = "http://127.0.0.1:1";
    EXPECT_THROW(first_model(p), std::runtime_error);
}
