// Real tensors written by the reference engine: the same weights quantized to
// different formats must dequantize to nearly the same values (a wrong block
// layout gives a relative difference of order 1), and vec_dot on real rows
// must agree with the dequantized dot.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mini_gguf.h"
#include "quant/formats.h"
#include "quant/repack.h"
#include "test_util.h"

using namespace loom;
using namespace loom::quant;

namespace {

// All rows of a tensor as floats (interleaved types unpacked first).
std::vector<float> dequant_tensor(const test::MiniTensor& t) {
    auto type = static_cast<GgmlType>(t.type);
    const int64_t n_cols = t.ne[0];
    int64_t n = 1;
    for (auto d : t.ne) n *= d;
    const int64_t n_rows = n / n_cols;
    std::vector<uint8_t> plain;
    const uint8_t* src = t.data;
    if (type == GgmlType::Q4_0_4_4 || type == GgmlType::Q4_0_4_8 || type == GgmlType::Q4_0_8_8) {
        plain.resize(t.n_bytes);
        unpack_interleaved_q4_0(type, t.data, plain.data(), n_rows, n_cols);
        src = plain.data();
        type = GgmlType::Q4_0;
    }
    std::vector<float> out(static_cast<size_t>(n));
    const size_t rb = row_bytes(type, n_cols);
    for (int64_t r = 0; r < n_rows; ++r)
        dequantize_row(type, src + static_cast<size_t>(r) * rb, out.data() + r * n_cols, n_cols);
    return out;
}

double rel_rms(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const double d = static_cast<double>(a[i]) - b[i];
        num += d * d;
        den += static_cast<double>(b[i]) * b[i];
    }
    return std::sqrt(num / den);
}

bool is_4bit(uint32_t t) {
    const auto g = static_cast<GgmlType>(t);
    return g == GgmlType::Q4_0 || g == GgmlType::Q4_K || g == GgmlType::Q4_0_4_8;
}

// Compares every tensor present in both files, with a bound set by the
// coarser of the two formats.
void compare_files(const std::string& a_name, const std::string& b_name) {
    const auto dir = test::shared_dir() / "models";
    const auto a = test::read_gguf((dir / a_name).string());
    const auto b = test::read_gguf((dir / b_name).string());
    int compared = 0;
    for (const auto& [name, ta] : a.tensors) {
        const auto it = b.tensors.find(name);
        if (it == b.tensors.end()) continue;
        const auto& tb = it->second;
        ASSERT_EQ(ta.ne, tb.ne) << name;
        if (ta.type == 0 && tb.type == 0) continue;  // norms
        const double r = rel_rms(dequant_tensor(ta), dequant_tensor(tb));
        // Measured: ~0.09 for Q4_0 vs F16/Q8_0/Q6_K, ~0.11 for Q4_K vs Q4_0,
        // ~0.002 for BF16 vs F16. A wrong layout gives ~1.4.
        const double bound = (is_4bit(ta.type) || is_4bit(tb.type)) ? 0.15 : 0.01;
        if (ta.type == tb.type && ta.n_bytes == tb.n_bytes && std::memcmp(ta.data, tb.data, ta.n_bytes) == 0) {
            EXPECT_EQ(r, 0.0);
        }
        EXPECT_LT(r, bound) << a_name << " vs " << b_name << ": " << name << " ("
                            << type_name(static_cast<GgmlType>(ta.type)) << " vs "
                            << type_name(static_cast<GgmlType>(tb.type)) << ")";
        ++compared;
    }
    EXPECT_GT(compared, 0) << a_name << " vs " << b_name;
}

}  // namespace

TEST(Models, SameWeightsInDifferentFormatsAgree) {
    LOOM_REQUIRE_SHARED();
    compare_files("llama-spm-small.q4_k_m.gguf", "llama-spm-small.q4_0.gguf");     // Q4_K/Q6_K vs Q4_0
    compare_files("llama-spm-small.q4_0_4_8.gguf", "llama-spm-small.q4_k_m.gguf"); // interleaved vs K
    compare_files("llama3-tiny.q8_0.gguf", "llama3-tiny.q4_0.gguf");
    compare_files("gemma2-tiny.f16.gguf", "gemma2-tiny.bf16.gguf");
    compare_files("gemma2-tiny.f16.gguf", "gemma2-tiny.q4_0.gguf");
    compare_files("phi3-tiny.f16.gguf", "phi3-tiny.q4_0.gguf");
}

TEST(Models, VecDotOnRealRows) {
    LOOM_REQUIRE_SHARED();
    const auto dir = test::shared_dir() / "models";
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    int checked = 0;
    for (const char* file : {"llama-spm-small.q4_k_m.gguf", "llama3-tiny.q8_0.gguf", "llama3-tiny.q4_0.gguf",
                             "gemma2-tiny.bf16.gguf", "phi3-tiny.f16.gguf"}) {
        const auto g = test::read_gguf((dir / file).string());
        for (const auto& [name, t] : g.tensors) {
            const auto type = static_cast<GgmlType>(t.type);
            if (type == GgmlType::F32 || !supported(type)) continue;
            const int64_t n = t.ne[0];
            const size_t rb = row_bytes(type, n);
            std::vector<float> x(static_cast<size_t>(n)), wd(static_cast<size_t>(n)), ad(static_cast<size_t>(n));
            for (auto& v : x) v = nd(rng);
            const GgmlType at = act_type(type);
            std::vector<uint8_t> act(row_bytes(at, n));
            quantize_row(at, x.data(), act.data(), n);
            dequantize_row(at, act.data(), ad.data(), n);
            for (int64_t r = 0; r < 4 && static_cast<size_t>(r + 1) * rb <= t.n_bytes; ++r) {
                const uint8_t* row = t.data + static_cast<size_t>(r) * rb;
                dequantize_row(type, row, wd.data(), n);
                double want = 0, mag = 0;
                for (int64_t i = 0; i < n; ++i) {
                    want += static_cast<double>(wd[i]) * ad[i];
                    mag += std::fabs(static_cast<double>(wd[i]) * ad[i]);
                }
                EXPECT_NEAR(vec_dot(type, row, act.data(), n), want, 1e-5 * mag + 1e-30) << file << " " << name;
                ++checked;
            }
        }
    }
    EXPECT_GT(checked, 100);
}
