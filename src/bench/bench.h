// loom bench: latency and throughput versus concurrent users.
//
// One sweep point = (prompt length p, generated tokens n, users B, threads t).
// The users are B requests to the runtime's Scheduler (the project's one generate
// loop; greedy, n + 1 tokens each), with --parallel B, --batch-tokens ubatch and
// prompts first (SchedulerParams::prompts_first). One repetition of a point:
//   1. prompt phase: B independent sequences, each with its own p random token
//      ids, decoded in steps of at most `ubatch` tokens (users laid end to end,
//      so one step usually holds several users' prompts). Logits only for each
//      user's last prompt token. TTFT of a user = time from the start of the
//      phase until the step holding its last prompt token returns (its first
//      token can be sampled then); ttft_ms is the mean over users,
//      ttft_max_ms the time until every user has its first token.
//   2. generation: n steps, each ONE decode call with B tokens (one per
//      sequence, logits for all). latency of a step = that call's time;
//      tg_tps = B*n / sum(steps); user_tps = n / sum(steps).
//   Only the decoder's calls are timed (decode, and fork for a shared prompt);
//   the scheduler's bookkeeping and sampling between them are not counted.
//   The KV cache is cleared between repetitions.
// Before the repetitions of a point, a light warm-up (one step of B one-token
// prompts, which reads every weight once) and `warmup` excluded full repetitions run.
//
// The clock and the decoder are injected, so the arithmetic is testable
// without a model (see tests/bench).
#pragma once
#include "util/parse.h"
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/context.h"
#include "runtime/batch_decoder.h"

namespace loom::bench {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ------------------------------------------------------------------ parameters

struct Point {
    int n_prompt = 0, n_gen = 0, batch = 0, threads = 0;
    bool operator==(const Point&) const = default;
};

struct SweepParams {
    std::vector<int> n_prompt{64}, n_gen{16}, batch{1, 2, 4, 8}, threads{1};
    int reps = 3;               // measured repetitions per point
    int warmup = 0;             // extra full repetitions run first and discarded
    int ubatch = 512;           // most tokens per decode call in the prompt phase
    bool shared_prompt = false; // one prompt, encoded once (timed), see run_point
    uint64_t seed = 42;         // prompt token ids
    double sla_ms = 100.0;      // next-token latency target
    double reading_tps = 5.0;   // human reading speed, tokens/s per user
    std::string cpus;           // threads pinned to these CPUs ("0-3,8"; empty = not pinned)
    std::string cache_type_k = "f16", cache_type_v = "f16";  // KV cache storage (-ctk, -ctv)
};

// Sweep lists ("1,2,4"): integers >= min_value (see loom::parse_int_list).
inline std::vector<int> parse_list(const std::string& s, const std::string& what, int min_value = 1) {
    return parse_int_list(s, what, min_value);
}

// Checks every field; throws std::invalid_argument with one line.
void validate(const SweepParams& p);

// Points in run order: threads, then prompt length, then n_gen, then batch.
std::vector<Point> sweep_points(const SweepParams& p);

// ------------------------------------------------------------------ injection

// Seconds from any fixed origin (monotonic).
using Clock = std::function<double()>;
double steady_seconds();

// The engine is a BatchDecoder (a Context; a fake in tests) that the scheduler runs on.
struct DecoderSpec {
    int threads = 1, n_ctx = 0, n_seq = 1;
    std::string cache_type_k = "f16", cache_type_v = "f16";
    Pipeline* pipeline = nullptr;  // rank 0 of a pipeline (loom bench --pipeline)
};
using DecoderFactory = std::function<std::unique_ptr<BatchDecoder>(const DecoderSpec&)>;

// The real engine: a Context on `model`.
std::unique_ptr<BatchDecoder> make_context_decoder(const Model& model, const DecoderSpec& spec);

// ------------------------------------------------------------------ results

struct RepTiming {
    double pp_s = 0;              // prompt phase: sum of the decode calls
    std::vector<double> ttft_s;   // per user
    std::vector<double> step_s;   // per generation step
};

struct Stat {
    double mean = kNaN, stddev = kNaN;  // stddev: sample (n-1); NaN below 2 values
};
Stat stat_of(std::span<const double> v);
// Percentile q in [0,100], linear between closest ranks (numpy's default).
double percentile(std::vector<double> v, double q);

// Work per repetition, for the roofline (from the model's tensors).
struct ModelCost {
    double layer_params = 0, layer_bytes = 0;  // every blk.* tensor
    double head_params = 0, head_bytes = 0;    // output.weight, or the tied embedding
    double embd_row_bytes = 0;                 // one embedding row (read per token)
    double kv_bytes_per_cell = 0;              // K+V of one position, full-attention layers
    double kv_window_bytes_per_cell = 0;       // K+V of one position, sliding-window layers
    double kv_window = 0;                      // their window (positions)
    // K+V bytes one token at context length L reads.
    double kv_read_bytes(double L) const {
        return L * kv_bytes_per_cell + (L < kv_window ? L : kv_window) * kv_window_bytes_per_cell;
    }
};
ModelCost model_cost(const Model& model, const std::string& cache_type_k = "f16",
                     const std::string& cache_type_v = "f16");

struct PointResult {
    Point pt;
    std::vector<RepTiming> reps;
    bool shared_prompt = false;
    // Derived (summarize):
    double prompt_tokens = 0;      // tokens encoded per repetition
    Stat pp_tps, ttft_ms, ttft_max_ms, tg_tps, latency_ms, latency_p90_ms, user_tps;
    double pp_macs = 0;            // int8 MACs of the prompt phase
    double tg_bytes_per_step = 0;  // weights + KV read by one generation step
    double tg_macs_per_step = 0;   // int8 MACs of one generation step (every user's token)
    Stat pp_gmacs, tg_gbs, tg_gmacs;  // achieved GMAC/s and GB/s
};

// Fills the derived fields from pt and reps.
void summarize(PointResult& r, const ModelCost& cost);

struct Progress {
    size_t point = 0, n_points = 0;
    Point pt;
    std::string phase;  // "warm-up", "prompt", "generation", "done"
    int rep = 0, n_reps = 0;  // rep < 0: excluded warm-up repetition
    int step = 0, n_steps = 0;
    const PointResult* result = nullptr;  // set with phase "done"
};
using ProgressFn = std::function<void(const Progress&)>;

// Runs one point on `dec` (whose context holds >= B*(p+n) cells, B sequences; one
// user: p+n+1). With shared_prompt, user 0's prompt is encoded once (timed: pp);
// the other users fork its cells (BatchDecoder::fork, timed: their TTFT is user
// 0's plus the forks up to theirs) and start from its first token. Throws
// std::logic_error when the scheduler did other work than that (a decoder that
// cannot fork: the prompt encoded again).
PointResult run_point(BatchDecoder& dec, const Point& pt, const SweepParams& p, const Clock& clock,
                      const ProgressFn& progress = {}, size_t point_index = 0, size_t n_points = 1);

// All points; one decoder per point from the factory.
std::vector<PointResult> run_sweep(const DecoderFactory& make, const SweepParams& p, const ModelCost& cost,
                                   const Clock& clock, const ProgressFn& progress = {});

}  // namespace loom::bench
