// fp16 / bf16 conversions: exhaustive over the 16-bit side, rounding cases on the f32 side.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "quant/formats.h"

using namespace loom::quant;

namespace {

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Value of an fp16 bit pattern computed independently (double arithmetic).
double fp16_value(uint16_t h) {
    const int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
    double v = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
    return sign ? -v : v;
}

}  // namespace

TEST(Fp16, AllValuesRoundTripAndDecodeExactly) {
    for (uint32_t i = 0; i < 65536; ++i) {
        const auto h = static_cast<uint16_t>(i);
        const float f = fp16_to_f32(h);
        const int exp = (h >> 10) & 31, mant = h & 1023;
        if (exp == 31) {
            if (mant == 0)
                EXPECT_TRUE(std::isinf(f)) << std::hex << h;
            else
                EXPECT_TRUE(std::isnan(f)) << std::hex << h;
        } else {
            EXPECT_EQ(static_cast<double>(f), fp16_value(h)) << std::hex << h;
        }
        EXPECT_EQ(std::signbit(f), (h >> 15) != 0) << std::hex << h;
        ASSERT_EQ(f32_to_fp16(f), h) << "round trip of 0x" << std::hex << h;
    }
}

// Every rounding boundary: for each pair of neighbouring finite fp16 values,
// the f32 midpoint rounds to the even one and its f32 neighbours to the nearer.
TEST(Fp16, MidpointsRoundToNearestEven) {
    for (uint32_t h = 0; h < 0x7bff; ++h) {
        for (int s = 0; s < 2; ++s) {
            const auto lo = static_cast<uint16_t>(h | (s << 15));
            const auto hi = static_cast<uint16_t>((h + 1) | (s << 15));
            const double mid_d = (fp16_value(lo) + fp16_value(hi)) / 2;
            const float mid = static_cast<float>(mid_d);
            ASSERT_EQ(static_cast<double>(mid), mid_d);  // exactly representable
            const uint16_t even = (lo & 1) ? hi : lo;
            ASSERT_EQ(f32_to_fp16(mid), even) << std::hex << lo;
            const float toward_lo = std::nextafter(mid, static_cast<float>(fp16_value(lo)));
            const float toward_hi = std::nextafter(mid, static_cast<float>(fp16_value(hi)));
            ASSERT_EQ(f32_to_fp16(toward_lo), lo) << std::hex << lo;
            ASSERT_EQ(f32_to_fp16(toward_hi), hi) << std::hex << lo;
        }
    }
}

