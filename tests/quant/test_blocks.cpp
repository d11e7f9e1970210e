// Block layouts: dequantization of hand-built blocks, exact reference
// quantizer behaviour, and quantize -> dequantize error bounds.
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "quant/formats.h"
#include "quant/ref.h"

using namespace loom;
using namespace loom::quant;

namespace {

std::vector<float> from_row(GgmlType t, const std::vector<uint8_t>& row, int64_t n) {
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_row(t, row.data(), y.data(), n);
    return y;
}

std::vector<uint8_t> to_row(GgmlType t, const std::vector<float>& x) {
    std::vector<uint8_t> row(row_bytes(t, static_cast<int64_t>(x.size())));
    quantize_row(t, x.data(), row.data(), static_cast<int64_t>(x.size()));
    return row;
}

template <class B>
std::vector<uint8_t> bytes_of(const std::vector<B>& blocks) {
    std::vector<uint8_t> v(blocks.size() * sizeof(B));
    std::memcpy(v.data(), blocks.data(), v.size());
    return v;
}

std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, sigma);
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = nd(rng);
    return x;
}

}  // namespace

// ------------------------------------------------------------------ hand-built blocks
TEST(Blocks, Q4_0HandBuilt) {
    BlockQ4_0 b{};
    b.d = 0x3800;  // 0.5
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    const auto y = from_row(GgmlType::Q4_0, bytes_of(std::vector{b}), 32);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], (j - 8) * 0.5f) << j;            // low nibble -> element j
        EXPECT_EQ(y[j + 16], (7 - j) * 0.5f) << j;       // high nibble -> element j + 16
    }
}

TEST(Blocks, Q8_0HandBuilt) {
    BlockQ8_0 b{};
    b.d = 0x3400;  // 0.25
    for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 128);
    const auto y = from_row(GgmlType::Q8_0, bytes_of(std::vector{b}), 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j * 8 - 128) * 0.25f) << j;
}

