// Weight repacking and activation panels for the x86 kernels (layouts in
// x86_common.h). Plain C++, built with the baseline ISA: it runs once per weight at
// load, and once per ops::matmul_n call on the (small) activations.
#include <emmintrin.h>  // SSE2: baseline on x86-64

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/x86/x86_common.h"
#include "quant/formats.h"
#include "quant/ref.h"

namespace loom::kernels::x86 {

using quant::BlockQ4_0;
using quant::BlockQ4_K;
using quant::BlockQ5_K;
using quant::BlockQ6_K;
using quant::BlockQ8_0;
using quant::BlockQ8_K;

namespace {

size_t packed_bytes(int64_t n_out, int64_t n_in, int qk, size_t main, int R) {
    return static_cast<size_t>(ceil_div(n_out, R)) * group_bytes(n_in / qk, main, R) + 64;
}

// Packs rows made of blocks of `block_bytes` (fp16 scale first, as Q4_0 / Q8_0) whose
// quant bytes (`qbytes` of them after the scale) go to the main part 4 at a time.
void pack_legacy(const uint8_t* src, uint8_t* dst0, int64_t n_out, int64_t n_in, int R, int qk,
                 size_t block_bytes, size_t qbytes, uint8_t xor_mask) {
    const int64_t nb = n_in / qk, ng = ceil_div(n_out, R);
    const size_t main = qbytes * static_cast<size_t>(R), gs = group_bytes(nb, main, R);
    const size_t rb = block_bytes * static_cast<size_t>(nb);
    uint8_t* dst = align64(dst0);
    const uint32_t mask32 = 0x01010101u * xor_mask;
    const size_t scales = static_cast<size_t>(nb) * 2 * static_cast<size_t>(R);
    for (int64_t g = 0; g < ng; ++g) {
        uint8_t* G = dst + g * gs;
        uint8_t* S = G + nb * main;
        // A full group writes every byte but the scale area's padding; the last,
        // partial group is zeroed whole (its missing rows stay zero).
        if ((g + 1) * R <= n_out) std::memset(S + scales, 0, gs - nb * main - scales);
        else std::memset(G, 0, gs);
        for (int r = 0; r < R && g * R + r < n_out; ++r) {
            const uint8_t* row = src + static_cast<size_t>(g * R + r) * rb;
            for (int64_t b = 0; b < nb; ++b) {
                const uint8_t* blk = row + b * block_bytes;
                std::memcpy(S + b * 2 * R + 2 * r, blk, 2);
                uint8_t* M = G + b * main + 4 * r;
                for (size_t c = 0; c < qbytes / 4; ++c) {
                    uint32_t w;
                    std::memcpy(&w, blk + 2 + 4 * c, 4);
                    w ^= mask32;
                    std::memcpy(M + c * 4 * R, &w, 4);
                }
            }
        }
    }
}

// Sums of the int8 values in each 8-byte half of 16 bytes, via PSADBW on x + 128.
inline __m128i sum8x2(const uint8_t* p) {
    const __m128i v = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), _mm_set1_epi8(-128));
    return _mm_sub_epi64(_mm_sad_epu8(v, _mm_setzero_si128()), _mm_set1_epi64x(8 * 128));
}
inline int32_t sum16(const uint8_t* p) {
    const __m128i s = sum8x2(p);
    return _mm_cvtsi128_si32(_mm_add_epi64(s, _mm_unpackhi_epi64(s, s)));
}

