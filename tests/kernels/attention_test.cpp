// Attention kernels (kernels/attention.h): the scalar reference against a plain
// two-pass softmax in double precision, and every variant this CPU runs against the
// scalar reference, for each cache type, odd head sizes, tile edges and misaligned rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "quant/formats.h"

namespace loom::kernels {
namespace {

struct Case {
    int n_q, head_dim, n_cells;
    GgmlType kt, vt;
    float softcap;
};

// A cache of n_rows cells (rows of head_dim of the given types, stored kOff bytes past
// an aligned boundary), cells listed in a shuffled order, and n_q queries.
// K/V rows start kOff bytes past the buffer's (16-byte aligned) start: off every SIMD
// alignment, but on the rows' own (at most 4 bytes, src/quant/formats.h).
constexpr size_t kOff = 4;

struct CacheSetup {
    std::vector<uint8_t> kbuf, vbuf;
    std::vector<float> q;
    std::vector<int32_t> cells;
    size_t k_stride, v_stride;
    AttnArgs args(const Case& c, float* out) const {
        AttnArgs a;
        a.q = q.data() + 1;  // misaligned
        a.q_stride = c.head_dim;
        a.n_q = c.n_q;
        a.head_dim = c.head_dim;
        a.k_type = c.kt;
        a.v_type = c.vt;
        a.k = kbuf.data() + kOff;
        a.v = vbuf.data() + kOff;
        a.k_stride = k_stride;
        a.v_stride = v_stride;
        a.cells = cells.data();
        a.n_cells = c.n_cells;
        a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
        a.softcap = c.softcap;
        a.out = out;
        a.out_stride = c.head_dim;
        return a;
    }
};

CacheSetup make(const Case& c, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.5f);
    CacheSetup s;
    const int rows = c.n_cells + 5;
    s.k_stride = row_bytes(c.kt, c.head_dim);
    s.v_stride = row_bytes(c.vt, c.head_dim);
    s.kbuf.assign(rows * s.k_stride + kOff, 0);
    s.vbuf.assign(rows * s.v_stride + kOff, 0);
    std::vector<float> row(c.head_dim);
    for (int r = 0; r < rows; ++r) {
        for (float& x : row) x = nd(rng);
        quant::quantize_row(c.kt, row.data(), s.kbuf.data() + kOff + r * s.k_stride, c.head_dim);
        for (float& x : row) x = nd(rng);
        quant::quantize_row(c.vt, row.data(), s.vbuf.data() + kOff + r * s.v_stride, c.head_dim);
    }
    s.q.resize(static_cast<size_t>(c.n_q) * c.head_dim + 1);
    for (float& x : s.q) x = nd(rng);
    for (int i = 0; i < rows; ++i) s.cells.push_back(i);
    std::shuffle(s.cells.begin(), s.cells.end(), rng);
    return s;
}

std::vector<Case> cases() {
    std::vector<Case> out;
    for (GgmlType kt : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0})
        for (GgmlType vt : {GgmlType::F16, GgmlType::F32, GgmlType::Q8_0})
            for (int hd : {16, 32, 40, 96, 128, 7})
                for (int n : {1, 2, 31, 32, 33, 70}) {
                    if ((kt == GgmlType::Q8_0 || vt == GgmlType::Q8_0) && hd % 32 != 0) continue;
                    out.push_back({1 + (hd + n) % 5, hd, n, kt, vt, n % 3 == 0 ? 10.0f : 0.0f});
                }
    return out;
}

std::vector<float> dequant(GgmlType t, const uint8_t* row, int n) {
    std::vector<float> v(n);
    quant::dequantize_row(t, row, v.data(), n);
    return v;
}

TEST(Attention, ScalarMatchesTwoPassSoftmax) {
    for (const Case& c : cases()) {
        SCOPED_TRACE(testing::Message() << "n_q " << c.n_q << " hd " << c.head_dim << " cells " << c.n_cells << " k "
                                        << type_name(c.kt) << " v " << type_name(c.vt));
        const CacheSetup s = make(c, 1);
        std::vector<float> out(static_cast<size_t>(c.n_q) * c.head_dim, -1.0f);
        const AttnArgs a = s.args(c, out.data());
        scalar::kAttention.run(a);
        for (int qi = 0; qi < c.n_q; ++qi) {
            std::vector<double> sc(c.n_cells);
            double mx = -1e300;
            for (int j = 0; j < c.n_cells; ++j) {
                const auto k = dequant(c.kt, a.k + s.cells[j] * a.k_stride, c.head_dim);
                double d = 0;
                for (int i = 0; i < c.head_dim; ++i) d += double(a.q[qi * c.head_dim + i]) * k[i];
                d *= a.scale;
                if (c.softcap > 0) d = c.softcap * std::tanh(d / c.softcap);
                sc[j] = d;
                mx = std::max(mx, d);
            }
            double sum = 0;
            for (double& x : sc) sum += (x = std::exp(x - mx));
            for (int i = 0; i < c.head_dim; ++i) {
                double o = 0;
                for (int j = 0; j < c.n_cells; ++j) o += sc[j] * dequant(c.vt, a.v + s.cells[j] * a.v_stride, c.head_dim)[i];
                ASSERT_NEAR(out[qi * c.head_dim + i], o / sum, 1e-4 * (1 + std::fabs(o / sum)));
            }
        }
    }
}

TEST(Attention, EveryVariantMatchesScalar) {
    int tested = 0;
    for (const AttentionKernel* k : attention_kernels()) {
        if ((k->features & cpu_features()) != k->features) {
            std::printf("[ skipped  ] %s: CPU lacks its features\n", k->name);
            continue;
        }
        ++tested;
        for (const Case& c : cases()) {
            SCOPED_TRACE(testing::Message() << k->name << " n_q " << c.n_q << " hd " << c.head_dim << " cells "
                                            << c.n_cells << " k " << type_name(c.kt) << " v " << type_name(c.vt));
            const CacheSetup s = make(c, 2);
            std::vector<float> ref(static_cast<size_t>(c.n_q) * c.head_dim), got(ref.size() + 1, 7.0f);
            scalar::kAttention.run(s.args(c, ref.data()));
            k->run(s.args(c, got.data() + 1));  // misaligned output
            for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(got[i + 1], ref[i], 1e-5f * (1 + std::fabs(ref[i])));
            ASSERT_EQ(got[0], 7.0f);  // nothing written before the output
        }
    }
    EXPECT_GE(tested, 1);
}

TEST(Attention, NoCellsGivesZeros) {
    const Case c{2, 32, 0, GgmlType::F16, GgmlType::F16, 0};
    const CacheSetup s = make(c, 3);
    for (const AttentionKernel* k : attention_kernels()) {
        if ((k->features & cpu_features()) != k->features) continue;
        std::vector<float> out(64, 5.0f);
        k->run(s.args(c, out.data()));
        for (float x : out) EXPECT_EQ(x, 0.0f) << k->name;
    }
}

TEST(Attention, SelectionFollowsForcedIsa) {
    set_forced_isa("scalar");
    EXPECT_STREQ(select_attention(cpu_features()).isa, "scalar");
    set_forced_isa("auto");
    const AttentionKernel* best = nullptr;
    for (const AttentionKernel* k : attention_kernels())
        if (!best && (k->features & cpu_features()) == k->features) best = k;
    ASSERT_NE(best, nullptr);
    EXPECT_STREQ(select_attention(cpu_features()).name, best->name);
}

}  // namespace
}  // namespace loom::kernels
