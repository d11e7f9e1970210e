// legacy_avxvnni.cpp (Q4_0 and Q8_0 kernels) built with AVX2 + FMA + F16C and the
// emulated VPDPBUSD of avxvnni_emulation.h, as kMatmulQ{4,8}_0AvxVnniEmulated.
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#include "avxvnni_emulation.h"
#define _mm256_dpbusd_avx_epi32 emulated_dpbusd_avx
#define kMatmulQ4_0AvxVnni kMatmulQ4_0AvxVnniEmulated
#define kMatmulQ8_0AvxVnni kMatmulQ8_0AvxVnniEmulated
#include "kernels/x86/legacy_avxvnni.cpp"
#endif
