// The engine against the in-tree double-precision oracle (oracle.h) on tiny
// synthetic models of each architecture, written by the test itself: no ../shared.
// Every kernel ISA this CPU runs (under qemu: the emulated CPU's), weights in float
// and quantized types, prompts of several lengths evaluated as one batch, in chunks
// and one token at a time, the logits of every position compared.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>

#include "kernels/kernels.h"
#include "model/model.h"
#include "model/synth.h"
#include "oracle.h"
#include "runtime/context.h"

namespace loom {
namespace {

struct Variant {
    const char* name;   // test name part
    const char* shape;  // synth shape
    bool random_norms = true, longrope = false;
    int window = -1;    // -1: the shape's
};

const Variant kVariants[] = {
    {"llama", "tiny", false},                  // separate head, GQA 2:1, unit norms
    {"llama3", "tiny-llama3"},                 // Llama 3.1 rope factors, tied head, GQA 4:1
    {"phi3", "tiny-phi3"},                     // fused QKV and gate/up, halves RoPE
    {"phi3_longrope", "tiny-phi3", true, true, 12},  // LongRoPE factors + attn factor, window on all layers
    {"gemma2", "tiny-gemma2"},                 // soft-caps, window 8 on layers 0 and 2, post-norms, GELU
    {"llama256", "tiny-256"},                  // 256-wide rows: K-quants, Q4_0 with a Q6_K head
};

const GgmlType kTypes[] = {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0};

std::string model_path(const Variant& v, GgmlType t) {
    static std::map<std::string, std::string> made;
    const std::string key = std::string(v.name) + "." + std::string(type_name(t));
    auto it = made.find(key);
    if (it != made.end()) return it->second;
    const std::string p = ::testing::TempDir() + "/loom_oracle_" + key + "." + std::to_string(::getpid()) + ".gguf";
    SynthOptions o;
    o.type = t;
    o.n_threads = 2;
    o.random_norms = v.random_norms;
    o.longrope = v.longrope;
    o.sliding_window = v.window;
    synth_write(v.shape, p, o);
    return made[key] = p;
}

std::vector<int32_t> prompt(int n, int n_vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(n_vocab));
    return t;
}

// Every ISA with a kernel this CPU runs, scalar first. Under an emulator (cross
// builds) only the best one: each emulated CPU model already selects a different ISA.
std::vector<std::string> isas() {
#ifdef LOOM_GOLDEN_BEST_ISA_ONLY
    return {"auto"};
#endif
    std::vector<std::string> out = {"scalar"};
    for (auto* k : kernels::all_kernels())
        if ((k->features & kernels::cpu_features()) == k->features &&
            std::find(out.begin(), out.end(), k->isa) == out.end())
            out.push_back(k->isa);
    return out;
}

struct Tolerance {
    double min_cos, max_rel;  // max |engine - oracle| / max |oracle|, per position
};
Tolerance tolerance(GgmlType t) {
    // Measured on x86 (scalar, avx2, avxvnni, avx512vnni), worst over all variants:
    // F32 cosine 1 - 5e-10, 3.8e-5 (the far positions: float RoPE angles);
    // F16 0.9999996, 1.0e-3; BF16 0.99998, 7.4e-3; Q8_0 / Q4_0 0.99972, 3.2e-2;
    // Q4_K / Q5_K / Q6_K (activations in Q8_K) 0.99943, 4.2e-2.
    switch (t) {
        case GgmlType::F32: return {0.9999999, 1e-4};
        case GgmlType::F16: return {0.999998, 4e-3};   // activations rounded to f16
        case GgmlType::BF16: return {0.9998, 3e-2};    // activations rounded to bf16
        default: return {0.999, 8e-2};                 // activations quantized to 8 bits
    }
}

struct Diff {
    double cos = 1, rel = 0;
};
Diff compare(std::span<const float> got, const std::vector<double>& want) {
    double ab = 0, aa = 0, bb = 0, mx = 0, dmax = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        ab += got[i] * want[i];
        aa += double(got[i]) * got[i];
        bb += want[i] * want[i];
        mx = std::max(mx, std::abs(want[i]));
        dmax = std::max(dmax, std::abs(got[i] - want[i]));
    }
    return {ab / std::sqrt(aa * bb), dmax / mx};
}

class OracleMatch : public ::testing::TestWithParam<std::tuple<int, GgmlType>> {
protected:
    void TearDown() override { kernels::set_forced_isa("auto"); }
};

