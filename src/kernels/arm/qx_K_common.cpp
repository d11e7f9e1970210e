// Baseline-AArch64 helpers of the Q4_K / Q5_K Arm kernels (see arm_common.h): the
// 4-row interleaved packing and the activation preparation. Default -march.
#include <arm_neon.h>

#include <cstring>
#include <stdexcept>

#include "kernels/arm/arm_common.h"
#include "quant/formats.h"
#include "quant/ref.h"

namespace loom::kernels::arm {

using namespace loom::quant;

size_t k_asym_size(GgmlType t, int64_t n_out, int64_t n_in) {
    const size_t gb = t == GgmlType::Q5_K ? kKGroupBlockQ5 : kKGroupBlockQ4;
    return gb * static_cast<size_t>((n_out + 3) / 4) * static_cast<size_t>(n_in / QK_K);
}

// 32 bytes of each of 4 rows (src[r], nullptr = zeros) -> 128 bytes, 8-byte interleave:
// vector v holds rows 2(v%2), 2(v%2)+1, bytes 8(v/2).. of each.
static void interleave_4x8(const uint8_t* const* src, uint8_t* out) {
    for (int v = 0; v < 8; ++v)
        for (int h = 0; h < 2; ++h) {
            const uint8_t* s = src[2 * (v % 2) + h];
            uint8_t* o = out + 16 * v + 8 * h;
            if (s) std::memcpy(o, s + 8 * (v / 2), 8);
            else std::memset(o, 0, 8);
        }
}

void pack_k_asym(GgmlType t, const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    const bool q5 = t == GgmlType::Q5_K;
    if ((!q5 && t != GgmlType::Q4_K) || n_in % QK_K != 0)
        throw std::invalid_argument("arm::pack_k_asym: bad arguments");
    const size_t wb = q5 ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    const size_t qs_off = q5 ? offsetof(BlockQ5_K, qs) : offsetof(BlockQ4_K, qs);
    const size_t gb = q5 ? kKGroupBlockQ5 : kKGroupBlockQ4;
    const int64_t nb = n_in / QK_K, n_groups = (n_out + 3) / 4;
    const size_t rb = wb * static_cast<size_t>(nb);
    uint8_t* out = dst;
    for (int64_t g = 0; g < n_groups; ++g)
        for (int64_t b = 0; b < nb; ++b, out += gb) {
            std::memset(out, 0, 80);
            const uint8_t* blk[4];
            for (int r = 0; r < 4; ++r) {
                const int64_t row = 4 * g + r;
                blk[r] = row < n_out ? src + static_cast<size_t>(row) * rb + static_cast<size_t>(b) * wb : nullptr;
                if (!blk[r]) continue;
                std::memcpy(out + 2 * r, blk[r], 2);      // d
                std::memcpy(out + 8 + 2 * r, blk[r] + 2, 2);  // dmin
                uint8_t sc[9] = {};
                for (int j = 0; j < 8; ++j) ref::get_scale_min_k4(j, blk[r] + 4, &sc[j], out + 48 + 8 * r + j);
                for (int j = 0; j < 8; ++j) out[16 + 4 * j + r] = static_cast<uint8_t>(static_cast<int8_t>(sc[j] - sc[j + 1]));
            }
            for (int p = 0; p < 4; ++p) {
                const uint8_t* s[4];
                for (int r = 0; r < 4; ++r) s[r] = blk[r] ? blk[r] + qs_off + 32 * p : nullptr;
                interleave_4x8(s, out + 80 + 128 * p);
            }
            if (q5) {
                const uint8_t* s[4];
                for (int r = 0; r < 4; ++r) s[r] = blk[r] ? blk[r] + offsetof(BlockQ5_K, qh) : nullptr;
                interleave_4x8(s, out + 592);
            }
        }
}

// bsum pairs of one Q8_K block split as bh * 128 + bl (bh in -32..31, bl in 0..127).
static int8x16_t split_sums(const uint8_t* blk) {
    const int16x8_t b0 = vld1q_s16(reinterpret_cast<const int16_t*>(blk + offsetof(BlockQ8_K, bsums)));
    const int16x8_t b1 = vld1q_s16(reinterpret_cast<const int16_t*>(blk + offsetof(BlockQ8_K, bsums) + 16));
    const int16x8_t s = vpaddq_s16(b0, b1);  // sub-block sums of 32 (|s| <= 32 * 128)
    return vcombine_s8(vmovn_s16(vshrq_n_s16(s, 7)), vmovn_s16(vandq_s16(s, vdupq_n_s16(127))));
}

// The 32 tiles [x 8 bytes | z 8 bytes] of one Q8_K block pair (512 bytes).
static void act_tiles(const uint8_t* x, const uint8_t* z, uint8_t* out) {
    int8_t* o = reinterpret_cast<int8_t*>(out);
    for (int c = 0; c < 16; ++c) {  // 16 bytes of each row -> 2 tiles
        const int64x2_t a = vreinterpretq_s64_s8(vld1q_s8(reinterpret_cast<const int8_t*>(x + 4 + 16 * c)));
        const int64x2_t bz = vreinterpretq_s64_s8(vld1q_s8(reinterpret_cast<const int8_t*>(z + 4 + 16 * c)));
        vst1q_s8(o + 32 * c, vreinterpretq_s8_s64(vzip1q_s64(a, bz)));
        vst1q_s8(o + 32 * c + 16, vreinterpretq_s8_s64(vzip2q_s64(a, bz)));
    }
}

void k_act_pair(const uint8_t* x, const uint8_t* z, int64_t nb, uint8_t* out) {
    for (int64_t b = 0; b < nb; ++b, x += sizeof(BlockQ8_K), z += sizeof(BlockQ8_K), out += kKPairBlock) {
        int8_t* o = reinterpret_cast<int8_t*>(out);
        act_tiles(x, z, out);
        const int64x2_t sx = vreinterpretq_s64_s8(split_sums(x)), sz = vreinterpretq_s64_s8(split_sums(z));
        vst1q_s8(o + 512, vreinterpretq_s8_s64(vzip1q_s64(sx, sz)));
        vst1q_s8(o + 528, vreinterpretq_s8_s64(vzip2q_s64(sx, sz)));
        float dx, dz;
        std::memcpy(&dx, x, 4);
        std::memcpy(&dz, z, 4);
        const float d[4] = {dx, dx, dz, dz};
        std::memcpy(out + 544, d, 16);
    }
}

// ------------------------------------------------------------------ Q6_K
size_t q6_K_x4_size(int64_t n_out, int64_t n_in) {
    return kQ6GroupBlock * static_cast<size_t>((n_out + 3) / 4) * static_cast<size_t>(n_in / QK_K);
}

void pack_q6_K_x4(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    if (n_in % QK_K != 0) throw std::invalid_argument("arm::pack_q6_K_x4: bad arguments");
    const size_t wb = sizeof(BlockQ6_K);
    const int64_t nb = n_in / QK_K, n_groups = (n_out + 3) / 4;
    const size_t rb = wb * static_cast<size_t>(nb);
    uint8_t* out = dst;
    for (int64_t g = 0; g < n_groups; ++g)
        for (int64_t b = 0; b < nb; ++b, out += kQ6GroupBlock) {
            std::memset(out, 0, 72);
            const uint8_t* blk[4];
            for (int r = 0; r < 4; ++r) {
                const int64_t row = 4 * g + r;
                blk[r] = row < n_out ? src + static_cast<size_t>(row) * rb + static_cast<size_t>(b) * wb : nullptr;
                if (!blk[r]) continue;
                std::memcpy(out + 2 * r, blk[r] + offsetof(BlockQ6_K, d), 2);
                for (int j = 0; j < 16; ++j) out[8 + 4 * j + r] = blk[r][offsetof(BlockQ6_K, scales) + j];
            }
            for (int q = 0; q < 4; ++q) {
                const uint8_t* s[4];
                for (int r = 0; r < 4; ++r) s[r] = blk[r] ? blk[r] + offsetof(BlockQ6_K, ql) + 32 * q : nullptr;
                interleave_4x8(s, out + 72 + 128 * q);
            }
            for (int h = 0; h < 2; ++h) {
                const uint8_t* s[4];
                for (int r = 0; r < 4; ++r) s[r] = blk[r] ? blk[r] + offsetof(BlockQ6_K, qh) + 32 * h : nullptr;
                interleave_4x8(s, out + 584 + 128 * h);
            }
        }
}

void k6_act_pair(const uint8_t* x, const uint8_t* z, int64_t nb, uint8_t* out, bool sdot) {
    for (int64_t b = 0; b < nb; ++b, x += sizeof(BlockQ8_K), z += sizeof(BlockQ8_K), out += kQ6PairBlock) {
        act_tiles(x, z, out);
        int16_t bx[16], bz[16];
        std::memcpy(bx, x + offsetof(BlockQ8_K, bsums), 32);
        std::memcpy(bz, z + offsetof(BlockQ8_K, bsums), 32);
        for (int j = 0; j < 16; ++j) {
            const int32_t v[4] = {sdot ? -16 * bx[j] : -32 * bx[j], sdot ? -16 * bx[j] : -32 * bx[j],
                                  sdot ? -16 * bz[j] : -32 * bz[j], sdot ? -16 * bz[j] : -32 * bz[j]};
            std::memcpy(out + 512 + 16 * j, v, 16);
        }
        float dx, dz;
        std::memcpy(&dx, x, 4);
        std::memcpy(&dz, z, 4);
        const float d[4] = {dx, dx, dz, dz};
        std::memcpy(out + 768, d, 16);
    }
}

}  // namespace loom::kernels::arm
