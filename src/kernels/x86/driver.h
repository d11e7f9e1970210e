// The tiling driver shared by every x86 matmul kernel (loop structure in x86_common.h),
// parameterised by a micro-kernel, so an ISA x format is one register tile.
//
// A micro-kernel K derives from a lane set (Ymm8: 8 output rows per ymm, Zmm16: 16 per
// zmm) and provides:
//   kQK                elements per weight block
//   kTile, kKBlock     activation rows per register tile (at most); blocks per GEMM sweep
//   tile_rows(T)       rows per tile (and panel tile) for a call on T rows: kTile, or
//                      fewer for many rows (Zmm16 / Ymm8 default: kTile)
//   kMain, kScale      main-part bytes per block of a group; scale-area bytes per row
//                      and block (2: fp16 d; 4: fp16 d then fp16 dmin, R each)
//   kStride            activation panel bytes per row and block
//   panel(act, arb, nb, T, t0, t1, out)
//                      writes the activation panel's tiles of rows [t0, t1) of T (the
//                      prepare step of MatmulKernel, once per ops::matmul_n call)
//   tile<NT>(wq, wd, pn, b0, b1, acc)
//                      NT activation rows x R output rows over blocks [b0, b1) of one
//                      group (wq: the group's main parts, wd: its scale area, pn: the
//                      tile's panel); acc[t] holds row t's running sums, updated in place.
//   kGroups            1, or 2 for a micro-kernel that also provides, for tiles of up
//                      to kTile2 rows,
//   tile2<NT>(wq, wd, gs, pn, b0, b1, pf, acc)
//                      the same over two adjacent groups at once (the second at wq + gs,
//                      its scales at wd + gs bytes): each activation broadcast feeds both
//                      groups' VPDPBUSDs, halving the loads per MAC; acc[t] for the
//                      first group, acc[NT + t] for the second. Same operations per
//                      output in the same order, so results equal tile<NT>'s bit for bit.
//                      pf: software-prefetch the weights (the pass's first tile, which
//                      brings them from memory; the other tiles find them in L1).
// Included by files built with different ISA flags: everything here has internal
// linkage (see x86_common.h).
#pragma once
#include <immintrin.h>

#include <cstring>
#include <utility>

#include "kernels/x86/x86_common.h"