TEST(Blocks, Q4_KHandBuilt) {
    const int sc[8] = {1, 2, 3, 4, 33, 45, 63, 17};
    const int mn[8] = {0, 5, 10, 63, 32, 1, 16, 60};
    BlockQ4_K b{};
    b.d = 0x3800;     // 0.5
    b.dmin = 0x3400;  // 0.25
    // 6-bit packing written out by hand: bytes 0-3 scales 0-3 (+ top bits of
    // scales 4-7), bytes 4-7 mins 0-3 (+ top bits of mins 4-7), bytes 8-11
    // low nibbles of scales 4-7 | low nibbles of mins 4-7 << 4.
    for (int j = 0; j < 4; ++j) {
        b.scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
        b.scales[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
        b.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
    auto code = [](int e) {
        const int j = e / 32, l = e % 32, p = j / 2;
        return (j % 2 == 0) ? (l + p) & 15 : (3 * l + p) & 15;
    };
    for (int p = 0; p < 4; ++p)
        for (int l = 0; l < 32; ++l)
            b.qs[32 * p + l] = static_cast<uint8_t>(code(64 * p + l) | (code(64 * p + 32 + l) << 4));
    for (int j = 0; j < 8; ++j) {
        uint8_t s, m;
        ref::get_scale_min_k4(j, b.scales, &s, &m);
        EXPECT_EQ(s, sc[j]);
        EXPECT_EQ(m, mn[j]);
    }
    const auto y = from_row(GgmlType::Q4_K, bytes_of(std::vector{b}), 256);
    for (int e = 0; e < 256; ++e) {
        const int j = e / 32;
        EXPECT_EQ(y[e], 0.5f * sc[j] * code(e) - 0.25f * mn[j]) << e;
        EXPECT_EQ(ref::q4_K_code(b, e), code(e));
    }
    // set_scale_min_k4 packs the same bytes.
    uint8_t packed[12] = {};
    for (int j = 0; j < 8; ++j)
        ref::set_scale_min_k4(j, packed, static_cast<uint8_t>(sc[j]), static_cast<uint8_t>(mn[j]));
    EXPECT_EQ(std::memcmp(packed, b.scales, 12), 0);
}

TEST(Blocks, Q6_KHandBuilt) {
    BlockQ6_K b{};
    b.d = 0x3000;  // 0.125
    for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(j * 3 - 20);
    auto code = [](int e) { return (e * 7) % 64 - 32; };
    // ggml layout: per half h, lane l: four elements l, l+32, l+64, l+96.
    for (int h = 0; h < 2; ++h) {
        for (int l = 0; l < 32; ++l) {
            const int q1 = code(128 * h + l) + 32, q2 = code(128 * h + l + 32) + 32;
            const int q3 = code(128 * h + l + 64) + 32, q4 = code(128 * h + l + 96) + 32;
            b.ql[64 * h + l] = static_cast<uint8_t>((q1 & 15) | ((q3 & 15) << 4));
            b.ql[64 * h + l + 32] = static_cast<uint8_t>((q2 & 15) | ((q4 & 15) << 4));
            b.qh[32 * h + l] =
                static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
    const auto y = from_row(GgmlType::Q6_K, bytes_of(std::vector{b}), 256);
    for (int e = 0; e < 256; ++e) {
        EXPECT_EQ(y[e], 0.125f * (e / 16 * 3 - 20) * code(e)) << e;
        EXPECT_EQ(ref::q6_K_code(b, e), code(e));
    }
    uint8_t u[256];
    ref::q6_K_codes(b, u);
    for (int e = 0; e < 256; ++e) EXPECT_EQ(u[e], code(e) + 32) << e;
}

TEST(Blocks, Q6_KBlockDecodeMatchesPerElementOnRandomBytes) {
    uint32_t s = 12345;
    for (int rep = 0; rep < 64; ++rep) {
        BlockQ6_K b{};
        auto* raw = reinterpret_cast<uint8_t*>(&b);
        for (size_t i = 0; i < sizeof b; ++i) raw[i] = static_cast<uint8_t>((s = s * 1664525u + 1013904223u) >> 24);
        uint8_t u[256];
        ref::q6_K_codes(b, u);
        for (int e = 0; e < 256; ++e) ASSERT_EQ(int{u[e]}, ref::q6_K_code(b, e) + 32) << "rep " << rep << " e " << e;
    }
}

TEST(Blocks, Q8_KHandBuilt) {
    BlockQ8_K b{};
    b.d = -0.75f;
    for (int j = 0; j < 256; ++j) b.qs[j] = static_cast<int8_t>(j - 128);
    const auto y = from_row(GgmlType::Q8_K, bytes_of(std::vector{b}), 256);
    for (int j = 0; j < 256; ++j) EXPECT_EQ(y[j], -0.75f * (j - 128));
}

TEST(Blocks, PlainTypes) {
    const std::vector<uint16_t> h = {0x3c00, 0xc000, 0x0001, 0x7bff};
    std::vector<uint8_t> hb(8);
    std::memcpy(hb.data(), h.data(), 8);
    auto y = from_row(GgmlType::F16, hb, 4);
    EXPECT_EQ(y, (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24), 65504.0f}));
    y = from_row(GgmlType::BF16, hb, 4);
    EXPECT_EQ(y[0], 0.0078125f);  // 0x3c00 as bf16 is 2^-7
    EXPECT_EQ(y[1], -2.0f);      // 0xc000 is -2 in both
    const std::vector<float> x = {1.5f, -3.25f, 1e-30f, 7.0f};
    EXPECT_EQ(from_row(GgmlType::F32, to_row(GgmlType::F32, x), 4), x);
}

// ------------------------------------------------------------------ reference quantizers, exact cases
TEST(Quantize, Q8_0RoundsHalfAwayFromZero) {
    std::vector<float> x(32, 0.0f);
    x[0] = 127.0f;  // amax 127 -> d = 1
    x[1] = 2.5f;
    x[2] = -2.5f;
    x[3] = 3.5f;
    x[4] = 0.49f;
    x[5] = -126.6f;
    const auto row = to_row(GgmlType::Q8_0, x);
    BlockQ8_0 b;
    std::memcpy(&b, row.data(), sizeof b);
    EXPECT_EQ(b.d, 0x3c00);
    EXPECT_EQ(b.qs[0], 127);
    EXPECT_EQ(b.qs[1], 3);
    EXPECT_EQ(b.qs[2], -3);
    EXPECT_EQ(b.qs[3], 4);
    EXPECT_EQ(b.qs[4], 0);
    EXPECT_EQ(b.qs[5], -127);
    // amax / 127 is rounded to fp16 for storage, but quantization uses the float d.
    x.assign(32, 0.0f);
    x[7] = -1.0f;
    x[8] = 0.5f;
    const auto r2 = to_row(GgmlType::Q8_0, x);
    std::memcpy(&b, r2.data(), sizeof b);
    EXPECT_EQ(b.d, f32_to_fp16(1.0f / 127));
    EXPECT_EQ(b.qs[7], -127);
    EXPECT_EQ(b.qs[8], 64);  // 63.5 -> 64
}

TEST(Quantize, Q4_0SignedMaxAndTruncation) {
    std::vector<float> x(32, 0.0f);
    x[0] = -8.0f;  // signed max -8 -> d = 1
    x[1] = 0.5f;   // 9.0 -> 9
    x[2] = 0.49f;  // 8.99 -> 8
    x[3] = -0.5f;  // 8.0 -> 8
    x[4] = 7.9f;   // 16.4 -> 16 -> clamped 15
    x[5] = -7.6f;  // 0.9 -> 0
    x[17] = 3.0f;  // high nibble of byte 1
    const auto row = to_row(GgmlType::Q4_0, x);
    BlockQ4_0 b;
    std::memcpy(&b, row.data(), sizeof b);
    EXPECT_EQ(b.d, 0x3c00);
    auto q = [&](int e) { return e < 16 ? (b.qs[e] & 15) : (b.qs[e - 16] >> 4); };
    EXPECT_EQ(q(0), 0);
    EXPECT_EQ(q(1), 9);
    EXPECT_EQ(q(2), 8);
    EXPECT_EQ(q(3), 8);
    EXPECT_EQ(q(4), 15);
    EXPECT_EQ(q(5), 0);
    EXPECT_EQ(q(17), 11);
    // Positive signed max: d negative.
    x.assign(32, 1.0f);
    x[9] = 4.0f;
    const auto r2 = to_row(GgmlType::Q4_0, x);
    std::memcpy(&b, r2.data(), sizeof b);
    EXPECT_EQ(fp16_to_f32(b.d), -0.5f);
    EXPECT_EQ(q(9), 0);      // 4 / -0.5 = -8 -> code 0
    EXPECT_EQ(q(0), 6);      // 1 / -0.5 = -2 -> 6.5 -> 6
}

TEST(Quantize, Q8_KSignedMaxNearestEvenAndBsums) {
    std::vector<float> x(256, 0.0f);
    x[10] = 127.0f;  // positive max -> iscale = -1, d = -1
    x[0] = 2.5f;     // -2.5 -> -2 (ties to even)
    x[1] = 3.5f;     // -3.5 -> -4
    x[2] = -1.5f;    // 1.5 -> 2
    x[255] = -100.0f;
    const auto row = to_row(GgmlType::Q8_K, x);
    BlockQ8_K b;
    std::memcpy(&b, row.data(), sizeof b);
    EXPECT_EQ(b.d, -1.0f);
    EXPECT_EQ(b.qs[10], -127);
    EXPECT_EQ(b.qs[0], -2);
    EXPECT_EQ(b.qs[1], -4);
    EXPECT_EQ(b.qs[2], 2);
    EXPECT_EQ(b.qs[255], 100);
    for (int j = 0; j < 16; ++j) {
        int s = 0;
        for (int l = 0; l < 16; ++l) s += b.qs[16 * j + l];
        EXPECT_EQ(b.bsums[j], s);
    }
    EXPECT_EQ(b.bsums[0], -2 - 4 + 2 - 127);
    EXPECT_EQ(ref::nearest_int(0.5f), 0);
    EXPECT_EQ(ref::nearest_int(1.5f), 2);
    EXPECT_EQ(ref::nearest_int(-2.5f), -2);
    EXPECT_EQ(ref::nearest_int(-2.51f), -3);
}

// Q5_K by hand: code 0..31 of element e is the nibble (as Q4_K) plus bit j = e / 32 of
// qh[e % 32] as bit 4; x = d * sc_j * code - dmin * m_j.
TEST(Blocks, Q5_KHandBuilt) {
    BlockQ5_K b{};
    b.d = f32_to_fp16(0.5f);
    b.dmin = f32_to_fp16(0.25f);
    for (int j = 0; j < 8; ++j) ref::set_scale_min_k4(j, b.scales, static_cast<uint8_t>(j + 1), static_cast<uint8_t>(2 * j));
    for (int e = 0; e < 256; ++e) {
        const int code = (e * 7 + 3) % 32, j = e / 32, l = e % 32;
        uint8_t& byte = b.qs[32 * (j / 2) + l];
        byte = static_cast<uint8_t>((j & 1) ? (byte & 0x0F) | ((code & 15) << 4) : (byte & 0xF0) | (code & 15));
        if (code & 16) b.qh[l] = static_cast<uint8_t>(b.qh[l] | (1 << j));
    }
    const auto y = from_row(GgmlType::Q5_K, bytes_of(std::vector{b}), 256);
    for (int e = 0; e < 256; ++e) {
        const int code = (e * 7 + 3) % 32, j = e / 32;
        ASSERT_EQ(ref::q5_K_code(b, e), code) << e;
        ASSERT_FLOAT_EQ(y[e], 0.5f * (j + 1) * code - 0.25f * (2 * j)) << e;
    }
}

TEST(Quantize, ZerosGiveZeros) {
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q8_0,
                       GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K}) {
        const std::vector<float> x(512, 0.0f);
        const auto y = from_row(t, to_row(t, x), 512);
        for (float v : y) ASSERT_EQ(v, 0.0f) << type_name(t);
    }
}

