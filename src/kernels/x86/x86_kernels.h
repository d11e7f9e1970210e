// x86 kernel variants (defined in src/kernels/x86/*_<isa>.cpp, listed in list.cpp).
#pragma once
#include "kernels/kernels.h"

namespace loom::kernels::x86 {

constexpr uint32_t kAvx2Features = kAVX2 | kFMA | kF16C;
constexpr uint32_t kAvxVnniFeatures = kAvx2Features | kAVXVNNI;
constexpr uint32_t kAvx512Features = kAvx2Features | kAVX512F | kAVX512BW | kAVX512VL | kAVX512VNNI;

extern const MatmulKernel kMatmulQ4_0Avx512;  // matmul_f32_q4_0x16x4_q8_0_avx512vnni
extern const MatmulKernel kMatmulQ8_0Avx512;  // matmul_f32_q8_0x16x4_q8_0_avx512vnni
extern const MatmulKernel kMatmulQ6_KAvx512;  // matmul_f32_q6_Kx16x4_q8_K_avx512vnni
extern const MatmulKernel kMatmulQ4_0AvxVnni; // matmul_f32_q4_0x8x4_q8_0_avxvnni
extern const MatmulKernel kMatmulQ8_0AvxVnni; // matmul_f32_q8_0x8x4_q8_0_avxvnni
extern const MatmulKernel kMatmulQ6_KAvxVnni; // matmul_f32_q6_Kx8x4_q8_K_avxvnni
extern const MatmulKernel kMatmulQ4_0Avx2;    // matmul_f32_q4_0x8x4_q8_0_avx2
extern const MatmulKernel kMatmulQ8_0Avx2;    // matmul_f32_q8_0x8x4_q8_0_avx2
extern const MatmulKernel kMatmulQ6_KAvx2;    // matmul_f32_q6_Kx8x4_q8_K_avx2
extern const MatmulKernel kMatmulQ4_KAvx512;  // matmul_f32_q4_Kx16x4_q8_K_avx512vnni
extern const MatmulKernel kMatmulQ5_KAvx512;  // matmul_f32_q5_Kx16x4_q8_K_avx512vnni
extern const MatmulKernel kMatmulQ4_KAvxVnni; // matmul_f32_q4_Kx8x4_q8_K_avxvnni
extern const MatmulKernel kMatmulQ5_KAvxVnni; // matmul_f32_q5_Kx8x4_q8_K_avxvnni
extern const MatmulKernel kMatmulQ4_KAvx2;    // matmul_f32_q4_Kx8x4_q8_K_avx2
extern const MatmulKernel kMatmulQ5_KAvx2;    // matmul_f32_q5_Kx8x4_q8_K_avx2

}  // namespace loom::kernels::x86
