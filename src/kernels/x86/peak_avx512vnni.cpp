// Instruction-peak loop of the AVX-512 VNNI kernels (peak.h): VPDPBUSD on zmm into
// 16 independent accumulators (zmm0..15), 64 int8 MACs each. Written as asm so
// that the loop is exactly these instructions (no register copies or spills); the
// accumulators' values are never read, only their dependency chains matter.
#include <immintrin.h>

#include <cstdint>

namespace loom::kernels::x86 {

double peak_avx512vnni(int64_t iters) {
    const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(2);
    for (int64_t i = 0; i < iters; ++i)
        asm volatile("vpdpbusd %[b], %[a], %%zmm0\n\t"
                     "vpdpbusd %[b], %[a], %%zmm1\n\t"
                     "vpdpbusd %[b], %[a], %%zmm2\n\t"
                     "vpdpbusd %[b], %[a], %%zmm3\n\t"
                     "vpdpbusd %[b], %[a], %%zmm4\n\t"
                     "vpdpbusd %[b], %[a], %%zmm5\n\t"
                     "vpdpbusd %[b], %[a], %%zmm6\n\t"
                     "vpdpbusd %[b], %[a], %%zmm7\n\t"
                     "vpdpbusd %[b], %[a], %%zmm8\n\t"
                     "vpdpbusd %[b], %[a], %%zmm9\n\t"
                     "vpdpbusd %[b], %[a], %%zmm10\n\t"
                     "vpdpbusd %[b], %[a], %%zmm11\n\t"
                     "vpdpbusd %[b], %[a], %%zmm12\n\t"
                     "vpdpbusd %[b], %[a], %%zmm13\n\t"
                     "vpdpbusd %[b], %[a], %%zmm14\n\t"
                     "vpdpbusd %[b], %[a], %%zmm15\n\t"
                     :
                     : [a] "v"(a), [b] "v"(b)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    return static_cast<double>(iters) * 16 * 64;
}

}  // namespace loom::kernels::x86
