// Q6_K weights x Q8_K activations with SVE SMMLA (SVE + i8mm), on the 4-row x 8-byte
// interleaved Q6_K layout of arm_common.h (the same bytes as the NEON kernels):
//   matmul_f32_q6_Kx4x8_q8_K_sve
// With vectors of >= 256 bits one predicated 32-byte load holds the 2x8 code tiles of
// rows 0,1 and 2,3 side by side and the activation pair tile is replicated to both
// 128-bit segments (LD1RQ), so one SMMLA yields [t0 r0, t0 r1, t1 r0, t1 r1 | t0 r2,
// t0 r3, t1 r2, t1 r3]. Codes, the -32 bsum starting values, the scales (TBL from the
// unpacked bytes) and the float step per block follow the NEON i8mm kernel lane for
// lane -- the contract. Longer vectors use the first 256 bits (zeroing loads). With
// 128-bit vectors the NEON i8mm kernel runs instead (same layout); an odd last
// activation row goes to the dotprod kernel, so GEMM rows equal GEMV exactly.
#include <arm_neon.h>
#include <arm_sve.h>

#include <cstring>

#include "kernels/arm/arm_common.h"
#include "kernels/arm/arm_kernels.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

constexpr int kRows = 4;
constexpr int kMaxPairs = 4;

// Codes of quarter k of half h, tile t (t = 0..3: elements l = 8t..8t+7 of rows 0,1 |
// rows 2,3), unsigned (q + 32).
__attribute__((always_inline)) inline svint8_t codes(const uint8_t* blk, int h, int k, int t, svbool_t pb) {
    const svuint8_t raw = svld1_u8(pb, blk + 72 + 128 * (2 * h + (k & 1)) + 32 * t);
    const svuint8_t lo = k < 2 ? svand_n_u8_x(pb, raw, 0x0F) : svlsr_n_u8_x(pb, raw, 4);
    svuint8_t hb = svld1_u8(pb, blk + 584 + 128 * h + 32 * t);
    hb = k < 3 ? svlsl_n_u8_x(pb, hb, static_cast<uint8_t>(4 - 2 * k)) : svlsr_n_u8_x(pb, hb, 2);
    return svreinterpret_s8_u8(svorr_u8_x(pb, lo, svand_n_u8_x(pb, hb, 0x30)));
}

// One sub-block of 16 (tiles a, a + 16) of one activation pair, starting from its
// -32 bsum values, times the scales into is.
__attribute__((always_inline)) inline void sub_step(svint32_t& is, const uint8_t* pp, int off, int j, svint8_t w0,
                                                    svint8_t w1, svint32_t sc, svbool_t pw) {
    const svbool_t all = svptrue_b8();
    const int8_t* a = reinterpret_cast<const int8_t*>(pp + off);
    svint32_t s = svld1rq_s32(svptrue_b32(), reinterpret_cast<const int32_t*>(pp + 512 + 16 * j));
    s = svmmla_s32(s, svld1rq_s8(all, a), w0);
    s = svmmla_s32(s, svld1rq_s8(all, a + 16), w1);
    is = svmla_s32_x(pw, is, s, sc);
}

__attribute__((always_inline)) inline void block_end(svfloat32_t& acc, svint32_t is, const uint8_t* pp,
                                                     svfloat32_t dw, svbool_t pw) {
    const svfloat32_t da = svld1rq_f32(svptrue_b32(), reinterpret_cast<const float*>(pp + 768));
    acc = svmla_f32_x(pw, acc, svcvt_f32_s32_x(pw, is), svmul_f32_x(pw, dw, da));
}

