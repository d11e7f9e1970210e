// Q4_K and Q5_K weights x Q8_K activations with SVE SMMLA (SVE + i8mm), on the 4-row
// x 8-byte interleaved layout of arm_common.h (the same bytes as the NEON kernels):
//   matmul_f32_q4_Kx4x8_q8_K_sve
//   matmul_f32_q5_Kx4x8_q8_K_sve
// With vectors of >= 256 bits one predicated 32-byte load holds the 2x8 tiles of rows
// 0,1 and 2,3 side by side, and the activation pair tile is replicated to both
// 128-bit segments (LD1RQ), so one SMMLA yields [t0 r0, t0 r1, t1 r0, t1 r1 | t0 r2,
// t0 r3, t1 r2, t1 r3]: half the instructions of the NEON kernel. The running sums
// times the scale differences (TBL from the unpacked bytes), msum (SMMLA of the mins
// with the split sub-block sums) and the two float steps per block follow the NEON
// i8mm kernel lane for lane -- the contract.
// Longer vectors use the first 256 bits (zeroing loads). With 128-bit vectors the NEON
// i8mm kernel runs instead (same layout); an odd last activation row goes to the
// dotprod kernel, as in the NEON i8mm kernel, so GEMM rows equal GEMV exactly.
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

// Sub-block j (64 bytes of tiles at a) of one activation pair: 4 SMMLAs onto the running
// sums s, which are multiplied by the scale differences (arm_common.h) into is.
__attribute__((always_inline)) inline void sub_step(svint32_t& is, svint32_t& s, const uint8_t* a, svint8_t w0,
                                                    svint8_t w1, svint8_t w2, svint8_t w3, svint32_t sc, svbool_t pw) {
    const svbool_t all = svptrue_b8();
    const int8_t* t = reinterpret_cast<const int8_t*>(a);
    s = svmmla_s32(s, svld1rq_s8(all, t), w0);
    s = svmmla_s32(s, svld1rq_s8(all, t + 16), w1);
    s = svmmla_s32(s, svld1rq_s8(all, t + 32), w2);
    s = svmmla_s32(s, svld1rq_s8(all, t + 48), w3);
    is = svmla_s32_x(pw, is, s, sc);
}

// End of a block for one pair (its prepared block at s): msum, then the two float steps.
__attribute__((always_inline)) inline void block_end(svfloat32_t& acc, svint32_t is, const uint8_t* s, svint8_t M,
                                                     svfloat32_t dw, svfloat32_t dm, svbool_t pw) {
    const svbool_t all = svptrue_b8();
    svint32_t m = svmmla_s32(svdup_n_s32(0), svld1rq_s8(all, reinterpret_cast<const int8_t*>(s + 512)), M);
    m = svmmla_s32(svlsl_n_s32_x(pw, m, 7), svld1rq_s8(all, reinterpret_cast<const int8_t*>(s + 528)), M);
    const svfloat32_t da = svld1rq_f32(svptrue_b32(), reinterpret_cast<const float*>(s + 544));
    acc = svmla_f32_x(pw, acc, svcvt_f32_s32_x(pw, is), svmul_f32_x(pw, dw, da));
    acc = svmls_f32_x(pw, acc, svcvt_f32_s32_x(pw, m), svmul_f32_x(pw, dm, da));
}

// Codes of sub-block j for tile k (rows 0,1 | rows 2,3, 8 bytes each).
template <bool kQ5>
__attribute__((always_inline)) inline svint8_t codes(const uint8_t* blk, int j, int k, svbool_t pb) {
    const svuint8_t raw = svld1_u8(pb, blk + 80 + 128 * (j / 2) + 32 * k);
    svuint8_t c = (j & 1) ? svlsr_n_u8_x(pb, raw, 4) : svand_n_u8_x(pb, raw, 0x0F);
    if constexpr (kQ5) {
        svuint8_t h = svld1_u8(pb, blk + 592 + 32 * k);
        h = j <= 4 ? svlsl_n_u8_x(pb, h, static_cast<uint8_t>(4 - j)) : svlsr_n_u8_x(pb, h, static_cast<uint8_t>(j - 4));
        c = svorr_u8_x(pb, c, svand_n_u8_x(pb, h, 0x10));
    }
    return svreinterpret_s8_u8(c);
}

