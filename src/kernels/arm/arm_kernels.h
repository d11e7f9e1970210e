// The Arm kernel variants (each defined in its *_<isa>.cpp file), for list.cpp.
#pragma once
#include "kernels/kernels.h"

namespace loom::kernels::arm {

extern const MatmulKernel kMatmulQ4_Kx4x8Sve;      // qx_K_sve.cpp
extern const MatmulKernel kMatmulQ5_Kx4x8Sve;      // qx_K_sve.cpp
extern const MatmulKernel kMatmulQ4_Kx4x8I8mm;     // qx_K_i8mm.cpp
extern const MatmulKernel kMatmulQ5_Kx4x8I8mm;     // qx_K_i8mm.cpp
extern const MatmulKernel kMatmulQ4_Kx4x8Dotprod;  // qx_K_dotprod.cpp
extern const MatmulKernel kMatmulQ5_Kx4x8Dotprod;  // qx_K_dotprod.cpp
extern const MatmulKernel kMatmulQ4_0x8x8Sve;      // q4_0_sve.cpp
extern const MatmulKernel kMatmulQ4_0x4x8I8mm;     // qx_0_i8mm.cpp
extern const MatmulKernel kMatmulQ8_0x4x8I8mm;     // qx_0_i8mm.cpp
extern const MatmulKernel kMatmulQ4_0x4x4Dotprod;  // qx_0_dotprod.cpp
extern const MatmulKernel kMatmulQ8_0x4x4Dotprod;  // qx_0_dotprod.cpp
extern const MatmulKernel kMatmulQ6_Kx4x8Sve;      // q6_Kx4x8_sve.cpp
extern const MatmulKernel kMatmulQ6_Kx4x8I8mm;     // q6_Kx4x8_i8mm.cpp
extern const MatmulKernel kMatmulQ6_Kx4x8Dotprod;  // q6_Kx4x8_dotprod.cpp

}  // namespace loom::kernels::arm