// ------------------------------------------------------------------ error bounds
namespace {

struct Err { double max_abs = 0, rms = 0, rms_x = 0; };

Err error_of(const std::vector<float>& x, const std::vector<float>& y) {
    Err e;
    for (size_t i = 0; i < x.size(); ++i) {
        const double d = static_cast<double>(x[i]) - y[i];
        e.max_abs = std::max(e.max_abs, std::fabs(d));
        e.rms += d * d;
        e.rms_x += static_cast<double>(x[i]) * x[i];
    }
    e.rms = std::sqrt(e.rms / x.size());
    e.rms_x = std::sqrt(e.rms_x / x.size());
    return e;
}

}  // namespace

TEST(Quantize, Q8_0ErrorWithinHalfStep) {
    auto x = gaussian(4096, 1, 3.0f);
    x[100] = 40.0f;  // an outlier
    const auto row = to_row(GgmlType::Q8_0, x);
    const auto y = from_row(GgmlType::Q8_0, row, 4096);
    const auto* b = reinterpret_cast<const BlockQ8_0*>(row.data());
    for (int i = 0; i < 4096; ++i) {
        const float d = fp16_to_f32(b[i / 32].d);
        ASSERT_LE(std::fabs(x[i] - y[i]), 0.5f * d + 127 * d * 0x1p-11f) << i;
    }
    EXPECT_LT(error_of(x, y).rms / error_of(x, y).rms_x, 0.01);
}

