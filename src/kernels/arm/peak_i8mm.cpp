// Instruction-peak loop of the i8mm kernels (peak.h): NEON SMMLA into 16
// independent accumulators (v0..15), 32 int8 MACs each (a 2x8 by 8x2 tile).
// Written as asm so that the loop is exactly these instructions; the accumulators'
// values are never read, only their dependency chains matter.
#include <arm_neon.h>

#include <cstdint>

namespace loom::kernels::arm {

double peak_i8mm(int64_t iters) {
    const int8x16_t a = vdupq_n_s8(1), b = vdupq_n_s8(2);
    for (int64_t i = 0; i < iters; ++i)
        asm volatile("smmla v0.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v1.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v2.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v3.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v4.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v5.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v6.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v7.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v8.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v9.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v10.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v11.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v12.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v13.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v14.4s, %[a].16b, %[b].16b\n\t"
                     "smmla v15.4s, %[a].16b, %[b].16b\n\t"
                     :
                     : [a] "w"(a), [b] "w"(b)
                     : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14", "v15");
    return static_cast<double>(iters) * 16 * 32;
}

}  // namespace loom::kernels::arm
