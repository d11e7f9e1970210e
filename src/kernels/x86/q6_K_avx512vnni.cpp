// Q6_K x Q8_K with AVX-512 VNNI: 16 output rows per zmm lane set.
//
// Packed layout (x86_common.h): per sub-block j of 16 elements, three vectors of
// 16 rows x 4 bytes hold the unsigned codes u = q6 + 32 of elements 16j+0..11 in bits
// 0..5 and, two bits per vector, the codes of elements 16j+12..15 in bits 6..7.
// Unpacking costs 9 simple ops per 4 vectors (AND, 16-bit shifts, VPTERNLOGD).
// Per sub-block j and activation row, a lane starts at -32 * bsum_j, takes four
// VPDPBUSD against broadcast activation bytes (= exact <q6_j, q8_j>), is multiplied
// by the row's scale_j (VPMULLD) and added to isum. Per block:
// acc = fma((float)isum, d_w * d_a, acc), exactly kMatmulQ6_KScalar's arithmetic.

// GCC 12 reports -Wmaybe-uninitialized inside the AVX-512 intrinsics headers
// (their _mm512_undefined_* idiom); silenced for the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstring>

#include "kernels/kernels.h"
#include "kernels/x86/driver.h"
#include "kernels/x86/x86_common.h"
#include "kernels/x86/x86_kernels.h"

namespace loom::kernels::x86 {

namespace {

constexpr int R = 16;
constexpr int kTile = 8;
constexpr int kKBlock = 4;
constexpr size_t kMain = q6_K_main(R);
constexpr size_t S = kPanelQ8_KStride;
constexpr int kSelect = 0xE4;  // VPTERNLOGD: (A & C) | (B & ~C)

inline __m512i bcast4(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

template <int NT>
inline void tile(const uint8_t* wq, const uint16_t* wd, const uint8_t* pn, int64_t b0, int64_t b1, __m512* acc) {
    const __m512i m3f = _mm512_set1_epi8(0x3F), m03 = _mm512_set1_epi8(0x03), m0f = _mm512_set1_epi8(0x0F);
    // Bytes to the next group (its d lines are prefetched a group ahead: the loop reads
    // a group's d from its first block on).
    const size_t main = static_cast<size_t>(reinterpret_cast<const uint8_t*>(wd) - wq);
    const size_t gs = main + round64(main / kMain * 2 * R);
    wq += b0 * kMain;
    pn += b0 * NT * S;
    for (int64_t b = b0; b < b1; ++b, wq += kMain, pn += NT * S) {
        const uint8_t* aq = pn;
        const uint8_t* ac = pn + NT * 256;
        const uint8_t* ad = pn + NT * 320;
        __m512i isum[NT];
        for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
        for (int j = 0; j < 16; ++j) {
            const uint8_t* q = wq + 192 * j;
            if constexpr (NT <= kPrefetchRows) prefetch_lines_l1(q, 192);  // GEMV, small batches: weights from DRAM once
            const __m512i B0 = _mm512_loadu_si512(q), B1 = _mm512_loadu_si512(q + 64);
            const __m512i B2 = _mm512_loadu_si512(q + 128);
            const __m512i q0 = _mm512_and_si512(B0, m3f), q1 = _mm512_and_si512(B1, m3f);
            const __m512i q2 = _mm512_and_si512(B2, m3f);
            const __m512i lo = _mm512_ternarylogic_epi32(_mm512_srli_epi16(B0, 6), _mm512_srli_epi16(B1, 4), m03, kSelect);
            const __m512i q3 = _mm512_and_si512(
                _mm512_ternarylogic_epi32(lo, _mm512_srli_epi16(B2, 2), m0f, kSelect), m3f);
            const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wq + 192 * R + R * j)));
            for (int t = 0; t < NT; ++t) {
                const uint8_t* a = aq + 256 * t + 16 * j;
                __m512i s = bcast4(ac + 4 * (16 * t + j));
                s = _mm512_dpbusd_epi32(s, q0, bcast4(a));
                s = _mm512_dpbusd_epi32(s, q1, bcast4(a + 4));
                s = _mm512_dpbusd_epi32(s, q2, bcast4(a + 8));
                s = _mm512_dpbusd_epi32(s, q3, bcast4(a + 12));
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s, sc));
            }
        }
        if constexpr (NT <= kPrefetchRows) {
            prefetch_lines_l1(wq + 192 * R, 16 * R);  // sub-block scales
            __builtin_prefetch(reinterpret_cast<const uint8_t*>(wd + b * R) + gs, 0, 3);  // d, next group
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wd + b * R)));
        for (int t = 0; t < NT; ++t) {
            float da;
            std::memcpy(&da, ad + 4 * t, 4);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(dw, _mm512_set1_ps(da)), acc[t]);
        }
    }
}

// The micro-kernel for the shared driver (driver.h).
struct Q6K : Zmm16 {
    static constexpr int kQK = 256, kTile = x86::kTile, kKBlock = x86::kKBlock;
    static constexpr size_t kMain = x86::kMain, kScale = 2, kStride = S;
    static void panel(const uint8_t* act, size_t arb, int64_t nb, int64_t T, int64_t t0, int64_t t1,
                      uint8_t* out) {
        panel_q8_K(act, arb, nb, kTile, T, t0, t1, out);
    }
    template <int NT>
    static void tile(const uint8_t* wq, const uint16_t* wd, const uint8_t* pn, int64_t b0, int64_t b1, Vec* acc) {
        x86::tile<NT>(wq, wd, pn, b0, b1, acc);
    }
};

size_t size_q6_K(int64_t n_out, int64_t n_in) { return packed_size_q6_K(n_out, n_in, R); }
void pack6(const uint8_t* s, uint8_t* d, int64_t n_out, int64_t n_in) { pack_q6_K(s, d, n_out, n_in, R); }

}  // namespace

const MatmulKernel kMatmulQ6_KAvx512 = {
    "matmul_f32_q6_Kx16x4_q8_K_avx512vnni", "avx512vnni", kAvx512Features, GgmlType::Q6_K, GgmlType::Q8_K, R,
    size_q6_K, pack6, quantize_q8_K_avx512, matmul<Q6K>,
    Q6K::kTile, prepared_size<Q6K>, prepare<Q6K>};

}  // namespace loom::kernels::x86