TEST(Quantize, Q4_0ErrorWithinOneStep) {
    const auto x = gaussian(4096, 2);
    const auto row = to_row(GgmlType::Q4_0, x);
    const auto y = from_row(GgmlType::Q4_0, row, 4096);
    const auto* b = reinterpret_cast<const BlockQ4_0*>(row.data());
    for (int i = 0; i < 4096; ++i) {
        const float d = std::fabs(fp16_to_f32(b[i / 32].d));
        ASSERT_LE(std::fabs(x[i] - y[i]), d * 1.01f) << i;  // clamp at +7d costs up to one step
    }
    const Err e = error_of(x, y);
    EXPECT_LT(e.rms / e.rms_x, 0.12);
}

TEST(Quantize, Q8_KErrorWithinHalfStep) {
    const auto x = gaussian(4096, 3, 10.0f);
    const auto row = to_row(GgmlType::Q8_K, x);
    const auto y = from_row(GgmlType::Q8_K, row, 4096);
    const auto* b = reinterpret_cast<const BlockQ8_K*>(row.data());
    for (int i = 0; i < 4096; ++i) {
        const float d = std::fabs(b[i / 256].d);
        ASSERT_LE(std::fabs(x[i] - y[i]), 0.5f * d * 1.001f + 1e-6f * std::fabs(x[i])) << i;
    }
    for (int i = 0; i < 16; ++i) {
        for (int j = 0; j < 16; ++j) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += b[i].qs[16 * j + l];
            ASSERT_EQ(b[i].bsums[j], s);
        }
    }
}

