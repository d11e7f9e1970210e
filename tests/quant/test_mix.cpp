// Per-tensor type rules of the quantization mixes (quant/mix.h) on model shapes
// made up here: which layers get more bits, head and embedding rules, shape
// fallbacks, the processing order, and the Q6_K codes of zero-scale groups.
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "quant/formats.h"
#include "quant/mix.h"
#include "quant/ref.h"

using namespace loom;
using namespace loom::quant;

namespace {

// A Llama-like model: n_layer blocks, rows of d (ffn_down rows of ff).
std::vector<TensorShape> llama_like(int n_layer, int64_t d, int64_t ff, bool tied = false, int64_t vocab = 1000) {
    std::vector<TensorShape> t;
    t.push_back({"token_embd.weight", GgmlType::F16, {d, vocab}});
    t.push_back({"output_norm.weight", GgmlType::F32, {d}});
    if (!tied) t.push_back({"output.weight", GgmlType::F16, {d, vocab}});
    for (int i = 0; i < n_layer; ++i) {
        const std::string b = "blk." + std::to_string(i) + ".";
        t.push_back({b + "attn_norm.weight", GgmlType::F32, {d}});
        t.push_back({b + "attn_q.weight", GgmlType::F16, {d, d}});
        t.push_back({b + "attn_k.weight", GgmlType::F16, {d, d / 4}});
        t.push_back({b + "attn_v.weight", GgmlType::F16, {d, d / 4}});
        t.push_back({b + "attn_output.weight", GgmlType::F16, {d, d}});
        t.push_back({b + "ffn_gate.weight", GgmlType::F16, {d, ff}});
        t.push_back({b + "ffn_up.weight", GgmlType::F16, {d, ff}});
        t.push_back({b + "ffn_down.weight", GgmlType::F16, {ff, d}});
    }
    return t;
}

std::map<std::string, TensorPlan> plan(const std::vector<TensorShape>& t, const char* type, bool pure = false,
                                       int n_layer = 0) {
    const auto target = find_target(type);
    EXPECT_TRUE(target.has_value()) << type;
    const auto plans = plan_types(t, *target, pure, MixModel{"llama", n_layer, 0});
    std::map<std::string, TensorPlan> by_name;
    for (size_t i = 0; i < t.size(); ++i) by_name[t[i].name] = plans[i];
    return by_name;
}

std::string layer(int i, const char* what) { return "blk." + std::to_string(i) + "." + what + ".weight"; }

}  // namespace

TEST(QuantMix, TargetNamesAreLlamaCppsAndCaseInsensitive) {
    EXPECT_EQ(find_target("q4_k_m")->ftype, 15u);
    EXPECT_EQ(find_target("Q4_K_S")->ftype, 14u);
    EXPECT_EQ(find_target("Q5_K_M")->ftype, 17u);
    EXPECT_EQ(find_target("q6_k")->ftype, 18u);
    EXPECT_EQ(find_target("Q4_0")->ftype, 2u);
    EXPECT_EQ(find_target("q8_0")->ftype, 7u);
    EXPECT_EQ(find_target("q4_0_4_4")->ftype, 33u);
    EXPECT_EQ(find_target("Q4_0_4_8")->ftype, 34u);
    EXPECT_EQ(find_target("q4_0_8_8")->ftype, 35u);
    EXPECT_TRUE(find_target("q4_k")->always_pure);
    EXPECT_TRUE(find_target("q5_k")->always_pure);
    EXPECT_FALSE(find_target("q3_k_m").has_value());
    EXPECT_FALSE(find_target("").has_value());
    EXPECT_NE(target_names().find("Q4_K_M"), std::string::npos);
}

