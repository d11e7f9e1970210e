// The element-wise building blocks of the forward pass (model/ops.h) against their
// formulas evaluated in double precision, on odd sizes and at both ends of the
// input ranges: RMSNorm, RoPE in both pairings (partial rotation, Llama 3 frequency
// factors, LongRoPE attention factor), soft-capping, SiLU and GELU-tanh gates.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "model/ops.h"
#include "util/threadpool.h"

namespace loom {
namespace {

std::vector<float> randn(size_t n, float scale, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

TEST(Ops, RmsNormMatchesFormula) {
    for (int n : {1, 2, 7, 31, 33, 100, 257, 1023}) {
        const int rows = 3;
        const float eps = 1e-5f;
        auto x = randn(size_t(rows) * n, 3.0f, n);
        auto w = randn(size_t(n), 1.0f, n + 1);
        std::vector<float> y(x.size());
        ops::rmsnorm(x.data(), w.data(), y.data(), rows, n, eps);
        for (int r = 0; r < rows; ++r) {
            double ss = 0;
            for (int i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
            const double inv = 1.0 / std::sqrt(ss / n + eps);
            for (int i = 0; i < n; ++i) {
                const double want = x[r * n + i] * inv * w[i];
                ASSERT_NEAR(y[r * n + i], want, 2e-6 * (std::abs(want) + 1e-3)) << "n " << n << " row " << r << " i " << i;
            }
        }
        // In place (the post-norms normalize their own input).
        std::vector<float> z = x;
        ops::rmsnorm(z.data(), w.data(), z.data(), rows, n, eps);
        EXPECT_EQ(z, y) << "n " << n;
    }
}

TEST(Ops, RmsNormEpsilonDominatesTinyInputs) {
    const int n = 5;
    std::vector<float> x(n, 1e-4f), w(n, 1.0f), y(n);
    ops::rmsnorm(x.data(), w.data(), y.data(), 1, n, 1e-2f);
    for (float v : y) EXPECT_NEAR(v, 1e-4 / std::sqrt(1e-8 + 1e-2), 1e-9);
}

// RoPE by its definition: pair (a, b) of frequency i rotated by pos * theta^(-2i/n_rot) / ff[i],
// cos and sin times attn_factor; pairs (2i, 2i+1) (adjacent) or (i, i + n_rot/2) (halves).
std::vector<double> rope_ref(const std::vector<float>& x, int n_heads, int head_dim, int n_rot, int pos, double theta,
                             const std::vector<float>& ff, double attn_factor, ops::RopeMode mode) {
    std::vector<double> y(x.begin(), x.end());
    const int half = n_rot / 2;
    for (int h = 0; h < n_heads; ++h)
        for (int i = 0; i < half; ++i) {
            double freq = std::pow(theta, -2.0 * i / n_rot);
            if (!ff.empty()) freq /= ff[i];
            const double a = pos * freq, c = std::cos(a) * attn_factor, s = std::sin(a) * attn_factor;
            const int i0 = h * head_dim + (mode == ops::RopeMode::Neox ? i : 2 * i);
            const int i1 = h * head_dim + (mode == ops::RopeMode::Neox ? i + half : 2 * i + 1);
            y[i0] = x[i0] * c - x[i1] * s;
            y[i1] = x[i0] * s + x[i1] * c;
        }
    return y;
}

TEST(Ops, RopeMatchesDefinitionInBothPairings) {
    struct Case {
        int n_heads, head_dim, n_rot;
        float theta;
        bool factors;
        float attn_factor;
    };
    const Case cases[] = {
        {1, 2, 2, 10000, false, 1},      // one pair
        {3, 16, 16, 10000, false, 1},
        {5, 64, 64, 500000, true, 1},    // Llama 3.1: frequency factors
        {4, 96, 96, 10000, true, 1.19f}, // Phi-3 LongRoPE: factors and attention factor
        {2, 80, 32, 10000, false, 1},    // partial rotation: dims past n_rot untouched
        {7, 6, 6, 1e6f, true, 0.5f},
    };
    const std::vector<int32_t> pos = {0, 1, 2, 7, 100, 1023, 4097};
    for (const Case& c : cases)
        for (ops::RopeMode mode : {ops::RopeMode::Adjacent, ops::RopeMode::Neox}) {
            std::vector<float> ff;
            if (c.factors) {
                std::mt19937 rng(c.head_dim);
                for (int i = 0; i < c.n_rot / 2; ++i) ff.push_back(1.0f + float(rng() % 1600) / 100.0f);
            }
            const ops::RopeTable table = ops::rope_table(pos, c.n_rot, c.theta, ff.empty() ? nullptr : ff.data(), c.attn_factor);
            for (size_t t = 0; t < pos.size(); ++t) {
                const auto x = randn(size_t(c.n_heads) * c.head_dim, 1.0f, static_cast<uint32_t>(t * 31 + c.head_dim));
                std::vector<float> y = x;
                ops::rope(y.data(), c.n_heads, c.head_dim, table, static_cast<int>(t), mode);
                const auto want = rope_ref(x, c.n_heads, c.head_dim, c.n_rot, pos[t], c.theta, ff, c.attn_factor, mode);
                // The angle is computed in float: its error grows with the position
                // (measured: at most 0.4 of this bound).
                const double tol = 1e-6 + 2e-7 * pos[t];
                for (size_t i = 0; i < y.size(); ++i) {
                    ASSERT_NEAR(y[i], want[i], tol) << "head_dim " << c.head_dim << " n_rot " << c.n_rot << " mode "
                                                    << int(mode) << " pos " << pos[t] << " i " << i;
                    if (int(i % c.head_dim) >= c.n_rot) {
                        ASSERT_EQ(y[i], x[i]) << "dim past n_rot was changed";
                    }
                }
            }
        }
}

TEST(Ops, RopePositionZeroIsIdentityUpToAttentionFactor) {
    const std::vector<int32_t> pos = {0};
    const auto table = ops::rope_table(pos, 8, 10000, nullptr, 1.25f);
    const auto x = randn(8, 1.0f, 9);
    for (ops::RopeMode mode : {ops::RopeMode::Adjacent, ops::RopeMode::Neox}) {
        std::vector<float> y = x;
        ops::rope(y.data(), 1, 8, table, 0, mode);
        for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(y[i], x[i] * 1.25f);
    }
}

TEST(Ops, SoftcapMatchesFormula) {
    for (float cap : {0.5f, 3.0f, 30.0f, 50.0f}) {
        auto x = randn(1001, 4 * cap, static_cast<uint32_t>(cap * 10));
        x.push_back(1e6f);
        x.push_back(-1e6f);
        x.push_back(0.0f);
        std::vector<float> y = x;
        ops::softcap(y.data(), static_cast<int64_t>(y.size()), cap);
        for (size_t i = 0; i < x.size(); ++i) {
            const double want = cap * std::tanh(double(x[i]) / cap);
            ASSERT_NEAR(y[i], want, 1e-6 * cap) << "cap " << cap << " x " << x[i];
            ASSERT_LE(std::abs(y[i]), cap);
        }
    }
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }
double gelu_tanh(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

// g = act(g) * u, on sizes below and above the threaded cutoff, with extreme inputs.
void check_gate(bool gelu) {
    ThreadPool pool(2);
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(33), int64_t(1000), int64_t(70001)}) {
        auto g = randn(size_t(n), 4.0f, static_cast<uint32_t>(n));
        const auto u = randn(size_t(n), 1.0f, static_cast<uint32_t>(n + 1));
        if (n >= 33) {
            g[3] = 80.0f;  // exp overflow / underflow territory
            g[4] = -80.0f;
            g[5] = 0.0f;
            g[6] = -1e-30f;
        }
        const auto g0 = g;
        if (gelu) ops::gelu_tanh_mul(pool, g.data(), u.data(), n);
        else ops::silu_mul(pool, g.data(), u.data(), n);
        for (int64_t i = 0; i < n; ++i) {
            const double want = (gelu ? gelu_tanh(g0[i]) : silu(g0[i])) * u[i];
            ASSERT_TRUE(std::isfinite(g[i])) << "x " << g0[i];
            ASSERT_NEAR(g[i], want, 1e-6 * std::abs(want) + 5e-8) << (gelu ? "gelu" : "silu") << " n " << n
                                                                    << " x " << g0[i] << " u " << u[i];
        }
    }
}

TEST(Ops, SiluGateMatchesFormula) { check_gate(false); }
TEST(Ops, GeluTanhGateMatchesFormula) { check_gate(true); }

TEST(Ops, AddIsElementwise) {
    auto x = randn(37, 1.0f, 1);
    const auto y = randn(37, 1.0f, 2);
    const auto x0 = x;
    ops::add(x.data(), y.data(), 37);
    for (int i = 0; i < 37; ++i) EXPECT_EQ(x[i], x0[i] + y[i]);
}

}  // namespace
}  // namespace loom
