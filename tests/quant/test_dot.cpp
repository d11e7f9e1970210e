// Dot products: vec_dot(w, act) against double-precision dots of the
// dequantized rows, exact integer parts, and vec_dot_f32.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "quant/formats.h"
#include "quant/ref.h"

using namespace loom;
using namespace loom::quant;

namespace {

constexpr GgmlType kWeightTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16,
                                     GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K,
                                     GgmlType::Q6_K, GgmlType::Q8_K};
constexpr int64_t kSizes[] = {32, 96, 256 * 3, 4096 + 256};
constexpr double kU = 0x1p-24;  // unit roundoff of float

bool fits(GgmlType t, int64_t n) { return n % traits(t).block_elems == 0; }

std::vector<float> gaussian(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = nd(rng);
    return x;
}

std::vector<uint8_t> to_row(GgmlType t, const std::vector<float>& x) {
    std::vector<uint8_t> row(row_bytes(t, static_cast<int64_t>(x.size())));
    quantize_row(t, x.data(), row.data(), static_cast<int64_t>(x.size()));
    return row;
}

std::vector<float> from_row(GgmlType t, const std::vector<uint8_t>& row, int64_t n) {
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_row(t, row.data(), y.data(), n);
    return y;
}

// Sum of |terms| that the float computation accumulates, for an error bound:
// per element |w_i a_i|, plus for Q4_K the min part that cancels against it.
double abs_scale(GgmlType t, const std::vector<uint8_t>& w, const std::vector<float>& wd,
                 const std::vector<float>& ad) {
    double s = 0;
    for (size_t i = 0; i < wd.size(); ++i) s += std::fabs(static_cast<double>(wd[i]) * ad[i]);
    if (t == GgmlType::Q4_K) {
        const auto* b = reinterpret_cast<const BlockQ4_K*>(w.data());
        for (size_t i = 0; i < wd.size(); ++i) {
            uint8_t sc, m;
            ref::get_scale_min_k4(static_cast<int>(i % 256 / 32), b[i / 256].scales, &sc, &m);
            s += 2 * std::fabs(static_cast<double>(fp16_to_f32(b[i / 256].dmin)) * m * ad[i]);
        }
    }
    return s;
}

}  // namespace

// vec_dot equals the double-precision dot of the dequantized rows, up to the
// float rounding of the per-block scale products and the block accumulation.
TEST(VecDot, MatchesDequantizedDoubleDot) {
    for (GgmlType t : kWeightTypes) {
        const GgmlType at = act_type(t);
        for (int64_t n : kSizes) {
            if (!fits(t, n)) continue;
            for (uint32_t seed = 0; seed < 3; ++seed) {
                const auto w = to_row(t, gaussian(n, 100 + seed));
                auto x = gaussian(n, 200 + seed);
                if (seed == 2)
                    for (auto& v : x) v = v * 0.01f + 0.3f;  // all-positive activations
                const auto a = to_row(at, x);
                const auto wd = from_row(t, w, n);
                const auto ad = from_row(at, a, n);
                double want = 0;
                for (int64_t i = 0; i < n; ++i) want += static_cast<double>(wd[i]) * ad[i];
                const float got = vec_dot(t, w.data(), a.data(), n);
                // Terms summed in float: n for plain types, one (or two) per block otherwise;
                // a few more roundings per term from scale products / dequantization.
                const int64_t be = traits(t).block_elems;
                const double terms = static_cast<double>(be == 1 ? n : n / be) + 8;
                // Rounding errors of a float sum grow like sqrt(terms) in practice (the
                // worst case is linear); with fixed seeds the check is deterministic.
                const double tol = 8 * (std::sqrt(terms) + 1) * kU * abs_scale(t, w, wd, ad);
                EXPECT_NEAR(got, want, tol) << type_name(t) << " n=" << n << " seed=" << seed;
            }
        }
    }
}

