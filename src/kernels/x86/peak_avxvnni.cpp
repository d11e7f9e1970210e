// Instruction-peak loop of the AVX-VNNI kernels (peak.h): VEX VPDPBUSD on ymm into
// 12 independent accumulators (ymm0..11), 32 int8 MACs each. Written as asm so
// that the loop is exactly these instructions (no register copies or spills); the
// accumulators' values are never read, only their dependency chains matter.
#include <immintrin.h>

#include <cstdint>

namespace loom::kernels::x86 {

double peak_avxvnni(int64_t iters) {
    const __m256i a = _mm256_set1_epi8(1), b = _mm256_set1_epi8(2);
    for (int64_t i = 0; i < iters; ++i)
        asm volatile("%{vex%} vpdpbusd %[b], %[a], %%ymm0\n\t"
                     "%{vex%} vpdpbusd %[b], %[a], %%ymm1\n\t"
                     "%{vex%} vpdpbusd %[b], %[a], %%ymm2\n\t"
                     "%{vex%} vpdpbusd %[b], %[a], %%ymm3\n\t"
                     "%{vex%} vpdpbusd %[b], %[a], %%ymm4\n\t"
                     "%{vex%} vpdpbusd %[b], %[a], %%ymm5\n\t"
                     "%{vex%} vpdpbusd %[b], %[a], %%ymm6\n\t"
                     "%{vex%} vpdpbusd %[b], %[a], %%ymm7\n\t"
                     "%{vex%} vpdpbusd %[b], %[a], %%ymm8\n\t"
                     "%{vex%} vpdpbusd %[b], %[a], %%ymm9\n\t"
                     "%{vex%} vpdpbusd %[b], %[a], %%ymm10\n\t"
                     "%{vex%} vpdpbusd %[b], %[a], %%ymm11\n\t"
                     :
                     : [a] "x"(a), [b] "x"(b)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11");
    return static_cast<double>(iters) * 12 * 32;
}

}  // namespace loom::kernels::x86
