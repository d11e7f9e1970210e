// Scalar reference of the attention family (kernels/attention.h): plain loops in
// element order, the variant every SIMD one is tested against.
#include <cstring>

#include "kernels/attention_impl.h"
#include "quant/formats.h"

namespace loom::kernels {
namespace {

struct ScalarOps {
    // Element i of a cache row of type T.
    template <GgmlType T>
    static float at(const uint8_t* row, int i) {
        if constexpr (T == GgmlType::F32) {
            float x;
            std::memcpy(&x, row + 4 * i, 4);
            return x;
        } else if constexpr (T == GgmlType::F16) {
            uint16_t h;
            std::memcpy(&h, row + 2 * i, 2);
            return quant::fp16_to_f32(h);
        } else {
            const uint8_t* b = row + (i / 32) * kQ8Block;
            uint16_t d;
            std::memcpy(&d, b, 2);
            return quant::fp16_to_f32(d) * static_cast<float>(static_cast<int8_t>(b[2 + i % 32]));
        }
    }
    template <GgmlType T>
    static float dot(const float* q, const uint8_t* row, int n) {
        float s = 0.0f;
        for (int i = 0; i < n; ++i) s += q[i] * at<T>(row, i);
        return s;
    }
    template <GgmlType T>
    static void axpy(float p, const uint8_t* row, float* o, int n) {
        for (int i = 0; i < n; ++i) o[i] += p * at<T>(row, i);
    }
    static void scale(float c, float* o, int n) {
        for (int i = 0; i < n; ++i) o[i] *= c;
    }
};

}  // namespace

namespace scalar {
const AttentionKernel kAttention = {"attn_flash_f32_scalar", "scalar", 0, attend<ScalarOps>};
}

}  // namespace loom::kernels
