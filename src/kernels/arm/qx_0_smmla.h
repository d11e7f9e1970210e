// GEMM (T >= 2) on Q4_0 / Q8_0 weights with SMMLA, against activations prepared as
// q4_0_tiles / q8_0_tiles (arm_common.h: tiles of kQ8TileRows rows, block-major pairs):
//   smmla_gemm    the loop structure shared by the i8mm and SVE kernels: register
//                 tiles of up to MaxNP activation pairs; row groups in batches of
//                 kBatchGroups passing over K panels of kPanel blocks together, so a
//                 panel's activation tiles (MaxNP x kPanel x 80 bytes) stay in L1 while
//                 the batch's weights stream past; the running sums of the batch wait
//                 between panels in a buffer on the stack (float: exact).
//   neon_tile     the NEON register tile: one 4-row x 8-byte interleaved group
//                 (Q4_0x4x8 / Q8_0x4x8) x NP <= 4 pairs.
// Lanes of a pair's running sums for an S-row sub-group (2S floats): lane l is row
// 2 (l / 4) + l % 2, activation row (l / 2) % 2 of the pair, as SMMLA leaves them.
//
// Per block and lane: acc = fma((float)isum, d_w * d_a, acc), the contract of
// kernels.h. The SMMLAs accumulate onto the bit pattern of the float 1.5 * 2^23
// (kBias): read as a float, 0x4B400000 + s is exactly 12582912 + s while |s| < 2^22
// (here |s| <= 16 * 32 * 8 * 127), so one exact subtraction gives (float)s, no
// int-to-float conversion. Q4_0 nibbles are taken as 16 x the codes (v << 4, v & 0xF0);
// the prepared activation scale holds the 1/16 instead of a shift, exactly (a power of
// two; d_w * d_a is far above the float subnormals).
//
// Included by ISA files only; everything is in an anonymous namespace (arm_common.h).
#pragma once
#include <arm_neon.h>

#include <cstdint>

#include "kernels/arm/arm_common.h"

