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
// Activations are taken in pairs of rows (an odd last row paired with itself) and
// rearranged once per call into 2x8 tiles [t0 bytes k..k+7 | t1 bytes k..k+7], read
// with LD1RQ (replicated to every segment), so one SMMLA multiplies S / 2 row pairs
// at once: segment s gets [t0 r2s, t0 r2s+1, t1 r2s, t1 r2s+1]. Per block and lane:
// acc = FMLA(acc, SCVTF(isum), dw * da) -- the contract (FMLA is fused like fmaf).
#include <arm_neon.h>
#include <arm_sve.h>

#include <cstring>

#include "kernels/arm/arm_common.h"
#include "kernels/arm/arm_kernels.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

using quant::BlockQ8_0;

constexpr int kRows = 8;           // row_group
constexpr int kMaxPairs = 4;       // activation row pairs per tile (8 rows)
constexpr size_t kTileBytes = 80;  // per pair and block: 4 tiles of 16 bytes + 4 floats
constexpr size_t kActBlock = sizeof(BlockQ8_0);

// Rows per sub-group for this thread's vector length.
int sub_rows() {
    const uint64_t vlb = svcntb();
    return vlb >= 64 ? 8 : vlb >= 32 ? 4 : 2;
}

inline float fp16_at(const uint8_t* p) {
    __fp16 h;
    std::memcpy(&h, p, 2);
    return static_cast<float>(h);
}

inline int8x16_t zip1_64(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}
inline int8x16_t zip2_64(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}

// Activation rows x (t0) and z (t1) -> per block: tiles of elements 0-7, 16-23, 8-15,
// 24-31 (the low and high nibbles of weight bytes 0-7, then of bytes 8-15), then
// the floats [da0, da0, da1, da1].
void prepare_pair(const uint8_t* x, const uint8_t* z, int64_t nb, uint8_t* out) {
    for (int64_t b = 0; b < nb; ++b, x += kActBlock, z += kActBlock, out += kTileBytes) {
        const int8x16_t x0 = vld1q_s8(reinterpret_cast<const int8_t*>(x + 2));
        const int8x16_t x1 = vld1q_s8(reinterpret_cast<const int8_t*>(x + 18));
        const int8x16_t z0 = vld1q_s8(reinterpret_cast<const int8_t*>(z + 2));
        const int8x16_t z1 = vld1q_s8(reinterpret_cast<const int8_t*>(z + 18));
        int8_t* o = reinterpret_cast<int8_t*>(out);
        vst1q_s8(o, zip1_64(x0, z0));
        vst1q_s8(o + 16, zip1_64(x1, z1));
        vst1q_s8(o + 32, zip2_64(x0, z0));
        vst1q_s8(o + 48, zip2_64(x1, z1));
        const float da0 = fp16_at(x), da1 = fp16_at(z);
        const float d[4] = {da0, da0, da1, da1};
        std::memcpy(out + 64, d, 16);
    }
}

// One block of one row pair: 4 SMMLAs, then the float step.
__attribute__((always_inline)) inline void pair_step(svfloat32_t& acc, const uint8_t* tiles, svbool_t pw,
                                                     svint8_t lo0, svint8_t hi0, svint8_t lo1, svint8_t hi1,
                                                     svfloat32_t dw) {
    const svbool_t all = svptrue_b8();
    const int8_t* t = reinterpret_cast<const int8_t*>(tiles);
    svint32_t s = svmmla_s32(svdup_n_s32(0), svld1rq_s8(all, t), lo0);
    s = svmmla_s32(s, svld1rq_s8(all, t + 16), hi0);
    s = svmmla_s32(s, svld1rq_s8(all, t + 32), lo1);
    s = svmmla_s32(s, svld1rq_s8(all, t + 48), hi1);
    const svfloat32_t f = svcvt_f32_s32_x(pw, svasr_n_s32_x(pw, s, 4));
    const svfloat32_t da = svld1rq_f32(svptrue_b32(), reinterpret_cast<const float*>(tiles + 64));
    acc = svmla_f32_x(pw, acc, f, svmul_f32_x(pw, dw, da));
}

