// Q6_K weights x Q8_K activations with NEON SMMLA (Armv8.6 i8mm), on the 4-row x
// 8-byte interleaved Q6_K layout of arm_common.h:
//   matmul_f32_q6_Kx4x8_q8_K_i8mm
// Codes rebuilt unsigned as in the dotprod kernel; activation pairs prepared once per
// ops::matmul_n call (k6_pairs), so one SMMLA adds a 2x2 tile [t0 r0, t0 r1, t1 r0, t1 r1]. Each
// sub-block's tiles start from -32 bsum_j of their activation row, which makes them
// <q, a> exactly; times the rows' int8 scales in that lane order into isum. Per block
// and lane: acc = fma(isum, d_w * d_a, acc) -- the contract. An odd last activation
// row goes to the dotprod kernel (same layout, same exact sums, same float step), so
// GEMM rows equal GEMV exactly.
#include <arm_neon.h>

#include <cstring>

#include "kernels/arm/arm_common.h"
#include "kernels/arm/arm_kernels.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

constexpr int kRows = 4;
constexpr int kMaxPairs = 2;

inline float32x4_t zip1_64(float32x4_t a, float32x4_t b) {
    return vreinterpretq_f32_f64(vzip1q_f64(vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(b)));
}
inline float32x4_t zip2_64(float32x4_t a, float32x4_t b) {
    return vreinterpretq_f32_f64(vzip2q_f64(vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(b)));
}
inline int32x4_t zip1_64(int32x4_t a, int32x4_t b) {
    return vreinterpretq_s32_s64(vzip1q_s64(vreinterpretq_s64_s32(a), vreinterpretq_s64_s32(b)));
}
inline int32x4_t zip2_64(int32x4_t a, int32x4_t b) {
    return vreinterpretq_s32_s64(vzip2q_s64(vreinterpretq_s64_s32(a), vreinterpretq_s64_s32(b)));
}

// The scales of sub-block j for rows 0..3 as int32 lanes (bytes 4j..4j+3).
inline int32x4_t scales(const int8x16_t* S, int j) {
    const int8x16_t s = S[j / 4];
    const int16x8_t w = (j & 2) ? vmovl_high_s8(s) : vmovl_s8(vget_low_s8(s));
    return (j & 1) ? vmovl_high_s16(w) : vmovl_s16(vget_low_s16(w));
}

// Codes of quarter k of half h, as in the dotprod kernel.
inline void codes(const uint8_t* blk, int h, int k, int8x16_t* W) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m30 = vdupq_n_u8(0x30);
    const uint8_t* ql = blk + 72 + 128 * (2 * h + (k & 1));
    const uint8_t* qh = blk + 584 + 128 * h;
    for (int v = 0; v < 8; ++v) {
        const uint8x16_t raw = vld1q_u8(ql + 16 * v);
        const uint8x16_t lo = k < 2 ? vandq_u8(raw, m4) : vshrq_n_u8(raw, 4);
        const uint8x16_t hb = vshlq_u8(vld1q_u8(qh + 16 * v), vdupq_n_s8(static_cast<int8_t>(4 - 2 * k)));
        W[v] = vreinterpretq_s8_u8(vbslq_u8(m30, hb, lo));
    }
}

// Rows 0..3 of a group x NP prepared activation pairs, all blocks. out[2p] / out[2p+1]:
// lanes [t0 r0, t0 r1, t1 r0, t1 r1] / [t0 r2, t0 r3, t1 r2, t1 r3] of pair p.
template <int NP>
void tile(const uint8_t* wg, const uint8_t* pairs, int64_t nb, float32x4_t* out) {
    const size_t pair_bytes = kQ6PairBlock * static_cast<size_t>(nb);
    float32x4_t acc[2 * NP];
    for (int i = 0; i < 2 * NP; ++i) acc[i] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
        LOOM_MCA_BEGIN("smmla", 2 * NP, kRows, 256, 210);
        const uint8_t* blk = wg + b * kQ6GroupBlock;
        const uint8_t* pb = pairs + b * kQ6PairBlock;
        int8x16_t S[4];
        for (int i = 0; i < 4; ++i) S[i] = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 8 + 16 * i));
        int32x4_t is[2 * NP];
        for (int i = 0; i < 2 * NP; ++i) is[i] = vdupq_n_s32(0);