namespace loom::kernels::x86 {

namespace {

inline __m256i bcast4_256(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

struct Ymm8 {
    static constexpr int R = 8, kGroups = 1;
    static constexpr int kTile2 = 0;
    using Vec = __m256;
    static Vec load(const float* p) { return _mm256_load_ps(p); }
    static Vec zero() { return _mm256_setzero_ps(); }
    static void store(float* p, Vec v) { _mm256_store_ps(p, v); }
    // The first `valid` of R floats of src to y (a plain store for all R: AMD's masked
    // stores are slow).
    static void store_rows(float* y, const float* src, int valid) {
        if (valid == R) return _mm256_storeu_ps(y, _mm256_load_ps(src));
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_maskstore_ps(y, m, _mm256_load_ps(src));
    }
};

#if defined(__AVX512F__)
inline __m512i bcast4_512(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

struct Zmm16 {
    static constexpr int R = 16, kGroups = 1;
    static constexpr int kTile2 = 0;
    using Vec = __m512;
    static Vec load(const float* p) { return _mm512_load_ps(p); }
    static Vec zero() { return _mm512_setzero_ps(); }
    static void store(float* p, Vec v) { _mm512_store_ps(p, v); }
    static void store_rows(float* y, const float* src, int valid) {
        if (valid == R) return _mm512_storeu_ps(y, _mm512_load_ps(src));
        _mm512_mask_storeu_ps(y, static_cast<__mmask16>((1u << valid) - 1), _mm512_load_ps(src));
    }
};
#endif

// NT rows over blocks [b0, b1) of one group; acc_mem holds NT x R running sums (not
// read for the first sweep, b0 = 0: they start at zero).
template <class K, int NT>
void group_tile(const uint8_t* wq, const uint16_t* wd, const uint8_t* pn, int64_t b0, int64_t b1, float* acc_mem) {
    typename K::Vec acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = b0 == 0 ? K::zero() : K::load(acc_mem + K::R * t);
    K::template tile<NT>(wq, wd, pn, b0, b1, acc);
    for (int t = 0; t < NT; ++t) K::store(acc_mem + K::R * t, acc[t]);
}

// Two adjacent groups (K::tile2): acc_mem holds NT x R running sums of the first
// group, acc_mem2 those of the second.
template <class K, int NT>
void group_tile2(const uint8_t* wq, const uint16_t* wd, size_t gs, const uint8_t* pn, int64_t b0, int64_t b1, bool pf,
                 float* acc_mem, float* acc_mem2) {
    typename K::Vec acc[2 * NT];
    for (int t = 0; t < NT; ++t) {
        acc[t] = b0 == 0 ? K::zero() : K::load(acc_mem + K::R * t);
        acc[NT + t] = b0 == 0 ? K::zero() : K::load(acc_mem2 + K::R * t);
    }
    K::template tile2<NT>(wq, wd, gs, pn, b0, b1, pf, acc);
    for (int t = 0; t < NT; ++t) {
        K::store(acc_mem + K::R * t, acc[t]);
        K::store(acc_mem2 + K::R * t, acc[NT + t]);
    }
}

// group_tile2<K, NT> for the tile sizes the micro-kernel has (NT <= kTile2).
template <class K, int NT>
void group_tile2_upto(const uint8_t* wq, const uint16_t* wd, size_t gs, const uint8_t* pn, int64_t b0, int64_t b1,
                      bool pf, float* acc_mem, float* acc_mem2) {
    if constexpr (NT <= K::kTile2) group_tile2<K, NT>(wq, wd, gs, pn, b0, b1, pf, acc_mem, acc_mem2);
}

// group_tile<K, nt> (groups = 1) or group_tile2<K, nt> (groups = 2) for nt in 1..kTile
// (direct calls, no table).
template <class K, size_t... I>
void run_tile(int groups, int nt, const uint8_t* wq, const uint16_t* wd, size_t gs, const uint8_t* pn, int64_t b0,
              int64_t b1, bool pf, float* acc, float* acc2, std::index_sequence<I...>) {
    if constexpr (K::kGroups == 2)
        if (groups == 2 && nt <= K::kTile2) {
            (void)((nt == static_cast<int>(I) + 1 &&
                    (group_tile2_upto<K, static_cast<int>(I) + 1>(wq, wd, gs, pn, b0, b1, pf, acc, acc2), true)) ||
                   ...);
            return;
        }
    (void)((nt == static_cast<int>(I) + 1 && (group_tile<K, static_cast<int>(I) + 1>(wq, wd, pn, b0, b1, acc), true)) ||
           ...);
}

// Rows per tile for T rows: K::tile_rows(T) where the micro-kernel has one, else kTile.
template <class K>
int tile_rows(int64_t T) {
    if constexpr (requires { K::tile_rows(T); }) return K::tile_rows(T);
    else return K::kTile;
}

// MatmulKernel::prepared_size and prepare of micro-kernel K: its activation panel.
template <class K>
size_t prepared_size(int64_t T, int64_t n_in) {
    return static_cast<size_t>(T * (n_in / K::kQK)) * K::kStride;
}
template <class K>
void prepare(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep) {
    K::panel(act, arb, n_in / K::kQK, T, t0, t1, prep);
}

// The MatmulKernel::matmul of micro-kernel K (pn: the panel of all T rows).
template <class K>
void matmul(const uint8_t* w, const uint8_t* /*act*/, size_t /*arb*/, const uint8_t* pn, float* y, int64_t ldy,
            int64_t n_in, int64_t /*n_out*/, int64_t o0, int64_t o1, int64_t T) {
    constexpr int R = K::R;
    const int kTile = tile_rows<K>(T);
    constexpr size_t S = K::kStride;
    const int64_t nb = n_in / K::kQK;
    const size_t gs = group_bytes(nb, K::kMain, R, K::kScale);
    const uint8_t* base = align64(w);
    // Passes of up to `pass` rows over the thread's weights keep the panel in L2. Within
    // a pass, for many rows, every tile sweeps kKBlock blocks of a group before the next
    // ones, so the group's weights are reused from L1; the running sums wait in a
    // contiguous per-thread buffer (same operations in the same order).
    const int64_t pass = rows_per_pass(nb, S, kTile);
    for (int64_t p0 = 0; p0 < T; p0 += pass) {
        const int64_t p1 = T - p0 < pass ? T : p0 + pass;
        const int64_t kb = p1 - p0 > kTile ? K::kKBlock : nb;
        // Groups in pairs where the micro-kernel has a two-group tile (the last, odd
        // one alone).
        for (int64_t o = o0; o < o1;) {
            const int groups = K::kGroups == 2 && kTile <= K::kTile2 && o1 - o > R ? 2 : 1;
            const uint8_t* g = base + (o / R) * gs;
            const auto* wd = reinterpret_cast<const uint16_t*>(g + nb * K::kMain);
            const int valid = o1 - o < R ? static_cast<int>(o1 - o) : R;
            const int valid2 = groups == 1 ? 0 : o1 - o - R < R ? static_cast<int>(o1 - o - R) : R;
            const size_t n_acc = static_cast<size_t>(p1 - p0) * R;
            float* accs = acc_scratch(n_acc * static_cast<size_t>(groups));
            for (int64_t b0 = 0; b0 < nb; b0 += kb) {
                const int64_t b1 = nb - b0 < kb ? nb : b0 + kb;
                for (int64_t t0 = p0; t0 < p1; t0 += kTile) {
                    const int nt = static_cast<int>(p1 - t0 < kTile ? p1 - t0 : kTile);
                    float* acc = accs + (t0 - p0) * R;
                    run_tile<K>(groups, nt, g, wd, gs, pn + t0 * nb * S, b0, b1, t0 == p0, acc, acc + n_acc,
                                std::make_index_sequence<K::kTile>{});
                    // After the last sweep, the tile's results go out at once: one cache
                    // line of y per row, rows ldy apart (a prompt's results are megabytes,
                    // and the lines of one column stripe share few cache sets), so their
                    // stores drain while the next tile computes instead of in one burst.
                    if (b1 == nb)
                        for (int64_t t = t0; t < t0 + nt; ++t) {
                            K::store_rows(y + t * ldy + o, accs + (t - p0) * R, valid);
                            if (groups == 2) K::store_rows(y + t * ldy + o + R, accs + n_acc + (t - p0) * R, valid2);
                        }
                }
            }
            o += static_cast<int64_t>(groups) * R;
        }
    }
}

}  // namespace

}  // namespace loom::kernels::x86
