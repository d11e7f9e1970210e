// Q4_K x Q8_K and Q5_K x Q8_K with AVX2: 8 output rows per ymm lane set.
//
// Packed layout (x86_common.h, R = 8): per sub-block j of 32 elements, four vectors of
// 8 rows x 4 bytes of nibbles (low: elements 4c..4c+3, high: 16+4c..16+4c+3), plus for
// Q5_K a vector of bit 4s ORed in with a 16-bit shift and a mask; scales and mins as
// bytes. Per sub-block and activation row: VPMADDUBSW(codes, 4 activation bytes
// broadcast) gives int16 pair sums of at most 2*15*128 (Q4_K) or 2*31*128 (Q5_K); Q4_K
// adds all eight in int16 (<= 30720), Q5_K two sums of four (<= 31744), all exact; then
// VPMADDWD with the row's scale (int16, twice per lane) gives sc_j * <q_j, a_j> in
// int32. The mins: VPMADDWD of (m_2k, m_2k+1) per lane against the panel's negated
// activation sums gives -msum exactly. Per block: acc = fma((float)isum, d_w * d_a, acc),
// then acc = fma((float)(-msum), dmin_w * d_a, acc), as kMatmulQ4_KScalar / Q5_K.
#include <immintrin.h>

#include <cstring>

#include "kernels/kernels.h"
#include "kernels/x86/driver.h"
#include "kernels/x86/x86_common.h"
#include "kernels/x86/x86_kernels.h"

namespace loom::kernels::x86 {

namespace {

inline __m256i load8x4(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

template <bool kQ5>
struct KAsym : Ymm8 {
    static constexpr int kQK = 256, kTile = 4, kKBlock = 8;
    static constexpr size_t kMain = kQ5 ? q5_K_main(R) : q4_K_main(R), kScale = 4, kStride = kPanelQ8_KSumsStride;
    static constexpr size_t kSub = (kQ5 ? 20 : 16) * R;  // bytes of one sub-block of a group
    static void panel(const uint8_t* act, size_t arb, int64_t nb, int64_t T, int64_t t0, int64_t t1,
                      uint8_t* out) {
        panel_q8_K_sums(act, arb, nb, kTile, T, t0, t1, out);
    }

    template <int NT>
    static void tile(const uint8_t* wq, const uint16_t* wd, const uint8_t* pn, int64_t b0, int64_t b1, Vec* acc) {
        constexpr size_t S = kStride;
        const __m256i m0f = _mm256_set1_epi8(0x0F), m10 = _mm256_set1_epi8(0x10);
        // Bytes to the next group, whose d / dmin lines are prefetched a group ahead (the
        // loop reads a group's from its first block on).
        const size_t main = static_cast<size_t>(reinterpret_cast<const uint8_t*>(wd) - wq);
        const size_t gs = main + round64(main / kMain * kScale * R);
        wq += b0 * kMain;
        pn += b0 * NT * S;
        for (int64_t b = b0; b < b1; ++b, wq += kMain, pn += NT * S) {
            const uint8_t* aq = pn;
            const uint8_t* as = pn + NT * 256;
            const uint8_t* ad = pn + NT * 272;
            const uint8_t* scales = wq + 8 * kSub;
            if constexpr (NT <= kPrefetchRows) {  // GEMV, small batches: weights from DRAM once
                prefetch_lines_l1(scales, 16 * R);
                __builtin_prefetch(reinterpret_cast<const uint8_t*>(wd + b * 2 * R) + gs, 0, 3);
            }
            __m256i isum[NT];
            for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
            for (int j = 0; j < 8; ++j) {
                const uint8_t* q = wq + j * kSub;
                if constexpr (NT <= kPrefetchRows) prefetch_lines_l1(q, kSub);
                const __m128i sc8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(scales + R * j));
                const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(sc8, sc8));  // scale twice per row
                __m256i h = _mm256_setzero_si256();
                if constexpr (kQ5) h = load8x4(q + 16 * R);  // bit v of byte i: bit 4 of nibble vector v's byte i
                __m256i s16[NT], s16b[NT];
                for (int t = 0; t < NT; ++t) s16[t] = s16b[t] = _mm256_setzero_si256();
                for (int c = 0; c < 4; ++c) {
                    const __m256i n = load8x4(q + 32 * c);
                    __m256i lo = _mm256_and_si256(n, m0f), hi = _mm256_and_si256(_mm256_srli_epi16(n, 4), m0f);
                    if constexpr (kQ5) {
                        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(h, 4 - c), m10));
                        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_srli_epi16(h, c), m10));
                    }
                    for (int t = 0; t < NT; ++t) {
                        const uint8_t* a = aq + 256 * t + 32 * j + 4 * c;
                        const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, bcast4_256(a)),
                                                           _mm256_maddubs_epi16(hi, bcast4_256(a + 16)));
                        if (kQ5 && c >= 2) s16b[t] = _mm256_add_epi16(s16b[t], p);
                        else s16[t] = _mm256_add_epi16(s16[t], p);
                    }
                }
                for (int t = 0; t < NT; ++t) {
                    __m256i s = _mm256_madd_epi16(s16[t], sc16);
                    if constexpr (kQ5) s = _mm256_add_epi32(s, _mm256_madd_epi16(s16b[t], sc16));
                    isum[t] = _mm256_add_epi32(isum[t], s);
                }
            }
            const uint8_t* mins = scales + 8 * R;
            __m256i mk[4];
            for (int k = 0; k < 4; ++k)
                mk[k] = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mins + 2 * R * k)));
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wd + b * 2 * R)));
            const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wd + b * 2 * R + R)));
            for (int t = 0; t < NT; ++t) {
                const uint8_t* ns = as + 16 * t;
                const __m256i nm = _mm256_add_epi32(
                    _mm256_add_epi32(_mm256_madd_epi16(mk[0], bcast4_256(ns)), _mm256_madd_epi16(mk[1], bcast4_256(ns + 4))),
                    _mm256_add_epi32(_mm256_madd_epi16(mk[2], bcast4_256(ns + 8)),
                                     _mm256_madd_epi16(mk[3], bcast4_256(ns + 12))));  // -msum
                float da;
                std::memcpy(&da, ad + 4 * t, 4);
                const __m256 vda = _mm256_set1_ps(da);
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(dw, vda), acc[t]);
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(nm), _mm256_mul_ps(dm, vda), acc[t]);
            }
        }
    }
};

