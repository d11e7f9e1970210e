// Q4_0 x Q8_0 and Q8_0 x Q8_0 with AVX-512 VNNI: 16 output rows per zmm lane set.
//
// Weights are packed 16 rows x 4 bytes per vector (x86_common.h), as unsigned codes
// (Q4_0 nibbles 0..15 = q + 8; Q8_0 bytes q + 128). One VPDPBUSD against 4 activation
// bytes broadcast from the panel adds a 4-element partial dot to each row's int32 lane;
// starting the lane at corr = -off * sum(a) makes it the exact signed block dot isum.
// Per block and activation row: acc = fma((float)isum, d_w * d_a, acc), i.e. exactly
// the contract of kernels.h; the same code runs for one activation row (GEMV) and for
// tiles of up to 8 rows (GEMM), so every row of a GEMM equals its GEMV bit for bit.
// GEMM efficiency: per block and row, 8 VPDPBUSD plus one multiply and one FMA share the
// two 512-bit multiply pipes of Zen 4 / Zen 5, so 80% of the VPDPBUSD peak is the
// ceiling; the broadcast loads (one per VPDPBUSD in a one-group tile) held the 8-row tile
// to ~70 % of the peak in L1, the two-group tile (tile2, many rows) reaches ~80 %.

// GCC 12 reports -Wmaybe-uninitialized inside the AVX-512 intrinsics headers
// (their _mm512_undefined_* idiom); silenced for the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstring>

#include "kernels/kernels.h"
#include "kernels/x86/x86_kernels.h"
#include "kernels/x86/driver.h"
#include "kernels/x86/x86_common.h"

