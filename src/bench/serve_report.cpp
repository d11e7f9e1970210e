// loom bench serve reports: JSON in loom bench's frame, and the terminal table.
#include <cmath>

#include "bench/bench.h"
#include "bench/report.h"
#include "bench/serve_bench.h"
#include "bench/setup.h"

namespace loom::bench {

using nlohmann::json;

namespace {

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

void put(json& j, const std::string& key, const Percentiles& p) {
    j[key + "_mean"] = num(p.mean);
    j[key + "_p50"] = num(p.p50);
    j[key + "_p90"] = num(p.p90);
    j[key + "_p99"] = num(p.p99);
}

}  // namespace

json serve_result_json(const ServeParams& p, const LevelResult& r) {
    json j = {{"n_prompt", p.n_prompt}, {"n_gen", p.n_gen}, {"batch", r.concurrency}, {"threads", 0},
              {"concurrency", r.concurrency}, {"requests", r.requests}, {"errors", r.errors},
              {"duration_s", r.duration_s}, {"req_per_s", r.req_per_s}, {"output_tps", r.output_tps},
              {"mean_prompt_tokens", r.mean_prompt_tokens}, {"mean_output_tokens", r.mean_output_tokens}};
    put(j, "ttft_ms", r.ttft_ms);
    put(j, "itl_ms", r.itl_ms);
    put(j, "e2e_ms", r.e2e_ms);
    if (!r.first_error.empty()) j["first_error"] = r.first_error;
    // The keys `loom bench compare` and the charts read.
    j["pp_tps"] = num(r.prompt_tps);
    j["ttft_ms"] = num(r.ttft_ms.mean);
    j["ttft_max_ms"] = num(r.ttft_ms.p99);
    j["tg_tps"] = num(r.output_tps);
    j["latency_ms"] = num(r.itl_ms.mean);
    j["latency_p90_ms"] = num(r.itl_ms.p90);
    j["user_tps"] = num(r.itl_ms.mean > 0 ? 1000.0 / r.itl_ms.mean : NAN);
    return j;
}

json make_serve_report(const ServeParams& p, const std::string& model, const std::vector<LevelResult>& levels,
                       const std::string& started, const std::string& finished, const std::string& label) {
    json results = json::array();
    for (const auto& r : levels) results.push_back(serve_result_json(p, r));
    json params = {{"kind", "serve"},        {"url", p.url},          {"n_prompt", {p.n_prompt}},
                   {"n_gen", {p.n_gen}},     {"batch", p.concurrency}, {"threads", {0}},
                   {"requests", p.requests}, {"shared_prefix", p.shared_prefix}, {"seed", p.seed},
                   {"reps", 1},              {"sla_ms", 100},         {"reading_tps", 5}};
    return {{"kind", "serve"},
            {"machine", machine_json(nullptr, label)},
            {"model", {{"file", model}, {"describe", "served by " + p.url}}},
            {"build", build_json()},
            {"params", params},
            {"results", results},
            {"capacity", json::array()},
            {"started", started},
            {"finished", finished}};
}

std::string render_serve_table(const json& rep) {
    const json& p = rep.value("params", json::object());
    std::string out = "server:  " + p.value("url", std::string()) + ", model " +
                      rep.value("model", json::object()).value("file", std::string()) + "\n";
    out += "load:    p=" + (p.contains("n_prompt") ? p["n_prompt"][0].dump() : "?") +
           " (shared prefix " + p.value("shared_prefix", json(0)).dump() + ") n=" +
           (p.contains("n_gen") ? p["n_gen"][0].dump() : "?") + ", streamed /v1/completions, greedy\n\n";
    const std::vector<std::string> header = {"conc", "reqs", "err", "p tok", "n tok", "req/s", "out t/s", "TTFT p50",
                                             "p90",  "p99",  "ITL p50",  "p90",      "p99",      "E2E p50",
                                             "p90",  "p99"};
    std::vector<std::vector<std::string>> rows;
    for (const json& r : rep.value("results", json::array())) {
        auto f = [&](const char* k, int prec) { return fmt_num(num_or_nan(r, k), prec); };
        rows.push_back({std::to_string(r.value("concurrency", 0)), std::to_string(r.value("requests", 0)),
                        std::to_string(r.value("errors", 0)), f("mean_prompt_tokens", 0), f("mean_output_tokens", 0),
                        f("req_per_s", 2), f("output_tps", 1),
                        f("ttft_ms_p50", 0), f("ttft_ms_p90", 0), f("ttft_ms_p99", 0), f("itl_ms_p50", 1),
                        f("itl_ms_p90", 1), f("itl_ms_p99", 1), f("e2e_ms_p50", 0), f("e2e_ms_p90", 0),
                        f("e2e_ms_p99", 0)});
    }
    out += text_table(header, rows, false);
    out += "\nconc: concurrent streams; p tok / n tok: mean prompt / generated tokens (the server's usage);\n"
           "TTFT / ITL (inter-token latency) / E2E in ms, as the client saw them.\n";
    for (const json& r : rep.value("results", json::array()))
        if (r.contains("first_error"))
            out += "errors at concurrency " + std::to_string(r.value("concurrency", 0)) + ", first: " +
                   r["first_error"].get<std::string>() + "\n";
    return out;
}

}  // namespace loom::bench