size_t size_q4_K(int64_t n_out, int64_t n_in) { return packed_size_q4_K(n_out, n_in, Ymm8::R); }
size_t size_q5_K(int64_t n_out, int64_t n_in) { return packed_size_q5_K(n_out, n_in, Ymm8::R); }
void pack4(const uint8_t* s, uint8_t* d, int64_t n_out, int64_t n_in) { pack_q4_K(s, d, n_out, n_in, Ymm8::R); }
void pack5(const uint8_t* s, uint8_t* d, int64_t n_out, int64_t n_in) { pack_q5_K(s, d, n_out, n_in, Ymm8::R); }

}  // namespace

const MatmulKernel kMatmulQ4_KAvx2 = {
    "matmul_f32_q4_Kx8x4_q8_K_avx2", "avx2", kAvx2Features, GgmlType::Q4_K, GgmlType::Q8_K, Ymm8::R,
    size_q4_K, pack4, quantize_q8_K_avx2, matmul<KAsym<false>>,
    KAsym<false>::kTile, prepared_size<KAsym<false>>, prepare<KAsym<false>>};
const MatmulKernel kMatmulQ5_KAvx2 = {
    "matmul_f32_q5_Kx8x4_q8_K_avx2", "avx2", kAvx2Features, GgmlType::Q5_K, GgmlType::Q8_K, Ymm8::R,
    size_q5_K, pack5, quantize_q8_K_avx2, matmul<KAsym<true>>,
    KAsym<true>::kTile, prepared_size<KAsym<true>>, prepare<KAsym<true>>};

}  // namespace loom::kernels::x86
