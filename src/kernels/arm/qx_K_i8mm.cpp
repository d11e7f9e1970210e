// Q4_K and Q5_K weights x Q8_K activations with NEON SMMLA (Armv8.6 i8mm), on the
// 4-row x 8-byte interleaved layout of arm_common.h:
//   matmul_f32_q4_Kx4x8_q8_K_i8mm
//   matmul_f32_q5_Kx4x8_q8_K_i8mm
// A 16-byte weight vector is a 2x8 tile (8 codes of each of 2 rows); activations are
// taken in pairs of rows, prepared once per ops::matmul_n call as 2x8 tiles (k_pairs), so one
// SMMLA adds a 2x2 int32 tile [t0 r0, t0 r1, t1 r0, t1 r1]. The tiles run on through
// a block; after each sub-block of 32 they are multiplied by the rows' scale
// differences (arm_common.h) in that lane order into isum; msum is two SMMLAs of the mins with the split sub-block sums.
// Per block and lane: acc = fma(isum, d_w * d_a, acc), acc = fms(msum, dmin_w * d_a,
// acc) -- the contract. An odd last activation row goes to the dotprod kernel (same
// layout, same exact sums, same float steps), so GEMM rows equal GEMV exactly.
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

// The scale differences of sub-block j for rows 0..3 as int32 lanes (bytes 4j..4j+3).
inline int32x4_t scales(int8x16_t s0, int8x16_t s1, int j) {
    const int8x16_t s = j < 4 ? s0 : s1;
    const int16x8_t w = (j & 2) ? vmovl_high_s8(s) : vmovl_s8(vget_low_s8(s));
    return (j & 1) ? vmovl_high_s16(w) : vmovl_s16(vget_low_s16(w));
}

// Rows 0..3 of a group x NP prepared activation pairs, all blocks. out[2p] / out[2p+1]:
// lanes [t0 r0, t0 r1, t1 r0, t1 r1] / [t0 r2, t0 r3, t1 r2, t1 r3] of pair p.
template <bool kQ5, int NP>
void tile(const uint8_t* wg, const uint8_t* pairs, int64_t nb, float32x4_t* out) {
    constexpr size_t kWBlock = kQ5 ? kKGroupBlockQ5 : kKGroupBlockQ4;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m10 = vdupq_n_u8(0x10);
    const size_t pair_bytes = kKPairBlock * static_cast<size_t>(nb);
    float32x4_t acc[2 * NP];
    for (int i = 0; i < 2 * NP; ++i) acc[i] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
        LOOM_MCA_BEGIN("smmla", 2 * NP, kRows, 256, kQ5 ? 176 : 144);  // weight bytes: the plain block
        const uint8_t* blk = wg + b * kWBlock;
        const uint8_t* pb = pairs + b * kKPairBlock;
        const int8x16_t s0 = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 16)), s1 = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 32));
        int32x4_t is[2 * NP], run[2 * NP];  // run: the SMMLA sums, running through the block
        for (int i = 0; i < 2 * NP; ++i) is[i] = run[i] = vdupq_n_s32(0);
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            const uint8_t* q = blk + 80 + 128 * (j / 2);
            int8x16_t W[8];
            for (int v = 0; v < 8; ++v) {
                const uint8x16_t raw = vld1q_u8(q + 16 * v);
                uint8x16_t c = (j & 1) ? vshrq_n_u8(raw, 4) : vandq_u8(raw, m4);
                if constexpr (kQ5) {
                    const uint8x16_t h = vshlq_u8(vld1q_u8(blk + 592 + 16 * v), vdupq_n_s8(static_cast<int8_t>(4 - j)));
                    c = vbslq_u8(m10, h, c);
                }
                W[v] = vreinterpretq_s8_u8(c);
            }
            const int32x4_t sc = scales(s0, s1, j);  // rows 0..3
            const int32x4_t sc01 = zip1_64(sc, sc), sc23 = zip2_64(sc, sc);
            for (int p = 0; p < NP; ++p) {
                const int8_t* a = reinterpret_cast<const int8_t*>(pb + p * pair_bytes + 64 * j);
                for (int k = 0; k < 4; ++k) {
                    const int8x16_t A = vld1q_s8(a + 16 * k);
                    run[2 * p] = vmmlaq_s32(run[2 * p], A, W[2 * k]);
                    run[2 * p + 1] = vmmlaq_s32(run[2 * p + 1], A, W[2 * k + 1]);
                }
                is[2 * p] = vmlaq_s32(is[2 * p], run[2 * p], sc01);
                is[2 * p + 1] = vmlaq_s32(is[2 * p + 1], run[2 * p + 1], sc23);
            }
        }
        const float16x8_t dd = vreinterpretq_f16_u8(vld1q_u8(blk));
        const float32x4_t dw = vcvt_f32_f16(vget_low_f16(dd)), dm = vcvt_high_f32_f16(dd);
        const float32x4_t dw01 = zip1_64(dw, dw), dw23 = zip2_64(dw, dw);
        const float32x4_t dm01 = zip1_64(dm, dm), dm23 = zip2_64(dm, dm);
        const int8x16_t M01 = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 48));
        const int8x16_t M23 = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 64));
        for (int p = 0; p < NP; ++p) {
            const uint8_t* s = pb + p * pair_bytes;
            const int8x16_t bh = vld1q_s8(reinterpret_cast<const int8_t*>(s + 512));
            const int8x16_t bl = vld1q_s8(reinterpret_cast<const int8_t*>(s + 528));
            int32x4_t m01 = vshlq_n_s32(vmmlaq_s32(vdupq_n_s32(0), bh, M01), 7);
            int32x4_t m23 = vshlq_n_s32(vmmlaq_s32(vdupq_n_s32(0), bh, M23), 7);
            m01 = vmmlaq_s32(m01, bl, M01);
            m23 = vmmlaq_s32(m23, bl, M23);
            const float32x4_t da = vld1q_f32(reinterpret_cast<const float*>(s + 544));
            acc[2 * p] = vfmaq_f32(acc[2 * p], vcvtq_f32_s32(is[2 * p]), vmulq_f32(dw01, da));
            acc[2 * p] = vfmsq_f32(acc[2 * p], vcvtq_f32_s32(m01), vmulq_f32(dm01, da));
            acc[2 * p + 1] = vfmaq_f32(acc[2 * p + 1], vcvtq_f32_s32(is[2 * p + 1]), vmulq_f32(dw23, da));
            acc[2 * p + 1] = vfmsq_f32(acc[2 * p + 1], vcvtq_f32_s32(m23), vmulq_f32(dm23, da));
        }
        LOOM_MCA_END();
    }
    for (int i = 0; i < 2 * NP; ++i) out[i] = acc[i];
}

