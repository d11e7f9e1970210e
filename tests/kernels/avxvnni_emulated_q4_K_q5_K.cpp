// q4_K_q5_K_avxvnni.cpp built with AVX2 + FMA + F16C and the emulated VPDPBUSD of
// avxvnni_emulation.h, as kMatmulQ{4,5}_KAvxVnniEmulated.
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#include "avxvnni_emulation.h"
#define _mm256_dpbusd_avx_epi32 emulated_dpbusd_avx
#define kMatmulQ4_KAvxVnni kMatmulQ4_KAvxVnniEmulated
#define kMatmulQ5_KAvxVnni kMatmulQ5_KAvxVnniEmulated
#include "kernels/x86/q4_K_q5_K_avxvnni.cpp"
#endif