TEST_P(OracleMatch, EveryPositionOnEveryIsa) {
    const Variant& v = kVariants[std::get<0>(GetParam())];
    const GgmlType type = std::get<1>(GetParam());
    const std::string path = model_path(v, type);
    const oracle::Oracle ref(path);
    const Tolerance tol = tolerance(type);
    // Phi-3 LongRoPE: a context within the original one (short factors) and past it (long).
    std::vector<int> n_ctxs = {512};
    if (v.longrope) n_ctxs.push_back(ref.config().n_ctx_orig + 64);
    // One prompt; shorter ones are its prefixes (causal: the same logits). Starting at
    // position 0 and, once, far out (large RoPE angles, Llama 3 factors at work).
    // A long prompt as well: Llama 3 factors scale only wavelengths past 2048, so
    // they show over hundreds of positions; many attention tiles.
    constexpr int kLen = 45, kFar = 3000, kFarLen = 19, kLong = 300;
    const auto toks = prompt(kLong, ref.config().n_vocab, 100);
    std::map<std::pair<int, int>, std::vector<std::vector<double>>> want;  // (n_ctx, pos0) -> logits
    for (int n_ctx : n_ctxs)
        for (int pos0 : {0, kFar}) want[{n_ctx, pos0}] = ref.logits(std::span(toks).first(pos0 ? kFarLen : kLong), n_ctx, pos0);

    Diff worst;
    for (const std::string& isa : isas()) {
        SCOPED_TRACE("isa " + isa);
        kernels::set_forced_isa(isa);
        auto model = Model::load(path);  // kernels are chosen (and weights packed) at load
        for (int n_ctx : n_ctxs) {
            // One thread, except the chunked run (threads that spin-wait are slow on
            // a busy machine and under emulation; batch invariance has its own tests).
            auto context = [&](int n_batch) {
                ContextParams cp;
                cp.n_ctx = n_ctx;
                cp.n_threads = n_batch < 512 ? 2 : 1;
                cp.n_batch = n_batch;
                cp.type_k = cp.type_v = GgmlType::F32;
                return std::make_unique<Context>(*model, cp);
            };
            auto check = [&](std::span<const float> got, int pos0, int i, const std::string& how) {
                const auto& w = want[{n_ctx, pos0}][i];
                ASSERT_EQ(got.size(), w.size());
                const Diff d = compare(got, w);
                worst.cos = std::min(worst.cos, d.cos);
                worst.rel = std::max(worst.rel, d.rel);
                EXPECT_GE(d.cos, tol.min_cos) << how << ", n_ctx " << n_ctx << ", position " << pos0 + i;
                EXPECT_LE(d.rel, tol.max_rel) << how << ", n_ctx " << n_ctx << ", position " << pos0 + i;
            };
            // Prompts as one batch (and the longest in chunks of 7), logits at every position.
            auto batch = [&](int n, int pos0, int n_batch) {
                auto ctx = context(n_batch);
                std::vector<BatchToken> b;
                for (int i = 0; i < n; ++i) b.push_back({toks[i], pos0 + i, 0, true});
                ctx->decode(b);
                ASSERT_EQ(ctx->n_outputs(), n);
                const std::string how = std::to_string(n) + " tokens in batches of " + std::to_string(std::min(n, n_batch));
                for (int i = 0; i < n; ++i) check(ctx->logits(i), pos0, i, how);
            };
            for (int n : {1, 6, 19, kLen, kLong}) batch(n, 0, 512);
            batch(kLen, 0, 7);
            batch(kFarLen, kFar, 512);
            // One token at a time.
            auto ctx = context(512);
            for (int i = 0; i < kLen; ++i) {
                const BatchToken bt{toks[i], i, 0, true};
                ctx->decode({&bt, 1});
                check(ctx->logits(0), 0, i, "one token at a time");
            }
        }
    }
    std::printf("[ %s %s ] worst cosine %.9f, worst max|diff|/max|logit| %.3g\n", v.name,
                std::string(type_name(type)).c_str(), worst.cos, worst.rel);
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<int, GgmlType>>& info) {
    return std::string(kVariants[std::get<0>(info.param)].name) + "_" + std::string(type_name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Tiny, OracleMatch,
                         ::testing::Combine(::testing::Range(0, 5), ::testing::ValuesIn(kTypes)), param_name);
INSTANTIATE_TEST_SUITE_P(TinyKQuants, OracleMatch,
                         ::testing::Combine(::testing::Values(5), ::testing::Values(GgmlType::Q4_K, GgmlType::Q5_K,
                                                                                    GgmlType::Q6_K, GgmlType::Q4_0)),
                         param_name);

// max |a - b| / max |b| over all positions.
double rel_diff(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
    double mx = 0, d = 0;
    for (size_t t = 0; t < a.size(); ++t)
        for (size_t i = 0; i < a[t].size(); ++i) {
            mx = std::max(mx, std::abs(b[t][i]));
            d = std::max(d, std::abs(a[t][i] - b[t][i]));
        }
    return d / mx;
}

// The synthetic models and prompts exercise each feature: turning it off in the
// oracle moves the logits far beyond the tolerances above (so an engine that
// skipped it could not pass).
TEST(Oracle, EachFeatureMattersOnTheSyntheticModels) {
    using A = oracle::Ablation;
    struct Case {
        int variant;
        const char* what;
        A off;
    };
    auto with = [](auto set) { A a; set(a); return a; };
    const Case cases[] = {
        {0, "rope pairing", with([](A& a) { a.rope_mode = true; })},
        {1, "rope pairing", with([](A& a) { a.rope_mode = true; })},
        {1, "rope_freqs", with([](A& a) { a.rope_factors = true; })},
        {1, "norm weights", with([](A& a) { a.norm_weights = true; })},
        {2, "rope pairing", with([](A& a) { a.rope_mode = true; })},
        {3, "LongRoPE factors", with([](A& a) { a.rope_factors = true; })},
        {3, "LongRoPE attention factor", with([](A& a) { a.attn_factor = true; })},
        {3, "sliding window", with([](A& a) { a.window = true; })},
        {4, "attention soft-cap", with([](A& a) { a.attn_softcap = true; })},
        {4, "final soft-cap", with([](A& a) { a.final_softcap = true; })},
        {4, "sliding window", with([](A& a) { a.window = true; })},
        {4, "post-norms", with([](A& a) { a.post_norms = true; })},
        {4, "embedding scale", with([](A& a) { a.embed_scale = true; })},
        {4, "rope pairing", with([](A& a) { a.rope_mode = true; })},
        {4, "norm weights", with([](A& a) { a.norm_weights = true; })},
    };
    for (const Case& c : cases) {
        const Variant& v = kVariants[c.variant];
        const oracle::Oracle ref(model_path(v, GgmlType::F32));
        const int n_ctx = v.longrope ? ref.config().n_ctx_orig + 64 : 512;  // LongRoPE: the long factors
        // Llama 3 factors only touch wavelengths past 2048: they need long distances.
        const auto toks = prompt(c.off.rope_factors && !v.longrope ? 300 : 45, ref.config().n_vocab, 7);
        const double d = rel_diff(ref.logits(toks, n_ctx, 0, c.off), ref.logits(toks, n_ctx));
        EXPECT_GT(d, 0.01) << v.name << ": turning off " << c.what << " changes the logits by only " << d;
    }
    // Phi-3 chooses its factors by the context size.
    const oracle::Oracle phi(model_path(kVariants[3], GgmlType::F32));
    const auto toks = prompt(45, phi.config().n_vocab, 7);
    EXPECT_GT(rel_diff(phi.logits(toks, 512), phi.logits(toks, phi.config().n_ctx_orig + 64)), 0.01);
}

// The oracle reads the hyperparameters the synthetic shapes mean to exercise.
TEST(Oracle, ReadsEachArchitecturesHyperparameters) {
    const oracle::Oracle g(model_path(kVariants[4], GgmlType::F32));
    const oracle::Config& c = g.config();
    EXPECT_EQ(c.arch, "gemma2");
    EXPECT_EQ(c.head_dim, 32);  // key_length, not n_embd / n_head
    EXPECT_EQ(c.window, (std::vector<int>{8, 0, 8}));
    EXPECT_DOUBLE_EQ(c.attn_softcap, 3.0);
    EXPECT_DOUBLE_EQ(c.final_softcap, 10.0);
    EXPECT_TRUE(c.tied && c.neox && c.gelu && c.scale_embd);
    auto engine = Model::load(model_path(kVariants[4], GgmlType::F32));
    EXPECT_EQ(engine->layer_windows(), c.window);

    const oracle::Oracle p(model_path(kVariants[3], GgmlType::F32));
    EXPECT_EQ(p.config().n_ctx_orig, 4096);
    EXPECT_EQ(p.config().n_ctx_train, 32 * 4096);
    EXPECT_NEAR(p.config().attn_factor, std::sqrt(1 + std::log(32.0) / std::log(4096.0)), 1e-12);
    EXPECT_EQ(p.config().window, (std::vector<int>{12, 12}));
    EXPECT_FALSE(p.config().tied);
}

}  // namespace
}  // namespace loom