namespace loom::kernels::arm {
namespace {

constexpr int32_t kBias = 0x4B400000;
constexpr float kBiasF = 12582912.0f;
constexpr int64_t kPanel = 32;        // blocks per K panel
constexpr int64_t kBatchGroups = 16;  // row groups passing over a K panel together
constexpr int kNeonPairs = 4;         // activation pairs per NEON register tile

// One 4-row group (blocks of 8 bytes of fp16 scales, then 64 / 128 quant bytes) x NP
// activation pairs over blocks [k0, k1). tile: the prepared tile's block 0 (pairs
// `pstride` x 80 bytes per block) at this register tile's first pair. acc: NP x 8
// floats (pair p: [rows 0,1 | rows 2,3] lanes), updated in place.
template <bool kQ4, int NP>
void neon_tile(const uint8_t* wg, const uint8_t* tile, size_t pstride, int64_t k0, int64_t k1, float* acc) {
    constexpr size_t kWBlock = 8 + (kQ4 ? 64 : 128);
    float32x4_t a01[NP], a23[NP];
    for (int p = 0; p < NP; ++p) {
        a01[p] = vld1q_f32(acc + 8 * p);
        a23[p] = vld1q_f32(acc + 8 * p + 4);
    }
    const int32x4_t bias = vdupq_n_s32(kBias);
    const float32x4_t bias_f = vdupq_n_f32(kBiasF);
    const size_t bstride = pstride * kQ8PairBlock;
    for (int64_t b = k0; b < k1; ++b) {
        LOOM_MCA_BEGIN("smmla-x4", 2 * NP, 4, 32, kWBlock / 4);
        const uint8_t* blk = wg + b * kWBlock;
        const int8_t* q = reinterpret_cast<const int8_t*>(blk + 8);
        // [w0, w1, w0, w1] and [w2, w3, w2, w3]: the rows of each SMMLA lane (LD1R of a
        // pair of fp16 scales, then one conversion each).
        const float32x4_t dw01 = vcvt_f32_f16(vreinterpret_f16_u32(vld1_dup_u32(reinterpret_cast<const uint32_t*>(blk))));
        const float32x4_t dw23 =
            vcvt_f32_f16(vreinterpret_f16_u32(vld1_dup_u32(reinterpret_cast<const uint32_t*>(blk + 4))));
        // W01[k] / W23[k]: 2x8 tiles of rows (0,1) / (2,3) for activation tile k
        // (elements 0-7, 16-23, 8-15, 24-31).
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
        const uint8_t* tb = tile + b * bstride;
        for (int p = 0; p < NP; ++p) {
            const int8_t* a = reinterpret_cast<const int8_t*>(tb + p * kQ8PairBlock);
            int32x4_t s01 = bias, s23 = bias;
            for (int k = 0; k < 4; ++k) {
                const int8x16_t A = vld1q_s8(a + 16 * k);
                s01 = vmmlaq_s32(s01, A, W01[k]);  // [t0 r0, t0 r1, t1 r0, t1 r1]
                s23 = vmmlaq_s32(s23, A, W23[k]);  // [t0 r2, t0 r3, t1 r2, t1 r3]
            }
            const float32x4_t da = vld1q_f32(reinterpret_cast<const float*>(a + 64));  // [d0, d0, d1, d1]
            const float32x4_t f01 = vsubq_f32(vreinterpretq_f32_s32(s01), bias_f);
            const float32x4_t f23 = vsubq_f32(vreinterpretq_f32_s32(s23), bias_f);
            a01[p] = vfmaq_f32(a01[p], f01, vmulq_f32(dw01, da));
            a23[p] = vfmaq_f32(a23[p], f23, vmulq_f32(dw23, da));
        }
        LOOM_MCA_END();
    }
    for (int p = 0; p < NP; ++p) {
        vst1q_f32(acc + 8 * p, a01[p]);
        vst1q_f32(acc + 8 * p + 4, a23[p]);
    }
}

// neon_tile<kQ4, np> for np = 1..kNeonPairs.
template <bool kQ4>
void neon_tile_np(int np, const uint8_t* wg, const uint8_t* tile, size_t pstride, int64_t k0, int64_t k1, float* acc) {
    switch (np) {
        case 1: neon_tile<kQ4, 1>(wg, tile, pstride, k0, k1, acc); break;
        case 2: neon_tile<kQ4, 2>(wg, tile, pstride, k0, k1, acc); break;
        case 3: neon_tile<kQ4, 3>(wg, tile, pstride, k0, k1, acc); break;
        default: neon_tile<kQ4, 4>(wg, tile, pstride, k0, k1, acc); break;
    }
}

// The GEMM over output rows [o0, o1) (o0 a multiple of G) in groups of G rows, sub-groups
// of S rows, register tiles of up to max_np pairs (max_np <= 8, G <= 8). For each row
// group og (a multiple of G) of a batch:
//   run(og, tile, pstride, np, k0, k1, acc)
// covers its sub-groups x np pairs over blocks [k0, k1), the tile's pairs at `tile`
// (block-major, pstride pairs per block); acc: the group's running sums (zero before
// the first panel), sub-group at s0 (its first row within the group) at acc + 2 s0 np,
// np slots of 2S lanes, updated in place.
template <int G, class Run>
void smmla_gemm(int64_t nb, int S, int max_np, float* y, int64_t ldy, int64_t o0, int64_t o1, int64_t T,
                const uint8_t* prep, Run&& run) {
    float acc[kBatchGroups * 2 * G * 8];
    for (int64_t t0 = 0; t0 < T; t0 += kQ8TileRows) {
        const int64_t tnt = T - t0 < kQ8TileRows ? T - t0 : kQ8TileRows;
        const int tnp = static_cast<int>((tnt + 1) / 2);
        const uint8_t* tile = prep + static_cast<size_t>(t0 / 2) * static_cast<size_t>(nb) * kQ8PairBlock;
        for (int p0 = 0; p0 < tnp; p0 += max_np) {
            const int np = tnp - p0 < max_np ? tnp - p0 : max_np;
            const int64_t nt = tnt - 2 * p0 < 2 * np ? tnt - 2 * p0 : 2 * np;  // activation rows of this tile
            const uint8_t* pt = tile + static_cast<size_t>(p0) * kQ8PairBlock;
            for (int64_t gb = o0; gb < o1; gb += kBatchGroups * G) {
                const int64_t ge = o1 - gb < kBatchGroups * G ? o1 : gb + kBatchGroups * G;
                const int64_t n_acc = (ge - gb + G - 1) / G * 2 * G * np;
                for (int64_t i = 0; i < n_acc; ++i) acc[i] = 0.0f;
                for (int64_t k0 = 0; k0 < nb; k0 += kPanel) {
                    const int64_t k1 = nb - k0 < kPanel ? nb : k0 + kPanel;
                    for (int64_t og = gb; og < ge; og += G)
                        run(og, pt, static_cast<size_t>(tnp), np, k0, k1, acc + (og - gb) / G * 2 * G * np);
                }
                for (int64_t og = gb; og < ge; og += G) {
                    const float* ga = acc + (og - gb) / G * 2 * G * np;
                    for (int s0 = 0; s0 < G && og + s0 < o1; s0 += S) {
                        const float* a = ga + 2 * s0 * np;
                        const int64_t rows = o1 - og - s0 < S ? o1 - og - s0 : S;
                        float* yt = y + (t0 + 2 * p0) * ldy + og + s0;
                        for (int p = 0; p < np; ++p)
                            for (int ln = 0; ln < 2 * S; ++ln) {
                                const int rr = 2 * (ln / 4) + ln % 2, tt = 2 * p + (ln / 2) % 2;
                                if (rr < rows && tt < nt) yt[tt * ldy + rr] = a[p * 2 * S + ln];
                            }
                    }
                }
            }
        }
    }
}

}  // namespace
}  // namespace loom::kernels::arm
