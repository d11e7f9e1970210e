// The table of instruction-peak loops (peak.h).
#include "kernels/peak.h"

#include "kernels/kernels.h"

namespace loom::kernels {

double peak_scalar(int64_t iters);  // scalar/peak_scalar.cpp
#if defined(__x86_64__)
namespace x86 {
double peak_avx2(int64_t iters);
double peak_avxvnni(int64_t iters);
double peak_avx512vnni(int64_t iters);
}  // namespace x86
#endif
#if defined(__aarch64__)
namespace arm {
double peak_dotprod(int64_t iters);
double peak_i8mm(int64_t iters);
double peak_sve(int64_t iters);
}  // namespace arm
#endif

std::span<const PeakLoop> peak_loops() {
    static const PeakLoop table[] = {
#if defined(__x86_64__)
        {"avx512vnni", "vpdpbusd zmm x16", kAVX512F | kAVX512BW | kAVX512VL | kAVX512VNNI, x86::peak_avx512vnni},
        {"avxvnni", "vpdpbusd ymm x12", kAVX2 | kAVXVNNI, x86::peak_avxvnni},
        {"avx2", "vpmaddubsw+vpmaddwd+vpaddd ymm x8", kAVX2, x86::peak_avx2},
#endif
#if defined(__aarch64__)
        {"sve", "sve smmla x12", kSVE | kSVEI8MM, arm::peak_sve},
        {"i8mm", "smmla x16", kI8MM, arm::peak_i8mm},
        {"dotprod", "sdot by lane x16", kDOTPROD, arm::peak_dotprod},
#endif
        {"scalar", "imul+add x8", 0, peak_scalar},
    };
    return table;
}

const PeakLoop* peak_loop(std::string_view isa, uint32_t features) {
    for (const PeakLoop& p : peak_loops())
        if (isa == p.isa && (p.features & features) == p.features) return &p;
    return nullptr;
}

}  // namespace loom::kernels
