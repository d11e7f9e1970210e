// IEEE binary16 and bfloat16 conversions, bit-exact and portable (no hardware
// conversion instructions), so every build rounds the same way. f32_to_fp16_row uses
// the hardware conversion where there is one (F16C, NEON FCVTN): it rounds to nearest
// even like f32_to_fp16 for every non-NaN input, and vectors holding a NaN (whose
// payload the hardware would quiet) take the portable path.
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "quant/formats.h"

namespace loom::quant {
namespace {

inline uint32_t f32_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
inline float bits_f32(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

}  // namespace

float fp16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);  // +-0
        // Subnormal: mant * 2^-24. Normalize into an f32 normal.
        uint32_t e = 127 - 14;  // exponent of 2^-14, the subnormal range's unit scale
        while (!(mant & 0x400u)) {
            mant <<= 1;
            --e;
        }
        mant &= 0x3ffu;
        return bits_f32(sign | (e << 23) | (mant << 13));
    }
    if (exp == 31)  // inf / NaN (payload kept, quiet bit untouched)
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    return bits_f32(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

uint16_t f32_to_fp16(float f) {
    const uint32_t u = f32_bits(f);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) {  // NaN: keep the top payload bits, never turn into inf
        uint32_t m = (a >> 13) & 0x3ffu;
        if (m == 0) m = 0x200u;
        return static_cast<uint16_t>(sign | 0x7c00u | m);
    }
    if (a >= 0x477ff000u)  // >= 65520 (incl. inf) rounds to inf
        return static_cast<uint16_t>(sign | 0x7c00u);
    const uint32_t e = a >> 23;
    if (e < 113) {  // below 2^-14: fp16 subnormal or zero, in units of 2^-24
        const uint32_t shift = 126 - e;  // value = m * 2^(e-126) units
        if (shift > 24) return sign;     // < 2^-25 (ties impossible here): rounds to 0
        const uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t q = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal
        return static_cast<uint16_t>(sign | q);
    }
    // Normal: rebias exponent, round the 13 dropped mantissa bits to nearest even.
    uint32_t q = ((e - 112) << 10) | ((a >> 13) & 0x3ffu);
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;  // carry may bump the exponent
    return static_cast<uint16_t>(sign | q);
}

namespace {
void f32_to_fp16_portable(const float* x, uint16_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = f32_to_fp16(x[i]);
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,f16c"))) void f32_to_fp16_f16c(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0) {
            f32_to_fp16_portable(x + i, y + i, 8);
            continue;
        }
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                         _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    f32_to_fp16_portable(x + i, y + i, n - i);
}
bool have_f16c() {
    static const bool f = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    return f;
}
#elif defined(__aarch64__)
void f32_to_fp16_neon(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        if (vminvq_u32(vceqq_f32(v, v)) == 0) {  // a NaN lane
            f32_to_fp16_portable(x + i, y + i, 4);
            continue;
        }
        vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(v)));  // FCVTN: the FPCR rounding, to nearest even
    }
    f32_to_fp16_portable(x + i, y + i, n - i);
}
#endif
}  // namespace

void f32_to_fp16_row(const float* x, uint16_t* y, int64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_f16c()) return f32_to_fp16_f16c(x, y, n);
#elif defined(__aarch64__)
    return f32_to_fp16_neon(x, y, n);
#endif
    f32_to_fp16_portable(x, y, n);
}

float bf16_to_f32(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
    const uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)  // NaN: truncate and force quiet (as ggml)
        return static_cast<uint16_t>((u >> 16) | 0x40u);
    return static_cast<uint16_t>((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

}  // namespace loom::quant
