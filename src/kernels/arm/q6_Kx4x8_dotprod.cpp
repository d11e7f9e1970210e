// Q6_K weights x Q8_K activations with NEON SDOT (Armv8.2 dotprod), on the 4-row x
// 8-byte interleaved Q6_K layout of arm_common.h (shared with the i8mm kernel, which
// calls this one for an odd activation row):
//   matmul_f32_q6_Kx4x8_q8_K_dotprod
// Codes are rebuilt unsigned (q + 32: low 4 bits from ql, 2 high bits from qh moved
// to bits 4-5 and inserted with BSL), 16 per vector, 8 of each of 2 rows. SDOT against
// 8 activation bytes twice (prepared once per ops::matmul_n call: k6_rows, the row with itself)
// gives 2 partial sums per row; they start from -16 bsum_j each, so the ADDP that folds
// them into [r0 r1 r2 r3] yields <q + 32, a> - 32 bsum_j = <q, a> exactly for the
// sub-block of 16. Times the rows' int8 scales into isum, exact; per block
// acc = fma(isum, d_w * d_a, acc) -- the contract.
#include <arm_neon.h>

#include <cstring>

#include "kernels/arm/arm_common.h"
#include "kernels/arm/arm_kernels.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

constexpr int kRows = 4;
constexpr int kMaxRows = 2;  // activation rows per tile

// The scales of sub-block j for rows 0..3 as int32 lanes (bytes 4j..4j+3).
inline int32x4_t scales(const int8x16_t* S, int j) {
    const int8x16_t s = S[j / 4];
    const int16x8_t w = (j & 2) ? vmovl_high_s8(s) : vmovl_s8(vget_low_s8(s));
    return (j & 1) ? vmovl_high_s16(w) : vmovl_s16(vget_low_s16(w));
}

// Codes of quarter k of half h (elements 128h + 32k + l): 8 vectors, v = rows 0,1 / 2,3
// (v even / odd), l = 8 (v / 2) .. + 7.
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

// Rows 0..3 of a group x NT activation rows (prepared with k6_act_pair(x, x, .., true),
// prep_bytes apart), all blocks.
template <int NT>
void tile(const uint8_t* wg, const uint8_t* prep, size_t prep_bytes, int64_t nb, float32x4_t* out) {
    float32x4_t acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
        LOOM_MCA_BEGIN("sdot", NT, kRows, 256, 210);
        const uint8_t* blk = wg + b * kQ6GroupBlock;
        const uint8_t* pb = prep + b * kQ6PairBlock;
        int8x16_t S[4];
        for (int i = 0; i < 4; ++i) S[i] = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 8 + 16 * i));
        int32x4_t isum[NT];
        for (int t = 0; t < NT; ++t) isum[t] = vdupq_n_s32(0);
#pragma GCC unroll 8
        for (int hk = 0; hk < 8; ++hk) {
            const int h = hk / 4, k = hk % 4;
            int8x16_t W[8];
            codes(blk, h, k, W);
            for (int half = 0; half < 2; ++half) {
                const int j = 8 * h + 2 * k + half;
                const int32x4_t sc = scales(S, j);
                for (int t = 0; t < NT; ++t) {
                    const uint8_t* p = pb + t * prep_bytes;
                    const int8_t* a = reinterpret_cast<const int8_t*>(p + 64 * (4 * h + k) + 32 * half);
                    const int32x4_t bias = vld1q_s32(reinterpret_cast<const int32_t*>(p + 512 + 16 * j));
                    const int8x16_t A0 = vld1q_s8(a), A1 = vld1q_s8(a + 16);
                    int32x4_t s01 = vdotq_s32(bias, W[4 * half], A0);
                    int32x4_t s23 = vdotq_s32(bias, W[4 * half + 1], A0);
                    s01 = vdotq_s32(s01, W[4 * half + 2], A1);
                    s23 = vdotq_s32(s23, W[4 * half + 3], A1);
                    isum[t] = vmlaq_s32(isum[t], vpaddq_s32(s01, s23), sc);
                }
            }
        }
        const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(blk)));
        for (int t = 0; t < NT; ++t) {
            const float32x4_t da = vld1q_f32(reinterpret_cast<const float*>(pb + t * prep_bytes + 768));
            acc[t] = vfmaq_f32(acc[t], vcvtq_f32_s32(isum[t]), vmulq_f32(dw, da));
        }
        LOOM_MCA_END();
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
}

void matmul(const uint8_t* w, const uint8_t* /*act*/, size_t /*arb*/, const uint8_t* prep_all, float* y, int64_t ldy,
            int64_t n_in, int64_t /*n_out*/, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / quant::QK_K;
    const size_t group_bytes = kQ6GroupBlock * static_cast<size_t>(nb);
    const size_t prep_bytes = kQ6PairBlock * static_cast<size_t>(nb);
    for (int64_t t0 = 0; t0 < T; t0 += kMaxRows) {
        const int nt = T - t0 < kMaxRows ? static_cast<int>(T - t0) : kMaxRows;
        const uint8_t* prep = prep_all + static_cast<size_t>(t0) * prep_bytes;  // k6_rows: row t at pair t
        for (int64_t og = o0; og < o1; og += kRows) {
            const uint8_t* wg = w + (og / kRows) * group_bytes;
            float32x4_t r[kMaxRows];
            if (nt == 1) tile<1>(wg, prep, prep_bytes, nb, r);
            else tile<2>(wg, prep, prep_bytes, nb, r);
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

}  // namespace

const MatmulKernel kMatmulQ6_Kx4x8Dotprod = {
    "matmul_f32_q6_Kx4x8_q8_K_dotprod", "dotprod", kNEON | kDOTPROD, GgmlType::Q6_K, GgmlType::Q8_K, kRows,
    q6_K_x4_size, pack_q6_K_x4, quantize_q8_K, matmul, 1, k6_rows_size, k6_rows};

}  // namespace loom::kernels::arm
