// The AVX-VNNI kernels on CPUs without AVX-VNNI (Zen 4, most CI machines; qemu-user
// 7.2 cannot run it either): their sources are built a second time with an exact AVX2
// stand-in for VPDPBUSD (avxvnni_emulation.h, checked here against the instruction
// where the CPU has it) and must equal the scalar references bit for bit, as
// kernels_test.cpp demands of every kernel the CPU runs natively. Also: selection
// prefers AVX-512 VNNI > AVX-VNNI > AVX2 by features alone.
#if defined(__x86_64__)
#include <climits>
#include <cstring>
#include <random>
#include <vector>

#include "avxvnni_emulation.h"
#include "kernels/kernels.h"
#include "kernel_test_util.h"
#include "kernels/scalar/scalar.h"
#include "kernels/x86/x86_kernels.h"
#include "quant/formats.h"
#include "test_util.h"

namespace loom::kernels::x86 {
extern const MatmulKernel kMatmulQ4_0AvxVnniEmulated;  // avxvnni_emulated_legacy.cpp
extern const MatmulKernel kMatmulQ8_0AvxVnniEmulated;
extern const MatmulKernel kMatmulQ6_KAvxVnniEmulated;  // avxvnni_emulated_q6_K.cpp
extern const MatmulKernel kMatmulQ4_KAvxVnniEmulated;  // avxvnni_emulated_q4_K_q5_K.cpp
extern const MatmulKernel kMatmulQ5_KAvxVnniEmulated;
}  // namespace loom::kernels::x86

using namespace loom;
using namespace loom::kernels;