// Q4_K_M on 32 layers: attn_v and ffn_down get Q6_K in the first and last
// eighth and in every third layer between (layers 0-3, 6, 9, ..., 27, 28-31).
TEST(QuantMix, Q4_K_MGivesMoreBitsToTheUsualLayers) {
    const auto t = llama_like(32, 256, 512);
    const auto p = plan(t, "Q4_K_M", false, 32);
    for (int i = 0; i < 32; ++i) {
        const bool more = i < 4 || i >= 28 || (i - 4) % 3 == 2;
        const GgmlType want = more ? GgmlType::Q6_K : GgmlType::Q4_K;
        EXPECT_EQ(type_name(p.at(layer(i, "attn_v")).type), type_name(want)) << i;
        EXPECT_EQ(type_name(p.at(layer(i, "ffn_down")).type), type_name(want)) << i;
        EXPECT_EQ(p.at(layer(i, "attn_q")).type, GgmlType::Q4_K);
        EXPECT_EQ(p.at(layer(i, "ffn_up")).type, GgmlType::Q4_K);
        EXPECT_EQ(p.at(layer(i, "attn_norm")).type, GgmlType::F32);
        EXPECT_FALSE(p.at(layer(i, "attn_norm")).quantize);
    }
    EXPECT_EQ(p.at("output.weight").type, GgmlType::Q6_K);
    EXPECT_EQ(p.at("token_embd.weight").type, GgmlType::Q4_K);
    EXPECT_EQ(p.at("output_norm.weight").type, GgmlType::F32);
}

// 80-layer Llama with grouped KV heads (70B): attn_v never below Q5_K.
TEST(QuantMix, Llama70BAttnVGetsQ5_K) {
    const auto t = llama_like(80, 256, 512);
    MixModel m{"llama", 80, 0, true};
    const auto plans = plan_types(t, *find_target("Q4_K_M"), false, m);
    for (size_t i = 0; i < t.size(); ++i) {
        if (t[i].name.find("attn_v") == std::string::npos) continue;
        EXPECT_TRUE(plans[i].type == GgmlType::Q5_K || plans[i].type == GgmlType::Q6_K) << t[i].name;
    }
    m.gqa = false;  // 65B: no grouped heads, no bump
    const auto no_gqa = plan_types(t, *find_target("Q4_K_M"), false, m);
    int found = 0;
    for (size_t i = 0; i < t.size(); ++i) {
        if (t[i].name != layer(13, "attn_v")) continue;
        EXPECT_EQ(no_gqa[i].type, GgmlType::Q4_K);
        ++found;
    }
    EXPECT_EQ(found, 1);
}

TEST(QuantMix, Q4_K_SAndQ5_K_MAndQ6_K) {
    const auto t = llama_like(16, 256, 512);
    const auto s = plan(t, "Q4_K_S", false, 16);
    for (int i = 0; i < 16; ++i) {
        EXPECT_EQ(type_name(s.at(layer(i, "attn_v")).type), type_name(i < 4 ? GgmlType::Q5_K : GgmlType::Q4_K)) << i;
        EXPECT_EQ(type_name(s.at(layer(i, "ffn_down")).type), type_name(i < 2 ? GgmlType::Q5_K : GgmlType::Q4_K)) << i;
    }
    EXPECT_EQ(s.at("output.weight").type, GgmlType::Q6_K);
    const auto m = plan(t, "q5_k_m", false, 16);
    for (int i = 0; i < 16; ++i) {
        const bool more = i < 2 || i >= 14 || (i - 2) % 3 == 2;
        EXPECT_EQ(type_name(m.at(layer(i, "ffn_down")).type), type_name(more ? GgmlType::Q6_K : GgmlType::Q5_K)) << i;
        EXPECT_EQ(m.at(layer(i, "attn_k")).type, GgmlType::Q5_K);
    }
    for (const auto& [name, pl] : plan(t, "q6_k", false, 16)) {
        if (pl.quantize) {
            EXPECT_EQ(pl.type, GgmlType::Q6_K) << name;
        }
    }
}

