// Q4_0 weights x Q8_0 activations with SVE SMMLA (SVE + i8mm), vector-length
// agnostic:
//   matmul_f32_q4_0x8x8_q8_0_sve
// Layout (arm_common.h): groups of 8 rows (row_group 8), each stored as 8 / S
// sub-groups of S rows, S = 8 for vectors of >= 512 bits, else 4; a sub-group is
// Q4_0xSx8 blocks (S fp16 scales, then 16 S quant bytes, 8-byte interleave, XOR 0x88),
// so that one predicated load of 8 S bytes covers the S / 2 row pairs of a 128-bit
// segment each (8 bytes of each row): at 512 bits that is llama.cpp's Q4_0_8_8, below
// Q4_0_4_8 in pairs of groups. Vectors longer than 512 bits use the first 512
// (predicated), so any VL works.
//
// Activations are taken in pairs of rows (an odd last row paired with itself),
// prepared once per ops::matmul_n call as 2x8 tiles [t0 bytes k..k+7 | t1 bytes
// k..k+7] (q4_0_tiles, arm_common.h) and read with LD1RQ (replicated to every
// segment), so one SMMLA multiplies S / 2 row pairs at once: segment s gets [t0 r2s,
// t0 r2s+1, t1 r2s, t1 r2s+1]. Per block and lane: acc = FMLA(acc, (float)isum, dw *
// da) -- the contract (FMLA is fused like fmaf); the integer sums reach float without
// a conversion instruction (qx_0_smmla.h).
//
// Register tiles: with >= 256-bit vectors one sub-group x up to 8 pairs (16 activation
// rows per pass over the weights: the weight decoding -- 2 loads, 4 shifts / masks and
// the scales -- is shared by 8 pairs, each 4 SMMLAs + 4 vector operations). With
// 128-bit vectors (Neoverse V2) an SVE vector holds one row pair, no wider than NEON,
// so the NEON tile of the i8mm kernel runs instead (qx_0_smmla.h), on 4-row sub-groups:
// NEON loads pairs of registers at a time (LDP), which SVE cannot, and V2 is bound by
// its 6-wide dispatch as much as by its vector pipes. Loops: smmla-ns1 (SVE), smmla-x4
// (NEON); T = 1: SDOT (q4_0_gemv_sdot.h).
#include <arm_neon.h>
#include <arm_sve.h>

#include <cstring>
#include <utility>

#include "kernels/arm/arm_common.h"
#include "kernels/arm/arm_kernels.h"
#include "kernels/arm/q4_0_gemv_sdot.h"
#include "kernels/arm/qx_0_smmla.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

constexpr int kRows = 8;      // row_group
constexpr int kSvePairs = 8;  // activation pairs per SVE register tile

// Rows per sub-group for this thread's vector length.
int sub_rows() { return svcntb() >= 64 ? 8 : 4; }