// Rows 0..3 of a group x NP prepared activation pairs, all blocks; out[p] gets the 8
// lanes of pair p (lane l: row 2 (l / 4) + l % 2, activation row (l / 2) % 2).
template <bool kQ5, int NP>
void tile(const uint8_t* wg, const uint8_t* pairs, int64_t nb, float (*out)[8]) {
    constexpr size_t kWBlock = kQ5 ? kKGroupBlockQ5 : kKGroupBlockQ4;
    const svbool_t pb = svwhilelt_b8(0, 32), pw = svwhilelt_b32(0, 8), all = svptrue_b8();
    // Per 32-bit lane l, the scale-difference byte of its row for sub-block 0:
    // 2 (l / 4) + l % 2 (+4 per sub-block); the other bytes index past the 32 loaded
    // ones, so TBL gives 0 there (then sign-extended from the low byte).
    const svuint32_t l = svindex_u32(0, 1);
    const svuint32_t row = svorr_u32_x(pw, svlsl_n_u32_x(pw, svlsr_n_u32_x(pw, l, 2), 1), svand_n_u32_x(pw, l, 1));
    const svuint8_t ix0 = svreinterpret_u8_u32(svorr_n_u32_x(pw, row, 0x80808000u));
    // fp16 d / dmin of the lane's row: even 16-bit element = row (+4 for dmin).
    const svuint16_t di = svreinterpret_u16_u32(row), mi = svreinterpret_u16_u32(svadd_n_u32_x(pw, row, 4));
    const size_t pair_bytes = kKPairBlock * static_cast<size_t>(nb);
    svfloat32_t a0 = svdup_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < nb; ++b) {
        LOOM_MCA_BEGIN("smmla", 2 * NP, kRows, 256, kQ5 ? 176 : 144);  // weight bytes: the plain block
        const uint8_t* blk = wg + b * kWBlock;
        const uint8_t* pbk = pairs + b * kKPairBlock;
        const svuint8_t stab = svld1_u8(pb, blk + 16);
        svuint8_t ix = ix0;
        svint32_t i0 = svdup_n_s32(0), i1 = i0, i2 = i0, i3 = i0, r0 = i0, r1 = i0, r2 = i0, r3 = i0;
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            const svint8_t w0 = codes<kQ5>(blk, j, 0, pb), w1 = codes<kQ5>(blk, j, 1, pb);
            const svint8_t w2 = codes<kQ5>(blk, j, 2, pb), w3 = codes<kQ5>(blk, j, 3, pb);
            const svint32_t sc = svextb_s32_x(pw, svreinterpret_s32_u8(svtbl_u8(stab, ix)));  // int8 -> int32
            ix = svadd_n_u8_x(all, ix, 4);
            const uint8_t* a = pbk + 64 * j;
            sub_step(i0, r0, a, w0, w1, w2, w3, sc, pw);
            if constexpr (NP > 1) sub_step(i1, r1, a + pair_bytes, w0, w1, w2, w3, sc, pw);
            if constexpr (NP > 2) sub_step(i2, r2, a + 2 * pair_bytes, w0, w1, w2, w3, sc, pw);
            if constexpr (NP > 3) sub_step(i3, r3, a + 3 * pair_bytes, w0, w1, w2, w3, sc, pw);
        }
        const svuint16_t d16 = svreinterpret_u16_u8(svld1rq_u8(all, blk));  // d[4], dmin[4]
        const svfloat32_t dw = svcvt_f32_f16_x(pw, svreinterpret_f16_u16(svtbl_u16(d16, di)));
        const svfloat32_t dm = svcvt_f32_f16_x(pw, svreinterpret_f16_u16(svtbl_u16(d16, mi)));
        const svint8_t M = svld1_s8(pb, reinterpret_cast<const int8_t*>(blk + 48));
        block_end(a0, i0, pbk, M, dw, dm, pw);
        if constexpr (NP > 1) block_end(a1, i1, pbk + pair_bytes, M, dw, dm, pw);
        if constexpr (NP > 2) block_end(a2, i2, pbk + 2 * pair_bytes, M, dw, dm, pw);
        if constexpr (NP > 3) block_end(a3, i3, pbk + 3 * pair_bytes, M, dw, dm, pw);
        LOOM_MCA_END();
    }
    svst1_f32(pw, out[0], a0);
    if constexpr (NP > 1) svst1_f32(pw, out[1], a1);
    if constexpr (NP > 2) svst1_f32(pw, out[2], a2);
    if constexpr (NP > 3) svst1_f32(pw, out[3], a3);
}