// Q4_0 / Q8_0: the head gets Q6_K (Q8_0 stays Q8_0), the embedding the base type;
// a model without output.weight uses its embedding as the head.
TEST(QuantMix, HeadAndEmbeddingRules) {
    const auto q40 = plan(llama_like(2, 256, 512), "q4_0");
    EXPECT_EQ(q40.at("output.weight").type, GgmlType::Q6_K);
    EXPECT_EQ(q40.at("token_embd.weight").type, GgmlType::Q4_0);
    const auto q80 = plan(llama_like(2, 256, 512), "q8_0");
    EXPECT_EQ(q80.at("output.weight").type, GgmlType::Q8_0);
    const auto tied = plan(llama_like(2, 256, 512, true), "q4_k_m");
    EXPECT_EQ(tied.at("token_embd.weight").type, GgmlType::Q6_K);
    // Rows of 128 cannot hold the Q6_K head: it falls back to Q8_0 (and says so).
    const auto small = plan(llama_like(2, 128, 256), "q4_0");
    EXPECT_EQ(small.at("output.weight").type, GgmlType::Q8_0);
    EXPECT_EQ(small.at("output.weight").wanted, GgmlType::Q6_K);
    EXPECT_TRUE(small.at("output.weight").fallback);
    EXPECT_EQ(small.at("token_embd.weight").type, GgmlType::Q4_0);
    // Interleaved targets: the embedding stays plain Q4_0, matrices interleave.
    const auto il = plan(llama_like(2, 256, 512), "q4_0_4_8");
    EXPECT_EQ(il.at("token_embd.weight").type, GgmlType::Q4_0);
    EXPECT_EQ(il.at("output.weight").type, GgmlType::Q6_K);
    EXPECT_EQ(il.at(layer(1, "ffn_down")).type, GgmlType::Q4_0_4_8);
    // --pure: everything quantizable gets the target type, norms stay.
    const auto pure = plan(llama_like(2, 256, 512), "q4_0_8_8", true);
    EXPECT_EQ(pure.at("token_embd.weight").type, GgmlType::Q4_0_8_8);
    EXPECT_EQ(pure.at("output.weight").type, GgmlType::Q4_0_8_8);
    EXPECT_EQ(pure.at(layer(0, "attn_norm")).type, GgmlType::F32);
}

// Shapes a type cannot hold fall back (and say so): K types on rows that are not
// multiples of 256, any block type on rows that are not multiples of 32,
// interleaved types on row counts that are not multiples of the group.
TEST(QuantMix, ShapeFallbacks) {
    std::vector<TensorShape> t = {
        {"blk.0.attn_q.weight", GgmlType::F16, {128, 256}},   // Q4_K -> Q4_0
        {"blk.0.ffn_down.weight", GgmlType::F16, {96, 256}},  // (Q6_K in layer 0) -> Q8_0
        {"blk.0.attn_k.weight", GgmlType::F16, {100, 64}},    // -> F16, which it is already
        {"blk.0.ffn_up.weight", GgmlType::F32, {100, 64}},    // -> F16
        {"blk.0.attn_output.weight", GgmlType::F16, {256, 256}},
    };
    const auto p = plan(t, "Q4_K_M", false, 1);
    EXPECT_EQ(p.at("blk.0.attn_q.weight").type, GgmlType::Q4_0);
    EXPECT_EQ(p.at("blk.0.attn_q.weight").wanted, GgmlType::Q4_K);
    EXPECT_TRUE(p.at("blk.0.attn_q.weight").fallback);
    EXPECT_EQ(p.at("blk.0.ffn_down.weight").type, GgmlType::Q8_0);
    EXPECT_EQ(p.at("blk.0.ffn_down.weight").wanted, GgmlType::Q6_K);
    EXPECT_EQ(p.at("blk.0.attn_k.weight").type, GgmlType::F16);
    EXPECT_TRUE(p.at("blk.0.attn_k.weight").fallback);
    EXPECT_FALSE(p.at("blk.0.attn_k.weight").quantize);  // already F16: copied
    EXPECT_EQ(p.at("blk.0.ffn_up.weight").type, GgmlType::F16);
    EXPECT_TRUE(p.at("blk.0.ffn_up.weight").quantize);
    EXPECT_FALSE(p.at("blk.0.attn_output.weight").fallback);

    std::vector<TensorShape> rows = {{"blk.0.attn_q.weight", GgmlType::F16, {256, 12}},
                                     {"blk.0.attn_k.weight", GgmlType::F16, {256, 6}}};
    const auto q88 = plan(rows, "Q4_0_8_8", true);
    EXPECT_EQ(q88.at("blk.0.attn_q.weight").type, GgmlType::Q4_0);  // 12 rows: not a multiple of 8
    EXPECT_TRUE(q88.at("blk.0.attn_q.weight").fallback);
    const auto q44 = plan(rows, "Q4_0_4_4", true);
    EXPECT_EQ(q44.at("blk.0.attn_q.weight").type, GgmlType::Q4_0_4_4);
    EXPECT_EQ(q44.at("blk.0.attn_k.weight").type, GgmlType::Q4_0);
}

