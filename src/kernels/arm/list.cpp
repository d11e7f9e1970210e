// Arm kernel variants, best first (compiled on AArch64 only; empty elsewhere).
// select() takes the first whose features the CPU has, so per weight type the order
// is SVE, then i8mm, then dotprod, then the scalar references (registry.cpp).
#include "kernels/scalar/scalar.h"
#if defined(__aarch64__)
#include "kernels/arm/arm_kernels.h"
#endif

namespace loom::kernels {

std::span<const MatmulKernel* const> arm_kernels() {
#if defined(__aarch64__)
    static const MatmulKernel* const list[] = {
        &arm::kMatmulQ4_0x8x8Sve,      // kSVE | kSVEI8MM | kI8MM (+ kDOTPROD, kNEON)
        &arm::kMatmulQ4_0x4x8I8mm,     // kI8MM (+ kDOTPROD, kNEON)
        &arm::kMatmulQ4_0x4x4Dotprod,  // kDOTPROD (+ kNEON)
        &arm::kMatmulQ8_0x4x8I8mm,
        &arm::kMatmulQ8_0x4x4Dotprod,
        &arm::kMatmulQ6_Kx4x8Sve,
        &arm::kMatmulQ6_Kx4x8I8mm,
        &arm::kMatmulQ6_Kx4x8Dotprod,
        &arm::kMatmulQ4_Kx4x8Sve,
        &arm::kMatmulQ4_Kx4x8I8mm,
        &arm::kMatmulQ4_Kx4x8Dotprod,
        &arm::kMatmulQ5_Kx4x8Sve,
        &arm::kMatmulQ5_Kx4x8I8mm,
        &arm::kMatmulQ5_Kx4x8Dotprod,
    };
    return list;
#else
    return {};
#endif
}

}  // namespace loom::kernels
