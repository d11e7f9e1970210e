// Q6_K weights x Q8_K activations with NEON SDOT (Armv8.2 dotprod), plain rows:
//   matmul_f32_q6_K_q8_K_dotprod
// Per 256-block: the 6-bit codes are rebuilt 16 at a time (low 4 bits from ql, high
// 2 from qh, minus 32), SDOT against the activations gives 4 partial sums per
// 16-element sub-block; pairwise adds fold them to one int32 per sub-block, which is
// multiplied by its int8 scale (exact int32, as the reference). Then, per block,
// acc = fmaf((float)isum, d_w * d_a, acc) -- the contract. A block's codes are
// decoded once for up to 4 activation rows.
#include <arm_neon.h>

#include <cmath>
#include <cstddef>
#include <cstring>

#include "kernels/arm/arm_common.h"
#include "kernels/arm/arm_kernels.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

using quant::BlockQ6_K;
using quant::BlockQ8_K;

constexpr size_t kWBlock = sizeof(BlockQ6_K);   // ql[128] qh[64] scales[16] d
constexpr size_t kABlock = sizeof(BlockQ8_K);   // d (f32) qs[256] bsums[16]
static_assert(offsetof(BlockQ6_K, qh) == 128 && offsetof(BlockQ6_K, scales) == 192 && offsetof(BlockQ6_K, d) == 208);
static_assert(offsetof(BlockQ8_K, qs) == 4);

// One weight row x NT activation rows, all blocks.
template <int NT>
void row_tile(const uint8_t* wrow, const uint8_t* const* act, int64_t nb, float* out) {
    float acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m30 = vdupq_n_u8(0x30);
    const int8x16_t m32 = vdupq_n_s8(32);
    for (int64_t b = 0; b < nb; ++b) {
        LOOM_MCA_BEGIN("sdot", NT, 1, 256, kWBlock);
        const uint8_t* blk = wrow + b * kWBlock;
        __fp16 dh;
        std::memcpy(&dh, blk + 208, 2);
        const float dw = static_cast<float>(dh);
        const int8x16_t sc8 = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 192));
        const int16x8_t sl = vmovl_s8(vget_low_s8(sc8)), sh = vmovl_high_s8(sc8);
        const int32x4_t sc[4] = {vmovl_s16(vget_low_s16(sl)), vmovl_high_s16(sl), vmovl_s16(vget_low_s16(sh)),
                                 vmovl_high_s16(sh)};
        int32x4_t isum[NT];
        for (int t = 0; t < NT; ++t) isum[t] = vdupq_n_s32(0);
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = blk + 64 * h;
            const uint8_t* qh = blk + 128 + 32 * h;
            const uint8x16_t l0 = vld1q_u8(ql), l1 = vld1q_u8(ql + 16), l2 = vld1q_u8(ql + 32), l3 = vld1q_u8(ql + 48);
            const uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16);
            // V[k]: elements 128h + 16k .. +15 (sub-block 8h + k), as signed codes.
            const uint8x16_t u[8] = {
                vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8(h0, 4), m30)),
                vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8(h1, 4), m30)),
                vorrq_u8(vandq_u8(l2, m4), vandq_u8(vshlq_n_u8(h0, 2), m30)),
                vorrq_u8(vandq_u8(l3, m4), vandq_u8(vshlq_n_u8(h1, 2), m30)),
                vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(h0, m30)),
                vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(h1, m30)),
                vorrq_u8(vshrq_n_u8(l2, 4), vandq_u8(vshrq_n_u8(h0, 2), m30)),
                vorrq_u8(vshrq_n_u8(l3, 4), vandq_u8(vshrq_n_u8(h1, 2), m30)),
            };
            int8x16_t V[8];
            for (int k = 0; k < 8; ++k) V[k] = vsubq_s8(vreinterpretq_s8_u8(u[k]), m32);
            for (int t = 0; t < NT; ++t) {
                const int8_t* a = reinterpret_cast<const int8_t*>(act[t] + b * kABlock + 4 + 128 * h);
                int32x4_t s[8];
                for (int k = 0; k < 8; ++k) s[k] = vdotq_s32(vdupq_n_s32(0), V[k], vld1q_s8(a + 16 * k));
                const int32x4_t r0 = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
                const int32x4_t r1 = vpaddq_s32(vpaddq_s32(s[4], s[5]), vpaddq_s32(s[6], s[7]));
                isum[t] = vmlaq_s32(isum[t], r0, sc[2 * h]);
                isum[t] = vmlaq_s32(isum[t], r1, sc[2 * h + 1]);
            }
        }
        for (int t = 0; t < NT; ++t) {
            float da;
            std::memcpy(&da, act[t] + b * kABlock, 4);
            acc[t] = std::fmaf(static_cast<float>(vaddvq_s32(isum[t])), dw * da, acc[t]);
        }
        LOOM_MCA_END();
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
}

void matmul(const uint8_t* w, const uint8_t* act, size_t arb, float* y, int64_t ldy, int64_t n_in,
            int64_t /*n_out*/, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / quant::QK_K;
    const size_t wrb = kWBlock * static_cast<size_t>(nb);
    for (int64_t t0 = 0; t0 < T; t0 += 4) {
        const int nt = T - t0 < 4 ? static_cast<int>(T - t0) : 4;
        const uint8_t* ap[4];
        for (int t = 0; t < nt; ++t) ap[t] = act + (t0 + t) * arb;
        for (int64_t o = o0; o < o1; ++o) {
            const uint8_t* wr = w + o * wrb;
            float r[4];
            switch (nt) {
                case 1: row_tile<1>(wr, ap, nb, r); break;
                case 2: row_tile<2>(wr, ap, nb, r); break;
                case 3: row_tile<3>(wr, ap, nb, r); break;
                default: row_tile<4>(wr, ap, nb, r); break;
            }
            for (int t = 0; t < nt; ++t) y[(t0 + t) * ldy + o] = r[t];
        }
    }
}

size_t size_q6_K(int64_t n_out, int64_t n_in) { return row_bytes(GgmlType::Q6_K, n_in) * static_cast<size_t>(n_out); }

}  // namespace

const MatmulKernel kMatmulQ6_KDotprod = {
    "matmul_f32_q6_K_q8_K_dotprod", "dotprod", kNEON | kDOTPROD, GgmlType::Q6_K, GgmlType::Q8_K, 1,
    size_q6_K, nullptr, quantize_q8_K, matmul};

}  // namespace loom::kernels::arm
