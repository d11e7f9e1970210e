// Q4_0 x Q8_0 and Q8_0 x Q8_0 with AVX2: 8 output rows per ymm lane set.
//
// Weights are packed 8 rows x 4 bytes per vector (x86_common.h). No VPDPBUSD here:
//   Q4_0: VPMADDUBSW(nibbles 0..15, 4 activation bytes broadcast) gives int16 pair sums
//         of at most 2*15*127; the eight of a block add up in int16 (<= 30480, exact),
//         then one VPMADDWD with ones makes each row's int32 sum, plus -8 * sum(a).
//   Q8_0: the sign trick, VPMADDUBSW(|w|, sign(a, w)) (pairs <= 2*128*127, exact), then
//         VPMADDWD with ones per 4-byte chunk (two chunks could overflow int16).
// Per block and activation row: acc = fma((float)isum, d_w * d_a, acc), the contract of
// kernels.h, for one row (GEMV) or tiles of up to 4 rows (GEMM) alike.
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

template <bool kQ4>
struct Fmt {
    static constexpr size_t main = kQ4 ? q4_0_main(R) : q8_0_main(R);
    static constexpr int off = kQ4 ? 8 : 0;
};

template <bool kQ4, int NT>
inline void tile(const uint8_t* wq, const uint16_t* wd, const uint8_t* pn, int64_t b0, int64_t b1, __m256* acc) {
    constexpr size_t S = kPanelQ8_0Stride;
    const __m256i m0f = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
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
        __m256i isum[NT];
        if constexpr (kQ4) {
            __m256i s16[NT];
            for (int t = 0; t < NT; ++t) s16[t] = _mm256_setzero_si256();
            for (int c = 0; c < 4; ++c) {
                const __m256i n = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32 * c));
                const __m256i lo = _mm256_and_si256(n, m0f);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(n, 4), m0f);
                for (int t = 0; t < NT; ++t) {
                    s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(lo, bcast4(aq + 32 * t + 4 * c)));
                    s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(hi, bcast4(aq + 32 * t + 16 + 4 * c)));
                }
            }
            for (int t = 0; t < NT; ++t) isum[t] = _mm256_add_epi32(_mm256_madd_epi16(s16[t], ones), bcast4(ac + 4 * t));
        } else {
            for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
            for (int c = 0; c < 8; ++c) {
                const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32 * c));
                const __m256i av = _mm256_sign_epi8(v, v);
                for (int t = 0; t < NT; ++t) {
                    const __m256i a = _mm256_sign_epi8(bcast4(aq + 32 * t + 4 * c), v);
                    isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(av, a), ones));
                }
            }
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
void pack8(const uint8_t* s, uint8_t* d, int64_t n_out, int64_t n_in) { pack_q8_0(s, d, n_out, n_in, R, false); }

}  // namespace

const MatmulKernel kMatmulQ4_0Avx2 = {
    "matmul_f32_q4_0x8x4_q8_0_avx2", "avx2", kAvx2Features, GgmlType::Q4_0, GgmlType::Q8_0, R,
    size_q4_0, pack4, quantize_q8_0_avx2, matmul<Legacy<true>>,
    Legacy<true>::kTile, prepared_size<Legacy<true>>, prepare<Legacy<true>>};
const MatmulKernel kMatmulQ8_0Avx2 = {
    "matmul_f32_q8_0x8x4_q8_0_avx2", "avx2", kAvx2Features, GgmlType::Q8_0, GgmlType::Q8_0, R,
    size_q8_0, pack8, quantize_q8_0_avx2, matmul<Legacy<false>>,
    Legacy<false>::kTile, prepared_size<Legacy<false>>, prepare<Legacy<false>>};

}  // namespace loom::kernels::x86
