// Q4_0 x Q8_0 and Q8_0 x Q8_0 with AVX-VNNI: 8 output rows per ymm lane set.
//
// The AVX2 kernel's layout (8 rows x 4 bytes per vector, x86_common.h) with the
// AVX-512 VNNI kernel's arithmetic: weights are unsigned codes (Q4_0 nibbles 0..15 =
// q + 8; Q8_0 bytes q + 128, packed with offset128), and one VEX-encoded VPDPBUSD
// against 4 activation bytes broadcast from the panel adds a 4-element partial dot to
// each row's int32 lane (no int16 intermediate, no saturation). Starting the lane at
// corr = -off * sum(a) makes it the exact signed block dot isum. Per block and
// activation row: acc = fma((float)isum, d_w * d_a, acc), the contract of kernels.h,
// for one row (GEMV) or tiles of up to 4 rows (GEMM) alike.
// Against AVX2, per block and row: Q4_0 8 VPDPBUSD instead of 8 VPMADDUBSW + 8 VPADDW +
// VPMADDWD + VPADDD; Q8_0 8 VPDPBUSD instead of 8 x (2 VPSIGNB + VPMADDUBSW + VPMADDWD
// + VPADDD).
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
constexpr int kKBlock = 64;

inline __m256i bcast4(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// acc + per-lane sum of 4 (unsigned u) x (signed a) byte products: VPDPBUSD ymm (VEX).
inline __m256i dpbusd(__m256i acc, __m256i u, __m256i a) { return _mm256_dpbusd_avx_epi32(acc, u, a); }

template <bool kQ4>
struct Fmt {
    static constexpr size_t main = kQ4 ? q4_0_main(R) : q8_0_main(R);
    static constexpr int off = kQ4 ? 8 : 128;
};

// One group of 8 rows x NT activation rows over blocks [b0, b1): acc updated in place.
template <bool kQ4, int NT>
inline void tile(const uint8_t* wq, const uint16_t* wd, const uint8_t* pn, int64_t b0, int64_t b1, __m256* acc) {
    constexpr size_t S = kPanelQ8_0Stride;
    const __m256i m0f = _mm256_set1_epi8(0x0F);
    const size_t main = static_cast<size_t>(reinterpret_cast<const uint8_t*>(wd) - wq);
    const size_t gs = main + round64(main / Fmt<kQ4>::main * 2 * R);  // to the next group
    wq += b0 * Fmt<kQ4>::main;
    pn += b0 * NT * S;
    for (int64_t b = b0; b < b1; ++b, wq += Fmt<kQ4>::main, pn += NT * S) {
        if constexpr (NT <= kPrefetchRows) {  // GEMV, small batches: weights come from DRAM once
            prefetch_lines_l1(wq, Fmt<kQ4>::main);
            prefetch_lines_l1(reinterpret_cast<const uint8_t*>(wd + b * R), 2 * R);
            // The next group's scales (this group's were read from its first block).
            __builtin_prefetch(reinterpret_cast<const uint8_t*>(wd + b * R) + gs, 0, 3);
        }
        const uint8_t* aq = pn;
        const uint8_t* ad = pn + NT * 32;
        const uint8_t* ac = pn + NT * 36;
        // Few rows: two chains per row (shorter dependencies); many: one (fewer registers).
        constexpr bool kSplit = NT < 3;
        __m256i s[NT], s2[NT];
        for (int t = 0; t < NT; ++t) {
            s[t] = bcast4(ac + 4 * t);
            s2[t] = _mm256_setzero_si256();
        }
        if constexpr (kQ4) {
            for (int c = 0; c < 4; ++c) {
                const __m256i n = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32 * c));
                const __m256i lo = _mm256_and_si256(n, m0f);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(n, 4), m0f);
                for (int t = 0; t < NT; ++t) {
                    s[t] = dpbusd(s[t], lo, bcast4(aq + 32 * t + 4 * c));
                    if constexpr (kSplit) s2[t] = dpbusd(s2[t], hi, bcast4(aq + 32 * t + 16 + 4 * c));
                    else s[t] = dpbusd(s[t], hi, bcast4(aq + 32 * t + 16 + 4 * c));
                }
            }
        } else {
            for (int c = 0; c < 8; c += 2) {
                const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32 * c));
                const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32 * (c + 1)));
                for (int t = 0; t < NT; ++t) {
                    s[t] = dpbusd(s[t], v0, bcast4(aq + 32 * t + 4 * c));
                    if constexpr (kSplit) s2[t] = dpbusd(s2[t], v1, bcast4(aq + 32 * t + 4 * c + 4));
                    else s[t] = dpbusd(s[t], v1, bcast4(aq + 32 * t + 4 * c + 4));
                }
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wd + b * R)));
        for (int t = 0; t < NT; ++t) {
            float da;
            std::memcpy(&da, ad + 4 * t, 4);
            const __m256 isum = _mm256_cvtepi32_ps(kSplit ? _mm256_add_epi32(s[t], s2[t]) : s[t]);
            acc[t] = _mm256_fmadd_ps(isum, _mm256_mul_ps(dw, _mm256_set1_ps(da)), acc[t]);
        }
    }
}

// The micro-kernel for the shared driver (driver.h).
template <bool kQ4>
struct Legacy : Ymm8 {
    static constexpr int kQK = 32, kTile = x86::kTile, kKBlock = x86::kKBlock;
    static constexpr size_t kMain = Fmt<kQ4>::main, kScale = 2, kStride = kPanelQ8_0Stride;
    static void panel(const uint8_t* act, size_t arb, int64_t nb, int64_t T, int64_t t0, int64_t t1,
                      uint8_t* out) {
        panel_q8_0(act, arb, nb, kTile, Fmt<kQ4>::off, T, t0, t1, out);
    }
    template <int NT>
    static void tile(const uint8_t* wq, const uint16_t* wd, const uint8_t* pn, int64_t b0, int64_t b1, Vec* acc) {
        x86::tile<kQ4, NT>(wq, wd, pn, b0, b1, acc);
    }
};

size_t size_q4_0(int64_t n_out, int64_t n_in) { return packed_size_q4_0(n_out, n_in, R); }
size_t size_q8_0(int64_t n_out, int64_t n_in) { return packed_size_q8_0(n_out, n_in, R); }
void pack4(const uint8_t* s, uint8_t* d, int64_t n_out, int64_t n_in) { pack_q4_0(s, d, n_out, n_in, R); }
void pack8(const uint8_t* s, uint8_t* d, int64_t n_out, int64_t n_in) { pack_q8_0(s, d, n_out, n_in, R, true); }

}  // namespace

const MatmulKernel kMatmulQ4_0AvxVnni = {
    "matmul_f32_q4_0x8x4_q8_0_avxvnni", "avxvnni", kAvxVnniFeatures, GgmlType::Q4_0, GgmlType::Q8_0, R,
    size_q4_0, pack4, quantize_q8_0_avx2, matmul<Legacy<true>>,
    Legacy<true>::kTile, prepared_size<Legacy<true>>, prepare<Legacy<true>>};
const MatmulKernel kMatmulQ8_0AvxVnni = {
    "matmul_f32_q8_0x8x4_q8_0_avxvnni", "avxvnni", kAvxVnniFeatures, GgmlType::Q8_0, GgmlType::Q8_0, R,
    size_q8_0, pack8, quantize_q8_0_avx2, matmul<Legacy<false>>,
    Legacy<false>::kTile, prepared_size<Legacy<false>>, prepare<Legacy<false>>};

}  // namespace loom::kernels::x86
