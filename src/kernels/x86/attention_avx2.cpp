// Attention (kernels/attention.h) with AVX2 + FMA + F16C: 8 floats per step, F16
// rows widened with VCVTPH2PS, Q8_0 rows with VPMOVSXBD; a scalar tail.
#include <immintrin.h>

#include <cstring>

#include "kernels/attention_impl.h"
#include "kernels/kernels.h"

namespace loom::kernels::x86 {
namespace {

template <GgmlType T>
inline __m256 load8(const uint8_t* row, int i) {
    if constexpr (T == GgmlType::F32) {
        return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
    } else {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
    }
}
inline float q8_scale_f16c(const uint8_t* b) {  // VCVTPH2PS, not a library call
    uint16_t d;
    std::memcpy(&d, b, 2);
    return _cvtsh_ss(d);
}
inline __m256 q8_8(const uint8_t* qs) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qs))));
}
inline float hsum(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

struct Avx2Ops {
    template <GgmlType T>
    static float dot(const float* q, const uint8_t* row, int n) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        if constexpr (T == GgmlType::Q8_0) {
            for (int b = 0; b < n / 32; ++b, row += kQ8Block, q += 32) {
                __m256 t = _mm256_mul_ps(_mm256_loadu_ps(q), q8_8(row + 2));
                t = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8), q8_8(row + 10), t);
                t = _mm256_fmadd_ps(_mm256_loadu_ps(q + 16), q8_8(row + 18), t);
                t = _mm256_fmadd_ps(_mm256_loadu_ps(q + 24), q8_8(row + 26), t);
                a0 = _mm256_fmadd_ps(t, _mm256_set1_ps(q8_scale_f16c(row)), a0);
            }
            return hsum(a0);
        } else {
            int i = 0;
            for (; i + 16 <= n; i += 16) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8<T>(row, i), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load8<T>(row, i + 8), a1);
            }
            for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8<T>(row, i), a0);
            float s = hsum(_mm256_add_ps(a0, a1));
            for (; i < n; ++i) s += q[i] * row_at<T>(row, i);
            return s;
        }
    }
    template <GgmlType T>
    static void axpy(float p, const uint8_t* row, float* o, int n) {
        if constexpr (T == GgmlType::Q8_0) {
            for (int b = 0; b < n / 32; ++b, row += kQ8Block, o += 32) {
                const __m256 pd = _mm256_set1_ps(p * q8_scale_f16c(row));
                for (int c = 0; c < 4; ++c)
                    _mm256_storeu_ps(o + 8 * c, _mm256_fmadd_ps(pd, q8_8(row + 2 + 8 * c), _mm256_loadu_ps(o + 8 * c)));
            }
        } else {
            const __m256 pv = _mm256_set1_ps(p);
            int i = 0;
            for (; i + 8 <= n; i += 8)
                _mm256_storeu_ps(o + i, _mm256_fmadd_ps(pv, load8<T>(row, i), _mm256_loadu_ps(o + i)));
            for (; i < n; ++i) o[i] += p * row_at<T>(row, i);
        }
    }
    static void scale(float c, float* o, int n) {
        const __m256 cv = _mm256_set1_ps(c);
        int i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(o + i, _mm256_mul_ps(cv, _mm256_loadu_ps(o + i)));
        for (; i < n; ++i) o[i] *= c;
    }
};

}  // namespace

extern const AttentionKernel kAttentionAvx2;
const AttentionKernel kAttentionAvx2 = {"attn_flash_f32_avx2", "avx2", kAVX2 | kFMA | kF16C, attend<Avx2Ops>};

}  // namespace loom::kernels::x86
