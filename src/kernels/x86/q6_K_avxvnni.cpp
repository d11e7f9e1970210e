// Q6_K x Q8_K with AVX-VNNI: 8 output rows per ymm lane set.
//
// Same packed layout as the AVX2 kernel (x86_common.h, R = 8): per sub-block j, three
// vectors of 8 rows x 4 bytes carry the unsigned codes u = q6 + 32 (0..63), the codes
// of elements 16j+12..15 spread two bits per vector over bits 6..7 (unpacked with
// AND / 16-bit shifts / OR, as in the AVX2 kernel). Per sub-block j and activation row,
// as the AVX-512 VNNI kernel: a lane starts at -32 * bsum_j, takes four VEX VPDPBUSD
// against broadcast activation bytes (= exact <q6_j, q8_j>), is multiplied by the
// row's scale_j (VPMULLD) and added to isum. Per block: acc = fma((float)isum,
// d_w * d_a, acc), exactly kMatmulQ6_KScalar's arithmetic.
// Against AVX2, per sub-block and row: 4 VPDPBUSD + VPMULLD + VPADDD instead of
// 4 VPMADDUBSW + 2 VPADDW + 2 VPMADDWD + VPMULLD + 3 VPADDD.
#include <immintrin.h>

#include <cstring>

#include "kernels/kernels.h"
#include "kernels/x86/driver.h"
#include "kernels/x86/x86_common.h"
#include "kernels/x86/x86_kernels.h"

namespace loom::kernels::x86 {

namespace {

constexpr int R = 8;
constexpr int kTile = 4;
constexpr int kKBlock = 8;
constexpr size_t kMain = q6_K_main(R);
constexpr size_t S = kPanelQ8_KStride;

inline __m256i bcast4(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// acc + per-lane sum of 4 (unsigned u) x (signed a) byte products: VPDPBUSD ymm (VEX).
inline __m256i dpbusd(__m256i acc, __m256i u, __m256i a) { return _mm256_dpbusd_avx_epi32(acc, u, a); }

inline __m256i load8x4(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

template <int NT>
inline void tile(const uint8_t* wq, const uint16_t* wd, const uint8_t* pn, int64_t b0, int64_t b1, __m256* acc) {
    const __m256i m3f = _mm256_set1_epi8(0x3F), m03 = _mm256_set1_epi8(0x03);
    const __m256i m0c = _mm256_set1_epi8(0x0C), m30 = _mm256_set1_epi8(0x30);
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
        __m256i isum[NT];
        for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
        for (int j = 0; j < 16; ++j) {
            const uint8_t* q = wq + 96 * j;
            if constexpr (NT <= kPrefetchRows) prefetch_lines_l1(q, 96);  // GEMV, small batches: weights from DRAM once
            const __m256i B0 = load8x4(q), B1 = load8x4(q + 32), B2 = load8x4(q + 64);
            const __m256i q0 = _mm256_and_si256(B0, m3f), q1 = _mm256_and_si256(B1, m3f);
            const __m256i q2 = _mm256_and_si256(B2, m3f);
            const __m256i q3 = _mm256_or_si256(
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(B0, 6), m03),
                                _mm256_and_si256(_mm256_srli_epi16(B1, 4), m0c)),
                _mm256_and_si256(_mm256_srli_epi16(B2, 2), m30));
            const __m256i sc = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(wq + 192 * R + R * j)));
            for (int t = 0; t < NT; ++t) {
                const uint8_t* a = aq + 256 * t + 16 * j;
                __m256i s = bcast4(ac + 4 * (16 * t + j));
                s = dpbusd(s, q0, bcast4(a));
                s = dpbusd(s, q1, bcast4(a + 4));
                s = dpbusd(s, q2, bcast4(a + 8));
                s = dpbusd(s, q3, bcast4(a + 12));
                isum[t] = _mm256_add_epi32(isum[t], _mm256_mullo_epi32(s, sc));
            }
        }
        if constexpr (NT <= kPrefetchRows) {
            prefetch_lines_l1(wq + 192 * R, 16 * R);  // sub-block scales
            __builtin_prefetch(reinterpret_cast<const uint8_t*>(wd + b * R) + gs, 0, 3);  // d, next group
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wd + b * R)));
        for (int t = 0; t < NT; ++t) {
            float da;
            std::memcpy(&da, ad + 4 * t, 4);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(dw, _mm256_set1_ps(da)), acc[t]);
        }
    }
}

// The micro-kernel for the shared driver (driver.h).
struct Q6K : Ymm8 {
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

const MatmulKernel kMatmulQ6_KAvxVnni = {
    "matmul_f32_q6_Kx8x4_q8_K_avxvnni", "avxvnni", kAvxVnniFeatures, GgmlType::Q6_K, GgmlType::Q8_K, R,
    size_q6_K, pack6, quantize_q8_K_avx2, matmul<Q6K>,
    Q6K::kTile, prepared_size<Q6K>, prepare<Q6K>};

}  // namespace loom::kernels::x86
