// An exact AVX2 stand-in for VPDPBUSD ymm (AVX-VNNI), so the AVX-VNNI kernels run on
// CPUs without it (and under qemu-user 7.2, whose TCG lacks AVX-VNNI). The files
// avxvnni_emulated_*.cpp include it, rename the kernel's _mm256_dpbusd_avx_epi32 calls
// to it and include the kernel source: everything else there runs as it is.
#pragma once
#include <immintrin.h>

namespace {
// acc + sum over the 4 bytes of each int32 lane of (unsigned u) x (signed a), wrapping
// like VPDPBUSD: the even and odd bytes are widened to int16 (|u * a| <= 255 * 128 is
// exact), VPMADDWD adds each lane's two products in int32, then two adds.
__attribute__((target("avx2"), unused)) inline __m256i emulated_dpbusd_avx(__m256i acc, __m256i u, __m256i a) {
    const __m256i u_even = _mm256_and_si256(u, _mm256_set1_epi16(0x00FF)), u_odd = _mm256_srli_epi16(u, 8);
    const __m256i a_even = _mm256_srai_epi16(_mm256_slli_epi16(a, 8), 8), a_odd = _mm256_srai_epi16(a, 8);
    return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(u_even, a_even), _mm256_madd_epi16(u_odd, a_odd)));
}
}  // namespace
