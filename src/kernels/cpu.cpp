// CPU feature detection: cpuid/xgetbv on x86, getauxval HWCAPs on Arm.
#include <fstream>
#include <string>

#include "kernels/kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#include <sys/prctl.h>
#endif

namespace loom::kernels {

#if defined(__x86_64__)
static uint64_t xgetbv0() {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

static uint32_t detect() {
    uint32_t f = 0;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const bool osxsave = c & (1u << 27);
    const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xE6) == 0xE6;
    if (ymm && (c & (1u << 12))) f |= kFMA;
    if (ymm && (c & (1u << 29))) f |= kF16C;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if (ymm && (b & (1u << 5))) f |= kAVX2;
        if (zmm && (b & (1u << 16))) f |= kAVX512F;
        if (zmm && (b & (1u << 30))) f |= kAVX512BW;
        if (zmm && (b & (1u << 31))) f |= kAVX512VL;
        if (zmm && (c & (1u << 11))) f |= kAVX512VNNI;
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ymm && (a & (1u << 4))) f |= kAVXVNNI;
#elif defined(__aarch64__)
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    f |= kNEON;                                   // mandatory on AArch64
    if (hw & (1ul << 20)) f |= kDOTPROD;          // HWCAP_ASIMDDP
    if (hw & (1ul << 22)) f |= kSVE;              // HWCAP_SVE
    if (hw2 & (1ul << 1)) f |= kSVE2;             // HWCAP2_SVE2
    if (hw2 & (1ul << 13)) f |= kI8MM;            // HWCAP2_I8MM
    if (hw2 & (1ul << 9)) f |= kSVEI8MM;          // HWCAP2_SVEI8MM (SMMLA on SVE registers)
#endif
    return f;
}

uint32_t cpu_features() {
    static const uint32_t f = detect();
    return f;
}

int sve_vector_bits() {
#if defined(__aarch64__)
    if (!(cpu_features() & kSVE)) return 0;
    const int r = prctl(51 /* PR_SVE_GET_VL */);
    return r < 0 ? 0 : (r & 0xFFFF) * 8;
#else
    return 0;
#endif
}

std::string feature_names(uint32_t f) {
    static const std::pair<uint32_t, const char*> names[] = {
        {kAVX2, "avx2"}, {kFMA, "fma"}, {kF16C, "f16c"}, {kAVXVNNI, "avxvnni"}, {kAVX512F, "avx512f"},
        {kAVX512BW, "avx512bw"}, {kAVX512VL, "avx512vl"}, {kAVX512VNNI, "avx512vnni"}, {kNEON, "neon"},
        {kDOTPROD, "dotprod"}, {kI8MM, "i8mm"}, {kSVE, "sve"}, {kSVE2, "sve2"},
        {kSVEI8MM, "svei8mm"}};
    std::string s;
    for (auto [bit, name] : names)
        if (f & bit) {
            if (!s.empty()) s += ' ';
            s += name;
        }
    return s.empty() ? "none" : s;
}

std::string cpu_model_name() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("model name", 0) == 0 || line.rfind("CPU part", 0) == 0) {
            auto p = line.find(':');
            if (p != std::string::npos) return line.substr(line.find_first_not_of(' ', p + 1));
        }
    }
    return "unknown";
}

}  // namespace loom::kernels
