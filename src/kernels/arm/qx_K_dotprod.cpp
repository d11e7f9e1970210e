// Q4_K and Q5_K weights x Q8_K activations with NEON SDOT (Armv8.2 dotprod), on the
// 4-row x 8-byte interleaved layout of arm_common.h (shared with the i8mm and SVE
// kernels, which call this one for an odd activation row):
//   matmul_f32_q4_Kx4x8_q8_K_dotprod
//   matmul_f32_q5_Kx4x8_q8_K_dotprod
// A 16-byte weight vector holds 8 codes of each of 2 rows; SDOT against 8 activation
// bytes twice (prepared once per ops::matmul_n call: k_rows, the row with itself) gives 2
// partial sums per row, and one ADDP per sub-block of 32 folds rows 0,1 and 2,3 into
// [r0 r1 r2 r3]. The sums run on through the block, and each sub-block's running sum
// is multiplied by the rows' scale differences (arm_common.h): isum, exact. msum the
// same way: SDOT of the mins with the activation sub-block sums split as
// bh * 128 + bl. Per block: acc = fma(isum, d_w * d_a, acc), then
// acc = fms(msum, dmin_w * d_a, acc) -- the contract (fms(x, y, a) = fma(-x, y, a)).
// Q5_K codes get their 5th bit from the interleaved qh: bit j of a byte, moved to
// bit 4 (USHL) and inserted with BSL.
#include <arm_neon.h>

#include <cstring>

#include "kernels/arm/arm_common.h"
#include "kernels/arm/arm_kernels.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

constexpr int kRows = 4;
constexpr int kMaxRows = 2;  // activation rows per tile (more spill registers)

// The scale differences of sub-block j for rows 0..3 as int32 lanes (bytes 4j..4j+3).
inline int32x4_t scales(int8x16_t s0, int8x16_t s1, int j) {
    const int8x16_t s = j < 4 ? s0 : s1;
    const int16x8_t w = (j & 2) ? vmovl_high_s8(s) : vmovl_s8(vget_low_s8(s));
    return (j & 1) ? vmovl_high_s16(w) : vmovl_s16(vget_low_s16(w));
}

// Rows 0..3 of a group x NT activation rows (each prepared by k_act_pair with itself,
// rows prep_bytes apart), all blocks.
template <bool kQ5, int NT>
void tile(const uint8_t* wg, const uint8_t* prep, size_t prep_bytes, int64_t nb, float32x4_t* out) {
    constexpr size_t kWBlock = kQ5 ? kKGroupBlockQ5 : kKGroupBlockQ4;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m10 = vdupq_n_u8(0x10);
    float32x4_t acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
        LOOM_MCA_BEGIN("sdot", NT, kRows, 256, kQ5 ? 176 : 144);  // weight bytes: the plain block
        const uint8_t* blk = wg + b * kWBlock;
        const uint8_t* pb = prep + b * kKPairBlock;
        const int8x16_t s0 = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 16)), s1 = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 32));
        int32x4_t isum[NT], s01[NT], s23[NT];  // s01, s23: running sums through the block
        for (int t = 0; t < NT; ++t) isum[t] = s01[t] = s23[t] = vdupq_n_s32(0);
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
            const int32x4_t sc = scales(s0, s1, j);
            for (int t = 0; t < NT; ++t) {
                const int8_t* a = reinterpret_cast<const int8_t*>(pb + t * prep_bytes + 64 * j);
                for (int k = 0; k < 4; ++k) {
                    const int8x16_t A = vld1q_s8(a + 16 * k);  // 8 activation bytes, twice
                    s01[t] = vdotq_s32(s01[t], W[2 * k], A);
                    s23[t] = vdotq_s32(s23[t], W[2 * k + 1], A);
                }
                isum[t] = vmlaq_s32(isum[t], vpaddq_s32(s01[t], s23[t]), sc);
            }
        }
        const float16x8_t dd = vreinterpretq_f16_u8(vld1q_u8(blk));
        const float32x4_t dw = vcvt_f32_f16(vget_low_f16(dd)), dm = vcvt_high_f32_f16(dd);
        const int8x16_t M01 = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 48));
        const int8x16_t M23 = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 64));
        for (int t = 0; t < NT; ++t) {
            const uint8_t* s = pb + t * prep_bytes;
            const int8x16_t bh = vld1q_s8(reinterpret_cast<const int8_t*>(s + 512));
            const int8x16_t bl = vld1q_s8(reinterpret_cast<const int8_t*>(s + 528));
            int32x4_t m01 = vshlq_n_s32(vdotq_s32(vdupq_n_s32(0), M01, bh), 7);
            int32x4_t m23 = vshlq_n_s32(vdotq_s32(vdupq_n_s32(0), M23, bh), 7);
            m01 = vdotq_s32(m01, M01, bl);
            m23 = vdotq_s32(m23, M23, bl);
            const float32x4_t da = vld1q_f32(reinterpret_cast<const float*>(s + 544));  // d_a in every lane
            acc[t] = vfmaq_f32(acc[t], vcvtq_f32_s32(isum[t]), vmulq_f32(dw, da));
            acc[t] = vfmsq_f32(acc[t], vcvtq_f32_s32(vpaddq_s32(m01, m23)), vmulq_f32(dm, da));
        }
        LOOM_MCA_END();
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
}