namespace {

bool has(uint32_t f) { return (cpu_features() & f) == f; }

// The 8 int32 lanes of VPDPBUSD(acc, u, a): emulated, EVEX (AVX512-VL VNNI), VEX (AVX-VNNI).
struct Lanes {
    int32_t v[8];
};
#define LOAD256(p) _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
__attribute__((target("avx2"))) Lanes dp_emulated(const int32_t* acc, const uint8_t* u, const int8_t* a) {
    Lanes r;
    const __m256i c = LOAD256(acc), x = LOAD256(u), y = LOAD256(a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(r.v), emulated_dpbusd_avx(c, x, y));
    return r;
}
__attribute__((target("avx2,avx512f,avx512vl,avx512vnni"))) Lanes dp_evex(const int32_t* acc, const uint8_t* u,
                                                                          const int8_t* a) {
    Lanes r;
    const __m256i c = LOAD256(acc), x = LOAD256(u), y = LOAD256(a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(r.v), _mm256_dpbusd_epi32(c, x, y));
    return r;
}
__attribute__((target("avx2,avxvnni"))) Lanes dp_vex(const int32_t* acc, const uint8_t* u, const int8_t* a) {
    Lanes r;
    const __m256i c = LOAD256(acc), x = LOAD256(u), y = LOAD256(a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(r.v), _mm256_dpbusd_avx_epi32(c, x, y));
    return r;
}

TEST(KernelsAvxVnniEmulated, EmulationMatchesVpdpbusd) {
    if (!has(x86::kAvx2Features)) GTEST_SKIP() << "needs AVX2";
    const bool evex = has(kAVX512F | kAVX512VL | kAVX512VNNI), vex = has(kAVXVNNI);
    std::mt19937 rng(17);
    int32_t acc[8];
    uint8_t u[32];
    int8_t a[32];
    for (int it = 0; it < 2000; ++it) {
        for (int i = 0; i < 32; ++i) {  // extremes often: 0 / 255 against -128 / 127
            const uint32_t r = rng();
            u[i] = static_cast<uint8_t>(r % 4 == 0 ? (r & 16 ? 255 : 0) : r >> 8);
            a[i] = static_cast<int8_t>(r % 3 == 0 ? (r & 32 ? 127 : -128) : static_cast<int>(r >> 16));
        }
        for (int l = 0; l < 8; ++l) {  // wrap-around near INT32 limits too
            const uint32_t r = rng();
            acc[l] = r % 4 == 0 ? (r & 8 ? INT_MAX - 100 : INT_MIN + 100) : static_cast<int32_t>(r);
        }
        const Lanes e = dp_emulated(acc, u, a);
        for (int l = 0; l < 8; ++l) {
            uint32_t want = static_cast<uint32_t>(acc[l]);
            for (int i = 4 * l; i < 4 * l + 4; ++i) want += static_cast<uint32_t>(u[i] * a[i]);
            ASSERT_EQ(static_cast<int32_t>(want), e.v[l]) << "lane " << l << " iteration " << it;
        }
        if (evex) {
            ASSERT_EQ(0, std::memcmp(dp_evex(acc, u, a).v, e.v, sizeof e.v)) << "vs EVEX VPDPBUSD, " << it;
        }
        if (vex) {
            ASSERT_EQ(0, std::memcmp(dp_vex(acc, u, a).v, e.v, sizeof e.v)) << "vs VEX VPDPBUSD, " << it;
        }
    }
    std::printf("[ kernels ] emulated VPDPBUSD checked against the model%s%s\n", evex ? ", EVEX VPDPBUSD" : "",
                vex ? ", VEX VPDPBUSD" : "");
}

using loom::kernels::test::random_floats;
using loom::kernels::test::run;

TEST(KernelsAvxVnniEmulated, EqualsScalarReferenceBitExact) {
    if (!has(x86::kAvx2Features)) GTEST_SKIP() << "needs AVX2, FMA and F16C";
    const std::pair<const MatmulKernel*, const MatmulKernel*> pairs[] = {
        {&x86::kMatmulQ4_0AvxVnniEmulated, &kMatmulQ4_0Scalar},
        {&x86::kMatmulQ8_0AvxVnniEmulated, &kMatmulQ8_0Scalar},
        {&x86::kMatmulQ6_KAvxVnniEmulated, &kMatmulQ6_KScalar},
        {&x86::kMatmulQ4_KAvxVnniEmulated, &kMatmulQ4_KScalar},
        {&x86::kMatmulQ5_KAvxVnniEmulated, &kMatmulQ5_KScalar}};
    for (auto [k, ref] : pairs) {
        const int64_t qk = traits(k->wtype).block_elems;
        const std::pair<int64_t, int64_t> shapes[] = {{qk, 1}, {3 * qk, 7}, {5 * qk, 13}, {9 * qk, 33}, {qk * 16, 64}};
        for (auto [n_in, n_out] : shapes) {
            const auto W = random_floats(static_cast<size_t>(n_in * n_out), 11 + n_in + n_out, 0.05f);
            const size_t rb = row_bytes(k->wtype, n_in);
            std::vector<uint8_t> plain(rb * n_out);
            for (int64_t o = 0; o < n_out; ++o)
                quant::quantize_row(k->wtype, &W[o * n_in], plain.data() + o * rb, n_in);
            const auto X = random_floats(static_cast<size_t>(17 * n_in), 5 + n_in);
            for (int64_t T = 1; T <= 17; ++T) {
                const auto want = run(*ref, plain, n_out, n_in, X.data(), T, 0, 1);
                const int misalign = 4 * static_cast<int>(T % 4), splits = 1 + static_cast<int>(T % 3);
                const auto got = run(*k, plain, n_out, n_in, X.data(), T, misalign, splits);
                ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
                    << k->name << " (emulated) differs from " << ref->name << " at n_in " << n_in << " n_out " << n_out
                    << " T " << T;
                const auto single = run(*k, plain, n_out, n_in, X.data() + (T - 1) * n_in, 1, 0, 1);
                ASSERT_EQ(0, std::memcmp(single.data(), got.data() + (T - 1) * n_out, n_out * sizeof(float)))
                    << k->name << " (emulated): row " << T - 1 << " of a " << T << "-row GEMM differs from its GEMV";
            }
        }
    }
    std::printf("[ kernels ] AVX-VNNI kernels checked with emulated VPDPBUSD; %s\n",
                has(x86::kAvxVnniFeatures) ? "natively too (Kernels.EveryVariantEqualsScalarReferenceBitExact)"
                                           : "not natively: this CPU has no AVX-VNNI");
}

TEST(KernelsAvxVnniEmulated, SelectionPrefersAvx512ThenAvxVnniThenAvx2) {
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
        EXPECT_STREQ(select(t, x86::kAvx2Features)->isa, "avx2");
        EXPECT_STREQ(select(t, x86::kAvxVnniFeatures)->isa, "avxvnni");
        EXPECT_STREQ(select(t, x86::kAvx512Features | kAVXVNNI)->isa, "avx512vnni");
        EXPECT_STREQ(select(t, x86::kAvx512Features | kAVXVNNI, "avxvnni")->isa, "avxvnni");
        EXPECT_STREQ(select(t, x86::kAvx2Features, "avxvnni")->isa, "scalar");
    }
    EXPECT_STREQ(x86::kMatmulQ4_0AvxVnni.name, "matmul_f32_q4_0x8x4_q8_0_avxvnni");
    EXPECT_STREQ(x86::kMatmulQ8_0AvxVnni.name, "matmul_f32_q8_0x8x4_q8_0_avxvnni");
    EXPECT_STREQ(x86::kMatmulQ6_KAvxVnni.name, "matmul_f32_q6_Kx8x4_q8_K_avxvnni");
    EXPECT_STREQ(x86::kMatmulQ4_KAvxVnni.name, "matmul_f32_q4_Kx8x4_q8_K_avxvnni");
    EXPECT_STREQ(x86::kMatmulQ5_KAvxVnni.name, "matmul_f32_q5_Kx8x4_q8_K_avxvnni");
}

}  // namespace
#endif
