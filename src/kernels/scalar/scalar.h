// Scalar reference kernels (the numeric contract of kernels.h), for the
// registry and for tests of every SIMD variant.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"
#include "quant/formats.h"

namespace loom::kernels {

namespace scalar {
float dot_q4_0_q8_0(const quant::BlockQ4_0* w, const quant::BlockQ8_0* a, int64_t nb);
float dot_q8_0_q8_0(const quant::BlockQ8_0* w, const quant::BlockQ8_0* a, int64_t nb);
float dot_q4_K_q8_K(const quant::BlockQ4_K* w, const quant::BlockQ8_K* a, int64_t nb);
float dot_q5_K_q8_K(const quant::BlockQ5_K* w, const quant::BlockQ8_K* a, int64_t nb);
float dot_q6_K_q8_K(const quant::BlockQ6_K* w, const quant::BlockQ8_K* a, int64_t nb);
}  // namespace scalar

extern const MatmulKernel kMatmulQ4_0Scalar;
extern const MatmulKernel kMatmulQ8_0Scalar;
extern const MatmulKernel kMatmulQ4_KScalar;
extern const MatmulKernel kMatmulQ5_KScalar;
extern const MatmulKernel kMatmulQ6_KScalar;

// Per-architecture lists (x86/list.cpp, arm/list.cpp), best first.
std::span<const MatmulKernel* const> x86_kernels();
std::span<const MatmulKernel* const> arm_kernels();

}  // namespace loom::kernels