#pragma GCC unroll 8
        for (int hk = 0; hk < 8; ++hk) {
            const int h = hk / 4, k = hk % 4;
            int8x16_t W[8];
            codes(blk, h, k, W);
            for (int half = 0; half < 2; ++half) {
                const int j = 8 * h + 2 * k + half;
                const int32x4_t sc = scales(S, j);
                const int32x4_t sc01 = zip1_64(sc, sc), sc23 = zip2_64(sc, sc);
                for (int p = 0; p < NP; ++p) {
                    const uint8_t* pp = pb + p * pair_bytes;
                    const int8_t* a = reinterpret_cast<const int8_t*>(pp + 64 * (4 * h + k) + 32 * half);
                    const int32x4_t bias = vld1q_s32(reinterpret_cast<const int32_t*>(pp + 512 + 16 * j));
                    const int8x16_t A0 = vld1q_s8(a), A1 = vld1q_s8(a + 16);
                    int32x4_t s01 = vmmlaq_s32(bias, A0, W[4 * half]);
                    int32x4_t s23 = vmmlaq_s32(bias, A0, W[4 * half + 1]);
                    s01 = vmmlaq_s32(s01, A1, W[4 * half + 2]);
                    s23 = vmmlaq_s32(s23, A1, W[4 * half + 3]);
                    is[2 * p] = vmlaq_s32(is[2 * p], s01, sc01);
                    is[2 * p + 1] = vmlaq_s32(is[2 * p + 1], s23, sc23);
                }
            }
        }
        const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(blk)));
        const float32x4_t dw01 = zip1_64(dw, dw), dw23 = zip2_64(dw, dw);
        for (int p = 0; p < NP; ++p) {
            const float32x4_t da = vld1q_f32(reinterpret_cast<const float*>(pb + p * pair_bytes + 768));
            acc[2 * p] = vfmaq_f32(acc[2 * p], vcvtq_f32_s32(is[2 * p]), vmulq_f32(dw01, da));
            acc[2 * p + 1] = vfmaq_f32(acc[2 * p + 1], vcvtq_f32_s32(is[2 * p + 1]), vmulq_f32(dw23, da));
        }
        LOOM_MCA_END();
    }
    for (int i = 0; i < 2 * NP; ++i) out[i] = acc[i];
}

void matmul(const uint8_t* w, const uint8_t* act, size_t arb, const uint8_t* prep, float* y, int64_t ldy,
            int64_t n_in, int64_t n_out, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / quant::QK_K;
    const size_t group_bytes = kQ6GroupBlock * static_cast<size_t>(nb);
    const size_t pair_bytes = kQ6PairBlock * static_cast<size_t>(nb);
    const int64_t T2 = T / 2 * 2;  // rows taken in pairs; an odd last one below
    if (T2 > 0) {
        for (int64_t t0 = 0; t0 < T2; t0 += 2 * kMaxPairs) {
            const int np = T2 - t0 < 2 * kMaxPairs ? static_cast<int>(T2 - t0) / 2 : kMaxPairs;
            const uint8_t* scratch = prep + static_cast<size_t>(t0 / 2) * pair_bytes;
            for (int64_t og = o0; og < o1; og += kRows) {
                const uint8_t* wg = w + (og / kRows) * group_bytes;
                float32x4_t r[2 * kMaxPairs];
                if (np == 1) tile<1>(wg, scratch, nb, r);
                else tile<2>(wg, scratch, nb, r);
                const int rows = o1 - og < kRows ? static_cast<int>(o1 - og) : kRows;
                for (int p = 0; p < np; ++p) {
                    float tmp[2][4];
                    vst1q_f32(tmp[0], zip1_64(r[2 * p], r[2 * p + 1]));  // t0: rows 0..3
                    vst1q_f32(tmp[1], zip2_64(r[2 * p], r[2 * p + 1]));  // t1
                    for (int hh = 0; hh < 2; ++hh) {
                        float* dst = y + (t0 + 2 * p + hh) * ldy + og;
                        if (rows == kRows) vst1q_f32(dst, vld1q_f32(tmp[hh]));
                        else for (int i = 0; i < rows; ++i) dst[i] = tmp[hh][i];
                    }
                }
            }
        }
    }
    // k6_pairs prepared the odd last row as the dotprod kernel does (k6_rows), at pair T2 / 2.
    if (T2 < T)
        kMatmulQ6_Kx4x8Dotprod.matmul(w, act + T2 * arb, arb, prep + static_cast<size_t>(T2 / 2) * pair_bytes,
                                      y + T2 * ldy, ldy, n_in, n_out, o0, o1, 1);
}

}  // namespace

const MatmulKernel kMatmulQ6_Kx4x8I8mm = {
    "matmul_f32_q6_Kx4x8_q8_K_i8mm", "i8mm", kNEON | kDOTPROD | kI8MM, GgmlType::Q6_K, GgmlType::Q8_K, kRows,
    q6_K_x4_size, pack_q6_K_x4, quantize_q8_K, matmul, 2, k6_pairs_size, k6_pairs};

}  // namespace loom::kernels::arm