template <bool kQ5>
void matmul(const uint8_t* w, const uint8_t* /*act*/, size_t /*arb*/, const uint8_t* prep_all, float* y, int64_t ldy,
            int64_t n_in, int64_t /*n_out*/, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / quant::QK_K;
    const size_t group_bytes = (kQ5 ? kKGroupBlockQ5 : kKGroupBlockQ4) * static_cast<size_t>(nb);
    const size_t prep_bytes = kKPairBlock * static_cast<size_t>(nb);
    for (int64_t t0 = 0; t0 < T; t0 += kMaxRows) {
        const int nt = T - t0 < kMaxRows ? static_cast<int>(T - t0) : kMaxRows;
        const uint8_t* prep = prep_all + static_cast<size_t>(t0) * prep_bytes;  // k_rows: row t at pair t
        for (int64_t og = o0; og < o1; og += kRows) {
            const uint8_t* wg = w + (og / kRows) * group_bytes;
            float32x4_t r[kMaxRows];
            if (nt == 1) tile<kQ5, 1>(wg, prep, prep_bytes, nb, r);
            else tile<kQ5, 2>(wg, prep, prep_bytes, nb, r);
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

size_t size_q4_K(int64_t n_out, int64_t n_in) { return k_asym_size(GgmlType::Q4_K, n_out, n_in); }
size_t size_q5_K(int64_t n_out, int64_t n_in) { return k_asym_size(GgmlType::Q5_K, n_out, n_in); }
void pack_q4_K(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    pack_k_asym(GgmlType::Q4_K, src, dst, n_out, n_in);
}
void pack_q5_K(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    pack_k_asym(GgmlType::Q5_K, src, dst, n_out, n_in);
}

}  // namespace

const MatmulKernel kMatmulQ4_Kx4x8Dotprod = {
    "matmul_f32_q4_Kx4x8_q8_K_dotprod", "dotprod", kNEON | kDOTPROD, GgmlType::Q4_K, GgmlType::Q8_K, kRows,
    size_q4_K, pack_q4_K, quantize_q8_K, matmul<false>, 1, k_rows_size, k_rows};
const MatmulKernel kMatmulQ5_Kx4x8Dotprod = {
    "matmul_f32_q5_Kx4x8_q8_K_dotprod", "dotprod", kNEON | kDOTPROD, GgmlType::Q5_K, GgmlType::Q8_K, kRows,
    size_q5_K, pack_q5_K, quantize_q8_K, matmul<true>, 1, k_rows_size, k_rows};

}  // namespace loom::kernels::arm
