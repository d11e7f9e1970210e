// Activation quantizers with AVX-512, byte-identical to quant::quantize_row:
//   Q8_0: d = amax / 127, id = d ? 1 / d : 0, q = roundf(x * id) (ties away from zero),
//         d stored as fp16 (round to nearest even).
//   Q8_K: max = first x with the largest |x|, iscale = -127 / max,
//         q = min(nearest_int(iscale * x), 127) (ties to even), bsums, d = 1 / iscale.

// GCC 12 reports -Wmaybe-uninitialized inside the AVX-512 intrinsics headers
// (their _mm512_undefined_* idiom); silenced for the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstring>

#include "kernels/x86/x86_common.h"
#include "quant/formats.h"

namespace loom::kernels::x86 {

namespace {

// roundf(v) as int32 for |v| < 2^23: truncate |v|, add 1 when the dropped fraction
// is >= 0.5 (exact: |v| - trunc(|v|) has no rounding error), then restore the sign.
inline __m512i round_away(__m512 v) {
    const __m512 av = _mm512_abs_ps(v);
    __m512 t = _mm512_roundscale_ps(av, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(av, t), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    t = _mm512_mask_add_ps(t, up, t, _mm512_set1_ps(1.0f));
    const __m512i q = _mm512_cvttps_epi32(t);
    const __mmask16 neg = _mm512_cmplt_epi32_mask(_mm512_castps_si512(v), _mm512_setzero_si512());
    return _mm512_mask_sub_epi32(q, neg, _mm512_setzero_si512(), q);
}

}  // namespace

void quantize_q8_0_avx512(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<uint8_t*>(vy);
    const int64_t nb = n / quant::QK8_0;
    for (int64_t b = 0; b < nb; ++b, x += 32, y += sizeof(quant::BlockQ8_0)) {
        const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        std::memcpy(y, &dh, 2);
        const __m512 vid = _mm512_set1_ps(id);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + 2), _mm512_cvtepi32_epi8(round_away(_mm512_mul_ps(x0, vid))));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + 18), _mm512_cvtepi32_epi8(round_away(_mm512_mul_ps(x1, vid))));
    }
}

void quantize_q8_K_avx512(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<uint8_t*>(vy);
    const int64_t nb = n / quant::QK_K;
    constexpr size_t kQs = offsetof(quant::BlockQ8_K, qs), kBsums = offsetof(quant::BlockQ8_K, bsums);
    for (int64_t b = 0; b < nb; ++b, x += quant::QK_K, y += sizeof(quant::BlockQ8_K)) {
        __m512 vmax = _mm512_setzero_ps();
        for (int i = 0; i < 16; ++i) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * i)));
        const float amax = _mm512_reduce_max_ps(vmax);
        if (amax == 0.0f) {
            std::memset(y, 0, sizeof(quant::BlockQ8_K));
            continue;
        }
        float max = 0.0f;  // the first element of largest magnitude, with its sign
        const __m512 vamax = _mm512_set1_ps(amax);
        for (int i = 0; i < 16; ++i) {
            const __mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * i)), vamax, _CMP_EQ_OQ);
            if (m) {
                max = x[16 * i + __builtin_ctz(m)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m512 vs = _mm512_set1_ps(iscale);
        int16_t bsums[16];
        for (int i = 0; i < 16; ++i) {
            __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * i), vs),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(y + kQs + 16 * i), _mm512_cvtepi32_epi8(q));
            bsums[i] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
        }
        std::memcpy(y + kBsums, bsums, sizeof bsums);
        const float d = 1 / iscale;
        std::memcpy(y, &d, 4);
    }
}

}  // namespace loom::kernels::x86