// Q4_K / Q5_K (layout in x86_common.h): codes split into nibble vectors (and bit-4
// vectors for Q5_K), 6-bit scales and mins unpacked to bytes, d and dmin in the scale area.
template <bool kQ5>
void pack_k_asym(const uint8_t* src, uint8_t* dst0, int64_t n_out, int64_t n_in, int R) {
    using B = std::conditional_t<kQ5, BlockQ5_K, BlockQ4_K>;
    const int64_t nb = n_in / quant::QK_K, ng = ceil_div(n_out, R);
    const size_t main = kQ5 ? q5_K_main(R) : q4_K_main(R), gs = group_bytes(nb, main, R, 4);
    const size_t sub = (kQ5 ? 20 : 16) * static_cast<size_t>(R);  // bytes per sub-block of a group
    const size_t rb = sizeof(B) * static_cast<size_t>(nb);
    uint8_t* dst = align64(dst0);
    for (int64_t g = 0; g < ng; ++g) {
        uint8_t* G = dst + g * gs;
        std::memset(G, 0, gs);
        uint8_t* D = G + nb * main;
        for (int r = 0; r < R && g * R + r < n_out; ++r) {
            const uint8_t* row = src + static_cast<size_t>(g * R + r) * rb;
            for (int64_t b = 0; b < nb; ++b) {
                B blk;
                std::memcpy(&blk, row + b * sizeof(B), sizeof blk);
                uint8_t* M = G + b * main;
                for (int j = 0; j < 8; ++j) {
                    // Sub-block j's nibbles: low (j even) or high (j odd) halves of qs[32 (j/2) + l].
                    uint8_t* Q = M + j * sub;
                    const uint8_t* qs = blk.qs + 32 * (j / 2);
                    for (int c = 0; c < 4; ++c) {
                        uint32_t w0, w1;
                        std::memcpy(&w0, qs + 4 * c, 4);
                        std::memcpy(&w1, qs + 16 + 4 * c, 4);
                        const uint32_t v = (j & 1) ? ((w0 >> 4) & 0x0F0F0F0Fu) | (w1 & 0xF0F0F0F0u)
                                                   : (w0 & 0x0F0F0F0Fu) | ((w1 & 0x0F0F0F0Fu) << 4);
                        std::memcpy(Q + c * 4 * R + 4 * r, &v, 4);
                    }
                    if constexpr (kQ5) {  // bit 4 of code(32j + l) is bit j of qh[l]
                        uint32_t h = 0;
                        for (int v = 0; v < 8; ++v) {
                            uint32_t w;
                            std::memcpy(&w, blk.qh + 4 * v, 4);
                            h |= ((w >> j) & 0x01010101u) << v;
                        }
                        std::memcpy(Q + 16 * R + 4 * r, &h, 4);
                    }
                    uint8_t sc, m;
                    quant::ref::get_scale_min_k4(j, blk.scales, &sc, &m);
                    M[8 * sub + j * R + r] = sc;
                    M[8 * sub + 8 * R + (j / 2) * 2 * R + 2 * r + (j & 1)] = m;
                }
                std::memcpy(D + b * 4 * R + 2 * r, &blk.d, 2);
                std::memcpy(D + b * 4 * R + 2 * R + 2 * r, &blk.dmin, 2);
            }
        }
    }
}

}  // namespace

size_t packed_size_q4_0(int64_t n_out, int64_t n_in, int R) {
    return packed_bytes(n_out, n_in, quant::QK4_0, q4_0_main(R), R);
}
size_t packed_size_q8_0(int64_t n_out, int64_t n_in, int R) {
    return packed_bytes(n_out, n_in, quant::QK8_0, q8_0_main(R), R);
}
size_t packed_size_q6_K(int64_t n_out, int64_t n_in, int R) {
    return packed_bytes(n_out, n_in, quant::QK_K, q6_K_main(R), R);
}

size_t packed_size_q4_K(int64_t n_out, int64_t n_in, int R) {
    return static_cast<size_t>(ceil_div(n_out, R)) * group_bytes(n_in / quant::QK_K, q4_K_main(R), R, 4) + 64;
}
size_t packed_size_q5_K(int64_t n_out, int64_t n_in, int R) {
    return static_cast<size_t>(ceil_div(n_out, R)) * group_bytes(n_in / quant::QK_K, q5_K_main(R), R, 4) + 64;
}
void pack_q4_K(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in, int R) {
    pack_k_asym<false>(src, dst, n_out, n_in, R);
}
void pack_q5_K(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in, int R) {
    pack_k_asym<true>(src, dst, n_out, n_in, R);
}

void pack_q4_0(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in, int R) {
    static_assert(sizeof(BlockQ4_0) == 18);
    pack_legacy(src, dst, n_out, n_in, R, quant::QK4_0, sizeof(BlockQ4_0), 16, 0);
}

void pack_q8_0(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in, int R, bool offset128) {
    static_assert(sizeof(BlockQ8_0) == 34);
    pack_legacy(src, dst, n_out, n_in, R, quant::QK8_0, sizeof(BlockQ8_0), 32, offset128 ? 0x80 : 0);
}

void pack_q6_K(const uint8_t* src, uint8_t* dst0, int64_t n_out, int64_t n_in, int R) {
    const int64_t nb = n_in / quant::QK_K, ng = ceil_div(n_out, R);
    const size_t main = q6_K_main(R), gs = group_bytes(nb, main, R);
    const size_t rb = sizeof(BlockQ6_K) * static_cast<size_t>(nb);
    uint8_t* dst = align64(dst0);
    for (int64_t g = 0; g < ng; ++g) {
        uint8_t* G = dst + g * gs;
        std::memset(G, 0, gs);
        uint8_t* D = G + nb * main;
        for (int r = 0; r < R && g * R + r < n_out; ++r) {
            const uint8_t* row = src + static_cast<size_t>(g * R + r) * rb;
            for (int64_t b = 0; b < nb; ++b) {
                BlockQ6_K blk;
                std::memcpy(&blk, row + b * sizeof(BlockQ6_K), sizeof blk);
                uint8_t u[quant::QK_K];
                quant::ref::q6_K_codes(blk, u);  // u = code + 32, the whole block in one pass
                uint8_t* M = G + b * main;
                for (int j = 0; j < 16; ++j) {
                    for (int k = 0; k < 3; ++k)
                        for (int i = 0; i < 4; ++i)
                            M[(3 * j + k) * 4 * R + 4 * r + i] = static_cast<uint8_t>(
                                u[16 * j + 4 * k + i] | (((u[16 * j + 12 + i] >> (2 * k)) & 3) << 6));
                    M[192 * R + j * R + r] = static_cast<uint8_t>(blk.scales[j]);
                }
                std::memcpy(D + b * 2 * R + 2 * r, &blk.d, 2);
            }
        }
    }
}

