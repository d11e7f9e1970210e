// x86 kernel variants, best first (compiled on x86-64 only). select() takes the first
// whose features the CPU has, so per weight type: AVX-512 VNNI, then AVX-VNNI, then
// AVX2, then the scalar references (registry.cpp).
#include "kernels/scalar/scalar.h"
#if defined(__x86_64__)
#include "kernels/x86/x86_kernels.h"
#endif

namespace loom::kernels {

std::span<const MatmulKernel* const> x86_kernels() {
#if defined(__x86_64__)
    static const MatmulKernel* const list[] = {
        &x86::kMatmulQ4_0Avx512,  // 16 rows x 4 bytes, VPDPBUSD
        &x86::kMatmulQ8_0Avx512,
        &x86::kMatmulQ6_KAvx512,
        &x86::kMatmulQ4_KAvx512,
        &x86::kMatmulQ5_KAvx512,
        &x86::kMatmulQ4_0AvxVnni, // 8 rows x 4 bytes, VPDPBUSD (VEX)
        &x86::kMatmulQ8_0AvxVnni,
        &x86::kMatmulQ6_KAvxVnni,
        &x86::kMatmulQ4_KAvxVnni,
        &x86::kMatmulQ5_KAvxVnni,
        &x86::kMatmulQ4_0Avx2,    // 8 rows x 4 bytes, VPMADDUBSW
        &x86::kMatmulQ8_0Avx2,
        &x86::kMatmulQ6_KAvx2,
        &x86::kMatmulQ4_KAvx2,
        &x86::kMatmulQ5_KAvx2,
    };
    return list;
#else
    return {};
#endif
}

}  // namespace loom::kernels