// One sub-group's weights for one block, decoded: nibbles of bytes 0-7 (lo0, hi0) and
// 8-15 (lo1, hi1) of each row, as 16 x the codes; dw: the scale of each lane's row.
// The 0xF0 mask comes from a register (`mask`), so the AND is the three-operand
// vector form, not the destructive immediate one plus a MOVPRFX. (SVE types cannot
// live in structs or arrays, hence the macro.)
#define LOOM_LOAD_SUB(blk, lo0, hi0, lo1, hi1, dw)                                                       \
    const svfloat32_t dw = svcvt_f32_f16_x(                                                              \
        pw, svreinterpret_f16_u16(svtbl_u16(svreinterpret_u16_u8(svld1rq_u8(svptrue_b8(), blk)), idx))); \
    const svint8_t lo0##_w = svld1_s8(pb, reinterpret_cast<const int8_t*>(blk + 2 * S));                \
    const svint8_t lo1##_w = svld1_s8(pb, reinterpret_cast<const int8_t*>(blk + 2 * S + 8 * S));        \
    const svint8_t lo0 = svlsl_n_s8_x(all, lo0##_w, 4), hi0 = svand_s8_x(all, lo0##_w, mask);           \
    const svint8_t lo1 = svlsl_n_s8_x(all, lo1##_w, 4), hi1 = svand_s8_x(all, lo1##_w, mask)

// One block of one row pair (tiles: its 80 prepared bytes): 4 SMMLAs onto the bias,
// then the float step acc += (float)(16 isum) * dw * (da / 16).
__attribute__((always_inline)) inline void pair_step(svfloat32_t& acc, const uint8_t* tiles, svbool_t pw,
                                                     svint32_t bias, svint8_t lo0, svint8_t hi0, svint8_t lo1,
                                                     svint8_t hi1, svfloat32_t dw) {
    const svbool_t all = svptrue_b8();
    const int8_t* t = reinterpret_cast<const int8_t*>(tiles);
    svint32_t s = svmmla_s32(bias, svld1rq_s8(all, t), lo0);
    s = svmmla_s32(s, svld1rq_s8(all, t + 16), hi0);
    s = svmmla_s32(s, svld1rq_s8(all, t + 32), lo1);
    s = svmmla_s32(s, svld1rq_s8(all, t + 48), hi1);
    const svfloat32_t da = svld1rq_f32(svptrue_b32(), reinterpret_cast<const float*>(tiles + 64));
    const svfloat32_t f = svsub_n_f32_x(pw, svreinterpret_f32_s32(s), kBiasF);
    acc = svmla_f32_x(pw, acc, f, svmul_f32_x(pw, dw, da));
}

// One sub-group of S rows x NP activation pairs over blocks [k0, k1); the pairs at
// `tile`, block-major (pstride pairs per block). acc: NP slots of 2S lanes (qx_0_smmla.h),
// updated in place.
template <int NP>
void sve_tile(const uint8_t* sub, int S, const uint8_t* tile, size_t pstride, int64_t k0, int64_t k1, float* acc) {
    const int L = 2 * S;
    const svbool_t all = svptrue_b8(), pb = svwhilelt_b8(0, 8 * S), pw = svwhilelt_b32(0, 2 * S);
    // Scale index per 32-bit lane, as the even 16-bit element: row 2 (l / 4) + l % 2.
    const svuint32_t l = svindex_u32(0, 1);
    const svuint32_t row = svorr_u32_x(pw, svlsl_n_u32_x(pw, svlsr_n_u32_x(pw, l, 2), 1), svand_n_u32_x(pw, l, 1));
    const svuint16_t idx = svreinterpret_u16_u32(row);
    svint8_t mask = svdup_n_s8(static_cast<int8_t>(0xF0));
    asm("" : "+w"(mask));  // keep it in a register (see LOOM_LOAD_SUB)
    const size_t blk_bytes = 18 * static_cast<size_t>(S), bstride = pstride * kQ8PairBlock;
    // Accumulators a0..a7 (SVE types live in no arrays, hence the macros).
#define LOOM_ACC(p) svfloat32_t a##p = (p) >= NP ? svdup_n_f32(0.0f) : svld1_f32(pw, acc + (p) * L)
    LOOM_ACC(0); LOOM_ACC(1); LOOM_ACC(2); LOOM_ACC(3); LOOM_ACC(4); LOOM_ACC(5); LOOM_ACC(6); LOOM_ACC(7);
#undef LOOM_ACC
    const svint32_t bias = svdup_n_s32(kBias);
    for (int64_t b = k0; b < k1; ++b) {
        LOOM_MCA_BEGIN_SUB("smmla-ns", 1, 2 * NP, -1, 32, 18);
        const uint8_t* blk = sub + b * blk_bytes;
        LOOM_LOAD_SUB(blk, lo0, hi0, lo1, hi1, dw);
        const uint8_t* tb = tile + b * bstride;
        // One address per pair (LD1RQ's immediate offsets reach 112 bytes only; left to
        // itself the compiler spends an ADD on most of the 5 loads of a pair).
#define LOOM_PAIR(p)                                       \
    if constexpr (NP > (p)) {                              \
        const uint8_t* tp = tb + (p) * kQ8PairBlock;       \
        asm("" : "+r"(tp));                                \
        pair_step(a##p, tp, pw, bias, lo0, hi0, lo1, hi1, dw); \
    }
        LOOM_PAIR(0); LOOM_PAIR(1); LOOM_PAIR(2); LOOM_PAIR(3); LOOM_PAIR(4); LOOM_PAIR(5); LOOM_PAIR(6); LOOM_PAIR(7);
#undef LOOM_PAIR
        LOOM_MCA_END();
    }
#define LOOM_STORE(p) \
    if constexpr (NP > (p)) svst1_f32(pw, acc + (p) * L, a##p)
    LOOM_STORE(0); LOOM_STORE(1); LOOM_STORE(2); LOOM_STORE(3); LOOM_STORE(4); LOOM_STORE(5); LOOM_STORE(6);
    LOOM_STORE(7);
#undef LOOM_STORE
}
#undef LOOM_LOAD_SUB

// sve_tile<np> for np = 1..kSvePairs.
template <int... NP>
void sve_tile_np(int np, const uint8_t* sub, int S, const uint8_t* tile, size_t pstride, int64_t k0, int64_t k1,
                 float* acc, std::integer_sequence<int, NP...>) {
    (void)((np == NP + 1 && (sve_tile<NP + 1>(sub, S, tile, pstride, k0, k1, acc), true)) || ...);
}

void matmul(const uint8_t* w, const uint8_t* act, size_t /*arb*/, const uint8_t* prep, float* y, int64_t ldy,
            int64_t n_in, int64_t /*n_out*/, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / 32;
    const int S = sub_rows();
    const size_t sub_bytes = 18 * static_cast<size_t>(S) * static_cast<size_t>(nb);
    const size_t group_bytes = sub_bytes * static_cast<size_t>(kRows / S);
    if (T == 1) {  // one token: SDOT on the same layout, all 8 rows of a group at once
        for (int64_t og = o0; og < o1; og += kRows) {
            const uint8_t* wg = w + (og / kRows) * group_bytes;
            const uint8_t* subs[2] = {wg, wg + sub_bytes};
            float32x4_t r[2];
            if (S == 4) gemv_q4_0x8_sdot<4, 2>(subs, act, nb, r);
            else gemv_q4_0x8_sdot<8, 1>(subs, act, nb, r);
            float tmp[8];
            vst1q_f32(tmp, r[0]);
            vst1q_f32(tmp + 4, r[1]);
            const int64_t rows = o1 - og < kRows ? o1 - og : kRows;
            for (int64_t i = 0; i < rows; ++i) y[og + i] = tmp[i];
        }
        return;
    }
    if (svcntb() < 32) {  // 128-bit vectors: the NEON tile on the 4-row sub-groups
        smmla_gemm<kRows>(nb, S, kNeonPairs, y, ldy, o0, o1, T, prep,
                          [&](int64_t og, const uint8_t* tile, size_t pstride, int np, int64_t k0, int64_t k1,
                              float* acc) {
                              const uint8_t* wg = w + (og / kRows) * group_bytes;
                              neon_tile_np<true>(np, wg, tile, pstride, k0, k1, acc);
                              // The second sub-group may lie past o1 (zero-padded rows of the
                              // group): computed, and dropped by smmla_gemm.
                              neon_tile_np<true>(np, wg + sub_bytes, tile, pstride, k0, k1, acc + 2 * 4 * np);
                          });
        return;
    }
    smmla_gemm<kRows>(nb, S, kSvePairs, y, ldy, o0, o1, T, prep,
                      [&](int64_t og, const uint8_t* tile, size_t pstride, int np, int64_t k0, int64_t k1, float* acc) {
                          const uint8_t* wg = w + (og / kRows) * group_bytes;
                          for (int s0 = 0; s0 < kRows && og + s0 < o1; s0 += S)
                              sve_tile_np(np, wg + (s0 / S) * sub_bytes, S, tile, pstride, k0, k1, acc + 2 * s0 * np,
                                          std::make_integer_sequence<int, kSvePairs>{});
                      });
}

size_t size_q4_0(int64_t n_out, int64_t n_in) { return interleaved_size(GgmlType::Q4_0, kRows, n_out, n_in); }
void pack_q4_0(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    pack_interleaved(GgmlType::Q4_0, kRows, sub_rows(), 8, src, dst, n_out, n_in);
}

}  // namespace

const MatmulKernel kMatmulQ4_0x8x8Sve = {
    "matmul_f32_q4_0x8x8_q8_0_sve", "sve", kNEON | kDOTPROD | kI8MM | kSVE | kSVEI8MM, GgmlType::Q4_0, GgmlType::Q8_0,
    kRows, size_q4_0, pack_q4_0, quantize_q8_0_neon, matmul, kQ8TileRows, q8_0_tiles_size, q4_0_tiles};

}  // namespace loom::kernels::arm