// With power-of-two scales and bounded codes every float operation is exact,
// so vec_dot must equal the int64 dot of the codes exactly.
TEST(VecDot, IntegerPartIsExact) {
    std::mt19937 rng(42);
    auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const int64_t kLimit = 1 << 24;  // |partial sums| below this keep float exact
    for (int64_t n : kSizes) {
        // ---- Q4_0 x Q8_0: d_w = 1, d_a = 0.5
        {
            const int64_t nb = n / 32;
            std::vector<BlockQ4_0> w(nb);
            std::vector<BlockQ8_0> a(nb);
            const int r = static_cast<int>(std::min<int64_t>(127, (kLimit - 1) / (nb * 32 * 8)));
            for (int64_t i = 0; i < nb; ++i) {
                w[i].d = 0x3c00;
                a[i].d = 0x3800;
                for (auto& q : w[i].qs) q = static_cast<uint8_t>(uni(0, 255));
                for (auto& q : a[i].qs) q = static_cast<int8_t>(uni(-r, r));
            }
            int64_t want = 0;
            for (int64_t i = 0; i < nb; ++i)
                for (int j = 0; j < 16; ++j)
                    want += int64_t{(w[i].qs[j] & 15) - 8} * a[i].qs[j] +
                            int64_t{(w[i].qs[j] >> 4) - 8} * a[i].qs[j + 16];
            EXPECT_EQ(vec_dot(GgmlType::Q4_0, w.data(), a.data(), n), static_cast<float>(want) * 0.5f)
                << "Q4_0 n=" << n;
        }
        // ---- Q8_0 x Q8_0: d_w = 2, d_a = 0.25
        {
            const int64_t nb = n / 32;
            std::vector<BlockQ8_0> w(nb), a(nb);
            const int r = static_cast<int>(std::min<int64_t>(127, (kLimit - 1) / (nb * 32 * 127)));
            for (int64_t i = 0; i < nb; ++i) {
                w[i].d = 0x4000;
                a[i].d = 0x3400;
                for (auto& q : w[i].qs) q = static_cast<int8_t>(uni(-127, 127));
                for (auto& q : a[i].qs) q = static_cast<int8_t>(uni(-r, r));
            }
            int64_t want = 0;
            for (int64_t i = 0; i < nb; ++i)
                for (int j = 0; j < 32; ++j) want += int64_t{w[i].qs[j]} * a[i].qs[j];
            EXPECT_EQ(vec_dot(GgmlType::Q8_0, w.data(), a.data(), n), static_cast<float>(want) * 0.5f)
                << "Q8_0 n=" << n;
        }
        if (n % 256 != 0) continue;
        const int64_t nb = n / 256;
        auto make_q8k = [&](int r) {
            std::vector<BlockQ8_K> a(nb);
            for (auto& b : a) {
                b.d = 1.0f;
                for (auto& q : b.qs) q = static_cast<int8_t>(uni(-r, r));
                for (int j = 0; j < 16; ++j) {
                    int s = 0;
                    for (int l = 0; l < 16; ++l) s += b.qs[16 * j + l];
                    b.bsums[j] = static_cast<int16_t>(s);
                }
            }
            return a;
        };
        // Codes via dequantization with unit scales: an independent decode of the layout.
        auto int_dot = [&](GgmlType t, const void* w, const std::vector<BlockQ8_K>& a) {
            std::vector<float> wd(static_cast<size_t>(n)), ad(static_cast<size_t>(n));
            dequantize_row(t, w, wd.data(), n);
            dequantize_row(GgmlType::Q8_K, a.data(), ad.data(), n);
            int64_t s = 0;
            for (int64_t i = 0; i < n; ++i) {
                EXPECT_EQ(wd[i], std::trunc(wd[i]));
                s += static_cast<int64_t>(wd[i]) * static_cast<int64_t>(ad[i]);
            }
            return s;
        };
        // ---- Q4_K x Q8_K: d = dmin = 1 (w), d = 1 (a); per block |isum| <= 256*15*63*r
        {
            const int r = static_cast<int>(std::min<int64_t>(127, (kLimit - 1) / (nb * 256 * 16 * 63)));
            ASSERT_GE(r, 1);
            std::vector<BlockQ4_K> w(nb);
            for (auto& b : w) {
                b.d = 0x3c00;
                b.dmin = 0x3c00;
                for (auto& s : b.scales) s = static_cast<uint8_t>(uni(0, 255));
                for (auto& q : b.qs) q = static_cast<uint8_t>(uni(0, 255));
            }
            const auto a = make_q8k(r);
            EXPECT_EQ(vec_dot(GgmlType::Q4_K, w.data(), a.data(), n),
                      static_cast<float>(int_dot(GgmlType::Q4_K, w.data(), a)))
                << "Q4_K n=" << n;
        }
        // ---- Q6_K x Q8_K: d = 1, scales in [-s, s]
        {
            const int s_max = 8;
            const int r = static_cast<int>(std::min<int64_t>(127, (kLimit - 1) / (nb * 256 * 32 * s_max)));
            ASSERT_GE(r, 1);
            std::vector<BlockQ6_K> w(nb);
            for (auto& b : w) {
                b.d = 0x3c00;
                for (auto& s : b.scales) s = static_cast<int8_t>(uni(-s_max, s_max));
                for (auto& q : b.ql) q = static_cast<uint8_t>(uni(0, 255));
                for (auto& q : b.qh) q = static_cast<uint8_t>(uni(0, 255));
            }
            const auto a = make_q8k(r);
            EXPECT_EQ(vec_dot(GgmlType::Q6_K, w.data(), a.data(), n),
                      static_cast<float>(int_dot(GgmlType::Q6_K, w.data(), a)))
                << "Q6_K n=" << n;
        }
    }
    // ---- plain types: small integers
    for (int64_t n : kSizes) {
        std::vector<float> w(static_cast<size_t>(n)), x(static_cast<size_t>(n));
        for (auto& v : w) v = static_cast<float>(uni(-15, 15));
        for (auto& v : x) v = static_cast<float>(uni(-15, 15));
        int64_t want = 0;
        for (int64_t i = 0; i < n; ++i) want += static_cast<int64_t>(w[i]) * static_cast<int64_t>(x[i]);
        for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
            const auto wr = to_row(t, w);
            const auto ar = to_row(t, x);
            EXPECT_EQ(vec_dot(t, wr.data(), ar.data(), n), static_cast<float>(want)) << type_name(t);
        }
    }
}