// One sub-group of S rows x NP activation pairs, all blocks; out[p] gets lanes
// l < 2S of pair p (row 2 (l / 4) + l % 2, activation row (l / 2) % 2 of the pair).
template <int NP>
void tile(const uint8_t* sub, int S, int64_t nb, const uint8_t* scratch, float (*out)[16]) {
    const svbool_t pb = svwhilelt_b8(0, 8 * S), pw = svwhilelt_b32(0, 2 * S);
    // Scale index per 32-bit lane, as the even 16-bit element: row 2 (l / 4) + l % 2.
    const svuint32_t l = svindex_u32(0, 1);
    const svuint32_t row = svorr_u32_x(pw, svlsl_n_u32_x(pw, svlsr_n_u32_x(pw, l, 2), 1), svand_n_u32_x(pw, l, 1));
    const svuint16_t idx = svreinterpret_u16_u32(row);
    const size_t blk_bytes = 18 * static_cast<size_t>(S), scratch_pair = kTileBytes * static_cast<size_t>(nb);
    svfloat32_t a0 = svdup_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = sub + b * blk_bytes;
        const svuint16_t d16 = svreinterpret_u16_u8(svld1rq_u8(svptrue_b8(), blk));  // S <= 8 scales
        const svfloat32_t dw = svcvt_f32_f16_x(pw, svreinterpret_f16_u16(svtbl_u16(d16, idx)));
        const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2 * S);
        const svint8_t w0 = svld1_s8(pb, q), w1 = svld1_s8(pb, q + 8 * S);
        const svint8_t lo0 = svlsl_n_s8_x(pb, w0, 4), hi0 = svand_n_s8_x(pb, w0, static_cast<int8_t>(0xF0));
        const svint8_t lo1 = svlsl_n_s8_x(pb, w1, 4), hi1 = svand_n_s8_x(pb, w1, static_cast<int8_t>(0xF0));
        const uint8_t* tb = scratch + b * kTileBytes;
        pair_step(a0, tb, pw, lo0, hi0, lo1, hi1, dw);
        if constexpr (NP > 1) pair_step(a1, tb + scratch_pair, pw, lo0, hi0, lo1, hi1, dw);
        if constexpr (NP > 2) pair_step(a2, tb + 2 * scratch_pair, pw, lo0, hi0, lo1, hi1, dw);
        if constexpr (NP > 3) pair_step(a3, tb + 3 * scratch_pair, pw, lo0, hi0, lo1, hi1, dw);
    }
    svst1_f32(pw, out[0], a0);
    if constexpr (NP > 1) svst1_f32(pw, out[1], a1);
    if constexpr (NP > 2) svst1_f32(pw, out[2], a2);
    if constexpr (NP > 3) svst1_f32(pw, out[3], a3);
}

void matmul(const uint8_t* w, const uint8_t* act, size_t arb, float* y, int64_t ldy, int64_t n_in,
            int64_t /*n_out*/, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / 32;
    const int S = sub_rows();
    const size_t sub_bytes = 18 * static_cast<size_t>(S) * static_cast<size_t>(nb);
    const size_t group_bytes = sub_bytes * static_cast<size_t>(kRows / S);
    uint8_t* scratch = thread_scratch(kMaxPairs * kTileBytes * static_cast<size_t>(nb));
    for (int64_t t0 = 0; t0 < T; t0 += 2 * kMaxPairs) {
        const int nt = T - t0 < 2 * kMaxPairs ? static_cast<int>(T - t0) : 2 * kMaxPairs;
        const int np = (nt + 1) / 2;
        for (int p = 0; p < np; ++p) {
            const int64_t ta = t0 + 2 * p, tz = 2 * p + 1 < nt ? ta + 1 : ta;  // odd last row: itself
            prepare_pair(act + ta * arb, act + tz * arb, nb, scratch + p * kTileBytes * static_cast<size_t>(nb));
        }
        for (int64_t og = o0; og < o1; og += kRows) {
            const uint8_t* wg = w + (og / kRows) * group_bytes;
            for (int s0 = 0; s0 < kRows && og + s0 < o1; s0 += S) {
                const uint8_t* sub = wg + (s0 / S) * sub_bytes;
                float r[kMaxPairs][16];
                switch (np) {
                    case 1: tile<1>(sub, S, nb, scratch, r); break;
                    case 2: tile<2>(sub, S, nb, scratch, r); break;
                    case 3: tile<3>(sub, S, nb, scratch, r); break;
                    default: tile<4>(sub, S, nb, scratch, r); break;
                }
                const int64_t rows = o1 - og - s0 < S ? o1 - og - s0 : S;
                for (int p = 0; p < np; ++p)
                    for (int ln = 0; ln < 2 * S; ++ln) {
                        const int rr = 2 * (ln / 4) + ln % 2, tt = 2 * p + (ln / 2) % 2;
                        if (rr < rows && tt < nt) y[(t0 + tt) * ldy + og + s0 + rr] = r[p][ln];
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
    kRows, size_q4_0, pack_q4_0, quantize_q8_0_neon, matmul};

}  // namespace loom::kernels::arm
