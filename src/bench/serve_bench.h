// loom bench serve: a load client for any OpenAI-compatible server (loom's,
// llama.cpp's, ...). Per concurrency level, `c` client threads stream
// /v1/completions requests until `requests` are done (or the time limit), and
// the level reports requests/s, output tokens/s, TTFT / inter-token latency /
// end-to-end percentiles and errors.
//
// Prompts are words that are one token in common vocabularies (" the", " of",
// ...), the first shared_prefix of them the same in every request; the token
// counts reported are the server's own (usage). Requests ask for max_tokens with
// ignore_eos (servers that know it generate exactly n tokens).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace loom::bench {

struct ServeParams {
    std::string url;                       // http://host:port
    std::vector<int> concurrency{1, 4, 16, 64};
    int requests = 0;                      // per level; 0: 2 * c, at least 4
    int n_prompt = 128, n_gen = 64, shared_prefix = 0;
    std::string model;                     // "model" field; empty: the first of /v1/models
    std::string api_key;
    double max_seconds = 600;              // per level: no new request after this
    double timeout_s = 300;                // per request (read timeout)
    uint64_t seed = 42;
    bool allow_remote = false;             // a non-loopback URL needs this
};

// One request as the client saw it.
struct RequestSample {
    bool ok = false;
    std::string error;                     // one line when !ok
    int prompt_tokens = 0, output_tokens = 0;
    double ttft_s = 0, e2e_s = 0;
    std::vector<double> itl_s;             // gaps between content chunks
};

struct Percentiles {
    double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};
Percentiles percentiles_of(std::vector<double> v);

struct LevelResult {
    int concurrency = 0, requests = 0, errors = 0;
    double duration_s = 0;
    double req_per_s = 0, output_tps = 0, prompt_tps = 0;
    double mean_prompt_tokens = 0, mean_output_tokens = 0;
    Percentiles ttft_ms, itl_ms, e2e_ms;
    std::string first_error;
};

// Checks the fields (and the URL: scheme, host, loopback); throws std::invalid_argument.
void validate(const ServeParams& p);
// GET /v1/models: the first model's id (throws std::runtime_error naming the URL).
std::string first_model(const ServeParams& p);
// The prompt of request i (words; the first shared_prefix shared by all).
std::string serve_prompt(const ServeParams& p, int i);
RequestSample run_request(const ServeParams& p, const std::string& model, int i, void* client);
LevelResult run_level(const ServeParams& p, const std::string& model, int concurrency,
                      const std::function<void(int done, int total)>& progress = {});

// Report (same frame as loom bench's, so `bench compare` and the charts read it):
// each result has n_prompt, n_gen, batch (= concurrency), threads (0) and the
// compared metrics (tg_tps = output tokens/s, ttft_ms, latency_ms = mean ITL,
// latency_p90_ms, user_tps, pp_tps), plus the serve columns.
nlohmann::json serve_result_json(const ServeParams& p, const LevelResult& r);
nlohmann::json make_serve_report(const ServeParams& p, const std::string& model, const std::vector<LevelResult>& r,
                                 const std::string& started, const std::string& finished, const std::string& label);
std::string render_serve_table(const nlohmann::json& report);

}  // namespace loom::bench