// Full-range codes and real scales: the result is the int64 integer parts
// times the float block scales, summed in float in block order.
TEST(VecDot, FullRangeMatchesIntegerModel) {
    for (int64_t n : {256, 4096 + 256}) {
        const int64_t nb = n / 256;
        const auto w4 = to_row(GgmlType::Q4_K, gaussian(n, 7));
        const auto w6 = to_row(GgmlType::Q6_K, gaussian(n, 8));
        const auto a = to_row(GgmlType::Q8_K, gaussian(n, 9));
        const auto* b4 = reinterpret_cast<const BlockQ4_K*>(w4.data());
        const auto* b6 = reinterpret_cast<const BlockQ6_K*>(w6.data());
        const auto* ba = reinterpret_cast<const BlockQ8_K*>(a.data());
        float want4 = 0, want6 = 0;
        for (int64_t i = 0; i < nb; ++i) {
            int64_t isum = 0, msum = 0, isum6 = 0;
            for (int e = 0; e < 256; ++e) {
                uint8_t sc, m;
                ref::get_scale_min_k4(e / 32, b4[i].scales, &sc, &m);
                isum += int64_t{sc} * ref::q4_K_code(b4[i], e) * ba[i].qs[e];
                msum += int64_t{m} * ba[i].qs[e];
                isum6 += int64_t{b6[i].scales[e / 16]} * ref::q6_K_code(b6[i], e) * ba[i].qs[e];
            }
            const float d4 = fp16_to_f32(b4[i].d) * ba[i].d, m4 = fp16_to_f32(b4[i].dmin) * ba[i].d;
            want4 += d4 * static_cast<float>(isum) - m4 * static_cast<float>(msum);
            want6 += (fp16_to_f32(b6[i].d) * ba[i].d) * static_cast<float>(isum6);
        }
        EXPECT_EQ(vec_dot(GgmlType::Q4_K, w4.data(), a.data(), n), want4) << n;
        EXPECT_EQ(vec_dot(GgmlType::Q6_K, w6.data(), a.data(), n), want6) << n;
    }
}

TEST(VecDotF32, MatchesDequantizedDot) {
    for (GgmlType t : kWeightTypes) {
        for (int64_t n : kSizes) {
            if (!fits(t, n)) continue;
            const auto w = to_row(t, gaussian(n, 300));
            const auto x = gaussian(n, 301);
            const auto wd = from_row(t, w, n);
            double want = 0, mag = 0;
            for (int64_t i = 0; i < n; ++i) {
                want += static_cast<double>(wd[i]) * x[i];
                mag += std::fabs(static_cast<double>(wd[i]) * x[i]);
            }
            const float got = vec_dot_f32(t, w.data(), x.data(), n);
            EXPECT_NEAR(got, want, 2 * (n + 2) * kU * mag) << type_name(t) << " n=" << n;
            // Same float order as dequantize + sequential float dot.
            float seq = 0;
            for (int64_t i = 0; i < n; ++i) seq += wd[i] * x[i];
            EXPECT_EQ(got, seq) << type_name(t) << " n=" << n;
        }
    }
}

// vec_dot on F16/BF16 rows multiplies activations rounded to that format.
TEST(VecDot, F16ActivationsAreRounded) {
    const int64_t n = 96;
    const auto w = gaussian(n, 11), x = gaussian(n, 12);
    for (GgmlType t : {GgmlType::F16, GgmlType::BF16}) {
        const auto wr = to_row(t, w), ar = to_row(t, x);
        const auto wd = from_row(t, wr, n), ad = from_row(t, ar, n);
        // Float rows are summed in 8 interleaved partial sums, combined pairwise.
        float acc[8] = {};
        for (int64_t i = 0; i < n; ++i) acc[i % 8] += wd[i] * ad[i];
        const float want = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        EXPECT_EQ(vec_dot(t, wr.data(), ar.data(), n), want) << type_name(t);
    }
}
