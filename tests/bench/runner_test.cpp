// The runner with a fake clock and a fake decoder: every number is known.
#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <map>
#include <set>

#include "bench/bench.h"
#include "kv/kv_cache.h"

namespace loom::bench {
namespace {

// Time moves only when the fake decoder works: `per_call` + `per_token` per
// token (or `step_cost`). Reading logits (sampling) and clear() also move it, by
// a lot, to prove that they are not counted.
struct FakeWorld {
    double now = 1000.0;
    double per_call = 0.010, per_token = 0.001, pick_cost = 1.0, clear_cost = 5.0;
    std::function<double(std::span<const BatchToken>)> step_cost;  // replaces per_call/per_token
    std::vector<std::vector<BatchToken>> calls;
    bool forks = true;                           // the decoder can fork
    double fork_cost = 0.0005;
    std::vector<std::array<int32_t, 3>> forked;  // src, dst, upto_pos
    Clock clock() {
        return [this] { return now; };
    }
};

// Output i of a call has its largest logit at token 100 + i.
class FakeDecoder final : public BatchDecoder {
public:
    explicit FakeDecoder(FakeWorld& w, int n_vocab = 1000) : w_(w), kv_(1, 4096, 1, GgmlType::F32, GgmlType::F32), n_vocab_(n_vocab) {}
    int n_vocab() const override { return n_vocab_; }
    int n_ctx() const override { return kv_.n_cells(); }
    int n_seq_max() const override { return 64; }
    int n_free() const override { return kv_.n_free(); }
    void decode(std::span<const BatchToken> b) override {
        w_.calls.emplace_back(b.begin(), b.end());
        w_.now += w_.step_cost ? w_.step_cost(b) : w_.per_call + w_.per_token * static_cast<double>(b.size());
        for (const auto& t : b) kv_.alloc(t.seq, t.pos);
        n_out_ = 0;
        for (const auto& t : b) n_out_ += t.logits;
        rows_.assign(static_cast<size_t>(n_out_) * n_vocab_, 0.0f);
        for (int i = 0; i < n_out_; ++i) rows_[static_cast<size_t>(i) * n_vocab_ + (100 + i) % n_vocab_] = 1.0f;
    }
    std::span<const float> logits(int i) const override {
        EXPECT_LT(i, n_out_);
        w_.now += w_.pick_cost;
        return std::span<const float>(rows_).subspan(static_cast<size_t>(i) * n_vocab_, n_vocab_);
    }
    void clear() override {
        w_.now += w_.clear_cost;
        kv_.clear();
    }
    void remove_seq(int32_t seq) override { kv_.remove_seq(seq); }
    void seq_rm(int32_t seq, int32_t pos) override { kv_.seq_rm(seq, pos); }
    bool can_fork(int32_t, int32_t) const override { return w_.forks; }
    void fork(int32_t src, int32_t dst, int32_t upto) override {
        w_.forked.push_back({src, dst, upto});
        w_.now += w_.fork_cost;
        kv_.fork(src, dst, upto);
    }

private:
    FakeWorld& w_;
    KvCache kv_;
    int n_vocab_;
    int n_out_ = 0;
    std::vector<float> rows_;
};

SweepParams params(int p, int n, int b, int reps) {
    SweepParams sp;
    sp.n_prompt = {p};
    sp.n_gen = {n};
    sp.batch = {b};
    sp.threads = {1};
    sp.reps = reps;
    return sp;
}

TEST(BenchRunner, ThroughputMathWithFakeClock) {
    FakeWorld w;
    FakeDecoder dec(w);
    const SweepParams sp = params(8, 5, 3, 2);
    PointResult r = run_point(dec, {8, 5, 3, 1}, sp, w.clock());
    summarize(r, ModelCost{});
    ASSERT_EQ(r.reps.size(), 2u);
    // Prompt: one call of 24 tokens = 10 + 24 ms.
    EXPECT_NEAR(r.reps[0].pp_s, 0.034, 1e-9);
    EXPECT_NEAR(r.pp_tps.mean, 24 / 0.034, 1e-6);
    EXPECT_NEAR(r.ttft_ms.mean, 34.0, 1e-6);
    EXPECT_NEAR(r.ttft_max_ms.mean, 34.0, 1e-6);
    // Generation: 5 steps of 3 tokens = 13 ms each; sampling (1 s each) excluded.
    ASSERT_EQ(r.reps[0].step_s.size(), 5u);
    EXPECT_NEAR(r.latency_ms.mean, 13.0, 1e-6);
    EXPECT_NEAR(r.latency_p90_ms.mean, 13.0, 1e-6);
    EXPECT_NEAR(r.tg_tps.mean, 3.0 * 5 / (5 * 0.013), 1e-6);
    EXPECT_NEAR(r.user_tps.mean, 5 / (5 * 0.013), 1e-6);
    EXPECT_NEAR(r.tg_tps.stddev, 0.0, 1e-6);  // two identical repetitions
    EXPECT_DOUBLE_EQ(r.prompt_tokens, 24.0);
}

TEST(BenchRunner, BatchesAreIndependentSequencesInOneCallPerStep) {
    FakeWorld w;
    FakeDecoder dec(w);
    const SweepParams sp = params(6, 4, 4, 1);
    run_point(dec, {6, 4, 4, 1}, sp, w.clock());
    // warm-up (1 call), prompt (1 call of 24), 4 generation calls of 4.
    ASSERT_EQ(w.calls.size(), 1u + 1u + 4u);
    EXPECT_EQ(w.calls[0].size(), 4u);  // warm-up: one token per user
    const auto& prompt = w.calls[1];
    ASSERT_EQ(prompt.size(), 24u);
    std::map<int, std::vector<int32_t>> by_seq;
    int logits = 0;
    for (const auto& t : prompt) {
        by_seq[t.seq].push_back(t.token);
        logits += t.logits;
        EXPECT_EQ(t.pos, static_cast<int>(by_seq[t.seq].size()) - 1);
    }
    EXPECT_EQ(logits, 4);  // only each user's last prompt token
    ASSERT_EQ(by_seq.size(), 4u);
    std::set<std::vector<int32_t>> distinct;
    for (auto& [s, toks] : by_seq) distinct.insert(toks);
    EXPECT_EQ(distinct.size(), 4u) << "every user must have its own prompt";
    for (int s = 0; s < 4; ++s) {
        const auto& step = w.calls[2 + s];
        ASSERT_EQ(step.size(), 4u);
        for (int u = 0; u < 4; ++u) {
            EXPECT_EQ(step[u].seq, u);
            EXPECT_EQ(step[u].pos, 6 + s);
            EXPECT_TRUE(step[u].logits);
            EXPECT_EQ(step[u].token, 100 + u);  // fed back from pick(u)
        }
    }
}

TEST(BenchRunner, PromptChunkingAndPerUserTtft) {
    FakeWorld w;
    FakeDecoder dec(w);
    SweepParams sp = params(8, 2, 3, 1);
    sp.ubatch = 10;
    PointResult r = run_point(dec, {8, 2, 3, 1}, sp, w.clock());
    summarize(r, ModelCost{});
    // 24 prompt tokens in calls of 10, 10, 4 tokens: 20, 20, 14 ms.
    ASSERT_EQ(w.calls.size(), 1u + 3u + 2u);
    EXPECT_EQ(w.calls[1].size(), 10u);
    EXPECT_EQ(w.calls[3].size(), 4u);
    // User 0 ends in call 1 (20 ms), user 1 in call 2 (40), user 2 in call 3 (54).
    const auto& t = r.reps[0].ttft_s;
    ASSERT_EQ(t.size(), 3u);
    EXPECT_NEAR(t[0], 0.020, 1e-9);
    EXPECT_NEAR(t[1], 0.040, 1e-9);
    EXPECT_NEAR(t[2], 0.054, 1e-9);
    EXPECT_NEAR(r.ttft_ms.mean, (20 + 40 + 54) / 3.0, 1e-6);
    EXPECT_NEAR(r.ttft_max_ms.mean, 54.0, 1e-6);
    EXPECT_NEAR(r.pp_tps.mean, 24 / 0.054, 1e-6);
}

TEST(BenchRunner, SharedPromptNeedsADecoderThatForks) {
    // Without forks the other users would encode the prompt again (timed, 3x the
    // tokens the report would count): refused, not misreported.
    FakeWorld w;
    w.forks = false;
    FakeDecoder dec(w);
    SweepParams sp = params(8, 2, 3, 1);
    sp.shared_prompt = true;
    try {
        run_point(dec, {8, 2, 3, 1}, sp, w.clock());
        FAIL() << "no error";
    } catch (const std::logic_error& e) {
        EXPECT_NE(std::string(e.what()).find("24 prompt tokens (8 expected)"), std::string::npos) << e.what();
    }
}

TEST(BenchRunner, SharedPromptIsForkedNotEncodedAgain) {
    FakeWorld w;
    w.forks = true;
    FakeDecoder dec(w);
    SweepParams sp = params(8, 2, 3, 1);
    sp.shared_prompt = true;
    PointResult r = run_point(dec, {8, 2, 3, 1}, sp, w.clock());
    summarize(r, ModelCost{});
    // warm-up, timed prompt of user 0 (8 tokens), 2 steps: users 1-2 fork its cells.
    ASSERT_EQ(w.calls.size(), 1u + 1u + 2u);
    EXPECT_EQ(w.calls[1].size(), 8u);
    ASSERT_EQ(w.forked.size(), 2u);
    EXPECT_EQ(w.forked[0], (std::array<int32_t, 3>{0, 1, 7}));
    EXPECT_EQ(w.forked[1], (std::array<int32_t, 3>{0, 2, 7}));
    // Every user starts from user 0's first token, at position 8.
    for (int u = 0; u < 3; ++u) {
        EXPECT_EQ(w.calls[2][u].token, 100);
        EXPECT_EQ(w.calls[2][u].pos, 8);
        EXPECT_EQ(w.calls[2][u].seq, u);
    }
    // TTFT: 18 ms for user 0, then half a millisecond per fork.
    const auto& t = r.reps[0].ttft_s;
    EXPECT_NEAR(t[0], 0.018, 1e-9);
    EXPECT_NEAR(t[1], 0.0185, 1e-9);
    EXPECT_NEAR(t[2], 0.019, 1e-9);
    EXPECT_NEAR(r.pp_tps.mean, 8 / 0.018, 1e-6);
}

TEST(BenchRunner, WarmupRepetitionsAreExcluded) {
    FakeWorld w;
    FakeDecoder dec(w);
    SweepParams sp = params(4, 3, 2, 2);
    sp.warmup = 1;
    PointResult r = run_point(dec, {4, 3, 2, 1}, sp, w.clock());
    EXPECT_EQ(r.reps.size(), 2u);
    // light warm-up + (1 excluded + 2 measured) x (1 prompt + 3 steps)
    EXPECT_EQ(w.calls.size(), 1u + 3u * 4u);
}

TEST(BenchRunner, VaryingStepsGiveMeanP90AndStddev) {
    // Generation steps that take 10, 20, ..., 100 ms; nothing else takes time.
    FakeWorld w;
    w.pick_cost = w.clear_cost = w.fork_cost = 0;
    int n = 0;
    w.step_cost = [&n](std::span<const BatchToken> b) { return b.size() == 1 && b[0].pos >= 2 ? 0.010 * ++n : 0.0; };
    FakeDecoder g(w, 50);
    SweepParams sp = params(2, 10, 1, 1);
    PointResult r = run_point(g, {2, 10, 1, 1}, sp, w.clock());
    summarize(r, ModelCost{});
    EXPECT_NEAR(r.latency_ms.mean, 55.0, 1e-9);
    EXPECT_NEAR(r.latency_p90_ms.mean, 91.0, 1e-9);  // numpy: 90th of 10..100 = 91
    EXPECT_NEAR(r.user_tps.mean, 10 / 0.55, 1e-9);
}

TEST(BenchRunner, SweepOrderContextSizeAndProgress) {
    FakeWorld w;
    std::vector<DecoderSpec> specs;
    DecoderFactory make = [&](const DecoderSpec& s) {
        specs.push_back(s);
        return std::make_unique<FakeDecoder>(w);
    };
    SweepParams sp;
    sp.n_prompt = {4, 8};
    sp.n_gen = {2};
    sp.batch = {1, 3};
    sp.threads = {2};
    sp.reps = 1;
    int done = 0;
    auto res = run_sweep(make, sp, ModelCost{}, w.clock(), [&](const Progress& p) { done += p.phase == "done"; });
    ASSERT_EQ(res.size(), 4u);
    EXPECT_EQ(done, 4);
    EXPECT_EQ(res[0].pt, (Point{4, 2, 1, 2}));
    EXPECT_EQ(res[1].pt, (Point{4, 2, 3, 2}));
    EXPECT_EQ(res[3].pt, (Point{8, 2, 3, 2}));
    ASSERT_EQ(specs.size(), 4u);
    EXPECT_EQ(specs[3].n_ctx, 3 * (8 + 2));
    EXPECT_EQ(specs[3].n_seq, 3);
    EXPECT_EQ(specs[3].threads, 2);
    EXPECT_TRUE(std::isfinite(res[3].tg_tps.mean));
}

TEST(BenchRunner, RooflineWorkFromModelCost) {
    FakeWorld w;
    FakeDecoder dec(w);
    const SweepParams sp = params(10, 4, 2, 1);
    PointResult r = run_point(dec, {10, 4, 2, 1}, sp, w.clock());
    ModelCost c;
    c.layer_params = 1e9;
    c.layer_bytes = 5e8;
    c.head_params = 1e8;
    c.head_bytes = 1e8;
    c.embd_row_bytes = 1000;
    c.kv_bytes_per_cell = 100;
    summarize(r, c);
    EXPECT_DOUBLE_EQ(r.pp_macs, 20 * 1e9 + 2 * 1e8);
    EXPECT_DOUBLE_EQ(r.tg_bytes_per_step, 5e8 + 1e8 + 2 * 1000 + 2 * (10 + 2.5) * 100);
    // prompt: 10 + 20 ms; steps: 12 ms.
    EXPECT_NEAR(r.pp_gmacs.mean, r.pp_macs / 0.030 / 1e9, 1e-6);
    EXPECT_NEAR(r.tg_gbs.mean, r.tg_bytes_per_step / 0.012 / 1e9, 1e-6);
    // a step: both users' tokens through layers and head.
    EXPECT_DOUBLE_EQ(r.tg_macs_per_step, 2 * (1e9 + 1e8));
    EXPECT_NEAR(r.tg_gmacs.mean, r.tg_macs_per_step / 0.012 / 1e9, 1e-6);
}

TEST(BenchStats, MeanStddevPercentile) {
    const std::vector<double> v = {2, 4, 4, 4, 5, 5, 7, 9};
    Stat s = stat_of(v);
    EXPECT_DOUBLE_EQ(s.mean, 5.0);
    EXPECT_NEAR(s.stddev, std::sqrt(32.0 / 7.0), 1e-12);
    EXPECT_TRUE(std::isnan(stat_of(std::vector<double>{3.0}).stddev));
    EXPECT_TRUE(std::isnan(stat_of(std::vector<double>{}).mean));
    EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4, 5}, 90), 4.6);
    EXPECT_DOUBLE_EQ(percentile({7}, 90), 7.0);
    EXPECT_DOUBLE_EQ(percentile({3, 1, 2}, 50), 2.0);
}

TEST(Runner, WindowLayersReadAtMostTheirWindowOfKv) {
    ModelCost c;
    c.kv_bytes_per_cell = 100;         // full-attention layers
    c.kv_window_bytes_per_cell = 50;   // sliding-window layers, window 8
    c.kv_window = 8;
    EXPECT_DOUBLE_EQ(c.kv_read_bytes(4), 4 * 150.0);
    EXPECT_DOUBLE_EQ(c.kv_read_bytes(20), 20 * 100.0 + 8 * 50.0);
}

}  // namespace
}  // namespace loom::bench
