#include "bench/pipeline_bench.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "bench/report.h"
#include "kv/kv_cache.h"

namespace loom::bench {

namespace {

int argmax_of(std::span<const float> v) {
    return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

// B users' prompts in calls of at most ubatch tokens, then n steps of B tokens:
// seconds of each phase.
std::pair<double, double> run_users(Context& ctx, int B, int P, int N, int ubatch, uint64_t seed) {
    ctx.clear();
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int32_t> dist(0, ctx.n_vocab() - 1);
    std::vector<BatchToken> batch;
    std::vector<int32_t> first(size_t(B), 0);
    std::vector<int> users;
    double pp = 0;
    auto flush = [&] {
        if (batch.empty()) return;
        const double t0 = steady_seconds();
        ctx.decode(batch);
        pp += steady_seconds() - t0;
        for (size_t k = 0; k < users.size(); ++k) first[size_t(users[k])] = argmax_of(ctx.logits(int(k)));
        batch.clear();
        users.clear();
    };
    for (int u = 0; u < B; ++u)
        for (int i = 0; i < P; ++i) {
            batch.push_back({dist(rng), i, u, i + 1 == P});
            if (i + 1 == P) users.push_back(u);
            if (static_cast<int>(batch.size()) == ubatch) flush();
        }
    flush();
    double tg = 0;
    std::vector<int32_t> tok = first;
    for (int s = 0; s < N; ++s) {
        batch.clear();
        for (int u = 0; u < B; ++u) batch.push_back({tok[size_t(u)], P + s, u, true});
        const double t0 = steady_seconds();
        ctx.decode(batch);
        tg += steady_seconds() - t0;
        for (int u = 0; u < B; ++u) tok[size_t(u)] = argmax_of(ctx.logits(u));
    }
    return {pp, tg};
}

}  // namespace

PipelineBenchResult run_pipeline_bench(const Model& first_stage, Pipeline& pipe, const PipelineBenchParams& p,
                                       const std::function<void(const std::string&)>& log) {
    PipelineBenchResult r;
    const int M0 = pipe.options().micro_batches;
    r.ranks = pipe.size();
    r.split = pipe.split().describe();
    r.dtype = pipe.options().bf16 ? "bf16" : "f32";
    const int V = first_stage.hparams().n_vocab;
    ContextParams cp;
    cp.n_threads = p.threads;
    cp.n_seq_max = std::max(1, p.batch);
    cp.n_ctx = std::max(1, p.batch * (p.n_prompt + p.n_gen) + 1);
    cp.n_batch = std::max(1, p.ubatch);
    cp.type_k = KvCache::parse_type(p.cache_type_k);
    cp.type_v = KvCache::parse_type(p.cache_type_v);
    cp.pipeline = &pipe;
    Context ctx(first_stage, cp);

    // ---- batch 1: the ring without compute, then decode steps
    pipe.set_micro_batches(1);
    r.hidden_bytes_per_token = double(pipe.hidden_bytes_per_token());
    if (log) log("pipeline: ring latency (" + std::to_string(p.hop_reps) + " round trips)");
    // A one-token step message: header 48 + ids 13 (padded to 16) + the hidden state.
    const size_t one = 48 + 16 + pipe.hidden_bytes_per_token();
    r.ring_hop_us = 1e6 * pipe.round_trip(one - 48, p.hop_reps) / r.ranks;
    for (double kib : {16.0, 32.0, 501.0}) {  // 8192 x bf16 / f32; 128256 floats
        const size_t b = static_cast<size_t>(kib * 1024);
        r.ring.push_back({double(b), 1e6 * pipe.round_trip(b, std::max(10, p.hop_reps / 4)) / r.ranks});
    }
    if (log) log("pipeline: batch-1 steps");
    run_users(ctx, 1, 8, 4, p.ubatch, 1);  // warm-up
    pipe.reset_stats();
    const int n1 = std::max(16, p.n_gen);
    const auto [pp1, tg1] = run_users(ctx, 1, 1, n1, p.ubatch, 2);
    (void)pp1;
    const Pipeline::Stats& st = pipe.stats();
    const double steps = double(st.steps);
    const double wall = pp1 + tg1;
    r.step_ms_b1 = 1e3 * wall / steps;
    r.compute_ms_b1 = 1e3 * (st.local_compute_s + st.remote_compute_s) / steps;
    r.added_hop_us_b1 = 1e6 * (wall - st.local_compute_s - st.remote_compute_s) / steps / r.ranks;
    r.hop_bytes_per_token = double(st.hop_bytes) / double(st.tokens);
    r.reply_bytes_per_row = double(V) * 4;

    // ---- throughput vs micro-batches in flight
    for (int m : p.micro_batches) {
        if (log) log("pipeline: " + std::to_string(m) + " micro-batch(es), " + std::to_string(p.batch) + " users");
        pipe.set_micro_batches(m);
        double pp = 0, tg = 0;
        for (int rep = 0; rep < p.reps; ++rep) {
            const auto [a, b] = run_users(ctx, p.batch, p.n_prompt, p.n_gen, p.ubatch, 100 + uint64_t(rep));
            pp += a;
            tg += b;
        }
        PipelineBenchResult::Point pt;
        pt.micro_batches = m;
        pt.pp_tps = double(p.batch) * p.n_prompt * p.reps / pp;
        pt.tg_tps = double(p.batch) * p.n_gen * p.reps / tg;
        pt.tg_step_ms = 1e3 * tg / (double(p.n_gen) * p.reps);
        r.points.push_back(pt);
    }
    pipe.set_micro_batches(M0);
    return r;
}

nlohmann::json pipeline_json(const PipelineBenchResult& r, const PipelineBenchParams& p) {
    nlohmann::json pts = nlohmann::json::array();
    for (const auto& pt : r.points)
        pts.push_back({{"micro_batches", pt.micro_batches}, {"pp_tps", pt.pp_tps}, {"tg_tps", pt.tg_tps},
                       {"tg_step_ms", pt.tg_step_ms}});
    nlohmann::json ring = nlohmann::json::array();
    for (const auto& x : r.ring) ring.push_back({{"bytes", x.bytes}, {"hop_us", x.hop_us}});
    return {{"ranks", r.ranks},
            {"ring", ring},
            {"split", r.split},
            {"activations", r.dtype},
            {"ring_hop_us", r.ring_hop_us},
            {"batch1_step_ms", r.step_ms_b1},
            {"batch1_compute_ms", r.compute_ms_b1},
            {"batch1_added_hop_us", r.added_hop_us_b1},
            {"hop_bytes_per_token", r.hop_bytes_per_token},
            {"hidden_bytes_per_token", r.hidden_bytes_per_token},
            {"reply_bytes_per_row", r.reply_bytes_per_row},
            {"users", p.batch},
            {"n_prompt", p.n_prompt},
            {"n_gen", p.n_gen},
            {"ubatch", p.ubatch},
            {"threads", p.threads},
            {"micro_batch_points", pts}};
}

std::string render_pipeline(const nlohmann::json& j) {
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "pipeline: %d ranks, blocks %s, activations %s\n"
                  "  per hop at batch 1: %.1f us on the ring (one token's message, no compute); a decode step "
                  "%.3f ms = %.3f ms compute + %.1f us per hop\n"
                  "  bytes per hop per token: %.0f (hidden state %.0f); the last hop returns %.0f bytes of logits "
                  "per output row\n",
                  j.value("ranks", 0), j.value("split", std::string()).c_str(),
                  j.value("activations", std::string()).c_str(), j.value("ring_hop_us", 0.0),
                  j.value("batch1_step_ms", 0.0), j.value("batch1_compute_ms", 0.0), j.value("batch1_added_hop_us", 0.0),
                  j.value("hop_bytes_per_token", 0.0), j.value("hidden_bytes_per_token", 0.0),
                  j.value("reply_bytes_per_row", 0.0));
    std::string s = buf;
    for (const auto& x : j.value("ring", nlohmann::json::array())) {
        std::snprintf(buf, sizeof buf, "  ring, %.0f-byte message: %.1f us per hop\n", x.value("bytes", 0.0),
                      x.value("hop_us", 0.0));
        s += buf;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& pt : j.value("micro_batch_points", nlohmann::json::array()))
        rows.push_back({std::to_string(pt.value("micro_batches", 0)), fmt_num(pt.value("pp_tps", 0.0), 1),
                        fmt_num(pt.value("tg_tps", 0.0), 1), fmt_num(pt.value("tg_step_ms", 0.0), 2)});
    std::snprintf(buf, sizeof buf, "  throughput vs micro-batches in flight (%d users, prompt %d, %d steps):\n",
                  j.value("users", 0), j.value("n_prompt", 0), j.value("n_gen", 0));
    s += buf;
    s += text_table({"micro-batches", "prompt t/s", "gen t/s", "gen step ms"}, rows, false);
    return s;
}

}  // namespace loom::bench
