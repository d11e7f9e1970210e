// Scalar reference of the attention family (kernels/attention.h): plain loops in
// element order, the variant every SIMD one is tested against.
#include "kernels/attention_impl.h"

namespace loom::kernels {
namespace {

struct ScalarOps {
    template <GgmlType T>
    static float dot(const float* q, const uint8_t* row, int n) {
        float s = 0.0f;
        for (int i = 0; i < n; ++i) s += q[i] * row_at<T>(row, i);
        return s;
    }
    template <GgmlType T>
    static void axpy(float p, const uint8_t* row, float* o, int n) {
        for (int i = 0; i < n; ++i) o[i] += p * row_at<T>(row, i);
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
