// Activation quantizers with AVX2, byte-identical to quant::quantize_row (see
// quantize_avx512vnni.cpp for the rules they follow).
#include <immintrin.h>

#include <cstring>

#include "kernels/x86/x86_common.h"
#include "quant/formats.h"

namespace loom::kernels::x86 {

namespace {

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

// roundf(v) as int32 for |v| < 2^23 (ties away from zero), exactly.
inline __m256i round_away(__m256 v) {
    const __m256 av = abs_ps(v);
    const __m256 t = _mm256_round_ps(av, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 up = _mm256_cmp_ps(_mm256_sub_ps(av, t), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256i q = _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, _mm256_set1_ps(1.0f))));
    return _mm256_sign_epi32(q, _mm256_castps_si256(v));  // v's sign bit; q is 0 where v is +-0
}

// 32 int32 values in -128..127 to 32 bytes, in order.
inline __m256i pack32(__m256i q0, __m256i q1, __m256i q2, __m256i q3) {
    const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
    return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

}  // namespace

void quantize_q8_0_avx2(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<uint8_t*>(vy);
    const int64_t nb = n / quant::QK8_0;
    for (int64_t b = 0; b < nb; ++b, x += 32, y += sizeof(quant::BlockQ8_0)) {
        __m256 v[4];
        for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i);
        const float amax = hmax(_mm256_max_ps(_mm256_max_ps(abs_ps(v[0]), abs_ps(v[1])),
                                               _mm256_max_ps(abs_ps(v[2]), abs_ps(v[3]))));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        std::memcpy(y, &dh, 2);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; ++i) q[i] = round_away(_mm256_mul_ps(v[i], vid));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 2), pack32(q[0], q[1], q[2], q[3]));
    }
}

void quantize_q8_K_avx2(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<uint8_t*>(vy);
    const int64_t nb = n / quant::QK_K;
    constexpr size_t kQs = offsetof(quant::BlockQ8_K, qs), kBsums = offsetof(quant::BlockQ8_K, bsums);
    for (int64_t b = 0; b < nb; ++b, x += quant::QK_K, y += sizeof(quant::BlockQ8_K)) {
        __m256 vmax = _mm256_setzero_ps();
        for (int i = 0; i < 32; ++i) vmax = _mm256_max_ps(vmax, abs_ps(_mm256_loadu_ps(x + 8 * i)));
        const float amax = hmax(vmax);
        if (amax == 0.0f) {
            std::memset(y, 0, sizeof(quant::BlockQ8_K));
            continue;
        }
        float max = 0.0f;  // the first element of largest magnitude, with its sign
        const __m256 vamax = _mm256_set1_ps(amax);
        for (int i = 0; i < 32; ++i) {
            const int m = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + 8 * i)), vamax, _CMP_EQ_OQ));
            if (m) {
                max = x[8 * i + __builtin_ctz(static_cast<unsigned>(m))];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        int16_t bsums[16];
        for (int i = 0; i < 8; ++i) {  // 32 values = two sub-blocks of 16
            __m256i q[4];
            for (int k = 0; k < 4; ++k) {
                const __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * i + 8 * k), vs),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                q[k] = _mm256_min_epi32(_mm256_cvttps_epi32(v), _mm256_set1_epi32(127));
            }
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + kQs + 32 * i), pack32(q[0], q[1], q[2], q[3]));
            bsums[2 * i] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(q[0], q[1])));
            bsums[2 * i + 1] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(q[2], q[3])));
        }
        std::memcpy(y + kBsums, bsums, sizeof bsums);
        const float d = 1 / iscale;
        std::memcpy(y, &d, 4);
    }
}

}  // namespace loom::kernels::x86
