// Instruction-peak loop of the AVX2 kernels (peak.h): VPMADDUBSW (u8 x s8 pairs to
// int16), VPMADDWD with ones (to int32), VPADDD into one of 8 independent
// accumulators (ymm0..7; temporaries ymm8..11) -- 32 int8 MACs per chain of three.
// Written as asm so that the loop is exactly these instructions; the values are
// never read, only the dependency chains matter.
#include <immintrin.h>

#include <cstdint>

namespace loom::kernels::x86 {

double peak_avx2(int64_t iters) {
    const __m256i a = _mm256_set1_epi8(1), b = _mm256_set1_epi8(2), ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < iters; ++i)
        asm volatile("vpmaddubsw %[b], %[a], %%ymm8\n\t"
                     "vpmaddwd %[ones], %%ymm8, %%ymm8\n\t"
                     "vpaddd %%ymm8, %%ymm0, %%ymm0\n\t"
                     "vpmaddubsw %[b], %[a], %%ymm9\n\t"
                     "vpmaddwd %[ones], %%ymm9, %%ymm9\n\t"
                     "vpaddd %%ymm9, %%ymm1, %%ymm1\n\t"
                     "vpmaddubsw %[b], %[a], %%ymm10\n\t"
                     "vpmaddwd %[ones], %%ymm10, %%ymm10\n\t"
                     "vpaddd %%ymm10, %%ymm2, %%ymm2\n\t"
                     "vpmaddubsw %[b], %[a], %%ymm11\n\t"
                     "vpmaddwd %[ones], %%ymm11, %%ymm11\n\t"
                     "vpaddd %%ymm11, %%ymm3, %%ymm3\n\t"
                     "vpmaddubsw %[b], %[a], %%ymm8\n\t"
                     "vpmaddwd %[ones], %%ymm8, %%ymm8\n\t"
                     "vpaddd %%ymm8, %%ymm4, %%ymm4\n\t"
                     "vpmaddubsw %[b], %[a], %%ymm9\n\t"
                     "vpmaddwd %[ones], %%ymm9, %%ymm9\n\t"
                     "vpaddd %%ymm9, %%ymm5, %%ymm5\n\t"
                     "vpmaddubsw %[b], %[a], %%ymm10\n\t"
                     "vpmaddwd %[ones], %%ymm10, %%ymm10\n\t"
                     "vpaddd %%ymm10, %%ymm6, %%ymm6\n\t"
                     "vpmaddubsw %[b], %[a], %%ymm11\n\t"
                     "vpmaddwd %[ones], %%ymm11, %%ymm11\n\t"
                     "vpaddd %%ymm11, %%ymm7, %%ymm7\n\t"
                     :
                     : [a] "x"(a), [b] "x"(b), [ones] "x"(ones)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11");
    return static_cast<double>(iters) * 8 * 32;
}

}  // namespace loom::kernels::x86