template <bool kQ5>
void matmul(const uint8_t* w, const uint8_t* act, size_t arb, const uint8_t* prep, float* y, int64_t ldy,
            int64_t n_in, int64_t n_out, int64_t o0, int64_t o1, int64_t T) {
    if (svcntb() < 32) {  // 128-bit vectors: the NEON kernel is as wide
        const MatmulKernel& neon = kQ5 ? kMatmulQ5_Kx4x8I8mm : kMatmulQ4_Kx4x8I8mm;
        return neon.matmul(w, act, arb, prep, y, ldy, n_in, n_out, o0, o1, T);  // same prepare (k_pairs)
    }
    const int64_t nb = n_in / quant::QK_K;
    const size_t group_bytes = (kQ5 ? kKGroupBlockQ5 : kKGroupBlockQ4) * static_cast<size_t>(nb);
    const size_t pair_bytes = kKPairBlock * static_cast<size_t>(nb);
    const int64_t T2 = T / 2 * 2;
    if (T2 > 0) {
        for (int64_t t0 = 0; t0 < T2; t0 += 2 * kMaxPairs) {
            const int np = T2 - t0 < 2 * kMaxPairs ? static_cast<int>(T2 - t0) / 2 : kMaxPairs;
            const uint8_t* scratch = prep + static_cast<size_t>(t0 / 2) * pair_bytes;
            for (int64_t og = o0; og < o1; og += kRows) {
                const uint8_t* wg = w + (og / kRows) * group_bytes;
                float r[kMaxPairs][8];
                switch (np) {
                    case 1: tile<kQ5, 1>(wg, scratch, nb, r); break;
                    case 2: tile<kQ5, 2>(wg, scratch, nb, r); break;
                    case 3: tile<kQ5, 3>(wg, scratch, nb, r); break;
                    default: tile<kQ5, 4>(wg, scratch, nb, r); break;
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

const MatmulKernel kMatmulQ4_Kx4x8Sve = {
    "matmul_f32_q4_Kx4x8_q8_K_sve", "sve", kNEON | kDOTPROD | kI8MM | kSVE | kSVEI8MM, GgmlType::Q4_K,
    GgmlType::Q8_K, kRows, size_q4_K, pack_q4_K, quantize_q8_K, matmul<false>, 2, k_pairs_size, k_pairs};
const MatmulKernel kMatmulQ5_Kx4x8Sve = {
    "matmul_f32_q5_Kx4x8_q8_K_sve", "sve", kNEON | kDOTPROD | kI8MM | kSVE | kSVEI8MM, GgmlType::Q5_K,
    GgmlType::Q8_K, kRows, size_q5_K, pack_q5_K, quantize_q8_K, matmul<true>, 2, k_pairs_size, k_pairs};

}  // namespace loom::kernels::arm