// Rows 0..3 of a group x NP prepared activation pairs, all blocks; out[p] gets the 8
// lanes of pair p (lane l: row 2 (l / 4) + l % 2, activation row (l / 2) % 2).
template <int NP>
void tile(const uint8_t* wg, const uint8_t* pairs, int64_t nb, float (*out)[8]) {
    const svbool_t pb = svwhilelt_b8(0, 32), pw = svwhilelt_b32(0, 8), all = svptrue_b8();
    const svuint32_t l = svindex_u32(0, 1);
    const svuint32_t row = svorr_u32_x(pw, svlsl_n_u32_x(pw, svlsr_n_u32_x(pw, l, 2), 1), svand_n_u32_x(pw, l, 1));
    // Per 32-bit lane, the scale byte of its row for sub-block 0 (of 8 in a table of
    // 32 bytes), +4 per sub-block; the other bytes index past the table (TBL gives 0).
    const svuint8_t ix0 = svreinterpret_u8_u32(svorr_n_u32_x(pw, row, 0x80808000u));
    const svuint16_t di = svreinterpret_u16_u32(row);  // fp16 d of the lane's row
    const size_t pair_bytes = kQ6PairBlock * static_cast<size_t>(nb);
    svfloat32_t a0 = svdup_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < nb; ++b) {
        LOOM_MCA_BEGIN("smmla", 2 * NP, kRows, 256, 210);
        const uint8_t* blk = wg + b * kQ6GroupBlock;
        const uint8_t* pbk = pairs + b * kQ6PairBlock;
        const svuint8_t st0 = svld1_u8(pb, blk + 8), st1 = svld1_u8(pb, blk + 40);  // sub-blocks 0-7, 8-15
        svuint8_t ix = ix0;
        svint32_t i0 = svdup_n_s32(0), i1 = i0, i2 = i0, i3 = i0;
#pragma GCC unroll 8
        for (int hk = 0; hk < 8; ++hk) {
            const int h = hk / 4, k = hk % 4;
            const svint8_t w0 = codes(blk, h, k, 0, pb), w1 = codes(blk, h, k, 1, pb);
            const svint8_t w2 = codes(blk, h, k, 2, pb), w3 = codes(blk, h, k, 3, pb);
            for (int half = 0; half < 2; ++half) {
                const int j = 8 * h + 2 * k + half;
                const svint32_t sc = svextb_s32_x(pw, svreinterpret_s32_u8(svtbl_u8(h ? st1 : st0, ix)));
                ix = svadd_n_u8_x(all, ix, 4);
                if (j == 7) ix = ix0;
                const svint8_t x0 = half ? w2 : w0, x1 = half ? w3 : w1;
                const int off = 64 * (4 * h + k) + 32 * half;
                sub_step(i0, pbk, off, j, x0, x1, sc, pw);
                if constexpr (NP > 1) sub_step(i1, pbk + pair_bytes, off, j, x0, x1, sc, pw);
                if constexpr (NP > 2) sub_step(i2, pbk + 2 * pair_bytes, off, j, x0, x1, sc, pw);
                if constexpr (NP > 3) sub_step(i3, pbk + 3 * pair_bytes, off, j, x0, x1, sc, pw);
            }
        }
        const svuint16_t d16 = svreinterpret_u16_u8(svld1rq_u8(all, blk));  // d[4] (and sc bytes)
        const svfloat32_t dw = svcvt_f32_f16_x(pw, svreinterpret_f16_u16(svtbl_u16(d16, di)));
        block_end(a0, i0, pbk, dw, pw);
        if constexpr (NP > 1) block_end(a1, i1, pbk + pair_bytes, dw, pw);
        if constexpr (NP > 2) block_end(a2, i2, pbk + 2 * pair_bytes, dw, pw);
        if constexpr (NP > 3) block_end(a3, i3, pbk + 3 * pair_bytes, dw, pw);
        LOOM_MCA_END();
    }
    svst1_f32(pw, out[0], a0);
    if constexpr (NP > 1) svst1_f32(pw, out[1], a1);
    if constexpr (NP > 2) svst1_f32(pw, out[2], a2);
    if constexpr (NP > 3) svst1_f32(pw, out[3], a3);
}

void matmul(const uint8_t* w, const uint8_t* act, size_t arb, const uint8_t* prep, float* y, int64_t ldy,
            int64_t n_in, int64_t n_out, int64_t o0, int64_t o1, int64_t T) {
    if (svcntb() < 32)  // 128-bit vectors: the NEON kernel is as wide
        return kMatmulQ6_Kx4x8I8mm.matmul(w, act, arb, prep, y, ldy, n_in, n_out, o0, o1, T);  // same prepare
    const int64_t nb = n_in / quant::QK_K;
    const size_t group_bytes = kQ6GroupBlock * static_cast<size_t>(nb);
    const size_t pair_bytes = kQ6PairBlock * static_cast<size_t>(nb);
    const int64_t T2 = T / 2 * 2;
    if (T2 > 0) {
        for (int64_t t0 = 0; t0 < T2; t0 += 2 * kMaxPairs) {
            const int np = T2 - t0 < 2 * kMaxPairs ? static_cast<int>(T2 - t0) / 2 : kMaxPairs;
            const uint8_t* scratch = prep + static_cast<size_t>(t0 / 2) * pair_bytes;
            for (int64_t og = o0; og < o1; og += kRows) {
                const uint8_t* wg = w + (og / kRows) * group_bytes;
                float r[kMaxPairs][8];
                switch (np) {
                    case 1: tile<1>(wg, scratch, nb, r); break;
                    case 2: tile<2>(wg, scratch, nb, r); break;
                    case 3: tile<3>(wg, scratch, nb, r); break;
                    default: tile<4>(wg, scratch, nb, r); break;
                }
                const int64_t rows = o1 - og < kRows ? o1 - og : kRows;
                for (int p = 0; p < np; ++p)
                    for (int ln = 0; ln < 8; ++ln) {
                        const int rr = 2 * (ln / 4) + ln % 2, tt = 2 * p + (ln / 2) % 2;
                        if (rr < rows) y[(t0 + tt) * ldy + og + rr] = r[p][ln];
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

const MatmulKernel kMatmulQ6_Kx4x8Sve = {
    "matmul_f32_q6_Kx4x8_q8_K_sve", "sve", kNEON | kDOTPROD | kI8MM | kSVE | kSVEI8MM, GgmlType::Q6_K, GgmlType::Q8_K,
    kRows, q6_K_x4_size, pack_q6_K_x4, quantize_q8_K, matmul, 2, k6_pairs_size, k6_pairs};

}  // namespace loom::kernels::arm
