// Instruction-peak loop of the SVE kernels (peak.h): SVE SMMLA into 12 independent
// accumulators (z0..11), VL/128 x 32 int8 MACs each (one 2x8 by 8x2 tile per
// 128-bit segment), on the full vector length. Written as asm so that the loop is
// exactly these instructions; z16 / z17 are set once, the accumulators' values are
// never read, only their dependency chains matter.
#include <arm_sve.h>

#include <cstdint>

namespace loom::kernels::arm {

double peak_sve(int64_t iters) {
    asm volatile("mov z16.b, #1\n\tmov z17.b, #2" ::: "v16", "v17");
    for (int64_t i = 0; i < iters; ++i)
        asm volatile("smmla z0.s, z16.b, z17.b\n\t"
                     "smmla z1.s, z16.b, z17.b\n\t"
                     "smmla z2.s, z16.b, z17.b\n\t"
                     "smmla z3.s, z16.b, z17.b\n\t"
                     "smmla z4.s, z16.b, z17.b\n\t"
                     "smmla z5.s, z16.b, z17.b\n\t"
                     "smmla z6.s, z16.b, z17.b\n\t"
                     "smmla z7.s, z16.b, z17.b\n\t"
                     "smmla z8.s, z16.b, z17.b\n\t"
                     "smmla z9.s, z16.b, z17.b\n\t"
                     "smmla z10.s, z16.b, z17.b\n\t"
                     "smmla z11.s, z16.b, z17.b\n\t"
                     :
                     :
                     : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v16", "v17");
    return static_cast<double>(iters) * 12 * 32 * static_cast<double>(svcntb() / 16);
}

}  // namespace loom::kernels::arm
