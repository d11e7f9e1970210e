// Attention (kernels/attention.h) with AVX-512: 16 floats per step, F16 rows widened
// with VCVTPH2PS, Q8_0 rows with VPMOVSXBD; masked loads for the last partial step.
// Built with the avx512vnni file flags; needs only AVX-512F/BW/VL and F16C.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12, inside the AVX-512 headers
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstring>

#include "kernels/attention_impl.h"
#include "kernels/kernels.h"

namespace loom::kernels::x86 {
namespace {

inline __mmask16 tail_mask(int r) { return static_cast<__mmask16>((1u << r) - 1); }

// 16 (or the first r < 16 under mask m) elements of a row of type T from element i.
template <GgmlType T>
inline __m512 load16(const uint8_t* row, int i, __mmask16 m = 0xFFFF) {
    if constexpr (T == GgmlType::F32) {
        return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + i);
    } else {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + i));
    }
}

inline float q8_scale_f16c(const uint8_t* b) {  // VCVTPH2PS, not a library call
    uint16_t d;
    std::memcpy(&d, b, 2);
    return _cvtsh_ss(d);
}
inline __m512 q8_16(const uint8_t* qs) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs))));
}

struct Avx512Ops {
    template <GgmlType T>
    static float dot(const float* q, const uint8_t* row, int n) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        if constexpr (T == GgmlType::Q8_0) {
            for (int b = 0; b < n / 32; ++b, row += kQ8Block, q += 32) {
                const __m512 t = _mm512_fmadd_ps(_mm512_loadu_ps(q + 16), q8_16(row + 18),
                                                 _mm512_mul_ps(_mm512_loadu_ps(q), q8_16(row + 2)));
                a0 = _mm512_fmadd_ps(t, _mm512_set1_ps(q8_scale_f16c(row)), a0);
            }
        } else {
            int i = 0;
            for (; i + 32 <= n; i += 32) {
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load16<T>(row, i), a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), load16<T>(row, i + 16), a1);
            }
            for (; i < n; i += 16) {
                const __mmask16 m = n - i >= 16 ? 0xFFFF : tail_mask(n - i);
                a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), load16<T>(row, i, m), a0);
            }
        }
        return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
    template <GgmlType T>
    static void axpy(float p, const uint8_t* row, float* o, int n) {
        if constexpr (T == GgmlType::Q8_0) {
            for (int b = 0; b < n / 32; ++b, row += kQ8Block, o += 32) {
                const __m512 pd = _mm512_set1_ps(p * q8_scale_f16c(row));
                _mm512_storeu_ps(o, _mm512_fmadd_ps(pd, q8_16(row + 2), _mm512_loadu_ps(o)));
                _mm512_storeu_ps(o + 16, _mm512_fmadd_ps(pd, q8_16(row + 18), _mm512_loadu_ps(o + 16)));
            }
        } else {
            const __m512 pv = _mm512_set1_ps(p);
            for (int i = 0; i < n; i += 16) {
                const __mmask16 m = n - i >= 16 ? 0xFFFF : tail_mask(n - i);
                _mm512_mask_storeu_ps(o + i, m, _mm512_fmadd_ps(pv, load16<T>(row, i, m), _mm512_maskz_loadu_ps(m, o + i)));
            }
        }
    }
    // Four rows at a time share the q loads, and their four sums are reduced together
    // (a transpose-add tree instead of four horizontal reductions).
    template <GgmlType T>
    static void scores(const float* q, const uint8_t* const* rows, int nt, int n, float* s) {
        int j = 0;
        if constexpr (T != GgmlType::Q8_0) {
            if (n % 16 == 0) {
                for (; j + 4 <= nt; j += 4) {
                    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                    for (int i = 0; i < n; i += 16) {
                        const __m512 qv = _mm512_loadu_ps(q + i);
                        a0 = _mm512_fmadd_ps(qv, load16<T>(rows[j], i), a0);
                        a1 = _mm512_fmadd_ps(qv, load16<T>(rows[j + 1], i), a1);
                        a2 = _mm512_fmadd_ps(qv, load16<T>(rows[j + 2], i), a2);
                        a3 = _mm512_fmadd_ps(qv, load16<T>(rows[j + 3], i), a3);
                    }
                    const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
                    const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
                    const __m512 u = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, 0x44), _mm512_shuffle_ps(t0, t1, 0xEE));
                    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
                    const __m128 r = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
                    _mm_storeu_ps(s + j, r);
                }
            }
        }
        for (; j < nt; ++j) s[j] = dot<T>(q, rows[j], n);
    }
    // Up to 128 output floats stay in 8 registers while all nt rows are added in order.
    template <GgmlType T>
    static void accumulate(const float* p, const uint8_t* const* rows, int nt, float* o, int n) {
        if constexpr (T == GgmlType::Q8_0) {
            for (int b = 0; b < n / 32; ++b) {  // one block (32 floats) of o at a time
                __m512 o0 = _mm512_loadu_ps(o + 32 * b), o1 = _mm512_loadu_ps(o + 32 * b + 16);
                for (int j = 0; j < nt; ++j) {
                    const uint8_t* blk = rows[j] + b * kQ8Block;
                    const __m512 pd = _mm512_set1_ps(p[j] * q8_scale_f16c(blk));
                    o0 = _mm512_fmadd_ps(pd, q8_16(blk + 2), o0);
                    o1 = _mm512_fmadd_ps(pd, q8_16(blk + 18), o1);
                }
                _mm512_storeu_ps(o + 32 * b, o0);
                _mm512_storeu_ps(o + 32 * b + 16, o1);
            }
        } else {
            int i0 = 0;
            for (; i0 + 128 <= n; i0 += 128) {  // whole 128-float chunks: no masks
                __m512 acc[8];
                for (int c = 0; c < 8; ++c) acc[c] = _mm512_loadu_ps(o + i0 + 16 * c);
                for (int j = 0; j < nt; ++j) {
                    const __m512 pv = _mm512_set1_ps(p[j]);
                    for (int c = 0; c < 8; ++c) acc[c] = _mm512_fmadd_ps(pv, load16<T>(rows[j], i0 + 16 * c), acc[c]);
                }
                for (int c = 0; c < 8; ++c) _mm512_storeu_ps(o + i0 + 16 * c, acc[c]);
            }
            for (; i0 < n; i0 += 128) {
                const int nv = (n - i0 + 15) / 16 < 8 ? (n - i0 + 15) / 16 : 8;
                __mmask16 m[8];
                __m512 acc[8];
                for (int c = 0; c < 8; ++c) {
                    const int left = n - i0 - 16 * c;
                    m[c] = c < nv ? (left >= 16 ? 0xFFFF : tail_mask(left)) : 0;
                    acc[c] = _mm512_maskz_loadu_ps(m[c], o + i0 + 16 * c);
                }
                for (int j = 0; j < nt; ++j) {
                    const __m512 pv = _mm512_set1_ps(p[j]);
                    for (int c = 0; c < nv; ++c)
                        acc[c] = _mm512_fmadd_ps(pv, load16<T>(rows[j], i0 + 16 * c, m[c]), acc[c]);
                }
                for (int c = 0; c < nv; ++c) _mm512_mask_storeu_ps(o + i0 + 16 * c, m[c], acc[c]);
            }
        }
    }
    static void scale(float c, float* o, int n) {
        const __m512 cv = _mm512_set1_ps(c);
        for (int i = 0; i < n; i += 16) {
            const __mmask16 m = n - i >= 16 ? 0xFFFF : tail_mask(n - i);
            _mm512_mask_storeu_ps(o + i, m, _mm512_mul_ps(cv, _mm512_maskz_loadu_ps(m, o + i)));
        }
    }
};

}  // namespace

extern const AttentionKernel kAttentionAvx512;
const AttentionKernel kAttentionAvx512 = {"attn_flash_f32_avx512", "avx512vnni",
                                          kAVX2 | kFMA | kF16C | kAVX512F | kAVX512BW | kAVX512VL,
                                          attend<Avx512Ops>};

}  // namespace loom::kernels::x86