void panel_q8_0(const uint8_t* act, size_t arb, int64_t nb, int tile, int off, int64_t T, int64_t t0, int64_t t1,
                uint8_t* panel) {
    constexpr size_t S = kPanelQ8_0Stride;
    for (; t0 < t1; t0 += tile) {
        const int64_t nt = T - t0 < tile ? T - t0 : tile;
        uint8_t* p = panel + static_cast<size_t>(t0 * nb) * S;
        for (int64_t b = 0; b < nb; ++b, p += nt * S) {
            for (int64_t t = 0; t < nt; ++t) {
                const uint8_t* blk = act + (t0 + t) * arb + b * sizeof(BlockQ8_0);
                uint16_t d16;
                std::memcpy(&d16, blk, 2);
                std::memcpy(p + t * 32, blk + 2, 32);
                const int32_t sum = sum16(blk + 2) + sum16(blk + 18);
                const float d = quant::fp16_to_f32(d16);
                const int32_t corr = -off * sum;
                std::memcpy(p + nt * 32 + t * 4, &d, 4);
                std::memcpy(p + nt * 36 + t * 4, &corr, 4);
            }
        }
    }
}

void panel_q8_K(const uint8_t* act, size_t arb, int64_t nb, int tile, int64_t T, int64_t t0, int64_t t1,
                uint8_t* panel) {
    constexpr size_t S = kPanelQ8_KStride;
    for (; t0 < t1; t0 += tile) {
        const int64_t nt = T - t0 < tile ? T - t0 : tile;
        uint8_t* p = panel + static_cast<size_t>(t0 * nb) * S;
        for (int64_t b = 0; b < nb; ++b, p += nt * S) {
            for (int64_t t = 0; t < nt; ++t) {
                const uint8_t* blk = act + (t0 + t) * arb + b * sizeof(BlockQ8_K);
                std::memcpy(p + t * 256, blk + offsetof(BlockQ8_K, qs), 256);
                for (int j = 0; j < 16; ++j) {  // from qs, not trusting bsums
                    const int32_t corr = -32 * sum16(blk + offsetof(BlockQ8_K, qs) + 16 * j);
                    std::memcpy(p + nt * 256 + (t * 16 + j) * 4, &corr, 4);
                }
                std::memcpy(p + nt * 320 + t * 4, blk + offsetof(BlockQ8_K, d), 4);
            }
        }
    }
}

void panel_q8_K_sums(const uint8_t* act, size_t arb, int64_t nb, int tile, int64_t T, int64_t t0, int64_t t1,
                     uint8_t* panel) {
    constexpr size_t S = kPanelQ8_KSumsStride;
    for (; t0 < t1; t0 += tile) {
        const int64_t nt = T - t0 < tile ? T - t0 : tile;
        uint8_t* p = panel + static_cast<size_t>(t0 * nb) * S;
        for (int64_t b = 0; b < nb; ++b, p += nt * S) {
            for (int64_t t = 0; t < nt; ++t) {
                const uint8_t* blk = act + (t0 + t) * arb + b * sizeof(BlockQ8_K);
                std::memcpy(p + t * 256, blk + offsetof(BlockQ8_K, qs), 256);
                int16_t bs[16], s[8];
                std::memcpy(bs, blk + offsetof(BlockQ8_K, bsums), sizeof bs);
                for (int j = 0; j < 8; ++j) s[j] = static_cast<int16_t>(-(bs[2 * j] + bs[2 * j + 1]));
                std::memcpy(p + nt * 256 + t * 16, s, sizeof s);
                std::memcpy(p + nt * 272 + t * 4, blk + offsetof(BlockQ8_K, d), 4);
            }
        }
    }
}

float* acc_scratch(size_t n) {
    thread_local std::vector<float> buf;
    if (buf.size() < n + 16) buf.resize(n + 16);
    return reinterpret_cast<float*>(align64(reinterpret_cast<uint8_t*>(buf.data())));
}

}  // namespace loom::kernels::x86
