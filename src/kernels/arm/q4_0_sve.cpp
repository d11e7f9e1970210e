// Q4_0 weights x Q8_0 activations with SVE SMMLA (SVE + i8mm), vector-length
// agnostic:
//   matmul_f32_q4_0x8x8_q8_0_sve
// Layout (arm_common.h): groups of 8 rows (row_group 8), each stored as 8 / S
// sub-groups of S rows, S = 8 / 4 / 2 for a vector of >= 512 / >= 256 / 128 bits;
// a sub-group is Q4_0xSx8 blocks (S fp16 scales, then 16 S quant bytes, 8-byte
// interleave, XOR 0x88), so that one predicated load of E = 8 S bytes covers the
// S / 2 row pairs of a 128-bit segment each (8 bytes of each row): at 512 bits that is
// llama.cpp's Q4_0_8_8, at 256 bits Q4_0_4_8 in pairs of groups, at 128 bits Q4_0_2_8.
// Vectors longer than 512 bits use the first 512 (predicated), so any VL works.
//
// Activations are taken in pairs of rows (an odd last row paired with itself),
// prepared once per ops::matmul_n call as 2x8 tiles [t0 bytes k..k+7 | t1 bytes
// k..k+7] (q4_0_pairs, arm_common.h), read with LD1RQ (replicated to every segment), so one SMMLA multiplies S / 2 row pairs
// at once: segment s gets [t0 r2s, t0 r2s+1, t1 r2s, t1 r2s+1]. Per block and lane:
// acc = FMLA(acc, (float)isum, dw * da) -- the contract (FMLA is fused like fmaf); the
// integer sums reach float without a conversion instruction (see pair_step).
#include <arm_neon.h>
#include <arm_sve.h>

#include <cstring>

#include "kernels/arm/arm_common.h"
#include "kernels/arm/arm_kernels.h"
#include "kernels/arm/q4_0_gemv_sdot.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

constexpr int kRows = 8;           // row_group
constexpr int kMaxPairs = 4;                // activation row pairs per tile (8 rows)
constexpr size_t kTileBytes = kQ8PairBlock;  // per pair and block: 4 tiles of 16 bytes + 4 floats

// Rows per sub-group for this thread's vector length.
int sub_rows() {
    const uint64_t vlb = svcntb();
    return vlb >= 64 ? 8 : vlb >= 32 ? 4 : 2;
}

// Integer sums are accumulated onto the bit pattern of the float 1.5 * 2^23 (kBias):
// read as a float, 0x4B400000 + s is exactly 12582912 + s while |s| < 2^22 (here
// |s| <= 16 * 32 * 8 * 127), so one exact subtraction gives (float)s -- no
// int-to-float conversion, and no shift for the 16x nibbles (the scale has the 1/16).
constexpr int32_t kBias = 0x4B400000;
constexpr float kBiasF = 12582912.0f;

