// Q4_0 and Q8_0 weights x Q8_0 activations with NEON SMMLA (Armv8.6 i8mm), on
// 4-row x 8-byte interleaved weights (arm_common.h):
//   matmul_f32_q4_0x4x8_q8_0_i8mm   Q4_0x4x8 = llama.cpp's Q4_0_4_8
//   matmul_f32_q8_0x4x8_q8_0_i8mm   Q8_0x4x8
// A 16-byte weight load is a 2x8 tile (8 bytes of each of 2 rows); activations are
// taken in pairs of rows, prepared once per ops::matmul_n call as 2x8 tiles
// (q8_0_pairs, arm_common.h), so one SMMLA adds a 2x2 int32 tile [t0 r0, t0 r1, t1 r0, t1 r1]. An odd last activation row is paired with
// itself (its duplicate's results are dropped), so GEMM rows equal GEMV exactly.
// Per block: acc = vfmaq_f32(acc, (float)isum, dw * da) -- the contract. The SMMLAs
// accumulate onto the bit pattern of the float 1.5 * 2^23 (kBias): read as a float,
// 0x4B400000 + s is exactly 12582912 + s while |s| < 2^22 (here |s| <= 32 * 128 * 127),
// so one exact subtraction gives (float)s, no int-to-float conversion. Q4_0 nibbles
// are 16 x the codes; the prepared activation scale has the 1/16 instead of a shift,
// exactly (a power of two; d_w * d_a is far above the float subnormals).
// T = 1 (Q4_0): NEON SDOT on the same layout (q4_0_gemv_sdot.h).
#include <arm_neon.h>

#include <cstring>

#include "kernels/arm/arm_common.h"
#include "kernels/arm/arm_kernels.h"
#include "kernels/arm/q4_0_gemv_sdot.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

constexpr int kRows = 4;
constexpr int32_t kBias = 0x4B400000;
constexpr float kBiasF = 12582912.0f;

inline int32x4_t zip1_64(int32x4_t a, int32x4_t b) {
    return vreinterpretq_s32_s64(vzip1q_s64(vreinterpretq_s64_s32(a), vreinterpretq_s64_s32(b)));
}
inline int32x4_t zip2_64(int32x4_t a, int32x4_t b) {
    return vreinterpretq_s32_s64(vzip2q_s64(vreinterpretq_s64_s32(a), vreinterpretq_s64_s32(b)));
}

// Rows 0..3 of the group x NP prepared activation pairs (q8_0_pairs layout, arm_common.h:
// pair p at pairs + p * pair_bytes), all blocks. W01[k] / W23[k] are 2x8 tiles of rows
// (0,1) / (2,3) that pair with the activation tile k: elements 0-7, 16-23, 8-15, 24-31.
template <bool kQ4, int NP>
void tile(const uint8_t* wg, const uint8_t* pairs, size_t pair_bytes, int64_t nb, float32x4_t* out) {
    constexpr size_t kWBlock = 8 + (kQ4 ? 64 : 128);
    float32x4_t acc[2 * NP];
    for (int t = 0; t < 2 * NP; ++t) acc[t] = vdupq_n_f32(0.0f);
    const int32x4_t bias = vdupq_n_s32(kBias);
    const float32x4_t bias_f = vdupq_n_f32(kBiasF);
    for (int64_t b = 0; b < nb; ++b) {
        LOOM_MCA_BEGIN("smmla", 2 * NP, kRows, 32, kWBlock / kRows);
        const uint8_t* blk = wg + b * kWBlock;
        const int8_t* q = reinterpret_cast<const int8_t*>(blk + 8);
        const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(blk)));
        int8x16_t W01[4], W23[4];
        if constexpr (kQ4) {
            // v0 = rows 0,1 bytes 0..7; v1 = rows 2,3 bytes 0..7; v2, v3: bytes 8..15.
            // Low nibble of byte j is element j, high nibble element j + 16.
            const int8x16_t m = vdupq_n_s8(static_cast<int8_t>(0xF0));
            const int8x16_t v0 = vld1q_s8(q), v1 = vld1q_s8(q + 16), v2 = vld1q_s8(q + 32), v3 = vld1q_s8(q + 48);
            W01[0] = vshlq_n_s8(v0, 4), W01[1] = vandq_s8(v0, m), W01[2] = vshlq_n_s8(v2, 4), W01[3] = vandq_s8(v2, m);
            W23[0] = vshlq_n_s8(v1, 4), W23[1] = vandq_s8(v1, m), W23[2] = vshlq_n_s8(v3, 4), W23[3] = vandq_s8(v3, m);
        } else {
            // Vectors at q + 32k: rows 0,1 bytes 8k..8k+7 (+16: rows 2,3).
            constexpr int kOrder[4] = {0, 2, 1, 3};
            for (int k = 0; k < 4; ++k)
                W01[k] = vld1q_s8(q + 32 * kOrder[k]), W23[k] = vld1q_s8(q + 32 * kOrder[k] + 16);
        }
        for (int p = 0; p < NP; ++p) {
            const int8_t* a = reinterpret_cast<const int8_t*>(pairs + p * pair_bytes + b * kQ8PairBlock);
            int32x4_t s01 = bias, s23 = bias;
            for (int k = 0; k < 4; ++k) {
                const int8x16_t A = vld1q_s8(a + 16 * k);
                s01 = vmmlaq_s32(s01, A, W01[k]);  // [t0 r0, t0 r1, t1 r0, t1 r1]
                s23 = vmmlaq_s32(s23, A, W23[k]);  // [t0 r2, t0 r3, t1 r2, t1 r3]
            }
            const float32x4_t da = vld1q_f32(reinterpret_cast<const float*>(a + 64));  // [d0, d0, d1, d1]
            const int32x4_t i0 = zip1_64(s01, s23), i1 = zip2_64(s01, s23);  // t0 / t1: rows 0..3
            const float32x4_t f0 = vsubq_f32(vreinterpretq_f32_s32(i0), bias_f);
            const float32x4_t f1 = vsubq_f32(vreinterpretq_f32_s32(i1), bias_f);
            acc[2 * p] = vfmaq_f32(acc[2 * p], f0, vmulq_laneq_f32(dw, da, 0));
            acc[2 * p + 1] = vfmaq_f32(acc[2 * p + 1], f1, vmulq_laneq_f32(dw, da, 2));
        }
        LOOM_MCA_END();
    }
    for (int t = 0; t < 2 * NP; ++t) out[t] = acc[t];
}