template <bool kQ5>
void matmul(const uint8_t* w, const uint8_t* act, size_t arb, const uint8_t* prep, float* y, int64_t ldy,
            int64_t n_in, int64_t n_out, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / quant::QK_K;
    const size_t group_bytes = (kQ5 ? kKGroupBlockQ5 : kKGroupBlockQ4) * static_cast<size_t>(nb);
    const size_t pair_bytes = kKPairBlock * static_cast<size_t>(nb);
    const int64_t T2 = T / 2 * 2;  // rows taken in pairs; an odd last one below
    if (T2 > 0) {
        for (int64_t t0 = 0; t0 < T2; t0 += 2 * kMaxPairs) {
            const int np = T2 - t0 < 2 * kMaxPairs ? static_cast<int>(T2 - t0) / 2 : kMaxPairs;
            const uint8_t* scratch = prep + static_cast<size_t>(t0 / 2) * pair_bytes;
            for (int64_t og = o0; og < o1; og += kRows) {
                const uint8_t* wg = w + (og / kRows) * group_bytes;
                float32x4_t r[2 * kMaxPairs];
                if (np == 1) tile<kQ5, 1>(wg, scratch, nb, r);
                else tile<kQ5, 2>(wg, scratch, nb, r);
                const int rows = o1 - og < kRows ? static_cast<int>(o1 - og) : kRows;
                for (int p = 0; p < np; ++p) {
                    float tmp[2][4];
                    vst1q_f32(tmp[0], zip1_64(r[2 * p], r[2 * p + 1]));  // t0: rows 0..3
                    vst1q_f32(tmp[1], zip2_64(r[2 * p], r[2 * p + 1]));  // t1
                    for (int h = 0; h < 2; ++h) {
                        float* dst = y + (t0 + 2 * p + h) * ldy + og;
                        if (rows == kRows) vst1q_f32(dst, vld1q_f32(tmp[h]));
                        else for (int i = 0; i < rows; ++i) dst[i] = tmp[h][i];
                    }
                }
            }
        }
    }
    if (T2 < T) {
        const MatmulKernel& one = kQ5 ? kMatmulQ5_Kx4x8Dotprod : kMatmulQ4_Kx4x8Dotprod;
        // k_pairs prepared the odd last row as the dotprod kernel does (k_rows), at pair T2 / 2.
        one.matmul(w, act + T2 * arb, arb, prep + static_cast<size_t>(T2 / 2) * pair_bytes, y + T2 * ldy, ldy, n_in,
                   n_out, o0, o1, 1);
    }
}

size_t size_q4_K(int64_t n_out, int64_t n_in) { return k_asym_size(GgmlType::Q4_K, n_out, n_in); }
size_t size_q5_K(int64_t n_out, int64_t n_in) { return k_asym_size(GgmlType::Q5_K, n_out, n_in); }
void pack_q4_K(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    pack_k_asym(GgmlType::Q4_K, src, dst, n_out, n_in);
}
void pack_q5_K(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    pack_k_asym(GgmlType::Q5_K, src, dst, n_out, n_in);
}

}  // namespace

const MatmulKernel kMatmulQ4_Kx4x8I8mm = {
    "matmul_f32_q4_Kx4x8_q8_K_i8mm", "i8mm", kNEON | kDOTPROD | kI8MM, GgmlType::Q4_K, GgmlType::Q8_K, kRows,
    size_q4_K, pack_q4_K, quantize_q8_K, matmul<false>, 2, k_pairs_size, k_pairs};
const MatmulKernel kMatmulQ5_Kx4x8I8mm = {
    "matmul_f32_q5_Kx4x8_q8_K_i8mm", "i8mm", kNEON | kDOTPROD | kI8MM, GgmlType::Q5_K, GgmlType::Q8_K, kRows,
    size_q5_K, pack_q5_K, quantize_q8_K, matmul<true>, 2, k_pairs_size, k_pairs};

}  // namespace loom::kernels::arm
