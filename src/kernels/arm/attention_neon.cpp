// Attention (kernels/attention.h) with baseline AArch64 NEON: 4 floats per step, F16
// rows widened with FCVTL, Q8_0 rows with SXTL; a scalar tail. Every Arm ISA we
// select (dotprod, i8mm, SVE) runs it.
#include <arm_neon.h>

#include <cstring>

#include "kernels/attention_impl.h"
#include "kernels/kernels.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

template <GgmlType T>
inline float32x4_t load4(const uint8_t* row, int i) {
    if constexpr (T == GgmlType::F32) {
        return vld1q_f32(reinterpret_cast<const float*>(row) + i);
    } else {
        return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row) + i)));
    }
}
// 16 int8 codes as four float vectors.
inline void q8_16(const uint8_t* qs, float32x4_t out[4]) {
    const int8x16_t v = vld1q_s8(reinterpret_cast<const int8_t*>(qs));
    const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_s8(vget_high_s8(v));
    out[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    out[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
    out[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    out[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
}

struct NeonOps {
    template <GgmlType T>
    static float dot(const float* q, const uint8_t* row, int n) {
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);
        if constexpr (T == GgmlType::Q8_0) {
            for (int b = 0; b < n / 32; ++b, row += kQ8Block, q += 32) {
                float32x4_t x[8];
                q8_16(row + 2, x);
                q8_16(row + 18, x + 4);
                float32x4_t t = vmulq_f32(vld1q_f32(q), x[0]);
                for (int c = 1; c < 8; ++c) t = vfmaq_f32(t, vld1q_f32(q + 4 * c), x[c]);
                a0 = vfmaq_n_f32(a0, t, q8_scale(row));
            }
            return vaddvq_f32(a0);
        } else {
            int i = 0;
            for (; i + 8 <= n; i += 8) {
                a0 = vfmaq_f32(a0, vld1q_f32(q + i), load4<T>(row, i));
                a1 = vfmaq_f32(a1, vld1q_f32(q + i + 4), load4<T>(row, i + 4));
            }
            for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, vld1q_f32(q + i), load4<T>(row, i));
            float s = vaddvq_f32(vaddq_f32(a0, a1));
            for (; i < n; ++i) s += q[i] * row_at<T>(row, i);
            return s;
        }
    }
    template <GgmlType T>
    static void axpy(float p, const uint8_t* row, float* o, int n) {
        if constexpr (T == GgmlType::Q8_0) {
            for (int b = 0; b < n / 32; ++b, row += kQ8Block, o += 32) {
                const float pd = p * q8_scale(row);
                float32x4_t x[8];
                q8_16(row + 2, x);
                q8_16(row + 18, x + 4);
                for (int c = 0; c < 8; ++c) vst1q_f32(o + 4 * c, vfmaq_n_f32(vld1q_f32(o + 4 * c), x[c], pd));
            }
        } else {
            int i = 0;
            for (; i + 4 <= n; i += 4) vst1q_f32(o + i, vfmaq_n_f32(vld1q_f32(o + i), load4<T>(row, i), p));
            for (; i < n; ++i) o[i] += p * row_at<T>(row, i);
        }
    }
    static void scale(float c, float* o, int n) {
        int i = 0;
        for (; i + 4 <= n; i += 4) vst1q_f32(o + i, vmulq_n_f32(vld1q_f32(o + i), c));
        for (; i < n; ++i) o[i] *= c;
    }
};

}  // namespace

extern const AttentionKernel kAttentionNeon;
const AttentionKernel kAttentionNeon = {"attn_flash_f32_neon", "neon", kNEON, attend<NeonOps>};

}  // namespace loom::kernels::arm
