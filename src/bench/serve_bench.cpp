#include "bench/serve_bench.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include "bench/bench.h"

namespace loom::bench {

using nlohmann::json;

namespace {

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// host part of "http://host:port[/...]"
std::string url_host(const std::string& url) {
    const auto s = url.find("://");
    std::string rest = s == std::string::npos ? url : url.substr(s + 3);
    rest = rest.substr(0, rest.find('/'));
    if (!rest.empty() && rest[0] == '[') return rest.substr(1, rest.find(']') - 1);
    return rest.substr(0, rest.rfind(':') == std::string::npos ? rest.size() : rest.rfind(':'));
}

bool loopback(const std::string& h) {
    return h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0;
}

httplib::Headers headers_of(const ServeParams& p) {
    httplib::Headers h;
    if (!p.api_key.empty()) h.emplace("Authorization", "Bearer " + p.api_key);
    return h;
}

std::unique_ptr<httplib::Client> make_client(const ServeParams& p) {
    auto c = std::make_unique<httplib::Client>(p.url);
    if (!c->is_valid()) throw std::invalid_argument("--url '" + p.url + "' is not a valid http:// URL");
    const auto sec = static_cast<time_t>(p.timeout_s);
    c->set_read_timeout(sec, 0);
    c->set_write_timeout(sec, 0);
    c->set_connection_timeout(10, 0);
    c->set_keep_alive(true);
    c->set_tcp_nodelay(true);
    return c;
}

const char* const kWords[] = {" the", " of", " and", " to", " in", " is", " that", " for", " it", " as",
                              " with", " was", " on", " be", " at", " by", " this", " had", " not", " are",
                              " but", " from", " or", " have", " an", " they", " which", " one", " you", " were"};
constexpr int kNumWords = sizeof(kWords) / sizeof(kWords[0]);

}  // namespace

Percentiles percentiles_of(std::vector<double> v) {
    Percentiles p;
    if (v.empty()) return {kNaN, kNaN, kNaN, kNaN};
    double s = 0;
    for (double x : v) s += x;
    p.mean = s / static_cast<double>(v.size());
    p.p50 = percentile(v, 50);
    p.p90 = percentile(v, 90);
    p.p99 = percentile(v, 99);
    return p;
}

void validate(const ServeParams& p) {
    if (p.url.empty()) throw std::invalid_argument("give --url http://HOST:PORT (or --spawn)");
    if (p.url.rfind("http://", 0) != 0 && p.url.rfind("https://", 0) != 0)
        throw std::invalid_argument("--url '" + p.url + "' must start with http:// or https://");
    if (!p.allow_remote && !loopback(url_host(p.url)))
        throw std::invalid_argument("--url '" + p.url + "' is not a loopback address; add --allow-remote to load another machine");
    if (p.concurrency.empty()) throw std::invalid_argument("-c: give at least one concurrency");
    for (int c : p.concurrency)
        if (c < 1 || c > 1024) throw std::invalid_argument("-c: each concurrency must be 1..1024");
    if (p.requests < 0 || p.requests > 100000) throw std::invalid_argument("--requests must be 0..100000");
    if (p.n_prompt < 1 || p.n_gen < 1) throw std::invalid_argument("-p and -n must be >= 1");
    if (p.shared_prefix < 0 || p.shared_prefix > p.n_prompt)
        throw std::invalid_argument("--shared-prefix must be 0..p (" + std::to_string(p.n_prompt) + ")");
    if (!(p.max_seconds > 0) || !(p.timeout_s > 0)) throw std::invalid_argument("time limits must be > 0");
}

std::string first_model(const ServeParams& p) {
    auto c = make_client(p);
    auto r = c->Get("/v1/models", headers_of(p));
    if (!r) throw std::runtime_error("cannot reach " + p.url + ": " + httplib::to_string(r.error()));
    if (r->status != 200)
        throw std::runtime_error(p.url + "/v1/models answered " + std::to_string(r->status) + ": " + r->body.substr(0, 200));
    const json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
        !j["data"][0].contains("id"))
        throw std::runtime_error(p.url + "/v1/models: no model listed");
    return j["data"][0]["id"].get<std::string>();
}

std::string serve_prompt(const ServeParams& p, int i) {
    std::mt19937_64 shared(p.seed), own(p.seed * 1000003u + static_cast<uint64_t>(i) + 1);
    std::string s;
    for (int k = 0; k < p.n_prompt; ++k) s += kWords[(k < p.shared_prefix ? shared() : own()) % kNumWords];
    return s;
}