// One sub-group's weights for one block, decoded: nibbles of bytes 0-7 (lo0, hi0) and
// 8-15 (lo1, hi1) of each row, as 16 x the codes; dw: the scale of each lane's row.
// (SVE types cannot live in structs or arrays, hence the macro.)
#define LOOM_LOAD_SUB(blk, lo0, hi0, lo1, hi1, dw)                                                          \
    const svfloat32_t dw = svcvt_f32_f16_x(                                                                 \
        pw, svreinterpret_f16_u16(svtbl_u16(svreinterpret_u16_u8(svld1rq_u8(svptrue_b8(), blk)), idx)));    \
    const svint8_t lo0##_w = svld1_s8(pb, reinterpret_cast<const int8_t*>(blk + 2 * S));                   \
    const svint8_t lo1##_w = svld1_s8(pb, reinterpret_cast<const int8_t*>(blk + 2 * S + 8 * S));           \
    const svint8_t lo0 = svlsl_n_s8_x(pb, lo0##_w, 4), hi0 = svand_n_s8_x(pb, lo0##_w, static_cast<int8_t>(0xF0)); \
    const svint8_t lo1 = svlsl_n_s8_x(pb, lo1##_w, 4), hi1 = svand_n_s8_x(pb, lo1##_w, static_cast<int8_t>(0xF0))

// The float step of one sub-group: acc += (float)(16 isum) * dw * (da / 16).
__attribute__((always_inline)) inline void finish(svfloat32_t& acc, svint32_t s, svbool_t pw, svfloat32_t dw,
                                                  svfloat32_t da) {
    const svfloat32_t f = svsub_n_f32_x(pw, svreinterpret_f32_s32(s), kBiasF);
    acc = svmla_f32_x(pw, acc, f, svmul_f32_x(pw, dw, da));
}

// One block of one row pair: 4 SMMLAs per sub-group on the same four activation
// tiles (NS = 2: sub-groups a and b), then the float steps.
template <int NS>
__attribute__((always_inline)) inline void pair_step(svfloat32_t& acc_a, svfloat32_t& acc_b, const uint8_t* tiles,
                                                     svbool_t pw, svint32_t bias, svint8_t lo0a, svint8_t hi0a,
                                                     svint8_t lo1a, svint8_t hi1a, svfloat32_t dwa, svint8_t lo0b,
                                                     svint8_t hi0b, svint8_t lo1b, svint8_t hi1b, svfloat32_t dwb) {
    const svbool_t all = svptrue_b8();
    const int8_t* t = reinterpret_cast<const int8_t*>(tiles);
    const svint8_t t0 = svld1rq_s8(all, t), t1 = svld1rq_s8(all, t + 16), t2 = svld1rq_s8(all, t + 32),
                   t3 = svld1rq_s8(all, t + 48);
    const svfloat32_t da = svld1rq_f32(svptrue_b32(), reinterpret_cast<const float*>(tiles + 64));
    svint32_t sa = svmmla_s32(bias, t0, lo0a);
    sa = svmmla_s32(sa, t1, hi0a);
    sa = svmmla_s32(sa, t2, lo1a);
    sa = svmmla_s32(sa, t3, hi1a);
    finish(acc_a, sa, pw, dwa, da);
    if constexpr (NS == 2) {
        svint32_t sb = svmmla_s32(bias, t0, lo0b);
        sb = svmmla_s32(sb, t1, hi0b);
        sb = svmmla_s32(sb, t2, lo1b);
        sb = svmmla_s32(sb, t3, hi1b);
        finish(acc_b, sb, pw, dwb, da);
    }
}

// NS consecutive sub-groups of S rows (NS = 2: each activation tile load serves two
// sub-groups) x NP activation pairs, all blocks; out[g][p] gets lanes l < 2S of
// sub-group g, pair p (row 2 (l / 4) + l % 2, activation row (l / 2) % 2 of the pair).
template <int NP, int NS>
void tile(const uint8_t* sub, size_t sub_bytes, int S, int64_t nb, const uint8_t* scratch,
          float (*out)[kMaxPairs][16]) {
    const svbool_t pb = svwhilelt_b8(0, 8 * S), pw = svwhilelt_b32(0, 2 * S);
    // Scale index per 32-bit lane, as the even 16-bit element: row 2 (l / 4) + l % 2.
    const svuint32_t l = svindex_u32(0, 1);
    const svuint32_t row = svorr_u32_x(pw, svlsl_n_u32_x(pw, svlsr_n_u32_x(pw, l, 2), 1), svand_n_u32_x(pw, l, 1));
    const svuint16_t idx = svreinterpret_u16_u32(row);
    const size_t blk_bytes = 18 * static_cast<size_t>(S), scratch_pair = kTileBytes * static_cast<size_t>(nb);
    svfloat32_t a0 = svdup_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    const svint32_t bias = svdup_n_s32(kBias);
    const uint8_t* sub_b = sub + (NS == 2 ? sub_bytes : 0);
    for (int64_t b = 0; b < nb; ++b) {
        LOOM_MCA_BEGIN_SUB("smmla-ns", NS, 2 * NP, -NS, 32, 18);
        const uint8_t* blk_a = sub + b * blk_bytes;
        const uint8_t* blk_b = sub_b + b * blk_bytes;
        LOOM_LOAD_SUB(blk_a, lo0a, hi0a, lo1a, hi1a, dwa);
        LOOM_LOAD_SUB(blk_b, lo0b, hi0b, lo1b, hi1b, dwb);  // NS = 1: the same block, unused
        const uint8_t* tb = scratch + b * kTileBytes;
#define LOOM_PAIR(acc_a, acc_b, off) \
    pair_step<NS>(acc_a, acc_b, tb + (off), pw, bias, lo0a, hi0a, lo1a, hi1a, dwa, lo0b, hi0b, lo1b, hi1b, dwb)
        LOOM_PAIR(a0, b0, 0);
        if constexpr (NP > 1) LOOM_PAIR(a1, b1, scratch_pair);
        if constexpr (NP > 2) LOOM_PAIR(a2, b2, 2 * scratch_pair);
        if constexpr (NP > 3) LOOM_PAIR(a3, b3, 3 * scratch_pair);
#undef LOOM_PAIR
        LOOM_MCA_END();
    }
    svst1_f32(pw, out[0][0], a0);
    if constexpr (NP > 1) svst1_f32(pw, out[0][1], a1);
    if constexpr (NP > 2) svst1_f32(pw, out[0][2], a2);
    if constexpr (NP > 3) svst1_f32(pw, out[0][3], a3);
    if constexpr (NS == 2) {
        svst1_f32(pw, out[1][0], b0);
        if constexpr (NP > 1) svst1_f32(pw, out[1][1], b1);
        if constexpr (NP > 2) svst1_f32(pw, out[1][2], b2);
        if constexpr (NP > 3) svst1_f32(pw, out[1][3], b3);
    }
}
#undef LOOM_LOAD_SUB

void matmul(const uint8_t* w, const uint8_t* act, size_t /*arb*/, const uint8_t* prep, float* y, int64_t ldy,
            int64_t n_in, int64_t /*n_out*/, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / 32;
    const int S = sub_rows();
    const size_t sub_bytes = 18 * static_cast<size_t>(S) * static_cast<size_t>(nb);
    const size_t group_bytes = sub_bytes * static_cast<size_t>(kRows / S);
    if (T == 1) {  // one token: SDOT on the same layout, all 8 rows of a group at once
        for (int64_t og = o0; og < o1; og += kRows) {
            const uint8_t* wg = w + (og / kRows) * group_bytes;
            const uint8_t* subs[kRows / 2];
            for (int g = 0; g < kRows / S; ++g) subs[g] = wg + g * sub_bytes;
            float32x4_t r[2];
            if (S == 2) gemv_q4_0x8_sdot<2, 4>(subs, act, nb, r);
            else if (S == 4) gemv_q4_0x8_sdot<4, 2>(subs, act, nb, r);
            else gemv_q4_0x8_sdot<8, 1>(subs, act, nb, r);
            float tmp[8];
            vst1q_f32(tmp, r[0]);
            vst1q_f32(tmp + 4, r[1]);
            const int64_t rows = o1 - og < kRows ? o1 - og : kRows;
            for (int64_t i = 0; i < rows; ++i) y[og + i] = tmp[i];
        }
        return;
    }
    for (int64_t t0 = 0; t0 < T; t0 += 2 * kMaxPairs) {
        const int nt = T - t0 < 2 * kMaxPairs ? static_cast<int>(T - t0) : 2 * kMaxPairs;
        const int np = (nt + 1) / 2;
        const uint8_t* scratch = prep + static_cast<size_t>(t0 / 2) * kTileBytes * static_cast<size_t>(nb);
        for (int64_t og = o0; og < o1; og += kRows) {
            const uint8_t* wg = w + (og / kRows) * group_bytes;
            // At 128 bits (S = 2), sub-groups two at a time: each activation tile load then
            // feeds two SMMLAs (modelled: 40 -> 48 int8 MACs/cycle on Neoverse V2; no gain
            // at 256 bits). The second may lie past o1 (zero-padded rows of the group,
            // computed and dropped).
            const int ns = S == 2 ? 2 : 1;
            for (int s0 = 0; s0 < kRows && og + s0 < o1; s0 += ns * S) {
                const uint8_t* sub = wg + (s0 / S) * sub_bytes;
                float r[2][kMaxPairs][16];
                if (ns == 2) {
                    switch (np) {
                        case 1: tile<1, 2>(sub, sub_bytes, S, nb, scratch, r); break;
                        case 2: tile<2, 2>(sub, sub_bytes, S, nb, scratch, r); break;
                        case 3: tile<3, 2>(sub, sub_bytes, S, nb, scratch, r); break;
                        default: tile<4, 2>(sub, sub_bytes, S, nb, scratch, r); break;
                    }
                } else {
                    switch (np) {
                        case 1: tile<1, 1>(sub, sub_bytes, S, nb, scratch, r); break;
                        case 2: tile<2, 1>(sub, sub_bytes, S, nb, scratch, r); break;
                        case 3: tile<3, 1>(sub, sub_bytes, S, nb, scratch, r); break;
                        default: tile<4, 1>(sub, sub_bytes, S, nb, scratch, r); break;
                    }
                }
                for (int g = 0; g < ns; ++g) {
                    const int64_t base = s0 + g * S;
                    const int64_t rows = o1 - og - base < S ? o1 - og - base : S;
                    for (int p = 0; p < np; ++p)
                        for (int ln = 0; ln < 2 * S; ++ln) {
                            const int rr = 2 * (ln / 4) + ln % 2, tt = 2 * p + (ln / 2) % 2;
                            if (rr < rows && tt < nt) y[(t0 + tt) * ldy + og + base + rr] = r[g][p][ln];
                        }
                }
            }
        }
    }
}

size_t size_q4_0(int64_t n_out, int64_t n_in) { return interleaved_size(GgmlType::Q4_0, kRows, n_out, n_in); }
void pack_q4_0(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    pack_interleaved(GgmlType::Q4_0, kRows, sub_rows(), 8, src, dst, n_out, n_in);
}

}  // namespace

const MatmulKernel kMatmulQ4_0x8x8Sve = {
    "matmul_f32_q4_0x8x8_q8_0_sve", "sve", kNEON | kDOTPROD | kI8MM | kSVE | kSVEI8MM, GgmlType::Q4_0, GgmlType::Q8_0,
    kRows, size_q4_0, pack_q4_0, quantize_q8_0_neon, matmul, 2, q8_0_pairs_size, q4_0_pairs};

}  // namespace loom::kernels::arm
