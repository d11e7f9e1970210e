// Q4_K x Q8_K and Q5_K x Q8_K with AVX-512 VNNI: 16 output rows per zmm lane set.
//
// Packed layout (x86_common.h, R = 16): per sub-block j of 32 elements, four vectors of
// 16 rows x 4 bytes of nibbles (low: elements 4c..4c+3, high: 16+4c..16+4c+3), plus for
// Q5_K a vector of bit 4s (merged with a 16-bit shift and one VPTERNLOGD); scales and
// mins as bytes. Per sub-block j and activation row, a lane takes eight VPDPBUSD of the
// unsigned codes against broadcast activation bytes (= exact <q_j, a_j>), is multiplied
// by the row's scale sc_j (VPMULLD) and added to isum. The mins: four VPDPWSSD of
// (m_2k, m_2k+1) per lane against the panel's negated activation sums give -msum
// exactly. Per block: acc = fma((float)isum, d_w * d_a, acc), then
// acc = fma((float)(-msum), dmin_w * d_a, acc), as kMatmulQ4_KScalar / Q5_K.

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

constexpr int kOrAnd = 0xF8;  // VPTERNLOGD: A | (B & C)

template <bool kQ5>
struct KAsym : Zmm16 {
    static constexpr int kQK = 256, kTile = 8, kKBlock = 4;
    static constexpr size_t kMain = kQ5 ? q5_K_main(R) : q4_K_main(R), kScale = 4, kStride = kPanelQ8_KSumsStride;
    static constexpr size_t kSub = (kQ5 ? 20 : 16) * R;  // bytes of one sub-block of a group
    static void panel(const uint8_t* act, size_t arb, int64_t nb, int64_t T, int64_t t0, int64_t t1,
                      uint8_t* out) {
        panel_q8_K_sums(act, arb, nb, kTile, T, t0, t1, out);
    }

    template <int NT>
    static void tile(const uint8_t* wq, const uint16_t* wd, const uint8_t* pn, int64_t b0, int64_t b1, Vec* acc) {
        constexpr size_t S = kStride;
        constexpr bool kSplit = NT < 4;  // few rows: two chains per row (shorter dependencies)
        const __m512i m0f = _mm512_set1_epi8(0x0F), m10 = _mm512_set1_epi8(0x10);
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
                // Q4_K: into L1, and the next group's d / dmin line (GEMV +10 %, 8 rows +8 %
                // on Zen 5, one thread); Q5_K's 8-row tile lost 8 % that way: as before.
                if constexpr (kQ5) {
                    prefetch_lines(scales, 16 * R);
                    prefetch_lines(reinterpret_cast<const uint8_t*>(wd + b * 2 * R), 4 * R);
                } else {
                    prefetch_lines_l1(scales, 16 * R);
                    __builtin_prefetch(reinterpret_cast<const uint8_t*>(wd + b * 2 * R) + gs, 0, 3);
                }
            }
            __m512i isum[NT];
            for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
            for (int j = 0; j < 8; ++j) {
                const uint8_t* q = wq + j * kSub;
                if constexpr (NT <= kPrefetchRows) {
                    if constexpr (kQ5) prefetch_lines(q, kSub);
                    else prefetch_lines_l1(q, kSub);
                }
                const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + R * j)));
                __m512i h = _mm512_setzero_si512();
                if constexpr (kQ5) h = _mm512_loadu_si512(q + 16 * R);  // bit v of byte i: bit 4 of vector v's byte i
                __m512i s[NT], s2[NT];
                for (int t = 0; t < NT; ++t) s[t] = s2[t] = _mm512_setzero_si512();
                for (int c = 0; c < 4; ++c) {
                    const __m512i n = _mm512_loadu_si512(q + 64 * c);
                    __m512i lo = _mm512_and_si512(n, m0f), hi = _mm512_and_si512(_mm512_srli_epi16(n, 4), m0f);
                    if constexpr (kQ5) {
                        lo = _mm512_ternarylogic_epi32(lo, _mm512_slli_epi16(h, 4 - c), m10, kOrAnd);
                        hi = _mm512_ternarylogic_epi32(hi, _mm512_srli_epi16(h, c), m10, kOrAnd);
                    }
                    for (int t = 0; t < NT; ++t) {
                        const uint8_t* a = aq + 256 * t + 32 * j + 4 * c;
                        s[t] = _mm512_dpbusd_epi32(s[t], lo, bcast4_512(a));
                        if constexpr (kSplit) s2[t] = _mm512_dpbusd_epi32(s2[t], hi, bcast4_512(a + 16));
                        else s[t] = _mm512_dpbusd_epi32(s[t], hi, bcast4_512(a + 16));
                    }
                }
                for (int t = 0; t < NT; ++t)
                    isum[t] = _mm512_add_epi32(
                        isum[t], _mm512_mullo_epi32(kSplit ? _mm512_add_epi32(s[t], s2[t]) : s[t], sc));
            }
            const uint8_t* mins = scales + 8 * R;
            __m512i mk[4];
            for (int k = 0; k < 4; ++k)
                mk[k] = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mins + 2 * R * k)));
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wd + b * 2 * R)));
            const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wd + b * 2 * R + R)));
            for (int t = 0; t < NT; ++t) {
                const uint8_t* ns = as + 16 * t;
                __m512i nm = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mk[0], bcast4_512(ns));  // -msum
                nm = _mm512_dpwssd_epi32(nm, mk[1], bcast4_512(ns + 4));
                nm = _mm512_dpwssd_epi32(nm, mk[2], bcast4_512(ns + 8));
                nm = _mm512_dpwssd_epi32(nm, mk[3], bcast4_512(ns + 12));
                float da;
                std::memcpy(&da, ad + 4 * t, 4);
                const __m512 vda = _mm512_set1_ps(da);
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(dw, vda), acc[t]);
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(nm), _mm512_mul_ps(dm, vda), acc[t]);
            }
        }
    }
};

size_t size_q4_K(int64_t n_out, int64_t n_in) { return packed_size_q4_K(n_out, n_in, Zmm16::R); }
size_t size_q5_K(int64_t n_out, int64_t n_in) { return packed_size_q5_K(n_out, n_in, Zmm16::R); }
void pack4(const uint8_t* s, uint8_t* d, int64_t n_out, int64_t n_in) { pack_q4_K(s, d, n_out, n_in, Zmm16::R); }
void pack5(const uint8_t* s, uint8_t* d, int64_t n_out, int64_t n_in) { pack_q5_K(s, d, n_out, n_in, Zmm16::R); }

}  // namespace

const MatmulKernel kMatmulQ4_KAvx512 = {
    "matmul_f32_q4_Kx16x4_q8_K_avx512vnni", "avx512vnni", kAvx512Features, GgmlType::Q4_K, GgmlType::Q8_K, Zmm16::R,
    size_q4_K, pack4, quantize_q8_K_avx512, matmul<KAsym<false>>,
    KAsym<false>::kTile, prepared_size<KAsym<false>>, prepare<KAsym<false>>};
const MatmulKernel kMatmulQ5_KAvx512 = {
    "matmul_f32_q5_Kx16x4_q8_K_avx512vnni", "avx512vnni", kAvx512Features, GgmlType::Q5_K, GgmlType::Q8_K, Zmm16::R,
    size_q5_K, pack5, quantize_q8_K_avx512, matmul<KAsym<true>>,
    KAsym<true>::kTile, prepared_size<KAsym<true>>, prepare<KAsym<true>>};

}  // namespace loom::kernels::x86
