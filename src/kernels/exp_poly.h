// exp(x) written for the auto-vectorizer, shared by the element-wise ops and the
// attention kernels. Included by files compiled with different ISA flags: internal
// linkage only (anonymous namespace), so no copy is merged across them by the linker.
#pragma once
#include <cstdint>

namespace loom::kernels {
namespace {

// exp(x) to ~2 ulp (Cephes' expf polynomial after x = n ln2 + r), branch-free so that
// loops calling it vectorize with the file's ISA. Inputs are clamped to [-87, 88]
// (below -87 the result is ~2^-126, negligible for softmax and SiLU).
inline float exp_poly(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    __builtin_memcpy(&scale, &bits, 4);
    return y * scale;
}

}  // namespace
}  // namespace loom::kernels
