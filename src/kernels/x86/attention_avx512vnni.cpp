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

inline float q8_scale(const uint8_t* b) {
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
                a0 = _mm512_fmadd_ps(t, _mm512_set1_ps(q8_scale(row)), a0);
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
                const __m512 pd = _mm512_set1_ps(p * q8_scale(row));
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