namespace loom::kernels::x86 {

namespace {

constexpr int R = 16;
// Activation rows per register tile: up to 8 (one group of 16 output rows: a batch of
// up to 8 tokens in one tile that streams the weights once); many rows (a prompt) in
// tiles of 6 over two groups (tile2: 12 + 12 accumulators). The panel's tiles follow
// (tile_rows); kPrepTile, a multiple of both, is the unit of preparing it in parts.
constexpr int kTile = 8, kTile2 = 6, kPrepTile = 24;
constexpr int tile_rows(int64_t T) { return T <= kTile ? kTile : kTile2; }

inline __m512i bcast4(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

template <bool kQ4>
struct Fmt {
    static constexpr size_t main = kQ4 ? q4_0_main(R) : q8_0_main(R);
    static constexpr int off = kQ4 ? 8 : 128;
    static constexpr int64_t kblock = kQ4 ? 32 : 16;  // blocks per sweep: 8 KiB of weights, kept in L1
};

// Bytes from one group to the next, from its start (wq) and its scale area (wd).
template <bool kQ4>
inline size_t next_group(const uint8_t* wq, const uint16_t* wd) {
    const size_t main = static_cast<size_t>(reinterpret_cast<const uint8_t*>(wd) - wq);
    return main + round64(main / Fmt<kQ4>::main * 2 * R);
}

// Software prefetch while streaming block b of a group from memory (GEMV and batched
// decoding): its main part kPrefetchAhead bytes ahead, into L1 (prefetcht0), and the
// fp16 scales the block's loop reads from the start of each group: kPrefetchAhead past
// this block's (the next group's main part, early) and the same block's of the next
// group (`next` bytes on), so a group's scale lines are in cache before its first block. Measured
// on Zen 5, one thread, GEMV from DRAM: 0.74 of plain-read bandwidth before (prefetcht1,
// no next-group scales), 0.86 with both; two threads 0.72 -> 0.88.
template <bool kQ4>
inline void prefetch_block(const uint8_t* wq, const uint16_t* wdb, size_t next) {
    for (size_t l = 0; l < Fmt<kQ4>::main; l += 64) __builtin_prefetch(wq + kPrefetchAhead + l, 0, 3);
    const auto* sc = reinterpret_cast<const uint8_t*>(wdb);
    __builtin_prefetch(sc + kPrefetchAhead, 0, 3);
    __builtin_prefetch(sc + next, 0, 3);
}

// One group of 16 rows x NT activation rows over blocks [b0, b1): acc updated in place.
template <bool kQ4, int NT>
inline void tile(const uint8_t* wq, const uint16_t* wd, const uint8_t* pn, int64_t b0, int64_t b1, __m512* acc_io) {
    constexpr size_t S = kPanelQ8_0Stride;
    const __m512i m0f = _mm512_set1_epi8(0x0F);
    __m512 acc[NT];  // locals: stores through acc_io could alias the weights (uint8_t)
    for (int t = 0; t < NT; ++t) acc[t] = acc_io[t];
    const size_t gs = next_group<kQ4>(wq, wd);
    wq += b0 * Fmt<kQ4>::main;
    pn += b0 * NT * S;
    for (int64_t b = b0; b < b1; ++b, wq += Fmt<kQ4>::main, pn += NT * S) {
        if constexpr (NT <= kPrefetchRows) prefetch_block<kQ4>(wq, wd + b * R, gs);  // GEMV, small batches
        const uint8_t* aq = pn;
        const uint8_t* ad = pn + NT * 32;
        const uint8_t* ac = pn + NT * 36;
        // Few rows: two chains per row (shorter dependencies); many: one (fewer ops).
        constexpr bool kSplit = NT < 4;
        __m512i s[NT], s2[NT];
        for (int t = 0; t < NT; ++t) {
            s[t] = bcast4(ac + 4 * t);
            s2[t] = _mm512_setzero_si512();
        }
        if constexpr (kQ4) {
            for (int c = 0; c < 4; ++c) {
                __m512i n = _mm512_loadu_si512(wq + 64 * c);
                asm("" : "+v"(n));  // one load (the compiler would fold it into both uses)
                const __m512i lo = _mm512_and_si512(n, m0f);
                const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(n, 4), m0f);
                for (int t = 0; t < NT; ++t) {
                    s[t] = _mm512_dpbusd_epi32(s[t], lo, bcast4(aq + 32 * t + 4 * c));
                    if constexpr (kSplit) s2[t] = _mm512_dpbusd_epi32(s2[t], hi, bcast4(aq + 32 * t + 16 + 4 * c));
                    else s[t] = _mm512_dpbusd_epi32(s[t], hi, bcast4(aq + 32 * t + 16 + 4 * c));
                }
            }
        } else {
            for (int c = 0; c < 8; c += 2) {
                const __m512i v0 = _mm512_loadu_si512(wq + 64 * c);
                const __m512i v1 = _mm512_loadu_si512(wq + 64 * (c + 1));
                for (int t = 0; t < NT; ++t) {
                    s[t] = _mm512_dpbusd_epi32(s[t], v0, bcast4(aq + 32 * t + 4 * c));
                    if constexpr (kSplit) s2[t] = _mm512_dpbusd_epi32(s2[t], v1, bcast4(aq + 32 * t + 4 * c + 4));
                    else s[t] = _mm512_dpbusd_epi32(s[t], v1, bcast4(aq + 32 * t + 4 * c + 4));
                }
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wd + b * R)));
        for (int t = 0; t < NT; ++t) {
            float da;
            std::memcpy(&da, ad + 4 * t, 4);
            const __m512 isum = _mm512_cvtepi32_ps(kSplit ? _mm512_add_epi32(s[t], s2[t]) : s[t]);
            acc[t] = _mm512_fmadd_ps(isum, _mm512_mul_ps(dw, _mm512_set1_ps(da)), acc[t]);
        }
    }
    for (int t = 0; t < NT; ++t) acc_io[t] = acc[t];
}

// Two adjacent groups (the second gs bytes on) x NT activation rows over blocks
// [b0, b1): each broadcast of 4 activation bytes feeds a VPDPBUSD of each group, so a
// block of 2 x 16 rows costs NT x (8 broadcasts + correction + scale) loads for 16 NT
// VPDPBUSDs instead of twice that (the loads, not the multiply pipes, bounded the
// one-group tile: ~70 % of the VPDPBUSD peak in L1 at 8 rows, ~80 % here at 6). Per
// output, the same operations in the same order as tile<kQ4, NT>.
template <bool kQ4, int NT>
inline void tile2(const uint8_t* wq, const uint16_t* wd, size_t gs, const uint8_t* pn, int64_t b0, int64_t b1,
                  bool pf, __m512* acc_io) {
    constexpr size_t S = kPanelQ8_0Stride;
    const __m512i m0f = _mm512_set1_epi8(0x0F);
    const auto* wd2 = reinterpret_cast<const uint16_t*>(reinterpret_cast<const uint8_t*>(wd) + gs);
    __m512 acc[2][NT];  // locals: stores through acc_io could alias the weights (uint8_t)
    for (int t = 0; t < NT; ++t) {
        acc[0][t] = acc_io[t];
        acc[1][t] = acc_io[NT + t];
    }
    wq += b0 * Fmt<kQ4>::main;
    pn += b0 * NT * S;
    for (int64_t b = b0; b < b1; ++b, wq += Fmt<kQ4>::main, pn += NT * S) {
        if (pf) {  // the pass's first tile: the weights come from memory
            prefetch_block<kQ4>(wq, wd + b * R, 2 * gs);  // scales of the next pair
            prefetch_block<kQ4>(wq + gs, wd2 + b * R, 2 * gs);
        }
        const uint8_t* aq = pn;
        const uint8_t* ad = pn + NT * 32;
        const uint8_t* ac = pn + NT * 36;
        __m512i s[2][NT];
        for (int t = 0; t < NT; ++t) s[0][t] = s[1][t] = bcast4(ac + 4 * t);
        for (int c = 0; c < (kQ4 ? 4 : 8); c += kQ4 ? 1 : 2) {
            // One load per weight vector (the compiler would fold it into both uses).
            __m512i n0 = _mm512_loadu_si512(wq + 64 * c), n1 = _mm512_loadu_si512(wq + gs + 64 * c);
            __m512i m0 = kQ4 ? n0 : _mm512_loadu_si512(wq + 64 * (c + 1));
            __m512i m1 = kQ4 ? n1 : _mm512_loadu_si512(wq + gs + 64 * (c + 1));
            if constexpr (kQ4) {
                asm("" : "+v"(n0), "+v"(n1));
                m0 = _mm512_and_si512(_mm512_srli_epi16(n0, 4), m0f);
                m1 = _mm512_and_si512(_mm512_srli_epi16(n1, 4), m0f);
                n0 = _mm512_and_si512(n0, m0f);
                n1 = _mm512_and_si512(n1, m0f);
            }
            // Q4_0: n = low nibbles (elements 4c..), m = high (16 + 4c..); Q8_0: n, m =
            // vectors c and c + 1 (elements 4c.., 4c + 4..).
            const int second = kQ4 ? 16 + 4 * c : 4 * c + 4;
            for (int t = 0; t < NT; ++t) {
                const __m512i a0 = bcast4(aq + 32 * t + 4 * c), a1 = bcast4(aq + 32 * t + second);
                s[0][t] = _mm512_dpbusd_epi32(s[0][t], n0, a0);
                s[1][t] = _mm512_dpbusd_epi32(s[1][t], n1, a0);
                s[0][t] = _mm512_dpbusd_epi32(s[0][t], m0, a1);
                s[1][t] = _mm512_dpbusd_epi32(s[1][t], m1, a1);
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wd + b * R)));
        const __m512 dw2 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wd2 + b * R)));
        for (int t = 0; t < NT; ++t) {
            float da;
            std::memcpy(&da, ad + 4 * t, 4);
            const __m512 vda = _mm512_set1_ps(da);
            acc[0][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[0][t]), _mm512_mul_ps(dw, vda), acc[0][t]);
            acc[1][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[1][t]), _mm512_mul_ps(dw2, vda), acc[1][t]);
        }
    }
    for (int t = 0; t < NT; ++t) {
        acc_io[t] = acc[0][t];
        acc_io[NT + t] = acc[1][t];
    }
}

