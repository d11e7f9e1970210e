// One-token GEMV on Q4_0 weights interleaved 8 bytes at a time -- the Q4_0xSx8
// sub-group layout of arm_common.h (S = 2, 4 or 8 rows), which the i8mm (S = 4) and
// SVE (S = VL / 64) kernels use -- with NEON SDOT, for the kernels' T = 1 calls.
// SMMLA on one token wastes half its work on a duplicate row; SDOT does not.
//
// A 16-byte vector j of a sub-group block holds 8 bytes of row 2p and 8 bytes of row
// 2p + 1 (p = j % (S / 2)), source bytes 8h..8h+7 (h = j / (S / 2)); low nibbles are
// elements 8h.., high nibbles 16 + 8h... Against the activation bytes of those
// elements, replicated to both halves ([a 8h..8h+7 | a 8h..8h+7]), SDOT leaves row 2p's
// partial sums in lanes 0-1 and row 2p + 1's in lanes 2-3; pairwise adds make the rows.
// The nibbles are 16 x the codes (v << 4, v & 0xF0), so the sums are 16 x isum and the
// scale takes the 1/16 (exactly: a power of two, far from float subnormals):
// acc = fma((float)(16 isum), d_w * (d_a / 16), acc) = fma((float)isum, d_w * d_a, acc),
// the contract of kernels.h bit for bit.
//
// Included by ISA files only; everything is in an anonymous namespace (arm_common.h).
#pragma once
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "kernels/arm/arm_common.h"

namespace loom::kernels::arm {
namespace {

// G sub-groups of S rows (S * G = 4 or 8 output rows), all nb blocks of one Q8_0
// activation row; out[v] gets rows 4v..4v+3 (sub-group g holds rows g S .. g S + S - 1).
template <int S, int G>
void gemv_q4_0x8_sdot(const uint8_t* const* sub, const uint8_t* act, int64_t nb, float32x4_t* out) {
    constexpr int kRowsAll = S * G, kPairs = kRowsAll / 2, kVec = kRowsAll / 4;
    static_assert(kRowsAll == 4 || kRowsAll == 8);
    constexpr size_t kBlk = 18 * S, kActBlock = 34;
    float32x4_t acc[kVec];
    for (int v = 0; v < kVec; ++v) acc[v] = vdupq_n_f32(0.0f);
    const int8x16_t m = vdupq_n_s8(static_cast<int8_t>(0xF0));
    for (int64_t b = 0; b < nb; ++b) {
        LOOM_MCA_BEGIN_SUB("sdot-sg", 10 * S + G, 1, kRowsAll, 32, 18);
        const uint8_t* a = act + b * kActBlock;
        int8x16_t A[4];  // elements 0-7, 8-15, 16-23, 24-31, each in both halves
        for (int i = 0; i < 4; ++i) {
            int64_t x;
            std::memcpy(&x, a + 2 + 8 * i, 8);
            A[i] = vreinterpretq_s8_s64(vdupq_n_s64(x));
        }
        int32x4_t P[kPairs];
        for (int p = 0; p < kPairs; ++p) P[p] = vdupq_n_s32(0);
        for (int g = 0; g < G; ++g) {
            const int8_t* q = reinterpret_cast<const int8_t*>(sub[g] + b * kBlk + 2 * S);
            for (int j = 0; j < S; ++j) {
                const int8x16_t w = vld1q_s8(q + 16 * j);
                const int p = g * (S / 2) + j % (S / 2), h = j / (S / 2);
                P[p] = vdotq_s32(P[p], vshlq_n_s8(w, 4), A[h]);
                P[p] = vdotq_s32(P[p], vandq_s8(w, m), A[2 + h]);
            }
        }
        // Row scales in row order: 4 rows per vector.
        float32x4_t dw[kVec];
        if constexpr (S == 8) {
            const float16x8_t h = vreinterpretq_f16_u8(vld1q_u8(sub[0] + b * kBlk));
            dw[0] = vcvt_f32_f16(vget_low_f16(h));
            dw[1] = vcvt_high_f32_f16(h);
        } else if constexpr (S == 4) {
            for (int g = 0; g < G; ++g) dw[g] = vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(sub[g] + b * kBlk)));
        } else {
            for (int v = 0; v < kVec; ++v) {
                uint32_t lo, hi;
                std::memcpy(&lo, sub[2 * v] + b * kBlk, 4);
                std::memcpy(&hi, sub[2 * v + 1] + b * kBlk, 4);
                dw[v] = vcvt_f32_f16(vreinterpret_f16_u64(vcreate_u64(lo | static_cast<uint64_t>(hi) << 32)));
            }
        }
        __fp16 dh;
        std::memcpy(&dh, a, 2);
        const float da = static_cast<float>(dh) * 0.0625f;
        for (int v = 0; v < kVec; ++v) {
            const int32x4_t r = vpaddq_s32(P[2 * v], P[2 * v + 1]);
            acc[v] = vfmaq_f32(acc[v], vcvtq_f32_s32(r), vmulq_n_f32(dw[v], da));
        }
        LOOM_MCA_END();
    }
    for (int v = 0; v < kVec; ++v) out[v] = acc[v];
}

}  // namespace
}  // namespace loom::kernels::arm