TEST(Fp16, SpecialCases) {
    EXPECT_EQ(f32_to_fp16(0.0f), 0x0000);
    EXPECT_EQ(f32_to_fp16(-0.0f), 0x8000);
    EXPECT_EQ(f32_to_fp16(1.0f), 0x3c00);
    EXPECT_EQ(f32_to_fp16(-2.0f), 0xc000);
    EXPECT_EQ(f32_to_fp16(65504.0f), 0x7bff);                       // max finite
    EXPECT_EQ(f32_to_fp16(std::nextafter(65520.0f, 0.0f)), 0x7bff);  // just below the tie
    EXPECT_EQ(f32_to_fp16(65520.0f), 0x7c00);                       // tie to even = inf
    EXPECT_EQ(f32_to_fp16(-1e6f), 0xfc00);
    EXPECT_EQ(f32_to_fp16(INFINITY), 0x7c00);
    EXPECT_EQ(f32_to_fp16(-INFINITY), 0xfc00);
    EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
    EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
    EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie -> even (0)
    EXPECT_EQ(f32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
    EXPECT_EQ(f32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: tie -> 2
    EXPECT_EQ(f32_to_fp16(std::ldexp(5.0f, -25)), 0x0002);  // 2.5 units: tie -> 2
    EXPECT_EQ(f32_to_fp16(1e-10f), 0x0000);
    EXPECT_EQ(f32_to_fp16(-1e-10f), 0x8000);
    EXPECT_EQ(f32_to_fp16(std::numeric_limits<float>::denorm_min()), 0x0000);
    // subnormal that rounds up into the smallest normal
    EXPECT_EQ(f32_to_fp16(std::nextafter(std::ldexp(1.0f, -14), 0.0f)), 0x0400);
    // NaNs stay NaN (never inf), payload's top bits kept
    EXPECT_EQ(f32_to_fp16(from_bits(0x7fc00000)), 0x7e00);
    EXPECT_EQ(f32_to_fp16(from_bits(0xffc00000)), 0xfe00);
    const uint16_t low_payload = f32_to_fp16(from_bits(0x7f800001));
    EXPECT_EQ(low_payload & 0x7c00, 0x7c00);
    EXPECT_NE(low_payload & 0x3ff, 0);
}

#if defined(__x86_64__) || defined(__aarch64__)
// Cross-check against the compiler's own half-precision conversion on random f32s
// (_Float16 on x86; g++ 12 for AArch64 has only __fp16 in C++).
#if defined(__aarch64__)
using Half = __fp16;
#else
using Half = _Float16;
#endif
TEST(Fp16, MatchesCompilerFloat16) {
    std::mt19937 rng(123);
    for (int i = 0; i < 4'000'000; ++i) {
        uint32_t u = rng();
        if (i & 1) u = (u & 0x80000000u) | (0x30000000u + (u % 0x18000000u));  // around fp16's range
        const float f = from_bits(u);
        if (std::isnan(f)) continue;
        const Half h = static_cast<Half>(f);
        uint16_t hb;
        std::memcpy(&hb, &h, 2);
        ASSERT_EQ(f32_to_fp16(f), hb) << std::hex << u;
        ASSERT_EQ(bits(fp16_to_f32(hb)), bits(static_cast<float>(h)));
    }
}
#endif

TEST(Bf16, AllValuesRoundTrip) {
    for (uint32_t i = 0; i < 65536; ++i) {
        const auto h = static_cast<uint16_t>(i);
        const float f = bf16_to_f32(h);
        EXPECT_EQ(bits(f), i << 16);
        if (std::isnan(f)) {
            EXPECT_EQ(f32_to_bf16(f), h | 0x40) << std::hex << h;  // quieted, payload kept
        } else {
            ASSERT_EQ(f32_to_bf16(f), h) << std::hex << h;
        }
    }
}

TEST(Bf16, RoundsToNearestEven) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);       // tie, even is down
    EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(3.0f, -8)), 0x3f82);       // tie, even is up
    EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
    EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -9)), 0x3f80);
    EXPECT_EQ(f32_to_bf16(-1.0f - std::ldexp(3.0f, -8)), 0xbf82);
    EXPECT_EQ(f32_to_bf16(from_bits(0x7f7fffff)), 0x7f80);  // max float rounds to inf
    EXPECT_EQ(f32_to_bf16(from_bits(0x7f7f7fff)), 0x7f7f);
    EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
    EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
    EXPECT_EQ(f32_to_bf16(from_bits(0x00000001)), 0x0000);  // subnormals round like the rest
    EXPECT_EQ(f32_to_bf16(from_bits(0x00008000)), 0x0000);  // tie, even down
    EXPECT_EQ(f32_to_bf16(from_bits(0x00018000)), 0x0002);  // tie, even up
    EXPECT_EQ(f32_to_bf16(from_bits(0x7fa00000)), 0x7fe0);  // signalling NaN -> quiet NaN
    EXPECT_EQ(f32_to_bf16(from_bits(0x7f800001)), 0x7fc0);  // NaN never turns into inf

    // Random values against a double-precision nearest-even reference.
    std::mt19937 rng(7);
    for (int i = 0; i < 1'000'000; ++i) {
        const float f = from_bits(rng());
        if (!std::isfinite(f)) continue;
        const uint16_t lo = static_cast<uint16_t>(bits(f) >> 16);
        const auto hi = static_cast<uint16_t>(lo + 1);
        // Past the largest finite value IEEE rounds as if the exponent were unbounded.
        auto value = [](uint16_t b) {
            return (b & 0x7fff) == 0x7f80 ? std::copysign(std::ldexp(1.0, 128), (b & 0x8000) ? -1.0 : 1.0)
                                          : static_cast<double>(bf16_to_f32(b));
        };
        const double dl = std::fabs(value(lo) - f);
        const double dh = std::fabs(value(hi) - f);
        const uint16_t want = dl < dh ? lo : dh < dl ? hi : ((lo & 1) ? hi : lo);
        ASSERT_EQ(f32_to_bf16(f), want) << std::hex << bits(f);
    }
}

// The row conversion (hardware F16C / FCVTN where there is one) equals f32_to_fp16
// value by value: every f32 exponent with random mantissas (the fp16 subnormal range,
// the overflow edge at 65520, ties), the halfway cases of every fp16 value, infinities,
// and NaNs with assorted payloads (which the portable code keeps), at odd offsets and
// lengths so the vector loop's tail and its NaN fallback both run.
TEST(Fp16, RowConversionEqualsScalar) {
    std::mt19937 rng(11);
    std::vector<float> x;
    for (uint32_t e = 0; e < 256; ++e)
        for (int i = 0; i < 64; ++i) {
            const uint32_t m = i < 4 ? (i == 0 ? 0u : i == 1 ? 0x1000u : i == 2 ? 0x7fffffu : 0x3000u) : rng() & 0x7fffffu;
            x.push_back(from_bits((rng() & 0x80000000u) | (e << 23) | m));
        }
    for (uint32_t h = 0; h < 0x7c00u; ++h) {  // each fp16 value and the f32 halfway above it
        const uint32_t b = bits(fp16_to_f32(static_cast<uint16_t>(h)));
        x.push_back(from_bits(b));
        x.push_back(from_bits(b + (h < 0x400u ? 0u : 0x1000u)));
    }
    for (float v : {65504.0f, 65519.99f, 65520.0f, 1e30f, INFINITY, -INFINITY, 0.0f, -0.0f}) x.push_back(v);
    for (uint32_t payload : {1u, 0x1000u, 0x1fffu, 0x2000u, 0x400000u, 0x7fffffu}) {
        x.push_back(from_bits(0x7f800000u | payload));
        x.push_back(from_bits(0xff800000u | payload));
    }
    std::shuffle(x.begin(), x.end(), rng);
    for (size_t off : {0u, 1u, 3u}) {
        const size_t n = x.size() - off - (off == 1 ? 5 : 0);
        std::vector<uint16_t> got(n);
        f32_to_fp16_row(x.data() + off, got.data(), static_cast<int64_t>(n));
        for (size_t i = 0; i < n; ++i)
            ASSERT_EQ(got[i], f32_to_fp16(x[off + i])) << "f32 0x" << std::hex << bits(x[off + i]);
    }
}