// The micro-kernel for the shared driver (driver.h).
template <bool kQ4>
struct Legacy : Zmm16 {
    static constexpr int kQK = 32, kTile = x86::kTile, kKBlock = Fmt<kQ4>::kblock, kGroups = 2;
    static constexpr int kTile2 = x86::kTile2;
    static constexpr size_t kMain = Fmt<kQ4>::main, kScale = 2, kStride = kPanelQ8_0Stride;
    static int tile_rows(int64_t T) { return x86::tile_rows(T); }
    static void panel(const uint8_t* act, size_t arb, int64_t nb, int64_t T, int64_t t0, int64_t t1,
                      uint8_t* out) {
        panel_q8_0(act, arb, nb, x86::tile_rows(T), Fmt<kQ4>::off, T, t0, t1, out);
    }
    template <int NT>
    static void tile(const uint8_t* wq, const uint16_t* wd, const uint8_t* pn, int64_t b0, int64_t b1, Vec* acc) {
        x86::tile<kQ4, NT>(wq, wd, pn, b0, b1, acc);
    }
    template <int NT>
    static void tile2(const uint8_t* wq, const uint16_t* wd, size_t gs, const uint8_t* pn, int64_t b0, int64_t b1,
                      bool pf, Vec* acc) {
        x86::tile2<kQ4, NT>(wq, wd, gs, pn, b0, b1, pf, acc);
    }
};

size_t size_q4_0(int64_t n_out, int64_t n_in) { return packed_size_q4_0(n_out, n_in, R); }
size_t size_q8_0(int64_t n_out, int64_t n_in) { return packed_size_q8_0(n_out, n_in, R); }
void pack4(const uint8_t* s, uint8_t* d, int64_t n_out, int64_t n_in) { pack_q4_0(s, d, n_out, n_in, R); }
void pack8(const uint8_t* s, uint8_t* d, int64_t n_out, int64_t n_in) { pack_q8_0(s, d, n_out, n_in, R, true); }

}  // namespace

const MatmulKernel kMatmulQ4_0Avx512 = {
    "matmul_f32_q4_0x16x4_q8_0_avx512vnni", "avx512vnni", kAvx512Features, GgmlType::Q4_0, GgmlType::Q8_0, R,
    size_q4_0, pack4, quantize_q8_0_avx512, matmul<Legacy<true>>,
    kPrepTile, prepared_size<Legacy<true>>, prepare<Legacy<true>>};
const MatmulKernel kMatmulQ8_0Avx512 = {
    "matmul_f32_q8_0x16x4_q8_0_avx512vnni", "avx512vnni", kAvx512Features, GgmlType::Q8_0, GgmlType::Q8_0, R,
    size_q8_0, pack8, quantize_q8_0_avx512, matmul<Legacy<false>>,
    kPrepTile, prepared_size<Legacy<false>>, prepare<Legacy<false>>};

}  // namespace loom::kernels::x86
