// Q4_0 and Q8_0 weights x Q8_0 activations with NEON SDOT (Armv8.2 dotprod), on
// 4-row x 4-byte interleaved weights (arm_common.h):
//   matmul_f32_q4_0x4x4_q8_0_dotprod   Q4_0x4x4 = llama.cpp's Q4_0_4_4
//   matmul_f32_q8_0x4x4_q8_0_dotprod   Q8_0x4x4
// One 16-byte load holds 4 bytes of each of the 4 rows, so SDOT-by-lane against 4
// activation bytes gives the 4 rows' partial sums directly in the 4 int32 lanes.
// Q4_0 nibbles (XOR 0x88 at pack time) are taken as (v << 4) and (v & 0xF0), i.e.
// 16 x the signed code; the block's int32 sum is shifted right by 4 (exact).
// Per block: acc = vfmaq_f32(acc, vcvtq_f32_s32(isum), dw * da) -- the contract.
#include <arm_neon.h>

#include <cstring>

#include "kernels/arm/arm_common.h"
#include "kernels/arm/arm_kernels.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

using quant::BlockQ8_0;

constexpr int kRows = 4;        // rows per group
constexpr size_t kActBlock = sizeof(BlockQ8_0);

inline float fp16_at(const uint8_t* p) {
    __fp16 h;
    std::memcpy(&h, p, 2);
    return static_cast<float>(h);
}

// Rows 0..3 of the group, NT activation rows, all blocks. Weight vectors W[0..3] pair
// with activation bytes 0..15 (lane c = bytes 4c..4c+3), W[4..7] with bytes 16..31.
template <bool kQ4, int NT>
void tile(const uint8_t* wg, const uint8_t* const* act, int64_t nb, float32x4_t* out) {
    constexpr size_t kWBlock = 8 + (kQ4 ? 64 : 128);
    float32x4_t acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
        LOOM_MCA_BEGIN("sdot", NT, kRows, 32, kWBlock / kRows);
        const uint8_t* blk = wg + b * kWBlock;
        const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(blk)));
        int8x16_t W[8];
        if constexpr (kQ4) {
            const int8x16_t m = vdupq_n_s8(static_cast<int8_t>(0xF0));
            for (int c = 0; c < 4; ++c) {
                const int8x16_t v = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 8 + 16 * c));
                W[c] = vshlq_n_s8(v, 4);     // elements 4c..4c+3 (x16)
                W[4 + c] = vandq_s8(v, m);   // elements 16+4c.. (x16)
            }
        } else {
            for (int c = 0; c < 8; ++c) W[c] = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 8 + 16 * c));
        }
        for (int t = 0; t < NT; ++t) {
            const uint8_t* a = act[t] + b * kActBlock;
            const float da = fp16_at(a);
            const int8x16_t a0 = vld1q_s8(reinterpret_cast<const int8_t*>(a + 2));
            const int8x16_t a1 = vld1q_s8(reinterpret_cast<const int8_t*>(a + 18));
            int32x4_t s0 = vdupq_n_s32(0), s1 = vdupq_n_s32(0);
            s0 = vdotq_laneq_s32(s0, W[0], a0, 0);
            s1 = vdotq_laneq_s32(s1, W[1], a0, 1);
            s0 = vdotq_laneq_s32(s0, W[2], a0, 2);
            s1 = vdotq_laneq_s32(s1, W[3], a0, 3);
            s0 = vdotq_laneq_s32(s0, W[4], a1, 0);
            s1 = vdotq_laneq_s32(s1, W[5], a1, 1);
            s0 = vdotq_laneq_s32(s0, W[6], a1, 2);
            s1 = vdotq_laneq_s32(s1, W[7], a1, 3);
            int32x4_t s = vaddq_s32(s0, s1);
            if constexpr (kQ4) s = vshrq_n_s32(s, 4);
            acc[t] = vfmaq_f32(acc[t], vcvtq_f32_s32(s), vmulq_n_f32(dw, da));
        }
        LOOM_MCA_END();
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
}

template <bool kQ4>
void matmul(const uint8_t* w, const uint8_t* act, size_t arb, const uint8_t* /*prep*/, float* y, int64_t ldy,
            int64_t n_in, int64_t /*n_out*/, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / 32;
    const size_t group_bytes = (8 + (kQ4 ? 64 : 128)) * static_cast<size_t>(nb);
    for (int64_t t0 = 0; t0 < T; t0 += 4) {
        const int nt = T - t0 < 4 ? static_cast<int>(T - t0) : 4;
        const uint8_t* ap[4];
        for (int t = 0; t < nt; ++t) ap[t] = act + (t0 + t) * arb;
        for (int64_t og = o0; og < o1; og += kRows) {
            const uint8_t* wg = w + (og / kRows) * group_bytes;
            float32x4_t r[4];
            switch (nt) {
                case 1: tile<kQ4, 1>(wg, ap, nb, r); break;
                case 2: tile<kQ4, 2>(wg, ap, nb, r); break;
                case 3: tile<kQ4, 3>(wg, ap, nb, r); break;
                default: tile<kQ4, 4>(wg, ap, nb, r); break;
            }
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
    pack_interleaved(GgmlType::Q4_0, kRows, kRows, 4, src, dst, n_out, n_in);
}
void pack_q8_0(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    pack_interleaved(GgmlType::Q8_0, kRows, kRows, 4, src, dst, n_out, n_in);
}

}  // namespace

const MatmulKernel kMatmulQ4_0x4x4Dotprod = {
    "matmul_f32_q4_0x4x4_q8_0_dotprod", "dotprod", kNEON | kDOTPROD, GgmlType::Q4_0, GgmlType::Q8_0, kRows,
    size_q4_0, pack_q4_0, quantize_q8_0_neon, matmul<true>, 0, nullptr, nullptr};
const MatmulKernel kMatmulQ8_0x4x4Dotprod = {
    "matmul_f32_q8_0x4x4_q8_0_dotprod", "dotprod", kNEON | kDOTPROD, GgmlType::Q8_0, GgmlType::Q8_0, kRows,
    size_q8_0, pack_q8_0, quantize_q8_0_neon, matmul<false>, 0, nullptr, nullptr};

}  // namespace loom::kernels::arm
