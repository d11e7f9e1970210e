// The instruction-peak loops of the roofline (kernels/peak.h): every ISA a compiled
// kernel names has one, and each loop on this CPU runs and counts its MACs.
#include <gtest/gtest.h>

#include <string>

#include "kernels/kernels.h"
#include "kernels/peak.h"

namespace loom::kernels {
namespace {

TEST(PeakLoops, EveryKernelIsaHasOne) {
    for (const MatmulKernel* k : all_kernels()) {
        bool found = false;
        for (const PeakLoop& p : peak_loops()) found |= std::string(p.isa) == k->isa;
        EXPECT_TRUE(found) << k->name << " (" << k->isa << ")";
    }
    ASSERT_NE(peak_loop("scalar", 0), nullptr);  // the fallback needs no feature
    EXPECT_EQ(peak_loop("no-such-isa", ~0u), nullptr);
}

TEST(PeakLoops, FeaturesGateTheLoop) {
    for (const PeakLoop& p : peak_loops()) {
        EXPECT_EQ(peak_loop(p.isa, p.features), &p) << p.isa;
        if (p.features != 0) {
            EXPECT_EQ(peak_loop(p.isa, 0), nullptr) << p.isa;
        }
    }
}

TEST(PeakLoops, LoopsOfThisCpuRunAndCountLinearly) {
    int ran = 0;
    for (const PeakLoop& p : peak_loops()) {
        if ((p.features & cpu_features()) != p.features) continue;
        const double one = p.run(1), many = p.run(1000);
        EXPECT_GT(one, 0) << p.isa;
        EXPECT_DOUBLE_EQ(many, 1000 * one) << p.isa;  // MACs per iteration are fixed
        EXPECT_EQ(p.run(0), 0) << p.isa;
        ++ran;
    }
    EXPECT_GE(ran, 1);
}

// Same ISA as the kernel select() picks for Q4_0, which is what the probe times.
TEST(PeakLoops, SelectedKernelIsaHasARunnableLoop) {
    const MatmulKernel* k = select(GgmlType::Q4_0, cpu_features());
    ASSERT_NE(k, nullptr);
    const PeakLoop* p = peak_loop(k->isa, cpu_features());
    ASSERT_NE(p, nullptr) << k->isa;
    EXPECT_EQ(std::string(p->isa), k->isa);
}

}  // namespace
}  // namespace loom::kernels
