// The Arm K-quant kernels (dotprod, i8mm, SVE) at the edges of their integer ranges,
// where random data never goes: codes, scales and mins all at their extremes, and
// activations that quantize to -127 or +127 everywhere (the Q8_K range), so the
// sub-block sums the Q4_K/Q5_K kernels split as bh * 128 + bl reach -4064 and +4064
// (and -32 bsum, where the Q6_K kernels start each sub-block, +-65024). Each must still
// equal the scalar reference bit for bit, at every row count and output split.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/kernels.h"
#include "kernels/scalar/scalar.h"
#include "quant/formats.h"
#include "quant/ref.h"
#include "test_util.h"

using namespace loom;
using namespace loom::kernels;

namespace {

bool is_arm_isa(const MatmulKernel& k) {
    const std::string isa = k.isa;
    return isa == "dotprod" || isa == "i8mm" || isa == "sve";
}

// Q6_K: block (o + b) % 3 == 0 has every code at 31 (u = 63) and every scale at -128;
// the others random codes of -32 or 31 and scales of -128, 127 or random.
std::vector<uint8_t> extreme_q6_K(int64_t n_out, int64_t nb, uint32_t seed) {
    const size_t bb = sizeof(quant::BlockQ6_K);
    std::vector<uint8_t> w(bb * static_cast<size_t>(n_out * nb));
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> scale(0.001f, 0.5f);
    for (int64_t o = 0; o < n_out; ++o)
        for (int64_t b = 0; b < nb; ++b) {
            auto* blk = reinterpret_cast<quant::BlockQ6_K*>(w.data() + bb * static_cast<size_t>(o * nb + b));
            const bool full = (o + b) % 3 == 0;
            blk->d = quant::f32_to_fp16(scale(rng));
            for (int j = 0; j < 16; ++j) {
                const uint32_t r = rng() % 3;
                blk->scales[j] = full || r == 0 ? -128 : r == 1 ? 127 : static_cast<int8_t>(rng());
            }
            for (auto& q : blk->ql) q = full ? 0xFF : static_cast<uint8_t>(rng() % 2 ? 0xFF : 0x00) & static_cast<uint8_t>(rng() % 2 ? 0xF0 : 0xFF);
            for (auto& q : blk->qh) q = full ? 0xFF : static_cast<uint8_t>(rng());
        }
    return w;
}

// n_out rows of nb blocks: block (o + b) % 3 == 0 is "all at the maximum" (codes 15 / 31,
// sc = m = 63); the others have random codes of 0 or the maximum and random 6-bit
// scales and mins. d and dmin are random positive fp16 values.
std::vector<uint8_t> extreme_weights(GgmlType t, int64_t n_out, int64_t nb, uint32_t seed) {
    const bool q5 = t == GgmlType::Q5_K;
    const size_t bb = q5 ? sizeof(quant::BlockQ5_K) : sizeof(quant::BlockQ4_K);
    std::vector<uint8_t> w(bb * static_cast<size_t>(n_out * nb));
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> scale(0.001f, 0.5f);
    for (int64_t o = 0; o < n_out; ++o)
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* blk = w.data() + bb * static_cast<size_t>(o * nb + b);
            const bool full = (o + b) % 3 == 0;
            const uint16_t d = quant::f32_to_fp16(scale(rng)), dmin = quant::f32_to_fp16(scale(rng));
            std::memcpy(blk, &d, 2);
            std::memcpy(blk + 2, &dmin, 2);
            for (int j = 0; j < 8; ++j) {
                const uint8_t sc = full ? 63 : static_cast<uint8_t>(rng() % 64);
                const uint8_t m = full ? 63 : static_cast<uint8_t>(rng() % 64);
                quant::ref::set_scale_min_k4(j, blk + 4, sc, m);
            }
            const size_t qs = q5 ? offsetof(quant::BlockQ5_K, qs) : offsetof(quant::BlockQ4_K, qs);
            for (int i = 0; i < 128; ++i) {
                const uint8_t lo = full || rng() % 2 ? 0x0F : 0x00, hi = full || rng() % 2 ? 0xF0 : 0x00;
                blk[qs + i] = lo | hi;
            }
            if (q5)
                for (int i = 0; i < 32; ++i)
                    blk[offsetof(quant::BlockQ5_K, qh) + i] = full ? 0xFF : static_cast<uint8_t>(rng());
        }
    return w;
}

// Activation rows: row 0 quantizes to -127 everywhere, row 1 to +127 (but its first
// element), the rest alternate between those and random values.
std::vector<float> extreme_activations(int64_t T, int64_t n_in) {
    std::vector<float> x(static_cast<size_t>(T * n_in));
    const auto r = kernels::test::random_floats(x.size(), 17, 2.0f);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < n_in; ++i) {
            float& v = x[t * n_in + i];
            switch (t % 3) {
                case 0: v = 1.0f; break;                                       // max 1 -> all -127
                case 1: v = i % 256 == 0 ? -1.0f : 0.999f; break;              // max -1 -> +127 (126.9 rounded)
                default: v = r[t * n_in + i]; break;
            }
        }
    return x;
}

TEST(KQuantArm, ExtremeValuesEqualScalarReferenceBitExact) {
    int checked = 0;
    for (auto* k : all_kernels()) {
        const GgmlType t = k->wtype;
        if (!is_arm_isa(*k) || (t != GgmlType::Q4_K && t != GgmlType::Q5_K && t != GgmlType::Q6_K)) continue;
        if ((k->features & cpu_features()) != k->features) continue;
        const MatmulKernel* ref = t == GgmlType::Q4_K   ? &kMatmulQ4_KScalar
                                  : t == GgmlType::Q5_K ? &kMatmulQ5_KScalar
                                                        : &kMatmulQ6_KScalar;
        const int64_t nb = 3, n_in = 256 * nb, n_out = 11;
        const auto plain = t == GgmlType::Q6_K ? extreme_q6_K(n_out, nb, 5) : extreme_weights(t, n_out, nb, 5);
        const auto X = extreme_activations(9, n_in);
        for (int64_t T = 1; T <= 9; ++T) {
            const auto want = kernels::test::run(*ref, plain, n_out, n_in, X.data(), T, 0, 1);
            const auto got = kernels::test::run(*k, plain, n_out, n_in, X.data(), T, 4 * static_cast<int>(T % 4), 1 + T % 3);
            ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
                << k->name << " differs from " << ref->name << " at T " << T;
        }
        ++checked;
    }
    if (checked == 0) GTEST_SKIP() << "no Arm K-quant kernel runs on this CPU";
    std::printf("[ kquant_arm ] %d kernels checked at the extremes\n", checked);
}

// The activations above really reach the extremes the kernels must handle.
TEST(KQuantArm, ExtremeActivationsHitTheRangeEnds) {
    const int64_t n_in = 256;
    const auto X = extreme_activations(2, n_in);
    quant::BlockQ8_K a[2];
    quant::quantize_row(GgmlType::Q8_K, X.data(), &a[0], n_in);
    quant::quantize_row(GgmlType::Q8_K, X.data() + n_in, &a[1], n_in);
    for (int i = 0; i < 16; ++i) EXPECT_EQ(a[0].bsums[i], -127 * 16) << i;
    for (int i = 1; i < 16; ++i) EXPECT_EQ(a[1].bsums[i], 127 * 16) << i;
    EXPECT_EQ(a[1].qs[0], -127);
    EXPECT_EQ(a[1].bsums[0], 127 * 14);
}

}  // namespace
