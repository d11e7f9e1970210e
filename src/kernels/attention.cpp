// The attention kernel table and its run-time selection.
#include "kernels/attention.h"

#include <string_view>

#include "kernels/kernels.h"

namespace loom::kernels {

#if defined(__x86_64__)
namespace x86 {
extern const AttentionKernel kAttentionAvx512;
extern const AttentionKernel kAttentionAvx2;
}  // namespace x86
#elif defined(__aarch64__)
namespace arm {
extern const AttentionKernel kAttentionNeon;
}  // namespace arm
#endif

std::span<const AttentionKernel* const> attention_kernels() {
    static const AttentionKernel* const table[] = {
#if defined(__x86_64__)
        &x86::kAttentionAvx512, &x86::kAttentionAvx2,
#elif defined(__aarch64__)
        &arm::kAttentionNeon,
#endif
        &scalar::kAttention,
    };
    return table;
}

const AttentionKernel& select_attention(uint32_t features) {
    // A forced matmul ISA maps to the attention variant its CPUs run: AVX-VNNI CPUs
    // have AVX2; every Arm ISA has NEON.
    // Called once per layer and step: no string copies.
    std::string_view isa = forced_isa();
    if (isa == "avxvnni") isa = "avx2";
    if (isa == "dotprod" || isa == "i8mm" || isa == "sve") isa = "neon";
    for (auto* k : attention_kernels()) {
        if ((k->features & features) != k->features) continue;
        if (!isa.empty() && isa != k->isa && std::string_view(k->isa) != "scalar") continue;
        return *k;
    }
    return scalar::kAttention;
}

}  // namespace loom::kernels