RequestSample run_request(const ServeParams& p, const std::string& model, int i, void* client) {
    auto& cli = *static_cast<httplib::Client*>(client);
    RequestSample s;
    const json body = {{"model", model},          {"prompt", serve_prompt(p, i)},
                       {"max_tokens", p.n_gen},   {"temperature", 0},
                       {"stream", true},          {"stream_options", {{"include_usage", true}}},
                       {"ignore_eos", true},      {"seed", p.seed + static_cast<uint64_t>(i)}};
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.headers = headers_of(p);
    req.set_header("Content-Type", "application/json");
    req.body = body.dump();
    int status = 0;
    std::string ctype, buf, err_body;
    double t_last = 0;
    int chunks = 0;
    bool done = false;
    const double t0 = now_s();
    req.response_handler = [&](const httplib::Response& r) {
        status = r.status;
        ctype = r.get_header_value("Content-Type");
        return true;
    };
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
        if (status != 200 || ctype.rfind("text/event-stream", 0) != 0) {
            if (err_body.size() < 4096) err_body.append(d, n);
            return true;
        }
        buf.append(d, n);
        size_t e;
        while ((e = buf.find("\n\n")) != std::string::npos) {
            std::string ev = buf.substr(0, e);
            buf.erase(0, e + 2);
            if (ev.rfind("data: ", 0) != 0) continue;  // comments (": ping"), other fields
            ev.erase(0, 6);
            if (ev == "[DONE]") {
                done = true;
                continue;
            }
            const json j = json::parse(ev, nullptr, false);
            if (j.is_discarded()) continue;
            if (j.contains("error")) {
                s.error = "stream error: " + j["error"].value("message", j["error"].dump());
                continue;
            }
            if (j.contains("usage") && j["usage"].is_object()) {
                s.prompt_tokens = j["usage"].value("prompt_tokens", 0);
                s.output_tokens = j["usage"].value("completion_tokens", 0);
            }
            if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) continue;
            const json& c = j["choices"][0];
            std::string text;
            if (c.contains("text") && c["text"].is_string()) text = c["text"];
            else if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string())
                text = c["delta"]["content"];
            if (text.empty()) continue;
            const double t = now_s();
            if (chunks == 0) s.ttft_s = t - t0;
            else s.itl_s.push_back(t - t_last);
            t_last = t;
            chunks++;
        }
        return true;
    };
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    const bool sent = cli.send(req, res, err);
    s.e2e_s = now_s() - t0;
    if (!sent && status == 0) {
        s.error = "request failed: " + httplib::to_string(err);
        return s;
    }
    if (status != 200) {
        const json j = json::parse(err_body, nullptr, false);
        std::string msg = !j.is_discarded() && j.contains("error") ? j["error"].value("message", "") : err_body.substr(0, 200);
        s.error = "HTTP " + std::to_string(status) + ": " + msg;
        return s;
    }
    if (!s.error.empty()) return s;
    if (!done) {
        s.error = "stream ended without [DONE]";
        return s;
    }
    if (s.output_tokens == 0) s.output_tokens = chunks;  // a server without usage
    s.ok = chunks > 0;
    if (!s.ok) s.error = "no tokens in the stream";
    return s;
}

LevelResult run_level(const ServeParams& p, const std::string& model, int concurrency,
                      const std::function<void(int, int)>& progress) {
    const int total = p.requests > 0 ? p.requests : std::max(4, 2 * concurrency);
    std::vector<RequestSample> samples(static_cast<size_t>(total));
    std::vector<bool> ran(static_cast<size_t>(total), false);
    std::atomic<int> next{0}, done{0};
    std::mutex m;
    const double t0 = now_s(), deadline = t0 + p.max_seconds;
    std::vector<std::thread> th;
    for (int w = 0; w < std::min(concurrency, total); ++w)
        th.emplace_back([&] {
            auto cli = make_client(p);
            for (;;) {
                const int i = next++;
                if (i >= total || now_s() > deadline) break;
                RequestSample s = run_request(p, model, i, cli.get());
                if (!s.ok) cli = make_client(p);  // a fresh connection after an error
                const int d = ++done;
                {
                    std::lock_guard lk(m);
                    samples[static_cast<size_t>(i)] = std::move(s);
                    ran[static_cast<size_t>(i)] = true;
                    if (progress) progress(d, total);
                }
            }
        });
    for (auto& t : th) t.join();
    LevelResult r;
    r.concurrency = concurrency;
    r.duration_s = now_s() - t0;
    std::vector<double> ttft, itl, e2e;
    double out_tok = 0, prompt_tok = 0;
    for (int i = 0; i < total; ++i) {
        if (!ran[static_cast<size_t>(i)]) continue;
        const RequestSample& s = samples[static_cast<size_t>(i)];
        r.requests++;
        if (!s.ok) {
            r.errors++;
            if (r.first_error.empty()) r.first_error = s.error;
            continue;
        }
        ttft.push_back(s.ttft_s * 1000);
        e2e.push_back(s.e2e_s * 1000);
        for (double x : s.itl_s) itl.push_back(x * 1000);
        out_tok += s.output_tokens;
        prompt_tok += s.prompt_tokens;
    }
    const int ok = r.requests - r.errors;
    r.req_per_s = r.duration_s > 0 ? ok / r.duration_s : 0;
    r.output_tps = r.duration_s > 0 ? out_tok / r.duration_s : 0;
    r.prompt_tps = r.duration_s > 0 ? prompt_tok / r.duration_s : 0;
    r.mean_output_tokens = ok ? out_tok / ok : 0;
    r.mean_prompt_tokens = ok ? prompt_tok / ok : 0;
    r.ttft_ms = percentiles_of(ttft);
    r.itl_ms = percentiles_of(itl);
    r.e2e_ms = percentiles_of(e2e);
    return r;
}

}  // namespace loom::bench