TEST(QuantMix, OnlyMatricesNamedWeightAreQuantized) {
    EXPECT_TRUE(quantizable({"blk.0.attn_q.weight", GgmlType::F16, {256, 256}}));
    EXPECT_FALSE(quantizable({"blk.0.attn_norm.weight", GgmlType::F32, {256}}));
    EXPECT_FALSE(quantizable({"blk.0.attn_q.weight", GgmlType::F16, {256, 1}}));  // 1-D in ggml's sense
    EXPECT_FALSE(quantizable({"blk.0.ffn_gate_inp.weight", GgmlType::F16, {256, 8}}));
    EXPECT_FALSE(quantizable({"blk.0.attn_q.bias", GgmlType::F16, {256, 256}}));
    EXPECT_FALSE(quantizable({"rope_freqs.weight", GgmlType::F32, {64}}));
    EXPECT_FALSE(quantizable({"blk.0.attn_q_norm.weight", GgmlType::F32, {64, 2}}));
}

// Outside blocks first, then block by block (numerically), by name within.
TEST(QuantMix, ProcessingOrderIsByBlockThenName) {
    const std::vector<std::string> names = {"blk.10.b", "token_embd.weight", "blk.2.b", "blk.2.a",
                                            "output.weight", "blk.0.z"};
    const auto idx = llama_processing_order(names);
    std::vector<std::string> got;
    for (size_t i : idx) got.push_back(names[i]);
    EXPECT_EQ(got, (std::vector<std::string>{"output.weight", "token_embd.weight", "blk.0.z", "blk.2.a", "blk.2.b",
                                             "blk.10.b"}));
}

// Q6_K: a 16-element group whose stored scale is 0 keeps the codes of its
// search, like the reference: an all-zero group codes 0 (-32 after the offset),
// a tiny group keeps its signed codes; they multiply a zero scale either way.
TEST(QuantMix, Q6_KZeroScaleGroupsKeepTheSearchCodes) {
    std::vector<float> x(QK_K);
    for (int i = 0; i < QK_K; ++i) x[i] = static_cast<float>((i * 37) % 61 - 30) / 30.0f;
    for (int i = 0; i < 16; ++i) x[i] = 0.0f;                                      // group 0: zeros
    for (int i = 0; i < 16; ++i) x[16 + i] = 1e-7f * static_cast<float>(i - 8);    // group 1: tiny
    BlockQ6_K b;
    ref::quantize_row_q6_K(x.data(), &b, QK_K);
    EXPECT_EQ(b.scales[0], 0);
    EXPECT_EQ(b.scales[1], 0);
    for (int e = 0; e < 16; ++e) EXPECT_EQ(ref::q6_K_code(b, e), -32) << e;
    EXPECT_EQ(ref::q6_K_code(b, 16), -32);  // -8e-7: the largest magnitude maps to -32
    EXPECT_EQ(ref::q6_K_code(b, 16 + 8), 0);
    EXPECT_GT(ref::q6_K_code(b, 31), 0);
    // The other groups still dequantize close to the input.
    std::vector<float> y(QK_K);
    ref::dequantize_row_q6_K(&b, y.data(), QK_K);
    for (int i = 32; i < QK_K; ++i) EXPECT_NEAR(y[i], x[i], 0.03f) << i;
}
