// Instruction-peak loop of the scalar kernels (peak.h): 32-bit multiply-adds in
// general registers, 8 independent chains. The empty asm statements keep every
// value in a general register (no auto-vectorization) and make each chain's operand
// opaque, so no multiply is shared between chains.
#include <cstdint>

namespace loom::kernels {

namespace {
#define LOOM_PEAK_MAC(acc)              \
    do {                                \
        asm volatile("" : "+r"(a));     \
        acc += a * b;                   \
        asm volatile("" : "+r"(acc));   \
    } while (0)
}  // namespace

double peak_scalar(int64_t iters) {
    int32_t a = 3, b = 5;
    int32_t c0 = 0, c1 = 1, c2 = 2, c3 = 3, c4 = 4, c5 = 5, c6 = 6, c7 = 7;
    for (int64_t i = 0; i < iters; ++i) {
        asm volatile("" : "+r"(b));
        LOOM_PEAK_MAC(c0);
        LOOM_PEAK_MAC(c1);
        LOOM_PEAK_MAC(c2);
        LOOM_PEAK_MAC(c3);
        LOOM_PEAK_MAC(c4);
        LOOM_PEAK_MAC(c5);
        LOOM_PEAK_MAC(c6);
        LOOM_PEAK_MAC(c7);
    }
    const int32_t s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7;
    asm volatile("" : : "r"(s));
    return static_cast<double>(iters) * 8;
}
#undef LOOM_PEAK_MAC

}  // namespace loom::kernels
