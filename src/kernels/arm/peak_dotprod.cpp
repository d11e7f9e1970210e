// Instruction-peak loop of the dotprod kernels (peak.h): SDOT by lane (as the
// kernels use it) into 16 independent accumulators (v0..15), 16 int8 MACs each.
// Written as asm so that the loop is exactly these instructions; the accumulators'
// values are never read, only their dependency chains matter.
#include <arm_neon.h>

#include <cstdint>

namespace loom::kernels::arm {

double peak_dotprod(int64_t iters) {
    const int8x16_t a = vdupq_n_s8(1), b = vdupq_n_s8(2);
    for (int64_t i = 0; i < iters; ++i)
        asm volatile("sdot v0.4s, %[a].16b, %[b].4b[0]\n\t"
                     "sdot v1.4s, %[a].16b, %[b].4b[1]\n\t"
                     "sdot v2.4s, %[a].16b, %[b].4b[2]\n\t"
                     "sdot v3.4s, %[a].16b, %[b].4b[3]\n\t"
                     "sdot v4.4s, %[a].16b, %[b].4b[0]\n\t"
                     "sdot v5.4s, %[a].16b, %[b].4b[1]\n\t"
                     "sdot v6.4s, %[a].16b, %[b].4b[2]\n\t"
                     "sdot v7.4s, %[a].16b, %[b].4b[3]\n\t"
                     "sdot v8.4s, %[a].16b, %[b].4b[0]\n\t"
                     "sdot v9.4s, %[a].16b, %[b].4b[1]\n\t"
                     "sdot v10.4s, %[a].16b, %[b].4b[2]\n\t"
                     "sdot v11.4s, %[a].16b, %[b].4b[3]\n\t"
                     "sdot v12.4s, %[a].16b, %[b].4b[0]\n\t"
                     "sdot v13.4s, %[a].16b, %[b].4b[1]\n\t"
                     "sdot v14.4s, %[a].16b, %[b].4b[2]\n\t"
                     "sdot v15.4s, %[a].16b, %[b].4b[3]\n\t"
                     :
                     : [a] "w"(a), [b] "w"(b)
                     : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14", "v15");
    return static_cast<double>(iters) * 16 * 16;
}

}  // namespace loom::kernels::arm