template <bool kQ4>
void matmul(const uint8_t* w, const uint8_t* act, size_t /*arb*/, const uint8_t* prep, float* y, int64_t ldy,
            int64_t n_in, int64_t /*n_out*/, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / 32;
    const size_t group_bytes = (8 + (kQ4 ? 64 : 128)) * static_cast<size_t>(nb);
    if (kQ4 && T == 1) {  // one token: SDOT on the same layout, two groups (8 rows) at once
        for (int64_t og = o0; og < o1; og += 2 * kRows) {
            const uint8_t* wg = w + (og / kRows) * group_bytes;
            const uint8_t* subs[2] = {wg, wg + group_bytes};
            float32x4_t r[2];
            const bool two = og + kRows < o1;
            if (two) gemv_q4_0x8_sdot<4, 2>(subs, act, nb, r);
            else gemv_q4_0x8_sdot<4, 1>(subs, act, nb, r);
            float tmp[8];
            vst1q_f32(tmp, r[0]);
            if (two) vst1q_f32(tmp + 4, r[1]);
            const int64_t rows = o1 - og < 2 * kRows ? o1 - og : 2 * kRows;
            for (int64_t i = 0; i < rows; ++i) y[og + i] = tmp[i];
        }
        return;
    }
    const size_t pair_bytes = kQ8PairBlock * static_cast<size_t>(nb);
    for (int64_t t0 = 0; t0 < T; t0 += 4) {
        const int nt = T - t0 < 4 ? static_cast<int>(T - t0) : 4;
        const uint8_t* pairs = prep + static_cast<size_t>(t0 / 2) * pair_bytes;
        for (int64_t og = o0; og < o1; og += kRows) {
            const uint8_t* wg = w + (og / kRows) * group_bytes;
            float32x4_t r[4];
            if (nt <= 2) tile<kQ4, 1>(wg, pairs, pair_bytes, nb, r);
            else tile<kQ4, 2>(wg, pairs, pair_bytes, nb, r);
            const int rows = o1 - og < kRows ? static_cast<int>(o1 - og) : kRows;
            for (int t = 0; t < nt; ++t) {
                float* dst = y + (t0 + t) * ldy + og;
                if (rows == kRows) {
                    vst1q_f32(dst, r[t]);
                } else {
                    float tmp[4];
                    vst1q_f32(tmp, r[t]);
                    for (int i = 0; i < rows; ++i) dst[i] = tmp[i];
                }
            }
        }
    }
}

size_t size_q4_0(int64_t n_out, int64_t n_in) { return interleaved_size(GgmlType::Q4_0, kRows, n_out, n_in); }
size_t size_q8_0(int64_t n_out, int64_t n_in) { return interleaved_size(GgmlType::Q8_0, kRows, n_out, n_in); }
void pack_q4_0(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    pack_interleaved(GgmlType::Q4_0, kRows, kRows, 8, src, dst, n_out, n_in);
}
void pack_q8_0(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    pack_interleaved(GgmlType::Q8_0, kRows, kRows, 8, src, dst, n_out, n_in);
}

}  // namespace

const MatmulKernel kMatmulQ4_0x4x8I8mm = {
    "matmul_f32_q4_0x4x8_q8_0_i8mm", "i8mm", kNEON | kDOTPROD | kI8MM, GgmlType::Q4_0, GgmlType::Q8_0, kRows,
    size_q4_0, pack_q4_0, quantize_q8_0_neon, matmul<true>, 2, q8_0_pairs_size, q4_0_pairs};
const MatmulKernel kMatmulQ8_0x4x8I8mm = {
    "matmul_f32_q8_0x4x8_q8_0_i8mm", "i8mm", kNEON | kDOTPROD | kI8MM, GgmlType::Q8_0, GgmlType::Q8_0, kRows,
    size_q8_0, pack_q8_0, quantize_q8_0_neon, matmul<false>, 2, q8_0_pairs_size, q8_0_pairs};

}  // namespace loom::kernels::arm
