// Baseline-AArch64 helpers of the Arm kernels (see arm_common.h): packing, the
// activations' prepare steps, the NEON Q8_0 quantizer. Built with the default -march
// (armv8-a).
#include "kernels/arm/arm_common.h"

#include <arm_neon.h>

#include <cstring>
#include <stdexcept>

#include "quant/formats.h"

namespace loom::kernels::arm {

using namespace loom::quant;

size_t interleaved_size(GgmlType t, int R, int64_t n_out, int64_t n_in) {
    const int64_t rows = (n_out + R - 1) / R * R;
    return row_bytes(t, n_in) * static_cast<size_t>(rows);
}

void pack_interleaved(GgmlType t, int R, int S, int B, const uint8_t* src, uint8_t* dst, int64_t n_out,
                      int64_t n_in) {
    const bool q4 = t == GgmlType::Q4_0;
    if ((!q4 && t != GgmlType::Q8_0) || S <= 0 || R % S != 0 || n_in % 32 != 0)
        throw std::invalid_argument("arm::pack_interleaved: bad arguments");
    const int Q = q4 ? 16 : 32;              // quant bytes per row and block
    const size_t bb = 2 + static_cast<size_t>(Q);  // plain block bytes
    const int64_t nb = n_in / 32;
    const size_t rb = bb * static_cast<size_t>(nb);
    const uint8_t x = q4 ? 0x88 : 0x00;
    const uint8_t zero_q = q4 ? 0x88 : 0x00;  // a zero weight in the plain encoding
    const int64_t n_groups = (n_out + R - 1) / R;
    uint8_t* out = dst;
    for (int64_t g = 0; g < n_groups; ++g) {
        for (int s0 = 0; s0 < R; s0 += S) {
            const int64_t r0 = g * R + s0;  // first row of the sub-group
            for (int64_t b = 0; b < nb; ++b) {
                for (int r = 0; r < S; ++r) {
                    uint16_t d = 0;
                    if (r0 + r < n_out) std::memcpy(&d, src + (r0 + r) * rb + b * bb, 2);
                    std::memcpy(out + 2 * r, &d, 2);
                }
                uint8_t* q = out + 2 * S;
                for (int i = 0; i < S * Q; ++i) {
                    const int c = i / B, r = c % S, byte = (c / S) * B + i % B;
                    const uint8_t v = r0 + r < n_out ? src[(r0 + r) * rb + b * bb + 2 + byte] : zero_q;
                    q[i] = v ^ x;
                }
                out += S * bb;
            }
        }
    }
}

// ------------------------------------------------------------------ prepared activations
namespace {
inline int8x16_t zip1_64(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}
inline int8x16_t zip2_64(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}

// One pair's block (kQ8PairBlock bytes) from Q8_0 blocks x and z.
void q8_0_pair_block(const uint8_t* x, const uint8_t* z, float s, uint8_t* out) {
    const int8x16_t x0 = vld1q_s8(reinterpret_cast<const int8_t*>(x + 2));
    const int8x16_t x1 = vld1q_s8(reinterpret_cast<const int8_t*>(x + 18));
    const int8x16_t z0 = vld1q_s8(reinterpret_cast<const int8_t*>(z + 2));
    const int8x16_t z1 = vld1q_s8(reinterpret_cast<const int8_t*>(z + 18));
    int8_t* o = reinterpret_cast<int8_t*>(out);
    vst1q_s8(o, zip1_64(x0, z0));
    vst1q_s8(o + 16, zip1_64(x1, z1));
    vst1q_s8(o + 32, zip2_64(x0, z0));
    vst1q_s8(o + 48, zip2_64(x1, z1));
    __fp16 hx, hz;
    std::memcpy(&hx, x, 2);
    std::memcpy(&hz, z, 2);
    const float dx = static_cast<float>(hx) * s, dz = static_cast<float>(hz) * s;
    const float d[4] = {dx, dx, dz, dz};
    std::memcpy(out + 64, d, 16);
}

void q8_0_tiles_scaled(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, float s,
                       uint8_t* prep) {
    const int64_t nb = n_in / 32;
    for (; t0 < t1; t0 += kQ8TileRows) {
        const int64_t nt = T - t0 < kQ8TileRows ? T - t0 : kQ8TileRows, np = (nt + 1) / 2;
        uint8_t* tile = prep + static_cast<size_t>(t0 / 2) * static_cast<size_t>(nb) * kQ8PairBlock;
        for (int64_t p = 0; p < np; ++p) {
            const uint8_t* x = act + (t0 + 2 * p) * static_cast<int64_t>(arb);
            const uint8_t* z = 2 * p + 1 < nt ? x + arb : x;
            constexpr int64_t kB = sizeof(BlockQ8_0);
            for (int64_t b = 0; b < nb; ++b)
                q8_0_pair_block(x + b * kB, z + b * kB, s, tile + static_cast<size_t>(b * np + p) * kQ8PairBlock);
        }
    }
}

// Pairs of rows [t0, t1) of T (t0 even): pair(x, z, dst) for each, an odd last row with itself.
template <class F>
void for_pairs(const uint8_t* act, size_t arb, int64_t T, int64_t t0, int64_t t1, size_t pair_bytes, uint8_t* prep,
               F pair) {
    for (int64_t t = t0; t < t1; t += 2) {
        const uint8_t* x = act + t * static_cast<int64_t>(arb);
        pair(x, t + 1 < T ? x + arb : x, prep + static_cast<size_t>(t / 2) * pair_bytes, t + 1 >= T);
    }
}
}  // namespace

size_t q8_0_tiles_size(int64_t T, int64_t n_in) {
    return static_cast<size_t>((T + 1) / 2) * static_cast<size_t>(n_in / 32) * kQ8PairBlock;
}
void q4_0_tiles(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep) {
    q8_0_tiles_scaled(act, arb, T, n_in, t0, t1, 0.0625f, prep);
}
void q8_0_tiles(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep) {
    q8_0_tiles_scaled(act, arb, T, n_in, t0, t1, 1.0f, prep);
}

size_t k_pairs_size(int64_t T, int64_t n_in) {
    return static_cast<size_t>((T + 1) / 2) * static_cast<size_t>(n_in / QK_K) * kKPairBlock;
}
size_t k_rows_size(int64_t T, int64_t n_in) {
    return static_cast<size_t>(T) * static_cast<size_t>(n_in / QK_K) * kKPairBlock;
}
void k_pairs(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep) {
    const int64_t nb = n_in / QK_K;
    for_pairs(act, arb, T, t0, t1, kKPairBlock * static_cast<size_t>(nb), prep,
              [&](const uint8_t* x, const uint8_t* z, uint8_t* o, bool) { k_act_pair(x, z, nb, o); });
}
void k_rows(const uint8_t* act, size_t arb, int64_t /*T*/, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep) {
    const int64_t nb = n_in / QK_K;
    for (int64_t t = t0; t < t1; ++t) {
        const uint8_t* x = act + t * static_cast<int64_t>(arb);
        k_act_pair(x, x, nb, prep + static_cast<size_t>(t) * kKPairBlock * static_cast<size_t>(nb));
    }
}
size_t k6_pairs_size(int64_t T, int64_t n_in) {
    return static_cast<size_t>((T + 1) / 2) * static_cast<size_t>(n_in / QK_K) * kQ6PairBlock;
}
size_t k6_rows_size(int64_t T, int64_t n_in) {
    return static_cast<size_t>(T) * static_cast<size_t>(n_in / QK_K) * kQ6PairBlock;
}
void k6_pairs(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep) {
    const int64_t nb = n_in / QK_K;
    for_pairs(act, arb, T, t0, t1, kQ6PairBlock * static_cast<size_t>(nb), prep,
              [&](const uint8_t* x, const uint8_t* z, uint8_t* o, bool odd) { k6_act_pair(x, z, nb, o, odd); });
}
void k6_rows(const uint8_t* act, size_t arb, int64_t /*T*/, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep) {
    const int64_t nb = n_in / QK_K;
    for (int64_t t = t0; t < t1; ++t) {
        const uint8_t* x = act + t * static_cast<int64_t>(arb);
        k6_act_pair(x, x, nb, prep + static_cast<size_t>(t) * kQ6PairBlock * static_cast<size_t>(nb), true);
    }
}

// ------------------------------------------------------------------ quantize
void quantize_q8_0_neon(const float* x, void* y, int64_t n_in) {
    auto* out = static_cast<uint8_t*>(y);
    const int64_t nb = n_in / QK8_0;
    for (int64_t i = 0; i < nb; ++i, x += QK8_0, out += sizeof(BlockQ8_0)) {
        float32x4_t v[8];
        for (int j = 0; j < 8; ++j) v[j] = vld1q_f32(x + 4 * j);
        // fmax semantics (a NaN operand is ignored), as std::fmax in the reference.
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int j = 0; j < 8; ++j) m = vmaxnmq_f32(m, vabsq_f32(v[j]));
        const float amax = vmaxnmvq_f32(m);
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __fp16 dh = static_cast<__fp16>(d);  // FCVT: round to nearest even, as f32_to_fp16
        std::memcpy(out, &dh, 2);
        int8x8_t q[4];
        for (int j = 0; j < 4; ++j) {
            // FCVTAS: round to nearest, ties away from zero = std::round.
            const int32x4_t a = vcvtaq_s32_f32(vmulq_n_f32(v[2 * j], id));
            const int32x4_t b = vcvtaq_s32_f32(vmulq_n_f32(v[2 * j + 1], id));
            q[j] = vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b)));
        }
        vst1q_s8(reinterpret_cast<int8_t*>(out + 2), vcombine_s8(q[0], q[1]));
        vst1q_s8(reinterpret_cast<int8_t*>(out + 18), vcombine_s8(q[2], q[3]));
    }
}

void quantize_q8_K(const float* x, void* y, int64_t n_in) { quantize_row(GgmlType::Q8_K, x, y, n_in); }

}  // namespace loom::kernels::arm
