// loom bench --pipeline: what splitting a model over MPI ranks costs and gains.
//   - per hop at batch 1: a message of one token's step (header, ids, hidden state)
//     sent around the ring 0 -> 1 -> ... -> N-1 -> 0 without compute (median of many),
//     and the latency a batch-1 decode step adds over its compute (wall time minus
//     every rank's compute time, per hop);
//   - bytes per hop per token: the hidden state (n_embd x 4, or x 2 in bf16) plus the
//     token's ids; the last hop carries n_vocab x 4 of logits per output row instead;
//   - throughput vs micro-batches in flight: B users' prompts (p tokens each, in calls
//     of ubatch tokens) and n generation steps of B tokens, for each micro-batch count.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench.h"
#include "runtime/pipeline.h"

namespace loom::bench {

struct PipelineBenchParams {
    std::vector<int> micro_batches{1, 2, 4};
    int n_prompt = 64, n_gen = 16, batch = 4, ubatch = 512, reps = 3, threads = 1;
    int hop_reps = 200;  // ring round trips for the per-hop latency
    std::string cache_type_k = "f16", cache_type_v = "f16";
};

struct PipelineBenchResult {
    int ranks = 0;
    std::string split, dtype;
    double ring_hop_us = 0;            // one hop of a one-token message, no compute (median)
    struct Ring {
        double bytes = 0, hop_us = 0;  // a message of `bytes` around the ring, per hop (median)
    };
    std::vector<Ring> ring;            // other sizes: Llama 3 70B rows (16 / 32 KiB), a 128k-vocab logits row
    double step_ms_b1 = 0;             // wall time of a batch-1 decode step
    double compute_ms_b1 = 0;          // of which compute, summed over ranks
    double added_hop_us_b1 = 0;        // (wall - compute) / hops
    double hop_bytes_per_token = 0;    // step message bytes per token, at batch 1 (header included)
    double hidden_bytes_per_token = 0; // of which the hidden state
    double reply_bytes_per_row = 0;    // last rank -> rank 0, per output row (logits)
    struct Point {
        int micro_batches = 0;
        double pp_tps = 0, tg_tps = 0, tg_step_ms = 0;
    };
    std::vector<Point> points;
};

// Rank 0, with the other ranks serving their stages. Leaves the pipeline's
// micro-batch count as it found it.
PipelineBenchResult run_pipeline_bench(const Model& first_stage, Pipeline& pipe, const PipelineBenchParams& p,
                                       const std::function<void(const std::string&)>& log = {});
nlohmann::json pipeline_json(const PipelineBenchResult& r, const PipelineBenchParams& p);
std::string render_pipeline(const nlohmann::json& j);  // text for the terminal

}  // namespace loom::bench