TEST(Quantize, KQuantsErrorBounds) {
    // Measured rel. RMS: Q4_K ~0.075, Q5_K ~0.037, Q6_K ~0.02; worst element / block range: ~0.033, ~0.017, ~0.014.
    struct Case { GgmlType t; double max_rel_rms; float max_err_of_range; };
    for (const Case c : {Case{GgmlType::Q4_K, 0.09, 0.05f}, Case{GgmlType::Q5_K, 0.045, 0.025f},
                         Case{GgmlType::Q6_K, 0.03, 0.02f}}) {
        for (uint32_t seed : {4u, 5u}) {
            auto x = gaussian(256 * 8, seed, seed == 4 ? 1.0f : 0.02f);
            if (seed == 5) {  // shifted and with outliers
                for (auto& v : x) v += 0.01f;
                x[300] = 0.5f;
                x[1000] = -0.4f;
            }
            const auto y = from_row(c.t, to_row(c.t, x), static_cast<int64_t>(x.size()));
            const Err e = error_of(x, y);
            EXPECT_LT(e.rms / e.rms_x, c.max_rel_rms) << type_name(c.t) << " seed " << seed;
            // No element is off by more than a small fraction of its block's range.
            for (size_t i = 0; i < x.size(); i += 256) {
                float lo = x[i], hi = x[i];
                for (size_t j = i; j < i + 256; ++j) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
                for (size_t j = i; j < i + 256; ++j)
                    ASSERT_LE(std::fabs(x[j] - y[j]), (hi - lo) * c.max_err_of_range)
                        << type_name(c.t) << " " << j;
            }
        }
    }
}

TEST(Quantize, FloatFormatsRelativeError) {
    const auto x = gaussian(1024, 6, 5.0f);
    const auto h = from_row(GgmlType::F16, to_row(GgmlType::F16, x), 1024);
    const auto b = from_row(GgmlType::BF16, to_row(GgmlType::BF16, x), 1024);
    for (int i = 0; i < 1024; ++i) {
        if (std::fabs(x[i]) > 1e-4f) {
            ASSERT_LE(std::fabs(x[i] - h[i]), std::fabs(x[i]) * 0x1p-11f);
        }
        ASSERT_LE(std::fabs(x[i] - b[i]), std::fabs(x[i]) * 0x1p-8f);
        ASSERT_EQ(h[i], fp16_to_f32(f32_to_fp16(x[i])));
        ASSERT_EQ(b[i], bf16_to_f32(f32_to_bf16(x[i])));
    }
}

TEST(Quantize, SupportAndArguments) {
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q8_0,
                       GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K})
        EXPECT_TRUE(supported(t)) << type_name(t);
    for (GgmlType t : {GgmlType::Q4_1, GgmlType::Q3_K, GgmlType::IQ4_NL, GgmlType::Q4_0_4_8})
        EXPECT_FALSE(supported(t)) << type_name(t);
    EXPECT_EQ(act_type(GgmlType::Q4_0), GgmlType::Q8_0);
    EXPECT_EQ(act_type(GgmlType::Q8_0), GgmlType::Q8_0);
    EXPECT_EQ(act_type(GgmlType::Q4_0_4_4), GgmlType::Q8_0);
    EXPECT_EQ(act_type(GgmlType::Q4_0_4_8), GgmlType::Q8_0);
    EXPECT_EQ(act_type(GgmlType::Q4_0_8_8), GgmlType::Q8_0);
    EXPECT_EQ(act_type(GgmlType::Q4_K), GgmlType::Q8_K);
    EXPECT_EQ(act_type(GgmlType::Q6_K), GgmlType::Q8_K);
    EXPECT_EQ(act_type(GgmlType::F16), GgmlType::F16);
    EXPECT_EQ(act_type(GgmlType::BF16), GgmlType::BF16);
    EXPECT_EQ(act_type(GgmlType::F32), GgmlType::F32);

    std::vector<float> x(64, 1.0f), y(64);
    std::vector<uint8_t> buf(1024);
    EXPECT_THROW(quantize_row(GgmlType::Q4_0, x.data(), buf.data(), 48), std::invalid_argument);
    EXPECT_THROW(dequantize_row(GgmlType::Q4_K, buf.data(), y.data(), 64), std::invalid_argument);
    EXPECT_THROW(dequantize_row(GgmlType::Q3_K, buf.data(), y.data(), 256), std::invalid_argument);
    EXPECT_EQ(act_type(GgmlType::Q5_K), GgmlType::Q8_K);
    EXPECT_THROW(vec_dot(GgmlType::Q4_1, buf.data(), buf.data(), 32), std::invalid_argument);
}
